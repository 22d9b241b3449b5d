//! Intake: one EventBridge event in, triage, then each `revoke` decision onto the FIFO
//! request queue (each `ask` decision too, marked as needing approval) and each
//! `alert` decision onto the outcome bus as an `alerted` outcome, so the owner still
//! hears.
//!
//! A bad finding never fails the invocation: triage turns it into an `ignore`
//! decision, logged. Only a failure to queue or publish fails it, so that Lambda's
//! asynchronous retry runs the event again (safe: the queue deduplicates by finding).

use aws_config::SdkConfig;
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use super::{Failure, Handler, StartError};
use crate::config::IntakeConfig;
use cutoff_aws::eventbridge::SdkOutcomeBus;
use cutoff_aws::retry::RetryPolicy;
use cutoff_aws::retrying::Retrying;
use cutoff_aws::sqs::SdkQueue;
use cutoff_aws::{AwsError, OutcomeBus, RequestQueue};
use cutoff_domain::event;
use cutoff_domain::json::Payload;
use cutoff_domain::metrics::{DECISIONS, Function, OutcomeTally, Record, decision_name};
use cutoff_domain::outcome::{RevocationRequest, Status, alert_outcome};
use cutoff_domain::queue::{deduplication_id, group_id};
use cutoff_domain::settings::TriageConfig;
use cutoff_domain::triage::{Decision, Source, Triage, Verdict, triage};

/// What one event led to.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IntakeReport {
    pub source: String,
    pub queued: usize,
    /// Of those queued, the requests that need a person's approval.
    pub asked: usize,
    pub alerted: usize,
    pub ignored: usize,
    pub invalid: usize,
    /// The outcomes published (alerts, protected principals), for the metrics.
    #[serde(skip)]
    pub outcomes: OutcomeTally,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("queueing the revocation of {target}: {source}")]
    Queue {
        target: String,
        #[source]
        source: AwsError,
    },
    #[error("publishing {count} alert outcome(s): {source}")]
    Publish {
        count: usize,
        #[source]
        source: AwsError,
    },
}

pub struct Intake<Q, B> {
    pub queue: Q,
    pub bus: B,
    pub config: TriageConfig,
    pub retry: RetryPolicy,
}

fn log_decision(source: Source, decision: &Decision) {
    let target = decision.target.as_ref();
    let finding = decision.finding.as_ref();
    tracing::info!(
        source = source.as_str(),
        decision = match decision.decision {
            Verdict::Revoke => "revoke",
            Verdict::Ask => "ask",
            Verdict::Alert => "alert",
            Verdict::Ignore => "ignore",
        },
        reason = decision.reason.as_str(),
        invalid = decision.invalid.is_some(),
        finding_id = finding.map(|f| f.id.as_str()),
        finding_type = finding.and_then(|f| f.finding_type.as_deref()),
        severity = finding.and_then(|f| f.severity),
        account = target.map(|t| t.account.as_str()),
        kind = target.map(|t| t.kind.as_str()),
        name = target.map(|t| t.name.as_str()),
        "decision"
    );
}

impl<Q: RequestQueue, B: OutcomeBus> Intake<Q, B> {
    /// [`Intake::accept_as`] outside an invocation (no request id).
    pub async fn accept(
        &self,
        payload: impl Into<cutoff_domain::json::Payload>,
    ) -> Result<(Triage, IntakeReport), IntakeError> {
        self.accept_as(payload, None).await
    }

    /// Triages one event and sends on what it decided. Intake acts only on events
    /// EventBridge delivers from an AWS source: a payload with a duplicate key, one
    /// without an envelope (a bare finding) or a manual request invoked on intake
    /// directly is logged and ignored (operators use the revoker's operator path).
    /// The alerts it publishes name `request_id`, the invocation's.
    pub async fn accept_as(
        &self,
        payload: impl Into<cutoff_domain::json::Payload>,
        request_id: Option<&str>,
    ) -> Result<(Triage, IntakeReport), IntakeError> {
        let (triage, event_time) = match payload.into().into_strict() {
            Ok(value) => {
                let parsed = event::recognise(value);
                let event_time = parsed
                    .envelope
                    .as_ref()
                    .and_then(|e| e.time.as_deref())
                    .and_then(event_time);
                let triage = match (&parsed.envelope, &parsed.event) {
                    (_, event::Event::Manual(_)) | (None, _) => Triage {
                        source: Source::Unknown,
                        decisions: vec![Decision::refused(
                            "intake acts only on EventBridge events from AWS sources; a manual request or a bare payload invoked on intake is not one (operators use the revoker's operator path)",
                        )],
                    },
                    _ => triage(&parsed, &self.config),
                };
                (triage, event_time)
            }
            Err(err) => (
                Triage {
                    source: Source::Unknown,
                    decisions: vec![Decision::refused(err.to_string())],
                },
                None,
            ),
        };
        let mut report = IntakeReport {
            source: triage.source.as_str().to_owned(),
            ..IntakeReport::default()
        };
        let queue = Retrying::new(&self.queue, self.retry);
        let bus = Retrying::new(&self.bus, self.retry);
        let mut alerts = Vec::new();
        for decision in &triage.decisions {
            log_decision(triage.source, decision);
            match decision.decision {
                // An `ask` is queued like a revocation, marked as needing approval:
                // the revoker records it and asks a person (intake has no ledger).
                Verdict::Revoke | Verdict::Ask => {
                    let Some(mut request) =
                        RevocationRequest::from_decision(triage.source, decision)
                    else {
                        continue;
                    };
                    // Where the revoker's time-to-contain starts; the same for every
                    // delivery of the event, so the queue's deduplication is unchanged.
                    request.event_time = event_time;
                    // Serializing plain data with string keys cannot fail.
                    let body = serde_json::to_string(&request).unwrap_or_default();
                    let group = group_id(&request);
                    let dedup = deduplication_id(&request, &body);
                    queue.send(&body, &group, &dedup).await.map_err(|source| {
                        IntakeError::Queue {
                            target: request.target.to_string(),
                            source,
                        }
                    })?;
                    report.queued += 1;
                    report.asked += usize::from(request.needs_approval);
                }
                Verdict::Alert => {
                    if let Some(mut outcome) = alert_outcome(triage.source, decision) {
                        // A finding against cutoff's own roles, the member role or a
                        // break-glass role: never revoked, and the loudest message there is
                        // (the responder itself, or the way back in, may be compromised).
                        if let Some(target) = &decision.target
                            && let Some(why) = self.config.is_protected(target)
                        {
                            outcome.status = Status::Protected;
                            outcome.detail = format!(
                                "a finding names {target}, which is protected ({why}): cutoff never revokes it; a person must investigate now"
                            );
                        }
                        outcome.request_id = request_id.map(str::to_owned);
                        alerts.push(outcome);
                    }
                }
                Verdict::Ignore if decision.invalid.is_some() => report.invalid += 1,
                Verdict::Ignore => report.ignored += 1,
            }
        }
        if !alerts.is_empty() {
            bus.publish(&alerts)
                .await
                .map_err(|source| IntakeError::Publish {
                    count: alerts.len(),
                    source,
                })?;
            report.alerted = alerts.len();
            report.outcomes = alerts.iter().collect();
        }
        Ok((triage, report))
    }
}

/// An EventBridge event's `time` (RFC 3339, as EventBridge writes it). A time before
/// 2010 is a placeholder, not a time.
fn event_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.to_utc())
        .filter(|t| *t >= cutoff_domain::clock::EARLIEST_PLAUSIBLE)
}

/// What intake's invocation counts: its decisions by verdict and by source, and the
/// outcomes it published by status and source.
pub fn metric_records(triage: &Triage, report: &IntakeReport) -> Vec<Record> {
    let mut counts: std::collections::BTreeMap<&'static str, u64> = Default::default();
    for decision in &triage.decisions {
        *counts
            .entry(decision_name(decision.decision, decision.invalid.is_some()))
            .or_default() += 1;
    }
    let mut records: Vec<Record> = counts
        .into_iter()
        .map(|(decision, count)| {
            Record::of(Function::Intake)
                .decision(decision)
                .source(triage.source)
                .value(&DECISIONS, count)
        })
        .collect();
    records.extend(report.outcomes.records(Function::Intake));
    records
}

impl Intake<SdkQueue, SdkOutcomeBus> {
    /// The deployed intake: the triage rules and the queue and bus from the
    /// environment, the clients from `sdk`.
    pub fn from_env(sdk: &SdkConfig) -> Result<Self, StartError> {
        let config = IntakeConfig::from_env()?;
        Ok(Intake {
            queue: SdkQueue::from_config(sdk, config.request_queue_url),
            bus: SdkOutcomeBus::from_config(sdk, config.outcome_bus),
            config: TriageConfig::from_env()?,
            retry: RetryPolicy::default(),
        })
    }
}

/// A failure to queue or publish fails the invocation so that Lambda runs the event
/// again (the queue deduplicates by finding); a bad finding never does (it is logged
/// as ignored).
impl<Q: RequestQueue, B: OutcomeBus> Handler for Intake<Q, B> {
    const FUNCTION: Function = Function::Intake;

    async fn handle(&self, event: LambdaEvent<Payload>) -> Result<Value, Failure> {
        let request_id = event.context.request_id;
        let (triage, report) = self
            .accept_as(event.payload, Some(&request_id))
            .await
            .map_err(Failure::retry)?;
        tracing::info!(
            source = report.source.as_str(),
            queued = report.queued,
            asked = report.asked,
            alerted = report.alerted,
            ignored = report.ignored,
            invalid = report.invalid,
            "event triaged"
        );
        crate::metrics::emit(
            &metric_records(&triage, &report),
            chrono::Utc::now(),
            &request_id,
        );
        serde_json::to_value(&report).map_err(Failure::refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cutoff_aws::ErrorKind;
    use cutoff_aws::eventbridge::fake::FakeOutcomeBus;
    use cutoff_aws::sqs::fake::FakeQueue;
    use serde_json::json;

    /// What intake sends to: the request queue and the outcome bus.
    #[derive(Default)]
    struct Fakes {
        queue: FakeQueue,
        bus: FakeOutcomeBus,
    }

    fn intake(fake: &Fakes) -> Intake<FakeQueue, FakeOutcomeBus> {
        Intake {
            queue: fake.queue.clone(),
            bus: fake.bus.clone(),
            config: TriageConfig::default(),
            retry: RetryPolicy::immediate(3),
        }
    }

    fn finding(id: &str, role: &str, severity: f64, updated: &str) -> serde_json::Value {
        json!({
            "version": "0", "id": "e", "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
            "account": "999988887777", "time": updated, "region": "us-east-1", "resources": [],
            "detail": {
                "schemaVersion": "2.0", "accountId": "111122223333", "region": "us-east-1", "partition": "aws",
                "id": id, "type": "UnauthorizedAccess:IAMUser/MaliciousIPCaller",
                "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                    "accessKeyId": "ASIAZXCVBNMASDFGHJKL", "principalId": "AROAZXCVBNMASDFGHJKLQ:i-0123456789abcdef0",
                    "userName": role, "userType": "AssumedRole"}},
                "service": {"serviceName": "guardduty", "archived": false,
                            "eventFirstSeen": "2026-11-23T11:50:00.000Z", "eventLastSeen": "2026-11-23T11:55:00.000Z",
                            "additionalInfo": {}},
                "severity": severity, "updatedAt": updated
            }
        })
    }

    #[tokio::test]
    async fn a_revoke_decision_is_queued_with_the_principal_as_group() {
        let fake = Fakes::default();
        let (_, report) = intake(&fake)
            .accept(finding("f1", "payments-api", 8.0, "2026-11-23T11:56:00Z"))
            .await
            .unwrap();
        assert_eq!(report.queued, 1);
        let (queue, bus) = (fake.queue.state(), fake.bus.state());
        let (body, group, dedup) = &queue.queued[0];
        assert_eq!(group, "111122223333/role/payments-api");
        assert_eq!(dedup.len(), 64);
        let request: RevocationRequest = serde_json::from_str(body).unwrap();
        assert_eq!(request.target.name.as_str(), "payments-api");
        assert_eq!(request.trigger.finding_id.as_deref(), Some("f1"));
        assert!(request.first_activity.is_some());
        assert!(bus.outcomes.is_empty());
    }

    #[tokio::test]
    async fn with_ask_a_medium_finding_is_queued_needing_approval_and_alerts_nobody_yet() {
        let fake = Fakes::default();
        let intake = Intake {
            config: TriageConfig {
                medium_findings: cutoff_domain::settings::MediumFindings::Ask,
                ..TriageConfig::default()
            },
            ..intake(&fake)
        };
        let (triage, report) = intake
            .accept(finding("f1", "payments-api", 5.0, "2026-11-23T11:56:00Z"))
            .await
            .unwrap();
        assert_eq!((report.queued, report.asked, report.alerted), (1, 1, 0));
        let (body, group, dedup) = fake.queue.state().queued[0].clone();
        assert_eq!(group, "111122223333/role/payments-api");
        assert_eq!(dedup.len(), 64);
        let request: RevocationRequest = serde_json::from_str(&body).unwrap();
        assert!(request.needs_approval, "{body}");
        assert_eq!(request.check_queued(), Ok(()));
        assert!(
            fake.bus.state().outcomes.is_empty(),
            "the revoker asks, not intake"
        );
        let at = chrono::Utc::now();
        let counted: Vec<serde_json::Value> = metric_records(&triage, &report)
            .iter()
            .map(|r| r.to_emf(&cutoff_domain::metrics::Namespace::default(), at))
            .collect();
        assert_eq!(counted[0]["Decision"], "ask");
        // At the revoke threshold it revokes, as ever; the report says so.
        let (_, report) = intake
            .accept(finding("f2", "ledger", 7.0, "2026-11-23T11:57:00Z"))
            .await
            .unwrap();
        assert_eq!((report.queued, report.asked), (1, 0));
        let body = fake.queue.state().queued[1].0.clone();
        assert!(!body.contains("needs_approval"), "{body}");
    }

    #[tokio::test]
    async fn a_queued_request_carries_the_events_time_and_the_decisions_are_counted() {
        let fake = Fakes::default();
        let intake = intake(&fake);
        let (triage, report) = intake
            .accept(finding("f1", "payments-api", 8.0, "2026-11-23T11:56:00Z"))
            .await
            .unwrap();
        let body = fake.queue.state().queued[0].0.clone();
        let request: RevocationRequest = serde_json::from_str(&body).unwrap();
        assert_eq!(
            request.event_time.map(|t| t.to_rfc3339()),
            Some("2026-11-23T11:56:00+00:00".to_owned())
        );
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .to_utc();
        let namespace = cutoff_domain::metrics::Namespace::default();
        let docs = |records: Vec<Record>| -> Vec<serde_json::Value> {
            records.iter().map(|r| r.to_emf(&namespace, at)).collect()
        };
        let counted = docs(metric_records(&triage, &report));
        assert_eq!(counted.len(), 1, "{counted:?}");
        assert_eq!(counted[0]["Decision"], "revoke");
        assert_eq!(counted[0]["Source"], "guardduty");
        assert_eq!(counted[0]["Decisions"], 1);

        // An alert is counted as a decision and as the outcome it published; an event
        // whose time is no time queues its requests without one.
        let (triage, report) = intake
            .accept(finding("f2", "reports", 5.0, "2026-11-23T11:57:00Z"))
            .await
            .unwrap();
        let counted = docs(metric_records(&triage, &report));
        assert_eq!(counted.len(), 2, "{counted:?}");
        assert_eq!(counted[0]["Decision"], "alert");
        assert_eq!(counted[1]["Status"], "alerted");
        assert_eq!(counted[1]["Outcomes"], 1);
        let mut untimed = finding("f3", "ledger", 8.0, "2026-11-23T11:58:00Z");
        untimed["time"] = json!("yesterday");
        intake.accept(untimed).await.unwrap();
        let body = fake.queue.state().queued.last().unwrap().0.clone();
        assert!(!body.contains("event_time"), "{body}");
    }

    #[tokio::test]
    async fn an_attack_sequence_queues_one_request_per_actor_and_alerts_what_it_only_touched() {
        let fake = Fakes::default();
        let actor = |id: &str, role: &str, key: &str| {
            json!({"id": id, "user": {"name": role, "uid": format!("AROAZXCVBNMASDFGHJKLQ:{id}"),
                "type": "AssumedRole", "credentialUid": key},
                "session": {"createdTime": 1_796_043_600, "issuer": format!("arn:aws:iam::111122223333:role/{role}")}})
        };
        let event = json!({
            "version": "0", "id": "e", "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
            "account": "999988887777", "time": "2026-11-30T14:05:12Z", "region": "us-east-1", "resources": [],
            "detail": {
                "schemaVersion": "2.0", "accountId": "111122223333", "region": "us-east-1", "partition": "aws",
                "id": "seq-1", "type": "AttackSequence:IAM/CompromisedCredentials",
                "resource": {"resourceType": "AttackSequence"},
                "service": {"serviceName": "guardduty", "archived": false, "additionalInfo": {},
                    "eventFirstSeen": "2026-11-30T13:00:00.000Z", "eventLastSeen": "2026-11-30T13:58:40.000Z",
                    "detection": {"sequence": {"uid": "s", "description": "d", "signals": [],
                        "actors": [actor("a1", "payments-api", "ASIAZXCVBNMASDFGHJKL"),
                                   actor("a2", "ledger-writer", "ASIAZXCVBNMASDFGHJKM")],
                        "resources": [{"uid": "AKIAZXCVBNMASDFGHJKN", "resourceType": "ACCESS_KEY",
                            "data": {"accessKey": {"userName": "ci-runner", "userType": "IAMUser"}}}]}}},
                "severity": 9, "updatedAt": "2026-11-30T14:05:11.877Z"
            }
        });
        let (_, report) = intake(&fake).accept(event).await.unwrap();
        assert_eq!((report.queued, report.alerted), (2, 1));
        let (queue, bus) = (fake.queue.state(), fake.bus.state());
        let groups: Vec<&str> = queue.queued.iter().map(|(_, g, _)| g.as_str()).collect();
        assert_eq!(
            groups,
            [
                "111122223333/role/payments-api",
                "111122223333/role/ledger-writer"
            ]
        );
        assert_ne!(queue.queued[0].2, queue.queued[1].2);
        for (body, _, _) in &queue.queued {
            let request: RevocationRequest = serde_json::from_str(body).unwrap();
            request.check_queued().unwrap();
            assert_eq!(request.trigger.finding_id.as_deref(), Some("seq-1"));
            // The session's issue time, not the sequence's first activity.
            assert_eq!(
                request.first_activity.unwrap().to_rfc3339(),
                "2026-11-30T13:00:00+00:00"
            );
        }
        let alert = &bus.outcomes[0];
        assert_eq!(alert.status, Status::Alerted);
        assert_eq!(alert.target.as_ref().unwrap().name.as_str(), "ci-runner");
    }

    #[tokio::test]
    async fn an_ocsf_finding_is_queued_only_when_enabled_and_says_its_format() {
        let fake = Fakes::default();
        let event = json!({
            "version": "0", "id": "e", "detail-type": "Findings Imported V2", "source": "aws.securityhub",
            "account": "999988887777", "time": "2026-11-30T13:40:15Z", "region": "us-east-1",
            "resources": ["m-1"],
            "detail": {"findings": [{
                "class_uid": 2004, "activity_id": 1, "severity_id": 4, "status_id": 1,
                "cloud": {"account": {"uid": "111122223333"}, "region": "us-east-1"},
                "metadata": {"uid": "m-1", "product": {"name": "GuardDuty",
                    "uid": "arn:aws:securityhub:us-east-1::productv2/aws/guardduty"}},
                "finding_info": {"uid": "f", "types": ["Exfiltration:IAMUser/AnomalousBehavior"],
                    "first_seen_time_dt": "2026-11-30T13:21:07.000Z"},
                "resources": [{"type": "AWS::IAM::AccessKey", "uid": "ASIAZXCVBNMASDFGHJKL",
                    "data": {"access_key_id": "ASIAZXCVBNMASDFGHJKL", "principal_id": "AROAZXCVBNMASDFGHJKLQ:s",
                             "user_name": "payments-api", "user_type": "AssumedRole"}}]
            }]}
        });
        let (_, report) = intake(&fake).accept(event.clone()).await.unwrap();
        assert_eq!((report.queued, report.ignored), (0, 1));
        let mut enabled = intake(&fake);
        enabled.config.securityhub_v2 = true;
        let (_, report) = enabled.accept(event).await.unwrap();
        assert_eq!(report.queued, 1);
        let request: RevocationRequest =
            serde_json::from_str(&fake.queue.state().queued[0].0).unwrap();
        assert_eq!(
            request.trigger.source,
            cutoff_domain::triage::Source::SecurityHub
        );
        assert_eq!(
            request.trigger.finding_format,
            Some(cutoff_domain::outcome::FindingFormat::Ocsf)
        );
        assert_eq!(request.trigger.finding_id.as_deref(), Some("m-1"));
    }

    #[tokio::test]
    async fn a_re_emitted_finding_has_the_same_deduplication_id_and_an_updated_one_does_not() {
        let fake = Fakes::default();
        let i = intake(&fake);
        i.accept(finding("f1", "payments-api", 8.0, "2026-11-23T11:56:00Z"))
            .await
            .unwrap();
        i.accept(finding("f1", "payments-api", 8.0, "2026-11-23T11:56:00Z"))
            .await
            .unwrap();
        assert_eq!(
            fake.queue.state().queued.len(),
            1,
            "SQS drops the duplicate"
        );
        i.accept(finding("f1", "payments-api", 8.0, "2026-11-23T12:10:00Z"))
            .await
            .unwrap();
        assert_eq!(
            fake.queue.state().queued.len(),
            2,
            "an updated finding is a new message"
        );
    }

    #[tokio::test]
    async fn an_alert_decision_is_published_as_an_alerted_outcome() {
        let fake = Fakes::default();
        let (_, report) = intake(&fake)
            .accept(finding("f2", "reporting", 5.0, "2026-11-23T11:56:00Z"))
            .await
            .unwrap();
        assert_eq!((report.queued, report.alerted), (0, 1));
        let (queue, bus) = (fake.queue.state(), fake.bus.state());
        let outcome = &bus.outcomes[0];
        assert_eq!(outcome.status, Status::Alerted);
        assert_eq!(outcome.target.as_ref().unwrap().name.as_str(), "reporting");
        assert_eq!(outcome.trigger.finding_id.as_deref(), Some("f2"));
        assert!(queue.queued.is_empty());
    }

    #[tokio::test]
    async fn a_high_severity_finding_on_cutoffs_own_role_is_a_loud_protected_outcome() {
        for role in ["cutoff-us-east-1-revoker", "cutoff-member"] {
            let fake = Fakes::default();
            let mut i = intake(&fake);
            i.config = TriageConfig::from_lookup(|k| {
                (k == cutoff_domain::settings::env::PROTECTED_ARNS)
                    .then(|| "arn:aws:iam::111122223333:role/cutoff-us-east-1-revoker".to_owned())
            })
            .unwrap();
            let (_, report) = i
                .accept(finding("f9", role, 8.9, "2026-11-23T11:56:00Z"))
                .await
                .unwrap();
            assert_eq!((report.queued, report.alerted), (0, 1), "{role}");
            let (queue, bus) = (fake.queue.state(), fake.bus.state());
            assert!(
                queue.queued.is_empty(),
                "{role} must never be queued for revocation"
            );
            let outcome = &bus.outcomes[0];
            assert_eq!(outcome.status, Status::Protected, "{role}");
            assert!(
                outcome.detail.contains("never revokes"),
                "{}",
                outcome.detail
            );
            let message = cutoff_domain::notify::render(outcome, false);
            assert!(
                message.subject.starts_with("cutoff ALERT: protected"),
                "{}",
                message.subject
            );
        }
    }

    #[tokio::test]
    async fn an_alert_names_the_invocation_that_raised_it_and_the_findings_region() {
        let fake = Fakes::default();
        let mut event = finding("f5", "payments-api", 5.0, "2026-11-23T11:56:00Z");
        event["detail"]["region"] = json!("eu-west-1");
        let (_, report) = intake(&fake)
            .accept_as(event, Some("lambda-req-1"))
            .await
            .unwrap();
        assert_eq!(report.alerted, 1);
        let bus = fake.bus.state();
        let alert = &bus.outcomes[0];
        assert_eq!(alert.status, Status::Alerted);
        assert_eq!(alert.request_id.as_deref(), Some("lambda-req-1"));
        assert_eq!(alert.activity_region.as_deref(), Some("eu-west-1"));
    }

    #[tokio::test]
    async fn ignored_and_invalid_findings_send_nothing_and_do_not_fail() {
        let fake = Fakes::default();
        let i = intake(&fake);
        let (_, report) = i
            .accept(finding("f3", "payments-api", 2.0, "2026-11-23T11:56:00Z"))
            .await
            .unwrap();
        assert_eq!(report.ignored, 1);
        let (_, report) = i
            .accept(finding("f4", "bad/name", 9.0, "2026-11-23T11:56:00Z"))
            .await
            .unwrap();
        assert_eq!(report.invalid, 1);
        let (_, report) = i.accept(json!({"not": "an event"})).await.unwrap();
        assert_eq!(report.invalid, 1);
        assert!(fake.queue.state().queued.is_empty() && fake.bus.state().outcomes.is_empty());
    }

    #[tokio::test]
    async fn a_manual_request_invoked_on_intake_is_never_queued() {
        // Intake is invoked by EventBridge rules; whoever could invoke it directly must
        // not be able to queue a revocation (or anything else) through it.
        let fake = Fakes::default();
        let i = intake(&fake);
        for payload in [
            json!({"action": "revoke", "account": "111122223333", "role": "payments-api"}),
            json!({"action": "release", "account": "111122223333", "role": "payments-api", "force": true}),
            // A bare finding, with no envelope to say where it came from.
            finding("f7", "payments-api", 9.0, "2026-11-23T11:56:00Z")["detail"].clone(),
        ] {
            let (triage, report) = i.accept(payload.clone()).await.unwrap();
            assert_eq!(report.queued, 0, "{payload}");
            assert!(
                triage.decisions[0].reason.contains("AWS sources"),
                "{}",
                triage.decisions[0].reason
            );
        }
        assert!(fake.queue.state().queued.is_empty() && fake.bus.state().outcomes.is_empty());
    }

    #[tokio::test]
    async fn a_finding_with_two_account_ids_is_refused_not_revoked_in_either() {
        let fake = Fakes::default();
        let text = r#"{"version":"0","id":"e","detail-type":"GuardDuty Finding","source":"aws.guardduty",
            "account":"999988887777","time":"2026-11-23T11:56:00Z","region":"us-east-1","resources":[],
            "detail":{"schemaVersion":"2.0","accountId":"111122223333","accountId":"444455556666","id":"f8",
              "type":"UnauthorizedAccess:IAMUser/MaliciousIPCaller","severity":9,
              "resource":{"resourceType":"AccessKey","accessKeyDetails":{"accessKeyId":"ASIAZXCVBNMASDFGHJKL",
                "principalId":"AROAZXCVBNMASDFGHJKLQ:s1","userName":"payments-api","userType":"AssumedRole"}},
              "service":{"serviceName":"guardduty","archived":false,"additionalInfo":{}}}}"#;
        // What the Lambda runtime hands intake: the payload read strictly.
        let payload: cutoff_domain::json::Payload = serde_json::from_str(text).unwrap();
        let (triage, report) = intake(&fake).accept(payload).await.unwrap();
        assert_eq!((report.queued, report.invalid), (0, 1));
        assert!(
            triage.decisions[0].reason.contains("duplicate key"),
            "{}",
            triage.decisions[0].reason
        );
        assert!(fake.queue.state().queued.is_empty());
    }

    #[tokio::test]
    async fn queue_failures_are_retried_then_fail_the_invocation() {
        let fake = Fakes::default();
        fake.queue.fail("SendMessage", &[ErrorKind::Throttled]);
        assert!(
            intake(&fake)
                .accept(finding("f5", "payments-api", 8.0, "2026-11-23T11:56:00Z"))
                .await
                .is_ok()
        );
        fake.queue.fail("SendMessage", &[ErrorKind::AccessDenied]);
        let err = intake(&fake)
            .accept(finding("f6", "payments-api", 8.0, "2026-11-23T11:56:00Z"))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("role payments-api in 111122223333"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_custom_action_with_several_findings_queues_each_principal() {
        let fake = Fakes::default();
        let asff = |id: &str, name: &str| {
            json!({
                "SchemaVersion": "2018-10-08", "Id": id, "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/guardduty",
                "AwsAccountId": "111122223333", "Types": ["TTPs/x"], "Severity": {"Label": "LOW", "Normalized": 10},
                "Resources": [{"Type": "AwsIamAccessKey", "Id": "AWS::IAM::AccessKey:ASIAZXCVBNMASDFGHJKL",
                    "Details": {"AwsIamAccessKey": {"PrincipalType": "AssumedRole", "PrincipalName": name}}}],
                "UpdatedAt": "2026-11-23T11:56:00Z"
            })
        };
        let event = json!({"version": "0", "id": "c", "detail-type": "Security Hub Findings - Custom Action",
            "source": "aws.securityhub", "account": "999988887777", "time": "2026-11-23T12:00:00Z", "region": "us-east-1",
            "resources": [], "detail": {"actionName": "revoke", "findings": [asff("a", "payments-api"), asff("b", "ledger")]}});
        let (_, report) = intake(&fake).accept(event).await.unwrap();
        assert_eq!(report.queued, 2);
        let request: RevocationRequest =
            serde_json::from_str(&fake.queue.state().queued[0].0).unwrap();
        assert_eq!(
            request.trigger.product_arn.as_deref(),
            Some("arn:aws:securityhub:us-east-1::product/aws/guardduty")
        );
        assert_eq!(
            request.trigger.source,
            cutoff_domain::triage::Source::SecurityHub
        );
    }
}
