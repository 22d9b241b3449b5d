//! The revoker Lambda: SQS batches from intake, an operator's request through its
//! function URL, or a plain direct invoke. See `cutoff::handler::revoker`.

use cutoff::handler::revoker::DeployedRevoker;
use cutoff::handler::run;
use cutoff::telemetry;
use cutoff_aws::config::load_sdk_config;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init_lambda()?;
    let sdk = load_sdk_config().await?;
    run(DeployedRevoker::from_env(&sdk).await?).await
}
