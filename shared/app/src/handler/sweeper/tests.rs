//! Planning and working sweep runs against the fakes: fan-out, once-only counting,
//! one summary per run, owners told about moved cutoffs.

use super::*;
use aws_lambda_events::sqs::SqsMessage;
use chrono::{DateTime, Utc};
use cutoff_aws::ErrorKind;
use cutoff_aws::dynamodb::fake::FakeSweepLedger;
use cutoff_aws::eventbridge::fake::FakeOutcomeBus;
use cutoff_aws::organizations::fake::FakeOrganizations;
use cutoff_aws::sqs::fake::FakeSweepQueue;
use cutoff_aws::sts::fake::FakeAccess;
use cutoff_domain::clock::FixedClock;
use cutoff_domain::outcome::FailureKind;
use cutoff_domain::policy::{Cutoff, PolicyDocument, ROLE_WIDE_POLICY_NAME, role_wide_statement};
use cutoff_domain::principal::PrincipalName;
use cutoff_domain::sweep_rules::MAX_SESSION_AGE_TAG;
use serde_json::json;

const HOME: &str = "999988887777";
const A: &str = "111122223333";
const B: &str = "444455556666";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn account(id: &str) -> Account {
    Account::parse(id).unwrap()
}

type TestSweeper = Sweeper<
    FakeAccess,
    FakeOrganizations,
    FakeSweepQueue,
    FakeSweepLedger,
    FakeOutcomeBus,
    FixedClock,
>;

/// The sweeper's fakes besides IAM, as its fields name them.
#[derive(Default)]
struct Messaging {
    directory: FakeOrganizations,
    queue: FakeSweepQueue,
    ledger: FakeSweepLedger,
    bus: FakeOutcomeBus,
}

fn sweeper(accounts: SweepAccounts) -> (TestSweeper, FakeAccess, Messaging) {
    let access = FakeAccess::new(HOME);
    let a = access.account(A);
    a.add_role(
        "batch",
        "/",
        &[(MAX_SESSION_AGE_TAG, "4h"), ("cutoff:owner", "data")],
    );
    let expired = PolicyDocument::new(vec![role_wide_statement(Cutoff::at_or_after(
        now() - chrono::Duration::hours(20),
    ))])
    .to_json();
    a.add_role("payments", "/", &[]);
    a.set_inline(
        &cutoff_aws::IamPrincipal::role(PrincipalName::parse("payments").unwrap()),
        ROLE_WIDE_POLICY_NAME,
        &expired,
    );
    access.account(B).add_role("quiet", "/", &[]);
    let messaging = Messaging::default();
    messaging.directory.state().organization = vec![account(A), account(B)];
    let s = Sweeper {
        access: access.clone(),
        locks: cutoff_aws::dynamodb::NoLedger,
        directory: messaging.directory.clone(),
        queue: messaging.queue.clone(),
        ledger: messaging.ledger.clone(),
        bus: messaging.bus.clone(),
        clock: FixedClock::at(now()),
        config: SweepConfig::default(),
        accounts,
        scope: None,
        home: account(HOME),
        concurrency: 2,
        retry: RetryPolicy::default(),
    };
    (s, access, messaging)
}

fn batch(tasks: &[(&str, &SweepTask)]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for (id, task) in tasks {
        let mut m = SqsMessage::default();
        m.message_id = Some((*id).to_owned());
        m.body = Some(serde_json::to_string(task).unwrap());
        m.event_source = Some("aws:sqs".to_owned());
        event.records.push(m);
    }
    event
}

fn request() -> SweepRequest {
    SweepRequest {
        action: "sweep".into(),
        ..SweepRequest::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_scheduled_event_plans_one_task_per_organization_account() {
    let (s, _, messaging) = sweeper(SweepAccounts::Organization);
    let event = json!({"version":"0","id":"abc-123","detail-type":"Scheduled Event","source":"aws.events","account":HOME,"time":"2026-11-23T12:00:00Z","region":"us-east-1","resources":[],"detail":{}});
    let answer = s.dispatch(event.clone(), "req-1").await.unwrap();
    assert_eq!(answer["run_id"], "schedule-abc-123");
    assert_eq!(answer["accounts"], 2);
    let tasks = messaging.queue.state().sweep_tasks.clone();
    assert_eq!(
        tasks.iter().map(|t| t.account.clone()).collect::<Vec<_>>(),
        vec![account(A), account(B)]
    );
    assert!(
        tasks
            .iter()
            .all(|t| t.run_id == "schedule-abc-123" && !t.dry_run)
    );
    // The schedule retried: same event id, not planned twice.
    let again = s.dispatch(event, "req-2").await.unwrap();
    assert_eq!(again["planned"], false);
    assert_eq!(messaging.queue.state().sweep_tasks.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_home_account_is_the_default_and_an_operator_can_name_accounts() {
    let (s, _, messaging) = sweeper(SweepAccounts::Home);
    s.plan(&request(), "r1").await.unwrap();
    assert_eq!(
        messaging.queue.state().sweep_tasks[0].account,
        account(HOME)
    );
    let named = SweepRequest {
        accounts: Some(vec![account(B), account(B)]),
        dry_run: true,
        run_id: Some("ops-1".into()),
        ..request()
    };
    let report = s.plan(&named, "r2").await.unwrap();
    assert_eq!(report.accounts, 1);
    let last = messaging.queue.state().sweep_tasks.last().cloned().unwrap();
    assert_eq!((last.account, last.dry_run), (account(B), true));
}

#[tokio::test(start_paused = true)]
async fn workers_sweep_record_once_and_the_last_publishes_one_summary() {
    let (s, access, messaging) = sweeper(SweepAccounts::Organization);
    s.plan(
        &SweepRequest {
            run_id: Some("run-7".into()),
            ..request()
        },
        "r",
    )
    .await
    .unwrap();
    let tasks = messaging.queue.state().sweep_tasks.clone();
    let first = s.work(&batch(&[("m-a", &tasks[0])])).await;
    assert!(first.response.batch_item_failures.is_empty());
    assert!(
        messaging.bus.state().summaries.is_empty(),
        "one account of two reported"
    );
    // The owner of the moved cutoff heard; the released one goes in the summary only.
    let published = messaging.bus.state().outcomes.clone();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].owner.team.as_deref(), Some("data"));
    assert_eq!(published[0].status, Status::Applied);
    // The owner's message names the run as its request id.
    assert_eq!(published[0].request_id.as_deref(), Some("run-7"));

    // A redelivery of the first task is not counted twice.
    s.work(&batch(&[("m-a", &tasks[0])])).await;
    assert!(messaging.bus.state().summaries.is_empty());

    let last = s.work(&batch(&[("m-b", &tasks[1])])).await;
    assert!(last.tasks[0].summary_published);
    let summaries = messaging.bus.state().summaries.clone();
    assert_eq!(summaries.len(), 1);
    let summary = &summaries[0];
    assert_eq!(summary.run_id, "run-7");
    assert_eq!((summary.accounts, summary.accounts_reported), (2, 2));
    assert_eq!(summary.cutoffs_moved, 1);
    assert_eq!(summary.statements_removed, 1);
    assert_eq!(summary.released.len(), 1);
    assert_eq!(summary.released[0].name, "payments");
    assert!(!summary.has_failures());
    assert_eq!(access.assumed.lock().unwrap().len(), 3);

    // Another account's redelivery after the end publishes nothing more.
    s.work(&batch(&[("m-a2", &tasks[0])])).await;
    assert_eq!(messaging.bus.state().summaries.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_account_is_a_reported_failure_not_a_retry() {
    let (s, access, messaging) = sweeper(SweepAccounts::Listed(vec![account(A)]));
    access
        .assume_failures
        .lock()
        .unwrap()
        .push_back(ErrorKind::AccessDenied);
    s.plan(&request(), "r").await.unwrap();
    let tasks = messaging.queue.state().sweep_tasks.clone();
    let result = s.work(&batch(&[("m", &tasks[0])])).await;
    assert!(result.response.batch_item_failures.is_empty());
    let summary = messaging.bus.state().summaries[0].clone();
    assert_eq!(summary.accounts_failed, 1);
    assert_eq!(summary.failures[0].kind, FailureKind::AccessDenied);
    assert!(summary.has_failures());
}

#[tokio::test(start_paused = true)]
async fn a_summary_that_cannot_be_published_fails_the_task_and_its_redelivery_publishes_it() {
    let (s, _, messaging) = sweeper(SweepAccounts::Listed(vec![account(B)]));
    s.plan(&request(), "r").await.unwrap();
    let tasks = messaging.queue.state().sweep_tasks.clone();
    messaging.bus.fail("PutEvents", &[ErrorKind::AccessDenied]);
    let failed = s.work(&batch(&[("m", &tasks[0])])).await;
    assert_eq!(failed.response.batch_item_failures[0].item_identifier, "m");
    assert!(messaging.bus.state().summaries.is_empty());
    let retried = s.work(&batch(&[("m", &tasks[0])])).await;
    assert!(retried.response.batch_item_failures.is_empty());
    assert_eq!(messaging.bus.state().summaries.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_bad_task_body_is_a_batch_item_failure_and_the_others_are_worked() {
    let (s, _, messaging) = sweeper(SweepAccounts::Listed(vec![account(B)]));
    s.plan(&request(), "r").await.unwrap();
    let task = messaging.queue.state().sweep_tasks[0].clone();
    let mut event = batch(&[("good", &task)]);
    let mut bad = SqsMessage::default();
    bad.message_id = Some("bad".into());
    bad.body = Some("{\"run_id\":\"x\",\"account\":\"12\"}".into());
    event.records.push(bad);
    let result = s.work(&event).await;
    let failed: Vec<_> = result
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec!["bad".to_owned()]);
    assert_eq!(messaging.bus.state().summaries.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_empty_organization_publishes_an_empty_summary_at_once() {
    let (s, _, messaging) = sweeper(SweepAccounts::Organization);
    messaging.directory.state().organization.clear();
    let report = s.plan(&request(), "r").await.unwrap();
    assert_eq!(report.accounts, 0);
    assert!(messaging.queue.state().sweep_tasks.is_empty());
    assert_eq!(messaging.bus.state().summaries[0].accounts, 0);
}

#[test]
fn inputs_are_classified_and_invalid_ones_explained() {
    assert!(matches!(
        SweeperInput::classify(json!({"action":"sweep","dry_run":true})),
        SweeperInput::Plan(SweepRequest { dry_run: true, .. })
    ));
    for bad in [
        json!({"action":"revoke"}),
        json!({"action":"sweep","accounts":["12"]}),
        json!({"action":"sweep","surprise":1}),
        json!("sweep"),
    ] {
        assert!(
            matches!(
                SweeperInput::classify(bad.clone()),
                SweeperInput::Invalid(_)
            ),
            "{bad}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_id_that_could_inject_into_keys_or_logs_is_refused() {
    let (s, _, messaging) = sweeper(SweepAccounts::Home);
    let bad = SweepRequest {
        run_id: Some("a#b\nc".into()),
        ..request()
    };
    assert!(matches!(
        s.plan(&bad, "r").await,
        Err(SweepError::Invalid(_))
    ));
    assert!(messaging.queue.state().sweep_tasks.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_batch_counts_its_accounts_errors_calls_and_outcomes() {
    let (s, access, messaging) = sweeper(SweepAccounts::Listed(vec![account(A), account(B)]));
    // B's member role cannot be assumed: an account that could not be swept.
    s.plan(&request(), "r").await.unwrap();
    let tasks = messaging.queue.state().sweep_tasks.clone();
    let worked_a = s.work(&batch(&[("m-a", &tasks[0])])).await;
    access
        .assume_failures
        .lock()
        .unwrap()
        .push_back(ErrorKind::AccessDenied);
    let mut event = batch(&[("m-b", &tasks[1])]);
    let mut bad = SqsMessage::default();
    bad.message_id = Some("bad".into());
    bad.body = Some("not a task".into());
    event.records.push(bad);
    let worked_b = s.work(&event).await;

    let doc = |r: &Record| r.to_emf(&cutoff_domain::metrics::Namespace::default(), now());
    let a: Vec<serde_json::Value> = work_records(&worked_a).iter().map(doc).collect();
    // A moved one cutoff (applied) and removed one expired revocation (released).
    let statuses: Vec<(&str, u64)> = a
        .iter()
        .filter(|d| d.get("Outcomes").is_some())
        .map(|d| {
            (
                d["Status"].as_str().unwrap(),
                d["Outcomes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses, vec![("applied", 1), ("released", 1)], "{a:?}");
    assert!(a.iter().all(|d| d["Function"] == "sweeper"));
    let totals = a.last().unwrap();
    assert_eq!(totals["AccountsSwept"], 1);
    assert_eq!(totals["SweepErrors"], 0);
    assert!(totals["IamCalls"].as_u64().unwrap() > 0, "{totals}");

    let b = work_records(&worked_b);
    let totals = doc(b.last().unwrap());
    // The unreachable account and the refused task are each an error.
    assert_eq!(totals["AccountsSwept"], 1);
    assert_eq!(totals["SweepErrors"], 2, "{totals}");
}
