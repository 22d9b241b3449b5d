//! IAM Identity Center, for the opt-in integration: who an Identity Center user is
//! (the identity store), what they can use (account assignments, directly and through
//! their groups), and the inline policies of permission sets with their provisioning
//! (SSO admin). [`Directory`] is the port, [`SdkDirectory`] its SDK implementation
//! (through a role in the Identity Center administration account), and `fake` the
//! in-memory one (feature `test-support`).
//!
//! The port is object-safe (boxed futures): a deployment has the integration or not,
//! decided at start, and the revoker holds `Option<Arc<dyn Directory>>` rather than
//! growing a type parameter every workflow would carry.
//!
//! Each method is one API call (one page of a list), as for every port: the workflow
//! retries and counts ([`crate::retry::with_retries`]).
//!
//! Actions called: `sso:ListInstances`, `identitystore:GetUserId`,
//! `identitystore:ListGroupMembershipsForMember`,
//! `sso:ListAccountAssignmentsForPrincipal`, `sso:DescribePermissionSet`,
//! `sso:ListPermissionSets`, `sso:GetInlinePolicyForPermissionSet`,
//! `sso:PutInlinePolicyToPermissionSet`, `sso:DeleteInlinePolicyFromPermissionSet`,
//! `sso:ProvisionPermissionSet`, `sso:DescribePermissionSetProvisioningStatus`; for the
//! SCP variant, `organizations:DescribePolicy`, `organizations:UpdatePolicy`,
//! `organizations:ListTargetsForPolicy` and `organizations:ListParents`.

use std::future::Future;
use std::pin::Pin;

use cutoff_domain::identity_center::IdentityStoreUserId;
use cutoff_domain::principal::Account;

use crate::error::{AwsError, ErrorKind, classify};

/// One call's result, boxed so that the trait is object-safe.
pub type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, AwsError>> + Send + 'a>>;

/// One page of a list, and the token of the next (None: the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// An Identity Center instance: the ARN the SSO admin API takes, and its identity
/// store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub arn: String,
    pub identity_store_id: String,
}

/// Whose account assignments to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignee {
    User(IdentityStoreUserId),
    /// A group's id in the identity store.
    Group(String),
}

/// A permission set assigned in an account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Assignment {
    pub account: Account,
    pub permission_set_arn: String,
}

/// Where a permission set's provisioning stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioning {
    InProgress { request_id: String },
    Succeeded,
    Failed { reason: String },
}

/// Identity Center, as the integration uses it.
pub trait Directory: Send + Sync {
    /// `sso:ListInstances` (one page). An Organization has one instance.
    fn instances(&self, next: Option<String>) -> Call<'_, Page<Instance>>;

    /// `identitystore:GetUserId` by user name; None when no user has it.
    fn user_id<'a>(
        &'a self,
        store: &'a str,
        user_name: &'a str,
    ) -> Call<'a, Option<IdentityStoreUserId>>;

    /// `identitystore:ListGroupMembershipsForMember` (one page): the user's groups.
    fn groups_of<'a>(
        &'a self,
        store: &'a str,
        user: &'a IdentityStoreUserId,
        next: Option<String>,
    ) -> Call<'a, Page<String>>;

    /// `sso:ListAccountAssignmentsForPrincipal` (one page): what the user or group
    /// is assigned directly (a user's groups are asked one by one).
    fn assignments<'a>(
        &'a self,
        instance: &'a str,
        assignee: &'a Assignee,
        next: Option<String>,
    ) -> Call<'a, Page<Assignment>>;

    /// `sso:ListPermissionSets` (one page): every permission set of the instance.
    fn permission_sets<'a>(
        &'a self,
        instance: &'a str,
        next: Option<String>,
    ) -> Call<'a, Page<String>>;

    /// `sso:DescribePermissionSet`: its name.
    fn permission_set_name<'a>(
        &'a self,
        instance: &'a str,
        permission_set: &'a str,
    ) -> Call<'a, String>;

    /// `sso:GetInlinePolicyForPermissionSet`; None when it has none.
    fn inline_policy<'a>(
        &'a self,
        instance: &'a str,
        permission_set: &'a str,
    ) -> Call<'a, Option<String>>;

    /// `sso:PutInlinePolicyToPermissionSet`.
    fn put_inline_policy<'a>(
        &'a self,
        instance: &'a str,
        permission_set: &'a str,
        document: &'a str,
    ) -> Call<'a, ()>;

    /// `sso:DeleteInlinePolicyFromPermissionSet`.
    fn delete_inline_policy<'a>(
        &'a self,
        instance: &'a str,
        permission_set: &'a str,
    ) -> Call<'a, ()>;

    /// `sso:ProvisionPermissionSet` to one account, or to every account it is
    /// provisioned to (None).
    fn provision<'a>(
        &'a self,
        instance: &'a str,
        permission_set: &'a str,
        account: Option<&'a Account>,
    ) -> Call<'a, Provisioning>;

    /// `sso:DescribePermissionSetProvisioningStatus`.
    fn provisioning<'a>(&'a self, instance: &'a str, request_id: &'a str)
    -> Call<'a, Provisioning>;

    /// `organizations:DescribePolicy`: a service control policy's content (the SCP
    /// variant: cutoff's own policy, attached by the deployer).
    fn service_control_policy<'a>(&'a self, policy_id: &'a str) -> Call<'a, String>;

    /// `organizations:UpdatePolicy`: its new content.
    fn update_service_control_policy<'a>(
        &'a self,
        policy_id: &'a str,
        content: &'a str,
    ) -> Call<'a, ()>;

    /// `organizations:ListTargetsForPolicy` (one page): the roots, OUs and accounts a
    /// policy is attached to, by id.
    fn policy_targets<'a>(
        &'a self,
        policy_id: &'a str,
        next: Option<String>,
    ) -> Call<'a, Page<String>>;

    /// `organizations:ListParents`: the parent (an OU or the root) of an account or
    /// OU, by id; None for a root.
    fn parent<'a>(&'a self, child_id: &'a str) -> Call<'a, Option<String>>;
}

/// Identity Center through the SDK, in the instance's region, with the credentials of
/// the integration's role (assumed when the first call needs them: most invocations
/// never do).
#[derive(Clone)]
pub struct SdkDirectory {
    sso: aws_sdk_ssoadmin::Client,
    store: aws_sdk_identitystore::Client,
    organizations: aws_sdk_organizations::Client,
}

impl std::fmt::Debug for SdkDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkDirectory").finish_non_exhaustive()
    }
}

impl SdkDirectory {
    /// Clients in `region`, as `role_arn` (with `external_id`), from `config`'s
    /// credentials. The SDK's credential cache refreshes the role's session; its
    /// retries are off (the workflow retries and counts).
    pub async fn assuming(
        config: &aws_config::SdkConfig,
        role_arn: &str,
        external_id: Option<&str>,
        region: &str,
        session_name: &str,
    ) -> Self {
        let mut provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
            .session_name(session_name)
            .region(aws_config::Region::new(region.to_owned()));
        if let Some(id) = external_id {
            provider = provider.external_id(id);
        }
        let provider = aws_sdk_ssoadmin::config::SharedCredentialsProvider::new(
            provider.configure(config).build().await,
        );
        let region = aws_config::Region::new(region.to_owned());
        let sso = aws_sdk_ssoadmin::config::Builder::from(config)
            .region(region.clone())
            .credentials_provider(provider.clone())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        let store = aws_sdk_identitystore::config::Builder::from(config)
            .region(region.clone())
            .credentials_provider(provider.clone())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        let organizations = aws_sdk_organizations::config::Builder::from(config)
            .region(region)
            .credentials_provider(provider)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        Self::new(
            aws_sdk_ssoadmin::Client::from_conf(sso),
            aws_sdk_identitystore::Client::from_conf(store),
            aws_sdk_organizations::Client::from_conf(organizations),
        )
    }

    /// From clients (tests pass mocked ones).
    pub fn new(
        sso: aws_sdk_ssoadmin::Client,
        store: aws_sdk_identitystore::Client,
        organizations: aws_sdk_organizations::Client,
    ) -> Self {
        Self {
            sso,
            store,
            organizations,
        }
    }
}

/// [`classify`], with Identity Center's `ConflictException` retryable: it answers so
/// while a permission set is being provisioned or changed, and AWS says to retry.
fn classified<E>(
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
    operation: &'static str,
    context: String,
) -> AwsError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut classified = classify(err, operation, context);
    if err.as_service_error().and_then(|e| e.code()) == Some("ConflictException") {
        classified.kind = ErrorKind::Transient;
    }
    classified
}

fn malformed(op: &'static str, context: String, message: &str) -> AwsError {
    AwsError::new(ErrorKind::Malformed, op, context, message)
}

fn provisioning_of(
    op: &'static str,
    context: String,
    status: Option<&aws_sdk_ssoadmin::types::PermissionSetProvisioningStatus>,
) -> Result<Provisioning, AwsError> {
    use aws_sdk_ssoadmin::types::StatusValues;
    let status =
        status.ok_or_else(|| malformed(op, context.clone(), "the response has no status"))?;
    Ok(match status.status() {
        Some(StatusValues::Succeeded) => Provisioning::Succeeded,
        Some(StatusValues::Failed) => Provisioning::Failed {
            reason: status
                .failure_reason()
                .unwrap_or("no reason given")
                .to_owned(),
        },
        // In progress, or a state this build does not know: asked again later.
        _ => Provisioning::InProgress {
            request_id: status
                .request_id()
                .ok_or_else(|| {
                    malformed(op, context, "an unfinished provisioning has no request id")
                })?
                .to_owned(),
        },
    })
}

impl Directory for SdkDirectory {
    fn instances(&self, next: Option<String>) -> Call<'_, Page<Instance>> {
        Box::pin(async move {
            const OP: &str = "sso:ListInstances";
            let out = self
                .sso
                .list_instances()
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| classified(&e, OP, String::new()))?;
            let items = out
                .instances()
                .iter()
                .filter_map(|i| {
                    Some(Instance {
                        arn: i.instance_arn()?.to_owned(),
                        identity_store_id: i.identity_store_id()?.to_owned(),
                    })
                })
                .collect();
            Ok(Page {
                items,
                next: out.next_token().map(str::to_owned),
            })
        })
    }

    fn user_id<'a>(
        &'a self,
        store: &'a str,
        user_name: &'a str,
    ) -> Call<'a, Option<IdentityStoreUserId>> {
        Box::pin(async move {
            use aws_sdk_identitystore::types::{AlternateIdentifier, UniqueAttribute};
            const OP: &str = "identitystore:GetUserId";
            let context = format!("for user name `{user_name}`");
            let attribute = UniqueAttribute::builder()
                .attribute_path("userName")
                .attribute_value(aws_smithy_types::Document::String(user_name.to_owned()))
                .build()
                .map_err(|e| malformed(OP, context.clone(), &e.to_string()))?;
            let result = self
                .store
                .get_user_id()
                .identity_store_id(store)
                .alternate_identifier(AlternateIdentifier::UniqueAttribute(attribute))
                .send()
                .await;
            match result {
                Ok(out) => IdentityStoreUserId::parse(out.user_id())
                    .map(Some)
                    .map_err(|e| malformed(OP, context, &e.to_string())),
                Err(e) => {
                    let err = classified(&e, OP, context);
                    if err.kind == ErrorKind::NotFound {
                        Ok(None)
                    } else {
                        Err(err)
                    }
                }
            }
        })
    }

    fn groups_of<'a>(
        &'a self,
        store: &'a str,
        user: &'a IdentityStoreUserId,
        next: Option<String>,
    ) -> Call<'a, Page<String>> {
        Box::pin(async move {
            use aws_sdk_identitystore::types::MemberId;
            const OP: &str = "identitystore:ListGroupMembershipsForMember";
            let out = self
                .store
                .list_group_memberships_for_member()
                .identity_store_id(store)
                .member_id(MemberId::UserId(user.as_str().to_owned()))
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| classified(&e, OP, format!("for user {user}")))?;
            Ok(Page {
                items: out
                    .group_memberships()
                    .iter()
                    .filter_map(|m| m.group_id().map(str::to_owned))
                    .collect(),
                next: out.next_token().map(str::to_owned),
            })
        })
    }

    fn assignments<'a>(
        &'a self,
        instance: &'a str,
        assignee: &'a Assignee,
        next: Option<String>,
    ) -> Call<'a, Page<Assignment>> {
        Box::pin(async move {
            use aws_sdk_ssoadmin::types::PrincipalType;
            const OP: &str = "sso:ListAccountAssignmentsForPrincipal";
            let (id, kind) = match assignee {
                Assignee::User(user) => (user.as_str(), PrincipalType::User),
                Assignee::Group(group) => (group.as_str(), PrincipalType::Group),
            };
            let context = format!("for {} {id}", kind.as_str().to_ascii_lowercase());
            let out = self
                .sso
                .list_account_assignments_for_principal()
                .instance_arn(instance)
                .principal_id(id)
                .principal_type(kind)
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| classified(&e, OP, context.clone()))?;
            let mut items = Vec::new();
            for assignment in out.account_assignments() {
                let (Some(account), Some(permission_set)) =
                    (assignment.account_id(), assignment.permission_set_arn())
                else {
                    continue;
                };
                // An account id that is not one is AWS's malformation, not a reason to
                // skip a place the user can reach: the whole answer is refused.
                let account = Account::parse(account)
                    .map_err(|e| malformed(OP, context.clone(), &e.to_string()))?;
                items.push(Assignment {
                    account,
                    permission_set_arn: permission_set.to_owned(),
                });
            }
            Ok(Page {
                items,
                next: out.next_token().map(str::to_owned),
            })
        })
    }

    fn permission_sets<'a>(
        &'a self,
        instance: &'a str,
        next: Option<String>,
    ) -> Call<'a, Page<String>> {
        Box::pin(async move {
            const OP: &str = "sso:ListPermissionSets";
            let out = self
                .sso
                .list_permission_sets()
                .instance_arn(instance)
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| classified(&e, OP, String::new()))?;
            Ok(Page {
                items: out.permission_sets().to_vec(),
                next: out.next_token().map(str::to_owned),
            })
        })
    }

    fn permission_set_name<'a>(
        &'a self,
        instance: &'a str,
        permission_set: &'a str,
    ) -> Call<'a, String> {
        Box::pin(async move {
            const OP: &str = "sso:DescribePermissionSet";
            let context = format!("on {permission_set}");
            let out = self
                .sso
                .describe_permission_set()
                .instance_arn(instance)
                .permission_set_arn(permission_set)
                .send()
                .await
                .map_err(|e| classified(&e, OP, context.clone()))?;
            out.permission_set()
                .and_then(|p| p.name())
                .map(str::to_owned)
                .ok_or_else(|| malformed(OP, context, "the permission set has no name"))
        })
    }

    fn inline_policy<'a>(
        &'a self,
        instance: &'a str,
        permission_set: &'a str,
    ) -> Call<'a, Option<String>> {
        Box::pin(async move {
            const OP: &str = "sso:GetInlinePolicyForPermissionSet";
            let out = self
                .sso
                .get_inline_policy_for_permission_set()
                .instance_arn(instance)
                .permission_set_arn(permission_set)
                .send()
                .await
                .map_err(|e| classified(&e, OP, format!("on {permission_set}")))?;
            Ok(out
                .inline_policy()
                .filter(|p| !p.trim().is_empty())
                .map(str::to_owned))
        })
    }

    fn put_inline_policy<'a>(
        &'a self,
        instance: &'a str,
        permission_set: &'a str,
        document: &'a str,
    ) -> Call<'a, ()> {
        Box::pin(async move {
            const OP: &str = "sso:PutInlinePolicyToPermissionSet";
            self.sso
                .put_inline_policy_to_permission_set()
                .instance_arn(instance)
                .permission_set_arn(permission_set)
                .inline_policy(document)
                .send()
                .await
                .map_err(|e| classified(&e, OP, format!("on {permission_set}")))?;
            Ok(())
        })
    }

    fn delete_inline_policy<'a>(
        &'a self,
        instance: &'a str,
        permission_set: &'a str,
    ) -> Call<'a, ()> {
        Box::pin(async move {
            const OP: &str = "sso:DeleteInlinePolicyFromPermissionSet";
            self.sso
                .delete_inline_policy_from_permission_set()
                .instance_arn(instance)
                .permission_set_arn(permission_set)
                .send()
                .await
                .map_err(|e| classified(&e, OP, format!("on {permission_set}")))?;
            Ok(())
        })
    }

    fn provision<'a>(
        &'a self,
        instance: &'a str,
        permission_set: &'a str,
        account: Option<&'a Account>,
    ) -> Call<'a, Provisioning> {
        Box::pin(async move {
            use aws_sdk_ssoadmin::types::ProvisionTargetType;
            const OP: &str = "sso:ProvisionPermissionSet";
            let context = match account {
                Some(account) => format!("of {permission_set} to {account}"),
                None => format!("of {permission_set} to every account it is provisioned to"),
            };
            let request = self
                .sso
                .provision_permission_set()
                .instance_arn(instance)
                .permission_set_arn(permission_set);
            let request = match account {
                Some(account) => request
                    .target_type(ProvisionTargetType::AwsAccount)
                    .target_id(account.as_str()),
                None => request.target_type(ProvisionTargetType::AllProvisionedAccounts),
            };
            let out = request
                .send()
                .await
                .map_err(|e| classified(&e, OP, context.clone()))?;
            provisioning_of(OP, context, out.permission_set_provisioning_status())
        })
    }

    fn provisioning<'a>(
        &'a self,
        instance: &'a str,
        request_id: &'a str,
    ) -> Call<'a, Provisioning> {
        Box::pin(async move {
            const OP: &str = "sso:DescribePermissionSetProvisioningStatus";
            let context = format!("of request {request_id}");
            let out = self
                .sso
                .describe_permission_set_provisioning_status()
                .instance_arn(instance)
                .provision_permission_set_request_id(request_id)
                .send()
                .await
                .map_err(|e| classified(&e, OP, context.clone()))?;
            provisioning_of(OP, context, out.permission_set_provisioning_status())
        })
    }

    fn service_control_policy<'a>(&'a self, policy_id: &'a str) -> Call<'a, String> {
        Box::pin(async move {
            const OP: &str = "organizations:DescribePolicy";
            let context = format!("on {policy_id}");
            let out = self
                .organizations
                .describe_policy()
                .policy_id(policy_id)
                .send()
                .await
                .map_err(|e| classified(&e, OP, context.clone()))?;
            let policy = out
                .policy()
                .ok_or_else(|| malformed(OP, context.clone(), "the response has no policy"))?;
            // Only a service control policy: cutoff's deny means nothing in another
            // type, and a misconfigured id must not be written as if it did.
            let kind = policy.policy_summary().and_then(|s| s.r#type());
            if kind != Some(&aws_sdk_organizations::types::PolicyType::ServiceControlPolicy) {
                return Err(malformed(
                    OP,
                    context,
                    "the policy is not a service control policy",
                ));
            }
            policy
                .content()
                .map(str::to_owned)
                .ok_or_else(|| malformed(OP, context, "the policy has no content"))
        })
    }

    fn update_service_control_policy<'a>(
        &'a self,
        policy_id: &'a str,
        content: &'a str,
    ) -> Call<'a, ()> {
        Box::pin(async move {
            const OP: &str = "organizations:UpdatePolicy";
            self.organizations
                .update_policy()
                .policy_id(policy_id)
                .content(content)
                .send()
                .await
                .map_err(|e| classified(&e, OP, format!("on {policy_id}")))?;
            Ok(())
        })
    }
    fn policy_targets<'a>(
        &'a self,
        policy_id: &'a str,
        next: Option<String>,
    ) -> Call<'a, Page<String>> {
        Box::pin(async move {
            const OP: &str = "organizations:ListTargetsForPolicy";
            let out = self
                .organizations
                .list_targets_for_policy()
                .policy_id(policy_id)
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| classified(&e, OP, format!("on {policy_id}")))?;
            Ok(Page {
                items: out
                    .targets()
                    .iter()
                    .filter_map(|t| t.target_id().map(str::to_owned))
                    .collect(),
                next: out.next_token().map(str::to_owned),
            })
        })
    }

    fn parent<'a>(&'a self, child_id: &'a str) -> Call<'a, Option<String>> {
        Box::pin(async move {
            const OP: &str = "organizations:ListParents";
            let out = self
                .organizations
                .list_parents()
                .child_id(child_id)
                .send()
                .await
                .map_err(|e| classified(&e, OP, format!("of {child_id}")))?;
            // An account or OU has exactly one parent.
            Ok(out
                .parents()
                .first()
                .and_then(|p| p.id())
                .map(str::to_owned))
        })
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod fake;

#[cfg(test)]
mod tests;
