//! The SDK configuration every client is built from ([`load_sdk_config`]): the
//! standard credential and region chains, the process's one HTTPS client
//! ([`https::shared_client`]), the SDK's own retries disabled and every call bounded in
//! time.
//!
//! The clients are built with the SDK's own retries disabled:
//! [`retry::with_retries`](crate::retry::with_retries) is the one place that retries and
//! counts attempts.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};

use crate::https;

/// A TCP/TLS connection that cannot be set up in this time is not coming: fail fast
/// and let our retry try again.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt; IAM answers in well under a second when healthy.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole operation. With SDK retries disabled this equals one attempt plus
/// slack; it bounds the call if retries are ever re-enabled in the config.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the SDK configuration could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdkConfigError {
    #[error(
        "no AWS region is configured: set AWS_REGION (Lambda sets it) or `region` in the AWS \
         profile; cutoff does not guess one"
    )]
    NoRegion,
}

/// Loads the shared SDK configuration: the standard credential and region chains,
/// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` (read by `aws-config` itself
/// unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is set), SDK retries disabled and
/// timeouts that turn a stalled connection into a transient error instead of a
/// Lambda timeout.
///
/// Fails when no region is configured: IAM is global but STS, SNS, SQS and
/// EventBridge are regional, and a silent default would send them to the wrong place.
pub async fn load_sdk_config() -> Result<SdkConfig, SdkConfigError> {
    load_sdk_config_with(&SdkOptions::default()).await
}

/// What an operator can override on the command line; unset fields keep the standard
/// chains (environment, profile, instance metadata).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SdkOptions {
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// As [`load_sdk_config`], with the overrides in `options`.
pub async fn load_sdk_config_with(options: &SdkOptions) -> Result<SdkConfig, SdkConfigError> {
    let mut loader = configure(aws_config::defaults(BehaviorVersion::latest()));
    if let Some(profile) = &options.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &options.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    require_region(loader.load().await)
}

/// The settings cutoff applies on top of the defaults, and the process's one HTTPS
/// client ([`https::shared_client`]: trust store read once, one TLS configuration).
fn configure(loader: ConfigLoader) -> ConfigLoader {
    loader
        .http_client(https::shared_client())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
}

fn require_region(config: SdkConfig) -> Result<SdkConfig, SdkConfigError> {
    if config.region().is_some() {
        Ok(config)
    } else {
        Err(SdkConfigError::NoRegion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_config_disables_sdk_retries_and_bounds_every_call() {
        let config = configure(
            aws_config::defaults(BehaviorVersion::latest())
                .empty_test_environment()
                .test_credentials()
                .region(aws_config::Region::new("eu-west-1"))
                .endpoint_url("http://127.0.0.1:5000"),
        )
        .load()
        .await;
        let config = require_region(config).unwrap();
        assert_eq!(config.retry_config().unwrap().max_attempts(), 1);
        let timeouts = config.timeout_config().unwrap();
        assert_eq!(timeouts.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(timeouts.operation_timeout(), Some(OPERATION_TIMEOUT));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
        // The clients inherit both.
        let iam = aws_sdk_iam::Config::from(&config);
        assert_eq!(iam.retry_config().unwrap().max_attempts(), 1);
        // And the process's one HTTPS client (https.rs), not one of the SDK's own.
        let client = format!("{:?}", config.http_client().unwrap());
        assert!(client.contains("WarmedOnce"), "{client}");
    }

    #[test]
    fn a_missing_region_is_an_error_not_a_default() {
        let err = require_region(SdkConfig::builder().build()).unwrap_err();
        assert_eq!(err, SdkConfigError::NoRegion);
        assert!(err.to_string().contains("AWS_REGION"));
    }
}
