//! EventBridge Scheduler: the follow-up runs of a revocation as one-time schedules
//! that invoke the revoker ([`FollowUps`], [`SdkFollowUps`]); the in-memory fake is in
//! `fake` (feature `test-support`).
//!
//! Why Scheduler and not a queue: the runs are due up to an hour after the revocation,
//! SQS delays stop at 15 minutes (and the request queue, FIFO, has none per message),
//! so a queue would have to re-send each task until it is due. A one-time schedule
//! fires once at its time, retries by its own policy, sends what it could not deliver
//! to a dead-letter queue, and deletes itself after it fired.

use std::future::Future;

use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode,
    RetryPolicy, Target,
};
use chrono::{DateTime, Utc};

use crate::error::{AwsError, ErrorKind, classify};

const OP: &str = "scheduler:CreateSchedule";

/// Whether a schedule was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduled {
    Created,
    /// One of that name exists: a redelivered request scheduled it already.
    AlreadyThere,
}

/// One-time schedules that deliver a payload to the revoker.
pub trait FollowUps: Send + Sync {
    /// Whether follow-ups are scheduled at all ([`NoFollowUps`], `None` say no).
    fn enabled(&self) -> bool {
        true
    }

    /// Delivers `payload` (JSON) to the revoker at `at` (to the minute), once.
    fn schedule(
        &self,
        name: &str,
        at: DateTime<Utc>,
        payload: &str,
    ) -> impl Future<Output = Result<Scheduled, AwsError>> + Send;
}

/// No follow-ups: where none are configured (the CLI, tests of other paths).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFollowUps;

impl FollowUps for NoFollowUps {
    fn enabled(&self) -> bool {
        false
    }

    async fn schedule(&self, _: &str, _: DateTime<Utc>, _: &str) -> Result<Scheduled, AwsError> {
        Err(AwsError::new(
            ErrorKind::Malformed,
            OP,
            "in this deployment",
            "no follow-up schedules are configured",
        ))
    }
}

/// Follow-ups where the deployment configures them.
impl<T: FollowUps> FollowUps for Option<T> {
    fn enabled(&self) -> bool {
        self.as_ref().is_some_and(T::enabled)
    }

    async fn schedule(
        &self,
        name: &str,
        at: DateTime<Utc>,
        payload: &str,
    ) -> Result<Scheduled, AwsError> {
        match self {
            Some(inner) => inner.schedule(name, at, payload).await,
            None => NoFollowUps.schedule(name, at, payload).await,
        }
    }
}

/// `at(yyyy-mm-ddThh:mm:ss)`, in UTC, rounded up to the next whole minute: a schedule
/// fires no earlier than asked.
pub fn at_expression(at: DateTime<Utc>) -> String {
    use chrono::{DurationRound, Timelike};
    let minute = chrono::Duration::minutes(1);
    let floor = at.duration_trunc(minute).unwrap_or(at);
    let due = if floor == at && at.nanosecond() == 0 {
        at
    } else {
        floor + minute
    };
    format!("at({})", due.format("%Y-%m-%dT%H:%M:%S"))
}

/// Scheduler through the SDK: schedules in `group`, invoking `target_arn` (the
/// revoker) with `role_arn` (a role only Scheduler can assume, allowed to invoke the
/// revoker and to send to `dead_letter_arn`).
#[derive(Debug, Clone)]
pub struct SdkFollowUps {
    /// Built when the first schedule is made, not at start: most invocations make none.
    client: std::sync::Arc<std::sync::OnceLock<aws_sdk_scheduler::Client>>,
    config: Option<aws_config::SdkConfig>,
    group: String,
    target_arn: String,
    role_arn: String,
    dead_letter_arn: Option<String>,
}

impl SdkFollowUps {
    /// A client from `config` (retries off: the decorator retries and counts).
    pub fn from_config(
        config: &aws_config::SdkConfig,
        group: String,
        target_arn: String,
        role_arn: String,
        dead_letter_arn: Option<String>,
    ) -> Self {
        Self {
            client: Default::default(),
            config: Some(config.clone()),
            group,
            target_arn,
            role_arn,
            dead_letter_arn,
        }
    }

    fn client(&self) -> &aws_sdk_scheduler::Client {
        self.client.get_or_init(|| {
            // `new` fills the cell with its client: only `from_config` gets here, with
            // its configuration (the default builder is never the one used).
            let conf = match &self.config {
                Some(config) => aws_sdk_scheduler::config::Builder::from(config),
                None => aws_sdk_scheduler::config::Builder::default()
                    .behavior_version(aws_config::BehaviorVersion::latest()),
            };
            aws_sdk_scheduler::Client::from_conf(
                conf.retry_config(aws_config::retry::RetryConfig::disabled())
                    .build(),
            )
        })
    }

    pub fn new(
        client: aws_sdk_scheduler::Client,
        group: String,
        target_arn: String,
        role_arn: String,
        dead_letter_arn: Option<String>,
    ) -> Self {
        Self {
            client: std::sync::Arc::new(std::sync::OnceLock::from(client)),
            config: None,
            group,
            target_arn,
            role_arn,
            dead_letter_arn,
        }
    }
}

impl FollowUps for SdkFollowUps {
    async fn schedule(
        &self,
        name: &str,
        at: DateTime<Utc>,
        payload: &str,
    ) -> Result<Scheduled, AwsError> {
        let context = || format!("for {name}");
        let build = |e: aws_sdk_scheduler::error::BuildError| {
            AwsError::new(ErrorKind::Malformed, OP, context(), e.to_string())
        };
        let target = Target::builder()
            .arn(&self.target_arn)
            .role_arn(&self.role_arn)
            .input(payload)
            // A follow-up is worth running late: up to the hour after it was due.
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_retry_attempts(10)
                    .maximum_event_age_in_seconds(3600)
                    .build(),
            )
            .set_dead_letter_config(
                self.dead_letter_arn
                    .as_ref()
                    .map(|arn| DeadLetterConfig::builder().arn(arn).build()),
            )
            .build()
            .map_err(build)?;
        let result = self
            .client()
            .create_schedule()
            .name(name)
            .group_name(&self.group)
            .schedule_expression(at_expression(at))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(
                FlexibleTimeWindow::builder()
                    .mode(FlexibleTimeWindowMode::Off)
                    .build()
                    .map_err(build)?,
            )
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(target)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Scheduled::Created),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conflict_exception()) =>
            {
                Ok(Scheduled::AlreadyThere)
            }
            Err(e) => Err(classify(&e, OP, context())),
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod fake {
    //! Schedules kept in memory, to be fired by the test.

    use std::sync::{Arc, Mutex, MutexGuard};

    use chrono::{DateTime, Utc};

    use super::{FollowUps, Scheduled};
    use crate::error::{AwsError, InjectedFailures};

    #[derive(Debug, Clone, Default)]
    pub struct FakeFollowUps(pub Arc<Mutex<FollowUpsState>>);

    #[derive(Debug, Default)]
    pub struct FollowUpsState {
        /// (name, when, payload), in the order made.
        pub schedules: Vec<(String, DateTime<Utc>, String)>,
        pub failures: InjectedFailures,
    }

    impl FakeFollowUps {
        pub fn state(&self) -> MutexGuard<'_, FollowUpsState> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }
    }

    impl FollowUps for FakeFollowUps {
        async fn schedule(
            &self,
            name: &str,
            at: DateTime<Utc>,
            payload: &str,
        ) -> Result<Scheduled, AwsError> {
            let mut state = self.state();
            state.failures.take("CreateSchedule", "in the fake")?;
            if state.schedules.iter().any(|(n, _, _)| n == name) {
                return Ok(Scheduled::AlreadyThere);
            }
            state
                .schedules
                .push((name.to_owned(), at, payload.to_owned()));
            Ok(Scheduled::Created)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::retry::RetryConfig;
    use aws_sdk_scheduler::Client as Scheduler;
    use aws_sdk_scheduler::operation::create_schedule::{
        CreateScheduleError, CreateScheduleOutput,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use chrono::TimeZone;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_schedule_fires_at_the_minute_asked_or_the_next_one_never_earlier() {
        let at = Utc.with_ymd_and_hms(2026, 12, 5, 3, 14, 0).unwrap();
        assert_eq!(at_expression(at), "at(2026-12-05T03:14:00)");
        assert_eq!(
            at_expression(at + chrono::Duration::milliseconds(1)),
            "at(2026-12-05T03:15:00)"
        );
        assert_eq!(
            at_expression(Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 30).unwrap()),
            "at(2027-01-01T00:00:00)"
        );
    }

    fn follow_ups(client: Scheduler) -> SdkFollowUps {
        SdkFollowUps::new(
            client,
            "cutoff-follow-ups".to_owned(),
            "arn:aws:lambda:us-east-1:111122223333:function:cutoff-revoker".to_owned(),
            "arn:aws:iam::111122223333:role/cutoff-follow-up-scheduler".to_owned(),
            Some("arn:aws:sqs:us-east-1:111122223333:cutoff-follow-up-dlq".to_owned()),
        )
    }

    #[tokio::test]
    async fn a_one_time_schedule_invokes_the_revoker_once_and_deletes_itself() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let create = mock!(Scheduler::create_schedule).then_compute_output({
            let seen = seen.clone();
            move |r| {
                seen.lock().unwrap().push(r.clone());
                CreateScheduleOutput::builder()
                    .schedule_arn("arn:aws:scheduler:::schedule/x")
                    .build()
                    .unwrap()
            }
        });
        let client = mock_client!(aws_sdk_scheduler, RuleMode::MatchAny, [&create], |c| c
            .retry_config(RetryConfig::disabled()));
        let at = Utc.with_ymd_and_hms(2026, 12, 5, 3, 14, 0).unwrap();
        let made = follow_ups(client)
            .schedule("cutoff-chain-ab-1", at, r#"{"cutoff_follow_up":{}}"#)
            .await
            .unwrap();
        assert_eq!(made, Scheduled::Created);
        let request = &seen.lock().unwrap()[0];
        assert_eq!(request.name(), Some("cutoff-chain-ab-1"));
        assert_eq!(request.group_name(), Some("cutoff-follow-ups"));
        assert_eq!(
            request.schedule_expression(),
            Some("at(2026-12-05T03:14:00)")
        );
        assert_eq!(request.schedule_expression_timezone(), Some("UTC"));
        assert_eq!(
            request.action_after_completion(),
            Some(&ActionAfterCompletion::Delete)
        );
        assert_eq!(
            request.flexible_time_window().map(|w| w.mode()),
            Some(&FlexibleTimeWindowMode::Off)
        );
        let target = request.target().unwrap();
        assert_eq!(
            target.arn(),
            "arn:aws:lambda:us-east-1:111122223333:function:cutoff-revoker"
        );
        assert_eq!(target.input(), Some(r#"{"cutoff_follow_up":{}}"#));
        assert!(target.dead_letter_config().is_some());
    }

    #[tokio::test]
    async fn a_schedule_already_made_is_not_an_error_and_others_are_classified() {
        let conflict = mock!(Scheduler::create_schedule)
            .match_requests(|r| r.name() == Some("twice"))
            .then_error(|| {
                CreateScheduleError::ConflictException(
                    aws_sdk_scheduler::types::error::ConflictException::builder()
                        .message("exists")
                        .build()
                        .unwrap(),
                )
            });
        let throttled = mock!(Scheduler::create_schedule).then_http_response(|| {
            aws_smithy_runtime_api::client::orchestrator::HttpResponse::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
                ),
            )
        });
        let client = mock_client!(
            aws_sdk_scheduler,
            RuleMode::MatchAny,
            [&conflict, &throttled],
            |c| c.retry_config(RetryConfig::disabled())
        );
        let follow_ups = follow_ups(client);
        let at = Utc.with_ymd_and_hms(2026, 12, 5, 3, 14, 0).unwrap();
        assert_eq!(
            follow_ups.schedule("twice", at, "{}").await.unwrap(),
            Scheduled::AlreadyThere
        );
        let err = follow_ups.schedule("other", at, "{}").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Throttled);
    }
}
