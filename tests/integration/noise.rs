//! Less noise (issue [13]), on moto with the real binaries: SNS subscription filter
//! policies split incidents from routine messages by the `cutoff_class` attribute the
//! real notifier writes (moto applies a subscription's `FilterPolicy` to message
//! attributes when it delivers to SQS), and the real sweeper publishes a run's summary
//! only when the run changed something, keeps its runs under their day in the ledger,
//! and sends the daily digest once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Utc;
use serde_json::{Value, json};

use cutoff_aws::dynamodb::{SdkSweepLedger, SweepLedger};
use cutoff_domain::notify::{MessageClass, attribute};
use cutoff_domain::outcome::Outcome;
use cutoff_domain::summary::{SweepDigest, SweepSummary};
use cutoff_tests::aws::{ACCOUNT, REGION, sdk_config, sdk_config_in};
use cutoff_tests::moto::MotoServer;
use cutoff_tests::pipeline::sqs_record;
use cutoff_tests::runtime::{LocalLambda, function_binary};

/// Accounts of this module's sweeps, which no other test uses: one with nothing to
/// change, one with a role whose rolling cutoff moves.
const QUIET_ACCOUNT: &str = "310987654321";
const MOVING_ACCOUNT: &str = "310987654322";

fn prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("noise{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

/// Every message waiting on `url` (and removes it), oldest first as SQS hands them.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut out = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            return out;
        }
        for m in &received {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
        out.extend(received);
    }
}

/// What an SQS subscriber of a topic received: (subject, the message attributes).
async fn received(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<(String, BTreeMap<String, String>)> {
    drain(sqs, url)
        .await
        .iter()
        .map(|m| {
            let envelope: Value =
                serde_json::from_str(m.body.as_deref().unwrap_or("null")).expect("SNS envelope");
            let attributes = envelope["MessageAttributes"]
                .as_object()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.clone(), v["Value"].as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            (
                envelope["Subject"].as_str().unwrap_or("").to_owned(),
                attributes,
            )
        })
        .collect()
}

fn outcome(status: &str, source: &str, name: &str) -> Outcome {
    serde_json::from_value(json!({
        "status": status,
        "target": {"kind": "role", "account": "111122223333", "name": name,
                   "access_key_id": null, "session": null},
        "cutoff": "2026-11-23T12:00:02Z", "previous_cutoff": null,
        "policy": "AWSRevokeOlderSessions", "scope": "role",
        "owner": {"team": null, "topic": null},
        "trigger": {"source": source, "finding_id": null, "finding_type": null,
                    "severity": null, "updated_at": null, "requested_by": null,
                    "reason": "test"},
        "api_calls": 3, "error": null, "propagation": "eventual",
        "detail": "test", "actions": [], "dry_run": false,
        "request_id": "req-noise", "activity_region": null
    }))
    .unwrap()
}

fn event(detail_type: &str, detail: impl serde::Serialize) -> Value {
    json!({"version": "0", "id": "e", "source": "cutoff", "detail-type": detail_type,
           "account": ACCOUNT, "time": "2026-11-23T12:00:00Z", "region": REGION,
           "resources": [], "detail": detail})
}

#[tokio::test]
async fn a_pager_subscription_filtered_on_the_class_gets_the_incidents_and_nothing_routine() {
    let moto = MotoServer::shared();
    let prefix = prefix();
    let config = sdk_config(moto.endpoint()).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let sns = aws_sdk_sns::Client::new(&config);
    let topic = sns
        .create_topic()
        .name(format!("{prefix}-security"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    // The subscribers docs/pipeline.md suggests: everything, the pager (incidents
    // only, the template's PagerSubscription), a routine-only channel, and a pager that
    // also leaves sweep failures for working hours.
    let class = |c: MessageClass| json!({ attribute::CLASS: [c.as_str()] });
    let mut inboxes = BTreeMap::new();
    for (name, filter) in [
        ("all", None),
        ("pager", Some(class(MessageClass::Incident))),
        ("routine", Some(class(MessageClass::Routine))),
        (
            "pager-no-sweep",
            Some(json!({
                attribute::CLASS: [MessageClass::Incident.as_str()],
                attribute::STATUS: [{"anything-but": ["sweep_failed"]}]
            })),
        ),
    ] {
        let queue = format!("{prefix}-{name}");
        let url = create_queue(&sqs, &queue).await;
        let mut subscribe = sns
            .subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(queue_arn(&queue));
        if let Some(policy) = filter {
            subscribe = subscribe
                .attributes("FilterPolicyScope", "MessageAttributes")
                .attributes("FilterPolicy", policy.to_string());
        }
        subscribe.send().await.expect("subscribe");
        inboxes.insert(name, url);
    }
    let env: Vec<(&str, String)> = vec![
        ("AWS_ENDPOINT_URL", moto.endpoint().to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("CUTOFF_SECURITY_TOPIC_ARN", topic.clone()),
        ("CUTOFF_UPDATE_SECURITY_HUB", "false".to_owned()),
    ];
    let mut notifier = LocalLambda::start("cutoff-notifier", &function_binary("notifier"), &env);

    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc();
    let summary = |moved: u64, failed: u64| {
        let mut s = SweepSummary::from_records(
            &format!("run-{moved}-{failed}"),
            at("2026-11-23T12:00:00Z"),
            at("2026-11-23T12:01:00Z"),
            1,
            false,
            &[],
        );
        s.accounts_reported = 1;
        s.cutoffs_moved = moved;
        s.principals_failed = failed;
        s
    };
    let digest = SweepDigest::of_day(
        chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
        &[],
        at("2026-11-23T00:05:00Z"),
        "run-digest",
    );
    // (what, event, its class)
    let sent = [
        (
            "a revocation",
            event(
                "Revocation Outcome",
                outcome("applied", "guardduty", "stolen"),
            ),
            MessageClass::Incident,
        ),
        (
            "a rolling cutoff moved",
            event(
                "Revocation Outcome",
                outcome("applied", "schedule", "batch"),
            ),
            MessageClass::Routine,
        ),
        (
            "a sweep that only moved cutoffs",
            event("Sweep Summary", summary(2, 0)),
            MessageClass::Routine,
        ),
        (
            "a sweep with a failed principal",
            event("Sweep Summary", summary(0, 1)),
            MessageClass::Incident,
        ),
        (
            "the digest",
            event("Sweep Digest", &digest),
            MessageClass::Routine,
        ),
    ];
    for (what, event, _) in &sent {
        let answer = notifier.invoke(event);
        assert_eq!(
            answer["published"].as_array().map(Vec::len),
            Some(1),
            "{what}: {answer}"
        );
    }

    let all = received(&sqs, &inboxes["all"]).await;
    assert_eq!(all.len(), sent.len(), "{all:#?}");
    // Every message carries its class; the unfiltered subscriber sees both.
    let classes: Vec<&str> = all
        .iter()
        .map(|(_, a)| a.get(attribute::CLASS).map_or("none", String::as_str))
        .collect();
    assert_eq!(
        classes.iter().filter(|c| **c == "incident").count(),
        2,
        "{classes:?}"
    );
    assert_eq!(classes.iter().filter(|c| **c == "routine").count(), 3);
    for (name, class) in [
        ("pager", MessageClass::Incident),
        ("routine", MessageClass::Routine),
    ] {
        let got = received(&sqs, &inboxes[name]).await;
        let expected = sent.iter().filter(|(_, _, c)| *c == class).count();
        assert_eq!(got.len(), expected, "{name}: {got:#?}");
        for (subject, attributes) in &got {
            assert_eq!(
                attributes.get(attribute::CLASS).map(String::as_str),
                Some(class.as_str()),
                "{name} received {subject}"
            );
        }
    }
    let got = received(&sqs, &inboxes["pager-no-sweep"]).await;
    let statuses: Vec<&str> = got
        .iter()
        .map(|(_, a)| a[attribute::STATUS].as_str())
        .collect();
    assert_eq!(statuses, ["applied"], "{got:#?}");
}

/// The sweeper on moto, with its queue, ledger, and an outcome bus whose events a rule
/// copies to a queue the test reads.
struct Sweep {
    sqs: aws_sdk_sqs::Client,
    tasks_url: String,
    tasks_arn: String,
    bus_url: String,
    ledger: SdkSweepLedger,
    lambda: LocalLambda,
}

impl Sweep {
    async fn start(moto: &MotoServer, prefix: &str) -> Sweep {
        let config = sdk_config(moto.endpoint()).await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let events = aws_sdk_eventbridge::Client::new(&config);
        let table = format!("{prefix}-ledger");
        cutoff_tests::aws::ledger_table(moto.endpoint(), &table).await;
        let tasks = format!("{prefix}-sweep-tasks");
        let tasks_url = create_queue(&sqs, &tasks).await;
        let seen = format!("{prefix}-bus-events");
        let bus_url = create_queue(&sqs, &seen).await;
        let bus = format!("{prefix}-outcomes");
        events.create_event_bus().name(&bus).send().await.unwrap();
        events
            .put_rule()
            .name(format!("{prefix}-everything"))
            .event_bus_name(&bus)
            .event_pattern(r#"{"source":["cutoff"]}"#)
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .rule(format!("{prefix}-everything"))
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("test")
                    .arn(queue_arn(&seen))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let env: Vec<(&str, String)> = vec![
            ("AWS_ENDPOINT_URL", moto.endpoint().to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("CUTOFF_HOME_ACCOUNT", ACCOUNT.to_owned()),
            ("CUTOFF_PARTITION", "aws".to_owned()),
            ("CUTOFF_OUTCOME_BUS", bus),
            (
                "CUTOFF_ACCOUNTS",
                format!("{ACCOUNT},{QUIET_ACCOUNT},{MOVING_ACCOUNT}"),
            ),
            ("CUTOFF_SWEEP_QUEUE_URL", tasks_url.clone()),
            ("CUTOFF_LEDGER_TABLE", table.clone()),
            ("CUTOFF_SWEEP_DIGEST", "daily".to_owned()),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
        ];
        Sweep {
            ledger: SdkSweepLedger::new(aws_sdk_dynamodb::Client::new(&config), table),
            lambda: LocalLambda::start("cutoff-sweeper", &function_binary("sweeper"), &env),
            sqs,
            tasks_url,
            tasks_arn: queue_arn(&tasks),
            bus_url,
        }
    }

    /// Plans a run of `account` (the Lambda's answer), then works its task as the
    /// event source mapping would.
    async fn run(&mut self, run_id: &str, account: &str) -> Value {
        let planned = self
            .lambda
            .invoke(&json!({"action": "sweep", "accounts": [account], "run_id": run_id}));
        assert_eq!(planned["planned"], true, "{planned}");
        let tasks = drain(&self.sqs, &self.tasks_url).await;
        assert_eq!(tasks.len(), 1, "one account, one task");
        let worked = self
            .lambda
            .invoke(&json!({"Records": [sqs_record(&tasks[0], &self.tasks_arn)]}));
        assert_eq!(worked["batchItemFailures"], json!([]), "{worked}");
        planned
    }

    /// The events the bus carried since the last call: (detail-type, detail).
    async fn bus_events(&self) -> Vec<(String, Value)> {
        drain(&self.sqs, &self.bus_url)
            .await
            .iter()
            .map(|m| {
                let e: Value = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
                (
                    e["detail-type"].as_str().unwrap().to_owned(),
                    e["detail"].clone(),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn a_quiet_sweep_publishes_no_summary_one_that_moved_a_cutoff_does_and_the_digest_goes_once()
{
    let moto = MotoServer::shared();
    let prefix = prefix();
    // A role whose sessions may be 4 hours old at most: the sweep moves its cutoff.
    let member = aws_sdk_iam::Client::new(&sdk_config_in(moto.endpoint(), MOVING_ACCOUNT).await);
    let role = format!("{prefix}-batch");
    cutoff_tests::seed::create_role(&member, &role, &[("cutoff:max-session-age", "4h")])
        .await
        .expect("create the role");
    let mut sweep = Sweep::start(moto, &prefix).await;

    // The first run of the day: nothing to change, so no summary; it sends the
    // digest of the day before, a day without runs in this ledger.
    let quiet_run = format!("{prefix}-quiet");
    let planned = sweep.run(&quiet_run, QUIET_ACCOUNT).await;
    assert_eq!(planned["digest"]["result"], "sent", "{planned}");
    let digest_day = planned["digest"]["day"].as_str().unwrap().to_owned();
    let events = sweep.bus_events().await;
    let kinds: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        kinds,
        ["Sweep Digest"],
        "no summary of a quiet run: {events:#?}"
    );
    let digest: SweepDigest = serde_json::from_value(events[0].1.clone()).unwrap();
    assert_eq!(digest.date.to_string(), digest_day);
    assert_eq!(
        (digest.runs, digest.made_by.as_str()),
        (0, quiet_run.as_str())
    );
    // The quiet run was finished all the same: logged, and recorded under its day.
    let finished: Vec<Value> = sweep
        .lambda
        .json_logs()
        .into_iter()
        .filter(|l| l["message"] == "sweep run finished")
        .collect();
    assert_eq!(finished.len(), 1, "{}", sweep.lambda.logs());
    assert_eq!(finished[0]["summary"], "quiet");

    // The next run moves a cutoff: its owner's outcome and its summary go out; the
    // digest of the day before does not go again.
    let moving_run = format!("{prefix}-moving");
    let planned = sweep.run(&moving_run, MOVING_ACCOUNT).await;
    assert_eq!(planned["digest"]["result"], "claimed", "{planned}");
    let events = sweep.bus_events().await;
    let summaries: Vec<&Value> = events
        .iter()
        .filter(|(t, _)| t == "Sweep Summary")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(summaries.len(), 1, "{events:#?}");
    assert_eq!(summaries[0]["run_id"], moving_run.as_str());
    assert_eq!(summaries[0]["cutoffs_moved"], 1);
    assert!(
        events
            .iter()
            .any(|(t, d)| t == "Revocation Outcome" && d["target"]["name"] == role.as_str()),
        "{events:#?}"
    );
    assert!(events.iter().all(|(t, _)| t != "Sweep Digest"));

    // Both runs are under their day in the ledger, finished, one quiet: what the next
    // day's digest will add up. (Read through the SDK adapter the sweeper uses.)
    let today = Utc::now().date_naive();
    let mut runs = sweep.ledger.day_runs(today).await.unwrap();
    if runs.is_empty() {
        // The runs started just before midnight UTC.
        runs = sweep
            .ledger
            .day_runs(today.pred_opt().unwrap())
            .await
            .unwrap();
    }
    runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, [moving_run.as_str(), quiet_run.as_str()]);
    let totals: Vec<_> = runs
        .iter()
        .map(|r| r.totals.clone().expect("finished"))
        .collect();
    assert_eq!(totals[0].cutoffs_moved, 1);
    assert!(!totals[0].is_quiet(runs[0].accounts));
    assert!(totals[1].is_quiet(runs[1].accounts));
}

#[tokio::test]
async fn the_digest_claim_on_dynamodb_lets_one_of_two_claimants_through() {
    let moto = MotoServer::shared();
    let prefix = prefix();
    let table = format!("{prefix}-ledger");
    cutoff_tests::aws::ledger_table(moto.endpoint(), &table).await;
    let config = sdk_config(moto.endpoint()).await;
    let ledger = SdkSweepLedger::new(aws_sdk_dynamodb::Client::new(&config), table);
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T00:05:00Z")
        .unwrap()
        .to_utc();
    // One after the other: moto does not make a conditional write atomic against a
    // concurrent one (a fresh-clone run saw both claims pass), DynamoDB does; what
    // moto can show is that the condition refuses a second claimant.
    let a = ledger.claim_digest(day, "run-a", now).await.unwrap();
    let b = ledger.claim_digest(day, "run-b", now).await.unwrap();
    assert!(a ^ b, "exactly one claim: {a} {b}");
    let (winner, loser) = if a {
        ("run-a", "run-b")
    } else {
        ("run-b", "run-a")
    };
    // The winner may retry (a failed publish); the other may not, until the claim is
    // stale; once sent, nobody may.
    assert!(ledger.claim_digest(day, winner, now).await.unwrap());
    let later = now + chrono::Duration::minutes(10);
    assert!(!ledger.claim_digest(day, loser, later).await.unwrap());
    let stale = now + chrono::Duration::minutes(20);
    assert!(ledger.claim_digest(day, loser, stale).await.unwrap());
    ledger.digest_sent(day, loser).await.unwrap();
    let much_later = now + chrono::Duration::hours(5);
    for claimant in [winner, loser, "run-c"] {
        assert!(
            !ledger
                .claim_digest(day, claimant, much_later)
                .await
                .unwrap(),
            "{claimant}"
        );
    }
    // Another day is another claim.
    assert!(
        ledger
            .claim_digest(day.succ_opt().unwrap(), "run-c", much_later)
            .await
            .unwrap()
    );
}
