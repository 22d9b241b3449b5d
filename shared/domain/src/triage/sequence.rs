//! GuardDuty attack sequences (Extended Threat Detection): one finding that correlates
//! many signals and names the actors behind them. Each principal among the actors gets
//! a decision of its own, by the rules of any GuardDuty finding; what the actors only
//! touched (the sequence's resources) is never revoked.

use chrono::{DateTime, Utc};

use super::{
    Decision, Evidence, InvalidValue, NamedPrincipal, Principals, Verdict, arn_target, finding_ref,
    graded, non_empty, principal_from_access_key, region_of, timestamp,
};
use crate::event::Scope;
use crate::event::guardduty::{Actor, GuardDutyFinding, Sequence, Signal, instant};
use crate::principal::{
    AccessKeyId, Account, Partition, PrincipalArn, PrincipalResource, SessionName, Target,
    TargetKind, excerpt,
};
use crate::settings::TriageConfig;

/// CloudTrail's principal types that name a role's session.
const ROLE_TYPES: [&str; 2] = ["AssumedRole", "Role"];
/// The most sessions a reason lists by name (a queued request's reason is bounded).
const SESSIONS_LISTED: usize = 3;

/// What the sequence says about one principal among its actors, beyond its entry in
/// [`Principals`].
#[derive(Debug, Default, Clone)]
struct ActorFacts {
    /// The latest time by which every session of this principal that the sequence
    /// names had been issued (None when one of them has no such time).
    issued_by: Option<DateTime<Utc>>,
    /// Whether a mention of it named no time at all (then `issued_by` stays None).
    unbounded: bool,
    /// The account an actor's activity is stated in, when it is not the finding's.
    stated_elsewhere: Option<String>,
    /// Why the sequence does not say which account's principal this is, if it does not.
    unanchored: Option<&'static str>,
    /// Its sessions, in the order named (the first is the decision's).
    sessions: Vec<SessionName>,
    /// A long-term key of it that the sequence touched rather than used: set inactive
    /// like the keys its actors used.
    touched_key: bool,
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
    let (actors, facts, touched) =
        sequence_principals(finding, sequence, &finding_account, config.partition);
    let shown = actors.entries.first().map(|e| e.target.clone());

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
    if actors.entries.is_empty()
        && actors.errors.is_empty()
        && touched.entries.is_empty()
        && touched.errors.is_empty()
    {
        return vec![decide(Decision::ignore(
            "the attack sequence names no actor with IAM credentials (service.detection.sequence.actors) and no access key it touched",
        ))];
    }

    let mut decisions = Vec::new();
    let (actor_principals, actor_errors) = actors.into_parts();
    for ((target, unique_id), facts) in actor_principals.into_iter().zip(facts) {
        let mut evidence = evidence.clone();
        evidence.unique_id = unique_id;
        evidence.first_activity = facts.issued_by;
        let decide = |d: Decision| {
            d.with_finding(reference.clone())
                .with_evidence(evidence.clone())
        };
        decisions.push(decide(actor_decision(
            target,
            &facts,
            severity,
            &finding_account,
            config,
        )));
    }
    let (touched_principals, touched_errors) = touched.into_parts();
    for (target, unique_id) in touched_principals {
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
        actor_errors
            .iter()
            .chain(&touched_errors)
            .map(|e| decide(Decision::invalid(e.to_string()))),
    );
    decisions
}

/// The decision for one principal among the actors: below the alert threshold nothing;
/// of another account, or of no account the sequence can show, an alert; else the
/// rules of any GuardDuty finding.
fn actor_decision(
    target: Target,
    facts: &ActorFacts,
    severity: f64,
    finding_account: &Account,
    config: &TriageConfig,
) -> Decision {
    if severity < config.alert_severity {
        return graded(severity, target, config);
    }
    // The principal's own account (a role's, from its session's issuer), and the
    // account the activity is stated in, must both be the finding's.
    let elsewhere = if target.account != *finding_account {
        Some(target.account.to_string())
    } else {
        facts.stated_elsewhere.clone()
    };
    if let Some(other) = elsewhere {
        return Decision::new(
            Verdict::Alert,
            format!(
                "the attack sequence's actor {target} is of account {other}, not the finding's account {finding_account}: cutoff revokes a principal only on a finding of its own account; alert only, investigate both"
            ),
        )
        .with_target(Some(target));
    }
    if let Some(why) = facts.unanchored {
        return Decision::new(
            Verdict::Alert,
            format!("the attack sequence's actor {target}: {why}; alert only"),
        )
        .with_target(Some(target));
    }
    let mut decision = graded(severity, target, config);
    if decision.decision == Verdict::Revoke {
        let what = if facts.touched_key {
            "a long-term key of an actor of the attack sequence, which it touched (set it inactive too)"
        } else {
            "an actor of the attack sequence, whose credentials it implicates"
        };
        decision.reason = format!("{what}: {}", decision.reason);
    }
    if facts.sessions.len() > 1 {
        let others: Vec<&str> = facts.sessions[1..]
            .iter()
            .take(SESSIONS_LISTED)
            .map(|s| s.as_str())
            .collect();
        let more = facts.sessions.len() - 1 - others.len();
        decision.reason.push_str(&format!(
            "; the sequence names it in {} more session(s) ({}{}), all covered by one deny",
            facts.sessions.len() - 1,
            others.join(", "),
            if more > 0 {
                format!(", and {more} more")
            } else {
                String::new()
            }
        ));
    }
    decision
}

/// The principals among the sequence's actors (one entry per principal: an actor
/// named many times, in many sessions, is one decision; a user's second long-term key
/// is another, as each must be set inactive), the facts of each, and the principals of
/// the access keys it only touched.
fn sequence_principals(
    finding: &GuardDutyFinding,
    sequence: &Sequence,
    finding_account: &Account,
    partition: Partition,
) -> (Principals, Vec<ActorFacts>, Principals) {
    let fallback = sequence_issued_by(finding, sequence);
    let mut actors = Principals::default();
    let mut facts: Vec<ActorFacts> = Vec::new();
    for (index, actor) in sequence.actors.iter().enumerate() {
        let actor = match actor {
            Ok(actor) => actor,
            Err(serde) => {
                actors.errors.push(InvalidValue {
                    what: "attack sequence actor",
                    excerpt: format!("#{index} ({serde})"),
                    why: "it has a field of the wrong type, or is no object",
                });
                continue;
            }
        };
        let found = match actor_principal(actor, finding_account, partition) {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err(e) => {
                actors.errors.push(e);
                continue;
            }
        };
        let session = found.principal.0.session.clone();
        let Some(entry) = actors.add(Ok(found.principal)) else {
            continue;
        };
        if entry == facts.len() {
            facts.push(ActorFacts::default());
        }
        let f = &mut facts[entry];
        // Skipping the write is safe only if every session is covered: the latest
        // issue time wins, and an unknown one leaves none.
        match actor_issued_by(actor, &sequence.signals).or(fallback) {
            Some(t) if !f.unbounded => f.issued_by = Some(f.issued_by.map_or(t, |k| k.max(t))),
            _ => {
                f.unbounded = true;
                f.issued_by = None;
            }
        }
        if f.stated_elsewhere.is_none() {
            f.stated_elsewhere = found.stated_elsewhere;
        }
        if f.unanchored.is_none() {
            f.unanchored = found.unanchored;
        }
        if let Some(session) = session
            && !f.sessions.contains(&session)
        {
            f.sessions.push(session);
        }
    }
    let mut touched = Principals::default();
    for resource in &sequence.resources {
        let Some(resource) = resource.as_ref().ok() else {
            continue;
        };
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
        let actor_entry = principal.as_ref().ok().and_then(|(t, _)| {
            actors.entries.iter().position(|e| {
                let o = &e.target;
                o.account == t.account && o.kind == t.kind && o.name == t.name
            })
        });
        match (principal, actor_entry) {
            // An actor's own key: a user's long-term key that its actors did not use
            // is set inactive too (one the attacker created for it, say); anything
            // else of an actor adds nothing (the deny covers its sessions).
            (Ok((t, id)), Some(of)) => {
                let new_long_term = t.kind == TargetKind::User
                    && t.access_key_id
                        .as_ref()
                        .is_some_and(AccessKeyId::is_long_term)
                    && !actors
                        .entries
                        .iter()
                        .any(|e| e.target.access_key_id == t.access_key_id);
                if new_long_term {
                    let mut f = facts[of].clone();
                    f.touched_key = true;
                    f.sessions.clear();
                    if actors.add(Ok((t, id))) == Some(facts.len()) {
                        facts.push(f);
                    }
                }
            }
            (principal, None) => {
                touched.add(principal);
            }
            (Err(_), Some(_)) => {}
        }
    }
    (actors, facts, touched)
}

/// An actor read as a principal.
struct FoundActor {
    principal: NamedPrincipal,
    /// The account its activity is stated in (`user.account.uid`), when it is not the
    /// finding's and no role's issuer says whose the principal is.
    stated_elsewhere: Option<String>,
    /// Why the sequence does not show which account's principal this is.
    unanchored: Option<&'static str>,
}

/// The principal an actor is: a role (its session's issuer when that is a role, which
/// names the role's own account, else the actor's name), a user, root or a federated
/// user, by CloudTrail's type; an unknown type with a name is a principal cutoff does
/// not know how to revoke (alert only). An actor without a user is not an IAM
/// principal. A key or issuer of the wrong shape is dropped (GuardDuty's model leaves
/// their format open); a name IAM would refuse, or one that disagrees with the issuer,
/// makes the actor invalid.
fn actor_principal(
    actor: &Actor,
    finding_account: &Account,
    partition: Partition,
) -> Result<Option<FoundActor>, InvalidValue> {
    let Some(user) = actor.user.as_ref() else {
        return Ok(None);
    };
    let user_type = user.user_type.as_deref().unwrap_or("");
    let name = non_empty(user.name.as_deref());
    let role_issuer = actor
        .session
        .as_ref()
        .and_then(|s| non_empty(s.issuer.as_deref()))
        .filter(|_| ROLE_TYPES.contains(&user_type))
        .and_then(|arn| {
            PrincipalArn::parse(arn)
                .ok()
                .filter(|p| matches!(p.resource, PrincipalResource::Role { .. }))
                .map(|_| arn)
        })
        .map(|arn| arn_target(arn, partition))
        .transpose()?;
    if name.is_none() && role_issuer.is_none() && user_type != "Root" {
        return Ok(None);
    }
    let stated = user
        .account
        .as_ref()
        .and_then(|a| non_empty(a.uid.as_deref()))
        .map(Account::parse)
        .transpose()?;
    let owner = role_issuer
        .as_ref()
        .map(|r| r.account.as_str())
        .or(stated.as_ref().map(Account::as_str))
        .unwrap_or(finding_account.as_str());
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
    // A role's issuer says whose it is; without one, the account the activity is
    // stated in may not be the role's owner (GuardDuty says so), and only the role's
    // unique id would make the revoker check it is the one.
    let unanchored = (target.kind.is_role_like() && role_issuer.is_none() && unique_id.is_none())
        .then_some("neither its session's issuer nor a role id says which account's role it is");
    let stated_elsewhere = stated
        .filter(|s| role_issuer.is_none() && s != finding_account)
        .map(|s| s.to_string());
    Ok(Some(FoundActor {
        principal: (target, unique_id),
        stated_elsewhere,
        unanchored,
    }))
}

/// The latest time by which the actor's session had been issued. When it was created
/// (GuardDuty's `session.createdTime`, the issue time itself), unless a signal that is
/// the actor's alone was seen before that: then the actor stands for more than that
/// session, and only its last sighting bounds them all. Without a creation time, the
/// first sighting of a signal that is the actor's alone, else the last sighting of one
/// it shares (whose first sighting may be another actor's).
fn actor_issued_by(actor: &Actor, signals: &[Result<Signal, String>]) -> Option<DateTime<Utc>> {
    let created = actor
        .session
        .as_ref()
        .and_then(|s| instant(s.created_time.as_ref()));
    let id = actor.id.as_deref();
    let linked: Vec<&Signal> = signals
        .iter()
        .filter_map(|s| s.as_ref().ok())
        .filter(|s| id.is_some_and(|id| s.actor_ids.iter().any(|a| a == id)))
        .collect();
    let alone = |s: &&&Signal| id.is_some_and(|id| s.actor_ids.iter().all(|a| a == id));
    let first_alone = linked
        .iter()
        .filter(alone)
        .filter_map(|s| instant(s.first_seen_at.as_ref()))
        .min();
    let last_seen = linked
        .iter()
        .map(|s| instant(s.last_seen_at.as_ref()))
        .try_fold(None, |latest: Option<DateTime<Utc>>, t| {
            t.map(|t| Some(latest.map_or(t, |l| l.max(t))))
        })
        .flatten();
    match (created, first_alone) {
        (Some(created), Some(first)) if first < created => last_seen.map(|l| l.max(created)),
        (Some(created), _) => Some(created),
        (None, Some(first)) => Some(first),
        (None, None) => last_seen,
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
            .filter_map(|s| s.as_ref().ok())
            .filter_map(|s| instant(s.last_seen_at.as_ref()))
            .fold(last, DateTime::max),
    )
}

#[cfg(test)]
mod tests;
