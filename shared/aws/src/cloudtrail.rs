//! CloudTrail's event history: what a credential did ([`EventHistory`],
//! `cloudtrail:LookupEvents`, one page per call, and [`calls_by_key`], which pages
//! and paces); the in-memory fake is in `fake` (feature `test-support`).
//!
//! `LookupEvents` answers about two calls a second per account and region and takes
//! one lookup attribute per call: cutoff looks up by the access key and keeps the
//! calls that matter ([`cutoff_domain::chain`]). moto does not serve it, so the SDK
//! implementation is tested with the SDK's mock client.

use std::future::Future;
use std::time::Duration;

use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use chrono::{DateTime, Utc};

use cutoff_domain::event::CloudTrailEvent;
use cutoff_domain::principal::AccessKeyId;

use crate::error::{AwsError, classify};

const OP: &str = "cloudtrail:LookupEvents";
/// Events per page: `LookupEvents`' most.
const PAGE_SIZE: i32 = 50;
/// Pages read for one key at most (1,000 events): a credential that made more calls
/// than that in the window is reported as such, not read without end.
pub const MAX_PAGES: usize = 20;
/// Between two pages: `LookupEvents` allows about two calls a second per account and
/// region.
pub const PAGE_INTERVAL: Duration = Duration::from_millis(500);

/// One page of a key's events, oldest or newest first as CloudTrail returns them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPage {
    pub records: Vec<CloudTrailEvent>,
    /// Events whose record could not be read (kept out, counted).
    pub unreadable: usize,
    pub next_token: Option<String>,
}

/// `cloudtrail:LookupEvents` in one account and region.
pub trait EventHistory: Send + Sync {
    /// One page of the events made with `access_key_id` between `from` and `to`.
    fn lookup_page(
        &self,
        access_key_id: &AccessKeyId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        next_token: Option<&str>,
    ) -> impl Future<Output = Result<EventPage, AwsError>> + Send;
}

/// Everything one key was recorded doing in the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyHistory {
    pub records: Vec<CloudTrailEvent>,
    pub unreadable: usize,
    /// More than [`MAX_PAGES`] pages: the rest was not read.
    pub truncated: bool,
}

/// Reads every page of `access_key_id`'s events between `from` and `to`, at most
/// [`MAX_PAGES`], one page each [`PAGE_INTERVAL`] at most.
pub async fn calls_by_key<H: EventHistory>(
    history: &H,
    access_key_id: &AccessKeyId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<KeyHistory, AwsError> {
    let mut out = KeyHistory::default();
    let mut token: Option<String> = None;
    for page in 0..MAX_PAGES {
        if page > 0 {
            tokio::time::sleep(PAGE_INTERVAL).await;
        }
        let read = history
            .lookup_page(access_key_id, from, to, token.as_deref())
            .await?;
        out.records.extend(read.records);
        out.unreadable += read.unreadable;
        token = read.next_token;
        if token.is_none() {
            return Ok(out);
        }
    }
    out.truncated = true;
    Ok(out)
}

/// CloudTrail's event history, through the SDK (a client for one account and region).
#[derive(Debug, Clone)]
pub struct SdkEventHistory {
    client: aws_sdk_cloudtrail::Client,
}

impl SdkEventHistory {
    pub fn new(client: aws_sdk_cloudtrail::Client) -> Self {
        Self { client }
    }

    /// A client in `region`, with the credentials and settings of `config`.
    pub fn in_region(config: &aws_config::SdkConfig, region: &str) -> Self {
        let conf = aws_sdk_cloudtrail::config::Builder::from(config)
            .region(aws_config::Region::new(region.to_owned()))
            .build();
        Self::new(aws_sdk_cloudtrail::Client::from_conf(conf))
    }
}

impl EventHistory for SdkEventHistory {
    async fn lookup_page(
        &self,
        access_key_id: &AccessKeyId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        next_token: Option<&str>,
    ) -> Result<EventPage, AwsError> {
        let context = || format!("for key {access_key_id}");
        let attribute = LookupAttribute::builder()
            .attribute_key(LookupAttributeKey::AccessKeyId)
            .attribute_value(access_key_id.as_str())
            .build()
            .map_err(|e| classify_build(e, context()))?;
        let out = self
            .client
            .lookup_events()
            .lookup_attributes(attribute)
            .start_time(aws_smithy_types::DateTime::from_secs(from.timestamp()))
            // Whole seconds: the end rounded up, so that nothing in its last second is
            // left out.
            .end_time(aws_smithy_types::DateTime::from_secs(
                to.timestamp() + i64::from(to.timestamp_subsec_nanos() > 0),
            ))
            .max_results(PAGE_SIZE)
            .set_next_token(next_token.map(str::to_owned))
            .send()
            .await
            .map_err(|e| classify(&e, OP, context()))?;
        let mut page = EventPage {
            next_token: out.next_token().map(str::to_owned),
            ..EventPage::default()
        };
        for event in out.events() {
            // The record is a JSON string inside the answer; one that does not read
            // is counted, so that the follow-up can say some were not understood.
            let record = event
                .cloud_trail_event()
                .and_then(|text| serde_json::from_str(text).ok())
                .and_then(|value| cutoff_domain::event::cloudtrail::parse(value).ok());
            match record {
                Some(record) => page.records.push(*record),
                None => page.unreadable += 1,
            }
        }
        Ok(page)
    }
}

/// A request the SDK could not build: ours to fix, never worth a retry.
fn classify_build(err: aws_sdk_cloudtrail::error::BuildError, context: String) -> AwsError {
    AwsError::new(
        crate::error::ErrorKind::Malformed,
        OP,
        context,
        err.to_string(),
    )
}

#[cfg(any(test, feature = "test-support"))]
pub mod fake {
    //! An in-memory event history.

    use std::sync::{Arc, Mutex, MutexGuard};

    use chrono::{DateTime, Utc};
    use serde_json::Value;

    use cutoff_domain::principal::AccessKeyId;

    use super::{EventHistory, EventPage};
    use crate::error::{AwsError, ErrorKind, InjectedFailures};

    /// Records by key and time; pages of `page_size`; fails on demand.
    #[derive(Debug, Clone, Default)]
    pub struct FakeEventHistory(pub Arc<Mutex<HistoryState>>);

    #[derive(Debug, Default)]
    pub struct HistoryState {
        /// (the key that made the call, when, the record as CloudTrail writes it)
        pub records: Vec<(String, DateTime<Utc>, Value)>,
        /// Records per page (0: all in one).
        pub page_size: usize,
        /// Every lookup made: (key, page token).
        pub lookups: Vec<(String, Option<String>)>,
        pub failures: InjectedFailures,
    }

    impl FakeEventHistory {
        pub fn state(&self) -> MutexGuard<'_, HistoryState> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }

        pub fn fail(&self, action: &'static str, kinds: &[ErrorKind]) {
            self.state().failures.plan(action, kinds);
        }

        /// A record of a call made with `key` at `at`.
        pub fn add(&self, key: &str, at: DateTime<Utc>, record: Value) {
            self.state().records.push((key.to_owned(), at, record));
        }
    }

    impl EventHistory for FakeEventHistory {
        async fn lookup_page(
            &self,
            access_key_id: &AccessKeyId,
            from: DateTime<Utc>,
            to: DateTime<Utc>,
            next_token: Option<&str>,
        ) -> Result<EventPage, AwsError> {
            let mut state = self.state();
            state.failures.take("LookupEvents", "in the fake")?;
            state.lookups.push((
                access_key_id.as_str().to_owned(),
                next_token.map(str::to_owned),
            ));
            let matching: Vec<Value> = state
                .records
                .iter()
                .filter(|(k, at, _)| k == access_key_id.as_str() && *at >= from && *at <= to)
                .map(|(_, _, r)| r.clone())
                .collect();
            let start: usize = next_token.and_then(|t| t.parse().ok()).unwrap_or(0);
            let size = if state.page_size == 0 {
                matching.len().max(1)
            } else {
                state.page_size
            };
            let end = (start + size).min(matching.len());
            let mut page = EventPage {
                next_token: (end < matching.len()).then(|| end.to_string()),
                ..EventPage::default()
            };
            for record in matching.get(start..end).unwrap_or_default() {
                match cutoff_domain::event::cloudtrail::parse(record.clone()) {
                    Ok(r) => page.records.push(*r),
                    Err(_) => page.unreadable += 1,
                }
            }
            Ok(page)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use aws_config::retry::RetryConfig;
    use aws_sdk_cloudtrail::Client as Trail;
    use aws_sdk_cloudtrail::operation::lookup_events::LookupEventsOutput;
    use aws_sdk_cloudtrail::types::Event;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use chrono::TimeZone;

    fn key() -> AccessKeyId {
        AccessKeyId::parse("ASIASTOLENKEY0000001").unwrap()
    }

    fn event(name: &str) -> Event {
        Event::builder()
            .event_name(name)
            .cloud_trail_event(
                serde_json::json!({"eventName": name, "eventSource": "sts.amazonaws.com"})
                    .to_string(),
            )
            .build()
    }

    #[tokio::test(start_paused = true)]
    async fn pages_are_read_to_the_end_by_the_key_within_the_window_and_paced() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let first = mock!(Trail::lookup_events)
            .match_requests(|r| r.next_token().is_none())
            .then_compute_output({
                let seen = seen.clone();
                move |r| {
                    seen.lock().unwrap().push(r.clone());
                    LookupEventsOutput::builder()
                        .events(event("AssumeRole"))
                        .events(Event::builder().cloud_trail_event("not json").build())
                        .next_token("t2")
                        .build()
                }
            });
        let second = mock!(Trail::lookup_events)
            .match_requests(|r| r.next_token() == Some("t2"))
            .then_output(|| {
                LookupEventsOutput::builder()
                    .events(event("CreateAccessKey"))
                    .build()
            });
        let history = SdkEventHistory::new(mock_client!(
            aws_sdk_cloudtrail,
            RuleMode::MatchAny,
            [&first, &second],
            |c| c.retry_config(RetryConfig::disabled())
        ));
        let from = Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap();
        let started = tokio::time::Instant::now();
        let read = calls_by_key(&history, &key(), from, to).await.unwrap();
        assert!(started.elapsed() >= PAGE_INTERVAL, "the second page waited");
        let names: Vec<&str> = read
            .records
            .iter()
            .filter_map(|r| r.event_name.as_deref())
            .collect();
        assert_eq!(names, ["AssumeRole", "CreateAccessKey"]);
        assert_eq!(read.unreadable, 1);
        assert!(!read.truncated);
        let request = &seen.lock().unwrap()[0];
        let [attribute] = request.lookup_attributes() else {
            panic!("one lookup attribute: {request:?}")
        };
        assert_eq!(attribute.attribute_key(), &LookupAttributeKey::AccessKeyId);
        assert_eq!(attribute.attribute_value(), "ASIASTOLENKEY0000001");
        assert_eq!(
            request.start_time().map(|t| t.secs()),
            Some(from.timestamp())
        );
        assert_eq!(request.end_time().map(|t| t.secs()), Some(to.timestamp()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_with_endless_pages_is_cut_and_says_so() {
        let endless = mock!(Trail::lookup_events).then_output(|| {
            LookupEventsOutput::builder()
                .events(event("AssumeRole"))
                .next_token("more")
                .build()
        });
        let history = SdkEventHistory::new(mock_client!(
            aws_sdk_cloudtrail,
            RuleMode::MatchAny,
            [&endless],
            |c| c.retry_config(RetryConfig::disabled())
        ));
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap();
        let read = calls_by_key(&history, &key(), now - chrono::Duration::days(1), now)
            .await
            .unwrap();
        assert!(read.truncated);
        assert_eq!(read.records.len(), MAX_PAGES);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_a_retryable_error() {
        let throttled = mock!(Trail::lookup_events).then_http_response(|| {
            aws_smithy_runtime_api::client::orchestrator::HttpResponse::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
                ),
            )
        });
        let history = SdkEventHistory::new(mock_client!(
            aws_sdk_cloudtrail,
            RuleMode::MatchAny,
            [&throttled],
            |c| c.retry_config(RetryConfig::disabled())
        ));
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap();
        let err = history
            .lookup_page(&key(), now - chrono::Duration::days(1), now, None)
            .await
            .unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::Throttled);
        assert!(err.is_retryable());
    }

    #[tokio::test(start_paused = true)]
    async fn the_fake_pages_by_key_and_window() {
        let fake = fake::FakeEventHistory::default();
        fake.state().page_size = 2;
        let at = Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap();
        for i in 0..5 {
            fake.add(
                "ASIASTOLENKEY0000001",
                at + chrono::Duration::minutes(i),
                serde_json::json!({"eventName": format!("Call{i}")}),
            );
        }
        fake.add(
            "ASIAOTHERKEY00000001",
            at,
            serde_json::json!({"eventName": "Other"}),
        );
        fake.add(
            "ASIASTOLENKEY0000001",
            at - chrono::Duration::days(10),
            serde_json::json!({"eventName": "TooOld"}),
        );
        let read = calls_by_key(
            &fake,
            &key(),
            at - chrono::Duration::days(1),
            at + chrono::Duration::days(1),
        )
        .await
        .unwrap();
        assert_eq!(read.records.len(), 5);
        assert_eq!(fake.state().lookups.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn through_the_retrying_decorator_a_throttled_page_is_tried_again_and_counted() {
        let fake = fake::FakeEventHistory::default();
        let at = Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap();
        fake.add(
            "ASIASTOLENKEY0000001",
            at,
            serde_json::json!({"eventName": "AssumeRole"}),
        );
        fake.fail(
            "LookupEvents",
            &[
                crate::error::ErrorKind::Throttled,
                crate::error::ErrorKind::Throttled,
            ],
        );
        let retrying = crate::retrying::Retrying::new(&fake, crate::retry::RetryPolicy::default());
        let read = calls_by_key(&retrying, &key(), at - chrono::Duration::hours(1), at)
            .await
            .unwrap();
        assert_eq!(read.records.len(), 1);
        assert_eq!(retrying.calls(), 3, "two throttled attempts and the answer");
    }
}
