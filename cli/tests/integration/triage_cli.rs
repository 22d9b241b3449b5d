//! `cutoff triage` as an operator runs it: the real binary, its stdout, stderr and
//! exit code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use cutoff_tests::{fixture_dir, read_expected};
use serde_json::Value;

fn cutoff(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cutoff"))
        .args(args)
        // The rules must come from the flags below, not from the caller's environment.
        .env_remove("CUTOFF_REVOKE_SEVERITY")
        .env_remove("CUTOFF_ALERT_SEVERITY")
        .env_remove("CUTOFF_PROTECTED")
        .env_remove("CUTOFF_SECURITYHUB_IMPORTED")
        .env_remove("CUTOFF_SECURITYHUB_V2")
        .env_remove("CUTOFF_SECURITYHUB_V2_PRODUCTS")
        .env_remove("CUTOFF_CLOUDTRAIL_EVENTS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        // A child that exits early closes the pipe; that is not a test failure.
        let _ = pipe.write_all(bytes);
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// The contract's exact shape: field names, their order, and the allowed values.
fn assert_contract_shape(json: &Value) {
    assert_eq!(keys(json), ["source", "decisions"]);
    let source = json["source"].as_str().unwrap();
    assert!(
        [
            "guardduty",
            "securityhub",
            "cloudtrail",
            "manual",
            "schedule",
            "unknown"
        ]
        .contains(&source),
        "{source}"
    );
    let decisions = json["decisions"].as_array().unwrap();
    assert!(!decisions.is_empty());
    for d in decisions {
        assert_eq!(keys(d), ["decision", "reason", "finding", "target"]);
        assert!(["revoke", "alert", "ignore"].contains(&d["decision"].as_str().unwrap()));
        assert!(!d["reason"].as_str().unwrap().is_empty());
        if !d["finding"].is_null() {
            assert_eq!(keys(&d["finding"]), ["id", "type", "severity", "sample"]);
            assert!(d["finding"]["sample"].is_boolean());
        }
        if !d["target"].is_null() {
            let t = &d["target"];
            assert_eq!(
                keys(t),
                ["kind", "account", "name", "access_key_id", "session"]
            );
            assert!(
                [
                    "role",
                    "user",
                    "root",
                    "service_linked_role",
                    "identity_center_role",
                    "instance_profile",
                    "federated_user",
                    "unknown"
                ]
                .contains(&t["kind"].as_str().unwrap())
            );
            let account = t["account"].as_str().unwrap();
            assert!(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()));
        }
        if d["decision"] == "revoke" {
            assert!(!d["target"].is_null(), "a revoke always names its target");
        }
    }
}

fn config_flags(config: &Value) -> Vec<String> {
    let mut flags = Vec::new();
    for name in config["cloudtrail_event_names"]
        .as_array()
        .into_iter()
        .flatten()
    {
        flags.extend([
            "--cloudtrail-event".to_owned(),
            name.as_str().unwrap().to_owned(),
        ]);
    }
    if config["securityhub_imported"] == true {
        flags.push("--securityhub-imported".to_owned());
    }
    if config["securityhub_v2"] == true {
        flags.push("--securityhub-v2".to_owned());
    }
    for product in config["securityhub_v2_products"]
        .as_array()
        .into_iter()
        .flatten()
    {
        flags.extend([
            "--securityhub-v2-product".to_owned(),
            product.as_str().unwrap().to_owned(),
        ]);
    }
    for name in config["protected"].as_array().into_iter().flatten() {
        flags.extend(["--protect".to_owned(), name.as_str().unwrap().to_owned()]);
    }
    for arn in config["protected_arns"].as_array().into_iter().flatten() {
        flags.extend(["--protect-arn".to_owned(), arn.as_str().unwrap().to_owned()]);
    }
    if let Some(partition) = config["partition"].as_str() {
        flags.extend(["--partition".to_owned(), partition.to_owned()]);
    }
    flags
}

#[test]
fn every_fixture_prints_the_contract_and_exits_as_expected() {
    for (file, case) in read_expected() {
        let path = fixture_dir().join("events").join(&file);
        let mut args = vec!["triage".to_owned()];
        args.extend(config_flags(&case["config"]));
        args.push(path.to_string_lossy().into_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cutoff(&args, None);
        let code = out.status.code().unwrap();
        assert_eq!(
            code as i64,
            case["exit"].as_i64().unwrap(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_contract_shape(&json);
        assert_eq!(json["source"], case["source"], "{file}");
        let verdicts: Vec<&Value> = json["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| &d["decision"])
            .collect();
        let want: Vec<&Value> = case["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| &d["decision"])
            .collect();
        assert_eq!(verdicts, want, "{file}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if code == 2 {
            assert_eq!(
                stderr.trim_end().lines().count(),
                1,
                "{file}: one-line error, got {stderr:?}"
            );
        } else {
            assert!(stderr.is_empty(), "{file}: {stderr}");
        }
    }
}

#[test]
fn standard_input_is_read_with_a_dash() {
    let bytes = std::fs::read(fixture_dir().join("events/001-gd-assumedrole-high.json")).unwrap();
    let out = cutoff(&["triage", "-"], Some(&bytes));
    assert!(out.status.success());
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["decisions"][0]["decision"], "revoke");
}

/// Inputs a new user might feed it by mistake, and hostile ones: each ends in exit 2
/// with one line on stderr, or in a contract-shaped answer without `revoke`.
#[test]
fn hostile_and_mistaken_input_never_panics_and_never_revokes() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{}1{}", "{\"detail\":".repeat(10_000), "}".repeat(10_000));
    let megabyte_name = format!(
        r#"{{"version":"0","id":"x","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"111122223333","region":"us-east-1","time":"2026-11-23T12:00:00Z","resources":[],
           "detail":{{"accountId":"111122223333","id":"abc","type":"t","severity":9,"resource":{{"accessKeyDetails":{{"userType":"AssumedRole","userName":"{}"}}}},"service":{{}}}}}}"#,
        "a".repeat(1 << 20)
    );
    let wrong_types = r#"{"version":0,"id":[],"detail-type":"GuardDuty Finding","source":"aws.guardduty","account":{},"resources":"none",
        "detail":{"accountId":111122223333,"id":5,"severity":"high","resource":[],"service":"x"}}"#;
    let names = [
        "payments/admin",
        "../admin",
        "paymënts",
        &"r".repeat(65),
        "a b",
        "",
    ];
    let mut inputs: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("whitespace".into(), b"  \n".to_vec()),
        ("not json".into(), b"hello".to_vec()),
        ("binary".into(), vec![0, 159, 146, 150, 255]),
        ("deep array".into(), deep.into_bytes()),
        ("deep object".into(), deep_object.into_bytes()),
        ("1 MB name".into(), megabyte_name.into_bytes()),
        ("wrong types".into(), wrong_types.as_bytes().to_vec()),
        ("number".into(), b"42".to_vec()),
        ("string".into(), b"\"revoke\"".to_vec()),
    ];
    for name in names {
        inputs.push((
            format!("manual {name:.10}"),
            serde_json::to_vec(
                &serde_json::json!({"action": "revoke", "account": "111122223333", "role": name}),
            )
            .unwrap(),
        ));
    }
    for (label, bytes) in inputs {
        let out = cutoff(&["triage", "-"], Some(&bytes));
        let code = out.status.code().unwrap_or(-1);
        assert!(code == 0 || code == 2, "{label}: exit {code}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{label}: {stderr}");
        if code == 2 {
            assert_eq!(stderr.trim_end().lines().count(), 1, "{label}: {stderr:?}");
            assert!(
                stderr.len() < 1_000,
                "{label}: error is bounded ({} bytes)",
                stderr.len()
            );
        }
        if !out.stdout.is_empty() {
            let json: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_contract_shape(&json);
            assert!(
                json["decisions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|d| d["decision"] != "revoke"),
                "{label}"
            );
        }
    }
}

#[test]
fn unreadable_files_and_bad_flags_exit_2_with_one_line() {
    for args in [
        vec!["triage", "/nonexistent/finding.json"],
        vec!["triage", "--revoke-severity", "high", "-"],
        vec!["triage", "--alert-severity", "9", "-"],
        vec!["triage", "--protect", "bad/name", "-"],
        vec!["triage", "--cloudtrail-event", "Stop Logging", "-"],
    ] {
        let out = cutoff(&args, Some(b"{}"));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr:?}");
    }
}

#[test]
fn flags_change_the_rules() {
    let bytes = std::fs::read(fixture_dir().join("events/001-gd-assumedrole-high.json")).unwrap();
    let out = cutoff(&["triage", "--revoke-severity", "9", "-"], Some(&bytes));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["decisions"][0]["decision"], "alert");
    let out = cutoff(&["triage", "--protect", "payments-*", "-"], Some(&bytes));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["decisions"][0]["decision"], "alert");
}

#[test]
fn help_explains_the_command() {
    let out = cutoff(&["triage", "--help"], None);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "FILE|-",
        "revoke",
        "--protect",
        "--cloudtrail-event",
        "Exits 2",
    ] {
        assert!(help.contains(needle), "help mentions {needle}");
    }
}

/// EventBridge's rule matching and cutoff's parser could each take a different one of
/// two equal keys: a finding with two `detail.accountId` values would be matched in one
/// account and revoked in the other. Refused, exit 2, whatever else is in it.
#[test]
fn an_event_with_a_duplicate_key_is_refused_with_exit_two() {
    let event = br#"{"version":"0","id":"x","detail-type":"GuardDuty Finding","source":"aws.guardduty",
        "account":"999988887777","region":"us-east-1","time":"2026-11-23T12:00:00Z","resources":[],
        "detail":{"accountId":"111122223333","accountId":"444455556666","id":"abc","type":"t","severity":9,
          "resource":{"accessKeyDetails":{"userType":"AssumedRole","userName":"payments-api","accessKeyId":"ASIAZXCVBNMASDFGHJKL"}},
          "service":{"serviceName":"guardduty"}}}"#;
    let out = cutoff(&["triage", "-"], Some(event));
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no decision at all");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("duplicate key") && stderr.contains("accountId"),
        "{stderr}"
    );
}
