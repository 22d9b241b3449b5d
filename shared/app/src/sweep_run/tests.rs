//! The sweep workflow against in-memory fakes: what is written, what is reported,
//! and what it costs in calls. tokio's clock is paused so backoff takes no real time.

use super::*;
use cutoff_aws::ErrorKind;
use cutoff_aws::dynamodb::NoLedger;
use cutoff_aws::iam::fake::FakeIam;
use cutoff_aws::sts::fake::FakeAccess;
use cutoff_domain::clock::FixedClock;
use cutoff_domain::outcome::FailureKind;
use cutoff_domain::policy::{ROLE_WIDE_POLICY_NAME, role_wide_statement};
use cutoff_domain::principal::PrincipalName;
use cutoff_domain::sweep_rules::MAX_SESSION_AGE_TAG;
use serde_json::json;

const HOME: &str = "999988887777";
const MEMBER: &str = "111122223333";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn ago(hours: i64) -> Cutoff {
    Cutoff::at_or_after(now() - chrono::Duration::hours(hours))
}

fn role(name: &str) -> IamPrincipal {
    IamPrincipal::role(PrincipalName::parse(name).unwrap())
}

fn account(id: &str) -> Account {
    Account::parse(id).unwrap()
}

fn doc(cutoffs: &[Cutoff], foreign: bool) -> String {
    let mut statements: Vec<_> = cutoffs.iter().map(|c| role_wide_statement(*c)).collect();
    if foreign {
        statements.push(
            json!({"Sid":"KeepMe","Effect":"Deny","Action":"s3:DeleteBucket","Resource":"*"}),
        );
    }
    PolicyDocument::new(statements).to_json()
}

fn stored(fake: &FakeIam, name: &str) -> Option<PolicyDocument> {
    fake.inline(&role(name), ROLE_WIDE_POLICY_NAME)
        .map(|d| PolicyDocument::parse(&d).unwrap())
}

fn setup() -> (FakeAccess, FakeIam) {
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    member
        .add_role(
            "batch-worker",
            "/",
            &[(MAX_SESSION_AGE_TAG, "4h"), ("cutoff:owner", "data")],
        )
        .add_role("payments-api", "/", &[("cutoff:owner", "payments")])
        .add_role("untouched", "/", &[]);
    member.set_inline(
        &role("payments-api"),
        ROLE_WIDE_POLICY_NAME,
        &doc(&[ago(20), ago(2)], true),
    );
    (access, member)
}

async fn sweep(access: &FakeAccess, config: &SweepConfig) -> AccountReport {
    let mut reports = sweep_accounts(
        access,
        &NoLedger,
        &[account(MEMBER)],
        config,
        &FixedClock::at(now()),
        "run-1",
        4,
    )
    .await;
    assert_eq!(reports.len(), 1);
    reports.remove(0)
}

#[tokio::test(start_paused = true)]
async fn opted_in_role_gets_the_rolling_cutoff_and_expired_statements_go_foreign_stay() {
    let (access, member) = setup();
    let report = sweep(&access, &SweepConfig::default()).await;
    assert!(report.error.is_none(), "{report:#?}");
    assert_eq!(report.principals_scanned, 3);
    assert_eq!(report.cutoffs_moved, 1);
    assert_eq!(report.statements_removed, 1);
    assert_eq!(report.policies_deleted, 0);

    let rolling = stored(&member, "batch-worker").unwrap();
    assert_eq!(rolling.role_wide_cutoff(), Some(ago(4)));
    let cleaned = stored(&member, "payments-api").unwrap();
    assert_eq!(cleaned.role_wide_cutoff(), Some(ago(2)));
    assert_eq!(cleaned.foreign_statements().len(), 1);
    assert!(stored(&member, "untouched").is_none());

    let by_name = |n: &str| {
        report
            .outcomes
            .iter()
            .find(|o| o.target.as_ref().unwrap().name.as_str() == n)
            .unwrap()
    };
    let moved = by_name("batch-worker");
    assert_eq!(moved.status, Status::Applied);
    assert_eq!(moved.cutoff, Some(ago(4)));
    assert_eq!(moved.owner.team.as_deref(), Some("data"));
    assert_eq!(moved.trigger.source, Source::Schedule);
    assert!(
        moved.detail.contains("max session age 4h"),
        "{}",
        moved.detail
    );
    let released = by_name("payments-api");
    assert_eq!(released.status, Status::Released);
    assert_eq!(released.previous_cutoff, Some(ago(20)));
    assert_eq!(report.released.len(), 1);
    assert_eq!(report.released[0].0.name.as_str(), "payments-api");
    assert_eq!(report.released[0].1, vec![ago(20)]);
    assert_eq!(report.outcomes.len(), 2);

    // AssumeRole, one page; batch-worker: fresh read, put, read-back; payments-api:
    // fresh read, put.
    assert_eq!(report.api_calls, 1 + 1 + 3 + 2);
    assert_eq!(member.writes(), vec!["PutRolePolicy", "PutRolePolicy"]);
}

#[tokio::test(start_paused = true)]
async fn a_second_sweep_at_the_same_time_writes_nothing_and_never_moves_backwards() {
    let (access, member) = setup();
    sweep(&access, &SweepConfig::default()).await;
    member.set_inline(
        &role("batch-worker"),
        ROLE_WIDE_POLICY_NAME,
        &doc(&[ago(1)], false),
    );
    let writes_before = member.writes().len();
    let again = sweep(&access, &SweepConfig::default()).await;
    assert_eq!(again.cutoffs_moved, 0);
    assert_eq!(again.statements_removed, 0);
    assert!(again.outcomes.is_empty(), "{:#?}", again.outcomes);
    assert_eq!(member.writes().len(), writes_before);
    // AssumeRole and the one page: nothing else.
    assert_eq!(again.api_calls, 2);
    assert_eq!(
        stored(&member, "batch-worker").unwrap().role_wide_cutoff(),
        Some(ago(1))
    );
}

#[tokio::test(start_paused = true)]
async fn a_revocation_landing_after_the_listing_is_kept() {
    let (access, member) = setup();
    member.state().roles.remove("batch-worker");
    // The listing sees only the expired statement; by the time the sweeper writes, a
    // revocation has added a fresh cutoff (what the fresh read returns).
    member.set_inline(
        &role("payments-api"),
        ROLE_WIDE_POLICY_NAME,
        &doc(&[ago(20)], false),
    );
    let fresh = doc(&[ago(20), Cutoff::at_or_after(now())], false);
    member.stale_reads(ROLE_WIDE_POLICY_NAME, &[Some(fresh.as_str())]);
    let report = sweep(&access, &SweepConfig::default()).await;
    assert!(report.error.is_none());
    let kept = stored(&member, "payments-api").unwrap();
    assert_eq!(kept.role_wide_cutoff(), Some(Cutoff::at_or_after(now())));
    assert_eq!(report.statements_removed, 1);
}

#[tokio::test(start_paused = true)]
async fn a_policy_emptied_of_expired_statements_is_deleted_and_the_fallback_detached() {
    let (access, member) = setup();
    member.set_inline(
        &role("payments-api"),
        ROLE_WIDE_POLICY_NAME,
        &doc(&[ago(30)], false),
    );
    let arn = format!("arn:aws:iam::{MEMBER}:policy/cutoff/cutoff-revoke-payments-api");
    member
        .state()
        .managed
        .insert(arn.clone(), vec![doc(&[ago(40)], false)]);
    member
        .state()
        .roles
        .get_mut("payments-api")
        .unwrap()
        .attached
        .push(arn.clone());
    let report = sweep(&access, &SweepConfig::default()).await;
    assert!(report.error.is_none(), "{report:#?}");
    assert_eq!(report.statements_removed, 2);
    assert_eq!(report.policies_deleted, 2);
    assert!(stored(&member, "payments-api").is_none());
    let state = member.state();
    assert!(!state.managed.contains_key(&arn));
    assert!(state.roles["payments-api"].attached.is_empty());
}

#[tokio::test(start_paused = true)]
async fn dry_run_reports_everything_and_writes_nothing() {
    let (access, member) = setup();
    let config = SweepConfig {
        dry_run: true,
        ..SweepConfig::default()
    };
    let report = sweep(&access, &config).await;
    assert!(report.dry_run);
    assert_eq!(report.cutoffs_moved, 1);
    assert_eq!(report.statements_removed, 1);
    assert!(member.writes().is_empty(), "{:?}", member.writes());
    assert!(
        report
            .outcomes
            .iter()
            .all(|o| o.status == Status::DryRun && o.dry_run)
    );
    assert!(
        report
            .outcomes
            .iter()
            .all(|o| !o.actions.is_empty() && o.detail.contains("would")),
        "{:#?}",
        report.outcomes
    );
    assert!(stored(&member, "batch-worker").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_is_reported_for_that_principal_and_the_others_are_swept() {
    let (access, member) = setup();
    // Both puts fail fatally; batch-worker comes first (listing order).
    member.fail("PutRolePolicy", &[ErrorKind::AccessDenied]);
    let report = sweep(&access, &SweepConfig::default()).await;
    assert!(report.error.is_none());
    assert_eq!(report.principals_failed, 1);
    let failed: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].error.as_ref().unwrap().kind,
        FailureKind::AccessDenied
    );
    assert_eq!(
        report.statements_removed, 1,
        "payments-api was still cleaned"
    );
}

#[tokio::test(start_paused = true)]
async fn an_account_that_cannot_be_reached_is_reported_and_the_others_are_swept() {
    let (access, _member) = setup();
    let other = access.account("444455556666");
    other.add_role("etl", "/", &[(MAX_SESSION_AGE_TAG, "1h")]);
    access
        .assume_failures
        .lock()
        .unwrap()
        .push_back(ErrorKind::AccessDenied);
    let reports = sweep_accounts(
        &access,
        &NoLedger,
        &[account(MEMBER), account("444455556666")],
        &SweepConfig::default(),
        &FixedClock::at(now()),
        "run-2",
        1,
    )
    .await;
    assert_eq!(reports[0].account, account(MEMBER));
    assert_eq!(
        reports[0].error.as_ref().unwrap().kind,
        FailureKind::AccessDenied
    );
    assert_eq!(reports[0].api_calls, 1);
    assert!(reports[1].error.is_none());
    assert_eq!(reports[1].cutoffs_moved, 1);
}

#[tokio::test(start_paused = true)]
async fn a_listing_that_fails_writes_nothing() {
    let (access, member) = setup();
    member.fail("GetAccountAuthorizationDetails", &[ErrorKind::AccessDenied]);
    let report = sweep(&access, &SweepConfig::default()).await;
    assert_eq!(
        report.error.as_ref().unwrap().kind,
        FailureKind::AccessDenied
    );
    assert!(member.writes().is_empty());
    assert!(report.outcomes.is_empty());
}

#[tokio::test(start_paused = true)]
async fn throttling_is_retried_with_backoff_and_the_sweep_completes() {
    let (access, member) = setup();
    member.fail(
        "GetAccountAuthorizationDetails",
        &[ErrorKind::Throttled, ErrorKind::Throttled],
    );
    member.fail("PutRolePolicy", &[ErrorKind::Throttled]);
    let report = sweep(&access, &SweepConfig::default()).await;
    assert!(report.error.is_none());
    assert_eq!(report.principals_failed, 0);
    assert_eq!(report.cutoffs_moved, 1);
    // The seven calls of a clean sweep, two more pages and one more put.
    assert_eq!(report.api_calls, 7 + 3);
}

#[tokio::test(start_paused = true)]
async fn protected_roles_are_noted_and_untouched() {
    let (access, member) = setup();
    member.add_role(
        "cutoff-us-east-1-revoker",
        "/",
        &[(MAX_SESSION_AGE_TAG, "1h")],
    );
    // Anyone could create a role named like cutoff's: a name protects nothing.
    member.add_role("cutoff-backdoor", "/", &[(MAX_SESSION_AGE_TAG, "1h")]);
    let config = SweepConfig {
        rules: SweepRules {
            protected: cutoff_domain::principal::Protection {
                arns: vec![
                    cutoff_domain::principal::ProtectedArn::parse(&format!(
                        "arn:aws:iam::{MEMBER}:role/cutoff-us-east-1-revoker"
                    ))
                    .unwrap(),
                ],
                ..cutoff_domain::settings::TriageConfig::default().protection
            },
            ..SweepRules::default()
        },
        ..SweepConfig::default()
    };
    let report = sweep(&access, &config).await;
    assert!(stored(&member, "cutoff-us-east-1-revoker").is_none());
    assert!(
        stored(&member, "cutoff-backdoor").is_some(),
        "a role named cutoff-* gets its rolling cutoff like any other"
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("cutoff-us-east-1-revoker") && n.contains("protected")),
        "{:?}",
        report.notes
    );
}

#[tokio::test(start_paused = true)]
async fn bounded_keeps_order_and_never_exceeds_the_limit() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let in_flight = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let work = (0..10u64).map(|i| {
        let (in_flight, peak) = (&in_flight, &peak);
        async move {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            // Later items finish first, so order comes from the index, not completion.
            tokio::time::sleep(Duration::from_millis(100 - i * 10)).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            i
        }
    });
    let out = bounded(work, 3).await;
    assert_eq!(out, (0..10).collect::<Vec<_>>());
    assert_eq!(peak.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_cutoff_written_but_not_read_back_is_counted_and_reported_failed() {
    let (access, member) = setup();
    // batch-worker: the fresh read finds no policy, then five read-backs still show none.
    member.stale_reads(ROLE_WIDE_POLICY_NAME, &[None, None, None, None, None, None]);
    let report = sweep(&access, &SweepConfig::default()).await;
    assert_eq!(report.cutoffs_moved, 1, "the write happened");
    assert_eq!(report.principals_failed, 1);
    let failed = report
        .outcomes
        .iter()
        .find(|o| o.status == Status::Failed)
        .unwrap();
    assert_eq!(failed.error.as_ref().unwrap().kind, FailureKind::Unverified);
    assert_eq!(failed.cutoff, Some(ago(4)));
    assert_eq!(
        report.statements_removed, 1,
        "payments-api was still cleaned"
    );
}

#[tokio::test(start_paused = true)]
async fn a_principal_with_a_note_and_a_change_is_noted_once() {
    let (access, member) = setup();
    member.add_role("long-lived", "/", &[(MAX_SESSION_AGE_TAG, "36h")]);
    member.set_inline(
        &role("long-lived"),
        ROLE_WIDE_POLICY_NAME,
        &doc(&[ago(20)], false),
    );
    let report = sweep(&access, &SweepConfig::default()).await;
    let notes: Vec<_> = report
        .notes
        .iter()
        .filter(|n| n.contains("long-lived"))
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        stored(&member, "long-lived").is_none(),
        "the expired statement went"
    );
}

#[tokio::test(start_paused = true)]
async fn a_role_spelled_with_capitals_waits_for_the_lock_a_revocation_holds_on_it() {
    // IAM spells the role `Batch-Worker`; a revocation names it as a finding did and
    // holds the lock on the name, whatever its case. The sweep must leave it alone, or
    // its read-modify-write could drop the cutoff the revocation is writing.
    let access = FakeAccess::new(HOME);
    let member = access.account(MEMBER);
    member.add_role("Batch-Worker", "/", &[(MAX_SESSION_AGE_TAG, "4h")]);
    let ledger = cutoff_aws::dynamodb::fake::FakeLedger::default();
    let revoking = cutoff_domain::principal::Target::role(
        account(MEMBER),
        cutoff_domain::principal::PrincipalName::parse("batch-worker").unwrap(),
    );
    assert!(
        ledger
            .acquire(
                &cutoff_aws::dynamodb::principal_key(&revoking),
                "revoker",
                now(),
                // The sweeper stamps and compares leases with its injected clock.
                now() + chrono::Duration::minutes(5),
            )
            .await
            .unwrap()
            .is_some()
    );
    let mut reports = sweep_accounts(
        &access,
        &ledger,
        &[account(MEMBER)],
        &SweepConfig::default(),
        &FixedClock::at(now()),
        "run-1",
        4,
    )
    .await;
    let report = reports.remove(0);
    assert!(member.writes().is_empty(), "{report:#?}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("being written by another writer")),
        "{report:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_throttled_ledger_is_waited_out_and_the_removal_still_runs_under_the_lock() {
    let (access, member) = setup();
    let ledger = cutoff_aws::dynamodb::fake::FakeLedger::default();
    ledger.fail("acquire", &[ErrorKind::Throttled, ErrorKind::Throttled]);
    let report = sweep_accounts(
        &access,
        &ledger,
        &[account(MEMBER)],
        &SweepConfig::default(),
        &FixedClock::at(now()),
        "run-1",
        4,
    )
    .await
    .remove(0);
    assert!(report.error.is_none(), "{report:#?}");
    // A removal runs only under the lock: it ran, so the lock was taken.
    assert_eq!(report.statements_removed, 1, "{report:#?}");
    assert_eq!(report.cutoffs_moved, 1);
    assert_eq!(
        stored(&member, "payments-api").unwrap().role_wide_cutoff(),
        Some(ago(2))
    );
    assert!(ledger.state().locks.is_empty(), "every lock given back");
}
