//! The functions' own settings (member role, queues, buses, the ledger, the sweep),
//! parsed once at start-up with the domain's parsers: a bad value fails start-up with
//! a message naming the variable, never the hundredth invocation.

use cutoff_domain::principal::{
    Account, AccountScope, NamePattern, OrganizationId, PrincipalName, Protection,
};
use cutoff_domain::settings::{
    ConfigError, DEFAULT_MAX_REVOCATIONS_PER_ACCOUNT_HOUR, DEFAULT_MEMBER_ROLE_NAME, TriageConfig,
    env, parse_bool, split_list, split_pair,
};

/// What the revoker needs beyond the triage rules.
#[derive(Clone, PartialEq)]
pub struct RevokerConfig {
    /// The role assumed in member accounts.
    pub member_role_name: PrincipalName,
    /// The ExternalId the member role's trust policy requires. Kept out of the
    /// `Debug` output (a configuration printed in a panic or a log line).
    pub external_id: Option<String>,
    /// Protected principals (the same rules as triage's).
    pub protection: Protection,
    /// The accounts cutoff may reach into (required: a deployment names its
    /// Organization or its accounts).
    pub accounts: AccountScope,
    /// The circuit breaker: automatic revocations per account per hour beyond which
    /// cutoff writes nothing more and alerts the security team.
    pub max_revocations_per_account_hour: u32,
    /// The same per Security Hub custom action and hour (`CUTOFF_BREAKER_PER_ACTION`,
    /// the cap intake applies to one event, counted here across events).
    pub max_revocations_per_action_hour: u32,
    /// Compute and report everything, write nothing (a deployment-wide switch).
    pub dry_run: bool,
    /// Our own account and partition when the deployment says so (the template
    /// passes them); otherwise discovered with `sts:GetCallerIdentity` at start-up.
    pub home: Option<(
        cutoff_domain::principal::Account,
        cutoff_domain::principal::Partition,
    )>,
    /// The custom EventBridge bus outcomes are published to.
    pub outcome_bus: String,
    /// The request queue's maxReceiveCount: the attempt after which a failed request
    /// is in the dead-letter queue (its failure is notified then, and on the first
    /// attempt).
    pub final_receive: u32,
    /// Honour `cutoff:protected=true` tags (off by default: a member account can set
    /// tags, and so can an attacker with its credentials).
    pub honour_protected_tag: bool,
    /// The DynamoDB ledger (audit trail, idempotency, per-principal lock, sweep
    /// runs); without it, none of those.
    pub ledger_table: Option<String>,
    /// The revoker's own role (`CUTOFF_ROLE_ARN`): what the self-check asks the policy
    /// simulator about in the home account, where cutoff acts with this role.
    pub role_arn: Option<String>,
    /// Where the follow-up runs of a revocation are scheduled (None: not followed).
    pub follow_up: Option<FollowUpConfig>,
    /// The opt-in Identity Center integration (None: Identity Center users are
    /// alerted with the remedy).
    pub identity_center: Option<IdentityCenterConfig>,
    /// How long an approval a medium-severity finding asks for stays open
    /// (`CUTOFF_APPROVAL_HOURS`).
    pub approval_hours: cutoff_domain::approval::ApprovalHours,
}

/// Where Identity Center is administered (`CUTOFF_IDENTITY_CENTER_*`): the role
/// cutoff assumes there (with the deployment's ExternalId) and the instance's region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityCenterConfig {
    pub role_arn: String,
    pub region: String,
    /// The SCP variant: cutoff's own service control policy, where the deny goes
    /// instead of the permission sets (`CUTOFF_IDENTITY_CENTER_SCP_ID`).
    pub scp_id: Option<String>,
}

/// The EventBridge Scheduler settings of the follow-up (`CUTOFF_FOLLOW_UP_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpConfig {
    /// The schedule group the revoker may create schedules in.
    pub group: String,
    /// The role Scheduler assumes to invoke the revoker.
    pub role_arn: String,
    /// Where Scheduler sends a run it could not deliver.
    pub dead_letter_arn: Option<String>,
}

impl std::fmt::Debug for RevokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevokerConfig")
            .field("member_role_name", &self.member_role_name)
            .field(
                "external_id",
                &self.external_id.as_ref().map(|_| "(redacted)"),
            )
            .field("protection", &self.protection)
            .field("accounts", &self.accounts)
            .field(
                "max_revocations_per_account_hour",
                &self.max_revocations_per_account_hour,
            )
            .field(
                "max_revocations_per_action_hour",
                &self.max_revocations_per_action_hour,
            )
            .field("dry_run", &self.dry_run)
            .field("home", &self.home)
            .field("outcome_bus", &self.outcome_bus)
            .field("final_receive", &self.final_receive)
            .field("honour_protected_tag", &self.honour_protected_tag)
            .field("ledger_table", &self.ledger_table)
            .field("role_arn", &self.role_arn)
            .field("follow_up", &self.follow_up)
            .field("identity_center", &self.identity_center)
            .field("approval_hours", &self.approval_hours)
            .finish()
    }
}

pub mod revoker_env {
    pub const EXTERNAL_ID: &str = "CUTOFF_EXTERNAL_ID";
    pub const DRY_RUN: &str = "CUTOFF_DRY_RUN";
    pub const HOME_ACCOUNT: &str = "CUTOFF_HOME_ACCOUNT";
    pub const PARTITION: &str = super::env::PARTITION;
    pub const ORGANIZATION_ID: &str = "CUTOFF_ORGANIZATION_ID";
    pub const ACCOUNTS: &str = "CUTOFF_ACCOUNTS";
    pub const MAX_REVOCATIONS_PER_ACCOUNT_HOUR: &str = "CUTOFF_BREAKER_PER_ACCOUNT_HOUR";
    pub const OUTCOME_BUS: &str = "CUTOFF_OUTCOME_BUS";
    pub const MAX_RECEIVES: &str = "CUTOFF_MAX_RECEIVES";
    pub const HONOUR_PROTECTED_TAG: &str = "CUTOFF_HONOUR_PROTECTED_TAG";
    pub const LEDGER_TABLE: &str = "CUTOFF_LEDGER_TABLE";
    pub const ROLE_ARN: &str = "CUTOFF_ROLE_ARN";
    pub const FOLLOW_UP_GROUP: &str = "CUTOFF_FOLLOW_UP_GROUP";
    pub const FOLLOW_UP_ROLE_ARN: &str = "CUTOFF_FOLLOW_UP_ROLE_ARN";
    pub const FOLLOW_UP_DLQ_ARN: &str = "CUTOFF_FOLLOW_UP_DLQ_ARN";
    pub const IDENTITY_CENTER_ROLE_ARN: &str = "CUTOFF_IDENTITY_CENTER_ROLE_ARN";
    pub const IDENTITY_CENTER_REGION: &str = "CUTOFF_IDENTITY_CENTER_REGION";
    pub const IDENTITY_CENTER_SCP_ID: &str = "CUTOFF_IDENTITY_CENTER_SCP_ID";
    pub const APPROVAL_HOURS: &str = "CUTOFF_APPROVAL_HOURS";
}

/// `arn:<partition>:iam::<account>:role/<path/>name`, whole.
fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [scheme, partition, service, region, account, resource] = parts[..] else {
        return false;
    };
    scheme == "arn"
        && cutoff_domain::principal::Partition::parse(partition).is_ok()
        && service == "iam"
        && region.is_empty()
        && cutoff_domain::principal::Account::parse(account).is_ok()
        && resource.strip_prefix("role/").is_some_and(|path_and_name| {
            let name = path_and_name.rsplit('/').next().unwrap_or_default();
            PrincipalName::parse(name).is_ok() && path_and_name.len() <= 512
        })
}

fn identity_center_from(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<IdentityCenterConfig>, ConfigError> {
    let role = lookup(revoker_env::IDENTITY_CENTER_ROLE_ARN).filter(|v| !v.is_empty());
    let region = lookup(revoker_env::IDENTITY_CENTER_REGION).filter(|v| !v.is_empty());
    match (role, region) {
        (None, None)
            if lookup(revoker_env::IDENTITY_CENTER_SCP_ID).is_some_and(|v| !v.is_empty()) =>
        {
            Err(ConfigError::invalid(
                revoker_env::IDENTITY_CENTER_SCP_ID,
                "",
                "the SCP variant needs the Identity Center integration (its role and region)",
            ))
        }
        (None, None) => Ok(None),
        (Some(role_arn), Some(region)) => {
            if !is_role_arn(&role_arn) {
                return Err(ConfigError::invalid(
                    revoker_env::IDENTITY_CENTER_ROLE_ARN,
                    &role_arn,
                    "expected a role ARN, arn:aws:iam::<account>:role/<name>",
                ));
            }
            if !cutoff_domain::chain::is_region_name(&region) {
                return Err(ConfigError::invalid(
                    revoker_env::IDENTITY_CENTER_REGION,
                    &region,
                    "expected a region name, like eu-west-1",
                ));
            }
            let scp_id = lookup(revoker_env::IDENTITY_CENTER_SCP_ID).filter(|v| !v.is_empty());
            // Organizations' pattern for a policy id: `p-` and 8 to 128 lowercase
            // letters, digits or underscores.
            if let Some(id) = &scp_id {
                let valid = id.strip_prefix("p-").is_some_and(|rest| {
                    (8..=128).contains(&rest.len())
                        && rest
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                });
                if !valid {
                    return Err(ConfigError::invalid(
                        revoker_env::IDENTITY_CENTER_SCP_ID,
                        id,
                        "expected a policy id, p- and 8 to 128 of [a-z0-9_]",
                    ));
                }
            }
            Ok(Some(IdentityCenterConfig {
                role_arn,
                region,
                scp_id,
            }))
        }
        (role, _) => Err(ConfigError::invalid(
            if role.is_some() {
                revoker_env::IDENTITY_CENTER_REGION
            } else {
                revoker_env::IDENTITY_CENTER_ROLE_ARN
            },
            "",
            "the Identity Center integration needs both the role in the Identity Center account and the instance's region",
        )),
    }
}

impl RevokerConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let triage = TriageConfig::from_lookup(&lookup)?;
        let member_role_name = match lookup(env::MEMBER_ROLE_NAME) {
            Some(v) => PrincipalName::parse(&v)
                .map_err(|e| ConfigError::from_value(env::MEMBER_ROLE_NAME, &v, &e))?,
            None => PrincipalName::parse(DEFAULT_MEMBER_ROLE_NAME).map_err(|e| {
                ConfigError::from_value(env::MEMBER_ROLE_NAME, DEFAULT_MEMBER_ROLE_NAME, &e)
            })?,
        };
        let external_id = match lookup(revoker_env::EXTERNAL_ID) {
            Some(v) if v.is_empty() => None,
            Some(v) => Some(parse_external_id(&v)?),
            None => None,
        };
        let dry_run = match lookup(revoker_env::DRY_RUN) {
            Some(v) => parse_bool(revoker_env::DRY_RUN, &v)?,
            None => false,
        };
        let home = match (
            lookup(revoker_env::HOME_ACCOUNT),
            lookup(revoker_env::PARTITION),
        ) {
            (Some(account), partition) => {
                let account = cutoff_domain::principal::Account::parse(&account).map_err(|e| {
                    ConfigError::from_value(revoker_env::HOME_ACCOUNT, &account, &e)
                })?;
                let partition = partition.unwrap_or_else(|| "aws".to_owned());
                let partition = cutoff_domain::principal::Partition::parse(&partition)
                    .map_err(|e| ConfigError::from_value(revoker_env::PARTITION, &partition, &e))?;
                Some((account, partition))
            }
            (None, _) => None,
        };
        let outcome_bus = match lookup(revoker_env::OUTCOME_BUS).filter(|b| !b.trim().is_empty()) {
            Some(bus) => {
                parse_bus_name(revoker_env::OUTCOME_BUS, bus.trim())?;
                Some(bus.trim().to_owned())
            }
            None => None,
        };
        let final_receive = match lookup(revoker_env::MAX_RECEIVES) {
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    ConfigError::invalid(
                        revoker_env::MAX_RECEIVES,
                        &v,
                        "expected the queue's maxReceiveCount, 1 to 1000",
                    )
                })?,
            None => 5,
        };
        let honour_protected_tag = match lookup(revoker_env::HONOUR_PROTECTED_TAG) {
            Some(v) => parse_bool(revoker_env::HONOUR_PROTECTED_TAG, &v)?,
            None => false,
        };
        let ledger_table = match lookup(revoker_env::LEDGER_TABLE) {
            Some(v) if v.trim().is_empty() => None,
            Some(v) => Some(parse_table_name(revoker_env::LEDGER_TABLE, v.trim())?),
            None => None,
        };
        let role_arn = match lookup(revoker_env::ROLE_ARN) {
            Some(v) if v.trim().is_empty() => None,
            Some(v) => {
                let arn = cutoff_domain::principal::PrincipalArn::parse(v.trim())
                    .map_err(|e| ConfigError::from_value(revoker_env::ROLE_ARN, &v, &e))?;
                if !matches!(
                    arn.resource,
                    cutoff_domain::principal::PrincipalResource::Role { .. }
                ) {
                    return Err(ConfigError::invalid(
                        revoker_env::ROLE_ARN,
                        &v,
                        "expected the revoker's role ARN (arn:<partition>:iam::<account>:role/<name>)",
                    ));
                }
                Some(v.trim().to_owned())
            }
            None => None,
        };
        let accounts = account_scope_from_lookup(&lookup)?.ok_or_else(|| {
            ConfigError::invalid(
                revoker_env::ORGANIZATION_ID,
                "",
                format!(
                    "required, or {}: cutoff reaches only into the accounts of its Organization or of an explicit list",
                    revoker_env::ACCOUNTS
                ),
            )
        })?;
        let max_revocations_per_account_hour = match lookup(
            revoker_env::MAX_REVOCATIONS_PER_ACCOUNT_HOUR,
        ) {
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| {
                    ConfigError::invalid(
                        revoker_env::MAX_REVOCATIONS_PER_ACCOUNT_HOUR,
                        &v,
                        "expected the most automatic revocations per account and hour, 1 to 100000",
                    )
                })?,
            None => DEFAULT_MAX_REVOCATIONS_PER_ACCOUNT_HOUR,
        };
        let follow_up = match (
            lookup(revoker_env::FOLLOW_UP_GROUP).filter(|v| !v.is_empty()),
            lookup(revoker_env::FOLLOW_UP_ROLE_ARN).filter(|v| !v.is_empty()),
        ) {
            (None, None) => None,
            (Some(group), Some(role_arn)) => {
                let valid_group = !group.is_empty()
                    && group.len() <= 64
                    && group
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !valid_group {
                    return Err(ConfigError::invalid(
                        revoker_env::FOLLOW_UP_GROUP,
                        &group,
                        "expected a schedule group name: 1 to 64 of [0-9A-Za-z-_.]",
                    ));
                }
                for (name, arn) in [
                    (revoker_env::FOLLOW_UP_ROLE_ARN, Some(&role_arn)),
                    (
                        revoker_env::FOLLOW_UP_DLQ_ARN,
                        lookup(revoker_env::FOLLOW_UP_DLQ_ARN).as_ref(),
                    ),
                ] {
                    if let Some(arn) = arn
                        && !arn.is_empty()
                        && (!arn.starts_with("arn:")
                            || arn.len() > 2048
                            || arn.chars().any(char::is_whitespace))
                    {
                        return Err(ConfigError::invalid(name, arn, "expected an ARN"));
                    }
                }
                Some(FollowUpConfig {
                    group,
                    role_arn,
                    dead_letter_arn: lookup(revoker_env::FOLLOW_UP_DLQ_ARN)
                        .filter(|v| !v.is_empty()),
                })
            }
            (group, _) => {
                return Err(ConfigError::invalid(
                    if group.is_some() {
                        revoker_env::FOLLOW_UP_ROLE_ARN
                    } else {
                        revoker_env::FOLLOW_UP_GROUP
                    },
                    "",
                    "the follow-up needs both its schedule group and the role Scheduler invokes the revoker with",
                ));
            }
        };
        let identity_center = identity_center_from(&lookup)?;
        let approval_hours = match lookup(revoker_env::APPROVAL_HOURS) {
            Some(v) if !v.trim().is_empty() => cutoff_domain::approval::ApprovalHours::parse(&v)
                .map_err(|why| ConfigError::invalid(revoker_env::APPROVAL_HOURS, &v, why))?,
            _ => cutoff_domain::approval::ApprovalHours::default(),
        };
        // Checked last: a deployment missing its scope hears of that first.
        let outcome_bus = outcome_bus.ok_or_else(|| {
            ConfigError::invalid(
                revoker_env::OUTCOME_BUS,
                "",
                "required: every outcome is published there, so that its owner is told",
            )
        })?;
        Ok(Self {
            member_role_name,
            external_id,
            protection: triage.protection,
            accounts,
            max_revocations_per_account_hour,
            max_revocations_per_action_hour: u32::try_from(triage.max_principals_per_action)
                .unwrap_or(u32::MAX),
            dry_run,
            home,
            outcome_bus,
            final_receive,
            honour_protected_tag,
            ledger_table,
            role_arn,
            follow_up,
            identity_center,
            approval_hours,
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// `CUTOFF_ORGANIZATION_ID` and `CUTOFF_ACCOUNTS`; None when both are unset.
pub fn account_scope_from_lookup(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<AccountScope>, ConfigError> {
    let organization = match lookup(revoker_env::ORGANIZATION_ID) {
        Some(v) if !v.trim().is_empty() => Some(
            OrganizationId::parse(v.trim())
                .map_err(|e| ConfigError::from_value(revoker_env::ORGANIZATION_ID, &v, &e))?,
        ),
        _ => None,
    };
    let accounts = match lookup(revoker_env::ACCOUNTS) {
        Some(v) if !v.trim().is_empty() => {
            let mut list: Vec<Account> = Vec::new();
            for item in split_list(&v) {
                let account = Account::parse(item)
                    .map_err(|e| ConfigError::from_value(revoker_env::ACCOUNTS, item, &e))?;
                if !list.contains(&account) {
                    list.push(account);
                }
            }
            Some(list)
        }
        _ => None,
    };
    Ok(match (&organization, &accounts) {
        (None, None) => None,
        _ => Some(AccountScope {
            organization,
            accounts,
        }),
    })
}

/// Where intake sends what it decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeConfig {
    /// The FIFO request queue (`CUTOFF_REQUEST_QUEUE_URL`).
    pub request_queue_url: String,
    /// The custom outcome bus alerts go to (`CUTOFF_OUTCOME_BUS`).
    pub outcome_bus: String,
}

pub mod intake_env {
    pub const REQUEST_QUEUE_URL: &str = "CUTOFF_REQUEST_QUEUE_URL";
}

impl IntakeConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let request_queue_url = lookup(intake_env::REQUEST_QUEUE_URL)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ConfigError::invalid(
                    intake_env::REQUEST_QUEUE_URL,
                    "",
                    "is required: the FIFO queue of revocation requests",
                )
            })?;
        if !(request_queue_url.starts_with("https://") || request_queue_url.starts_with("http://"))
            || !request_queue_url.ends_with(".fifo")
        {
            return Err(ConfigError::invalid(
                intake_env::REQUEST_QUEUE_URL,
                &request_queue_url,
                "expected the URL of a FIFO queue (ending in .fifo)",
            ));
        }
        let outcome_bus = lookup(revoker_env::OUTCOME_BUS)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ConfigError::invalid(
                    revoker_env::OUTCOME_BUS,
                    "",
                    "is required: the bus alerts are published to",
                )
            })?;
        parse_bus_name(revoker_env::OUTCOME_BUS, &outcome_bus)?;
        Ok(Self {
            request_queue_url,
            outcome_bus,
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// An EventBridge bus name (`[/.\-_A-Za-z0-9]{1,256}`) or ARN.
pub fn parse_bus_name(name: &'static str, value: &str) -> Result<(), ConfigError> {
    let ok = (1..=1600).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_' | b':'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            name,
            value,
            "expected an EventBridge bus name or ARN",
        ))
    }
}

/// STS accepts ExternalIds of 2 to 1224 characters from `[\w+=,.@:/-]`.
pub fn parse_external_id(value: &str) -> Result<String, ConfigError> {
    let ok = (2..=1224).contains(&value.len())
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'+' | b'=' | b',' | b'.' | b'@' | b':' | b'/' | b'-'
                )
        });
    if ok {
        Ok(value.to_owned())
    } else {
        // The value is a shared secret of sorts: never echo it.
        Err(ConfigError::Invalid {
            name: revoker_env::EXTERNAL_ID,
            excerpt: "(redacted)".to_owned(),
            why: "an ExternalId has 2 to 1224 characters from A-Z a-z 0-9 _+=,.@:/-".to_owned(),
        })
    }
}

/// A DynamoDB table name: 3 to 255 of `[A-Za-z0-9_.-]`.
pub fn parse_table_name(name: &'static str, value: &str) -> Result<String, ConfigError> {
    if (3..=255).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        Ok(value.to_owned())
    } else {
        Err(ConfigError::invalid(
            name,
            value,
            "expected a DynamoDB table name: 3 to 255 letters, digits, `_`, `.` or `-`",
        ))
    }
}

/// Which accounts a sweep covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepAccounts {
    /// Our own account only (the default: nothing is swept that was not asked for).
    Home,
    /// Every active account of the Organization (`organizations:ListAccounts`).
    Organization,
    /// These accounts.
    Listed(Vec<cutoff_domain::principal::Account>),
}

/// Whether the sweeper sends a daily digest of its runs (`CUTOFF_SWEEP_DIGEST`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DigestSetting {
    /// No digest (the default): quiet runs are in the ledger, the logs and the
    /// metrics only.
    #[default]
    Off,
    /// Once per UTC day, the first run planned on a new day sends the digest of the
    /// day before.
    Daily,
}

impl DigestSetting {
    /// `off` or `daily`, any case, spaces around ignored; empty is `off`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "off" => Some(DigestSetting::Off),
            "daily" => Some(DigestSetting::Daily),
            _ => None,
        }
    }
}

/// What the sweeper needs beyond the revoker's settings (member role, ExternalId,
/// protected names, dry run, home, outcome bus).
#[derive(Debug, Clone, PartialEq)]
pub struct SweeperConfig {
    pub revoker: RevokerConfig,
    pub accounts: SweepAccounts,
    /// Name pattern → max session age, for principals without the tag; first match.
    pub max_age_patterns: Vec<(NamePattern, cutoff_domain::sweep_rules::MaxSessionAge)>,
    /// Added to the longest session before a revocation counts as expired.
    pub margin: chrono::Duration,
    /// The standard SQS queue of per-account sweep tasks (the Lambda's fan-out).
    pub queue_url: String,
    /// The ledger table (the revoker's `CUTOFF_LEDGER_TABLE`): the sweeper counts
    /// each run's accounts there and takes the principal locks the revoker takes.
    pub ledger_table: String,
    /// Accounts swept at once by one invocation.
    pub concurrency: usize,
    /// The daily digest of the sweep's runs.
    pub digest: DigestSetting,
}

/// What every function reads for its metrics ([`crate::metrics`]).
pub mod metrics_env {
    /// The CloudWatch namespace of the embedded metrics; the template sets the stack's
    /// `NamePrefix`, so that two stacks in one account do not mix their metrics.
    pub const NAMESPACE: &str = "CUTOFF_METRICS_NAMESPACE";
}

/// `CUTOFF_METRICS_NAMESPACE`, or `cutoff` when it is unset or empty.
pub fn metrics_namespace_from_lookup(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<cutoff_domain::metrics::Namespace, ConfigError> {
    match lookup(metrics_env::NAMESPACE) {
        Some(v) if !v.trim().is_empty() => cutoff_domain::metrics::Namespace::parse(v.trim())
            .map_err(|why| ConfigError::invalid(metrics_env::NAMESPACE, &v, why)),
        _ => Ok(cutoff_domain::metrics::Namespace::default()),
    }
}

pub mod sweeper_env {
    pub const ACCOUNTS: &str = "CUTOFF_SWEEP_ACCOUNTS";
    pub const MAX_AGE_PATTERNS: &str = "CUTOFF_SWEEP_MAX_AGE_PATTERNS";
    pub const MARGIN: &str = "CUTOFF_SWEEP_MARGIN";
    pub const QUEUE_URL: &str = "CUTOFF_SWEEP_QUEUE_URL";
    pub const CONCURRENCY: &str = "CUTOFF_SWEEP_CONCURRENCY";
    pub const DIGEST: &str = "CUTOFF_SWEEP_DIGEST";
}

/// The most accounts one invocation sweeps at once: each holds a page of its
/// account in memory, and IAM and STS throttle per account and per caller.
pub const MAX_SWEEP_CONCURRENCY: usize = 32;

impl SweeperConfig {
    /// Reads the revoker's variables and `CUTOFF_SWEEP_ACCOUNTS` (`home` (default),
    /// `organization`, or a comma-separated list of account ids),
    /// `CUTOFF_SWEEP_MAX_AGE_PATTERNS` (`pattern=4h,pattern=30m`),
    /// `CUTOFF_SWEEP_MARGIN` (`1h` by default; `0`, `30m`, `2h`…),
    /// `CUTOFF_SWEEP_QUEUE_URL` (required), `CUTOFF_SWEEP_CONCURRENCY` (1 to 32,
    /// default 4), `CUTOFF_SWEEP_DIGEST` (`off`, the default, or `daily`), and the
    /// revoker's `CUTOFF_LEDGER_TABLE`, required here: the run ledger and the principal
    /// locks.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        use sweeper_env::*;
        let revoker = RevokerConfig::from_lookup(&lookup)?;
        let accounts = match lookup(ACCOUNTS).as_deref().map(str::trim) {
            None | Some("") | Some("home") => SweepAccounts::Home,
            Some("organization") | Some("organisation") => SweepAccounts::Organization,
            Some(list) => {
                let mut accounts = Vec::new();
                for item in split_list(list) {
                    let account = cutoff_domain::principal::Account::parse(item)
                        .map_err(|e| ConfigError::from_value(ACCOUNTS, item, &e))?;
                    if !accounts.contains(&account) {
                        accounts.push(account);
                    }
                }
                SweepAccounts::Listed(accounts)
            }
        };
        let mut max_age_patterns = Vec::new();
        if let Some(v) = lookup(MAX_AGE_PATTERNS) {
            for item in split_list(&v) {
                let (pattern, age) = split_pair(MAX_AGE_PATTERNS, item, "name-pattern=4h")?;
                let pattern = NamePattern::parse(pattern)
                    .map_err(|e| ConfigError::from_value(MAX_AGE_PATTERNS, item, &e))?;
                let age = cutoff_domain::sweep_rules::MaxSessionAge::parse(age)
                    .map_err(|e| ConfigError::from_value(MAX_AGE_PATTERNS, item, &e))?;
                max_age_patterns.push((pattern, age));
            }
        }
        let margin = match lookup(MARGIN) {
            Some(v) => parse_margin(MARGIN, &v)?,
            None => cutoff_domain::sweep_rules::DEFAULT_EXPIRY_MARGIN,
        };
        let non_empty = |name| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let concurrency = match lookup(CONCURRENCY) {
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_SWEEP_CONCURRENCY).contains(n))
                .ok_or_else(|| {
                    ConfigError::invalid(CONCURRENCY, &v, "expected a number from 1 to 32")
                })?,
            None => 4,
        };
        let digest = match lookup(DIGEST) {
            None => DigestSetting::Off,
            Some(v) => DigestSetting::parse(&v)
                .ok_or_else(|| ConfigError::invalid(DIGEST, &v, "expected off or daily"))?,
        };
        let queue_url = non_empty(QUEUE_URL).ok_or_else(|| {
            ConfigError::invalid(
                QUEUE_URL,
                "",
                "required: a run fans out through it, one task per account",
            )
        })?;
        let ledger_table = revoker.ledger_table.clone().ok_or_else(|| {
            ConfigError::invalid(
                revoker_env::LEDGER_TABLE,
                "",
                "required: the sweeper counts each run's accounts in the ledger",
            )
        })?;
        Ok(Self {
            revoker,
            accounts,
            max_age_patterns,
            margin,
            queue_url,
            ledger_table,
            concurrency,
            digest,
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The sweep rules this configuration gives.
    pub fn rules(&self) -> cutoff_domain::sweep_rules::SweepRules {
        cutoff_domain::sweep_rules::SweepRules {
            patterns: self.max_age_patterns.clone(),
            margin: self.margin,
            protected: self.revoker.protection.clone(),
        }
    }
}

/// `0`, or hours and minutes such as `30m`, `1h`, `2h30m`, at most 24 h.
pub fn parse_margin(name: &'static str, value: &str) -> Result<chrono::Duration, ConfigError> {
    let v = value.trim();
    if v == "0" {
        return Ok(chrono::Duration::zero());
    }
    let why = "expected 0 or hours and minutes such as 30m, 1h or 2h30m, at most 24h";
    let mut total = 0i64;
    let mut digits = String::new();
    let mut units = 0;
    // Each unit once, hours before minutes: `1h1h` and `30m1h` are typos, not margins.
    let mut last_unit: Option<char> = None;
    for c in v.chars() {
        match c {
            '0'..='9' if digits.len() < 4 => digits.push(c),
            'h' | 'm' if !digits.is_empty() && last_unit != Some('m') && last_unit != Some(c) => {
                last_unit = Some(c);
                let n: i64 = digits
                    .parse()
                    .map_err(|_| ConfigError::invalid(name, value, why))?;
                total += if c == 'h' { n * 60 } else { n };
                digits.clear();
                units += 1;
            }
            _ => return Err(ConfigError::invalid(name, value, why)),
        }
    }
    if !digits.is_empty() || units == 0 || units > 2 || total > 24 * 60 {
        return Err(ConfigError::invalid(name, value, why));
    }
    Ok(chrono::Duration::minutes(total))
}

#[cfg(test)]
mod sweeper_config_tests {
    use super::*;

    /// The pairs, and an Organization unless they name one (a deployment always does).
    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (name, value) in [
            (revoker_env::ORGANIZATION_ID, "o-a1b2c3d4e5"),
            (revoker_env::OUTCOME_BUS, "cutoff-outcomes"),
            (revoker_env::LEDGER_TABLE, "cutoff-ledger"),
            (
                sweeper_env::QUEUE_URL,
                "https://sqs.us-east-1.amazonaws.com/111122223333/cutoff-sweep",
            ),
        ] {
            map.entry(name.to_owned())
                .or_insert_with(|| value.to_owned());
        }
        move |k| map.get(k).cloned()
    }

    #[test]
    fn an_approval_stays_open_four_hours_unless_the_deployment_says_one_to_seventy_two() {
        let hours = |pairs: &[(&str, &str)]| {
            RevokerConfig::from_lookup(lookup(pairs)).map(|c| c.approval_hours.get())
        };
        assert_eq!(hours(&[]).unwrap(), 4);
        assert_eq!(hours(&[(revoker_env::APPROVAL_HOURS, "")]).unwrap(), 4);
        assert_eq!(hours(&[(revoker_env::APPROVAL_HOURS, "1")]).unwrap(), 1);
        assert_eq!(hours(&[(revoker_env::APPROVAL_HOURS, "72")]).unwrap(), 72);
        for bad in ["0", "73", "4h", "-4"] {
            let err = hours(&[(revoker_env::APPROVAL_HOURS, bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(revoker_env::APPROVAL_HOURS), "{bad}: {err}");
        }
    }

    #[test]
    fn a_deployment_without_an_organization_or_an_account_list_is_refused() {
        let err = RevokerConfig::from_lookup(|_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(revoker_env::ORGANIZATION_ID), "{err}");
        assert!(err.contains(revoker_env::ACCOUNTS), "{err}");
        let listed = RevokerConfig::from_lookup(|k| match k {
            revoker_env::ACCOUNTS => Some("111122223333, 444455556666,111122223333".to_owned()),
            revoker_env::OUTCOME_BUS => Some("cutoff-outcomes".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(listed.accounts.organization, None);
        assert_eq!(
            listed.accounts.accounts.as_ref().map(Vec::len),
            Some(2),
            "deduplicated"
        );
        for (name, value) in [
            (revoker_env::ORGANIZATION_ID, "o-short"),
            (revoker_env::ORGANIZATION_ID, "r-a1b2c3d4e5"),
            (revoker_env::ACCOUNTS, "1234"),
            (revoker_env::MAX_REVOCATIONS_PER_ACCOUNT_HOUR, "0"),
        ] {
            let err = RevokerConfig::from_lookup(lookup(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn a_function_without_the_queue_table_or_bus_it_needs_does_not_start() {
        for (config, name) in [
            ("revoker", revoker_env::OUTCOME_BUS),
            ("sweeper", revoker_env::OUTCOME_BUS),
            ("sweeper", revoker_env::LEDGER_TABLE),
            ("sweeper", sweeper_env::QUEUE_URL),
        ] {
            let all = lookup(&[]);
            let without = |k: &str| if k == name { None } else { all(k) };
            let err = match config {
                "revoker" => RevokerConfig::from_lookup(without).map(|_| ()),
                _ => SweeperConfig::from_lookup(without).map(|_| ()),
            }
            .unwrap_err()
            .to_string();
            assert!(
                err.contains(name) && err.contains("required"),
                "{config}: {err}"
            );
        }
        assert!(RevokerConfig::from_lookup(lookup(&[])).is_ok());
        assert!(SweeperConfig::from_lookup(lookup(&[])).is_ok());
    }

    #[test]
    fn defaults_sweep_the_home_account_with_a_one_hour_margin() {
        let c = SweeperConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(c.accounts, SweepAccounts::Home);
        assert_eq!(c.margin, chrono::Duration::hours(1));
        assert_eq!(c.concurrency, 4);
        assert!(c.max_age_patterns.is_empty());
        assert_eq!(c.digest, DigestSetting::Off);
        // The member role is protected from the sweeper as from the revoker.
        assert_eq!(
            c.rules()
                .protected
                .member_role
                .as_ref()
                .map(PrincipalName::as_str),
            Some(DEFAULT_MEMBER_ROLE_NAME)
        );
    }

    #[test]
    fn accounts_patterns_margin_and_concurrency_are_read() {
        let c = SweeperConfig::from_lookup(lookup(&[
            (
                sweeper_env::ACCOUNTS,
                "111122223333, 444455556666,111122223333",
            ),
            (
                sweeper_env::MAX_AGE_PATTERNS,
                "batch-*=4h, etl-nightly=1h30m",
            ),
            (sweeper_env::MARGIN, "30m"),
            (sweeper_env::CONCURRENCY, "8"),
        ]))
        .unwrap();
        assert_eq!(
            c.accounts,
            SweepAccounts::Listed(vec![
                cutoff_domain::principal::Account::parse("111122223333").unwrap(),
                cutoff_domain::principal::Account::parse("444455556666").unwrap(),
            ])
        );
        assert_eq!(c.max_age_patterns.len(), 2);
        assert_eq!(c.max_age_patterns[1].1.to_string(), "1h30m");
        assert_eq!(c.margin, chrono::Duration::minutes(30));
        assert_eq!(c.concurrency, 8);
        let org =
            SweeperConfig::from_lookup(lookup(&[(sweeper_env::ACCOUNTS, "organization")])).unwrap();
        assert_eq!(org.accounts, SweepAccounts::Organization);
        for (value, digest) in [
            ("daily", DigestSetting::Daily),
            (" Daily ", DigestSetting::Daily),
            ("off", DigestSetting::Off),
            ("", DigestSetting::Off),
        ] {
            let c = SweeperConfig::from_lookup(lookup(&[(sweeper_env::DIGEST, value)])).unwrap();
            assert_eq!(c.digest, digest, "{value:?}");
        }
    }

    #[test]
    fn bad_values_fail_naming_the_variable() {
        for (name, value) in [
            (sweeper_env::ACCOUNTS, "1234"),
            (sweeper_env::MAX_AGE_PATTERNS, "batch-*=5m"),
            (sweeper_env::MAX_AGE_PATTERNS, "batch-*"),
            (sweeper_env::MARGIN, "-1h"),
            (sweeper_env::MARGIN, "25h"),
            (sweeper_env::MARGIN, "1h1h1h"),
            (sweeper_env::MARGIN, "1h1h"),
            (sweeper_env::MARGIN, "30m1h"),
            (sweeper_env::MARGIN, "h"),
            (sweeper_env::CONCURRENCY, "0"),
            (sweeper_env::CONCURRENCY, "33"),
            (sweeper_env::DIGEST, "weekly"),
            (sweeper_env::DIGEST, "true"),
        ] {
            let err = SweeperConfig::from_lookup(lookup(&[(name, value)])).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn margins_parse() {
        let m = |s| parse_margin("M", s).unwrap().num_minutes();
        assert_eq!(m("0"), 0);
        assert_eq!(m("45m"), 45);
        assert_eq!(m("2h"), 120);
        assert_eq!(m("2h30m"), 150);
        assert_eq!(m("24h"), 1440);
    }
}

#[cfg(test)]
mod revoker_config_tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn revoker_config_reads_member_role_external_id_and_dry_run() {
        let map: HashMap<String, String> = [
            (env::MEMBER_ROLE_NAME, "SecurityResponder"),
            (revoker_env::EXTERNAL_ID, "cutoff-3f1c9a"),
            (revoker_env::DRY_RUN, "true"),
            (env::PROTECTED, "break-glass"),
            (revoker_env::ORGANIZATION_ID, "o-a1b2c3d4e5"),
            (revoker_env::OUTCOME_BUS, "cutoff-outcomes"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = RevokerConfig::from_lookup(|k| map.get(k).cloned()).unwrap();
        assert_eq!(config.member_role_name.as_str(), "SecurityResponder");
        assert_eq!(config.external_id.as_deref(), Some("cutoff-3f1c9a"));
        assert!(config.dry_run);
        assert_eq!(
            config
                .protection
                .member_role
                .as_ref()
                .map(PrincipalName::as_str),
            Some("SecurityResponder")
        );
        assert_eq!(config.protection.patterns.len(), 1);
        assert_eq!(
            config.max_revocations_per_account_hour,
            DEFAULT_MAX_REVOCATIONS_PER_ACCOUNT_HOUR
        );
        let bad = RevokerConfig::from_lookup(|k| match k {
            revoker_env::EXTERNAL_ID => Some("secret with spaces".to_owned()),
            revoker_env::ORGANIZATION_ID => Some("o-a1b2c3d4e5".to_owned()),
            _ => None,
        })
        .unwrap_err()
        .to_string();
        assert!(
            !bad.contains("secret"),
            "the ExternalId is not echoed: {bad}"
        );
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("cutoff-3f1c9a") && shown.contains("(redacted)"),
            "the ExternalId is not in Debug output: {shown}"
        );
    }

    #[test]
    fn the_identity_center_integration_needs_a_role_arn_and_a_region_or_neither() {
        let with = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = [
                (revoker_env::ORGANIZATION_ID, "o-a1b2c3d4e5"),
                (revoker_env::OUTCOME_BUS, "cutoff-outcomes"),
            ]
            .iter()
            .chain(pairs)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            RevokerConfig::from_lookup(move |k| map.get(k).cloned())
        };
        assert_eq!(with(&[]).unwrap().identity_center, None);
        let on = with(&[
            (
                revoker_env::IDENTITY_CENTER_ROLE_ARN,
                "arn:aws:iam::123456789012:role/cutoff-identity-center",
            ),
            (revoker_env::IDENTITY_CENTER_REGION, "eu-west-1"),
        ])
        .unwrap();
        assert_eq!(
            on.identity_center,
            Some(IdentityCenterConfig {
                role_arn: "arn:aws:iam::123456789012:role/cutoff-identity-center".to_owned(),
                region: "eu-west-1".to_owned(),
                scp_id: None,
            })
        );
        let scp = with(&[
            (
                revoker_env::IDENTITY_CENTER_ROLE_ARN,
                "arn:aws:iam::123456789012:role/cutoff-identity-center",
            ),
            (revoker_env::IDENTITY_CENTER_REGION, "eu-west-1"),
            (revoker_env::IDENTITY_CENTER_SCP_ID, "p-cutoff0001"),
        ])
        .unwrap();
        assert_eq!(
            scp.identity_center.unwrap().scp_id.as_deref(),
            Some("p-cutoff0001")
        );
        for bad in [
            vec![(
                revoker_env::IDENTITY_CENTER_ROLE_ARN,
                "arn:aws:iam::123456789012:role/cutoff-identity-center",
            )],
            vec![(revoker_env::IDENTITY_CENTER_REGION, "eu-west-1")],
            vec![
                (
                    revoker_env::IDENTITY_CENTER_ROLE_ARN,
                    "arn:aws:iam::123:role/x",
                ),
                (revoker_env::IDENTITY_CENTER_REGION, "eu-west-1"),
            ],
            vec![
                (
                    revoker_env::IDENTITY_CENTER_ROLE_ARN,
                    "arn:aws:iam::123456789012:user/cutoff",
                ),
                (revoker_env::IDENTITY_CENTER_REGION, "eu-west-1"),
            ],
            vec![
                (
                    revoker_env::IDENTITY_CENTER_ROLE_ARN,
                    "arn:aws:iam::123456789012:role/cutoff-identity-center",
                ),
                (revoker_env::IDENTITY_CENTER_REGION, "Europe"),
            ],
            vec![(revoker_env::IDENTITY_CENTER_SCP_ID, "p-cutoff0001")],
            vec![
                (
                    revoker_env::IDENTITY_CENTER_ROLE_ARN,
                    "arn:aws:iam::123456789012:role/cutoff-identity-center",
                ),
                (revoker_env::IDENTITY_CENTER_REGION, "eu-west-1"),
                (revoker_env::IDENTITY_CENTER_SCP_ID, "p-FullAWSAccess"),
            ],
        ] {
            assert!(with(&bad).is_err(), "{bad:?}");
        }
    }
}
