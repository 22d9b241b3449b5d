//! The operator path end to end: `cutoff revoke|status|release --url` (the real binary)
//! signs its request with the operator's credentials; a local stand-in for the
//! revoker's function URL (`cutoff_tests::function_url`) checks the signature with
//! botocore and the resource policy as AWS does, and hands the real revoker binary the
//! function URL event with the verified caller; the revoker acts on moto.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use cutoff_domain::policy::{Cutoff, ROLE_WIDE_POLICY_NAME, role_wide_document};
use cutoff_tests::aws::{ACCOUNT, iam_client};
use cutoff_tests::function_url::{FunctionUrl, Identity};
use cutoff_tests::moto::MotoServer;
use cutoff_tests::runtime::revoker_on_moto;
use serde_json::{Value, json};

const OPERATOR_ROLE: &str = "arn:aws:iam::123456789012:role/CutoffBreakGlassOperator";
const OPERATOR_USER: &str = "arn:aws:iam::123456789012:user/bob";

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A break-glass operator: a session of the operator role.
fn alice() -> Identity {
    Identity::role_session(ACCOUNT, "CutoffBreakGlassOperator", "alice", "ALICE1")
}

/// A break-glass operator who is an IAM user (long-term key, no session token).
fn bob() -> Identity {
    Identity::user(ACCOUNT, "bob", "BOB1")
}

/// A principal of the same account with valid credentials, not on the resource policy.
fn mallory() -> Identity {
    Identity::role_session(ACCOUNT, "Developer", "mallory", "MALLORY1")
}

/// The revoker binary as `tests/integration/revoker_lambda.rs` starts it, behind a function
/// URL that knows alice, bob and mallory and admits the operator role and bob.
fn function_url() -> FunctionUrl {
    let revoker = revoker_on_moto(MotoServer::shared().endpoint(), &[]);
    FunctionUrl::start(
        revoker,
        vec![alice(), bob(), mallory()],
        &[OPERATOR_ROLE, OPERATOR_USER],
    )
}

/// The CLI as an operator runs it: `identity`'s credentials in the environment, AWS
/// (for `sts:GetCallerIdentity`, the clock) at moto.
fn cutoff(identity: &Identity, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    cutoff_at(MotoServer::shared().endpoint(), identity, args, extra_env)
}

/// [`cutoff`] with AWS at `endpoint`.
fn cutoff_at(
    endpoint: &str,
    identity: &Identity,
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cutoff"));
    command
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env_remove("CUTOFF_STACK")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("CUTOFF_OPERATOR_URL")
        .env_remove("CUTOFF_PROTECTED")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    for (key, value) in identity.env() {
        command.env(key, value);
    }
    for (key, value) in extra_env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    })
}

async fn create_role(name: &str) -> aws_sdk_iam::Client {
    create_role_at(MotoServer::shared().endpoint(), name).await
}

async fn create_role_at(endpoint: &str, name: &str) -> aws_sdk_iam::Client {
    let iam = iam_client(endpoint).await;
    cutoff_tests::seed::create_role(&iam, name, &[("cutoff:owner", "payments")])
        .await
        .unwrap();
    iam
}

async fn cutoff_of(iam: &aws_sdk_iam::Client, role: &str) -> Option<String> {
    cutoff_tests::seed::role_wide_cutoff(iam, role)
        .await
        .map(|c| c.to_string())
}

#[tokio::test]
async fn the_cli_signs_and_the_revoker_records_the_caller_aws_verified() {
    let role = unique("op-signed");
    let iam = create_role(&role).await;
    let url = function_url();
    let out = cutoff(
        &alice(),
        &[
            "revoke",
            "--url",
            &url.url(),
            "--account",
            ACCOUNT,
            "--role",
            &role,
            "--reason",
            "INC-77",
            "--requested-by",
            "someone-else",
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let outcome = json(&out);
    assert_eq!(outcome["status"], "applied", "{outcome:#}");
    assert_eq!(outcome["trigger"]["requested_by"], alice().arn.as_str());
    assert_eq!(outcome["trigger"]["requested_by_verified"], true);
    assert_eq!(outcome["trigger"]["reason"], "INC-77");
    assert_eq!(
        cutoff_of(&iam, &role).await.as_deref(),
        outcome["cutoff"].as_str(),
        "the deny is on the role"
    );
    let handled = url.handled();
    assert_eq!(handled.len(), 1, "{handled:?}");
    assert_eq!(handled[0].caller.as_deref(), Some(alice().arn.as_str()));

    // A user's long-term key (no session token), the URL from CUTOFF_OPERATOR_URL.
    let other = unique("op-signed-user");
    create_role(&other).await;
    let out = cutoff(
        &bob(),
        &["revoke", "--account", ACCOUNT, "--role", &other, "--json"],
        &[("CUTOFF_OPERATOR_URL", &url.url())],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let outcome = json(&out);
    assert_eq!(outcome["status"], "applied", "{outcome:#}");
    assert_eq!(outcome["trigger"]["requested_by"], OPERATOR_USER);
    assert_eq!(outcome["trigger"]["requested_by_verified"], true);
}

#[tokio::test]
async fn a_release_goes_through_the_operator_path_and_not_through_a_plain_invoke() {
    let role = unique("op-release");
    let iam = create_role(&role).await;
    // A revocation 13 hours old: no session it could stop can still be alive, so a
    // release needs no --force.
    let old = Cutoff::parse(
        &(chrono::Utc::now() - chrono::Duration::hours(13))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
    )
    .unwrap();
    cutoff_tests::seed::put_role_policy(
        &iam,
        &role,
        ROLE_WIDE_POLICY_NAME,
        &role_wide_document(old).to_json(),
    )
    .await
    .unwrap();
    let url = function_url();

    // The same release as a plain invoke of the revoker: refused, whoever it claims to be.
    let plain = url.lambda().invoke(&json!({
        "action": "release", "account": ACCOUNT, "role": role, "requested_by": alice().arn
    }));
    assert_eq!(plain["status"], "failed", "{plain:#}");
    assert_eq!(plain["error"]["kind"], "invalid_request");
    assert!(
        plain["error"]["message"]
            .as_str()
            .unwrap()
            .contains("operator path"),
        "{plain:#}"
    );
    assert_eq!(
        cutoff_of(&iam, &role).await,
        Some(old.to_string()),
        "still denied"
    );

    let out = cutoff(
        &alice(),
        &[
            "release",
            "--url",
            &url.url(),
            "--account",
            ACCOUNT,
            "--role",
            &role,
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let outcome = json(&out);
    assert_eq!(outcome["status"], "released", "{outcome:#}");
    assert_eq!(outcome["trigger"]["requested_by"], alice().arn.as_str());
    assert_eq!(outcome["trigger"]["requested_by_verified"], true);
    assert_eq!(cutoff_of(&iam, &role).await, None, "the deny is gone");
}

#[tokio::test]
async fn a_request_with_a_forged_signature_never_reaches_the_revoker() {
    let role = unique("op-forged");
    let iam = create_role(&role).await;
    let url = function_url();
    // Alice's key id and session token, but not her secret.
    let forger = alice().with_secret("a-guessed-secret");
    let out = cutoff(
        &forger,
        &[
            "revoke",
            "--url",
            &url.url(),
            "--account",
            ACCOUNT,
            "--role",
            &role,
            "--json",
        ],
        &[],
    );
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    // Where it went, then the error in one line.
    let lines: Vec<&str> = err.trim_end().lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(lines[0], format!("cutoff: through {}", url.url()));
    assert!(lines[1].contains("403"), "{err}");
    assert!(out.stdout.is_empty(), "no outcome printed");
    assert_eq!(cutoff_of(&iam, &role).await, None, "nothing written");
    assert_eq!(url.lambda().invocations(), 0, "the revoker was not invoked");
    let handled = url.handled();
    assert_eq!(handled.len(), 1, "{handled:?}");
    assert_eq!(handled[0].status, 403);
    assert!(
        handled[0]
            .refused
            .as_deref()
            .is_some_and(|why| why.contains("signature")),
        "{handled:?}"
    );
}

#[tokio::test]
async fn a_claimed_requested_by_in_the_body_is_replaced_by_the_verified_caller() {
    let role = unique("op-claimed");
    let iam = create_role(&role).await;
    let url = function_url();
    // A raw request, signed (by botocore) with alice's credentials, that claims to come
    // from someone else. The CLI never sends one.
    let body = json!({
        "action": "revoke", "account": ACCOUNT, "role": role,
        "requested_by": "the-ciso", "reason": "INC-78"
    })
    .to_string();
    let answer = url.post_signed(&alice(), &body);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let outcome = answer.json();
    assert_eq!(outcome["status"], "applied", "{outcome:#}");
    assert_eq!(outcome["trigger"]["requested_by"], alice().arn.as_str());
    assert_eq!(outcome["trigger"]["requested_by_verified"], true);
    assert!(!answer.body.contains("the-ciso"), "{}", answer.body);
    assert!(cutoff_of(&iam, &role).await.is_some());
}

#[tokio::test]
async fn a_principal_not_on_the_resource_policy_is_refused() {
    let role = unique("op-not-allowed");
    let iam = create_role(&role).await;
    let url = function_url();
    let out = cutoff(
        &mallory(),
        &[
            "revoke",
            "--url",
            &url.url(),
            "--account",
            ACCOUNT,
            "--role",
            &role,
            "--json",
        ],
        &[],
    );
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("403"), "{err}");
    assert_eq!(cutoff_of(&iam, &role).await, None, "nothing written");
    assert_eq!(url.lambda().invocations(), 0, "the revoker was not invoked");
    // Mallory's signature was good: the resource policy refused her.
    let handled = url.handled();
    assert_eq!(handled.len(), 1, "{handled:?}");
    assert!(
        handled[0]
            .refused
            .as_deref()
            .is_some_and(|why| why.contains("resource policy")),
        "{handled:?}"
    );
}

#[tokio::test]
async fn status_through_the_operator_path_prints_the_report() {
    let role = unique("op-status");
    create_role(&role).await;
    let url = function_url();
    let revoked = cutoff(
        &alice(),
        &[
            "revoke",
            "--url",
            &url.url(),
            "--account",
            ACCOUNT,
            "--role",
            &role,
            "--json",
        ],
        &[],
    );
    assert_eq!(revoked.status.code(), Some(0), "{}", stderr(&revoked));
    let cutoff_time = json(&revoked)["cutoff"].as_str().unwrap().to_owned();

    let human = cutoff(
        &bob(),
        &[
            "status",
            "--url",
            &url.url(),
            "--account",
            ACCOUNT,
            "--role",
            &role,
        ],
        &[],
    );
    assert_eq!(human.status.code(), Some(0), "{}", stderr(&human));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains(&role), "{text}");
    assert!(
        text.contains(&format!("role-wide cutoff  {cutoff_time}"))
            && text.contains("still stops sessions"),
        "{text}"
    );

    let report = cutoff(
        &bob(),
        &[
            "status",
            "--url",
            &url.url(),
            "--account",
            ACCOUNT,
            "--role",
            &role,
            "--json",
        ],
        &[],
    );
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    let report = json(&report);
    assert_eq!(report["role_wide"]["cutoff"], cutoff_time.as_str());
    assert_eq!(report["role_wide"]["still_effective"], true);
    assert_eq!(url.handled().len(), 3);
    assert_eq!(url.lambda().invocations(), 3);
}

/// A stack in moto with `outputs` (and a topic: a stack needs a resource).
async fn create_stack(endpoint: &str, name: &str, outputs: &[(&str, &str)]) {
    let outputs: serde_json::Map<String, Value> = outputs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!({ "Value": v })))
        .collect();
    let template = json!({
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": format!("{name}-topic")}}},
        "Outputs": outputs,
    });
    let sdk = cutoff_tests::aws::sdk_config(endpoint).await;
    aws_sdk_cloudformation::Client::new(&sdk)
        .create_stack()
        .stack_name(name)
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();
}

/// The outputs of infra/template.yaml that say a stack is cutoff's, the operator path
/// at `url`.
fn cutoff_outputs(prefix: &str, url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("NamePrefix", prefix.to_owned()),
        (
            "RevokerFunctionArn",
            format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{prefix}-revoker"),
        ),
        ("OperatorUrl", url.to_owned()),
        ("LedgerTableName", format!("{prefix}-ledger")),
    ]
}

async fn create_cutoff_stack(endpoint: &str, name: &str, url: &str) {
    let outputs = cutoff_outputs(name, url);
    let outputs: Vec<(&str, &str)> = outputs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    create_stack(endpoint, name, &outputs).await;
}

/// The default: no --url, no --stack. With none of cutoff's stacks in the region the
/// CLI refuses (and says how to choose); with one it goes through it; with two it
/// never guesses. Its own moto server: "the only stack of the region" is about every
/// stack there.
#[tokio::test]
async fn without_a_url_the_cli_acts_through_the_only_cutoff_stack_and_never_guesses() {
    let moto = MotoServer::start();
    let endpoint = moto.endpoint();
    let role = "found-through-the-stack";
    let iam = create_role_at(endpoint, role).await;
    let url = FunctionUrl::start(
        revoker_on_moto(endpoint, &[]),
        vec![alice()],
        &[OPERATOR_ROLE],
    );
    let revoke = ["revoke", "--account", ACCOUNT, "--role", role, "--json"];
    let status = ["status", "--account", ACCOUNT, "--role", role, "--json"];

    let out = cutoff_at(endpoint, &alice(), &revoke, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    for words in ["no cutoff stack in us-east-1", "--stack", "--direct"] {
        assert!(stderr(&out).contains(words), "{words}: {}", stderr(&out));
    }
    assert!(out.stdout.is_empty());
    assert!(url.handled().is_empty(), "nothing was sent");
    assert_eq!(cutoff_of(&iam, role).await, None, "nothing was written");

    // Another application's stack does not count, even with an OperatorUrl output.
    create_stack(
        endpoint,
        "network",
        &[
            ("VpcId", "vpc-0abc"),
            ("OperatorUrl", "https://other.example/"),
        ],
    )
    .await;
    create_cutoff_stack(endpoint, "cutoff-prod", &url.url()).await;
    let out = cutoff_at(endpoint, &alice(), &revoke, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let outcome = json(&out);
    assert_eq!(outcome["status"], "applied", "{outcome:#}");
    assert_eq!(outcome["trigger"]["requested_by"], alice().arn.as_str());
    assert_eq!(outcome["trigger"]["requested_by_verified"], true);
    assert_eq!(
        cutoff_of(&iam, role).await.as_deref(),
        outcome["cutoff"].as_str()
    );
    assert_eq!(url.handled().len(), 1);

    // A second deployment (staging) in the region: the operator must name one.
    create_cutoff_stack(
        endpoint,
        "cutoff-staging",
        "https://abc.lambda-url.us-east-1.on.aws/",
    )
    .await;
    let out = cutoff_at(endpoint, &alice(), &status, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("2 cutoff stacks in us-east-1 (cutoff-prod, cutoff-staging): give --stack"),
        "{}",
        stderr(&out)
    );
    assert_eq!(url.handled().len(), 1, "nothing was sent");
    let by_flag = [&status[..], &["--stack", "cutoff-prod"]].concat();
    let out = cutoff_at(endpoint, &alice(), &by_flag, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["role_wide"]["policy"], ROLE_WIDE_POLICY_NAME);
    let out = cutoff_at(
        endpoint,
        &alice(),
        &status,
        &[("CUTOFF_STACK", "cutoff-prod")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(url.handled().len(), 3);
    assert!(
        stderr(&out).contains(&format!("through stack cutoff-prod ({})", url.url())),
        "which deployment acts is said: {}",
        stderr(&out)
    );

    // A URL left in the shell does not carry a request typed for a stack elsewhere.
    let staging = (
        "CUTOFF_OPERATOR_URL",
        "https://staging0.lambda-url.us-east-1.on.aws/",
    );
    let out = cutoff_at(endpoint, &alice(), &by_flag, &[staging]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(url.handled().len(), 4);
    // Both in the shell, or both typed: refused, nothing sent.
    let both_set = [staging, ("CUTOFF_STACK", "cutoff-prod")];
    let out = cutoff_at(endpoint, &alice(), &status, &both_set);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("CUTOFF_STACK and CUTOFF_OPERATOR_URL are both set"));
    let both_typed = [&by_flag[..], &["--url", staging.1]].concat();
    let out = cutoff_at(endpoint, &alice(), &both_typed, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("give --stack or --url, not both"));
    assert_eq!(url.handled().len(), 4);

    // A stack with cutoff's outputs whose URL is not a function URL of its own region
    // is not sent the operator's signed request.
    let decoy_function = format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:x");
    create_stack(
        endpoint,
        "cutoff-decoy",
        &[
            ("NamePrefix", "cutoff-decoy"),
            ("RevokerFunctionArn", &decoy_function),
            ("OperatorUrl", "https://revoker.example.com/"),
        ],
    )
    .await;

    // A stack that is not there, or not cutoff's, is named in the error.
    for (stack, says) in [
        (
            "cutoff-decoy",
            "is not a Lambda function URL in the stack's region us-east-1",
        ),
        ("cutoff-gone", "no stack cutoff-gone in us-east-1"),
        ("network", "stack network has no output NamePrefix"),
        ("bad_name", "--stack \"bad_name\": expected a stack name"),
    ] {
        let named = [&status[..], &["--stack", stack]].concat();
        let out = cutoff_at(endpoint, &alice(), &named, &[]);
        assert_eq!(out.status.code(), Some(2), "{stack}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{stack}: {}", stderr(&out));
    }
    assert_eq!(url.handled().len(), 4);
}

/// `cutoff history` goes through the operator path too: the revoker reads its own
/// ledger, so an operator needs nothing but the URL, and sees who asked as AWS said.
#[tokio::test]
async fn history_goes_through_the_operator_path_and_shows_the_verified_caller() {
    let role = unique("op-history");
    create_role(&role).await;
    let table = unique("cutoff-ledger-op-history");
    cutoff_tests::aws::ledger_table(MotoServer::shared().endpoint(), &table).await;
    let revoker = revoker_on_moto(
        MotoServer::shared().endpoint(),
        &[("CUTOFF_LEDGER_TABLE", &table)],
    );
    let url = FunctionUrl::start(revoker, vec![alice(), mallory()], &[OPERATOR_ROLE]);
    let env = [("CUTOFF_OPERATOR_URL", url.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = [
        "revoke",
        "--account",
        ACCOUNT,
        "--role",
        &role,
        "--reason",
        "INC-9",
        "--json",
    ];
    let out = cutoff(&alice(), &args, &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let applied = json(&out);

    let history = ["history", "--account", ACCOUNT, "--role", &role, "--json"];
    let out = cutoff(&alice(), &history, &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let entries = json(&out);
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let outcome = &entries[0]["outcome"];
    assert_eq!(entries[0]["action"], "revoke");
    assert_eq!(outcome["cutoff"], applied["cutoff"]);
    assert_eq!(outcome["trigger"]["requested_by"], alice().arn.as_str());
    assert_eq!(outcome["trigger"]["requested_by_verified"], true);
    assert_eq!(outcome["trigger"]["reason"], "INC-9");
    let human = cutoff(&alice(), &history[..5], &env);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("1 entry for role") && text.contains(&format!("{}, verified;", alice().arn)),
        "{text}"
    );

    // Someone the URL does not admit reads nothing.
    let out = cutoff(&mallory(), &history, &env);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let calls = url.handled();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert!(
        calls[3].refused.is_some() && calls[3].caller.is_none(),
        "{calls:?}"
    );
}
