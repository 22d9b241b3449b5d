//! The follow-up against in-memory accounts and event histories (moto serves no
//! `LookupEvents`; the SDK's side of it is tested with the SDK's mock client in
//! `cutoff_aws::cloudtrail`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::*;
use crate::revoke::RevokeConfig;
use cutoff_aws::dynamodb::fake::FakeLedger;
use cutoff_aws::iam::fake::FakeIam;
use cutoff_aws::sts::fake::FakeAccess;
use cutoff_domain::clock::FixedClock;
use cutoff_domain::outcome::Trigger;
use cutoff_domain::policy::{PolicyDocument, SESSION_POLICY_NAME, SessionPrincipal};
use cutoff_domain::principal::{AccountScope, SessionName, UniqueId};
use cutoff_domain::triage::Source;

const HOME: &str = "999988887777";
const MEMBER: &str = "111122223333";
const OTHER: &str = "444455556666";
const STOLEN: &str = "ASIASTOLENKEY0000001";
const IAM_REGION: &str = "us-east-1";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap()
}

fn minutes_ago(m: i64) -> DateTime<Utc> {
    now() - chrono::Duration::minutes(m)
}

type TestRevoker = Revoker<FakeAccess, FixedClock, FakeLedger>;

fn revoker(access: &FakeAccess) -> TestRevoker {
    Revoker::new(
        access.clone(),
        FixedClock::at(now()),
        RevokeConfig {
            accounts: Some(AccountScope {
                organization: None,
                accounts: Some(
                    [HOME, MEMBER, OTHER]
                        .iter()
                        .map(|a| Account::parse(a).unwrap())
                        .collect(),
                ),
            }),
            ..RevokeConfig::default()
        },
    )
    .with_ledger(FakeLedger::default())
}

fn role_id(fake: &FakeIam, role: &str) -> String {
    fake.state().roles[role].unique_id.clone()
}

/// The finding's revocation: the origin role denied for the stolen key, which writes
/// the key record a follow-up is checked against.
async fn revoke_origin(r: &TestRevoker, kind: TargetKind, name: &str) -> RevocationRequest {
    let request = RevocationRequest {
        action: ManualAction::Revoke,
        target: Target {
            access_key_id: Some(AccessKeyId::parse(STOLEN).unwrap()),
            ..Target::new(
                kind,
                Account::parse(MEMBER).unwrap(),
                PrincipalName::parse(name).unwrap(),
            )
        },
        scope: Scope::Role,
        trigger: Trigger {
            source: Source::GuardDuty,
            finding_id: Some("finding-1".into()),
            ..Trigger::default()
        },
        first_activity: Some(minutes_ago(120)),
        expected_unique_id: None,
        activity_region: Some("eu-west-1".into()),
        event_time: None,
        dry_run: false,
        force: false,
        needs_approval: false,
    };
    let out = r.handle(&request, "origin").await;
    assert_eq!(out.status, Status::Applied, "{out:#?}");
    request
}

fn task(request: &RevocationRequest, run: u8) -> FollowUpTask {
    FollowUpTask::after(request, &request.target, now(), run).unwrap()
}

/// An `AssumeRole` record of `by` minting `key` on `role` in `account`.
fn assume_role(
    id: &str,
    account: &str,
    role: &str,
    role_id: &str,
    session: &str,
    key: &str,
) -> Value {
    json!({
        "eventVersion": "1.08", "eventID": id, "eventSource": "sts.amazonaws.com",
        "eventName": "AssumeRole", "eventTime": "2026-12-05T10:30:00Z", "awsRegion": IAM_REGION,
        "requestParameters": {"roleArn": format!("arn:aws:iam::{account}:role/{role}"), "roleSessionName": session},
        "responseElements": {
            "credentials": {"accessKeyId": key},
            "assumedRoleUser": {
                "assumedRoleId": format!("{role_id}:{session}"),
                "arn": format!("arn:aws:sts::{account}:assumed-role/{role}/{session}")
            }
        }
    })
}

fn session_cutoff(
    fake: &FakeIam,
    role: &str,
    session: &str,
) -> Option<cutoff_domain::policy::Cutoff> {
    let principal = IamPrincipal::role(PrincipalName::parse(role).unwrap());
    let document = fake.inline(&principal, SESSION_POLICY_NAME)?;
    PolicyDocument::parse(&document)
        .ok()?
        .session_cutoff(&SessionPrincipal::new(
            UniqueId::parse(&role_id(fake, role)).unwrap(),
            SessionName::parse(session).unwrap(),
        ))
}

#[tokio::test(start_paused = true)]
async fn a_chain_of_three_sessions_across_two_accounts_is_revoked_and_a_created_key_ends_inactive()
{
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    let other = access.account(OTHER);
    member.add_role("deploy", "/", &[]);
    member.add_role("deploy-admin", "/", &[]);
    other.add_role("admin", "/", &[("cutoff:owner", "platform")]);
    other.add_role("break-glass", "/", &[]);
    other.add_user("backdoor", &[]);
    other.add_access_key("backdoor", "AKIABACKDOORKEY00001");
    let r = revoker(&access);
    let origin = revoke_origin(&r, TargetKind::Role, "deploy").await;

    // The stolen key assumed a role in its own account, that session one in another
    // account, and that one a third role there, which created a key.
    let (m, o) = (
        access.histories.of(MEMBER, IAM_REGION),
        access.histories.of(OTHER, IAM_REGION),
    );
    m.add(
        STOLEN,
        minutes_ago(90),
        assume_role(
            "e1",
            MEMBER,
            "deploy-admin",
            &role_id(&member, "deploy-admin"),
            "hop-1",
            "ASIALINKONEKEY000001",
        ),
    );
    m.add(
        "ASIALINKONEKEY000001",
        minutes_ago(80),
        assume_role(
            "e2",
            OTHER,
            "admin",
            &role_id(&other, "admin"),
            "hop-2",
            "ASIALINKTWOKEY000001",
        ),
    );
    o.add(
        "ASIALINKTWOKEY000001",
        minutes_ago(70),
        assume_role(
            "e3",
            OTHER,
            "break-glass",
            &role_id(&other, "break-glass"),
            "hop-3",
            "ASIALINKTHREEKEY0001",
        ),
    );
    o.add("ASIALINKTHREEKEY0001", minutes_ago(60), json!({
        "eventID": "e4", "eventName": "CreateAccessKey", "eventSource": "iam.amazonaws.com",
        "eventTime": "2026-12-05T11:00:00Z",
        "requestParameters": {"userName": "backdoor"},
        "responseElements": {"accessKey": {"accessKeyId": "AKIABACKDOORKEY00001", "userName": "backdoor", "status": "Active"}}
    }));
    o.add(
        "ASIALINKTHREEKEY0001",
        minutes_ago(59),
        json!({
            "eventID": "e5", "eventName": "CreateUser", "eventSource": "iam.amazonaws.com",
            "requestParameters": {"userName": "another-door"}
        }),
    );

    let done = r.follow_up(&task(&origin, 1), "run-1", false).await;
    let outcome = &done.outcome;
    assert_eq!(outcome.status, Status::Applied, "{outcome:#?}");
    let chain = outcome.chain.as_ref().unwrap();
    assert!(chain.complete, "{chain:#?}");
    assert_eq!(chain.links.len(), 5, "{chain:#?}");
    assert!(chain.links.iter().all(|l| l.new));

    // Each minted session is denied on its own session, in its own account.
    for (fake, role, session) in [
        (&member, "deploy-admin", "hop-1"),
        (&other, "admin", "hop-2"),
        (&other, "break-glass", "hop-3"),
    ] {
        assert!(
            session_cutoff(fake, role, session).is_some(),
            "{role}/{session}"
        );
    }
    // The created key is inactive, its user not denied; the created user is listed.
    assert_eq!(
        other
            .key_status("backdoor", "AKIABACKDOORKEY00001")
            .as_deref(),
        Some("Inactive")
    );
    assert!(
        other
            .inline(
                &IamPrincipal::user(PrincipalName::parse("backdoor").unwrap()),
                cutoff_domain::policy::ROLE_WIDE_POLICY_NAME
            )
            .is_none()
    );
    assert!(
        chain
            .links
            .iter()
            .any(|l| l.found.contains("CreateUser") && l.result.starts_with("reported"))
    );
    // Each owner is told: four outcomes (three sessions, one key), the platform team's among them.
    assert_eq!(done.contained.len(), 4);
    assert!(
        done.contained
            .iter()
            .all(|o| o.trigger.source == Source::Chain && o.status == Status::Applied)
    );
    assert!(
        done.contained
            .iter()
            .any(|o| o.owner.team.as_deref() == Some("platform"))
    );
    // Regional STS calls are read where the finding saw the activity, IAM's in us-east-1.
    let lookups = access.histories.lookups();
    assert!(
        lookups.contains(&format!("{MEMBER} eu-west-1 key {STOLEN}")),
        "{lookups:?}"
    );
    assert!(
        lookups.contains(&format!("{OTHER} us-east-1 key ASIALINKTWOKEY000001")),
        "{lookups:?}"
    );

    // The run is in the origin's audit trail.
    let r_ledger = r.ledger.state();
    assert!(
        r_ledger
            .entries
            .iter()
            .any(|e| e.action == FOLLOW_UP_ACTION)
    );
}

#[tokio::test(start_paused = true)]
async fn a_loop_ends_and_late_events_are_found_by_a_later_run_and_nothing_is_new_twice() {
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    member.add_role("deploy", "/", &[]);
    member.add_role("self-trusting", "/", &[]);
    let r = revoker(&access);
    let origin = revoke_origin(&r, TargetKind::Role, "deploy").await;

    // Run 1: CloudTrail has not delivered anything yet.
    let first = r.follow_up(&task(&origin, 1), "run-1", false).await;
    assert_eq!(first.outcome.status, Status::Applied);
    assert!(first.outcome.chain.as_ref().unwrap().links.is_empty());
    assert!(first.contained.is_empty());

    // Late: the stolen key assumed a role, and that session named the stolen key again
    // (a record cannot mint a key twice; a forged or replayed one must not loop).
    let m = access.histories.of(MEMBER, IAM_REGION);
    let id = role_id(&member, "self-trusting");
    m.add(
        STOLEN,
        minutes_ago(50),
        assume_role(
            "e1",
            MEMBER,
            "self-trusting",
            &id,
            "again",
            "ASIALINKONEKEY000001",
        ),
    );
    m.add(
        "ASIALINKONEKEY000001",
        minutes_ago(40),
        assume_role("e2", MEMBER, "self-trusting", &id, "loop", STOLEN),
    );

    let second = r.follow_up(&task(&origin, 2), "run-2", false).await;
    let chain = second.outcome.chain.as_ref().unwrap();
    assert_eq!(chain.links.len(), 2, "{chain:#?}");
    assert!(chain.links.iter().all(|l| l.new));
    assert!(session_cutoff(&member, "self-trusting", "again").is_some());
    let looked_up_stolen = access
        .histories
        .lookups()
        .iter()
        .filter(|l| l.ends_with(&format!("key {STOLEN}")))
        .count();

    // Run 3: the same links, none new, nothing written or told again.
    let writes_before = member.writes().len();
    let third = r.follow_up(&task(&origin, 3), "run-3", false).await;
    let chain = third.outcome.chain.as_ref().unwrap();
    assert_eq!(chain.links.len(), 2);
    assert!(chain.links.iter().all(|l| !l.new), "{chain:#?}");
    assert!(third.contained.is_empty(), "{:#?}", third.contained);
    assert_eq!(member.writes().len(), writes_before);
    // Each run looks the stolen key up once per region, the loop notwithstanding.
    let after = access
        .histories
        .lookups()
        .iter()
        .filter(|l| l.ends_with(&format!("key {STOLEN}")))
        .count();
    assert_eq!(after - looked_up_stolen, 2, "us-east-1 and eu-west-1");
}

#[tokio::test(start_paused = true)]
async fn a_users_session_token_leads_to_the_long_term_key_behind_it_which_ends_inactive() {
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    member.add_user("ci", &[]);
    member.add_access_key("ci", "AKIALONGTERMKEY00001");
    let r = revoker(&access);
    let origin = revoke_origin(&r, TargetKind::User, "ci").await;
    // The record of the GetSessionToken that minted the stolen key, made with the
    // user's long-term key (found by the call's name: it was not made with the
    // stolen key). Another user's token is not this one.
    let m = access.histories.of(MEMBER, IAM_REGION);
    let token = |id: &str, with: &str, minted: &str| {
        json!({
            "eventID": id, "eventName": "GetSessionToken", "eventSource": "sts.amazonaws.com",
            "eventTime": "2026-12-05T09:00:00Z",
            "userIdentity": {"type": "IAMUser", "userName": "ci", "accountId": MEMBER, "accessKeyId": with},
            "responseElements": {"credentials": {"accessKeyId": minted}}
        })
    };
    m.add(
        "AKIALONGTERMKEY00001",
        minutes_ago(180),
        token("t1", "AKIALONGTERMKEY00001", STOLEN),
    );
    m.add(
        "AKIAOTHERUSERKEY0001",
        minutes_ago(170),
        token("t2", "AKIAOTHERUSERKEY0001", "ASIAOTHERTOKEN000001"),
    );

    let done = r.follow_up(&task(&origin, 1), "run-1", false).await;
    assert_eq!(done.outcome.status, Status::Applied, "{:#?}", done.outcome);
    assert_eq!(
        member.key_status("ci", "AKIALONGTERMKEY00001").as_deref(),
        Some("Inactive")
    );
    let chain = done.outcome.chain.as_ref().unwrap();
    assert_eq!(chain.links.len(), 1, "{chain:#?}");
    // The long-term key is followed too (it is the attacker's), in the same account.
    assert!(
        access
            .histories
            .lookups()
            .iter()
            .any(|l| l.ends_with("key AKIALONGTERMKEY00001"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_forged_task_for_a_key_cutoff_never_revoked_reads_nothing_and_changes_nothing() {
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    member.add_role("deploy", "/", &[]);
    member.add_role("victim", "/", &[]);
    let r = revoker(&access);
    let origin = revoke_origin(&r, TargetKind::Role, "deploy").await;
    // An insider who may invoke the revoker names a key of the victim's, or the right
    // key with another finding.
    let mut other_principal = task(&origin, 1);
    other_principal.origin.name = PrincipalName::parse("victim").unwrap();
    let mut other_key = task(&origin, 1);
    other_key.origin.access_key_id = Some(AccessKeyId::parse("ASIAVICTIMSKEY000001").unwrap());
    for forged in [other_principal, other_key] {
        let done = r.follow_up(&forged, "forged", false).await;
        assert_eq!(done.outcome.status, Status::Failed, "{forged:?}");
        assert_eq!(
            done.outcome.error.as_ref().unwrap().kind,
            FailureKind::Refused
        );
        assert!(done.contained.is_empty());
    }
    assert!(access.histories.lookups().is_empty());
}

#[tokio::test(start_paused = true)]
async fn what_could_not_be_read_makes_the_run_partial_and_says_what() {
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    member.add_role("deploy", "/", &[]);
    let r = revoker(&access);
    let origin = revoke_origin(&r, TargetKind::Role, "deploy").await;
    let m = access.histories.of(MEMBER, IAM_REGION);
    // A session in an account outside the Organization list: reported, not read.
    m.add(
        STOLEN,
        minutes_ago(50),
        assume_role(
            "e1",
            "777788889999",
            "outside",
            "AROAOUTSIDEROLEID001",
            "xx",
            "ASIAOUTSIDEKEY000001",
        ),
    );
    // A record that does not read.
    m.add(
        STOLEN,
        minutes_ago(40),
        json!({"eventID": "bad-1", "eventName": "AssumeRole", "responseElements": {}}),
    );
    access
        .histories
        .of(MEMBER, "eu-west-1")
        .fail("LookupEvents", &[cutoff_aws::ErrorKind::AccessDenied]);

    let done = r.follow_up(&task(&origin, 1), "run-1", false).await;
    assert_eq!(done.outcome.status, Status::Partial, "{:#?}", done.outcome);
    let gaps = done.outcome.chain.as_ref().unwrap().gaps.join("\n");
    assert!(gaps.contains("777788889999"), "{gaps}");
    assert!(gaps.contains("bad-1"), "{gaps}");
    assert!(gaps.contains("eu-west-1"), "{gaps}");
    assert!(!done.outcome.still_works.is_empty());
    assert!(
        !access
            .histories
            .lookups()
            .iter()
            .any(|l| l.starts_with("777788889999"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_walk_that_outgrows_its_time_budget_stops_and_says_so() {
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    member.add_role("deploy", "/", &[]);
    member.add_role("fan", "/", &[]);
    let mut r = revoker(&access);
    r.config.follow_up_budget = std::time::Duration::from_secs(10);
    let origin = revoke_origin(&r, TargetKind::Role, "deploy").await;
    let m = access.histories.of(MEMBER, IAM_REGION);
    let id = role_id(&member, "fan");
    // A wide chain in one account: every lookup waits for the account's pacer.
    for i in 0..90 {
        m.add(
            STOLEN,
            minutes_ago(50),
            assume_role(
                &format!("e{i}"),
                MEMBER,
                "fan",
                &id,
                &format!("s{i:02}"),
                &format!("ASIAFANOUT{i:010}"),
            ),
        );
    }
    let done = r.follow_up(&task(&origin, 1), "run-1", false).await;
    assert_eq!(done.outcome.status, Status::Partial);
    let gaps = done.outcome.chain.as_ref().unwrap().gaps.join("\n");
    assert!(gaps.contains("look in CloudTrail"), "{gaps}");
    // What was found is still contained (ninety sessions of one role outgrow its
    // session policy: escalated to the whole role, as any session deny is).
    let links = &done.outcome.chain.as_ref().unwrap().links;
    assert_eq!(links.len(), 90);
    assert!(
        links
            .iter()
            .all(|l| l.result.starts_with("applied") || l.result.starts_with("already_revoked")),
        "{links:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_session_token_record_of_another_user_never_turns_the_follow_up_on_that_user() {
    // A forged finding names a throwaway user and a victim's key: the record that
    // minted the key was the victim's call, which contradicts the finding.
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    member.add_user("throwaway", &[]);
    member.add_user("victim", &[]);
    member.add_access_key("victim", "AKIAVICTIMSKEY000001");
    let r = revoker(&access);
    let origin = revoke_origin(&r, TargetKind::User, "throwaway").await;
    access.histories.of(MEMBER, IAM_REGION).add(
        "AKIAVICTIMSKEY000001",
        minutes_ago(180),
        json!({
            "eventID": "t9", "eventName": "GetSessionToken", "eventSource": "sts.amazonaws.com",
            "eventTime": "2026-12-05T09:00:00Z",
            "userIdentity": {"type": "IAMUser", "userName": "victim", "accountId": MEMBER, "accessKeyId": "AKIAVICTIMSKEY000001"},
            "responseElements": {"credentials": {"accessKeyId": STOLEN}}
        }),
    );
    let done = r.follow_up(&task(&origin, 1), "run-1", false).await;
    assert_eq!(done.outcome.status, Status::Partial, "{:#?}", done.outcome);
    let chain = done.outcome.chain.as_ref().unwrap();
    assert!(chain.links.is_empty(), "{chain:#?}");
    assert!(
        chain.gaps.join(" ").contains("was not made by"),
        "{chain:#?}"
    );
    assert_eq!(
        member
            .key_status("victim", "AKIAVICTIMSKEY000001")
            .as_deref(),
        Some("Active")
    );
    let victim = IamPrincipal::user(PrincipalName::parse("victim").unwrap());
    assert!(
        member
            .inline(&victim, cutoff_domain::policy::ROLE_WIDE_POLICY_NAME)
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_deployment_follows_the_chain_and_writes_nothing() {
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    member.add_role("deploy", "/", &[]);
    member.add_role("deploy-admin", "/", &[]);
    member.add_user("backdoor", &[]);
    member.add_access_key("backdoor", "AKIABACKDOORKEY00001");
    let r = revoker(&access);
    let origin = revoke_origin(&r, TargetKind::Role, "deploy").await;
    let m = access.histories.of(MEMBER, IAM_REGION);
    let admin = role_id(&member, "deploy-admin");
    m.add(
        STOLEN,
        minutes_ago(90),
        assume_role(
            "e1",
            MEMBER,
            "deploy-admin",
            &admin,
            "hop-1",
            "ASIALINKONEKEY000001",
        ),
    );
    m.add(
        STOLEN,
        minutes_ago(80),
        json!({
            "eventID": "e2", "eventName": "CreateAccessKey", "eventSource": "iam.amazonaws.com",
            "eventTime": "2026-12-05T11:00:00Z",
            "responseElements": {"accessKey": {"accessKeyId": "AKIABACKDOORKEY00001", "userName": "backdoor", "status": "Active"}}
        }),
    );
    let writes = member.writes().len();
    let done = r.follow_up(&task(&origin, 1), "run-1", true).await;
    let chain = done.outcome.chain.as_ref().unwrap();
    assert_eq!(chain.links.len(), 2, "{chain:#?}");
    assert_eq!(member.writes().len(), writes, "a dry run writes nothing");
    assert_eq!(done.contained.len(), 2);
    assert!(
        done.contained.iter().all(|o| o.status == Status::DryRun),
        "{:#?}",
        done.contained
    );
    assert_eq!(
        member
            .key_status("backdoor", "AKIABACKDOORKEY00001")
            .as_deref(),
        Some("Active")
    );
}

#[tokio::test(start_paused = true)]
async fn a_deny_released_since_the_last_run_is_written_again_and_its_owner_told() {
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    member.add_role("deploy", "/", &[]);
    member.add_role("deploy-admin", "/", &[]);
    let r = revoker(&access);
    let origin = revoke_origin(&r, TargetKind::Role, "deploy").await;
    let admin = role_id(&member, "deploy-admin");
    access.histories.of(MEMBER, IAM_REGION).add(
        STOLEN,
        minutes_ago(90),
        assume_role(
            "e1",
            MEMBER,
            "deploy-admin",
            &admin,
            "hop-1",
            "ASIALINKONEKEY000001",
        ),
    );
    let first = r.follow_up(&task(&origin, 1), "run-1", false).await;
    assert_eq!(first.contained.len(), 1);
    // Someone removes the session deny; the next run finds the link again (not new).
    member
        .state()
        .roles
        .get_mut("deploy-admin")
        .unwrap()
        .inline
        .clear();
    r.clock.advance(chrono::Duration::minutes(14));
    let second = r.follow_up(&task(&origin, 2), "run-2", false).await;
    let chain = second.outcome.chain.as_ref().unwrap();
    assert!(chain.links.iter().all(|l| !l.new), "{chain:#?}");
    assert!(session_cutoff(&member, "deploy-admin", "hop-1").is_some());
    assert_eq!(
        second.contained.len(),
        1,
        "a write is told even for a known link"
    );
    // Left alone, the next run writes nothing and tells nobody.
    r.clock.advance(chrono::Duration::minutes(45));
    let third = r.follow_up(&task(&origin, 3), "run-3", false).await;
    assert!(third.contained.is_empty(), "{:#?}", third.contained);
}

#[tokio::test(start_paused = true)]
async fn a_second_finding_about_a_covered_key_is_followed_and_a_key_covered_only_by_a_claim_is_not()
{
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    member.add_role("deploy", "/", &[]);
    let r = revoker(&access);
    let origin = revoke_origin(&r, TargetKind::Role, "deploy").await;
    // GuardDuty raised a second finding about the same key: its revocation found the
    // key covered already, and its follow-up runs on the first one's record.
    let mut second = task(&origin, 1);
    second.finding_id = "finding-2".into();
    let done = r.follow_up(&second, "run-1", false).await;
    assert_eq!(done.outcome.status, Status::Applied, "{:#?}", done.outcome);

    // A key the ledger holds only as *seen* with a finding (covered by its claim):
    // told, not followed, and not a failure.
    let other = FakeAccess::new(HOME);
    other.account(MEMBER).add_role("deploy", "/", &[]);
    let r = revoker(&other);
    let key = AccessKeyId::parse(STOLEN).unwrap();
    r.ledger.seed_key(
        &principal_key(&origin.target),
        cutoff_domain::coverage::KeyRecord {
            access_key_id: key,
            cutoff: cutoff_domain::policy::Cutoff::parse("2026-12-05T09:00:00Z").unwrap(),
            finding: Some(crate::revoke::short_hash("finding-1")),
            seen_only: true,
        },
        now() + chrono::Duration::days(1),
    );
    let done = r.follow_up(&task(&origin, 1), "run-1", false).await;
    assert_eq!(done.outcome.status, Status::Alerted, "{:#?}", done.outcome);
    assert!(
        done.outcome.detail.contains("not followed"),
        "{}",
        done.outcome.detail
    );
    assert!(other.histories.lookups().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_chains_revocations_use_their_findings_budget_not_the_accounts() {
    // The account allows one automatic revocation an hour: the finding's own. The
    // sessions its key minted are still revoked, on the finding's budget; a thief who
    // mints cheap sessions cannot use up the account's slots for other findings.
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    for role in ["deploy", "admin-a", "admin-b", "other"] {
        member.add_role(role, "/", &[]);
    }
    let mut r = revoker(&access);
    r.config.max_revocations_per_account_hour = Some(1);
    let origin = revoke_origin(&r, TargetKind::Role, "deploy").await;
    let m = access.histories.of(MEMBER, IAM_REGION);
    for (event, role, key) in [
        ("e1", "admin-a", "ASIALINKONEKEY000001"),
        ("e2", "admin-b", "ASIALINKTWOKEY000001"),
    ] {
        let id = role_id(&member, role);
        m.add(
            STOLEN,
            minutes_ago(50),
            assume_role(event, MEMBER, role, &id, "hop", key),
        );
    }
    let done = r.follow_up(&task(&origin, 1), "run-1", false).await;
    assert_eq!(done.outcome.status, Status::Applied, "{:#?}", done.outcome);
    assert!(session_cutoff(&member, "admin-a", "hop").is_some());
    assert!(session_cutoff(&member, "admin-b", "hop").is_some());
    // The account's own budget is as the finding left it: spent, for anything else.
    let mut another = origin.clone();
    another.target.name = PrincipalName::parse("other").unwrap();
    another.target.access_key_id = None;
    another.trigger.finding_id = Some("finding-9".into());
    let refused = r.handle(&another, "another").await;
    assert_eq!(
        refused.error.as_ref().map(|e| e.kind),
        Some(FailureKind::CircuitOpen),
        "{refused:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn past_its_deadline_a_run_starts_no_containment_and_says_what_is_left() {
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    member.add_role("deploy", "/", &[]);
    member.add_role("deploy-admin", "/", &[]);
    let mut r = revoker(&access);
    r.config.follow_up_deadline = std::time::Duration::ZERO;
    let origin = revoke_origin(&r, TargetKind::Role, "deploy").await;
    let id = role_id(&member, "deploy-admin");
    access.histories.of(MEMBER, IAM_REGION).add(
        STOLEN,
        minutes_ago(50),
        assume_role(
            "e1",
            MEMBER,
            "deploy-admin",
            &id,
            "hop-1",
            "ASIALINKONEKEY000001",
        ),
    );
    let done = r.follow_up(&task(&origin, 1), "run-1", false).await;
    assert_eq!(done.outcome.status, Status::Partial, "{:#?}", done.outcome);
    let chain = done.outcome.chain.as_ref().unwrap();
    assert!(chain.gaps.join(" ").contains("out of time"), "{chain:#?}");
    assert!(session_cutoff(&member, "deploy-admin", "hop-1").is_none());
    // The next run, in time, contains it.
    r.config.follow_up_deadline = std::time::Duration::from_secs(50);
    let next = r.follow_up(&task(&origin, 2), "run-2", false).await;
    assert_eq!(next.outcome.status, Status::Applied, "{:#?}", next.outcome);
    assert!(session_cutoff(&member, "deploy-admin", "hop-1").is_some());
}
