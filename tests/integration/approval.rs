//! Human approval end to end, on moto: the approvals' table and its conditions (the
//! SDK adapter beside the in-memory fake, the same scenario), then the real function
//! binaries: a medium finding with `CUTOFF_MEDIUM_FINDINGS=ask` goes intake → queue →
//! revoker (the question recorded, announced with the command, IAM untouched) →
//! notifier → SNS; an operator approves it through the function URL (the deny
//! written and read back, the approver recorded) or refuses it; the real sweeper
//! expires what nobody decided, once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use cutoff_aws::dynamodb::approvals::fake::FakeApprovals;
use cutoff_aws::dynamodb::approvals::{APPROVAL_PARTITION, Approvals, Asked, SdkApprovals};
use cutoff_domain::approval::{Approval, ApprovalHours, ApprovalId, ApprovalState};
use cutoff_domain::outcome::RevocationRequest;
use cutoff_tests::aws::{ACCOUNT, REGION, sdk_config};
use cutoff_tests::function_url::{FunctionUrl, Identity};
use cutoff_tests::moto::MotoServer;
use cutoff_tests::pipeline::{BUS, Pipeline};
use cutoff_tests::runtime::{LocalLambda, function_binary};
use serde_json::{Value, json};

fn prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("appr{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn request(role: &str, finding: &str) -> RevocationRequest {
    serde_json::from_value(json!({
        "action": "revoke",
        "target": {"kind": "role", "account": ACCOUNT, "name": role, "access_key_id": null, "session": null},
        "trigger": {"source": "guardduty", "finding_id": finding, "finding_type": null, "severity": 5.0,
                    "updated_at": null, "requested_by": null, "reason": null},
        "needs_approval": true
    }))
    .unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// What every approvals store must do: the conditions the workflows rely on.
async fn keeps_its_conditions<A: Approvals>(store: &A, what: &str) {
    let asked_at = at("2026-11-23T12:00:00Z");
    let first = Approval::ask(
        &request("payments-api", &format!("{what}-f1")),
        asked_at,
        ApprovalHours::DEFAULT,
    );
    let deadline = first.expires_at;
    assert_eq!(store.ask(&first).await.unwrap(), Asked::Created, "{what}");
    // Asked again (a redelivery): the one there, as it is.
    match store.ask(&first).await.unwrap() {
        Asked::Exists(existing) => {
            assert_eq!(existing.state, ApprovalState::Pending, "{what}");
            assert_eq!(existing.request, first.request, "{what}");
            assert_eq!(existing.expires_at, deadline, "{what}");
            assert!(!existing.notified, "{what}");
        }
        other => panic!("{what}: {other:?}"),
    }
    store.mark_notified(&first.id).await.unwrap();
    assert!(
        store.get(&first.id).await.unwrap().unwrap().notified,
        "{what}"
    );
    // Decided only while pending and before the deadline (to the second), once.
    let by = "arn:aws:sts::999988887777:assumed-role/SecurityOps/alice";
    assert!(
        !store
            .decide(&first.id, ApprovalState::Approved, by, deadline, None)
            .await
            .unwrap(),
        "{what}: at the deadline it is expired"
    );
    let just_before = deadline - chrono::Duration::seconds(1);
    assert!(
        store
            .decide(
                &first.id,
                ApprovalState::Approved,
                by,
                just_before,
                Some("INC-1")
            )
            .await
            .unwrap(),
        "{what}"
    );
    assert!(
        !store
            .decide(&first.id, ApprovalState::Refused, by, just_before, None)
            .await
            .unwrap(),
        "{what}: decided once"
    );
    let decided = store.get(&first.id).await.unwrap().unwrap();
    assert_eq!(decided.state, ApprovalState::Approved, "{what}");
    assert_eq!(decided.decided_by.as_deref(), Some(by), "{what}");
    assert_eq!(decided.decided_at, Some(just_before), "{what}");
    assert_eq!(decided.reason.as_deref(), Some("INC-1"), "{what}");
    assert!(
        !decided.run_finished,
        "{what}: its run has not reported back"
    );
    // Its revocation failed (or never reported back): opened again only by that
    // approval (approver and time), then approved once more.
    assert!(
        !store
            .reopen(&first.id, "someone-else", just_before, true)
            .await
            .unwrap(),
        "{what}: another approver's decision is not reopened"
    );
    assert!(
        store
            .reopen(&first.id, by, just_before, false)
            .await
            .unwrap(),
        "{what}"
    );
    let reopened = store.get(&first.id).await.unwrap().unwrap();
    assert_eq!(reopened.state, ApprovalState::Pending, "{what}");
    assert_eq!(reopened.decided_by, None, "{what}");
    assert!(!reopened.notified, "{what}: its reopening is still to tell");
    assert!(
        !store
            .reopen(&first.id, by, just_before, true)
            .await
            .unwrap(),
        "{what}: reopened once"
    );
    assert!(
        store
            .decide(
                &first.id,
                ApprovalState::Approved,
                by,
                just_before,
                Some("INC-1")
            )
            .await
            .unwrap(),
        "{what}"
    );
    // Approved again, and this time its run reports back: it is never reopened.
    assert!(
        !store
            .finish_run(&first.id, "someone-else", just_before)
            .await
            .unwrap(),
        "{what}: only that approval's run finishes it"
    );
    assert!(
        store.finish_run(&first.id, by, just_before).await.unwrap(),
        "{what}"
    );
    assert!(
        store.get(&first.id).await.unwrap().unwrap().run_finished,
        "{what}"
    );
    assert!(
        !store
            .reopen(&first.id, by, just_before, true)
            .await
            .unwrap(),
        "{what}: a run that finished is not reopened"
    );
    // A decided approval never expires, nor is it asked over.
    assert!(
        !store
            .claim_expiry(&first.id, "run-1", deadline)
            .await
            .unwrap(),
        "{what}"
    );
    assert!(
        matches!(store.ask(&first).await.unwrap(), Asked::Exists(_)),
        "{what}"
    );

    // Expiry: claimed once at its deadline (not a second before), the claim stands for
    // its lease, then an unannounced expiry is claimed again; once announced it is
    // asked over.
    let second = Approval::ask(
        &request("ledger", &format!("{what}-f2")),
        asked_at,
        ApprovalHours::DEFAULT,
    );
    store.ask(&second).await.unwrap();
    store.mark_notified(&second.id).await.unwrap();
    assert!(
        !store
            .claim_expiry(&second.id, "run-1", deadline - chrono::Duration::seconds(1))
            .await
            .unwrap(),
        "{what}"
    );
    assert!(
        store
            .claim_expiry(&second.id, "run-1", deadline)
            .await
            .unwrap(),
        "{what}"
    );
    let expired = store.get(&second.id).await.unwrap().unwrap();
    assert_eq!(expired.state, ApprovalState::Expired, "{what}");
    assert!(!expired.notified, "{what}: its expiry is not announced yet");
    assert!(
        !store
            .claim_expiry(&second.id, "run-2", deadline)
            .await
            .unwrap(),
        "{what}"
    );
    assert!(
        !store
            .claim_expiry(
                &second.id,
                "run-2",
                deadline + chrono::Duration::minutes(14)
            )
            .await
            .unwrap(),
        "{what}: within the lease"
    );
    assert!(
        matches!(store.ask(&second).await.unwrap(), Asked::Exists(_)),
        "{what}: not announced, not asked over"
    );
    assert!(
        store
            .claim_expiry(
                &second.id,
                "run-3",
                deadline + chrono::Duration::minutes(16)
            )
            .await
            .unwrap(),
        "{what}: a stale claim is taken over"
    );
    store.mark_notified(&second.id).await.unwrap();
    assert!(
        !store
            .claim_expiry(&second.id, "run-4", deadline + chrono::Duration::hours(1))
            .await
            .unwrap(),
        "{what}: announced"
    );
    let again = Approval::ask(
        &second.request,
        deadline + chrono::Duration::hours(1),
        ApprovalHours::DEFAULT,
    );
    assert_eq!(again.id, second.id);
    assert_eq!(
        store.ask(&again).await.unwrap(),
        Asked::Created,
        "{what}: asked over"
    );
    let reopened = store.get(&second.id).await.unwrap().unwrap();
    assert_eq!(reopened.state, ApprovalState::Pending, "{what}");
    assert_eq!(reopened.expires_at, again.expires_at, "{what}");
    assert!(
        reopened.decided_by.is_none() && !reopened.notified,
        "{what}"
    );

    let mut listed: Vec<ApprovalId> = store
        .list()
        .await
        .unwrap()
        .approvals
        .into_iter()
        .map(|a| a.id)
        .collect();
    listed.sort();
    let mut expected = vec![first.id.clone(), second.id.clone()];
    expected.sort();
    assert_eq!(listed, expected, "{what}");
    assert!(
        store
            .get(&ApprovalId::parse("0000000000000000").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_ledger_table_keeps_approvals_with_the_conditions_of_the_fake() {
    let moto = MotoServer::shared();
    let table = format!("{}-ledger", prefix());
    cutoff_tests::aws::ledger_table(moto.endpoint(), &table).await;
    let config = sdk_config(moto.endpoint()).await;
    let sdk = SdkApprovals::from_config(&config, table.clone());
    keeps_its_conditions(&FakeApprovals::default(), "fake").await;
    keeps_its_conditions(&sdk, "table").await;

    // The deadline is its own attribute; the TTL attribute keeps the item a week past it.
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let items = ddb
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(APPROVAL_PARTITION.to_owned()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap();
    assert_eq!(items.len(), 2);
    for item in &items {
        let number = |k: &str| item[k].as_n().unwrap().parse::<i64>().unwrap();
        assert_eq!(number("expires_at") - number("deadline"), 7 * 24 * 3600);
    }
    // An item that is not an approval (a forged or damaged one) is reported apart in
    // the list and an error when read by its id.
    ddb.put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S(APPROVAL_PARTITION.to_owned()))
        .item("sk", AttributeValue::S("00000000000000ff".to_owned()))
        .item("state", AttributeValue::S("approved-by-me".to_owned()))
        .send()
        .await
        .unwrap();
    let listed = sdk.list().await.unwrap();
    assert_eq!(listed.approvals.len(), 2);
    assert_eq!(listed.unreadable.len(), 1, "{listed:?}");
    assert!(
        listed.unreadable[0].starts_with("00000000000000ff: "),
        "{listed:?}"
    );
    assert!(
        sdk.get(&ApprovalId::parse("00000000000000ff").unwrap())
            .await
            .is_err()
    );
}

// ---------------------------------------------------------------------------------------
// The real functions
// ---------------------------------------------------------------------------------------

const OPERATOR_ROLE: &str = "arn:aws:iam::123456789012:role/CutoffBreakGlassOperator";

fn alice() -> Identity {
    Identity::role_session(ACCOUNT, "CutoffBreakGlassOperator", "alice", "ALICE1")
}

fn bob() -> Identity {
    Identity::role_session(ACCOUNT, "CutoffBreakGlassOperator", "bob", "BOB1")
}

/// A medium GuardDuty finding about a session of `name`, whose RoleId is `role_id`.
fn finding(id: &str, name: &str, severity: f64, role_id: &str) -> Value {
    json!({
        "version": "0", "id": format!("evt-{id}"), "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
        "account": ACCOUNT, "time": "2026-11-23T11:56:01Z", "region": "us-east-1", "resources": [],
        "detail": {
            "schemaVersion": "2.0", "accountId": ACCOUNT, "region": "us-east-1", "partition": "aws",
            "id": id, "arn": format!("arn:aws:guardduty:us-east-1:{ACCOUNT}:detector/d/finding/{id}"),
            "type": "Recon:IAMUser/MaliciousIPCaller",
            "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                "accessKeyId": "ASIAZXCVBNMASDFGHJKL", "principalId": format!("{role_id}:ci-runner"),
                "userName": name, "userType": "AssumedRole"}},
            "service": {"serviceName": "guardduty", "archived": false, "count": 1,
                "eventFirstSeen": "2026-11-23T11:40:00.000Z", "eventLastSeen": "2026-11-23T11:55:00.000Z",
                "additionalInfo": {"sample": false}},
            "severity": severity, "createdAt": "2026-11-23T11:41:00.000Z", "updatedAt": "2026-11-23T11:56:00.000Z",
            "title": "An API was invoked from a known malicious IP address."
        }
    })
}

/// A pipeline whose intake asks about medium findings, with a ledger.
async fn asking_pipeline(prefix: &str) -> (Pipeline, String) {
    let moto = MotoServer::shared();
    let table = format!("{prefix}-ledger");
    cutoff_tests::aws::ledger_table(moto.endpoint(), &table).await;
    let p = Pipeline::start(
        moto,
        prefix,
        &[
            ("CUTOFF_MEDIUM_FINDINGS", "ask"),
            ("CUTOFF_LEDGER_TABLE", &table),
        ],
    )
    .await;
    (p, table)
}

async fn cutoff_of(p: &Pipeline, role: &str) -> Option<String> {
    cutoff_tests::seed::role_wide_cutoff(&p.iam, role)
        .await
        .map(|c| c.to_string())
}

/// The revoker an operator reaches: another instance of the pipeline's, behind the
/// function URL, which admits the operator role.
fn operator_path(p: &Pipeline) -> FunctionUrl {
    FunctionUrl::start(p.another_revoker(), vec![alice(), bob()], &[OPERATOR_ROLE])
}

fn post(url: &FunctionUrl, who: &Identity, body: Value) -> Value {
    let answer = url.post_signed(who, &body.to_string());
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

/// Sends the finding, delivers its request: the approval id the outcome carries.
async fn ask(p: &mut Pipeline, id: &str, role: &str) -> String {
    let role_id = p.create_role(role, Some("payments")).await;
    let report = p.send_event(&finding(id, role, 5.0, &role_id));
    assert_eq!(
        (report["queued"].clone(), report["asked"].clone()),
        (json!(1), json!(1)),
        "{report}"
    );
    let answers = p.drain_requests(5).await;
    assert!(
        answers.iter().all(|a| a["batchItemFailures"] == json!([])),
        "{answers:?}"
    );
    let outcomes = p.drain_outcomes().await;
    let asked: Vec<&Value> = outcomes
        .iter()
        .map(|(event, _)| &event["detail"])
        .filter(|d| d["target"]["name"] == role)
        .collect();
    assert_eq!(asked.len(), 1, "{outcomes:?}");
    assert_eq!(asked[0]["status"], "awaiting_approval", "{}", asked[0]);
    asked[0]["approval"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_medium_finding_is_asked_then_approved_through_the_operator_path_and_revoked() {
    let prefix = prefix();
    let (mut p, _) = asking_pipeline(&prefix).await;
    let role = format!("{prefix}-ci");
    let id = ask(&mut p, "bbbb0000bbbb0000bbbb0000bbbb0001", &role).await;
    assert_eq!(
        cutoff_of(&p, &role).await,
        None,
        "nothing written: a person decides"
    );

    // Both teams hear the question, with the command and the expiry.
    let command = format!("cutoff approve {id}");
    for topic in [p.security_topic.clone(), p.payments_topic.clone()] {
        let notes = p.inbox(&topic).await;
        assert_eq!(notes.len(), 1, "{topic}: {notes:?}");
        let note = &notes[0];
        assert!(
            note.subject.starts_with("cutoff APPROVAL NEEDED"),
            "{}",
            note.subject
        );
        assert!(note.message.contains(&command), "{}", note.message);
        assert!(note.message.contains(&format!("cutoff refuse {id}")));
        assert!(note.message.contains("Expires:"), "{}", note.message);
        assert_eq!(note.attributes["cutoff_status"], "awaiting_approval");
        assert_eq!(note.attributes["cutoff_class"], "incident");
    }
    // The same finding again (EventBridge delivers it twice): nothing more.
    let role_id = p.role_id(&role).await;
    p.send_event(&finding(
        "bbbb0000bbbb0000bbbb0000bbbb0001",
        &role,
        5.0,
        &role_id,
    ));
    p.drain_requests(5).await;
    assert!(p.drain_outcomes().await.is_empty(), "announced once");
    // An update of it: no second question; told, pointing at the same one.
    let mut updated = finding("bbbb0000bbbb0000bbbb0000bbbb0001", &role, 5.5, &role_id);
    updated["detail"]["updatedAt"] = json!("2026-11-23T12:20:00.000Z");
    p.send_event(&updated);
    p.drain_requests(5).await;
    let told = p.drain_outcomes().await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].0["detail"]["status"], "awaiting_approval");
    assert_eq!(told[0].0["detail"]["approval"]["id"], id.as_str());
    assert_eq!(told[0].0["detail"]["trigger"]["severity"], 5.5);
    assert_eq!(cutoff_of(&p, &role).await, None);
    for topic in [p.security_topic.clone(), p.payments_topic.clone()] {
        let notes = p.inbox(&topic).await;
        assert_eq!(notes.len(), 1, "{topic}: {notes:?}");
        assert!(
            notes[0].message.contains(&format!(
                "this finding was updated while approval {id} awaits a decision"
            )),
            "{}",
            notes[0].message
        );
    }

    // Approved through the function URL (signed; AWS says who approves).
    let url = operator_path(&p);
    let pending = post(&url, &alice(), json!({"action": "pending"}));
    assert!(
        pending["pending"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == id.as_str()),
        "{pending:#}"
    );
    let outcome = post(
        &url,
        &alice(),
        json!({"action": "approve", "approval_id": id, "reason": "INC-21"}),
    );
    assert_eq!(outcome["status"], "applied", "{outcome:#}");
    assert_eq!(outcome["trigger"]["approved_by"], alice().arn.as_str());
    assert_eq!(
        outcome["trigger"]["finding_id"],
        "bbbb0000bbbb0000bbbb0000bbbb0001"
    );
    assert_eq!(outcome["approval"]["state"], "approved");
    assert_eq!(outcome["approval"]["decided_by"], alice().arn.as_str());
    let cutoff = cutoff_of(&p, &role).await.expect("the deny is on the role");
    assert_eq!(outcome["cutoff"], cutoff.as_str(), "written and read back");
    // The approval's outcome reaches both teams, naming the approver.
    let outcomes = p.drain_outcomes().await;
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(
        outcomes[0].0["detail"]["trigger"]["approved_by"],
        alice().arn.as_str()
    );
    let notes = p.inbox(&p.payments_topic.clone()).await;
    assert!(
        notes[0]
            .message
            .contains(&format!("Approved by:      {}", alice().arn)),
        "{}",
        notes[0].message
    );

    // Approving it again: refused, nothing more written.
    let again = post(
        &url,
        &bob(),
        json!({"action": "approve", "approval_id": id}),
    );
    assert_eq!(again["error"]["kind"], "refused", "{again:#}");
    assert_eq!(cutoff_of(&p, &role).await.as_deref(), Some(cutoff.as_str()));
}

/// Moves an approval's deadline to `deadline` in the table: the clock of the real
/// binaries cannot be set, so the time passes in the ledger instead.
async fn set_deadline(table: &str, id: &str, deadline: DateTime<Utc>) {
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(MotoServer::shared().endpoint()).await);
    ddb.update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(APPROVAL_PARTITION.to_owned()))
        .key("sk", AttributeValue::S(id.to_owned()))
        .update_expression("SET deadline = :d")
        .expression_attribute_values(":d", AttributeValue::N(deadline.timestamp().to_string()))
        .send()
        .await
        .unwrap();
}

/// The real sweeper on the pipeline's bus and ledger.
async fn sweeper(prefix: &str, table: &str) -> LocalLambda {
    let moto = MotoServer::shared();
    let sqs = aws_sdk_sqs::Client::new(&sdk_config(moto.endpoint()).await);
    let tasks = sqs
        .create_queue()
        .queue_name(format!("{prefix}-sweep-tasks"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let env: Vec<(&str, String)> = vec![
        ("AWS_ENDPOINT_URL", moto.endpoint().to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("CUTOFF_HOME_ACCOUNT", ACCOUNT.to_owned()),
        ("CUTOFF_PARTITION", "aws".to_owned()),
        ("CUTOFF_OUTCOME_BUS", format!("{prefix}-{BUS}")),
        ("CUTOFF_ACCOUNTS", ACCOUNT.to_owned()),
        ("CUTOFF_SWEEP_QUEUE_URL", tasks),
        ("CUTOFF_LEDGER_TABLE", table.to_owned()),
    ];
    LocalLambda::start("cutoff-sweeper", &function_binary("sweeper"), &env)
}

#[tokio::test]
async fn a_refusal_and_an_expiry_revoke_nothing_and_each_is_announced_once() {
    let prefix = prefix();
    let (mut p, table) = asking_pipeline(&prefix).await;
    let refused_role = format!("{prefix}-refused");
    let expiring_role = format!("{prefix}-expiring");
    let refused = ask(&mut p, "cccc0000cccc0000cccc0000cccc0001", &refused_role).await;
    let expiring = ask(&mut p, "cccc0000cccc0000cccc0000cccc0002", &expiring_role).await;
    p.inbox(&p.security_topic.clone()).await;
    p.inbox(&p.payments_topic.clone()).await;
    let url = operator_path(&p);

    // Refused by an operator, with the reason: announced, nothing written.
    let outcome = post(
        &url,
        &bob(),
        json!({"action": "refuse", "approval_id": refused, "reason": "the team's own scanner"}),
    );
    assert_eq!(outcome["status"], "approval_refused", "{outcome:#}");
    assert_eq!(outcome["approval"]["decided_by"], bob().arn.as_str());
    let late = post(
        &url,
        &alice(),
        json!({"action": "approve", "approval_id": refused}),
    );
    assert_eq!(late["error"]["kind"], "refused", "{late:#}");

    // The other one's time runs out. Approving it is refused at once, before any sweep.
    set_deadline(&table, &expiring, Utc::now() - chrono::Duration::minutes(1)).await;
    let late = post(
        &url,
        &alice(),
        json!({"action": "approve", "approval_id": expiring}),
    );
    assert_eq!(late["error"]["kind"], "refused", "{late:#}");
    assert!(
        late["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{late:#}"
    );

    // The sweeper expires it and announces it; a second schedule does not again.
    let mut sweep = sweeper(&prefix, &table).await;
    let planned = sweep.invoke(&json!({"action": "sweep", "accounts": [ACCOUNT]}));
    assert_eq!(planned["approvals"]["expired"], 1, "{planned}");
    let again = sweep.invoke(&json!({"action": "sweep", "accounts": [ACCOUNT]}));
    assert_eq!(again["approvals"]["expired"], 0, "{again}");

    let outcomes = p.drain_outcomes().await;
    let statuses: Vec<(String, String)> = outcomes
        .iter()
        .map(|(e, _)| {
            (
                e["detail"]["status"].as_str().unwrap().to_owned(),
                e["detail"]["target"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("approval_refused".to_owned(), refused_role.clone()),
            ("approval_expired".to_owned(), expiring_role.clone()),
        ],
        "the refusal once, the expiry once; the late approvals were answered, not announced"
    );
    let notes = p.inbox(&p.payments_topic.clone()).await;
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes.iter().any(|n| n.subject.contains("approval refused")));
    assert!(notes.iter().any(|n| n.subject.contains("approval EXPIRED")));
    assert_eq!(cutoff_of(&p, &refused_role).await, None);
    assert_eq!(cutoff_of(&p, &expiring_role).await, None);
}
