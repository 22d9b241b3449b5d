//! The revocation workflow: resolve the principal, read its deny, merge a new cutoff,
//! check the size budget, write, read back, and say what happened.
//!
//! Written against the traits in [`cutoff_aws`], so it runs the same against IAM, the
//! local stand-in and the in-memory fakes. Every request ends in an [`Outcome`];
//! nothing here panics or returns early without one.

use cutoff_domain::triage::Source;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use cutoff_aws::dynamodb::{AuditEntry, KEY_RECORD_DAYS, Ledger, NoLedger, principal_key};
use cutoff_aws::retry::{CallCounter, RetryPolicy};
use cutoff_aws::retrying::Retrying;
use cutoff_aws::{
    AccessKeys, AccountAccess, AwsError, ErrorKind, IamApi, IamPrincipal, InlinePolicies,
    ManagedPolicies, PrincipalInfo, PrincipalType, Principals,
};
use cutoff_domain::clock::Clock;
use cutoff_domain::coverage::{self, ISSUE_TIME_SLACK, KeyRecord};
use cutoff_domain::event::{ManualAction, Scope};
use cutoff_domain::outcome::{
    Outcome, OutcomeError, Owner, PROTECTED_TAG, RevocationRequest, Status, StillWorks,
    owner_from_tags,
};
use cutoff_domain::policy::{
    self, Budget, Cutoff, MANAGED_POLICY_BUDGET, PolicyDocument, ROLE_INLINE_BUDGET,
    ROLE_WIDE_POLICY_NAME, SESSION_POLICY_NAME, SessionPrincipal, USER_INLINE_BUDGET,
};
use cutoff_domain::principal::{
    AccessKeyId, Account, AccountScope, IamPath, Partition, PrincipalName, Protection, RoleClass,
    Target, TargetKind, classify_role_path,
};

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
struct Stop {
    status: Status,
    kind: Option<String>,
    message: String,
}

impl Stop {
    fn failed(kind: &str, message: impl Into<String>) -> Self {
        Self {
            status: Status::Failed,
            kind: Some(kind.to_owned()),
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
        Stop::failed(err.kind.as_str(), err.to_string())
    }
}

/// What [`Revoker::handle`] learnt before the workflow: the calls it made (counted in
/// the outcome), and for an instance profile what reading its role gave, so that
/// the workflow neither asks again nor gets a different answer than the lock's.
struct Prepared<C> {
    calls: Arc<CallCounter>,
    profile: Option<ProfileLookup<C>>,
}

/// An instance profile's role, read before the principal lock is taken.
enum ProfileLookup<C> {
    /// The account's client, and the profile's role (none when it holds none).
    Read(C, Option<PrincipalName>),
    /// Reaching the account or reading the profile failed, after retries.
    Failed(Stop),
}

impl<C> Default for Prepared<C> {
    fn default() -> Self {
        Self {
            calls: Arc::default(),
            profile: None,
        }
    }
}

/// A managed fallback policy as read.
struct Fallback {
    arn: String,
    name: String,
    document: PolicyDocument,
}

/// What one deny policy holds before a write.
struct InForce {
    /// The stored text (for the size check) and the parsed document.
    raw: Option<String>,
    existing: Option<PolicyDocument>,
    /// The cutoff in force for what the request is about (role-wide, or the session).
    cutoff: Option<Cutoff>,
}

/// What a deny step did.
struct Applied {
    status: Status,
    cutoff: Cutoff,
    previous: Option<Cutoff>,
    policy: String,
    scope: Scope,
    notes: Vec<String>,
}

/// A deny already in force that covers the request: nothing to write.
fn already(cutoff: Cutoff, policy: &str, scope: Scope, why: String) -> Applied {
    Applied {
        status: Status::AlreadyRevoked,
        cutoff,
        previous: Some(cutoff),
        policy: policy.to_owned(),
        scope,
        notes: vec![why],
    }
}

/// The revoker: account access, a clock, and the rules.
pub struct Revoker<A, K, L = NoLedger> {
    pub access: A,
    pub clock: K,
    pub config: RevokeConfig,
    /// Audit trail, idempotency and the per-principal lock ([`cutoff_aws::dynamodb`]).
    pub ledger: L,
}

/// One request's view: the client for its account and its call counter.
struct Run<'r, C> {
    client: &'r C,
    config: &'r RevokeConfig,
    clock: &'r dyn Clock,
    dry_run: bool,
    actions: Vec<String>,
    /// Added to the margin of a new cutoff: set when the cutoff must also cover what a
    /// deactivated key could mint while its deactivation propagates.
    extra_margin: chrono::Duration,
}

impl<C: IamApi> Run<'_, C> {
    /// The cutoff, taken as late as possible: after the existing policy is read, just
    /// before the document is built. Taken earlier, a run slowed by throttling would
    /// write a cutoff older than the write, and sessions minted in between survive.
    fn cutoff_now(&self) -> Cutoff {
        Cutoff::at_or_after(self.clock.now() + self.config.margin + self.extra_margin)
    }

    async fn read_policy(
        &self,
        principal: &IamPrincipal,
        name: &str,
    ) -> Result<(Option<String>, Option<PolicyDocument>), Stop> {
        let raw = self.client.get_inline_policy(principal, name).await?;
        let doc = match &raw {
            Some(text) => Some(PolicyDocument::parse(text).map_err(|e| {
                Stop::failed(
                    "unreadable_policy",
                    format!("the existing policy {name} on {principal} cannot be read ({e}); not overwriting it"),
                )
            })?),
            None => None,
        };
        Ok((raw, doc))
    }

    /// Characters used by the principal's inline policies other than `except`.
    async fn inline_used_by_others(
        &self,
        principal: &IamPrincipal,
        except: &str,
    ) -> Result<usize, Stop> {
        let names = self.client.list_inline_policies(principal).await?;
        let mut used = 0;
        for name in names.iter().filter(|n| n.as_str() != except) {
            let raw = self.client.get_inline_policy(principal, name).await?;
            if let Some(raw) = raw {
                // An unreadable foreign policy is counted at its encoded length, which
                // over-estimates: falling back early is safe, overflowing is not.
                used += policy::stored_policy_size(&raw).unwrap_or(raw.len());
            }
        }
        Ok(used)
    }

    /// Whether `document` fits as inline policy `name`, replacing `existing_raw`.
    async fn fits_inline(
        &self,
        principal: &IamPrincipal,
        name: &str,
        existing_raw: Option<&str>,
        document: &str,
        limit: usize,
    ) -> Result<(bool, String), Stop> {
        let size = policy::policy_size(document);
        // Replacing a document with one no larger cannot break a quota the current
        // state already meets; this keeps repeat revocations at four calls.
        if let Some(raw) = existing_raw
            && policy::stored_policy_size(raw).is_ok_and(|old| size <= old)
        {
            return Ok((true, String::new()));
        }
        // A real write asks IAM, the authority on its quota: it answers LimitExceeded
        // when the role's inline policies would exceed it, and the caller falls back to
        // the managed policy then. Counting ourselves first would cost a list and a read
        // per inline policy on every first revocation, for the rare full role. A dry
        // run writes nothing, so it counts.
        if !self.dry_run && size <= limit {
            return Ok((true, String::new()));
        }
        let used = self.inline_used_by_others(principal, name).await?;
        let budget = Budget {
            limit,
            used_by_other_policies: used,
        };
        Ok((
            budget.fits(size),
            format!(
                "the other inline policies of {principal} use {used} of {limit} characters and the deny needs {size}"
            ),
        ))
    }

    async fn write_inline(
        &mut self,
        principal: &IamPrincipal,
        name: &str,
        document: &str,
    ) -> Result<(), AwsError> {
        self.actions
            .push(format!("put inline policy {name} on {principal}"));
        if self.dry_run {
            return Ok(());
        }
        self.client
            .put_inline_policy(principal, name, document)
            .await
    }

    /// Reads the inline policy back until `check` accepts it.
    async fn verify_inline(
        &self,
        principal: &IamPrincipal,
        name: &str,
        check: impl Fn(Option<&PolicyDocument>) -> bool,
    ) -> Result<(), Stop> {
        for attempt in 1..=self.config.verify_attempts {
            let (_, doc) = self.read_policy(principal, name).await?;
            if check(doc.as_ref()) {
                return Ok(());
            }
            if attempt < self.config.verify_attempts {
                tokio::time::sleep(self.config.verify_delay * attempt).await;
            }
        }
        Err(Stop::failed(
            "unverified",
            format!(
                "wrote {name} on {principal} but {} read-backs did not show the expected deny (IAM is eventually consistent, or another writer changed it); the request will be retried",
                self.config.verify_attempts
            ),
        ))
    }

    /// What the role-wide deny (`AWSRevokeOlderSessions`) holds now.
    async fn read_role_wide(&self, principal: &IamPrincipal) -> Result<InForce, Stop> {
        let (raw, existing) = self.read_policy(principal, ROLE_WIDE_POLICY_NAME).await?;
        let cutoff = existing.as_ref().and_then(PolicyDocument::role_wide_cutoff);
        Ok(InForce {
            raw,
            existing,
            cutoff,
        })
    }

    /// The latest cutoff of the managed fallbacks attached to the principal (the
    /// current name or the legacy one). An unattached fallback denies nothing; an
    /// unreadable one is taken as no cutoff (the request then writes).
    async fn attached_fallback_cutoff(
        &self,
        principal: &IamPrincipal,
    ) -> Result<Option<(Cutoff, String)>, Stop> {
        let attached = self.client.attached_policies(principal).await?;
        let mut latest: Option<(Cutoff, String)> = None;
        for arn in attached.iter().filter(|arn| {
            arn.rsplit('/')
                .next()
                .is_some_and(|name| policy::is_fallback_of(name, principal.kind, &principal.name))
        }) {
            let found = self.client.get_managed_policy(arn).await?;
            let cutoff = found
                .and_then(|p| PolicyDocument::parse(&p.document).ok())
                .and_then(|d| d.role_wide_cutoff());
            if let Some(c) = cutoff
                && latest.as_ref().is_none_or(|(l, _)| c > *l)
            {
                latest = Some((c, arn.clone()));
            }
        }
        Ok(latest)
    }

    /// Writes the role-wide deny with a cutoff of now (never lowering the one there),
    /// falling back to the managed policy when the inline budget is exhausted.
    async fn write_role_wide(
        &mut self,
        principal: &IamPrincipal,
        state: InForce,
        limit: usize,
    ) -> Result<Applied, Stop> {
        let InForce {
            raw,
            existing,
            cutoff: previous,
        } = state;
        let new = self.cutoff_now();
        let merge = policy::merge_role_wide(existing.as_ref(), new);
        if !merge.changed {
            return Ok(Applied {
                status: Status::AlreadyRevoked,
                cutoff: merge.cutoff,
                previous,
                policy: ROLE_WIDE_POLICY_NAME.to_owned(),
                scope: Scope::Role,
                notes: vec![format!(
                    "the existing cutoff {} is already at or after {new}",
                    merge.cutoff
                )],
            });
        }
        let document = merge.document.to_json();
        let (fits, why) = self
            .fits_inline(
                principal,
                ROLE_WIDE_POLICY_NAME,
                raw.as_deref(),
                &document,
                limit,
            )
            .await?;
        if fits {
            match self
                .write_inline(principal, ROLE_WIDE_POLICY_NAME, &document)
                .await
            {
                Ok(()) => {
                    if !self.dry_run {
                        let want = merge.cutoff;
                        self.verify_inline(principal, ROLE_WIDE_POLICY_NAME, |doc| {
                            doc.and_then(PolicyDocument::role_wide_cutoff)
                                .is_some_and(|c| c >= want)
                        })
                        .await?;
                    }
                    return Ok(Applied {
                        status: self.written_status(),
                        cutoff: merge.cutoff,
                        previous,
                        policy: ROLE_WIDE_POLICY_NAME.to_owned(),
                        scope: Scope::Role,
                        notes: Vec::new(),
                    });
                }
                // IAM is the authority on its quota; if it disagrees with our count,
                // fall back rather than drop the revocation.
                Err(err) if err.kind == ErrorKind::Quota => {
                    self.actions.pop();
                    return self
                        .managed_fallback(
                            principal,
                            new,
                            previous,
                            format!("IAM refused the inline write ({err})"),
                        )
                        .await;
                }
                Err(err) => return Err(err.into()),
            }
        }
        self.managed_fallback(principal, new, previous, why).await
    }

    /// The principal's managed fallbacks, under the current and the legacy name,
    /// read whole (release and status). An unreadable one stops the request: it is
    /// never reported as released.
    async fn read_fallbacks(&self, principal: &IamPrincipal) -> Result<Vec<Fallback>, Stop> {
        let mut found = Vec::new();
        for name in [
            policy::fallback_managed_policy_name(principal.kind, &principal.name),
            policy::legacy_fallback_managed_policy_name(&principal.name),
        ] {
            let arn = self
                .client
                .managed_policy_arn(&self.config.fallback_path, &name);
            let policy = self.client.get_managed_policy(&arn).await?;
            if let Some(p) = policy {
                let document = PolicyDocument::parse(&p.document).map_err(|e| {
                    Stop::failed(
                        "unreadable_policy",
                        format!("the managed policy {arn} cannot be read ({e}); not touching it"),
                    )
                })?;
                found.push(Fallback {
                    arn,
                    name,
                    document,
                });
            }
        }
        Ok(found)
    }

    fn written_status(&self) -> Status {
        if self.dry_run {
            Status::DryRun
        } else {
            Status::Applied
        }
    }

    /// The role-wide deny in the customer-managed policy `cutoff-revoke-<name>`, for
    /// principals whose inline budget is exhausted.
    async fn managed_fallback(
        &mut self,
        principal: &IamPrincipal,
        new: Cutoff,
        inline_previous: Option<Cutoff>,
        why: String,
    ) -> Result<Applied, Stop> {
        let name = policy::fallback_managed_policy_name(principal.kind, &principal.name);
        let path = self.config.fallback_path.clone();
        let arn = self.client.managed_policy_arn(&path, &name);
        let existing = self.client.get_managed_policy(&arn).await?;
        let existing = match existing {
            Some(policy) => Some(PolicyDocument::parse(&policy.document).map_err(|e| {
                Stop::failed(
                    "unreadable_policy",
                    format!("the managed policy {arn} cannot be read ({e}); not overwriting it"),
                )
            })?),
            None => None,
        };
        let managed_previous = existing.as_ref().and_then(PolicyDocument::role_wide_cutoff);
        let previous = inline_previous.max(managed_previous);
        let merge = policy::merge_role_wide(existing.as_ref(), new);
        let note =
            format!("the deny does not fit inline ({why}); it is in the managed policy {arn}");
        // A fallback that exists but is not attached denies nothing: look before
        // declaring the principal already revoked.
        let attached = self.client.attached_policies(principal).await?;
        let is_attached = attached.iter().any(|a| a == &arn);
        if !merge.changed && is_attached {
            return Ok(Applied {
                status: Status::AlreadyRevoked,
                cutoff: merge.cutoff,
                previous,
                policy: arn,
                scope: Scope::Role,
                notes: vec![note],
            });
        }
        let document = merge.document.to_json();
        if merge.changed && policy::policy_size(&document) > MANAGED_POLICY_BUDGET {
            return Err(Stop::failed(
                "quota",
                format!(
                    "{note}, but that policy would exceed {MANAGED_POLICY_BUDGET} characters; free inline space on {principal}"
                ),
            ));
        }
        if existing.is_none() || !is_attached {
            let summary = self.client.account_summary().await?;
            if existing.is_none() && summary.policies >= summary.policies_quota {
                return Err(Stop::failed(
                    "quota",
                    format!(
                        "{note}, but the account has {} of {} customer-managed policies; delete unused ones",
                        summary.policies, summary.policies_quota
                    ),
                ));
            }
            let per_principal = match principal.kind {
                PrincipalType::Role => summary.attached_policies_per_role_quota,
                PrincipalType::User => summary.attached_policies_per_user_quota,
            };
            if !is_attached && attached.len() as u32 >= per_principal {
                return Err(Stop::failed(
                    "quota",
                    format!(
                        "{note}, but {principal} already has {} of {per_principal} managed policies attached; detach one or free inline space",
                        attached.len()
                    ),
                ));
            }
        }
        if merge.changed {
            self.actions.push(format!("put managed policy {arn}"));
        }
        if !is_attached {
            self.actions.push(format!("attach {arn} to {principal}"));
        }
        if !self.dry_run {
            if merge.changed {
                self.client
                    .put_managed_policy(&path, &name, &document)
                    .await?;
            }
            if !is_attached {
                self.client.attach_policy(principal, &arn).await?;
            }
            self.verify_managed(&arn, merge.cutoff).await?;
        }
        Ok(Applied {
            status: self.written_status(),
            cutoff: merge.cutoff,
            previous,
            policy: arn,
            scope: Scope::Role,
            notes: vec![note],
        })
    }

    async fn verify_managed(&self, arn: &str, want: Cutoff) -> Result<(), Stop> {
        for attempt in 1..=self.config.verify_attempts {
            let policy = self.client.get_managed_policy(arn).await?;
            let cutoff = policy
                .and_then(|p| PolicyDocument::parse(&p.document).ok())
                .and_then(|d| d.role_wide_cutoff());
            if cutoff.is_some_and(|c| c >= want) {
                return Ok(());
            }
            if attempt < self.config.verify_attempts {
                tokio::time::sleep(self.config.verify_delay * attempt).await;
            }
        }
        Err(Stop::failed(
            "unverified",
            format!("wrote {arn} but read-backs did not show the cutoff {want}"),
        ))
    }

    /// What the session deny (`CutoffRevokedSessions`) holds for `session`.
    async fn read_session(
        &self,
        principal: &IamPrincipal,
        session: &SessionPrincipal,
    ) -> Result<InForce, Stop> {
        let (raw, existing) = self.read_policy(principal, SESSION_POLICY_NAME).await?;
        let cutoff = existing.as_ref().and_then(|d| d.session_cutoff(session));
        Ok(InForce {
            raw,
            existing,
            cutoff,
        })
    }

    /// Writes the session-scoped deny, escalated to role-wide when it does not fit.
    async fn write_session(
        &mut self,
        principal: &IamPrincipal,
        session: SessionPrincipal,
        state: InForce,
    ) -> Result<Applied, Stop> {
        let InForce {
            raw,
            existing,
            cutoff: previous,
        } = state;
        let new = self.cutoff_now();
        let merge = policy::merge_session(existing.as_ref(), &session, new);
        if !merge.changed {
            return Ok(Applied {
                status: Status::AlreadyRevoked,
                cutoff: merge.cutoff,
                previous,
                policy: SESSION_POLICY_NAME.to_owned(),
                scope: Scope::Session,
                notes: Vec::new(),
            });
        }
        let document = merge.document.to_json();
        let (fits, why) = self
            .fits_inline(
                principal,
                SESSION_POLICY_NAME,
                raw.as_deref(),
                &document,
                ROLE_INLINE_BUDGET,
            )
            .await?;
        if !fits {
            return self.escalate(principal, why).await;
        }
        match self
            .write_inline(principal, SESSION_POLICY_NAME, &document)
            .await
        {
            Ok(()) => {}
            Err(err) if err.kind == ErrorKind::Quota => {
                self.actions.pop();
                return self.escalate(principal, err.to_string()).await;
            }
            Err(err) => return Err(err.into()),
        }
        if !self.dry_run {
            let want = merge.cutoff;
            self.verify_inline(principal, SESSION_POLICY_NAME, |doc| {
                doc.and_then(|d| d.session_cutoff(&session))
                    .is_some_and(|c| c >= want)
            })
            .await?;
        }
        Ok(Applied {
            status: self.written_status(),
            cutoff: merge.cutoff,
            previous,
            policy: SESSION_POLICY_NAME.to_owned(),
            scope: Scope::Session,
            notes: Vec::new(),
        })
    }

    /// A session deny that does not fit becomes a role-wide one, never nothing.
    async fn escalate(&mut self, principal: &IamPrincipal, why: String) -> Result<Applied, Stop> {
        let state = self.read_role_wide(principal).await?;
        let mut applied = self
            .write_role_wide(principal, state, ROLE_INLINE_BUDGET)
            .await?;
        applied.notes.insert(
            0,
            format!("the session deny does not fit ({why}); escalated to a role-wide deny"),
        );
        Ok(applied)
    }
}

fn owner_of(info: &PrincipalInfo) -> (Owner, Option<String>) {
    owner_from_tags(&info.tags, &info.principal)
}

fn unmodifiable_reason(kind: TargetKind) -> Option<&'static str> {
    Some(match kind {
        // A role whose name only looks reserved is a role until IAM's path says
        // otherwise (anyone allowed iam:CreateRole chooses names).
        TargetKind::Role
        | TargetKind::User
        | TargetKind::InstanceProfile
        | TargetKind::ServiceLinkedRole
        | TargetKind::IdentityCenterRole => return None,
        TargetKind::Root => {
            "IAM policies cannot restrict the root user; rotate its credentials and check its MFA"
        }
        TargetKind::FederatedUser => {
            "federated users have no IAM principal to hold a deny; revoke the IAM user that called GetFederationToken"
        }
        TargetKind::Unknown => "cutoff does not know how to revoke this kind of principal",
    })
}

/// Why a role at this path (as IAM returned it) cannot be written.
fn reserved_path_reason(class: RoleClass) -> Option<&'static str> {
    match class {
        RoleClass::Ordinary => None,
        RoleClass::ServiceLinked => {
            Some("service-linked roles are owned by an AWS service and IAM refuses changes to them")
        }
        RoleClass::IdentityCenter => Some(
            "Identity Center roles are managed by their permission set; add the deny to the permission set's inline policy instead",
        ),
    }
}

/// The first 128 bits of SHA-256 of a finding id: how the dedupe marker and the key
/// records name a finding.
fn finding_digest(request: &RevocationRequest) -> Option<String> {
    request.trigger.finding_id.as_deref().map(short_hash)
}

/// What the ledger knows of a principal's revoked keys, for the skip rule.
enum KnownKeys {
    /// No ledger: the skip rule works from the first activity alone.
    NoLedger,
    Read(Vec<KeyRecord>),
    /// The ledger could not be read: whether the finding now names another key than
    /// it began with is unknown, so its first activity does not count.
    Unknown,
}

/// What `revoke` did to a user's keys, beyond the deny.
#[derive(Default)]
struct KeysContained {
    still_works: Vec<StillWorks>,
    /// The kind of the first failure that left a key working (a retry may help).
    failure_kind: Option<String>,
    notes: Vec<String>,
    /// Set when the request named a key the user does not have.
    not_the_users: Option<Stop>,
    /// When the last key this request set Inactive was confirmed inactive: sessions
    /// the key minted until then (and while that propagates) must be denied too.
    deactivated_at: Option<chrono::DateTime<chrono::Utc>>,
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
        }
    }

    /// Refuses, before any call, a target IAM cannot restrict or that is protected.
    fn refuse_unwritable(&self, target: &Target) -> Result<(), Stop> {
        if let Some(reason) = unmodifiable_reason(target.kind) {
            return Err(Stop::with(
                Status::Unmodifiable,
                format!("{target}: {reason}"),
            ));
        }
        if let Some(why) = self.config.protection.reason_for(target) {
            return Err(Stop::with(
                Status::Protected,
                format!("{target} is protected ({why}); cutoff never revokes it"),
            ));
        }
        Ok(())
    }

    /// Refuses an account outside the configured Organization list, before any call.
    fn refuse_account(&self, request: &RevocationRequest) -> Option<Stop> {
        let scope = self.config.accounts.as_ref()?;
        scope
            .refuse(&request.target.account, self.access.home())
            .map(|why| {
                Stop::failed(
                    "account_not_allowed",
                    format!("{why}; nothing is done there"),
                )
            })
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
        self.handle_checked(request, request_id, true).await
    }

    /// [`Revoker::handle`] for the requests of a batch folded into one, each already
    /// checked against the idempotency marker on its own: the first one's marker must
    /// not answer for the others.
    pub(crate) async fn handle_folded(
        &self,
        request: &RevocationRequest,
        request_id: &str,
    ) -> Outcome {
        self.handle_checked(request, request_id, false).await
    }

    async fn handle_checked(
        &self,
        request: &RevocationRequest,
        request_id: &str,
        check_earlier: bool,
    ) -> Outcome {
        let started = self.clock.now();
        if let Some(stop) = self.refuse_account(request) {
            let outcome = Outcome::for_request(request, Status::Failed, "").failed(
                stop.kind.as_deref().unwrap_or("account_not_allowed"),
                stop.message,
            );
            self.audit(request_id, request, &outcome, None).await;
            return outcome;
        }
        if !self.ledger.enabled() {
            return self
                .handle_unlocked(
                    request,
                    request_id,
                    Prepared::default(),
                    KnownKeys::NoLedger,
                )
                .await;
        }
        let writes = !request.dry_run && request.action != ManualAction::Status;
        let mut prepared = Prepared::default();
        // The lock is on the principal whose policy is written, named as the sweeper
        // and a revocation of it by name name it: an instance profile's role.
        if writes && request.target.kind == TargetKind::InstanceProfile {
            prepared.profile = self
                .role_behind_profile(request, request_id, &prepared.calls)
                .await;
        }
        let (key, locked_name) = match &prepared.profile {
            Some(ProfileLookup::Read(_, Some(role))) => (
                principal_key(&Target {
                    kind: TargetKind::Role,
                    name: role.clone(),
                    ..request.target.clone()
                }),
                format!("role `{role}` (behind {})", request.target),
            ),
            // Refused, failed or without a role: the workflow reports that without
            // writing, and the lock on the profile's own name is as good as any.
            _ => (principal_key(&request.target), request.target.to_string()),
        };
        let mut warnings: Vec<String> = Vec::new();
        let locked = if writes {
            match self.lock(&key, request_id).await {
                Ok(true) => true,
                Ok(false) => {
                    let mut outcome = Outcome::for_request(request, Status::Failed, "").failed(
                        "busy",
                        format!(
                            "another writer held the lock on {locked_name} for more than {} s; the request will be retried",
                            self.config.lock_wait.as_secs()
                        ),
                    );
                    outcome.api_calls = prepared.calls.get();
                    self.audit(request_id, request, &outcome, None).await;
                    return outcome;
                }
                // Removing a deny is not urgent and must not race a revocation:
                // without the lock it does not run (the caller retries).
                Err(e) if request.action == ManualAction::Release => {
                    tracing::warn!(error = %e, "ledger unreachable: release not run");
                    let mut outcome = Outcome::for_request(request, Status::Failed, "").failed(
                        "ledger_unavailable",
                        format!(
                            "the ledger could not be reached ({}); a release runs only under the principal lock, so nothing was removed; retry later",
                            e.kind.as_str()
                        ),
                    );
                    outcome.api_calls = prepared.calls.get();
                    return outcome;
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
            Some(k) => match self.ledger.applied(k, self.clock.now()).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "ledger unreachable: idempotency not checked");
                    None
                }
            },
            None => None,
        };
        let mut outcome = match earlier {
            Some(entry) => {
                let mut outcome = self.duplicate_of(request, &entry);
                outcome.api_calls = prepared.calls.get();
                outcome
            }
            None => {
                let known = if request.action == ManualAction::Revoke {
                    match self.ledger.key_records(&key, self.clock.now()).await {
                        Ok(records) => KnownKeys::Read(records),
                        Err(e) => {
                            tracing::warn!(error = %e, "ledger unreachable: key records not read");
                            KnownKeys::Unknown
                        }
                    }
                } else {
                    KnownKeys::NoLedger
                };
                self.handle_unlocked(request, request_id, prepared, known)
                    .await
            }
        };
        if !warnings.is_empty() {
            outcome.detail = format!("{} ({})", outcome.detail, warnings.join("; "));
        }
        self.remember_keys(request, &key, &outcome, started).await;
        let mark = dedupe
            .as_deref()
            .filter(|_| matches!(outcome.status, Status::Applied | Status::AlreadyRevoked));
        self.audit(request_id, request, &outcome, mark).await;
        if locked && let Err(e) = self.ledger.release(&key, request_id).await {
            tracing::warn!(error = %e, "principal lock not released; it expires on its own");
        }
        outcome
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
                let (Some(access_key_id), Some(cutoff)) =
                    (request.target.access_key_id.clone(), outcome.cutoff)
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
            (ManualAction::Release, Status::Released) => self.ledger.drop_keys(key).await,
            _ => return,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "key records not updated in the ledger");
        }
    }

    /// Takes the principal's lock, waiting up to `lock_wait` with backoff.
    async fn lock(&self, key: &str, holder: &str) -> Result<bool, AwsError> {
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(25);
        let mut transient = 0;
        loop {
            let now = self.clock.now();
            match self
                .ledger
                .acquire(key, holder, now, now + self.config.lock_lease)
                .await
            {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) if e.is_retryable() && transient < 3 => transient += 1,
                Err(e) => return Err(e),
            }
            if started.elapsed() >= self.config.lock_wait {
                return Ok(false);
            }
            let jitter = Duration::from_millis(fastrand::u64(0..=delay.as_millis() as u64));
            tokio::time::sleep(delay / 2 + jitter / 2).await;
            delay = (delay * 2).min(Duration::from_secs(1));
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
        match self.ledger.applied(&key, self.clock.now()).await {
            Ok(Some(entry)) => Some(self.duplicate_of(request, &entry)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "ledger unreachable: idempotency not checked");
                None
            }
        }
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
        let mark = dedupe
            .as_deref()
            .filter(|_| matches!(outcome.status, Status::Applied | Status::AlreadyRevoked));
        self.audit(request_id, request, outcome, mark).await;
    }

    /// The answer to a finding already applied within the window: the earlier
    /// attempt's status and cutoff (a redelivery after an outcome that could not be
    /// published must still tell the owner `applied`, not "already revoked"), with no
    /// IAM call of its own.
    fn duplicate_of(&self, request: &RevocationRequest, entry: &AuditEntry) -> Outcome {
        let mut outcome = Outcome::for_request(request, entry.outcome.status, "");
        outcome.cutoff = entry.outcome.cutoff;
        outcome.previous_cutoff = entry.outcome.previous_cutoff;
        outcome.policy = entry.outcome.policy.clone();
        outcome.owner = entry.outcome.owner.clone();
        outcome.propagation = entry.outcome.propagation.clone();
        outcome.still_works = entry.outcome.still_works.clone();
        outcome.other_access = entry.outcome.other_access.clone();
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

    async fn audit(
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

    /// The client for `account`, retried and counting into the request's `calls`.
    async fn client_in(
        &self,
        account: &Account,
        request_id: &str,
        calls: &Arc<CallCounter>,
    ) -> Result<Retrying<A::Client>, AwsError> {
        let client = self.access.client_for(account, request_id, calls).await?;
        Ok(Retrying::counting_into(
            client,
            self.config.retry,
            Arc::clone(calls),
        ))
    }

    /// Reads the role behind an instance profile target before the principal lock is
    /// taken, so that the lock is the role's. `None` for a target the workflow
    /// refuses before reaching the account (it then refuses it, with no call made).
    async fn role_behind_profile(
        &self,
        request: &RevocationRequest,
        request_id: &str,
        calls: &Arc<CallCounter>,
    ) -> Option<ProfileLookup<Retrying<A::Client>>> {
        let target = &request.target;
        // The workflow's own first checks: a release is not refused for a protected
        // name (lifting a deny never locks anyone out), a revocation is.
        let refused = match request.action {
            ManualAction::Release => unmodifiable_reason(target.kind).is_some(),
            _ => self.refuse_unwritable(target).is_err(),
        };
        if refused {
            return None;
        }
        let client = match self.client_in(&target.account, request_id, calls).await {
            Ok(client) => client,
            Err(err) => return Some(ProfileLookup::Failed(Stop::from(err))),
        };
        let roles = client.instance_profile_roles(&target.name).await;
        Some(match roles {
            Ok(roles) => ProfileLookup::Read(client, roles.into_iter().next()),
            Err(err) => ProfileLookup::Failed(Stop::from(err)),
        })
    }

    /// [`Revoker::handle`] without the ledger's lock and idempotency.
    async fn handle_unlocked(
        &self,
        request: &RevocationRequest,
        request_id: &str,
        prepared: Prepared<Retrying<A::Client>>,
        known: KnownKeys,
    ) -> Outcome {
        let Prepared { calls, profile } = prepared;
        let mut outcome = Outcome::for_request(request, Status::Failed, "");
        let result = match request.action {
            ManualAction::Revoke => {
                self.revoke(request, request_id, &calls, profile, known, &mut outcome)
                    .await
            }
            ManualAction::Release => {
                self.release(request, request_id, &calls, profile, &mut outcome)
                    .await
            }
            ManualAction::Status => Err(Stop::failed(
                "invalid_request",
                "status requests are answered with a status report, not an outcome",
            )),
        };
        outcome.api_calls = calls.get();
        if let Err(stop) = result {
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
        if !outcome.actions.is_empty()
            && !outcome.dry_run
            && !matches!(outcome.status, Status::Failed)
        {
            outcome.propagation = Some("eventual".to_owned());
        }
        outcome
    }

    /// The target account's client, and the instance profile's role when
    /// [`Revoker::handle`] already read it (`Some(None)`: the profile holds no role).
    async fn client(
        &self,
        request: &RevocationRequest,
        request_id: &str,
        calls: &Arc<CallCounter>,
        profile: Option<ProfileLookup<Retrying<A::Client>>>,
    ) -> Result<(Retrying<A::Client>, Option<Option<PrincipalName>>), Stop> {
        match profile {
            Some(ProfileLookup::Read(client, role)) => Ok((client, Some(role))),
            Some(ProfileLookup::Failed(stop)) => Err(stop),
            None => Ok((
                self.client_in(&request.target.account, request_id, calls)
                    .await?,
                None,
            )),
        }
    }

    /// Resolves the target to the principal that holds policies, reads it, and checks
    /// that it is one cutoff may write: not at a path IAM reserves for AWS services or
    /// Identity Center, not protected, and, when the finding named its unique id, the
    /// principal the finding is about (not one deleted and recreated since).
    async fn resolve(
        &self,
        request: &RevocationRequest,
        client: &Retrying<A::Client>,
        profile_role: Option<Option<PrincipalName>>,
        outcome: &mut Outcome,
    ) -> Result<(IamPrincipal, PrincipalInfo), Stop> {
        let target = &request.target;
        self.refuse_unwritable(target)?;
        let principal = match target.kind {
            TargetKind::InstanceProfile => {
                let role = match profile_role {
                    Some(read) => read,
                    None => client
                        .instance_profile_roles(&target.name)
                        .await?
                        .into_iter()
                        .next(),
                };
                let Some(role) = role else {
                    return Err(Stop::failed(
                        "not_found",
                        format!(
                            "instance profile {} in {} has no role",
                            target.name, target.account
                        ),
                    ));
                };
                let resolved = Target {
                    kind: TargetKind::Role,
                    name: role.clone(),
                    ..target.clone()
                };
                outcome.detail =
                    format!("instance profile {} resolves to role {role}", target.name);
                outcome.target = Some(resolved.clone());
                self.refuse_unwritable(&resolved)?;
                IamPrincipal::role(role)
            }
            TargetKind::User => IamPrincipal::user(target.name.clone()),
            _ => IamPrincipal::role(target.name.clone()),
        };
        let info = client.get_principal(&principal).await?;
        let (owner, note) = owner_of(&info);
        outcome.owner = owner;
        if let Some(note) = note {
            outcome.detail = note;
        }
        if principal.kind == PrincipalType::Role {
            // The path IAM returned decides, never the name: IAM reserves these paths
            // for the service and for Identity Center.
            let class = classify_role_path(&info.path);
            if let Some(reason) = reserved_path_reason(class) {
                return Err(Stop::with(
                    Status::Unmodifiable,
                    format!("{principal} (path {}): {reason}", info.path),
                ));
            }
            // A name that only looked reserved: it is a role like any other.
            if let Some(shown) = outcome.target.as_mut()
                && matches!(
                    shown.kind,
                    TargetKind::ServiceLinkedRole | TargetKind::IdentityCenterRole
                )
            {
                shown.kind = TargetKind::Role;
            }
        }
        if let Some(expected) = &request.expected_unique_id
            && *expected != info.unique_id
        {
            return Err(Stop::failed(
                "principal_mismatch",
                format!(
                    "{principal} in {} has the unique id {} but the finding names {expected}: it was deleted and recreated since, or is not the principal in the finding; nothing written",
                    target.account, info.unique_id
                ),
            ));
        }
        // The tag lives in the member account, where the attacker being revoked may
        // be able to set it; it protects only when the deployment says it can be
        // trusted (for example, an SCP denies tagging `cutoff:*` keys).
        if self.config.honour_protected_tag
            && info
                .tag(PROTECTED_TAG)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Err(Stop::with(
                Status::Protected,
                format!("{principal} is tagged {PROTECTED_TAG}=true; cutoff never revokes it"),
            ));
        }
        Ok((principal, info))
    }

    /// The circuit breaker, passed before the first write of an automatic revocation:
    /// at most `max_revocations_per_account_hour` per account and hour. Beyond it
    /// nothing is written and the outcome says so loudly. With the ledger unreachable
    /// the breaker is open to writes (containment first), and the outcome says that.
    async fn pass_breaker(
        &self,
        request: &RevocationRequest,
        notes: &mut Vec<String>,
    ) -> Result<(), Stop> {
        if request.trigger.source == Source::Manual || request.dry_run || !self.ledger.enabled() {
            return Ok(());
        }
        let hour = self.clock.now().format("%Y-%m-%dT%H").to_string();
        let account = &request.target.account;
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
                "circuit_open",
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

    /// The deny step: read what is in force, skip it when it already covers the
    /// finding's credential, else pass the breaker and write.
    async fn deny(
        &self,
        run: &mut Run<'_, Retrying<A::Client>>,
        request: &RevocationRequest,
        principal: &IamPrincipal,
        info: &PrincipalInfo,
        known: &KnownKeys,
        notes: &mut Vec<String>,
    ) -> Result<Applied, Stop> {
        let target = &request.target;
        let digest = finding_digest(request);
        let (records, first_activity) = match known {
            KnownKeys::Read(records) => (records.as_slice(), request.first_activity),
            KnownKeys::NoLedger => (&[][..], request.first_activity),
            KnownKeys::Unknown => (
                &[][..],
                request
                    .first_activity
                    .filter(|_| target.access_key_id.is_none()),
            ),
        };
        let evidence = coverage::Evidence {
            access_key_id: target.access_key_id.as_ref(),
            finding: digest.as_deref(),
            first_activity,
        };
        // A manual request names no activity: it always writes (a later cutoff).
        let asks_coverage = evidence.first_activity.is_some()
            || (evidence.access_key_id.is_some() && !records.is_empty());
        let session = match (principal.kind, request.scope, &target.session) {
            (PrincipalType::Role, Scope::Session, Some(s)) => Some(SessionPrincipal {
                role_id: info.unique_id.clone(),
                session: s.clone(),
            }),
            (PrincipalType::Role, Scope::Session, None) => {
                return Err(Stop::failed(
                    "invalid_request",
                    "scope session needs a session name",
                ));
            }
            _ => None,
        };
        let limit = match principal.kind {
            PrincipalType::Role => ROLE_INLINE_BUDGET,
            PrincipalType::User => USER_INLINE_BUDGET,
        };
        match session {
            Some(session) => {
                let state = run.read_session(principal, &session).await?;
                if asks_coverage
                    && let Some(cutoff) = state.cutoff
                    && let Some(why) = coverage::covered(Some(cutoff), evidence, records)
                {
                    return Ok(already(cutoff, SESSION_POLICY_NAME, Scope::Session, why));
                }
                self.pass_breaker(request, notes).await?;
                run.write_session(principal, session, state).await
            }
            None => {
                let state = run.read_role_wide(principal).await?;
                if asks_coverage {
                    let mut in_force = state.cutoff.map(|c| (c, ROLE_WIDE_POLICY_NAME.to_owned()));
                    if coverage::covered(state.cutoff, evidence, records).is_none()
                        && let Some((c, arn)) = run.attached_fallback_cutoff(principal).await?
                        && in_force.as_ref().is_none_or(|(i, _)| c > *i)
                    {
                        in_force = Some((c, arn));
                    }
                    if let Some((cutoff, policy)) = &in_force
                        && let Some(why) = coverage::covered(Some(*cutoff), evidence, records)
                    {
                        return Ok(already(*cutoff, policy, Scope::Role, why));
                    }
                }
                self.pass_breaker(request, notes).await?;
                run.write_role_wide(principal, state, limit).await
            }
        }
    }

    /// Sessions a long-term key minted are not stopped by deactivating it: only the
    /// deny stops them, and only those issued before its cutoff. The deny is written
    /// first (nothing may delay it), so a key set Inactive after it could have minted
    /// sessions in between: the cutoff is raised past the deactivation, and past the
    /// time IAM takes to propagate it.
    async fn cover_deactivation(
        &self,
        run: &mut Run<'_, Retrying<A::Client>>,
        principal: &IamPrincipal,
        applied: Applied,
        deactivated_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Applied, Stop> {
        let Some(deactivated) = deactivated_at else {
            return Ok(applied);
        };
        if run.dry_run
            || applied
                .cutoff
                .covers(deactivated + KEY_DEACTIVATION_PROPAGATION + ISSUE_TIME_SLACK)
        {
            return Ok(applied);
        }
        run.extra_margin = KEY_DEACTIVATION_PROPAGATION;
        let state = run.read_role_wide(principal).await?;
        let raised = run
            .write_role_wide(principal, state, USER_INLINE_BUDGET)
            .await?;
        let mut notes = applied.notes;
        notes.extend(raised.notes);
        notes.push(format!(
            "the cutoff was raised to {} once the key was inactive: sessions it minted before (or while IAM propagated that) are denied too",
            raised.cutoff
        ));
        Ok(Applied {
            status: raised.status,
            previous: applied.previous,
            notes,
            ..raised
        })
    }

    /// A user's keys, after the deny: the finding's long-term key, or every active key
    /// when the request names none (the whole user). A key that cannot be deactivated
    /// does not undo the deny; it is reported as still working.
    async fn contain_keys(
        &self,
        run: &mut Run<'_, Retrying<A::Client>>,
        principal: &IamPrincipal,
        named: Option<&AccessKeyId>,
    ) -> KeysContained {
        let mut result = KeysContained::default();
        let user = &principal.name;
        if let Some(key) = named
            && !key.is_long_term()
        {
            result.notes.push(format!(
                "the finding's key {key} is temporary: the deny above stops it; the long-term key of {principal} that minted it is not in this request's scope (deactivate it too if it is compromised)"
            ));
            return result;
        }
        let listed = run.client.list_access_keys(user).await;
        let to_deactivate: Vec<AccessKeyId> = match (&listed, named) {
            (Ok(keys), Some(key)) => match keys.iter().find(|k| &k.id == key) {
                None => {
                    result.not_the_users = Some(Stop::failed(
                        "key_not_found",
                        format!(
                            "access key {key} is not a key of {principal}; the deny on the user stands, but the key is not stopped: find which user owns it and contain that one"
                        ),
                    ));
                    return result;
                }
                Some(k) if !k.active => {
                    result
                        .notes
                        .push(format!("access key {key} was already inactive"));
                    Vec::new()
                }
                Some(_) => vec![key.clone()],
            },
            // The listing failed: the named key is still tried (IAM says if it is not
            // the user's).
            (Err(_), Some(key)) => vec![key.clone()],
            (Ok(keys), None) => keys
                .iter()
                .filter(|k| k.active)
                .map(|k| k.id.clone())
                .collect(),
            (Err(e), None) => {
                result.still_works.push(StillWorks {
                    credential: format!("the access keys of {principal}"),
                    why: format!(
                        "they could not be listed ({e}); a long-term key is never stopped by the TokenIssueTime deny"
                    ),
                });
                result.failure_kind = Some(e.kind.as_str().to_owned());
                return result;
            }
        };
        for key in to_deactivate {
            run.actions
                .push(format!("set access key {key} of {principal} Inactive"));
            if run.dry_run {
                continue;
            }
            match run.client.deactivate_access_key(user, &key).await {
                Ok(()) => result.deactivated_at = Some(self.clock.now()),
                Err(err) if err.kind == ErrorKind::NotFound && named.is_some() => {
                    run.actions.pop();
                    result.not_the_users = Some(Stop::failed(
                        "key_not_found",
                        format!(
                            "access key {key} is not a key of {principal}; the deny on the user stands, but the key is not stopped: find which user owns it and contain that one"
                        ),
                    ));
                }
                Err(err) => {
                    run.actions.pop();
                    result.still_works.push(StillWorks {
                        credential: format!("access key {key}"),
                        why: format!(
                            "it could not be set Inactive ({err}); a long-term key is never stopped by the TokenIssueTime deny"
                        ),
                    });
                    result
                        .failure_kind
                        .get_or_insert_with(|| err.kind.as_str().to_owned());
                }
            }
        }
        result
    }

    /// The ways into a user that neither the deny nor its keys cover, for the owner:
    /// listed, never counted against `applied`.
    async fn other_access(
        &self,
        run: &Run<'_, Retrying<A::Client>>,
        principal: &IamPrincipal,
    ) -> Vec<String> {
        let user = &principal.name;
        let mut found = Vec::new();
        match run.client.has_login_profile(user).await {
            Ok(true) => found.push("a console password (login profile): signing in to the console mints new sessions; delete or reset it if it may be known".to_owned()),
            Ok(false) => {}
            Err(e) => found.push(format!("the console password could not be checked ({e})")),
        }
        match run.client.active_ssh_public_keys(user).await {
            Ok(keys) => found.extend(
                keys.into_iter()
                    .map(|k| format!("SSH public key {k} (CodeCommit)")),
            ),
            Err(e) => found.push(format!("SSH public keys could not be checked ({e})")),
        }
        match run.client.active_service_credentials(user).await {
            Ok(services) => found.extend(
                services
                    .into_iter()
                    .map(|s| format!("a service-specific credential for {s}")),
            ),
            Err(e) => found.push(format!(
                "service-specific credentials could not be checked ({e})"
            )),
        }
        found
    }

    #[allow(clippy::too_many_arguments)]
    async fn revoke(
        &self,
        request: &RevocationRequest,
        request_id: &str,
        calls: &Arc<CallCounter>,
        profile: Option<ProfileLookup<Retrying<A::Client>>>,
        known: KnownKeys,
        outcome: &mut Outcome,
    ) -> Result<(), Stop> {
        let target = &request.target;
        // Refuse what cannot be written before reaching into the account at all.
        self.refuse_unwritable(target)?;
        let (client, profile_role) = self.client(request, request_id, calls, profile).await?;
        let (principal, info) = self
            .resolve(request, &client, profile_role, outcome)
            .await?;
        let mut notes: Vec<String> = (!outcome.detail.is_empty())
            .then(|| outcome.detail.clone())
            .into_iter()
            .collect();
        let mut run = Run {
            client: &client,
            config: &self.config,
            clock: &self.clock,
            dry_run: request.dry_run,
            actions: Vec::new(),
            extra_margin: chrono::Duration::zero(),
        };
        // The deny first: it stops every session, and nothing after it may delay it.
        let denied = self
            .deny(&mut run, request, &principal, &info, &known, &mut notes)
            .await;
        // An open circuit breaker stops every write of this request: setting keys
        // Inactive is a write that locks a user out as surely as the deny.
        let breaker_open =
            matches!(&denied, Err(stop) if stop.kind.as_deref() == Some("circuit_open"));
        let keys = match principal.kind {
            PrincipalType::User if !breaker_open => {
                let keys = self
                    .contain_keys(&mut run, &principal, target.access_key_id.as_ref())
                    .await;
                outcome.other_access = self.other_access(&run, &principal).await;
                Some(keys)
            }
            PrincipalType::User | PrincipalType::Role => None,
        };
        let wrote_keys = run.actions.iter().any(|a| a.starts_with("set access key"));
        let keys = keys.unwrap_or_default();
        let applied = match denied {
            Ok(applied) => {
                self.cover_deactivation(&mut run, &principal, applied, keys.deactivated_at)
                    .await
            }
            Err(stop) => Err(stop),
        };
        outcome.actions = run.actions;
        let applied = applied?;
        if let Some(stop) = keys.not_the_users {
            return Err(stop);
        }
        notes.extend(applied.notes);
        notes.extend(keys.notes);
        outcome.status = match applied.status {
            Status::AlreadyRevoked if wrote_keys && !request.dry_run => Status::Applied,
            other => other,
        };
        outcome.cutoff = Some(applied.cutoff);
        outcome.previous_cutoff = applied.previous;
        outcome.policy = Some(applied.policy);
        outcome.scope = applied.scope;
        let verb = match applied.status {
            Status::Applied => "denied",
            Status::DryRun => "would deny",
            _ => "already denies",
        };
        let scope = match applied.scope {
            Scope::Role => "every session".to_owned(),
            Scope::Session => format!(
                "session {}",
                target.session.as_ref().map(|s| s.as_str()).unwrap_or("?")
            ),
        };
        let mut detail = format!(
            "{verb} {scope} of {principal} in {} issued before {}",
            target.account, applied.cutoff
        );
        for note in notes {
            detail.push_str("; ");
            detail.push_str(&note);
        }
        if !keys.still_works.is_empty() && !request.dry_run {
            outcome.status = Status::Partial;
            let kind = keys.failure_kind.unwrap_or_else(|| "transient".to_owned());
            let what: Vec<String> = keys
                .still_works
                .iter()
                .map(|s| format!("{} still works: {}", s.credential, s.why))
                .collect();
            detail.push_str("; NOT fully contained: ");
            detail.push_str(&what.join("; "));
            outcome.error = Some(OutcomeError {
                kind,
                message: what.join("; "),
            });
            outcome.still_works = keys.still_works;
        }
        outcome.detail = detail;
        Ok(())
    }

    async fn release(
        &self,
        request: &RevocationRequest,
        request_id: &str,
        calls: &Arc<CallCounter>,
        profile: Option<ProfileLookup<Retrying<A::Client>>>,
        outcome: &mut Outcome,
    ) -> Result<(), Stop> {
        let target = &request.target;
        if let Some(reason) = unmodifiable_reason(target.kind) {
            return Err(Stop::with(
                Status::Unmodifiable,
                format!("{target}: {reason}"),
            ));
        }
        let (client, profile_role) = self.client(request, request_id, calls, profile).await?;
        let (principal, info) = self
            .resolve_for_release(request, &client, profile_role, outcome)
            .await?;
        let now = self.clock.now();
        let max_session = principal.kind.max_session();
        let mut run = Run {
            client: &client,
            config: &self.config,
            clock: &self.clock,
            dry_run: request.dry_run,
            actions: Vec::new(),
            extra_margin: chrono::Duration::zero(),
        };
        let (policy_name, session) = match (request.scope, &target.session) {
            (Scope::Session, Some(s)) => (
                SESSION_POLICY_NAME,
                Some(SessionPrincipal {
                    role_id: info.unique_id.clone(),
                    session: s.clone(),
                }),
            ),
            (Scope::Session, None) => {
                return Err(Stop::failed(
                    "invalid_request",
                    "scope session needs a session name",
                ));
            }
            (Scope::Role, _) => (ROLE_WIDE_POLICY_NAME, None),
        };
        let (_, inline) = run.read_policy(&principal, policy_name).await?;
        let inline_cutoff = inline.as_ref().and_then(|d| match &session {
            Some(s) => d.session_cutoff(s),
            None => d.role_wide_cutoff(),
        });
        // The managed fallback only ever holds role-wide denies.
        let managed = if session.is_none() {
            run.read_fallbacks(&principal).await?
        } else {
            Vec::new()
        };
        let managed_cutoff = managed
            .iter()
            .filter_map(|f| f.document.role_wide_cutoff())
            .max();
        let Some(latest) = inline_cutoff.max(managed_cutoff) else {
            outcome.status = Status::Released;
            outcome.detail = format!(
                "{principal} in {} has no cutoff deny; nothing to release",
                target.account
            );
            return Ok(());
        };
        outcome.previous_cutoff = Some(latest);
        let age = now - latest.as_datetime();
        if age < max_session && !request.force {
            return Err(Stop::failed(
                "refused",
                format!(
                    "the cutoff {latest} on {principal} is {} old and sessions issued before it can live up to {} h; releasing now could let a stolen session back in (release with force, `cutoff release --force`, to do it anyway)",
                    cutoff_domain::sweep_rules::humanize(age),
                    max_session.num_hours()
                ),
            ));
        }
        if let Some(doc) = &inline {
            let (remaining, changed) = match &session {
                Some(s) => {
                    let removal = policy::remove_session(doc, s);
                    let changed = !removal.removed.is_empty();
                    (removal.remaining, changed)
                }
                None => {
                    let removal = policy::remove_role_wide(doc);
                    let changed = removal.changed();
                    (removal.remaining, changed)
                }
            };
            if changed {
                match remaining {
                    Some(rest) => {
                        run.write_inline(&principal, policy_name, &rest.to_json())
                            .await?;
                    }
                    None => {
                        run.actions.push(format!(
                            "delete inline policy {policy_name} from {principal}"
                        ));
                        if !run.dry_run {
                            client.delete_inline_policy(&principal, policy_name).await?;
                        }
                    }
                }
                if !run.dry_run {
                    let session = session.clone();
                    run.verify_inline(&principal, policy_name, |doc| match (&session, doc) {
                        (_, None) => true,
                        (Some(s), Some(d)) => d.session_cutoff(s).is_none(),
                        (None, Some(d)) => d.role_wide_cutoff().is_none(),
                    })
                    .await?;
                }
            }
        }
        for Fallback {
            arn,
            name,
            document: doc,
        } in &managed
        {
            let removal = policy::remove_role_wide(doc);
            if removal.changed() {
                match removal.remaining {
                    Some(rest) => {
                        run.actions.push(format!("put managed policy {arn}"));
                        if !run.dry_run {
                            let json = rest.to_json();
                            client
                                .put_managed_policy(&self.config.fallback_path, name, &json)
                                .await?;
                        }
                    }
                    None => {
                        run.actions
                            .push(format!("detach and delete managed policy {arn}"));
                        if !run.dry_run {
                            client.detach_policy(&principal, arn).await?;
                            client.delete_managed_policy(arn).await?;
                        }
                    }
                }
            }
        }
        outcome.actions = run.actions;
        outcome.status = if request.dry_run {
            Status::DryRun
        } else {
            Status::Released
        };
        outcome.policy = Some(policy_name.to_owned());
        outcome.detail = format!(
            "{} the cutoff {latest} ({} old) on {principal} in {}",
            if request.dry_run {
                "would release"
            } else {
                "released"
            },
            cutoff_domain::sweep_rules::humanize(age),
            target.account
        );
        Ok(())
    }

    /// Release needs the principal (and its RoleId for session scope) but not the
    /// protection checks: removing a deny never locks anyone out.
    async fn resolve_for_release(
        &self,
        request: &RevocationRequest,
        client: &Retrying<A::Client>,
        profile_role: Option<Option<PrincipalName>>,
        outcome: &mut Outcome,
    ) -> Result<(IamPrincipal, PrincipalInfo), Stop> {
        let target = &request.target;
        let principal = match target.kind {
            TargetKind::User => IamPrincipal::user(target.name.clone()),
            TargetKind::InstanceProfile => {
                let role = match profile_role {
                    Some(read) => read,
                    None => client
                        .instance_profile_roles(&target.name)
                        .await?
                        .into_iter()
                        .next(),
                };
                let role = role.ok_or_else(|| {
                    Stop::failed(
                        "not_found",
                        format!("instance profile {} has no role", target.name),
                    )
                })?;
                IamPrincipal::role(role)
            }
            _ => IamPrincipal::role(target.name.clone()),
        };
        let info = client.get_principal(&principal).await?;
        outcome.owner = owner_of(&info).0;
        Ok((principal, info))
    }

    /// The deny state of a principal: cutoffs, where they live, their age, and
    /// whether they still matter.
    pub async fn status(&self, request: &RevocationRequest, request_id: &str) -> StatusReport {
        let calls: Arc<CallCounter> = Arc::default();
        let mut report = StatusReport {
            target: request.target.clone(),
            owner: Owner::default(),
            role_wide: None,
            sessions: Vec::new(),
            api_calls: 0,
            error: None,
        };
        let result: Result<(), Stop> = async {
            // Reading is reaching into an account too: only the configured ones.
            if let Some(stop) = self.refuse_account(request) {
                return Err(stop);
            }
            let client = self
                .client_in(&request.target.account, request_id, &calls)
                .await?;
            let mut scratch = Outcome::for_request(request, Status::Failed, "");
            let (principal, _) = self
                .resolve_for_release(request, &client, None, &mut scratch)
                .await?;
            report.owner = scratch.owner;
            let now = self.clock.now();
            let max_session = principal.kind.max_session();
            let state = |cutoff: Cutoff, policy: String| {
                let age = now - cutoff.as_datetime();
                DenyState {
                    cutoff,
                    policy,
                    age_seconds: age.num_seconds(),
                    still_effective: age < max_session,
                }
            };
            let run = Run {
                client: &client,
                config: &self.config,
                clock: &self.clock,
                dry_run: true,
                actions: Vec::new(),
                extra_margin: chrono::Duration::zero(),
            };
            let (_, inline) = run.read_policy(&principal, ROLE_WIDE_POLICY_NAME).await?;
            let mut role_wide = inline
                .and_then(|d| d.role_wide_cutoff())
                .map(|c| state(c, ROLE_WIDE_POLICY_NAME.to_owned()));
            for fallback in run.read_fallbacks(&principal).await? {
                if let Some(c) = fallback.document.role_wide_cutoff()
                    && role_wide.as_ref().is_none_or(|r| c > r.cutoff)
                {
                    role_wide = Some(state(c, fallback.arn));
                }
            }
            report.role_wide = role_wide;
            if principal.kind == PrincipalType::Role {
                let (_, sessions) = run.read_policy(&principal, SESSION_POLICY_NAME).await?;
                report.sessions = sessions
                    .map(|d| d.session_cutoffs())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(sp, c)| SessionDenyState {
                        userid: sp.to_string(),
                        deny: state(c, SESSION_POLICY_NAME.to_owned()),
                    })
                    .collect();
            }
            Ok(())
        }
        .await;
        report.api_calls = calls.get();
        if let Err(stop) = result {
            report.error = Some(OutcomeError {
                kind: stop.kind.unwrap_or_else(|| stop.status.as_str().to_owned()),
                message: stop.message,
            });
        }
        report
    }
}

/// "3h 20m", "45m", "12s".
mod self_check;
pub use self_check::SelfCheckIdentity;

#[cfg(test)]
mod tests;
