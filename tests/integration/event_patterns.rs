//! The EventBridge rules of infra/template.yaml, loaded into the local stand-in's
//! EventBridge, with every fixture sent through them: each rule must deliver the
//! fixtures it exists for and nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
use cutoff_tests::aws::{ACCOUNT, REGION, sdk_config};
use cutoff_tests::moto::MotoServer;
use cutoff_tests::{fixture_dir, read_expected};
use serde_json::Value;

const ACTION_ARN: &str = "arn:aws:securityhub:us-east-1:123456789012:action/custom/cutoffrevoke";
const OTHER_ACTION_ARN: &str =
    "arn:aws:securityhub:us-east-1:123456789012:action/custom/open-ticket";
const CLOUDTRAIL_EVENTS: &str = "StopLogging,DeleteTrail";

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

/// GuardDuty findings the rule exists for: a principal and a numeric severity at or
/// above the alert threshold (triage decides the rest).
fn guardduty_should_match(event: &Value) -> bool {
    let d = &event["detail"];
    let keys = &d["resource"]["accessKeyDetails"];
    event["source"] == "aws.guardduty"
        && event["detail-type"] == "GuardDuty Finding"
        && d["severity"].as_f64().is_some_and(|s| s >= 4.0)
        && (!keys["userType"].is_null()
            || !keys["principalId"].is_null()
            || !keys["accessKeyId"].is_null()
            || !d["resource"]["instanceDetails"]["iamInstanceProfile"]["arn"].is_null())
}

/// The rules of infra/forwarder.yaml, which send other regions' events to the
/// responder's region unchanged.
const FORWARD_RULES: [&str; 3] = [
    "ForwardGuardDuty",
    "ForwardSecurityHubImportedRule",
    "ForwardCloudTrailRule",
];

#[tokio::test]
async fn the_rules_deliver_the_fixtures_they_exist_for_and_no_others() {
    let forwarder = template("forwarder.yaml");
    let template = template("template.yaml");

    let moto = MotoServer::shared();
    let config = sdk_config(moto.endpoint()).await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bus = "pattern-test";
    events.create_event_bus().name(bus).send().await.unwrap();

    // moto does not match into arrays of objects (`detail.findings.*`), which the
    // imported-findings rule needs; that rule is checked by cfn-lint only.
    let responder_rules = [
        "GuardDutyRule",
        "SecurityHubActionRule",
        "CloudTrailApiCallRule",
    ];
    let rules: Vec<&str> = responder_rules.into_iter().chain(FORWARD_RULES).collect();
    let mut queues = BTreeMap::new();
    for &rule in &rules {
        let from = if FORWARD_RULES.contains(&rule) {
            &forwarder
        } else {
            &template
        };
        let pattern = resolve(
            &from["Resources"][rule]["Properties"]["EventPattern"],
            &from["Parameters"],
        );
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
            .event_pattern(pattern.to_string())
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

    // Send every fixture that is an EventBridge event; custom actions once with the
    // template's action and once with another team's action; CloudTrail events also with
    // sources nobody but AWS could give them (`aws.iam`) and with forged ones: PutEvents
    // refuses a source starting with `aws.` to anyone else, so only the source proves the
    // event came from CloudTrail (moto does not refuse it, which lets the test send both).
    let mut sent: BTreeMap<String, (String, Value)> = BTreeMap::new();
    let mut expected: BTreeMap<&str, BTreeSet<String>> =
        rules.iter().map(|r| (*r, BTreeSet::new())).collect();
    for file in read_expected().keys() {
        let event: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture_dir().join("events").join(file)).unwrap(),
        )
        .unwrap();
        if !event["detail"].is_object()
            || !event["source"].is_string()
            || !event["detail-type"].is_string()
        {
            continue;
        }
        let mut variants = vec![(file.clone(), event.clone())];
        if event["detail-type"] == "Security Hub Findings - Custom Action" {
            variants[0].1["resources"] = serde_json::json!([ACTION_ARN]);
            let mut other = event.clone();
            other["resources"] = serde_json::json!([OTHER_ACTION_ARN]);
            variants.push((format!("{file} (another action)"), other));
        }
        if event["detail-type"] == "AWS API Call via CloudTrail" {
            for source in ["aws.iam", "cutoff.forged", "awsfake.cloudtrail", "aws"] {
                let mut other = event.clone();
                other["source"] = serde_json::json!(source);
                variants.push((format!("{file} (source {source})"), other));
            }
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
            if guardduty_should_match(&event) {
                expected
                    .get_mut("GuardDutyRule")
                    .unwrap()
                    .insert(label.clone());
            }
            // The forwarder takes every GuardDuty finding and every imported Security
            // Hub finding: the responder's rules filter them.
            for (rule, source, detail_type) in [
                ("ForwardGuardDuty", "aws.guardduty", "GuardDuty Finding"),
                (
                    "ForwardSecurityHubImportedRule",
                    "aws.securityhub",
                    "Security Hub Findings - Imported",
                ),
            ] {
                if event["source"] == source && event["detail-type"] == detail_type {
                    expected.get_mut(rule).unwrap().insert(label.clone());
                }
            }
            if event["detail-type"] == "Security Hub Findings - Custom Action"
                && resources == [ACTION_ARN]
            {
                expected
                    .get_mut("SecurityHubActionRule")
                    .unwrap()
                    .insert(label.clone());
            }
            if event["detail-type"] == "AWS API Call via CloudTrail"
                && event["source"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("aws."))
                && CLOUDTRAIL_EVENTS
                    .split(',')
                    .any(|n| event["detail"]["eventName"] == n)
            {
                for rule in ["CloudTrailApiCallRule", "ForwardCloudTrailRule"] {
                    expected.get_mut(rule).unwrap().insert(label.clone());
                }
            }
            sent.insert(id, (label, event));
        }
    }

    let mut delivered: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (rule, url) in &queues {
        let got = delivered.entry(rule).or_default();
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
    for &rule in &rules {
        assert_eq!(delivered[rule], expected[rule], "{rule}");
        assert!(
            !expected[rule].is_empty(),
            "{rule}: some fixture should match"
        );
    }
    // The CloudTrail rule takes the opted-in calls from AWS, whatever the service, and
    // none with a forged source.
    let cloudtrail = &delivered["CloudTrailApiCallRule"];
    assert!(
        cloudtrail
            .iter()
            .any(|label| label.ends_with("(source aws.iam)")),
        "{cloudtrail:?}"
    );
    for forged in ["cutoff.forged", "awsfake.cloudtrail", "aws"] {
        assert!(
            !cloudtrail
                .iter()
                .any(|label| label.ends_with(&format!("(source {forged})"))),
            "a CloudTrail event with source {forged} reached intake: {cloudtrail:?}"
        );
    }

    // Forwarding never drops what the responder's rule would take, however far from
    // the responder's region the finding was raised.
    for (home, forward) in [
        ("GuardDutyRule", "ForwardGuardDuty"),
        ("CloudTrailApiCallRule", "ForwardCloudTrailRule"),
    ] {
        let dropped: Vec<_> = delivered[home].difference(&delivered[forward]).collect();
        assert!(dropped.is_empty(), "{forward} drops {dropped:?}");
    }

    // Every GuardDuty fixture that triage revokes or alerts on reaches intake.
    for (file, case) in read_expected() {
        let acts = case["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["decision"] != "ignore");
        if case["source"] == "guardduty" && acts {
            assert!(
                delivered["GuardDutyRule"].contains(&file),
                "{file} would never reach intake"
            );
        }
    }
}
