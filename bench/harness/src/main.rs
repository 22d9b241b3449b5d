//! `make bench`: how fast cutoff contains a stolen credential and what it costs,
//! measured on this machine beside the usual alternative, a Python Lambda using boto3
//! (bench/baseline/), both run through the same local Lambda Runtime API against the
//! same local AWS stand-in (moto).
//!
//! Figures: cold start of each function and of the baseline (process start to the
//! first poll of the Runtime API, and to the first answer), warm latency and IAM/STS
//! calls per revocation, a finding storm, the sweep at 10,000 roles, peak RSS of every
//! function, bundle sizes. Each figure is checked against its budget (issue [7]);
//! the run writes bench/results.json and bench/results.md and exits 1 when a budget
//! fails (2 when the bench itself could not run), so CI can gate on it.
//!
//! Usage: cutoff-bench [--runs N] [--revocations N] [--storm-findings N]
//! [--storm-roles N] [--sweep-roles N] [--out DIR] [--no-fail]

mod measure;
mod paging;
mod report;
mod stage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use chrono::Utc;
use cutoff_tests::moto::MotoServer;
use serde_json::{Value, json};

use measure::{ColdArm, ColdSample, StormResult, SweepResult, WarmCalls, WarmLatency};
use report::{Budget, Summary, fmt_counts, fmt_mb, fmt_ms, kib_to_bytes, sum_where, table};
use stage::{Binaries, FunctionSpec, Stage, finding, finding_id, manual_revoke, outcome_event};

/// The budgets of issue [7].
const COLD_VS_BASELINE: f64 = 20.0;
const COLD_VS_FLOOR: f64 = 3.0;
const PEAK_RSS_BYTES: u64 = 16_000_000;
const IAM_CALLS_PER_REVOCATION: u64 = 4;
const BUNDLE_BYTES: u64 = 8_000_000;
/// The directory of the bench's moto patch (a `sitecustomize` module).
const BENCH_MOTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../moto");

/// cutoff's pipeline time to contain, p99 over the storm's findings, against the
/// baseline's (issue [13]).
const TTC_VS_BASELINE: f64 = 2.0;
/// DynamoDB calls of the ledger per revocation, the breaker's count apart (issue [13]).
const LEDGER_CALLS_PER_REVOCATION: f64 = 2.0;
/// Lambda's price on arm64 (us-east-1): per GB-second of billed duration, per request.
const PRICE_PER_GB_SECOND: f64 = 0.000_013_333_4;
const PRICE_PER_REQUEST: f64 = 0.000_000_2;
/// Warm notifier invocations timed for its cost per finding.
const NOTIFIER_WARM_RUNS: usize = 50;

/// The trust-store variants of the cold-start diagnostic.
const TRUST_WITH_DIR: &str = "bundle_and_directory";
const TRUST_NONE: &str = "no_trust_store";
const DEBIAN_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const CERT_DIR: &str = "/etc/ssl/certs";

const CUTOFF_FUNCTIONS: [&str; 4] = ["intake", "revoker", "notifier", "sweeper"];

#[derive(Debug, Clone)]
struct Options {
    runs: usize,
    revocations: usize,
    storm_findings: usize,
    storm_roles: usize,
    sweep_roles: usize,
    out: PathBuf,
    fail_on_budget: bool,
}

impl Options {
    fn parse(root: &Path) -> Result<Options> {
        let mut o = Options {
            runs: 20,
            revocations: 50,
            storm_findings: 1_000,
            storm_roles: 50,
            sweep_roles: 10_000,
            out: root.join("bench"),
            fail_on_budget: true,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut number = |name: &str| -> Result<usize> {
                args.next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| anyhow!("{name} takes a number"))
            };
            match arg.as_str() {
                "--runs" => o.runs = number("--runs")?,
                "--revocations" => o.revocations = number("--revocations")?,
                "--storm-findings" => o.storm_findings = number("--storm-findings")?,
                "--storm-roles" => o.storm_roles = number("--storm-roles")?,
                "--sweep-roles" => o.sweep_roles = number("--sweep-roles")?,
                "--out" => o.out = PathBuf::from(args.next().context("--out takes a directory")?),
                "--no-fail" => o.fail_on_budget = false,
                "-h" | "--help" => {
                    println!(
                        "cutoff-bench [--runs N (20)] [--revocations N (50)] [--storm-findings N (1000)] \
                         [--storm-roles N (50)] [--sweep-roles N (10000)] [--out DIR (bench/)] [--no-fail]"
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?} (see --help)"),
            }
        }
        if o.runs < 10 {
            eprintln!(
                "note: --runs {} is below the 10 runs issue [7] asks for",
                o.runs
            );
        }
        if o.runs == 0 || o.revocations == 0 || o.storm_roles == 0 || o.sweep_roles < 20 {
            bail!(
                "--runs, --revocations and --storm-roles must be positive, --sweep-roles at least 20"
            );
        }
        Ok(o)
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("make bench: the bench could not run: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs everything; whether every budget passed (or failures are not to fail the run).
fn run() -> Result<bool> {
    let root = cutoff_tests::workspace_root().to_owned();
    let options = Options::parse(&root)?;
    let bins = Binaries::locate(&root)?;
    let machine = machine(&root);
    let bundles = bundles(&root)?;
    let home_dir = root.join("target/bench-home");
    std::fs::create_dir_all(&home_dir).context("creating target/bench-home")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let started = Instant::now();

    eprintln!("bench: starting moto and creating the resources and roles");
    // moto with two of its costs that grow with the data made constant, its answers
    // unchanged, and FIFO batches grouped as SQS groups them (bench/moto/sitecustomize.py;
    // `make bench` checks it first): a FIFO SendMessage that walks the whole queue, a
    // transaction that copies whole tables, a batch that mixes groups.
    let moto = MotoServer::start_with_env(&[("PYTHONPATH", BENCH_MOTO)]);
    let stage = rt.block_on(Stage::create(moto.endpoint(), "bench", &home_dir))?;
    let runs = options.runs;
    let k = options.revocations;
    let names = |prefix: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
    };
    let cold_revoker_roles = names("cold-revoker", runs + 1);
    let cold_baseline_roles = names("cold-baseline", runs + 1);
    let warm_arms = ["revoker", "revoker-no-ledger", "baseline"];
    let mut all_roles = vec!["notify-source".to_owned()];
    all_roles.extend(cold_revoker_roles.iter().cloned());
    all_roles.extend(cold_baseline_roles.iter().cloned());
    for arm in warm_arms {
        for pass in ["latency", "calls"] {
            all_roles.push(format!("{arm}-{pass}-warmup"));
            all_roles.extend(names(&format!("{arm}-{pass}"), k));
        }
    }
    let storm_cutoff_roles = names("storm-cutoff", options.storm_roles);
    let storm_baseline_roles = names("storm-baseline", options.storm_roles);
    all_roles.extend(storm_cutoff_roles.iter().cloned());
    all_roles.extend(storm_baseline_roles.iter().cloned());
    rt.block_on(stage.create_member_roles(&all_roles))?;

    let hello = stage.hello(&bins);
    let intake = stage.intake(&bins);
    let revoker = stage.revoker(&bins);
    let notifier = stage.notifier(&bins);
    let sweeper = stage.sweeper(&bins);
    let baseline = stage.baseline(&bins);

    // An outcome for the notifier's cold starts, as the revoker publishes it.
    let outcome = {
        let mut lambda = measure::start(&revoker);
        let (answer, _) = measure::call(&mut lambda, &manual_revoke("notify-source"))?;
        measure::checker("applied")(&answer)?;
        answer
    };

    // ---- cold starts ----
    eprintln!("bench: cold starts, {runs} runs of each function (and one untimed run first)");
    let series = Arc::new(AtomicUsize::new(0));
    // What each function's n-th cold start is invoked with; `tag` keeps the ids of
    // one series apart from another's.
    let payload = |label: &str, tag: u32| -> Box<dyn Fn(usize) -> Value> {
        match label {
            "hello" => Box::new(|run| json!({"run": run})),
            "intake" => Box::new(move |run| {
                finding(
                    &finding_id(tag, run),
                    "cold-intake-target",
                    Utc::now() - chrono::Duration::seconds(60),
                )
            }),
            "revoker" => {
                let roles = cold_revoker_roles.clone();
                Box::new(move |run| manual_revoke(&roles[run]))
            }
            "notifier" => {
                let outcome = outcome.clone();
                Box::new(move |run| outcome_event(&outcome, run))
            }
            "sweeper" => Box::new(
                move |run| json!({"action": "sweep", "run_id": format!("cold-{tag:x}-{run}")}),
            ),
            _ => {
                let roles = cold_baseline_roles.clone();
                Box::new(move |run| finding(&finding_id(tag, run), &roles[run], Utc::now()))
            }
        }
    };
    let notified: measure::Check = Box::new(|answer: &Value| {
        if answer["published"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
        {
            Ok(())
        } else {
            Err(anyhow!("nothing published"))
        }
    });
    let arms = vec![
        ColdArm {
            spec: hello.clone(),
            payload: payload("hello", 0),
            check: measure::checker("hello"),
        },
        ColdArm {
            spec: intake.clone(),
            payload: payload("intake", 0xC01D),
            check: measure::checker("queued"),
        },
        ColdArm {
            spec: revoker.clone(),
            payload: payload("revoker", 0),
            check: measure::checker("applied"),
        },
        ColdArm {
            spec: notifier.clone(),
            payload: payload("notifier", 0),
            check: notified,
        },
        ColdArm {
            spec: sweeper.clone(),
            payload: payload("sweeper", 0xC01D),
            check: measure::checker("planned"),
        },
        ColdArm {
            spec: baseline.clone(),
            payload: payload("baseline", 0xBA5E),
            check: measure::checker("applied"),
        },
    ];
    let cold_samples = measure::cold_starts(&arms, runs)?;
    let cold: BTreeMap<String, Vec<ColdSample>> = arms
        .iter()
        .zip(cold_samples)
        .map(|(arm, s)| (arm.spec.label.to_owned(), s))
        .collect();

    // ---- where a cold start goes: the TLS trust store (diagnostic, no budget) ----
    // cutoff's HTTPS client (shared/aws/src/https.rs) trusts the system's CA bundle
    // file alone, read once, with one TLS configuration for all its SDK clients. The same binaries again with SSL_CERT_FILE and
    // SSL_CERT_DIR naming the bundle and its directory (the SDK then reads both, as
    // its default loading does unasked) and with an empty store show what the trust
    // store costs here.
    let empty_pem = home_dir.join("empty-trust-store.pem");
    std::fs::write(&empty_pem, "").context("writing the empty trust store")?;
    let mut trust_variants = vec![(
        TRUST_NONE,
        vec![("SSL_CERT_FILE", empty_pem.display().to_string())],
    )];
    if Path::new(DEBIAN_BUNDLE).is_file() {
        trust_variants.insert(
            0,
            (
                TRUST_WITH_DIR,
                vec![
                    ("SSL_CERT_FILE", DEBIAN_BUNDLE.to_owned()),
                    ("SSL_CERT_DIR", CERT_DIR.to_owned()),
                ],
            ),
        );
    }
    eprintln!(
        "bench: cold starts of the cutoff functions with other trust stores (diagnostic), {runs} runs each"
    );
    let mut diag_arms = Vec::new();
    let mut diag_keys = Vec::new();
    for (variant, vars) in &trust_variants {
        for (f, spec) in [
            ("intake", &intake),
            ("revoker", &revoker),
            ("notifier", &notifier),
            ("sweeper", &sweeper),
        ] {
            let spec = vars.iter().fold(spec.clone(), |spec, (key, value)| {
                spec.with(key, value.clone())
            });
            diag_arms.push(ColdArm {
                spec,
                payload: payload(f, 0xD1A6),
                check: Box::new(|_: &Value| Ok(())),
            });
            diag_keys.push((f.to_owned(), (*variant).to_owned()));
        }
    }
    let mut trust_store: BTreeMap<String, BTreeMap<String, Summary>> = BTreeMap::new();
    for ((f, variant), samples) in diag_keys
        .into_iter()
        .zip(measure::cold_starts(&diag_arms, runs)?)
    {
        let polls: Vec<f64> = samples.iter().map(|c| c.first_poll_ms).collect();
        trust_store
            .entry(f)
            .or_default()
            .insert(variant, Summary::of(&polls));
    }

    // The instrument's own share of a warm round trip: hello-world, warm.
    let floor_round_trip = {
        let mut lambda = measure::start(&hello);
        let mut took = Vec::new();
        for i in 0..=k {
            let (_, t) = measure::call(&mut lambda, &json!({"run": i}))?;
            if i > 0 {
                took.push(stage::ms(t));
            }
        }
        Summary::of(&took)
    };

    // ---- warm revocations ----
    eprintln!("bench: warm revocations, {k} first and {k} repeat revocations per function");
    let revoke_manual = |role: &str| manual_revoke(role);
    let baseline_finding = {
        let series = Arc::clone(&series);
        move |role: &str| {
            let n = series.fetch_add(1, Ordering::Relaxed);
            finding(&finding_id(0x3A53, n), role, Utc::now())
        }
    };
    let revoker_no_ledger = FunctionSpec {
        label: "revoker-no-ledger",
        ..revoker.clone().without("CUTOFF_LEDGER_TABLE")
    };
    let mut warm: BTreeMap<String, (WarmLatency, WarmCalls)> = BTreeMap::new();
    for (arm, spec) in [
        ("revoker", &revoker),
        ("revoker-no-ledger", &revoker_no_ledger),
        ("baseline", &baseline),
    ] {
        let payload: &measure::RevokePayload = if arm == "baseline" {
            &baseline_finding
        } else {
            &revoke_manual
        };
        let latency = measure::warm_latency(
            spec,
            payload,
            &format!("{arm}-latency-warmup"),
            &names(&format!("{arm}-latency"), k),
        )?;
        let calls = measure::warm_calls(
            spec,
            &stage.endpoint,
            payload,
            &format!("{arm}-calls-warmup"),
            &names(&format!("{arm}-calls"), k),
        )?;
        eprintln!(
            "  {arm}: first revocation {}, repeat {}",
            Summary::of(&latency.first_ms).ms_p(),
            Summary::of(&latency.repeat_ms).ms_p()
        );
        warm.insert(arm.to_owned(), (latency, calls));
    }

    // ---- the finding storm ----
    eprintln!(
        "bench: finding storm, {} findings over {} roles",
        options.storm_findings, options.storm_roles
    );
    let storm_queue = rt.block_on(stage.new_request_queue("storm-requests.fifo"))?;
    let storm_stage_intake = intake
        .clone()
        .with("CUTOFF_REQUEST_QUEUE_URL", storm_queue.clone());
    let storm_table = rt.block_on(stage.new_ledger_table("storm-ledger"))?;
    let storm_revoker = revoker.clone().with("CUTOFF_LEDGER_TABLE", storm_table);
    let storm_cutoff = measure::storm_cutoff(
        &rt,
        &stage,
        &storm_queue,
        &storm_stage_intake,
        &storm_revoker,
        &storm_cutoff_roles,
        options.storm_findings,
    )?;
    eprintln!(
        "  cutoff: {} writes, {}",
        storm_cutoff.writes,
        fmt_ms(storm_cutoff.wall_ms)
    );
    let storm_baseline = measure::storm_baseline(
        &stage,
        &baseline,
        &storm_baseline_roles,
        options.storm_findings,
    )?;
    eprintln!(
        "  baseline: {} writes, {}",
        storm_baseline.writes,
        fmt_ms(storm_baseline.wall_ms)
    );
    eprintln!(
        "  time to contain, p50 / p99: cutoff {} / {}, baseline {} / {}",
        fmt_ms(storm_cutoff.time_to_contain_ms.median),
        fmt_ms(storm_cutoff.time_to_contain_ms.p99),
        fmt_ms(storm_baseline.time_to_contain_ms.median),
        fmt_ms(storm_baseline.time_to_contain_ms.p99)
    );
    // The notifier's share of the cost: one invocation per outcome, warm.
    let notifier_warm = {
        let mut lambda = measure::start(&notifier);
        let event = payload("notifier", 0);
        measure::call(&mut lambda, &event(0))?;
        let mut took = Vec::new();
        for run in 1..=NOTIFIER_WARM_RUNS {
            let (answer, t) = measure::call(&mut lambda, &event(run))?;
            if answer["published"].as_array().is_none_or(|p| p.is_empty()) {
                bail!("the notifier published nothing: {answer}");
            }
            took.push(stage::ms(t));
        }
        Summary::of(&took)
    };
    drop(moto);

    // ---- the sweep at scale ----
    eprintln!(
        "bench: sweep of {} roles (seeding a moto server of its own first)",
        options.sweep_roles
    );
    let sweep = measure::sweep_at_scale(&rt, &bins, &home_dir, options.sweep_roles)?;
    eprintln!(
        "  sweep: {} IAM calls, {}, peak RSS {} (unpaged dry run: {})",
        sweep.paged.iam_calls,
        fmt_ms(sweep.paged.work_ms),
        fmt_mb(kib_to_bytes(sweep.paged.peak_rss_kib)),
        fmt_mb(kib_to_bytes(sweep.unpaged_dry_run.peak_rss_kib))
    );

    let results = Results {
        options: options.clone(),
        machine,
        bundles,
        host_binaries: host_binaries(&bins),
        cold,
        trust_store,
        floor_round_trip,
        warm,
        storm_cutoff,
        storm_baseline,
        notifier_warm,
        memory_mb: template_memory_mb()?,
        sweep,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    let budgets = results.budgets();
    let markdown = results.markdown(&budgets);
    let json = results.json(&budgets);
    std::fs::create_dir_all(&options.out)?;
    let json_path = options.out.join("results.json");
    let md_path = options.out.join("results.md");
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    std::fs::write(&md_path, &markdown)
        .with_context(|| format!("writing {}", md_path.display()))?;
    println!("{markdown}");
    let failed: Vec<&Budget> = budgets.iter().filter(|b| !b.pass).collect();
    println!(
        "wrote {} and {} ({:.0} s)",
        json_path.display(),
        md_path.display(),
        results.elapsed_s
    );
    if failed.is_empty() {
        println!("make bench: every budget passed");
        Ok(true)
    } else {
        println!("make bench: {} budget(s) FAILED:", failed.len());
        for b in &failed {
            println!("  FAIL {}: {} (limit {})", b.name, b.figure, b.limit);
        }
        Ok(!options.fail_on_budget)
    }
}

// ---------------------------------------------------------------------------------------
// The machine, the bundles
// ---------------------------------------------------------------------------------------

fn command_output(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let text = if text.is_empty() {
        String::from_utf8_lossy(&out.stderr).trim().to_owned()
    } else {
        text
    };
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn machine(root: &Path) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let py = root.join("bench/baseline/.venv/bin/python");
    let version_of = |python: &Path, module: &str| {
        command_output(
            python,
            &[
                "-c",
                &format!("import importlib.metadata as m; print(m.version('{module}'))"),
            ],
        )
    };
    let ssl_certs_files = std::fs::read_dir("/etc/ssl/certs")
        .map(|d| d.count())
        .unwrap_or(0);
    json!({
        "ssl_certs_files": ssl_certs_files,
        "cpu": cpu,
        "cores": cores,
        "memory_gib": (mem_kib as f64 / 1_048_576.0 * 10.0).round() / 10.0,
        "kernel": kernel,
        "rustc": command_output(Path::new("rustc"), &["--version"]),
        "python": command_output(&py, &["--version"]),
        "boto3": version_of(&py, "boto3"),
        "awslambdaric": version_of(&py, "awslambdaric"),
        "moto": version_of(&root.join(".venv/bin/python"), "moto"),
    })
}

/// `target/lambda/sizes.txt` of `make build`, with the architecture read from each
/// bundle's ELF header.
fn bundles(root: &Path) -> Result<BTreeMap<String, (u64, String)>> {
    let sizes = root.join("target/lambda/sizes.txt");
    let mut out = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(&sizes) else {
        eprintln!(
            "note: {} is missing (`make bench` runs `make build` first): no bundle sizes",
            sizes.display()
        );
        return Ok(out);
    };
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, bytes, "bytes", path] = fields[..] else {
            continue;
        };
        let bytes: u64 = bytes.parse().context("size in sizes.txt")?;
        let arch = std::fs::read(root.join(path))
            .ok()
            .and_then(|b| b.get(18..20).map(|m| u16::from_le_bytes([m[0], m[1]])))
            .map(|m| match m {
                0x3E => "x86_64",
                0xB7 => "arm64",
                _ => "unknown",
            })
            .unwrap_or("unknown")
            .to_owned();
        out.insert(name.to_owned(), (bytes, arch));
    }
    Ok(out)
}

fn host_binaries(bins: &Binaries) -> BTreeMap<String, u64> {
    [
        ("hello", &bins.hello),
        ("intake", &bins.intake),
        ("revoker", &bins.revoker),
        ("notifier", &bins.notifier),
        ("sweeper", &bins.sweeper),
    ]
    .into_iter()
    .filter_map(|(n, p)| std::fs::metadata(p).ok().map(|m| (n.to_owned(), m.len())))
    .collect()
}

// ---------------------------------------------------------------------------------------
// Results, budgets, rendering
// ---------------------------------------------------------------------------------------

/// One function's Lambda cost per 10,000 findings.
#[derive(Debug, Clone, serde::Serialize)]
struct CostLine {
    function: &'static str,
    invocations: f64,
    mean_ms: f64,
    gb_seconds: f64,
    usd: f64,
}

impl CostLine {
    fn new(function: &'static str, per_finding: f64, mean_ms: f64, memory_mb: u32) -> Self {
        let invocations = per_finding * 10_000.0;
        let billed_s = mean_ms.ceil() / 1000.0;
        let gb_seconds = invocations * billed_s * f64::from(memory_mb) / 1024.0;
        CostLine {
            function,
            invocations,
            mean_ms,
            gb_seconds,
            usd: gb_seconds * PRICE_PER_GB_SECOND + invocations * PRICE_PER_REQUEST,
        }
    }
}

/// The functions' `MemorySize` in infra/template.yaml's `Globals` (MB).
fn template_memory_mb() -> Result<u32> {
    let path = cutoff_tests::workspace_root().join("infra/template.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    text.lines()
        .find_map(|line| line.trim().strip_prefix("MemorySize:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("no MemorySize in {}", path.display()))
}

struct Results {
    options: Options,
    machine: Value,
    bundles: BTreeMap<String, (u64, String)>,
    host_binaries: BTreeMap<String, u64>,
    cold: BTreeMap<String, Vec<ColdSample>>,
    /// Function → trust-store variant → first poll.
    trust_store: BTreeMap<String, BTreeMap<String, Summary>>,
    /// A warm invocation of hello-world: the Runtime API round trip alone.
    floor_round_trip: Summary,
    warm: BTreeMap<String, (WarmLatency, WarmCalls)>,
    storm_cutoff: StormResult,
    storm_baseline: StormResult,
    /// Warm notifier invocations (its share of the cost per finding).
    notifier_warm: Summary,
    /// The functions' memory size in the template (MB).
    memory_mb: u32,
    sweep: SweepResult,
    elapsed_s: f64,
}

/// What one cold invocation of each function did.
fn cold_work(label: &str) -> &'static str {
    match label {
        "hello" => "echo the payload (the floor)",
        "intake" => "GuardDuty finding: triage, SendMessage to the FIFO queue",
        "revoker" => {
            "manual revoke of a member-account role: AssumeRole, then IAM read, write and verify, the ledger (DynamoDB), PutEvents"
        }
        "notifier" => "outcome event: 2 SNS publishes (security and owner topics)",
        "sweeper" => "{\"action\":\"sweep\"}: plan the run (DynamoDB) and queue its task (SQS)",
        "baseline" => {
            "GuardDuty finding: triage, AssumeRole, then IAM read, write and verify, PutEvents (intake and revoker in one)"
        }
        _ => "",
    }
}

impl Results {
    fn cold_summary(&self, label: &str) -> (Summary, Summary) {
        let s = &self.cold[label];
        (
            Summary::of(&s.iter().map(|c| c.first_poll_ms).collect::<Vec<_>>()),
            Summary::of(&s.iter().map(|c| c.first_response_ms).collect::<Vec<_>>()),
        )
    }

    /// Peak RSS of a function over every run of it (cold, warm, storm), in KiB; the
    /// 10,000-role sweep is reported on its own.
    fn peak_rss_kib(&self, label: &str) -> u64 {
        let mut peak = self.cold[label]
            .iter()
            .map(|c| c.peak_rss_kib)
            .max()
            .unwrap_or(0);
        let warm_arms: &[&str] = match label {
            "revoker" => &["revoker", "revoker-no-ledger"],
            "baseline" => &["baseline"],
            _ => &[],
        };
        for arm in warm_arms {
            if let Some((latency, _)) = self.warm.get(*arm) {
                peak = peak.max(latency.peak_rss_kib);
            }
        }
        for storm in [&self.storm_cutoff, &self.storm_baseline] {
            if let Some(p) = storm.peak_rss_kib.get(label) {
                peak = peak.max(*p);
            }
        }
        peak
    }

    fn iam_per_revocation(&self, arm: &str, repeat: bool) -> (u64, u64) {
        let calls = &self.warm[arm].1;
        let per: Vec<u64> = (if repeat { &calls.repeat } else { &calls.first })
            .iter()
            .map(|c| c.iter().filter(|n| measure::is_iam_or_sts(n)).count() as u64)
            .collect();
        (
            per.iter().copied().min().unwrap_or(0),
            per.iter().copied().max().unwrap_or(0),
        )
    }

    fn budgets(&self) -> Vec<Budget> {
        let mut out = Vec::new();
        let (base, _) = self.cold_summary("baseline");
        let (hello, _) = self.cold_summary("hello");
        for f in CUTOFF_FUNCTIONS {
            let (poll, _) = self.cold_summary(f);
            let ratio = base.median / poll.median;
            out.push(Budget::new(
                format!("cold start (first poll): {f} vs the baseline"),
                format!(
                    "{ratio:.1}× faster ({} vs {})",
                    fmt_ms(poll.median),
                    fmt_ms(base.median)
                ),
                "≥ 20× faster",
                ratio >= COLD_VS_BASELINE,
            ));
        }
        for f in CUTOFF_FUNCTIONS {
            let (poll, _) = self.cold_summary(f);
            let ratio = poll.median / hello.median;
            let mut b = Budget::new(
                format!("cold start (first poll): {f} vs hello-world lambda_runtime"),
                format!(
                    "{ratio:.2}× the floor ({} vs {})",
                    fmt_ms(poll.median),
                    fmt_ms(hello.median)
                ),
                "≤ 3×",
                ratio <= COLD_VS_FLOOR,
            );
            if let Some(variants) = self.trust_store.get(f) {
                let with = |v: &str| variants.get(v).map(|s| s.median / hello.median);
                if let (Some(with_dir), Some(none)) = (with(TRUST_WITH_DIR), with(TRUST_NONE)) {
                    b = b.note(format!(
                        "the trust store is part of it: {with_dir:.2}× with the certificate directory read too (the SDK's default loading), {none:.2}× with no store"
                    ));
                }
            }
            out.push(b);
        }
        for f in CUTOFF_FUNCTIONS {
            let peak = kib_to_bytes(self.peak_rss_kib(f));
            out.push(Budget::new(
                format!("peak RSS: {f}"),
                fmt_mb(peak),
                "≤ 16 MB",
                peak <= PEAK_RSS_BYTES,
            ));
        }
        let sweep_peak = kib_to_bytes(self.sweep.paged.peak_rss_kib);
        out.push(
            Budget::new(
                format!(
                    "peak RSS: sweeper sweeping {} roles (listing paged as IAM pages it)",
                    self.sweep.roles
                ),
                fmt_mb(sweep_peak),
                "≤ 16 MB",
                sweep_peak <= PEAK_RSS_BYTES,
            )
            .note(format!(
                "moto answers the whole account in one page ({}): with that, a dry run peaked at {}",
                fmt_mb(self.sweep.unpaged_dry_run.largest_response_bytes),
                fmt_mb(kib_to_bytes(self.sweep.unpaged_dry_run.peak_rss_kib))
            )),
        );
        for (repeat, case) in [
            (false, "first revocation of a role"),
            (true, "repeat revocation"),
        ] {
            let (_, max) = self.iam_per_revocation("revoker", repeat);
            let (_, base) = self.iam_per_revocation("baseline", repeat);
            out.push(Budget::new(
                format!("IAM calls per role revocation, credentials cached: {case}"),
                format!("{max} (baseline: {base})"),
                "≤ 4 (read role, read policy, write, verify)",
                max <= IAM_CALLS_PER_REVOCATION,
            ));
        }
        let s = &self.storm_cutoff;
        out.push(Budget::new(
            format!(
                "storm writes: {} findings over {} roles",
                s.findings, s.principals
            ),
            format!("{} writes", s.writes),
            &format!("≤ {} (distinct principals)", s.principals),
            s.writes <= s.principals as u64,
        ));
        let (cutoff_ttc, base_ttc) = (
            &self.storm_cutoff.time_to_contain_ms,
            &self.storm_baseline.time_to_contain_ms,
        );
        let ratio = cutoff_ttc.p99 / base_ttc.p99;
        out.push(Budget::new(
            format!(
                "storm time to contain, p99: cutoff's pipeline vs the baseline ({} findings)",
                s.findings
            ),
            format!(
                "{ratio:.2}× ({} vs {})",
                fmt_ms(cutoff_ttc.p99),
                fmt_ms(base_ttc.p99)
            ),
            "≤ 2×",
            ratio <= TTC_VS_BASELINE,
        ));
        for (repeat, case) in [(false, "first revocation"), (true, "repeat revocation")] {
            let calls = &self.warm["revoker"].1;
            let per = if repeat { &calls.repeat } else { &calls.first };
            let max = per
                .iter()
                .map(|c| c.iter().filter(|n| n.starts_with("dynamodb:")).count())
                .max()
                .unwrap_or(0);
            out.push(Budget::new(
                format!("ledger calls per revocation, manual: {case}"),
                max.to_string(),
                "≤ 2",
                max as f64 <= LEDGER_CALLS_PER_REVOCATION,
            ));
        }
        out.push(
            Budget::new(
                "ledger calls per finding in the storm, the breaker's counts apart".to_owned(),
                format!(
                    "{:.2} ({} calls for {} findings)",
                    s.ledger.per_finding, s.ledger.ledger, s.findings
                ),
                "≤ 2",
                s.ledger.per_finding <= LEDGER_CALLS_PER_REVOCATION,
            )
            .note(format!(
                "and {} counts of the circuit breaker, one before each automatic write, and {} read of the table's format item (once per process)",
                s.ledger.breaker, s.ledger.format
            )),
        );
        for f in CUTOFF_FUNCTIONS {
            out.push(match self.bundles.get(f) {
                Some((bytes, arch)) => Budget::new(
                    format!("bundle size: {f} ({arch})"),
                    fmt_mb(*bytes),
                    "≤ 8 MB",
                    *bytes <= BUNDLE_BYTES,
                ),
                None => Budget::new(
                    format!("bundle size: {f}"),
                    "not built".to_owned(),
                    "≤ 8 MB",
                    false,
                )
                .note("target/lambda/sizes.txt has no bundle for it: run `make build`"),
            });
        }
        out
    }

    fn bundle_arch(&self) -> String {
        let mut archs: Vec<&str> = self.bundles.values().map(|(_, a)| a.as_str()).collect();
        archs.dedup();
        archs.join("/")
    }

    fn markdown(&self, budgets: &[Budget]) -> String {
        let m = &self.machine;
        let s = |k: &str| report::field(m, k);
        let o = &self.options;
        let verdict = |name: &str| -> String {
            budgets
                .iter()
                .filter(|b| b.name.starts_with(name))
                .map(|b| b.verdict())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let exact = |name: &str| -> String {
            budgets
                .iter()
                .filter(|b| b.name == name)
                .map(|b| b.verdict())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut md = String::new();
        md.push_str(&format!(
            "Measured by `make bench` on {} ({} cores, {} GiB RAM, Linux {}), {}; {}; {} (boto3 {}, awslambdaric {}); moto {} as the AWS stand-in, with two of its costs that grow with the data made constant and its answers unchanged, and FIFO batches grouped as SQS groups them (bench/moto/sitecustomize.py, checked by bench/moto/check_patches.py before the run): a FIFO SendMessage computes the queue's approximate counts by walking every queued message (135 ms into a queue of 1,000 messages against 13 ms into an empty one), a TransactWriteItems deep-copies every table it names to roll back (103 ms against a table of 1,000 items, 10 ms against an empty one), where SQS's and DynamoDB's latencies do not grow so; and SQS \"first attempts to return as many messages with the same message group ID as possible\" in a FIFO batch, where moto returns the oldest messages whatever their groups. Functions: the workspace's release profile (opt-level s, fat LTO, one codegen unit, panic abort, stripped) for the host (x86_64), each a fresh process on a local Lambda Runtime API (tests/support/runtime.rs). Bundles: `make build` ({}). Budgets of issue [7] are marked PASS/FAIL.\n\n",
            s("cpu"),
            s("cores"),
            s("memory_gib"),
            s("kernel"),
            Utc::now().format("%Y-%m-%d"),
            s("rustc"),
            s("python"),
            s("boto3"),
            s("awslambdaric"),
            s("moto"),
            self.bundle_arch(),
        ));

        // Cold starts.
        md.push_str(&format!(
            "**Cold start**: process start to the first poll of the Runtime API (`GET /next`), and to the answer of the first invocation; {} runs each after one untimed run, median (min–max).\n\n",
            o.runs
        ));
        let (base, _) = self.cold_summary("baseline");
        let (hello, _) = self.cold_summary("hello");
        let mut rows = Vec::new();
        for label in [
            "hello", "intake", "revoker", "notifier", "sweeper", "baseline",
        ] {
            let (poll, answer) = self.cold_summary(label);
            let vs_base = if label == "baseline" {
                "1×".to_owned()
            } else {
                format!("{:.1}×", base.median / poll.median)
            };
            let vs_hello = format!("{:.2}×", poll.median / hello.median);
            let budget = match label {
                "hello" | "baseline" => "".to_owned(),
                f => verdict(&format!("cold start (first poll): {f} ")),
            };
            rows.push(vec![
                match label {
                    "hello" => "hello-world (floor)".to_owned(),
                    "baseline" => "**baseline** (Python, boto3)".to_owned(),
                    f => format!("**{f}**"),
                },
                poll.ms_range(),
                answer.ms_range(),
                vs_base,
                vs_hello,
                budget,
                cold_work(label).to_owned(),
            ]);
        }
        md.push_str(&table(
            &[
                "function",
                "→ first poll",
                "→ first answer",
                "baseline ÷ function",
                "function ÷ floor",
                "budget (≥ 20×, ≤ 3×)",
                "first invocation",
            ],
            &rows,
        ));

        // Where a cold start goes.
        if !self.trust_store.is_empty() {
            md.push_str(&format!(
                "\nWhere a cutoff cold start goes (diagnostic, no budget): loading the TLS trust store, before the first poll. cutoff's HTTPS client trusts the system's CA bundle file, read and checked once per process, with one TLS configuration for all its SDK clients (shared/aws/src/https.rs). The SDK's default loading also reads every file of the certificate directories and parses the store again for each SDK client; this machine's `/etc/ssl/certs` holds {} files (the bundle, and each certificate again as a file of its own), Lambda's provided.al2023 keeps only bundles there. The same binaries with `SSL_CERT_FILE` and `SSL_CERT_DIR` naming the bundle and that directory (cutoff then leaves the loading to the SDK, still with one TLS configuration for all SDK clients), and with an empty store, first poll, median (min–max):\n\n",
                report::field(&self.machine, "ssl_certs_files")
            ));
            let mut rows = Vec::new();
            for f in CUTOFF_FUNCTIONS {
                let (poll, _) = self.cold_summary(f);
                let variant = |v: &str| {
                    self.trust_store
                        .get(f)
                        .and_then(|m| m.get(v))
                        .map(Summary::ms_range)
                        .unwrap_or_else(|| "-".to_owned())
                };
                rows.push(vec![
                    f.to_owned(),
                    poll.ms_range(),
                    variant(TRUST_WITH_DIR),
                    variant(TRUST_NONE),
                ]);
            }
            rows.push(vec![
                "hello-world (floor)".to_owned(),
                hello.ms_range(),
                "(no TLS)".to_owned(),
                "(no TLS)".to_owned(),
            ]);
            md.push_str(&table(
                &[
                    "function",
                    "as built: the bundle file (the budgets above)",
                    "the bundle file and the certificate directory",
                    "no trust store",
                ],
                &rows,
            ));
        }

        // Warm revocations and calls.
        md.push_str(&format!(
            "\n**Warm revocation**: one process, {k} revocations of distinct member-account roles with nothing on them (first), then {k} more of the same roles (repeat: a later cutoff merged into the deny); round trip through the Runtime API, median (p10, p90). Calls counted by a recording proxy in front of moto, per revocation, credentials cached. Each call to moto takes some 3–5 ms here, so the latency is mostly the number of calls; the Runtime API round trip alone (hello-world, warm) is {floor}.\n\n",
            k = o.revocations,
            floor = self.floor_round_trip.ms_p()
        ));
        let mut rows = Vec::new();
        for (arm, name) in [
            ("revoker", "**cutoff revoker** (ledger, as deployed)"),
            ("revoker-no-ledger", "cutoff revoker without ledger"),
            ("baseline", "**baseline**"),
        ] {
            let (latency, calls) = &self.warm[arm];
            let (f_min, f_max) = self.iam_per_revocation(arm, false);
            let (r_min, r_max) = self.iam_per_revocation(arm, true);
            let span = |a: u64, b: u64| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}–{b}")
                }
            };
            let other = measure::per_revocation(&calls.first)
                .first()
                .map(|m| fmt_counts(m, |k| !measure::is_iam_or_sts(k)))
                .unwrap_or_default();
            rows.push(vec![
                name.to_owned(),
                Summary::of(&latency.first_ms).ms_p(),
                Summary::of(&latency.repeat_ms).ms_p(),
                format!("{} / {}", span(f_min, f_max), span(r_min, r_max)),
                other,
            ]);
        }
        md.push_str(&table(
            &[
                "",
                "first revocation",
                "repeat revocation",
                "IAM/STS calls (first / repeat)",
                "other calls per revocation",
            ],
            &rows,
        ));
        md.push_str("\nWhat each call of a first revocation is for (the warm-up revocation before also made `sts:AssumeRole` for the member account, once):\n\n");
        let sequence = |arm: &str| -> Vec<String> {
            self.warm[arm].1.first.first().cloned().unwrap_or_default()
        };
        let mut rows = Vec::new();
        for (i, (call, why)) in measure::purposes(&sequence("revoker"), false)
            .into_iter()
            .enumerate()
        {
            rows.push(vec![(i + 1).to_string(), format!("`{call}`"), why]);
        }
        md.push_str(&table(&["#", "cutoff revoker", "what for"], &rows));
        let base_seq: Vec<String> = sequence("baseline")
            .iter()
            .map(|c| format!("`{c}`"))
            .collect();
        let iam_only = |seq: Vec<String>| -> Vec<String> {
            seq.into_iter()
                .filter(|c| measure::is_iam_or_sts(c))
                .collect()
        };
        let same = iam_only(sequence("revoker")) == iam_only(sequence("baseline"));
        md.push_str(&format!(
            "\nThe baseline, same revocation: {} ({}; no ledger).\n",
            base_seq.join(" → "),
            if same {
                "the same IAM calls in the same order"
            } else {
                "its IAM calls differ from the revoker's"
            }
        ));
        md.push_str(&format!(
            "Budget ≤ 4 IAM calls per role revocation (cutoff): first revocation {}, repeat {}.\n",
            verdict("IAM calls per role revocation, credentials cached: first"),
            verdict("IAM calls per role revocation, credentials cached: repeat"),
        ));

        // Storm.
        let st = &self.storm_cutoff;
        md.push_str(&format!(
            "\n**Finding storm**: {} GuardDuty findings (severity 8) over {} roles (finding i names role i mod {}), all about activity seen before the storm, all arriving at once. cutoff runs as in AWS: intake takes the findings one after another (one process) while an event-source-mapping loop receives batches of up to ten from the FIFO queue, invokes the revoker (one process) and deletes what it handled; both share one moto (single-threaded in effect: its work for the two adds up, where AWS's services work in parallel); the revoker's ledger is a table of its own. **Time to contain**, per finding: from the storm's start to the end of the invocation that answered it (its principal's deny verified, or found covering it, and the outcome published); for cutoff that includes intake, the queue and the revoker, for the baseline its one invocation. Last write: from the storm's start to the write that denied the last principal.\n\n",
            st.findings, st.principals, st.principals
        ));
        let mut rows = Vec::new();
        for (s, name) in [
            (
                &self.storm_cutoff,
                format!(
                    "**cutoff**: intake → SQS FIFO → revoker ({} batches of ≤ 10)",
                    self.storm_cutoff.batches
                ),
            ),
            (
                &self.storm_baseline,
                "**baseline**: one invocation per finding, one at a time (its best case: concurrent invocations race)".to_owned(),
            ),
        ] {
            rows.push(vec![
                name,
                format!("{} ({} principals)", s.writes, s.principals),
                if s.phases_ms.is_empty() {
                    fmt_ms(s.wall_ms)
                } else {
                    format!(
                        "{}: {}",
                        fmt_ms(s.wall_ms),
                        s.phases_ms
                            .iter()
                            .map(|(k, v)| format!("{} {k}", fmt_ms(*v)))
                            .collect::<Vec<_>>()
                            .join(" + ")
                    )
                },
                format!(
                    "{} / {}",
                    fmt_ms(s.time_to_contain_ms.median),
                    fmt_ms(s.time_to_contain_ms.p99)
                ),
                fmt_ms(s.last_write_ms),
                sum_where(&s.calls, measure::is_iam_or_sts).to_string(),
                format!("{:.2}", s.ledger.per_finding),
                fmt_counts(&s.calls, |k| !measure::is_iam_or_sts(k)),
                s.invocation_ms
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", v.ms_p()))
                    .collect::<Vec<_>>()
                    .join("; "),
                s.failures.to_string(),
            ]);
        }
        md.push_str(&table(
            &[
                "",
                "writes (PutRolePolicy)",
                "wall time",
                "time to contain, p50 / p99",
                "last write",
                "IAM/STS calls",
                "ledger calls per finding (breaker apart)",
                "other calls",
                "invocations",
                "failed",
            ],
            &rows,
        ));
        md.push_str(&format!(
            "Budgets: writes ≤ distinct principals {}; time to contain p99 ≤ 2× the baseline's {}; ledger calls per finding ≤ 2 (the circuit breaker's {} counts, one before each automatic write, apart) {}.\n",
            verdict("storm writes"),
            verdict("storm time to contain"),
            st.ledger.breaker,
            verdict("ledger calls per finding")
        ));
        md.push_str(&self.cost_markdown());

        // Sweep.
        let sw = &self.sweep;
        md.push_str(&format!(
            "\n**Sweep** of {} roles by the sweeper Lambda ({} opted in to a 2 h max session age, {} with an expired revocation; ledger, outcome bus and task queue as deployed): planned by `{{\"action\":\"sweep\"}}`, then worked by one invocation with the task. moto answers `GetAccountAuthorizationDetails` in one page whatever `MaxItems` says; IAM pages it (cutoff asks for 1,000 items a page), so the sweep is measured through a forwarder that pages moto's answer as IAM would (bench/harness/src/paging.rs). A dry run with moto's single page came first, for its memory.\n\n",
            sw.roles, sw.opted_in, sw.expired
        ));
        let mut rows = Vec::new();
        for (pass, name) in [
            (&sw.paged, "sweep, listing paged (1,000 a page)"),
            (&sw.unpaged_dry_run, "dry run, moto's single page"),
        ] {
            rows.push(vec![
                name.to_owned(),
                if pass.dry_run {
                    format!("{} (writes nothing)", pass.iam_calls)
                } else {
                    format!("{} (expected {})", pass.iam_calls, sw.expected_iam_calls)
                },
                fmt_counts(&pass.calls, |k| k.starts_with("iam:")),
                fmt_counts(&pass.calls, |k| !k.starts_with("iam:")),
                fmt_ms(pass.work_ms),
                format!(
                    "{}{}",
                    fmt_mb(kib_to_bytes(pass.peak_rss_kib)),
                    if pass.dry_run {
                        String::new()
                    } else {
                        format!(" {}", verdict("peak RSS: sweeper sweeping"))
                    }
                ),
                fmt_mb(pass.largest_response_bytes),
            ]);
        }
        md.push_str(&table(
            &[
                "",
                "IAM calls (pages + 3 per moved cutoff + 2 per removal)",
                "IAM calls by action",
                "other calls",
                "sweep (worker invocation)",
                "peak RSS of the sweeper",
                "largest answer",
            ],
            &rows,
        ));

        // Memory and bundles.
        md.push_str(&format!(
            "\n**Peak RSS** (`VmHWM` of the process after its invocations: every cold run, and for the revoker, intake and baseline also the warm runs and the storm) and **bundle size** (`target/lambda/<function>/bootstrap` of `make build`, {}; the host binaries measured above for comparison).\n\n",
            self.bundle_arch()
        ));
        let mut rows = Vec::new();
        for label in [
            "hello", "intake", "revoker", "notifier", "sweeper", "baseline",
        ] {
            let peak = kib_to_bytes(self.peak_rss_kib(label));
            let is_cutoff = CUTOFF_FUNCTIONS.contains(&label);
            rows.push(vec![
                label.to_owned(),
                format!(
                    "{}{}",
                    fmt_mb(peak),
                    if is_cutoff {
                        format!(" {}", exact(&format!("peak RSS: {label}")))
                    } else {
                        String::new()
                    }
                ),
                match self.bundles.get(label) {
                    Some((bytes, _)) => format!(
                        "{} {}",
                        fmt_mb(*bytes),
                        verdict(&format!("bundle size: {label} "))
                    ),
                    None if label == "baseline" => {
                        "handler.py + boto3 are in the managed runtime".to_owned()
                    }
                    None => "-".to_owned(),
                },
                self.host_binaries
                    .get(label)
                    .map(|b| fmt_mb(*b))
                    .unwrap_or_else(|| "-".to_owned()),
            ]);
        }
        md.push_str(&table(
            &[
                "function",
                "peak RSS (≤ 16 MB)",
                "bundle (≤ 8 MB)",
                "host binary",
            ],
            &rows,
        ));

        // Budgets.
        let passed = budgets.iter().filter(|b| b.pass).count();
        md.push_str(&format!(
            "\n**Budgets**: {passed} of {} pass.\n\n",
            budgets.len()
        ));
        let rows: Vec<Vec<String>> = budgets
            .iter()
            .map(|b| {
                vec![
                    b.name.clone(),
                    b.figure.clone(),
                    b.limit.clone(),
                    format!("**{}**", b.verdict()),
                    b.note.clone().unwrap_or_default(),
                ]
            })
            .collect();
        md.push_str(&table(&["budget", "measured", "limit", "", "why"], &rows));
        md
    }

    /// Lambda's cost per 10,000 findings from the storm's measured durations: per
    /// function, invocations per finding × mean duration × memory, and the requests.
    fn cost(&self) -> Vec<CostLine> {
        let st = &self.storm_cutoff;
        let per_finding = |batches: usize| batches as f64 / st.findings.max(1) as f64;
        let mean = |s: &StormResult, key: &str| s.invocation_ms.get(key).map_or(0.0, |x| x.mean);
        vec![
            CostLine::new(
                "intake",
                1.0,
                mean(st, "intake per finding"),
                self.memory_mb,
            ),
            CostLine::new(
                "revoker",
                per_finding(st.batches),
                mean(st, "revoker per batch"),
                self.memory_mb,
            ),
            CostLine::new("notifier", 1.0, self.notifier_warm.mean, self.memory_mb),
            CostLine::new(
                "baseline",
                1.0,
                mean(&self.storm_baseline, "baseline per finding"),
                self.memory_mb,
            ),
        ]
    }

    fn cost_markdown(&self) -> String {
        let lines = self.cost();
        let rows: Vec<Vec<String>> = lines
            .iter()
            .map(|c| {
                vec![
                    c.function.to_owned(),
                    format!("{:.0}", c.invocations),
                    fmt_ms(c.mean_ms),
                    format!("{:.1}", c.gb_seconds),
                    format!("${:.4}", c.usd),
                ]
            })
            .collect();
        let cutoff: f64 = lines
            .iter()
            .filter(|c| c.function != "baseline")
            .map(|c| c.usd)
            .sum();
        let baseline: f64 = lines
            .iter()
            .filter(|c| c.function == "baseline")
            .map(|c| c.usd)
            .sum();
        format!(
            "\n**Lambda cost per 10,000 findings**, from the storm's durations (the notifier's: {} warm invocations, one per outcome), {} MB each as the template sets it, arm64 prices (us-east-1: ${PRICE_PER_GB_SECOND} per GB-second, ${:.2} per million requests), billed duration rounded up to the millisecond. The durations are this machine's against moto, whose calls take 3–5 ms; AWS's IAM, STS and DynamoDB answer in tens of milliseconds, so a deployment pays for more milliseconds than this (the same holds for the baseline).\n\n{}cutoff: ${cutoff:.4} per 10,000 findings; the baseline: ${baseline:.4}.\n",
            self.notifier_warm.n,
            self.memory_mb,
            PRICE_PER_REQUEST * 1e6,
            table(
                &[
                    "function",
                    "invocations",
                    "mean duration",
                    "GB-seconds",
                    "cost"
                ],
                &rows
            )
        )
    }

    fn json(&self, budgets: &[Budget]) -> Value {
        let cold: BTreeMap<&str, Value> = self
            .cold
            .iter()
            .map(|(label, samples)| {
                let (poll, answer) = self.cold_summary(label);
                (
                    label.as_str(),
                    json!({
                        "first_poll_ms": poll,
                        "first_response_ms": answer,
                        "peak_rss_kib_max": samples.iter().map(|c| c.peak_rss_kib).max(),
                        "first_invocation": cold_work(label),
                        "samples": samples,
                    }),
                )
            })
            .collect();
        let (base, _) = self.cold_summary("baseline");
        let (hello, _) = self.cold_summary("hello");
        let ratios: BTreeMap<&str, Value> = CUTOFF_FUNCTIONS
            .iter()
            .map(|f| {
                let (poll, _) = self.cold_summary(f);
                (
                    *f,
                    json!({
                        "baseline_over_function": base.median / poll.median,
                        "function_over_hello": poll.median / hello.median,
                    }),
                )
            })
            .collect();
        let warm: BTreeMap<&str, Value> = self
            .warm
            .iter()
            .map(|(arm, (latency, calls))| {
                (
                    arm.as_str(),
                    json!({
                        "first_revocation_ms": Summary::of(&latency.first_ms),
                        "repeat_revocation_ms": Summary::of(&latency.repeat_ms),
                        "peak_rss_kib": latency.peak_rss_kib,
                        "calls_warmup": calls.warmup,
                        "calls_per_first_revocation": measure::per_revocation(&calls.first),
                        "calls_per_repeat_revocation": measure::per_revocation(&calls.repeat),
                        "first_revocation_sequence": calls.first.first().map(|s| measure::purposes(s, arm == "baseline")),
                        "latency_samples": latency,
                    }),
                )
            })
            .collect();
        let peak: BTreeMap<&str, u64> = [
            "hello", "intake", "revoker", "notifier", "sweeper", "baseline",
        ]
        .into_iter()
        .map(|l| (l, self.peak_rss_kib(l)))
        .collect();
        let bundles: BTreeMap<&String, Value> = self
            .bundles
            .iter()
            .map(|(k, (bytes, arch))| (k, json!({"bytes": bytes, "arch": arch})))
            .collect();
        json!({
            "generated_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "command": "make bench",
            "elapsed_s": self.elapsed_s,
            "machine": self.machine,
            "settings": {
                "cold_runs": self.options.runs,
                "revocations": self.options.revocations,
                "storm_findings": self.options.storm_findings,
                "storm_roles": self.options.storm_roles,
                "sweep_roles": self.options.sweep_roles,
            },
            "build": {
                "functions": "cargo build --release (workspace profile: opt-level s, the SDK client crates z, fat LTO, codegen-units 1, panic abort, strip) for the host",
                "host_binaries_bytes": self.host_binaries,
            },
            "cold_start": cold,
            "cold_start_ratios": ratios,
            "cold_start_first_poll_by_trust_store": self.trust_store,
            "warm": warm,
            "runtime_api_round_trip_ms": self.floor_round_trip,
            "storm": {"cutoff": self.storm_cutoff, "baseline": self.storm_baseline},
            "notifier_warm_ms": self.notifier_warm,
            "cost_per_10k_findings": self.cost(),
            "sweep": self.sweep,
            "peak_rss_kib": peak,
            "bundles": bundles,
            "budgets": budgets,
            "passed": budgets.iter().all(|b| b.pass),
        })
    }
}
