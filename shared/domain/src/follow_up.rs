//! The follow-up of a revocation (issue [11]): after the first deny, cutoff reads
//! CloudTrail for what the stolen credential did ([`crate::chain`]) and contains what it
//! minted. Pure: the task the follow-up runs from (its JSON contract, its checks, when
//! each run is due), what to do about each link found ([`containment`]), and the
//! report a run adds to its outcome ([`ChainReport`]).
//!
//! The task reaches the revoker from an EventBridge Scheduler one-time schedule, as a
//! plain invoke: whoever may invoke the revoker can send one. So a task asks for
//! nothing by itself: the revoker runs it only for a key the ledger records cutoff
//! revoked on that principal for that finding, and everything it then does is what
//! CloudTrail, not the task, says the key did.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::chain::{ChainLink, ChainReport};
use crate::chain::{Footprint, Hop, is_region_name};
use crate::event::{ManualAction, Scope};
use crate::outcome::{RevocationRequest, Trigger};
use crate::principal::{AccessKeyId, Account, PrincipalName, Target, TargetKind, excerpt};
use crate::triage::Source;

/// The one key of a follow-up payload: `{"cutoff_follow_up": {…}}`.
pub const TASK_FIELD: &str = "cutoff_follow_up";

/// How many runs a revocation's follow-up has.
pub const RUNS: u8 = 3;

/// When run `run` starts, after the revocation: the first as soon as a one-time
/// schedule can fire (they are set to the minute), for what CloudTrail already holds
/// (the credential was used before the finding); then at +15 and +60 minutes, for the
/// events CloudTrail delivers late (typically within 15 minutes, sometimes later).
pub fn run_delay(run: u8) -> Option<Duration> {
    Some(match run {
        1 => Duration::minutes(1),
        2 => Duration::minutes(15),
        3 => Duration::minutes(60),
        _ => return None,
    })
}

/// One run of a revocation's follow-up: the payload a schedule delivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpTask {
    /// The principal revoked, with the key the finding named (the one followed).
    pub origin: Target,
    /// The finding's source and id: the ledger's key record must name the same finding.
    pub source: Source,
    pub finding_id: String,
    #[serde(default)]
    pub finding_type: Option<String>,
    /// When the finding's activity was first seen (None: it did not say; the search
    /// then starts from the run's time, and no link is taken for the owner's own use).
    #[serde(default)]
    pub first_activity: Option<DateTime<Utc>>,
    /// The region where the activity was seen: regional STS calls are recorded there.
    #[serde(default)]
    pub activity_region: Option<String>,
    /// 1 to [`RUNS`].
    pub run: u8,
}

impl FollowUpTask {
    /// The task of run `run` after `request` ended applied (or already revoked) on
    /// `revoked` (the principal as the outcome names it: an instance profile's role).
    /// None for what has no key to follow: a request naming no access key, a dry run,
    /// or a request with no finding to bind the task to.
    pub fn after(
        request: &RevocationRequest,
        revoked: &Target,
        now: DateTime<Utc>,
        run: u8,
    ) -> Option<Self> {
        let key = request.target.access_key_id.clone()?;
        if request.dry_run || request.action != ManualAction::Revoke || run_delay(run).is_none() {
            return None;
        }
        // A permission set's role is a role to the run: the ledger keys its records
        // so, and what its session minted is followed as any role session's.
        let kind = match revoked.kind {
            TargetKind::IdentityCenterRole => TargetKind::Role,
            kind => kind,
        };
        Some(Self {
            origin: Target {
                kind,
                access_key_id: Some(key),
                ..revoked.clone()
            },
            source: request.trigger.source,
            finding_id: request.trigger.finding_id.clone()?,
            finding_type: request.trigger.finding_type.clone(),
            first_activity: request.first_activity.map(|t| t.min(now)),
            activity_region: request.activity_region.clone(),
            run,
        })
    }

    /// The key followed.
    pub fn key(&self) -> Option<&AccessKeyId> {
        self.origin.access_key_id.as_ref()
    }

    /// What a task must be before anything reads it: a role or user with a key, a
    /// run that exists, a finding source, bounded text, a real region name.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), String> {
        if !matches!(self.origin.kind, TargetKind::Role | TargetKind::User) {
            return Err(format!(
                "a follow-up is about a role or a user, not a {}",
                self.origin.kind
            ));
        }
        if self.key().is_none() {
            return Err("a follow-up needs the access key to follow".to_owned());
        }
        if run_delay(self.run).is_none() {
            return Err(format!("run {} is not one of 1 to {RUNS}", self.run));
        }
        if !matches!(
            self.source,
            Source::GuardDuty | Source::SecurityHub | Source::CloudTrail | Source::Manual
        ) {
            return Err(format!(
                "a follow-up comes from a finding or an operator, not from {}",
                self.source
            ));
        }
        for (what, text, max) in [
            ("finding id", Some(&self.finding_id), 512),
            ("finding type", self.finding_type.as_ref(), 256),
        ] {
            if let Some(text) = text
                && (text.is_empty()
                    || text.chars().count() > max
                    || text.chars().any(char::is_control))
            {
                return Err(format!(
                    "{what} {} is empty, too long or has control characters",
                    excerpt(text)
                ));
            }
        }
        if let Some(region) = &self.activity_region
            && !is_region_name(region)
        {
            return Err(format!("{} is not a region", excerpt(region)));
        }
        if self.first_activity.is_some_and(|t| t > now) {
            return Err("the first activity is in the future".to_owned());
        }
        Ok(())
    }

    /// The payload a schedule delivers.
    pub fn to_payload(&self) -> Value {
        let mut map = Map::new();
        map.insert(
            TASK_FIELD.to_owned(),
            serde_json::to_value(self).unwrap_or(Value::Null),
        );
        Value::Object(map)
    }

    /// A follow-up payload (None: the payload is not one). It has the one key and
    /// nothing else; the task inside has no unknown field.
    pub fn from_payload(payload: &Value) -> Option<Result<Self, String>> {
        let object = payload.as_object()?;
        let task = object.get(TASK_FIELD)?;
        if object.len() != 1 {
            return Some(Err(format!(
                "a follow-up payload has only the key {TASK_FIELD}"
            )));
        }
        Some(serde_json::from_value(task.clone()).map_err(|e| {
            format!(
                "not a follow-up task: {}",
                crate::principal::clean_text(&e.to_string(), 300)
            )
        }))
    }

    /// The schedule's name: the same for the same revocation and run, so that a
    /// redelivered request schedules nothing twice. `cutoff-chain-<hash>-<run>`, within
    /// Scheduler's 64 characters of `[0-9a-zA-Z-_.]`.
    pub fn schedule_name(&self) -> String {
        use sha2::{Digest, Sha256};
        let key = self.key().map(AccessKeyId::as_str).unwrap_or("-");
        let identity = format!(
            "{}/{}/{}/{key}/{}",
            self.origin.account,
            self.origin.kind,
            self.origin.name.as_str().to_ascii_lowercase(),
            self.finding_id
        );
        let digest: String = Sha256::digest(identity.as_bytes())
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("cutoff-chain-{digest}-{}", self.run)
    }

    /// The trigger of what the follow-up does: the origin's finding, said to come from
    /// the chain.
    pub fn trigger(&self, reason: String) -> Trigger {
        Trigger {
            source: Source::Chain,
            finding_id: Some(self.finding_id.clone()),
            finding_type: self.finding_type.clone(),
            reason: Some(reason),
            ..Trigger::default()
        }
    }
}

/// What to do about one link of the chain.
#[derive(Debug, Clone, PartialEq)]
pub enum Containment {
    /// A revocation through the revoker's own pipeline (scope, lock, protections,
    /// audit, the owner told): a minted role session (session scope), or the user
    /// behind a session or federation token (with its long-term key).
    Revoke(Box<RevocationRequest>),
    /// A long-term key the credential created, set Inactive; its user is not denied
    /// (sessions the key minted are links of their own, found by following it).
    Deactivate {
        account: Account,
        user: PrincipalName,
        key: AccessKeyId,
    },
    /// Nothing IAM can do, or nothing cutoff deletes: told to the owner.
    Report(String),
}

/// Why a link is contained, for its revocation's trigger: what it is and where the
/// follow-up found it.
pub fn link_reason(hop: &Hop, task: &FollowUpTask) -> String {
    format!(
        "{}, found in CloudTrail {} links from key {} (finding {}); followed by cutoff",
        hop.found.describe(),
        hop.depth,
        task.key().map(AccessKeyId::as_str).unwrap_or("-"),
        excerpt(&task.finding_id)
    )
}

/// What one link calls for. `caller` is the user whose key made the call, when the
/// key followed is a user's (for a record that does not name its user).
///
/// Two rules keep the follow-up from locking out the principal's owner, who used the
/// same key before the thief did (an instance's own credentials, say):
/// - a link made before the finding's first activity is reported, not contained (it
///   may be the owner's own use), except the `GetSessionToken` that minted the
///   finding's own key: that key is the thief's, so is the one behind it;
/// - a role session that cannot be alive any more (after 12 hours) is not denied:
///   nothing of it works. A session or federation token is handled as a live one
///   whatever its age: the deny on its user costs the owner little and also covers
///   other tokens the key minted that CloudTrail has not delivered yet.
pub fn containment(
    hop: &Hop,
    task: &FollowUpTask,
    caller: Option<&PrincipalName>,
    now: DateTime<Utc>,
) -> Containment {
    let request = |target: Target, scope: Scope, expected| {
        Containment::Revoke(Box::new(RevocationRequest {
            action: ManualAction::Revoke,
            target,
            scope,
            trigger: Trigger {
                // Each run asks afresh (the idempotency marker is per update time):
                // a deny released since the last run is written again, and told.
                updated_at: Some(now),
                ..task.trigger(link_reason(hop, task))
            },
            // The link was made then: a cutoff after it covers it.
            first_activity: hop.at,
            expected_unique_id: expected,
            activity_region: None,
            event_time: None,
            dry_run: false,
            force: false,
            needs_approval: false,
        }))
    };
    let user_of = |named: &Option<PrincipalName>| named.clone().or_else(|| caller.cloned());
    // The user who minted a token is denied (its tokens, this one included), with the
    // long-term key it minted it with.
    let deny_token_user = |named: &Option<PrincipalName>, key: &AccessKeyId| match user_of(named) {
        Some(user) => request(
            Target {
                access_key_id: Some(key.clone()).filter(|k| k.is_long_term()),
                ..Target::new(TargetKind::User, hop.account.clone(), user)
            },
            Scope::Role,
            None,
        ),
        None => Containment::Report(format!(
            "{}: the record names no user to deny",
            hop.found.describe()
        )),
    };
    let mints_the_findings_key = matches!(
        &hop.found,
        Footprint::SessionToken { access_key_id, .. } if Some(access_key_id) == task.key()
    );
    let contained = matches!(
        &hop.found,
        Footprint::Session(_)
            | Footprint::SessionToken { .. }
            | Footprint::FederationToken { .. }
            | Footprint::AccessKey { .. }
    );
    if contained
        && !mints_the_findings_key
        && let Some(first_activity) = task.first_activity
    {
        match hop.at {
            Some(at) if at >= first_activity => {}
            Some(at) => {
                return Containment::Report(format!(
                    "{} at {}, before the finding's first activity ({}): it may be the owner's own use of the key, so cutoff leaves it; revoke it by hand if it is the thief's",
                    hop.found.describe(),
                    at.format("%Y-%m-%d %H:%M:%S UTC"),
                    first_activity.format("%Y-%m-%d %H:%M:%S UTC")
                ));
            }
            None => {
                return Containment::Report(format!(
                    "{}: the record has no time, so whether it came after the finding's first activity is unknown; cutoff leaves it",
                    hop.found.describe()
                ));
            }
        }
    }
    match &hop.found {
        Footprint::Session(_)
            if hop
                .at
                .is_some_and(|at| at + crate::principal::ROLE_MAX_SESSION < now) =>
        {
            Containment::Report(format!(
                "{}: expired (a role session lives at most 12 hours), nothing to deny",
                hop.found.describe()
            ))
        }
        Footprint::Session(s) => request(
            Target {
                session: Some(s.session.clone()),
                access_key_id: Some(s.access_key_id.clone()),
                ..Target::role(s.account.clone(), s.role.clone())
            },
            Scope::Session,
            Some(s.role_id.clone()),
        ),
        Footprint::SessionToken { user, with_key, .. } => deny_token_user(user, with_key),
        Footprint::FederationToken { user, .. } => deny_token_user(user, &hop.by),
        Footprint::AccessKey {
            user,
            access_key_id,
        } => match user_of(user) {
            Some(user) => Containment::Deactivate {
                account: hop.account.clone(),
                user,
                key: access_key_id.clone(),
            },
            None => Containment::Report(format!(
                "{}: the record names no user; deactivate the key by hand",
                hop.found.describe()
            )),
        },
        Footprint::RootSession { .. } => Containment::Report(hop.found.describe()),
        Footprint::Persistence { .. } => Containment::Report(format!(
            "{} in {}: left in place as evidence; review it and remove it once investigated",
            hop.found.describe(),
            hop.account
        )),
    }
}

#[cfg(test)]
mod tests;
