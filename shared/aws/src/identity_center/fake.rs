//! An in-memory Identity Center: users, groups, assignments, permission sets with
//! their inline policies, and provisioning that finishes at once or after a number of
//! status reads (as the real one takes seconds to minutes).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use cutoff_domain::identity_center::IdentityStoreUserId;
use cutoff_domain::principal::Account;

use super::{Assignee, Assignment, Call, Directory, Instance, Page, Provisioning};
use crate::error::{InjectedFailures, not_found};

pub const INSTANCE_ARN: &str = "arn:aws:sso:::instance/ssoins-7223a4f1b1a8e2c0";
pub const STORE_ID: &str = "d-9067a1b2c3";

/// How a provisioning request ends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProvisionPlan {
    /// `SUCCEEDED` in the response itself.
    #[default]
    AtOnce,
    /// `IN_PROGRESS`, then `SUCCEEDED` after this many status reads.
    After(u32),
    /// `IN_PROGRESS`, then `FAILED` with this reason.
    Fails(String),
    /// `IN_PROGRESS` for ever.
    Never,
}

#[derive(Debug, Clone, Default)]
pub struct FakePermissionSet {
    pub name: String,
    pub inline: Option<String>,
    /// The inline policy each account holds, as last provisioned there.
    pub provisioned: BTreeMap<Account, Option<String>>,
}

#[derive(Debug, Default)]
pub struct DirectoryState {
    /// user name → id
    pub users: BTreeMap<String, IdentityStoreUserId>,
    /// user id → its groups
    pub groups: BTreeMap<String, Vec<String>>,
    /// user or group id → what it is assigned
    pub assignments: BTreeMap<String, Vec<Assignment>>,
    pub permission_sets: BTreeMap<String, FakePermissionSet>,
    pub plan: ProvisionPlan,
    /// request id → (permission set, the accounts it provisions, reads left)
    pub requests: BTreeMap<String, (String, Vec<Account>, u32)>,
    /// Items per page of every list (0: all in one).
    pub page_size: usize,
    /// Every write, in order: `put <ps>`, `delete <ps>`, `provision <ps> <account|all>`.
    pub writes: Vec<String>,
    pub failures: InjectedFailures,
    /// policy id → content (the SCP variant).
    pub scps: BTreeMap<String, String>,
    /// policy id → the ids it is attached to.
    pub scp_targets: BTreeMap<String, Vec<String>>,
    /// account or OU id → its parent's id.
    pub parents: BTreeMap<String, String>,
    /// How long each call takes (a slow directory, for the time budgets).
    pub latency: std::time::Duration,
}

#[derive(Debug, Clone, Default)]
pub struct FakeDirectory(pub Arc<Mutex<DirectoryState>>);

fn page<T: Clone>(all: &[T], next: Option<String>, size: usize) -> Page<T> {
    let start: usize = next.and_then(|t| t.parse().ok()).unwrap_or(0);
    let size = if size == 0 { all.len().max(1) } else { size };
    let end = (start + size).min(all.len());
    Page {
        items: all.get(start..end).unwrap_or_default().to_vec(),
        next: (end < all.len()).then(|| end.to_string()),
    }
}

impl FakeDirectory {
    pub fn state(&self) -> MutexGuard<'_, DirectoryState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fail(&self, action: &'static str, kinds: &[crate::ErrorKind]) {
        self.state().failures.plan(action, kinds);
    }

    pub fn add_user(&self, name: &str, id: &str) -> IdentityStoreUserId {
        let id = IdentityStoreUserId::parse(id).unwrap();
        self.state().users.insert(name.to_owned(), id.clone());
        id
    }

    pub fn add_permission_set(&self, arn: &str, name: &str, inline: Option<&str>) {
        self.state().permission_sets.insert(
            arn.to_owned(),
            FakePermissionSet {
                name: name.to_owned(),
                inline: inline.map(str::to_owned),
                provisioned: BTreeMap::new(),
            },
        );
    }

    /// `principal` (a user or group id) is assigned `permission_set` in `account`.
    pub fn assign(&self, principal: &str, account: &str, permission_set: &str) {
        let account = Account::parse(account).unwrap();
        let mut state = self.state();
        state
            .assignments
            .entry(principal.to_owned())
            .or_default()
            .push(Assignment {
                account: account.clone(),
                permission_set_arn: permission_set.to_owned(),
            });
        // Identity Center provisions a permission set where it is assigned.
        if let Some(set) = state.permission_sets.get_mut(permission_set) {
            let inline = set.inline.clone();
            set.provisioned.insert(account, inline);
        }
    }

    pub fn join(&self, user: &IdentityStoreUserId, group: &str) {
        self.state()
            .groups
            .entry(user.as_str().to_owned())
            .or_default()
            .push(group.to_owned());
    }

    pub fn inline(&self, permission_set: &str) -> Option<String> {
        self.state().permission_sets[permission_set].inline.clone()
    }

    /// The inline policy `account` holds of `permission_set`, as last provisioned.
    pub fn provisioned(&self, permission_set: &str, account: &str) -> Option<String> {
        let account = Account::parse(account).unwrap();
        self.state().permission_sets[permission_set]
            .provisioned
            .get(&account)
            .cloned()
            .flatten()
    }

    pub fn writes(&self) -> Vec<String> {
        self.state().writes.clone()
    }

    async fn pause(&self) {
        let latency = self.state().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }
}

impl DirectoryState {
    fn set(
        &mut self,
        op: &'static str,
        arn: &str,
    ) -> Result<&mut FakePermissionSet, crate::AwsError> {
        self.permission_sets
            .get_mut(arn)
            .ok_or_else(|| not_found(op, arn))
    }

    fn land(&mut self, permission_set: &str, accounts: &[Account]) {
        if let Some(set) = self.permission_sets.get_mut(permission_set) {
            let inline = set.inline.clone();
            for account in accounts {
                set.provisioned.insert(account.clone(), inline.clone());
            }
        }
    }
}

impl Directory for FakeDirectory {
    fn instances(&self, next: Option<String>) -> Call<'_, Page<Instance>> {
        Box::pin(async move {
            self.pause().await;
            let mut state = self.state();
            state.failures.take("ListInstances", "in the fake")?;
            let all = [Instance {
                arn: INSTANCE_ARN.to_owned(),
                identity_store_id: STORE_ID.to_owned(),
            }];
            Ok(page(&all, next, state.page_size))
        })
    }

    fn user_id<'a>(
        &'a self,
        _: &'a str,
        user_name: &'a str,
    ) -> Call<'a, Option<IdentityStoreUserId>> {
        Box::pin(async move {
            self.pause().await;
            let mut state = self.state();
            state.failures.take("GetUserId", user_name)?;
            Ok(state.users.get(user_name).cloned())
        })
    }

    fn groups_of<'a>(
        &'a self,
        _: &'a str,
        user: &'a IdentityStoreUserId,
        next: Option<String>,
    ) -> Call<'a, Page<String>> {
        Box::pin(async move {
            self.pause().await;
            let mut state = self.state();
            state
                .failures
                .take("ListGroupMembershipsForMember", user.as_str())?;
            let all = state.groups.get(user.as_str()).cloned().unwrap_or_default();
            Ok(page(&all, next, state.page_size))
        })
    }

    fn assignments<'a>(
        &'a self,
        _: &'a str,
        assignee: &'a Assignee,
        next: Option<String>,
    ) -> Call<'a, Page<Assignment>> {
        Box::pin(async move {
            self.pause().await;
            let mut state = self.state();
            state
                .failures
                .take("ListAccountAssignmentsForPrincipal", "in the fake")?;
            let id = match assignee {
                Assignee::User(user) => user.as_str(),
                Assignee::Group(group) => group.as_str(),
            };
            let all = state.assignments.get(id).cloned().unwrap_or_default();
            Ok(page(&all, next, state.page_size))
        })
    }

    fn permission_sets<'a>(&'a self, _: &'a str, next: Option<String>) -> Call<'a, Page<String>> {
        Box::pin(async move {
            self.pause().await;
            let mut state = self.state();
            state.failures.take("ListPermissionSets", "in the fake")?;
            let all: Vec<String> = state.permission_sets.keys().cloned().collect();
            Ok(page(&all, next, state.page_size))
        })
    }

    fn permission_set_name<'a>(&'a self, _: &'a str, permission_set: &'a str) -> Call<'a, String> {
        Box::pin(async move {
            self.pause().await;
            let mut state = self.state();
            state
                .failures
                .take("DescribePermissionSet", permission_set)?;
            Ok(state
                .set("DescribePermissionSet", permission_set)?
                .name
                .clone())
        })
    }

    fn inline_policy<'a>(
        &'a self,
        _: &'a str,
        permission_set: &'a str,
    ) -> Call<'a, Option<String>> {
        Box::pin(async move {
            self.pause().await;
            let mut state = self.state();
            state
                .failures
                .take("GetInlinePolicyForPermissionSet", permission_set)?;
            Ok(state
                .set("GetInlinePolicyForPermissionSet", permission_set)?
                .inline
                .clone())
        })
    }

    fn put_inline_policy<'a>(
        &'a self,
        _: &'a str,
        permission_set: &'a str,
        document: &'a str,
    ) -> Call<'a, ()> {
        Box::pin(async move {
            self.pause().await;
            let mut state = self.state();
            state
                .failures
                .take("PutInlinePolicyToPermissionSet", permission_set)?;
            state
                .set("PutInlinePolicyToPermissionSet", permission_set)?
                .inline = Some(document.to_owned());
            state.writes.push(format!("put {permission_set}"));
            Ok(())
        })
    }

    fn delete_inline_policy<'a>(&'a self, _: &'a str, permission_set: &'a str) -> Call<'a, ()> {
        Box::pin(async move {
            self.pause().await;
            let mut state = self.state();
            state
                .failures
                .take("DeleteInlinePolicyFromPermissionSet", permission_set)?;
            state
                .set("DeleteInlinePolicyFromPermissionSet", permission_set)?
                .inline = None;
            state.writes.push(format!("delete {permission_set}"));
            Ok(())
        })
    }

    fn provision<'a>(
        &'a self,
        _: &'a str,
        permission_set: &'a str,
        account: Option<&'a Account>,
    ) -> Call<'a, Provisioning> {
        Box::pin(async move {
            self.pause().await;
            let mut state = self.state();
            state
                .failures
                .take("ProvisionPermissionSet", permission_set)?;
            let accounts: Vec<Account> = match account {
                Some(account) => vec![account.clone()],
                None => state
                    .set("ProvisionPermissionSet", permission_set)?
                    .provisioned
                    .keys()
                    .cloned()
                    .collect(),
            };
            state.writes.push(format!(
                "provision {permission_set} {}",
                account.map_or("all".to_owned(), ToString::to_string)
            ));
            let request_id = format!("req-{}", state.requests.len() + 1);
            let reads = match state.plan.clone() {
                ProvisionPlan::AtOnce => {
                    state.land(permission_set, &accounts);
                    return Ok(Provisioning::Succeeded);
                }
                ProvisionPlan::After(n) => n,
                ProvisionPlan::Fails(_) | ProvisionPlan::Never => u32::MAX,
            };
            state.requests.insert(
                request_id.clone(),
                (permission_set.to_owned(), accounts, reads),
            );
            Ok(Provisioning::InProgress { request_id })
        })
    }

    fn provisioning<'a>(&'a self, _: &'a str, request_id: &'a str) -> Call<'a, Provisioning> {
        Box::pin(async move {
            self.pause().await;
            let mut state = self.state();
            state
                .failures
                .take("DescribePermissionSetProvisioningStatus", request_id)?;
            let plan = state.plan.clone();
            let (set, accounts, reads) = state
                .requests
                .get_mut(request_id)
                .ok_or_else(|| not_found("DescribePermissionSetProvisioningStatus", request_id))?;
            if let ProvisionPlan::Fails(reason) = plan {
                return Ok(Provisioning::Failed { reason });
            }
            if *reads > 1 {
                *reads = reads.saturating_sub(1);
                return Ok(Provisioning::InProgress {
                    request_id: request_id.to_owned(),
                });
            }
            let (set, accounts) = (set.clone(), accounts.clone());
            state.land(&set, &accounts);
            Ok(Provisioning::Succeeded)
        })
    }

    fn service_control_policy<'a>(&'a self, policy_id: &'a str) -> Call<'a, String> {
        Box::pin(async move {
            self.pause().await;
            let mut state = self.state();
            state.failures.take("DescribePolicy", policy_id)?;
            state
                .scps
                .get(policy_id)
                .cloned()
                .ok_or_else(|| not_found("DescribePolicy", policy_id))
        })
    }

    fn update_service_control_policy<'a>(
        &'a self,
        policy_id: &'a str,
        content: &'a str,
    ) -> Call<'a, ()> {
        Box::pin(async move {
            self.pause().await;
            let mut state = self.state();
            state.failures.take("UpdatePolicy", policy_id)?;
            if !state.scps.contains_key(policy_id) {
                return Err(not_found("UpdatePolicy", policy_id));
            }
            state.scps.insert(policy_id.to_owned(), content.to_owned());
            state.writes.push(format!("update {policy_id}"));
            Ok(())
        })
    }
    fn policy_targets<'a>(
        &'a self,
        policy_id: &'a str,
        next: Option<String>,
    ) -> Call<'a, Page<String>> {
        Box::pin(async move {
            self.pause().await;
            let mut state = self.state();
            state.failures.take("ListTargetsForPolicy", policy_id)?;
            let all = state
                .scp_targets
                .get(policy_id)
                .cloned()
                .unwrap_or_default();
            Ok(page(&all, next, state.page_size))
        })
    }

    fn parent<'a>(&'a self, child_id: &'a str) -> Call<'a, Option<String>> {
        Box::pin(async move {
            self.pause().await;
            let mut state = self.state();
            state.failures.take("ListParents", child_id)?;
            if child_id.starts_with("r-") {
                return Ok(None);
            }
            state
                .parents
                .get(child_id)
                .cloned()
                .map(Some)
                .ok_or_else(|| not_found("ListParents", child_id))
        })
    }
}
