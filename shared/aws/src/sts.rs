//! STS: the account cutoff runs in ([`discover_home`]) and the others, reached through
//! the member role ([`AccountAccess`], [`SdkAccountAccess`]: `sts:AssumeRole` with an
//! ExternalId, the sessions cached per account); the in-memory fake is in `fake`
//! (feature `test-support`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_iam::config::Credentials;
use chrono::{DateTime, Utc};

use crate::error::{AwsError, ErrorKind, classify};
use crate::iam::{IamApi, SdkIam};
use crate::retry::{self, CallCounter, RetryPolicy};
use cutoff_domain::clock::{Clock, SystemClock};
use cutoff_domain::principal::{Account, Partition, PrincipalName};

/// Member-role sessions last one hour: the most STS allows when the caller is itself
/// an assumed role (role chaining), which a Lambda function always is.
const SESSION_SECONDS: i32 = 3600;
/// A cached session is replaced this long before it expires, so no call starts with
/// credentials that die mid-request.
const REFRESH_MARGIN: chrono::Duration = chrono::Duration::minutes(5);
/// The provider name of member-account credentials (visible in SDK debug logs).
const ASSUME_ROLE_PROVIDER: &str = "cutoff-assume-role";
const SESSION_PREFIX: &str = "cutoff-";

/// Access to accounts: our own directly, others through the member role
/// (`sts:AssumeRole` with an ExternalId), credentials cached per account.
pub trait AccountAccess: Send + Sync {
    type Client: IamApi;

    /// The account cutoff runs in (reached with its own role, never the member role).
    fn home(&self) -> &Account;

    /// A client for `account`. `request_id` names the assumed-role session so that
    /// CloudTrail in the member account shows which request acted (a cached session
    /// keeps the name of the request that created it). STS calls, retries included,
    /// are added to `calls`.
    fn client_for(
        &self,
        account: &Account,
        request_id: &str,
        calls: &CallCounter,
    ) -> impl Future<Output = Result<Self::Client, AwsError>> + Send;
}

/// The account and partition of the credentials in `config` (`sts:GetCallerIdentity`,
/// retried on throttling with the default policy).
pub async fn discover_home(config: &SdkConfig) -> Result<(Account, Partition), AwsError> {
    let sts = aws_sdk_sts::Client::new(config);
    let caller = discover_home_with(&sts, &RetryPolicy::default(), &CallCounter::default()).await?;
    Ok((caller.account, caller.partition))
}

/// Who the credentials are, as `sts:GetCallerIdentity` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: Account,
    pub partition: Partition,
    /// The caller's ARN (a role session's is `arn:…:sts::<account>:assumed-role/…`).
    pub arn: String,
}

/// AWS's time as a response's `Date` header said it, and the local time it arrived.
pub type SeenDate = (DateTime<Utc>, DateTime<Utc>);

/// Reads the `Date` header of a response (its time, whole seconds) as it arrives.
#[derive(Debug, Clone, Default)]
struct DateHeader(Arc<std::sync::Mutex<Option<SeenDate>>>);

impl aws_smithy_runtime_api::client::interceptors::Intercept for DateHeader {
    fn name(&self) -> &'static str {
        "cutoff::DateHeader"
    }

    fn read_after_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let received = Utc::now();
        let date = context
            .response()
            .headers()
            .get("date")
            .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
            .map(|d| d.to_utc());
        if let Some(date) = date
            && let Ok(mut slot) = self.0.lock()
        {
            *slot = Some((date, received));
        }
        Ok(())
    }
}

/// [`discover_home`], and AWS's time: the `Date` of the STS response with the local
/// time it arrived (None when the response had no readable `Date`).
pub async fn discover_home_and_time(
    config: &SdkConfig,
) -> Result<(Account, Partition, Option<SeenDate>), AwsError> {
    let (caller, seen) = discover_caller_and_time(config).await?;
    Ok((caller.account, caller.partition, seen))
}

/// [`discover_home_and_time`] with the caller's ARN.
pub async fn discover_caller_and_time(
    config: &SdkConfig,
) -> Result<(CallerIdentity, Option<SeenDate>), AwsError> {
    let date = DateHeader::default();
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(config)
            .interceptor(date.clone())
            .build(),
    );
    let caller = discover_home_with(&sts, &RetryPolicy::default(), &CallCounter::default()).await?;
    let seen = date.0.lock().ok().and_then(|slot| *slot);
    Ok((caller, seen))
}

async fn discover_home_with(
    sts: &aws_sdk_sts::Client,
    policy: &RetryPolicy,
    calls: &CallCounter,
) -> Result<CallerIdentity, AwsError> {
    const OP: &str = "sts:GetCallerIdentity";
    const CONTEXT: &str = "for cutoff's own credentials";
    let out = retry::with_retries(policy, calls, || async move {
        sts.get_caller_identity()
            .send()
            .await
            .map_err(|e| classify(&e, OP, CONTEXT.to_owned()))
    })
    .await?;
    let malformed = |message: String| AwsError::new(ErrorKind::Malformed, OP, CONTEXT, message);
    let account = out
        .account()
        .ok_or_else(|| malformed("the response has no account".to_owned()))?;
    let account = Account::parse(account).map_err(|e| malformed(e.to_string()))?;
    let arn = out
        .arn()
        .ok_or_else(|| malformed("the response has no ARN".to_owned()))?;
    let partition = arn
        .split(':')
        .nth(1)
        .ok_or_else(|| malformed("the caller ARN has no partition".to_owned()))?;
    let partition = Partition::parse(partition).map_err(|e| malformed(e.to_string()))?;
    Ok(CallerIdentity {
        account,
        partition,
        arn: arn.to_owned(),
    })
}

/// `cutoff-<request id>`, reduced to what STS accepts in a session name:
/// `[A-Za-z0-9_+=,.@-]`, at most 64 characters (the prefix makes the minimum of 2).
pub fn session_name(request_id: &str) -> String {
    let mut name = String::from(SESSION_PREFIX);
    name.extend(
        request_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(64 - SESSION_PREFIX.len()),
    );
    name
}

/// A member-account client and when to stop using it.
#[derive(Debug, Clone)]
struct Session {
    iam: SdkIam,
    /// For the other clients of the account (CloudTrail's event history).
    credentials: Credentials,
    refresh_at: DateTime<Utc>,
}

/// Per account, the cached session; the per-account lock makes concurrent requests
/// for one account share one `AssumeRole`, without serialising other accounts.
type SessionSlot = Arc<tokio::sync::Mutex<Option<Session>>>;

/// Access to our own account (the function's credentials) and to member accounts
/// (`sts:AssumeRole` on the member role with the ExternalId), with member
/// credentials cached per account until five minutes before they expire.
pub struct SdkAccountAccess {
    sts: aws_sdk_sts::Client,
    /// The base configuration of member-account IAM clients; only the credentials
    /// are replaced.
    iam_config: aws_sdk_iam::Config,
    home: SdkIam,
    /// What CloudTrail clients are built from, when a run first needs one (None: event
    /// history not wired). Built on demand, not at start: the cold start of every
    /// invocation pays for nothing only a follow-up uses.
    history_base: Option<SdkConfig>,
    partition: Partition,
    member_role: PrincipalName,
    external_id: Option<String>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    sessions: std::sync::Mutex<HashMap<Account, SessionSlot>>,
}

impl std::fmt::Debug for SdkAccountAccess {
    // By hand: the clock is not Debug, and the ExternalId stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkAccountAccess")
            .field("home", self.home.account())
            .field("partition", &self.partition)
            .field("member_role", &self.member_role)
            .field("external_id", &self.external_id.as_ref().map(|_| "…"))
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl SdkAccountAccess {
    /// Clients from `config` (see [`load_sdk_config`](crate::config::load_sdk_config));
    /// `home` and `partition` from [`discover_home`]. Uses the system clock and the
    /// default retry policy.
    pub fn new(
        config: &SdkConfig,
        home: Account,
        partition: Partition,
        member_role: PrincipalName,
        external_id: Option<String>,
    ) -> Self {
        Self::from_clients(
            aws_sdk_sts::Client::new(config),
            aws_sdk_iam::Config::from(config),
            home,
            partition,
            member_role,
            external_id,
        )
        .with_event_history(config)
    }

    /// The configuration CloudTrail clients are derived from (region and credentials
    /// replaced per call; retries off, as for IAM).
    pub fn with_event_history(mut self, config: &SdkConfig) -> Self {
        self.history_base = Some(config.clone());
        self
    }

    /// As [`Self::new`], from an STS client and the IAM client configuration that
    /// member-account clients are derived from (tests pass mocked ones).
    pub fn from_clients(
        sts: aws_sdk_sts::Client,
        iam_config: aws_sdk_iam::Config,
        home: Account,
        partition: Partition,
        member_role: PrincipalName,
        external_id: Option<String>,
    ) -> Self {
        // Whatever the configuration says, the SDK must not retry: every attempt has
        // to go through `retry::with_retries` to be bounded and counted once.
        let sts = aws_sdk_sts::Client::from_conf(
            sts.config()
                .to_builder()
                .retry_config(RetryConfig::disabled())
                .build(),
        );
        let iam_config = iam_config
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .build();
        let home_iam = SdkIam::new(
            aws_sdk_iam::Client::from_conf(iam_config.clone()),
            home,
            partition,
        );
        Self {
            sts,
            iam_config,
            home: home_iam,
            history_base: None,
            partition,
            member_role,
            external_id,
            clock: Arc::new(SystemClock),
            retry: RetryPolicy::default(),
            sessions: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The clock that decides when cached credentials are refreshed.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Retries of `AssumeRole`.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    pub fn home(&self) -> &Account {
        self.home.account()
    }

    /// `arn:<partition>:iam::<account>:role/<member role>`.
    pub fn member_role_arn(&self, account: &Account) -> String {
        format!(
            "arn:{}:iam::{account}:role/{}",
            self.partition, self.member_role
        )
    }

    fn slot(&self, account: &Account) -> SessionSlot {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.entry(account.clone()).or_default().clone()
    }

    async fn assume(
        &self,
        account: &Account,
        request_id: &str,
        calls: &CallCounter,
    ) -> Result<Session, AwsError> {
        const OP: &str = "sts:AssumeRole";
        let role_arn = self.member_role_arn(account);
        let session = session_name(request_id);
        let context = format!("on `{role_arn}`");
        let (sts, role_arn_ref, session_ref, context_ref) = (
            &self.sts,
            role_arn.as_str(),
            session.as_str(),
            context.as_str(),
        );
        let external_id = self.external_id.as_deref();
        let out = retry::with_retries(&self.retry, calls, || async move {
            sts.assume_role()
                .role_arn(role_arn_ref)
                .role_session_name(session_ref)
                .duration_seconds(SESSION_SECONDS)
                .set_external_id(external_id.map(str::to_owned))
                .send()
                .await
                .map_err(|e| {
                    let mut err = classify(&e, OP, context_ref.to_owned());
                    if err.kind == ErrorKind::AccessDenied {
                        err.message = format!(
                            "cannot assume {role_arn_ref}: check that the member-role stack is \
                             deployed in {account} and trusts this account, and that its \
                             ExternalId matches cutoff's ({})",
                            err.message
                        );
                    }
                    err
                })
        })
        .await?;
        let malformed =
            |message: &str| AwsError::new(ErrorKind::Malformed, OP, context.clone(), message);
        let creds = out
            .credentials()
            .ok_or_else(|| malformed("the response has no credentials"))?;
        let expiration = *creds.expiration();
        let expires_at =
            DateTime::<Utc>::from_timestamp(expiration.secs(), expiration.subsec_nanos())
                .ok_or_else(|| malformed("the credentials expire at an impossible time"))?;
        let credentials = Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_owned()),
            SystemTime::try_from(expiration).ok(),
            ASSUME_ROLE_PROVIDER,
        );
        let client = aws_sdk_iam::Client::from_conf(
            self.iam_config
                .to_builder()
                .credentials_provider(credentials.clone())
                .build(),
        );
        tracing::debug!(%account, role_arn, session, %expires_at, "assumed member role");
        Ok(Session {
            iam: SdkIam::new(client, account.clone(), self.partition),
            credentials,
            refresh_at: expires_at - REFRESH_MARGIN,
        })
    }

    /// The member-role session of `account`, cached or assumed.
    async fn session(
        &self,
        account: &Account,
        request_id: &str,
        calls: &CallCounter,
    ) -> Result<Session, AwsError> {
        let slot = self.slot(account);
        let mut cached = slot.lock().await;
        if let Some(session) = cached.as_ref()
            && self.clock.now() < session.refresh_at
        {
            return Ok(session.clone());
        }
        let session = self.assume(account, request_id, calls).await?;
        *cached = Some(session.clone());
        Ok(session)
    }
}

impl crate::cloudtrail::HistoryAccess for SdkAccountAccess {
    type History = crate::cloudtrail::SdkEventHistory;

    async fn history_for(
        &self,
        account: &Account,
        region: &str,
        request_id: &str,
        calls: &CallCounter,
    ) -> Result<crate::cloudtrail::SdkEventHistory, AwsError> {
        let base = self.history_base.as_ref().ok_or_else(|| {
            AwsError::new(
                ErrorKind::Malformed,
                crate::cloudtrail::OP,
                format!("in {account}"),
                "this deployment reads no event history (no CloudTrail client configured)",
            )
        })?;
        let mut config = aws_sdk_cloudtrail::config::Builder::from(base)
            .retry_config(RetryConfig::disabled())
            .region(aws_config::Region::new(region.to_owned()));
        if account != self.home.account() {
            let session = self.session(account, request_id, calls).await?;
            config = config.credentials_provider(session.credentials);
        }
        Ok(crate::cloudtrail::SdkEventHistory::new(
            aws_sdk_cloudtrail::Client::from_conf(config.build()),
        ))
    }
}

impl AccountAccess for SdkAccountAccess {
    type Client = SdkIam;

    fn home(&self) -> &Account {
        self.home.account()
    }

    async fn client_for(
        &self,
        account: &Account,
        request_id: &str,
        calls: &CallCounter,
    ) -> Result<SdkIam, AwsError> {
        if account == self.home.account() {
            return Ok(self.home.clone());
        }
        Ok(self.session(account, request_id, calls).await?.iam)
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod fake {
    //! In-memory accounts: [`FakeAccess`] hands out a [`FakeIam`] per account.

    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::{HashMap, VecDeque};
    use std::sync::{Arc, Mutex};

    use super::AccountAccess;
    use crate::error::{AwsError, ErrorKind};
    use crate::iam::fake::FakeIam;
    use crate::retry::CallCounter;
    use cutoff_domain::principal::Account;

    /// Fake accounts; records which accounts were reached through the member role.
    #[derive(Debug, Clone)]
    pub struct FakeAccess {
        pub home: Account,
        pub accounts: Arc<Mutex<HashMap<String, FakeIam>>>,
        pub assumed: Arc<Mutex<Vec<String>>>,
        /// Errors for the next AssumeRole calls.
        pub assume_failures: Arc<Mutex<VecDeque<ErrorKind>>>,
        /// CloudTrail's event history of each account and region.
        pub histories: crate::cloudtrail::fake::FakeHistories,
    }

    impl FakeAccess {
        pub fn new(home: &str) -> Self {
            Self {
                home: Account::parse(home).expect("a valid home account"),
                accounts: Arc::default(),
                assumed: Arc::default(),
                assume_failures: Arc::default(),
                histories: Default::default(),
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

    impl crate::cloudtrail::HistoryAccess for FakeAccess {
        type History = crate::cloudtrail::fake::FakeEventHistory;

        async fn history_for(
            &self,
            account: &Account,
            region: &str,
            request_id: &str,
            calls: &CallCounter,
        ) -> Result<Self::History, AwsError> {
            self.histories
                .history_for(account, region, request_id, calls)
                .await
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iam::Client as Iam;
    use aws_sdk_sts::Client as Sts;
    use aws_sdk_sts::operation::assume_role::AssumeRoleOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::box_error::BoxError;
    use aws_smithy_runtime_api::client::interceptors::Intercept;
    use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::config_bag::ConfigBag;
    use cutoff_domain::clock::FixedClock;

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
    const MEMBER: &str = "444455556666";
    const MEMBER_ROLE_ARN: &str = "arn:aws:iam::444455556666:role/cutoff-member";

    fn account(s: &str) -> Account {
        Account::parse(s).unwrap()
    }

    fn name(s: &str) -> PrincipalName {
        PrincipalName::parse(s).unwrap()
    }

    /// An STS (awsQuery) error response, as the service sends it: the real deserializer
    /// turns it into the modeled error with its code and message.
    fn http_error(status: u16, code: &str, message: &str) -> HttpResponse {
        let body = format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>4b1f7c52-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        );
        HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
    }

    #[tokio::test]
    async fn discover_home_reads_the_account_and_the_partition_of_the_caller() {
        let rule = mock!(Sts::get_caller_identity).then_output(|| {
            aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput::builder()
                .account(HOME)
                .arn("arn:aws-us-gov:sts::111122223333:assumed-role/cutoff-revoker/cutoff-revoker")
                .user_id("AROAEXAMPLE:cutoff-revoker")
                .build()
        });
        let sts = mocked!(aws_sdk_sts, [&rule]);
        let home = discover_home_with(&sts, &RetryPolicy::immediate(3), &CallCounter::default())
            .await
            .unwrap();
        assert_eq!(home.account, account(HOME));
        assert_eq!(home.partition, Partition::AwsUsGov);
        assert_eq!(
            home.arn,
            "arn:aws-us-gov:sts::111122223333:assumed-role/cutoff-revoker/cutoff-revoker"
        );
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn assumed(akid: &'static str, expires: DateTime<Utc>) -> AssumeRoleOutput {
        AssumeRoleOutput::builder()
            .credentials(
                aws_sdk_sts::types::Credentials::builder()
                    .access_key_id(akid)
                    .secret_access_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
                    .session_token("FwoGZXIvYXdzEXAMPLETOKEN")
                    .expiration(aws_smithy_types::DateTime::from_secs(expires.timestamp()))
                    .build()
                    .unwrap(),
            )
            .build()
    }

    /// An access key id and, for temporary credentials, the session token.
    type Signature = (String, Option<String>);

    /// What each IAM request was signed with.
    #[derive(Debug, Clone, Default)]
    struct SeenCredentials(Arc<std::sync::Mutex<Vec<Signature>>>);

    impl Intercept for SeenCredentials {
        fn name(&self) -> &'static str {
            "SeenCredentials"
        }

        fn read_before_transmit(
            &self,
            context: &BeforeTransmitInterceptorContextRef<'_>,
            _components: &RuntimeComponents,
            _cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let headers = context.request().headers();
            // `AWS4-HMAC-SHA256 Credential=<key id>/<date>/…`
            let key = headers
                .get("authorization")
                .and_then(|auth| auth.split("Credential=").nth(1))
                .and_then(|rest| rest.split('/').next())
                .unwrap_or_default()
                .to_owned();
            let token = headers.get("x-amz-security-token").map(str::to_owned);
            self.0.lock().unwrap().push((key, token));
            Ok(())
        }
    }

    impl SeenCredentials {
        /// Makes a request with `iam` and returns what it was signed with.
        async fn of(&self, iam: &SdkIam) -> Signature {
            let _ = iam.client().get_account_summary().send().await;
            self.0.lock().unwrap().pop().unwrap()
        }
    }

    fn access(
        sts: Sts,
        clock: Arc<FixedClock>,
        external_id: Option<&str>,
    ) -> (SdkAccountAccess, SeenCredentials) {
        let any = mock!(Iam::get_account_summary).then_output(|| {
            aws_sdk_iam::operation::get_account_summary::GetAccountSummaryOutput::builder().build()
        });
        let seen = SeenCredentials::default();
        let interceptor = seen.clone();
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&any], move |c| c
            .interceptor(interceptor.clone()));
        let access = SdkAccountAccess::from_clients(
            sts,
            iam.config().clone(),
            account(HOME),
            Partition::Aws,
            name("cutoff-member"),
            external_id.map(str::to_owned),
        )
        .with_clock(clock)
        .with_retry_policy(RetryPolicy::immediate(4));
        (access, seen)
    }

    #[tokio::test]
    async fn member_accounts_are_reached_through_the_member_role_and_cached() {
        let now = at("2026-11-23T12:00:00Z");
        let clock = Arc::new(FixedClock::at(now));
        let expiry = now + chrono::Duration::hours(1);
        let rule = mock!(Sts::assume_role)
            .match_requests(|r| {
                r.role_arn() == Some(MEMBER_ROLE_ARN)
                    && r.external_id() == Some("ext-7f3a")
                    && r.role_session_name() == Some("cutoff-3f2a9c1e-req")
                    && r.duration_seconds() == Some(3600)
            })
            .sequence()
            .output(move || assumed("ASIAFIRSTSESSION0001", expiry))
            .output(move || assumed("ASIASECONDSESSION001", expiry + chrono::Duration::hours(1)))
            .build();
        let sts = mocked!(aws_sdk_sts, RuleMode::MatchAny, [&rule]);
        let (access, seen) = access(sts, clock.clone(), Some("ext-7f3a"));
        let calls = CallCounter::default();

        let first = access
            .client_for(&account(MEMBER), "3f2a9c1e-req", &calls)
            .await
            .unwrap();
        assert_eq!(first.account(), &account(MEMBER));
        assert_eq!(
            Some(seen.of(&first).await.0.as_str()),
            Some("ASIAFIRSTSESSION0001")
        );
        assert_eq!(
            seen.of(&first).await.1.as_deref(),
            Some("FwoGZXIvYXdzEXAMPLETOKEN")
        );
        assert_eq!(rule.num_calls(), 1);
        assert_eq!(calls.get(), 1);

        // Cached: a later request (another request id) makes no STS call.
        clock.advance(chrono::Duration::minutes(54));
        let again = access
            .client_for(&account(MEMBER), "other-request", &calls)
            .await
            .unwrap();
        assert_eq!(
            Some(seen.of(&again).await.0.as_str()),
            Some("ASIAFIRSTSESSION0001")
        );
        assert_eq!((rule.num_calls(), calls.get()), (1, 1));

        // Five minutes before expiry the session is renewed.
        clock.advance(chrono::Duration::minutes(1));
        let renewed = access
            .client_for(&account(MEMBER), "3f2a9c1e-req", &calls)
            .await
            .unwrap();
        assert_eq!(
            Some(seen.of(&renewed).await.0.as_str()),
            Some("ASIASECONDSESSION001")
        );
        assert_eq!((rule.num_calls(), calls.get()), (2, 2));
    }

    #[tokio::test]
    async fn the_home_account_uses_our_own_credentials_and_never_calls_sts() {
        let rule =
            mock!(Sts::assume_role).then_output(|| assumed("ASIAUNEXPECTED000001", Utc::now()));
        let sts = mocked!(aws_sdk_sts, RuleMode::MatchAny, [&rule]);
        let (access, seen) = access(
            sts,
            Arc::new(FixedClock::at(at("2026-11-23T12:00:00Z"))),
            Some("x"),
        );
        let calls = CallCounter::default();
        let home = access
            .client_for(&account(HOME), "req", &calls)
            .await
            .unwrap();
        assert_eq!(home.account(), &account(HOME));
        assert_ne!(
            Some(seen.of(&home).await.0.as_str()),
            Some("ASIAUNEXPECTED000001")
        );
        assert_eq!((rule.num_calls(), calls.get()), (0, 0));
    }

    #[tokio::test]
    async fn each_account_has_its_own_session_and_the_external_id_is_optional() {
        let now = at("2026-11-23T12:00:00Z");
        let expiry = now + chrono::Duration::hours(1);
        let rule = mock!(Sts::assume_role)
            .match_requests(|r| r.external_id().is_none())
            .then_compute_output(move |r| {
                if r.role_arn() == Some(MEMBER_ROLE_ARN) {
                    assumed("ASIAMEMBERONE0000001", expiry)
                } else {
                    assumed("ASIAMEMBERTWO0000001", expiry)
                }
            });
        let sts = mocked!(aws_sdk_sts, RuleMode::MatchAny, [&rule]);
        let (access, seen) = access(sts, Arc::new(FixedClock::at(now)), None);
        let calls = CallCounter::default();
        let one = access
            .client_for(&account(MEMBER), "r", &calls)
            .await
            .unwrap();
        let two = access
            .client_for(&account("999988887777"), "r", &calls)
            .await
            .unwrap();
        assert_eq!(
            Some(seen.of(&one).await.0.as_str()),
            Some("ASIAMEMBERONE0000001")
        );
        assert_eq!(
            Some(seen.of(&two).await.0.as_str()),
            Some("ASIAMEMBERTWO0000001")
        );
        assert_eq!(two.account(), &account("999988887777"));
        assert_eq!((rule.num_calls(), calls.get()), (2, 2));
    }

    #[tokio::test]
    async fn throttled_assume_role_is_retried_and_every_attempt_counted() {
        let now = at("2026-11-23T12:00:00Z");
        let rule = mock!(Sts::assume_role)
            .sequence()
            .http_response(|| http_error(400, "Throttling", "Rate exceeded"))
            .times(2)
            .output(move || assumed("ASIAAFTERTHROTTLE001", now + chrono::Duration::hours(1)))
            .build();
        let sts = mocked!(aws_sdk_sts, RuleMode::MatchAny, [&rule]);
        let (access, seen) = access(sts, Arc::new(FixedClock::at(now)), Some("ext"));
        let calls = CallCounter::default();
        let iam = access
            .client_for(&account(MEMBER), "r", &calls)
            .await
            .unwrap();
        assert_eq!(
            Some(seen.of(&iam).await.0.as_str()),
            Some("ASIAAFTERTHROTTLE001")
        );
        assert_eq!((rule.num_calls(), calls.get()), (3, 3));
    }

    #[tokio::test]
    async fn a_denied_assume_role_names_the_role_and_what_to_check() {
        let rule = mock!(Sts::assume_role).then_http_response(|| {
            http_error(
                403,
                "AccessDenied",
                "User: arn:aws:sts::111122223333:assumed-role/cutoff-revoker/x is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::444455556666:role/cutoff-member",
            )
        });
        let sts = mocked!(aws_sdk_sts, RuleMode::MatchAny, [&rule]);
        let (access, _) = access(
            sts,
            Arc::new(FixedClock::at(at("2026-11-23T12:00:00Z"))),
            Some("secret-ext"),
        );
        let calls = CallCounter::default();
        let err = access
            .client_for(&account(MEMBER), "r", &calls)
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, err.operation),
            (ErrorKind::AccessDenied, "sts:AssumeRole")
        );
        assert!(
            err.message
                .starts_with(&format!("cannot assume {MEMBER_ROLE_ARN}: ")),
            "{err}"
        );
        assert!(
            err.message.contains("member-role stack") && err.message.contains("ExternalId"),
            "{err}"
        );
        assert!(
            !err.to_string().contains("secret-ext"),
            "the ExternalId stays out of messages"
        );
        // Fatal: not retried, and nothing cached.
        assert_eq!((rule.num_calls(), calls.get()), (1, 1));
        assert!(
            access
                .client_for(&account(MEMBER), "r", &calls)
                .await
                .is_err()
        );
        assert_eq!(rule.num_calls(), 2);
    }

    #[test]
    fn session_names_are_sanitized_and_bounded() {
        assert_eq!(
            session_name("3f2a9c1e-0b1d-4c1e"),
            "cutoff-3f2a9c1e-0b1d-4c1e"
        );
        assert_eq!(session_name("a/b c:d"), "cutoff-a-b-c-d");
        assert_eq!(session_name("ü"), "cutoff--");
        assert_eq!(session_name(""), "cutoff-");
        let long = session_name(&"x".repeat(200));
        assert_eq!(long.len(), 64);
        for name in [long, session_name("é/…\n"), session_name("")] {
            assert!(
                cutoff_domain::principal::SessionName::parse(&name).is_ok(),
                "{name}"
            );
        }
    }
}
