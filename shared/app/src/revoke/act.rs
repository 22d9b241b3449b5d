//! Act and verify: the deny, read back before it counts, then a user's keys. Every
//! write goes through the [`DenyWriter`].
//!
//! - [`Revoker::deny`]: read what is in force; skip when it already covers the
//!   finding's credential; else pass the circuit breaker and write the role-wide deny
//!   inline ([`Run::write_role_wide`]), in the managed fallback when the inline budget
//!   is full ([`Run::managed_fallback`]), or the session deny ([`Run::write_session`],
//!   escalated to role-wide when it does not fit).
//! - [`Revoker::contain_keys`]: a user's long-term keys set Inactive, after the deny
//!   (nothing may delay it), and [`Revoker::cover_deactivation`] raises the cutoff
//!   past the deactivation.
//! - [`revoked`]: what it all comes to, for the outcome.

use cutoff_aws::dynamodb::Ledger;
use cutoff_aws::{
    AccessKeys, AccountAccess, ErrorKind, IamApi, IamPrincipal, PrincipalInfo, PrincipalType,
};
use cutoff_domain::clock::Clock;
use cutoff_domain::coverage::{self, ISSUE_TIME_SLACK};
use cutoff_domain::event::Scope;
use cutoff_domain::outcome::{FailureKind, OutcomeError, RevocationRequest, Status, StillWorks};
use cutoff_domain::policy::{
    self, Budget, Cutoff, MANAGED_POLICY_BUDGET, PolicyDocument, ROLE_INLINE_BUDGET,
    ROLE_WIDE_POLICY_NAME, SESSION_POLICY_NAME, SessionPrincipal, USER_INLINE_BUDGET,
};
use cutoff_domain::principal::AccessKeyId;

use super::guard::{KnownKeys, finding_digest};
use super::resolve::Resolved;
use super::{Done, KEY_DEACTIVATION_PROPAGATION, Record, RevokeConfig, Revoker, Stop};
use crate::deny_writer::{DenyWriter, ReadBack};

/// What one deny policy holds before a write.
pub(super) struct InForce {
    /// The stored text (for the size check) and the parsed document.
    raw: Option<String>,
    existing: Option<PolicyDocument>,
    /// The cutoff in force for what the request is about (role-wide, or the session).
    cutoff: Option<Cutoff>,
}

/// A deny merged with what is in force, ready to be written inline.
struct Merged {
    name: &'static str,
    scope: Scope,
    document: String,
    cutoff: Cutoff,
    /// False when what is in force already covers it: nothing to write.
    changed: bool,
    /// Said when nothing is written.
    unchanged_note: Option<String>,
}

/// What writing a merged deny inline came to.
enum Inline {
    /// Written and read back, or already in force.
    Written(Applied),
    /// It does not fit inline, and why; the cutoff in force before, for the deny
    /// written elsewhere.
    DoesNotFit {
        why: String,
        previous: Option<Cutoff>,
    },
}

/// What a deny step did.
pub(super) struct Applied {
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

/// A managed fallback policy as read.
pub(super) struct Fallback {
    pub arn: String,
    pub name: String,
    pub document: PolicyDocument,
}

/// What `revoke` did to a user's keys, beyond the deny.
#[derive(Default)]
pub(super) struct KeysContained {
    still_works: Vec<StillWorks>,
    /// The kind of the first failure that left a key working (a retry may help).
    failure_kind: Option<FailureKind>,
    notes: Vec<String>,
    /// How many keys were (or, in a dry run, would be) set Inactive.
    set_inactive: usize,
    /// Set when the request named a key the user does not have.
    not_the_users: Option<Stop>,
    /// When IAM answered that the last key this request set Inactive is inactive:
    /// sessions the key minted until then (and while that propagates) must be denied
    /// too.
    deactivated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// One request's writes: the writer for its account, the rules, the clock.
pub(super) struct Run<'r, C> {
    pub writer: DenyWriter<'r, C>,
    config: &'r RevokeConfig,
    clock: &'r dyn Clock,
    /// Added to the margin of a new cutoff: set when the cutoff must also cover what a
    /// deactivated key could mint while its deactivation propagates.
    extra_margin: chrono::Duration,
}

impl<'r, C: IamApi> Run<'r, C> {
    pub fn new(
        client: &'r C,
        config: &'r RevokeConfig,
        clock: &'r dyn Clock,
        dry_run: bool,
    ) -> Self {
        let read_back = ReadBack {
            attempts: config.verify_attempts,
            delay: config.verify_delay,
        };
        Self {
            writer: DenyWriter::new(client, dry_run, read_back),
            config,
            clock,
            extra_margin: chrono::Duration::zero(),
        }
    }

    fn client(&self) -> &'r C {
        self.writer.client()
    }

    /// The cutoff, taken as late as possible: after the existing policy is read, just
    /// before the document is built. Taken earlier, a run slowed by throttling would
    /// write a cutoff older than the write, and sessions minted in between survive.
    fn cutoff_now(&self) -> Cutoff {
        Cutoff::at_or_after(self.clock.now() + self.config.margin + self.extra_margin)
    }

    /// An inline policy as stored and parsed; one that cannot be parsed stops the
    /// request (it is never overwritten).
    pub async fn read_policy(
        &self,
        principal: &IamPrincipal,
        name: &str,
    ) -> Result<(Option<String>, Option<PolicyDocument>), Stop> {
        let raw = self.client().get_inline_policy(principal, name).await?;
        let doc = match &raw {
            Some(text) => Some(PolicyDocument::parse(text).map_err(|e| {
                Stop::failed(
                    FailureKind::UnreadablePolicy,
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
        let names = self.client().list_inline_policies(principal).await?;
        let mut used = 0;
        for name in names.iter().filter(|n| n.as_str() != except) {
            let raw = self.client().get_inline_policy(principal, name).await?;
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
        if !self.writer.dry_run() && size <= limit {
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

    /// Reads the inline policy back until `check` accepts it.
    pub async fn verify_inline(
        &self,
        principal: &IamPrincipal,
        name: &str,
        check: impl Fn(Option<&PolicyDocument>) -> bool,
    ) -> Result<(), Stop> {
        if self.writer.inline_shows(principal, name, check).await? {
            return Ok(());
        }
        Err(Stop::failed(
            FailureKind::Unverified,
            format!(
                "wrote {name} on {principal} but {} read-backs did not show the expected deny (IAM is eventually consistent, or another writer changed it); the request will be retried",
                self.config.verify_attempts
            ),
        ))
    }

    /// What the role-wide deny (`AWSRevokeOlderSessions`) holds now.
    pub async fn read_role_wide(&self, principal: &IamPrincipal) -> Result<InForce, Stop> {
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
        let attached = self.client().attached_policies(principal).await?;
        let mut latest: Option<(Cutoff, String)> = None;
        for arn in attached.iter().filter(|arn| {
            arn.rsplit('/')
                .next()
                .is_some_and(|name| policy::is_fallback_of(name, principal.kind, &principal.name))
        }) {
            let found = self.client().get_managed_policy(arn).await?;
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
        let new = self.cutoff_now();
        let merge = policy::merge_role_wide(state.existing.as_ref(), new);
        let merged = Merged {
            name: ROLE_WIDE_POLICY_NAME,
            scope: Scope::Role,
            document: merge.document.to_json(),
            cutoff: merge.cutoff,
            changed: merge.changed,
            unchanged_note: Some(format!(
                "the existing cutoff {} is already at or after {new}",
                merge.cutoff
            )),
        };
        let want = merge.cutoff;
        let shows = |doc: Option<&PolicyDocument>| {
            doc.and_then(PolicyDocument::role_wide_cutoff)
                .is_some_and(|c| c >= want)
        };
        match self
            .write_merged(principal, state, merged, limit, shows)
            .await?
        {
            Inline::Written(applied) => Ok(applied),
            Inline::DoesNotFit { why, previous } => {
                self.managed_fallback(principal, new, previous, why).await
            }
        }
    }

    /// Writes a merged deny as its inline policy and reads it back, unless it does
    /// not fit (by the budget, or by IAM's own answer): the caller then puts it
    /// elsewhere, never nowhere.
    async fn write_merged(
        &mut self,
        principal: &IamPrincipal,
        state: InForce,
        merged: Merged,
        limit: usize,
        shows: impl Fn(Option<&PolicyDocument>) -> bool,
    ) -> Result<Inline, Stop> {
        let InForce {
            raw,
            cutoff: previous,
            ..
        } = state;
        let Merged {
            name,
            scope,
            document,
            cutoff,
            changed,
            unchanged_note,
        } = merged;
        let applied = |status, notes| Applied {
            status,
            cutoff,
            previous,
            policy: name.to_owned(),
            scope,
            notes,
        };
        if !changed {
            let notes = unchanged_note.into_iter().collect();
            return Ok(Inline::Written(applied(Status::AlreadyRevoked, notes)));
        }
        let (fits, why) = self
            .fits_inline(principal, name, raw.as_deref(), &document, limit)
            .await?;
        if !fits {
            return Ok(Inline::DoesNotFit { why, previous });
        }
        match self.writer.put_inline(principal, name, &document).await {
            Ok(()) => {}
            // IAM is the authority on its quota; if it disagrees with our count,
            // the deny goes elsewhere rather than nowhere.
            Err(err) if err.kind == ErrorKind::Quota => {
                return Ok(Inline::DoesNotFit {
                    why: format!("IAM refused the inline write ({err})"),
                    previous,
                });
            }
            Err(err) => return Err(err.into()),
        }
        self.verify_inline(principal, name, shows).await?;
        Ok(Inline::Written(applied(self.written_status(), Vec::new())))
    }

    /// A managed policy's default version, parsed; one that cannot be parsed stops
    /// the request (it is never overwritten, nor reported released).
    async fn read_managed(&self, arn: &str) -> Result<Option<PolicyDocument>, Stop> {
        let Some(policy) = self.client().get_managed_policy(arn).await? else {
            return Ok(None);
        };
        PolicyDocument::parse(&policy.document)
            .map(Some)
            .map_err(|e| {
                Stop::failed(
                    FailureKind::UnreadablePolicy,
                    format!("the managed policy {arn} cannot be read ({e}); not changing it"),
                )
            })
    }

    /// The principal's managed fallbacks, under the current and the legacy name,
    /// read whole (release and status). An unreadable one stops the request: it is
    /// never reported as released.
    pub async fn read_fallbacks(&self, principal: &IamPrincipal) -> Result<Vec<Fallback>, Stop> {
        let mut found = Vec::new();
        for name in [
            policy::fallback_managed_policy_name(principal.kind, &principal.name),
            policy::legacy_fallback_managed_policy_name(&principal.name),
        ] {
            let arn = self
                .client()
                .managed_policy_arn(&self.config.fallback_path, &name);
            if let Some(document) = self.read_managed(&arn).await? {
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
        if self.writer.dry_run() {
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
        let arn = self.client().managed_policy_arn(&path, &name);
        let existing = self.read_managed(&arn).await?;
        let managed_previous = existing.as_ref().and_then(PolicyDocument::role_wide_cutoff);
        let previous = inline_previous.max(managed_previous);
        let merge = policy::merge_role_wide(existing.as_ref(), new);
        let note =
            format!("the deny does not fit inline ({why}); it is in the managed policy {arn}");
        // A fallback that exists but is not attached denies nothing: look before
        // declaring the principal already revoked.
        let attached = self.client().attached_policies(principal).await?;
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
                FailureKind::Quota,
                format!(
                    "{note}, but that policy would exceed {MANAGED_POLICY_BUDGET} characters; free inline space on {principal}"
                ),
            ));
        }
        if existing.is_none() || !is_attached {
            let summary = self.client().account_summary().await?;
            if existing.is_none() && summary.policies >= summary.policies_quota {
                return Err(Stop::failed(
                    FailureKind::Quota,
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
                    FailureKind::Quota,
                    format!(
                        "{note}, but {principal} already has {} of {per_principal} managed policies attached; detach one or free inline space",
                        attached.len()
                    ),
                ));
            }
        }
        if merge.changed {
            self.writer.put_managed(&path, &name, &document).await?;
        }
        if !is_attached {
            self.writer.attach(principal, &arn).await?;
        }
        let want = merge.cutoff;
        let seen = self
            .writer
            .managed_shows(&arn, |doc| {
                doc.and_then(PolicyDocument::role_wide_cutoff)
                    .is_some_and(|c| c >= want)
            })
            .await?;
        if !seen {
            return Err(Stop::failed(
                FailureKind::Unverified,
                format!("wrote {arn} but read-backs did not show the cutoff {want}"),
            ));
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
        let merge = policy::merge_session(state.existing.as_ref(), &session, self.cutoff_now());
        let merged = Merged {
            name: SESSION_POLICY_NAME,
            scope: Scope::Session,
            document: merge.document.to_json(),
            cutoff: merge.cutoff,
            changed: merge.changed,
            unchanged_note: None,
        };
        let want = merge.cutoff;
        let shows = |doc: Option<&PolicyDocument>| {
            doc.and_then(|d| d.session_cutoff(&session))
                .is_some_and(|c| c >= want)
        };
        match self
            .write_merged(principal, state, merged, ROLE_INLINE_BUDGET, shows)
            .await?
        {
            Inline::Written(applied) => Ok(applied),
            Inline::DoesNotFit { why, .. } => self.escalate(principal, why).await,
        }
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

/// The access key `key` is not `principal`'s: the deny stands, the key is not stopped.
fn not_the_users(key: &AccessKeyId, principal: &IamPrincipal) -> Stop {
    Stop::failed(
        FailureKind::KeyNotFound,
        format!(
            "access key {key} is not a key of {principal}; the deny on the user stands, but the key is not stopped: find which user owns it and contain that one"
        ),
    )
}

impl<A: AccountAccess, K: Clock, L: Ledger> Revoker<A, K, L> {
    /// The revocation, from the resolved principal to the verified deny and the
    /// contained keys. What it writes and what it finds about the user's other ways in
    /// go into `record` whatever the end.
    pub(super) async fn revoke<C: IamApi>(
        &self,
        request: &RevocationRequest,
        resolved: Resolved<C>,
        known: &KnownKeys,
        record: &mut Record,
    ) -> Result<Done, Stop> {
        let Resolved {
            client,
            principal,
            info,
            mut notes,
            ..
        } = resolved;
        let mut run = Run::new(&client, &self.config, &self.clock, request.dry_run);
        // The deny first: it stops every session, and nothing after it may delay it.
        let denied = self
            .deny(&mut run, request, &principal, &info, known, &mut notes)
            .await;
        // An open circuit breaker stops every write of this request: setting keys
        // Inactive is a write that locks a user out as surely as the deny.
        let breaker_open =
            matches!(&denied, Err(stop) if stop.kind == Some(FailureKind::CircuitOpen));
        let keys = match principal.kind {
            PrincipalType::User if !breaker_open => {
                let keys = self
                    .contain_keys(&mut run, &principal, request.target.access_key_id.as_ref())
                    .await;
                record.other_access = other_access(&client, &principal).await;
                keys
            }
            PrincipalType::User | PrincipalType::Role => KeysContained::default(),
        };
        let applied = match denied {
            Ok(applied) => {
                self.cover_deactivation(&mut run, &principal, applied, keys.deactivated_at)
                    .await
            }
            Err(stop) => Err(stop),
        };
        record.actions = run.writer.into_actions();
        let applied = applied?;
        if let Some(stop) = keys.not_the_users {
            return Err(stop);
        }
        Ok(revoked(request, &principal, applied, keys, notes))
    }

    /// The deny step: read what is in force, skip it when it already covers the
    /// finding's credential, else pass the breaker and write.
    async fn deny<C: IamApi>(
        &self,
        run: &mut Run<'_, C>,
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
                    FailureKind::InvalidRequest,
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
    async fn cover_deactivation<C: IamApi>(
        &self,
        run: &mut Run<'_, C>,
        principal: &IamPrincipal,
        applied: Applied,
        deactivated_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Applied, Stop> {
        let Some(deactivated) = deactivated_at else {
            return Ok(applied);
        };
        if run.writer.dry_run()
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
    async fn contain_keys<C: IamApi>(
        &self,
        run: &mut Run<'_, C>,
        principal: &IamPrincipal,
        named: Option<&AccessKeyId>,
    ) -> KeysContained {
        let mut result = KeysContained::default();
        if let Some(key) = named
            && !key.is_long_term()
        {
            result.notes.push(format!(
                "the finding's key {key} is temporary: the deny above stops it; the long-term key of {principal} that minted it is not in this request's scope: the follow-up finds it in CloudTrail (the GetSessionToken that returned this key) and sets it Inactive"
            ));
            return result;
        }
        let listed = run.client().list_access_keys(&principal.name).await;
        let to_deactivate: Vec<AccessKeyId> = match (&listed, named) {
            (Ok(keys), Some(key)) => match keys.iter().find(|k| &k.id == key) {
                None => {
                    result.not_the_users = Some(not_the_users(key, principal));
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
                result.failure_kind = Some(e.kind.into());
                return result;
            }
        };
        for key in to_deactivate {
            match run.writer.deactivate_key(principal, &key).await {
                Ok(()) => {
                    result.set_inactive += 1;
                    if !run.writer.dry_run() {
                        result.deactivated_at = Some(self.clock.now());
                    }
                }
                Err(err) if err.kind == ErrorKind::NotFound && named.is_some() => {
                    result.not_the_users = Some(not_the_users(&key, principal));
                }
                Err(err) => {
                    result.still_works.push(StillWorks {
                        credential: format!("access key {key}"),
                        why: format!(
                            "it could not be set Inactive ({err}); a long-term key is never stopped by the TokenIssueTime deny"
                        ),
                    });
                    result.failure_kind.get_or_insert(err.kind.into());
                }
            }
        }
        result
    }
}

/// The ways into a user that neither the deny nor its keys cover, for the owner:
/// listed, never counted against `applied`.
async fn other_access<C: AccessKeys>(client: &C, principal: &IamPrincipal) -> Vec<String> {
    let user = &principal.name;
    let mut found = Vec::new();
    match client.has_login_profile(user).await {
        Ok(true) => found.push("a console password (login profile): signing in to the console mints new sessions; delete or reset it if it may be known".to_owned()),
        Ok(false) => {}
        Err(e) => found.push(format!("the console password could not be checked ({e})")),
    }
    match client.active_ssh_public_keys(user).await {
        Ok(keys) => found.extend(
            keys.into_iter()
                .map(|k| format!("SSH public key {k} (CodeCommit)")),
        ),
        Err(e) => found.push(format!("SSH public keys could not be checked ({e})")),
    }
    match client.active_service_credentials(user).await {
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

/// What a revocation comes to: the deny applied (or already in force), the keys, and
/// the notes of the steps, in words.
fn revoked(
    request: &RevocationRequest,
    principal: &IamPrincipal,
    applied: Applied,
    keys: KeysContained,
    notes: Vec<String>,
) -> Done {
    let target = &request.target;
    let mut status = match applied.status {
        // A key set Inactive is a change made now, whatever the deny was.
        Status::AlreadyRevoked if keys.set_inactive > 0 && !request.dry_run => Status::Applied,
        other => other,
    };
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
    for note in notes.iter().chain(&applied.notes).chain(&keys.notes) {
        detail.push_str("; ");
        detail.push_str(note);
    }
    let mut error = None;
    let mut still_works = Vec::new();
    if !keys.still_works.is_empty() && !request.dry_run {
        status = Status::Partial;
        let what: Vec<String> = keys
            .still_works
            .iter()
            .map(|s| format!("{} still works: {}", s.credential, s.why))
            .collect();
        detail.push_str("; NOT fully contained: ");
        detail.push_str(&what.join("; "));
        error = Some(OutcomeError {
            kind: keys.failure_kind.unwrap_or(FailureKind::Transient),
            message: what.join("; "),
        });
        still_works = keys.still_works;
    }
    Done {
        status,
        detail,
        cutoff: Some(applied.cutoff),
        previous: applied.previous,
        policy: Some(applied.policy),
        scope: applied.scope,
        still_works,
        error,
        identity_center: None,
    }
}
