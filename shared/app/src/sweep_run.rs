//! The sweep workflow: read one account with `GetAccountAuthorizationDetails`, plan
//! each principal with the pure rules of [`cutoff_domain::sweep_rules`], and carry out the changes.
//!
//! Written against the traits in [`cutoff_aws`], like the revoker.
//!
//! # Reading, then writing
//!
//! The account is read page by page and planned as it arrives; only the principals
//! with something to change are kept, so memory holds one page plus the changes.
//! Minutes can pass between the listing and a write (a large account, throttling),
//! and a revocation may land on a principal in between. So before writing, the
//! policies a plan touches are read again and the principal is planned again on what
//! they say now; the write is built from that fresh read, never from the listing.
//! A revocation that lands between the fresh read and the write is the
//! read-modify-write race every IAM writer has (IAM has no conditional put); the
//! write is then read back, and a cutoff later than ours seen there is kept.
//!
//! # Counting
//!
//! Every IAM and STS operation cutoff performs, retries included, is counted (as the
//! revoker counts: reading a managed policy's document or deleting a policy with its
//! old versions is one operation of the adapter, several HTTP requests). A sweep costs
//! the pages of the listing, plus for each changed principal one fresh read per policy
//! it changes, the writes, and one read-back per moved cutoff.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use cutoff_aws::dynamodb::Ledger;
use cutoff_aws::iam::paged::{AuthorizationDetails, for_each_page};
use futures_util::stream::{self, StreamExt};

use cutoff_aws::retry::RetryPolicy;
use cutoff_aws::retrying::Retrying;
use cutoff_aws::{
    AccountAccess, AwsError, IamApi, IamPrincipal, InlinePolicies, ManagedPolicies, PrincipalType,
};
use cutoff_domain::clock::Clock;
use cutoff_domain::event::Scope;
use cutoff_domain::outcome::owner_from_tags;
use cutoff_domain::outcome::{FailureKind, Outcome, Owner, Status, Trigger};
use cutoff_domain::triage::Source;

use crate::deny_writer::{DenyWriter, ReadBack};
use crate::principal_lock::{self, LockRequest};
use cutoff_domain::policy::{Cutoff, PolicyDocument};
use cutoff_domain::principal::{Account, IamPath, Target, TargetKind};
use cutoff_domain::summary::AccountReport;
use cutoff_domain::sweep_rules::{Change, PrincipalSnapshot, SweepRules, plan};

/// How the sweeper works.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    pub rules: SweepRules,
    pub retry: RetryPolicy,
    /// Compute and report everything, write nothing.
    pub dry_run: bool,
    /// Read-backs of a moved cutoff before it is declared unverified.
    pub verify_attempts: u32,
    pub verify_delay: Duration,
    /// How long the sweeper holds a principal's lock at most, and how long it waits
    /// for one another writer holds (not long: the next sweep comes back to it).
    pub lock_lease: chrono::Duration,
    pub lock_wait: Duration,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            rules: SweepRules::default(),
            retry: RetryPolicy::default(),
            dry_run: false,
            verify_attempts: 5,
            verify_delay: Duration::from_millis(250),
            lock_lease: chrono::Duration::seconds(60),
            lock_wait: Duration::from_millis(750),
        }
    }
}

/// Sweeps every account in `accounts`, at most `concurrency` at once; one account's
/// failure is reported in its report and does not stop the others. Reports come in
/// the order of `accounts`.
pub async fn sweep_accounts<A, L>(
    access: &A,
    ledger: &L,
    accounts: &[Account],
    config: &SweepConfig,
    clock: &dyn Clock,
    run_id: &str,
    concurrency: usize,
) -> Vec<AccountReport>
where
    A: AccountAccess,
    A::Client: AuthorizationDetails,
    L: Ledger,
{
    let sweeps = accounts
        .iter()
        .map(|account| sweep_one(access, ledger, account, config, clock, run_id));
    bounded(sweeps, concurrency).await
}

/// Runs the futures with at most `limit` in flight (at least one), on the current
/// task (no spawn, so they may borrow), and returns their outputs in order; a new one
/// starts as soon as one finishes.
pub async fn bounded<F: Future>(
    futures: impl IntoIterator<Item = F>,
    limit: usize,
) -> Vec<F::Output> {
    stream::iter(futures).buffered(limit.max(1)).collect().await
}

/// Sweeps one account reached through `access` (the member role for other accounts).
pub async fn sweep_one<A, L>(
    access: &A,
    ledger: &L,
    account: &Account,
    config: &SweepConfig,
    clock: &dyn Clock,
    run_id: &str,
) -> AccountReport
where
    A: AccountAccess,
    A::Client: AuthorizationDetails,
    L: Ledger,
{
    let started = Instant::now();
    let access = Retrying::new(access, config.retry);
    let session = format!("sweep-{run_id}");
    let mut report = match access.client(account, &session).await {
        Ok(client) => sweep_account(&client, ledger, account, config, clock, run_id).await,
        Err(e) => AccountReport::failed(account.clone(), config.dry_run, e.to_outcome_error()),
    };
    report.api_calls = u64::from(access.calls());
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report
}

/// Sweeps one account with `client` (its calls retried and counted), planned at
/// `clock`'s now. Each principal that changes is written under its lock in `ledger`
/// (taken as the revoker takes it), held by `sweep-<run id>`.
pub async fn sweep_account<C, L>(
    client: &Retrying<C>,
    ledger: &L,
    account: &Account,
    config: &SweepConfig,
    clock: &dyn Clock,
    run_id: &str,
) -> AccountReport
where
    C: IamApi + AuthorizationDetails,
    L: Ledger,
{
    let now = clock.now();
    // The run's id and a nonce of this worker's own: a task delivered twice (the sweep
    // queue is a standard queue; a retried plan sends again what has not reported)
    // must not share the lease of its other copy.
    let holder = crate::revoke::guard::lease_holder(&format!("sweep-{run_id}"));
    let started = Instant::now();
    let mut report = AccountReport::new(account.clone(), config.dry_run);
    let mut to_change: Vec<PrincipalSnapshot> = Vec::new();
    let mut scanned = 0u64;
    let mut notes = Vec::new();
    let listed = for_each_page(client, |batch| {
        for snapshot in batch {
            scanned += 1;
            let planned = plan(&snapshot, &config.rules, now);
            notes.extend(planned.notes);
            if !planned.changes.is_empty() {
                to_change.push(snapshot);
            }
        }
    })
    .await;
    report.principals_scanned = scanned;
    report.notes = notes;
    if let Err(e) = listed {
        // Nothing written: a partial listing is not a reason to act on part of it.
        report.error = Some(e.to_outcome_error());
        report.api_calls = u64::from(client.calls());
        return report;
    }
    for snapshot in to_change {
        let mut work = PrincipalWork {
            client,
            config,
            account,
            now,
        };
        let key = cutoff_aws::dynamodb::principal_key_of(
            account,
            match snapshot.kind {
                PrincipalType::Role => TargetKind::Role.as_str(),
                PrincipalType::User => TargetKind::User.as_str(),
            },
            snapshot.name.as_str(),
        );
        let locked = if config.dry_run {
            LockState::NotNeeded
        } else {
            lock(ledger, clock, &key, &holder, config).await
        };
        if locked == LockState::Busy {
            // Someone is revoking it right now; the next sweep comes back to it.
            report.notes.push(format!(
                "{} `{}` is being written by another writer; left for the next sweep",
                snapshot.kind.as_str(),
                snapshot.name
            ));
            continue;
        }
        // Removing a deny must not race a revocation: without the lock only the
        // rolling cutoffs move (they only ever deny more), and removals wait.
        let removals = locked != LockState::Unreachable;
        let outcome = work.apply(snapshot, &mut report, removals).await;
        if locked == LockState::Held
            && let Err(e) = ledger.release(&key, &holder).await
        {
            tracing::warn!(error = %e, "principal lock not released; it expires on its own");
        }
        if let Some(outcome) = outcome {
            report.outcomes.push(outcome);
        }
    }
    report.api_calls = u64::from(client.calls());
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockState {
    Held,
    Busy,
    /// A dry run, or no ledger.
    NotNeeded,
    /// A ledger that cannot be reached: rolling cutoffs move without the lock (as the
    /// revoker writes), removals do not run (they fail closed, for the next sweep).
    Unreachable,
}

/// Takes a principal's lock for the sweeper: the revoker's loop, with a short wait.
async fn lock<L: Ledger>(
    ledger: &L,
    clock: &dyn Clock,
    key: &str,
    holder: &str,
    config: &SweepConfig,
) -> LockState {
    if !ledger.enabled() {
        return LockState::NotNeeded;
    }
    let request = LockRequest {
        key,
        holder,
        lease: config.lock_lease,
        wait: config.lock_wait,
    };
    match principal_lock::acquire(ledger, clock, &request).await {
        Ok(Some(_)) => LockState::Held,
        Ok(None) => LockState::Busy,
        Err(e) => {
            tracing::warn!(error = %e, "ledger unreachable: moving rolling cutoffs without the principal lock, removing nothing");
            LockState::Unreachable
        }
    }
}

struct PrincipalWork<'a, C> {
    client: &'a Retrying<C>,
    config: &'a SweepConfig,
    account: &'a Account,
    now: DateTime<Utc>,
}

/// A stop in the middle of a principal's changes.
struct Failure {
    kind: FailureKind,
    message: String,
}

impl From<AwsError> for Failure {
    fn from(e: AwsError) -> Self {
        Self {
            kind: e.kind.into(),
            message: e.to_string(),
        }
    }
}

impl<C: IamApi> PrincipalWork<'_, C> {
    /// Re-reads, re-plans and applies the changes of one principal; the outcome to
    /// report, or None when the fresh read shows nothing left to do.
    async fn apply(
        &mut self,
        listed: PrincipalSnapshot,
        report: &mut AccountReport,
        removals: bool,
    ) -> Option<Outcome> {
        let principal = IamPrincipal {
            kind: listed.kind,
            name: listed.name.clone(),
        };
        let mut outcome = self.outcome_for(&listed);
        let (fresh, mut planned) = match self.refresh(listed).await {
            Ok(fresh) => fresh,
            Err(f) => return Some(self.fail(outcome, report, f)),
        };
        if !removals {
            let before = planned.changes.len();
            planned
                .changes
                .retain(|c| matches!(c, Change::MoveCutoff { .. }));
            if planned.changes.len() < before {
                report.notes.push(format!(
                    "{principal} in {}: expired revocations left for the next sweep: the ledger could not be reached, and a removal runs only under the principal lock",
                    self.account
                ));
            }
        }
        // The notes of this principal were taken at listing; the re-plan's are the same.
        if planned.changes.is_empty() {
            return None;
        }
        let mut moved = None;
        let mut removed: Vec<Cutoff> = Vec::new();
        let mut deleted = 0u64;
        let mut failure = None;
        let read_back = ReadBack {
            attempts: self.config.verify_attempts,
            delay: self.config.verify_delay,
        };
        let mut writer = DenyWriter::new(self.client, self.config.dry_run, read_back);
        for change in &planned.changes {
            let step = self.carry_out(&mut writer, &principal, change).await;
            if let Err(f) = step {
                failure = Some(f);
                break;
            }
            match change {
                Change::MoveCutoff { from, to, .. } => moved = Some((*from, *to)),
                Change::RemoveExpired {
                    removed: r,
                    remaining,
                    ..
                } => {
                    removed.extend(r);
                    deleted += u64::from(remaining.is_none());
                }
                Change::DetachAndDeleteFallback { removed: r, .. } => {
                    removed.extend(r);
                    deleted += 1;
                }
            }
        }
        // What was written stays counted, whatever fails after it.
        report.cutoffs_moved += u64::from(moved.is_some());
        report.statements_removed += removed.len() as u64;
        report.policies_deleted += deleted;
        if failure.is_none()
            && let Some((_, to)) = moved
            && let Err(f) = self.verify_moved(&writer, &principal, to).await
        {
            failure = Some(f);
        }
        outcome.actions = writer.into_actions();
        if let Some(f) = failure {
            let mut failed = self.fail(outcome, report, f);
            if let Some((from, to)) = moved {
                failed.cutoff = Some(to);
                failed.previous_cutoff = from;
            }
            return Some(failed);
        }
        let who = format!("{principal} in {}", self.account);
        let verb = |done: &str, would: &str| {
            if self.config.dry_run {
                would.to_owned()
            } else {
                done.to_owned()
            }
        };
        let mut sentences = Vec::new();
        if let Some((from, to)) = moved {
            outcome.cutoff = Some(to);
            outcome.previous_cutoff = from;
            outcome.policy = Some(cutoff_domain::policy::ROLE_WIDE_POLICY_NAME.to_owned());
            outcome.propagation = (!self.config.dry_run).then(|| "eventual".to_owned());
            sentences.push(format!(
                "{} the rolling cutoff of {who} to {to} ({}): sessions issued before it are denied",
                verb("moved", "would move"),
                max_age_text(&fresh, &self.config.rules),
            ));
        }
        if !removed.is_empty() {
            removed.sort_unstable();
            let list: Vec<String> = removed.iter().map(ToString::to_string).collect();
            sentences.push(format!(
                "{} {} expired revocation statement{} from {who} (cutoff{} {}): no session issued before {} can still be alive",
                verb("removed", "would remove"),
                removed.len(),
                if removed.len() == 1 { "" } else { "s" },
                if removed.len() == 1 { "" } else { "s" },
                list.join(", "),
                if removed.len() == 1 { "it" } else { "them" },
            ));
            if outcome.previous_cutoff.is_none() {
                outcome.previous_cutoff = removed.last().copied();
            }
            if let Some(target) = &outcome.target {
                report.released.push((target.clone(), removed.clone()));
            }
        }
        outcome.status = match (self.config.dry_run, moved) {
            (true, _) => Status::DryRun,
            (false, Some(_)) => Status::Applied,
            (false, None) => Status::Released,
        };
        outcome.detail = sentences.join("; ");
        Some(outcome)
    }

    fn outcome_for(&self, snapshot: &PrincipalSnapshot) -> Outcome {
        let kind = match snapshot.kind {
            PrincipalType::Role => TargetKind::Role,
            PrincipalType::User => TargetKind::User,
        };
        let (owner, _) = owner_from_tags(&snapshot.tags, &snapshot.name);
        Outcome {
            status: Status::Failed,
            target: Some(Target::new(
                kind,
                self.account.clone(),
                snapshot.name.clone(),
            )),
            cutoff: None,
            previous_cutoff: None,
            policy: None,
            scope: Scope::Role,
            owner: Owner {
                team: owner.team,
                topic: owner.topic,
            },
            trigger: Trigger {
                source: Source::Schedule,
                reason: Some("scheduled sweep".to_owned()),
                ..Trigger::default()
            },
            api_calls: 0,
            error: None,
            propagation: None,
            detail: String::new(),
            actions: Vec::new(),
            dry_run: self.config.dry_run,
            still_works: Vec::new(),
            other_access: Vec::new(),
            chain: None,
            identity_center: None,
            request_id: None,
            activity_region: None,
            approval: None,
        }
    }

    fn fail(&self, outcome: Outcome, report: &mut AccountReport, f: Failure) -> Outcome {
        report.principals_failed += 1;
        let mut outcome = outcome.failed(f.kind, f.message);
        outcome.dry_run = self.config.dry_run;
        outcome
    }

    /// The listed principal with the policies its plan changes read again, and the
    /// plan on that fresh read. A fresh read can change the plan (a fallback deleted
    /// meanwhile makes room for an inline write): whatever policy the new plan changes
    /// is read too, until every change is built on a fresh read.
    async fn refresh(
        &self,
        mut snapshot: PrincipalSnapshot,
    ) -> Result<(PrincipalSnapshot, cutoff_domain::sweep_rules::PrincipalPlan), Failure> {
        let principal = IamPrincipal {
            kind: snapshot.kind,
            name: snapshot.name.clone(),
        };
        let mut fresh: Vec<String> = Vec::new();
        loop {
            let planned = plan(&snapshot, &self.config.rules, self.now);
            let stale: Vec<String> = planned
                .changes
                .iter()
                .map(|c| match c {
                    Change::MoveCutoff { policy, .. } | Change::RemoveExpired { policy, .. } => {
                        policy.clone()
                    }
                    Change::DetachAndDeleteFallback { arn, .. } => arn.clone(),
                })
                .filter(|p| !fresh.contains(p))
                .collect();
            if stale.is_empty() {
                return Ok((snapshot, planned));
            }
            for policy in stale {
                if is_policy_arn(&policy) {
                    let read = self.client.get_managed_policy(&policy).await?;
                    snapshot.managed_documents.retain(|(a, _)| *a != policy);
                    match read {
                        Some(p) => snapshot
                            .managed_documents
                            .push((policy.clone(), p.document)),
                        // Deleted meanwhile: no longer attached either.
                        None => snapshot.attached.retain(|a| *a != policy),
                    }
                } else {
                    let read = self.client.get_inline_policy(&principal, &policy).await?;
                    snapshot.inline.retain(|(n, _)| *n != policy);
                    if let Some(text) = read {
                        snapshot.inline.push((policy.clone(), text));
                    }
                }
                fresh.push(policy);
            }
        }
    }

    async fn carry_out(
        &self,
        writer: &mut DenyWriter<'_, Retrying<C>>,
        principal: &IamPrincipal,
        change: &Change,
    ) -> Result<(), Failure> {
        match change {
            Change::MoveCutoff {
                policy, document, ..
            } => writer.put_inline(principal, policy, document).await?,
            Change::RemoveExpired {
                policy,
                remaining: Some(document),
                ..
            } if !is_policy_arn(policy) => writer.put_inline(principal, policy, document).await?,
            Change::RemoveExpired {
                policy,
                remaining: Some(document),
                ..
            } => {
                let (path, name) = split_policy_arn(policy).ok_or_else(|| Failure {
                    kind: FailureKind::Malformed,
                    message: format!("cannot take the path and name out of {policy}"),
                })?;
                writer.put_managed(&path, &name, document).await?;
            }
            Change::RemoveExpired {
                policy,
                remaining: None,
                ..
            } => writer.delete_inline(principal, policy).await?,
            Change::DetachAndDeleteFallback { arn, .. } => {
                writer.detach_and_delete(principal, arn).await?;
            }
        }
        Ok(())
    }

    /// Reads the role-wide policy back until it holds `want` or later.
    async fn verify_moved(
        &self,
        writer: &DenyWriter<'_, Retrying<C>>,
        principal: &IamPrincipal,
        want: Cutoff,
    ) -> Result<(), Failure> {
        let name = cutoff_domain::policy::ROLE_WIDE_POLICY_NAME;
        let seen = writer
            .inline_shows(principal, name, |doc| {
                doc.and_then(PolicyDocument::role_wide_cutoff)
                    .is_some_and(|c| c >= want)
            })
            .await?;
        if seen {
            return Ok(());
        }
        Err(Failure {
            kind: FailureKind::Unverified,
            message: format!(
                "wrote the rolling cutoff {want} to {name} on {principal} but {} read-backs did not show it; the next sweep tries again",
                self.config.verify_attempts
            ),
        })
    }
}

fn max_age_text(snapshot: &PrincipalSnapshot, rules: &SweepRules) -> String {
    match snapshot.tag(cutoff_domain::sweep_rules::MAX_SESSION_AGE_TAG) {
        Some(tag) => format!("max session age {tag} from its tag"),
        None => rules
            .patterns
            .iter()
            .find(|(p, _)| p.matches(&snapshot.name))
            .map(|(p, age)| format!("max session age {age} from pattern `{}`", p.as_str()))
            .unwrap_or_else(|| "max session age".to_owned()),
    }
}

fn is_policy_arn(s: &str) -> bool {
    s.starts_with("arn:") && s.contains(":policy/")
}

/// `arn:…:policy/<path><name>` → (path, name).
fn split_policy_arn(arn: &str) -> Option<(IamPath, String)> {
    let (_, rest) = arn.split_once(":policy")?;
    let (path, name) = rest.rsplit_once('/')?;
    let path = IamPath::parse(&format!("{path}/")).ok()?;
    (!name.is_empty()).then(|| (path, name.to_owned()))
}

#[cfg(test)]
mod tests;
