//! The local function URL (`cutoff_tests::function_url`) refuses what AWS refuses
//! before the function runs, so that the operator-path tests
//! (`cli/tests/integration/operator_cli.rs`) mean something: every request here is signed
//! by botocore (not by cutoff's signer), all but the last one wrongly in one way, and none
//! of the wrong ones reaches the revoker.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cutoff_tests::aws::ACCOUNT;
use cutoff_tests::function_url::{FunctionUrl, Identity, SigningScope, botocore_sign};
use cutoff_tests::moto::MotoServer;
use cutoff_tests::runtime::revoker_on_moto;
use serde_json::json;

fn alice() -> Identity {
    Identity::role_session(ACCOUNT, "CutoffBreakGlassOperator", "alice", "ALICE1")
}

fn function_url() -> FunctionUrl {
    let revoker = revoker_on_moto(MotoServer::shared().endpoint(), &[]);
    FunctionUrl::start(
        revoker,
        vec![alice()],
        &["arn:aws:iam::123456789012:role/CutoffBreakGlassOperator"],
    )
}

type Headers = Vec<(String, String)>;

fn minutes_from_now(minutes: i64) -> Option<String> {
    Some(
        (chrono::Utc::now() + chrono::Duration::minutes(minutes))
            .format("%Y%m%dT%H%M%SZ")
            .to_string(),
    )
}

#[test]
fn the_front_end_refuses_what_aws_refuses_before_the_function_runs() {
    let url = function_url();
    // A status request: it writes nothing, so only the invocation count tells.
    let body =
        json!({"action": "status", "account": ACCOUNT, "role": "nobody-in-particular"}).to_string();
    let base = vec![
        ("host".to_owned(), url.host().to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
    ];
    let signed = |identity: &Identity, scope: SigningScope| {
        let mut headers = base.clone();
        headers.extend(botocore_sign(
            identity,
            &scope,
            "POST",
            &url.url(),
            &base,
            &body,
        ));
        headers
    };
    let scope = SigningScope::default;
    let without = |headers: Headers, name: &str| -> Headers {
        headers
            .into_iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case(name))
            .collect()
    };
    let replaced = |headers: Headers, name: &str, value: &str| {
        let mut headers = without(headers, name);
        headers.push((name.to_owned(), value.to_owned()));
        headers
    };
    let stranger = Identity::user(ACCOUNT, "eve", "EVE1");
    let other_token = Identity {
        session_token: Some("FwoGZXIvYXdzE-another-token".to_owned()),
        ..alice()
    };
    let no_token = Identity {
        session_token: None,
        ..alice()
    };
    // What is wrong, the request's headers and body, and the refusal's reason.
    let cases: Vec<(&str, Headers, String, &str)> = vec![
        ("unsigned", base.clone(), body.clone(), "Authorization"),
        (
            "an unknown access key",
            signed(&stranger, scope()),
            body.clone(),
            "unknown access key",
        ),
        (
            "the wrong secret",
            signed(&alice().with_secret("guess"), scope()),
            body.clone(),
            "signature",
        ),
        (
            "another region",
            signed(
                &alice(),
                SigningScope {
                    region: "eu-west-1".into(),
                    ..scope()
                },
            ),
            body.clone(),
            "region",
        ),
        (
            "another service",
            signed(
                &alice(),
                SigningScope {
                    service: "execute-api".into(),
                    ..scope()
                },
            ),
            body.clone(),
            "service",
        ),
        (
            "signed ten minutes ago",
            signed(
                &alice(),
                SigningScope {
                    time: minutes_from_now(-10),
                    ..scope()
                },
            ),
            body.clone(),
            "more than 5 minutes ago",
        ),
        (
            "signed ten minutes ahead",
            signed(
                &alice(),
                SigningScope {
                    time: minutes_from_now(10),
                    ..scope()
                },
            ),
            body.clone(),
            "more than 5 minutes ahead",
        ),
        (
            "another session's token, signed",
            signed(&other_token, scope()),
            body.clone(),
            "session token",
        ),
        (
            "another session's token, swapped in after signing",
            replaced(
                signed(&alice(), scope()),
                "X-Amz-Security-Token",
                "FwoGZXIvYXdzE-another-token",
            ),
            body.clone(),
            "session token",
        ),
        (
            "temporary credentials without their token",
            signed(&no_token, scope()),
            body.clone(),
            "session token",
        ),
        (
            "a body changed after signing",
            signed(&alice(), scope()),
            body.replace("status", "revoke"),
            "signature",
        ),
        (
            "a header changed after signing",
            replaced(signed(&alice(), scope()), "content-type", "text/plain"),
            body.clone(),
            "signature",
        ),
    ];
    for (what, headers, sent, why) in &cases {
        let answer = url.send("POST", "/", headers, sent);
        assert_eq!(answer.status, 403, "{what}: {}", answer.body);
        assert!(
            answer.json()["Message"].is_string(),
            "{what}: {}",
            answer.body
        );
        let handled = url.handled();
        let last = handled.last().unwrap();
        assert!(
            last.refused.as_deref().is_some_and(|r| r.contains(why)),
            "{what}: refused for {:?}, expected {why}",
            last.refused
        );
    }
    assert_eq!(url.lambda().invocations(), 0, "none reached the revoker");

    // Signed right: through to the revoker, with the verified caller.
    let answer = url.send("POST", "/", &signed(&alice(), scope()), &body);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(url.lambda().invocations(), 1);
    assert_eq!(
        url.handled().last().unwrap().caller.as_deref(),
        Some(alice().arn.as_str())
    );
}
