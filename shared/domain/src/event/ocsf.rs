//! Security Hub's OCSF findings (the `Findings Imported V2` events of the Security Hub
//! service that speaks the Open Cybersecurity Schema Framework; snake_case), as
//! EventBridge delivers them: `detail.findings`, one finding per event.
//!
//! Only what triage and the notifier use is modelled. Product-specific parts
//! (`resources[].data`, `unmapped`) are kept as JSON and typed where read, so a shape
//! cutoff does not know does not make the whole finding unreadable. Times come twice
//! in OCSF: epoch milliseconds (`first_seen_time`) and ISO 8601 (`first_seen_time_dt`).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::Malformed;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct OcsfFinding {
    /// 2004 for a Detection Finding (GuardDuty's, and other threat detections).
    pub class_uid: Option<Value>,
    /// 1 Create, 2 Update, 3 Close.
    pub activity_id: Option<Value>,
    pub metadata: Option<Metadata>,
    pub finding_info: Option<FindingInfo>,
    pub cloud: Option<Cloud>,
    /// OCSF's severity: 0 Unknown, 1 Informational, 2 Low, 3 Medium, 4 High,
    /// 5 Critical, 6 Fatal, 99 Other. Any account allowed `BatchUpdateFindings` in the
    /// finding's account can change it (`BatchUpdateFindingsV2`).
    pub severity_id: Option<Value>,
    /// 1 New, 2 In Progress, 3 Suppressed, 4 Resolved, 5 Archived, 6 Deleted, 99 Other.
    pub status_id: Option<Value>,
    /// The product's own values, kept when a customer updates the finding's.
    pub vendor_attributes: Option<VendorAttributes>,
    /// Whatever the product reported that OCSF has no attribute for.
    pub unmapped: Option<Value>,
    /// Who acted, where the finding's class carries an actor.
    pub actor: Option<Actor>,
    /// What the finding saw; an evidence may name its actor.
    pub evidences: Vec<Evidence>,
    pub resources: Vec<Resource>,
    pub time_dt: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Metadata {
    /// Security Hub's id of the finding: what `BatchUpdateFindingsV2` takes.
    pub uid: Option<String>,
    pub product: Option<Product>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Product {
    /// Free text ("GuardDuty"); never trusted to say which product sent the finding.
    pub name: Option<String>,
    /// `arn:aws:securityhub:<region>::productv2/<company>/<product>`.
    pub uid: Option<String>,
    pub vendor_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct FindingInfo {
    /// The product's id of the finding (GuardDuty's finding ARN).
    pub uid: Option<String>,
    pub title: Option<String>,
    pub types: Vec<String>,
    pub first_seen_time: Option<Value>,
    pub first_seen_time_dt: Option<String>,
    pub last_seen_time: Option<Value>,
    pub last_seen_time_dt: Option<String>,
    pub modified_time: Option<Value>,
    pub modified_time_dt: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Cloud {
    pub account: Option<AccountRef>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AccountRef {
    pub uid: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct VendorAttributes {
    pub severity_id: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Evidence {
    pub actor: Option<Actor>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Actor {
    pub user: Option<User>,
    pub session: Option<Session>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct User {
    pub name: Option<String>,
    /// OCSF: the user's unique id, for AWS its ARN (`arn:aws:sts::…:assumed-role/r/s`);
    /// some products write the principal id (`AROA…:session`) instead.
    pub uid: Option<String>,
    /// OCSF's label (`User`, `Admin`, `System`, `Other`), or a product's own principal
    /// type (`AssumedRole`, `IAMUser`, …).
    #[serde(rename = "type")]
    pub user_type: Option<String>,
    /// The access key the actor used.
    pub credential_uid: Option<String>,
    pub account: Option<AccountRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Session {
    /// The ARN of what issued the session: for an assumed role, the role's ARN.
    pub issuer: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Resource {
    /// CloudFormation's type names: `AWS::IAM::AccessKey`, `AWS::IAM::Role`, …
    #[serde(rename = "type")]
    pub resource_type: Option<String>,
    /// The access key id of an access key; the ARN (or name) of a role or user.
    pub uid: Option<String>,
    pub name: Option<String>,
    pub owner: Option<Owner>,
    /// The product's own description of the resource (GuardDuty's, in snake_case).
    pub data: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Owner {
    pub account: Option<AccountRef>,
}

/// The principal behind an access key, as GuardDuty describes it in an OCSF resource's
/// `data` (its `accessKeyDetails`, in snake_case).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AccessKeyData {
    pub access_key_id: Option<String>,
    pub principal_id: Option<String>,
    pub user_name: Option<String>,
    pub user_type: Option<String>,
}

/// An EC2 instance's profile, in an OCSF resource's `data`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct InstanceData {
    pub iam_instance_profile: Option<InstanceProfile>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct InstanceProfile {
    pub arn: Option<String>,
}

/// OCSF's `severity_id` on GuardDuty's 0–10 scale: Medium 4, High 7, Critical 9,
/// Fatal 10 (each the lowest GuardDuty value of its band, so the thresholds mean what
/// they mean for GuardDuty); Unknown and Other are no severity.
fn severity_of_id(id: i64) -> Option<f64> {
    Some(match id {
        1 => 0.0,
        2 => 1.0,
        3 => 4.0,
        4 => 7.0,
        5 => 9.0,
        6 => 10.0,
        _ => return None,
    })
}

fn integer(value: Option<&Value>) -> Option<i64> {
    value.and_then(Value::as_i64)
}

/// An OCSF time: the ISO 8601 twin when given, else the epoch milliseconds; none before
/// [`crate::clock::EARLIEST_PLAUSIBLE`].
fn time(dt: Option<&str>, millis: Option<&Value>) -> Option<DateTime<Utc>> {
    match dt {
        Some(dt) => DateTime::parse_from_rfc3339(dt)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        None => integer(millis).and_then(DateTime::from_timestamp_millis),
    }
    .filter(|t| *t >= crate::clock::EARLIEST_PLAUSIBLE)
}

/// The statuses that need no response: suppressed, resolved, archived, deleted.
const CLOSED_STATUSES: [i64; 4] = [3, 4, 5, 6];
/// OCSF's activity of a finding that was closed.
const ACTIVITY_CLOSE: i64 = 3;

impl OcsfFinding {
    /// Security Hub's id of the finding (`metadata.uid`).
    pub fn id(&self) -> Option<&str> {
        self.metadata.as_ref()?.uid.as_deref()
    }

    pub fn product_uid(&self) -> Option<&str> {
        self.metadata.as_ref()?.product.as_ref()?.uid.as_deref()
    }

    pub fn account(&self) -> Option<&str> {
        self.cloud.as_ref()?.account.as_ref()?.uid.as_deref()
    }

    pub fn region(&self) -> Option<&str> {
        self.cloud.as_ref()?.region.as_deref()
    }

    /// The finding's type as the product names it: the first of `finding_info.types`
    /// in a product's own notation (GuardDuty's `Stealth:IAMUser/…`), else the first.
    pub fn finding_type(&self) -> Option<&str> {
        let types = &self.finding_info.as_ref()?.types;
        types
            .iter()
            .find(|t| t.contains(':'))
            .or_else(|| types.first())
            .map(String::as_str)
    }

    /// The severity on GuardDuty's 0–10 scale. The product's own wins over the one a
    /// customer can change: a number the product reported in `unmapped.severity`
    /// (GuardDuty's scale; OCSF has no attribute for it), else
    /// `vendor_attributes.severity_id`, else `severity_id`.
    pub fn severity(&self) -> Option<f64> {
        let product_number = super::number(self.unmapped.as_ref().and_then(|u| u.get("severity")))
            .filter(|n| (0.0..=10.0).contains(n));
        if product_number.is_some() {
            return product_number;
        }
        let vendor = self
            .vendor_attributes
            .as_ref()
            .and_then(|v| integer(v.severity_id.as_ref()));
        vendor
            .or_else(|| integer(self.severity_id.as_ref()))
            .and_then(severity_of_id)
    }

    /// Suppressed, resolved, archived or deleted (`status_id`), or closed
    /// (`activity_id` 3): nothing to respond to.
    pub fn is_closed(&self) -> bool {
        integer(self.status_id.as_ref()).is_some_and(|s| CLOSED_STATUSES.contains(&s))
            || integer(self.activity_id.as_ref()) == Some(ACTIVITY_CLOSE)
    }

    /// Sample findings: GuardDuty titles them `[SAMPLE] …`.
    pub fn is_sample(&self) -> bool {
        self.finding_info
            .as_ref()
            .and_then(|i| i.title.as_deref())
            .is_some_and(|t| t.trim_start().starts_with("[SAMPLE]"))
    }

    pub fn first_seen(&self) -> Option<DateTime<Utc>> {
        let info = self.finding_info.as_ref()?;
        time(
            info.first_seen_time_dt.as_deref(),
            info.first_seen_time.as_ref(),
        )
    }

    /// When the product last changed the finding (`finding_info.modified_time`), else
    /// the event's time.
    pub fn modified(&self) -> Option<DateTime<Utc>> {
        let info = self.finding_info.as_ref();
        info.and_then(|i| time(i.modified_time_dt.as_deref(), i.modified_time.as_ref()))
            .or_else(|| time(self.time_dt.as_deref(), None))
    }

    /// Every actor the finding names: its own, then each evidence's.
    pub fn actors(&self) -> impl Iterator<Item = &Actor> {
        self.actor
            .iter()
            .chain(self.evidences.iter().filter_map(|e| e.actor.as_ref()))
    }
}

/// Types one finding.
pub fn parse_one(value: Value) -> Result<Box<OcsfFinding>, Malformed> {
    super::typed_object(value, "Security Hub OCSF finding")
}

/// Types each finding of a `Findings Imported V2` event's `detail.findings` on its own.
pub fn parse_findings(detail: Value) -> Vec<Result<Box<OcsfFinding>, Malformed>> {
    super::each_finding(detail, "Security Hub OCSF event", parse_one)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn severity_maps_ocsf_ids_onto_guardduty_scale() {
        for (id, expected) in [
            (0, None),
            (1, Some(0.0)),
            (2, Some(1.0)),
            (3, Some(4.0)),
            (4, Some(7.0)),
            (5, Some(9.0)),
            (6, Some(10.0)),
            (99, None),
            (7, None),
        ] {
            let f = parse_one(json!({ "severity_id": id })).unwrap();
            assert_eq!(f.severity(), expected, "{id}");
        }
        assert_eq!(
            parse_one(json!({"severity_id": "4"})).unwrap().severity(),
            None
        );
        assert_eq!(parse_one(json!({})).unwrap().severity(), None);
    }

    #[test]
    fn the_products_own_severity_wins_over_the_customers() {
        // A customer lowered High to Low with BatchUpdateFindingsV2; the product's
        // own value stays in vendor_attributes.
        let f =
            parse_one(json!({"severity_id": 2, "vendor_attributes": {"severity_id": 4}})).unwrap();
        assert_eq!(f.severity(), Some(7.0));
        // A number the product reported wins over both labels.
        let f = parse_one(
            json!({"severity_id": 3, "vendor_attributes": {"severity_id": 3},
            "unmapped": {"severity": 8.2}}),
        )
        .unwrap();
        assert_eq!(f.severity(), Some(8.2));
        // Not GuardDuty's scale, or not a number: not a severity.
        for unmapped in [
            json!({"severity": 70}),
            json!({"severity": "8"}),
            json!("x"),
        ] {
            let f = parse_one(json!({"severity_id": 3, "unmapped": unmapped})).unwrap();
            assert_eq!(f.severity(), Some(4.0), "{unmapped}");
        }
    }

    #[test]
    fn closed_statuses_and_activities_are_closed() {
        for status in [3, 4, 5, 6] {
            assert!(parse_one(json!({"status_id": status})).unwrap().is_closed());
        }
        for status in [0, 1, 2, 99] {
            assert!(!parse_one(json!({"status_id": status})).unwrap().is_closed());
        }
        assert!(parse_one(json!({"activity_id": 3})).unwrap().is_closed());
        assert!(!parse_one(json!({"activity_id": 2})).unwrap().is_closed());
    }

    #[test]
    fn times_prefer_the_iso_twin_and_fall_back_to_milliseconds() {
        let f = parse_one(json!({"finding_info": {
            "first_seen_time": 1_729_765_286_000_i64, "first_seen_time_dt": "2024-10-24T10:21:26.000Z",
            "modified_time": 1_753_153_354_272_i64}}))
        .unwrap();
        assert_eq!(
            f.first_seen().unwrap().to_rfc3339(),
            "2024-10-24T10:21:26+00:00"
        );
        assert_eq!(f.modified().unwrap().timestamp_millis(), 1_753_153_354_272);
        let f = parse_one(json!({"finding_info": {"first_seen_time_dt": "yesterday"}})).unwrap();
        assert_eq!(f.first_seen(), None);
    }

    #[test]
    fn the_type_is_the_products_own_notation() {
        let f = parse_one(
            json!({"finding_info": {"types": ["Threats", "Execution:Runtime/NewBinaryExecuted"]}}),
        )
        .unwrap();
        assert_eq!(
            f.finding_type(),
            Some("Execution:Runtime/NewBinaryExecuted")
        );
        let f = parse_one(json!({"finding_info": {"types": ["Threats"]}})).unwrap();
        assert_eq!(f.finding_type(), Some("Threats"));
    }

    #[test]
    fn actors_come_from_the_finding_and_its_evidences() {
        let f = parse_one(json!({
            "actor": {"user": {"name": "a"}},
            "evidences": [{"api": {"operation": "x"}}, {"actor": {"user": {"name": "b"}}}]
        }))
        .unwrap();
        let names: Vec<_> = f
            .actors()
            .filter_map(|a| a.user.as_ref()?.name.as_deref())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn one_malformed_finding_does_not_hide_the_others_and_wrong_types_are_malformed() {
        let findings = parse_findings(json!({"findings": [
            {"metadata": {"uid": "a"}}, {"resources": "x"}, 5, {"metadata": {"uid": "b"}}
        ]}));
        assert_eq!(findings.len(), 4);
        assert!(findings[0].is_ok() && findings[3].is_ok());
        let err = findings[1].as_ref().unwrap_err();
        assert!(
            err.0.contains("malformed Security Hub OCSF finding"),
            "{err}"
        );
        assert!(findings[2].is_err());
        assert!(parse_findings(json!({}))[0].is_err());
        assert!(parse_findings(json!([]))[0].is_err());
    }
}
