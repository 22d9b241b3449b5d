//! Identity Center users (issue [11] item 6), pure: who an `AWSReservedSSO_…` session
//! is, and the deny AWS's guidance puts in the inline policy of every permission set
//! the user can use: `Deny *` when `identitystore:userId` is theirs, with no time
//! condition, since whoever holds their access-portal session or cached SSO token
//! mints fresh role credentials after any cutoff.
//!
//! `identitystore:userId` rather than `aws:userid`: it is the identity store's own id
//! for the person, which does not change when their user name or email does.
//!
//! The permission set's inline policy has two limits: `PutInlinePolicyToPermissionSet`
//! takes at most 32,768 characters, and Identity Center provisions it into each
//! account as the inline policy of the reserved role, where IAM's role budget applies
//! (10,240 characters, whitespace not counted). A deny that would not fit is refused
//! here, before any call, rather than failing in provisioning account by account.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::principal::{InvalidValue, PrincipalName, SessionName, excerpt};

/// `PutInlinePolicyToPermissionSet`'s most.
pub const PERMISSION_SET_INLINE_MAX: usize = 32_768;
/// IAM's budget for a role's inline policies (whitespace not counted): the
/// provisioned role holds the permission set's inline policy.
pub const PROVISIONED_ROLE_INLINE_MAX: usize = 10_240;
/// The condition key AWS's guidance names.
pub const USER_ID_KEY: &str = "identitystore:userId";
const SID_PREFIX: &str = "CutoffDenyIdentityCenterUser";
const RESERVED_PREFIX: &str = "AWSReservedSSO_";

fn invalid(what: &'static str, input: &str, why: &'static str) -> InvalidValue {
    InvalidValue {
        what,
        excerpt: excerpt(input),
        why,
    }
}

/// An identity store user id: a UUID, optionally behind a ten-hex-digit prefix and a
/// dash (the identity store API's pattern).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdentityStoreUserId(String);

impl IdentityStoreUserId {
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let uuid = match input.len() {
            36 => input,
            47 if input.as_bytes()[10] == b'-'
                && input[..10]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
            {
                &input[11..]
            }
            _ => {
                return Err(invalid(
                    "identity store user id",
                    input,
                    "a UUID, optionally after ten hex digits and a dash",
                ));
            }
        };
        let groups: Vec<&str> = uuid.split('-').collect();
        let shaped = groups.len() == 5
            && groups
                .iter()
                .zip([8, 4, 4, 4, 12])
                .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
        if !shaped {
            return Err(invalid(
                "identity store user id",
                input,
                "a UUID, optionally after ten hex digits and a dash",
            ));
        }
        // The identity store writes them in lowercase, and `StringEquals` compares
        // case-sensitively: an uppercase spelling would deny nobody.
        Ok(Self(input.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for IdentityStoreUserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whose session an `AWSReservedSSO_<permission set>_<hex>` role session is: the
/// permission set's name, and the user name the session is named for (Identity Center
/// names each session after the user who signed in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoSession {
    pub permission_set: String,
    pub user_name: String,
}

/// The Identity Center user and permission set behind a role session, when the role
/// is a permission set's (`AWSReservedSSO_<name>_<16 hex digits>`). The name only says
/// what to look up: the user is resolved through the identity store, never trusted
/// from the name alone.
pub fn sso_session(role: &PrincipalName, session: &SessionName) -> Option<SsoSession> {
    let rest = role.as_str().strip_prefix(RESERVED_PREFIX)?;
    let (name, suffix) = rest.rsplit_once('_')?;
    let hex = suffix.len() == 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex || name.is_empty() {
        return None;
    }
    Some(SsoSession {
        permission_set: name.to_owned(),
        user_name: session.as_str().to_owned(),
    })
}

/// The statement's Sid for `user`: one per user, letters and digits only.
fn sid(user: &IdentityStoreUserId) -> String {
    let digest: String = Sha256::digest(user.as_str().as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{SID_PREFIX}{digest}")
}

/// `Deny *` for one Identity Center user, whatever session they use: no time
/// condition (a cutoff would let the tokens they still hold mint new sessions).
pub fn user_deny_statement(user: &IdentityStoreUserId) -> Value {
    json!({
        "Sid": sid(user),
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"StringEquals": {USER_ID_KEY: user.as_str()}}
    })
}

/// Why a permission set's inline policy cannot take the deny.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InlineError {
    #[error(
        "the permission set's inline policy cannot be read ({0}): cutoff does not overwrite what it cannot read"
    )]
    Unreadable(String),
    #[error(
        "with the deny, the policy would be {size} characters, over {limit} ({which}); make room"
    )]
    TooLarge {
        size: usize,
        limit: usize,
        which: &'static str,
    },
}

/// What adding or removing the deny comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InlineChange {
    /// The document to put.
    Put(String),
    /// The inline policy would be empty: delete it.
    Delete,
    /// Nothing to write.
    Unchanged,
}

fn statements(existing: Option<&str>) -> Result<(Map<String, Value>, Vec<Value>), InlineError> {
    let Some(text) = existing.filter(|t| !t.trim().is_empty()) else {
        return Ok((
            Map::from_iter([("Version".to_owned(), json!("2012-10-17"))]),
            Vec::new(),
        ));
    };
    let mut document = match crate::json::from_str(text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(InlineError::Unreadable("not a JSON object".to_owned())),
        Err(e) => return Err(InlineError::Unreadable(e.to_string())),
    };
    let list = match document.remove("Statement") {
        None => Vec::new(),
        Some(Value::Array(list)) => list,
        Some(one @ Value::Object(_)) => vec![one],
        Some(_) => {
            return Err(InlineError::Unreadable(
                "Statement is neither a statement nor a list of them".to_owned(),
            ));
        }
    };
    Ok((document, list))
}

fn finish(mut document: Map<String, Value>, list: Vec<Value>) -> Result<InlineChange, InlineError> {
    if list.is_empty() {
        return Ok(InlineChange::Delete);
    }
    document.insert("Statement".to_owned(), Value::Array(list));
    let text = Value::Object(document).to_string();
    let raw = text.chars().count();
    if raw > PERMISSION_SET_INLINE_MAX {
        return Err(InlineError::TooLarge {
            size: raw,
            limit: PERMISSION_SET_INLINE_MAX,
            which: "PutInlinePolicyToPermissionSet's limit",
        });
    }
    let compact = text.chars().filter(|c| !c.is_whitespace()).count();
    if compact > PROVISIONED_ROLE_INLINE_MAX {
        return Err(InlineError::TooLarge {
            size: compact,
            limit: PROVISIONED_ROLE_INLINE_MAX,
            which: "IAM's inline budget of the role it is provisioned as",
        });
    }
    Ok(InlineChange::Put(text))
}

/// The permission set's inline policy with `user` denied; every other statement kept
/// as it is. A statement carrying cutoff's Sid for the user but saying something else
/// is replaced by the deny: the Sid is cutoff's.
pub fn add_user_deny(
    existing: Option<&str>,
    user: &IdentityStoreUserId,
) -> Result<InlineChange, InlineError> {
    let (document, mut list) = statements(existing)?;
    let ours = user_deny_statement(user);
    let sid = sid(user);
    if list.contains(&ours) {
        return Ok(InlineChange::Unchanged);
    }
    list.retain(|s| s.get("Sid").and_then(Value::as_str) != Some(sid.as_str()));
    list.push(ours);
    finish(document, list)
}

/// The permission set's inline policy without cutoff's deny of `user`.
pub fn remove_user_deny(
    existing: Option<&str>,
    user: &IdentityStoreUserId,
) -> Result<InlineChange, InlineError> {
    let (document, mut list) = statements(existing)?;
    let sid = sid(user);
    let before = list.len();
    list.retain(|s| s.get("Sid").and_then(Value::as_str) != Some(sid.as_str()));
    if list.len() == before {
        return Ok(InlineChange::Unchanged);
    }
    finish(document, list)
}

/// The most a service control policy holds, in characters.
pub const SCP_MAX: usize = 5_120;
/// The Sid of the statement cutoff's service control policy keeps when it denies
/// nobody: a policy needs a statement, and an `Allow` would widen an Organization
/// whose SCPs allow only what they list.
pub const SCP_PLACEHOLDER_SID: &str = "CutoffDeniesNobody";

/// The statement of cutoff's service control policy when it denies nobody: a deny no
/// identity store id can match (ids are UUIDs). The template creates the policy so.
pub fn scp_placeholder() -> Value {
    json!({
        "Sid": SCP_PLACEHOLDER_SID,
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"StringEquals": {USER_ID_KEY: "no-identity-store-user"}}
    })
}

fn finish_scp(
    mut document: Map<String, Value>,
    mut list: Vec<Value>,
) -> Result<InlineChange, InlineError> {
    if list.is_empty() {
        list.push(scp_placeholder());
    }
    document.insert("Statement".to_owned(), Value::Array(list));
    let text = Value::Object(document).to_string();
    let size = text.chars().count();
    if size > SCP_MAX {
        return Err(InlineError::TooLarge {
            size,
            limit: SCP_MAX,
            which: "a service control policy's most",
        });
    }
    Ok(InlineChange::Put(text))
}

/// The SCP variant: cutoff's own service control policy with `user` denied (the
/// placeholder dropped once someone is), every other statement kept.
pub fn scp_with_user_denied(
    existing: &str,
    user: &IdentityStoreUserId,
) -> Result<InlineChange, InlineError> {
    let (document, mut list) = statements(Some(existing))?;
    let ours = user_deny_statement(user);
    if list.contains(&ours) {
        return Ok(InlineChange::Unchanged);
    }
    let sid = sid(user);
    list.retain(|s| {
        let this = s.get("Sid").and_then(Value::as_str);
        this != Some(sid.as_str()) && this != Some(SCP_PLACEHOLDER_SID)
    });
    list.push(ours);
    finish_scp(document, list)
}

/// The SCP variant: cutoff's service control policy without its deny of `user` (the
/// placeholder back when nobody is left).
pub fn scp_without_user(
    existing: &str,
    user: &IdentityStoreUserId,
) -> Result<InlineChange, InlineError> {
    let (document, mut list) = statements(Some(existing))?;
    let sid = sid(user);
    let before = list.len();
    list.retain(|s| s.get("Sid").and_then(Value::as_str) != Some(sid.as_str()));
    if list.len() == before {
        return Ok(InlineChange::Unchanged);
    }
    finish_scp(document, list)
}

/// Whether the document holds cutoff's statement for `user`, whatever it says now
/// (what a release removes); an unreadable document may, and is looked at again.
pub fn holds_user_statement(document: &str, user: &IdentityStoreUserId) -> bool {
    let sid = sid(user);
    statements(Some(document)).map_or(true, |(_, list)| {
        list.iter()
            .any(|s| s.get("Sid").and_then(Value::as_str) == Some(sid.as_str()))
    })
}

/// Whether the document denies `user` as cutoff writes it (the read-back).
pub fn denies_user(document: &str, user: &IdentityStoreUserId) -> bool {
    statements(Some(document)).is_ok_and(|(_, list)| list.contains(&user_deny_statement(user)))
}

/// Where the deny of one permission set stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermissionSetState {
    /// In its inline policy, read back, and provisioned to every account listed.
    Denied,
    /// Written, but Identity Center had not finished provisioning it when cutoff
    /// stopped waiting: the accounts listed may still let the user in.
    Provisioning,
    /// Not written, or not provisioned: `note` says why.
    Failed,
    /// Removed again (a release).
    Released,
    /// A dry run: what would be written.
    WouldDeny,
}

/// What a containment of an Identity Center user did: deny them, or lift the deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SsoAction {
    Deny,
    Release,
}

/// Accounts listed per permission set at most (the outcome travels through
/// EventBridge, 256 KB an event): `accounts_total` says how many there are.
pub const ACCOUNTS_LISTED: usize = 20;
/// Permission sets listed in an outcome at most (those not done first):
/// `permission_sets_total` says how many there are.
pub const SETS_LISTED: usize = 50;

/// One permission set, and what cutoff did to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionSetDeny {
    pub arn: String,
    pub name: String,
    /// The accounts the user can use it in (directly or through a group), the first
    /// [`ACCOUNTS_LISTED`] of them.
    pub accounts: Vec<crate::principal::Account>,
    /// How many accounts the user can use it in.
    #[serde(default)]
    pub accounts_total: usize,
    pub state: PermissionSetState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What an Identity Center user's containment did, for the outcome and the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoContainment {
    pub action: SsoAction,
    pub user_name: String,
    pub user_id: String,
    pub instance_arn: String,
    pub permission_sets: Vec<PermissionSetDeny>,
    /// How many permission sets there are, listed or not.
    #[serde(default)]
    pub permission_sets_total: usize,
    /// The SCP variant: cutoff's service control policy, and where its deny stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_control_policy: Option<ScpDeny>,
    /// What only a person can do: the user stays enabled in their identity source.
    pub to_do: String,
}

/// The deny in cutoff's service control policy (the SCP variant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScpDeny {
    pub policy_id: String,
    pub state: PermissionSetState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What cutoff cannot do: AWS offers no API call for it to disable a user.
pub const DISABLE_USER: &str = "disable the user in their identity source: in the IAM Identity Center console (Users, the user, Disable user access) when Identity Center is the identity source, or at your external identity provider when it is connected to one (a user re-enabled there is re-enabled by the next SCIM sync); the deny stays until an operator releases it";

#[cfg(test)]
mod tests;
