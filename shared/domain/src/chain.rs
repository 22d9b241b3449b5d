//! The chain a stolen credential leaves (issue [11]): from the CloudTrail records of
//! what it did, the access it minted or kept that a deny on its own principal does not
//! stop. Pure: which records to ask for (when and where) and what each one means; the
//! follow-up that reads CloudTrail and acts on them is the application's.
//!
//! Every field read here was written by the holder of the stolen credential (the
//! request) or by AWS in answer to it (the response), so each is parsed into the
//! validated types and a record that does not parse is reported, never guessed at.

use chrono::{DateTime, Duration, Utc};
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
pub const IAM_EVENT_NAMES: [&str; 13] = [
    "CreateAccessKey",
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
fn is_region_name(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    (3..=4).contains(&parts.len())
        && region.len() <= 32
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1]
            .parse::<u8>()
            .is_ok_and(|n| (1..=20).contains(&n))
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
    /// A root session of a member account (`AssumeRoot`): IAM policies cannot
    /// restrict root, so it is reported.
    RootSession { account: Account },
    /// `GetSessionToken`: temporary credentials of the same user, minted with the
    /// long-term key `with_key`; the deny on the user covers them, and that key must
    /// be deactivated too.
    SessionToken {
        access_key_id: AccessKeyId,
        with_key: AccessKeyId,
    },
    /// `GetFederationToken`: a federated session bounded by the calling user's
    /// policies; the deny on the user covers it. Followed by its key.
    FederationToken {
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
        "GetSessionToken" => {
            let with = record
                .user_identity
                .as_ref()
                .and_then(|u| u.access_key_id.as_deref())
                .ok_or_else(|| unreadable("the caller's key is not recorded".to_owned()))?;
            Footprint::SessionToken {
                access_key_id: key_at("/credentials/accessKeyId")?,
                with_key: AccessKeyId::parse(with).map_err(|e| unreadable(e.to_string()))?,
            }
        }
        "GetFederationToken" => Footprint::FederationToken {
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
        assert_eq!(
            found,
            Some(Footprint::SessionToken {
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
        assert!(regions_to_search(Partition::AwsIso, "us-iso-east-1").is_empty());
    }
}
