//! The revoker's self-check (`cutoff doctor`): can it still do its job in each account?
//!
//! Member accounts are out of the operator's reach (only the revoker and the sweeper
//! may assume the member role), so the revoker checks for them. In each account it
//! assumes the member role, which proves the trust policy and the ExternalId, and asks
//! AWS's own policy simulator (`iam:SimulatePrincipalPolicy` on the role it acts with)
//! whether that role may write the deny on a sample principal and may not touch
//! cutoff's own role. The simulator evaluates the role's policies with its permissions
//! boundary and the organization's SCPs, which no local test can see.
//!
//! This module is the pure part: what to ask, and how to judge the answers.

use serde::{Deserialize, Serialize};

use crate::principal::{Account, Partition};

/// The most accounts one self-check covers (each costs an AssumeRole and a few
/// simulations, inside the revoker's 90-second timeout).
pub const MAX_ACCOUNTS: usize = 25;

/// The principal the probes name: it need not exist (the simulator evaluates the ARN).
pub const SAMPLE_NAME: &str = "cutoff-doctor-sample";

/// What AWS must decide for a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    Allowed,
    Denied,
}

impl Expected {
    /// As the answer spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Expected::Allowed => "allowed",
            Expected::Denied => "denied",
        }
    }
}

/// The policy simulator's decision (`EvalDecision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allowed,
    ImplicitDeny,
    ExplicitDeny,
}

impl Decision {
    /// As the answer spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::ImplicitDeny => "implicit_deny",
            Decision::ExplicitDeny => "explicit_deny",
        }
    }
}

/// One request-context value the simulator is given, as a real call would carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextValue {
    pub key: &'static str,
    pub value: String,
    /// A boolean key (`aws:SecureTransport`); the rest are strings.
    pub boolean: bool,
}

/// The context a revocation's IAM call carries, for the simulator: without it, an SCP
/// conditioned on these keys would be judged on absent keys (a Deny on
/// `aws:RequestedRegion` would not match, an exemption by `aws:PrincipalArn` would not
/// apply), and the answer would not be the one a real call gets.
pub fn call_context(
    partition: Partition,
    account: &Account,
    acting_role_arn: &str,
    organization: Option<&str>,
) -> Vec<ContextValue> {
    let string = |key, value: &str| ContextValue {
        key,
        value: value.to_owned(),
        boolean: false,
    };
    let mut context = vec![
        string("aws:PrincipalArn", acting_role_arn),
        string("aws:PrincipalAccount", account.as_str()),
        ContextValue {
            key: "aws:SecureTransport",
            value: "true".to_owned(),
            boolean: true,
        },
    ];
    // IAM is global: its calls are signed for the partition's IAM region.
    let iam_region = match partition {
        Partition::Aws => Some("us-east-1"),
        Partition::AwsCn => Some("cn-north-1"),
        Partition::AwsUsGov => Some("us-gov-west-1"),
        _ => None,
    };
    if let Some(region) = iam_region {
        context.push(string("aws:RequestedRegion", region));
    }
    if let Some(org) = organization {
        context.push(string("aws:PrincipalOrgID", org));
    }
    context
}

/// The simulator's answer to one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulated {
    pub decision: Decision,
    /// Context keys a policy in force conditions on that the probe did not give: the
    /// decision may differ from a real call's.
    pub missing_context: Vec<String>,
}

/// One question for the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub action: &'static str,
    pub resource: String,
    pub expected: Expected,
    pub why: &'static str,
    /// Context the action itself carries (the policy an attachment names).
    pub context: Vec<ContextValue>,
}

/// The probes for an account whose IAM cutoff reaches as `acting_role_arn` (the member
/// role, or the revoker's own role at home): the writes a revocation makes on a sample
/// role and user must be allowed, the managed fallback (under `fallback_path`) included;
/// writing to the acting role itself, attaching any other policy, and deleting a key
/// (evidence), must be denied.
pub fn probes(
    partition: Partition,
    account: &Account,
    acting_role_arn: &str,
    fallback_path: &str,
) -> Vec<Probe> {
    let role = format!("arn:{partition}:iam::{account}:role/{SAMPLE_NAME}");
    let user = format!("arn:{partition}:iam::{account}:user/{SAMPLE_NAME}");
    let fallback = format!(
        "arn:{partition}:iam::{account}:policy{fallback_path}cutoff-revoke-role-{SAMPLE_NAME}"
    );
    let admin = format!("arn:{partition}:iam::aws:policy/AdministratorAccess");
    let allowed = |action, resource: &str, why| Probe {
        action,
        resource: resource.to_owned(),
        expected: Expected::Allowed,
        why,
        context: Vec::new(),
    };
    let denied = |action, resource: &str, why| Probe {
        action,
        resource: resource.to_owned(),
        expected: Expected::Denied,
        why,
        context: Vec::new(),
    };
    let naming = |mut probe: Probe, policy: &str| {
        probe.context.push(ContextValue {
            key: "iam:PolicyARN",
            value: policy.to_owned(),
            boolean: false,
        });
        probe
    };
    vec![
        allowed(
            "iam:PutRolePolicy",
            &role,
            "the deny cutoff writes on a revoked role",
        ),
        allowed(
            "iam:GetRolePolicy",
            &role,
            "reading the deny back to verify it",
        ),
        allowed(
            "iam:DeleteRolePolicy",
            &role,
            "removing an expired or released deny",
        ),
        allowed(
            "iam:PutUserPolicy",
            &user,
            "the deny cutoff writes on a revoked user",
        ),
        allowed(
            "iam:UpdateAccessKey",
            &user,
            "deactivating a stolen long-term key",
        ),
        denied(
            "iam:DeleteAccessKey",
            &user,
            "a stolen key is deactivated, never deleted (evidence)",
        ),
        denied(
            "iam:PutRolePolicy",
            acting_role_arn,
            "cutoff must not be able to lock itself out",
        ),
        allowed(
            "iam:CreatePolicy",
            &fallback,
            "the managed fallback deny, when a role's inline policies are full",
        ),
        naming(
            allowed("iam:AttachRolePolicy", &role, "attaching the fallback deny"),
            &fallback,
        ),
        naming(
            denied(
                "iam:AttachRolePolicy",
                &role,
                "cutoff must not be able to grant anything (only its own deny attaches)",
            ),
            &admin,
        ),
    ]
}

/// One probe and AWS's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub action: String,
    pub resource: String,
    pub expected: Expected,
    /// None when the simulator could not be asked (see `error`).
    pub decision: Option<Decision>,
    pub passed: bool,
    pub why: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Context keys the simulator said it lacked (see [`Simulated`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_context: Vec<String>,
}

/// Judges a probe: an allowed probe passes only when allowed, a denied one on either
/// kind of deny; a probe the simulator did not answer fails.
pub fn judge(probe: &Probe, answer: Result<Simulated, String>) -> ProbeResult {
    let (decision, error, missing_context) = match answer {
        Ok(s) => (Some(s.decision), None, s.missing_context),
        Err(e) => (None, Some(e), Vec::new()),
    };
    let passed = matches!(
        (probe.expected, decision),
        (Expected::Allowed, Some(Decision::Allowed))
            | (
                Expected::Denied,
                Some(Decision::ImplicitDeny | Decision::ExplicitDeny)
            )
    );
    ProbeResult {
        action: probe.action.to_owned(),
        resource: probe.resource.clone(),
        expected: probe.expected,
        decision,
        passed,
        why: probe.why.to_owned(),
        error,
        missing_context,
    }
}

/// Why an account was not probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unreachable {
    /// Not among the accounts cutoff may act in: never called.
    OutOfScope,
    /// The member role could not be assumed.
    NotAssumed,
    /// The home account, but the revoker does not know its own role.
    NoOwnRole,
    /// Not reached before the time budget ran out ([`TIME_BUDGET`]).
    OutOfTime,
}

/// How long a self-check may take before it stops starting accounts: the revoker's
/// timeout is 90 seconds, and an answer with the rest marked unchecked beats none.
pub const TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

/// One account's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCheck {
    pub account: String,
    pub passed: bool,
    /// The account was reached: the member role assumed (at home, the revoker's own
    /// role is used, and this is true).
    pub assumed: bool,
    /// Why the account could not be checked (no probe was asked).
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<Unreachable>,
    pub probes: Vec<ProbeResult>,
}

impl AccountCheck {
    /// An account that could not be reached or asked.
    pub fn unreachable(account: &Account, why: Unreachable, error: String) -> Self {
        Self {
            account: account.to_string(),
            passed: false,
            assumed: why == Unreachable::NoOwnRole,
            error: Some(error),
            unreachable: Some(why),
            probes: Vec::new(),
        }
    }

    pub fn probed(account: &Account, assumed: bool, probes: Vec<ProbeResult>) -> Self {
        Self {
            account: account.to_string(),
            passed: !probes.is_empty() && probes.iter().all(|p| p.passed),
            assumed,
            error: None,
            unreachable: None,
            probes,
        }
    }
}

/// The answer to a self-check request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfCheckReport {
    pub passed: bool,
    pub member_role: String,
    pub accounts: Vec<AccountCheck>,
}

impl SelfCheckReport {
    pub fn new(member_role: &str, accounts: Vec<AccountCheck>) -> Self {
        Self {
            passed: !accounts.is_empty() && accounts.iter().all(|a| a.passed),
            member_role: member_role.to_owned(),
            accounts,
        }
    }
}

/// A self-check request: `{"action": "self_check", "accounts": ["444455556666", ...]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfCheckRequest {
    pub accounts: Vec<Account>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    action: String,
    accounts: Vec<String>,
}

/// Whether a body asks for a self-check (and must then be read as one).
pub fn is_self_check(body: &serde_json::Value) -> bool {
    body.get("action").and_then(serde_json::Value::as_str) == Some("self_check")
}

impl SelfCheckRequest {
    /// Reads a self-check body strictly: no other field, 1 to [`MAX_ACCOUNTS`]
    /// distinct valid account ids.
    pub fn parse(body: serde_json::Value) -> Result<Self, String> {
        let raw: RawRequest =
            serde_json::from_value(body).map_err(|e| format!("a self-check request: {e}"))?;
        if raw.action != "self_check" {
            return Err(format!(
                "a self-check request has action self_check, not {}",
                crate::principal::excerpt(&raw.action)
            ));
        }
        if raw.accounts.is_empty() || raw.accounts.len() > MAX_ACCOUNTS {
            return Err(format!(
                "a self-check names 1 to {MAX_ACCOUNTS} accounts, not {}",
                raw.accounts.len()
            ));
        }
        let mut accounts: Vec<Account> = Vec::with_capacity(raw.accounts.len());
        for text in &raw.accounts {
            let account = Account::parse(text).map_err(|e| e.to_string())?;
            if accounts.contains(&account) {
                return Err(format!("account {account} is named twice"));
            }
            accounts.push(account);
        }
        Ok(Self { accounts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn account() -> Account {
        Account::parse("444455556666").unwrap()
    }

    #[test]
    fn the_probes_ask_for_the_writes_a_revocation_makes_and_against_self_harm() {
        let member = "arn:aws:iam::444455556666:role/cutoff-member";
        let probes = probes(Partition::Aws, &account(), member, "/cutoff/");
        let allowed: Vec<(&str, &str)> = probes
            .iter()
            .filter(|p| p.expected == Expected::Allowed)
            .map(|p| (p.action, p.resource.as_str()))
            .collect();
        assert_eq!(
            allowed,
            [
                (
                    "iam:PutRolePolicy",
                    "arn:aws:iam::444455556666:role/cutoff-doctor-sample"
                ),
                (
                    "iam:GetRolePolicy",
                    "arn:aws:iam::444455556666:role/cutoff-doctor-sample"
                ),
                (
                    "iam:DeleteRolePolicy",
                    "arn:aws:iam::444455556666:role/cutoff-doctor-sample"
                ),
                (
                    "iam:PutUserPolicy",
                    "arn:aws:iam::444455556666:user/cutoff-doctor-sample"
                ),
                (
                    "iam:UpdateAccessKey",
                    "arn:aws:iam::444455556666:user/cutoff-doctor-sample"
                ),
                (
                    "iam:CreatePolicy",
                    "arn:aws:iam::444455556666:policy/cutoff/cutoff-revoke-role-cutoff-doctor-sample"
                ),
                (
                    "iam:AttachRolePolicy",
                    "arn:aws:iam::444455556666:role/cutoff-doctor-sample"
                ),
            ]
        );
        let denied: Vec<(&str, &str)> = probes
            .iter()
            .filter(|p| p.expected == Expected::Denied)
            .map(|p| (p.action, p.resource.as_str()))
            .collect();
        assert_eq!(
            denied,
            [
                (
                    "iam:DeleteAccessKey",
                    "arn:aws:iam::444455556666:user/cutoff-doctor-sample"
                ),
                ("iam:PutRolePolicy", member),
                (
                    "iam:AttachRolePolicy",
                    "arn:aws:iam::444455556666:role/cutoff-doctor-sample"
                ),
            ]
        );
        // The two attachments differ by the policy they name: cutoff's own fallback
        // may be attached, AWS's AdministratorAccess may not.
        let attached: Vec<(&Expected, &str)> = probes
            .iter()
            .filter(|p| p.action == "iam:AttachRolePolicy")
            .map(|p| {
                let policy = p.context.iter().find(|c| c.key == "iam:PolicyARN").unwrap();
                (&p.expected, policy.value.as_str())
            })
            .collect();
        assert_eq!(
            attached,
            [
                (
                    &Expected::Allowed,
                    "arn:aws:iam::444455556666:policy/cutoff/cutoff-revoke-role-cutoff-doctor-sample"
                ),
                (
                    &Expected::Denied,
                    "arn:aws:iam::aws:policy/AdministratorAccess"
                ),
            ]
        );
        let gov = probes_in(Partition::AwsUsGov);
        assert!(
            gov.iter()
                .all(|p| p.resource.starts_with("arn:aws-us-gov:"))
        );
    }

    #[test]
    fn the_names_are_the_ones_serde_writes() {
        for d in [
            Decision::Allowed,
            Decision::ImplicitDeny,
            Decision::ExplicitDeny,
        ] {
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        }
        for e in [Expected::Allowed, Expected::Denied] {
            assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
        }
    }

    fn sim(decision: Decision) -> Simulated {
        Simulated {
            decision,
            missing_context: Vec::new(),
        }
    }

    #[test]
    fn the_simulator_is_given_the_context_a_real_call_carries() {
        let role = "arn:aws:iam::444455556666:role/cutoff-member";
        let keys = |context: Vec<ContextValue>| -> Vec<(&'static str, String)> {
            context.into_iter().map(|c| (c.key, c.value)).collect()
        };
        assert_eq!(
            keys(call_context(
                Partition::Aws,
                &account(),
                role,
                Some("o-a1b2c3d4e5")
            )),
            [
                ("aws:PrincipalArn", role.to_owned()),
                ("aws:PrincipalAccount", "444455556666".to_owned()),
                ("aws:SecureTransport", "true".to_owned()),
                ("aws:RequestedRegion", "us-east-1".to_owned()),
                ("aws:PrincipalOrgID", "o-a1b2c3d4e5".to_owned()),
            ]
        );
        let gov = keys(call_context(Partition::AwsUsGov, &account(), role, None));
        assert!(gov.contains(&("aws:RequestedRegion", "us-gov-west-1".to_owned())));
        assert!(!gov.iter().any(|(k, _)| *k == "aws:PrincipalOrgID"));
        // A probe whose answer lacked context says so, whatever it decided.
        let probe = &probes_in(Partition::Aws)[0];
        let result = judge(
            probe,
            Ok(Simulated {
                decision: Decision::Allowed,
                missing_context: vec!["aws:PrincipalTag/team".to_owned()],
            }),
        );
        assert!(result.passed);
        assert_eq!(result.missing_context, ["aws:PrincipalTag/team"]);
    }

    fn probes_in(partition: Partition) -> Vec<Probe> {
        probes(
            partition,
            &account(),
            &format!("arn:{partition}:iam::444455556666:role/m"),
            "/cutoff/",
        )
    }

    #[test]
    fn a_probe_passes_only_on_the_decision_it_expects() {
        let probes = probes_in(Partition::Aws);
        let allow = &probes[0];
        let deny = probes.last().unwrap();
        assert!(judge(allow, Ok(sim(Decision::Allowed))).passed);
        assert!(!judge(allow, Ok(sim(Decision::ImplicitDeny))).passed);
        assert!(!judge(allow, Ok(sim(Decision::ExplicitDeny))).passed);
        assert!(judge(deny, Ok(sim(Decision::ExplicitDeny))).passed);
        assert!(judge(deny, Ok(sim(Decision::ImplicitDeny))).passed);
        assert!(!judge(deny, Ok(sim(Decision::Allowed))).passed);
        // An unanswered probe fails either way, and says why.
        for probe in [allow, deny] {
            let result = judge(probe, Err("AccessDenied".to_owned()));
            assert!(!result.passed);
            assert_eq!(result.decision, None);
            assert_eq!(result.error.as_deref(), Some("AccessDenied"));
        }
    }

    #[test]
    fn an_account_passes_only_when_every_probe_does_and_the_report_only_when_every_account_does() {
        let probes = probes_in(Partition::Aws);
        let good: Vec<ProbeResult> = probes
            .iter()
            .map(|p| {
                judge(
                    p,
                    Ok(sim(match p.expected {
                        Expected::Allowed => Decision::Allowed,
                        Expected::Denied => Decision::ExplicitDeny,
                    })),
                )
            })
            .collect();
        let mut bad = good.clone();
        bad[0] = judge(&probes[0], Ok(sim(Decision::ExplicitDeny)));
        let ok = AccountCheck::probed(&account(), true, good);
        let failed = AccountCheck::probed(&account(), true, bad);
        assert!(ok.passed);
        assert!(!failed.passed);
        assert!(!AccountCheck::probed(&account(), true, Vec::new()).passed);
        let unreachable =
            AccountCheck::unreachable(&account(), Unreachable::NotAssumed, "AccessDenied".into());
        assert!(!unreachable.passed);
        assert!(SelfCheckReport::new("cutoff-member", vec![ok.clone()]).passed);
        assert!(!SelfCheckReport::new("cutoff-member", vec![ok.clone(), failed]).passed);
        assert!(!SelfCheckReport::new("cutoff-member", vec![ok, unreachable]).passed);
        assert!(!SelfCheckReport::new("cutoff-member", Vec::new()).passed);
    }

    #[test]
    fn a_self_check_request_is_read_strictly() {
        let ok = SelfCheckRequest::parse(
            json!({"action": "self_check", "accounts": ["444455556666", "555566667777"]}),
        )
        .unwrap();
        assert_eq!(ok.accounts.len(), 2);
        for bad in [
            json!({"action": "self_check"}),
            json!({"action": "self_check", "accounts": []}),
            json!({"action": "self_check", "accounts": ["44445555666"]}),
            json!({"action": "self_check", "accounts": ["444455556666", "444455556666"]}),
            json!({"action": "self_check", "accounts": ["444455556666"], "force": true}),
            json!({"action": "revoke", "accounts": ["444455556666"]}),
            json!({"action": "self_check", "accounts": "444455556666"}),
            json!({"action": "self_check", "accounts": vec!["444455556666"; MAX_ACCOUNTS + 1]}),
        ] {
            assert!(SelfCheckRequest::parse(bad.clone()).is_err(), "{bad}");
        }
        assert!(is_self_check(&json!({"action": "self_check"})));
        assert!(!is_self_check(&json!({"action": "revoke"})));
    }
}
