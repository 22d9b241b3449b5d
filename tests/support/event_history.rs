//! A stand-in for CloudTrail's `LookupEvents`, which moto does not serve, so that the
//! real revoker binary can follow a chain: [`EventHistoryServer::start`] listens on a
//! free port of 127.0.0.1 and answers `LookupEvents` (AWS JSON 1.1) from the records
//! a test adds, per account and region, newest first, in pages, like CloudTrail.
//!
//! Which account's history a request reads is decided as AWS decides it: by the
//! credentials that signed it. The access key of the request's SigV4 `Credential` is
//! asked of moto (`GetCallerIdentity`, which moto answers from the key alone), so a
//! lookup made with the member role's session of account B reads B's history and
//! nothing else; the region is the credential scope's. Only `LookupEvents` is served;
//! anything else is answered as an unknown operation.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener as StdTcpListener};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::oneshot;

const PAGE_SIZE: usize = 50;

/// One stored record: the key that made the call, when, and the record.
#[derive(Debug, Clone)]
struct Stored {
    key: String,
    at: DateTime<Utc>,
    record: Value,
}

#[derive(Default)]
struct State {
    /// (account, region) → records.
    histories: BTreeMap<(String, String), Vec<Stored>>,
    /// Every lookup: (account, region, attribute value).
    lookups: Vec<(String, String, String)>,
}

/// A running stand-in; stops on drop.
pub struct EventHistoryServer {
    endpoint: String,
    state: Arc<Mutex<State>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EventHistoryServer {
    /// Starts the stand-in; `moto` is the endpoint that tells accounts from keys.
    pub fn start(moto: &str) -> EventHistoryServer {
        let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State::default()));
        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread = {
            let state = Arc::clone(&state);
            let moto = moto.trim_end_matches('/').to_owned();
            thread::Builder::new()
                .name(format!("event-history-{}", addr.port()))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    runtime.block_on(serve(listener, state, moto, shutdown_rx));
                })
                .expect("spawn the event history stand-in")
        };
        EventHistoryServer {
            endpoint: format!("http://{addr}"),
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a call made with `key` at `at` in `account`'s history of `region`.
    pub fn add(&self, account: &str, region: &str, key: &str, at: DateTime<Utc>, record: Value) {
        self.state()
            .histories
            .entry((account.to_owned(), region.to_owned()))
            .or_default()
            .push(Stored {
                key: key.to_owned(),
                at,
                record,
            });
    }

    /// Every lookup made: `<account> <region> <attribute value>`.
    pub fn lookups(&self) -> Vec<String> {
        self.state()
            .lookups
            .iter()
            .map(|(a, r, v)| format!("{a} {r} {v}"))
            .collect()
    }
}

impl Drop for EventHistoryServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: StdTcpListener,
    state: Arc<Mutex<State>>,
    moto: String,
    mut shutdown: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                let moto = moto.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        handle(request, Arc::clone(&state), moto.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

fn answer(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a response")
}

fn error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    answer(status, json!({"__type": code, "message": message}))
}

/// The access key and region of a SigV4 `Authorization` header.
fn credential(authorization: &str) -> Option<(String, String)> {
    let scope = authorization
        .split("Credential=")
        .nth(1)?
        .split(',')
        .next()?;
    let mut parts = scope.split('/');
    let key = parts.next()?.to_owned();
    let _date = parts.next()?;
    let region = parts.next()?.to_owned();
    Some((key, region))
}

/// The account moto answers for `key`.
async fn account_of(moto: &str, key: &str) -> Option<String> {
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let request = Request::post(format!("{moto}/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={key}/20261205/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0"
            ),
        )
        .body(Full::new(Bytes::from_static(
            b"Action=GetCallerIdentity&Version=2011-06-15",
        )))
        .ok()?;
    let response = client.request(request).await.ok()?;
    let body = response.into_body().collect().await.ok()?.to_bytes();
    let text = String::from_utf8_lossy(&body);
    let account = text.split("<Account>").nth(1)?.split("</Account>").next()?;
    Some(account.to_owned())
}

async fn handle(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
    moto: String,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = request.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !target.ends_with(".LookupEvents") {
        return Ok(error(400, "UnknownOperationException", &target));
    }
    let Some((key, region)) = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(credential)
    else {
        return Ok(error(403, "UnrecognizedClientException", "not signed"));
    };
    let Some(account) = account_of(&moto, &key).await else {
        return Ok(error(403, "UnrecognizedClientException", "unknown key"));
    };
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let attributes = input["LookupAttributes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let [attribute] = attributes.as_slice() else {
        return Ok(error(
            400,
            "InvalidLookupAttributesException",
            "one lookup attribute",
        ));
    };
    let (name, value) = (
        attribute["AttributeKey"].as_str().unwrap_or_default(),
        attribute["AttributeValue"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    let time = |field: &str| {
        input[field]
            .as_f64()
            .and_then(|s| DateTime::<Utc>::from_timestamp(s as i64, 0))
    };
    let (from, to) = (time("StartTime"), time("EndTime"));
    let start: usize = input["NextToken"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    state
        .lookups
        .push((account.clone(), region.clone(), value.clone()));
    let mut matching: Vec<Stored> = state
        .histories
        .get(&(account, region))
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| match name {
            "AccessKeyId" => s.key == value,
            "EventName" => s.record["eventName"].as_str() == Some(value.as_str()),
            _ => false,
        })
        .filter(|s| from.is_none_or(|f| s.at >= f) && to.is_none_or(|t| s.at <= t))
        .collect();
    matching.sort_by_key(|s| std::cmp::Reverse(s.at));
    let end = (start + PAGE_SIZE).min(matching.len());
    let events: Vec<Value> = matching
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            json!({
                "EventId": s.record["eventID"],
                "EventName": s.record["eventName"],
                "EventTime": s.at.timestamp(),
                "AccessKeyId": s.key,
                "CloudTrailEvent": s.record.to_string(),
            })
        })
        .collect();
    let mut out = json!({ "Events": events });
    if end < matching.len() {
        out["NextToken"] = json!(end.to_string());
    }
    Ok(answer(200, out))
}
