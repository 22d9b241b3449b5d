//! The notifier Lambda: an outcome event from the outcome bus in; a message to the
//! security topic and the owner team's topic out, and the Security Hub finding behind
//! it (if any) marked notified. See `cutoff::handler::notifier`.

use cutoff::handler::notifier::Notifier;
use cutoff::handler::run;
use cutoff::telemetry;
use cutoff_aws::config::load_sdk_config;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init_lambda()?;
    let sdk = load_sdk_config().await?;
    run(Notifier::from_env(&sdk)?).await
}
