//! EventBridge: the custom outcome bus, which every outcome ([`OutcomeBus`]), the
//! summary of every sweep run that changed or failed something and the sweep's daily
//! digest ([`SummaryBus`]) are published on as events of source [`OUTCOME_SOURCE`],
//! through [`SdkOutcomeBus`]; its in-memory fake is in `fake` (feature
//! `test-support`).
//!
//! `PutEvents` answers 200 while rejecting some entries: the answer is checked entry
//! by entry, and a rejected entry is an error, never a silent drop.

use std::future::Future;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::error::{AwsError, ErrorKind, bound, classify, entry_message};
use cutoff_domain::outcome::Outcome;
use cutoff_domain::summary::{SweepDigest, SweepSummary};

/// The `source` of every outcome event on the bus (what rules match on).
pub const OUTCOME_SOURCE: &str = "cutoff";
/// The `detail-type` of every outcome event on the bus.
pub const OUTCOME_DETAIL_TYPE: &str = "Revocation Outcome";
/// The `detail-type` of the summary event on the outcome bus.
pub const SUMMARY_DETAIL_TYPE: &str = "Sweep Summary";
/// The `detail-type` of the sweep's daily digest on the outcome bus.
pub const DIGEST_DETAIL_TYPE: &str = "Sweep Digest";

const OP_PUT_EVENTS: &str = "events:PutEvents";
/// `PutEvents` takes at most 10 entries per call.
const MAX_EVENTS_PER_CALL: usize = 10;
/// EventBridge bounds the size of one entry, and the total of one call's entries, to
/// 256 KB (Source, DetailType and Detail in UTF-8 bytes; we set no Time or Resources).
const MAX_EVENTS_BYTES: usize = 256 * 1024;

/// `events:PutEvents` on the custom outcome bus (source `cutoff`, detail-type
/// `Revocation Outcome`).
pub trait OutcomeBus: Send + Sync {
    /// Publishes every outcome; fails unless every entry was accepted (a partial
    /// failure reported in `FailedEntryCount` is an error, not a silent drop).
    fn publish(&self, outcomes: &[Outcome]) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// `events:PutEvents` of the sweep's summary and daily digest on the outcome bus.
pub trait SummaryBus: Send + Sync {
    fn publish_summary(
        &self,
        summary: &SweepSummary,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    fn publish_digest(
        &self,
        digest: &SweepDigest,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
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
    async fn put_one(&self, detail_type: &str, detail: String) -> Result<(), AwsError> {
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

impl SummaryBus for SdkOutcomeBus {
    async fn publish_summary(&self, summary: &SweepSummary) -> Result<(), AwsError> {
        let detail = serde_json::to_string(summary).map_err(|e| {
            AwsError::new(
                ErrorKind::Malformed,
                "events:PutEvents",
                self.bus_name().to_owned(),
                e.to_string(),
            )
        })?;
        self.put_one(SUMMARY_DETAIL_TYPE, detail).await
    }

    async fn publish_digest(&self, digest: &SweepDigest) -> Result<(), AwsError> {
        let detail = serde_json::to_string(digest).map_err(|e| {
            AwsError::new(
                ErrorKind::Malformed,
                OP_PUT_EVENTS,
                self.context(),
                e.to_string(),
            )
        })?;
        self.put_one(DIGEST_DETAIL_TYPE, detail).await
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod fake {
    //! An in-memory outcome bus.

    use std::sync::{Arc, Mutex, MutexGuard};

    use crate::error::{AwsError, ErrorKind, InjectedFailures};

    use super::{OutcomeBus, SummaryBus};
    use cutoff_domain::outcome::Outcome;
    use cutoff_domain::summary::{SweepDigest, SweepSummary};

    /// Records the outcomes, sweep summaries and digests published; fails the next
    /// calls on demand (`PutEvents`, all three).
    #[derive(Debug, Clone, Default)]
    pub struct FakeOutcomeBus(pub Arc<Mutex<BusState>>);

    #[derive(Debug, Default)]
    pub struct BusState {
        pub outcomes: Vec<Outcome>,
        pub summaries: Vec<SweepSummary>,
        pub digests: Vec<SweepDigest>,
        pub failures: InjectedFailures,
    }

    impl FakeOutcomeBus {
        pub fn state(&self) -> MutexGuard<'_, BusState> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }

        pub fn fail(&self, action: &'static str, kinds: &[ErrorKind]) {
            self.state().failures.plan(action, kinds);
        }

        fn begin(&self, action: &'static str) -> Result<MutexGuard<'_, BusState>, AwsError> {
            let mut state = self.state();
            state.failures.take(action, "in the fake")?;
            Ok(state)
        }
    }

    impl OutcomeBus for FakeOutcomeBus {
        async fn publish(&self, outcomes: &[Outcome]) -> Result<(), AwsError> {
            let mut state = self.begin("PutEvents")?;
            state.outcomes.extend(outcomes.iter().cloned());
            Ok(())
        }
    }

    impl SummaryBus for FakeOutcomeBus {
        async fn publish_summary(&self, summary: &SweepSummary) -> Result<(), AwsError> {
            self.begin("PutEvents")?.summaries.push(summary.clone());
            Ok(())
        }

        async fn publish_digest(&self, digest: &SweepDigest) -> Result<(), AwsError> {
            self.begin("PutEvents")?.digests.push(digest.clone());
            Ok(())
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

    const BUS: &str = "cutoff-outcomes";

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

    /// An awsJson error, as EventBridge sends it.
    fn json_error(code: &str, message: &str) -> String {
        format!(r#"{{"__type":"{code}","message":"{message}"}}"#)
    }

    fn outcome(n: usize) -> Outcome {
        Outcome::invalid_request(format!("request {n}"))
    }

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

    #[tokio::test]
    async fn the_digest_is_one_event_of_its_own_detail_type() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rule = mock!(Events::put_events).then_compute_output({
            let seen = seen.clone();
            move |r| {
                seen.lock().unwrap().extend(r.entries().iter().cloned());
                accepted(r.entries().len())
            }
        });
        let bus = SdkOutcomeBus::new(mocked!(aws_sdk_eventbridge, [&rule]), BUS);
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T00:05:00Z")
            .unwrap()
            .to_utc();
        let digest = SweepDigest::of_day(
            chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            &[],
            at,
            "run-1",
        );
        bus.publish_digest(&digest).await.unwrap();
        let seen = seen.lock().unwrap();
        let [entry] = seen.as_slice() else {
            panic!("one entry expected: {seen:?}")
        };
        assert_eq!(entry.source(), Some("cutoff"));
        assert_eq!(entry.detail_type(), Some(DIGEST_DETAIL_TYPE));
        assert_eq!(entry.event_bus_name(), Some(BUS));
        let detail: SweepDigest = serde_json::from_str(entry.detail().unwrap()).unwrap();
        assert_eq!(detail, digest);
    }
}
