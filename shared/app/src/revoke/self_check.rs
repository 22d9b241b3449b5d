//! The revoker's self-check (see [`cutoff_domain::self_check`]): in each account, reach IAM as
//! a revocation would, and ask the policy simulator the probes.

use super::Revoker;
use cutoff_aws::dynamodb::Ledger;
use cutoff_aws::retrying::Retrying;
use cutoff_aws::{AccountAccess, PolicySimulator};
use cutoff_domain::clock::Clock;
use cutoff_domain::principal::{Account, PrincipalName};
use cutoff_domain::self_check::{
    AccountCheck, SelfCheckReport, SelfCheckRequest, TIME_BUDGET, Unreachable, call_context, judge,
    probes,
};

/// Who the revoker is where the self-check looks: the member role's name, and its own
/// role at home (without it, the home account is reported unchecked).
#[derive(Debug, Clone)]
pub struct SelfCheckIdentity {
    pub member_role_name: PrincipalName,
    pub home_role_arn: Option<String>,
}

impl<A, K, L> Revoker<A, K, L>
where
    A: AccountAccess,
    A::Client: PolicySimulator,
    K: Clock,
    L: Ledger,
{
    /// Checks every account of `request` in turn and reports each. Writes nothing.
    /// Err when this revoker was not configured for it (no member role name).
    pub async fn self_check(
        &self,
        request: &SelfCheckRequest,
        request_id: &str,
    ) -> Result<SelfCheckReport, String> {
        let identity = self
            .config
            .self_check
            .as_ref()
            .ok_or("this revoker was not configured for a self-check (no member role name)")?;
        let deadline = tokio::time::Instant::now() + TIME_BUDGET;
        let mut accounts = Vec::with_capacity(request.accounts.len());
        for account in &request.accounts {
            if tokio::time::Instant::now() >= deadline {
                accounts.push(AccountCheck::unreachable(
                    account,
                    Unreachable::OutOfTime,
                    format!(
                        "not reached within the self-check's {} s: ask for fewer accounts at once",
                        TIME_BUDGET.as_secs()
                    ),
                ));
                continue;
            }
            accounts.push(
                self.check_account(account, identity, request_id, deadline)
                    .await,
            );
        }
        Ok(SelfCheckReport::new(
            identity.member_role_name.as_str(),
            accounts,
        ))
    }

    async fn check_account(
        &self,
        account: &Account,
        identity: &SelfCheckIdentity,
        request_id: &str,
        deadline: tokio::time::Instant,
    ) -> AccountCheck {
        let home = self.access.home();
        if let Some(scope) = &self.config.accounts
            && let Some(why) = scope.refuse(account, home)
        {
            return AccountCheck::unreachable(account, Unreachable::OutOfScope, why);
        }
        let at_home = account == home;
        let acting_role = if at_home {
            match &identity.home_role_arn {
                Some(arn) => arn.clone(),
                None => {
                    return AccountCheck::unreachable(
                        account,
                        Unreachable::NoOwnRole,
                        "the revoker was not told its own role (CUTOFF_ROLE_ARN), so the home account cannot be simulated".to_owned(),
                    );
                }
            }
        } else {
            format!(
                "arn:{}:iam::{account}:role/{}",
                self.config.partition, identity.member_role_name
            )
        };
        let access = Retrying::new(&self.access, self.config.retry);
        let client = match access.client(account, request_id).await {
            Ok(client) => client,
            Err(e) => {
                return AccountCheck::unreachable(
                    account,
                    Unreachable::NotAssumed,
                    format!(
                        "cannot assume {acting_role}: {e} (its trust policy must name this revoker's role with the ExternalId, and no SCP may deny sts:AssumeRole)"
                    ),
                );
            }
        };
        let organization = self
            .config
            .accounts
            .as_ref()
            .and_then(|scope| scope.organization.as_ref())
            .map(ToString::to_string);
        let context = call_context(
            self.config.partition,
            account,
            &acting_role,
            organization.as_deref(),
        );
        let mut results = Vec::new();
        let fallback_path = self.config.fallback_path.to_string();
        for probe in probes(self.config.partition, account, &acting_role, &fallback_path) {
            // Within an account too: one throttled account must not take the answer
            // for all of them past the function's timeout.
            if tokio::time::Instant::now() >= deadline {
                results.push(judge(
                    &probe,
                    Err("not asked: the self-check's time ran out".to_owned()),
                ));
                continue;
            }
            let mut asked = context.clone();
            asked.extend(probe.context.iter().cloned());
            let answer = client
                .simulate(&acting_role, probe.action, &probe.resource, &asked)
                .await
                .map_err(|e| e.to_string());
            results.push(judge(&probe, answer));
        }
        AccountCheck::probed(account, true, results)
    }
}
