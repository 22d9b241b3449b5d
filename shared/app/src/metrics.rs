//! Writing the functions' metrics ([`cutoff_domain::metrics`]) where CloudWatch reads
//! them: each record one JSON object on a line of its own on standard output, which
//! Lambda sends to the function's log group and CloudWatch Logs turns into metrics (the
//! embedded metric format). Lambda leaves a line that is already JSON as it is, with the
//! JSON log format too ("Lambda doesn't double-encode any logs that are already JSON
//! encoded", Lambda's guide, *Configuring JSON and plain text log formats*).
//!
//! A metrics line is also a log line like the others: it carries `level` (`INFO`: what
//! Lambda's log-level filter would assume anyway, so that the metrics pass wherever the
//! outcomes do), `message` (`metrics`) and the invocation's request id where the
//! tracing lines have it (`span.requestId`), so that one query finds everything an
//! invocation wrote.

use std::io::Write;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use cutoff_aws::retry::RetryTally;
use cutoff_domain::metrics::{Function, Namespace, RETRIES, Record, THROTTLES};

static NAMESPACE: OnceLock<Namespace> = OnceLock::new();

/// Sets the namespace every line names, once, at start-up (`CUTOFF_METRICS_NAMESPACE`,
/// read by [`crate::telemetry::init_lambda`]); a second call changes nothing.
pub fn configure(namespace: Namespace) {
    let _ = NAMESPACE.set(namespace);
}

/// The namespace set at start-up, or `cutoff` (tests, the CLI).
pub fn namespace() -> &'static Namespace {
    NAMESPACE.get_or_init(Namespace::default)
}

/// The log line of `record`: its EMF document at `at`, with the fields every log line
/// of cutoff's carries.
pub fn line(record: &Record, namespace: &Namespace, at: DateTime<Utc>, request_id: &str) -> String {
    let mut doc = record.to_emf(namespace, at);
    if let Value::Object(fields) = &mut doc {
        fields.insert("level".to_owned(), Value::from("INFO"));
        fields.insert("message".to_owned(), Value::from("metrics"));
        fields.insert("span".to_owned(), json!({ "requestId": request_id }));
    }
    doc.to_string()
}

/// Writes `records` (the empty ones left out) to standard output, a line each, each in
/// one write: a line interleaved with another thread's output would be no JSON, and
/// its metrics lost.
pub fn emit(records: &[Record], at: DateTime<Utc>, request_id: &str) {
    let namespace = namespace();
    let mut out = std::io::stdout().lock();
    for record in records.iter().filter(|r| !r.is_empty()) {
        let mut text = line(record, namespace, at, request_id);
        text.push('\n');
        // Standard output gone (the environment is ending): nothing else to tell.
        let _ = out.write_all(text.as_bytes());
    }
    let _ = out.flush();
}

/// The record every invocation ends with: the AWS calls it retried and the throttling
/// answers it got.
pub fn invocation(function: Function, retries: RetryTally) -> Record {
    Record::of(function)
        .value(&RETRIES, retries.retries)
        .value(&THROTTLES, retries.throttles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cutoff_domain::metrics::OUTCOMES;
    use cutoff_domain::outcome::Status;
    use cutoff_domain::triage::Source;

    #[test]
    fn a_metrics_line_is_an_emf_object_that_reads_like_every_other_log_line() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .to_utc();
        let record = Record::of(Function::Revoker)
            .status(Status::Failed)
            .source(Source::GuardDuty)
            .value(&OUTCOMES, 1);
        let text = line(&record, &Namespace::default(), at, "req-1");
        assert!(!text.contains('\n'), "one line: {text}");
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["level"], "INFO");
        assert_eq!(doc["message"], "metrics");
        assert_eq!(doc["span"]["requestId"], "req-1");
        assert_eq!(doc["Outcomes"], 1);
        assert_eq!(doc["_aws"]["Timestamp"], at.timestamp_millis());
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "cutoff");
    }

    #[test]
    fn an_invocation_reports_its_retries_and_throttling_answers() {
        let record = invocation(
            Function::Sweeper,
            RetryTally {
                retries: 3,
                throttles: 2,
            },
        );
        assert_eq!(record.get(&RETRIES), Some(3));
        assert_eq!(record.get(&THROTTLES), Some(2));
        // An invocation without any is still a data point: 0, not missing.
        let quiet = invocation(Function::Intake, RetryTally::default());
        assert_eq!(quiet.get(&RETRIES), Some(0));
    }

    #[test]
    fn the_namespace_is_read_from_the_environment_and_checked() {
        use crate::config::{metrics_env, metrics_namespace_from_lookup};
        let with = |value: Option<&str>| {
            metrics_namespace_from_lookup(&|k: &str| {
                (k == metrics_env::NAMESPACE)
                    .then(|| value.map(str::to_owned))
                    .flatten()
            })
        };
        assert_eq!(with(None).unwrap().as_str(), "cutoff");
        assert_eq!(with(Some("")).unwrap().as_str(), "cutoff");
        assert_eq!(
            with(Some("cutoff-staging")).unwrap().as_str(),
            "cutoff-staging"
        );
        let err = with(Some("AWS/Lambda")).unwrap_err().to_string();
        assert!(err.contains(metrics_env::NAMESPACE), "{err}");
    }
}
