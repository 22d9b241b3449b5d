//! GuardDuty attack sequences (Extended Threat Detection): one finding that correlates
//! many signals and names the actors behind them. Each principal among the actors gets
//! a decision of its own, by the rules of any GuardDuty finding; what the actors only
//! touched (the sequence's resources) is never revoked.

use chrono::{DateTime, Utc};

use super::{
    Decision, Evidence, InvalidValue, NamedPrincipal, Principals, Verdict, arn_target, finding_ref,
    graded, merge_unique_id, non_empty, not_to_act_on, principal_from_access_key, region_of,
    timestamp,
};
use crate::event::Scope;
use crate::event::guardduty::{Actor, GuardDutyFinding, Sequence, Signal, instant};
use crate::principal::{
    AccessKeyId, Account, Partition, PrincipalArn, PrincipalResource, SessionName, Target,
    TargetKind, UniqueId, excerpt,
};
use crate::settings::TriageConfig;

/// CloudTrail's principal types that name a role's session.
const ROLE_TYPES: [&str; 2] = ["AssumedRole", "Role"];
/// The most sessions a reason lists by name (a queued request's reason is bounded).
const SESSIONS_LISTED: usize = 3;

/// One principal among the sequence's actors, merged over its mentions.
#[derive(Debug, Clone)]
struct ActorEntry {
    /// The first mention's session; its key only while every mention named the same
    /// key and session (a key stands for its own session).
    target: Target,
    unique_id: Option<UniqueId>,
    /// Two mentions gave different unique ids: none is kept, whatever comes after.
    id_conflicted: bool,
    /// Two mentions named different sessions or keys: no key is kept.
    key_conflicted: bool,
    /// The latest time by which every session of this principal that the sequence
    /// names had been issued (None once one of them has no such time).
    issued_by: Option<DateTime<Utc>>,
    unbounded: bool,
    /// The account an actor's activity is stated in, when it is not the finding's (and
    /// no role's issuer says whose the principal is).
    stated_elsewhere: Option<String>,
    /// Whether a mention's session issuer placed the role in its account.
    issuer_seen: bool,
    /// Its sessions, in the order named (the first is the decision's).
    sessions: Vec<SessionName>,
    /// A long-term key of it that the sequence touched rather than used.
    touched_key: bool,
}

impl ActorEntry {
    /// The identity of a mention's entry: the principal, and for a user's long-term
    /// key the key too (each must be set inactive, and a request carries one).
    fn same(&self, t: &Target) -> bool {
        let long_term = |t: &Target| t.access_key_id.clone().filter(AccessKeyId::is_long_term);
        let o = &self.target;
        o.account == t.account
            && o.kind == t.kind
            && o.name == t.name
            && (if self.touched_key {
                o.access_key_id.clone()
            } else {
                long_term(o)
            }) == long_term(t)
    }

    /// Whether the sequence shows which account's role this is: a session's issuer,
    /// or one unique id the revoker checks.
    fn unanchored(&self) -> Option<&'static str> {
        (self.target.kind.is_role_like() && !self.issuer_seen && self.unique_id.is_none())
            .then_some(
                "neither its session's issuer nor one role id says which account's role it is",
            )
    }
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
    let (actors, invalid_actors, touched) =
        sequence_principals(finding, sequence, &finding_account, config.partition);
    let shown = actors.first().map(|e| e.target.clone());

    if let Some(why) = not_to_act_on(finding) {
        return vec![decide(Decision::ignore(why).with_target(shown))];
    }
    let Some(severity) = severity else {
        return vec![decide(
            Decision::ignore("finding has no numeric severity: cannot grade it").with_target(shown),
        )];
    };
    if actors.is_empty()
        && invalid_actors.is_empty()
        && touched.entries.is_empty()
        && touched.errors.is_empty()
    {
        return vec![decide(Decision::ignore(
            "the attack sequence names no actor with IAM credentials (service.detection.sequence.actors) and no access key it touched",
        ))];
    }

    let mut decisions = Vec::new();
    for actor in actors {
        let mut evidence = evidence.clone();
        evidence.unique_id = actor.unique_id.clone();
        evidence.first_activity = actor.issued_by;
        let decide = |d: Decision| {
            d.with_finding(reference.clone())
                .with_evidence(evidence.clone())
        };
        decisions.push(decide(actor_decision(
            &actor,
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
        invalid_actors
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
    actor: &ActorEntry,
    severity: f64,
    finding_account: &Account,
    config: &TriageConfig,
) -> Decision {
    let target = actor.target.clone();
    let facts = actor;
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
    if let Some(why) = facts.unanchored() {
        return Decision::new(
            Verdict::Alert,
            format!("the attack sequence's actor {target}: {why}; alert only"),
        )
        .with_target(Some(target));
    }
    let mut decision = graded(severity, target, config);
    if matches!(decision.decision, Verdict::Revoke | Verdict::Ask) {
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
/// named many times, in many sessions, is one decision; a user's long-term key is an
/// entry of its own, as each must be set inactive), the actors that name one
/// invalidly, and the principals of the access keys the sequence only touched.
fn sequence_principals(
    finding: &GuardDutyFinding,
    sequence: &Sequence,
    finding_account: &Account,
    partition: Partition,
) -> (Vec<ActorEntry>, Vec<InvalidValue>, Principals) {
    let fallback = sequence_issued_by(finding, sequence);
    let mut actors: Vec<ActorEntry> = Vec::new();
    let mut invalid = Vec::new();
    for (index, actor) in sequence.actors.iter().enumerate() {
        let actor = match actor {
            Ok(actor) => actor,
            Err(serde) => {
                invalid.push(InvalidValue {
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
                invalid.push(e);
                continue;
            }
        };
        let (target, unique_id) = found.principal;
        // Skipping the write is safe only if every session is covered: the latest
        // issue time wins, and an unknown one leaves none.
        let issued_by = actor_issued_by(actor, &sequence.signals).or(fallback);
        match actors.iter_mut().find(|e| e.same(&target)) {
            Some(entry) => {
                if entry.target.access_key_id != target.access_key_id
                    || entry.target.session != target.session
                {
                    entry.key_conflicted = true;
                    if !entry
                        .target
                        .access_key_id
                        .as_ref()
                        .is_some_and(AccessKeyId::is_long_term)
                    {
                        entry.target.access_key_id = None;
                    }
                }
                if let Some(session) = target.session
                    && !entry.sessions.contains(&session)
                {
                    entry.sessions.push(session);
                }
                merge_unique_id(&mut entry.unique_id, &mut entry.id_conflicted, unique_id);
                match issued_by {
                    Some(t) if !entry.unbounded => {
                        entry.issued_by = Some(entry.issued_by.map_or(t, |k| k.max(t)));
                    }
                    _ => {
                        entry.unbounded = true;
                        entry.issued_by = None;
                    }
                }
                if entry.stated_elsewhere.is_none() {
                    entry.stated_elsewhere = found.stated_elsewhere;
                }
                entry.issuer_seen |= found.issuer_seen;
            }
            None => actors.push(ActorEntry {
                sessions: target.session.iter().cloned().collect(),
                target,
                unique_id,
                id_conflicted: false,
                key_conflicted: false,
                issued_by,
                unbounded: issued_by.is_none(),
                stated_elsewhere: found.stated_elsewhere,
                issuer_seen: found.issuer_seen,
                touched_key: false,
            }),
        }
    }
    // A role whose issuer places it in an account is that account's, whatever account
    // another of its sessions' activity is stated in.
    for entry in &mut actors {
        if entry.issuer_seen {
            entry.stated_elsewhere = None;
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
        let of_actor = principal.as_ref().ok().and_then(|(t, _)| {
            actors.iter().position(|e| {
                let o = &e.target;
                o.account == t.account && o.kind == t.kind && o.name == t.name
            })
        });
        match (principal, of_actor) {
            // An actor's own key: a user's long-term key that its actors did not use
            // (one the attacker created for it, say) is set inactive too, a decision
            // of its own; anything else of an actor adds nothing (the deny covers its
            // sessions).
            (Ok((t, id)), Some(of)) => {
                let new_long_term = t.kind == TargetKind::User
                    && t.access_key_id
                        .as_ref()
                        .is_some_and(AccessKeyId::is_long_term)
                    && !actors
                        .iter()
                        .any(|e| e.target.access_key_id == t.access_key_id);
                if new_long_term {
                    let actor = &actors[of];
                    let entry = ActorEntry {
                        sessions: Vec::new(),
                        unique_id: id.or_else(|| actor.unique_id.clone()),
                        touched_key: true,
                        key_conflicted: false,
                        ..actor.clone()
                    };
                    actors.push(ActorEntry { target: t, ..entry });
                }
            }
            (principal, None) => {
                touched.add(principal);
            }
            (Err(_), Some(_)) => {}
        }
    }
    (actors, invalid, touched)
}

/// An actor read as a principal.
struct FoundActor {
    principal: NamedPrincipal,
    /// The account its activity is stated in (`user.account.uid`), when it is not the
    /// finding's and no role's issuer says whose the principal is.
    stated_elsewhere: Option<String>,
    /// Whether its session's issuer placed the role in its account.
    issuer_seen: bool,
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
    let stated_elsewhere = stated
        .filter(|s| role_issuer.is_none() && s != finding_account)
        .map(|s| s.to_string());
    Ok(Some(FoundActor {
        principal: (target, unique_id),
        stated_elsewhere,
        issuer_seen: role_issuer.is_some(),
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
