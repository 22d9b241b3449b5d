//! `cutoff doctor`: checks a deployed cutoff stack with the operator's own credentials
//! and says, for each failure, how to fix it.
//!
//! The checks are pure functions of facts gathered first (the stack, the rules, the
//! queues' depths, the topic's subscriptions, the revoker's self-check answer), so
//! every pass/fail branch is tested without AWS; the gathering below them only calls
//! AWS and judges nothing. An AWS error is a fact too: a failed check, never a crash.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context;
use aws_config::{Region, SdkConfig};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use clap::Args;
use cutoff_aws::config::{SdkOptions, load_sdk_config_with};
use cutoff_aws::sts::discover_home_and_time;
use cutoff_domain::principal::{Account, clean_text, excerpt};
use cutoff_domain::self_check::{AccountCheck, Expected, ProbeResult, Unreachable};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Exit;
use crate::operator::{ANSWER_WAIT, OperatorUrl};
use crate::progress::Progress;
use crate::revoke::{DISCOVER_HOME_CONTEXT, aws_clock, print_json};

/// Check a deployed cutoff stack: its status and outputs, the EventBridge rules, the
/// forwarders of other regions, the queues, the security topic's subscriptions, and
/// (through the operator path) the revoker's own view of each account.
///
/// Prints one PASS / WARN / FAIL line per check, with the fix of each failure. Exits 0
/// when nothing failed (warnings included), 1 when a check failed, 2 for invalid
/// arguments (nothing is called).
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The cutoff stack (infra/template.yaml) in the home region [default: the only
    /// cutoff stack there]
    #[arg(long, value_name = "NAME", env = "CUTOFF_STACK")]
    stack: Option<String>,
    /// The home region, where the stack runs [default: the AWS configuration's].
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// Other regions where infra/forwarder.yaml is deployed, comma-separated.
    #[arg(long, value_name = "REGION,...", value_delimiter = ',')]
    regions: Vec<String>,
    /// Accounts (12 digits, comma-separated) where the revoker checks that it can
    /// revoke [default: your own, the security account].
    #[arg(long, value_name = "ACCOUNT,...", value_delimiter = ',')]
    accounts: Vec<String>,
    /// The revoker's function URL [default: the stack output OperatorUrl].
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Skip the revoker's self-check (the operator path needs break-glass credentials).
    #[arg(long, conflicts_with_all = ["accounts", "url"])]
    no_self_check: bool,
    /// Print {"passed", "checks": [{"name", "status", "detail", "fix"}]} as JSON.
    #[arg(long)]
    json: bool,
    /// AWS profile to use (default: the standard credential chain).
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Send every AWS call to this endpoint (a local stand-in); AWS_ENDPOINT_URL works too.
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
}

// ---- The checks: pure functions of the gathered facts -------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Worth a look; does not change the exit code.
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    fn new(status: Status, name: impl Into<String>, detail: impl Into<String>) -> Self {
        let (name, detail, fix) = (name.into(), detail.into(), None);
        Check {
            name,
            status,
            detail,
            fix,
        }
    }
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(Status::Pass, name, detail)
    }
    fn with_fix(self, fix: impl Into<String>) -> Self {
        let fix = Some(fix.into());
        Check { fix, ..self }
    }
    fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(Status::Warn, name, detail).with_fix(fix)
    }
    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(Status::Fail, name, detail).with_fix(fix)
    }
    /// Passes when there is nothing to fix.
    fn judged(name: impl Into<String>, detail: impl Into<String>, fix: Option<String>) -> Self {
        match fix {
            Some(fix) => Self::fail(name, detail, fix),
            None => Self::pass(name, detail),
        }
    }
}

/// What `cloudformation:DescribeStacks` said about the stack.
#[derive(Debug, Clone)]
pub enum StackFacts {
    Found(Stack),
    /// Not in this region (named).
    NotFound(String),
    Unreadable(String),
}

#[derive(Debug, Clone)]
pub struct Stack {
    pub stack_id: String,
    pub status: String,
    pub outputs: BTreeMap<String, String>,
    /// The stack's parameters (DryRun among them).
    pub parameters: BTreeMap<String, String>,
}

/// The outputs the checks need (infra/template.yaml's `Outputs:`).
const REQUIRED_OUTPUTS: [&str; 8] = [
    "NamePrefix",
    "IntakeFunctionArn",
    "RevokerFunctionArn",
    "OperatorUrl",
    "RequestQueueUrl",
    "RequestDeadLetterQueueUrl",
    "FailureQueueUrl",
    "SecurityTopicArn",
];

/// The deployed stack as the later checks need it: its outputs, and where it lives
/// (from its ARN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub outputs: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
}

impl Deployment {
    /// An output's value; empty for an optional one the stack does not have.
    fn output(&self, key: &str) -> &str {
        self.outputs.get(key).map_or("", String::as_str)
    }
    fn prefix(&self) -> &str {
        self.output("NamePrefix")
    }
}

/// The stack's status and outputs, and the deployment when every output is there (a
/// stack rolled back to its previous version still has them: the rest is checked).
pub fn stack_checks(name: &str, facts: &StackFacts) -> (Vec<Check>, Option<Deployment>) {
    let label = format!("stack {name}");
    let stack = match facts {
        StackFacts::Found(stack) => stack,
        StackFacts::NotFound(region) => {
            let fix = "deploy infra/template.yaml (infra/README.md), or give the deployed stack's --stack and --region";
            let detail = format!("does not exist in {region}; nothing else can be checked");
            return (vec![Check::fail(label, detail, fix)], None);
        }
        StackFacts::Unreadable(why) => {
            let fix = "check that your credentials may call cloudformation:DescribeStacks";
            return (vec![Check::fail(label, why, fix)], None);
        }
    };
    let status = clean_text(&stack.status, 60);
    let fix = if status.ends_with("_IN_PROGRESS") {
        Some(format!(
            "an operation is under way: wait until `aws cloudformation describe-stacks --stack-name {name}` ends in _COMPLETE"
        ))
    } else if status.starts_with("DELETE") {
        Some("the stack is deleted: deploy infra/template.yaml again (LedgerTableName keeps the retained ledger)".to_owned())
    } else if !status.ends_with("_COMPLETE") || status.contains("ROLLBACK") {
        Some(format!(
            "the last deployment failed: find the failed resource in `aws cloudformation describe-stack-events --stack-name {name}`, fix it and deploy again"
        ))
    } else {
        None
    };
    let mut checks = vec![Check::judged(&label, status, fix)];
    // The first deploy runs in DryRun (infra/samconfig.toml): say so every time, so
    // that a stack left in it, or switched back to it by a later deploy, is noticed.
    if stack.parameters.get("DryRun").map(String::as_str) == Some("true") {
        checks.push(Check::warn(
            "dry run",
            "DryRun=true: cutoff computes and reports every revocation and writes none",
            "once the sample findings and a test revocation look right, deploy with DryRun=false (and set it in infra/samconfig.toml, or the next sam deploy turns it back on)",
        ));
    }
    let missing: Vec<&str> = REQUIRED_OUTPUTS
        .into_iter()
        .filter(|k| !stack.outputs.contains_key(*k))
        .collect();
    // arn:<partition>:cloudformation:<region>:<account>:stack/<name>/<id>
    let arn: Vec<&str> = stack.stack_id.splitn(6, ':').collect();
    let deployment = match arn.as_slice() {
        ["arn", partition, "cloudformation", region, account, _]
            if missing.is_empty() && Account::parse(account).is_ok() =>
        {
            // They reach the terminal: valid ARNs and URLs have no control character,
            // so cleaning changes none of them.
            let outputs = stack
                .outputs
                .iter()
                .map(|(k, v)| (k.clone(), clean_text(v, 2048)));
            Some(Deployment {
                partition: clean_text(partition, 20),
                region: clean_text(region, 40),
                account: (*account).to_owned(),
                outputs: outputs.collect(),
                parameters: stack.parameters.clone(),
            })
        }
        _ => None,
    };
    let detail = match (&deployment, missing.is_empty()) {
        (Some(d), _) => format!("all there (NamePrefix {})", clean_text(d.prefix(), 40)),
        (None, false) => format!(
            "missing {}: not cutoff's stack, or an old one",
            missing.join(", ")
        ),
        (None, true) => format!(
            "the stack id {} is not a stack ARN",
            excerpt(&stack.stack_id)
        ),
    };
    let fix = "deploy the current infra/template.yaml (sam deploy), or give cutoff's --stack";
    checks.push(Check::judged(
        "stack outputs",
        detail,
        deployment.is_none().then(|| fix.to_owned()),
    ));
    (checks, deployment)
}

/// One EventBridge rule of the default bus and its targets' ARNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub state: String,
    pub targets: Vec<String>,
}

/// The default bus's rules named `<prefix>-*` in one region, by name.
pub type RuleFacts = Result<BTreeMap<String, Rule>, String>;

const CAN_READ_RULES: &str =
    "check that your credentials may call events:ListRules and events:ListTargetsByRule there";

/// infra/template.yaml's opt-in rules: checked when they exist.
/// The opt-in rules, and the stack parameter that creates each (a parameter the
/// stack does not report leaves the rule checked only when it exists).
const OPTIONAL_RULES: [(&str, &str); 4] = [
    ("securityhub-action", "SecurityHubCustomAction"),
    ("securityhub-imported", "SecurityHubImported"),
    ("securityhub-v2", "SecurityHubV2"),
    ("cloudtrail-calls", "CloudTrailEventNames"),
];

/// Whether the stack's parameters ask for an opt-in rule: "true", or any event name.
fn opted_in(d: &Deployment, parameter: &str) -> Option<bool> {
    let value = d.parameters.get(parameter)?;
    Some(match parameter {
        "CloudTrailEventNames" => !value.trim().is_empty(),
        _ => value == "true",
    })
}

/// A rule that must exist, be enabled and target `target` (`what`, in words).
fn rule_check(
    name: &str,
    region: &str,
    rule: Option<&Rule>,
    target: &str,
    what: &str,
    deploy: &str,
) -> Check {
    let label = format!("rule {name} ({region})");
    let Some(rule) = rule else {
        return Check::fail(label, "does not exist on the default event bus", deploy);
    };
    // ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS is enabled too.
    if !rule.state.starts_with("ENABLED") {
        let detail = format!("{}: it matches nothing", clean_text(&rule.state, 60));
        return Check::fail(
            label,
            detail,
            format!("aws events enable-rule --name {name} --region {region}"),
        );
    }
    if !rule.targets.iter().any(|t| t == target) {
        let found = clean_text(&rule.targets.join(", "), 300);
        let detail = format!("ENABLED, but its targets [{found}] are not {what} {target}");
        return Check::fail(label, detail, deploy);
    }
    Check::pass(label, format!("ENABLED, targets {what}"))
}

/// The home region's rules: the GuardDuty rule must feed intake, and so must the
/// opt-in ones that exist.
pub fn home_rule_checks(d: &Deployment, rules: &RuleFacts) -> Vec<Check> {
    let rules = match rules {
        Ok(rules) => rules,
        Err(why) => {
            return vec![Check::fail(
                format!("rules ({})", d.region),
                why,
                CAN_READ_RULES,
            )];
        }
    };
    let deploy =
        "deploy infra/template.yaml again (sam deploy): it creates the rule and its target";
    let intake = d.output("IntakeFunctionArn");
    let check = |name: &str| rule_check(name, &d.region, rules.get(name), intake, "intake", deploy);
    let mut checks = vec![check(&format!("{}-guardduty-findings", d.prefix()))];
    for (suffix, parameter) in OPTIONAL_RULES {
        let name = format!("{}-{suffix}", d.prefix());
        // Opted in: the rule must be there. Not opted in (or not known): checked when
        // someone made it anyway.
        if opted_in(d, parameter) == Some(true) || rules.contains_key(&name) {
            checks.push(check(&name));
        }
    }
    checks
}

/// Another region's forwarder: its GuardDuty rule must put on the home region's
/// default bus, and its dead-letter queue must be empty.
pub fn forwarder_checks(
    d: &Deployment,
    region: &str,
    rules: &RuleFacts,
    dlq: &QueueFacts,
) -> Vec<Check> {
    let name = format!("{}-forward-guardduty", d.prefix());
    let bus = format!(
        "arn:{}:events:{}:{}:event-bus/default",
        d.partition, d.region, d.account
    );
    let deploy = format!(
        "deploy infra/forwarder.yaml in {region} (a StackSet instance; ResponderRegion={}, NamePrefix={})",
        d.region,
        d.prefix()
    );
    let rule = match rules {
        Ok(rules) => rule_check(
            &name,
            region,
            rules.get(&name),
            &bus,
            "the home bus",
            &deploy,
        ),
        Err(why) => Check::fail(format!("rule {name} ({region})"), why, CAN_READ_RULES),
    };
    vec![rule, queue_check(d.prefix(), dlq)]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    Requests,
    RequestDeadLetter,
    Failures,
    SweepDeadLetter,
    ForwarderDeadLetter,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Depth {
    /// Approximate messages: visible, in flight and delayed.
    Messages(u64),
    Missing,
    Unreadable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFacts {
    pub kind: QueueKind,
    pub name: String,
    pub region: String,
    pub depth: Depth,
}

/// Dead-letter and failure queues must be empty. The request queue's backlog is only a
/// warning: whether it is stuck is its age, which CloudWatch has (an alarm covers it).
pub fn queue_check(prefix: &str, q: &QueueFacts) -> Check {
    use QueueKind::*;
    let label = format!("queue {} ({})", clean_text(&q.name, 90), q.region);
    let n = match &q.depth {
        Depth::Messages(n) => *n,
        Depth::Missing if q.kind == ForwarderDeadLetter => {
            let fix = format!("deploy infra/forwarder.yaml in {}", q.region);
            return Check::fail(label, "does not exist", fix);
        }
        Depth::Missing => {
            let fix = "a stack output names a deleted queue: deploy infra/template.yaml again";
            return Check::fail(label, "does not exist", fix);
        }
        Depth::Unreadable(why) => {
            let fix =
                "check that your credentials may call sqs:GetQueueUrl and sqs:GetQueueAttributes";
            return Check::fail(label, why, fix);
        }
    };
    let messages = if n == 1 {
        "1 message".to_owned()
    } else {
        format!("{n} messages")
    };
    let stale = format!(
        "the {prefix}-request-queue-stale alarm (CloudWatch) watches how long requests wait"
    );
    let (detail, fix) = match q.kind {
        Requests if n == 0 => return Check::pass(label, format!("empty; {stale}")),
        Requests => {
            let detail = format!("{messages} waiting (being worked on, or stuck); {stale}");
            let fix = format!("if it does not drain within minutes, read /aws/lambda/{prefix}-revoker");
            return Check::warn(label, detail, fix);
        }
        _ if n == 0 => return Check::pass(label, "empty"),
        RequestDeadLetter => (
            "revocation requests that failed every attempt",
            format!("read why in /aws/lambda/{prefix}-revoker and the failure outcome on the security topic, fix the cause, then move them back with the redrive role (infra/README.md \"Redrive failed requests\", docs/reliability.md)"),
        ),
        Failures => (
            "events intake, the notifier or a rule could not deliver or process",
            "read them (aws sqs receive-message), fix the cause (docs/reliability.md), then send each again where it failed, or delete it".to_owned(),
        ),
        SweepDeadLetter => (
            "sweep tasks that failed three times",
            format!("read why in /aws/lambda/{prefix}-sweeper, fix the cause, then move them back (aws sqs start-message-move-task; docs/sweep.md)"),
        ),
        ForwarderDeadLetter => (
            "findings EventBridge could not forward to the home region",
            format!("check that the role {prefix}-{}-forwarder may events:PutEvents on the home region's default bus; the messages are the findings: triage them by hand (cutoff triage), then delete them", q.region),
        ),
    };
    Check::fail(label, format!("{messages}: {detail}"), fix)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub protocol: String,
    pub endpoint: String,
    pub confirmed: bool,
}

/// The security topic's subscriptions (`sns:ListSubscriptionsByTopic`).
pub type TopicFacts = Result<Vec<Subscription>, String>;

/// Every outcome and alarm goes to the security topic: nobody confirmed, nobody hears.
pub fn topic_check(topic_arn: &str, facts: &TopicFacts) -> Check {
    let label = format!(
        "topic {}",
        clean_text(topic_arn.rsplit(':').next().unwrap_or_default(), 90)
    );
    let subscriptions = match facts {
        Ok(subscriptions) => subscriptions,
        Err(why) => {
            let fix = "check that your credentials may call sns:ListSubscriptionsByTopic";
            return Check::fail(label, why, fix);
        }
    };
    let list = |confirmed: bool| -> Vec<String> {
        let shown = subscriptions.iter().filter(|s| s.confirmed == confirmed);
        shown
            .map(|s| clean_text(&format!("{} {}", s.protocol, s.endpoint), 120))
            .collect()
    };
    let (confirmed, pending) = (list(true), list(false));
    let mut detail = match confirmed.len() {
        0 => "no confirmed subscription: nobody receives outcomes and alarms".to_owned(),
        n => format!("{n} confirmed ({})", confirmed.join(", ")),
    };
    if !pending.is_empty() {
        let _ = write!(detail, "; waiting for confirmation: {}", pending.join(", "));
    }
    let fix = confirmed.is_empty().then(|| format!("confirm the subscription e-mail (its link), or subscribe the on-call: aws sns subscribe --topic-arn {topic_arn} --protocol email --notification-endpoint <address>"));
    Check::judged(label, detail, fix)
}

const OPERATOR_PATH: &str = "operator path";
const FORMAT_FIX: &str = "the revoker and this CLI disagree on the self-check: use the CLI of the deployed version, or deploy the current infra/template.yaml";
const MEMBER_ROLE_FIX: &str = "deploy infra/member-role.yaml to the account (the StackSet); check the role's trust policy (the responder's account and NamePrefix), that both sides use the same ExternalId, and that no SCP or permission boundary denies sts:AssumeRole";
const SCOPE_FIX: &str = "the revoker may not act there: add the account to the stack's AllowedAccounts (or move it into its OrganizationId), or drop it from --accounts";
const OWN_ROLE_FIX: &str =
    "deploy the current infra/template.yaml: it tells the revoker its own role (CUTOFF_ROLE_ARN)";
const OVERREACH_FIX: &str = "the role may do what it must not (touch itself, grant, delete evidence): redeploy the current infra/member-role.yaml, whose Deny statements forbid it, and look for a policy someone attached to the role";
const CONTEXT_FIX: &str = "read the SCPs and permission boundaries that use these keys: the simulated answer assumed them absent, and a real revocation carries them";
const PROBE_FIX: &str = "the role cannot do what a revocation needs: redeploy infra/member-role.yaml (the StackSet) to the account, and look for an SCP or permission boundary that denies these actions";

/// The revoker's answer to `{"action":"self_check"}`: one check per account. It comes
/// from the network: anything unexpected is a failed check, and its text is cleaned
/// before it reaches the terminal.
pub fn self_check_checks(
    url: &str,
    home: &Account,
    asked: &[Account],
    answer: &Value,
) -> Vec<Check> {
    let Some(report) = answer.get("self_check") else {
        let detail = match answer.get("status").and_then(Value::as_str) {
            // A refused request is answered with an outcome.
            Some(status) => {
                let why = [answer.get("detail"), answer.pointer("/error/message")];
                let why = why
                    .into_iter()
                    .flatten()
                    .find_map(Value::as_str)
                    .unwrap_or("no detail");
                format!(
                    "the revoker answered {}: {}",
                    clean_text(status, 30),
                    clean_text(why, 300)
                )
            }
            None => format!("not a self-check: {}", clean_text(&answer.to_string(), 200)),
        };
        return vec![Check::fail(OPERATOR_PATH, detail, FORMAT_FIX)];
    };
    let member_role = report
        .get("member_role")
        .and_then(Value::as_str)
        .unwrap_or("the member role");
    let member_role = clean_text(member_role, 64);
    let passed = report.get("passed").and_then(Value::as_bool);
    let (Some(passed), Some(entries)) = (passed, report.get("accounts").and_then(Value::as_array))
    else {
        let shown = clean_text(&report.to_string(), 200);
        let detail =
            format!("the self-check has no boolean \"passed\" or no \"accounts\" list: {shown}");
        return vec![Check::fail(OPERATOR_PATH, detail, FORMAT_FIX)];
    };
    let answered_at = format!("the revoker answered the signed self-check at {url}");
    let mut checks = vec![Check::pass(OPERATOR_PATH, answered_at)];
    let mut answered = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        // The revoker's own type: the contract cannot drift (an answer of another
        // version that does not read is a failed check, not a panic).
        match AccountCheck::deserialize(entry) {
            Ok(account) => {
                // At home the revoker acts with its own role, not the member role.
                let role = if account.account == home.as_str() {
                    "its own role"
                } else {
                    &member_role
                };
                checks.push(account_check(&account, role));
                answered.push(account.account);
            }
            Err(e) => {
                let detail = format!("not understood: {}", clean_text(&e.to_string(), 200));
                checks.push(Check::fail(
                    format!("self-check entry {}", i + 1),
                    detail,
                    FORMAT_FIX,
                ));
            }
        }
    }
    for account in asked
        .iter()
        .filter(|a| !answered.iter().any(|b| b == a.as_str()))
    {
        let detail = "the revoker did not report it";
        checks.push(Check::fail(
            format!("self-check account {account}"),
            detail,
            FORMAT_FIX,
        ));
    }
    if !passed && checks.iter().all(|c| c.status != Status::Fail) {
        let detail = "the revoker reports a failure no account explains";
        checks.push(Check::fail("self-check", detail, FORMAT_FIX));
    }
    checks
}

fn account_check(a: &AccountCheck, role: &str) -> Check {
    let label = format!("self-check account {}", clean_text(&a.account, 40));
    let error = a.error.as_deref().map(|e| clean_text(e, 300));
    let why = error.as_deref().unwrap_or("no error given");
    match a.unreachable {
        Some(Unreachable::OutOfScope) => {
            return Check::fail(label, format!("not checked: {why}"), SCOPE_FIX);
        }
        Some(Unreachable::NoOwnRole) => {
            return Check::fail(label, format!("not checked: {why}"), OWN_ROLE_FIX);
        }
        Some(Unreachable::OutOfTime) => {
            let fix = "run cutoff doctor again with fewer --accounts at once";
            return Check::fail(label, format!("not checked: {why}"), fix);
        }
        _ if !a.assumed => {
            return Check::fail(
                label,
                format!("could not assume {role}: {why}"),
                MEMBER_ROLE_FIX,
            );
        }
        _ => {}
    }
    let good = a.probes.iter().filter(|p| p.passed).count();
    let mut detail = format!(
        "assumed {role}; {good}/{} probes as expected",
        a.probes.len()
    );
    let failing: Vec<String> = a
        .probes
        .iter()
        .filter(|p| !p.passed)
        .map(probe_text)
        .collect();
    let mut lacking: Vec<String> = a
        .probes
        .iter()
        .flat_map(|p| &p.missing_context)
        .map(|k| clean_text(k, 80))
        .collect();
    lacking.sort();
    lacking.dedup();
    if failing.is_empty() && a.passed && !a.probes.is_empty() {
        if lacking.is_empty() {
            return Check::pass(label, detail);
        }
        let _ = write!(
            detail,
            "; but a policy in force conditions on {}, which the simulator was not given",
            lacking.join(", ")
        );
        return Check::warn(label, detail, CONTEXT_FIX);
    }
    if !failing.is_empty() {
        let _ = write!(detail, ": {}", failing.join("; "));
    }
    match error {
        Some(error) => {
            let _ = write!(detail, "; error: {error}");
        }
        None if failing.is_empty() => detail.push_str("; the revoker reports the account failed"),
        None => {}
    }
    // A write that should work and does not, or one that must not work and does: each
    // has its own fix.
    let short = a
        .probes
        .iter()
        .any(|p| !p.passed && p.expected == Expected::Allowed);
    let over = a
        .probes
        .iter()
        .any(|p| !p.passed && p.expected == Expected::Denied);
    let fix = match (short, over) {
        (false, true) => OVERREACH_FIX.to_owned(),
        (true, true) => format!("{PROBE_FIX}; and {OVERREACH_FIX}"),
        _ => PROBE_FIX.to_owned(),
    };
    Check::fail(label, detail, fix)
}

fn probe_text(p: &ProbeResult) -> String {
    let decision = match (p.decision, &p.error) {
        (Some(decision), _) => decision.as_str().to_owned(),
        (None, Some(error)) => format!("no decision ({})", clean_text(error, 200)),
        (None, None) => "no decision".to_owned(),
    };
    let why = match p.why.as_str() {
        "" => String::new(),
        why => format!(" [{}]", clean_text(why, 120)),
    };
    let (action, resource) = (clean_text(&p.action, 80), clean_text(&p.resource, 200));
    let expected = p.expected.as_str();
    format!("{action} on {resource}: expected {expected}, got {decision}{why}")
}

/// The operator path could not be used: the fix depends on who refused.
pub fn unreachable_check(error: &str) -> Check {
    let fix = if error.contains("(403)") {
        "AWS refused your credentials: are you one of the stack's OperatorPrincipalArns, signed in with MFA within the hour? Deploy infra/break-glass.yaml and use its operator role (infra/README.md, Break-glass)"
    } else {
        "check the URL (the stack output OperatorUrl) and your network; the operator path admits only OperatorPrincipalArns (infra/break-glass.yaml)"
    };
    Check::fail(OPERATOR_PATH, clean_text(error, 400), fix)
}

pub fn render_text(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let label = match c.status {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        let _ = writeln!(out, "{label}  {}: {}", c.name, c.detail);
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "      fix: {fix}");
        }
    }
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let (passed, warned, failed) = (
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail),
    );
    let _ = writeln!(out, "{passed} passed, {warned} warnings, {failed} failed");
    out
}

// ---- Arguments, checked before any AWS call -----------------------------------------

struct Plan {
    /// None: the only cutoff stack of the region.
    stack: Option<String>,
    options: SdkOptions,
    regions: Vec<String>,
    accounts: Vec<Account>,
    /// `--url`, and its text to show.
    url: Option<(OperatorUrl, String)>,
    self_check: bool,
}

fn parse_region(flag: &str, input: &str) -> Result<String, String> {
    // <area>-<place>[-<place>...]-<n>: us-east-1, us-gov-west-1, ap-southeast-5.
    let parts: Vec<&str> = input.split('-').collect();
    let letters = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    let number = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let ok = input.len() <= 32
        && parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1].iter().all(letters)
        && parts.last().is_some_and(number);
    let bad = || {
        format!(
            "{flag} {}: expected a region such as eu-west-1",
            excerpt(input)
        )
    };
    ok.then(|| input.to_owned()).ok_or_else(bad)
}

fn plan(args: &DoctorArgs) -> Result<Plan, String> {
    let stack = args
        .stack
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| crate::stack::parse_stack_name("--stack", s))
        .transpose()?;
    let region = args
        .region
        .as_deref()
        .map(|r| parse_region("--region", r))
        .transpose()?;
    let mut regions = Vec::new();
    for item in &args.regions {
        let region = parse_region("--regions", item.trim())?;
        if !regions.contains(&region) {
            regions.push(region);
        }
    }
    let mut accounts = Vec::new();
    for item in &args.accounts {
        let account = Account::parse(item.trim()).map_err(|e| format!("--accounts: {e}"))?;
        if !accounts.contains(&account) {
            accounts.push(account);
        }
    }
    // The revoker refuses more: each account costs time inside its 90 s timeout.
    let most = cutoff_domain::self_check::MAX_ACCOUNTS;
    if accounts.len() > most {
        return Err(format!(
            "--accounts: at most {most} accounts per self-check"
        ));
    }
    if let Some(url) = &args.endpoint_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(format!(
            "--endpoint-url {}: expected http:// or https://",
            excerpt(url)
        ));
    }
    let url = match &args.url {
        Some(text) => Some((OperatorUrl::parse(text)?, text.clone())),
        None => None,
    };
    let (profile, endpoint_url) = (args.profile.clone(), args.endpoint_url.clone());
    let options = SdkOptions {
        profile,
        region,
        endpoint_url,
    };
    let self_check = !args.no_self_check;
    Ok(Plan {
        stack,
        options,
        regions,
        accounts,
        url,
        self_check,
    })
}

// ---- Gathering the facts: AWS calls only, no judgement ------------------------------

/// Pages read from a list call before giving up: a runaway NextToken must not hang.
const MAX_PAGES: usize = 20;

fn aws_error<E, R>(operation: &str, err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let why = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(err).to_string(),
    };
    format!("{operation}: {}", clean_text(&why, 300))
}

async fn stack_facts(sdk: &SdkConfig, name: &str) -> StackFacts {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let not_found = || StackFacts::NotFound(sdk.region().map_or("", |r| r.as_ref()).to_owned());
    let out = match cfn.describe_stacks().stack_name(name).send().await {
        Ok(out) => out,
        // CloudFormation says "Stack with id <name> does not exist" (ValidationError).
        Err(e) if e.message().is_some_and(|m| m.contains("does not exist")) => {
            return not_found();
        }
        Err(e) => return StackFacts::Unreadable(aws_error("cloudformation:DescribeStacks", &e)),
    };
    let Some(stack) = out.stacks().first() else {
        return not_found();
    };
    let outputs = stack.outputs().iter();
    let parameters = stack.parameters().iter();
    StackFacts::Found(Stack {
        stack_id: stack.stack_id().unwrap_or_default().to_owned(),
        status: stack.stack_status().map_or("", |s| s.as_str()).to_owned(),
        outputs: outputs
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect(),
        parameters: parameters
            .filter_map(|p| {
                Some((
                    p.parameter_key()?.to_owned(),
                    p.parameter_value()?.to_owned(),
                ))
            })
            .collect(),
    })
}

async fn rule_facts(sdk: &SdkConfig, prefix: &str) -> RuleFacts {
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let mut rules = BTreeMap::new();
    let mut token = None;
    for _ in 0..MAX_PAGES {
        let list = events
            .list_rules()
            .name_prefix(format!("{prefix}-"))
            .event_bus_name("default");
        let page = list.set_next_token(token).send().await;
        let page = page.map_err(|e| aws_error("events:ListRules", &e))?;
        for rule in page.rules() {
            let Some(name) = rule.name() else { continue };
            // A rule has at most five targets: one page.
            let targets = events
                .list_targets_by_rule()
                .rule(name)
                .event_bus_name("default");
            let targets = targets.send().await;
            let targets = targets.map_err(|e| aws_error("events:ListTargetsByRule", &e))?;
            let state = rule.state().map_or("no state", |s| s.as_str()).to_owned();
            let targets = targets
                .targets()
                .iter()
                .map(|t| t.arn().to_owned())
                .collect();
            rules.insert(name.to_owned(), Rule { state, targets });
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(rules)
}

/// Every message of a queue: visible, in flight (someone is reading it) and delayed. A
/// dead-letter queue being read at the moment of the check is not empty.
async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Depth {
    let attributes = [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    ];
    let ask = sqs
        .get_queue_attributes()
        .queue_url(url)
        .set_attribute_names(Some(attributes.to_vec()));
    match ask.send().await {
        Ok(out) => {
            let mut total = 0u64;
            for attribute in &attributes {
                let value = out.attributes().and_then(|a| a.get(attribute));
                match value.map(|n| n.parse::<u64>()) {
                    Some(Ok(n)) => total = total.saturating_add(n),
                    Some(Err(_)) | None => {
                        return Depth::Unreadable(format!(
                            "{}: {}",
                            attribute.as_str(),
                            value.map_or("missing".to_owned(), |v| excerpt(v))
                        ));
                    }
                }
            }
            Depth::Messages(total)
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_does_not_exist()) =>
        {
            Depth::Missing
        }
        Err(e) => Depth::Unreadable(aws_error("sqs:GetQueueAttributes", &e)),
    }
}

async fn forwarder_dlq_facts(sdk: &SdkConfig, region: &str, prefix: &str) -> QueueFacts {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let name = format!("{prefix}-forwarder-dlq");
    let depth = match sqs.get_queue_url().queue_name(&name).send().await {
        Ok(out) => depth(&sqs, out.queue_url().unwrap_or_default()).await,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_does_not_exist()) =>
        {
            Depth::Missing
        }
        Err(e) => Depth::Unreadable(aws_error("sqs:GetQueueUrl", &e)),
    };
    let (kind, region) = (QueueKind::ForwarderDeadLetter, region.to_owned());
    QueueFacts {
        kind,
        name,
        region,
        depth,
    }
}

async fn topic_facts(sdk: &SdkConfig, topic_arn: &str) -> TopicFacts {
    let sns = aws_sdk_sns::Client::new(sdk);
    let mut subscriptions = Vec::new();
    let mut token = None;
    for _ in 0..MAX_PAGES {
        let list = sns.list_subscriptions_by_topic().topic_arn(topic_arn);
        let page = list.set_next_token(token).send().await;
        let page = page.map_err(|e| aws_error("sns:ListSubscriptionsByTopic", &e))?;
        for s in page.subscriptions() {
            subscriptions.push(Subscription {
                protocol: s.protocol().unwrap_or_default().to_owned(),
                endpoint: s.endpoint().unwrap_or_default().to_owned(),
                // Until confirmed, the ARN is the word "PendingConfirmation".
                confirmed: s
                    .subscription_arn()
                    .is_some_and(|arn| arn.starts_with("arn:")),
            });
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(subscriptions)
}

/// The revoker's self-check, signed with the operator's credentials at AWS's time.
async fn self_check(plan: &Plan, deployment: Option<&Deployment>, sdk: &SdkConfig) -> Vec<Check> {
    let (url, shown) = match (&plan.url, deployment) {
        (Some(given), _) => given.clone(),
        (None, Some(d)) => match OperatorUrl::parse(d.output("OperatorUrl")) {
            Ok(url) => (url, clean_text(d.output("OperatorUrl"), 200)),
            Err(why) => {
                let detail = format!("the stack output OperatorUrl: {why}");
                return vec![Check::fail(
                    OPERATOR_PATH,
                    detail,
                    "give the function URL with --url",
                )];
            }
        },
        // The stack check failed already, and says why.
        (None, None) => return Vec::new(),
    };
    let (home, seen) = match discover_home_and_time(sdk).await {
        Ok((home, _, seen)) => (home, seen),
        Err(e) => return vec![unreachable_check(&format!("{DISCOVER_HOME_CONTEXT}: {e}"))],
    };
    // The security account itself: the revoker checks its own role there.
    let accounts = if plan.accounts.is_empty() {
        vec![home.clone()]
    } else {
        plan.accounts.clone()
    };
    let names: Vec<&str> = accounts.iter().map(Account::as_str).collect();
    let body = json!({"action": "self_check", "accounts": names});
    match crate::operator::send(&url, &body, sdk, &aws_clock(seen), ANSWER_WAIT).await {
        Ok(answer) => self_check_checks(&shown, &home, &accounts, &answer),
        Err(e) => vec![unreachable_check(&format!("{e:#}"))],
    }
}

async fn gather_and_check(
    plan: &Plan,
    stack: &str,
    sdk: &SdkConfig,
    progress: &Progress,
) -> Vec<Check> {
    progress.update(&format!("doctor: reading the stack {stack}"));
    let (mut checks, deployment) = stack_checks(stack, &stack_facts(sdk, stack).await);
    if let Some(d) = &deployment {
        let prefix = d.prefix();
        progress.update(&format!("doctor: the rules in {}", d.region));
        checks.extend(home_rule_checks(d, &rule_facts(sdk, prefix).await));
        // A StackSet's region list may include the home region, where the forwarder
        // creates nothing.
        for region in plan.regions.iter().filter(|r| **r != d.region) {
            progress.update(&format!("doctor: the forwarder in {region}"));
            let regional = sdk.to_builder().region(Region::new(region.clone())).build();
            let rules = rule_facts(&regional, prefix).await;
            let dlq = forwarder_dlq_facts(&regional, region, prefix).await;
            checks.extend(forwarder_checks(d, region, &rules, &dlq));
        }
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let queues = [
            (QueueKind::Requests, "RequestQueueUrl"),
            (QueueKind::RequestDeadLetter, "RequestDeadLetterQueueUrl"),
            (QueueKind::Failures, "FailureQueueUrl"),
            (QueueKind::SweepDeadLetter, "SweepDeadLetterQueueUrl"),
        ];
        for (kind, output) in queues.into_iter().filter(|(_, o)| !d.output(o).is_empty()) {
            let url = d.output(output);
            let name = url.rsplit('/').next().unwrap_or(url).to_owned();
            progress.update(&format!("doctor: the queue {name}"));
            let depth = depth(&sqs, url).await;
            let queue = QueueFacts {
                kind,
                name,
                region: d.region.clone(),
                depth,
            };
            checks.push(queue_check(prefix, &queue));
        }
        let topic = d.output("SecurityTopicArn");
        progress.update("doctor: the security topic's subscriptions");
        checks.push(topic_check(topic, &topic_facts(sdk, topic).await));
    }
    if plan.self_check {
        progress.update("doctor: the revoker's self-check through the operator path (up to 90 s)");
        checks.extend(self_check(plan, deployment.as_ref(), sdk).await);
    }
    progress.finish();
    checks
}

pub async fn doctor(args: &DoctorArgs) -> anyhow::Result<Exit> {
    let plan = match plan(args) {
        Ok(plan) => plan,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let sdk = match load_sdk_config_with(&plan.options).await {
        Ok(sdk) => sdk,
        Err(e) => return Ok(Exit::Invalid(e.to_string())),
    };
    let stack = match &plan.stack {
        Some(name) => name.clone(),
        None => match crate::stack::find(&sdk, None).await {
            Ok(found) => found.name,
            Err(e) if e.is_argument() => return Ok(Exit::Invalid(e.to_string())),
            Err(e) => return Err(anyhow::anyhow!(e)),
        },
    };
    let checks = gather_and_check(&plan, &stack, &sdk, &Progress::on_terminal()).await;
    let passed = checks.iter().all(|c| c.status != Status::Fail);
    if args.json {
        print_json(&json!({"passed": passed, "checks": checks}))?;
    } else {
        let text = render_text(&checks);
        write!(std::io::stdout().lock(), "{text}").context("writing to standard output")?;
    }
    Ok(if passed { Exit::Ok } else { Exit::Failed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::{Fail, Pass, Warn};
    use clap::Parser;

    const INTAKE: &str = "arn:aws:lambda:us-east-1:111122223333:function:cutoff-intake";
    const HOME_BUS: &str = "arn:aws:events:us-east-1:111122223333:event-bus/default";
    const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:cutoff-security";

    /// Asserts the status, and that the detail or the fix says each of `words`.
    fn expect(check: &Check, status: Status, words: &[&str]) {
        assert_eq!(check.status, status, "{check:?}");
        let text = format!(
            "{} | {}",
            check.detail,
            check.fix.as_deref().unwrap_or_default()
        );
        for word in words {
            assert!(text.contains(word), "{word:?} is not in {check:?}");
        }
    }

    fn stack(status: &str, without: &[&str]) -> StackFacts {
        let q = "https://sqs.us-east-1.amazonaws.com/111122223333/cutoff-";
        let outputs = [
            ("NamePrefix", "cutoff".to_owned()),
            ("IntakeFunctionArn", INTAKE.to_owned()),
            ("RevokerFunctionArn", INTAKE.replace("intake", "revoker")),
            (
                "OperatorUrl",
                "https://abc.lambda-url.us-east-1.on.aws/".to_owned(),
            ),
            ("RequestQueueUrl", format!("{q}requests.fifo")),
            ("RequestDeadLetterQueueUrl", format!("{q}requests-dlq.fifo")),
            ("FailureQueueUrl", format!("{q}failures")),
            ("SweepDeadLetterQueueUrl", format!("{q}sweep-tasks-dlq")),
            ("SecurityTopicArn", TOPIC.to_owned()),
        ];
        let outputs = outputs.into_iter().filter(|(k, _)| !without.contains(k));
        StackFacts::Found(Stack {
            stack_id: "arn:aws:cloudformation:us-east-1:111122223333:stack/cutoff/1a2b".to_owned(),
            status: status.to_owned(),
            outputs: outputs.map(|(k, v)| (k.to_owned(), v)).collect(),
            parameters: BTreeMap::from([("DryRun".to_owned(), "false".to_owned())]),
        })
    }

    #[test]
    fn a_stack_in_dry_run_is_a_warning_every_time() {
        let mut facts = stack("UPDATE_COMPLETE", &[]);
        let (checks, _) = stack_checks("cutoff", &facts);
        assert!(checks.iter().all(|c| c.name != "dry run"), "{checks:?}");
        if let StackFacts::Found(s) = &mut facts {
            s.parameters.insert("DryRun".to_owned(), "true".to_owned());
        }
        let (checks, deployment) = stack_checks("cutoff", &facts);
        let dry = checks.iter().find(|c| c.name == "dry run").unwrap();
        expect(
            dry,
            Warn,
            &["writes none", "DryRun=false", "samconfig.toml"],
        );
        assert!(deployment.is_some(), "the other checks still run");
    }

    fn deployment() -> Deployment {
        stack_checks("cutoff", &stack("UPDATE_COMPLETE", &[]))
            .1
            .unwrap()
    }

    #[test]
    fn the_stack_must_be_complete_and_have_every_output() {
        let (checks, d) = stack_checks("cutoff", &stack("UPDATE_COMPLETE", &[]));
        let first = render_text(&checks);
        assert_eq!(
            first.lines().next(),
            Some("PASS  stack cutoff: UPDATE_COMPLETE")
        );
        expect(&checks[1], Pass, &["NamePrefix cutoff"]);
        let d = d.unwrap();
        let mut odd = stack("UPDATE_COMPLETE", &[]);
        if let StackFacts::Found(s) = &mut odd {
            s.outputs
                .insert("NamePrefix".into(), "cutoff\n\u{1b}[2K".into());
        }
        let cleaned = stack_checks("cutoff", &odd).1.unwrap();
        assert!(!cleaned.prefix().contains(['\n', '\u{1b}']), "{cleaned:?}");
        assert_eq!(
            [&*d.partition, &*d.region, &*d.account],
            ["aws", "us-east-1", "111122223333"]
        );

        let (checks, d) = stack_checks("nope", &StackFacts::NotFound("eu-west-3".into()));
        assert!(d.is_none() && checks.len() == 1);
        expect(
            &checks[0],
            Fail,
            &[
                "does not exist in eu-west-3",
                "deploy infra/template.yaml",
                "--region",
            ],
        );
        let (checks, _) = stack_checks("cutoff", &StackFacts::Unreadable("AccessDenied".into()));
        expect(
            &checks[0],
            Fail,
            &["AccessDenied", "cloudformation:DescribeStacks"],
        );
        for (status, hint) in [
            ("UPDATE_IN_PROGRESS", "wait until"),
            (
                "UPDATE_ROLLBACK_COMPLETE",
                "describe-stack-events --stack-name cutoff",
            ),
            ("ROLLBACK_COMPLETE", "describe-stack-events"),
            ("CREATE_FAILED", "describe-stack-events"),
            ("DELETE_COMPLETE", "deleted"),
        ] {
            let (checks, d) = stack_checks("cutoff", &stack(status, &[]));
            expect(&checks[0], Fail, &[status, hint]);
            // The outputs are still there: the rest is still checked.
            assert!(d.is_some(), "{status}");
        }

        // The sweep queues are optional, the others are not.
        assert!(
            stack_checks(
                "cutoff",
                &stack("CREATE_COMPLETE", &["SweepDeadLetterQueueUrl"])
            )
            .1
            .is_some()
        );
        let (checks, d) = stack_checks("cutoff", &stack("CREATE_COMPLETE", &["FailureQueueUrl"]));
        assert!(d.is_none());
        expect(&checks[1], Fail, &["missing FailureQueueUrl", "sam deploy"]);
        let mut odd = stack("CREATE_COMPLETE", &[]);
        if let StackFacts::Found(s) = &mut odd {
            s.stack_id = "cutoff".into();
        }
        let (checks, d) = stack_checks("cutoff", &odd);
        assert!(d.is_none());
        expect(&checks[1], Fail, &["not a stack ARN"]);
    }

    fn rules(list: &[(&str, &str, &[&str])]) -> RuleFacts {
        let rule = |state: &str, targets: &[&str]| Rule {
            state: state.to_owned(),
            targets: targets.iter().map(|t| (*t).to_owned()).collect(),
        };
        Ok(list
            .iter()
            .map(|(name, state, targets)| ((*name).to_owned(), rule(state, targets)))
            .collect())
    }

    #[test]
    fn the_guardduty_rule_must_exist_be_enabled_and_feed_intake() {
        let d = deployment();
        let rule = |state, targets| {
            home_rule_checks(&d, &rules(&[("cutoff-guardduty-findings", state, targets)]))
        };
        let good = rule("ENABLED", &[INTAKE]);
        assert_eq!(good[0].name, "rule cutoff-guardduty-findings (us-east-1)");
        expect(&good[0], Pass, &["ENABLED, targets intake"]);
        let enable = "aws events enable-rule --name cutoff-guardduty-findings --region us-east-1";
        expect(&rule("DISABLED", &[INTAKE])[0], Fail, &["DISABLED", enable]);
        expect(
            &rule("ENABLED", &["arn:aws:sqs:x"])[0],
            Fail,
            &["[arn:aws:sqs:x]", INTAKE, "sam deploy"],
        );
        expect(
            &home_rule_checks(&d, &rules(&[]))[0],
            Fail,
            &["does not exist", "sam deploy"],
        );
        let unreadable = home_rule_checks(&d, &Err("events:ListRules: AccessDenied".into()));
        expect(
            &unreadable[0],
            Fail,
            &["AccessDenied", "events:ListTargetsByRule"],
        );

        // The opt-in rules are checked when they exist; rules of other buses never.
        let facts = rules(&[
            ("cutoff-guardduty-findings", "ENABLED", &[INTAKE]),
            ("cutoff-cloudtrail-calls", "DISABLED", &[INTAKE]),
            ("cutoff-securityhub-imported", "ENABLED", &[]),
            ("cutoff-outcomes-to-notifier", "DISABLED", &[]),
        ]);
        let checks = home_rule_checks(&d, &facts);
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "rule cutoff-guardduty-findings (us-east-1)",
                "rule cutoff-securityhub-imported (us-east-1)",
                "rule cutoff-cloudtrail-calls (us-east-1)"
            ]
        );
        expect(&checks[1], Fail, &["targets []"]);
        expect(&checks[2], Fail, &["DISABLED"]);

        // A rule the stack's parameters opted into must exist, even if someone deleted it.
        let mut opted = deployment();
        opted
            .parameters
            .insert("SecurityHubCustomAction".to_owned(), "true".to_owned());
        opted
            .parameters
            .insert("CloudTrailEventNames".to_owned(), String::new());
        let only_guardduty = rules(&[("cutoff-guardduty-findings", "ENABLED", &[INTAKE])]);
        let checks = home_rule_checks(&opted, &only_guardduty);
        assert_eq!(checks.len(), 2, "{checks:?}");
        assert_eq!(checks[1].name, "rule cutoff-securityhub-action (us-east-1)");
        expect(
            &checks[1],
            Fail,
            &["does not exist", "deploy infra/template.yaml"],
        );
        // Security Hub's OCSF findings, opted in: their rule too.
        opted
            .parameters
            .insert("SecurityHubV2".to_owned(), "true".to_owned());
        let checks = home_rule_checks(&opted, &only_guardduty);
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "rule cutoff-guardduty-findings (us-east-1)",
                "rule cutoff-securityhub-action (us-east-1)",
                "rule cutoff-securityhub-v2 (us-east-1)"
            ]
        );
        expect(&checks[2], Fail, &["does not exist"]);
    }

    fn queue(kind: QueueKind, depth: Depth) -> QueueFacts {
        QueueFacts {
            kind,
            name: "q".to_owned(),
            region: "eu-west-1".to_owned(),
            depth,
        }
    }

    #[test]
    fn a_forwarder_must_send_to_the_home_bus_and_keep_its_dead_letter_queue_empty() {
        let d = deployment();
        let forwarder = |target: &str, depth| {
            let rules = rules(&[("cutoff-forward-guardduty", "ENABLED", &[target])]);
            forwarder_checks(
                &d,
                "eu-west-1",
                &rules,
                &queue(QueueKind::ForwarderDeadLetter, depth),
            )
        };
        let good = forwarder(HOME_BUS, Depth::Messages(0));
        expect(&good[0], Pass, &["ENABLED, targets the home bus"]);
        assert_eq!(good[0].name, "rule cutoff-forward-guardduty (eu-west-1)");
        expect(&good[1], Pass, &["empty"]);
        let wrong = forwarder(
            &HOME_BUS.replace("us-east-1", "eu-west-1"),
            Depth::Messages(2),
        );
        expect(
            &wrong[0],
            Fail,
            &[
                HOME_BUS,
                "forwarder.yaml in eu-west-1",
                "ResponderRegion=us-east-1",
            ],
        );
        expect(
            &wrong[1],
            Fail,
            &["2 messages", "cutoff-eu-west-1-forwarder", "cutoff triage"],
        );
        let dlq = queue(QueueKind::ForwarderDeadLetter, Depth::Missing);
        let absent = forwarder_checks(&d, "eu-west-1", &rules(&[]), &dlq);
        expect(&absent[0], Fail, &["does not exist"]);
        expect(
            &absent[1],
            Fail,
            &["deploy infra/forwarder.yaml in eu-west-1"],
        );
        let denied = forwarder_checks(&d, "eu-west-1", &Err("AccessDenied".into()), &dlq);
        expect(&denied[0], Fail, &["AccessDenied", "events:ListRules"]);
    }

    #[test]
    fn dead_letter_queues_must_be_empty_and_a_request_backlog_only_warns() {
        let check = |kind, n| queue_check("cutoff", &queue(kind, Depth::Messages(n)));
        for kind in [
            QueueKind::RequestDeadLetter,
            QueueKind::Failures,
            QueueKind::SweepDeadLetter,
        ] {
            expect(&check(kind, 0), Pass, &["empty"]);
            expect(&check(kind, 1), Fail, &["1 message:"]);
        }
        let redrive = [
            "/aws/lambda/cutoff-revoker",
            "Redrive failed requests",
            "docs/reliability.md",
        ];
        expect(&check(QueueKind::RequestDeadLetter, 3), Fail, &redrive);
        expect(
            &check(QueueKind::SweepDeadLetter, 3),
            Fail,
            &["/aws/lambda/cutoff-sweeper"],
        );
        expect(
            &check(QueueKind::Requests, 0),
            Pass,
            &["empty", "cutoff-request-queue-stale"],
        );
        expect(
            &check(QueueKind::Requests, 7),
            Warn,
            &["7 messages waiting", "cutoff-request-queue-stale"],
        );
        let gone = queue_check("cutoff", &queue(QueueKind::Failures, Depth::Missing));
        expect(
            &gone,
            Fail,
            &["does not exist", "deploy infra/template.yaml"],
        );
        let denied = queue(
            QueueKind::Requests,
            Depth::Unreadable("AccessDenied".into()),
        );
        expect(
            &queue_check("cutoff", &denied),
            Fail,
            &["AccessDenied", "sqs:GetQueueAttributes"],
        );
    }

    #[test]
    fn the_security_topic_needs_one_confirmed_subscription() {
        let email = |endpoint: &str, confirmed| Subscription {
            protocol: "email".into(),
            endpoint: endpoint.into(),
            confirmed,
        };
        let (pending, confirmed) = (
            email("oncall@example.com", false),
            email("sec@example.com", true),
        );
        let ok = topic_check(TOPIC, &Ok(vec![confirmed, pending.clone()]));
        assert_eq!(ok.name, "topic cutoff-security");
        expect(
            &ok,
            Pass,
            &[
                "1 confirmed (email sec@example.com)",
                "waiting for confirmation: email oncall@example.com",
            ],
        );
        let confirm = [
            "confirm the subscription e-mail",
            "aws sns subscribe --topic-arn arn:aws:sns",
        ];
        expect(
            &topic_check(TOPIC, &Ok(vec![pending])),
            Fail,
            &[&["oncall@example.com"][..], &confirm].concat(),
        );
        expect(
            &topic_check(TOPIC, &Ok(Vec::new())),
            Fail,
            &["no confirmed subscription"],
        );
        expect(
            &topic_check(TOPIC, &Err("AccessDenied".into())),
            Fail,
            &["sns:ListSubscriptionsByTopic"],
        );
    }

    const MEMBER: &str = "444455556666";
    const URL: &str = "https://abc.lambda-url.us-east-1.on.aws/";

    fn self_check(asked: &[&str], answer: Value) -> Vec<Check> {
        let asked: Vec<Account> = asked.iter().map(|a| Account::parse(a).unwrap()).collect();
        self_check_checks(
            URL,
            &Account::parse("111122223333").unwrap(),
            &asked,
            &answer,
        )
    }

    /// An account as the revoker answers it; `probes` are (passed, decision).
    fn account(account: &str, assumed: bool, error: Value, probes: &[(bool, Value)]) -> Value {
        let probes: Vec<Value> = probes.iter().map(|(passed, decision)| json!({
            "action": "iam:PutRolePolicy", "resource": "arn:aws:iam::444455556666:role/cutoff-doctor-sample",
            "expected": "allowed", "decision": decision, "passed": passed, "why": "the deny cutoff writes on a revoked role"})).collect();
        let passed = assumed && error.is_null() && probes.iter().all(|p| p["passed"] == true);
        json!({"account": account, "passed": passed, "assumed": assumed, "error": error, "probes": probes})
    }

    fn answer(accounts: &[Value]) -> Value {
        let passed = accounts.iter().all(|a| a["passed"] == true);
        json!({"self_check": {"passed": passed, "member_role": "cutoff-member", "accounts": accounts}})
    }

    #[test]
    fn the_self_check_gives_one_check_per_account() {
        let allowed = || (true, json!("allowed"));
        let good = account(MEMBER, true, Value::Null, &vec![allowed(); 5]);
        let home = account("111122223333", true, Value::Null, &[allowed()]);
        let checks = self_check(&[MEMBER, "111122223333"], answer(&[good, home]));
        assert_eq!(checks.len(), 3);
        expect(
            &checks[0],
            Pass,
            &[&format!(
                "the revoker answered the signed self-check at {URL}"
            )],
        );
        assert_eq!(checks[1].name, "self-check account 444455556666");
        expect(
            &checks[1],
            Pass,
            &["assumed cutoff-member; 5/5 probes as expected"],
        );
        expect(
            &checks[2],
            Pass,
            &["assumed its own role; 1/1 probes as expected"],
        );

        let denied = account(
            MEMBER,
            true,
            Value::Null,
            &[allowed(), (false, json!("implicit_deny"))],
        );
        let probe = "iam:PutRolePolicy on arn:aws:iam::444455556666:role/cutoff-doctor-sample: expected allowed, got implicit_deny";
        expect(
            &self_check(&[MEMBER], answer(&[denied]))[1],
            Fail,
            &["1/2 probes as expected", probe, "SCP"],
        );
        // Every probe as expected, but an SCP conditions on a key the simulator lacked:
        // the answer may not be a real call's.
        let mut lacking = account(MEMBER, true, Value::Null, &[allowed()]);
        lacking["probes"][0]["missing_context"] = json!(["aws:PrincipalTag/team"]);
        expect(
            &self_check(&[MEMBER], answer(&[lacking]))[1],
            Warn,
            &["aws:PrincipalTag/team", "SCPs and permission boundaries"],
        );
        let mut outside = account(
            MEMBER,
            false,
            json!("account 444455556666 is not one of the 2 accounts cutoff is configured for"),
            &[],
        );
        outside["unreachable"] = json!("out_of_scope");
        expect(
            &self_check(&[MEMBER], answer(&[outside]))[1],
            Fail,
            &["not checked", "AllowedAccounts"],
        );
        let mut home = account(
            "111122223333",
            true,
            json!("the revoker was not told its own role"),
            &[],
        );
        home["unreachable"] = json!("no_own_role");
        home["passed"] = json!(false);
        expect(
            &self_check(&["111122223333"], answer(&[home]))[1],
            Fail,
            &["not checked", "CUTOFF_ROLE_ARN"],
        );
        let mut unanswered = account(MEMBER, true, Value::Null, &[(false, Value::Null)]);
        unanswered["probes"][0]["error"] = json!("Throttling");
        expect(
            &self_check(&[MEMBER], answer(&[unanswered]))[1],
            Fail,
            &["got no decision (Throttling)"],
        );
        let refused = account(
            MEMBER,
            false,
            json!("AccessDenied: not authorized to perform sts:AssumeRole"),
            &[],
        );
        let hints = [
            "could not assume cutoff-member: AccessDenied",
            "trust policy",
            "ExternalId",
            "SCP",
            "permission boundary",
            "member-role.yaml",
        ];
        expect(&self_check(&[MEMBER], answer(&[refused]))[1], Fail, &hints);
        // The revoker's word counts even when every probe passed, and no probe is no check.
        let odd = account(MEMBER, true, json!("simulator unavailable"), &[allowed()]);
        expect(
            &self_check(&[MEMBER], answer(&[odd]))[1],
            Fail,
            &["1/1", "error: simulator unavailable"],
        );
        let empty = account(MEMBER, true, Value::Null, &[]);
        expect(&self_check(&[MEMBER], answer(&[empty]))[1], Fail, &["0/0"]);
    }

    /// The revoker's own report type (cutoff_domain::self_check), serialized as it answers:
    /// the field names and decision words of the contract cannot drift apart unseen.
    #[test]
    fn the_revokers_report_is_read_as_it_is_written() {
        use cutoff_domain::self_check::{
            AccountCheck, Decision, SelfCheckReport, Simulated, judge, probes,
        };
        let (member, other) = (
            Account::parse(MEMBER).unwrap(),
            Account::parse("777788889999").unwrap(),
        );
        let acting = "arn:aws:iam::444455556666:role/cutoff-member";
        let asked = probes(
            cutoff_domain::principal::Partition::Aws,
            &member,
            acting,
            "/cutoff/",
        );
        let results = asked
            .iter()
            .map(|p| {
                let decision = Decision::Allowed;
                let missing_context = Vec::new();
                judge(
                    p,
                    Ok(Simulated {
                        decision,
                        missing_context,
                    }),
                )
            })
            .collect();
        let report = SelfCheckReport::new(
            "cutoff-member",
            vec![
                AccountCheck::probed(&member, true, results),
                AccountCheck::unreachable(
                    &other,
                    cutoff_domain::self_check::Unreachable::NotAssumed,
                    "AccessDenied".into(),
                ),
            ],
        );
        let checks = self_check(&[MEMBER, "777788889999"], json!({"self_check": report}));
        assert_eq!(checks.len(), 3, "{checks:?}");
        // Allowed where a deny was expected: the probes that must be denied fail.
        let must_deny = asked
            .iter()
            .filter(|p| p.expected == cutoff_domain::self_check::Expected::Denied)
            .count();
        let failed = format!(
            "{}/{} probes as expected",
            asked.len() - must_deny,
            asked.len()
        );
        expect(
            &checks[1],
            Fail,
            &[
                &failed,
                "iam:DeleteAccessKey",
                "expected denied, got allowed",
                "may do what it must not",
            ],
        );
        expect(
            &checks[2],
            Fail,
            &["could not assume cutoff-member: AccessDenied"],
        );
    }

    #[test]
    fn a_refused_unreachable_or_malformed_self_check_fails_clearly() {
        let refused =
            json!({"status": "failed", "detail": "a self-check names 1 to 25 accounts, not 0"});
        let checks = self_check(&[], refused);
        assert_eq!(
            (checks.len(), checks[0].name.as_str()),
            (1, "operator path")
        );
        expect(
            &checks[0],
            Fail,
            &["answered failed: a self-check names 1 to 25 accounts"],
        );
        let only_error = json!({"status": "failed", "error": {"kind": "invalid_request", "message": "unknown action"}});
        expect(&self_check(&[], only_error)[0], Fail, &["unknown action"]);
        let forbidden =
            "AWS refused the request (403): your credentials may not invoke the operator path";
        expect(
            &unreachable_check(forbidden),
            Fail,
            &["403", "OperatorPrincipalArns", "infra/break-glass.yaml"],
        );
        expect(
            &unreachable_check("connection refused"),
            Fail,
            &["OperatorUrl", "break-glass"],
        );

        for bad in [
            json!(null),
            json!("ok"),
            json!([1]),
            json!({}),
            json!({"status": 7}),
            json!({"self_check": null}),
            json!({"self_check": {"passed": "yes", "accounts": []}}),
            json!({"self_check": {"passed": true, "accounts": {}}}),
        ] {
            let checks = self_check(&[MEMBER], bad);
            assert_eq!(checks.len(), 1, "{checks:?}");
            expect(&checks[0], Fail, &["disagree"]);
        }
        let entries = [
            json!({"account": MEMBER, "passed": true}),
            json!({"account": MEMBER, "passed": "true", "assumed": true, "error": null, "probes": []}),
            json!({"account": MEMBER, "passed": true, "assumed": true, "error": null, "probes": [{"action": "x"}]}),
            json!(444455556666_u64),
        ];
        let checks = self_check(&[MEMBER], answer(&entries));
        expect(&checks[1], Fail, &["missing field `assumed`"]);
        expect(&checks[2], Fail, &["invalid type"]);
        let names: Vec<&str> = checks[1..].iter().map(|c| c.name.as_str()).collect();
        // Nothing readable reported the account asked about.
        assert_eq!(
            names,
            [
                "self-check entry 1",
                "self-check entry 2",
                "self-check entry 3",
                "self-check entry 4",
                "self-check account 444455556666"
            ]
        );
        assert!(checks[1..].iter().all(|c| c.status == Fail));
        let unexplained = self_check(
            &[],
            json!({"self_check": {"passed": false, "accounts": []}}),
        );
        expect(&unexplained[1], Fail, &["no account explains"]);

        // Text from the network cannot forge lines or escape sequences on the terminal.
        let evil = account(
            "4444\n\u{1b}[2KPASS  fine",
            false,
            json!("x\r\nPASS  fine"),
            &[],
        );
        let text = render_text(&self_check(&[], answer(&[evil])));
        assert!(
            !text.contains('\u{1b}') && !text.lines().any(|l| l.starts_with("PASS  fine")),
            "{text}"
        );
    }

    #[test]
    fn text_and_json_show_the_same_checks() {
        let checks = [
            Check::pass("stack cutoff", "UPDATE_COMPLETE"),
            Check::warn("queue q (r)", "3 messages waiting", "wait"),
            Check::fail("topic t", "no confirmed subscription", "confirm it"),
        ];
        let text = "PASS  stack cutoff: UPDATE_COMPLETE\nWARN  queue q (r): 3 messages waiting\n      fix: wait\nFAIL  topic t: no confirmed subscription\n      fix: confirm it\n1 passed, 1 warnings, 1 failed\n";
        assert_eq!(render_text(&checks), text);
        let json = serde_json::to_value(&checks).unwrap();
        assert_eq!(
            json[0],
            json!({"name": "stack cutoff", "status": "pass", "detail": "UPDATE_COMPLETE", "fix": null})
        );
        assert_eq!(
            [&json[1]["status"], &json[2]["fix"]],
            [&json!("warn"), &json!("confirm it")]
        );
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: DoctorArgs,
    }

    fn plan_of(args: &[&str]) -> Result<Plan, String> {
        let cli = Cli::try_parse_from([&["doctor"], args].concat()).map_err(|e| e.to_string())?;
        plan(&cli.args)
    }

    #[test]
    fn every_argument_is_checked_before_any_call() {
        let plan = plan_of(&[
            "--regions",
            "eu-west-1, us-gov-west-1,eu-west-1",
            "--accounts",
            "444455556666,444455556666",
        ])
        .unwrap();
        assert_eq!(
            (plan.stack.as_deref(), plan.accounts.len(), plan.self_check),
            (None, 1, true)
        );
        assert_eq!(plan.regions, ["eu-west-1", "us-gov-west-1"]);
        let many: Vec<String> = (0..26)
            .map(|i| (100_000_000_000_u64 + i).to_string())
            .collect();
        for (bad, why) in [
            (&["--stack", "1cutoff"][..], "--stack"),
            (&["--stack", "cut off"], "--stack"),
            (&["--region", "eu-west"], "--region"),
            (&["--regions", "eu-west-1,,us-east-1"], "--regions"),
            (&["--regions", "EU-WEST-1"], "--regions"),
            (&["--accounts", "44445555666"], "--accounts"),
            (&["--accounts", "444455556666,x"], "--accounts"),
            (&["--accounts", &many.join(",")], "--accounts: at most 25"),
            (&["--url", "http://example.com/"], "--url"),
            (&["--endpoint-url", "localhost:5000"], "--endpoint-url"),
        ] {
            let err = plan_of(bad).err().unwrap_or_default();
            assert!(err.starts_with(why), "{bad:?}: {err}");
        }
        // clap refuses a self-check option with --no-self-check (exit 2 too).
        assert!(plan_of(&["--no-self-check", "--accounts", "444455556666"]).is_err());
        assert!(!plan_of(&["--no-self-check"]).unwrap().self_check);
    }
}
