//! Trust boundaries (issue [8]): who can steer cutoff. Each test instantiates the
//! templates' policies with concrete values (`resolve.rs`) and asks the independent policy
//! evaluator (iam-simulate, not cutoff's code) to decide requests the way AWS would: the
//! resource's own policy, the caller's identity policy and the request context AWS
//! derives (`aws:PrincipalArn` of a role session, `aws:PrincipalServiceName` of a
//! service, `aws:ResourceAccount`). The attacker is a principal of the security account
//! with the realistic broad grant (`sqs:*`, `events:*`, `sns:*`, `kms:*`, `lambda:*`,
//! `sts:AssumeRole` on `*`); cutoff's own roles act with their real policies.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::OnceLock;

use cutoff_tests::evaluator::{Decision, EvalRequest, evaluate_all};
use cutoff_tests::workspace_root;
use serde_json::{Value, json};

use super::resolve::{
    ACCOUNT, ORGANIZATION_ID, PARTITION, POLICY_ID, REGION, Stack, as_list, load, scalar_text,
};

const ORG: &str = ORGANIZATION_ID;
const MEMBER: &str = "444455556666";
const OTHER_MEMBER: &str = "555566667777";
const OUTSIDER: &str = "999988887777";
const EXTERNAL_ID: &str = "cutoff-test-external-id";
const BREAK_GLASS_ROLE: &str = "arn:aws:iam::111122223333:role/BreakGlass";
const ONCALL_USER: &str = "arn:aws:iam::111122223333:user/oncall";

fn responder_template() -> &'static Value {
    static T: OnceLock<Value> = OnceLock::new();
    T.get_or_init(|| load("template.yaml"))
}

fn member_template() -> &'static Value {
    static T: OnceLock<Value> = OnceLock::new();
    T.get_or_init(|| load("member-role.yaml"))
}

fn identity_center_template() -> &'static Value {
    static T: OnceLock<Value> = OnceLock::new();
    T.get_or_init(|| load("identity-center-role.yaml"))
}

fn break_glass_template() -> &'static Value {
    static T: OnceLock<Value> = OnceLock::new();
    T.get_or_init(|| load("break-glass.yaml"))
}

/// The responder as the tests deploy it: inside organization ORG, two operators; `extra`
/// sets or overrides parameters.
pub(crate) fn responder(extra: &[(&str, &str)]) -> Stack {
    let mut params: BTreeMap<&str, &str> = BTreeMap::from([
        ("ExternalId", EXTERNAL_ID),
        ("OrganizationId", ORG),
        (
            "OperatorPrincipalArns",
            "arn:aws:iam::111122223333:role/BreakGlass,arn:aws:iam::111122223333:user/oncall",
        ),
    ]);
    params.extend(extra.iter().copied());
    let params: Vec<(&str, &str)> = params.into_iter().collect();
    Stack::new(responder_template(), &params)
}

/// The member role of account `account`, trusting the responder in ACCOUNT.
pub(crate) fn member(account: &str, extra: &[(&str, &str)]) -> Stack {
    let mut params: BTreeMap<&str, &str> = BTreeMap::from([
        ("SecurityAccountId", ACCOUNT),
        ("ResponderRegion", REGION),
        ("ExternalId", EXTERNAL_ID),
    ]);
    params.extend(extra.iter().copied());
    let params: Vec<(&str, &str)> = params.into_iter().collect();
    Stack::in_account(member_template(), account, &params)
}

/// The account that administers Identity Center (a delegated administrator), its
/// instance and identity store.
const IDENTITY_CENTER_ACCOUNT: &str = "666677778888";
const INSTANCE_ID: &str = "ssoins-1234567890abcdef";
const IDENTITY_STORE_ID: &str = "d-1234567890";
const IDENTITY_CENTER_ROLE: &str = "arn:aws:iam::666677778888:role/cutoff-identity-center";

/// The Organization's management account: where the SCP variant is deployed.
const MANAGEMENT_ACCOUNT: &str = "777788889999";

/// infra/identity-center-role.yaml in IDENTITY_CENTER_ACCOUNT, trusting the responder in
/// ACCOUNT.
pub(crate) fn identity_center(extra: &[(&str, &str)]) -> Stack {
    identity_center_in(IDENTITY_CENTER_ACCOUNT, extra)
}

/// infra/identity-center-role.yaml with the SCP variant (ServiceControlPolicy=true), in
/// MANAGEMENT_ACCOUNT.
pub(crate) fn identity_center_scp(extra: &[(&str, &str)]) -> Stack {
    let mut params = vec![("ServiceControlPolicy", "true")];
    params.extend(extra.iter().copied());
    identity_center_in(MANAGEMENT_ACCOUNT, &params)
}

fn identity_center_in(account: &str, extra: &[(&str, &str)]) -> Stack {
    let mut params: BTreeMap<&str, &str> = BTreeMap::from([
        ("SecurityAccountId", ACCOUNT),
        ("ResponderRegion", REGION),
        ("ExternalId", EXTERNAL_ID),
        ("InstanceId", INSTANCE_ID),
        ("IdentityStoreId", IDENTITY_STORE_ID),
    ]);
    params.extend(extra.iter().copied());
    let params: Vec<(&str, &str)> = params.into_iter().collect();
    Stack::in_account(identity_center_template(), account, &params)
}

/// The responder with the Identity Center integration configured.
fn responder_with_identity_center(extra: &[(&str, &str)]) -> Stack {
    let mut params = vec![
        ("IdentityCenterRoleArn", IDENTITY_CENTER_ROLE),
        ("IdentityCenterRegion", "eu-west-1"),
    ];
    params.extend(extra.iter().copied());
    responder(&params)
}

fn session(role_arn: &str, name: &str) -> String {
    let (prefix, role) = role_arn.split_once(":role/").unwrap();
    let account = prefix.rsplit(':').next().unwrap();
    let role_name = role.rsplit('/').next().unwrap();
    format!("arn:{PARTITION}:sts::{account}:assumed-role/{role_name}/{name}")
}

/// A session of an administrator of the security account.
fn attacker() -> String {
    format!("arn:{PARTITION}:sts::{ACCOUNT}:assumed-role/Admin/mallory")
}

/// `service:*` on `*`: what an account administrator typically holds.
fn broad(services: &[&str]) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Action": services.iter().map(|s| format!("{s}:*")).collect::<Vec<_>>(),
        "Resource": "*"
    }]})
}

/// One request and what AWS must decide; `sid`: the statement that must decide it.
struct Case {
    label: String,
    request: EvalRequest,
    expected: Decision,
    sid: Option<&'static str>,
}

fn case(label: impl Into<String>, request: EvalRequest, expected: Decision) -> Case {
    Case {
        label: label.into(),
        request: request.derive_context(),
        expected,
        sid: None,
    }
}

impl Case {
    /// The statement (by Sid) that must have matched: a Deny for ExplicitlyDenied, an
    /// Allow for Allowed.
    fn by(mut self, sid: &'static str) -> Case {
        self.sid = Some(sid);
        self
    }
}

/// Evaluates every case in one run of the evaluator; fails with every mismatch.
fn check(cases: Vec<Case>) {
    let requests: Vec<EvalRequest> = cases.iter().map(|c| c.request.clone()).collect();
    let results = evaluate_all(&requests);
    let mut failures = Vec::new();
    for (case, result) in cases.iter().zip(&results) {
        let by = case.sid.is_none_or(|sid| match case.expected {
            Decision::ExplicitlyDenied => result.denied_by(sid),
            Decision::Allowed => result.allowed_by(sid),
            Decision::ImplicitlyDenied => true,
        });
        if result.decision != case.expected || !by {
            failures.push(format!(
                "{}: expected {:?}{}, got {:?} (deny {:?}, allow {:?})",
                case.label,
                case.expected,
                case.sid.map(|s| format!(" by {s}")).unwrap_or_default(),
                result.decision,
                result.deny_statements,
                result.allow_statements
            ));
        }
        // A key the library drops as not applicable would make a condition test
        // nothing: every key a test sets must reach the evaluation.
        if !result.ignored_context_keys.is_empty() {
            failures.push(format!(
                "{}: context keys ignored as not applicable: {:?}",
                case.label, result.ignored_context_keys
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn role_arn(stack: &Stack, role: &str) -> String {
    stack.arn(role)
}

// ------------------------------------------------------------------ request queue

#[test]
fn another_principal_of_the_security_account_cannot_send_to_the_request_queue() {
    let stack = responder(&[]);
    let policy = stack.properties("RequestQueuePolicy")["PolicyDocument"].clone();
    let queue = stack.arn("RequestQueue");
    let dlq = stack.arn("RequestDeadLetterQueue");
    let intake = role_arn(&stack, "IntakeRole");
    let redrive = role_arn(&stack, "RedriveRole");
    let notifier = role_arn(&stack, "NotifierRole");
    let send = |queue: &str, principal: &str, identity: Value| {
        EvalRequest::new("sqs:SendMessage", queue, principal)
            .policy(identity)
            .resource_policy(policy.clone())
    };
    // A service principal has no identity policy.
    let service_sends = EvalRequest::new("sqs:SendMessage", &queue, "events.amazonaws.com")
        .resource_policy(policy.clone());
    use Decision::*;
    check(vec![
        case(
            "an administrator (sqs:*) sends a forged request",
            send(&queue, &attacker(), broad(&["sqs"])),
            ExplicitlyDenied,
        )
        .by("OnlyIntakeAndRedriveSendRequests"),
        case(
            "an IAM user with sqs:* sends",
            send(
                &queue,
                "arn:aws:iam::111122223333:user/deployer",
                broad(&["sqs"]),
            ),
            ExplicitlyDenied,
        )
        .by("OnlyIntakeAndRedriveSendRequests"),
        case(
            "the notifier, another cutoff role, given sqs:*",
            send(&queue, &session(&notifier, "x"), broad(&["sqs"])),
            ExplicitlyDenied,
        )
        .by("OnlyIntakeAndRedriveSendRequests"),
        case(
            "a service principal (no aws:PrincipalArn)",
            service_sends,
            ExplicitlyDenied,
        )
        .by("OnlyIntakeAndRedriveSendRequests"),
        case(
            "intake with its own policy",
            send(
                &queue,
                &session(&intake, "cutoff-intake"),
                stack.role_policy("IntakeRole"),
            ),
            Allowed,
        ),
        case(
            "the redrive role with its own policy",
            send(
                &queue,
                &session(&redrive, "alice"),
                stack.role_policy("RedriveRole"),
            ),
            Allowed,
        ),
        case(
            "intake without TLS",
            send(
                &queue,
                &session(&intake, "cutoff-intake"),
                stack.role_policy("IntakeRole"),
            )
            .context("aws:SecureTransport", "false"),
            ExplicitlyDenied,
        )
        .by("DenyInsecureTransport"),
        case(
            "an administrator sends to the dead-letter queue",
            send(&dlq, &attacker(), broad(&["sqs"])),
            ExplicitlyDenied,
        )
        .by("NobodySendsToTheDeadLetterQueue"),
        case(
            "intake (given sqs:*) sends to the dead-letter queue",
            send(&dlq, &session(&intake, "cutoff-intake"), broad(&["sqs"])),
            ExplicitlyDenied,
        )
        .by("NobodySendsToTheDeadLetterQueue"),
        case(
            "the redrive role (given sqs:*) sends to the dead-letter queue",
            send(&dlq, &session(&redrive, "alice"), broad(&["sqs"])),
            ExplicitlyDenied,
        )
        .by("NobodySendsToTheDeadLetterQueue"),
    ]);
}

#[test]
fn another_principal_cannot_receive_hide_or_delete_revocation_requests() {
    // An insider who can consume the request queue can drop a revocation (receive and
    // delete it), delay it (hide it for 12 hours) or purge them all: the attacker stays in.
    let stack = responder(&[]);
    let policy = stack.properties("RequestQueuePolicy")["PolicyDocument"].clone();
    let queue = stack.arn("RequestQueue");
    let dlq = stack.arn("RequestDeadLetterQueue");
    let revoker = role_arn(&stack, "RevokerRole");
    let intake = role_arn(&stack, "IntakeRole");
    let redrive = role_arn(&stack, "RedriveRole");
    let request = |action: &str, queue: &str, principal: &str, identity: Value| {
        EvalRequest::new(action, queue, principal)
            .policy(identity)
            .resource_policy(policy.clone())
    };
    use Decision::*;
    let mut cases = Vec::new();
    for action in [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:PurgeQueue",
    ] {
        cases.push(
            case(
                format!("an administrator (sqs:*): {action} on the request queue"),
                request(action, &queue, &attacker(), broad(&["sqs"])),
                ExplicitlyDenied,
            )
            .by("OnlyTheRevokerConsumesRequests"),
        );
        cases.push(
            case(
                format!("intake, given sqs:*: {action} on the request queue"),
                request(
                    action,
                    &queue,
                    &session(&intake, "cutoff-intake"),
                    broad(&["sqs"]),
                ),
                ExplicitlyDenied,
            )
            .by("OnlyTheRevokerConsumesRequests"),
        );
    }
    for action in [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
    ] {
        cases.push(case(
            format!("the revoker's event source mapping: {action}"),
            request(
                action,
                &queue,
                &session(&revoker, "cutoff-revoker"),
                stack.role_policy("RevokerRole"),
            ),
            Allowed,
        ));
    }
    for action in ["sqs:DeleteMessage", "sqs:PurgeQueue"] {
        cases.push(
            case(
                format!("an administrator (sqs:*): {action} on the dead-letter queue"),
                request(action, &dlq, &attacker(), broad(&["sqs"])),
                ExplicitlyDenied,
            )
            .by("OnlyTheRedriveRoleRemovesFailedRequests"),
        );
    }
    cases.push(case(
        "the redrive role's move task deletes what it moved",
        request(
            "sqs:DeleteMessage",
            &dlq,
            &session(&redrive, "alice"),
            stack.role_policy("RedriveRole"),
        ),
        Allowed,
    ));
    cases.push(case(
        "an administrator reads why a request failed",
        request("sqs:ReceiveMessage", &dlq, &attacker(), broad(&["sqs"])),
        Allowed,
    ));
    check(cases);
}

#[test]
fn only_operators_can_assume_the_redrive_role_and_it_only_moves_requests_back() {
    let stack = responder(&[]);
    let redrive = role_arn(&stack, "RedriveRole");
    let trust = stack.trust_policy("RedriveRole");
    let assume = |principal: &str| {
        EvalRequest::new("sts:AssumeRole", &redrive, principal)
            .policy(broad(&["sts"]))
            .resource_policy(trust.clone())
    };
    let queue = stack.arn("RequestQueue");
    let dlq = stack.arn("RequestDeadLetterQueue");
    let policy = stack.role_policy("RedriveRole");
    let queue_policy = stack.properties("RequestQueuePolicy")["PolicyDocument"].clone();
    let as_redrive = |action: &str, queue: &str| {
        EvalRequest::new(action, queue, &session(&redrive, "alice"))
            .policy(policy.clone())
            .resource_policy(queue_policy.clone())
    };
    use Decision::*;
    let mut cases = vec![
        case(
            "the break-glass role",
            assume(&session(BREAK_GLASS_ROLE, "alice")),
            Allowed,
        )
        .by("Operators"),
        case("the on-call user", assume(ONCALL_USER), Allowed).by("Operators"),
        case(
            "an administrator with sts:AssumeRole on *",
            assume(&attacker()),
            ImplicitlyDenied,
        ),
        case(
            "a BreakGlass role of another account",
            assume(&format!(
                "arn:aws:sts::{OUTSIDER}:assumed-role/BreakGlass/alice"
            )),
            ImplicitlyDenied,
        ),
    ];
    for action in [
        "sqs:StartMessageMoveTask",
        "sqs:ListMessageMoveTasks",
        "sqs:CancelMessageMoveTask",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    ] {
        cases.push(case(
            format!("{action} on the dead-letter queue"),
            as_redrive(action, &dlq),
            Allowed,
        ));
        // Consuming the request queue is the revoker's alone: explicitly denied.
        let on_queue = if matches!(action, "sqs:ReceiveMessage" | "sqs:DeleteMessage") {
            ExplicitlyDenied
        } else {
            ImplicitlyDenied
        };
        cases.push(case(
            format!("{action} on the request queue"),
            as_redrive(action, &queue),
            on_queue,
        ));
    }
    cases.push(case(
        "send back to the request queue",
        as_redrive("sqs:SendMessage", &queue),
        Allowed,
    ));
    cases.push(
        case(
            "purge the request queue",
            as_redrive("sqs:PurgeQueue", &queue),
            ExplicitlyDenied,
        )
        .by("OnlyTheRevokerConsumesRequests"),
    );
    check(cases);
}

// ------------------------------------------------------------------ outcome bus

#[test]
fn another_principal_of_the_security_account_cannot_put_events_on_the_outcome_bus() {
    let stack = responder(&[]);
    let bus_policy = stack.properties("OutcomeBus")["Policy"].clone();
    let bus = stack.arn("OutcomeBus");
    let put = |principal: &str, identity: Value, detail_type: &str| {
        EvalRequest::new("events:PutEvents", &bus, principal)
            .policy(identity)
            .resource_policy(bus_policy.clone())
            .context("events:source", "cutoff")
            .context("events:detail-type", detail_type)
    };
    use Decision::*;
    let mut cases = vec![
        case(
            "an administrator (events:*) forges an outcome",
            put(&attacker(), broad(&["events"]), "Revocation Outcome"),
            ExplicitlyDenied,
        )
        .by("OnlyCutoffPutsOutcomes"),
        case(
            "the notifier (given events:*), which only reads outcomes",
            put(
                &session(&role_arn(&stack, "NotifierRole"), "x"),
                broad(&["events"]),
                "Revocation Outcome",
            ),
            ExplicitlyDenied,
        )
        .by("OnlyCutoffPutsOutcomes"),
        case(
            "the sweeper's run summary",
            put(
                &session(&role_arn(&stack, "SweeperRole"), "cutoff-sweeper"),
                stack.role_policy("SweeperRole"),
                "Sweep Summary",
            ),
            Allowed,
        ),
        case(
            "intake's batch with a forged entry among cutoff's",
            put(
                &session(&role_arn(&stack, "IntakeRole"), "cutoff-intake"),
                stack.role_policy("IntakeRole"),
                "Revocation Outcome",
            )
            .context("events:source", json!(["cutoff", "aws.guardduty"])),
            ImplicitlyDenied,
        ),
        case(
            "the sweeper's daily digest",
            put(
                &session(&role_arn(&stack, "SweeperRole"), "cutoff-sweeper"),
                stack.role_policy("SweeperRole"),
                "Sweep Digest",
            ),
            Allowed,
        ),
        case(
            "the revoker cannot claim a sweep digest",
            put(
                &session(&role_arn(&stack, "RevokerRole"), "cutoff-revoker"),
                stack.role_policy("RevokerRole"),
                "Sweep Digest",
            ),
            ImplicitlyDenied,
        ),
        case(
            "intake cannot claim a sweep summary",
            put(
                &session(&role_arn(&stack, "IntakeRole"), "cutoff-intake"),
                stack.role_policy("IntakeRole"),
                "Sweep Summary",
            ),
            ImplicitlyDenied,
        ),
    ];
    for role in ["IntakeRole", "RevokerRole", "SweeperRole"] {
        cases.push(case(
            format!("{role} with its own policy"),
            put(
                &session(&role_arn(&stack, role), "fn"),
                stack.role_policy(role),
                "Revocation Outcome",
            ),
            Allowed,
        ));
    }
    check(cases);
}

// ------------------------------------------------------------------ security topic

#[test]
fn another_principal_cannot_publish_to_the_security_topic() {
    let stack = responder(&[]);
    let topic_policy = stack.properties("SecurityTopicPolicy")["PolicyDocument"].clone();
    let topic = stack.attribute("SecurityTopic", "TopicArn");
    let publish = |principal: &str| {
        EvalRequest::new("sns:Publish", &topic, principal).resource_policy(topic_policy.clone())
    };
    let alarm = |account: &str, name: &str| {
        publish("cloudwatch.amazonaws.com")
            .context("aws:SourceAccount", account)
            .context(
                "aws:SourceArn",
                format!("arn:aws:cloudwatch:{REGION}:{account}:alarm:{name}"),
            )
    };
    use Decision::*;
    check(vec![
        case(
            "an administrator (sns:*) publishes a forged alert",
            publish(&attacker()).policy(broad(&["sns"])),
            ExplicitlyDenied,
        )
        .by("OnlyNotifierAndAlarmsPublish"),
        case(
            "intake (given sns:*)",
            publish(&session(&role_arn(&stack, "IntakeRole"), "x")).policy(broad(&["sns"])),
            ExplicitlyDenied,
        )
        .by("OnlyNotifierAndAlarmsPublish"),
        case(
            "the notifier with its own policy",
            publish(&session(
                &role_arn(&stack, "NotifierRole"),
                "cutoff-notifier",
            ))
            .policy(stack.role_policy("NotifierRole")),
            Allowed,
        ),
        case(
            "a cutoff alarm of this account",
            alarm(ACCOUNT, "cutoff-revoker-errors"),
            Allowed,
        )
        .by("CloudWatchAlarmsOfThisAccount"),
        case(
            "an alarm of another account",
            alarm(OUTSIDER, "cutoff-revoker-errors"),
            ExplicitlyDenied,
        )
        .by("OnlyAlarmsOfThisAccountPublish"),
        case(
            "another alarm of this account whose name starts like cutoff's",
            alarm(ACCOUNT, "cutoff-staging-revoker-errors"),
            ImplicitlyDenied,
        ),
        case(
            "another service (EventBridge)",
            publish("events.amazonaws.com"),
            ExplicitlyDenied,
        )
        .by("OnlyNotifierAndAlarmsPublish"),
    ]);
}

#[test]
fn another_principal_cannot_use_the_security_topic_key() {
    let stack = responder(&[]);
    let key_policy = stack.properties("TopicKey")["KeyPolicy"].clone();
    let key = stack.arn("TopicKey");
    let via_sns = format!("sns.{REGION}.amazonaws.com");
    let use_key = |action: &str, principal: &str| {
        EvalRequest::new(action, &key, principal).resource_policy(key_policy.clone())
    };
    let notifier = session(&role_arn(&stack, "NotifierRole"), "cutoff-notifier");
    use Decision::*;
    let mut cases = Vec::new();
    for action in ["kms:GenerateDataKey", "kms:Decrypt"] {
        cases.extend([
            case(
                format!("an administrator (kms:* on *): {action}"),
                use_key(action, &attacker()).policy(broad(&["kms"])),
                ImplicitlyDenied,
            ),
            case(
                format!("an administrator through SNS: {action}"),
                use_key(action, &attacker())
                    .policy(broad(&["kms"]))
                    .context("kms:ViaService", via_sns.as_str()),
                ImplicitlyDenied,
            ),
            case(
                format!("the notifier through SNS: {action}"),
                use_key(action, &notifier)
                    .policy(stack.role_policy("NotifierRole"))
                    .context("kms:ViaService", via_sns.as_str()),
                Allowed,
            )
            .by("NotifierPublishes"),
            case(
                format!("the notifier calling KMS itself: {action}"),
                use_key(action, &notifier).policy(stack.role_policy("NotifierRole")),
                ImplicitlyDenied,
            ),
            case(
                format!("CloudWatch alarms: {action}"),
                use_key(action, "cloudwatch.amazonaws.com"),
                Allowed,
            )
            .by("CloudWatchAlarmsPublish"),
        ]);
    }
    // The limit infra/README.md states: the account administers the key (so that it is
    // never unmanageable), and an administrator can rewrite its policy.
    cases.push(
        case(
            "an administrator rewrites the key policy",
            use_key("kms:PutKeyPolicy", &attacker()).policy(broad(&["kms"])),
            Allowed,
        )
        .by("AccountAdministers"),
    );
    check(cases);
}

// ------------------------------------------------------------------ organization only

#[test]
fn the_revoker_role_cannot_assume_a_role_outside_the_organization() {
    let member_trust = member(MEMBER, &[]).trust_policy("MemberRole");
    let assume = |stack: &Stack, role: &str, account: &str, org: Option<&str>| {
        let mut request = EvalRequest::new(
            "sts:AssumeRole",
            &format!("arn:aws:iam::{account}:role/cutoff-member"),
            &session(&role_arn(stack, role), "cutoff"),
        )
        .policy(stack.role_policy(role))
        // Whoever owns the target copied the member role's trust policy: the identity
        // policy alone has to refuse.
        .resource_policy(member_trust.clone())
        .context("sts:ExternalId", EXTERNAL_ID);
        if let Some(org) = org {
            request = request.context("aws:ResourceOrgID", org);
        }
        request
    };
    let org_only = responder(&[]);
    let accounts_only = responder(&[
        ("OrganizationId", ""),
        ("AllowedAccounts", &format!("{MEMBER},{OTHER_MEMBER}")),
    ]);
    let both = responder(&[("AllowedAccounts", MEMBER)]);
    use Decision::*;
    let mut cases = Vec::new();
    for role in ["RevokerRole", "SweeperRole"] {
        cases.extend([
            case(
                format!("{role}, OrganizationId: a member account"),
                assume(&org_only, role, MEMBER, Some(ORG)),
                Allowed,
            )
            .by("AssumeMemberRole"),
            case(
                format!("{role}, OrganizationId: an account of another organization"),
                assume(&org_only, role, OUTSIDER, Some("o-otherorg999")),
                ImplicitlyDenied,
            ),
            case(
                format!("{role}, OrganizationId: an account in no organization"),
                assume(&org_only, role, OUTSIDER, None),
                ImplicitlyDenied,
            ),
            case(
                format!("{role}, AllowedAccounts: a listed account"),
                assume(&accounts_only, role, OTHER_MEMBER, None),
                Allowed,
            )
            .by("AssumeMemberRole"),
            case(
                format!("{role}, AllowedAccounts: an unlisted account"),
                assume(&accounts_only, role, OUTSIDER, Some(ORG)),
                ImplicitlyDenied,
            ),
            case(
                format!("{role}, both: listed and in the organization"),
                assume(&both, role, MEMBER, Some(ORG)),
                Allowed,
            )
            .by("AssumeMemberRole"),
            case(
                format!("{role}, both: in the organization, not listed"),
                assume(&both, role, OTHER_MEMBER, Some(ORG)),
                ImplicitlyDenied,
            ),
            case(
                format!("{role}, both: listed, but no longer in the organization"),
                assume(&both, role, MEMBER, Some("o-otherorg999")),
                ImplicitlyDenied,
            ),
        ]);
    }
    check(cases);
}

#[test]
fn a_stack_with_neither_an_organization_nor_accounts_is_refused() {
    let neither = responder(&[("OrganizationId", ""), ("AllowedAccounts", "")]);
    assert_eq!(
        neither.broken_rules().len(),
        1,
        "{:?}",
        neither.broken_rules()
    );
    for params in [
        vec![("OrganizationId", ORG)],
        vec![("OrganizationId", ""), ("AllowedAccounts", MEMBER)],
        vec![("AllowedAccounts", MEMBER)],
    ] {
        let stack = responder(&params);
        assert!(stack.broken_rules().is_empty(), "{params:?}");
    }
}

/// The revoker and sweeper read the same boundary the IAM condition enforces.
#[test]
fn the_organization_and_accounts_reach_the_revoker_and_sweeper() {
    let stack = responder(&[("AllowedAccounts", &format!("{MEMBER},{OTHER_MEMBER}"))]);
    for function in ["RevokerFunction", "SweeperFunction"] {
        let env = &stack.properties(function)["Environment"]["Variables"];
        assert_eq!(env["CUTOFF_ORGANIZATION_ID"], ORG, "{function}");
        assert_eq!(
            env["CUTOFF_ACCOUNTS"],
            format!("{MEMBER},{OTHER_MEMBER}"),
            "{function}"
        );
    }
}

// ------------------------------------------------------------------ protection by exact ARN

const OWN_ROLES: [&str; 7] = [
    "IntakeRole",
    "RevokerRole",
    "NotifierRole",
    "SweeperRole",
    "SweepSchedulerRole",
    "FollowUpSchedulerRole",
    "RedriveRole",
];

#[test]
fn a_role_named_cutoff_backdoor_is_no_longer_protected_but_cutoffs_own_roles_are() {
    let other_stack = "arn:aws:iam::111122223333:role/cutoff-eu-west-1-revoker";
    let break_glass_user = "arn:aws:iam::111122223333:user/breakglass";
    let protected = responder(&[(
        "ProtectedPrincipalArns",
        &format!("{other_stack},{break_glass_user}"),
    )]);
    let plain = responder(&[]);
    let iam = |stack: &Stack, role: &str, action: &str, target: &str| {
        EvalRequest::new(action, target, &session(&role_arn(stack, role), "cutoff"))
            .policy(stack.role_policy(role))
    };
    let home = |name: &str| format!("arn:aws:iam::{ACCOUNT}:{name}");
    use Decision::*;
    let mut cases = Vec::new();
    for role in ["RevokerRole", "SweeperRole"] {
        for (action, target) in [
            ("iam:PutRolePolicy", home("role/cutoff-backdoor")),
            (
                "iam:PutRolePolicy",
                home("role/cutoff-us-east-1-revoker-backdoor"),
            ),
            ("iam:PutRolePolicy", home("role/team/cutoff-member")),
            ("iam:PutUserPolicy", home("user/cutoff-backdoor")),
            ("iam:UpdateAccessKey", home("user/cutoff-backdoor")),
        ] {
            cases.push(case(
                format!("{role}: {action} on {target} (revocable)"),
                iam(&protected, role, action, &target),
                Allowed,
            ));
        }
        let mut own: Vec<String> = OWN_ROLES.iter().map(|r| role_arn(&protected, r)).collect();
        own.push(home("role/cutoff-member"));
        own.push(other_stack.to_owned());
        for target in &own {
            for action in [
                "iam:PutRolePolicy",
                "iam:DeleteRolePolicy",
                "iam:AttachRolePolicy",
                "iam:UpdateAssumeRolePolicy",
            ] {
                let mut request = iam(&protected, role, action, target);
                if action == "iam:AttachRolePolicy" {
                    // cutoff's own fallback policy, which the Allow admits elsewhere.
                    request = request.context(
                        "iam:PolicyARN",
                        "arn:aws:iam::111122223333:policy/cutoff/cutoff-revoke-x",
                    );
                }
                cases.push(
                    case(
                        format!("{role}: {action} on {target}"),
                        request,
                        ExplicitlyDenied,
                    )
                    .by("DenyProtectedPrincipals"),
                );
            }
        }
        for action in ["iam:PutUserPolicy", "iam:UpdateAccessKey"] {
            cases.push(
                case(
                    format!("{role}: {action} on {break_glass_user}"),
                    iam(&protected, role, action, break_glass_user),
                    ExplicitlyDenied,
                )
                .by("DenyProtectedPrincipals"),
            );
        }
        cases.push(case(
            format!("{role}: without ProtectedPrincipalArns, {other_stack} is revocable"),
            iam(&plain, role, "iam:PutRolePolicy", other_stack),
            Allowed,
        ));
    }

    // The member role: itself and ProtectedRoleNames, exactly.
    let member_stack = member(
        MEMBER,
        &[(
            "ProtectedRoleNames",
            "cutoff-staging-member,cutoff-dev-member",
        )],
    );
    let in_member = |name: &str| format!("arn:aws:iam::{MEMBER}:{name}");
    let as_member = |target: &str| {
        EvalRequest::new(
            "iam:PutRolePolicy",
            target,
            &format!("arn:aws:sts::{MEMBER}:assumed-role/cutoff-member/cutoff"),
        )
        .policy(member_stack.role_policy("MemberRole"))
    };
    for (target, expected) in [
        (in_member("role/cutoff-member"), ExplicitlyDenied),
        (in_member("role/cutoff-staging-member"), ExplicitlyDenied),
        (in_member("role/cutoff-dev-member"), ExplicitlyDenied),
        (in_member("role/cutoff-staging-member2"), Allowed),
        (in_member("role/team/cutoff-staging-member"), Allowed),
        (in_member("role/cutoff-backdoor"), Allowed),
    ] {
        let c = case(
            format!("member role: PutRolePolicy on {target}"),
            as_member(&target),
            expected,
        );
        cases.push(if expected == ExplicitlyDenied {
            c.by("DenyProtectedPrincipals")
        } else {
            c
        });
    }
    check(cases);
}

/// Every Deny that protects principals (DenyProtectedPrincipals) names them exactly: no
/// wildcard in a role or user name, in either template that has one.
#[test]
fn no_principal_is_protected_by_a_name_pattern() {
    let stacks = [
        (
            "template.yaml",
            responder(&[(
                "ProtectedPrincipalArns",
                "arn:aws:iam::111122223333:role/other",
            )]),
        ),
        (
            "member-role.yaml",
            member(MEMBER, &[("ProtectedRoleNames", "a,b")]),
        ),
    ];
    let mut checked = 0;
    for (file, stack) in &stacks {
        for role in stack.resources_of_type("AWS::IAM::Role") {
            let policy = stack.role_policy(&role);
            for st in as_list(&policy["Statement"]) {
                if st["Effect"] != "Deny" || st["Sid"] != "DenyProtectedPrincipals" {
                    continue;
                }
                for resource in as_list(&st["Resource"]) {
                    let resource = scalar_text(&resource);
                    let name = resource.splitn(6, ':').nth(5).unwrap_or("");
                    if name.starts_with("role/") || name.starts_with("user/") {
                        assert!(
                            !name.contains('*') && !name.contains('?'),
                            "{file} {role} {}: {resource} protects a name pattern",
                            st["Sid"]
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 10, "only {checked} protected principals found");
    // Nor does any text say a name prefix protects (the alarms' cutoff-* in the topic
    // policy is a source pattern, not a principal).
    for file in ["template.yaml", "member-role.yaml", "break-glass.yaml"] {
        let text = std::fs::read_to_string(workspace_root().join("infra").join(file)).unwrap();
        for pattern in [
            "role/cutoff-*",
            "user/cutoff-*",
            "/*/cutoff-*",
            "protects `cutoff-*`",
            "cutoff-* principal",
            "must not start with cutoff-",
        ] {
            assert!(!text.contains(pattern), "{file} still has {pattern:?}");
        }
    }
}

/// The list the code reads is the list IAM enforces: CUTOFF_PROTECTED_ARNS of intake,
/// revoker and sweeper is the Deny's resources without the member role (which the code
/// protects by name in every account), and names the stack's real roles.
#[test]
fn the_protected_arns_the_code_reads_are_the_ones_iam_denies() {
    for (extra, identity_center) in [
        ("", false),
        (
            "arn:aws:iam::111122223333:role/other,arn:aws:iam::999988887777:role/x",
            false,
        ),
        ("", true),
        ("arn:aws:iam::111122223333:role/other", true),
    ] {
        let stack = if identity_center {
            responder_with_identity_center(&[("ProtectedPrincipalArns", extra)])
        } else {
            responder(&[("ProtectedPrincipalArns", extra)])
        };
        let denied: BTreeSet<String> = as_list(
            &as_list(&stack.role_policy("RevokerRole")["Statement"])
                .into_iter()
                .find(|s| s["Sid"] == "DenyProtectedPrincipals")
                .unwrap()["Resource"],
        )
        .iter()
        .map(scalar_text)
        .collect();
        let mut expected: BTreeSet<String> =
            OWN_ROLES.iter().map(|r| role_arn(&stack, r)).collect();
        // The Identity Center role is cutoff's own too, when there is one.
        if identity_center {
            expected.insert(IDENTITY_CENTER_ROLE.to_owned());
        }
        expected.extend(
            extra
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        let mut with_member = expected.clone();
        with_member.insert(format!("arn:aws:iam::{ACCOUNT}:role/cutoff-member"));
        assert_eq!(
            denied, with_member,
            "ProtectedPrincipalArns={extra}, Identity Center: {identity_center}"
        );
        for role in ["RevokerRole", "SweeperRole"] {
            let denied_here: BTreeSet<String> = as_list(
                &as_list(&stack.role_policy(role)["Statement"])
                    .into_iter()
                    .find(|s| s["Sid"] == "DenyProtectedPrincipals")
                    .unwrap()["Resource"],
            )
            .iter()
            .map(scalar_text)
            .collect();
            assert_eq!(denied_here, with_member, "{role}");
        }
        for function in ["IntakeFunction", "RevokerFunction", "SweeperFunction"] {
            let env = scalar_text(
                &stack.properties(function)["Environment"]["Variables"]["CUTOFF_PROTECTED_ARNS"],
            );
            let listed: Vec<&str> = env.split(',').collect();
            assert!(listed.iter().all(|a| !a.is_empty()), "{function}: {env}");
            let listed: BTreeSet<String> = listed.into_iter().map(str::to_owned).collect();
            assert_eq!(
                listed, expected,
                "{function}, ProtectedPrincipalArns={extra}"
            );
        }
    }
}

// ------------------------------------------------------------------ member role trust

#[test]
fn only_the_revoker_and_sweeper_with_the_external_id_can_assume_the_member_role() {
    let responder = responder(&[]);
    let member_stack = member(MEMBER, &[]);
    let target = member_stack.arn("MemberRole");
    let trust = member_stack.trust_policy("MemberRole");
    let assume = |principal: &str, identity: Value, external_id: Option<&str>| {
        let mut request = EvalRequest::new("sts:AssumeRole", &target, principal)
            .policy(identity)
            .resource_policy(trust.clone())
            .context("aws:ResourceOrgID", ORG);
        if let Some(id) = external_id {
            request = request.context("sts:ExternalId", id);
        }
        request
    };
    let cutoff = |role: &str| {
        (
            session(&role_arn(&responder, role), "cutoff"),
            responder.role_policy(role),
        )
    };
    let sts_all = broad(&["sts"]);
    use Decision::*;
    let mut cases = Vec::new();
    for role in ["RevokerRole", "SweeperRole"] {
        let (principal, policy) = cutoff(role);
        cases.extend([
            case(
                format!("{role} with the ExternalId"),
                assume(&principal, policy.clone(), Some(EXTERNAL_ID)),
                Allowed,
            )
            .by("CutoffResponder"),
            case(
                format!("{role} without the ExternalId"),
                assume(&principal, policy.clone(), None),
                ImplicitlyDenied,
            ),
            case(
                format!("{role} with a wrong ExternalId"),
                assume(&principal, policy, Some("guess")),
                ImplicitlyDenied,
            ),
        ]);
    }
    let (intake, _) = cutoff("IntakeRole");
    cases.extend([
        case(
            "intake, given sts:AssumeRole on *",
            assume(&intake, sts_all.clone(), Some(EXTERNAL_ID)),
            ImplicitlyDenied,
        ),
        case(
            "an administrator of the security account who knows the ExternalId",
            assume(&attacker(), sts_all.clone(), Some(EXTERNAL_ID)),
            ImplicitlyDenied,
        ),
        case(
            "a role named like the revoker in another account",
            assume(
                &format!("arn:aws:sts::{OUTSIDER}:assumed-role/cutoff-us-east-1-revoker/x"),
                sts_all.clone(),
                Some(EXTERNAL_ID),
            ),
            ImplicitlyDenied,
        ),
        case(
            "the revoker of a responder in another region",
            assume(
                &format!("arn:aws:sts::{ACCOUNT}:assumed-role/cutoff-eu-west-1-revoker/x"),
                sts_all.clone(),
                Some(EXTERNAL_ID),
            ),
            ImplicitlyDenied,
        ),
        case(
            "an administrator of the member account",
            assume(
                &format!("arn:aws:sts::{MEMBER}:assumed-role/Admin/x"),
                sts_all,
                Some(EXTERNAL_ID),
            ),
            ImplicitlyDenied,
        ),
    ]);
    check(cases);
}

// ------------------------------------------------------------------ operators' URL

/// The break-glass principals of `stack`'s function URL, from its resource policy.
fn url_principals(stack: &Stack) -> Vec<(String, String)> {
    as_list(&stack.lambda_policy("RevokerFunction")["Statement"])
        .iter()
        .filter(|s| s["Principal"]["AWS"].is_string())
        .map(|s| {
            (
                scalar_text(&s["Action"]),
                scalar_text(&s["Principal"]["AWS"]),
            )
        })
        .collect()
}

#[test]
fn only_operator_principals_can_invoke_the_function_url() {
    let stack = responder(&[]);
    let function = stack.arn("RevokerFunction");
    let policy = stack.lambda_policy("RevokerFunction");
    let call = |action: &str, principal: &str| {
        let request =
            EvalRequest::new(action, &function, principal).resource_policy(policy.clone());
        match action {
            "lambda:InvokeFunctionUrl" => request.context("lambda:FunctionUrlAuthType", "AWS_IAM"),
            _ => request,
        }
    };
    let via_url = |principal: &str| {
        call("lambda:InvokeFunction", principal).context("lambda:InvokedViaFunctionUrl", "true")
    };
    use Decision::*;
    let mut cases = Vec::new();
    for operator in [session(BREAK_GLASS_ROLE, "alice"), ONCALL_USER.to_owned()] {
        cases.extend([
            case(
                format!("{operator}: the URL"),
                call("lambda:InvokeFunctionUrl", &operator),
                Allowed,
            ),
            case(
                format!("{operator}: the invoke behind the URL"),
                via_url(&operator),
                Allowed,
            ),
            case(
                format!("{operator}: a plain invoke"),
                call("lambda:InvokeFunction", &operator),
                ImplicitlyDenied,
            ),
        ]);
    }
    cases.extend([
        case(
            "another principal of the account, no identity grant",
            call("lambda:InvokeFunctionUrl", &attacker()),
            ImplicitlyDenied,
        ),
        case(
            "a principal of another account with lambda:*",
            call(
                "lambda:InvokeFunctionUrl",
                &format!("arn:aws:sts::{OUTSIDER}:assumed-role/Admin/x"),
            )
            .policy(broad(&["lambda"])),
            ImplicitlyDenied,
        ),
        case(
            "a BreakGlass role of another account with lambda:*",
            via_url(&format!(
                "arn:aws:sts::{OUTSIDER}:assumed-role/BreakGlass/x"
            ))
            .policy(broad(&["lambda"])),
            ImplicitlyDenied,
        ),
    ]);
    check(cases);

    // Exactly a URL permission and a via-URL invoke per operator, nothing else.
    let mut principals = url_principals(&stack);
    principals.sort();
    assert_eq!(
        principals,
        [
            (
                "lambda:InvokeFunction".to_owned(),
                BREAK_GLASS_ROLE.to_owned()
            ),
            ("lambda:InvokeFunction".to_owned(), ONCALL_USER.to_owned()),
            (
                "lambda:InvokeFunctionUrl".to_owned(),
                BREAK_GLASS_ROLE.to_owned()
            ),
            (
                "lambda:InvokeFunctionUrl".to_owned(),
                ONCALL_USER.to_owned()
            ),
        ]
    );
    for st in as_list(&policy["Statement"]) {
        if st["Principal"]["AWS"].is_string() {
            let conditions = st["Condition"].to_string();
            assert!(
                conditions.contains("lambda:FunctionUrlAuthType")
                    || conditions.contains("lambda:InvokedViaFunctionUrl"),
                "an operator statement without the URL condition: {st}"
            );
        }
    }
}

#[test]
fn the_function_url_admits_one_to_five_operators_and_only_of_this_account() {
    let five: Vec<String> = (1..=5)
        .map(|i| format!("arn:aws:iam::{ACCOUNT}:role/op{i}"))
        .collect();
    for n in 1..=5 {
        let stack = responder(&[("OperatorPrincipalArns", &five[..n].join(","))]);
        let principals = url_principals(&stack);
        assert_eq!(principals.len(), 2 * n, "{n} operators: {principals:?}");
        let named: BTreeSet<&str> = principals.iter().map(|(_, p)| p.as_str()).collect();
        let expected: BTreeSet<&str> = five[..n].iter().map(String::as_str).collect();
        assert_eq!(named, expected);
    }
    // An ARN of another account is read as this account's: the URL is never granted
    // across accounts.
    let stack = responder(&[(
        "OperatorPrincipalArns",
        "arn:aws:iam::999988887777:role/team/ops",
    )]);
    for (_, principal) in url_principals(&stack) {
        assert_eq!(principal, format!("arn:aws:iam::{ACCOUNT}:role/team/ops"));
    }
}

/// `re.fullmatch` of a parameter's AllowedPattern (CloudFormation matches the whole
/// value; Python's syntax is the same for these patterns).
fn pattern_accepts(pattern: &str, value: &str) -> bool {
    let status = Command::new(workspace_root().join(".venv/bin/python"))
        .args([
            "-c",
            "import re, sys; sys.exit(0 if re.fullmatch(sys.argv[1], sys.argv[2]) else 1)",
            pattern,
            value,
        ])
        .status()
        .unwrap();
    status.success()
}

#[test]
fn operator_principals_must_be_one_to_five_exact_role_or_user_arns() {
    let pattern = responder_template()["Parameters"]["OperatorPrincipalArns"]["AllowedPattern"]
        .as_str()
        .unwrap();
    let five: Vec<String> = (1..=6)
        .map(|i| format!("arn:aws:iam::{ACCOUNT}:role/op{i}"))
        .collect();
    for ok in [
        BREAK_GLASS_ROLE.to_owned(),
        format!("{BREAK_GLASS_ROLE},{ONCALL_USER}"),
        "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Ops_0123456789abcdef".to_owned(),
        five[..5].join(","),
    ] {
        assert!(pattern_accepts(pattern, &ok), "refused {ok}");
    }
    for bad in [
        String::new(),
        five.join(","),
        "arn:aws:iam::111122223333:role/*".to_owned(),
        "arn:aws:iam::111122223333:role/BreakGlass*".to_owned(),
        "arn:aws:iam::111122223333:root".to_owned(),
        "arn:aws:iam::111122223333:group/ops".to_owned(),
        format!("{BREAK_GLASS_ROLE}, {ONCALL_USER}"),
        "111122223333".to_owned(),
    ] {
        assert!(!pattern_accepts(pattern, &bad), "accepted {bad:?}");
    }
    let accounts = responder_template()["Parameters"]["AllowedAccounts"]["AllowedPattern"]
        .as_str()
        .unwrap();
    assert!(pattern_accepts(accounts, ""));
    assert!(pattern_accepts(accounts, "444455556666,555566667777"));
    assert!(!pattern_accepts(accounts, "444455556666, 555566667777"));
    assert!(!pattern_accepts(accounts, "*"));
}

/// The SCP infra/README.md gives, read from the README itself.
pub(crate) fn readme_scp() -> Value {
    let readme = std::fs::read_to_string(workspace_root().join("infra/README.md")).unwrap();
    let start = readme
        .find("<!-- scp: revoker-plain-invoke")
        .expect("the SCP marker in infra/README.md");
    let block = &readme[start..];
    let json_start = block.find("```json\n").unwrap() + "```json\n".len();
    let json_end = json_start + block[json_start..].find("```").unwrap();
    serde_json::from_str(&block[json_start..json_end]).expect("the README's SCP is JSON")
}

#[test]
fn the_readme_scp_refuses_a_plain_invoke_of_the_revoker() {
    let stack = responder(&[]);
    let function = stack.arn("RevokerFunction");
    let policy = stack.lambda_policy("RevokerFunction");
    let scp = readme_scp();
    let invoke = |principal: &str| {
        EvalRequest::new("lambda:InvokeFunction", &function, principal)
            .resource_policy(policy.clone())
    };
    use Decision::*;
    check(vec![
        // What the SCP is for: Lambda resource policies cannot Deny.
        case(
            "an administrator (lambda:*) invokes with any payload, without the SCP",
            invoke(&attacker()).policy(broad(&["lambda"])),
            Allowed,
        ),
        case(
            "the same with the SCP",
            invoke(&attacker())
                .policy(broad(&["lambda"]))
                .scp(scp.clone()),
            ExplicitlyDenied,
        ),
        case(
            "an operator through the URL, with the SCP",
            invoke(&session(BREAK_GLASS_ROLE, "alice"))
                .context("lambda:InvokedViaFunctionUrl", "true")
                .scp(scp.clone()),
            Allowed,
        ),
        case(
            "an operator's plain invoke, with the SCP",
            invoke(&session(BREAK_GLASS_ROLE, "alice"))
                .policy(broad(&["lambda"]))
                .scp(scp.clone()),
            ExplicitlyDenied,
        ),
        case(
            "another function is not affected",
            EvalRequest::new(
                "lambda:InvokeFunction",
                &format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:payments"),
                &attacker(),
            )
            .policy(broad(&["lambda"]))
            .scp(scp.clone()),
            Allowed,
        ),
        // The follow-up's runs: Scheduler invokes with the follow-up scheduler role.
        case(
            "Scheduler's session of the follow-up scheduler role delivers a run, with the SCP",
            invoke(&session(
                &role_arn(&stack, "FollowUpSchedulerRole"),
                "scheduler",
            ))
            .policy(stack.role_policy("FollowUpSchedulerRole"))
            .scp(scp.clone()),
            Allowed,
        ),
    ]);
    // Nobody but the revoker makes, changes or deletes a follow-up schedule (which could
    // invoke the revoker with any payload, or stop a follow-up), or passes that role.
    let schedule = format!(
        "arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/cutoff-follow-ups/cutoff-chain-0123-1"
    );
    let revoker = session(&role_arn(&stack, "RevokerRole"), "r");
    let scheduler_role = role_arn(&stack, "FollowUpSchedulerRole");
    let mut cases = Vec::new();
    for action in [
        "scheduler:CreateSchedule",
        "scheduler:UpdateSchedule",
        "scheduler:DeleteSchedule",
    ] {
        cases.push(case(
            format!("an administrator's {action} in cutoff's group, with the SCP"),
            EvalRequest::new(action, &schedule, &attacker())
                .policy(broad(&["scheduler"]))
                .scp(scp.clone()),
            ExplicitlyDenied,
        ));
    }
    cases.push(case(
        "an administrator deletes cutoff's schedule group, with the SCP",
        EvalRequest::new(
            "scheduler:DeleteScheduleGroup",
            &format!("arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/cutoff-follow-ups"),
            &attacker(),
        )
        .policy(broad(&["scheduler"]))
        .scp(scp.clone()),
        ExplicitlyDenied,
    ));
    cases.push(case(
        "an administrator passes the follow-up scheduler role, with the SCP",
        EvalRequest::new("iam:PassRole", &scheduler_role, &attacker())
            .policy(broad(&["iam"]))
            .context("iam:PassedToService", "scheduler.amazonaws.com")
            .scp(scp.clone()),
        ExplicitlyDenied,
    ));
    cases.push(case(
        "the revoker makes its schedule, with the SCP",
        EvalRequest::new("scheduler:CreateSchedule", &schedule, &revoker)
            .policy(stack.role_policy("RevokerRole"))
            .scp(scp.clone()),
        Allowed,
    ));
    cases.push(case(
        "the revoker passes the follow-up scheduler role to Scheduler, with the SCP",
        EvalRequest::new("iam:PassRole", &scheduler_role, &revoker)
            .policy(stack.role_policy("RevokerRole"))
            .context("iam:PassedToService", "scheduler.amazonaws.com")
            .scp(scp.clone()),
        Allowed,
    ));
    cases.push(case(
        "the revoker cannot pass it to another service",
        EvalRequest::new("iam:PassRole", &scheduler_role, &revoker)
            .policy(stack.role_policy("RevokerRole"))
            .context("iam:PassedToService", "lambda.amazonaws.com")
            .scp(scp),
        ImplicitlyDenied,
    ));
    check(cases);
}

// ------------------------------------------------------------------ break-glass template

fn break_glass(extra: &[(&str, &str)]) -> Stack {
    let mut params: BTreeMap<&str, &str> = BTreeMap::from([
        (
            "RevokerFunctionArn",
            "arn:aws:lambda:us-east-1:111122223333:function:cutoff-revoker",
        ),
        ("CreateOperatorRole", "true"),
        ("IdentityCenterPermissionSets", "CutoffOperator,Admin"),
    ]);
    params.extend(extra.iter().copied());
    let params: Vec<(&str, &str)> = params.into_iter().collect();
    Stack::new(break_glass_template(), &params)
}

#[test]
fn the_break_glass_policy_grants_no_plain_invoke() {
    let stack = break_glass(&[]);
    let function = "arn:aws:lambda:us-east-1:111122223333:function:cutoff-revoker";
    let managed = stack.properties("BreakGlassInvokePolicy")["PolicyDocument"].clone();
    let role_policy = stack.role_policy("OperatorRole");
    let alice = "arn:aws:iam::111122223333:user/alice";
    let with_mfa = |r: EvalRequest, age: &str| {
        r.context("aws:MultiFactorAuthPresent", "true")
            .context("aws:MultiFactorAuthAge", age)
    };
    let invoke = |policy: &Value, principal: &str| {
        EvalRequest::new("lambda:InvokeFunction", function, principal).policy(policy.clone())
    };
    let url = |policy: &Value, principal: &str, auth: &str| {
        EvalRequest::new("lambda:InvokeFunctionUrl", function, principal)
            .policy(policy.clone())
            .context("lambda:FunctionUrlAuthType", auth)
    };
    let operator = session(
        "arn:aws:iam::111122223333:role/CutoffBreakGlassOperator",
        "alice",
    );
    use Decision::*;
    check(vec![
        case(
            "managed policy, MFA: plain invoke",
            with_mfa(invoke(&managed, alice), "60"),
            ImplicitlyDenied,
        ),
        case(
            "managed policy, MFA: invoke through the URL",
            with_mfa(invoke(&managed, alice), "60").context("lambda:InvokedViaFunctionUrl", "true"),
            Allowed,
        )
        .by("InvokeRevokerThroughUrlWithRecentMfa"),
        case(
            "managed policy, MFA: the URL",
            with_mfa(url(&managed, alice, "AWS_IAM"), "60"),
            Allowed,
        )
        .by("CallRevokerUrlWithRecentMfa"),
        case(
            "managed policy, MFA: the URL if it were public",
            with_mfa(url(&managed, alice, "NONE"), "60"),
            ImplicitlyDenied,
        ),
        case(
            "managed policy, no MFA: the URL",
            url(&managed, alice, "AWS_IAM"),
            ImplicitlyDenied,
        ),
        case(
            "managed policy, MFA two hours old: the URL",
            with_mfa(url(&managed, alice, "AWS_IAM"), "7200"),
            ImplicitlyDenied,
        ),
        case(
            "operator role: plain invoke",
            invoke(&role_policy, &operator),
            ImplicitlyDenied,
        ),
        case(
            "operator role: invoke through the URL",
            invoke(&role_policy, &operator).context("lambda:InvokedViaFunctionUrl", "true"),
            Allowed,
        ),
        case(
            "operator role: the URL",
            url(&role_policy, &operator, "AWS_IAM"),
            Allowed,
        ),
        // Finding the stack's URL: read only, and the managed policy's with MFA.
        case(
            "managed policy, MFA: list the stacks",
            with_mfa(find_stack(&managed, alice), "60"),
            Allowed,
        )
        .by("FindCutoffStackWithRecentMfa"),
        case(
            "managed policy, no MFA: list the stacks",
            find_stack(&managed, alice),
            ImplicitlyDenied,
        ),
        case(
            "operator role: list the stacks",
            find_stack(&role_policy, &operator),
            Allowed,
        )
        .by("FindCutoffStack"),
        case(
            "operator role: change a stack",
            EvalRequest::new("cloudformation:UpdateStack", "*", &operator)
                .policy(role_policy.clone()),
            ImplicitlyDenied,
        ),
    ]);
}

fn find_stack(policy: &Value, principal: &str) -> EvalRequest {
    EvalRequest::new("cloudformation:DescribeStacks", "*", principal).policy(policy.clone())
}

#[test]
fn the_operator_role_admits_mfa_principals_and_the_named_identity_center_sets() {
    let stack = break_glass(&[]);
    let restricted = break_glass(&[(
        "OperatorPrincipalArns",
        "arn:aws:iam::111122223333:user/alice",
    )]);
    let no_sets = break_glass(&[("IdentityCenterPermissionSets", "")]);
    let role = stack.arn("OperatorRole");
    let assume = |stack: &Stack, principal: &str| {
        EvalRequest::new("sts:AssumeRole", &role, principal)
            .policy(broad(&["sts"]))
            .resource_policy(stack.trust_policy("OperatorRole"))
    };
    let mfa = |r: EvalRequest| {
        r.context("aws:MultiFactorAuthPresent", "true")
            .context("aws:MultiFactorAuthAge", "120")
    };
    // An Identity Center session: the role's ARN (with its path) is aws:PrincipalArn.
    let sso = |stack: &Stack, role_name: &str, path: &str| {
        assume(
            stack,
            &format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/alice@example.com"),
        )
        .context(
            "aws:PrincipalArn",
            format!("arn:aws:iam::{ACCOUNT}:role{path}{role_name}"),
        )
    };
    let sso_path = "/aws-reserved/sso.amazonaws.com/us-east-1/";
    let alice = "arn:aws:iam::111122223333:user/alice";
    let bob = "arn:aws:iam::111122223333:user/bob";
    use Decision::*;
    check(vec![
        case("a user with MFA", mfa(assume(&stack, alice)), Allowed).by("OperatorsWithMfa"),
        case(
            "a user without MFA",
            assume(&stack, alice),
            ImplicitlyDenied,
        ),
        case(
            "the listed user with MFA",
            mfa(assume(&restricted, alice)),
            Allowed,
        ),
        case(
            "an unlisted user with MFA",
            mfa(assume(&restricted, bob)),
            ImplicitlyDenied,
        ),
        case(
            "Identity Center set CutoffOperator",
            sso(
                &stack,
                "AWSReservedSSO_CutoffOperator_0123456789abcdef",
                sso_path,
            ),
            Allowed,
        )
        .by("IdentityCenterOperators"),
        case(
            "Identity Center set Admin, path without region",
            sso(
                &stack,
                "AWSReservedSSO_Admin_fedcba9876543210",
                "/aws-reserved/sso.amazonaws.com/",
            ),
            Allowed,
        ),
        case(
            "Identity Center set Admin_Ops (not listed; Admin is)",
            sso(
                &stack,
                "AWSReservedSSO_Admin_Ops_0123456789abcdef",
                sso_path,
            ),
            ImplicitlyDenied,
        ),
        case(
            "Identity Center set ReadOnly",
            sso(&stack, "AWSReservedSSO_ReadOnly_0123456789abcdef", sso_path),
            ImplicitlyDenied,
        ),
        case(
            "a role named like an Identity Center role, outside its path",
            sso(
                &stack,
                "AWSReservedSSO_CutoffOperator_0123456789abcdef",
                "/",
            ),
            ImplicitlyDenied,
        ),
        case(
            "no sets listed",
            sso(
                &no_sets,
                "AWSReservedSSO_CutoffOperator_0123456789abcdef",
                sso_path,
            ),
            ImplicitlyDenied,
        ),
    ]);
}

// ------------------------------------------------------------------ rules

/// Every rule that makes intake act matches a source only AWS can give an event
/// (`aws.…`: PutEvents refuses it to anyone else), so no principal allowed
/// events:PutEvents on the default bus can forge a finding or an API call.
#[test]
fn every_rule_on_the_default_bus_matches_a_source_only_aws_can_use() {
    let stack = responder(&[
        ("CloudTrailEventNames", "StopLogging"),
        ("SecurityHubImported", "true"),
        ("SecurityHubCustomAction", "true"),
        ("SecurityHubV2", "true"),
    ]);
    let rules = stack.resources_of_type("AWS::Events::Rule");
    let mut checked = 0;
    for rule in &rules {
        let props = stack.properties(rule);
        if props["EventBusName"] != "default" {
            continue;
        }
        let pattern = match &props["EventPattern"] {
            Value::String(text) => serde_json::from_str(text).unwrap(),
            other => other.clone(),
        };
        let sources = as_list(&pattern["source"]);
        assert!(!sources.is_empty(), "{rule} matches any source");
        for source in sources {
            let ok = match &source {
                Value::String(s) => s.starts_with("aws."),
                Value::Object(m) => m.len() == 1 && m.get("prefix") == Some(&json!("aws.")),
                _ => false,
            };
            assert!(ok, "{rule}: source {source} can be forged");
        }
        checked += 1;
    }
    assert_eq!(checked, 5, "{rules:?}");
}

/// The responder with every rule it can have: each opt-in on.
fn responder_with_every_rule() -> Stack {
    responder(&[
        ("CloudTrailEventNames", "StopLogging"),
        ("SecurityHubImported", "true"),
        ("SecurityHubCustomAction", "true"),
        ("SecurityHubV2", "true"),
    ])
}

/// Each rule that delivers to intake may invoke it (its AWS::Lambda::Permission) and
/// park what it could not deliver in the failure queue (the queue's policy names the
/// rule): an opt-in rule created without either would drop its events. No other rule of
/// the account may do either, and an opt-in rule's grants go with it.
#[test]
fn every_rule_may_invoke_intake_and_dead_letter_into_the_failure_queue() {
    let stack = responder_with_every_rule();
    let intake = stack.arn("IntakeFunction");
    let queue = stack.arn("FailureQueue");
    let invoke_policy = stack.lambda_policy("IntakeFunction");
    let queue_policy = stack.properties("FailureQueuePolicy")["PolicyDocument"].clone();
    let by_rule = |action: &str, resource: &str, policy: &Value, rule_arn: &str| {
        EvalRequest::new(action, resource, "events.amazonaws.com")
            .resource_policy(policy.clone())
            .context("aws:SourceArn", rule_arn)
            .context("aws:SourceAccount", ACCOUNT)
    };
    let to_intake: Vec<String> = stack
        .resources_of_type("AWS::Events::Rule")
        .into_iter()
        .filter(|rule| {
            as_list(&stack.properties(rule)["Targets"])
                .iter()
                .any(|t| t["Arn"] == intake.as_str())
        })
        .collect();
    assert_eq!(
        to_intake
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([
            "GuardDutyRule",
            "SecurityHubActionRule",
            "SecurityHubImportedFindingsRule",
            "SecurityHubV2FindingsRule",
            "CloudTrailApiCallRule",
        ])
    );
    use Decision::*;
    let mut cases = Vec::new();
    for rule in &to_intake {
        let arn = stack.arn(rule);
        let props = stack.properties(rule);
        let target = &as_list(&props["Targets"])[0];
        assert_eq!(target["DeadLetterConfig"]["Arn"], queue.as_str(), "{rule}");
        cases.push(case(
            format!("{rule} invokes intake"),
            by_rule("lambda:InvokeFunction", &intake, &invoke_policy, &arn),
            Allowed,
        ));
        cases.push(
            case(
                format!("{rule} dead-letters into the failure queue"),
                by_rule("sqs:SendMessage", &queue, &queue_policy, &arn),
                Allowed,
            )
            .by("EventBridgeRuleDeadLetters"),
        );
    }
    let other = format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/my-rule");
    cases.push(case(
        "another rule of the account invokes intake",
        by_rule("lambda:InvokeFunction", &intake, &invoke_policy, &other),
        ImplicitlyDenied,
    ));
    cases.push(case(
        "another rule of the account dead-letters into the failure queue",
        by_rule("sqs:SendMessage", &queue, &queue_policy, &other),
        ImplicitlyDenied,
    ));
    // Without the V2 opt-in, its rule's name admits nothing.
    let off = responder(&[]);
    assert!(!off.exists("SecurityHubV2FindingsRule"));
    assert!(!off.exists("SecurityHubV2RulePermission"));
    let v2 = stack.arn("SecurityHubV2FindingsRule");
    cases.push(case(
        "without SecurityHubV2, a rule of the V2 rule's name invokes intake",
        by_rule(
            "lambda:InvokeFunction",
            &intake,
            &off.lambda_policy("IntakeFunction"),
            &v2,
        ),
        ImplicitlyDenied,
    ));
    cases.push(case(
        "without SecurityHubV2, a rule of the V2 rule's name dead-letters",
        by_rule(
            "sqs:SendMessage",
            &queue,
            &off.properties("FailureQueuePolicy")["PolicyDocument"],
            &v2,
        ),
        ImplicitlyDenied,
    ));
    check(cases);
}

// ------------------------------------------------------------------ Security Hub updates

/// A hub V2's ARN (`hubv2/<id>`; the id is AWS's, unknown when the stack is deployed).
fn hub_v2(account: &str, region: &str) -> String {
    format!("arn:aws:securityhub:{region}:{account}:hubv2/a1b2c3d4-5678-90ab-cdef-0123456789ab")
}

/// The notifier updates a finding only to say cutoff acted on it: an ASFF finding's
/// workflow to NOTIFIED (with the custom action), a V2 (OCSF) finding's status to In
/// Progress, StatusId 2 (with SecurityHubV2); each with a note or comment, and nothing
/// else, so that it can never downgrade or hide a member account's finding. Both
/// BatchUpdateFindings and BatchUpdateFindingsV2 are authorized as
/// `securityhub:BatchUpdateFindings`, on the hub (`hub/default`) and the hub V2
/// (`hubv2/<id>`) resource types; the fields are the condition keys
/// `securityhub:ASFFSyntaxPath/<field>` and `securityhub:OCSFSyntaxPath/<field>`.
#[test]
fn the_notifier_may_only_mark_security_hub_findings_as_acted_on() {
    const UPDATE: &str = "securityhub:BatchUpdateFindings";
    const OCSF: &str = "securityhub:OCSFSyntaxPath/";
    const ASFF: &str = "securityhub:ASFFSyntaxPath/";
    let note = "cutoff: revoked the sessions of role payments-api in 111122223333";
    let hub = format!("arn:aws:securityhub:{REGION}:{ACCOUNT}:hub/default");
    let hub_v2_here = hub_v2(ACCOUNT, REGION);
    let update = |stack: &Stack, resource: &str, fields: &[(&str, &str)]| {
        let mut request = EvalRequest::new(
            UPDATE,
            resource,
            &session(&stack.arn("NotifierRole"), "cutoff-notifier"),
        )
        .policy(stack.role_policy("NotifierRole"));
        for (key, value) in fields {
            request = request.context(key, *value);
        }
        request
    };
    let statements = |stack: &Stack| -> Vec<Value> {
        as_list(&stack.role_policy("NotifierRole")["Statement"])
            .into_iter()
            .filter(|s| s["Action"].to_string().contains("securityhub:"))
            .collect()
    };

    // The grant, exactly: with SecurityHubV2 one Allow of StatusId 2 and one Deny of any
    // SeverityId, on this account's and region's hubs V2; without it, nothing on them.
    let v2 = responder(&[("SecurityHubV2", "true")]);
    let hubs_v2 = format!("arn:aws:securityhub:{REGION}:{ACCOUNT}:hubv2/*");
    assert_eq!(
        statements(&v2),
        [
            json!({
                "Sid": "MarkV2FindingsInProgress", "Effect": "Allow", "Action": UPDATE,
                "Resource": hubs_v2,
                "Condition": {"StringEquals": {format!("{OCSF}StatusId"): "2"}}
            }),
            json!({
                "Sid": "DenyV2SeverityUpdates", "Effect": "Deny", "Action": UPDATE,
                "Resource": hubs_v2,
                "Condition": {"Null": {format!("{OCSF}SeverityId"): "false"}}
            }),
        ]
    );
    assert!(statements(&responder(&[])).is_empty());
    let action = responder(&[("SecurityHubCustomAction", "true")]);
    assert!(
        statements(&action)
            .iter()
            .all(|s| s["Resource"] == hub.as_str()),
        "{:?}",
        statements(&action)
    );
    let both = responder(&[
        ("SecurityHubV2", "true"),
        ("SecurityHubCustomAction", "true"),
    ]);
    assert_eq!(
        statements(&both).len(),
        statements(&v2).len() + statements(&action).len()
    );

    let status = format!("{OCSF}StatusId");
    let severity = format!("{OCSF}SeverityId");
    let comment = format!("{OCSF}Comment");
    let workflow = format!("{ASFF}Workflow.Status");
    let label = format!("{ASFF}Severity.Label");
    let note_text = format!("{ASFF}Note.Text");
    use Decision::*;
    let mut cases = Vec::new();
    for stack in [&v2, &both] {
        let with = if stack.condition("SecurityHubActionEnabled") {
            " (custom action on too)"
        } else {
            ""
        };
        cases.extend([
            case(
                format!("V2: In Progress with a comment{with}"),
                update(stack, &hub_v2_here, &[(&status, "2"), (&comment, note)]),
                Allowed,
            )
            .by("MarkV2FindingsInProgress"),
            case(
                format!("V2: In Progress alone{with}"),
                update(stack, &hub_v2_here, &[(&status, "2")]),
                Allowed,
            )
            .by("MarkV2FindingsInProgress"),
            case(
                format!("V2: In Progress and a lower severity{with}"),
                update(
                    stack,
                    &hub_v2_here,
                    &[(&status, "2"), (&severity, "1"), (&comment, note)],
                ),
                ExplicitlyDenied,
            )
            .by("DenyV2SeverityUpdates"),
            case(
                format!("V2: a severity alone{with}"),
                update(stack, &hub_v2_here, &[(&severity, "6")]),
                ExplicitlyDenied,
            )
            .by("DenyV2SeverityUpdates"),
        ]);
        for (what, other_status) in [("Suppressed", "3"), ("Resolved", "4"), ("New", "1")] {
            cases.push(case(
                format!("V2: status {what}{with}"),
                update(
                    stack,
                    &hub_v2_here,
                    &[(&status, other_status), (&comment, note)],
                ),
                ImplicitlyDenied,
            ));
        }
        cases.extend([
            case(
                format!("V2: a comment alone{with}"),
                update(stack, &hub_v2_here, &[(&comment, note)]),
                ImplicitlyDenied,
            ),
            case(
                format!("V2: In Progress on another region's hub V2{with}"),
                update(stack, &hub_v2(ACCOUNT, "eu-west-1"), &[(&status, "2")]),
                ImplicitlyDenied,
            ),
            case(
                format!("V2: In Progress on another account's hub V2{with}"),
                update(stack, &hub_v2(OUTSIDER, REGION), &[(&status, "2")]),
                ImplicitlyDenied,
            ),
            // The V2 grant is not a grant on the ASFF hub.
            case(
                format!("V2 fields on the ASFF hub{with}"),
                update(stack, &hub, &[(&status, "2"), (&comment, note)]),
                ImplicitlyDenied,
            ),
        ]);
    }
    // The custom action's grant (ASFF), and that it is not a grant on hubs V2.
    for stack in [&action, &both] {
        let with = if stack.condition("SecurityHubV2Rule") {
            " (V2 on too)"
        } else {
            ""
        };
        cases.extend([
            case(
                format!("ASFF: NOTIFIED with a note{with}"),
                update(stack, &hub, &[(&workflow, "NOTIFIED"), (&note_text, note)]),
                Allowed,
            )
            .by("MarkFindingsNotified"),
            case(
                format!("ASFF: NOTIFIED and a lower severity{with}"),
                update(stack, &hub, &[(&workflow, "NOTIFIED"), (&label, "LOW")]),
                ExplicitlyDenied,
            )
            .by("DenySeverityLabelUpdates"),
            case(
                format!("ASFF: RESOLVED{with}"),
                update(stack, &hub, &[(&workflow, "RESOLVED")]),
                ImplicitlyDenied,
            ),
            case(
                format!("ASFF fields on a hub V2{with}"),
                update(
                    stack,
                    &hub_v2_here,
                    &[(&workflow, "NOTIFIED"), (&note_text, note)],
                ),
                ImplicitlyDenied,
            ),
        ]);
    }
    // Without SecurityHubV2 the notifier updates no V2 finding.
    for stack in [
        responder(&[]),
        responder(&[("SecurityHubCustomAction", "true")]),
    ] {
        cases.push(case(
            format!(
                "V2 off{}: In Progress with a comment",
                if stack.condition("SecurityHubActionEnabled") {
                    " (custom action on)"
                } else {
                    ""
                }
            ),
            update(&stack, &hub_v2_here, &[(&status, "2"), (&comment, note)]),
            ImplicitlyDenied,
        ));
    }
    check(cases);
}

// ------------------------------------------------------------------ forwarder

/// The forwarder's dead-letter queue holds what could not be forwarded, for the security
/// team to read: only the stack's rules may put anything there.
#[test]
fn only_the_forwarders_rules_can_send_to_its_dead_letter_queue() {
    let stack = Stack::new(&load("forwarder.yaml"), &[("ResponderRegion", "eu-west-1")]);
    let policy = stack.properties("ForwarderDeadLetterQueuePolicy")["PolicyDocument"].clone();
    let queue = stack.arn("ForwarderDeadLetterQueue");
    let rule = |name: &str| format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}");
    let send = |principal: &str| {
        EvalRequest::new("sqs:SendMessage", &queue, principal).resource_policy(policy.clone())
    };
    use Decision::*;
    check(vec![
        case(
            "EventBridge, for the forwarder's GuardDuty rule",
            send("events.amazonaws.com")
                .context("aws:SourceArn", rule("cutoff-forward-guardduty"))
                .context("aws:SourceAccount", ACCOUNT),
            Allowed,
        )
        .by("OnlyTheForwardingRules"),
        case(
            "EventBridge, for another rule of the account",
            send("events.amazonaws.com")
                .context("aws:SourceArn", rule("my-rule"))
                .context("aws:SourceAccount", ACCOUNT),
            ExplicitlyDenied,
        )
        .by("NoOtherSenders"),
        case(
            "an administrator (sqs:*) of the account",
            send(&attacker()).policy(broad(&["sqs"])),
            ExplicitlyDenied,
        )
        .by("NoOtherSenders"),
    ]);
}

/// The forwarder's role (infra/forwarder.yaml) is EventBridge's, for this stack's rules:
/// an insider cannot assume it to put events on the responder's bus (and even if the
/// role were theirs, an `aws.` source is refused to every PutEvents caller).
#[test]
fn only_eventbridge_rules_of_the_forwarder_can_assume_its_role() {
    let stack = Stack::new(&load("forwarder.yaml"), &[("ResponderRegion", "eu-west-1")]);
    let trust = stack.trust_policy("ForwarderRole");
    let role = stack.arn("ForwarderRole");
    let rule = |name: &str| format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}");
    let assume = |principal: &str| {
        EvalRequest::new("sts:AssumeRole", &role, principal).resource_policy(trust.clone())
    };
    let by_eventbridge = |source_arn: &str, source_account: &str| {
        assume("events.amazonaws.com")
            .context("aws:SourceArn", source_arn)
            .context("aws:SourceAccount", source_account)
    };
    use Decision::*;
    check(vec![
        case(
            "EventBridge, for the forwarder's GuardDuty rule",
            by_eventbridge(&rule("cutoff-forward-guardduty"), ACCOUNT),
            Allowed,
        )
        .by("EventBridgeRulesOfThisStack"),
        case(
            "EventBridge, for a rule someone else made in this account",
            by_eventbridge(&rule("my-rule"), ACCOUNT),
            ImplicitlyDenied,
        ),
        case(
            "EventBridge, for a rule of the same name in another account",
            by_eventbridge(
                &format!("arn:aws:events:{REGION}:{OUTSIDER}:rule/cutoff-forward-guardduty"),
                OUTSIDER,
            ),
            ImplicitlyDenied,
        ),
        case(
            "an administrator of the account (sts:AssumeRole on *)",
            assume(&attacker()).policy(broad(&["sts"])),
            ImplicitlyDenied,
        ),
    ]);
}

/// The follow-up's runs reach the revoker only through Scheduler, for schedules of
/// cutoff's own group: Scheduler names the schedule group as the source, so a trust
/// policy keyed on a schedule's ARN would refuse every run.
#[test]
fn only_scheduler_for_cutoffs_schedule_group_can_assume_the_follow_up_role() {
    let stack = responder(&[]);
    let trust = stack.trust_policy("FollowUpSchedulerRole");
    let role = role_arn(&stack, "FollowUpSchedulerRole");
    let group = |account: &str, name: &str| {
        format!("arn:aws:scheduler:{REGION}:{account}:schedule-group/{name}")
    };
    let assume = |principal: &str| {
        EvalRequest::new("sts:AssumeRole", &role, principal).resource_policy(trust.clone())
    };
    let by_scheduler = |source_arn: &str, source_account: &str| {
        assume("scheduler.amazonaws.com")
            .context("aws:SourceArn", source_arn)
            .context("aws:SourceAccount", source_account)
    };
    use Decision::*;
    check(vec![
        case(
            "Scheduler, for a schedule of cutoff's group (the group is the source)",
            by_scheduler(&group(ACCOUNT, "cutoff-follow-ups"), ACCOUNT),
            Allowed,
        ),
        case(
            "Scheduler, naming a schedule instead of its group",
            by_scheduler(
                &format!(
                    "arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/cutoff-follow-ups/cutoff-chain-1"
                ),
                ACCOUNT,
            ),
            ImplicitlyDenied,
        ),
        case(
            "Scheduler, for another group of this account",
            by_scheduler(&group(ACCOUNT, "default"), ACCOUNT),
            ImplicitlyDenied,
        ),
        case(
            "Scheduler, for a group of the same name in another account",
            by_scheduler(&group(OUTSIDER, "cutoff-follow-ups"), OUTSIDER),
            ImplicitlyDenied,
        ),
        case(
            "an administrator of the account (sts:AssumeRole on *)",
            assume(&attacker()).policy(broad(&["sts"])),
            ImplicitlyDenied,
        ),
    ]);
}

// ------------------------------------------------------------------ Identity Center role

#[test]
fn only_the_revoker_with_the_external_id_can_assume_the_identity_center_role() {
    let responder = responder_with_identity_center(&[]);
    let ic = identity_center(&[]);
    let target = ic.arn("IdentityCenterRole");
    assert_eq!(target, IDENTITY_CENTER_ROLE);
    let trust = ic.trust_policy("IdentityCenterRole");
    let assume = |principal: &str, identity: Value, external_id: Option<&str>| {
        let mut request = EvalRequest::new("sts:AssumeRole", &target, principal)
            .policy(identity)
            .resource_policy(trust.clone());
        if let Some(id) = external_id {
            request = request.context("sts:ExternalId", id);
        }
        request
    };
    let revoker = session(
        &role_arn(&responder, "RevokerRole"),
        "cutoff-identity-center",
    );
    let revoker_policy = responder.role_policy("RevokerRole");
    let sts_all = broad(&["sts"]);
    use Decision::*;
    let mut cases = vec![
        case(
            "the revoker with the ExternalId",
            assume(&revoker, revoker_policy.clone(), Some(EXTERNAL_ID)),
            Allowed,
        )
        .by("CutoffRevoker"),
        case(
            "the revoker without the ExternalId",
            assume(&revoker, revoker_policy.clone(), None),
            ImplicitlyDenied,
        ),
        case(
            "the revoker with a wrong ExternalId",
            assume(&revoker, revoker_policy, Some("guess")),
            ImplicitlyDenied,
        ),
    ];
    for role in ["SweeperRole", "IntakeRole", "NotifierRole"] {
        cases.push(case(
            format!("{role}, given sts:AssumeRole on *, with the ExternalId"),
            assume(
                &session(&role_arn(&responder, role), "cutoff"),
                sts_all.clone(),
                Some(EXTERNAL_ID),
            ),
            ImplicitlyDenied,
        ));
    }
    cases.extend([
        case(
            "an administrator of the security account who knows the ExternalId",
            assume(&attacker(), sts_all.clone(), Some(EXTERNAL_ID)),
            ImplicitlyDenied,
        ),
        case(
            "a role named like the revoker in another account",
            assume(
                &format!("arn:aws:sts::{OUTSIDER}:assumed-role/cutoff-us-east-1-revoker/x"),
                sts_all.clone(),
                Some(EXTERNAL_ID),
            ),
            ImplicitlyDenied,
        ),
        case(
            "the revoker of a responder in another region",
            assume(
                &format!("arn:aws:sts::{ACCOUNT}:assumed-role/cutoff-eu-west-1-revoker/x"),
                sts_all.clone(),
                Some(EXTERNAL_ID),
            ),
            ImplicitlyDenied,
        ),
        case(
            "an administrator of the Identity Center account itself",
            assume(
                &format!("arn:aws:sts::{IDENTITY_CENTER_ACCOUNT}:assumed-role/Admin/x"),
                sts_all,
                Some(EXTERNAL_ID),
            ),
            ImplicitlyDenied,
        ),
    ]);
    check(cases);
}

#[test]
fn the_revoker_may_assume_only_the_configured_identity_center_role() {
    // Whoever owns a target may copy a trust policy that admits the security account:
    // the revoker's identity policy alone has to refuse what is not configured.
    let open_trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
        "Action": "sts:AssumeRole"
    }]});
    let assume = |stack: &Stack, role: &str, target: &str| {
        EvalRequest::new(
            "sts:AssumeRole",
            target,
            &session(&role_arn(stack, role), "cutoff-identity-center"),
        )
        .policy(stack.role_policy(role))
        .resource_policy(open_trust.clone())
        .context("sts:ExternalId", EXTERNAL_ID)
    };
    let configured = responder_with_identity_center(&[]);
    let plain = responder(&[]);
    let other = |name: &str| format!("arn:aws:iam::{IDENTITY_CENTER_ACCOUNT}:role/{name}");
    use Decision::*;
    check(vec![
        case(
            "configured: the revoker, the Identity Center role",
            assume(&configured, "RevokerRole", IDENTITY_CENTER_ROLE),
            Allowed,
        )
        .by("AssumeIdentityCenterRole"),
        case(
            "configured: the revoker, another role of the Identity Center account",
            assume(&configured, "RevokerRole", &other("Admin")),
            ImplicitlyDenied,
        ),
        case(
            "configured: the revoker, a role named like it",
            assume(
                &configured,
                "RevokerRole",
                &other("cutoff-identity-center-2"),
            ),
            ImplicitlyDenied,
        ),
        case(
            "configured: the sweeper, the Identity Center role",
            assume(&configured, "SweeperRole", IDENTITY_CENTER_ROLE),
            ImplicitlyDenied,
        ),
        case(
            "not configured: the revoker, the Identity Center role",
            assume(&plain, "RevokerRole", IDENTITY_CENTER_ROLE),
            ImplicitlyDenied,
        ),
    ]);

    // The grant, the settings the revoker reads and the protection come and go
    // together, and name the same role.
    let policy_id = "RevokerIdentityCenterPolicy";
    assert!(!plain.exists(policy_id));
    let env = &plain.properties("RevokerFunction")["Environment"]["Variables"];
    for var in [
        "CUTOFF_IDENTITY_CENTER_ROLE_ARN",
        "CUTOFF_IDENTITY_CENTER_REGION",
    ] {
        assert!(env.get(var).is_none(), "{var} set without the integration");
    }
    assert!(configured.exists(policy_id));
    let env = &configured.properties("RevokerFunction")["Environment"]["Variables"];
    assert_eq!(env["CUTOFF_IDENTITY_CENTER_ROLE_ARN"], IDENTITY_CENTER_ROLE);
    assert_eq!(env["CUTOFF_IDENTITY_CENTER_REGION"], "eu-west-1");
    for function in ["IntakeFunction", "NotifierFunction", "SweeperFunction"] {
        let env = configured.properties(function)["Environment"]["Variables"].to_string();
        assert!(!env.contains("CUTOFF_IDENTITY_CENTER"), "{function}: {env}");
    }
    let grant = configured.properties(policy_id);
    assert_eq!(grant["RoleName"], "cutoff-us-east-1-revoker");
    let statements = as_list(&grant["PolicyDocument"]["Statement"]);
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0]["Action"], "sts:AssumeRole");
    assert_eq!(statements[0]["Resource"], IDENTITY_CENTER_ROLE);
}

#[test]
fn the_identity_center_settings_are_set_together_or_not_at_all() {
    for (role, region, refused) in [
        ("", "", false),
        (IDENTITY_CENTER_ROLE, "eu-west-1", false),
        (IDENTITY_CENTER_ROLE, "", true),
        ("", "eu-west-1", true),
    ] {
        let stack = responder(&[
            ("IdentityCenterRoleArn", role),
            ("IdentityCenterRegion", region),
        ]);
        assert_eq!(
            !stack.broken_rules().is_empty(),
            refused,
            "{role:?} {region:?}: {:?}",
            stack.broken_rules()
        );
    }
    // The ARN is a role's, whole, at path / (the template's role): no wildcard.
    let pattern = responder_template()["Parameters"]["IdentityCenterRoleArn"]["AllowedPattern"]
        .as_str()
        .unwrap();
    for (value, accepted) in [
        ("", true),
        (IDENTITY_CENTER_ROLE, true),
        (
            "arn:aws-us-gov:iam::666677778888:role/cutoff-identity-center",
            true,
        ),
        ("arn:aws:iam::666677778888:role/*", false),
        ("arn:aws:iam::*:role/cutoff-identity-center", false),
        (
            "arn:aws:iam::666677778888:user/cutoff-identity-center",
            false,
        ),
        (
            "arn:aws:iam::666677778888:role/cutoff-identity-center,arn:aws:iam::1:role/x",
            false,
        ),
    ] {
        assert_eq!(pattern_accepts(pattern, value), accepted, "{value}");
    }
}

/// Security Hub V2's settings reach intake as the stack's parameters (off, GuardDuty's
/// findings only, by default), and `SecurityHubV2Products` admits exactly the product
/// lists intake's own code accepts (`company/product`, the tail of a finding's
/// `metadata.product.uid`), but for the spaces and empty entries the code forgives.
#[test]
fn the_v2_products_parameter_admits_exactly_what_intake_accepts() {
    let pattern = responder_template()["Parameters"]["SecurityHubV2Products"]["AllowedPattern"]
        .as_str()
        .unwrap();
    // What intake's handler reads them with (`TriageConfig::from_env`).
    let intake = |stack: &Stack| -> Result<cutoff_domain::settings::TriageConfig, String> {
        let env = stack.properties("IntakeFunction")["Environment"]["Variables"].clone();
        cutoff_domain::settings::TriageConfig::from_lookup(|name| env.get(name).map(scalar_text))
            .map_err(|e| e.to_string())
    };
    let defaults = responder(&[]);
    let env = &defaults.properties("IntakeFunction")["Environment"]["Variables"];
    assert_eq!(env["CUTOFF_SECURITYHUB_V2"], "false");
    assert_eq!(env["CUTOFF_SECURITYHUB_V2_PRODUCTS"], "aws/guardduty");
    assert!(intake(&defaults).is_ok());
    let on = responder(&[
        ("SecurityHubV2", "true"),
        (
            "SecurityHubV2Products",
            "aws/guardduty,acme-corp/threat-watch",
        ),
    ]);
    let env = &on.properties("IntakeFunction")["Environment"]["Variables"];
    assert_eq!(env["CUTOFF_SECURITYHUB_V2"], "true");
    assert_eq!(
        env["CUTOFF_SECURITYHUB_V2_PRODUCTS"],
        "aws/guardduty,acme-corp/threat-watch"
    );
    let part = "a".repeat(64);
    for (value, accepted) in [
        ("aws/guardduty", true),
        ("aws/guardduty,acme-corp/threat-watch", true),
        ("a/b", true),
        (&format!("{part}/{part}"), true),
        ("0day/x-1", true),
        ("", false),
        ("guardduty", false),
        ("aws/GuardDuty", false),
        ("aws/guard duty", false),
        ("aws/guardduty/x", false),
        ("-aws/guardduty", false),
        ("aws/-guardduty", false),
        ("aws/", false),
        ("/guardduty", false),
        (&format!("a{part}/b"), false),
        (
            "arn:aws:securityhub:us-east-1::productv2/aws/guardduty",
            false,
        ),
        ("aws/guardduty,*", false),
    ] {
        assert_eq!(
            pattern_accepts(pattern, value),
            accepted,
            "pattern: {value:?}"
        );
        let stack = responder(&[("SecurityHubV2", "true"), ("SecurityHubV2Products", value)]);
        assert_eq!(intake(&stack).is_ok(), accepted, "intake: {value:?}");
    }
    for value in ["aws/guardduty, acme-corp/threat-watch", "aws/guardduty,"] {
        assert!(!pattern_accepts(pattern, value), "{value:?}");
    }
}

/// The revoker's configuration, read by the revoker's own code from the environment the
/// stack gives it.
fn revoker_config(stack: &Stack) -> Result<cutoff::config::RevokerConfig, String> {
    let env = stack.properties("RevokerFunction")["Environment"]["Variables"].clone();
    cutoff::config::RevokerConfig::from_lookup(|name| env.get(name).map(scalar_text))
        .map_err(|e| e.to_string())
}

/// The SCP variant's setting (`IdentityCenterScpId`): only together with the integration
/// (a Rules assertion: the revoker refuses it alone), on the revoker alone and only when
/// set, and the parameter admits exactly what the revoker accepts.
#[test]
fn the_identity_center_scp_id_comes_only_with_the_integration() {
    for (role, region, scp, refused) in [
        ("", "", "", false),
        (IDENTITY_CENTER_ROLE, "eu-west-1", "", false),
        (IDENTITY_CENTER_ROLE, "eu-west-1", POLICY_ID, false),
        ("", "", POLICY_ID, true),
        (IDENTITY_CENTER_ROLE, "", POLICY_ID, true),
        ("", "eu-west-1", POLICY_ID, true),
    ] {
        let stack = responder(&[
            ("IdentityCenterRoleArn", role),
            ("IdentityCenterRegion", region),
            ("IdentityCenterScpId", scp),
        ]);
        let broken = stack.broken_rules();
        assert_eq!(
            !broken.is_empty(),
            refused,
            "{role:?} {region:?} {scp:?}: {broken:?}"
        );
        if !scp.is_empty() && refused {
            assert!(
                broken.iter().any(|b| b.contains("IdentityCenterScpId")),
                "{role:?} {region:?}: {broken:?}"
            );
        }
    }

    // On the revoker alone, only when set; the revoker's code reads it from there.
    let with = responder_with_identity_center(&[("IdentityCenterScpId", POLICY_ID)]);
    let without = responder_with_identity_center(&[]);
    let env = &with.properties("RevokerFunction")["Environment"]["Variables"];
    assert_eq!(env["CUTOFF_IDENTITY_CENTER_SCP_ID"], POLICY_ID);
    for function in ["IntakeFunction", "NotifierFunction", "SweeperFunction"] {
        let env = with.properties(function)["Environment"]["Variables"].to_string();
        assert!(!env.contains("CUTOFF_IDENTITY_CENTER"), "{function}: {env}");
    }
    for stack in [&without, &responder(&[])] {
        let env = &stack.properties("RevokerFunction")["Environment"]["Variables"];
        assert!(env.get("CUTOFF_IDENTITY_CENTER_SCP_ID").is_none(), "{env}");
    }
    let scp_of = |stack: &Stack| {
        revoker_config(stack)
            .unwrap()
            .identity_center
            .and_then(|ic| ic.scp_id)
    };
    assert_eq!(scp_of(&with).as_deref(), Some(POLICY_ID));
    assert_eq!(scp_of(&without), None);
    // The revoker's own role gains nothing with it: the Identity Center role writes.
    assert_eq!(
        with.role_policy("RevokerRole"),
        without.role_policy("RevokerRole")
    );

    // The parameter's pattern and the revoker's check agree: a policy id as
    // Organizations makes them for a customer's policy (an AWS managed one, such as
    // p-FullAWSAccess, cannot be written), whole, one.
    let pattern = responder_template()["Parameters"]["IdentityCenterScpId"]["AllowedPattern"]
        .as_str()
        .unwrap();
    let long = format!("p-{}", "a".repeat(128));
    let too_long = format!("p-{}", "a".repeat(129));
    for (value, accepted) in [
        ("", true),
        (POLICY_ID, true),
        ("p-examplepolicyid111", true),
        ("p-abc_defg", true),
        (long.as_str(), true),
        ("p-FullAWSAccess", false),
        ("p-short", false),
        ("p-", false),
        (too_long.as_str(), false),
        ("P-EXAMPLEPOLICYID111", false),
        (" p-examplepolicyid111", false),
        ("p-examplepolicyid111,p-examplepolicyid222", false),
        (
            "arn:aws:organizations::777788889999:policy/o-exampleorg1/service_control_policy/p-examplepolicyid111",
            false,
        ),
    ] {
        assert_eq!(pattern_accepts(pattern, value), accepted, "{value:?}");
        let stack = responder_with_identity_center(&[("IdentityCenterScpId", value)]);
        assert_eq!(
            revoker_config(&stack).is_ok(),
            accepted,
            "{value:?}: {:?}",
            revoker_config(&stack)
        );
    }
}

/// A sample ARN of a resource type: its variables filled in with `instance`, `store`
/// and fixed ids.
fn sample(pattern: &str, instance: &str, store: &str) -> String {
    pattern
        .replace("${Partition}", PARTITION)
        .replace("${InstanceId}", instance)
        .replace("${PermissionSetId}", "ps-0123456789abcdef")
        .replace("${AccountId}", MEMBER)
        .replace("${Account}", IDENTITY_CENTER_ACCOUNT)
        .replace("${IdentityStoreId}", store)
        .replace("${UserId}", "94482488-3041-7026-18f3-be45837cd0e4")
        .replace("${GroupId}", "a4b8d4f8-8031-70a2-7a35-2a1a30b0d3f1")
        .replace("${MembershipId}", "c4e81418-2081-704b-d1a7-0bdbd6a5b7f2")
}

#[test]
fn the_identity_center_role_reaches_only_its_instance_and_identity_store() {
    let ic = identity_center(&[]);
    let policy = ic.role_policy("IdentityCenterRole");
    let principal = session(&ic.arn("IdentityCenterRole"), "cutoff-identity-center");
    let granted: Vec<String> = as_list(&policy["Statement"])
        .iter()
        .flat_map(|s| as_list(&s["Action"]))
        .map(|a| scalar_text(&a))
        .collect();
    // What a role that could administer Identity Center would also hold: none of it.
    let refused = [
        "sso:CreateAccountAssignment",
        "sso:DeleteAccountAssignment",
        "sso:CreatePermissionSet",
        "sso:UpdatePermissionSet",
        "sso:DeletePermissionSet",
        "sso:AttachManagedPolicyToPermissionSet",
        "sso:AttachCustomerManagedPolicyReferenceToPermissionSet",
        "sso:PutPermissionsBoundaryToPermissionSet",
        "identitystore:CreateUser",
        "identitystore:UpdateUser",
        "identitystore:DeleteUser",
        "identitystore:CreateGroupMembership",
    ]
    .map(str::to_owned);
    let all: Vec<String> = granted.iter().chain(&refused).cloned().collect();
    let types = super::reference::resource_types(&all);
    let request = |action: &str, resource: &str| {
        EvalRequest::new(action, resource, &principal).policy(policy.clone())
    };
    use Decision::*;
    let mut cases = Vec::new();
    for (action, types) in all.iter().zip(&types) {
        let is_granted = granted.contains(action);
        if types.is_empty() {
            cases.push(case(
                format!("{action} on *"),
                request(action, "*"),
                if is_granted {
                    Allowed
                } else {
                    ImplicitlyDenied
                },
            ));
            continue;
        }
        for t in types.iter().filter(|t| t.required) {
            let own = sample(&t.arn, INSTANCE_ID, IDENTITY_STORE_ID);
            cases.push(case(
                format!("{action} on its {} {own}", t.name),
                request(action, &own),
                if is_granted {
                    Allowed
                } else {
                    ImplicitlyDenied
                },
            ));
            // Another instance's or identity store's resource of the same type.
            let foreign = sample(&t.arn, "ssoins-fedcba9876543210", "d-0987654321");
            if foreign != own {
                cases.push(case(
                    format!("{action} on another {} {foreign}", t.name),
                    request(action, &foreign),
                    ImplicitlyDenied,
                ));
            }
        }
    }
    assert!(cases.len() > 40, "{}", cases.len());
    check(cases);
}

/// A sample ARN of an Organizations resource type, in ORG of MANAGEMENT_ACCOUNT, with
/// fixed ids (the policy's: POLICY_ID, the id cutoff's own policy has here).
fn organizations_sample(pattern: &str) -> String {
    let arn = pattern
        .replace("${Partition}", PARTITION)
        .replace("${Account}", MANAGEMENT_ACCOUNT)
        .replace("o-${OrganizationId}", ORG)
        .replace("${PolicyType}", "service_control_policy")
        .replace("p-${PolicyId}", POLICY_ID)
        .replace("${RootId}", "ab12")
        .replace("${OrganizationalUnitId}", "ab12-cdefgh34")
        .replace("${AccountId}", MEMBER)
        .replace("${ResourcePolicyId}", "0123abcd")
        .replace("${HandshakeType}", "invite")
        .replace("${HandshakeId}", "0123abcd");
    assert!(!arn.contains("${"), "{arn}: fill in its variables");
    arn
}

/// The SCP variant: the Identity Center role reads and writes cutoff's own service
/// control policy and lists where that policy is attached, lists the parent of an
/// account or OU of this Organization (to know whether the policy reaches the finding's
/// account), and nothing else of Organizations (no other policy, of any type, read,
/// written or listed; no attaching, detaching, creating or deleting; no other
/// Organization's accounts); without the variant, nothing of Organizations at all.
#[test]
fn the_identity_center_role_writes_only_cutoffs_service_control_policy() {
    const WRITE: [&str; 2] = ["organizations:DescribePolicy", "organizations:UpdatePolicy"];
    const TARGETS: &str = "organizations:ListTargetsForPolicy";
    const PARENTS: &str = "organizations:ListParents";
    let on = identity_center_scp(&[]);
    let own = on.attribute("IdentityCenterServiceControlPolicy", "Arn");
    assert_eq!(
        own,
        format!(
            "arn:aws:organizations::{MANAGEMENT_ACCOUNT}:policy/{ORG}/service_control_policy/{POLICY_ID}"
        )
    );
    let organizations_actions = |stack: &Stack| -> BTreeSet<String> {
        as_list(&stack.role_policy("IdentityCenterRole")["Statement"])
            .iter()
            .flat_map(|s| as_list(&s["Action"]))
            .map(|a| scalar_text(&a))
            .filter(|a| a.starts_with("organizations:"))
            .collect()
    };
    assert_eq!(
        organizations_actions(&on),
        [WRITE[0], WRITE[1], TARGETS, PARENTS]
            .map(str::to_owned)
            .into()
    );
    // ListParents's resources, as the template derives them from the policy's ARN: the
    // management account's accounts and OUs of this Organization.
    let parents: Vec<String> = as_list(&on.role_policy("IdentityCenterRole")["Statement"])
        .iter()
        .filter(|s| {
            as_list(&s["Action"])
                .iter()
                .any(|a| scalar_text(a) == PARENTS)
        })
        .flat_map(|s| as_list(&s["Resource"]))
        .map(|r| scalar_text(&r))
        .collect();
    assert_eq!(
        parents,
        [
            format!("arn:aws:organizations::{MANAGEMENT_ACCOUNT}:account/{ORG}/*"),
            format!("arn:aws:organizations::{MANAGEMENT_ACCOUNT}:ou/{ORG}/ou-*"),
        ]
    );
    let request = |stack: &Stack, action: &str, resource: &str| {
        EvalRequest::new(
            action,
            resource,
            &session(&stack.arn("IdentityCenterRole"), "cutoff-identity-center"),
        )
        .policy(stack.role_policy("IdentityCenterRole"))
    };
    let policy_arn = |kind: &str, id: &str| {
        format!("arn:aws:organizations::{MANAGEMENT_ACCOUNT}:policy/{ORG}/{kind}/{id}")
    };
    let account_arn = |org: &str, account: &str| {
        format!("arn:aws:organizations::{MANAGEMENT_ACCOUNT}:account/{org}/{account}")
    };
    let ou_arn =
        |org: &str, ou: &str| format!("arn:aws:organizations::{MANAGEMENT_ACCOUNT}:ou/{org}/{ou}");
    use Decision::*;
    let mut cases = Vec::new();
    for (action, sid) in [
        (WRITE[0], "WriteServiceControlPolicy"),
        (WRITE[1], "WriteServiceControlPolicy"),
        (TARGETS, "ServiceControlPolicyTargets"),
    ] {
        cases.push(
            case(
                format!("{action} on cutoff's SCP"),
                request(&on, action, &own),
                Allowed,
            )
            .by(sid),
        );
        for (what, other) in [
            (
                "another SCP of the Organization",
                policy_arn("service_control_policy", "p-0otherscp01"),
            ),
            // An AWS managed policy's own ARN (arn:aws:organizations::aws:policy/…) is
            // not a resource type of these actions in the reference, and iam-simulate
            // refuses to be asked about it; its id in the Organization's form is.
            (
                "FullAWSAccess, in the Organization's form",
                policy_arn("service_control_policy", "p-FullAWSAccess"),
            ),
            (
                "a resource control policy",
                policy_arn("resource_control_policy", "p-0otherrcp01"),
            ),
            ("a tag policy", policy_arn("tag_policy", "p-0othertag01")),
            (
                "the same id in another Organization",
                format!(
                    "arn:aws:organizations::{OUTSIDER}:policy/o-otherorg001/service_control_policy/{POLICY_ID}"
                ),
            ),
        ] {
            cases.push(case(
                format!("{action} on {what}"),
                request(&on, action, &other),
                ImplicitlyDenied,
            ));
        }
    }
    // The walk from the finding's account to the root: any account or OU of this
    // Organization (a finding can come from any member account, and the management
    // account's own, which the code answers without the walk, is no exception here).
    for (what, child) in [
        ("a member account", account_arn(ORG, MEMBER)),
        ("another member account", account_arn(ORG, OTHER_MEMBER)),
        (
            "the management account",
            account_arn(ORG, MANAGEMENT_ACCOUNT),
        ),
        ("an OU", ou_arn(ORG, "ou-ab12-cdefgh34")),
        ("a nested OU", ou_arn(ORG, "ou-ab12-zyxw9876")),
    ] {
        cases.push(
            case(
                format!("{PARENTS} of {what}"),
                request(&on, PARENTS, &child),
                Allowed,
            )
            .by("AccountParents"),
        );
    }
    // Not another Organization's, whoever's ARN it is under.
    for (what, child) in [
        (
            "an account of another Organization",
            account_arn("o-otherorg001", MEMBER),
        ),
        (
            "an OU of another Organization",
            ou_arn("o-otherorg001", "ou-ab12-cdefgh34"),
        ),
        (
            "an account of another management account's Organization",
            format!("arn:aws:organizations::{OUTSIDER}:account/o-otherorg001/{MEMBER}"),
        ),
        (
            "an OU of another management account's Organization",
            format!("arn:aws:organizations::{OUTSIDER}:ou/o-otherorg001/ou-ab12-cdefgh34"),
        ),
    ] {
        cases.push(case(
            format!("{PARENTS} of {what}"),
            request(&on, PARENTS, &child),
            ImplicitlyDenied,
        ));
    }
    // What an Organizations administrator would also hold: none of it, on cutoff's own
    // policy and root, an OU and an account of the Organization.
    let refused = [
        "organizations:AttachPolicy",
        "organizations:DetachPolicy",
        "organizations:DeletePolicy",
        "organizations:CreatePolicy",
        "organizations:ListPolicies",
        "organizations:ListPoliciesForTarget",
        "organizations:ListChildren",
        "organizations:ListRoots",
        "organizations:ListAccounts",
        "organizations:DescribeAccount",
        "organizations:DescribeOrganizationalUnit",
        "organizations:MoveAccount",
        "organizations:EnablePolicyType",
        "organizations:DisablePolicyType",
        "organizations:PutResourcePolicy",
        "organizations:DescribeOrganization",
    ]
    .map(str::to_owned);
    let types = super::reference::resource_types(&refused);
    for (action, types) in refused.iter().zip(&types) {
        if types.is_empty() {
            cases.push(case(
                format!("{action} on *"),
                request(&on, action, "*"),
                ImplicitlyDenied,
            ));
        }
        for t in types {
            let resource = organizations_sample(&t.arn);
            cases.push(case(
                format!("{action} on its {} {resource}", t.name),
                request(&on, action, &resource),
                ImplicitlyDenied,
            ));
        }
    }
    // Without the variant, in the management account or a delegated administrator:
    // no policy, no grant, no Organizations action at all.
    for off in [
        identity_center_in(MANAGEMENT_ACCOUNT, &[]),
        identity_center(&[("ServiceControlPolicy", "false")]),
    ] {
        assert!(!off.exists("IdentityCenterServiceControlPolicy"));
        assert!(!off.exists("IdentityCenterServiceControlPolicyAccess"));
        assert_eq!(organizations_actions(&off), BTreeSet::new());
        for action in [WRITE[0], WRITE[1], TARGETS] {
            cases.push(case(
                format!(
                    "without the variant, in {}: {action} on the policy's ARN",
                    off.account
                ),
                request(&off, action, &own),
                ImplicitlyDenied,
            ));
        }
        for child in [account_arn(ORG, MEMBER), ou_arn(ORG, "ou-ab12-cdefgh34")] {
            cases.push(case(
                format!(
                    "without the variant, in {}: {PARENTS} of {child}",
                    off.account
                ),
                request(&off, PARENTS, &child),
                ImplicitlyDenied,
            ));
        }
    }
    assert!(cases.len() > 50, "{}", cases.len());
    check(cases);
}

/// The SCP infra/README.md gives for member accounts: nobody changes Identity
/// Center's SAML providers (a member administrator could otherwise mint a permission
/// set's sessions under any user's name and aim cutoff's Organization-wide deny).
#[test]
fn the_readme_scp_keeps_identity_centers_saml_providers_from_member_administrators() {
    let readme = std::fs::read_to_string(workspace_root().join("infra/README.md")).unwrap();
    let start = readme
        .find("<!-- scp: identity-center-saml-providers")
        .expect("the SAML-provider SCP marker in infra/README.md");
    let block = &readme[start..];
    let json_start = block.find("```json\n").unwrap() + "```json\n".len();
    let json_end = json_start + block[json_start..].find("```").unwrap();
    let scp: Value = serde_json::from_str(&block[json_start..json_end]).unwrap();
    let member_admin = "arn:aws:iam::444455556666:role/AccountAdmin";
    let provider = "arn:aws:iam::444455556666:saml-provider/AWSSSO_0a1b2c3d4e5f6a7b_DO_NOT_DELETE";
    let other = "arn:aws:iam::444455556666:saml-provider/Okta";
    let request = |action: &str, resource: &str| {
        EvalRequest::new(action, resource, member_admin).policy(broad(&["iam"]))
    };
    use Decision::*;
    check(vec![
        case(
            "without the SCP, an administrator replaces the provider's metadata",
            request("iam:UpdateSAMLProvider", provider),
            Allowed,
        ),
        case(
            "with it, not",
            request("iam:UpdateSAMLProvider", provider).scp(scp.clone()),
            ExplicitlyDenied,
        ),
        case(
            "nor deletes it (to recreate it with other metadata)",
            request("iam:DeleteSAMLProvider", provider).scp(scp.clone()),
            ExplicitlyDenied,
        ),
        case(
            "nor creates one of that name",
            request("iam:CreateSAMLProvider", provider).scp(scp.clone()),
            ExplicitlyDenied,
        ),
        case(
            "the account's own other providers are theirs",
            request("iam:UpdateSAMLProvider", other).scp(scp.clone()),
            Allowed,
        ),
    ]);
}
