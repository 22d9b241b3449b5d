//! Planning and working sweep runs against the fakes: fan-out, once-only counting,
//! one summary per run, owners told about moved cutoffs.

use super::*;
use aws_lambda_events::sqs::SqsMessage;
use chrono::{DateTime, Utc};
use cutoff_aws::ErrorKind;
use cutoff_aws::dynamodb::approvals::fake::FakeApprovals;
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
    cutoff_aws::dynamodb::NoLedger,
    FakeApprovals,
>;

/// The sweeper's fakes besides IAM, as its fields name them.
#[derive(Default)]
struct Messaging {
    directory: FakeOrganizations,
    queue: FakeSweepQueue,
    ledger: FakeSweepLedger,
    bus: FakeOutcomeBus,
    approvals: FakeApprovals,
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
        digest: DigestSetting::Off,
        approvals: messaging.approvals.clone(),
    };
    (s, access, messaging)
}

/// An account whose only news is an expired revocation on role `old`: a change that
/// tells no owner (it goes in the summary only), so the summary is the bus's only event.
const C: &str = "777788889999";

fn with_expired_only(access: &FakeAccess) {
    let c = access.account(C);
    c.add_role("old", "/", &[]);
    c.set_inline(
        &cutoff_aws::IamPrincipal::role(PrincipalName::parse("old").unwrap()),
        ROLE_WIDE_POLICY_NAME,
        &PolicyDocument::new(vec![role_wide_statement(Cutoff::at_or_after(
            now() - chrono::Duration::hours(20),
        ))])
        .to_json(),
    );
}

/// Plans a run of `accounts` named `run_id` and works every task, one batch each.
async fn run_through(
    s: &TestSweeper,
    messaging: &Messaging,
    run_id: &str,
    accounts: &[&str],
    dry_run: bool,
) -> Vec<TaskReport> {
    let before = messaging.queue.state().sweep_tasks.len();
    s.plan(
        &SweepRequest {
            run_id: Some(run_id.into()),
            accounts: Some(accounts.iter().map(|a| account(a)).collect()),
            dry_run,
            ..request()
        },
        "r",
    )
    .await
    .unwrap();
    let tasks = messaging.queue.state().sweep_tasks[before..].to_vec();
    let mut reports = Vec::new();
    for (i, task) in tasks.iter().enumerate() {
        let id = format!("{run_id}-m{i}");
        reports.extend(s.work(&batch(&[(id.as_str(), task)])).await.tasks);
    }
    reports
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
async fn a_plan_that_failed_after_creating_its_run_sends_the_tasks_when_it_is_retried() {
    // The run is created, then the queue refuses the tasks: Lambda retries the
    // invocation with the same request id, so the same run id.
    let (s, _, messaging) = sweeper(SweepAccounts::Organization);
    messaging
        .queue
        .fail("SendMessageBatch", &[ErrorKind::AccessDenied]);
    assert!(s.plan(&request(), "req-1").await.is_err());
    assert!(messaging.queue.state().sweep_tasks.is_empty());
    let retried = s.plan(&request(), "req-1").await.unwrap();
    assert!(!retried.planned);
    assert_eq!(retried.tasks_sent_again, 2);
    let tasks = messaging.queue.state().sweep_tasks.clone();
    assert_eq!(
        tasks.iter().map(|t| t.account.clone()).collect::<Vec<_>>(),
        vec![account(A), account(B)]
    );
    assert!(tasks.iter().all(|t| t.run_id == "run-req-1"));
    // Sent now: a third delivery sends nothing more.
    let third = s.plan(&request(), "req-1").await.unwrap();
    assert_eq!(third.tasks_sent_again, 0);
    assert_eq!(messaging.queue.state().sweep_tasks.len(), 2);
    // And the run completes as any other, once: a task left over from the failed
    // send is counted once too.
    let worked = s
        .work(&batch(&[("m-a", &tasks[0]), ("m-b", &tasks[1])]))
        .await;
    assert!(worked.response.batch_item_failures.is_empty());
    let again = s.work(&batch(&[("m-a2", &tasks[0])])).await;
    assert!(again.response.batch_item_failures.is_empty());
    let (_, records) = messaging.ledger.run_records("run-req-1").await.unwrap();
    assert_eq!(records.len(), 2);
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
    assert_eq!(last.tasks[0].summary, Some(SummaryFate::Published));
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
    let (s, access, messaging) = sweeper(SweepAccounts::Listed(vec![account(C)]));
    with_expired_only(&access);
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
    // The good task finished its (quiet) run.
    let good = result
        .tasks
        .iter()
        .find(|t| t.message_id == "good")
        .unwrap();
    assert_eq!(good.summary, Some(SummaryFate::Quiet));
}

#[tokio::test(start_paused = true)]
async fn an_empty_organization_finishes_its_run_at_once_and_publishes_nothing() {
    let (s, _, messaging) = sweeper(SweepAccounts::Organization);
    messaging.directory.state().organization.clear();
    let report = s.plan(&request(), "r").await.unwrap();
    assert_eq!(report.accounts, 0);
    assert!(messaging.queue.state().sweep_tasks.is_empty());
    assert!(messaging.bus.state().summaries.is_empty());
    // Finished and recorded: the digest counts it as a quiet run.
    let days = messaging.ledger.state().days.clone();
    let [day_run] = days.values().collect::<Vec<_>>()[..] else {
        panic!("one run in the day index: {days:?}")
    };
    let totals = day_run.totals.clone().expect("the run finished");
    assert!(totals.is_quiet(day_run.accounts));
}

#[tokio::test(start_paused = true)]
async fn a_quiet_run_is_recorded_but_its_summary_is_not_published() {
    let (s, _, messaging) = sweeper(SweepAccounts::Home);
    // B's only role has nothing to change.
    let reports = run_through(&s, &messaging, "quiet-1", &[B], false).await;
    assert_eq!(reports[0].summary, Some(SummaryFate::Quiet));
    let bus = messaging.bus.state();
    assert!(bus.summaries.is_empty() && bus.outcomes.is_empty());
    drop(bus);
    let ledger = messaging.ledger.state();
    // The run ledger has the account's record; the day index its totals.
    assert!(
        ledger
            .records
            .contains_key(&("quiet-1".to_owned(), B.to_owned()))
    );
    let day_run = &ledger.days[&(now().date_naive(), "quiet-1".to_owned())];
    let totals = day_run.totals.as_ref().expect("finished");
    assert_eq!(
        (totals.accounts_reported, totals.principals_scanned),
        (1, 1)
    );
    assert!(totals.is_quiet(1));
}

#[tokio::test(start_paused = true)]
async fn a_run_that_only_changed_or_only_failed_is_published() {
    let (s, access, messaging) = sweeper(SweepAccounts::Home);
    with_expired_only(&access);
    // Changes only: an expired revocation removed, which tells no owner.
    let reports = run_through(&s, &messaging, "changed", &[C], false).await;
    assert_eq!(reports[0].summary, Some(SummaryFate::Published));
    // Failures only: B's member role refused.
    access
        .assume_failures
        .lock()
        .unwrap()
        .push_back(ErrorKind::AccessDenied);
    let reports = run_through(&s, &messaging, "failed", &[B], false).await;
    assert_eq!(reports[0].summary, Some(SummaryFate::Published));
    let summaries = messaging.bus.state().summaries.clone();
    let by_run = |id: &str| summaries.iter().find(|s| s.run_id == id).unwrap();
    let changed = by_run("changed");
    assert!(changed.has_changes() && !changed.has_failures());
    assert_eq!(changed.statements_removed, 1);
    let failed = by_run("failed");
    assert!(!failed.has_changes() && failed.has_failures());
    assert_eq!(summaries.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_that_would_change_something_is_published_and_writes_nothing() {
    let (s, access, messaging) = sweeper(SweepAccounts::Home);
    with_expired_only(&access);
    let reports = run_through(&s, &messaging, "dry", &[C], true).await;
    assert_eq!(reports[0].summary, Some(SummaryFate::Published));
    let summary = messaging.bus.state().summaries[0].clone();
    assert!(summary.dry_run);
    assert_eq!(summary.statements_removed, 1, "what it would remove");
    // Nothing written: the expired deny is still there for the real run.
    let real = run_through(&s, &messaging, "real", &[C], false).await;
    assert_eq!(real[0].summary, Some(SummaryFate::Published));
    assert_eq!(messaging.bus.state().summaries[1].statements_removed, 1);
}

/// The sweeper with the daily digest on, its clock at `at`.
fn digesting(s: TestSweeper, at: DateTime<Utc>) -> TestSweeper {
    Sweeper {
        digest: DigestSetting::Daily,
        clock: FixedClock::at(at),
        ..s
    }
}

fn day(s: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_first_run_of_a_day_sends_the_digest_of_the_day_before_once() {
    let (s, access, messaging) = sweeper(SweepAccounts::Home);
    with_expired_only(&access);
    // 2026-11-23: a quiet run, one that changed something, one with a failure, and
    // one whose task never reported.
    run_through(&s, &messaging, "d1-quiet", &[B], false).await;
    run_through(&s, &messaging, "d1-changed", &[C], false).await;
    access
        .assume_failures
        .lock()
        .unwrap()
        .push_back(ErrorKind::AccessDenied);
    run_through(&s, &messaging, "d1-failed", &[B], false).await;
    s.plan(
        &SweepRequest {
            run_id: Some("d1-lost".into()),
            accounts: Some(vec![account(B), account(C)]),
            ..request()
        },
        "r",
    )
    .await
    .unwrap();
    assert!(
        messaging.bus.state().digests.is_empty(),
        "the digest is off by default"
    );

    // The first run of 2026-11-24 sends the 23rd's digest; the next runs do not.
    let s = digesting(s, now() + chrono::Duration::hours(13));
    let first = s
        .plan(
            &SweepRequest {
                run_id: Some("d2-a".into()),
                ..request()
            },
            "r",
        )
        .await
        .unwrap();
    assert_eq!(
        first.digest,
        Some(DigestReport {
            day: day("2026-11-23"),
            result: DigestResult::Sent
        })
    );
    let second = s
        .plan(
            &SweepRequest {
                run_id: Some("d2-b".into()),
                ..request()
            },
            "r",
        )
        .await
        .unwrap();
    assert_eq!(second.digest.unwrap().result, DigestResult::Claimed);
    let digests = messaging.bus.state().digests.clone();
    let [d] = &digests[..] else {
        panic!("one digest: {digests:?}")
    };
    assert_eq!(d.date, day("2026-11-23"));
    assert_eq!(d.made_by, "d2-a");
    assert_eq!(
        (
            d.runs,
            d.quiet_runs,
            d.runs_with_changes,
            d.runs_with_failures,
            d.unfinished_runs
        ),
        (4, 1, 1, 1, 1)
    );
    assert_eq!(
        (d.accounts_swept, d.accounts_failed, d.statements_removed),
        (3, 1, 1)
    );
    // The expired statement was the policy's last: the policy went too.
    assert_eq!((d.policies_deleted, d.changes, d.failures), (1, 2, 1));
    assert_eq!(d.failed, ["d1-failed"]);
    assert_eq!(d.unfinished, ["d1-lost"]);
}

#[tokio::test(start_paused = true)]
async fn concurrent_runs_send_one_digest_and_a_day_without_runs_is_one_too() {
    let (s, _, messaging) = sweeper(SweepAccounts::Home);
    let s = digesting(s, now());
    let plan = |id: &str| SweepRequest {
        run_id: Some(id.into()),
        ..request()
    };
    let (a, b) = (plan("c-a"), plan("c-b"));
    let (a, b) = futures_util::join!(s.plan(&a, "ra"), s.plan(&b, "rb"));
    let results = [
        a.unwrap().digest.unwrap().result,
        b.unwrap().digest.unwrap().result,
    ];
    assert!(
        results.contains(&DigestResult::Sent) && results.contains(&DigestResult::Claimed),
        "{results:?}"
    );
    let digests = messaging.bus.state().digests.clone();
    assert_eq!(digests.len(), 1);
    // Nothing ran on the 22nd: a digest of zeros, not an error.
    assert_eq!(digests[0].date, day("2026-11-22"));
    assert_eq!((digests[0].runs, digests[0].failures), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_digest_that_could_not_be_sent_is_taken_over_by_a_later_run_once_stale() {
    let (s, _, messaging) = sweeper(SweepAccounts::Home);
    let s = digesting(s, now());
    let plan = |id: &str| SweepRequest {
        run_id: Some(id.into()),
        ..request()
    };
    // The plan's only PutEvents is the digest: the tasks go to the queue.
    messaging.bus.fail("PutEvents", &[ErrorKind::AccessDenied]);
    let failed = s
        .plan(&plan("t-a"), "r")
        .await
        .expect("the sweep is planned anyway");
    assert!(matches!(
        failed.digest.unwrap().result,
        DigestResult::Failed(_)
    ));
    assert_eq!(
        messaging.queue.state().sweep_tasks.len(),
        1,
        "the sweep went out"
    );
    // Within the lease the claim holds.
    s.clock.advance(chrono::Duration::minutes(10));
    let held = s.plan(&plan("t-b"), "r").await.unwrap();
    assert_eq!(held.digest.unwrap().result, DigestResult::Claimed);
    assert!(messaging.bus.state().digests.is_empty());
    // Past it, the next run sends it; after that no one does.
    s.clock.advance(chrono::Duration::minutes(10));
    let taken = s.plan(&plan("t-c"), "r").await.unwrap();
    assert_eq!(taken.digest.unwrap().result, DigestResult::Sent);
    s.clock.advance(chrono::Duration::hours(1));
    let after = s.plan(&plan("t-d"), "r").await.unwrap();
    assert_eq!(after.digest.unwrap().result, DigestResult::Claimed);
    let digests = messaging.bus.state().digests.clone();
    assert_eq!(digests.len(), 1);
    assert_eq!(digests[0].made_by, "t-c");
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

#[tokio::test(start_paused = true)]
async fn every_schedule_expires_the_approvals_past_their_deadline_even_when_it_plans_nothing() {
    let (s, _, messaging) = sweeper(SweepAccounts::Organization);
    let asked = |finding: &str, hours_ago: i64| {
        let request: cutoff_domain::outcome::RevocationRequest = serde_json::from_value(json!({
            "action": "revoke",
            "target": {"kind": "role", "account": A, "name": "payments", "access_key_id": null, "session": null},
            "trigger": {"source": "guardduty", "finding_id": finding, "finding_type": null, "severity": 5.0,
                        "updated_at": null, "requested_by": null, "reason": null},
            "needs_approval": true
        }))
        .unwrap();
        let mut approval = cutoff_domain::approval::Approval::ask(
            &request,
            now() - chrono::Duration::hours(hours_ago),
            cutoff_domain::approval::ApprovalHours::DEFAULT,
        );
        approval.notified = true;
        approval
    };
    let due = asked("f-due", 4);
    let open = asked("f-open", 3);
    messaging.approvals.insert(due.clone());
    messaging.approvals.insert(open.clone());
    let event = json!({"version":"0","id":"abc-123","detail-type":"Scheduled Event","source":"aws.events","account":HOME,"time":"2026-11-23T12:00:00Z","region":"us-east-1","resources":[],"detail":{}});
    let answer = s.dispatch(event.clone(), "req-1").await.unwrap();
    assert_eq!(answer["approvals"]["expired"], 1, "{answer}");
    let expired: Vec<_> = messaging
        .bus
        .state()
        .outcomes
        .iter()
        .filter(|o| o.status == Status::ApprovalExpired)
        .cloned()
        .collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].approval.as_ref().unwrap().id, due.id);
    assert_eq!(
        messaging.approvals.approval(&open.id).unwrap().state,
        cutoff_domain::approval::ApprovalState::Pending
    );
    // The schedule retried (planned already): the approval is not announced twice.
    let again = s.dispatch(event, "req-2").await.unwrap();
    assert_eq!(again["planned"], false);
    assert_eq!(again["approvals"]["expired"], 0);
    // An operator's sweep that cannot be planned still expires what is due.
    messaging.approvals.insert(asked("f-due-later", 5));
    let refused = s
        .dispatch(json!({"action": "sweep", "run_id": "bad id"}), "req-3")
        .await;
    assert!(refused.is_err());
    assert_eq!(
        messaging
            .bus
            .state()
            .outcomes
            .iter()
            .filter(|o| o.status == Status::ApprovalExpired)
            .count(),
        2
    );
}
