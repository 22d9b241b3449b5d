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
    self as ic, DISABLE_USER, IdentityStoreUserId, InlineChange, PermissionSetDeny,
    PermissionSetState, SsoContainment,
};
use cutoff_domain::outcome::{FailureKind, RevocationRequest, Status, StillWorks};
use cutoff_domain::principal::Account;

use super::resolve::{Purpose, Resolved};
use super::{Done, Record, Revoker, Stop};
use crate::principal_lock::{self, LockRequest};
use cutoff_aws::dynamodb::Ledger;

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
    /// Provisionings not yet finished: (account or all, request id).
    pending: Vec<(String, String)>,
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

    /// One directory call, retried and counted.
    async fn ask<'a, T>(
        &self,
        calls: &CallCounter,
        op: impl FnMut() -> Call<'a, T>,
    ) -> Result<T, AwsError> {
        with_retries(&self.config.retry, calls, op).await
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
        let id = self
            .ask(calls, || directory.user_id(&store, &sso.user_name))
            .await?
            .ok_or_else(|| {
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

    /// An Identity Center user's containment (a revocation) or its release.
    pub(super) async fn contain_sso_user<C>(
        &self,
        request: &RevocationRequest,
        request_id: &str,
        resolved: &Resolved<C>,
        purpose: Purpose,
        calls: &Arc<CallCounter>,
        record: &mut Record,
    ) -> Result<Done, Stop> {
        let (user, sso) = self
            .sso_user(request, &resolved.principal.name, calls)
            .await?;
        let directory = self.directory()?;
        let instance = user.instance.arn.clone();
        let mut work = match purpose {
            Purpose::Revoke => {
                let sets = self.sso_assignments(&user, calls).await?;
                let mut work = Vec::new();
                let mut finding_set = false;
                for (arn, accounts) in sets {
                    let name = self
                        .ask(calls, || directory.permission_set_name(&instance, &arn))
                        .await?;
                    finding_set |=
                        name == sso.permission_set && accounts.contains(&request.target.account);
                    work.push(SetWork::new(
                        arn,
                        name,
                        accounts.into_iter().collect(),
                        purpose,
                    ));
                }
                if !finding_set {
                    return Err(Stop::failed(
                        FailureKind::PrincipalMismatch,
                        format!(
                            "Identity Center user `{}` ({}) is not assigned the permission set {} in {}, whose role's session the finding names: the session name does not match the user entitled there; nothing written",
                            user.name, user.id, sso.permission_set, request.target.account
                        ),
                    ));
                }
                // A write that locks a person out of every account they use: the
                // finding's breaker budget, as any other revocation.
                self.pass_breaker(request, &mut Vec::new()).await?;
                work
            }
            // Wherever the deny is, whatever the user's assignments are now.
            Purpose::LiftOrRead => {
                let all = self
                    .every_page(calls, "sso:ListPermissionSets", |next| {
                        directory.permission_sets(&instance, next)
                    })
                    .await?;
                all.into_iter()
                    .map(|arn| SetWork::new(arn, String::new(), Vec::new(), purpose))
                    .collect()
            }
        };
        // One budget for the whole containment (after the role's own lock wait): the
        // locks of many sets, then the provisioning, within the function's timeout.
        let deadline = tokio::time::Instant::now() + self.config.identity_center_wait;
        let locks_until = deadline - self.config.identity_center_wait / 2;
        for set in &mut work {
            let wait = if tokio::time::Instant::now() < locks_until {
                self.config.identity_center_lock_wait
            } else {
                std::time::Duration::ZERO
            };
            self.write_set(
                set, &user, purpose, request, request_id, wait, calls, record,
            )
            .await;
        }
        self.await_provisioning(&mut work, &instance, deadline, calls)
            .await;
        if !request.dry_run {
            self.read_sets_back(&mut work, &user, purpose, calls).await;
        }
        Ok(self.sso_done(request, &user, work, purpose))
    }

    /// Writes (or, for a release, removes) the deny in one permission set under its
    /// lock, and provisions it.
    #[allow(clippy::too_many_arguments)]
    async fn write_set(
        &self,
        set: &mut SetWork,
        user: &SsoUser,
        purpose: Purpose,
        request: &RevocationRequest,
        request_id: &str,
        lock_wait: std::time::Duration,
        calls: &CallCounter,
        record: &mut Record,
    ) {
        let Ok(directory) = self.directory() else {
            return;
        };
        let instance = &user.instance.arn;
        let key = format!("identity-center#{}", set.arn);
        let locked = if self.ledger.enabled() && !request.dry_run {
            let lock = LockRequest {
                key: &key,
                holder: request_id,
                lease: self.config.lock_lease,
                wait: lock_wait,
            };
            match principal_lock::acquire(&self.ledger, &self.clock, &lock).await {
                Ok(true) => true,
                Ok(false) | Err(_) if purpose == Purpose::LiftOrRead => {
                    // Removals fail closed: the release is retried.
                    set.fail("another writer holds its lock, or the ledger is unreachable: not released; retried");
                    return;
                }
                // Containment first: written without the lock, and read back after.
                Ok(false) | Err(_) => false,
            }
        } else {
            false
        };
        let written = self
            .change_set(set, user, purpose, request, calls, record)
            .await;
        if locked && let Err(e) = self.ledger.release(&key, request_id).await {
            tracing::warn!(error = %e, key, "could not give back a permission set's lock; it expires");
        }
        let Some(changed) = written else {
            return;
        };
        // A deny already in the set is provisioned again all the same: an earlier
        // attempt's provisioning may have failed or still be running, and the read
        // of the set cannot tell whether the accounts hold it.
        if (!changed && purpose == Purpose::LiftOrRead) || request.dry_run {
            return;
        }
        // A revocation reaches the accounts the user uses it in; a release every
        // account it is provisioned to, so none keeps the deny.
        let targets: Vec<Option<&Account>> = match purpose {
            Purpose::Revoke => set.accounts.iter().map(Some).collect(),
            Purpose::LiftOrRead => vec![None],
        };
        let mut failures = Vec::new();
        for account in targets {
            let label = account.map_or("every account".to_owned(), ToString::to_string);
            match self
                .ask(calls, || directory.provision(instance, &set.arn, account))
                .await
            {
                Ok(Provisioning::Succeeded) => {}
                Ok(Provisioning::InProgress { request_id }) => {
                    set.pending.push((label.clone(), request_id));
                }
                Ok(Provisioning::Failed { reason }) => failures.push(format!("{label}: {reason}")),
                Err(e) => failures.push(format!("{label}: {e}")),
            }
            record.actions.push(format!(
                "provision permission set {} to {label}",
                set.shown()
            ));
        }
        if !failures.is_empty() {
            set.fail(&format!("provisioning failed ({})", failures.join("; ")));
        }
    }

    /// Reads, changes and puts one permission set's inline policy: Some(whether it
    /// changed), None when it could not (the set says why).
    async fn change_set(
        &self,
        set: &mut SetWork,
        user: &SsoUser,
        purpose: Purpose,
        request: &RevocationRequest,
        calls: &CallCounter,
        record: &mut Record,
    ) -> Option<bool> {
        let directory = self.directory().ok()?;
        let instance = &user.instance.arn;
        let existing = match self
            .ask(calls, || directory.inline_policy(instance, &set.arn))
            .await
        {
            Ok(existing) => existing,
            Err(e) => {
                set.fail(&e.to_string());
                return None;
            }
        };
        let change = match purpose {
            Purpose::Revoke => ic::add_user_deny(existing.as_deref(), &user.id),
            Purpose::LiftOrRead => ic::remove_user_deny(existing.as_deref(), &user.id),
        };
        let change = match change {
            Ok(change) => change,
            Err(e) => {
                set.fail(&e.to_string());
                return None;
            }
        };
        if change == InlineChange::Unchanged {
            if purpose == Purpose::LiftOrRead {
                set.state = PermissionSetState::Released;
                set.note = Some("no deny of this user".to_owned());
            } else {
                set.note = Some("already denied this user".to_owned());
            }
            return Some(false);
        }
        if purpose == Purpose::LiftOrRead && set.name.is_empty() {
            // Named only where it matters: the sets that held the deny.
            set.name = self
                .ask(calls, || directory.permission_set_name(instance, &set.arn))
                .await
                .unwrap_or_default();
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
            return Some(true);
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
        match result {
            Ok(()) => Some(true),
            Err(e) => {
                set.fail(&e.to_string());
                None
            }
        }
    }

    /// Waits for the provisionings, until `deadline`.
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
        while work.iter().any(|s| !s.pending.is_empty()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(self.config.identity_center_poll).await;
            for set in work.iter_mut() {
                let mut still = Vec::new();
                for (label, id) in std::mem::take(&mut set.pending) {
                    match self
                        .ask(calls, || directory.provisioning(instance, &id))
                        .await
                    {
                        Ok(Provisioning::Succeeded) => {}
                        Ok(Provisioning::InProgress { request_id }) => {
                            still.push((label, request_id))
                        }
                        Ok(Provisioning::Failed { reason }) => {
                            set.fail(&format!("provisioning to {label} failed: {reason}"));
                        }
                        // Asked again next round; the wait bounds it.
                        Err(_) => still.push((label, id)),
                    }
                }
                set.pending = still;
            }
        }
        for set in work.iter_mut().filter(|s| !s.pending.is_empty()) {
            if set.state != PermissionSetState::Failed {
                set.state = PermissionSetState::Provisioning;
            }
            let labels: Vec<&str> = set.pending.iter().map(|(l, _)| l.as_str()).collect();
            set.note = Some(format!(
                "still provisioning to {} when cutoff stopped waiting",
                labels.join(", ")
            ));
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
                    set.fail(&format!("could not be read back: {e}"));
                    continue;
                }
            };
            match purpose {
                Purpose::Revoke if !denies => set.fail(
                    "read back without the deny (another writer replaced the inline policy?)",
                ),
                Purpose::LiftOrRead if denies => {
                    set.fail("read back with the deny still in it");
                }
                Purpose::Revoke if set.state != PermissionSetState::Provisioning => {
                    set.state = PermissionSetState::Denied;
                }
                Purpose::LiftOrRead if set.state != PermissionSetState::Provisioning => {
                    set.state = PermissionSetState::Released;
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
        let mut sets: Vec<PermissionSetDeny> = work
            .into_iter()
            // A release lists the sets it changed, not every set of the instance.
            .filter(|s| {
                purpose == Purpose::Revoke || s.note.as_deref() != Some("no deny of this user")
            })
            .map(|s| PermissionSetDeny {
                arn: s.arn,
                name: s.name,
                accounts: s.accounts,
                state: s.state,
                note: s.note,
            })
            .collect();
        sets.sort_by(|a, b| a.name.cmp(&b.name).then(a.arn.cmp(&b.arn)));
        let open: Vec<&PermissionSetDeny> = sets
            .iter()
            .filter(|s| {
                matches!(
                    s.state,
                    PermissionSetState::Failed | PermissionSetState::Provisioning
                )
            })
            .collect();
        let names = |list: &[&PermissionSetDeny]| {
            list.iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let all: Vec<&PermissionSetDeny> = sets.iter().collect();
        let who = format!("Identity Center user `{}` ({})", user.name, user.id);
        let (status, detail) = match (purpose, request.dry_run, open.is_empty()) {
            (_, true, _) => (
                Status::DryRun,
                match purpose {
                    Purpose::Revoke => format!(
                        "dry run: would deny {who} in permission sets {}",
                        names(&all)
                    ),
                    Purpose::LiftOrRead => format!(
                        "dry run: would remove the deny of {who} from {}",
                        names(&all)
                    ),
                },
            ),
            (Purpose::Revoke, false, true) => (
                Status::Applied,
                format!(
                    "{who} denied everything, with no time condition, in the inline policy of every permission set they can use ({}), provisioned and read back; {DISABLE_USER}",
                    names(&all)
                ),
            ),
            // Written but still provisioning counts as written: partial.
            (Purpose::Revoke, false, false)
                if sets.iter().any(|s| s.state != PermissionSetState::Failed) =>
            {
                (
                    Status::Partial,
                    format!(
                        "{who} denied in some of their permission sets; not yet in {}; {DISABLE_USER}",
                        names(&open)
                    ),
                )
            }
            (Purpose::Revoke, false, false) => (
                Status::Failed,
                format!("failed: {who} could not be denied in {}", names(&open)),
            ),
            (Purpose::LiftOrRead, false, true) => (
                Status::Released,
                format!(
                    "cutoff's deny of {who} removed from {}",
                    if all.is_empty() {
                        "no permission set (none held it)".to_owned()
                    } else {
                        names(&all)
                    }
                ),
            ),
            (Purpose::LiftOrRead, false, false) => (
                Status::Failed,
                format!("failed: the deny of {who} is still in {}", names(&open)),
            ),
        };
        let still_works: Vec<StillWorks> = open
            .iter()
            .filter(|_| purpose == Purpose::Revoke)
            .map(|s| StillWorks {
                credential: format!("permission set {} for {}", s.name, user.name),
                why: s.note.clone().unwrap_or_default(),
            })
            .collect();
        let error = (status == Status::Partial || status == Status::Failed).then(|| {
            cutoff_domain::outcome::OutcomeError {
                kind: FailureKind::Unverified,
                message: detail.clone(),
            }
        });
        let mut done = Done::said(status, detail, Scope::Role);
        done.policy = Some("the permission sets' inline policies".to_owned());
        done.still_works = still_works;
        done.error = error;
        done.identity_center = Some(SsoContainment {
            user_name: user.name.clone(),
            user_id: user.id.to_string(),
            instance_arn: user.instance.arn.clone(),
            permission_sets: sets,
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
            pending: Vec::new(),
        }
    }

    fn fail(&mut self, why: &str) {
        self.state = PermissionSetState::Failed;
        self.note = Some(why.to_owned());
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
