//! GuardDuty attack sequences (Extended Threat Detection): one finding that correlates
//! many signals and names the actors behind them. Each principal among the actors gets
//! a decision of its own, by the rules of any GuardDuty finding; what the actors only
//! touched (the sequence's resources) is never revoked.

use chrono::{DateTime, Utc};

use super::{
    Decision, Evidence, InvalidValue, NamedPrincipal, Verdict, add_principal, arn_target,
    finding_ref, graded, non_empty, principal_from_access_key, region_of, timestamp,
};
use crate::event::Scope;
use crate::event::guardduty::{Actor, GuardDutyFinding, Sequence, Signal, instant};
use crate::principal::{
    AccessKeyId, Account, Partition, PrincipalArn, PrincipalResource, SessionName, Target, excerpt,
};
use crate::settings::TriageConfig;

/// CloudTrail's principal types that name a role's session.
const ROLE_TYPES: [&str; 2] = ["AssumedRole", "Role"];

/// One principal among the sequence's actors.
struct ActorPrincipal {
    principal: NamedPrincipal,
    /// The latest time by which every session of this principal that the sequence
    /// names had been issued (None when one of them has no such time).
    issued_by: Option<DateTime<Utc>>,
    /// The account the actor's activity is stated in, when it is not the finding's.
    stated_account: Option<String>,
    /// The sessions merged into this decision beyond the first.
    other_sessions: Vec<SessionName>,
}

pub(super) fn attack_sequence(finding: &GuardDutyFinding, config: &TriageConfig) -> Vec<Decision> {
    let severity = finding.severity();
    let reference = match finding_ref(
        finding.id.as_deref(),
        finding.finding_type.as_deref(),
        severity,
        finding.is_sample(),
    ) {
        Ok(r) => r,
        Err(m) => return vec![Decision::invalid(m.0)],
    };
    let evidence = Evidence {
        updated_at: timestamp(finding.updated_at.as_deref()),
        first_activity: None,
        unique_id: None,
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
        return vec![decide(Decision::ignore(
            "GuardDuty finding has no id: not a finding cutoff can act on",
        ))];
    }
    let finding_account = match Account::parse(finding.account_id.as_deref().unwrap_or("")) {
        Ok(account) => account,
        Err(e) => {
            return vec![decide(Decision::invalid(format!(
                "the finding's accountId is not an account: {e}"
            )))];
        }
    };
    let empty = Sequence::default();
    let sequence = finding.sequence().unwrap_or(&empty);
    let (actors, mut errors) =
        actor_principals(finding, sequence, &finding_account, config.partition);
    let (touched, touched_errors) = touched_principals(sequence, &finding_account, &actors);
    errors.extend(touched_errors);
    let shown = actors.first().map(|a| a.principal.0.clone());

    if finding.is_sample() {
        return vec![decide(
            Decision::ignore("sample finding (generated for testing): never acted on")
                .with_target(shown),
        )];
    }
    if finding.is_archived() {
        return vec![decide(
            Decision::ignore("archived finding: already handled or suppressed").with_target(shown),
        )];
    }
    let Some(severity) = severity else {
        return vec![decide(
            Decision::ignore("finding has no numeric severity: cannot grade it").with_target(shown),
        )];
    };
    if actors.is_empty() && touched.is_empty() && errors.is_empty() {
        return vec![decide(Decision::ignore(
            "the attack sequence names no actor with IAM credentials (service.detection.sequence.actors) and no access key it touched",
        ))];
    }

    let mut decisions = Vec::new();
    for actor in actors {
        let (target, unique_id) = actor.principal;
        let mut evidence = evidence.clone();
        evidence.unique_id = unique_id;
        evidence.first_activity = actor.issued_by;
        let decide = |d: Decision| {
            d.with_finding(reference.clone())
                .with_evidence(evidence.clone())
        };
        // The principal's own account (a role's, from its session's issuer), and the
        // account the activity is stated in, must both be the finding's.
        let elsewhere = if target.account != finding_account {
            Some(target.account.as_str().to_owned())
        } else {
            actor.stated_account.clone()
        };
        if let Some(other) = elsewhere {
            decisions.push(decide(
                Decision::new(
                    Verdict::Alert,
                    format!(
                        "the attack sequence's actor {target} is of account {other}, not the finding's account {finding_account}: cutoff revokes a principal only on a finding of its own account; alert only, investigate both"
                    ),
                )
                .with_target(Some(target)),
            ));
            continue;
        }
        let mut decision = decide(graded(severity, target, config));
        if decision.decision == Verdict::Revoke {
            decision.reason = format!(
                "an actor of the attack sequence, whose credentials it implicates: {}",
                decision.reason
            );
        }
        if !actor.other_sessions.is_empty() {
            let sessions: Vec<&str> = actor.other_sessions.iter().map(|s| s.as_str()).collect();
            decision.reason.push_str(&format!(
                "; the sequence names this principal in {} more session(s) ({}), all covered by one role-wide deny",
                sessions.len(),
                sessions.join(", ")
            ));
        }
        decisions.push(decision);
    }
    for (target, unique_id) in touched {
        let mut d = decide(if severity < config.alert_severity {
            Decision::ignore(format!(
                "severity {severity} is below the alert threshold {}",
                config.alert_severity
            ))
            .with_target(Some(target))
        } else {
            Decision::new(
                Verdict::Alert,
                format!(
                    "{target} is an access key's principal the attack sequence touched, not one of its actors: never revoked on this finding; alert only, check what was done to it"
                ),
            )
            .with_target(Some(target))
        });
        d.evidence.unique_id = unique_id;
        decisions.push(d);
    }
    decisions.extend(
        errors
            .iter()
            .map(|e| decide(Decision::invalid(e.to_string()))),
    );
    decisions
}

/// The principals among the sequence's actors, one per principal (an actor named many
/// times, in many sessions, is one decision), and the actors that name one invalidly.
fn actor_principals(
    finding: &GuardDutyFinding,
    sequence: &Sequence,
    finding_account: &Account,
    partition: Partition,
) -> (Vec<ActorPrincipal>, Vec<InvalidValue>) {
    let fallback = sequence_issued_by(finding, sequence);
    let mut merged: Vec<ActorPrincipal> = Vec::new();
    let mut errors = Vec::new();
    for actor in &sequence.actors {
        let (principal, stated_account) = match actor_principal(actor, finding_account, partition) {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let issued_by = actor_issued_by(actor, &sequence.signals).or(fallback);
        let (target, _) = &principal;
        let same = |a: &&mut ActorPrincipal| {
            let t = &a.principal.0;
            t.account == target.account && t.kind == target.kind && t.name == target.name
        };
        match merged.iter_mut().find(same) {
            Some(kept) => {
                if let Some(session) = &target.session
                    && kept.principal.0.session.as_ref() != Some(session)
                    && !kept.other_sessions.contains(session)
                {
                    kept.other_sessions.push(session.clone());
                }
                // Skipping the write is safe only if every session is covered: the
                // latest issue time wins, and an unknown one leaves none.
                kept.issued_by = kept.issued_by.zip(issued_by).map(|(a, b)| a.max(b));
                if kept.stated_account.is_none() {
                    kept.stated_account = stated_account;
                }
                let mut principals = vec![kept.principal.clone()];
                add_principal(&mut principals, &mut Vec::new(), Ok(principal));
                if let Some(first) = principals.pop() {
                    kept.principal = first;
                }
            }
            None => merged.push(ActorPrincipal {
                principal,
                issued_by,
                stated_account,
                other_sessions: Vec::new(),
            }),
        }
    }
    (merged, errors)
}

/// The principal an actor is: a role (its session's issuer when that is a role, which
/// names the role's own account, else the actor's name), a user, root or a federated
/// user, by CloudTrail's type; an unknown type with a name is a principal cutoff does
/// not know how to revoke (alert only). An actor without a user is not an IAM
/// principal. Also returns the account the actor's activity is stated in
/// (`user.account.uid`), when it is not the finding's.
#[allow(clippy::type_complexity)]
fn actor_principal(
    actor: &Actor,
    finding_account: &Account,
    partition: Partition,
) -> Result<Option<(NamedPrincipal, Option<String>)>, InvalidValue> {
    let Some(user) = actor.user.as_ref() else {
        return Ok(None);
    };
    let user_type = user.user_type.as_deref().unwrap_or("");
    let name = non_empty(user.name.as_deref());
    let issuer = actor
        .session
        .as_ref()
        .and_then(|s| non_empty(s.issuer.as_deref()));
    let role_issuer = match issuer {
        Some(arn) if ROLE_TYPES.contains(&user_type) => {
            let parsed = PrincipalArn::parse(arn)?;
            matches!(parsed.resource, PrincipalResource::Role { .. })
                .then(|| arn_target(arn, partition))
                .transpose()?
        }
        _ => None,
    };
    if name.is_none() && role_issuer.is_none() && user_type != "Root" {
        return Ok(None);
    }
    let stated = user
        .account
        .as_ref()
        .and_then(|a| non_empty(a.uid.as_deref()))
        .map(Account::parse)
        .transpose()?;
    let stated = stated.as_ref().map(Account::as_str);
    let owner = role_issuer
        .as_ref()
        .map(|r| r.account.as_str())
        .or(stated)
        .unwrap_or(finding_account.as_str());
    // A key of the wrong shape says nothing about which principal this is: dropped,
    // as GuardDuty's model leaves its format open.
    let key = non_empty(user.credential_uid.as_deref()).filter(|k| AccessKeyId::parse(k).is_ok());
    let role_name = role_issuer.as_ref().map(|r| r.name.as_str());
    let (target, unique_id) = principal_from_access_key(
        Some(owner),
        Some(user_type),
        name.or(role_name),
        user.uid.as_deref().filter(|u| !u.starts_with("arn:")),
        key,
    )?;
    if let (Some(issuer_name), Some(name)) = (role_name, name)
        && issuer_name != name
    {
        return Err(InvalidValue {
            what: "attack sequence actor",
            excerpt: excerpt(name),
            why: "its name is not the role its session's issuer names",
        });
    }
    let stated_elsewhere = stated
        .filter(|s| *s != finding_account.as_str())
        .map(str::to_owned);
    Ok(Some(((target, unique_id), stated_elsewhere)))
}

/// The latest time by which the actor's session had been issued: when the session was
/// created (GuardDuty's `session.createdTime`), or the earliest sign of the actor's
/// activity: a signal that is the actor's alone, from its first sighting; one shared
/// with other actors, only from its last (its first sighting may be another actor's).
fn actor_issued_by(actor: &Actor, signals: &[Signal]) -> Option<DateTime<Utc>> {
    let created = actor
        .session
        .as_ref()
        .and_then(|s| instant(s.created_time.as_ref()));
    let from_signals = actor.id.as_deref().and_then(|id| {
        signals
            .iter()
            .filter(|s| s.actor_ids.iter().any(|a| a == id))
            .filter_map(|s| {
                if s.actor_ids.iter().all(|a| a == id) {
                    instant(s.first_seen_at.as_ref())
                } else {
                    instant(s.last_seen_at.as_ref())
                }
            })
            .min()
    });
    match (created, from_signals) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A time by which every session the sequence names had been issued: its last
/// activity (`eventLastSeen`, and no signal seen later). None without `eventLastSeen`.
fn sequence_issued_by(finding: &GuardDutyFinding, sequence: &Sequence) -> Option<DateTime<Utc>> {
    let last = timestamp(finding.event_last_seen())?;
    Some(
        sequence
            .signals
            .iter()
            .filter_map(|s| instant(s.last_seen_at.as_ref()))
            .fold(last, DateTime::max),
    )
}

/// The principals of the access keys the sequence touched (its `ACCESS_KEY`
/// resources) that are not among its actors: alerted about, never revoked.
fn touched_principals(
    sequence: &Sequence,
    finding_account: &Account,
    actors: &[ActorPrincipal],
) -> (Vec<NamedPrincipal>, Vec<InvalidValue>) {
    let mut touched = Vec::new();
    let mut errors = Vec::new();
    for resource in &sequence.resources {
        if resource.resource_type.as_deref() != Some("ACCESS_KEY") {
            continue;
        }
        let Some(key) = resource.data.as_ref().and_then(|d| d.access_key.as_ref()) else {
            continue;
        };
        let account = non_empty(resource.account_id.as_deref()).unwrap_or(finding_account.as_str());
        let key_id = non_empty(resource.uid.as_deref()).filter(|k| AccessKeyId::parse(k).is_ok());
        let principal = principal_from_access_key(
            Some(account),
            key.user_type.as_deref(),
            key.user_name.as_deref(),
            key.principal_id.as_deref(),
            key_id,
        );
        let is_actor = |t: &Target| {
            actors.iter().any(|a| {
                let o = &a.principal.0;
                o.account == t.account && o.kind == t.kind && o.name == t.name
            })
        };
        match principal {
            Ok((t, _)) if is_actor(&t) => {}
            other => add_principal(&mut touched, &mut errors, other),
        }
    }
    (touched, errors)
}

#[cfg(test)]
mod tests;
