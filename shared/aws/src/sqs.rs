//! SQS: the FIFO request queue from intake to the revoker ([`RequestQueue`],
//! [`SdkQueue`]) and the sweep queue a run fans out through, one task per account
//! ([`SweepTasks`], [`SdkSweepQueue`]); their in-memory fakes are in `fake` (feature
//! `test-support`).

use std::future::Future;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{AwsError, ErrorKind, bound, classify};
use cutoff_domain::principal::Account;

const OP_SEND_TASKS: &str = "sqs:SendMessageBatch";

/// `sqs:SendMessage` on the FIFO request queue.
pub trait RequestQueue: Send + Sync {
    /// Sends one message. `group_id` keeps one principal's requests in order and on
    /// one consumer; `deduplication_id` drops a re-emitted finding within SQS's
    /// five-minute window.
    fn send(
        &self,
        body: &str,
        group_id: &str,
        deduplication_id: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// One account to sweep: the body of a sweep-queue message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepTask {
    pub run_id: String,
    pub account: Account,
    pub started_at: DateTime<Utc>,
    pub dry_run: bool,
}

/// `SendMessageBatch` on the sweep queue (authorized as `sqs:SendMessage`).
pub trait SweepTasks: Send + Sync {
    /// Sends every task (10 per call); an entry the queue rejects is an error.
    fn send_tasks(&self, tasks: &[SweepTask]) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// The FIFO request queue, through the SDK.
#[derive(Debug, Clone)]
pub struct SdkQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SdkQueue {
    /// A client of `config` for the queue at `queue_url`.
    pub fn from_config(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(aws_sdk_sqs::Client::new(config), queue_url)
    }

    /// `queue_url` is the FIFO queue's URL (`https://sqs.<region>.amazonaws.com/<account>/<name>.fifo`).
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

impl RequestQueue for SdkQueue {
    async fn send(
        &self,
        body: &str,
        group_id: &str,
        deduplication_id: &str,
    ) -> Result<(), AwsError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_group_id(group_id)
            .message_deduplication_id(deduplication_id)
            .send()
            .await
            .map(drop)
            .map_err(|e| {
                classify(
                    &e,
                    "sqs:SendMessage",
                    format!("on queue `{}`", self.queue_url),
                )
            })
    }
}

/// The sweep queue, through the SDK.
#[derive(Debug, Clone)]
pub struct SdkSweepQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SdkSweepQueue {
    /// A client of `config` for the sweep queue at `queue_url`.
    pub fn from_config(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(aws_sdk_sqs::Client::new(config), queue_url)
    }

    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

impl SweepTasks for SdkSweepQueue {
    async fn send_tasks(&self, tasks: &[SweepTask]) -> Result<(), AwsError> {
        let context = || format!("on queue `{}`", self.queue_url);
        for (chunk_index, chunk) in tasks.chunks(10).enumerate() {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, task) in chunk.iter().enumerate() {
                let body = serde_json::to_string(task).map_err(|e| {
                    AwsError::new(
                        ErrorKind::Malformed,
                        OP_SEND_TASKS,
                        context(),
                        e.to_string(),
                    )
                })?;
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(format!("t{i}"))
                    .message_body(body)
                    .build()
                    .map_err(|e| {
                        AwsError::new(
                            ErrorKind::Malformed,
                            OP_SEND_TASKS,
                            context(),
                            e.to_string(),
                        )
                    })?;
                entries.push(entry);
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify(&e, OP_SEND_TASKS, context()))?;
            if let Some(failed) = out.failed().first() {
                let kind = if failed.sender_fault() {
                    ErrorKind::Malformed
                } else {
                    ErrorKind::Transient
                };
                return Err(AwsError::new(
                    kind,
                    OP_SEND_TASKS,
                    context(),
                    bound(format!(
                        "{} of {} entries of batch {chunk_index} rejected: {}: {}",
                        out.failed().len(),
                        chunk.len(),
                        failed.code(),
                        failed.message().unwrap_or("no message")
                    )),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod fake {
    //! In-memory request and sweep queues.

    use std::sync::{Arc, Mutex, MutexGuard};

    use crate::error::{AwsError, ErrorKind, InjectedFailures};

    use super::{RequestQueue, SweepTask, SweepTasks};

    /// Records the requests sent to the queue; fails the next calls on demand.
    #[derive(Debug, Clone, Default)]
    pub struct FakeQueue(pub Arc<Mutex<QueueState>>);

    #[derive(Debug, Default)]
    pub struct QueueState {
        /// (body, group id, deduplication id)
        pub queued: Vec<(String, String, String)>,
        pub failures: InjectedFailures,
    }

    impl FakeQueue {
        pub fn state(&self) -> MutexGuard<'_, QueueState> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }

        pub fn fail(&self, action: &'static str, kinds: &[ErrorKind]) {
            self.state().failures.plan(action, kinds);
        }

        fn begin(&self, action: &'static str) -> Result<MutexGuard<'_, QueueState>, AwsError> {
            let mut state = self.state();
            state.failures.take(action, "in the fake")?;
            Ok(state)
        }
    }

    impl RequestQueue for FakeQueue {
        async fn send(
            &self,
            body: &str,
            group_id: &str,
            deduplication_id: &str,
        ) -> Result<(), AwsError> {
            let mut state = self.begin("SendMessage")?;
            // SQS FIFO drops a message whose deduplication id it has seen (five minutes).
            if !state.queued.iter().any(|(_, _, d)| d == deduplication_id) {
                state.queued.push((
                    body.to_owned(),
                    group_id.to_owned(),
                    deduplication_id.to_owned(),
                ));
            }
            Ok(())
        }
    }

    /// Records the sweep tasks sent; fails the next calls on demand.
    #[derive(Debug, Clone, Default)]
    pub struct FakeSweepQueue(pub Arc<Mutex<SweepQueueState>>);

    #[derive(Debug, Default)]
    pub struct SweepQueueState {
        pub sweep_tasks: Vec<SweepTask>,
        pub failures: InjectedFailures,
    }

    impl FakeSweepQueue {
        pub fn state(&self) -> MutexGuard<'_, SweepQueueState> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }

        pub fn fail(&self, action: &'static str, kinds: &[ErrorKind]) {
            self.state().failures.plan(action, kinds);
        }

        fn begin(&self, action: &'static str) -> Result<MutexGuard<'_, SweepQueueState>, AwsError> {
            let mut state = self.state();
            state.failures.take(action, "in the fake")?;
            Ok(state)
        }
    }

    impl SweepTasks for FakeSweepQueue {
        async fn send_tasks(&self, tasks: &[SweepTask]) -> Result<(), AwsError> {
            self.begin("SendMessageBatch")?
                .sweep_tasks
                .extend(tasks.iter().cloned());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::retry::RetryConfig;
    use aws_sdk_sqs::Client as Sqs;
    use aws_sdk_sqs::operation::send_message::SendMessageOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    /// A mocked client with SDK retries off, so that every response reaches our code.
    macro_rules! mocked {
        ($sdk:ident, $rules:expr) => {
            mock_client!($sdk, RuleMode::Sequential, $rules, |c| c
                .retry_config(RetryConfig::disabled()))
        };
    }

    const QUEUE_URL: &str = "https://sqs.eu-west-1.amazonaws.com/111122223333/cutoff-requests.fifo";

    type Headers = &'static [(&'static str, &'static str)];

    fn response(status: u16, body: &str, headers: &[(&'static str, &'static str)]) -> HttpResponse {
        let mut response =
            HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body));
        for (name, value) in headers {
            response.headers_mut().insert(*name, *value);
        }
        response
    }

    /// An awsJson error, as SQS sends it.
    fn json_error(code: &str, message: &str) -> String {
        format!(r#"{{"__type":"{code}","message":"{message}"}}"#)
    }

    #[tokio::test]
    async fn send_passes_body_group_and_deduplication_ids() {
        let rule = mock!(Sqs::send_message)
            .match_requests(|r| {
                r.queue_url() == Some(QUEUE_URL)
                    && r.message_body() == Some(r#"{"action":"revoke"}"#)
                    && r.message_group_id() == Some("111122223333/role/payments-api")
                    && r.message_deduplication_id() == Some("f1-2026-11-23T12:00:00Z")
            })
            .then_output(|| SendMessageOutput::builder().message_id("m-1").build());
        let queue = SdkQueue::new(mocked!(aws_sdk_sqs, [&rule]), QUEUE_URL);
        queue
            .send(
                r#"{"action":"revoke"}"#,
                "111122223333/role/payments-api",
                "f1-2026-11-23T12:00:00Z",
            )
            .await
            .unwrap();
        assert_eq!(rule.num_calls(), 1);
        assert_eq!(queue.queue_url(), QUEUE_URL);
    }

    #[tokio::test]
    async fn send_failures_are_classified_and_name_the_queue() {
        let cases: [(u16, String, Headers, ErrorKind); 6] = [
            (
                400,
                json_error("com.amazonaws.sqs#RequestThrottled", "Rate exceeded"),
                &[("x-amzn-query-error", "RequestThrottled;Sender")],
                ErrorKind::Throttled,
            ),
            (
                500,
                json_error(
                    "com.amazonaws.sqs#InternalError",
                    "We encountered an internal error",
                ),
                &[],
                ErrorKind::Transient,
            ),
            (503, String::new(), &[], ErrorKind::Transient),
            (
                400,
                json_error(
                    "com.amazon.coral.service#AccessDeniedException",
                    "not authorized",
                ),
                &[],
                ErrorKind::AccessDenied,
            ),
            (
                400,
                json_error(
                    "com.amazonaws.sqs#QueueDoesNotExist",
                    "The specified queue does not exist.",
                ),
                &[(
                    "x-amzn-query-error",
                    "AWS.SimpleQueueService.NonExistentQueue;Sender",
                )],
                ErrorKind::NotFound,
            ),
            (
                400,
                json_error("com.amazonaws.sqs#KmsThrottled", "KMS throttled"),
                &[],
                ErrorKind::Throttled,
            ),
        ];
        for (status, body, headers, kind) in cases {
            let rule = mock!(Sqs::send_message)
                .then_http_response(move || response(status, &body, headers));
            let queue = SdkQueue::new(mocked!(aws_sdk_sqs, [&rule]), QUEUE_URL);
            let err = queue.send("secret body", "g", "d").await.unwrap_err();
            assert_eq!(err.kind, kind, "{status}: {err}");
            assert_eq!(err.operation, "sqs:SendMessage");
            assert_eq!(err.context, format!("on queue `{QUEUE_URL}`"));
            assert!(!err.to_string().contains("secret body"), "{err}");
        }
    }
}
