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
use cutoff_aws::dynamodb::{AuditEntry, ConfiguredLedger, Ledger};
use cutoff_aws::sts::{SdkAccountAccess, discover_caller_and_time, discover_home_and_time};
use cutoff_domain::approval::{ApprovalNote, ApprovalState, stamp};
use cutoff_domain::clock::OffsetClock;
use cutoff_domain::event::{ManualAction, manual};
use cutoff_domain::outcome::{Outcome, RevocationRequest, Status};
use cutoff_domain::principal::{PrincipalName, clean_text};
use cutoff_domain::settings::TriageConfig;
use cutoff_domain::sweep_rules::humanize;
use serde_json::{Value, json};

use crate::Exit;
use crate::operator::OperatorUrl;

/// How to reach AWS.
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// AWS profile to use (default: the standard credential chain).
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,
    /// AWS region: where the stack is looked for, and STS's (IAM is global).
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
}

/// Where the request runs: through the deployed stack (the default), or here.
#[derive(Debug, Args)]
pub struct RouteArgs {
    /// The cutoff stack to act through: the request goes to its revoker's function URL
    /// (the output OperatorUrl), signed with your credentials, so AWS vouches for who
    /// asks and the deployment locks, audits and notifies it, with its own protected
    /// names [default: the only cutoff stack in the region]
    #[arg(long, value_name = "NAME", env = "CUTOFF_STACK")]
    stack: Option<String>,
    /// The revoker's function URL itself (the stack output OperatorUrl), for operators
    /// who may call it but not read the stack.
    #[arg(long, value_name = "URL", env = "CUTOFF_OPERATOR_URL")]
    url: Option<String>,
    /// Emergency only, when the stack itself is broken: act from this machine with your
    /// own credentials (home account, or a member role that trusts you). Nobody is
    /// notified, and only this environment's protected names (CUTOFF_PROTECTED) apply.
    #[arg(long)]
    direct: bool,
}

/// What a route resolves to before any call.
pub(crate) enum Route {
    /// The operator path, at the URL given or the named (or only) stack's.
    Stack {
        url: Option<String>,
        stack: Option<String>,
    },
    Direct,
}

impl RouteArgs {
    /// Checks the stack name and the URL; the error is an invalid argument's message.
    ///
    /// One of them is used, never both: a flag typed on the command line wins over a
    /// variable of the shell (an exported CUTOFF_OPERATOR_URL must not carry a
    /// `--stack cutoff-prod` request to another deployment), two typed flags or two
    /// variables are refused.
    pub(crate) fn route(&self) -> Result<Route, String> {
        // Whether a value was typed, rather than read from `variable` by clap (which
        // cannot tell): clap's own `conflicts_with` would also refuse a value from the
        // shell, exactly when the stack is broken and `--direct` is needed.
        let typed = |value: &Option<String>, variable: &str| {
            value
                .as_deref()
                .is_some_and(|v| std::env::var(variable).ok().as_deref() != Some(v))
        };
        let (stack_typed, url_typed) = (
            typed(&self.stack, "CUTOFF_STACK"),
            typed(&self.url, "CUTOFF_OPERATOR_URL"),
        );
        if self.direct {
            if stack_typed || url_typed {
                return Err(
                    "--direct acts from this machine, not through a stack: it takes no --stack or --url"
                        .to_owned(),
                );
            }
            return Ok(Route::Direct);
        }
        let stack = self.stack.clone().filter(|s| !s.is_empty());
        let url = self.url.clone().filter(|u| !u.is_empty());
        let (stack, url) = match (stack, url) {
            (Some(_), Some(_)) if stack_typed && url_typed => {
                return Err("give --stack or --url, not both".to_owned());
            }
            (Some(stack), Some(_)) if stack_typed => (Some(stack), None),
            (Some(_), Some(url)) if url_typed => (None, Some(url)),
            (Some(_), Some(_)) => {
                return Err(
                    "CUTOFF_STACK and CUTOFF_OPERATOR_URL are both set: unset one, or give --stack or --url"
                        .to_owned(),
                );
            }
            other => other,
        };
        let stack = stack
            .map(|s| crate::stack::parse_stack_name("--stack", &s))
            .transpose()?;
        if let Some(url) = &url {
            OperatorUrl::parse(url)?;
        }
        Ok(Route::Stack { url, stack })
    }
}

/// Says, before anything is done, what `--direct` gives up.
fn warn_direct(action: ManualAction) {
    let consequences = match action {
        ManualAction::Revoke | ManualAction::Release => {
            "nobody is notified; the deployment's protected names and account scope do not apply (only CUTOFF_PROTECTED and CUTOFF_ACCOUNTS, CUTOFF_ORGANIZATION_ID of this environment); without --ledger-table nothing is locked or audited"
        }
        ManualAction::Status | ManualAction::History => {
            "the answer is what your own credentials can read"
        }
    };
    eprintln!(
        "cutoff: --direct: {} from this machine with your credentials, NOT through the deployed stack: {consequences}. Use it only when the stack itself is broken.",
        action.as_str()
    );
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
    /// On whose behalf (--direct only: through the stack AWS says who asks; with
    /// --direct the caller STS names is recorded, and this beside it).
    #[arg(long, value_name = "WHO")]
    requested_by: Option<String>,
    /// Print the outcome JSON instead of the human summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    route: RouteArgs,
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
    route: RouteArgs,
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
    route: RouteArgs,
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

/// Sends a request through the operator path (the URL given, else the stack's) and
/// returns the revoker's JSON answer; `Err(message)` for what the operator can fix
/// with an argument.
async fn through_operator_path(
    aws: &AwsArgs,
    url: Option<&str>,
    stack: Option<&str>,
    payload: Value,
) -> anyhow::Result<Result<Value, String>> {
    let settings = match aws.settings() {
        Ok(settings) => settings,
        Err(message) => return Ok(Err(message)),
    };
    let sdk = match load_sdk_config_with(&settings.options).await {
        Ok(sdk) => sdk,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let url = match url {
        Some(url) => OperatorUrl::parse(url).map(|url| (url, None)),
        None => match crate::stack::find(&sdk, stack).await {
            Ok(found) => found.operator_url().map(|url| (url, Some(found.name))),
            Err(e) if e.is_argument() => Err(e.to_string()),
            Err(e) => return Err(anyhow::anyhow!(e)),
        },
    };
    let url = match url {
        Ok((url, stack)) => {
            // Which deployment acts is never left to guess, in a terminal or a log.
            match stack {
                Some(stack) => eprintln!("cutoff: through stack {stack} ({})", url.as_str()),
                None => eprintln!("cutoff: through {}", url.as_str()),
            }
            url
        }
        Err(message) => return Ok(Err(message)),
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

/// A read (status, history) through the operator path: the revoker's answer, or how
/// the command ends instead: an invalid argument, or a refusal, which the revoker
/// answers with a failed outcome rather than a report (printed here).
pub(crate) async fn report_through_operator_path(
    aws: &AwsArgs,
    (url, stack): (Option<String>, Option<String>),
    payload: Value,
    json: bool,
) -> anyhow::Result<Result<Value, Exit>> {
    let answer = match through_operator_path(aws, url.as_deref(), stack.as_deref(), payload).await?
    {
        Ok(answer) => answer,
        Err(message) => return Ok(Err(Exit::Invalid(message))),
    };
    if answer.get("status").is_some() {
        let outcome: Outcome = serde_json::from_value(answer)
            .context("the operator path answered something that is not an outcome")?;
        return print_outcome(&outcome, json).map(Err);
    }
    Ok(Ok(answer))
}

/// Says that a `--requested-by` is not sent on the operator path: the revoker records
/// the caller AWS verified, and an operator should not believe otherwise.
fn note_requested_by_unused(requested_by: &Option<String>) {
    if requested_by.is_some() {
        eprintln!(
            "note: --requested-by is not sent through the stack: AWS says who asks, and the revoker records the caller it verified"
        );
    }
}

/// A manual request through the operator path, its outcome printed.
pub(crate) async fn operator_outcome(
    aws: &AwsArgs,
    (url, stack): (Option<&str>, Option<&str>),
    payload: Result<Value, String>,
    json: bool,
) -> anyhow::Result<Exit> {
    let payload = match payload {
        Ok(p) => p,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let answer = match through_operator_path(aws, url, stack, payload).await? {
        Ok(answer) => answer,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let outcome: Outcome = serde_json::from_value(answer)
        .context("the operator path answered something that is not an outcome")?;
    print_outcome(&outcome, json)
}

/// Who asks in `--direct` mode: the caller AWS says the credentials are (never a name
/// typed on this machine alone), and on whose behalf when `--requested-by` says.
fn who(caller_arn: &str, requested_by: &Option<String>) -> String {
    match requested_by {
        Some(behalf) => format!("{caller_arn} (cutoff CLI --direct, for {behalf})"),
        None => format!("{caller_arn} (cutoff CLI --direct)"),
    }
}

/// Validates the request exactly as the revoker Lambda does.
fn request(
    mut value: Value,
    requested_by: Option<String>,
    reason: &Option<String>,
    dry_run: bool,
    force: bool,
) -> Result<RevocationRequest, String> {
    if let Value::Object(map) = &mut value {
        if let Some(who) = requested_by {
            map.insert("requested_by".into(), json!(who));
        }
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

/// The revoker in this process (`--direct`), and who AWS says the caller is.
async fn revoker(
    aws: &AwsArgs,
) -> anyhow::Result<
    Result<
        (
            Revoker<SdkAccountAccess, OffsetClock, ConfiguredLedger>,
            String,
        ),
        String,
    >,
> {
    let aws = match aws.settings() {
        Ok(aws) => aws,
        Err(message) => return Ok(Err(message)),
    };
    let sdk = match load_sdk_config_with(&aws.options).await {
        Ok(sdk) => sdk,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let (caller, seen) = discover_caller_and_time(&sdk)
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
    let partition = caller.partition;
    let access = SdkAccountAccess::new(
        &sdk,
        caller.account,
        partition,
        aws.member_role,
        aws.external_id,
    );
    let revoker = Revoker::new(
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
    .with_ledger(ledger);
    Ok(Ok((revoker, clean_text(&caller.arn, 400))))
}

pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("rendering JSON")?;
    writeln!(std::io::stdout().lock(), "{text}").context("writing to standard output")
}

pub(crate) fn print_outcome(outcome: &Outcome, json: bool) -> anyhow::Result<Exit> {
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
        if let Some(who) = &outcome.trigger.approved_by {
            line(&mut out, "approved by", format!("{who} (verified by AWS)"));
        }
        if let Some(approval) = &outcome.approval {
            approval_lines(&mut out, outcome, approval);
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

/// The approval lines of an outcome's summary: its id and state, the commands while it
/// is open, who decided it.
fn approval_lines(out: &mut String, outcome: &Outcome, a: &ApprovalNote) {
    let mut line = |label: &str, value: String| out.push_str(&format!("  {label:<14}{value}\n"));
    let when = match a.state {
        ApprovalState::Pending => format!(", expires {}", stamp(a.expires_at)),
        ApprovalState::Expired => format!(", expired {}", stamp(a.expires_at)),
        _ => String::new(),
    };
    line("approval", format!("{} ({}{when})", a.id, a.state));
    if outcome.status == Status::AwaitingApproval {
        line("to approve", format!("cutoff approve {}", a.id));
        line(
            "to refuse",
            format!("cutoff refuse {} --reason \"...\"", a.id),
        );
    }
    if let Some(by) = &a.decided_by {
        let at = a
            .decided_at
            .map_or_else(String::new, |t| format!(" at {}", stamp(t)));
        line("decided by", format!("{}{at}", clean_text(by, 300)));
    }
    if let Some(reason) = &a.reason {
        line("their reason", clean_text(reason, 300));
    }
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

/// A revoke or release: through the stack, or (`--direct`) here.
async fn act(
    route: &RouteArgs,
    aws: &AwsArgs,
    action: ManualAction,
    principal: &PrincipalArgs,
    scope: ScopeArg,
    flags: (&Option<String>, &Option<String>, bool, bool),
    json: bool,
) -> anyhow::Result<Exit> {
    let (reason, requested_by, dry_run, force) = flags;
    let route = match route.route() {
        Ok(route) => route,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let payload = payload(action, principal, scope_of(scope));
    let (url, stack) = match route {
        Route::Stack { url, stack } => (url, stack),
        Route::Direct => {
            // Checked before any call, `--requested-by` included.
            let req = match request(payload, requested_by.clone(), reason, dry_run, force) {
                Ok(r) => r,
                Err(message) => return Ok(Exit::Invalid(message)),
            };
            if let Err(message) = aws.settings() {
                return Ok(Exit::Invalid(message));
            }
            warn_direct(action);
            let (revoker, caller) = match revoker(aws).await? {
                Ok(r) => r,
                Err(message) => return Ok(Exit::Invalid(message)),
            };
            let mut req = req;
            req.trigger.requested_by = Some(who(&caller, requested_by));
            let outcome = revoker.handle(&req, &request_id()).await;
            return print_outcome(&outcome, json);
        }
    };
    note_requested_by_unused(requested_by);
    let payload = operator_payload(payload, reason, dry_run, force);
    operator_outcome(aws, (url.as_deref(), stack.as_deref()), payload, json).await
}

pub async fn revoke(args: &RevokeArgs) -> anyhow::Result<Exit> {
    let flags = (&args.reason, &args.requested_by, args.dry_run, false);
    let (route, aws, principal) = (&args.route, &args.aws, &args.principal);
    act(
        route,
        aws,
        ManualAction::Revoke,
        principal,
        args.scope,
        flags,
        args.json,
    )
    .await
}

pub async fn release(args: &ReleaseArgs) -> anyhow::Result<Exit> {
    let flags = (&args.reason, &args.requested_by, args.dry_run, args.force);
    let (route, aws, principal) = (&args.route, &args.aws, &args.principal);
    act(
        route,
        aws,
        ManualAction::Release,
        principal,
        args.scope,
        flags,
        args.json,
    )
    .await
}

pub async fn status(args: &StatusArgs) -> anyhow::Result<Exit> {
    let route = match args.route.route() {
        Ok(route) => route,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let payload = payload(ManualAction::Status, &args.principal, None);
    if let Route::Stack { url, stack } = route {
        let payload = match operator_payload(payload, &None, false, false) {
            Ok(p) => p,
            Err(message) => return Ok(Exit::Invalid(message)),
        };
        let answer = match report_through_operator_path(&args.aws, (url, stack), payload, args.json)
            .await?
        {
            Ok(answer) => answer,
            Err(exit) => return Ok(exit),
        };
        let report: StatusReport = serde_json::from_value(answer)
            .context("the operator path answered something that is not a status report")?;
        return print_status(&report, args.json);
    }
    let req = match request(payload, None, &None, false, false) {
        Ok(r) => r,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    if let Err(message) = args.aws.settings() {
        return Ok(Exit::Invalid(message));
    }
    warn_direct(ManualAction::Status);
    let (revoker, _) = match revoker(&args.aws).await? {
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

/// `cutoff history`: what cutoff did to one principal, newest first, from the ledger
/// (through the stack's revoker, or with --direct from the --ledger-table itself).
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
    route: RouteArgs,
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
    let route = match args.route.route() {
        Ok(route) => route,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let entries = match route {
        Route::Stack { url, stack } => {
            let payload = json!({
                "action": "history", "account": account.as_str(), kind: name.as_str(),
                "limit": args.limit,
            });
            let answer =
                match report_through_operator_path(&args.aws, (url, stack), payload, args.json)
                    .await?
                {
                    Ok(answer) => answer,
                    Err(exit) => return Ok(exit),
                };
            if answer["truncated"] == true {
                eprintln!(
                    "cutoff: older entries were left out to fit the revoker's answer (6 MB): ask for fewer with --limit"
                );
            }
            let entries = answer.get("history").cloned().unwrap_or(Value::Null);
            serde_json::from_value::<Vec<AuditEntry>>(entries)
                .context("the operator path answered something that is not a history")?
        }
        Route::Direct => {
            let aws = match args.aws.settings() {
                Ok(aws) => aws,
                Err(message) => return Ok(Exit::Invalid(message)),
            };
            let Some(table) = aws.ledger_table.clone() else {
                return Ok(Exit::Invalid(
                    "with --direct the history is read from the ledger itself: give --ledger-table or set CUTOFF_LEDGER_TABLE"
                        .to_owned(),
                ));
            };
            warn_direct(ManualAction::History);
            let sdk = match load_sdk_config_with(&aws.options).await {
                Ok(sdk) => sdk,
                Err(e) => return Ok(Exit::Invalid(e.to_string())),
            };
            let ledger = ConfiguredLedger::from_config(&sdk, Some(&table));
            ledger
                .history(&account, kind, name.as_str(), usize::from(args.limit))
                .await
                .with_context(|| format!("reading the history from the ledger table {table}"))?
        }
    };
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
        // Whether AWS vouched for the requester is said, as in `revoke`'s output: a
        // plain invoke's requester is only what it claimed.
        let who = match (&o.trigger.requested_by, &o.trigger.finding_id) {
            (Some(who), _) if o.trigger.requested_by_verified => format!("{who}, verified"),
            (Some(who), _) => format!("{who}, claimed"),
            (None, Some(finding)) => format!("finding {finding}"),
            (None, None) => o.trigger.source.to_string(),
        };
        let cutoffs = match (o.previous_cutoff, o.cutoff) {
            (Some(p), Some(c)) if p != c => format!("cutoff {p} -> {c}"),
            (_, Some(c)) => format!("cutoff {c}"),
            (Some(p), None) => format!("cutoff was {p}"),
            (None, None) => "no cutoff".to_owned(),
        };
        out.push_str(&format!(
            "{}  {:<7} {:<17} {}  ({}; request {})\n",
            e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            clean_text(&e.action, 16),
            o.status.as_str(),
            cutoffs,
            clean_text(&who, 300),
            clean_text(&e.request_id, 100)
        ));
        if let Some(err) = &o.error {
            out.push_str(&format!(
                "    {}: {}\n",
                err.kind,
                clean_text(&err.message, 500)
            ));
        }
    }
    write!(std::io::stdout().lock(), "{out}").context("writing to standard output")?;
    Ok(Exit::Ok)
}
