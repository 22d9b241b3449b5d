//! The events cutoff receives, typed tolerantly.
//!
//! Real events carry fields we don't model, omit optional ones and vary in small ways
//! (severity as integer or float, `resources: []`, the member account only in
//! `detail.accountId`). So the input is first read as JSON, then the envelope is
//! recognised by `source` and `detail-type`, and each finding is typed on its own: one
//! malformed finding in a Security Hub batch does not hide the others.
//!
//! The EventBridge envelope is our own small type rather than `aws_lambda_events`'
//! `EventBridgeEvent`: that one requires `time` and `detail-type`, and cutoff also
//! accepts bare payloads (a manual request, a finding copied from the GuardDuty
//! console) that have no envelope at all.

pub mod cloudtrail;
pub mod guardduty;
pub mod manual;
pub mod ocsf;
pub mod securityhub;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use cloudtrail::CloudTrailEvent;
pub use guardduty::GuardDutyFinding;
pub use manual::{ManualAction, ManualError, ManualRequest, Scope};
pub use ocsf::OcsfFinding;
pub use securityhub::AsffFinding;

/// Inputs larger than this are refused before parsing. EventBridge events are at most
/// 256 KB; Security Hub custom actions carry at most 100 findings.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// Why an input could not be read as an event at all.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("input is empty")]
    Empty,
    #[error("input is {0} bytes, more than the 4 MiB an event can be")]
    TooLarge(usize),
    #[error("input is not valid JSON: {0}")]
    NotJson(String),
    /// Two equal keys in one object: EventBridge's matching and cutoff's reading could
    /// each take a different one (two `detail.accountId` values, say).
    #[error("input has a {0}")]
    DuplicateKey(String),
}

impl From<crate::json::StrictJsonError> for EventError {
    fn from(err: crate::json::StrictJsonError) -> Self {
        match err {
            crate::json::StrictJsonError::NotJson(m) => EventError::NotJson(m),
            dup @ crate::json::StrictJsonError::DuplicateKey { .. } => {
                EventError::DuplicateKey(dup.to_string())
            }
        }
    }
}

/// Why one finding (or one request) inside an otherwise readable event was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

impl Malformed {
    fn from_serde(what: &str, err: &serde_json::Error) -> Self {
        // serde quotes the offending value raw and whole (a wrong-typed string of any
        // length, control characters included): cleaned and cut.
        Malformed(format!(
            "malformed {what}: {}",
            crate::principal::clean_text(&err.to_string(), 300)
        ))
    }
}

/// The EventBridge envelope fields cutoff uses. All optional: bare payloads have none.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Envelope {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, rename = "detail-type")]
    pub detail_type: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    /// The account that emitted the event: for aggregated findings this is the
    /// delegated-admin account, never the account of the principal.
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub resources: Vec<String>,
}

/// The format of a Security Hub finding: what says which API updates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingFormat {
    /// AWS Security Finding Format (Security Hub CSPM): `BatchUpdateFindings` by
    /// finding id and product ARN.
    Asff,
    /// OCSF (Security Hub's `Findings Imported V2`): `BatchUpdateFindingsV2` by
    /// `metadata.uid`.
    Ocsf,
}

/// Where a Security Hub event came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityHubOrigin {
    /// An operator selected findings and chose a custom action.
    CustomAction {
        action_name: Option<String>,
        /// The custom action's ARN (the event's `resources`): what the revoker counts
        /// an action's revocations by, across the events of one selection (Security Hub
        /// sends each selected finding in an event of its own).
        action_arn: Option<String>,
    },
    /// Findings imported from a product (GuardDuty, a partner, a custom integration).
    Imported,
}

/// One input, recognised.
#[derive(Debug, Clone)]
pub enum Event {
    GuardDuty(Result<Box<GuardDutyFinding>, Malformed>),
    SecurityHub {
        origin: SecurityHubOrigin,
        findings: Vec<Result<Box<AsffFinding>, Malformed>>,
    },
    /// Security Hub's OCSF findings (`Findings Imported V2`).
    SecurityHubOcsf {
        findings: Vec<Result<Box<OcsfFinding>, Malformed>>,
    },
    CloudTrail(Result<Box<CloudTrailEvent>, Malformed>),
    Scheduled,
    Manual(Result<ManualRequest, ManualError>),
    /// The detail-type of an AWS service's event from a source that AWS would not have
    /// sent it with: anyone allowed `events:PutEvents` can write any detail-type, but no
    /// one can put an event with a source starting with `aws.`.
    MaybeForged {
        what: String,
    },
    Unknown {
        what: String,
    },
}

/// An input with its envelope (when it had one).
#[derive(Debug, Clone)]
pub struct ParsedEvent {
    pub envelope: Option<Envelope>,
    pub event: Event,
}

/// Reads raw bytes as an event. Only unreadable input is an error; anything that is
/// JSON becomes an [`Event`], possibly `Unknown` or with malformed parts.
pub fn parse(bytes: &[u8]) -> Result<ParsedEvent, EventError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge(bytes.len()));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(EventError::Empty);
    }
    // serde_json's recursion limit (128) turns deeply nested input into an error
    // rather than a stack overflow; a duplicate key anywhere refuses the input.
    let value = crate::json::from_slice(bytes)?;
    Ok(recognise(value))
}

/// Recognises an already-parsed JSON value.
pub fn recognise(value: Value) -> ParsedEvent {
    let Value::Object(mut object) = value else {
        return ParsedEvent {
            envelope: None,
            event: Event::Unknown {
                what: format!("a JSON {}, not an event object", json_kind(&value)),
            },
        };
    };

    if object.contains_key("detail-type") || object.contains_key("detail") {
        let detail = object.remove("detail").unwrap_or(Value::Null);
        let envelope = Envelope {
            id: take_string(&mut object, "id"),
            detail_type: take_string(&mut object, "detail-type"),
            source: take_string(&mut object, "source"),
            account: take_string(&mut object, "account"),
            time: take_string(&mut object, "time"),
            region: take_string(&mut object, "region"),
            resources: match object.remove("resources") {
                Some(Value::Array(items)) => items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::String(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            },
        };
        let event = from_envelope(&envelope, detail);
        return ParsedEvent {
            envelope: Some(envelope),
            event,
        };
    }

    let event = from_bare(object);
    ParsedEvent {
        envelope: None,
        event,
    }
}

fn take_string(object: &mut serde_json::Map<String, Value>, key: &str) -> Option<String> {
    match object.remove(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

const CLOUDTRAIL_DETAIL_TYPE_SUFFIX: &str = "via CloudTrail";
const GUARDDUTY_SOURCE: &str = "aws.guardduty";
const GUARDDUTY_DETAIL_TYPE: &str = "GuardDuty Finding";
const SECURITY_HUB_SOURCE: &str = "aws.securityhub";
const SECURITY_HUB_DETAIL_TYPE_PREFIX: &str = "Security Hub Findings";
/// The detail-type of Security Hub's OCSF findings (the Security Hub service that
/// succeeded Security Hub CSPM's ASFF events for findings).
pub const SECURITY_HUB_V2_DETAIL_TYPE: &str = "Findings Imported V2";

/// The EventBridge source AWS gives a CloudTrail event of the service at
/// `event_source` (`iam.amazonaws.com` → `aws.iam`), or None when `event_source` is not
/// an AWS service endpoint name.
fn cloudtrail_source_of(event_source: &str) -> Option<String> {
    let service = event_source.strip_suffix(".amazonaws.com")?;
    let valid = !service.is_empty()
        && service.len() <= 64
        && service
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    valid.then(|| format!("aws.{service}"))
}

fn maybe_forged(source: &str, detail_type: &str, why: &str) -> Event {
    Event::MaybeForged {
        what: format!(
            "an event with detail-type {} from source {}: {why}",
            crate::principal::excerpt(detail_type),
            crate::principal::excerpt(source),
        ),
    }
}

fn from_envelope(envelope: &Envelope, detail: Value) -> Event {
    let source = envelope.source.as_deref().unwrap_or("");
    let detail_type = envelope.detail_type.as_deref().unwrap_or("");
    // The source is what proves an event came from AWS: `PutEvents` refuses a source
    // starting with `aws.`, but takes any detail-type.
    if detail_type == GUARDDUTY_DETAIL_TYPE && source != GUARDDUTY_SOURCE {
        return maybe_forged(
            source,
            detail_type,
            "GuardDuty findings come only from aws.guardduty; this one may be forged",
        );
    }
    if detail_type.starts_with(SECURITY_HUB_DETAIL_TYPE_PREFIX) && source != SECURITY_HUB_SOURCE {
        return maybe_forged(
            source,
            detail_type,
            "Security Hub findings come only from aws.securityhub; this one may be forged",
        );
    }
    if detail_type == SECURITY_HUB_V2_DETAIL_TYPE {
        if source != SECURITY_HUB_SOURCE {
            return maybe_forged(
                source,
                detail_type,
                "Security Hub findings come only from aws.securityhub; this one may be forged",
            );
        }
        return Event::SecurityHubOcsf {
            findings: ocsf::parse_findings(detail),
        };
    }
    if detail_type.ends_with(CLOUDTRAIL_DETAIL_TYPE_SUFFIX) {
        // A CloudTrail event carries the source of the service that was called
        // (aws.iam, aws.sts, ...), which must agree with the record's eventSource.
        if !source.starts_with("aws.") {
            return maybe_forged(
                source,
                detail_type,
                "CloudTrail events come only from a source starting with aws.; this one may be forged",
            );
        }
        let event_source = detail.get("eventSource").and_then(Value::as_str);
        if event_source.and_then(cloudtrail_source_of).as_deref() != Some(source) {
            return maybe_forged(
                source,
                detail_type,
                &format!(
                    "its detail.eventSource {} does not agree with the source; it may be forged",
                    crate::principal::excerpt(event_source.unwrap_or(""))
                ),
            );
        }
        return Event::CloudTrail(cloudtrail::parse(detail));
    }
    match (source, detail_type) {
        (GUARDDUTY_SOURCE, GUARDDUTY_DETAIL_TYPE) => Event::GuardDuty(guardduty::parse(detail)),
        (SECURITY_HUB_SOURCE, dt) if dt.starts_with(SECURITY_HUB_DETAIL_TYPE_PREFIX) => {
            let origin = if dt == "Security Hub Findings - Custom Action" {
                SecurityHubOrigin::CustomAction {
                    action_name: detail
                        .get("actionName")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    action_arn: envelope
                        .resources
                        .iter()
                        .find(|r| r.contains(":action/custom/"))
                        .map(|r| crate::principal::clean_text(r, 256)),
                }
            } else {
                SecurityHubOrigin::Imported
            };
            Event::SecurityHub {
                origin,
                findings: securityhub::parse_findings(detail),
            }
        }
        ("aws.events", "Scheduled Event") | ("aws.scheduler", _) => Event::Scheduled,
        _ => Event::Unknown {
            what: format!(
                "an event from source {} with detail-type {}",
                crate::principal::excerpt(source),
                crate::principal::excerpt(detail_type)
            ),
        },
    }
}

/// Payloads without an envelope: a manual request, or a finding or CloudTrail record
/// pasted from a console or an export.
fn from_bare(object: serde_json::Map<String, Value>) -> Event {
    let value_of = |key: &str| object.get(key);
    if value_of("action").is_some() {
        return Event::Manual(manual::parse(Value::Object(object)));
    }
    let is_guardduty_finding = value_of("schemaVersion").is_some()
        && value_of("resource").is_some()
        && (value_of("service")
            .and_then(|s| s.get("serviceName"))
            .and_then(Value::as_str)
            == Some("guardduty")
            || value_of("arn")
                .and_then(Value::as_str)
                .is_some_and(|arn| arn.contains(":guardduty:")));
    if is_guardduty_finding {
        return Event::GuardDuty(guardduty::parse(Value::Object(object)));
    }
    if value_of("SchemaVersion").is_some() && value_of("ProductArn").is_some() {
        return Event::SecurityHub {
            origin: SecurityHubOrigin::Imported,
            findings: vec![securityhub::parse_one(Value::Object(object))],
        };
    }
    if value_of("class_uid").is_some()
        && value_of("finding_info").is_some()
        && value_of("metadata").is_some()
    {
        return Event::SecurityHubOcsf {
            findings: vec![ocsf::parse_one(Value::Object(object))],
        };
    }
    if value_of("eventVersion").is_some()
        && value_of("userIdentity").is_some()
        && value_of("eventName").is_some()
    {
        return Event::CloudTrail(cloudtrail::parse(Value::Object(object)));
    }
    Event::Unknown {
        what: "a JSON object that is neither an EventBridge event nor a cutoff request".to_owned(),
    }
}

/// Types one JSON object as a `what` (a finding), boxed; anything else is malformed.
pub(crate) fn typed_object<T: serde::de::DeserializeOwned>(
    value: Value,
    what: &str,
) -> Result<Box<T>, Malformed> {
    if !value.is_object() {
        return Err(Malformed(format!("{what} is not a JSON object")));
    }
    serde_json::from_value(value)
        .map(Box::new)
        .map_err(|e| Malformed::from_serde(what, &e))
}

/// Types each finding of an `event`'s `detail.findings` on its own with `parse_one`,
/// so one malformed finding does not hide the others.
pub(crate) fn each_finding<T>(
    detail: Value,
    event: &str,
    parse_one: impl Fn(Value) -> Result<Box<T>, Malformed>,
) -> Vec<Result<Box<T>, Malformed>> {
    match detail {
        Value::Object(mut object) => match object.remove("findings") {
            Some(Value::Array(findings)) => findings.into_iter().map(parse_one).collect(),
            _ => vec![Err(Malformed(format!("{event} has no findings array")))],
        },
        _ => vec![Err(Malformed(format!(
            "{event} detail is not a JSON object"
        )))],
    }
}

/// Reads a JSON value as a boolean the way AWS services write flags: `true` or
/// `"true"` (Security Hub's ProductFields are all strings).
pub(crate) fn flag(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Reads a JSON number; strings and other types are not severities.
pub(crate) fn number(value: Option<&Value>) -> Option<f64> {
    value.and_then(Value::as_f64).filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> ParsedEvent {
        parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn empty_and_blank_input_is_an_error() {
        assert!(matches!(parse(b""), Err(EventError::Empty)));
        assert!(matches!(parse(b" \n\t"), Err(EventError::Empty)));
    }

    #[test]
    fn non_json_is_an_error() {
        assert!(matches!(parse(b"not json"), Err(EventError::NotJson(_))));
        assert!(matches!(
            parse(&[0xff, 0xfe, 0x00]),
            Err(EventError::NotJson(_))
        ));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(EventError::NotJson(_))
        ));
        let deep_obj = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        assert!(matches!(
            parse(deep_obj.as_bytes()),
            Err(EventError::NotJson(_))
        ));
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let big = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(matches!(parse(&big), Err(EventError::TooLarge(_))));
    }

    #[test]
    fn non_objects_are_unknown() {
        for input in ["[]", "null", "1", "\"x\"", "true"] {
            assert!(
                matches!(parse_str(input).event, Event::Unknown { .. }),
                "{input}"
            );
        }
    }

    #[test]
    fn guardduty_envelope_is_recognised_and_keeps_the_envelope() {
        let parsed = parse_str(
            r#"{"version":"0","id":"e1","detail-type":"GuardDuty Finding","source":"aws.guardduty",
                "account":"999988887777","time":"2026-01-01T00:00:00Z","region":"us-east-1","resources":[],
                "detail":{"accountId":"111122223333","id":"abc","severity":8}}"#,
        );
        assert!(matches!(parsed.event, Event::GuardDuty(Ok(_))));
        let envelope = parsed.envelope.unwrap();
        assert_eq!(envelope.account.as_deref(), Some("999988887777"));
        assert!(envelope.resources.is_empty());
    }

    #[test]
    fn a_cloudtrail_event_counts_only_from_the_aws_source_of_the_service_it_records() {
        for (source, event_source) in [
            ("aws.iam", "iam.amazonaws.com"),
            ("aws.sts", "sts.amazonaws.com"),
            ("aws.guardduty", "guardduty.amazonaws.com"),
            ("aws.sso-oauth", "sso-oauth.amazonaws.com"),
        ] {
            let parsed = parse_str(&format!(
                r#"{{"detail-type":"AWS API Call via CloudTrail","source":"{source}","detail":{{"eventName":"X","eventSource":"{event_source}"}}}}"#
            ));
            assert!(matches!(parsed.event, Event::CloudTrail(Ok(_))), "{source}");
        }
        for (source, event_source) in [
            // PutEvents takes any source not starting with aws.
            ("cutoff.forged", "iam.amazonaws.com"),
            ("iam", "iam.amazonaws.com"),
            // A real source with another service's record.
            ("aws.guardduty", "iam.amazonaws.com"),
            ("aws.iam", "iam.amazonaws.com.evil"),
            ("aws.iam", ""),
        ] {
            let parsed = parse_str(&format!(
                r#"{{"detail-type":"AWS API Call via CloudTrail","source":"{source}","detail":{{"eventName":"X","eventSource":"{event_source}"}}}}"#
            ));
            let Event::MaybeForged { what } = parsed.event else {
                panic!("{source}/{event_source} accepted: {:?}", parsed.event);
            };
            assert!(what.contains("may be forged"), "{what}");
        }
        let no_event_source = parse_str(
            r#"{"detail-type":"AWS API Call via CloudTrail","source":"aws.iam","detail":{"eventName":"X"}}"#,
        );
        assert!(matches!(no_event_source.event, Event::MaybeForged { .. }));
    }

    #[test]
    fn a_guardduty_or_security_hub_detail_type_from_another_source_may_be_forged() {
        for event in [
            r#"{"detail-type":"GuardDuty Finding","source":"guardduty","detail":{"id":"x"}}"#,
            r#"{"detail-type":"GuardDuty Finding","source":"aws.securityhub","detail":{"id":"x"}}"#,
            r#"{"detail-type":"Security Hub Findings - Custom Action","source":"custom.app","detail":{"findings":[]}}"#,
            r#"{"detail-type":"Security Hub Findings - Imported","detail":{"findings":[]}}"#,
        ] {
            assert!(
                matches!(parse_str(event).event, Event::MaybeForged { .. }),
                "{event}"
            );
        }
    }

    #[test]
    fn an_event_with_a_duplicate_key_is_refused() {
        let err = parse(
            br#"{"detail-type":"GuardDuty Finding","source":"aws.guardduty","detail":{"accountId":"111122223333","accountId":"444455556666"}}"#,
        )
        .unwrap_err();
        assert!(matches!(err, EventError::DuplicateKey(_)), "{err}");
        assert!(err.to_string().contains("accountId"), "{err}");
    }

    #[test]
    fn security_hub_custom_action_and_imported_are_told_apart() {
        let custom = parse_str(
            r#"{"detail-type":"Security Hub Findings - Custom Action","source":"aws.securityhub",
                "detail":{"actionName":"revoke","findings":[]}}"#,
        );
        assert!(matches!(
            custom.event,
            Event::SecurityHub {
                origin: SecurityHubOrigin::CustomAction { .. },
                ..
            }
        ));
        let imported = parse_str(
            r#"{"detail-type":"Security Hub Findings - Imported","source":"aws.securityhub","detail":{"findings":[]}}"#,
        );
        assert!(matches!(
            imported.event,
            Event::SecurityHub {
                origin: SecurityHubOrigin::Imported,
                ..
            }
        ));
    }

    #[test]
    fn security_hub_ocsf_findings_are_recognised_only_from_security_hub() {
        let event = |source: &str| {
            format!(
                r#"{{"detail-type":"Findings Imported V2","source":"{source}","detail":{{"findings":[{{"metadata":{{"uid":"x"}}}}]}}}}"#
            )
        };
        let parsed = parse_str(&event("aws.securityhub"));
        let Event::SecurityHubOcsf { findings } = parsed.event else {
            panic!("not recognised: {:?}", parsed.event);
        };
        assert_eq!(findings.len(), 1);
        for forged in ["acme.securityhub", "securityhub", "aws.guardduty"] {
            assert!(
                matches!(parse_str(&event(forged)).event, Event::MaybeForged { .. }),
                "{forged}"
            );
        }
        let bare =
            parse_str(r#"{"class_uid":2004,"metadata":{"uid":"x"},"finding_info":{"uid":"y"}}"#);
        assert!(bare.envelope.is_none());
        assert!(matches!(bare.event, Event::SecurityHubOcsf { .. }));
    }

    #[test]
    fn scheduled_events_are_recognised() {
        let parsed =
            parse_str(r#"{"detail-type":"Scheduled Event","source":"aws.events","detail":{}}"#);
        assert!(matches!(parsed.event, Event::Scheduled));
    }

    #[test]
    fn envelope_fields_of_the_wrong_type_are_dropped_not_fatal() {
        let parsed = parse_str(
            r#"{"detail-type":"GuardDuty Finding","source":"aws.guardduty","account":5,"resources":"x","detail":{}}"#,
        );
        assert!(matches!(parsed.event, Event::GuardDuty(_)));
        let envelope = parsed.envelope.unwrap();
        assert_eq!(envelope.account, None);
        assert!(envelope.resources.is_empty());
    }

    #[test]
    fn bare_guardduty_findings_and_manual_requests_are_recognised() {
        let finding = parse_str(
            r#"{"schemaVersion":"2.0","accountId":"111122223333","resource":{},"service":{"serviceName":"guardduty"}}"#,
        );
        assert!(finding.envelope.is_none());
        assert!(matches!(finding.event, Event::GuardDuty(Ok(_))));
        let manual = parse_str(r#"{"action":"revoke","account":"111122223333","role":"x"}"#);
        assert!(matches!(manual.event, Event::Manual(Ok(_))));
    }

    #[test]
    fn other_objects_are_unknown() {
        assert!(matches!(
            parse_str(r#"{"hello":"world"}"#).event,
            Event::Unknown { .. }
        ));
        assert!(matches!(
            parse_str(r#"{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{}}"#).event,
            Event::Unknown { .. }
        ));
    }
}
