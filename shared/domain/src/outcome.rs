//! Requests to the revoker and the outcome of each: the stable JSON contracts that
//! the queue, the outcome bus, the notifier and `cutoff revoke` share.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::manual::OperatorText;
use crate::event::{ManualAction, ManualRequest, Scope};
use crate::policy::Cutoff;
use crate::principal::{InvalidValue, Target, TargetKind, UniqueId, excerpt, is_sns_topic_arn};
use crate::triage::{Decision, Source};
use std::fmt;

pub use crate::event::FindingFormat;

/// What asked for the revocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// `guardduty`, `securityhub`, `cloudtrail`, `manual`, `schedule` (or `queue`,
    /// for a queue message that was not a request).
    pub source: Source,
    pub finding_id: Option<String>,
    pub finding_type: Option<String>,
    pub severity: Option<f64>,
    /// When the finding was last updated (part of the queue's deduplication id).
    pub updated_at: Option<DateTime<Utc>>,
    /// The Security Hub product of the finding (with its id, what
    /// `BatchUpdateFindings` needs to update it).
    #[serde(default)]
    pub product_arn: Option<String>,
    /// The format of the Security Hub finding (absent: ASFF, as before OCSF findings
    /// were read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding_format: Option<FindingFormat>,
    /// Who asked: for a request through the operator path (the revoker's function URL
    /// with IAM auth) the caller ARN AWS verified; otherwise what the request claimed.
    pub requested_by: Option<String>,
    /// Whether AWS vouched for `requested_by` (the function URL's IAM authorizer).
    #[serde(default)]
    pub requested_by_verified: bool,
    /// The Security Hub custom action (its ARN) that sent the finding: the revoker caps
    /// the revocations of one action per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_action: Option<String>,
    pub reason: Option<String>,
    /// Who approved the request (the caller AWS verified on the operator path), when
    /// it needed approval ([`crate::approval`]). Set only by the revoker when an
    /// approval runs; a request that carries it from anywhere else is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
}

/// One thing for the revoker to do: the SQS message body, and what a manual request
/// becomes once validated. Unknown fields are refused: a message that says more than
/// cutoff wrote was not written by cutoff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationRequest {
    pub action: ManualAction,
    pub target: Target,
    #[serde(default)]
    pub scope: Scope,
    pub trigger: Trigger,
    /// When the activity in the finding was first seen. A session is issued before it
    /// is first used, so an existing cutoff after this already kills it and no new
    /// write is needed. (Read from `last_activity` too, which earlier versions queued:
    /// a cutoff after the last activity is after the first.)
    #[serde(default, alias = "last_activity")]
    pub first_activity: Option<DateTime<Utc>>,
    /// The principal's unique id as the finding names it; the revoker writes only when
    /// IAM's principal of that name has the same id (not deleted and recreated since,
    /// not another principal of the same name).
    #[serde(default)]
    pub expected_unique_id: Option<UniqueId>,
    /// The region where the finding's activity was seen: the follow-up reads regional
    /// STS calls there (the follow-up of a revocation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_region: Option<String>,
    /// When the event that asked for the revocation happened, as EventBridge stamps it
    /// (its `time`), copied by intake: where the time-to-contain metric
    /// `TimeToContainFromEvent` starts (`crate::metrics`). Absent for manual requests,
    /// follow-ups and requests queued by an intake older than this field; a revoker
    /// older than it refuses a request that carries it (unknown field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub dry_run: bool,
    /// Release a cutoff that may still stop live sessions.
    #[serde(default)]
    pub force: bool,
    /// A medium-severity finding with `CUTOFF_MEDIUM_FINDINGS=ask`: the revoker writes
    /// nothing for it, it records a pending approval ([`crate::approval`]). Absent
    /// (false) in every other request, so that a revoker older than this field reads
    /// those as before; it refuses one that carries it (unknown field).
    #[serde(default, skip_serializing_if = "is_false")]
    pub needs_approval: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl RevocationRequest {
    /// The request an operator's manual payload asks for.
    pub fn from_manual(request: &ManualRequest) -> Self {
        Self {
            action: request.action,
            target: request.target.clone(),
            scope: request.scope,
            trigger: Trigger {
                source: Source::Manual,
                requested_by: request.requested_by.as_ref().map(|t| t.to_string()),
                reason: request.reason.as_ref().map(|t| t.to_string()),
                ..Trigger::default()
            },
            first_activity: None,
            expected_unique_id: None,
            activity_region: None,
            event_time: None,
            dry_run: request.dry_run,
            force: request.force,
            needs_approval: false,
        }
    }

    /// Checks a request read from the queue as strictly as a manual request is
    /// checked, and that it asks for what the queue may carry: a revocation. Release,
    /// status and force come only from the operator path (where AWS says who asked);
    /// a queue message is only as trustworthy as whoever could send it.
    pub fn check_queued(&self) -> Result<(), String> {
        if self.action != ManualAction::Revoke {
            return Err(format!(
                "the request queue carries revocations only; {} comes only from the operator path (the revoker's function URL)",
                self.action.as_str()
            ));
        }
        if self.force {
            return Err(
                "the request queue never carries force; it comes only from the operator path"
                    .to_owned(),
            );
        }
        self.check_shape()
    }

    /// The rules a manual request is held to, for a request that did not come as one.
    pub fn check_shape(&self) -> Result<(), String> {
        let t = &self.target;
        if !(t.kind.is_role_like() || t.kind == TargetKind::User) {
            return Err(format!("{} is not a principal cutoff can revoke", t.kind));
        }
        if t.session.is_some() && !t.kind.is_role_like() {
            return Err(format!(
                "a session applies only to roles, not to a {}",
                t.kind
            ));
        }
        // A role's findings name the session's temporary key; only a user has a
        // long-term one.
        if let Some(key) = &t.access_key_id
            && t.kind != TargetKind::User
            && !key.is_temporary()
        {
            return Err(format!(
                "a long-term access key applies only to IAM users, not to a {}",
                t.kind
            ));
        }
        if self.scope == Scope::Session && t.session.is_none() {
            return Err("scope session needs a session name".to_owned());
        }
        let tr = &self.trigger;
        if !matches!(
            tr.source,
            Source::GuardDuty | Source::SecurityHub | Source::CloudTrail | Source::Manual
        ) {
            return Err(format!("a request from source {} is not queued", tr.source));
        }
        let bounded = |what: &str, value: &Option<String>, max: usize| match value {
            Some(v)
                if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) =>
            {
                Err(format!(
                    "{what} {} is empty, too long or has control characters",
                    excerpt(v)
                ))
            }
            _ => Ok(()),
        };
        if let Some(region) = &self.activity_region
            && !crate::chain::is_region_name(region)
        {
            return Err(format!("{} is not a region", excerpt(region)));
        }
        bounded("finding id", &tr.finding_id, 512)?;
        bounded("finding type", &tr.finding_type, 256)?;
        bounded("product ARN", &tr.product_arn, 512)?;
        for text in [&tr.requested_by, &tr.reason].into_iter().flatten() {
            OperatorText::parse(text).map_err(|e| e.to_string())?;
        }
        if tr.requested_by_verified {
            return Err(
                "only the operator path can say who asked; a queued request cannot".to_owned(),
            );
        }
        if tr.approved_by.is_some() {
            return Err(
                "only an approval through the operator path says who approved; a queued request cannot"
                    .to_owned(),
            );
        }
        if tr.severity.is_some_and(|s| !(0.0..=100.0).contains(&s)) {
            return Err("severity is out of range".to_owned());
        }
        Ok(())
    }

    /// The request a triage `revoke` decision asks for, or an `ask` decision asks to
    /// have approved (`needs_approval`); None for other decisions.
    pub fn from_decision(source: Source, decision: &Decision) -> Option<Self> {
        let needs_approval = match decision.decision {
            crate::triage::Verdict::Revoke => false,
            crate::triage::Verdict::Ask => true,
            crate::triage::Verdict::Alert | crate::triage::Verdict::Ignore => return None,
        };
        if let Some(manual) = &decision.evidence.manual {
            return Some(Self::from_manual(manual));
        }
        let target = decision.target.clone()?;
        let finding = decision.finding.as_ref();
        Some(Self {
            action: ManualAction::Revoke,
            target,
            scope: decision.evidence.scope,
            trigger: Trigger {
                source,
                finding_id: finding.map(|f| f.id.clone()),
                finding_type: finding.and_then(|f| f.finding_type.clone()),
                severity: finding.and_then(|f| f.severity),
                updated_at: decision.evidence.updated_at,
                product_arn: decision.evidence.product_arn.clone(),
                finding_format: decision.evidence.finding_format,
                // The queue reads the reason as an operator's text (at most 512
                // characters): a long one is cut here, never a request refused there.
                reason: Some(crate::principal::clean_text(
                    &decision.reason,
                    OperatorText::MAX_CHARS,
                )),
                requested_by: None,
                requested_by_verified: false,
                custom_action: decision.evidence.custom_action.clone(),
                approved_by: None,
            },
            first_activity: decision.evidence.first_activity,
            expected_unique_id: decision.evidence.unique_id.clone(),
            activity_region: decision.evidence.activity_region.clone(),
            // Set by intake, which has the event's envelope (triage reads its detail).
            event_time: None,
            dry_run: false,
            force: false,
            needs_approval,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The deny was written and read back, and nothing in the request's scope still
    /// works (for a user: the keys in scope are inactive too).
    Applied,
    /// The deny was written, but something in scope still works: `still_works` says
    /// what and why (a key that could not be deactivated, say).
    Partial,
    /// An existing cutoff already covers the request; nothing written.
    AlreadyRevoked,
    /// Everything computed, nothing written.
    DryRun,
    /// The principal is protected by configuration or tag; never touched.
    Protected,
    /// IAM cannot restrict this principal (root, service-linked, Identity Center,
    /// federated); the owner is alerted with the remedy.
    Unmodifiable,
    /// Triage decided to alert only.
    Alerted,
    /// cutoff's deny was removed.
    Released,
    /// Something failed; `error` says what.
    Failed,
    /// A medium-severity finding waits for a person: nothing was written, a pending
    /// approval was recorded, and the message says how to approve or refuse it
    /// (`approval`).
    AwaitingApproval,
    /// A person refused the approval: nothing was written, and nothing will be.
    ApprovalRefused,
    /// Nobody approved or refused in time: nothing was written.
    ApprovalExpired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Applied => "applied",
            Status::Partial => "partial",
            Status::AlreadyRevoked => "already_revoked",
            Status::DryRun => "dry_run",
            Status::Protected => "protected",
            Status::Unmodifiable => "unmodifiable",
            Status::Alerted => "alerted",
            Status::Released => "released",
            Status::Failed => "failed",
            Status::AwaitingApproval => "awaiting_approval",
            Status::ApprovalRefused => "approval_refused",
            Status::ApprovalExpired => "approval_expired",
        }
    }

    /// Every status, in the order of the contract.
    pub const ALL: [Status; 12] = [
        Status::Applied,
        Status::Partial,
        Status::AlreadyRevoked,
        Status::DryRun,
        Status::Protected,
        Status::Unmodifiable,
        Status::Alerted,
        Status::Released,
        Status::Failed,
        Status::AwaitingApproval,
        Status::ApprovalRefused,
        Status::ApprovalExpired,
    ];
}

/// Who owns the principal, from its `cutoff:owner` and `cutoff:notify` tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub team: Option<String>,
    pub topic: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeError {
    pub kind: FailureKind,
    pub message: String,
}

/// Why a request failed: the kind in [`OutcomeError::kind`]. AWS's answers (one
/// table, in `cutoff-aws`, maps every error code to one of the first seven) and
/// cutoff's own refusals and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// AWS: rate exceeded. Retryable.
    Throttled,
    /// AWS: 5xx, timeouts, dropped connections. Retryable.
    Transient,
    /// AWS: the caller lacks permission, or the member role cannot be assumed.
    AccessDenied,
    /// AWS: the principal, policy or key does not exist.
    NotFound,
    /// AWS: IAM refuses changes to this entity.
    Unmodifiable,
    /// AWS: a quota would be exceeded (policy size, attachments, policy count).
    Quota,
    /// AWS: IAM rejected what was sent.
    Malformed,
    /// The request itself is invalid: no attempt can make it valid.
    InvalidRequest,
    /// The principal is not the one the finding names (deleted and recreated).
    PrincipalMismatch,
    /// The account is outside the configured Organization list.
    AccountNotAllowed,
    /// The circuit breaker is open: too many automatic revocations this hour.
    CircuitOpen,
    /// cutoff refused on purpose (a release of a cutoff still in effect).
    Refused,
    /// The request named an access key the user does not have.
    KeyNotFound,
    /// A write was not seen in the read-backs.
    Unverified,
    /// A policy cutoff would change cannot be parsed: not overwritten.
    UnreadablePolicy,
    /// Another writer held the principal's lock for the whole wait.
    Busy,
    /// The ledger (lock, audit) could not be reached where it is required.
    LedgerUnavailable,
    /// A kind this version does not know (an outcome from a newer one, or a forged
    /// one on the bus): read, never trusted to mean anything.
    #[serde(other)]
    Unknown,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Throttled => "throttled",
            FailureKind::Transient => "transient",
            FailureKind::AccessDenied => "access_denied",
            FailureKind::NotFound => "not_found",
            FailureKind::Unmodifiable => "unmodifiable",
            FailureKind::Quota => "quota",
            FailureKind::Malformed => "malformed",
            FailureKind::InvalidRequest => "invalid_request",
            FailureKind::PrincipalMismatch => "principal_mismatch",
            FailureKind::AccountNotAllowed => "account_not_allowed",
            FailureKind::CircuitOpen => "circuit_open",
            FailureKind::Refused => "refused",
            FailureKind::KeyNotFound => "key_not_found",
            FailureKind::Unverified => "unverified",
            FailureKind::UnreadablePolicy => "unreadable_policy",
            FailureKind::Busy => "busy",
            FailureKind::LedgerUnavailable => "ledger_unavailable",
            FailureKind::Unknown => "unknown",
        }
    }

    /// Kinds that no retry can change: the request itself is at fault, or cutoff
    /// refused it on purpose. A queued request ending so is not sent back to the queue.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            FailureKind::InvalidRequest
                | FailureKind::PrincipalMismatch
                | FailureKind::AccountNotAllowed
                | FailureKind::CircuitOpen
                | FailureKind::Refused
                | FailureKind::KeyNotFound
        )
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A credential in the request's scope that still works, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StillWorks {
    /// `access key AKIA…`, say.
    pub credential: String,
    pub why: String,
}

/// The end of every request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub status: Status,
    pub target: Option<Target>,
    /// The cutoff in force after this request (written, or already there).
    pub cutoff: Option<Cutoff>,
    /// The cutoff before this request, if there was one.
    pub previous_cutoff: Option<Cutoff>,
    /// Where the deny lives: `AWSRevokeOlderSessions`, `CutoffRevokedSessions`, or the
    /// ARN of the managed fallback policy.
    pub policy: Option<String>,
    pub scope: Scope,
    pub owner: Owner,
    pub trigger: Trigger,
    /// IAM and STS calls made for this request, retries included.
    pub api_calls: u32,
    pub error: Option<OutcomeError>,
    /// `eventual` after a write: IAM is eventually consistent, so the deny may take a
    /// few seconds to reach every endpoint.
    pub propagation: Option<String>,
    /// What happened, in a sentence a person can read.
    pub detail: String,
    /// The writes made (or, for a dry run, that would be made), in order.
    pub actions: Vec<String>,
    pub dry_run: bool,
    /// What in the request's scope still works (status `partial`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub still_works: Vec<StillWorks>,
    /// Other ways into the principal that the deny does not touch and cutoff leaves to
    /// the owner (a console password, SSH keys, service-specific credentials): listed,
    /// never counted against `applied`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_access: Vec<String>,
    /// A follow-up run's report: what the stolen credential was found to have done
    /// and what cutoff did about each link (the follow-up of a revocation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<crate::chain::ChainReport>,
    /// An Identity Center user's containment: the permission sets whose inline policy
    /// denies them, where each was provisioned, and what is left to a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_center: Option<crate::identity_center::SsoContainment>,
    /// The id the request is recorded and logged under, so that a person reading the
    /// message finds the rest: a queued request's SQS message id (what the ledger's
    /// audit trail and `cutoff history` show), else the Lambda request id of the
    /// invocation (the operator path, a direct invoke, a follow-up run, intake's
    /// alerts), or the sweep's run id. Set where the outcome is published; absent in
    /// outcomes from versions before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The region the finding's activity was seen in (the request's
    /// `activity_region`): where the finding and the credential's CloudTrail events
    /// are. Absent for requests that name none (manual requests, the sweep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_region: Option<String>,
    /// The approval the outcome is about (`awaiting_approval`, `approval_refused`,
    /// `approval_expired`, and the outcome of an approved request): its id, state,
    /// expiry and who decided it. Absent in every other outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalNote>,
}

impl Outcome {
    /// An outcome with nothing filled in beyond the request.
    pub fn for_request(
        request: &RevocationRequest,
        status: Status,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            target: Some(request.target.clone()),
            cutoff: None,
            previous_cutoff: None,
            policy: None,
            scope: request.scope,
            owner: Owner::default(),
            trigger: request.trigger.clone(),
            api_calls: 0,
            error: None,
            propagation: None,
            detail: detail.into(),
            actions: Vec::new(),
            dry_run: request.dry_run,
            still_works: Vec::new(),
            other_access: Vec::new(),
            chain: None,
            identity_center: None,
            request_id: None,
            activity_region: request.activity_region.clone(),
            approval: None,
        }
    }

    /// This outcome as another request's that shared its write (a batch's messages
    /// about one principal): the write and its result are shared, while each keeps
    /// its own trigger so its owner hears about its finding.
    pub fn for_member(&self, request: &RevocationRequest) -> Self {
        Self {
            trigger: request.trigger.clone(),
            activity_region: request.activity_region.clone(),
            ..self.clone()
        }
    }

    /// The outcome of a request that could not even be read.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            status: Status::Failed,
            target: None,
            cutoff: None,
            previous_cutoff: None,
            policy: None,
            scope: Scope::Role,
            owner: Owner::default(),
            trigger: Trigger {
                source: Source::Manual,
                ..Trigger::default()
            },
            api_calls: 0,
            error: Some(OutcomeError {
                kind: FailureKind::InvalidRequest,
                message: message.clone(),
            }),
            propagation: None,
            detail: format!("invalid request: {message}"),
            actions: Vec::new(),
            dry_run: false,
            still_works: Vec::new(),
            other_access: Vec::new(),
            chain: None,
            identity_center: None,
            request_id: None,
            activity_region: None,
            approval: None,
        }
    }

    pub fn failed(mut self, kind: FailureKind, message: impl Into<String>) -> Self {
        let message = message.into();
        self.status = Status::Failed;
        self.detail = format!("failed: {message}");
        self.error = Some(OutcomeError { kind, message });
        self
    }

    /// Whether a queued request that ended so should go back to the queue: a failure
    /// or a partial revocation a later attempt could complete, not one that no retry
    /// can change ([`FailureKind::is_permanent`]).
    pub fn needs_retry(&self) -> bool {
        matches!(self.status, Status::Failed | Status::Partial)
            && !self.error.as_ref().is_some_and(|e| e.kind.is_permanent())
    }
}

// ---------------------------------------------------------------------------------
// The approval an outcome is about (the rules are in `crate::approval`)

/// The id of an approval: 16 lowercase hex digits (64 bits of SHA-256 of what the
/// request says about whom it revokes), short enough to type in `cutoff approve <id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApprovalId(pub(crate) String);

impl ApprovalId {
    pub const LEN: usize = 16;

    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let valid = input.len() == Self::LEN
            && input
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(InvalidValue {
                what: "approval id",
                excerpt: excerpt(input),
                why: "an approval id is 16 lowercase hexadecimal digits, as the message gives it",
            });
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ApprovalId {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ApprovalId> for String {
    fn from(id: ApprovalId) -> String {
        id.0
    }
}

impl fmt::Display for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an approval is: pending until a person decides or it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    Approved,
    Refused,
    Expired,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Refused => "refused",
            ApprovalState::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(ApprovalState::Pending),
            "approved" => Some(ApprovalState::Approved),
            "refused" => Some(ApprovalState::Refused),
            "expired" => Some(ApprovalState::Expired),
            _ => None,
        }
    }
}

impl fmt::Display for ApprovalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An approval, as an outcome carries it (`approval`): the id the commands take, its
/// state, when it expires (or expired), and who decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalNote {
    pub id: ApprovalId,
    pub state: ApprovalState,
    pub expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Tag naming the team that owns a principal.
pub const OWNER_TAG: &str = "cutoff:owner";
/// Tag naming an SNS topic to notify for this principal.
pub const NOTIFY_TAG: &str = "cutoff:notify";
/// Tag that protects a principal from revocation (`true`).
pub const PROTECTED_TAG: &str = "cutoff:protected";

/// The owner named by a principal's `cutoff:owner` and `cutoff:notify` tags, and a note
/// when the notify tag is not a topic ARN (it is then ignored). A team name longer
/// than 128 characters or with control characters is ignored too: it ends up in
/// notifications.
pub fn owner_from_tags(
    tags: &[(String, String)],
    principal: &dyn std::fmt::Display,
) -> (Owner, Option<String>) {
    let tag = |key: &str| tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let team = tag(OWNER_TAG)
        .filter(|t| !t.is_empty() && t.len() <= 128 && !t.chars().any(char::is_control))
        .map(str::to_owned);
    let notify = tag(NOTIFY_TAG);
    let topic = notify.filter(|t| is_sns_topic_arn(t)).map(str::to_owned);
    let note = match (notify, &topic) {
        (Some(raw), None) => Some(format!(
            "tag {NOTIFY_TAG} on {principal} is not an SNS topic ARN ({}); ignored",
            excerpt(raw)
        )),
        _ => None,
    };
    (Owner { team, topic }, note)
}

/// The `alerted` outcome of an alert decision.
pub fn alert_outcome(source: Source, decision: &Decision) -> Option<Outcome> {
    let target = decision.target.clone()?;
    let finding = decision.finding.as_ref();
    Some(Outcome {
        status: Status::Alerted,
        target: Some(target),
        cutoff: None,
        previous_cutoff: None,
        policy: None,
        scope: Scope::Role,
        owner: Owner::default(),
        trigger: Trigger {
            source,
            finding_id: finding.map(|f| f.id.clone()),
            finding_type: finding.and_then(|f| f.finding_type.clone()),
            severity: finding.and_then(|f| f.severity),
            updated_at: decision.evidence.updated_at,
            product_arn: decision.evidence.product_arn.clone(),
            finding_format: decision.evidence.finding_format,
            requested_by: decision
                .evidence
                .manual
                .as_ref()
                .and_then(|m| m.requested_by.as_ref())
                .map(|r| r.to_string()),
            requested_by_verified: false,
            custom_action: decision.evidence.custom_action.clone(),
            reason: Some(decision.reason.clone()),
            approved_by: None,
        },
        api_calls: 0,
        error: None,
        propagation: None,
        detail: format!("alert only, nothing changed: {}", decision.reason),
        actions: Vec::new(),
        dry_run: false,
        still_works: Vec::new(),
        other_access: Vec::new(),
        chain: None,
        identity_center: None,
        request_id: None,
        activity_region: decision.evidence.activity_region.clone(),
        approval: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn queued(source: &str) -> serde_json::Value {
        json!({
            "action": "revoke",
            "target": {"kind": "role", "account": "111122223333", "name": "payments-api"},
            "scope": "role",
            "trigger": {"source": source, "finding_id": "f1"}
        })
    }

    #[test]
    fn a_queued_request_names_a_source_that_may_queue_requests() {
        for source in ["guardduty", "securityhub", "cloudtrail", "manual"] {
            let request: RevocationRequest = serde_json::from_value(queued(source)).unwrap();
            assert_eq!(request.trigger.source.as_str(), source);
            assert_eq!(request.check_queued(), Ok(()), "{source}");
        }
        for source in ["schedule", "queue", "unknown"] {
            let request: RevocationRequest = serde_json::from_value(queued(source)).unwrap();
            let err = request.check_queued().unwrap_err();
            assert!(err.contains(source), "{source}: {err}");
        }
        for source in ["GuardDuty", "guardduty ", "", "sqs"] {
            assert!(
                serde_json::from_value::<RevocationRequest>(queued(source)).is_err(),
                "{source:?} is no source"
            );
        }
    }

    #[test]
    fn only_a_request_that_needs_approval_says_so_so_older_readers_read_the_others() {
        let plain: RevocationRequest = serde_json::from_value(queued("guardduty")).unwrap();
        assert!(!plain.needs_approval);
        let body = serde_json::to_value(&plain).unwrap();
        assert!(body.get("needs_approval").is_none(), "{body}");
        assert!(body["trigger"].get("approved_by").is_none(), "{body}");
        let mut asking = queued("guardduty");
        asking["needs_approval"] = json!(true);
        let asking: RevocationRequest = serde_json::from_value(asking).unwrap();
        assert!(asking.needs_approval);
        assert_eq!(asking.check_queued(), Ok(()));
        assert_eq!(
            serde_json::to_value(&asking).unwrap()["needs_approval"],
            true
        );
    }

    #[test]
    fn a_queued_request_cannot_say_who_approved_it() {
        // An insider allowed sqs:SendMessage forges an approved request: refused, as a
        // claim of a verified requester is.
        let mut forged = queued("guardduty");
        forged["trigger"]["approved_by"] =
            json!("arn:aws:sts::999988887777:assumed-role/Ops/alice");
        let request: RevocationRequest = serde_json::from_value(forged).unwrap();
        let err = request.check_queued().unwrap_err();
        assert!(err.contains("who approved"), "{err}");
        let mut both = queued("guardduty");
        both["needs_approval"] = json!(true);
        both["trigger"]["approved_by"] = json!("alice");
        let request: RevocationRequest = serde_json::from_value(both).unwrap();
        assert!(request.check_queued().is_err());
    }

    #[test]
    fn every_status_reads_back_as_its_name() {
        for status in Status::ALL {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, json!(status.as_str()));
            assert_eq!(serde_json::from_value::<Status>(json).unwrap(), status);
        }
        assert_eq!(Status::AwaitingApproval.as_str(), "awaiting_approval");
        assert_eq!(Status::ApprovalRefused.as_str(), "approval_refused");
        assert_eq!(Status::ApprovalExpired.as_str(), "approval_expired");
    }
}
