//! The chain a stolen credential leaves (issue [11]): from the CloudTrail records of
//! what it did, the access it minted or kept that a deny on its own principal does not
//! stop. Pure: which records to ask for (when and where) and what each one means; the
//! follow-up that reads CloudTrail and acts on them is the application's.
//!
//! Every field read here was written by the holder of the stolen credential (the
//! request) or by AWS in answer to it (the response), so each is parsed into the
//! validated types and a record that does not parse is reported, never guessed at.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::CloudTrailEvent;
use crate::principal::{
    AccessKeyId, Account, Partition, PrincipalArn, PrincipalName, PrincipalResource, SessionName,
    USER_MAX_SESSION, UniqueId, excerpt,
};

/// How far back CloudTrail's event history goes (`LookupEvents`): a long-term key's
/// use is looked for no earlier.
pub const EVENT_HISTORY: Duration = Duration::days(90);

/// The API calls that mint or keep access, as `LookupEvents` names them
/// (`EventName`). IAM's are recorded in the partition's IAM region only; STS's in the
/// region of the endpoint called ([`regions_to_search`]).
pub const IAM_EVENT_NAMES: [&str; 23] = [
    "CreateAccessKey",
    "UpdateAccessKey",
    "CreateServiceSpecificCredential",
    "UploadSSHPublicKey",
    "UploadSigningCertificate",
    "CreateVirtualMFADevice",
    "CreatePolicyVersion",
    "SetDefaultPolicyVersion",
    "AddRoleToInstanceProfile",
    "DeleteRolePermissionsBoundary",
    "DeleteUserPermissionsBoundary",
    "CreateUser",
    "CreateLoginProfile",
    "UpdateLoginProfile",
    "CreateRole",
    "UpdateAssumeRolePolicy",
    "PutUserPolicy",
    "PutRolePolicy",
    "PutGroupPolicy",
    "AttachUserPolicy",
    "AttachRolePolicy",
    "AttachGroupPolicy",
    "AddUserToGroup",
];
pub const STS_EVENT_NAMES: [&str; 4] = [
    "AssumeRole",
    "AssumeRoot",
    "GetSessionToken",
    "GetFederationToken",
];

/// What the credential the finding names is, for how far back its use is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// An `ASIA…` key: a role session, or a user's `GetSessionToken` credentials.
    /// Lives at most 36 hours (`GetSessionToken`'s ceiling, above a role's 12).
    Temporary,
    /// An `AKIA…` key: no expiry; CloudTrail's history is the limit.
    LongTerm,
}

impl CredentialKind {
    pub fn of(key: &AccessKeyId) -> Self {
        if key.is_long_term() {
            CredentialKind::LongTerm
        } else {
            CredentialKind::Temporary
        }
    }

    /// The longest this credential may have been in use before it was first seen.
    pub fn max_lifetime(self) -> Duration {
        match self {
            CredentialKind::Temporary => USER_MAX_SESSION,
            CredentialKind::LongTerm => EVENT_HISTORY,
        }
    }
}

/// When to start looking: a credential is used before GuardDuty notices, so from the
/// finding's first activity minus the longest the credential can have lived, and never
/// before what CloudTrail still holds (`now` minus [`EVENT_HISTORY`]).
pub fn search_from(
    first_activity: DateTime<Utc>,
    kind: CredentialKind,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    (first_activity - kind.max_lifetime()).max(now - EVENT_HISTORY)
}

/// Where one search looks, and for which calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRegion {
    pub region: String,
    pub event_names: Vec<&'static str>,
}

/// The region of a partition where IAM (and STS's global endpoint) record their
/// events.
pub fn iam_region(partition: Partition) -> Option<&'static str> {
    Some(match partition {
        Partition::Aws => "us-east-1",
        Partition::AwsCn => "cn-north-1",
        Partition::AwsUsGov => "us-gov-west-1",
        // Isolated partitions: not known here; the caller says so rather than guess.
        _ => return None,
    })
}

/// Where to look: IAM's calls and STS's global endpoint are recorded in the
/// partition's IAM region only; STS's regional endpoints record in their own region,
/// so the region where the credential was seen is searched for STS calls too.
/// `LookupEvents` takes one attribute per call (the access key id), so each region's
/// event names are filtered from the key's events, not asked for one by one.
pub fn regions_to_search(partition: Partition, activity_region: &str) -> Vec<SearchRegion> {
    let Some(home) = iam_region(partition) else {
        return Vec::new();
    };
    let mut all: Vec<&'static str> = IAM_EVENT_NAMES.to_vec();
    all.extend(STS_EVENT_NAMES);
    let mut regions = vec![SearchRegion {
        region: home.to_owned(),
        event_names: all,
    }];
    if activity_region != home && is_region_name(activity_region) {
        regions.push(SearchRegion {
            region: activity_region.to_owned(),
            event_names: STS_EVENT_NAMES.to_vec(),
        });
    }
    regions
}

/// `us-east-1`, `ap-southeast-2`, `us-gov-west-1`: lowercase words and a number.
pub fn is_region_name(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    (3..=4).contains(&parts.len())
        && region.len() <= 32
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && {
            // `1` to `20`, digits only: no sign, no leading zero.
            let n = parts[parts.len() - 1];
            !n.is_empty()
                && n.len() <= 2
                && n.bytes().all(|b| b.is_ascii_digit())
                && !n.starts_with('0')
                && n.parse::<u8>().is_ok_and(|n| n <= 20)
        }
}

/// A session the credential minted with `AssumeRole`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedSession {
    /// The account of the role assumed (another account of the Organization, maybe).
    pub account: Account,
    pub role: PrincipalName,
    /// `AROA…`, from `assumedRoleUser.assumedRoleId`: with the session name, the
    /// `aws:userid` a session-scoped deny names.
    pub role_id: UniqueId,
    pub session: SessionName,
    /// The minted session's own key: the next link of the chain is looked up by it.
    pub access_key_id: AccessKeyId,
}

/// One thing a record says the credential did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Footprint {
    /// A role session: revoked (session scope on that role) and followed.
    Session(MintedSession),
    /// A root session of a member account (`AssumeRoot`), or root's own session
    /// token: IAM policies cannot restrict root, so it is reported.
    RootSession { account: Account },
    /// `GetSessionToken`: temporary credentials of the same user, minted with the
    /// long-term key `with_key`; the deny on the user covers them, and that key must
    /// be deactivated too.
    SessionToken {
        /// The user who called, as the record names it.
        user: Option<PrincipalName>,
        access_key_id: AccessKeyId,
        with_key: AccessKeyId,
    },
    /// `GetFederationToken`: a federated session bounded by the calling user's
    /// policies; the deny on that user covers it. Followed by its key.
    FederationToken {
        /// The user who called, as the record names it.
        user: Option<PrincipalName>,
        name: String,
        access_key_id: AccessKeyId,
    },
    /// `CreateAccessKey`: a long-term key, deactivated.
    AccessKey {
        /// None when the request named no user: the caller's own key.
        user: Option<PrincipalName>,
        access_key_id: AccessKeyId,
    },
    /// Users, login profiles, roles, trust changes, policies: listed for the owner,
    /// never deleted (they are evidence).
    Persistence { call: String, on: String },
}

/// A record that names a call of interest but cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub event_id: Option<String>,
    pub why: String,
}

/// What one CloudTrail record means: None when it is not a call that mints or keeps
/// access, or when the call failed (an `errorCode`: nothing was made).
pub fn footprint(record: &CloudTrailEvent) -> Result<Option<Footprint>, Unreadable> {
    if record.error_code.is_some() {
        return Ok(None);
    }
    let Some(name) = record.event_name.as_deref() else {
        return Ok(None);
    };
    let unreadable = |why: String| Unreadable {
        event_id: record.event_id.as_deref().map(excerpt),
        why: format!("{name}: {why}"),
    };
    let request = record.request_parameters.as_ref();
    let response = record.response_elements.as_ref();
    let text = |value: Option<&Value>, pointer: &str| -> Option<String> {
        value?.pointer(pointer)?.as_str().map(str::to_owned)
    };
    let key_at = |pointer: &str| -> Result<AccessKeyId, Unreadable> {
        let raw = text(response, pointer)
            .ok_or_else(|| unreadable(format!("the response has no {pointer}")))?;
        AccessKeyId::parse(&raw).map_err(|e| unreadable(e.to_string()))
    };
    Ok(Some(match name {
        "AssumeRole" => {
            let arn = text(response, "/assumedRoleUser/arn")
                .ok_or_else(|| unreadable("the response names no assumed role".to_owned()))?;
            let parsed = PrincipalArn::parse(&arn).map_err(|e| unreadable(e.to_string()))?;
            let PrincipalResource::AssumedRole { role, session } = parsed.resource else {
                return Err(unreadable(format!(
                    "{} is not an assumed-role ARN",
                    excerpt(&arn)
                )));
            };
            let assumed_id = text(response, "/assumedRoleUser/assumedRoleId")
                .ok_or_else(|| unreadable("the response has no assumedRoleId".to_owned()))?;
            // `AROA…:session`: the id of the role, and the same session as the ARN's.
            let (role_id, id_session) = assumed_id.split_once(':').ok_or_else(|| {
                unreadable(format!("{} is not ROLEID:session", excerpt(&assumed_id)))
            })?;
            if id_session != session.as_str() {
                return Err(unreadable(
                    "the assumed role id and ARN name different sessions".to_owned(),
                ));
            }
            let role_id = UniqueId::parse(role_id).map_err(|e| unreadable(e.to_string()))?;
            Footprint::Session(MintedSession {
                account: parsed.account,
                role,
                role_id,
                session,
                access_key_id: key_at("/credentials/accessKeyId")?,
            })
        }
        "AssumeRoot" => {
            let target = text(request, "/targetPrincipal")
                .ok_or_else(|| unreadable("the request names no target account".to_owned()))?;
            Footprint::RootSession {
                account: Account::parse(&target).map_err(|e| unreadable(e.to_string()))?,
            }
        }
        "GetSessionToken"
            if record
                .user_identity
                .as_ref()
                .and_then(|u| u.identity_type.as_deref())
                == Some("Root") =>
        {
            let account = record
                .user_identity
                .as_ref()
                .and_then(|u| u.account_id.as_deref())
                .ok_or_else(|| unreadable("root's account is not recorded".to_owned()))?;
            Footprint::RootSession {
                account: Account::parse(account).map_err(|e| unreadable(e.to_string()))?,
            }
        }
        "GetSessionToken" => {
            let with = record
                .user_identity
                .as_ref()
                .and_then(|u| u.access_key_id.as_deref())
                .ok_or_else(|| unreadable("the caller's key is not recorded".to_owned()))?;
            Footprint::SessionToken {
                user: caller_user(record).map_err(|e| unreadable(e.to_string()))?,
                access_key_id: key_at("/credentials/accessKeyId")?,
                with_key: AccessKeyId::parse(with).map_err(|e| unreadable(e.to_string()))?,
            }
        }
        "GetFederationToken" => Footprint::FederationToken {
            user: caller_user(record).map_err(|e| unreadable(e.to_string()))?,
            name: excerpt(&text(request, "/name").unwrap_or_default()),
            access_key_id: key_at("/credentials/accessKeyId")?,
        },
        "CreateAccessKey" => Footprint::AccessKey {
            user: match text(response, "/accessKey/userName") {
                Some(user) => {
                    Some(PrincipalName::parse(&user).map_err(|e| unreadable(e.to_string()))?)
                }
                None => None,
            },
            access_key_id: key_at("/accessKey/accessKeyId")?,
        },
        call if IAM_EVENT_NAMES.contains(&call) => {
            // A valid name as it is; anything else quoted and cut, as the caller wrote it.
            let shown = |n: String| match PrincipalName::parse(&n) {
                Ok(name) => name.to_string(),
                Err(_) => excerpt(&n),
            };
            let on = ["/userName", "/roleName", "/groupName"]
                .iter()
                .find_map(|p| text(request, p))
                .map(shown)
                .unwrap_or_else(|| "(not recorded)".to_owned());
            let policy = ["/policyArn", "/policyName"]
                .iter()
                .find_map(|p| text(request, p))
                .map(|p| format!(" ({})", shown(p)))
                .unwrap_or_default();
            Footprint::Persistence {
                call: call.to_owned(),
                on: format!("{on}{policy}"),
            }
        }
        _ => return Ok(None),
    }))
}

/// The IAM user who made the call, when the record names one.
fn caller_user(
    record: &CloudTrailEvent,
) -> Result<Option<PrincipalName>, crate::principal::InvalidValue> {
    match record
        .user_identity
        .as_ref()
        .and_then(|u| u.user_name.as_deref())
    {
        Some(name) => PrincipalName::parse(name).map(Some),
        None => Ok(None),
    }
}

impl Footprint {
    /// What it is, in a phrase for the owner.
    pub fn describe(&self) -> String {
        match self {
            Footprint::Session(s) => format!(
                "assumed role {} in {} as session `{}` (key {})",
                s.role, s.account, s.session, s.access_key_id
            ),
            Footprint::RootSession { account } => format!(
                "a root session of account {account}: no IAM policy restricts root; \
                 secure the account's root user (reset its password and MFA, and delete its keys)"
            ),
            Footprint::SessionToken {
                user,
                access_key_id,
                with_key,
            } => format!(
                "session token {access_key_id} of user {} minted with key {with_key}",
                user.as_ref().map_or("(not recorded)", |u| u.as_str())
            ),
            Footprint::FederationToken {
                user,
                name,
                access_key_id,
            } => format!(
                "federation token {access_key_id} (`{name}`) from user {}",
                user.as_ref().map_or("(not recorded)", |u| u.as_str())
            ),
            Footprint::AccessKey {
                user,
                access_key_id,
            } => format!(
                "created access key {access_key_id} for user {}",
                user.as_ref().map_or("(its caller)", |u| u.as_str())
            ),
            Footprint::Persistence { call, on } => format!("{call} on {on}"),
        }
    }
}

/// How far a walk down the chain goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Links followed from the finding's credential (1: only what it minted itself).
    pub max_depth: u32,
    /// Footprints recorded in all; beyond it the walk stops and says so.
    pub max_hops: usize,
}

impl Default for Limits {
    /// Deep enough for a pivot through a few accounts, small enough that a forged
    /// or runaway chain cannot keep the follow-up busy.
    fn default() -> Self {
        Self {
            max_depth: 5,
            max_hops: 100,
        }
    }
}

/// One link: what a credential, `depth` links from the finding's, was seen to do in
/// `account` (where its calls were recorded, and where what it made lives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub by: AccessKeyId,
    pub account: Account,
    pub depth: u32,
    pub found: Footprint,
    /// The CloudTrail record it was read from, and when the call was made.
    pub event_id: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

/// A footprint as read from its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub found: Footprint,
    pub event_id: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

impl Seen {
    /// The footprint of `record`, with its event id and time.
    pub fn read(record: &CloudTrailEvent) -> Result<Option<Seen>, Unreadable> {
        Ok(footprint(record)?.map(|found| Seen {
            found,
            event_id: record.event_id.as_deref().map(excerpt),
            at: record
                .event_time
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.to_utc()),
        }))
    }
}

impl From<Footprint> for Seen {
    fn from(found: Footprint) -> Self {
        Seen {
            found,
            event_id: None,
            at: None,
        }
    }
}

/// A key to look up, in the account whose CloudTrail records its calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub key: AccessKeyId,
    pub account: Account,
    /// Links from the finding's credential (0: the finding's own).
    pub depth: u32,
}

/// A breadth-first walk down the chain of credentials, from the finding's. The caller
/// asks [`Walk::next_key`] which key to look up, looks it up (CloudTrail), and gives
/// what it found to [`Walk::record`]; the walk decides what is followed. Each key is
/// looked up once, so a loop ends; depth and count are bounded, and a walk cut short
/// says so ([`Walk::cut_short`]).
#[derive(Debug, Clone)]
pub struct Walk {
    limits: Limits,
    queue: std::collections::VecDeque<Lookup>,
    seen: std::collections::HashSet<AccessKeyId>,
    /// The records already made into links: a record read twice (by the key that
    /// made the call, and by the call's name) is one link.
    events: std::collections::HashSet<String>,
    hops: Vec<Hop>,
    cut_short: Option<String>,
}

impl Walk {
    /// A walk from the finding's key, used in `account`.
    pub fn new(start: AccessKeyId, account: Account, limits: Limits) -> Self {
        let mut seen = std::collections::HashSet::new();
        seen.insert(start.clone());
        Self {
            limits,
            queue: std::collections::VecDeque::from([Lookup {
                key: start,
                account,
                depth: 0,
            }]),
            seen,
            events: std::collections::HashSet::new(),
            hops: Vec::new(),
            cut_short: None,
        }
    }

    /// The next key to look up.
    pub fn next_key(&mut self) -> Option<Lookup> {
        self.queue.pop_front()
    }

    /// What the key of `lookup` was seen to do. The keys it minted are followed (a
    /// role session's, in the role's account; a session or federation token's and a
    /// created key's, in the same account), each once, while within the limits.
    pub fn record<S: Into<Seen>>(&mut self, lookup: &Lookup, found: impl IntoIterator<Item = S>) {
        let (by, depth) = (&lookup.key, lookup.depth);
        for seen in found {
            let Seen {
                found: footprint,
                event_id,
                at,
            } = seen.into();
            if let Some(id) = &event_id
                && !self.events.insert(id.clone())
            {
                continue;
            }
            if self.hops.len() >= self.limits.max_hops {
                self.cut_short = Some(format!(
                    "more than {} links: the walk stopped there; look at CloudTrail for the rest",
                    self.limits.max_hops
                ));
                self.queue.clear();
                return;
            }
            // A session token's long-term key is followed too: whoever minted the
            // token holds it (it is the key looked up, or the one behind the
            // finding's own session token).
            let minted: Vec<(&AccessKeyId, &Account)> = match &footprint {
                Footprint::Session(s) => vec![(&s.access_key_id, &s.account)],
                Footprint::SessionToken {
                    access_key_id,
                    with_key,
                    ..
                } => vec![
                    (access_key_id, &lookup.account),
                    (with_key, &lookup.account),
                ],
                Footprint::FederationToken { access_key_id, .. }
                | Footprint::AccessKey { access_key_id, .. } => {
                    vec![(access_key_id, &lookup.account)]
                }
                Footprint::RootSession { .. } | Footprint::Persistence { .. } => Vec::new(),
            };
            for (key, account) in minted {
                if !self.seen.insert(key.clone()) {
                    continue;
                }
                if depth + 1 < self.limits.max_depth {
                    self.queue.push_back(Lookup {
                        key: key.clone(),
                        account: account.clone(),
                        depth: depth + 1,
                    });
                } else if self.cut_short.is_none() {
                    self.cut_short = Some(format!(
                        "the chain goes on past {} links (from key {key}): the walk stopped there; look at CloudTrail for the rest",
                        self.limits.max_depth
                    ));
                }
            }
            self.hops.push(Hop {
                by: by.clone(),
                account: lookup.account.clone(),
                depth: depth + 1,
                found: footprint,
                event_id,
                at,
            });
        }
    }

    /// Everything found so far, in the order found.
    pub fn hops(&self) -> &[Hop] {
        &self.hops
    }

    /// Why the walk did not follow everything, when it did not.
    pub fn cut_short(&self) -> Option<&str> {
        self.cut_short.as_deref()
    }
}

/// A link as the outcome reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainLink {
    /// The same link has the same id in every run (the record's event id, else what it
    /// found): a later run says which links are new.
    pub id: String,
    pub depth: u32,
    /// The key that made the call.
    pub by: String,
    /// The account whose CloudTrail recorded it.
    pub account: String,
    pub found: String,
    /// What cutoff did about it.
    pub result: String,
    /// Not reported by an earlier run of this follow-up.
    pub new: bool,
}

impl ChainLink {
    /// The id of a link: the CloudTrail event it was read from.
    pub fn id_of(hop: &Hop) -> String {
        match &hop.event_id {
            Some(id) => format!("{}:{id}", hop.account),
            None => format!("{}:{}", hop.account, hop.found.describe()),
        }
    }
}

/// What one run of a follow-up found and did: the `chain` of its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainReport {
    pub run: u8,
    pub runs: u8,
    /// The key followed.
    pub key: String,
    /// Where and since when CloudTrail was read (`<account> <region>`).
    pub searched: Vec<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub links: Vec<ChainLink>,
    /// Whether everything the key could have done was read and followed; when not,
    /// `gaps` says what was not.
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<String>,
}

impl ChainReport {
    /// The links no earlier run reported.
    pub fn new_links(&self) -> impl Iterator<Item = &ChainLink> {
        self.links.iter().filter(|l| l.new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::cloudtrail;
    use chrono::TimeZone;
    use serde_json::json;

    fn record(value: Value) -> CloudTrailEvent {
        *cloudtrail::parse(value).unwrap()
    }

    fn assume_role(role_arn_account: &str, session: &str, id_session: &str) -> Value {
        json!({
            "eventVersion": "1.08", "eventID": "e-1", "eventSource": "sts.amazonaws.com",
            "eventName": "AssumeRole", "awsRegion": "us-east-1",
            "userIdentity": {"type": "AssumedRole", "accessKeyId": "ASIAFIRSTSTOLENKEY01"},
            "requestParameters": {"roleArn": format!("arn:aws:iam::{role_arn_account}:role/admin"), "roleSessionName": session},
            "responseElements": {
                "credentials": {"accessKeyId": "ASIASECONDLINKKEY001", "expiration": "Dec 5, 2026, 2:00:00 AM"},
                "assumedRoleUser": {
                    "assumedRoleId": format!("AROAEXAMPLEROLEID0001:{id_session}"),
                    "arn": format!("arn:aws:sts::{role_arn_account}:assumed-role/admin/{session}")
                }
            }
        })
    }

    #[test]
    fn an_assumed_role_is_a_session_to_revoke_in_its_own_account_with_its_key() {
        let found = footprint(&record(assume_role("444455556666", "pivot", "pivot"))).unwrap();
        let Some(Footprint::Session(s)) = found else {
            panic!("{found:?}");
        };
        assert_eq!(s.account.as_str(), "444455556666");
        assert_eq!(s.role.as_str(), "admin");
        assert_eq!(s.role_id.as_str(), "AROAEXAMPLEROLEID0001");
        assert_eq!(s.session.as_str(), "pivot");
        assert_eq!(s.access_key_id.as_str(), "ASIASECONDLINKKEY001");
    }

    #[test]
    fn a_response_whose_parts_disagree_or_do_not_parse_is_unreadable_never_guessed() {
        for bad in [
            assume_role("444455556666", "pivot", "other"),
            assume_role("4444", "pivot", "pivot"),
            assume_role("444455556666", "bad session!", "bad session!"),
        ] {
            let got = footprint(&record(bad));
            assert!(got.is_err(), "{got:?}");
        }
        let mut no_key = assume_role("444455556666", "pivot", "pivot");
        no_key["responseElements"]["credentials"] = json!({});
        assert!(footprint(&record(no_key)).is_err());
    }

    #[test]
    fn a_failed_call_made_nothing() {
        let mut failed = assume_role("444455556666", "pivot", "pivot");
        failed["errorCode"] = json!("AccessDenied");
        failed["responseElements"] = Value::Null;
        assert_eq!(footprint(&record(failed)), Ok(None));
    }

    #[test]
    fn a_session_token_names_the_long_term_key_behind_it() {
        let found = footprint(&record(json!({
            "eventName": "GetSessionToken", "eventSource": "sts.amazonaws.com",
            "userIdentity": {"type": "IAMUser", "userName": "ci", "accessKeyId": "AKIALONGTERMKEY00001"},
            "responseElements": {"credentials": {"accessKeyId": "ASIATOKENKEY00000001"}}
        })))
        .unwrap();
        // Root's own session token: no IAM deny restricts root; reported as such.
        let root = footprint(&record(json!({
            "eventName": "GetSessionToken", "eventSource": "sts.amazonaws.com",
            "userIdentity": {"type": "Root", "accountId": "111122223333", "accessKeyId": "AKIAROOTKEY000000001"},
            "responseElements": {"credentials": {"accessKeyId": "ASIATOKENKEY00000002"}}
        })))
        .unwrap();
        assert_eq!(
            root,
            Some(Footprint::RootSession {
                account: Account::parse("111122223333").unwrap()
            })
        );
        assert_eq!(
            found,
            Some(Footprint::SessionToken {
                user: Some(PrincipalName::parse("ci").unwrap()),
                access_key_id: AccessKeyId::parse("ASIATOKENKEY00000001").unwrap(),
                with_key: AccessKeyId::parse("AKIALONGTERMKEY00001").unwrap(),
            })
        );
    }

    #[test]
    fn a_created_key_is_deactivated_and_what_persists_is_listed() {
        let key = footprint(&record(json!({
            "eventName": "CreateAccessKey", "eventSource": "iam.amazonaws.com",
            "requestParameters": {"userName": "backdoor"},
            "responseElements": {"accessKey": {"accessKeyId": "AKIANEWBACKDOORKEY01", "userName": "backdoor", "status": "Active"}}
        })))
        .unwrap();
        assert_eq!(
            key,
            Some(Footprint::AccessKey {
                user: Some(PrincipalName::parse("backdoor").unwrap()),
                access_key_id: AccessKeyId::parse("AKIANEWBACKDOORKEY01").unwrap(),
            })
        );
        let trust = footprint(&record(json!({
            "eventName": "UpdateAssumeRolePolicy", "eventSource": "iam.amazonaws.com",
            "requestParameters": {"roleName": "admin", "policyDocument": "{}"}
        })))
        .unwrap();
        assert_eq!(
            trust,
            Some(Footprint::Persistence {
                call: "UpdateAssumeRolePolicy".to_owned(),
                on: "admin".to_owned()
            })
        );
        let root = footprint(&record(json!({
            "eventName": "AssumeRoot", "eventSource": "sts.amazonaws.com",
            "requestParameters": {"targetPrincipal": "777788889999", "taskPolicyArn": {"arn": "x"}}
        })))
        .unwrap();
        assert_eq!(
            root,
            Some(Footprint::RootSession {
                account: Account::parse("777788889999").unwrap()
            })
        );
        let other = footprint(&record(json!({"eventName": "ListBuckets"}))).unwrap();
        assert_eq!(other, None);
    }

    #[test]
    fn the_search_starts_a_lifetime_before_the_first_activity_within_cloudtrails_history() {
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap();
        let first = now - Duration::hours(2);
        assert_eq!(
            search_from(first, CredentialKind::Temporary, now),
            first - Duration::hours(36)
        );
        assert_eq!(
            search_from(first, CredentialKind::LongTerm, now),
            now - EVENT_HISTORY
        );
        let key = AccessKeyId::parse("AKIALONGTERMKEY00001").unwrap();
        assert_eq!(CredentialKind::of(&key), CredentialKind::LongTerm);
    }

    #[test]
    fn iam_is_searched_in_its_region_and_regional_sts_where_the_credential_was_seen() {
        let here = regions_to_search(Partition::Aws, "eu-west-1");
        assert_eq!(here.len(), 2);
        assert_eq!(here[0].region, "us-east-1");
        assert!(here[0].event_names.contains(&"CreateAccessKey"));
        assert!(here[0].event_names.contains(&"AssumeRole"));
        assert_eq!(here[1].region, "eu-west-1");
        assert_eq!(here[1].event_names, STS_EVENT_NAMES.to_vec());
        assert_eq!(regions_to_search(Partition::Aws, "us-east-1").len(), 1);
        assert_eq!(
            regions_to_search(Partition::AwsCn, "cn-northwest-1")[0].region,
            "cn-north-1"
        );
        // A region the finding made up is not searched; an unknown partition, nothing.
        assert_eq!(regions_to_search(Partition::Aws, "../evil").len(), 1);
        assert_eq!(regions_to_search(Partition::Aws, "EU-WEST-1").len(), 1);
        assert_eq!(regions_to_search(Partition::Aws, "eu-west-+1").len(), 1);
        assert_eq!(regions_to_search(Partition::Aws, "eu-west-01").len(), 1);
        assert_eq!(regions_to_search(Partition::Aws, "ap-southeast-2").len(), 2);
        assert!(regions_to_search(Partition::AwsIso, "us-iso-east-1").is_empty());
    }

    fn key(k: &str) -> AccessKeyId {
        AccessKeyId::parse(k).unwrap()
    }

    fn account(id: &str) -> Account {
        Account::parse(id).unwrap()
    }

    fn session(account: &str, role: &str, minted: &str) -> Footprint {
        Footprint::Session(MintedSession {
            account: Account::parse(account).unwrap(),
            role: PrincipalName::parse(role).unwrap(),
            role_id: UniqueId::parse("AROAEXAMPLEROLEID0001").unwrap(),
            session: SessionName::parse("pivot").unwrap(),
            access_key_id: key(minted),
        })
    }

    #[test]
    fn a_chain_of_three_sessions_across_two_accounts_is_walked_to_its_end() {
        let start = key("ASIASTOLENKEY0000001");
        let mut walk = Walk::new(start.clone(), account("111122223333"), Limits::default());
        // What CloudTrail would say each key did.
        let did = |k: &AccessKeyId| -> Vec<Footprint> {
            match k.as_str() {
                "ASIASTOLENKEY0000001" => {
                    vec![session("111122223333", "deploy", "ASIALINKONEKEY000001")]
                }
                "ASIALINKONEKEY000001" => {
                    vec![session("444455556666", "admin", "ASIALINKTWOKEY000001")]
                }
                "ASIALINKTWOKEY000001" => vec![
                    session("444455556666", "break-glass", "ASIALINKTHREEKEY0001"),
                    Footprint::AccessKey {
                        user: Some(PrincipalName::parse("backdoor").unwrap()),
                        access_key_id: key("AKIABACKDOORKEY00001"),
                    },
                ],
                _ => Vec::new(),
            }
        };
        let mut looked_up = Vec::new();
        while let Some(lookup) = walk.next_key() {
            looked_up.push((
                lookup.key.as_str().to_owned(),
                lookup.account.as_str().to_owned(),
            ));
            walk.record(&lookup, did(&lookup.key));
        }
        assert_eq!(walk.cut_short(), None);
        let sessions: Vec<(&str, &str, u32)> = walk
            .hops()
            .iter()
            .filter_map(|h| match &h.found {
                Footprint::Session(s) => Some((s.account.as_str(), s.role.as_str(), h.depth)),
                _ => None,
            })
            .collect();
        assert_eq!(
            sessions,
            [
                ("111122223333", "deploy", 1),
                ("444455556666", "admin", 2),
                ("444455556666", "break-glass", 3)
            ]
        );
        // Each key is looked up where its calls are recorded: a session's in its role's
        // account, a created key's where it was created. The created key is followed
        // too: it can mint sessions of its own.
        let at = |k: &str| {
            looked_up
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, account)| account.as_str())
        };
        assert_eq!(at("ASIALINKONEKEY000001"), Some("111122223333"));
        assert_eq!(at("ASIALINKTWOKEY000001"), Some("444455556666"));
        assert_eq!(at("AKIABACKDOORKEY00001"), Some("444455556666"));
        assert_eq!(looked_up.len(), 5, "{looked_up:?}");
    }

    #[test]
    fn a_loop_ends_each_key_is_looked_up_once_and_depth_and_count_are_bounded() {
        // Two keys that (in a forged or replayed history) minted each other.
        let a = key("ASIALOOPKEYA00000001");
        let b = key("ASIALOOPKEYB00000001");
        let mut walk = Walk::new(a.clone(), account("111122223333"), Limits::default());
        let mut lookups = 0;
        while let Some(lookup) = walk.next_key() {
            lookups += 1;
            let other = if lookup.key == a {
                b.as_str()
            } else {
                a.as_str()
            };
            walk.record(&lookup, vec![session("111122223333", "r", other)]);
        }
        assert_eq!(lookups, 2);
        assert_eq!(walk.cut_short(), None);

        // A role assuming itself with a new key each time: cut at the depth.
        let limits = Limits {
            max_depth: 3,
            max_hops: 100,
        };
        let mut walk = Walk::new(key("ASIACHAIN00000000000"), account("111122223333"), limits);
        let mut n = 0;
        while let Some(lookup) = walk.next_key() {
            n += 1;
            let next = format!("ASIACHAIN{n:011}");
            walk.record(&lookup, vec![session("111122223333", "r", &next)]);
        }
        assert_eq!(n, 3);
        assert!(walk.cut_short().unwrap().contains("past 3 links"));

        // A flood of footprints from one key: cut at the count.
        let limits = Limits {
            max_depth: 5,
            max_hops: 10,
        };
        let mut walk = Walk::new(key("ASIAFLOOD00000000000"), account("111122223333"), limits);
        let lookup = walk.next_key().unwrap();
        let flood: Vec<Footprint> = (0..50)
            .map(|i| session("111122223333", "r", &format!("ASIAFLOODED{i:09}")))
            .collect();
        walk.record(&lookup, flood);
        assert_eq!(walk.hops().len(), 10);
        assert!(walk.cut_short().unwrap().contains("more than 10 links"));
        assert_eq!(walk.next_key(), None);
    }
}
