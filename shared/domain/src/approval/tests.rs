use super::*;
use crate::event::Scope;
use crate::outcome::Trigger;
use crate::principal::{AccessKeyId, Account, PrincipalName, SessionName};
use crate::triage::Source;
use chrono::TimeZone;
use serde_json::json;

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, h, m, s).unwrap()
}

fn request(role: &str, finding: Option<&str>) -> RevocationRequest {
    serde_json::from_value(json!({
        "action": "revoke",
        "target": {"kind": "role", "account": "111122223333", "name": role,
                   "access_key_id": "ASIAZXCVBNMASDFGHJKL", "session": null},
        "scope": "role",
        "trigger": {"source": "guardduty", "finding_id": finding, "finding_type": "Recon:IAMUser/MaliciousIPCaller",
                    "severity": 5.0, "updated_at": "2026-11-23T11:00:00Z", "requested_by": null, "reason": "medium"},
        "first_activity": "2026-11-23T10:00:00Z",
        "event_time": "2026-11-23T11:00:05Z",
        "needs_approval": true
    }))
    .unwrap()
}

#[test]
fn an_id_is_sixteen_lowercase_hex_digits_and_nothing_else_parses() {
    let id = ApprovalId::of(&request("payments-api", Some("f1")));
    assert_eq!(id.as_str().len(), 16);
    assert_eq!(ApprovalId::parse(id.as_str()), Ok(id.clone()));
    for bad in [
        "",
        "0123456789abcde",
        "0123456789abcdef0",
        "0123456789ABCDEF",
        "0123456789abcdeg",
        "../../etc/passwd",
        "0123456789abcde\n",
        "０123456789abcdef",
    ] {
        assert!(ApprovalId::parse(bad).is_err(), "{bad:?}");
    }
    let json = serde_json::to_value(&id).unwrap();
    assert_eq!(json, json!(id.as_str()));
    assert!(serde_json::from_value::<ApprovalId>(json!("not-an-id")).is_err());
}

#[test]
fn a_redelivery_and_a_later_update_of_the_same_finding_map_to_the_same_approval() {
    let first = request("payments-api", Some("f1"));
    let mut updated = first.clone();
    updated.trigger.updated_at = Some(at(13, 0, 0));
    updated.trigger.severity = Some(6.0);
    updated.trigger.reason = Some("updated".into());
    updated.event_time = Some(at(13, 0, 5));
    updated.first_activity = Some(at(12, 0, 0));
    assert_eq!(ApprovalId::of(&first), ApprovalId::of(&first.clone()));
    assert_eq!(ApprovalId::of(&first), ApprovalId::of(&updated));
}

#[test]
fn anything_about_whom_it_revokes_makes_another_approval() {
    let base = request("payments-api", Some("f1"));
    let id = ApprovalId::of(&base);
    let mut variants: Vec<(&str, RevocationRequest)> = Vec::new();
    let mut v = base.clone();
    v.trigger.finding_id = Some("f2".into());
    variants.push(("finding", v));
    let mut v = base.clone();
    v.target.name = PrincipalName::parse("ledger").unwrap();
    variants.push(("name", v));
    let mut v = base.clone();
    v.target.account = Account::parse("444455556666").unwrap();
    variants.push(("account", v));
    let mut v = base.clone();
    v.target.access_key_id = Some(AccessKeyId::parse("ASIAQWERTYUIOPASDFGH").unwrap());
    variants.push(("key", v));
    let mut v = base.clone();
    v.target.session = Some(SessionName::parse("i-0123456789abcdef0").unwrap());
    v.scope = Scope::Session;
    variants.push(("session scope", v));
    let mut v = base.clone();
    v.trigger.source = Source::SecurityHub;
    variants.push(("source", v));
    let mut v = base.clone();
    v.trigger.product_arn = Some("arn:aws:securityhub:us-east-1::product/x/y".into());
    variants.push(("product", v));
    let mut v = base.clone();
    v.dry_run = true;
    variants.push(("dry run", v));
    let mut v = base.clone();
    v.expected_unique_id =
        Some(crate::principal::UniqueId::parse("AROAZXCVBNMASDFGHJKLQ").unwrap());
    variants.push(("unique id", v));
    for (what, variant) in &variants {
        assert_ne!(ApprovalId::of(variant), id, "{what}");
    }
}

#[test]
fn a_request_naming_no_finding_is_identified_by_its_content_without_times() {
    let base = request("payments-api", None);
    let mut later = base.clone();
    later.trigger.updated_at = Some(at(14, 0, 0));
    later.event_time = None;
    later.first_activity = None;
    assert_eq!(ApprovalId::of(&base), ApprovalId::of(&later));
    let mut other = base.clone();
    other.trigger.reason = Some("another reason".into());
    assert_ne!(ApprovalId::of(&base), ApprovalId::of(&other));
}

#[test]
fn an_approval_is_open_until_the_instant_it_expires_and_due_for_expiry_from_then() {
    let asked = Approval::ask(
        &request("payments-api", Some("f1")),
        at(12, 0, 0),
        ApprovalHours::DEFAULT,
    );
    assert_eq!(asked.expires_at, at(16, 0, 0));
    assert_eq!(asked.state, ApprovalState::Pending);
    assert!(!asked.notified);
    let just_before = at(15, 59, 59);
    assert!(asked.is_open(just_before));
    assert!(!asked.expiry_due(just_before));
    assert_eq!(asked.why_closed(just_before), None);
    let exactly = at(16, 0, 0);
    assert!(!asked.is_open(exactly), "expired at the instant of expiry");
    assert!(asked.expiry_due(exactly));
    let why = asked.why_closed(exactly).unwrap();
    assert!(why.contains("expired at 2026-11-23T16:00:00Z"), "{why}");
    assert!(
        why.contains("cutoff revoke --account 111122223333 --role payments-api"),
        "{why}"
    );
    for state in [
        ApprovalState::Approved,
        ApprovalState::Refused,
        ApprovalState::Expired,
    ] {
        let closed = Approval {
            state,
            ..asked.clone()
        };
        assert!(!closed.is_open(at(12, 0, 1)), "{state}");
        assert!(!closed.expiry_due(at(17, 0, 0)), "{state}");
        assert!(closed.why_closed(at(12, 0, 1)).is_some(), "{state}");
    }
    let refused = Approval {
        state: ApprovalState::Refused,
        decided_by: Some("arn:aws:sts::999988887777:assumed-role/Ops/alice".into()),
        decided_at: Some(at(12, 30, 0)),
        ..asked.clone()
    };
    let why = refused.why_closed(at(12, 31, 0)).unwrap();
    assert!(why.contains("already refused by arn:aws:sts::999988887777:assumed-role/Ops/alice at 2026-11-23T12:30:00Z"), "{why}");
}

#[test]
fn an_approved_run_that_never_reported_back_is_stalled_from_the_end_of_its_lease() {
    let mut approved = Approval::ask(
        &request("payments-api", Some("f1")),
        at(12, 0, 0),
        ApprovalHours::DEFAULT,
    );
    approved.state = ApprovalState::Approved;
    approved.decided_by = Some("arn:aws:sts::111122223333:assumed-role/Security/bob".into());
    approved.decided_at = Some(at(12, 10, 0));
    // The lease is Lambda's longest timeout: a run still going is never stalled.
    assert!(!approved.run_stalled(at(12, 24, 59)));
    assert!(approved.run_stalled(at(12, 25, 0)));
    assert!(approved.run_stalled(at(20, 0, 0)), "past the deadline too");
    // A run that reported back, however it ended, is not.
    let finished = Approval {
        run_finished: true,
        ..approved.clone()
    };
    assert!(!finished.run_stalled(at(20, 0, 0)));
    // Only an approval runs anything.
    for state in [
        ApprovalState::Pending,
        ApprovalState::Refused,
        ApprovalState::Expired,
    ] {
        let other = Approval {
            state,
            ..approved.clone()
        };
        assert!(!other.run_stalled(at(20, 0, 0)), "{state}");
    }
    // An approval without its decision's time cannot be placed: never stalled.
    let timeless = Approval {
        decided_at: None,
        ..approved
    };
    assert!(!timeless.run_stalled(at(20, 0, 0)));
}

#[test]
fn an_open_approval_not_announced_within_its_grace_is_unannounced_until_it_closes() {
    let asked = Approval::ask(
        &request("payments-api", Some("f1")),
        at(12, 0, 0),
        ApprovalHours::DEFAULT,
    );
    assert!(
        !asked.unannounced(at(12, 14, 59)),
        "its ask may still publish"
    );
    assert!(asked.unannounced(at(12, 15, 0)));
    assert!(asked.unannounced(at(15, 59, 59)));
    assert!(
        !asked.unannounced(at(16, 0, 0)),
        "expired: the expiry says it"
    );
    let announced = Approval {
        notified: true,
        ..asked.clone()
    };
    assert!(!announced.unannounced(at(13, 0, 0)));
    let refused = Approval {
        state: ApprovalState::Refused,
        ..asked
    };
    assert!(!refused.unannounced(at(13, 0, 0)));
}

#[test]
fn a_question_asked_with_another_type_or_wording_than_its_finding_says_so() {
    let mut first = request("payments-api", Some("f1"));
    first.trigger.reason = Some("severity 5.0 is at or above the alert threshold".into());
    let asked = Approval::ask(&first, at(12, 0, 0), ApprovalHours::DEFAULT);
    assert_eq!(asked.differs_from(&first), None);
    // A later update: its time, severity and so its wording change.
    let mut update = first.clone();
    update.trigger.updated_at = Some(at(12, 30, 0));
    update.trigger.severity = Some(6.0);
    update.trigger.reason = Some("severity 6 is at or above the alert threshold".into());
    update.first_activity = Some(at(12, 20, 0));
    assert_eq!(asked.differs_from(&update), None);
    // A question planted first, with words of its own.
    let mut planted = first.clone();
    planted.trigger.reason = Some("known scanner, refuse".into());
    let planted = Approval::ask(&planted, at(11, 59, 0), ApprovalHours::DEFAULT);
    let why = planted.differs_from(&first).unwrap();
    assert!(why.contains("known scanner, refuse"), "{why}");
    // Planted with another severity too: still other words.
    let mut elsewhere = first.clone();
    elsewhere.trigger.severity = Some(5.1);
    elsewhere.trigger.reason = Some("known scanner, refuse".into());
    let elsewhere = Approval::ask(&elsewhere, at(11, 59, 0), ApprovalHours::DEFAULT);
    assert!(elsewhere.differs_from(&first).is_some());
    assert!(elsewhere.differs_from(&update).is_some());
    let mut retyped = first.clone();
    retyped.trigger.finding_type = Some("Policy:IAMUser/RootCredentialUsage".into());
    let retyped = Approval::ask(&retyped, at(11, 59, 0), ApprovalHours::DEFAULT);
    let why = retyped.differs_from(&update).unwrap();
    assert!(
        why.contains("Policy:IAMUser/RootCredentialUsage")
            && why.contains("Recon:IAMUser/MaliciousIPCaller"),
        "{why}"
    );
}

#[test]
fn approval_hours_are_one_to_seventy_two() {
    assert_eq!(ApprovalHours::default().get(), 4);
    assert_eq!(ApprovalHours::parse("1").unwrap().get(), 1);
    assert_eq!(ApprovalHours::parse(" 72 ").unwrap().get(), 72);
    for bad in ["0", "73", "-1", "4h", "", "1.5", "99999999999"] {
        assert!(ApprovalHours::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        ApprovalHours::parse("2").unwrap().duration(),
        chrono::Duration::hours(2)
    );
}

fn target(kind: TargetKind, name: &str) -> Target {
    Target::new(
        kind,
        Account::parse("111122223333").unwrap(),
        PrincipalName::parse(name).unwrap(),
    )
}

#[test]
fn the_principal_under_suspicion_and_its_sessions_are_the_suspect_and_nobody_else() {
    let role = target(TargetKind::Role, "Ops-Admin");
    let user = target(TargetKind::User, "deploy");
    for (caller, on, suspect) in [
        // A session of the role itself, whatever its name: its own revocation.
        (
            "arn:aws:sts::111122223333:assumed-role/Ops-Admin/alice",
            &role,
            true,
        ),
        (
            "arn:aws:sts::111122223333:assumed-role/ops-admin/i-0123456789abcdef0",
            &role,
            true,
        ),
        ("arn:aws:iam::111122223333:role/team/Ops-Admin", &role, true),
        ("arn:aws:iam::111122223333:user/deploy", &user, true),
        ("arn:aws:iam::111122223333:user/DEPLOY", &user, true),
        // Another principal: an operator.
        (
            "arn:aws:sts::111122223333:assumed-role/Security/alice",
            &role,
            false,
        ),
        (
            "arn:aws:sts::999988887777:assumed-role/Ops-Admin/alice",
            &role,
            false,
        ),
        ("arn:aws:iam::111122223333:user/deploy", &role, false),
        (
            "arn:aws:sts::111122223333:assumed-role/deploy/builder",
            &user,
            false,
        ),
        ("arn:aws:iam::111122223333:root", &role, false),
        // Not a principal ARN: never trusted to decide.
        ("alice", &role, true),
        ("", &user, true),
    ] {
        assert_eq!(is_the_suspect(caller, on), suspect, "{caller} on {on}");
    }
}

#[test]
fn the_person_behind_the_suspect_session_is_the_suspect_through_any_role_and_account() {
    // GuardDuty names an Identity Center session: alice signed in to Dev.
    let mut sso = target(
        TargetKind::IdentityCenterRole,
        "AWSReservedSSO_Dev_0123456789abcdef",
    );
    sso.session = Some(SessionName::parse("alice@corp.example").unwrap());
    let mut role = target(TargetKind::Role, "Ops-Admin");
    role.session = Some(SessionName::parse("alice").unwrap());
    for (caller, on, suspect) in [
        // Her sign-in reaches every permission set in every account she may use.
        (
            "arn:aws:sts::999988887777:assumed-role/AWSReservedSSO_SecurityAudit_fedcba9876543210/alice@corp.example",
            &sso,
            true,
        ),
        (
            "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_fedcba9876543210/ALICE@corp.example",
            &sso,
            true,
        ),
        (
            "arn:aws:sts::999988887777:assumed-role/Security/alice",
            &role,
            true,
        ),
        (
            "arn:aws:sts::999988887777:federated-user/alice",
            &role,
            true,
        ),
        // Somebody else, through the same permission set.
        (
            "arn:aws:sts::999988887777:assumed-role/AWSReservedSSO_SecurityAudit_fedcba9876543210/bob@corp.example",
            &sso,
            false,
        ),
        (
            "arn:aws:sts::999988887777:assumed-role/Security/alice.b",
            &role,
            false,
        ),
        // A long-term principal has no session name to share.
        ("arn:aws:iam::999988887777:user/alice", &role, false),
    ] {
        assert_eq!(is_the_suspect(caller, on), suspect, "{caller} on {on}");
    }
    // Without a session in the request, only the principal itself is the suspect.
    let whole_role = target(TargetKind::Role, "Ops-Admin");
    assert!(!is_the_suspect(
        "arn:aws:sts::999988887777:assumed-role/Security/alice",
        &whole_role
    ));
}

#[test]
fn an_approval_action_names_an_id_and_nothing_about_whom_it_revokes() {
    let id = "0123456789abcdef";
    assert_eq!(
        parse_action(json!({"action": "approve", "approval_id": id})),
        Ok(ApprovalAction::Approve {
            id: ApprovalId::parse(id).unwrap(),
            reason: None
        })
    );
    let refuse =
        parse_action(json!({"action": "refuse", "approval_id": id, "reason": "known scanner"}))
            .unwrap();
    assert_eq!(refuse.as_str(), "refuse");
    assert_eq!(refuse.id().unwrap().as_str(), id);
    assert_eq!(
        parse_action(json!({"action": "pending"})),
        Ok(ApprovalAction::Pending)
    );
    assert_eq!(ApprovalAction::Pending.id(), None);
    for bad in [
        json!({"action": "approve"}),
        json!({"action": "approve", "approval_id": "nope"}),
        json!({"action": "approve", "approval_id": id, "role": "someone-else"}),
        json!({"action": "approve", "approval_id": id, "account": "444455556666"}),
        json!({"action": "approve", "approval_id": id, "requested_by": "alice"}),
        json!({"action": "approve", "approval_id": id, "force": true}),
        json!({"action": "refuse", "approval_id": id, "reason": "line\nbreak"}),
        json!({"action": "pending", "approval_id": id}),
        json!({"action": "pending", "reason": "x"}),
        json!({"action": "revoke", "approval_id": id}),
        json!({"action": "approve", "approval_id": 7}),
        json!("approve"),
    ] {
        assert!(parse_action(bad.clone()).is_err(), "{bad} accepted");
    }
    assert!(is_approval_action(&json!({"action": "approve"})));
    assert!(is_approval_action(&json!({"action": "pending"})));
    assert!(!is_approval_action(&json!({"action": "revoke"})));
    assert!(!is_approval_action(&json!({"action": ["approve"]})));
    assert!(!is_approval_action(&json!(null)));
}

#[test]
fn an_approval_reads_back_strictly_and_keeps_its_bookkeeping_to_itself() {
    let mut asked = Approval::ask(
        &request("payments-api", Some("f1")),
        at(12, 0, 0),
        ApprovalHours::DEFAULT,
    );
    asked.notified = true;
    asked.run_finished = true;
    let json = serde_json::to_value(&asked).unwrap();
    assert!(json.get("notified").is_none(), "{json}");
    assert!(json.get("run_finished").is_none(), "{json}");
    assert!(json.get("decided_by").is_none(), "{json}");
    let back: Approval = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(
        back,
        Approval {
            notified: false,
            run_finished: false,
            ..asked.clone()
        }
    );
    let mut extra = json;
    extra["approved"] = json!(true);
    assert!(serde_json::from_value::<Approval>(extra).is_err());

    let note = asked.note();
    assert_eq!(note.id, asked.id);
    assert_eq!(note.expires_at, at(16, 0, 0));
    let note_json = serde_json::to_value(&note).unwrap();
    assert_eq!(
        note_json,
        json!({"id": asked.id.as_str(), "state": "pending", "expires_at": "2026-11-23T16:00:00Z"})
    );
    assert_eq!(
        approve_command(&asked.id),
        format!("cutoff approve {}", asked.id)
    );
    assert!(refuse_command(&asked.id).starts_with(&format!("cutoff refuse {} ", asked.id)));
    let body: serde_json::Value = serde_json::from_str(&approve_body(&asked.id)).unwrap();
    assert_eq!(
        parse_action(body).unwrap(),
        ApprovalAction::Approve {
            id: asked.id.clone(),
            reason: None
        }
    );
    // The trigger keeps everything the request said.
    assert_eq!(
        back.request.trigger,
        Trigger {
            finding_id: Some("f1".into()),
            ..back.request.trigger.clone()
        }
    );
}
