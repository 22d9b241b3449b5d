//! The revoker's three inputs: an SQS batch from intake (FIFO, one group per
//! principal); an operator's request through its function URL, where AWS verified the
//! caller (IAM auth); or a plain direct invoke, where the caller's name is only
//! claimed.
//!
//! Only the operator path may release a deny, force anything, or approve or refuse an
//! approval: a plain invoke tells the function nothing about its caller, and a queue
//! message is only as trustworthy as whoever could send it. Every queue message is
//! validated as strictly as a manual request; one that needs approval (a medium
//! finding with `CUTOFF_MEDIUM_FINDINGS=ask`) is asked, not revoked
//! ([`crate::handler::approval`]).

use cutoff_domain::triage::Source;
use std::collections::BTreeMap;

use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde_json::{Value, json};

use aws_config::SdkConfig;
use lambda_runtime::LambdaEvent;

use super::{Failure, Handler, StartError};
use crate::config::{RevokerConfig, revoker_env};
use crate::revoke::FollowedUp;
use crate::revoke::{RevokeConfig, Revoker, SelfCheckIdentity};
use cutoff_aws::cloudtrail::HistoryAccess;
use cutoff_aws::dynamodb::approvals::{Approvals, NoApprovals, SdkApprovals};
use cutoff_aws::dynamodb::{ConfiguredLedger, Ledger};
use cutoff_aws::eventbridge::SdkOutcomeBus;
use cutoff_aws::retry::RetryPolicy;
use cutoff_aws::retrying::Retrying;
use cutoff_aws::scheduler::{FollowUps, NoFollowUps, SdkFollowUps};
use cutoff_aws::sts::{SdkAccountAccess, discover_home};
use cutoff_aws::{AccountAccess, OutcomeBus};
use cutoff_domain::approval::{self, ApprovalHours};
use cutoff_domain::clock::Clock;
use cutoff_domain::clock::SystemClock;
use cutoff_domain::event::{ManualAction, manual};
use cutoff_domain::follow_up::{FollowUpTask, RUNS, run_delay};
use cutoff_domain::json::Payload;
use cutoff_domain::metrics::{Function, IAM_CALLS, OutcomeTally, Record, containment};
use cutoff_domain::outcome::{FailureKind, Outcome, RevocationRequest, Status, Trigger};
use cutoff_domain::principal::{PrincipalArn, TargetKind, clean_text};

/// Who sent a manual request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The ARN AWS verified: the IAM authorizer of the function URL.
    Verified(String),
    /// A plain invoke: the request's own `requested_by`, if any, unverified.
    Claimed,
}

/// What one invocation carried.
#[derive(Debug)]
pub enum Invocation {
    /// An SQS batch.
    Queue(SqsEvent),
    /// A request through the function URL (IAM auth): the caller AWS verified and
    /// the body, or why the request cannot be served.
    Operator(Result<(String, Value), String>),
    /// A direct invoke with a manual request (valid or not).
    Direct(Result<Value, String>),
    /// A follow-up run, from its one-time schedule (a plain invoke: checked against
    /// the ledger before it is run).
    FollowUp(Result<FollowUpTask, String>),
}

/// The HTTP answer to a function URL request: the JSON as the body.
fn url_response(body: &Value) -> Value {
    json!({
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": body.to_string(),
        "isBase64Encoded": false
    })
}

impl Invocation {
    /// SQS batches are recognised by their records' `eventSource`, function URL
    /// requests by their request context; anything else is a direct invoke and is
    /// validated as a manual request. A payload with a duplicate key is refused.
    pub fn classify(payload: impl Into<Payload>) -> Self {
        let payload = match payload.into().into_strict() {
            Ok(value) => value,
            Err(err) => return Invocation::Direct(Err(err.to_string())),
        };
        if super::is_sqs_batch(&payload)
            && let Ok(event) = serde_json::from_value::<SqsEvent>(payload.clone())
        {
            return Invocation::Queue(event);
        }
        if is_function_url_request(&payload) {
            return Invocation::Operator(operator_request(payload));
        }
        if let Some(task) = FollowUpTask::from_payload(&payload) {
            return Invocation::FollowUp(task);
        }
        Invocation::Direct(Ok(payload))
    }
}

/// A function URL event: `requestContext.http` and a `rawPath`.
fn is_function_url_request(payload: &Value) -> bool {
    payload
        .get("requestContext")
        .and_then(|c| c.get("http"))
        .is_some_and(Value::is_object)
        && payload.get("rawPath").is_some()
}

/// The verified caller and the JSON body of a function URL request.
fn operator_request(payload: Value) -> Result<(String, Value), String> {
    let request: LambdaFunctionUrlRequest = serde_json::from_value(payload).map_err(|e| {
        format!(
            "not a function URL request: {}",
            clean_text(&e.to_string(), 200)
        )
    })?;
    let caller = request
        .request_context
        .authorizer
        .as_ref()
        .and_then(|a| a.iam.as_ref())
        .and_then(|iam| iam.user_arn.as_deref())
        .ok_or("the operator path needs IAM auth: the request carries no verified caller (is the function URL's AuthType AWS_IAM?)")?;
    // The authorizer's caller is a principal ARN (an assumed-role session, a user).
    PrincipalArn::parse(caller)
        .map_err(|e| format!("the verified caller is not a principal ARN: {e}"))?;
    if request.request_context.http.method.as_deref() != Some("POST") {
        return Err("send the request as a POST with a JSON body".to_owned());
    }
    if request.is_base64_encoded {
        return Err("send the request body as JSON with content-type application/json".to_owned());
    }
    let body = cutoff_domain::json::from_str(request.body.as_deref().unwrap_or(""))
        .map_err(|e| format!("the request body: {e}"))?;
    Ok((caller.to_owned(), body))
}

/// An outcome for one queue message, with its message id.
#[derive(Debug, Clone)]
pub struct MessageOutcome {
    pub message_id: String,
    pub outcome: Outcome,
    /// The request the message carried, when it could be read.
    pub request: Option<RevocationRequest>,
    /// When this run verified the deny the outcome reports (an `applied` outcome of
    /// this invocation's, not one answered from the ledger): the time-to-contain's end.
    pub verified_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The result of an SQS batch: what to tell Lambda (failed message ids go back to
/// the queue and, after `maxReceiveCount`, to the dead-letter queue) and every
/// message's outcome.
#[derive(Debug)]
pub struct BatchResult {
    pub response: SqsBatchResponse,
    pub outcomes: Vec<MessageOutcome>,
    /// Revocation workflows run (one per principal in the batch).
    pub runs: usize,
    /// The IAM and STS calls of those runs (each run's once, however many messages
    /// shared it).
    pub api_calls: u64,
}

/// A queue message that is not a revocation cutoff would queue, and the request in it
/// when it could be read at all (so that the outcome names the principal).
pub(crate) struct Refused {
    why: String,
    request: Option<Box<RevocationRequest>>,
}

/// Reads a queue message as strictly as a manual request: strict JSON (no duplicate
/// keys), no unknown fields, the same shape checks, and only what the queue may carry.
pub(crate) fn queued_request(body: Option<&str>) -> Result<RevocationRequest, Refused> {
    let refused = |why: String| Refused { why, request: None };
    let body = body.ok_or_else(|| refused("the message has no body".to_owned()))?;
    let value = cutoff_domain::json::from_str(body).map_err(|e| refused(e.to_string()))?;
    let request: RevocationRequest =
        serde_json::from_value(value).map_err(|e| refused(clean_text(&e.to_string(), 300)))?;
    match request.check_queued() {
        Ok(()) => Ok(request),
        Err(why) => Err(Refused {
            why,
            request: Some(Box::new(request)),
        }),
    }
}

/// The key requests are coalesced by: one principal, one scope, one session.
fn coalesce_key(request: &RevocationRequest) -> String {
    let t = &request.target;
    // The access key is part of the key: two findings naming two keys of one user
    // must each get their key deactivated, not just the first one's.
    // So is the unique id the finding names: a request about a principal since
    // recreated must fail on its own, not take another's write with it. And the source
    // and custom action: the circuit breaker counts by them, and a selection whose
    // action is over its cap must not take a GuardDuty finding's revocation down too.
    format!(
        "{}/{}/{}/{}/{}/{}/{}/{}/{}/{}/{}",
        request.trigger.source,
        request.trigger.custom_action.as_deref().unwrap_or("-"),
        t.account,
        t.kind,
        t.name,
        request.scope.as_str(),
        t.session.as_ref().map(|s| s.as_str()).unwrap_or("-"),
        t.access_key_id.as_ref().map(|k| k.as_str()).unwrap_or("-"),
        request
            .expected_unique_id
            .as_ref()
            .map(|id| id.as_str())
            .unwrap_or("-"),
        request.action.as_str(),
        request.dry_run
    )
}

/// Folds the requests for one principal into the one request that covers them all:
/// the same write, so a finding storm costs one IAM write per principal.
fn coalesce(requests: &[&RevocationRequest]) -> Option<RevocationRequest> {
    let first = (*requests.first()?).clone();
    // Skipping a write is only safe if every finding's activity is covered, so the
    // latest first activity wins; a request without one (manual) always writes.
    let first_activity = requests
        .iter()
        .map(|r| r.first_activity)
        .try_fold(None, |acc: Option<chrono::DateTime<chrono::Utc>>, t| {
            t.map(|t| Some(acc.map_or(t, |a| a.max(t))))
        })
        .flatten();
    Some(RevocationRequest {
        first_activity,
        force: requests.iter().all(|r| r.force),
        ..first
    })
}

/// The most messages about one principal handled as one group (one lock, one write, one
/// closing transaction of an audit entry each and the lock item).
const MAX_GROUP: usize = 25;

/// Up to MAX_GROUP messages about one principal, handled together: (message id, request).
type Chunk<'a> = &'a [(&'a str, &'a RevocationRequest)];

/// How many principals of a batch are handled at once. Each makes its calls one after
/// another; IAM's control plane throttles an account's bursts (the calls retry with
/// backoff), so a few at once, not the whole batch.
const GROUPS_AT_ONCE: usize = 4;

/// How much of the function's 90 s a batch's requests may use: the long ones (an
/// Identity Center containment) stop waiting by then, and the outcomes are still
/// published in time.
pub const INVOCATION_BUDGET: std::time::Duration = std::time::Duration::from_secs(75);

impl<A, K, L> Revoker<A, K, L>
where
    A: AccountAccess + HistoryAccess,
    A::Client: cutoff_aws::PolicySimulator,
    K: Clock,
    L: cutoff_aws::dynamodb::Ledger,
{
    /// Handles an SQS batch. A message whose body is not a request ends in a failed
    /// outcome and is reported as a batch item failure, so it reaches the dead-letter
    /// queue instead of vanishing.
    pub async fn handle_batch(&self, event: &SqsEvent, force_dry_run: bool) -> BatchResult {
        let mut outcomes = Vec::new();
        let mut failures = Vec::new();
        let mut groups: BTreeMap<String, Vec<(String, RevocationRequest)>> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();

        for record in &event.records {
            let message_id = record.message_id.clone().unwrap_or_default();
            match queued_request(record.body.as_deref()) {
                Ok(mut request) => {
                    request.dry_run |= force_dry_run;
                    let key = coalesce_key(&request);
                    if !groups.contains_key(&key) {
                        order.push(key.clone());
                    }
                    groups.entry(key).or_default().push((message_id, request));
                }
                // Refused, notified, and not retried: no attempt can make it valid.
                Err(refused) => {
                    tracing::error!(message_id, error = %refused.why, "queue message refused");
                    let outcome = match refused.request {
                        Some(request) => Outcome::for_request(&request, Status::Failed, "").failed(
                            FailureKind::InvalidRequest,
                            format!("queue message refused: {}", refused.why),
                        ),
                        None => {
                            let mut outcome = Outcome::invalid_request(format!(
                                "queue message is not a revocation request: {}",
                                refused.why
                            ));
                            outcome.trigger.source = Source::Queue;
                            outcome
                        }
                    };
                    outcomes.push(MessageOutcome {
                        message_id,
                        outcome,
                        request: None,
                        verified_at: None,
                    });
                }
            }
        }

        let mut runs = 0;
        let mut api_calls = 0;
        let invocation_deadline = tokio::time::Instant::now() + INVOCATION_BUDGET;
        // One lock, one write and one closing for each group; a message already
        // applied (a redelivery) answers with its earlier outcome on its own, and the
        // others are folded into one request. A group closes in one transaction (at
        // most 100 items): an SQS batch holds ten messages, an invocation shaped like
        // one could hold more, so a group is cut into chunks of MAX_GROUP.
        let refs: Vec<Vec<(&str, &RevocationRequest)>> = order
            .iter()
            .filter_map(|key| groups.get(key))
            .map(|members| members.iter().map(|(id, r)| (id.as_str(), r)).collect())
            .collect();
        // The chunks of one principal (its groups differ by session, source, key…; a
        // group past MAX_GROUP messages is cut) form a lane, run one after another:
        // they take the same lock, and side by side the second would only wait for it.
        let mut lanes: Vec<(String, Vec<Chunk>)> = Vec::new();
        for group in &refs {
            let Some((_, first)) = group.first() else {
                continue;
            };
            let principal = format!("{}#{}", first.target.account, first.target.name);
            let lane = match lanes.iter().position(|(p, _)| *p == principal) {
                Some(i) => i,
                None => {
                    lanes.push((principal, Vec::new()));
                    lanes.len() - 1
                }
            };
            lanes[lane].1.extend(group.chunks(MAX_GROUP));
        }
        // Every request is started (none goes back unattempted, which would use up its
        // receives); the long ones bound themselves by the invocation's end. Different
        // principals run side by side, GROUPS_AT_ONCE lanes at a time, so that a batch
        // about ten principals takes about the time of its slowest few, not the sum:
        // each takes its principal's lock, and the breaker counts an account with
        // conditional writes.
        let mut chunks = Vec::with_capacity(refs.len());
        let mut handled = Vec::with_capacity(refs.len());
        for wave in lanes.chunks(GROUPS_AT_ONCE) {
            let mut running = Vec::with_capacity(wave.len());
            for (_, lane) in wave {
                running.push(self.handle_lane(lane, invocation_deadline));
                chunks.extend(lane.iter().copied());
            }
            for lane in futures_util::future::join_all(running).await {
                handled.extend(lane);
            }
        }
        for (chunk, group) in chunks.iter().zip(handled) {
            if group.ran {
                runs += 1;
            }
            api_calls += u64::from(group.api_calls);
            for ((message_id, request), handled) in chunk.iter().zip(group.members) {
                if handled.outcome.needs_retry() {
                    failures.push((*message_id).to_owned());
                }
                outcomes.push(MessageOutcome {
                    message_id: (*message_id).to_owned(),
                    outcome: handled.outcome,
                    request: Some((*request).clone()),
                    verified_at: handled.verified_at,
                });
            }
        }

        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures
            .into_iter()
            .map(|item_identifier| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = item_identifier;
                failure
            })
            .collect();
        BatchResult {
            response,
            outcomes,
            runs,
            api_calls,
        }
    }

    /// The chunks of one principal, one after another.
    async fn handle_lane(
        &self,
        lane: &[Chunk<'_>],
        invocation_deadline: tokio::time::Instant,
    ) -> Vec<crate::revoke::Group> {
        let mut handled = Vec::with_capacity(lane.len());
        for chunk in lane {
            handled.push(
                crate::revoke::within_invocation(
                    invocation_deadline,
                    self.handle_group(chunk, coalesce),
                )
                .await,
            );
        }
        handled
    }

    /// Handles a manual request, from the operator path or a plain invoke, answered
    /// with its outcome (or, for `status`, a status report). Invalid requests get a
    /// failed outcome, never an error: the operator needs to read why.
    ///
    /// Through the operator path AWS verified the caller: that ARN is `requested_by`.
    /// A plain invoke's `requested_by` is recorded as claimed, and such an invoke may
    /// only revoke or ask for status: releasing a deny or forcing anything needs the
    /// verified path.
    pub async fn handle_direct(
        &self,
        payload: Value,
        caller: Caller,
        request_id: &str,
        force_dry_run: bool,
    ) -> DirectAnswer {
        let invalid = |message: String| {
            let mut outcome = Outcome::invalid_request(message);
            if let Caller::Verified(arn) = &caller {
                outcome.trigger.requested_by = Some(arn.clone());
                outcome.trigger.requested_by_verified = true;
            }
            DirectAnswer::Outcome(Box::new(outcome))
        };
        let manual = match manual::parse(payload) {
            Ok(r) => r,
            Err(e) => return invalid(e.to_string()),
        };
        if let Some(why) = manual.refuse_partition(self.config.partition) {
            return invalid(why);
        }
        if caller == Caller::Claimed && (manual.action == ManualAction::Release || manual.force) {
            return invalid(format!(
                "{} comes only from the operator path (the revoker's function URL with IAM auth, `cutoff {}` signs for it), where AWS vouches for who asks; a plain invoke cannot",
                if manual.force { "force" } else { "release" },
                manual.action.as_str()
            ));
        }
        let mut request = RevocationRequest::from_manual(&manual);
        request.trigger = match &caller {
            Caller::Verified(arn) => Trigger {
                requested_by: Some(arn.clone()),
                requested_by_verified: true,
                ..request.trigger
            },
            Caller::Claimed => request.trigger,
        };
        request.dry_run |= force_dry_run;
        match request.action {
            ManualAction::Status => {
                DirectAnswer::Status(Box::new(self.status(&request, request_id).await))
            }
            ManualAction::History => self.history(&request, manual.history_limit, &caller).await,
            _ => DirectAnswer::Outcome(Box::new(self.handle(&request, request_id).await)),
        }
    }

    /// One Lambda invocation, either kind: handles it, logs every outcome, and
    /// publishes the outcomes to the bus so the owner is told.
    ///
    /// On the queue path, an outcome that could not be published turns its message
    /// into a batch item failure: it is retried (the write is idempotent) until its
    /// outcome is out. A failed outcome is published on the first attempt and on the
    /// last one (`final_receive`, the queue's maxReceiveCount), not on every retry in
    /// between. On the direct path the operator already has the answer; a publish
    /// failure is logged.
    pub async fn handle_invocation<B: OutcomeBus>(
        &self,
        bus: &B,
        retry: &RetryPolicy,
        payload: impl Into<Payload>,
        request_id: &str,
        settings: InvocationSettings,
    ) -> Value {
        self.handle_invocation_with(bus, &NoFollowUps, retry, payload, request_id, settings)
            .await
    }

    /// [`Self::handle_invocation`], scheduling the follow-up runs of every revocation
    /// from the queue that names a key ([`FollowUpTask`]) through `follow_ups`.
    pub async fn handle_invocation_with<B: OutcomeBus, F: FollowUps>(
        &self,
        bus: &B,
        follow_ups: &F,
        retry: &RetryPolicy,
        payload: impl Into<Payload>,
        request_id: &str,
        settings: InvocationSettings,
    ) -> Value {
        self.handle_invocation_approving(
            bus,
            follow_ups,
            &NoApprovals,
            retry,
            payload,
            request_id,
            settings,
        )
        .await
    }

    /// [`Self::handle_invocation_with`], keeping the approvals medium-severity findings
    /// ask for in `approvals` ([`crate::handler::approval`]): a queued request that needs
    /// approval is asked, not revoked, and the operator path approves, refuses and
    /// lists them.
    #[allow(clippy::too_many_arguments)]
    pub async fn handle_invocation_approving<B: OutcomeBus, F: FollowUps, P: Approvals>(
        &self,
        bus: &B,
        follow_ups: &F,
        approvals: &P,
        retry: &RetryPolicy,
        payload: impl Into<Payload>,
        request_id: &str,
        settings: InvocationSettings,
    ) -> Value {
        let bus = &Retrying::new(bus, *retry);
        let scheduling = follow_ups.enabled();
        let follow_ups = &Retrying::new(follow_ups, *retry);
        match Invocation::classify(payload) {
            Invocation::FollowUp(task) => {
                let done = match task {
                    Ok(task) => self.follow_up(&task, request_id, settings.dry_run).await,
                    Err(why) => {
                        let mut outcome = Outcome::invalid_request(why);
                        outcome.trigger.source = Source::Chain;
                        FollowedUp {
                            outcome,
                            contained: Vec::new(),
                        }
                    }
                };
                let mut all = done.contained;
                all.push(done.outcome);
                // Each says which request recorded it (the messages name it).
                for outcome in &mut all {
                    outcome
                        .request_id
                        .get_or_insert_with(|| request_id.to_owned());
                }
                for outcome in &all {
                    crate::telemetry::log_outcome(outcome);
                }
                // The run's own outcome counts its links' calls too.
                let calls = all.last().map_or(0, |o| u64::from(o.api_calls));
                self.emit_metrics(request_id, all.iter().collect(), calls, Vec::new());
                if let Err(err) = bus.publish(&all).await {
                    tracing::error!(error = %err, count = all.len(), "follow-up outcomes not published (they are in the ledger's audit trail and the log)");
                }
                all.last().map(to_value).unwrap_or(Value::Null)
            }
            Invocation::Queue(batch) => {
                let receives: BTreeMap<String, u32> = batch
                    .records
                    .iter()
                    .map(|r| {
                        let count = r
                            .attributes
                            .get("ApproximateReceiveCount")
                            .and_then(|c| c.parse().ok())
                            .unwrap_or(1);
                        (r.message_id.clone().unwrap_or_default(), count)
                    })
                    .collect();
                // Requests that need approval are asked, not revoked.
                let (batch, asks) = crate::handler::approval::split_batch(batch);
                let mut result = self.handle_batch(&batch, settings.dry_run).await;
                let asked = self.ask_approvals(approvals, &asks, settings).await;
                let announced = crate::handler::approval::merge_asked(&mut result, asked);
                // A follow-up is checked against the ledger's key records: without a
                // ledger none could run.
                if scheduling && self.ledger.enabled() {
                    self.schedule_follow_ups(follow_ups, &mut result).await;
                }
                self.emit_metrics(
                    request_id,
                    result.outcomes.iter().map(|m| &m.outcome).collect(),
                    result.api_calls,
                    containments(&result),
                );
                let mut to_publish = Vec::new();
                let mut published_ids = Vec::new();
                for message in &mut result.outcomes {
                    // The id the ledger's audit trail records the message under: its
                    // log line and its published outcome name it.
                    message.outcome.request_id = Some(message.message_id.clone());
                }
                for message in &result.outcomes {
                    crate::telemetry::log_outcome(&message.outcome);
                    let receive = receives.get(&message.message_id).copied().unwrap_or(1);
                    let retried = message.outcome.needs_retry();
                    let tell = !retried || receive <= 1 || receive >= settings.final_receive;
                    if tell {
                        let mut outcome = message.outcome.clone();
                        if retried {
                            outcome.detail = if receive >= settings.final_receive {
                                format!(
                                    "{} (attempt {receive}, the last: the request is now in the dead-letter queue)",
                                    outcome.detail
                                )
                            } else {
                                format!(
                                    "{} (attempt {receive}; it will be retried)",
                                    outcome.detail
                                )
                            };
                        }
                        to_publish.push(outcome);
                        published_ids.push(message.message_id.clone());
                    }
                }
                let publish = if to_publish.is_empty() {
                    Ok(())
                } else {
                    bus.publish(&to_publish).await
                };
                if publish.is_ok() {
                    crate::handler::approval::mark_announced(approvals, &announced, &published_ids)
                        .await;
                }
                if let Err(err) = publish {
                    tracing::error!(error = %err, count = to_publish.len(), "outcomes not published; their messages will be retried");
                    let already: Vec<String> = result
                        .response
                        .batch_item_failures
                        .iter()
                        .map(|f| f.item_identifier.clone())
                        .collect();
                    for id in published_ids.into_iter().filter(|id| !already.contains(id)) {
                        let mut failure = BatchItemFailure::default();
                        failure.item_identifier = id;
                        result.response.batch_item_failures.push(failure);
                    }
                }
                to_value(&result.response)
            }
            Invocation::Operator(request) => {
                let answer = match request {
                    Ok((caller, body)) if cutoff_domain::self_check::is_self_check(&body) => {
                        return url_response(
                            &self.answer_self_check(body, &caller, request_id).await,
                        );
                    }
                    Ok((caller, body)) if approval::is_approval_action(&body) => {
                        self.approval_answer(
                            approvals,
                            body,
                            Caller::Verified(caller),
                            request_id,
                            settings,
                        )
                        .await
                    }
                    Ok((caller, body)) => {
                        self.handle_direct(
                            body,
                            Caller::Verified(caller),
                            request_id,
                            settings.dry_run,
                        )
                        .await
                    }
                    Err(why) => DirectAnswer::Outcome(Box::new(Outcome::invalid_request(why))),
                };
                url_response(
                    &self
                        .answer(bus, answer.recorded_as(request_id), request_id)
                        .await,
                )
            }
            Invocation::Direct(payload) => {
                let answer = match payload {
                    Ok(payload) if cutoff_domain::self_check::is_self_check(&payload) => {
                        DirectAnswer::Outcome(Box::new(Outcome::invalid_request(
                            "self_check comes only from the operator path (the revoker's function URL with IAM auth; `cutoff doctor` signs for it)".to_owned(),
                        )))
                    }
                    Ok(payload) if approval::is_approval_action(&payload) => {
                        self.approval_answer(approvals, payload, Caller::Claimed, request_id, settings)
                            .await
                    }
                    Ok(payload) => {
                        self.handle_direct(payload, Caller::Claimed, request_id, settings.dry_run)
                            .await
                    }
                    Err(why) => DirectAnswer::Outcome(Box::new(Outcome::invalid_request(why))),
                };
                self.answer(bus, answer.recorded_as(request_id), request_id)
                    .await
            }
        }
    }

    /// Schedules the follow-up runs of each revocation in `result` that names a key
    /// and ended with the key covered. A schedule that cannot be made turns its message
    /// into a batch item failure (redelivered, the revocation answers from the ledger
    /// and the schedules are made again; those made already are kept), and its outcome
    /// says so.
    async fn schedule_follow_ups<F: FollowUps>(&self, follow_ups: &F, result: &mut BatchResult) {
        let now = self.clock.now();
        for message in &mut result.outcomes {
            let outcome = &mut message.outcome;
            let (Some(request), Some(revoked)) = (&message.request, &outcome.target) else {
                continue;
            };
            if !matches!(outcome.status, Status::Applied | Status::AlreadyRevoked)
                || outcome.dry_run
            {
                continue;
            }
            let mut failed = None;
            let mut made = 0;
            for run in 1..=RUNS {
                let (Some(task), Some(delay)) = (
                    FollowUpTask::after(request, revoked, now, run),
                    run_delay(run),
                ) else {
                    continue;
                };
                let payload = task.to_payload().to_string();
                match follow_ups
                    .schedule(&task.schedule_name(), now + delay, &payload)
                    .await
                {
                    Ok(_) => made += 1,
                    Err(err) => {
                        failed = Some(err);
                        break;
                    }
                }
            }
            if let Some(err) = failed {
                tracing::error!(message_id = message.message_id, error = %err, "follow-up not scheduled; the message will be retried");
                outcome.detail = format!(
                    "{}; the follow-up through CloudTrail could not be scheduled ({err}): the message is retried to schedule it",
                    outcome.detail
                );
                if !result
                    .response
                    .batch_item_failures
                    .iter()
                    .any(|f| f.item_identifier == message.message_id)
                {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = message.message_id.clone();
                    result.response.batch_item_failures.push(failure);
                }
            } else if made > 0 {
                outcome.detail = format!(
                    "{}; what the key did is followed through CloudTrail in {RUNS} runs over the next hour",
                    outcome.detail
                );
            }
        }
    }

    /// What the ledger recorded about the request's principal, newest first: the
    /// operator's `cutoff history` goes through here, so that reading it needs nothing
    /// but the operator path. Read only: nothing is published; the read is logged with
    /// the caller.
    async fn history(
        &self,
        request: &RevocationRequest,
        limit: u16,
        caller: &Caller,
    ) -> DirectAnswer {
        let target = &request.target;
        let refused = |kind: FailureKind, message: String| {
            let outcome = Outcome::for_request(request, Status::Failed, String::new());
            DirectAnswer::Refused(Box::new(outcome.failed(kind, message)))
        };
        if !self.ledger.enabled() {
            return refused(
                FailureKind::InvalidRequest,
                "this deployment keeps no ledger (CUTOFF_LEDGER_TABLE): there is no history to read"
                    .to_owned(),
            );
        }
        // Keyed as the ledger keys it: every role-like principal as a role (a role
        // named like a service-linked or Identity Center one is revoked as a role).
        let kind = match target.kind {
            TargetKind::User => TargetKind::User,
            _ => TargetKind::Role,
        };
        let read = self
            .ledger
            .history(
                &target.account,
                kind.as_str(),
                target.name.as_str(),
                usize::from(limit),
            )
            .await;
        let caller = match caller {
            Caller::Verified(arn) => arn.as_str(),
            Caller::Claimed => "a plain invoke",
        };
        match read {
            Ok(entries) => {
                tracing::info!(
                    caller,
                    account = target.account.as_str(),
                    kind = target.kind.as_str(),
                    name = target.name.as_str(),
                    entries = entries.len(),
                    "history read"
                );
                let (entries, truncated) = fit_history(entries, HISTORY_ANSWER_BYTES);
                if truncated {
                    tracing::warn!(
                        caller,
                        kept = entries.len(),
                        "history cut to fit the answer"
                    );
                }
                DirectAnswer::History(entries, truncated)
            }
            Err(err) => {
                tracing::error!(caller, error = %err, "history not read");
                refused(err.kind.into(), format!("reading the ledger: {err}"))
            }
        }
    }

    /// Writes the invocation's metrics: its outcomes by status and source, the IAM calls
    /// of its runs, and the time to contain of each applied request.
    fn emit_metrics(
        &self,
        request_id: &str,
        outcomes: OutcomeTally,
        api_calls: u64,
        contained: Vec<Record>,
    ) {
        let mut records = outcomes.records(Function::Revoker);
        records.extend(contained);
        records.push(Record::of(Function::Revoker).value(&IAM_CALLS, api_calls));
        crate::metrics::emit(&records, self.clock.now(), request_id);
    }

    /// The answer to `cutoff doctor`'s self-check: `{"self_check": report}`, or a failed
    /// outcome saying why it was refused. It writes nothing, so nothing is published;
    /// it is logged with the verified caller.
    async fn answer_self_check(&self, body: Value, caller: &str, request_id: &str) -> Value {
        let report = match cutoff_domain::self_check::SelfCheckRequest::parse(body) {
            Ok(request) => self.self_check(&request, request_id).await,
            Err(why) => Err(why),
        };
        match report {
            Ok(report) => {
                tracing::info!(
                    caller,
                    passed = report.passed,
                    accounts = report.accounts.len(),
                    "self-check"
                );
                json!({ "self_check": report })
            }
            Err(why) => {
                tracing::warn!(caller, %why, "self-check refused");
                let mut outcome = Outcome::invalid_request(why);
                outcome.trigger.requested_by = Some(caller.to_owned());
                outcome.trigger.requested_by_verified = true;
                to_value(&outcome)
            }
        }
    }

    /// An approval action's answer ([`crate::handler::approval`]); one that cannot be read is
    /// an invalid request.
    async fn approval_answer<P: Approvals>(
        &self,
        approvals: &P,
        body: Value,
        caller: Caller,
        request_id: &str,
        settings: InvocationSettings,
    ) -> DirectAnswer {
        match approval::parse_action(body) {
            Ok(action) => {
                self.answer_approval(approvals, action, &caller, request_id, settings)
                    .await
            }
            Err(why) => {
                let mut outcome = Outcome::invalid_request(why);
                if let Caller::Verified(arn) = &caller {
                    outcome.trigger.requested_by = Some(arn.clone());
                    outcome.trigger.requested_by_verified = true;
                }
                DirectAnswer::Outcome(Box::new(outcome))
            }
        }
    }

    /// A manual request's answer: an outcome is logged and published (the caller has
    /// it either way: a publish failure is logged), a status report only returned.
    async fn answer<B: OutcomeBus>(
        &self,
        bus: &B,
        answer: DirectAnswer,
        request_id: &str,
    ) -> Value {
        match answer {
            DirectAnswer::Status(report) => to_value(&report),
            DirectAnswer::History(entries, truncated) => history_json(&entries, truncated),
            DirectAnswer::Approvals(open) => json!({ "pending": open }),
            DirectAnswer::Refused(outcome) => {
                // A read refused (history): the caller has why; nothing was attempted
                // on a principal, so nobody else is told and no outcome is counted.
                crate::telemetry::log_outcome(&outcome);
                to_value(&outcome)
            }
            DirectAnswer::Outcome(outcome) => {
                crate::telemetry::log_outcome(&outcome);
                // An operator's request names no finding and no event: no time to
                // contain is measured from it. A request refused as invalid or on
                // purpose (a release too early) is the operator's to fix, not a failed
                // revocation: counted, it would hold the failed-revocations alarm in
                // ALARM for anyone who may send a typo, and hide a real failure.
                self.emit_metrics(
                    request_id,
                    counted_manual(&outcome),
                    u64::from(outcome.api_calls),
                    Vec::new(),
                );
                if let Err(err) = bus.publish(std::slice::from_ref(outcome.as_ref())).await {
                    tracing::error!(error = %err, "outcome of a manual request not published; the caller has it");
                }
                to_value(&outcome)
            }
        }
    }
}

/// How much of an answer a history may fill: a function URL answers at most 6 MB
/// (a Lambda response's limit), and an outcome with a follow-up report is large.
const HISTORY_ANSWER_BYTES: usize = 5 * 1024 * 1024;

/// The newest entries whose JSON fits in `budget` bytes, and whether any was left out.
fn fit_history(
    mut entries: Vec<cutoff_aws::dynamodb::AuditEntry>,
    budget: usize,
) -> (Vec<cutoff_aws::dynamodb::AuditEntry>, bool) {
    let mut used = 0;
    let fits = entries
        .iter()
        .take_while(|e| {
            used += serde_json::to_vec(e).map_or(usize::MAX / 2, |v| v.len() + 1);
            used <= budget
        })
        .count();
    let truncated = fits < entries.len();
    entries.truncate(fits);
    (entries, truncated)
}

fn history_json(entries: &[cutoff_aws::dynamodb::AuditEntry], truncated: bool) -> Value {
    if truncated {
        json!({ "history": entries, "truncated": true })
    } else {
        json!({ "history": entries })
    }
}

/// The outcomes of a manual request that count (Outcomes{Status}): none for one
/// refused as invalid or on purpose (a release too early), which is the operator's to
/// fix, not a failed revocation.
fn counted_manual(outcome: &Outcome) -> OutcomeTally {
    let rejected = outcome
        .error
        .as_ref()
        .is_some_and(|e| matches!(e.kind, FailureKind::InvalidRequest | FailureKind::Refused));
    if rejected {
        OutcomeTally::default()
    } else {
        std::iter::once(outcome).collect()
    }
}

/// The answer to a direct invoke.
#[derive(Debug, Clone)]
pub enum DirectAnswer {
    Outcome(Box<Outcome>),
    Status(Box<crate::revoke::StatusReport>),
    /// `{"history": [entry, …]}`, newest first, and `"truncated": true` when older
    /// entries were left out to fit the answer.
    History(Vec<cutoff_aws::dynamodb::AuditEntry>, bool),
    /// A read (history) refused: the failed outcome saying why, for the caller only.
    Refused(Box<Outcome>),
    /// `{"pending": [approval, …]}`: the approvals still open, soonest to expire first.
    Approvals(Vec<cutoff_domain::approval::Approval>),
}

impl DirectAnswer {
    /// An outcome says which request recorded it (the messages name it): this
    /// invocation's, unless it already names one.
    fn recorded_as(mut self, request_id: &str) -> Self {
        if let DirectAnswer::Outcome(outcome) | DirectAnswer::Refused(outcome) = &mut self {
            outcome
                .request_id
                .get_or_insert_with(|| request_id.to_owned());
        }
        self
    }

    pub fn to_json(&self) -> Value {
        match self {
            DirectAnswer::Outcome(o) | DirectAnswer::Refused(o) => to_value(o),
            DirectAnswer::Status(s) => to_value(s),
            DirectAnswer::History(entries, truncated) => history_json(entries, *truncated),
            DirectAnswer::Approvals(open) => json!({ "pending": open }),
        }
    }
}

/// Deployment settings that shape an invocation.
#[derive(Debug, Clone, Copy)]
pub struct InvocationSettings {
    /// Write nothing, whatever the requests say.
    pub dry_run: bool,
    /// The queue's maxReceiveCount: the attempt after which a message goes to the
    /// dead-letter queue.
    pub final_receive: u32,
    /// How long an approval a medium-severity finding asks for stays open.
    pub approval_hours: ApprovalHours,
}

/// The revoker Lambda: the workflow, the bus every outcome goes to, and the
/// deployment's settings for an invocation.
pub struct RevokerFunction<A, K, L, B, F = NoFollowUps, P = NoApprovals> {
    pub revoker: Revoker<A, K, L>,
    pub bus: B,
    /// Where the follow-up runs of a revocation are scheduled.
    pub follow_ups: F,
    /// Where the approvals medium-severity findings ask for are kept (the ledger).
    pub approvals: P,
    pub retry: RetryPolicy,
    pub settings: InvocationSettings,
}

/// The deployed revoker, with the SDK's clients.
pub type DeployedRevoker = RevokerFunction<
    SdkAccountAccess,
    SystemClock,
    ConfiguredLedger,
    SdkOutcomeBus,
    Option<SdkFollowUps>,
    Option<SdkApprovals>,
>;

impl DeployedRevoker {
    /// Settings from the environment, clients from `sdk`; the home account and
    /// partition from `CUTOFF_HOME_ACCOUNT` or, unset, STS `GetCallerIdentity`.
    pub async fn from_env(sdk: &SdkConfig) -> Result<Self, StartError> {
        let config = RevokerConfig::from_env()?;
        let (home, partition) = match config.home.clone() {
            Some(home) => home,
            None => discover_home(sdk).await?,
        };
        let access = SdkAccountAccess::new(
            sdk,
            home,
            partition,
            config.member_role_name.clone(),
            config.external_id.clone(),
        );
        let ledger = ConfiguredLedger::from_config(sdk, config.ledger_table.as_deref());
        if !ledger.enabled() {
            tracing::warn!(
                "{} is not set: no audit trail, no idempotency, no principal lock",
                revoker_env::LEDGER_TABLE
            );
        }
        let revoker = Revoker::new(
            access,
            SystemClock,
            RevokeConfig {
                protection: config.protection.clone(),
                accounts: Some(config.accounts.clone()),
                max_revocations_per_account_hour: Some(config.max_revocations_per_account_hour),
                max_revocations_per_action_hour: Some(config.max_revocations_per_action_hour),
                partition,
                honour_protected_tag: config.honour_protected_tag,
                identity_center_scp: config
                    .identity_center
                    .as_ref()
                    .and_then(|ic| ic.scp_id.clone()),
                // The SCP variant's role is in the management account (SCPs are
                // written there): its ARN says which account that is.
                management_account: config
                    .identity_center
                    .as_ref()
                    .filter(|ic| ic.scp_id.is_some())
                    .and_then(|ic| ic.role_arn.split(':').nth(4))
                    .and_then(|a| cutoff_domain::principal::Account::parse(a).ok()),
                self_check: Some(SelfCheckIdentity {
                    member_role_name: config.member_role_name.clone(),
                    home_role_arn: config.role_arn.clone(),
                }),
                ..RevokeConfig::default()
            },
        )
        .with_ledger(ledger);
        let revoker = match &config.identity_center {
            Some(ic) => {
                let directory = cutoff_aws::identity_center::SdkDirectory::assuming(
                    sdk,
                    &ic.role_arn,
                    config.external_id.as_deref(),
                    &ic.region,
                    "cutoff-identity-center",
                )
                .await;
                revoker.with_identity_center(std::sync::Arc::new(directory))
            }
            None => revoker,
        };
        let follow_ups = match (&config.follow_up, std::env::var("AWS_LAMBDA_FUNCTION_NAME")) {
            (Some(f), Ok(function)) => Some(SdkFollowUps::from_config(
                sdk,
                f.group.clone(),
                format!(
                    "arn:{partition}:lambda:{}:{}:function:{function}",
                    sdk.region().map(|r| r.as_ref()).unwrap_or_default(),
                    revoker.access.home()
                ),
                f.role_arn.clone(),
                f.dead_letter_arn.clone(),
            )),
            _ => {
                tracing::warn!(
                    "{} is not set: revocations are not followed through CloudTrail",
                    revoker_env::FOLLOW_UP_GROUP
                );
                None
            }
        };
        Ok(RevokerFunction {
            revoker,
            bus: SdkOutcomeBus::from_config(sdk, config.outcome_bus),
            follow_ups,
            // The approvals are in the ledger: none without it.
            approvals: SdkApprovals::configured(sdk, config.ledger_table.as_deref()),
            retry: RetryPolicy::default(),
            settings: InvocationSettings {
                dry_run: config.dry_run,
                final_receive: config.final_receive,
                approval_hours: config.approval_hours,
            },
        })
    }
}

/// Every invocation ends in an answer: a failed request is a failed outcome (and,
/// on the queue path, a batch item failure), never a failed invocation.
impl<A, K, L, B, F, P> Handler for RevokerFunction<A, K, L, B, F, P>
where
    A: AccountAccess + HistoryAccess,
    A::Client: cutoff_aws::PolicySimulator,
    K: Clock,
    L: cutoff_aws::dynamodb::Ledger,
    B: OutcomeBus,
    F: FollowUps,
    P: Approvals,
{
    const FUNCTION: Function = Function::Revoker;

    async fn handle(&self, event: LambdaEvent<Payload>) -> Result<Value, Failure> {
        let request_id = event.context.request_id;
        Ok(self
            .revoker
            .handle_invocation_approving(
                &self.bus,
                &self.follow_ups,
                &self.approvals,
                &self.retry,
                event.payload,
                &request_id,
                self.settings,
            )
            .await)
    }
}

/// The time-to-contain record of each message of a batch whose deny this run verified:
/// from its own finding's first sight and its own event's time.
pub fn containments(result: &BatchResult) -> Vec<Record> {
    result
        .outcomes
        .iter()
        .filter_map(|message| {
            let request = message.request.as_ref()?;
            containment(
                &message.outcome,
                message.verified_at,
                request.first_activity,
                request.event_time,
            )
        })
        .collect()
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    // Outcomes and reports are plain data with string keys.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revoke::RevokeConfig;
    use chrono::TimeZone;
    use cutoff_aws::iam::fake::FakeIam;
    use cutoff_aws::sts::fake::FakeAccess;
    use cutoff_domain::clock::FixedClock;
    use cutoff_domain::outcome::Trigger;
    use cutoff_domain::principal::{Account, PrincipalName, Target};
    use serde_json::json;

    const MEMBER: &str = "111122223333";

    fn revoker() -> (Revoker<FakeAccess, FixedClock>, FakeIam) {
        let access = FakeAccess::new("999988887777");
        let member = access.account(MEMBER);
        for role in ["payments-api", "ledger", "reports"] {
            member.add_role(role, "/", &[]);
        }
        let clock = FixedClock::at(
            chrono::Utc
                .with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
                .unwrap(),
        );
        (Revoker::new(access, clock, RevokeConfig::default()), member)
    }

    fn request(role: &str, finding: &str) -> RevocationRequest {
        RevocationRequest {
            action: ManualAction::Revoke,
            target: Target::role(
                Account::parse(MEMBER).unwrap(),
                PrincipalName::parse(role).unwrap(),
            ),
            scope: cutoff_domain::event::Scope::Role,
            trigger: Trigger {
                source: Source::GuardDuty,
                finding_id: Some(finding.into()),
                ..Trigger::default()
            },
            first_activity: None,
            expected_unique_id: None,
            activity_region: None,
            event_time: None,
            dry_run: false,
            force: false,
            needs_approval: false,
        }
    }

    fn sqs(bodies: &[String]) -> Value {
        json!({"Records": bodies.iter().enumerate().map(|(i, body)| json!({
            "messageId": format!("m{i}"), "receiptHandle": "h", "body": body,
            "attributes": {"MessageGroupId": "g"}, "messageAttributes": {},
            "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:999988887777:cutoff-requests.fifo", "awsRegion": "us-east-1"
        })).collect::<Vec<_>>()})
    }

    /// The outcome the batch gave message `id`.
    fn outcome_of(result: &BatchResult, id: &str) -> Outcome {
        result
            .outcomes
            .iter()
            .find(|o| o.message_id == id)
            .map(|o| o.outcome.clone())
            .unwrap_or_else(|| panic!("no outcome for {id}"))
    }

    fn batch(value: Value) -> SqsEvent {
        match Invocation::classify(value) {
            Invocation::Queue(e) => e,
            other => panic!("not recognised as SQS: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_about_several_principals_handles_them_side_by_side_and_answers_in_order() {
        // IAM takes a second to read each principal: one after another, the batch's
        // last principal would wait for every other's calls.
        let (r, member) = revoker();
        member.add_role("audit", "/", &[]);
        member.add_role("billing", "/", &[]);
        member.state().read_delay = std::time::Duration::from_secs(1);
        let roles = ["payments-api", "ledger", "reports", "audit", "billing"];
        let bodies: Vec<String> = roles
            .iter()
            .enumerate()
            .map(|(i, role)| serde_json::to_string(&request(role, &format!("f{i}"))).unwrap())
            .collect();
        let started = tokio::time::Instant::now();
        let result = r.handle_batch(&batch(sqs(&bodies)), false).await;
        let took = started.elapsed();
        // Side by side (two waves here), not five seconds in a row.
        let in_a_row = std::time::Duration::from_secs(roles.len() as u64);
        assert!(
            took >= std::time::Duration::from_secs(1) && took <= in_a_row / 2,
            "{took:?} for {} principals",
            roles.len()
        );
        assert!(result.response.batch_item_failures.is_empty());
        // The outcomes answer the messages in the batch's order.
        let ids: Vec<&str> = result
            .outcomes
            .iter()
            .map(|o| o.message_id.as_str())
            .collect();
        assert_eq!(ids, ["m0", "m1", "m2", "m3", "m4"]);
        for (i, role) in roles.iter().enumerate() {
            let outcome = outcome_of(&result, &format!("m{i}"));
            assert_eq!(outcome.status, Status::Applied, "{role}: {outcome:#?}");
            assert_eq!(outcome.target.unwrap().name.as_str(), *role);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_applied_message_measures_its_own_time_to_contain_from_the_verified_deny() {
        let (r, _) = revoker();
        let at = |t: &str| Some(chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc());
        let timed = |finding: &str, first: &str, event: &str| RevocationRequest {
            first_activity: at(first),
            event_time: at(event),
            ..request("payments-api", finding)
        };
        // Two findings on one role (one run, folded) and a manual-like request with no
        // times on another.
        let bodies: Vec<String> = [
            timed("f1", "2026-11-23T11:50:00Z", "2026-11-23T11:58:00Z"),
            timed("f2", "2026-11-23T11:55:00Z", "2026-11-23T11:59:00Z"),
            request("ledger", "f3"),
        ]
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
        assert!(bodies[0].contains("\"event_time\":\"2026-11-23T11:58:00Z\""));
        let result = r.handle_batch(&batch(sqs(&bodies)), false).await;
        assert_eq!(result.runs, 2);
        assert!(
            result
                .outcomes
                .iter()
                .all(|m| m.outcome.status == Status::Applied)
        );
        // The clock stands at 12:00:00 while the deny is verified.
        let measured: Vec<(Option<u64>, Option<u64>)> = containments(&result)
            .iter()
            .map(|c| {
                (
                    c.get(&cutoff_domain::metrics::TIME_TO_CONTAIN_FROM_FIRST_SEEN),
                    c.get(&cutoff_domain::metrics::TIME_TO_CONTAIN_FROM_EVENT),
                )
            })
            .collect();
        assert_eq!(
            measured,
            vec![
                (Some(600_000), Some(120_000)),
                (Some(300_000), Some(60_000))
            ]
        );
        let calls = outcome_of(&result, "m0").api_calls + outcome_of(&result, "m2").api_calls;
        assert_eq!(result.api_calls, u64::from(calls), "each run once");

        // Delivered again: covered by the deny already there, nothing verified anew.
        let again = r.handle_batch(&batch(sqs(&bodies[..1])), false).await;
        assert_eq!(outcome_of(&again, "m0").status, Status::AlreadyRevoked);
        assert!(containments(&again).is_empty());
        // A dry run verifies nothing.
        let untouched = RevocationRequest {
            target: request("reports", "f4").target,
            ..timed("f4", "2026-11-23T11:59:00Z", "2026-11-23T11:59:30Z")
        };
        let body = serde_json::to_string(&untouched).unwrap();
        let dry = r.handle_batch(&batch(sqs(&[body])), true).await;
        assert_eq!(outcome_of(&dry, "m0").status, Status::DryRun);
        assert!(containments(&dry).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_storm_for_three_roles_costs_three_writes() {
        let (r, member) = revoker();
        let bodies: Vec<String> = (0..50)
            .map(|i| {
                serde_json::to_string(&request(
                    ["payments-api", "ledger", "reports"][i % 3],
                    &format!("f{i}"),
                ))
                .unwrap()
            })
            .collect();
        let result = r.handle_batch(&batch(sqs(&bodies)), false).await;
        assert_eq!(result.runs, 3);
        assert_eq!(member.calls_of("PutRolePolicy"), 3);
        assert!(result.response.batch_item_failures.is_empty());
        assert_eq!(result.outcomes.len(), 50, "every message has an outcome");
        assert!(
            result
                .outcomes
                .iter()
                .all(|o| o.outcome.status == Status::Applied)
        );
        let m4 = result
            .outcomes
            .iter()
            .find(|o| o.message_id == "m4")
            .unwrap();
        assert_eq!(
            m4.outcome.trigger.finding_id.as_deref(),
            Some("f4"),
            "each message keeps its trigger"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_retried_per_message_and_bad_bodies_are_refused_not_dropped() {
        let (r, member) = revoker();
        member.fail("PutRolePolicy", &[cutoff_aws::ErrorKind::AccessDenied]);
        let bodies = vec![
            serde_json::to_string(&request("payments-api", "f1")).unwrap(),
            serde_json::to_string(&request("payments-api", "f2")).unwrap(),
            "{not json".to_owned(),
            serde_json::to_string(&request("ledger", "f3")).unwrap(),
        ];
        let result = r.handle_batch(&batch(sqs(&bodies)), false).await;
        let failed: Vec<&str> = result
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        // The unreadable body is refused with an outcome, and not retried: no attempt
        // can make it readable.
        assert_eq!(failed, ["m0", "m1"]);
        assert_eq!(result.outcomes.len(), 4);
        let refused = result
            .outcomes
            .iter()
            .find(|o| o.message_id == "m2")
            .unwrap();
        assert_eq!(refused.outcome.status, Status::Failed);
        assert_eq!(
            refused.outcome.error.as_ref().unwrap().kind,
            FailureKind::InvalidRequest
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_redelivered_finding_does_not_answer_for_a_new_one_folded_in_behind_it() {
        // A (finding f1) was applied at 12:00; its message comes back (its outcome could
        // not be published) in one batch with B, a new finding about the same role whose
        // session was first used at 12:05, after A's cutoff. B must get its own write,
        // not A's earlier answer.
        let (r, member) = revoker();
        let ledger = cutoff_aws::dynamodb::fake::FakeLedger::default();
        let r = r.with_ledger(ledger.clone());
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let mut a = request("payments-api", "f1");
        a.trigger.updated_at = Some(at("2026-11-23T11:59:00Z"));
        a.first_activity = Some(at("2026-11-23T11:50:00Z"));
        let a_body = serde_json::to_string(&a).unwrap();
        let first = r
            .handle_batch(&batch(sqs(std::slice::from_ref(&a_body))), false)
            .await;
        assert_eq!(first.outcomes[0].outcome.status, Status::Applied);
        let first_cutoff = first.outcomes[0].outcome.cutoff.unwrap();
        r.clock.advance(chrono::Duration::minutes(10));
        let mut b = request("payments-api", "f2");
        b.trigger.updated_at = Some(at("2026-11-23T12:09:00Z"));
        b.first_activity = Some(at("2026-11-23T12:05:00Z"));
        let b_body = serde_json::to_string(&b).unwrap();
        let second = r
            .handle_batch(&batch(sqs(&[a_body, b_body.clone()])), false)
            .await;
        let of = outcome_of;
        let redelivered = of(&second, "m0");
        assert_eq!(redelivered.status, Status::Applied);
        assert_eq!(redelivered.cutoff, Some(first_cutoff), "A's earlier answer");
        let new = of(&second, "m1");
        assert_eq!(new.status, Status::Applied, "{new:#?}");
        // Only the write of this run measures a time to contain: the redelivered
        // message's containment was measured when it was applied.
        let verified = |id: &str| {
            second
                .outcomes
                .iter()
                .find(|o| o.message_id == id)
                .and_then(|o| o.verified_at)
        };
        assert_eq!(verified("m0"), None);
        assert!(verified("m1").is_some());
        assert!(new.cutoff.unwrap().covers(at("2026-11-23T12:05:00Z")));
        assert_eq!(member.calls_of("PutRolePolicy"), 2);
        // B's message, delivered again, now answers with B's outcome and no call.
        let calls = member.calls().len();
        let again = r.handle_batch(&batch(sqs(&[b_body])), false).await;
        assert_eq!(again.outcomes[0].outcome.cutoff, new.cutoff);
        assert_eq!(member.calls().len(), calls);
        // Two new findings folded into one write: each is marked applied, so the one
        // that rode along is recognised on its own redelivery too.
        r.clock.advance(chrono::Duration::minutes(10));
        let mut c = request("payments-api", "f3");
        c.trigger.updated_at = Some(at("2026-11-23T12:19:00Z"));
        let mut d = request("payments-api", "f4");
        d.trigger.updated_at = Some(at("2026-11-23T12:19:30Z"));
        let d_body = serde_json::to_string(&d).unwrap();
        let folded = r
            .handle_batch(
                &batch(sqs(&[serde_json::to_string(&c).unwrap(), d_body.clone()])),
                false,
            )
            .await;
        assert_eq!(folded.runs, 1);
        let d_outcome = of(&folded, "m1");
        assert_eq!(d_outcome.status, Status::Applied);
        let calls = member.calls().len();
        let d_again = r.handle_batch(&batch(sqs(&[d_body])), false).await;
        assert_eq!(d_again.outcomes[0].outcome.status, Status::Applied);
        assert_eq!(d_again.outcomes[0].outcome.cutoff, d_outcome.cutoff);
        assert_eq!(member.calls().len(), calls, "answered from the ledger");
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_about_one_principal_costs_one_lock_and_one_closing() {
        // Three findings about one role in one batch: one lock (which also reads the
        // marks and key records), the breaker's count before the one write, and one
        // closing that records all three. Their redelivery: one lock, each earlier
        // outcome read, one closing, and no IAM call.
        let (r, member) = revoker();
        let ledger = cutoff_aws::dynamodb::fake::FakeLedger::default();
        let mut r = r.with_ledger(ledger.clone());
        r.config.max_revocations_per_account_hour = Some(10);
        let bodies: Vec<String> = ["f1", "f2", "f3"]
            .iter()
            .map(|f| serde_json::to_string(&request("payments-api", f)).unwrap())
            .collect();
        let first = r.handle_batch(&batch(sqs(&bodies)), false).await;
        assert_eq!(first.runs, 1);
        assert!(
            first
                .outcomes
                .iter()
                .all(|o| o.outcome.status == Status::Applied),
            "{:#?}",
            first.outcomes
        );
        // (A principal new to the ledger also asks, once per process in the SDK
        // ledger, whether the version before may have left key records.)
        assert_eq!(
            ledger.take_calls(),
            ["acquire", "legacy_window", "take_slot", "close"]
        );
        assert_eq!(ledger.state().marks(), 3, "each finding is marked");
        assert_eq!(ledger.state().entries.len(), 3, "each is in the trail");
        let writes = member.calls_of("PutRolePolicy");
        r.clock.advance(chrono::Duration::minutes(1));
        let again = r.handle_batch(&batch(sqs(&bodies)), false).await;
        assert_eq!(again.runs, 0);
        for (before, after) in first.outcomes.iter().zip(&again.outcomes) {
            assert_eq!(after.outcome.status, Status::Applied);
            assert_eq!(after.outcome.cutoff, before.outcome.cutoff);
            assert_eq!(after.outcome.trigger, before.outcome.trigger);
        }
        assert_eq!(member.calls_of("PutRolePolicy"), writes);
        assert_eq!(
            ledger.take_calls(),
            ["acquire", "entry", "entry", "entry", "close"]
        );
        // A manual revocation: the lock and the closing, no breaker.
        let mut manual = request("ledger", "-");
        manual.trigger = Trigger {
            source: Source::Manual,
            requested_by: Some("alice".into()),
            ..Trigger::default()
        };
        let out = r.handle(&manual, "manual-1").await;
        assert_eq!(out.status, Status::Applied, "{out:#?}");
        assert_eq!(ledger.take_calls(), ["acquire", "legacy_window", "close"]);
        r.clock.advance(chrono::Duration::minutes(1));
        let again = r.handle(&manual, "manual-2").await;
        assert_eq!(again.status, Status::Applied, "{again:#?}");
        assert_eq!(ledger.take_calls(), ["acquire", "close"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_guardduty_request_is_not_folded_into_a_custom_action_over_its_cap() {
        let (r, member) = revoker();
        let r = Revoker {
            config: RevokeConfig {
                max_revocations_per_account_hour: Some(100),
                max_revocations_per_action_hour: Some(1),
                ..RevokeConfig::default()
            },
            ..r
        }
        .with_ledger(cutoff_aws::dynamodb::fake::FakeLedger::default());
        const ACTION: &str = "arn:aws:securityhub:us-east-1:999988887777:action/custom/revoke";
        let by_action = |role: &str, finding: &str| {
            let mut req = request(role, finding);
            req.trigger.source = Source::SecurityHub;
            req.trigger.custom_action = Some(ACTION.into());
            serde_json::to_string(&req).unwrap()
        };
        // The action's one revocation this hour.
        r.handle_batch(&batch(sqs(&[by_action("ledger", "sh-0")])), false)
            .await;
        let result = r
            .handle_batch(
                &batch(sqs(&[
                    by_action("payments-api", "sh-1"),
                    serde_json::to_string(&request("payments-api", "gd-1")).unwrap(),
                ])),
                false,
            )
            .await;
        let of = |id: &str| outcome_of(&result, id);
        assert_eq!(
            of("m0").error.map(|e| e.kind),
            Some(FailureKind::CircuitOpen)
        );
        assert_eq!(of("m1").status, Status::Applied, "{:#?}", of("m1"));
        assert!(member.writes().contains(&"PutRolePolicy"));
    }

    fn queued_outcome(
        r: &Revoker<FakeAccess, FixedClock>,
        body: String,
    ) -> impl std::future::Future<Output = BatchResult> + '_ {
        let event = batch(sqs(&[body]));
        async move { r.handle_batch(&event, false).await }
    }

    #[tokio::test(start_paused = true)]
    async fn a_forced_release_sent_to_the_request_queue_is_refused() {
        let (r, member) = revoker();
        // A revocation in force that a forced release would lift.
        r.handle(&request("payments-api", "f0"), "m-setup").await;
        let writes = member.writes().len();
        for (action, force) in [
            ("release", true),
            ("release", false),
            ("status", false),
            ("revoke", true),
        ] {
            let mut body = serde_json::to_value(request("payments-api", "f1")).unwrap();
            body["action"] = json!(action);
            body["force"] = json!(force);
            let result = queued_outcome(&r, body.to_string()).await;
            let outcome = &result.outcomes[0].outcome;
            assert_eq!(outcome.status, Status::Failed, "{action}/{force}");
            assert_eq!(
                outcome.error.as_ref().unwrap().kind,
                FailureKind::InvalidRequest
            );
            assert!(
                outcome.detail.contains("operator path"),
                "{}",
                outcome.detail
            );
            assert!(
                result.response.batch_item_failures.is_empty(),
                "refused, notified, not retried"
            );
            assert_eq!(
                outcome.target.as_ref().unwrap().name.as_str(),
                "payments-api"
            );
        }
        assert_eq!(
            member.writes().len(),
            writes,
            "nothing written, nothing lifted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_queue_message_that_says_more_than_cutoff_writes_is_refused() {
        let (r, member) = revoker();
        let good = serde_json::to_value(request("payments-api", "f1")).unwrap();
        let mut unknown = good.clone();
        unknown["requested_by_admin"] = json!(true);
        let mut nested = good.clone();
        nested["target"]["role_arn"] = json!("arn:aws:iam::111122223333:role/x");
        let mut claimed = good.clone();
        claimed["trigger"]["requested_by"] = json!("alice");
        claimed["trigger"]["requested_by_verified"] = json!(true);
        let mut key_on_role = good.clone();
        key_on_role["target"]["access_key_id"] = json!("AKIAZXCVBNMASDFGHJKL");
        let mut root = good.clone();
        root["target"]["kind"] = json!("root");
        let mut long_id = good.clone();
        long_id["trigger"]["finding_id"] = json!("x".repeat(600));
        let duplicate = r#"{"action":"revoke","action":"revoke","target":{"kind":"role","account":"111122223333","name":"payments-api","access_key_id":null,"session":null},"trigger":{"source":"guardduty","finding_id":"f1","finding_type":null,"severity":null,"updated_at":null,"requested_by":null,"reason":null}}"#;
        for body in [
            unknown.to_string(),
            nested.to_string(),
            claimed.to_string(),
            key_on_role.to_string(),
            root.to_string(),
            long_id.to_string(),
            duplicate.to_owned(),
        ] {
            let result = queued_outcome(&r, body.clone()).await;
            let outcome = &result.outcomes[0].outcome;
            assert_eq!(outcome.status, Status::Failed, "{body}");
            assert_eq!(
                outcome.error.as_ref().unwrap().kind,
                FailureKind::InvalidRequest,
                "{body}"
            );
            assert!(result.response.batch_item_failures.is_empty(), "{body}");
        }
        assert!(member.writes().is_empty());
        // The well-formed message still goes through, and so does a role's finding
        // naming the session's temporary key (what GuardDuty reports).
        let result = queued_outcome(&r, good.to_string()).await;
        assert_eq!(result.outcomes[0].outcome.status, Status::Applied);
        let mut session_key = good.clone();
        session_key["target"]["access_key_id"] = json!("ASIAZXCVBNMASDFGHJKL");
        session_key["trigger"]["finding_id"] = json!("f2");
        let result = queued_outcome(&r, session_key.to_string()).await;
        assert_eq!(
            result.outcomes[0].outcome.status,
            Status::AlreadyRevoked,
            "{}",
            result.outcomes[0].outcome.detail
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_plain_invoke_cannot_release_or_force_and_its_requester_is_only_claimed() {
        let (r, member) = revoker();
        r.handle(&request("payments-api", "f0"), "m-setup").await;
        let writes = member.writes().len();
        for payload in [
            json!({"action": "release", "account": MEMBER, "role": "payments-api", "force": true, "requested_by": "the-ciso"}),
            json!({"action": "release", "account": MEMBER, "role": "payments-api"}),
            json!({"action": "revoke", "account": MEMBER, "role": "payments-api", "force": true}),
        ] {
            let answer = r
                .handle_direct(payload.clone(), Caller::Claimed, "req", false)
                .await
                .to_json();
            assert_eq!(answer["status"], "failed", "{payload}");
            assert_eq!(answer["error"]["kind"], "invalid_request");
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("operator path"),
                "{answer}"
            );
        }
        assert_eq!(member.writes().len(), writes);
        let answer = r
            .handle_direct(
                json!({"action": "revoke", "account": MEMBER, "role": "ledger", "requested_by": "the-ciso"}),
                Caller::Claimed,
                "req",
                false,
            )
            .await
            .to_json();
        assert_eq!(answer["status"], "applied");
        assert_eq!(answer["trigger"]["requested_by"], "the-ciso");
        assert_eq!(answer["trigger"]["requested_by_verified"], false);
    }

    fn url_event(caller: Option<&str>, body: &Value) -> Value {
        let mut authorizer = json!(null);
        if let Some(arn) = caller {
            authorizer = json!({"iam": {"accessKey": "ASIAZXCVBNMASDFGHJKL", "accountId": "999988887777",
                "callerId": "AROAZXCVBNMASDFGHJKLQ:alice", "userArn": arn, "userId": "AROAZXCVBNMASDFGHJKLQ:alice"}});
        }
        json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
            "headers": {"content-type": "application/json", "host": "abc.lambda-url.us-east-1.on.aws"},
            "requestContext": {"accountId": "999988887777", "apiId": "abc", "authorizer": authorizer,
                "domainName": "abc.lambda-url.us-east-1.on.aws", "domainPrefix": "abc",
                "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "cutoff"},
                "requestId": "r-1", "routeKey": "$default", "stage": "$default", "time": "23/Nov/2026:12:00:00 +0000", "timeEpoch": 1795435200000i64},
            "body": body.to_string(), "isBase64Encoded": false
        })
    }

    fn self_checking_revoker() -> (Revoker<FakeAccess, FixedClock>, FakeIam) {
        let (mut r, member) = revoker();
        r.config.self_check = Some(crate::revoke::SelfCheckIdentity {
            member_role_name: PrincipalName::parse("cutoff-member").unwrap(),
            home_role_arn: Some(
                "arn:aws:iam::999988887777:role/cutoff-us-east-1-revoker".to_owned(),
            ),
        });
        r.config.accounts = Some(cutoff_domain::principal::AccountScope {
            organization: None,
            accounts: Some(vec![
                Account::parse(MEMBER).unwrap(),
                Account::parse("444455556666").unwrap(),
            ]),
        });
        (r, member)
    }

    /// The answer, and how many outcomes were published.
    async fn self_check(r: &Revoker<FakeAccess, FixedClock>, event: Value) -> (Value, usize) {
        let bus = cutoff_aws::eventbridge::fake::FakeOutcomeBus::default();
        let answer = r
            .handle_invocation(&bus, &RetryPolicy::immediate(2), event, "req", settings())
            .await;
        let published = bus.state().outcomes.len();
        (answer, published)
    }

    #[tokio::test(start_paused = true)]
    async fn the_self_check_asks_the_simulator_in_every_account_and_reports_what_fails() {
        let (r, member) = self_checking_revoker();
        let operator = "arn:aws:sts::999988887777:assumed-role/CutoffBreakGlassOperator/alice";
        // An SCP in the member account denies the deny cutoff would write.
        member.state().simulated.insert(
            (
                format!("arn:aws:iam::{MEMBER}:role/cutoff-member"),
                "iam:PutRolePolicy".to_owned(),
                format!("arn:aws:iam::{MEMBER}:role/cutoff-doctor-sample"),
            ),
            cutoff_domain::self_check::Decision::ExplicitDeny,
        );
        // Cutoff's own roles must be refused: the fake allows everything else.
        for (account, role) in [
            (MEMBER, "cutoff-member"),
            ("444455556666", "cutoff-member"),
            ("999988887777", "cutoff-us-east-1-revoker"),
        ] {
            let iam = r.access.account(account);
            iam.state().simulated.insert(
                (
                    format!("arn:aws:iam::{account}:role/{role}"),
                    "iam:PutRolePolicy".to_owned(),
                    format!("arn:aws:iam::{account}:role/{role}"),
                ),
                cutoff_domain::self_check::Decision::ExplicitDeny,
            );
            iam.state().simulated.insert(
                (
                    format!("arn:aws:iam::{account}:role/{role}"),
                    "iam:DeleteAccessKey".to_owned(),
                    format!("arn:aws:iam::{account}:user/cutoff-doctor-sample"),
                ),
                cutoff_domain::self_check::Decision::ImplicitDeny,
            );
            iam.state().simulated_attachments.insert(
                (
                    format!("arn:aws:iam::{account}:role/{role}"),
                    "arn:aws:iam::aws:policy/AdministratorAccess".to_owned(),
                ),
                cutoff_domain::self_check::Decision::ExplicitDeny,
            );
        }
        // The third member account's role does not trust the revoker.
        r.access
            .assume_failures
            .lock()
            .unwrap()
            .extend([cutoff_aws::ErrorKind::AccessDenied]);
        // (The fake fails the next AssumeRole: the first member account asked.)
        let body = json!({"action": "self_check", "accounts": ["999988887777", "444455556666", MEMBER, "123456789012"]});
        let (answer, published) = self_check(&r, url_event(Some(operator), &body)).await;
        assert_eq!(
            published, 0,
            "a self-check writes nothing and publishes nothing"
        );
        let report: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        let report = &report["self_check"];
        assert_eq!(report["passed"], false, "{report}");
        assert_eq!(report["member_role"], "cutoff-member");
        let accounts = report["accounts"].as_array().unwrap();
        let by_account = |id: &str| accounts.iter().find(|a| a["account"] == id).unwrap();
        // Home: the revoker's own role, every probe as expected.
        let home = by_account("999988887777");
        assert_eq!(home["passed"], true, "{home}");
        assert_eq!(home["probes"].as_array().unwrap().len(), 10);
        // The member account: assumed, one probe denied by the SCP.
        let scp = by_account(MEMBER);
        assert_eq!(
            (scp["passed"].clone(), scp["assumed"].clone()),
            (json!(false), json!(true))
        );
        let failing: Vec<&Value> = scp["probes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["passed"] == false)
            .collect();
        assert_eq!(failing.len(), 1, "{scp}");
        assert_eq!(failing[0]["action"], "iam:PutRolePolicy");
        assert_eq!(failing[0]["decision"], "explicit_deny");
        // Not assumed: no probe, and why.
        let untrusted = by_account("444455556666");
        assert_eq!(untrusted["assumed"], false);
        assert!(untrusted["probes"].as_array().unwrap().is_empty());
        assert!(
            untrusted["error"]
                .as_str()
                .unwrap()
                .contains("cannot assume"),
            "{untrusted}"
        );
        // Outside the accounts cutoff may act in: never reached.
        let outside = by_account("123456789012");
        assert_eq!(outside["passed"], false);
        assert!(
            !r.access
                .assumed
                .lock()
                .unwrap()
                .contains(&"123456789012".to_owned())
        );
        // Each question carried the context a real call would: the acting role.
        let contexts = member.state().simulation_contexts.clone();
        assert_eq!(contexts.len(), 10);
        assert!(contexts.iter().any(|c| {
            c.iter().any(|v| {
                v.key == "iam:PolicyARN" && v.value.ends_with("policy/AdministratorAccess")
            })
        }));
        assert!(
            contexts
                .iter()
                .all(|c| c.iter().any(|v| v.key == "aws:PrincipalArn"
                    && v.value == format!("arn:aws:iam::{MEMBER}:role/cutoff-member")))
        );
        // Nothing was written anywhere.
        assert!(member.writes().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_self_check_answers_within_the_revokers_timeout() {
        // The member account answers each question in 15 s: four questions use up the
        // time budget; the rest of its probes and the accounts after it are reported
        // unchecked rather than the whole answer lost to the function's timeout.
        let (mut r, member) = self_checking_revoker();
        r.config.retry = RetryPolicy::immediate(1);
        member.state().simulation_delay = std::time::Duration::from_secs(15);
        let operator = "arn:aws:sts::999988887777:assumed-role/CutoffBreakGlassOperator/alice";
        let body = json!({"action": "self_check", "accounts": [MEMBER, "444455556666"]});
        let started = tokio::time::Instant::now();
        let (answer, _) = self_check(&r, url_event(Some(operator), &body)).await;
        assert!(started.elapsed() < std::time::Duration::from_secs(90));
        let report: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        let accounts = report["self_check"]["accounts"].as_array().unwrap();
        assert_eq!(accounts[0]["account"], MEMBER);
        assert_eq!(accounts[0]["passed"], false);
        let probes = accounts[0]["probes"].as_array().unwrap();
        let asked = probes
            .iter()
            .filter(|p| p["decision"] != Value::Null)
            .count();
        assert_eq!(asked, 4, "{report}");
        assert!(
            probes[4]["error"]
                .as_str()
                .unwrap()
                .contains("time ran out")
        );
        assert_eq!(accounts[1]["unreachable"], "out_of_time", "{report}");
        assert!(
            !r.access
                .assumed
                .lock()
                .unwrap()
                .contains(&"444455556666".to_owned()),
            "not reached"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_self_check_comes_only_through_the_operator_path_and_is_read_strictly() {
        let (r, _) = self_checking_revoker();
        let operator = "arn:aws:sts::999988887777:assumed-role/CutoffBreakGlassOperator/alice";
        // A plain invoke is refused like a plain release: the refusal is published,
        // so the security team hears of the attempt.
        let (plain, published) =
            self_check(&r, json!({"action": "self_check", "accounts": [MEMBER]})).await;
        assert_eq!(published, 1);
        assert_eq!(plain["status"], "failed", "{plain}");
        assert!(plain["detail"].as_str().unwrap().contains("operator path"));
        let body = json!({"action": "self_check", "accounts": [MEMBER], "force": true});
        let (answer, _) = self_check(&r, url_event(Some(operator), &body)).await;
        let outcome: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert_eq!(outcome["status"], "failed", "{outcome}");
        assert_eq!(outcome["trigger"]["requested_by"], operator);
        assert!(r.access.assumed.lock().unwrap().is_empty());
        // A revoker deployed without its identity says so rather than guessing.
        let (plain_revoker, _) = revoker();
        let body = json!({"action": "self_check", "accounts": [MEMBER]});
        let (answer, _) = self_check(&plain_revoker, url_event(Some(operator), &body)).await;
        let outcome: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert!(
            outcome["detail"]
                .as_str()
                .unwrap()
                .contains("not configured"),
            "{outcome}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_operator_path_records_the_caller_aws_verified_not_the_one_claimed() {
        let (r, member) = revoker();
        let bus = cutoff_aws::eventbridge::fake::FakeOutcomeBus::default();
        let caller = "arn:aws:sts::999988887777:assumed-role/CutoffBreakGlassOperator/alice";
        r.handle(&request("payments-api", "f0"), "m-setup").await;
        r.clock.advance(chrono::Duration::hours(13));
        let body = json!({"action": "release", "account": MEMBER, "role": "payments-api", "requested_by": "someone-else"});
        let answer = r
            .handle_invocation(
                &bus,
                &RetryPolicy::immediate(2),
                url_event(Some(caller), &body),
                "req",
                settings(),
            )
            .await;
        assert_eq!(answer["statusCode"], 200);
        let outcome: Outcome = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert_eq!(outcome.status, Status::Released, "{}", outcome.detail);
        assert_eq!(outcome.trigger.requested_by.as_deref(), Some(caller));
        assert!(outcome.trigger.requested_by_verified);
        assert!(
            member
                .inline(
                    &cutoff_aws::IamPrincipal::role(PrincipalName::parse("payments-api").unwrap()),
                    cutoff_domain::policy::ROLE_WIDE_POLICY_NAME
                )
                .is_none()
        );
        assert_eq!(bus.state().outcomes.len(), 1, "published");
        // Without IAM auth there is no verified caller: refused.
        let answer = r
            .handle_invocation(
                &bus,
                &RetryPolicy::immediate(2),
                url_event(None, &body),
                "req",
                settings(),
            )
            .await;
        let outcome: Outcome = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert_eq!(outcome.error.unwrap().kind, FailureKind::InvalidRequest);
    }

    #[tokio::test(start_paused = true)]
    async fn the_dry_run_switch_applies_to_every_message() {
        let (r, member) = revoker();
        let bodies = vec![serde_json::to_string(&request("payments-api", "f1")).unwrap()];
        let result = r.handle_batch(&batch(sqs(&bodies)), true).await;
        assert_eq!(result.outcomes[0].outcome.status, Status::DryRun);
        assert!(member.writes().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn direct_invokes_answer_with_the_outcome_or_an_error_outcome() {
        let (r, _) = revoker();
        let payload = json!({"action": "revoke", "account": MEMBER, "role": "payments-api", "requested_by": "alice"});
        assert!(matches!(
            Invocation::classify(payload.clone()),
            Invocation::Direct(_)
        ));
        let answer = r
            .handle_direct(payload, Caller::Claimed, "req", false)
            .await
            .to_json();
        assert_eq!(answer["status"], "applied");
        assert_eq!(answer["trigger"]["requested_by"], "alice");
        let answer = r
            .handle_direct(
                json!({"action": "revoke", "account": "nope", "role": "x"}),
                Caller::Claimed,
                "req",
                false,
            )
            .await
            .to_json();
        assert_eq!(answer["status"], "failed");
        assert_eq!(answer["error"]["kind"], "invalid_request");
        let answer = r
            .handle_direct(
                json!({"action": "status", "account": MEMBER, "role": "payments-api"}),
                Caller::Claimed,
                "req",
                false,
            )
            .await
            .to_json();
        assert_eq!(answer["role_wide"]["policy"], "AWSRevokeOlderSessions");
    }

    #[tokio::test(start_paused = true)]
    async fn a_history_request_answers_with_the_principals_ledger_entries_newest_first() {
        let (r, _) = revoker();
        // Without a ledger there is nothing to read: said, not an empty list.
        let payload = json!({"action": "history", "account": MEMBER, "role": "payments-api"});
        let answer = r
            .handle_direct(payload.clone(), Caller::Claimed, "req", false)
            .await
            .to_json();
        assert_eq!(answer["status"], "failed", "{answer:#}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no ledger")
        );

        let ledger = cutoff_aws::dynamodb::fake::FakeLedger::default();
        let r = r.with_ledger(ledger.clone());
        for (role, finding) in [
            ("payments-api", "f1"),
            ("other", "f2"),
            ("payments-api", "f3"),
        ] {
            let body = serde_json::to_string(&request(role, finding)).unwrap();
            r.handle_batch(&batch(sqs(&[body])), false).await;
            r.clock.advance(chrono::Duration::minutes(1));
        }
        let verified = Caller::Verified("arn:aws:iam::123456789012:role/Operator".into());
        let answer = r
            .handle_direct(payload.clone(), verified.clone(), "req", false)
            .await
            .to_json();
        let entries = answer["history"].as_array().unwrap();
        let findings: Vec<&str> = entries
            .iter()
            .map(|e| e["outcome"]["trigger"]["finding_id"].as_str().unwrap())
            .collect();
        assert_eq!(findings, ["f3", "f1"], "{answer:#}");
        let mut one = payload.clone();
        one["limit"] = json!(1);
        let answer = r
            .handle_direct(one, verified.clone(), "req", false)
            .await
            .to_json();
        assert_eq!(answer["history"].as_array().unwrap().len(), 1);
        // A history read writes nothing and publishes nothing: it is no outcome.
        assert!(answer.get("status").is_none());

        ledger.fail("history", &[cutoff_aws::ErrorKind::AccessDenied]);
        let answer = r
            .handle_direct(payload.clone(), verified, "req", false)
            .await
            .to_json();
        assert_eq!(answer["status"], "failed");
        assert_eq!(answer["error"]["kind"], "access_denied");

        // Through the function URL: a refused read is answered, never published (it
        // would tell the owner their principal's revocation FAILED).
        let bus = cutoff_aws::eventbridge::fake::FakeOutcomeBus::default();
        ledger.fail("history", &[cutoff_aws::ErrorKind::Transient]);
        let caller = "arn:aws:sts::999988887777:assumed-role/CutoffBreakGlassOperator/alice";
        let answer = r
            .handle_invocation(
                &bus,
                &RetryPolicy::immediate(2),
                url_event(Some(caller), &payload),
                "req",
                settings(),
            )
            .await;
        let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["status"], "failed", "{body:#}");
        assert!(bus.state().outcomes.is_empty(), "nothing published");
    }

    #[test]
    fn a_history_too_large_for_one_answer_keeps_the_newest_entries_and_says_so() {
        let entry = |i: u32| cutoff_aws::dynamodb::AuditEntry {
            at: chrono::DateTime::from_timestamp(1_700_000_000 + i64::from(i), 0).unwrap(),
            request_id: format!("r{i}"),
            action: "revoke".into(),
            outcome: Outcome::invalid_request("x".repeat(1000)),
        };
        let entries: Vec<_> = (0..10).map(entry).collect();
        let one = serde_json::to_vec(&entries[0]).unwrap().len() + 1;
        let (kept, truncated) = fit_history(entries.clone(), one * 3);
        assert_eq!((kept.len(), truncated), (3, true));
        assert_eq!(kept[0].request_id, "r0", "the newest (first) are kept");
        let (kept, truncated) = fit_history(entries, one * 10);
        assert_eq!((kept.len(), truncated), (10, false));
        assert_eq!(history_json(&[], true)["truncated"], true);
        assert!(history_json(&[], false).get("truncated").is_none());
    }

    #[test]
    fn a_manual_request_refused_as_invalid_or_on_purpose_is_no_failed_revocation() {
        let mut refused = Outcome::invalid_request("no such field");
        assert!(counted_manual(&refused).is_empty());
        refused.error.as_mut().unwrap().kind = FailureKind::Refused;
        assert!(counted_manual(&refused).is_empty());
        // A real failure of an operator's request counts, and pages like any other.
        refused.error.as_mut().unwrap().kind = FailureKind::AccessDenied;
        let counted = counted_manual(&refused);
        assert!(!counted.is_empty());
        let records = counted.records(Function::Revoker);
        assert_eq!(records.len(), 1);
    }

    fn settings() -> InvocationSettings {
        InvocationSettings {
            dry_run: false,
            final_receive: 3,
            approval_hours: ApprovalHours::default(),
        }
    }

    fn with_receive_count(mut batch: Value, count: u32) -> Value {
        for record in batch["Records"].as_array_mut().unwrap() {
            record["attributes"]["ApproximateReceiveCount"] = json!(count.to_string());
        }
        batch
    }

    #[tokio::test(start_paused = true)]
    async fn every_outcome_of_a_batch_is_published_and_failures_only_on_first_and_last_attempt() {
        let (r, member) = revoker();
        let bus = cutoff_aws::eventbridge::fake::FakeOutcomeBus::default();
        let retry = RetryPolicy::immediate(2);
        let bodies = vec![
            serde_json::to_string(&request("payments-api", "f1")).unwrap(),
            serde_json::to_string(&request("ledger", "f2")).unwrap(),
        ];
        member.fail("PutRolePolicy", &[cutoff_aws::ErrorKind::AccessDenied]);
        let answer = r
            .handle_invocation(
                &bus,
                &retry,
                with_receive_count(sqs(&bodies), 1),
                "req",
                settings(),
            )
            .await;
        assert_eq!(answer["batchItemFailures"].as_array().unwrap().len(), 1);
        let statuses: Vec<Status> = bus.state().outcomes.iter().map(|o| o.status).collect();
        assert_eq!(statuses, [Status::Failed, Status::Applied]);
        assert!(bus.state().outcomes[0].detail.contains("will be retried"));

        bus.state().outcomes.clear();
        member.fail("PutRolePolicy", &[cutoff_aws::ErrorKind::AccessDenied]);
        r.handle_invocation(
            &bus,
            &retry,
            with_receive_count(sqs(&bodies[..1]), 2),
            "req",
            settings(),
        )
        .await;
        assert!(
            bus.state().outcomes.is_empty(),
            "a middle retry is not re-notified"
        );
        member.fail("PutRolePolicy", &[cutoff_aws::ErrorKind::AccessDenied]);
        r.handle_invocation(
            &bus,
            &retry,
            with_receive_count(sqs(&bodies[..1]), 3),
            "req",
            settings(),
        )
        .await;
        assert!(bus.state().outcomes[0].detail.contains("dead-letter queue"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_published_outcome_names_the_request_that_recorded_it_and_the_findings_region() {
        let (r, _) = revoker();
        let bus = cutoff_aws::eventbridge::fake::FakeOutcomeBus::default();
        let retry = RetryPolicy::immediate(2);
        let seen_in = |finding: &str, region: &str| {
            serde_json::to_string(&RevocationRequest {
                activity_region: Some(region.to_owned()),
                ..request("payments-api", finding)
            })
            .unwrap()
        };
        // Two findings about one principal, folded into one write: each outcome keeps
        // its own message id (what the audit trail records) and its finding's region.
        let bodies = [seen_in("f1", "eu-west-1"), seen_in("f2", "ap-southeast-2")];
        r.handle_invocation(&bus, &retry, sqs(&bodies), "lambda-req", settings())
            .await;
        let named: Vec<(Option<String>, Option<String>)> = bus
            .state()
            .outcomes
            .iter()
            .map(|o| (o.request_id.clone(), o.activity_region.clone()))
            .collect();
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            named,
            [
                (some("m0"), some("eu-west-1")),
                (some("m1"), some("ap-southeast-2"))
            ]
        );
        // A direct invoke is recorded under the invocation's request id.
        bus.state().outcomes.clear();
        let payload = json!({"action": "revoke", "account": MEMBER, "role": "ledger"});
        let answer = r
            .handle_invocation(&bus, &retry, payload, "lambda-req", settings())
            .await;
        assert_eq!(answer["request_id"], "lambda-req", "{answer:#}");
        assert_eq!(
            bus.state().outcomes[0].request_id.as_deref(),
            Some("lambda-req")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_revocation_naming_a_key_schedules_three_follow_ups_once_and_a_fired_one_runs() {
        let (r, _) = revoker();
        let r = r.with_ledger(cutoff_aws::dynamodb::fake::FakeLedger::default());
        let bus = cutoff_aws::eventbridge::fake::FakeOutcomeBus::default();
        let follow_ups = cutoff_aws::scheduler::fake::FakeFollowUps::default();
        let retry = RetryPolicy::immediate(2);
        let mut with_key = request("payments-api", "f1");
        with_key.target.access_key_id =
            Some(cutoff_domain::principal::AccessKeyId::parse("ASIASTOLENKEY0000001").unwrap());
        let bodies = vec![
            serde_json::to_string(&with_key).unwrap(),
            serde_json::to_string(&request("ledger", "f2")).unwrap(),
        ];
        let answer = r
            .handle_invocation_with(&bus, &follow_ups, &retry, sqs(&bodies), "req", settings())
            .await;
        assert!(answer["batchItemFailures"].as_array().unwrap().is_empty());
        let now = r.clock.now();
        let schedules = follow_ups.state().schedules.clone();
        // Only the revocation that names a key is followed: +1, +15 and +60 minutes.
        let due: Vec<i64> = schedules
            .iter()
            .map(|(_, at, _)| (*at - now).num_minutes())
            .collect();
        assert_eq!(due, [1, 15, 60]);
        let outcomes = bus.state().outcomes.clone();
        assert!(
            outcomes[0].detail.contains("followed through CloudTrail"),
            "{}",
            outcomes[0].detail
        );
        assert!(!outcomes[1].detail.contains("CloudTrail"));

        // Redelivered: nothing is scheduled twice.
        r.handle_invocation_with(
            &bus,
            &follow_ups,
            &retry,
            sqs(&bodies[..1]),
            "req",
            settings(),
        )
        .await;
        assert_eq!(follow_ups.state().schedules.len(), 3);

        // What Scheduler delivers at +1 minute is a follow-up run of that key.
        let payload: Value = serde_json::from_str(&schedules[0].2).unwrap();
        bus.state().outcomes.clear();
        let answer = r
            .handle_invocation_with(&bus, &follow_ups, &retry, payload, "run-1", settings())
            .await;
        assert_eq!(answer["trigger"]["source"], "chain", "{answer}");
        assert_eq!(answer["chain"]["run"], 1, "{answer}");
        assert_eq!(answer["chain"]["key"], "ASIASTOLENKEY0000001");
        assert_eq!(bus.state().outcomes.len(), 1);
        // A payload that is a follow-up in name only is refused, and told.
        let answer = r
            .handle_invocation_with(
                &bus,
                &follow_ups,
                &retry,
                json!({"cutoff_follow_up": {"run": 1}}),
                "forged",
                settings(),
            )
            .await;
        assert_eq!(answer["status"], "failed");
        assert_eq!(answer["error"]["kind"], "invalid_request");
    }

    #[tokio::test(start_paused = true)]
    async fn a_follow_up_that_cannot_be_scheduled_sends_its_message_back_and_says_so() {
        let (r, _) = revoker();
        let r = r.with_ledger(cutoff_aws::dynamodb::fake::FakeLedger::default());
        let bus = cutoff_aws::eventbridge::fake::FakeOutcomeBus::default();
        let follow_ups = cutoff_aws::scheduler::fake::FakeFollowUps::default();
        follow_ups
            .state()
            .failures
            .plan("CreateSchedule", &[cutoff_aws::ErrorKind::AccessDenied]);
        let mut with_key = request("payments-api", "f1");
        with_key.target.access_key_id =
            Some(cutoff_domain::principal::AccessKeyId::parse("ASIASTOLENKEY0000001").unwrap());
        let answer = r
            .handle_invocation_with(
                &bus,
                &follow_ups,
                &RetryPolicy::immediate(2),
                sqs(&[serde_json::to_string(&with_key).unwrap()]),
                "req",
                settings(),
            )
            .await;
        assert_eq!(answer["batchItemFailures"][0]["itemIdentifier"], "m0");
        let outcome = &bus.state().outcomes[0];
        assert_eq!(
            outcome.status,
            Status::Applied,
            "the deny itself is not undone"
        );
        assert!(
            outcome.detail.contains("could not be scheduled"),
            "{}",
            outcome.detail
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unpublished_outcome_sends_its_message_back_for_retry() {
        let (r, _) = revoker();
        let bus = cutoff_aws::eventbridge::fake::FakeOutcomeBus::default();
        bus.fail("PutEvents", &[cutoff_aws::ErrorKind::AccessDenied]);
        let bodies = vec![serde_json::to_string(&request("payments-api", "f1")).unwrap()];
        let answer = r
            .handle_invocation(
                &bus,
                &RetryPolicy::immediate(2),
                sqs(&bodies),
                "req",
                settings(),
            )
            .await;
        assert_eq!(answer["batchItemFailures"][0]["itemIdentifier"], "m0");
    }

    #[tokio::test(start_paused = true)]
    async fn a_direct_invoke_is_answered_and_published() {
        let (r, _) = revoker();
        let bus = cutoff_aws::eventbridge::fake::FakeOutcomeBus::default();
        let answer = r
            .handle_invocation(
                &bus,
                &RetryPolicy::immediate(2),
                json!({"action": "revoke", "account": MEMBER, "role": "ledger"}),
                "req",
                settings(),
            )
            .await;
        assert_eq!(answer["status"], "applied");
        assert_eq!(bus.state().outcomes.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn two_keys_of_one_user_in_a_batch_are_both_deactivated() {
        let (r, member) = revoker();
        member
            .add_user("ci-bot", &[])
            .add_access_key("ci-bot", "AKIAAAAAAAAAAAAAAAA1")
            .add_access_key("ci-bot", "AKIAAAAAAAAAAAAAAAA2");
        let user_request = |key: &str, finding: &str| {
            let mut req = request("payments-api", finding);
            req.target = Target::new(
                cutoff_domain::principal::TargetKind::User,
                Account::parse(MEMBER).unwrap(),
                PrincipalName::parse("ci-bot").unwrap(),
            );
            req.target.access_key_id =
                Some(cutoff_domain::principal::AccessKeyId::parse(key).unwrap());
            serde_json::to_string(&req).unwrap()
        };
        let bodies = vec![
            user_request("AKIAAAAAAAAAAAAAAAA1", "f1"),
            user_request("AKIAAAAAAAAAAAAAAAA2", "f2"),
        ];
        let result = r.handle_batch(&batch(sqs(&bodies)), false).await;
        assert!(result.response.batch_item_failures.is_empty());
        assert_eq!(
            member
                .key_status("ci-bot", "AKIAAAAAAAAAAAAAAAA1")
                .as_deref(),
            Some("Inactive")
        );
        assert_eq!(
            member
                .key_status("ci-bot", "AKIAAAAAAAAAAAAAAAA2")
                .as_deref(),
            Some("Inactive")
        );
    }

    #[test]
    fn coalescing_keeps_the_latest_activity_unless_one_request_has_none() {
        let t = |h| chrono::Utc.with_ymd_and_hms(2026, 11, 23, h, 0, 0).unwrap();
        let mut a = request("x", "1");
        let mut b = request("x", "2");
        a.first_activity = Some(t(10));
        b.first_activity = Some(t(11));
        assert_eq!(coalesce(&[&a, &b]).unwrap().first_activity, Some(t(11)));
        b.first_activity = None;
        assert_eq!(coalesce(&[&a, &b]).unwrap().first_activity, None);
    }
}
