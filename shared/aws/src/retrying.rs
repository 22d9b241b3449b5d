//! [`Retrying`]: any adapter, with retries and call counting, implementing the same
//! ports. The workflows hold their ports through it and say only what they do; what
//! is retried (throttling and transient errors, [`AwsError::is_retryable`]), how long
//! to wait ([`RetryPolicy`]) and how many calls a request made ([`Retrying::calls`])
//! are decided here, once.
//!
//! One `Retrying` counts for whatever holds it: the revoker wraps its account access
//! per request (`Retrying::new(&access, policy)`), so the IAM clients it hands out
//! count into that request's outcome. References implement the ports too, for that.

use std::future::Future;
use std::sync::Arc;

use cutoff_domain::notify::SnsMessage;
use cutoff_domain::outcome::Outcome;
use cutoff_domain::principal::{AccessKeyId, Account, IamPath, PrincipalName};
use cutoff_domain::self_check::{ContextValue, Simulated};
use cutoff_domain::summary::{AccountRecord, DayRun, RunTotals, SweepDigest, SweepSummary};

use crate::dynamodb::{RunProgress, SweepLedger, SweepRun};
use crate::error::AwsError;
use crate::eventbridge::{OutcomeBus, SummaryBus};
use crate::iam::paged::{AuthorizationDetails, DetailsPage};
use crate::iam::{
    AccessKeyInfo, AccessKeys, AccountQuotas, AccountSummary, IamPrincipal, InlinePolicies,
    ManagedPolicies, ManagedPolicy, PolicySimulator, PrincipalInfo, Principals,
};
use crate::organizations::AccountDirectory;
use crate::retry::{CallCounter, RetryPolicy, with_retries};
use chrono::{DateTime, NaiveDate, Utc};

use crate::cloudtrail::{EventHistory, EventPage, Query};
use crate::scheduler::{FollowUps, Scheduled};
use crate::securityhub::{FindingsUpdater, WorkflowStatus};
use crate::sns::Notifications;
use crate::sqs::{RequestQueue, SweepTask, SweepTasks};
use crate::sts::AccountAccess;

/// An adapter whose every call is retried under `policy` and counted.
#[derive(Debug, Clone)]
pub struct Retrying<T> {
    inner: T,
    policy: RetryPolicy,
    calls: Arc<CallCounter>,
}

impl<T> Retrying<T> {
    /// `inner` with a call count of its own.
    pub fn new(inner: T, policy: RetryPolicy) -> Self {
        Self::counting_into(inner, policy, Arc::default())
    }

    /// `inner`, counting into `calls` (shared with whoever else counts there).
    pub fn counting_into(inner: T, policy: RetryPolicy, calls: Arc<CallCounter>) -> Self {
        Self {
            inner,
            policy,
            calls,
        }
    }

    /// `other`, retried under the same policy and counting into the same counter.
    pub fn alongside<U>(&self, other: U) -> Retrying<U> {
        Retrying::counting_into(other, self.policy, Arc::clone(&self.calls))
    }

    /// The AWS calls made through this adapter (and the clients it handed out), every
    /// attempt counted.
    pub fn calls(&self) -> u32 {
        self.calls.get()
    }

    /// The counter itself, for an adapter that should count into it too.
    pub fn counter(&self) -> &Arc<CallCounter> {
        &self.calls
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The undecorated adapter: one attempt per call, not counted.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    async fn run<R, F, Fut>(&self, op: F) -> Result<R, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<R, AwsError>>,
    {
        with_retries(&self.policy, &self.calls, op).await
    }
}

/// For each port: its methods forwarded through a reference, and retried through
/// [`Retrying`]. Every listed method returns `impl Future<Output = Result<_, AwsError>>`
/// and takes only references and `Copy` values, so one attempt can be made again.
macro_rules! ports {
    ($(
        $port:ident { $( fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )* }
    )*) => {$(
        impl<T: $port + ?Sized> $port for &T {
            $(
                fn $name(&self $(, $arg: $ty)*)
                    -> impl Future<Output = Result<$ret, AwsError>> + Send {
                    (**self).$name($($arg),*)
                }
            )*
        }

        impl<T: $port> $port for Retrying<T> {
            $(
                fn $name(&self $(, $arg: $ty)*)
                    -> impl Future<Output = Result<$ret, AwsError>> + Send {
                    self.run(move || self.inner.$name($($arg),*))
                }
            )*
        }
    )*};
}

ports! {
    Principals {
        fn get_principal(&self, principal: &IamPrincipal) -> PrincipalInfo;
        fn instance_profile_roles(&self, profile: &PrincipalName) -> Vec<PrincipalName>;
    }
    InlinePolicies {
        fn get_inline_policy(&self, principal: &IamPrincipal, policy_name: &str) -> Option<String>;
        fn list_inline_policies(&self, principal: &IamPrincipal) -> Vec<String>;
        fn put_inline_policy(&self, principal: &IamPrincipal, policy_name: &str, document: &str) -> ();
        fn delete_inline_policy(&self, principal: &IamPrincipal, policy_name: &str) -> ();
    }
    AccessKeys {
        fn deactivate_access_key(&self, user: &PrincipalName, access_key_id: &AccessKeyId) -> ();
        fn list_access_keys(&self, user: &PrincipalName) -> Vec<AccessKeyInfo>;
        fn has_login_profile(&self, user: &PrincipalName) -> bool;
        fn active_ssh_public_keys(&self, user: &PrincipalName) -> Vec<String>;
        fn active_service_credentials(&self, user: &PrincipalName) -> Vec<String>;
    }
    AccountQuotas {
        fn account_summary(&self) -> AccountSummary;
    }
    PolicySimulator {
        fn simulate(&self, principal_arn: &str, action: &str, resource: &str, context: &[ContextValue]) -> Simulated;
    }
    RequestQueue {
        fn send(&self, body: &str, group_id: &str, deduplication_id: &str) -> ();
    }
    OutcomeBus {
        fn publish(&self, outcomes: &[Outcome]) -> ();
    }
    Notifications {
        fn publish(&self, topic_arn: &str, message: &SnsMessage) -> String;
    }
    FindingsUpdater {
        fn update_finding(&self, finding_id: &str, product_arn: &str, status: WorkflowStatus, note: &str) -> ();
        fn update_ocsf_finding(&self, metadata_uid: &str, status: WorkflowStatus, comment: &str) -> ();
    }
    AccountDirectory {
        fn active_accounts(&self) -> Vec<Account>;
    }
    SweepTasks {
        fn send_tasks(&self, tasks: &[SweepTask]) -> ();
    }
    SweepLedger {
        fn start_run(&self, run: &SweepRun) -> bool;
        fn tasks_sent(&self, run_id: &str) -> ();
        fn record_account(&self, run_id: &str, record: &AccountRecord) -> RunProgress;
        fn claim_summary(&self, run_id: &str, claimant: &str) -> bool;
        fn run_records(&self, run_id: &str) -> (SweepRun, Vec<AccountRecord>);
        fn finish_run(&self, run: &SweepRun, totals: &RunTotals) -> ();
        fn claim_digest(&self, day: NaiveDate, claimant: &str, now: DateTime<Utc>) -> bool;
        fn digest_sent(&self, day: NaiveDate, claimant: &str) -> ();
        fn day_runs(&self, day: NaiveDate) -> Vec<DayRun>;
    }
    SummaryBus {
        fn publish_summary(&self, summary: &SweepSummary) -> ();
        fn publish_digest(&self, digest: &SweepDigest) -> ();
    }
    AuthorizationDetails {
        fn page(&self, marker: Option<&str>) -> DetailsPage;
    }
    FollowUps {
        fn schedule(&self, name: &str, at: DateTime<Utc>, payload: &str) -> Scheduled;
    }
    EventHistory {
        fn lookup_page(&self, query: &Query, from: DateTime<Utc>, to: DateTime<Utc>, next_token: Option<&str>) -> EventPage;
    }
}

/// The managed-policy port has one synchronous method (an ARN is computed, not
/// called for), so it is written out.
macro_rules! managed_policies {
    ($($method:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        impl<T: ManagedPolicies + ?Sized> ManagedPolicies for &T {
            fn managed_policy_arn(&self, path: &IamPath, name: &str) -> String {
                (**self).managed_policy_arn(path, name)
            }
            $(
                fn $method(&self, $($arg: $ty),*)
                    -> impl Future<Output = Result<$ret, AwsError>> + Send {
                    (**self).$method($($arg),*)
                }
            )*
        }

        impl<T: ManagedPolicies> ManagedPolicies for Retrying<T> {
            fn managed_policy_arn(&self, path: &IamPath, name: &str) -> String {
                self.inner.managed_policy_arn(path, name)
            }
            $(
                fn $method(&self, $($arg: $ty),*)
                    -> impl Future<Output = Result<$ret, AwsError>> + Send {
                    self.run(move || self.inner.$method($($arg),*))
                }
            )*
        }
    };
}

managed_policies! {
    get_managed_policy(arn: &str) -> Option<ManagedPolicy>;
    put_managed_policy(path: &IamPath, name: &str, document: &str) -> String;
    delete_managed_policy(arn: &str) -> ();
    attached_policies(principal: &IamPrincipal) -> Vec<String>;
    attach_policy(principal: &IamPrincipal, arn: &str) -> ();
    detach_policy(principal: &IamPrincipal, arn: &str) -> ();
}

impl<T: AccountAccess + ?Sized> AccountAccess for &T {
    type Client = T::Client;

    fn home(&self) -> &Account {
        (**self).home()
    }

    fn client_for(
        &self,
        account: &Account,
        request_id: &str,
        calls: &CallCounter,
    ) -> impl Future<Output = Result<Self::Client, AwsError>> + Send {
        (**self).client_for(account, request_id, calls)
    }
}

impl<T: AccountAccess> Retrying<T> {
    /// A client for `account`, decorated too and counting into the same counter. The
    /// member-role session itself is retried by the adapter, inside its per-account
    /// lock (one `AssumeRole` at a time per account, whatever the concurrency), and
    /// counted here.
    pub async fn client(
        &self,
        account: &Account,
        request_id: &str,
    ) -> Result<Retrying<T::Client>, AwsError> {
        let client = self
            .inner
            .client_for(account, request_id, &self.calls)
            .await?;
        Ok(Retrying::counting_into(
            client,
            self.policy,
            Arc::clone(&self.calls),
        ))
    }

    pub fn home(&self) -> &Account {
        self.inner.home()
    }
}

impl<T: crate::cloudtrail::HistoryAccess> Retrying<T> {
    /// The event history of `account` in `region`, decorated too and counting into
    /// the same counter.
    pub async fn history(
        &self,
        account: &Account,
        region: &str,
        request_id: &str,
    ) -> Result<Retrying<T::History>, AwsError> {
        let history = self
            .inner
            .history_for(account, region, request_id, &self.calls)
            .await?;
        Ok(Retrying::counting_into(
            history,
            self.policy,
            Arc::clone(&self.calls),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::eventbridge::fake::FakeOutcomeBus;
    use crate::sts::fake::FakeAccess;

    #[tokio::test(start_paused = true)]
    async fn a_throttled_call_is_retried_and_every_attempt_counts() {
        let bus = FakeOutcomeBus::default();
        bus.fail("PutEvents", &[ErrorKind::Throttled, ErrorKind::Transient]);
        let retrying = Retrying::new(&bus, RetryPolicy::default());
        OutcomeBus::publish(&retrying, &[]).await.unwrap();
        assert_eq!(retrying.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_error_is_returned_at_once() {
        let bus = FakeOutcomeBus::default();
        bus.fail("PutEvents", &[ErrorKind::AccessDenied]);
        let retrying = Retrying::new(&bus, RetryPolicy::default());
        let err = OutcomeBus::publish(&retrying, &[]).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::AccessDenied);
        assert_eq!(retrying.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_run_out_at_the_policy_s_limit() {
        let bus = FakeOutcomeBus::default();
        bus.fail("PutEvents", &[ErrorKind::Throttled; 5]);
        let retrying = Retrying::new(&bus, RetryPolicy::immediate(3));
        let err = OutcomeBus::publish(&retrying, &[]).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Throttled);
        assert_eq!(retrying.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn clients_and_adapters_alongside_count_into_one_counter() {
        let access = FakeAccess::new("111122223333");
        let member = access.account("444455556666");
        member.fail("GetAccountSummary", &[ErrorKind::Throttled]);
        let retrying = Retrying::new(&access, RetryPolicy::immediate(3));
        let account = Account::parse("444455556666").unwrap();
        let client = retrying.client(&account, "req-1").await.unwrap();
        assert_eq!(retrying.calls(), 1, "the AssumeRole call");
        client.account_summary().await.unwrap();
        assert_eq!(
            retrying.calls(),
            3,
            "one throttled GetAccountSummary, retried"
        );
        let bus = FakeOutcomeBus::default();
        OutcomeBus::publish(&retrying.alongside(&bus), &[])
            .await
            .unwrap();
        assert_eq!(retrying.calls(), 4);
    }
}
