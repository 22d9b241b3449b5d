//! A fault-injecting, recording HTTP proxy to put between the code under test and moto.
//!
//! [`FaultProxy::start`] listens on a free port of 127.0.0.1 and forwards every request to
//! the upstream (moto) unchanged, except where its [`FaultPlan`] says to fail it: IAM-style
//! throttling, HTTP 500/503, a slow answer, a dropped connection (before forwarding, or
//! after the upstream has answered: [`Fault::DropAnswer`]), or any error code. It records
//! every request (method, path, form parameters of the AWS query protocol, the fault
//! injected, the status and body answered), so tests can assert what was called, how often
//! and in which order, e.g. that a throttled `PutRolePolicy` was retried and then verified
//! with `GetRolePolicy`.
//!
//! The proxy runs on a thread of its own with its own tokio runtime, so it serves
//! synchronous tests, tests on a current-thread runtime and child processes alike. It
//! stops on drop.
//!
//! Latency: both sockets have `TCP_NODELAY` and every answer is sent as one write (headers
//! and a fully buffered body). Without that, Nagle's algorithm holding the body back until
//! the peer's delayed ACK of the headers adds some 40 ms to each call.
//!
//! Protocols: the `Action` of a request is its form or query parameter `Action` (IAM, STS,
//! SNS: the AWS query protocol), else the operation named by its `X-Amz-Target` header (SQS,
//! EventBridge: AWS JSON). Injected errors are written in the request's protocol: the
//! query protocol's `<ErrorResponse>` XML, or AWS JSON's `{"__type": …, "message": …}`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use percent_encoding::percent_decode_str;
use tokio::sync::oneshot;

/// What to do to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward it untouched. In a script, lets one request through before the next fault.
    Pass,
    /// HTTP 400 `Throttling` / "Rate exceeded", as IAM and STS throttle (`ThrottlingException`
    /// for JSON-protocol services). Retryable.
    Throttle,
    /// HTTP 500 `ServiceFailure` (IAM's internal error). Retryable.
    InternalError,
    /// HTTP 503 `ServiceUnavailable`. Retryable.
    Unavailable,
    /// Wait this long, then forward (for timeouts and slow-call tests).
    Slow(Duration),
    /// Close the connection without answering: the client sees a dispatch/response error.
    /// The request is not forwarded: nothing happened upstream.
    Disconnect,
    /// Forward the request, then close the connection without passing the answer on: the
    /// call took effect upstream, but the client sees a dropped connection. The ambiguous
    /// failure of a real network (did my write happen?), for tests of idempotent retries
    /// and at-least-once delivery. The record keeps the upstream's status and answer.
    DropAnswer,
    /// Forward it, and answer with a `Date` header this many seconds off the real time:
    /// a machine whose clock is wrong, seen from the AWS side (for the CLI, which takes
    /// its time from AWS's answers).
    ShiftDate(i64),
    /// Answer this error instead of forwarding: permanent failures such as
    /// [`Fault::access_denied`] or [`Fault::limit_exceeded`].
    Error {
        status: u16,
        code: String,
        message: String,
    },
}

impl Fault {
    /// An arbitrary error answer.
    pub fn error(status: u16, code: &str, message: &str) -> Fault {
        Fault::Error {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }

    /// HTTP 403 `AccessDenied`, as IAM answers a caller without the permission.
    pub fn access_denied() -> Fault {
        Fault::error(
            403,
            "AccessDenied",
            "User: arn:aws:sts::123456789012:assumed-role/cutoff-member/cutoff is not \
             authorized to perform this action",
        )
    }

    /// HTTP 409 `LimitExceeded`, as IAM answers a policy over its size quota.
    pub fn limit_exceeded() -> Fault {
        Fault::error(
            409,
            "LimitExceeded",
            "Maximum policy size of 10240 bytes exceeded for role",
        )
    }

    /// HTTP 404 `NoSuchEntity`.
    pub fn no_such_entity() -> Fault {
        Fault::error(404, "NoSuchEntity", "The role cannot be found.")
    }

    /// The error answer this fault stands for, if it is one: (status, code, message).
    fn error_answer(&self, json_protocol: bool) -> Option<(u16, &str, &str)> {
        match self {
            Fault::Throttle if json_protocol => Some((400, "ThrottlingException", "Rate exceeded")),
            Fault::Throttle => Some((400, "Throttling", "Rate exceeded")),
            Fault::InternalError if json_protocol => {
                Some((500, "InternalFailure", "Internal service failure"))
            }
            Fault::InternalError => Some((500, "ServiceFailure", "Internal service failure")),
            Fault::Unavailable => Some((503, "ServiceUnavailable", "Service is unavailable")),
            Fault::Error {
                status,
                code,
                message,
            } => Some((*status, code, message)),
            Fault::Pass
            | Fault::Slow(_)
            | Fault::Disconnect
            | Fault::DropAnswer
            | Fault::ShiftDate(_) => None,
        }
    }
}

/// Which requests fail, and how. Build with the methods; the default forwards everything.
///
/// For each request the proxy takes, in order:
/// 1. the first scripted fault whose action filter matches the request (or that has none):
///    it is used up;
/// 2. otherwise, if a random rate is set and applies to the request's action, a fault drawn
///    with that probability from the seeded generator;
/// 3. otherwise [`Fault::Pass`].
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    scripted: Vec<ScriptedFault>,
    random: Option<RandomFaults>,
}

#[derive(Debug, Clone)]
struct ScriptedFault {
    action: Option<String>,
    fault: Fault,
}

/// A random fault rate: each applicable request fails with probability `rate`, the fault
/// chosen uniformly from `faults`, from a generator seeded with `seed`.
#[derive(Debug, Clone)]
struct RandomFaults {
    seed: u64,
    rate: f64,
    faults: Vec<Fault>,
    actions: Option<Vec<String>>,
}

impl FaultPlan {
    /// Forward everything.
    pub fn passthrough() -> FaultPlan {
        FaultPlan::default()
    }

    /// The next request (whatever its action) gets `fault`.
    pub fn then(self, fault: Fault) -> FaultPlan {
        self.then_n(1, fault)
    }

    /// The next `n` requests get `fault`.
    pub fn then_n(mut self, n: usize, fault: Fault) -> FaultPlan {
        for _ in 0..n {
            self.scripted.push(ScriptedFault {
                action: None,
                fault: fault.clone(),
            });
        }
        self
    }

    /// The next request whose action is `action` (e.g. `"PutRolePolicy"`) gets `fault`;
    /// other requests pass by this entry.
    pub fn then_for(self, action: &str, fault: Fault) -> FaultPlan {
        self.then_n_for(1, action, fault)
    }

    /// The next `n` requests whose action is `action` get `fault`.
    pub fn then_n_for(mut self, n: usize, action: &str, fault: Fault) -> FaultPlan {
        for _ in 0..n {
            self.scripted.push(ScriptedFault {
                action: Some(action.to_owned()),
                fault: fault.clone(),
            });
        }
        self
    }

    /// Requests with no scripted fault fail with probability `rate` (0.0–1.0), with a fault
    /// chosen uniformly from `faults`; the generator is seeded with `seed`, so a run is
    /// reproducible as long as the requests arrive in the same order.
    pub fn random(mut self, seed: u64, rate: f64, faults: &[Fault]) -> FaultPlan {
        assert!(
            (0.0..=1.0).contains(&rate),
            "fault rate {rate} is not in 0..=1"
        );
        assert!(
            rate == 0.0 || !faults.is_empty(),
            "a fault rate needs faults to draw from"
        );
        self.random = Some(RandomFaults {
            seed,
            rate,
            faults: faults.to_vec(),
            actions: None,
        });
        self
    }

    /// Restricts the random rate (set before with [`FaultPlan::random`]) to these actions.
    pub fn random_only_for(mut self, actions: &[&str]) -> FaultPlan {
        let random = self
            .random
            .as_mut()
            .expect("random_only_for needs a rate set with random() first");
        random.actions = Some(actions.iter().map(|a| (*a).to_owned()).collect());
        self
    }
}

/// A plan being played: the script still to come and the generator's state.
struct ActivePlan {
    scripted: VecDeque<ScriptedFault>,
    random: Option<(RandomFaults, fastrand::Rng)>,
}

impl ActivePlan {
    fn new(plan: FaultPlan) -> ActivePlan {
        ActivePlan {
            scripted: plan.scripted.into(),
            random: plan.random.map(|r| {
                let rng = fastrand::Rng::with_seed(r.seed);
                (r, rng)
            }),
        }
    }

    fn next_fault(&mut self, action: Option<&str>) -> Fault {
        let scripted = self
            .scripted
            .iter()
            .position(|s| s.action.is_none() || s.action.as_deref() == action);
        if let Some(fault) = scripted.and_then(|i| self.scripted.remove(i)) {
            return fault.fault;
        }
        if let Some((random, rng)) = &mut self.random {
            let applies = match (&random.actions, action) {
                (None, _) => true,
                (Some(actions), Some(action)) => actions.iter().any(|a| a == action),
                (Some(_), None) => false,
            };
            if applies && rng.f64() < random.rate {
                return random.faults[rng.usize(..random.faults.len())].clone();
            }
        }
        Fault::Pass
    }
}

/// One request the proxy received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// 0-based arrival order.
    pub seq: usize,
    /// When it arrived (for spacing of retries).
    pub at: Instant,
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    pub query: Option<String>,
    /// Header names in lower case; repeated headers joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// Decoded parameters of the query string and of a form-encoded body (the AWS query
    /// protocol: `Action=AssumeRole&RoleArn=…&ExternalId=…`); the body's win on a clash.
    pub params: BTreeMap<String, String>,
    /// `Action` parameter, else the operation of `X-Amz-Target` (`AmazonSQS.SendMessage` →
    /// `SendMessage`).
    pub action: Option<String>,
    /// The body as text (lossy UTF-8).
    pub body: String,
    /// What the plan did to it ([`Fault::Pass`]: forwarded untouched).
    pub fault: Fault,
    /// The status answered to the client: an injected one or moto's; `None` while in
    /// flight and for [`Fault::Disconnect`]. For [`Fault::DropAnswer`], the upstream's
    /// status, which the client never saw.
    pub status: Option<u16>,
    /// Why forwarding to the upstream failed (then the client got a 502).
    pub upstream_error: Option<String>,
    /// The upstream's answer body (lossy UTF-8) when the request was forwarded and
    /// answered: what the client received, or for [`Fault::DropAnswer`] would have.
    /// `None` for injected answers, [`Fault::Disconnect`] and requests in flight.
    pub response_body: Option<String>,
}

impl RecordedRequest {
    /// A decoded form or query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// Whether a fault was injected (anything but [`Fault::Pass`]).
    pub fn faulted(&self) -> bool {
        self.fault != Fault::Pass
    }
}

struct Shared {
    upstream: String,
    plan: Mutex<ActivePlan>,
    records: Mutex<Vec<RecordedRequest>>,
}

impl Shared {
    fn plan(&self) -> MutexGuard<'_, ActivePlan> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn records(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running proxy; stops on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    endpoint: String,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on a free port of 127.0.0.1 that forwards to `upstream` (an endpoint
    /// URL such as [`crate::moto::MotoServer::endpoint`]) following `plan`. It accepts
    /// connections as soon as this returns.
    pub fn start(upstream: &str, plan: FaultPlan) -> FaultProxy {
        let upstream = upstream.trim_end_matches('/').to_owned();
        assert!(
            upstream.starts_with("http://"),
            "the proxy forwards plain HTTP: upstream {upstream:?} is not http://…"
        );
        // Bound here, before returning: no window in which the port is free.
        let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            upstream,
            plan: Mutex::new(ActivePlan::new(plan)),
            records: Mutex::new(Vec::new()),
        });
        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("fault-proxy-{}", addr.port()))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("proxy runtime");
                    runtime.block_on(serve(listener, shared, shutdown_rx));
                    // Dropping the runtime cancels the connections still open.
                })
                .expect("spawn proxy thread")
        };
        FaultProxy {
            addr,
            endpoint: format!("http://{addr}"),
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`: give this to the code under test instead of moto's.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint requests are forwarded to.
    pub fn upstream(&self) -> &str {
        &self.shared.upstream
    }

    /// Replaces the plan (script and random rate) from the next request on; the records
    /// are kept.
    pub fn set_plan(&self, plan: FaultPlan) {
        *self.shared.plan() = ActivePlan::new(plan);
    }

    /// Scripted faults not used yet.
    pub fn scripted_remaining(&self) -> usize {
        self.shared.plan().scripted.len()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.records().clone()
    }

    /// How many requests have arrived so far: a mark for [`FaultProxy::requests_from`].
    pub fn recorded(&self) -> usize {
        self.shared.records().len()
    }

    /// The requests that arrived from the `seq`-th on (0-based), in arrival order: what
    /// one step of a test caused, given `recorded()` taken before it.
    pub fn requests_from(&self, seq: usize) -> Vec<RecordedRequest> {
        self.shared
            .records()
            .get(seq..)
            .map(<[RecordedRequest]>::to_vec)
            .unwrap_or_default()
    }

    /// The requests whose action is `action`, in arrival order.
    pub fn requests_for(&self, action: &str) -> Vec<RecordedRequest> {
        self.shared
            .records()
            .iter()
            .filter(|r| r.action.as_deref() == Some(action))
            .cloned()
            .collect()
    }

    /// How many requests had this action (faulted or not).
    pub fn count(&self, action: &str) -> usize {
        self.shared
            .records()
            .iter()
            .filter(|r| r.action.as_deref() == Some(action))
            .count()
    }

    /// Requests per action (requests without one are not counted).
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for action in self
            .shared
            .records()
            .iter()
            .filter_map(|r| r.action.clone())
        {
            *counts.entry(action).or_insert(0) += 1;
        }
        counts
    }

    /// The actions of all requests, in arrival order (`"-"` for none).
    pub fn actions(&self) -> Vec<String> {
        self.shared
            .records()
            .iter()
            .map(|r| r.action.clone().unwrap_or_else(|| "-".to_owned()))
            .collect()
    }

    /// How many requests got a fault (anything but [`Fault::Pass`]).
    pub fn faults_injected(&self) -> usize {
        self.shared.records().iter().filter(|r| r.faulted()).count()
    }

    /// Forgets the records (not the plan).
    pub fn clear_requests(&self) {
        self.shared.records().clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("endpoint", &self.endpoint)
            .field("upstream", &self.shared.upstream)
            .finish()
    }
}

type UpstreamClient = Client<HttpConnector, Full<Bytes>>;

async fn serve(listener: StdTcpListener, shared: Arc<Shared>, mut shutdown: oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: UpstreamClient = Client::builder(TokioExecutor::new()).build(connector);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors or the like: let the moment pass.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                let client = client.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        handle(request, Arc::clone(&shared), client.clone())
                    });
                    // A connection ends with an error when a fault disconnects it: nothing
                    // to report.
                    let _ = hyper::server::conn::http1::Builder::new()
                        // Flatten: status line, headers and body leave in one write.
                        .writev(false)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
struct Disconnect;

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fault injected: connection dropped")
    }
}

impl std::error::Error for Disconnect {}

async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    client: UpstreamClient,
) -> Result<Response<Full<Bytes>>, Disconnect> {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Err(Disconnect);
    };

    let mut params = BTreeMap::new();
    if let Some(query) = parts.uri.query() {
        params.extend(parse_form(query));
    }
    let form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        params.extend(parse_form(&String::from_utf8_lossy(&body)));
    }
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let action = params.get("Action").cloned().or_else(|| {
        target
            .as_deref()
            .map(|t| t.rsplit('.').next().unwrap_or(t).to_owned())
    });
    let mut headers = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v: &mut String| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }

    // Draw the fault and record the request under one lock of each, in arrival order.
    let fault = shared.plan().next_fault(action.as_deref());
    let seq = {
        let mut records = shared.records();
        let seq = records.len();
        records.push(RecordedRequest {
            seq,
            at,
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers,
            params,
            action,
            body: String::from_utf8_lossy(&body).into_owned(),
            fault: fault.clone(),
            status: None,
            upstream_error: None,
            response_body: None,
        });
        seq
    };
    let finish = |status: u16, upstream_error: Option<String>, body: Option<&Bytes>| {
        if let Some(record) = shared.records().get_mut(seq) {
            record.status = Some(status);
            record.upstream_error = upstream_error;
            record.response_body = body.map(|b| String::from_utf8_lossy(b).into_owned());
        }
    };

    let json_protocol = target.is_some();
    if let Some((status, code, message)) = fault.error_answer(json_protocol) {
        finish(status, None, None);
        return Ok(error_response(status, code, message, seq, json_protocol));
    }
    match fault {
        Fault::Disconnect => return Err(Disconnect),
        Fault::Slow(delay) => tokio::time::sleep(delay).await,
        _ => {}
    }

    match forward(&client, &shared.upstream, parts, body).await {
        Ok((mut response, answer)) => {
            finish(response.status().as_u16(), None, Some(&answer));
            if fault == Fault::DropAnswer {
                return Err(Disconnect);
            }
            if let Fault::ShiftDate(seconds) = fault {
                let shifted = chrono::Utc::now() + chrono::Duration::seconds(seconds);
                let date = shifted.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                if let Ok(value) = date.parse() {
                    response.headers_mut().insert("date", value);
                }
            }
            Ok(response)
        }
        Err(e) => {
            finish(502, Some(e.clone()), None);
            let mut response = Response::new(Full::new(Bytes::from(format!(
                "fault proxy: upstream {} failed: {e}",
                shared.upstream
            ))));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            Ok(response)
        }
    }
}

/// Headers that belong to one connection, not to the message (RFC 9110 §7.6.1), and the
/// framing that the proxy sets itself from the buffered body.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// Forwards the request; returns the answer to pass on and its body (for the record).
async fn forward(
    client: &UpstreamClient,
    upstream: &str,
    mut parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<(Response<Full<Bytes>>, Bytes), String> {
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = format!("{upstream}{path}")
        .parse::<Uri>()
        .map_err(|e| e.to_string())?;
    // The Host header is kept: moto builds URLs (SQS queue URLs, …) from it, and they
    // should keep pointing at the proxy.
    strip_hop_by_hop(&mut parts.headers);
    let request = Request::from_parts(parts, Full::new(body));
    let response = client.request(request).await.map_err(|e| {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        message
    })?;
    let (mut parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("reading the upstream answer: {e}"))?
        .to_bytes();
    strip_hop_by_hop(&mut parts.headers);
    Ok((Response::from_parts(parts, Full::new(body.clone())), body))
}

/// An AWS error answer in the request's protocol.
fn error_response(
    status: u16,
    code: &str,
    message: &str,
    seq: usize,
    json_protocol: bool,
) -> Response<Full<Bytes>> {
    let request_id = format!("c0ffee00-0000-4000-8000-{seq:012}");
    let (content_type, body) = if json_protocol {
        let body = serde_json::json!({ "__type": code, "message": message });
        ("application/x-amz-json-1.0", body.to_string())
    } else {
        let kind = if status >= 500 { "Receiver" } else { "Sender" };
        let body = format!(
            "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
             <Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error>\
             <RequestId>{request_id}</RequestId></ErrorResponse>",
            xml_escape(code),
            xml_escape(message)
        );
        ("text/xml", body)
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    if json_protocol && let Ok(code) = HeaderValue::from_str(code) {
        headers.insert("x-amzn-errortype", code);
    }
    response
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `a=1&b=x+y%21` → {a: 1, b: "x y!"}.
fn parse_form(text: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_decode_str(&s).decode_utf8_lossy().into_owned()
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (decode(name), decode(value)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_parameters_are_decoded() {
        let params = parse_form("Action=PutRolePolicy&PolicyDocument=%7B%22a%22%3A1%7D&X=a+b&Y");
        assert_eq!(
            params,
            vec![
                ("Action".to_owned(), "PutRolePolicy".to_owned()),
                ("PolicyDocument".to_owned(), "{\"a\":1}".to_owned()),
                ("X".to_owned(), "a b".to_owned()),
                ("Y".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn scripted_faults_take_the_first_matching_entry() {
        let mut plan = ActivePlan::new(
            FaultPlan::passthrough()
                .then_for("PutRolePolicy", Fault::Throttle)
                .then(Fault::Unavailable),
        );
        assert_eq!(plan.next_fault(Some("GetRole")), Fault::Unavailable);
        assert_eq!(plan.next_fault(Some("GetRole")), Fault::Pass);
        assert_eq!(plan.next_fault(Some("PutRolePolicy")), Fault::Throttle);
        assert_eq!(plan.next_fault(Some("PutRolePolicy")), Fault::Pass);
    }

    #[test]
    fn random_faults_respect_the_action_filter_and_the_seed() {
        let plan = FaultPlan::passthrough()
            .random(7, 0.5, &[Fault::Throttle, Fault::InternalError])
            .random_only_for(&["PutRolePolicy"]);
        let draw = |plan: &FaultPlan| {
            let mut active = ActivePlan::new(plan.clone());
            (0..100)
                .map(|_| active.next_fault(Some("PutRolePolicy")))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(&plan), draw(&plan), "same seed, same faults");
        let mut active = ActivePlan::new(plan);
        assert!((0..100).all(|_| active.next_fault(Some("GetRolePolicy")) == Fault::Pass));
        assert!((0..100).all(|_| active.next_fault(None) == Fault::Pass));
    }
}
