//! Manual requests: what an operator sends to the revoker (direct invoke) and what
//! `cutoff revoke|status|release` builds.
//!
//! Contract: `{"action":"revoke"|"status"|"release", "account":"123456789012",
//! "role"|"user"|"principal_arn": "...", "session": optional, "scope":"role"|"session",
//! "reason":"...", "requested_by":"...", "dry_run": bool}`, plus `access_key_id` (the
//! user's key to deactivate) and `force` (release a cutoff that may still matter).
//! `"action":"history"` (a role or user, `limit` entries, 1 to 1000, default 20) asks
//! for what the ledger recorded about the principal.
//! Unknown fields are refused: a typo such as `"dryrun": true` must not turn a dry run
//! into a real write.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::principal::{
    AccessKeyId, Account, InvalidValue, Partition, PrincipalArn, PrincipalName, PrincipalResource,
    SessionName, Target, TargetKind, excerpt,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManualAction {
    Revoke,
    Status,
    Release,
    /// The ledger's entries about the principal, newest first (read only).
    History,
}

impl ManualAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ManualAction::Revoke => "revoke",
            ManualAction::Status => "status",
            ManualAction::Release => "release",
            ManualAction::History => "history",
        }
    }
}

/// Role-wide deny (every session issued before the cutoff) or one session only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    #[default]
    Role,
    Session,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Role => "role",
            Scope::Session => "session",
        }
    }
}

/// Free text from an operator (`reason`, `requested_by`): at most 512 characters and
/// no control characters, so it can go into logs and notifications as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OperatorText(String);

impl OperatorText {
    pub const MAX_CHARS: usize = 512;

    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        if input.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue {
                what: "text",
                excerpt: excerpt(input),
                why: "operator text has at most 512 characters",
            });
        }
        if input.chars().any(crate::principal::is_unsafe_char) {
            return Err(InvalidValue {
                what: "text",
                excerpt: excerpt(input),
                why: "operator text has no control or invisible formatting characters (newlines, bidirectional overrides, zero-width characters)",
            });
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OperatorText {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<OperatorText> for String {
    fn from(t: OperatorText) -> String {
        t.0
    }
}

impl fmt::Display for OperatorText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated manual request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualRequest {
    pub action: ManualAction,
    pub target: Target,
    pub scope: Scope,
    pub reason: Option<OperatorText>,
    pub requested_by: Option<OperatorText>,
    pub dry_run: bool,
    pub force: bool,
    /// The partition of `principal_arn`, when the request named the principal by ARN.
    pub partition: Option<Partition>,
    /// How many ledger entries a history request asks for.
    pub history_limit: u16,
}

/// Entries a history request gets unless it says otherwise, and at most.
pub const DEFAULT_HISTORY_LIMIT: u16 = 20;
pub const MAX_HISTORY_LIMIT: u16 = 1000;

impl ManualRequest {
    /// Why the request cannot be served by a deployment in `partition`: an ARN of
    /// another partition names a principal cutoff cannot reach, and is never mapped
    /// into ours.
    pub fn refuse_partition(&self, partition: Partition) -> Option<String> {
        match self.partition {
            Some(p) if p != partition => Some(format!(
                "manual request: principal_arn is in partition {}, cutoff runs in {}",
                p.as_str(),
                partition.as_str()
            )),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManualError {
    #[error("malformed manual request: {0}")]
    Malformed(String),
    #[error("manual request: {0}")]
    Invalid(#[from] InvalidValue),
    #[error("manual request names no principal: give one of role, user or principal_arn")]
    NoPrincipal,
    #[error(
        "manual request names several principals: give only one of role, user or principal_arn"
    )]
    SeveralPrincipals,
    #[error("manual request has no account: give account, or a principal_arn that contains it")]
    NoAccount,
    #[error(
        "manual request: account {account} does not match the account {arn_account} of principal_arn"
    )]
    AccountMismatch {
        account: Account,
        arn_account: Account,
    },
    #[error("manual request: session {given} does not match the session {in_arn} of principal_arn")]
    SessionMismatch {
        given: SessionName,
        in_arn: SessionName,
    },
    #[error("manual request: {field} applies only to {applies_to}, not to a {kind}")]
    NotApplicable {
        field: &'static str,
        applies_to: &'static str,
        kind: TargetKind,
    },
    #[error("manual request: scope session needs a session name")]
    SessionScopeWithoutSession,
    #[error("manual request: limit applies only to the history action")]
    LimitWithoutHistory,
    #[error("manual request: limit is 1 to {MAX_HISTORY_LIMIT} entries, not {0}")]
    LimitOutOfRange(u64),
    #[error("manual request: the ledger keeps the history of roles and users, not of a {0}")]
    NoHistoryFor(TargetKind),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManual {
    action: ManualAction,
    #[serde(default)]
    account: Option<Account>,
    #[serde(default)]
    role: Option<PrincipalName>,
    #[serde(default)]
    user: Option<PrincipalName>,
    #[serde(default)]
    principal_arn: Option<String>,
    #[serde(default)]
    access_key_id: Option<AccessKeyId>,
    #[serde(default)]
    session: Option<SessionName>,
    #[serde(default)]
    scope: Option<Scope>,
    #[serde(default)]
    reason: Option<OperatorText>,
    #[serde(default)]
    requested_by: Option<OperatorText>,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(default)]
    force: Option<bool>,
    #[serde(default)]
    limit: Option<u64>,
}

/// Validates a manual request payload.
pub fn parse(value: Value) -> Result<ManualRequest, ManualError> {
    let raw: RawManual = serde_json::from_value(value).map_err(|e| {
        // serde's message for an invalid newtype carries our InvalidValue text; for an
        // unknown field or variant it quotes the input raw and whole: cleaned and cut
        // before it reaches a log line or an operator's terminal.
        ManualError::Malformed(crate::principal::clean_text(&e.to_string(), 300))
    })?;

    let named = [
        raw.role.is_some(),
        raw.user.is_some(),
        raw.principal_arn.is_some(),
    ]
    .into_iter()
    .filter(|b| *b)
    .count();
    if named == 0 {
        return Err(ManualError::NoPrincipal);
    }
    if named > 1 {
        return Err(ManualError::SeveralPrincipals);
    }

    let mut partition = None;
    let mut target = if let Some(arn) = raw.principal_arn.as_deref() {
        let arn = PrincipalArn::parse(arn)?;
        partition = Some(arn.partition);
        if let Some(account) = &raw.account
            && account != &arn.account
        {
            return Err(ManualError::AccountMismatch {
                account: account.clone(),
                arn_account: arn.account.clone(),
            });
        }
        let target = Target::from_arn(&arn);
        if let (
            PrincipalResource::AssumedRole {
                session: in_arn, ..
            },
            Some(given),
        ) = (&arn.resource, &raw.session)
            && in_arn != given
        {
            return Err(ManualError::SessionMismatch {
                given: given.clone(),
                in_arn: in_arn.clone(),
            });
        }
        target
    } else {
        let account = raw.account.clone().ok_or(ManualError::NoAccount)?;
        match (raw.role.clone(), raw.user.clone()) {
            (Some(role), _) => Target::role(account, role),
            (_, Some(user)) => Target::new(TargetKind::User, account, user),
            (None, None) => return Err(ManualError::NoPrincipal),
        }
    };

    if let Some(session) = raw.session {
        if !is_role_kind(target.kind) {
            return Err(ManualError::NotApplicable {
                field: "session",
                applies_to: "roles",
                kind: target.kind,
            });
        }
        target.session = Some(session);
    }
    if let Some(key) = raw.access_key_id {
        if target.kind != TargetKind::User {
            return Err(ManualError::NotApplicable {
                field: "access_key_id",
                applies_to: "IAM users",
                kind: target.kind,
            });
        }
        target.access_key_id = Some(key);
    }
    let scope = raw.scope.unwrap_or_default();
    if scope == Scope::Session {
        if !is_role_kind(target.kind) {
            return Err(ManualError::NotApplicable {
                field: "scope session",
                applies_to: "roles",
                kind: target.kind,
            });
        }
        if target.session.is_none() {
            return Err(ManualError::SessionScopeWithoutSession);
        }
    }

    let history_limit = match (raw.action, raw.limit) {
        (ManualAction::History, None) => DEFAULT_HISTORY_LIMIT,
        (ManualAction::History, Some(n)) => u16::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_HISTORY_LIMIT).contains(n))
            .ok_or(ManualError::LimitOutOfRange(n))?,
        (_, Some(_)) => return Err(ManualError::LimitWithoutHistory),
        (_, None) => DEFAULT_HISTORY_LIMIT,
    };
    // A role named like a service-linked or Identity Center role is still a role to
    // the ledger, which keys every role-like principal as a role.
    if raw.action == ManualAction::History
        && !is_role_kind(target.kind)
        && target.kind != TargetKind::User
    {
        return Err(ManualError::NoHistoryFor(target.kind));
    }

    Ok(ManualRequest {
        history_limit,
        action: raw.action,
        target,
        scope,
        reason: raw.reason,
        requested_by: raw.requested_by,
        dry_run: raw.dry_run.unwrap_or(false),
        force: raw.force.unwrap_or(false),
        partition,
    })
}

/// Role-like kinds carry sessions (service-linked and Identity Center roles too, even
/// though cutoff only alerts on them).
fn is_role_kind(kind: TargetKind) -> bool {
    matches!(
        kind,
        TargetKind::Role | TargetKind::ServiceLinkedRole | TargetKind::IdentityCenterRole
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_role_request_is_validated_into_a_target() {
        let req = parse(json!({
            "action": "revoke", "account": "123456789012", "role": "payments-api",
            "reason": "INC-42", "requested_by": "alice", "dry_run": true
        }))
        .unwrap();
        assert_eq!(req.action, ManualAction::Revoke);
        assert_eq!(req.target.kind, TargetKind::Role);
        assert_eq!(req.target.name.as_str(), "payments-api");
        assert!(req.dry_run && !req.force);
        assert_eq!(req.scope, Scope::Role);
    }

    #[test]
    fn an_assumed_role_arn_gives_role_and_session() {
        let req = parse(json!({
            "action": "revoke",
            "principal_arn": "arn:aws:sts::123456789012:assumed-role/payments-api/i-0123456789abcdef0",
            "scope": "session"
        }))
        .unwrap();
        assert_eq!(req.target.account.as_str(), "123456789012");
        assert_eq!(req.target.session.unwrap().as_str(), "i-0123456789abcdef0");
        assert_eq!(req.scope, Scope::Session);
    }

    #[test]
    fn unknown_fields_are_refused_so_typos_cannot_disable_dry_run() {
        let err = parse(
            json!({"action": "revoke", "account": "123456789012", "role": "x", "dryrun": true}),
        )
        .unwrap_err();
        assert!(matches!(err, ManualError::Malformed(_)), "{err}");
    }

    #[test]
    fn principal_is_required_and_unique() {
        assert_eq!(
            parse(json!({"action": "revoke", "account": "123456789012"})).unwrap_err(),
            ManualError::NoPrincipal
        );
        assert_eq!(
            parse(json!({"action": "revoke", "account": "123456789012", "role": "a", "user": "b"}))
                .unwrap_err(),
            ManualError::SeveralPrincipals
        );
    }

    #[test]
    fn bad_values_are_refused() {
        for payload in [
            json!({"action": "revoke", "account": "abc", "role": "a"}),
            json!({"action": "revoke", "account": "123456789012", "role": "a/b"}),
            json!({"action": "nuke", "account": "123456789012", "role": "a"}),
            json!({"action": "revoke", "account": "123456789012", "role": "a", "dry_run": "yes"}),
            json!({"action": "revoke", "account": "123456789012", "role": "a", "reason": "line\nbreak"}),
            json!({"action": "revoke", "role": "a"}),
            json!({"action": "revoke", "account": "123456789012", "role": "a", "scope": "session"}),
            json!({"action": "revoke", "account": "123456789012", "user": "u", "session": "s1"}),
            json!({"action": "revoke", "account": "123456789012", "role": "r", "access_key_id": "AKIAIOSFODNN7EXAMPLE"}),
            json!({"action": "revoke", "account": "111111111111", "principal_arn": "arn:aws:iam::123456789012:role/r"}),
            json!({"action": "revoke", "principal_arn": "arn:aws:sts::123456789012:assumed-role/r/s1", "session": "s2"}),
            json!("revoke"),
        ] {
            assert!(parse(payload.clone()).is_err(), "{payload} accepted");
        }
    }

    #[test]
    fn a_history_request_takes_a_bounded_limit_and_only_roles_and_users() {
        let history = |extra: Value| {
            let mut payload = json!({"action": "history", "account": "123456789012", "role": "r"});
            if let (Value::Object(p), Value::Object(e)) = (&mut payload, extra) {
                p.extend(e);
            }
            parse(payload)
        };
        assert_eq!(history(json!({})).unwrap().history_limit, 20);
        assert_eq!(history(json!({"limit": 1})).unwrap().history_limit, 1);
        assert_eq!(history(json!({"limit": 1000})).unwrap().history_limit, 1000);
        for limit in [0_u64, 1001, 65536, u64::MAX] {
            assert_eq!(
                history(json!({"limit": limit})).unwrap_err(),
                ManualError::LimitOutOfRange(limit)
            );
        }
        assert!(matches!(
            history(json!({"limit": -1})).unwrap_err(),
            ManualError::Malformed(_)
        ));
        assert_eq!(
            parse(json!({"action": "revoke", "account": "123456789012", "role": "r", "limit": 5}))
                .unwrap_err(),
            ManualError::LimitWithoutHistory
        );
        let profile = json!({"action": "history", "principal_arn": "arn:aws:iam::123456789012:instance-profile/web"});
        assert_eq!(
            parse(profile).unwrap_err(),
            ManualError::NoHistoryFor(TargetKind::InstanceProfile)
        );
        let user = json!({"action": "history", "account": "123456789012", "user": "bob"});
        assert_eq!(parse(user).unwrap().target.kind, TargetKind::User);
        for role in [
            "AWSReservedSSO_Admin_0123456789abcdef",
            "AWSServiceRoleForSupport",
        ] {
            let payload = json!({"action": "history", "account": "123456789012", "role": role});
            assert!(parse(payload).is_ok(), "{role}");
        }
    }

    #[test]
    fn operator_text_is_bounded() {
        assert!(OperatorText::parse(&"x".repeat(512)).is_ok());
        assert!(OperatorText::parse(&"x".repeat(513)).is_err());
    }
}
