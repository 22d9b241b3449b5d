//! The revoker as the deployed binary: started against a local Lambda Runtime API
//! and the local AWS stand-in, invoked directly and with SQS batches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cutoff_tests::aws::iam_client;
use cutoff_tests::moto::MotoServer;
use cutoff_tests::runtime::{LocalLambda, revoker_on_moto};
use serde_json::{Value, json};

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn revoker(extra: &[(&str, &str)]) -> LocalLambda {
    revoker_on_moto(MotoServer::shared().endpoint(), extra)
}

async fn create_role(name: &str) -> aws_sdk_iam::Client {
    let iam = iam_client(MotoServer::shared().endpoint()).await;
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();
    iam
}

async fn cutoff_of(iam: &aws_sdk_iam::Client, role: &str) -> Option<String> {
    cutoff_tests::seed::role_wide_cutoff(iam, role)
        .await
        .map(|c| c.to_string())
}

fn sqs(records: &[(&str, String)]) -> Value {
    json!({"Records": records.iter().map(|(id, body)| json!({
        "messageId": id, "receiptHandle": "handle", "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "MessageGroupId": "group"},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:cutoff-requests.fifo", "awsRegion": "us-east-1"
    })).collect::<Vec<_>>()})
}

fn queued(role: &str, finding: &str) -> String {
    json!({
        "action": "revoke",
        "target": {"kind": "role", "account": "123456789012", "name": role, "access_key_id": null, "session": null},
        "scope": "role",
        "trigger": {"source": "guardduty", "finding_id": finding, "finding_type": "UnauthorizedAccess:IAMUser/MaliciousIPCaller",
                    "severity": 8.0, "updated_at": "2026-11-23T11:56:00Z", "requested_by": null, "reason": "severity 8"},
        // What earlier versions queued (a message in flight across a deploy): read as
        // the first activity, which it bounds from above.
        "last_activity": "2026-11-23T11:55:00Z"
    })
    .to_string()
}

#[tokio::test]
async fn a_direct_invoke_answers_with_the_outcome() {
    let role = unique("direct");
    let iam = create_role(&role).await;
    let mut lambda = revoker(&[]);
    let answer = lambda.invoke(&json!({"action": "revoke", "account": "123456789012", "role": role, "requested_by": "oncall", "reason": "INC-9"}));
    assert_eq!(answer["status"], "applied", "{answer:#}");
    assert_eq!(answer["trigger"]["requested_by"], "oncall");
    assert_eq!(
        cutoff_of(&iam, &role).await.as_deref(),
        answer["cutoff"].as_str()
    );

    let status =
        lambda.invoke(&json!({"action": "status", "account": "123456789012", "role": role}));
    assert_eq!(status["role_wide"]["cutoff"], answer["cutoff"]);

    let invalid =
        lambda.invoke(&json!({"action": "revoke", "account": "not-an-account", "role": role}));
    assert_eq!(invalid["status"], "failed");
    assert_eq!(invalid["error"]["kind"], "invalid_request");
}

#[tokio::test]
async fn an_sqs_batch_is_coalesced_per_principal_and_reports_partial_failures() {
    let (a, b) = (unique("batch-a"), unique("batch-b"));
    let iam = create_role(&a).await;
    create_role(&b).await;
    let mut lambda = revoker(&[]);
    let answer = lambda.invoke(&sqs(&[
        ("m0", queued(&a, "f0")),
        ("m1", queued(&b, "f1")),
        ("m2", "{ not a request".to_owned()),
        ("m3", queued(&a, "f3")),
        ("m4", queued("no-such-role-anywhere", "f4")),
    ]));
    let failed: Vec<&str> = answer["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    // The unreadable body is refused and not retried (no attempt can read it); the
    // missing role is retried.
    assert_eq!(failed, ["m4"], "{answer:#}");
    assert!(cutoff_of(&iam, &a).await.is_some());
    assert!(cutoff_of(&iam, &b).await.is_some());
    // One JSON line per message outcome, carrying the Lambda request id.
    let outcomes: Vec<Value> = lambda
        .json_logs()
        .into_iter()
        .filter(|l| l["message"] == "outcome")
        .collect();
    assert_eq!(outcomes.len(), 5, "{}", lambda.logs());
    assert!(
        outcomes.iter().all(|o| o["span"]["requestId"]
            .as_str()
            .is_some_and(|id| id.starts_with("cutoff-revoker-"))),
        "{outcomes:#?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| o["status"] == "applied").count(),
        3
    );
    // Each line names the request it is about by its SQS message id: what the ledger's
    // audit trail and the messages call it.
    let mut ids: Vec<&str> = outcomes
        .iter()
        .map(|o| o["request_id"].as_str().unwrap_or("none"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["m0", "m1", "m2", "m3", "m4"], "{outcomes:#?}");
}

#[tokio::test]
async fn a_forced_release_sent_to_the_request_queue_is_refused() {
    // Someone who could send to the request queue tries to lift a revocation.
    let role = unique("forced");
    let iam = create_role(&role).await;
    let mut lambda = revoker(&[]);
    let revoked =
        lambda.invoke(&json!({"action": "revoke", "account": "123456789012", "role": role}));
    assert_eq!(revoked["status"], "applied", "{revoked:#}");
    let mut release: Value = serde_json::from_str(&queued(&role, "f-forged")).unwrap();
    release["action"] = json!("release");
    release["force"] = json!(true);
    let mut duplicate = queued(&role, "f-dup");
    duplicate.insert_str(1, r#""action":"release","#);
    let answer = lambda.invoke(&sqs(&[("m0", release.to_string()), ("m1", duplicate)]));
    assert_eq!(
        answer["batchItemFailures"].as_array().map(Vec::len),
        Some(0),
        "refused, not retried: {answer:#}"
    );
    assert_eq!(
        cutoff_of(&iam, &role).await.as_deref(),
        revoked["cutoff"].as_str(),
        "the deny is still in force"
    );
    let refused: Vec<Value> = lambda
        .json_logs()
        .into_iter()
        .filter(|l| l["message"] == "outcome" && l["error_kind"] == "invalid_request")
        .collect();
    assert_eq!(refused.len(), 2, "{}", lambda.logs());
}

#[tokio::test]
async fn the_dry_run_switch_writes_nothing() {
    let role = unique("dry-switch");
    let iam = create_role(&role).await;
    let mut lambda = revoker(&[("CUTOFF_DRY_RUN", "true")]);
    let answer =
        lambda.invoke(&json!({"action": "revoke", "account": "123456789012", "role": role}));
    assert_eq!(answer["status"], "dry_run");
    assert_eq!(cutoff_of(&iam, &role).await, None);
}

#[test]
fn a_bad_setting_fails_start_up_with_the_variable_named() {
    let mut lambda = revoker(&[("CUTOFF_MEMBER_ROLE_NAME", "not a name")]);
    let err = lambda.wait_ready(Duration::from_secs(30)).unwrap_err();
    assert!(err.contains("CUTOFF_MEMBER_ROLE_NAME"), "{err}");
}
