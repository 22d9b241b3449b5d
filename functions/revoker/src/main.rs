//! The revoker Lambda: SQS batches from intake, or a manual request invoked directly.
//! Configuration and clients are built once per cold start; a bad setting fails the
//! start, not an invocation.

use cutoff::config::{RevokerConfig, revoker_env};
use cutoff::handler::revoker::InvocationSettings;
use cutoff::revoke::{RevokeConfig, Revoker, SelfCheckIdentity};
use cutoff::telemetry;
use cutoff_aws::ledger::{ConfiguredLedger, Ledger};
use cutoff_aws::messaging::SdkOutcomeBus;
use cutoff_aws::retry::RetryPolicy;
use cutoff_aws::sdk::{SdkAccountAccess, discover_home, load_sdk_config};
use cutoff_domain::clock::SystemClock;
use cutoff_domain::json::Payload;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let config = RevokerConfig::from_env()?;
    let bus_name = config.outcome_bus.clone().ok_or_else(|| {
        format!(
            "{} is not set: the revoker publishes every outcome there",
            revoker_env::OUTCOME_BUS
        )
    })?;
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
    let ledger = ConfiguredLedger::from_config(&sdk, config.ledger_table.as_deref());
    if !ledger.enabled() {
        tracing::warn!(
            "{} is not set: no audit trail, no idempotency, no principal lock",
            revoker_env::LEDGER_TABLE
        );
    }
    let revoker = Revoker::new(
        access,
        SystemClock,
        RevokeConfig {
            protection: config.protection.clone(),
            accounts: Some(config.accounts.clone()),
            max_revocations_per_account_hour: Some(config.max_revocations_per_account_hour),
            max_revocations_per_action_hour: Some(config.max_revocations_per_action_hour),
            partition,
            honour_protected_tag: config.honour_protected_tag,
            self_check: Some(SelfCheckIdentity {
                member_role_name: config.member_role_name.clone(),
                home_role_arn: config.role_arn.clone(),
            }),
            ..RevokeConfig::default()
        },
    )
    .with_ledger(ledger);
    let bus = SdkOutcomeBus::new(aws_sdk_eventbridge::Client::new(&sdk), bus_name);
    let retry = RetryPolicy::default();
    let settings = InvocationSettings {
        dry_run: config.dry_run,
        final_receive: config.final_receive,
    };
    let (revoker, bus, retry) = (&revoker, &bus, &retry);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Payload>| async move {
        let request_id = event.context.request_id.clone();
        Ok::<Value, Error>(
            revoker
                .handle_invocation(bus, retry, event.payload, &request_id, settings)
                .await,
        )
    }))
    .await
}
