//! `cutoff sweep`: the sweeper's workflow (`cutoff::sweep_run::sweep_one` per account), run in
//! this process from an operator's machine with the standard AWS credential chain.
//!
//! The same rules and the same code as the scheduled sweep: rolling cutoffs for
//! principals with a max session age, removal of revocations that can no longer stop
//! a live session. The rules come from the flags (through the parsers the sweeper's
//! configuration uses), not from the Lambda's variables, except the protected names
//! (`CUTOFF_PROTECTED`), which are honoured as `cutoff revoke` honours them.

use std::cell::Cell;
use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use cutoff::config::{MAX_SWEEP_CONCURRENCY, parse_margin};
use cutoff::sweep_run::{SweepConfig, bounded, sweep_one};
use cutoff_aws::config::load_sdk_config_with;
use cutoff_aws::dynamodb::ConfiguredLedger;
use cutoff_aws::organizations::{AccountDirectory, SdkOrganizations};
use cutoff_aws::sts::{SdkAccountAccess, discover_home_and_time};
use cutoff_domain::clock::Clock;
use cutoff_domain::outcome::{Outcome, Status};
use cutoff_domain::principal::{Account, NamePattern};
use cutoff_domain::principal::{ROLE_MAX_SESSION, USER_MAX_SESSION};
use cutoff_domain::settings;
use cutoff_domain::settings::{ConfigError, TriageConfig};
use cutoff_domain::summary::AccountReport;
use cutoff_domain::summary::{AccountRecord, SweepSummary};
use cutoff_domain::sweep_rules::humanize;
use cutoff_domain::sweep_rules::{
    DEFAULT_EXPIRY_MARGIN, MAX_SESSION_AGE_TAG, MaxSessionAge, SweepRules,
};
use futures_util::FutureExt;
use serde::Serialize;

use crate::Exit;
use crate::progress::Progress;
use crate::revoke::{AwsArgs, DISCOVER_HOME_CONTEXT, aws_clock, print_json};

/// Accounts swept at once unless --concurrency says otherwise.
const DEFAULT_CONCURRENCY: usize = 4;

/// Enforce max session ages and remove expired revocations, as the scheduled sweep
/// does, and show what changed (or, with --dry-run, what would change) and why.
///
/// A principal tagged `cutoff:max-session-age=4h` (or matching a --max-age pattern)
/// gets a rolling cutoff of now − 4h in `AWSRevokeOlderSessions`. A revocation whose
/// cutoff is older than the longest session (12 h for roles, 36 h for users) plus the
/// margin denies only expired sessions and is removed. Protected principals,
/// service-linked and Identity Center roles are left alone and noted.
///
/// Accounts: every --account given, else with --organization every active account of
/// the Organization (organizations:ListAccounts), else the caller's own account. Other
/// accounts are reached through the member role.
///
/// Exits 0 when every account was swept and no principal failed, 1 when an account or
/// a principal failed (the report is still printed), 2 for invalid arguments (nothing
/// is called).
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Sweep this account (12 digits); repeatable.
    #[arg(long = "account", value_name = "ACCOUNT")]
    accounts: Vec<String>,
    /// Sweep every active account of the Organization (organizations:ListAccounts).
    #[arg(long, conflicts_with = "accounts")]
    organization: bool,
    /// Max session age of principals whose name matches PATTERN (exact, or a prefix
    /// ending in *) and that have no cutoff:max-session-age tag, e.g. batch-*=4h;
    /// repeatable, the first match counts.
    #[arg(long = "max-age", value_name = "PATTERN=AGE")]
    max_age: Vec<String>,
    /// Added to the longest session before a revocation counts as expired: 0, or hours
    /// and minutes such as 30m or 2h, at most 24h [default: 1h]
    #[arg(long, value_name = "DURATION")]
    margin: Option<String>,
    /// Never change principals with this name (exact, or a prefix ending in *);
    /// repeatable. cutoff's own roles (cutoff-*), the member role and the names in
    /// CUTOFF_PROTECTED are always protected.
    #[arg(long = "protect", value_name = "PATTERN")]
    protect: Vec<String>,
    /// Accounts swept at once, 1 to 32 [default: 4]
    #[arg(long, value_name = "N")]
    concurrency: Option<String>,
    /// Compute and show everything, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print {"summary", "accounts"} as JSON instead of the human report.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    aws: AwsArgs,
}

/// Which accounts, before any AWS call.
enum Scope {
    Listed(Vec<Account>),
    Organization,
    Home,
}

/// Everything the arguments say, validated.
struct Plan {
    scope: Scope,
    rules: SweepRules,
    concurrency: usize,
}

fn invalid(name: &'static str, value: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        excerpt: cutoff_domain::principal::excerpt(value),
        why: why.into(),
    }
}

/// Validates every argument; the error is the one-line message of exit 2.
fn plan(args: &SweepArgs, member_role: &str) -> Result<Plan, ConfigError> {
    let mut accounts: Vec<Account> = Vec::new();
    for item in &args.accounts {
        let account = Account::parse(item.trim()).map_err(|e| invalid("--account", item, e.why))?;
        if !accounts.contains(&account) {
            accounts.push(account);
        }
    }
    let scope = match (accounts.is_empty(), args.organization) {
        (false, _) => Scope::Listed(accounts),
        (true, true) => Scope::Organization,
        (true, false) => Scope::Home,
    };

    let mut patterns = Vec::new();
    for item in &args.max_age {
        let (pattern, age) = item
            .split_once('=')
            .map(|(p, a)| (p.trim(), a.trim()))
            .filter(|(p, a)| !p.is_empty() && !a.is_empty())
            .ok_or_else(|| invalid("--max-age", item, "expected PATTERN=AGE such as batch-*=4h"))?;
        let pattern =
            NamePattern::parse(pattern).map_err(|e| invalid("--max-age", item, e.to_string()))?;
        let age =
            MaxSessionAge::parse(age).map_err(|e| invalid("--max-age", item, e.to_string()))?;
        patterns.push((pattern, age));
    }

    let margin = match &args.margin {
        Some(v) => parse_margin("--margin", v)?,
        None => DEFAULT_EXPIRY_MARGIN,
    };

    // The member role, CUTOFF_PROTECTED_ARNS and CUTOFF_PROTECTED, as for revoke.
    let lookup = |name: &str| match name {
        settings::env::MEMBER_ROLE_NAME => Some(member_role.to_owned()),
        settings::env::PROTECTED | settings::env::PROTECTED_ARNS => std::env::var(name).ok(),
        _ => None,
    };
    let mut protected = TriageConfig::from_lookup(lookup)?.protection;
    for item in &args.protect {
        let pattern = NamePattern::parse(item).map_err(|e| invalid("--protect", item, e.why))?;
        if !protected.patterns.contains(&pattern) {
            protected.patterns.push(pattern);
        }
    }

    let concurrency = match &args.concurrency {
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_SWEEP_CONCURRENCY).contains(n))
            .ok_or_else(|| {
                invalid(
                    "--concurrency",
                    v,
                    format!("expected a number from 1 to {MAX_SWEEP_CONCURRENCY}"),
                )
            })?,
        None => DEFAULT_CONCURRENCY,
    };

    Ok(Plan {
        scope,
        rules: SweepRules {
            patterns,
            margin,
            protected,
        },
        concurrency,
    })
}

/// What `--json` prints.
#[derive(Serialize)]
struct JsonReport<'a> {
    summary: &'a SweepSummary,
    accounts: &'a [AccountReport],
}

pub async fn sweep(args: &SweepArgs) -> anyhow::Result<Exit> {
    // Every argument is checked before the first AWS call.
    let aws = match args.aws.settings() {
        Ok(aws) => aws,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let plan = match plan(args, aws.member_role.as_str()) {
        Ok(plan) => plan,
        Err(e) => return Ok(Exit::Invalid(e.to_string())),
    };
    let sdk = match load_sdk_config_with(&aws.options).await {
        Ok(sdk) => sdk,
        Err(e) => return Ok(Exit::Invalid(e.to_string())),
    };
    let (home, partition, seen) = discover_home_and_time(&sdk)
        .await
        .context(DISCOVER_HOME_CONTEXT)?;
    // A cutoff moved from a clock that runs behind would spare sessions: AWS's time.
    let clock = aws_clock(seen);
    let (accounts, source) = match plan.scope {
        Scope::Listed(accounts) => {
            let source = format!(
                "{} given with --account",
                count(accounts.len(), "account", "accounts")
            );
            (accounts, source)
        }
        Scope::Organization => {
            let accounts = SdkOrganizations::new(aws_sdk_organizations::Client::new(&sdk))
                .active_accounts()
                .await
                .context("listing the accounts of the Organization (organizations:ListAccounts)")?;
            // An Organization has at least its management account: an empty list is
            // not a clean sweep of nothing.
            if accounts.is_empty() {
                anyhow::bail!(
                    "organizations:ListAccounts listed no active account; nothing was swept"
                );
            }
            let source = format!(
                "the {} of the Organization (organizations:ListAccounts)",
                count(accounts.len(), "active account", "active accounts")
            );
            (accounts, source)
        }
        Scope::Home => (
            vec![home.clone()],
            format!("the caller's own account {home} (no --account or --organization given)"),
        ),
    };
    let access = SdkAccountAccess::new(&sdk, home, partition, aws.member_role, aws.external_id);
    let config = SweepConfig {
        dry_run: args.dry_run,
        rules: plan.rules,
        ..SweepConfig::default()
    };

    let started = clock.now();
    let run_id = run_id(started);
    let ledger = ConfiguredLedger::from_config(&sdk, aws.ledger_table.as_deref());
    // Each account's sweep, counted as it ends on the progress line (a terminal only).
    let progress = Progress::on_terminal();
    let (done, failed) = (Cell::new(0_usize), Cell::new(0_usize));
    progress.update(&format!(
        "sweeping {} ...",
        count(accounts.len(), "account", "accounts")
    ));
    let sweeps = accounts.iter().map(|account| {
        sweep_one(&access, &ledger, account, &config, &clock, &run_id).map(|report| {
            done.set(done.get() + 1);
            if report.error.is_some() || report.principals_failed > 0 {
                failed.set(failed.get() + 1);
            }
            progress.update(&format!(
                "swept {}/{} accounts, {} with failures (last: {})",
                done.get(),
                accounts.len(),
                failed.get(),
                report.account
            ));
            report
        })
    });
    let reports = bounded(sweeps, plan.concurrency).await;
    progress.finish();
    let records: Vec<AccountRecord> = reports.iter().map(AccountRecord::from_report).collect();
    let summary = SweepSummary::from_records(
        &run_id,
        started,
        clock.now(),
        accounts.len() as u64,
        config.dry_run,
        &records,
    );

    if args.json {
        print_json(&JsonReport {
            summary: &summary,
            accounts: &reports,
        })?;
    } else {
        let text = human(&summary, &reports, &source, &config.rules);
        write!(std::io::stdout().lock(), "{text}").context("writing to standard output")?;
    }
    Ok(if summary.has_failures() {
        Exit::Failed
    } else {
        Exit::Ok
    })
}

/// `cli-<UTC time>`: names the run and the assumed-role sessions in the member
/// accounts' CloudTrail.
fn run_id(at: DateTime<Utc>) -> String {
    format!("cli-{}", at.format("%Y%m%dT%H%M%SZ"))
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn count64(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn describe_rules(rules: &SweepRules) -> String {
    let ages = if rules.patterns.is_empty() {
        format!("max session age from the tag {MAX_SESSION_AGE_TAG}")
    } else {
        let patterns: Vec<String> = rules
            .patterns
            .iter()
            .map(|(p, a)| format!("{}={a}", p.as_str()))
            .collect();
        format!(
            "max session age from the tag {MAX_SESSION_AGE_TAG}, else {}",
            patterns.join(", ")
        )
    };
    let protected = rules.protected.describe();
    format!(
        "{ages}; a revocation older than {} (roles) or {} (users) plus a {} margin is removed; protected: {}",
        humanize(ROLE_MAX_SESSION),
        humanize(USER_MAX_SESSION),
        humanize(rules.margin),
        protected.join(", ")
    )
}

/// The human report: what the run covers, each account, each principal that changed
/// (or would), what was noticed and left alone, and the totals.
fn human(
    summary: &SweepSummary,
    reports: &[AccountReport],
    source: &str,
    rules: &SweepRules,
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    if summary.dry_run {
        line("dry run: nothing is written; below is what would change and why".to_owned());
    }
    line(format!("sweeping {source}"));
    line(format!("rules: {}", describe_rules(rules)));
    for report in reports {
        line(String::new());
        line(account_header(report));
        for outcome in &report.outcomes {
            line(outcome_line(outcome));
            if outcome.status != Status::Failed {
                let label = if outcome.dry_run { "would" } else { "did" };
                for action in &outcome.actions {
                    line(format!("      {label:<6}{action}"));
                }
            }
        }
        if report.error.is_none() && report.outcomes.is_empty() {
            let nothing = if report.dry_run {
                "nothing would change"
            } else {
                "nothing to change"
            };
            line(format!("  {nothing}"));
        }
        if !report.notes.is_empty() {
            line("  noted (left alone):".to_owned());
            for note in &report.notes {
                line(format!("    {note}"));
            }
        }
    }
    line(String::new());
    line(totals(summary));
    out
}

fn account_header(report: &AccountReport) -> String {
    match &report.error {
        Some(error) => format!(
            "account {}: not swept, {} ({}): {}",
            report.account,
            if report.principals_scanned > 0 {
                "listing failed part way, nothing written"
            } else {
                "failed"
            },
            error.kind,
            error.message
        ),
        None => format!(
            "account {}: {} scanned, {}",
            report.account,
            count64(report.principals_scanned, "principal", "principals"),
            count64(report.api_calls, "API call", "API calls")
        ),
    }
}

fn outcome_line(outcome: &Outcome) -> String {
    let who = outcome.target.as_ref().map_or_else(
        || "(unknown principal)".to_owned(),
        |t| format!("{} {}", t.kind, t.name),
    );
    let status = outcome.status.as_str();
    match &outcome.error {
        Some(error) => format!("  {status:<9}{who} ({}): {}", error.kind, error.message),
        None => format!("  {status:<9}{who}: {}", outcome.detail),
    }
}

fn totals(s: &SweepSummary) -> String {
    let mut out = String::from(if s.dry_run {
        "total (dry run, nothing written): "
    } else {
        "total: "
    });
    let swept = s.accounts_reported.saturating_sub(s.accounts_failed);
    let _ = write!(out, "{} swept", count64(swept, "account", "accounts"));
    if s.accounts_failed > 0 {
        let _ = write!(
            out,
            ", {} failed",
            count64(s.accounts_failed, "account", "accounts")
        );
    }
    let (moved, removed, deleted) = if s.dry_run {
        ("would move", "would be removed", "would be deleted")
    } else {
        ("moved", "removed", "deleted")
    };
    let _ = write!(
        out,
        "; {} scanned; {} {moved}; {} {removed}; {} {deleted}; {} failed; {}; {}",
        count64(s.principals_scanned, "principal", "principals"),
        count64(s.cutoffs_moved, "rolling cutoff", "rolling cutoffs"),
        count64(
            s.statements_removed,
            "expired statement",
            "expired statements"
        ),
        count64(s.policies_deleted, "emptied policy", "emptied policies"),
        count64(s.principals_failed, "principal", "principals"),
        count64(s.api_calls, "API call", "API calls"),
        humanize_ms(s.duration_ms),
    );
    out
}

fn humanize_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: SweepArgs,
    }

    fn parse(args: &[&str]) -> SweepArgs {
        let mut argv = vec!["sweep"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli.args,
            Err(e) => panic!("{e}"),
        }
    }

    fn planned(args: &[&str]) -> Result<Plan, String> {
        plan(&parse(args), "cutoff-member").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_sweep_the_home_account_with_the_default_rules() {
        let Ok(p) = planned(&[]) else {
            panic!("defaults are valid")
        };
        assert!(matches!(p.scope, Scope::Home));
        assert_eq!(p.concurrency, 4);
        assert_eq!(p.rules.margin, chrono::Duration::hours(1));
        assert!(p.rules.patterns.is_empty());
        // The member role, by exact name; no name prefix protects anything.
        assert_eq!(
            p.rules.protected.member_role.as_ref().map(|m| m.as_str()),
            Some("cutoff-member")
        );
        assert!(p.rules.protected.patterns.is_empty());
    }

    #[test]
    fn flags_become_the_rules() {
        let Ok(p) = planned(&[
            "--account",
            "111122223333",
            "--account",
            "444455556666",
            "--account",
            "111122223333",
            "--max-age",
            "batch-*=4h",
            "--max-age",
            "etl=1h30m",
            "--margin",
            "30m",
            "--protect",
            "break-glass",
            "--concurrency",
            "8",
        ]) else {
            panic!("valid")
        };
        let Scope::Listed(accounts) = p.scope else {
            panic!("listed")
        };
        assert_eq!(accounts.len(), 2, "duplicates dropped");
        assert_eq!(p.rules.patterns.len(), 2);
        assert_eq!(p.rules.patterns[1].1.to_string(), "1h30m");
        assert_eq!(p.rules.margin, chrono::Duration::minutes(30));
        assert!(
            p.rules
                .protected
                .patterns
                .iter()
                .any(|p| p.as_str() == "break-glass")
        );
        assert_eq!(p.concurrency, 8);
        assert!(matches!(
            planned(&["--organization"]).map(|p| p.scope),
            Ok(Scope::Organization)
        ));
    }

    #[test]
    fn invalid_values_name_the_flag() {
        for (flag, value) in [
            ("--account", "12345"),
            ("--account", "1234567890123"),
            ("--max-age", "x=5m"),
            ("--max-age", "x"),
            ("--max-age", "=4h"),
            ("--max-age", "a/b=4h"),
            ("--max-age", "x=37h"),
            ("--margin", "25h"),
            ("--margin", "-1h"),
            ("--protect", "a*b"),
            ("--concurrency", "0"),
            ("--concurrency", "33"),
            ("--concurrency", "many"),
        ] {
            let err = match planned(&[&format!("{flag}={value}")]) {
                Ok(_) => panic!("{flag} {value} accepted"),
                Err(e) => e,
            };
            assert!(err.contains(flag), "{flag} {value}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }

    #[test]
    fn the_run_id_is_the_time() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T12:00:00.250Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        assert_eq!(run_id(at), "cli-20261123T120000Z");
    }
}
