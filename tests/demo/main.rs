//! `make demo`: one stolen role session, contained end to end on this machine.
//!
//! Starts the local AWS stand-in (moto) and the three function binaries on local
//! Lambda Runtime APIs, feeds them a real-shaped GuardDuty finding, and shows what
//! each step did. Everything it starts stops when it ends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::ExitCode;

use chrono::{Duration, SecondsFormat, Utc};
use cutoff_domain::policy::{PolicyDocument, ROLE_WIDE_POLICY_NAME};
use cutoff_tests::aws::ACCOUNT;
use cutoff_tests::evaluator::{Decision, EvalRequest, evaluate};
use cutoff_tests::fixture_dir;
use cutoff_tests::moto::MotoServer;
use cutoff_tests::pipeline::Pipeline;
use serde_json::Value;

const ROLE: &str = "payments-api";
/// The role the thief moved to with the stolen session, and the session name it chose.
const ADMIN_ROLE: &str = "payments-admin";
const PIVOT_SESSION: &str = "backup-job";
const ADMIN_ACCOUNT: &str = "999988887777";

fn heading(step: u32, text: &str) {
    println!("\n\x1b[1m{step}. {text}\x1b[0m");
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("   {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The GuardDuty finding of the fixture corpus for stolen EC2 instance credentials,
/// aimed at the demo role (its RoleId, as GuardDuty names it) and dated now.
fn finding(role_id: &str) -> Value {
    let text = std::fs::read_to_string(
        fixture_dir().join("events/018-gd-instance-credential-exfiltration.json"),
    )
    .expect("the demo finding fixture");
    let mut event: Value = serde_json::from_str(&text).expect("fixture JSON");
    let now = Utc::now();
    let at = |minutes_ago: i64| {
        (now - Duration::minutes(minutes_ago)).to_rfc3339_opts(SecondsFormat::Millis, true)
    };
    event["account"] = ADMIN_ACCOUNT.into();
    event["time"] = at(0).into();
    let detail = &mut event["detail"];
    detail["accountId"] = ACCOUNT.into();
    detail["resource"]["accessKeyDetails"]["userName"] = ROLE.into();
    let session = detail["resource"]["accessKeyDetails"]["principalId"]
        .as_str()
        .and_then(|id| id.split_once(':'))
        .map(|(_, session)| session.to_owned())
        .unwrap_or_default();
    detail["resource"]["accessKeyDetails"]["principalId"] = format!("{role_id}:{session}").into();
    detail["service"]["eventFirstSeen"] = at(14).into();
    detail["service"]["eventLastSeen"] = at(1).into();
    detail["createdAt"] = at(13).into();
    detail["updatedAt"] = at(0).into();
    event
}

async fn run() -> Result<(), String> {
    println!("\x1b[1mcutoff demo\x1b[0m: a stolen role session, contained end to end.");
    println!(
        "Everything runs on this machine: moto stands in for AWS (IAM, STS, SQS, EventBridge, SNS),"
    );
    println!(
        "and intake, revoker and notifier are the real Lambda binaries on local Runtime APIs."
    );

    let moto = MotoServer::start();
    cutoff_tests::aws::ledger_table(moto.endpoint(), "demo-ledger").await;
    let mut p = Pipeline::start(&moto, "demo", &[("CUTOFF_LEDGER_TABLE", "demo-ledger")]).await;

    heading(1, "The account");
    let role_id = p.create_role(ROLE, Some("payments")).await;
    println!("   role {ROLE} in account {ACCOUNT}, tagged cutoff:owner=payments");
    println!(
        "   SNS topics: {} (security team), {} (payments team)",
        p.security_topic, p.payments_topic
    );
    println!(
        "   each topic has an SQS queue subscribed, so the demo can read what the teams receive"
    );

    // What the thief did with the stolen session before GuardDuty noticed: assumed a
    // more powerful role. CloudTrail holds the record (the demo's CloudTrail is a
    // stand-in that serves LookupEvents from these records: moto has none).
    let admin_id = p.create_role(ADMIN_ROLE, Some("payments")).await;
    let event = finding(&role_id);
    let stolen_key = event["detail"]["resource"]["accessKeyDetails"]["accessKeyId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let pivot_at = Utc::now() - Duration::minutes(10);
    p.event_history.add(
        ACCOUNT,
        cutoff_tests::aws::REGION,
        &stolen_key,
        pivot_at,
        serde_json::json!({
            "eventVersion": "1.08", "eventID": "7f9e0d6c-demo-pivot", "eventTime": pivot_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "eventSource": "sts.amazonaws.com", "eventName": "AssumeRole", "awsRegion": cutoff_tests::aws::REGION,
            "userIdentity": {"type": "AssumedRole", "accessKeyId": stolen_key},
            "requestParameters": {"roleArn": format!("arn:aws:iam::{ACCOUNT}:role/{ADMIN_ROLE}"), "roleSessionName": PIVOT_SESSION},
            "responseElements": {
                "credentials": {"accessKeyId": "ASIAQ7PIVOTDEMOKEY01"},
                "assumedRoleUser": {
                    "assumedRoleId": format!("{admin_id}:{PIVOT_SESSION}"),
                    "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/{ADMIN_ROLE}/{PIVOT_SESSION}")
                }
            }
        }),
    );
    println!(
        "   role {ADMIN_ROLE} too; CloudTrail (a local stand-in) records that the stolen session assumed it 10 minutes ago"
    );

    heading(2, "GuardDuty reports a finding");
    let detail = &event["detail"];
    let instance = detail["resource"]["instanceDetails"]["instanceId"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    println!(
        "   {} (severity {})\n   credentials of role {} (instance {}) used from outside AWS; last seen {}",
        detail["type"].as_str().unwrap_or(""),
        detail["severity"],
        ROLE,
        detail["resource"]["instanceDetails"]["instanceId"]
            .as_str()
            .unwrap_or(""),
        detail["service"]["eventLastSeen"].as_str().unwrap_or("")
    );
    println!(
        "   EventBridge delivers it to the intake function (delegated-admin account {ADMIN_ACCOUNT})"
    );

    heading(3, "intake triages it");
    let report = p.send_event(&event);
    let triage = cutoff_domain::triage::triage_bytes(
        event.to_string().as_bytes(),
        &cutoff_domain::settings::TriageConfig::default(),
    )
    .map_err(|e| e.to_string())?;
    for d in &triage.decisions {
        println!(
            "   decision: {}",
            serde_json::to_string(&d.decision)
                .unwrap_or_default()
                .trim_matches('"')
        );
        println!("   reason:   {}", d.reason);
    }
    println!(
        "   intake queued {} request(s) on the FIFO queue (group = account/kind/name)",
        report["queued"]
    );

    heading(4, "revoker applies the deny");
    p.drain_requests(5).await;
    let outcome = p
        .revoker
        .json_logs()
        .into_iter()
        .find(|l| l["message"] == "outcome")
        .ok_or("the revoker logged no outcome")?;
    println!(
        "   outcome: {} ({} API calls)",
        outcome["status"].as_str().unwrap_or("?"),
        outcome["api_calls"]
    );
    println!("   {}", outcome["detail"].as_str().unwrap_or(""));
    // The outcome names the policy: the instance's sessions only (CutoffRevokedSessions)
    // for this finding, every session of the role (AWSRevokeOlderSessions) otherwise.
    let policy_name = outcome["policy"]
        .as_str()
        .unwrap_or(ROLE_WIDE_POLICY_NAME)
        .to_owned();
    let stored = p
        .iam
        .get_role_policy()
        .role_name(ROLE)
        .policy_name(&policy_name)
        .send()
        .await
        .map_err(|e| format!("reading the policy back: {e}"))?;
    let document = PolicyDocument::parse(stored.policy_document()).map_err(|e| e.to_string())?;
    println!("   the inline policy {policy_name} now on role {ROLE}:");
    println!("{}", indent(&indent(&document.to_pretty_json())));

    heading(5, "An independent IAM policy evaluator checks the deny");
    // Whose sessions the cutoff applies to: the role's, or one instance's.
    let (cutoff, denied_userid) = match document.role_wide_cutoff() {
        Some(cutoff) => (cutoff, None),
        None => {
            let (session, cutoff) = document
                .session_cutoffs()
                .into_iter()
                .next()
                .ok_or("the policy has no cutoff")?;
            (cutoff, Some(session.to_string()))
        }
    };
    println!(
        "   (@cloud-copilot/iam-simulate, not cutoff's code; the role also has an allow-all policy)"
    );
    let stolen = format!("{role_id}:{instance}");
    let neighbour = format!("{role_id}:i-0fedcba9876543210");
    let mut cases = vec![
        (
            "the stolen session, issued 1 minute before the cutoff",
            -1,
            stolen.clone(),
        ),
        (
            "a new session of that instance, issued 1 minute after",
            1,
            stolen.clone(),
        ),
    ];
    if denied_userid.is_some() {
        cases.push((
            "another instance's session of the role, issued 1 minute before",
            -1,
            neighbour,
        ));
    }
    for (label, minutes, userid) in cases {
        let issued = (cutoff.as_datetime() + Duration::minutes(minutes))
            .to_rfc3339_opts(SecondsFormat::Secs, true);
        let result = evaluate(
            &EvalRequest::new("s3:GetObject", "arn:aws:s3:::payments-exports/cards.csv", &format!("arn:aws:iam::{ACCOUNT}:role/{ROLE}"))
                .policy(serde_json::json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}))
                .policy(serde_json::from_str::<Value>(&document.to_json()).map_err(|e| e.to_string())?)
                .context("aws:TokenIssueTime", issued.clone())
                .context("aws:userid", userid.clone()),
        );
        let verdict = match result.decision {
            Decision::Allowed => "\x1b[32mAllowed\x1b[0m",
            Decision::ExplicitlyDenied => "\x1b[31mExplicitly denied\x1b[0m",
            Decision::ImplicitlyDenied => "Implicitly denied",
        };
        println!("   {label} ({userid}, issued {issued}): s3:GetObject → {verdict}");
    }

    heading(6, "The outcome event reaches the notifier");
    let delivered = p.drain_outcomes().await;
    for (event, _) in &delivered {
        println!(
            "   bus event: source {}, detail-type {}, status {}",
            event["source"], event["detail-type"], event["detail"]["status"]
        );
    }

    heading(7, "What the payments team received");
    let payments_topic = p.payments_topic.clone();
    let owner = p.inbox(&payments_topic).await;
    for note in &owner {
        println!("   Subject: {}", note.subject);
        // The first part is for people; the JSON outcome follows it.
        let human = note
            .message
            .split(cutoff_domain::notify::SEPARATOR)
            .next()
            .unwrap_or(&note.message);
        println!("{}", indent(human.trim_end()));
        println!(
            "   (followed by the outcome as JSON, and attributes {:?})",
            note.attributes
        );
    }
    let security_topic = p.security_topic.clone();
    let security = p.inbox(&security_topic).await;
    println!(
        "\n   The security team received the same message ({} on its topic).",
        security.len()
    );

    heading(
        8,
        "The follow-up finds the session the thief minted, and revokes it",
    );
    let schedules = p.follow_up_schedules().await;
    println!(
        "   the revoker made {} one-time schedules (EventBridge Scheduler, here moto's):",
        schedules.len()
    );
    for (name, expression, ..) in &schedules {
        println!("     {name} {expression}");
    }
    println!(
        "   run 1 is due a minute after the deny; the demo delivers it now, as Scheduler would:"
    );
    let runs = p.fire_follow_ups(1).await;
    let run = runs.first().ok_or("no follow-up was scheduled")?;
    println!(
        "   outcome: {} ({} API calls)",
        run["status"].as_str().unwrap_or("?"),
        run["api_calls"]
    );
    let links = run["chain"]["links"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for link in &links {
        println!(
            "   found: {}\n     → {}",
            link["found"].as_str().unwrap_or(""),
            link["result"].as_str().unwrap_or("")
        );
    }
    let stored = p
        .iam
        .get_role_policy()
        .role_name(ADMIN_ROLE)
        .policy_name(cutoff_domain::policy::SESSION_POLICY_NAME)
        .send()
        .await
        .map_err(|e| format!("reading the minted session's deny: {e}"))?;
    let document = PolicyDocument::parse(stored.policy_document()).map_err(|e| e.to_string())?;
    let (_, pivot_cutoff) = document
        .session_cutoffs()
        .into_iter()
        .next()
        .ok_or("no session deny on the role the thief assumed")?;
    let mut chain_denied = false;
    for (label, session) in [
        ("the minted session", PIVOT_SESSION),
        ("another session of the role", "nightly-report"),
    ] {
        let userid = format!("{admin_id}:{session}");
        let issued = (pivot_cutoff.as_datetime() - Duration::minutes(1))
            .to_rfc3339_opts(SecondsFormat::Secs, true);
        let result = evaluate(
            &EvalRequest::new("s3:GetObject", "arn:aws:s3:::payments-exports/cards.csv", &format!("arn:aws:iam::{ACCOUNT}:role/{ADMIN_ROLE}"))
                .policy(serde_json::json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}))
                .policy(serde_json::from_str::<Value>(&document.to_json()).map_err(|e| e.to_string())?)
                .context("aws:TokenIssueTime", issued.clone())
                .context("aws:userid", userid.clone()),
        );
        if session == PIVOT_SESSION {
            chain_denied = result.decision == Decision::ExplicitlyDenied;
        }
        let verdict = match result.decision {
            Decision::Allowed => "\x1b[32mAllowed\x1b[0m",
            Decision::ExplicitlyDenied => "\x1b[31mExplicitly denied\x1b[0m",
            Decision::ImplicitlyDenied => "Implicitly denied",
        };
        println!("   evaluator: {label} ({userid}, issued {issued}): s3:GetObject → {verdict}");
    }
    p.drain_outcomes().await;
    let follow_up_notes = p.inbox(&payments_topic).await;
    for note in &follow_up_notes {
        println!("   the payments team received: {}", note.subject);
    }
    let told = follow_up_notes.len() == 2;
    println!("   runs 2 and 3 (+15 and +60 minutes) look again for what CloudTrail delivers late.");

    let ok = outcome["status"] == "applied"
        && owner.len() == 1
        && security.len() == 1
        && run["status"] == "applied"
        && links.len() == 1
        && chain_denied
        && told;
    drop(p);
    drop(moto);
    println!("\nStopped moto and the three functions; nothing is left running.");
    if ok {
        Ok(())
    } else {
        Err("the demo did not end as expected (see above)".to_owned())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("demo failed: {message}");
            ExitCode::FAILURE
        }
    }
}
