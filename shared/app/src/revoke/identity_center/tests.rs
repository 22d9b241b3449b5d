//! An Identity Center user's containment against the in-memory directory and IAM.
//! Time is paused: the provisioning waits take none.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use cutoff_aws::dynamodb::Ledger;
use cutoff_aws::dynamodb::fake::FakeLedger;
use cutoff_aws::iam::fake::FakeIam;
use cutoff_aws::identity_center::fake::{FakeDirectory, ProvisionPlan};
use cutoff_aws::sts::fake::FakeAccess;
use cutoff_domain::clock::FixedClock;
use cutoff_domain::event::{ManualAction, Scope};
use cutoff_domain::identity_center::{PermissionSetState, denies_user};
use cutoff_domain::outcome::{FailureKind, RevocationRequest, Status, Trigger};
use cutoff_domain::principal::{Account, PrincipalName, SessionName, Target, TargetKind};
use cutoff_domain::triage::Source;

use crate::revoke::{RevokeConfig, Revoker};

const HOME: &str = "999988887777";
const MEMBER: &str = "111122223333";
const OTHER: &str = "444455556666";
const ROLE: &str = "AWSReservedSSO_Admin_0123456789abcdef";
const SSO_PATH: &str = "/aws-reserved/sso.amazonaws.com/eu-west-1/";
const ADMIN: &str = "arn:aws:sso:::permissionSet/ssoins-7223a4f1b1a8e2c0/ps-admin0000000001";
const READ: &str = "arn:aws:sso:::permissionSet/ssoins-7223a4f1b1a8e2c0/ps-read00000000002";
const BILLING: &str = "arn:aws:sso:::permissionSet/ssoins-7223a4f1b1a8e2c0/ps-bill00000000003";
const ALICE: &str = "906752d1-b1a2-4c3d-8e9f-0a1b2c3d4e5f";
const BOB: &str = "90675abc-0000-4c3d-8e9f-0a1b2c3d4e5f";
/// A statement the administrators wrote: kept as it is.
const THEIRS: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoLeavingTheOrg","Effect":"Deny","Action":"organizations:LeaveOrganization","Resource":"*"}]}"#;

type TestRevoker = Revoker<FakeAccess, FixedClock, FakeLedger>;

struct World {
    access: FakeAccess,
    member: FakeIam,
    directory: FakeDirectory,
    ledger: FakeLedger,
}

/// Alice holds Admin in the member account directly, and ReadOnly in two accounts
/// through her group; Bob holds ReadOnly only. Billing is nobody's.
fn world() -> World {
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    member.add_role(ROLE, SSO_PATH, &[("cutoff:owner", "platform")]);
    let directory = FakeDirectory::default();
    directory.add_permission_set(ADMIN, "Admin", Some(THEIRS));
    directory.add_permission_set(READ, "ReadOnly", None);
    directory.add_permission_set(BILLING, "Billing", None);
    let alice = directory.add_user("alice@example.com", ALICE);
    directory.add_user("bob@example.com", BOB);
    directory.assign(ALICE, MEMBER, ADMIN);
    directory.join(&alice, "g-engineers");
    directory.assign("g-engineers", MEMBER, READ);
    directory.assign("g-engineers", OTHER, READ);
    directory.assign(BOB, MEMBER, READ);
    World {
        access,
        member,
        directory,
        ledger: FakeLedger::default(),
    }
}

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 5, 9, 0, 0).unwrap()
}

fn revoker(w: &World) -> TestRevoker {
    Revoker::new(
        w.access.clone(),
        FixedClock::at(t0()),
        RevokeConfig::default(),
    )
    .with_ledger(w.ledger.clone())
    .with_identity_center(Arc::new(w.directory.clone()))
}

fn request(action: ManualAction, session: Option<&str>) -> RevocationRequest {
    let mut target = Target::new(
        TargetKind::IdentityCenterRole,
        Account::parse(MEMBER).unwrap(),
        PrincipalName::parse(ROLE).unwrap(),
    );
    target.session = session.map(|s| SessionName::parse(s).unwrap());
    RevocationRequest {
        action,
        target,
        scope: Scope::Role,
        trigger: Trigger {
            source: Source::GuardDuty,
            finding_id: Some("gd-sso-1".into()),
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

fn revoke(session: &str) -> RevocationRequest {
    request(ManualAction::Revoke, Some(session))
}

/// A release, as the operator path sends it.
fn release(session: &str) -> RevocationRequest {
    let mut r = request(ManualAction::Release, Some(session));
    r.trigger = Trigger {
        source: Source::Manual,
        requested_by: Some("arn:aws:sts::999988887777:assumed-role/Oncall/carol".into()),
        requested_by_verified: true,
        ..Trigger::default()
    };
    r
}

fn alice() -> cutoff_domain::identity_center::IdentityStoreUserId {
    cutoff_domain::identity_center::IdentityStoreUserId::parse(ALICE).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_users_every_permission_set_denies_them_where_they_use_it_and_nothing_else_changes() {
    let w = world();
    let out = revoker(&w)
        .handle(&revoke("alice@example.com"), "req-1")
        .await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    let report = out.identity_center.as_ref().unwrap();
    assert_eq!(report.user_id, ALICE);
    let states: Vec<(&str, PermissionSetState, usize)> = report
        .permission_sets
        .iter()
        .map(|s| (s.name.as_str(), s.state, s.accounts.len()))
        .collect();
    assert_eq!(
        states,
        [
            ("Admin", PermissionSetState::Denied, 1),
            ("ReadOnly", PermissionSetState::Denied, 2)
        ]
    );
    // The administrators' statement is kept beside the deny.
    let admin = w.directory.inline(ADMIN).unwrap();
    assert!(denies_user(&admin, &alice()));
    assert!(admin.contains("NoLeavingTheOrg"));
    // Provisioned where she uses each set, and so in force there.
    for (set, account) in [(ADMIN, MEMBER), (READ, MEMBER), (READ, OTHER)] {
        let provisioned = w.directory.provisioned(set, account).unwrap();
        assert!(denies_user(&provisioned, &alice()), "{set} in {account}");
    }
    // The finding's set first; each provisioned, in one call, to every account it is
    // provisioned to (hers, and any where a session outlived its assignment).
    assert_eq!(
        w.directory.writes(),
        [
            format!("put {ADMIN}"),
            format!("provision {ADMIN} all"),
            format!("put {READ}"),
            format!("provision {READ} all"),
        ]
    );
    // Nobody else's set, and never the reserved role itself (IAM refuses it).
    assert_eq!(w.directory.inline(BILLING), None);
    assert!(w.member.writes().is_empty(), "{:?}", w.member.writes());
    assert_eq!(out.owner.team.as_deref(), Some("platform"));
    assert!(out.detail.contains("disable the user"), "{}", out.detail);
    // Another finding about her (or a retry after a provisioning that did not
    // finish): no second put, but provisioned again, since only that says the
    // accounts hold it.
    let mut second = revoke("alice@example.com");
    second.trigger.finding_id = Some("gd-sso-2".into());
    let again = revoker(&w).handle(&second, "req-2").await;
    assert_eq!(again.status, Status::Applied, "{again:#?}");
    let writes = w.directory.writes();
    assert_eq!(writes.iter().filter(|w| w.starts_with("put")).count(), 2);
    assert_eq!(
        writes.iter().filter(|w| w.starts_with("provision")).count(),
        4
    );
}

#[tokio::test(start_paused = true)]
async fn the_sessions_key_is_recorded_covered_so_that_its_chain_is_followed() {
    let w = world();
    let mut r = revoke("alice@example.com");
    r.target.access_key_id =
        Some(cutoff_domain::principal::AccessKeyId::parse("ASIASSOSESSIONKEY001").unwrap());
    let out = revoker(&w).handle(&r, "r1").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    // No time condition: every session of hers is denied from the read-back on, so
    // the key is covered (not merely seen), and a follow-up run is admitted.
    let keys = w.ledger.state().keys();
    let records: Vec<_> = keys.values().flatten().map(|(record, _)| record).collect();
    assert_eq!(records.len(), 1, "{keys:?}");
    assert_eq!(records[0].access_key_id.as_str(), "ASIASSOSESSIONKEY001");
    assert!(!records[0].seen_only);
    assert!(records[0].cutoff.as_datetime() >= t0());
}

#[tokio::test(start_paused = true)]
async fn a_session_name_that_names_nobody_entitled_there_writes_nothing() {
    let w = world();
    // Bob exists, but does not hold Admin in this account: a session of the Admin
    // role named after him is not his, whoever wrote the finding.
    let bob = revoker(&w).handle(&revoke("bob@example.com"), "r1").await;
    assert_eq!(bob.status, Status::Failed, "{bob:#?}");
    assert_eq!(bob.error.unwrap().kind, FailureKind::PrincipalMismatch);
    let nobody = revoker(&w).handle(&revoke("mallory"), "r2").await;
    assert_eq!(nobody.status, Status::Failed);
    assert_eq!(nobody.error.unwrap().kind, FailureKind::NotFound);
    let no_session = revoker(&w)
        .handle(&request(ManualAction::Revoke, None), "r3")
        .await;
    assert_eq!(no_session.status, Status::Unmodifiable, "{no_session:#?}");
    assert!(w.directory.writes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_role_that_only_looks_reserved_is_a_role_and_the_directory_is_not_asked() {
    let w = world();
    w.member
        .add_role("AWSReservedSSO_Fake_0123456789abcdef", "/", &[]);
    let mut r = revoke("alice@example.com");
    r.target.name = PrincipalName::parse("AWSReservedSSO_Fake_0123456789abcdef").unwrap();
    let out = revoker(&w).handle(&r, "r").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert!(out.identity_center.is_none());
    assert!(w.directory.writes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn without_the_integration_the_finding_stays_an_alert_with_the_remedy() {
    let w = world();
    let r = Revoker::new(
        w.access.clone(),
        FixedClock::at(t0()),
        RevokeConfig::default(),
    );
    let out = r.handle(&revoke("alice@example.com"), "r").await;
    assert_eq!(out.status, Status::Unmodifiable);
    assert!(out.detail.contains("permission set"), "{}", out.detail);
    assert!(w.directory.writes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn provisioning_is_awaited_and_what_is_still_running_is_partial() {
    let w = world();
    w.directory.state().plan = ProvisionPlan::After(3);
    let out = revoker(&w).handle(&revoke("alice@example.com"), "r1").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");

    let w = world();
    w.directory.state().plan = ProvisionPlan::Never;
    let out = revoker(&w).handle(&revoke("alice@example.com"), "r2").await;
    assert_eq!(out.status, Status::Partial, "{out:#?}");
    assert_eq!(out.still_works.len(), 2, "{:?}", out.still_works);
    let report = out.identity_center.unwrap();
    assert!(
        report
            .permission_sets
            .iter()
            .all(|s| s.state == PermissionSetState::Provisioning)
    );
    assert!(out.error.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_failed_provisioning_or_a_set_with_no_room_is_named_and_the_rest_applied() {
    let w = world();
    // Admin's inline policy has no room for the deny.
    let big = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::{}/*"}}]}}"#,
        "b".repeat(10_300)
    );
    w.directory
        .state()
        .permission_sets
        .get_mut(ADMIN)
        .unwrap()
        .inline = Some(big.clone());
    let out = revoker(&w).handle(&revoke("alice@example.com"), "r1").await;
    assert_eq!(out.status, Status::Partial, "{out:#?}");
    let report = out.identity_center.unwrap();
    let admin = report
        .permission_sets
        .iter()
        .find(|s| s.name == "Admin")
        .unwrap();
    assert_eq!(admin.state, PermissionSetState::Failed);
    assert!(
        admin.note.as_deref().unwrap().contains("10240"),
        "{admin:?}"
    );
    assert_eq!(w.directory.inline(ADMIN), Some(big), "left as it was");

    let w = world();
    w.directory.state().plan = ProvisionPlan::Fails("quota".to_owned());
    let out = revoker(&w).handle(&revoke("alice@example.com"), "r2").await;
    assert_eq!(out.status, Status::Failed, "{out:#?}");
    assert!(out.detail.contains("Admin") && out.detail.contains("ReadOnly"));
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_says_what_it_would_write_and_writes_nothing() {
    let w = world();
    let mut r = revoke("alice@example.com");
    r.dry_run = true;
    let out = revoker(&w).handle(&r, "r").await;
    assert_eq!(out.status, Status::DryRun, "{out:#?}");
    assert!(w.directory.writes().is_empty());
    assert_eq!(out.actions.len(), 2, "{:?}", out.actions);
}

#[tokio::test(start_paused = true)]
async fn a_release_removes_the_deny_wherever_it_is_and_provisions_every_account() {
    let w = world();
    revoker(&w).handle(&revoke("alice@example.com"), "r1").await;
    // Her group membership ended since: the deny in ReadOnly must go all the same.
    w.directory.state().groups.clear();
    let released = revoker(&w)
        .handle(
            &request(ManualAction::Release, Some("alice@example.com")),
            "r2",
        )
        .await;
    assert_eq!(released.status, Status::Released, "{released:#?}");
    let admin = w.directory.inline(ADMIN).unwrap();
    assert!(!denies_user(&admin, &alice()) && admin.contains("NoLeavingTheOrg"));
    // ReadOnly held only the deny: its inline policy is deleted, not left empty.
    assert_eq!(w.directory.inline(READ), None);
    let writes = w.directory.writes();
    assert!(writes.contains(&format!("delete {READ}")), "{writes:?}");
    assert!(
        writes.contains(&format!("provision {READ} all")),
        "{writes:?}"
    );
    for account in [MEMBER, OTHER] {
        assert_eq!(w.directory.provisioned(READ, account), None, "{account}");
    }
    let names: Vec<String> = released
        .identity_center
        .unwrap()
        .permission_sets
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["Admin", "ReadOnly"]);
}

#[tokio::test(start_paused = true)]
async fn a_set_another_writer_holds_is_not_written_over_and_the_request_is_retried() {
    let w = world();
    // Another containment holds ReadOnly: a put now could drop its statement after
    // its read-back.
    let key = format!("identity-center#{READ}");
    let until = t0() + chrono::Duration::minutes(10);
    assert!(
        w.ledger
            .acquire(&key, "someone-else", t0(), until)
            .await
            .unwrap()
            .is_some()
    );
    let out = revoker(&w).handle(&revoke("alice@example.com"), "r1").await;
    assert_eq!(out.status, Status::Partial, "{out:#?}");
    assert!(out.needs_retry());
    assert_eq!(w.directory.inline(READ), None, "not written over");
    assert!(denies_user(&w.directory.inline(ADMIN).unwrap(), &alice()));
    // The lock given back: the retry completes it.
    w.ledger.release(&key, "someone-else").await.unwrap();
    let mut again = revoke("alice@example.com");
    again.trigger.updated_at = Some(t0() + chrono::Duration::minutes(1));
    let out = revoker(&w).handle(&again, "r1-retry").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    // A release fails closed on a held lock.
    assert!(
        w.ledger
            .acquire(&key, "someone-else", t0(), until)
            .await
            .unwrap()
            .is_some()
    );
    let out = revoker(&w)
        .handle(&release("alice@example.com"), "r2")
        .await;
    assert_eq!(out.status, Status::Failed, "{out:#?}");
    assert!(denies_user(&w.directory.inline(READ).unwrap(), &alice()));
}

#[tokio::test(start_paused = true)]
async fn only_sources_no_member_account_can_write_deny_a_person_everywhere() {
    let w = world();
    // A Security Hub finding can be imported by any account of the Organization,
    // naming the real permission-set role and whomever is entitled there.
    let mut imported = revoke("alice@example.com");
    imported.trigger.source = Source::SecurityHub;
    let out = revoker(&w).handle(&imported, "r1").await;
    assert_eq!(out.status, Status::Alerted, "{out:#?}");
    // A plain invoke's requester is only claimed.
    let mut claimed = revoke("alice@example.com");
    claimed.trigger.source = Source::Manual;
    claimed.trigger.finding_id = None;
    let out = revoker(&w).handle(&claimed, "r2").await;
    assert_eq!(out.status, Status::Alerted, "{out:#?}");
    // One API call matched by a CloudTrail rule: no severity, too little.
    let mut call = revoke("alice@example.com");
    call.trigger.source = Source::CloudTrail;
    let out = revoker(&w).handle(&call, "r2b").await;
    assert_eq!(out.status, Status::Alerted, "{out:#?}");
    assert!(w.directory.writes().is_empty());
    // An operator AWS vouched for (the function URL), or GuardDuty: contained.
    claimed.trigger.requested_by_verified = true;
    let out = revoker(&w).handle(&claimed, "r3").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_finds_the_deny_in_place_provisions_again_and_spends_no_breaker_slot() {
    let w = world();
    let r = Revoker::new(
        w.access.clone(),
        FixedClock::at(t0()),
        RevokeConfig {
            max_revocations_per_account_hour: Some(1),
            ..RevokeConfig::default()
        },
    )
    .with_ledger(w.ledger.clone())
    .with_identity_center(Arc::new(w.directory.clone()));
    w.directory.state().plan = ProvisionPlan::Never;
    let first = r.handle(&revoke("alice@example.com"), "r1").await;
    assert_eq!(first.status, Status::Partial, "{first:#?}");
    assert!(first.needs_retry());
    // The retry (the queue redelivers the message): provisioning finishes now.
    w.directory.state().plan = ProvisionPlan::AtOnce;
    let retry = r.handle(&revoke("alice@example.com"), "r1").await;
    assert_eq!(retry.status, Status::Applied, "{retry:#?}");
    let writes = w.directory.writes();
    assert_eq!(writes.iter().filter(|w| w.starts_with("put")).count(), 2);
    assert_eq!(
        writes.iter().filter(|w| w.starts_with("provision")).count(),
        4
    );
    for account in [MEMBER, OTHER] {
        assert!(denies_user(
            &w.directory.provisioned(READ, account).unwrap(),
            &alice()
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn a_release_retried_after_its_provisioning_did_not_finish_provisions_again() {
    let w = world();
    revoker(&w).handle(&revoke("alice@example.com"), "r1").await;
    w.directory.state().plan = ProvisionPlan::Never;
    let first = revoker(&w)
        .handle(&release("alice@example.com"), "r2")
        .await;
    assert_eq!(first.status, Status::Failed, "{first:#?}");
    assert!(denies_user(
        &w.directory.provisioned(ADMIN, MEMBER).unwrap(),
        &alice()
    ));
    // The statement is gone from the sets, but the accounts still hold it: the
    // retry must provision again, not say there was nothing to release.
    w.directory.state().plan = ProvisionPlan::AtOnce;
    let retry = revoker(&w)
        .handle(&release("alice@example.com"), "r3")
        .await;
    assert_eq!(retry.status, Status::Released, "{retry:#?}");
    for (set, account) in [(ADMIN, MEMBER), (READ, MEMBER), (READ, OTHER)] {
        let held = w.directory.provisioned(set, account).unwrap_or_default();
        assert!(!denies_user(&held, &alice()), "{set} in {account}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_redelivered_finding_answers_with_the_earlier_containment() {
    let w = world();
    let first = revoker(&w).handle(&revoke("alice@example.com"), "m1").await;
    assert_eq!(first.status, Status::Applied);
    let again = revoker(&w)
        .handle(&revoke("alice@example.com"), "m1-again")
        .await;
    assert_eq!(again.status, Status::Applied);
    assert_eq!(again.identity_center, first.identity_center, "{again:#?}");
}

#[tokio::test(start_paused = true)]
async fn many_busy_permission_sets_and_a_slow_provisioning_stay_within_the_functions_timeout() {
    let w = world();
    let alice = alice();
    for n in 0..12 {
        let arn = format!("arn:aws:sso:::permissionSet/ssoins-7223a4f1b1a8e2c0/ps-extra{n:011}");
        w.directory
            .add_permission_set(&arn, &format!("Extra{n:02}"), None);
        w.directory.assign(alice.as_str(), OTHER, &arn);
        let until = t0() + chrono::Duration::minutes(10);
        let key = format!("identity-center#{arn}");
        assert!(
            w.ledger
                .acquire(&key, "someone-else", t0(), until)
                .await
                .unwrap()
                .is_some()
        );
    }
    w.directory.state().plan = ProvisionPlan::Never;
    let started = tokio::time::Instant::now();
    let out = revoker(&w).handle(&revoke("alice@example.com"), "r").await;
    // The role's own lock was free: the containment's budget is the whole of it.
    assert!(
        started.elapsed()
            <= RevokeConfig::default().identity_center_wait + std::time::Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status, Status::Partial, "{out:#?}");
    // The busy sets are not written over (retried); hers are, the finding's first.
    assert!(out.needs_retry());
    let report = out.identity_center.unwrap();
    assert_eq!(report.permission_sets.len(), 14);
    assert!(denies_user(&w.directory.inline(ADMIN).unwrap(), &alice));
}

// ---------------------------------------------------------------------------------
// The SCP variant

const SCP: &str = "p-cutoff0001";

fn scp_revoker(w: &World) -> TestRevoker {
    {
        // Attached to the root; the member account sits in an OU under it.
        let mut state = w.directory.state();
        state
            .scp_targets
            .insert(SCP.to_owned(), vec!["r-a1b2".to_owned()]);
        state
            .parents
            .insert(MEMBER.to_owned(), "ou-a1b2-workloads".to_owned());
        state
            .parents
            .insert("ou-a1b2-workloads".to_owned(), "r-a1b2".to_owned());
    }
    w.directory.state().scps.insert(
        SCP.to_owned(),
        serde_json::json!({"Version": "2012-10-17", "Statement": [cutoff_domain::identity_center::scp_placeholder()]})
            .to_string(),
    );
    Revoker::new(
        w.access.clone(),
        FixedClock::at(t0()),
        RevokeConfig {
            identity_center_scp: Some(SCP.to_owned()),
            ..RevokeConfig::default()
        },
    )
    .with_ledger(w.ledger.clone())
    .with_identity_center(Arc::new(w.directory.clone()))
}

fn scp(w: &World) -> String {
    w.directory.state().scps[SCP].clone()
}

#[tokio::test(start_paused = true)]
async fn the_scp_variant_denies_the_user_in_cutoffs_policy_and_touches_no_permission_set() {
    let w = world();
    let r = scp_revoker(&w);
    let out = r.handle(&revoke("alice@example.com"), "r1").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    assert!(denies_user(&scp(&w), &alice()));
    assert_eq!(w.directory.writes(), [format!("update {SCP}")]);
    let report = out.identity_center.unwrap();
    assert_eq!(
        report.service_control_policy.unwrap().state,
        PermissionSetState::Denied
    );
    assert!(out.detail.contains("management account"), "{}", out.detail);
    // The same checks first: nobody entitled there, nothing written.
    let bob = r.handle(&revoke("bob@example.com"), "r2").await;
    assert_eq!(bob.error.unwrap().kind, FailureKind::PrincipalMismatch);
    assert_eq!(w.directory.writes().len(), 1);
    // Released: the placeholder back, nothing else changed.
    let released = r.handle(&release("alice@example.com"), "r3").await;
    assert_eq!(released.status, Status::Released, "{released:#?}");
    assert!(!denies_user(&scp(&w), &alice()));
    assert!(scp(&w).contains(cutoff_domain::identity_center::SCP_PLACEHOLDER_SID));
}

#[tokio::test(start_paused = true)]
async fn the_scp_variant_is_not_written_over_while_another_writer_holds_it_nor_past_its_size() {
    let w = world();
    let r = scp_revoker(&w);
    let key = format!("identity-center#scp#{SCP}");
    let until = t0() + chrono::Duration::minutes(10);
    assert!(
        w.ledger
            .acquire(&key, "someone-else", t0(), until)
            .await
            .unwrap()
            .is_some()
    );
    let busy = r.handle(&revoke("alice@example.com"), "r1").await;
    assert_eq!(busy.status, Status::Failed, "{busy:#?}");
    assert!(busy.needs_retry());
    assert!(w.directory.writes().is_empty());
    w.ledger.release(&key, "someone-else").await.unwrap();
    // Full: refused, never truncated.
    let statements: Vec<serde_json::Value> = (0..30)
        .map(|n| {
            cutoff_domain::identity_center::user_deny_statement(
                &cutoff_domain::identity_center::IdentityStoreUserId::parse(&format!(
                    "{n:08x}-0000-4c3d-8e9f-0a1b2c3d4e5f"
                ))
                .unwrap(),
            )
        })
        .take_while({
            let mut size = 40;
            move |s| {
                size += s.to_string().len() + 1;
                size < 5_100
            }
        })
        .collect();
    let full = serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string();
    w.directory
        .state()
        .scps
        .insert(SCP.to_owned(), full.clone());
    let out = r.handle(&revoke("alice@example.com"), "r2").await;
    assert_eq!(out.status, Status::Failed, "{out:#?}");
    assert_eq!(out.error.unwrap().kind, FailureKind::Quota);
    assert_eq!(scp(&w), full);
}

#[tokio::test(start_paused = true)]
async fn the_scp_variant_is_partial_for_a_finding_in_the_management_account() {
    let w = world();
    let mut r = scp_revoker(&w);
    r.config.management_account = Some(Account::parse(MEMBER).unwrap());
    let out = r.handle(&revoke("alice@example.com"), "r1").await;
    assert_eq!(out.status, Status::Partial, "{out:#?}");
    assert!(
        denies_user(&scp(&w), &alice()),
        "the other accounts are covered"
    );
    assert_eq!(out.still_works.len(), 1);
    // Not retried: no retry makes an SCP reach the management account.
    assert!(!out.needs_retry());
}

#[tokio::test(start_paused = true)]
async fn a_slow_directory_and_many_sets_end_by_the_containments_deadline() {
    let w = world();
    let alice = alice();
    for n in 0..40 {
        let arn = format!("arn:aws:sso:::permissionSet/ssoins-7223a4f1b1a8e2c0/ps-slow{n:012}");
        w.directory
            .add_permission_set(&arn, &format!("Slow{n:02}"), None);
        w.directory.assign(alice.as_str(), OTHER, &arn);
    }
    w.directory.state().latency = std::time::Duration::from_millis(500);
    w.directory.state().plan = ProvisionPlan::Never;
    let started = tokio::time::Instant::now();
    let out = revoker(&w).handle(&revoke("alice@example.com"), "r").await;
    let budget = RevokeConfig::default().identity_center_wait;
    // One call may be in flight at the deadline.
    assert!(
        started.elapsed() <= budget + std::time::Duration::from_millis(600),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(out.status, Status::Partial | Status::Failed),
        "{out:#?}"
    );
    assert!(out.needs_retry());
}

#[tokio::test(start_paused = true)]
async fn a_containment_ends_by_the_invocations_deadline_when_that_comes_first() {
    let w = world();
    w.directory.state().plan = ProvisionPlan::Never;
    let started = tokio::time::Instant::now();
    let deadline = started + std::time::Duration::from_secs(10);
    let out = crate::revoke::within_invocation(
        deadline,
        revoker(&w).handle(&revoke("alice@example.com"), "r"),
    )
    .await;
    assert!(
        started.elapsed() <= std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status, Status::Partial, "{out:#?}");
}

#[tokio::test(start_paused = true)]
async fn the_scp_variant_is_partial_where_its_policy_is_not_attached() {
    let w = world();
    let r = scp_revoker(&w);
    // Attached to another OU only.
    w.directory
        .state()
        .scp_targets
        .insert(SCP.to_owned(), vec!["ou-a1b2-sandbox".to_owned()]);
    let out = r.handle(&revoke("alice@example.com"), "r1").await;
    assert_eq!(out.status, Status::Partial, "{out:#?}");
    assert!(out.detail.contains("not attached"), "{}", out.detail);
    assert!(!out.needs_retry(), "attaching it is a person's job");
    // Attached to the account's OU: applied.
    w.directory
        .state()
        .scp_targets
        .insert(SCP.to_owned(), vec!["ou-a1b2-workloads".to_owned()]);
    let mut again = revoke("alice@example.com");
    again.trigger.finding_id = Some("gd-sso-9".into());
    let out = r.handle(&again, "r2").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
}

#[tokio::test(start_paused = true)]
async fn the_scp_variant_writes_nothing_without_its_lock() {
    let w = world();
    let r = scp_revoker(&w);
    w.ledger
        .fail("acquire", &[cutoff_aws::ErrorKind::AccessDenied; 4]);
    let out = r.handle(&revoke("alice@example.com"), "r1").await;
    assert_eq!(out.status, Status::Failed, "{out:#?}");
    assert!(out.needs_retry());
    assert!(w.directory.writes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_release_by_identity_store_id_reaches_a_user_renamed_since_and_keeps_others_key_records()
{
    let w = world();
    let mut with_key = revoke("alice@example.com");
    with_key.target.access_key_id =
        Some(cutoff_domain::principal::AccessKeyId::parse("ASIASSOSESSIONKEY001").unwrap());
    let out = revoker(&w).handle(&with_key, "r1").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    // Another user's session of the same role is on record too.
    let other = cutoff_domain::coverage::KeyRecord {
        access_key_id: cutoff_domain::principal::AccessKeyId::parse("ASIAOTHERSESSION0001")
            .unwrap(),
        cutoff: cutoff_domain::policy::Cutoff::at_or_after(t0()),
        finding: Some("other".to_owned()),
        seen_only: false,
    };
    let key = w.ledger.state().keys().keys().next().unwrap().clone();
    w.ledger
        .seed_key(&key, other, t0() + chrono::Duration::days(1));
    // Renamed: her old name finds nobody, her id still names her.
    w.directory.state().users.clear();
    let released = revoker(&w).handle(&release(ALICE), "r2").await;
    assert_eq!(released.status, Status::Released, "{released:#?}");
    assert!(!denies_user(&w.directory.inline(ADMIN).unwrap(), &alice()));
    assert_eq!(w.ledger.state().keys()[&key].len(), 2, "no record dropped");
    // A revocation never takes an id for a name.
    let out = revoker(&w).handle(&revoke(ALICE), "r3").await;
    assert_eq!(out.status, Status::Failed, "{out:#?}");
    assert_eq!(out.error.unwrap().kind, FailureKind::NotFound);
}
