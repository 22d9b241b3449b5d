//! Logging: one JSON object per line, with the Lambda request id on every line (the
//! runtime's invocation span carries it) so a revocation can be followed end to end.
//!
//! Nothing logged here carries credentials: outcomes hold names, ids, cutoffs and
//! error messages built by cutoff itself.

use tracing_subscriber::EnvFilter;

use cutoff_domain::outcome::Outcome;

/// JSON logs for a Lambda function. `RUST_LOG` overrides the `info` default; never
/// enable `trace` in production, the runtime logs raw events there.
pub fn init_lambda() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // `try_init` fails only if a subscriber is already set (tests): keep that one.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Logs an outcome as one structured line.
pub fn log_outcome(outcome: &Outcome) {
    let target = outcome.target.as_ref();
    tracing::info!(
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
