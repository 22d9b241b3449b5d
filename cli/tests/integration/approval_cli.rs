//! `cutoff pending|approve|refuse` end to end: a medium finding with
//! `CUTOFF_MEDIUM_FINDINGS=ask` through the real intake, queue and revoker asks for
//! approval; the real CLI, signing with an operator's credentials, lists it and
//! approves it through the local function URL stand-in in front of another instance of
//! the real revoker, which writes the deny and records the approver.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use cutoff_tests::aws::ACCOUNT;
use cutoff_tests::function_url::{FunctionUrl, Identity};
use cutoff_tests::moto::MotoServer;
use cutoff_tests::pipeline::Pipeline;
use serde_json::{Value, json};

const OPERATOR_ROLE: &str = "arn:aws:iam::123456789012:role/CutoffBreakGlassOperator";

fn prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("apcli{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn alice() -> Identity {
    Identity::role_session(ACCOUNT, "CutoffBreakGlassOperator", "alice", "ALICE1")
}

fn bob() -> Identity {
    Identity::role_session(ACCOUNT, "CutoffBreakGlassOperator", "bob", "BOB1")
}

fn cutoff(identity: &Identity, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cutoff"));
    command
        .args(args)
        .env("AWS_ENDPOINT_URL", MotoServer::shared().endpoint())
        .env("AWS_REGION", "us-east-1")
        .env_remove("CUTOFF_STACK")
        .env_remove("CUTOFF_OPERATOR_URL")
        .env_remove("CUTOFF_LEDGER_TABLE")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    for (key, value) in identity.env() {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {} stderr {}", stdout(out), stderr(out)))
}

/// A medium finding about `role` through intake and the revoker: the approval's id.
async fn asked(p: &mut Pipeline, finding: &str, role: &str) -> String {
    let role_id = p.create_role(role, Some("payments")).await;
    let report = p.send_event(&json!({
        "version": "0", "id": format!("evt-{finding}"), "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
        "account": ACCOUNT, "time": "2026-11-23T11:56:01Z", "region": "us-east-1", "resources": [],
        "detail": {
            "schemaVersion": "2.0", "accountId": ACCOUNT, "region": "us-east-1", "partition": "aws",
            "id": finding, "type": "Recon:IAMUser/MaliciousIPCaller",
            "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                "accessKeyId": "ASIAZXCVBNMASDFGHJKL", "principalId": format!("{role_id}:ci-runner"),
                "userName": role, "userType": "AssumedRole"}},
            "service": {"serviceName": "guardduty", "archived": false, "count": 1,
                "eventFirstSeen": "2026-11-23T11:40:00.000Z", "eventLastSeen": "2026-11-23T11:55:00.000Z",
                "additionalInfo": {"sample": false}},
            "severity": 5.0, "createdAt": "2026-11-23T11:41:00.000Z", "updatedAt": "2026-11-23T11:56:00.000Z"
        }
    }));
    assert_eq!(report["asked"], 1, "{report}");
    p.drain_requests(5).await;
    let outcomes = p.drain_outcomes().await;
    let detail = outcomes
        .iter()
        .map(|(event, _)| &event["detail"])
        .find(|d| d["target"]["name"] == role)
        .unwrap_or_else(|| panic!("no outcome about {role}: {outcomes:?}"));
    assert_eq!(detail["status"], "awaiting_approval", "{detail}");
    detail["approval"]["id"].as_str().unwrap().to_owned()
}

async fn cutoff_of(p: &Pipeline, role: &str) -> Option<String> {
    cutoff_tests::seed::role_wide_cutoff(&p.iam, role)
        .await
        .map(|c| c.to_string())
}

#[tokio::test]
async fn an_operator_lists_approves_and_refuses_with_the_cli_through_the_operator_path() {
    let moto = MotoServer::shared();
    let prefix = prefix();
    let table = format!("{prefix}-ledger");
    cutoff_tests::aws::ledger_table(moto.endpoint(), &table).await;
    let mut p = Pipeline::start(
        moto,
        &prefix,
        &[
            ("CUTOFF_MEDIUM_FINDINGS", "ask"),
            ("CUTOFF_LEDGER_TABLE", &table),
        ],
    )
    .await;
    let approve_role = format!("{prefix}-ci");
    let refuse_role = format!("{prefix}-scanner");
    let to_approve = asked(&mut p, "dddd0000dddd0000dddd0000dddd0001", &approve_role).await;
    let to_refuse = asked(&mut p, "dddd0000dddd0000dddd0000dddd0002", &refuse_role).await;
    let url = FunctionUrl::start(p.another_revoker(), vec![alice(), bob()], &[OPERATOR_ROLE]);
    let url = url.url();

    // Listed, with the commands.
    let out = cutoff(&alice(), &["pending", "--url", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listing = stdout(&out);
    assert!(listing.starts_with("2 approvals open"), "{listing}");
    assert!(
        listing.contains(&format!("cutoff approve {to_approve}")),
        "{listing}"
    );
    assert!(
        listing.contains(&approve_role) && listing.contains(&refuse_role),
        "{listing}"
    );
    let out = cutoff(&alice(), &["pending", "--url", &url, "--json"]);
    let ids: Vec<String> = json_of(&out)["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&to_approve) && ids.contains(&to_refuse));

    // Refused before any call: a bad id, a bad reason, --direct.
    let (a, r, u) = (to_approve.as_str(), to_refuse.as_str(), url.as_str());
    for args in [
        vec!["approve", "not-an-id", "--url", u],
        vec!["approve", a, "--url", u, "--reason", "two\nlines"],
        vec!["approve", a, "--direct"],
        vec!["refuse", r, "--direct", "--ledger-table", table.as_str()],
    ] {
        let out = cutoff(&alice(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(
        stderr(&cutoff(&alice(), &["approve", &to_approve, "--direct"]))
            .contains("through the deployed stack only")
    );
    assert_eq!(
        cutoff_of(&p, &approve_role).await,
        None,
        "nothing written yet"
    );

    // Approved: the deny written and read back, the approver the caller AWS verified.
    let out = cutoff(
        &alice(),
        &[
            "approve",
            &to_approve,
            "--url",
            &url,
            "--reason",
            "INC-33",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let outcome = json_of(&out);
    assert_eq!(outcome["status"], "applied", "{outcome:#}");
    assert_eq!(outcome["trigger"]["approved_by"], alice().arn.as_str());
    assert_eq!(outcome["approval"]["reason"], "INC-33");
    let cutoff_now = cutoff_of(&p, &approve_role)
        .await
        .expect("the deny is on the role");
    assert_eq!(outcome["cutoff"], cutoff_now.as_str());

    // Again: refused (exit 1), the summary says by whom; nothing more written.
    let out = cutoff(&bob(), &["approve", &to_approve, "--url", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("already approved by {}", alice().arn)),
        "{}",
        stdout(&out)
    );
    assert_eq!(cutoff_of(&p, &approve_role).await, Some(cutoff_now));

    // Refused, with a reason: nothing written, the summary names the decider.
    let out = cutoff(
        &bob(),
        &[
            "refuse",
            &to_refuse,
            "--url",
            &url,
            "--reason",
            "the team's own scanner",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(summary.starts_with("approval_refused:"), "{summary}");
    assert!(
        summary.contains(&format!("decided by    {}", bob().arn)),
        "{summary}"
    );
    assert!(summary.contains("the team's own scanner"), "{summary}");
    assert_eq!(cutoff_of(&p, &refuse_role).await, None);

    let out = cutoff(&alice(), &["pending", "--url", &url]);
    assert_eq!(stdout(&out), "no approvals are open\n");
    // The outcomes went to the bus: the approval's revocation and the refusal.
    let outcomes = p.drain_outcomes().await;
    let statuses: Vec<&str> = outcomes
        .iter()
        .map(|(e, _)| e["detail"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["applied", "approval_refused"], "{outcomes:?}");
}
