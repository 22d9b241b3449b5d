//! Human approval: a medium-severity finding (at or above the alert threshold, below
//! the revoke threshold) that would otherwise be revoked in every respect is, with
//! `CUTOFF_MEDIUM_FINDINGS=ask`, queued as a request that *needs approval*. The revoker
//! writes nothing to IAM for it: it records an [`Approval`] in the ledger, pending until
//! [`Approval::expires_at`], and publishes an `awaiting_approval` outcome whose message
//! carries the command that approves it ([`approve_command`]). An operator approves or
//! refuses it through the operator path (the revoker's function URL, where AWS verified
//! the caller); approving runs the stored request, as stored, through the normal revoke
//! path. The scheduled sweeper expires what nobody decided.
//!
//! The rules here are pure: the id ([`ApprovalId::of`]), when an approval can still be
//! decided ([`Approval::is_open`], [`Approval::expiry_due`]), who may not decide it
//! ([`is_the_suspect`]), and the operator's requests ([`ApprovalAction`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::event::manual::OperatorText;
use crate::outcome::RevocationRequest;
pub use crate::outcome::{ApprovalId, ApprovalNote, ApprovalState};
use crate::principal::{PrincipalArn, PrincipalResource, Target, TargetKind, clean_text, excerpt};

impl ApprovalId {
    /// The id of the approval `request` asks for. Built from the finding and whom the
    /// request revokes (source, product, finding id, principal, scope, session, key,
    /// unique id, custom action, dry run), never from the finding's update time: a
    /// redelivered message and every later update of the same finding about the same
    /// credential map to the same approval, so that one question is asked once. A
    /// request that names no finding is identified by its content (times left out).
    /// Each field is length-prefixed, so that no two requests hash the same text.
    pub fn of(request: &RevocationRequest) -> Self {
        let mut hasher = Sha256::new();
        let mut field = |value: &str| {
            hasher.update((value.len() as u64).to_be_bytes());
            hasher.update(value.as_bytes());
        };
        field("cutoff-approval-v1");
        let t = &request.target;
        let tr = &request.trigger;
        match &tr.finding_id {
            Some(id) => {
                for value in [
                    tr.source.as_str(),
                    tr.product_arn.as_deref().unwrap_or(""),
                    id,
                    &crate::queue::group_id(request),
                    request.scope.as_str(),
                    t.session.as_ref().map_or("", |s| s.as_str()),
                    t.access_key_id.as_ref().map_or("", |k| k.as_str()),
                    request
                        .expected_unique_id
                        .as_ref()
                        .map_or("", |u| u.as_str()),
                    tr.custom_action.as_deref().unwrap_or(""),
                    if request.dry_run { "dry" } else { "real" },
                ] {
                    field(value);
                }
            }
            None => {
                let mut timeless = request.clone();
                timeless.trigger.updated_at = None;
                timeless.event_time = None;
                timeless.first_activity = None;
                // Plain data with string keys: serialising cannot fail.
                field(&serde_json::to_string(&timeless).unwrap_or_default());
            }
        }
        let digest = hasher.finalize();
        Self(
            digest
                .iter()
                .take(Self::LEN / 2)
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }
}

/// How long an approval stays open: `CUTOFF_APPROVAL_HOURS`, 1 to 72 hours, 4 by
/// default. Long enough for someone on call to answer; short enough that a stolen
/// session nobody looked at is not left waiting for a day (its finding, if it goes on,
/// asks again once the approval expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalHours(u32);

impl ApprovalHours {
    pub const DEFAULT: ApprovalHours = ApprovalHours(4);
    pub const MAX: u32 = 72;

    pub fn parse(value: &str) -> Result<Self, String> {
        value
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|h| (1..=Self::MAX).contains(h))
            .map(Self)
            .ok_or_else(|| {
                format!(
                    "expected how many hours an approval stays open, 1 to {}",
                    Self::MAX
                )
            })
    }

    pub fn get(self) -> u32 {
        self.0
    }

    pub fn duration(self) -> chrono::Duration {
        chrono::Duration::hours(i64::from(self.0))
    }
}

impl Default for ApprovalHours {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One approval as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub id: ApprovalId,
    pub state: ApprovalState,
    /// The request as it was queued: what an approval runs, and nothing else.
    pub request: RevocationRequest,
    /// Who owns the principal (its tags, read when it was asked), so that the
    /// messages of its refusal or expiry reach the same topics as the question.
    #[serde(default)]
    pub owner: crate::outcome::Owner,
    pub created_at: DateTime<Utc>,
    /// From this instant on, it can no longer be approved or refused.
    pub expires_at: DateTime<Utc>,
    /// Who approved or refused it (the caller AWS verified), or the sweep run that
    /// expired it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    /// The refusal's or the approval's reason, as the operator gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether its message went out: the `awaiting_approval` one while pending, the
    /// `approval_expired` one once expired. The ledger's bookkeeping, never shown.
    #[serde(skip)]
    pub notified: bool,
    /// For an approved one: whether the revocation it allowed reported back (its
    /// outcome known). False from the approval until then; an approval whose run never
    /// finished (the revoker timed out or crashed in between) is opened again by the
    /// sweeper ([`Approval::run_stalled`]). The ledger's bookkeeping, never shown.
    #[serde(skip)]
    pub run_finished: bool,
}

/// How long an approved revocation may run before the sweeper counts it as stalled:
/// Lambda's longest timeout, so that a revocation still running is never opened to a
/// second approval.
pub const APPROVED_RUN_LEASE: chrono::Duration = chrono::Duration::minutes(15);

/// How long an open approval's first message may take before the sweeper announces it
/// again (its ask's publish failed and the message went to the dead-letter queue, or
/// the announcement of its reopening failed).
pub const ANNOUNCE_GRACE: chrono::Duration = chrono::Duration::minutes(15);

impl Approval {
    /// A new pending approval of `request`, asked at `now`.
    /// Its times are whole seconds, as the ledger keeps them.
    pub fn ask(request: &RevocationRequest, now: DateTime<Utc>, hours: ApprovalHours) -> Self {
        use chrono::SubsecRound;
        let now = now.trunc_subsecs(0);
        Self {
            id: ApprovalId::of(request),
            state: ApprovalState::Pending,
            request: request.clone(),
            owner: crate::outcome::Owner::default(),
            created_at: now,
            expires_at: now + hours.duration(),
            decided_by: None,
            decided_at: None,
            reason: None,
            notified: false,
            run_finished: false,
        }
    }

    /// Whether it can still be approved or refused at `now`: pending, and `now` before
    /// its expiry (at the very instant of expiry it is expired, whether or not the
    /// sweeper has marked it yet).
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.state == ApprovalState::Pending && now < self.expires_at
    }

    /// Whether the sweeper should mark it expired at `now`: still pending, at or past
    /// its expiry (the same instant [`Approval::is_open`] stops).
    pub fn expiry_due(&self, now: DateTime<Utc>) -> bool {
        self.state == ApprovalState::Pending && now >= self.expires_at
    }

    /// Whether it was approved but the revocation it allowed never reported back within
    /// [`APPROVED_RUN_LEASE`] (the revoker stopped in between): nothing says whether
    /// the deny was written, and nobody was told. The sweeper opens it again and says
    /// so. At the lease's very end it is stalled.
    pub fn run_stalled(&self, now: DateTime<Utc>) -> bool {
        self.state == ApprovalState::Approved
            && !self.run_finished
            && self
                .decided_at
                .is_some_and(|at| now >= at + APPROVED_RUN_LEASE)
    }

    /// Whether it is open and its message may never have gone out: not marked
    /// announced [`ANNOUNCE_GRACE`] after it was asked. The sweeper announces it.
    pub fn unannounced(&self, now: DateTime<Utc>) -> bool {
        self.is_open(now) && !self.notified && now >= self.created_at + ANNOUNCE_GRACE
    }

    /// How the request it was asked with differs from `later`, a later message about
    /// the same finding, in what a finding's update cannot change: its type, or its
    /// wording once its numbers are left out (intake's reason quotes the severity,
    /// which an update may change). The first ask of an approval is kept and shown;
    /// whoever can send to the queue and knows a finding's id could have sent it first
    /// with words of their own. None when nothing says so.
    pub fn differs_from(&self, later: &RevocationRequest) -> Option<String> {
        let asked = &self.request.trigger;
        let now = &later.trigger;
        let shown = |v: &Option<String>| {
            v.as_deref().map_or_else(
                || "none".to_owned(),
                |v| format!("«{}»", clean_text(v, 200)),
            )
        };
        if asked.finding_type != now.finding_type {
            return Some(format!(
                "the finding type it was asked with ({}) is not this finding's ({})",
                shown(&asked.finding_type),
                shown(&now.finding_type)
            ));
        }
        if wording(&asked.reason) != wording(&now.reason) {
            return Some(format!(
                "the reason it was asked with ({}) is not this finding's ({})",
                shown(&asked.reason),
                shown(&now.reason)
            ));
        }
        None
    }

    /// Why it cannot be decided at `now`, in a sentence for the operator; None when it
    /// can.
    pub fn why_closed(&self, now: DateTime<Utc>) -> Option<String> {
        let by = |what: &str| {
            let who = self
                .decided_by
                .as_deref()
                .map_or_else(String::new, |w| format!(" by {}", clean_text(w, 300)));
            let when = self
                .decided_at
                .map_or_else(String::new, |t| format!(" at {}", stamp(t)));
            format!("approval {} was already {what}{who}{when}", self.id)
        };
        match self.state {
            ApprovalState::Pending if now < self.expires_at => None,
            ApprovalState::Pending | ApprovalState::Expired => Some(format!(
                "approval {} expired at {}: nobody decided in time, so nothing is revoked; if the principal must still be revoked, revoke it by hand ({})",
                self.id,
                stamp(self.expires_at),
                revoke_hint(&self.request.target)
            )),
            ApprovalState::Approved => Some(by("approved")),
            ApprovalState::Refused => Some(by("refused")),
        }
    }

    /// The same approval, owned by `owner`.
    pub fn with_owner(mut self, owner: crate::outcome::Owner) -> Self {
        self.owner = owner;
        self
    }

    /// The outcome of this approval in its current state (awaiting, refused, expired),
    /// saying `detail`: the request's principal and trigger, its owner, the approval.
    pub fn outcome(
        &self,
        status: crate::outcome::Status,
        detail: impl Into<String>,
    ) -> crate::outcome::Outcome {
        let mut outcome = crate::outcome::Outcome::for_request(&self.request, status, detail);
        outcome.owner = self.owner.clone();
        outcome.approval = Some(self.note());
        outcome
    }

    /// What an outcome says about this approval.
    pub fn note(&self) -> ApprovalNote {
        ApprovalNote {
            id: self.id.clone(),
            state: self.state,
            expires_at: self.expires_at,
            decided_by: self.decided_by.clone(),
            decided_at: self.decided_at,
            reason: self.reason.clone(),
        }
    }
}

/// A reason's words with every number (and its decimal point) left out.
fn wording(reason: &Option<String>) -> Option<String> {
    reason.as_deref().map(|r| {
        let mut out = String::with_capacity(r.len());
        let mut in_number = false;
        for c in r.chars() {
            let numeric = c.is_ascii_digit() || (in_number && c == '.');
            if numeric {
                if !in_number {
                    out.push('#');
                }
            } else {
                out.push(c);
            }
            in_number = numeric;
        }
        out
    })
}

/// `2026-11-23T16:00:00Z`.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The one command that approves `id`.
pub fn approve_command(id: &ApprovalId) -> String {
    format!("cutoff approve {id}")
}

/// The command that refuses `id`.
pub fn refuse_command(id: &ApprovalId) -> String {
    format!("cutoff refuse {id} --reason \"...\"")
}

/// The same approval without the CLI: the body of a signed POST to the revoker's
/// function URL (IAM auth).
pub fn approve_body(id: &ApprovalId) -> String {
    format!(r#"{{"action":"approve","approval_id":"{id}"}}"#)
}

/// The command that revokes `t` by hand (an approval that closed without revoking).
pub fn revoke_hint(t: &Target) -> String {
    match t.kind {
        TargetKind::User => format!("cutoff revoke --account {} --user {}", t.account, t.name),
        _ => format!("cutoff revoke --account {} --role {}", t.account, t.name),
    }
}

/// Whether `caller` (a principal ARN AWS verified) is the principal `target` names, or
/// a session of it: the principal under suspicion has no say in its own revocation. A
/// stolen session of an operator role could otherwise refuse the approval that would
/// cut it off. Names compare as IAM compares them (case-insensitively), within one
/// account; any session of the role counts, whatever the request's scope. A caller
/// that is not a principal ARN is treated as the suspect (it is never trusted to
/// decide).
///
/// Where the request names the suspect session, a caller whose session (or federated
/// user) has the same name is the suspect too, in any account and through any role:
/// a session name is usually the person (Identity Center names every
/// `AWSReservedSSO_*` session after the user who signed in, SAML and OIDC roles after
/// the identity), and whoever stole `alice@corp`'s sign-in can reach every permission
/// set and account she can. Another operator decides her case.
pub fn is_the_suspect(caller: &str, target: &Target) -> bool {
    let Ok(arn) = PrincipalArn::parse(caller) else {
        return true;
    };
    if let Some(suspect_session) = &target.session {
        let caller_session = match &arn.resource {
            PrincipalResource::AssumedRole { session, .. } => Some(session.as_str()),
            PrincipalResource::FederatedUser { name } => Some(name.as_str()),
            _ => None,
        };
        if caller_session.is_some_and(|s| s.eq_ignore_ascii_case(suspect_session.as_str())) {
            return true;
        }
    }
    if arn.account != target.account {
        return false;
    }
    let (caller_is_role, name) = match &arn.resource {
        PrincipalResource::Role { name, .. } => (true, name),
        PrincipalResource::AssumedRole { role, .. } => (true, role),
        PrincipalResource::User { name, .. } => (false, name),
        PrincipalResource::InstanceProfile { name, .. } => (true, name),
        PrincipalResource::FederatedUser { name } => (false, name),
        PrincipalResource::Root => return false,
    };
    let target_is_role = target.kind.is_role_like();
    caller_is_role == target_is_role && name.as_str().eq_ignore_ascii_case(target.name.as_str())
}

/// What an operator asks of the approvals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalAction {
    /// Run the pending request as stored.
    Approve {
        id: ApprovalId,
        reason: Option<OperatorText>,
    },
    /// Close it without revoking.
    Refuse {
        id: ApprovalId,
        reason: Option<OperatorText>,
    },
    /// The approvals still open.
    Pending,
}

impl ApprovalAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            ApprovalAction::Approve { .. } => "approve",
            ApprovalAction::Refuse { .. } => "refuse",
            ApprovalAction::Pending => "pending",
        }
    }

    /// The approval it decides, if it decides one.
    pub fn id(&self) -> Option<&ApprovalId> {
        match self {
            ApprovalAction::Approve { id, .. } | ApprovalAction::Refuse { id, .. } => Some(id),
            ApprovalAction::Pending => None,
        }
    }
}

/// The actions of this module, as a request's `action` names them.
pub const ACTIONS: [&str; 3] = ["approve", "refuse", "pending"];

/// Whether a payload asks for an approval action (`{"action": "approve"|"refuse"|
/// "pending", …}`), which [`parse_action`] reads, rather than a manual request.
pub fn is_approval_action(payload: &Value) -> bool {
    payload
        .get("action")
        .and_then(Value::as_str)
        .is_some_and(|a| ACTIONS.contains(&a))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    action: String,
    #[serde(default)]
    approval_id: Option<ApprovalId>,
    #[serde(default)]
    reason: Option<OperatorText>,
}

/// Reads an approval action: `{"action":"approve"|"refuse", "approval_id":"<id>",
/// "reason":"…"}` or `{"action":"pending"}`. Nothing else: an approval names no
/// principal, no finding, no scope (what runs is what was stored), and unknown fields
/// are refused.
pub fn parse_action(payload: Value) -> Result<ApprovalAction, String> {
    let raw: RawAction = serde_json::from_value(payload).map_err(|e| {
        format!(
            "malformed approval request: {}",
            clean_text(&e.to_string(), 300)
        )
    })?;
    match (raw.action.as_str(), raw.approval_id) {
        ("pending", None) if raw.reason.is_none() => Ok(ApprovalAction::Pending),
        ("pending", _) => Err("pending takes no approval_id and no reason".to_owned()),
        ("approve", Some(id)) => Ok(ApprovalAction::Approve {
            id,
            reason: raw.reason,
        }),
        ("refuse", Some(id)) => Ok(ApprovalAction::Refuse {
            id,
            reason: raw.reason,
        }),
        ("approve" | "refuse", None) => Err(format!(
            "{} needs the approval_id the message gave",
            raw.action
        )),
        (other, _) => Err(format!(
            "action {} is not an approval action (approve, refuse, pending)",
            excerpt(other)
        )),
    }
}

#[cfg(test)]
mod tests;
