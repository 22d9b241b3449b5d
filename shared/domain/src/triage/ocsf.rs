//! Security Hub's OCSF findings (`Findings Imported V2`): the same rules as imported
//! ASFF findings, with OCSF's fields. Acted on only when enabled, and only from the
//! products the deployment names (by default GuardDuty's), recognised by the product
//! uid Security Hub ties to the integration, never by the free-text product name.

use super::{
    Decision, Evidence, INSTANCE_CREDENTIAL_FINDINGS, NamedPrincipal, Principals, Verdict,
    arn_target, finding_ref, iam_resource_target, instance_profile_target, non_empty,
    per_principal, principal_from_access_key, product_arn, region_of, unique_id_of,
};
use crate::event::FindingFormat;
use crate::event::ocsf::{AccessKeyData, Actor, InstanceData, OcsfFinding, Resource};
use crate::event::{Malformed, Scope};
use crate::principal::{
    AccessKeyId, Account, InvalidValue, Partition, PrincipalArn, PrincipalResource, SessionName,
    Target, TargetKind, excerpt,
};
use crate::settings::{TriageConfig, env};

pub(super) fn security_hub_ocsf(
    findings: &[Result<Box<OcsfFinding>, Malformed>],
    config: &TriageConfig,
) -> Vec<Decision> {
    if findings.is_empty() {
        return vec![Decision::ignore(
            "Security Hub OCSF event carries no findings",
        )];
    }
    findings
        .iter()
        .flat_map(|finding| match finding {
            Ok(f) => ocsf(f, config),
            Err(m) => vec![Decision::invalid(m.0.clone())],
        })
        .collect()
}

fn ocsf(finding: &OcsfFinding, config: &TriageConfig) -> Vec<Decision> {
    let severity = finding.severity();
    let reference = match finding_ref(
        finding.id(),
        finding.finding_type(),
        severity,
        finding.is_sample(),
    ) {
        Ok(r) => r,
        Err(m) => return vec![Decision::invalid(m.0)],
    };
    let evidence = Evidence {
        updated_at: finding.modified(),
        first_activity: finding.first_seen(),
        unique_id: None,
        manual: None,
        product_arn: product_arn(finding.product_uid()),
        finding_format: Some(FindingFormat::Ocsf),
        custom_action: None,
        scope: Scope::Role,
        activity_region: region_of(finding.region()),
    };
    let decide = |d: Decision| {
        d.with_finding(reference.clone())
            .with_evidence(evidence.clone())
    };
    let one = |d: Decision| vec![decide(d)];

    if reference.is_none() {
        return one(Decision::ignore(
            "Security Hub OCSF finding has no metadata.uid: not a finding cutoff can act on",
        ));
    }
    let principals = ocsf_principals(finding, config.partition);
    let shown = || principals.entries.first().map(|e| e.target.clone());
    if finding.is_sample() {
        return one(
            Decision::ignore("sample finding (generated for testing): never acted on")
                .with_target(shown()),
        );
    }
    if !config.securityhub_v2 {
        return one(
            Decision::ignore(format!(
                "Security Hub OCSF findings (Findings Imported V2) are ignored unless {}=true (GuardDuty findings arrive directly)",
                env::SECURITYHUB_V2
            ))
            .with_target(shown()),
        );
    }
    let uid = finding.product_uid().unwrap_or("");
    if !config
        .securityhub_v2_products
        .iter()
        .any(|p| p.is_uid(uid, config.partition))
    {
        let named: Vec<&str> = config
            .securityhub_v2_products
            .iter()
            .map(|p| p.as_str())
            .collect();
        return one(Decision::ignore(format!(
            "the finding's product {} is not one {} names ({}): its findings are not acted on",
            excerpt(uid),
            env::SECURITYHUB_V2_PRODUCTS,
            named.join(", ")
        ))
        .with_target(shown()));
    }
    if finding.is_closed() {
        return one(Decision::ignore(
            "finding is suppressed, resolved, archived, deleted or closed",
        )
        .with_target(shown()));
    }
    if let Some(why) = guardduty_native_only(finding) {
        return native_only(principals, why, severity, config, decide);
    }
    per_principal(
        principals,
        ("cloud.account.uid", finding.account()),
        None,
        severity,
        config,
        decide,
    )
}

/// The decisions for an OCSF copy of a finding only GuardDuty's own event may revoke
/// on: below the alert threshold nothing, else an alert naming each principal (so
/// that someone is told should GuardDuty's own event not arrive); invalid mentions
/// are reported as for any finding.
fn native_only(
    principals: Principals,
    why: &str,
    severity: Option<f64>,
    config: &TriageConfig,
    decide: impl Fn(Decision) -> Decision,
) -> Vec<Decision> {
    let Principals { entries, errors } = principals;
    let invalid = errors
        .iter()
        .map(|e| decide(Decision::invalid(e.to_string())));
    if entries.is_empty() {
        return std::iter::once(decide(Decision::ignore(why)))
            .chain(invalid)
            .collect();
    }
    let quiet = severity.is_none_or(|s| s < config.alert_severity);
    entries
        .into_iter()
        .map(|e| {
            let target = e.target;
            decide(if quiet {
                Decision::ignore(format!("below the alert threshold; {why}"))
                    .with_target(Some(target))
            } else {
                Decision::new(Verdict::Alert, format!("{target}: alert only; {why}"))
                    .with_target(Some(target))
            })
        })
        .chain(invalid)
        .collect()
}

/// Why an OCSF finding is one of GuardDuty's that only GuardDuty's own event may
/// revoke on: an attack sequence (its OCSF copy does not say which principals are the
/// actors and which they only touched, nor when each session was issued) and an
/// instance-credential finding (GuardDuty's own event denies only that instance's
/// sessions; this copy would deny the whole role and stop the fleet). GuardDuty's own
/// event reaches intake by the GuardDuty rule whatever this setting says.
fn guardduty_native_only(finding: &OcsfFinding) -> Option<&'static str> {
    let types = finding.finding_info.as_ref().map(|i| &i.types)?;
    if types.iter().any(|t| t.starts_with("AttackSequence:")) {
        return Some(
            "a GuardDuty attack sequence is acted on from GuardDuty's own event, which says who the actors are; its Security Hub copy does not",
        );
    }
    if types
        .iter()
        .any(|t| INSTANCE_CREDENTIAL_FINDINGS.contains(&t.as_str()))
    {
        return Some(
            "an instance-credential finding is acted on from GuardDuty's own event, which denies only that instance's sessions; its Security Hub copy would deny every session of the role",
        );
    }
    None
}

/// The principals an OCSF finding names: its actors (the finding's own and each
/// evidence's), then its IAM resources (an access key with the product's description
/// of its principal, a role, a user); an EC2 instance's profile only when nothing else
/// names a principal.
fn ocsf_principals(finding: &OcsfFinding, partition: Partition) -> Principals {
    let finding_account = finding.account();
    let mut found = Principals::default();
    for actor in finding.actors() {
        match ocsf_actor(actor, finding_account, partition) {
            Ok(Some(principal)) => {
                found.add(Ok(principal));
            }
            Ok(None) => {}
            Err(e) => found.errors.push(e),
        }
    }
    for resource in &finding.resources {
        let owner = resource
            .owner
            .as_ref()
            .and_then(|o| o.account.as_ref())
            .and_then(|a| non_empty(a.uid.as_deref()))
            .or(finding_account);
        let principal = match resource.resource_type.as_deref() {
            Some("AWS::IAM::AccessKey") => access_key_principal(resource, owner),
            Some("AWS::IAM::Role") => Some(iam_resource_target(
                resource.uid.as_deref(),
                non_empty(resource.name.as_deref()).or(resource.uid.as_deref()),
                owner,
                partition,
                Target::role,
            )),
            Some("AWS::IAM::User") => Some(iam_resource_target(
                resource.uid.as_deref(),
                non_empty(resource.name.as_deref()).or(resource.uid.as_deref()),
                owner,
                partition,
                |account, name| Target::new(TargetKind::User, account, name),
            )),
            _ => None,
        };
        if let Some(principal) = principal {
            found.add(principal);
        }
    }
    if found.entries.is_empty() && found.errors.is_empty() {
        for resource in &finding.resources {
            if resource.resource_type.as_deref() != Some("AWS::EC2::Instance") {
                continue;
            }
            let profile = resource
                .data
                .clone()
                .and_then(|d| serde_json::from_value::<InstanceData>(d).ok())
                .and_then(|d| d.iam_instance_profile)
                .and_then(|p| p.arn);
            if let Some(arn) = profile.as_deref().and_then(|a| non_empty(Some(a))) {
                found.add(instance_profile_target(arn, partition).map(|t| (t, None)));
            }
        }
    }
    found
}

/// An `AWS::IAM::AccessKey` resource whose `data` describes its principal as
/// GuardDuty does (`user_type`, `user_name`, `principal_id`, `access_key_id`); None
/// when it does not describe one.
fn access_key_principal(
    resource: &Resource,
    owner: Option<&str>,
) -> Option<Result<NamedPrincipal, InvalidValue>> {
    let data = resource.data.clone()?;
    let data: AccessKeyData = match serde_json::from_value(data) {
        Ok(data) => data,
        Err(_) => {
            return Some(Err(InvalidValue {
                what: "OCSF access key resource",
                excerpt: excerpt(resource.uid.as_deref().unwrap_or("")),
                why: "its data does not describe the key's principal as GuardDuty does",
            }));
        }
    };
    data.user_type.as_ref()?;
    Some(principal_from_access_key(
        owner,
        data.user_type.as_deref(),
        non_empty(data.user_name.as_deref()).or(resource.name.as_deref()),
        data.principal_id.as_deref(),
        non_empty(data.access_key_id.as_deref()).or(resource.uid.as_deref()),
    ))
}

/// CloudTrail's principal types, as products write them in `user.type`.
const AWS_PRINCIPAL_TYPES: [&str; 5] = ["AssumedRole", "Role", "IAMUser", "Root", "FederatedUser"];

/// The principal an OCSF actor is, from (in order) the user's ARN (`user.uid`), the
/// session's issuer when it is a role (an assumed role's session), or a product's own
/// principal type with a name. Any other actor with a name is a principal of a type
/// cutoff does not know (alert only); one without is not an IAM principal. The
/// actor's stated account must be the one its ARN names.
fn ocsf_actor(
    actor: &Actor,
    finding_account: Option<&str>,
    partition: Partition,
) -> Result<Option<NamedPrincipal>, InvalidValue> {
    let Some(user) = actor.user.as_ref() else {
        return Ok(None);
    };
    let uid = non_empty(user.uid.as_deref());
    let stated_account = user
        .account
        .as_ref()
        .and_then(|a| non_empty(a.uid.as_deref()));
    // A key of the wrong shape says nothing about which principal this is: dropped.
    let key = non_empty(user.credential_uid.as_deref()).and_then(|k| AccessKeyId::parse(k).ok());
    let issuer = actor
        .session
        .as_ref()
        .and_then(|s| non_empty(s.issuer.as_deref()));
    let issuer_is_role = issuer
        .map(PrincipalArn::parse)
        .transpose()?
        .is_some_and(|arn| matches!(arn.resource, PrincipalResource::Role { .. }));
    let (mut target, unique_id) = if let Some(arn) = uid.filter(|u| u.starts_with("arn:")) {
        (arn_target(arn, partition)?, None)
    } else if let Some(role_arn) = issuer.filter(|_| issuer_is_role) {
        let mut target = arn_target(role_arn, partition)?;
        // A principal id (`AROA…:session`) names the session and the role's id.
        target.session = uid
            .and_then(|u| u.split_once(':'))
            .and_then(|(_, session)| SessionName::parse(session).ok());
        let unique_id = unique_id_of(target.kind, uid)?;
        (target, unique_id)
    } else {
        let user_type = user.user_type.as_deref().unwrap_or("");
        if !AWS_PRINCIPAL_TYPES.contains(&user_type) && non_empty(user.name.as_deref()).is_none() {
            return Ok(None);
        }
        principal_from_access_key(
            stated_account.or(finding_account),
            Some(user_type),
            user.name.as_deref(),
            uid,
            None,
        )?
    };
    if let Some(stated) = stated_account {
        let stated = Account::parse(stated)?;
        if stated != target.account {
            return Err(InvalidValue {
                what: "OCSF actor",
                excerpt: excerpt(stated.as_str()),
                why: "its user.account.uid is not the account its ARN names",
            });
        }
    }
    target.access_key_id = key;
    Ok(Some((target, unique_id)))
}

#[cfg(test)]
mod tests;
