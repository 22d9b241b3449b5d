//! The SDK implementation of the traits in [`super`]: [`SdkIam`], IAM in one account
//! (the member-account clients of [`SdkAccountAccess`] are `SdkIam` too). Every SDK
//! failure is mapped into [`AwsError`] by [`classify`].
//!
//! The clients are built with the SDK's own retries disabled:
//! [`retry::with_retries`](crate::retry::with_retries) is the one place that retries
//! and counts attempts. Each method makes one API call unless its documentation says
//! otherwise, so that one attempt of a trait method is one entry in `api_calls`.
//!
//! [`SdkAccountAccess`]: crate::sts::SdkAccountAccess

use aws_sdk_iam::operation::list_policy_versions::ListPolicyVersionsError;
use aws_sdk_iam::types::{PolicyVersion, StatusType, SummaryKeyType};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::{
    AccessKeyInfo, AccessKeys, AccountQuotas, AccountSummary, IamPrincipal, InlinePolicies,
    ManagedPolicies, ManagedPolicy, PolicySimulator, PrincipalInfo, Principals,
};
use crate::error::{AwsError, ErrorKind, classify};
use cutoff_domain::principal::{
    AccessKeyId, Account, IamPath, Partition, PrincipalName, PrincipalType, UniqueId,
};

/// IAM allows at most 1,000 items per page; asking for the most keeps lists to one call.
const MAX_ITEMS: i32 = 1000;
/// IAM keeps at most five versions of a managed policy.
const MAX_POLICY_VERSIONS: usize = 5;

fn is_no_such_entity<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::ServiceError(service) => matches!(
            service.err().code(),
            Some("NoSuchEntity" | "NoSuchEntityException")
        ),
        _ => false,
    }
}

/// IAM in one account, through the SDK.
#[derive(Debug, Clone)]
pub struct SdkIam {
    client: aws_sdk_iam::Client,
    account: Account,
    partition: Partition,
}

impl SdkIam {
    /// `client` must act in `account`, which is in `partition`, and have SDK retries
    /// disabled (as [`load_sdk_config`](crate::config::load_sdk_config) and
    /// [`SdkAccountAccess`](crate::sts::SdkAccountAccess) build them) so that attempts
    /// are counted once, by the caller's
    /// [`retry::with_retries`](crate::retry::with_retries).
    pub fn new(client: aws_sdk_iam::Client, account: Account, partition: Partition) -> Self {
        Self {
            client,
            account,
            partition,
        }
    }

    pub fn account(&self) -> &Account {
        &self.account
    }

    pub fn partition(&self) -> Partition {
        self.partition
    }

    pub fn client(&self) -> &aws_sdk_iam::Client {
        &self.client
    }

    fn on(&self, principal: &IamPrincipal) -> String {
        format!("on {principal} in {}", self.account)
    }

    fn on_policy_of(&self, policy_name: &str, principal: &IamPrincipal) -> String {
        format!(
            "on policy `{policy_name}` of {principal} in {}",
            self.account
        )
    }

    fn malformed(&self, operation: &'static str, context: String, message: String) -> AwsError {
        AwsError::new(ErrorKind::Malformed, operation, context, message)
    }

    fn info(
        &self,
        operation: &'static str,
        principal: &IamPrincipal,
        path: &str,
        unique_id: &str,
        arn: &str,
        tags: &[aws_sdk_iam::types::Tag],
    ) -> Result<PrincipalInfo, AwsError> {
        let invalid = |e: cutoff_domain::principal::InvalidValue| {
            self.malformed(operation, self.on(principal), format!("iam returned {e}"))
        };
        Ok(PrincipalInfo {
            principal: principal.clone(),
            path: IamPath::parse(path).map_err(invalid)?,
            unique_id: UniqueId::parse(unique_id).map_err(invalid)?,
            arn: arn.to_owned(),
            tags: tags
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect(),
        })
    }

    /// The versions of a managed policy (five at most: one page).
    async fn policy_versions(&self, arn: &str) -> Result<Vec<PolicyVersion>, ListVersionsError> {
        let out = self
            .client
            .list_policy_versions()
            .policy_arn(arn)
            .send()
            .await?;
        Ok(out.versions().to_vec())
    }
}

type ListVersionsError = SdkError<ListPolicyVersionsError, HttpResponse>;

/// `v12` sorts after `v9`.
fn version_number(id: &str) -> u64 {
    id.trim_start_matches('v').parse().unwrap_or(u64::MAX)
}

impl Principals for SdkIam {
    async fn get_principal(&self, principal: &IamPrincipal) -> Result<PrincipalInfo, AwsError> {
        let name = principal.name.as_str();
        match principal.kind {
            PrincipalType::Role => {
                const OP: &str = "iam:GetRole";
                let out = self
                    .client
                    .get_role()
                    .role_name(name)
                    .send()
                    .await
                    .map_err(|e| classify(&e, OP, self.on(principal)))?;
                let role = out.role().ok_or_else(|| {
                    self.malformed(OP, self.on(principal), "the response has no role".into())
                })?;
                self.info(
                    OP,
                    principal,
                    role.path(),
                    role.role_id(),
                    role.arn(),
                    role.tags(),
                )
            }
            PrincipalType::User => {
                const OP: &str = "iam:GetUser";
                let out = self
                    .client
                    .get_user()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| classify(&e, OP, self.on(principal)))?;
                let user = out.user().ok_or_else(|| {
                    self.malformed(OP, self.on(principal), "the response has no user".into())
                })?;
                self.info(
                    OP,
                    principal,
                    user.path(),
                    user.user_id(),
                    user.arn(),
                    user.tags(),
                )
            }
        }
    }

    async fn instance_profile_roles(
        &self,
        profile: &PrincipalName,
    ) -> Result<Vec<PrincipalName>, AwsError> {
        const OP: &str = "iam:GetInstanceProfile";
        let context = || format!("on instance profile `{profile}` in {}", self.account);
        let out = self
            .client
            .get_instance_profile()
            .instance_profile_name(profile.as_str())
            .send()
            .await
            .map_err(|e| classify(&e, OP, context()))?;
        let Some(instance_profile) = out.instance_profile() else {
            return Err(self.malformed(
                OP,
                context(),
                "the response has no instance profile".into(),
            ));
        };
        instance_profile
            .roles()
            .iter()
            .map(|role| {
                PrincipalName::parse(role.role_name())
                    .map_err(|e| self.malformed(OP, context(), format!("iam returned {e}")))
            })
            .collect()
    }
}

impl InlinePolicies for SdkIam {
    async fn get_inline_policy(
        &self,
        principal: &IamPrincipal,
        policy_name: &str,
    ) -> Result<Option<String>, AwsError> {
        let name = principal.name.as_str();
        let context = || self.on_policy_of(policy_name, principal);
        // NoSuchEntity is how IAM says "no such policy" (or no such principal: the
        // workflow reads the principal first, so here it means the policy).
        let document = match principal.kind {
            PrincipalType::Role => {
                const OP: &str = "iam:GetRolePolicy";
                match self
                    .client
                    .get_role_policy()
                    .role_name(name)
                    .policy_name(policy_name)
                    .send()
                    .await
                {
                    Ok(out) => out.policy_document().to_owned(),
                    Err(e) if is_no_such_entity(&e) => return Ok(None),
                    Err(e) => return Err(classify(&e, OP, context())),
                }
            }
            PrincipalType::User => {
                const OP: &str = "iam:GetUserPolicy";
                match self
                    .client
                    .get_user_policy()
                    .user_name(name)
                    .policy_name(policy_name)
                    .send()
                    .await
                {
                    Ok(out) => out.policy_document().to_owned(),
                    Err(e) if is_no_such_entity(&e) => return Ok(None),
                    Err(e) => return Err(classify(&e, OP, context())),
                }
            }
        };
        Ok(Some(document))
    }

    /// One call in practice: a page holds 1,000 names and the inline size quota
    /// (10,240 characters per role) cannot fit that many policies. Further pages are
    /// still followed, so a list is never silently cut.
    async fn list_inline_policies(
        &self,
        principal: &IamPrincipal,
    ) -> Result<Vec<String>, AwsError> {
        let name = principal.name.as_str();
        let mut names = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let (page, truncated, next) = match principal.kind {
                PrincipalType::Role => {
                    let out = self
                        .client
                        .list_role_policies()
                        .role_name(name)
                        .max_items(MAX_ITEMS)
                        .set_marker(marker.take())
                        .send()
                        .await
                        .map_err(|e| classify(&e, "iam:ListRolePolicies", self.on(principal)))?;
                    (
                        out.policy_names().to_vec(),
                        out.is_truncated(),
                        out.marker().map(str::to_owned),
                    )
                }
                PrincipalType::User => {
                    let out = self
                        .client
                        .list_user_policies()
                        .user_name(name)
                        .max_items(MAX_ITEMS)
                        .set_marker(marker.take())
                        .send()
                        .await
                        .map_err(|e| classify(&e, "iam:ListUserPolicies", self.on(principal)))?;
                    (
                        out.policy_names().to_vec(),
                        out.is_truncated(),
                        out.marker().map(str::to_owned),
                    )
                }
            };
            names.extend(page);
            match next {
                Some(next) if truncated => marker = Some(next),
                _ => return Ok(names),
            }
        }
    }

    async fn put_inline_policy(
        &self,
        principal: &IamPrincipal,
        policy_name: &str,
        document: &str,
    ) -> Result<(), AwsError> {
        let name = principal.name.as_str();
        let context = || self.on_policy_of(policy_name, principal);
        match principal.kind {
            PrincipalType::Role => self
                .client
                .put_role_policy()
                .role_name(name)
                .policy_name(policy_name)
                .policy_document(document)
                .send()
                .await
                .map(drop)
                .map_err(|e| classify(&e, "iam:PutRolePolicy", context())),
            PrincipalType::User => self
                .client
                .put_user_policy()
                .user_name(name)
                .policy_name(policy_name)
                .policy_document(document)
                .send()
                .await
                .map(drop)
                .map_err(|e| classify(&e, "iam:PutUserPolicy", context())),
        }
    }

    async fn delete_inline_policy(
        &self,
        principal: &IamPrincipal,
        policy_name: &str,
    ) -> Result<(), AwsError> {
        let name = principal.name.as_str();
        let context = || self.on_policy_of(policy_name, principal);
        match principal.kind {
            PrincipalType::Role => self
                .client
                .delete_role_policy()
                .role_name(name)
                .policy_name(policy_name)
                .send()
                .await
                .map(drop)
                .map_err(|e| classify(&e, "iam:DeleteRolePolicy", context())),
            PrincipalType::User => self
                .client
                .delete_user_policy()
                .user_name(name)
                .policy_name(policy_name)
                .send()
                .await
                .map(drop)
                .map_err(|e| classify(&e, "iam:DeleteUserPolicy", context())),
        }
    }
}

impl ManagedPolicies for SdkIam {
    fn managed_policy_arn(&self, path: &IamPath, name: &str) -> String {
        format!(
            "arn:{}:iam::{}:policy{path}{name}",
            self.partition, self.account
        )
    }

    /// Two calls: `GetPolicy` for the default version id, `GetPolicyVersion` for its
    /// document.
    async fn get_managed_policy(&self, arn: &str) -> Result<Option<ManagedPolicy>, AwsError> {
        let context = || format!("on policy `{arn}`");
        let policy = match self.client.get_policy().policy_arn(arn).send().await {
            Ok(out) => out,
            Err(e) if is_no_such_entity(&e) => return Ok(None),
            Err(e) => return Err(classify(&e, "iam:GetPolicy", context())),
        };
        let Some(version) = policy.policy().and_then(|p| p.default_version_id()) else {
            return Err(self.malformed(
                "iam:GetPolicy",
                context(),
                "the response has no default version".into(),
            ));
        };
        let version = match self
            .client
            .get_policy_version()
            .policy_arn(arn)
            .version_id(version)
            .send()
            .await
        {
            Ok(out) => out,
            // Deleted between the two calls.
            Err(e) if is_no_such_entity(&e) => return Ok(None),
            Err(e) => return Err(classify(&e, "iam:GetPolicyVersion", context())),
        };
        let Some(document) = version.policy_version().and_then(|v| v.document()) else {
            return Err(self.malformed(
                "iam:GetPolicyVersion",
                context(),
                "the response has no document".into(),
            ));
        };
        Ok(Some(ManagedPolicy {
            arn: arn.to_owned(),
            document: document.to_owned(),
        }))
    }

    /// `ListPolicyVersions`; then `CreatePolicy` when the policy does not exist, or
    /// (`DeletePolicyVersion` of the oldest non-default version when all five are
    /// used, and) `CreatePolicyVersion` as the new default. Two or three calls.
    async fn put_managed_policy(
        &self,
        path: &IamPath,
        name: &str,
        document: &str,
    ) -> Result<String, AwsError> {
        let arn = self.managed_policy_arn(path, name);
        let context = || format!("on policy `{arn}`");
        let versions = match self.policy_versions(&arn).await {
            Ok(versions) => versions,
            Err(e) if is_no_such_entity(&e) => {
                const OP: &str = "iam:CreatePolicy";
                let out = self
                    .client
                    .create_policy()
                    .path(path.as_str())
                    .policy_name(name)
                    .policy_document(document)
                    .description("cutoff: deny for sessions issued before a revocation cutoff")
                    .send()
                    .await
                    .map_err(|e| {
                        let mut err = classify(&e, OP, context());
                        // Created by a concurrent request since we listed: the retry
                        // will find it and add a version instead.
                        if matches!(
                            e.as_service_error().and_then(|s| s.code()),
                            Some("EntityAlreadyExists")
                        ) {
                            err.kind = ErrorKind::Transient;
                        }
                        err
                    })?;
                return Ok(out
                    .policy()
                    .and_then(|p| p.arn())
                    .map_or(arn.clone(), str::to_owned));
            }
            Err(e) => return Err(classify(&e, "iam:ListPolicyVersions", context())),
        };
        if versions.len() >= MAX_POLICY_VERSIONS {
            // Oldest by creation date, then by version number (dates can tie at
            // second resolution).
            let oldest = versions
                .iter()
                .filter(|v| !v.is_default_version())
                .filter_map(|v| v.version_id().map(|id| (v.create_date(), id)))
                .min_by_key(|(created, id)| {
                    (
                        created.map(|c| (c.secs(), c.subsec_nanos())),
                        version_number(id),
                    )
                });
            if let Some((_, id)) = oldest {
                match self
                    .client
                    .delete_policy_version()
                    .policy_arn(&arn)
                    .version_id(id)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    // Pruned by a concurrent request: the slot is free all the same.
                    Err(e) if is_no_such_entity(&e) => {}
                    Err(e) => return Err(classify(&e, "iam:DeletePolicyVersion", context())),
                }
            }
        }
        self.client
            .create_policy_version()
            .policy_arn(&arn)
            .policy_document(document)
            .set_as_default(true)
            .send()
            .await
            .map_err(|e| classify(&e, "iam:CreatePolicyVersion", context()))?;
        Ok(arn)
    }

    /// `ListPolicyVersions`, `DeletePolicyVersion` for each non-default version (IAM
    /// refuses to delete a policy that has any), then `DeletePolicy`. The policy must
    /// already be detached.
    async fn delete_managed_policy(&self, arn: &str) -> Result<(), AwsError> {
        let context = || format!("on policy `{arn}`");
        let versions = self
            .policy_versions(arn)
            .await
            .map_err(|e| classify(&e, "iam:ListPolicyVersions", context()))?;
        let old_versions = versions
            .iter()
            .filter(|v| !v.is_default_version())
            .filter_map(PolicyVersion::version_id);
        for id in old_versions {
            match self
                .client
                .delete_policy_version()
                .policy_arn(arn)
                .version_id(id)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if is_no_such_entity(&e) => {}
                Err(e) => return Err(classify(&e, "iam:DeletePolicyVersion", context())),
            }
        }
        self.client
            .delete_policy()
            .policy_arn(arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| classify(&e, "iam:DeletePolicy", context()))
    }

    /// One call in practice (at most 20 policies can be attached); further pages are
    /// followed.
    async fn attached_policies(&self, principal: &IamPrincipal) -> Result<Vec<String>, AwsError> {
        let name = principal.name.as_str();
        let mut arns = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let (page, truncated, next) = match principal.kind {
                PrincipalType::Role => {
                    let out = self
                        .client
                        .list_attached_role_policies()
                        .role_name(name)
                        .max_items(MAX_ITEMS)
                        .set_marker(marker.take())
                        .send()
                        .await
                        .map_err(|e| {
                            classify(&e, "iam:ListAttachedRolePolicies", self.on(principal))
                        })?;
                    (
                        out.attached_policies()
                            .iter()
                            .filter_map(|p| p.policy_arn().map(str::to_owned))
                            .collect::<Vec<_>>(),
                        out.is_truncated(),
                        out.marker().map(str::to_owned),
                    )
                }
                PrincipalType::User => {
                    let out = self
                        .client
                        .list_attached_user_policies()
                        .user_name(name)
                        .max_items(MAX_ITEMS)
                        .set_marker(marker.take())
                        .send()
                        .await
                        .map_err(|e| {
                            classify(&e, "iam:ListAttachedUserPolicies", self.on(principal))
                        })?;
                    (
                        out.attached_policies()
                            .iter()
                            .filter_map(|p| p.policy_arn().map(str::to_owned))
                            .collect::<Vec<_>>(),
                        out.is_truncated(),
                        out.marker().map(str::to_owned),
                    )
                }
            };
            arns.extend(page);
            match next {
                Some(next) if truncated => marker = Some(next),
                _ => return Ok(arns),
            }
        }
    }

    async fn attach_policy(&self, principal: &IamPrincipal, arn: &str) -> Result<(), AwsError> {
        let name = principal.name.as_str();
        let context = || format!("{}, policy `{arn}`", self.on(principal));
        match principal.kind {
            PrincipalType::Role => self
                .client
                .attach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map(drop)
                .map_err(|e| classify(&e, "iam:AttachRolePolicy", context())),
            PrincipalType::User => self
                .client
                .attach_user_policy()
                .user_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map(drop)
                .map_err(|e| classify(&e, "iam:AttachUserPolicy", context())),
        }
    }

    async fn detach_policy(&self, principal: &IamPrincipal, arn: &str) -> Result<(), AwsError> {
        let name = principal.name.as_str();
        let context = || format!("{}, policy `{arn}`", self.on(principal));
        match principal.kind {
            PrincipalType::Role => self
                .client
                .detach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map(drop)
                .map_err(|e| classify(&e, "iam:DetachRolePolicy", context())),
            PrincipalType::User => self
                .client
                .detach_user_policy()
                .user_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map(drop)
                .map_err(|e| classify(&e, "iam:DetachUserPolicy", context())),
        }
    }
}

impl AccessKeys for SdkIam {
    async fn deactivate_access_key(
        &self,
        user: &PrincipalName,
        access_key_id: &AccessKeyId,
    ) -> Result<(), AwsError> {
        self.client
            .update_access_key()
            .user_name(user.as_str())
            .access_key_id(access_key_id.as_str())
            .status(StatusType::Inactive)
            .send()
            .await
            .map(drop)
            .map_err(|e| {
                classify(
                    &e,
                    "iam:UpdateAccessKey",
                    format!(
                        "on access key `{access_key_id}` of user `{user}` in {}",
                        self.account
                    ),
                )
            })
    }

    async fn list_access_keys(&self, user: &PrincipalName) -> Result<Vec<AccessKeyInfo>, AwsError> {
        let context = || format!("of user `{user}` in {}", self.account);
        let out = self
            .client
            .list_access_keys()
            .user_name(user.as_str())
            .send()
            .await
            .map_err(|e| classify(&e, "iam:ListAccessKeys", context()))?;
        // IAM allows two keys per user, one page; a key id IAM would not issue is
        // a broken answer, and skipping it could report a key as contained.
        out.access_key_metadata()
            .iter()
            .map(|k| {
                let id = AccessKeyId::parse(k.access_key_id().unwrap_or("")).map_err(|e| {
                    AwsError::new(
                        ErrorKind::Malformed,
                        "iam:ListAccessKeys",
                        context(),
                        e.to_string(),
                    )
                })?;
                Ok(AccessKeyInfo {
                    id,
                    active: k.status() != Some(&StatusType::Inactive),
                })
            })
            .collect()
    }

    async fn has_login_profile(&self, user: &PrincipalName) -> Result<bool, AwsError> {
        match self
            .client
            .get_login_profile()
            .user_name(user.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let err = classify(
                    &e,
                    "iam:GetLoginProfile",
                    format!("of user `{user}` in {}", self.account),
                );
                if err.kind == ErrorKind::NotFound {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn active_ssh_public_keys(&self, user: &PrincipalName) -> Result<Vec<String>, AwsError> {
        let out = self
            .client
            .list_ssh_public_keys()
            .user_name(user.as_str())
            .send()
            .await
            .map_err(|e| {
                classify(
                    &e,
                    "iam:ListSSHPublicKeys",
                    format!("of user `{user}` in {}", self.account),
                )
            })?;
        Ok(out
            .ssh_public_keys()
            .iter()
            .filter(|k| k.status() != &StatusType::Inactive)
            .map(|k| cutoff_domain::principal::clean_text(k.ssh_public_key_id(), 128))
            .collect())
    }

    async fn active_service_credentials(
        &self,
        user: &PrincipalName,
    ) -> Result<Vec<String>, AwsError> {
        let out = self
            .client
            .list_service_specific_credentials()
            .user_name(user.as_str())
            .send()
            .await
            .map_err(|e| {
                classify(
                    &e,
                    "iam:ListServiceSpecificCredentials",
                    format!("of user `{user}` in {}", self.account),
                )
            })?;
        Ok(out
            .service_specific_credentials()
            .iter()
            .filter(|c| c.status() != &StatusType::Inactive)
            .map(|c| cutoff_domain::principal::clean_text(c.service_name(), 128))
            .collect())
    }
}

impl PolicySimulator for SdkIam {
    async fn simulate(
        &self,
        principal_arn: &str,
        action: &str,
        resource: &str,
        call_context: &[cutoff_domain::self_check::ContextValue],
    ) -> Result<cutoff_domain::self_check::Simulated, AwsError> {
        use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum};
        const OP: &str = "iam:SimulatePrincipalPolicy";
        let context = || format!("{action} on {resource} as {principal_arn}");
        let entries = call_context
            .iter()
            .map(|c| {
                ContextEntry::builder()
                    .context_key_name(c.key)
                    .context_key_values(c.value.clone())
                    .context_key_type(if c.boolean {
                        ContextKeyTypeEnum::Boolean
                    } else {
                        ContextKeyTypeEnum::String
                    })
                    .build()
            })
            .collect();
        let out = self
            .client
            .simulate_principal_policy()
            .policy_source_arn(principal_arn)
            .action_names(action)
            .resource_arns(resource)
            .set_context_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify(&e, OP, context()))?;
        // One action on one resource: one result, whose decision covers the role's
        // policies, its boundary and the SCPs.
        let [result] = out.evaluation_results() else {
            return Err(self.malformed(
                OP,
                context(),
                format!(
                    "{} results for one action and resource",
                    out.evaluation_results().len()
                ),
            ));
        };
        use aws_sdk_iam::types::PolicyEvaluationDecisionType as D;
        use cutoff_domain::self_check::Decision;
        let decision = match result.eval_decision() {
            D::Allowed => Decision::Allowed,
            D::ImplicitDeny => Decision::ImplicitDeny,
            D::ExplicitDeny => Decision::ExplicitDeny,
            other => {
                return Err(self.malformed(
                    OP,
                    context(),
                    format!("an unknown decision {}", other.as_str()),
                ));
            }
        };
        Ok(cutoff_domain::self_check::Simulated {
            decision,
            missing_context: result.missing_context_values().to_vec(),
        })
    }
}

impl AccountQuotas for SdkIam {
    async fn account_summary(&self) -> Result<AccountSummary, AwsError> {
        const OP: &str = "iam:GetAccountSummary";
        let context = || format!("in {}", self.account);
        let out = self
            .client
            .get_account_summary()
            .send()
            .await
            .map_err(|e| classify(&e, OP, context()))?;
        let map = out.summary_map();
        // IAM always returns these keys; a missing one is a broken response, and a
        // guessed quota could send the fallback into a wall.
        let get = |key: SummaryKeyType| -> Result<u32, AwsError> {
            let value = map.and_then(|m| m.get(&key)).ok_or_else(|| {
                self.malformed(
                    OP,
                    context(),
                    format!("the summary has no {}", key.as_str()),
                )
            })?;
            u32::try_from(*value).map_err(|_| {
                self.malformed(
                    OP,
                    context(),
                    format!("the summary has a negative {}", key.as_str()),
                )
            })
        };
        Ok(AccountSummary {
            policies: get(SummaryKeyType::Policies)?,
            policies_quota: get(SummaryKeyType::PoliciesQuota)?,
            attached_policies_per_role_quota: get(SummaryKeyType::AttachedPoliciesPerRoleQuota)?,
            attached_policies_per_user_quota: get(SummaryKeyType::AttachedPoliciesPerUserQuota)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::retry::RetryConfig;
    use aws_sdk_iam::Client as Iam;
    use aws_sdk_iam::operation::get_role::GetRoleOutput;
    use aws_sdk_iam::operation::get_role_policy::{GetRolePolicyError, GetRolePolicyOutput};
    use aws_sdk_iam::types::error::{LimitExceededException, NoSuchEntityException};
    use aws_sdk_iam::types::{Role, Tag, User};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    /// A mocked client with SDK retries off, as
    /// [`load_sdk_config`](crate::config::load_sdk_config) builds them, so that every
    /// mocked response reaches our code.
    macro_rules! mocked {
        ($sdk:ident, $rules:expr) => {
            mocked!($sdk, RuleMode::Sequential, $rules)
        };
        ($sdk:ident, $mode:expr, $rules:expr) => {
            mock_client!($sdk, $mode, $rules, |c| c
                .retry_config(RetryConfig::disabled()))
        };
    }

    const HOME: &str = "111122223333";
    const DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"RevokeOlderSessions","Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-23T12:00:00Z"}}}]}"#;

    fn account(s: &str) -> Account {
        Account::parse(s).unwrap()
    }

    fn name(s: &str) -> PrincipalName {
        PrincipalName::parse(s).unwrap()
    }

    fn role(s: &str) -> IamPrincipal {
        IamPrincipal::role(name(s))
    }

    fn user(s: &str) -> IamPrincipal {
        IamPrincipal::user(name(s))
    }

    fn sdk(client: Iam) -> SdkIam {
        SdkIam::new(client, account(HOME), Partition::Aws)
    }

    /// An IAM/STS (awsQuery) error response, as the services send it: the real
    /// deserializer turns it into the modeled error with its code and message.
    fn http_error(status: u16, code: &str, message: &str) -> HttpResponse {
        let body = format!(
            "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
             <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>4b1f7c52-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        );
        HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
    }

    fn http_status(status: u16, body: &'static str) -> HttpResponse {
        HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
    }

    /// Metadata as the deserializer fills it, for modeled errors built in tests.
    fn meta(code: &str, message: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message(message).build()
    }

    fn tag(k: &str, v: &str) -> Tag {
        Tag::builder().key(k).value(v).build().unwrap()
    }

    fn payments_role() -> Role {
        Role::builder()
            .path("/service/")
            .role_name("payments-api")
            .role_id("AROAEXAMPLEROLEID0001")
            .arn("arn:aws:iam::111122223333:role/service/payments-api")
            .create_date(aws_smithy_types::DateTime::from_secs(0))
            .tags(tag("cutoff:owner", "payments"))
            .tags(tag(
                "cutoff:notify",
                "arn:aws:sns:eu-west-1:111122223333:payments",
            ))
            .tags(tag("env", "prod"))
            .build()
            .unwrap()
    }

    async fn get_role_error(response: HttpResponse) -> AwsError {
        let rule = mock!(Iam::get_role).then_http_response(move || {
            HttpResponse::new(
                response.status(),
                SdkBody::from(response.body().bytes().unwrap_or_default()),
            )
        });
        let iam = sdk(mocked!(aws_sdk_iam, [&rule]));
        iam.get_principal(&role("payments-api")).await.unwrap_err()
    }

    // ---- Principals ----

    #[tokio::test]
    async fn get_role_returns_path_id_arn_and_tags_in_order() {
        let rule = mock!(Iam::get_role)
            .match_requests(|r| r.role_name() == Some("payments-api"))
            .then_output(|| GetRoleOutput::builder().role(payments_role()).build());
        let iam = sdk(mocked!(aws_sdk_iam, [&rule]));
        let info = iam.get_principal(&role("payments-api")).await.unwrap();
        assert_eq!(info.principal, role("payments-api"));
        assert_eq!(info.path.as_str(), "/service/");
        assert_eq!(info.unique_id.as_str(), "AROAEXAMPLEROLEID0001");
        assert_eq!(
            info.arn,
            "arn:aws:iam::111122223333:role/service/payments-api"
        );
        let keys: Vec<_> = info.tags.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["cutoff:owner", "cutoff:notify", "env"]);
        assert_eq!(info.tag("cutoff:owner"), Some("payments"));
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn get_user_returns_the_user() {
        let rule = mock!(Iam::get_user)
            .match_requests(|r| r.user_name() == Some("alice"))
            .then_output(|| {
                aws_sdk_iam::operation::get_user::GetUserOutput::builder()
                    .user(
                        User::builder()
                            .path("/")
                            .user_name("alice")
                            .user_id("AIDAEXAMPLEUSERID001")
                            .arn("arn:aws:iam::111122223333:user/alice")
                            .create_date(aws_smithy_types::DateTime::from_secs(0))
                            .build()
                            .unwrap(),
                    )
                    .build()
            });
        let iam = sdk(mocked!(aws_sdk_iam, [&rule]));
        let info = iam.get_principal(&user("alice")).await.unwrap();
        assert_eq!(info.unique_id.as_str(), "AIDAEXAMPLEUSERID001");
        assert_eq!(info.path, IamPath::root());
        assert!(info.tags.is_empty());
    }

    #[tokio::test]
    async fn a_missing_role_is_not_found_with_the_entity_and_the_service_message() {
        let err = get_role_error(http_error(
            404,
            "NoSuchEntity",
            "The role with name payments-api cannot be found.",
        ))
        .await;
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(err.operation, "iam:GetRole");
        assert_eq!(err.context, "on role `payments-api` in 111122223333");
        assert_eq!(
            err.message,
            "NoSuchEntity: The role with name payments-api cannot be found."
        );
        assert_eq!(
            err.to_string(),
            "iam:GetRole on role `payments-api` in 111122223333: not_found: NoSuchEntity: \
             The role with name payments-api cannot be found."
        );
    }

    #[tokio::test]
    async fn service_errors_map_by_code_then_by_status() {
        for (response, kind) in [
            (
                http_error(400, "Throttling", "Rate exceeded"),
                ErrorKind::Throttled,
            ),
            (
                http_error(403, "AccessDenied", "not authorized"),
                ErrorKind::AccessDenied,
            ),
            (
                http_error(500, "ServiceFailure", "oops"),
                ErrorKind::Transient,
            ),
            (
                http_error(503, "SomethingNew", "later"),
                ErrorKind::Transient,
            ),
            (
                http_error(400, "SomethingNew", "what"),
                ErrorKind::Malformed,
            ),
            (
                http_status(503, "<html>Service Unavailable</html>"),
                ErrorKind::Transient,
            ),
            (http_status(502, ""), ErrorKind::Transient),
            (http_status(429, ""), ErrorKind::Throttled),
            (http_status(403, ""), ErrorKind::AccessDenied),
            (
                http_status(404, "<html>Not Found</html>"),
                ErrorKind::Malformed,
            ),
            // A success status with a body that is not the expected XML.
            (
                http_status(200, "<GetRoleResponse><GetRoleRe"),
                ErrorKind::Transient,
            ),
        ] {
            let shown = format!(
                "{} {:?}",
                response.status().as_u16(),
                response.body().bytes()
            );
            let err = get_role_error(response).await;
            assert_eq!(err.kind, kind, "{shown}: {err}");
            assert_eq!(err.context, "on role `payments-api` in 111122223333");
        }
    }

    #[tokio::test]
    async fn instance_profile_resolves_to_its_role() {
        let rule = mock!(Iam::get_instance_profile)
            .match_requests(|r| r.instance_profile_name() == Some("web"))
            .then_output(|| {
                aws_sdk_iam::operation::get_instance_profile::GetInstanceProfileOutput::builder()
                    .instance_profile(
                        aws_sdk_iam::types::InstanceProfile::builder()
                            .path("/")
                            .instance_profile_name("web")
                            .instance_profile_id("AIPAEXAMPLEPROFILE01")
                            .arn("arn:aws:iam::111122223333:instance-profile/web")
                            .create_date(aws_smithy_types::DateTime::from_secs(0))
                            .roles(payments_role())
                            .build()
                            .unwrap(),
                    )
                    .build()
            });
        let missing = mock!(Iam::get_instance_profile).then_http_response(|| {
            http_error(
                404,
                "NoSuchEntity",
                "Instance Profile gone cannot be found.",
            )
        });
        let iam = sdk(mocked!(aws_sdk_iam, [&rule, &missing]));
        assert_eq!(
            iam.instance_profile_roles(&name("web")).await.unwrap(),
            vec![name("payments-api")]
        );
        let err = iam.instance_profile_roles(&name("gone")).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(err.context, "on instance profile `gone` in 111122223333");
    }

    // ---- Inline policies ----

    #[tokio::test]
    async fn get_inline_policy_returns_the_document_as_iam_sends_it() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%7D";
        let rule = mock!(Iam::get_role_policy)
            .match_requests(|r| {
                r.role_name() == Some("payments-api")
                    && r.policy_name() == Some("AWSRevokeOlderSessions")
            })
            .then_output(move || {
                GetRolePolicyOutput::builder()
                    .role_name("payments-api")
                    .policy_name("AWSRevokeOlderSessions")
                    .policy_document(encoded)
                    .build()
                    .unwrap()
            });
        let iam = sdk(mocked!(aws_sdk_iam, [&rule]));
        let doc = iam
            .get_inline_policy(&role("payments-api"), "AWSRevokeOlderSessions")
            .await
            .unwrap();
        assert_eq!(doc.as_deref(), Some(encoded));
    }

    #[tokio::test]
    async fn a_missing_inline_policy_is_none() {
        let modeled = mock!(Iam::get_role_policy).then_error(|| {
            GetRolePolicyError::NoSuchEntityException(
                NoSuchEntityException::builder()
                    .message("The role policy with name AWSRevokeOlderSessions cannot be found.")
                    .meta(meta(
                        "NoSuchEntity",
                        "The role policy with name AWSRevokeOlderSessions cannot be found.",
                    ))
                    .build(),
            )
        });
        let wire = mock!(Iam::get_user_policy).then_http_response(|| {
            http_error(404, "NoSuchEntity", "The user policy cannot be found.")
        });
        let iam = sdk(mocked!(aws_sdk_iam, [&modeled, &wire]));
        assert_eq!(
            iam.get_inline_policy(&role("payments-api"), "AWSRevokeOlderSessions")
                .await,
            Ok(None)
        );
        assert_eq!(
            iam.get_inline_policy(&user("alice"), "AWSRevokeOlderSessions")
                .await,
            Ok(None)
        );
    }

    #[tokio::test]
    async fn get_inline_policy_errors_other_than_not_found_are_reported() {
        let denied = mock!(Iam::get_user_policy).then_http_response(|| {
            http_error(
                403,
                "AccessDenied",
                "User: x is not authorized to perform: iam:GetUserPolicy",
            )
        });
        let throttled = mock!(Iam::get_role_policy)
            .then_http_response(|| http_error(400, "Throttling", "Rate exceeded"));
        let iam = sdk(mocked!(aws_sdk_iam, [&denied, &throttled]));
        let err = iam
            .get_inline_policy(&user("alice"), "AWSRevokeOlderSessions")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::AccessDenied);
        assert_eq!(err.operation, "iam:GetUserPolicy");
        assert_eq!(
            err.context,
            "on policy `AWSRevokeOlderSessions` of user `alice` in 111122223333"
        );
        let err = iam
            .get_inline_policy(&role("payments-api"), "AWSRevokeOlderSessions")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Throttled);
    }

    #[tokio::test]
    async fn list_inline_policies_follows_pages() {
        let first = mock!(Iam::list_role_policies)
            .match_requests(|r| {
                r.role_name() == Some("payments-api")
                    && r.marker().is_none()
                    && r.max_items() == Some(1000)
            })
            .then_output(|| {
                aws_sdk_iam::operation::list_role_policies::ListRolePoliciesOutput::builder()
                    .policy_names("a")
                    .policy_names("AWSRevokeOlderSessions")
                    .is_truncated(true)
                    .marker("m1")
                    .build()
                    .unwrap()
            });
        let second = mock!(Iam::list_role_policies)
            .match_requests(|r| r.marker() == Some("m1"))
            .then_output(|| {
                aws_sdk_iam::operation::list_role_policies::ListRolePoliciesOutput::builder()
                    .policy_names("z")
                    .is_truncated(false)
                    .build()
                    .unwrap()
            });
        let users = mock!(Iam::list_user_policies).then_http_response(|| {
            http_error(
                404,
                "NoSuchEntity",
                "The user with name bob cannot be found.",
            )
        });
        let iam = sdk(mocked!(aws_sdk_iam, [&first, &second, &users]));
        assert_eq!(
            iam.list_inline_policies(&role("payments-api"))
                .await
                .unwrap(),
            ["a", "AWSRevokeOlderSessions", "z"]
        );
        let err = iam.list_inline_policies(&user("bob")).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn put_inline_policy_sends_the_document() {
        let rule = mock!(Iam::put_role_policy)
            .match_requests(|r| {
                r.role_name() == Some("payments-api")
                    && r.policy_name() == Some("AWSRevokeOlderSessions")
                    && r.policy_document() == Some(DOC)
            })
            .then_output(|| {
                aws_sdk_iam::operation::put_role_policy::PutRolePolicyOutput::builder().build()
            });
        let users = mock!(Iam::put_user_policy)
            .match_requests(|r| r.user_name() == Some("alice") && r.policy_document() == Some(DOC))
            .then_output(|| {
                aws_sdk_iam::operation::put_user_policy::PutUserPolicyOutput::builder().build()
            });
        let iam = sdk(mocked!(aws_sdk_iam, [&rule, &users]));
        iam.put_inline_policy(&role("payments-api"), "AWSRevokeOlderSessions", DOC)
            .await
            .unwrap();
        iam.put_inline_policy(&user("alice"), "AWSRevokeOlderSessions", DOC)
            .await
            .unwrap();
        assert_eq!((rule.num_calls(), users.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn put_inline_policy_failures_keep_their_meaning_and_never_echo_the_document() {
        for (response, kind) in [
            (
                http_error(
                    409,
                    "LimitExceeded",
                    "Maximum policy size of 10240 bytes exceeded for role payments-api",
                ),
                ErrorKind::Quota,
            ),
            (
                http_error(
                    400,
                    "UnmodifiableEntity",
                    "Cannot perform the operation on the protected role",
                ),
                ErrorKind::Unmodifiable,
            ),
            (
                http_error(400, "MalformedPolicyDocument", "Syntax errors in policy."),
                ErrorKind::Malformed,
            ),
            (
                http_error(404, "NoSuchEntity", "The role cannot be found."),
                ErrorKind::NotFound,
            ),
            (
                http_error(400, "Throttling", "Rate exceeded"),
                ErrorKind::Throttled,
            ),
            (http_status(503, ""), ErrorKind::Transient),
        ] {
            let status = response.status().as_u16();
            let body = response.body().bytes().unwrap_or_default().to_vec();
            let rule = mock!(Iam::put_role_policy).then_http_response(move || {
                HttpResponse::new(
                    StatusCode::try_from(status).unwrap(),
                    SdkBody::from(body.clone()),
                )
            });
            let iam = sdk(mocked!(aws_sdk_iam, [&rule]));
            let err = iam
                .put_inline_policy(&role("payments-api"), "AWSRevokeOlderSessions", DOC)
                .await
                .unwrap_err();
            assert_eq!(err.kind, kind, "{err}");
            assert_eq!(err.operation, "iam:PutRolePolicy");
            assert!(!err.to_string().contains("TokenIssueTime"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_modeled_limit_exceeded_error_is_quota() {
        let rule = mock!(Iam::put_user_policy).then_error(|| {
            aws_sdk_iam::operation::put_user_policy::PutUserPolicyError::LimitExceededException(
                LimitExceededException::builder()
                    .message("Maximum policy size of 2048 bytes exceeded for user alice")
                    .meta(meta(
                        "LimitExceeded",
                        "Maximum policy size of 2048 bytes exceeded for user alice",
                    ))
                    .build(),
            )
        });
        let iam = sdk(mocked!(aws_sdk_iam, [&rule]));
        let err = iam
            .put_inline_policy(&user("alice"), "AWSRevokeOlderSessions", DOC)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Quota);
        assert!(err.message.contains("2048 bytes"), "{err}");
    }

    #[tokio::test]
    async fn delete_inline_policy_deletes_or_reports_not_found() {
        let ok = mock!(Iam::delete_role_policy)
            .match_requests(|r| {
                r.role_name() == Some("payments-api")
                    && r.policy_name() == Some("CutoffRevokedSessions")
            })
            .then_output(|| {
                aws_sdk_iam::operation::delete_role_policy::DeleteRolePolicyOutput::builder()
                    .build()
            });
        let gone = mock!(Iam::delete_user_policy).then_http_response(|| {
            http_error(404, "NoSuchEntity", "The user policy cannot be found.")
        });
        let iam = sdk(mocked!(aws_sdk_iam, [&ok, &gone]));
        iam.delete_inline_policy(&role("payments-api"), "CutoffRevokedSessions")
            .await
            .unwrap();
        let err = iam
            .delete_inline_policy(&user("alice"), "CutoffRevokedSessions")
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, err.operation),
            (ErrorKind::NotFound, "iam:DeleteUserPolicy")
        );
    }

    // ---- Managed policies ----

    fn version(id: &str, default: bool, created: i64) -> aws_sdk_iam::types::PolicyVersion {
        aws_sdk_iam::types::PolicyVersion::builder()
            .version_id(id)
            .is_default_version(default)
            .create_date(aws_smithy_types::DateTime::from_secs(created))
            .build()
    }

    fn list_versions(
        versions: Vec<aws_sdk_iam::types::PolicyVersion>,
    ) -> aws_sdk_iam::operation::list_policy_versions::ListPolicyVersionsOutput {
        aws_sdk_iam::operation::list_policy_versions::ListPolicyVersionsOutput::builder()
            .set_versions(Some(versions))
            .is_truncated(false)
            .build()
    }

    const POLICY_ARN: &str = "arn:aws:iam::111122223333:policy/cutoff/cutoff-revoke-payments-api";

    fn cutoff_path() -> IamPath {
        IamPath::parse("/cutoff/").unwrap()
    }

    #[tokio::test]
    async fn managed_policy_arns_use_the_partition_account_and_path() {
        let rule = mock!(Iam::get_account_summary).then_output(|| {
            aws_sdk_iam::operation::get_account_summary::GetAccountSummaryOutput::builder().build()
        });
        let client = mocked!(aws_sdk_iam, [&rule]);
        let iam = sdk(client.clone());
        assert_eq!(
            iam.managed_policy_arn(&IamPath::root(), "cutoff-revoke-x"),
            "arn:aws:iam::111122223333:policy/cutoff-revoke-x"
        );
        assert_eq!(
            iam.managed_policy_arn(&cutoff_path(), "cutoff-revoke-payments-api"),
            POLICY_ARN
        );
        let cn = SdkIam::new(client, account(HOME), Partition::AwsCn);
        assert_eq!(
            cn.managed_policy_arn(&IamPath::root(), "p"),
            "arn:aws-cn:iam::111122223333:policy/p"
        );
    }

    #[tokio::test]
    async fn get_managed_policy_reads_the_default_version() {
        let policy = mock!(Iam::get_policy)
            .match_requests(|r| r.policy_arn() == Some(POLICY_ARN))
            .then_output(|| {
                aws_sdk_iam::operation::get_policy::GetPolicyOutput::builder()
                    .policy(
                        aws_sdk_iam::types::Policy::builder()
                            .arn(POLICY_ARN)
                            .default_version_id("v3")
                            .build(),
                    )
                    .build()
            });
        let version = mock!(Iam::get_policy_version)
            .match_requests(|r| r.policy_arn() == Some(POLICY_ARN) && r.version_id() == Some("v3"))
            .then_output(|| {
                aws_sdk_iam::operation::get_policy_version::GetPolicyVersionOutput::builder()
                    .policy_version(
                        aws_sdk_iam::types::PolicyVersion::builder()
                            .version_id("v3")
                            .document("%7B%7D")
                            .is_default_version(true)
                            .build(),
                    )
                    .build()
            });
        let iam = sdk(mocked!(aws_sdk_iam, [&policy, &version]));
        assert_eq!(
            iam.get_managed_policy(POLICY_ARN).await.unwrap(),
            Some(ManagedPolicy {
                arn: POLICY_ARN.to_owned(),
                document: "%7B%7D".to_owned()
            })
        );
    }

    #[tokio::test]
    async fn a_missing_managed_policy_is_none_and_other_errors_are_reported() {
        let missing = mock!(Iam::get_policy).then_http_response(|| {
            http_error(
                404,
                "NoSuchEntity",
                "Policy does not exist or is not attachable.",
            )
        });
        let denied = mock!(Iam::get_policy).then_http_response(|| {
            http_error(
                403,
                "AccessDenied",
                "not authorized to perform: iam:GetPolicy",
            )
        });
        let iam = sdk(mocked!(aws_sdk_iam, [&missing, &denied]));
        assert_eq!(iam.get_managed_policy(POLICY_ARN).await, Ok(None));
        let err = iam.get_managed_policy(POLICY_ARN).await.unwrap_err();
        assert_eq!(
            (err.kind, err.operation),
            (ErrorKind::AccessDenied, "iam:GetPolicy")
        );
        assert_eq!(err.context, format!("on policy `{POLICY_ARN}`"));
    }

    #[tokio::test]
    async fn put_managed_policy_creates_it_when_absent() {
        let list = mock!(Iam::list_policy_versions)
            .match_requests(|r| r.policy_arn() == Some(POLICY_ARN))
            .then_http_response(|| http_error(404, "NoSuchEntity", "Policy does not exist."));
        let create = mock!(Iam::create_policy)
            .match_requests(|r| {
                r.path() == Some("/cutoff/")
                    && r.policy_name() == Some("cutoff-revoke-payments-api")
                    && r.policy_document() == Some(DOC)
            })
            .then_output(|| {
                aws_sdk_iam::operation::create_policy::CreatePolicyOutput::builder()
                    .policy(
                        aws_sdk_iam::types::Policy::builder()
                            .arn(POLICY_ARN)
                            .build(),
                    )
                    .build()
            });
        // Sequential: any other call, or these in another order, fails the test.
        let iam = sdk(mocked!(aws_sdk_iam, RuleMode::Sequential, [&list, &create]));
        let arn = iam
            .put_managed_policy(&cutoff_path(), "cutoff-revoke-payments-api", DOC)
            .await
            .unwrap();
        assert_eq!(arn, POLICY_ARN);
        assert_eq!((list.num_calls(), create.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_policy_created_concurrently_is_retried_as_transient() {
        let list = mock!(Iam::list_policy_versions)
            .then_http_response(|| http_error(404, "NoSuchEntity", "Policy does not exist."));
        let create = mock!(Iam::create_policy).then_http_response(|| {
            http_error(
                409,
                "EntityAlreadyExists",
                "A policy called cutoff-revoke-payments-api already exists.",
            )
        });
        let iam = sdk(mocked!(aws_sdk_iam, RuleMode::Sequential, [&list, &create]));
        let err = iam
            .put_managed_policy(&cutoff_path(), "cutoff-revoke-payments-api", DOC)
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, err.operation),
            (ErrorKind::Transient, "iam:CreatePolicy")
        );
    }

    #[tokio::test]
    async fn put_managed_policy_adds_a_default_version_when_there_is_room() {
        let list = mock!(Iam::list_policy_versions)
            .then_output(|| list_versions(vec![version("v2", true, 20), version("v1", false, 10)]));
        let create = mock!(Iam::create_policy_version)
            .match_requests(|r| {
                r.policy_arn() == Some(POLICY_ARN)
                    && r.policy_document() == Some(DOC)
                    && r.set_as_default() == Some(true)
            })
            .then_output(|| {
                aws_sdk_iam::operation::create_policy_version::CreatePolicyVersionOutput::builder()
                    .build()
            });
        let iam = sdk(mocked!(aws_sdk_iam, RuleMode::Sequential, [&list, &create]));
        let arn = iam
            .put_managed_policy(&cutoff_path(), "cutoff-revoke-payments-api", DOC)
            .await
            .unwrap();
        assert_eq!(arn, POLICY_ARN);
        assert_eq!(create.num_calls(), 1);
    }

    #[tokio::test]
    async fn put_managed_policy_prunes_the_oldest_non_default_version_when_five_exist() {
        // The default (v1) is the oldest; v2 is the oldest the policy can lose. v10
        // and v3 share a second: the lower version number is older.
        let list = mock!(Iam::list_policy_versions).then_output(|| {
            list_versions(vec![
                version("v10", false, 30),
                version("v1", true, 10),
                version("v4", false, 40),
                version("v3", false, 30),
                version("v2", false, 20),
            ])
        });
        let delete = mock!(Iam::delete_policy_version)
            .match_requests(|r| r.policy_arn() == Some(POLICY_ARN) && r.version_id() == Some("v2"))
            .then_output(|| {
                aws_sdk_iam::operation::delete_policy_version::DeletePolicyVersionOutput::builder()
                    .build()
            });
        let create = mock!(Iam::create_policy_version)
            .match_requests(|r| {
                r.set_as_default() == Some(true) && r.policy_document() == Some(DOC)
            })
            .then_output(|| {
                aws_sdk_iam::operation::create_policy_version::CreatePolicyVersionOutput::builder()
                    .build()
            });
        let iam = sdk(mocked!(
            aws_sdk_iam,
            RuleMode::Sequential,
            [&list, &delete, &create]
        ));
        iam.put_managed_policy(&cutoff_path(), "cutoff-revoke-payments-api", DOC)
            .await
            .unwrap();
        assert_eq!(
            (list.num_calls(), delete.num_calls(), create.num_calls()),
            (1, 1, 1)
        );

        let tied = mock!(Iam::list_policy_versions).then_output(|| {
            list_versions(vec![
                version("v10", false, 30),
                version("v9", true, 50),
                version("v4", false, 40),
                version("v3", false, 30),
                version("v5", false, 60),
            ])
        });
        let delete_v3 = mock!(Iam::delete_policy_version)
            .match_requests(|r| r.version_id() == Some("v3"))
            .then_output(|| {
                aws_sdk_iam::operation::delete_policy_version::DeletePolicyVersionOutput::builder()
                    .build()
            });
        let create = mock!(Iam::create_policy_version).then_output(|| {
            aws_sdk_iam::operation::create_policy_version::CreatePolicyVersionOutput::builder()
                .build()
        });
        let iam = sdk(mocked!(
            aws_sdk_iam,
            RuleMode::Sequential,
            [&tied, &delete_v3, &create]
        ));
        iam.put_managed_policy(&cutoff_path(), "cutoff-revoke-payments-api", DOC)
            .await
            .unwrap();
        assert_eq!(delete_v3.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_version_that_does_not_fit_is_quota() {
        let list = mock!(Iam::list_policy_versions)
            .then_output(|| list_versions(vec![version("v1", true, 10)]));
        let create = mock!(Iam::create_policy_version).then_http_response(|| {
            http_error(
                409,
                "LimitExceeded",
                "Cannot exceed quota for PolicySize: 6144",
            )
        });
        let iam = sdk(mocked!(aws_sdk_iam, RuleMode::Sequential, [&list, &create]));
        let err = iam
            .put_managed_policy(&cutoff_path(), "cutoff-revoke-payments-api", DOC)
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, err.operation),
            (ErrorKind::Quota, "iam:CreatePolicyVersion")
        );
    }

    #[tokio::test]
    async fn delete_managed_policy_removes_non_default_versions_first() {
        let list = mock!(Iam::list_policy_versions).then_output(|| {
            list_versions(vec![
                version("v3", true, 30),
                version("v1", false, 10),
                version("v2", false, 20),
            ])
        });
        let delete_v1 = mock!(Iam::delete_policy_version)
            .match_requests(|r| r.version_id() == Some("v1"))
            .then_output(|| {
                aws_sdk_iam::operation::delete_policy_version::DeletePolicyVersionOutput::builder()
                    .build()
            });
        let delete_v2 = mock!(Iam::delete_policy_version)
            .match_requests(|r| r.version_id() == Some("v2"))
            .then_output(|| {
                aws_sdk_iam::operation::delete_policy_version::DeletePolicyVersionOutput::builder()
                    .build()
            });
        let delete = mock!(Iam::delete_policy)
            .match_requests(|r| r.policy_arn() == Some(POLICY_ARN))
            .then_output(|| {
                aws_sdk_iam::operation::delete_policy::DeletePolicyOutput::builder().build()
            });
        let iam = sdk(mocked!(
            aws_sdk_iam,
            RuleMode::Sequential,
            [&list, &delete_v1, &delete_v2, &delete]
        ));
        iam.delete_managed_policy(POLICY_ARN).await.unwrap();
        assert_eq!(delete.num_calls(), 1);

        let missing = mock!(Iam::list_policy_versions)
            .then_http_response(|| http_error(404, "NoSuchEntity", "Policy does not exist."));
        let iam = sdk(mocked!(aws_sdk_iam, [&missing]));
        let err = iam.delete_managed_policy(POLICY_ARN).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn attached_policies_follow_pages() {
        let attached = |arn: &str| {
            aws_sdk_iam::types::AttachedPolicy::builder()
                .policy_arn(arn)
                .policy_name("p")
                .build()
        };
        let first = mock!(Iam::list_attached_role_policies)
            .match_requests(|r| r.role_name() == Some("payments-api") && r.marker().is_none())
            .then_output(move || {
                aws_sdk_iam::operation::list_attached_role_policies::ListAttachedRolePoliciesOutput::builder()
                    .attached_policies(attached("arn:aws:iam::aws:policy/ReadOnlyAccess"))
                    .is_truncated(true)
                    .marker("next")
                    .build()
            });
        let second = mock!(Iam::list_attached_role_policies)
            .match_requests(|r| r.marker() == Some("next"))
            .then_output(move || {
                aws_sdk_iam::operation::list_attached_role_policies::ListAttachedRolePoliciesOutput::builder()
                    .attached_policies(attached(POLICY_ARN))
                    .is_truncated(false)
                    .build()
            });
        let users = mock!(Iam::list_attached_user_policies)
            .match_requests(|r| r.user_name() == Some("alice"))
            .then_output(|| {
                aws_sdk_iam::operation::list_attached_user_policies::ListAttachedUserPoliciesOutput::builder()
                    .is_truncated(false)
                    .build()
            });
        let iam = sdk(mocked!(
            aws_sdk_iam,
            RuleMode::Sequential,
            [&first, &second, &users]
        ));
        assert_eq!(
            iam.attached_policies(&role("payments-api")).await.unwrap(),
            ["arn:aws:iam::aws:policy/ReadOnlyAccess", POLICY_ARN]
        );
        assert!(
            iam.attached_policies(&user("alice"))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn attach_and_detach_name_the_principal_and_policy() {
        let attach = mock!(Iam::attach_role_policy)
            .match_requests(|r| {
                r.role_name() == Some("payments-api") && r.policy_arn() == Some(POLICY_ARN)
            })
            .then_output(|| {
                aws_sdk_iam::operation::attach_role_policy::AttachRolePolicyOutput::builder()
                    .build()
            });
        let full = mock!(Iam::attach_user_policy).then_http_response(|| {
            http_error(
                409,
                "LimitExceeded",
                "Cannot exceed quota for PoliciesPerUser: 10",
            )
        });
        let detach = mock!(Iam::detach_role_policy)
            .match_requests(|r| {
                r.role_name() == Some("payments-api") && r.policy_arn() == Some(POLICY_ARN)
            })
            .then_output(|| {
                aws_sdk_iam::operation::detach_role_policy::DetachRolePolicyOutput::builder()
                    .build()
            });
        let detach_user = mock!(Iam::detach_user_policy).then_http_response(|| {
            http_error(404, "NoSuchEntity", "Policy is not attached to user alice.")
        });
        let iam = sdk(mocked!(
            aws_sdk_iam,
            RuleMode::Sequential,
            [&attach, &full, &detach, &detach_user]
        ));
        iam.attach_policy(&role("payments-api"), POLICY_ARN)
            .await
            .unwrap();
        let err = iam
            .attach_policy(&user("alice"), POLICY_ARN)
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, err.operation),
            (ErrorKind::Quota, "iam:AttachUserPolicy")
        );
        assert_eq!(
            err.context,
            format!("on user `alice` in 111122223333, policy `{POLICY_ARN}`")
        );
        iam.detach_policy(&role("payments-api"), POLICY_ARN)
            .await
            .unwrap();
        let err = iam
            .detach_policy(&user("alice"), POLICY_ARN)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }

    // ---- Access keys and quotas ----

    #[tokio::test]
    async fn access_keys_are_set_inactive_never_deleted() {
        let key = AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").unwrap();
        let update = mock!(Iam::update_access_key)
            .match_requests(|r| {
                r.user_name() == Some("alice")
                    && r.access_key_id() == Some("AKIAIOSFODNN7EXAMPLE")
                    && r.status() == Some(&StatusType::Inactive)
            })
            .then_output(|| {
                aws_sdk_iam::operation::update_access_key::UpdateAccessKeyOutput::builder().build()
            });
        let gone = mock!(Iam::update_access_key).then_http_response(|| {
            http_error(
                404,
                "NoSuchEntity",
                "The Access Key with id AKIAIOSFODNN7EXAMPLE cannot be found.",
            )
        });
        let iam = sdk(mocked!(aws_sdk_iam, RuleMode::Sequential, [&update, &gone]));
        iam.deactivate_access_key(&name("alice"), &key)
            .await
            .unwrap();
        let err = iam
            .deactivate_access_key(&name("alice"), &key)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(
            err.context,
            "on access key `AKIAIOSFODNN7EXAMPLE` of user `alice` in 111122223333"
        );
    }

    #[tokio::test]
    async fn account_summary_reads_the_quota_keys() {
        let full = mock!(Iam::get_account_summary).then_output(|| {
            aws_sdk_iam::operation::get_account_summary::GetAccountSummaryOutput::builder()
                .summary_map(SummaryKeyType::Policies, 42)
                .summary_map(SummaryKeyType::PoliciesQuota, 1500)
                .summary_map(SummaryKeyType::AttachedPoliciesPerRoleQuota, 10)
                .summary_map(SummaryKeyType::AttachedPoliciesPerUserQuota, 20)
                .summary_map(SummaryKeyType::Roles, 7)
                .build()
        });
        let partial = mock!(Iam::get_account_summary).then_output(|| {
            aws_sdk_iam::operation::get_account_summary::GetAccountSummaryOutput::builder()
                .summary_map(SummaryKeyType::Policies, 42)
                .build()
        });
        let throttled = mock!(Iam::get_account_summary)
            .then_http_response(|| http_error(400, "Throttling", "Rate exceeded"));
        let iam = sdk(mocked!(
            aws_sdk_iam,
            RuleMode::Sequential,
            [&full, &partial, &throttled]
        ));
        assert_eq!(
            iam.account_summary().await.unwrap(),
            AccountSummary {
                policies: 42,
                policies_quota: 1500,
                attached_policies_per_role_quota: 10,
                attached_policies_per_user_quota: 20,
            }
        );
        let err = iam.account_summary().await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Malformed);
        assert!(err.message.contains("PoliciesQuota"), "{err}");
        assert_eq!(
            iam.account_summary().await.unwrap_err().kind,
            ErrorKind::Throttled
        );
    }

    #[tokio::test]
    async fn the_policy_simulator_answer_is_read_as_the_decision_or_an_error() {
        use crate::PolicySimulator;
        use aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyOutput;
        use aws_sdk_iam::types::{EvaluationResult, PolicyEvaluationDecisionType as D};
        use cutoff_domain::self_check::Decision;
        let answer = |decision: D| {
            mock!(Iam::simulate_principal_policy)
                .match_requests(|r| {
                    let context: Vec<(&str, &str, &str)> = r
                        .context_entries()
                        .iter()
                        .map(|e| {
                            (
                                e.context_key_name().unwrap_or(""),
                                e.context_key_values().first().map_or("", String::as_str),
                                e.context_key_type().map_or("", |t| t.as_str()),
                            )
                        })
                        .collect();
                    r.policy_source_arn() == Some("arn:aws:iam::444455556666:role/cutoff-member")
                        && r.action_names() == ["iam:PutRolePolicy"]
                        && r.resource_arns() == ["arn:aws:iam::444455556666:role/sample"]
                        && context
                            == [
                                ("aws:RequestedRegion", "us-east-1", "string"),
                                ("aws:SecureTransport", "true", "boolean"),
                            ]
                })
                .then_output(move || {
                    SimulatePrincipalPolicyOutput::builder()
                        .evaluation_results(
                            EvaluationResult::builder()
                                .eval_action_name("iam:PutRolePolicy")
                                .eval_decision(decision.clone())
                                .missing_context_values("aws:PrincipalTag/team")
                                .build()
                                .unwrap(),
                        )
                        .build()
                })
        };
        let (allowed, implicit, explicit) = (
            answer(D::Allowed),
            answer(D::ImplicitDeny),
            answer(D::ExplicitDeny),
        );
        let none = mock!(Iam::simulate_principal_policy)
            .then_output(|| SimulatePrincipalPolicyOutput::builder().build());
        let refused = mock!(Iam::simulate_principal_policy).then_http_response(|| {
            http_error(
                403,
                "AccessDenied",
                "not authorized to SimulatePrincipalPolicy",
            )
        });
        let iam = sdk(mocked!(
            aws_sdk_iam,
            RuleMode::Sequential,
            [&allowed, &implicit, &explicit, &none, &refused]
        ));
        let context = [
            cutoff_domain::self_check::ContextValue {
                key: "aws:RequestedRegion",
                value: "us-east-1".to_owned(),
                boolean: false,
            },
            cutoff_domain::self_check::ContextValue {
                key: "aws:SecureTransport",
                value: "true".to_owned(),
                boolean: true,
            },
        ];
        let ask = || {
            iam.simulate(
                "arn:aws:iam::444455556666:role/cutoff-member",
                "iam:PutRolePolicy",
                "arn:aws:iam::444455556666:role/sample",
                &context,
            )
        };
        let first = ask().await.unwrap();
        assert_eq!(first.decision, Decision::Allowed);
        assert_eq!(first.missing_context, ["aws:PrincipalTag/team"]);
        assert_eq!(ask().await.unwrap().decision, Decision::ImplicitDeny);
        assert_eq!(ask().await.unwrap().decision, Decision::ExplicitDeny);
        assert_eq!(ask().await.unwrap_err().kind, ErrorKind::Malformed);
        let err = ask().await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::AccessDenied, "{err}");
        assert!(err.operation.contains("SimulatePrincipalPolicy"), "{err}");
    }
}
