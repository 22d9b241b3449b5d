//! Guard: what stands between a resolved request and its writes, all kept in the
//! ledger. The principal's lock (one writer at a time, revoker or sweeper), the
//! idempotency marks (a redelivered finding is not written twice), the key records
//! (which keys a cutoff in force already covers), the circuit breaker (a flood of
//! automatic revocations stops and calls a person), and the audit trail.
//!
//! Two ledger calls a revocation: taking the lock answers with the principal's marks
//! and key records, and closing writes the audit entries, the new marks and records
//! and gives the lock back in one transaction. The breaker's count is a third, taken
//! only by an automatic revocation that is about to write.
//!
//! A ledger that cannot be reached does not stop a revocation (containment first: it
//! is written without the lock, and the outcome says so) but does stop a release
//! (removals fail closed and are retried later).

use cutoff_aws::AccountAccess;
use cutoff_aws::dynamodb::{AuditEntry, KEY_RECORD_DAYS, Ledger, PrincipalState, principal_key};
use cutoff_domain::clock::Clock;
use cutoff_domain::coverage::KeyRecord;
use cutoff_domain::event::ManualAction;
use cutoff_domain::outcome::{FailureKind, Outcome, RevocationRequest, Status};
use cutoff_domain::policy::Cutoff;
use cutoff_domain::principal::{Target, TargetKind};
use cutoff_domain::triage::Source;

use super::{Revoker, Stop, short_hash};
use crate::principal_lock::{self, LockRequest};

/// The principal whose lock a request takes: the one whose policies it writes, named
/// as the sweeper and a revocation of it by name name it (an instance profile's
/// role).
pub(super) struct LockTarget {
    pub key: String,
    /// For messages: `role `web` (behind instance profile …)`.
    pub described: String,
}

impl LockTarget {
    pub fn of(target: &Target) -> Self {
        Self {
            key: principal_key(target),
            described: target.to_string(),
        }
    }

    /// The lock of the role behind an instance profile target.
    pub fn role_behind(profile: &Target, role: &cutoff_domain::principal::PrincipalName) -> Self {
        Self {
            key: principal_key(&Target {
                kind: TargetKind::Role,
                name: role.clone(),
                ..profile.clone()
            }),
            described: format!("role `{role}` (behind {profile})"),
        }
    }
}

/// What the ledger knows of a principal's revoked keys, for the skip rule.
pub(super) enum KnownKeys {
    Read(Vec<KeyRecord>),
    /// The ledger could not be read: whether the finding now names another key than
    /// it began with is unknown, so its first activity does not count.
    Unknown,
}

/// How many times a closing that failed for a passing reason is tried again.
const CLOSE_RETRIES: u32 = 3;

/// A request of a group the guard let through (a batch's messages about one principal
/// share one lock, one write and one closing; a request alone is a group of one).
pub(super) struct Member<'a> {
    pub request_id: &'a str,
    pub request: &'a RevocationRequest,
    /// The finding was already applied within the window: its earlier outcome
    /// answers, with no call of its own.
    pub earlier: Option<AuditEntry>,
}

/// A group the guard let through.
pub(super) struct Admitted<'a> {
    lock: LockTarget,
    /// Who holds the lock ([`lease_holder`] of the group's first request), when one
    /// is held.
    holder: Option<String>,
    /// What the principal's item held when the lock was taken (or read, for a dry
    /// run): the closing rewrites it. `None`: not read (the ledger unreachable).
    state: Option<PrincipalState>,
    /// Said in the outcome: what the guard could not do (the lock unreachable).
    warnings: Vec<String>,
    pub members: Vec<Member<'a>>,
}

impl Admitted<'_> {
    /// What the ledger knows of the principal's keys.
    /// What the ledger knows of the principal's keys: `Unknown` when some record may
    /// be missing (the skip rule then trusts no first activity of a key).
    pub fn known(&self, now: chrono::DateTime<chrono::Utc>) -> KnownKeys {
        match &self.state {
            Some(state) if state.keys_complete(now) => KnownKeys::Read(state.key_records(now)),
            _ => KnownKeys::Unknown,
        }
    }
}

/// The holder a guard takes the principal's lease as: its first request's id and a
/// nonce of its own. A message redelivered after its visibility timeout while the
/// first invocation still runs has the same id; with the id alone it would be handed
/// the lease the first one holds (taking a lease its holder already has renews it),
/// and two writers would read, merge and write the same deny at once.
pub(crate) fn lease_holder(request_id: &str) -> String {
    format!("{request_id}#{:016x}", fastrand::u64(..))
}

/// The first 128 bits of SHA-256 of a finding id: how the dedupe marker and the key
/// records name a finding.
pub(super) fn finding_digest(request: &RevocationRequest) -> Option<String> {
    request.trigger.finding_id.as_deref().map(short_hash)
}

impl<A: AccountAccess, K: Clock, L: Ledger> Revoker<A, K, L> {
    /// Takes the lock (for a group that writes) and, in the same call, reads the
    /// principal's idempotency marks and key records; answers each member already
    /// applied with its earlier entry. `Err` is the outcome of a group that does not go
    /// on: the lock busy, or unreachable for a release.
    pub(super) async fn guard<'a>(
        &self,
        members: &[(&'a str, &'a RevocationRequest)],
        lock: LockTarget,
    ) -> Result<Admitted<'a>, Stop> {
        let Some(&(first_id, first)) = members.first() else {
            return Err(Stop::failed(FailureKind::InvalidRequest, "no request"));
        };
        let holder = lease_holder(first_id);
        let mut warnings = Vec::new();
        let (locked, state) = if !first.dry_run && self.ledger.enabled() {
            let asked = LockRequest {
                key: &lock.key,
                holder: &holder,
                lease: self.config.lock_lease,
                wait: self.config.lock_wait,
            };
            match principal_lock::acquire(&self.ledger, &self.clock, &asked).await {
                Ok(Some(state)) => (true, Some(state)),
                Ok(None) => {
                    return Err(Stop::failed(
                        FailureKind::Busy,
                        format!(
                            "another writer held the lock on {} for more than {} s; the request will be retried",
                            lock.described,
                            self.config.lock_wait.as_secs()
                        ),
                    ));
                }
                // Removing a deny is not urgent and must not race a revocation:
                // without the lock it does not run (the caller retries).
                Err(e) if first.action == ManualAction::Release => {
                    tracing::warn!(error = %e, "ledger unreachable: release not run");
                    return Err(Stop::failed(
                        FailureKind::LedgerUnavailable,
                        format!(
                            "the ledger could not be reached ({}); a release runs only under the principal lock, so nothing was removed; retry later",
                            e.kind.as_str()
                        ),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ledger unreachable: writing without the principal lock");
                    warnings.push(format!(
                        "the ledger could not be reached ({}); written without the principal lock",
                        e.kind.as_str()
                    ));
                    (false, None)
                }
            }
        } else if first.action == ManualAction::Revoke && self.ledger.enabled() {
            // A dry run takes no lock but weighs the key records as a run would.
            match self.ledger.state(&lock.key, self.clock.now()).await {
                Ok(state) => (false, Some(state)),
                Err(e) => {
                    tracing::warn!(error = %e, "ledger unreachable: key records not read");
                    (false, None)
                }
            }
        } else {
            (false, Some(PrincipalState::default()))
        };
        let mut state = state;
        if let Some(state) = state.as_mut() {
            self.adopt_legacy_keys(state, &lock.key).await;
        }
        let mut admitted = Vec::with_capacity(members.len());
        for &(request_id, request) in members {
            let earlier = match (&state, self.dedupe_digest(request)) {
                (Some(state), Some(digest)) => self.applied(state, &digest).await,
                _ => None,
            };
            admitted.push(Member {
                request_id,
                request,
                earlier,
            });
        }
        Ok(Admitted {
            lock,
            holder: locked.then_some(holder),
            state,
            warnings,
            members: admitted,
        })
    }

    /// Ends an admitted group: says in each outcome what the guard could not do, keeps
    /// the key records in step, marks the findings that took effect, records every
    /// member's outcome and gives the lock back, in one call when the lock is held.
    /// `outcomes` are the members', in order.
    pub(super) async fn close(
        &self,
        admitted: Admitted<'_>,
        outcomes: &mut [Outcome],
        started: chrono::DateTime<chrono::Utc>,
    ) {
        let now = self.clock.now();
        let mut state = admitted.state;
        let keys_before = state.as_ref().map(|s| s.keys.clone());
        let mut entries = Vec::with_capacity(outcomes.len());
        for (member, outcome) in admitted.members.iter().zip(outcomes.iter_mut()) {
            if !admitted.warnings.is_empty() && member.earlier.is_none() {
                outcome.detail = format!("{} ({})", outcome.detail, admitted.warnings.join("; "));
            }
            let entry = AuditEntry {
                at: now,
                request_id: member.request_id.to_owned(),
                action: member.request.action.as_str().to_owned(),
                outcome: outcome.clone(),
            };
            if let Some(state) = state.as_mut().filter(|_| member.earlier.is_none()) {
                self.remember_keys(state, member.request, outcome, started);
                if let Some(digest) = self.dedupe_digest(member.request)
                    && took_effect(outcome)
                {
                    state.set_mark(
                        digest,
                        entry.principal(),
                        entry.sort_key(),
                        now + self.config.dedupe_window,
                    );
                }
            }
            entries.push(entry);
        }
        if let (Some(holder), Some(state)) = (admitted.holder.as_deref(), &state) {
            let key = &admitted.lock.key;
            match self.close_retrying(key, holder, state, &entries).await {
                Ok(true) => return,
                Ok(false) => tracing::warn!(
                    "the principal's lease ran out before the request ended: its marks and key records are not kept"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "the closing failed: the audit entries are written alone, the marks and key records not kept");
                    if let Err(e) = self.ledger.release(key, holder).await {
                        tracing::warn!(error = %e, "principal lock not given back; it expires on its own");
                    }
                }
            }
            // A key record this request could not keep must not be taken as absent:
            // until it would have expired, the skip rule trusts no first activity.
            if keys_before.as_ref() != Some(&state.keys) {
                let until = now + chrono::Duration::days(KEY_RECORD_DAYS);
                if let Err(e) = self.ledger.mark_incomplete(key, until).await {
                    tracing::error!(error = %e, "the principal's key records could not be marked incomplete");
                }
            }
        }
        for entry in &entries {
            self.record_entry(entry).await;
        }
    }

    /// [`Ledger::close`], tried again (briefly) when it fails for a reason that passes:
    /// a waiter's request for the lease conflicting with the transaction, throttling.
    async fn close_retrying(
        &self,
        key: &str,
        holder: &str,
        state: &PrincipalState,
        entries: &[AuditEntry],
    ) -> Result<bool, cutoff_aws::AwsError> {
        let mut pause = std::time::Duration::from_millis(20);
        let mut tries = 0;
        loop {
            match self.ledger.close(key, holder, state, entries).await {
                Err(e) if e.is_retryable() && tries < CLOSE_RETRIES => {
                    tries += 1;
                    let jitter = fastrand::u64(0..=pause.as_millis() as u64);
                    tokio::time::sleep(pause / 2 + std::time::Duration::from_millis(jitter / 2))
                        .await;
                    pause *= 2;
                }
                other => return other,
            }
        }
    }

    /// Makes the state's key records whole for a principal this version has not kept
    /// records of yet: none can be missing when the version before cannot have left
    /// any, else its records (`keys#` items) are read once and kept here from now on.
    /// If they cannot be read the records stay incomplete (the skip rule trusts no
    /// first activity of a key) and the next request tries again.
    async fn adopt_legacy_keys(&self, state: &mut PrincipalState, principal: &str) {
        if state.keys_since.is_some() {
            return;
        }
        let now = self.clock.now();
        let legacy = match self.ledger.legacy_window(now).await {
            Ok(false) => Ok(Vec::new()),
            Ok(true) => self.ledger.legacy_keys(principal, now).await,
            Err(e) => Err(e),
        };
        match legacy {
            Ok(records) => {
                for (record, until) in records {
                    state.set_key(record, until);
                }
                state.keys_since = Some(now);
            }
            Err(e) => {
                tracing::warn!(error = %e, "the key records of the version before could not be read: the skip rule trusts no first activity of a key");
            }
        }
    }

    /// The audit entry a mark of `state` names for `digest`, if the mark holds.
    async fn applied(&self, state: &PrincipalState, digest: &str) -> Option<AuditEntry> {
        let mark = state.mark(digest, self.clock.now())?;
        match self.ledger.entry(&mark.trail, &mark.entry).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "ledger unreachable: the earlier outcome not read");
                None
            }
        }
    }

    /// Keeps the key records in `state` in step: the key a revocation covered is
    /// recorded with the cutoff in force; a release drops the principal's records (its
    /// cutoff no longer covers them).
    ///
    /// A record vouches for the key only when the cutoff in force is at or after the
    /// moment this request began: the key was in use before then, so that cutoff
    /// certainly covers it. An older cutoff that covered the request only by the
    /// finding's claim (its first activity) proves nothing, or a forged finding could
    /// make cutoff vouch for the attacker's key: such a key is recorded as seen only (one
    /// record per key and finding, beside any covering record). A `partial` outcome
    /// records nothing: its key still works.
    fn remember_keys(
        &self,
        state: &mut PrincipalState,
        request: &RevocationRequest,
        outcome: &Outcome,
        started: chrono::DateTime<chrono::Utc>,
    ) {
        if outcome.dry_run {
            return;
        }
        match (request.action, outcome.status) {
            (ManualAction::Revoke, Status::Applied | Status::AlreadyRevoked) => {
                // An Identity Center user's deny has no time condition: every session
                // of theirs, this key's included, is denied from the moment it was
                // read back, which is what the record vouches for.
                let in_force = outcome.cutoff.or_else(|| {
                    outcome
                        .identity_center
                        .as_ref()
                        .map(|_| Cutoff::at_or_after(self.clock.now()))
                });
                let (Some(access_key_id), Some(cutoff)) =
                    (request.target.access_key_id.clone(), in_force)
                else {
                    return;
                };
                let seen_only = cutoff.as_datetime() < started;
                let record = KeyRecord {
                    access_key_id,
                    cutoff,
                    finding: finding_digest(request),
                    seen_only,
                };
                let until = self.clock.now() + chrono::Duration::days(KEY_RECORD_DAYS);
                state.set_key(record, until);
            }
            // An Identity Center user's release lifts their deny only: the records of
            // the role's other users' sessions still stand.
            (ManualAction::Release, Status::Released) if outcome.identity_center.is_none() => {
                state.drop_keys();
            }
            _ => {}
        }
    }

    /// The digest of [`Self::dedupe_key`]: how a mark names the finding.
    fn dedupe_digest(&self, request: &RevocationRequest) -> Option<String> {
        self.dedupe_key(request).as_deref().map(short_hash)
    }

    /// `<finding>#<updatedAt>#<principal>#<scope>#<session>#<key>` for a revocation
    /// from a finding: a redelivery of the same event is recognised, while an update of
    /// the finding (a new `updatedAt`) goes through the skip rule, and one naming a
    /// new key is revoked at once.
    fn dedupe_key(&self, request: &RevocationRequest) -> Option<String> {
        if request.action != ManualAction::Revoke || request.dry_run {
            return None;
        }
        let finding = finding_digest(request)?;
        let t = &request.target;
        // The source and product too: whoever imports a Security Hub finding chooses its
        // id and update time, and must not make a GuardDuty finding look applied.
        let origin = short_hash(&format!(
            "{}|{}",
            request.trigger.source,
            request.trigger.product_arn.as_deref().unwrap_or("")
        ));
        Some(format!(
            "{finding}#{origin}#{}#{}#{}#{}#{}",
            request
                .trigger
                .updated_at
                .map_or_else(|| "-".to_owned(), |u| u.timestamp_millis().to_string()),
            principal_key(t),
            request.scope.as_str(),
            t.session.as_ref().map_or("-", |s| s.as_str()),
            t.access_key_id.as_ref().map_or("-", |k| k.as_str()),
        ))
    }

    /// The answer to a finding already applied within the window: the earlier
    /// attempt's status and cutoff (a redelivery after an outcome that could not be
    /// published must still tell the owner `applied`, not "already revoked"), with no
    /// IAM call of its own.
    pub(super) fn duplicate_of(&self, request: &RevocationRequest, entry: &AuditEntry) -> Outcome {
        let mut outcome = Outcome::for_request(request, entry.outcome.status, "");
        outcome.cutoff = entry.outcome.cutoff;
        outcome.previous_cutoff = entry.outcome.previous_cutoff;
        outcome.policy = entry.outcome.policy.clone();
        outcome.owner = entry.outcome.owner.clone();
        outcome.propagation = entry.outcome.propagation.clone();
        outcome.still_works = entry.outcome.still_works.clone();
        outcome.other_access = entry.outcome.other_access.clone();
        outcome.identity_center = entry.outcome.identity_center.clone();
        outcome.detail = format!(
            "finding {} was applied to {} by request {} at {} ({}, cutoff {}); not written again within the {} min window",
            cutoff_domain::principal::excerpt(request.trigger.finding_id.as_deref().unwrap_or("")),
            request.target,
            cutoff_domain::principal::excerpt(&entry.request_id),
            entry.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            entry.outcome.status.as_str(),
            entry
                .outcome
                .cutoff
                .map_or_else(|| "none".to_owned(), |c| c.to_string()),
            self.config.dedupe_window.num_minutes()
        );
        outcome
    }

    /// Records a request and its outcome alone (refused before the lock, or the
    /// follow-up's own entry).
    pub(super) async fn audit(
        &self,
        request_id: &str,
        request: &RevocationRequest,
        outcome: &Outcome,
    ) {
        let entry = AuditEntry {
            at: self.clock.now(),
            request_id: request_id.to_owned(),
            action: request.action.as_str().to_owned(),
            outcome: outcome.clone(),
        };
        self.record_entry(&entry).await;
    }

    async fn record_entry(&self, entry: &AuditEntry) {
        if let Err(e) = self.ledger.record(entry).await {
            tracing::error!(error = %e, "audit entry not written (the outcome is still logged and published)");
        }
    }

    /// The circuit breaker, passed before the first write of an automatic revocation:
    /// at most `max_revocations_per_account_hour` per account and hour. Beyond it
    /// nothing is written and the outcome says so loudly. With the ledger unreachable
    /// the breaker is open to writes (containment first), and the outcome says that.
    pub(super) async fn pass_breaker(
        &self,
        request: &RevocationRequest,
        notes: &mut Vec<String>,
    ) -> Result<(), Stop> {
        if request.trigger.source == Source::Manual || request.dry_run || !self.ledger.enabled() {
            return Ok(());
        }
        let hour = self.clock.now().format("%Y-%m-%dT%H").to_string();
        let account = &request.target.account;
        // The follow-up's revocations count against their finding's own budget, not
        // the account's: a thief who mints many sessions must not use up the slots of
        // every other finding in the account. The walk bounds a finding's links.
        if request.trigger.source == Source::Chain {
            let cap =
                u32::try_from(cutoff_domain::chain::Limits::default().max_hops).unwrap_or(u32::MAX);
            let finding = request.trigger.finding_id.as_deref().unwrap_or("-");
            return self
                .take_breaker_slot(
                    &format!("chain#{}#{hour}", short_hash(finding)),
                    cap,
                    notes,
                    || {
                        format!(
                            "{cap} revocations following the chain of one finding this hour already"
                        )
                    },
                )
                .await;
        }
        // The action's count first: a selection refused for its size must not use up
        // the account's slots, or one click would stop GuardDuty's revocations there.
        if let (Some(cap), Some(action)) = (
            self.config.max_revocations_per_action_hour,
            request.trigger.custom_action.as_deref(),
        ) {
            self.take_breaker_slot(
                &format!("action#{}#{hour}", short_hash(action)),
                cap,
                notes,
                || {
                    format!(
                        "{cap} revocations by the Security Hub custom action {} this hour already (a selection of many findings, or someone steering cutoff through Security Hub)",
                        cutoff_domain::principal::excerpt(action)
                    )
                },
            )
            .await?;
        }
        if let Some(cap) = self.config.max_revocations_per_account_hour {
            self.take_breaker_slot(&format!("{account}#{hour}"), cap, notes, || {
                format!("{cap} automatic revocations in account {account} this hour already")
            })
            .await?;
        }
        Ok(())
    }

    /// One count of the circuit breaker in `bucket`; `full` says what is full.
    async fn take_breaker_slot(
        &self,
        bucket: &str,
        cap: u32,
        notes: &mut Vec<String>,
        full: impl FnOnce() -> String,
    ) -> Result<(), Stop> {
        let until = self.clock.now() + chrono::Duration::hours(2);
        match self.ledger.take_slot(bucket, cap, until).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Stop::failed(
                FailureKind::CircuitOpen,
                format!(
                    "circuit breaker: {}; this one is NOT written. A person must look now: revoke by hand (cutoff revoke) if it is real, and find what raises so many findings",
                    full()
                ),
            )),
            Err(e) => {
                tracing::warn!(error = %e, "ledger unreachable: circuit breaker not checked");
                let note = format!(
                    "the circuit breaker could not be checked ({}); revoked anyway, containment first",
                    e.kind.as_str()
                );
                if !notes.contains(&note) {
                    notes.push(note);
                }
                Ok(())
            }
        }
    }
}

/// Whether an outcome took effect, so that its finding is marked applied.
fn took_effect(outcome: &Outcome) -> bool {
    matches!(outcome.status, Status::Applied | Status::AlreadyRevoked)
}
