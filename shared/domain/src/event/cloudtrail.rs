//! CloudTrail records as delivered by EventBridge (`AWS API Call via CloudTrail` and
//! friends). `aws_lambda_events`' CloudTrail type requires fields that real events
//! omit (and rejects some `userIdentity` shapes), so this one models only what
//! triage reads.

use serde::Deserialize;
use serde_json::Value;

use super::Malformed;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CloudTrailEvent {
    pub event_version: Option<String>,
    pub user_identity: Option<UserIdentity>,
    pub event_time: Option<String>,
    pub event_source: Option<String>,
    pub event_name: Option<String>,
    pub aws_region: Option<String>,
    pub error_code: Option<String>,
    #[serde(rename = "eventID")]
    pub event_id: Option<String>,
    pub recipient_account_id: Option<String>,
    /// What the caller asked (written by the caller), and what AWS answered: kept as
    /// JSON, read only where a record's meaning depends on them ([`crate::chain`]).
    pub request_parameters: Option<Value>,
    pub response_elements: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UserIdentity {
    /// `AssumedRole`, `IAMUser`, `Root`, `FederatedUser`, `AWSService`, …
    #[serde(rename = "type")]
    pub identity_type: Option<String>,
    pub principal_id: Option<String>,
    pub arn: Option<String>,
    pub account_id: Option<String>,
    pub access_key_id: Option<String>,
    pub user_name: Option<String>,
    pub session_context: Option<SessionContext>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionContext {
    pub session_issuer: Option<SessionIssuer>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionIssuer {
    #[serde(rename = "type")]
    pub issuer_type: Option<String>,
    pub arn: Option<String>,
    pub account_id: Option<String>,
    pub user_name: Option<String>,
}

/// Types a CloudTrail record.
pub fn parse(detail: Value) -> Result<Box<CloudTrailEvent>, Malformed> {
    if !detail.is_object() {
        return Err(Malformed(
            "CloudTrail event detail is not a JSON object".to_owned(),
        ));
    }
    serde_json::from_value(detail)
        .map(Box::new)
        .map_err(|e| Malformed::from_serde("CloudTrail event", &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_identity_and_session_issuer() {
        let event = parse(json!({
            "eventName": "StopLogging", "eventID": "e-1",
            "userIdentity": {
                "type": "AssumedRole",
                "arn": "arn:aws:sts::111122223333:assumed-role/ci/build-42",
                "accountId": "111122223333",
                "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "ci"}, "attributes": {}}
            },
            "requestParameters": null, "responseElements": null
        }))
        .unwrap();
        assert_eq!(event.event_id.as_deref(), Some("e-1"));
        let issuer = event
            .user_identity
            .unwrap()
            .session_context
            .unwrap()
            .session_issuer
            .unwrap();
        assert_eq!(issuer.user_name.as_deref(), Some("ci"));
    }

    #[test]
    fn non_object_detail_is_malformed() {
        assert!(parse(json!(null)).is_err());
    }
}
