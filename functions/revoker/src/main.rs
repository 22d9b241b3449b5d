//! The revoker Lambda: SQS batches from intake, or a manual request invoked directly.
//! Configuration and clients are built once per cold start; a bad setting fails the
//! start, not an invocation.

use cutoff::aws::sdk::{SdkAccountAccess, discover_home, load_sdk_config};
use cutoff::clock::SystemClock;
use cutoff::config::RevokerConfig;
use cutoff::handler::revoker::Invocation;
use cutoff::revoke::{RevokeConfig, Revoker};
use cutoff::telemetry;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let config = RevokerConfig::from_env()?;
    let sdk = load_sdk_config().await?;
    let (home, partition) = match config.home.clone() {
        Some(home) => home,
        None => discover_home(&sdk).await?,
    };
    let access = SdkAccountAccess::new(
        &sdk,
        home,
        partition,
        config.member_role_name.clone(),
        config.external_id.clone(),
    );
    let revoker = Revoker::new(
        access,
        SystemClock,
        RevokeConfig {
            protected: config.protected.clone(),
            ..RevokeConfig::default()
        },
    );
    let revoker = &revoker;
    let dry_run = config.dry_run;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let request_id = event.context.request_id.clone();
        match Invocation::classify(event.payload) {
            Invocation::Queue(batch) => {
                let result = revoker.handle_batch(&batch, dry_run).await;
                for message in &result.outcomes {
                    telemetry::log_outcome(&message.outcome);
                }
                Ok::<Value, Error>(serde_json::to_value(&result.response)?)
            }
            Invocation::Direct(payload) => {
                let answer = revoker.handle_direct(payload, &request_id, dry_run).await;
                tracing::info!(status = answer["status"].as_str(), "direct invoke answered");
                Ok(answer)
            }
        }
    }))
    .await
}
