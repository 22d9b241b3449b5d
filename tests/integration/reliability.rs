//! Reliability of the whole pipeline: the three function binaries on local Lambda
//! Runtime APIs, wired through moto's SQS, EventBridge and SNS as in
//! `tests/integration/pipeline.rs`, with every AWS call the functions make going through
//! the fault-injecting proxy (`AWS_ENDPOINT_URL` of all three points at it; the test's own
//! set-up and read-back calls go to moto directly and are never faulted).
//!
//! - 200 revocations under 20% injected faults (throttling, 500/503, slow answers,
//!   connections dropped before the call and after it took effect) all end applied,
//!   with correct cutoffs, every outcome notified, and every notification accounted for
//!   exactly against what the proxy let through.
//! - Under a permanent AccessDenied every request ends failed, is notified on its first
//!   and last attempt, and ends in the dead-letter queue: none lost.
//! - What the functions log is JSON lines with the Lambda request id, and never a
//!   credential, a session token or a policy document.
//!
//! What Lambda does around the functions is emulated here: the SQS event-source mapping
//! ([`Pipeline::deliver_request_batch`]; failed batch items are received again at once,
//! the request queue's visibility timeout being 0, and moto's RedrivePolicy moves a
//! message to the dead-letter queue once it has been received maxReceiveCount times), and
//! the asynchronous-invocation retries of intake and the notifier (an invocation that
//! reports an error runs again, three attempts in all, Lambda's default).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{DateTime, TimeDelta, Utc};
use cutoff_domain::notify::SEPARATOR;
use cutoff_tests::moto::MotoServer;
use cutoff_tests::pipeline::{DeliveredBatch, Notification, OWNER_TEAM, Pipeline};
use cutoff_tests::proxy::{Fault, FaultPlan, FaultProxy, RecordedRequest};
use cutoff_tests::runtime::{Answer, LocalLambda};
use serde_json::{Value, json};

/// moto's default account: the home account of the pipeline, and the member account
/// of test C.
const MEMBER: &str = "123456789012";
/// Lambda runs a failed asynchronous invocation twice more (the default).
const ASYNC_ATTEMPTS: usize = 3;
/// The revoker's `CUTOFF_MAX_RECEIVES` in the pipeline harness.
const HARNESS_MAX_RECEIVES: u32 = 3;
const INVOKE_TIMEOUT: Duration = Duration::from_secs(120);

// ---- helpers --------------------------------------------------------------------

/// A high-severity GuardDuty finding for role `role`, last seen at `seen`, with extra
/// fields merged into `accessKeyDetails` and `additionalInfo`. Without a
/// `principalId` unless `key_extra` adds one: the roles here are created in bulk and
/// their RoleIds (which a real finding names, and the revoker compares) are not looked
/// up; the pipeline tests send real ones.
fn finding(
    id: &str,
    role: &str,
    seen: DateTime<Utc>,
    key_extra: &Value,
    info_extra: &Value,
) -> Value {
    let seen = seen.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let mut key = json!({
        "accessKeyId": "ASIAZXCVBNMASDFGHJKL",
        "userName": role, "userType": "AssumedRole"
    });
    let mut info = json!({"sample": false});
    for (into, extra) in [(&mut key, key_extra), (&mut info, info_extra)] {
        if let (Some(into), Some(extra)) = (into.as_object_mut(), extra.as_object()) {
            into.extend(extra.clone());
        }
    }
    json!({
        "version": "0", "id": format!("evt-{id}"), "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
        "account": MEMBER, "time": seen, "region": "us-east-1", "resources": [],
        "detail": {
            "schemaVersion": "2.0", "accountId": MEMBER, "region": "us-east-1", "partition": "aws",
            "id": id, "arn": format!("arn:aws:guardduty:us-east-1:{MEMBER}:detector/d/finding/{id}"),
            "type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
            "resource": {"resourceType": "AccessKey", "accessKeyDetails": key},
            "service": {"serviceName": "guardduty", "archived": false, "count": 1,
                "eventFirstSeen": seen, "eventLastSeen": seen, "additionalInfo": info},
            "severity": 8.0, "createdAt": seen, "updatedAt": seen,
            "title": "Credentials for the EC2 instance role were used from a remote AWS account."
        }
    })
}

/// Invokes an asynchronously invoked function (intake) as Lambda does: an invocation
/// that reports an error is run again, [`ASYNC_ATTEMPTS`] in all. Returns the answer
/// and the attempts it took.
fn invoke_async(lambda: &mut LocalLambda, event: &Value) -> (Value, usize) {
    let mut errors = Vec::new();
    for attempt in 1..=ASYNC_ATTEMPTS {
        match lambda.invoke_with_timeout(event, INVOKE_TIMEOUT) {
            Ok(Answer::Response(answer)) => return (answer, attempt),
            Ok(Answer::Error(error)) => errors.push(error),
            Err(message) => panic!("{message}"),
        }
    }
    panic!(
        "the event failed {ASYNC_ATTEMPTS} invocations (Lambda would now drop it or send it to the on-failure destination): {errors:?}"
    )
}

/// One turn of the request queue's event-source mapping and the AWS calls it caused.
struct Turn {
    batch: DeliveredBatch,
    calls: Vec<RecordedRequest>,
}

/// Delivers request batches to the revoker until the queue is empty.
async fn drain_requests(p: &mut Pipeline, proxy: &FaultProxy, max_turns: usize) -> Vec<Turn> {
    let mut turns = Vec::new();
    while turns.len() < max_turns {
        let mark = proxy.recorded();
        let Some(batch) = p.deliver_request_batch().await else {
            return turns;
        };
        turns.push(Turn {
            batch,
            calls: proxy.requests_from(mark),
        });
    }
    panic!("the request queue is not empty after {max_turns} batches");
}

/// One notifier invocation and the AWS calls it made.
struct NotifierRun {
    ok: bool,
    calls: Vec<RecordedRequest>,
}

/// An outcome event as the bus rule delivered it, and the notifier invocations it took.
struct DeliveredOutcome {
    event: Value,
    runs: Vec<NotifierRun>,
}

/// Hands every outcome event the bus rule queued to the notifier, as Lambda's
/// asynchronous invocation does (an error is retried, [`ASYNC_ATTEMPTS`] in all).
async fn drain_outcomes(p: &mut Pipeline, proxy: &FaultProxy) -> Vec<DeliveredOutcome> {
    let mut delivered = Vec::new();
    loop {
        let received = p
            .sqs
            .receive_message()
            .queue_url(&p.outcomes_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive outcomes");
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return delivered;
        }
        for m in messages {
            let event: Value =
                serde_json::from_str(m.body.as_deref().unwrap_or("null")).expect("event JSON");
            let mut runs = Vec::new();
            for _ in 0..ASYNC_ATTEMPTS {
                let mark = proxy.recorded();
                let answer = p
                    .notifier
                    .invoke_with_timeout(&event, INVOKE_TIMEOUT)
                    .unwrap_or_else(|e| panic!("{e}"));
                let ok = matches!(answer, Answer::Response(_));
                runs.push(NotifierRun {
                    ok,
                    calls: proxy.requests_from(mark),
                });
                if ok {
                    break;
                }
            }
            p.sqs
                .delete_message()
                .queue_url(&p.outcomes_url)
                .receipt_handle(m.receipt_handle.unwrap_or_default())
                .send()
                .await
                .expect("delete outcome");
            delivered.push(DeliveredOutcome { event, runs });
        }
    }
}

/// Gives the request queue a FIFO dead-letter queue with a real RedrivePolicy; returns
/// the dead-letter queue's URL.
async fn add_dead_letter_queue(p: &Pipeline, prefix: &str, max_receives: u32) -> String {
    let dlq_url = p
        .sqs
        .create_queue()
        .queue_name(format!("{prefix}-requests-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create the dead-letter queue")
        .queue_url
        .expect("queue url");
    let dlq_arn = p
        .sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("dead-letter queue attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("dead-letter queue ARN");
    p.sqs
        .set_queue_attributes()
        .queue_url(&p.requests_url)
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives}).to_string(),
        )
        .send()
        .await
        .expect("set the redrive policy");
    dlq_url
}

/// Every message on a queue, consumed (deleted ten at a time: a FIFO queue hands out
/// the next message of a group only once the one before is gone).
async fn queue_bodies(p: &Pipeline, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let received = p
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        let mut delete = p.sqs.delete_message_batch().queue_url(url);
        for (i, m) in messages.iter().enumerate() {
            delete = delete.entries(
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                    .build()
                    .expect("delete entry"),
            );
        }
        let deleted = delete.send().await.expect("delete received messages");
        assert!(deleted.failed.is_empty(), "{:?}", deleted.failed);
        bodies.extend(messages.into_iter().filter_map(|m| m.body));
    }
}

/// Messages on a queue, visible and in flight.
async fn queue_depth(p: &Pipeline, url: &str) -> u64 {
    let attributes = p
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .map(|a| {
        attributes
            .get(a)
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    })
    .sum()
}

/// Creates the roles (owned by the payments team), a few at a time.
async fn create_roles(p: &Pipeline, roles: &[String]) {
    for chunk in roles.chunks(10) {
        let mut creating = tokio::task::JoinSet::new();
        for role in chunk {
            let iam = p.iam.clone();
            let role = role.clone();
            creating.spawn(async move {
                iam.create_role()
                    .role_name(&role)
                    .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
                    .tags(aws_sdk_iam::types::Tag::builder().key("cutoff:owner").value(OWNER_TEAM).build().expect("tag"))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("create role {role}: {e:?}"));
            });
        }
        while let Some(done) = creating.join_next().await {
            done.expect("create role task");
        }
    }
}

/// What a topic's subscriber received (read, not deleted: cheaper than
/// [`Pipeline::inbox`] for hundreds of messages).
async fn inbox(p: &Pipeline, topic: &str) -> Vec<Notification> {
    queue_bodies(p, &p.inboxes[topic])
        .await
        .iter()
        .map(|body| {
            let envelope: Value = serde_json::from_str(body).expect("SNS envelope");
            Notification {
                topic: topic.to_owned(),
                subject: envelope["Subject"].as_str().unwrap_or_default().to_owned(),
                message: envelope["Message"].as_str().unwrap_or_default().to_owned(),
                attributes: BTreeMap::new(),
            }
        })
        .collect()
}

async fn cutoff_of(p: &Pipeline, role: &str) -> Option<DateTime<Utc>> {
    cutoff_tests::seed::role_wide_cutoff(&p.iam, role)
        .await
        .map(|c| c.as_datetime())
}

fn parse_time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {value}"))
}

/// The call reached moto and moto accepted it (whether or not the client saw the answer).
fn took_effect(r: &RecordedRequest) -> bool {
    matches!(r.fault, Fault::Pass | Fault::Slow(_) | Fault::DropAnswer)
        && r.status.is_some_and(|s| (200..300).contains(&s))
}

/// The outcome entries of an EventBridge `PutEvents` request.
fn outcome_entries(r: &RecordedRequest) -> Vec<Value> {
    let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    body["Entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["DetailType"] == "Revocation Outcome")
        .map(|e| serde_json::from_str(e["Detail"].as_str().unwrap_or("null")).expect("detail JSON"))
        .collect()
}

/// Outcome entries the bus accepted in these calls; with `dropped`, only those whose
/// answer the revoker never saw (so it published them again).
fn accepted_outcomes<'a>(
    calls: impl IntoIterator<Item = &'a RecordedRequest>,
    dropped: bool,
) -> Vec<Value> {
    calls
        .into_iter()
        .filter(|r| r.action.as_deref() == Some("PutEvents") && took_effect(r))
        .filter(|r| !dropped || r.fault == Fault::DropAnswer)
        .flat_map(outcome_entries)
        .collect()
}

/// SNS publishes to `topic` that took effect, in these calls.
fn publishes<'a>(
    calls: impl IntoIterator<Item = &'a RecordedRequest>,
    topic: &str,
) -> Vec<&'a RecordedRequest> {
    calls
        .into_iter()
        .filter(|r| {
            r.action.as_deref() == Some("Publish")
                && r.param("TopicArn") == Some(topic)
                && took_effect(r)
        })
        .collect()
}

/// The text a queue subscriber receives of a publish: its `default` body (cutoff
/// publishes a body per protocol, `MessageStructure=json`; a queue has no key of its
/// own).
fn default_body(publish: &RecordedRequest) -> String {
    assert_eq!(publish.param("MessageStructure"), Some("json"));
    let bodies: Value =
        serde_json::from_str(publish.param("Message").unwrap_or_default()).expect("JSON bodies");
    bodies["default"]
        .as_str()
        .expect("a default body")
        .to_owned()
}

/// The outcome a notification carries after its separator line.
fn outcome_of(note: &Notification) -> Value {
    let json = note
        .message
        .split(SEPARATOR)
        .nth(1)
        .unwrap_or_else(|| panic!("no outcome in the notification: {}", note.message));
    serde_json::from_str(json).expect("outcome JSON")
}

fn finding_id(outcome: &Value) -> String {
    outcome["trigger"]["finding_id"]
        .as_str()
        .unwrap_or("-")
        .to_owned()
}

fn status(outcome: &Value) -> String {
    outcome["status"].as_str().unwrap_or("?").to_owned()
}

/// Canonical text of a JSON value, to compare multisets of outcomes.
fn canonical(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn multiset<I: IntoIterator<Item = String>>(items: I) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

fn fault_label(fault: &Fault) -> String {
    match fault {
        Fault::Pass => "none".to_owned(),
        Fault::Throttle => "throttling (400 Throttling / ThrottlingException)".to_owned(),
        Fault::InternalError => "500 internal error".to_owned(),
        Fault::Unavailable => "503 service unavailable".to_owned(),
        Fault::Slow(delay) => format!("slow answer ({} ms)", delay.as_millis()),
        Fault::Disconnect => "connection dropped before the call".to_owned(),
        Fault::DropAnswer => "connection dropped after the call took effect".to_owned(),
        Fault::Error { status, code, .. } => format!("{status} {code}"),
        Fault::ShiftDate(seconds) => format!("a Date header {seconds} s off"),
    }
}

fn count_by<T, K: Ord>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(T) -> K,
) -> BTreeMap<K, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(key(item)).or_insert(0) += 1;
    }
    counts
}

fn joined<K: std::fmt::Display>(counts: &BTreeMap<K, usize>) -> String {
    counts
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `MaxReceiveCount` of the request queue in `infra/template.yaml` (the value the
/// revoker also gets as `CUTOFF_MAX_RECEIVES`).
fn template_max_receive_count() -> u32 {
    let path = cutoff_tests::workspace_root().join("infra/template.yaml");
    let text = std::fs::read_to_string(&path).expect("read infra/template.yaml");
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("MaxReceiveCount: \""))
        .and_then(|v| v.trim_end_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no `MaxReceiveCount: \"N\"` mapping in {}", path.display()))
}

// ---- A: a storm of transient faults ------------------------------------------------

/// Per request: the role, when its finding was sent, and what happened to its message.
struct Request {
    role: String,
    sent_at: DateTime<Utc>,
    /// (turn index, receive count, failed) of each delivery of its message.
    deliveries: Vec<(usize, u32, bool)>,
}

#[tokio::test]
async fn two_hundred_requests_under_twenty_percent_faults_all_end_applied_and_notified() {
    const REQUESTS: usize = 200;
    const SEED: u64 = 20_261_130;
    const RATE: f64 = 0.20;
    /// The revoker's attempts per call (`RetryPolicy::default`), for each of the four
    /// principals of a batch it handles at once: their writes take the scripted
    /// failures in turn, so the outage must outlast all four's retries.
    const OUTAGE: usize = 6 * 4;
    let faults = [
        Fault::Throttle,
        Fault::error(429, "TooManyRequestsException", "Rate exceeded"),
        Fault::InternalError,
        Fault::Unavailable,
        Fault::Slow(Duration::from_millis(200)),
        Fault::Slow(Duration::from_millis(500)),
        Fault::Disconnect,
        Fault::DropAnswer,
    ];
    let started = Instant::now();
    let moto = MotoServer::shared();
    // Set-up without faults; the storm starts with the first finding.
    let proxy = FaultProxy::start(moto.endpoint(), FaultPlan::passthrough());
    let mut p = Pipeline::start(moto, "rel-a", &[("AWS_ENDPOINT_URL", proxy.endpoint())]).await;
    let dlq = add_dead_letter_queue(&p, "rel-a", HARNESS_MAX_RECEIVES).await;
    // 200 distinct roles, one finding each: every request has its own cutoff to check
    // against the moment it was handled, and its own FIFO group, so batches carry ten
    // independent workflows (coalescing is covered by the storm test in pipeline.rs).
    let roles: Vec<String> = (0..REQUESTS).map(|i| format!("rel-a-app-{i:03}")).collect();
    create_roles(&p, &roles).await;
    let mark = proxy.recorded();
    let setup_time = started.elapsed();
    // Besides the random faults, one outage longer than the revoker's retries: the first
    // writes fail 24 times in a row (503: six attempts of each of the four principals
    // written at once), so those requests fail their first attempt, are notified as
    // failed, and are received again.
    proxy.set_plan(
        FaultPlan::passthrough()
            .then_n_for(OUTAGE, "PutRolePolicy", Fault::Unavailable)
            .random(SEED, RATE, &faults),
    );
    let storm = Instant::now();

    // 1. The findings, through intake (Lambda's async retries on an intake error).
    let mut requests: BTreeMap<String, Request> = BTreeMap::new();
    let mut intake_runs = 0;
    for (i, role) in roles.iter().enumerate() {
        let id = format!("a11c{i:028x}");
        let sent_at = Utc::now();
        let (report, attempts) = invoke_async(
            &mut p.intake,
            &finding(&id, role, sent_at, &json!({}), &json!({})),
        );
        assert_eq!(report["queued"], 1, "{report}");
        intake_runs += attempts;
        requests.insert(
            id,
            Request {
                role: role.clone(),
                sent_at,
                deliveries: Vec::new(),
            },
        );
    }
    // 2. The revoker, batch by batch, until the queue is empty.
    let turns = drain_requests(&mut p, &proxy, 20 * REQUESTS).await;
    // 3. The outcomes, to the notifier.
    let delivered = drain_outcomes(&mut p, &proxy).await;
    let storm_time = storm.elapsed();
    proxy.set_plan(FaultPlan::passthrough());
    let security = inbox(&p, &p.security_topic).await;
    let payments = inbox(&p, &p.payments_topic).await;
    let calls = proxy.requests_from(mark);

    // ---- every request reached the revoker once per delivery, none went astray
    for (t, turn) in turns.iter().enumerate() {
        for m in &turn.batch.messages {
            let body: Value = serde_json::from_str(&m.body).expect("queue message JSON");
            let id = finding_id(&body);
            let request = requests
                .get_mut(&id)
                .unwrap_or_else(|| panic!("a message for no request: {}", m.body));
            request.deliveries.push((t, m.receive_count, m.failed));
        }
    }
    for (id, r) in &requests {
        let counts: Vec<u32> = r.deliveries.iter().map(|d| d.1).collect();
        let expected: Vec<u32> = (1..=u32::try_from(counts.len()).unwrap()).collect();
        assert_eq!(
            counts, expected,
            "{id}: one message per request (intake's retries deduplicated), received again after each failure"
        );
        let (last, earlier) = r.deliveries.split_last().expect("delivered at least once");
        assert!(!last.2, "{id}: the last delivery succeeded");
        assert!(
            earlier.iter().all(|d| d.2),
            "{id}: a message is received again only after a failure"
        );
        assert!(
            last.1 <= HARNESS_MAX_RECEIVES,
            "{id}: received {} times",
            last.1
        );
    }
    assert_eq!(
        queue_depth(&p, &p.requests_url).await,
        0,
        "the request queue is empty"
    );
    assert!(
        queue_bodies(&p, &dlq).await.is_empty(),
        "nothing went to the dead-letter queue"
    );

    // ---- revoker -> bus: what the notifier got is exactly what the bus accepted
    let accepted = accepted_outcomes(&calls, false);
    let events: Vec<&Value> = delivered.iter().map(|d| &d.event["detail"]).collect();
    assert_eq!(
        multiset(events.iter().map(|e| canonical(e))),
        multiset(accepted.iter().map(canonical)),
        "outcome events delivered = outcome entries the bus accepted (none lost, none invented)"
    );
    // Per turn: a successful delivery published its outcome; a failed first attempt
    // published a `failed` outcome (or nothing, if the publish itself failed); a middle
    // retry published nothing.
    let mut unpublished_failures = 0;
    for turn in &turns {
        let published = accepted_outcomes(&turn.calls, false);
        for m in &turn.batch.messages {
            let body: Value = serde_json::from_str(&m.body).unwrap();
            let id = finding_id(&body);
            let mine: Vec<&Value> = published.iter().filter(|o| finding_id(o) == id).collect();
            if !m.failed {
                assert!(
                    mine.iter()
                        .any(|o| ["applied", "already_revoked"].contains(&status(o).as_str())),
                    "{id}: a completed request's outcome reached the bus"
                );
            } else if m.receive_count == 1 {
                if mine.is_empty() {
                    unpublished_failures += 1;
                }
                for o in &mine {
                    assert_eq!(status(o), "failed", "{id}: {o}");
                    assert!(
                        o["detail"]
                            .as_str()
                            .unwrap_or_default()
                            .contains("it will be retried"),
                        "{o}"
                    );
                }
            } else if m.receive_count >= HARNESS_MAX_RECEIVES {
                panic!("{id}: failed its last attempt, so it is now in the dead-letter queue");
            } else {
                assert!(
                    mine.is_empty(),
                    "{id}: a middle retry is not notified: {mine:?}"
                );
            }
        }
    }

    // ---- every request ended applied, with a cutoff from the moment it was handled
    let mut final_status: BTreeMap<String, usize> = BTreeMap::new();
    for (id, r) in &requests {
        let &(t, _, _) = r.deliveries.last().unwrap();
        let turn = &turns[t];
        let outcome = accepted_outcomes(&turn.calls, false)
            .into_iter()
            .find(|o| finding_id(o) == *id && status(o) != "failed")
            .unwrap_or_else(|| panic!("{id}: no final outcome"));
        let status = status(&outcome);
        *final_status.entry(status.clone()).or_insert(0) += 1;
        let wrote = |turn: &Turn| {
            turn.calls.iter().any(|c| {
                c.action.as_deref() == Some("PutRolePolicy")
                    && c.param("RoleName") == Some(r.role.as_str())
                    && took_effect(c)
            })
        };
        match status.as_str() {
            "applied" => assert!(wrote(turn), "{id}: applied without a write"),
            // What the design does when an attempt wrote the deny but then failed (its
            // outcome not published, or the read-back exhausted): the redelivery finds
            // the deny covering the finding's activity (docs/revoke.md rule 4). The deny
            // is right; the request's `applied` outcome was never notified.
            "already_revoked" => panic!(
                "{id}: ended already_revoked, not applied (an earlier attempt of this request \
                 wrote the deny: {}), so no applied outcome was notified for it: {outcome}",
                r.deliveries[..r.deliveries.len() - 1]
                    .iter()
                    .any(|d| wrote(&turns[d.0]))
            ),
            other => panic!("{id}: ended {other}: {outcome}"),
        }
        let cutoff = cutoff_of(&p, &r.role)
            .await
            .unwrap_or_else(|| panic!("{id}: no deny on {}", r.role));
        assert_eq!(
            cutoff,
            parse_time(&outcome["cutoff"]),
            "{id}: the deny holds the outcome's cutoff"
        );
        // cutoff = the write's time + 1 s, rounded up to a whole second.
        let lower = turn.batch.started + TimeDelta::seconds(1);
        let upper = turn.batch.finished + TimeDelta::seconds(2);
        assert!(
            cutoff >= r.sent_at && cutoff >= lower && cutoff <= upper,
            "{id}: cutoff {cutoff} outside [{lower}, {upper}] (sent {})",
            r.sent_at
        );
    }
    assert_eq!(
        final_status.get("applied").copied(),
        Some(REQUESTS),
        "{final_status:?}"
    );

    // ---- the bus duplicates exactly the outcomes whose PutEvents answer was lost
    let dropped = accepted_outcomes(&calls, true);
    for id in requests.keys() {
        let applied = events
            .iter()
            .filter(|e| finding_id(e) == *id && status(e) == "applied")
            .count();
        let again = dropped
            .iter()
            .filter(|e| finding_id(e) == *id && status(e) == "applied")
            .count();
        assert_eq!(
            applied,
            1 + again,
            "{id}: one applied outcome, plus one per PutEvents whose answer was dropped"
        );
    }

    // ---- one failure notification per failed first attempt (whose publish worked)
    let failed_first = requests.values().filter(|r| r.deliveries.len() > 1).count();
    let failed_events = events.iter().filter(|e| status(e) == "failed").count();
    let failed_again = dropped.iter().filter(|e| status(e) == "failed").count();
    assert!(failed_first >= 1, "the outage failed a first attempt");
    assert_eq!(
        failed_events,
        failed_first - unpublished_failures + failed_again,
        "failure notifications: one per failed first attempt, plus dropped PutEvents answers"
    );

    // ---- notifications: each event told both topics; the inboxes hold exactly what
    // SNS accepted; duplicates come only from dropped answers and notifier retries
    let mut duplicates = BTreeMap::new();
    for (topic, inbox) in [
        (&p.security_topic, &security),
        (&p.payments_topic, &payments),
    ] {
        let accepted: Vec<&RecordedRequest> = publishes(&calls, topic);
        assert_eq!(
            multiset(inbox.iter().map(|n| n.message.clone())),
            multiset(accepted.iter().map(|r| default_body(r))),
            "{topic}: the subscriber got exactly what SNS accepted"
        );
        let mut dropped_answers = 0;
        let mut rerun = 0;
        let name = if *topic == p.security_topic {
            "security"
        } else {
            "payments"
        };
        for d in &delivered {
            let last = d.runs.last().unwrap();
            assert!(last.ok, "the notifier gave up on {}", d.event);
            let clean: Vec<&RecordedRequest> = publishes(&last.calls, topic)
                .into_iter()
                .filter(|r| r.fault != Fault::DropAnswer)
                .collect();
            assert_eq!(
                clean.len(),
                1,
                "{topic}: one publish per outcome in the run that succeeded"
            );
            let note = Notification {
                topic: topic.clone(),
                subject: String::new(),
                message: default_body(clean[0]),
                attributes: BTreeMap::new(),
            };
            let told = outcome_of(&note);
            assert_eq!(
                (finding_id(&told), status(&told), told["cutoff"].clone()),
                (
                    finding_id(&d.event["detail"]),
                    status(&d.event["detail"]),
                    d.event["detail"]["cutoff"].clone()
                )
            );
            for run in &d.runs {
                let mine = publishes(&run.calls, topic);
                dropped_answers += mine.iter().filter(|r| r.fault == Fault::DropAnswer).count();
                if !run.ok {
                    rerun += mine.iter().filter(|r| r.fault != Fault::DropAnswer).count();
                }
            }
        }
        assert_eq!(
            inbox.len(),
            delivered.len() + dropped_answers + rerun,
            "{topic}: notifications = outcomes + duplicates"
        );
        duplicates.insert(name, (dropped_answers, rerun));
        let applied: BTreeSet<String> = inbox
            .iter()
            .map(outcome_of)
            .filter(|o| status(o) == "applied")
            .map(|o| finding_id(&o))
            .collect();
        assert_eq!(
            applied.len(),
            REQUESTS,
            "{topic}: every request's applied outcome was notified"
        );
    }

    // ---- the numbers
    let faulted: Vec<&RecordedRequest> = calls.iter().filter(|r| r.faulted()).collect();
    let rate = faulted.len() as f64 / calls.len() as f64;
    let by_kind = count_by(&faulted, |r| fault_label(&r.fault));
    let failing = faulted
        .iter()
        .filter(|r| !matches!(r.fault, Fault::Slow(_)))
        .count();
    let deliveries: usize = requests.values().map(|r| r.deliveries.len()).sum();
    let notifier_runs: usize = delivered.iter().map(|d| d.runs.len()).sum();
    let statuses = count_by(&events, |e| status(e));
    let note_statuses = |inbox: &[Notification]| count_by(inbox, |n| status(&outcome_of(n)));
    eprintln!(
        "\n== reliability A: {REQUESTS} revocations under {:.0}% injected faults (seed {SEED}) ==",
        RATE * 100.0
    );
    eprintln!("  requests (GuardDuty findings, 200 roles)  {REQUESTS}");
    eprintln!(
        "  scripted outage                           the first {OUTAGE} PutRolePolicy calls answer 503"
    );
    eprintln!(
        "  AWS calls through the proxy               {}  ({})",
        calls.len(),
        joined(&count_by(&calls, |r| r.action.clone().unwrap_or_default()))
    );
    eprintln!(
        "  faults injected                           {} = {:.1}% of calls",
        faulted.len(),
        rate * 100.0
    );
    for (kind, n) in &by_kind {
        eprintln!("    {kind:<48} {n}");
    }
    eprintln!(
        "  calls repeated after a failing fault      {failing} (in-function retries with backoff)"
    );
    eprintln!(
        "  intake invocations                        {intake_runs} ({} re-run by Lambda)",
        intake_runs - REQUESTS
    );
    eprintln!(
        "  SendMessage answers dropped after the message was queued  {} (the retry was deduplicated)",
        calls
            .iter()
            .filter(|r| r.action.as_deref() == Some("SendMessage") && r.fault == Fault::DropAnswer)
            .count()
    );
    eprintln!(
        "  PutRolePolicy answers dropped after the write             {} (written again: idempotent)",
        calls
            .iter()
            .filter(|r| r.action.as_deref() == Some("PutRolePolicy") && r.fault == Fault::DropAnswer)
            .count()
    );
    eprintln!(
        "  revoker batches                           {}",
        turns.len()
    );
    eprintln!(
        "  queue deliveries                          {deliveries} ({} redeliveries)",
        deliveries - REQUESTS
    );
    eprintln!(
        "  failed first attempts                     {failed_first} (notified as failed: {}, publish failed too: {unpublished_failures})",
        failed_first - unpublished_failures
    );
    eprintln!(
        "  final outcomes                            {}",
        joined(&final_status)
    );
    eprintln!(
        "  outcome events (bus -> notifier)          {} ({})",
        events.len(),
        joined(&statuses)
    );
    eprintln!(
        "    of which duplicates (PutEvents answer dropped)  {}",
        dropped.len()
    );
    eprintln!(
        "  notifier invocations                      {notifier_runs} ({} re-run by Lambda)",
        notifier_runs - delivered.len()
    );
    for (name, inbox) in [("security", &security), ("payments", &payments)] {
        let (dropped, rerun) = duplicates[name];
        eprintln!(
            "  {name} topic notifications              {} ({}) = {} outcomes + {dropped} Publish answers dropped + {rerun} notifier re-runs",
            inbox.len(),
            joined(&note_statuses(inbox)),
            delivered.len()
        );
    }
    eprintln!("  dead-letter queue                         0");
    eprintln!(
        "  wall time                                 {:.1} s (set-up {:.1} s, storm {:.1} s, checks {:.1} s)",
        started.elapsed().as_secs_f64(),
        setup_time.as_secs_f64(),
        storm_time.as_secs_f64(),
        (started.elapsed() - setup_time - storm_time).as_secs_f64()
    );

    assert!(
        (0.16..=0.24).contains(&rate),
        "the injected rate is {rate:.3}"
    );
    for fault in &faults {
        assert!(
            by_kind.contains_key(&fault_label(fault)),
            "{fault:?} was never injected"
        );
    }
}

// ---- B: a permanent AccessDenied ------------------------------------------------------

#[tokio::test]
async fn a_permanent_access_denied_fails_every_request_notifies_it_and_dead_letters_it() {
    const ROLES: usize = 10;
    const REQUESTS: usize = 20;
    let started = Instant::now();
    let max_receives = template_max_receive_count();
    let moto = MotoServer::shared();
    let proxy = FaultProxy::start(
        moto.endpoint(),
        FaultPlan::passthrough()
            .random(1, 1.0, &[Fault::access_denied()])
            .random_only_for(&["PutRolePolicy"]),
    );
    let receives = max_receives.to_string();
    let mut p = Pipeline::start(
        moto,
        "rel-b",
        &[
            ("AWS_ENDPOINT_URL", proxy.endpoint()),
            ("CUTOFF_MAX_RECEIVES", &receives),
        ],
    )
    .await;
    let dlq = add_dead_letter_queue(&p, "rel-b", max_receives).await;
    let roles: Vec<String> = (0..ROLES).map(|i| format!("rel-b-app-{i:02}")).collect();
    for role in &roles {
        p.create_role(role, Some(OWNER_TEAM)).await;
    }
    // Two findings per role: they share a FIFO group and are coalesced into one write
    // when they arrive in one batch; each must still be failed, notified and
    // dead-lettered on its own.
    let mut sent = BTreeSet::new();
    for i in 0..REQUESTS {
        let id = format!("b10c{i:028x}");
        let report = p.intake.invoke(&finding(
            &id,
            &roles[i / 2],
            Utc::now(),
            &json!({}),
            &json!({}),
        ));
        assert_eq!(report["queued"], 1, "{report}");
        sent.insert(id);
    }
    let turns = drain_requests(&mut p, &proxy, 100 * REQUESTS).await;
    let delivered = drain_outcomes(&mut p, &proxy).await;
    let security = p.inbox(&p.security_topic.clone()).await;
    let payments = p.inbox(&p.payments_topic.clone()).await;

    // Every message was received max_receives times, failing each time, then moved.
    let mut receives_seen: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for turn in &turns {
        for m in &turn.batch.messages {
            assert!(m.failed, "nothing succeeds under a permanent AccessDenied");
            let body: Value = serde_json::from_str(&m.body).unwrap();
            receives_seen
                .entry(finding_id(&body))
                .or_default()
                .push(m.receive_count);
        }
    }
    let all_receives: Vec<u32> = (1..=max_receives).collect();
    assert_eq!(receives_seen.keys().cloned().collect::<BTreeSet<_>>(), sent);
    for (id, counts) in &receives_seen {
        assert_eq!(counts, &all_receives, "{id}");
    }
    let dead: Vec<String> = queue_bodies(&p, &dlq)
        .await
        .iter()
        .map(|b| finding_id(&serde_json::from_str(b).expect("dead letter JSON")))
        .collect();
    assert_eq!(dead.len(), REQUESTS, "one dead letter per request");
    assert_eq!(
        dead.iter().cloned().collect::<BTreeSet<_>>(),
        sent,
        "the dead letters are the requests"
    );
    assert_eq!(
        queue_depth(&p, &p.requests_url).await,
        0,
        "nothing left on the request queue"
    );

    // One write attempt per coalesced run, never retried (AccessDenied is fatal), and
    // no deny anywhere.
    let runs: usize = turns
        .iter()
        .map(|t| {
            t.batch
                .messages
                .iter()
                .map(|m| {
                    serde_json::from_str::<Value>(&m.body).unwrap()["target"]["name"].to_string()
                })
                .collect::<BTreeSet<_>>()
                .len()
        })
        .sum();
    assert_eq!(proxy.count("PutRolePolicy"), runs);
    for role in &roles {
        assert_eq!(cutoff_of(&p, role).await, None, "{role}");
    }

    // Failed outcomes: two per request, the first attempt and the last, access_denied.
    let events: Vec<&Value> = delivered.iter().map(|d| &d.event["detail"]).collect();
    assert_eq!(events.len(), 2 * REQUESTS);
    for e in &events {
        assert_eq!(
            (status(e).as_str(), e["error"]["kind"].as_str()),
            ("failed", Some("access_denied")),
            "{e}"
        );
    }
    for id in &sent {
        let details: BTreeSet<String> = events
            .iter()
            .filter(|e| finding_id(e) == *id)
            .map(|e| e["detail"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(details.len(), 2, "{id}: {details:?}");
        assert!(
            details
                .iter()
                .any(|d| d.contains("(attempt 1; it will be retried)")),
            "{id}: {details:?}"
        );
        assert!(
            details.iter().any(|d| d.contains(&format!(
                "(attempt {max_receives}, the last: the request is now in the dead-letter queue)"
            ))),
            "{id}: {details:?}"
        );
    }
    for (name, inbox) in [("security", &security), ("payments", &payments)] {
        assert_eq!(inbox.len(), 2 * REQUESTS, "{name}");
        let per_request = count_by(inbox.iter(), |n| finding_id(&outcome_of(n)));
        assert_eq!(
            per_request.keys().cloned().collect::<BTreeSet<_>>(),
            sent,
            "{name}"
        );
        assert!(
            per_request.values().all(|n| *n == 2),
            "{name}: {per_request:?}"
        );
        assert!(inbox.iter().all(|n| n.subject.contains("FAILED")), "{name}");
    }

    let dead_set: BTreeSet<&String> = dead.iter().collect();
    let failed_set: BTreeSet<String> = events.iter().map(|e| finding_id(e)).collect();
    eprintln!("\n== reliability B: a permanent AccessDenied on PutRolePolicy ==");
    eprintln!(
        "  requests                                  {REQUESTS} ({ROLES} roles, two findings each)"
    );
    eprintln!("  maxReceiveCount (infra/template.yaml)     {max_receives}");
    eprintln!(
        "  revoker batches / deliveries              {} / {}",
        turns.len(),
        receives_seen.values().map(Vec::len).sum::<usize>()
    );
    eprintln!(
        "  PutRolePolicy attempts (all 403)          {} = workflow runs (one per role in a batch; a 403 is not retried)",
        proxy.count("PutRolePolicy")
    );
    eprintln!(
        "  failed outcome events                     {} (first and last attempt of each)",
        events.len()
    );
    eprintln!(
        "  distinct requests failed / dead-lettered  {} / {}",
        failed_set.len(),
        dead_set.len()
    );
    eprintln!(
        "  security / payments notifications         {} / {}",
        security.len(),
        payments.len()
    );
    eprintln!(
        "  lost                                      {}",
        REQUESTS - dead_set.len()
    );
    eprintln!(
        "  wall time                                 {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ---- C: logs --------------------------------------------------------------------------

/// Waits (with a deadline) until `lambda` has logged `count` lines with this message:
/// the last line of each invocation, so every line before it is in the log too.
fn wait_for_lines(lambda: &LocalLambda, message: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = lambda
            .json_logs()
            .iter()
            .filter(|l| l["message"] == message)
            .count();
        if seen >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{seen} of {count} `{message}` lines logged:\n{}",
            lambda.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..end].to_owned())
}

#[tokio::test]
async fn logs_are_json_lines_with_the_request_id_and_carry_no_secrets() {
    let started = Instant::now();
    // Credentials and the ExternalId of the functions, distinctive so that a leak shows.
    let home_secret = "hOmeSecretKey0f7heFunct1onsXXXXXXXXXXXXX";
    let home_token = "IQoJb3JpZ2luX2VjEHomeSessionTokenOfTheFunctionsXXXXXXXXXXXXXXXXXXXX";
    let external_id = "ext-id-7f3a9c-do-not-log";
    let finding_token = "FwoGZXIvYXdzEStolenSessionTokenInTheFindingXXXXXXXXXXXXXXXXXXXX";
    let moto = MotoServer::shared();
    let proxy = FaultProxy::start(moto.endpoint(), FaultPlan::passthrough());
    let mut p = Pipeline::start(
        moto,
        "rel-c",
        &[
            ("AWS_ENDPOINT_URL", proxy.endpoint()),
            ("AWS_SECRET_ACCESS_KEY", home_secret),
            ("AWS_SESSION_TOKEN", home_token),
            ("CUTOFF_EXTERNAL_ID", external_id),
            // Another home account: the targets in 123456789012 are reached through the
            // member role (AssumeRole returns moto's credentials).
            ("CUTOFF_HOME_ACCOUNT", "999988887777"),
        ],
    )
    .await;
    let role_u = "rel-c-unpublished";
    let (role_q, role_m, role_f, user) =
        ("rel-c-queued", "rel-c-manual", "rel-c-denied", "rel-c-bot");
    for role in [role_q, role_m, role_f, role_u] {
        p.create_role(role, Some(OWNER_TEAM)).await;
    }
    p.iam
        .create_user()
        .user_name(user)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("cutoff:owner")
                .value(OWNER_TEAM)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let key = p
        .iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    let (user_key_id, user_secret) = (
        key.access_key_id().to_owned(),
        key.secret_access_key().to_owned(),
    );

    // 1. Direct invokes: a user with its access key, and a role.
    let answer = p.revoker.invoke(&json!({
        "action": "revoke", "account": MEMBER, "user": user, "access_key_id": user_key_id,
        "requested_by": "alice@example.com", "reason": "INC-77 key leaked in a CI log"
    }));
    assert_eq!(answer["status"], "applied", "{answer:#}");
    let answer = p.revoker.invoke(&json!({
        "action": "revoke", "account": MEMBER, "role": role_m, "requested_by": "alice@example.com", "reason": "INC-78"
    }));
    assert_eq!(answer["status"], "applied", "{answer:#}");
    // 2. A finding with an ASIA key and a session token in it, through the queue.
    let with_token = |id: &str, role: &str| {
        finding(
            id,
            role,
            Utc::now(),
            &json!({"sessionToken": finding_token}),
            &json!({"requestHeaders": {"x-amz-security-token": finding_token}}),
        )
    };
    let report = p
        .intake
        .invoke(&with_token("c10c0000000000000000000000000001", role_q));
    assert_eq!(report["queued"], 1, "{report}");
    let batch = p.deliver_request_batch().await.expect("a batch");
    assert!(
        batch.messages.iter().all(|m| !m.failed),
        "{:?}",
        batch.answer
    );
    // 3. One that fails (AccessDenied on the write) and then succeeds on redelivery.
    proxy.set_plan(FaultPlan::passthrough().then_for("PutRolePolicy", Fault::access_denied()));
    let report = p
        .intake
        .invoke(&with_token("c10c0000000000000000000000000002", role_f));
    assert_eq!(report["queued"], 1, "{report}");
    let batch = p.deliver_request_batch().await.expect("a batch");
    assert!(
        batch.messages.iter().all(|m| m.failed),
        "{:?}",
        batch.answer
    );
    let batch = p.deliver_request_batch().await.expect("a batch");
    assert!(
        batch.messages.iter().all(|m| !m.failed),
        "{:?}",
        batch.answer
    );
    // 4. One whose outcome cannot be published (PutEvents refused): the message is
    // retried, and the write it already made stands.
    let report = p
        .intake
        .invoke(&with_token("c10c0000000000000000000000000003", role_u));
    assert_eq!(report["queued"], 1, "{report}");
    proxy.set_plan(FaultPlan::passthrough().then_for("PutEvents", Fault::access_denied()));
    let batch = p.deliver_request_batch().await.expect("a batch");
    assert!(
        batch.messages.iter().all(|m| m.failed),
        "{:?}",
        batch.answer
    );
    let batch = p.deliver_request_batch().await.expect("a batch");
    assert!(
        batch.messages.iter().all(|m| !m.failed),
        "{:?}",
        batch.answer
    );
    assert!(p.deliver_request_batch().await.is_none());
    // 5. The notifier is refused its first publish, fails, and is run again.
    proxy.set_plan(FaultPlan::passthrough().then_for("Publish", Fault::access_denied()));
    let delivered = drain_outcomes(&mut p, &proxy).await;
    let notifier_runs: usize = delivered.iter().map(|d| d.runs.len()).sum();
    assert_eq!(
        notifier_runs,
        delivered.len() + 1,
        "one notifier run failed"
    );
    assert!(delivered.iter().all(|d| d.runs.last().unwrap().ok));
    let unpublished = delivered
        .iter()
        .map(|d| &d.event["detail"])
        .filter(|o| finding_id(o) == "c10c0000000000000000000000000003")
        .map(status)
        .collect::<Vec<_>>();
    let notes = [
        p.inbox(&p.security_topic.clone()).await,
        p.inbox(&p.payments_topic.clone()).await,
    ]
    .concat();

    // The secrets the member path handled: moto's AssumeRole answer, as the proxy saw it.
    let assumes = proxy.requests_for("AssumeRole");
    assert_eq!(assumes.len(), 1, "one AssumeRole, then cached");
    assert_eq!(assumes[0].param("ExternalId"), Some(external_id));
    let answer_xml = assumes[0]
        .response_body
        .clone()
        .expect("the AssumeRole answer");
    let assumed_secret = xml_text(&answer_xml, "SecretAccessKey").expect("a secret key");
    let assumed_token = xml_text(&answer_xml, "SessionToken").expect("a session token");
    let assumed_key_id = xml_text(&answer_xml, "AccessKeyId").expect("an access key id");
    let member_calls: Vec<RecordedRequest> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.headers.get("x-amz-security-token") == Some(&assumed_token))
        .collect();
    assert!(
        member_calls
            .iter()
            .any(|r| r.action.as_deref() == Some("PutRolePolicy"))
            && member_calls
                .iter()
                .any(|r| r.action.as_deref() == Some("UpdateAccessKey")),
        "the revoker wrote with the member role's credentials"
    );

    // Every line of every invocation is in the logs once each one's last line is.
    // Two direct, the queued one, the refused write twice, the unpublished one twice.
    let revoker_runs = 2 + 1 + 2 + 2;
    // One outcome line per revoker invocation here; the last invocation ends with one.
    wait_for_lines(&p.intake, "event triaged", 3);
    wait_for_lines(&p.revoker, "outcome", revoker_runs);
    wait_for_lines(&p.notifier, "notified", delivered.len());
    let secrets = [
        (
            "the member role's secret access key",
            assumed_secret.as_str(),
        ),
        ("the member role's session token", assumed_token.as_str()),
        ("the functions' secret access key", home_secret),
        ("the functions' session token", home_token),
        ("the ExternalId", external_id),
        ("the user's secret access key", user_secret.as_str()),
        ("the session token in the finding", finding_token),
    ];
    let forbidden = [
        "aws_secret_access_key",
        "secretaccesskey",
        "secret_access_key",
        "x-amz-security-token",
        "sessiontoken",
        "\"statement\"",
        "\\\"statement\\\"",
        "aws:tokenissuetime",
    ];
    let mut problems = Vec::new();
    let mut request_ids: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut lines = 0;
    let mut startup = Vec::new();
    for (name, lambda, invocations) in [
        ("intake", &p.intake, 3),
        ("revoker", &p.revoker, revoker_runs),
        ("notifier", &p.notifier, notifier_runs),
    ] {
        let log = lambda.logs();
        let request_id = |line: &str| -> Option<String> {
            let value: Value = serde_json::from_str(line).ok()?;
            value["span"]["requestId"].as_str().map(str::to_owned)
        };
        // Cold-start lines come before the first invocation's (init ends before the
        // function first asks for work, and everything goes to stdout in order): the
        // lines before the first one with a request id, that are in no span at all.
        let first_invocation_line = log.lines().position(|l| request_id(l).is_some());
        for (index, line) in log.lines().enumerate() {
            lines += 1;
            let parsed: Option<Value> = serde_json::from_str(line).ok();
            match parsed.as_ref().and_then(Value::as_object) {
                None => problems.push(format!("{name}: not a JSON object: {line}")),
                Some(object) => {
                    if !(object.get("level").is_some_and(Value::is_string)
                        && object.get("message").is_some_and(Value::is_string))
                    {
                        problems.push(format!("{name}: no level or message: {line}"));
                    }
                    let cold_start = first_invocation_line.is_none_or(|first| index < first)
                        && !object.contains_key("span");
                    match request_id(line) {
                        Some(id) if id.starts_with(&format!("cutoff-{name}-")) => {
                            request_ids.entry(name).or_default().insert(id);
                        }
                        _ if cold_start => startup.push(format!("{name}: {line}")),
                        _ => problems.push(format!("{name}: no Lambda request id: {line}")),
                    }
                }
            }
            for (what, secret) in &secrets {
                if line.contains(secret) {
                    problems.push(format!("{name}: logs {what}: {line}"));
                }
            }
            let lower = line.to_lowercase();
            for word in &forbidden {
                if lower.contains(word) {
                    problems.push(format!("{name}: logs `{word}`: {line}"));
                }
            }
        }
        let ids = request_ids.get(name).map_or(0, BTreeSet::len);
        if ids != invocations {
            problems.push(format!(
                "{name}: {ids} distinct request ids in the logs of {invocations} invocations"
            ));
        }
    }
    // The member account's CloudTrail names the request: the session is `cutoff-<id>` of
    // the invocation that first needed the member account.
    let first_outcome = p
        .revoker
        .json_logs()
        .into_iter()
        .find(|l| l["message"] == "outcome")
        .expect("an outcome line");
    assert_eq!(
        assumes[0].param("RoleSessionName").map(str::to_owned),
        first_outcome["span"]["requestId"]
            .as_str()
            .map(|id| format!("cutoff-{id}")),
    );
    // What the teams received carries no secret either.
    for note in &notes {
        for (what, secret) in &secrets {
            assert!(
                !note.message.contains(secret) && !note.subject.contains(secret),
                "a notification carries {what}"
            );
        }
    }
    eprintln!("\n== reliability C: logs ==");
    eprintln!("  log lines checked                         {lines}");
    eprintln!("  invocations (intake / revoker / notifier) 3 / {revoker_runs} / {notifier_runs}");
    eprintln!("  outcomes of the request whose first outcome was not published: {unpublished:?}");
    eprintln!(
        "  member role's access key id logged        {}",
        [&p.intake, &p.revoker, &p.notifier]
            .iter()
            .any(|l| l.logs().contains(&assumed_key_id))
    );
    eprintln!(
        "  the finding's ASIA key id logged          {}",
        [&p.intake, &p.revoker, &p.notifier]
            .iter()
            .any(|l| l.logs().contains("ASIAZXCVBNMASDFGHJKL"))
    );
    eprintln!("  cold-start lines (no invocation, so no request id):");
    for line in &startup {
        eprintln!("    {line}");
    }
    eprintln!(
        "  problems                                  {}",
        problems.len()
    );
    eprintln!(
        "  wall time                                 {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        problems.is_empty(),
        "{} problems in the logs:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
