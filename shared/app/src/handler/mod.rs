//! What each Lambda does with its input, independent of the Lambda runtime: the
//! functions' `main.rs` only parse configuration, build clients and call these.

pub mod intake;
pub mod notifier;
pub mod revoker;
pub mod sweeper;

/// Whether a Lambda payload is an SQS batch: records that all say `eventSource`
/// `aws:sqs` (the revoker and the sweeper take SQS batches and direct invokes alike).
pub fn is_sqs_batch(payload: &serde_json::Value) -> bool {
    payload
        .get("Records")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|records| {
            !records.is_empty()
                && records.iter().all(|r| {
                    r.get("eventSource").and_then(serde_json::Value::as_str) == Some("aws:sqs")
                })
        })
}
