//! In-memory fakes of the ledger table: [`FakeLedger`] and [`FakeSweepLedger`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, NaiveDate, Utc};

use super::{
    AuditEntry, DIGEST_CLAIM_LEASE, Ledger, PrincipalState, RunProgress, SweepLedger, SweepRun,
};
use crate::error::{AwsError, ErrorKind, InjectedFailures, not_found};
use cutoff_domain::coverage::KeyRecord;
use cutoff_domain::principal::Account;
use cutoff_domain::summary::{AccountRecord, DayRun, RunTotals};

/// An in-memory ledger: leases, principals' marks and key records, audit entries;
/// counts its calls and fails on demand.
#[derive(Debug, Clone, Default)]
pub struct FakeLedger(pub Arc<Mutex<LedgerState>>);

#[derive(Debug, Default)]
pub struct LedgerState {
    /// principal → (holder, until)
    pub locks: HashMap<String, (String, DateTime<Utc>)>,
    /// principal → its marks and key records, as the lock item holds them.
    pub principals: HashMap<String, PrincipalState>,
    pub entries: Vec<AuditEntry>,
    /// Every lease taken, in order: (principal, holder).
    pub acquired: Vec<(String, String)>,
    /// bucket → count.
    pub slots: HashMap<String, u32>,
    pub released: Vec<(String, String)>,
    /// Key records the version before kept (`keys#` items): principal → records.
    pub legacy_keys: HashMap<String, Vec<(KeyRecord, DateTime<Utc>)>>,
    /// Until when the version before may have left records (`legacy_window`).
    pub legacy_until: Option<DateTime<Utc>>,
    /// Every call, by the name `fail` takes: what a request costs in ledger calls.
    pub calls: Vec<&'static str>,
    pub failures: InjectedFailures,
}

impl LedgerState {
    /// The key records of `principal` that hold at `now`.
    pub fn key_records(&self, principal: &str, now: DateTime<Utc>) -> Vec<KeyRecord> {
        self.principals
            .get(principal)
            .map(|state| state.key_records(now))
            .unwrap_or_default()
    }

    /// Every key record of every principal, expired or not: principal → records.
    pub fn keys(&self) -> BTreeMap<String, Vec<(KeyRecord, DateTime<Utc>)>> {
        self.principals
            .iter()
            .filter(|(_, state)| !state.keys.is_empty())
            .map(|(principal, state)| (principal.clone(), state.keys.values().cloned().collect()))
            .collect()
    }

    /// How many idempotency marks the principals' items hold.
    pub fn marks(&self) -> usize {
        self.principals
            .values()
            .map(|state| state.marks.len())
            .sum()
    }
}

impl FakeLedger {
    pub fn state(&self) -> MutexGuard<'_, LedgerState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fail(&self, action: &'static str, kinds: &[ErrorKind]) {
        self.state().failures.plan(action, kinds);
    }

    /// Puts a key record on `principal`'s item, as an earlier revocation would have
    /// (kept by this version since `until` minus two days).
    pub fn seed_key(&self, principal: &str, record: KeyRecord, until: DateTime<Utc>) {
        let mut state = self.state();
        let item = state.principals.entry(principal.to_owned()).or_default();
        item.keys_since
            .get_or_insert(until - chrono::Duration::days(super::KEY_RECORD_DAYS));
        item.set_key(record, until);
    }

    /// The calls made since the last time this was asked.
    pub fn take_calls(&self) -> Vec<&'static str> {
        std::mem::take(&mut self.state().calls)
    }

    fn begin(&self, action: &'static str) -> Result<MutexGuard<'_, LedgerState>, AwsError> {
        let mut state = self.state();
        state.calls.push(action);
        state.failures.take(action, "in the fake ledger")?;
        Ok(state)
    }
}

impl Ledger for FakeLedger {
    async fn acquire(
        &self,
        principal: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<PrincipalState>, AwsError> {
        let mut state = self.begin("acquire")?;
        let free = match state.locks.get(principal) {
            None => true,
            Some((h, expires)) => h == holder || *expires < now,
        };
        if !free {
            return Ok(None);
        }
        state
            .locks
            .insert(principal.to_owned(), (holder.to_owned(), until));
        state
            .acquired
            .push((principal.to_owned(), holder.to_owned()));
        Ok(Some(
            state
                .principals
                .get(principal)
                .cloned()
                .unwrap_or_default()
                .pruned(now),
        ))
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

    async fn close(
        &self,
        principal: &str,
        holder: &str,
        principal_state: &PrincipalState,
        entries: &[AuditEntry],
    ) -> Result<bool, AwsError> {
        let mut state = self.begin("close")?;
        if state.locks.get(principal).is_none_or(|(h, _)| h != holder) {
            return Ok(false);
        }
        state.locks.remove(principal);
        state
            .released
            .push((principal.to_owned(), holder.to_owned()));
        state
            .principals
            .insert(principal.to_owned(), principal_state.clone());
        state.entries.extend(entries.iter().cloned());
        Ok(true)
    }

    async fn state(&self, principal: &str, now: DateTime<Utc>) -> Result<PrincipalState, AwsError> {
        let state = self.begin("state")?;
        Ok(state
            .principals
            .get(principal)
            .cloned()
            .unwrap_or_default()
            .pruned(now))
    }

    async fn legacy_window(&self, now: DateTime<Utc>) -> Result<bool, AwsError> {
        let state = self.begin("legacy_window")?;
        Ok(state.legacy_until.is_some_and(|t| t > now))
    }

    async fn legacy_keys(
        &self,
        principal: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(KeyRecord, DateTime<Utc>)>, AwsError> {
        let state = self.begin("legacy_keys")?;
        Ok(state
            .legacy_keys
            .get(principal)
            .map(|records| {
                records
                    .iter()
                    .filter(|(_, until)| *until > now)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn mark_incomplete(&self, principal: &str, until: DateTime<Utc>) -> Result<(), AwsError> {
        let mut state = self.begin("mark_incomplete")?;
        state
            .principals
            .entry(principal.to_owned())
            .or_default()
            .incomplete_until(until);
        Ok(())
    }

    async fn entry(&self, principal: &str, sort_key: &str) -> Result<Option<AuditEntry>, AwsError> {
        let state = self.begin("entry")?;
        Ok(state
            .entries
            .iter()
            .find(|e| e.principal() == principal && e.sort_key() == sort_key)
            .cloned())
    }

    async fn record(&self, entry: &AuditEntry) -> Result<(), AwsError> {
        let mut state = self.begin("record")?;
        state.entries.push(entry.clone());
        Ok(())
    }

    async fn history(
        &self,
        account: &Account,
        kind: &str,
        name: &str,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, AwsError> {
        let state = self.begin("history")?;
        let mut found: Vec<_> = state
            .entries
            .iter()
            // Keyed as the table keys them (every role-like principal a role).
            .filter(|e| e.principal() == super::principal_key_of(account, kind, name))
            .cloned()
            .collect();
        found.reverse();
        found.truncate(limit);
        Ok(found)
    }

    async fn take_slot(
        &self,
        bucket: &str,
        cap: u32,
        _until: DateTime<Utc>,
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

    async fn tasks_sent(&self, run_id: &str) -> Result<(), AwsError> {
        let mut state = self.begin("UpdateItem")?;
        let (run, _, _) = state
            .runs
            .get_mut(run_id)
            .ok_or_else(|| not_found("UpdateItem", run_id))?;
        run.tasks_sent = true;
        Ok(())
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
