//! A small CloudFormation resolver for the template tests: a template instantiated with
//! concrete parameter values, as CloudFormation would deploy it, so that its policies can
//! be handed to the policy evaluator as the documents AWS would store.
//!
//! It evaluates the `Conditions` from the parameters (`Fn::Equals`, `Fn::Not`, `Fn::And`,
//! `Fn::Or`, `Condition`), the `Rules` assertions (with `Fn::EachMemberEquals` too), and
//! resolves `Ref` (parameters, pseudo parameters, resources: what `Ref` returns for each
//! type), `Fn::GetAtt` (the ARN or attribute the resource would have), `Fn::Sub` (both
//! forms), `Fn::If` (`AWS::NoValue` removes the element or key, as CloudFormation does),
//! `Fn::Join`, `Fn::Split`, `Fn::Select` and `Fn::FindInMap`. Anything else panics, naming what is missing: a test
//! must not pass on a document the resolver only half understood. (The templates use no
//! `Fn::ForEach`: see the function URL permissions in infra/template.yaml for why, so
//! there is nothing here to expand it.)

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// The security account the responder is deployed in.
pub const ACCOUNT: &str = "111122223333";
pub const REGION: &str = "us-east-1";
pub const PARTITION: &str = "aws";
/// The id every KMS key of a stack gets here.
pub const KEY_ID: &str = "0000aaaa-1111-4222-8333-444455556666";
/// The Organization every stack here belongs to.
pub const ORGANIZATION_ID: &str = "o-exampleorg1";
/// The id every Organizations policy of a stack gets here (Organizations' own form:
/// `p-` and lowercase letters and digits).
pub const POLICY_ID: &str = "p-0cutoffscp1";

/// A template as JSON, intrinsic functions in long form.
pub fn load(name: &str) -> Value {
    cutoff_tests::template_json(name)
}

/// A template with parameter values: what one deployment of it would be.
pub struct Stack {
    template: Value,
    params: BTreeMap<String, Value>,
    pub account: String,
}

impl Stack {
    /// The template with `params` set and every other parameter at its default. Panics on
    /// a parameter the template does not declare, and on a required one left unset.
    pub fn new(template: &Value, params: &[(&str, &str)]) -> Stack {
        Stack::in_account(template, ACCOUNT, params)
    }

    /// The same, deployed in `account`.
    pub fn in_account(template: &Value, account: &str, params: &[(&str, &str)]) -> Stack {
        let declared = template["Parameters"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (name, _) in params {
            assert!(
                declared.contains_key(*name),
                "the template has no parameter {name}"
            );
        }
        let mut values = BTreeMap::new();
        for (name, spec) in &declared {
            let text = match params.iter().find(|(n, _)| n == name) {
                Some((_, v)) => (*v).to_owned(),
                None => match &spec["Default"] {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Null => panic!("parameter {name} has no default: set it"),
                    other => panic!("parameter {name}: unexpected default {other}"),
                },
            };
            let value = if spec["Type"] == "CommaDelimitedList" {
                Value::Array(text.split(',').map(Value::from).collect())
            } else {
                Value::String(text)
            };
            values.insert(name.clone(), value);
        }
        Stack {
            template: template.clone(),
            params: values,
            account: account.to_owned(),
        }
    }

    /// The value of condition `name`.
    pub fn condition(&self, name: &str) -> bool {
        let expr = &self.template["Conditions"][name];
        assert!(!expr.is_null(), "no condition {name}");
        self.truth(expr)
    }

    fn truth(&self, expr: &Value) -> bool {
        let Some((f, args)) = single(expr) else {
            panic!("not a condition expression: {expr}");
        };
        match f {
            "Fn::Equals" => {
                let a = self.resolve(&args[0]);
                let b = self.resolve(&args[1]);
                scalar_text(&a) == scalar_text(&b)
            }
            "Fn::Not" => !self.truth(&args[0]),
            "Fn::And" => args.as_array().unwrap().iter().all(|e| self.truth(e)),
            "Fn::Or" => args.as_array().unwrap().iter().any(|e| self.truth(e)),
            "Condition" | "Fn::Condition" => self.condition(args.as_str().unwrap()),
            // A rule function: every member of a list is the string.
            "Fn::EachMemberEquals" => {
                let list = self.resolve(&args[0]);
                let value = scalar_text(&self.resolve(&args[1]));
                list.as_array()
                    .unwrap_or_else(|| panic!("Fn::EachMemberEquals of {list}"))
                    .iter()
                    .all(|member| scalar_text(member) == value)
            }
            other => panic!("unsupported condition function {other}"),
        }
    }

    /// The `AssertDescription` of every `Rules` assertion this deployment breaks
    /// (CloudFormation refuses the stack when there is one).
    pub fn broken_rules(&self) -> Vec<String> {
        let mut broken = Vec::new();
        for rule in self.template["Rules"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            if !rule["RuleCondition"].is_null() && !self.truth(&rule["RuleCondition"]) {
                continue;
            }
            for assertion in rule["Assertions"].as_array().unwrap() {
                if !self.truth(&assertion["Assert"]) {
                    broken.push(assertion["AssertDescription"].as_str().unwrap().to_owned());
                }
            }
        }
        broken
    }

    /// Whether the resource is created (its `Condition`, if any, holds).
    pub fn exists(&self, id: &str) -> bool {
        let resource = &self.template["Resources"][id];
        assert!(!resource.is_null(), "no resource {id}");
        resource["Condition"]
            .as_str()
            .is_none_or(|c| self.condition(c))
    }

    fn resource(&self, id: &str) -> &Value {
        let resource = &self.template["Resources"][id];
        assert!(!resource.is_null(), "no resource {id}");
        resource
    }

    /// Ids of the created resources of a type.
    pub fn resources_of_type(&self, kind: &str) -> Vec<String> {
        self.template["Resources"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(id, r)| r["Type"] == kind && self.exists(id))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// A resource's properties, resolved.
    pub fn properties(&self, id: &str) -> Value {
        assert!(self.exists(id), "{id} is not created in this deployment");
        self.resolve(&self.resource(id)["Properties"])
    }

    /// `value` with every intrinsic function resolved (`AWS::NoValue` at the top: null).
    pub fn resolve(&self, value: &Value) -> Value {
        self.resolve_opt(value, &BTreeMap::new())
            .unwrap_or(Value::Null)
    }

    fn resolve_opt(&self, value: &Value, vars: &BTreeMap<String, Value>) -> Option<Value> {
        if let Some((f, args)) = single(value)
            && (f == "Ref" || f.starts_with("Fn::"))
        {
            return self.function(f, args, vars);
        }
        Some(match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter_map(|(k, v)| Some((k.clone(), self.resolve_opt(v, vars)?)))
                    .collect::<Map<_, _>>(),
            ),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .filter_map(|v| self.resolve_opt(v, vars))
                    .collect(),
            ),
            other => other.clone(),
        })
    }

    fn function(&self, f: &str, args: &Value, vars: &BTreeMap<String, Value>) -> Option<Value> {
        let resolve = |v: &Value| {
            self.resolve_opt(v, vars)
                .expect("AWS::NoValue as an argument")
        };
        Some(match f {
            "Ref" => {
                let name = args.as_str().unwrap();
                if name == "AWS::NoValue" {
                    return None;
                }
                self.reference(name)
            }
            "Fn::GetAtt" => {
                let parts: Vec<String> = match args {
                    Value::Array(a) => a.iter().map(|p| p.as_str().unwrap().to_owned()).collect(),
                    Value::String(s) => s.splitn(2, '.').map(str::to_owned).collect(),
                    other => panic!("Fn::GetAtt {other}"),
                };
                Value::String(self.attribute(&parts[0], &parts[1]))
            }
            "Fn::Sub" => {
                let (text, local) = match args {
                    Value::String(s) => (s.clone(), BTreeMap::new()),
                    Value::Array(a) => {
                        let mut local = vars.clone();
                        for (k, v) in a[1].as_object().unwrap() {
                            local.insert(k.clone(), resolve(v));
                        }
                        (a[0].as_str().unwrap().to_owned(), local)
                    }
                    other => panic!("Fn::Sub {other}"),
                };
                Value::String(self.substitute(&text, &local))
            }
            "Fn::If" => {
                let a = args.as_array().unwrap();
                let chosen = if self.condition(a[0].as_str().unwrap()) {
                    &a[1]
                } else {
                    &a[2]
                };
                return self.resolve_opt(chosen, vars);
            }
            "Fn::Join" => {
                let a = args.as_array().unwrap();
                let items = resolve(&a[1]);
                let parts: Vec<String> = items
                    .as_array()
                    .unwrap_or_else(|| panic!("Fn::Join of {items}"))
                    .iter()
                    .map(scalar_text)
                    .collect();
                Value::String(parts.join(a[0].as_str().unwrap()))
            }
            "Fn::Split" => {
                let a = args.as_array().unwrap();
                let text = resolve(&a[1]);
                Value::Array(
                    scalar_text(&text)
                        .split(a[0].as_str().unwrap())
                        .map(Value::from)
                        .collect(),
                )
            }
            "Fn::Select" => {
                let a = args.as_array().unwrap();
                let index: usize = scalar_text(&resolve(&a[0])).parse().unwrap();
                let list = resolve(&a[1]);
                list.as_array()
                    .and_then(|l| l.get(index))
                    .unwrap_or_else(|| panic!("Fn::Select {index} of {list}: out of range"))
                    .clone()
            }
            "Fn::FindInMap" => {
                let a = args.as_array().unwrap();
                let keys: Vec<String> = a.iter().map(|k| scalar_text(&resolve(k))).collect();
                let found = &self.template["Mappings"][&keys[0]][&keys[1]][&keys[2]];
                assert!(!found.is_null(), "Fn::FindInMap {keys:?}");
                found.clone()
            }
            other => panic!("the resolver does not support {other}"),
        })
    }

    fn substitute(&self, text: &str, vars: &BTreeMap<String, Value>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = start + rest[start..].find('}').expect("unclosed ${");
            let name = &rest[start + 2..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(&scalar_text(v));
            } else if let Some((res, attr)) = name.split_once('.')
                && !name.starts_with("AWS::")
            {
                out.push_str(&self.attribute(res, attr));
            } else {
                out.push_str(&scalar_text(&self.reference(name)));
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn reference(&self, name: &str) -> Value {
        match name {
            "AWS::AccountId" => return Value::from(self.account.as_str()),
            "AWS::Region" => return Value::from(REGION),
            "AWS::Partition" => return Value::from(PARTITION),
            "AWS::URLSuffix" => return Value::from("amazonaws.com"),
            "AWS::StackName" => return Value::from("cutoff"),
            _ => {}
        }
        if let Some(v) = self.params.get(name) {
            return v.clone();
        }
        let resource = self.resource(name);
        let props = &resource["Properties"];
        let prop = |key: &str| scalar_text(&self.resolve(&props[key]));
        Value::String(match resource["Type"].as_str().unwrap() {
            "AWS::SQS::Queue" => format!(
                "https://sqs.{REGION}.amazonaws.com/{}/{}",
                self.account,
                prop("QueueName")
            ),
            "AWS::SNS::Topic" => self.attribute(name, "TopicArn"),
            "AWS::IAM::Role" => prop("RoleName"),
            "AWS::IAM::ManagedPolicy" => format!(
                "arn:{PARTITION}:iam::{}:policy/{}",
                self.account,
                prop("ManagedPolicyName")
            ),
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => prop("FunctionName"),
            "AWS::Events::EventBus" => prop("Name"),
            "AWS::DynamoDB::Table" => prop("TableName"),
            "AWS::Logs::LogGroup" => prop("LogGroupName"),
            "AWS::KMS::Key" => KEY_ID.to_owned(),
            "AWS::Organizations::Policy" => POLICY_ID.to_owned(),
            "AWS::SecurityHub::ActionTarget" => format!(
                "arn:{PARTITION}:securityhub:{REGION}:{}:action/custom/{}",
                self.account,
                prop("Id")
            ),
            other => panic!("the resolver does not know what Ref returns for {other} ({name})"),
        })
    }

    /// `Fn::GetAtt [id, attribute]`: the value the resource would have.
    pub fn attribute(&self, id: &str, attribute: &str) -> String {
        // SAM's function URL resource, generated from FunctionUrlConfig.
        if let Some(function) = id.strip_suffix("Url")
            && attribute == "FunctionUrl"
            && self.template["Resources"][function]["Properties"]["FunctionUrlConfig"].is_object()
        {
            return format!(
                "https://{}.lambda-url.{REGION}.on.aws/",
                function.to_lowercase()
            );
        }
        let resource = self.resource(id);
        let props = &resource["Properties"];
        let prop = |key: &str| scalar_text(&self.resolve(&props[key]));
        let account = &self.account;
        match (resource["Type"].as_str().unwrap(), attribute) {
            ("AWS::SQS::Queue", "Arn") => {
                format!(
                    "arn:{PARTITION}:sqs:{REGION}:{account}:{}",
                    prop("QueueName")
                )
            }
            ("AWS::SQS::Queue", "QueueName") => prop("QueueName"),
            ("AWS::SNS::Topic", "TopicArn") => {
                format!(
                    "arn:{PARTITION}:sns:{REGION}:{account}:{}",
                    prop("TopicName")
                )
            }
            ("AWS::IAM::Role", "Arn") => {
                let path = props["Path"].as_str().unwrap_or("/");
                format!(
                    "arn:{PARTITION}:iam::{account}:role{path}{}",
                    prop("RoleName")
                )
            }
            ("AWS::Serverless::Function" | "AWS::Lambda::Function", "Arn") => format!(
                "arn:{PARTITION}:lambda:{REGION}:{account}:function:{}",
                prop("FunctionName")
            ),
            ("AWS::Events::EventBus", "Arn") => {
                format!(
                    "arn:{PARTITION}:events:{REGION}:{account}:event-bus/{}",
                    prop("Name")
                )
            }
            ("AWS::Events::Rule", "Arn") => {
                let bus = prop("EventBusName");
                let name = prop("Name");
                if bus == "default" {
                    format!("arn:{PARTITION}:events:{REGION}:{account}:rule/{name}")
                } else {
                    format!("arn:{PARTITION}:events:{REGION}:{account}:rule/{bus}/{name}")
                }
            }
            ("AWS::KMS::Key", "Arn") => {
                format!("arn:{PARTITION}:kms:{REGION}:{account}:key/{KEY_ID}")
            }
            // The management account's: the stack is deployed there.
            ("AWS::Organizations::Policy", "Arn") => format!(
                "arn:{PARTITION}:organizations::{account}:policy/{ORGANIZATION_ID}/{}/{POLICY_ID}",
                prop("Type").to_lowercase()
            ),
            ("AWS::Organizations::Policy", "Id") => POLICY_ID.to_owned(),
            ("AWS::CloudWatch::Alarm", "Arn") => {
                format!(
                    "arn:{PARTITION}:cloudwatch:{REGION}:{account}:alarm:{}",
                    prop("AlarmName")
                )
            }
            ("AWS::DynamoDB::Table", "Arn") => {
                format!(
                    "arn:{PARTITION}:dynamodb:{REGION}:{account}:table/{}",
                    prop("TableName")
                )
            }
            (kind, attr) => panic!("the resolver does not know {kind}.{attr} ({id})"),
        }
    }

    /// The ARN of a role, function, queue, bus, key or table of the stack.
    pub fn arn(&self, id: &str) -> String {
        self.attribute(id, "Arn")
    }

    /// The identity policy of a role: every statement of its inline policies and of the
    /// created policies attached to it as resources of their own (`AWS::IAM::RolePolicy`,
    /// `AWS::IAM::Policy`), in one document (IAM evaluates a role's policies together).
    pub fn role_policy(&self, role: &str) -> Value {
        let props = self.properties(role);
        let reference = json!({ "Ref": role });
        let attached: Vec<Value> = ["AWS::IAM::RolePolicy", "AWS::IAM::Policy"]
            .into_iter()
            .flat_map(|kind| self.resources_of_type(kind))
            .filter(|id| {
                let p = &self.resource(id)["Properties"];
                p["RoleName"] == reference || as_list(&p["Roles"]).contains(&reference)
            })
            .map(|id| self.properties(&id))
            .collect();
        let statements: Vec<Value> = props["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(&attached)
            .flat_map(|p| as_list(&p["PolicyDocument"]["Statement"]))
            .collect();
        assert!(!statements.is_empty(), "{role} has no inline policy");
        json!({"Version": "2012-10-17", "Statement": statements})
    }

    /// A role's trust policy.
    pub fn trust_policy(&self, role: &str) -> Value {
        self.properties(role)["AssumeRolePolicyDocument"].clone()
    }

    /// The resource policy Lambda builds for `function` from the stack's
    /// AWS::Lambda::Permission resources, one statement each, written as Lambda writes
    /// them (AddPermission): the principal (an account id becomes its root), the action,
    /// the function's ARN, and a condition per restricting property.
    pub fn lambda_policy(&self, function: &str) -> Value {
        let name = scalar_text(&self.reference(function));
        let arn = self.arn(function);
        let mut statements = Vec::new();
        for id in self.resources_of_type("AWS::Lambda::Permission") {
            let p = self.properties(&id);
            let target = scalar_text(&p["FunctionName"]);
            if target != name && target != arn {
                continue;
            }
            let principal = scalar_text(&p["Principal"]);
            let principal =
                if principal.len() == 12 && principal.chars().all(|c| c.is_ascii_digit()) {
                    json!({"AWS": format!("arn:{PARTITION}:iam::{principal}:root")})
                } else if principal.starts_with("arn:") {
                    json!({"AWS": principal})
                } else {
                    json!({"Service": principal})
                };
            let mut condition = Map::new();
            let mut add = |operator: &str, key: &str, value: Value| {
                condition
                    .entry(operator)
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .unwrap()
                    .insert(key.to_owned(), value);
            };
            if let Some(v) = p["FunctionUrlAuthType"].as_str() {
                add("StringEquals", "lambda:FunctionUrlAuthType", Value::from(v));
            }
            if p["InvokedViaFunctionUrl"] == true || p["InvokedViaFunctionUrl"] == "true" {
                add("Bool", "lambda:InvokedViaFunctionUrl", Value::from("true"));
            }
            if let Some(v) = p["SourceArn"].as_str() {
                add("ArnLike", "AWS:SourceArn", Value::from(v));
            }
            if let Some(v) = p["SourceAccount"].as_str() {
                add("StringEquals", "AWS:SourceAccount", Value::from(v));
            }
            if let Some(v) = p["PrincipalOrgID"].as_str() {
                add("StringEquals", "aws:PrincipalOrgID", Value::from(v));
            }
            let mut statement = json!({
                "Sid": id, "Effect": "Allow", "Principal": principal,
                "Action": p["Action"], "Resource": arn,
            });
            if !condition.is_empty() {
                statement["Condition"] = Value::Object(condition);
            }
            statements.push(statement);
        }
        json!({"Version": "2012-10-17", "Statement": statements})
    }
}

/// `{"Fn::X": args}` → ("Fn::X", args).
fn single(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (k, v) = map.iter().next()?;
    Some((k.as_str(), v))
}

/// A resolved scalar as CloudFormation passes it on: text.
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, got {other}"),
    }
}

pub fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}
