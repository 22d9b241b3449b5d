//! SDK configuration for the local AWS stand-in.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_sdk_iam::config::Credentials;

/// moto's default account: every resource it creates lives there.
pub const ACCOUNT: &str = "123456789012";
/// The region of the test configuration.
pub const REGION: &str = "us-east-1";
/// Access key id and secret of the test credentials (moto accepts any).
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";

/// A config loader for `endpoint` (moto, or a [`crate::proxy::FaultProxy`] in front of
/// it): fixed test credentials, region us-east-1, the endpoint URL, and SDK retries
/// disabled, so every fault reaches the code under test. Add to it (timeouts, another
/// retry config) before `load()`.
///
/// Values set here in code take precedence over the environment and profile files, so an
/// `AWS_PROFILE` or `AWS_ENDPOINT_URL` of the developer does not leak into the tests.
pub fn sdk_config_loader(endpoint: &str) -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .credentials_provider(Credentials::new(
            ACCESS_KEY,
            SECRET_KEY,
            None,
            None,
            "cutoff-tests",
        ))
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
}

/// [`sdk_config_loader`], loaded.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    sdk_config_loader(endpoint).load().await
}

/// [`sdk_config`] with the credentials of a session in `account` (moto answers for
/// the account of the session's key): how a test acts in another account.
pub async fn sdk_config_in(endpoint: &str, account: &str) -> SdkConfig {
    let config = sdk_config(endpoint).await;
    let assumed = aws_sdk_sts::Client::new(&config)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/test-setup"))
        .role_session_name("test-setup")
        .send()
        .await
        .unwrap_or_else(|e| panic!("a session in {account}: {e:?}"));
    let c = assumed
        .credentials()
        .unwrap_or_else(|| panic!("credentials of the session in {account}"));
    config
        .to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    c.access_key_id(),
                    c.secret_access_key(),
                    Some(c.session_token().to_owned()),
                    None,
                    "test",
                ),
            ),
        )
        .build()
}

/// An IAM client for `endpoint`, configured as [`sdk_config`].
pub async fn iam_client(endpoint: &str) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&sdk_config(endpoint).await)
}

/// An STS client for `endpoint`, configured as [`sdk_config`].
pub async fn sts_client(endpoint: &str) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::new(&sdk_config(endpoint).await)
}

/// Creates a table shaped like the deployment's ledger (`infra/template.yaml`: string
/// keys `pk` and `sk`, on demand) at `endpoint`.
pub async fn ledger_table(endpoint: &str, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(endpoint).await);
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .expect("a key has a name and a type")
    };
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("an attribute has a name and a type")
    };
    ddb.create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating the ledger table {name}: {e:?}"));
}
