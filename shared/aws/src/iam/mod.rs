//! IAM, in one account: the ports the revocation and the sweep act through
//! ([`Principals`], [`InlinePolicies`], [`ManagedPolicies`], [`AccessKeys`],
//! [`AccountQuotas`], [`PolicySimulator`]; [`IamApi`] is the first five together),
//! their SDK implementation [`SdkIam`], the paged read of a whole account
//! ([`paged`]), and the in-memory fake (`fake`, feature `test-support`).

mod sdk;

pub mod paged;

#[cfg(any(test, feature = "test-support"))]
pub mod fake;

pub use sdk::SdkIam;

use std::future::Future;

use crate::error::AwsError;
use cutoff_domain::principal::{IamPath, PrincipalName, PrincipalType, UniqueId};

/// A role or user by name, in the account of the client it is used with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IamPrincipal {
    pub kind: PrincipalType,
    pub name: PrincipalName,
}

impl IamPrincipal {
    pub fn role(name: PrincipalName) -> Self {
        Self {
            kind: PrincipalType::Role,
            name,
        }
    }

    pub fn user(name: PrincipalName) -> Self {
        Self {
            kind: PrincipalType::User,
            name,
        }
    }
}

impl std::fmt::Display for IamPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} `{}`", self.kind.as_str(), self.name)
    }
}

/// What `GetRole`/`GetUser` tell us about a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalInfo {
    pub principal: IamPrincipal,
    pub path: IamPath,
    /// `AROA…` for roles, `AIDA…` for users: the first half of `aws:userid`.
    pub unique_id: UniqueId,
    pub arn: String,
    /// Tags in IAM's order (`cutoff:owner`, `cutoff:notify`, `cutoff:protected`…).
    pub tags: Vec<(String, String)>,
}

impl PrincipalInfo {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The account-wide quotas that decide whether a managed-policy fallback fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountSummary {
    /// Customer-managed policies in the account, and the quota.
    pub policies: u32,
    pub policies_quota: u32,
    /// Managed policies that can be attached to one role / one user.
    pub attached_policies_per_role_quota: u32,
    pub attached_policies_per_user_quota: u32,
}

/// `iam:GetRole`, `iam:GetUser`, `iam:GetInstanceProfile`.
pub trait Principals: Send + Sync {
    fn get_principal(
        &self,
        principal: &IamPrincipal,
    ) -> impl Future<Output = Result<PrincipalInfo, AwsError>> + Send;

    /// The roles of an instance profile (IAM allows at most one).
    fn instance_profile_roles(
        &self,
        profile: &PrincipalName,
    ) -> impl Future<Output = Result<Vec<PrincipalName>, AwsError>> + Send;
}

/// `iam:{Get,Put,Delete}{Role,User}Policy`, `iam:List{Role,User}Policies`.
pub trait InlinePolicies: Send + Sync {
    /// The document as IAM returns it (URL-encoded), or None when the policy does not
    /// exist.
    fn get_inline_policy(
        &self,
        principal: &IamPrincipal,
        policy_name: &str,
    ) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;

    fn list_inline_policies(
        &self,
        principal: &IamPrincipal,
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;

    fn put_inline_policy(
        &self,
        principal: &IamPrincipal,
        policy_name: &str,
        document: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    fn delete_inline_policy(
        &self,
        principal: &IamPrincipal,
        policy_name: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// A customer-managed policy, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicy {
    pub arn: String,
    /// The default version's document, URL-encoded as IAM returns it.
    pub document: String,
}

/// The customer-managed fallback policy `cutoff-revoke-<name>`:
/// `iam:GetPolicy`, `iam:GetPolicyVersion`, `iam:CreatePolicy`,
/// `iam:CreatePolicyVersion`, `iam:ListPolicyVersions`, `iam:DeletePolicyVersion`,
/// `iam:DeletePolicy`, `iam:{Attach,Detach}{Role,User}Policy`,
/// `iam:ListAttached{Role,User}Policies`.
pub trait ManagedPolicies: Send + Sync {
    /// The ARN of a customer-managed policy in this account.
    fn managed_policy_arn(&self, path: &IamPath, name: &str) -> String;

    fn get_managed_policy(
        &self,
        arn: &str,
    ) -> impl Future<Output = Result<Option<ManagedPolicy>, AwsError>> + Send;

    /// Creates the policy, or adds a new default version (deleting the oldest
    /// non-default version when all five are used). Returns its ARN.
    fn put_managed_policy(
        &self,
        path: &IamPath,
        name: &str,
        document: &str,
    ) -> impl Future<Output = Result<String, AwsError>> + Send;

    fn delete_managed_policy(&self, arn: &str)
    -> impl Future<Output = Result<(), AwsError>> + Send;

    /// ARNs of the managed policies attached to the principal.
    fn attached_policies(
        &self,
        principal: &IamPrincipal,
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;

    fn attach_policy(
        &self,
        principal: &IamPrincipal,
        arn: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    fn detach_policy(
        &self,
        principal: &IamPrincipal,
        arn: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// An IAM user's access key, as `ListAccessKeys` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyInfo {
    pub id: cutoff_domain::principal::AccessKeyId,
    pub active: bool,
}

/// A user's keys: `iam:UpdateAccessKey` (to `Inactive` only: keys are evidence and
/// never deleted) and `iam:ListAccessKeys`; and, read only, the other ways into a user
/// that a deny on sessions does not touch: `iam:GetLoginProfile`,
/// `iam:ListSSHPublicKeys`, `iam:ListServiceSpecificCredentials`.
pub trait AccessKeys: Send + Sync {
    fn deactivate_access_key(
        &self,
        user: &PrincipalName,
        access_key_id: &cutoff_domain::principal::AccessKeyId,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Every access key of the user (IAM allows two).
    fn list_access_keys(
        &self,
        user: &PrincipalName,
    ) -> impl Future<Output = Result<Vec<AccessKeyInfo>, AwsError>> + Send;

    /// Whether the user has a console password.
    fn has_login_profile(
        &self,
        user: &PrincipalName,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;

    /// Ids of the user's active SSH public keys (CodeCommit).
    fn active_ssh_public_keys(
        &self,
        user: &PrincipalName,
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;

    /// Services of the user's active service-specific credentials (CodeCommit,
    /// Keyspaces, Bedrock…).
    fn active_service_credentials(
        &self,
        user: &PrincipalName,
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
}

/// `iam:GetAccountSummary`.
pub trait AccountQuotas: Send + Sync {
    fn account_summary(&self) -> impl Future<Output = Result<AccountSummary, AwsError>> + Send;
}

/// `iam:SimulatePrincipalPolicy` on the role cutoff acts with in an account: AWS's own
/// policy simulator (the role's policies, its permissions boundary and the
/// organization's SCPs) answering whether that role may do `action` on `resource`.
/// The revoker's self-check ([`cutoff_domain::self_check`]) asks it.
pub trait PolicySimulator: Send + Sync {
    fn simulate(
        &self,
        principal_arn: &str,
        action: &str,
        resource: &str,
        context: &[cutoff_domain::self_check::ContextValue],
    ) -> impl Future<Output = Result<cutoff_domain::self_check::Simulated, AwsError>> + Send;
}

/// Everything the revocation workflow does in one account.
pub trait IamApi:
    Principals + InlinePolicies + ManagedPolicies + AccessKeys + AccountQuotas
{
}
impl<T: Principals + InlinePolicies + ManagedPolicies + AccessKeys + AccountQuotas> IamApi for T {}
