//! What a sweep run reports: a compact record per account (what the run ledger
//! stores, small enough for 1,000 of them), and the one summary per run that the
//! security team is told about. Pure: built from records, no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::outcome::{FailureKind, Outcome, OutcomeError, Status};
use crate::policy::Cutoff;
use crate::principal::{Account, Target};

pub mod digest;

pub use digest::{DayRun, RunTotals, SweepDigest};

/// Principals listed by name per account record and in the summary; the counts are
/// always complete.
pub const MAX_LISTED: usize = 50;
/// Characters kept of an error message in a record.
const MAX_MESSAGE: usize = 300;

/// One principal named in a record or summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrincipalEntry {
    pub account: Account,
    /// `role` or `user`: text, so that a summary from a newer version still reads.
    pub kind: String,
    pub name: String,
    /// The cutoffs removed (released) or the cutoff moved to (moved).
    #[serde(default)]
    pub cutoffs: Vec<Cutoff>,
    /// Why it failed, for failed principals.
    #[serde(default)]
    pub error: Option<String>,
}

/// What one account contributed to a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub account: Account,
    pub principals_scanned: u64,
    pub cutoffs_moved: u64,
    pub statements_removed: u64,
    pub policies_deleted: u64,
    pub principals_failed: u64,
    pub api_calls: u64,
    pub duration_ms: u64,
    pub notes: u64,
    /// Why the account could not be swept at all.
    pub error: Option<OutcomeError>,
    /// Principals whose expired revocations were removed (at most [`MAX_LISTED`]).
    pub released: Vec<PrincipalEntry>,
    /// Principals whose cutoff moved (at most [`MAX_LISTED`]).
    pub moved: Vec<PrincipalEntry>,
    /// Principals where a change failed (at most [`MAX_LISTED`]).
    pub failed: Vec<PrincipalEntry>,
}

fn cut(s: &str) -> String {
    crate::principal::clean_text(s, MAX_MESSAGE)
}

impl AccountRecord {
    pub fn from_report(report: &AccountReport) -> Self {
        let entry = |o: &crate::outcome::Outcome, cutoffs: Vec<Cutoff>| {
            let target = o.target.as_ref()?;
            Some(PrincipalEntry {
                account: target.account.clone(),
                kind: target.kind.as_str().to_owned(),
                name: target.name.to_string(),
                cutoffs,
                error: o.error.as_ref().map(|e| cut(&e.message)),
            })
        };
        let mut moved = Vec::new();
        let mut failed = Vec::new();
        for o in &report.outcomes {
            match o.status {
                Status::Failed => failed.extend(entry(o, Vec::new())),
                _ if o.cutoff.is_some() => moved.extend(entry(o, o.cutoff.into_iter().collect())),
                _ => {}
            }
        }
        let mut released: Vec<PrincipalEntry> = report
            .released
            .iter()
            .take(MAX_LISTED)
            .map(|(target, cutoffs)| PrincipalEntry {
                account: target.account.clone(),
                kind: target.kind.as_str().to_owned(),
                name: target.name.to_string(),
                cutoffs: cutoffs.clone(),
                error: None,
            })
            .collect();
        released.truncate(MAX_LISTED);
        moved.truncate(MAX_LISTED);
        failed.truncate(MAX_LISTED);
        Self {
            account: report.account.clone(),
            principals_scanned: report.principals_scanned,
            cutoffs_moved: report.cutoffs_moved,
            statements_removed: report.statements_removed,
            policies_deleted: report.policies_deleted,
            principals_failed: report.principals_failed,
            api_calls: report.api_calls,
            duration_ms: report.duration_ms,
            notes: report.notes.len() as u64,
            error: report.error.as_ref().map(|e| OutcomeError {
                kind: e.kind,
                message: cut(&e.message),
            }),
            released,
            moved,
            failed,
        }
    }
}

/// An account that could not be swept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountFailure {
    pub account: Account,
    pub kind: FailureKind,
    pub message: String,
}

/// The one report of a sweep run: the `Sweep Summary` event on the outcome bus,
/// notified to the security topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSummary {
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// From the start of the run to the last account's record.
    pub duration_ms: u64,
    pub dry_run: bool,
    /// Accounts the run was planned for, and those that reported.
    pub accounts: u64,
    pub accounts_reported: u64,
    pub accounts_failed: u64,
    pub principals_scanned: u64,
    pub cutoffs_moved: u64,
    pub statements_removed: u64,
    pub policies_deleted: u64,
    pub principals_failed: u64,
    pub api_calls: u64,
    pub failures: Vec<AccountFailure>,
    /// The first [`MAX_LISTED`] principals released, moved and failed, across accounts.
    pub released: Vec<PrincipalEntry>,
    pub moved: Vec<PrincipalEntry>,
    pub failed: Vec<PrincipalEntry>,
}

impl SweepSummary {
    /// Adds up the records of a run (in account order, so the listing is stable).
    pub fn from_records(
        run_id: &str,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        planned_accounts: u64,
        dry_run: bool,
        records: &[AccountRecord],
    ) -> Self {
        let mut sorted: Vec<&AccountRecord> = records.iter().collect();
        sorted.sort_by(|a, b| a.account.cmp(&b.account));
        let sum = |f: fn(&AccountRecord) -> u64| sorted.iter().map(|r| f(r)).sum::<u64>();
        let listed = |f: fn(&AccountRecord) -> &Vec<PrincipalEntry>| {
            sorted
                .iter()
                .flat_map(|r| f(r).iter().cloned())
                .take(MAX_LISTED)
                .collect::<Vec<_>>()
        };
        let failures: Vec<AccountFailure> = sorted
            .iter()
            .filter_map(|r| {
                r.error.as_ref().map(|e| AccountFailure {
                    account: r.account.clone(),
                    kind: e.kind,
                    message: e.message.clone(),
                })
            })
            .collect();
        let duration = (finished_at - started_at).num_milliseconds().max(0);
        Self {
            run_id: run_id.to_owned(),
            started_at,
            finished_at,
            duration_ms: u64::try_from(duration).unwrap_or(0),
            dry_run,
            accounts: planned_accounts,
            accounts_reported: sorted.len() as u64,
            accounts_failed: failures.len() as u64,
            principals_scanned: sum(|r| r.principals_scanned),
            cutoffs_moved: sum(|r| r.cutoffs_moved),
            statements_removed: sum(|r| r.statements_removed),
            policies_deleted: sum(|r| r.policies_deleted),
            principals_failed: sum(|r| r.principals_failed),
            api_calls: sum(|r| r.api_calls),
            failures,
            released: listed(|r| &r.released),
            moved: listed(|r| &r.moved),
            failed: listed(|r| &r.failed),
        }
    }

    /// Whether someone needs to look: an account or a principal failed, or an
    /// account never reported.
    pub fn has_failures(&self) -> bool {
        self.accounts_failed > 0
            || self.principals_failed > 0
            || self.accounts_reported < self.accounts
    }

    /// Whether the run changed something: a cutoff moved, an expired statement
    /// removed, a policy deleted. A dry run's counts are what it would change, and
    /// count as changes: the dry run is there to show them.
    pub fn has_changes(&self) -> bool {
        self.cutoffs_moved > 0 || self.statements_removed > 0 || self.policies_deleted > 0
    }

    /// Whether the run's summary is worth a message: it changed something or
    /// something failed. A quiet run (neither) is recorded in the ledger, logged and
    /// counted in the metrics, and goes out only in the daily digest, if enabled.
    pub fn should_publish(&self) -> bool {
        self.has_changes() || self.has_failures()
    }
}

/// What one sweep did in one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountReport {
    pub account: Account,
    pub dry_run: bool,
    /// Roles and users read.
    pub principals_scanned: u64,
    /// Rolling cutoffs written (or, dry run, that would be).
    pub cutoffs_moved: u64,
    /// Expired revocation statements removed.
    pub statements_removed: u64,
    /// Inline and managed policies deleted because only expired statements were left.
    pub policies_deleted: u64,
    /// Principals where a change failed.
    pub principals_failed: u64,
    pub api_calls: u64,
    pub duration_ms: u64,
    /// One outcome per principal that changed (`applied` for a moved cutoff,
    /// `released` for removed statements, `dry_run`, or `failed`).
    pub outcomes: Vec<Outcome>,
    /// The principals whose expired revocations were removed (or would be, dry run),
    /// with the cutoffs removed: what the run's summary lists.
    pub released: Vec<(Target, Vec<Cutoff>)>,
    /// What the sweeper noticed and left alone (protected principals, invalid tags,
    /// unreadable documents).
    pub notes: Vec<String>,
    /// Why the account could not be swept (member role not assumable, listing
    /// failed); nothing was written after it.
    pub error: Option<OutcomeError>,
}

impl AccountReport {
    pub fn new(account: Account, dry_run: bool) -> Self {
        Self {
            account,
            dry_run,
            principals_scanned: 0,
            cutoffs_moved: 0,
            statements_removed: 0,
            policies_deleted: 0,
            principals_failed: 0,
            api_calls: 0,
            duration_ms: 0,
            outcomes: Vec::new(),
            released: Vec::new(),
            notes: Vec::new(),
            error: None,
        }
    }

    /// The report of an account that could not be swept at all.
    pub fn failed(account: Account, dry_run: bool, error: OutcomeError) -> Self {
        let mut report = Self::new(account, dry_run);
        report.error = Some(error);
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Outcome, Owner, Trigger};
    use crate::principal::{PrincipalName, Target, TargetKind};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn account(id: &str) -> Account {
        Account::parse(id).unwrap()
    }

    fn outcome(acct: &str, name: &str, status: Status, detail: &str) -> Outcome {
        Outcome {
            status,
            target: Some(Target::new(
                TargetKind::Role,
                account(acct),
                PrincipalName::parse(name).unwrap(),
            )),
            cutoff: None,
            previous_cutoff: None,
            policy: None,
            scope: crate::event::Scope::Role,
            owner: Owner::default(),
            trigger: Trigger::default(),
            api_calls: 0,
            error: None,
            propagation: None,
            detail: detail.to_owned(),
            actions: Vec::new(),
            dry_run: false,
            still_works: Vec::new(),
            other_access: Vec::new(),
            chain: None,
            identity_center: None,
            request_id: None,
            activity_region: None,
            approval: None,
        }
    }

    fn report(acct: &str) -> AccountReport {
        let mut r = AccountReport::new(account(acct), false);
        r.principals_scanned = 10;
        r.api_calls = 4;
        r
    }

    #[test]
    fn records_sort_moved_released_and_failed_principals() {
        let mut r = report("111122223333");
        let mut moved = outcome(
            "111122223333",
            "batch",
            Status::Applied,
            "moved the rolling cutoff",
        );
        moved.cutoff = Some(Cutoff::parse("2026-11-23T08:00:00Z").unwrap());
        let released = outcome(
            "111122223333",
            "payments",
            Status::Released,
            "removed 1 expired revocation statement",
        );
        r.released.push((
            released.target.clone().unwrap(),
            vec![Cutoff::parse("2026-11-22T08:00:00Z").unwrap()],
        ));
        let failed = outcome("111122223333", "etl", Status::Failed, "failed")
            .failed(FailureKind::AccessDenied, "x".repeat(1000));
        r.outcomes = vec![moved, released, failed];
        let record = AccountRecord::from_report(&r);
        assert_eq!(record.moved.len(), 1);
        assert_eq!(record.moved[0].name, "batch");
        assert_eq!(record.released.len(), 1);
        assert_eq!(record.released[0].name, "payments");
        assert_eq!(
            record.released[0].cutoffs,
            vec![Cutoff::parse("2026-11-22T08:00:00Z").unwrap()]
        );
        assert_eq!(record.failed.len(), 1);
        assert!(record.failed[0].error.as_ref().unwrap().chars().count() <= MAX_MESSAGE);
    }

    #[test]
    fn a_record_lists_at_most_max_listed_principals_but_counts_all() {
        let mut r = report("111122223333");
        r.statements_removed = 300;
        r.released = (0..300)
            .map(|i| {
                let o = outcome(
                    "111122223333",
                    &format!("role-{i}"),
                    Status::Released,
                    "removed 1 expired revocation statement",
                );
                (
                    o.target.unwrap(),
                    vec![Cutoff::parse("2026-11-22T08:00:00Z").unwrap()],
                )
            })
            .collect();
        let record = AccountRecord::from_report(&r);
        assert_eq!(record.released.len(), MAX_LISTED);
        assert_eq!(record.statements_removed, 300);
        // 1,000 such records must fit one DynamoDB item each (400 KB).
        assert!(serde_json::to_string(&record).unwrap().len() < 20_000);
    }

    #[test]
    fn the_summary_adds_up_records_and_names_failed_accounts() {
        let mut a = AccountRecord::from_report(&report("222233334444"));
        a.cutoffs_moved = 2;
        let mut b = AccountRecord::from_report(&report("111122223333"));
        b.statements_removed = 3;
        let mut failed = report("333344445555");
        failed.error = Some(OutcomeError {
            kind: FailureKind::AccessDenied,
            message: "cannot assume the member role".into(),
        });
        let c = AccountRecord::from_report(&failed);
        let s = SweepSummary::from_records(
            "run-1",
            at("2026-11-23T12:00:00Z"),
            at("2026-11-23T12:01:30Z"),
            4,
            false,
            &[a, b, c],
        );
        assert_eq!(s.accounts, 4);
        assert_eq!(s.accounts_reported, 3);
        assert_eq!(s.accounts_failed, 1);
        assert_eq!(s.principals_scanned, 30);
        assert_eq!(s.api_calls, 12);
        assert_eq!(s.cutoffs_moved, 2);
        assert_eq!(s.statements_removed, 3);
        assert_eq!(s.duration_ms, 90_000);
        assert_eq!(s.failures[0].account, account("333344445555"));
        assert!(s.has_failures());
    }

    /// A summary of `planned` accounts from these records (as the last worker makes it).
    fn run_of(planned: u64, dry_run: bool, records: &[AccountRecord]) -> SweepSummary {
        SweepSummary::from_records(
            "run-p",
            at("2026-11-23T12:00:00Z"),
            at("2026-11-23T12:00:30Z"),
            planned,
            dry_run,
            records,
        )
    }

    #[test]
    fn a_summary_is_published_only_when_the_run_changed_or_failed_something() {
        let quiet = AccountRecord::from_report(&report("111122223333"));
        // Quiet: every account reported, nothing changed, nothing failed.
        let s = run_of(1, false, std::slice::from_ref(&quiet));
        assert!(!s.has_changes() && !s.has_failures() && !s.should_publish());
        // No accounts at all (an empty Organization, `accounts: []`): nothing to say.
        let s = run_of(0, false, &[]);
        assert!(!s.should_publish(), "{s:?}");

        // Each kind of change is enough on its own.
        for change in [
            |r: &mut AccountRecord| r.cutoffs_moved = 1,
            |r: &mut AccountRecord| r.statements_removed = 1,
            |r: &mut AccountRecord| r.policies_deleted = 1,
        ] {
            let mut changed = quiet.clone();
            change(&mut changed);
            let s = run_of(1, false, &[changed.clone()]);
            assert!(s.has_changes() && !s.has_failures() && s.should_publish());
            // A dry run's would-be changes count: showing them is what it is for.
            let s = run_of(1, true, &[changed]);
            assert!(s.dry_run && s.should_publish());
        }
        // A dry run that would change nothing is as quiet as a real one.
        assert!(!run_of(1, true, std::slice::from_ref(&quiet)).should_publish());

        // Failures alone: a principal, an account, an account that never reported.
        let mut principal = quiet.clone();
        principal.principals_failed = 1;
        let mut account = quiet.clone();
        account.error = Some(OutcomeError {
            kind: FailureKind::AccessDenied,
            message: "cannot assume the member role".into(),
        });
        for s in [
            run_of(1, false, &[principal]),
            run_of(1, false, &[account]),
            run_of(2, false, std::slice::from_ref(&quiet)),
        ] {
            assert!(
                !s.has_changes() && s.has_failures() && s.should_publish(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn a_clean_complete_run_has_no_failures() {
        let s = SweepSummary::from_records(
            "run-2",
            at("2026-11-23T12:00:00Z"),
            at("2026-11-23T12:00:01Z"),
            1,
            true,
            &[AccountRecord::from_report(&report("111122223333"))],
        );
        assert!(!s.has_failures());
        assert!(s.dry_run);
    }
}
