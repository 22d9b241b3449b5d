//! The EventBridge rules of infra/template.yaml and infra/forwarder.yaml, with every
//! fixture (and the samples below) sent through them: each rule must deliver the events
//! it exists for and nothing else.
//!
//! Two independent matchers decide. moto's EventBridge: the rules put on a bus of the
//! local stand-in, the events put on that bus, what each rule's queue received. And
//! quamina (the `quamina` crate, a Rust port of Tim Bray's EventBridge-compatible
//! matcher), handed the same patterns and events. moto does not match into arrays of
//! objects (`detail.findings.*`), which the Security Hub findings rules need: quamina
//! alone decides those. quamina does not take `$or`: a rule with one (the GuardDuty rule)
//! is handed to it as the patterns its `$or` stands for. Every other rule runs in both,
//! and they must agree with each other and with what the rule exists for (the
//! `*_should_match` functions, written from what each rule is for, never from its
//! pattern).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
use cutoff_tests::aws::{ACCOUNT, REGION, sdk_config};
use cutoff_tests::moto::MotoServer;
use cutoff_tests::{fixture_dir, read_expected};
use serde_json::{Map, Value, json};

const ACTION_ARN: &str = "arn:aws:securityhub:us-east-1:123456789012:action/custom/cutoffrevoke";
const OTHER_ACTION_ARN: &str =
    "arn:aws:securityhub:us-east-1:123456789012:action/custom/open-ticket";
const CLOUDTRAIL_EVENTS: &str = "StopLogging,DeleteTrail";

/// Rules of infra/template.yaml both matchers run.
const RESPONDER_RULES: [&str; 3] = [
    "GuardDutyRule",
    "SecurityHubActionRule",
    "CloudTrailApiCallRule",
];

/// Rules of infra/template.yaml that match into `detail.findings`, an array of
/// objects: quamina alone runs them.
const FINDINGS_RULES: [&str; 2] = [
    "SecurityHubImportedFindingsRule",
    "SecurityHubV2FindingsRule",
];

/// The rules of infra/forwarder.yaml, which send other regions' events to the
/// responder's region unchanged.
const FORWARD_RULES: [&str; 4] = [
    "ForwardGuardDuty",
    "ForwardSecurityHubImportedRule",
    "ForwardSecurityHubV2Rule",
    "ForwardCloudTrailRule",
];

/// The resource types of an imported (ASFF) finding triage takes a principal from.
const PRINCIPAL_RESOURCE_TYPES: [&str; 4] = [
    "AwsIamAccessKey",
    "AwsIamRole",
    "AwsIamUser",
    "AwsEc2Instance",
];

fn template(name: &str) -> Value {
    cutoff_tests::template_json(name)
}

/// Resolves the intrinsic functions the rules use, with the parameters' defaults
/// (and the CloudTrail opt-in set, whose default is empty).
fn resolve(value: &Value, params: &Value) -> Value {
    let param = |name: &str| -> String {
        match name {
            "CloudTrailEventNames" => CLOUDTRAIL_EVENTS.to_owned(),
            "SecurityHubActionTarget" => ACTION_ARN.to_owned(),
            _ => match &params[name]["Default"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        }
    };
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key("Ref") => {
            Value::String(param(map["Ref"].as_str().unwrap()))
        }
        Value::Object(map) if map.len() == 1 && map.contains_key("Fn::Sub") => {
            let mut text = map["Fn::Sub"].as_str().unwrap().to_owned();
            while let Some(start) = text.find("${") {
                let end = start + text[start..].find('}').unwrap();
                let name = text[start + 2..end].to_owned();
                text.replace_range(start..=end, &param(&name));
            }
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
        Value::Object(map) if map.len() == 1 && map.contains_key("Fn::Split") => {
            let parts = map["Fn::Split"].as_array().unwrap();
            let text = resolve(&parts[1], params);
            Value::Array(
                text.as_str()
                    .unwrap()
                    .split(parts[0].as_str().unwrap())
                    .map(Value::from)
                    .collect(),
            )
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve(v, params)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve(v, params)).collect()),
        other => other.clone(),
    }
}

/// EventBridge's `$or` written out: a pattern with one matches when the pattern made of
/// one of its alternatives merged into the rest of the object does. quamina takes no
/// `$or`, so a rule with one is handed to it as every pattern the rule stands for.
fn without_or(pattern: &Value) -> Vec<Value> {
    let Value::Object(fields) = pattern else {
        return vec![pattern.clone()];
    };
    let mut out = vec![Map::new()];
    for (key, value) in fields {
        // What this field contributes, one object per alternative.
        let alternatives: Vec<Map<String, Value>> = if key == "$or" {
            value
                .as_array()
                .expect("$or takes an array")
                .iter()
                .flat_map(without_or)
                .map(|alternative| alternative.as_object().unwrap().clone())
                .collect()
        } else if value.is_object() {
            without_or(value)
                .into_iter()
                .map(|v| Map::from_iter([(key.clone(), v)]))
                .collect()
        } else {
            vec![Map::from_iter([(key.clone(), value.clone())])]
        };
        out = out
            .into_iter()
            .flat_map(|done| {
                alternatives.iter().map(move |more| {
                    let mut merged = done.clone();
                    for (k, v) in more {
                        assert!(
                            merged.insert(k.clone(), v.clone()).is_none(),
                            "an $or alternative sets {k}, which its object sets too: merge them by hand"
                        );
                    }
                    merged
                })
            })
            .collect();
    }
    out.into_iter().map(Value::Object).collect()
}

#[test]
fn or_is_written_out_as_one_pattern_per_alternative() {
    let pattern = json!({
        "source": ["aws.guardduty"],
        "detail": {
            "severity": [{"numeric": [">=", 4]}],
            "$or": [{"a": ["1"]}, {"b": {"$or": [{"c": ["2"]}, {"d": ["3"]}]}}]
        }
    });
    let written: Vec<Value> = without_or(&pattern);
    let severity = json!([{"numeric": [">=", 4]}]);
    assert_eq!(
        written,
        [
            json!({"source": ["aws.guardduty"], "detail": {"severity": severity, "a": ["1"]}}),
            json!({"source": ["aws.guardduty"], "detail": {"severity": severity, "b": {"c": ["2"]}}}),
            json!({"source": ["aws.guardduty"], "detail": {"severity": severity, "b": {"d": ["3"]}}}),
        ]
    );
    // quamina refuses an `$or` it is handed, rather than reading it as a field.
    let mut q = quamina::Quamina::<String>::new();
    assert!(
        q.add_pattern("or".to_owned(), &pattern.to_string())
            .is_err()
    );
    for p in &written {
        q.add_pattern("or".to_owned(), &p.to_string()).unwrap();
    }
    let event = json!({"source": "aws.guardduty", "detail": {"severity": 5, "b": {"d": "3"}}});
    assert_eq!(
        q.matches_for_event(event.to_string().as_bytes()).unwrap(),
        ["or"]
    );
}

/// GuardDuty findings the rule exists for: a principal (an access key's, an instance
/// profile's, or the actors of an Extended Threat Detection attack sequence) and a
/// numeric severity at or above the alert threshold (triage decides the rest).
fn guardduty_should_match(event: &Value) -> bool {
    let d = &event["detail"];
    let keys = &d["resource"]["accessKeyDetails"];
    event["source"] == "aws.guardduty"
        && event["detail-type"] == "GuardDuty Finding"
        && d["severity"].as_f64().is_some_and(|s| s >= 4.0)
        && (!keys["userType"].is_null()
            || !keys["principalId"].is_null()
            || !keys["accessKeyId"].is_null()
            || !d["resource"]["instanceDetails"]["iamInstanceProfile"]["arn"].is_null()
            || d["resource"]["resourceType"] == "AttackSequence")
}

fn findings(event: &Value) -> impl Iterator<Item = &Value> {
    event["detail"]["findings"].as_array().into_iter().flatten()
}

/// Imported (ASFF) findings the opt-in rule exists for: an active finding with a
/// resource triage can take a principal from. (Security Hub sends one finding per
/// event; quamina, like this, wants both in the same finding.)
fn securityhub_imported_should_match(event: &Value) -> bool {
    event["source"] == "aws.securityhub"
        && event["detail-type"] == "Security Hub Findings - Imported"
        && findings(event).any(|f| {
            f["RecordState"] == "ACTIVE"
                && f["Resources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| PRINCIPAL_RESOURCE_TYPES.iter().any(|t| r["Type"] == *t))
        })
}

/// Security Hub V2 (OCSF) findings the opt-in rule exists for: Detection Findings
/// (class 2004), GuardDuty's and other threat-detection products', whatever their
/// product and severity (triage checks the product by its uid and reads its severity).
/// Posture (2003) and vulnerability (2002) findings name no credential to revoke.
fn securityhub_v2_should_match(event: &Value) -> bool {
    event["source"] == "aws.securityhub"
        && event["detail-type"] == "Findings Imported V2"
        && findings(event).any(|f| f["class_uid"].as_f64() == Some(2004.0))
}

/// What a rule exists to deliver, for every rule of both templates.
fn should_match(rule: &str, event: &Value) -> bool {
    let resources: Vec<&str> = event["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let from = |source: &str, detail_type: &str| {
        event["source"] == source && event["detail-type"] == detail_type
    };
    // Only AWS can give an event a source starting with `aws.` (PutEvents refuses it to
    // anyone else): the CloudTrail rules take the opted-in calls of any service.
    let opted_in_call = event["detail-type"] == "AWS API Call via CloudTrail"
        && event["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("aws."))
        && CLOUDTRAIL_EVENTS
            .split(',')
            .any(|n| event["detail"]["eventName"] == n);
    match rule {
        "GuardDutyRule" => guardduty_should_match(event),
        "SecurityHubActionRule" => {
            from("aws.securityhub", "Security Hub Findings - Custom Action")
                && resources == [ACTION_ARN]
        }
        "SecurityHubImportedFindingsRule" => securityhub_imported_should_match(event),
        "SecurityHubV2FindingsRule" => securityhub_v2_should_match(event),
        "CloudTrailApiCallRule" | "ForwardCloudTrailRule" => opted_in_call,
        // The forwarder takes every GuardDuty finding and every Security Hub finding of
        // the kinds it forwards: the responder's rules filter them.
        "ForwardGuardDuty" => from("aws.guardduty", "GuardDuty Finding"),
        "ForwardSecurityHubImportedRule" => {
            from("aws.securityhub", "Security Hub Findings - Imported")
        }
        "ForwardSecurityHubV2Rule" => from("aws.securityhub", "Findings Imported V2"),
        other => panic!("no expectation for {other}"),
    }
}

/// A GuardDuty Extended Threat Detection attack sequence: resource type
/// `AttackSequence`, no `accessKeyDetails`; its principals are the sequence's actors.
fn attack_sequence(id: &str, severity: f64) -> Value {
    json!({
        "version": "0",
        "id": "5a2b8c1e-7d4f-4e0a-9b3c-2f6e8d1a4c70",
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": "111122223333",
        "time": "2026-11-20T10:02:11Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "schemaVersion": "2.0",
            "accountId": "111122223333",
            "region": "us-east-1",
            "partition": "aws",
            "id": id,
            "arn": format!("arn:aws:guardduty:us-east-1:111122223333:detector/dead56652865255eddc29a94addd98d9/finding/{id}"),
            "type": "AttackSequence:IAM/CompromisedCredentials",
            "resource": {"resourceType": "AttackSequence"},
            "service": {
                "serviceName": "guardduty",
                "detectorId": "dead56652865255eddc29a94addd98d9",
                "featureName": "Correlation",
                "detection": {
                    "sequence": {
                        "uid": id,
                        "description": "A sequence of actions involving 14 signals indicating a possible credential compromise.",
                        "actors": [{
                            "id": "3e5a1c0b",
                            "user": {
                                "name": "payments-api",
                                "uid": "AROAZSPCBG4NC2CGN4AUF:3838118999c7d9a7c620aed837ad21b8",
                                "type": "AssumedRole",
                                "credentialUid": "ASIA5Q2VZOLTLPHRTF4L",
                                "account": {"uid": "111122223333"}
                            },
                            "session": {"mfaStatus": "Disabled"}
                        }],
                        "sequenceIndicators": [{"key": "ATTACK_TACTIC", "values": ["Discovery", "Exfiltration"]}]
                    }
                },
                "archived": false,
                "count": 1,
                "eventFirstSeen": "2026-11-20T09:31:40.000Z",
                "eventLastSeen": "2026-11-20T10:01:52.000Z",
                "additionalInfo": {"type": "default", "value": "{}"}
            },
            "severity": severity,
            "createdAt": "2026-11-20T10:02:11.000Z",
            "updatedAt": "2026-11-20T10:02:11.000Z",
            "title": "Potential credential compromise of payments-api indicated by a sequence of actions.",
            "description": "A sequence of actions involving 14 signals indicating a possible credential compromise was observed."
        }
    })
}

/// A Security Hub V2 event (`Findings Imported V2`): one OCSF finding of `class_uid`
/// from the product `company/product`.
fn v2_finding(class_uid: u64, product: &str, severity_id: u64, resources: Value) -> Value {
    let uid = format!("{:064x}", u128::from(class_uid) * 0x9e37_79b9_7f4a_7c15);
    let (class_name, type_uid) = match class_uid {
        2002 => ("Vulnerability Finding", 200_201),
        2003 => ("Compliance Finding", 200_301),
        2004 => ("Detection Finding", 200_401),
        other => panic!("class {other}"),
    };
    json!({
        "version": "0",
        "id": "9f1d2c3b-4a5e-4f60-8b7a-1c2d3e4f5a6b",
        "detail-type": "Findings Imported V2",
        "source": "aws.securityhub",
        "account": "999988887777",
        "time": "2026-11-20T10:05:00Z",
        "region": "us-east-1",
        "resources": [uid],
        "detail": {"findings": [{
            "class_uid": class_uid,
            "class_name": class_name,
            "category_uid": 2,
            "type_uid": type_uid,
            "activity_id": 1,
            "metadata": {
                "uid": uid,
                "version": "1.5.0",
                "product": {
                    "uid": format!("arn:aws:securityhub:us-east-1::productv2/{product}"),
                    "name": product.rsplit('/').next().unwrap(),
                    "vendor_name": "AWS"
                }
            },
            "cloud": {"provider": "AWS", "region": "us-east-1", "account": {"uid": "111122223333"}},
            "finding_info": {"uid": "455aa647b26d9310341733d58b9b7442", "title": "Anomalous API invoked by payments-api"},
            "resources": resources,
            "severity_id": severity_id,
            "status_id": 1,
            "status": "New",
            "vendor_attributes": {"severity_id": severity_id},
            "time": 1_795_168_000_000u64
        }]}
    })
}

fn access_key_resource() -> Value {
    json!([{
        "type": "AWS::IAM::AccessKey",
        "uid": "ASIA5Q2VZOLTLPHRTF4L",
        "data": {
            "access_key_id": "ASIA5Q2VZOLTLPHRTF4L",
            "principal_id": "AROAZSPCBG4NC2CGN4AUF:3838118999c7d9a7c620aed837ad21b8",
            "user_name": "payments-api",
            "user_type": "AssumedRole"
        }
    }])
}

/// Events of the inputs issue [12] added, written here so that the rules are checked
/// whatever the fixture corpus holds.
fn samples() -> Vec<(String, Value)> {
    let bucket = json!([{"type": "AWS::S3::Bucket", "uid": "arn:aws:s3:::payments-exports"}]);
    vec![
        (
            "sample: GuardDuty attack sequence, severity 9".to_owned(),
            attack_sequence("e4c9a6b1d2f3405e8a7b6c5d4e3f2a10", 9.0),
        ),
        (
            "sample: GuardDuty attack sequence, severity 3.9".to_owned(),
            attack_sequence("e4c9a6b1d2f3405e8a7b6c5d4e3f2a11", 3.9),
        ),
        (
            "sample: V2 detection finding of GuardDuty, an access key".to_owned(),
            v2_finding(2004, "aws/guardduty", 4, access_key_resource()),
        ),
        (
            "sample: V2 detection finding of GuardDuty, low severity".to_owned(),
            v2_finding(2004, "aws/guardduty", 1, access_key_resource()),
        ),
        (
            "sample: V2 detection finding of another product".to_owned(),
            v2_finding(2004, "acme-corp/threat-watch", 5, access_key_resource()),
        ),
        (
            "sample: V2 compliance (posture) finding".to_owned(),
            v2_finding(2003, "aws/securityhub", 4, bucket.clone()),
        ),
        (
            "sample: V2 vulnerability finding".to_owned(),
            v2_finding(2002, "aws/inspector", 5, bucket),
        ),
    ]
}

/// Sources nobody but AWS could give an event, forged: a variant of each event of these
/// detail-types is sent from them too.
const FORGED: [(&str, &str); 3] = [
    ("AWS API Call via CloudTrail", "cutoff.forged"),
    ("Findings Imported V2", "acme.securityhub"),
    ("GuardDuty Finding", "acme.guardduty"),
];

#[tokio::test]
async fn the_rules_deliver_the_fixtures_they_exist_for_and_no_others() {
    let forwarder = template("forwarder.yaml");
    let template = template("template.yaml");

    // Every rule of both templates is here (bar the outcome bus's): a new one is tested
    // or this fails.
    let on_default_bus = |t: &Value| -> BTreeSet<String> {
        t["Resources"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, r)| {
                r["Type"] == "AWS::Events::Rule" && r["Properties"]["EventBusName"] == "default"
            })
            .map(|(id, _)| id.clone())
            .collect()
    };
    let listed =
        |rules: &[&str]| -> BTreeSet<String> { rules.iter().map(|r| (*r).to_owned()).collect() };
    assert_eq!(
        on_default_bus(&template),
        listed(&[RESPONDER_RULES.as_slice(), FINDINGS_RULES.as_slice()].concat())
    );
    assert_eq!(on_default_bus(&forwarder), listed(&FORWARD_RULES));

    let pattern_of = |rule: &str| -> Value {
        let from = if FORWARD_RULES.contains(&rule) {
            &forwarder
        } else {
            &template
        };
        let pattern = resolve(
            &from["Resources"][rule]["Properties"]["EventPattern"],
            &from["Parameters"],
        );
        assert!(pattern.is_object(), "{rule}: {pattern}");
        pattern
    };
    // moto runs every rule but those that match into arrays of objects.
    let moto_rules: Vec<&str> = RESPONDER_RULES.into_iter().chain(FORWARD_RULES).collect();
    // quamina runs every rule.
    let all_rules: Vec<&str> = moto_rules.iter().copied().chain(FINDINGS_RULES).collect();

    let mut quamina = quamina::Quamina::<String>::new();
    for &rule in &all_rules {
        let pattern = pattern_of(rule);
        let alternatives = without_or(&pattern);
        assert_eq!(
            alternatives.len() > 1,
            pattern.to_string().contains("\"$or\""),
            "{rule}"
        );
        for p in alternatives {
            quamina
                .add_pattern(rule.to_owned(), &p.to_string())
                .unwrap_or_else(|e| panic!("quamina refuses {rule}: {e:?}: {p}"));
        }
    }

    let moto = MotoServer::shared();
    let config = sdk_config(moto.endpoint()).await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bus = "pattern-test";
    events.create_event_bus().name(bus).send().await.unwrap();
    let mut queues = BTreeMap::new();
    for &rule in &moto_rules {
        let url = sqs
            .create_queue()
            .queue_name(format!("rule-{rule}"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        events
            .put_rule()
            .name(rule)
            .event_bus_name(bus)
            .event_pattern(pattern_of(rule).to_string())
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .rule(rule)
            .event_bus_name(bus)
            .targets(
                Target::builder()
                    .id("q")
                    .arn(format!("arn:aws:sqs:{REGION}:{ACCOUNT}:rule-{rule}"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        queues.insert(rule, url);
    }

    // Every fixture that is an EventBridge event, and the samples; custom actions once
    // with the template's action and once with another team's action; CloudTrail events
    // also with a source nobody but AWS could give them (`aws.iam`) and with forged ones,
    // and the new inputs (attack sequences, V2 findings) with forged sources too:
    // PutEvents refuses a source starting with `aws.` to anyone else, so only the source
    // proves the event came from AWS (moto does not refuse it, which lets the test send
    // both).
    let mut inputs: Vec<(String, Value)> = Vec::new();
    for file in read_expected().keys() {
        let event: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture_dir().join("events").join(file)).unwrap(),
        )
        .unwrap();
        inputs.push((file.clone(), event));
    }
    inputs.extend(samples());
    let mut sent: BTreeMap<String, (String, Value)> = BTreeMap::new();
    let mut expected: BTreeMap<&str, BTreeSet<String>> =
        all_rules.iter().map(|r| (*r, BTreeSet::new())).collect();
    let mut by_quamina: BTreeMap<&str, BTreeSet<String>> =
        all_rules.iter().map(|r| (*r, BTreeSet::new())).collect();
    for (file, event) in inputs {
        if !event["detail"].is_object()
            || !event["source"].is_string()
            || !event["detail-type"].is_string()
        {
            continue;
        }
        let mut variants = vec![(file.clone(), event.clone())];
        if event["detail-type"] == "Security Hub Findings - Custom Action" {
            variants[0].1["resources"] = json!([ACTION_ARN]);
            let mut other = event.clone();
            other["resources"] = json!([OTHER_ACTION_ARN]);
            variants.push((format!("{file} (another action)"), other));
        }
        let mut sources: Vec<&str> = Vec::new();
        if event["detail-type"] == "AWS API Call via CloudTrail" {
            sources.extend(["aws.iam", "awsfake.cloudtrail", "aws"]);
        }
        sources.extend(
            FORGED
                .iter()
                .filter(|(detail_type, _)| event["detail-type"] == *detail_type)
                .map(|(_, source)| *source),
        );
        for source in sources {
            let mut other = event.clone();
            other["source"] = json!(source);
            variants.push((format!("{file} (source {source})"), other));
        }
        for (label, event) in variants {
            let resources: Vec<String> = event["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect();
            let entry = PutEventsRequestEntry::builder()
                .source(event["source"].as_str().unwrap())
                .detail_type(event["detail-type"].as_str().unwrap())
                .detail(event["detail"].to_string())
                .set_resources(Some(resources.clone()))
                .event_bus_name(bus)
                .build();
            let out = events.put_events().entries(entry).send().await.unwrap();
            assert_eq!(out.failed_entry_count, 0, "{label}");
            let id = out.entries.unwrap()[0].event_id.clone().unwrap();
            // The same event as EventBridge hands it to the rules: its envelope, with
            // what was put.
            let envelope = json!({
                "version": "0",
                "id": id,
                "detail-type": event["detail-type"],
                "source": event["source"],
                "account": ACCOUNT,
                "time": "2026-11-20T10:05:00Z",
                "region": REGION,
                "resources": resources,
                "detail": event["detail"],
            });
            let matched: BTreeSet<String> = quamina
                .matches_for_event(envelope.to_string().as_bytes())
                .unwrap_or_else(|e| panic!("{label}: quamina: {e:?}"))
                .into_iter()
                .collect();
            for &rule in &all_rules {
                if should_match(rule, &event) {
                    expected.get_mut(rule).unwrap().insert(label.clone());
                }
                if matched.contains(rule) {
                    by_quamina.get_mut(rule).unwrap().insert(label.clone());
                }
            }
            sent.insert(id, (label, event));
        }
    }

    let mut by_moto: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (rule, url) in &queues {
        let got = by_moto.entry(*rule).or_default();
        loop {
            let out = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let body: Value = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
                let (label, _) = &sent[body["id"].as_str().unwrap()];
                got.insert(label.clone());
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle.unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    let mut failures = Vec::new();
    for &rule in &all_rules {
        let want = &expected[rule];
        if want.is_empty() {
            failures.push(format!(
                "{rule}: no event should match: the test is vacuous"
            ));
        }
        let mut matchers = vec![("quamina", &by_quamina[rule])];
        if let Some(got) = by_moto.get(rule) {
            matchers.push(("moto", got));
        }
        for (matcher, got) in matchers {
            let missed: Vec<&String> = want.difference(got).collect();
            let extra: Vec<&String> = got.difference(want).collect();
            if !missed.is_empty() || !extra.is_empty() {
                failures.push(format!(
                    "{rule} ({matcher}): does not deliver {missed:?}; delivers {extra:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // Both matchers ran every rule but the two of `detail.findings`.
    assert_eq!(by_moto.len(), moto_rules.len());
    let delivered = expected;

    // No rule takes an event with a forged source; an AWS source of any service is the
    // CloudTrail rule's.
    for (rule, labels) in &delivered {
        for forged in ["cutoff.forged", "awsfake.cloudtrail", "aws"]
            .into_iter()
            .chain(FORGED.map(|(_, source)| source))
        {
            assert!(
                !labels
                    .iter()
                    .any(|label| label.ends_with(&format!("(source {forged})"))),
                "an event with source {forged} reached {rule}: {labels:?}"
            );
        }
    }
    let cloudtrail = &delivered["CloudTrailApiCallRule"];
    assert!(
        cloudtrail
            .iter()
            .any(|label| label.ends_with("(source aws.iam)")),
        "{cloudtrail:?}"
    );
    // Each new input reaches intake; a V2 finding only when it is a detection finding.
    for (rule, label, reaches) in [
        (
            "GuardDutyRule",
            "sample: GuardDuty attack sequence, severity 9",
            true,
        ),
        (
            "GuardDutyRule",
            "sample: GuardDuty attack sequence, severity 3.9",
            false,
        ),
        (
            "SecurityHubV2FindingsRule",
            "sample: V2 detection finding of GuardDuty, an access key",
            true,
        ),
        (
            "SecurityHubV2FindingsRule",
            "sample: V2 detection finding of GuardDuty, low severity",
            true,
        ),
        (
            "SecurityHubV2FindingsRule",
            "sample: V2 detection finding of another product",
            true,
        ),
        (
            "SecurityHubV2FindingsRule",
            "sample: V2 compliance (posture) finding",
            false,
        ),
        (
            "SecurityHubV2FindingsRule",
            "sample: V2 vulnerability finding",
            false,
        ),
    ] {
        assert_eq!(delivered[rule].contains(label), reaches, "{rule}: {label}");
    }

    // Forwarding never drops what the responder's rule would take, however far from
    // the responder's region the finding was raised.
    for (home, forward) in [
        ("GuardDutyRule", "ForwardGuardDuty"),
        (
            "SecurityHubImportedFindingsRule",
            "ForwardSecurityHubImportedRule",
        ),
        ("SecurityHubV2FindingsRule", "ForwardSecurityHubV2Rule"),
        ("CloudTrailApiCallRule", "ForwardCloudTrailRule"),
    ] {
        let dropped: Vec<_> = delivered[home].difference(&delivered[forward]).collect();
        assert!(dropped.is_empty(), "{forward} drops {dropped:?}");
    }

    // Every fixture triage revokes or alerts on reaches intake, through the rule of its
    // source (a custom action with the template's action).
    let responder: BTreeSet<&String> = RESPONDER_RULES
        .into_iter()
        .chain(FINDINGS_RULES)
        .flat_map(|rule| &delivered[rule])
        .collect();
    for (file, case) in read_expected() {
        let acts = case["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["decision"] != "ignore");
        // Manual requests come through the revoker's operator path, not EventBridge.
        if acts && case["source"] != "manual" {
            assert!(responder.contains(&file), "{file} would never reach intake");
        }
    }
}
