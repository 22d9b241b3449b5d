//! The local AWS stand-in: moto's server as the tests start it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use cutoff_tests::aws::{ACCOUNT, iam_client, sts_client};
use cutoff_tests::moto::MotoServer;

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

fn accepts_connections(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Polls until 127.0.0.1:`port` refuses connections; false if it still accepts them
/// after `timeout`.
fn stops_accepting_within(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !accepts_connections(port) {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

#[tokio::test]
async fn serves_iam_and_sts_in_the_default_account() {
    let moto = MotoServer::start();
    assert!(moto.endpoint().starts_with("http://127.0.0.1:"));
    let iam = iam_client(moto.endpoint()).await;

    let created = iam
        .create_role()
        .role_name("payments-api")
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();
    let role = created.role().unwrap();
    assert_eq!(
        role.arn(),
        format!("arn:aws:iam::{ACCOUNT}:role/payments-api")
    );
    assert!(role.role_id().starts_with("AROA"), "{}", role.role_id());

    let fetched = iam
        .get_role()
        .role_name("payments-api")
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.role().unwrap().role_id(), role.role_id());

    let identity = sts_client(moto.endpoint())
        .await
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(identity.account(), Some(ACCOUNT));
}

#[tokio::test]
async fn servers_are_independent_and_reset_forgets_everything() {
    let (a, b) = (MotoServer::start(), MotoServer::start());
    assert_ne!(a.port(), b.port());
    let iam_a = iam_client(a.endpoint()).await;
    let iam_b = iam_client(b.endpoint()).await;
    iam_a
        .create_role()
        .role_name("only-in-a")
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();

    let in_b = iam_b.get_role().role_name("only-in-a").send().await;
    let err = in_b.expect_err("b has its own state");
    assert!(
        err.as_service_error()
            .unwrap()
            .is_no_such_entity_exception(),
        "{err:?}"
    );

    a.reset();
    let after_reset = iam_a.get_role().role_name("only-in-a").send().await;
    assert!(after_reset.is_err(), "reset forgets the role");
}

#[test]
fn drop_stops_the_server() {
    let moto = MotoServer::start();
    let port = moto.port();
    assert!(accepts_connections(port));
    drop(moto);
    // Drop waits for moto to exit: nothing listens any more.
    assert!(!accepts_connections(port), "moto still listens after drop");
}

#[test]
fn the_shared_server_is_started_once() {
    let first = MotoServer::shared();
    let second = MotoServer::shared();
    assert!(std::ptr::eq(first, second));
    assert!(accepts_connections(first.port()));
}

/// Every module of the test binary uses the shared server at once: a reset would wipe
/// what they set up, so it is refused (before anything is sent).
#[test]
#[should_panic(expected = "reset() of the shared moto server")]
fn the_shared_server_refuses_a_reset() {
    MotoServer::shared().reset();
}

/// Run by `a_killed_test_process_leaves_no_server` in a child process: starts moto, says
/// where, and waits to be killed.
#[test]
#[ignore = "helper: run by a_killed_test_process_leaves_no_server"]
fn helper_hold_a_server_until_killed() {
    if std::env::var_os("CUTOFF_TESTS_HOLD_MOTO").is_none() {
        return;
    }
    let moto = MotoServer::start();
    println!("MOTO_PORT={}", moto.port());
    // Parked until SIGKILL: no destructor will run.
    loop {
        thread::park();
    }
}

/// libtest's name of `test`, a test of this module: its path within the test crate
/// (`moto::…` when this file is a module of the integration binary).
fn test_name(test: &str) -> String {
    match module_path!().split_once("::") {
        Some((_crate, module)) => format!("{module}::{test}"),
        None => test.to_owned(),
    }
}

#[test]
fn a_killed_test_process_leaves_no_server() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg(test_name("helper_hold_a_server_until_killed"))
        .args(["--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("CUTOFF_TESTS_HOLD_MOTO", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut port = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // libtest prints "test moto::helper_… ... " on the same line first.
        if let Some((_, p)) = line.split_once("MOTO_PORT=") {
            port = Some(p.trim().parse::<u16>().unwrap());
            break;
        }
    }
    let port = port.expect("the helper reports moto's port");
    assert!(accepts_connections(port), "the helper's moto is up");

    child.kill().unwrap(); // SIGKILL: no Drop, no cleanup in the test process
    child.wait().unwrap();

    assert!(
        stops_accepting_within(port, Duration::from_secs(15)),
        "moto on port {port} outlived the test process that started it"
    );
}
