//! Both bodies of every kind of message: the chat notification keeps to the
//! documented schema and cutoff's bounds, every message names its region and request
//! id and links to the consoles, and outside text cannot break out of the markdown,
//! the JSON or SNS's size limit.

use serde_json::{Value, json};

use super::chat::{limits, neutralise, schema_problems};
use super::publish::key;
use super::*;
use crate::summary::{AccountFailure, DayRun, RunTotals, SweepDigest, SweepSummary};

const REQUEST_ID: &str = "5f1c0d3e-1111-2222-3333-444455556666";
const ACCOUNT: &str = "111122223333";
const FINDING: &str = "455aa647b26d9310341733d58b9b7442";

fn context() -> MessageContext {
    MessageContext::new(Some("us-east-1"), Vec::new())
}

/// An outcome of `status` for role `payments-api`, from a GuardDuty finding seen in
/// eu-west-1, published under [`REQUEST_ID`]; `change` edits its JSON first.
fn outcome(status: &str, change: impl FnOnce(&mut Value)) -> Outcome {
    let mut v = json!({
        "status": status,
        "target": {"kind": "role", "account": ACCOUNT, "name": "payments-api",
                   "access_key_id": "ASIAZXCVBNMASDFGHJKL", "session": null},
        "cutoff": "2026-11-23T12:00:02Z", "previous_cutoff": null,
        "policy": "AWSRevokeOlderSessions", "scope": "role",
        "owner": {"team": "payments", "topic": null},
        "trigger": {"source": "guardduty", "finding_id": FINDING,
                    "finding_type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
                    "severity": 8.0, "updated_at": null, "requested_by": null,
                    "reason": "severity 8.0 is at or above the revoke threshold 7"},
        "api_calls": 4, "error": null, "propagation": "eventual",
        "detail": "denied every session", "actions": [], "dry_run": false,
        "request_id": REQUEST_ID, "activity_region": "eu-west-1"
    });
    change(&mut v);
    serde_json::from_value(v).unwrap()
}

fn summary(failed: bool) -> SweepSummary {
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc();
    let mut s = SweepSummary::from_records(
        "run-7c1d",
        at("2026-11-23T12:00:00Z"),
        at("2026-11-23T12:02:00Z"),
        3,
        false,
        &[],
    );
    s.accounts_reported = 3;
    if failed {
        s.accounts_failed = 1;
        s.failures.push(AccountFailure {
            account: crate::principal::Account::parse("444455556666").unwrap(),
            kind: FailureKind::AccessDenied,
            message: "cannot assume cutoff-member <!channel>".into(),
        });
    }
    s
}

/// A daily digest made by run `run-7c1d`: one quiet run, one that moved a cutoff,
/// one with a failed account, one unfinished.
fn digest() -> SweepDigest {
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc();
    let run = |id: &str, totals: Option<RunTotals>| DayRun {
        run_id: id.to_owned(),
        started_at: at("2026-11-22T10:00:00Z"),
        dry_run: false,
        accounts: 3,
        totals,
    };
    let quiet = RunTotals {
        accounts_reported: 3,
        principals_scanned: 40,
        ..RunTotals::default()
    };
    SweepDigest::of_day(
        chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
        &[
            run("run-a", Some(quiet.clone())),
            run(
                "run-b",
                Some(RunTotals {
                    cutoffs_moved: 2,
                    ..quiet.clone()
                }),
            ),
            run(
                "run-c",
                Some(RunTotals {
                    accounts_failed: 1,
                    ..quiet
                }),
            ),
            run("run-d", None),
        ],
        at("2026-11-23T00:05:00Z"),
        "run-7c1d",
    )
}

/// Every kind of message cutoff sends: (what, message).
fn every_kind() -> Vec<(&'static str, SnsMessage)> {
    let ctx = context();
    let failed = {
        let o = outcome("applied", |_| {});
        o.failed(
            FailureKind::AccessDenied,
            "iam:PutRolePolicy: not authorized",
        )
    };
    let follow_up = outcome("applied", |v| {
        v["trigger"]["source"] = json!("chain");
        v["chain"] = json!({
            "run": 2, "runs": 3, "key": "ASIAZXCVBNMASDFGHJKL",
            "searched": ["111122223333 eu-west-1"],
            "from": "2026-11-23T11:00:00Z", "to": "2026-11-23T12:00:00Z",
            "links": [{"id": "e1", "depth": 1, "by": "ASIAZXCVBNMASDFGHJKL", "account": ACCOUNT,
                       "found": "assumed role admin in 444455556666 as session `hop`",
                       "result": "applied: revoked", "new": true}],
            "complete": true
        });
    });
    let mut invalid = Outcome::invalid_request("missing field `account`");
    invalid.request_id = Some(REQUEST_ID.to_owned());
    vec![
        (
            "applied",
            render_in(&outcome("applied", |_| {}), true, &ctx),
        ),
        (
            "partial",
            render_in(
                &outcome("partial", |v| {
                    v["still_works"] = json!([{"credential": "access key AKIAIOSFODNN7EXAMPLE", "why": "UpdateAccessKey was refused"}]);
                    v["error"] = json!({"kind": "access_denied", "message": "iam:UpdateAccessKey"});
                }),
                true,
                &ctx,
            ),
        ),
        ("failed", render_in(&failed, false, &ctx)),
        (
            "alerted",
            render_in(
                &outcome("alerted", |v| {
                    v["cutoff"] = Value::Null;
                    v["trigger"]["severity"] = json!(5.0);
                }),
                true,
                &ctx,
            ),
        ),
        (
            "released",
            render_in(
                &outcome("released", |v| {
                    v["trigger"] = json!({"source": "manual", "requested_by": "arn:aws:iam::999988887777:role/Operator", "requested_by_verified": true});
                    v["activity_region"] = Value::Null;
                }),
                true,
                &ctx,
            ),
        ),
        (
            "already revoked",
            render_in(&outcome("already_revoked", |_| {}), true, &ctx),
        ),
        ("follow-up", render_in(&follow_up, true, &ctx)),
        ("failure record", render_in(&invalid, false, &ctx)),
        ("sweep summary", render_summary_in(&summary(true), &ctx)),
        ("clean sweep", render_summary_in(&summary(false), &ctx)),
        ("sweep digest", render_digest_in(&digest(), &ctx)),
        ("approval: asked", render_in(&asked(), true, &ctx)),
        (
            "approval: refused",
            render_in(
                &outcome("approval_refused", |v| {
                    awaiting(v);
                    v["approval"]["state"] = json!("refused");
                    v["approval"]["decided_by"] = json!(OPERATOR);
                    v["approval"]["reason"] = json!("a known scanner <!channel>");
                }),
                true,
                &ctx,
            ),
        ),
        (
            "approval: expired",
            render_in(
                &outcome("approval_expired", |v| {
                    awaiting(v);
                    v["approval"]["state"] = json!("expired");
                }),
                true,
                &ctx,
            ),
        ),
    ]
}

const APPROVAL: &str = "0123456789abcdef";
const OPERATOR: &str = "arn:aws:sts::999988887777:assumed-role/SecurityOps/alice";

/// An outcome's JSON as an approval's: nothing written, a medium finding, the approval.
fn awaiting(v: &mut Value) {
    v["cutoff"] = Value::Null;
    v["policy"] = Value::Null;
    v["propagation"] = Value::Null;
    v["trigger"]["severity"] = json!(5.0);
    v["approval"] =
        json!({"id": APPROVAL, "state": "pending", "expires_at": "2026-11-23T16:00:00Z"});
}

fn asked() -> Outcome {
    outcome("awaiting_approval", awaiting)
}

#[test]
fn a_question_carries_the_command_that_approves_it_and_when_it_expires_in_both_bodies() {
    let m = render_in(&asked(), true, &context());
    assert_eq!(
        m.subject,
        "cutoff APPROVAL NEEDED: revoke sessions of role payments-api in 111122223333?"
    );
    let chat = &m.chat.content.description;
    for body in [text(&m), chat.as_str()] {
        assert!(body.contains("cutoff approve 0123456789abcdef"), "{body}");
        assert!(body.contains("cutoff refuse 0123456789abcdef"), "{body}");
        assert!(body.contains("2026-11-23T16:00:00Z"), "{body}");
    }
    let body = text(&m);
    assert!(
        body.starts_with("APPROVAL NEEDED: revoke the active sessions of IAM role payments-api"),
        "{body}"
    );
    assert!(
        body.contains(r#"POST {"action":"approve","approval_id":"0123456789abcdef"}"#),
        "{body}"
    );
    assert!(body.contains("cannot decide its own revocation"), "{body}");
    assert!(body.contains("nothing was written"), "{body}");
    // The command survives when the chat's description must be cut to its essentials.
    assert!(
        m.chat
            .compact()
            .content
            .description
            .contains("cutoff approve 0123456789abcdef")
    );
    let steps = &m.chat.content.next_steps;
    assert!(
        steps[0].contains("cutoff approve 0123456789abcdef"),
        "{steps:?}"
    );
    // Someone must decide: an incident, in its attributes and its chat keywords.
    let attrs: std::collections::BTreeMap<_, _> = m.attributes.iter().cloned().collect();
    assert_eq!(attrs["cutoff_status"], "awaiting_approval");
    assert_eq!(attrs["cutoff_class"], "incident");
    assert!(
        m.chat
            .content
            .keywords
            .contains(&"awaiting-approval".to_owned())
    );
    // The JSON part carries the approval for tools.
    let json: Value = serde_json::from_str(m.body.split(SEPARATOR).nth(1).unwrap()).unwrap();
    assert_eq!(json["approval"]["id"], APPROVAL);
}

#[test]
fn a_refusal_is_routine_an_expiry_is_an_incident_and_neither_offers_to_approve() {
    let refused = render_in(
        &outcome("approval_refused", |v| {
            awaiting(v);
            v["approval"]["state"] = json!("refused");
            v["approval"]["decided_by"] = json!(OPERATOR);
            v["approval"]["decided_at"] = json!("2026-11-23T12:30:00Z");
            v["approval"]["reason"] = json!("the team's own scanner");
        }),
        true,
        &context(),
    );
    let expired = render_in(
        &outcome("approval_expired", |v| {
            awaiting(v);
            v["approval"]["state"] = json!("expired");
        }),
        true,
        &context(),
    );
    assert!(
        refused
            .subject
            .starts_with("cutoff: approval refused, NOT revoking role payments-api"),
        "{}",
        refused.subject
    );
    assert!(
        expired
            .subject
            .starts_with("cutoff: approval EXPIRED, NOT revoked: role payments-api"),
        "{}",
        expired.subject
    );
    let class = |m: &SnsMessage| {
        m.attributes
            .iter()
            .find(|(k, _)| k == "cutoff_class")
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(class(&refused), "routine");
    assert_eq!(class(&expired), "incident");
    let body = text(&refused);
    assert!(
        body.contains(&format!("{OPERATOR} refused the revocation")),
        "{body}"
    );
    assert!(body.contains("Refused by:"), "{body}");
    assert!(body.contains("the team's own scanner"), "{body}");
    let body = text(&expired);
    assert!(body.contains("Nobody approved the revocation"), "{body}");
    assert!(
        body.contains("Expired at:       2026-11-23T16:00:00Z"),
        "{body}"
    );
    for m in [&refused, &expired] {
        let body = text(m);
        assert!(!body.contains("cutoff approve"), "{body}");
        assert!(
            body.contains("cutoff revoke --account 111122223333 --role payments-api"),
            "{body}"
        );
    }
}

#[test]
fn a_revocation_that_was_approved_says_who_approved_it() {
    let m = render_in(
        &outcome("applied", |v| {
            v["trigger"]["severity"] = json!(5.0);
            v["trigger"]["approved_by"] = json!(OPERATOR);
            v["approval"] = json!({"id": APPROVAL, "state": "approved", "expires_at": "2026-11-23T16:00:00Z",
                                   "decided_by": OPERATOR, "decided_at": "2026-11-23T12:10:00Z"});
        }),
        true,
        &context(),
    );
    let body = text(&m);
    assert!(
        body.contains(&format!("Approved by:      {OPERATOR} (verified by AWS")),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "Approved by:      {OPERATOR} at 2026-11-23T12:10:00Z"
        )),
        "{body}"
    );
    assert!(!body.contains("cutoff approve"), "{body}");
    assert!(
        m.chat.content.description.contains("approved by"),
        "{}",
        m.chat.content.description
    );
}

fn chat_value(m: &SnsMessage) -> Value {
    serde_json::from_str(&m.chat.to_json()).unwrap()
}

fn text(m: &SnsMessage) -> &str {
    m.body.split(SEPARATOR).next().unwrap()
}

/// The `https://…` links of `text` (up to the next whitespace).
fn links_in(text: &str) -> Vec<&str> {
    text.match_indices("https://")
        .map(|(i, _)| {
            let rest = &text[i..];
            &rest[..rest.find(char::is_whitespace).unwrap_or(rest.len())]
        })
        .collect()
}

#[test]
fn every_kind_of_message_has_a_chat_body_of_the_documented_schema_within_bounds() {
    for (what, m) in every_kind() {
        let chat = chat_value(&m);
        assert_eq!(
            schema_problems(&chat),
            Vec::<String>::new(),
            "{what}: {chat:#}"
        );
        assert_eq!(chat["version"], "1.0");
        assert_eq!(chat["source"], "custom");
        assert_eq!(chat["content"]["textType"], "client-markdown");
        assert_eq!(chat["metadata"]["enableCustomActions"], false, "{what}");
        let event_type = chat["metadata"]["eventType"].as_str().unwrap();
        assert!(event_type.starts_with("cutoff-"), "{what}: {event_type}");
        assert!(!chat["content"]["title"].as_str().unwrap().is_empty());
        // The schema check itself refuses what is not the schema.
        let mut wrong = chat.clone();
        wrong["content"]["body"] = json!("x");
        wrong["version"] = json!(1.0);
        wrong["content"]["nextSteps"] = json!("a string");
        assert_eq!(schema_problems(&wrong).len(), 3, "{what}");
    }
}

#[test]
fn every_kind_of_message_names_its_region_and_request_id_in_both_bodies() {
    for (what, m) in every_kind() {
        let id = if what.contains("sweep") {
            "run-7c1d"
        } else {
            REQUEST_ID
        };
        let chat = &m.chat.content.description;
        for body in [text(&m), chat.as_str()] {
            assert!(body.contains(id), "{what}: no request id in\n{body}");
            assert!(body.contains("Request id:"), "{what}");
            assert!(body.contains("Region:"), "{what}");
            assert!(
                body.contains("us-east-1"),
                "{what}: no home region in\n{body}"
            );
        }
        assert_eq!(
            m.chat
                .metadata
                .additional_context
                .get("homeRegion")
                .map(String::as_str),
            Some("us-east-1")
        );
    }
    let (_, applied) = &every_kind()[0];
    for body in [text(applied), applied.chat.content.description.as_str()] {
        assert!(body.contains("eu-west-1"), "the finding's region: {body}");
    }
}

#[test]
fn a_message_without_request_id_or_region_says_so_rather_than_leaving_it_out() {
    let o = outcome("applied", |v| {
        v["request_id"] = Value::Null;
        v["activity_region"] = Value::Null;
    });
    let m = render(&o, true);
    for body in [text(&m), m.chat.content.description.as_str()] {
        assert!(
            body.contains("Request id:") && body.contains("not recorded"),
            "{body}"
        );
        assert!(
            body.contains("Region:") && body.contains("unknown"),
            "{body}"
        );
        assert!(links_in(body).is_empty(), "no region, no link: {body}");
    }
}

#[test]
fn links_are_the_console_pages_of_the_partition_well_formed_and_encoded() {
    let with_region = |region: &str| {
        let o = outcome("applied", |v| {
            v["activity_region"] = Value::Null;
            v["target"]["name"] = json!("deploy+ci@build");
        });
        render_in(&o, true, &MessageContext::new(Some(region), Vec::new()))
    };
    for (region, host) in [
        ("us-east-1", "https://console.aws.amazon.com/"),
        ("cn-north-1", "https://console.amazonaws.cn/"),
        ("us-gov-west-1", "https://console.amazonaws-us-gov.com/"),
    ] {
        let m = with_region(region);
        for body in [text(&m), m.chat.content.description.as_str()] {
            let links = links_in(body);
            assert_eq!(links.len(), 3, "{region}: {links:?}");
            for link in links {
                assert!(link.starts_with(host), "{link}");
                assert!(
                    link.bytes()
                        .all(|b| b.is_ascii_graphic() && !b"<>\"`[]{}|\\^".contains(&b)),
                    "{link}"
                );
            }
            assert!(
                body.contains("/iam/home#/roles/details/deploy%2Bci%40build"),
                "{body}"
            );
            assert!(body.contains(&format!(
                "region={region}#/findings?macros=current&fId={FINDING}"
            )));
        }
    }
    // An isolated partition's console is not public: the region is named, nothing linked.
    let m = with_region("us-iso-east-1");
    assert!(links_in(&m.body).is_empty(), "{}", m.body);
    assert!(m.chat.content.description.contains("`us-iso-east-1`"));
}

#[test]
fn messages_about_one_principal_share_a_thread_and_others_do_not() {
    let thread = |m: &SnsMessage| m.chat.metadata.thread_id.clone();
    let kinds = every_kind();
    let principal = thread(&kinds[0].1).unwrap();
    assert_eq!(principal, "cutoff-111122223333-role-payments-api");
    for (what, m) in &kinds[..7] {
        assert_eq!(thread(m).as_deref(), Some(principal.as_str()), "{what}");
    }
    let other = render_in(
        &outcome("applied", |v| v["target"]["name"] = json!("ledger-writer")),
        true,
        &context(),
    );
    assert_ne!(thread(&other), Some(principal.clone()));
    // No principal, no thread: a request that could not be read, a sweep. An
    // approval's messages are about the principal.
    for (what, m) in &kinds[7..] {
        let expected = what.starts_with("approval:").then(|| principal.clone());
        assert_eq!(thread(m), expected, "{what}");
    }
}

#[test]
fn the_chat_says_what_happened_the_cutoff_who_asked_the_owner_and_what_to_do() {
    let m = render_in(&outcome("applied", |_| {}), true, &context());
    let chat = &m.chat;
    assert!(
        chat.content
            .title
            .starts_with("🔒 cutoff: revoked sessions of role payments-api"),
        "{}",
        chat.content.title
    );
    let d = &chat.content.description;
    for expected in [
        "*cutoff revoked the active sessions of IAM role payments-api in account 111122223333.*",
        "*Cutoff:* `2026-11-23T12:00:02Z`",
        "*Asked by:* Amazon GuardDuty finding",
        "severity 8.0 (High)",
        "*Owner:* team `payments`",
    ] {
        assert!(d.contains(expected), "missing {expected:?} in\n{d}");
    }
    assert!(
        chat.content
            .next_steps
            .iter()
            .any(|s| s.contains("cutoff release --account 111122223333 --role payments-api")),
        "{:?}",
        chat.content.next_steps
    );
    assert_eq!(
        chat.content.keywords,
        [
            "applied",
            "incident",
            "guardduty",
            "role",
            ACCOUNT,
            "severity-high"
        ]
    );
    assert_eq!(chat.metadata.event_type, "cutoff-applied");
    assert_eq!(chat.metadata.summary, m.subject);

    let partial = &every_kind()[1].1.chat;
    assert!(partial.content.title.starts_with("🚨 cutoff PARTIAL"));
    assert!(
        partial
            .content
            .description
            .contains("*Still works:* `access key AKIAIOSFODNN7EXAMPLE`")
    );
    assert!(
        partial.content.next_steps[0].contains("stop it by hand now"),
        "{:?}",
        partial.content.next_steps
    );
    let failed = &every_kind()[2].1.chat;
    assert!(
        failed
            .content
            .description
            .contains("*Error:* `access_denied`: `iam:PutRolePolicy: not authorized`")
    );
    assert!(failed.content.description.contains("*Owner:* none known"));
    assert!(
        failed
            .content
            .next_steps
            .iter()
            .any(|s| s.contains("retried automatically"))
    );
    let routine = &every_kind()[5].1.chat;
    assert!(
        routine.content.title.starts_with("ℹ️"),
        "{}",
        routine.content.title
    );
    assert!(routine.content.keywords.contains(&"routine".to_owned()));
    let follow_up = &every_kind()[6].1.chat;
    assert!(
        follow_up
            .content
            .description
            .contains("Follow-up 2 of 3 of key ASIAZXCVBNMASDFGHJKL: 1 link found, 1 new")
    );
    assert_eq!(follow_up.metadata.event_type, "cutoff-follow-up");
    let sweep = &every_kind()[8].1.chat;
    assert!(
        sweep
            .content
            .description
            .contains("*Not swept:* account `444455556666`")
    );
    assert_eq!(sweep.metadata.event_type, "cutoff-sweep");
}

#[test]
fn outside_text_cannot_mention_link_format_or_close_a_code_span() {
    assert_eq!(
        neutralise("@channel @here @Everyone @all!"),
        "＠channel ＠here ＠Everyone ＠all!"
    );
    assert_eq!(
        neutralise("alice@example.com x@here @herebert"),
        "alice@example.com x@here @herebert"
    );
    assert_eq!(
        neutralise("<!here> <@U123|bob> <https://e.x|click>"),
        "‹!here› ‹@U123|bob› ‹https:⁄⁄e.x|click›"
    );
    assert_eq!(
        neutralise("[log in](https://evil.example) *NOW* ~x~ `x`"),
        "［log in］(https:⁄⁄evil.example) ∗NOW∗ ∼x∼ 'x'"
    );
    assert_eq!(neutralise("a\nb\u{202e}c"), "a b c");

    let hostile =
        "x` *ACT NOW* <!channel> @here [reset](https://evil.example/login) \"} ]}\n\u{1b}[31m";
    let o = outcome("failed", |v| {
        v["trigger"]["finding_type"] = json!(hostile);
        v["trigger"]["reason"] = json!(hostile);
        v["trigger"]["requested_by"] = json!(hostile);
        v["trigger"]["finding_id"] = json!(hostile);
        v["error"] = json!({"kind": "access_denied", "message": hostile});
        v["owner"]["team"] = json!(hostile);
        v["detail"] = json!(hostile);
        v["still_works"] = json!([{"credential": hostile, "why": hostile}]);
        v["request_id"] = json!(hostile);
        v["target"]["name"] = json!("@here");
    });
    let m = render_in(
        &o,
        true,
        &MessageContext::new(Some("us-east-1"), vec![hostile.to_owned()]),
    );
    let chat = chat_value(&m);
    assert_eq!(schema_problems(&chat), Vec::<String>::new());
    let content = &m.chat.content;
    let mut texts = vec![
        content.title.clone(),
        content.description.clone(),
        m.chat.metadata.summary.clone(),
    ];
    texts.extend(content.next_steps.iter().cloned());
    texts.extend(content.keywords.iter().cloned());
    for t in &texts {
        for forbidden in [
            "<", ">", "[", "]", "@here", "@channel", "*ACT", "://evil", "\u{1b}", "\n\n",
        ] {
            assert!(!t.contains(forbidden), "{forbidden:?} in {t}");
        }
        for line in t.lines() {
            assert_eq!(
                line.matches('`').count() % 2,
                0,
                "an unbalanced code span: {line}"
            );
        }
    }
    // Only cutoff's own links are links; a hostile finding id gets none.
    for link in links_in(&content.description) {
        assert!(
            link.starts_with("https://console.aws.amazon.com/"),
            "{link}"
        );
        assert!(!link.contains("fId="), "{link}");
    }
    // Values that are not custom action variables are left out of the context.
    assert!(!m.chat.metadata.additional_context.contains_key("requestId"));
    assert_eq!(
        m.chat
            .metadata
            .additional_context
            .get("principalName")
            .map(String::as_str),
        Some("@here")
    );
    // The JSON holds: the whole structure parses, and each body is the one built.
    let structure: Value = serde_json::from_str(&message_structure(&m)).unwrap();
    assert_eq!(structure[key::DEFAULT], m.body.as_str());
    let https: Value = serde_json::from_str(structure[key::HTTPS].as_str().unwrap()).unwrap();
    assert_eq!(https, chat);
}

#[test]
fn a_flood_of_outside_text_keeps_every_field_in_bounds_and_the_essentials_in_the_description() {
    let long = "é".repeat(10_000);
    let o = outcome("partial", |v| {
        v["trigger"]["finding_type"] = json!(long);
        v["trigger"]["reason"] = json!(long);
        v["error"] = json!({"kind": "access_denied", "message": long});
        v["still_works"] = json!(vec![json!({"credential": long, "why": long}); 40]);
    });
    let problems = vec![long.clone(); 20];
    let m = render_in(&o, true, &MessageContext::new(Some("us-east-1"), problems));
    let chat = chat_value(&m);
    assert_eq!(schema_problems(&chat), Vec::<String>::new());
    let d = &m.chat.content.description;
    assert!(d.chars().count() <= limits::DESCRIPTION);
    for essential in [
        "*Region:*",
        REQUEST_ID,
        "*Finding:* https://",
        "*CloudTrail:* https://",
        "more lines in the e-mail",
    ] {
        assert!(d.contains(essential), "{essential} missing from\n{d}");
    }
    assert!(m.chat.content.next_steps.len() <= limits::NEXT_STEPS);
    assert!(
        m.chat
            .content
            .next_steps
            .iter()
            .all(|s| s.chars().count() <= limits::NEXT_STEP)
    );
    let compact = m.chat.compact();
    assert!(compact.content.description.contains(REQUEST_ID));
    assert!(compact.content.description.len() < d.len());
}

#[test]
fn the_sns_message_is_one_body_per_protocol_and_e_mail_keeps_the_text() {
    let m = render_in(&outcome("applied", |_| {}), true, &context());
    let structure: Value = serde_json::from_str(&message_structure(&m)).unwrap();
    let map = structure.as_object().unwrap();
    assert_eq!(
        map.keys().collect::<Vec<_>>(),
        [key::DEFAULT, key::EMAIL, key::HTTPS]
    );
    assert!(map.values().all(Value::is_string));
    assert_eq!(map[key::DEFAULT], m.body.as_str());
    assert_eq!(map[key::EMAIL], m.body.as_str());
    let back: Outcome = serde_json::from_str(m.body.split(SEPARATOR).nth(1).unwrap()).unwrap();
    assert_eq!(back.request_id.as_deref(), Some(REQUEST_ID));
}

/// A follow-up whose 100 links carry 512 four-byte characters in each of their five
/// texts: megabytes of text, in both the text and its JSON.
fn huge_follow_up() -> Outcome {
    let big = "🔒".repeat(600);
    outcome("partial", |v| {
        v["trigger"]["source"] = json!("chain");
        let link = json!({"id": big, "depth": 1, "by": big, "account": big, "found": big, "result": big, "new": true});
        v["chain"] = json!({
            "run": 1, "runs": 3, "key": "ASIAZXCVBNMASDFGHJKL", "searched": vec![big.clone(); 20],
            "from": "2026-11-23T11:00:00Z", "to": "2026-11-23T12:00:00Z",
            "links": vec![link; 100], "complete": false, "gaps": vec![big.clone(); 20]
        });
    })
}

#[test]
fn a_message_too_large_for_sns_is_shrunk_chat_first_and_still_parses() {
    let m = render_in(&huge_follow_up(), true, &context());
    assert!(
        m.body.len() > 2 * SNS_MESSAGE_MAX_BYTES,
        "{} bytes: not a test of the limit",
        m.body.len()
    );
    let message = message_structure(&m);
    // With its attributes (SNS counts them) within the limit, less cutoff's 1 KiB
    // margin, and not far below it.
    let whole = message.len() + super::attributes_bytes(&m);
    assert!(
        whole <= SNS_MESSAGE_MAX_BYTES - 1024,
        "{whole} bytes with the attributes"
    );
    assert!(
        whole > SNS_MESSAGE_MAX_BYTES - 2048,
        "cut far more than needed: {whole}"
    );
    let structure: Value = serde_json::from_str(&message).unwrap();
    let map = structure.as_object().unwrap();
    assert_eq!(
        map.keys().collect::<Vec<_>>(),
        [key::DEFAULT, key::HTTPS],
        "e-mail falls back to default"
    );
    let default = map[key::DEFAULT].as_str().unwrap();
    assert!(
        default.starts_with("ACTION NEEDED"),
        "the text keeps its start"
    );
    assert!(default.contains("SNS's 256 KiB"), "and says it was cut");
    let chat: Value = serde_json::from_str(map[key::HTTPS].as_str().unwrap()).unwrap();
    assert_eq!(schema_problems(&chat), Vec::<String>::new());
    let description = chat["content"]["description"].as_str().unwrap();
    assert_eq!(
        description,
        m.chat.compact().content.description,
        "the chat was shrunk first"
    );
    assert!(description.contains(REQUEST_ID) && description.contains("*Region:*"));
}

#[test]
fn each_shrinking_step_is_taken_only_when_needed() {
    // Fits whole: nothing shrunk.
    let m = render_in(&outcome("applied", |_| {}), true, &context());
    let whole: Value = serde_json::from_str(&message_structure(&m)).unwrap();
    assert_eq!(whole[key::HTTPS].as_str().unwrap(), m.chat.to_json());
    assert_eq!(whole[key::EMAIL], m.body.as_str());
    // A text just too large to go twice, small enough to go once: e-mail is left out,
    // the text is whole.
    let mut big = m.clone();
    big.body.push_str(&"x".repeat(SNS_MESSAGE_MAX_BYTES / 2));
    let once: Value = serde_json::from_str(&message_structure(&big)).unwrap();
    assert_eq!(once[key::DEFAULT], big.body.as_str());
    assert!(once.get(key::EMAIL).is_none());
    // Too large to go once with its JSON: the JSON is left out, the text whole.
    let mut bigger = m.clone();
    let (head, json_part) = m.body.split_once(SEPARATOR).unwrap();
    bigger.body = format!(
        "{head}{SEPARATOR}{json_part}{}",
        " ".repeat(SNS_MESSAGE_MAX_BYTES)
    );
    let without: Value = serde_json::from_str(&message_structure(&bigger)).unwrap();
    let text = without[key::DEFAULT].as_str().unwrap();
    assert!(!text.contains(SEPARATOR));
    assert!(text.starts_with(head.trim_end()));
    assert!(text.contains("outcome JSON is left out"));
}

/// The `cutoff_class` attributes of a message: exactly one is expected.
fn classes(m: &SnsMessage) -> Vec<&str> {
    m.attributes
        .iter()
        .filter(|(name, _)| name == attribute::CLASS)
        .map(|(_, value)| value.as_str())
        .collect()
}

#[test]
fn every_kind_of_message_has_one_class_and_only_routine_news_is_routine() {
    use crate::identity_center::{
        DISABLE_USER, PermissionSetDeny, PermissionSetState, SsoAction, SsoContainment,
    };
    let ctx = context();
    let schedule = |status: &str| {
        outcome(status, |v| {
            v["trigger"] = json!({"source": "schedule", "reason": "scheduled sweep"});
            v["request_id"] = json!("run-7c1d");
        })
    };
    let chain = |new: bool, complete: bool| {
        outcome("applied", |v| {
            v["trigger"]["source"] = json!("chain");
            v["chain"] = json!({
                "run": 3, "runs": 3, "key": "ASIAZXCVBNMASDFGHJKL",
                "searched": ["111122223333 eu-west-1"],
                "from": "2026-11-23T11:00:00Z", "to": "2026-11-23T12:00:00Z",
                "links": [{"id": "e1", "depth": 1, "by": "ASIAZXCVBNMASDFGHJKL", "account": ACCOUNT,
                           "found": "assumed role admin in 444455556666 as session `hop`",
                           "result": "applied: revoked", "new": new}],
                "complete": complete
            });
        })
    };
    let mut identity_center = outcome("applied", |v| {
        v["target"]["kind"] = json!("identity_center_role");
        v["target"]["name"] = json!("AWSReservedSSO_Admin_0123456789abcdef");
        v["target"]["session"] = json!("alice@example.com");
        v["cutoff"] = Value::Null;
    });
    identity_center.identity_center = Some(SsoContainment {
        action: SsoAction::Deny,
        user_name: "alice@example.com".to_owned(),
        user_id: "906752d1-b1a2-4c3d-8e9f-0a1b2c3d4e5f".to_owned(),
        instance_arn: "arn:aws:sso:::instance/ssoins-7223a4f1b1a8e2c0".to_owned(),
        permission_sets: vec![PermissionSetDeny {
            arn: "arn:aws:sso:::permissionSet/ssoins-7223a4f1b1a8e2c0/ps-1".to_owned(),
            name: "Admin".to_owned(),
            accounts: vec![crate::principal::Account::parse(ACCOUNT).unwrap()],
            accounts_total: 1,
            state: PermissionSetState::Denied,
            note: None,
        }],
        permission_sets_total: 1,
        service_control_policy: None,
        to_do: DISABLE_USER.to_owned(),
    });
    let changes_only = {
        let mut s = summary(false);
        s.cutoffs_moved = 3;
        s.statements_removed = 2;
        s
    };
    let dry_run_would_change = {
        let mut s = changes_only.clone();
        s.dry_run = true;
        s
    };
    let mut digest_with_failures = digest();
    assert!(digest_with_failures.failures > 0 && digest_with_failures.unfinished_runs > 0);
    digest_with_failures.made_by = "run-next".to_owned();
    let empty_day = SweepDigest::of_day(
        chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
        &[],
        chrono::Utc::now(),
        "run-x",
    );

    use MessageClass::{Incident, Routine};
    let mut cases: Vec<(String, SnsMessage, MessageClass)> = every_kind()
        .into_iter()
        .map(|(what, m)| {
            let class = match what {
                "already revoked" | "clean sweep" | "sweep digest" | "approval: refused" => Routine,
                _ => Incident,
            };
            (what.to_owned(), m, class)
        })
        .collect();
    let more = [
        (
            "intake's alert",
            render_in(&outcome("alerted", |_| {}), false, &ctx),
            Incident,
        ),
        (
            "protected",
            render_in(&outcome("protected", |_| {}), true, &ctx),
            Incident,
        ),
        (
            "unmodifiable",
            render_in(&outcome("unmodifiable", |_| {}), true, &ctx),
            Incident,
        ),
        (
            "dry run",
            render_in(&outcome("dry_run", |_| {}), true, &ctx),
            Incident,
        ),
        (
            "identity center user denied",
            render_in(&identity_center, true, &ctx),
            Incident,
        ),
        (
            "rolling cutoff moved",
            render_in(&schedule("applied"), true, &ctx),
            Routine,
        ),
        (
            "sweep failed on a principal",
            render_in(
                &schedule("failed").failed(FailureKind::AccessDenied, "iam:PutRolePolicy"),
                true,
                &ctx,
            ),
            Incident,
        ),
        (
            "follow-up with a new link",
            render_in(&chain(true, true), true, &ctx),
            Incident,
        ),
        (
            "follow-up incomplete",
            render_in(&chain(false, false), true, &ctx),
            Incident,
        ),
        (
            "follow-up, nothing new",
            render_in(&chain(false, true), true, &ctx),
            Routine,
        ),
        (
            "summary with failures",
            render_summary_in(&summary(true), &ctx),
            Incident,
        ),
        (
            "summary with changes only",
            render_summary_in(&changes_only, &ctx),
            Routine,
        ),
        (
            "dry-run summary that would change",
            render_summary_in(&dry_run_would_change, &ctx),
            Routine,
        ),
        (
            "digest of a day with failures",
            render_digest_in(&digest_with_failures, &ctx),
            Routine,
        ),
        (
            "digest of a day without runs",
            render_digest_in(&empty_day, &ctx),
            Routine,
        ),
    ];
    cases.extend(more.into_iter().map(|(w, m, c)| (w.to_owned(), m, c)));
    // Every status an outcome can have is among them.
    for status in [
        "applied",
        "partial",
        "already_revoked",
        "dry_run",
        "protected",
        "unmodifiable",
        "alerted",
        "released",
        "failed",
        "awaiting_approval",
        "approval_refused",
        "approval_expired",
    ] {
        assert!(
            cases.iter().any(|(_, m, _)| m
                .attributes
                .contains(&(attribute::STATUS.to_owned(), status.to_owned()))),
            "no message of status {status}"
        );
    }
    for (what, m, class) in &cases {
        assert_eq!(classes(m), [class.as_str()], "{what}");
        // The chat's keywords say it too (filters see the attribute, people the word).
        assert!(
            m.chat.content.keywords.iter().any(|k| k == class.as_str()),
            "{what}: {:?}",
            m.chat.content.keywords
        );
    }
}

/// A user named like a host (IAM allows dots), created by the holder of a stolen key:
/// Slack and Teams link bare host names, so outside a code span its dots are broken
/// (the chat shows `www․aws-signin-verify․com`), and only cutoff's own links link.
#[test]
fn a_principal_named_like_a_host_is_never_a_link_in_the_chat() {
    let host = "www.aws-signin-verify.com";
    let o = outcome("applied", |v| {
        v["target"] = json!({"kind": "user", "account": ACCOUNT, "name": host,
                             "access_key_id": null, "session": null});
        v["detail"] = json!(format!("denied every session of user `{host}`; see {host}"));
    });
    let m = render_in(&o, true, &context());
    let chat = chat_value(&m);
    // Outside cutoff's code spans and its own links (a console link may carry the
    // name in its query: it is cutoff's link, not a new one).
    let outside_code = |text: &str| -> String {
        text.lines()
            .filter(|l| !l.contains("https://console.aws.amazon.com/"))
            .flat_map(|l| l.split('`').step_by(2).chain(["\n"]))
            .collect()
    };
    for field in [
        &chat["content"]["title"],
        &chat["content"]["description"],
        &chat["metadata"]["summary"],
    ] {
        let text = field.as_str().unwrap();
        assert!(!outside_code(text).contains(host), "{text}");
    }
    let next_steps = chat["content"]["nextSteps"].as_array().unwrap();
    for step in next_steps {
        assert!(
            !outside_code(step.as_str().unwrap()).contains(host),
            "{step}"
        );
    }
    assert!(
        chat["content"]["description"]
            .as_str()
            .unwrap()
            .contains("www․aws-signin-verify․com"),
        "still readable"
    );
    // The exact name stays in the e-mail text.
    assert!(text(&m).contains(host));
}
