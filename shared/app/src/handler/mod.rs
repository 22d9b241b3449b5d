//! What each Lambda does with its input. Every function has the same shape: its
//! handler is built once per cold start from the environment and the SDK config
//! (`from_env`: a bad setting fails the start, never the hundredth invocation), then
//! [`Handler::handle`]s each event. A function's `main.rs` is [`run`] of its handler.

pub mod approval;
pub mod intake;
pub mod notifier;
pub mod revoker;
pub mod sweeper;

use std::future::Future;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

use cutoff_aws::AwsError;
use cutoff_domain::json::Payload;
use cutoff_domain::settings::ConfigError;

/// Why a function could not start: its settings, or what it had to ask AWS first.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// One Lambda function's work.
pub trait Handler: Send + Sync {
    /// Which function this is: the `Function` dimension of its metrics.
    const FUNCTION: cutoff_domain::metrics::Function;

    /// One invocation: the answer Lambda returns, or why it failed.
    fn handle(
        &self,
        event: LambdaEvent<Payload>,
    ) -> impl Future<Output = Result<Value, Failure>> + Send;
}

/// Why an invocation failed, and whether running the event again can help.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// A dependency failed (throttled, unreachable, refused for now): Lambda's retry
    /// may succeed. Otherwise the event itself can never succeed.
    pub retry: bool,
    pub message: String,
}

impl Failure {
    /// Running the event again may succeed.
    pub fn retry(err: impl std::fmt::Display) -> Self {
        Self {
            retry: true,
            message: err.to_string(),
        }
    }

    /// The event can never succeed as it is.
    pub fn refused(err: impl std::fmt::Display) -> Self {
        Self {
            retry: false,
            message: err.to_string(),
        }
    }
}

/// Lambda sees which it was in the error's type (the `errorType` of the invocation's
/// error, of its failure destination record, and of the dead-lettered event).
impl From<Failure> for Diagnostic {
    fn from(failure: Failure) -> Self {
        Diagnostic {
            error_type: if failure.retry {
                "Retryable"
            } else {
                "Refused"
            }
            .to_owned(),
            error_message: failure.message,
        }
    }
}

/// Runs `handler` on the Lambda Runtime API until the execution environment ends.
///
/// A refused event fails the invocation too: Lambda's retries of it are wasted, but
/// returning success would drop it, and failing is what sends it to the function's
/// dead-letter queue, whose alarm tells someone. Nothing is lost.
///
/// Every invocation ends with its metrics line of retries and throttling answers
/// ([`crate::metrics::invocation`]), failed or not.
pub async fn run<H: Handler>(handler: H) -> Result<(), lambda_runtime::Error> {
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Payload>| async move {
        let request_id = event.context.request_id.clone();
        let before = cutoff_aws::retry::RetryTally::now();
        // Boxed: the handler's future nests every port's, deeper than the compiler's
        // layout limit once the runtime's layers wrap it; one allocation per event.
        let answer = Box::pin(handler.handle(event)).await.inspect_err(|failure| {
            tracing::error!(error = %failure.message, retry = failure.retry, "invocation failed");
        });
        let retries = cutoff_aws::retry::RetryTally::now().since(before);
        crate::metrics::emit(
            &[crate::metrics::invocation(H::FUNCTION, retries)],
            chrono::Utc::now(),
            &request_id,
        );
        answer
    }))
    .await
}

/// Whether a Lambda payload is an SQS batch: records that all say `eventSource`
/// `aws:sqs` (the revoker and the sweeper take SQS batches and direct invokes alike).
pub fn is_sqs_batch(payload: &serde_json::Value) -> bool {
    payload
        .get("Records")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|records| {
            !records.is_empty()
                && records.iter().all(|r| {
                    r.get("eventSource").and_then(serde_json::Value::as_str) == Some("aws:sqs")
                })
        })
}
