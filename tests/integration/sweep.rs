//! The sweep workflow (`cutoff::sweep_run`) with the real SDK against the local AWS
//! stand-in (moto): rolling cutoffs, cleanup of expired revocations, dry run, a member
//! account through the member role, an independent policy evaluator as the oracle for
//! the rolling cutoff, and a scale test of 10,000 roles that pins the cost in IAM calls
//! and bounds the memory of a sweep.
//!
//! # Isolation
//!
//! The behaviour tests share one moto server but not an account: each takes an account
//! of its own (moto scopes IAM to the account of the credentials, and `AssumeRole` into
//! any account id yields credentials for it), and sweeps it as the *home* account of an
//! [`SdkAccountAccess`] built on those credentials, so no STS call is made, exactly as
//! for cutoff's own account. A sweep sees the whole account, so each test can assert
//! exact counts without seeing the roles of tests running beside it. A dedicated moto
//! server per test would isolate too, at a Python process each (0.4–0.6 s to start
//! here, more on busy cores); accounts cost nothing and are also what a real sweep
//! walks through. The scale test has its own server: seeding 10,000 roles keeps one
//! moto process (single-threaded Python) busy for most of a minute, which would stall
//! every test sharing it.
//!
//! # Counting
//!
//! The behaviour tests send the sweeper through a recording proxy, so the calls it makes
//! are seen independently of its own `api_calls`. The scale test counts with an SDK
//! interceptor instead: the proxy buffers whole answers in this process, which would
//! show up in the memory being measured.
//!
//! # moto's listing of managed policies
//!
//! moto (5.2.5) leaves `PolicyName` (and `PolicyId`) out of the `Policies` of
//! `GetAccountAuthorizationDetails`; IAM always sends them. cutoff picks its fallback
//! policies `cutoff-revoke-<name>` out of that list by `PolicyName`, so against bare moto
//! it never sees a fallback's document and leaves the fallback alone (with a note). The
//! behaviour tests therefore reach moto through [`policy_name_shim`], which adds the name
//! (the last segment of the ARN, which is what IAM would send) to that one response and
//! forwards everything else untouched. Every write still lands in moto.
//!
//! Time is fixed: every sweep gets an explicit `now`, so nothing depends on the clock
//! (moto stores the documents and never looks at the dates in them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cutoff_domain::clock::FixedClock;
use cutoff_domain::triage::Source;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_iam::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_iam::config::{ConfigBag, Credentials, Intercept, RuntimeComponents};
use aws_sdk_iam::error::BoxError;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use cutoff::sweep_run::{SweepConfig, sweep_accounts};
use cutoff_aws::dynamodb::NoLedger;
use cutoff_aws::retry::RetryPolicy;
use cutoff_aws::sts::SdkAccountAccess;
use cutoff_domain::outcome::{Outcome, Status};
use cutoff_domain::policy::{
    Cutoff, PolicyDocument, ROLE_WIDE_POLICY_NAME, fallback_managed_policy_name,
    role_wide_statement,
};
use cutoff_domain::principal::{Account, Partition, PrincipalName};
use cutoff_domain::summary::AccountReport;
use cutoff_domain::sweep_rules::{MAX_SESSION_AGE_TAG, MaxSessionAge, rolling_cutoff};
use cutoff_tests::aws::{sdk_config, sdk_config_loader, sts_client};
use cutoff_tests::evaluator::{Decision, EvalRequest, evaluate_all};
use cutoff_tests::moto::MotoServer;
use cutoff_tests::proxy::{FaultPlan, FaultProxy};
use cutoff_tests::seed;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

/// moto's default account: the credentials of [`sdk_config`] act in it.
const DEFAULT_ACCOUNT: &str = cutoff_tests::aws::ACCOUNT;
const MEMBER_ROLE: &str = "cutoff-member";
const EXTERNAL_ID: &str = "cutoff-ext-5b1c";
const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// The fixed time of every sweep. Not a whole second, so the rolling cutoff has to
/// round up.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T12:00:00.250Z")
        .unwrap()
        .to_utc()
}

fn hours(h: i64) -> chrono::Duration {
    chrono::Duration::hours(h)
}

/// The cutoff of a revocation written `d` before [`now`].
fn ago(d: chrono::Duration) -> Cutoff {
    Cutoff::at_or_after(now() - d)
}

fn age(text: &str) -> MaxSessionAge {
    MaxSessionAge::parse(text).unwrap()
}

/// A number no other test of this module uses (the tests of the integration binary
/// share one moto server; the other modules keep out of these accounts).
fn next_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", next_id())
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
    }
}

fn config() -> SweepConfig {
    SweepConfig {
        retry: fast_retry(),
        verify_delay: Duration::from_millis(10),
        ..SweepConfig::default()
    }
}

fn dry_config() -> SweepConfig {
    SweepConfig {
        dry_run: true,
        ..config()
    }
}

// ---------------------------------------------------------------------------------------
// An account of one's own
// ---------------------------------------------------------------------------------------

/// One test's account on the shared moto server.
struct Env {
    account: Account,
    /// Straight to moto, with credentials of `account`: for setting up and inspecting.
    iam: aws_sdk_iam::Client,
    /// Records every call the sweeper makes.
    proxy: FaultProxy,
    /// The sweeper's access: `account` is its home, reached through `proxy`.
    access: SdkAccountAccess,
}

/// Credentials acting in `account` (moto's `AssumeRole` accepts any role ARN).
async fn credentials_in(endpoint: &str, account: &str) -> Credentials {
    let creds = sts_client(endpoint)
        .await
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/{MEMBER_ROLE}"))
        .role_session_name("test-setup")
        .send()
        .await
        .unwrap()
        .credentials
        .unwrap();
    Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_owned()),
        None,
        "sweep-tests",
    )
}

/// An IAM client for `endpoint` acting with `credentials` (so in their account).
async fn iam_in(endpoint: &str, credentials: Credentials) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(
        &sdk_config_loader(endpoint)
            .credentials_provider(credentials)
            .load()
            .await,
    )
}

/// A fresh account, swept as the home account of the access (no STS call), through the
/// recording proxy and the policy-name shim.
async fn env() -> Env {
    let moto = MotoServer::shared();
    let account = format!("2000{:08}", next_id());
    let creds = credentials_in(moto.endpoint(), &account).await;
    let proxy = FaultProxy::start(policy_name_shim(), FaultPlan::passthrough());
    let sweeper_config = sdk_config_loader(proxy.endpoint())
        .credentials_provider(creds.clone())
        .load()
        .await;
    let account = Account::parse(&account).unwrap();
    let access = SdkAccountAccess::new(
        &sweeper_config,
        account.clone(),
        Partition::Aws,
        PrincipalName::parse(MEMBER_ROLE).unwrap(),
        Some(EXTERNAL_ID.to_owned()),
    )
    .with_retry_policy(fast_retry());
    Env {
        account,
        iam: iam_in(moto.endpoint(), creds).await,
        proxy,
        access,
    }
}

// ---------------------------------------------------------------------------------------
// The policy-name shim (see the module documentation)
// ---------------------------------------------------------------------------------------

/// `http://127.0.0.1:<port>` of a forwarder to the shared moto server that adds the
/// `PolicyName` IAM sends and moto omits to the managed policies of a
/// `GetAccountAuthorizationDetails` answer. It runs on a thread of its own for the rest of
/// the test process.
fn policy_name_shim() -> &'static str {
    static SHIM: OnceLock<String> = OnceLock::new();
    SHIM.get_or_init(|| {
        let upstream = MotoServer::shared().endpoint().to_owned();
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        std::thread::Builder::new()
            .name("policy-name-shim".to_owned())
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(serve_shim(listener, upstream));
            })
            .unwrap();
        endpoint
    })
}

type ShimClient = Client<HttpConnector, Full<Bytes>>;

async fn serve_shim(listener: std::net::TcpListener, upstream: String) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let client: ShimClient = Client::builder(TokioExecutor::new()).build_http();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                shim_forward(request, client.clone(), upstream.clone())
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn shim_forward(
    request: hyper::Request<hyper::body::Incoming>,
    client: ShimClient,
    upstream: String,
) -> Result<hyper::Response<Full<Bytes>>, BoxError> {
    let (mut parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let listing = String::from_utf8_lossy(&body).contains("Action=GetAccountAuthorizationDetails");
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{upstream}{path}").parse()?;
    let answer = client
        .request(hyper::Request::from_parts(parts, Full::new(body)))
        .await?;
    let (mut parts, body) = answer.into_parts();
    let mut body = body.collect().await?.to_bytes();
    if listing {
        body = Bytes::from(add_policy_names(&String::from_utf8_lossy(&body)));
        parts.headers.remove(hyper::header::CONTENT_LENGTH);
        parts.headers.remove(hyper::header::TRANSFER_ENCODING);
    }
    Ok(hyper::Response::from_parts(parts, Full::new(body)))
}

/// Adds `<PolicyName>` (the last segment of the ARN) to each member of the `<Policies>`
/// of a listing that lacks it; anything else, and a listing that has names, unchanged.
fn add_policy_names(xml: &str) -> String {
    let (Some(start), Some(end)) = (xml.find("<Policies>"), xml.find("</Policies>")) else {
        return xml.to_owned();
    };
    let section = &xml[start..end];
    if section.contains("<PolicyName>") {
        return xml.to_owned();
    }
    let mut patched = String::with_capacity(section.len() + 256);
    let mut rest = section;
    while let Some(at) = rest.find("<Arn>") {
        let (before, tail) = rest.split_at(at + "<Arn>".len());
        let close = tail.find("</Arn>").expect("</Arn>");
        let arn = &tail[..close];
        patched.push_str(before);
        patched.push_str(arn);
        patched.push_str("</Arn>");
        let name = arn.rsplit('/').next().unwrap_or_default();
        patched.push_str(&format!("<PolicyName>{name}</PolicyName>"));
        rest = &tail[close + "</Arn>".len()..];
    }
    patched.push_str(rest);
    format!("{}{patched}{}", &xml[..start], &xml[end..])
}

#[test]
fn the_shim_names_the_listed_policies_and_nothing_else() {
    let arn = "arn:aws:iam::200000000001:policy/cutoff/cutoff-revoke-x";
    let moto = format!(
        "<R><RoleDetailList><member><Arn>arn:aws:iam::200000000001:role/x</Arn></member>\
         </RoleDetailList><Policies><member><Arn>{arn}</Arn><Path>/cutoff/</Path></member>\
         </Policies></R>"
    );
    assert_eq!(
        add_policy_names(&moto),
        format!(
            "<R><RoleDetailList><member><Arn>arn:aws:iam::200000000001:role/x</Arn></member>\
             </RoleDetailList><Policies><member><Arn>{arn}</Arn>\
             <PolicyName>cutoff-revoke-x</PolicyName><Path>/cutoff/</Path></member>\
             </Policies></R>"
        )
    );
    let named = add_policy_names(&moto);
    assert_eq!(
        add_policy_names(&named),
        named,
        "a named listing is left alone"
    );
    assert_eq!(add_policy_names("<R><Policies/></R>"), "<R><Policies/></R>");
}

async fn sweep(env: &Env, config: &SweepConfig, at: DateTime<Utc>) -> AccountReport {
    let mut reports = sweep_accounts(
        &env.access,
        &NoLedger,
        std::slice::from_ref(&env.account),
        config,
        &FixedClock::at(at),
        "it",
        1,
    )
    .await;
    assert_eq!(reports.len(), 1);
    let report = reports.remove(0);
    assert!(report.error.is_none(), "{report:#?}");
    assert_eq!(report.principals_failed, 0, "{report:#?}");
    report
}

/// Calls that change something, as the proxy saw them.
fn writes(proxy: &FaultProxy) -> Vec<String> {
    proxy
        .actions()
        .into_iter()
        .filter(|a| !a.starts_with("Get") && !a.starts_with("List") && a != "AssumeRole")
        .collect()
}

fn outcome<'a>(report: &'a AccountReport, name: &str) -> Option<&'a Outcome> {
    report
        .outcomes
        .iter()
        .find(|o| o.target.as_ref().is_some_and(|t| t.name.as_str() == name))
}

// ---------------------------------------------------------------------------------------
// IAM set-up and inspection, straight to moto
// ---------------------------------------------------------------------------------------

async fn create_role(iam: &aws_sdk_iam::Client, name: &str, tags: &[(&str, &str)]) {
    seed::create_role(iam, name, tags).await.unwrap();
}

async fn create_user(iam: &aws_sdk_iam::Client, name: &str) {
    iam.create_user().user_name(name).send().await.unwrap();
}

async fn put_role_policy(iam: &aws_sdk_iam::Client, role: &str, policy: &str, document: &str) {
    seed::put_role_policy(iam, role, policy, document)
        .await
        .unwrap();
}

async fn put_user_policy(iam: &aws_sdk_iam::Client, user: &str, policy: &str, document: &str) {
    iam.put_user_policy()
        .user_name(user)
        .policy_name(policy)
        .policy_document(document)
        .send()
        .await
        .unwrap();
}

/// The inline policy exactly as IAM returns it, or None when it does not exist.
async fn role_policy_text(iam: &aws_sdk_iam::Client, role: &str, policy: &str) -> Option<String> {
    match iam
        .get_role_policy()
        .role_name(role)
        .policy_name(policy)
        .send()
        .await
    {
        Ok(out) => Some(out.policy_document().to_owned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            None
        }
        Err(e) => panic!("GetRolePolicy {role}/{policy}: {e:?}"),
    }
}

async fn user_policy_text(iam: &aws_sdk_iam::Client, user: &str, policy: &str) -> Option<String> {
    match iam
        .get_user_policy()
        .user_name(user)
        .policy_name(policy)
        .send()
        .await
    {
        Ok(out) => Some(out.policy_document().to_owned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            None
        }
        Err(e) => panic!("GetUserPolicy {user}/{policy}: {e:?}"),
    }
}

async fn role_policy(
    iam: &aws_sdk_iam::Client,
    role: &str,
    policy: &str,
) -> Option<PolicyDocument> {
    role_policy_text(iam, role, policy)
        .await
        .map(|t| PolicyDocument::parse(&t).unwrap())
}

async fn attached_to_role(iam: &aws_sdk_iam::Client, role: &str) -> Vec<String> {
    iam.list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap()
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn().map(str::to_owned))
        .collect()
}

/// Every version of a managed policy (id, default?, document as returned), or None when
/// the policy does not exist.
async fn managed_versions(
    iam: &aws_sdk_iam::Client,
    arn: &str,
) -> Option<Vec<(String, bool, String)>> {
    let listed = match iam.list_policy_versions().policy_arn(arn).send().await {
        Ok(out) => out,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            return None;
        }
        Err(e) => panic!("ListPolicyVersions {arn}: {e:?}"),
    };
    let mut out = Vec::new();
    for v in listed.versions() {
        let id = v.version_id().unwrap().to_owned();
        let version = iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(&id)
            .send()
            .await
            .unwrap();
        let document = version
            .policy_version()
            .and_then(|p| p.document())
            .unwrap()
            .to_owned();
        out.push((id, v.is_default_version(), document));
    }
    out.sort();
    Some(out)
}

/// A document of these statements, as text.
fn doc(statements: Vec<Value>) -> String {
    PolicyDocument::new(statements).to_json()
}

/// Our role-wide statement (Sid `RevokeOlderSessions`).
fn ours(cutoff: Cutoff) -> Value {
    role_wide_statement(cutoff)
}

/// The same deny as the IAM console writes it: no Sid, `["*"]`, milliseconds.
fn console(cutoff: Cutoff) -> Value {
    let at = cutoff
        .as_datetime()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({"Effect":"Deny","Action":["*"],"Resource":["*"],
           "Condition":{"DateLessThan":{"aws:TokenIssueTime": at}}})
}

fn foreign_allow() -> Value {
    json!({"Sid":"ReadReports","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/*"})
}

fn foreign_deny() -> Value {
    json!({"Sid":"NoBucketDeletes","Effect":"Deny","Action":"s3:DeleteBucket","Resource":"*"})
}

// ---------------------------------------------------------------------------------------
// Behaviour
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_opted_in_role_gets_the_rolling_cutoff_and_it_never_moves_backwards() {
    let env = env().await;
    let batch = unique("batch-worker");
    let revoked = unique("recently-revoked");
    create_role(
        &env.iam,
        &batch,
        &[(MAX_SESSION_AGE_TAG, "4h"), ("cutoff:owner", "data")],
    )
    .await;
    // Revoked an hour ago: a later cutoff than the rolling one (now − 4 h).
    create_role(&env.iam, &revoked, &[(MAX_SESSION_AGE_TAG, "4h")]).await;
    let revoked_doc = doc(vec![ours(ago(hours(1)))]);
    put_role_policy(&env.iam, &revoked, ROLE_WIDE_POLICY_NAME, &revoked_doc).await;
    let revoked_before = role_policy_text(&env.iam, &revoked, ROLE_WIDE_POLICY_NAME).await;

    let report = sweep(&env, &config(), now()).await;
    let rolling = rolling_cutoff(age("4h"), now());
    // now − 4 h is 08:00:00.250, rounded up to the whole second.
    assert_eq!(rolling, Cutoff::parse("2026-11-23T08:00:01Z").unwrap());
    assert_eq!(report.principals_scanned, 2);
    assert_eq!(report.cutoffs_moved, 1);
    assert_eq!((report.statements_removed, report.policies_deleted), (0, 0));
    assert_eq!(report.outcomes.len(), 1, "{:#?}", report.outcomes);
    let moved = outcome(&report, &batch).unwrap();
    assert_eq!(moved.status, Status::Applied, "{moved:#?}");
    assert_eq!(moved.cutoff, Some(rolling));
    assert_eq!(moved.previous_cutoff, None);
    assert_eq!(moved.policy.as_deref(), Some(ROLE_WIDE_POLICY_NAME));
    assert_eq!(moved.owner.team.as_deref(), Some("data"));
    assert_eq!(moved.trigger.source, Source::Schedule);
    assert_eq!(moved.propagation.as_deref(), Some("eventual"));
    assert!(
        moved.detail.contains("max session age 4h"),
        "{}",
        moved.detail
    );
    let stored = role_policy(&env.iam, &batch, ROLE_WIDE_POLICY_NAME)
        .await
        .unwrap();
    assert_eq!(stored.role_wide_cutoff(), Some(rolling));
    assert_eq!(stored.statements(), [ours(rolling)]);
    // The later cutoff stays, untouched to the byte.
    assert_eq!(
        role_policy_text(&env.iam, &revoked, ROLE_WIDE_POLICY_NAME).await,
        revoked_before
    );
    // One page; batch-worker: fresh read, put, read-back. Nothing for the other role.
    assert_eq!(
        env.proxy.actions(),
        [
            "GetAccountAuthorizationDetails",
            "GetRolePolicy",
            "PutRolePolicy",
            "GetRolePolicy"
        ]
    );
    assert_eq!(report.api_calls, 1 + 3);

    // An hour earlier the rolling cutoff would be 07:00:01: never written over 08:00:01.
    env.proxy.clear_requests();
    let earlier = sweep(&env, &config(), now() - hours(1)).await;
    assert_eq!(earlier.cutoffs_moved, 0);
    assert!(earlier.outcomes.is_empty(), "{:#?}", earlier.outcomes);
    assert_eq!(earlier.api_calls, 1, "the listing only");
    assert_eq!(env.proxy.actions(), ["GetAccountAuthorizationDetails"]);
    assert_eq!(
        role_policy(&env.iam, &batch, ROLE_WIDE_POLICY_NAME)
            .await
            .unwrap()
            .role_wide_cutoff(),
        Some(rolling)
    );

    // Half an hour later it rolls forward; the role revoked "an hour ago" (11:00) still
    // has the later cutoff (08:30 < 11:00) and is left alone.
    env.proxy.clear_requests();
    let later_now = now() + chrono::Duration::minutes(30);
    let later = sweep(&env, &config(), later_now).await;
    assert_eq!(later.cutoffs_moved, 1);
    let moved = outcome(&later, &batch).unwrap();
    assert_eq!(moved.previous_cutoff, Some(rolling));
    assert_eq!(moved.cutoff, Some(rolling_cutoff(age("4h"), later_now)));
    assert_eq!(writes(&env.proxy), ["PutRolePolicy"]);
    assert_eq!(
        role_policy_text(&env.iam, &revoked, ROLE_WIDE_POLICY_NAME).await,
        revoked_before
    );
}

#[tokio::test]
async fn expired_statements_go_while_fresh_and_foreign_ones_stay_in_order() {
    let env = env().await;
    let mixed = unique("mixed");
    let only_expired = unique("only-expired");
    let role_30h = unique("role-30h");
    let user_30h = unique("user-30h");
    let user_40h = unique("user-40h");
    for role in [&mixed, &only_expired, &role_30h] {
        create_role(&env.iam, role, &[]).await;
    }
    for user in [&user_30h, &user_40h] {
        create_user(&env.iam, user).await;
    }
    // A console deny from 20 h ago (expired for a role: 12 h + 1 h margin), our deny
    // from 2 h ago (still matters), and two statements that are not ours around them.
    let expired = ago(hours(20));
    let fresh = ago(hours(2));
    put_role_policy(
        &env.iam,
        &mixed,
        ROLE_WIDE_POLICY_NAME,
        &doc(vec![
            foreign_allow(),
            console(expired),
            foreign_deny(),
            ours(fresh),
        ]),
    )
    .await;
    put_role_policy(
        &env.iam,
        &only_expired,
        ROLE_WIDE_POLICY_NAME,
        &doc(vec![ours(expired)]),
    )
    .await;
    // 30 h is past a role's window but inside a user's (36 h + 1 h margin); 40 h is not.
    put_role_policy(
        &env.iam,
        &role_30h,
        ROLE_WIDE_POLICY_NAME,
        &doc(vec![ours(ago(hours(30)))]),
    )
    .await;
    put_user_policy(
        &env.iam,
        &user_30h,
        ROLE_WIDE_POLICY_NAME,
        &doc(vec![ours(ago(hours(30)))]),
    )
    .await;
    put_user_policy(
        &env.iam,
        &user_40h,
        ROLE_WIDE_POLICY_NAME,
        &doc(vec![ours(ago(hours(40)))]),
    )
    .await;
    let user_30h_before = user_policy_text(&env.iam, &user_30h, ROLE_WIDE_POLICY_NAME).await;

    let report = sweep(&env, &config(), now()).await;
    assert_eq!(report.principals_scanned, 5);
    assert_eq!(report.cutoffs_moved, 0);
    assert_eq!(report.statements_removed, 4, "{:#?}", report.outcomes);
    assert_eq!(report.policies_deleted, 3, "{:#?}", report.outcomes);

    let kept = role_policy(&env.iam, &mixed, ROLE_WIDE_POLICY_NAME)
        .await
        .unwrap();
    assert_eq!(
        kept.statements(),
        [foreign_allow(), foreign_deny(), ours(fresh)],
        "the expired statement goes; the rest stays as it was, in order"
    );
    let cleaned = outcome(&report, &mixed).unwrap();
    assert_eq!(cleaned.status, Status::Released, "{cleaned:#?}");
    assert_eq!(cleaned.previous_cutoff, Some(expired));
    assert!(
        cleaned.detail.contains("removed 1 expired"),
        "{}",
        cleaned.detail
    );

    assert_eq!(
        role_policy_text(&env.iam, &only_expired, ROLE_WIDE_POLICY_NAME).await,
        None,
        "a policy left without statements is deleted"
    );
    assert_eq!(
        role_policy_text(&env.iam, &role_30h, ROLE_WIDE_POLICY_NAME).await,
        None
    );
    assert_eq!(
        user_policy_text(&env.iam, &user_30h, ROLE_WIDE_POLICY_NAME).await,
        user_30h_before,
        "a user's 30 h old cutoff may still deny a GetSessionToken session"
    );
    assert!(outcome(&report, &user_30h).is_none());
    assert_eq!(
        user_policy_text(&env.iam, &user_40h, ROLE_WIDE_POLICY_NAME).await,
        None
    );
    for name in [&only_expired, &role_30h, &user_40h] {
        assert_eq!(outcome(&report, name).unwrap().status, Status::Released);
    }

    // One page; per changed principal one fresh read and one write.
    let mut counts = env.proxy.counts();
    assert_eq!(counts.remove("GetAccountAuthorizationDetails"), Some(1));
    assert_eq!(counts.remove("GetRolePolicy"), Some(3));
    assert_eq!(counts.remove("GetUserPolicy"), Some(1));
    assert_eq!(counts.remove("PutRolePolicy"), Some(1));
    assert_eq!(counts.remove("DeleteRolePolicy"), Some(2));
    assert_eq!(counts.remove("DeleteUserPolicy"), Some(1));
    assert!(counts.is_empty(), "{counts:?}");
    assert_eq!(report.api_calls, 1 + 4 * 2);
    assert_eq!(report.api_calls as usize, env.proxy.requests().len());
}

/// The fallback `cutoff-revoke-role-<name>` (path `/cutoff/`) with two versions, both
/// expired, attached to `role`; its ARN.
async fn expired_fallback(iam: &aws_sdk_iam::Client, account: &Account, role: &str) -> String {
    let name = fallback_managed_policy_name(
        cutoff_domain::principal::PrincipalType::Role,
        &PrincipalName::parse(role).unwrap(),
    );
    let arn = iam
        .create_policy()
        .policy_name(&name)
        .path("/cutoff/")
        .policy_document(doc(vec![ours(ago(hours(30)))]))
        .send()
        .await
        .unwrap()
        .policy
        .unwrap()
        .arn
        .unwrap();
    assert_eq!(arn, format!("arn:aws:iam::{account}:policy/cutoff/{name}"));
    iam.create_policy_version()
        .policy_arn(&arn)
        .policy_document(doc(vec![ours(ago(hours(20)))]))
        .set_as_default(true)
        .send()
        .await
        .unwrap();
    iam.attach_role_policy()
        .role_name(role)
        .policy_arn(&arn)
        .send()
        .await
        .unwrap();
    arn
}

#[tokio::test]
async fn an_expired_managed_fallback_is_detached_and_deleted() {
    let env = env().await;
    let role = unique("big-inline");
    create_role(&env.iam, &role, &[]).await;
    let arn = expired_fallback(&env.iam, &env.account, &role).await;
    assert_eq!(
        attached_to_role(&env.iam, &role).await,
        std::slice::from_ref(&arn)
    );

    let report = sweep(&env, &config(), now()).await;
    assert_eq!(report.statements_removed, 1);
    assert_eq!(report.policies_deleted, 1);
    let released = outcome(&report, &role).unwrap();
    assert_eq!(released.status, Status::Released, "{released:#?}");
    assert_eq!(released.previous_cutoff, Some(ago(hours(20))));
    assert!(
        released
            .actions
            .iter()
            .any(|a| a == &format!("delete managed policy {arn}")),
        "{:?}",
        released.actions
    );
    assert!(attached_to_role(&env.iam, &role).await.is_empty());
    assert_eq!(managed_versions(&env.iam, &arn).await, None, "deleted");

    // What went over the wire: the fresh read of the default version, the detach, and
    // the deletion (the old version first, as IAM requires).
    assert_eq!(
        env.proxy.actions(),
        [
            "GetAccountAuthorizationDetails",
            "GetPolicy",
            "GetPolicyVersion",
            "DetachRolePolicy",
            "ListPolicyVersions",
            "DeletePolicyVersion",
            "DeletePolicy",
        ]
    );
    // `api_calls` counts attempts of cutoff's IAM operations, and a managed-policy read
    // (GetPolicy + GetPolicyVersion) or deletion (ListPolicyVersions, DeletePolicyVersion
    // per old version, DeletePolicy) is one operation: one page, one read, one detach,
    // one deletion. Seven HTTP requests reached IAM.
    assert_eq!(report.api_calls, 4);
}

#[tokio::test]
async fn dry_run_writes_nothing_and_reports_what_the_real_sweep_then_does() {
    let env = env().await;
    let opted_in = unique("opted-in");
    let mixed = unique("mixed");
    let only_expired = unique("only-expired");
    let fallback = unique("fallback");
    let user = unique("old-user");
    create_role(&env.iam, &opted_in, &[(MAX_SESSION_AGE_TAG, "1h30m")]).await;
    for role in [&mixed, &only_expired, &fallback] {
        create_role(&env.iam, role, &[]).await;
    }
    create_user(&env.iam, &user).await;
    put_role_policy(
        &env.iam,
        &mixed,
        ROLE_WIDE_POLICY_NAME,
        &doc(vec![
            console(ago(hours(20))),
            foreign_deny(),
            ours(ago(hours(2))),
        ]),
    )
    .await;
    put_role_policy(
        &env.iam,
        &only_expired,
        ROLE_WIDE_POLICY_NAME,
        &doc(vec![ours(ago(hours(14)))]),
    )
    .await;
    let arn = expired_fallback(&env.iam, &env.account, &fallback).await;
    put_user_policy(
        &env.iam,
        &user,
        ROLE_WIDE_POLICY_NAME,
        &doc(vec![ours(ago(hours(40)))]),
    )
    .await;

    // Everything the sweep could change, as IAM returns it.
    let state = || async {
        let mut texts = Vec::new();
        for role in [&opted_in, &mixed, &only_expired, &fallback] {
            texts.push(role_policy_text(&env.iam, role, ROLE_WIDE_POLICY_NAME).await);
        }
        texts.push(user_policy_text(&env.iam, &user, ROLE_WIDE_POLICY_NAME).await);
        (
            texts,
            attached_to_role(&env.iam, &fallback).await,
            managed_versions(&env.iam, &arn).await,
        )
    };
    let before = state().await;
    assert!(before.2.as_ref().is_some_and(|v| v.len() == 2));

    let dry = sweep(&env, &dry_config(), now()).await;
    assert!(dry.dry_run);
    assert_eq!(
        state().await,
        before,
        "a dry run leaves every byte as it was"
    );
    assert!(writes(&env.proxy).is_empty(), "{:?}", writes(&env.proxy));
    assert_eq!(dry.outcomes.len(), 5, "{:#?}", dry.outcomes);
    for o in &dry.outcomes {
        assert_eq!(o.status, Status::DryRun, "{o:#?}");
        assert!(o.dry_run);
        assert!(o.detail.contains("would"), "{}", o.detail);
        assert!(!o.actions.is_empty());
        assert_eq!(o.propagation, None);
    }
    assert_eq!(
        outcome(&dry, &opted_in).unwrap().cutoff,
        Some(rolling_cutoff(age("1h30m"), now()))
    );
    // The listing and a fresh read per policy to change (the fallback's is two HTTP
    // requests: GetPolicy, GetPolicyVersion); no writes, no read-backs.
    assert_eq!(dry.api_calls, 1 + 5);
    assert_eq!(env.proxy.requests().len(), 1 + 5 + 1);

    env.proxy.clear_requests();
    let real = sweep(&env, &config(), now()).await;
    assert!(!real.dry_run);
    let counts = |r: &AccountReport| {
        (
            r.principals_scanned,
            r.cutoffs_moved,
            r.statements_removed,
            r.policies_deleted,
        )
    };
    assert_eq!(counts(&real), counts(&dry));
    assert_eq!(counts(&real), (5, 1, 4, 3));
    let summary = |r: &AccountReport| {
        let mut out: Vec<(String, Option<Cutoff>, Option<Cutoff>)> = r
            .outcomes
            .iter()
            .map(|o| {
                (
                    o.target.as_ref().unwrap().name.to_string(),
                    o.cutoff,
                    o.previous_cutoff,
                )
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(summary(&real), summary(&dry));
    let actions = |r: &AccountReport| {
        let mut out: Vec<Vec<String>> = r.outcomes.iter().map(|o| o.actions.clone()).collect();
        out.sort();
        out
    };
    assert_eq!(actions(&real), actions(&dry), "the same steps, now taken");
    assert_ne!(state().await, before);
    assert_eq!(
        writes(&env.proxy),
        [
            "PutRolePolicy",
            "PutRolePolicy",
            "DeleteRolePolicy",
            "DetachRolePolicy",
            "DeletePolicyVersion",
            "DeletePolicy",
            "DeleteUserPolicy",
        ]
    );
    // The dry run's calls, one write per policy changed (the fallback's detach and
    // deletion are two) and the read-back of the moved cutoff.
    assert_eq!(real.api_calls, dry.api_calls + 6 + 1);
}

#[tokio::test]
async fn a_role_with_an_invalid_max_age_tag_is_untouched_and_noted() {
    let env = env().await;
    let role = unique("typo");
    create_role(&env.iam, &role, &[(MAX_SESSION_AGE_TAG, "4 hours")]).await;
    // Even its expired revocation stays until the tag is fixed.
    put_role_policy(
        &env.iam,
        &role,
        ROLE_WIDE_POLICY_NAME,
        &doc(vec![ours(ago(hours(20)))]),
    )
    .await;
    let before = role_policy_text(&env.iam, &role, ROLE_WIDE_POLICY_NAME).await;

    let report = sweep(&env, &config(), now()).await;
    assert_eq!(report.principals_scanned, 1);
    assert!(report.outcomes.is_empty(), "{:#?}", report.outcomes);
    assert_eq!(
        (
            report.cutoffs_moved,
            report.statements_removed,
            report.policies_deleted
        ),
        (0, 0, 0)
    );
    assert_eq!(
        report.notes.len(),
        1,
        "one note for the one role: {:?}",
        report.notes
    );
    let note = &report.notes[0];
    assert!(note.contains(&role), "{note}");
    assert!(note.contains(MAX_SESSION_AGE_TAG), "{note}");
    assert!(note.contains("4 hours"), "{note}");
    assert_eq!(
        role_policy_text(&env.iam, &role, ROLE_WIDE_POLICY_NAME).await,
        before
    );
    assert_eq!(env.proxy.actions(), ["GetAccountAuthorizationDetails"]);
    assert_eq!(report.api_calls, 1);
}

#[tokio::test]
async fn a_member_account_is_swept_through_the_member_role() {
    let moto = MotoServer::shared();
    let member = format!("3000{:08}", next_id());
    let member_iam = iam_in(
        moto.endpoint(),
        credentials_in(moto.endpoint(), &member).await,
    )
    .await;
    let role = unique("member-etl");
    create_role(&member_iam, &role, &[(MAX_SESSION_AGE_TAG, "4h")]).await;
    let expired_role = unique("member-old");
    create_role(&member_iam, &expired_role, &[]).await;
    put_role_policy(
        &member_iam,
        &expired_role,
        ROLE_WIDE_POLICY_NAME,
        &doc(vec![ours(ago(hours(20)))]),
    )
    .await;

    // cutoff's own account is moto's default one: the only test of this module that uses
    // it (other modules' tests do, with names of their own; nothing here lists it).
    let proxy = FaultProxy::start(policy_name_shim(), FaultPlan::passthrough());
    let access = SdkAccountAccess::new(
        &sdk_config(proxy.endpoint()).await,
        Account::parse(DEFAULT_ACCOUNT).unwrap(),
        Partition::Aws,
        PrincipalName::parse(MEMBER_ROLE).unwrap(),
        Some(EXTERNAL_ID.to_owned()),
    )
    .with_retry_policy(fast_retry());
    let home_iam = cutoff_tests::aws::iam_client(moto.endpoint()).await;
    // The same name in cutoff's own account: not swept.
    create_role(&home_iam, &role, &[(MAX_SESSION_AGE_TAG, "4h")]).await;

    let reports = sweep_accounts(
        &access,
        &NoLedger,
        &[Account::parse(&member).unwrap()],
        &config(),
        &FixedClock::at(now()),
        "run-7",
        2,
    )
    .await;
    let [report] = reports.as_slice() else {
        panic!("{reports:#?}")
    };
    assert!(report.error.is_none(), "{report:#?}");
    assert_eq!(report.account.as_str(), member);
    assert_eq!(report.principals_scanned, 2);
    assert_eq!(report.cutoffs_moved, 1);
    assert_eq!(report.statements_removed, 1);
    assert_eq!(report.policies_deleted, 1);
    let moved = outcome(report, &role).unwrap();
    assert_eq!(moved.target.as_ref().unwrap().account.as_str(), member);
    assert_eq!(moved.cutoff, Some(rolling_cutoff(age("4h"), now())));

    let assumes = proxy.requests_for("AssumeRole");
    assert_eq!(assumes.len(), 1);
    assert_eq!(
        assumes[0].param("RoleArn"),
        Some(format!("arn:aws:iam::{member}:role/{MEMBER_ROLE}").as_str())
    );
    assert_eq!(assumes[0].param("ExternalId"), Some(EXTERNAL_ID));
    assert_eq!(
        assumes[0].param("RoleSessionName"),
        Some("cutoff-sweep-run-7")
    );
    // AssumeRole, one page, three calls for the moved cutoff, two for the deletion.
    assert_eq!(report.api_calls, 1 + 1 + 3 + 2);
    assert_eq!(report.api_calls as usize, proxy.requests().len());

    assert_eq!(
        role_policy(&member_iam, &role, ROLE_WIDE_POLICY_NAME)
            .await
            .and_then(|d| d.role_wide_cutoff()),
        Some(rolling_cutoff(age("4h"), now())),
        "written in the member account"
    );
    assert_eq!(
        role_policy_text(&member_iam, &expired_role, ROLE_WIDE_POLICY_NAME).await,
        None
    );
    assert_eq!(
        role_policy_text(&home_iam, &role, ROLE_WIDE_POLICY_NAME).await,
        None,
        "not in cutoff's own account"
    );
}

#[tokio::test]
async fn the_rolling_cutoff_denies_a_session_issued_5h_ago_and_allows_one_issued_1h_ago() {
    let env = env().await;
    let role = unique("payments-api");
    create_role(&env.iam, &role, &[(MAX_SESSION_AGE_TAG, "4h")]).await;
    let report = sweep(&env, &config(), now()).await;
    assert_eq!(report.cutoffs_moved, 1);
    let stored = role_policy_text(&env.iam, &role, ROLE_WIDE_POLICY_NAME)
        .await
        .unwrap();
    let cutoff = PolicyDocument::parse(&stored)
        .unwrap()
        .role_wide_cutoff()
        .unwrap();
    assert_eq!(cutoff, rolling_cutoff(age("4h"), now()));

    // The document exactly as IAM stores it (decoded), beside an allow-all policy.
    let stored_json: Value =
        serde_json::from_str(&PolicyDocument::parse(&stored).unwrap().to_json()).unwrap();
    let principal = format!("arn:aws:iam::{}:role/{role}", env.account);
    let issued = |at: DateTime<Utc>| {
        EvalRequest::new(
            "s3:GetObject",
            "arn:aws:s3:::payments-exports/report.csv",
            &principal,
        )
        .policy(serde_json::from_str::<Value>(ALLOW_ALL).unwrap())
        .policy(stored_json.clone())
        .context(
            "aws:TokenIssueTime",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
    };
    let cases = [
        (now() - hours(5), Decision::ExplicitlyDenied),
        (now() - hours(1), Decision::Allowed),
        // At the edge: a second before the cutoff is denied, the cutoff itself is not
        // "less than" and is allowed.
        (
            cutoff.as_datetime() - chrono::Duration::seconds(1),
            Decision::ExplicitlyDenied,
        ),
        (cutoff.as_datetime(), Decision::Allowed),
    ];
    let requests: Vec<EvalRequest> = cases.iter().map(|(at, _)| issued(*at)).collect();
    let results = evaluate_all(&requests);
    for ((at, want), result) in cases.iter().zip(&results) {
        assert_eq!(
            result.decision, *want,
            "issued {at}: {:#}",
            result.explanation
        );
    }
    assert!(results[0].denied_by("RevokeOlderSessions"));
}

// ---------------------------------------------------------------------------------------
// Scale
// ---------------------------------------------------------------------------------------

/// Counts the HTTP requests the SDK sends, per `Action`, and the largest response body:
/// independent of the sweeper's own `api_calls`, and without buffering anything.
#[derive(Debug, Clone, Default)]
struct HttpCalls {
    actions: Arc<Mutex<BTreeMap<String, u64>>>,
    largest_response: Arc<AtomicU64>,
}

impl HttpCalls {
    fn total(&self) -> u64 {
        self.actions.lock().unwrap().values().sum()
    }

    fn by_action(&self) -> BTreeMap<String, u64> {
        self.actions.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.actions.lock().unwrap().clear();
    }
}

impl Intercept for HttpCalls {
    fn name(&self) -> &'static str {
        "HttpCalls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The query protocol: a form body `Action=…&Version=…&…`.
        let body = context.request().body().bytes().unwrap_or_default();
        let action = std::str::from_utf8(body)
            .unwrap_or_default()
            .split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .unwrap_or("-")
            .to_owned();
        *self.actions.lock().unwrap().entry(action).or_insert(0) += 1;
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(body) = context.response().body().bytes() {
            self.largest_response
                .fetch_max(body.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

const ROLES: usize = 10_000;
const OPTED_IN: usize = 500;
const EXPIRED: usize = 300;
const IN_FLIGHT: usize = 32;

/// Role `i` of the scale test: every 20th (0, 20, …) opts in, every 20th plus one
/// (1, 21, …, 5981) has only an expired revocation.
fn scale_role(i: usize) -> (String, bool, bool) {
    let opted_in = i.is_multiple_of(20) && i / 20 < OPTED_IN;
    let expired = i % 20 == 1 && i / 20 < EXPIRED;
    (format!("svc-{i:05}"), opted_in, expired)
}

/// Creates role `i` of the scale test (and its expired revocation), retrying moto's
/// races; the number of retries.
async fn seed_one(iam: &aws_sdk_iam::Client, i: usize, expired_doc: &str) -> u64 {
    let (name, opted_in, expired) = scale_role(i);
    let mut tags = vec![("cutoff:owner", "fleet")];
    if opted_in {
        tags.push((MAX_SESSION_AGE_TAG, "2h"));
    }
    let mut retries = seed::create_role(iam, &name, &tags)
        .await
        .unwrap_or_else(|e| panic!("CreateRole {name}: {e:?}"));
    if expired {
        retries += seed::put_role_policy(iam, &name, ROLE_WIDE_POLICY_NAME, expired_doc)
            .await
            .unwrap_or_else(|e| panic!("PutRolePolicy {name}: {e:?}"));
    }
    retries
}

/// Creates the 10,000 roles with real IAM calls (10,300 requests), `IN_FLIGHT` at a
/// time; the number of calls moto failed with a 500 and that were retried. moto is one
/// single-threaded Python process doing some 200 requests a second, so this takes about
/// 50 s however many are in flight (8 and 48 measured the same); the concurrency only
/// keeps moto from waiting on the client.
async fn seed(iam: &aws_sdk_iam::Client, expired_doc: &str) -> u64 {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (iam, next, expired_doc) = (iam.clone(), Arc::clone(&next), expired_doc.to_owned());
        workers.spawn(async move {
            let mut retries = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ROLES {
                    break retries;
                }
                retries += seed_one(&iam, i, &expired_doc).await;
            }
        });
    }
    let mut retries = 0;
    while let Some(done) = workers.join_next().await {
        retries += done.unwrap();
    }
    retries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeping_ten_thousand_roles_costs_pages_plus_changes() {
    let started = Instant::now();
    let moto = MotoServer::start();
    let boot = started.elapsed();
    let seed_config = sdk_config(moto.endpoint()).await;
    let iam = aws_sdk_iam::Client::new(&seed_config);
    let expired = ago(hours(20));
    let seeding = Instant::now();
    let seed_retries = seed(&iam, &doc(vec![ours(expired)])).await;
    let seeded = seeding.elapsed();

    // The sweeper's clients, counting every HTTP request they send.
    let http = HttpCalls::default();
    let iam_config = aws_sdk_iam::config::Builder::from(&seed_config)
        .interceptor(http.clone())
        .build();
    let access = SdkAccountAccess::from_clients(
        aws_sdk_sts::Client::new(&seed_config),
        iam_config,
        Account::parse(DEFAULT_ACCOUNT).unwrap(),
        Partition::Aws,
        PrincipalName::parse(MEMBER_ROLE).unwrap(),
        None,
    )
    .with_retry_policy(fast_retry());
    let home = [Account::parse(DEFAULT_ACCOUNT).unwrap()];

    let sweeping = Instant::now();
    let mut reports = sweep_accounts(
        &access,
        &NoLedger,
        &home,
        &config(),
        &FixedClock::at(now()),
        "scale",
        1,
    )
    .await;
    let swept = sweeping.elapsed();
    let report = reports.remove(0);
    let calls_by_action = http.by_action();
    let http_total = http.total();

    http.clear();
    let again_started = Instant::now();
    let again = sweep_accounts(
        &access,
        &NoLedger,
        &home,
        &config(),
        &FixedClock::at(now()),
        "scale-2",
        1,
    )
    .await
    .remove(0);
    let again_took = again_started.elapsed();

    let response = http.largest_response.load(Ordering::Relaxed);
    eprintln!(
        "scale: moto start {boot:.1?}; seeding {ROLES} roles ({OPTED_IN} opted in, {EXPIRED} \
         expired) {seeded:.1?} ({IN_FLIGHT} in flight, {seed_retries} moto 500s retried); sweep {swept:.1?} ({} ms reported), \
         {} api_calls, {http_total} HTTP requests {calls_by_action:?}; second sweep \
         {again_took:.1?}, {} api_calls; listing response {:.1} MiB; whole test {:.1?}",
        report.duration_ms,
        report.api_calls,
        again.api_calls,
        response as f64 / 1_048_576.0,
        started.elapsed(),
    );

    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.principals_failed, 0, "{:#?}", report.outcomes);
    assert!(report.principals_scanned >= ROLES as u64);
    assert_eq!(report.principals_scanned, ROLES as u64, "a fresh server");
    assert_eq!(report.cutoffs_moved, OPTED_IN as u64);
    assert_eq!(report.statements_removed, EXPIRED as u64);
    assert_eq!(report.policies_deleted, EXPIRED as u64);
    assert_eq!(report.outcomes.len(), OPTED_IN + EXPIRED);
    assert!(report.notes.is_empty(), "{:?}", report.notes);

    // The cost: the listing's pages (moto never pages: one; no STS call for the home
    // account), then per opted-in role a fresh read of AWSRevokeOlderSessions, the put
    // and one read-back; per expired policy a fresh read and the delete. Nothing for the
    // 9,200 roles with nothing to change.
    let pages = 1;
    let expected = pages + OPTED_IN as u64 * 3 + EXPIRED as u64 * 2;
    assert_eq!(report.api_calls, expected);
    assert_eq!(http_total, expected, "{calls_by_action:?}");
    assert_eq!(
        calls_by_action,
        BTreeMap::from([
            ("GetAccountAuthorizationDetails".to_owned(), pages),
            (
                "GetRolePolicy".to_owned(),
                OPTED_IN as u64 * 2 + EXPIRED as u64
            ),
            ("PutRolePolicy".to_owned(), OPTED_IN as u64),
            ("DeleteRolePolicy".to_owned(), EXPIRED as u64),
        ])
    );
    // Nothing left to change: the listing only.
    assert!(again.error.is_none(), "{:?}", again.error);
    assert_eq!(again.api_calls, pages);
    assert_eq!(http.total(), pages);
    assert!(again.outcomes.is_empty());

    // Spot checks of what IAM holds now.
    let rolling = rolling_cutoff(age("2h"), now());
    for i in [0, 20, (OPTED_IN - 1) * 20] {
        let (name, opted_in, _) = scale_role(i);
        assert!(opted_in);
        assert_eq!(
            role_policy(&iam, &name, ROLE_WIDE_POLICY_NAME)
                .await
                .and_then(|d| d.role_wide_cutoff()),
            Some(rolling),
            "{name}"
        );
    }
    for i in [1, 21, (EXPIRED - 1) * 20 + 1, 2] {
        let (name, ..) = scale_role(i);
        assert_eq!(
            role_policy_text(&iam, &name, ROLE_WIDE_POLICY_NAME).await,
            None,
            "{name}"
        );
    }

    // Memory is not asserted here: this process runs the other integration tests
    // beside this one, so its peak resident set is not this sweep's. `make bench`
    // measures it where it is: the sweeper Lambda's own process sweeping 10,000 roles
    // (bench/results.md, "peak RSS of the sweeper").
}
