//! `cutoff revoke`, `status` and `release` as an operator runs them: the real binary
//! with the standard credential chain, pointed at the local AWS stand-in through
//! `AWS_ENDPOINT_URL`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use cutoff_tests::aws::iam_client;
use cutoff_tests::moto::MotoServer;
use cutoff_tests::proxy::{Fault, FaultPlan, FaultProxy};
use serde_json::Value;

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn cutoff(args: &[&str]) -> Output {
    cutoff_at(MotoServer::shared().endpoint(), args)
}

fn cutoff_at(endpoint: &str, args: &[&str]) -> Output {
    // These tests run the workflow in this process (`--direct`), not through a stack.
    command(endpoint)
        .args(args)
        .args(in_process(args))
        .output()
        .unwrap()
}

/// The CLI with AWS at `endpoint` and nothing of this machine's configuration.
fn command(endpoint: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cutoff"));
    command
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("CUTOFF_STACK")
        .env_remove("CUTOFF_OPERATOR_URL")
        .env_remove("CUTOFF_PROTECTED")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    command
}

async fn role(name: &str) {
    let iam = iam_client(MotoServer::shared().endpoint()).await;
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("cutoff:owner")
                .value("payments")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test]
async fn revoke_prints_the_outcome_and_exits_zero() {
    let name = unique("cli-payments");
    role(&name).await;
    let out = cutoff(&[
        "revoke",
        "--account",
        "123456789012",
        "--role",
        &name,
        "--reason",
        "INC-7",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome = json(&out);
    assert_eq!(outcome["status"], "applied");
    assert_eq!(outcome["policy"], "AWSRevokeOlderSessions");
    assert_eq!(outcome["owner"]["team"], "payments");
    assert_eq!(outcome["trigger"]["reason"], "INC-7");
    assert!(outcome["cutoff"].as_str().unwrap().ends_with('Z'));
    for key in [
        "status",
        "target",
        "cutoff",
        "previous_cutoff",
        "policy",
        "scope",
        "owner",
        "trigger",
        "api_calls",
        "error",
    ] {
        assert!(
            outcome.as_object().unwrap().contains_key(key),
            "outcome has {key}"
        );
    }

    let human = cutoff(&["status", "--account", "123456789012", "--role", &name]);
    assert_eq!(human.status.code(), Some(0));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("role-wide cutoff") && text.contains("still stops sessions"),
        "{text}"
    );

    let refused = cutoff(&[
        "release",
        "--account",
        "123456789012",
        "--role",
        &name,
        "--json",
    ]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a refused release is a failed outcome"
    );
    assert_eq!(json(&refused)["error"]["kind"], "refused");
    let released = cutoff(&[
        "release",
        "--account",
        "123456789012",
        "--role",
        &name,
        "--force",
    ]);
    assert_eq!(released.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&released.stdout).starts_with("released:"));
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let name = unique("cli-dry");
    role(&name).await;
    let out = cutoff(&[
        "revoke",
        "--account",
        "123456789012",
        "--role",
        &name,
        "--dry-run",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["status"], "dry_run");
    let status = cutoff(&[
        "status",
        "--account",
        "123456789012",
        "--role",
        &name,
        "--json",
    ]);
    assert_eq!(json(&status)["role_wide"], Value::Null);
}

#[test]
fn a_failed_outcome_exits_one_and_still_prints_it() {
    let out = cutoff(&[
        "revoke",
        "--account",
        "123456789012",
        "--role",
        "no-such-role",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let outcome = json(&out);
    assert_eq!(outcome["status"], "failed");
    assert_eq!(outcome["error"]["kind"], "not_found");
}

#[tokio::test]
async fn protected_and_unmodifiable_targets_exit_zero_without_writing() {
    // A real service-linked role, at the path IAM reserves for it.
    let iam = iam_client(MotoServer::shared().endpoint()).await;
    let _ = iam
        .create_role()
        .role_name("AWSServiceRoleForECS")
        .path("/aws-service-role/ecs.amazonaws.com/")
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await;
    let out = cutoff(&[
        "revoke",
        "--account",
        "123456789012",
        "--role",
        "cutoff-member",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["status"], "protected");
    let out = cutoff(&[
        "revoke",
        "--arn",
        "arn:aws:iam::123456789012:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["status"], "unmodifiable");
}

#[test]
fn invalid_arguments_exit_two_with_one_line() {
    for args in [
        vec!["revoke", "--account", "12345", "--role", "x"],
        vec!["revoke", "--account", "123456789012", "--role", "a/b"],
        vec!["revoke", "--account", "123456789012"],
        vec![
            "revoke",
            "--account",
            "123456789012",
            "--role",
            "x",
            "--user",
            "y",
        ],
        vec![
            "revoke",
            "--account",
            "123456789012",
            "--role",
            "x",
            "--scope",
            "session",
        ],
        vec!["revoke", "--arn", "arn:aws:s3:::bucket"],
        vec![
            "release",
            "--account",
            "123456789012",
            "--role",
            "x",
            "--member-role",
            "bad name",
        ],
    ] {
        let out = cutoff(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!stderr.contains("panicked"));
        // clap's own usage errors span a few lines; ours are one line.
        if !stderr.starts_with("error:") {
            assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        }
    }
}

#[tokio::test]
async fn the_cli_takes_now_from_aws_not_from_a_clock_that_runs_behind() {
    // This machine's clock two hours behind AWS's: a cutoff taken from it would spare
    // every session minted in those two hours. The proxy answers with AWS's Date.
    let name = unique("cli-clock");
    role(&name).await;
    let proxy = FaultProxy::start(
        MotoServer::shared().endpoint(),
        FaultPlan::passthrough().then_for("GetCallerIdentity", Fault::ShiftDate(2 * 3600)),
    );
    let before = chrono::Utc::now();
    let out = cutoff_at(
        proxy.endpoint(),
        &[
            "revoke",
            "--account",
            "123456789012",
            "--role",
            &name,
            "--json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cutoff = chrono::DateTime::parse_from_rfc3339(json(&out)["cutoff"].as_str().unwrap())
        .unwrap()
        .to_utc();
    assert!(
        cutoff >= before + chrono::Duration::hours(2),
        "the cutoff {cutoff} follows AWS's clock, not this machine's ({before})"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("behind AWS's"), "says so: {stderr}");
}

#[tokio::test]
async fn a_key_that_could_not_be_deactivated_exits_one_and_says_what_still_works() {
    // The deny is on the user, but the named long-term key is still Active: an
    // operator's script must not read this as done.
    let name = unique("cli-partial");
    let iam = iam_client(MotoServer::shared().endpoint()).await;
    iam.create_user().user_name(&name).send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name(&name)
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap()
        .access_key_id;
    let proxy = FaultProxy::start(
        MotoServer::shared().endpoint(),
        FaultPlan::passthrough().then_for("UpdateAccessKey", Fault::access_denied()),
    );
    let out = cutoff_at(
        proxy.endpoint(),
        &[
            "revoke",
            "--account",
            "123456789012",
            "--user",
            &name,
            "--access-key-id",
            &key,
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("partial"), "{stdout}");
    assert!(
        stdout.contains("still works") && stdout.contains(&key),
        "names the key that still works: {stdout}"
    );
    let keys = iam
        .list_access_keys()
        .user_name(&name)
        .send()
        .await
        .unwrap()
        .access_key_metadata;
    assert_eq!(
        keys[0].status,
        Some(aws_sdk_iam::types::StatusType::Active),
        "the fault really kept the key active"
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

/// `--direct` is the emergency path: it says on every use what it gives up, and the
/// caller it records is the one AWS names for the credentials (with the name typed
/// only as on whose behalf), never a name typed alone.
#[tokio::test]
async fn direct_mode_says_what_it_skips_and_records_the_caller_aws_names() {
    let name = unique("cli-direct");
    role(&name).await;
    let sdk = cutoff_tests::aws::sdk_config(MotoServer::shared().endpoint()).await;
    let (caller, _) = cutoff_aws::sts::discover_caller_and_time(&sdk)
        .await
        .unwrap();
    let out = cutoff(&[
        "revoke",
        "--account",
        "123456789012",
        "--role",
        &name,
        "--requested-by",
        "bob",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for words in [
        "--direct",
        "NOT through the deployed stack",
        "nobody is notified",
    ] {
        assert!(stderr.contains(words), "{words}: {stderr}");
    }
    let outcome = json(&out);
    assert_eq!(outcome["status"], "applied", "{outcome:#}");
    assert_eq!(
        outcome["trigger"]["requested_by"],
        format!("{} (cutoff CLI --direct, for bob)", caller.arn)
    );
    assert_eq!(outcome["trigger"]["requested_by_verified"], false);

    let endpoint = MotoServer::shared().endpoint();
    let status = [
        "status",
        "--account",
        "123456789012",
        "--role",
        &name,
        "--json",
        "--direct",
    ];
    // Typed with --stack or --url it is a contradiction, refused before any call.
    for extra in [
        ["--stack", "cutoff"],
        ["--url", "https://abc.lambda-url.us-east-1.on.aws/"],
    ] {
        let out = command(endpoint).args(status).args(extra).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains("takes no --stack or --url"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    // A CUTOFF_STACK or CUTOFF_OPERATOR_URL in the shell does not stand in the way.
    let out = command(endpoint)
        .args(status)
        .env("CUTOFF_STACK", "cutoff")
        .env(
            "CUTOFF_OPERATOR_URL",
            "https://abc.lambda-url.us-east-1.on.aws/",
        )
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["role_wide"]["cutoff"], outcome["cutoff"]);
}
