//! Identity Center users (opt-in): a finding on a permission set's role session
//! (`AWSReservedSSO_<permission set>_<hex>`, at the path IAM reserves for Identity
//! Center) names a person, who mints fresh role credentials from their access-portal
//! session or cached SSO token after any `TokenIssueTime` cutoff. Following AWS's
//! guidance on revoking sessions created by permission sets, cutoff denies that user
//! everything, by their identity store id and with no time condition, in the inline
//! policy of every permission set they can use, provisions each to the accounts they
//! use it in, waits for the provisioning and reads the policy back. The deny stays
//! until an operator releases it: the sweeper never reads permission sets.
//!
//! Order, and why: the user is resolved through the identity store (the session name
//! only says whom to look up) and must hold the finding's permission set in the
//! finding's account, or nothing is written (a name that matches nobody entitled
//! there is not a reason to lock a person out); the breaker; then each permission set
//! under its own lock in the ledger (two users contained at once write the same
//! inline policy: read, add, put must not interleave); provisioning last, since it is
//! what reaches the accounts, and its wait bounded (what is still provisioning is
//! `partial` and the request retried).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cutoff_aws::identity_center::{Assignee, Call, Directory, Instance, Page, Provisioning};
use cutoff_aws::retry::{CallCounter, with_retries};
use cutoff_aws::{AccountAccess, AwsError};
use cutoff_domain::clock::Clock;
use cutoff_domain::event::Scope;
use cutoff_domain::identity_center::{
    self as ic, ACCOUNTS_LISTED, DISABLE_USER, IdentityStoreUserId, InlineChange,
    PermissionSetDeny, PermissionSetState, SsoAction, SsoContainment,
};
use cutoff_domain::outcome::{FailureKind, RevocationRequest, Status, StillWorks};
use cutoff_domain::principal::Account;
use cutoff_domain::triage::Source;

use super::resolve::{Purpose, Resolved};
use super::{Done, Record, Revoker, Stop};
use crate::principal_lock::{self, LockRequest};
use cutoff_aws::dynamodb::Ledger;

tokio::task_local! {
    /// When the current invocation's requests must be done ([`within_invocation`]).
    static INVOCATION_DEADLINE: tokio::time::Instant;
    /// When the current Identity Center containment must be done: every call it
    /// makes asks first ([`Revoker::ask`]).
    static CONTAINMENT_DEADLINE: tokio::time::Instant;
}

/// Runs `work` (a batch's requests) bound by `deadline`: an Identity Center
/// containment in it ends by then, whatever its own budget.
pub async fn within_invocation<F: std::future::Future>(
    deadline: tokio::time::Instant,
    work: F,
) -> F::Output {
    INVOCATION_DEADLINE.scope(deadline, work).await
}

/// `budget` from now, or the invocation's deadline if that is sooner.
pub(super) fn deadline_from_now(budget: std::time::Duration) -> tokio::time::Instant {
    let own = tokio::time::Instant::now() + budget;
    INVOCATION_DEADLINE
        .try_with(|d| *d)
        .map_or(own, |invocation| own.min(invocation))
}

/// Below this much time left, a call is tried once, not retried with backoff.
const RETRY_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Actions listed in an outcome at most.
const ACTIONS_LISTED: usize = 100;

/// Pages read of any one list before it is called endless.
const MAX_PAGES: usize = 100;

/// The user behind the session, resolved.
struct SsoUser {
    name: String,
    id: IdentityStoreUserId,
    instance: Instance,
}

/// One permission set's work, as it goes.
struct SetWork {
    arn: String,
    name: String,
    accounts: Vec<Account>,
    state: PermissionSetState,
    note: Option<String>,
    /// Why it failed, as the outcome's error kind says it.
    kind: Option<FailureKind>,
    /// A provisioning not yet finished: its request id.
    pending: Option<String>,
    /// A release found no statement of the user's in it (it is not listed).
    held_nothing: bool,
}

/// The circuit breaker, passed once per request, before its first write.
#[derive(Default)]
struct Breaker {
    passed: bool,
    /// What it could not check (the ledger unreachable), for the outcome.
    notes: Vec<String>,
}

/// Why nothing is written when the user does not hold the finding's permission set
/// in the finding's account.
fn not_entitled(request: &RevocationRequest, user: &SsoUser, sso: &ic::SsoSession) -> Stop {
    Stop::failed(
        FailureKind::PrincipalMismatch,
        format!(
            "Identity Center user `{}` ({}) is not assigned the permission set {} in {}, whose role's session the finding names: either the session is not theirs, or the assignment was removed since (then the session may still work until it expires: deny the user by hand); nothing written",
            user.name, user.id, sso.permission_set, request.target.account
        ),
    )
}

/// The lock of cutoff's service control policy (the SCP variant).
fn scp_lock_key(policy_id: &str) -> String {
    format!("identity-center#scp#{policy_id}")
}

/// Who may have an Identity Center user denied everywhere: GuardDuty, which no member
/// account writes, or an operator AWS vouched for. A Security Hub finding can be
/// imported by any account of the Organization (naming a real permission-set role and
/// any user entitled there); a plain invoke's requester is only claimed; and a
/// CloudTrail rule matches one API call with no severity at all, too little to lock a
/// person out of every account (its role-wide cutoff is what a call earns).
fn trusted_for_identity_center(request: &RevocationRequest) -> bool {
    match request.trigger.source {
        Source::GuardDuty => true,
        Source::Manual => request.trigger.requested_by_verified,
        _ => false,
    }
}

impl<A: AccountAccess, K: Clock, L: Ledger> Revoker<A, K, L> {
    fn directory(&self) -> Result<&dyn Directory, Stop> {
        self.identity_center.as_deref().ok_or_else(|| {
            Stop::failed(
                FailureKind::InvalidRequest,
                "the Identity Center integration is not configured",
            )
        })
    }

    /// One directory call, retried and counted, within the containment's deadline:
    /// none starts after it, and close to it a call is not retried.
    async fn ask<'a, T>(
        &self,
        calls: &CallCounter,
        op: impl FnMut() -> Call<'a, T>,
    ) -> Result<T, AwsError> {
        let left = CONTAINMENT_DEADLINE
            .try_with(|d| d.saturating_duration_since(tokio::time::Instant::now()))
            .ok();
        let policy = match left {
            Some(left) if left.is_zero() => {
                return Err(AwsError::new(
                    cutoff_aws::ErrorKind::Transient,
                    "cutoff",
                    "in an Identity Center containment",
                    "out of time before the function's timeout; the request is retried",
                ));
            }
            Some(left) if left < RETRY_TIME => cutoff_aws::retry::RetryPolicy {
                max_attempts: 1,
                ..self.config.retry
            },
            _ => self.config.retry,
        };
        with_retries(&policy, calls, op).await
    }

    /// Every page of a list.
    async fn every_page<'a, T>(
        &self,
        calls: &CallCounter,
        what: &str,
        page: impl Fn(Option<String>) -> Call<'a, Page<T>>,
    ) -> Result<Vec<T>, Stop> {
        let mut items = Vec::new();
        let mut next = None;
        for _ in 0..MAX_PAGES {
            let got = self.ask(calls, || page(next.clone())).await?;
            items.extend(got.items);
            match got.next {
                Some(token) => next = Some(token),
                None => return Ok(items),
            }
        }
        Err(Stop::failed(
            FailureKind::Malformed,
            format!("{what}: more than {MAX_PAGES} pages; nothing written"),
        ))
    }

    /// Who the session's user is, through the identity store.
    async fn sso_user(
        &self,
        request: &RevocationRequest,
        role: &cutoff_domain::principal::PrincipalName,
        calls: &CallCounter,
    ) -> Result<(SsoUser, ic::SsoSession), Stop> {
        let directory = self.directory()?;
        let Some(session) = request.target.session.as_ref() else {
            return Err(Stop::with(
                Status::Unmodifiable,
                format!(
                    "{}: the finding names no session, so not which Identity Center user; deny the user by hand in their permission sets' inline policies, and {DISABLE_USER}",
                    request.target
                ),
            ));
        };
        let sso = ic::sso_session(role, session).ok_or_else(|| {
            Stop::with(
                Status::Unmodifiable,
                format!("{role} is at Identity Center's path but not named as a permission set's role; nothing written"),
            )
        })?;
        let instances = self
            .every_page(calls, "sso:ListInstances", |next| directory.instances(next))
            .await?;
        let instance = match <[Instance; 1]>::try_from(instances) {
            Ok([one]) => one,
            Err(all) => {
                return Err(Stop::failed(
                    FailureKind::Refused,
                    format!(
                        "the Identity Center role sees {} instances, not one; nothing written",
                        all.len()
                    ),
                ));
            }
        };
        let store = instance.identity_store_id.clone();
        // A release may name the user by their identity store id (the outcome says
        // it): a user renamed or deleted since is released all the same.
        let by_id = (request.action == cutoff_domain::event::ManualAction::Release)
            .then(|| IdentityStoreUserId::parse(&sso.user_name).ok())
            .flatten();
        let id = match by_id {
            Some(id) => Some(id),
            None => {
                self.ask(calls, || directory.user_id(&store, &sso.user_name))
                    .await?
            }
        };
        let id = id.ok_or_else(|| {
                Stop::failed(
                    FailureKind::NotFound,
                    format!(
                        "no Identity Center user is named `{}` (the session of {role}): nothing written",
                        sso.user_name
                    ),
                )
            })?;
        Ok((
            SsoUser {
                name: sso.user_name.clone(),
                id,
                instance,
            },
            sso,
        ))
    }

    /// The permission sets the user can use and the accounts they can use each in,
    /// directly or through their groups.
    async fn sso_assignments(
        &self,
        user: &SsoUser,
        calls: &CallCounter,
    ) -> Result<BTreeMap<String, BTreeSet<Account>>, Stop> {
        let directory = self.directory()?;
        let store = &user.instance.identity_store_id;
        let instance = &user.instance.arn;
        let groups = self
            .every_page(
                calls,
                "identitystore:ListGroupMembershipsForMember",
                |next| directory.groups_of(store, &user.id, next),
            )
            .await?;
        let assignees: Vec<Assignee> = std::iter::once(Assignee::User(user.id.clone()))
            .chain(groups.into_iter().map(Assignee::Group))
            .collect();
        let mut sets: BTreeMap<String, BTreeSet<Account>> = BTreeMap::new();
        for assignee in &assignees {
            let assignments = self
                .every_page(calls, "sso:ListAccountAssignmentsForPrincipal", |next| {
                    directory.assignments(instance, assignee, next)
                })
                .await?;
            for a in assignments {
                sets.entry(a.permission_set_arn)
                    .or_default()
                    .insert(a.account);
            }
        }
        Ok(sets)
    }

    /// An Identity Center user's containment (a revocation) or its release, within
    /// `deadline` (the request's start plus `identity_center_wait`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn contain_sso_user<C>(
        &self,
        request: &RevocationRequest,
        request_id: &str,
        resolved: &Resolved<C>,
        purpose: Purpose,
        deadline: tokio::time::Instant,
        calls: &Arc<CallCounter>,
        record: &mut Record,
    ) -> Result<Done, Stop> {
        CONTAINMENT_DEADLINE
            .scope(
                deadline,
                self.contain_sso_user_by(
                    request, request_id, resolved, purpose, deadline, calls, record,
                ),
            )
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn contain_sso_user_by<C>(
        &self,
        request: &RevocationRequest,
        request_id: &str,
        resolved: &Resolved<C>,
        purpose: Purpose,
        deadline: tokio::time::Instant,
        calls: &Arc<CallCounter>,
        record: &mut Record,
    ) -> Result<Done, Stop> {
        if purpose == Purpose::Revoke && !trusted_for_identity_center(request) {
            return Err(Stop::with(
                Status::Alerted,
                format!(
                    "{}: an Identity Center user is denied everywhere only on GuardDuty's word or an operator's through the operator path; this request came from {}: alert only; contain the user by hand, or with `cutoff revoke` through the operator path",
                    request.target,
                    request.trigger.source.as_str()
                ),
            ));
        }
        let (user, sso) = self
            .sso_user(request, &resolved.principal.name, calls)
            .await?;
        let directory = self.directory()?;
        let instance = user.instance.arn.clone();
        let assigned = self.sso_assignments(&user, calls).await?;
        if let Some(policy_id) = self.config.identity_center_scp.clone() {
            if purpose == Purpose::Revoke {
                self.check_entitled(request, &user, &sso, &assigned, calls)
                    .await?;
            }
            return self
                .contain_in_scp(
                    request,
                    (request_id, &policy_id),
                    &user,
                    purpose,
                    calls,
                    record,
                )
                .await;
        }
        let mut work = match purpose {
            Purpose::Revoke => {
                let mut work = Vec::new();
                let mut finding_set = None;
                for (arn, accounts) in assigned {
                    let name = self
                        .ask(calls, || directory.permission_set_name(&instance, &arn))
                        .await?;
                    if name == sso.permission_set && accounts.contains(&request.target.account) {
                        finding_set = Some(work.len());
                    }
                    work.push(SetWork::new(
                        arn,
                        name,
                        accounts.into_iter().collect(),
                        purpose,
                    ));
                }
                let Some(first) = finding_set else {
                    return Err(not_entitled(request, &user, &sso));
                };
                // The set the finding is about first: it is the one in use.
                work.swap(0, first);
                work
            }
            // Wherever the deny is, and every set the user holds now (an earlier
            // release's provisioning may not have finished: provisioned again).
            Purpose::LiftOrRead => {
                let all = self
                    .every_page(calls, "sso:ListPermissionSets", |next| {
                        directory.permission_sets(&instance, next)
                    })
                    .await?;
                let mut work = Vec::new();
                for arn in all {
                    let holds = match self
                        .ask(calls, || directory.inline_policy(&instance, &arn))
                        .await
                    {
                        Ok(document) => {
                            document.is_some_and(|d| ic::holds_user_statement(&d, &user.id))
                        }
                        // Read again under the lock: a set it cannot read is one to try.
                        Err(_) => true,
                    };
                    if holds || assigned.contains_key(&arn) {
                        let accounts = assigned.get(&arn).cloned().unwrap_or_default();
                        work.push(SetWork::new(
                            arn,
                            String::new(),
                            accounts.into_iter().collect(),
                            purpose,
                        ));
                    }
                }
                work
            }
        };
        let locks_until = deadline - self.config.identity_center_wait / 2;
        let mut breaker = Breaker::default();
        for set in &mut work {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                set.fail_as(
                    FailureKind::Transient,
                    "not reached before cutoff's time ran out; the request is retried",
                );
                continue;
            }
            let lock_wait = if now < locks_until {
                self.config.identity_center_lock_wait
            } else {
                std::time::Duration::ZERO
            };
            let written = self
                .write_set(
                    set,
                    &user,
                    purpose,
                    request,
                    (request_id, lock_wait),
                    &mut breaker,
                    calls,
                    record,
                )
                .await;
            // Err: the breaker refused before the first write, so nothing is written.
            written?;
        }
        self.await_provisioning(&mut work, &instance, deadline, calls)
            .await;
        if !request.dry_run {
            self.read_sets_back(&mut work, &user, purpose, calls).await;
        }
        // Two actions a set: an outcome travels through EventBridge (256 KB).
        if record.actions.len() > ACTIONS_LISTED {
            let more = record.actions.len() - ACTIONS_LISTED;
            record.actions.truncate(ACTIONS_LISTED);
            record.actions.push(format!("… and {more} more"));
        }
        let mut done = self.sso_done(request, &user, work, purpose);
        if !breaker.notes.is_empty() {
            done.detail = format!("{} ({})", done.detail, breaker.notes.join("; "));
        }
        Ok(done)
    }

    /// That the user holds the finding's permission set in the finding's account
    /// (the SCP variant asks it apart from the permission sets' work).
    async fn check_entitled(
        &self,
        request: &RevocationRequest,
        user: &SsoUser,
        sso: &ic::SsoSession,
        assigned: &BTreeMap<String, BTreeSet<Account>>,
        calls: &CallCounter,
    ) -> Result<(), Stop> {
        let directory = self.directory()?;
        for (arn, accounts) in assigned {
            if !accounts.contains(&request.target.account) {
                continue;
            }
            let name = self
                .ask(calls, || {
                    directory.permission_set_name(&user.instance.arn, arn)
                })
                .await?;
            if name == sso.permission_set {
                return Ok(());
            }
        }
        Err(not_entitled(request, user, sso))
    }

    /// Whether cutoff's SCP is attached to `account` or to an OU or root above it.
    async fn scp_reaches(
        &self,
        policy_id: &str,
        account: &Account,
        calls: &CallCounter,
    ) -> Result<bool, Stop> {
        let directory = self.directory()?;
        let targets: BTreeSet<String> = self
            .every_page(calls, "organizations:ListTargetsForPolicy", |next| {
                directory.policy_targets(policy_id, next)
            })
            .await?
            .into_iter()
            .collect();
        let mut id = account.to_string();
        // An account, at most five levels of OUs, the root.
        for _ in 0..8 {
            if targets.contains(&id) {
                return Ok(true);
            }
            match self.ask(calls, || directory.parent(&id)).await? {
                Some(parent) => id = parent,
                None => return Ok(false),
            }
        }
        Ok(false)
    }

    /// The SCP variant: the user's deny in (or out of) cutoff's service control
    /// policy, under its lock, read back. No provisioning: Organizations applies it to
    /// every member account (never to the management account: no SCP reaches it).
    async fn contain_in_scp(
        &self,
        request: &RevocationRequest,
        (request_id, policy_id): (&str, &str),
        user: &SsoUser,
        purpose: Purpose,
        calls: &CallCounter,
        record: &mut Record,
    ) -> Result<Done, Stop> {
        let directory = self.directory()?;
        let key = scp_lock_key(policy_id);
        // A nonce of this writer's own: a redelivery of the same message must wait.
        let holder = super::guard::lease_holder(request_id);
        let locked = if self.ledger.enabled() && !request.dry_run {
            let lock = LockRequest {
                key: &key,
                holder: &holder,
                lease: self.config.lock_lease,
                wait: self.config.identity_center_lock_wait,
            };
            match principal_lock::acquire(&self.ledger, &self.clock, &lock).await {
                Ok(Some(_)) => true,
                Ok(None) => {
                    return Err(Stop::failed(
                        FailureKind::Transient,
                        format!(
                            "another writer holds the lock of {policy_id}: not written; the request is retried"
                        ),
                    ));
                }
                // One policy holds every contained user: a put from an unlocked read
                // could undo another containment. Not written; retried.
                Err(e) => {
                    return Err(Stop::failed(
                        FailureKind::Transient,
                        format!(
                            "the ledger is unreachable, so the lock of {policy_id} cannot be taken: not written ({e}); the request is retried"
                        ),
                    ));
                }
            }
        } else {
            false
        };
        let mut notes = Vec::new();
        let written = async {
            let existing = self
                .ask(calls, || directory.service_control_policy(policy_id))
                .await?;
            let change = match purpose {
                Purpose::Revoke => ic::scp_with_user_denied(&existing, &user.id),
                Purpose::LiftOrRead => ic::scp_without_user(&existing, &user.id),
            }
            .map_err(|e| {
                let kind = match e {
                    ic::InlineError::TooLarge { .. } => FailureKind::Quota,
                    ic::InlineError::Unreadable(_) => FailureKind::UnreadablePolicy,
                };
                Stop::failed(kind, format!("{policy_id}: {e}; nothing written"))
            })?;
            let InlineChange::Put(document) = change else {
                return Ok(false);
            };
            if purpose == Purpose::Revoke {
                self.pass_breaker(request, &mut notes).await?;
            }
            let verb = match purpose {
                Purpose::Revoke => "deny",
                Purpose::LiftOrRead => "remove the deny of",
            };
            record.actions.push(format!(
                "{verb} Identity Center user {} in service control policy {policy_id}",
                user.id
            ));
            if !request.dry_run {
                self.ask(calls, || {
                    directory.update_service_control_policy(policy_id, &document)
                })
                .await?;
            }
            Ok::<bool, Stop>(true)
        }
        .await;
        if locked && let Err(e) = self.ledger.release(&key, &holder).await {
            tracing::warn!(error = %e, key, "could not give back the SCP's lock; it expires");
        }
        let changed = written?;
        let action = match purpose {
            Purpose::Revoke => SsoAction::Deny,
            Purpose::LiftOrRead => SsoAction::Release,
        };
        let who = format!("Identity Center user `{}` ({})", user.name, user.id);
        let (status, state, mut detail) = if request.dry_run {
            (
                Status::DryRun,
                PermissionSetState::WouldDeny,
                format!("dry run: service control policy {policy_id} would change for {who}"),
            )
        } else {
            let after = self
                .ask(calls, || directory.service_control_policy(policy_id))
                .await?;
            let denies = ic::denies_user(&after, &user.id);
            match (purpose, denies) {
                (Purpose::Revoke, true) => (
                    Status::Applied,
                    PermissionSetState::Denied,
                    format!(
                        "{who} denied everything, with no time condition, in every member account by cutoff's service control policy {policy_id}{} (read back; no SCP reaches the management account); {DISABLE_USER}",
                        if changed { "" } else { ", which already did" }
                    ),
                ),
                (Purpose::LiftOrRead, false) => (
                    Status::Released,
                    PermissionSetState::Released,
                    if changed {
                        format!(
                            "cutoff's deny of {who} removed from service control policy {policy_id}"
                        )
                    } else {
                        format!("service control policy {policy_id} held no deny of {who}")
                    },
                ),
                (Purpose::Revoke, false) => {
                    return Err(Stop::failed(
                        FailureKind::Unverified,
                        format!(
                            "{policy_id} read back without the deny of {who} (another writer replaced it?); retried"
                        ),
                    ));
                }
                (Purpose::LiftOrRead, true) => {
                    return Err(Stop::failed(
                        FailureKind::Unverified,
                        format!(
                            "{policy_id} read back with the deny of {who} still in it; retried"
                        ),
                    ));
                }
            }
        };
        if !notes.is_empty() {
            detail = format!("{detail} ({})", notes.join("; "));
        }
        // Where the SCP does not reach, the session is not stopped: the management
        // account (no SCP reaches it), or an account no target of the policy is above.
        let unreached = if purpose == Purpose::Revoke && status == Status::Applied {
            if self.config.management_account.as_ref() == Some(&request.target.account) {
                Some((
                    FailureKind::Refused,
                    "no service control policy reaches the Organization's management account: deny the user there by hand (the inline policy of the permission set), and disable them".to_owned(),
                ))
            } else {
                match self
                    .scp_reaches(policy_id, &request.target.account, calls)
                    .await
                {
                    Ok(true) => None,
                    Ok(false) => Some((
                        FailureKind::Refused,
                        format!(
                            "{policy_id} is not attached to {} nor to any OU or root above it: attach it (to the root, say), and deny the user there by hand meanwhile",
                            request.target.account
                        ),
                    )),
                    Err(stop) => Some((
                        FailureKind::Unverified,
                        format!(
                            "whether {policy_id} reaches {} could not be read ({}); retried",
                            request.target.account, stop.message
                        ),
                    )),
                }
            }
        } else {
            None
        };
        let (status, still_works, error) = match unreached {
            Some((kind, why)) => {
                detail = format!("{detail}; but not in {}: {why}", request.target.account);
                (
                    Status::Partial,
                    vec![StillWorks {
                        credential: format!(
                            "{}'s sessions in account {}",
                            user.name, request.target.account
                        ),
                        why: why.clone(),
                    }],
                    Some(cutoff_domain::outcome::OutcomeError { kind, message: why }),
                )
            }
            None => (status, Vec::new(), None),
        };
        let mut done = Done::said(status, detail, Scope::Role);
        done.still_works = still_works;
        done.error = error;
        done.policy = Some(format!("service control policy {policy_id}"));
        done.identity_center = Some(SsoContainment {
            action,
            user_name: user.name.clone(),
            user_id: user.id.to_string(),
            instance_arn: user.instance.arn.clone(),
            permission_sets: Vec::new(),
            permission_sets_total: 0,
            service_control_policy: Some(ic::ScpDeny {
                policy_id: policy_id.to_owned(),
                state,
                note: None,
            }),
            to_do: DISABLE_USER.to_owned(),
        });
        Ok(done)
    }

    /// Writes (or, for a release, removes) the deny in one permission set under its
    /// lock, and provisions it to every account it is provisioned to. Err only when
    /// the circuit breaker refuses the request's first write.
    #[allow(clippy::too_many_arguments)]
    async fn write_set(
        &self,
        set: &mut SetWork,
        user: &SsoUser,
        purpose: Purpose,
        request: &RevocationRequest,
        (request_id, lock_wait): (&str, std::time::Duration),
        breaker: &mut Breaker,
        calls: &CallCounter,
        record: &mut Record,
    ) -> Result<(), Stop> {
        let directory = self.directory()?;
        let instance = &user.instance.arn;
        let key = format!("identity-center#{}", set.arn);
        let holder = super::guard::lease_holder(request_id);
        let locked = if self.ledger.enabled() && !request.dry_run {
            let lock = LockRequest {
                key: &key,
                holder: &holder,
                lease: self.config.lock_lease,
                wait: lock_wait,
            };
            match principal_lock::acquire(&self.ledger, &self.clock, &lock).await {
                Ok(Some(_)) => true,
                // Another containment or release writes this set: a put now could
                // overwrite its statement after its read-back. Not written; retried.
                Ok(None) => {
                    set.fail_as(
                        FailureKind::Transient,
                        "another writer holds its lock: not written; the request is retried",
                    );
                    return Ok(());
                }
                Err(_) if purpose == Purpose::LiftOrRead => {
                    // Removals fail closed: the release is retried.
                    set.fail_as(
                        FailureKind::Transient,
                        "the ledger is unreachable, so its lock cannot be taken: not released",
                    );
                    return Ok(());
                }
                // Containment first: written without the lock, and read back after.
                Err(_) => false,
            }
        } else {
            false
        };
        let written = self
            .change_set(set, user, purpose, request, breaker, calls, record)
            .await;
        if locked && let Err(e) = self.ledger.release(&key, &holder).await {
            tracing::warn!(error = %e, key, "could not give back a permission set's lock; it expires");
        }
        let Some(changed) = written? else {
            return Ok(());
        };
        // A set is provisioned again when its deny was already there (a revocation:
        // an earlier provisioning may have failed or still run) or it is one the user
        // holds (a release: likewise). Every account it is provisioned to, in one
        // call: the user's, and any where a live session outlived its assignment.
        let wanted = changed || purpose == Purpose::Revoke || !set.accounts.is_empty();
        if !wanted || request.dry_run {
            return Ok(());
        }
        record.actions.push(format!(
            "provision permission set {} to every account it is provisioned to",
            set.shown()
        ));
        match self
            .ask(calls, || directory.provision(instance, &set.arn, None))
            .await
        {
            Ok(Provisioning::Succeeded) => {}
            Ok(Provisioning::InProgress { request_id }) => set.pending = Some(request_id),
            Ok(Provisioning::Failed { reason }) => set.fail_as(
                FailureKind::Transient,
                &format!("provisioning failed: {reason}"),
            ),
            Err(e) => set.fail_as(e.kind.into(), &format!("provisioning failed: {e}")),
        }
        Ok(())
    }

    /// Reads, changes and puts one permission set's inline policy: Ok(Some(whether
    /// it changed)), Ok(None) when it could not (the set says why), Err when the
    /// breaker refuses the first write.
    #[allow(clippy::too_many_arguments)]
    async fn change_set(
        &self,
        set: &mut SetWork,
        user: &SsoUser,
        purpose: Purpose,
        request: &RevocationRequest,
        breaker: &mut Breaker,
        calls: &CallCounter,
        record: &mut Record,
    ) -> Result<Option<bool>, Stop> {
        let directory = self.directory()?;
        let instance = &user.instance.arn;
        let existing = match self
            .ask(calls, || directory.inline_policy(instance, &set.arn))
            .await
        {
            Ok(existing) => existing,
            Err(e) => {
                set.fail_as(e.kind.into(), &e.to_string());
                return Ok(None);
            }
        };
        let change = match purpose {
            Purpose::Revoke => ic::add_user_deny(existing.as_deref(), &user.id),
            Purpose::LiftOrRead => ic::remove_user_deny(existing.as_deref(), &user.id),
        };
        let change = match change {
            Ok(change) => change,
            Err(e) => {
                let kind = match e {
                    ic::InlineError::TooLarge { .. } => FailureKind::Quota,
                    ic::InlineError::Unreadable(_) => FailureKind::UnreadablePolicy,
                };
                set.fail_as(kind, &e.to_string());
                return Ok(None);
            }
        };
        if set.name.is_empty() {
            set.name = self
                .ask(calls, || directory.permission_set_name(instance, &set.arn))
                .await
                .unwrap_or_default();
        }
        if change == InlineChange::Unchanged {
            set.note = Some(match purpose {
                Purpose::Revoke => "already denied this user".to_owned(),
                Purpose::LiftOrRead => {
                    set.held_nothing = true;
                    "held no deny of this user".to_owned()
                }
            });
            return Ok(Some(false));
        }
        // A write that locks a person out of every account they use: the finding's
        // breaker budget, once, and only when something is to be written (a retry
        // that finds the deny in place spends none).
        if purpose == Purpose::Revoke && !breaker.passed {
            self.pass_breaker(request, &mut breaker.notes).await?;
            breaker.passed = true;
        }
        let verb = match purpose {
            Purpose::Revoke => "deny",
            Purpose::LiftOrRead => "remove the deny of",
        };
        record.actions.push(format!(
            "{verb} Identity Center user {} in the inline policy of permission set {}",
            user.id,
            set.shown()
        ));
        if request.dry_run {
            if purpose == Purpose::Revoke {
                set.state = PermissionSetState::WouldDeny;
            }
            return Ok(Some(true));
        }
        let result = match &change {
            InlineChange::Put(document) => {
                self.ask(calls, || {
                    directory.put_inline_policy(instance, &set.arn, document)
                })
                .await
            }
            InlineChange::Delete => {
                self.ask(calls, || directory.delete_inline_policy(instance, &set.arn))
                    .await
            }
            InlineChange::Unchanged => Ok(()),
        };
        Ok(match result {
            Ok(()) => Some(true),
            Err(e) => {
                set.fail_as(e.kind.into(), &e.to_string());
                None
            }
        })
    }

    /// Waits for the provisionings, until `deadline`: each round asks each pending
    /// one once, and none after the deadline.
    async fn await_provisioning(
        &self,
        work: &mut [SetWork],
        instance: &str,
        deadline: tokio::time::Instant,
        calls: &CallCounter,
    ) {
        let Ok(directory) = self.directory() else {
            return;
        };
        while work.iter().any(|s| s.pending.is_some()) {
            let next = tokio::time::Instant::now() + self.config.identity_center_poll;
            if next >= deadline {
                break;
            }
            tokio::time::sleep_until(next).await;
            for set in work.iter_mut() {
                let Some(id) = set.pending.take() else {
                    continue;
                };
                if tokio::time::Instant::now() >= deadline {
                    set.pending = Some(id);
                    continue;
                }
                match self
                    .ask(calls, || directory.provisioning(instance, &id))
                    .await
                {
                    Ok(Provisioning::Succeeded) => {}
                    Ok(Provisioning::InProgress { request_id }) => {
                        set.pending = Some(request_id);
                    }
                    Ok(Provisioning::Failed { reason }) => set.fail_as(
                        FailureKind::Transient,
                        &format!("provisioning failed: {reason}"),
                    ),
                    // Retryable errors were retried: what is left is not a state.
                    Err(e) if !e.is_retryable() => {
                        set.fail_as(e.kind.into(), &format!("provisioning status: {e}"));
                    }
                    Err(_) => set.pending = Some(id),
                }
            }
        }
        for set in work.iter_mut().filter(|s| s.pending.is_some()) {
            if set.state != PermissionSetState::Failed {
                set.state = PermissionSetState::Provisioning;
                set.kind = Some(FailureKind::Unverified);
                set.note = Some(
                    "still provisioning when cutoff stopped waiting; the request is retried"
                        .to_owned(),
                );
            }
        }
    }

    /// Reads each permission set back: the deny is there (a revocation) or gone (a
    /// release). Another writer's put in between is found here.
    async fn read_sets_back(
        &self,
        work: &mut [SetWork],
        user: &SsoUser,
        purpose: Purpose,
        calls: &CallCounter,
    ) {
        let Ok(directory) = self.directory() else {
            return;
        };
        for set in work.iter_mut() {
            if set.state == PermissionSetState::Failed {
                continue;
            }
            let read = self
                .ask(calls, || {
                    directory.inline_policy(&user.instance.arn, &set.arn)
                })
                .await;
            let denies = match &read {
                Ok(Some(document)) => ic::denies_user(document, &user.id),
                Ok(None) => false,
                Err(e) => {
                    set.fail_as(e.kind.into(), &format!("could not be read back: {e}"));
                    continue;
                }
            };
            match purpose {
                Purpose::Revoke if !denies => set.fail_as(
                    FailureKind::Unverified,
                    "read back without the deny (another writer replaced the inline policy?)",
                ),
                Purpose::LiftOrRead if denies => {
                    set.fail_as(
                        FailureKind::Unverified,
                        "read back with the deny still in it",
                    );
                }
                _ => {}
            }
        }
    }

    /// The outcome's fields from what each permission set came to.
    fn sso_done(
        &self,
        request: &RevocationRequest,
        user: &SsoUser,
        work: Vec<SetWork>,
        purpose: Purpose,
    ) -> Done {
        let action = match purpose {
            Purpose::Revoke => SsoAction::Deny,
            Purpose::LiftOrRead => SsoAction::Release,
        };
        let open: Vec<&SetWork> = work
            .iter()
            .filter(|s| {
                matches!(
                    s.state,
                    PermissionSetState::Failed | PermissionSetState::Provisioning
                )
            })
            .collect();
        let names = |list: &[&SetWork]| {
            let mut shown: Vec<&str> = list
                .iter()
                .take(ic::SETS_LISTED)
                .map(|s| s.name.as_str())
                .collect();
            let more = list.len().saturating_sub(ic::SETS_LISTED);
            let more = format!("and {more} more");
            if list.len() > ic::SETS_LISTED {
                shown.push(&more);
            }
            if shown.is_empty() {
                "none".to_owned()
            } else {
                shown.join(", ")
            }
        };
        let all: Vec<&SetWork> = work.iter().collect();
        let changed: Vec<&SetWork> = work.iter().filter(|s| !s.held_nothing).collect();
        let any_written = work.iter().any(|s| s.state != PermissionSetState::Failed);
        let who = format!("Identity Center user `{}` ({})", user.name, user.id);
        let (status, detail) = match (action, request.dry_run, open.is_empty()) {
            (SsoAction::Deny, true, _) => (
                Status::DryRun,
                format!(
                    "dry run: would deny {who} in permission sets {}",
                    names(&all)
                ),
            ),
            (SsoAction::Release, true, _) => (
                Status::DryRun,
                format!(
                    "dry run: would remove the deny of {who} from {}",
                    names(&changed)
                ),
            ),
            (SsoAction::Deny, false, true) => (
                Status::Applied,
                format!(
                    "{who} denied everything, with no time condition, in the inline policy of every permission set they can use ({}), provisioned and read back; {DISABLE_USER}",
                    names(&all)
                ),
            ),
            // Written but still provisioning counts as written: partial.
            (SsoAction::Deny, false, false) if any_written => (
                Status::Partial,
                format!(
                    "{who} denied in some of their permission sets; not yet in {}; {DISABLE_USER}",
                    names(&open)
                ),
            ),
            (SsoAction::Deny, false, false) => (
                Status::Failed,
                format!("failed: {who} could not be denied in {}", names(&open)),
            ),
            (SsoAction::Release, false, true) => (
                Status::Released,
                if changed.is_empty() {
                    format!("no permission set held cutoff's deny of {who}")
                } else {
                    format!("cutoff's deny of {who} removed from {}", names(&changed))
                },
            ),
            (SsoAction::Release, false, false) => (
                Status::Failed,
                format!(
                    "failed: the release of {who} is not complete in {}",
                    names(&open)
                ),
            ),
        };
        let still_works: Vec<StillWorks> = if action == SsoAction::Deny {
            open.iter()
                .map(|s| StillWorks {
                    credential: format!("permission set {} for {}", s.name, user.name),
                    why: s.note.clone().unwrap_or_default(),
                })
                .collect()
        } else {
            Vec::new()
        };
        // Still provisioning is retried (a retry provisions again); otherwise the
        // first failure's kind says whether a retry can help.
        let kind = if open
            .iter()
            .any(|s| s.state == PermissionSetState::Provisioning)
        {
            FailureKind::Unverified
        } else {
            open.iter()
                .find_map(|s| s.kind)
                .unwrap_or(FailureKind::Unverified)
        };
        let error = matches!(status, Status::Partial | Status::Failed).then(|| {
            cutoff_domain::outcome::OutcomeError {
                kind,
                message: detail.clone(),
            }
        });
        let mut sets: Vec<PermissionSetDeny> = work
            .into_iter()
            .filter(|s| action == SsoAction::Deny || !s.held_nothing)
            .map(|s| {
                let accounts_total = s.accounts.len();
                PermissionSetDeny {
                    arn: s.arn,
                    name: s.name,
                    accounts: s.accounts.into_iter().take(ACCOUNTS_LISTED).collect(),
                    accounts_total,
                    state: s.state,
                    note: s.note,
                }
            })
            .collect();
        // What is not done first: a message that lists only so many shows those.
        sets.sort_by_key(|s| {
            (
                !matches!(
                    s.state,
                    PermissionSetState::Failed | PermissionSetState::Provisioning
                ),
                s.name.clone(),
                s.arn.clone(),
            )
        });
        let permission_sets_total = sets.len();
        sets.truncate(ic::SETS_LISTED);
        let mut done = Done::said(status, detail, Scope::Role);
        done.policy = Some("the permission sets' inline policies".to_owned());
        done.still_works = still_works;
        done.error = error;
        done.identity_center = Some(SsoContainment {
            action,
            user_name: user.name.clone(),
            user_id: user.id.to_string(),
            instance_arn: user.instance.arn.clone(),
            permission_sets: sets,
            permission_sets_total,
            service_control_policy: None,
            to_do: DISABLE_USER.to_owned(),
        });
        done
    }
}

impl SetWork {
    /// A set to work on: its state is what it comes to unless a step says otherwise
    /// (the read-back settles it).
    fn new(arn: String, name: String, accounts: Vec<Account>, purpose: Purpose) -> Self {
        Self {
            arn,
            name,
            accounts,
            state: match purpose {
                Purpose::Revoke => PermissionSetState::Denied,
                Purpose::LiftOrRead => PermissionSetState::Released,
            },
            note: None,
            kind: None,
            pending: None,
            held_nothing: false,
        }
    }

    fn fail_as(&mut self, kind: FailureKind, why: &str) {
        // A failed set is listed, whatever it held.
        self.held_nothing = false;
        self.state = PermissionSetState::Failed;
        self.kind = Some(kind);
        self.note = Some(why.to_owned());
        self.pending = None;
    }

    fn shown(&self) -> String {
        if self.name.is_empty() {
            self.arn.clone()
        } else {
            format!("{} ({})", self.name, self.arn)
        }
    }
}

#[cfg(test)]
mod tests;
