//! The intake Lambda: EventBridge events (GuardDuty findings, Security Hub custom
//! actions, opted-in CloudTrail calls) in; revocation requests onto the FIFO queue and
//! alerts onto the outcome bus. See `cutoff::handler::intake`.

use cutoff::handler::intake::Intake;
use cutoff::handler::run;
use cutoff::telemetry;
use cutoff_aws::config::load_sdk_config;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init_lambda()?;
    let sdk = load_sdk_config().await?;
    run(Intake::from_env(&sdk)?).await
}
