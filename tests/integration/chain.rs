//! The follow-up (issue [11]) through the real functions: a GuardDuty finding into
//! intake, the revoker's first deny, its follow-up schedules in moto's Scheduler, and
//! each scheduled run delivered to the revoker binary as Scheduler would deliver it.
//! CloudTrail's `LookupEvents` is the stand-in of `cutoff_tests::event_history` (moto
//! serves none), which reads the history of the account whose credentials signed the
//! lookup; IAM, STS, SQS, EventBridge, SNS and DynamoDB are moto.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Timelike, Utc};
use serde_json::{Value, json};

use cutoff_domain::policy::{PolicyDocument, SESSION_POLICY_NAME};
use cutoff_tests::aws::{ACCOUNT, REGION};
use cutoff_tests::evaluator::{Decision, EvalRequest, evaluate};
use cutoff_tests::moto::MotoServer;
use cutoff_tests::pipeline::Pipeline;

/// Another account of the Organization, reached through its member role.
const OTHER: &str = "210987654321";
const STOLEN: &str = "ASIAZXCVBNMASDFGHJKL";

fn prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("chain{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `minute` minutes into the last hour: the sessions a run denies must still be able
/// to be alive (a role session lives 12 hours at most).
fn at(minute: u32) -> DateTime<Utc> {
    let hour_ago = Utc::now() - chrono::Duration::hours(1);
    hour_ago
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(hour_ago)
        + chrono::Duration::minutes(i64::from(minute))
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An IAM client of `account`.
async fn iam_in(endpoint: &str, account: &str) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&cutoff_tests::aws::sdk_config_in(endpoint, account).await)
}

async fn create_role(iam: &aws_sdk_iam::Client, name: &str) -> String {
    cutoff_tests::seed::create_role(iam, name, &[])
        .await
        .expect("create role");
    iam.get_role()
        .role_name(name)
        .send()
        .await
        .unwrap()
        .role
        .unwrap()
        .role_id
        .to_owned()
}

/// The record of `AssumeRole` minting `key` as `session` of `role` in `account`.
fn assume_role(
    event: &str,
    when: DateTime<Utc>,
    account: &str,
    role: &str,
    role_id: &str,
    session: &str,
    key: &str,
) -> Value {
    json!({
        "eventVersion": "1.08", "eventID": event, "eventTime": when.to_rfc3339(),
        "eventSource": "sts.amazonaws.com", "eventName": "AssumeRole", "awsRegion": REGION,
        "requestParameters": {"roleArn": format!("arn:aws:iam::{account}:role/{role}"), "roleSessionName": session},
        "responseElements": {
            "credentials": {"accessKeyId": key, "expiration": "Nov 23, 2026, 12:45:00 PM"},
            "assumedRoleUser": {
                "assumedRoleId": format!("{role_id}:{session}"),
                "arn": format!("arn:aws:sts::{account}:assumed-role/{role}/{session}")
            }
        }
    })
}

fn finding(role: &str, role_id: &str) -> Value {
    json!({
        "version": "0", "id": "evt-chain", "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
        "account": ACCOUNT, "time": time(at(56)), "region": REGION, "resources": [],
        "detail": {
            "schemaVersion": "2.0", "accountId": ACCOUNT, "region": REGION, "partition": "aws",
            "id": "cccc0000cccc0000cccc0000cccc0001",
            "arn": format!("arn:aws:guardduty:{REGION}:{ACCOUNT}:detector/d/finding/cccc0000cccc0000cccc0000cccc0001"),
            "type": "UnauthorizedAccess:IAMUser/AnomalousBehavior",
            "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                "accessKeyId": STOLEN, "principalId": format!("{role_id}:build-42"),
                "userName": role, "userType": "AssumedRole"}},
            "service": {"serviceName": "guardduty", "archived": false, "count": 1,
                "eventFirstSeen": time(at(40)), "eventLastSeen": time(at(55)),
                "additionalInfo": {"sample": false}},
            "severity": 8.0, "createdAt": time(at(41)), "updatedAt": time(at(56)),
            "title": "APIs commonly used to discover and persist were invoked by a stolen session."
        }
    })
}

/// Whether IAM would deny `role`'s session `userid` issued a minute before the
/// cutoff, by the independent evaluator, from the session deny stored on the role.
async fn session_denied(
    iam: &aws_sdk_iam::Client,
    account: &str,
    role: &str,
    userid: &str,
) -> Decision {
    let stored = iam
        .get_role_policy()
        .role_name(role)
        .policy_name(SESSION_POLICY_NAME)
        .send()
        .await
        .unwrap_or_else(|e| panic!("no session deny on {role}: {e:?}"));
    let document = PolicyDocument::parse(stored.policy_document()).unwrap();
    let (_, cutoff) = document.session_cutoffs()[0].clone();
    let issued = (cutoff.as_datetime() - chrono::Duration::minutes(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    evaluate(
        &EvalRequest::new(
            "s3:GetObject",
            "arn:aws:s3:::payments-exports/cards.csv",
            &format!("arn:aws:iam::{account}:role/{role}"),
        )
        .policy(json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}))
        .policy(serde_json::from_str::<Value>(&document.to_json()).unwrap())
        .context("aws:TokenIssueTime", issued)
        .context("aws:userid", userid),
    )
    .decision
}

#[tokio::test]
async fn a_chain_of_three_sessions_across_two_accounts_is_revoked_by_the_real_functions_and_late_events_by_a_later_run()
 {
    let moto = MotoServer::shared();
    let prefix = prefix();
    let ledger = format!("{prefix}-ledger");
    cutoff_tests::aws::ledger_table(moto.endpoint(), &ledger).await;
    let mut p = Pipeline::start(
        moto,
        &prefix,
        &[
            ("CUTOFF_OWNER_PATTERNS", "pay-*=payments"),
            ("CUTOFF_LEDGER_TABLE", ledger.as_str()),
        ],
    )
    .await;
    let home = &p.iam;
    let (origin_id, admin_id) = (
        create_role(home, "pay-ci").await,
        create_role(home, "pay-admin").await,
    );
    let other = iam_in(moto.endpoint(), OTHER).await;
    let (data_id, glass_id) = (
        create_role(&other, "data-admin").await,
        create_role(&other, "break-glass").await,
    );
    cutoff_tests::seed::create_role(&other, "unrelated", &[])
        .await
        .unwrap();
    other
        .create_user()
        .user_name("backdoor")
        .send()
        .await
        .unwrap();
    let backdoor_key = other
        .create_access_key()
        .user_name("backdoor")
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap()
        .access_key_id;

    // What CloudTrail holds when the finding arrives: the stolen session assumed
    // pay-admin, that session a role in the other account, and that one break-glass.
    let h = &p.event_history;
    h.add(
        ACCOUNT,
        REGION,
        STOLEN,
        at(41),
        assume_role(
            "e1",
            at(41),
            ACCOUNT,
            "pay-admin",
            &admin_id,
            "hop-1",
            "ASIALINKONEKEY000001",
        ),
    );
    h.add(
        ACCOUNT,
        REGION,
        "ASIALINKONEKEY000001",
        at(42),
        assume_role(
            "e2",
            at(42),
            OTHER,
            "data-admin",
            &data_id,
            "hop-2",
            "ASIALINKTWOKEY000001",
        ),
    );
    h.add(
        OTHER,
        REGION,
        "ASIALINKTWOKEY000001",
        at(43),
        assume_role(
            "e3",
            at(43),
            OTHER,
            "break-glass",
            &glass_id,
            "hop-3",
            "ASIALINKTHREEKEY0001",
        ),
    );

    let report = p.send_event(&finding("pay-ci", &origin_id));
    assert_eq!(report["queued"], 1, "{report}");
    p.drain_requests(10).await;
    assert!(
        cutoff_tests::seed::role_wide_cutoff(&p.iam, "pay-ci")
            .await
            .is_some(),
        "the first deny"
    );

    // Three one-time schedules, each invoking the revoker with a run of the follow-up.
    let schedules = p.follow_up_schedules().await;
    assert_eq!(schedules.len(), 3, "{schedules:?}");
    for (name, expression, target, input) in &schedules {
        assert!(name.starts_with("cutoff-chain-"), "{name}");
        assert!(
            expression.starts_with("at(") && expression.ends_with(')'),
            "{expression}"
        );
        assert_eq!(
            target,
            &format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:cutoff-revoker")
        );
        assert!(input.contains(STOLEN), "{input}");
    }

    // Run 1: the three minted sessions are denied, each on its own session.
    let answers = p.fire_follow_ups(1).await;
    assert_eq!(answers.len(), 1);
    let run = &answers[0];
    assert_eq!(run["status"], "applied", "{run:#}");
    assert_eq!(
        run["chain"]["links"].as_array().unwrap().len(),
        3,
        "{run:#}"
    );
    for (iam, account, role, userid) in [
        (&p.iam, ACCOUNT, "pay-admin", format!("{admin_id}:hop-1")),
        (&other, OTHER, "data-admin", format!("{data_id}:hop-2")),
        (&other, OTHER, "break-glass", format!("{glass_id}:hop-3")),
    ] {
        assert_eq!(
            session_denied(iam, account, role, &userid).await,
            Decision::ExplicitlyDenied,
            "{role}"
        );
        assert_eq!(
            session_denied(
                iam,
                account,
                role,
                &format!("{}:someone-else", userid.split(':').next().unwrap())
            )
            .await,
            Decision::Allowed,
            "another session of {role} keeps working"
        );
    }
    // The lookups were made in each key's own account, with that account's credentials.
    let lookups = p.event_history.lookups();
    assert!(
        lookups.contains(&format!("{OTHER} {REGION} ASIALINKTWOKEY000001")),
        "{lookups:?}"
    );
    assert!(
        !lookups
            .iter()
            .any(|l| l.starts_with(&format!("{ACCOUNT} {REGION} ASIALINKTWOKEY"))),
        "{lookups:?}"
    );

    // Late: CloudTrail now also holds the key break-glass's session created.
    p.event_history.add(OTHER, REGION, "ASIALINKTHREEKEY0001", at(44), json!({
        "eventVersion": "1.08", "eventID": "e4", "eventTime": at(44).to_rfc3339(),
        "eventSource": "iam.amazonaws.com", "eventName": "CreateAccessKey", "awsRegion": REGION,
        "requestParameters": {"userName": "backdoor"},
        "responseElements": {"accessKey": {"accessKeyId": backdoor_key, "userName": "backdoor", "status": "Active"}}
    }));
    let run = &p.fire_follow_ups(2).await[0];
    let links = run["chain"]["links"].as_array().unwrap();
    assert_eq!(links.len(), 4, "{run:#}");
    assert_eq!(
        links.iter().filter(|l| l["new"] == true).count(),
        1,
        "{run:#}"
    );
    let keys = other
        .list_access_keys()
        .user_name("backdoor")
        .send()
        .await
        .unwrap();
    assert_eq!(
        keys.access_key_metadata()[0].status().map(|s| s.as_str()),
        Some("Inactive")
    );

    // Run 3: nothing new, nothing told twice.
    let run = &p.fire_follow_ups(3).await[0];
    assert!(
        run["chain"]["links"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["new"] == false),
        "{run:#}"
    );

    // Every owner was told: the finding, four containments, three runs.
    let outcomes = p.drain_outcomes().await;
    let chained = outcomes
        .iter()
        .filter(|(e, _)| {
            e["detail"]["trigger"]["source"] == "chain" && e["detail"]["chain"].is_null()
        })
        .count();
    assert_eq!(chained, 4, "{outcomes:#?}");
    let runs = outcomes
        .iter()
        .filter(|(e, _)| !e["detail"]["chain"].is_null())
        .count();
    assert_eq!(runs, 3);
}
