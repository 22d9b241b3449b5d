//! The notifier Lambda: reads an outcome event from the outcome bus and publishes a
//! message to the security topic and the owner team's topic, then marks the Security
//! Hub finding behind it (if any) as notified. Configuration and clients are built
//! once per cold start; a bad setting fails the start, not an invocation.
//!
//! A publish that fails after retries fails the invocation: Lambda's asynchronous
//! retries run the event again (a topic may then get the message twice), and the
//! event finally goes to the function's dead-letter destination.

use cutoff::handler::notifier::Notifier;
use cutoff::telemetry;
use cutoff_aws::messaging::{SdkFindings, SdkNotifications};
use cutoff_aws::sdk::load_sdk_config;
use cutoff_domain::json::Payload;
use cutoff_domain::settings::NotifierConfig;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let config = NotifierConfig::from_env()?;
    for problem in &config.problems {
        tracing::error!(%problem, "a team topic names no topic the notifier may use; that team is not notified");
    }
    let sdk = load_sdk_config().await?;
    let notifier = Notifier::new(
        SdkNotifications::new(aws_sdk_sns::Client::new(&sdk)),
        SdkFindings::new(aws_sdk_securityhub::Client::new(&sdk)),
        config,
    );
    let notifier = &notifier;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Payload>| async move {
        match notifier.handle(event.payload).await {
            Ok(report) => {
                tracing::info!(
                    status = report.status.as_str(),
                    account = report.account.as_deref(),
                    kind = report.kind.as_deref(),
                    name = report.name.as_deref(),
                    team = report.team.as_deref(),
                    owner_known = report.owner_known,
                    topics = ?report.topics(),
                    finding_update = ?report.finding_update,
                    api_calls = report.api_calls,
                    "notified"
                );
                Ok::<Value, Error>(serde_json::to_value(&report)?)
            }
            Err(err) => {
                tracing::error!(error = %err, "notification failed");
                Err(err.into())
            }
        }
    }))
    .await
}
