//! Shared helpers for the integration tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

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
