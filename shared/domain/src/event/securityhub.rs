//! Security Hub findings in the AWS Security Finding Format (ASFF, PascalCase), as
//! carried by `Security Hub Findings - Custom Action` and `- Imported` events.

use serde::Deserialize;
use serde_json::Value;

use super::Malformed;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AsffFinding {
    pub aws_account_id: Option<String>,
    pub id: Option<String>,
    pub product_arn: Option<String>,
    pub types: Option<Vec<String>>,
    pub severity: Option<Severity>,
    pub resources: Vec<AsffResource>,
    pub record_state: Option<String>,
    pub workflow: Option<Workflow>,
    /// Bool in ASFF; kept raw because some products write `"true"`.
    pub sample: Option<Value>,
    pub updated_at: Option<String>,
    pub first_observed_at: Option<String>,
    pub last_observed_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Severity {
    pub label: Option<String>,
    pub normalized: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Workflow {
    pub status: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AsffResource {
    #[serde(rename = "Type")]
    pub resource_type: Option<String>,
    pub id: Option<String>,
    pub partition: Option<String>,
    pub details: Option<ResourceDetails>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ResourceDetails {
    pub aws_iam_access_key: Option<AwsIamAccessKey>,
    pub aws_ec2_instance: Option<AwsEc2Instance>,
    pub aws_iam_role: Option<AwsIamRole>,
    pub aws_iam_user: Option<AwsIamUser>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AwsIamAccessKey {
    /// `AssumedRole`, `Role`, `IAMUser`, `Root`, `FederatedUser`, …
    pub principal_type: Option<String>,
    pub principal_name: Option<String>,
    /// `AROA…:session` for role sessions.
    pub principal_id: Option<String>,
    /// Deprecated by ASFF in favour of PrincipalName, still written by some products.
    pub user_name: Option<String>,
    pub account_id: Option<String>,
    pub access_key_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AwsEc2Instance {
    pub iam_instance_profile_arn: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AwsIamRole {
    pub role_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AwsIamUser {
    pub user_name: Option<String>,
}

/// Severity labels on GuardDuty's 0–10 scale, for findings without `Normalized`.
fn label_severity(label: &str) -> Option<f64> {
    Some(match label.to_ascii_uppercase().as_str() {
        "INFORMATIONAL" => 0.0,
        "LOW" => 1.0,
        "MEDIUM" => 4.0,
        "HIGH" => 7.0,
        "CRITICAL" => 9.0,
        _ => return None,
    })
}

impl AsffFinding {
    /// Severity on GuardDuty's 0–10 scale: `Normalized` (0–100) / 10, else the label.
    pub fn severity(&self) -> Option<f64> {
        let severity = self.severity.as_ref()?;
        super::number(severity.normalized.as_ref())
            .map(|n| n / 10.0)
            .or_else(|| severity.label.as_deref().and_then(label_severity))
    }

    pub fn is_sample(&self) -> bool {
        super::flag(self.sample.as_ref())
    }

    pub fn is_archived(&self) -> bool {
        self.record_state
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("ARCHIVED"))
    }

    /// Resolved or suppressed findings need no response.
    pub fn is_closed(&self) -> bool {
        self.workflow
            .as_ref()
            .and_then(|w| w.status.as_deref())
            .is_some_and(|s| {
                s.eq_ignore_ascii_case("RESOLVED") || s.eq_ignore_ascii_case("SUPPRESSED")
            })
    }

    pub fn first_type(&self) -> Option<&str> {
        self.types.as_ref()?.first().map(String::as_str)
    }
}

/// Types one finding.
pub fn parse_one(value: Value) -> Result<Box<AsffFinding>, Malformed> {
    super::typed_object(value, "Security Hub finding")
}

/// Types each finding of a Security Hub event's `detail.findings` on its own, so one
/// malformed finding does not hide the others.
pub fn parse_findings(detail: Value) -> Vec<Result<Box<AsffFinding>, Malformed>> {
    super::each_finding(detail, "Security Hub event", parse_one)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn severity_prefers_normalized_then_label() {
        let f = parse_one(json!({"Severity": {"Normalized": 70, "Label": "LOW"}})).unwrap();
        assert_eq!(f.severity(), Some(7.0));
        let f = parse_one(json!({"Severity": {"Label": "CRITICAL"}})).unwrap();
        assert_eq!(f.severity(), Some(9.0));
        let f = parse_one(json!({"Severity": {"Label": "BOGUS"}})).unwrap();
        assert_eq!(f.severity(), None);
    }

    #[test]
    fn one_malformed_finding_does_not_hide_the_others() {
        let findings = parse_findings(json!({
            "findings": [ {"Id": "a"}, {"Id": 5}, "nope", {"Id": "b"} ]
        }));
        assert_eq!(findings.len(), 4);
        assert!(findings[0].is_ok() && findings[3].is_ok());
        assert!(findings[1].is_err() && findings[2].is_err());
    }

    #[test]
    fn missing_findings_array_is_malformed() {
        assert!(parse_findings(json!({}))[0].is_err());
        assert!(parse_findings(json!("x"))[0].is_err());
    }

    #[test]
    fn record_state_and_workflow_are_read() {
        let f = parse_one(json!({"RecordState": "ARCHIVED", "Workflow": {"Status": "SUPPRESSED"}}))
            .unwrap();
        assert!(f.is_archived() && f.is_closed());
        let f = parse_one(
            json!({"RecordState": "ACTIVE", "Workflow": {"Status": "NEW"}, "Sample": true}),
        )
        .unwrap();
        assert!(!f.is_archived() && !f.is_closed() && f.is_sample());
    }
}
