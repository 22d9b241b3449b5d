//! SDK implementations of the messaging traits in [`super`]: [`SdkQueue`] (SQS),
//! [`SdkOutcomeBus`] (EventBridge), [`SdkNotifications`] (SNS) and [`SdkFindings`]
//! (Security Hub).
//!
//! As in [`super::sdk`], clients are expected to have SDK retries disabled (as
//! [`super::config::load_sdk_config`] builds them): [`super::retry::with_retries`] is the
//! one place that retries. Each method makes one API call unless its documentation
//! says otherwise. Batch APIs that answer 200 while rejecting some entries
//! (`PutEvents`, `BatchUpdateFindings`) are checked entry by entry: a rejected entry
//! is an error, never a silent drop.

use std::borrow::Cow;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_securityhub::types::{
    AwsSecurityFindingIdentifier, NoteUpdate, WorkflowStatus as HubWorkflowStatus, WorkflowUpdate,
};
use aws_sdk_sns::types::MessageAttributeValue;

use super::error::{bound, classify, entry_message};
use cutoff_domain::notify::SnsMessage;

use super::{
    AwsError, ErrorKind, FindingsUpdater, Notifications, OutcomeBus, RequestQueue, WorkflowStatus,
};
use cutoff_domain::outcome::Outcome;

/// The `source` of every outcome event on the bus (what rules match on).
pub const OUTCOME_SOURCE: &str = "cutoff";
/// The `detail-type` of every outcome event on the bus.
pub const OUTCOME_DETAIL_TYPE: &str = "Revocation Outcome";

const OP_PUT_EVENTS: &str = "events:PutEvents";
/// `PutEvents` takes at most 10 entries per call.
const MAX_EVENTS_PER_CALL: usize = 10;
/// EventBridge bounds the size of one entry, and the total of one call's entries, to
/// 256 KB (Source, DetailType and Detail in UTF-8 bytes; we set no Time or Resources).
const MAX_EVENTS_BYTES: usize = 256 * 1024;

/// Security Hub accepts notes of at most 512 characters.
const MAX_NOTE_CHARS: usize = 512;
/// The `UpdatedBy` of cutoff's notes.
const NOTE_AUTHOR: &str = "cutoff";

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

/// The custom outcome bus, through the SDK.
#[derive(Debug, Clone)]
pub struct SdkOutcomeBus {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
}

impl SdkOutcomeBus {
    /// A client of `config` for the bus `bus_name`.
    pub fn from_config(config: &aws_config::SdkConfig, bus_name: impl Into<String>) -> Self {
        Self::new(aws_sdk_eventbridge::Client::new(config), bus_name)
    }

    /// `bus_name` is the name (or ARN) of the custom event bus.
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }

    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }

    fn context(&self) -> String {
        format!("on event bus `{}`", self.bus_name)
    }

    /// Publishes one event of cutoff's (`source` cutoff) with this detail-type; a
    /// rejected entry is an error.
    pub(crate) async fn put_one(&self, detail_type: &str, detail: String) -> Result<(), AwsError> {
        let size = OUTCOME_SOURCE.len() + detail_type.len() + detail.len();
        if size > MAX_EVENTS_BYTES {
            return Err(AwsError::new(
                ErrorKind::Malformed,
                OP_PUT_EVENTS,
                self.context(),
                format!(
                    "the event is {size} bytes, over eventbridge's {MAX_EVENTS_BYTES}-byte entry limit"
                ),
            ));
        }
        let entry = PutEventsRequestEntry::builder()
            .source(OUTCOME_SOURCE)
            .detail_type(detail_type)
            .detail(detail)
            .event_bus_name(&self.bus_name)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| classify(&e, OP_PUT_EVENTS, self.context()))?;
        match out.entries().iter().find(|e| e.error_code().is_some()) {
            Some(rejected) => Err(AwsError::new(
                rejected
                    .error_code()
                    .map_or(ErrorKind::Transient, ErrorKind::from_code),
                OP_PUT_EVENTS,
                self.context(),
                bound(entry_message(
                    rejected.error_code(),
                    rejected.error_message(),
                )),
            )),
            None if out.failed_entry_count() > 0 => Err(AwsError::new(
                ErrorKind::Transient,
                OP_PUT_EVENTS,
                self.context(),
                "the entry was rejected and no entry says why",
            )),
            None => Ok(()),
        }
    }

    /// One entry per outcome, with its size as EventBridge counts it.
    fn entries(
        &self,
        outcomes: &[Outcome],
    ) -> Result<Vec<(PutEventsRequestEntry, usize)>, AwsError> {
        let malformed = |message: String| {
            AwsError::new(ErrorKind::Malformed, OP_PUT_EVENTS, self.context(), message)
        };
        outcomes
            .iter()
            .enumerate()
            .map(|(i, outcome)| {
                let detail = serde_json::to_string(outcome)
                    .map_err(|e| malformed(format!("outcome {i} cannot be serialized: {e}")))?;
                let size = OUTCOME_SOURCE.len() + OUTCOME_DETAIL_TYPE.len() + detail.len();
                if size > MAX_EVENTS_BYTES {
                    return Err(malformed(format!(
                        "outcome {i} is {size} bytes, over eventbridge's {MAX_EVENTS_BYTES}-byte \
                         entry limit"
                    )));
                }
                let entry = PutEventsRequestEntry::builder()
                    .source(OUTCOME_SOURCE)
                    .detail_type(OUTCOME_DETAIL_TYPE)
                    .detail(detail)
                    .event_bus_name(&self.bus_name)
                    .build();
                Ok((entry, size))
            })
            .collect()
    }
}

/// Consecutive batches of at most [`MAX_EVENTS_PER_CALL`] entries and
/// [`MAX_EVENTS_BYTES`] bytes, in order. Every entry is at most the byte limit.
fn batches<T>(entries: Vec<(T, usize)>) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for (entry, size) in entries {
        match out.last_mut() {
            Some(batch)
                if batch.len() < MAX_EVENTS_PER_CALL && bytes + size <= MAX_EVENTS_BYTES =>
            {
                batch.push(entry);
                bytes += size;
            }
            _ => {
                out.push(vec![entry]);
                bytes = size;
            }
        }
    }
    out
}

impl OutcomeBus for SdkOutcomeBus {
    /// One `PutEvents` call per 10 outcomes (fewer when they are large), in order;
    /// none for an empty slice. Every outcome is serialized and size-checked before
    /// the first call, so an oversized one fails without publishing anything.
    ///
    /// A call that fails, or that rejects any entry, is an error; the outcomes of
    /// earlier calls stay published, so a retry publishes them again (EventBridge
    /// delivery is at least once anyway: consumers already tolerate duplicates).
    async fn publish(&self, outcomes: &[Outcome]) -> Result<(), AwsError> {
        let total = outcomes.len();
        let mut published = 0;
        for batch in batches(self.entries(outcomes)?) {
            let sent = batch.len();
            let out = self
                .client
                .put_events()
                .set_entries(Some(batch))
                .send()
                .await
                .map_err(|e| classify(&e, OP_PUT_EVENTS, self.context()))?;
            let rejected: Vec<_> = out
                .entries()
                .iter()
                .filter(|entry| entry.error_code().is_some())
                .collect();
            let failed = usize::try_from(out.failed_entry_count())
                .unwrap_or(0)
                .max(rejected.len());
            if failed > 0 {
                // A fatal rejection decides the kind: retrying cannot fix it. An
                // entry count with no entry saying why is a garbled answer.
                let kinds = rejected
                    .iter()
                    .filter_map(|e| e.error_code())
                    .map(ErrorKind::from_code);
                let kind = kinds
                    .clone()
                    .find(|k| !k.is_retryable())
                    .or_else(|| kinds.clone().next())
                    .unwrap_or(ErrorKind::Transient);
                let first = rejected
                    .iter()
                    .find(|e| e.error_code().map(ErrorKind::from_code) == Some(kind))
                    .map_or_else(
                        || "no entry says why".to_owned(),
                        |e| entry_message(e.error_code(), e.error_message()),
                    );
                return Err(AwsError::new(
                    kind,
                    OP_PUT_EVENTS,
                    self.context(),
                    bound(format!(
                        "{failed} of {sent} entries rejected ({published} of {total} outcomes \
                         published by earlier calls): {first}"
                    )),
                ));
            }
            published += sent;
        }
        Ok(())
    }
}

/// SNS topics, through the SDK.
#[derive(Debug, Clone)]
pub struct SdkNotifications {
    client: aws_sdk_sns::Client,
}

impl SdkNotifications {
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_sns::Client::new(config))
    }

    pub fn new(client: aws_sdk_sns::Client) -> Self {
        Self { client }
    }
}

impl Notifications for SdkNotifications {
    /// An empty subject is left out (SNS rejects an empty `Subject`).
    async fn publish(&self, topic_arn: &str, message: &SnsMessage) -> Result<String, AwsError> {
        const OP: &str = "sns:Publish";
        let context = || format!("on topic `{topic_arn}`");
        let mut request = self
            .client
            .publish()
            .topic_arn(topic_arn)
            .message(&message.body);
        if !message.subject.is_empty() {
            request = request.subject(&message.subject);
        }
        for (name, value) in &message.attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| {
                    AwsError::new(
                        ErrorKind::Malformed,
                        OP,
                        context(),
                        format!("message attribute `{name}`: {e}"),
                    )
                })?;
            request = request.message_attributes(name, value);
        }
        let out = request
            .send()
            .await
            .map_err(|e| classify(&e, OP, context()))?;
        out.message_id().map(str::to_owned).ok_or_else(|| {
            AwsError::new(
                ErrorKind::Malformed,
                OP,
                context(),
                "the response has no message id",
            )
        })
    }
}

/// Security Hub findings, through the SDK.
#[derive(Debug, Clone)]
pub struct SdkFindings {
    client: aws_sdk_securityhub::Client,
}

impl SdkFindings {
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_securityhub::Client::new(config))
    }

    pub fn new(client: aws_sdk_securityhub::Client) -> Self {
        Self { client }
    }
}

/// `note`, cut on a character boundary to Security Hub's 512 characters, the last
/// one then an ellipsis.
fn note_text(note: &str) -> Cow<'_, str> {
    if note.chars().nth(MAX_NOTE_CHARS).is_none() {
        return Cow::Borrowed(note);
    }
    let cut = note
        .char_indices()
        .nth(MAX_NOTE_CHARS - 1)
        .map_or(note.len(), |(i, _)| i);
    Cow::Owned(format!("{}…", &note[..cut]))
}

impl FindingsUpdater for SdkFindings {
    /// An empty note is left out (Security Hub requires a non-empty `Text`).
    async fn update_finding(
        &self,
        finding_id: &str,
        product_arn: &str,
        status: WorkflowStatus,
        note: &str,
    ) -> Result<(), AwsError> {
        const OP: &str = "securityhub:BatchUpdateFindings";
        let context = || format!("on finding `{finding_id}`");
        let status = match status {
            WorkflowStatus::Notified => HubWorkflowStatus::Notified,
            WorkflowStatus::Resolved => HubWorkflowStatus::Resolved,
        };
        let mut request = self
            .client
            .batch_update_findings()
            .finding_identifiers(
                AwsSecurityFindingIdentifier::builder()
                    .id(finding_id)
                    .product_arn(product_arn)
                    .build(),
            )
            .workflow(WorkflowUpdate::builder().status(status).build());
        if !note.is_empty() {
            request = request.note(
                NoteUpdate::builder()
                    .text(note_text(note))
                    .updated_by(NOTE_AUTHOR)
                    .build(),
            );
        }
        let out = request
            .send()
            .await
            .map_err(|e| classify(&e, OP, context()))?;
        match out.unprocessed_findings().first() {
            None => Ok(()),
            Some(unprocessed) => {
                // Without a code the answer is garbled: worth another try.
                let kind = unprocessed
                    .error_code()
                    .map_or(ErrorKind::Transient, ErrorKind::from_code);
                Err(AwsError::new(
                    kind,
                    OP,
                    context(),
                    bound(format!(
                        "the finding was not updated: {}",
                        entry_message(unprocessed.error_code(), unprocessed.error_message())
                    )),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use aws_config::retry::RetryConfig;
    use aws_sdk_eventbridge::Client as Events;
    use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    use aws_sdk_securityhub::Client as Hub;
    use aws_sdk_securityhub::operation::batch_update_findings::BatchUpdateFindingsOutput;
    use aws_sdk_securityhub::types::BatchUpdateFindingsUnprocessedFinding;
    use aws_sdk_sns::Client as Sns;
    use aws_sdk_sns::operation::publish::PublishOutput;
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
    const BUS: &str = "cutoff-outcomes";
    const TOPIC: &str = "arn:aws:sns:eu-west-1:111122223333:payments";
    const FINDING: &str = "arn:aws:guardduty:eu-west-1:111122223333:detector/d1/finding/f1";
    const PRODUCT: &str = "arn:aws:securityhub:eu-west-1::product/aws/guardduty";

    type Headers = &'static [(&'static str, &'static str)];
    /// Per entry: accepted, or rejected with (code, message).
    type Rejections = Vec<Option<(&'static str, &'static str)>>;

    fn response(status: u16, body: &str, headers: &[(&'static str, &'static str)]) -> HttpResponse {
        let mut response =
            HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body));
        for (name, value) in headers {
            response.headers_mut().insert(*name, *value);
        }
        response
    }

    /// An awsJson error (SQS, EventBridge) or restJson error (Security Hub).
    fn json_error(code: &str, message: &str) -> String {
        format!(r#"{{"__type":"{code}","message":"{message}"}}"#)
    }

    /// An awsQuery error (SNS).
    fn query_error(code: &str, message: &str) -> String {
        format!(
            "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\
             <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>4b1f7c52-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        )
    }

    fn outcome(n: usize) -> Outcome {
        Outcome::invalid_request(format!("request {n}"))
    }

    // ---- SQS ----

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

    // ---- EventBridge ----

    fn accepted(n: usize) -> PutEventsOutput {
        let mut out = PutEventsOutput::builder().failed_entry_count(0);
        for i in 0..n {
            out = out.entries(
                PutEventsResultEntry::builder()
                    .event_id(format!("e-{i}"))
                    .build(),
            );
        }
        out.build()
    }

    #[tokio::test]
    async fn publish_sends_source_detail_type_bus_and_the_outcome_as_json() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rule = mock!(Events::put_events).then_compute_output({
            let seen = seen.clone();
            move |r| {
                seen.lock().unwrap().extend(r.entries().iter().cloned());
                accepted(r.entries().len())
            }
        });
        let bus = SdkOutcomeBus::new(mocked!(aws_sdk_eventbridge, [&rule]), BUS);
        let outcome = outcome(1);
        bus.publish(std::slice::from_ref(&outcome)).await.unwrap();
        assert_eq!(rule.num_calls(), 1);
        let seen = seen.lock().unwrap();
        let [entry] = seen.as_slice() else {
            panic!("one entry expected: {seen:?}")
        };
        assert_eq!(entry.source(), Some("cutoff"));
        assert_eq!(entry.detail_type(), Some("Revocation Outcome"));
        assert_eq!(entry.event_bus_name(), Some(BUS));
        let detail: Outcome = serde_json::from_str(entry.detail().unwrap()).unwrap();
        assert_eq!(detail, outcome);
        assert!(entry.time().is_none() && entry.resources().is_empty());
    }

    #[tokio::test]
    async fn publish_sends_ten_entries_per_call_in_order_and_nothing_for_no_outcomes() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let rule = mock!(Events::put_events).then_compute_output({
            let calls = calls.clone();
            move |r| {
                let details: Vec<Outcome> = r
                    .entries()
                    .iter()
                    .map(|e| serde_json::from_str(e.detail().unwrap()).unwrap())
                    .collect();
                let n = details.len();
                calls.lock().unwrap().push(details);
                accepted(n)
            }
        });
        let bus = SdkOutcomeBus::new(
            mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&rule], |c| c
                .retry_config(RetryConfig::disabled())),
            BUS,
        );
        bus.publish(&[]).await.unwrap();
        assert_eq!(rule.num_calls(), 0);

        let outcomes: Vec<_> = (0..23).map(outcome).collect();
        bus.publish(&outcomes).await.unwrap();
        let calls = calls.lock().unwrap();
        let sizes: Vec<_> = calls.iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 3]);
        assert_eq!(calls.concat(), outcomes);
    }

    #[tokio::test]
    async fn publish_keeps_each_call_under_the_byte_limit() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let rule = mock!(Events::put_events).then_compute_output({
            let sizes = sizes.clone();
            move |r| {
                let bytes: usize = r
                    .entries()
                    .iter()
                    .map(|e| {
                        e.source().unwrap().len()
                            + e.detail_type().unwrap().len()
                            + e.detail().unwrap().len()
                    })
                    .sum();
                sizes.lock().unwrap().push((r.entries().len(), bytes));
                accepted(r.entries().len())
            }
        });
        let bus = SdkOutcomeBus::new(
            mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&rule], |c| c
                .retry_config(RetryConfig::disabled())),
            BUS,
        );
        // About 100 KB each: two per call.
        let outcomes: Vec<_> = (0..5)
            .map(|i| Outcome::invalid_request(format!("{i}{}", "x".repeat(50_000))))
            .collect();
        bus.publish(&outcomes).await.unwrap();
        let sizes = sizes.lock().unwrap();
        let counts: Vec<_> = sizes.iter().map(|(n, _)| *n).collect();
        assert_eq!(counts, [2, 2, 1]);
        assert!(
            sizes.iter().all(|(_, bytes)| *bytes <= MAX_EVENTS_BYTES),
            "{sizes:?}"
        );
    }

    #[tokio::test]
    async fn an_oversized_outcome_is_malformed_and_nothing_is_sent() {
        let rule = mock!(Events::put_events).then_output(|| accepted(1));
        let bus = SdkOutcomeBus::new(mocked!(aws_sdk_eventbridge, [&rule]), BUS);
        let outcomes = [outcome(0), Outcome::invalid_request("x".repeat(140 * 1024))];
        let err = bus.publish(&outcomes).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Malformed);
        assert_eq!(err.operation, "events:PutEvents");
        assert!(err.message.starts_with("outcome 1 is "), "{err}");
        assert_eq!(rule.num_calls(), 0);
    }

    fn partial(codes: &[Option<(&str, &str)>]) -> PutEventsOutput {
        let mut failed = 0;
        let mut out = PutEventsOutput::builder();
        for (i, code) in codes.iter().enumerate() {
            out = out.entries(match code {
                None => PutEventsResultEntry::builder()
                    .event_id(format!("e-{i}"))
                    .build(),
                Some((code, message)) => {
                    failed += 1;
                    PutEventsResultEntry::builder()
                        .error_code(*code)
                        .error_message(*message)
                        .build()
                }
            });
        }
        out.failed_entry_count(failed).build()
    }

    #[tokio::test]
    async fn a_rejected_entry_is_an_error_of_its_code() {
        let cases: [(Rejections, ErrorKind, &str); 4] = [
            (
                vec![None, Some(("ThrottlingException", "Rate exceeded")), None],
                ErrorKind::Throttled,
                "ThrottlingException: Rate exceeded",
            ),
            (
                vec![Some(("InternalException", "Internal error")), None, None],
                ErrorKind::Transient,
                "InternalException",
            ),
            // A fatal rejection wins over a retryable one.
            (
                vec![
                    Some(("ThrottlingException", "Rate exceeded")),
                    Some((
                        "NotAuthorizedForSourceException",
                        "Not authorized for the source",
                    )),
                    None,
                ],
                ErrorKind::AccessDenied,
                "NotAuthorizedForSourceException",
            ),
            (
                vec![None, None, Some(("MalformedDetail", "Detail is malformed"))],
                ErrorKind::Malformed,
                "MalformedDetail",
            ),
        ];
        for (codes, kind, text) in cases {
            let n = codes.len();
            let rule = mock!(Events::put_events).then_output(move || partial(&codes));
            let bus = SdkOutcomeBus::new(mocked!(aws_sdk_eventbridge, [&rule]), BUS);
            let outcomes: Vec<_> = (0..n).map(outcome).collect();
            let err = bus.publish(&outcomes).await.unwrap_err();
            assert_eq!(err.kind, kind, "{err}");
            assert_eq!(err.operation, "events:PutEvents");
            assert_eq!(err.context, format!("on event bus `{BUS}`"));
            assert!(err.message.contains(text), "{err}");
            assert_eq!(rule.num_calls(), 1);
        }
    }

    #[tokio::test]
    async fn a_failed_entry_count_without_entry_codes_is_still_an_error() {
        let rule = mock!(Events::put_events)
            .then_output(|| PutEventsOutput::builder().failed_entry_count(1).build());
        let bus = SdkOutcomeBus::new(mocked!(aws_sdk_eventbridge, [&rule]), BUS);
        let err = bus.publish(&[outcome(0)]).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient, "{err}");
        assert!(err.message.starts_with("1 of 1 entries rejected"), "{err}");
    }

    #[tokio::test]
    async fn a_rejection_in_a_later_call_stops_and_says_what_was_published() {
        let rule = mock!(Events::put_events)
            .sequence()
            .output(|| accepted(10))
            .output(|| partial(&[None, Some(("ThrottlingException", "Rate exceeded")), None]))
            .build();
        let bus = SdkOutcomeBus::new(mocked!(aws_sdk_eventbridge, [&rule]), BUS);
        let outcomes: Vec<_> = (0..13).map(outcome).collect();
        let err = bus.publish(&outcomes).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Throttled);
        assert!(
            err.message.starts_with(
                "1 of 3 entries rejected (10 of 13 outcomes published by earlier calls)"
            ),
            "{err}"
        );
        assert_eq!(rule.num_calls(), 2);
    }

    #[tokio::test]
    async fn put_events_failures_are_classified() {
        let cases = [
            (400, "ThrottlingException", ErrorKind::Throttled),
            (500, "InternalException", ErrorKind::Transient),
            (400, "AccessDeniedException", ErrorKind::AccessDenied),
            (400, "ResourceNotFoundException", ErrorKind::NotFound),
            (400, "ValidationException", ErrorKind::Malformed),
        ];
        for (status, code, kind) in cases {
            let rule = mock!(Events::put_events).then_http_response(move || {
                response(
                    status,
                    &json_error(code, "Event bus cutoff-outcomes does not exist."),
                    &[("content-type", "application/x-amz-json-1.1")],
                )
            });
            let bus = SdkOutcomeBus::new(mocked!(aws_sdk_eventbridge, [&rule]), BUS);
            let err = bus.publish(&[outcome(0)]).await.unwrap_err();
            assert_eq!(err.kind, kind, "{code}: {err}");
            assert!(err.message.starts_with(code), "{err}");
            assert!(
                !err.message.contains("request 0"),
                "no outcome in messages: {err}"
            );
        }
    }

    // ---- SNS ----

    fn message() -> SnsMessage {
        SnsMessage {
            subject: "cutoff: sessions of payments-api revoked".to_owned(),
            body: "All sessions issued before 2026-11-23T12:00:00Z are denied.".to_owned(),
            attributes: vec![
                ("status".to_owned(), "applied".to_owned()),
                ("account".to_owned(), "111122223333".to_owned()),
            ],
        }
    }

    #[tokio::test]
    async fn publish_sends_subject_body_and_string_attributes() {
        let rule = mock!(Sns::publish)
            .match_requests(|r| {
                let attributes = r.message_attributes().cloned().unwrap_or_default();
                let string = |name: &str| {
                    attributes
                        .get(name)
                        .filter(|v| v.data_type() == "String")
                        .and_then(|v| v.string_value())
                        .map(str::to_owned)
                };
                r.topic_arn() == Some(TOPIC)
                    && r.subject() == Some("cutoff: sessions of payments-api revoked")
                    && r.message()
                        == Some("All sessions issued before 2026-11-23T12:00:00Z are denied.")
                    && attributes.len() == 2
                    && string("status").as_deref() == Some("applied")
                    && string("account").as_deref() == Some("111122223333")
            })
            .then_output(|| PublishOutput::builder().message_id("msg-1").build());
        let sns = SdkNotifications::new(mocked!(aws_sdk_sns, [&rule]));
        assert_eq!(sns.publish(TOPIC, &message()).await.unwrap(), "msg-1");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn an_empty_subject_and_no_attributes_are_left_out() {
        let rule = mock!(Sns::publish)
            .match_requests(|r| r.subject().is_none() && r.message_attributes().is_none())
            .then_output(|| PublishOutput::builder().message_id("msg-2").build());
        let sns = SdkNotifications::new(mocked!(aws_sdk_sns, [&rule]));
        let message = SnsMessage {
            subject: String::new(),
            body: "b".to_owned(),
            attributes: Vec::new(),
        };
        assert_eq!(sns.publish(TOPIC, &message).await.unwrap(), "msg-2");
    }

    #[tokio::test]
    async fn a_publish_without_message_id_is_malformed() {
        let rule = mock!(Sns::publish).then_output(|| PublishOutput::builder().build());
        let sns = SdkNotifications::new(mocked!(aws_sdk_sns, [&rule]));
        let err = sns.publish(TOPIC, &message()).await.unwrap_err();
        assert_eq!(
            (err.kind, err.operation),
            (ErrorKind::Malformed, "sns:Publish")
        );
    }

    #[tokio::test]
    async fn publish_failures_are_classified_and_name_the_topic() {
        let cases = [
            (400, "Throttling", ErrorKind::Throttled),
            (429, "Throttled", ErrorKind::Throttled),
            (500, "InternalError", ErrorKind::Transient),
            (503, "ServiceUnavailable", ErrorKind::Transient),
            (403, "AuthorizationError", ErrorKind::AccessDenied),
            (404, "NotFound", ErrorKind::NotFound),
            (400, "InvalidParameter", ErrorKind::Malformed),
        ];
        for (status, code, kind) in cases {
            let rule = mock!(Sns::publish).then_http_response(move || {
                response(status, &query_error(code, "Topic does not exist"), &[])
            });
            let sns = SdkNotifications::new(mocked!(aws_sdk_sns, [&rule]));
            let err = sns.publish(TOPIC, &message()).await.unwrap_err();
            assert_eq!(err.kind, kind, "{code}: {err}");
            assert_eq!(err.operation, "sns:Publish");
            assert_eq!(err.context, format!("on topic `{TOPIC}`"));
            assert!(!err.to_string().contains("are denied"), "{err}");
        }
    }

    // ---- Security Hub ----

    #[tokio::test]
    async fn update_finding_sends_identifier_status_and_note() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rule = mock!(Hub::batch_update_findings).then_compute_output({
            let seen = seen.clone();
            move |r| {
                seen.lock().unwrap().push(r.clone());
                BatchUpdateFindingsOutput::builder().build()
            }
        });
        let hub = SdkFindings::new(mock_client!(
            aws_sdk_securityhub,
            RuleMode::MatchAny,
            [&rule],
            |c| c.retry_config(RetryConfig::disabled())
        ));
        hub.update_finding(FINDING, PRODUCT, WorkflowStatus::Notified, "owner alerted")
            .await
            .unwrap();
        hub.update_finding(FINDING, PRODUCT, WorkflowStatus::Resolved, &"é".repeat(600))
            .await
            .unwrap();
        hub.update_finding(FINDING, PRODUCT, WorkflowStatus::Resolved, &"a".repeat(512))
            .await
            .unwrap();
        hub.update_finding(FINDING, PRODUCT, WorkflowStatus::Resolved, "")
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4);
        for request in seen.iter() {
            let [id] = request.finding_identifiers() else {
                panic!("one identifier expected: {request:?}")
            };
            assert_eq!((id.id(), id.product_arn()), (Some(FINDING), Some(PRODUCT)));
        }
        let status = |i: usize| seen[i].workflow().and_then(|w| w.status()).cloned();
        assert_eq!(status(0), Some(HubWorkflowStatus::Notified));
        assert_eq!(status(1), Some(HubWorkflowStatus::Resolved));
        let note = |i: usize| seen[i].note().cloned();
        let first = note(0).unwrap();
        assert_eq!(
            (first.text(), first.updated_by()),
            (Some("owner alerted"), Some("cutoff"))
        );
        let cut = note(1).unwrap();
        let cut = cut.text().unwrap();
        assert_eq!(cut.chars().count(), 512);
        assert!(cut.starts_with("éé") && cut.ends_with("é…"), "{cut}");
        assert_eq!(note(2).unwrap().text(), Some("a".repeat(512).as_str()));
        assert!(note(3).is_none());
    }

    #[tokio::test]
    async fn an_unprocessed_finding_is_an_error_of_its_code() {
        let cases = [
            (Some("FindingNotFound"), ErrorKind::NotFound),
            (Some("ConcurrentUpdateError"), ErrorKind::Transient),
            (Some("InternalFailure"), ErrorKind::Transient),
            (Some("InvalidInput"), ErrorKind::Malformed),
            (None, ErrorKind::Transient),
        ];
        for (code, kind) in cases {
            let rule = mock!(Hub::batch_update_findings).then_output(move || {
                BatchUpdateFindingsOutput::builder()
                    .unprocessed_findings(
                        BatchUpdateFindingsUnprocessedFinding::builder()
                            .finding_identifier(
                                AwsSecurityFindingIdentifier::builder()
                                    .id(FINDING)
                                    .product_arn(PRODUCT)
                                    .build(),
                            )
                            .set_error_code(code.map(str::to_owned))
                            .error_message("Finding Not Found")
                            .build(),
                    )
                    .build()
            });
            let hub = SdkFindings::new(mocked!(aws_sdk_securityhub, [&rule]));
            let err = hub
                .update_finding(FINDING, PRODUCT, WorkflowStatus::Resolved, "note")
                .await
                .unwrap_err();
            assert_eq!(err.kind, kind, "{code:?}: {err}");
            assert_eq!(err.operation, "securityhub:BatchUpdateFindings");
            assert_eq!(err.context, format!("on finding `{FINDING}`"));
            assert!(
                err.message.starts_with("the finding was not updated: "),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn batch_update_findings_failures_are_classified() {
        let cases = [
            (429, "LimitExceededException", ErrorKind::Throttled),
            (500, "InternalException", ErrorKind::Transient),
            (403, "AccessDeniedException", ErrorKind::AccessDenied),
            (401, "InvalidAccessException", ErrorKind::AccessDenied),
            (400, "InvalidInputException", ErrorKind::Malformed),
        ];
        for (status, code, kind) in cases {
            let rule = mock!(Hub::batch_update_findings).then_http_response(move || {
                let headers = [
                    ("content-type", "application/json"),
                    ("x-amzn-errortype", code),
                ];
                response(status, &json_error(code, "Security Hub says no"), &headers)
            });
            let hub = SdkFindings::new(mocked!(aws_sdk_securityhub, [&rule]));
            let err = hub
                .update_finding(FINDING, PRODUCT, WorkflowStatus::Notified, "note")
                .await
                .unwrap_err();
            assert_eq!(err.kind, kind, "{code}: {err}");
            assert!(err.message.starts_with(code), "{err}");
        }
    }

    #[test]
    fn notes_are_cut_on_character_boundaries() {
        assert_eq!(note_text("short"), "short");
        let long = "ü".repeat(1000);
        let cut = note_text(&long);
        assert_eq!(cut.chars().count(), MAX_NOTE_CHARS);
        assert!(cut.ends_with("ü…"));
        assert!(matches!(note_text(&"x".repeat(512)), Cow::Borrowed(_)));
    }

    #[test]
    fn batches_respect_count_and_bytes() {
        let sizes = |entries: Vec<usize>| -> Vec<usize> {
            batches(entries.into_iter().map(|s| ((), s)).collect())
                .iter()
                .map(Vec::len)
                .collect()
        };
        assert_eq!(sizes(vec![1; 21]), [10, 10, 1]);
        assert_eq!(
            sizes(vec![MAX_EVENTS_BYTES, 1, MAX_EVENTS_BYTES - 1, 1]),
            [1, 2, 1]
        );
        assert!(sizes(vec![]).is_empty());
    }
}
