//! The independent policy evaluator is a real oracle: it tells a session issued before
//! the cutoff from one issued after, a revoked session from its siblings, and a long-term
//! key from a session, on the documents cutoff and the IAM console write.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cutoff_tests::evaluator::{
    Decision, EvalRequest, EvalResult, evaluate, evaluate_all, try_evaluate,
};
use serde_json::json;

const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// The role-wide deny, as cutoff writes it (AWSRevokeOlderSessions).
const ROLE_WIDE_DENY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"RevokeOlderSessions","Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-23T12:00:00Z"}}}]}"#;

/// What the IAM console writes on "Revoke active sessions": Action as a list and a
/// timestamp with milliseconds.
const CONSOLE_DENY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"RevokeOlderSessions","Effect":"Deny","Action":["*"],"Resource":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-23T12:00:00.000Z"}}}]}"#;

/// Session-scoped deny (CutoffRevokedSessions): one session of the role.
const SESSION_DENY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"RevokeSessionI0abc","Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:userid":"AROAEXAMPLEROLEID1234:i-0abc"},"DateLessThan":{"aws:TokenIssueTime":"2026-11-23T12:00:00Z"}}}]}"#;

const ROLE: &str = "arn:aws:iam::123456789012:role/payments-api";
const BEFORE: &str = "2026-11-23T11:59:00Z";
const AFTER: &str = "2026-11-23T12:01:00Z";

fn session(policies: &[&str], issued: &str, userid: &str) -> EvalRequest {
    let mut request = EvalRequest::new("s3:GetObject", "arn:aws:s3:::bucket/key", ROLE)
        .context("aws:TokenIssueTime", issued)
        .context("aws:userid", userid)
        .context("aws:CurrentTime", "2026-11-23T12:05:00Z");
    for policy in policies {
        request = request.policy(*policy);
    }
    request
}

fn role_session(policies: &[&str], issued: &str) -> EvalRequest {
    session(policies, issued, "AROAEXAMPLEROLEID1234:payments-api-task")
}

fn decision(result: &EvalResult) -> Decision {
    result.decision
}

#[test]
fn role_wide_deny_kills_sessions_issued_before_the_cutoff_only() {
    let before = evaluate(&role_session(&[ALLOW_ALL, ROLE_WIDE_DENY], BEFORE));
    assert_eq!(decision(&before), Decision::ExplicitlyDenied, "{before:#?}");
    assert!(before.denied_by("RevokeOlderSessions"), "{before:#?}");

    let after = evaluate(&role_session(&[ALLOW_ALL, ROLE_WIDE_DENY], AFTER));
    assert_eq!(decision(&after), Decision::Allowed, "{after:#?}");
    assert!(after.deny_statements.is_empty());
    assert_eq!(after.allow_statements.len(), 1);
}

#[test]
fn without_the_deny_both_sessions_are_allowed() {
    for issued in [BEFORE, AFTER] {
        let result = evaluate(&role_session(&[ALLOW_ALL], issued));
        assert_eq!(
            decision(&result),
            Decision::Allowed,
            "{issued}: {result:#?}"
        );
    }
}

#[test]
fn no_allow_is_an_implicit_deny() {
    let result = evaluate(&role_session(&[ROLE_WIDE_DENY], AFTER));
    assert_eq!(decision(&result), Decision::ImplicitlyDenied, "{result:#?}");
}

#[test]
fn the_cutoff_is_compared_as_a_time_to_the_second() {
    // One second either side, across a minute boundary and with mixed precision.
    let results = evaluate_all(&[
        role_session(&[ALLOW_ALL, ROLE_WIDE_DENY], "2026-11-23T11:59:59Z"),
        role_session(&[ALLOW_ALL, ROLE_WIDE_DENY], "2026-11-23T12:00:00Z"),
        role_session(&[ALLOW_ALL, ROLE_WIDE_DENY], "2026-11-23T12:00:01Z"),
        role_session(&[ALLOW_ALL, ROLE_WIDE_DENY], "2026-11-22T23:00:00Z"),
        role_session(&[ALLOW_ALL, ROLE_WIDE_DENY], "2026-11-24T00:00:00Z"),
    ]);
    let decisions: Vec<Decision> = results.iter().map(decision).collect();
    assert_eq!(
        decisions,
        [
            Decision::ExplicitlyDenied,
            // DateLessThan is strict: a session issued at the cutoff itself survives.
            Decision::Allowed,
            Decision::Allowed,
            Decision::ExplicitlyDenied,
            Decision::Allowed,
        ]
    );
}

#[test]
fn the_console_shape_denies_the_same_way() {
    let results = evaluate_all(&[
        role_session(&[ALLOW_ALL, CONSOLE_DENY], BEFORE),
        role_session(&[ALLOW_ALL, CONSOLE_DENY], AFTER),
        role_session(&[ALLOW_ALL, CONSOLE_DENY], "2026-11-23T11:59:59.999Z"),
    ]);
    assert_eq!(
        results[0].decision,
        Decision::ExplicitlyDenied,
        "{results:#?}"
    );
    assert!(results[0].denied_by("RevokeOlderSessions"));
    assert_eq!(results[1].decision, Decision::Allowed, "{results:#?}");
    assert_eq!(
        results[2].decision,
        Decision::ExplicitlyDenied,
        "{results:#?}"
    );
}

#[test]
fn session_scoped_deny_kills_one_session_and_spares_its_siblings() {
    let results = evaluate_all(&[
        session(
            &[ALLOW_ALL, SESSION_DENY],
            BEFORE,
            "AROAEXAMPLEROLEID1234:i-0abc",
        ),
        session(
            &[ALLOW_ALL, SESSION_DENY],
            BEFORE,
            "AROAEXAMPLEROLEID1234:i-0other",
        ),
        // The same instance with credentials refreshed after the cutoff.
        session(
            &[ALLOW_ALL, SESSION_DENY],
            AFTER,
            "AROAEXAMPLEROLEID1234:i-0abc",
        ),
    ]);
    assert_eq!(
        results[0].decision,
        Decision::ExplicitlyDenied,
        "{results:#?}"
    );
    assert!(results[0].denied_by("RevokeSessionI0abc"));
    assert_eq!(results[1].decision, Decision::Allowed, "{results:#?}");
    assert_eq!(results[2].decision, Decision::Allowed, "{results:#?}");
}

#[test]
fn a_long_term_key_has_no_token_issue_time_and_is_not_denied() {
    // An IAM user's AKIA key: no aws:TokenIssueTime in the request, so DateLessThan on it
    // does not match and the deny does not apply (that is why cutoff deactivates the key).
    let request = EvalRequest::new(
        "s3:GetObject",
        "arn:aws:s3:::bucket/key",
        "arn:aws:iam::123456789012:user/deploy-bot",
    )
    .policy(ALLOW_ALL)
    .policy(ROLE_WIDE_DENY)
    .context("aws:userid", "AIDAEXAMPLEUSERID1234");
    let result = evaluate(&request);
    assert_eq!(result.decision, Decision::Allowed, "{result:#?}");
    assert!(result.deny_statements.is_empty());
    assert_eq!(result.absent_condition_keys, ["aws:TokenIssueTime"]);

    // A session of the same principal, for contrast: the key is there and matches.
    let session = evaluate(&request.context("aws:TokenIssueTime", BEFORE));
    assert_eq!(session.decision, Decision::ExplicitlyDenied, "{session:#?}");
    assert!(session.absent_condition_keys.is_empty());
}

#[test]
fn the_deny_covers_every_service_and_action() {
    let requests: Vec<EvalRequest> = [
        (
            "iam:CreateAccessKey",
            "arn:aws:iam::123456789012:user/someone",
        ),
        ("sts:AssumeRole", "arn:aws:iam::123456789012:role/other"),
        (
            "ec2:RunInstances",
            "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc",
        ),
        (
            "kms:Decrypt",
            "arn:aws:kms:us-east-1:123456789012:key/0000aaaa-0000-4000-8000-00000000abcd",
        ),
    ]
    .into_iter()
    .map(|(action, resource)| {
        EvalRequest::new(action, resource, ROLE)
            .policy(ALLOW_ALL)
            .policy(ROLE_WIDE_DENY)
            .context("aws:TokenIssueTime", BEFORE)
    })
    .collect();
    for (request, result) in requests.iter().zip(evaluate_all(&requests)) {
        assert_eq!(
            result.decision,
            Decision::ExplicitlyDenied,
            "{}: {result:#?}",
            request.action
        );
    }
}

#[test]
fn policies_may_be_given_as_json_values() {
    let deny: serde_json::Value = serde_json::from_str(ROLE_WIDE_DENY).unwrap();
    let request = EvalRequest::new("s3:GetObject", "arn:aws:s3:::bucket/key", ROLE)
        .policy(json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}))
        .policy(deny)
        .context("aws:TokenIssueTime", BEFORE);
    assert_eq!(evaluate(&request).decision, Decision::ExplicitlyDenied);
}

#[test]
fn an_invalid_document_is_rejected_not_evaluated() {
    // A typo in the condition operator must not read as "the deny did not match".
    let broken = ROLE_WIDE_DENY.replace("DateLessThan", "DateLesThan");
    let err = try_evaluate(&role_session(&[ALLOW_ALL, &broken], BEFORE)).unwrap_err();
    assert!(err.contains("rejected"), "{err}");

    // Unknown operators are caught whether or not the key is in the context.
    let without_key = EvalRequest::new("s3:GetObject", "arn:aws:s3:::bucket/key", ROLE)
        .policy(ALLOW_ALL)
        .policy(broken.as_str());
    let err = try_evaluate(&without_key).unwrap_err();
    assert!(err.contains("DateLesThan"), "{err}");

    // Modifiers of real operators are fine.
    let modified = ROLE_WIDE_DENY.replace("DateLessThan", "ForAnyValue:DateLessThanIfExists");
    let result = evaluate(&role_session(&[ALLOW_ALL, &modified], BEFORE));
    assert_eq!(result.decision, Decision::ExplicitlyDenied, "{result:#?}");

    let not_json = try_evaluate(&role_session(&[ALLOW_ALL, "{not json"], BEFORE)).unwrap_err();
    assert!(not_json.contains("rejected"), "{not_json}");
}

// ------------------------------------------------------------------ resource policies
//
// The evaluator also takes the resource's own policy and the request context AWS derives
// from the principal; the template tests (tests/integration/infra.rs) rely on both.

const ACCOUNT: &str = "123456789012";
const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:requests.fifo";
const SQS_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sqs:*","Resource":"*"}]}"#;

/// A queue policy that lets only `role/writer` send, whoever else may.
fn only_writer_sends() -> serde_json::Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "OnlyWriterSends", "Effect": "Deny", "Principal": "*",
        "Action": "sqs:SendMessage", "Resource": QUEUE,
        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/writer"}}
    }]})
}

#[test]
fn a_resource_policy_deny_stops_a_same_account_admin_and_spares_the_named_role() {
    let send = |principal: &str| {
        EvalRequest::new("sqs:SendMessage", QUEUE, principal)
            .policy(SQS_ALL)
            .resource_policy(only_writer_sends())
            .derive_context()
    };
    let results = evaluate_all(&[
        send("arn:aws:sts::123456789012:assumed-role/admin/alice"),
        send("arn:aws:sts::123456789012:assumed-role/writer/task"),
        send("arn:aws:iam::123456789012:user/deployer"),
    ]);
    assert_eq!(
        results[0].decision,
        Decision::ExplicitlyDenied,
        "{results:#?}"
    );
    assert!(results[0].denied_by("OnlyWriterSends"));
    assert_eq!(
        results[0].derived_context["aws:PrincipalArn"], "arn:aws:iam::123456789012:role/admin",
        "a session's aws:PrincipalArn is its role"
    );
    assert_eq!(results[1].decision, Decision::Allowed, "{results:#?}");
    assert_eq!(
        results[2].decision,
        Decision::ExplicitlyDenied,
        "{results:#?}"
    );
    for result in &results {
        assert!(result.ignored_context_keys.is_empty(), "{result:#?}");
        assert!(result.absent_condition_keys.is_empty(), "{result:#?}");
    }
}

#[test]
fn a_negated_condition_on_an_absent_key_matches_so_the_deny_applies() {
    // IAM's rule for ArnNotEquals, StringNotEquals, …: a key missing from the request
    // matches. Without the derived context even the named role has no aws:PrincipalArn
    // and is denied; a service principal never has one.
    let bare = evaluate(
        &EvalRequest::new(
            "sqs:SendMessage",
            QUEUE,
            "arn:aws:sts::123456789012:assumed-role/writer/task",
        )
        .policy(SQS_ALL)
        .resource_policy(only_writer_sends()),
    );
    assert_eq!(bare.decision, Decision::ExplicitlyDenied, "{bare:#?}");
    assert_eq!(bare.absent_condition_keys, ["aws:PrincipalArn"]);

    let service = EvalRequest::new("sqs:SendMessage", QUEUE, "events.amazonaws.com")
        .resource_policy(json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "EventBridgeSends", "Effect": "Allow",
             "Principal": {"Service": "events.amazonaws.com"},
             "Action": "sqs:SendMessage", "Resource": QUEUE},
            only_writer_sends()["Statement"][0].clone()
        ]}))
        .derive_context();
    let result = evaluate(&service);
    assert_eq!(result.decision, Decision::ExplicitlyDenied, "{result:#?}");
    assert!(!result.derived_context.contains_key("aws:PrincipalArn"));
    assert_eq!(
        result.derived_context["aws:PrincipalServiceName"],
        "events.amazonaws.com"
    );
}

#[test]
fn a_service_principal_is_allowed_only_by_the_resource_policy() {
    let topic = "arn:aws:sns:us-east-1:123456789012:alerts";
    let allow = json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "AlarmsOfThisAccount", "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": "sns:Publish", "Resource": topic,
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    }]});
    let publish = |source_account: &str| {
        EvalRequest::new("sns:Publish", topic, "cloudwatch.amazonaws.com")
            .resource_policy(allow.clone())
            .context("aws:SourceAccount", source_account)
            .derive_context()
    };
    let results = evaluate_all(&[
        publish(ACCOUNT),
        publish("999988887777"),
        EvalRequest::new("sns:Publish", topic, "cloudwatch.amazonaws.com").derive_context(),
    ]);
    assert_eq!(results[0].decision, Decision::Allowed, "{results:#?}");
    assert!(results[0].allowed_by("AlarmsOfThisAccount"));
    assert_eq!(
        results[1].decision,
        Decision::ImplicitlyDenied,
        "{results:#?}"
    );
    assert_eq!(
        results[2].decision,
        Decision::ImplicitlyDenied,
        "{results:#?}"
    );
}

#[test]
fn a_trust_policy_must_admit_the_caller_even_in_its_own_account() {
    // STS: unlike a queue, a role does not trust its account's identity policies unless
    // its trust policy names the account (or the caller).
    let role = "arn:aws:iam::123456789012:role/target";
    let assume = |trust: serde_json::Value| {
        EvalRequest::new(
            "sts:AssumeRole",
            role,
            "arn:aws:sts::123456789012:assumed-role/caller/s",
        )
        .policy(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#)
        .resource_policy(trust)
        .derive_context()
    };
    let results = evaluate_all(&[
        assume(json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole"}]})),
        assume(json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "Account", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "sts:AssumeRole",
            "Condition": {"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/caller"}}}]})),
    ]);
    assert_eq!(
        results[0].decision,
        Decision::ImplicitlyDenied,
        "{results:#?}"
    );
    assert_eq!(results[1].decision, Decision::Allowed, "{results:#?}");
}

#[test]
fn an_scp_deny_wins_over_an_identity_allow() {
    let deny = json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "NoSends", "Effect": "Deny", "Action": "sqs:SendMessage", "Resource": "*"}]});
    let request = EvalRequest::new(
        "sqs:SendMessage",
        QUEUE,
        "arn:aws:sts::123456789012:assumed-role/admin/alice",
    )
    .policy(SQS_ALL)
    .derive_context();
    let results = evaluate_all(&[request.clone(), request.scp(deny)]);
    assert_eq!(results[0].decision, Decision::Allowed, "{results:#?}");
    assert_eq!(
        results[1].decision,
        Decision::ExplicitlyDenied,
        "{results:#?}"
    );
    assert!(results[1].denied_by("NoSends"));
}

#[test]
fn a_given_context_key_wins_over_a_derived_one_and_operators_are_checked_everywhere() {
    // A role with a path: its session ARN does not carry the path, the test says it.
    let result = evaluate(
        &EvalRequest::new(
            "sqs:SendMessage",
            QUEUE,
            "arn:aws:sts::123456789012:assumed-role/writer/task",
        )
        .policy(SQS_ALL)
        .resource_policy(only_writer_sends())
        .context(
            "aws:PrincipalArn",
            "arn:aws:iam::123456789012:role/team/writer",
        )
        .derive_context(),
    );
    assert_eq!(result.decision, Decision::ExplicitlyDenied, "{result:#?}");
    assert!(!result.derived_context.contains_key("aws:PrincipalArn"));

    let broken = only_writer_sends()
        .to_string()
        .replace("ArnNotEquals", "ArnNotEqual");
    let err = try_evaluate(
        &EvalRequest::new("sqs:SendMessage", QUEUE, ROLE)
            .policy(SQS_ALL)
            .resource_policy(broken.as_str()),
    )
    .unwrap_err();
    assert!(err.contains("ArnNotEqual"), "{err}");
}

/// Identity Center (issue [11] item 6): the deny cutoff adds to a permission set's
/// inline policy, provisioned as the reserved role's, denies that user's sessions
/// whenever they were issued (a fresh one from the access portal too) and no other
/// user of the same permission set.
#[test]
fn the_permission_set_deny_denies_one_identity_center_user_whenever_their_session_was_issued() {
    use cutoff_domain::identity_center::{IdentityStoreUserId, InlineChange, add_user_deny};
    let alice =
        IdentityStoreUserId::parse("906752c4e2-6c7cd5b2-1051-70b2-1d66-2a5b36ecd0a2").unwrap();
    let InlineChange::Put(document) = add_user_deny(Some(ALLOW_ALL), &alice).unwrap() else {
        panic!("the deny is added")
    };
    let role = "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123456789abcdef";
    let request = |user_id: &str, issued: &str| {
        EvalRequest::new("s3:GetObject", "arn:aws:s3:::bucket/key", role)
            .policy(document.as_str())
            .context("identitystore:userId", user_id)
            .context("aws:TokenIssueTime", issued)
    };
    let results = evaluate_all(&[
        request(alice.as_str(), BEFORE),
        request(alice.as_str(), AFTER),
        request("b8e1f3a0-5c2d-4e6f-8a9b-0c1d2e3f4a5b", BEFORE),
    ]);
    assert_eq!(decision(&results[0]), Decision::ExplicitlyDenied);
    assert_eq!(
        decision(&results[1]),
        Decision::ExplicitlyDenied,
        "a session minted after the deny is denied too"
    );
    assert_eq!(
        decision(&results[2]),
        Decision::Allowed,
        "another user of the permission set keeps working"
    );
}
