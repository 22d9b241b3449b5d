//! Guard: what stands between a resolved request and its writes, all kept in the
//! ledger. The principal's lock (one writer at a time, revoker or sweeper), the
//! idempotency marker (a redelivered finding is not written twice), the key records
//! (which keys a cutoff in force already covers), the circuit breaker (a flood of
//! automatic revocations stops and calls a person), and the audit trail.
//!
//! A ledger that cannot be reached does not stop a revocation (containment first: it
//! is written without the lock, and the outcome says so) but does stop a release
//! (removals fail closed and are retried later).

use cutoff_aws::AccountAccess;
use cutoff_aws::dynamodb::{AuditEntry, KEY_RECORD_DAYS, Ledger, principal_key};
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

/// A request the guard let through.
pub(super) struct Admitted {
    lock: LockTarget,
    /// Whether this request holds the lock (to release it at the end).
    locked: bool,
    /// Said in the outcome: what the guard could not do (the lock unreachable).
    warnings: Vec<String>,
    /// The idempotency marker of a revocation from a finding.
    dedupe: Option<String>,
    /// The finding was already applied within the window: its earlier outcome
    /// answers, with no call of its own.
    pub earlier: Option<AuditEntry>,
    pub known: KnownKeys,
}

/// The first 128 bits of SHA-256 of a finding id: how the dedupe marker and the key
/// records name a finding.
pub(super) fn finding_digest(request: &RevocationRequest) -> Option<String> {
    request.trigger.finding_id.as_deref().map(short_hash)
}

impl<A: AccountAccess, K: Clock, L: Ledger> Revoker<A, K, L> {
    /// Takes the lock (for a request that writes), checks the idempotency marker
    /// (when `check_earlier`) and reads the key records. `Err` is the outcome of a
    /// request that does not go on: the lock busy, or unreachable for a release.
    pub(super) async fn guard(
        &self,
        request: &RevocationRequest,
        request_id: &str,
        lock: LockTarget,
        check_earlier: bool,
    ) -> Result<Admitted, Stop> {
        let mut warnings = Vec::new();
        let locked = if !request.dry_run && self.ledger.enabled() {
            let asked = LockRequest {
                key: &lock.key,
                holder: request_id,
                lease: self.config.lock_lease,
                wait: self.config.lock_wait,
            };
            match principal_lock::acquire(&self.ledger, &self.clock, &asked).await {
                Ok(true) => true,
                Ok(false) => {
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
                Err(e) if request.action == ManualAction::Release => {
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
                    false
                }
            }
        } else {
            false
        };
        let dedupe = self.dedupe_key(request);
        let earlier = match dedupe.as_ref().filter(|_| check_earlier) {
            Some(key) => self.applied(key).await,
            None => None,
        };
        let known = if request.action == ManualAction::Revoke && earlier.is_none() {
            match self.ledger.key_records(&lock.key, self.clock.now()).await {
                Ok(records) => KnownKeys::Read(records),
                Err(e) => {
                    tracing::warn!(error = %e, "ledger unreachable: key records not read");
                    KnownKeys::Unknown
                }
            }
        } else {
            // A release or a duplicate reads no key records: none to weigh.
            KnownKeys::Read(Vec::new())
        };
        Ok(Admitted {
            lock,
            locked,
            warnings,
            dedupe,
            earlier,
            known,
        })
    }

    /// Ends an admitted request: says what the guard could not do, keeps the key
    /// records in step, records the outcome (and the idempotency marker of one that
    /// took effect), and releases the lock.
    pub(super) async fn close(
        &self,
        admitted: Admitted,
        request: &RevocationRequest,
        request_id: &str,
        outcome: &mut Outcome,
        started: chrono::DateTime<chrono::Utc>,
    ) {
        if !admitted.warnings.is_empty() {
            outcome.detail = format!("{} ({})", outcome.detail, admitted.warnings.join("; "));
        }
        self.remember_keys(request, &admitted.lock.key, outcome, started)
            .await;
        let mark = admitted.dedupe.as_deref().filter(|_| took_effect(outcome));
        self.audit(request_id, request, outcome, mark).await;
        if admitted.locked
            && let Err(e) = self.ledger.release(&admitted.lock.key, request_id).await
        {
            tracing::warn!(error = %e, "principal lock not released; it expires on its own");
        }
    }

    /// The audit entry of the finding applied under `key` within the window.
    async fn applied(&self, key: &str) -> Option<AuditEntry> {
        match self.ledger.applied(key, self.clock.now()).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "ledger unreachable: idempotency not checked");
                None
            }
        }
    }

    /// Keeps the ledger's key records in step: the key a revocation covered is
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
    async fn remember_keys(
        &self,
        request: &RevocationRequest,
        key: &str,
        outcome: &Outcome,
        started: chrono::DateTime<chrono::Utc>,
    ) {
        if outcome.dry_run {
            return;
        }
        let result = match (request.action, outcome.status) {
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
                self.ledger.record_key(key, &record, until).await
            }
            // An Identity Center user's release lifts their deny only: the records of
            // the role's other users' sessions still stand.
            (ManualAction::Release, Status::Released) if outcome.identity_center.is_none() => {
                self.ledger.drop_keys(key).await
            }
            _ => return,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "key records not updated in the ledger");
        }
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

    /// The earlier outcome of a finding already applied within the window, if it was:
    /// for a batch, where each message must be checked on its own before messages are
    /// folded into one write (a redelivered one must not answer for a new one).
    pub(crate) async fn earlier_outcome(&self, request: &RevocationRequest) -> Option<Outcome> {
        let key = self.dedupe_key(request)?;
        let entry = self.applied(&key).await?;
        Some(self.duplicate_of(request, &entry))
    }

    /// Records a request that shared another's write (folded into it in a batch) as
    /// if it had run alone: its key, its idempotency mark, its audit entry.
    pub(crate) async fn settle_shared(
        &self,
        request: &RevocationRequest,
        request_id: &str,
        outcome: &Outcome,
        started: chrono::DateTime<chrono::Utc>,
    ) {
        self.remember_keys(request, &principal_key(&request.target), outcome, started)
            .await;
        let dedupe = self.dedupe_key(request);
        let mark = dedupe.as_deref().filter(|_| took_effect(outcome));
        self.audit(request_id, request, outcome, mark).await;
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

    /// Records the request and its outcome; `dedupe` marks a finding applied.
    pub(super) async fn audit(
        &self,
        request_id: &str,
        request: &RevocationRequest,
        outcome: &Outcome,
        dedupe: Option<&str>,
    ) {
        let at = self.clock.now();
        let entry = AuditEntry {
            at,
            request_id: request_id.to_owned(),
            action: request.action.as_str().to_owned(),
            outcome: outcome.clone(),
        };
        let mark = dedupe.map(|k| (k, at + self.config.dedupe_window));
        if let Err(e) = self.ledger.record(&entry, mark).await {
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
