//! Shared helpers for the integration tests.
//!
//! - [`fixture_dir`], [`read_expected`]: the JSON fixtures.
//! - [`moto::MotoServer`]: moto's server (the local AWS stand-in, installed by `make tools`
//!   into `.venv/`) on a free port of 127.0.0.1; [`aws::sdk_config`] points the SDK at it.
//! - [`proxy::FaultProxy`]: a recording HTTP proxy in front of moto that injects throttling,
//!   server errors, slowness, dropped connections and permanent errors.
//! - [`evaluator::evaluate`]: an independent IAM policy evaluator (not cutoff's code), the
//!   oracle for "this deny really denies a session issued before the cutoff".
//! - [`seed`]: roles and inline policies written straight to moto, retrying its races.
//! - [`function_url::FunctionUrl`]: the revoker's function URL (IAM auth) in front of a
//!   [`runtime::LocalLambda`]: SigV4 checked by botocore, a resource-policy allow list,
//!   the function URL event in and the HTTP answer out.
//! - [`https_inbox::HttpsInbox`]: an HTTPS endpoint moto's SNS delivers to, as it would
//!   to an HTTPS subscription (Amazon Q Developer in chat applications').

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod aws;
pub mod evaluator;
pub mod event_history;
pub mod function_url;
pub mod https_inbox;
pub mod moto;
pub mod pipeline;
pub mod proxy;
pub mod runtime;
pub mod seed;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// `tests/fixtures/` in the source tree.
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// `tests/fixtures/expected.json`: fixture file name → expected triage.
pub fn read_expected() -> Map<String, Value> {
    let text = std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap();
    match serde_json::from_str(&text).unwrap() {
        Value::Object(map) => map,
        _ => panic!("expected.json is not an object"),
    }
}

/// The workspace root (where the Makefile, `.venv/` and `node_modules/` are): the
/// parent of this crate's directory.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
}

/// A template of `infra/` as JSON, intrinsic functions in long form
/// (tests/support/cfn_to_json.py, with cfn-lint's YAML loader from `.venv/`).
pub fn template_json(name: &str) -> Value {
    let root = workspace_root();
    let out = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/support/cfn_to_json.py"))
        .arg(root.join("infra").join(name))
        .output()
        .expect("run .venv/bin/python (make tools installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cfn_to_json.py prints JSON")
}
