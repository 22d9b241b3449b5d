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
    fn wrong_types_on_identity_fields_make_the_finding_malformed() {
        let err = parse(json!({
            "resource": { "accessKeyDetails": { "userName": 42 } }
        }))
        .unwrap_err();
        assert!(err.0.contains("malformed GuardDuty finding"), "{err}");
        assert!(parse(json!([])).is_err());
    }
}
