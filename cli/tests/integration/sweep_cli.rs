//! `cutoff sweep` as an operator runs it: the real binary with the standard credential
//! chain, pointed at the local AWS stand-in through `AWS_ENDPOINT_URL`.
//!
//! # Isolation
//!
//! A sweep sees a whole account, and the tests of this binary share one moto server. So
//! each test takes an account of its own: moto scopes IAM to the account of the
//! credentials, and `AssumeRole` into any account id yields credentials for it. The
//! binary gets those credentials in `AWS_ACCESS_KEY_ID`/`AWS_SESSION_TOKEN` (the
//! account is then its home, found with `sts:GetCallerIdentity`), or moto's default
//! credentials and `--account`, which it reaches through the member role as it would a
//! member account. Either way no test sees another's roles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_iam::config::Credentials;
use chrono::{Duration, Utc};
use cutoff_domain::policy::{Cutoff, PolicyDocument, ROLE_WIDE_POLICY_NAME, role_wide_document};
use cutoff_domain::sweep_rules::MAX_SESSION_AGE_TAG;
use cutoff_tests::aws::{ACCESS_KEY, SECRET_KEY, sdk_config_loader, sts_client};
use cutoff_tests::moto::MotoServer;
use cutoff_tests::proxy::{Fault, FaultPlan, FaultProxy};
use cutoff_tests::seed;
use serde_json::Value;

/// A number no other test of this module uses (the other CLI modules keep out of these
/// accounts).
fn next_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", next_id())
}

/// An account of the test's own on the shared moto server.
struct Env {
    account: String,
    /// Credentials acting in `account`.
    credentials: Credentials,
    /// Straight to moto, acting in `account`: for setting up and inspecting.
    iam: aws_sdk_iam::Client,
}

impl Env {
    async fn new() -> Env {
        let moto = MotoServer::shared();
        let account = format!("3000{:08}", next_id());
        let creds = sts_client(moto.endpoint())
            .await
            .assume_role()
            .role_arn(format!("arn:aws:iam::{account}:role/cutoff-member"))
            .role_session_name("test-setup")
            .send()
            .await
            .unwrap()
            .credentials
            .unwrap();
        let credentials = Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_owned()),
            None,
            "sweep-cli-tests",
        );
        let iam = iam_with(moto.endpoint(), &credentials).await;
        Env {
            account,
            credentials,
            iam,
        }
    }

    /// Runs `cutoff` with this account's credentials: the account is its home.
    fn cutoff(&self, args: &[&str]) -> Output {
        run(
            MotoServer::shared().endpoint(),
            Some(&self.credentials),
            args,
        )
    }

    /// Runs `cutoff` through `endpoint` with this account's credentials.
    fn cutoff_via(&self, endpoint: &str, args: &[&str]) -> Output {
        run(endpoint, Some(&self.credentials), args)
    }
}

/// An IAM client acting with `credentials`.
async fn iam_with(endpoint: &str, credentials: &Credentials) -> aws_sdk_iam::Client {
    let config = sdk_config_loader(endpoint)
        .credentials_provider(credentials.clone())
        .load()
        .await;
    aws_sdk_iam::Client::new(&config)
}

/// An Organizations client acting with `credentials`.
async fn organizations_with(
    endpoint: &str,
    credentials: &Credentials,
) -> aws_sdk_organizations::Client {
    let config = sdk_config_loader(endpoint)
        .credentials_provider(credentials.clone())
        .load()
        .await;
    aws_sdk_organizations::Client::new(&config)
}

/// The real binary against `endpoint`, with `credentials` or moto's default ones
/// (account 123456789012), and nothing of the developer's environment.
fn run(endpoint: &str, credentials: Option<&Credentials>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cutoff"));
    configure(&mut command, endpoint, credentials);
    command.args(args).output().unwrap()
}

/// The environment of [`run`], for a command that runs the binary.
fn configure(command: &mut Command, endpoint: &str, credentials: Option<&Credentials>) {
    command
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("CUTOFF_PROTECTED")
        .env_remove("CUTOFF_MEMBER_ROLE_NAME")
        .env_remove("CUTOFF_EXTERNAL_ID")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    match credentials {
        Some(c) => {
            command
                .env("AWS_ACCESS_KEY_ID", c.access_key_id())
                .env("AWS_SECRET_ACCESS_KEY", c.secret_access_key());
            if let Some(token) = c.session_token() {
                command.env("AWS_SESSION_TOKEN", token);
            }
        }
        None => {
            command
                .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
                .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
        }
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {} stderr {}", stdout(out), stderr(out)))
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout {}\nstderr {}",
        stdout(out),
        stderr(out)
    );
}

// ---------------------------------------------------------------------------------------
// IAM set-up and inspection, straight to moto
// ---------------------------------------------------------------------------------------

async fn create_role(iam: &aws_sdk_iam::Client, name: &str, tags: &[(&str, &str)]) {
    seed::create_role(iam, name, tags).await.unwrap();
}

/// A role with a role-wide revocation written 20 hours ago: expired for a role
/// (12 h sessions plus the 1 h margin).
async fn create_expired_role(iam: &aws_sdk_iam::Client, name: &str) -> Cutoff {
    create_role(iam, name, &[]).await;
    let cutoff = Cutoff::at_or_after(Utc::now() - Duration::hours(20));
    seed::put_role_policy(
        iam,
        name,
        ROLE_WIDE_POLICY_NAME,
        &role_wide_document(cutoff).to_json(),
    )
    .await
    .unwrap();
    cutoff
}

/// The inline policy `policy` of role `role` as IAM stores it, or None.
async fn role_policy(iam: &aws_sdk_iam::Client, role: &str, policy: &str) -> Option<String> {
    match iam
        .get_role_policy()
        .role_name(role)
        .policy_name(policy)
        .send()
        .await
    {
        Ok(out) => Some(out.policy_document().to_owned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            None
        }
        Err(e) => panic!("GetRolePolicy {role}/{policy}: {e:?}"),
    }
}

/// Everything a sweep could change in the account, as text: per role its tags, inline
/// policies (documents as stored) and attached policies; the customer-managed policies
/// and their default documents.
async fn iam_state(iam: &aws_sdk_iam::Client) -> String {
    let mut out = String::new();
    let roles = iam.list_roles().max_items(1000).send().await.unwrap();
    let mut names: Vec<String> = roles
        .roles()
        .iter()
        .map(|r| r.role_name().to_owned())
        .collect();
    names.sort();
    for name in names {
        out.push_str(&format!("role {name}\n"));
        let tags = iam.list_role_tags().role_name(&name).send().await.unwrap();
        for tag in tags.tags() {
            out.push_str(&format!("  tag {}={}\n", tag.key(), tag.value()));
        }
        let inline = iam
            .list_role_policies()
            .role_name(&name)
            .send()
            .await
            .unwrap();
        for policy in inline.policy_names() {
            let document = role_policy(iam, &name, policy).await.unwrap_or_default();
            out.push_str(&format!("  inline {policy} {document}\n"));
        }
        let attached = iam
            .list_attached_role_policies()
            .role_name(&name)
            .send()
            .await
            .unwrap();
        for policy in attached.attached_policies() {
            out.push_str(&format!(
                "  attached {}\n",
                policy.policy_arn().unwrap_or("")
            ));
        }
    }
    let managed = iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .send()
        .await
        .unwrap();
    for policy in managed.policies() {
        let arn = policy.arn().unwrap_or("");
        let version = iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(policy.default_version_id().unwrap_or(""))
            .send()
            .await
            .unwrap();
        let document = version
            .policy_version()
            .and_then(|v| v.document())
            .unwrap_or("");
        out.push_str(&format!("managed {arn} {document}\n"));
    }
    out
}

/// The outcome of the principal `name` in the JSON report.
fn outcome<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["outcomes"].as_array().unwrap())
        .find(|o| o["target"]["name"] == name)
        .unwrap_or_else(|| panic!("no outcome for {name}: {report:#}"))
}

/// The names listed under `list` (`moved`, `released`, `failed`) of the summary.
fn listed(report: &Value, list: &str) -> Vec<String> {
    report["summary"][list]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn dry_run_reports_what_would_change_and_why_and_writes_nothing() {
    let env = Env::new().await;
    let aged = unique("cli-sweep-aged");
    create_role(&env.iam, &aged, &[(MAX_SESSION_AGE_TAG, "2h")]).await;
    let old = unique("cli-sweep-old");
    let expired = create_expired_role(&env.iam, &old).await;
    // A principal the deployment protects (here by exact name, with --protect; the
    // template protects cutoff's own roles by exact ARN): noted, never changed.
    let own = unique("cutoff-sweeper");
    create_role(&env.iam, &own, &[(MAX_SESSION_AGE_TAG, "2h")]).await;
    let before = iam_state(&env.iam).await;

    let out = env.cutoff(&["sweep", "--dry-run", "--json", "--protect", &own]);
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(report.as_object().unwrap().len(), 2, "{report:#}");
    let summary = &report["summary"];
    assert_eq!(summary["dry_run"], true);
    assert_eq!(summary["accounts"], 1);
    assert_eq!(summary["accounts_failed"], 0);
    assert!(summary["run_id"].as_str().unwrap().starts_with("cli-"));
    assert_eq!(listed(&report, "moved"), vec![aged.clone()]);
    assert_eq!(listed(&report, "released"), vec![old.clone()]);
    assert_eq!(report["accounts"][0]["account"], env.account.as_str());
    assert_eq!(report["accounts"][0]["dry_run"], true);

    let moved = outcome(&report, &aged);
    assert_eq!(moved["status"], "dry_run");
    assert_eq!(moved["policy"], ROLE_WIDE_POLICY_NAME);
    let detail = moved["detail"].as_str().unwrap();
    assert!(
        detail.contains("would move the rolling cutoff") && detail.contains("2h from its tag"),
        "{detail}"
    );
    let released = outcome(&report, &old);
    assert_eq!(released["status"], "dry_run");
    assert_eq!(released["previous_cutoff"], expired.to_string());
    let detail = released["detail"].as_str().unwrap();
    assert!(
        detail.contains("would remove 1 expired revocation statement"),
        "{detail}"
    );
    let notes = report["accounts"][0]["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(
            |n| n.as_str().unwrap().contains(&own) && n.as_str().unwrap().contains("protected")
        ),
        "{notes:?}"
    );

    let human = env.cutoff(&["sweep", "--dry-run", "--protect", &own]);
    assert_exit(&human, 0);
    let text = stdout(&human);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("dry run: nothing is written"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "sweeping the caller's own account {}",
            env.account
        )),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("account {}: ", env.account))
                && l.contains("principals scanned")),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.trim_start().starts_with("dry_run")
            && l.contains(&format!("role {aged}: would move the rolling cutoff"))),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.trim_start().starts_with("dry_run")
            && l.contains(&format!("role {old}: would remove 1 expired revocation"))),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.trim_start().starts_with("would") && l.contains(ROLE_WIDE_POLICY_NAME)),
        "{text}"
    );
    let noted = lines.iter().position(|l| l.contains("noted")).unwrap();
    assert!(lines[noted..].iter().any(|l| l.contains(&own)), "{text}");
    let total = lines.last().unwrap();
    assert!(
        total.starts_with("total (dry run, nothing written)")
            && total.contains("1 rolling cutoff would move")
            && total.contains("1 expired statement would be removed"),
        "{text}"
    );

    assert_eq!(
        iam_state(&env.iam).await,
        before,
        "a dry run leaves IAM byte for byte as it was"
    );
}

#[tokio::test]
async fn a_sweep_moves_rolling_cutoffs_and_removes_expired_revocations() {
    // The account is given with --account and reached through the member role from
    // moto's default account, as a member account is.
    let env = Env::new().await;
    let aged = unique("cli-sweep-aged");
    create_role(&env.iam, &aged, &[(MAX_SESSION_AGE_TAG, "2h")]).await;
    let old = unique("cli-sweep-old");
    create_expired_role(&env.iam, &old).await;
    let batch = unique("batch-nightly");
    create_role(&env.iam, &batch, &[]).await;
    let batch_pattern = format!("{}*", &batch[..batch.len() - 1]);

    let started = Utc::now();
    let out = run(
        MotoServer::shared().endpoint(),
        None,
        &[
            "sweep",
            "--account",
            &env.account,
            "--max-age",
            &format!("{batch_pattern}=4h"),
            "--external-id",
            "cutoff-ext-5b1c",
            "--json",
        ],
    );
    let finished = Utc::now();
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(report["summary"]["dry_run"], false);
    assert_eq!(report["accounts"][0]["account"], env.account.as_str());
    let mut moved = listed(&report, "moved");
    moved.sort();
    let mut want = vec![aged.clone(), batch.clone()];
    want.sort();
    assert_eq!(moved, want);
    assert_eq!(listed(&report, "released"), vec![old.clone()]);
    assert_eq!(outcome(&report, &aged)["status"], "applied");
    assert_eq!(outcome(&report, &old)["status"], "released");
    let detail = outcome(&report, &batch)["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.contains(&format!("4h from pattern `{batch_pattern}`")),
        "{detail}"
    );

    // The rolling cutoff is in force: now − 2h, rounded up to the second, on AWS's
    // clock: the Date of its answer has whole seconds, and the CLI sets itself a
    // second ahead of it (a later cutoff only ever denies more).
    let stored = role_policy(&env.iam, &aged, ROLE_WIDE_POLICY_NAME)
        .await
        .expect("the rolling cutoff was written");
    let cutoff = PolicyDocument::parse(&stored)
        .unwrap()
        .role_wide_cutoff()
        .unwrap()
        .as_datetime();
    assert!(
        cutoff >= started - Duration::hours(2) - Duration::seconds(1)
            && cutoff <= finished - Duration::hours(2) + Duration::seconds(2),
        "{cutoff} for a sweep between {started} and {finished}"
    );
    assert!(
        role_policy(&env.iam, &batch, ROLE_WIDE_POLICY_NAME)
            .await
            .is_some()
    );
    // The expired revocation was the policy's only statement: the policy is gone.
    assert_eq!(
        role_policy(&env.iam, &old, ROLE_WIDE_POLICY_NAME).await,
        None
    );
}

#[tokio::test]
async fn organization_sweeps_the_active_accounts_of_the_organization() {
    let env = Env::new().await;
    let organizations = organizations_with(MotoServer::shared().endpoint(), &env.credentials).await;
    organizations
        .create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .unwrap();
    let out = env.cutoff(&["sweep", "--organization", "--dry-run", "--json"]);
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(report["summary"]["accounts"], 1, "{report:#}");
    assert_eq!(report["accounts"][0]["account"], env.account.as_str());

    let human = env.cutoff(&["sweep", "--organization", "--dry-run"]);
    assert_exit(&human, 0);
    assert!(
        stdout(&human).contains("sweeping the 1 active account of the Organization"),
        "{}",
        stdout(&human)
    );
}

#[tokio::test]
async fn an_account_that_cannot_be_swept_exits_one_and_is_still_reported() {
    let env = Env::new().await;
    let proxy = FaultProxy::start(
        MotoServer::shared().endpoint(),
        FaultPlan::passthrough().then_n_for(
            2,
            "GetAccountAuthorizationDetails",
            Fault::access_denied(),
        ),
    );
    let out = env.cutoff_via(proxy.endpoint(), &["sweep", "--json"]);
    assert_exit(&out, 1);
    let report = json(&out);
    assert_eq!(report["summary"]["accounts_failed"], 1);
    assert_eq!(report["accounts"][0]["error"]["kind"], "access_denied");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    let human = env.cutoff_via(proxy.endpoint(), &["sweep"]);
    assert_exit(&human, 1);
    let text = stdout(&human);
    assert!(
        text.contains(&format!("account {}: not swept", env.account))
            && text.contains("access_denied"),
        "{text}"
    );
    assert!(
        text.lines().last().unwrap().contains("1 account failed"),
        "{text}"
    );
}

#[test]
fn invalid_arguments_exit_two_naming_the_problem_and_call_nothing() {
    // Nothing listens here: an AWS call would fail with exit 1, not 2.
    let nowhere = "http://127.0.0.1:9";
    for (args, names) in [
        (
            vec!["sweep", "--account", "12345"],
            vec!["--account", "12345"],
        ),
        (
            vec!["sweep", "--account", "123456789012", "--account", "x"],
            vec!["--account"],
        ),
        (
            vec!["sweep", "--max-age", "x=5m"],
            vec!["--max-age", "15 minutes"],
        ),
        (vec!["sweep", "--max-age", "batch-*"], vec!["--max-age"]),
        (vec!["sweep", "--margin", "25h"], vec!["--margin"]),
        (vec!["sweep", "--protect", "a*b"], vec!["--protect"]),
        (vec!["sweep", "--concurrency", "0"], vec!["--concurrency"]),
        (vec!["sweep", "--concurrency", "33"], vec!["--concurrency"]),
        (
            vec!["sweep", "--member-role", "bad name"],
            vec!["--member-role"],
        ),
        (
            vec!["sweep", "--account", "123456789012", "--organization"],
            vec!["--organization"],
        ),
    ] {
        let out = run(nowhere, None, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{err}");
        for name in names {
            assert!(err.contains(name), "{args:?}: {err}");
        }
        // clap's own usage errors span a few lines; ours are one line.
        if !err.starts_with("error:") {
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        }
    }
}

/// A sweep of several accounts counts them on a terminal, one line rewritten in place,
/// and says nothing of the kind when standard error is piped (scripts, CI logs).
#[tokio::test]
async fn an_organization_sized_sweep_shows_progress_on_a_terminal_only() {
    let (home, member) = (Env::new().await, Env::new().await);
    let args = [
        "sweep",
        "--account",
        &home.account,
        "--account",
        &member.account,
        "--dry-run",
    ];
    let piped = home.cutoff(&args);
    assert_eq!(piped.status.code(), Some(0), "{}", stderr(&piped));
    assert!(!stderr(&piped).contains("swept"), "{}", stderr(&piped));
    assert!(!stderr(&piped).contains('\r'), "{}", stderr(&piped));

    // The same under a pseudo-terminal (util-linux `script`), stdout and stderr both.
    let line = [env!("CARGO_BIN_EXE_cutoff")]
        .iter()
        .chain(args.iter())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let mut command = Command::new("script");
    configure(
        &mut command,
        MotoServer::shared().endpoint(),
        Some(&home.credentials),
    );
    let on_terminal = command
        .args(["-qec", &line, "/dev/null"])
        .env_remove("CUTOFF_NO_PROGRESS")
        .output()
        .expect("util-linux `script` runs the CLI on a pseudo-terminal");
    let shown = stdout(&on_terminal);
    assert_eq!(on_terminal.status.code(), Some(0), "{shown}");
    assert!(shown.contains("\rsweeping 2 accounts ..."), "{shown:?}");
    assert!(
        shown.contains("\rswept 2/2 accounts, 0 with failures"),
        "{shown:?}"
    );
    // The line is blanked (spaces, then back to the start) before the report.
    let blanked = shown.rfind("swept 2/2").unwrap();
    let after = &shown[blanked..];
    let report = after.find("      \r").map(|i| &after[i..]).unwrap_or("");
    assert!(report.contains("2 accounts swept"), "{shown:?}");
    // CUTOFF_NO_PROGRESS silences it on a terminal too.
    let mut command = Command::new("script");
    configure(
        &mut command,
        MotoServer::shared().endpoint(),
        Some(&home.credentials),
    );
    let quiet = command
        .args(["-qec", &line, "/dev/null"])
        .env("CUTOFF_NO_PROGRESS", "1")
        .output()
        .unwrap();
    assert!(!stdout(&quiet).contains("swept 2/2"), "{}", stdout(&quiet));
}
