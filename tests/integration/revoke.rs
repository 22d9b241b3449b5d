//! The revocation workflow with the real SDK against the local AWS stand-in (moto),
//! through the fault-injecting proxy, with an independent IAM policy evaluator as the
//! oracle for "this deny really denies".

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cutoff_domain::triage::Source;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_sdk_iam::types::StatusType;
use cutoff::revoke::{RevokeConfig, Revoker};
use cutoff_aws::dynamodb::{Ledger, SdkLedger};
use cutoff_aws::retry::RetryPolicy;
use cutoff_aws::sts::SdkAccountAccess;
use cutoff_domain::clock::{Clock, FixedClock, SystemClock};
use cutoff_domain::event::{ManualAction, Scope};
use cutoff_domain::outcome::{FailureKind, Outcome, RevocationRequest, Status, Trigger};
use cutoff_domain::policy::{Cutoff, PolicyDocument, ROLE_WIDE_POLICY_NAME, SESSION_POLICY_NAME};
use cutoff_domain::principal::{
    AccessKeyId, Account, Partition, PrincipalName, SessionName, Target, TargetKind, UniqueId,
};
use cutoff_tests::aws::{iam_client, ledger_table, sdk_config, sts_client};
use cutoff_tests::evaluator::{Decision, EvalRequest, evaluate};
use cutoff_tests::moto::MotoServer;
use cutoff_tests::proxy::{Fault, FaultPlan, FaultProxy};
use serde_json::{Value, json};

const HOME: &str = "123456789012";
const MEMBER: &str = "111122223333";
const EXTERNAL_ID: &str = "cutoff-ext-7f3a";
const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// A name no other test of this module uses. The tests of the integration binary share
/// one moto server; the other modules keep to other names in this account.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

struct Env {
    proxy: FaultProxy,
    iam: aws_sdk_iam::Client,
    revoker: Revoker<SdkAccountAccess, SystemClock>,
}

const FAST: RetryPolicy = RetryPolicy {
    max_attempts: 6,
    base_delay: Duration::from_millis(5),
    max_delay: Duration::from_millis(40),
};

fn account_access(config: &aws_config::SdkConfig) -> SdkAccountAccess {
    SdkAccountAccess::new(
        config,
        Account::parse(HOME).unwrap(),
        Partition::Aws,
        PrincipalName::parse("cutoff-member").unwrap(),
        Some(EXTERNAL_ID.to_owned()),
    )
    .with_retry_policy(FAST)
}

async fn env() -> Env {
    let moto = MotoServer::shared();
    let proxy = FaultProxy::start(moto.endpoint(), FaultPlan::passthrough());
    let config = sdk_config(proxy.endpoint()).await;
    let fast = FAST;
    let access = account_access(&config);
    let revoker = Revoker::new(
        access,
        SystemClock,
        RevokeConfig {
            retry: fast,
            verify_delay: Duration::from_millis(10),
            // cutoff's own revoker role, protected by its exact ARN as the template
            // passes it (CUTOFF_PROTECTED_ARNS).
            protection: cutoff_domain::principal::Protection {
                arns: vec![
                    cutoff_domain::principal::ProtectedArn::parse(&format!(
                        "arn:aws:iam::{HOME}:role/cutoff-revoker"
                    ))
                    .unwrap(),
                ],
                ..RevokeConfig::default().protection
            },
            ..RevokeConfig::default()
        },
    );
    Env {
        iam: iam_client(moto.endpoint()).await,
        proxy,
        revoker,
    }
}

async fn create_role(
    iam: &aws_sdk_iam::Client,
    name: &str,
    path: &str,
    tags: &[(&str, &str)],
) -> String {
    let mut call = iam
        .create_role()
        .role_name(name)
        .path(path)
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#);
    for (k, v) in tags {
        call = call.tags(
            aws_sdk_iam::types::Tag::builder()
                .key(*k)
                .value(*v)
                .build()
                .unwrap(),
        );
    }
    call.send().await.unwrap().role.unwrap().role_id
}

fn request(account: &str, kind: TargetKind, name: &str) -> RevocationRequest {
    RevocationRequest {
        action: ManualAction::Revoke,
        target: Target::new(
            kind,
            Account::parse(account).unwrap(),
            PrincipalName::parse(name).unwrap(),
        ),
        scope: Scope::Role,
        trigger: Trigger {
            source: Source::Manual,
            requested_by: Some("integration test".into()),
            ..Trigger::default()
        },
        first_activity: None,
        expected_unique_id: None,
        activity_region: None,
        event_time: None,
        dry_run: false,
        force: false,
        needs_approval: false,
    }
}

async fn role_policy(
    iam: &aws_sdk_iam::Client,
    role: &str,
    policy: &str,
) -> Option<PolicyDocument> {
    match iam
        .get_role_policy()
        .role_name(role)
        .policy_name(policy)
        .send()
        .await
    {
        Ok(out) => Some(PolicyDocument::parse(out.policy_document()).unwrap()),
        Err(_) => None,
    }
}

fn at(cutoff: Cutoff, offset_seconds: i64) -> String {
    (cutoff.as_datetime() + chrono::Duration::seconds(offset_seconds))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Would a request by a session of `role` issued at `issued` be allowed?
fn decide(
    stored: &PolicyDocument,
    role: &str,
    issued: Option<String>,
    userid: Option<&str>,
) -> Decision {
    let mut req = EvalRequest::new(
        "s3:GetObject",
        "arn:aws:s3:::payments-exports/report.csv",
        &format!("arn:aws:iam::{HOME}:role/{role}"),
    )
    .policy(serde_json::from_str::<Value>(ALLOW_ALL).unwrap())
    .policy(serde_json::from_str::<Value>(&stored.to_json()).unwrap());
    if let Some(issued) = issued {
        req = req.context("aws:TokenIssueTime", issued);
    }
    if let Some(userid) = userid {
        req = req.context("aws:userid", userid);
    }
    evaluate(&req).decision
}

fn writes(proxy: &FaultProxy) -> Vec<String> {
    proxy
        .actions()
        .into_iter()
        .filter(|a| !a.starts_with("Get") && !a.starts_with("List") && a != "AssumeRole")
        .collect()
}

#[tokio::test]
async fn a_revoked_role_denies_sessions_issued_before_the_cutoff_and_allows_later_ones() {
    let env = env().await;
    let role = unique("payments-api");
    create_role(&env.iam, &role, "/", &[("cutoff:owner", "payments")]).await;
    let out = env
        .revoker
        .handle(&request(HOME, TargetKind::Role, &role), "it-1")
        .await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert_eq!(out.owner.team.as_deref(), Some("payments"));
    let cutoff = out.cutoff.unwrap();
    let stored = role_policy(&env.iam, &role, ROLE_WIDE_POLICY_NAME)
        .await
        .unwrap();
    assert_eq!(stored.role_wide_cutoff(), Some(cutoff));
    assert_eq!(
        decide(&stored, &role, Some(at(cutoff, -60)), None),
        Decision::ExplicitlyDenied
    );
    assert_eq!(
        decide(&stored, &role, Some(at(cutoff, 60)), None),
        Decision::Allowed
    );
    // The cutoff is after the moment of the write: a session minted while the
    // revoker ran is denied too.
    assert!(cutoff.as_datetime() > chrono::Utc::now() - chrono::Duration::seconds(5));
    assert_eq!(
        out.api_calls as usize,
        env.proxy.requests().len(),
        "api_calls counts every call made"
    );
}

#[tokio::test]
async fn session_scope_denies_that_session_and_allows_another_session_of_the_role() {
    let env = env().await;
    let role = unique("web-tier");
    let role_id = create_role(&env.iam, &role, "/", &[]).await;
    let mut req = request(HOME, TargetKind::Role, &role);
    req.scope = Scope::Session;
    req.target.session = Some(SessionName::parse("i-0aaaaaaaaaaaaaaa1").unwrap());
    let out = env.revoker.handle(&req, "it-2").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert_eq!(out.scope, Scope::Session);
    let cutoff = out.cutoff.unwrap();
    let stored = role_policy(&env.iam, &role, SESSION_POLICY_NAME)
        .await
        .unwrap();
    let stolen = format!("{role_id}:i-0aaaaaaaaaaaaaaa1");
    let other = format!("{role_id}:i-0bbbbbbbbbbbbbbb2");
    assert_eq!(
        decide(&stored, &role, Some(at(cutoff, -60)), Some(&stolen)),
        Decision::ExplicitlyDenied
    );
    assert_eq!(
        decide(&stored, &role, Some(at(cutoff, -60)), Some(&other)),
        Decision::Allowed
    );
    assert_eq!(
        decide(&stored, &role, Some(at(cutoff, 60)), Some(&stolen)),
        Decision::Allowed
    );
    assert!(
        role_policy(&env.iam, &role, ROLE_WIDE_POLICY_NAME)
            .await
            .is_none()
    );
}

#[tokio::test]
async fn revocations_never_lower_the_cutoff_and_a_later_existing_one_is_kept() {
    let env = env().await;
    let role = unique("ledger");
    create_role(&env.iam, &role, "/", &[]).await;
    let first = env
        .revoker
        .handle(&request(HOME, TargetKind::Role, &role), "a")
        .await;
    let second = env
        .revoker
        .handle(&request(HOME, TargetKind::Role, &role), "b")
        .await;
    assert!(second.cutoff.unwrap() >= first.cutoff.unwrap());

    let later = r#"{"Version":"2012-10-17","Statement":[{"Sid":"RevokeOlderSessions","Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2099-01-01T00:00:00Z"}}}]}"#;
    env.iam
        .put_role_policy()
        .role_name(&role)
        .policy_name(ROLE_WIDE_POLICY_NAME)
        .policy_document(later)
        .send()
        .await
        .unwrap();
    env.proxy.clear_requests();
    let third = env
        .revoker
        .handle(&request(HOME, TargetKind::Role, &role), "c")
        .await;
    assert_eq!(third.status, Status::AlreadyRevoked);
    assert_eq!(
        third.cutoff,
        Some(Cutoff::parse("2099-01-01T00:00:00Z").unwrap())
    );
    assert!(writes(&env.proxy).is_empty(), "{:?}", writes(&env.proxy));
    let stored = role_policy(&env.iam, &role, ROLE_WIDE_POLICY_NAME)
        .await
        .unwrap();
    assert_eq!(
        stored.role_wide_cutoff(),
        Some(Cutoff::parse("2099-01-01T00:00:00Z").unwrap())
    );
}

#[tokio::test]
async fn a_console_written_policy_with_foreign_statements_is_merged_not_clobbered() {
    let env = env().await;
    let role = unique("reports");
    create_role(&env.iam, &role, "/", &[]).await;
    let console = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["*"],"Resource":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-01-01T00:00:00.000Z"}}},{"Sid":"NoBucketDeletes","Effect":"Deny","Action":"s3:DeleteBucket","Resource":"*"}]}"#;
    env.iam
        .put_role_policy()
        .role_name(&role)
        .policy_name(ROLE_WIDE_POLICY_NAME)
        .policy_document(console)
        .send()
        .await
        .unwrap();
    let out = env
        .revoker
        .handle(&request(HOME, TargetKind::Role, &role), "d")
        .await;
    assert_eq!(out.status, Status::Applied);
    assert_eq!(
        out.previous_cutoff,
        Some(Cutoff::parse("2026-01-01T00:00:00Z").unwrap())
    );
    let stored = role_policy(&env.iam, &role, ROLE_WIDE_POLICY_NAME)
        .await
        .unwrap();
    assert_eq!(stored.statements().len(), 2);
    assert_eq!(
        serde_json::to_value(stored.foreign_statements()[0]).unwrap(),
        json!({"Sid":"NoBucketDeletes","Effect":"Deny","Action":"s3:DeleteBucket","Resource":"*"})
    );
    assert_eq!(
        decide(&stored, &role, Some(at(out.cutoff.unwrap(), -60)), None),
        Decision::ExplicitlyDenied
    );
}

#[tokio::test]
async fn a_nearly_full_inline_budget_gets_the_managed_policy_fallback() {
    let env = env().await;
    let role = unique("batch");
    create_role(&env.iam, &role, "/", &[]).await;
    // IAM refuses an inline write past the role's 10,240 characters with
    // LimitExceeded; moto does not enforce the quota, so the proxy answers as IAM would.
    let padding = "x".repeat(10_100);
    let big = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"{padding}","Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}]}}"#
    );
    env.iam
        .put_role_policy()
        .role_name(&role)
        .policy_name("Existing")
        .policy_document(big)
        .send()
        .await
        .unwrap();
    env.proxy
        .set_plan(FaultPlan::passthrough().then_for("PutRolePolicy", Fault::limit_exceeded()));
    let out = env
        .revoker
        .handle(&request(HOME, TargetKind::Role, &role), "e")
        .await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    let arn = out.policy.clone().unwrap();
    assert_eq!(
        arn,
        format!("arn:aws:iam::{HOME}:policy/cutoff/cutoff-revoke-role-{role}")
    );
    assert!(out.detail.contains("does not fit inline"), "{}", out.detail);
    assert!(
        out.detail.contains("IAM refused the inline write"),
        "{}",
        out.detail
    );
    let attached = env
        .iam
        .list_attached_role_policies()
        .role_name(&role)
        .send()
        .await
        .unwrap();
    assert!(
        attached
            .attached_policies()
            .iter()
            .any(|p| p.policy_arn() == Some(arn.as_str()))
    );
    let policy = env
        .iam
        .get_policy()
        .policy_arn(&arn)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    let version = env
        .iam
        .get_policy_version()
        .policy_arn(&arn)
        .version_id(policy.default_version_id().unwrap())
        .send()
        .await
        .unwrap();
    let doc = PolicyDocument::parse(version.policy_version().unwrap().document().unwrap()).unwrap();
    assert_eq!(doc.role_wide_cutoff(), out.cutoff);
    assert_eq!(
        decide(&doc, &role, Some(at(out.cutoff.unwrap(), -60)), None),
        Decision::ExplicitlyDenied
    );
    assert!(
        role_policy(&env.iam, &role, ROLE_WIDE_POLICY_NAME)
            .await
            .is_none()
    );
}

#[tokio::test]
async fn service_linked_identity_center_protected_and_root_targets_are_never_written() {
    let env = env().await;
    let slr = unique("custom-slr");
    let sso = unique("custom-sso");
    create_role(&env.iam, &slr, "/aws-service-role/ecs.amazonaws.com/", &[]).await;
    create_role(
        &env.iam,
        &sso,
        "/aws-reserved/sso.amazonaws.com/eu-west-1/",
        &[],
    )
    .await;
    create_role(&env.iam, "cutoff-revoker", "/", &[]).await;
    // Real service-linked and Identity Center roles live at the paths IAM reserves.
    // (AWSServiceRoleForECS is the pipeline tests' one, in the same account of the
    // shared moto server.)
    create_role(
        &env.iam,
        "AWSServiceRoleForAutoScaling",
        "/aws-service-role/autoscaling.amazonaws.com/",
        &[],
    )
    .await;
    create_role(
        &env.iam,
        "AWSReservedSSO_Admin_0123456789abcdef",
        "/aws-reserved/sso.amazonaws.com/eu-west-1/",
        &[],
    )
    .await;
    env.proxy.clear_requests();
    let cases: Vec<(TargetKind, String, Status, &str)> = vec![
        (TargetKind::Role, slr, Status::Unmodifiable, "service"),
        (
            TargetKind::Role,
            sso,
            Status::Unmodifiable,
            "permission set",
        ),
        (
            TargetKind::Role,
            "cutoff-revoker".into(),
            Status::Protected,
            "protected",
        ),
        (
            TargetKind::ServiceLinkedRole,
            "AWSServiceRoleForAutoScaling".into(),
            Status::Unmodifiable,
            "service",
        ),
        (
            TargetKind::IdentityCenterRole,
            "AWSReservedSSO_Admin_0123456789abcdef".into(),
            Status::Unmodifiable,
            "permission set",
        ),
        (
            TargetKind::Root,
            "root".into(),
            Status::Unmodifiable,
            "root",
        ),
    ];
    for (kind, name, status, says) in cases {
        let out: Outcome = env.revoker.handle(&request(HOME, kind, &name), "f").await;
        assert_eq!(out.status, status, "{name}: {}", out.detail);
        assert!(out.detail.contains(says), "{name}: {}", out.detail);
    }
    assert!(writes(&env.proxy).is_empty(), "{:?}", writes(&env.proxy));
}

#[tokio::test]
async fn a_role_named_like_a_reserved_one_at_an_ordinary_path_is_revoked() {
    // IAM reserves the paths, not the names: an attacker's role called
    // AWSReservedSSO_… at `/` is a role like any other.
    let env = env().await;
    let name = unique("AWSReservedSSO_Backdoor");
    create_role(&env.iam, &name, "/", &[]).await;
    let out = env
        .revoker
        .handle(&request(HOME, TargetKind::IdentityCenterRole, &name), "f")
        .await;
    assert_eq!(out.status, Status::Applied, "{}", out.detail);
    assert_eq!(out.target.unwrap().kind, TargetKind::Role);
    assert!(
        role_policy(&env.iam, &name, ROLE_WIDE_POLICY_NAME)
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_users_access_key_ends_inactive_and_still_exists() {
    let env = env().await;
    let user = unique("ci-deployer");
    env.iam.create_user().user_name(&user).send().await.unwrap();
    let key = env
        .iam
        .create_access_key()
        .user_name(&user)
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    let mut req = request(HOME, TargetKind::User, &user);
    req.target.access_key_id = Some(AccessKeyId::parse(key.access_key_id()).unwrap());
    let out = env.revoker.handle(&req, "g").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    let keys = env
        .iam
        .list_access_keys()
        .user_name(&user)
        .send()
        .await
        .unwrap();
    let listed = keys
        .access_key_metadata()
        .iter()
        .find(|k| k.access_key_id() == Some(key.access_key_id()))
        .unwrap();
    assert_eq!(listed.status(), Some(&StatusType::Inactive));
    let policy = env
        .iam
        .get_user_policy()
        .user_name(&user)
        .policy_name(ROLE_WIDE_POLICY_NAME)
        .send()
        .await
        .unwrap();
    let doc = PolicyDocument::parse(policy.policy_document()).unwrap();
    assert_eq!(doc.role_wide_cutoff(), out.cutoff);
    assert_eq!(env.proxy.count("DeleteAccessKey"), 0);
}

#[tokio::test]
async fn another_account_is_reached_through_assume_role_with_the_external_id() {
    let env = env().await;
    let moto = MotoServer::shared();
    // Create the target role inside the member account, as moto scopes resources to
    // the account of the credentials that create them.
    let creds = sts_client(moto.endpoint())
        .await
        .assume_role()
        .role_arn(format!("arn:aws:iam::{MEMBER}:role/cutoff-member"))
        .role_session_name("setup")
        .send()
        .await
        .unwrap()
        .credentials
        .unwrap();
    let member_config = aws_sdk_iam::config::Builder::from(&sdk_config(moto.endpoint()).await)
        .credentials_provider(aws_sdk_iam::config::Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_owned()),
            None,
            "test",
        ))
        .build();
    let member_iam = aws_sdk_iam::Client::from_conf(member_config);
    let role = unique("member-app");
    create_role(&member_iam, &role, "/", &[]).await;

    let out = env
        .revoker
        .handle(&request(MEMBER, TargetKind::Role, &role), "req-42")
        .await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    let assumes = env.proxy.requests_for("AssumeRole");
    assert_eq!(assumes.len(), 1);
    assert_eq!(
        assumes[0].param("RoleArn"),
        Some(format!("arn:aws:iam::{MEMBER}:role/cutoff-member").as_str())
    );
    assert_eq!(assumes[0].param("ExternalId"), Some(EXTERNAL_ID));
    assert_eq!(assumes[0].param("RoleSessionName"), Some("cutoff-req-42"));
    assert!(
        role_policy(&member_iam, &role, ROLE_WIDE_POLICY_NAME)
            .await
            .is_some(),
        "written in the member account"
    );
    assert!(
        role_policy(&env.iam, &role, ROLE_WIDE_POLICY_NAME)
            .await
            .is_none(),
        "not in the home account"
    );
    // Credentials are cached: a second request makes no new AssumeRole call.
    env.revoker
        .handle(&request(MEMBER, TargetKind::Role, &role), "req-43")
        .await;
    assert_eq!(env.proxy.count("AssumeRole"), 1);
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_then_succeed() {
    let env = env().await;
    let role = unique("flaky");
    create_role(&env.iam, &role, "/", &[]).await;
    env.proxy.set_plan(
        FaultPlan::passthrough()
            .then_for(
                "GetRole",
                Fault::error(503, "ServiceUnavailable", "try again"),
            )
            .then_n_for(
                2,
                "PutRolePolicy",
                Fault::error(400, "Throttling", "Rate exceeded"),
            )
            .then_for("GetRolePolicy", Fault::error(500, "ServiceFailure", "oops")),
    );
    let out = env
        .revoker
        .handle(&request(HOME, TargetKind::Role, &role), "h")
        .await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert_eq!(env.proxy.faults_injected(), 4);
    assert_eq!(out.api_calls, 4 + 4, "four calls and four retried attempts");
    assert!(
        role_policy(&env.iam, &role, ROLE_WIDE_POLICY_NAME)
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_fatal_error_yields_a_failed_outcome_with_its_kind() {
    let env = env().await;
    let role = unique("locked");
    create_role(&env.iam, &role, "/", &[]).await;
    env.proxy
        .set_plan(FaultPlan::passthrough().then_for("PutRolePolicy", Fault::access_denied()));
    let out = env
        .revoker
        .handle(&request(HOME, TargetKind::Role, &role), "i")
        .await;
    assert_eq!(out.status, Status::Failed);
    assert_eq!(out.error.as_ref().unwrap().kind, FailureKind::AccessDenied);
    assert_eq!(
        env.proxy.count("PutRolePolicy"),
        1,
        "fatal errors are not retried"
    );
    let missing = env
        .revoker
        .handle(&request(HOME, TargetKind::Role, &unique("missing")), "j")
        .await;
    assert_eq!(missing.error.unwrap().kind, FailureKind::NotFound);
}

#[tokio::test]
async fn dry_run_computes_everything_and_writes_nothing() {
    let env = env().await;
    let role = unique("dry");
    create_role(&env.iam, &role, "/", &[]).await;
    let mut req = request(HOME, TargetKind::Role, &role);
    req.dry_run = true;
    env.proxy.clear_requests();
    let out = env.revoker.handle(&req, "k").await;
    assert_eq!(out.status, Status::DryRun);
    assert!(out.cutoff.is_some());
    assert!(!out.actions.is_empty());
    assert!(writes(&env.proxy).is_empty());
    assert!(
        role_policy(&env.iam, &role, ROLE_WIDE_POLICY_NAME)
            .await
            .is_none()
    );
}

#[tokio::test]
async fn release_is_refused_while_the_cutoff_matters_and_removes_it_when_forced() {
    let env = env().await;
    let role = unique("release-me");
    create_role(&env.iam, &role, "/", &[]).await;
    env.revoker
        .handle(&request(HOME, TargetKind::Role, &role), "l")
        .await;
    let mut release = request(HOME, TargetKind::Role, &role);
    release.action = ManualAction::Release;
    let refused = env.revoker.handle(&release, "m").await;
    assert_eq!(refused.error.as_ref().unwrap().kind, FailureKind::Refused);
    assert!(
        role_policy(&env.iam, &role, ROLE_WIDE_POLICY_NAME)
            .await
            .is_some()
    );
    release.force = true;
    let released = env.revoker.handle(&release, "n").await;
    assert_eq!(released.status, Status::Released, "{released:#?}");
    assert!(
        role_policy(&env.iam, &role, ROLE_WIDE_POLICY_NAME)
            .await
            .is_none()
    );
}

// ------------------------------------------------------------ with the real ledger

/// A revoker with the deployment's ledger: a DynamoDB table of the deployment's shape on
/// moto, and a clock the test moves.
async fn with_ledger(
    table: &str,
    breaker: Option<u32>,
    clock: &std::sync::Arc<FixedClock>,
) -> (
    Revoker<SdkAccountAccess, std::sync::Arc<FixedClock>, SdkLedger>,
    SdkLedger,
) {
    let moto = MotoServer::shared();
    ledger_table(moto.endpoint(), table).await;
    ledgered_at(moto.endpoint(), table, breaker, clock).await
}

/// A revoker with the ledger `table` (already there) whose every call goes to
/// `endpoint` (moto, or a proxy in front of it).
async fn ledgered_at(
    endpoint: &str,
    table: &str,
    breaker: Option<u32>,
    clock: &std::sync::Arc<FixedClock>,
) -> (
    Revoker<SdkAccountAccess, std::sync::Arc<FixedClock>, SdkLedger>,
    SdkLedger,
) {
    let config = sdk_config(endpoint).await;
    let ledger = SdkLedger::from_config(&config, table);
    let revoker = Revoker::new(
        account_access(&config),
        clock.clone(),
        RevokeConfig {
            retry: FAST,
            verify_delay: Duration::from_millis(10),
            max_revocations_per_account_hour: breaker,
            ..RevokeConfig::default()
        },
    )
    .with_ledger(ledger.clone());
    (revoker, ledger)
}

/// The request intake makes of a GuardDuty finding about a role session.
fn finding_request(
    role: &str,
    role_id: &str,
    finding: &str,
    key: &str,
    updated: chrono::DateTime<chrono::Utc>,
    first_activity: Option<chrono::DateTime<chrono::Utc>>,
) -> RevocationRequest {
    let mut request = request(HOME, TargetKind::Role, role);
    request.target.access_key_id = Some(AccessKeyId::parse(key).unwrap());
    request.trigger = Trigger {
        source: Source::GuardDuty,
        finding_id: Some(finding.into()),
        finding_type: Some(
            "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS".into(),
        ),
        severity: Some(8.0),
        updated_at: Some(updated),
        ..Trigger::default()
    };
    request.first_activity = first_activity;
    request.expected_unique_id = Some(UniqueId::parse(role_id).unwrap());
    request
}

fn wall_clock() -> std::sync::Arc<FixedClock> {
    // Whole seconds, so that the cutoffs below are exact.
    let now = chrono::Utc::now();
    std::sync::Arc::new(FixedClock::at(
        chrono::DateTime::from_timestamp(now.timestamp(), 0).unwrap(),
    ))
}

#[tokio::test]
async fn a_finding_guardduty_keeps_updating_is_written_once_and_a_new_key_in_it_at_once() {
    // The skip rule with the key records in the real table: an update of the same
    // finding (later `updatedAt`, no first activity) must not re-revoke, or every
    // update would cut off the sessions the role's workload minted since; the same
    // finding naming a new key must revoke at once, though its first activity is
    // before the cutoff in force (that activity was the old key's).
    let table = unique("cutoff-ledger-keys");
    let clock = wall_clock();
    let (revoker, ledger) = with_ledger(&table, None, &clock).await;
    let iam = iam_client(MotoServer::shared().endpoint()).await;
    let role = unique("keys-payments");
    let role_id = create_role(&iam, &role, "/", &[]).await;
    let t0 = clock.now();
    let first_seen = Some(t0 - chrono::Duration::minutes(20));
    const OLD_KEY: &str = "ASIAOLDKEY0000000001";
    const NEW_KEY: &str = "ASIANEWKEY0000000002";

    let first = revoker
        .handle(
            &finding_request(&role, &role_id, "gd-1", OLD_KEY, t0, first_seen),
            "req-1",
        )
        .await;
    assert_eq!(first.status, Status::Applied, "{first:#?}");
    let first_cutoff = first.cutoff.unwrap();
    let principal = cutoff_aws::dynamodb::principal_key(&first.target.clone().unwrap());
    let records = ledger
        .state(&principal, clock.now())
        .await
        .unwrap()
        .key_records(clock.now());
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].access_key_id.as_str(), OLD_KEY);
    assert_eq!(records[0].cutoff, first_cutoff);

    clock.advance(chrono::Duration::minutes(10));
    let update = revoker
        .handle(
            &finding_request(&role, &role_id, "gd-1", OLD_KEY, clock.now(), None),
            "req-2",
        )
        .await;
    assert_eq!(update.status, Status::AlreadyRevoked, "{update:#?}");
    assert!(update.detail.contains(OLD_KEY), "{}", update.detail);
    assert_eq!(
        role_policy(&iam, &role, ROLE_WIDE_POLICY_NAME)
            .await
            .unwrap()
            .role_wide_cutoff(),
        Some(first_cutoff),
        "nothing written"
    );

    clock.advance(chrono::Duration::minutes(10));
    let new_key = revoker
        .handle(
            &finding_request(&role, &role_id, "gd-1", NEW_KEY, clock.now(), first_seen),
            "req-3",
        )
        .await;
    assert_eq!(new_key.status, Status::Applied, "{new_key:#?}");
    let second_cutoff = new_key.cutoff.unwrap();
    assert!(second_cutoff > first_cutoff);
    let records = ledger
        .state(&principal, clock.now())
        .await
        .unwrap()
        .key_records(clock.now());
    let keys_where = |seen_only: bool| {
        let mut keys: Vec<&str> = records
            .iter()
            .filter(|r| r.seen_only == seen_only)
            .map(|r| r.access_key_id.as_str())
            .collect();
        keys.sort();
        keys
    };
    // Each key is covered by the cutoff it was revoked with; the update, which the
    // older cutoff covered only by the record's word, left a seen record beside it.
    assert_eq!(keys_where(false), [NEW_KEY, OLD_KEY], "{records:?}");
    assert_eq!(keys_where(true), [OLD_KEY], "{records:?}");

    // A release drops the records: a cutoff that no longer stands vouches for nothing.
    let mut release = request(HOME, TargetKind::Role, &role);
    release.action = ManualAction::Release;
    release.force = true;
    let released = revoker.handle(&release, "req-4").await;
    assert_eq!(released.status, Status::Released, "{released:#?}");
    assert!(
        ledger
            .state(&principal, clock.now())
            .await
            .unwrap()
            .keys
            .is_empty()
    );
    // The audit trail holds all four, newest first, and pages as asked.
    let history = ledger
        .history(&Account::parse(HOME).unwrap(), "role", &role, 2)
        .await
        .unwrap();
    assert_eq!(
        history
            .iter()
            .map(|e| e.request_id.as_str())
            .collect::<Vec<_>>(),
        ["req-4", "req-3"]
    );
}

/// The DynamoDB calls a proxy saw since `from`, by operation.
fn ledger_calls(proxy: &FaultProxy, from: usize) -> Vec<String> {
    proxy
        .requests_from(from)
        .into_iter()
        .filter(|r| {
            r.headers
                .get("x-amz-target")
                .is_some_and(|t| t.starts_with("DynamoDB_"))
        })
        .filter_map(|r| r.action)
        .collect()
}

/// The ledger's format item of a table first used by this version more than two days
/// ago: no key record of the version before can count any more.
async fn steady_state_format(endpoint: &str, table: &str) {
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(endpoint).await);
    let n = |v: i64| aws_sdk_dynamodb::types::AttributeValue::N(v.to_string());
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned());
    ddb.put_item()
        .table_name(table)
        .item("pk", s(cutoff_aws::dynamodb::FORMAT_PK))
        .item("sk", s("format"))
        .item("first_run", n(chrono::Utc::now().timestamp() - 3 * 86_400))
        .item("legacy_until", n(0))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn after_an_upgrade_the_key_records_of_the_version_before_are_read_once_per_principal() {
    // A table the version before used: its key record of the stolen key sits in a
    // `keys#` item. The first request of this version writes the format item (the
    // window of two days), reads that record once and keeps it on the lock item; the
    // finding's update naming a new key is then written, not skipped.
    let moto = MotoServer::shared();
    let table = unique("cutoff-ledger-upgrade");
    ledger_table(moto.endpoint(), &table).await;
    let proxy = FaultProxy::start(moto.endpoint(), FaultPlan::passthrough());
    let clock = wall_clock();
    let (revoker, ledger) = ledgered_at(proxy.endpoint(), &table, None, &clock).await;
    let iam = iam_client(moto.endpoint()).await;
    let role = unique("upgrade-payments");
    let role_id = create_role(&iam, &role, "/", &[]).await;
    const OLD_KEY: &str = "ASIAUPGRADE000000001";
    const NEW_KEY: &str = "ASIAUPGRADE000000002";
    let first_seen = clock.now() - chrono::Duration::minutes(30);
    // What the version before left: its deny, and the record of the key it revoked
    // with the finding.
    let cutoff_before = Cutoff::at_or_after(clock.now() - chrono::Duration::minutes(10));
    iam.put_role_policy()
        .role_name(&role)
        .policy_name(ROLE_WIDE_POLICY_NAME)
        .policy_document(cutoff_domain::policy::role_wide_document(cutoff_before).to_json())
        .send()
        .await
        .unwrap();
    let principal = format!("{HOME}#role#{}", role.to_ascii_lowercase());
    let record = cutoff_domain::coverage::KeyRecord {
        access_key_id: AccessKeyId::parse(OLD_KEY).unwrap(),
        cutoff: cutoff_before,
        finding: Some(short_digest("gd-upgrade")),
        seen_only: false,
    };
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(moto.endpoint()).await);
    ddb.put_item()
        .table_name(&table)
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("keys#{principal}")),
        )
        .item(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(OLD_KEY.to_owned()),
        )
        .item(
            "record",
            aws_sdk_dynamodb::types::AttributeValue::S(serde_json::to_string(&record).unwrap()),
        )
        .item(
            "expires_at",
            aws_sdk_dynamodb::types::AttributeValue::N(
                (clock.now() + chrono::Duration::days(1))
                    .timestamp()
                    .to_string(),
            ),
        )
        .send()
        .await
        .unwrap();

    let from = proxy.recorded();
    let update = finding_request(
        &role,
        &role_id,
        "gd-upgrade",
        NEW_KEY,
        clock.now(),
        Some(first_seen),
    );
    let out = revoker.handle(&update, "req-upgrade").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert!(out.cutoff.unwrap() > cutoff_before);
    assert_eq!(
        ledger_calls(&proxy, from),
        [
            "UpdateItem",
            "GetItem",
            "PutItem",
            "Query",
            "TransactWriteItems"
        ],
        "the lock, the format item read and written, the old records, the closing"
    );
    let state = ledger.state(&principal, clock.now()).await.unwrap();
    assert!(state.keys_since.is_some());
    let mut keys: Vec<String> = state
        .key_records(clock.now())
        .iter()
        .map(|r| r.access_key_id.to_string())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [OLD_KEY, NEW_KEY],
        "the old record adopted beside the new"
    );
    // The next request reads neither the format item (known to the process) nor the
    // old records (adopted).
    clock.advance(chrono::Duration::seconds(30));
    let from = proxy.recorded();
    let later = finding_request(&role, &role_id, "gd-upgrade", NEW_KEY, clock.now(), None);
    assert_eq!(
        revoker.handle(&later, "req-later").await.status,
        Status::AlreadyRevoked
    );
    assert_eq!(
        ledger_calls(&proxy, from),
        ["UpdateItem", "TransactWriteItems"]
    );
    // Marked incomplete, the records make the first activity untrusted until then.
    let until = clock.now() + chrono::Duration::hours(1);
    ledger.mark_incomplete(&principal, until).await.unwrap();
    ledger
        .mark_incomplete(&principal, until - chrono::Duration::minutes(5))
        .await
        .unwrap();
    let state = ledger.state(&principal, clock.now()).await.unwrap();
    assert_eq!(
        state.keys_incomplete_until,
        Some(until),
        "the later time kept"
    );
    assert!(!state.keys_complete(clock.now()));
}

/// The digest the revoker names a finding by in its key records.
fn short_digest(finding: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(finding.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_revocation_costs_two_ledger_calls_and_a_redelivery_reads_its_earlier_outcome() {
    // The ledger in the real table, every call counted by a proxy in front of moto:
    // taking the lock answers with the principal's marks and key records, and one
    // transaction writes the audit entry, the mark and the record and gives the lock
    // back. No circuit breaker here (it is a third call, for automatic writes only).
    let moto = MotoServer::shared();
    let table = unique("cutoff-ledger-calls");
    ledger_table(moto.endpoint(), &table).await;
    steady_state_format(moto.endpoint(), &table).await;
    let proxy = FaultProxy::start(moto.endpoint(), FaultPlan::passthrough());
    let clock = wall_clock();
    let (revoker, ledger) = ledgered_at(proxy.endpoint(), &table, None, &clock).await;
    let iam = iam_client(moto.endpoint()).await;
    let role = unique("calls-payments");
    let role_id = create_role(&iam, &role, "/", &[]).await;
    let t0 = clock.now();
    const KEY: &str = "ASIACALLS00000000001";
    let finding = finding_request(
        &role,
        &role_id,
        "gd-calls",
        KEY,
        t0,
        Some(t0 - chrono::Duration::minutes(5)),
    );

    let from = proxy.recorded();
    let first = revoker.handle(&finding, "req-1").await;
    assert_eq!(first.status, Status::Applied, "{first:#?}");
    assert_eq!(
        ledger_calls(&proxy, from),
        ["UpdateItem", "GetItem", "TransactWriteItems"],
        "the lock with the state, the table's format item (once per process), the closing"
    );
    let principal = cutoff_aws::dynamodb::principal_key(first.target.as_ref().unwrap());
    let state = ledger.state(&principal, clock.now()).await.unwrap();
    assert_eq!(state.marks.len(), 1, "{state:?}");
    assert_eq!(state.key_records(clock.now()).len(), 1, "{state:?}");

    // The same event again (a redelivery): the mark answers with the earlier outcome,
    // read from the audit trail, and IAM is not called.
    clock.advance(chrono::Duration::seconds(30));
    let iam_before = proxy.count("PutRolePolicy");
    let from = proxy.recorded();
    let again = revoker.handle(&finding, "req-1-redelivered").await;
    assert_eq!(again.status, Status::Applied, "{again:#?}");
    assert!(again.detail.contains("req-1"), "{}", again.detail);
    assert_eq!(again.cutoff, first.cutoff);
    assert_eq!(proxy.count("PutRolePolicy"), iam_before);
    assert_eq!(
        ledger_calls(&proxy, from),
        ["UpdateItem", "GetItem", "TransactWriteItems"]
    );

    // An update of the finding the cutoff covers: nothing written, two calls.
    clock.advance(chrono::Duration::seconds(30));
    let update = finding_request(&role, &role_id, "gd-calls", KEY, clock.now(), None);
    let from = proxy.recorded();
    let covered = revoker.handle(&update, "req-2").await;
    assert_eq!(covered.status, Status::AlreadyRevoked, "{covered:#?}");
    assert_eq!(
        ledger_calls(&proxy, from),
        ["UpdateItem", "TransactWriteItems"]
    );
    let state = ledger.state(&principal, clock.now()).await.unwrap();
    assert_eq!(state.marks.len(), 2, "the update is marked too: {state:?}");
    // Another principal: the lock and the closing, nothing else.
    let other = unique("calls-ledger");
    let other_id = create_role(&iam, &other, "/", &[]).await;
    let from = proxy.recorded();
    let out = revoker
        .handle(
            &finding_request(&other, &other_id, "gd-other", KEY, clock.now(), None),
            "req-3",
        )
        .await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert_eq!(
        ledger_calls(&proxy, from),
        ["UpdateItem", "TransactWriteItems"]
    );
    let history = ledger
        .history(&Account::parse(HOME).unwrap(), "role", &role, 10)
        .await
        .unwrap();
    assert_eq!(
        history
            .iter()
            .map(|e| e.request_id.as_str())
            .collect::<Vec<_>>(),
        ["req-2", "req-1-redelivered", "req-1"]
    );
}

#[tokio::test]
async fn the_lock_item_keeps_its_lease_against_old_and_late_holders() {
    let moto = MotoServer::shared();
    let table = unique("cutoff-ledger-lease");
    ledger_table(moto.endpoint(), &table).await;
    let config = sdk_config(moto.endpoint()).await;
    let ledger = SdkLedger::from_config(&config, &table);
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let t0 = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap();
    let minutes = |m: i64| t0 + chrono::Duration::minutes(m);
    let n = |t: chrono::DateTime<chrono::Utc>| {
        aws_sdk_dynamodb::types::AttributeValue::N(t.timestamp().to_string())
    };
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned());

    // A lease the version before wrote (its end in `expires_at`, no `lease_until`)
    // holds until its end, and not after.
    ddb.put_item()
        .table_name(&table)
        .item("pk", s("lock#old"))
        .item("sk", s("lock"))
        .item("holder", s("old-writer"))
        .item("expires_at", n(minutes(5)))
        .send()
        .await
        .unwrap();
    assert!(
        ledger
            .acquire("old", "new", t0, minutes(2))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        ledger
            .acquire("old", "new", minutes(6), minutes(8))
            .await
            .unwrap()
            .is_some()
    );

    // A lease given back on an item that holds nothing else takes the item with it
    // (a rollback finds no lease there); one with marks keeps them.
    assert!(
        ledger
            .acquire("bare", "w", t0, minutes(1))
            .await
            .unwrap()
            .is_some()
    );
    ledger.release("bare", "w").await.unwrap();
    let bare = ddb
        .get_item()
        .table_name(&table)
        .key("pk", s("lock#bare"))
        .key("sk", s("lock"))
        .send()
        .await
        .unwrap();
    assert!(bare.item().is_none(), "{bare:?}");

    // A holder whose lease ran out and was taken closes nothing: neither its audit
    // entry nor its marks are written by the closing (the caller records the entry).
    let first = ledger
        .acquire("p", "late", t0, minutes(1))
        .await
        .unwrap()
        .unwrap();
    assert!(first.is_empty());
    let taken = ledger
        .acquire("p", "next", minutes(2), minutes(3))
        .await
        .unwrap();
    assert!(taken.is_some(), "the lease ran out");
    let mut state = cutoff_aws::dynamodb::PrincipalState::default();
    state.set_mark("d".into(), "p".into(), "e".into(), minutes(60));
    let entry = cutoff_aws::dynamodb::AuditEntry {
        at: minutes(2),
        request_id: "late-request".into(),
        action: "revoke".into(),
        outcome: Outcome::for_request(
            &request(HOME, TargetKind::Role, "late-role"),
            Status::Applied,
            "",
        ),
    };
    assert!(
        !ledger
            .close("p", "late", &state, std::slice::from_ref(&entry))
            .await
            .unwrap()
    );
    assert!(
        ledger
            .entry(&entry.principal(), &entry.sort_key())
            .await
            .unwrap()
            .is_none()
    );
    assert!(ledger.state("p", minutes(2)).await.unwrap().is_empty());
    // The holder closes: the entry, the mark, the lease given back (the next writer
    // takes it at once and reads the mark).
    assert!(
        ledger
            .close("p", "next", &state, std::slice::from_ref(&entry))
            .await
            .unwrap()
    );
    assert_eq!(
        ledger
            .entry(&entry.principal(), &entry.sort_key())
            .await
            .unwrap(),
        Some(entry.clone())
    );
    let read = ledger
        .acquire("p", "third", minutes(3), minutes(4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, state);
    // Expired marks are not read; an empty state closes by deleting the item.
    let later = ledger
        .acquire("p", "third", minutes(61), minutes(62))
        .await
        .unwrap()
        .unwrap();
    assert!(later.is_empty(), "{later:?}");
    assert!(ledger.close("p", "third", &later, &[]).await.unwrap());
    let item = ddb
        .get_item()
        .table_name(&table)
        .key("pk", s("lock#p"))
        .key("sk", s("lock"))
        .send()
        .await
        .unwrap();
    assert!(item.item().is_none(), "{item:?}");
}

#[tokio::test]
async fn a_flood_of_findings_in_one_account_opens_the_circuit_breaker() {
    // Someone (or a broken detector) makes GuardDuty implicate every role of an account:
    // past the cap, nothing more is written that hour, and the outcome says so loudly.
    let table = unique("cutoff-ledger-breaker");
    let clock = wall_clock();
    let (revoker, _) = with_ledger(&table, Some(2), &clock).await;
    let iam = iam_client(MotoServer::shared().endpoint()).await;
    let mut outcomes = Vec::new();
    for i in 0..3 {
        let role = unique("flood");
        let role_id = create_role(&iam, &role, "/", &[]).await;
        let request = finding_request(
            &role,
            &role_id,
            &format!("flood-{i}"),
            "ASIAFLOOD00000000001",
            clock.now(),
            None,
        );
        outcomes.push((
            role.clone(),
            revoker.handle(&request, &format!("f-{i}")).await,
        ));
    }
    assert_eq!(outcomes[0].1.status, Status::Applied);
    assert_eq!(outcomes[1].1.status, Status::Applied);
    let (third, open) = &outcomes[2];
    assert_eq!(open.status, Status::Failed, "{open:#?}");
    assert_eq!(open.error.as_ref().unwrap().kind, FailureKind::CircuitOpen);
    assert!(
        role_policy(&iam, third, ROLE_WIDE_POLICY_NAME)
            .await
            .is_none(),
        "the third role is not written"
    );
    // A person still can: manual requests are not capped.
    let manual = revoker
        .handle(&request(HOME, TargetKind::Role, third), "by-hand")
        .await;
    assert_eq!(manual.status, Status::Applied, "{manual:#?}");
    // The next hour the breaker closes again.
    clock.advance(chrono::Duration::hours(1));
    let role = unique("flood");
    let role_id = create_role(&iam, &role, "/", &[]).await;
    let later = revoker
        .handle(
            &finding_request(
                &role,
                &role_id,
                "flood-4",
                "ASIAFLOOD00000000001",
                clock.now(),
                None,
            ),
            "f-4",
        )
        .await;
    assert_eq!(later.status, Status::Applied, "{later:#?}");
}
