//! The stage: a moto server with the resources the functions need (request queue,
//! outcome bus, ledger table, sweep queue, topics), roles to revoke in a member
//! account, the functions' environments, and the payloads they are invoked with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_iam::config::Credentials;
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{DateTime, SecondsFormat, Utc};
use cutoff_tests::aws::{ACCOUNT, REGION, sdk_config, sdk_config_loader};
use cutoff_tests::seed;
use serde_json::{Value, json};

/// The account cutoff (and the baseline) run in: moto's default account.
pub const HOME: &str = ACCOUNT;
/// The account whose roles are revoked, reached through the member role.
pub const MEMBER: &str = "111122223333";
pub const MEMBER_ROLE: &str = "cutoff-member";
pub const EXTERNAL_ID: &str = "bench-external-id";
/// The Organization the functions are deployed for (a deployment always names one).
pub const ORGANIZATION_ID: &str = "o-a1b2c3d4e5";
pub const OWNER_TEAM: &str = "payments";

/// The binaries under test.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub hello: PathBuf,
    pub intake: PathBuf,
    pub revoker: PathBuf,
    pub notifier: PathBuf,
    pub sweeper: PathBuf,
    /// `bench/baseline/bootstrap`: awslambdaric running handler.py.
    pub baseline: PathBuf,
}

impl Binaries {
    /// The release binaries of the workspace (`cargo build --release`, the workspace's
    /// release profile, for this host) and the baseline's bootstrap.
    pub fn locate(root: &Path) -> Result<Binaries> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("release");
        let found = |name: &str| -> Result<PathBuf> {
            let path = target.join(name);
            if !path.is_file() {
                bail!(
                    "{} is missing: `make bench` builds it (cargo build --release -p intake -p revoker -p notifier -p sweeper -p cutoff-bench-hello)",
                    path.display()
                );
            }
            Ok(path)
        };
        let baseline = root.join("bench/baseline/bootstrap");
        let python = root.join("bench/baseline/.venv/bin/python");
        if !python.is_file() {
            bail!(
                "{} is missing: `make bench` creates the baseline's virtualenv from bench/baseline/requirements.txt",
                python.display()
            );
        }
        Ok(Binaries {
            hello: found("hello")?,
            intake: found("intake")?,
            revoker: found("revoker")?,
            notifier: found("notifier")?,
            sweeper: found("sweeper")?,
            baseline,
        })
    }
}

/// What a function is started with.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The name in results (`revoker`, `baseline`, …).
    pub label: &'static str,
    pub binary: PathBuf,
    pub env: Vec<(&'static str, String)>,
}

impl FunctionSpec {
    pub fn env_refs(&self) -> Vec<(&str, String)> {
        self.env.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// The same function talking to `endpoint` instead (a counting proxy).
    pub fn via(&self, endpoint: &str) -> FunctionSpec {
        let mut spec = self.clone();
        for (key, value) in &mut spec.env {
            if *key == "AWS_ENDPOINT_URL" {
                *value = endpoint.to_owned();
            }
        }
        spec
    }

    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> FunctionSpec {
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
        self
    }

    pub fn without(mut self, key: &str) -> FunctionSpec {
        self.env.retain(|(k, _)| *k != key);
        self
    }
}

/// The resources of one moto server.
pub struct Stage {
    pub endpoint: String,
    pub config: SdkConfig,
    pub bus: String,
    pub requests_url: String,
    pub table: String,
    pub sweep_queue_url: String,
    pub security_topic: String,
    pub payments_topic: String,
    /// IAM in the member account (for creating the roles to revoke).
    pub member_iam: aws_sdk_iam::Client,
    /// An empty directory used as `HOME` of every function, so that no profile of
    /// the machine's user reaches either cutoff or the baseline.
    pub home_dir: PathBuf,
}

impl Stage {
    /// Creates the resources in the moto server at `endpoint`; `tag` keeps names apart.
    pub async fn create(endpoint: &str, tag: &str, home_dir: &Path) -> Result<Stage> {
        let config = sdk_config(endpoint).await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let events = aws_sdk_eventbridge::Client::new(&config);
        let sns = aws_sdk_sns::Client::new(&config);
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);

        let requests_url = create_fifo(&sqs, &format!("{tag}-requests.fifo")).await?;
        let sweep_queue_url = sqs
            .create_queue()
            .queue_name(format!("{tag}-sweep-tasks"))
            .attributes(QueueAttributeName::VisibilityTimeout, "900")
            .send()
            .await
            .context("create the sweep queue")?
            .queue_url
            .context("sweep queue url")?;
        let bus = format!("{tag}-outcomes");
        events
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .context("create the outcome bus")?;
        let table = format!("{tag}-ledger");
        create_ledger_table(&dynamodb, &table).await?;
        let mut topics = Vec::new();
        for team in ["security", OWNER_TEAM] {
            topics.push(
                sns.create_topic()
                    .name(format!("{tag}-{team}-alerts"))
                    .send()
                    .await
                    .context("create topic")?
                    .topic_arn
                    .context("topic arn")?,
            );
        }
        let member_iam = aws_sdk_iam::Client::new(
            &sdk_config_loader(endpoint)
                .credentials_provider(credentials_in(&config, MEMBER).await?)
                .load()
                .await,
        );
        Ok(Stage {
            endpoint: endpoint.to_owned(),
            config,
            bus,
            requests_url,
            table,
            sweep_queue_url,
            security_topic: topics[0].clone(),
            payments_topic: topics[1].clone(),
            member_iam,
            home_dir: home_dir.to_owned(),
        })
    }

    /// Creates `names` as roles of the member account, owned by the payments team.
    pub async fn create_member_roles(&self, names: &[String]) -> Result<()> {
        for name in names {
            create_role(&self.member_iam, name, &[("cutoff:owner", OWNER_TEAM)]).await?;
        }
        Ok(())
    }

    /// Another FIFO request queue (for a run that must start from an empty one).
    /// A ledger table of its own (the storm's: moto copies a whole table for every
    /// transaction, so the earlier phases' items would slow it, which DynamoDB does not).
    pub async fn new_ledger_table(&self, name: &str) -> Result<String> {
        create_ledger_table(&aws_sdk_dynamodb::Client::new(&self.config), name).await?;
        Ok(name.to_owned())
    }

    pub async fn new_request_queue(&self, name: &str) -> Result<String> {
        create_fifo(&aws_sdk_sqs::Client::new(&self.config), name).await
    }

    /// What every function gets: the stand-in's endpoint, test credentials, region.
    fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("HOME", self.home_dir.display().to_string()),
        ]
    }

    fn spec(
        &self,
        label: &'static str,
        binary: &Path,
        extra: Vec<(&'static str, String)>,
    ) -> FunctionSpec {
        let mut env = self.aws_env();
        env.extend(extra);
        FunctionSpec {
            label,
            binary: binary.to_owned(),
            env,
        }
    }

    pub fn hello(&self, bins: &Binaries) -> FunctionSpec {
        FunctionSpec {
            label: "hello",
            binary: bins.hello.clone(),
            env: vec![("HOME", self.home_dir.display().to_string())],
        }
    }

    /// Configured as infra/template.yaml configures it.
    pub fn intake(&self, bins: &Binaries) -> FunctionSpec {
        self.spec(
            "intake",
            &bins.intake,
            vec![
                ("CUTOFF_REQUEST_QUEUE_URL", self.requests_url.clone()),
                ("CUTOFF_OUTCOME_BUS", self.bus.clone()),
                ("CUTOFF_MEMBER_ROLE_NAME", MEMBER_ROLE.to_owned()),
            ],
        )
    }

    /// As deployed: with the ledger table.
    pub fn revoker(&self, bins: &Binaries) -> FunctionSpec {
        self.spec(
            "revoker",
            &bins.revoker,
            vec![
                ("CUTOFF_HOME_ACCOUNT", HOME.to_owned()),
                ("CUTOFF_PARTITION", "aws".to_owned()),
                ("CUTOFF_OUTCOME_BUS", self.bus.clone()),
                ("CUTOFF_MAX_RECEIVES", "5".to_owned()),
                ("CUTOFF_MEMBER_ROLE_NAME", MEMBER_ROLE.to_owned()),
                ("CUTOFF_EXTERNAL_ID", EXTERNAL_ID.to_owned()),
                ("CUTOFF_LEDGER_TABLE", self.table.clone()),
                ("CUTOFF_ORGANIZATION_ID", ORGANIZATION_ID.to_owned()),
                // The storm revokes 50 roles of one account within the hour: more than
                // the circuit breaker's default lets through automatically (25), which
                // is what the breaker is for. The bench measures throughput, so the cap
                // is raised past its load.
                ("CUTOFF_BREAKER_PER_ACCOUNT_HOUR", "100000".to_owned()),
            ],
        )
    }

    pub fn notifier(&self, bins: &Binaries) -> FunctionSpec {
        self.spec(
            "notifier",
            &bins.notifier,
            vec![
                ("CUTOFF_SECURITY_TOPIC_ARN", self.security_topic.clone()),
                (
                    "CUTOFF_TEAM_TOPICS",
                    format!("{OWNER_TEAM}={}", self.payments_topic),
                ),
                ("CUTOFF_UPDATE_SECURITY_HUB", "false".to_owned()),
            ],
        )
    }

    pub fn sweeper(&self, bins: &Binaries) -> FunctionSpec {
        self.spec(
            "sweeper",
            &bins.sweeper,
            vec![
                ("CUTOFF_HOME_ACCOUNT", HOME.to_owned()),
                ("CUTOFF_PARTITION", "aws".to_owned()),
                ("CUTOFF_OUTCOME_BUS", self.bus.clone()),
                ("CUTOFF_MEMBER_ROLE_NAME", MEMBER_ROLE.to_owned()),
                ("CUTOFF_EXTERNAL_ID", EXTERNAL_ID.to_owned()),
                ("CUTOFF_SWEEP_QUEUE_URL", self.sweep_queue_url.clone()),
                ("CUTOFF_LEDGER_TABLE", self.table.clone()),
                ("CUTOFF_SWEEP_CONCURRENCY", "4".to_owned()),
                ("CUTOFF_ORGANIZATION_ID", ORGANIZATION_ID.to_owned()),
            ],
        )
    }

    /// The Python baseline, configured like the revoker: same home account (no
    /// `GetCallerIdentity` at init, as `CUTOFF_HOME_ACCOUNT` spares the revoker one),
    /// same member role and ExternalId, outcomes to the same bus.
    pub fn baseline(&self, bins: &Binaries) -> FunctionSpec {
        self.spec(
            "baseline",
            &bins.baseline,
            vec![
                ("HOME_ACCOUNT", HOME.to_owned()),
                ("MEMBER_ROLE_NAME", MEMBER_ROLE.to_owned()),
                ("EXTERNAL_ID", EXTERNAL_ID.to_owned()),
                ("OUTCOME_BUS", self.bus.clone()),
            ],
        )
    }
}

async fn create_fifo(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String> {
    sqs.create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::VisibilityTimeout, "60")
        .send()
        .await
        .context("create the request queue")?
        .queue_url
        .context("queue url")
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .context("key schema")
}

fn attribute(name: &str) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .context("attribute definition")
}

/// Credentials acting in `account` (moto's `AssumeRole` accepts any role ARN).
async fn credentials_in(config: &SdkConfig, account: &str) -> Result<Credentials> {
    let creds = aws_sdk_sts::Client::new(config)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/{MEMBER_ROLE}"))
        .role_session_name("bench-setup")
        .send()
        .await
        .context("AssumeRole into the member account")?
        .credentials
        .context("AssumeRole answered no credentials")?;
    Ok(Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_owned()),
        None,
        "cutoff-bench",
    ))
}

/// Creates a role with tags (tests/support/seed.rs, retrying moto's races); the
/// number of retries.
pub async fn create_role(
    iam: &aws_sdk_iam::Client,
    name: &str,
    tags: &[(&str, &str)],
) -> Result<u64> {
    seed::create_role(iam, name, tags)
        .await
        .with_context(|| format!("CreateRole {name}"))
}

/// Puts an inline policy (tests/support/seed.rs, retrying moto's races); the number
/// of retries.
pub async fn put_role_policy(
    iam: &aws_sdk_iam::Client,
    role: &str,
    policy: &str,
    document: &str,
) -> Result<u64> {
    seed::put_role_policy(iam, role, policy, document)
        .await
        .with_context(|| format!("PutRolePolicy {role}"))
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A high-severity GuardDuty finding (EventBridge event) on a session of `role` in the
/// member account, whose activity was last seen at `last_seen`. Without a
/// `principalId`: a real one names the role's RoleId, which the revoker compares with
/// the RoleId GetRole returns (no extra call); the bench's roles are created in bulk
/// and their ids are not looked up.
pub fn finding(id: &str, role: &str, last_seen: DateTime<Utc>) -> Value {
    let updated = rfc3339(Utc::now());
    json!({
        "version": "0", "id": format!("evt-{id}"), "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
        "account": MEMBER, "time": updated, "region": REGION, "resources": [],
        "detail": {
            "schemaVersion": "2.0", "accountId": MEMBER, "region": REGION, "partition": "aws",
            "id": id, "arn": format!("arn:aws:guardduty:{REGION}:{MEMBER}:detector/d/finding/{id}"),
            "type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
            "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                "accessKeyId": "ASIAZXCVBNMASDFGHJKL",
                "userName": role, "userType": "AssumedRole"}},
            "service": {"serviceName": "guardduty", "archived": false, "count": 1,
                "eventFirstSeen": rfc3339(last_seen - chrono::Duration::minutes(10)),
                "eventLastSeen": rfc3339(last_seen),
                "additionalInfo": {"sample": false}},
            "severity": 8.0, "createdAt": rfc3339(last_seen), "updatedAt": updated,
            "title": "Credentials for the EC2 instance role were used from a remote AWS account."
        }
    })
}

/// A manual revocation request, as an operator invokes the revoker.
pub fn manual_revoke(role: &str) -> Value {
    json!({"action": "revoke", "account": MEMBER, "role": role,
           "reason": "make bench", "requested_by": "bench"})
}

/// The event the outcome bus delivers to the notifier for `outcome`.
pub fn outcome_event(outcome: &Value, n: usize) -> Value {
    json!({
        "version": "0", "id": format!("bench-outcome-{n}"), "detail-type": "Revocation Outcome",
        "source": "cutoff", "account": HOME, "time": rfc3339(Utc::now()), "region": REGION,
        "resources": [], "detail": outcome
    })
}

/// A 12-hex-digit-ish finding id, unique per `(series, n)`.
pub fn finding_id(series: u32, n: usize) -> String {
    format!("{series:08x}{n:024x}")
}

/// `Duration` in milliseconds, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The ledger table as deployed, in a deployment's steady state: first used by this
/// version long enough ago that no key record of the version before can count (for two
/// days after an upgrade, a principal's first request reads those: one call more).
async fn create_ledger_table(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Result<()> {
    dynamodb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .send()
        .await
        .context("create the ledger table")?;
    let number = |n: i64| aws_sdk_dynamodb::types::AttributeValue::N(n.to_string());
    let text = |s: &str| aws_sdk_dynamodb::types::AttributeValue::S(s.to_owned());
    dynamodb
        .put_item()
        .table_name(table)
        .item("pk", text("ledger#format")) // cutoff_aws::dynamodb::FORMAT_PK
        .item("sk", text("format"))
        .item(
            "first_run",
            number((chrono::Utc::now() - chrono::Duration::days(3)).timestamp()),
        )
        .item("legacy_until", number(0))
        .send()
        .await
        .context("write the ledger's format item")?;
    Ok(())
}
