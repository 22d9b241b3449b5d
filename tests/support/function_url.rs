//! A local stand-in for the revoker's function URL (`AuthType: AWS_IAM`): an HTTP server
//! on 127.0.0.1 in front of a [`LocalLambda`] (the real revoker binary on the local
//! Runtime API). moto does not emulate function URLs, so this does, for each request,
//! what AWS does before and after the function runs:
//!
//! 1. **Authenticates the caller (SigV4).** The `Authorization` header names an access
//!    key; the front end knows a table of test [`Identity`]s (key → secret, session
//!    token, the caller's ARN). An unknown key, a missing or malformed signature, a
//!    credential scope for another region or service, an `X-Amz-Date` more than five
//!    minutes from now, a session token that is not the key's, or a signature that does
//!    not match is refused with 403 and an AWS-like body, and the function is not
//!    invoked. The signature itself is recomputed by botocore (`tests/sigv4/sigv4.py`,
//!    from the project's `.venv/`), not by cutoff's code nor by the SDK signer the CLI
//!    uses: over exactly the headers the request says it signed, at its own
//!    `X-Amz-Date`, for this URL's region and the service `lambda`.
//! 2. **Applies the resource policy.** Only the principals on the allow list (exact
//!    role or user ARNs, as `OperatorPrincipalArns` grants them) are admitted; a role
//!    session counts as its role. Anyone else: 403.
//! 3. **Invokes the function** with the function URL event (payload version 2.0, as
//!    `aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest` reads it),
//!    `requestContext.authorizer.iam` carrying the verified caller.
//! 4. **Maps the answer back**: a result with `statusCode` gives the status, headers and
//!    body; any other JSON result is the body of a 200 `application/json` answer; a
//!    function error is a 502.
//!
//! Not emulated: the real IAM authorizer (identity policies, SCPs, conditions such as
//! MFA or `lambda:InvokedViaFunctionUrl`), the `Date` header instead of `X-Amz-Date`,
//! presigned query strings, streaming, CORS, cookies, the 6 MB payload limit and
//! throttling. The `authorization` and `x-amz-security-token` headers are not passed to
//! the function (the revoker reads neither).

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener as StdTcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::Bytes;
use chrono::{NaiveDateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use crate::aws::{ACCOUNT, REGION};
use crate::runtime::{Answer, LocalLambda};

/// The URL id AWS would put in the host name (`<id>.lambda-url.<region>.on.aws`).
pub const URL_ID: &str = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6";
/// How far `X-Amz-Date` may be from the front end's clock.
const MAX_SKEW: chrono::Duration = chrono::Duration::minutes(5);
const SIGV4_TIME: &str = "%Y%m%dT%H%M%SZ";

/// A caller the front end can authenticate: what IAM knows about an access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The session token of temporary credentials (`ASIA…`), none for a user's key.
    pub session_token: Option<String>,
    /// The caller's ARN as AWS reports it (`userArn`): an assumed-role session or a user.
    pub arn: String,
    /// `userId`: `<RoleId>:<session>` for a role session, the user's id for a user.
    pub user_id: String,
}

impl Identity {
    /// A session of role `role` in `account`, named `session`, with temporary
    /// credentials.
    pub fn role_session(account: &str, role: &str, session: &str, key_suffix: &str) -> Identity {
        Identity {
            access_key_id: format!("ASIA{key_suffix:0>16}"),
            secret_access_key: format!("secret-of-{role}-{session}"),
            session_token: Some(format!("FwoGZXIvYXdzE-token-of-{role}-{session}")),
            arn: format!("arn:aws:sts::{account}:assumed-role/{role}/{session}"),
            user_id: format!("AROA{key_suffix:0>17}:{session}"),
        }
    }

    /// IAM user `user` in `account`, with a long-term access key.
    pub fn user(account: &str, user: &str, key_suffix: &str) -> Identity {
        Identity {
            access_key_id: format!("AKIA{key_suffix:0>16}"),
            secret_access_key: format!("secret-of-{user}"),
            session_token: None,
            arn: format!("arn:aws:iam::{account}:user/{user}"),
            user_id: format!("AIDA{key_suffix:0>17}"),
        }
    }

    /// The account the caller belongs to (the fifth field of its ARN).
    pub fn account(&self) -> &str {
        self.arn.split(':').nth(4).unwrap_or_default()
    }

    /// The principal a resource policy names for this caller: the role of a role
    /// session (`arn:aws:iam::<account>:role/<role>`), the user itself.
    pub fn policy_principal(&self) -> String {
        match self.arn.split_once(":assumed-role/") {
            Some((prefix, rest)) => {
                let role = rest.split('/').next().unwrap_or_default();
                format!("{}:role/{role}", prefix.replacen(":sts:", ":iam:", 1))
            }
            None => self.arn.clone(),
        }
    }

    /// The same key with another secret: what a forger who knows only the key id has.
    pub fn with_secret(&self, secret: &str) -> Identity {
        Identity {
            secret_access_key: secret.to_owned(),
            ..self.clone()
        }
    }

    /// The environment of a process using these credentials (the AWS CLI and SDK
    /// variables).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
        ];
        if let Some(token) = &self.session_token {
            env.push(("AWS_SESSION_TOKEN", token.clone()));
        }
        env
    }
}

/// What the front end did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    /// The HTTP status answered.
    pub status: u16,
    /// Why the request was refused before the function, if it was.
    pub refused: Option<String>,
    /// The verified caller handed to the function, if it was invoked.
    pub caller: Option<String>,
}

/// An HTTP answer as a client received it.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{e}: HTTP {} body {}", self.status, self.body))
    }
}

struct State {
    lambda: Mutex<LocalLambda>,
    identities: Vec<Identity>,
    allowed: Vec<String>,
    host: String,
    handled: Mutex<Vec<Handled>>,
    next_request: AtomicU64,
}

/// The function URL in front of a revoker; stopped on drop (with the function).
pub struct FunctionUrl {
    state: Arc<State>,
    port: u16,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FunctionUrl {
    /// Serves `lambda` on a free port of 127.0.0.1, authenticating `identities` and
    /// admitting only the principals in `allowed` (exact role or user ARNs).
    pub fn start(lambda: LocalLambda, identities: Vec<Identity>, allowed: &[&str]) -> FunctionUrl {
        let python = venv_python();
        assert!(
            python.exists(),
            "botocore is not installed at {}: run `make tools`",
            python.display()
        );
        let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(State {
            lambda: Mutex::new(lambda),
            identities,
            allowed: allowed.iter().map(|a| (*a).to_owned()).collect(),
            host: format!("127.0.0.1:{port}"),
            handled: Mutex::new(Vec::new()),
            next_request: AtomicU64::new(1),
        });
        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread = {
            let state = Arc::clone(&state);
            thread::Builder::new()
                .name(format!("function-url-{port}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("function URL runtime");
                    runtime.block_on(serve(listener, state, shutdown_rx));
                })
                .expect("spawn function URL thread")
        };
        FunctionUrl {
            state,
            port,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>/`: what `cutoff --url` takes.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// `127.0.0.1:<port>`: the `Host` a request to [`FunctionUrl::url`] carries.
    pub fn host(&self) -> &str {
        &self.state.host
    }

    /// The function behind the URL: for plain invokes, its logs and its invocation
    /// count. Do not hold it while a request is in flight (the front end needs it).
    pub fn lambda(&self) -> MutexGuard<'_, LocalLambda> {
        lock(&self.state.lambda)
    }

    /// Every request so far, in order.
    pub fn handled(&self) -> Vec<Handled> {
        lock(&self.state.handled).clone()
    }

    /// POSTs `body` as JSON, signed by botocore with `identity`'s credentials (region
    /// us-east-1, service `lambda`, now).
    pub fn post_signed(&self, identity: &Identity, body: &str) -> HttpAnswer {
        let headers = vec![
            ("host".to_owned(), self.host().to_owned()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ];
        let signed = botocore_sign(
            identity,
            &SigningScope::default(),
            "POST",
            &self.url(),
            &headers,
            body,
        );
        http_request(self.port, "POST", "/", &[headers, signed].concat(), body)
    }

    /// Sends a request as written (headers as given, no signing): for the attacks.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> HttpAnswer {
        http_request(self.port, method, path, headers, body)
    }
}

impl Drop for FunctionUrl {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Region, service and time of a signature made with [`botocore_sign`].
#[derive(Debug, Clone)]
pub struct SigningScope {
    pub region: String,
    pub service: String,
    /// `YYYYMMDDTHHMMSSZ`; `None` for now.
    pub time: Option<String>,
}

impl Default for SigningScope {
    fn default() -> Self {
        SigningScope {
            region: REGION.to_owned(),
            service: "lambda".to_owned(),
            time: None,
        }
    }
}

/// The headers botocore's SigV4 signer adds to the request (`X-Amz-Date`,
/// `X-Amz-Security-Token`, `Authorization`), signing every header in `headers`.
pub fn botocore_sign(
    identity: &Identity,
    scope: &SigningScope,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &str,
) -> Vec<(String, String)> {
    let input = json!({
        "method": method, "url": url, "headers": headers, "body": body,
        "access_key": identity.access_key_id, "secret_key": identity.secret_access_key,
        "token": identity.session_token, "region": scope.region, "service": scope.service,
        "time": scope.time,
    });
    let out = run_sigv4("sign", &input).unwrap_or_else(|e| panic!("{e}"));
    out["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|h| {
            (
                h[0].as_str().expect("name").to_owned(),
                h[1].as_str().expect("value").to_owned(),
            )
        })
        .collect()
}

fn venv_python() -> PathBuf {
    crate::workspace_root().join(".venv/bin/python")
}

/// Runs `tests/sigv4/sigv4.py <mode>` with `input` on its standard input.
fn run_sigv4(mode: &str, input: &Value) -> Result<Value, String> {
    let script = crate::workspace_root().join("tests/sigv4/sigv4.py");
    let mut child = Command::new(venv_python())
        .arg(&script)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {}: {e} (run `make tools`)", script.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.to_string().as_bytes())
            .map_err(|e| format!("writing to sigv4.py: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for sigv4.py: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "sigv4.py {mode} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "sigv4.py {mode} answered {}: {e}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

async fn serve(listener: StdTcpListener, state: Arc<State>, mut shutdown: oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(req, Arc::clone(&state)));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        }
    }
}

/// One request as received.
struct Received {
    method: String,
    path: String,
    query: String,
    /// Names in lower case, in order; repeated headers repeated.
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut headers = Vec::new();
    for (name, value) in &parts.headers {
        let Ok(value) = value.to_str() else {
            return Ok(respond(
                400,
                &[],
                r#"{"Message":"a header value is not text"}"#,
            ));
        };
        headers.push((name.as_str().to_ascii_lowercase(), value.to_owned()));
    }
    let received = Received {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers,
        body,
    };
    // Verifying runs Python and invoking waits for the function: both block.
    let answer = tokio::task::spawn_blocking(move || serve_one(&state, &received))
        .await
        .unwrap_or_else(|e| {
            (
                500,
                vec![],
                format!("{{\"Message\":\"front end failed: {e}\"}}"),
            )
        });
    let (status, headers, body) = answer;
    Ok(respond(status, &headers, &body))
}

fn respond(status: u16, headers: &[(String, String)], body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

type Reply = (u16, Vec<(String, String)>, String);

/// AWS's answer to a request it refuses before the function (403), with the error type
/// AWS names in `x-amzn-ErrorType`.
fn forbidden(error_type: &str, message: &str) -> Reply {
    (
        403,
        vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-amzn-errortype".to_owned(), error_type.to_owned()),
        ],
        json!({ "Message": message }).to_string(),
    )
}

fn serve_one(state: &State, req: &Received) -> Reply {
    let request_id = format!(
        "00000000-0000-4000-8000-{:012}",
        state.next_request.fetch_add(1, Ordering::Relaxed)
    );
    let (mut reply, handled) = match authenticate(state, req) {
        Err((reply, why)) => {
            let status = reply.0;
            (
                reply,
                Handled {
                    status,
                    refused: Some(why),
                    caller: None,
                },
            )
        }
        Ok(identity) => {
            let event = function_url_event(state, req, &identity, &request_id);
            let answer = lock(&state.lambda).invoke_with_timeout(&event, Duration::from_secs(60));
            let reply = http_reply(answer);
            let status = reply.0;
            (
                reply,
                Handled {
                    status,
                    refused: None,
                    caller: Some(identity.arn.clone()),
                },
            )
        }
    };
    reply
        .1
        .push(("x-amzn-requestid".to_owned(), request_id.clone()));
    lock(&state.handled).push(handled);
    reply
}

/// What AWS checks before the function runs: the signature and the resource policy.
/// The identity of a request that passes; the answer and the reason of one that does
/// not.
fn authenticate(state: &State, req: &Received) -> Result<Identity, (Reply, String)> {
    let refuse =
        |error_type: &str, message: &str, why: String| Err((forbidden(error_type, message), why));
    let authorization = req.header("authorization");
    let [authorization] = authorization.as_slice() else {
        return refuse(
            "AccessDeniedException",
            "Forbidden",
            format!(
                "{} Authorization headers (an unsigned request)",
                authorization.len()
            ),
        );
    };
    let Some(auth) = parse_authorization(authorization) else {
        return refuse(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters of AWS4-HMAC-SHA256.",
            format!("malformed Authorization: {authorization}"),
        );
    };
    let Some(identity) = state
        .identities
        .iter()
        .find(|i| i.access_key_id == auth.access_key)
    else {
        return refuse(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            format!("unknown access key {}", auth.access_key),
        );
    };
    if auth.region != REGION {
        return refuse(
            "InvalidSignatureException",
            &format!(
                "Credential should be scoped to a valid region, not '{}'.",
                auth.region
            ),
            format!("signed for region {}", auth.region),
        );
    }
    if auth.service != "lambda" {
        return refuse(
            "InvalidSignatureException",
            &format!(
                "Credential should be scoped to correct service: 'lambda', not '{}'.",
                auth.service
            ),
            format!("signed for service {}", auth.service),
        );
    }
    let dates = req.header("x-amz-date");
    let Some(date) = dates.first().filter(|_| dates.len() == 1) else {
        return refuse(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            "no X-Amz-Date".to_owned(),
        );
    };
    let Ok(signed_at) = NaiveDateTime::parse_from_str(date, SIGV4_TIME) else {
        return refuse(
            "IncompleteSignatureException",
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
            format!("X-Amz-Date {date}"),
        );
    };
    if !date.starts_with(&auth.date) || auth.date.len() != 8 {
        return refuse(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP",
            format!("scope date {} for X-Amz-Date {date}", auth.date),
        );
    }
    let now = Utc::now().naive_utc();
    if signed_at < now - MAX_SKEW {
        return refuse(
            "InvalidSignatureException",
            &format!(
                "Signature expired: {date} is now earlier than {} ({} - 5 min.)",
                (now - MAX_SKEW).format(SIGV4_TIME),
                now.format(SIGV4_TIME)
            ),
            format!("signed at {date}, more than 5 minutes ago"),
        );
    }
    if signed_at > now + MAX_SKEW {
        return refuse(
            "InvalidSignatureException",
            &format!(
                "Signature not yet current: {date} is still later than {} ({} + 5 min.)",
                (now + MAX_SKEW).format(SIGV4_TIME),
                now.format(SIGV4_TIME)
            ),
            format!("signed at {date}, more than 5 minutes ahead"),
        );
    }
    let tokens = req.header("x-amz-security-token");
    let token_ok = match (&identity.session_token, tokens.as_slice()) {
        (None, []) => true,
        (Some(expected), [given]) => expected == given,
        _ => false,
    };
    if !token_ok {
        return refuse(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            format!(
                "session token does not belong to {}",
                identity.access_key_id
            ),
        );
    }
    let signed = auth.signed_headers.split(';').collect::<Vec<_>>();
    for required in ["host", "x-amz-date"] {
        if !signed.contains(&required) {
            return refuse(
                "InvalidSignatureException",
                &format!("'{required}' must be a 'SignedHeader' in the AWS Authorization."),
                format!("{required} not signed"),
            );
        }
    }
    if tokens.len() == 1 && !signed.contains(&"x-amz-security-token") {
        return refuse(
            "InvalidSignatureException",
            "'x-amz-security-token' must be a 'SignedHeader' in the AWS Authorization.",
            "session token not signed".to_owned(),
        );
    }
    let hosts = req.header("host");
    if hosts.as_slice() != [state.host.as_str()] {
        return refuse(
            "AccessDeniedException",
            "Forbidden",
            format!("Host {hosts:?} is not this URL's {}", state.host),
        );
    }
    // The signature, recomputed by botocore.
    let url = if req.query.is_empty() {
        format!("http://{}{}", state.host, req.path)
    } else {
        format!("http://{}{}?{}", state.host, req.path, req.query)
    };
    let verdict = run_sigv4(
        "verify",
        &json!({
            "method": req.method, "url": url, "headers": req.headers,
            "body_hex": hex(&req.body), "secret_key": identity.secret_access_key,
            "region": REGION, "service": "lambda",
        }),
    );
    match verdict {
        Ok(v) if v["match"] == true => {}
        Ok(v) => {
            return refuse(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
                format!("botocore: {}", v["why"].as_str().unwrap_or("no match")),
            );
        }
        // The oracle itself failed: not a refusal AWS would make. A 500 fails the test.
        Err(e) => return Err(((500, vec![], json!({ "Message": e }).to_string()), e)),
    }
    // The resource policy: only the listed principals may call the URL.
    let principal = identity.policy_principal();
    if !state.allowed.contains(&principal) {
        return refuse(
            "AccessDeniedException",
            "Forbidden. For troubleshooting Function URL authorization issues, see: https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html",
            format!("{principal} is not on the resource policy"),
        );
    }
    Ok(identity.clone())
}

/// The parts of `AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request,
/// SignedHeaders=<names>, Signature=<hex>`.
struct Authorization {
    access_key: String,
    date: String,
    region: String,
    service: String,
    signed_headers: String,
}

fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return None,
        };
        if slot.replace(value.to_owned()).is_some() {
            return None;
        }
    }
    signature.filter(|s| !s.is_empty())?;
    let credential = credential?;
    let fields: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, "aws4_request"] = fields.as_slice() else {
        return None;
    };
    Some(Authorization {
        access_key: (*key).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        signed_headers: signed_headers?,
    })
}

/// The function URL event (payload format 2.0) AWS hands the function.
fn function_url_event(
    state: &State,
    req: &Received,
    identity: &Identity,
    request_id: &str,
) -> Value {
    let mut headers = Map::new();
    for (name, value) in &req.headers {
        if matches!(name.as_str(), "authorization" | "x-amz-security-token") {
            continue;
        }
        match headers.get_mut(name) {
            // Repeated headers are joined with commas.
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(value);
            }
            _ => {
                headers.insert(name.clone(), json!(value));
            }
        }
    }
    let port = state.host.rsplit(':').next().unwrap_or_default().to_owned();
    headers.insert("x-forwarded-for".into(), json!("127.0.0.1"));
    headers.insert("x-forwarded-proto".into(), json!("http"));
    headers.insert("x-forwarded-port".into(), json!(port));
    headers.insert(
        "x-amzn-trace-id".into(),
        json!("Root=1-00000000-000000000000000000000000"),
    );
    let content_type = req.header("content-type").first().map(|c| {
        c.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    let text_type = content_type.as_deref().is_some_and(|c| {
        c.starts_with("text/")
            || matches!(
                c,
                "application/json" | "application/javascript" | "application/xml"
            )
    });
    let now = Utc::now();
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": req.path,
        "rawQueryString": req.query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": URL_ID,
            "authorizer": {"iam": {
                "accessKey": identity.access_key_id,
                "accountId": identity.account(),
                "callerId": identity.user_id,
                "cognitoIdentity": null,
                "principalOrgId": null,
                "userArn": identity.arn,
                "userId": identity.user_id,
            }},
            "domainName": format!("{URL_ID}.lambda-url.{REGION}.on.aws"),
            "domainPrefix": URL_ID,
            "http": {
                "method": req.method,
                "path": req.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": req.header("user-agent").first().copied().unwrap_or_default(),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": false,
    });
    if !req.query.is_empty() {
        let params: Map<String, Value> = req
            .query
            .split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8_lossy()
                        .into_owned()
                };
                (decode(k), json!(decode(v)))
            })
            .collect();
        event["queryStringParameters"] = Value::Object(params);
    }
    if !req.body.is_empty() {
        match std::str::from_utf8(&req.body) {
            Ok(text) if text_type => event["body"] = json!(text),
            _ => {
                event["body"] = json!(base64_encode(&req.body));
                event["isBase64Encoded"] = json!(true);
            }
        }
    }
    event
}

/// The function's answer as the HTTP response AWS makes of it.
fn http_reply(answer: Result<Answer, String>) -> Reply {
    let bad_gateway = |why: &str| {
        (
            502,
            vec![("content-type".to_owned(), "application/json".to_owned())],
            json!({"Message": "Internal Server Error", "why": why}).to_string(),
        )
    };
    let value = match answer {
        Ok(Answer::Response(value)) => value,
        Ok(Answer::Error(error)) => return bad_gateway(&format!("function error: {error}")),
        Err(e) => return bad_gateway(&e),
    };
    let Some(status) = value.get("statusCode") else {
        // Any other JSON is the body of a 200 application/json answer.
        return (
            200,
            vec![("content-type".to_owned(), "application/json".to_owned())],
            value.to_string(),
        );
    };
    let Some(status) = status
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..600).contains(s))
    else {
        return bad_gateway("statusCode is not an HTTP status");
    };
    let mut headers = Vec::new();
    if let Some(map) = value.get("headers").and_then(Value::as_object) {
        for (name, v) in map {
            let Some(v) = v.as_str() else {
                return bad_gateway("a header value is not a string");
            };
            headers.push((name.to_ascii_lowercase(), v.to_owned()));
        }
    }
    let body = match value.get("body") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(body)) => body.clone(),
        Some(_) => return bad_gateway("body is not a string"),
    };
    if value.get("isBase64Encoded") == Some(&Value::Bool(true)) {
        return bad_gateway("base64 answers are not emulated");
    }
    (status, headers, body)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A plain HTTP/1.1 request to 127.0.0.1:`port` (one connection, closed after the
/// answer).
fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> HttpAnswer {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpAnswer {
        status,
        headers,
        body: body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), expected);
        }
    }

    #[test]
    fn a_role_session_is_its_role_to_a_resource_policy() {
        let alice = Identity::role_session("123456789012", "Ops", "alice", "1");
        assert_eq!(
            alice.policy_principal(),
            "arn:aws:iam::123456789012:role/Ops"
        );
        assert_eq!(alice.account(), "123456789012");
        let bob = Identity::user("123456789012", "bob", "2");
        assert_eq!(bob.policy_principal(), "arn:aws:iam::123456789012:user/bob");
    }
}
