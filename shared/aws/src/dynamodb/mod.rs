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
//! principal's lease (a conditional put on `lock#…`) before reading and releases it
//! after verifying; a lease expires on its own (`expires_at`), so a crashed holder
//! blocks others for at most the lease.
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
//! - `pk = dedupe#<key>`, `sk = dedupe`: a finding applied to a principal, until
//!   `expires_at`.
//! - `pk = lock#<account>#<kind>#<name>`, `sk = lock`: the lease holder until
//!   `expires_at`.
//! - `pk = keys#<account>#<kind>#<name>`, `sk = <access key id>`: a key revoked on the
//!   principal, with the cutoff that covers it and the finding that named it (the skip
//!   rule, [`cutoff_domain::coverage`]), until `expires_at`; a release drops them.
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
mod sdk;

#[cfg(any(test, feature = "test-support"))]
pub mod fake;

pub use sdk::{ConfiguredLedger, SdkLedger, SdkSweepLedger};

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

/// `lock#`, `dedupe#`, `principal#` keys, and what the ledger can do.
pub trait Ledger: Send + Sync {
    /// Whether there is a ledger at all ([`NoLedger`] says no).
    fn enabled(&self) -> bool {
        true
    }

    /// Takes the lease on `principal` for `holder` until `until`; false when someone
    /// else holds an unexpired lease. Taking a lease the holder already has renews it.
    fn acquire(
        &self,
        principal: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;

    /// Gives the lease back if `holder` still has it.
    fn release(
        &self,
        principal: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// The entry that applied `dedupe_key` if it has not expired at `now`.
    fn applied(
        &self,
        dedupe_key: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<AuditEntry>, AwsError>> + Send;

    /// Writes the audit entry and, with `dedupe`, marks that key applied until the
    /// given time.
    fn record(
        &self,
        entry: &AuditEntry,
        dedupe: Option<(&str, DateTime<Utc>)>,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// The newest `limit` entries for a principal, newest first.
    fn history(
        &self,
        account: &Account,
        kind: &str,
        name: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, AwsError>> + Send;

    /// The keys revoked on `principal` whose records have not expired at `now`.
    fn key_records(
        &self,
        principal: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<KeyRecord>, AwsError>> + Send;

    /// Records (or replaces) a key revoked on `principal`, until `until`.
    fn record_key(
        &self,
        principal: &str,
        record: &KeyRecord,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Drops every key record of `principal`: its cutoff was released.
    fn drop_keys(&self, principal: &str) -> impl Future<Output = Result<(), AwsError>> + Send;

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
    ) -> Result<bool, AwsError> {
        Ok(true)
    }

    async fn release(&self, _: &str, _: &str) -> Result<(), AwsError> {
        Ok(())
    }

    async fn applied(&self, _: &str, _: DateTime<Utc>) -> Result<Option<AuditEntry>, AwsError> {
        Ok(None)
    }

    async fn record(
        &self,
        _: &AuditEntry,
        _: Option<(&str, DateTime<Utc>)>,
    ) -> Result<(), AwsError> {
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

    async fn key_records(&self, _: &str, _: DateTime<Utc>) -> Result<Vec<KeyRecord>, AwsError> {
        Ok(Vec::new())
    }

    async fn record_key(&self, _: &str, _: &KeyRecord, _: DateTime<Utc>) -> Result<(), AwsError> {
        Ok(())
    }

    async fn drop_keys(&self, _: &str) -> Result<(), AwsError> {
        Ok(())
    }

    async fn take_slot(&self, _: &str, _: u32, _: DateTime<Utc>) -> Result<bool, AwsError> {
        Ok(true)
    }
}
