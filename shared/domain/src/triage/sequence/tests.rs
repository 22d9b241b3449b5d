use serde_json::{Value, json};

use crate::event;
use crate::outcome::RevocationRequest;
use crate::principal::TargetKind;
use crate::settings::TriageConfig;
use crate::triage::{Decision, Source, Triage, Verdict, triage};

const FINDING_ACCOUNT: &str = "111122223333";
const ROLE_ID: &str = "AROAZSPCBG4NC2CGN4AUF";

/// An attack-sequence finding event with these actors, resources and signals.
fn sequence(severity: Value, actors: Value, resources: Value, signals: Value) -> Value {
    json!({
        "version": "0", "id": "7d1e2f3a-4b5c-4d6e-8f70-819a2b3c4d5e",
        "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
        "account": FINDING_ACCOUNT, "time": "2026-11-30T14:05:12Z", "region": "us-east-1", "resources": [],
        "detail": {
            "schemaVersion": "2.0", "accountId": FINDING_ACCOUNT, "region": "us-east-1", "partition": "aws",
            "id": "a6c9f1e2b3d4c5b6a7f8e9d0c1b2a3f4",
            "type": "AttackSequence:IAM/CompromisedCredentials",
            "resource": {"resourceType": "AttackSequence"},
            "service": {
                "serviceName": "guardduty", "featureName": "Correlation", "archived": false, "count": 1,
                "additionalInfo": {},
                "eventFirstSeen": "2026-11-30T13:00:00.000Z", "eventLastSeen": "2026-11-30T13:58:40.000Z",
                "detection": {"sequence": {
                    "uid": "s-1", "description": "a sequence",
                    "actors": actors, "resources": resources, "signals": signals
                }}
            },
            "severity": severity,
            "createdAt": "2026-11-30T14:02:51.204Z", "updatedAt": "2026-11-30T14:05:11.877Z"
        }
    })
}

/// An assumed-role actor of `role` (issued in `account`), in session `session`.
fn role_actor(id: &str, role: &str, session: &str, account: &str, created: Value) -> Value {
    json!({
        "id": id,
        "user": {"name": role, "uid": format!("{ROLE_ID}:{session}"), "type": "AssumedRole",
                 "credentialUid": "ASIA5Q2VZOLTKR7W3MXQ", "account": {"uid": account}},
        "session": {"createdTime": created, "issuer": format!("arn:aws:iam::{account}:role/team/{role}")}
    })
}

fn signal(actors: &[&str], first: &str, last: &str) -> Value {
    json!({"uid": "g", "type": "FINDING", "name": "x", "createdAt": first, "updatedAt": last,
           "firstSeenAt": first, "lastSeenAt": last, "count": 1, "actorIds": actors})
}

fn run(event: Value) -> Triage {
    triage(&event::recognise(event), &TriageConfig::default())
}

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap()
}

fn names(t: &Triage) -> Vec<(Verdict, TargetKind, String, String)> {
    t.decisions
        .iter()
        .map(|d| {
            let target = d.target.as_ref();
            (
                d.decision,
                target.map_or(TargetKind::Unknown, |t| t.kind),
                target.map_or(String::new(), |t| t.account.to_string()),
                target.map_or(String::new(), |t| t.name.to_string()),
            )
        })
        .collect()
}

fn revoke(name: &str) -> (Verdict, TargetKind, String, String) {
    (
        Verdict::Revoke,
        TargetKind::Role,
        FINDING_ACCOUNT.to_owned(),
        name.to_owned(),
    )
}

#[test]
fn each_actor_principal_gets_its_own_revocation_and_touched_keys_only_alert() {
    let t = run(sequence(
        json!(9),
        json!([
            role_actor("a1", "payments-api", "s1", FINDING_ACCOUNT, json!(null)),
            {"id": "a2", "user": {"name": "deploy-bot", "uid": "AIDA5Q2VZOLTNQ3KXWB7E", "type": "IAMUser",
                                  "credentialUid": "AKIA5Q2VZOLTH7PZ2N4M"}},
            // A process, not an IAM principal.
            {"id": "a3", "process": {"name": "xmrig", "path": "/tmp/xmrig"}}
        ]),
        json!([
            {"uid": "AKIA5Q2VZOLTF8M3B6QR", "resourceType": "ACCESS_KEY", "accountId": FINDING_ACCOUNT,
             "data": {"accessKey": {"principalId": "AIDA5Q2VZOLTCW2RM7T9H", "userName": "ci-runner", "userType": "IAMUser"}}},
            // The actor's own key among the resources adds no decision.
            {"uid": "ASIA5Q2VZOLTKR7W3MXQ", "resourceType": "ACCESS_KEY", "accountId": FINDING_ACCOUNT,
             "data": {"accessKey": {"principalId": format!("{ROLE_ID}:s1"), "userName": "payments-api", "userType": "AssumedRole"}}},
            {"uid": "arn:aws:s3:::bucket", "resourceType": "S3_BUCKET"}
        ]),
        json!([]),
    ));
    assert_eq!(t.source, Source::GuardDuty);
    let user = (
        Verdict::Revoke,
        TargetKind::User,
        FINDING_ACCOUNT.to_owned(),
        "deploy-bot".to_owned(),
    );
    let touched = (
        Verdict::Alert,
        TargetKind::User,
        FINDING_ACCOUNT.to_owned(),
        "ci-runner".to_owned(),
    );
    assert_eq!(names(&t), [revoke("payments-api"), user, touched]);
    let role = t.decisions[0].target.as_ref().unwrap();
    assert_eq!(role.session.as_ref().unwrap().as_str(), "s1");
    assert_eq!(
        role.access_key_id.as_ref().unwrap().as_str(),
        "ASIA5Q2VZOLTKR7W3MXQ"
    );
    assert_eq!(
        t.decisions[0].evidence.unique_id.as_ref().unwrap().as_str(),
        ROLE_ID
    );
    assert_eq!(
        t.decisions[1].evidence.unique_id.as_ref().unwrap().as_str(),
        "AIDA5Q2VZOLTNQ3KXWB7E"
    );
    assert!(t.decisions[2].reason.contains("not one of its actors"));
    // Each revocation is a queued request of its own, of the sequence's finding.
    for d in &t.decisions[..2] {
        let request = RevocationRequest::from_decision(t.source, d).unwrap();
        request.check_queued().unwrap();
        assert_eq!(
            request.trigger.finding_type.as_deref(),
            Some("AttackSequence:IAM/CompromisedCredentials")
        );
        assert_eq!(request.scope, crate::event::Scope::Role);
    }
}

#[test]
fn the_grading_rules_of_any_finding_apply_to_each_actor() {
    let actors = json!([
        role_actor("a1", "payments-api", "s1", FINDING_ACCOUNT, json!(null)),
        role_actor("a2", "cutoff-member", "s2", FINDING_ACCOUNT, json!(null)),
        {"id": "a3", "user": {"name": "Root", "uid": FINDING_ACCOUNT, "type": "Root"}},
        role_actor("a4", "AWSReservedSSO_Admin_1a2b3c4d5e6f7a8b", "maria", FINDING_ACCOUNT, json!(null)),
    ]);
    let t = run(sequence(json!(9), actors.clone(), json!([]), json!([])));
    let verdicts: Vec<(Verdict, TargetKind)> = t
        .decisions
        .iter()
        .map(|d| (d.decision, d.target.as_ref().unwrap().kind))
        .collect();
    assert_eq!(
        verdicts,
        [
            (Verdict::Revoke, TargetKind::Role),
            // cutoff's own member role is protected.
            (Verdict::Alert, TargetKind::Role),
            (Verdict::Alert, TargetKind::Root),
            // Named like Identity Center's: the revoker asks IAM for the path.
            (Verdict::Revoke, TargetKind::IdentityCenterRole),
        ]
    );
    let medium = run(sequence(json!(5.5), actors.clone(), json!([]), json!([])));
    assert!(
        medium
            .decisions
            .iter()
            .all(|d| d.decision == Verdict::Alert)
    );
    let low = run(sequence(json!(2), actors.clone(), json!([]), json!([])));
    assert!(low.decisions.iter().all(|d| d.decision == Verdict::Ignore));
    let no_severity = run(sequence(json!("9"), actors, json!([]), json!([])));
    assert_eq!(no_severity.decisions.len(), 1);
    assert_eq!(no_severity.decisions[0].decision, Verdict::Ignore);
}

#[test]
fn sample_and_archived_sequences_are_one_ignore() {
    let actors = json!([role_actor(
        "a1",
        "payments-api",
        "s1",
        FINDING_ACCOUNT,
        json!(null)
    )]);
    let mut sample = sequence(json!(9), actors.clone(), json!([]), json!([]));
    sample["detail"]["service"]["additionalInfo"] = json!({"sample": true});
    let mut archived = sequence(json!(9), actors, json!([]), json!([]));
    archived["detail"]["service"]["archived"] = json!(true);
    for event in [sample, archived] {
        let t = run(event);
        assert_eq!(t.decisions.len(), 1);
        let d = &t.decisions[0];
        assert_eq!(d.decision, Verdict::Ignore);
        assert_eq!(d.target.as_ref().unwrap().name.as_str(), "payments-api");
    }
}

#[test]
fn a_sequence_without_actors_revokes_nobody() {
    // No sequence block at all: the resource type alone says what it is.
    let mut bare = sequence(json!(9), json!([]), json!([]), json!([]));
    bare["detail"]["service"]
        .as_object_mut()
        .unwrap()
        .remove("detection");
    for event in [bare, sequence(json!(9), json!([]), json!([]), json!([]))] {
        let t = run(event);
        let d = &t.decisions[0];
        assert_eq!(t.decisions.len(), 1);
        assert_eq!(d.decision, Verdict::Ignore);
        assert!(d.target.is_none() && d.invalid.is_none());
        assert!(d.reason.contains("names no actor"), "{}", d.reason);
    }
    // Actors that are no IAM principal (a user with neither name nor issuer, a
    // process) are not revoked, and not invalid.
    let t = run(sequence(
        json!(9),
        json!([{"id": "a1", "user": {"type": "AssumedRole"}}, {"id": "a2"}]),
        json!([]),
        json!([]),
    ));
    assert_eq!(names(&t).len(), 1);
    assert_eq!(t.decisions[0].decision, Verdict::Ignore);
}

#[test]
fn an_actor_of_another_account_only_alerts() {
    let other = "444455556666";
    // The role's own account (its session's issuer) is another.
    let issued_elsewhere = role_actor("a1", "payments-api", "s1", other, json!(null));
    // No issuer says whose the role is, and the activity is stated in another
    // account: that account's role, as far as the sequence shows.
    let mut stated_elsewhere = role_actor("a2", "ledger", "s2", FINDING_ACCOUNT, json!(null));
    stated_elsewhere["user"]["account"]["uid"] = json!(other);
    stated_elsewhere["session"]
        .as_object_mut()
        .unwrap()
        .remove("issuer");
    // A user whose account is another.
    let user_elsewhere = json!({"id": "a3", "user": {"name": "deploy-bot", "type": "IAMUser",
        "account": {"uid": other}}});
    let t = run(sequence(
        json!(9),
        json!([issued_elsewhere, stated_elsewhere, user_elsewhere]),
        json!([]),
        json!([]),
    ));
    assert_eq!(t.decisions.len(), 3);
    for d in &t.decisions {
        assert_eq!(d.decision, Verdict::Alert, "{}", d.reason);
        assert!(d.reason.contains(other), "{}", d.reason);
    }
    assert_eq!(
        t.decisions[0].target.as_ref().unwrap().account.as_str(),
        other
    );
    assert_eq!(
        t.decisions[1].target.as_ref().unwrap().account.as_str(),
        other
    );
    // An account that is no account makes the actor invalid.
    let mut bad = role_actor("a1", "payments-api", "s1", FINDING_ACCOUNT, json!(null));
    bad["user"]["account"]["uid"] = json!("4444");
    let t = run(sequence(json!(9), json!([bad]), json!([]), json!([])));
    assert!(t.decisions[0].invalid.is_some());
}

#[test]
fn an_unknown_principal_type_alerts_and_a_disagreeing_issuer_is_invalid() {
    let t = run(sequence(
        json!(9),
        json!([{"id": "a1", "user": {"name": "builder", "type": "SAMLUser"}}]),
        json!([]),
        json!([]),
    ));
    let d = &t.decisions[0];
    assert_eq!(
        (d.decision, d.target.as_ref().unwrap().kind),
        (Verdict::Alert, TargetKind::Unknown)
    );
    // The name says one role, the session's issuer another: neither is trusted.
    let mut mismatch = role_actor("a1", "payments-api", "s1", FINDING_ACCOUNT, json!(null));
    mismatch["user"]["name"] = json!("ledger-writer");
    let t = run(sequence(json!(9), json!([mismatch]), json!([]), json!([])));
    assert!(t.decisions[0].invalid.is_some());
    assert_eq!(t.decisions[0].decision, Verdict::Ignore);
    // Without a name, the issuer names the role.
    let mut unnamed = role_actor("a1", "payments-api", "s1", FINDING_ACCOUNT, json!(null));
    unnamed["user"].as_object_mut().unwrap().remove("name");
    let t = run(sequence(json!(9), json!([unnamed]), json!([]), json!([])));
    assert_eq!(names(&t), [revoke("payments-api")]);
    // A credential of the wrong shape is dropped, the actor still revoked.
    let mut odd_key = role_actor("a1", "payments-api", "s1", FINDING_ACCOUNT, json!(null));
    odd_key["user"]["credentialUid"] = json!("not-a-key");
    let t = run(sequence(json!(9), json!([odd_key]), json!([]), json!([])));
    assert_eq!(names(&t), [revoke("payments-api")]);
    assert!(
        t.decisions[0]
            .target
            .as_ref()
            .unwrap()
            .access_key_id
            .is_none()
    );
}

#[test]
fn the_same_principal_named_many_times_is_one_decision() {
    let actors = json!([
        role_actor(
            "a1",
            "payments-api",
            "s1",
            FINDING_ACCOUNT,
            json!("2026-11-30T13:10:00Z")
        ),
        role_actor(
            "a2",
            "payments-api",
            "s2",
            FINDING_ACCOUNT,
            json!("2026-11-30T13:20:00Z")
        ),
        role_actor(
            "a1",
            "payments-api",
            "s1",
            FINDING_ACCOUNT,
            json!("2026-11-30T13:10:00Z")
        ),
        role_actor(
            "a3",
            "payments-api",
            "s3",
            FINDING_ACCOUNT,
            json!("2026-11-30T13:15:00Z")
        ),
    ]);
    let t = run(sequence(json!(9), actors, json!([]), json!([])));
    assert_eq!(names(&t), [revoke("payments-api")]);
    let d = &t.decisions[0];
    assert_eq!(
        d.target
            .as_ref()
            .unwrap()
            .session
            .as_ref()
            .unwrap()
            .as_str(),
        "s1"
    );
    assert!(
        d.reason.contains("2 more session(s) (s2, s3)"),
        "{}",
        d.reason
    );
    // The write may be skipped only if every session is covered: the latest issue.
    assert_eq!(d.evidence.first_activity, Some(at("2026-11-30T13:20:00Z")));
    assert_eq!(d.evidence.unique_id.as_ref().unwrap().as_str(), ROLE_ID);
}

#[test]
fn two_unique_ids_for_one_name_keep_neither() {
    let first = role_actor("a1", "payments-api", "s1", FINDING_ACCOUNT, json!(null));
    let mut recreated = role_actor("a2", "payments-api", "s2", FINDING_ACCOUNT, json!(null));
    recreated["user"]["uid"] = json!("AROAQW3ER5TY7UI9OP1AS:s2");
    let t = run(sequence(
        json!(9),
        json!([first, recreated]),
        json!([]),
        json!([]),
    ));
    assert_eq!(names(&t), [revoke("payments-api")]);
    assert!(t.decisions[0].evidence.unique_id.is_none());
}

#[test]
fn each_session_is_bounded_by_its_issue_or_its_own_first_signal() {
    let actor =
        |id: &str, created: Value| role_actor(id, "payments-api", id, FINDING_ACCOUNT, created);
    let first_of = |actors: Value, signals: Value| {
        let t = run(sequence(json!(9), actors, json!([]), signals));
        t.decisions[0].evidence.first_activity
    };
    // The session's creation time.
    assert_eq!(
        first_of(json!([actor("a1", json!(1_796_043_600))]), json!([])),
        Some(at("2026-11-30T13:00:00Z"))
    );
    // The creation time is the issue time itself: a later signal of the actor's does
    // not move it.
    assert_eq!(
        first_of(
            json!([actor("a1", json!("2026-11-30T13:30:00Z"))]),
            json!([signal(
                &["a1"],
                "2026-11-30T13:31:07Z",
                "2026-11-30T13:50:00Z"
            )])
        ),
        Some(at("2026-11-30T13:30:00Z"))
    );
    // A signal of the actor's alone seen before its session was created: the actor
    // stands for more than that session, and only its last sighting bounds them all
    // (never the earlier time, which would take a session issued later for covered).
    assert_eq!(
        first_of(
            json!([actor("a1", json!("2026-11-30T13:30:00Z"))]),
            json!([signal(
                &["a1"],
                "2026-11-30T13:05:00Z",
                "2026-11-30T13:50:00Z"
            )])
        ),
        Some(at("2026-11-30T13:50:00Z"))
    );
    // Without a creation time, a signal of the actor's alone bounds it from its first
    // sighting.
    assert_eq!(
        first_of(
            json!([actor("a1", json!(null))]),
            json!([signal(
                &["a1"],
                "2026-11-30T13:21:07Z",
                "2026-11-30T13:50:00Z"
            )])
        ),
        Some(at("2026-11-30T13:21:07Z"))
    );
    // A placeholder creation time (0) is no time.
    assert_eq!(
        first_of(json!([actor("a1", json!(0))]), json!([])),
        Some(at("2026-11-30T13:58:40Z"))
    );
    // A signal shared with another actor bounds it only from its last sighting: its
    // first may be the other actor's, before this session existed.
    assert_eq!(
        first_of(
            json!([actor("a1", json!(null))]),
            json!([signal(
                &["a1", "a9"],
                "2026-11-30T13:01:00Z",
                "2026-11-30T13:40:00Z"
            )])
        ),
        Some(at("2026-11-30T13:40:00Z"))
    );
    // Nothing about the session: the sequence's last activity (eventLastSeen, or a
    // signal seen later).
    assert_eq!(
        first_of(json!([actor("a1", json!(null))]), json!([])),
        Some(at("2026-11-30T13:58:40Z"))
    );
    assert_eq!(
        first_of(
            json!([actor("a1", json!(null))]),
            json!([signal(
                &["a9"],
                "2026-11-30T13:00:00Z",
                "2026-11-30T14:01:00Z"
            )])
        ),
        Some(at("2026-11-30T14:01:00Z"))
    );
    // Without eventLastSeen either: no bound, so the revoker always writes.
    let mut event = sequence(
        json!(9),
        json!([actor("a1", json!(null))]),
        json!([]),
        json!([]),
    );
    event["detail"]["service"]
        .as_object_mut()
        .unwrap()
        .remove("eventLastSeen");
    assert_eq!(run(event).decisions[0].evidence.first_activity, None);
    // The eventFirstSeen of the whole sequence is never a session's bound: a session
    // issued later in the sequence would be taken for covered.
    let t = run(sequence(
        json!(9),
        json!([actor("a1", json!("2026-11-30T13:45:00Z"))]),
        json!([]),
        json!([]),
    ));
    assert_ne!(
        t.decisions[0].evidence.first_activity,
        Some(at("2026-11-30T13:00:00Z"))
    );
}

#[test]
fn a_malformed_actor_list_is_invalid_and_an_invalid_actor_hides_no_other() {
    let mut event = sequence(json!(9), json!([]), json!([]), json!([]));
    event["detail"]["service"]["detection"]["sequence"]["actors"] = json!({"id": "a1"});
    let t = run(event);
    assert_eq!(t.decisions.len(), 1);
    assert!(t.decisions[0].invalid.is_some());
    let bad: Value = json!({"id": "a1", "user": {"name": "payments api", "type": "IAMUser"}});
    let t = run(sequence(
        json!(9),
        json!([
            bad,
            role_actor("a2", "payments-api", "s2", FINDING_ACCOUNT, json!(null))
        ]),
        json!([]),
        json!([]),
    ));
    let verdicts: Vec<(Verdict, bool)> = t
        .decisions
        .iter()
        .map(|d: &Decision| (d.decision, d.invalid.is_some()))
        .collect();
    assert_eq!(
        verdicts,
        [(Verdict::Revoke, false), (Verdict::Ignore, true)]
    );
}

#[test]
fn sessions_with_different_keys_carry_no_key_so_the_latest_issue_decides() {
    // A key stands for its own session: kept on a merged decision, an old key's record
    // could make the revoker take a later session for covered.
    let mut second = role_actor(
        "a2",
        "payments-api",
        "s2",
        FINDING_ACCOUNT,
        json!("2026-11-30T13:40:00Z"),
    );
    second["user"]["credentialUid"] = json!("ASIA5Q2VZOLTMN4B8CDE");
    let t = run(sequence(
        json!(9),
        json!([
            role_actor(
                "a1",
                "payments-api",
                "s1",
                FINDING_ACCOUNT,
                json!("2026-11-30T13:00:00Z")
            ),
            second
        ]),
        json!([]),
        json!([]),
    ));
    assert_eq!(names(&t), [revoke("payments-api")]);
    let d = &t.decisions[0];
    assert!(d.target.as_ref().unwrap().access_key_id.is_none());
    assert_eq!(d.evidence.first_activity, Some(at("2026-11-30T13:40:00Z")));
    // The same key named twice is kept.
    let t = run(sequence(
        json!(9),
        json!([
            role_actor("a1", "payments-api", "s1", FINDING_ACCOUNT, json!(null)),
            role_actor("a1", "payments-api", "s1", FINDING_ACCOUNT, json!(null))
        ]),
        json!([]),
        json!([]),
    ));
    assert_eq!(
        t.decisions[0]
            .target
            .as_ref()
            .unwrap()
            .access_key_id
            .as_ref()
            .unwrap()
            .as_str(),
        "ASIA5Q2VZOLTKR7W3MXQ"
    );
}

#[test]
fn each_long_term_key_of_a_user_is_a_decision_of_its_own() {
    // A deny on the token's issue time stops no long-term key: each must be set
    // inactive, and one request carries one key.
    let user = |id: &str, key: &str| {
        json!({"id": id, "user": {"name": "deploy-bot", "uid": "AIDA5Q2VZOLTNQ3KXWB7E", "type": "IAMUser",
                                  "credentialUid": key}})
    };
    let created_key = json!({"uid": "AKIA5Q2VZOLTF8M3B6QR", "resourceType": "ACCESS_KEY",
        "data": {"accessKey": {"principalId": "AIDA5Q2VZOLTNQ3KXWB7E", "userName": "deploy-bot", "userType": "IAMUser"}}});
    let t = run(sequence(
        json!(9),
        json!([
            user("a1", "AKIA5Q2VZOLTH7PZ2N4M"),
            user("a2", "AKIA5Q2VZOLTPQ7R2STU"),
            user("a1", "AKIA5Q2VZOLTH7PZ2N4M")
        ]),
        json!([created_key]),
        json!([]),
    ));
    let keys: Vec<(Verdict, &str)> = t
        .decisions
        .iter()
        .map(|d| {
            (
                d.decision,
                d.target
                    .as_ref()
                    .unwrap()
                    .access_key_id
                    .as_ref()
                    .unwrap()
                    .as_str(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            (Verdict::Revoke, "AKIA5Q2VZOLTH7PZ2N4M"),
            (Verdict::Revoke, "AKIA5Q2VZOLTPQ7R2STU"),
            // A key of the actor's that it touched (created, say): set inactive too.
            (Verdict::Revoke, "AKIA5Q2VZOLTF8M3B6QR"),
        ]
    );
    assert!(
        t.decisions[2].reason.contains("touched"),
        "{}",
        t.decisions[2].reason
    );
}

#[test]
fn a_principal_in_many_sessions_still_fits_a_queued_request() {
    // Found in review: the reason listed every session, and a reason over 512
    // characters made the queued request invalid, so the principal named most often
    // was the one not revoked.
    let role = "a".repeat(60);
    let actors: Vec<Value> = (0..40)
        .map(|i| {
            role_actor(
                &format!("a{i}"),
                &role,
                &format!("{}-{i}", "s".repeat(50)),
                FINDING_ACCOUNT,
                json!(null),
            )
        })
        .collect();
    let t = run(sequence(json!(9), json!(actors), json!([]), json!([])));
    let d = &t.decisions[0];
    assert_eq!(d.decision, Verdict::Revoke);
    assert!(d.reason.contains("39 more session(s)"), "{}", d.reason);
    assert!(d.reason.contains("and 36 more"), "{}", d.reason);
    let request = RevocationRequest::from_decision(t.source, d).unwrap();
    request.check_queued().unwrap();
}

#[test]
fn a_role_no_issuer_or_role_id_places_only_alerts() {
    // The account an activity is stated in may not be the role's own: without its
    // issuer or its id, the revoker could not tell it is the one.
    let t = run(sequence(
        json!(9),
        json!([{"id": "a1", "user": {"name": "payments-api", "type": "AssumedRole", "account": {"uid": FINDING_ACCOUNT}}}]),
        json!([]),
        json!([]),
    ));
    let d = &t.decisions[0];
    assert_eq!(d.decision, Verdict::Alert, "{}", d.reason);
    assert!(d.reason.contains("which account's role"), "{}", d.reason);
    // An issuer that is no ARN is dropped, and the role id still places it.
    let mut odd_issuer = role_actor("a1", "payments-api", "s1", FINDING_ACCOUNT, json!(null));
    odd_issuer["session"]["issuer"] = json!("payments-api");
    assert_eq!(
        names(&run(sequence(
            json!(9),
            json!([odd_issuer]),
            json!([]),
            json!([])
        ))),
        [revoke("payments-api")]
    );
}

#[test]
fn below_the_alert_threshold_even_another_accounts_actor_is_ignored() {
    let t = run(sequence(
        json!(2),
        json!([role_actor(
            "a1",
            "payments-api",
            "s1",
            "444455556666",
            json!(null)
        )]),
        json!([]),
        json!([]),
    ));
    assert_eq!(t.decisions[0].decision, Verdict::Ignore);
}

#[test]
fn a_roles_issuer_says_whose_it_is_whatever_account_an_activity_is_stated_in() {
    // The issuer's ARN proves the role is the finding account's: one session stated
    // elsewhere does not make it alert-only.
    let mut stated = role_actor("a2", "payments-api", "s2", FINDING_ACCOUNT, json!(null));
    stated["user"]["account"]["uid"] = json!("444455556666");
    let t = run(sequence(
        json!(9),
        json!([
            role_actor("a1", "payments-api", "s1", FINDING_ACCOUNT, json!(null)),
            stated
        ]),
        json!([]),
        json!([]),
    ));
    assert_eq!(names(&t), [revoke("payments-api")]);
}

#[test]
fn a_users_long_term_key_is_never_dropped_with_its_conflicting_session_keys() {
    // Found in a second review: two session keys conflicted, the entry held no key,
    // and a long-term key then merged into it and was dropped too.
    let user = |id: &str, key: &str| {
        json!({"id": id, "user": {"name": "alice", "uid": "AIDA5Q2VZOLTNQ3KXWB7E", "type": "IAMUser",
                                  "credentialUid": key}})
    };
    let keys_of = |t: &Triage| -> Vec<Option<String>> {
        t.decisions
            .iter()
            .map(|d| {
                d.target
                    .as_ref()
                    .unwrap()
                    .access_key_id
                    .as_ref()
                    .map(|k| k.to_string())
            })
            .collect()
    };
    let t = run(sequence(
        json!(9),
        json!([
            user("a1", "ASIA5Q2VZOLTMN4B8CDE"),
            user("a2", "ASIA5Q2VZOLTPQ7R2STU"),
            user("a3", "AKIA5Q2VZOLTH7PZ2N4M")
        ]),
        json!([]),
        json!([]),
    ));
    assert_eq!(keys_of(&t), [None, Some("AKIA5Q2VZOLTH7PZ2N4M".to_owned())]);
    assert!(t.decisions.iter().all(|d| d.decision == Verdict::Revoke));
    // The same long-term key among the resources, not used by an actor.
    let t = run(sequence(
        json!(9),
        json!([
            user("a1", "ASIA5Q2VZOLTMN4B8CDE"),
            user("a2", "ASIA5Q2VZOLTPQ7R2STU")
        ]),
        json!([{"uid": "AKIA5Q2VZOLTH7PZ2N4M", "resourceType": "ACCESS_KEY",
                "data": {"accessKey": {"userName": "alice", "userType": "IAMUser"}}}]),
        json!([]),
    ));
    assert_eq!(keys_of(&t), [None, Some("AKIA5Q2VZOLTH7PZ2N4M".to_owned())]);
}

#[test]
fn a_session_without_a_key_is_not_vouched_for_by_another_sessions_key() {
    // Found in a second review: s1 named a key, s2 none; merged, the request kept s1's
    // key, whose ledger record could make the revoker skip the write s2 needs.
    let mut keyless = role_actor(
        "a2",
        "payments-api",
        "s2",
        FINDING_ACCOUNT,
        json!("2026-11-30T13:30:00Z"),
    );
    keyless["user"]
        .as_object_mut()
        .unwrap()
        .remove("credentialUid");
    let keyed = role_actor(
        "a1",
        "payments-api",
        "s1",
        FINDING_ACCOUNT,
        json!("2026-11-30T12:00:00Z"),
    );
    for actors in [
        json!([keyed.clone(), keyless.clone()]),
        json!([keyless, keyed]),
    ] {
        let t = run(sequence(json!(9), actors, json!([]), json!([])));
        assert_eq!(names(&t), [revoke("payments-api")]);
        let d = &t.decisions[0];
        assert!(d.target.as_ref().unwrap().access_key_id.is_none());
        assert_eq!(d.evidence.first_activity, Some(at("2026-11-30T13:30:00Z")));
    }
}

#[test]
fn a_role_is_placed_by_any_of_its_mentions_and_never_by_conflicting_ids() {
    let anchored = role_actor("a1", "payments-api", "s1", FINDING_ACCOUNT, json!(null));
    let bare = json!({"id": "a2", "user": {"name": "payments-api", "type": "AssumedRole"}});
    // One mention with an issuer and a role id places it, whatever the others lack.
    for actors in [
        json!([anchored.clone(), bare.clone()]),
        json!([bare, anchored]),
    ] {
        let t = run(sequence(json!(9), actors, json!([]), json!([])));
        assert_eq!(names(&t), [revoke("payments-api")]);
    }
    // Two mentions without an issuer naming different role ids: neither id is kept,
    // and nothing else places the role.
    let no_issuer = |id: &str, role_id: &str| json!({"id": id, "user": {"name": "payments-api", "uid": format!("{role_id}:{id}"), "type": "AssumedRole"}});
    let t = run(sequence(
        json!(9),
        json!([
            no_issuer("a1", "AROAZSPCBG4NC2CGN4AUF"),
            no_issuer("a2", "AROAQW3ER5TY7UI9OP1AS")
        ]),
        json!([]),
        json!([]),
    ));
    assert_eq!(
        t.decisions[0].decision,
        Verdict::Alert,
        "{}",
        t.decisions[0].reason
    );
}
