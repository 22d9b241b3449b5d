//! The ledger: one DynamoDB table that holds the audit trail (every request and its
//! outcome), the idempotency markers (a finding applied once within a window), and a
//! lock per principal that serializes read-modify-write on its deny policy
//! ([`Ledger`]); and the runs of the sweep ([`SweepLedger`]). [`SdkLedger`] and
//! [`SdkSweepLedger`] are their SDK implementations; the in-memory fakes are in `fake`
//! (feature `test-support`).
//!
//! # Why a lock
//!
//! IAM has no conditional put: two writers that read a principal's policy before
//! either writes can each write a document built from the old read, and the later
//! write drops the earlier one's cutoff (or a statement someone added). SQS FIFO keeps
//! one principal's queued requests in order, but an operator's direct invoke or
//! `cutoff revoke`, and the sweeper, write outside the queue. Every writer takes the
//! principal's lease (a conditional update of `lock#…`) before reading and gives it
//! back after verifying; a lease expires on its own (`lease_until`), so a crashed
//! holder blocks others for at most the lease.
//!
//! # Why a run ledger
//!
//! One invocation cannot sweep 1,000 accounts in Lambda's 15 minutes, so the planner
//! sends one task per account and workers sweep them in parallel. Someone has to say
//! when the run is over, with the totals. Each worker writes its account's record and
//! counts it done in one DynamoDB transaction, conditional on the record not being
//! there yet, so a redelivered task is counted once. The worker that sees the count
//! reach the total claims the summary with a conditional update naming its message;
//! one message wins the claim (its redelivery too, should the publish fail), reads
//! the records and publishes the summary.
//!
//! Items (string keys `pk`, `sk`; TTL attribute `expires_at`, epoch seconds):
//! - `pk = principal#<account>#<kind>#<name>`, `sk = <RFC 3339 time>#<request id>`:
//!   the audit entry (the outcome as JSON), newest last.
//! - `pk = lock#<account>#<kind>#<name>`, `sk = lock`: the principal's item. Its lease
//!   (`holder`, `lease_until`, epoch seconds) while a writer holds it; the idempotency
//!   marks (`marks`: a map from the digest of a finding's idempotency key to `{trail,
//!   entry: the audit entry's principal and sort key, until}`) and the key records (`keys`: a map from
//!   [`KeyRecord::sort_key`] to `{record: the record as JSON, until}`: a key revoked on
//!   the principal, with the cutoff that covers it and the finding that named it, for
//!   the skip rule, [`cutoff_domain::coverage`]); `expires_at` (the item's TTL) no
//!   earlier than the last of them, or than the lease; `keys_since` (since when this
//!   version keeps all the principal's records here) and `keys_incomplete_until` (some
//!   record may be missing until then): see [`PrincipalState`]. A release of the
//!   principal's cutoff drops its key records. A lease of the version before (its end
//!   in `expires_at`, no `lease_until`) is honoured; its `dedupe#` marks are not read
//!   (a redelivery within the hour after the upgrade is weighed again), its `keys#`
//!   records are, once per principal, for as long as they can count.
//! - `pk = ledger#format`, `sk = format`: when this version first used the table
//!   (`first_run`) and until when the version before may have left key records
//!   (`legacy_until`: two days later; 0 when a deployer knows the table had no version
//!   before).
//! - `pk = breaker#<account>#<hour>`, `sk = breaker`: the automatic revocations of an
//!   account in one hour (`n`), the circuit breaker's count.
//! - `pk = sweep#<run id>`: a sweep run, `sk = run` (total, done, started_at, dry_run,
//!   claimed_by), and its accounts, `sk = account#<id>` (the [`AccountRecord`] as
//!   JSON).
//! - `pk = sweepday#<YYYY-MM-DD>`, `sk = run#<run id>`: a run planned on that UTC day
//!   (started_at, total, dry_run), written with the run, and once it finished its
//!   totals (`totals`, a [`RunTotals`] as JSON): what the daily digest adds up.
//! - `pk = digest#<YYYY-MM-DD>`, `sk = digest`: the claim on that day's digest
//!   (claimed_by, claimed_at, sent), so that one run sends it.
//!
//! # Why a day index and a digest claim
//!
//! A quiet run's summary is not published ([`SweepSummary::should_publish`]); the
//! optional daily digest says what a day's runs did instead. Runs are keyed by id,
//! so each run is also listed under its day, and the digest reads one partition. The
//! first run planned on a later day claims `digest#<day>` with a conditional update,
//! like the summary's claim: concurrent runs cannot both send it, a claimant that
//! failed before sending can try again, and a claim never marked sent is taken over
//! after [`DIGEST_CLAIM_LEASE`] by a later run.
//!
//! [`SweepSummary::should_publish`]: cutoff_domain::summary::SweepSummary::should_publish

pub mod approvals;
mod principal_state;
mod sdk;

#[cfg(any(test, feature = "test-support"))]
pub mod fake;

pub use principal_state::{MAX_KEY_RECORDS, MAX_MARKS, Mark, PrincipalState};
pub use sdk::{ConfiguredLedger, FORMAT_PK, SdkLedger, SdkSweepLedger};

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::AwsError;
use cutoff_domain::coverage::KeyRecord;
use cutoff_domain::outcome::Outcome;
use cutoff_domain::principal::{Account, Target, TargetKind};
use cutoff_domain::summary::{AccountRecord, DayRun, RunTotals};

/// How long a key record is kept: past the longest a session can live (36 hours), a
/// record can no longer spare a write that matters.
pub const KEY_RECORD_DAYS: i64 = 2;

/// How long audit entries are kept (DynamoDB TTL); point-in-time recovery and the
/// function logs keep them longer.
pub const AUDIT_RETENTION_DAYS: i64 = 400;

/// One request and its outcome, as the audit trail keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the request ended.
    pub at: DateTime<Utc>,
    /// The Lambda request id or SQS message id (CLI: `cli-…`).
    pub request_id: String,
    /// `revoke`, `release` or `sweep`.
    pub action: String,
    /// Who or what asked, the finding, the target, the cutoff before and after, the
    /// result: all in the outcome.
    pub outcome: Outcome,
}

impl AuditEntry {
    /// Where the entry sits in its principal's trail: `<time, ms>#<request id>`, so
    /// that the trail reads in time order.
    pub fn sort_key(&self) -> String {
        format!(
            "{}#{}",
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            self.request_id
        )
    }

    /// The principal whose trail holds the entry ([`principal_key`] of its target).
    pub fn principal(&self) -> String {
        self.outcome
            .target
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), principal_key)
    }
}

/// The principal a target names, as a key: `<account>#<kind>#<name>`. IAM names are
/// unique regardless of case (`Payments-API` is `payments-api`), so the name is
/// lowercased: a request spelling it differently takes the same lock and finds the same
/// key records and audit trail as the sweeper, which spells it as IAM does.
///
/// A role whose name only looks service-linked or like Identity Center's is a role:
/// its kind is `role` here, as the sweeper and a request naming it as a role name it.
pub fn principal_key(target: &Target) -> String {
    let kind = match target.kind {
        TargetKind::ServiceLinkedRole | TargetKind::IdentityCenterRole => TargetKind::Role,
        other => other,
    };
    principal_key_of(&target.account, kind.as_str(), target.name.as_str())
}

/// [`principal_key`] from its parts (`kind` as [`TargetKind::as_str`] spells it).
pub fn principal_key_of(account: &Account, kind: &str, name: &str) -> String {
    format!("{account}#{kind}#{}", name.to_ascii_lowercase())
}

/// `lock#` and `principal#` keys, and what the ledger can do.
///
/// A revocation costs two calls: [`Ledger::acquire`] (the lease, and in the same answer
/// the principal's marks and key records) and [`Ledger::close`] (its audit entries and
/// the principal's item rewritten, the lease given back, in one transaction). An
/// automatic revocation that writes takes one more: its slot of the circuit breaker
/// ([`Ledger::take_slot`]), which must be granted before the write and counts the
/// account's revocations, not the principal's.
pub trait Ledger: Send + Sync {
    /// Whether there is a ledger at all ([`NoLedger`] says no).
    fn enabled(&self) -> bool {
        true
    }

    /// Takes the lease on `principal` for `holder` until `until` and answers with what
    /// the principal's item holds (expired entries dropped); `None` when someone else
    /// holds an unexpired lease. Taking a lease the holder already has renews it.
    fn acquire(
        &self,
        principal: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<PrincipalState>, AwsError>> + Send;

    /// Gives the lease back if `holder` still has it, leaving the item's state as it is
    /// (a writer that keeps no marks: the sweeper, an Identity Center user's lock).
    fn release(
        &self,
        principal: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Ends `holder`'s lease on `principal` in one transaction: writes `entries` to the
    /// audit trail and replaces the principal's marks and key records with `state`.
    /// `Ok(false)` when the lease was no longer `holder`'s (it expired and another writer
    /// took it): then nothing was written, and the caller records the entries alone.
    fn close(
        &self,
        principal: &str,
        holder: &str,
        state: &PrincipalState,
        entries: &[AuditEntry],
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;

    /// What the principal's item holds at `now`, without taking the lease (a dry run
    /// weighs the key records, it records nothing).
    fn state(
        &self,
        principal: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<PrincipalState, AwsError>> + Send;

    /// Whether the version before (which kept key records in `keys#` items) may have
    /// left records that still count: from this version's first use of the table, for
    /// as long as a record lives ([`KEY_RECORD_DAYS`]); read once per process.
    fn legacy_window(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;

    /// The key records the version before kept for `principal` (`keys#` items), with
    /// when each expires; read once for a principal this version has not kept records
    /// of yet, while [`Ledger::legacy_window`] is open.
    fn legacy_keys(
        &self,
        principal: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(KeyRecord, DateTime<Utc>)>, AwsError>> + Send;

    /// Says on the principal's item that some key record may be missing until `until`
    /// (a closing that could not write its records), so the skip rule does not trust a
    /// first activity until then; keeps a later time already there.
    fn mark_incomplete(
        &self,
        principal: &str,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// The audit entry a mark points to: the earlier outcome of a redelivered finding.
    fn entry(
        &self,
        principal: &str,
        sort_key: &str,
    ) -> impl Future<Output = Result<Option<AuditEntry>, AwsError>> + Send;

    /// Writes the audit entry alone (a request refused before the lock, the follow-up's
    /// summary, a closing whose lease was lost).
    fn record(&self, entry: &AuditEntry) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// The newest `limit` entries for a principal, newest first.
    fn history(
        &self,
        account: &Account,
        kind: &str,
        name: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, AwsError>> + Send;

    /// Counts one more in `bucket` unless it already holds `cap`; false when full. The
    /// count expires at `until`.
    fn take_slot(
        &self,
        bucket: &str,
        cap: u32,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;
}

/// How long run items are kept (DynamoDB TTL).
pub const RUN_RETENTION_DAYS: i64 = 30;

/// A run as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepRun {
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub dry_run: bool,
    /// Accounts planned.
    pub total: u64,
    /// Whether its plan sent every task ([`SweepLedger::tasks_sent`]). A plan that
    /// failed or stopped after creating the run left it false; the plan retried (the
    /// same run id) sends them then. A run of an earlier version reads as sent.
    pub tasks_sent: bool,
}

/// What recording an account did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunProgress {
    /// False when the account was already recorded (a redelivered task).
    pub recorded: bool,
    pub done: u64,
    pub total: u64,
}

impl RunProgress {
    pub fn complete(&self) -> bool {
        self.done >= self.total
    }
}

impl SweepRun {
    /// The UTC day the run was planned on: the day whose digest counts it.
    pub fn day(&self) -> NaiveDate {
        self.started_at.date_naive()
    }
}

/// How long a claim on a day's digest that was never marked sent holds: past it, a
/// later run takes the digest over. The sweeper's timeout (15 minutes), so a claimant
/// that could still be sending is never overtaken.
pub const DIGEST_CLAIM_LEASE: chrono::Duration = chrono::Duration::minutes(15);

/// `dynamodb:PutItem`, `UpdateItem`, `GetItem`, `Query` and a `TransactWriteItems` of
/// one Put and one Update (authorized as those two) on the sweep table.
pub trait SweepLedger: Send + Sync {
    /// Creates the run; false when it exists already (the schedule fired twice).
    fn start_run(&self, run: &SweepRun) -> impl Future<Output = Result<bool, AwsError>> + Send;

    /// Records that the plan of `run_id` sent every task.
    fn tasks_sent(&self, run_id: &str) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Stores the account's record and counts it done, once per account.
    fn record_account(
        &self,
        run_id: &str,
        record: &AccountRecord,
    ) -> impl Future<Output = Result<RunProgress, AwsError>> + Send;

    /// Claims the right to publish the summary of a complete run for `claimant` (the
    /// task's message id); true for the first claimant and for that claimant again
    /// (a redelivery after a failed publish), false for anyone else.
    fn claim_summary(
        &self,
        run_id: &str,
        claimant: &str,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;

    /// The run and every account record in it.
    fn run_records(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<(SweepRun, Vec<AccountRecord>), AwsError>> + Send;

    /// Records what a finished run did on its day's entry (what the digest adds up);
    /// writing it again is harmless. A run planned by a version without the day index
    /// gets its entry here.
    fn finish_run(
        &self,
        run: &SweepRun,
        totals: &RunTotals,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Claims the digest of `day` for `claimant` (a run's id) at `now`: true when no
    /// one claimed it, when `claimant` did and has not sent it (a retry), or when a
    /// claim older than [`DIGEST_CLAIM_LEASE`] was never marked sent; false otherwise,
    /// and always once it was sent.
    fn claim_digest(
        &self,
        day: NaiveDate,
        claimant: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;

    /// Marks the digest of `day` sent (if `claimant` still holds the claim).
    fn digest_sent(
        &self,
        day: NaiveDate,
        claimant: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Every run planned on `day`, finished or not.
    fn day_runs(
        &self,
        day: NaiveDate,
    ) -> impl Future<Output = Result<Vec<DayRun>, AwsError>> + Send;
}

/// No ledger: no lock, no dedupe, no audit beyond the logs (the CLI without a table,
/// tests of the workflow alone).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLedger;

impl Ledger for NoLedger {
    fn enabled(&self) -> bool {
        false
    }

    async fn acquire(
        &self,
        _: &str,
        _: &str,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<Option<PrincipalState>, AwsError> {
        Ok(Some(PrincipalState::default()))
    }

    async fn release(&self, _: &str, _: &str) -> Result<(), AwsError> {
        Ok(())
    }

    async fn close(
        &self,
        _: &str,
        _: &str,
        _: &PrincipalState,
        _: &[AuditEntry],
    ) -> Result<bool, AwsError> {
        Ok(true)
    }

    async fn state(&self, _: &str, _: DateTime<Utc>) -> Result<PrincipalState, AwsError> {
        Ok(PrincipalState::default())
    }

    async fn legacy_window(&self, _: DateTime<Utc>) -> Result<bool, AwsError> {
        Ok(false)
    }

    async fn legacy_keys(
        &self,
        _: &str,
        _: DateTime<Utc>,
    ) -> Result<Vec<(KeyRecord, DateTime<Utc>)>, AwsError> {
        Ok(Vec::new())
    }

    async fn mark_incomplete(&self, _: &str, _: DateTime<Utc>) -> Result<(), AwsError> {
        Ok(())
    }

    async fn entry(&self, _: &str, _: &str) -> Result<Option<AuditEntry>, AwsError> {
        Ok(None)
    }

    async fn record(&self, _: &AuditEntry) -> Result<(), AwsError> {
        Ok(())
    }

    async fn history(
        &self,
        _: &Account,
        _: &str,
        _: &str,
        _: usize,
    ) -> Result<Vec<AuditEntry>, AwsError> {
        Ok(Vec::new())
    }

    async fn take_slot(&self, _: &str, _: u32, _: DateTime<Utc>) -> Result<bool, AwsError> {
        Ok(true)
    }
}
