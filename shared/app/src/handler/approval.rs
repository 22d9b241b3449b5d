//! Human approval of medium-severity findings ([`cutoff_domain::approval`]): the
//! revoker's side (asking, deciding, listing) and the sweeper's (expiring).
//!
//! - **Ask.** A queued request marked `needs_approval` is taken out of its batch
//!   ([`split_batch`]) before the batch is revoked: nothing is written to IAM for it.
//!   [`Revoker::ask_approvals`] reads the principal's owner (read only), records a
//!   pending approval in the ledger with one conditional put, and answers with an
//!   `awaiting_approval` outcome to publish. A redelivered message, or a later update
//!   of the same finding, maps to the same approval: nothing new is recorded. The same
//!   request again is told only if its first message never went out (once per
//!   invocation); a later update is told as `alert` would tell it, pointing at the
//!   approval (awaiting, or closed and then to revoke by hand), and flagged when the
//!   approval's first request differs from it in what an update cannot change.
//! - **Decide.** `approve` and `refuse` come only through the operator path, where AWS
//!   verified the caller ([`Revoker::answer_approval`]); never from the queue, a plain
//!   invoke, or the CLI's `--direct`. The principal under suspicion may not decide
//!   its own case. One conditional update moves a pending, unexpired approval to its
//!   decision; an approval then runs the stored request, as stored, through
//!   [`Revoker::handle`], with the approver recorded in its trigger.
//! - **Expire.** The scheduled sweeper claims each approval past its deadline with a
//!   conditional update and publishes one `approval_expired` outcome per approval
//!   ([`expire_approvals`]).

use aws_lambda_events::sqs::{BatchItemFailure, SqsEvent};
use chrono::{DateTime, Utc};

use super::revoker::{BatchResult, Caller, DirectAnswer, InvocationSettings, MessageOutcome};
use crate::revoke::Revoker;
use cutoff_aws::dynamodb::approvals::{Approvals, Asked};
use cutoff_aws::dynamodb::{AuditEntry, Ledger};
use cutoff_aws::{AccountAccess, OutcomeBus};
use cutoff_domain::approval::{
    APPROVED_RUN_LEASE, Approval, ApprovalAction, ApprovalHours, ApprovalId, ApprovalState,
    approve_command, is_the_suspect, revoke_hint, stamp,
};
use cutoff_domain::clock::Clock;
use cutoff_domain::event::ManualAction;
use cutoff_domain::outcome::{FailureKind, Outcome, RevocationRequest, Status};

/// The audit trail's `action` of an approval's own entries (asked, refused, expired);
/// the revocation an approval runs is recorded as a `revoke`.
pub const AUDIT_ACTION: &str = "approval";

/// A queued message whose request needs approval.
#[derive(Debug, Clone)]
pub struct AskMessage {
    pub message_id: String,
    pub request: RevocationRequest,
}

/// Takes the messages whose request needs approval out of `batch`: those are asked,
/// the rest is revoked as before. A message is taken only when it reads as a valid
/// queued request (the same strict reading [`crate::handler::revoker`] applies); any
/// other stays in the batch, which refuses it as it always has.
pub fn split_batch(mut batch: SqsEvent) -> (SqsEvent, Vec<AskMessage>) {
    let mut asks = Vec::new();
    batch.records.retain(
        |record| match super::revoker::queued_request(record.body.as_deref()) {
            Ok(request) if request.needs_approval => {
                asks.push(AskMessage {
                    message_id: record.message_id.clone().unwrap_or_default(),
                    request,
                });
                false
            }
            _ => true,
        },
    );
    (batch, asks)
}

/// What asking did with one message: its outcome to log, count and publish, and the
/// approval to mark announced once it is published.
#[derive(Debug, Clone)]
pub struct Asking {
    pub message: MessageOutcome,
    /// The approval this outcome announces (its `awaiting_approval` message).
    pub announces: Option<ApprovalId>,
}

/// Adds the outcomes of the asked messages to the batch's: each is logged, counted and
/// published with the others (the IAM reads of the owner with the batch's calls), and
/// one that must be retried (the ledger could not be reached) goes back to the queue.
/// The approvals they announce, by message id.
pub fn merge_asked(result: &mut BatchResult, asked: Vec<Asking>) -> Vec<(String, ApprovalId)> {
    let mut announced = Vec::new();
    for asking in asked {
        let message_id = asking.message.message_id.clone();
        result.api_calls += u64::from(asking.message.outcome.api_calls);
        if asking.message.outcome.needs_retry() {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id.clone();
            result.response.batch_item_failures.push(failure);
        }
        if let Some(id) = asking.announces {
            announced.push((message_id, id));
        }
        result.outcomes.push(asking.message);
    }
    announced
}

/// Marks announced the approvals whose outcome was published (`published` names their
/// messages); one not marked is announced again by a redelivery, never lost.
pub async fn mark_announced<P: Approvals>(
    approvals: &P,
    announced: &[(String, ApprovalId)],
    published: &[String],
) {
    for (message_id, id) in announced {
        if !published.contains(message_id) {
            continue;
        }
        if let Err(err) = approvals.mark_notified(id).await {
            tracing::warn!(approval_id = %id, error = %err, "the approval's message went out but is not marked announced: a redelivery or a later update of its finding announces it again");
        }
    }
}

impl<A, K, L> Revoker<A, K, L>
where
    A: AccountAccess,
    K: Clock,
    L: Ledger,
{
    /// Asks for each request's approval. A message that asks again, word for word,
    /// for an approval already announced (a redelivery, or its copy in the same batch)
    /// gets no outcome at all: it is done, logged, and nobody is told twice. A later
    /// update of the finding is told, as `alert` would tell it, pointing at the
    /// approval.
    pub async fn ask_approvals<P: Approvals>(
        &self,
        approvals: &P,
        asks: &[AskMessage],
        settings: InvocationSettings,
    ) -> Vec<Asking> {
        let mut out = Vec::new();
        // The approvals this invocation asked or announced: announced once here,
        // before any is marked.
        let mut announced_here = std::collections::HashSet::new();
        for ask in asks {
            let (outcome, announces) = match self
                .ask_one(
                    approvals,
                    &ask.request,
                    &ask.message_id,
                    settings.approval_hours,
                    &mut announced_here,
                )
                .await
            {
                Some(asked) => asked,
                None => continue,
            };
            out.push(Asking {
                message: MessageOutcome {
                    message_id: ask.message_id.clone(),
                    outcome,
                    request: Some(ask.request.clone()),
                    verified_at: None,
                },
                announces,
            });
        }
        out
    }

    async fn ask_one<P: Approvals>(
        &self,
        approvals: &P,
        request: &RevocationRequest,
        message_id: &str,
        hours: ApprovalHours,
        announced_here: &mut std::collections::HashSet<ApprovalId>,
    ) -> Option<(Outcome, Option<ApprovalId>)> {
        if !approvals.enabled() {
            let outcome = Outcome::for_request(
                request,
                Status::Alerted,
                format!(
                    "this finding asks for a person's approval before revoking ({}=ask), but this deployment keeps no ledger (CUTOFF_LEDGER_TABLE) to hold the question: nothing recorded, nothing written; alert only. Revoke by hand if it is a compromise",
                    cutoff_domain::settings::env::MEDIUM_FINDINGS
                ),
            );
            return Some((outcome, None));
        }
        // The owner, read only (the principal's tags), so that the question reaches
        // the owner's topic; the account scope, checked as a revocation checks it.
        let status_request = RevocationRequest {
            action: ManualAction::Status,
            needs_approval: false,
            ..request.clone()
        };
        let report = self.status(&status_request, message_id).await;
        if let Some(error) = &report.error
            && error.kind == FailureKind::AccountNotAllowed
        {
            let mut outcome = Outcome::for_request(request, Status::Failed, "")
                .failed(error.kind, error.message.clone());
            outcome.api_calls = report.api_calls;
            return Some((outcome, None));
        }
        let asked = Approval::ask(request, self.clock.now(), hours).with_owner(report.owner);
        let mut unread = String::new();
        if let Some(error) = &report.error {
            unread = format!(
                " (the principal could not be read, {}: its owner is not known)",
                error.kind
            );
        }
        match approvals.ask(&asked).await {
            Ok(Asked::Created) => {
                let detail = format!(
                    "a person must approve this revocation before {}: `{}`; nothing was written{unread}",
                    stamp(asked.expires_at),
                    approve_command(&asked.id)
                );
                let mut outcome = asked.outcome(Status::AwaitingApproval, detail);
                outcome.api_calls = report.api_calls;
                self.audit_approval(message_id, &outcome).await;
                tracing::info!(approval_id = %asked.id, message_id, expires_at = %stamp(asked.expires_at), "approval asked");
                announced_here.insert(asked.id.clone());
                Some((outcome, Some(asked.id)))
            }
            Ok(Asked::Exists(existing)) if existing.request == *request => {
                let open = existing.state == ApprovalState::Pending;
                if !open || existing.notified || !announced_here.insert(existing.id.clone()) {
                    tracing::info!(approval_id = %existing.id, message_id, state = %existing.state, "the same question again (a redelivery, or its copy in this batch): nothing recorded, nothing published");
                    return None;
                }
                // Recorded before, its message never confirmed: announced again.
                let detail = format!(
                    "a person must approve this revocation before {}: `{}`; nothing was written (asked at {}; announced again: the first message may not have gone out)",
                    stamp(existing.expires_at),
                    approve_command(&existing.id),
                    stamp(existing.created_at)
                );
                let mut outcome = existing.outcome(Status::AwaitingApproval, detail);
                outcome.api_calls = report.api_calls;
                Some((outcome, Some(existing.id.clone())))
            }
            Ok(Asked::Exists(existing)) => {
                let mut outcome = self.update_of(&existing, request);
                outcome.api_calls = report.api_calls;
                // A question never announced is announced by this message.
                let announces = (existing.state == ApprovalState::Pending
                    && !existing.notified
                    && announced_here.insert(existing.id.clone()))
                .then(|| existing.id.clone());
                Some((outcome, announces))
            }
            Err(err) => {
                tracing::error!(message_id, error = %err, "approval not recorded; the message will be retried");
                let mut outcome = Outcome::for_request(request, Status::Failed, "").failed(
                    FailureKind::LedgerUnavailable,
                    format!("the approval could not be recorded, so nobody was asked: {err}"),
                );
                outcome.api_calls = report.api_calls;
                Some((outcome, None))
            }
        }
    }

    /// The outcome of a later update of a finding whose approval was asked already:
    /// told as `alert` would tell it (nothing is written), pointing at the approval:
    /// still awaiting a decision, or closed (then revoking is by hand). A question
    /// whose first request differs from this one in what an update cannot change is
    /// flagged: one of them may not come from intake.
    fn update_of(&self, existing: &Approval, request: &RevocationRequest) -> Outcome {
        let id = &existing.id;
        let now = self.clock.now();
        let (status, mut detail) = match existing.why_closed(now) {
            None => (
                Status::AwaitingApproval,
                format!(
                    "this finding was updated while approval {id} awaits a decision: `{}` before {}; nothing was written",
                    approve_command(id),
                    stamp(existing.expires_at)
                ),
            ),
            Some(closed) => (
                Status::Alerted,
                format!(
                    "this finding was updated after its question was closed ({closed}): nothing is done automatically, as for an alert; if this is a compromise, revoke by hand: `{}`",
                    revoke_hint(&request.target)
                ),
            ),
        };
        if let Some(differs) = existing.differs_from(request) {
            tracing::warn!(approval_id = %id, differs = %differs, "an approval's question and a later message about its finding disagree");
            detail = format!(
                "{detail}. WARNING: {differs}: one of them may not come from cutoff's intake (anyone who can send to its queue could have asked first); check the finding in the console before deciding"
            );
        }
        tracing::info!(approval_id = %id, state = %existing.state, "a later update of a finding whose approval was asked: told");
        let mut outcome = Outcome::for_request(request, status, detail);
        outcome.owner = existing.owner.clone();
        outcome.approval = Some(existing.note());
        outcome
    }

    /// Writes an approval's own audit entry (asked, refused): `cutoff history` shows
    /// it beside the principal's revocations.
    async fn audit_approval(&self, request_id: &str, outcome: &Outcome) {
        record_approval(&self.ledger, self.clock.now(), request_id, outcome).await;
    }

    /// An operator's approval action: `approve` and `refuse` through the operator path
    /// only, `pending` either way. Approving runs the stored request.
    pub async fn answer_approval<P: Approvals>(
        &self,
        approvals: &P,
        action: ApprovalAction,
        caller: &Caller,
        request_id: &str,
        settings: InvocationSettings,
    ) -> DirectAnswer {
        let failed = |outcome: Outcome, kind: FailureKind, why: String| {
            let mut outcome = outcome.failed(kind, why);
            if let Caller::Verified(arn) = caller {
                outcome.trigger.requested_by = Some(arn.clone());
                outcome.trigger.requested_by_verified = true;
            }
            Box::new(outcome)
        };
        // A refusal the operator fixes (a mistyped id, an approval decided or expired
        // already): answered and logged, not announced.
        let refused = |outcome: Outcome, kind: FailureKind, why: String| {
            DirectAnswer::Refused(failed(outcome, kind, why))
        };
        // One that may be an attack (a plain invoke deciding, the principal under
        // suspicion deciding its own case): announced to the owner and security too,
        // as a plain invoke's release is.
        let announced = |outcome: Outcome, kind: FailureKind, why: String| {
            DirectAnswer::Outcome(failed(outcome, kind, why))
        };
        let unknown = || Outcome::invalid_request("");
        if !approvals.enabled() {
            return refused(
                unknown(),
                FailureKind::InvalidRequest,
                "this deployment keeps no ledger (CUTOFF_LEDGER_TABLE): there are no approvals"
                    .to_owned(),
            );
        }
        let id = match &action {
            ApprovalAction::Pending => return self.open_approvals(approvals, caller).await,
            ApprovalAction::Approve { id, .. } | ApprovalAction::Refuse { id, .. } => id.clone(),
        };
        let Caller::Verified(by) = caller else {
            return announced(
                unknown(),
                FailureKind::InvalidRequest,
                format!(
                    "{} comes only from the operator path (the revoker's function URL with IAM auth; `cutoff {} {id}` signs for it), where AWS vouches for who decides; a plain invoke cannot",
                    action.as_str(),
                    action.as_str()
                ),
            );
        };
        let found = match approvals.get(&id).await {
            Ok(found) => found,
            Err(err) => {
                return refused(
                    unknown(),
                    FailureKind::LedgerUnavailable,
                    format!("reading approval {id}: {err}"),
                );
            }
        };
        let Some(approval) = found else {
            return refused(
                unknown(),
                FailureKind::Refused,
                format!(
                    "no approval {id} in the ledger: check the id in the message (`cutoff pending` lists the open ones); a closed one is kept {} days past its expiry",
                    cutoff_aws::dynamodb::approvals::APPROVAL_RETENTION_DAYS
                ),
            );
        };
        let about = || approval.outcome(Status::Failed, "");
        let now = self.clock.now();
        if let Some(why) = approval.why_closed(now) {
            return refused(about(), FailureKind::Refused, why);
        }
        if is_the_suspect(by, &approval.request.target) {
            tracing::warn!(approval_id = %id, caller = %by, "the principal under suspicion tried to decide its own approval");
            return announced(
                about(),
                FailureKind::Refused,
                format!(
                    "{by} is {} or a session of it, the principal this approval is about: the principal under suspicion cannot {} its own revocation; another operator must decide",
                    approval.request.target,
                    action.as_str()
                ),
            );
        }
        let (to, reason) = match &action {
            ApprovalAction::Approve { reason, .. } => (ApprovalState::Approved, reason),
            _ => (
                ApprovalState::Refused,
                match &action {
                    ApprovalAction::Refuse { reason, .. } => reason,
                    _ => &None,
                },
            ),
        };
        let reason = reason.as_ref().map(|r| r.as_str());
        match approvals.decide(&id, to, by, now, reason).await {
            Ok(true) => {}
            Ok(false) => {
                // Decided or expired since it was read: say by whom.
                let why = match approvals.get(&id).await {
                    Ok(Some(now_there)) => now_there.why_closed(now),
                    _ => None,
                }
                .unwrap_or_else(|| format!("approval {id} is no longer pending"));
                return refused(about(), FailureKind::Refused, why);
            }
            Err(err) => {
                return refused(
                    about(),
                    FailureKind::LedgerUnavailable,
                    format!("deciding approval {id}: {err}"),
                );
            }
        }
        let decided = Approval {
            state: to,
            decided_by: Some(by.clone()),
            decided_at: Some(now),
            reason: reason.map(str::to_owned),
            ..approval.clone()
        };
        tracing::info!(approval_id = %id, caller = %by, state = %to, "approval decided");
        if to == ApprovalState::Refused {
            let outcome = decided.outcome(
                Status::ApprovalRefused,
                format!("{by} refused this revocation: nothing was written"),
            );
            self.audit_approval(request_id, &outcome).await;
            return DirectAnswer::Outcome(Box::new(outcome));
        }
        // The stored request, as stored: the approver adds their name, nothing else.
        let mut request = decided.request.clone();
        request.needs_approval = false;
        request.trigger.approved_by = Some(by.clone());
        request.dry_run |= settings.dry_run;
        let mut outcome = self.handle(&request, request_id).await;
        // The revocation did not happen (the lock busy, the breaker full, IAM
        // refusing): the approval must not be used up by it, or nobody could approve
        // the revocation again. Open again, it can be approved once the cause is fixed.
        let mut note = decided.note();
        if outcome.status == Status::Failed {
            match approvals.reopen(&id, by, now, true).await {
                Ok(true) => {
                    note = approval.note();
                    outcome.detail = format!(
                        "{} (the approval is open again until {}: approve it once more with `cutoff approve {id}` once the cause is fixed)",
                        outcome.detail,
                        approval
                            .expires_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    );
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::error!(approval_id = %id, error = %err, "a failed approved revocation's approval could not be opened again");
                    outcome.detail = format!(
                        "{} (the approval could not be opened again now: {err}; the sweeper opens it again at its first run at least {} minutes from now, or revoke by hand with `cutoff revoke`)",
                        outcome.detail,
                        APPROVED_RUN_LEASE.num_minutes()
                    );
                }
            }
        } else if let Err(err) = approvals.finish_run(&id, by, now).await {
            // The sweeper will take it for a run that stopped and open it again: a
            // second approval then finds the deny in place.
            tracing::warn!(approval_id = %id, error = %err, "the approved revocation reported back but is not marked finished: the sweeper will open its approval again");
        }
        outcome.approval = Some(note);
        DirectAnswer::Outcome(Box::new(outcome))
    }

    /// The approvals still open, soonest to expire first.
    async fn open_approvals<P: Approvals>(&self, approvals: &P, caller: &Caller) -> DirectAnswer {
        let caller_name = match caller {
            Caller::Verified(arn) => arn.as_str(),
            Caller::Claimed => "a plain invoke",
        };
        let now = self.clock.now();
        match approvals.list().await {
            Ok(listed) => {
                let mut open: Vec<Approval> = listed
                    .approvals
                    .into_iter()
                    .filter(|a| a.is_open(now))
                    .collect();
                open.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then(a.id.cmp(&b.id)));
                tracing::info!(
                    caller = caller_name,
                    open = open.len(),
                    "pending approvals read"
                );
                DirectAnswer::Approvals(open)
            }
            Err(err) => {
                tracing::error!(caller = caller_name, error = %err, "pending approvals not read");
                let outcome = Outcome::invalid_request("").failed(
                    FailureKind::LedgerUnavailable,
                    format!("reading the approvals: {err}"),
                );
                DirectAnswer::Refused(Box::new(outcome))
            }
        }
    }
}

/// Writes an approval's audit entry; a failure is logged (the outcome is published
/// and logged either way).
async fn record_approval<L: Ledger>(
    ledger: &L,
    at: DateTime<Utc>,
    request_id: &str,
    outcome: &Outcome,
) {
    let entry = AuditEntry {
        at,
        request_id: request_id.to_owned(),
        action: AUDIT_ACTION.to_owned(),
        outcome: outcome.clone(),
    };
    if let Err(err) = ledger.record(&entry).await {
        tracing::error!(error = %err, "approval's audit entry not written (the outcome is still logged and published)");
    }
}

/// What the sweeper did with the approvals in one sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExpiryReport {
    /// Approvals this run expired and announced.
    pub expired: usize,
    /// Approved revocations that never reported back, opened again and announced.
    #[serde(skip_serializing_if = "is_zero")]
    pub reopened: usize,
    /// Open approvals whose message had not gone out, announced.
    #[serde(skip_serializing_if = "is_zero")]
    pub announced: usize,
    /// Approvals this run could not expire or announce (a later run tries again).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The sweeper's work on the approvals, each announced once:
/// - an approved revocation that never reported back within [`APPROVED_RUN_LEASE`]
///   (the revoker timed out or crashed between the decision and the outcome) is opened
///   again, conditionally on that decision, and announced: it can be approved once
///   more (and expires as usual);
/// - every approval past its deadline is claimed for `claimant` (the sweep's run) with
///   a conditional update, so that of two concurrent runs one publishes its
///   `approval_expired` outcome, marked announced once published; an expiry whose
///   message did not go out is announced by a later run once the claim is stale;
/// - an open approval whose message never went out (its ask's publish failed and the
///   message was dead-lettered) is announced again.
///
/// The outcomes published, for the metrics and the log.
pub async fn expire_approvals<P, B, L>(
    approvals: &P,
    bus: &B,
    ledger: &L,
    now: DateTime<Utc>,
    claimant: &str,
) -> (ExpiryReport, Vec<Outcome>)
where
    P: Approvals,
    B: OutcomeBus,
    L: Ledger,
{
    let mut report = ExpiryReport::default();
    let mut published = Vec::new();
    let announcer = Announcer {
        approvals,
        bus,
        ledger,
        now,
        claimant,
    };
    let listed = match approvals.list().await {
        Ok(listed) => listed,
        Err(err) => {
            tracing::error!(error = %err, "approvals not read; a later sweep expires them");
            report.errors.push(format!("reading the approvals: {err}"));
            return (report, published);
        }
    };
    // An item nobody can read may be a question nobody can answer: said every run
    // until someone looks (docs/runbook.md).
    for why in listed.unreadable {
        report.errors.push(format!(
            "an approval item cannot be read, so it is neither announced nor expired (pk = {}, sk = {why})",
            cutoff_aws::dynamodb::approvals::APPROVAL_PARTITION
        ));
    }
    for mut approval in listed.approvals {
        let id = approval.id.clone();
        // What the approval's message says of a run that stalled, if it did.
        let mut stalled = None;
        if approval.run_stalled(now) {
            let (Some(by), Some(at)) = (approval.decided_by.clone(), approval.decided_at) else {
                continue;
            };
            match approvals.reopen(&id, &by, at, false).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(err) => {
                    report
                        .errors
                        .push(format!("opening stalled approval {id} again: {err}"));
                    continue;
                }
            }
            tracing::warn!(approval_id = %id, approved_by = %by, approved_at = %stamp(at), "an approved revocation never reported back: its approval is open again");
            stalled = Some(format!(
                "{by} approved this revocation at {}, but it never reported back (the revoker stopped before its outcome: a timeout or a crash), so whether the deny was written is not known (`cutoff status` shows it)",
                stamp(at)
            ));
            report.reopened += 1;
            approval = Approval {
                state: ApprovalState::Pending,
                decided_by: None,
                decided_at: None,
                reason: None,
                notified: false,
                run_finished: true,
                ..approval
            };
        }
        let unannounced_expiry = approval.state == ApprovalState::Expired && !approval.notified;
        if approval.expiry_due(now) || unannounced_expiry {
            match approvals.claim_expiry(&id, claimant, now).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(err) => {
                    report.errors.push(format!("expiring approval {id}: {err}"));
                    continue;
                }
            }
            let expired = Approval {
                state: ApprovalState::Expired,
                ..approval
            };
            let why = match &stalled {
                Some(stalled) => format!("{stalled}; its time is up"),
                None => "nobody approved or refused this revocation".to_owned(),
            };
            let detail = format!(
                "{why} before {}: it expired, nothing was written",
                stamp(expired.expires_at)
            );
            let outcome = expired.outcome(Status::ApprovalExpired, detail);
            if let Some(outcome) = announcer.announce(&id, outcome, &mut report).await {
                published.push(outcome);
                report.expired += 1;
            }
            continue;
        }
        if stalled.is_some() || approval.unannounced(now) {
            let why = stalled.unwrap_or_else(|| {
                format!(
                    "asked at {}; its message may not have gone out, so it is announced again",
                    stamp(approval.created_at)
                )
            });
            let detail = format!(
                "{why}: a person must approve this revocation before {}: `{}`; nothing was written",
                stamp(approval.expires_at),
                approve_command(&id)
            );
            let outcome = approval.outcome(Status::AwaitingApproval, detail);
            if let Some(outcome) = announcer.announce(&id, outcome, &mut report).await {
                published.push(outcome);
                report.announced += 1;
            }
        }
    }
    (report, published)
}

/// How the sweeper announces what it did with an approval.
struct Announcer<'a, P, B, L> {
    approvals: &'a P,
    bus: &'a B,
    ledger: &'a L,
    now: DateTime<Utc>,
    claimant: &'a str,
}

impl<P: Approvals, B: OutcomeBus, L: Ledger> Announcer<'_, P, B, L> {
    /// Publishes `outcome` about approval `id`, then marks it announced and audits it:
    /// the outcome when it went out; None (and the error reported) when it did not,
    /// so that a later run announces it again.
    async fn announce(
        &self,
        id: &ApprovalId,
        mut outcome: Outcome,
        report: &mut ExpiryReport,
    ) -> Option<Outcome> {
        outcome.request_id = Some(self.claimant.to_owned());
        crate::telemetry::log_outcome(&outcome);
        if let Err(err) = self.bus.publish(std::slice::from_ref(&outcome)).await {
            tracing::error!(approval_id = %id, status = outcome.status.as_str(), error = %err, "the approval's outcome was not published; a later sweep announces it");
            report.errors.push(format!(
                "announcing approval {id} ({}): {err}",
                outcome.status.as_str()
            ));
            return None;
        }
        if let Err(err) = self.approvals.mark_notified(id).await {
            tracing::warn!(approval_id = %id, error = %err, "the approval's outcome went out but is not marked announced; a later sweep may announce it again");
        }
        record_approval(self.ledger, self.now, self.claimant, &outcome).await;
        Some(outcome)
    }
}

#[cfg(test)]
mod tests;
