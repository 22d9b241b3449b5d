//! The in-memory fake of IAM, for unit tests of the workflow.
//!
//! [`FakeIam`] keeps one account's roles, users, policies and keys, returns inline
//! documents URL-encoded as IAM does, enforces the inline size quotas that IAM
//! enforces (and moto does not), logs every call, and fails calls on demand.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::paged::{AuthorizationDetails, DetailsPage};
use super::{
    AccessKeyInfo, AccessKeys, AccountQuotas, AccountSummary, IamPrincipal, InlinePolicies,
    ManagedPolicies, ManagedPolicy, PolicySimulator, PrincipalInfo, Principals,
};
use crate::error::{AwsError, ErrorKind, InjectedFailures, not_found};
use cutoff_domain::policy::{ROLE_INLINE_BUDGET, USER_INLINE_BUDGET, policy_size};
use cutoff_domain::principal::{
    AccessKeyId, Account, IamPath, PrincipalName, PrincipalType, UniqueId,
};

#[derive(Debug, Clone, Default)]
pub struct FakePrincipal {
    pub path: String,
    pub unique_id: String,
    pub tags: Vec<(String, String)>,
    /// Inline policies, raw JSON.
    pub inline: BTreeMap<String, String>,
    pub attached: Vec<String>,
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub account: String,
    pub roles: HashMap<String, FakePrincipal>,
    pub users: HashMap<String, FakePrincipal>,
    pub instance_profiles: HashMap<String, Vec<String>>,
    /// Managed policy ARN → versions (the last is the default).
    pub managed: HashMap<String, Vec<String>>,
    /// (user, key id) → status.
    pub access_keys: HashMap<(String, String), String>,
    /// Users with a console password.
    pub login_profiles: Vec<String>,
    /// (user, SSH public key id), active.
    pub ssh_keys: Vec<(String, String)>,
    /// (user, service name), active service-specific credentials.
    pub service_credentials: Vec<(String, String)>,
    pub summary: AccountSummary,
    /// What the policy simulator answers, by (principal, action, resource); anything
    /// else is allowed.
    pub simulated: HashMap<(String, String, String), cutoff_domain::self_check::Decision>,
    /// What the simulator answers for an attachment, by (principal, the attached
    /// policy's ARN from the `iam:PolicyARN` context); checked before `simulated`.
    pub simulated_attachments: HashMap<(String, String), cutoff_domain::self_check::Decision>,
    /// The context each simulation was given.
    pub simulation_contexts: Vec<Vec<cutoff_domain::self_check::ContextValue>>,
    /// How long each simulation takes (a slow or throttled IAM).
    pub simulation_delay: std::time::Duration,
    /// How long each read of a principal (GetRole, GetUser) takes: IAM's latency.
    pub read_delay: std::time::Duration,
    /// Every call, as the IAM action name.
    pub calls: Vec<&'static str>,
    /// Errors to return, per action, in order.
    pub failures: InjectedFailures,
    /// Documents to return instead of the stored one on the next reads (to simulate
    /// eventual consistency or a concurrent writer), per policy name.
    pub stale_reads: HashMap<String, VecDeque<Option<String>>>,
}

/// One fake account.
#[derive(Debug, Clone)]
pub struct FakeIam(pub Arc<Mutex<FakeState>>);

impl FakeIam {
    pub fn new(account: &str) -> Self {
        Self(Arc::new(Mutex::new(FakeState {
            account: account.to_owned(),
            summary: AccountSummary {
                policies: 0,
                policies_quota: 1500,
                attached_policies_per_role_quota: 10,
                attached_policies_per_user_quota: 10,
            },
            ..FakeState::default()
        })))
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add_role(&self, name: &str, path: &str, tags: &[(&str, &str)]) -> &Self {
        let unique_id = format!("AROA{:0>16}", name.len() * 7919 % 10_000_000);
        self.state().roles.insert(
            name.to_owned(),
            FakePrincipal {
                path: path.to_owned(),
                unique_id,
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..FakePrincipal::default()
            },
        );
        self
    }

    pub fn add_user(&self, name: &str, tags: &[(&str, &str)]) -> &Self {
        self.state().users.insert(
            name.to_owned(),
            FakePrincipal {
                path: "/".to_owned(),
                unique_id: "AIDAFAKEUSERID000001".to_owned(),
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..FakePrincipal::default()
            },
        );
        self
    }

    /// Gives a principal a new unique id, as deleting and recreating it would.
    pub fn recreate(&self, principal: &IamPrincipal, unique_id: &str) -> &Self {
        let mut state = self.state();
        if let Some(p) = state.principal_mut(principal) {
            p.unique_id = unique_id.to_owned();
        }
        drop(state);
        self
    }

    pub fn add_access_key(&self, user: &str, key: &str) -> &Self {
        self.state()
            .access_keys
            .insert((user.to_owned(), key.to_owned()), "Active".to_owned());
        self
    }

    pub fn add_instance_profile(&self, name: &str, roles: &[&str]) -> &Self {
        self.state().instance_profiles.insert(
            name.to_owned(),
            roles.iter().map(|r| r.to_string()).collect(),
        );
        self
    }

    pub fn set_inline(&self, principal: &IamPrincipal, policy: &str, document: &str) {
        let mut state = self.state();
        let p = state.principal_mut(principal).expect("principal exists");
        p.inline.insert(policy.to_owned(), document.to_owned());
    }

    pub fn inline(&self, principal: &IamPrincipal, policy: &str) -> Option<String> {
        let state = self.state();
        state.principal(principal)?.inline.get(policy).cloned()
    }

    pub fn fail(&self, action: &'static str, kinds: &[ErrorKind]) {
        self.state().failures.plan(action, kinds);
    }

    /// The next reads of `policy` return these documents instead of the stored one.
    pub fn stale_reads(&self, policy: &str, docs: &[Option<&str>]) {
        self.state()
            .stale_reads
            .entry(policy.to_owned())
            .or_default()
            .extend(docs.iter().map(|d| d.map(str::to_owned)));
    }

    pub fn calls(&self) -> Vec<&'static str> {
        self.state().calls.clone()
    }

    pub fn writes(&self) -> Vec<&'static str> {
        self.calls()
            .into_iter()
            .filter(|c| {
                ["Get", "List", "Simulate"]
                    .iter()
                    .all(|read| !c.starts_with(read))
            })
            .collect()
    }

    /// How many calls of `action` (an IAM action name) were made.
    pub fn calls_of(&self, action: &str) -> usize {
        self.state().calls.iter().filter(|c| **c == action).count()
    }

    pub fn key_status(&self, user: &str, key: &str) -> Option<String> {
        self.state()
            .access_keys
            .get(&(user.to_owned(), key.to_owned()))
            .cloned()
    }

    fn begin(
        &self,
        action: &'static str,
    ) -> Result<std::sync::MutexGuard<'_, FakeState>, AwsError> {
        let mut state = self.state();
        state.calls.push(action);
        state.failures.take(action, "in the fake")?;
        Ok(state)
    }
}

impl FakeState {
    fn principal(&self, p: &IamPrincipal) -> Option<&FakePrincipal> {
        match p.kind {
            PrincipalType::Role => self.roles.get(p.name.as_str()),
            PrincipalType::User => self.users.get(p.name.as_str()),
        }
    }

    fn principal_mut(&mut self, p: &IamPrincipal) -> Option<&mut FakePrincipal> {
        match p.kind {
            PrincipalType::Role => self.roles.get_mut(p.name.as_str()),
            PrincipalType::User => self.users.get_mut(p.name.as_str()),
        }
    }
}

fn encode(document: &str) -> String {
    utf8_percent_encode(document, NON_ALPHANUMERIC).to_string()
}

fn action(kind: PrincipalType, role: &'static str, user: &'static str) -> &'static str {
    match kind {
        PrincipalType::Role => role,
        PrincipalType::User => user,
    }
}

impl Principals for FakeIam {
    async fn get_principal(&self, principal: &IamPrincipal) -> Result<PrincipalInfo, AwsError> {
        let delay = self.state().read_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let op = action(principal.kind, "GetRole", "GetUser");
        let state = self.begin(op)?;
        let p = state
            .principal(principal)
            .ok_or_else(|| not_found(op, &principal.to_string()))?;
        let kind = principal.kind.as_str();
        Ok(PrincipalInfo {
            principal: principal.clone(),
            path: IamPath::parse(&p.path).expect("fake path"),
            unique_id: UniqueId::parse(&p.unique_id).expect("fake id"),
            arn: format!(
                "arn:aws:iam::{}:{kind}{}{}",
                state.account, p.path, principal.name
            ),
            tags: p.tags.clone(),
        })
    }

    async fn instance_profile_roles(
        &self,
        profile: &PrincipalName,
    ) -> Result<Vec<PrincipalName>, AwsError> {
        let state = self.begin("GetInstanceProfile")?;
        let roles = state
            .instance_profiles
            .get(profile.as_str())
            .ok_or_else(|| not_found("GetInstanceProfile", profile.as_str()))?;
        Ok(roles
            .iter()
            .map(|r| PrincipalName::parse(r).expect("fake role"))
            .collect())
    }
}

impl InlinePolicies for FakeIam {
    async fn get_inline_policy(
        &self,
        principal: &IamPrincipal,
        policy_name: &str,
    ) -> Result<Option<String>, AwsError> {
        let op = action(principal.kind, "GetRolePolicy", "GetUserPolicy");
        let mut state = self.begin(op)?;
        if let Some(stale) = state
            .stale_reads
            .get_mut(policy_name)
            .and_then(VecDeque::pop_front)
        {
            return Ok(stale.map(|d| encode(&d)));
        }
        let p = state
            .principal(principal)
            .ok_or_else(|| not_found(op, &principal.to_string()))?;
        Ok(p.inline.get(policy_name).map(|d| encode(d)))
    }

    async fn list_inline_policies(
        &self,
        principal: &IamPrincipal,
    ) -> Result<Vec<String>, AwsError> {
        let op = action(principal.kind, "ListRolePolicies", "ListUserPolicies");
        let state = self.begin(op)?;
        let p = state
            .principal(principal)
            .ok_or_else(|| not_found(op, &principal.to_string()))?;
        Ok(p.inline.keys().cloned().collect())
    }

    async fn put_inline_policy(
        &self,
        principal: &IamPrincipal,
        policy_name: &str,
        document: &str,
    ) -> Result<(), AwsError> {
        let op = action(principal.kind, "PutRolePolicy", "PutUserPolicy");
        let mut state = self.begin(op)?;
        let limit = match principal.kind {
            PrincipalType::Role => ROLE_INLINE_BUDGET,
            PrincipalType::User => USER_INLINE_BUDGET,
        };
        let p = state
            .principal_mut(principal)
            .ok_or_else(|| not_found(op, &principal.to_string()))?;
        let others: usize = p
            .inline
            .iter()
            .filter(|(name, _)| name.as_str() != policy_name)
            .map(|(_, d)| policy_size(d))
            .sum();
        if others + policy_size(document) > limit {
            return Err(AwsError::new(
                ErrorKind::Quota,
                op,
                principal.to_string(),
                format!("Maximum policy size of {limit} bytes exceeded"),
            ));
        }
        p.inline.insert(policy_name.to_owned(), document.to_owned());
        Ok(())
    }

    async fn delete_inline_policy(
        &self,
        principal: &IamPrincipal,
        policy_name: &str,
    ) -> Result<(), AwsError> {
        let op = action(principal.kind, "DeleteRolePolicy", "DeleteUserPolicy");
        let mut state = self.begin(op)?;
        let p = state
            .principal_mut(principal)
            .ok_or_else(|| not_found(op, &principal.to_string()))?;
        p.inline
            .remove(policy_name)
            .map(|_| ())
            .ok_or_else(|| not_found(op, policy_name))
    }
}

impl ManagedPolicies for FakeIam {
    fn managed_policy_arn(&self, path: &IamPath, name: &str) -> String {
        format!("arn:aws:iam::{}:policy{path}{name}", self.state().account)
    }

    async fn get_managed_policy(&self, arn: &str) -> Result<Option<ManagedPolicy>, AwsError> {
        let state = self.begin("GetPolicy")?;
        Ok(state.managed.get(arn).and_then(|versions| {
            versions.last().map(|d| ManagedPolicy {
                arn: arn.to_owned(),
                document: encode(d),
            })
        }))
    }

    async fn put_managed_policy(
        &self,
        path: &IamPath,
        name: &str,
        document: &str,
    ) -> Result<String, AwsError> {
        let arn = self.managed_policy_arn(path, name);
        let mut state = self.begin("CreatePolicyVersion")?;
        if policy_size(document) > cutoff_domain::policy::MANAGED_POLICY_BUDGET {
            return Err(AwsError::new(
                ErrorKind::Quota,
                "CreatePolicyVersion",
                arn,
                "policy too large",
            ));
        }
        let versions = state.managed.entry(arn.clone()).or_default();
        versions.push(document.to_owned());
        if versions.len() > 5 {
            versions.remove(0);
        }
        Ok(arn)
    }

    async fn delete_managed_policy(&self, arn: &str) -> Result<(), AwsError> {
        let mut state = self.begin("DeletePolicy")?;
        state
            .managed
            .remove(arn)
            .map(|_| ())
            .ok_or_else(|| not_found("DeletePolicy", arn))
    }

    async fn attached_policies(&self, principal: &IamPrincipal) -> Result<Vec<String>, AwsError> {
        let op = action(
            principal.kind,
            "ListAttachedRolePolicies",
            "ListAttachedUserPolicies",
        );
        let state = self.begin(op)?;
        let p = state
            .principal(principal)
            .ok_or_else(|| not_found(op, &principal.to_string()))?;
        Ok(p.attached.clone())
    }

    async fn attach_policy(&self, principal: &IamPrincipal, arn: &str) -> Result<(), AwsError> {
        let op = action(principal.kind, "AttachRolePolicy", "AttachUserPolicy");
        let mut state = self.begin(op)?;
        let p = state
            .principal_mut(principal)
            .ok_or_else(|| not_found(op, &principal.to_string()))?;
        if !p.attached.iter().any(|a| a == arn) {
            p.attached.push(arn.to_owned());
        }
        Ok(())
    }

    async fn detach_policy(&self, principal: &IamPrincipal, arn: &str) -> Result<(), AwsError> {
        let op = action(principal.kind, "DetachRolePolicy", "DetachUserPolicy");
        let mut state = self.begin(op)?;
        let p = state
            .principal_mut(principal)
            .ok_or_else(|| not_found(op, &principal.to_string()))?;
        p.attached.retain(|a| a != arn);
        Ok(())
    }
}

impl AccessKeys for FakeIam {
    async fn list_access_keys(&self, user: &PrincipalName) -> Result<Vec<AccessKeyInfo>, AwsError> {
        let state = self.begin("ListAccessKeys")?;
        if !state.users.contains_key(user.as_str()) {
            return Err(not_found("ListAccessKeys", user.as_str()));
        }
        let mut keys: Vec<AccessKeyInfo> = state
            .access_keys
            .iter()
            .filter(|((u, _), _)| u == user.as_str())
            .map(|((_, k), status)| AccessKeyInfo {
                id: AccessKeyId::parse(k).expect("fake keys are valid"),
                active: status == "Active",
            })
            .collect();
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(keys)
    }

    async fn has_login_profile(&self, user: &PrincipalName) -> Result<bool, AwsError> {
        let state = self.begin("GetLoginProfile")?;
        Ok(state.login_profiles.iter().any(|u| u == user.as_str()))
    }

    async fn active_ssh_public_keys(&self, user: &PrincipalName) -> Result<Vec<String>, AwsError> {
        let state = self.begin("ListSSHPublicKeys")?;
        Ok(state
            .ssh_keys
            .iter()
            .filter(|(u, _)| u == user.as_str())
            .map(|(_, k)| k.clone())
            .collect())
    }

    async fn active_service_credentials(
        &self,
        user: &PrincipalName,
    ) -> Result<Vec<String>, AwsError> {
        let state = self.begin("ListServiceSpecificCredentials")?;
        Ok(state
            .service_credentials
            .iter()
            .filter(|(u, _)| u == user.as_str())
            .map(|(_, s)| s.clone())
            .collect())
    }

    async fn deactivate_access_key(
        &self,
        user: &PrincipalName,
        access_key_id: &AccessKeyId,
    ) -> Result<(), AwsError> {
        let mut state = self.begin("UpdateAccessKey")?;
        let status = state
            .access_keys
            .get_mut(&(user.to_string(), access_key_id.to_string()))
            .ok_or_else(|| not_found("UpdateAccessKey", access_key_id.as_str()))?;
        *status = "Inactive".to_owned();
        Ok(())
    }
}

impl PolicySimulator for FakeIam {
    async fn simulate(
        &self,
        principal_arn: &str,
        action: &str,
        resource: &str,
        context: &[cutoff_domain::self_check::ContextValue],
    ) -> Result<cutoff_domain::self_check::Simulated, AwsError> {
        let delay = self.state().simulation_delay;
        tokio::time::sleep(delay).await;
        let mut state = self.begin("SimulatePrincipalPolicy")?;
        state.simulation_contexts.push(context.to_vec());
        let key = (
            principal_arn.to_owned(),
            action.to_owned(),
            resource.to_owned(),
        );
        let attachment = context
            .iter()
            .find(|c| c.key == "iam:PolicyARN")
            .and_then(|c| {
                state
                    .simulated_attachments
                    .get(&(principal_arn.to_owned(), c.value.clone()))
            });
        Ok(cutoff_domain::self_check::Simulated {
            decision: attachment
                .or_else(|| state.simulated.get(&key))
                .copied()
                .unwrap_or(cutoff_domain::self_check::Decision::Allowed),
            missing_context: Vec::new(),
        })
    }
}

impl AccountQuotas for FakeIam {
    async fn account_summary(&self) -> Result<AccountSummary, AwsError> {
        let state = self.begin("GetAccountSummary")?;
        let mut summary = state.summary;
        summary.policies = summary.policies.max(state.managed.len() as u32);
        Ok(summary)
    }
}

/// The whole account on one page, as moto answers (IAM would page).
impl AuthorizationDetails for FakeIam {
    async fn page(&self, _marker: Option<&str>) -> Result<DetailsPage, AwsError> {
        use cutoff_domain::sweep_rules::PrincipalSnapshot;
        let state = self.begin("GetAccountAuthorizationDetails")?;
        let snapshot = |kind: PrincipalType, name: &str, p: &FakePrincipal| {
            Some(PrincipalSnapshot {
                account: Account::parse(&state.account).ok()?,
                kind,
                name: PrincipalName::parse(name).ok()?,
                path: IamPath::parse(&p.path).ok()?,
                unique_id: UniqueId::parse(&p.unique_id).ok()?,
                tags: p.tags.clone(),
                inline: p
                    .inline
                    .iter()
                    .map(|(n, d)| (n.clone(), encode(d)))
                    .collect(),
                attached: p.attached.clone(),
                managed_documents: Vec::new(),
            })
        };
        let mut principals: Vec<PrincipalSnapshot> = state
            .roles
            .iter()
            .filter_map(|(n, p)| snapshot(PrincipalType::Role, n, p))
            .chain(
                state
                    .users
                    .iter()
                    .filter_map(|(n, p)| snapshot(PrincipalType::User, n, p)),
            )
            .collect();
        principals.sort_by(|a, b| (a.kind.as_str(), &a.name).cmp(&(b.kind.as_str(), &b.name)));
        let managed_documents = state
            .managed
            .iter()
            .filter_map(|(arn, versions)| Some((arn.clone(), encode(versions.last()?))))
            .collect();
        Ok(DetailsPage {
            principals,
            managed_documents,
            next_marker: None,
        })
    }
}
