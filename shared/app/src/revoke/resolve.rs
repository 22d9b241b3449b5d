//! Resolve: from the request's target to the IAM principal that holds policies, read
//! and checked. Two steps, because the lock of an instance profile is its role's and
//! so must be known before the lock is taken: [`Revoker::locate`] reaches the account
//! and names the principal, [`Revoker::inspect`] reads it and checks that cutoff may
//! write it.

use std::sync::Arc;

use cutoff_aws::retry::CallCounter;
use cutoff_aws::retrying::Retrying;
use cutoff_aws::{AccountAccess, IamPrincipal, PrincipalInfo, PrincipalType, Principals};
use cutoff_domain::clock::Clock;
use cutoff_domain::outcome::{
    FailureKind, PROTECTED_TAG, RevocationRequest, Status, owner_from_tags,
};
use cutoff_domain::principal::{RoleClass, Target, TargetKind, classify_role_path};

use super::{Record, Revoker, Stop};
use cutoff_aws::dynamodb::Ledger;

/// What the request is for: a revocation is refused for a protected principal, while
/// lifting a deny (release) or reading it (status) never locks anyone out and is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Revoke,
    LiftOrRead,
}

/// The target reached: its account's client and the principal whose policies are
/// written.
pub(super) struct Located<C> {
    pub client: C,
    pub principal: IamPrincipal,
    /// What resolving it says (an instance profile's role).
    pub notes: Vec<String>,
}

/// The principal read and checked: one cutoff may write.
pub(super) struct Resolved<C> {
    pub client: C,
    pub principal: IamPrincipal,
    pub info: PrincipalInfo,
    /// What resolving it says, for the outcome's detail.
    pub notes: Vec<String>,
    /// A permission set's role (at the path IAM reserves for Identity Center) with
    /// the integration on: the user is contained through the permission sets, not
    /// this role.
    pub identity_center: bool,
}

/// Why IAM cannot restrict this kind of principal at all (None: it can).
pub(super) fn unmodifiable_reason(kind: TargetKind) -> Option<&'static str> {
    Some(match kind {
        // A role whose name only looks reserved is a role until IAM's path says
        // otherwise (anyone allowed iam:CreateRole chooses names).
        TargetKind::Role
        | TargetKind::User
        | TargetKind::InstanceProfile
        | TargetKind::ServiceLinkedRole
        | TargetKind::IdentityCenterRole => return None,
        TargetKind::Root => {
            "IAM policies cannot restrict the root user; rotate its credentials and check its MFA"
        }
        TargetKind::FederatedUser => {
            "federated users have no IAM principal to hold a deny; revoke the IAM user that called GetFederationToken"
        }
        TargetKind::Unknown => "cutoff does not know how to revoke this kind of principal",
    })
}

/// Refuses a role at a path IAM reserves. The path IAM returned decides, never the
/// name: IAM reserves these paths for the service and for Identity Center.
fn refuse_reserved_path(principal: &IamPrincipal, info: &PrincipalInfo) -> Result<(), Stop> {
    match reserved_path_reason(classify_role_path(&info.path)) {
        None => Ok(()),
        Some(reason) => Err(Stop::with(
            Status::Unmodifiable,
            format!("{principal} (path {}): {reason}", info.path),
        )),
    }
}

/// Why a role at this path (as IAM returned it) cannot be written.
fn reserved_path_reason(class: RoleClass) -> Option<&'static str> {
    match class {
        RoleClass::Ordinary => None,
        RoleClass::ServiceLinked => {
            Some("service-linked roles are owned by an AWS service and IAM refuses changes to them")
        }
        RoleClass::IdentityCenter => Some(
            "Identity Center roles are managed by their permission set; add the deny to the permission set's inline policy instead",
        ),
    }
}

impl<A: AccountAccess, K: Clock, L: Ledger> Revoker<A, K, L> {
    /// Refuses, before any call, a target IAM cannot restrict or (for a revocation)
    /// that is protected.
    pub(super) fn refuse_target(&self, target: &Target, purpose: Purpose) -> Result<(), Stop> {
        if let Some(reason) = unmodifiable_reason(target.kind) {
            return Err(Stop::with(
                Status::Unmodifiable,
                format!("{target}: {reason}"),
            ));
        }
        if purpose == Purpose::Revoke
            && let Some(why) = self.config.protection.reason_for(target)
        {
            return Err(Stop::with(
                Status::Protected,
                format!("{target} is protected ({why}); cutoff never revokes it"),
            ));
        }
        Ok(())
    }

    /// Refuses an account outside the configured Organization list, before any call.
    pub(super) fn refuse_account(&self, request: &RevocationRequest) -> Result<(), Stop> {
        let Some(scope) = self.config.accounts.as_ref() else {
            return Ok(());
        };
        match scope.refuse(&request.target.account, self.access.home()) {
            None => Ok(()),
            Some(why) => Err(Stop::failed(
                FailureKind::AccountNotAllowed,
                format!("{why}; nothing is done there"),
            )),
        }
    }

    /// The client for `account`, retried and counting into the request's `calls`.
    pub(super) async fn client_in(
        &self,
        account: &cutoff_domain::principal::Account,
        request_id: &str,
        calls: &Arc<CallCounter>,
    ) -> Result<Retrying<A::Client>, Stop> {
        let client = self.access.client_for(account, request_id, calls).await?;
        Ok(Retrying::counting_into(
            client,
            self.config.retry,
            Arc::clone(calls),
        ))
    }

    /// Reaches the target's account and names the principal that holds policies: the
    /// target itself, or the role of an instance profile. Refuses what cannot be
    /// written before reaching into the account at all.
    pub(super) async fn locate(
        &self,
        request: &RevocationRequest,
        request_id: &str,
        calls: &Arc<CallCounter>,
        purpose: Purpose,
        record: &mut Record,
    ) -> Result<Located<Retrying<A::Client>>, Stop> {
        let target = &request.target;
        self.refuse_target(target, purpose)?;
        let client = self.client_in(&target.account, request_id, calls).await?;
        let (principal, notes) = match target.kind {
            TargetKind::InstanceProfile => {
                let role = client
                    .instance_profile_roles(&target.name)
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        Stop::failed(
                            FailureKind::NotFound,
                            format!(
                                "instance profile {} in {} has no role",
                                target.name, target.account
                            ),
                        )
                    })?;
                let resolved = Target {
                    kind: TargetKind::Role,
                    name: role.clone(),
                    ..target.clone()
                };
                match purpose {
                    Purpose::Revoke => {
                        record.shown = Some(resolved.clone());
                        self.refuse_target(&resolved, purpose)?;
                        let note =
                            format!("instance profile {} resolves to role {role}", target.name);
                        (IamPrincipal::role(role), vec![note])
                    }
                    // A release is about the target it names; the role only holds
                    // the policies.
                    Purpose::LiftOrRead => (IamPrincipal::role(role), Vec::new()),
                }
            }
            TargetKind::User => (IamPrincipal::user(target.name.clone()), Vec::new()),
            _ => (IamPrincipal::role(target.name.clone()), Vec::new()),
        };
        Ok(Located {
            client,
            principal,
            notes,
        })
    }

    /// Reads the located principal and, for a revocation, checks that it is one
    /// cutoff may write: not at a path IAM reserves for AWS services or Identity
    /// Center, not protected by tag (when the deployment trusts the tag), and, when
    /// the finding named its unique id, the principal the finding is about (not one
    /// deleted and recreated since).
    pub(super) async fn inspect(
        &self,
        request: &RevocationRequest,
        located: Located<Retrying<A::Client>>,
        purpose: Purpose,
        record: &mut Record,
    ) -> Result<Resolved<Retrying<A::Client>>, Stop> {
        let Located {
            client,
            principal,
            mut notes,
        } = located;
        let info = client.get_principal(&principal).await?;
        let (owner, tag_note) = owner_from_tags(&info.tags, &principal);
        // The owner is told whatever the end, a refusal included.
        record.owner = owner;
        let identity_center = principal.kind == PrincipalType::Role
            && self.identity_center.is_some()
            && classify_role_path(&info.path) == RoleClass::IdentityCenter;
        if identity_center {
            // Not refused: the user behind it is denied in their permission sets
            // (the path IAM returned says it is one; the name alone would not).
            if purpose == Purpose::Revoke {
                self.check_identity(request, &principal, &info)?;
            }
            notes.extend(tag_note);
            return Ok(Resolved {
                client,
                principal,
                info,
                notes,
                identity_center,
            });
        }
        if purpose == Purpose::Revoke {
            if principal.kind == PrincipalType::Role {
                refuse_reserved_path(&principal, &info)?;
                // A name that only looked reserved: it is a role like any other.
                let shown = record.shown.get_or_insert_with(|| request.target.clone());
                if matches!(
                    shown.kind,
                    TargetKind::ServiceLinkedRole | TargetKind::IdentityCenterRole
                ) {
                    shown.kind = TargetKind::Role;
                }
            }
            self.check_identity(request, &principal, &info)?;
            notes.extend(tag_note);
        }
        Ok(Resolved {
            client,
            principal,
            info,
            notes,
            identity_center,
        })
    }

    /// That the principal IAM returned is the finding's, and not protected by tag.
    fn check_identity(
        &self,
        request: &RevocationRequest,
        principal: &IamPrincipal,
        info: &PrincipalInfo,
    ) -> Result<(), Stop> {
        if let Some(expected) = &request.expected_unique_id
            && *expected != info.unique_id
        {
            return Err(Stop::failed(
                FailureKind::PrincipalMismatch,
                format!(
                    "{principal} in {} has the unique id {} but the finding names {expected}: it was deleted and recreated since, or is not the principal in the finding; nothing written",
                    request.target.account, info.unique_id
                ),
            ));
        }
        // The tag lives in the member account, where the attacker being revoked may
        // be able to set it; it protects only when the deployment says it can be
        // trusted (for example, an SCP denies tagging `cutoff:*` keys).
        if self.config.honour_protected_tag
            && info
                .tag(PROTECTED_TAG)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Err(Stop::with(
                Status::Protected,
                format!("{principal} is tagged {PROTECTED_TAG}=true; cutoff never revokes it"),
            ));
        }
        Ok(())
    }
}
