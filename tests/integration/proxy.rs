//! The fault-injecting proxy: transparent when told to be, and failing exactly as told.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use cutoff_tests::aws::{iam_client, sdk_config_loader, sts_client};
use cutoff_tests::moto::MotoServer;
use cutoff_tests::proxy::{Fault, FaultPlan, FaultProxy};

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
const DENY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"RevokeOlderSessions","Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-23T12:00:00Z"}}}]}"#;

async fn create_role(iam: &aws_sdk_iam::Client, name: &str) {
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn forwards_transparently_to_moto() {
    let moto = MotoServer::start();
    let proxy = FaultProxy::start(moto.endpoint(), FaultPlan::passthrough());
    let through_proxy = iam_client(proxy.endpoint()).await;
    let direct = iam_client(moto.endpoint()).await;

    create_role(&through_proxy, "payments-api").await;
    through_proxy
        .put_role_policy()
        .role_name("payments-api")
        .policy_name("AWSRevokeOlderSessions")
        .policy_document(DENY)
        .send()
        .await
        .unwrap();

    // Read back from moto itself: the proxy really forwarded.
    let role = direct
        .get_role()
        .role_name("payments-api")
        .send()
        .await
        .unwrap();
    assert_eq!(
        role.role().unwrap().arn(),
        "arn:aws:iam::123456789012:role/payments-api"
    );
    let policy = direct
        .get_role_policy()
        .role_name("payments-api")
        .policy_name("AWSRevokeOlderSessions")
        .send()
        .await
        .unwrap();
    let stored: serde_json::Value =
        serde_json::from_str(&percent_decode(policy.policy_document())).unwrap();
    assert_eq!(
        stored,
        serde_json::from_str::<serde_json::Value>(DENY).unwrap()
    );

    // Recorded, with the query-protocol parameters decoded.
    assert_eq!(proxy.actions(), ["CreateRole", "PutRolePolicy"]);
    let put = &proxy.requests_for("PutRolePolicy")[0];
    assert_eq!(put.method, "POST");
    assert_eq!(put.path, "/");
    assert_eq!(put.param("RoleName"), Some("payments-api"));
    assert_eq!(put.param("PolicyName"), Some("AWSRevokeOlderSessions"));
    assert_eq!(put.param("PolicyDocument"), Some(DENY));
    assert_eq!(put.fault, Fault::Pass);
    assert_eq!(put.status, Some(200));
    assert_eq!(proxy.faults_injected(), 0);
}

/// IAM returns policy documents URL-encoded.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[tokio::test]
async fn records_sts_parameters() {
    let moto = MotoServer::start();
    let proxy = FaultProxy::start(moto.endpoint(), FaultPlan::passthrough());
    create_role(&iam_client(proxy.endpoint()).await, "cutoff-member").await;
    let sts = sts_client(proxy.endpoint()).await;
    let assumed = sts
        .assume_role()
        .role_arn("arn:aws:iam::123456789012:role/cutoff-member")
        .role_session_name("cutoff")
        .external_id("ext-1234")
        .send()
        .await
        .unwrap();
    let key = assumed.credentials().unwrap().access_key_id();
    assert!(key.starts_with("ASIA"), "{key}");

    let assume = &proxy.requests_for("AssumeRole")[0];
    assert_eq!(
        assume.param("RoleArn"),
        Some("arn:aws:iam::123456789012:role/cutoff-member")
    );
    assert_eq!(assume.param("RoleSessionName"), Some("cutoff"));
    assert_eq!(assume.param("ExternalId"), Some("ext-1234"));
    assert_eq!(proxy.count("AssumeRole"), 1);
    assert_eq!(proxy.count("CreateRole"), 1);
}

#[tokio::test]
async fn scripted_throttling_reaches_the_client_and_is_recorded() {
    let moto = MotoServer::start();
    let proxy = FaultProxy::start(
        moto.endpoint(),
        FaultPlan::passthrough().then_for("PutRolePolicy", Fault::Throttle),
    );
    let iam = iam_client(proxy.endpoint()).await;
    // Not a PutRolePolicy: passes by the scripted fault.
    create_role(&iam, "payments-api").await;

    let put = || {
        iam.put_role_policy()
            .role_name("payments-api")
            .policy_name("AWSRevokeOlderSessions")
            .policy_document(DENY)
            .send()
    };
    let err = put().await.expect_err("throttled");
    let service = err
        .as_service_error()
        .expect("a service error, not a transport one");
    assert_eq!(service.code(), Some("Throttling"));
    assert_eq!(service.message(), Some("Rate exceeded"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);
    assert_eq!(proxy.scripted_remaining(), 0);

    // The script is used up: the same call now goes through.
    put().await.unwrap();

    let puts = proxy.requests_for("PutRolePolicy");
    assert_eq!(puts.len(), 2);
    assert_eq!(puts[0].fault, Fault::Throttle);
    assert_eq!(puts[0].status, Some(400));
    assert_eq!(puts[1].fault, Fault::Pass);
    assert_eq!(puts[1].status, Some(200));
    assert_eq!(proxy.count("PutRolePolicy"), 2);
    assert_eq!(proxy.faults_injected(), 1);
    // Only the forwarded one reached moto.
    let direct = iam_client(moto.endpoint()).await;
    let listed = direct
        .list_role_policies()
        .role_name("payments-api")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.policy_names(), ["AWSRevokeOlderSessions"]);
}

#[tokio::test]
async fn the_sdk_classifies_injected_throttling_as_retryable() {
    let moto = MotoServer::start();
    let proxy = FaultProxy::start(moto.endpoint(), FaultPlan::passthrough());
    create_role(&iam_client(proxy.endpoint()).await, "payments-api").await;
    proxy.set_plan(FaultPlan::passthrough().then_n_for(2, "GetRole", Fault::Throttle));

    // This client retries (the others do not): two throttles, then success.
    let config = sdk_config_loader(proxy.endpoint())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(5)),
        )
        .load()
        .await;
    let retrying = aws_sdk_iam::Client::new(&config);
    retrying
        .get_role()
        .role_name("payments-api")
        .send()
        .await
        .unwrap();
    let gets = proxy.requests_for("GetRole");
    let faults: Vec<&Fault> = gets.iter().map(|r| &r.fault).collect();
    assert_eq!(faults, [&Fault::Throttle, &Fault::Throttle, &Fault::Pass]);
}

#[tokio::test]
async fn server_errors_and_permanent_errors_have_their_codes() {
    let moto = MotoServer::start();
    let proxy = FaultProxy::start(
        moto.endpoint(),
        FaultPlan::passthrough()
            .then(Fault::InternalError)
            .then(Fault::Unavailable)
            .then(Fault::access_denied())
            .then(Fault::limit_exceeded())
            .then(Fault::error(400, "MalformedPolicyDocument", "bad")),
    );
    let iam = iam_client(proxy.endpoint()).await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let err = iam
            .get_role()
            .role_name("anything")
            .send()
            .await
            .expect_err("scripted to fail");
        let status = err.raw_response().unwrap().status().as_u16();
        let code = err.as_service_error().unwrap().code().unwrap().to_owned();
        seen.push((status, code));
    }
    let expected = [
        (500, "ServiceFailure"),
        (503, "ServiceUnavailable"),
        (403, "AccessDenied"),
        (409, "LimitExceeded"),
        (400, "MalformedPolicyDocument"),
    ];
    let seen: Vec<(u16, &str)> = seen.iter().map(|(s, c)| (*s, c.as_str())).collect();
    assert_eq!(seen, expected);
    let recorded: Vec<Option<u16>> = proxy.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        recorded,
        [Some(500), Some(503), Some(403), Some(409), Some(400)]
    );
}

#[tokio::test]
async fn a_dropped_connection_is_a_dispatch_or_response_error() {
    let moto = MotoServer::start();
    let proxy = FaultProxy::start(
        moto.endpoint(),
        FaultPlan::passthrough().then(Fault::Disconnect),
    );
    let iam = iam_client(proxy.endpoint()).await;

    let err = iam
        .list_roles()
        .send()
        .await
        .expect_err("the connection was dropped");
    assert!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "{err:?}"
    );
    assert!(err.as_service_error().is_none());
    let dropped = &proxy.requests()[0];
    assert_eq!(dropped.action.as_deref(), Some("ListRoles"));
    assert_eq!(dropped.fault, Fault::Disconnect);
    assert_eq!(dropped.status, None);

    // The client recovers on a new connection.
    iam.list_roles().send().await.unwrap();
    assert_eq!(proxy.requests()[1].status, Some(200));
}

#[tokio::test]
async fn a_slow_answer_is_delayed_then_forwarded() {
    let moto = MotoServer::start();
    let delay = Duration::from_millis(300);
    let proxy = FaultProxy::start(
        moto.endpoint(),
        FaultPlan::passthrough().then(Fault::Slow(delay)),
    );
    let iam = iam_client(proxy.endpoint()).await;

    let started = Instant::now();
    iam.list_roles().send().await.unwrap();
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    assert_eq!(proxy.requests()[0].fault, Fault::Slow(delay));
    assert_eq!(proxy.requests()[0].status, Some(200));

    // A client with a shorter timeout gives up.
    proxy.set_plan(FaultPlan::passthrough().then(Fault::Slow(delay)));
    let config = sdk_config_loader(proxy.endpoint())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(100))
                .build(),
        )
        .load()
        .await;
    let impatient = aws_sdk_iam::Client::new(&config);
    let err = impatient.list_roles().send().await.expect_err("timed out");
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
}

#[tokio::test]
async fn a_random_rate_matches_over_200_requests_and_is_reproducible() {
    let moto = MotoServer::start();
    let faults = [Fault::Throttle, Fault::InternalError, Fault::Unavailable];
    let plan = FaultPlan::passthrough()
        .random(42, 0.25, &faults)
        .random_only_for(&["ListRoles"]);

    let mut runs = Vec::new();
    for _ in 0..2 {
        let proxy = FaultProxy::start(moto.endpoint(), plan.clone());
        let iam = iam_client(proxy.endpoint()).await;
        let mut failed_codes = Vec::new();
        for _ in 0..200 {
            if let Err(err) = iam.list_roles().send().await {
                failed_codes.push(err.as_service_error().unwrap().code().unwrap().to_owned());
            }
        }
        // Not ListRoles: never faulted by this plan.
        for _ in 0..20 {
            iam.get_account_summary().send().await.unwrap();
        }
        let records = proxy.requests();
        let injected: Vec<Fault> = records
            .iter()
            .filter(|r| r.faulted())
            .map(|r| r.fault.clone())
            .collect();
        // What the client saw is what the proxy says it did.
        assert_eq!(failed_codes.len(), injected.len());
        for (code, fault) in failed_codes.iter().zip(&injected) {
            let expected = match fault {
                Fault::Throttle => "Throttling",
                Fault::InternalError => "ServiceFailure",
                Fault::Unavailable => "ServiceUnavailable",
                other => panic!("not in the plan: {other:?}"),
            };
            assert_eq!(code, expected);
        }
        // 25% of 200 is 50; a fair binomial is within 50 ± 18 (3 σ) nearly always, and
        // the seed makes it deterministic anyway.
        assert!(
            (32..=68).contains(&injected.len()),
            "{} faults in 200 requests",
            injected.len()
        );
        for kind in &faults {
            assert!(injected.contains(kind), "{kind:?} never drawn");
        }
        assert_eq!(proxy.count("ListRoles"), 200);
        assert_eq!(proxy.count("GetAccountSummary"), 20);
        runs.push(injected);
    }
    assert_eq!(runs[0], runs[1], "the same seed draws the same faults");
}
