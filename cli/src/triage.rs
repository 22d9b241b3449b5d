//! `cutoff triage`: show what cutoff would decide for an event, without touching AWS.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use cutoff_domain::event::MAX_EVENT_BYTES;
use cutoff_domain::principal::{NamePattern, Partition, ProtectedArn};
use cutoff_domain::settings::{self, TriageConfig};
use cutoff_domain::triage::triage_bytes;

use crate::Exit;

/// Decide what cutoff would do with an event: revoke, alert or ignore.
///
/// Reads one JSON input: an EventBridge event (GuardDuty finding or attack sequence,
/// Security Hub custom action, imported ASFF findings or OCSF findings, CloudTrail API
/// call, scheduled event), a finding copied from the GuardDuty or Security Hub console,
/// or a manual request. Prints the triage JSON
/// ({"source", "decisions": [{"decision", "reason", "finding", "target"}]}) and
/// changes nothing in AWS.
///
/// Exits 2 with a one-line error when the input is unreadable, not JSON, or invalid
/// (a bad account id, a name IAM would refuse): invalid input never yields revoke.
///
/// The rules come from the same CUTOFF_* environment variables as the Lambdas,
/// overridden by the flags below.
#[derive(Debug, Args)]
pub struct TriageArgs {
    /// The event file, or - for standard input.
    #[arg(value_name = "FILE|-")]
    input: PathBuf,

    /// Revoke at or above this severity (0–10, GuardDuty's scale) [default: 7]
    #[arg(long, value_name = "N")]
    revoke_severity: Option<String>,

    /// Alert at or above this severity, below the revoke threshold [default: 4]
    #[arg(long, value_name = "N")]
    alert_severity: Option<String>,

    /// Never revoke principals with this name (exact, or a prefix ending in *);
    /// repeatable. The member role is always protected; no name prefix is.
    #[arg(long = "protect", value_name = "NAME")]
    protect: Vec<String>,

    /// Never revoke this role or user (its exact ARN, as the deployment protects its
    /// own roles); repeatable.
    #[arg(long = "protect-arn", value_name = "ARN")]
    protect_arns: Vec<String>,

    /// The deployment's partition (aws, aws-cn, aws-us-gov…): an ARN of another one is
    /// refused [default: aws, or CUTOFF_PARTITION].
    #[arg(long, value_name = "PARTITION")]
    partition: Option<String>,

    /// Act on Security Hub imported findings (ignored by default).
    #[arg(long)]
    securityhub_imported: bool,

    /// Act on Security Hub's OCSF findings (Findings Imported V2; ignored by default).
    #[arg(long)]
    securityhub_v2: bool,

    /// Act on the OCSF findings of this product, named as the productv2/<company>/<product>
    /// tail of metadata.product.uid (e.g. aws/guardduty); repeatable, replaces the
    /// default (aws/guardduty, or CUTOFF_SECURITYHUB_V2_PRODUCTS).
    #[arg(long = "securityhub-v2-product", value_name = "COMPANY/PRODUCT")]
    securityhub_v2_products: Vec<String>,

    /// Revoke the caller of this CloudTrail API call (e.g. StopLogging); repeatable.
    #[arg(long = "cloudtrail-event", value_name = "NAME")]
    cloudtrail_events: Vec<String>,

    /// Print the JSON on one line.
    #[arg(long)]
    compact: bool,
}

fn configure(args: &TriageArgs) -> Result<TriageConfig, settings::ConfigError> {
    let mut config = TriageConfig::from_env()?;
    if let Some(v) = &args.revoke_severity {
        config.revoke_severity = settings::parse_severity("--revoke-severity", v)?;
    }
    if let Some(v) = &args.alert_severity {
        config.alert_severity = settings::parse_severity("--alert-severity", v)?;
    }
    for name in &args.protect {
        config
            .protection
            .patterns
            .push(
                NamePattern::parse(name).map_err(|e| settings::ConfigError::Invalid {
                    name: "--protect",
                    excerpt: e.excerpt.clone(),
                    why: e.why.to_owned(),
                })?,
            );
    }
    for arn in &args.protect_arns {
        config
            .protection
            .arns
            .push(
                ProtectedArn::parse(arn).map_err(|e| settings::ConfigError::Invalid {
                    name: "--protect-arn",
                    excerpt: e.excerpt.clone(),
                    why: e.why.to_owned(),
                })?,
            );
    }
    if let Some(p) = &args.partition {
        config.partition = Partition::parse(p).map_err(|e| settings::ConfigError::Invalid {
            name: "--partition",
            excerpt: e.excerpt.clone(),
            why: e.why.to_owned(),
        })?;
    }
    config.securityhub_imported |= args.securityhub_imported;
    config.securityhub_v2 |= args.securityhub_v2;
    if !args.securityhub_v2_products.is_empty() {
        config.securityhub_v2_products = args
            .securityhub_v2_products
            .iter()
            .map(|p| {
                settings::ProductV2::parse(p).map_err(|why| {
                    settings::ConfigError::invalid("--securityhub-v2-product", p, why)
                })
            })
            .collect::<Result<_, _>>()?;
    }
    for name in &args.cloudtrail_events {
        config
            .cloudtrail_event_names
            .push(settings::parse_event_name(name)?);
    }
    config.check()?;
    Ok(config)
}

fn read_input(input: &PathBuf) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    // Read one byte past the limit so an oversized input is reported, not truncated.
    let limit = (MAX_EVENT_BYTES + 1) as u64;
    let result = if input.as_os_str() == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(input).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    match result {
        Ok(_) => Ok(bytes),
        Err(e) => Err(format!("cannot read {}: {e}", input.display())),
    }
}

pub fn run(args: &TriageArgs) -> anyhow::Result<Exit> {
    let config = match configure(args) {
        Ok(c) => c,
        Err(e) => return Ok(Exit::Invalid(e.to_string())),
    };
    let bytes = match read_input(&args.input) {
        Ok(b) => b,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let triage = match triage_bytes(&bytes, &config) {
        Ok(t) => t,
        Err(e) => return Ok(Exit::Invalid(format!("{}: {e}", args.input.display()))),
    };
    let json = triage.to_json();
    let text = if args.compact {
        serde_json::to_string(&json)
    } else {
        serde_json::to_string_pretty(&json)
    }
    .context("rendering the triage JSON")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}").context("writing to standard output")?;

    let invalid: Vec<&str> = triage.invalid_inputs().collect();
    Ok(match invalid.as_slice() {
        [] => Exit::Ok,
        [only] => Exit::Invalid(format!("{}: {only}", args.input.display())),
        [first, rest @ ..] => Exit::Invalid(format!(
            "{}: {first} (and {} more invalid findings)",
            args.input.display(),
            rest.len()
        )),
    })
}
