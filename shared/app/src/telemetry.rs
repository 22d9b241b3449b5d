//! Logging: one JSON object per line, with the Lambda request id on every line (the
//! runtime's invocation span carries it) so a revocation can be followed end to end.
//!
//! Nothing logged here carries credentials: outcomes hold names, ids, cutoffs and
//! error messages built by cutoff itself.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use cutoff_domain::outcome::Outcome;
use cutoff_domain::settings::ConfigError;

/// The level Lambda's log-level controls pass to a custom runtime: the function's
/// `ApplicationLogLevel` (`TRACE` to `FATAL`), set when its log format is JSON.
pub const LAMBDA_LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";

/// JSON logs for a Lambda function, at the level Lambda's log-level controls set
/// ([`log_filter`]), and the metrics' namespace (`CUTOFF_METRICS_NAMESPACE`, which
/// fails the start when it is not one CloudWatch accepts).
pub fn init_lambda() -> Result<(), ConfigError> {
    let directives = log_filter(
        std::env::var(LAMBDA_LOG_LEVEL).ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    // Targets, not EnvFilter: the same `target=level` directives without the regular
    // expressions EnvFilter links in for span-field filters (some 300 KB of every
    // bundle, which must stay under 8 MB).
    let filter = directives
        .parse::<Targets>()
        .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO));
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .without_time();
    // `try_init` fails only if a subscriber is already set (tests): keep that one.
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init();
    let namespace =
        crate::config::metrics_namespace_from_lookup(&|name: &str| std::env::var(name).ok())?;
    crate::metrics::configure(namespace);
    Ok(())
}

/// What the functions log, from Lambda's `ApplicationLogLevel` when it sets one, so that
/// one setting decides what the code writes and what Lambda keeps: `TRACE` is taken as
/// `debug` (the Lambda runtime crate logs whole events at trace, and events carry
/// findings), `FATAL` as `error`, a level Lambda does not define as `info`. Without it
/// (outside Lambda, or a function with the plain-text log format), `RUST_LOG`'s
/// directives, else `info`.
///
/// Outcomes and metrics are logged at INFO: above it (WARN, ERROR, FATAL) neither the
/// code writes the outcome lines nor Lambda keeps the metrics lines, which is why the
/// template allows only `DEBUG` and `INFO`.
pub fn log_filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> String {
    let lambda = lambda_level.map(str::trim).filter(|l| !l.is_empty());
    if let Some(level) = lambda {
        return match level.to_ascii_uppercase().as_str() {
            "TRACE" | "DEBUG" => "debug",
            "WARN" => "warn",
            "ERROR" | "FATAL" => "error",
            _ => "info",
        }
        .to_owned();
    }
    match rust_log.map(str::trim).filter(|d| !d.is_empty()) {
        Some(directives) => directives.to_owned(),
        None => "info".to_owned(),
    }
}

/// Logs an outcome as one structured line. Its `request_id` is the id the request is
/// recorded under (a queued request's SQS message id, which the ledger's audit trail
/// and the messages name; else the invocation's Lambda request id, which `span.requestId`
/// carries too): one Logs Insights filter finds the line from a message.
pub fn log_outcome(outcome: &Outcome) {
    let target = outcome.target.as_ref();
    tracing::info!(
        request_id = outcome.request_id.as_deref(),
        status = outcome.status.as_str(),
        account = target.map(|t| t.account.as_str()),
        kind = target.map(|t| t.kind.as_str()),
        name = target.map(|t| t.name.as_str()),
        cutoff = outcome.cutoff.map(|c| c.to_string()),
        previous_cutoff = outcome.previous_cutoff.map(|c| c.to_string()),
        policy = outcome.policy.as_deref(),
        scope = outcome.scope.as_str(),
        source = outcome.trigger.source.as_str(),
        finding_id = outcome.trigger.finding_id.as_deref(),
        requested_by = outcome.trigger.requested_by.as_deref(),
        api_calls = outcome.api_calls,
        error_kind = outcome.error.as_ref().map(|e| e.kind.as_str()),
        detail = outcome.detail.as_str(),
        "outcome"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambdas_log_level_decides_and_rust_log_is_the_fallback() {
        assert_eq!(log_filter(Some("INFO"), Some("cutoff=trace")), "info");
        assert_eq!(log_filter(Some("DEBUG"), None), "debug");
        assert_eq!(log_filter(Some("debug"), None), "debug");
        // Never trace: the runtime would log whole events.
        assert_eq!(log_filter(Some("TRACE"), None), "debug");
        assert_eq!(log_filter(Some("WARN"), None), "warn");
        assert_eq!(log_filter(Some("ERROR"), None), "error");
        assert_eq!(log_filter(Some("FATAL"), None), "error");
        assert_eq!(log_filter(Some("LOUD"), None), "info");
        assert_eq!(log_filter(Some(""), Some("warn")), "warn");
        assert_eq!(
            log_filter(None, Some("cutoff=debug,info")),
            "cutoff=debug,info"
        );
        assert_eq!(log_filter(None, Some(" ")), "info");
        assert_eq!(log_filter(None, None), "info");
        // Every answer is a filter tracing accepts.
        for level in ["INFO", "DEBUG", "TRACE", "WARN", "ERROR", "FATAL", "x"] {
            assert!(log_filter(Some(level), None).parse::<Targets>().is_ok());
        }
    }
}
