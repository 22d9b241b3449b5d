//! Every fixture under `tests/fixtures/events/` is triaged and compared with
//! `tests/fixtures/expected.json` (source, invalid-input exit code, and each
//! decision's verdict, finding and target; the free-text reason is not compared).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use cutoff_domain::principal::{NamePattern, Partition, ProtectedArn};
use cutoff_domain::settings::{ProductV2, TriageConfig};
use cutoff_domain::triage::triage_bytes;
use cutoff_tests::{fixture_dir, read_expected};
use serde_json::Value;

fn config_for(overrides: &Value) -> TriageConfig {
    let mut config = TriageConfig::default();
    if let Some(names) = overrides
        .get("cloudtrail_event_names")
        .and_then(Value::as_array)
    {
        config.cloudtrail_event_names = names
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect();
    }
    if let Some(flag) = overrides
        .get("securityhub_imported")
        .and_then(Value::as_bool)
    {
        config.securityhub_imported = flag;
    }
    if let Some(flag) = overrides.get("securityhub_v2").and_then(Value::as_bool) {
        config.securityhub_v2 = flag;
    }
    if let Some(products) = overrides
        .get("securityhub_v2_products")
        .and_then(Value::as_array)
    {
        config.securityhub_v2_products = products
            .iter()
            .map(|p| ProductV2::parse(p.as_str().unwrap()).unwrap())
            .collect();
    }
    if let Some(names) = overrides.get("protected").and_then(Value::as_array) {
        for name in names {
            config
                .protection
                .patterns
                .push(NamePattern::parse(name.as_str().unwrap()).unwrap());
        }
    }
    if let Some(arns) = overrides.get("protected_arns").and_then(Value::as_array) {
        for arn in arns {
            config
                .protection
                .arns
                .push(ProtectedArn::parse(arn.as_str().unwrap()).unwrap());
        }
    }
    if let Some(partition) = overrides.get("partition").and_then(Value::as_str) {
        config.partition = Partition::parse(partition).unwrap();
    }
    config
}

/// The decision without its free-text reason.
fn comparable(decision: &Value) -> Value {
    let mut d = decision.clone();
    d.as_object_mut().unwrap().remove("reason");
    d
}

#[test]
fn every_fixture_triages_as_expected() {
    let expected = read_expected();
    let mut failures = Vec::new();
    for (file, case) in &expected {
        let bytes = std::fs::read(fixture_dir().join("events").join(file)).unwrap();
        let config = config_for(case.get("config").unwrap_or(&Value::Null));
        let triage = triage_bytes(&bytes, &config).unwrap_or_else(|e| panic!("{file}: {e}"));
        let json = triage.to_json();
        let exit = if triage.invalid_inputs().next().is_some() {
            2
        } else {
            0
        };
        let decisions: Vec<Value> = json["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(comparable)
            .collect();
        let want: Vec<Value> = case["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(comparable)
            .collect();
        if json["source"] != case["source"]
            || exit != case["exit"].as_i64().unwrap()
            || decisions != want
        {
            failures.push(format!(
                "{file}:\n  got    source={} exit={exit} {}\n  wanted source={} exit={} {}",
                json["source"],
                Value::Array(decisions),
                case["source"],
                case["exit"],
                Value::Array(want)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn expected_names_exactly_the_fixture_files() {
    let expected: BTreeSet<String> = read_expected().keys().cloned().collect();
    let files: BTreeSet<String> = std::fs::read_dir(fixture_dir().join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(expected, files);
    assert!(files.len() >= 30, "at least 30 fixtures");
}

#[test]
fn fixtures_cover_every_principal_kind_and_verdict() {
    let mut kinds = BTreeSet::new();
    let mut verdicts = BTreeSet::new();
    for case in read_expected().values() {
        for d in case["decisions"].as_array().unwrap() {
            verdicts.insert(d["decision"].as_str().unwrap().to_owned());
            if let Some(kind) = d["target"]["kind"].as_str() {
                kinds.insert(kind.to_owned());
            }
        }
    }
    for kind in [
        "role",
        "user",
        "root",
        "service_linked_role",
        "identity_center_role",
        "instance_profile",
        "federated_user",
    ] {
        assert!(kinds.contains(kind), "no fixture for {kind}");
    }
    for verdict in ["revoke", "alert", "ignore"] {
        assert!(verdicts.contains(verdict), "no fixture for {verdict}");
    }
}
