//! The rules triage and routing apply, and the parsers every setting goes through.
//!
//! Values come from environment variables (Lambda) or flags (CLI), read through a
//! lookup function so that parsing stays pure; a bad value is an error naming the
//! variable, at start-up, never the hundredth invocation. The functions' own settings
//! (queues, tables, member role) are parsed by the application crate with these same
//! parsers.

use crate::event::Scope;
use crate::principal::{
    InvalidValue, NamePattern, Partition, PrincipalName, ProtectedArn, Protection, excerpt,
};

/// Default severity at or above which a GuardDuty finding revokes (GuardDuty "High").
pub const DEFAULT_REVOKE_SEVERITY: f64 = 7.0;
/// Default severity at or above which a finding alerts the owner (GuardDuty "Medium").
pub const DEFAULT_ALERT_SEVERITY: f64 = 4.0;
/// Default name of the role cutoff assumes in member accounts.
pub const DEFAULT_MEMBER_ROLE_NAME: &str = "cutoff-member";
/// Default cap of principals one Security Hub custom action may revoke.
pub const DEFAULT_MAX_PRINCIPALS_PER_ACTION: usize = 20;
/// Default cap of automatic revocations per account per hour.
pub const DEFAULT_MAX_REVOCATIONS_PER_ACCOUNT_HOUR: u32 = 25;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration {name} = {excerpt}: {why}")]
    Invalid {
        name: &'static str,
        excerpt: String,
        why: String,
    },
}

impl ConfigError {
    pub fn invalid(name: &'static str, value: &str, why: impl Into<String>) -> Self {
        ConfigError::Invalid {
            name,
            excerpt: excerpt(value),
            why: why.into(),
        }
    }

    pub fn from_value(name: &'static str, value: &str, err: &InvalidValue) -> Self {
        Self::invalid(name, value, err.to_string())
    }
}

/// The rules triage applies (DESIGN §4 defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct TriageConfig {
    /// Findings at or above this severity revoke.
    pub revoke_severity: f64,
    /// Findings at or above this severity (and below `revoke_severity`) alert.
    pub alert_severity: f64,
    /// Principals never revoked: the member role, cutoff's own roles by exact ARN, and
    /// whatever the deployer adds (break-glass roles, other stacks' roles).
    pub protection: Protection,
    /// Act on Security Hub *imported* findings (off: GuardDuty arrives directly, and
    /// other products' findings can be forged by anyone allowed BatchImportFindings).
    pub securityhub_imported: bool,
    /// Act on Security Hub's OCSF findings (`Findings Imported V2`); off by default,
    /// as imported ASFF findings are.
    pub securityhub_v2: bool,
    /// The products whose OCSF findings are acted on when `securityhub_v2` is on: by
    /// default GuardDuty's only.
    pub securityhub_v2_products: Vec<ProductV2>,
    /// CloudTrail API calls whose caller is revoked (opt-in; empty by default).
    pub cloudtrail_event_names: Vec<String>,
    /// The deployment's partition: an ARN of another one is refused, never mapped
    /// into ours.
    pub partition: Partition,
    /// The circuit breaker of custom actions: a Security Hub custom action naming more
    /// principals than this revokes none of them and alerts the security team.
    pub max_principals_per_action: usize,
    /// How much of a role an instance-credential finding denies when its session is
    /// the instance's own: that instance's sessions (`Session`, the default) or every
    /// session of the role (`Role`).
    pub instance_finding_scope: Scope,
    /// What a finding graded between the alert and the revoke thresholds becomes when
    /// it would otherwise be revoked: an alert (the default), or a revocation a person
    /// must approve ([`crate::approval`]).
    pub medium_findings: MediumFindings,
}

/// `CUTOFF_MEDIUM_FINDINGS`: what a medium-severity finding (at or above the alert
/// threshold, below the revoke threshold) about a principal cutoff could revoke
/// becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MediumFindings {
    /// Alert the owner and the security team; change nothing.
    #[default]
    Alert,
    /// Ask a person: queue the revocation as needing approval.
    Ask,
}

impl MediumFindings {
    pub fn as_str(self) -> &'static str {
        match self {
            MediumFindings::Alert => "alert",
            MediumFindings::Ask => "ask",
        }
    }

    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        match value.trim() {
            "" | "alert" => Ok(MediumFindings::Alert),
            "ask" => Ok(MediumFindings::Ask),
            _ => Err(ConfigError::invalid(
                env::MEDIUM_FINDINGS,
                value,
                "expected alert (alert only) or ask (a person approves the revocation)",
            )),
        }
    }
}

impl Default for TriageConfig {
    fn default() -> Self {
        Self {
            revoke_severity: DEFAULT_REVOKE_SEVERITY,
            alert_severity: DEFAULT_ALERT_SEVERITY,
            protection: Protection {
                member_role: PrincipalName::parse(DEFAULT_MEMBER_ROLE_NAME).ok(),
                ..Protection::default()
            },
            securityhub_imported: false,
            securityhub_v2: false,
            securityhub_v2_products: vec![ProductV2::guardduty()],
            cloudtrail_event_names: Vec::new(),
            partition: Partition::Aws,
            max_principals_per_action: DEFAULT_MAX_PRINCIPALS_PER_ACTION,
            instance_finding_scope: Scope::Session,
            medium_findings: MediumFindings::Alert,
        }
    }
}

/// A Security Hub (OCSF) product, named as the `productv2/<company>/<product>` tail of
/// its findings' `metadata.product.uid` (`arn:aws:securityhub:us-east-1::productv2/aws/guardduty`):
/// `aws/guardduty`. The uid, not `metadata.product.name`, is what Security Hub ties to
/// the integration that sent the finding; the name is free text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductV2(String);

impl ProductV2 {
    const PART_MAX: usize = 64;

    /// GuardDuty's findings: the one product acted on by default.
    pub fn guardduty() -> Self {
        Self("aws/guardduty".to_owned())
    }

    /// `company/product`, each part lowercase ASCII letters, digits and `-` (not first),
    /// 1 to 64 characters.
    pub fn parse(value: &str) -> Result<Self, String> {
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.len() <= Self::PART_MAX
                && !p.starts_with('-')
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        match value.split_once('/') {
            Some((company, product)) if part_ok(company) && part_ok(product) => {
                Ok(Self(value.to_owned()))
            }
            _ => Err(
                "expected company/product as in a finding's metadata.product.uid (…::productv2/aws/guardduty), lowercase"
                    .to_owned(),
            ),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `uid` is this product's uid in `partition`:
    /// `arn:<partition>:securityhub:<region>::productv2/<company>/<product>`, exactly
    /// (a product ARN has no account).
    pub fn is_uid(&self, uid: &str, partition: Partition) -> bool {
        let mut parts = uid.splitn(6, ':');
        let fields: [Option<&str>; 6] = std::array::from_fn(|_| parts.next());
        matches!(
            fields,
            [Some("arn"), Some(p), Some("securityhub"), Some(region), Some(""), Some(resource)]
                if p == partition.as_str()
                    && crate::chain::is_region_name(region)
                    && resource.strip_prefix("productv2/") == Some(self.0.as_str())
        )
    }
}

impl std::fmt::Display for ProductV2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Environment variable names.
pub mod env {
    pub const REVOKE_SEVERITY: &str = "CUTOFF_REVOKE_SEVERITY";
    pub const ALERT_SEVERITY: &str = "CUTOFF_ALERT_SEVERITY";
    pub const PROTECTED: &str = "CUTOFF_PROTECTED";
    pub const PROTECTED_ARNS: &str = "CUTOFF_PROTECTED_ARNS";
    pub const PARTITION: &str = "CUTOFF_PARTITION";
    pub const MAX_PRINCIPALS_PER_ACTION: &str = "CUTOFF_BREAKER_PER_ACTION";
    pub const MEMBER_ROLE_NAME: &str = "CUTOFF_MEMBER_ROLE_NAME";
    pub const SECURITYHUB_IMPORTED: &str = "CUTOFF_SECURITYHUB_IMPORTED";
    pub const SECURITYHUB_V2: &str = "CUTOFF_SECURITYHUB_V2";
    pub const SECURITYHUB_V2_PRODUCTS: &str = "CUTOFF_SECURITYHUB_V2_PRODUCTS";
    pub const CLOUDTRAIL_EVENTS: &str = "CUTOFF_CLOUDTRAIL_EVENTS";
    pub const INSTANCE_FINDING_SCOPE: &str = "CUTOFF_INSTANCE_FINDING_SCOPE";
    pub const MEDIUM_FINDINGS: &str = "CUTOFF_MEDIUM_FINDINGS";
}

impl TriageConfig {
    /// Reads the configuration from environment variables (through `lookup`, so tests
    /// need not touch the process environment). Unset variables take the defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some(v) = lookup(env::REVOKE_SEVERITY) {
            config.revoke_severity = parse_severity(env::REVOKE_SEVERITY, &v)?;
        }
        if let Some(v) = lookup(env::ALERT_SEVERITY) {
            config.alert_severity = parse_severity(env::ALERT_SEVERITY, &v)?;
        }
        config.protection = protection_from_lookup(&lookup)?;
        if let Some(v) = lookup(env::PARTITION).filter(|v| !v.trim().is_empty()) {
            config.partition = Partition::parse(v.trim())
                .map_err(|e| ConfigError::from_value(env::PARTITION, &v, &e))?;
        }
        if let Some(v) = lookup(env::MAX_PRINCIPALS_PER_ACTION) {
            config.max_principals_per_action = v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| {
                    ConfigError::invalid(
                        env::MAX_PRINCIPALS_PER_ACTION,
                        &v,
                        "expected the most principals one custom action may revoke, 1 to 10000",
                    )
                })?;
        }
        if let Some(v) = lookup(env::SECURITYHUB_IMPORTED) {
            config.securityhub_imported = parse_bool(env::SECURITYHUB_IMPORTED, &v)?;
        }
        if let Some(v) = lookup(env::SECURITYHUB_V2) {
            config.securityhub_v2 = parse_bool(env::SECURITYHUB_V2, &v)?;
        }
        if let Some(v) = lookup(env::SECURITYHUB_V2_PRODUCTS) {
            config.securityhub_v2_products = split_list(&v)
                .map(|item| {
                    ProductV2::parse(item).map_err(|why| {
                        ConfigError::invalid(env::SECURITYHUB_V2_PRODUCTS, item, why)
                    })
                })
                .collect::<Result<_, _>>()?;
            if config.securityhub_v2_products.is_empty() {
                return Err(ConfigError::invalid(
                    env::SECURITYHUB_V2_PRODUCTS,
                    &v,
                    "name at least one product (company/product, such as aws/guardduty)",
                ));
            }
        }
        if let Some(v) = lookup(env::INSTANCE_FINDING_SCOPE) {
            config.instance_finding_scope = match v.trim() {
                "session" => Scope::Session,
                "role" => Scope::Role,
                _ => {
                    return Err(ConfigError::invalid(
                        env::INSTANCE_FINDING_SCOPE,
                        &v,
                        "expected session (deny the instance's sessions) or role (every session of the role)",
                    ));
                }
            };
        }
        if let Some(v) = lookup(env::CLOUDTRAIL_EVENTS) {
            for item in split_list(&v) {
                config.cloudtrail_event_names.push(parse_event_name(item)?);
            }
        }
        if let Some(v) = lookup(env::MEDIUM_FINDINGS) {
            config.medium_findings = MediumFindings::parse(&v)?;
        }
        config.check()?;
        Ok(config)
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Checks the invariants between fields (after flags have been applied too).
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.alert_severity > self.revoke_severity {
            return Err(ConfigError::invalid(
                env::ALERT_SEVERITY,
                &self.alert_severity.to_string(),
                format!(
                    "the alert threshold must not be above the revoke threshold {}",
                    self.revoke_severity
                ),
            ));
        }
        Ok(())
    }

    /// Why the target must never be revoked, if it must not.
    pub fn is_protected(&self, target: &crate::principal::Target) -> Option<String> {
        self.protection.reason_for(target)
    }

    pub fn cloudtrail_opted_in(&self, event_name: &str) -> bool {
        self.cloudtrail_event_names.iter().any(|n| n == event_name)
    }
}

/// The member role (`CUTOFF_MEMBER_ROLE_NAME`, by exact name in every account), the
/// exact ARNs of `CUTOFF_PROTECTED_ARNS` (the deployment's own roles, set by the
/// template) and the names or `prefix*` patterns of `CUTOFF_PROTECTED`.
pub fn protection_from_lookup(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Protection, ConfigError> {
    let member_role = match lookup(env::MEMBER_ROLE_NAME) {
        Some(v) => PrincipalName::parse(v.trim())
            .map_err(|e| ConfigError::from_value(env::MEMBER_ROLE_NAME, &v, &e))?,
        None => PrincipalName::parse(DEFAULT_MEMBER_ROLE_NAME).map_err(|e| {
            ConfigError::from_value(env::MEMBER_ROLE_NAME, DEFAULT_MEMBER_ROLE_NAME, &e)
        })?,
    };
    let mut protection = Protection {
        member_role: Some(member_role),
        ..Protection::default()
    };
    if let Some(v) = lookup(env::PROTECTED_ARNS) {
        for item in split_list(&v) {
            protection.arns.push(
                ProtectedArn::parse(item)
                    .map_err(|e| ConfigError::from_value(env::PROTECTED_ARNS, item, &e))?,
            );
        }
    }
    if let Some(v) = lookup(env::PROTECTED) {
        for item in split_list(&v) {
            protection.patterns.push(
                NamePattern::parse(item)
                    .map_err(|e| ConfigError::from_value(env::PROTECTED, item, &e))?,
            );
        }
    }
    Ok(protection)
}

/// Parses a severity threshold: a number from 0 to 10 (GuardDuty's scale).
pub fn parse_severity(name: &'static str, value: &str) -> Result<f64, ConfigError> {
    let n: f64 = value
        .trim()
        .parse()
        .map_err(|_| ConfigError::invalid(name, value, "expected a number from 0 to 10"))?;
    if !(0.0..=10.0).contains(&n) {
        return Err(ConfigError::invalid(
            name,
            value,
            "expected a number from 0 to 10",
        ));
    }
    Ok(n)
}

pub fn parse_bool(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        _ => Err(ConfigError::invalid(name, value, "expected true or false")),
    }
}

/// Parses a CloudTrail event name such as `StopLogging`.
pub fn parse_event_name(value: &str) -> Result<String, ConfigError> {
    if value.is_empty() || value.len() > 128 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ConfigError::invalid(
            env::CLOUDTRAIL_EVENTS,
            value,
            "expected CloudTrail event names such as StopLogging, separated by commas",
        ));
    }
    Ok(value.to_owned())
}

/// The items of a comma-separated list, trimmed, empty ones skipped.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// What the notifier needs: where messages go, and who owns what.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifierConfig {
    /// The security team's topic: every outcome is published here.
    pub security_topic: String,
    /// Team → topic, for principals whose `cutoff:owner` tag (or owner pattern) names
    /// the team but which carry no `cutoff:notify` topic of their own.
    pub team_topics: std::collections::BTreeMap<String, String>,
    /// Name pattern → team, for principals without a `cutoff:owner` tag. The most
    /// specific match wins: an exact name before any prefix, a longer prefix before a
    /// shorter one; between equals, the first listed.
    pub owner_patterns: Vec<(NamePattern, String)>,
    /// Set the workflow status of Security Hub findings that triggered a request to
    /// `NOTIFIED`, with a note saying what cutoff did.
    pub update_security_hub: bool,
    /// Team topics that name no topic the notifier may use: those teams are not
    /// notified, and every message to the security team says so.
    pub problems: Vec<String>,
}

pub mod notifier_env {
    pub const SECURITY_TOPIC: &str = "CUTOFF_SECURITY_TOPIC_ARN";
    pub const TEAM_TOPICS: &str = "CUTOFF_TEAM_TOPICS";
    pub const NOTIFY_TOPICS: &str = "CUTOFF_NOTIFY_TOPIC_ARNS";
    pub const OWNER_PATTERNS: &str = "CUTOFF_OWNER_PATTERNS";
    pub const UPDATE_SECURITY_HUB: &str = "CUTOFF_UPDATE_SECURITY_HUB";
}

impl NotifierConfig {
    /// A configuration that sends everything to `security_topic` only.
    pub fn new(security_topic: impl Into<String>) -> Self {
        Self {
            security_topic: security_topic.into(),
            team_topics: std::collections::BTreeMap::new(),
            owner_patterns: Vec::new(),
            update_security_hub: true,
            problems: Vec::new(),
        }
    }

    /// Reads `CUTOFF_SECURITY_TOPIC_ARN` (required), `CUTOFF_TEAM_TOPICS`
    /// (`team=topic,…`), `CUTOFF_OWNER_PATTERNS` (`pattern=team,pattern=team`)
    /// and `CUTOFF_UPDATE_SECURITY_HUB` (default true).
    ///
    /// `CUTOFF_NOTIFY_TOPIC_ARNS` lists the topics the notifier may publish to (the
    /// template's grant). When it is set, a team's topic is one of them, named by its
    /// ARN or by its name alone (`payments=payments-alerts`), so that a deployer enters
    /// each ARN once; a name that matches none, or two, is refused at start-up.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        use notifier_env::*;
        let security_topic = match lookup(SECURITY_TOPIC) {
            Some(v) => parse_topic_arn(SECURITY_TOPIC, v.trim())?,
            None => {
                return Err(ConfigError::invalid(
                    SECURITY_TOPIC,
                    "",
                    "required: the SNS topic ARN of the security team",
                ));
            }
        };
        let mut config = Self::new(security_topic);
        let allowed: Option<Vec<String>> = match lookup(NOTIFY_TOPICS) {
            Some(v) => Some(
                split_list(&v)
                    .map(|arn| parse_topic_arn(NOTIFY_TOPICS, arn))
                    .collect::<Result<_, _>>()?,
            ),
            None => None,
        };
        if let Some(v) = lookup(TEAM_TOPICS) {
            for item in split_list(&v) {
                let (team, topic) = split_pair(TEAM_TOPICS, item, "team=topic")?;
                let team = parse_team(TEAM_TOPICS, team)?;
                let topic = match team_topic_arn(item, topic, allowed.as_deref())? {
                    Ok(topic) => topic,
                    Err(problem) => {
                        config.problems.push(problem);
                        continue;
                    }
                };
                if config.team_topics.insert(team, topic).is_some() {
                    return Err(ConfigError::invalid(
                        TEAM_TOPICS,
                        item,
                        "the team is listed twice",
                    ));
                }
            }
        }
        if let Some(v) = lookup(OWNER_PATTERNS) {
            for item in split_list(&v) {
                let (pattern, team) = split_pair(OWNER_PATTERNS, item, "name-pattern=team")?;
                let pattern = NamePattern::parse(pattern)
                    .map_err(|e| ConfigError::from_value(OWNER_PATTERNS, item, &e))?;
                let team = parse_team(OWNER_PATTERNS, team)?;
                if config.owner_patterns.iter().any(|(p, _)| *p == pattern) {
                    return Err(ConfigError::invalid(
                        OWNER_PATTERNS,
                        item,
                        "the pattern is listed twice",
                    ));
                }
                config.owner_patterns.push((pattern, team));
            }
        }
        if let Some(v) = lookup(UPDATE_SECURITY_HUB) {
            config.update_security_hub = match v.trim() {
                "" => true,
                other => parse_bool(UPDATE_SECURITY_HUB, other)?,
            };
        }
        Ok(config)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The topic configured for `team`.
    pub fn team_topic(&self, team: &str) -> Option<&str> {
        self.team_topics.get(team).map(String::as_str)
    }

    /// The team an owner pattern gives `name`: the most specific matching pattern.
    pub fn pattern_owner(&self, name: &PrincipalName) -> Option<&str> {
        let specificity = |p: &NamePattern| match p.as_str().strip_suffix('*') {
            Some(prefix) => (false, prefix.len()),
            None => (true, p.as_str().len()),
        };
        let mut best: Option<&(NamePattern, String)> = None;
        for entry in self.owner_patterns.iter().filter(|(p, _)| p.matches(name)) {
            if best.is_none_or(|b| specificity(&entry.0) > specificity(&b.0)) {
                best = Some(entry);
            }
        }
        best.map(|(_, team)| team.as_str())
    }
}

pub fn split_pair<'a>(
    name: &'static str,
    item: &'a str,
    shape: &str,
) -> Result<(&'a str, &'a str), ConfigError> {
    match item.split_once('=') {
        Some((left, right)) if !left.trim().is_empty() && !right.trim().is_empty() => {
            Ok((left.trim(), right.trim()))
        }
        _ => Err(ConfigError::invalid(
            name,
            item,
            format!("expected {shape}, separated by commas"),
        )),
    }
}

/// A team name: `[A-Za-z0-9_.-]{1,64}` (what goes into the `cutoff:owner` tag).
pub fn parse_team(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(ConfigError::invalid(
            name,
            value,
            "a team name has 1 to 64 characters from A-Z a-z 0-9 _ . -",
        ))
    }
}

/// A team's topic: an ARN, or (with the allow list) the name of one of its topics.
/// A malformed entry is an error (the deployment is wrong); a well-formed one that
/// names no topic the notifier may use is a problem (the inner `Err`): that team goes
/// unnotified and every message says so, rather than the notifier not starting and
/// nobody hearing of anything.
fn team_topic_arn(
    item: &str,
    topic: &str,
    allowed: Option<&[String]>,
) -> Result<Result<String, String>, ConfigError> {
    use notifier_env::{NOTIFY_TOPICS, TEAM_TOPICS};
    let Some(allowed) = allowed else {
        return parse_topic_arn(TEAM_TOPICS, topic).map(Ok);
    };
    let problem = |why: String| Ok(Err(format!("{TEAM_TOPICS} `{}`: {why}", excerpt(item))));
    if topic.starts_with("arn:") {
        let arn = parse_topic_arn(TEAM_TOPICS, topic)?;
        return if allowed.contains(&arn) {
            Ok(Ok(arn))
        } else {
            problem(format!(
                "the topic is not in {NOTIFY_TOPICS}: the notifier may not publish to it"
            ))
        };
    }
    let valid_name = !topic.is_empty()
        && topic.len() <= 256
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_name {
        return Err(ConfigError::invalid(
            TEAM_TOPICS,
            item,
            "expected team=topic-name or team=topic-arn",
        ));
    }
    let named: Vec<&String> = allowed
        .iter()
        .filter(|arn| arn.rsplit(':').next() == Some(topic))
        .collect();
    match named.as_slice() {
        [arn] => Ok(Ok((*arn).clone())),
        [] => problem(format!("no topic of that name in {NOTIFY_TOPICS}")),
        _ => problem(format!(
            "two topics of that name in {NOTIFY_TOPICS}: give the ARN"
        )),
    }
}

pub fn parse_topic_arn(name: &'static str, value: &str) -> Result<String, ConfigError> {
    if crate::principal::is_sns_topic_arn(value) {
        Ok(value.to_owned())
    } else {
        Err(ConfigError::invalid(
            name,
            value,
            "expected an SNS topic ARN such as arn:aws:sns:us-east-1:111122223333:security-alerts",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::Account;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<TriageConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TriageConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn medium_findings_alert_unless_the_deployment_says_ask() {
        assert_eq!(from(&[]).unwrap().medium_findings, MediumFindings::Alert);
        for (value, expected) in [
            ("alert", MediumFindings::Alert),
            ("", MediumFindings::Alert),
            ("ask", MediumFindings::Ask),
            (" ask ", MediumFindings::Ask),
        ] {
            let config = from(&[(env::MEDIUM_FINDINGS, value)]).unwrap();
            assert_eq!(config.medium_findings, expected, "{value:?}");
        }
        for bad in ["Ask", "revoke", "yes", "approve"] {
            let err = from(&[(env::MEDIUM_FINDINGS, bad)]).unwrap_err();
            assert!(err.to_string().contains("CUTOFF_MEDIUM_FINDINGS"), "{err}");
        }
        assert_eq!(MediumFindings::Ask.as_str(), "ask");
    }

    #[test]
    fn defaults_match_the_design() {
        let config = from(&[]).unwrap();
        assert_eq!(config.revoke_severity, 7.0);
        assert_eq!(config.alert_severity, 4.0);
        assert!(!config.securityhub_imported);
        assert!(config.cloudtrail_event_names.is_empty());
        assert!(
            config
                .is_protected(&role("111122223333", "cutoff-member"))
                .is_some()
        );
        assert!(
            config
                .is_protected(&role("111122223333", "payments-api"))
                .is_none()
        );
        assert_eq!(config.partition, Partition::Aws);
        assert_eq!(
            config.max_principals_per_action,
            DEFAULT_MAX_PRINCIPALS_PER_ACTION
        );
    }

    fn role(account: &str, name: &str) -> crate::principal::Target {
        crate::principal::Target::new(
            crate::principal::TargetKind::Role,
            Account::parse(account).unwrap(),
            PrincipalName::parse(name).unwrap(),
        )
    }

    #[test]
    fn a_role_named_like_cutoff_is_not_protected_by_its_name() {
        // Anyone allowed iam:CreateRole can choose a name: no prefix protects.
        let config = from(&[]).unwrap();
        for name in [
            "cutoff-backdoor",
            "cutoff-revoker",
            "cutoff-us-east-1-revoker",
        ] {
            assert!(
                config.is_protected(&role("111122223333", name)).is_none(),
                "{name}"
            );
        }
    }

    #[test]
    fn cutoffs_own_roles_are_protected_by_exact_arn_in_their_account_only() {
        let config = from(&[(
            env::PROTECTED_ARNS,
            "arn:aws:iam::999988887777:role/cutoff-us-east-1-revoker, arn:aws:iam::999988887777:user/ops/break-glass",
        )])
        .unwrap();
        assert!(
            config
                .is_protected(&role("999988887777", "cutoff-us-east-1-revoker"))
                .is_some()
        );
        assert!(
            config
                .is_protected(&role("999988887777", "Cutoff-US-East-1-Revoker"))
                .is_some(),
            "IAM names ignore case"
        );
        assert!(
            config
                .is_protected(&role("111122223333", "cutoff-us-east-1-revoker"))
                .is_none(),
            "the same name in another account is another role"
        );
        let user = crate::principal::Target::new(
            crate::principal::TargetKind::User,
            Account::parse("999988887777").unwrap(),
            PrincipalName::parse("break-glass").unwrap(),
        );
        assert!(config.is_protected(&user).is_some());
        assert!(
            config
                .is_protected(&role("999988887777", "break-glass"))
                .is_none(),
            "a role is not the user of the same name"
        );
        for bad in [
            "arn:aws:iam::999988887777:role/cutoff-*",
            "arn:aws:iam::999988887777:instance-profile/x",
            "arn:aws:sts::999988887777:assumed-role/r/s",
            "cutoff-revoker",
        ] {
            let err = from(&[(env::PROTECTED_ARNS, bad)]).unwrap_err().to_string();
            assert!(err.contains(env::PROTECTED_ARNS), "{bad}: {err}");
        }
    }

    #[test]
    fn variables_override_defaults_and_self_protection_stays() {
        let config = from(&[
            (env::REVOKE_SEVERITY, "8.5"),
            (env::ALERT_SEVERITY, "2"),
            (env::PROTECTED, "break-glass, admin-*"),
            (env::MEMBER_ROLE_NAME, "SecurityResponder"),
            (env::SECURITYHUB_IMPORTED, "true"),
            (env::CLOUDTRAIL_EVENTS, "StopLogging,DeleteTrail"),
        ])
        .unwrap();
        assert_eq!(config.revoke_severity, 8.5);
        assert_eq!(config.alert_severity, 2.0);
        assert!(config.securityhub_imported);
        assert!(config.cloudtrail_opted_in("DeleteTrail"));
        for protected in ["break-glass", "admin-x", "SecurityResponder"] {
            assert!(
                config
                    .is_protected(&role("111122223333", protected))
                    .is_some(),
                "{protected}"
            );
        }
    }

    #[test]
    fn bad_values_fail_with_the_variable_named() {
        for (var, value) in [
            (env::REVOKE_SEVERITY, "high"),
            (env::REVOKE_SEVERITY, "11"),
            (env::ALERT_SEVERITY, "-1"),
            (env::PROTECTED, "bad/name"),
            (env::MEMBER_ROLE_NAME, "a b"),
            (env::SECURITYHUB_IMPORTED, "maybe"),
            (env::CLOUDTRAIL_EVENTS, "Stop Logging"),
            (env::PARTITION, "aws-mars"),
            (env::MAX_PRINCIPALS_PER_ACTION, "0"),
        ] {
            let err = from(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{err}");
        }
    }

    #[test]
    fn security_hub_v2_is_off_by_default_and_takes_guardduty_only() {
        let config = from(&[]).unwrap();
        assert!(!config.securityhub_v2);
        assert_eq!(config.securityhub_v2_products, vec![ProductV2::guardduty()]);
        let config = from(&[
            (env::SECURITYHUB_V2, "true"),
            (
                env::SECURITYHUB_V2_PRODUCTS,
                "aws/guardduty, acme-corp/threat-watch",
            ),
        ])
        .unwrap();
        assert!(config.securityhub_v2);
        let names: Vec<&str> = config
            .securityhub_v2_products
            .iter()
            .map(ProductV2::as_str)
            .collect();
        assert_eq!(names, ["aws/guardduty", "acme-corp/threat-watch"]);
        for bad in [
            "",
            " , ",
            "guardduty",
            "aws/GuardDuty",
            "aws/guard duty",
            "aws/guardduty/x",
            "-aws/guardduty",
            "aws/",
            "/guardduty",
        ] {
            let err = from(&[(env::SECURITYHUB_V2_PRODUCTS, bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(env::SECURITYHUB_V2_PRODUCTS), "{bad}: {err}");
        }
        assert!(from(&[(env::SECURITYHUB_V2, "maybe")]).is_err());
    }

    #[test]
    fn a_v2_product_matches_only_its_own_uid_in_the_partition() {
        let guardduty = ProductV2::guardduty();
        for uid in [
            "arn:aws:securityhub:us-east-1::productv2/aws/guardduty",
            "arn:aws:securityhub:eu-central-2::productv2/aws/guardduty",
        ] {
            assert!(guardduty.is_uid(uid, Partition::Aws), "{uid}");
        }
        for (uid, partition) in [
            // Another partition than the deployment's.
            (
                "arn:aws:securityhub:us-east-1::productv2/aws/guardduty",
                Partition::AwsCn,
            ),
            (
                "arn:aws-cn:securityhub:cn-north-1::productv2/aws/guardduty",
                Partition::Aws,
            ),
            // ASFF's product ARN, an account's own product, a longer or other tail.
            (
                "arn:aws:securityhub:us-east-1::product/aws/guardduty",
                Partition::Aws,
            ),
            (
                "arn:aws:securityhub:us-east-1:111122223333:productv2/aws/guardduty",
                Partition::Aws,
            ),
            (
                "arn:aws:securityhub:us-east-1::productv2/aws/guardduty/x",
                Partition::Aws,
            ),
            (
                "arn:aws:securityhub:us-east-1::productv2/aws/guardduty-x",
                Partition::Aws,
            ),
            (
                "arn:aws:securityhub:us-east-1::productv2/acme/guardduty",
                Partition::Aws,
            ),
            (
                "arn:aws:securityhub:not-a-region::productv2/aws/guardduty",
                Partition::Aws,
            ),
            (
                "arn:aws:guardduty:us-east-1::productv2/aws/guardduty",
                Partition::Aws,
            ),
            ("GuardDuty", Partition::Aws),
            ("", Partition::Aws),
        ] {
            assert!(!guardduty.is_uid(uid, partition), "{uid} in {partition:?}");
        }
    }

    #[test]
    fn alert_threshold_above_revoke_threshold_is_refused() {
        assert!(from(&[(env::ALERT_SEVERITY, "8")]).is_err());
    }

    const SECURITY: &str = "arn:aws:sns:us-east-1:999988887777:cutoff-security";

    fn notifier(vars: &[(&str, &str)]) -> Result<NotifierConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NotifierConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn given_only_the_security_topic_when_read_then_no_teams_and_security_hub_updates_on() {
        let config = notifier(&[(notifier_env::SECURITY_TOPIC, SECURITY)]).unwrap();
        assert_eq!(config, NotifierConfig::new(SECURITY));
        assert!(config.update_security_hub);
    }

    #[test]
    fn given_no_security_topic_when_read_then_start_up_fails_naming_the_variable() {
        let err = notifier(&[]).unwrap_err().to_string();
        assert!(err.contains(notifier_env::SECURITY_TOPIC), "{err}");
    }

    #[test]
    fn given_teams_and_patterns_when_read_then_topics_and_owners_resolve() {
        let config = notifier(&[
            (notifier_env::SECURITY_TOPIC, SECURITY),
            (
                notifier_env::TEAM_TOPICS,
                "payments=arn:aws:sns:us-east-1:111122223333:payments-alerts, ledger.core=arn:aws:sns:eu-west-1:111122223333:ledger",
            ),
            (
                notifier_env::OWNER_PATTERNS,
                "payments-*=payments,payments-ledger=ledger.core,pay*=finance,ledger=ledger.core",
            ),
            (notifier_env::UPDATE_SECURITY_HUB, "false"),
        ])
        .unwrap();
        assert_eq!(
            config.team_topic("payments"),
            Some("arn:aws:sns:us-east-1:111122223333:payments-alerts")
        );
        assert_eq!(config.team_topic("finance"), None);
        let name = |s| PrincipalName::parse(s).unwrap();
        assert_eq!(
            config.pattern_owner(&name("payments-api")),
            Some("payments")
        );
        assert_eq!(
            config.pattern_owner(&name("payments-ledger")),
            Some("ledger.core"),
            "an exact name beats a prefix"
        );
        assert_eq!(
            config.pattern_owner(&name("payroll")),
            Some("finance"),
            "a shorter prefix still matches what the longer one does not"
        );
        assert_eq!(config.pattern_owner(&name("ledger")), Some("ledger.core"));
        assert_eq!(config.pattern_owner(&name("reports")), None);
        assert!(!config.update_security_hub);
    }

    #[test]
    fn a_team_topic_is_named_once_in_the_allow_list_and_by_name_in_the_teams() {
        const PAYMENTS: &str = "arn:aws:sns:us-east-1:111122223333:payments-alerts";
        const LEDGER_EU: &str = "arn:aws:sns:eu-west-1:111122223333:ledger";
        const LEDGER_US: &str = "arn:aws:sns:us-east-1:444455556666:ledger";
        let allowed = format!("{PAYMENTS},{LEDGER_EU},{LEDGER_US}");
        let config = notifier(&[
            (notifier_env::SECURITY_TOPIC, SECURITY),
            (notifier_env::NOTIFY_TOPICS, &allowed),
            (
                notifier_env::TEAM_TOPICS,
                &format!("payments=payments-alerts,ledger={LEDGER_EU}"),
            ),
        ])
        .unwrap();
        assert_eq!(config.team_topic("payments"), Some(PAYMENTS));
        assert_eq!(config.team_topic("ledger"), Some(LEDGER_EU));
        // A well-formed entry that names no usable topic leaves that team unmapped
        // and is reported, so that the notifier still starts and the security team
        // still hears (with the problem in every message); the other teams are kept.
        for (teams, why) in [
            ("payments=unknown-topic", "no topic of that name"),
            ("ledger=ledger", "two topics of that name"),
            (
                "ops=arn:aws:sns:us-east-1:999988887777:elsewhere",
                "not in CUTOFF_NOTIFY_TOPIC_ARNS",
            ),
        ] {
            let config = notifier(&[
                (notifier_env::SECURITY_TOPIC, SECURITY),
                (notifier_env::NOTIFY_TOPICS, &allowed),
                (
                    notifier_env::TEAM_TOPICS,
                    &format!("{teams},reports=payments-alerts"),
                ),
            ])
            .unwrap();
            let team = teams.split('=').next().unwrap();
            assert_eq!(config.team_topic(team), None, "{teams}");
            assert_eq!(config.team_topic("reports"), Some(PAYMENTS));
            assert_eq!(config.problems.len(), 1, "{:?}", config.problems);
            assert!(config.problems[0].contains(why), "{:?}", config.problems);
            assert!(config.problems[0].contains(notifier_env::TEAM_TOPICS));
        }
        // A malformed entry is still refused outright.
        assert!(
            notifier(&[
                (notifier_env::SECURITY_TOPIC, SECURITY),
                (notifier_env::NOTIFY_TOPICS, &allowed),
                (notifier_env::TEAM_TOPICS, "payments=pay ments"),
            ])
            .is_err()
        );
        // Without the allow list (the CLI, a local run) a team's topic is an ARN.
        assert!(
            notifier(&[
                (notifier_env::SECURITY_TOPIC, SECURITY),
                (notifier_env::TEAM_TOPICS, "payments=payments-alerts"),
            ])
            .is_err()
        );
        assert!(
            notifier(&[
                (notifier_env::SECURITY_TOPIC, SECURITY),
                (notifier_env::NOTIFY_TOPICS, "not-an-arn"),
            ])
            .is_err()
        );
    }

    #[test]
    fn given_bad_notifier_values_when_read_then_the_error_names_the_variable() {
        for (var, value) in [
            (
                notifier_env::SECURITY_TOPIC,
                "arn:aws:sqs:us-east-1:999988887777:q",
            ),
            (notifier_env::SECURITY_TOPIC, "security"),
            (notifier_env::TEAM_TOPICS, "payments"),
            (
                notifier_env::TEAM_TOPICS,
                "pay ments=arn:aws:sns:us-east-1:111122223333:p",
            ),
            (notifier_env::TEAM_TOPICS, "payments=https://example.com"),
            (
                notifier_env::TEAM_TOPICS,
                "a=arn:aws:sns:us-east-1:111122223333:p,a=arn:aws:sns:us-east-1:111122223333:q",
            ),
            (notifier_env::OWNER_PATTERNS, "payments-*"),
            (notifier_env::OWNER_PATTERNS, "pay*ments=payments"),
            (notifier_env::OWNER_PATTERNS, "payments-*=pay/ments"),
            (notifier_env::OWNER_PATTERNS, "a=x,a=y"),
            (notifier_env::UPDATE_SECURITY_HUB, "sometimes"),
        ] {
            let mut vars = vec![(notifier_env::SECURITY_TOPIC, SECURITY)];
            vars.retain(|(k, _)| *k != var);
            vars.push((var, value));
            let err = notifier(&vars).unwrap_err().to_string();
            assert!(err.contains(var), "{var}={value}: {err}");
        }
    }
}
