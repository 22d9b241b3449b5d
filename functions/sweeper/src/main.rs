//! The sweeper Lambda: a schedule (or an operator) plans a run, one task per account
//! on the sweep queue; SQS batches of tasks are worked by this same function, and the
//! last account's worker publishes the run's summary. Configuration and clients are
//! built once per cold start; a bad setting fails the start, not an invocation.

use cutoff::config::{SweeperConfig, revoker_env, sweeper_env};
use cutoff::handler::sweeper::Sweeper;
use cutoff::sweeper::SweepConfig;
use cutoff::telemetry;
use cutoff_aws::ledger::SdkLedger;
use cutoff_aws::messaging::SdkOutcomeBus;
use cutoff_aws::retry::RetryPolicy;
use cutoff_aws::sdk::{SdkAccountAccess, discover_home, load_sdk_config};
use cutoff_aws::sweep_io::{SdkOrganizations, SdkSweepLedger, SdkSweepQueue};
use cutoff_domain::clock::SystemClock;
use cutoff_domain::json::Payload;
use lambda_runtime::{Error, LambdaEvent, service_fn};

fn required(value: &Option<String>, name: &str, why: &str) -> Result<String, Error> {
    value
        .clone()
        .ok_or_else(|| format!("{name} is not set: {why}").into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let config = SweeperConfig::from_env()?;
    let bus_name = required(
        &config.revoker.outcome_bus,
        revoker_env::OUTCOME_BUS,
        "the sweeper publishes outcomes and run summaries there",
    )?;
    let queue_url = required(
        &config.queue_url,
        sweeper_env::QUEUE_URL,
        "the sweeper fans a run out through it, one task per account",
    )?;
    let table = required(
        &config.revoker.ledger_table,
        revoker_env::LEDGER_TABLE,
        "the sweeper counts each run's accounts in the ledger",
    )?;
    let sdk = load_sdk_config().await?;
    let (home, partition) = match config.revoker.home.clone() {
        Some(home) => home,
        None => discover_home(&sdk).await?,
    };
    let sweeper = Sweeper {
        locks: SdkLedger::new(aws_sdk_dynamodb::Client::new(&sdk), table.clone()),
        access: SdkAccountAccess::new(
            &sdk,
            home.clone(),
            partition,
            config.revoker.member_role_name.clone(),
            config.revoker.external_id.clone(),
        ),
        directory: SdkOrganizations::new(aws_sdk_organizations::Client::new(&sdk)),
        queue: SdkSweepQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url),
        ledger: SdkSweepLedger::new(aws_sdk_dynamodb::Client::new(&sdk), table),
        bus: SdkOutcomeBus::new(aws_sdk_eventbridge::Client::new(&sdk), bus_name),
        clock: SystemClock,
        config: SweepConfig {
            rules: config.rules(),
            dry_run: config.revoker.dry_run,
            ..SweepConfig::default()
        },
        accounts: config.accounts.clone(),
        scope: Some(config.revoker.accounts.clone()),
        home,
        concurrency: config.concurrency,
        retry: RetryPolicy::default(),
    };
    let sweeper = &sweeper;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Payload>| async move {
        let request_id = event.context.request_id.clone();
        sweeper
            .handle(event.payload, &request_id)
            .await
            .map_err(Error::from)
    }))
    .await
}
