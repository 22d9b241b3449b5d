//! The deployment templates, read as data: every function role grants only the
//! actions its code calls (plus what the Lambda service itself needs, each listed
//! with why), names its resources, and the member role matches the revoker.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use cutoff_tests::workspace_root;
use serde_json::{Value, json};

mod deploy;
mod observability;
mod reference;
mod resolve;
mod trust;

/// A template as JSON, intrinsic functions in long form.
fn template(name: &str) -> Value {
    resolve::load(name)
}

/// Both branches of a conditional (`Fn::If`), without `AWS::NoValue`: a check must
/// hold whichever way the condition goes.
fn branches(v: &Value) -> Vec<Value> {
    match v.get("Fn::If").and_then(Value::as_array) {
        Some(parts) if parts.len() == 3 => parts[1..]
            .iter()
            .flat_map(branches)
            .filter(|b| b.get("Ref") != Some(&Value::from("AWS::NoValue")))
            .collect(),
        _ => vec![v.clone()],
    }
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// Every `service:Action` literal in the source region of `item` (an `impl … for
/// Item` block, `impl Item`, or a free function named `item`), up to the next
/// top-level item.
fn operations_in(source: &str, is_item: impl Fn(&str) -> bool) -> BTreeSet<String> {
    // Operation names kept in constants (`const OP_PUT_EVENTS: &str = "events:PutEvents";`).
    let constants: Vec<(String, String)> = source
        .lines()
        .filter_map(|line| {
            let rest = line
                .trim()
                .strip_prefix("const ")
                .or_else(|| line.trim().strip_prefix("pub const "))
                .or_else(|| line.trim().strip_prefix("pub(crate) const "))?;
            let (name, value) = rest.split_once(": &str = \"")?;
            Some((name.to_owned(), value.trim_end_matches("\";").to_owned()))
        })
        .collect();
    let mut found = BTreeSet::new();
    let mut inside = false;
    for line in source.lines() {
        let top_level =
            line.chars().next().is_some_and(|c| !c.is_whitespace()) && !line.starts_with('}');
        if top_level {
            inside = is_item(line);
        }
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        if inside {
            let words: BTreeSet<&str> = line
                .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .collect();
            let named = constants
                .iter()
                .filter(|(name, _)| words.contains(name.as_str()))
                .map(|(_, v)| v.clone());
            let literal = line.split('"').skip(1).step_by(2).map(str::to_owned);
            for piece in literal.chain(named).collect::<Vec<_>>() {
                let piece = piece.as_str();
                if let Some((service, action)) = piece.split_once(':')
                    && [
                        "iam",
                        "sts",
                        "sqs",
                        "events",
                        "sns",
                        "securityhub",
                        "dynamodb",
                        "organizations",
                        "cloudtrail",
                        "scheduler",
                        "sso",
                        "identitystore",
                    ]
                    .contains(&service)
                    && !action.is_empty()
                    && action.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    found.insert(piece.to_owned());
                }
            }
        }
    }
    found
}

/// An SDK operation the code calls, where, and the IAM actions that authorize it.
struct Operation {
    file: String,
    actions: Vec<String>,
}

/// The AWS crate's source files a function's adapters may call from, relative to the
/// workspace root: every file under `shared/aws/src` (one module per service, each
/// with its SDK implementation), so that a new service module is read without being
/// listed here. The paged account read is an SdkIam method too, but only the
/// sweeper's handler calls it: counting it for every SdkIam user would ask the
/// revoker to hold it.
fn adapter_files(function: &str) -> Vec<String> {
    const PAGED_READ: &str = "shared/aws/src/iam/paged.rs";
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).unwrap();
                out.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    let root = workspace_root();
    let mut files = Vec::new();
    walk(&root.join("shared/aws/src"), root, &mut files);
    assert!(
        files.iter().any(|f| f == PAGED_READ),
        "the paged account read is no longer {PAGED_READ}: update adapter_files"
    );
    files.retain(|f| function == "sweeper" || f != PAGED_READ);
    files.sort();
    files
}

/// How a function's handler is built when deployed: its `Deployed…` type (if it has
/// one) and its `from_env`, from the handler's file.
fn deployed_construction(function: &str) -> String {
    let root = workspace_root();
    let handler =
        std::fs::read_to_string(root.join(format!("shared/app/src/handler/{function}.rs")))
            .unwrap();
    let from_env = handler
        .find("fn from_env(")
        .unwrap_or_else(|| panic!("{function}: the handler has no from_env"));
    let start = handler
        .find("pub type Deployed")
        .filter(|at| *at < from_env)
        .or_else(|| handler[..from_env].rfind("\nimpl "))
        .unwrap();
    let end = from_env + handler[from_env..].find("\n    }\n").unwrap();
    handler[start..end].to_owned()
}

/// SDK adapters that act with a role their function assumes, not with the function's
/// own role, and the template that deploys that role: what they call is that role's
/// grant ([`assumed_role_operations`]), and the function's own role needs only
/// `sts:AssumeRole` on it (the SDK's `AssumeRoleProvider` calls it).
const ASSUMED_ROLE_ADAPTERS: [(&str, &str); 1] = [("SdkDirectory", "identity-center-role.yaml")];

/// The SDK operations a function's code can call with its own role (as
/// `service:Operation`): the SDK adapters its handler's `from_env` constructs, and
/// what those adapters call, each with the actions that authorize it
/// ([`authorized_as`], read from the file that calls it). An adapter of
/// [`ASSUMED_ROLE_ADAPTERS`] counts as the `sts:AssumeRole` that gives it its role.
fn code_operations(function: &str) -> BTreeMap<String, Operation> {
    let main = deployed_construction(function);
    assert!(main.contains("Sdk"), "{function}: {main}");
    let mut structs: BTreeSet<String> = main
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| w.starts_with("Sdk") && w.len() > 3 && w != &"SdkConfig")
        .map(str::to_owned)
        .collect();
    let mut assumed = BTreeMap::new();
    for (adapter, template) in ASSUMED_ROLE_ADAPTERS {
        if structs.remove(adapter) {
            assumed.insert(
                "sts:AssumeRole".to_owned(),
                Operation {
                    file: format!("{adapter} (AssumeRoleProvider, the role of infra/{template})"),
                    actions: vec!["sts:AssumeRole".to_owned()],
                },
            );
        }
    }
    // Member-account clients are SdkIam clients.
    if structs.contains("SdkAccountAccess") {
        structs.insert("SdkIam".to_owned());
    }
    // The function that schedules follow-up runs runs them (they come back to it): its
    // account access reads CloudTrail's event history too.
    if structs.contains("SdkFollowUps") {
        structs.insert("SdkEventHistory".to_owned());
    }
    // A configured ledger is the SDK ledger when a table is set.
    if main.contains("ConfiguredLedger") {
        structs.insert("SdkLedger".to_owned());
    }
    let mut actions = adapter_operations(function, &structs, main.contains("discover_home"));
    for (op, operation) in assumed {
        actions.entry(op).or_insert(operation);
    }
    actions
}

/// The SDK operations of an adapter of [`ASSUMED_ROLE_ADAPTERS`]: what the role it
/// assumes must grant, and nothing else.
fn assumed_role_operations(adapter: &str) -> BTreeMap<String, Operation> {
    assert!(
        ASSUMED_ROLE_ADAPTERS.iter().any(|(a, _)| *a == adapter),
        "{adapter} is not an assumed-role adapter"
    );
    let structs = BTreeSet::from([adapter.to_owned()]);
    adapter_operations("", &structs, false)
}

/// What the `structs` (SDK adapters) call, from every file of the AWS crate that
/// `function` may call from ([`adapter_files`]), with the actions that authorize it.
fn adapter_operations(
    function: &str,
    structs: &BTreeSet<String>,
    discover_home: bool,
) -> BTreeMap<String, Operation> {
    let root = workspace_root();
    let mut actions = BTreeMap::new();
    for file in adapter_files(function) {
        let source = std::fs::read_to_string(root.join(&file)).unwrap();
        let mut found = BTreeSet::new();
        for name in structs {
            let impl_for = format!(" for {name} {{");
            let impl_self = format!("impl {name} {{");
            found.extend(operations_in(&source, |line| {
                line.starts_with("impl")
                    && (line.contains(&impl_for) || line.starts_with(&impl_self))
            }));
        }
        if discover_home {
            found.extend(operations_in(&source, |line| {
                line.contains("fn discover_home")
            }));
        }
        actions.extend(found.into_iter().map(|op| {
            let authorized = authorized_as(&op, &source);
            (
                op,
                Operation {
                    file: file.clone(),
                    actions: authorized,
                },
            )
        }));
    }
    actions
}

/// The IAM actions that authorize an SDK operation. Most operations are authorized by
/// the action of the same name; these are not, and the service authorization reference
/// (and each service's API reference) names what is: a batch is authorized as the
/// single action it repeats, a DynamoDB transaction as the item actions it holds, and
/// Security Hub's V2 (OCSF) finding update as the ASFF one's action (the API reference
/// of BatchUpdateFindingsV2: both "use securityhub:BatchUpdateFindings in the Action
/// element"; the reference lists no action of the V2 name, and gives
/// BatchUpdateFindings the hubv2 resource type and the OCSFSyntaxPath condition keys).
/// `every_operation_the_code_calls_is_authorized_by_an_action_aws_defines` refuses an
/// operation that is not an action and is not listed here.
fn authorized_as(operation: &str, source: &str) -> Vec<String> {
    let one = |action: &str| vec![action.to_owned()];
    match operation {
        "sqs:SendMessageBatch" => one("sqs:SendMessage"),
        "sqs:DeleteMessageBatch" => one("sqs:DeleteMessage"),
        "sqs:ChangeMessageVisibilityBatch" => one("sqs:ChangeMessageVisibility"),
        "sns:PublishBatch" => one("sns:Publish"),
        "dynamodb:TransactGetItems" => one("dynamodb:GetItem"),
        "securityhub:BatchUpdateFindingsV2" => one("securityhub:BatchUpdateFindings"),
        "dynamodb:TransactWriteItems" => {
            // The item kinds the code builds (`TransactWriteItem::builder().put(…)`).
            let actions: Vec<String> = [
                (".put(", "dynamodb:PutItem"),
                (".update(", "dynamodb:UpdateItem"),
                (".delete(", "dynamodb:DeleteItem"),
                (".condition_check(", "dynamodb:ConditionCheckItem"),
            ]
            .into_iter()
            .filter(|(call, _)| {
                source
                    .split("TransactWriteItem::builder()")
                    .skip(1)
                    .any(|rest| rest.trim_start().starts_with(call))
            })
            .map(|(_, action)| action.to_owned())
            .collect();
            assert!(
                !actions.is_empty(),
                "a TransactWriteItems call whose items this test cannot read"
            );
            actions
        }
        other => one(other),
    }
}

/// The IAM actions a function's code needs: its operations, as IAM authorizes them.
fn code_actions(function: &str) -> BTreeSet<String> {
    code_operations(function)
        .into_values()
        .flat_map(|op| op.actions)
        .collect()
}

/// What the Lambda service does with the function's own role, beyond the code's calls.
fn service_actions(function: &str) -> BTreeMap<&'static str, &'static str> {
    let mut extra = BTreeMap::from([
        (
            "logs:CreateLogStream",
            "the runtime writes the function's logs",
        ),
        (
            "logs:PutLogEvents",
            "the runtime writes the function's logs",
        ),
    ]);
    match function {
        "revoker" | "sweeper" => {
            for action in [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
            ] {
                extra.insert(
                    action,
                    "the SQS event-source mapping polls the request queue with the function's role",
                );
            }
        }
        "intake" | "notifier" => {
            extra.insert(
                "sqs:SendMessage",
                "the asynchronous-invoke OnFailure destination sends with the function's role",
            );
        }
        _ => {}
    }
    if function == "revoker" {
        extra.insert(
            "sqs:SendMessage",
            "the asynchronous-invoke OnFailure destination (follow-up runs) sends with the function's role",
        );
        extra.insert(
            "iam:PassRole",
            "scheduler:CreateSchedule passes the follow-up scheduler role to Scheduler",
        );
    }
    if function == "notifier" {
        extra.insert(
            "kms:GenerateDataKey",
            "SNS encrypts with the topic's KMS key on the publisher's behalf",
        );
        extra.insert(
            "kms:Decrypt",
            "SNS encrypts with the topic's KMS key on the publisher's behalf",
        );
    }
    extra
}

/// The policies attached to `role` by resources of their own (`AWS::IAM::RolePolicy`,
/// `AWS::IAM::Policy`), whatever their `Condition`: a check must hold whether they are
/// created or not.
fn attached_policies(template: &Value, role: &str) -> Vec<Value> {
    let reference = serde_json::json!({ "Ref": role });
    template["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| match r["Type"].as_str() {
            Some("AWS::IAM::RolePolicy") => r["Properties"]["RoleName"] == reference,
            Some("AWS::IAM::Policy") => as_list(&r["Properties"]["Roles"]).contains(&reference),
            _ => false,
        })
        .map(|r| r["Properties"].clone())
        .collect()
}

/// (actions, resources, effect) of every statement of a role's inline policies, and
/// of the policies attached to it as resources of their own.
fn role_statements(template: &Value, role: &str) -> Vec<(Vec<String>, Vec<Value>, String, Value)> {
    let props = &template["Resources"][role]["Properties"];
    assert!(!props.is_null(), "no role {role} in the template");
    assert!(
        as_list(&props["ManagedPolicyArns"]).is_empty(),
        "{role}: managed policies hide what is granted; use inline statements"
    );
    let mut out = Vec::new();
    let policies: Vec<Value> = as_list(&props["Policies"])
        .iter()
        .flat_map(branches)
        .chain(attached_policies(template, role))
        .collect();
    for policy in policies {
        for st in as_list(&policy["PolicyDocument"]["Statement"])
            .iter()
            .flat_map(branches)
        {
            let actions = as_list(&st["Action"])
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect();
            let resources = as_list(&st["Resource"]);
            out.push((
                actions,
                resources,
                st["Effect"].as_str().unwrap().to_owned(),
                st.clone(),
            ));
        }
    }
    out
}

fn function_roles(template: &Value) -> BTreeMap<String, String> {
    let mut roles = BTreeMap::new();
    for (id, resource) in template["Resources"].as_object().unwrap() {
        if resource["Type"] == "AWS::Serverless::Function" {
            let role = resource["Properties"]["Role"]["Fn::GetAtt"][0]
                .as_str()
                .expect("an explicit role")
                .to_owned();
            // IntakeFunction → the intake binary.
            let binary = id
                .strip_suffix("Function")
                .expect("a function's logical id ends in Function")
                .to_lowercase();
            roles.insert(binary, role);
        }
    }
    roles
}

#[test]
fn every_function_role_grants_only_what_its_code_calls() {
    let template = template("template.yaml");
    let roles = function_roles(&template);
    assert_eq!(
        roles.keys().cloned().collect::<Vec<_>>(),
        ["intake", "notifier", "revoker", "sweeper"]
    );
    let mut report = Vec::new();
    for (function, role) in &roles {
        let code = code_actions(function);
        assert!(
            !code.is_empty(),
            "{function}: no AWS actions found in its code"
        );
        let service = service_actions(function);
        let mut granted = BTreeSet::new();
        for (actions, _, effect, _) in role_statements(&template, role) {
            if effect != "Allow" {
                continue;
            }
            for action in actions {
                assert!(
                    !action.contains('*'),
                    "{function}: wildcard action {action}"
                );
                let known = code.contains(&action) || service.contains_key(action.as_str());
                if !known {
                    report.push(format!(
                        "{function} ({role}) grants {action}, which its code does not call"
                    ));
                }
                granted.insert(action);
            }
        }
        for action in &code {
            // sts:GetCallerIdentity needs no permission and is skipped when the
            // template passes the account.
            if action != "sts:GetCallerIdentity" && !granted.contains(action) {
                report.push(format!(
                    "{function} ({role}) does not grant {action}, which its code calls"
                ));
            }
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

/// Each SDK operation the functions call is authorized by actions AWS defines: an
/// operation whose name is not an action (a batch, a transaction) must be mapped in
/// [`authorized_as`], or the grant the least-privilege test asks for would not exist.
#[test]
fn every_operation_the_code_calls_is_authorized_by_an_action_aws_defines() {
    let mut items = Vec::new();
    for function in ["intake", "notifier", "revoker", "sweeper"] {
        for (op, Operation { file, actions }) in code_operations(function) {
            for action in actions {
                items.push((format!("{function} calls {op} ({file})"), action));
            }
        }
    }
    for (adapter, template) in ASSUMED_ROLE_ADAPTERS {
        for (op, Operation { file, actions }) in assumed_role_operations(adapter) {
            for action in actions {
                items.push((
                    format!("{adapter} calls {op} ({file}) with the role of infra/{template}"),
                    action,
                ));
            }
        }
    }
    assert!(items.len() > 40, "{}", items.len());
    let questions: Vec<(String, Vec<String>)> =
        items.iter().map(|(_, a)| (a.clone(), Vec::new())).collect();
    let answers = reference::ask(&questions);
    let unknown: Vec<String> = answers
        .iter()
        .zip(&items)
        .filter(|(answer, _)| !answer.known || answer.matches.len() != 1)
        .map(|(_, (place, action))| {
            format!(
                "{place}: {action} is not an IAM action; map the operation in authorized_as() to the action(s) the service authorization reference names"
            )
        })
        .collect();
    assert!(unknown.is_empty(), "\n{}", unknown.join("\n"));
}

#[test]
fn batches_and_transactions_are_authorized_as_the_actions_they_repeat() {
    assert_eq!(
        authorized_as("sqs:SendMessageBatch", ""),
        ["sqs:SendMessage"]
    );
    let transaction = "client.transact_write_items()\n\
        .transact_items(TransactWriteItem::builder().put(put).build())\n\
        .transact_items(TransactWriteItem::builder()\n    .update(update).build())";
    assert_eq!(
        authorized_as("dynamodb:TransactWriteItems", transaction),
        ["dynamodb:PutItem", "dynamodb:UpdateItem"]
    );
    assert_eq!(
        authorized_as("iam:PutRolePolicy", ""),
        ["iam:PutRolePolicy"]
    );
    assert_eq!(
        authorized_as("securityhub:BatchUpdateFindingsV2", ""),
        ["securityhub:BatchUpdateFindings"]
    );
    // What the reference says of both names: the V2 one is no action.
    let answers = reference::ask(&[
        ("securityhub:BatchUpdateFindingsV2".to_owned(), Vec::new()),
        (
            "securityhub:BatchUpdateFindings".to_owned(),
            vec!["securityhub:OCSFSyntaxPath/StatusId".to_owned()],
        ),
    ]);
    assert!(!answers[0].known);
    assert!(answers[1].known && answers[1].unknown_keys.is_empty());
    let types = reference::resource_types(&["securityhub:BatchUpdateFindings".to_owned()]);
    let names: Vec<&str> = types[0].iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["hub", "hubv2"]);
}

/// `*` as a resource is allowed only where the service accepts nothing narrower (the
/// functions' roles and the Identity Center role; the reference check of every action's
/// resource types is `reference::every_action_of_the_identity_center_role_names_the_resources_it_requires`).
#[test]
fn resources_are_named_wherever_the_service_allows() {
    const STAR_ONLY: [&str; 5] = [
        "iam:GetAccountSummary",
        "iam:GetAccountAuthorizationDetails",
        "organizations:ListAccounts",
        "cloudtrail:LookupEvents",
        "sso:ListInstances",
    ];
    let responder = template("template.yaml");
    let identity_center = template("identity-center-role.yaml");
    let mut roles: Vec<(&Value, String)> = function_roles(&responder)
        .into_values()
        .map(|role| (&responder, role))
        .collect();
    roles.push((&identity_center, the_role_of(&identity_center)));
    let mut stars = 0;
    for (template, role) in &roles {
        for (actions, resources, effect, _) in role_statements(template, role) {
            if effect != "Allow" {
                continue;
            }
            for resource in &resources {
                if resource == "*" {
                    assert!(
                        actions.iter().all(|a| STAR_ONLY.contains(&a.as_str())),
                        "{role}: {actions:?} on *"
                    );
                    stars += 1;
                }
            }
        }
    }
    assert!(stars >= 5, "{stars}");
}

/// The one role of a template that deploys a single role (member-role.yaml,
/// identity-center-role.yaml).
fn the_role_of(template: &Value) -> String {
    let roles: Vec<&String> = template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::IAM::Role")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(roles.len(), 1, "{roles:?}");
    roles[0].clone()
}

/// The calls of `SdkDirectory` that only the SCP variant makes (cutoff's own service
/// control policy, read and written; where it is attached, and the finding's account's
/// parents up to the root, to know whether it reaches that account): the Identity
/// Center role holds them only when its stack creates that policy
/// (`ServiceControlPolicy=true`).
const SCP_VARIANT_ACTIONS: [&str; 4] = [
    "organizations:DescribePolicy",
    "organizations:UpdatePolicy",
    "organizations:ListTargetsForPolicy",
    "organizations:ListParents",
];

/// The Identity Center role grants exactly what the revoker's Identity Center adapter
/// (`SdkDirectory`) calls with it: no more, no less, and nothing else of any service;
/// the SCP variant's four calls exactly when the stack has the variant. The revoker's own
/// role grants none of it (the least-privilege test above refuses a grant its code does
/// not call with it), and `sts:AssumeRole` of this role only when the stack is
/// configured (`trust::the_revoker_may_assume_only_the_configured_identity_center_role`).
#[test]
fn the_identity_center_role_grants_exactly_what_the_directory_calls() {
    assert!(
        deployed_construction("revoker").contains("SdkDirectory"),
        "the revoker no longer builds SdkDirectory: update ASSUMED_ROLE_ADAPTERS and infra/identity-center-role.yaml"
    );
    let operations = assumed_role_operations("SdkDirectory");
    let called: BTreeSet<String> = operations
        .values()
        .flat_map(|op| op.actions.clone())
        .collect();
    // The adapter's own list of what it calls (its doc comment), read independently of
    // the scan above: both must name the same actions.
    let source =
        std::fs::read_to_string(workspace_root().join("shared/aws/src/identity_center.rs"))
            .unwrap();
    let documented: BTreeSet<String> = source
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join(" ")
        .split('`')
        .filter(|w| {
            w.starts_with("sso:")
                || w.starts_with("identitystore:")
                || w.starts_with("organizations:")
        })
        .map(str::to_owned)
        .collect();
    assert_eq!(
        called, documented,
        "SdkDirectory's calls and its doc comment differ"
    );
    assert_eq!(called.len(), 15, "{called:?}");
    let scp_only: BTreeSet<String> = SCP_VARIANT_ACTIONS.map(str::to_owned).into();
    assert!(
        scp_only.is_subset(&called),
        "SdkDirectory no longer calls {:?}: update SCP_VARIANT_ACTIONS and infra/identity-center-role.yaml",
        scp_only.difference(&called).collect::<Vec<_>>()
    );
    // Of Organizations, the adapter calls the SCP variant's four actions only.
    let organizations: BTreeSet<String> = called
        .iter()
        .filter(|a| a.starts_with("organizations:"))
        .cloned()
        .collect();
    assert_eq!(organizations, scp_only);

    // Every statement of the template, whatever its condition: unconditioned Allows of
    // named actions, each granted once.
    let identity_center = template("identity-center-role.yaml");
    let role = the_role_of(&identity_center);
    let mut in_template = BTreeSet::new();
    for (actions, _, effect, st) in role_statements(&identity_center, &role) {
        assert_eq!(effect, "Allow", "{st}");
        assert!(st["Condition"].is_null(), "{st}");
        for action in actions {
            assert!(!action.contains('*'), "wildcard action {action}");
            assert!(in_template.insert(action.clone()), "{action} granted twice");
        }
    }
    assert_eq!(in_template, called);
    // What each deployment grants: the SCP variant's four actions exactly when it is
    // on (15 actions with it, 11 without).
    for (variant, stack) in [
        (false, trust::identity_center(&[])),
        (
            false,
            trust::identity_center(&[("ServiceControlPolicy", "false")]),
        ),
        (true, trust::identity_center_scp(&[])),
    ] {
        let granted: BTreeSet<String> = as_list(&stack.role_policy(&role)["Statement"])
            .iter()
            .flat_map(|s| as_list(&s["Action"]))
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        let expected: BTreeSet<String> = if variant {
            called.clone()
        } else {
            called.difference(&scp_only).cloned().collect()
        };
        assert_eq!(expected.len(), if variant { 15 } else { 11 });
        let missing: Vec<&String> = expected.difference(&granted).collect();
        let extra: Vec<&String> = granted.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "SCP variant {variant}: the Identity Center role does not grant {missing:?}, which SdkDirectory calls; it grants {extra:?}, which it should not"
        );
    }
    // The revoker's own role reaches none of Identity Center itself, nor cutoff's SCP.
    let responder = template("template.yaml");
    for (actions, ..) in role_statements(&responder, "RevokerRole") {
        for action in actions {
            assert!(
                !action.starts_with("sso:")
                    && !action.starts_with("identitystore:")
                    && !scp_only.contains(&action),
                "the revoker's own role grants {action}"
            );
        }
    }
}

/// The SCP variant's policy is created as the revoker's code writes it when it denies
/// nobody (`cutoff_domain::identity_center::scp_placeholder()`, alone in the
/// document), so that the first containment reads and merges it, and the last release
/// writes it back; a service control policy, attached only to the targets given, kept
/// when the stack goes, and its id the output the responder takes.
#[test]
fn the_service_control_policy_is_created_as_the_code_writes_it_denying_nobody() {
    use cutoff_domain::identity_center::{
        IdentityStoreUserId, InlineChange, SCP_MAX, denies_user, scp_placeholder,
        scp_with_user_denied, scp_without_user,
    };
    const POLICY: &str = "IdentityCenterServiceControlPolicy";
    let raw = template("identity-center-role.yaml");
    let stack = trust::identity_center_scp(&[]);
    let props = stack.properties(POLICY);
    assert_eq!(props["Type"], "SERVICE_CONTROL_POLICY");
    let content = &props["Content"];
    assert_eq!(
        content,
        &serde_json::json!({"Version": "2012-10-17", "Statement": [scp_placeholder()]})
    );
    // The placeholder denies, never allows (an Allow would widen an Organization whose
    // SCPs allow only what they list).
    assert_eq!(scp_placeholder()["Effect"], "Deny");
    let text = content.to_string();
    assert!(text.chars().count() <= SCP_MAX, "{text}");

    // What the revoker does with it: the placeholder goes when a user is denied, and the
    // release writes back exactly what the template created.
    let user = IdentityStoreUserId::parse("94482488-3041-7026-18f3-be45837cd0e4").unwrap();
    let InlineChange::Put(denied) = scp_with_user_denied(&text, &user).unwrap() else {
        panic!("the user is added to the template's policy")
    };
    assert!(denies_user(&denied, &user), "{denied}");
    assert!(!denied.contains("CutoffDeniesNobody"), "{denied}");
    let InlineChange::Put(released) = scp_without_user(&denied, &user).unwrap() else {
        panic!("the user is removed again")
    };
    assert_eq!(
        serde_json::from_str::<Value>(&released).unwrap(),
        content.clone()
    );

    let name = props["Name"].as_str().unwrap();
    assert_eq!(name, "cutoff-identity-center-deny");
    let description = props["Description"].as_str().unwrap();
    for words in ["cutoff", "Do not edit"] {
        assert!(description.contains(words), "{description}");
    }
    assert!(description.len() <= 512, "{}", description.len());
    // Kept when the stack is deleted or the variant turned off: a user in it stays
    // denied until released.
    assert_eq!(raw["Resources"][POLICY]["DeletionPolicy"], "Retain");
    assert_eq!(raw["Resources"][POLICY]["UpdateReplacePolicy"], "Retain");

    // Attached only where ScpTargetIds say; not attached (and so protecting nobody)
    // without them.
    assert!(props.get("TargetIds").is_none(), "{props}");
    let attached = trust::identity_center_scp(&[("ScpTargetIds", "r-ab12,ou-ab12-cdefgh34")]);
    assert_eq!(
        attached.properties(POLICY)["TargetIds"],
        serde_json::json!(["r-ab12", "ou-ab12-cdefgh34"])
    );
    assert!(attached.broken_rules().is_empty());
    // Targets without the variant are refused (they would attach nothing).
    let stray = trust::identity_center(&[("ScpTargetIds", "r-ab12")]);
    assert!(!stray.broken_rules().is_empty());
    assert!(trust::identity_center(&[]).broken_rules().is_empty());

    // The output the responder's IdentityCenterScpId takes, only with the variant.
    let output = &raw["Outputs"]["ServiceControlPolicyId"];
    assert_eq!(output["Condition"], raw["Resources"][POLICY]["Condition"]);
    assert_eq!(
        stack.resolve(&output["Value"]),
        stack.resolve(&serde_json::json!({"Ref": POLICY}))
    );
    // The role's grant and the policy come and go together.
    let access = "IdentityCenterServiceControlPolicyAccess";
    assert_eq!(
        raw["Resources"][access]["Condition"],
        raw["Resources"][POLICY]["Condition"]
    );
    assert!(stack.exists(POLICY) && stack.exists(access));
    let plain = trust::identity_center(&[]);
    assert!(!plain.exists(POLICY) && !plain.exists(access));
}

#[test]
fn the_identity_center_role_trusts_only_the_revoker_with_the_external_id() {
    let template = template("identity-center-role.yaml");
    let role = &template["Resources"][the_role_of(&template)]["Properties"];
    let trust = role["AssumeRolePolicyDocument"].to_string();
    assert!(trust.contains("sts:ExternalId"), "{trust}");
    assert!(
        trust.contains("role/${ResponderNamePrefix}-${ResponderRegion}-revoker"),
        "names the responder's revoker role: {trust}"
    );
    for other in ["sweeper", "intake", "notifier", r#""AWS":"*""#] {
        assert!(!trust.contains(other), "{other}: {trust}");
    }
    assert_eq!(role["MaxSessionDuration"], 3600);
    assert_eq!(template["Parameters"]["ExternalId"]["NoEcho"], true);
}

/// The revoker's statements for its own account and the member role's must not
/// drift apart: they are the same permissions in two places.
#[test]
fn the_member_role_grants_and_denies_what_the_revoker_does_at_home() {
    let responder = template("template.yaml");
    let member = template("member-role.yaml");
    let iam_statements = |statements: Vec<(Vec<String>, Vec<Value>, String, Value)>| -> BTreeMap<String, Vec<String>> {
        statements
            .into_iter()
            .filter(|(actions, ..)| actions.iter().any(|a| a.starts_with("iam:")))
            .map(|(mut actions, _, effect, st)| {
                actions.sort();
                (st["Sid"].as_str().unwrap_or("").to_owned(), {
                    actions.insert(0, effect);
                    actions
                })
            })
            .collect()
    };
    let mut home = iam_statements(role_statements(&responder, "RevokerRole"));
    // Passing the follow-up's scheduler role to Scheduler happens at home only.
    assert!(home.remove("PassFollowUpSchedulerRole").is_some());
    let member_role_id = member["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, r)| r["Type"] == "AWS::IAM::Role")
        .map(|(id, _)| id.clone())
        .unwrap();
    let remote = iam_statements(role_statements(&member, &member_role_id));
    assert!(!home.is_empty());
    // The member role serves the revoker and the sweeper: the sweeper's statements at
    // home exactly, which are the revoker's plus the paged read of the account.
    let sweeper = iam_statements(role_statements(&responder, "SweeperRole"));
    assert_eq!(sweeper, remote);
    let mut without_read = remote.clone();
    assert_eq!(
        without_read.remove("ReadAccountDetails"),
        Some(vec![
            "Allow".to_owned(),
            "iam:GetAccountAuthorizationDetails".to_owned()
        ])
    );
    assert_eq!(home, without_read);
    assert!(
        remote.values().any(|s| s[0] == "Deny"),
        "the member role denies writes to cutoff's own roles"
    );
    // The follow-up reads CloudTrail's event history where the revoker acts: at home
    // with its own role, in member accounts through this one; nothing else of
    // CloudTrail.
    for (template, role) in [
        (&responder, "RevokerRole"),
        (&member, member_role_id.as_str()),
    ] {
        let cloudtrail: Vec<String> = role_statements(template, role)
            .into_iter()
            .flat_map(|(actions, ..)| actions)
            .filter(|a| a.starts_with("cloudtrail:"))
            .collect();
        assert_eq!(cloudtrail, ["cloudtrail:LookupEvents"], "{role}");
    }
}

#[test]
fn the_member_role_trusts_only_the_responder_with_the_external_id() {
    let member = template("member-role.yaml");
    let role = member["Resources"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| r["Type"] == "AWS::IAM::Role")
        .unwrap();
    let trust = role["Properties"]["AssumeRolePolicyDocument"].to_string();
    assert!(trust.contains("sts:ExternalId"), "{trust}");
    for function in ["revoker", "sweeper"] {
        assert!(
            trust.contains(&format!(
                "role/${{ResponderNamePrefix}}-${{ResponderRegion}}-{function}"
            )),
            "names the responder's {function} role: {trust}"
        );
    }
    assert!(!trust.contains(r#""AWS":"*""#), "{trust}");
}

/// Every variable a function's configuration reads is set by the template.
#[test]
fn every_setting_the_code_reads_is_wired() {
    let template = template("template.yaml");
    let config = ["shared/domain/src/settings.rs", "shared/app/src/config.rs"]
        .map(|file| std::fs::read_to_string(workspace_root().join(file)).unwrap())
        .join("\n");
    let known: BTreeSet<String> = config
        .split('"')
        .filter(|s| {
            s.starts_with("CUTOFF_")
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect();
    for (id, resource) in template["Resources"].as_object().unwrap() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let vars = resource["Properties"]["Environment"]["Variables"]
            .as_object()
            .unwrap();
        for name in vars.keys() {
            assert!(
                known.contains(name),
                "{id} sets {name}, which the code never reads"
            );
        }
    }
    let all: BTreeSet<String> = template["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Serverless::Function")
        .flat_map(|r| {
            r["Properties"]["Environment"]["Variables"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    for required in [
        "CUTOFF_REQUEST_QUEUE_URL",
        "CUTOFF_OUTCOME_BUS",
        "CUTOFF_SECURITY_TOPIC_ARN",
        "CUTOFF_EXTERNAL_ID",
        "CUTOFF_MAX_RECEIVES",
        "CUTOFF_LEDGER_TABLE",
        "CUTOFF_SWEEP_QUEUE_URL",
        "CUTOFF_SWEEP_DIGEST",
        "CUTOFF_IDENTITY_CENTER_ROLE_ARN",
        "CUTOFF_IDENTITY_CENTER_REGION",
        "CUTOFF_IDENTITY_CENTER_SCP_ID",
        "CUTOFF_MEDIUM_FINDINGS",
        "CUTOFF_APPROVAL_HOURS",
    ] {
        assert!(all.contains(required), "no function sets {required}");
    }
}

/// The approval settings: intake reads MediumFindings (the revoker must not need it:
/// it acts on what the queue says), the revoker ApprovalHours, and every value the
/// template allows is one the code takes, the defaults the code's.
#[test]
fn the_approval_parameters_reach_the_functions_that_read_them_within_the_codes_bounds() {
    use cutoff_domain::approval::ApprovalHours;
    use cutoff_domain::settings::MediumFindings;
    let template = template("template.yaml");
    let variables = |function: &str| {
        template["Resources"][function]["Properties"]["Environment"]["Variables"].clone()
    };
    assert_eq!(
        variables("IntakeFunction")["CUTOFF_MEDIUM_FINDINGS"],
        json!({"Ref": "MediumFindings"})
    );
    assert_eq!(
        variables("RevokerFunction")["CUTOFF_APPROVAL_HOURS"],
        json!({"Ref": "ApprovalHours"})
    );
    let medium = &template["Parameters"]["MediumFindings"];
    assert_eq!(medium["Default"], MediumFindings::default().as_str());
    let allowed: Vec<&str> = medium["AllowedValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(allowed, ["alert", "ask"]);
    for value in allowed {
        assert_eq!(MediumFindings::parse(value).unwrap().as_str(), value);
    }
    let hours = &template["Parameters"]["ApprovalHours"];
    assert_eq!(
        hours["Default"].as_u64(),
        Some(u64::from(ApprovalHours::DEFAULT.get()))
    );
    let (min, max) = (
        hours["MinValue"].as_u64().unwrap(),
        hours["MaxValue"].as_u64().unwrap(),
    );
    for h in [min, max] {
        assert!(ApprovalHours::parse(&h.to_string()).is_ok(), "{h}");
    }
    for h in [min - 1, max + 1] {
        assert!(ApprovalHours::parse(&h.to_string()).is_err(), "{h}");
    }
}
