//! The metrics the real function binaries write, read back from their standard output
//! as CloudWatch Logs reads the embedded metric format: a log line that is a JSON
//! object with an `_aws` member, whose directives name the metrics and dimensions at
//! its top level. Every such line is checked against the specification's rules (a
//! millisecond timestamp, dimension sets naming string members that exist, metric
//! definitions naming numbers that exist, within the limits) and against the code's
//! catalog, then the values are added up as CloudWatch would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::{Value, json};

use cutoff_domain::metrics::{CATALOG, MAX_DIMENSIONS_PER_SET, MAX_METRICS_PER_DIRECTIVE, find};
use cutoff_tests::moto::MotoServer;
use cutoff_tests::pipeline::{Pipeline, sqs_record};
use cutoff_tests::proxy::{Fault, FaultPlan, FaultProxy};
use cutoff_tests::runtime::{LocalLambda, function_binary};

const MEMBER: &str = "123456789012";
const NAMESPACE: &str = "cutoff-metrics-test";

fn prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("m{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// One metrics line, read as CloudWatch would read it.
#[derive(Debug, Clone)]
struct Emf {
    /// The dimension members the directives name, with their values.
    dimensions: BTreeMap<String, String>,
    /// Each metric's values (a member may hold one number or an array of them).
    values: BTreeMap<String, Vec<f64>>,
    request_id: String,
}

/// The lines of `lambda`'s output that are EMF documents, each checked against the
/// specification and the catalog (panics naming what is wrong).
fn metrics_of(lambda: &LocalLambda, namespace: &str) -> Vec<Emf> {
    lambda
        .json_logs()
        .into_iter()
        .filter(|line| line.get("_aws").is_some())
        .map(|line| read_emf(&line, namespace).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn read_emf(line: &Value, namespace: &str) -> Result<Emf, String> {
    let root = line.as_object().ok_or("not an object")?;
    let meta = root["_aws"].as_object().ok_or("_aws is not an object")?;
    meta.get("Timestamp")
        .and_then(Value::as_u64)
        .filter(|t| *t > 1_262_304_000_000)
        .ok_or("no Timestamp in milliseconds")?;
    let directives = meta
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .ok_or("no CloudWatchMetrics")?;
    let mut emf = Emf {
        dimensions: BTreeMap::new(),
        values: BTreeMap::new(),
        // cutoff's own: every log line of an invocation carries its request id.
        request_id: line["span"]["requestId"]
            .as_str()
            .ok_or("no span.requestId")?
            .to_owned(),
    };
    if line["level"] != "INFO" || line["message"] != "metrics" {
        return Err("not an INFO `metrics` log line".into());
    }
    for directive in directives {
        if directive["Namespace"] != namespace {
            return Err(format!("namespace {}", directive["Namespace"]));
        }
        let sets = directive["Dimensions"]
            .as_array()
            .ok_or("Dimensions is not an array")?;
        for set in sets {
            let set = set.as_array().ok_or("a dimension set is not an array")?;
            if set.is_empty() || set.len() > MAX_DIMENSIONS_PER_SET {
                return Err("a dimension set's size".into());
            }
            for name in set {
                let name = name.as_str().ok_or("a dimension name is not a string")?;
                let value = root
                    .get(name)
                    .and_then(Value::as_str)
                    .ok_or(format!("dimension {name} is no string member"))?;
                emf.dimensions.insert(name.to_owned(), value.to_owned());
            }
        }
        let metrics = directive["Metrics"]
            .as_array()
            .filter(|m| !m.is_empty() && m.len() <= MAX_METRICS_PER_DIRECTIVE)
            .ok_or("Metrics")?;
        for metric in metrics {
            let name = metric["Name"].as_str().ok_or("a metric has no Name")?;
            let def = find(name).ok_or(format!("{name} is not in the catalog"))?;
            if metric["Unit"] != def.unit.as_str() {
                return Err(format!("{name}'s unit {}", metric["Unit"]));
            }
            let written: Vec<Vec<&str>> = sets
                .iter()
                .map(|s| {
                    s.as_array()
                        .unwrap()
                        .iter()
                        .map(|n| n.as_str().unwrap())
                        .collect()
                })
                .collect();
            if !written
                .iter()
                .all(|s| def.dimensions.iter().any(|d| d == &s.as_slice()))
            {
                return Err(format!(
                    "{name} under dimensions the catalog does not give it"
                ));
            }
            let values = match root.get(name) {
                Some(Value::Number(n)) => vec![n.as_f64().unwrap()],
                Some(Value::Array(items)) if items.len() <= 100 => {
                    items.iter().filter_map(Value::as_f64).collect()
                }
                _ => return Err(format!("{name} is no number member")),
            };
            if values.iter().any(|v| *v < 0.0) {
                return Err(format!("{name} is negative"));
            }
            emf.values.insert(name.to_owned(), values);
        }
    }
    Ok(emf)
}

/// The sum of `metric` over the lines whose dimensions include `filter`, as CloudWatch's
/// Sum statistic of that series would be.
fn sum(lines: &[Emf], metric: &str, filter: &[(&str, &str)]) -> f64 {
    lines
        .iter()
        .filter(|l| {
            filter
                .iter()
                .all(|(k, v)| l.dimensions.get(*k).map(String::as_str) == Some(*v))
        })
        .filter_map(|l| l.values.get(metric))
        .flatten()
        .sum()
}

fn values(lines: &[Emf], metric: &str) -> Vec<(f64, BTreeMap<String, String>)> {
    lines
        .iter()
        .flat_map(|l| {
            l.values
                .get(metric)
                .into_iter()
                .flatten()
                .map(|v| (*v, l.dimensions.clone()))
        })
        .collect()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A GuardDuty finding about a session of `role`, first seen at `first_seen`, in an
/// event EventBridge stamped `time`.
fn finding(
    id: &str,
    role: &str,
    role_id: &str,
    severity: f64,
    first_seen: DateTime<Utc>,
    time: DateTime<Utc>,
) -> Value {
    json!({
        "version": "0", "id": format!("evt-{id}"), "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
        "account": MEMBER, "time": rfc3339(time), "region": "us-east-1", "resources": [],
        "detail": {
            "schemaVersion": "2.0", "accountId": MEMBER, "region": "us-east-1", "partition": "aws",
            "id": id, "arn": format!("arn:aws:guardduty:us-east-1:{MEMBER}:detector/d/finding/{id}"),
            "type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
            "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                "accessKeyId": "ASIAZXCVBNMASDFGHJKL", "principalId": format!("{role_id}:i-0123456789abcdef0"),
                "userName": role, "userType": "AssumedRole"}},
            "service": {"serviceName": "guardduty", "archived": false, "count": 1,
                "eventFirstSeen": rfc3339(first_seen), "eventLastSeen": rfc3339(time),
                "additionalInfo": {"sample": false}},
            "severity": severity, "createdAt": rfc3339(first_seen), "updatedAt": rfc3339(time),
            "title": "Credentials for the EC2 instance role were used from a remote AWS account."
        }
    })
}

#[tokio::test]
async fn the_pipelines_metrics_are_read_from_its_logs_and_time_to_contain_is_the_applied_ones() {
    let moto = MotoServer::shared();
    let prefix = prefix();
    let ledger = format!("{prefix}-ledger");
    cutoff_tests::aws::ledger_table(moto.endpoint(), &ledger).await;
    // IAM's first write of a deny is throttled once: one retry, one throttling answer.
    let proxy = FaultProxy::start(
        moto.endpoint(),
        FaultPlan::passthrough().then_for("PutRolePolicy", Fault::Throttle),
    );
    let mut p = Pipeline::start(
        moto,
        &prefix,
        &[
            ("AWS_ENDPOINT_URL", proxy.endpoint()),
            ("CUTOFF_METRICS_NAMESPACE", NAMESPACE),
            ("CUTOFF_LEDGER_TABLE", &ledger),
        ],
    )
    .await;
    let role = format!("{prefix}-app");
    let role_id = p.create_role(&role, Some("payments")).await;
    // Whole seconds: EventBridge's `time` has no fraction.
    let t0 = Utc::now().trunc_subsecs(0);
    let (first_seen, time) = (t0 - Duration::minutes(10), t0 - Duration::minutes(1));

    // A: revoked (applied). C: the same key again, covered by A's deny (already
    // revoked). B: a role that does not exist (failed). D: medium severity (an alert).
    let a = finding(
        "aaaa0000aaaa0000aaaa0000aaaa00a1",
        &role,
        &role_id,
        8.0,
        first_seen,
        time,
    );
    assert_eq!(p.send_event(&a)["queued"], 1);
    assert_eq!(p.drain_requests(1).await.len(), 1);
    let c = finding(
        "aaaa0000aaaa0000aaaa0000aaaa00c1",
        &role,
        &role_id,
        8.0,
        t0 - Duration::minutes(20),
        time,
    );
    assert_eq!(p.send_event(&c)["queued"], 1);
    assert_eq!(p.drain_requests(1).await.len(), 1);
    let b = finding(
        "aaaa0000aaaa0000aaaa0000aaaa00b1",
        &format!("{prefix}-missing"),
        "AROAZXCVBNMASDFGHJKLQ",
        8.0,
        first_seen,
        time,
    );
    assert_eq!(p.send_event(&b)["queued"], 1);
    assert_eq!(p.drain_requests(1).await.len(), 1);
    let d = finding(
        "aaaa0000aaaa0000aaaa0000aaaa00d1",
        &role,
        &role_id,
        5.0,
        first_seen,
        time,
    );
    assert_eq!(p.send_event(&d)["alerted"], 1);
    let notified = p.drain_outcomes().await;
    assert_eq!(notified.len(), 4, "{notified:?}");
    let done = Utc::now();

    // The revoker: outcomes by status and source, each request once.
    let revoker = metrics_of(&p.revoker, NAMESPACE);
    let by_status = |status: &str| {
        sum(
            &revoker,
            "Outcomes",
            &[("Function", "revoker"), ("Status", status)],
        )
    };
    assert_eq!(by_status("applied"), 1.0, "{revoker:#?}");
    assert_eq!(by_status("already_revoked"), 1.0);
    assert_eq!(by_status("failed"), 1.0);
    assert_eq!(sum(&revoker, "Outcomes", &[("Source", "guardduty")]), 3.0);
    // Time to contain: the applied request only, from its finding's first sight and
    // from its event, to a verification that happened during this test.
    let from_first_seen = values(&revoker, "TimeToContainFromFirstSeen");
    let from_event = values(&revoker, "TimeToContainFromEvent");
    assert_eq!(from_first_seen.len(), 1, "{revoker:#?}");
    assert_eq!(from_event.len(), 1);
    let (first_ms, dims) = &from_first_seen[0];
    assert_eq!(dims.get("Source").map(String::as_str), Some("guardduty"));
    let ms = |d: Duration| d.num_milliseconds() as f64;
    assert!(*first_ms >= ms(t0 - first_seen), "{first_ms}");
    assert!(*first_ms <= ms(done - first_seen), "{first_ms}");
    // Both end at the same verified deny: they differ by exactly the finding's nine
    // minutes between first sight and event.
    assert_eq!(first_ms - from_event[0].0, ms(time - first_seen));
    // IAM calls were counted; the throttled write was retried once.
    assert!(sum(&revoker, "IamCalls", &[("Function", "revoker")]) >= 4.0);
    assert_eq!(sum(&revoker, "Retries", &[("Function", "revoker")]), 1.0);
    assert_eq!(sum(&revoker, "Throttles", &[("Function", "revoker")]), 1.0);

    // Intake: four decisions (three queued, one alert) and the alert it published.
    let intake = metrics_of(&p.intake, NAMESPACE);
    assert_eq!(sum(&intake, "Decisions", &[("Decision", "revoke")]), 3.0);
    assert_eq!(sum(&intake, "Decisions", &[("Decision", "alert")]), 1.0);
    assert_eq!(sum(&intake, "Decisions", &[("Source", "guardduty")]), 4.0);
    assert_eq!(
        sum(
            &intake,
            "Outcomes",
            &[("Function", "intake"), ("Status", "alerted")]
        ),
        1.0
    );
    assert_eq!(sum(&intake, "Retries", &[]), 0.0);

    // The notifier: its messages by the outcome's status.
    let notifier = metrics_of(&p.notifier, NAMESPACE);
    for status in ["applied", "already_revoked", "failed", "alerted"] {
        assert!(
            sum(&notifier, "Notifications", &[("Status", status)]) >= 1.0,
            "{status}: {notifier:#?}"
        );
    }

    // Every line is an invocation's, and every invocation ends with its retries line.
    for (name, lines, lambda) in [
        ("intake", &intake, &p.intake),
        ("revoker", &revoker, &p.revoker),
        ("notifier", &notifier, &p.notifier),
    ] {
        assert!(
            lines
                .iter()
                .all(|l| l.request_id.starts_with(&format!("cutoff-{name}-"))),
            "{name}"
        );
        let invocations = lines
            .iter()
            .filter(|l| l.values.contains_key("Retries"))
            .count();
        assert_eq!(invocations as u64, lambda.invocations(), "{name}");
    }
}

#[tokio::test]
async fn the_sweeper_beats_on_every_planned_sweep_and_counts_what_it_swept() {
    let moto = MotoServer::shared();
    let prefix = prefix();
    let ledger = format!("{prefix}-ledger");
    cutoff_tests::aws::ledger_table(moto.endpoint(), &ledger).await;
    let config = cutoff_tests::aws::sdk_config(moto.endpoint()).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = sqs
        .create_queue()
        .queue_name(format!("{prefix}-sweep-tasks"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    // An account of its own, which no other test uses: nothing in it to change.
    let account = "210987654321";
    let env: Vec<(&str, String)> = vec![
        ("AWS_ENDPOINT_URL", moto.endpoint().to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("CUTOFF_HOME_ACCOUNT", MEMBER.to_owned()),
        ("CUTOFF_PARTITION", "aws".to_owned()),
        ("CUTOFF_OUTCOME_BUS", "default".to_owned()),
        ("CUTOFF_ACCOUNTS", format!("{MEMBER},{account}")),
        ("CUTOFF_SWEEP_QUEUE_URL", queue.clone()),
        ("CUTOFF_LEDGER_TABLE", ledger.clone()),
        ("CUTOFF_METRICS_NAMESPACE", NAMESPACE.to_owned()),
        // What Lambda's log-level controls set with ApplicationLogLevel INFO.
        ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
    ];
    let mut sweeper = LocalLambda::start("cutoff-sweeper", &function_binary("sweeper"), &env);
    let planned = sweeper.invoke(&json!({"action": "sweep", "accounts": [account]}));
    assert_eq!(planned["planned"], true, "{planned}");
    let again = sweeper
        .invoke(&json!({"action": "sweep", "accounts": [account], "run_id": planned["run_id"]}));
    assert_eq!(again["planned"], false, "{again}");

    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(received.len(), 1);
    let arn = format!("arn:aws:sqs:us-east-1:{MEMBER}:{prefix}-sweep-tasks");
    let worked = sweeper.invoke(&json!({"Records": [sqs_record(&received[0], &arn)]}));
    assert_eq!(worked["batchItemFailures"], json!([]), "{worked}");

    let lines = metrics_of(&sweeper, NAMESPACE);
    // A heartbeat for each sweep asked for, the retried one too: the schedule fired.
    assert_eq!(sum(&lines, "Heartbeat", &[("Function", "sweeper")]), 2.0);
    assert_eq!(sum(&lines, "AccountsSwept", &[]), 1.0);
    assert_eq!(sum(&lines, "SweepErrors", &[]), 0.0);
    assert!(sum(&lines, "IamCalls", &[("Function", "sweeper")]) >= 1.0);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.values.contains_key("Retries"))
            .count(),
        3,
        "one line of retries per invocation"
    );
    // Every metric of the catalog the sweeper writes (and no other) came out here but
    // Outcomes: the account had nothing to change.
    let written: std::collections::BTreeSet<&str> = lines
        .iter()
        .flat_map(|l| l.values.keys().map(String::as_str))
        .collect();
    let sweepers: std::collections::BTreeSet<&str> = CATALOG
        .iter()
        .filter(|m| {
            m.functions
                .contains(&cutoff_domain::metrics::Function::Sweeper)
                && m.name != "Outcomes"
        })
        .map(|m| m.name)
        .collect();
    assert_eq!(written, sweepers);
}
