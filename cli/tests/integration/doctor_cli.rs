//! `cutoff doctor` as an operator runs it: the real binary, pointed at moto through
//! `AWS_ENDPOINT_URL`, against a stack created in moto's CloudFormation with the
//! queues, topic and outputs of infra/template.yaml (the Lambdas are only ARNs in the
//! outputs: the doctor reads them, it never calls them).
//!
//! moto has no Lambda function URL: the self-check goes to a canned stand-in on
//! 127.0.0.1 that records the signed request and answers as the revoker would. The
//! judging of every self-check answer is unit tested in cli/src/doctor.rs.
//!
//! moto confirms every SNS subscription at once (even e-mail), so a subscription
//! "PendingConfirmation" cannot be made here: a topic without any subscription stands
//! for "nobody confirmed", and the pending case is tested through `topic_check`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::{self, JoinHandle};

use cutoff_tests::aws::{ACCOUNT, REGION, sdk_config};
use cutoff_tests::moto::MotoServer;
use serde_json::{Value, json};

const OTHER_REGION: &str = "eu-west-1";

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn cutoff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutoff"))
        .args(args)
        .env("AWS_ENDPOINT_URL", MotoServer::shared().endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        panic!("{e}: stdout {} stderr {stderr}", stdout(out))
    })
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    let checks = report["checks"].as_array().unwrap();
    let found = checks.iter().find(|c| c["name"] == name);
    found.unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

/// A deployment in moto: the stack `<prefix>-stack` (queues, topic, the outputs of
/// infra/template.yaml), the GuardDuty rule feeding intake, an e-mail subscriber, and
/// the forwarder's rule and dead-letter queue in OTHER_REGION.
struct Deployment {
    prefix: String,
    stack: String,
    sdk: aws_config::SdkConfig,
}

impl Deployment {
    async fn new(operator_url: &str, subscribe: bool) -> Deployment {
        let prefix = unique("doc");
        let sdk = sdk_config(MotoServer::shared().endpoint()).await;
        let arn = |service: &str, resource: &str| {
            format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}")
        };
        let queue = |name: String, fifo: bool| {
            let properties = if fifo {
                json!({"QueueName": name, "FifoQueue": true})
            } else {
                json!({"QueueName": name})
            };
            json!({"Type": "AWS::SQS::Queue", "Properties": properties})
        };
        let template = json!({
            "Resources": {
                "RequestQueue": queue(format!("{prefix}-requests.fifo"), true),
                "RequestDeadLetterQueue": queue(format!("{prefix}-requests-dlq.fifo"), true),
                "FailureQueue": queue(format!("{prefix}-failures"), false),
                "SweepDeadLetterQueue": queue(format!("{prefix}-sweep-tasks-dlq"), false),
                "SecurityTopic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": format!("{prefix}-security")}},
            },
            "Outputs": {
                "NamePrefix": {"Value": prefix},
                "IntakeFunctionArn": {"Value": arn("lambda", &format!("function:{prefix}-intake"))},
                "RevokerFunctionArn": {"Value": arn("lambda", &format!("function:{prefix}-revoker"))},
                "OperatorUrl": {"Value": operator_url},
                "RequestQueueUrl": {"Value": {"Ref": "RequestQueue"}},
                "RequestDeadLetterQueueUrl": {"Value": {"Ref": "RequestDeadLetterQueue"}},
                "FailureQueueUrl": {"Value": {"Ref": "FailureQueue"}},
                "SweepDeadLetterQueueUrl": {"Value": {"Ref": "SweepDeadLetterQueue"}},
                "SecurityTopicArn": {"Value": {"Ref": "SecurityTopic"}},
            },
        });
        let stack = format!("{prefix}-stack");
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        cfn.create_stack()
            .stack_name(&stack)
            .template_body(template.to_string())
            .send()
            .await
            .unwrap();

        let events = aws_sdk_eventbridge::Client::new(&sdk);
        let guardduty = format!("{prefix}-guardduty-findings");
        rule(
            &events,
            &guardduty,
            &arn("lambda", &format!("function:{prefix}-intake")),
        )
        .await;
        if subscribe {
            let sns = aws_sdk_sns::Client::new(&sdk);
            let topic = arn("sns", &format!("{prefix}-security"));
            let email = sns.subscribe().topic_arn(topic).protocol("email");
            email.endpoint("security@example.com").send().await.unwrap();
        }

        // The forwarder (infra/forwarder.yaml) in another region.
        let regional = sdk
            .to_builder()
            .region(aws_config::Region::new(OTHER_REGION))
            .build();
        let events = aws_sdk_eventbridge::Client::new(&regional);
        rule(
            &events,
            &format!("{prefix}-forward-guardduty"),
            &arn("events", "event-bus/default"),
        )
        .await;
        let sqs = aws_sdk_sqs::Client::new(&regional);
        sqs.create_queue()
            .queue_name(format!("{prefix}-forwarder-dlq"))
            .send()
            .await
            .unwrap();
        Deployment { prefix, stack, sdk }
    }

    async fn send_to(&self, queue: &str) {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let url = sqs.get_queue_url().queue_name(queue).send().await.unwrap();
        let send = sqs
            .send_message()
            .queue_url(url.queue_url().unwrap())
            .message_body("{}");
        send.message_group_id("g")
            .message_deduplication_id(unique("d"))
            .send()
            .await
            .unwrap();
    }
}

async fn rule(events: &aws_sdk_eventbridge::Client, name: &str, target: &str) {
    let pattern = r#"{"source":["aws.guardduty"],"detail-type":["GuardDuty Finding"]}"#;
    events
        .put_rule()
        .name(name)
        .event_pattern(pattern)
        .send()
        .await
        .unwrap();
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("t")
        .arn(target)
        .build()
        .unwrap();
    events
        .put_targets()
        .rule(name)
        .targets(target)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_healthy_deployment_passes_every_check() {
    let d = Deployment::new("https://abc.lambda-url.us-east-1.on.aws/", true).await;
    let args = [
        "doctor",
        "--stack",
        &d.stack,
        "--regions",
        "eu-west-1,us-east-1",
        "--no-self-check",
    ];
    let out = cutoff(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("PASS  stack {}: CREATE_COMPLETE\n", d.stack)),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "PASS  rule {}-forward-guardduty (eu-west-1)",
            d.prefix
        )),
        "{text}"
    );
    assert!(text.ends_with(" passed, 0 warnings, 0 failed\n"), "{text}");

    let report = report(&cutoff(&[&args[..], &["--json"]].concat()));
    assert_eq!(report["passed"], true, "{report:#}");
    let checks = report["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .all(|c| c["status"] == "pass" && c["fix"].is_null()),
        "{report:#}"
    );
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    let p = &d.prefix;
    let expected = [
        format!("stack {}", d.stack),
        "stack outputs".to_owned(),
        format!("rule {p}-guardduty-findings (us-east-1)"),
        format!("rule {p}-forward-guardduty (eu-west-1)"),
        format!("queue {p}-forwarder-dlq (eu-west-1)"),
        format!("queue {p}-requests.fifo (us-east-1)"),
        format!("queue {p}-requests-dlq.fifo (us-east-1)"),
        format!("queue {p}-failures (us-east-1)"),
        format!("queue {p}-sweep-tasks-dlq (us-east-1)"),
        format!("topic {p}-security"),
    ];
    assert_eq!(names, expected);
}

#[tokio::test]
async fn a_failed_request_in_the_dead_letter_queue_fails_with_the_redrive_fix() {
    let d = Deployment::new("https://abc.lambda-url.us-east-1.on.aws/", true).await;
    d.send_to(&format!("{}-requests-dlq.fifo", d.prefix)).await;
    d.send_to(&format!("{}-requests.fifo", d.prefix)).await;
    let out = cutoff(&["doctor", "--stack", &d.stack, "--no-self-check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    let failed = format!(
        "FAIL  queue {}-requests-dlq.fifo (us-east-1): 1 message: ",
        d.prefix
    );
    let at = text.find(&failed).unwrap_or_else(|| panic!("{text}"));
    let fix = text[at..].lines().nth(1).unwrap();
    assert!(
        fix.starts_with("      fix: ") && fix.contains("Redrive failed requests"),
        "{text}"
    );
    // A request waiting is only a warning.
    let waiting = format!(
        "WARN  queue {}-requests.fifo (us-east-1): 1 message waiting",
        d.prefix
    );
    assert!(text.contains(&waiting), "{text}");
    assert!(text.ends_with(" passed, 1 warnings, 1 failed\n"), "{text}");
}

#[tokio::test]
async fn a_topic_nobody_confirmed_and_a_missing_forwarder_fail() {
    let d = Deployment::new("https://abc.lambda-url.us-east-1.on.aws/", false).await;
    let args = [
        "doctor",
        "--stack",
        &d.stack,
        "--regions",
        "eu-west-1,eu-central-1",
        "--no-self-check",
        "--json",
    ];
    let out = cutoff(&args);
    assert_eq!(out.status.code(), Some(1));
    let report = report(&out);
    assert_eq!(report["passed"], false);
    let topic = check(&report, &format!("topic {}-security", d.prefix));
    assert_eq!(topic["status"], "fail", "{topic:#}");
    assert!(
        topic["fix"]
            .as_str()
            .unwrap()
            .contains("confirm the subscription e-mail"),
        "{topic:#}"
    );
    let forwarder = check(
        &report,
        &format!("rule {}-forward-guardduty (eu-central-1)", d.prefix),
    );
    assert_eq!(forwarder["status"], "fail");
    assert!(
        forwarder["fix"]
            .as_str()
            .unwrap()
            .contains("infra/forwarder.yaml in eu-central-1")
    );
    assert_eq!(
        check(
            &report,
            &format!("rule {}-forward-guardduty (eu-west-1)", d.prefix)
        )["status"],
        "pass"
    );
}

#[test]
fn a_missing_stack_fails_clearly_and_bad_arguments_exit_two() {
    let out = cutoff(&["doctor", "--stack", "no-such-stack", "--no-self-check"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.starts_with("FAIL  stack no-such-stack: does not exist in us-east-1"),
        "{text}"
    );
    assert!(
        text.contains("      fix: deploy infra/template.yaml"),
        "{text}"
    );
    assert!(text.ends_with("0 passed, 0 warnings, 1 failed\n"), "{text}");

    for bad in [
        &["--accounts", "12345"][..],
        &["--regions", "mars-1"],
        &["--stack", "a b"],
        &["--url", "http://example.com/"],
    ] {
        let out = cutoff(&[&["doctor"], bad].concat());
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(out.stdout.is_empty(), "{bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with(&format!("cutoff: {}", bad[0])),
            "{bad:?}: {stderr}"
        );
    }
}

/// A stand-in for the revoker's function URL: answers one request with `status` and
/// `body`, and hands back the request it received (head and body).
fn canned_url(status: u16, body: Value) -> (String, JoinHandle<(String, Value)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            reader.read_line(&mut head).unwrap();
        }
        let length = head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|n| n.trim().parse::<usize>().unwrap())
        });
        let mut request = vec![0; length.unwrap_or(0)];
        reader.read_exact(&mut request).unwrap();
        let body = body.to_string();
        let answer = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        reader.get_mut().write_all(answer.as_bytes()).unwrap();
        (
            head.to_ascii_lowercase(),
            serde_json::from_slice(&request).unwrap(),
        )
    });
    (url, server)
}

#[tokio::test]
async fn the_self_check_goes_signed_to_the_stacks_operator_url() {
    let probe = json!({"action": "iam:PutRolePolicy", "resource": "arn:aws:iam::444455556666:role/cutoff-doctor-sample",
                       "expected": "allowed", "decision": "allowed", "passed": true, "why": "the deny cutoff writes on a revoked role"});
    let answer = json!({"self_check": {"passed": true, "member_role": "cutoff-member", "accounts": [
        {"account": "444455556666", "passed": true, "assumed": true, "error": null, "probes": [probe.clone(), probe]}]}});
    let (url, server) = canned_url(200, answer);
    let d = Deployment::new(&url, true).await;
    let out = cutoff(&[
        "doctor",
        "--stack",
        &d.stack,
        "--accounts",
        "444455556666",
        "--json",
    ]);
    let (head, request) = server.join().unwrap();
    assert_eq!(
        request,
        json!({"action": "self_check", "accounts": ["444455556666"]})
    );
    assert!(
        head.contains("authorization: aws4-hmac-sha256 credential=testing/"),
        "{head}"
    );
    assert!(head.contains("/us-east-1/lambda/aws4_request"), "{head}");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report = report(&out);
    assert_eq!(check(&report, "operator path")["status"], "pass");
    let account = check(&report, "self-check account 444455556666");
    assert_eq!(
        account["detail"], "assumed cutoff-member; 2/2 probes as expected",
        "{account:#}"
    );
}

#[tokio::test]
async fn a_refused_self_check_fails_with_who_may_call_the_url() {
    let d = Deployment::new("https://abc.lambda-url.us-east-1.on.aws/", true).await;
    let (url, server) = canned_url(
        403,
        json!({"Message": "Forbidden. For troubleshooting Function URL authorization issues, see: ..."}),
    );
    let out = cutoff(&["doctor", "--stack", &d.stack, "--url", &url]);
    let (_, request) = server.join().unwrap();
    // Without --accounts, the security account itself (the caller's).
    assert_eq!(request["accounts"], json!([ACCOUNT]));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL  operator path: AWS refused the request (403)"),
        "{text}"
    );
    assert!(
        text.contains("OperatorPrincipalArns") && text.contains("infra/break-glass.yaml"),
        "{text}"
    );

    let refusal = json!({"status": "failed", "detail": "a self-check names 1 to 25 accounts, not 26", "error": {"kind": "invalid_request", "message": "..."}});
    let (url, server) = canned_url(200, refusal);
    let out = cutoff(&["doctor", "--stack", &d.stack, "--url", &url]);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(
            "FAIL  operator path: the revoker answered failed: a self-check names 1 to 25"
        ),
        "{}",
        stdout(&out)
    );
}
