//! In-memory fakes of the AWS traits, for unit tests of the workflow.
//!
//! [`FakeIam`] keeps one account's roles, users, policies and keys, returns inline
//! documents URL-encoded as IAM does, enforces the inline size quotas that IAM
//! enforces (and moto does not), logs every call, and fails calls on demand.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::retry::CallCounter;
use super::{
    AccessKeys, AccountAccess, AccountQuotas, AccountSummary, AwsError, ErrorKind, IamPrincipal,
    InlinePolicies, ManagedPolicies, ManagedPolicy, PrincipalInfo, PrincipalType, Principals,
};
use cutoff_domain::policy::{ROLE_INLINE_BUDGET, USER_INLINE_BUDGET, policy_size};
use cutoff_domain::principal::{AccessKeyId, Account, IamPath, PrincipalName, UniqueId};

/// Failures to inject, per action, in the order they are to happen; shared by the
/// fakes.
#[derive(Debug, Default)]
pub struct InjectedFailures(HashMap<&'static str, VecDeque<ErrorKind>>);

impl InjectedFailures {
    /// The next calls of `action` fail with `kinds`, one each, in order.
    pub fn plan(&mut self, action: &'static str, kinds: &[ErrorKind]) {
        self.0
            .entry(action)
            .or_default()
            .extend(kinds.iter().copied());
    }

    /// The failure planned for this call of `action`, if any (`context` says where).
    fn take(&mut self, action: &'static str, context: &str) -> Result<(), AwsError> {
        match self.0.get_mut(action).and_then(VecDeque::pop_front) {
            Some(kind) => Err(AwsError::new(kind, action, context, "injected failure")),
            None => Ok(()),
        }
    }
}

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

fn not_found(action: &'static str, what: &str) -> AwsError {
    AwsError::new(ErrorKind::NotFound, action, what.to_owned(), "not found")
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
    async fn list_access_keys(
        &self,
        user: &PrincipalName,
    ) -> Result<Vec<super::AccessKeyInfo>, AwsError> {
        let state = self.begin("ListAccessKeys")?;
        if !state.users.contains_key(user.as_str()) {
            return Err(not_found("ListAccessKeys", user.as_str()));
        }
        let mut keys: Vec<super::AccessKeyInfo> = state
            .access_keys
            .iter()
            .filter(|((u, _), _)| u == user.as_str())
            .map(|((_, k), status)| super::AccessKeyInfo {
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

impl super::PolicySimulator for FakeIam {
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

/// Fake accounts; records which accounts were reached through the member role.
#[derive(Debug, Clone)]
pub struct FakeAccess {
    pub home: Account,
    pub accounts: Arc<Mutex<HashMap<String, FakeIam>>>,
    pub assumed: Arc<Mutex<Vec<String>>>,
    /// Errors for the next AssumeRole calls.
    pub assume_failures: Arc<Mutex<VecDeque<ErrorKind>>>,
}

impl FakeAccess {
    pub fn new(home: &str) -> Self {
        Self {
            home: Account::parse(home).expect("a valid home account"),
            accounts: Arc::default(),
            assumed: Arc::default(),
            assume_failures: Arc::default(),
        }
    }

    /// The fake for `account`, created on first use.
    pub fn account(&self, account: &str) -> FakeIam {
        self.accounts
            .lock()
            .unwrap()
            .entry(account.to_owned())
            .or_insert_with(|| FakeIam::new(account))
            .clone()
    }
}

impl AccountAccess for FakeAccess {
    type Client = FakeIam;

    fn home(&self) -> &Account {
        &self.home
    }

    async fn client_for(
        &self,
        account: &Account,
        _request_id: &str,
        calls: &CallCounter,
    ) -> Result<FakeIam, AwsError> {
        if &self.home != account {
            calls.add(1);
            if let Some(kind) = self.assume_failures.lock().unwrap().pop_front() {
                return Err(AwsError::new(
                    kind,
                    "sts:AssumeRole",
                    account.to_string(),
                    "injected failure",
                ));
            }
            self.assumed.lock().unwrap().push(account.to_string());
        }
        Ok(self.account(account.as_str()))
    }
}

/// Records queue messages, published outcomes, SNS messages and finding updates;
/// fails the next calls on demand.
#[derive(Debug, Clone, Default)]
pub struct FakeMessaging(pub Arc<Mutex<MessagingState>>);

#[derive(Debug, Default)]
pub struct MessagingState {
    /// (body, group id, deduplication id)
    pub queued: Vec<(String, String, String)>,
    pub outcomes: Vec<cutoff_domain::outcome::Outcome>,
    /// (topic, message)
    pub published: Vec<(String, cutoff_domain::notify::SnsMessage)>,
    /// (finding id, product arn, status, note)
    pub finding_updates: Vec<(String, String, super::WorkflowStatus, String)>,
    pub failures: InjectedFailures,
    /// SNS topics that refuse every publish (AccessDenied), as a topic outside the
    /// publisher's permissions does.
    pub refusing_topics: Vec<String>,
    /// Sweep tasks sent, summaries published, the Organization's accounts.
    pub sweep_tasks: Vec<super::sweep_io::SweepTask>,
    pub summaries: Vec<cutoff_domain::summary::SweepSummary>,
    pub organization: Vec<Account>,
    /// Sweep runs: run → (run, done, summary claimant); (run, account) → record.
    pub runs: HashMap<String, (super::sweep_io::SweepRun, u64, Option<String>)>,
    pub records: BTreeMap<(String, String), cutoff_domain::summary::AccountRecord>,
}

impl FakeMessaging {
    pub fn state(&self) -> std::sync::MutexGuard<'_, MessagingState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fail(&self, action: &'static str, kinds: &[ErrorKind]) {
        self.state().failures.plan(action, kinds);
    }

    fn begin(
        &self,
        action: &'static str,
    ) -> Result<std::sync::MutexGuard<'_, MessagingState>, AwsError> {
        let mut state = self.state();
        state.failures.take(action, "in the fake")?;
        Ok(state)
    }
}

impl super::RequestQueue for FakeMessaging {
    async fn send(
        &self,
        body: &str,
        group_id: &str,
        deduplication_id: &str,
    ) -> Result<(), AwsError> {
        let mut state = self.begin("SendMessage")?;
        // SQS FIFO drops a message whose deduplication id it has seen (five minutes).
        if !state.queued.iter().any(|(_, _, d)| d == deduplication_id) {
            state.queued.push((
                body.to_owned(),
                group_id.to_owned(),
                deduplication_id.to_owned(),
            ));
        }
        Ok(())
    }
}

impl super::OutcomeBus for FakeMessaging {
    async fn publish(&self, outcomes: &[cutoff_domain::outcome::Outcome]) -> Result<(), AwsError> {
        let mut state = self.begin("PutEvents")?;
        state.outcomes.extend(outcomes.iter().cloned());
        Ok(())
    }
}

impl super::Notifications for FakeMessaging {
    async fn publish(
        &self,
        topic_arn: &str,
        message: &cutoff_domain::notify::SnsMessage,
    ) -> Result<String, AwsError> {
        let mut state = self.begin("Publish")?;
        if state.refusing_topics.iter().any(|t| t == topic_arn) {
            return Err(AwsError::new(
                ErrorKind::AccessDenied,
                "sns:Publish",
                topic_arn.to_owned(),
                "not authorized",
            ));
        }
        state
            .published
            .push((topic_arn.to_owned(), message.clone()));
        Ok(format!("msg-{}", state.published.len()))
    }
}

impl super::FindingsUpdater for FakeMessaging {
    async fn update_finding(
        &self,
        finding_id: &str,
        product_arn: &str,
        status: super::WorkflowStatus,
        note: &str,
    ) -> Result<(), AwsError> {
        let mut state = self.begin("BatchUpdateFindings")?;
        state.finding_updates.push((
            finding_id.to_owned(),
            product_arn.to_owned(),
            status,
            note.to_owned(),
        ));
        Ok(())
    }
}

/// The whole account on one page, as moto answers (IAM would page).
impl super::authz::AuthorizationDetails for FakeIam {
    async fn page(&self, _marker: Option<&str>) -> Result<super::authz::DetailsPage, AwsError> {
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
        Ok(super::authz::DetailsPage {
            principals,
            managed_documents,
            next_marker: None,
        })
    }
}

impl super::sweep_io::AccountDirectory for FakeMessaging {
    async fn active_accounts(&self) -> Result<Vec<Account>, AwsError> {
        Ok(self.begin("ListAccounts")?.organization.clone())
    }
}

impl super::sweep_io::SweepTasks for FakeMessaging {
    async fn send_tasks(&self, tasks: &[super::sweep_io::SweepTask]) -> Result<(), AwsError> {
        self.begin("SendMessageBatch")?
            .sweep_tasks
            .extend(tasks.iter().cloned());
        Ok(())
    }
}

impl super::sweep_io::SummaryBus for FakeMessaging {
    async fn publish_summary(
        &self,
        summary: &cutoff_domain::summary::SweepSummary,
    ) -> Result<(), AwsError> {
        self.begin("PutEvents")?.summaries.push(summary.clone());
        Ok(())
    }
}

impl super::sweep_io::SweepLedger for FakeMessaging {
    async fn start_run(&self, run: &super::sweep_io::SweepRun) -> Result<bool, AwsError> {
        let mut state = self.begin("PutItem")?;
        if state.runs.contains_key(&run.run_id) {
            return Ok(false);
        }
        state
            .runs
            .insert(run.run_id.clone(), (run.clone(), 0, None));
        Ok(true)
    }

    async fn record_account(
        &self,
        run_id: &str,
        record: &cutoff_domain::summary::AccountRecord,
    ) -> Result<super::sweep_io::RunProgress, AwsError> {
        let mut state = self.begin("TransactWriteItems")?;
        let key = (run_id.to_owned(), record.account.to_string());
        let recorded = !state.records.contains_key(&key);
        if recorded {
            state.records.insert(key, record.clone());
        }
        let (run, done, _) = state
            .runs
            .get_mut(run_id)
            .ok_or_else(|| not_found("TransactWriteItems", run_id))?;
        if recorded {
            *done += 1;
        }
        Ok(super::sweep_io::RunProgress {
            recorded,
            done: *done,
            total: run.total,
        })
    }

    async fn claim_summary(&self, run_id: &str, claimant: &str) -> Result<bool, AwsError> {
        let mut state = self.begin("UpdateItem")?;
        let (run, done, claimed_by) = state
            .runs
            .get_mut(run_id)
            .ok_or_else(|| not_found("UpdateItem", run_id))?;
        if *done < run.total || claimed_by.as_deref().is_some_and(|c| c != claimant) {
            return Ok(false);
        }
        *claimed_by = Some(claimant.to_owned());
        Ok(true)
    }

    async fn run_records(
        &self,
        run_id: &str,
    ) -> Result<
        (
            super::sweep_io::SweepRun,
            Vec<cutoff_domain::summary::AccountRecord>,
        ),
        AwsError,
    > {
        let state = self.begin("Query")?;
        let (run, _, _) = state
            .runs
            .get(run_id)
            .ok_or_else(|| not_found("Query", run_id))?;
        let records = state
            .records
            .iter()
            .filter(|((r, _), _)| r == run_id)
            .map(|(_, rec)| rec.clone())
            .collect();
        Ok((run.clone(), records))
    }
}

/// An in-memory ledger: leases, dedupe markers and audit entries; fails on demand.
#[derive(Debug, Clone, Default)]
pub struct FakeLedger(pub Arc<Mutex<LedgerState>>);

#[derive(Debug, Default)]
pub struct LedgerState {
    /// principal → (holder, until)
    pub locks: HashMap<String, (String, chrono::DateTime<chrono::Utc>)>,
    pub dedupe: HashMap<String, (super::ledger::AuditEntry, chrono::DateTime<chrono::Utc>)>,
    pub entries: Vec<super::ledger::AuditEntry>,
    /// Every lease taken, in order: (principal, holder).
    pub acquired: Vec<(String, String)>,
    /// principal → key records (with their expiry).
    pub keys: HashMap<
        String,
        Vec<(
            cutoff_domain::coverage::KeyRecord,
            chrono::DateTime<chrono::Utc>,
        )>,
    >,
    /// bucket → count.
    pub slots: HashMap<String, u32>,
    pub released: Vec<(String, String)>,
    pub failures: InjectedFailures,
}

impl FakeLedger {
    pub fn state(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fail(&self, action: &'static str, kinds: &[ErrorKind]) {
        self.state().failures.plan(action, kinds);
    }

    fn begin(
        &self,
        action: &'static str,
    ) -> Result<std::sync::MutexGuard<'_, LedgerState>, AwsError> {
        let mut state = self.state();
        state.failures.take(action, "in the fake ledger")?;
        Ok(state)
    }
}

impl super::ledger::Ledger for FakeLedger {
    async fn acquire(
        &self,
        principal: &str,
        holder: &str,
        now: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, AwsError> {
        let mut state = self.begin("acquire")?;
        let free = match state.locks.get(principal) {
            None => true,
            Some((h, expires)) => h == holder || *expires < now,
        };
        if free {
            state
                .locks
                .insert(principal.to_owned(), (holder.to_owned(), until));
            state
                .acquired
                .push((principal.to_owned(), holder.to_owned()));
        }
        Ok(free)
    }

    async fn release(&self, principal: &str, holder: &str) -> Result<(), AwsError> {
        let mut state = self.begin("release")?;
        if state.locks.get(principal).is_some_and(|(h, _)| h == holder) {
            state.locks.remove(principal);
            state
                .released
                .push((principal.to_owned(), holder.to_owned()));
        }
        Ok(())
    }

    async fn applied(
        &self,
        key: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<super::ledger::AuditEntry>, AwsError> {
        let state = self.begin("applied")?;
        Ok(state
            .dedupe
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(e, _)| e.clone()))
    }

    async fn record(
        &self,
        entry: &super::ledger::AuditEntry,
        dedupe: Option<(&str, chrono::DateTime<chrono::Utc>)>,
    ) -> Result<(), AwsError> {
        let mut state = self.begin("record")?;
        state.entries.push(entry.clone());
        if let Some((key, until)) = dedupe {
            state.dedupe.insert(key.to_owned(), (entry.clone(), until));
        }
        Ok(())
    }

    async fn history(
        &self,
        account: &Account,
        kind: &str,
        name: &str,
        limit: usize,
    ) -> Result<Vec<super::ledger::AuditEntry>, AwsError> {
        let state = self.begin("history")?;
        let mut found: Vec<_> = state
            .entries
            .iter()
            .filter(|e| {
                e.outcome.target.as_ref().is_some_and(|t| {
                    t.account == *account
                        && t.kind.as_str() == kind
                        && t.name.as_str().eq_ignore_ascii_case(name)
                })
            })
            .cloned()
            .collect();
        found.reverse();
        found.truncate(limit);
        Ok(found)
    }

    async fn key_records(
        &self,
        principal: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<cutoff_domain::coverage::KeyRecord>, AwsError> {
        let state = self.begin("key_records")?;
        Ok(state
            .keys
            .get(principal)
            .map(|records| {
                records
                    .iter()
                    .filter(|(_, until)| *until > now)
                    .map(|(r, _)| r.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn record_key(
        &self,
        principal: &str,
        record: &cutoff_domain::coverage::KeyRecord,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), AwsError> {
        let mut state = self.begin("record_key")?;
        let records = state.keys.entry(principal.to_owned()).or_default();
        records.retain(|(r, _)| r.sort_key() != record.sort_key());
        records.push((record.clone(), until));
        Ok(())
    }

    async fn drop_keys(&self, principal: &str) -> Result<(), AwsError> {
        let mut state = self.begin("drop_keys")?;
        state.keys.remove(principal);
        Ok(())
    }

    async fn take_slot(
        &self,
        bucket: &str,
        cap: u32,
        _until: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, AwsError> {
        let mut state = self.begin("take_slot")?;
        let count = state.slots.entry(bucket.to_owned()).or_default();
        if *count >= cap {
            return Ok(false);
        }
        *count += 1;
        Ok(true)
    }
}
