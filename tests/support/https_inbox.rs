//! An HTTPS subscriber for moto's SNS: what an HTTPS subscription, such as Amazon Q
//! Developer in chat applications', receives of a publish.
//!
//! moto delivers to `https` subscriptions itself, with Python's `requests`, which
//! verifies the endpoint's certificate against `REQUESTS_CA_BUNDLE`. So the endpoint
//! (tests/support/https_inbox.py, Python's standard library only) serves the test
//! certificate of `shared/aws/tests/fixtures/tls/` (for 127.0.0.1), and the moto
//! server it is subscribed on is a private one started with [`HttpsInbox::moto_env`].
//! It exits when this process's end closes its standard input.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a delivery may take to be read back (moto delivers during `Publish`, so it
/// is normally there already).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The running endpoint; stopped on drop.
pub struct HttpsInbox {
    port: u16,
    child: Child,
    stdin: Option<ChildStdin>,
    received: Arc<(Mutex<Vec<Value>>, Condvar)>,
}

fn tls_fixture(name: &str) -> PathBuf {
    crate::workspace_root()
        .join("shared/aws/tests/fixtures/tls")
        .join(name)
}

impl HttpsInbox {
    /// Starts the endpoint on a free port of 127.0.0.1.
    pub fn start() -> HttpsInbox {
        let root = crate::workspace_root();
        let mut child = Command::new(root.join(".venv/bin/python"))
            .arg(root.join("tests/support/https_inbox.py"))
            .arg(tls_fixture("server.pem"))
            .arg(tls_fixture("server.key"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run .venv/bin/python (make tools installs it)");
        let stdin = child.stdin.take();
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let first = lines
            .next()
            .and_then(Result::ok)
            .expect("https_inbox.py says where it listens");
        let port = first
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("https_inbox.py said {first:?}"));
        let received: Arc<(Mutex<Vec<Value>>, Condvar)> = Arc::default();
        let sink = Arc::clone(&received);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let delivery: Value = serde_json::from_str(&line).expect("a JSON line");
                let (list, arrived) = &*sink;
                list.lock().unwrap().push(delivery);
                arrived.notify_all();
            }
        });
        HttpsInbox {
            port,
            child,
            stdin,
            received,
        }
    }

    /// `https://127.0.0.1:<port>/`: the subscription's endpoint.
    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port)
    }

    /// What moto needs in its environment to trust this endpoint.
    pub fn moto_env() -> Vec<(&'static str, String)> {
        vec![(
            "REQUESTS_CA_BUNDLE",
            tls_fixture("ca.pem").display().to_string(),
        )]
    }

    /// The bodies of the first `count` deliveries (SNS's JSON envelopes), waiting for
    /// them up to [`DELIVERY_TIMEOUT`].
    pub fn deliveries(&self, count: usize) -> Vec<Value> {
        let (list, arrived) = &*self.received;
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        let mut got = list.lock().unwrap();
        while got.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{} of {count} deliveries arrived",
                got.len()
            );
            got = arrived.wait_timeout(got, left).unwrap().0;
        }
        got.iter()
            .take(count)
            .map(|d| serde_json::from_str(d["body"].as_str().unwrap_or("null")).expect("JSON"))
            .collect()
    }
}

impl Drop for HttpsInbox {
    fn drop(&mut self) {
        // Closing its standard input ends it.
        self.stdin = None;
        let _ = self.child.wait();
    }
}
