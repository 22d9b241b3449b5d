//! What the responder tells its operators (issue [13]): every alarm says when it fires
//! and when it is over, and may reach the security topic; every function logs JSON at
//! the level its code reads; every resource that takes tags has the stack's; the
//! dashboard and the metric alarms name only metrics the code writes
//! (`cutoff_domain::metrics::CATALOG`), and the dashboard shows each of them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde_json::{Value, json};

use cutoff_domain::metrics::{CATALOG, Function, MetricDef, find};
use cutoff_domain::outcome::Status;
use cutoff_tests::workspace_root;

use super::resolve::{Stack, scalar_text};
use super::trust::responder;

fn raw() -> &'static Value {
    static T: OnceLock<Value> = OnceLock::new();
    T.get_or_init(|| super::template("template.yaml"))
}

/// The default deployment, resolved.
fn stack() -> &'static Stack {
    static S: OnceLock<Stack> = OnceLock::new();
    S.get_or_init(|| responder(&[]))
}

fn resources_of(template: &Value, kind: &str) -> Vec<(String, Value)> {
    template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(id, r)| (id.clone(), r.clone()))
        .collect()
}

#[test]
fn every_alarm_tells_the_security_topic_when_it_fires_and_when_it_is_over() {
    let alarms = resources_of(raw(), "AWS::CloudWatch::Alarm");
    assert!(alarms.len() >= 15, "{}", alarms.len());
    // Without a pager the security topic; with one, the pager topic too: an alarm has
    // no message attribute, so the pager's incident-only subscription on the security
    // topic (a filter policy) can never let it through.
    let paged = responder(&[
        (
            "PagerEndpoint",
            "https://events.pagerduty.com/integration/x/enqueue",
        ),
        ("PagerProtocol", "https"),
    ]);
    // The alarms that page (docs/runbook.md, "When to page"); the others wait for
    // working hours and tell the security topic only.
    let paging = BTreeSet::from([
        "RevocationsPartialAlarm",
        "RevocationsFailedAlarm",
        "RequestDeadLetterAlarm",
        "RequestAgeAlarm",
        "HeartbeatAlarm",
        "IntakeErrorsAlarm",
        "RevokerErrorsAlarm",
        "FailureQueueAlarm",
    ]);
    let topic = |stack: &Stack, id: &str| stack.resolve(&json!({ "Ref": id }));
    for (id, _) in &alarms {
        let quiet = stack().properties(id);
        assert_eq!(
            quiet["AlarmActions"],
            json!([topic(stack(), "SecurityTopic")]),
            "{id}"
        );
        let loud = paged.properties(id);
        let expected = if paging.contains(id.as_str()) {
            json!([topic(&paged, "SecurityTopic"), topic(&paged, "PagerTopic")])
        } else {
            json!([topic(&paged, "SecurityTopic")])
        };
        assert_eq!(loud["AlarmActions"], expected, "{id}");
        for properties in [quiet, loud] {
            assert_eq!(
                properties["OKActions"], properties["AlarmActions"],
                "{id}: an alarm that fires must also say when it is over"
            );
        }
    }
    for id in &paging {
        assert!(alarms.iter().any(|(a, _)| a == id), "{id} is no alarm");
    }
    // The pager topic: only the alarms publish, its one subscriber is the pager's
    // endpoint, unfiltered.
    let pager_subscription = paged.properties("PagerAlarmSubscription");
    assert_eq!(
        pager_subscription["TopicArn"],
        paged.resolve(&json!({"Ref": "PagerTopic"}))
    );
    assert!(pager_subscription["FilterPolicy"].is_null());
    let policy = paged.properties("SecurityTopicPolicy");
    assert_eq!(
        policy["Topics"],
        json!([
            paged.resolve(&json!({"Ref": "SecurityTopic"})),
            paged.resolve(&json!({"Ref": "PagerTopic"}))
        ])
    );
    // Every statement of that policy covers both topics: the alarms may publish to the
    // pager topic, and nobody else may.
    for statement in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
        assert_eq!(
            statement["Resource"], policy["Topics"],
            "{}",
            statement["Sid"]
        );
    }
    assert!(!stack().exists("PagerTopic") && !stack().exists("PagerAlarmSubscription"));
}

#[test]
fn every_alarm_of_the_stack_may_publish_to_the_security_topic() {
    // The topic policy admits this stack's alarms by their exact ARNs: an alarm missing
    // from the list would fire into a refusal, and nobody would hear.
    let stack = stack();
    let policy = &stack.properties("SecurityTopicPolicy")["PolicyDocument"]["Statement"];
    let admitted: BTreeSet<String> = policy
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "CloudWatchAlarmsOfThisAccount")
        .expect("the alarms' statement")["Condition"]["ArnEquals"]["aws:SourceArn"]
        .as_array()
        .unwrap()
        .iter()
        .map(scalar_text)
        .collect();
    let alarms: BTreeSet<String> = stack
        .resources_of_type("AWS::CloudWatch::Alarm")
        .iter()
        .map(|id| stack.attribute(id, "Arn"))
        .collect();
    assert_eq!(admitted, alarms);
    // And the dashboard's alarm widget shows each of them.
    let shown: BTreeSet<String> = dashboard()["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| w["properties"]["alarms"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(shown, alarms);
}

#[test]
fn every_function_logs_json_at_the_level_its_code_reads() {
    let parameters = &raw()["Parameters"];
    // INFO carries the outcomes and the metrics: a level above it would drop both.
    assert_eq!(parameters["LogLevel"]["Default"], "INFO");
    let allowed: Vec<&str> = parameters["LogLevel"]["AllowedValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(allowed, ["DEBUG", "INFO"]);
    for level in allowed {
        // The code takes Lambda's level as its own filter, never above info.
        let filter = cutoff::telemetry::log_filter(Some(level), Some("error"));
        assert_eq!(filter, level.to_lowercase(), "{level}");
    }
    let functions = resources_of(raw(), "AWS::Serverless::Function");
    assert_eq!(functions.len(), 4);
    for (id, function) in &functions {
        let properties = &function["Properties"];
        let logging = &properties["LoggingConfig"];
        assert_eq!(logging["LogFormat"], "JSON", "{id}");
        assert_eq!(
            logging["ApplicationLogLevel"],
            json!({"Ref": "LogLevel"}),
            "{id}"
        );
        assert_eq!(
            logging["SystemLogLevel"],
            json!({"Ref": "SystemLogLevel"}),
            "{id}"
        );
        assert!(logging["LogGroup"]["Ref"].is_string(), "{id}");
        // Each stack's metrics in a namespace of its own.
        assert_eq!(
            properties["Environment"]["Variables"][cutoff::config::metrics_env::NAMESPACE],
            json!({"Ref": "NamePrefix"}),
            "{id}"
        );
    }
}

/// The CloudFormation resource schemas cfn-lint ships (in `.venv/`, which `make tools`
/// installs): whether a type takes tags is theirs to say, not a list kept here.
fn taggable(kind: &str) -> bool {
    static SCHEMAS: OnceLock<std::path::PathBuf> = OnceLock::new();
    let dir = SCHEMAS.get_or_init(|| {
        let lib = workspace_root().join(".venv/lib");
        std::fs::read_dir(&lib)
            .unwrap_or_else(|e| panic!("{}: {e} (make tools)", lib.display()))
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("site-packages/cfnlint/data/schemas"))
            .find(|p| p.is_dir())
            .expect("cfn-lint's schemas in .venv (make tools)")
    });
    static PROVIDERS: OnceLock<Value> = OnceLock::new();
    let providers = PROVIDERS.get_or_init(|| {
        let text = std::fs::read_to_string(dir.join("providers/us-east-1.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    });
    // SAM's function is a Lambda function once transformed.
    let kind = match kind {
        "AWS::Serverless::Function" => "AWS::Lambda::Function",
        other => other,
    };
    let hash = providers[kind]
        .as_str()
        .unwrap_or_else(|| panic!("cfn-lint knows no {kind}"));
    let text = std::fs::read_to_string(dir.join(format!("resources/{hash}.json"))).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    schema["tagging"]["taggable"] == true && schema["properties"]["Tags"].is_object()
}

#[test]
fn every_resource_that_takes_tags_has_the_stacks() {
    let mut tagged = BTreeMap::new();
    let mut untaggable = BTreeSet::new();
    for (id, resource) in raw()["Resources"].as_object().unwrap() {
        let kind = resource["Type"].as_str().unwrap();
        let tags = &resource["Properties"]["Tags"];
        if !taggable(kind) {
            assert!(tags.is_null(), "{id}: {kind} takes no tags");
            untaggable.insert(kind.to_owned());
            continue;
        }
        // A list of Key/Value pairs, or SAM's map for a function.
        let pairs: BTreeMap<String, Value> = match tags {
            Value::Array(list) => list
                .iter()
                .map(|t| (t["Key"].as_str().unwrap().to_owned(), t["Value"].clone()))
                .collect(),
            Value::Object(map) => map.clone().into_iter().collect(),
            _ => panic!("{id} ({kind}) has no tags"),
        };
        assert_eq!(
            pairs.get("cutoff:stack"),
            Some(&json!({"Ref": "NamePrefix"})),
            "{id}"
        );
        let component = pairs
            .get("cutoff:component")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{id} names no component"));
        if kind == "AWS::Serverless::Function" {
            // What SAM makes for it is tagged too; SAM's `Events` would make event
            // source mappings it does not tag, so the mappings are resources here.
            assert_eq!(resource["Properties"]["PropagateTags"], true, "{id}");
            assert!(resource["Properties"]["Events"].is_null(), "{id}");
        }
        tagged.insert(id.clone(), component.to_owned());
    }
    // The check is only as good as the schemas: these take tags, these do not.
    for kind in [
        "AWS::SQS::Queue",
        "AWS::IAM::Role",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::Serverless::Function",
    ] {
        assert!(taggable(kind), "{kind}");
    }
    for kind in ["AWS::Lambda::Permission", "AWS::SQS::QueuePolicy"] {
        assert!(untaggable.contains(kind), "{kind}");
    }
    assert_eq!(
        tagged.get("RevokerFunction").map(String::as_str),
        Some("revoker")
    );
    assert_eq!(
        tagged.get("Dashboard").map(String::as_str),
        Some("monitoring")
    );
    assert_eq!(
        tagged.get("RevokerFunctionRequests").map(String::as_str),
        Some("revoker")
    );
}

/// The dashboard's body, resolved for the default deployment and parsed.
fn dashboard() -> &'static Value {
    static D: OnceLock<Value> = OnceLock::new();
    D.get_or_init(|| {
        let body = stack().properties("Dashboard")["DashboardBody"].clone();
        let text = body.as_str().expect("the body is a string");
        serde_json::from_str(text).unwrap_or_else(|e| panic!("the dashboard is no JSON: {e}"))
    })
}

/// A metric of the stack's namespace as the dashboard or an alarm names it: its name,
/// the dimensions named (in order) and their values where given.
#[derive(Debug)]
struct Named {
    name: String,
    dimensions: Vec<String>,
    values: BTreeMap<String, String>,
}

/// The metrics of the stack's namespace in one of a widget's `metrics` rows: an explicit
/// metric (`[namespace, name, dimension, value, …, {options}]`) or a search expression
/// (`SEARCH('{namespace,dimension,…} MetricName="name" dimension="value"', …)`).
fn named_in(row: &Value, namespace: &str) -> Option<Named> {
    let items = row.as_array().unwrap();
    if let Some(expression) = items.first().and_then(|i| i["expression"].as_str()) {
        let schema = expression
            .split_once("SEARCH('{")
            .and_then(|(_, rest)| rest.split_once('}'))
            .unwrap_or_else(|| panic!("not a search of a schema: {expression}"));
        let mut parts = schema.0.split(',');
        if parts.next() != Some(namespace) {
            return None;
        }
        let dimensions: Vec<String> = parts.map(str::to_owned).collect();
        let mut values = BTreeMap::new();
        for term in schema.1.split(' ').filter(|t| t.contains("=\"")) {
            let (key, value) = term.split_once("=\"").unwrap();
            let value = value.split('"').next().unwrap().to_owned();
            values.insert(key.to_owned(), value);
        }
        let name = values
            .remove("MetricName")
            .expect("a search names its metric");
        return Some(Named {
            name,
            dimensions,
            values,
        });
    }
    let strings: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
    if strings.first() != Some(&namespace) {
        return None;
    }
    let pairs: Vec<(String, String)> = strings[2..]
        .chunks(2)
        .map(|p| (p[0].to_owned(), p[1].to_owned()))
        .collect();
    Some(Named {
        name: strings[1].to_owned(),
        dimensions: pairs.iter().map(|(k, _)| k.clone()).collect(),
        values: pairs.into_iter().collect(),
    })
}

/// A metric named by the template is one the code writes, under dimensions it writes
/// it with, for a function that writes it, and a status that exists.
fn check_named(named: &Named, whose: &str) -> &'static MetricDef {
    let def = find(&named.name)
        .unwrap_or_else(|| panic!("{whose}: the code writes no metric {}", named.name));
    assert!(
        def.dimensions.iter().any(|set| set
            .iter()
            .copied()
            .eq(named.dimensions.iter().map(String::as_str))),
        "{whose}: {} is not written with dimensions {:?}",
        def.name,
        named.dimensions
    );
    if let Some(function) = named.values.get("Function") {
        assert!(
            def.functions.iter().any(|f| f.as_str() == function),
            "{whose}: {function} writes no {}",
            def.name
        );
    }
    if let Some(status) = named.values.get("Status") {
        serde_json::from_value::<Status>(json!(status))
            .unwrap_or_else(|_| panic!("{whose}: no status {status}"));
    }
    def
}

#[test]
fn the_dashboard_shows_every_metric_the_code_writes_and_no_other() {
    let namespace = scalar_text(&stack().resolve(&json!({"Ref": "NamePrefix"})));
    assert_eq!(namespace, "cutoff");
    let mut shown = BTreeSet::new();
    let mut aws = BTreeSet::new();
    for widget in dashboard()["widgets"].as_array().unwrap() {
        if widget["type"] != "metric" {
            continue;
        }
        let title = widget["properties"]["title"].as_str().unwrap();
        assert_eq!(widget["properties"]["region"], "us-east-1", "{title}");
        for row in widget["properties"]["metrics"].as_array().unwrap() {
            match named_in(row, &namespace) {
                Some(named) => {
                    shown.insert(check_named(&named, title).name);
                }
                None => {
                    let service = row[0].as_str().unwrap_or_default();
                    assert!(service.starts_with("AWS/"), "{title}: {row}");
                    aws.insert(service.to_owned());
                }
            }
        }
    }
    let written: BTreeSet<&str> = CATALOG.iter().map(|m| m.name).collect();
    assert_eq!(
        shown, written,
        "every metric the code writes, on the dashboard"
    );
    assert_eq!(aws, BTreeSet::from(["AWS/Lambda".into(), "AWS/SQS".into()]));
}

#[test]
fn the_metric_alarms_watch_metrics_the_code_writes() {
    let stack = stack();
    let namespace = scalar_text(&stack.resolve(&json!({"Ref": "NamePrefix"})));
    let mut watched = BTreeMap::new();
    for id in stack.resources_of_type("AWS::CloudWatch::Alarm") {
        let alarm = stack.properties(&id);
        if scalar_text(&alarm["Namespace"]) != namespace {
            assert!(scalar_text(&alarm["Namespace"]).starts_with("AWS/"), "{id}");
            continue;
        }
        let dimensions = alarm["Dimensions"].as_array().unwrap();
        let named = Named {
            name: scalar_text(&alarm["MetricName"]),
            dimensions: dimensions.iter().map(|d| scalar_text(&d["Name"])).collect(),
            values: dimensions
                .iter()
                .map(|d| (scalar_text(&d["Name"]), scalar_text(&d["Value"])))
                .collect(),
        };
        let def = check_named(&named, &id);
        watched.insert(id.clone(), (def.name, named.values, alarm));
    }
    let status = |id: &str| watched[id].1.get("Status").cloned();
    assert_eq!(status("RevocationsFailedAlarm").as_deref(), Some("failed"));
    assert_eq!(
        status("RevocationsPartialAlarm").as_deref(),
        Some("partial")
    );
    assert_eq!(watched["SweepFailuresAlarm"].0, "SweepErrors");
    // An approval asked, refused or expired is no failure: no alarm pages on one.
    for (id, (_, values, _)) in &watched {
        let status = values.get("Status").map(String::as_str);
        assert!(
            !matches!(
                status,
                Some("awaiting_approval" | "approval_refused" | "approval_expired")
            ),
            "{id} alarms on {status:?}"
        );
    }
    // The heartbeat's absence is the failure; every other metric is written only when
    // there is something to count.
    let heartbeat = &watched["HeartbeatAlarm"];
    assert_eq!(heartbeat.0, "Heartbeat");
    assert_eq!(heartbeat.1["Function"], Function::Sweeper.as_str());
    assert_eq!(heartbeat.2["TreatMissingData"], "breaching");
    assert_eq!(heartbeat.2["ComparisonOperator"], "LessThanThreshold");
    for (id, (_, _, alarm)) in &watched {
        if id != "HeartbeatAlarm" {
            assert_eq!(alarm["TreatMissingData"], "notBreaching", "{id}");
        }
    }
    // Its window is HeartbeatHours of hourly periods, within CloudWatch's seven days.
    let hours = responder(&[("HeartbeatHours", "5")]).properties("HeartbeatAlarm");
    assert_eq!(scalar_text(&hours["EvaluationPeriods"]), "5");
    assert_eq!(scalar_text(&hours["DatapointsToAlarm"]), "5");
    assert_eq!(hours["Period"], 3600);
    assert_eq!(raw()["Parameters"]["HeartbeatHours"]["MaxValue"], 168);
}

/// The templates deployed beside the stack (StackSets, the break-glass access, the
/// Identity Center role) tag what they create too: whose it is in every account.
#[test]
fn the_other_templates_tag_what_they_create() {
    for (file, component, prefix) in [
        (
            "member-role.yaml",
            "member-role",
            Some("ResponderNamePrefix"),
        ),
        ("forwarder.yaml", "forwarder", Some("NamePrefix")),
        ("break-glass.yaml", "break-glass", None),
        (
            "identity-center-role.yaml",
            "identity-center",
            Some("ResponderNamePrefix"),
        ),
    ] {
        let template = super::template(file);
        let mut tagged = 0;
        for (id, resource) in template["Resources"].as_object().unwrap() {
            let kind = resource["Type"].as_str().unwrap();
            let tags = &resource["Properties"]["Tags"];
            if !taggable(kind) {
                assert!(tags.is_null(), "{file} {id}: {kind} takes no tags");
                continue;
            }
            let pairs: BTreeMap<&str, &Value> = tags
                .as_array()
                .unwrap_or_else(|| panic!("{file} {id} ({kind}) has no tags"))
                .iter()
                .map(|t| (t["Key"].as_str().unwrap(), &t["Value"]))
                .collect();
            assert_eq!(
                pairs.get("cutoff:component"),
                Some(&&json!(component)),
                "{file} {id}"
            );
            let stack = prefix.map(|p| json!({ "Ref": p }));
            assert_eq!(
                pairs.get("cutoff:stack").copied(),
                stack.as_ref(),
                "{file} {id}"
            );
            tagged += 1;
        }
        assert!(tagged > 0, "{file} tags nothing");
    }
}

#[test]
fn a_pager_gets_incidents_only_and_only_when_one_is_named() {
    use cutoff_domain::notify::{MessageClass, attribute};
    assert!(!stack().exists("PagerSubscription"), "no pager by default");
    for (protocol, endpoint) in [
        (
            "https",
            "https://events.pagerduty.com/integration/0123abcd/enqueue",
        ),
        ("email", "oncall-pager@example.com"),
    ] {
        let stack = responder(&[("PagerEndpoint", endpoint), ("PagerProtocol", protocol)]);
        let p = stack.properties("PagerSubscription");
        assert_eq!(
            p["TopicArn"],
            stack.resolve(&json!({"Ref": "SecurityTopic"}))
        );
        assert_eq!(
            (p["Protocol"].as_str(), p["Endpoint"].as_str()),
            (Some(protocol), Some(endpoint))
        );
        // On the attribute the notifier writes on every message, with its incident value.
        assert_eq!(p["FilterPolicyScope"], "MessageAttributes");
        assert_eq!(
            p["FilterPolicy"],
            json!({ attribute::CLASS: [MessageClass::Incident.as_str()] })
        );
    }
    assert_eq!(
        raw()["Parameters"]["PagerProtocol"]["AllowedValues"],
        json!(["https", "email"])
    );
}

#[test]
fn the_daily_digest_is_a_parameter_the_sweeper_reads_and_the_bus_carries() {
    use cutoff::config::{DigestSetting, sweeper_env};
    let allowed = raw()["Parameters"]["SweepDigest"]["AllowedValues"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(allowed, [json!("off"), json!("daily")]);
    for value in &allowed {
        let value = value.as_str().unwrap();
        assert!(DigestSetting::parse(value).is_some(), "{value}");
        let stack = responder(&[("SweepDigest", value)]);
        let variables = &stack.properties("SweeperFunction")["Environment"]["Variables"];
        assert_eq!(variables[sweeper_env::DIGEST], value);
    }
    assert_eq!(
        stack().properties("SweeperFunction")["Environment"]["Variables"][sweeper_env::DIGEST],
        "off",
        "off by default"
    );
    // The notifier hears of every kind of event the sweeper and revoker put on the bus.
    let pattern = &stack().properties("OutcomeRule")["EventPattern"];
    assert_eq!(
        pattern["detail-type"],
        json!([
            cutoff_aws::eventbridge::OUTCOME_DETAIL_TYPE,
            cutoff_aws::eventbridge::SUMMARY_DETAIL_TYPE,
            cutoff_aws::eventbridge::DIGEST_DETAIL_TYPE
        ])
    );
}

/// A message of a newer shape (an optional field added) must not reach a reader that
/// refuses unknown fields: in a stack update the readers are replaced first (intake's
/// requests are read by the revoker, every outcome by the notifier), and a rollback
/// restores the writers first.
#[test]
fn the_functions_that_read_a_message_are_updated_before_those_that_write_it() {
    let depends = |id: &str| -> Vec<String> {
        match &raw()["Resources"][id]["DependsOn"] {
            Value::String(one) => vec![one.clone()],
            Value::Array(many) => many
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect(),
            _ => Vec::new(),
        }
    };
    for (writer, readers) in [
        (
            "IntakeFunction",
            &["RevokerFunction", "NotifierFunction"][..],
        ),
        ("RevokerFunction", &["NotifierFunction"][..]),
        ("SweeperFunction", &["NotifierFunction"][..]),
    ] {
        let after = depends(writer);
        for reader in readers {
            assert!(
                after.iter().any(|d| d == reader),
                "{writer} is not updated after {reader}: {after:?}"
            );
        }
    }
    assert!(
        depends("NotifierFunction").is_empty(),
        "the last reader depends on no function"
    );
}
