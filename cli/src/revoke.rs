//! `cutoff revoke`, `cutoff status` and `cutoff release`: the revoker's workflow, run
//! from an operator's machine with the standard AWS credential chain.
//!
//! The arguments become the same manual request the revoker Lambda accepts, and go
//! through the same validation and the same workflow.

use std::io::Write;

use anyhow::Context;
use clap::{ArgGroup, Args, ValueEnum};
use cutoff::config::{account_scope_from_lookup, parse_external_id, parse_table_name, revoker_env};
use cutoff::revoke::{RevokeConfig, Revoker, StatusReport};
use cutoff_aws::config::{SdkOptions, load_sdk_config_with};
use cutoff_aws::dynamodb::{ConfiguredLedger, Ledger};
use cutoff_aws::sts::{SdkAccountAccess, discover_home_and_time};
use cutoff_domain::clock::OffsetClock;
use cutoff_domain::event::{ManualAction, manual};
use cutoff_domain::outcome::{Outcome, RevocationRequest, Status};
use cutoff_domain::principal::PrincipalName;
use cutoff_domain::settings::TriageConfig;
use cutoff_domain::sweep_rules::humanize;
use serde_json::{Value, json};

use crate::Exit;

/// How to reach AWS.
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// AWS profile to use (default: the standard credential chain).
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,
    /// AWS region for STS (IAM is global).
    #[arg(long, global = true, value_name = "REGION")]
    region: Option<String>,
    /// Send every AWS call to this endpoint (a local stand-in); AWS_ENDPOINT_URL works too.
    #[arg(long, global = true, value_name = "URL")]
    endpoint_url: Option<String>,
    /// Role to assume in the target account when it is not the caller's account.
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = "CUTOFF_MEMBER_ROLE_NAME",
        default_value = "cutoff-member"
    )]
    member_role: String,
    /// ExternalId the member role requires.
    #[arg(
        long,
        global = true,
        value_name = "ID",
        env = "CUTOFF_EXTERNAL_ID",
        hide_env_values = true
    )]
    external_id: Option<String>,
    /// The ledger table (DynamoDB): audit every request, take the principal's lock
    /// like the Lambdas do, and answer `cutoff history`.
    #[arg(long, global = true, value_name = "TABLE", env = "CUTOFF_LEDGER_TABLE")]
    ledger_table: Option<String>,
    /// The revoker's function URL (the stack output OperatorUrl): send the request
    /// there, signed with your credentials, so that AWS vouches for who asks and the
    /// deployment locks, audits and notifies it. Without it the request runs here.
    #[arg(long, global = true, value_name = "URL", env = "CUTOFF_OPERATOR_URL")]
    url: Option<String>,
}

/// The principal to act on.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("principal").required(true).args(["role", "user", "arn"])))]
pub struct PrincipalArgs {
    /// Account of the principal (12 digits); optional with --arn.
    #[arg(long, value_name = "ACCOUNT")]
    account: Option<String>,
    /// IAM role name.
    #[arg(long, value_name = "NAME")]
    role: Option<String>,
    /// IAM user name.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Role, user, instance-profile or STS assumed-role ARN.
    #[arg(long, value_name = "ARN")]
    arn: Option<String>,
    /// The user's access key to set Inactive (never deleted: it is evidence).
    #[arg(long, value_name = "KEY", requires = "user")]
    access_key_id: Option<String>,
    /// Role session name (for --scope session).
    #[arg(long, value_name = "NAME")]
    session: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScopeArg {
    /// Every session of the role issued before now.
    Role,
    /// One session only (needs --session).
    Session,
}

/// Deny every session of a principal issued before now (the console's "Revoke active
/// sessions"), or one session with --scope session.
///
/// Exits 0 when an outcome was reached (applied, already_revoked, dry_run, protected,
/// unmodifiable), 1 when it failed or is partial, a credential in scope still working
/// (the outcome is still printed), 2 for invalid arguments.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    principal: PrincipalArgs,
    #[arg(long, value_enum, default_value = "role")]
    scope: ScopeArg,
    /// Compute and show everything, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Why (an incident id): recorded in the outcome and the notification.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Who asks (default: $USER).
    #[arg(long, value_name = "WHO")]
    requested_by: Option<String>,
    /// Print the outcome JSON instead of the human summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    aws: AwsArgs,
}

/// Show a principal's cutoffs: when, where they live, how old, and whether they can
/// still stop a live session.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    principal: PrincipalArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    aws: AwsArgs,
}

/// Remove cutoff's deny from a principal. Refused while sessions issued before the
/// cutoff could still be alive (12 h for roles, 36 h for users) unless --force.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    principal: PrincipalArgs,
    #[arg(long, value_enum, default_value = "role")]
    scope: ScopeArg,
    /// Release even though sessions issued before the cutoff may still be alive.
    #[arg(long)]
    force: bool,
    /// Show what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    #[arg(long, value_name = "WHO")]
    requested_by: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    aws: AwsArgs,
}

fn payload(action: ManualAction, p: &PrincipalArgs, scope: Option<ScopeArg>) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("action".into(), json!(action.as_str()));
    let fields = [
        ("account", &p.account),
        ("role", &p.role),
        ("user", &p.user),
        ("principal_arn", &p.arn),
        ("access_key_id", &p.access_key_id),
        ("session", &p.session),
    ];
    for (key, value) in fields {
        if let Some(v) = value {
            map.insert(key.into(), json!(v));
        }
    }
    if let Some(scope) = scope {
        map.insert(
            "scope".into(),
            json!(match scope {
                ScopeArg::Role => "role",
                ScopeArg::Session => "session",
            }),
        );
    }
    Value::Object(map)
}

/// The request as the operator path takes it: the manual request, without a
/// `requested_by` (AWS says who asks), checked here first exactly as the revoker will.
fn operator_payload(
    mut value: Value,
    reason: &Option<String>,
    dry_run: bool,
    force: bool,
) -> Result<Value, String> {
    if let Value::Object(map) = &mut value {
        if let Some(reason) = reason {
            map.insert("reason".into(), json!(reason));
        }
        map.insert("dry_run".into(), json!(dry_run));
        map.insert("force".into(), json!(force));
    }
    manual::parse(value.clone()).map_err(|e| e.to_string())?;
    Ok(value)
}

/// Sends a request through the operator path and returns the revoker's JSON answer.
async fn through_operator_path(
    aws: &AwsArgs,
    url: &str,
    payload: Value,
) -> anyhow::Result<Result<Value, String>> {
    let url = match crate::operator::OperatorUrl::parse(url) {
        Ok(url) => url,
        Err(message) => return Ok(Err(message)),
    };
    let settings = match aws.settings() {
        Ok(settings) => settings,
        Err(message) => return Ok(Err(message)),
    };
    let sdk = match load_sdk_config_with(&settings.options).await {
        Ok(sdk) => sdk,
        Err(e) => return Ok(Err(e.to_string())),
    };
    // AWS's time for the signature (and a word when this machine's clock is off).
    let (_, _, seen) = discover_home_and_time(&sdk)
        .await
        .context(DISCOVER_HOME_CONTEXT)?;
    let clock = aws_clock(seen);
    crate::operator::send(&url, &payload, &sdk, &clock, crate::operator::ANSWER_WAIT)
        .await
        .map(Ok)
}

/// Says that a `--requested-by` is not sent on the operator path: the revoker records
/// the caller AWS verified, and an operator should not believe otherwise.
fn note_requested_by_unused(requested_by: &Option<String>) {
    if requested_by.is_some() {
        eprintln!(
            "note: --requested-by is not sent with --url: AWS says who asks, and the revoker records the caller it verified"
        );
    }
}

/// A manual request through the operator path, its outcome printed.
async fn operator_outcome(
    aws: &AwsArgs,
    url: &str,
    payload: Result<Value, String>,
    json: bool,
) -> anyhow::Result<Exit> {
    let payload = match payload {
        Ok(p) => p,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let answer = match through_operator_path(aws, url, payload).await? {
        Ok(answer) => answer,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let outcome: Outcome = serde_json::from_value(answer)
        .context("the operator path answered something that is not an outcome")?;
    print_outcome(&outcome, json)
}

fn who(requested_by: &Option<String>) -> String {
    requested_by
        .clone()
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .map(|u| format!("{u} (cutoff CLI)"))
        .unwrap_or_else(|| "cutoff CLI".to_owned())
}

/// Validates the request exactly as the revoker Lambda does.
fn request(
    mut value: Value,
    requested_by: &Option<String>,
    reason: &Option<String>,
    dry_run: bool,
    force: bool,
) -> Result<RevocationRequest, String> {
    if let Value::Object(map) = &mut value {
        map.insert("requested_by".into(), json!(who(requested_by)));
        if let Some(reason) = reason {
            map.insert("reason".into(), json!(reason));
        }
        map.insert("dry_run".into(), json!(dry_run));
        map.insert("force".into(), json!(force));
    }
    manual::parse(value)
        .map(|r| RevocationRequest::from_manual(&r))
        .map_err(|e| e.to_string())
}

/// The validated `AwsArgs`: checked before any AWS call.
pub(crate) struct AwsSettings {
    pub(crate) options: SdkOptions,
    pub(crate) member_role: PrincipalName,
    pub(crate) external_id: Option<String>,
    pub(crate) ledger_table: Option<String>,
}

impl AwsArgs {
    /// Checks the member role name and the ExternalId; the error is the one-line
    /// message of an invalid argument.
    pub(crate) fn settings(&self) -> Result<AwsSettings, String> {
        let member_role =
            PrincipalName::parse(&self.member_role).map_err(|e| format!("--member-role: {e}"))?;
        let external_id = self
            .external_id
            .as_deref()
            .map(parse_external_id)
            .transpose()
            .map_err(|e| e.to_string())?;
        let ledger_table = self
            .ledger_table
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(|t| parse_table_name("--ledger-table", t))
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(AwsSettings {
            ledger_table,
            options: SdkOptions {
                profile: self.profile.clone(),
                region: self.region.clone(),
                endpoint_url: self.endpoint_url.clone(),
            },
            member_role,
            external_id,
        })
    }
}

/// What a failed `sts:GetCallerIdentity` is wrapped in.
pub(crate) const DISCOVER_HOME_CONTEXT: &str =
    "finding the caller's account (sts:GetCallerIdentity); check your AWS credentials";

/// AWS's time, from the `Date` of the STS response: a cutoff taken from a laptop
/// whose clock runs behind would spare the sessions minted in between. Says so on
/// standard error when the two clocks differ by more than a minute.
pub(crate) fn aws_clock(seen: Option<cutoff_aws::sts::SeenDate>) -> OffsetClock {
    match seen {
        Some((aws, received)) => {
            let clock = OffsetClock::from_aws_date(aws, received);
            let skew = clock.skew() - chrono::Duration::seconds(1);
            if skew.num_seconds().abs() > 60 {
                eprintln!(
                    "cutoff: this machine's clock is {} {} AWS's; cutoff uses AWS's time",
                    humanize(skew.abs()),
                    if skew > chrono::Duration::zero() {
                        "behind"
                    } else {
                        "ahead of"
                    }
                );
            }
            clock
        }
        None => {
            eprintln!("cutoff: AWS's answer carried no Date header; using this machine's clock");
            OffsetClock::from_aws_date(chrono::Utc::now(), chrono::Utc::now())
        }
    }
}

async fn revoker(
    aws: &AwsArgs,
) -> anyhow::Result<Result<Revoker<SdkAccountAccess, OffsetClock, ConfiguredLedger>, String>> {
    let aws = match aws.settings() {
        Ok(aws) => aws,
        Err(message) => return Ok(Err(message)),
    };
    let sdk = match load_sdk_config_with(&aws.options).await {
        Ok(sdk) => sdk,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let (home, partition, seen) = discover_home_and_time(&sdk)
        .await
        .context(DISCOVER_HOME_CONTEXT)?;
    let clock = aws_clock(seen);
    // Protected principals and accounts come from the same variables as the Lambdas.
    let lookup = |k: &str| std::env::var(k).ok();
    let triage = TriageConfig::from_lookup(lookup).map_err(|e| anyhow::anyhow!(e))?;
    let accounts = account_scope_from_lookup(&lookup).map_err(|e| anyhow::anyhow!(e))?;
    let honour_protected_tag = std::env::var(revoker_env::HONOUR_PROTECTED_TAG)
        .is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let ledger = ConfiguredLedger::from_config(&sdk, aws.ledger_table.as_deref());
    let access = SdkAccountAccess::new(&sdk, home, partition, aws.member_role, aws.external_id);
    Ok(Ok(Revoker::new(
        access,
        clock,
        RevokeConfig {
            protection: triage.protection,
            accounts,
            partition,
            honour_protected_tag,
            ..RevokeConfig::default()
        },
    )
    .with_ledger(ledger)))
}

pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("rendering JSON")?;
    writeln!(std::io::stdout().lock(), "{text}").context("writing to standard output")
}

fn print_outcome(outcome: &Outcome, json: bool) -> anyhow::Result<Exit> {
    if json {
        print_json(outcome)?;
    } else {
        let mut out = String::new();
        match &outcome.error {
            Some(error) => out.push_str(&format!(
                "{} ({}): {}\n",
                outcome.status.as_str(),
                error.kind,
                error.message
            )),
            None => out.push_str(&format!(
                "{}: {}\n",
                outcome.status.as_str(),
                outcome.detail
            )),
        }
        let line = |out: &mut String, label: &str, value: String| {
            out.push_str(&format!("  {label:<14}{value}\n"))
        };
        if let Some(target) = &outcome.target {
            line(&mut out, "target", target.to_string());
        }
        if let Some(cutoff) = outcome.cutoff {
            let previous = outcome
                .previous_cutoff
                .map_or("none".to_owned(), |c| c.to_string());
            line(
                &mut out,
                "cutoff",
                format!("{cutoff} (previous: {previous})"),
            );
        } else if let Some(previous) = outcome.previous_cutoff {
            line(&mut out, "removed", previous.to_string());
        }
        if let Some(policy) = &outcome.policy {
            line(&mut out, "policy", policy.clone());
        }
        let owner = match (&outcome.owner.team, &outcome.owner.topic) {
            (Some(team), Some(topic)) => format!("{team} ({topic})"),
            (Some(team), None) => team.clone(),
            (None, Some(topic)) => topic.clone(),
            (None, None) => "unknown (no cutoff:owner tag)".to_owned(),
        };
        line(&mut out, "owner", owner);
        if let Some(who) = &outcome.trigger.requested_by {
            let how = if outcome.trigger.requested_by_verified {
                "verified by AWS"
            } else {
                "claimed, not verified"
            };
            line(&mut out, "requested by", format!("{who} ({how})"));
        }
        for action in &outcome.actions {
            let label = if outcome.dry_run { "would" } else { "did" };
            line(&mut out, label, action.clone());
        }
        for still in &outcome.still_works {
            line(
                &mut out,
                "still works",
                format!("{}: {}", still.credential, still.why),
            );
        }
        for other in &outcome.other_access {
            line(&mut out, "other access", other.clone());
        }
        line(&mut out, "api calls", outcome.api_calls.to_string());
        if outcome.propagation.is_some() {
            line(
                &mut out,
                "note",
                "IAM is eventually consistent: the change reaches every endpoint within seconds"
                    .to_owned(),
            );
        }
        write!(std::io::stdout().lock(), "{out}").context("writing to standard output")?;
    }
    // `partial` means a credential in the request's scope still works: an operator's
    // script must not read it as done.
    Ok(match outcome.status {
        Status::Failed | Status::Partial => Exit::Failed,
        _ => Exit::Ok,
    })
}

fn print_status(report: &StatusReport, json: bool) -> anyhow::Result<Exit> {
    if json {
        print_json(report)?;
    } else {
        let mut out = format!("{}", report.target);
        if let Some(team) = &report.owner.team {
            out.push_str(&format!(" (owner {team})"));
        }
        out.push('\n');
        if let Some(error) = &report.error {
            out.push_str(&format!("  error ({}): {}\n", error.kind, error.message));
        }
        let describe = |cutoff: &dyn std::fmt::Display, policy: &str, age: i64, effective: bool| {
            format!(
                "{cutoff} in {policy}, {} old, {}",
                humanize(chrono::Duration::seconds(age)),
                if effective {
                    "still stops sessions issued before it"
                } else {
                    "no session it could stop can still be alive"
                }
            )
        };
        match &report.role_wide {
            Some(d) => out.push_str(&format!(
                "  role-wide cutoff  {}\n",
                describe(&d.cutoff, &d.policy, d.age_seconds, d.still_effective)
            )),
            None if report.error.is_none() => out.push_str("  role-wide cutoff  none\n"),
            None => {}
        }
        for s in &report.sessions {
            out.push_str(&format!(
                "  session {}  {}\n",
                s.userid,
                describe(
                    &s.deny.cutoff,
                    &s.deny.policy,
                    s.deny.age_seconds,
                    s.deny.still_effective
                )
            ));
        }
        write!(std::io::stdout().lock(), "{out}").context("writing to standard output")?;
    }
    Ok(if report.error.is_some() {
        Exit::Failed
    } else {
        Exit::Ok
    })
}

fn scope_of(s: ScopeArg) -> Option<ScopeArg> {
    Some(s)
}

pub async fn revoke(args: &RevokeArgs) -> anyhow::Result<Exit> {
    if let Some(url) = &args.aws.url {
        note_requested_by_unused(&args.requested_by);
        let payload = operator_payload(
            payload(ManualAction::Revoke, &args.principal, scope_of(args.scope)),
            &args.reason,
            args.dry_run,
            false,
        );
        return operator_outcome(&args.aws, url, payload, args.json).await;
    }
    let req = match request(
        payload(ManualAction::Revoke, &args.principal, scope_of(args.scope)),
        &args.requested_by,
        &args.reason,
        args.dry_run,
        false,
    ) {
        Ok(r) => r,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let revoker = match revoker(&args.aws).await? {
        Ok(r) => r,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let outcome = revoker.handle(&req, &request_id()).await;
    print_outcome(&outcome, args.json)
}

pub async fn release(args: &ReleaseArgs) -> anyhow::Result<Exit> {
    if let Some(url) = &args.aws.url {
        note_requested_by_unused(&args.requested_by);
        let payload = operator_payload(
            payload(ManualAction::Release, &args.principal, scope_of(args.scope)),
            &args.reason,
            args.dry_run,
            args.force,
        );
        return operator_outcome(&args.aws, url, payload, args.json).await;
    }
    let req = match request(
        payload(ManualAction::Release, &args.principal, scope_of(args.scope)),
        &args.requested_by,
        &args.reason,
        args.dry_run,
        args.force,
    ) {
        Ok(r) => r,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let revoker = match revoker(&args.aws).await? {
        Ok(r) => r,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let outcome = revoker.handle(&req, &request_id()).await;
    print_outcome(&outcome, args.json)
}

pub async fn status(args: &StatusArgs) -> anyhow::Result<Exit> {
    if let Some(url) = &args.aws.url {
        let payload = match operator_payload(
            payload(ManualAction::Status, &args.principal, None),
            &None,
            false,
            false,
        ) {
            Ok(p) => p,
            Err(message) => return Ok(Exit::Invalid(message)),
        };
        let answer = match through_operator_path(&args.aws, url, payload).await? {
            Ok(answer) => answer,
            Err(message) => return Ok(Exit::Invalid(message)),
        };
        // A refused request is answered with a failed outcome, not a report.
        if answer.get("status").is_some() {
            let outcome: Outcome = serde_json::from_value(answer)
                .context("the operator path answered something that is not an outcome")?;
            return print_outcome(&outcome, args.json);
        }
        let report: StatusReport = serde_json::from_value(answer)
            .context("the operator path answered something that is not a status report")?;
        return print_status(&report, args.json);
    }
    let req = match request(
        payload(ManualAction::Status, &args.principal, None),
        &None,
        &None,
        false,
        false,
    ) {
        Ok(r) => r,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let revoker = match revoker(&args.aws).await? {
        Ok(r) => r,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let report = revoker.status(&req, &request_id()).await;
    print_status(&report, args.json)
}

/// Names the assumed-role session in the member account's CloudTrail, the audit
/// entry, and the holder of the principal's lock: unique per invocation (two operators
/// in the same second must not share a lock).
pub(crate) fn request_id() -> String {
    format!(
        "cli-{}-{}-{:04x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        std::process::id(),
        fastrand::u16(..)
    )
}

/// `cutoff history`: what cutoff did to one principal, newest first, from the ledger.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("who").required(true).args(["role", "user"])))]
pub struct HistoryArgs {
    /// Account of the principal (12 digits).
    #[arg(long, value_name = "ACCOUNT")]
    account: String,
    /// IAM role name.
    #[arg(long, value_name = "NAME")]
    role: Option<String>,
    /// IAM user name.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Entries to show, newest first.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    limit: u16,
    /// Print the entries as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    aws: AwsArgs,
}

pub async fn history(args: &HistoryArgs) -> anyhow::Result<Exit> {
    let account = match cutoff_domain::principal::Account::parse(&args.account) {
        Ok(a) => a,
        Err(e) => return Ok(Exit::Invalid(format!("--account: {e}"))),
    };
    let (kind, raw) = match (&args.role, &args.user) {
        (Some(r), _) => ("role", r),
        (None, Some(u)) => ("user", u),
        (None, None) => return Ok(Exit::Invalid("give --role or --user".to_owned())),
    };
    let name = match PrincipalName::parse(raw) {
        Ok(n) => n,
        Err(e) => return Ok(Exit::Invalid(format!("--{kind}: {e}"))),
    };
    let aws = match args.aws.settings() {
        Ok(aws) => aws,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let Some(table) = aws.ledger_table.clone() else {
        return Ok(Exit::Invalid(
            "the history is in the ledger: give --ledger-table or set CUTOFF_LEDGER_TABLE"
                .to_owned(),
        ));
    };
    let sdk = match load_sdk_config_with(&aws.options).await {
        Ok(sdk) => sdk,
        Err(e) => return Ok(Exit::Invalid(e.to_string())),
    };
    let ledger = ConfiguredLedger::from_config(&sdk, Some(&table));
    let entries = ledger
        .history(&account, kind, name.as_str(), usize::from(args.limit))
        .await
        .with_context(|| format!("reading the history from the ledger table {table}"))?;
    if args.json {
        print_json(&entries)?;
        return Ok(Exit::Ok);
    }
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str(&format!("no entries for {kind} {name} in {account}\n"));
    } else {
        out.push_str(&format!(
            "{} for {kind} {name} in {account}, newest first:\n",
            if entries.len() == 1 {
                "1 entry".to_owned()
            } else {
                format!("{} entries", entries.len())
            }
        ));
    }
    for e in &entries {
        let o = &e.outcome;
        let who = o
            .trigger
            .requested_by
            .clone()
            .or_else(|| o.trigger.finding_id.clone().map(|f| format!("finding {f}")))
            .unwrap_or_else(|| o.trigger.source.to_string());
        let cutoffs = match (o.previous_cutoff, o.cutoff) {
            (Some(p), Some(c)) if p != c => format!("cutoff {p} -> {c}"),
            (_, Some(c)) => format!("cutoff {c}"),
            (Some(p), None) => format!("cutoff was {p}"),
            (None, None) => "no cutoff".to_owned(),
        };
        out.push_str(&format!(
            "{}  {:<7} {:<15} {}  ({}; request {})\n",
            e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            e.action,
            o.status.as_str(),
            cutoffs,
            who,
            e.request_id
        ));
        if let Some(err) = &o.error {
            out.push_str(&format!("    {}: {}\n", err.kind, err.message));
        }
    }
    write!(std::io::stdout().lock(), "{out}").context("writing to standard output")?;
    Ok(Exit::Ok)
}
