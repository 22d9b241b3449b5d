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
use cutoff_domain::principal::{AccessKeyId, Account};

use crate::error::{AwsError, classify};
use crate::retry::CallCounter;

pub(crate) const OP: &str = "cloudtrail:LookupEvents";
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

/// The one lookup attribute a `LookupEvents` call takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// The calls made with this key.
    Key(AccessKeyId),
    /// Every call of this name (for the `GetSessionToken` that minted a key: the
    /// record of a call is found by the key that made it, not the key it returned).
    EventName(&'static str),
}

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Query::Key(key) => write!(f, "key {key}"),
            Query::EventName(name) => write!(f, "calls to {name}"),
        }
    }
}

/// `cloudtrail:LookupEvents` in one account and region.
pub trait EventHistory: Send + Sync {
    /// One page of the events `query` selects between `from` and `to`.
    fn lookup_page(
        &self,
        query: &Query,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        next_token: Option<&str>,
    ) -> impl Future<Output = Result<EventPage, AwsError>> + Send;
}

/// Keeps the calls to one account and region's `LookupEvents` [`PAGE_INTERVAL`]
/// apart, whichever key they are for: its rate limit is the account's and region's.
#[derive(Debug, Default)]
pub struct Pacer(tokio::sync::Mutex<Option<tokio::time::Instant>>);

impl Pacer {
    /// Waits until a call may be made, and counts it made.
    pub async fn wait(&self) {
        let mut last = self.0.lock().await;
        if let Some(at) = *last {
            tokio::time::sleep_until(at + PAGE_INTERVAL).await;
        }
        *last = Some(tokio::time::Instant::now());
    }
}

/// `LookupEvents` in the accounts cutoff reaches: an [`EventHistory`] per account and
/// region, through the member role (which allows `cloudtrail:LookupEvents` and no
/// other CloudTrail action).
pub trait HistoryAccess: Send + Sync {
    type History: EventHistory;

    fn history_for(
        &self,
        account: &Account,
        region: &str,
        request_id: &str,
        calls: &CallCounter,
    ) -> impl Future<Output = Result<Self::History, AwsError>> + Send;
}

/// Everything one key was recorded doing in the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyHistory {
    pub records: Vec<CloudTrailEvent>,
    pub unreadable: usize,
    /// More than [`MAX_PAGES`] pages: the rest was not read.
    pub truncated: bool,
}

/// Reads every page of what `query` selects between `from` and `to`, at most
/// [`MAX_PAGES`], each call paced by `pacer` (the account and region's).
pub async fn read_history<H: EventHistory>(
    history: &H,
    query: &Query,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    pacer: &Pacer,
) -> Result<KeyHistory, AwsError> {
    let mut out = KeyHistory::default();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        pacer.wait().await;
        let read = history
            .lookup_page(query, from, to, token.as_deref())
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
        query: &Query,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        next_token: Option<&str>,
    ) -> Result<EventPage, AwsError> {
        let context = || format!("for {query}");
        let (key, value) = match query {
            Query::Key(key) => (LookupAttributeKey::AccessKeyId, key.as_str()),
            Query::EventName(name) => (LookupAttributeKey::EventName, *name),
        };
        let attribute = LookupAttribute::builder()
            .attribute_key(key)
            .attribute_value(value)
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

    use std::collections::HashMap;

    use super::{EventHistory, EventPage, HistoryAccess, Query};
    use crate::error::{AwsError, ErrorKind, InjectedFailures};
    use crate::retry::CallCounter;
    use cutoff_domain::principal::Account;

    /// Records by key and time; pages of `page_size`; fails on demand.
    #[derive(Debug, Clone, Default)]
    pub struct FakeEventHistory(pub Arc<Mutex<HistoryState>>);

    #[derive(Debug, Default)]
    pub struct HistoryState {
        /// (the key that made the call, when, the record as CloudTrail writes it)
        pub records: Vec<(String, DateTime<Utc>, Value)>,
        /// Records per page (0: all in one).
        pub page_size: usize,
        /// Every lookup made: (what was asked, page token).
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
            query: &Query,
            from: DateTime<Utc>,
            to: DateTime<Utc>,
            next_token: Option<&str>,
        ) -> Result<EventPage, AwsError> {
            let mut state = self.state();
            state.failures.take("LookupEvents", "in the fake")?;
            state
                .lookups
                .push((query.to_string(), next_token.map(str::to_owned)));
            let selects = |key: &str, record: &Value| match query {
                Query::Key(k) => k.as_str() == key,
                Query::EventName(name) => record["eventName"].as_str() == Some(name),
            };
            // Newest first, as CloudTrail answers.
            let mut matching: Vec<(DateTime<Utc>, Value)> = state
                .records
                .iter()
                .filter(|(k, at, r)| selects(k, r) && *at >= from && *at <= to)
                .map(|(_, at, r)| (*at, r.clone()))
                .collect();
            matching.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
            let matching: Vec<Value> = matching.into_iter().map(|(_, r)| r).collect();
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

    /// An event history per account and region, as the member role reaches them.
    #[derive(Debug, Clone, Default)]
    pub struct FakeHistories {
        pub histories: Arc<Mutex<HashMap<(String, String), FakeEventHistory>>>,
        /// Accounts whose member role cannot be assumed.
        pub unreachable: Arc<Mutex<Vec<String>>>,
    }

    impl FakeHistories {
        /// The history of `account` in `region` (made empty on first use).
        pub fn of(&self, account: &str, region: &str) -> FakeEventHistory {
            self.histories
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry((account.to_owned(), region.to_owned()))
                .or_default()
                .clone()
        }

        /// Every lookup made, as `<account> <region> <query>`.
        pub fn lookups(&self) -> Vec<String> {
            let histories = self.histories.lock().unwrap_or_else(|p| p.into_inner());
            let mut all: Vec<String> = histories
                .iter()
                .flat_map(|((account, region), h)| {
                    h.state()
                        .lookups
                        .iter()
                        .map(|(q, _)| format!("{account} {region} {q}"))
                        .collect::<Vec<_>>()
                })
                .collect();
            all.sort();
            all
        }
    }

    impl HistoryAccess for FakeHistories {
        type History = FakeEventHistory;

        async fn history_for(
            &self,
            account: &Account,
            region: &str,
            _: &str,
            calls: &CallCounter,
        ) -> Result<FakeEventHistory, AwsError> {
            if self
                .unreachable
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|a| a == account.as_str())
            {
                calls.add(1);
                return Err(AwsError::new(
                    ErrorKind::AccessDenied,
                    "sts:AssumeRole",
                    format!("on the member role of {account}"),
                    "not authorized",
                ));
            }
            Ok(self.of(account.as_str(), region))
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
        let read = read_history(&history, &Query::Key(key()), from, to, &Pacer::default())
            .await
            .unwrap();
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
        let read = read_history(
            &history,
            &Query::Key(key()),
            now - chrono::Duration::days(1),
            now,
            &Pacer::default(),
        )
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
            .lookup_page(
                &Query::Key(key()),
                now - chrono::Duration::days(1),
                now,
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::Throttled);
        assert!(err.is_retryable());
    }

    #[tokio::test(start_paused = true)]
    async fn one_pacer_keeps_every_call_to_an_account_and_region_apart_whichever_key() {
        let fake = fake::FakeEventHistory::default();
        let pacer = Pacer::default();
        let at = Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap();
        let started = tokio::time::Instant::now();
        for k in [
            "ASIAFIRSTKEY00000001",
            "ASIASECONDKEY0000001",
            "ASIATHIRDKEY00000001",
        ] {
            let query = Query::Key(AccessKeyId::parse(k).unwrap());
            read_history(&fake, &query, at, at, &pacer).await.unwrap();
        }
        assert!(
            started.elapsed() >= PAGE_INTERVAL * 2,
            "three one-page lookups of three keys are two intervals apart: {:?}",
            started.elapsed()
        );
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
        let read = read_history(
            &fake,
            &Query::Key(key()),
            at - chrono::Duration::days(1),
            at + chrono::Duration::days(1),
            &Pacer::default(),
        )
        .await
        .unwrap();
        assert_eq!(read.records.len(), 5);
        assert_eq!(fake.state().lookups.len(), 3);
        let by_name = read_history(
            &fake,
            &Query::EventName("Other"),
            at - chrono::Duration::days(1),
            at + chrono::Duration::days(1),
            &Pacer::default(),
        )
        .await
        .unwrap();
        assert_eq!(by_name.records.len(), 1);
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
        let read = read_history(
            &retrying,
            &Query::Key(key()),
            at - chrono::Duration::hours(1),
            at,
            &Pacer::default(),
        )
        .await
        .unwrap();
        assert_eq!(read.records.len(), 1);
        assert_eq!(retrying.calls(), 3, "two throttled attempts and the answer");
    }
}
