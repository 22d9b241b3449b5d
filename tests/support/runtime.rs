//! A local Lambda Runtime API, so the functions run in tests as the very binaries that
//! are deployed: the binary is started with `AWS_LAMBDA_RUNTIME_API` pointing here,
//! long-polls `/invocation/next` like on Lambda, and posts its answers back.
//!
//! Only the Runtime API is emulated (next, response, error, init error); the Lambda
//! service around it (scaling, timeouts, retries) is not.
//!
//! The function's stdout and stderr go to a file (see [`LocalLambda::logs`]), not to a
//! pipe: what the function wrote before it answered an invocation is in the file when
//! the answer arrives, so a test can read the log lines of that invocation at once.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

const PREFIX: &str = "/2018-06-01/runtime";

/// What the function answered to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `POST …/response`: the function's result.
    Response(Value),
    /// `POST …/error`: an error report (`errorType`, `errorMessage`).
    Error(Value),
}

#[derive(Default)]
struct Shared {
    pending: Mutex<VecDeque<(String, Bytes)>>,
    arrived: Notify,
    waiting: Mutex<HashMap<String, mpsc::Sender<Answer>>>,
    init_error: Mutex<Option<Value>>,
    /// When the function first asked for work (`GET …/next`).
    first_poll: Mutex<Option<Instant>>,
    /// Events handed to the function.
    delivered: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A function binary running against the local Runtime API; killed on drop.
pub struct LocalLambda {
    name: String,
    shared: Arc<Shared>,
    child: Child,
    started: Instant,
    /// The function's stdout and stderr.
    output: Mutex<Output>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    next_id: AtomicU64,
}

impl LocalLambda {
    /// Starts `binary` as function `name` with the extra environment `env` (the
    /// function's configuration and `AWS_*` settings of the test).
    pub fn start(name: &str, binary: &Path, env: &[(&str, String)]) -> LocalLambda {
        let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared::default());
        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("runtime-api-{}", addr.port()))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime API runtime");
                    runtime.block_on(serve(listener, shared, shutdown_rx));
                })
                .expect("spawn runtime API thread")
        };
        let (output_file, output) = Output::create(name);
        let started = Instant::now();
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                output_file.try_clone().expect("clone the output file"),
            ))
            .stderr(Stdio::from(output_file));
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        LocalLambda {
            name: name.to_owned(),
            shared,
            child,
            started,
            output: Mutex::new(output),
            shutdown: Some(shutdown),
            thread: Some(thread),
            next_id: AtomicU64::new(1),
        }
    }

    /// Invokes the function with `payload` and waits (up to `timeout`) for its answer.
    pub fn invoke_with_timeout(
        &mut self,
        payload: &Value,
        timeout: Duration,
    ) -> Result<Answer, String> {
        self.invoke_raw_with_timeout(&payload.to_string(), timeout)
    }

    /// Invokes the function with `payload` exactly as written (Lambda hands a function
    /// the bytes it was invoked with: a duplicate key, say, reaches it as sent) and
    /// waits (up to `timeout`) for its answer.
    pub fn invoke_raw_with_timeout(
        &mut self,
        payload: &str,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let id = format!(
            "{}-{:08}",
            self.name,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, rx) = mpsc::channel();
        lock(&self.shared.waiting).insert(id.clone(), tx);
        lock(&self.shared.pending).push_back((id.clone(), Bytes::from(payload.to_owned())));
        self.shared.arrived.notify_one();
        let deadline = Instant::now() + timeout;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(answer) => return Ok(answer),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("runtime API stopped".into());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited with {status} before answering; init error: {:?}; output:\n{}",
                    self.name,
                    self.init_error(),
                    self.logs()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not answer within {timeout:?}; output:\n{}",
                    self.name,
                    self.logs()
                ));
            }
        }
    }

    /// Invokes and expects a response (not an error report).
    pub fn invoke(&mut self, payload: &Value) -> Value {
        self.invoke_raw(&payload.to_string())
    }

    /// Invokes with the payload text as written and expects a response.
    pub fn invoke_raw(&mut self, payload: &str) -> Value {
        match self.invoke_raw_with_timeout(payload, Duration::from_secs(60)) {
            Ok(Answer::Response(value)) => value,
            Ok(Answer::Error(error)) => panic!(
                "{} reported an error: {error}\noutput:\n{}",
                self.name,
                self.logs()
            ),
            Err(message) => panic!("{message}"),
        }
    }

    /// How many events the function has taken (`GET …/next` answered with one), whether
    /// or not it answered them yet.
    pub fn invocations(&self) -> u64 {
        self.shared.delivered.load(Ordering::Relaxed)
    }

    /// What the function reported through `/init/error`, if anything.
    pub fn init_error(&self) -> Option<Value> {
        lock(&self.shared.init_error).clone()
    }

    /// Time from process start to the first `GET …/next` (cold start), once polled.
    pub fn time_to_first_poll(&self) -> Option<Duration> {
        lock(&self.shared.first_poll).map(|t| t.duration_since(self.started))
    }

    /// When the process was started: the origin of [`LocalLambda::time_to_first_poll`],
    /// for measuring other moments of a cold start (the first answer) from it.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Waits until the function has asked for its first invocation (its init is done).
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Duration, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(t) = self.time_to_first_poll() {
                return Ok(t);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited with {status} during init; output:\n{}",
                    self.name,
                    self.logs()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not finish init within {timeout:?}",
                    self.name
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Everything the function has printed so far (its JSON log lines), stdout and stderr
    /// in the order written. Complete up to the moment of the call: every line the
    /// function wrote before answering an invocation is there once the answer is.
    pub fn logs(&self) -> String {
        lock(&self.output).lines().join("\n")
    }

    /// The log lines that parse as JSON (see [`LocalLambda::logs`]).
    pub fn json_logs(&self) -> Vec<Value> {
        lock(&self.output)
            .lines()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LocalLambda {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where a function's stdout and stderr go: a file of its own, opened for appending (so
/// the two streams' writes never overwrite each other) and removed from its directory at
/// once, so that nothing is left behind however the test process ends; the descriptors
/// keep it. A regular file, unlike a pipe, needs no reader thread: a line the function
/// has written is readable the moment its `write` returns.
struct Output {
    file: File,
    lines: Vec<String>,
    /// What follows the last newline read so far.
    partial: Vec<u8>,
}

impl Output {
    /// The file to hand to the function (for its stdout and stderr), and its reader.
    fn create(name: &str) -> (File, Output) {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "cutoff-local-lambda-{}-{}-{name}.log",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let writer = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let _ = std::fs::remove_file(&path);
        let output = Output {
            file,
            lines: Vec::new(),
            partial: Vec::new(),
        };
        (writer, output)
    }

    /// Every line written so far, a last one without its newline included.
    fn lines(&mut self) -> Vec<String> {
        let mut read = Vec::new();
        // From where the last call stopped to the current end of the file.
        let _ = self.file.read_to_end(&mut read);
        self.partial.extend_from_slice(&read);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]);
            self.lines.push(text.trim_end_matches('\r').to_owned());
        }
        let mut lines = self.lines.clone();
        if !self.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&self.partial).into_owned());
        }
        lines
    }
}

async fn serve(listener: StdTcpListener, shared: Arc<Shared>, mut shutdown: oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(req, Arc::clone(&shared)));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        }
    }
}

fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(reply(StatusCode::NOT_FOUND, "{}"));
    };
    if method == Method::GET && rest == "/invocation/next" {
        lock(&shared.first_poll).get_or_insert_with(Instant::now);
        loop {
            let notified = shared.arrived.notified();
            if let Some((id, payload)) = lock(&shared.pending).pop_front() {
                shared.delivered.fetch_add(1, Ordering::Relaxed);
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() + 60_000)
                    .unwrap_or(0);
                let mut response = Response::new(Full::new(payload));
                let headers = response.headers_mut();
                headers.insert("lambda-runtime-aws-request-id", id.parse().expect("header"));
                headers.insert(
                    "lambda-runtime-deadline-ms",
                    deadline.to_string().parse().expect("header"),
                );
                headers.insert(
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:local"
                        .parse()
                        .expect("header"),
                );
                headers.insert(
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000"
                        .parse()
                        .expect("header"),
                );
                headers.insert("content-type", "application/json".parse().expect("header"));
                return Ok(response);
            }
            notified.await;
        }
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let value: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    if method == Method::POST && rest == "/init/error" {
        *lock(&shared.init_error) = Some(value);
        return Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#));
    }
    if method == Method::POST
        && let Some(tail) = rest.strip_prefix("/invocation/")
        && let Some((id, kind)) = tail.split_once('/')
    {
        let answer = match kind {
            "response" => Answer::Response(value),
            "error" => Answer::Error(value),
            _ => return Ok(reply(StatusCode::NOT_FOUND, "{}")),
        };
        if let Some(tx) = lock(&shared.waiting).remove(id) {
            let _ = tx.send(answer);
        }
        return Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#));
    }
    Ok(reply(StatusCode::NOT_FOUND, "{}"))
}

/// The function binaries of this workspace: the Makefile's `FUNCTIONS`.
pub const FUNCTIONS: [&str; 4] = ["intake", "revoker", "notifier", "sweeper"];

/// The path of a function binary of this workspace (one of [`FUNCTIONS`]), built (debug)
/// on first use so tests never run a stale one.
///
/// The first call in a process builds all four; later calls, from any test, reuse
/// that. Which build, [`FUNCTIONS_BUILD`] says:
///
/// - `workspace` (what `make unit` sets): `cargo build --workspace --all-targets`,
///   the command `make unit` runs before `cargo test --workspace`. It resolves the
///   dependencies' features as the test build does (dev-dependencies included: the
///   SDK's and tokio's `test-util`), so the functions link against the very
///   dependencies the tests were built with and a fresh clone compiles the SDK once,
///   not twice. The binaries are the functions' own `main.rs`; the extra features
///   add test helpers and change no default.
/// - unset (`make demo`, or `cargo test` run by hand): `cargo build -p intake -p
///   revoker -p notifier -p sweeper`, production features only.
///
/// Either way the command is the one make ran first, so under make it builds nothing
/// and neither build undoes the other.
pub fn function_binary(name: &str) -> PathBuf {
    assert!(
        FUNCTIONS.contains(&name),
        "{name} is not a function binary of this workspace ({FUNCTIONS:?})"
    );
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_functions).join(name)
}

/// How [`function_binary`] builds the functions: `workspace` for the build `make unit`
/// runs before the tests, anything else for the functions alone.
pub const FUNCTIONS_BUILD: &str = "CUTOFF_FUNCTIONS_BUILD";

/// Builds [`FUNCTIONS`] (see [`function_binary`]); returns the directory they are in.
fn build_functions() -> PathBuf {
    let root = crate::workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.current_dir(root).args(["build", "--quiet"]);
    if std::env::var(FUNCTIONS_BUILD).as_deref() == Ok("workspace") {
        command.args(["--workspace", "--all-targets"]);
    } else {
        for function in FUNCTIONS {
            command.args(["-p", function]);
        }
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("running cargo build of {FUNCTIONS:?}: {e}"));
    assert!(status.success(), "cargo build of {FUNCTIONS:?} failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let dir = target.join("debug");
    for function in FUNCTIONS {
        let path = dir.join(function);
        assert!(path.exists(), "{} was not built", path.display());
    }
    dir
}

/// The real revoker on a local Runtime API, configured as the deployment configures it
/// for the home account of moto at `moto_endpoint` (Organization set, no ledger, outcomes
/// on the default bus), plus `extra` variables.
pub fn revoker_on_moto(moto_endpoint: &str, extra: &[(&str, &str)]) -> LocalLambda {
    let mut env: Vec<(&str, String)> = vec![
        ("AWS_ENDPOINT_URL", moto_endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", crate::aws::ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", crate::aws::SECRET_KEY.to_owned()),
        ("AWS_REGION", crate::aws::REGION.to_owned()),
        ("CUTOFF_HOME_ACCOUNT", crate::aws::ACCOUNT.to_owned()),
        ("CUTOFF_PARTITION", "aws".to_owned()),
        ("CUTOFF_EXTERNAL_ID", "cutoff-ext-7f3a".to_owned()),
        ("CUTOFF_OUTCOME_BUS", "default".to_owned()),
        ("CUTOFF_ORGANIZATION_ID", "o-a1b2c3d4e5".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    LocalLambda::start("cutoff-revoker", &function_binary("revoker"), &env)
}
