//! The workflow against in-memory fakes. Time is fixed; tokio's clock is paused so
//! backoff and verification waits take no real time.

use super::*;
use chrono::{DateTime, TimeZone, Utc};
use cutoff_aws::iam::fake::FakeIam;
use cutoff_aws::sts::fake::FakeAccess;
use cutoff_aws::{ErrorKind, IamPrincipal};
use cutoff_domain::clock::FixedClock;
use cutoff_domain::outcome::Trigger;
use cutoff_domain::policy::{self, PolicyDocument, ROLE_WIDE_POLICY_NAME, SESSION_POLICY_NAME};
use cutoff_domain::principal::{AccessKeyId, Account, PrincipalName, SessionName};
use cutoff_domain::triage::Source;

const HOME: &str = "999988887777";
const MEMBER: &str = "111122223333";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap() + chrono::Duration::milliseconds(400)
}

fn revoker(access: FakeAccess) -> Revoker<FakeAccess, FixedClock> {
    Revoker::new(access, FixedClock::at(t0()), RevokeConfig::default())
}

fn setup() -> (FakeAccess, FakeIam) {
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    member.add_role("payments-api", "/", &[("cutoff:owner", "payments")]);
    (access, member)
}

fn request(kind: TargetKind, name: &str) -> RevocationRequest {
    RevocationRequest {
        action: ManualAction::Revoke,
        target: Target::new(
            kind,
            Account::parse(MEMBER).unwrap(),
            PrincipalName::parse(name).unwrap(),
        ),
        scope: Scope::Role,
        trigger: Trigger {
            source: Source::GuardDuty,
            finding_id: Some("f1".into()),
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

fn role(name: &str) -> IamPrincipal {
    IamPrincipal::role(PrincipalName::parse(name).unwrap())
}

fn stored_cutoff(fake: &FakeIam, principal: &IamPrincipal) -> Option<Cutoff> {
    fake.inline(principal, ROLE_WIDE_POLICY_NAME)
        .and_then(|d| PolicyDocument::parse(&d).ok())
        .and_then(|d| d.role_wide_cutoff())
}

fn cutoff(s: &str) -> Cutoff {
    Cutoff::parse(s).unwrap()
}

#[tokio::test(start_paused = true)]
async fn revoking_a_role_writes_the_console_deny_with_a_rounded_up_cutoff_and_verifies_it() {
    let (access, member) = setup();
    let out = revoker(access.clone())
        .handle(&request(TargetKind::Role, "payments-api"), "req-1")
        .await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    // 12:00:00.400 + 1 s margin, rounded up to a whole second.
    assert_eq!(out.cutoff, Some(cutoff("2026-11-23T12:00:02Z")));
    assert_eq!(out.previous_cutoff, None);
    assert_eq!(out.policy.as_deref(), Some(ROLE_WIDE_POLICY_NAME));
    assert_eq!(out.owner.team.as_deref(), Some("payments"));
    assert_eq!(out.propagation.as_deref(), Some("eventual"));
    assert!(out.error.is_none());
    let stored = member
        .inline(&role("payments-api"), ROLE_WIDE_POLICY_NAME)
        .unwrap();
    assert_eq!(
        stored,
        policy::role_wide_document(cutoff("2026-11-23T12:00:02Z")).to_json()
    );
    assert_eq!(
        member.calls(),
        ["GetRole", "GetRolePolicy", "PutRolePolicy", "GetRolePolicy"]
    );
    assert_eq!(out.api_calls, 5, "AssumeRole and four IAM calls");
}

#[tokio::test(start_paused = true)]
async fn a_repeat_revocation_takes_four_calls_and_raises_the_cutoff() {
    let (access, member) = setup();
    let r = revoker(access.clone());
    r.handle(&request(TargetKind::Role, "payments-api"), "req-1")
        .await;
    r.clock.advance(chrono::Duration::minutes(10));
    member.state().calls.clear();
    let out = r
        .handle(&request(TargetKind::Role, "payments-api"), "req-2")
        .await;
    assert_eq!(out.status, Status::Applied);
    assert_eq!(out.previous_cutoff, Some(cutoff("2026-11-23T12:00:02Z")));
    assert_eq!(out.cutoff, Some(cutoff("2026-11-23T12:10:02Z")));
    assert_eq!(
        member.calls(),
        ["GetRole", "GetRolePolicy", "PutRolePolicy", "GetRolePolicy"]
    );
}

#[tokio::test(start_paused = true)]
async fn cross_account_targets_go_through_the_member_role_and_home_targets_do_not() {
    let (access, _) = setup();
    let r = revoker(access.clone());
    let out = r
        .handle(&request(TargetKind::Role, "payments-api"), "req-1")
        .await;
    assert_eq!(out.status, Status::Applied);
    assert_eq!(*access.assumed.lock().unwrap(), [MEMBER.to_owned()]);
    assert_eq!(out.api_calls, 5, "AssumeRole counts");

    access.account(HOME).add_role("local-app", "/", &[]);
    let mut local = request(TargetKind::Role, "local-app");
    local.target.account = Account::parse(HOME).unwrap();
    assert_eq!(r.handle(&local, "req-2").await.status, Status::Applied);
    assert_eq!(
        access.assumed.lock().unwrap().len(),
        1,
        "no AssumeRole for the home account"
    );
}

#[tokio::test(start_paused = true)]
async fn a_later_existing_cutoff_is_kept_and_nothing_is_written() {
    let (access, member) = setup();
    let later = policy::role_wide_document(cutoff("2026-11-23T13:00:00Z")).to_json();
    member.set_inline(&role("payments-api"), ROLE_WIDE_POLICY_NAME, &later);
    let out = revoker(access)
        .handle(&request(TargetKind::Role, "payments-api"), "r")
        .await;
    assert_eq!(out.status, Status::AlreadyRevoked);
    assert_eq!(out.cutoff, Some(cutoff("2026-11-23T13:00:00Z")));
    assert!(member.writes().is_empty());
    assert_eq!(
        member
            .inline(&role("payments-api"), ROLE_WIDE_POLICY_NAME)
            .unwrap(),
        later
    );
}

#[tokio::test(start_paused = true)]
async fn a_cutoff_after_the_last_activity_already_covers_the_finding() {
    let (access, member) = setup();
    let earlier = policy::role_wide_document(cutoff("2026-11-23T11:50:00Z")).to_json();
    member.set_inline(&role("payments-api"), ROLE_WIDE_POLICY_NAME, &earlier);
    let mut req = request(TargetKind::Role, "payments-api");
    req.first_activity = Some(Utc.with_ymd_and_hms(2026, 11, 23, 11, 45, 0).unwrap());
    let out = revoker(access.clone()).handle(&req, "r").await;
    assert_eq!(out.status, Status::AlreadyRevoked, "{}", out.detail);
    assert!(member.writes().is_empty());
    // Activity after the existing cutoff needs a new one.
    req.first_activity = Some(Utc.with_ymd_and_hms(2026, 11, 23, 11, 55, 0).unwrap());
    let out = revoker(access).handle(&req, "r").await;
    assert_eq!(out.status, Status::Applied);
    assert_eq!(out.previous_cutoff, Some(cutoff("2026-11-23T11:50:00Z")));
}

#[tokio::test(start_paused = true)]
async fn console_written_policies_and_foreign_statements_are_merged_not_clobbered() {
    let (access, member) = setup();
    let console = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["*"],"Resource":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-23T09:00:00.000Z"}}},{"Sid":"KeepMe","Effect":"Deny","Action":"s3:DeleteBucket","Resource":"*"}]}"#;
    member.set_inline(&role("payments-api"), ROLE_WIDE_POLICY_NAME, console);
    let out = revoker(access)
        .handle(&request(TargetKind::Role, "payments-api"), "r")
        .await;
    assert_eq!(out.status, Status::Applied);
    assert_eq!(out.previous_cutoff, Some(cutoff("2026-11-23T09:00:00Z")));
    let stored = PolicyDocument::parse(
        &member
            .inline(&role("payments-api"), ROLE_WIDE_POLICY_NAME)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        stored.role_wide_cutoff(),
        Some(cutoff("2026-11-23T12:00:02Z"))
    );
    assert_eq!(
        stored.statements().len(),
        2,
        "one revocation statement and the foreign one"
    );
    let foreign = stored.foreign_statements();
    assert_eq!(
        serde_json::to_string(foreign[0]).unwrap(),
        r#"{"Sid":"KeepMe","Effect":"Deny","Action":"s3:DeleteBucket","Resource":"*"}"#
    );
}

fn big_policy(chars: usize) -> String {
    let padding = "x".repeat(chars.saturating_sub(80));
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"{padding}","Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}]}}"#
    )
}

#[tokio::test(start_paused = true)]
async fn a_nearly_full_inline_budget_falls_back_to_a_managed_policy_and_says_so() {
    let (access, member) = setup();
    member.set_inline(&role("payments-api"), "Existing", &big_policy(10_200));
    let out = revoker(access)
        .handle(&request(TargetKind::Role, "payments-api"), "r")
        .await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    let arn = format!("arn:aws:iam::{MEMBER}:policy/cutoff/cutoff-revoke-role-payments-api");
    assert_eq!(out.policy.as_deref(), Some(arn.as_str()));
    assert!(out.detail.contains("does not fit inline"), "{}", out.detail);
    assert!(
        out.detail.contains("10240"),
        "names the budget: {}",
        out.detail
    );
    assert!(
        member
            .inline(&role("payments-api"), ROLE_WIDE_POLICY_NAME)
            .is_none()
    );
    let state = member.state();
    assert!(state.roles["payments-api"].attached.contains(&arn));
    let doc = PolicyDocument::parse(state.managed[&arn].last().unwrap()).unwrap();
    assert_eq!(doc.role_wide_cutoff(), Some(cutoff("2026-11-23T12:00:02Z")));
}

#[tokio::test(start_paused = true)]
async fn an_inline_quota_error_from_iam_also_falls_back() {
    let (access, member) = setup();
    member.fail("PutRolePolicy", &[ErrorKind::Quota]);
    let out = revoker(access)
        .handle(&request(TargetKind::Role, "payments-api"), "r")
        .await;
    assert_eq!(out.status, Status::Applied);
    assert!(
        out.policy
            .unwrap()
            .contains(":policy/cutoff/cutoff-revoke-role-payments-api")
    );
    assert!(out.detail.contains("IAM refused"), "{}", out.detail);
}

#[tokio::test(start_paused = true)]
async fn no_room_anywhere_fails_with_a_quota_error_that_says_why() {
    let (access, member) = setup();
    member.set_inline(&role("payments-api"), "Existing", &big_policy(10_200));
    {
        let mut state = member.state();
        let attached: Vec<String> = (0..10)
            .map(|i| format!("arn:aws:iam::aws:policy/P{i}"))
            .collect();
        state.roles.get_mut("payments-api").unwrap().attached = attached;
    }
    let out = revoker(access)
        .handle(&request(TargetKind::Role, "payments-api"), "r")
        .await;
    assert_eq!(out.status, Status::Failed);
    let error = out.error.unwrap();
    assert_eq!(error.kind, FailureKind::Quota);
    assert!(
        error.message.contains("10 of 10 managed policies"),
        "{}",
        error.message
    );
}

#[tokio::test(start_paused = true)]
async fn alert_only_and_protected_targets_are_never_written() {
    let (access, member) = setup();
    member.add_role("cutoff-member", "/", &[]);
    member.add_role("tagged", "/", &[("cutoff:protected", "true")]);
    member.add_role(
        "AWSServiceRoleForECS",
        "/aws-service-role/ecs.amazonaws.com/",
        &[],
    );
    member.add_role(
        "AWSReservedSSO_Admin_0123456789abcdef",
        "/aws-reserved/sso.amazonaws.com/eu-west-1/",
        &[],
    );
    member.add_role("slr-by-path", "/aws-service-role/ecs.amazonaws.com/", &[]);
    member.add_role(
        "sso-by-path",
        "/aws-reserved/sso.amazonaws.com/eu-west-1/",
        &[],
    );
    let r = revoker(access.clone());
    for (kind, name, status) in [
        (TargetKind::Root, "root", Status::Unmodifiable),
        (
            TargetKind::ServiceLinkedRole,
            "AWSServiceRoleForECS",
            Status::Unmodifiable,
        ),
        (
            TargetKind::IdentityCenterRole,
            "AWSReservedSSO_Admin_0123456789abcdef",
            Status::Unmodifiable,
        ),
        (TargetKind::FederatedUser, "bob", Status::Unmodifiable),
        (TargetKind::Role, "cutoff-member", Status::Protected),
        (TargetKind::Role, "tagged", Status::Protected),
        (TargetKind::Role, "slr-by-path", Status::Unmodifiable),
        (TargetKind::Role, "sso-by-path", Status::Unmodifiable),
    ] {
        let r = Revoker::new(
            access.clone(),
            FixedClock::at(t0()),
            RevokeConfig {
                honour_protected_tag: true,
                ..RevokeConfig::default()
            },
        );
        let out = r.handle(&request(kind, name), "r").await;
        assert_eq!(out.status, status, "{name}: {}", out.detail);
        assert!(!out.detail.is_empty());
    }
    assert!(member.writes().is_empty(), "{:?}", member.writes());
    let sso = r
        .handle(&request(TargetKind::Role, "sso-by-path"), "r")
        .await;
    assert!(sso.detail.contains("permission set"), "{}", sso.detail);
}

#[tokio::test(start_paused = true)]
async fn protected_names_are_refused_before_any_call() {
    let (access, member) = setup();
    let out = revoker(access.clone())
        .handle(&request(TargetKind::Role, "cutoff-member"), "r")
        .await;
    assert_eq!(out.status, Status::Protected);
    assert_eq!(out.api_calls, 0);
    assert!(member.calls().is_empty() && access.assumed.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_user_key_ends_inactive_and_still_exists_and_the_user_gets_the_deny() {
    let (access, member) = setup();
    member
        .add_user("ci-deployer", &[])
        .add_access_key("ci-deployer", "AKIAZXCVBNMASDFGHJKL");
    let mut req = request(TargetKind::User, "ci-deployer");
    req.target.access_key_id = Some(AccessKeyId::parse("AKIAZXCVBNMASDFGHJKL").unwrap());
    let out = revoker(access).handle(&req, "r").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert_eq!(
        member
            .key_status("ci-deployer", "AKIAZXCVBNMASDFGHJKL")
            .as_deref(),
        Some("Inactive")
    );
    let user = IamPrincipal::user(PrincipalName::parse("ci-deployer").unwrap());
    assert!(member.inline(&user, ROLE_WIDE_POLICY_NAME).is_some());
    // The deny first, then the key: a key that cannot be set Inactive must not hold
    // up the deny.
    assert!(
        out.actions[0].contains(ROLE_WIDE_POLICY_NAME),
        "{:?}",
        out.actions
    );
    assert!(out.actions[1].contains("Inactive"), "{:?}", out.actions);
    assert!(!member.calls().contains(&"DeleteAccessKey"));
}

#[tokio::test(start_paused = true)]
async fn a_temporary_user_key_is_not_deactivated_and_the_outcome_says_what_to_do() {
    let (access, member) = setup();
    member.add_user("ci-deployer", &[]);
    let mut req = request(TargetKind::User, "ci-deployer");
    req.target.access_key_id = Some(AccessKeyId::parse("ASIAZXCVBNMASDFGHJKL").unwrap());
    let out = revoker(access).handle(&req, "r").await;
    assert_eq!(out.status, Status::Applied);
    assert!(!member.calls().contains(&"UpdateAccessKey"));
    assert!(out.detail.contains("long-term key"), "{}", out.detail);
}

#[tokio::test(start_paused = true)]
async fn user_policies_use_the_user_budget() {
    let (access, member) = setup();
    member.add_user("ci-deployer", &[]);
    let user = IamPrincipal::user(PrincipalName::parse("ci-deployer").unwrap());
    member.set_inline(&user, "Existing", &big_policy(1_950));
    let out = revoker(access)
        .handle(&request(TargetKind::User, "ci-deployer"), "r")
        .await;
    assert_eq!(out.status, Status::Applied);
    assert!(
        out.policy
            .unwrap()
            .contains("cutoff-revoke-user-ci-deployer")
    );
    assert!(member.state().users["ci-deployer"].attached.len() == 1);
}

#[tokio::test(start_paused = true)]
async fn dry_run_reports_everything_and_writes_nothing() {
    let (access, member) = setup();
    let mut req = request(TargetKind::Role, "payments-api");
    req.dry_run = true;
    let out = revoker(access).handle(&req, "r").await;
    assert_eq!(out.status, Status::DryRun);
    assert_eq!(out.cutoff, Some(cutoff("2026-11-23T12:00:02Z")));
    assert_eq!(
        out.actions,
        [format!(
            "put inline policy {ROLE_WIDE_POLICY_NAME} on role `payments-api`"
        )]
    );
    assert!(out.propagation.is_none());
    assert!(member.writes().is_empty(), "{:?}", member.writes());
}

#[tokio::test(start_paused = true)]
async fn throttling_is_retried_and_counted() {
    let (access, member) = setup();
    member.fail("GetRole", &[ErrorKind::Throttled, ErrorKind::Transient]);
    member.fail("PutRolePolicy", &[ErrorKind::Throttled]);
    let out = revoker(access)
        .handle(&request(TargetKind::Role, "payments-api"), "r")
        .await;
    assert_eq!(out.status, Status::Applied);
    assert_eq!(
        out.api_calls,
        1 + 4 + 3,
        "AssumeRole + four calls + three retried attempts"
    );
}

#[tokio::test(start_paused = true)]
async fn fatal_errors_end_in_a_failed_outcome_with_the_error_kind() {
    for (action, kind, want) in [
        (
            "PutRolePolicy",
            ErrorKind::AccessDenied,
            FailureKind::AccessDenied,
        ),
        ("GetRole", ErrorKind::NotFound, FailureKind::NotFound),
        (
            "GetRolePolicy",
            ErrorKind::Malformed,
            FailureKind::Malformed,
        ),
    ] {
        let (access, member) = setup();
        member.fail(action, &[kind]);
        let out = revoker(access)
            .handle(&request(TargetKind::Role, "payments-api"), "r")
            .await;
        assert_eq!(out.status, Status::Failed, "{action}");
        assert_eq!(out.error.as_ref().unwrap().kind, want);
        assert!(out.detail.starts_with("failed:"));
        assert!(out.propagation.is_none());
    }
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_fail_as_throttled() {
    let (access, member) = setup();
    member.fail("GetRole", &[ErrorKind::Throttled; 10]);
    let out = revoker(access)
        .handle(&request(TargetKind::Role, "payments-api"), "r")
        .await;
    assert_eq!(out.error.unwrap().kind, FailureKind::Throttled);
}

#[tokio::test(start_paused = true)]
async fn a_member_role_that_cannot_be_assumed_fails_as_access_denied() {
    let (access, member) = setup();
    access
        .assume_failures
        .lock()
        .unwrap()
        .push_back(ErrorKind::AccessDenied);
    let out = revoker(access)
        .handle(&request(TargetKind::Role, "payments-api"), "r")
        .await;
    assert_eq!(out.status, Status::Failed);
    assert_eq!(out.error.unwrap().kind, FailureKind::AccessDenied);
    assert!(member.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_existing_policy_is_never_overwritten() {
    let (access, member) = setup();
    member.set_inline(
        &role("payments-api"),
        ROLE_WIDE_POLICY_NAME,
        r#"{"Statement":[],"Statement":[]}"#,
    );
    let out = revoker(access)
        .handle(&request(TargetKind::Role, "payments-api"), "r")
        .await;
    assert_eq!(out.error.unwrap().kind, FailureKind::UnreadablePolicy);
    assert!(member.writes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_stale_read_back_is_retried_and_a_persistent_one_fails_unverified() {
    let (access, member) = setup();
    // The first read is the pre-write read (no policy); the next two read-backs are stale.
    member.stale_reads(ROLE_WIDE_POLICY_NAME, &[None, None, None]);
    let out = revoker(access.clone())
        .handle(&request(TargetKind::Role, "payments-api"), "r")
        .await;
    assert_eq!(out.status, Status::Applied, "{}", out.detail);

    let (access, member) = setup();
    member.stale_reads(ROLE_WIDE_POLICY_NAME, &[None; 6]);
    let out = revoker(access)
        .handle(&request(TargetKind::Role, "payments-api"), "r")
        .await;
    assert_eq!(out.status, Status::Failed);
    assert_eq!(out.error.unwrap().kind, FailureKind::Unverified);
}

fn session_request(session: &str) -> RevocationRequest {
    let mut req = request(TargetKind::Role, "payments-api");
    req.scope = Scope::Session;
    req.target.session = Some(SessionName::parse(session).unwrap());
    req
}

#[tokio::test(start_paused = true)]
async fn session_scope_denies_one_session_keyed_by_role_id() {
    let (access, member) = setup();
    let r = revoker(access);
    let out = r.handle(&session_request("i-0aaaaaaaaaaaaaaa1"), "r").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert_eq!(out.scope, Scope::Session);
    assert_eq!(out.policy.as_deref(), Some(SESSION_POLICY_NAME));
    r.handle(&session_request("i-0bbbbbbbbbbbbbbb2"), "r").await;
    let doc = PolicyDocument::parse(
        &member
            .inline(&role("payments-api"), SESSION_POLICY_NAME)
            .unwrap(),
    )
    .unwrap();
    let role_id = member.state().roles["payments-api"].unique_id.clone();
    let userids: Vec<String> = doc
        .session_cutoffs()
        .into_iter()
        .map(|(sp, _)| sp.to_string())
        .collect();
    assert_eq!(
        userids,
        [
            format!("{role_id}:i-0aaaaaaaaaaaaaaa1"),
            format!("{role_id}:i-0bbbbbbbbbbbbbbb2")
        ]
    );
    assert!(
        member
            .inline(&role("payments-api"), ROLE_WIDE_POLICY_NAME)
            .is_none(),
        "no role-wide deny"
    );
}

#[tokio::test(start_paused = true)]
async fn session_scope_escalates_to_role_wide_when_the_budget_runs_out() {
    let (access, member) = setup();
    member.set_inline(&role("payments-api"), "Existing", &big_policy(10_150));
    let out = revoker(access)
        .handle(&session_request("i-0aaaaaaaaaaaaaaa1"), "r")
        .await;
    assert_eq!(out.scope, Scope::Role, "{out:#?}");
    assert!(
        out.detail.contains("escalated to a role-wide deny"),
        "{}",
        out.detail
    );
}

#[tokio::test(start_paused = true)]
async fn instance_profiles_resolve_to_their_role() {
    let (access, member) = setup();
    member.add_instance_profile("web-tier", &["payments-api"]);
    let out = revoker(access)
        .handle(&request(TargetKind::InstanceProfile, "web-tier"), "r")
        .await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert_eq!(out.target.unwrap().name.as_str(), "payments-api");
    assert!(
        out.detail
            .contains("instance profile web-tier resolves to role payments-api")
    );
    assert!(stored_cutoff(&member, &role("payments-api")).is_some());
}

fn release_request() -> RevocationRequest {
    let mut req = request(TargetKind::Role, "payments-api");
    req.action = ManualAction::Release;
    req
}

#[tokio::test(start_paused = true)]
async fn release_refuses_a_young_cutoff_unless_forced_and_keeps_foreign_statements() {
    let (access, member) = setup();
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Sid":"RevokeOlderSessions","Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-23T10:00:00Z"}}},{"Sid":"KeepMe","Effect":"Deny","Action":"s3:DeleteBucket","Resource":"*"}]}"#;
    member.set_inline(&role("payments-api"), ROLE_WIDE_POLICY_NAME, doc);
    let r = revoker(access);
    let out = r.handle(&release_request(), "r").await;
    assert_eq!(out.status, Status::Failed);
    assert_eq!(out.error.as_ref().unwrap().kind, FailureKind::Refused);
    assert!(
        out.detail.contains("2h old") && out.detail.contains("12 h"),
        "{}",
        out.detail
    );
    assert!(member.writes().is_empty());

    let mut forced = release_request();
    forced.force = true;
    let out = r.handle(&forced, "r").await;
    assert_eq!(out.status, Status::Released, "{out:#?}");
    assert_eq!(out.previous_cutoff, Some(cutoff("2026-11-23T10:00:00Z")));
    let left = PolicyDocument::parse(
        &member
            .inline(&role("payments-api"), ROLE_WIDE_POLICY_NAME)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(left.role_wide_cutoff(), None);
    assert_eq!(left.foreign_statements().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn release_of_an_old_cutoff_deletes_the_policy_without_force() {
    let (access, member) = setup();
    let old = policy::role_wide_document(cutoff("2026-11-22T10:00:00Z")).to_json();
    member.set_inline(&role("payments-api"), ROLE_WIDE_POLICY_NAME, &old);
    let out = revoker(access).handle(&release_request(), "r").await;
    assert_eq!(out.status, Status::Released, "{}", out.detail);
    assert!(
        member
            .inline(&role("payments-api"), ROLE_WIDE_POLICY_NAME)
            .is_none()
    );
    assert!(member.calls().contains(&"DeleteRolePolicy"));
}

#[tokio::test(start_paused = true)]
async fn user_cutoffs_stay_protected_for_thirty_six_hours() {
    let (access, member) = setup();
    member.add_user("ci-deployer", &[]);
    let user = IamPrincipal::user(PrincipalName::parse("ci-deployer").unwrap());
    let doc = policy::role_wide_document(cutoff("2026-11-22T10:00:00Z")).to_json();
    member.set_inline(&user, ROLE_WIDE_POLICY_NAME, &doc);
    let mut req = request(TargetKind::User, "ci-deployer");
    req.action = ManualAction::Release;
    let out = revoker(access).handle(&req, "r").await;
    assert_eq!(out.error.unwrap().kind, FailureKind::Refused, "26 h < 36 h");
}

#[tokio::test(start_paused = true)]
async fn release_removes_the_managed_fallback_too() {
    let (access, member) = setup();
    member.set_inline(&role("payments-api"), "Existing", &big_policy(10_200));
    let r = revoker(access);
    r.handle(&request(TargetKind::Role, "payments-api"), "r")
        .await;
    r.clock.advance(chrono::Duration::hours(13));
    let out = r.handle(&release_request(), "r").await;
    assert_eq!(out.status, Status::Released, "{out:#?}");
    let state = member.state();
    assert!(state.managed.is_empty());
    assert!(state.roles["payments-api"].attached.is_empty());
}

#[tokio::test(start_paused = true)]
async fn status_reports_cutoffs_their_age_and_whether_they_still_matter() {
    let (access, member) = setup();
    let r = revoker(access);
    r.handle(&request(TargetKind::Role, "payments-api"), "r")
        .await;
    r.handle(&session_request("i-0aaaaaaaaaaaaaaa1"), "r").await;
    r.clock.advance(chrono::Duration::hours(2));
    let mut req = request(TargetKind::Role, "payments-api");
    req.action = ManualAction::Status;
    let report = r.status(&req, "r").await;
    assert!(report.error.is_none(), "{report:#?}");
    let role_wide = report.role_wide.unwrap();
    assert_eq!(role_wide.cutoff, cutoff("2026-11-23T12:00:02Z"));
    assert!(role_wide.still_effective);
    assert_eq!(role_wide.age_seconds, 2 * 3600 - 2);
    assert_eq!(report.sessions.len(), 1);
    assert_eq!(report.owner.team.as_deref(), Some("payments"));
    let writes_before = member.writes().len();
    r.clock.advance(chrono::Duration::hours(11));
    let report = r.status(&req, "r").await;
    assert!(!report.role_wide.unwrap().still_effective);
    assert_eq!(member.writes().len(), writes_before, "status never writes");
}

#[tokio::test(start_paused = true)]
async fn an_invalid_notify_tag_is_ignored_and_reported() {
    let (access, member) = setup();
    member.add_role(
        "tagged-app",
        "/",
        &[("cutoff:owner", "web"), ("cutoff:notify", "not-an-arn")],
    );
    let out = revoker(access)
        .handle(&request(TargetKind::Role, "tagged-app"), "r")
        .await;
    assert_eq!(out.owner.topic, None);
    assert!(
        out.detail.contains("not an SNS topic ARN"),
        "{}",
        out.detail
    );
}

#[tokio::test(start_paused = true)]
async fn the_protected_tag_is_ignored_unless_the_deployment_trusts_it() {
    // The tag is set in the member account: an attacker holding the role could tag it.
    let (access, member) = setup();
    member.add_role("self-tagged", "/", &[("cutoff:protected", "true")]);
    let out = revoker(access)
        .handle(&request(TargetKind::Role, "self-tagged"), "r")
        .await;
    assert_eq!(out.status, Status::Applied, "{}", out.detail);
}

#[tokio::test(start_paused = true)]
async fn protection_ignores_the_case_of_the_name_as_iam_does() {
    let (access, member) = setup();
    member.add_role("Cutoff-Member", "/", &[]);
    let out = revoker(access)
        .handle(&request(TargetKind::Role, "Cutoff-Member"), "r")
        .await;
    assert_eq!(out.status, Status::Protected);
    assert!(member.writes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_detached_fallback_with_a_later_cutoff_is_attached_not_trusted() {
    let (access, member) = setup();
    member.set_inline(&role("payments-api"), "Existing", &big_policy(10_200));
    let arn = format!("arn:aws:iam::{MEMBER}:policy/cutoff/cutoff-revoke-role-payments-api");
    let later = policy::role_wide_document(cutoff("2026-11-23T13:00:00Z")).to_json();
    member.state().managed.insert(arn.clone(), vec![later]);
    let out = revoker(access)
        .handle(&request(TargetKind::Role, "payments-api"), "r")
        .await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert!(member.state().roles["payments-api"].attached.contains(&arn));
    assert!(
        !member.calls().contains(&"CreatePolicyVersion"),
        "the document was already right"
    );
}

// --- ledger: lock, idempotency, audit ------------------------------------------------

fn finding_request(finding: &str) -> RevocationRequest {
    let mut r = request(TargetKind::Role, "payments-api");
    r.trigger.finding_id = Some(finding.to_owned());
    r
}

fn ledgered(
    access: FakeAccess,
) -> (
    Revoker<FakeAccess, FixedClock, cutoff_aws::dynamodb::fake::FakeLedger>,
    cutoff_aws::dynamodb::fake::FakeLedger,
) {
    let ledger = cutoff_aws::dynamodb::fake::FakeLedger::default();
    (revoker(access).with_ledger(ledger.clone()), ledger)
}

#[tokio::test(start_paused = true)]
async fn a_finding_redelivered_within_the_window_is_applied_once() {
    let (access, member) = setup();
    let (r, ledger) = ledgered(access);
    let first = r.handle(&finding_request("gd-7"), "msg-1").await;
    assert_eq!(first.status, Status::Applied);
    let writes = member.writes().len();
    r.clock.advance(chrono::Duration::minutes(10));
    let again = r
        .handle(&finding_request("gd-7"), "msg-1-redelivered")
        .await;
    // The earlier attempt's result: if its outcome was never published (the reason
    // for a redelivery), the owner still hears `applied`.
    assert_eq!(again.status, Status::Applied, "{again:#?}");
    assert_eq!(again.cutoff, first.cutoff);
    assert!(
        again.detail.contains("not written again"),
        "{}",
        again.detail
    );
    assert!(again.detail.contains("msg-1"), "{}", again.detail);
    assert_eq!(again.api_calls, 0);
    assert_eq!(
        member.writes().len(),
        writes,
        "no IAM write the second time"
    );
    // Another finding about the same role is a new request.
    let other = r.handle(&finding_request("gd-8"), "msg-2").await;
    assert_eq!(other.status, Status::Applied);
    // Past the window the same finding applies again (a new cutoff, later).
    r.clock.advance(chrono::Duration::hours(2));
    let late = r.handle(&finding_request("gd-7"), "msg-3").await;
    assert_eq!(late.status, Status::Applied);
    assert!(late.cutoff > first.cutoff);
    // Every request is audited, with who asked and the cutoff before and after.
    let entries = ledger.state().entries.clone();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[1].request_id, "msg-1-redelivered");
    assert_eq!(entries[3].outcome.previous_cutoff, other.cutoff);
    // Every lease taken was given back.
    assert!(ledger.state().locks.is_empty());
    assert_eq!(ledger.state().acquired.len(), 4);
}

/// The leases taken: (principal, the request that took it), each holder's nonce
/// left out.
fn acquired_by(ledger: &cutoff_aws::dynamodb::fake::FakeLedger) -> Vec<(String, String)> {
    ledger
        .state()
        .acquired
        .iter()
        .map(|(principal, holder)| {
            let (request, nonce) = holder.rsplit_once('#').expect("a holder has a nonce");
            assert_eq!(nonce.len(), 16, "{holder}");
            (principal.clone(), request.to_owned())
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_redelivered_message_does_not_share_the_lease_its_first_delivery_still_holds() {
    // msg-9's first invocation holds the lease and is still writing when SQS hands the
    // message out again (its visibility timeout passed): the second must wait, not
    // renew the first one's lease as if it were its own.
    let (access, member) = setup();
    let (r, ledger) = ledgered(access);
    let first = guard::lease_holder("msg-9");
    assert!(first.starts_with("msg-9#"), "{first}");
    assert_ne!(first, guard::lease_holder("msg-9"), "each guard its own");
    for held_as in [first, "msg-9".to_owned()] {
        ledger.state().locks.insert(
            format!("{MEMBER}#role#payments-api"),
            (held_as.clone(), t0() + chrono::Duration::minutes(5)),
        );
        let out = r.handle(&finding_request("gd-9"), "msg-9").await;
        assert_eq!(out.status, Status::Failed, "held as {held_as}: {out:#?}");
        assert_eq!(out.error.as_ref().unwrap().kind, FailureKind::Busy);
        assert!(member.writes().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn a_lock_held_by_another_writer_fails_the_request_for_a_retry_and_writes_nothing() {
    let (access, member) = setup();
    let (r, ledger) = ledgered(access);
    ledger.state().locks.insert(
        format!("{MEMBER}#role#payments-api"),
        (
            "someone-else".to_owned(),
            t0() + chrono::Duration::minutes(5),
        ),
    );
    let out = r.handle(&finding_request("gd-9"), "msg-9").await;
    assert_eq!(out.status, Status::Failed);
    assert_eq!(out.error.as_ref().unwrap().kind, FailureKind::Busy);
    assert!(member.writes().is_empty());
    assert_eq!(
        ledger.state().entries.len(),
        1,
        "the refusal is audited too"
    );
}

/// The sweeper and a revocation of the role by name lock `<account>#role#<name>`; a
/// revocation or release through an instance profile must take that same lock, not
/// one on the profile's name, or the two read-modify-writes could interleave.
#[tokio::test(start_paused = true)]
async fn a_revocation_through_an_instance_profile_locks_the_role_it_writes() {
    let unledgered = {
        let (access, member) = setup();
        member.add_instance_profile("web-tier", &["payments-api"]);
        revoker(access)
            .handle(&request(TargetKind::InstanceProfile, "web-tier"), "r0")
            .await
    };
    let (access, member) = setup();
    member.add_instance_profile("web-tier", &["payments-api"]);
    let (r, ledger) = ledgered(access);
    let out = r
        .handle(&request(TargetKind::InstanceProfile, "web-tier"), "r1")
        .await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert_eq!(out.target.as_ref().unwrap().name.as_str(), "payments-api");
    let mut release = request(TargetKind::InstanceProfile, "web-tier");
    release.action = ManualAction::Release;
    release.force = true;
    r.clock.advance(chrono::Duration::seconds(5));
    let released = r.handle(&release, "r2").await;
    assert_eq!(released.status, Status::Released, "{released:#?}");
    let role_key = format!("{MEMBER}#role#payments-api");
    assert_eq!(
        acquired_by(&ledger),
        vec![
            (role_key.clone(), "r1".to_owned()),
            (role_key, "r2".to_owned())
        ]
    );
    assert!(ledger.state().locks.is_empty(), "both leases given back");
    // Resolving the profile before the lock costs no second IAM read.
    assert_eq!(out.api_calls, unledgered.api_calls);
}

#[tokio::test(start_paused = true)]
async fn an_instance_profile_revocation_waits_for_a_sweep_holding_its_role() {
    let (access, member) = setup();
    member.add_instance_profile("web-tier", &["payments-api"]);
    let (r, ledger) = ledgered(access);
    ledger.state().locks.insert(
        format!("{MEMBER}#role#payments-api"),
        (
            "sweep-run-1".to_owned(),
            t0() + chrono::Duration::minutes(5),
        ),
    );
    let out = r
        .handle(&request(TargetKind::InstanceProfile, "web-tier"), "r1")
        .await;
    assert_eq!(out.status, Status::Failed, "{out:#?}");
    assert_eq!(out.error.as_ref().unwrap().kind, FailureKind::Busy);
    assert!(
        out.detail
            .contains("lock on role `payments-api` (behind instance_profile web-tier"),
        "{}",
        out.detail
    );
    // AssumeRole and the profile's read, made to find the lock.
    assert_eq!(out.api_calls, 2);
    assert!(member.writes().is_empty());
}

/// A profile without a role, or one that cannot be read: the same outcome as without
/// the ledger, each IAM call made once (the read before the lock is not repeated).
#[tokio::test(start_paused = true)]
async fn an_instance_profile_that_fails_to_resolve_fails_as_before_with_the_ledger() {
    for (profile, injected, kind) in [
        ("empty-profile", None, FailureKind::NotFound),
        (
            "web-tier",
            Some(ErrorKind::AccessDenied),
            FailureKind::AccessDenied,
        ),
    ] {
        let run = |ledger: bool| async move {
            let (access, member) = setup();
            member.add_instance_profile("empty-profile", &[]);
            member.add_instance_profile("web-tier", &["payments-api"]);
            if let Some(injected) = injected {
                member.fail("GetInstanceProfile", &[injected]);
            }
            let req = request(TargetKind::InstanceProfile, profile);
            let out = if ledger {
                ledgered(access).0.handle(&req, "r1").await
            } else {
                revoker(access).handle(&req, "r1").await
            };
            (out, member)
        };
        let (without, _) = run(false).await;
        let (out, member) = run(true).await;
        assert_eq!(out.status, Status::Failed, "{out:#?}");
        assert_eq!(out.error.as_ref().unwrap().kind, kind, "{out:#?}");
        assert_eq!(out.error, without.error);
        assert_eq!(out.api_calls, without.api_calls, "{profile}");
        assert_eq!(
            member
                .calls()
                .iter()
                .filter(|c| c.starts_with("GetInstanceProfile"))
                .count(),
            1,
            "{profile}: {:?}",
            member.calls()
        );
        assert!(member.writes().is_empty());
    }
}

/// A protected name refuses a revocation before any call, as without the ledger; a
/// release is not refused for the name (lifting a deny locks no one out) and takes
/// the lock of the role it writes.
#[tokio::test(start_paused = true)]
async fn a_protected_instance_profile_name_refuses_revocation_but_release_locks_the_role() {
    let (access, member) = setup();
    member.add_instance_profile("guarded-web", &["payments-api"]);
    let ledger = cutoff_aws::dynamodb::fake::FakeLedger::default();
    let r = Revoker::new(
        access.clone(),
        FixedClock::at(t0()),
        RevokeConfig {
            protection: Protection {
                patterns: vec![cutoff_domain::principal::NamePattern::parse("guarded-*").unwrap()],
                ..RevokeConfig::default().protection
            },
            ..RevokeConfig::default()
        },
    )
    .with_ledger(ledger.clone());
    let refused = r
        .handle(&request(TargetKind::InstanceProfile, "guarded-web"), "r1")
        .await;
    assert_eq!(refused.status, Status::Protected, "{refused:#?}");
    assert_eq!(refused.api_calls, 0);
    assert!(member.calls().is_empty() && access.assumed.lock().unwrap().is_empty());
    let mut release = request(TargetKind::InstanceProfile, "guarded-web");
    release.action = ManualAction::Release;
    release.force = true;
    r.handle(&release, "r2").await;
    assert_eq!(
        acquired_by(&ledger).last(),
        Some(&(format!("{MEMBER}#role#payments-api"), "r2".to_owned()))
    );
}

#[tokio::test(start_paused = true)]
async fn an_expired_lease_of_a_dead_writer_is_taken_over() {
    let (access, _member) = setup();
    let (r, ledger) = ledgered(access);
    ledger.state().locks.insert(
        format!("{MEMBER}#role#payments-api"),
        ("crashed".to_owned(), t0() - chrono::Duration::seconds(1)),
    );
    let out = r.handle(&finding_request("gd-10"), "msg-10").await;
    assert_eq!(out.status, Status::Applied);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_ledger_does_not_stop_a_revocation_and_the_outcome_says_so() {
    let (access, member) = setup();
    let (r, ledger) = ledgered(access);
    ledger.fail("acquire", &[ErrorKind::AccessDenied]);
    ledger.fail("take_slot", &[ErrorKind::AccessDenied]);
    ledger.fail("record", &[ErrorKind::AccessDenied]);
    let out = r.handle(&finding_request("gd-11"), "msg-11").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert!(
        out.detail.contains("without the principal lock"),
        "{}",
        out.detail
    );
    assert!(stored_cutoff(&member, &role("payments-api")).is_some());
}

#[tokio::test(start_paused = true)]
async fn a_closing_that_conflicts_is_tried_again_and_one_that_fails_still_audits() {
    // A waiter asking for the lease while the closing transaction runs cancels it
    // (TransactionConflict, transient): tried again, the mark and the entry are kept.
    let (access, _member) = setup();
    let (r, ledger) = ledgered(access);
    ledger.fail("close", &[ErrorKind::Transient]);
    let out = r.handle(&finding_request("gd-30"), "msg-30").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert_eq!(
        ledger.take_calls(),
        ["acquire", "legacy_window", "close", "close"]
    );
    assert_eq!(ledger.state().marks(), 1);
    assert_eq!(ledger.state().entries.len(), 1);
    assert!(ledger.state().locks.is_empty(), "the lock was given back");
    // A closing that keeps failing: the entry is written alone and the lock given
    // back; no mark is kept (a redelivery is weighed again, not answered wrongly).
    r.clock.advance(chrono::Duration::minutes(1));
    ledger.fail("close", &[ErrorKind::AccessDenied]);
    let out = r.handle(&finding_request("gd-31"), "msg-31").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert_eq!(
        ledger.take_calls(),
        ["acquire", "close", "release", "record"]
    );
    assert_eq!(ledger.state().marks(), 1, "gd-31 not marked");
    assert_eq!(
        ledger.state().entries.len(),
        2,
        "gd-31's entry written alone"
    );
    assert!(ledger.state().locks.is_empty());
}

#[tokio::test(start_paused = true)]
async fn dry_runs_and_manual_requests_are_audited_but_never_deduplicated() {
    let (access, _member) = setup();
    let (r, ledger) = ledgered(access);
    let mut dry = finding_request("gd-12");
    dry.dry_run = true;
    r.handle(&dry, "d1").await;
    assert!(
        ledger.state().acquired.is_empty(),
        "a dry run writes nothing: no lock"
    );
    let mut manual = request(TargetKind::Role, "payments-api");
    manual.trigger = Trigger {
        source: Source::Manual,
        requested_by: Some("alice".into()),
        ..Trigger::default()
    };
    let a = r.handle(&manual, "m1").await;
    r.clock.advance(chrono::Duration::seconds(5));
    let b = r.handle(&manual, "m2").await;
    assert_eq!(
        (a.status, b.status),
        (Status::Applied, Status::Applied),
        "{}",
        b.detail
    );
    assert_eq!(ledger.state().marks(), 0);
    assert_eq!(ledger.state().entries.len(), 3);
}

// --- trust boundaries and honest outcomes (issue 8) ------------------------------------

#[tokio::test(start_paused = true)]
async fn a_role_named_like_a_reserved_one_at_an_ordinary_path_is_revoked() {
    // IAM reserves the paths, not the names: an attacker's AWSReservedSSO_… or
    // AWSServiceRoleFor… role at `/` must not be unrevocable.
    let (access, member) = setup();
    for (name, guess) in [
        (
            "AWSReservedSSO_Admin_0123456789abcdef",
            TargetKind::IdentityCenterRole,
        ),
        ("AWSServiceRoleForBackdoor", TargetKind::ServiceLinkedRole),
    ] {
        member.add_role(name, "/", &[]);
        let out = revoker(access.clone())
            .handle(&request(guess, name), "r")
            .await;
        assert_eq!(out.status, Status::Applied, "{name}: {}", out.detail);
        assert_eq!(
            out.target.as_ref().unwrap().kind,
            TargetKind::Role,
            "IAM said so"
        );
        assert!(stored_cutoff(&member, &role(name)).is_some());
    }
}

#[tokio::test(start_paused = true)]
async fn a_role_named_cutoff_backdoor_is_revoked_like_any_other() {
    let (access, member) = setup();
    member.add_role("cutoff-backdoor", "/", &[]);
    let out = revoker(access)
        .handle(&request(TargetKind::Role, "cutoff-backdoor"), "r")
        .await;
    assert_eq!(out.status, Status::Applied, "{}", out.detail);
    assert!(stored_cutoff(&member, &role("cutoff-backdoor")).is_some());
}

#[tokio::test(start_paused = true)]
async fn cutoffs_own_roles_are_protected_by_their_exact_arn_before_any_call() {
    let (access, member) = setup();
    member.add_role("cutoff-us-east-1-revoker", "/", &[]);
    let r = Revoker::new(
        access.clone(),
        FixedClock::at(t0()),
        RevokeConfig {
            protection: Protection {
                arns: vec![
                    cutoff_domain::principal::ProtectedArn::parse(&format!(
                        "arn:aws:iam::{MEMBER}:role/cutoff-us-east-1-revoker"
                    ))
                    .unwrap(),
                ],
                ..RevokeConfig::default().protection
            },
            ..RevokeConfig::default()
        },
    );
    let out = r
        .handle(&request(TargetKind::Role, "cutoff-us-east-1-revoker"), "r")
        .await;
    assert_eq!(out.status, Status::Protected);
    assert_eq!(out.api_calls, 0);
    assert!(member.calls().is_empty() && access.assumed.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_recreated_role_is_not_written_for_a_finding_about_its_predecessor() {
    let (access, member) = setup();
    member.recreate(&role("payments-api"), "AROANEWROLEID00000001");
    let mut req = request(TargetKind::Role, "payments-api");
    req.expected_unique_id =
        Some(cutoff_domain::principal::UniqueId::parse("AROAOLDROLEID00000001").unwrap());
    let out = revoker(access.clone()).handle(&req, "r").await;
    assert_eq!(out.status, Status::Failed);
    let error = out.error.as_ref().unwrap();
    assert_eq!(error.kind, FailureKind::PrincipalMismatch);
    assert!(error.message.contains("recreated"), "{}", error.message);
    assert!(
        !out.needs_retry(),
        "no retry can make it the same principal"
    );
    assert!(member.writes().is_empty());
    // The principal the finding names is written.
    req.expected_unique_id =
        Some(cutoff_domain::principal::UniqueId::parse("AROANEWROLEID00000001").unwrap());
    assert_eq!(
        revoker(access).handle(&req, "r").await.status,
        Status::Applied
    );
}

#[tokio::test(start_paused = true)]
async fn an_account_outside_the_configured_list_is_refused_before_any_call() {
    let (access, member) = setup();
    let r = Revoker::new(
        access.clone(),
        FixedClock::at(t0()),
        RevokeConfig {
            accounts: Some(cutoff_domain::principal::AccountScope {
                organization: None,
                accounts: Some(vec![Account::parse("444455556666").unwrap()]),
            }),
            ..RevokeConfig::default()
        },
    );
    let out = r
        .handle(&request(TargetKind::Role, "payments-api"), "r")
        .await;
    assert_eq!(out.status, Status::Failed);
    assert_eq!(
        out.error.as_ref().unwrap().kind,
        FailureKind::AccountNotAllowed
    );
    assert_eq!(out.api_calls, 0);
    assert!(member.calls().is_empty() && access.assumed.lock().unwrap().is_empty());
    // The home account is always in scope.
    access.account(HOME).add_role("local-app", "/", &[]);
    let mut local = request(TargetKind::Role, "local-app");
    local.target.account = Account::parse(HOME).unwrap();
    assert_eq!(r.handle(&local, "r").await.status, Status::Applied);
}

fn user_request(key: Option<&str>) -> RevocationRequest {
    let mut req = request(TargetKind::User, "ci-deployer");
    req.target.access_key_id = key.map(|k| AccessKeyId::parse(k).unwrap());
    req
}

const KEY1: &str = "AKIAAAAAAAAAAAAAAAA1";
const KEY2: &str = "AKIAAAAAAAAAAAAAAAA2";

#[tokio::test(start_paused = true)]
async fn a_key_that_cannot_be_deactivated_no_longer_blocks_the_deny_and_the_outcome_is_partial() {
    let (access, member) = setup();
    member
        .add_user("ci-deployer", &[])
        .add_access_key("ci-deployer", KEY1);
    // An SCP (or anything else) refuses UpdateAccessKey.
    member.fail("UpdateAccessKey", &[ErrorKind::AccessDenied]);
    let out = revoker(access).handle(&user_request(Some(KEY1)), "r").await;
    assert_eq!(out.status, Status::Partial, "{out:#?}");
    let user = IamPrincipal::user(PrincipalName::parse("ci-deployer").unwrap());
    assert!(
        member.inline(&user, ROLE_WIDE_POLICY_NAME).is_some(),
        "the deny is in force"
    );
    assert_eq!(
        member.key_status("ci-deployer", KEY1).as_deref(),
        Some("Active")
    );
    assert_eq!(out.still_works.len(), 1);
    assert!(out.still_works[0].credential.contains(KEY1));
    assert!(
        out.still_works[0]
            .why
            .contains("never stopped by the TokenIssueTime deny")
    );
    assert_eq!(out.error.as_ref().unwrap().kind, FailureKind::AccessDenied);
    assert!(out.needs_retry(), "a later attempt may deactivate it");
}

#[tokio::test(start_paused = true)]
async fn a_named_key_the_user_does_not_have_is_an_error_not_applied() {
    let (access, member) = setup();
    member
        .add_user("ci-deployer", &[])
        .add_access_key("ci-deployer", KEY1)
        .add_user("other", &[])
        .add_access_key("other", KEY2);
    let out = revoker(access).handle(&user_request(Some(KEY2)), "r").await;
    assert_eq!(out.status, Status::Failed, "{out:#?}");
    assert_eq!(out.error.as_ref().unwrap().kind, FailureKind::KeyNotFound);
    assert!(!out.needs_retry());
    assert_eq!(member.key_status("other", KEY2).as_deref(), Some("Active"));
    assert_eq!(
        member.key_status("ci-deployer", KEY1).as_deref(),
        Some("Active")
    );
}

#[tokio::test(start_paused = true)]
async fn a_manual_user_request_without_a_key_contains_every_active_key() {
    let (access, member) = setup();
    member
        .add_user("ci-deployer", &[])
        .add_access_key("ci-deployer", KEY1)
        .add_access_key("ci-deployer", KEY2);
    let mut req = user_request(None);
    req.trigger = Trigger {
        source: Source::Manual,
        ..Trigger::default()
    };
    let out = revoker(access).handle(&req, "r").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    for key in [KEY1, KEY2] {
        assert_eq!(
            member.key_status("ci-deployer", key).as_deref(),
            Some("Inactive")
        );
    }
    assert!(out.still_works.is_empty());
}

#[tokio::test(start_paused = true)]
async fn other_ways_in_are_listed_without_making_it_partial() {
    let (access, member) = setup();
    member
        .add_user("ci-deployer", &[])
        .add_access_key("ci-deployer", KEY1);
    {
        let mut state = member.state();
        state.login_profiles.push("ci-deployer".into());
        state
            .ssh_keys
            .push(("ci-deployer".into(), "APKAEXAMPLE000000001".into()));
        state
            .service_credentials
            .push(("ci-deployer".into(), "codecommit.amazonaws.com".into()));
    }
    let out = revoker(access).handle(&user_request(Some(KEY1)), "r").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert_eq!(out.other_access.len(), 3, "{:?}", out.other_access);
    assert!(out.other_access[0].contains("console password"));
    assert!(out.other_access[1].contains("APKAEXAMPLE000000001"));
    assert!(out.other_access[2].contains("codecommit"));
}

#[tokio::test(start_paused = true)]
async fn a_temporary_key_needs_no_deactivation_and_is_dead_once_the_deny_is_in() {
    let (access, member) = setup();
    member
        .add_user("ci-deployer", &[])
        .add_access_key("ci-deployer", KEY1);
    let out = revoker(access)
        .handle(&user_request(Some("ASIAZXCVBNMASDFGHJKL")), "r")
        .await;
    assert_eq!(out.status, Status::Applied);
    assert_eq!(
        member.key_status("ci-deployer", KEY1).as_deref(),
        Some("Active")
    );
    assert!(
        out.detail.contains("not in this request's scope"),
        "{}",
        out.detail
    );
}

fn gd_update(finding: &str, key: &str, first: &str, updated: &str) -> RevocationRequest {
    let mut r = request(TargetKind::Role, "payments-api");
    r.target.access_key_id = Some(AccessKeyId::parse(key).unwrap());
    r.trigger.finding_id = Some(finding.to_owned());
    r.trigger.updated_at = Some(DateTime::parse_from_rfc3339(updated).unwrap().to_utc());
    r.first_activity = Some(DateTime::parse_from_rfc3339(first).unwrap().to_utc());
    r
}

/// A principal revoked for finding gd-1 with SESSION1 whose records then left the lock
/// item: moved to the version before's `keys#` items (`legacy`), or gone. Returns the
/// revoker, its ledger and the IAM account.
async fn revoked_then_records_moved(
    legacy: bool,
) -> (
    Revoker<FakeAccess, FixedClock, cutoff_aws::dynamodb::fake::FakeLedger>,
    cutoff_aws::dynamodb::fake::FakeLedger,
    FakeIam,
) {
    let (access, member) = setup();
    let (r, ledger) = ledgered(access);
    let first = r
        .handle(
            &gd_update(
                "gd-1",
                "ASIAAAAAAAAAAAAAAAA1",
                "2026-11-23T11:40:00Z",
                "2026-11-23T11:56:00Z",
            ),
            "m0",
        )
        .await;
    assert_eq!(first.status, Status::Applied);
    let principal = format!("{MEMBER}#role#payments-api");
    let mut state = ledger.state();
    let item = state.principals.remove(&principal).unwrap();
    assert!(!item.keys.is_empty());
    if legacy {
        state
            .legacy_keys
            .insert(principal, item.keys.into_values().collect());
        state.legacy_until = Some(t0() + chrono::Duration::days(2));
    }
    drop(state);
    r.clock.advance(chrono::Duration::minutes(15));
    (r, ledger, member)
}

#[tokio::test(start_paused = true)]
async fn the_key_records_of_the_version_before_are_read_once_so_a_new_key_is_not_skipped() {
    // After an upgrade, the finding that began with SESSION1 names SESSION2: its first
    // activity is SESSION1's, so only the record of SESSION1 (kept by the version
    // before) stops the skip rule from trusting it. The record is read and adopted.
    let (r, ledger, member) = revoked_then_records_moved(true).await;
    let update = gd_update(
        "gd-1",
        "ASIAAAAAAAAAAAAAAAA2",
        "2026-11-23T11:40:00Z",
        "2026-11-23T12:11:00Z",
    );
    let out = r.handle(&update, "m1").await;
    assert_eq!(out.status, Status::Applied, "{}", out.detail);
    assert_eq!(member.calls_of("PutRolePolicy"), 2);
    assert_eq!(
        ledger.take_calls()[3..],
        ["acquire", "legacy_window", "legacy_keys", "close"]
    );
    // Adopted: the next request reads them from the lock item, the legacy no more.
    let principal = format!("{MEMBER}#role#payments-api");
    assert!(ledger.state().principals[&principal].keys_since.is_some());
    assert_eq!(
        ledger.state().key_records(&principal, r.clock.now()).len(),
        2
    );
    r.clock.advance(chrono::Duration::minutes(1));
    let later = gd_update(
        "gd-1",
        "ASIAAAAAAAAAAAAAAAA2",
        "2026-11-23T11:40:00Z",
        "2026-11-23T12:30:00Z",
    );
    assert_eq!(r.handle(&later, "m2").await.status, Status::AlreadyRevoked);
    assert_eq!(ledger.take_calls(), ["acquire", "close"]);
}

#[tokio::test(start_paused = true)]
async fn lost_key_records_leave_the_first_activity_of_a_key_untrusted_until_they_expire() {
    // The records gone with no version before to read them from (the window closed):
    // what the control shows is the risk, a new key of the finding skipped.
    let (r, _, _) = revoked_then_records_moved(false).await;
    let new_key = gd_update(
        "gd-1",
        "ASIAAAAAAAAAAAAAAAA2",
        "2026-11-23T11:40:00Z",
        "2026-11-23T12:11:00Z",
    );
    assert_eq!(
        r.handle(&new_key, "m1").await.status,
        Status::AlreadyRevoked,
        "without the record of the key it began with, the finding's first activity is trusted"
    );
    // The same loss, but the item says a record may be missing (evicted past the cap,
    // or a closing that could not write it): the first activity is not trusted.
    let (r, ledger, member) = revoked_then_records_moved(false).await;
    let principal = format!("{MEMBER}#role#payments-api");
    let until = r.clock.now() + chrono::Duration::hours(1);
    ledger
        .state()
        .principals
        .entry(principal.clone())
        .or_default()
        .incomplete_until(until);
    let out = r.handle(&new_key, "m1").await;
    assert_eq!(out.status, Status::Applied, "{}", out.detail);
    assert_eq!(member.calls_of("PutRolePolicy"), 2);
    // Once the missing record would have expired, the first activity counts again.
    r.clock.advance(chrono::Duration::hours(2));
    let later = gd_update(
        "gd-2",
        "ASIAAAAAAAAAAAAAAAA3",
        "2026-11-23T11:30:00Z",
        "2026-11-23T14:20:00Z",
    );
    let out = r.handle(&later, "m2").await;
    assert_eq!(out.status, Status::AlreadyRevoked, "{}", out.detail);
}

#[tokio::test(start_paused = true)]
async fn a_closing_that_loses_its_key_record_marks_the_records_incomplete() {
    let (access, _member) = setup();
    let (r, ledger) = ledgered(access);
    ledger.fail("close", &[ErrorKind::AccessDenied]);
    let out = r
        .handle(
            &gd_update(
                "gd-1",
                "ASIAAAAAAAAAAAAAAAA1",
                "2026-11-23T11:40:00Z",
                "2026-11-23T11:56:00Z",
            ),
            "m0",
        )
        .await;
    assert_eq!(out.status, Status::Applied);
    let principal = format!("{MEMBER}#role#payments-api");
    let item = ledger.state().principals[&principal].clone();
    assert!(item.keys.is_empty(), "the record was not written");
    assert_eq!(
        item.keys_incomplete_until,
        Some(r.clock.now() + chrono::Duration::days(cutoff_aws::dynamodb::KEY_RECORD_DAYS))
    );
    assert!(!item.keys_complete(r.clock.now()));
}

#[tokio::test(start_paused = true)]
async fn a_finding_updated_five_times_writes_once_and_a_new_key_writes_again() {
    let (access, member) = setup();
    let (r, ledger) = ledgered(access);
    const SESSION1: &str = "ASIAAAAAAAAAAAAAAAA1";
    const SESSION2: &str = "ASIAAAAAAAAAAAAAAAA2";
    // GuardDuty sees the stolen session at 11:40 and reports it at 11:56.
    let first = r
        .handle(
            &gd_update(
                "gd-1",
                SESSION1,
                "2026-11-23T11:40:00Z",
                "2026-11-23T11:56:00Z",
            ),
            "m0",
        )
        .await;
    assert_eq!(first.status, Status::Applied);
    let cutoff_written = first.cutoff;
    // The denied session keeps failing; GuardDuty keeps updating the finding, its
    // last activity moving past the cutoff. Nothing is written again.
    for i in 1..=5 {
        r.clock.advance(chrono::Duration::minutes(15));
        let update = gd_update(
            "gd-1",
            SESSION1,
            "2026-11-23T11:40:00Z",
            &format!(
                "2026-11-23T{:02}:{:02}:00Z",
                12 + (i * 15) / 60,
                (i * 15) % 60
            ),
        );
        let out = r.handle(&update, &format!("m{i}")).await;
        assert_eq!(
            out.status,
            Status::AlreadyRevoked,
            "update {i}: {}",
            out.detail
        );
        assert_eq!(out.cutoff, cutoff_written);
    }
    assert_eq!(
        member.calls_of("PutRolePolicy"),
        1,
        "one write for six events"
    );
    // The same finding now names a new session: the attacker got back in. Revoked at
    // once, within the hour of the first.
    r.clock.advance(chrono::Duration::minutes(5));
    let again = r
        .handle(
            &gd_update(
                "gd-1",
                SESSION2,
                "2026-11-23T11:40:00Z",
                "2026-11-23T13:25:00Z",
            ),
            "m6",
        )
        .await;
    assert_eq!(again.status, Status::Applied, "{}", again.detail);
    assert!(again.cutoff > cutoff_written);
    assert_eq!(member.calls_of("PutRolePolicy"), 2);
    // Both keys are on record with the cutoff that covers them (beside the record that
    // the covered updates saw the first key).
    let records = ledger.state().keys()[&format!("{MEMBER}#role#payments-api")]
        .iter()
        .filter(|(r, _)| !r.seen_only)
        .count();
    assert_eq!(records, 2);
    // A redelivery of the very same event reports the earlier outcome, no call.
    let calls = member.calls().len();
    let redelivered = r
        .handle(
            &gd_update(
                "gd-1",
                SESSION2,
                "2026-11-23T11:40:00Z",
                "2026-11-23T13:25:00Z",
            ),
            "m6",
        )
        .await;
    assert_eq!(redelivered.status, Status::Applied);
    assert_eq!(member.calls().len(), calls);
}

#[tokio::test(start_paused = true)]
async fn the_skip_rule_reads_the_managed_fallback_too() {
    let (access, member) = setup();
    // The deny lives in the attached fallback (the inline budget was full).
    let arn = format!("arn:aws:iam::{MEMBER}:policy/cutoff/cutoff-revoke-role-payments-api");
    let doc = policy::role_wide_document(cutoff("2026-11-23T11:50:00Z")).to_json();
    member.state().managed.insert(arn.clone(), vec![doc]);
    member
        .state()
        .roles
        .get_mut("payments-api")
        .unwrap()
        .attached
        .push(arn);
    let mut req = request(TargetKind::Role, "payments-api");
    req.first_activity = Some(Utc.with_ymd_and_hms(2026, 11, 23, 11, 45, 0).unwrap());
    let out = revoker(access).handle(&req, "r").await;
    assert_eq!(out.status, Status::AlreadyRevoked, "{}", out.detail);
    assert!(
        out.policy
            .unwrap()
            .contains("cutoff-revoke-role-payments-api")
    );
    assert!(member.writes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_legacy_fallback_is_read_released_and_never_written() {
    let (access, member) = setup();
    let legacy = format!("arn:aws:iam::{MEMBER}:policy/cutoff/cutoff-revoke-payments-api");
    let doc = policy::role_wide_document(cutoff("2026-11-22T10:00:00Z")).to_json();
    member.state().managed.insert(legacy.clone(), vec![doc]);
    member
        .state()
        .roles
        .get_mut("payments-api")
        .unwrap()
        .attached
        .push(legacy.clone());
    let mut release = request(TargetKind::Role, "payments-api");
    release.action = ManualAction::Release;
    let out = revoker(access).handle(&release, "r").await;
    assert_eq!(out.status, Status::Released, "{}", out.detail);
    assert!(!member.state().managed.contains_key(&legacy));
    assert!(member.state().roles["payments-api"].attached.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_circuit_breaker_stops_automatic_revocations_beyond_the_cap_but_not_manual_ones() {
    let (access, member) = setup();
    for name in ["a1", "a2", "a3"] {
        member.add_role(name, "/", &[]);
    }
    let ledger = cutoff_aws::dynamodb::fake::FakeLedger::default();
    let r = Revoker::new(
        access,
        FixedClock::at(t0()),
        RevokeConfig {
            max_revocations_per_account_hour: Some(2),
            ..RevokeConfig::default()
        },
    )
    .with_ledger(ledger.clone());
    let statuses: Vec<Status> = {
        let mut out = Vec::new();
        for name in ["a1", "a2", "a3"] {
            out.push(
                r.handle(&request(TargetKind::Role, name), name)
                    .await
                    .status,
            );
        }
        out
    };
    assert_eq!(statuses, [Status::Applied, Status::Applied, Status::Failed]);
    assert!(
        stored_cutoff(&member, &role("a3")).is_none(),
        "nothing written past the cap"
    );
    let tripped = r.handle(&request(TargetKind::Role, "a3"), "again").await;
    assert_eq!(
        tripped.error.as_ref().unwrap().kind,
        FailureKind::CircuitOpen
    );
    assert!(
        tripped.detail.contains("circuit breaker"),
        "{}",
        tripped.detail
    );
    assert!(!tripped.needs_retry());
    // An operator's request is never capped.
    let mut manual = request(TargetKind::Role, "a3");
    manual.trigger = Trigger {
        source: Source::Manual,
        ..Trigger::default()
    };
    assert_eq!(r.handle(&manual, "m").await.status, Status::Applied);
    // The next hour has room again.
    r.clock.advance(chrono::Duration::hours(1));
    member.add_role("a4", "/", &[]);
    assert_eq!(
        r.handle(&request(TargetKind::Role, "a4"), "n").await.status,
        Status::Applied
    );
}

#[tokio::test(start_paused = true)]
async fn with_the_ledger_unreachable_the_breaker_fails_open_and_says_so() {
    let (access, member) = setup();
    let ledger = cutoff_aws::dynamodb::fake::FakeLedger::default();
    ledger.fail("take_slot", &[ErrorKind::AccessDenied]);
    let r = Revoker::new(
        access,
        FixedClock::at(t0()),
        RevokeConfig {
            max_revocations_per_account_hour: Some(1),
            ..RevokeConfig::default()
        },
    )
    .with_ledger(ledger);
    let out = r
        .handle(&request(TargetKind::Role, "payments-api"), "r")
        .await;
    assert_eq!(out.status, Status::Applied);
    assert!(
        out.detail.contains("circuit breaker could not be checked"),
        "{}",
        out.detail
    );
    assert!(stored_cutoff(&member, &role("payments-api")).is_some());
}

#[tokio::test(start_paused = true)]
async fn a_release_with_the_ledger_unreachable_does_not_run() {
    let (access, member) = setup();
    let old = policy::role_wide_document(cutoff("2026-11-22T10:00:00Z")).to_json();
    member.set_inline(&role("payments-api"), ROLE_WIDE_POLICY_NAME, &old);
    let (r, ledger) = ledgered(access);
    ledger.fail("acquire", &[ErrorKind::Transient; 4]);
    let mut release = request(TargetKind::Role, "payments-api");
    release.action = ManualAction::Release;
    let out = r.handle(&release, "r").await;
    assert_eq!(out.status, Status::Failed);
    assert_eq!(
        out.error.as_ref().unwrap().kind,
        FailureKind::LedgerUnavailable
    );
    assert!(out.needs_retry(), "a later attempt may reach the ledger");
    assert_eq!(
        member
            .inline(&role("payments-api"), ROLE_WIDE_POLICY_NAME)
            .as_deref(),
        Some(old.as_str()),
        "nothing removed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_release_drops_the_key_records_so_an_old_key_is_revoked_again() {
    let (access, member) = setup();
    let (r, ledger) = ledgered(access);
    let req = gd_update(
        "gd-2",
        "ASIAAAAAAAAAAAAAAAA1",
        "2026-11-23T11:40:00Z",
        "2026-11-23T11:56:00Z",
    );
    assert_eq!(r.handle(&req, "m0").await.status, Status::Applied);
    assert!(!ledger.state().keys().is_empty());
    r.clock.advance(chrono::Duration::hours(13));
    let mut release = request(TargetKind::Role, "payments-api");
    release.action = ManualAction::Release;
    assert_eq!(r.handle(&release, "rel").await.status, Status::Released);
    assert!(ledger.state().keys().is_empty());
    assert!(stored_cutoff(&member, &role("payments-api")).is_none());
}

fn user(name: &str) -> IamPrincipal {
    IamPrincipal::user(PrincipalName::parse(name).unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_leaked_long_term_key_first_seen_before_the_cutoff_still_gets_a_cutoff_past_its_deactivation()
 {
    // KEY1 leaked; the user already carries a 10:00 cutoff (an earlier incident). The
    // attacker minted a session with KEY1 (GetSessionToken) at 11:00. A finding about
    // KEY1 first seen at 09:00 proves nothing about that session: the cutoff must end up
    // after the moment KEY1 stopped minting.
    let (access, member) = setup();
    member
        .add_user("ci-deployer", &[])
        .add_access_key("ci-deployer", KEY1);
    let earlier = policy::role_wide_document(cutoff("2026-11-23T10:00:00Z")).to_json();
    member.set_inline(&user("ci-deployer"), ROLE_WIDE_POLICY_NAME, &earlier);
    let mut req = user_request(Some(KEY1));
    req.first_activity = Some(
        DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z")
            .unwrap()
            .to_utc(),
    );
    let r = revoker(access);
    let out = r.handle(&req, "r").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert_eq!(
        member.key_status("ci-deployer", KEY1).as_deref(),
        Some("Inactive")
    );
    let deactivated = r.clock.now();
    let written = stored_cutoff(&member, &user("ci-deployer")).unwrap();
    assert!(
        written.covers(deactivated + KEY_DEACTIVATION_PROPAGATION),
        "{written} must deny sessions the key minted until it was inactive everywhere"
    );
    assert_eq!(out.cutoff, Some(written));
}

#[tokio::test(start_paused = true)]
async fn a_key_deactivated_on_a_retry_raises_the_cutoff_it_was_partial_under() {
    // The first attempt wrote the deny but could not deactivate the key (partial); the
    // key kept minting sessions. The retry deactivates it and must move the cutoff past
    // that, not report `applied` under the old one.
    let (access, member) = setup();
    member
        .add_user("ci-deployer", &[])
        .add_access_key("ci-deployer", KEY1);
    member.fail("UpdateAccessKey", &[ErrorKind::AccessDenied]);
    let (r, ledger) = ledgered(access);
    let first = r.handle(&user_request(Some(KEY1)), "m1").await;
    assert_eq!(first.status, Status::Partial);
    assert!(
        ledger.state().keys().is_empty(),
        "a key that still works is not on record as covered"
    );
    r.clock.advance(chrono::Duration::minutes(5));
    let retry = r.handle(&user_request(Some(KEY1)), "m1-retry").await;
    assert_eq!(retry.status, Status::Applied, "{retry:#?}");
    assert!(retry.cutoff > first.cutoff);
    assert!(
        retry
            .cutoff
            .unwrap()
            .covers(r.clock.now() + KEY_DEACTIVATION_PROPAGATION)
    );
}

#[tokio::test(start_paused = true)]
async fn a_forged_finding_with_an_early_first_activity_cannot_vouch_for_a_later_session_key() {
    // A 10:00 cutoff is in force. A forged finding names the attacker's own session key
    // with a first activity of 09:00: it is covered by that claim, but must not be put
    // on record as covered, or GuardDuty's real finding about the key (first seen at
    // 11:30, after the cutoff) would be skipped.
    let (access, member) = setup();
    let earlier = policy::role_wide_document(cutoff("2026-11-23T10:00:00Z")).to_json();
    member.set_inline(&role("payments-api"), ROLE_WIDE_POLICY_NAME, &earlier);
    let (r, _) = ledgered(access);
    const STOLEN: &str = "ASIASTOLEN0000000001";
    let forged = r
        .handle(
            &gd_update(
                "forged",
                STOLEN,
                "2026-11-23T09:00:00Z",
                "2026-11-23T11:50:00Z",
            ),
            "m1",
        )
        .await;
    assert_eq!(forged.status, Status::AlreadyRevoked);
    r.clock.advance(chrono::Duration::minutes(5));
    let real = r
        .handle(
            &gd_update(
                "gd-real",
                STOLEN,
                "2026-11-23T11:30:00Z",
                "2026-11-23T11:58:00Z",
            ),
            "m2",
        )
        .await;
    assert_eq!(real.status, Status::Applied, "{}", real.detail);
    assert!(
        real.cutoff.unwrap().covers(
            DateTime::parse_from_rfc3339("2026-11-23T11:30:00Z")
                .unwrap()
                .to_utc()
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_status_request_for_an_account_outside_the_list_reaches_nothing() {
    let (access, _) = setup();
    let r = Revoker::new(
        access.clone(),
        FixedClock::at(t0()),
        RevokeConfig {
            accounts: Some(cutoff_domain::principal::AccountScope {
                organization: None,
                accounts: Some(vec![Account::parse("444455556666").unwrap()]),
            }),
            ..RevokeConfig::default()
        },
    );
    let mut status = request(TargetKind::Role, "payments-api");
    status.action = ManualAction::Status;
    let report = r.status(&status, "s").await;
    assert_eq!(
        report.error.as_ref().unwrap().kind,
        FailureKind::AccountNotAllowed
    );
    assert!(access.assumed.lock().unwrap().is_empty(), "no AssumeRole");
    assert_eq!(report.api_calls, 0);
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_breaker_sets_no_key_inactive() {
    let (access, member) = setup();
    member
        .add_user("u1", &[])
        .add_access_key("u1", KEY1)
        .add_user("u2", &[])
        .add_access_key("u2", KEY2);
    let r = with_breaker(access, Some(1), None);
    let finding_about = |name: &str, key: &str| {
        let mut req = request(TargetKind::User, name);
        req.target.access_key_id = Some(AccessKeyId::parse(key).unwrap());
        req
    };
    assert_eq!(
        r.handle(&finding_about("u1", KEY1), "a").await.status,
        Status::Applied
    );
    let second = r.handle(&finding_about("u2", KEY2), "b").await;
    assert_eq!(
        second.error.as_ref().unwrap().kind,
        FailureKind::CircuitOpen,
        "{second:#?}"
    );
    assert_eq!(member.key_status("u2", KEY2).as_deref(), Some("Active"));
    assert!(member.inline(&user("u2"), ROLE_WIDE_POLICY_NAME).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_name_spelled_in_another_case_takes_the_same_lock_and_key_records() {
    // IAM names ignore case: `Payments-API` is `payments-api`. A request spelling it so
    // must wait for the lock the sweeper (which spells it as IAM does) holds.
    let (access, member) = setup();
    let (r, ledger) = ledgered(access);
    let holder_now = r.clock.now();
    ledger
        .acquire(
            &format!("{MEMBER}#role#payments-api"),
            "sweeper",
            holder_now,
            holder_now + chrono::Duration::minutes(5),
        )
        .await
        .unwrap();
    let out = r
        .handle(&request(TargetKind::Role, "Payments-API"), "r")
        .await;
    assert_eq!(
        out.error.as_ref().map(|e| e.kind.as_str()),
        Some("busy"),
        "{out:#?}"
    );
    assert!(member.writes().is_empty());
}

/// A revoker with a ledger and the circuit breaker's caps.
fn with_breaker(
    access: FakeAccess,
    per_account: Option<u32>,
    per_action: Option<u32>,
) -> Revoker<FakeAccess, FixedClock, cutoff_aws::dynamodb::fake::FakeLedger> {
    Revoker::new(
        access,
        FixedClock::at(t0()),
        RevokeConfig {
            max_revocations_per_account_hour: per_account,
            max_revocations_per_action_hour: per_action,
            ..RevokeConfig::default()
        },
    )
    .with_ledger(cutoff_aws::dynamodb::fake::FakeLedger::default())
}

const CUSTOM_ACTION: &str = "arn:aws:securityhub:us-east-1:999988887777:action/custom/revoke";

/// A request from a finding a Security Hub custom action sent.
fn by_custom_action(name: &str) -> RevocationRequest {
    let mut req = request(TargetKind::Role, name);
    req.trigger.source = Source::SecurityHub;
    req.trigger.custom_action = Some(CUSTOM_ACTION.into());
    req
}

#[tokio::test(start_paused = true)]
async fn a_custom_action_delivered_one_finding_per_event_still_trips_its_breaker() {
    // One click on many findings arrives as one event per finding, each naming one
    // principal: intake's per-event cap never sees more than one. The revoker counts
    // the action's revocations across them.
    let (access, member) = setup();
    for name in ["r1", "r2", "r3", "r4"] {
        member.add_role(name, "/", &[]);
    }
    let r = with_breaker(access, Some(100), Some(3));
    let mut statuses = Vec::new();
    for name in ["r1", "r2", "r3", "r4"] {
        statuses.push(r.handle(&by_custom_action(name), name).await);
    }
    let kinds: Vec<Option<FailureKind>> = statuses
        .iter()
        .map(|o| o.error.as_ref().map(|e| e.kind))
        .collect();
    assert_eq!(kinds, [None, None, None, Some(FailureKind::CircuitOpen)]);
    assert!(
        statuses[3].detail.contains("custom action"),
        "{}",
        statuses[3].detail
    );
    assert!(stored_cutoff(&member, &role("r4")).is_none());
    // A GuardDuty finding about r4 is not held back by the action's count.
    let gd = r.handle(&request(TargetKind::Role, "r4"), "gd").await;
    assert_eq!(gd.status, Status::Applied, "{gd:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_selection_refused_for_its_size_does_not_use_up_the_accounts_automatic_revocations() {
    // One click on many findings: the action's cap refuses most of them. Those must
    // not count against the account's cap, or GuardDuty could revoke nothing there for
    // the rest of the hour.
    let (access, member) = setup();
    for name in ["r1", "r2", "r3", "r4"] {
        member.add_role(name, "/", &[]);
    }
    let r = with_breaker(access, Some(2), Some(1));
    for name in ["r1", "r2", "r3"] {
        r.handle(&by_custom_action(name), name).await;
    }
    let gd = r.handle(&request(TargetKind::Role, "r4"), "gd").await;
    assert_eq!(gd.status, Status::Applied, "{gd:#?}");
}

#[tokio::test(start_paused = true)]
async fn every_finding_that_began_with_a_key_is_remembered_when_it_names_another() {
    // A 10:00 cutoff is in force. Findings FA and FB both first name K1 (covered by
    // their first activity, so K1 is only *seen*); FA then names K2, minted after the
    // cutoff. FA's first activity was K1's, not K2's: K2 must be revoked, though FB
    // was the last to name K1.
    let (access, member) = setup();
    let earlier = policy::role_wide_document(cutoff("2026-11-23T10:00:00Z")).to_json();
    member.set_inline(&role("payments-api"), ROLE_WIDE_POLICY_NAME, &earlier);
    let (r, _) = ledgered(access);
    const K1: &str = "ASIAKEYONE0000000001";
    const K2: &str = "ASIAKEYTWO0000000002";
    for (finding, first) in [
        ("fa", "2026-11-23T09:00:00Z"),
        ("fb", "2026-11-23T09:30:00Z"),
    ] {
        let out = r
            .handle(
                &gd_update(finding, K1, first, "2026-11-23T11:00:00Z"),
                finding,
            )
            .await;
        assert_eq!(
            out.status,
            Status::AlreadyRevoked,
            "{finding}: {}",
            out.detail
        );
    }
    let moved = r
        .handle(
            &gd_update("fa", K2, "2026-11-23T09:00:00Z", "2026-11-23T12:00:00Z"),
            "fa-2",
        )
        .await;
    assert_eq!(moved.status, Status::Applied, "{}", moved.detail);
}

#[tokio::test(start_paused = true)]
async fn a_security_hub_finding_reusing_a_guardduty_id_is_not_taken_for_it_by_the_ledger() {
    // An imported finding that copies the id and update time of GuardDuty's finding is
    // applied (or refused) first; GuardDuty's own request must not be answered with its
    // outcome from the idempotency marker.
    let (access, member) = setup();
    let (r, _) = ledgered(access);
    let real = gd_update(
        "gd-1",
        "ASIASTOLEN0000000001",
        "2026-11-23T11:40:00Z",
        "2026-11-23T11:56:00Z",
    );
    let mut forged = real.clone();
    forged.trigger.source = Source::SecurityHub;
    forged.trigger.product_arn =
        Some("arn:aws:securityhub:us-east-1:111122223333:product/111122223333/default".into());
    forged.dry_run = false;
    let first = r.handle(&forged, "forged").await;
    assert_eq!(first.status, Status::Applied);
    r.clock.advance(chrono::Duration::minutes(1));
    let writes = member.writes().len();
    let out = r.handle(&real, "real").await;
    assert!(
        !out.detail.contains("not written again within"),
        "answered from the forged finding's marker: {}",
        out.detail
    );
    assert!(member.writes().len() > writes || out.status == Status::AlreadyRevoked);
}

#[tokio::test(start_paused = true)]
async fn through_an_instance_profile_both_the_role_and_an_unusable_notify_tag_are_said() {
    let (access, member) = setup();
    member.add_role(
        "tagged-app",
        "/",
        &[("cutoff:owner", "web"), ("cutoff:notify", "not-an-arn")],
    );
    member.add_instance_profile("web-tier", &["tagged-app"]);
    let out = revoker(access)
        .handle(&request(TargetKind::InstanceProfile, "web-tier"), "r")
        .await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert!(
        out.detail
            .contains("instance profile web-tier resolves to role tagged-app"),
        "{}",
        out.detail
    );
    assert!(
        out.detail.contains("not an SNS topic ARN"),
        "{}",
        out.detail
    );
}

#[tokio::test(start_paused = true)]
async fn a_busy_lock_behind_an_instance_profile_names_the_role_it_waited_for() {
    let (access, member) = setup();
    member.add_instance_profile("web-tier", &["payments-api"]);
    let (r, ledger) = ledgered(access);
    ledger.state().locks.insert(
        format!("{MEMBER}#role#payments-api"),
        (
            "someone-else".to_owned(),
            t0() + chrono::Duration::minutes(5),
        ),
    );
    let out = r
        .handle(&request(TargetKind::InstanceProfile, "web-tier"), "r")
        .await;
    assert_eq!(out.error.as_ref().unwrap().kind, FailureKind::Busy);
    assert!(
        out.detail.contains("role `payments-api` (behind"),
        "{}",
        out.detail
    );
    let shown = out.target.unwrap();
    assert_eq!(
        (shown.kind, shown.name.as_str()),
        (TargetKind::Role, "payments-api")
    );
    assert!(member.writes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_status_of_a_kind_iam_cannot_restrict_is_refused_without_a_call() {
    let (access, member) = setup();
    let mut req = request(TargetKind::Root, "root");
    req.action = ManualAction::Status;
    let report = revoker(access).status(&req, "r").await;
    assert_eq!(
        report.error.as_ref().map(|e| e.kind),
        Some(FailureKind::Unmodifiable)
    );
    assert_eq!(report.api_calls, 0);
    assert!(member.calls().is_empty(), "{:?}", member.calls());
}
