//! An independent IAM policy evaluator: the oracle for "this document really denies a
//! session issued before the cutoff and allows one issued after".
//!
//! It is not cutoff's code: `tests/evaluator/evaluate.mjs` runs
//! `@cloud-copilot/iam-simulate` (pinned in the root `package.json`, installed by
//! `make tools` into `node_modules/`) on the policies of a request: the principal's
//! identity policies and, when given, the resource's own policy (a queue, topic, bus, key
//! or function policy, or a role's trust policy) and SCPs (no session policies or
//! permission boundaries), in the library's strict mode: a context key that is not given
//! is absent, as it is for a long-term access key that has no `aws:TokenIssueTime`.
//! [`EvalRequest::derive_context`] adds the keys AWS itself puts in every request
//! (`aws:PrincipalArn`, `aws:PrincipalServiceName`, `aws:ResourceAccount`, …), which the
//! library does not fill in.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One request to evaluate.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRequest {
    /// The principal's identity policies: documents as JSON strings or values.
    pub identity_policies: Vec<Value>,
    /// `service:Action`, e.g. `s3:GetObject`.
    pub action: String,
    /// The resource ARN. It must fit the action (the library checks).
    pub resource: String,
    /// The principal: an IAM role or user ARN, an account root ARN, a role session
    /// (`arn:aws:sts::123456789012:assumed-role/Role/session`) or a service principal
    /// (`cloudwatch.amazonaws.com`).
    pub principal: String,
    /// Request context: `aws:TokenIssueTime`, `aws:userid`, `aws:CurrentTime`, … A value
    /// is a string or an array of strings.
    pub context: BTreeMap<String, Value>,
    /// Account owning the resource; by default the one in the resource ARN, else the
    /// principal's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_account: Option<String>,
    /// The resource's own policy (queue, topic, bus, key or function policy, or a role's
    /// trust policy), evaluated as the service does for same- and cross-account requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<Value>,
    /// SCPs of the principal's account, attached at one level with FullAWSAccess.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_control_policies: Vec<Value>,
    /// Add the context keys AWS derives from the principal and the resource
    /// (`evaluate.mjs` lists them); keys set with [`EvalRequest::context`] win.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub derive_context: bool,
}

impl EvalRequest {
    /// A request with no policies and an empty context.
    pub fn new(action: &str, resource: &str, principal: &str) -> EvalRequest {
        EvalRequest {
            identity_policies: Vec::new(),
            action: action.to_owned(),
            resource: resource.to_owned(),
            principal: principal.to_owned(),
            context: BTreeMap::new(),
            resource_account: None,
            resource_policy: None,
            service_control_policies: Vec::new(),
            derive_context: false,
        }
    }

    /// Sets the resource's own policy (a JSON document as text or a value).
    pub fn resource_policy(mut self, policy: impl Into<Value>) -> EvalRequest {
        self.resource_policy = Some(policy.into());
        self
    }

    /// Adds an SCP of the principal's account.
    pub fn scp(mut self, policy: impl Into<Value>) -> EvalRequest {
        self.service_control_policies.push(policy.into());
        self
    }

    /// Sets the account owning the resource (for ARNs without one: IAM roles have it,
    /// S3 buckets do not).
    pub fn resource_account(mut self, account: &str) -> EvalRequest {
        self.resource_account = Some(account.to_owned());
        self
    }

    /// Adds the context keys AWS derives from the principal and the resource:
    /// `aws:PrincipalArn` (a session's role), `aws:PrincipalAccount`, `aws:PrincipalType`,
    /// `aws:PrincipalIsAWSService`, for a service principal `aws:PrincipalServiceName`
    /// instead of the ARN, and `aws:ResourceAccount`, `aws:SecureTransport`.
    pub fn derive_context(mut self) -> EvalRequest {
        self.derive_context = true;
        self
    }

    /// Adds an identity policy: a JSON document as text (what IAM stores) or a value.
    pub fn policy(mut self, policy: impl Into<Value>) -> EvalRequest {
        self.identity_policies.push(policy.into());
        self
    }

    /// Sets a context key.
    pub fn context(mut self, key: &str, value: impl Into<Value>) -> EvalRequest {
        self.context.insert(key.to_owned(), value.into());
        self
    }
}

/// The evaluator's decision, as iam-simulate names it (its `overallResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Decision {
    Allowed,
    /// A matching Deny statement.
    ExplicitlyDenied,
    /// No matching Allow (and no matching Deny).
    ImplicitlyDenied,
}

/// A statement that decided, as `evaluate.mjs` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StatementRef {
    /// `policy-<i>`: the i-th of [`EvalRequest::identity_policies`]; `resource-policy`;
    /// `scp-<i>`: the i-th of [`EvalRequest::service_control_policies`].
    pub policy: String,
    pub sid: Option<String>,
    /// 1-based position of the statement in its policy, as the library counts.
    pub index: Option<u32>,
}

/// The evaluator's answer.
#[derive(Debug, Clone, Deserialize)]
pub struct EvalResult {
    #[serde(rename = "result")]
    pub decision: Decision,
    /// Deny statements that matched the request.
    pub deny_statements: Vec<StatementRef>,
    /// Allow statements that matched the request.
    pub allow_statements: Vec<StatementRef>,
    /// Context keys the library dropped as not applicable to the action.
    pub ignored_context_keys: Vec<String>,
    /// Condition keys the policies name that the request context lacks (for such a key a
    /// `DateLessThan` does not match: how a long-term key escapes the deny).
    pub absent_condition_keys: Vec<String>,
    /// The context keys [`EvalRequest::derive_context`] added.
    #[serde(default)]
    pub derived_context: BTreeMap<String, Value>,
    /// The library's own analysis, as it returned it (for failure messages).
    pub explanation: Value,
}

impl EvalResult {
    /// Whether the statement with this `Sid` is among the matching denies.
    pub fn denied_by(&self, sid: &str) -> bool {
        self.deny_statements
            .iter()
            .any(|s| s.sid.as_deref() == Some(sid))
    }

    /// Whether the statement with this `Sid` is among the matching allows.
    pub fn allowed_by(&self, sid: &str) -> bool {
        self.allow_statements
            .iter()
            .any(|s| s.sid.as_deref() == Some(sid))
    }
}

/// Evaluates one request. Panics when the evaluator is not installed (run `make tools`)
/// or rejects the request, with the reasons: a policy document that is not JSON or that
/// the library finds invalid, an action or resource it does not know, or a condition
/// operator that does not exist (the library itself would evaluate that as "never
/// matches", so a misspelt deny would pass for one that correctly allows).
pub fn evaluate(request: &EvalRequest) -> EvalResult {
    try_evaluate(request).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`evaluate`], returning the evaluator's rejection as an error instead of
/// panicking: for tests that expect a document to be invalid.
pub fn try_evaluate(request: &EvalRequest) -> Result<EvalResult, String> {
    parse_result(run(
        &serde_json::to_value(request).map_err(|e| e.to_string())?
    )?)
}

/// Evaluates several requests with one start of node (each start costs ~0.2 s). Panics
/// like [`evaluate`].
pub fn evaluate_all(requests: &[EvalRequest]) -> Vec<EvalResult> {
    let input = serde_json::to_value(requests).unwrap();
    let out = run(&input).unwrap_or_else(|e| panic!("{e}"));
    let Value::Array(results) = out else {
        panic!("evaluator answered a batch with a non-array: {out}");
    };
    assert_eq!(results.len(), requests.len(), "one answer per request");
    results
        .into_iter()
        .zip(requests)
        .map(|(result, request)| {
            parse_result(result)
                .unwrap_or_else(|e| panic!("{e}\nrequest: {}", serde_json::json!(request)))
        })
        .collect()
}

fn parse_result(result: Value) -> Result<EvalResult, String> {
    if result.get("result").and_then(Value::as_str) == Some("Error") {
        return Err(format!(
            "the policy evaluator rejected the request: {}",
            result.get("errors").unwrap_or(&Value::Null)
        ));
    }
    serde_json::from_value(result.clone())
        .map_err(|e| format!("unexpected evaluator answer ({e}): {result}"))
}

/// Runs `node tests/evaluator/evaluate.mjs` with `input` on stdin; its stdout as JSON.
fn run(input: &Value) -> Result<Value, String> {
    let root = crate::workspace_root();
    if !root
        .join("node_modules/@cloud-copilot/iam-simulate/package.json")
        .exists()
    {
        panic!(
            "the policy evaluator is not installed in {}: run `make tools` \
             (iam-simulate is installed by the Makefile)",
            root.join("node_modules").display()
        );
    }
    let script: PathBuf = root.join("tests/evaluator/evaluate.mjs");
    let mut child = Command::new("node")
        .arg(&script)
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node (install Node.js, then `make tools`): {e}"));
    let body = serde_json::to_vec(input).unwrap();
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // The script reads all of stdin before writing anything, so this cannot deadlock. A
    // failed write (node died early) shows in its exit status and stderr below.
    let written = stdin.write_all(&body);
    drop(stdin);
    let output = child.wait_with_output();
    let output = output.map_err(|e| format!("waiting for the evaluator: {e}"))?;
    if let Err(e) = written
        && output.status.success()
    {
        return Err(format!("writing to the evaluator: {e}"));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Exit 2 with a JSON answer is a rejection, reported per request; anything else
    // without one is a crash.
    serde_json::from_str(&stdout).map_err(|e| {
        format!(
            "the policy evaluator failed ({}; {e}):\nstdout: {stdout}\nstderr: {stderr}",
            output.status
        )
    })
}
