//! The sweep's daily digest: one routine message per UTC day that says what that
//! day's runs did. A run's own summary goes out only when it changed something or
//! something failed ([`SweepSummary::should_publish`]); the digest is how quiet runs
//! are still seen, once a day, when the deployment asks for it.
//!
//! Pure: built from the day's [`DayRun`]s, which the ledger keeps (one per run,
//! written when the run is planned and completed with its [`RunTotals`] when its last
//! account reports).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{MAX_LISTED, SweepSummary};

/// What a finished run did, as the ledger's day index keeps it: the summary's
/// counts without its lists. Read back by whichever version makes the digest, so
/// every field has a default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunTotals {
    pub finished_at: Option<DateTime<Utc>>,
    pub accounts_reported: u64,
    pub accounts_failed: u64,
    pub principals_scanned: u64,
    pub cutoffs_moved: u64,
    pub statements_removed: u64,
    pub policies_deleted: u64,
    pub principals_failed: u64,
}

impl RunTotals {
    /// The totals of a run's summary.
    pub fn of(summary: &SweepSummary) -> Self {
        Self {
            finished_at: Some(summary.finished_at),
            accounts_reported: summary.accounts_reported,
            accounts_failed: summary.accounts_failed,
            principals_scanned: summary.principals_scanned,
            cutoffs_moved: summary.cutoffs_moved,
            statements_removed: summary.statements_removed,
            policies_deleted: summary.policies_deleted,
            principals_failed: summary.principals_failed,
        }
    }

    /// Cutoffs moved, statements removed and policies deleted (or, dry run, that
    /// would have been).
    pub fn changes(&self) -> u64 {
        self.cutoffs_moved + self.statements_removed + self.policies_deleted
    }

    /// Accounts not swept, principals whose change failed, and accounts of the
    /// `planned` that never reported.
    pub fn failures(&self, planned: u64) -> u64 {
        self.accounts_failed
            + self.principals_failed
            + planned.saturating_sub(self.accounts_reported)
    }

    /// Whether the run was quiet: the same rule as [`SweepSummary::should_publish`],
    /// so the digest's quiet runs are the runs whose summary did not go out.
    pub fn is_quiet(&self, planned: u64) -> bool {
        self.changes() == 0 && self.failures(planned) == 0
    }
}

/// One run of a day, as the ledger's day index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRun {
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub dry_run: bool,
    /// Accounts planned.
    pub accounts: u64,
    /// What the run did, once its last account reported. None while it runs, or for
    /// good when it never finished (a task in the dead-letter queue).
    pub totals: Option<RunTotals>,
}

/// The digest of one UTC day's sweep runs: the `Sweep Digest` event on the outcome
/// bus, notified to the security topic as routine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepDigest {
    /// The UTC day the runs were planned on.
    pub date: NaiveDate,
    /// When the digest was made, and the run that made it (the first planned on a
    /// later day): its request id.
    pub made_at: DateTime<Utc>,
    pub made_by: String,
    /// Runs planned that day; of them, dry runs (their changes are what they would
    /// have changed).
    pub runs: u64,
    pub dry_runs: u64,
    /// Finished runs that changed nothing and where nothing failed: their summaries
    /// were not published.
    pub quiet_runs: u64,
    pub runs_with_changes: u64,
    pub runs_with_failures: u64,
    /// Runs whose last account had not reported when the digest was made: still
    /// running, or never to finish (a task in the dead-letter queue). Their counts are
    /// not in the totals.
    pub unfinished_runs: u64,
    /// Accounts that reported, across the finished runs (an account swept by two runs
    /// counts twice).
    pub accounts_swept: u64,
    pub principals_scanned: u64,
    pub cutoffs_moved: u64,
    pub statements_removed: u64,
    pub policies_deleted: u64,
    /// `cutoffs_moved + statements_removed + policies_deleted`.
    pub changes: u64,
    pub accounts_failed: u64,
    /// Planned accounts of finished runs that never reported.
    pub accounts_unreported: u64,
    pub principals_failed: u64,
    /// `accounts_failed + accounts_unreported + principals_failed`.
    pub failures: u64,
    /// The first [`MAX_LISTED`] runs with failures (their summaries went out as
    /// incidents) and unfinished runs, in the order they started.
    pub failed: Vec<String>,
    pub unfinished: Vec<String>,
}

impl SweepDigest {
    /// Adds up the runs of `date` (any order); a day without runs is a digest of
    /// zeros, which says so.
    pub fn of_day(date: NaiveDate, runs: &[DayRun], made_at: DateTime<Utc>, made_by: &str) -> Self {
        let mut sorted: Vec<&DayRun> = runs.iter().collect();
        sorted.sort_by(|a, b| (a.started_at, &a.run_id).cmp(&(b.started_at, &b.run_id)));
        let mut d = SweepDigest {
            date,
            made_at,
            made_by: made_by.to_owned(),
            runs: 0,
            dry_runs: 0,
            quiet_runs: 0,
            runs_with_changes: 0,
            runs_with_failures: 0,
            unfinished_runs: 0,
            accounts_swept: 0,
            principals_scanned: 0,
            cutoffs_moved: 0,
            statements_removed: 0,
            policies_deleted: 0,
            changes: 0,
            accounts_failed: 0,
            accounts_unreported: 0,
            principals_failed: 0,
            failures: 0,
            failed: Vec::new(),
            unfinished: Vec::new(),
        };
        for run in sorted {
            d.runs += 1;
            d.dry_runs += u64::from(run.dry_run);
            let Some(t) = &run.totals else {
                d.unfinished_runs += 1;
                if d.unfinished.len() < MAX_LISTED {
                    d.unfinished.push(run.run_id.clone());
                }
                continue;
            };
            let failures = t.failures(run.accounts);
            d.quiet_runs += u64::from(t.is_quiet(run.accounts));
            d.runs_with_changes += u64::from(t.changes() > 0);
            d.runs_with_failures += u64::from(failures > 0);
            if failures > 0 && d.failed.len() < MAX_LISTED {
                d.failed.push(run.run_id.clone());
            }
            d.accounts_swept += t.accounts_reported;
            d.principals_scanned += t.principals_scanned;
            d.cutoffs_moved += t.cutoffs_moved;
            d.statements_removed += t.statements_removed;
            d.policies_deleted += t.policies_deleted;
            d.changes += t.changes();
            d.accounts_failed += t.accounts_failed;
            d.accounts_unreported += run.accounts.saturating_sub(t.accounts_reported);
            d.principals_failed += t.principals_failed;
            d.failures += failures;
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    fn run(id: &str, hour: u32, accounts: u64, totals: Option<RunTotals>) -> DayRun {
        DayRun {
            run_id: id.to_owned(),
            started_at: at(&format!("2026-11-23T{hour:02}:00:00Z")),
            dry_run: false,
            accounts,
            totals,
        }
    }

    fn quiet(reported: u64) -> RunTotals {
        RunTotals {
            finished_at: Some(at("2026-11-23T12:00:00Z")),
            accounts_reported: reported,
            principals_scanned: 10 * reported,
            ..RunTotals::default()
        }
    }

    #[test]
    fn a_day_adds_up_its_runs_quiet_changed_failed_and_unfinished() {
        let moved = RunTotals {
            cutoffs_moved: 2,
            statements_removed: 1,
            ..quiet(2)
        };
        let failed = RunTotals {
            accounts_failed: 1,
            principals_failed: 3,
            ..quiet(2)
        };
        // Planned 3 accounts, 2 reported: one missing.
        let missing = quiet(2);
        let runs = [
            run("r-09", 9, 2, Some(failed)),
            run("r-01", 1, 2, Some(quiet(2))),
            run("r-02", 2, 2, Some(moved)),
            run("r-03", 3, 3, Some(missing)),
            run("r-23", 23, 2, None),
        ];
        let d = SweepDigest::of_day(day(), &runs, at("2026-11-24T00:05:00Z"), "run-next");
        assert_eq!(d.runs, 5);
        assert_eq!(d.quiet_runs, 1);
        assert_eq!(d.runs_with_changes, 1);
        assert_eq!(d.runs_with_failures, 2);
        assert_eq!(d.unfinished_runs, 1);
        assert_eq!(d.accounts_swept, 8);
        assert_eq!(d.principals_scanned, 80);
        assert_eq!(
            (d.cutoffs_moved, d.statements_removed, d.changes),
            (2, 1, 3)
        );
        assert_eq!(
            (
                d.accounts_failed,
                d.accounts_unreported,
                d.principals_failed
            ),
            (1, 1, 3)
        );
        assert_eq!(d.failures, 5);
        // Listed in the order the runs started, whatever order the ledger gave.
        assert_eq!(d.failed, ["r-03", "r-09"]);
        assert_eq!(d.unfinished, ["r-23"]);
        assert_eq!(d.made_by, "run-next");
    }

    #[test]
    fn a_day_without_runs_is_a_digest_of_zeros() {
        let d = SweepDigest::of_day(day(), &[], at("2026-11-25T00:05:00Z"), "run-x");
        assert_eq!((d.runs, d.quiet_runs, d.failures, d.changes), (0, 0, 0, 0));
        assert!(d.failed.is_empty() && d.unfinished.is_empty());
        assert_eq!(
            serde_json::to_value(&d).unwrap()["date"],
            serde_json::json!("2026-11-23")
        );
    }

    #[test]
    fn a_run_is_quiet_in_the_digest_exactly_when_its_summary_was_not_published() {
        let base = || {
            SweepSummary::from_records(
                "r",
                at("2026-11-23T12:00:00Z"),
                at("2026-11-23T12:01:00Z"),
                2,
                false,
                &[],
            )
        };
        let edits: [fn(&mut SweepSummary); 8] = [
            |s| s.accounts_reported = 2,
            |_| {},
            |s| s.accounts_reported = 1,
            |s| {
                s.accounts_reported = 2;
                s.cutoffs_moved = 1
            },
            |s| {
                s.accounts_reported = 2;
                s.statements_removed = 1
            },
            |s| {
                s.accounts_reported = 2;
                s.policies_deleted = 1
            },
            |s| {
                s.accounts_reported = 2;
                s.accounts_failed = 1
            },
            |s| {
                s.accounts_reported = 2;
                s.principals_failed = 1
            },
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut s = base();
            edit(&mut s);
            assert_eq!(
                RunTotals::of(&s).is_quiet(s.accounts),
                !s.should_publish(),
                "case {i}: {s:?}"
            );
        }
    }

    #[test]
    fn totals_from_an_older_or_newer_version_still_read() {
        let old: RunTotals = serde_json::from_str(r#"{"cutoffs_moved": 1}"#).unwrap();
        assert_eq!(old.cutoffs_moved, 1);
        let newer: RunTotals =
            serde_json::from_str(r#"{"cutoffs_moved": 1, "something_new": 2}"#).unwrap();
        assert_eq!(newer, old);
    }
}
