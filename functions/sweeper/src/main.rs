//! The sweeper Lambda: a schedule (or an operator) plans a run, one task per account
//! on the sweep queue; SQS batches of tasks are worked by this same function, and the
//! last account's worker publishes the run's summary. See `cutoff::handler::sweeper`.

use cutoff::handler::run;
use cutoff::handler::sweeper::DeployedSweeper;
use cutoff::telemetry;
use cutoff_aws::config::load_sdk_config;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init_lambda()?;
    let sdk = load_sdk_config().await?;
    run(DeployedSweeper::from_env(&sdk).await?).await
}
