//! Requests to the revoker and the outcome of each: the stable JSON contracts that
//! the queue, the outcome bus, the notifier and `cutoff revoke` share.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{ManualAction, ManualRequest, Scope};
use crate::policy::Cutoff;
use crate::principal::Target;
use crate::triage::{Decision, Source};

/// What asked for the revocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// `guardduty`, `securityhub`, `cloudtrail`, `manual` or `schedule`.
    pub source: String,
    pub finding_id: Option<String>,
    pub finding_type: Option<String>,
    pub severity: Option<f64>,
    /// When the finding was last updated (part of the queue's deduplication id).
    pub updated_at: Option<DateTime<Utc>>,
    /// The Security Hub product of the finding (with its id, what
    /// `BatchUpdateFindings` needs to update it).
    #[serde(default)]
    pub product_arn: Option<String>,
    pub requested_by: Option<String>,
    pub reason: Option<String>,
}

/// One thing for the revoker to do: the SQS message body, and what a manual request
/// becomes once validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevocationRequest {
    pub action: ManualAction,
    pub target: Target,
    #[serde(default)]
    pub scope: Scope,
    pub trigger: Trigger,
    /// When the activity in the finding was last seen. An existing cutoff after it
    /// already kills the session seen, so no new write is needed.
    #[serde(default)]
    pub last_activity: Option<DateTime<Utc>>,
    #[serde(default)]
    pub dry_run: bool,
    /// Release a cutoff that may still stop live sessions.
    #[serde(default)]
    pub force: bool,
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::GuardDuty => "guardduty",
        Source::SecurityHub => "securityhub",
        Source::CloudTrail => "cloudtrail",
        Source::Manual => "manual",
        Source::Schedule => "schedule",
        Source::Unknown => "unknown",
    }
}

impl RevocationRequest {
    /// The request an operator's manual payload asks for.
    pub fn from_manual(request: &ManualRequest) -> Self {
        Self {
            action: request.action,
            target: request.target.clone(),
            scope: request.scope,
            trigger: Trigger {
                source: "manual".to_owned(),
                requested_by: request.requested_by.as_ref().map(|t| t.to_string()),
                reason: request.reason.as_ref().map(|t| t.to_string()),
                ..Trigger::default()
            },
            last_activity: None,
            dry_run: request.dry_run,
            force: request.force,
        }
    }

    /// The request a triage `revoke` decision asks for; None for other decisions.
    pub fn from_decision(source: Source, decision: &Decision) -> Option<Self> {
        if decision.decision != crate::triage::Verdict::Revoke {
            return None;
        }
        if let Some(manual) = &decision.evidence.manual {
            return Some(Self::from_manual(manual));
        }
        let target = decision.target.clone()?;
        let finding = decision.finding.as_ref();
        Some(Self {
            action: ManualAction::Revoke,
            target,
            scope: Scope::Role,
            trigger: Trigger {
                source: source_name(source).to_owned(),
                finding_id: finding.map(|f| f.id.clone()),
                finding_type: finding.and_then(|f| f.finding_type.clone()),
                severity: finding.and_then(|f| f.severity),
                updated_at: decision.evidence.updated_at,
                product_arn: decision.evidence.product_arn.clone(),
                reason: Some(decision.reason.clone()),
                requested_by: None,
            },
            last_activity: decision.evidence.last_activity,
            dry_run: false,
            force: false,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The deny was written and read back.
    Applied,
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
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Applied => "applied",
            Status::AlreadyRevoked => "already_revoked",
            Status::DryRun => "dry_run",
            Status::Protected => "protected",
            Status::Unmodifiable => "unmodifiable",
            Status::Alerted => "alerted",
            Status::Released => "released",
            Status::Failed => "failed",
        }
    }
}

/// Who owns the principal, from its `cutoff:owner` and `cutoff:notify` tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub team: Option<String>,
    pub topic: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeError {
    /// An AWS error kind (`throttled`, `access_denied`, `quota`, `not_found`,
    /// `unmodifiable`, `malformed`, `transient`) or one of cutoff's own:
    /// `invalid_request`, `refused`, `unverified`, `unreadable_policy`.
    pub kind: String,
    pub message: String,
}

/// The end of every request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
                source: "manual".to_owned(),
                ..Trigger::default()
            },
            api_calls: 0,
            error: Some(OutcomeError {
                kind: "invalid_request".to_owned(),
                message: message.clone(),
            }),
            propagation: None,
            detail: format!("invalid request: {message}"),
            actions: Vec::new(),
            dry_run: false,
        }
    }

    pub fn failed(mut self, kind: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        self.status = Status::Failed;
        self.detail = format!("failed: {message}");
        self.error = Some(OutcomeError {
            kind: kind.to_owned(),
            message,
        });
        self
    }

    /// Whether the request reached an end that needs no retry.
    pub fn is_final(&self) -> bool {
        self.status != Status::Failed
    }
}
