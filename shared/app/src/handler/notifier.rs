//! The notifier: one outcome event in, one message to the security topic and (when
//! the principal has one) to its owner's topic out.
//!
//! Delivery is at least once. A publish that still fails after retries fails the
//! whole invocation, so Lambda's asynchronous retries run the event again and, after
//! the last one, send it to the dead-letter destination. A rerun publishes to every
//! topic again: the security topic (published first) may receive a message twice.
//! Updating the Security Hub finding comes after the messages went out and is best
//! effort: its failure is logged, never fatal.

use cutoff_domain::metrics::{Function, NOTIFICATIONS, Record};
use cutoff_domain::triage::Source;
use serde::Serialize;
use serde_json::Value;

use aws_config::SdkConfig;
use lambda_runtime::LambdaEvent;

use super::{Failure, Handler, StartError};
use cutoff_aws::eventbridge::{OUTCOME_DETAIL_TYPE, OUTCOME_SOURCE};
use cutoff_aws::retry::{CallCounter, RetryPolicy};
use cutoff_aws::retrying::Retrying;
use cutoff_aws::securityhub::SdkFindings;
use cutoff_aws::sns::SdkNotifications;
use cutoff_aws::{AwsError, FindingsUpdater, Notifications, WorkflowStatus};
use cutoff_domain::json::Payload;
use cutoff_domain::notify::{self, Route};
use cutoff_domain::outcome::{FindingFormat, Outcome, Status};
use cutoff_domain::principal::excerpt;
use cutoff_domain::settings::NotifierConfig;
use std::sync::Arc;

/// Security Hub's bounds on finding ids and product ARNs.
const SECURITY_HUB_ID_MAX: usize = 512;

#[derive(thiserror::Error)]
pub enum NotifyError {
    #[error("the input is not an EventBridge event (expected a JSON object)")]
    NotAnEvent,
    #[error("the event is refused: {0}")]
    Refused(String),
    #[error(
        "event source is {0}, expected \"cutoff\": the notifier only reads cutoff's outcome events"
    )]
    WrongSource(String),
    #[error("event detail-type is {0}, expected \"Revocation Outcome\"")]
    WrongDetailType(String),
    #[error("event detail is not a cutoff outcome: {0}")]
    NotAnOutcome(String),
    /// Some topics may already have the message; the rerun sends it again.
    #[error(
        "publishing to {topic} failed after retries: {source}; the event fails so that Lambda retries it (topics already published to will receive the message again)"
    )]
    Publish {
        topic: String,
        #[source]
        source: AwsError,
        published: Vec<Published>,
    },
}

impl NotifyError {
    /// Whether Lambda's retry of the event may succeed: a publish that failed for a
    /// reason that passes (throttled, unreachable). An event that is not an outcome
    /// never will.
    pub fn is_retryable(&self) -> bool {
        matches!(self, NotifyError::Publish { source, .. } if source.is_retryable())
    }
}

/// The Lambda runtime logs a failed invocation's error with `Debug`: the same
/// sentence as `Display`, already logged once in structured form, not a struct dump.
impl std::fmt::Debug for NotifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// One message sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    pub topic: String,
    pub message_id: String,
}

/// What happened to the Security Hub finding behind the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingUpdate {
    /// Not a Security Hub request, no finding id (or, for ASFF, no product ARN), or
    /// updates are off.
    Skipped,
    /// Workflow status set to `NOTIFIED` (OCSF: `status_id` 2, In Progress), with a note.
    Updated,
    /// The update failed (logged; the messages went out).
    Failed,
}

/// What one notification did: logged as one line by the Lambda.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotifyReport {
    pub status: Status,
    pub account: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub team: Option<String>,
    pub owner_known: bool,
    pub published: Vec<Published>,
    pub finding_update: FindingUpdate,
    /// Why the owner's own topic could not be used (then the team topic was tried).
    pub owner_topic_error: Option<String>,
    /// SNS and Security Hub calls, retries included.
    pub api_calls: u32,
}

impl NotifyReport {
    /// The topics published to, in order.
    pub fn topics(&self) -> Vec<&str> {
        self.published.iter().map(|p| p.topic.as_str()).collect()
    }
}

pub struct Notifier<N: Notifications, F: FindingsUpdater> {
    pub notifications: N,
    pub findings: F,
    pub config: NotifierConfig,
    /// cutoff's home region (the notifier's own, `AWS_REGION`): every message names
    /// it, and links to its consoles when the finding names no region.
    pub home_region: Option<String>,
    /// How SNS and Security Hub calls are retried.
    pub retry: RetryPolicy,
}

/// Reads an outcome event: envelope `source` `cutoff`, `detail-type` `Revocation
/// Outcome`, `detail` an [`Outcome`].
pub fn parse_event(event: Value) -> Result<Outcome, NotifyError> {
    let Value::Object(mut map) = event else {
        return Err(NotifyError::NotAnEvent);
    };
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => excerpt(s),
        Some(other) => excerpt(&other.to_string()),
        None => "missing".to_owned(),
    };
    if map.get("source").and_then(Value::as_str) != Some(OUTCOME_SOURCE) {
        return Err(NotifyError::WrongSource(text(map.get("source"))));
    }
    if map.get("detail-type").and_then(Value::as_str) != Some(OUTCOME_DETAIL_TYPE) {
        return Err(NotifyError::WrongDetailType(text(map.get("detail-type"))));
    }
    let detail = map
        .remove("detail")
        .ok_or_else(|| NotifyError::NotAnOutcome("the event has no detail".to_owned()))?;
    // serde's messages quote at most a short excerpt of the offending value.
    serde_json::from_value(detail).map_err(|e| NotifyError::NotAnOutcome(e.to_string()))
}

impl<N: Notifications, F: FindingsUpdater> Notifier<N, F> {
    pub fn new(notifications: N, findings: F, config: NotifierConfig) -> Self {
        Self {
            notifications,
            findings,
            config,
            home_region: None,
            retry: RetryPolicy::default(),
        }
    }

    /// The notifier running in `region` (kept only when it is a region name).
    pub fn in_region(mut self, region: Option<&str>) -> Self {
        self.home_region = notify::MessageContext::new(region, Vec::new()).home_region;
        self
    }

    /// What every message needs from the notifier: its region, and its configuration
    /// problems (the security team hears of them with every message).
    fn context(&self) -> notify::MessageContext {
        notify::MessageContext::new(self.home_region.as_deref(), self.config.problems.clone())
    }

    /// Handles one sweep summary event: one message to the security topic, unless the
    /// run was quiet (nothing changed, nothing failed). The sweeper publishes no quiet
    /// summary; an older sweeper's, during a deploy, is dropped here.
    async fn handle_summary(&self, detail: Value) -> Result<NotifyReport, NotifyError> {
        let summary: cutoff_domain::summary::SweepSummary =
            serde_json::from_value(detail).map_err(|e| NotifyError::NotAnOutcome(e.to_string()))?;
        // The metrics' Status of a sweep message: `failed` with failures, else
        // `released` (its other news is expired revocations removed).
        let status = if summary.has_failures() {
            Status::Failed
        } else {
            Status::Released
        };
        let published = if summary.should_publish() {
            let message = notify::render_summary_in(&summary, &self.context());
            vec![self.to_security_topic(&message).await?]
        } else {
            tracing::info!(run_id = %excerpt(&summary.run_id), "a quiet sweep summary (nothing changed, nothing failed) is not published");
            Vec::new()
        };
        Ok(self.sweep_report(status, &summary.run_id, "sweep", published))
    }

    /// Handles the sweep's daily digest: one routine message to the security topic.
    async fn handle_digest(&self, detail: Value) -> Result<NotifyReport, NotifyError> {
        let digest: cutoff_domain::summary::SweepDigest =
            serde_json::from_value(detail).map_err(|e| NotifyError::NotAnOutcome(e.to_string()))?;
        let message = notify::render_digest_in(&digest, &self.context());
        let published = vec![self.to_security_topic(&message).await?];
        // Counted as a clean sweep message: the digest reports, it acts on nothing.
        Ok(self.sweep_report(
            Status::Released,
            &digest.date.to_string(),
            "sweep_digest",
            published,
        ))
    }

    /// Publishes a sweep message to the security topic (with retries).
    async fn to_security_topic(
        &self,
        message: &notify::SnsMessage,
    ) -> Result<(Published, u32), NotifyError> {
        let sns = Retrying::new(&self.notifications, self.retry);
        let topic = self.config.security_topic.clone();
        let message_id =
            sns.publish(&topic, message)
                .await
                .map_err(|source| NotifyError::Publish {
                    topic: topic.clone(),
                    source,
                    published: Vec::new(),
                })?;
        Ok((Published { topic, message_id }, sns.calls()))
    }

    fn sweep_report(
        &self,
        status: Status,
        name: &str,
        kind: &str,
        published: Vec<(Published, u32)>,
    ) -> NotifyReport {
        NotifyReport {
            status,
            account: None,
            kind: Some(kind.to_owned()),
            name: Some(name.to_owned()),
            team: None,
            owner_known: false,
            api_calls: published.iter().map(|(_, calls)| calls).sum(),
            published: published.into_iter().map(|(p, _)| p).collect(),
            finding_update: FindingUpdate::Skipped,
            owner_topic_error: None,
        }
    }

    /// Handles one outcome event, a sweep summary or the sweep's daily digest.
    pub async fn notify(
        &self,
        payload: impl Into<cutoff_domain::json::Payload>,
    ) -> Result<NotifyReport, NotifyError> {
        let event = payload
            .into()
            .into_strict()
            .map_err(|e| NotifyError::Refused(e.to_string()))?;
        if event.get("source").and_then(Value::as_str) == Some(OUTCOME_SOURCE) {
            let detail = || event.get("detail").cloned().unwrap_or(Value::Null);
            match event.get("detail-type").and_then(Value::as_str) {
                Some(cutoff_aws::eventbridge::SUMMARY_DETAIL_TYPE) => {
                    return self.handle_summary(detail()).await;
                }
                Some(cutoff_aws::eventbridge::DIGEST_DETAIL_TYPE) => {
                    return self.handle_digest(detail()).await;
                }
                _ => {}
            }
        }
        let mut outcome = parse_event(event)?;
        let route = notify::route(&outcome, &self.config);
        // A team found by an owner pattern is the owner too: say so in the message.
        if outcome.owner.team.is_none() {
            outcome.owner.team = route.team.clone();
        }
        // A team topic the deployment names wrongly: the security team hears of it with
        // every outcome until it is fixed (the owner may not have been told).
        let message = notify::render_in(&outcome, route.owner_known, &self.context());
        let sns = Retrying::new(&self.notifications, self.retry);

        let mut published = Vec::new();
        let mut failure = None;
        let mut owner_topic_error = None;
        // Security first: if the owner's topic is broken, the security team still hears.
        let mut topics: Vec<String> = route.topics().into_iter().map(str::to_owned).collect();
        let mut index = 0;
        while let Some(topic) = topics.get(index).cloned() {
            index += 1;
            let result = sns.publish(&topic, &message).await;
            match result {
                Ok(message_id) => published.push(Published {
                    topic: topic.clone(),
                    message_id,
                }),
                // A topic named by the principal's own `cutoff:notify` tag is set in the
                // member account (perhaps by the attacker): when it is refused for good
                // (not allowed, gone), it must not stop the owner team from hearing or
                // send the event to the dead-letter queue. Fall back to the team topic.
                Err(err)
                    if !err.is_retryable()
                        && topic != route.security_topic
                        && outcome.owner.topic.as_deref() == Some(topic.as_str()) =>
                {
                    tracing::error!(topic, error = %err, "the cutoff:notify topic was refused; falling back to the team topic");
                    owner_topic_error = Some(format!("{topic}: {err}"));
                    if let Some(team_topic) = route
                        .team
                        .as_deref()
                        .and_then(|team| self.config.team_topic(team))
                        .filter(|t| !topics.iter().any(|seen| seen == t))
                    {
                        topics.push(team_topic.to_owned());
                    }
                }
                Err(err) => {
                    tracing::error!(topic, error = %err, "publish failed");
                    failure.get_or_insert((topic.clone(), err));
                }
            }
        }
        if let Some((topic, source)) = failure {
            return Err(NotifyError::Publish {
                topic,
                source,
                published,
            });
        }

        let finding_update = self.update_finding(&outcome, &route, sns.counter()).await;
        let target = outcome.target.as_ref();
        Ok(NotifyReport {
            status: outcome.status,
            account: target.map(|t| t.account.to_string()),
            kind: target.map(|t| t.kind.as_str().to_owned()),
            name: target.map(|t| t.name.to_string()),
            team: route.team.clone(),
            owner_known: route.owner_known,
            published,
            finding_update,
            owner_topic_error,
            api_calls: sns.calls(),
        })
    }

    async fn update_finding(
        &self,
        outcome: &Outcome,
        route: &Route,
        calls: &Arc<CallCounter>,
    ) -> FindingUpdate {
        let trigger = &outcome.trigger;
        if !self.config.update_security_hub || trigger.source != Source::SecurityHub {
            return FindingUpdate::Skipped;
        }
        let Some(id) = &trigger.finding_id else {
            return FindingUpdate::Skipped;
        };
        // An OCSF finding is updated by its id alone; an ASFF one needs its product.
        let ocsf = trigger.finding_format == Some(FindingFormat::Ocsf);
        let product = trigger.product_arn.as_deref().unwrap_or("");
        if id.is_empty()
            || (!ocsf && product.is_empty())
            || id.len() > SECURITY_HUB_ID_MAX
            || product.len() > SECURITY_HUB_ID_MAX
        {
            tracing::warn!(
                finding_id = excerpt(id),
                "finding id or product ARN out of bounds; Security Hub not updated"
            );
            return FindingUpdate::Skipped;
        }
        let note = notify::finding_note(outcome, route);
        let findings = Retrying::counting_into(&self.findings, self.retry, Arc::clone(calls));
        let result = if ocsf {
            findings
                .update_ocsf_finding(id, WorkflowStatus::Notified, &note)
                .await
        } else {
            findings
                .update_finding(id, product, WorkflowStatus::Notified, &note)
                .await
        };
        match result {
            Ok(()) => FindingUpdate::Updated,
            Err(err) => {
                tracing::warn!(
                    finding_id = excerpt(id),
                    error = %err,
                    "Security Hub finding not updated; the notifications went out"
                );
                FindingUpdate::Failed
            }
        }
    }
}

impl Notifier<SdkNotifications, SdkFindings> {
    /// The deployed notifier: topics, teams and patterns from the environment (a team
    /// topic it may not use is reported with every message, not a failed start), the
    /// clients from `sdk`.
    ///
    /// The home region is the SDK's (`AWS_REGION`, which Lambda sets).
    pub fn from_env(sdk: &SdkConfig) -> Result<Self, StartError> {
        let config = NotifierConfig::from_env()?;
        for problem in &config.problems {
            tracing::error!(%problem, "a team topic names no topic the notifier may use; that team is not notified");
        }
        let region = sdk.region().map(|r| r.as_ref().to_owned());
        Ok(Notifier::new(
            SdkNotifications::from_config(sdk),
            SdkFindings::from_config(sdk),
            config,
        )
        .in_region(region.as_deref()))
    }
}

/// A publish that fails after retries fails the invocation: Lambda runs the event
/// again (a topic may then get the message twice), and finally dead-letters it.
impl<N: Notifications, F: FindingsUpdater> Handler for Notifier<N, F> {
    const FUNCTION: Function = Function::Notifier;

    async fn handle(&self, event: LambdaEvent<Payload>) -> Result<Value, Failure> {
        let request_id = event.context.request_id;
        match self.notify(event.payload).await {
            Ok(report) => {
                crate::metrics::emit(&[notified(&report)], chrono::Utc::now(), &request_id);
                tracing::info!(
                    status = report.status.as_str(),
                    account = report.account.as_deref(),
                    kind = report.kind.as_deref(),
                    name = report.name.as_deref(),
                    team = report.team.as_deref(),
                    owner_known = report.owner_known,
                    topics = ?report.topics(),
                    finding_update = ?report.finding_update,
                    api_calls = report.api_calls,
                    "notified"
                );
                serde_json::to_value(&report).map_err(Failure::refused)
            }
            Err(err) if err.is_retryable() => Err(Failure::retry(err)),
            Err(err) => Err(Failure::refused(err)),
        }
    }
}

/// The metrics of one notification: the messages published, by the outcome's status.
fn notified(report: &NotifyReport) -> Record {
    Record::of(Function::Notifier)
        .status(report.status)
        .value(&NOTIFICATIONS, report.published.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cutoff_aws::ErrorKind;
    use cutoff_aws::securityhub::fake::FakeFindings;
    use cutoff_aws::sns::fake::FakeNotifications;
    use cutoff_domain::event::Scope;
    use cutoff_domain::notify::{SEPARATOR, attribute};
    use cutoff_domain::outcome::{FailureKind, Owner, Trigger};
    use cutoff_domain::principal::{Account, NamePattern, PrincipalName, Target};
    use serde_json::json;

    const SECURITY: &str = "arn:aws:sns:us-east-1:999988887777:cutoff-security";
    const PAYMENTS: &str = "arn:aws:sns:us-east-1:111122223333:payments-alerts";
    const TAGGED: &str = "arn:aws:sns:us-east-1:111122223333:payments-oncall";
    const PRODUCT: &str = "arn:aws:securityhub:us-east-1::product/aws/guardduty";

    /// What the notifier tells: the topics and the findings.
    #[derive(Default)]
    struct Fakes {
        notifications: FakeNotifications,
        findings: FakeFindings,
    }

    fn notifier(config: NotifierConfig) -> (Notifier<FakeNotifications, FakeFindings>, Fakes) {
        let fake = Fakes::default();
        let notifier = Notifier::new(fake.notifications.clone(), fake.findings.clone(), config);
        (notifier, fake)
    }

    fn config() -> NotifierConfig {
        let mut config = NotifierConfig::new(SECURITY);
        config
            .team_topics
            .insert("payments".to_owned(), PAYMENTS.to_owned());
        config.owner_patterns.push((
            NamePattern::parse("payments-*").unwrap(),
            "payments".to_owned(),
        ));
        config
    }

    fn outcome(name: &str, owner: Owner, trigger: Trigger) -> Outcome {
        Outcome {
            status: Status::Applied,
            target: Some(Target::role(
                Account::parse("111122223333").unwrap(),
                PrincipalName::parse(name).unwrap(),
            )),
            cutoff: Some(cutoff_domain::policy::Cutoff::parse("2026-11-23T12:00:02Z").unwrap()),
            previous_cutoff: None,
            policy: Some("AWSRevokeOlderSessions".to_owned()),
            scope: Scope::Role,
            owner,
            trigger,
            api_calls: 4,
            error: None,
            propagation: Some("eventual".to_owned()),
            detail: format!("denied every session of role `{name}`"),
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

    fn guardduty() -> Trigger {
        Trigger {
            source: Source::GuardDuty,
            finding_id: Some("gd-1".to_owned()),
            severity: Some(8.0),
            ..Trigger::default()
        }
    }

    fn securityhub() -> Trigger {
        Trigger {
            source: Source::SecurityHub,
            finding_id: Some("arn:aws:securityhub:us-east-1:111122223333:finding/1".to_owned()),
            product_arn: Some(PRODUCT.to_owned()),
            ..Trigger::default()
        }
    }

    fn team(team: &str) -> Owner {
        Owner {
            team: Some(team.to_owned()),
            topic: None,
        }
    }

    fn event(outcome: &Outcome) -> Value {
        json!({
            "version": "0", "id": "e-1", "source": "cutoff", "detail-type": "Revocation Outcome",
            "account": "999988887777", "time": "2026-11-23T12:00:03Z", "region": "us-east-1",
            "resources": [], "detail": outcome,
        })
    }

    fn topics(fake: &Fakes) -> Vec<String> {
        fake.notifications
            .state()
            .published
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn given_an_unknown_owner_when_notified_then_only_the_security_topic_hears_that_the_owner_is_unknown()
     {
        let (n, fake) = notifier(config());
        let report = n
            .notify(event(&outcome("reports", Owner::default(), guardduty())))
            .await
            .unwrap();
        assert_eq!(topics(&fake), [SECURITY]);
        assert!(!report.owner_known);
        assert_eq!(report.team, None);
        assert_eq!(report.topics(), [SECURITY]);
        assert_eq!(report.published[0].message_id, "msg-1");
        let state = fake.notifications.state();
        let body = &state.published[0].1.body;
        assert!(body.contains("No owner is known"), "{body}");
    }

    #[tokio::test(start_paused = true)]
    async fn given_an_owner_team_when_notified_then_security_and_the_team_topic_get_the_same_message()
     {
        let (n, fake) = notifier(config());
        let report = n
            .notify(event(&outcome(
                "payments-api",
                team("payments"),
                guardduty(),
            )))
            .await
            .unwrap();
        assert_eq!(topics(&fake), [SECURITY, PAYMENTS]);
        assert_eq!(report.api_calls, 2);
        assert_eq!(report.status, Status::Applied);
        assert_eq!(report.account.as_deref(), Some("111122223333"));
        assert_eq!(report.name.as_deref(), Some("payments-api"));
        let state = fake.notifications.state();
        assert_eq!(state.published[0].1, state.published[1].1);
    }

    #[tokio::test(start_paused = true)]
    async fn given_a_notify_tag_topic_when_notified_then_it_wins_over_the_team_map() {
        let (n, fake) = notifier(config());
        let owner = Owner {
            team: Some("payments".to_owned()),
            topic: Some(TAGGED.to_owned()),
        };
        n.notify(event(&outcome("payments-api", owner, guardduty())))
            .await
            .unwrap();
        assert_eq!(topics(&fake), [SECURITY, TAGGED]);
    }

    #[tokio::test(start_paused = true)]
    async fn given_no_owner_tag_but_a_matching_pattern_when_notified_then_the_pattern_team_is_told_and_named()
     {
        let (n, fake) = notifier(config());
        let report = n
            .notify(event(&outcome(
                "payments-worker",
                Owner::default(),
                guardduty(),
            )))
            .await
            .unwrap();
        assert_eq!(topics(&fake), [SECURITY, PAYMENTS]);
        assert_eq!(report.team.as_deref(), Some("payments"));
        assert!(report.owner_known);
        let state = fake.notifications.state();
        let message = &state.published[1].1;
        assert!(
            message
                .attributes
                .contains(&(attribute::TEAM.to_owned(), "payments".to_owned()))
        );
        assert!(!message.body.contains("No owner is known"));
    }

    #[tokio::test(start_paused = true)]
    async fn given_a_securityhub_trigger_when_notified_then_the_finding_is_marked_notified_with_a_bounded_note()
     {
        let (n, fake) = notifier(config());
        let mut o = outcome("payments-api", team("payments"), securityhub());
        o.detail = "x".repeat(4000);
        let report = n.notify(event(&o)).await.unwrap();
        assert_eq!(report.finding_update, FindingUpdate::Updated);
        assert_eq!(report.api_calls, 3);
        let state = fake.findings.state();
        let (id, product, status, note) = &state.finding_updates[0];
        assert_eq!(id, "arn:aws:securityhub:us-east-1:111122223333:finding/1");
        assert_eq!(product, PRODUCT);
        assert_eq!(*status, WorkflowStatus::Notified);
        assert!(note.chars().count() <= 512, "{}", note.len());
        assert!(note.starts_with("cutoff applied: "));
    }

    #[tokio::test(start_paused = true)]
    async fn given_other_triggers_or_updates_off_when_notified_then_security_hub_is_not_touched() {
        let (n, fake) = notifier(config());
        let report = n
            .notify(event(&outcome(
                "payments-api",
                team("payments"),
                guardduty(),
            )))
            .await
            .unwrap();
        assert_eq!(report.finding_update, FindingUpdate::Skipped);
        let mut no_product = securityhub();
        no_product.product_arn = None;
        n.notify(event(&outcome(
            "payments-api",
            team("payments"),
            no_product,
        )))
        .await
        .unwrap();
        assert!(fake.findings.state().finding_updates.is_empty());

        let mut off = config();
        off.update_security_hub = false;
        let (n, fake) = notifier(off);
        let report = n
            .notify(event(&outcome(
                "payments-api",
                team("payments"),
                securityhub(),
            )))
            .await
            .unwrap();
        assert_eq!(report.finding_update, FindingUpdate::Skipped);
        assert!(fake.findings.state().finding_updates.is_empty());
    }

    const METADATA_UID: &str = "1d24e91799652d9e17025b61d94f436b20b515b6f3cd9bda788f48c1db9cf244";

    fn securityhub_ocsf() -> Trigger {
        Trigger {
            source: Source::SecurityHub,
            finding_id: Some(METADATA_UID.to_owned()),
            product_arn: Some("arn:aws:securityhub:us-east-1::productv2/aws/guardduty".to_owned()),
            finding_format: Some(FindingFormat::Ocsf),
            ..Trigger::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn given_an_ocsf_finding_when_notified_then_it_is_updated_through_the_ocsf_api_only() {
        let (n, fake) = notifier(config());
        let mut o = outcome("payments-api", team("payments"), securityhub_ocsf());
        o.detail = "x".repeat(4000);
        let report = n.notify(event(&o)).await.unwrap();
        assert_eq!(report.finding_update, FindingUpdate::Updated);
        {
            let state = fake.findings.state();
            assert!(state.finding_updates.is_empty());
            let (uid, status, comment) = &state.ocsf_updates[0];
            assert_eq!(uid, METADATA_UID);
            assert_eq!(*status, WorkflowStatus::Notified);
            assert!(comment.starts_with("cutoff applied: "), "{comment}");
        }
        // Its id is enough: a missing product does not stop the update.
        let mut no_product = securityhub_ocsf();
        no_product.product_arn = None;
        let report = n
            .notify(event(&outcome(
                "payments-api",
                team("payments"),
                no_product,
            )))
            .await
            .unwrap();
        assert_eq!(report.finding_update, FindingUpdate::Updated);
        // An ASFF finding still goes through BatchUpdateFindings.
        n.notify(event(&outcome(
            "payments-api",
            team("payments"),
            securityhub(),
        )))
        .await
        .unwrap();
        let state = fake.findings.state();
        assert_eq!(state.finding_updates.len(), 1);
        assert_eq!(state.ocsf_updates.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn given_the_ocsf_update_fails_when_notified_then_the_notification_still_succeeds() {
        let (n, fake) = notifier(config());
        fake.findings
            .fail("BatchUpdateFindingsV2", &[ErrorKind::AccessDenied]);
        let report = n
            .notify(event(&outcome(
                "payments-api",
                team("payments"),
                securityhub_ocsf(),
            )))
            .await
            .unwrap();
        assert_eq!(report.finding_update, FindingUpdate::Failed);
        assert_eq!(topics(&fake), [SECURITY, PAYMENTS]);
    }

    #[tokio::test(start_paused = true)]
    async fn given_security_hub_fails_when_notified_then_the_notification_still_succeeds() {
        let (n, fake) = notifier(config());
        fake.findings
            .fail("BatchUpdateFindings", &[ErrorKind::AccessDenied]);
        let report = n
            .notify(event(&outcome(
                "payments-api",
                team("payments"),
                securityhub(),
            )))
            .await
            .unwrap();
        assert_eq!(report.finding_update, FindingUpdate::Failed);
        assert_eq!(topics(&fake), [SECURITY, PAYMENTS]);
    }

    #[tokio::test(start_paused = true)]
    async fn given_a_throttled_publish_when_notified_then_it_is_retried_and_counted() {
        let (n, fake) = notifier(config());
        fake.notifications
            .fail("Publish", &[ErrorKind::Throttled, ErrorKind::Transient]);
        let report = n
            .notify(event(&outcome(
                "payments-api",
                team("payments"),
                guardduty(),
            )))
            .await
            .unwrap();
        assert_eq!(report.topics(), [SECURITY, PAYMENTS]);
        assert_eq!(report.api_calls, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn given_a_publish_that_fails_after_retries_when_notified_then_the_event_fails_after_trying_every_topic()
     {
        let (n, fake) = notifier(config());
        fake.notifications
            .fail("Publish", &[ErrorKind::AccessDenied]);
        let err = n
            .notify(event(&outcome(
                "payments-api",
                team("payments"),
                securityhub(),
            )))
            .await
            .unwrap_err();
        match &err {
            NotifyError::Publish {
                topic, published, ..
            } => {
                assert_eq!(topic, SECURITY);
                assert_eq!(published.len(), 1, "the owner still got the message");
                assert_eq!(published[0].topic, PAYMENTS);
            }
            other => panic!("unexpected {other}"),
        }
        assert!(err.to_string().contains("Lambda retries"), "{err}");
        assert!(
            fake.findings.state().finding_updates.is_empty(),
            "the finding is updated on the retry that delivers"
        );

        let (n, fake) = notifier(config());
        fake.notifications
            .fail("Publish", &[ErrorKind::Throttled; 6]);
        assert!(matches!(
            n.notify(event(&outcome("reports", Owner::default(), guardduty())))
                .await,
            Err(NotifyError::Publish { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn given_events_that_are_not_outcome_events_when_handled_then_each_is_an_error_and_nothing_is_sent()
     {
        let (n, fake) = notifier(config());
        let good = event(&outcome("payments-api", team("payments"), guardduty()));
        let mut wrong_source = good.clone();
        wrong_source["source"] = json!("aws.guardduty");
        let mut wrong_type = good.clone();
        wrong_type["detail-type"] = json!("GuardDuty Finding");
        let mut bad_detail = good.clone();
        bad_detail["detail"] = json!({"status": "exploded"});
        let mut no_detail = good.clone();
        no_detail.as_object_mut().unwrap().remove("detail");
        let bare_outcome =
            serde_json::to_value(outcome("x1", Owner::default(), guardduty())).unwrap();
        for (input, expected) in [
            (json!("hello"), "not an EventBridge event"),
            (json!([good.clone()]), "not an EventBridge event"),
            (wrong_source, "aws.guardduty"),
            (wrong_type, "GuardDuty Finding"),
            (bad_detail, "not a cutoff outcome"),
            (no_detail, "no detail"),
            (bare_outcome, "source"),
        ] {
            let err = n.notify(input).await.unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        assert!(fake.notifications.state().published.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn given_an_outcome_event_when_notified_then_the_message_carries_the_outcome_json() {
        let (n, fake) = notifier(config());
        let o = outcome("payments-api", team("payments"), guardduty());
        n.notify(event(&o)).await.unwrap();
        let state = fake.notifications.state();
        let body = &state.published[0].1.body;
        let json = body.split(SEPARATOR).nth(1).unwrap();
        let back: Outcome = serde_json::from_str(json).unwrap();
        assert_eq!(back, o);
    }

    #[tokio::test]
    async fn a_refused_notify_tag_topic_falls_back_to_the_team_topic_without_failing() {
        // The tag is set in the member account; an attacker could point it anywhere.
        let (n, fake) = notifier(config());
        fake.notifications
            .state()
            .refusing_topics
            .push(TAGGED.to_owned());
        let owner = Owner {
            team: Some("payments".to_owned()),
            topic: Some(TAGGED.to_owned()),
        };
        let report = n
            .notify(event(&outcome("payments-api", owner, guardduty())))
            .await
            .unwrap();
        assert_eq!(report.topics(), [SECURITY, PAYMENTS]);
        assert!(
            report
                .owner_topic_error
                .as_deref()
                .is_some_and(|e| e.contains(TAGGED))
        );
    }

    #[tokio::test]
    async fn a_team_topic_the_deployment_names_wrongly_is_told_with_every_outcome() {
        let mut config = NotifierConfig::new(SECURITY);
        config.problems.push(
            "CUTOFF_TEAM_TOPICS `payments=payments-alrets`: no topic of that name".to_owned(),
        );
        let (n, fake) = notifier(config);
        n.notify(event(&outcome(
            "payments-api",
            team("payments"),
            guardduty(),
        )))
        .await
        .unwrap();
        let sent = fake.notifications.state().published.clone();
        assert_eq!(sent.len(), 1, "the security topic, still");
        assert_eq!(sent[0].0, SECURITY);
        assert!(
            sent[0].1.body.contains("Configuration problem"),
            "{}",
            sent[0].1.body
        );
        assert!(sent[0].1.body.contains("payments-alrets"));
        // Told before the outcome JSON, which still parses, and in the chat too.
        let json = sent[0].1.body.split(SEPARATOR).nth(1).unwrap();
        assert!(serde_json::from_str::<Outcome>(json).is_ok(), "{json}");
        assert!(
            sent[0]
                .1
                .chat
                .content
                .description
                .contains("payments-alrets")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn every_message_names_the_notifiers_region_and_the_request_id_in_both_bodies() {
        let (n, fake) = notifier(config());
        let n = n.in_region(Some("us-east-1"));
        let mut o = outcome("payments-api", team("payments"), guardduty());
        o.request_id = Some("msg-7d1e".to_owned());
        o.activity_region = Some("eu-west-1".to_owned());
        o.trigger.finding_id = Some("455aa647b26d9310341733d58b9b7442".to_owned());
        n.notify(event(&o)).await.unwrap();
        let published = fake.notifications.state().published.clone();
        for (_, message) in &published {
            let chat: Value = serde_json::from_str(&message.chat.to_json()).unwrap();
            assert_eq!(
                notify::chat::schema_problems(&chat),
                Vec::<String>::new(),
                "{chat:#}"
            );
            for body in [&message.body, &message.chat.content.description] {
                assert!(body.contains("msg-7d1e"), "{body}");
                assert!(body.contains("us-east-1"), "{body}");
                assert!(body.contains("eu-west-1"), "{body}");
                assert!(
                    body.contains("https://console.aws.amazon.com/guardduty/home?region=eu-west-1"),
                    "{body}"
                );
            }
        }
        // A region that is no region is never shown nor linked to.
        let (n, fake) = notifier(config());
        let n = n.in_region(Some("us-east-1/../evil"));
        assert_eq!(n.home_region, None);
        n.notify(event(&outcome(
            "payments-api",
            team("payments"),
            guardduty(),
        )))
        .await
        .unwrap();
        let published = fake.notifications.state().published.clone();
        assert!(published[0].1.body.contains("Region:           unknown"));
    }

    #[tokio::test]
    async fn a_refused_security_topic_still_fails_the_event() {
        let (n, fake) = notifier(config());
        fake.notifications
            .state()
            .refusing_topics
            .push(SECURITY.to_owned());
        let err = n
            .notify(event(&outcome(
                "payments-api",
                team("payments"),
                guardduty(),
            )))
            .await
            .unwrap_err();
        assert!(matches!(err, NotifyError::Publish { .. }), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sweep_summary_goes_to_the_security_topic_only_with_its_totals() {
        use cutoff_domain::summary::{AccountFailure, SweepSummary};
        let (n, fake) = notifier(config());
        let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc();
        let mut summary = SweepSummary::from_records(
            "schedule-abc",
            at("2026-11-23T12:00:00Z"),
            at("2026-11-23T12:02:00Z"),
            3,
            false,
            &[],
        );
        summary.accounts_reported = 3;
        summary.accounts_failed = 1;
        summary.cutoffs_moved = 500;
        summary.statements_removed = 300;
        summary.failures.push(AccountFailure {
            account: Account::parse("444455556666").unwrap(),
            kind: FailureKind::AccessDenied,
            message: "cannot assume cutoff-member".into(),
        });
        let event = json!({"source":"cutoff","detail-type":"Sweep Summary","detail":summary});
        let report = n.notify(event).await.unwrap();
        assert_eq!(report.topics(), vec![SECURITY]);
        let published = fake.notifications.state().published.clone();
        assert_eq!(published.len(), 1);
        let message = &published[0].1;
        assert!(
            message.subject.contains("500 cutoffs moved"),
            "{}",
            message.subject
        );
        assert!(message.subject.contains("FAILURES"), "{}", message.subject);
        assert!(message.subject.len() <= 100);
        assert!(
            message.body.contains("444455556666 (access_denied)"),
            "{}",
            message.body
        );
        assert!(message.body.contains(SEPARATOR));
        // The run's id is its request id, in both bodies.
        for body in [&message.body, &message.chat.content.description] {
            assert!(body.contains("schedule-abc"), "{body}");
        }
        assert_eq!(message.chat.metadata.event_type, "cutoff-sweep");
        assert_eq!(class_of(message), Some("incident"), "it has failures");
    }

    fn class_of(message: &notify::SnsMessage) -> Option<&str> {
        message
            .attributes
            .iter()
            .find(|(name, _)| name == attribute::CLASS)
            .map(|(_, value)| value.as_str())
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_summary_is_dropped_and_one_that_only_changed_things_is_routine() {
        use cutoff_domain::summary::SweepSummary;
        let (n, fake) = notifier(config());
        let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc();
        let mut summary = SweepSummary::from_records(
            "schedule-quiet",
            at("2026-11-23T12:00:00Z"),
            at("2026-11-23T12:02:00Z"),
            0,
            false,
            &[],
        );
        // An older sweeper's quiet summary, during a deploy: nothing goes out.
        let event =
            |s: &SweepSummary| json!({"source":"cutoff","detail-type":"Sweep Summary","detail":s});
        let report = n.notify(event(&summary)).await.unwrap();
        assert!(report.published.is_empty());
        assert!(fake.notifications.state().published.is_empty());
        // Changes only: published, routine.
        summary.statements_removed = 4;
        n.notify(event(&summary)).await.unwrap();
        let published = fake.notifications.state().published.clone();
        assert_eq!(published.len(), 1);
        assert_eq!(class_of(&published[0].1), Some("routine"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_digest_goes_to_the_security_topic_as_routine() {
        use cutoff_domain::summary::SweepDigest;
        let (n, fake) = notifier(config());
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T00:05:00Z")
            .unwrap()
            .to_utc();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let digest = SweepDigest::of_day(day, &[], at, "run-digest");
        let event = json!({"source":"cutoff","detail-type":"Sweep Digest","detail":digest});
        let report = n.notify(event).await.unwrap();
        assert_eq!(report.topics(), vec![SECURITY]);
        assert_eq!(report.kind.as_deref(), Some("sweep_digest"));
        let published = fake.notifications.state().published.clone();
        let message = &published[0].1;
        assert_eq!(class_of(message), Some("routine"));
        assert!(
            message
                .subject
                .starts_with("cutoff sweep digest 2026-11-23: 0 runs"),
            "{}",
            message.subject
        );
        assert!(
            message.body.contains("No sweep was planned on 2026-11-23"),
            "{}",
            message.body
        );
        assert!(message.body.contains("run-digest"));
        // A digest that is not one is refused, not sent.
        let bad = json!({"source":"cutoff","detail-type":"Sweep Digest","detail":{"date":"x"}});
        assert!(matches!(
            n.notify(bad).await,
            Err(NotifyError::NotAnOutcome(_))
        ));
        assert_eq!(fake.notifications.state().published.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rolling_cutoff_tells_the_owner_it_is_routine_not_an_incident() {
        let (n, fake) = notifier(config());
        let trigger = Trigger {
            source: Source::Schedule,
            ..Trigger::default()
        };
        let owner = Owner {
            team: Some("payments".into()),
            topic: None,
        };
        let event = json!({"source":"cutoff","detail-type":"Revocation Outcome","detail":outcome("payments-batch", owner, trigger)});
        n.notify(event).await.unwrap();
        let published = fake.notifications.state().published.clone();
        assert_eq!(published.len(), 2);
        let message = &published[1].1;
        assert!(
            message
                .subject
                .starts_with("cutoff: rolling cutoff moved on"),
            "{}",
            message.subject
        );
        assert!(message.body.contains("routine"), "{}", message.body);
        assert!(!message.body.contains("rotate"), "{}", message.body);
    }
}
