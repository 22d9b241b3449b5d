//! The intake Lambda: EventBridge events (GuardDuty findings, Security Hub custom
//! actions, opted-in CloudTrail calls) in; revocation requests onto the FIFO queue and
//! alerts onto the outcome bus.

use cutoff::config::IntakeConfig;
use cutoff::handler::intake::Intake;
use cutoff::telemetry;
use cutoff_aws::messaging::{SdkOutcomeBus, SdkQueue};
use cutoff_aws::retry::RetryPolicy;
use cutoff_aws::sdk::load_sdk_config;
use cutoff_domain::json::Payload;
use cutoff_domain::settings::TriageConfig;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let triage = TriageConfig::from_env()?;
    let config = IntakeConfig::from_env()?;
    let sdk = load_sdk_config().await?;
    let intake = Intake {
        queue: SdkQueue::new(aws_sdk_sqs::Client::new(&sdk), config.request_queue_url),
        bus: SdkOutcomeBus::new(aws_sdk_eventbridge::Client::new(&sdk), config.outcome_bus),
        config: triage,
        retry: RetryPolicy::default(),
    };
    let intake = &intake;
    // The payload is read strictly: a duplicate key anywhere is refused by intake.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Payload>| async move {
        // A failure to queue or publish fails the invocation so that Lambda retries
        // the event; bad findings never do (they are logged as ignored).
        let (_, report) = intake.handle(event.payload).await?;
        tracing::info!(
            source = report.source.as_str(),
            queued = report.queued,
            alerted = report.alerted,
            ignored = report.ignored,
            invalid = report.invalid,
            "event triaged"
        );
        Ok::<Value, Error>(serde_json::to_value(&report)?)
    }))
    .await
}
