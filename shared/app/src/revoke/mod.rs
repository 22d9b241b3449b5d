//! The revocation workflow, one step per module, each a function with a typed result:
//!
//! 1. Scope ([`Revoker::refuse_account`]): only the configured accounts, before any
//!    call.
//! 2. [`guard`]: the principal's lock (for an instance profile, its role is found
//!    first: the lock is the role's), the idempotency marker, the key records:
//!    [`guard::Admitted`]; the circuit breaker just before the first write; the key
//!    records, the audit entry and the unlock at the end ([`Revoker::close`]).
//! 3. [`resolve`]: the member role, the principal that holds policies, read and
//!    checked (not at a reserved path, not protected, the one the finding names):
//!    [`resolve::Resolved`].
//! 4. [`act`]: the deny (inline, the managed fallback, or the session's), read back
//!    before it counts, then a user's keys, every write through the
//!    [`crate::deny_writer::DenyWriter`]: a [`Done`]. [`release`] lifts a deny the
//!    same way, and [`status`] only reads.
//! 5. [`Revoker::report`]: the [`Outcome`], from the [`Done`] or the [`Stop`] and
//!    what the steps recorded on the way ([`Record`]).
//!
//! [`Revoker::handle`] runs them in that order. Written against the traits in
//! [`cutoff_aws`], so it runs the same against IAM, the local stand-in and the
//! in-memory fakes. Every request ends in an [`Outcome`]; nothing here panics or
//! returns early without one.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use cutoff_aws::AccountAccess;
use cutoff_aws::AwsError;
use cutoff_aws::dynamodb::{Ledger, NoLedger};
use cutoff_aws::identity_center::Directory;
use cutoff_aws::retry::{CallCounter, RetryPolicy};
use cutoff_domain::clock::Clock;
use cutoff_domain::event::{ManualAction, Scope};
use cutoff_domain::outcome::{
    FailureKind, Outcome, OutcomeError, Owner, RevocationRequest, Status, StillWorks,
};
use cutoff_domain::policy::Cutoff;
use cutoff_domain::principal::{AccountScope, IamPath, Partition, Protection, Target, TargetKind};

mod act;
mod follow_up;
pub(crate) mod guard;
mod identity_center;
mod release;
mod resolve;
mod self_check;
mod status;

pub use follow_up::{FOLLOW_UP_ACTION, FollowedUp};
use guard::LockTarget;
pub use identity_center::within_invocation;
use resolve::Purpose;
pub use self_check::SelfCheckIdentity;

#[derive(Debug, Clone)]
pub struct RevokeConfig {
    /// Never revoked, whatever the request says (the member role, cutoff's own roles
    /// by exact ARN, what the deployer adds).
    pub protection: Protection,
    /// The accounts cutoff may reach into; None only where the caller's own credentials
    /// bound it (the CLI's direct mode).
    pub accounts: Option<AccountScope>,
    /// The circuit breaker: at most this many automatic revocations per account and
    /// hour (None: no breaker). Manual requests are never capped.
    pub max_revocations_per_account_hour: Option<u32>,
    /// The same for one Security Hub custom action, across the events of its
    /// selections (Security Hub sends each selected finding in an event of its own, so
    /// intake, which sees one at a time, cannot count them).
    pub max_revocations_per_action_hour: Option<u32>,
    /// The deployment's partition: a request naming an ARN of another one is refused.
    pub partition: Partition,
    /// Added to "now" before rounding up to a whole second. STS may round a session's
    /// issue time to the nearest second; one second of margin keeps a session minted
    /// just before the write from landing exactly on the cutoff and surviving.
    pub margin: chrono::Duration,
    pub retry: RetryPolicy,
    /// Read-backs before a write is declared unverified (IAM is eventually consistent).
    pub verify_attempts: u32,
    pub verify_delay: Duration,
    /// Path of the managed fallback policies.
    pub fallback_path: IamPath,
    /// Honour the tag `cutoff:protected=true` on a principal. Off by default: the
    /// tag is set in the member account, possibly by the attacker being revoked.
    pub honour_protected_tag: bool,
    /// How long a writer holds a principal's lock at most (it expires on its own if
    /// the writer dies), and how long a writer waits for it before failing (the
    /// request is then retried).
    pub lock_lease: chrono::Duration,
    pub lock_wait: Duration,
    /// A finding applied to a principal is not applied again within this window.
    pub dedupe_window: chrono::Duration,
    /// Who the revoker is, for the self-check of `cutoff doctor` (None: refused).
    pub self_check: Option<SelfCheckIdentity>,
    /// How long a follow-up run reads CloudTrail at most (the function's timeout is
    /// 90 s, and the containments come after the reading): keys left unread then are
    /// a gap the run reports, and the next run starts over.
    pub follow_up_budget: Duration,
    /// When a follow-up run starts no more containments (a later run contains what is
    /// left): the function's 90 s, less the longest a containment may wait for a
    /// principal's lock (`lock_wait`, 30 s) and a margin for its calls.
    pub follow_up_deadline: Duration,
    /// How long an Identity Center containment takes at most, from the request's
    /// start (the role's lock wait included), and never past the invocation's own
    /// deadline ([`within_invocation`]: a batch's earlier requests used some). What
    /// is not done then is reported `partial`, and the request retried (a retry
    /// provisions again).
    pub identity_center_wait: Duration,
    /// The SCP variant: the id of cutoff's own service control policy, where an
    /// Identity Center user's deny goes instead of the permission sets' inline
    /// policies (None: the permission sets).
    pub identity_center_scp: Option<String>,
    /// The Organization's management account, where the SCP variant's role lives: no
    /// SCP reaches it, so a finding there is not contained by the SCP.
    pub management_account: Option<cutoff_domain::principal::Account>,
    /// How long it waits for one permission set's lock; past half of its time it
    /// waits for none (a set whose lock is held is then not written, and retried).
    pub identity_center_lock_wait: Duration,
    /// Between two reads of a provisioning's status.
    pub identity_center_poll: Duration,
}

impl Default for RevokeConfig {
    fn default() -> Self {
        Self {
            protection: cutoff_domain::settings::TriageConfig::default().protection,
            accounts: None,
            max_revocations_per_account_hour: None,
            max_revocations_per_action_hour: None,
            partition: Partition::Aws,
            margin: chrono::Duration::seconds(1),
            retry: RetryPolicy::default(),
            verify_attempts: 5,
            verify_delay: Duration::from_millis(250),
            fallback_path: IamPath::parse("/cutoff/").unwrap_or_else(|_| IamPath::root()),
            honour_protected_tag: false,
            lock_lease: chrono::Duration::seconds(60),
            lock_wait: Duration::from_secs(30),
            dedupe_window: chrono::Duration::hours(1),
            self_check: None,
            follow_up_budget: Duration::from_secs(30),
            follow_up_deadline: Duration::from_secs(50),
            identity_center_wait: Duration::from_secs(50),
            identity_center_lock_wait: Duration::from_secs(5),
            identity_center_scp: None,
            management_account: None,
            identity_center_poll: Duration::from_secs(2),
        }
    }
}

/// The first 128 bits of SHA-256, in hex: a bounded key for an unbounded id.
fn short_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The deny state of one principal, for `cutoff status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenyState {
    pub cutoff: Cutoff,
    /// Where it lives: an inline policy name or the managed policy ARN.
    pub policy: String,
    pub age_seconds: i64,
    /// Whether a session issued before the cutoff could still be alive, i.e. whether
    /// the deny still matters.
    pub still_effective: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionDenyState {
    pub userid: String,
    #[serde(flatten)]
    pub deny: DenyState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub target: Target,
    pub owner: Owner,
    pub role_wide: Option<DenyState>,
    pub sessions: Vec<SessionDenyState>,
    pub api_calls: u32,
    pub error: Option<OutcomeError>,
}

/// Why a step stopped the workflow.
pub(super) struct Stop {
    status: Status,
    /// Why it failed; None for a stop that is not a failure (protected, unmodifiable).
    kind: Option<FailureKind>,
    message: String,
}

impl Stop {
    fn failed(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            status: Status::Failed,
            kind: Some(kind),
            message: message.into(),
        }
    }

    fn with(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            kind: None,
            message: message.into(),
        }
    }
}

impl From<AwsError> for Stop {
    fn from(err: AwsError) -> Self {
        Stop::failed(err.kind.into(), err.to_string())
    }
}

/// What the outcome reports however the request ends, filled in by the steps as they
/// learn it: a refusal or a failure still names the principal resolved, tells its
/// owner, and lists what was written before it.
#[derive(Default)]
pub(super) struct Record {
    /// The target as the outcome names it, when not the request's (an instance
    /// profile's role).
    shown: Option<Target>,
    owner: Owner,
    /// The cutoff in force before, once read (by a release, which may then refuse).
    previous: Option<Cutoff>,
    actions: Vec<String>,
    other_access: Vec<String>,
}

/// What a request that went through did: the fields of its outcome.
pub(super) struct Done {
    status: Status,
    detail: String,
    cutoff: Option<Cutoff>,
    previous: Option<Cutoff>,
    policy: Option<String>,
    scope: Scope,
    still_works: Vec<StillWorks>,
    /// A partial revocation's error: what still works.
    error: Option<OutcomeError>,
    /// An Identity Center user's containment.
    identity_center: Option<cutoff_domain::identity_center::SsoContainment>,
}

impl Done {
    /// A status and its words, with no cutoff in force, no policy, nothing still
    /// working: what a release comes to.
    fn said(status: Status, detail: String, scope: Scope) -> Self {
        Self {
            status,
            detail,
            cutoff: None,
            previous: None,
            policy: None,
            scope,
            still_works: Vec::new(),
            error: None,
            identity_center: None,
        }
    }
}

/// A request's outcome, and when the revoker verified the deny it reports: set for an
/// `applied` outcome (never a dry run) of this run, not for one answered from the
/// ledger.
pub(crate) struct Handled {
    pub outcome: Outcome,
    pub verified_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What handling a group of requests gave: each member's outcome, in order.
#[derive(Default)]
pub(crate) struct Group {
    pub members: Vec<Handled>,
    /// Whether the group's write ran (a member was not applied before).
    pub ran: bool,
    /// The calls the group's run made (once for the group).
    pub api_calls: u32,
}

impl Handled {
    fn unverified(outcome: Outcome) -> Self {
        Self {
            outcome,
            verified_at: None,
        }
    }
}

/// The revoker: account access, a clock, and the rules.
pub struct Revoker<A, K, L = NoLedger> {
    pub access: A,
    pub clock: K,
    pub config: RevokeConfig,
    /// Audit trail, idempotency and the per-principal lock ([`cutoff_aws::dynamodb`]).
    pub ledger: L,
    /// The opt-in Identity Center integration (None: an Identity Center user's
    /// finding is an alert with the remedy).
    pub identity_center: Option<Arc<dyn Directory>>,
}

/// How long a deactivated key may still mint sessions (`GetSessionToken`) while IAM
/// propagates the change (eventually consistent, "within seconds"): the cutoff raised
/// after a deactivation covers this much more.
pub const KEY_DEACTIVATION_PROPAGATION: chrono::Duration = chrono::Duration::seconds(10);

impl<A: AccountAccess, K: Clock> Revoker<A, K> {
    pub fn new(access: A, clock: K, config: RevokeConfig) -> Self {
        Self {
            access,
            clock,
            config,
            ledger: NoLedger,
            identity_center: None,
        }
    }
}

impl<A: AccountAccess, K: Clock, L: Ledger> Revoker<A, K, L> {
    /// The same revoker, writing through `ledger`: audit, idempotency, lock.
    pub fn with_ledger<M: Ledger>(self, ledger: M) -> Revoker<A, K, M> {
        Revoker {
            access: self.access,
            clock: self.clock,
            config: self.config,
            ledger,
            identity_center: self.identity_center,
        }
    }

    /// The same revoker, containing Identity Center users through `directory`.
    pub fn with_identity_center(mut self, directory: Arc<dyn Directory>) -> Self {
        self.identity_center = Some(directory);
        self
    }

    /// Handles a revoke or release request; `status` requests get a
    /// [`StatusReport`] from [`Revoker::status`] instead.
    ///
    /// With a ledger: a request that writes holds the principal's lock from before
    /// the policy is read until after the write is verified; a finding already applied
    /// to the principal within the dedupe window is not applied again; every request
    /// and its outcome are recorded. A ledger that cannot be reached does not stop a
    /// revocation (it is written without the lock, and the outcome says so) but does
    /// stop a release (removals fail closed: retried later); a lock held by another
    /// writer past `lock_wait` fails the request so that it is retried.
    pub async fn handle(&self, request: &RevocationRequest, request_id: &str) -> Outcome {
        self.handle_verified(request, request_id).await.outcome
    }

    /// [`Revoker::handle`], with when the deny was verified (the time-to-contain).
    pub(crate) async fn handle_verified(
        &self,
        request: &RevocationRequest,
        request_id: &str,
    ) -> Handled {
        let mut group = self.handle_group(&[(request_id, request)], |_| None).await;
        group.members.pop().unwrap_or_else(|| {
            Handled::unverified(Outcome::for_request(request, Status::Failed, "no outcome"))
        })
    }

    /// The requests of one batch about one principal (same target, scope, source and
    /// action), handled as one: one lock, one check of each one's idempotency mark, one
    /// write covering the ones not applied before (`fold` makes that request of them;
    /// `None` takes the first), one closing that records each. The outcomes are the
    /// members', in order; `ran` says whether the write ran (some member was new).
    pub(crate) async fn handle_group(
        &self,
        members: &[(&str, &RevocationRequest)],
        fold: impl FnOnce(&[&RevocationRequest]) -> Option<RevocationRequest>,
    ) -> Group {
        let started = self.clock.now();
        let Some(&(_, first)) = members.first() else {
            return Group::default();
        };
        let deadline = identity_center::deadline_from_now(self.config.identity_center_wait);
        let calls: Arc<CallCounter> = Arc::default();
        let mut record = Record::default();
        // Scope: an account outside the configured list is refused before any call.
        let scoped = self
            .refuse_account(first)
            .and_then(|()| match first.action {
                ManualAction::Revoke => Ok(Purpose::Revoke),
                ManualAction::Release => Ok(Purpose::LiftOrRead),
                ManualAction::Status | ManualAction::History => Err(Stop::failed(
                    FailureKind::InvalidRequest,
                    "status and history requests are answered with a report, not an outcome",
                )),
            });
        let purpose = match scoped {
            Ok(purpose) => purpose,
            Err(stop) => {
                let outcome = self.report(first, &calls, record, Err(stop));
                return self.refused(members, &outcome).await;
            }
        };
        // The part of resolving the lock needs first: the lock of an instance
        // profile is its role's, the principal the sweeper and a revocation by name
        // lock.
        let located_early = if !first.dry_run
            && self.ledger.enabled()
            && first.target.kind == TargetKind::InstanceProfile
        {
            let request_id = members[0].0;
            Some(
                self.locate(first, request_id, &calls, purpose, &mut record)
                    .await,
            )
        } else {
            None
        };
        let lock = match &located_early {
            Some(Ok(located)) => LockTarget::role_behind(&first.target, &located.principal.name),
            // Refused or failed: the request reports that without writing, and the
            // lock on the profile's own name is as good as any.
            _ => LockTarget::of(&first.target),
        };
        // Guard: the lock, the idempotency marks, the key records.
        let admitted = match self.guard(members, lock).await {
            Ok(admitted) => admitted,
            Err(stop) => {
                let outcome = self.report(first, &calls, record, Err(stop));
                return self.refused(members, &outcome).await;
            }
        };
        // Resolve and act for the members not applied before: an earlier outcome
        // answers for the others, with no call (and no verification of this run's).
        let fresh: Vec<(&str, &RevocationRequest)> = admitted
            .members
            .iter()
            .filter(|m| m.earlier.is_none())
            .map(|m| (m.request_id, m.request))
            .collect();
        let mut verified_at = None;
        let mut api_calls = 0;
        let shared = match fresh.first() {
            None => None,
            Some(&(request_id, lead)) => {
                let requests: Vec<&RevocationRequest> = fresh.iter().map(|(_, r)| *r).collect();
                let folded = if requests.len() > 1 {
                    fold(&requests)
                } else {
                    None
                };
                let request = folded.as_ref().unwrap_or(lead);
                let known = admitted.known(self.clock.now());
                let result = async {
                    let located = match located_early {
                        Some(located) => located?,
                        None => {
                            self.locate(request, request_id, &calls, purpose, &mut record)
                                .await?
                        }
                    };
                    let resolved = self.inspect(request, located, purpose, &mut record).await?;
                    match purpose {
                        _ if resolved.identity_center => {
                            self.contain_sso_user(
                                request,
                                request_id,
                                &resolved,
                                purpose,
                                deadline,
                                &calls,
                                &mut record,
                            )
                            .await
                        }
                        Purpose::Revoke => {
                            self.revoke(request, resolved, &known, &mut record).await
                        }
                        Purpose::LiftOrRead => self.release(request, resolved, &mut record).await,
                    }
                }
                .await;
                let outcome = self.report(request, &calls, record, result);
                // `applied` is only reported once the deny was read back (and the
                // keys in scope set Inactive): this is when the containment was
                // verified, before the ledger's bookkeeping below.
                if outcome.status == Status::Applied && !outcome.dry_run {
                    verified_at = Some(self.clock.now());
                }
                api_calls = outcome.api_calls;
                Some(outcome)
            }
        };
        let mut outcomes: Vec<Outcome> = admitted
            .members
            .iter()
            .map(|member| match (&member.earlier, &shared) {
                (Some(entry), _) => {
                    let mut outcome = self.duplicate_of(member.request, entry);
                    // Only what finding the lock took (an instance profile's role).
                    outcome.api_calls = if shared.is_some() { 0 } else { calls.get() };
                    outcome
                }
                (None, Some(shared)) => shared.for_member(member.request),
                // Unreachable: a member without an earlier entry is fresh.
                (None, None) => Outcome::for_request(member.request, Status::Failed, "no outcome"),
            })
            .collect();
        let answered_before: Vec<bool> = admitted
            .members
            .iter()
            .map(|m| m.earlier.is_some())
            .collect();
        // Close: the key records, the marks, the audit entries, the lock.
        self.close(admitted, &mut outcomes, started).await;
        let members = outcomes
            .into_iter()
            .zip(answered_before)
            .map(|(outcome, before)| Handled {
                verified_at: verified_at.filter(|_| !before),
                outcome,
            })
            .collect();
        Group {
            members,
            ran: shared.is_some(),
            api_calls: api_calls.max(calls.get()),
        }
    }

    /// A group refused before it acted: each member's outcome (the refusal, with its
    /// own trigger) recorded on its own.
    async fn refused(&self, members: &[(&str, &RevocationRequest)], outcome: &Outcome) -> Group {
        let mut handled = Vec::with_capacity(members.len());
        for &(request_id, request) in members {
            let outcome = outcome.for_member(request);
            self.audit(request_id, request, &outcome).await;
            handled.push(Handled::unverified(outcome));
        }
        Group {
            members: handled,
            ran: false,
            api_calls: outcome.api_calls,
        }
    }

    /// The outcome of a request: what it did, or why it stopped, with what the steps
    /// recorded on the way.
    fn report(
        &self,
        request: &RevocationRequest,
        calls: &CallCounter,
        record: Record,
        result: Result<Done, Stop>,
    ) -> Outcome {
        let mut outcome = Outcome::for_request(request, Status::Failed, "");
        if let Some(shown) = record.shown {
            outcome.target = Some(shown);
        }
        outcome.owner = record.owner;
        outcome.previous_cutoff = record.previous;
        outcome.actions = record.actions;
        outcome.other_access = record.other_access;
        outcome.api_calls = calls.get();
        match result {
            Ok(done) => {
                outcome.status = done.status;
                outcome.detail = done.detail;
                outcome.cutoff = done.cutoff;
                outcome.previous_cutoff = done.previous.or(outcome.previous_cutoff);
                outcome.policy = done.policy;
                outcome.scope = done.scope;
                outcome.still_works = done.still_works;
                outcome.error = done.error;
                outcome.identity_center = done.identity_center;
            }
            Err(stop) => {
                outcome.status = stop.status;
                outcome.detail = match stop.status {
                    Status::Failed => format!("failed: {}", stop.message),
                    _ => stop.message.clone(),
                };
                outcome.error = stop.kind.map(|kind| OutcomeError {
                    kind,
                    message: stop.message,
                });
            }
        }
        if !outcome.actions.is_empty()
            && !outcome.dry_run
            && !matches!(outcome.status, Status::Failed)
        {
            outcome.propagation = Some("eventual".to_owned());
        }
        outcome
    }
}

#[cfg(test)]
mod tests;
