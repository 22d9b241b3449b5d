//! Organizations: the accounts a sweep covers ([`AccountDirectory`],
//! [`SdkOrganizations`]); its in-memory fake is in `fake` (feature `test-support`).

use std::future::Future;

use crate::error::{AwsError, ErrorKind, classify};
use cutoff_domain::principal::Account;

const OP_LIST_ACCOUNTS: &str = "organizations:ListAccounts";

/// `organizations:ListAccounts`.
pub trait AccountDirectory: Send + Sync {
    /// The active accounts of the Organization, every page (one call per page).
    fn active_accounts(&self) -> impl Future<Output = Result<Vec<Account>, AwsError>> + Send;
}

/// The Organization, through the SDK.
#[derive(Debug, Clone)]
pub struct SdkOrganizations {
    client: aws_sdk_organizations::Client,
}

impl SdkOrganizations {
    pub fn new(client: aws_sdk_organizations::Client) -> Self {
        Self { client }
    }

    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_organizations::Client::new(config))
    }
}

impl AccountDirectory for SdkOrganizations {
    async fn active_accounts(&self) -> Result<Vec<Account>, AwsError> {
        let mut accounts = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_accounts()
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| classify(&e, OP_LIST_ACCOUNTS, "in the Organization".to_owned()))?;
            for account in out.accounts() {
                // `State` replaces the deprecated `Status`; either says ACTIVE.
                #[allow(deprecated)]
                let active = account
                    .state()
                    .map(|s| s.as_str() == "ACTIVE")
                    .or_else(|| account.status().map(|s| s.as_str() == "ACTIVE"))
                    .unwrap_or(false);
                if !active {
                    continue;
                }
                match account.id().map(Account::parse) {
                    Some(Ok(id)) => accounts.push(id),
                    _ => tracing::warn!(
                        id = account.id().unwrap_or_default(),
                        "organizations returned an account id that is not 12 digits; skipped"
                    ),
                }
            }
            match out.next_token() {
                Some(next) if token.as_deref() == Some(next) => {
                    return Err(AwsError::new(
                        ErrorKind::Malformed,
                        OP_LIST_ACCOUNTS,
                        "following pages",
                        "the response repeats the token of the request",
                    ));
                }
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        accounts.sort();
        accounts.dedup();
        Ok(accounts)
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod fake {
    //! An in-memory Organization.

    use std::sync::{Arc, Mutex, MutexGuard};

    use crate::error::{AwsError, ErrorKind, InjectedFailures};

    use super::AccountDirectory;
    use cutoff_domain::principal::Account;

    /// The Organization's accounts, as set; fails the next calls on demand.
    #[derive(Debug, Clone, Default)]
    pub struct FakeOrganizations(pub Arc<Mutex<OrganizationState>>);

    #[derive(Debug, Default)]
    pub struct OrganizationState {
        /// The active accounts.
        pub organization: Vec<Account>,
        pub failures: InjectedFailures,
    }

    impl FakeOrganizations {
        pub fn state(&self) -> MutexGuard<'_, OrganizationState> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }

        pub fn fail(&self, action: &'static str, kinds: &[ErrorKind]) {
            self.state().failures.plan(action, kinds);
        }

        fn begin(
            &self,
            action: &'static str,
        ) -> Result<MutexGuard<'_, OrganizationState>, AwsError> {
            let mut state = self.state();
            state.failures.take(action, "in the fake")?;
            Ok(state)
        }
    }

    impl AccountDirectory for FakeOrganizations {
        async fn active_accounts(&self) -> Result<Vec<Account>, AwsError> {
            Ok(self.begin("ListAccounts")?.organization.clone())
        }
    }
}
