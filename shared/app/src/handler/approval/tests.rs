//! Asking, deciding and expiring approvals against the fakes: the revoker's whole
//! invocation (queue, operator path, plain invoke), and the sweeper's expiry.

use super::*;
use crate::handler::revoker::Invocation;
use crate::revoke::RevokeConfig;
use chrono::TimeZone;
use cutoff_aws::ErrorKind;
use cutoff_aws::dynamodb::approvals::NoApprovals;
use cutoff_aws::dynamodb::approvals::fake::FakeApprovals;
use cutoff_aws::dynamodb::fake::FakeLedger;
use cutoff_aws::eventbridge::fake::FakeOutcomeBus;
use cutoff_aws::iam::fake::FakeIam;
use cutoff_aws::retry::RetryPolicy;
use cutoff_aws::sts::fake::FakeAccess;
use cutoff_aws::{IamPrincipal, scheduler::NoFollowUps};
use cutoff_domain::clock::FixedClock;
use cutoff_domain::policy::ROLE_WIDE_POLICY_NAME;
use cutoff_domain::principal::{AccountScope, PrincipalName};
use serde_json::{Value, json};

const HOME: &str = "999988887777";
const MEMBER: &str = "111122223333";
const ALICE: &str = "arn:aws:sts::999988887777:assumed-role/SecurityOps/alice";
const BOB: &str = "arn:aws:iam::999988887777:user/bob";

type TestRevoker = Revoker<FakeAccess, FixedClock, FakeLedger>;

/// The revoker, its member account (roles payments-api, owned by team payments, and
/// ledger), the ledger, the approvals and the bus.
struct World {
    revoker: TestRevoker,
    member: FakeIam,
    ledger: FakeLedger,
    approvals: FakeApprovals,
    bus: FakeOutcomeBus,
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

fn world() -> World {
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    member.add_role("payments-api", "/", &[("cutoff:owner", "payments")]);
    member.add_role("ledger", "/", &[]);
    // An operator role of the member account, which a finding may name too.
    member.add_role("Ops-Admin", "/", &[]);
    let ledger = FakeLedger::default();
    let revoker = Revoker::new(access, FixedClock::at(start()), RevokeConfig::default())
        .with_ledger(ledger.clone());
    World {
        revoker,
        member,
        ledger,
        approvals: FakeApprovals::default(),
        bus: FakeOutcomeBus::default(),
    }
}

fn settings() -> InvocationSettings {
    InvocationSettings {
        dry_run: false,
        final_receive: 3,
        approval_hours: ApprovalHours::default(),
    }
}

/// A medium GuardDuty finding about `role`, queued as needing approval.
fn ask(role: &str, finding: &str) -> RevocationRequest {
    serde_json::from_value(json!({
        "action": "revoke",
        "target": {"kind": "role", "account": MEMBER, "name": role,
                   "access_key_id": "ASIAZXCVBNMASDFGHJKL", "session": null},
        "scope": "role",
        "trigger": {"source": "guardduty", "finding_id": finding,
                    "finding_type": "Recon:IAMUser/MaliciousIPCaller", "severity": 5.0,
                    "updated_at": "2026-11-23T11:50:00Z", "requested_by": null,
                    "reason": "severity 5 is at or above the alert threshold 4 and below the revoke threshold 7"},
        "first_activity": "2026-11-23T11:40:00Z",
        "needs_approval": true
    }))
    .unwrap()
}

fn sqs(bodies: &[(&str, String)]) -> Value {
    json!({"Records": bodies.iter().map(|(id, body)| json!({
        "messageId": id, "receiptHandle": "h", "body": body,
        "attributes": {"MessageGroupId": "g", "ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:999988887777:cutoff-requests.fifo", "awsRegion": "us-east-1"
    })).collect::<Vec<_>>()})
}

fn body(request: &RevocationRequest) -> String {
    serde_json::to_string(request).unwrap()
}

fn url_event(caller: &str, body: &Value) -> Value {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "abc.lambda-url.us-east-1.on.aws"},
        "requestContext": {"accountId": HOME, "apiId": "abc",
            "authorizer": {"iam": {"accessKey": "ASIAZXCVBNMASDFGHJKL", "accountId": HOME,
                "callerId": "AROAZXCVBNMASDFGHJKLQ:alice", "userArn": caller, "userId": "AROAZXCVBNMASDFGHJKLQ:alice"}},
            "domainName": "abc.lambda-url.us-east-1.on.aws", "domainPrefix": "abc",
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "cutoff"},
            "requestId": "r-1", "routeKey": "$default", "stage": "$default", "time": "23/Nov/2026:12:00:00 +0000", "timeEpoch": 1795435200000i64},
        "body": body.to_string(), "isBase64Encoded": false
    })
}

impl World {
    async fn invoke_with<P: Approvals>(&self, approvals: &P, payload: Value, id: &str) -> Value {
        self.revoker
            .handle_invocation_approving(
                &self.bus,
                &NoFollowUps,
                approvals,
                &RetryPolicy::immediate(2),
                payload,
                id,
                settings(),
            )
            .await
    }

    async fn invoke(&self, payload: Value) -> Value {
        self.invoke_with(&self.approvals, payload, "lambda-req")
            .await
    }

    /// An operator's request through the function URL: the answer's JSON body.
    async fn operator(&self, caller: &str, request: Value) -> Value {
        let answer = self.invoke(url_event(caller, &request)).await;
        serde_json::from_str(answer["body"].as_str().unwrap()).unwrap()
    }

    fn published(&self) -> Vec<Outcome> {
        self.bus.state().outcomes.clone()
    }

    fn role_deny(&self, role: &str) -> Option<String> {
        self.member.inline(
            &IamPrincipal::role(PrincipalName::parse(role).unwrap()),
            ROLE_WIDE_POLICY_NAME,
        )
    }

    /// Asks for the approval of `request` through the queue: its id.
    async fn asked(&self, request: &RevocationRequest) -> ApprovalId {
        let answer = self.invoke(sqs(&[("m-ask", body(request))])).await;
        assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
        ApprovalId::of(request)
    }
}

fn failures(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_request_that_needs_approval_writes_nothing_records_the_question_and_announces_it_once() {
    let w = world();
    let request = ask("payments-api", "f-medium");
    let answer = w.invoke(sqs(&[("m1", body(&request))])).await;
    assert!(failures(&answer).is_empty(), "{answer}");
    assert!(w.member.writes().is_empty(), "nothing written to IAM");
    let published = w.published();
    assert_eq!(published.len(), 1, "{published:#?}");
    let outcome = &published[0];
    assert_eq!(outcome.status, Status::AwaitingApproval);
    assert_eq!(
        outcome.owner.team.as_deref(),
        Some("payments"),
        "the owner hears"
    );
    assert_eq!(outcome.request_id.as_deref(), Some("m1"));
    assert_eq!(outcome.trigger.finding_id.as_deref(), Some("f-medium"));
    assert!(outcome.cutoff.is_none() && outcome.actions.is_empty());
    assert!(
        outcome.api_calls > 0,
        "the owner's tags were read: {outcome:?}"
    );
    let note = outcome.approval.clone().unwrap();
    let id = ApprovalId::of(&request);
    assert_eq!(note.id, id);
    assert_eq!(note.state, ApprovalState::Pending);
    assert_eq!(note.expires_at, start() + chrono::Duration::hours(4));
    assert!(
        outcome.detail.contains(&format!("cutoff approve {id}")),
        "{}",
        outcome.detail
    );
    let stored = w.approvals.approval(&id).unwrap();
    assert_eq!(stored.state, ApprovalState::Pending);
    assert!(stored.notified, "marked announced once published");
    assert_eq!(stored.request, request, "the request as queued");
    assert_eq!(stored.owner.team.as_deref(), Some("payments"));
    let audit = w.ledger.state().entries.clone();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, AUDIT_ACTION);
    assert_eq!(audit[0].outcome.status, Status::AwaitingApproval);

    // Delivered again, twice in one batch too: nothing recorded anew, nobody told
    // twice, nothing retried.
    let writes = w.approvals.state().writes.len();
    for batch in [
        sqs(&[("m1", body(&request))]),
        sqs(&[("m1", body(&request)), ("m1-copy", body(&request))]),
    ] {
        let answer = w.invoke(batch).await;
        assert!(failures(&answer).is_empty(), "{answer}");
    }
    assert_eq!(w.published().len(), 1);
    // A later update of the same finding: told, as `alert` would, pointing at the
    // same question; nothing recorded anew.
    let mut updated = request.clone();
    updated.trigger.updated_at = Some(start());
    updated.trigger.severity = Some(6.0);
    let answer = w.invoke(sqs(&[("m2", body(&updated))])).await;
    assert!(failures(&answer).is_empty(), "{answer}");
    let published = w.published();
    assert_eq!(published.len(), 2);
    let update = &published[1];
    assert_eq!(update.status, Status::AwaitingApproval);
    assert_eq!(update.trigger.severity, Some(6.0), "this update's finding");
    assert_eq!(update.approval.as_ref().unwrap().id, id);
    assert_eq!(update.owner.team.as_deref(), Some("payments"));
    assert!(
        update.detail.contains("was updated") && !update.detail.contains("WARNING"),
        "{}",
        update.detail
    );
    assert_eq!(w.approvals.state().writes.len(), writes);
    assert_eq!(w.ledger.state().entries.len(), 1);
    assert!(w.member.writes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn two_copies_of_a_question_whose_message_failed_are_announced_once_by_their_redelivery() {
    let w = world();
    let request = ask("payments-api", "f-medium");
    w.bus.fail("PutEvents", &[ErrorKind::AccessDenied]);
    w.invoke(sqs(&[("m1", body(&request))])).await;
    assert!(w.published().is_empty());
    let answer = w
        .invoke(sqs(&[("m1", body(&request)), ("m1-copy", body(&request))]))
        .await;
    assert!(failures(&answer).is_empty(), "{answer}");
    assert_eq!(w.published().len(), 1, "{:#?}", w.published());
    assert!(
        w.approvals
            .approval(&ApprovalId::of(&request))
            .unwrap()
            .notified
    );
}

#[tokio::test(start_paused = true)]
async fn a_question_planted_first_with_other_words_is_flagged_by_the_real_findings_message() {
    // An insider with sqs:SendMessage who knows the finding's id asks first, with a
    // reason meant to be refused; intake's real message comes after.
    let w = world();
    let real = ask("payments-api", "f-medium");
    let mut planted = real.clone();
    planted.trigger.reason = Some("known pentest scanner: please refuse".into());
    let id = w.asked(&planted).await;
    assert_eq!(id, ApprovalId::of(&real), "the same question");
    let answer = w.invoke(sqs(&[("m-real", body(&real))])).await;
    assert!(failures(&answer).is_empty(), "{answer}");
    let told = w.published().last().cloned().unwrap();
    assert_eq!(told.status, Status::AwaitingApproval);
    assert_eq!(told.trigger.reason, real.trigger.reason, "the real wording");
    assert!(
        told.detail.contains("WARNING") && told.detail.contains("please refuse"),
        "{}",
        told.detail
    );
    assert!(w.member.writes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_question_whose_message_did_not_go_out_is_announced_by_its_redelivery() {
    let w = world();
    let request = ask("payments-api", "f-medium");
    w.bus.fail("PutEvents", &[ErrorKind::AccessDenied]);
    let answer = w.invoke(sqs(&[("m1", body(&request))])).await;
    assert_eq!(failures(&answer), ["m1"], "back to the queue");
    let id = ApprovalId::of(&request);
    assert!(!w.approvals.approval(&id).unwrap().notified);
    assert!(w.published().is_empty());

    let answer = w.invoke(sqs(&[("m1", body(&request))])).await;
    assert!(failures(&answer).is_empty(), "{answer}");
    let published = w.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].status, Status::AwaitingApproval);
    assert_eq!(published[0].approval.as_ref().unwrap().id, id);
    assert!(w.approvals.approval(&id).unwrap().notified);
    // Recorded once: the redelivery found it.
    assert_eq!(
        w.approvals
            .state()
            .writes
            .iter()
            .filter(|(m, _)| *m == "ask")
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_ledger_sends_the_message_back_and_asks_nobody() {
    let w = world();
    let request = ask("payments-api", "f-medium");
    w.approvals.fail("ask", &[ErrorKind::Throttled]);
    let answer = w.invoke(sqs(&[("m1", body(&request))])).await;
    assert_eq!(failures(&answer), ["m1"]);
    let published = w.published();
    assert_eq!(published.len(), 1, "told on the first attempt");
    assert_eq!(published[0].status, Status::Failed);
    assert_eq!(
        published[0].error.as_ref().unwrap().kind,
        FailureKind::LedgerUnavailable
    );
    assert!(w.member.writes().is_empty());
    let answer = w.invoke(sqs(&[("m1", body(&request))])).await;
    assert!(failures(&answer).is_empty());
    assert_eq!(w.published()[1].status, Status::AwaitingApproval);
}

#[tokio::test(start_paused = true)]
async fn without_a_ledger_a_question_is_an_alert_and_nothing_is_written() {
    let w = world();
    let answer = w
        .invoke_with(
            &NoApprovals,
            sqs(&[("m1", body(&ask("payments-api", "f-medium")))]),
            "req",
        )
        .await;
    assert!(failures(&answer).is_empty());
    let published = w.published();
    assert_eq!(published[0].status, Status::Alerted);
    assert!(
        published[0].detail.contains("keeps no ledger"),
        "{}",
        published[0].detail
    );
    assert!(w.member.writes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_account_outside_the_deployments_scope_is_refused_not_asked() {
    let mut w = world();
    w.revoker.config.accounts = Some(AccountScope {
        organization: None,
        accounts: Some(vec![
            cutoff_domain::principal::Account::parse(HOME).unwrap(),
        ]),
    });
    let request = ask("payments-api", "f-medium");
    let answer = w.invoke(sqs(&[("m1", body(&request))])).await;
    assert!(failures(&answer).is_empty(), "permanent: not retried");
    let outcome = &w.published()[0];
    assert_eq!(outcome.status, Status::Failed);
    assert_eq!(
        outcome.error.as_ref().unwrap().kind,
        FailureKind::AccountNotAllowed
    );
    assert!(w.approvals.approval(&ApprovalId::of(&request)).is_none());
}

#[tokio::test(start_paused = true)]
async fn in_one_batch_the_question_is_asked_and_the_revocation_beside_it_is_applied() {
    let w = world();
    let mut high = ask("ledger", "f-high");
    high.needs_approval = false;
    high.trigger.severity = Some(8.0);
    let answer = w
        .invoke(sqs(&[
            ("m1", body(&ask("payments-api", "f-medium"))),
            ("m2", body(&high)),
            ("m3", "{not json".to_owned()),
        ]))
        .await;
    assert!(failures(&answer).is_empty(), "{answer}");
    let by_id = |id: &str| {
        w.published()
            .into_iter()
            .find(|o| o.request_id.as_deref() == Some(id))
            .unwrap()
    };
    assert_eq!(by_id("m1").status, Status::AwaitingApproval);
    assert_eq!(by_id("m2").status, Status::Applied);
    assert_eq!(by_id("m3").status, Status::Failed, "refused as before");
    assert!(w.role_deny("ledger").is_some());
    assert!(w.role_deny("payments-api").is_none());
}

#[tokio::test(start_paused = true)]
async fn an_approval_through_the_operator_path_runs_the_stored_request_and_records_the_approver() {
    let w = world();
    let request = ask("payments-api", "f-medium");
    let id = w.asked(&request).await;
    w.revoker.clock.advance(chrono::Duration::minutes(10));
    let answer = w
        .operator(
            ALICE,
            json!({"action": "approve", "approval_id": id.as_str(), "reason": "INC-9"}),
        )
        .await;
    assert_eq!(answer["status"], "applied", "{answer:#}");
    assert_eq!(answer["trigger"]["approved_by"], ALICE);
    assert_eq!(
        answer["trigger"]["finding_id"], "f-medium",
        "the finding's trigger, as stored"
    );
    assert_eq!(answer["trigger"]["requested_by"], Value::Null);
    assert_eq!(answer["approval"]["state"], "approved");
    assert_eq!(answer["approval"]["decided_by"], ALICE);
    assert_eq!(answer["approval"]["reason"], "INC-9");
    assert!(
        answer["cutoff"].as_str().unwrap() >= "2026-11-23T12:10:00Z",
        "the cutoff is the approval's now, not the finding's: {answer}"
    );
    assert!(
        w.role_deny("payments-api").is_some(),
        "the deny is on the role"
    );
    assert!(w.role_deny("ledger").is_none(), "and nowhere else");
    let stored = w.approvals.approval(&id).unwrap();
    assert_eq!(stored.state, ApprovalState::Approved);
    assert_eq!(stored.decided_by.as_deref(), Some(ALICE));
    assert!(stored.run_finished, "it reported back");
    // So the sweeper leaves it alone, however long after.
    let bus = FakeOutcomeBus::default();
    let later = start() + chrono::Duration::hours(3);
    let (report, out) = expire_approvals(&w.approvals, &bus, &w.ledger, later, "run-1").await;
    assert_eq!(report, ExpiryReport::default());
    assert!(out.is_empty());
    // The audit trail records the revocation with its approver.
    let audit = w.ledger.state().entries.clone();
    let revoked = audit.iter().find(|e| e.action == "revoke").unwrap();
    assert_eq!(revoked.outcome.trigger.approved_by.as_deref(), Some(ALICE));
    // Published for the owner and the security team.
    let last = w.published().last().cloned().unwrap();
    assert_eq!(last.status, Status::Applied);
    assert_eq!(last.trigger.approved_by.as_deref(), Some(ALICE));

    // A second approval, or a refusal now: refused, nothing more written, and only
    // the operator is told (a mistake to fix, not news).
    let writes = w.member.writes().len();
    let published = w.published().len();
    for (caller, action) in [(ALICE, "approve"), (BOB, "approve"), (BOB, "refuse")] {
        let again = w
            .operator(
                caller,
                json!({"action": action, "approval_id": id.as_str()}),
            )
            .await;
        assert_eq!(again["status"], "failed", "{again:#}");
        assert_eq!(again["error"]["kind"], "refused");
        let message = again["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("already approved by {ALICE}")),
            "{message}"
        );
        assert_eq!(again["target"]["name"], "payments-api");
    }
    assert_eq!(w.member.writes().len(), writes);
    assert_eq!(w.published().len(), published);
}

#[tokio::test(start_paused = true)]
async fn an_approved_revocation_that_fails_leaves_the_approval_open_to_approve_again() {
    // IAM refuses the write (or the lock is busy, or the breaker full): the approval
    // must not be used up by a revocation that did not happen.
    let w = world();
    let request = ask("payments-api", "f-medium");
    let id = w.asked(&request).await;
    w.revoker.clock.advance(chrono::Duration::minutes(10));
    w.member.fail("PutRolePolicy", &[ErrorKind::AccessDenied]);
    let answer = w
        .operator(
            ALICE,
            json!({"action": "approve", "approval_id": id.as_str()}),
        )
        .await;
    assert_eq!(answer["status"], "failed", "{answer:#}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("the approval is open again"),
        "{answer:#}"
    );
    assert_eq!(answer["approval"]["state"], "pending", "{answer:#}");
    assert_eq!(
        w.approvals.approval(&id).unwrap().state,
        ApprovalState::Pending
    );
    assert!(w.role_deny("payments-api").is_none());
    // Once the cause is fixed, another approval revokes.
    w.revoker.clock.advance(chrono::Duration::minutes(1));
    let again = w
        .operator(
            BOB,
            json!({"action": "approve", "approval_id": id.as_str()}),
        )
        .await;
    assert_eq!(again["status"], "applied", "{again:#}");
    assert_eq!(again["trigger"]["approved_by"], BOB);
    assert!(w.role_deny("payments-api").is_some());
    assert_eq!(
        w.approvals.approval(&id).unwrap().state,
        ApprovalState::Approved
    );
}

/// Approves `id` as `by` at the revoker's now and stops there, as a revoker that
/// timed out or crashed before its revocation reported back: the decision's time.
async fn approved_then_stopped(w: &World, id: &ApprovalId, by: &str) -> DateTime<Utc> {
    let at = w.revoker.clock.now();
    assert!(
        w.approvals
            .decide(id, ApprovalState::Approved, by, at, None)
            .await
            .unwrap()
    );
    at
}

#[tokio::test(start_paused = true)]
async fn an_approval_whose_revocation_never_reported_back_is_opened_again_and_announced_by_the_sweeper()
 {
    let w = world();
    let id = w.asked(&ask("payments-api", "f-medium")).await;
    w.revoker.clock.advance(chrono::Duration::minutes(10));
    let approved_at = approved_then_stopped(&w, &id, ALICE).await;
    // Meanwhile `cutoff approve` says it is approved: it may still be running.
    let busy = w
        .operator(
            BOB,
            json!({"action": "approve", "approval_id": id.as_str()}),
        )
        .await;
    assert_eq!(busy["error"]["kind"], "refused", "{busy:#}");
    let bus = FakeOutcomeBus::default();
    let sweep = |now: DateTime<Utc>, claimant: &'static str| {
        let (approvals, bus, ledger) = (&w.approvals, &bus, &w.ledger);
        async move { expire_approvals(approvals, bus, ledger, now, claimant).await }
    };
    // Within Lambda's longest timeout the run may still be going: left alone.
    let lease_end = approved_at + chrono::Duration::minutes(15);
    let (report, _) = sweep(lease_end - chrono::Duration::seconds(1), "run-1").await;
    assert_eq!(report, ExpiryReport::default());
    assert_eq!(
        w.approvals.approval(&id).unwrap().state,
        ApprovalState::Approved
    );
    // From its end: open again, and everyone told, once.
    let (report, out) = sweep(lease_end, "run-2").await;
    assert_eq!(report.reopened, 1, "{report:?}");
    assert_eq!(report.announced, 1, "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(out.len(), 1);
    let told = bus.state().outcomes[0].clone();
    assert_eq!(told.status, Status::AwaitingApproval);
    assert_eq!(told.owner.team.as_deref(), Some("payments"));
    assert_eq!(
        told.approval.as_ref().unwrap().state,
        ApprovalState::Pending
    );
    assert!(
        told.detail.contains("never reported back")
            && told.detail.contains(ALICE)
            && told.detail.contains(&format!("cutoff approve {id}")),
        "{}",
        told.detail
    );
    let stored = w.approvals.approval(&id).unwrap();
    assert_eq!(stored.state, ApprovalState::Pending);
    assert!(stored.notified);
    let (report, _) = sweep(lease_end + chrono::Duration::minutes(30), "run-3").await;
    assert_eq!(report, ExpiryReport::default(), "announced once");
    assert_eq!(bus.state().outcomes.len(), 1);
    // Approved once more, it revokes.
    w.revoker.clock.advance(chrono::Duration::minutes(16));
    let again = w
        .operator(
            BOB,
            json!({"action": "approve", "approval_id": id.as_str()}),
        )
        .await;
    assert_eq!(again["status"], "applied", "{again:#}");
    assert!(w.role_deny("payments-api").is_some());
    assert!(w.approvals.approval(&id).unwrap().run_finished);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_approval_whose_reopening_was_not_announced_is_announced_by_a_later_sweep() {
    let w = world();
    let id = w.asked(&ask("payments-api", "f-medium")).await;
    let approved_at = approved_then_stopped(&w, &id, ALICE).await;
    let bus = FakeOutcomeBus::default();
    bus.fail("PutEvents", &[ErrorKind::Transient]);
    let lease_end = approved_at + chrono::Duration::minutes(15);
    let (report, out) = expire_approvals(&w.approvals, &bus, &w.ledger, lease_end, "run-1").await;
    assert_eq!((report.reopened, report.announced), (1, 0), "{report:?}");
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(out.is_empty());
    let stored = w.approvals.approval(&id).unwrap();
    assert_eq!(stored.state, ApprovalState::Pending);
    assert!(!stored.notified, "not told yet");
    let (report, out) = expire_approvals(
        &w.approvals,
        &bus,
        &w.ledger,
        lease_end + chrono::Duration::minutes(1),
        "run-2",
    )
    .await;
    assert_eq!((report.reopened, report.announced), (0, 1), "{report:?}");
    assert_eq!(out[0].status, Status::AwaitingApproval);
    assert!(
        out[0].detail.contains("announced again"),
        "{}",
        out[0].detail
    );
    assert!(w.approvals.approval(&id).unwrap().notified);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_approval_past_its_deadline_expires_and_says_it_stalled() {
    let w = world();
    let id = w.asked(&ask("payments-api", "f-medium")).await;
    w.revoker
        .clock
        .advance(chrono::Duration::hours(4) - chrono::Duration::minutes(1));
    approved_then_stopped(&w, &id, ALICE).await;
    let bus = FakeOutcomeBus::default();
    let after = start() + chrono::Duration::hours(5);
    let (report, out) = expire_approvals(&w.approvals, &bus, &w.ledger, after, "run-1").await;
    assert_eq!(
        (report.reopened, report.expired, report.announced),
        (1, 1, 0)
    );
    assert_eq!(out.len(), 1, "one message: its expiry");
    assert_eq!(out[0].status, Status::ApprovalExpired);
    assert!(
        out[0].detail.contains("never reported back") && out[0].detail.contains("expired"),
        "{}",
        out[0].detail
    );
    let stored = w.approvals.approval(&id).unwrap();
    assert_eq!(stored.state, ApprovalState::Expired);
    assert!(stored.notified);
}

#[tokio::test(start_paused = true)]
async fn an_open_approval_whose_question_never_went_out_is_announced_by_the_sweeper() {
    // Its ask's publish kept failing until the message was dead-lettered.
    let w = world();
    let request = ask("payments-api", "f-medium");
    w.bus.fail("PutEvents", &[ErrorKind::AccessDenied]);
    w.invoke(sqs(&[("m1", body(&request))])).await;
    let id = ApprovalId::of(&request);
    assert!(!w.approvals.approval(&id).unwrap().notified);
    let bus = FakeOutcomeBus::default();
    let soon = start() + chrono::Duration::minutes(14);
    let (report, _) = expire_approvals(&w.approvals, &bus, &w.ledger, soon, "run-1").await;
    assert_eq!(
        report,
        ExpiryReport::default(),
        "its redelivery may announce it"
    );
    let later = start() + chrono::Duration::minutes(15);
    let (report, out) = expire_approvals(&w.approvals, &bus, &w.ledger, later, "run-2").await;
    assert_eq!(report.announced, 1, "{report:?}");
    assert_eq!(out[0].status, Status::AwaitingApproval);
    assert_eq!(out[0].owner.team.as_deref(), Some("payments"));
    assert!(w.approvals.approval(&id).unwrap().notified);
    let (report, _) = expire_approvals(&w.approvals, &bus, &w.ledger, later, "run-3").await;
    assert_eq!(report.announced, 0);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_writes_nothing_and_is_announced_with_its_reason() {
    let w = world();
    let id = w.asked(&ask("payments-api", "f-medium")).await;
    let answer = w
        .operator(
            BOB,
            json!({"action": "refuse", "approval_id": id.as_str(), "reason": "the team's scanner"}),
        )
        .await;
    assert_eq!(answer["status"], "approval_refused", "{answer:#}");
    assert_eq!(answer["approval"]["decided_by"], BOB);
    assert_eq!(answer["approval"]["reason"], "the team's scanner");
    assert_eq!(answer["owner"]["team"], "payments");
    assert!(w.member.writes().is_empty());
    let last = w.published().last().cloned().unwrap();
    assert_eq!(last.status, Status::ApprovalRefused);
    assert_eq!(
        w.approvals.approval(&id).unwrap().state,
        ApprovalState::Refused
    );
    assert!(
        w.ledger
            .state()
            .entries
            .iter()
            .any(|e| e.outcome.status == Status::ApprovalRefused)
    );
    // Approving it now is refused.
    let late = w
        .operator(
            ALICE,
            json!({"action": "approve", "approval_id": id.as_str()}),
        )
        .await;
    assert_eq!(late["error"]["kind"], "refused");
    assert!(
        late["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("already refused by {BOB}"))
    );
    assert!(w.member.writes().is_empty());
    // The same finding, updated: the refusal stands, nobody is asked again; the
    // update is an alert that says how to revoke by hand.
    let published = w.published().len();
    let mut updated = ask("payments-api", "f-medium");
    updated.trigger.updated_at = Some(start() + chrono::Duration::hours(1));
    w.invoke(sqs(&[("m9", body(&updated))])).await;
    let told = w.published();
    assert_eq!(told.len(), published + 1);
    let alert = told.last().unwrap();
    assert_eq!(alert.status, Status::Alerted);
    assert_eq!(
        alert.approval.as_ref().unwrap().state,
        ApprovalState::Refused
    );
    assert!(
        alert.detail.contains(&format!("refused by {BOB}"))
            && alert
                .detail
                .contains("cutoff revoke --account 111122223333 --role payments-api"),
        "{}",
        alert.detail
    );
    assert!(w.member.writes().is_empty(), "the refusal stands");
    assert_eq!(
        w.approvals.approval(&id).unwrap().state,
        ApprovalState::Refused
    );
}

#[tokio::test(start_paused = true)]
async fn only_the_operator_path_decides_an_insider_with_sendmessage_or_a_plain_invoke_cannot() {
    let w = world();
    let request = ask("payments-api", "f-medium");
    let id = w.asked(&request).await;
    // A plain invoke of the revoker, claiming to be an operator.
    for action in ["approve", "refuse"] {
        let answer = w
            .invoke(json!({"action": action, "approval_id": id.as_str(), "requested_by": ALICE}))
            .await;
        assert_eq!(answer["status"], "failed", "{answer:#}");
        assert_eq!(answer["error"]["kind"], "invalid_request");
        let answer = w
            .invoke(json!({"action": action, "approval_id": id.as_str()}))
            .await;
        assert_eq!(answer["status"], "failed", "{answer:#}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("comes only from the operator path"),
            "{answer}"
        );
    }
    // An insider allowed sqs:SendMessage: an approval as a queue message, the request
    // itself with an approver, or with the mark removed (a plain revocation is no more
    // than the queue could always ask; that one is not an approval).
    let mut approved = request.clone();
    approved.trigger.approved_by = Some(ALICE.to_owned());
    let mut approved_plain = approved.clone();
    approved_plain.needs_approval = false;
    let answer = w
        .invoke(sqs(&[
            (
                "q1",
                json!({"action": "approve", "approval_id": id.as_str()}).to_string(),
            ),
            ("q2", body(&approved)),
            ("q3", body(&approved_plain)),
        ]))
        .await;
    assert!(failures(&answer).is_empty(), "refused, not retried");
    for q in ["q1", "q2", "q3"] {
        let outcome = w
            .published()
            .into_iter()
            .find(|o| o.request_id.as_deref() == Some(q))
            .unwrap();
        assert_eq!(outcome.status, Status::Failed, "{q}");
        assert_eq!(
            outcome.error.as_ref().unwrap().kind,
            FailureKind::InvalidRequest,
            "{q}"
        );
    }
    assert!(w.member.writes().is_empty(), "nothing written");
    let stored = w.approvals.approval(&id).unwrap();
    assert_eq!(
        stored.state,
        ApprovalState::Pending,
        "still the operators' to decide"
    );
}

#[tokio::test(start_paused = true)]
async fn a_forged_id_or_an_approval_that_names_another_principal_revokes_nothing() {
    let w = world();
    let id = w.asked(&ask("payments-api", "f-medium")).await;
    // An id of no approval (well-formed), and ones that are not ids at all.
    let forged = w
        .operator(
            ALICE,
            json!({"action": "approve", "approval_id": "0000000000000000"}),
        )
        .await;
    assert_eq!(forged["error"]["kind"], "refused", "{forged:#}");
    assert!(
        forged["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no approval 0000000000000000")
    );
    for bad in [
        json!({"action": "approve", "approval_id": "payments-api"}),
        json!({"action": "approve", "approval_id": format!("{id}0")}),
        // The approval runs what was stored: a principal named beside the id is refused.
        json!({"action": "approve", "approval_id": id.as_str(), "role": "ledger"}),
        json!({"action": "approve", "approval_id": id.as_str(), "account": "444455556666", "role": "payments-api"}),
        json!({"action": "approve", "approval_id": id.as_str(), "scope": "session", "session": "i-0123456789abcdef0"}),
    ] {
        let answer = w.operator(ALICE, bad.clone()).await;
        assert_eq!(answer["status"], "failed", "{bad}");
        assert_eq!(answer["error"]["kind"], "invalid_request", "{bad}");
    }
    assert!(w.member.writes().is_empty());
    assert_eq!(
        w.approvals.approval(&id).unwrap().state,
        ApprovalState::Pending
    );
}

#[tokio::test(start_paused = true)]
async fn the_principal_under_suspicion_cannot_decide_its_own_revocation() {
    let w = world();
    // A medium finding about the operators' own role in the member account.
    let request = ask("Ops-Admin", "f-ops");
    let id = w.asked(&request).await;
    for caller in [
        "arn:aws:sts::111122223333:assumed-role/Ops-Admin/attacker",
        "arn:aws:sts::111122223333:assumed-role/ops-admin/alice",
    ] {
        for action in ["refuse", "approve"] {
            let answer = w
                .operator(
                    caller,
                    json!({"action": action, "approval_id": id.as_str()}),
                )
                .await;
            assert_eq!(answer["status"], "failed", "{answer:#}");
            assert_eq!(answer["error"]["kind"], "refused");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains("principal under suspicion"), "{message}");
            // Told to the owner and the security team: someone tried.
            let last = w.published().last().cloned().unwrap();
            assert_eq!(last.target.unwrap().name.as_str(), "Ops-Admin");
            assert_eq!(last.trigger.requested_by.as_deref(), Some(caller));
        }
    }
    assert_eq!(
        w.approvals.approval(&id).unwrap().state,
        ApprovalState::Pending
    );
    // Another operator can.
    let answer = w
        .operator(
            ALICE,
            json!({"action": "approve", "approval_id": id.as_str()}),
        )
        .await;
    assert_eq!(answer["status"], "applied", "{answer:#}");
    assert!(w.role_deny("Ops-Admin").is_some());
}

#[tokio::test(start_paused = true)]
async fn an_approval_is_refused_from_the_instant_it_expires_even_before_the_sweeper_ran() {
    let w = world();
    let id = w.asked(&ask("payments-api", "f-medium")).await;
    w.revoker
        .clock
        .advance(chrono::Duration::hours(4) - chrono::Duration::seconds(1));
    // One second before: still open (listed), then exactly at the expiry: closed.
    let pending = w.operator(ALICE, json!({"action": "pending"})).await;
    assert_eq!(pending["pending"].as_array().unwrap().len(), 1, "{pending}");
    w.revoker.clock.advance(chrono::Duration::seconds(1));
    let answer = w
        .operator(
            ALICE,
            json!({"action": "approve", "approval_id": id.as_str()}),
        )
        .await;
    assert_eq!(answer["error"]["kind"], "refused", "{answer:#}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired at 2026-11-23T16:00:00Z")
    );
    assert!(w.member.writes().is_empty());
    let pending = w.operator(ALICE, json!({"action": "pending"})).await;
    assert_eq!(pending["pending"], json!([]));
    assert_eq!(
        w.approvals.approval(&id).unwrap().state,
        ApprovalState::Pending,
        "the sweeper marks it"
    );
}

#[tokio::test(start_paused = true)]
async fn pending_lists_the_open_approvals_soonest_first_through_either_path() {
    let w = world();
    let first = w.asked(&ask("payments-api", "f-1")).await;
    w.revoker.clock.advance(chrono::Duration::minutes(5));
    let second = w.asked(&ask("ledger", "f-2")).await;
    let refused = w.asked(&ask("ledger", "f-3")).await;
    w.operator(
        BOB,
        json!({"action": "refuse", "approval_id": refused.as_str()}),
    )
    .await;
    let through_url = w.operator(ALICE, json!({"action": "pending"})).await;
    let ids: Vec<&str> = through_url["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);
    let open: Vec<Approval> = serde_json::from_value(through_url["pending"].clone()).unwrap();
    assert_eq!(open[0].request.target.name.as_str(), "payments-api");
    assert!(through_url["pending"][0].get("notified").is_none());
    // A read: a plain invoke may list them too, and nothing is published.
    let published = w.published().len();
    let plain = w.invoke(json!({"action": "pending"})).await;
    assert_eq!(plain["pending"], through_url["pending"]);
    assert_eq!(w.published().len(), published);
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_expires_each_approval_once_and_announces_it_once() {
    let w = world();
    let id = w.asked(&ask("payments-api", "f-medium")).await;
    let decided = w.asked(&ask("ledger", "f-other")).await;
    w.operator(
        BOB,
        json!({"action": "refuse", "approval_id": decided.as_str()}),
    )
    .await;
    let bus = FakeOutcomeBus::default();
    let expire = |now: DateTime<Utc>, claimant: &'static str| {
        let (approvals, bus, ledger) = (&w.approvals, &bus, &w.ledger);
        async move { expire_approvals(approvals, bus, ledger, now, claimant).await }
    };
    let deadline = start() + chrono::Duration::hours(4);
    // A second before its deadline: nothing.
    let (report, out) = expire(deadline - chrono::Duration::seconds(1), "run-1").await;
    assert_eq!(report, ExpiryReport::default());
    assert!(out.is_empty());
    // At its deadline: expired and announced, once, whichever run comes second.
    let (report, out) = expire(deadline, "run-2").await;
    assert_eq!(report.expired, 1);
    assert_eq!(out.len(), 1);
    let outcome = bus.state().outcomes[0].clone();
    assert_eq!(outcome.status, Status::ApprovalExpired);
    assert_eq!(outcome.approval.as_ref().unwrap().id, id);
    assert_eq!(outcome.owner.team.as_deref(), Some("payments"));
    assert_eq!(outcome.request_id.as_deref(), Some("run-2"));
    let (report, _) = expire(deadline, "run-3").await;
    assert_eq!(
        report.expired, 0,
        "a concurrent or later run finds it claimed"
    );
    assert_eq!(bus.state().outcomes.len(), 1);
    let stored = w.approvals.approval(&id).unwrap();
    assert_eq!(stored.state, ApprovalState::Expired);
    assert!(stored.notified);
    assert_eq!(
        w.approvals.approval(&decided).unwrap().state,
        ApprovalState::Refused,
        "a decided approval never expires"
    );
    assert!(
        w.ledger
            .state()
            .entries
            .iter()
            .any(|e| e.outcome.status == Status::ApprovalExpired)
    );
    assert!(w.member.writes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_expiry_whose_message_did_not_go_out_is_announced_by_a_later_run_once_its_claim_is_stale()
 {
    let w = world();
    let id = w.asked(&ask("payments-api", "f-medium")).await;
    let bus = FakeOutcomeBus::default();
    let deadline = start() + chrono::Duration::hours(4);
    bus.fail("PutEvents", &[ErrorKind::Transient]);
    let (report, out) = expire_approvals(&w.approvals, &bus, &w.ledger, deadline, "run-1").await;
    assert_eq!(report.expired, 0);
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(out.is_empty());
    let stored = w.approvals.approval(&id).unwrap();
    assert_eq!(stored.state, ApprovalState::Expired, "claimed");
    assert!(!stored.notified);
    // Within the claim's lease another run leaves it (run-1 may still be sending).
    let soon = deadline + chrono::Duration::minutes(14);
    let (report, _) = expire_approvals(&w.approvals, &bus, &w.ledger, soon, "run-2").await;
    assert_eq!(report.expired, 0);
    // Past it, the next run announces it, once.
    let later = deadline + chrono::Duration::minutes(16);
    let (report, _) = expire_approvals(&w.approvals, &bus, &w.ledger, later, "run-3").await;
    assert_eq!(report.expired, 1);
    let (report, _) = expire_approvals(&w.approvals, &bus, &w.ledger, later, "run-4").await;
    assert_eq!(report.expired, 0);
    assert_eq!(bus.state().outcomes.len(), 1);
    assert!(w.approvals.approval(&id).unwrap().notified);
}

#[tokio::test(start_paused = true)]
async fn an_approval_item_nobody_can_read_is_reported_by_every_sweep_not_skipped() {
    let w = world();
    let id = w.asked(&ask("payments-api", "f-medium")).await;
    w.approvals
        .state()
        .unreadable
        .push("00000000000000ff: no state it knows".to_owned());
    let bus = FakeOutcomeBus::default();
    for run in ["run-1", "run-2"] {
        let (report, out) = expire_approvals(&w.approvals, &bus, &w.ledger, start(), run).await;
        assert_eq!(report.errors.len(), 1, "{report:?}");
        assert!(
            report.errors[0].contains("00000000000000ff")
                && report.errors[0].contains("cannot be read"),
            "{report:?}"
        );
        assert!(out.is_empty());
    }
    // The readable ones are handled as ever.
    let deadline = start() + chrono::Duration::hours(4);
    let (report, _) = expire_approvals(&w.approvals, &bus, &w.ledger, deadline, "run-3").await;
    assert_eq!(report.expired, 1);
    assert_eq!(
        w.approvals.approval(&id).unwrap().state,
        ApprovalState::Expired
    );
}

#[tokio::test(start_paused = true)]
async fn a_finding_that_goes_on_after_its_question_expired_asks_again() {
    let w = world();
    let request = ask("payments-api", "f-medium");
    let id = w.asked(&request).await;
    let deadline = start() + chrono::Duration::hours(4);
    let bus = FakeOutcomeBus::default();
    // Expired, not yet announced: a new update asks nothing (the sweeper announces);
    // it is told as an alert.
    w.approvals.fail("mark_notified", &[ErrorKind::Transient]);
    w.revoker.clock.advance(chrono::Duration::hours(5));
    expire_approvals(&w.approvals, &bus, &w.ledger, deadline, "run-1").await;
    let published = w.published().len();
    let mut later = request.clone();
    later.trigger.updated_at = Some(start() + chrono::Duration::hours(5));
    w.invoke(sqs(&[("m2", body(&later))])).await;
    assert_eq!(w.published().len(), published + 1);
    assert_eq!(w.published().last().unwrap().status, Status::Alerted);
    assert_eq!(
        w.approvals.approval(&id).unwrap().state,
        ApprovalState::Expired
    );
    // Once its expiry was announced, the finding's next update asks again (the same
    // id: the same question), open for the hours from now.
    w.approvals.mark_notified(&id).await.unwrap();
    w.invoke(sqs(&[("m3", body(&later))])).await;
    let asked_again = w.published().last().cloned().unwrap();
    assert_eq!(asked_again.status, Status::AwaitingApproval);
    let stored = w.approvals.approval(&id).unwrap();
    assert_eq!(stored.state, ApprovalState::Pending);
    assert_eq!(stored.expires_at, start() + chrono::Duration::hours(9));
}

#[test]
fn the_batch_gives_up_only_valid_questions() {
    let asked = ask("payments-api", "f-medium");
    let mut plain = asked.clone();
    plain.needs_approval = false;
    let mut forged = asked.clone();
    forged.trigger.approved_by = Some(ALICE.to_owned());
    let Invocation::Queue(batch) = Invocation::classify(sqs(&[
        ("a", body(&asked)),
        ("b", body(&plain)),
        ("c", body(&forged)),
        ("d", "{\"needs_approval\": true}".to_owned()),
    ])) else {
        panic!("not a batch")
    };
    let (rest, asks) = split_batch(batch);
    let taken: Vec<&str> = asks.iter().map(|a| a.message_id.as_str()).collect();
    assert_eq!(taken, ["a"]);
    let left: Vec<String> = rest
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    assert_eq!(left, ["b", "c", "d"], "refused there as before");
}
