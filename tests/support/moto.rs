//! moto's server, the local AWS stand-in, on a free port of 127.0.0.1.
//!
//! `make tools` installs moto into the project-local virtualenv `.venv/`; this module
//! only runs it. Each [`MotoServer`] is a separate moto process with its own state
//! (moto's default account is `123456789012`); [`MotoServer::shared`] is one per test
//! binary for tests that keep to their own names.
//!
//! # No stray servers
//!
//! A test process can die without running destructors (a panic with `panic = abort`,
//! SIGKILL from a timeout, Ctrl-C, or simply a server kept in a `static`). So moto is not
//! started directly but under a small `sh` watchdog that the test process feeds through a
//! pipe on its stdin:
//!
//! ```sh
//! python -m moto.server -H 127.0.0.1 -p PORT &    # moto itself
//! ( cat <&3 >/dev/null; kill -TERM $moto ) &      # fd 3 = our stdin, the pipe
//! wait $moto                                      # the watchdog lives as long as moto
//! ```
//!
//! Nothing is ever written to the pipe. The kernel closes its write end when the test
//! process ends, however it ends, so `cat` sees end-of-file and moto is terminated. No
//! `unsafe` (`PR_SET_PDEATHSIG` would need it) and no reliance on `Drop`. `Drop` does the
//! same thing sooner: it closes the pipe, waits for the watchdog (and so moto) to exit,
//! and as a last resort kills the whole process group, which the watchdog leads
//! (`process_group(0)`), so a `Ctrl-C` on the terminal's group does not reach it either.
//!
//! # Free port
//!
//! The port is found by binding `127.0.0.1:0` and releasing it; another process can take
//! it before moto binds. moto then fails with "Address already in use" and exits, which
//! the watchdog passes on by exiting too: `start` retries with another port. A server is
//! only taken as ready once moto itself has said it is listening on *that* port (so an
//! answer from somebody else's server on a re-used port cannot fool it) and
//! `GET /moto-api/` answers 200.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long moto may take to start (it imports a lot; a loaded 2-core CI machine running
/// several test binaries at once is the slow case).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);
/// Between two readiness checks.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Ports tried before giving up on lost races.
const PORT_ATTEMPTS: usize = 5;
/// After closing the watchdog's stdin, how long moto may take to exit before the process
/// group is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of moto's output kept for failure messages.
const LOG_LINES: usize = 200;

/// `sh -c WATCHDOG <python> <port>`: see the module documentation.
const WATCHDOG: &str = r#"exec 2>&1
exec 3<&0
"$0" -m moto.server -H 127.0.0.1 -p "$1" </dev/null 3<&- &
moto=$!
( cat <&3 >/dev/null; kill -TERM "$moto" 2>/dev/null ) </dev/null &
exec 3<&-
wait "$moto"
"#;

/// The server of [`MotoServer::shared`], once started.
static SHARED: OnceLock<MotoServer> = OnceLock::new();

/// A running moto server; stopped (and reaped) on drop.
pub struct MotoServer {
    port: u16,
    endpoint: String,
    /// The `sh` watchdog, leader of its own process group.
    child: Child,
    /// The watchdog's stdin: closing it stops moto.
    stdin: Option<ChildStdin>,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl MotoServer {
    /// Starts a new moto server on a free port of 127.0.0.1 and waits until it answers.
    ///
    /// Panics, with moto's output, when it cannot start; panics asking to run
    /// `make tools` when `.venv/` has no moto.
    pub fn start() -> MotoServer {
        Self::start_with_env(&[])
    }

    /// [`MotoServer::start`] with `env` in moto's environment: what moto itself reads,
    /// such as `REQUESTS_CA_BUNDLE`, the trust store moto's HTTP(S) deliveries verify
    /// endpoints with.
    pub fn start_with_env(env: &[(&str, &str)]) -> MotoServer {
        let python = venv_python();
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match Self::try_start(&python, port, env) {
                Ok(server) => return server,
                Err(Startup::PortTaken(log)) => last_failure = log,
                Err(Startup::Failed(message)) => panic!("{message}"),
            }
        }
        panic!(
            "moto server: no free port after {PORT_ATTEMPTS} attempts (lost the race each time); \
             last output:\n{last_failure}"
        )
    }

    /// One moto server for the whole test binary, started on first use. It is never
    /// dropped (statics are not); the stdin watchdog stops it when the test process exits.
    /// Tests sharing it run in parallel, and every module of an integration test binary
    /// shares it: keep to names (or accounts) no other test uses, in any module, and never
    /// [`reset`](MotoServer::reset) it; use [`MotoServer::start`] for a private server.
    pub fn shared() -> &'static MotoServer {
        SHARED.get_or_init(MotoServer::start)
    }

    /// `http://127.0.0.1:<port>`: the endpoint URL for SDK clients (see
    /// [`crate::aws::sdk_config`]) or `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Process id of the watchdog (which leads the process group holding moto).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Forgets every resource of every service (`POST /moto-api/reset`). Only for a server
    /// of one's own: on the shared one it would pull the resources from under the tests
    /// running beside, so it panics there instead.
    pub fn reset(&self) {
        assert!(
            !SHARED
                .get()
                .is_some_and(|shared| std::ptr::eq(shared, self)),
            "reset() of the shared moto server would wipe what the tests running beside this \
             one set up: start a server of your own (MotoServer::start)"
        );
        let status = http_status(
            self.port,
            "POST",
            "/moto-api/reset",
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("moto reset failed: {e}"));
        assert_eq!(status, 200, "moto reset answered {status}");
    }

    /// The last lines moto printed (its request log, errors): for failure messages.
    pub fn log_tail(&self) -> String {
        join_log(&self.log)
    }

    fn try_start(python: &PathBuf, port: u16, env: &[(&str, &str)]) -> Result<MotoServer, Startup> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg(python)
            .arg(port.to_string())
            .envs(env.iter().copied())
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| Startup::Failed(format!("cannot run sh to start moto: {e}")))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");

        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES)));
        let listening = Arc::new(AtomicBool::new(false));
        spawn_log_reader(stdout, port, Arc::clone(&log), Arc::clone(&listening));

        let mut server = MotoServer {
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
            stdin,
            log,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                // The watchdog exits when moto does: moto did not start. Wait briefly
                // for the reader to drain the rest of moto's output.
                thread::sleep(POLL_INTERVAL);
                let output = server.log_tail();
                // Already reaped: nothing for Drop to stop.
                server.stdin = None;
                return Err(if output.contains("Address already in use") {
                    Startup::PortTaken(output)
                } else {
                    Startup::Failed(format!(
                        "moto server exited during start-up ({status}); its output:\n{output}"
                    ))
                });
            }
            if listening.load(Ordering::SeqCst)
                && http_status(port, "GET", "/moto-api/", Duration::from_secs(5)) == Ok(200)
            {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                let output = server.log_tail();
                drop(server);
                return Err(Startup::Failed(format!(
                    "moto server did not answer on 127.0.0.1:{port} within {STARTUP_TIMEOUT:?}; \
                     its output:\n{output}"
                )));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // Closing the pipe makes the watchdog terminate moto and then exit itself.
        self.stdin = None;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(POLL_INTERVAL);
        }
        kill_process_group(self.child.id());
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for MotoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MotoServer")
            .field("endpoint", &self.endpoint)
            .field("pid", &self.child.id())
            .finish()
    }
}

enum Startup {
    /// moto could not bind the port: somebody took it first.
    PortTaken(String),
    Failed(String),
}

/// `.venv/bin/python` of the workspace, or a panic saying how to get it.
fn venv_python() -> PathBuf {
    let python = crate::workspace_root().join(".venv/bin/python");
    let stamp = crate::workspace_root().join(".venv/.cutoff-tools-stamp");
    if !python.exists() || !stamp.exists() {
        panic!(
            "moto is not installed at {}: run `make tools` (moto is installed by the Makefile)",
            python.display()
        );
    }
    python
}

/// A port that was free a moment ago (see the module documentation for the race).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Reads moto's output line by line into `log` (the last [`LOG_LINES`]), and raises
/// `listening` when werkzeug reports it is serving on `port`.
fn spawn_log_reader(
    stdout: impl Read + Send + 'static,
    port: u16,
    log: Arc<Mutex<VecDeque<String>>>,
    listening: Arc<AtomicBool>,
) {
    let banner = format!("Running on http://127.0.0.1:{port}");
    thread::Builder::new()
        .name(format!("moto-{port}-log"))
        .spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            // Until every writer (moto, the watchdog) has exited.
            while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                buf.clear();
                if line.contains(&banner) {
                    listening.store(true, Ordering::SeqCst);
                }
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                if log.len() == LOG_LINES {
                    log.pop_front();
                }
                log.push_back(line);
            }
        })
        .expect("spawn moto log reader");
}

fn join_log(log: &Mutex<VecDeque<String>>) -> String {
    let log = log.lock().unwrap_or_else(|e| e.into_inner());
    log.iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Status code of a bodiless request to 127.0.0.1:`port`, on a fresh connection.
fn http_status(port: u16, method: &str, path: &str, timeout: Duration) -> Result<u16, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut status_line = String::new();
    BufReader::new(stream)
        .read_line(&mut status_line)
        .map_err(|e| e.to_string())?;
    // "HTTP/1.1 200 OK"
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP status line: {status_line:?}"))
}

/// SIGKILL to every process of the group `pgid` (the watchdog, moto, the stdin watcher).
fn kill_process_group(pgid: u32) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(r#"kill -KILL -- "-$0" 2>/dev/null"#)
        .arg(pgid.to_string())
        .stdin(Stdio::null())
        .status();
}
