//! Triage: from one event to decisions (`revoke`, `alert`, `ignore`). Pure.
//!
//! The output is the stable triage contract:
//! `{"source": …, "decisions": [{"decision", "reason", "finding": {…}|null, "target": {…}|null}]}`.
//! Every input yields at least one decision, so an operator always sees why nothing
//! happened. Invalid input (a bad account id, a name IAM would refuse, a malformed
//! finding or request) yields `ignore` with the reason, is flagged as invalid, and
//! never yields `revoke`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Scope;
use crate::event::{
    self, AsffFinding, CloudTrailEvent, Envelope, Event, EventError, FindingFormat,
    GuardDutyFinding, Malformed, ManualAction, ManualRequest, ParsedEvent, SecurityHubOrigin,
};
use crate::principal::{
    AccessKeyId, Account, InvalidValue, Partition, PrincipalArn, PrincipalName, PrincipalResource,
    SessionName, Target, TargetKind, UniqueId, excerpt, root_name,
};
use crate::settings::TriageConfig;

/// Where the input came from: a decision's source, and an outcome's
/// `trigger.source`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    GuardDuty,
    SecurityHub,
    CloudTrail,
    Manual,
    /// The sweeper's schedule (or an operator's sweep).
    Schedule,
    /// The follow-up of a revocation: a link of the stolen credential's chain, found
    /// in CloudTrail (the follow-up of a revocation). Never queued.
    Chain,
    /// A request-queue message that is not a request at all: it came through the
    /// queue, from whom it does not say.
    Queue,
    #[default]
    Unknown,
}

impl Source {
    /// The name outcomes and logs carry (`trigger.source`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::GuardDuty => "guardduty",
            Source::SecurityHub => "securityhub",
            Source::CloudTrail => "cloudtrail",
            Source::Manual => "manual",
            Source::Schedule => "schedule",
            Source::Chain => "chain",
            Source::Queue => "queue",
            Source::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Apply the deny.
    Revoke,
    /// A revocation a person must approve first (a medium-severity finding with
    /// `CUTOFF_MEDIUM_FINDINGS=ask`): queued as needing approval, nothing written until
    /// someone approves it.
    Ask,
    /// Tell the owner and the security team; change nothing.
    Alert,
    /// Nothing to do.
    Ignore,
}

/// The finding a decision is about, as the contract shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingRef {
    pub id: String,
    #[serde(rename = "type")]
    pub finding_type: Option<String>,
    pub severity: Option<f64>,
    pub sample: bool,
}

/// What the revoker needs beyond the contract fields; not part of the triage JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// When the finding was last updated (deduplication of re-emitted findings).
    pub updated_at: Option<DateTime<Utc>>,
    /// When the activity in the finding was first seen (`eventFirstSeen`): a session
    /// is issued before it is first used, so an existing cutoff after this covers it.
    pub first_activity: Option<DateTime<Utc>>,
    /// The principal's unique id (`AROA…`, `AIDA…`) when the finding names it: the
    /// revoker writes only if IAM's principal of that name still has this id.
    pub unique_id: Option<UniqueId>,
    /// The validated manual request, when the input was one.
    pub manual: Option<ManualRequest>,
    /// The Security Hub product that reported the finding (for `BatchUpdateFindings`).
    pub product_arn: Option<String>,
    /// The format of a Security Hub finding, which says how to update it (None:
    /// ASFF, or not a Security Hub finding).
    pub finding_format: Option<FindingFormat>,
    /// The Security Hub custom action that sent the finding, when one did.
    pub custom_action: Option<String>,
    /// How much of the principal a revocation denies: every session (`Role`), or only
    /// the sessions of the instance an instance-credential finding is about
    /// ([`instance_scope`]).
    pub scope: Scope,
    /// The region where the activity was seen (a region name, else None): the
    /// follow-up reads regional STS calls there.
    pub activity_region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub decision: Verdict,
    pub reason: String,
    pub finding: Option<FindingRef>,
    pub target: Option<Target>,
    /// Set when the decision is `ignore` because the input was invalid.
    #[serde(skip)]
    pub invalid: Option<String>,
    #[serde(skip)]
    pub evidence: Evidence,
}

impl Decision {
    fn new(decision: Verdict, reason: impl Into<String>) -> Self {
        Self {
            decision,
            reason: reason.into(),
            finding: None,
            target: None,
            invalid: None,
            evidence: Evidence::default(),
        }
    }

    fn ignore(reason: impl Into<String>) -> Self {
        Self::new(Verdict::Ignore, reason)
    }

    /// An input refused whole (a duplicate key, a payload intake must not act on).
    pub fn refused(message: impl Into<String>) -> Self {
        Self::invalid(message)
    }

    fn invalid(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            invalid: Some(message.clone()),
            ..Self::ignore(format!("invalid input: {message}"))
        }
    }

    fn with_finding(mut self, finding: Option<FindingRef>) -> Self {
        self.finding = finding;
        self
    }

    fn with_target(mut self, target: Option<Target>) -> Self {
        self.target = target;
        self
    }

    fn with_evidence(mut self, evidence: Evidence) -> Self {
        self.evidence = evidence;
        self
    }
}

/// The result of triaging one input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Triage {
    pub source: Source,
    pub decisions: Vec<Decision>,
}

impl Triage {
    /// Messages of the decisions that were made because the input was invalid.
    pub fn invalid_inputs(&self) -> impl Iterator<Item = &str> {
        self.decisions.iter().filter_map(|d| d.invalid.as_deref())
    }

    pub fn to_json(&self) -> serde_json::Value {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Triages raw bytes. Only unreadable input (empty, not JSON, too large) is an error.
pub fn triage_bytes(bytes: &[u8], config: &TriageConfig) -> Result<Triage, EventError> {
    Ok(triage(&event::parse(bytes)?, config))
}

/// Triages a recognised event.
pub fn triage(parsed: &ParsedEvent, config: &TriageConfig) -> Triage {
    match &parsed.event {
        Event::GuardDuty(finding) => Triage {
            source: Source::GuardDuty,
            decisions: match finding {
                Ok(f) if f.is_attack_sequence() => attack_sequence(f, config),
                Ok(f) => vec![guardduty(f, config)],
                Err(m) => vec![Decision::invalid(m.0.clone())],
            },
        },
        Event::SecurityHub { origin, findings } => Triage {
            source: Source::SecurityHub,
            decisions: security_hub(origin, findings, config),
        },
        Event::SecurityHubOcsf { findings } => Triage {
            source: Source::SecurityHub,
            decisions: security_hub_ocsf(findings, config),
        },
        Event::CloudTrail(record) => Triage {
            source: Source::CloudTrail,
            decisions: vec![match record {
                Ok(r) => cloudtrail(r, parsed.envelope.as_ref(), config),
                Err(m) => Decision::invalid(m.0.clone()),
            }],
        },
        Event::MaybeForged { what } => Triage {
            source: Source::Unknown,
            decisions: vec![Decision::ignore(format!("not acted on: {what}"))],
        },
        Event::Scheduled => Triage {
            source: Source::Schedule,
            decisions: vec![Decision::ignore(
                "scheduled event: sweeps are run by the sweeper, not triaged",
            )],
        },
        Event::Manual(request) => Triage {
            source: Source::Manual,
            decisions: vec![match request {
                Ok(r) => match r.refuse_partition(config.partition) {
                    Some(why) => Decision::invalid(why),
                    None => manual(r, config),
                },
                Err(e) => Decision::invalid(e.to_string()),
            }],
        },
        Event::Unknown { what } => Triage {
            source: Source::Unknown,
            decisions: vec![Decision::ignore(format!(
                "not an event cutoff acts on: {what}"
            ))],
        },
    }
}

// ---------------------------------------------------------------------------------
// Rules shared by every source

/// The reason an alert-only kind is not revoked, or None for revocable kinds.
///
/// A role whose *name* looks service-linked or Identity Center is not alert-only here:
/// anyone allowed `iam:CreateRole` can choose such a name, so the revoker decides from
/// the path IAM returns (and only alerts when IAM confirms it).
fn alert_only_reason(target: &Target) -> Option<String> {
    let why = match target.kind {
        TargetKind::Role
        | TargetKind::User
        | TargetKind::ServiceLinkedRole
        | TargetKind::IdentityCenterRole => return None,
        TargetKind::Root => {
            "the root user cannot be restricted by IAM policies; rotate its credentials and review its MFA"
        }
        TargetKind::FederatedUser => {
            "federated user sessions have no IAM principal to attach a deny to; revoke on the IAM user that called GetFederationToken"
        }
        TargetKind::InstanceProfile => {
            "the credentials come from an EC2 instance profile; resolve it to its role and revoke that role (cutoff revoke --arn <instance-profile-arn>) after checking the instance"
        }
        TargetKind::Unknown => "cutoff does not know how to revoke this kind of principal",
    };
    Some(format!("{}: alert only; {why}", target))
}

fn protected_reason(target: &Target, config: &TriageConfig) -> Option<String> {
    config.is_protected(target).map(|why| {
        format!("{target} is protected ({why}): never revoked automatically; investigate by hand")
    })
}

/// What a revoke reason adds for a role whose name only looks reserved.
fn reserved_name_note(target: &Target) -> &'static str {
    match target.kind {
        TargetKind::ServiceLinkedRole => {
            " (its name looks service-linked: the revoker asks IAM for its path and only alerts if it is one)"
        }
        TargetKind::IdentityCenterRole => {
            " (its name looks like an Identity Center role: the revoker asks IAM for its path and only alerts if it is one)"
        }
        _ => "",
    }
}

/// Decision for a finding graded by severity (GuardDuty, Security Hub imported).
fn graded(severity: f64, target: Target, config: &TriageConfig) -> Decision {
    if severity < config.alert_severity {
        return Decision::ignore(format!(
            "severity {severity} is below the alert threshold {}",
            config.alert_severity
        ))
        .with_target(Some(target));
    }
    if let Some(reason) = alert_only_reason(&target) {
        return Decision::new(Verdict::Alert, reason).with_target(Some(target));
    }
    if let Some(reason) = protected_reason(&target, config) {
        return Decision::new(Verdict::Alert, reason).with_target(Some(target));
    }
    if severity >= config.revoke_severity {
        Decision::new(
            Verdict::Revoke,
            format!(
                "severity {severity} is at or above the revoke threshold {}: deny sessions of {target} issued before now{}",
                config.revoke_severity,
                reserved_name_note(&target)
            ),
        )
        .with_target(Some(target))
    } else if config.medium_findings == crate::settings::MediumFindings::Ask {
        Decision::new(
            Verdict::Ask,
            format!(
                "severity {severity} is at or above the alert threshold {} and below the revoke threshold {}: ask a person to approve denying sessions of {target} issued before the approval ({}=ask){}",
                config.alert_severity,
                config.revoke_severity,
                crate::settings::env::MEDIUM_FINDINGS,
                reserved_name_note(&target)
            ),
        )
        .with_target(Some(target))
    } else {
        Decision::new(
            Verdict::Alert,
            format!(
                "severity {severity} is below the revoke threshold {}: alert the owner of {target}, change nothing",
                config.revoke_severity
            ),
        )
        .with_target(Some(target))
    }
}

/// Decision when a person chose to revoke (custom action, manual request) or the
/// configuration opted a signal in (CloudTrail): alert-only kinds and protected
/// principals still only alert.
fn chosen(why: &str, target: Target, config: &TriageConfig) -> Decision {
    if let Some(reason) = alert_only_reason(&target) {
        return Decision::new(Verdict::Alert, reason).with_target(Some(target));
    }
    if let Some(reason) = protected_reason(&target, config) {
        return Decision::new(Verdict::Alert, reason).with_target(Some(target));
    }
    Decision::new(
        Verdict::Revoke,
        format!(
            "{why}: deny sessions of {target} issued before now{}",
            reserved_name_note(&target)
        ),
    )
    .with_target(Some(target))
}

/// Finding ids and types are echoed into logs, queues and messages: keep them short
/// and printable.
fn bounded_text(what: &str, value: &str, max: usize) -> Result<String, Malformed> {
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(Malformed(format!(
            "{what} {} is empty, longer than {max} characters or has control characters",
            excerpt(value)
        )));
    }
    Ok(value.to_owned())
}

fn finding_ref(
    id: Option<&str>,
    finding_type: Option<&str>,
    severity: Option<f64>,
    sample: bool,
) -> Result<Option<FindingRef>, Malformed> {
    let Some(id) = id else { return Ok(None) };
    Ok(Some(FindingRef {
        id: bounded_text("finding id", id, 512)?,
        finding_type: finding_type
            .map(|t| bounded_text("finding type", t, 256))
            .transpose()?,
        severity,
        sample,
    }))
}

/// A finding's time, when it is one (RFC 3339) and not before any finding could be
/// ([`crate::clock::EARLIEST_PLAUSIBLE`]).
fn timestamp(value: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| *t >= crate::clock::EARLIEST_PLAUSIBLE)
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|s| !s.is_empty())
}

/// The unique id in a finding's `principalId`: `AROA…` before the `:` of a role
/// session, the whole `AIDA…` of a user. Other shapes (federated users' `account:name`,
/// root) carry none. An id of the right prefix that IAM would not have issued makes
/// the finding invalid.
fn unique_id_of(
    kind: TargetKind,
    principal_id: Option<&str>,
) -> Result<Option<UniqueId>, InvalidValue> {
    let Some(id) = non_empty(principal_id) else {
        return Ok(None);
    };
    let candidate = match kind {
        k if k.is_role_like() => id.split(':').next().filter(|s| s.starts_with("AROA")),
        TargetKind::User => Some(id).filter(|s| s.starts_with("AIDA")),
        _ => None,
    };
    candidate.map(UniqueId::parse).transpose()
}

/// The principal behind an access key, as GuardDuty (`accessKeyDetails`) and Security
/// Hub (`AwsIamAccessKey`) describe it, and its unique id when given.
fn principal_from_access_key(
    account: Option<&str>,
    user_type: Option<&str>,
    user_name: Option<&str>,
    principal_id: Option<&str>,
    access_key_id: Option<&str>,
) -> Result<(Target, Option<UniqueId>), InvalidValue> {
    let account = Account::parse(account.unwrap_or(""))?;
    let access_key_id = non_empty(access_key_id)
        .map(AccessKeyId::parse)
        .transpose()?;
    let name = || PrincipalName::parse(user_name.unwrap_or(""));
    let mut target = match user_type.unwrap_or("") {
        // `Role` appears in EKS findings for the same thing.
        "AssumedRole" | "Role" => {
            let mut target = Target::role(account, name()?);
            // principalId is `AROA…:session`; the session is informational, so an
            // odd one is dropped rather than failing the finding.
            target.session = non_empty(principal_id)
                .and_then(|id| id.split_once(':'))
                .and_then(|(_, session)| SessionName::parse(session).ok());
            target
        }
        "IAMUser" => Target::new(TargetKind::User, account, name()?),
        "Root" => Target::new(
            TargetKind::Root,
            account,
            match non_empty(user_name) {
                Some(_) => name()?,
                None => root_name(),
            },
        ),
        "FederatedUser" => Target::new(TargetKind::FederatedUser, account, name()?),
        _ => Target::new(TargetKind::Unknown, account, name()?),
    };
    target.access_key_id = access_key_id;
    let unique_id = unique_id_of(target.kind, principal_id)?;
    Ok((target, unique_id))
}

/// The target an ARN names, if it is in the deployment's partition: an ARN of another
/// partition names a principal cutoff cannot reach, and is never mapped into ours.
fn arn_target(arn: &str, partition: Partition) -> Result<Target, InvalidValue> {
    let parsed = PrincipalArn::parse(arn)?;
    refuse_partition(&parsed, arn, partition)?;
    Ok(Target::from_arn(&parsed))
}

fn refuse_partition(
    parsed: &PrincipalArn,
    arn: &str,
    partition: Partition,
) -> Result<(), InvalidValue> {
    if parsed.partition == partition {
        Ok(())
    } else {
        Err(InvalidValue {
            what: "principal ARN",
            excerpt: excerpt(arn),
            why: "it is in another partition than cutoff's deployment",
        })
    }
}

// ---------------------------------------------------------------------------------
// GuardDuty

/// A region name as a finding states it, kept only when it is one.
fn region_of(region: Option<&str>) -> Option<String> {
    region
        .filter(|r| crate::chain::is_region_name(r))
        .map(str::to_owned)
}

fn guardduty(finding: &GuardDutyFinding, config: &TriageConfig) -> Decision {
    let severity = finding.severity();
    let reference = match finding_ref(
        finding.id.as_deref(),
        finding.finding_type.as_deref(),
        severity,
        finding.is_sample(),
    ) {
        Ok(r) => r,
        Err(m) => return Decision::invalid(m.0),
    };
    let principal = guardduty_principal(finding, config.partition);
    let evidence = Evidence {
        updated_at: timestamp(finding.updated_at.as_deref()),
        first_activity: timestamp(finding.event_first_seen()),
        unique_id: principal
            .as_ref()
            .ok()
            .cloned()
            .flatten()
            .and_then(|(_, id)| id),
        manual: None,
        product_arn: None,
        finding_format: None,
        custom_action: None,
        scope: Scope::Role,
        activity_region: region_of(finding.region.as_deref()),
    };
    let decide = |d: Decision| {
        d.with_finding(reference.clone())
            .with_evidence(evidence.clone())
    };

    if reference.is_none() {
        return decide(Decision::ignore(
            "GuardDuty finding has no id: not a finding cutoff can act on",
        ));
    }
    let shown = principal.as_ref().ok().cloned().flatten().map(|(t, _)| t);
    if let Some(why) = not_to_act_on(finding) {
        return decide(Decision::ignore(why).with_target(shown));
    }
    let Some(severity) = severity else {
        return decide(
            Decision::ignore("finding has no numeric severity: cannot grade it").with_target(shown),
        );
    };
    // A caller from another account: the finding names a principal of that account by
    // name only, and a principal of the same name in the finding's account is someone
    // else. Nor is the caller's account revoked on the word of this one (its owner can
    // make its own GuardDuty report anyone who touches its resources): alert only.
    // The exception: an instance-credential finding about a session named for the
    // finding account's own instance. There the remote account is where those
    // credentials were used from (`.InsideAWS`), and the principal is the finding
    // account's instance role: revoked like any role of it.
    let own_instance_session = principal
        .as_ref()
        .ok()
        .and_then(Option::as_ref)
        .is_some_and(|(target, _)| is_reported_instance_session(finding, target));
    // (Without accessKeyDetails the finding names no caller: its principal, if any, is
    // read below as for any finding.)
    if let Some(remote) = finding.remote_account()
        && let Some(d) = finding.access_key_details()
        && finding.account_id.as_deref() != Some(remote)
        && severity >= config.alert_severity
        && !own_instance_session
    {
        // The alert names the caller where it lives, so that someone is told about it.
        let caller = match principal_from_access_key(
            Some(remote),
            d.user_type.as_deref(),
            d.user_name.as_deref(),
            d.principal_id.as_deref(),
            d.access_key_id.as_deref(),
        ) {
            Ok((target, _)) => Some(target),
            Err(e) => return decide(Decision::invalid(e.to_string())),
        };
        return decide(Decision::new(
            Verdict::Alert,
            format!(
                "the call came from account {} (remoteAccountDetails), not the finding's account {}: the principal it names is not one of the finding's account, and cutoff does not revoke in another account on this account's finding; alert only, investigate both",
                excerpt(remote),
                excerpt(finding.account_id.as_deref().unwrap_or("?"))
            ),
        )
        .with_target(caller));
    }
    match principal {
        Err(e) => decide(Decision::invalid(e.to_string())),
        Ok(None) => decide(Decision::ignore(
            "finding names no IAM principal (no accessKeyDetails, no instance profile)",
        )),
        Ok(Some((target, _))) => {
            let decision = decide(graded(severity, target, config));
            instance_scope(decision, finding, config)
        }
    }
}

/// Why a GuardDuty finding (or attack sequence) is not acted on whatever it says: a
/// sample (invented principals) or an archived one.
fn not_to_act_on(finding: &GuardDutyFinding) -> Option<&'static str> {
    if finding.is_sample() {
        Some("sample finding (generated for testing): never acted on")
    } else if finding.is_archived() {
        Some("archived finding: already handled or suppressed")
    } else {
        None
    }
}

/// GuardDuty's findings about an EC2 instance's role credentials used elsewhere: the
/// session they name is the instance's own.
pub(crate) const INSTANCE_CREDENTIAL_FINDINGS: [&str; 2] = [
    "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
    "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.InsideAWS",
];

/// The (valid) instance id an instance-credential finding reports; None for any other
/// finding, or one that reports no valid id.
fn reported_instance(finding: &GuardDutyFinding) -> Option<&str> {
    let finding_type = finding.finding_type.as_deref()?;
    if !INSTANCE_CREDENTIAL_FINDINGS.contains(&finding_type) {
        return None;
    }
    finding
        .resource
        .as_ref()?
        .instance_details
        .as_ref()?
        .instance_id
        .as_deref()
        .filter(|id| is_instance_id(id))
}

/// A role session of `target`, when there is one.
fn role_session(target: &Target) -> Option<&SessionName> {
    target
        .session
        .as_ref()
        .filter(|_| target.kind.is_role_like())
}

/// Whether `target` is a role session named exactly for the instance an
/// instance-credential finding reports: the credentials are that instance's.
fn is_reported_instance_session(finding: &GuardDutyFinding, target: &Target) -> bool {
    reported_instance(finding)
        .zip(role_session(target))
        .is_some_and(|(instance, session)| session.as_str() == instance)
}

/// An EC2 instance id: `i-` and 8 or 17 lowercase hex digits.
fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The blast radius of a GuardDuty revocation. A role's credentials that an instance
/// got from its profile are sessions named for the instance; a finding that they were
/// used elsewhere is about that instance's sessions, and denying the whole role would
/// stop every other instance of the fleet. So such a revocation denies only the
/// instance's sessions issued before now, when the finding is an instance-credential
/// finding *and* its session is named exactly as the instance the finding itself
/// reports. Anyone allowed `sts:AssumeRole` can name a session `i-…`: a session name
/// alone never narrows the deny, nor does another finding type, and the setting can
/// make it role-wide always. The reason says which, and why.
fn instance_scope(
    mut decision: Decision,
    finding: &GuardDutyFinding,
    config: &TriageConfig,
) -> Decision {
    let session = decision.target.as_ref().and_then(role_session);
    let (Verdict::Revoke | Verdict::Ask, Some(session)) = (decision.decision, session) else {
        return decision;
    };
    // Another finding type, or no valid instance to scope to: the role, as for any
    // other finding.
    let Some(instance) = reported_instance(finding) else {
        return decision;
    };
    let note = match config.instance_finding_scope {
        Scope::Session if session.as_str() == instance => {
            decision.evidence.scope = Scope::Session;
            format!(
                "; only the sessions of instance {instance}: the finding is about that instance's credentials and the session is named for it, so other sessions of the role keep working ({}=role denies them all)",
                crate::settings::env::INSTANCE_FINDING_SCOPE
            )
        }
        Scope::Role => format!(
            "; every session of the role, as {}=role says",
            crate::settings::env::INSTANCE_FINDING_SCOPE
        ),
        Scope::Session => format!(
            "; every session of the role: the session {} is not named for the instance the finding reports ({instance}), so the finding does not say which sessions are the instance's",
            session.as_str()
        ),
    };
    decision.reason.push_str(&note);
    decision
}

fn guardduty_principal(
    finding: &GuardDutyFinding,
    partition: Partition,
) -> Result<Option<(Target, Option<UniqueId>)>, InvalidValue> {
    let account = finding.account_id.as_deref();
    if let Some(details) = finding.access_key_details() {
        return principal_from_access_key(
            account,
            details.user_type.as_deref(),
            details.user_name.as_deref(),
            details.principal_id.as_deref(),
            details.access_key_id.as_deref(),
        )
        .map(Some);
    }
    if let Some(arn) = finding.instance_profile_arn() {
        let target = instance_profile_target(arn, partition)?;
        // The profile's ARN names its own account; it must be the finding's account.
        let finding_account = Account::parse(account.unwrap_or(""))?;
        if target.account != finding_account {
            return Err(InvalidValue {
                what: "instance profile ARN",
                excerpt: excerpt(arn),
                why: "its account is not the finding's account",
            });
        }
        return Ok(Some((target, None)));
    }
    Ok(None)
}

fn instance_profile_target(arn: &str, partition: Partition) -> Result<Target, InvalidValue> {
    let parsed = PrincipalArn::parse(arn)?;
    refuse_partition(&parsed, arn, partition)?;
    match parsed.resource {
        PrincipalResource::InstanceProfile { .. } => Ok(Target::from_arn(&parsed)),
        _ => Err(InvalidValue {
            what: "instance profile ARN",
            excerpt: excerpt(arn),
            why: "it does not name an instance profile",
        }),
    }
}

// ---------------------------------------------------------------------------------
// Security Hub

fn security_hub(
    origin: &SecurityHubOrigin,
    findings: &[Result<Box<AsffFinding>, Malformed>],
    config: &TriageConfig,
) -> Vec<Decision> {
    if findings.is_empty() {
        return vec![Decision::ignore("Security Hub event carries no findings")];
    }
    let mut decisions = Vec::new();
    for finding in findings {
        match finding {
            Ok(f) => decisions.extend(asff(origin, f, config)),
            Err(m) => decisions.push(Decision::invalid(m.0.clone())),
        }
    }
    if matches!(origin, SecurityHubOrigin::CustomAction { .. }) {
        trip_action_breaker(&mut decisions, config.max_principals_per_action);
    }
    decisions
}

/// The circuit breaker of a custom action: one click that would revoke more principals
/// than the cap (a mistaken selection, or someone steering cutoff through Security Hub)
/// revokes none of them; each becomes a loud alert for the security team.
fn trip_action_breaker(decisions: &mut [Decision], cap: usize) {
    let mut principals: Vec<(&str, &str, &str)> = decisions
        .iter()
        .filter(|d| d.decision == Verdict::Revoke)
        .filter_map(|d| d.target.as_ref())
        .map(|t| (t.account.as_str(), t.kind.as_str(), t.name.as_str()))
        .collect();
    principals.sort_unstable();
    principals.dedup();
    let count = principals.len();
    if count <= cap {
        return;
    }
    for decision in decisions
        .iter_mut()
        .filter(|d| d.decision == Verdict::Revoke)
    {
        decision.decision = Verdict::Alert;
        decision.reason = format!(
            "circuit breaker: this custom action names {count} principals, more than the {cap} one action may revoke; none is revoked, the security team must look (revoke by hand with cutoff revoke if it is meant): {}",
            decision.reason
        );
    }
}

/// A Security Hub product ARN as a finding states it, kept only when it looks like one
/// (it is echoed into the request and the update call).
fn product_arn(value: Option<&str>) -> Option<String> {
    value
        .filter(|arn| {
            arn.starts_with("arn:") && arn.len() <= 512 && !arn.chars().any(char::is_control)
        })
        .map(str::to_owned)
}

fn asff(origin: &SecurityHubOrigin, finding: &AsffFinding, config: &TriageConfig) -> Vec<Decision> {
    let severity = finding.severity();
    let reference = match finding_ref(
        finding.id.as_deref(),
        finding.first_type(),
        severity,
        finding.is_sample(),
    ) {
        Ok(r) => r,
        Err(m) => return vec![Decision::invalid(m.0)],
    };
    let evidence = Evidence {
        updated_at: timestamp(finding.updated_at.as_deref()),
        first_activity: timestamp(finding.first_observed_at.as_deref()),
        unique_id: None,
        manual: None,
        product_arn: product_arn(finding.product_arn.as_deref()),
        finding_format: None,
        custom_action: match origin {
            SecurityHubOrigin::CustomAction { action_arn, .. } => action_arn.clone(),
            SecurityHubOrigin::Imported => None,
        },
        scope: Scope::Role,
        activity_region: None,
    };
    let decide = |d: Decision| {
        d.with_finding(reference.clone())
            .with_evidence(evidence.clone())
    };
    let one = |d: Decision| vec![decide(d)];

    if reference.is_none() {
        return one(Decision::ignore(
            "Security Hub finding has no Id: not a finding cutoff can act on",
        ));
    }
    let principals = asff_principals(finding, config.partition);
    let shown = || principals.entries.first().map(|e| e.target.clone());
    if finding.is_sample() {
        return one(
            Decision::ignore("sample finding (generated for testing): never acted on")
                .with_target(shown()),
        );
    }
    let custom_action = match origin {
        SecurityHubOrigin::CustomAction { action_name, .. } => Some(action_name),
        SecurityHubOrigin::Imported => None,
    };
    if custom_action.is_none() {
        if !config.securityhub_imported {
            return one(
                Decision::ignore(
                    "Security Hub imported findings are ignored by default (GuardDuty findings arrive directly; other products' findings can be forged)",
                )
                .with_target(shown()),
            );
        }
        if finding.is_archived() {
            return one(Decision::ignore("archived finding").with_target(shown()));
        }
        if finding.is_closed() {
            return one(
                Decision::ignore("finding workflow is RESOLVED or SUPPRESSED").with_target(shown()),
            );
        }
    }
    let why = match custom_action {
        Some(Some(name)) => Some(format!(
            "an operator chose the Security Hub custom action {}",
            excerpt(name)
        )),
        Some(None) => Some("an operator chose a Security Hub custom action".to_owned()),
        None => None,
    };
    per_principal(
        principals,
        ("AwsAccountId", finding.aws_account_id.as_deref()),
        why.as_deref(),
        severity,
        config,
        decide,
    )
}

/// The decisions for the principals one Security Hub finding names: each its own. A
/// finding speaks for its own account only (`account`: the field that says which, and
/// its value): a principal of another account in it is reported, never revoked (a
/// product, or whoever imports findings, could otherwise name any principal of the
/// Organization). `chosen` is why a person chose to revoke (a custom action), else the
/// finding is graded by `severity`.
fn per_principal(
    principals: Principals,
    (account_field, account): (&str, Option<&str>),
    chosen_why: Option<&str>,
    severity: Option<f64>,
    config: &TriageConfig,
    decide: impl Fn(Decision) -> Decision,
) -> Vec<Decision> {
    let Principals { entries, errors } = principals;
    if entries.is_empty() && errors.is_empty() {
        return vec![decide(Decision::ignore("finding names no IAM principal"))];
    }
    let finding_account = match Account::parse(account.unwrap_or("")) {
        Ok(account) => account,
        Err(e) => {
            return vec![decide(Decision::invalid(format!(
                "the finding's {account_field} is not an account: {e}"
            )))];
        }
    };
    let invalid: Vec<Decision> = errors
        .iter()
        .map(|e| decide(Decision::invalid(e.to_string())))
        .collect();
    entries
        .into_iter()
        .map(|entry| {
            let Entry {
                target,
                unique_id,
                key_conflicted,
                ..
            } = entry;
            let decide = |d: Decision| {
                let mut d = decide(d);
                d.evidence.unique_id = unique_id.clone();
                // The finding named the principal with two keys: neither is kept, and
                // its one first activity says nothing about the later session, so the
                // revoker writes rather than skip.
                if key_conflicted {
                    d.evidence.first_activity = None;
                }
                d
            };
            if target.account != finding_account {
                return decide(
                    Decision::new(
                        Verdict::Alert,
                        format!(
                            "{target} is in account {} but the finding is of account {finding_account}: a finding may revoke principals of its own account only; alert only",
                            target.account
                        ),
                    )
                    .with_target(Some(target)),
                );
            }
            match (chosen_why, severity) {
                (Some(why), _) => decide(chosen(why, target, config)),
                (None, Some(severity)) => decide(graded(severity, target, config)),
                (None, None) => decide(
                    Decision::ignore("finding has no severity: cannot grade it")
                        .with_target(Some(target)),
                ),
            }
        })
        .chain(invalid)
        .collect()
}

type NamedPrincipal = (Target, Option<UniqueId>);

/// Merges a mention's unique id into a principal's: the first fills it; two different
/// ones mean one is stale (the principal was deleted and recreated), so none is kept,
/// whatever a later mention says (the revoker then checks none rather than refuse the
/// real one).
fn merge_unique_id(kept: &mut Option<UniqueId>, conflicted: &mut bool, id: Option<UniqueId>) {
    match (kept.as_ref(), id) {
        (None, id) if !*conflicted => *kept = id,
        (Some(k), Some(other)) if *k != other => {
            *kept = None;
            *conflicted = true;
        }
        _ => {}
    }
}

/// The principals one finding names, one entry per principal, and the mentions that
/// name one invalidly (one bad mention does not hide the valid principals of the same
/// finding).
#[derive(Debug, Default)]
struct Principals {
    entries: Vec<Entry>,
    errors: Vec<InvalidValue>,
}

#[derive(Debug)]
struct Entry {
    target: Target,
    unique_id: Option<UniqueId>,
    /// Two mentions gave different unique ids: one of them is stale (the principal
    /// was deleted and recreated), so none is kept, whatever a later mention says (the
    /// revoker then checks none rather than refuse the real one).
    id_conflicted: bool,
    /// Two mentions gave different temporary keys: none is kept, whatever a later
    /// mention says (a key stands for one session, and the revoker's skip rule trusts
    /// a key's record for its session alone).
    key_conflicted: bool,
}

impl Principals {
    /// Adds a mention; returns the index of the principal's entry. The first mention
    /// wins, and later ones fill what it lacks (whatever the order of the resources, the
    /// key and session survive: a user resource listed before its access key must not
    /// lose the key). A principal named with two different keys, one of them long-term,
    /// is two entries: each long-term key must be set inactive, and a request carries
    /// one.
    fn add(&mut self, principal: Result<NamedPrincipal, InvalidValue>) -> Option<usize> {
        let (t, id) = match principal {
            Ok(t) => t,
            Err(e) => {
                self.errors.push(e);
                return None;
            }
        };
        let same = |e: &Entry| {
            let o = &e.target;
            let keys_compatible = match (&o.access_key_id, &t.access_key_id) {
                (Some(a), Some(b)) if a != b => !a.is_long_term() && !b.is_long_term(),
                // An entry whose temporary keys conflicted holds temporary keys: a
                // long-term key is another entry, never dropped with them.
                (None, Some(b)) if e.key_conflicted => !b.is_long_term(),
                _ => true,
            };
            o.account == t.account && o.kind == t.kind && o.name == t.name && keys_compatible
        };
        let Some(index) = self.entries.iter().position(same) else {
            self.entries.push(Entry {
                target: t,
                unique_id: id,
                id_conflicted: false,
                key_conflicted: false,
            });
            return Some(self.entries.len() - 1);
        };
        let entry = &mut self.entries[index];
        match (&entry.target.access_key_id, t.access_key_id) {
            (None, key) if !entry.key_conflicted => entry.target.access_key_id = key,
            (Some(kept), Some(other)) if *kept != other => {
                entry.target.access_key_id = None;
                entry.key_conflicted = true;
            }
            _ => {}
        }
        if entry.target.session.is_none() {
            entry.target.session = t.session;
        }
        merge_unique_id(&mut entry.unique_id, &mut entry.id_conflicted, id);
        Some(index)
    }

    fn into_parts(self) -> (Vec<NamedPrincipal>, Vec<InvalidValue>) {
        (
            self.entries
                .into_iter()
                .map(|e| (e.target, e.unique_id))
                .collect(),
            self.errors,
        )
    }
}

/// The principals a finding names (with their unique ids when given), and the
/// resources that name one invalidly. One bad resource does not hide the valid
/// principals of the same finding.
fn asff_principals(finding: &AsffFinding, partition: Partition) -> Principals {
    const KEY_ID_PREFIX: &str = "AWS::IAM::AccessKey:";
    let finding_account = finding.aws_account_id.as_deref();
    let mut found = Principals::default();
    for resource in &finding.resources {
        let details = resource.details.as_ref();
        match resource.resource_type.as_deref() {
            Some("AwsIamAccessKey") => {
                let Some(key) = details.and_then(|d| d.aws_iam_access_key.as_ref()) else {
                    continue;
                };
                let key_id = non_empty(key.access_key_id.as_deref()).or_else(|| {
                    resource
                        .id
                        .as_deref()
                        .and_then(|id| id.strip_prefix(KEY_ID_PREFIX))
                });
                found.add(principal_from_access_key(
                    non_empty(key.account_id.as_deref()).or(finding_account),
                    key.principal_type.as_deref(),
                    non_empty(key.principal_name.as_deref()).or(key.user_name.as_deref()),
                    key.principal_id.as_deref(),
                    key_id,
                ));
            }
            Some("AwsIamRole") => {
                let by_name = details
                    .and_then(|d| d.aws_iam_role.as_ref())
                    .and_then(|r| r.role_name.as_deref());
                found.add(iam_resource_target(
                    resource.id.as_deref(),
                    by_name,
                    finding_account,
                    partition,
                    Target::role,
                ));
            }
            Some("AwsIamUser") => {
                let by_name = details
                    .and_then(|d| d.aws_iam_user.as_ref())
                    .and_then(|u| u.user_name.as_deref());
                found.add(iam_resource_target(
                    resource.id.as_deref(),
                    by_name,
                    finding_account,
                    partition,
                    |account, name| Target::new(TargetKind::User, account, name),
                ));
            }
            _ => {}
        }
    }
    if found.entries.is_empty() && found.errors.is_empty() {
        for resource in &finding.resources {
            let profile = resource
                .details
                .as_ref()
                .and_then(|d| d.aws_ec2_instance.as_ref())
                .and_then(|i| i.iam_instance_profile_arn.as_deref());
            if let Some(arn) = non_empty(profile) {
                found.add(instance_profile_target(arn, partition).map(|t| (t, None)));
            }
        }
    }
    found
}

/// An `AwsIamRole`/`AwsIamUser` resource: its Id is the ARN; without an ARN, the name
/// from Details in the finding's account.
fn iam_resource_target(
    id: Option<&str>,
    name: Option<&str>,
    finding_account: Option<&str>,
    partition: Partition,
    build: impl Fn(Account, PrincipalName) -> Target,
) -> Result<NamedPrincipal, InvalidValue> {
    let target = match id {
        Some(arn) if arn.starts_with("arn:") => arn_target(arn, partition)?,
        _ => build(
            Account::parse(finding_account.unwrap_or(""))?,
            PrincipalName::parse(name.unwrap_or(""))?,
        ),
    };
    Ok((target, None))
}

// ---------------------------------------------------------------------------------
// CloudTrail

fn cloudtrail(
    record: &CloudTrailEvent,
    envelope: Option<&Envelope>,
    config: &TriageConfig,
) -> Decision {
    let reference = match finding_ref(
        record.event_id.as_deref(),
        record.event_name.as_deref(),
        None,
        false,
    ) {
        Ok(r) => r,
        Err(m) => return Decision::invalid(m.0),
    };
    let principal = cloudtrail_principal(record, config.partition);
    let evidence = Evidence {
        updated_at: timestamp(record.event_time.as_deref()),
        // The call was made with the session: it was issued before this.
        first_activity: timestamp(record.event_time.as_deref()),
        unique_id: principal
            .as_ref()
            .ok()
            .cloned()
            .flatten()
            .and_then(|(_, id)| id),
        manual: None,
        product_arn: None,
        finding_format: None,
        custom_action: None,
        scope: Scope::Role,
        activity_region: region_of(record.aws_region.as_deref()),
    };
    let decide = |d: Decision| {
        d.with_finding(reference.clone())
            .with_evidence(evidence.clone())
    };
    let shown = principal.as_ref().ok().cloned().flatten().map(|(t, _)| t);
    let Some(event_name) = record.event_name.as_deref() else {
        return decide(Decision::ignore("CloudTrail record has no eventName").with_target(shown));
    };
    if !config.cloudtrail_opted_in(event_name) {
        return decide(
            Decision::ignore(format!(
                "CloudTrail event {} is not opted in for revocation",
                excerpt(event_name)
            ))
            .with_target(shown),
        );
    }
    if reference.is_none() {
        return decide(Decision::ignore(
            "CloudTrail record has no eventID: not a record cutoff can act on",
        ));
    }
    let target = match principal {
        Err(e) => return decide(Decision::invalid(e.to_string())),
        Ok(None) => {
            return decide(Decision::ignore(
                "CloudTrail caller is not an IAM principal (AWS service or account)",
            ));
        }
        Ok(Some((target, _))) => target,
    };
    // A record counts only for a caller of the account it was recorded in: the
    // envelope's account (an EventBridge event), else the record's recipient account.
    // A cross-account call is recorded in both accounts; the other account's copy
    // must not revoke our caller, nor a forwarded one someone else's.
    let recorded_in = envelope
        .and_then(|e| e.account.as_deref())
        .or(record.recipient_account_id.as_deref());
    if recorded_in != Some(target.account.as_str()) {
        return decide(
            Decision::new(
                Verdict::Alert,
                format!(
                    "the caller {target} is not of the account the event was recorded in ({}): alert only",
                    excerpt(recorded_in.unwrap_or("unknown"))
                ),
            )
            .with_target(Some(target)),
        );
    }
    decide(chosen(
        &format!("CloudTrail event {event_name} is opted in for revocation"),
        target,
        config,
    ))
}

fn cloudtrail_principal(
    record: &CloudTrailEvent,
    partition: Partition,
) -> Result<Option<NamedPrincipal>, InvalidValue> {
    let Some(identity) = record.user_identity.as_ref() else {
        return Ok(None);
    };
    let arn = non_empty(identity.arn.as_deref());
    let mut target = match identity.identity_type.as_deref() {
        Some("AssumedRole") => match arn {
            Some(arn) => arn_target(arn, partition)?,
            None => {
                let issuer = identity
                    .session_context
                    .as_ref()
                    .and_then(|c| c.session_issuer.as_ref());
                Target::role(
                    Account::parse(identity.account_id.as_deref().unwrap_or(""))?,
                    PrincipalName::parse(
                        issuer.and_then(|i| i.user_name.as_deref()).unwrap_or(""),
                    )?,
                )
            }
        },
        Some("IAMUser") => Target::new(
            TargetKind::User,
            Account::parse(identity.account_id.as_deref().unwrap_or(""))?,
            PrincipalName::parse(identity.user_name.as_deref().unwrap_or(""))?,
        ),
        Some("Root") => Target::new(
            TargetKind::Root,
            Account::parse(identity.account_id.as_deref().unwrap_or(""))?,
            root_name(),
        ),
        Some("FederatedUser") => arn_target(arn.unwrap_or(""), partition)?,
        _ => return Ok(None),
    };
    if let Some(account) = non_empty(identity.account_id.as_deref()) {
        let account = Account::parse(account)?;
        if account != target.account {
            return Err(InvalidValue {
                what: "CloudTrail userIdentity",
                excerpt: excerpt(account.as_str()),
                why: "accountId does not match the account in the caller's ARN",
            });
        }
    }
    target.access_key_id = non_empty(identity.access_key_id.as_deref())
        .map(AccessKeyId::parse)
        .transpose()?;
    let unique_id = unique_id_of(target.kind, identity.principal_id.as_deref())?;
    Ok(Some((target, unique_id)))
}

// ---------------------------------------------------------------------------------
// Manual requests

fn manual(request: &ManualRequest, config: &TriageConfig) -> Decision {
    let evidence = Evidence {
        manual: Some(request.clone()),
        ..Evidence::default()
    };
    let target = request.target.clone();
    let decision = match request.action {
        ManualAction::Revoke => {
            let who = request
                .requested_by
                .as_ref()
                .map(|r| format!("manual request by {r}"))
                .unwrap_or_else(|| "manual request".to_owned());
            let why = match &request.reason {
                Some(reason) => format!("{who} ({reason})"),
                None => who,
            };
            // An operator may name an instance profile: the revoker resolves it to
            // its role, so it is revocable here, unlike in a finding.
            if target.kind == TargetKind::InstanceProfile {
                match protected_reason(&target, config) {
                    Some(reason) => Decision::new(Verdict::Alert, reason).with_target(Some(target)),
                    None => Decision::new(
                        Verdict::Revoke,
                        format!("{why}: resolve {target} to its role and deny sessions issued before now"),
                    )
                    .with_target(Some(target)),
                }
            } else {
                chosen(&why, target, config)
            }
        }
        action @ (ManualAction::Status | ManualAction::Release | ManualAction::History) => {
            Decision::ignore(format!(
                "{} request: handled by the revoker, nothing to triage",
                action.as_str()
            ))
            .with_target(Some(target))
        }
    };
    decision.with_evidence(evidence)
}

mod ocsf;
mod sequence;

use ocsf::security_hub_ocsf;
use sequence::attack_sequence;

#[cfg(test)]
mod tests;
