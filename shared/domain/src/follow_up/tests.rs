#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::chain::MintedSession;
use crate::principal::{SessionName, UniqueId};
use chrono::TimeZone;
use serde_json::json;

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 5, h, m, 0).unwrap()
}

fn key(k: &str) -> AccessKeyId {
    AccessKeyId::parse(k).unwrap()
}

fn account(a: &str) -> Account {
    Account::parse(a).unwrap()
}

fn name(n: &str) -> PrincipalName {
    PrincipalName::parse(n).unwrap()
}

fn revocation() -> RevocationRequest {
    serde_json::from_value(json!({
        "action": "revoke",
        "target": {"kind": "role", "account": "111122223333", "name": "deploy",
                   "access_key_id": "ASIASTOLENKEY0000001", "session": null},
        "trigger": {"source": "guardduty", "finding_id": "f-1", "finding_type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
                    "severity": 8.0, "updated_at": null, "requested_by": null, "reason": null},
        "first_activity": "2026-12-05T01:00:00Z",
        "activity_region": "eu-west-1"
    }))
    .unwrap()
}

fn task() -> FollowUpTask {
    let request = revocation();
    FollowUpTask::after(&request, &request.target, t(2, 0), 1).unwrap()
}

#[test]
fn a_revocation_with_a_key_and_a_finding_is_followed_three_times_and_nothing_else_is() {
    let request = revocation();
    let tasks: Vec<FollowUpTask> = (1..=RUNS)
        .filter_map(|run| FollowUpTask::after(&request, &request.target, t(2, 0), run))
        .collect();
    assert_eq!(tasks.len(), 3);
    let first = &tasks[0];
    assert_eq!(first.key().unwrap().as_str(), "ASIASTOLENKEY0000001");
    assert_eq!(first.first_activity, Some(t(1, 0)));
    assert_eq!(first.activity_region.as_deref(), Some("eu-west-1"));
    assert_eq!(first.finding_id, "f-1");
    assert_eq!(
        (1..=RUNS)
            .map(|r| run_delay(r).unwrap().num_minutes())
            .collect::<Vec<_>>(),
        [1, 15, 60]
    );
    assert!(FollowUpTask::after(&request, &request.target, t(2, 0), 4).is_none());
    assert!(run_delay(0).is_none());

    let mut no_key = request.clone();
    no_key.target.access_key_id = None;
    let mut dry = request.clone();
    dry.dry_run = true;
    let mut no_finding = request.clone();
    no_finding.trigger.finding_id = None;
    for r in [no_key, dry, no_finding] {
        assert!(
            FollowUpTask::after(&r, &r.target, t(2, 0), 1).is_none(),
            "{r:?}"
        );
    }
}

#[test]
fn an_identity_center_sessions_follow_up_is_a_roles_and_passes_the_check() {
    let mut request = revocation();
    request.target.kind = TargetKind::IdentityCenterRole;
    request.target.name = name("AWSReservedSSO_Admin_0123456789abcdef");
    let task = FollowUpTask::after(&request, &request.target, t(2, 0), 1).unwrap();
    assert_eq!(task.origin.kind, TargetKind::Role);
    assert_eq!(task.check(t(2, 0)), Ok(()));
}

#[test]
fn a_finding_that_says_its_activity_is_later_than_now_is_looked_up_from_now() {
    let mut request = revocation();
    request.first_activity = Some(t(9, 0));
    let task = FollowUpTask::after(&request, &request.target, t(2, 0), 1).unwrap();
    assert_eq!(task.first_activity, Some(t(2, 0)));
    assert_eq!(task.check(t(2, 0)), Ok(()));
}

#[test]
fn the_task_is_the_payload_it_was_written_as_and_nothing_more() {
    let task = task();
    let payload = task.to_payload();
    assert_eq!(FollowUpTask::from_payload(&payload), Some(Ok(task.clone())));
    // Not a follow-up at all: another kind of invoke.
    assert_eq!(
        FollowUpTask::from_payload(&json!({"action": "revoke"})),
        None
    );
    assert_eq!(FollowUpTask::from_payload(&json!([1])), None);
    // A second key, an unknown field: refused, not read around.
    let mut extra = payload.clone();
    extra["action"] = json!("release");
    assert!(FollowUpTask::from_payload(&extra).unwrap().is_err());
    let mut unknown = payload.clone();
    unknown[TASK_FIELD]["force"] = json!(true);
    assert!(FollowUpTask::from_payload(&unknown).unwrap().is_err());
    let mut bad_key = payload;
    bad_key[TASK_FIELD]["origin"]["access_key_id"] = json!("not-a-key");
    assert!(FollowUpTask::from_payload(&bad_key).unwrap().is_err());
}

#[test]
fn a_task_is_checked_before_anything_reads_it() {
    assert_eq!(task().check(t(2, 0)), Ok(()));
    let mut bad = Vec::new();
    let mut no_key = task();
    no_key.origin.access_key_id = None;
    bad.push(no_key);
    let mut run = task();
    run.run = 9;
    bad.push(run);
    let mut region = task();
    region.activity_region = Some("mars-north-1x".to_owned());
    bad.push(region);
    let mut chain = task();
    chain.source = Source::Chain;
    bad.push(chain);
    let mut root = task();
    root.origin.kind = TargetKind::Root;
    bad.push(root);
    let mut future = task();
    future.first_activity = Some(t(3, 0));
    bad.push(future);
    let mut control = task();
    control.finding_id = "f\n1".to_owned();
    bad.push(control);
    for task in bad {
        assert!(task.check(t(2, 0)).is_err(), "{task:?}");
    }
}

#[test]
fn a_schedule_name_is_the_same_for_the_same_run_and_valid_for_scheduler() {
    let first = task();
    let mut second = task();
    second.run = 2;
    let mut other_finding = task();
    other_finding.finding_id = "f-2".to_owned();
    let mut spelled = task();
    spelled.origin.name = name("Deploy");
    assert_eq!(first.schedule_name(), task().schedule_name());
    assert_eq!(first.schedule_name(), spelled.schedule_name());
    assert_ne!(first.schedule_name(), second.schedule_name());
    assert_ne!(first.schedule_name(), other_finding.schedule_name());
    for n in [first.schedule_name(), second.schedule_name()] {
        assert!(n.len() <= 64, "{n}");
        assert!(
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "{n}"
        );
    }
}

fn hop(found: Footprint, by: &str, depth: u32) -> Hop {
    Hop {
        by: key(by),
        account: account("111122223333"),
        depth,
        found,
        event_id: Some("e-7".to_owned()),
        at: Some(t(1, 30)),
    }
}

#[test]
fn a_minted_session_is_revoked_in_its_own_account_on_its_own_session_only() {
    let found = Footprint::Session(MintedSession {
        account: account("444455556666"),
        role: name("admin"),
        role_id: UniqueId::parse("AROAEXAMPLEROLEID0001").unwrap(),
        session: SessionName::parse("pivot").unwrap(),
        access_key_id: key("ASIALINKONEKEY000001"),
    });
    let Containment::Revoke(request) = containment(
        &hop(found, "ASIASTOLENKEY0000001", 1),
        &task(),
        None,
        t(2, 0),
    ) else {
        panic!()
    };
    assert_eq!(request.target.account.as_str(), "444455556666");
    assert_eq!(request.target.kind, TargetKind::Role);
    assert_eq!(request.target.name.as_str(), "admin");
    assert_eq!(request.target.session.as_ref().unwrap().as_str(), "pivot");
    assert_eq!(request.scope, Scope::Session);
    // The role the record names must still be the one IAM has.
    assert_eq!(
        request.expected_unique_id.as_ref().unwrap().as_str(),
        "AROAEXAMPLEROLEID0001"
    );
    // Minted at the time of the call: a cutoff after it covers it.
    assert_eq!(request.first_activity, Some(t(1, 30)));
    assert_eq!(request.trigger.source, Source::Chain);
    assert_eq!(request.trigger.finding_id.as_deref(), Some("f-1"));
    assert!(request.trigger.reason.as_ref().unwrap().contains("pivot"));
    // Made by the follow-up in the revoker itself: a queue message claiming to be one
    // is refused.
    assert!(request.check_queued().unwrap_err().contains("chain"));
}

#[test]
fn a_session_token_denies_its_user_and_deactivates_the_long_term_key_behind_it() {
    let found = Footprint::SessionToken {
        user: None,
        access_key_id: key("ASIATOKENKEY00000001"),
        with_key: key("AKIALONGTERMKEY00001"),
    };
    let Containment::Revoke(request) = containment(
        &hop(found, "AKIALONGTERMKEY00001", 1),
        &task(),
        Some(&name("ci")),
        t(2, 0),
    ) else {
        panic!()
    };
    assert_eq!(request.target.kind, TargetKind::User);
    assert_eq!(request.target.name.as_str(), "ci");
    assert_eq!(
        request.target.access_key_id.as_ref().unwrap().as_str(),
        "AKIALONGTERMKEY00001"
    );
    assert_eq!(request.scope, Scope::Role);
    // With no user in the record and none known: told, never guessed.
    let unnamed = Footprint::SessionToken {
        user: None,
        access_key_id: key("ASIATOKENKEY00000001"),
        with_key: key("AKIALONGTERMKEY00001"),
    };
    assert!(matches!(
        containment(
            &hop(unnamed, "AKIALONGTERMKEY00001", 1),
            &task(),
            None,
            t(2, 0)
        ),
        Containment::Report(_)
    ));
}

#[test]
fn a_federation_token_denies_the_user_who_minted_it_and_that_users_key() {
    let found = Footprint::FederationToken {
        user: Some(name("ci")),
        name: "x".to_owned(),
        access_key_id: key("ASIAFEDERATIONKEY001"),
    };
    let Containment::Revoke(request) = containment(
        &hop(found, "AKIALONGTERMKEY00001", 2),
        &task(),
        None,
        t(2, 0),
    ) else {
        panic!()
    };
    assert_eq!(request.target.name.as_str(), "ci");
    assert_eq!(
        request.target.access_key_id.as_ref().unwrap().as_str(),
        "AKIALONGTERMKEY00001"
    );
}

#[test]
fn a_created_key_is_deactivated_without_denying_its_user_and_the_rest_is_reported() {
    let found = Footprint::AccessKey {
        user: Some(name("backdoor")),
        access_key_id: key("AKIANEWBACKDOORKEY01"),
    };
    assert_eq!(
        containment(
            &hop(found, "ASIASTOLENKEY0000001", 1),
            &task(),
            None,
            t(2, 0)
        ),
        Containment::Deactivate {
            account: account("111122223333"),
            user: name("backdoor"),
            key: key("AKIANEWBACKDOORKEY01"),
        }
    );
    for found in [
        Footprint::RootSession {
            account: account("444455556666"),
        },
        Footprint::Persistence {
            call: "CreateUser".to_owned(),
            on: "backdoor".to_owned(),
        },
    ] {
        let Containment::Report(text) = containment(
            &hop(found.clone(), "ASIASTOLENKEY0000001", 1),
            &task(),
            None,
            t(2, 0),
        ) else {
            panic!("{found:?}")
        };
        assert!(!text.is_empty());
    }
}

#[test]
fn a_link_has_the_same_id_in_every_run() {
    let found = Footprint::Persistence {
        call: "CreateUser".to_owned(),
        on: "backdoor".to_owned(),
    };
    let one = hop(found.clone(), "ASIASTOLENKEY0000001", 1);
    let mut other_event = one.clone();
    other_event.event_id = Some("e-8".to_owned());
    assert_eq!(ChainLink::id_of(&one), ChainLink::id_of(&one.clone()));
    assert_ne!(ChainLink::id_of(&one), ChainLink::id_of(&other_event));
}

#[test]
fn a_link_made_before_the_findings_first_activity_is_reported_not_contained() {
    // The owner used the key before the thief did (an instance's own credentials):
    // what it did then is not the thief's for sure.
    let session = || {
        Footprint::Session(MintedSession {
            account: account("444455556666"),
            role: name("admin"),
            role_id: UniqueId::parse("AROAEXAMPLEROLEID0001").unwrap(),
            session: SessionName::parse("nightly").unwrap(),
            access_key_id: key("ASIALINKONEKEY000001"),
        })
    };
    let mut early = hop(session(), "ASIASTOLENKEY0000001", 1);
    early.at = Some(t(0, 59));
    let Containment::Report(text) = containment(&early, &task(), None, t(2, 0)) else {
        panic!()
    };
    assert!(
        text.contains("before the finding's first activity"),
        "{text}"
    );
    let mut timeless = early.clone();
    timeless.at = None;
    assert!(matches!(
        containment(&timeless, &task(), None, t(2, 0)),
        Containment::Report(_)
    ));
    // At the first activity exactly: the thief's.
    let mut at_first = early;
    at_first.at = Some(t(1, 0));
    assert!(matches!(
        containment(&at_first, &task(), None, t(2, 0)),
        Containment::Revoke(_)
    ));
    // The call that minted the finding's own key is the thief's whenever it was made.
    let mut user_task = task();
    user_task.origin.kind = TargetKind::User;
    user_task.origin.name = name("ci");
    let mut minted = hop(
        Footprint::SessionToken {
            user: Some(name("ci")),
            access_key_id: key("ASIASTOLENKEY0000001"),
            with_key: key("AKIALONGTERMKEY00001"),
        },
        "ASIASTOLENKEY0000001",
        1,
    );
    minted.at = Some(t(0, 10));
    assert!(matches!(
        containment(&minted, &user_task, None, t(2, 0)),
        Containment::Revoke(_)
    ));
}

#[test]
fn a_role_session_that_cannot_be_alive_is_not_denied_but_an_old_token_still_is() {
    let mut old_session = hop(
        Footprint::Session(MintedSession {
            account: account("444455556666"),
            role: name("admin"),
            role_id: UniqueId::parse("AROAEXAMPLEROLEID0001").unwrap(),
            session: SessionName::parse("pivot").unwrap(),
            access_key_id: key("ASIALINKONEKEY000001"),
        }),
        "ASIASTOLENKEY0000001",
        1,
    );
    let mut long_ago = task();
    long_ago.first_activity = Some(t(0, 0) - chrono::Duration::hours(30));
    old_session.at = Some(t(0, 0) - chrono::Duration::hours(13));
    let Containment::Report(text) = containment(&old_session, &long_ago, None, t(0, 0)) else {
        panic!()
    };
    assert!(text.contains("expired"), "{text}");
    // Twelve hours exactly: it may still be alive.
    old_session.at = Some(t(0, 0) - chrono::Duration::hours(12));
    assert!(matches!(
        containment(&old_session, &long_ago, None, t(0, 0)),
        Containment::Revoke(_)
    ));
    let mut old_token = hop(
        Footprint::SessionToken {
            user: Some(name("ci")),
            access_key_id: key("ASIATOKENKEY00000001"),
            with_key: key("AKIALONGTERMKEY00001"),
        },
        "AKIALONGTERMKEY00001",
        1,
    );
    old_token.at = Some(t(0, 0) - chrono::Duration::hours(37));
    let mut older = task();
    older.first_activity = Some(t(0, 0) - chrono::Duration::hours(40));
    // An old token still denies its user and deactivates the key behind it: other
    // tokens of that key may not be in CloudTrail yet.
    let Containment::Revoke(request) = containment(&old_token, &older, None, t(0, 0)) else {
        panic!()
    };
    assert_eq!(request.target.name.as_str(), "ci");
    assert_eq!(
        request.target.access_key_id.as_ref().unwrap().as_str(),
        "AKIALONGTERMKEY00001"
    );
    // A finding that gave no first activity: nothing is taken for the owner's use.
    let mut unknown = task();
    unknown.first_activity = None;
    let mut early = old_token.clone();
    early.at = Some(t(0, 0) - chrono::Duration::hours(1));
    assert!(matches!(
        containment(&early, &unknown, None, t(0, 0)),
        Containment::Revoke(_)
    ));
}
