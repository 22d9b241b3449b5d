//! The measurements: cold starts, warm revocations and the calls they make, the
//! finding storm, the 10,000-role sweep. Every function runs as a separate process
//! on a local Lambda Runtime API ([`LocalLambda`]); the calls are counted by a
//! recording proxy in front of moto ([`FaultProxy`]), never taken from the
//! functions' own reports.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use chrono::Utc;
use cutoff_tests::aws::REGION;
use cutoff_tests::moto::MotoServer;
use cutoff_tests::pipeline::sqs_record;
use cutoff_tests::proxy::{FaultPlan, FaultProxy, RecordedRequest};
use cutoff_tests::runtime::{Answer, LocalLambda};
use serde::Serialize;
use serde_json::{Value, json};

use crate::paging::PagingShim;
use crate::report::Summary;
use crate::stage::{self, FunctionSpec, HOME, Stage, finding, finding_id, ms};

/// How long one invocation may take before the bench gives up on it.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(120);

pub fn start(spec: &FunctionSpec) -> LocalLambda {
    LocalLambda::start(spec.label, &spec.binary, &spec.env_refs())
}

/// Invokes and expects a response; the round trip.
pub fn call(lambda: &mut LocalLambda, payload: &Value) -> Result<(Value, Duration)> {
    call_within(lambda, payload, INVOKE_TIMEOUT)
}

pub fn call_within(
    lambda: &mut LocalLambda,
    payload: &Value,
    timeout: Duration,
) -> Result<(Value, Duration)> {
    let started = Instant::now();
    match lambda.invoke_with_timeout(payload, timeout) {
        Ok(Answer::Response(value)) => Ok((value, started.elapsed())),
        Ok(Answer::Error(error)) => Err(anyhow!(
            "the function reported an error: {error}\noutput:\n{}",
            tail(&lambda.logs(), 40)
        )),
        Err(message) => Err(anyhow!(message)),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `VmHWM` (peak resident set size) of a running process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/<pid>/status")
}

// ---------------------------------------------------------------------------------------
// Cold starts
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct ColdSample {
    /// Process start to the first `GET /runtime/invocation/next`.
    pub first_poll_ms: f64,
    /// Process start to the answer of the first invocation (queued before the start,
    /// so the first poll receives it at once, as on Lambda).
    pub first_response_ms: f64,
    pub peak_rss_kib: u64,
}

/// Tells whether a function's answer is the right one.
pub type Check = Box<dyn Fn(&Value) -> Result<()>>;

/// One function's cold-start series: what to start, what to invoke it with, and how
/// to tell that the answer is right.
pub struct ColdArm {
    pub spec: FunctionSpec,
    pub payload: Box<dyn Fn(usize) -> Value>,
    pub check: Check,
}

/// Starts a fresh process, invokes it once, reads its peak RSS, stops it.
pub fn cold_once(arm: &ColdArm, run: usize) -> Result<ColdSample> {
    let payload = (arm.payload)(run);
    let mut lambda = start(&arm.spec);
    let outcome = lambda.invoke_with_timeout(&payload, INVOKE_TIMEOUT);
    let responded = lambda.started().elapsed();
    let answer = match outcome {
        Ok(Answer::Response(value)) => value,
        Ok(Answer::Error(error)) => bail!(
            "{} reported an error on cold run {run}: {error}\noutput:\n{}",
            arm.spec.label,
            tail(&lambda.logs(), 40)
        ),
        Err(message) => bail!("{} cold run {run}: {message}", arm.spec.label),
    };
    (arm.check)(&answer).with_context(|| {
        format!(
            "{} cold run {run} answered {answer}\noutput:\n{}",
            arm.spec.label,
            tail(&lambda.logs(), 20)
        )
    })?;
    let first_poll = lambda
        .time_to_first_poll()
        .context("answered without polling?")?;
    let peak = peak_rss_kib(lambda.pid())?;
    drop(lambda);
    Ok(ColdSample {
        first_poll_ms: ms(first_poll),
        first_response_ms: ms(responded),
        peak_rss_kib: peak,
    })
}

/// `runs` timed cold starts of each arm, after one untimed start each (page cache,
/// Python's byte-code cache). The arms take turns, so that a slow moment of the
/// machine is spread over all of them rather than landing on one.
pub fn cold_starts(arms: &[ColdArm], runs: usize) -> Result<Vec<Vec<ColdSample>>> {
    let mut samples: Vec<Vec<ColdSample>> = arms.iter().map(|_| Vec::new()).collect();
    for run in 0..=runs {
        for (arm, out) in arms.iter().zip(&mut samples) {
            let sample = cold_once(arm, run)?;
            if run > 0 {
                out.push(sample);
            }
        }
        if run > 0 && (run % 5 == 0 || run == runs) {
            eprintln!("  cold starts: {run}/{runs} runs of each function");
        }
    }
    Ok(samples)
}

// ---------------------------------------------------------------------------------------
// Calls, as the proxy saw them
// ---------------------------------------------------------------------------------------

/// `service:Action` of a recorded request: the service from the SigV4 credential
/// scope (`Credential=AKID/20261130/us-east-1/iam/aws4_request`), the action from the
/// query protocol's `Action` or the JSON protocol's `X-Amz-Target`.
pub fn call_name(r: &RecordedRequest) -> String {
    let service = r
        .headers
        .get("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("?");
    format!("{service}:{}", r.action.as_deref().unwrap_or("-"))
}

pub fn is_iam_or_sts(name: &str) -> bool {
    name.starts_with("iam:") || name.starts_with("sts:")
}

fn counts(names: &[String]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for n in names {
        *out.entry(n.clone()).or_insert(0) += 1;
    }
    out
}

/// What each call of a revocation is for, by its place in the sequence.
pub fn purposes(sequence: &[String], baseline: bool) -> Vec<(String, String)> {
    let mut role_policy_reads = 0;
    let mut put_items = 0;
    sequence
        .iter()
        .map(|name| {
            let why = match name.as_str() {
                "sts:AssumeRole" => "member-account credentials (cached until 5 min before they expire)",
                "iam:GetRole" => if baseline {
                    "resolve the role: path (service-linked or Identity Center: not writable)"
                } else {
                    "resolve the role: path (service-linked or Identity Center: not writable), owner and notify tags, protected tag, RoleId"
                },
                "iam:GetRolePolicy" => {
                    role_policy_reads += 1;
                    if role_policy_reads == 1 {
                        "read the existing AWSRevokeOlderSessions: merge into it, never move a cutoff back, skip when it already covers the finding"
                    } else {
                        "read the write back until IAM shows the cutoff (verify)"
                    }
                }
                "iam:ListRolePolicies" => "size budget: list the role's other inline policies (10,240 characters shared) before writing",
                "iam:PutRolePolicy" => "write the deny",
                "dynamodb:PutItem" => {
                    put_items += 1;
                    if put_items == 1 {
                        "ledger: take the principal's lock (conditional put)"
                    } else {
                        "ledger: the audit entry"
                    }
                }
                "dynamodb:GetItem" => "ledger: was this finding already applied (idempotency)",
                "dynamodb:DeleteItem" => "ledger: release the principal's lock",
                "events:PutEvents" => "publish the outcome to the outcome bus (for the notifier)",
                _ => "",
            };
            (name.clone(), why.to_owned())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Warm revocations
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct WarmLatency {
    /// Round trips of first revocations of distinct roles (nothing there before).
    pub first_ms: Vec<f64>,
    /// Round trips of repeat revocations of the same roles (a later cutoff).
    pub repeat_ms: Vec<f64>,
    pub peak_rss_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WarmCalls {
    /// Calls of the warm-up revocation (the first in the process: credentials).
    pub warmup: Vec<String>,
    /// Per first revocation (credentials cached).
    pub first: Vec<Vec<String>>,
    /// Per repeat revocation.
    pub repeat: Vec<Vec<String>>,
}

/// How a revocation of `role` is asked of a function.
pub type RevokePayload = dyn Fn(&str) -> Value;

fn expect_applied(answer: &Value) -> Result<()> {
    let status = answer["status"].as_str().unwrap_or("?");
    if status != "applied" {
        bail!("expected status applied, got {status}: {answer}");
    }
    Ok(())
}

/// Time between the two passes over the same roles: the second pass's cutoff (now +
/// 1 s, rounded up) and the baseline's "activity after the existing cutoff" must both
/// be later than the first pass's, or the repeat would write nothing.
const BETWEEN_PASSES: Duration = Duration::from_millis(2_100);

/// Revokes each role once (first revocations), waits, and revokes each again (repeat
/// revocations), after one warm-up revocation; the round trip of each.
pub fn warm_latency(
    spec: &FunctionSpec,
    payload: &RevokePayload,
    warmup_role: &str,
    roles: &[String],
) -> Result<WarmLatency> {
    let mut lambda = start(spec);
    let (answer, _) = call(&mut lambda, &payload(warmup_role))?;
    expect_applied(&answer).context("warm-up")?;
    let mut first = Vec::new();
    for role in roles {
        let (answer, took) = call(&mut lambda, &payload(role))?;
        expect_applied(&answer).with_context(|| format!("{} first {role}", spec.label))?;
        first.push(ms(took));
    }
    thread::sleep(BETWEEN_PASSES);
    let mut repeat = Vec::new();
    for role in roles {
        let (answer, took) = call(&mut lambda, &payload(role))?;
        expect_applied(&answer).with_context(|| format!("{} repeat {role}", spec.label))?;
        repeat.push(ms(took));
    }
    let peak = peak_rss_kib(lambda.pid())?;
    Ok(WarmLatency {
        first_ms: first,
        repeat_ms: repeat,
        peak_rss_kib: peak,
    })
}

/// The same sequence through a recording proxy: the calls of each revocation.
pub fn warm_calls(
    spec: &FunctionSpec,
    moto_endpoint: &str,
    payload: &RevokePayload,
    warmup_role: &str,
    roles: &[String],
) -> Result<WarmCalls> {
    let proxy = FaultProxy::start(moto_endpoint, FaultPlan::passthrough());
    let mut lambda = start(&spec.via(proxy.endpoint()));
    let one = |lambda: &mut LocalLambda, role: &str| -> Result<Vec<String>> {
        let mark = proxy.recorded();
        let (answer, _) = call(lambda, &payload(role))?;
        expect_applied(&answer).with_context(|| format!("{} {role}", spec.label))?;
        Ok(proxy.requests_from(mark).iter().map(call_name).collect())
    };
    let warmup = one(&mut lambda, warmup_role)?;
    let mut first = Vec::new();
    for role in roles {
        first.push(one(&mut lambda, role)?);
    }
    thread::sleep(BETWEEN_PASSES);
    let mut repeat = Vec::new();
    for role in roles {
        repeat.push(one(&mut lambda, role)?);
    }
    Ok(WarmCalls {
        warmup,
        first,
        repeat,
    })
}

/// Calls per revocation: the distinct per-revocation counts of `service:Action`
/// (one map when every revocation made the same calls).
pub fn per_revocation(calls: &[Vec<String>]) -> Vec<BTreeMap<String, u64>> {
    let mut distinct: Vec<BTreeMap<String, u64>> = Vec::new();
    for c in calls {
        let m = counts(c);
        if !distinct.contains(&m) {
            distinct.push(m);
        }
    }
    distinct
}

// ---------------------------------------------------------------------------------------
// The finding storm
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct StormResult {
    pub findings: usize,
    pub principals: usize,
    /// `PutRolePolicy` requests that reached the stand-in.
    pub writes: u64,
    /// From the storm's start to the last finding handled.
    pub wall_ms: f64,
    /// cutoff's stages (intake, the revoker), each its own busy time: they overlap.
    pub phases_ms: Vec<(String, f64)>,
    /// From the storm's start to the last write: every principal denied.
    pub last_write_ms: f64,
    /// Revoker invocations (SQS batches); none for the baseline.
    pub batches: usize,
    pub calls: BTreeMap<String, u64>,
    pub ledger: LedgerCalls,
    pub failures: usize,
    pub peak_rss_kib: BTreeMap<String, u64>,
    /// Per finding: from the storm's start (every finding arrives at once) to the end
    /// of the invocation that answered it.
    pub time_to_contain_ms: Summary,
    /// Round trip of each invocation: intake's per finding and the revoker's per
    /// batch (cutoff), the function's per finding (baseline).
    pub invocation_ms: BTreeMap<String, Summary>,
}

fn storm_findings(roles: &[String], findings: usize, series: u32) -> Vec<Value> {
    // All the findings report activity seen before the storm began: many findings
    // about one intrusion, as GuardDuty emits them.
    let last_seen = Utc::now() - chrono::Duration::seconds(60);
    (0..findings)
        .map(|i| finding(&finding_id(series, i), &roles[i % roles.len()], last_seen))
        .collect()
}

fn writes_and_last(proxy: &FaultProxy, since: Instant) -> (u64, f64) {
    let writes = proxy.requests_for("PutRolePolicy");
    let last = writes
        .iter()
        .map(|r| r.at.saturating_duration_since(since))
        .max()
        .unwrap_or_default();
    (writes.len() as u64, ms(last))
}

fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:{HOME}:{name}")
}

/// cutoff's path, as in AWS: every finding to intake (one process, in a thread of its
/// own) while an event-source-mapping loop receives batches of ten from the FIFO queue,
/// invokes the revoker (one process) and deletes what succeeded, until every request
/// was handled. All the findings arrive at once (the storm): a finding's time to
/// contain runs from then to the end of the revoker invocation that answered it (the
/// deny verified, or found covering it, and the outcome published).
pub fn storm_cutoff(
    rt: &tokio::runtime::Runtime,
    stage: &Stage,
    queue: &str,
    intake: &FunctionSpec,
    revoker: &FunctionSpec,
    roles: &[String],
    findings: usize,
) -> Result<StormResult> {
    let proxy = FaultProxy::start(&stage.endpoint, FaultPlan::passthrough());
    let events = storm_findings(roles, findings, 0x5701);
    let mut intake = start(&intake.via(proxy.endpoint()));
    let mut revoker = start(&revoker.via(proxy.endpoint()));
    intake
        .wait_ready(Duration::from_secs(30))
        .map_err(|e| anyhow!(e))?;
    revoker
        .wait_ready(Duration::from_secs(30))
        .map_err(|e| anyhow!(e))?;
    let sqs = aws_sdk_sqs::Client::new(&stage.config);
    let fed = std::sync::atomic::AtomicBool::new(false);

    let started = Instant::now();
    let (fed_result, drained) = thread::scope(|scope| {
        let feeder = scope.spawn(|| {
            let result = (|| -> Result<(Vec<f64>, Duration)> {
                let mut intake_ms = Vec::new();
                for event in &events {
                    let (report, took) = call(&mut intake, event)?;
                    if report["queued"] != 1 {
                        bail!("intake did not queue the finding: {report}");
                    }
                    intake_ms.push(ms(took));
                }
                Ok((intake_ms, started.elapsed()))
            })();
            fed.store(true, Ordering::SeqCst);
            result
        });
        let drained = drain(rt, &sqs, queue, &mut revoker, findings, started, &fed);
        let fed_result = feeder
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the intake thread panicked")));
        (fed_result, drained)
    });
    let (intake_ms, intake_phase) = fed_result?;
    let drained = drained?;
    let wall = drained.last_handled;
    let (writes, last_write_ms) = writes_and_last(&proxy, started);
    let mut peak = BTreeMap::new();
    peak.insert("intake".to_owned(), peak_rss_kib(intake.pid())?);
    peak.insert("revoker".to_owned(), peak_rss_kib(revoker.pid())?);
    let requests = proxy.requests();
    let names: Vec<String> = requests.iter().map(call_name).collect();
    let revoker_ms: f64 = drained.batch_ms.iter().sum();
    Ok(StormResult {
        findings,
        principals: roles.len(),
        writes,
        wall_ms: ms(wall),
        phases_ms: vec![
            ("intake, every finding".to_owned(), ms(intake_phase)),
            ("revoker, its invocations".to_owned(), revoker_ms),
        ],
        last_write_ms,
        batches: drained.batch_ms.len(),
        calls: counts(&names),
        ledger: LedgerCalls::of(&requests, findings),
        failures: drained.failures,
        peak_rss_kib: peak,
        time_to_contain_ms: Summary::of(&drained.contained_ms),
        invocation_ms: BTreeMap::from([
            ("intake per finding".to_owned(), Summary::of(&intake_ms)),
            (
                "revoker per batch".to_owned(),
                Summary::of(&drained.batch_ms),
            ),
        ]),
    })
}

/// What draining the request queue measured.
struct Drained {
    batch_ms: Vec<f64>,
    /// Per request handled: from the storm's start to the end of its invocation.
    contained_ms: Vec<f64>,
    failures: usize,
    /// From the storm's start to the last request handled.
    last_handled: Duration,
}

/// The event source mapping: receive up to ten, invoke the revoker, delete what it
/// did not report failed; until `findings` requests were handled. While intake still
/// feeds the queue an empty receive is no end; after it, three in a row are.
fn drain(
    rt: &tokio::runtime::Runtime,
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    revoker: &mut cutoff_tests::runtime::LocalLambda,
    findings: usize,
    started: Instant,
    fed: &std::sync::atomic::AtomicBool,
) -> Result<Drained> {
    let mut handled = 0;
    let mut batch_ms = Vec::new();
    let mut contained_ms = Vec::new();
    let mut failures = 0;
    let mut empty = 0;
    let mut last_handled = Duration::ZERO;
    while handled < findings && empty < 3 {
        let received = rt
            .block_on(
                sqs.receive_message()
                    .queue_url(queue)
                    .max_number_of_messages(10)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .send(),
            )
            .context("receive requests")?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            if fed.load(Ordering::SeqCst) {
                empty += 1;
            }
            thread::sleep(Duration::from_millis(10));
            continue;
        }
        empty = 0;
        let arn = queue_arn("requests.fifo");
        let records: Vec<Value> = messages.iter().map(|m| sqs_record(m, &arn)).collect();
        let (answer, took) = call(revoker, &json!({ "Records": records }))?;
        let answered = started.elapsed();
        batch_ms.push(ms(took));
        let failed: Vec<&str> = answer["batchItemFailures"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|x| x["itemIdentifier"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        failures += failed.len();
        let mut delete = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if !failed.contains(&m.message_id.as_deref().unwrap_or_default()) {
                handled += 1;
                contained_ms.push(ms(answered));
                last_handled = answered;
                delete.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                        .build()
                        .context("delete entry")?,
                );
            }
        }
        if !delete.is_empty() {
            rt.block_on(
                sqs.delete_message_batch()
                    .queue_url(queue)
                    .set_entries(Some(delete))
                    .send(),
            )
            .context("delete requests")?;
        }
        if failures > findings {
            bail!("the revoker keeps failing requests: {answer}");
        }
    }
    if handled < findings {
        bail!("the queue ran dry after {handled} of {findings} requests");
    }
    Ok(Drained {
        batch_ms,
        contained_ms,
        failures,
        last_handled,
    })
}

/// The ledger's DynamoDB calls in a storm: the lock and the closing of each request (and
/// the earlier entry of a redelivery), apart from the circuit breaker's counts, which an
/// automatic revocation takes only before it writes.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerCalls {
    /// Every DynamoDB call but the breaker's.
    pub ledger: u64,
    /// `UpdateItem`s of a `breaker#` item.
    pub breaker: u64,
    /// Reads of the table's format item (`ledger#format`): once per process.
    pub format: u64,
    pub per_finding: f64,
}

impl LedgerCalls {
    fn of(requests: &[RecordedRequest], findings: usize) -> LedgerCalls {
        let dynamodb: Vec<&RecordedRequest> = requests
            .iter()
            .filter(|r| call_name(r).starts_with("dynamodb:"))
            .collect();
        let apart =
            |marker: &str| dynamodb.iter().filter(|r| r.body.contains(marker)).count() as u64;
        let (breaker, format) = (apart("\"breaker#"), apart("\"ledger#format\""));
        let ledger = dynamodb.len() as u64 - breaker - format;
        LedgerCalls {
            ledger,
            breaker,
            format,
            per_finding: ledger as f64 / findings.max(1) as f64,
        }
    }
}

/// The baseline's path: every finding straight to the function, one at a time.
pub fn storm_baseline(
    stage: &Stage,
    baseline: &FunctionSpec,
    roles: &[String],
    findings: usize,
) -> Result<StormResult> {
    let proxy = FaultProxy::start(&stage.endpoint, FaultPlan::passthrough());
    let events = storm_findings(roles, findings, 0x5702);
    let mut lambda = start(&baseline.via(proxy.endpoint()));
    lambda
        .wait_ready(Duration::from_secs(60))
        .map_err(|e| anyhow!(e))?;
    let started = Instant::now();
    let mut failures = 0;
    let mut took_ms = Vec::new();
    let mut contained_ms = Vec::new();
    for event in &events {
        let (answer, took) = call(&mut lambda, event)?;
        took_ms.push(ms(took));
        contained_ms.push(ms(started.elapsed()));
        match answer["status"].as_str() {
            Some("applied") | Some("already_revoked") => {}
            _ => failures += 1,
        }
    }
    let wall = started.elapsed();
    let (writes, last_write_ms) = writes_and_last(&proxy, started);
    let names: Vec<String> = proxy.requests().iter().map(call_name).collect();
    let mut peak = BTreeMap::new();
    peak.insert("baseline".to_owned(), peak_rss_kib(lambda.pid())?);
    Ok(StormResult {
        findings,
        principals: roles.len(),
        writes,
        wall_ms: ms(wall),
        phases_ms: Vec::new(),
        last_write_ms,
        batches: 0,
        calls: counts(&names),
        ledger: LedgerCalls::of(&proxy.requests(), findings),
        failures,
        peak_rss_kib: peak,
        time_to_contain_ms: Summary::of(&contained_ms),
        invocation_ms: BTreeMap::from([("baseline per finding".to_owned(), Summary::of(&took_ms))]),
    })
}

// ---------------------------------------------------------------------------------------
// The sweep at scale
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct SweepResult {
    pub roles: usize,
    pub opted_in: usize,
    pub expired: usize,
    pub moto_start_ms: f64,
    pub seed_ms: f64,
    pub seed_retries: u64,
    /// The sweep, with the listing paged as IAM pages it (1,000 items a page).
    pub paged: SweepPass,
    /// A dry run before it, with moto's own answer: the whole account in one page.
    pub unpaged_dry_run: SweepPass,
    /// What the scale test in tests/integration/sweep.rs pins: pages + 3 per moved cutoff +
    /// 2 per removed revocation.
    pub expected_iam_calls: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepPass {
    pub dry_run: bool,
    /// `{"action":"sweep"}`: the run is planned, one task on the queue.
    pub plan_ms: f64,
    /// The worker's invocation with the task: the account swept, outcomes published,
    /// the run recorded and its summary published.
    pub work_ms: f64,
    pub calls: BTreeMap<String, u64>,
    pub iam_calls: u64,
    pub listing_pages: u64,
    /// The worker's record of the account (principals scanned, cutoffs moved, …).
    pub record: Value,
    pub peak_rss_kib: u64,
    /// The largest answer the sweeper received.
    pub largest_response_bytes: u64,
}

const SEED_IN_FLIGHT: usize = 32;

/// Role `i` of the sweep, as in tests/integration/sweep.rs: every 20th opts in (max session
/// age 2h), every 20th plus one carries only an expired revocation.
fn sweep_role(i: usize, opted_in: usize, expired: usize) -> (String, bool, bool) {
    (
        format!("svc-{i:05}"),
        i.is_multiple_of(20) && i / 20 < opted_in,
        i % 20 == 1 && i / 20 < expired,
    )
}

/// The sweeper Lambda over an account of `roles` roles on a moto server of its own
/// (seeding keeps single-threaded moto busy for most of a minute), through a counting
/// proxy: plan, then one worker invocation with the task, as the SQS event-source
/// mapping would deliver it.
pub fn sweep_at_scale(
    rt: &tokio::runtime::Runtime,
    bins: &stage::Binaries,
    home_dir: &std::path::Path,
    roles: usize,
) -> Result<SweepResult> {
    let opted_in = roles / 20;
    let expired = (roles * 3) / 100;
    let booting = Instant::now();
    let moto = MotoServer::start();
    let moto_start = booting.elapsed();
    let stage = rt.block_on(Stage::create(moto.endpoint(), "sweep", home_dir))?;
    let iam = aws_sdk_iam::Client::new(&stage.config);
    let expired_doc = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"RevokeOlderSessions","Effect":"Deny","Action":"*","Resource":"*","Condition":{{"DateLessThan":{{"aws:TokenIssueTime":"{}"}}}}}}]}}"#,
        (Utc::now() - chrono::Duration::hours(20)).format("%Y-%m-%dT%H:%M:%SZ")
    );
    let seeding = Instant::now();
    let seed_retries = rt.block_on(async {
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..SEED_IN_FLIGHT {
            let (iam, next, doc) = (iam.clone(), Arc::clone(&next), expired_doc.clone());
            workers.spawn(async move {
                let mut retries = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= roles {
                        break Ok::<u64, anyhow::Error>(retries);
                    }
                    let (name, opt, exp) = sweep_role(i, opted_in, expired);
                    let mut tags = vec![("cutoff:owner", "fleet")];
                    if opt {
                        tags.push(("cutoff:max-session-age", "2h"));
                    }
                    retries += stage::create_role(&iam, &name, &tags).await?;
                    if exp {
                        retries +=
                            stage::put_role_policy(&iam, &name, "AWSRevokeOlderSessions", &doc)
                                .await?;
                    }
                    if i > 0 && i % 2_000 == 0 {
                        eprintln!("  sweep: seeded {i} roles");
                    }
                }
            });
        }
        let mut retries = 0;
        while let Some(done) = workers.join_next().await {
            retries += done.context("seed worker")??;
        }
        Ok::<u64, anyhow::Error>(retries)
    })?;
    let seeded = seeding.elapsed();
    eprintln!(
        "  sweep: seeded {roles} roles in {:.1} s",
        seeded.as_secs_f64()
    );

    // moto's own answer first, in a dry run (nothing is written, so the real sweep
    // after it finds the same work), then the real sweep through the paging shim.
    let unpaged_dry_run = sweep_pass(rt, &stage, bins, moto.endpoint(), "bench-unpaged", true)?;
    let shim = PagingShim::start(moto.endpoint())?;
    let paged = sweep_pass(rt, &stage, bins, shim.endpoint(), "bench-sweep", false)?;
    drop(shim);
    drop(moto);
    Ok(SweepResult {
        roles,
        opted_in,
        expired,
        moto_start_ms: ms(moto_start),
        seed_ms: ms(seeded),
        seed_retries,
        expected_iam_calls: paged.listing_pages + opted_in as u64 * 3 + expired as u64 * 2,
        paged,
        unpaged_dry_run,
    })
}

/// One sweep by a fresh sweeper process reaching `upstream` through a counting proxy:
/// plan, then one worker invocation with the task, as the SQS event-source mapping
/// delivers it.
fn sweep_pass(
    rt: &tokio::runtime::Runtime,
    stage: &Stage,
    bins: &stage::Binaries,
    upstream: &str,
    run_id: &str,
    dry_run: bool,
) -> Result<SweepPass> {
    let proxy = FaultProxy::start(upstream, FaultPlan::passthrough());
    let mut sweeper = start(&stage.sweeper(bins).via(proxy.endpoint()));
    sweeper
        .wait_ready(Duration::from_secs(30))
        .map_err(|e| anyhow!(e))?;
    let (plan, plan_took) = call(
        &mut sweeper,
        &json!({"action": "sweep", "run_id": run_id, "dry_run": dry_run}),
    )?;
    if plan["planned"] != true || plan["accounts"] != 1 {
        bail!("the sweep was not planned: {plan}");
    }
    let sqs = aws_sdk_sqs::Client::new(&stage.config);
    let received = rt
        .block_on(
            sqs.receive_message()
                .queue_url(&stage.sweep_queue_url)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send(),
        )
        .context("receive the sweep task")?;
    let messages = received.messages.unwrap_or_default();
    if messages.len() != 1 {
        bail!("expected one sweep task, found {}", messages.len());
    }
    let arn = queue_arn("sweep-tasks");
    let records: Vec<Value> = messages.iter().map(|m| sqs_record(m, &arn)).collect();
    let (work, work_took) = call_within(
        &mut sweeper,
        &json!({ "Records": records }),
        Duration::from_secs(600),
    )?;
    if work["batchItemFailures"]
        .as_array()
        .is_none_or(|f| !f.is_empty())
    {
        bail!("the sweep task failed: {work}");
    }
    for m in &messages {
        rt.block_on(
            sqs.delete_message()
                .queue_url(&stage.sweep_queue_url)
                .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                .send(),
        )
        .context("delete the sweep task")?;
    }
    let peak = peak_rss_kib(sweeper.pid())?;
    let record = sweeper
        .json_logs()
        .iter()
        .filter_map(|l| l["task"].as_str())
        .filter_map(|t| serde_json::from_str::<Value>(t).ok())
        .find_map(|t| t.get("record").cloned())
        .unwrap_or(Value::Null);
    let requests = proxy.requests();
    let names: Vec<String> = requests.iter().map(call_name).collect();
    let calls = counts(&names);
    let iam_calls = calls
        .iter()
        .filter(|(k, _)| k.starts_with("iam:"))
        .map(|(_, v)| *v)
        .sum();
    let largest = requests
        .iter()
        .filter_map(|r| r.response_body.as_ref().map(|b| b.len() as u64))
        .max()
        .unwrap_or(0);
    Ok(SweepPass {
        dry_run,
        plan_ms: ms(plan_took),
        work_ms: ms(work_took),
        listing_pages: calls
            .get("iam:GetAccountAuthorizationDetails")
            .copied()
            .unwrap_or(0),
        calls,
        iam_calls,
        record,
        peak_rss_kib: peak,
        largest_response_bytes: largest,
    })
}

/// Checks a role-revocation outcome, a triage report, a notifier report, a plan.
pub fn checker(kind: &'static str) -> Check {
    Box::new(move |answer: &Value| match kind {
        "hello" if answer.get("hello").is_some() => Ok(()),
        "applied" if answer["status"] == "applied" => Ok(()),
        "queued" if answer["queued"] == 1 => Ok(()),
        "notified" if answer.is_object() => Ok(()),
        "planned" if answer["planned"] == true => Ok(()),
        _ => Err(anyhow!("unexpected answer for a {kind} check")),
    })
}
