//! The revoker's two inputs: an SQS batch from intake (FIFO, one group per
//! principal), or a manual request invoked directly (break-glass: answered
//! synchronously).

use std::collections::BTreeMap;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde_json::Value;

use crate::aws::retry::{CallCounter, RetryPolicy, with_retries};
use crate::aws::{AccountAccess, OutcomeBus};
use crate::clock::Clock;
use crate::event::{ManualAction, manual};
use crate::outcome::{Outcome, RevocationRequest, Status};
use crate::revoke::Revoker;

/// What one invocation carried.
#[derive(Debug)]
pub enum Invocation {
    /// An SQS batch.
    Queue(SqsEvent),
    /// A direct invoke with a manual request (valid or not).
    Direct(Value),
}

impl Invocation {
    /// SQS batches are recognised by their records' `eventSource`; anything else is a
    /// direct invoke and is validated as a manual request.
    pub fn classify(payload: Value) -> Self {
        let is_sqs = super::is_sqs_batch(&payload);
        if is_sqs && let Ok(event) = serde_json::from_value::<SqsEvent>(payload.clone()) {
            return Invocation::Queue(event);
        }
        Invocation::Direct(payload)
    }
}

/// An outcome for one queue message, with its message id.
#[derive(Debug, Clone)]
pub struct MessageOutcome {
    pub message_id: String,
    pub outcome: Outcome,
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
}

/// The key requests are coalesced by: one principal, one scope, one session.
fn coalesce_key(request: &RevocationRequest) -> String {
    let t = &request.target;
    // The access key is part of the key: two findings naming two keys of one user
    // must each get their key deactivated, not just the first one's.
    format!(
        "{}/{}/{}/{}/{}/{}/{}/{}",
        t.account,
        t.kind,
        t.name,
        request.scope.as_str(),
        t.session.as_ref().map(|s| s.as_str()).unwrap_or("-"),
        t.access_key_id.as_ref().map(|k| k.as_str()).unwrap_or("-"),
        request.action.as_str(),
        request.dry_run
    )
}

/// Folds the requests for one principal into the one request that covers them all:
/// the same write, so a finding storm costs one IAM write per principal.
fn coalesce(requests: &[&RevocationRequest]) -> Option<RevocationRequest> {
    let first = (*requests.first()?).clone();
    // Skipping a write is only safe if every finding's activity is covered, so the
    // latest activity wins; a request without one (manual) always writes.
    let last_activity = requests
        .iter()
        .map(|r| r.last_activity)
        .try_fold(None, |acc: Option<chrono::DateTime<chrono::Utc>>, t| {
            t.map(|t| Some(acc.map_or(t, |a| a.max(t))))
        })
        .flatten();
    Some(RevocationRequest {
        last_activity,
        force: requests.iter().all(|r| r.force),
        ..first
    })
}

impl<A: AccountAccess, K: Clock, L: crate::aws::ledger::Ledger> Revoker<A, K, L> {
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
            let parsed = record
                .body
                .as_deref()
                .ok_or_else(|| "message has no body".to_owned())
                .and_then(|body| {
                    serde_json::from_str::<RevocationRequest>(body).map_err(|e| e.to_string())
                });
            match parsed {
                Ok(mut request) => {
                    request.dry_run |= force_dry_run;
                    let key = coalesce_key(&request);
                    if !groups.contains_key(&key) {
                        order.push(key.clone());
                    }
                    groups.entry(key).or_default().push((message_id, request));
                }
                Err(why) => {
                    tracing::error!(message_id, error = %why, "unreadable revocation request");
                    failures.push(message_id.clone());
                    outcomes.push(MessageOutcome {
                        message_id,
                        outcome: Outcome::invalid_request(format!(
                            "queue message is not a revocation request: {why}"
                        )),
                    });
                }
            }
        }

        let mut runs = 0;
        for key in order {
            let Some(members) = groups.get(&key) else {
                continue;
            };
            let requests: Vec<&RevocationRequest> = members.iter().map(|(_, r)| r).collect();
            let Some(combined) = coalesce(&requests) else {
                continue;
            };
            runs += 1;
            let request_id = members
                .first()
                .map(|(id, _)| id.as_str())
                .unwrap_or("batch");
            let result = self.handle(&combined, request_id).await;
            for (message_id, request) in members {
                // Each message keeps its own trigger so its owner hears about its
                // finding; the write and its result are shared.
                let outcome = Outcome {
                    trigger: request.trigger.clone(),
                    ..result.clone()
                };
                if outcome.status == Status::Failed {
                    failures.push(message_id.clone());
                }
                outcomes.push(MessageOutcome {
                    message_id: message_id.clone(),
                    outcome,
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
        }
    }

    /// Handles a direct invoke: a manual request answered with its outcome (or, for
    /// `status`, a status report). Invalid requests get a failed outcome, never an
    /// error: the operator needs to read why.
    pub async fn handle_direct(
        &self,
        payload: Value,
        request_id: &str,
        force_dry_run: bool,
    ) -> DirectAnswer {
        let request = match manual::parse(payload) {
            Ok(r) => r,
            Err(e) => {
                return DirectAnswer::Outcome(Box::new(Outcome::invalid_request(e.to_string())));
            }
        };
        let mut request = RevocationRequest::from_manual(&request);
        request.dry_run |= force_dry_run;
        match request.action {
            ManualAction::Status => {
                DirectAnswer::Status(Box::new(self.status(&request, request_id).await))
            }
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
        payload: Value,
        request_id: &str,
        settings: InvocationSettings,
    ) -> Value {
        let calls = CallCounter::default();
        match Invocation::classify(payload) {
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
                let mut result = self.handle_batch(&batch, settings.dry_run).await;
                let mut to_publish = Vec::new();
                let mut published_ids = Vec::new();
                for message in &result.outcomes {
                    crate::telemetry::log_outcome(&message.outcome);
                    let receive = receives.get(&message.message_id).copied().unwrap_or(1);
                    let tell = message.outcome.status != Status::Failed
                        || receive <= 1
                        || receive >= settings.final_receive;
                    if tell {
                        let mut outcome = message.outcome.clone();
                        if outcome.status == Status::Failed {
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
                if !to_publish.is_empty()
                    && let Err(err) = with_retries(retry, &calls, || bus.publish(&to_publish)).await
                {
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
            Invocation::Direct(payload) => match self
                .handle_direct(payload, request_id, settings.dry_run)
                .await
            {
                DirectAnswer::Status(report) => to_value(&report),
                DirectAnswer::Outcome(outcome) => {
                    crate::telemetry::log_outcome(&outcome);
                    if let Err(err) = with_retries(retry, &calls, || {
                        bus.publish(std::slice::from_ref(outcome.as_ref()))
                    })
                    .await
                    {
                        tracing::error!(error = %err, "outcome of a direct invoke not published; the caller has it");
                    }
                    to_value(&outcome)
                }
            },
        }
    }
}

/// The answer to a direct invoke.
#[derive(Debug, Clone)]
pub enum DirectAnswer {
    Outcome(Box<Outcome>),
    Status(Box<crate::revoke::StatusReport>),
}

impl DirectAnswer {
    pub fn to_json(&self) -> Value {
        match self {
            DirectAnswer::Outcome(o) => to_value(o),
            DirectAnswer::Status(s) => to_value(s),
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
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    // Outcomes and reports are plain data with string keys.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::fake::{FakeAccess, FakeIam};
    use crate::clock::FixedClock;
    use crate::outcome::Trigger;
    use crate::principal::{Account, PrincipalName, Target};
    use crate::revoke::RevokeConfig;
    use chrono::TimeZone;
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
            scope: crate::event::Scope::Role,
            trigger: Trigger {
                source: "guardduty".into(),
                finding_id: Some(finding.into()),
                ..Trigger::default()
            },
            last_activity: None,
            dry_run: false,
            force: false,
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

    fn batch(value: Value) -> SqsEvent {
        match Invocation::classify(value) {
            Invocation::Queue(e) => e,
            Invocation::Direct(v) => panic!("not recognised as SQS: {v}"),
        }
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
        assert_eq!(
            member
                .writes()
                .iter()
                .filter(|w| **w == "PutRolePolicy")
                .count(),
            3
        );
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
    async fn failures_are_reported_per_message_and_bad_bodies_are_not_dropped() {
        let (r, member) = revoker();
        member.fail("PutRolePolicy", &[crate::aws::ErrorKind::AccessDenied]);
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
        assert_eq!(failed, ["m2", "m0", "m1"]);
        assert_eq!(result.outcomes.len(), 4);
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
        let answer = r.handle_direct(payload, "req", false).await.to_json();
        assert_eq!(answer["status"], "applied");
        assert_eq!(answer["trigger"]["requested_by"], "alice");
        let answer = r
            .handle_direct(
                json!({"action": "revoke", "account": "nope", "role": "x"}),
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
                "req",
                false,
            )
            .await
            .to_json();
        assert_eq!(answer["role_wide"]["policy"], "AWSRevokeOlderSessions");
    }

    fn settings() -> InvocationSettings {
        InvocationSettings {
            dry_run: false,
            final_receive: 3,
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
        let bus = crate::aws::fake::FakeMessaging::default();
        let retry = RetryPolicy::immediate(2);
        let bodies = vec![
            serde_json::to_string(&request("payments-api", "f1")).unwrap(),
            serde_json::to_string(&request("ledger", "f2")).unwrap(),
        ];
        member.fail("PutRolePolicy", &[crate::aws::ErrorKind::AccessDenied]);
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
        member.fail("PutRolePolicy", &[crate::aws::ErrorKind::AccessDenied]);
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
        member.fail("PutRolePolicy", &[crate::aws::ErrorKind::AccessDenied]);
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
    async fn an_unpublished_outcome_sends_its_message_back_for_retry() {
        let (r, _) = revoker();
        let bus = crate::aws::fake::FakeMessaging::default();
        bus.fail("PutEvents", &[crate::aws::ErrorKind::AccessDenied]);
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
        let bus = crate::aws::fake::FakeMessaging::default();
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
                crate::principal::TargetKind::User,
                Account::parse(MEMBER).unwrap(),
                PrincipalName::parse("ci-bot").unwrap(),
            );
            req.target.access_key_id = Some(crate::principal::AccessKeyId::parse(key).unwrap());
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
        a.last_activity = Some(t(10));
        b.last_activity = Some(t(11));
        assert_eq!(coalesce(&[&a, &b]).unwrap().last_activity, Some(t(11)));
        b.last_activity = None;
        assert_eq!(coalesce(&[&a, &b]).unwrap().last_activity, None);
    }
}
