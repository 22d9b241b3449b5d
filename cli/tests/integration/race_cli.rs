//! Fifty operators revoke one role at the same moment, each with their own `cutoff`
//! process: IAM has no conditional write, so without a lock one process can write a
//! document built from a read that predates another's write, and lose its later
//! cutoff or a statement. With the ledger every writer holds the role's lock from its
//! read to its verified write, and the role ends with the latest cutoff any of them
//! wrote, its foreign statement intact, and one audit entry per process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cutoff_domain::policy::{Cutoff, PolicyDocument, ROLE_WIDE_POLICY_NAME, role_wide_statement};
use cutoff_tests::aws::{iam_client, ledger_table};
use cutoff_tests::moto::MotoServer;
use cutoff_tests::proxy::{Fault, FaultPlan, FaultProxy};
use serde_json::{Value, json};

const WRITERS: usize = 50;

fn spawn(args: &[&str], endpoint: &str) -> Child {
    // These tests run the workflow in this process (`--direct`), not through a stack.
    Command::new(env!("CARGO_BIN_EXE_cutoff"))
        .args(args)
        .args(in_process(args))
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("CUTOFF_STACK")
        .env_remove("CUTOFF_OPERATOR_URL")
        .env_remove("CUTOFF_PROTECTED")
        .env_remove("CUTOFF_LEDGER_TABLE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn foreign() -> Value {
    json!({"Sid":"KeepBucketsAlive","Effect":"Deny","Action":"s3:DeleteBucket","Resource":"*"})
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_revocations_end_with_the_latest_cutoff_and_lose_nothing() {
    let moto = MotoServer::shared();
    let table = "cutoff-ledger-race";
    let role = "race-target";
    ledger_table(moto.endpoint(), table).await;
    let iam = iam_client(moto.endpoint()).await;
    iam.create_role()
        .role_name(role)
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();
    // A statement someone else put in the console's policy, with an old cutoff of ours.
    let old = Cutoff::parse("2026-01-01T00:00:00Z").unwrap();
    let start = PolicyDocument::new(vec![foreign(), role_wide_statement(old)]).to_json();
    iam.put_role_policy()
        .role_name(role)
        .policy_name(ROLE_WIDE_POLICY_NAME)
        .policy_document(&start)
        .send()
        .await
        .unwrap();

    let args = [
        "revoke",
        "--account",
        "123456789012",
        "--role",
        role,
        "--ledger-table",
        table,
        "--reason",
        "race test",
        "--json",
    ];
    // Every process is started before any is waited for: their reads and writes overlap.
    // IAM reads and writes answered late, at random, so that the writers' reads and
    // writes interleave across second boundaries. Without the lock (no
    // --ledger-table) this test failed in about half of the runs we tried, on "the
    // latest cutoff written is in force": the lost update it guards against.
    let proxy = FaultProxy::start(
        moto.endpoint(),
        FaultPlan::passthrough()
            .random(
                7,
                0.5,
                &[
                    Fault::Slow(Duration::from_millis(100)),
                    Fault::Slow(Duration::from_millis(250)),
                    Fault::Slow(Duration::from_millis(600)),
                ],
            )
            .random_only_for(&["GetRolePolicy", "PutRolePolicy"]),
    );
    let endpoint = proxy.endpoint().to_owned();
    let mut pending: Vec<Child> = (0..WRITERS).map(|_| spawn(&args, &endpoint)).collect();
    let mut outcomes: Vec<Value> = Vec::new();
    let mut busy_retries = 0;
    while !pending.is_empty() {
        let mut again = Vec::new();
        for child in pending {
            let out = child.wait_with_output().unwrap();
            let outcome: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
            // A writer that waited past the lock's wait fails `busy` and is retried, as
            // the queue (or the operator) would.
            if outcome["error"]["kind"] == "busy" {
                busy_retries += 1;
                assert!(busy_retries <= WRITERS * 3, "writers starved: {outcome}");
                again.push(spawn(&args, &endpoint));
                continue;
            }
            assert_eq!(out.status.code(), Some(0), "{outcome}");
            outcomes.push(outcome);
        }
        pending = again;
    }
    assert_eq!(outcomes.len(), WRITERS);
    let statuses: Vec<&str> = outcomes
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses
            .iter()
            .all(|s| *s == "applied" || *s == "already_revoked"),
        "{statuses:?}"
    );
    let latest = outcomes
        .iter()
        .filter_map(|o| o["cutoff"].as_str())
        .map(|c| Cutoff::parse(c).unwrap())
        .max()
        .unwrap();

    let stored = iam
        .get_role_policy()
        .role_name(role)
        .policy_name(ROLE_WIDE_POLICY_NAME)
        .send()
        .await
        .unwrap();
    let doc = PolicyDocument::parse(stored.policy_document()).unwrap();
    assert_eq!(
        doc.role_wide_cutoff(),
        Some(latest),
        "the latest cutoff written is in force"
    );
    assert_eq!(
        doc.foreign_statements(),
        vec![&foreign()],
        "the foreign statement survived"
    );
    assert_eq!(
        doc.statements().len(),
        2,
        "one cutoff statement, merged: {doc:?}"
    );

    // Every process is in the audit trail (the busy attempts too).
    let history = spawn(
        &[
            "history",
            "--account",
            "123456789012",
            "--role",
            role,
            "--ledger-table",
            table,
            "--limit",
            "1000",
            "--json",
        ],
        moto.endpoint(),
    )
    .wait_with_output()
    .unwrap();
    let entries: Vec<Value> = serde_json::from_slice(&history.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&history.stderr)));
    assert_eq!(entries.len(), WRITERS + busy_retries);
    eprintln!(
        "{WRITERS} concurrent writers: {} applied, {} already revoked, {busy_retries} retried after waiting for the lock; final cutoff {latest}",
        statuses.iter().filter(|s| **s == "applied").count(),
        statuses.iter().filter(|s| **s == "already_revoked").count(),
    );
}

/// `--direct` for the commands that otherwise go through a stack.
fn in_process(args: &[&str]) -> Option<&'static str> {
    matches!(
        args.first(),
        Some(&("revoke" | "status" | "release" | "history"))
    )
    .then_some("--direct")
}
