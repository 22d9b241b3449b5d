//! GuardDuty findings as EventBridge delivers them (`detail` of a `GuardDuty Finding`
//! event; camelCase). Only the fields triage and the revoker use are modelled;
//! metadata that varies in type between finding families is read as raw JSON.

use serde::Deserialize;
use serde_json::Value;

use super::Malformed;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GuardDutyFinding {
    pub schema_version: Option<String>,
    /// The member account the finding is about (not the envelope's admin account).
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub partition: Option<String>,
    pub id: Option<String>,
    pub arn: Option<String>,
    #[serde(rename = "type")]
    pub finding_type: Option<String>,
    pub resource: Option<Resource>,
    pub service: Option<Service>,
    /// A number in real findings (integer in older ones, float in newer ones). Kept raw
    /// so a non-number is reported as "no severity" rather than hiding the finding.
    pub severity: Option<Value>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Resource {
    pub resource_type: Option<String>,
    /// Present on IAM findings and also on S3, EKS and credential-exfiltration
    /// findings: whatever the resource type, this is the principal.
    pub access_key_details: Option<AccessKeyDetails>,
    pub instance_details: Option<InstanceDetails>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AccessKeyDetails {
    pub access_key_id: Option<String>,
    /// `AROA…:session` for role sessions, `AIDA…` for users, `account:name` for
    /// federated users.
    pub principal_id: Option<String>,
    pub user_name: Option<String>,
    /// `AssumedRole`, `Role` (EKS), `IAMUser`, `Root`, `FederatedUser`, …
    pub user_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InstanceDetails {
    pub instance_id: Option<String>,
    pub iam_instance_profile: Option<IamInstanceProfile>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IamInstanceProfile {
    pub arn: Option<String>,
    pub id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Service {
    pub service_name: Option<String>,
    pub archived: Option<Value>,
    /// Free-form per finding type; only `sample` is read.
    pub additional_info: Option<Value>,
    pub event_first_seen: Option<String>,
    pub event_last_seen: Option<String>,
    pub count: Option<Value>,
    /// What the finding saw done. Kept as JSON: only the caller's account of an API
    /// call is read, and a shape cutoff does not know must not make the whole finding
    /// unreadable (a missed revocation).
    pub action: Option<Value>,
    /// How GuardDuty found it: an attack sequence (Extended Threat Detection) carries
    /// its actors, the resources they touched and the signals that make it up.
    pub detection: Option<Detection>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Detection {
    pub sequence: Option<Sequence>,
}

/// An attack sequence: one finding correlating many signals over time. Each actor,
/// resource and signal is typed on its own: one of a shape cutoff does not know must
/// not hide the others (a missed revocation).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Sequence {
    pub uid: Option<String>,
    /// Who acted: the principals whose credentials the sequence implicates. An actor
    /// that cannot be read is an error of its own (and so is `actors` that is no array):
    /// reported, never skipped in silence.
    #[serde(deserialize_with = "each_or_error")]
    pub actors: Vec<Result<Actor, String>>,
    /// What the actors touched (buckets, instances, access keys, …): targets, never
    /// the actors themselves. Unreadable ones are skipped (they are only alerted on).
    #[serde(deserialize_with = "each")]
    pub resources: Vec<Result<SequenceResource, String>>,
    /// Unreadable ones are skipped: a signal only narrows when a session was issued.
    #[serde(deserialize_with = "each")]
    pub signals: Vec<Result<Signal, String>>,
}

fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| crate::principal::clean_text(&e.to_string(), 200))
}

/// Each element of a JSON array typed on its own; anything else (null, an object) is
/// no elements.
fn each<'de, D, T>(deserializer: D) -> Result<Vec<Result<T, String>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::Array(items) => items.into_iter().map(typed).collect(),
        _ => Vec::new(),
    })
}

/// As [`each`], but a value that is neither an array nor null is one error.
fn each_or_error<'de, D, T>(deserializer: D) -> Result<Vec<Result<T, String>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::Array(items) => items.into_iter().map(typed).collect(),
        Value::Null => Vec::new(),
        other => vec![Err(format!(
            "a JSON {}, not an array",
            match other {
                Value::Object(_) => "object",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                _ => "boolean",
            }
        ))],
    })
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Actor {
    /// What the sequence's signals name the actor by (`actorIds`).
    pub id: Option<String>,
    pub user: Option<ActorUser>,
    pub session: Option<ActorSession>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ActorUser {
    /// The user's or role's name.
    pub name: Option<String>,
    /// The principal id: `AROA…:session` for a role session, `AIDA…` for a user.
    pub uid: Option<String>,
    /// `AssumedRole`, `IAMUser`, `Root`, `FederatedUser`, … (CloudTrail's
    /// `userIdentity.type`).
    #[serde(rename = "type")]
    pub user_type: Option<String>,
    /// The access key the actor used.
    pub credential_uid: Option<String>,
    /// The account the activity took place in; GuardDuty says it may differ from the
    /// account that owns the principal.
    pub account: Option<ActorAccount>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ActorAccount {
    pub uid: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ActorSession {
    /// When the session was issued (CloudTrail's
    /// `sessionContext.attributes.creationDate`): epoch seconds, or ISO 8601.
    pub created_time: Option<Value>,
    /// What issued the session (`sessionContext.sessionIssuer.arn`): for an assumed
    /// role, the role's ARN.
    pub issuer: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SequenceResource {
    pub uid: Option<String>,
    pub account_id: Option<String>,
    /// `ACCESS_KEY`, `S3_BUCKET`, `EC2_INSTANCE`, …
    pub resource_type: Option<String>,
    pub data: Option<ResourceData>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceData {
    pub access_key: Option<AccessKeyData>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AccessKeyData {
    pub principal_id: Option<String>,
    pub user_name: Option<String>,
    pub user_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Signal {
    pub uid: Option<String>,
    /// The actors whose activity the signal is (their `id`s).
    pub actor_ids: Vec<String>,
    /// Epoch seconds in GuardDuty's API; ISO 8601 accepted too.
    pub first_seen_at: Option<Value>,
    pub last_seen_at: Option<Value>,
}

/// A GuardDuty timestamp: ISO 8601, or epoch seconds (a number; one past year 5000 in
/// seconds is read as milliseconds). A time before 2010 is no time GuardDuty (2017)
/// would report: read as none (a placeholder such as 0 must not pass for a session
/// issued in 1970, which every cutoff would seem to cover).
pub fn instant(value: Option<&Value>) -> Option<chrono::DateTime<chrono::Utc>> {
    instant_of(value?).filter(|t| *t >= crate::clock::EARLIEST_PLAUSIBLE)
}

fn instant_of(value: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    match value {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc)),
        Value::Number(n) => {
            let n = n.as_f64().filter(|n| n.is_finite() && *n >= 0.0)?;
            const MILLIS_FROM: f64 = 1e11;
            let millis = if n >= MILLIS_FROM { n } else { n * 1000.0 };
            // Whole milliseconds; `as` saturates, and from_timestamp_millis refuses
            // what chrono cannot hold.
            chrono::DateTime::from_timestamp_millis(millis.floor() as i64)
        }
        _ => None,
    }
}

impl GuardDutyFinding {
    /// Sample findings (from `CreateSampleFindings` or the console) carry invented
    /// principals and are never acted on.
    pub fn is_sample(&self) -> bool {
        super::flag(
            self.service
                .as_ref()
                .and_then(|s| s.additional_info.as_ref())
                .and_then(|info| info.get("sample")),
        )
    }

    pub fn is_archived(&self) -> bool {
        super::flag(self.service.as_ref().and_then(|s| s.archived.as_ref()))
    }

    pub fn severity(&self) -> Option<f64> {
        super::number(self.severity.as_ref())
    }

    pub fn access_key_details(&self) -> Option<&AccessKeyDetails> {
        self.resource.as_ref()?.access_key_details.as_ref()
    }

    pub fn instance_profile_arn(&self) -> Option<&str> {
        self.resource
            .as_ref()?
            .instance_details
            .as_ref()?
            .iam_instance_profile
            .as_ref()?
            .arn
            .as_deref()
    }

    /// The account of the caller when GuardDuty saw the call come from another account
    /// than the finding's (`service.action.awsApiCallAction.remoteAccountDetails`).
    pub fn remote_account(&self) -> Option<&str> {
        self.service
            .as_ref()?
            .action
            .as_ref()?
            .pointer("/awsApiCallAction/remoteAccountDetails/accountId")?
            .as_str()
    }

    /// When the activity in the finding was first seen. A session is issued before it
    /// is first used, so an existing cutoff after this covers it. (Never compare with
    /// `eventLastSeen`: a denied session keeps failing, GuardDuty keeps updating the
    /// finding, and each update would re-revoke the role.)
    pub fn event_first_seen(&self) -> Option<&str> {
        self.service.as_ref()?.event_first_seen.as_deref()
    }

    pub fn event_last_seen(&self) -> Option<&str> {
        self.service.as_ref()?.event_last_seen.as_deref()
    }

    /// The attack sequence, when the finding is one.
    pub fn sequence(&self) -> Option<&Sequence> {
        self.service.as_ref()?.detection.as_ref()?.sequence.as_ref()
    }

    /// An Extended Threat Detection finding: its resource is the sequence itself
    /// (`resourceType: AttackSequence`), or it carries one.
    pub fn is_attack_sequence(&self) -> bool {
        self.sequence().is_some()
            || self
                .resource
                .as_ref()
                .and_then(|r| r.resource_type.as_deref())
                == Some("AttackSequence")
    }
}

/// Types a finding. A `detail` that is not an object, or whose modelled fields have
/// the wrong JSON types, is malformed.
pub fn parse(detail: Value) -> Result<Box<GuardDutyFinding>, Malformed> {
    if !detail.is_object() {
        return Err(Malformed(
            "GuardDuty finding detail is not a JSON object".to_owned(),
        ));
    }
    serde_json::from_value(detail)
        .map(Box::new)
        .map_err(|e| Malformed::from_serde("GuardDuty finding", &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn severity_may_be_an_integer_or_a_float_but_not_a_string() {
        for (raw, expected) in [
            (json!(8), Some(8.0)),
            (json!(5.5), Some(5.5)),
            (json!("8"), None),
        ] {
            let finding = parse(json!({ "severity": raw })).unwrap();
            assert_eq!(finding.severity(), expected);
        }
    }

    #[test]
    fn sample_and_archived_flags_are_read_from_service() {
        let finding = parse(json!({
            "service": { "archived": true, "additionalInfo": { "sample": true } }
        }))
        .unwrap();
        assert!(finding.is_sample());
        assert!(finding.is_archived());
        let plain = parse(json!({ "service": { "additionalInfo": { "value": "x" } } })).unwrap();
        assert!(!plain.is_sample() && !plain.is_archived());
    }

    #[test]
    fn unmodelled_fields_and_nulls_are_tolerated() {
        let finding = parse(json!({
            "id": "x", "title": null, "somethingNew": [1, 2],
            "resource": { "resourceType": "Instance", "instanceDetails": { "platform": null } }
        }))
        .unwrap();
        assert_eq!(finding.id.as_deref(), Some("x"));
    }

    #[test]
    fn an_attack_sequence_is_read_with_its_actors_resources_and_signals() {
        let finding = parse(json!({
            "resource": {"resourceType": "AttackSequence"},
            "service": {"detection": {"sequence": {
                "uid": "s1",
                "actors": [{"id": "a1", "user": {"name": "payments-api", "uid": "AROAX:s",
                    "type": "AssumedRole", "credentialUid": "ASIAX",
                    "account": {"uid": "111122223333", "account": "payments-prod"}},
                    "session": {"createdTime": 1764508800.5, "issuer": "arn:aws:iam::111122223333:role/payments-api", "mfaStatus": "DISABLED"}}],
                "resources": [{"uid": "ASIAX", "resourceType": "ACCESS_KEY", "accountId": "111122223333",
                    "data": {"accessKey": {"principalId": "AROAX:s", "userName": "payments-api", "userType": "AssumedRole"}}}],
                "signals": [{"uid": "g1", "actorIds": ["a1"], "firstSeenAt": 1764508867, "lastSeenAt": "2025-11-30T13:58:40Z"}],
                "sequenceIndicators": [{"key": "SUSPICIOUS_NETWORK", "values": [{"AnyCompany": ["TUNNEL_VPN"]}]}]
            }}}
        }))
        .unwrap();
        assert!(finding.is_attack_sequence());
        let sequence = finding.sequence().unwrap();
        let actor = sequence.actors[0].as_ref().unwrap();
        let user = actor.user.as_ref().unwrap();
        assert_eq!(user.user_type.as_deref(), Some("AssumedRole"));
        assert_eq!(
            user.account.as_ref().unwrap().uid.as_deref(),
            Some("111122223333")
        );
        let session = actor.session.as_ref().unwrap();
        assert_eq!(
            instant(session.created_time.as_ref())
                .unwrap()
                .timestamp_millis(),
            1_764_508_800_500
        );
        let signal = sequence.signals[0].as_ref().unwrap();
        assert_eq!(
            instant(signal.first_seen_at.as_ref()).unwrap().timestamp(),
            1_764_508_867
        );
        assert_eq!(
            instant(signal.last_seen_at.as_ref()).unwrap().to_rfc3339(),
            "2025-11-30T13:58:40+00:00"
        );
        let key = sequence.resources[0]
            .as_ref()
            .unwrap()
            .data
            .as_ref()
            .unwrap()
            .access_key
            .as_ref()
            .unwrap();
        assert_eq!(key.user_name.as_deref(), Some("payments-api"));
        // Without the sequence block, the resource type still says what it is.
        assert!(
            parse(json!({"resource": {"resourceType": "AttackSequence"}}))
                .unwrap()
                .is_attack_sequence()
        );
        assert!(
            !parse(json!({"resource": {"resourceType": "AccessKey"}}))
                .unwrap()
                .is_attack_sequence()
        );
    }

    #[test]
    fn one_unreadable_actor_signal_or_resource_hides_no_other() {
        let finding = parse(json!({"service": {"detection": {"sequence": {
            "actors": [{"id": "a1", "user": {"name": 5}}, {"id": "a2", "user": {"name": "x"}}],
            "signals": [{"actorIds": null}, {"uid": "g", "actorIds": ["a2"]}],
            "resources": null
        }}}}))
        .unwrap();
        let sequence = finding.sequence().unwrap();
        assert!(sequence.actors[0].is_err() && sequence.actors[1].is_ok());
        assert!(sequence.signals[0].is_err() && sequence.signals[1].is_ok());
        assert!(sequence.resources.is_empty());
        // Actors that are no array are an error of their own, never no actors.
        let finding =
            parse(json!({"service": {"detection": {"sequence": {"actors": {"id": "a1"}}}}}))
                .unwrap();
        let actors = &finding.sequence().unwrap().actors;
        assert_eq!(actors.len(), 1);
        assert!(actors[0].is_err());
        let finding =
            parse(json!({"service": {"detection": {"sequence": {"actors": null}}}})).unwrap();
        assert!(finding.sequence().unwrap().actors.is_empty());
    }

    #[test]
    fn timestamps_are_iso_or_epoch_seconds_or_milliseconds() {
        for (raw, expected) in [
            (json!(1_764_508_867), Some(1_764_508_867_000)),
            (json!(1_764_508_867.25), Some(1_764_508_867_250)),
            (json!(1_764_508_867_123_i64), Some(1_764_508_867_123)),
            (json!("2025-11-30T13:21:07.000Z"), Some(1_764_508_867_000)),
            (json!("2025-11-30"), None),
            (json!(-1), None),
            // Placeholders and lies: nothing before 2010 is a finding's time.
            (json!(0), None),
            (json!(-0.0), None),
            (json!("1970-01-01T00:00:00Z"), None),
            (json!(1_262_303_999), None),
            (json!(1_262_304_000), Some(1_262_304_000_000)),
            (json!(1e300), None),
            (json!(true), None),
        ] {
            assert_eq!(
                instant(Some(&raw)).map(|t| t.timestamp_millis()),
                expected,
                "{raw}"
            );
        }
        assert_eq!(instant(None), None);
    }

    #[test]
    fn wrong_types_on_identity_fields_make_the_finding_malformed() {
        let err = parse(json!({
            "resource": { "accessKeyDetails": { "userName": 42 } }
        }))
        .unwrap_err();
        assert!(err.0.contains("malformed GuardDuty finding"), "{err}");
        assert!(parse(json!([])).is_err());
    }
}
