//! In-memory fakes of the ledger table: [`FakeLedger`] and [`FakeSweepLedger`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, NaiveDate, Utc};

use super::{DIGEST_CLAIM_LEASE, RunProgress, SweepLedger, SweepRun};
use crate::error::{AwsError, ErrorKind, InjectedFailures, not_found};
use cutoff_domain::principal::Account;
use cutoff_domain::summary::{AccountRecord, DayRun, RunTotals};

/// An in-memory ledger: leases, dedupe markers and audit entries; fails on demand.
#[derive(Debug, Clone, Default)]
pub struct FakeLedger(pub Arc<Mutex<LedgerState>>);

#[derive(Debug, Default)]
pub struct LedgerState {
    /// principal → (holder, until)
    pub locks: HashMap<String, (String, chrono::DateTime<chrono::Utc>)>,
    pub dedupe: HashMap<String, (super::AuditEntry, chrono::DateTime<chrono::Utc>)>,
    pub entries: Vec<super::AuditEntry>,
    /// Every lease taken, in order: (principal, holder).
    pub acquired: Vec<(String, String)>,
    /// principal → key records (with their expiry).
    pub keys: HashMap<
        String,
        Vec<(
            cutoff_domain::coverage::KeyRecord,
            chrono::DateTime<chrono::Utc>,
        )>,
    >,
    /// bucket → count.
    pub slots: HashMap<String, u32>,
    pub released: Vec<(String, String)>,
    pub failures: InjectedFailures,
}

impl FakeLedger {
    pub fn state(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fail(&self, action: &'static str, kinds: &[ErrorKind]) {
        self.state().failures.plan(action, kinds);
    }

    fn begin(
        &self,
        action: &'static str,
    ) -> Result<std::sync::MutexGuard<'_, LedgerState>, AwsError> {
        let mut state = self.state();
        state.failures.take(action, "in the fake ledger")?;
        Ok(state)
    }
}

impl super::Ledger for FakeLedger {
    async fn acquire(
        &self,
        principal: &str,
        holder: &str,
        now: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, AwsError> {
        let mut state = self.begin("acquire")?;
        let free = match state.locks.get(principal) {
            None => true,
            Some((h, expires)) => h == holder || *expires < now,
        };
        if free {
            state
                .locks
                .insert(principal.to_owned(), (holder.to_owned(), until));
            state
                .acquired
                .push((principal.to_owned(), holder.to_owned()));
        }
        Ok(free)
    }

    async fn release(&self, principal: &str, holder: &str) -> Result<(), AwsError> {
        let mut state = self.begin("release")?;
        if state.locks.get(principal).is_some_and(|(h, _)| h == holder) {
            state.locks.remove(principal);
            state
                .released
                .push((principal.to_owned(), holder.to_owned()));
        }
        Ok(())
    }

    async fn applied(
        &self,
        key: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<super::AuditEntry>, AwsError> {
        let state = self.begin("applied")?;
        Ok(state
            .dedupe
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(e, _)| e.clone()))
    }

    async fn record(
        &self,
        entry: &super::AuditEntry,
        dedupe: Option<(&str, chrono::DateTime<chrono::Utc>)>,
    ) -> Result<(), AwsError> {
        let mut state = self.begin("record")?;
        state.entries.push(entry.clone());
        if let Some((key, until)) = dedupe {
            state.dedupe.insert(key.to_owned(), (entry.clone(), until));
        }
        Ok(())
    }

    async fn history(
        &self,
        account: &Account,
        kind: &str,
        name: &str,
        limit: usize,
    ) -> Result<Vec<super::AuditEntry>, AwsError> {
        let state = self.begin("history")?;
        let mut found: Vec<_> = state
            .entries
            .iter()
            // Keyed as the table keys them (every role-like principal a role).
            .filter(|e| {
                e.outcome.target.as_ref().is_some_and(|t| {
                    super::principal_key(t) == super::principal_key_of(account, kind, name)
                })
            })
            .cloned()
            .collect();
        found.reverse();
        found.truncate(limit);
        Ok(found)
    }

    async fn key_records(
        &self,
        principal: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<cutoff_domain::coverage::KeyRecord>, AwsError> {
        let state = self.begin("key_records")?;
        Ok(state
            .keys
            .get(principal)
            .map(|records| {
                records
                    .iter()
                    .filter(|(_, until)| *until > now)
                    .map(|(r, _)| r.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn record_key(
        &self,
        principal: &str,
        record: &cutoff_domain::coverage::KeyRecord,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), AwsError> {
        let mut state = self.begin("record_key")?;
        let records = state.keys.entry(principal.to_owned()).or_default();
        records.retain(|(r, _)| r.sort_key() != record.sort_key());
        records.push((record.clone(), until));
        Ok(())
    }

    async fn drop_keys(&self, principal: &str) -> Result<(), AwsError> {
        let mut state = self.begin("drop_keys")?;
        state.keys.remove(principal);
        Ok(())
    }

    async fn take_slot(
        &self,
        bucket: &str,
        cap: u32,
        _until: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, AwsError> {
        let mut state = self.begin("take_slot")?;
        let count = state.slots.entry(bucket.to_owned()).or_default();
        if *count >= cap {
            return Ok(false);
        }
        *count += 1;
        Ok(true)
    }
}

/// In-memory sweep runs and their accounts' records; fails the next calls on demand.
#[derive(Debug, Clone, Default)]
pub struct FakeSweepLedger(pub Arc<Mutex<SweepLedgerState>>);

#[derive(Debug, Default)]
pub struct SweepLedgerState {
    /// Sweep runs: run → (run, done, summary claimant); (run, account) → record.
    pub runs: HashMap<String, (SweepRun, u64, Option<String>)>,
    pub records: BTreeMap<(String, String), AccountRecord>,
    /// The day index: (day, run) → the run as the digest reads it.
    pub days: BTreeMap<(NaiveDate, String), DayRun>,
    /// Claims on days' digests: day → (claimant, claimed at, sent).
    pub digests: HashMap<NaiveDate, (String, DateTime<Utc>, bool)>,
    pub failures: InjectedFailures,
}

impl FakeSweepLedger {
    pub fn state(&self) -> MutexGuard<'_, SweepLedgerState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fail(&self, action: &'static str, kinds: &[ErrorKind]) {
        self.state().failures.plan(action, kinds);
    }

    fn begin(&self, action: &'static str) -> Result<MutexGuard<'_, SweepLedgerState>, AwsError> {
        let mut state = self.state();
        state.failures.take(action, "in the fake")?;
        Ok(state)
    }
}

impl SweepLedger for FakeSweepLedger {
    async fn start_run(&self, run: &SweepRun) -> Result<bool, AwsError> {
        let mut state = self.begin("PutItem")?;
        if state.runs.contains_key(&run.run_id) {
            return Ok(false);
        }
        state
            .runs
            .insert(run.run_id.clone(), (run.clone(), 0, None));
        state.days.insert(
            (run.day(), run.run_id.clone()),
            DayRun {
                run_id: run.run_id.clone(),
                started_at: run.started_at,
                dry_run: run.dry_run,
                accounts: run.total,
                totals: None,
            },
        );
        Ok(true)
    }

    async fn record_account(
        &self,
        run_id: &str,
        record: &AccountRecord,
    ) -> Result<RunProgress, AwsError> {
        let mut state = self.begin("TransactWriteItems")?;
        let key = (run_id.to_owned(), record.account.to_string());
        let recorded = !state.records.contains_key(&key);
        if recorded {
            state.records.insert(key, record.clone());
        }
        let (run, done, _) = state
            .runs
            .get_mut(run_id)
            .ok_or_else(|| not_found("TransactWriteItems", run_id))?;
        if recorded {
            *done += 1;
        }
        Ok(RunProgress {
            recorded,
            done: *done,
            total: run.total,
        })
    }

    async fn claim_summary(&self, run_id: &str, claimant: &str) -> Result<bool, AwsError> {
        let mut state = self.begin("UpdateItem")?;
        let (run, done, claimed_by) = state
            .runs
            .get_mut(run_id)
            .ok_or_else(|| not_found("UpdateItem", run_id))?;
        if *done < run.total || claimed_by.as_deref().is_some_and(|c| c != claimant) {
            return Ok(false);
        }
        *claimed_by = Some(claimant.to_owned());
        Ok(true)
    }

    async fn run_records(&self, run_id: &str) -> Result<(SweepRun, Vec<AccountRecord>), AwsError> {
        let state = self.begin("Query")?;
        let (run, _, _) = state
            .runs
            .get(run_id)
            .ok_or_else(|| not_found("Query", run_id))?;
        let records = state
            .records
            .iter()
            .filter(|((r, _), _)| r == run_id)
            .map(|(_, rec)| rec.clone())
            .collect();
        Ok((run.clone(), records))
    }

    async fn finish_run(&self, run: &SweepRun, totals: &RunTotals) -> Result<(), AwsError> {
        let mut state = self.begin("UpdateItem")?;
        let entry = state
            .days
            .entry((run.day(), run.run_id.clone()))
            .or_insert_with(|| DayRun {
                run_id: run.run_id.clone(),
                started_at: run.started_at,
                dry_run: run.dry_run,
                accounts: run.total,
                totals: None,
            });
        entry.totals = Some(totals.clone());
        Ok(())
    }

    async fn claim_digest(
        &self,
        day: NaiveDate,
        claimant: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        let mut state = self.begin("UpdateItem")?;
        let free = match state.digests.get(&day) {
            None => true,
            Some((_, _, true)) => false,
            Some((holder, at, false)) => holder == claimant || *at < now - DIGEST_CLAIM_LEASE,
        };
        if free {
            state.digests.insert(day, (claimant.to_owned(), now, false));
        }
        Ok(free)
    }

    async fn digest_sent(&self, day: NaiveDate, claimant: &str) -> Result<(), AwsError> {
        let mut state = self.begin("UpdateItem")?;
        if let Some((holder, _, sent)) = state.digests.get_mut(&day)
            && holder == claimant
        {
            *sent = true;
        }
        Ok(())
    }

    async fn day_runs(&self, day: NaiveDate) -> Result<Vec<DayRun>, AwsError> {
        let state = self.begin("Query")?;
        Ok(state
            .days
            .iter()
            .filter(|((d, _), _)| *d == day)
            .map(|(_, run)| run.clone())
            .collect())
    }
}
