//! End to end: the three function binaries, on local Runtime APIs, wired through
//! moto's SQS, EventBridge and SNS exactly as the template wires them in AWS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use cutoff_domain::notify::chat::schema_problems;
use cutoff_domain::policy::ROLE_WIDE_POLICY_NAME;
use cutoff_tests::https_inbox::HttpsInbox;
use cutoff_tests::moto::MotoServer;
use cutoff_tests::pipeline::{Notification, Pipeline};
use cutoff_tests::proxy::{FaultPlan, FaultProxy};
use serde_json::{Value, json};

const MEMBER: &str = "123456789012";

fn prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("p{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn pipeline() -> Pipeline {
    Pipeline::start(
        MotoServer::shared(),
        &prefix(),
        &[("CUTOFF_OWNER_PATTERNS", "pay-*=payments")],
    )
    .await
}

/// A GuardDuty finding about a session of `name`, whose RoleId is `role_id`.
fn finding(
    id: &str,
    user_type: &str,
    name: &str,
    severity: f64,
    sample: bool,
    role_id: &str,
) -> Value {
    json!({
        "version": "0", "id": format!("evt-{id}"), "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
        "account": MEMBER, "time": "2026-11-23T11:56:01Z", "region": "us-east-1", "resources": [],
        "detail": {
            "schemaVersion": "2.0", "accountId": MEMBER, "region": "us-east-1", "partition": "aws",
            "id": id, "arn": format!("arn:aws:guardduty:us-east-1:{MEMBER}:detector/d/finding/{id}"),
            "type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
            "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                "accessKeyId": "ASIAZXCVBNMASDFGHJKL", "principalId": format!("{role_id}:i-0123456789abcdef0"),
                "userName": name, "userType": user_type}},
            "service": {"serviceName": "guardduty", "archived": false, "count": 1,
                "eventFirstSeen": "2026-11-23T11:40:00.000Z", "eventLastSeen": "2026-11-23T11:55:00.000Z",
                "additionalInfo": {"sample": sample}},
            "severity": severity, "createdAt": "2026-11-23T11:41:00.000Z", "updatedAt": "2026-11-23T11:56:00.000Z",
            "title": "Credentials for the EC2 instance role were used from a remote AWS account."
        }
    })
}

async fn cutoff_of(p: &Pipeline, role: &str) -> Option<String> {
    cutoff_tests::seed::role_wide_cutoff(&p.iam, role)
        .await
        .map(|c| c.to_string())
}

fn statuses(outcomes: &[(Value, Value)]) -> Vec<String> {
    outcomes
        .iter()
        .map(|(event, _)| event["detail"]["status"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn mentions(notes: &[Notification], text: &str) -> bool {
    notes
        .iter()
        .any(|n| n.message.contains(text) || n.subject.contains(text))
}

#[tokio::test]
async fn a_high_severity_role_finding_is_revoked_and_both_teams_are_told() {
    let mut p = pipeline().await;
    let role_id = p.create_role("pay-api", Some("payments")).await;
    let report = p.send_event(&finding(
        "aaaa0000aaaa0000aaaa0000aaaa0001",
        "AssumedRole",
        "pay-api",
        8.0,
        false,
        &role_id,
    ));
    assert_eq!(report["queued"], 1, "{report}");
    p.drain_requests(10).await;
    let cutoff = cutoff_of(&p, "pay-api")
        .await
        .expect("the deny is on the role");

    let outcomes = p.drain_outcomes().await;
    assert_eq!(statuses(&outcomes), ["applied"]);
    let (event, _) = &outcomes[0];
    assert_eq!(event["source"], "cutoff");
    assert_eq!(event["detail-type"], "Revocation Outcome");
    assert_eq!(event["detail"]["cutoff"], cutoff.as_str());
    assert_eq!(event["detail"]["owner"]["team"], "payments");
    assert_eq!(
        event["detail"]["trigger"]["finding_id"],
        "aaaa0000aaaa0000aaaa0000aaaa0001"
    );

    let owner = p.inbox(&p.payments_topic.clone()).await;
    let security = p.inbox(&p.security_topic.clone()).await;
    assert_eq!((owner.len(), security.len()), (1, 1));
    for note in [&owner[0], &security[0]] {
        assert!(note.subject.contains("pay-api"), "{}", note.subject);
        assert!(
            note.message.contains(&cutoff),
            "the message names the cutoff"
        );
        assert!(
            note.message.contains("cutoff release"),
            "the message says how to release"
        );
        assert_eq!(
            note.attributes.get("cutoff_status").map(String::as_str),
            Some("applied")
        );
    }
}

/// Amazon Q Developer in chat applications subscribes to a topic over HTTPS: such a
/// subscriber gets the custom notification, a queue on the same topic the text, and
/// both name the region and the request id the revoker recorded the request under.
#[tokio::test]
async fn an_https_subscriber_gets_the_chat_notification_and_a_queue_the_text() {
    let chat = HttpsInbox::start();
    let env = HttpsInbox::moto_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // A moto of its own: only it trusts the endpoint's test certificate.
    let moto = MotoServer::start_with_env(&env);
    let mut p = Pipeline::start(&moto, &prefix(), &[]).await;
    let sns = aws_sdk_sns::Client::new(&cutoff_tests::aws::sdk_config(&p.endpoint).await);
    sns.subscribe()
        .topic_arn(&p.security_topic)
        .protocol("https")
        .endpoint(chat.endpoint())
        .send()
        .await
        .expect("subscribe the HTTPS endpoint");
    let role_id = p.create_role("pay-chat", Some("payments")).await;
    let finding_id = "aaaa0000aaaa0000aaaa0000aaaa00c1";
    let report = p.send_event(&finding(
        finding_id,
        "AssumedRole",
        "pay-chat",
        8.0,
        false,
        &role_id,
    ));
    assert_eq!(report["queued"], 1, "{report}");
    p.drain_requests(10).await;
    let outcomes = p.drain_outcomes().await;
    assert_eq!(statuses(&outcomes), ["applied"]);
    let detail = &outcomes[0].0["detail"];
    let request_id = detail["request_id"]
        .as_str()
        .expect("the outcome names its request");
    assert_eq!(detail["activity_region"], "us-east-1");

    let envelope = &chat.deliveries(1)[0];
    assert_eq!(envelope["Type"], "Notification");
    assert_eq!(envelope["TopicArn"], p.security_topic.as_str());
    assert!(
        envelope["Subject"].as_str().unwrap().contains("pay-chat"),
        "{envelope}"
    );
    let notification: Value =
        serde_json::from_str(envelope["Message"].as_str().unwrap()).expect("the chat body is JSON");
    assert_eq!(
        schema_problems(&notification),
        Vec::<String>::new(),
        "{notification:#}"
    );
    assert_eq!(
        notification["metadata"]["threadId"],
        format!("cutoff-{MEMBER}-role-pay-chat")
    );
    let description = notification["content"]["description"].as_str().unwrap();
    for expected in [
        request_id,
        "*Region:* `us-east-1`",
        &format!(
            "https://console.aws.amazon.com/guardduty/home?region=us-east-1#/findings?macros=current&fId={finding_id}"
        ),
        "https://console.aws.amazon.com/iam/home#/roles/details/pay-chat",
        "https://console.aws.amazon.com/cloudtrail/home?region=us-east-1#/events?AccessKeyId=ASIAZXCVBNMASDFGHJKL",
    ] {
        assert!(
            description.contains(expected),
            "missing {expected:?} in\n{description}"
        );
    }

    let security = p.inbox(&p.security_topic.clone()).await;
    assert_eq!(security.len(), 1);
    let text = &security[0].message;
    assert!(
        text.starts_with("cutoff revoked"),
        "the queue gets the text: {text}"
    );
    assert!(
        text.contains(&format!("Request id:       {request_id}")),
        "{text}"
    );
    assert!(text.contains("Region:           us-east-1"), "{text}");
}

#[tokio::test]
async fn a_medium_finding_alerts_the_owner_and_writes_nothing() {
    let mut p = pipeline().await;
    let role_id = p.create_role("pay-batch", Some("payments")).await;
    let report = p.send_event(&finding(
        "aaaa0000aaaa0000aaaa0000aaaa0002",
        "AssumedRole",
        "pay-batch",
        5.0,
        false,
        &role_id,
    ));
    assert_eq!(
        (report["queued"].as_u64(), report["alerted"].as_u64()),
        (Some(0), Some(1)),
        "{report}"
    );
    assert!(p.drain_requests(10).await.is_empty(), "nothing was queued");
    assert_eq!(cutoff_of(&p, "pay-batch").await, None);
    let outcomes = p.drain_outcomes().await;
    assert_eq!(statuses(&outcomes), ["alerted"]);
    assert_eq!(p.inbox(&p.payments_topic.clone()).await.len(), 1);
    let security = p.inbox(&p.security_topic.clone()).await;
    assert_eq!(security.len(), 1);
    assert!(
        mentions(&security, "cutoff revoke"),
        "says how to revoke by hand: {}",
        security[0].message
    );
}

#[tokio::test]
async fn a_sample_finding_is_ignored_and_nothing_is_sent() {
    let mut p = pipeline().await;
    let report = p.send_event(&finding(
        "aaaa0000aaaa0000aaaa0000aaaa0003",
        "AssumedRole",
        "pay-api",
        8.0,
        true,
        "AROAZXCVBNMASDFGHJKLQ",
    ));
    assert_eq!(report["ignored"], 1, "{report}");
    assert!(p.drain_requests(10).await.is_empty());
    assert!(p.drain_outcomes().await.is_empty());
    assert!(p.inbox(&p.security_topic.clone()).await.is_empty());
    assert!(p.inbox(&p.payments_topic.clone()).await.is_empty());
}

#[tokio::test]
async fn a_service_linked_role_is_found_unmodifiable_by_its_path_and_alerted_with_its_remedy() {
    let mut p = pipeline().await;
    // A service-linked role lives under /aws-service-role/, a path IAM reserves for the
    // service. Its name alone proves nothing: the revoker asks IAM.
    p.iam
        .create_role()
        .role_name("AWSServiceRoleForECS")
        .path("/aws-service-role/ecs.amazonaws.com/")
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
        .send()
        .await
        .unwrap();
    let role_id = p.role_id("AWSServiceRoleForECS").await;
    p.send_event(&finding(
        "aaaa0000aaaa0000aaaa0000aaaa0004",
        "AssumedRole",
        "AWSServiceRoleForECS",
        9.0,
        false,
        &role_id,
    ));
    let answers = p.drain_requests(10).await;
    assert_eq!(answers.len(), 1);
    assert!(
        p.iam
            .get_role_policy()
            .role_name("AWSServiceRoleForECS")
            .policy_name(ROLE_WIDE_POLICY_NAME)
            .send()
            .await
            .is_err(),
        "nothing written"
    );
    let outcomes = p.drain_outcomes().await;
    assert_eq!(statuses(&outcomes), ["unmodifiable"]);
    let security = p.inbox(&p.security_topic.clone()).await;
    assert_eq!(security.len(), 1);
    assert!(
        security[0].message.contains("service-linked"),
        "{}",
        security[0].message
    );
    assert!(
        security[0].message.contains("owner"),
        "says the owner is unknown: {}",
        security[0].message
    );
}

#[tokio::test]
async fn a_storm_of_fifty_findings_for_three_roles_writes_three_times() {
    // The functions reach moto through a recording proxy, which counts the writes.
    let moto = MotoServer::shared();
    let proxy = FaultProxy::start(moto.endpoint(), FaultPlan::passthrough());
    let mut p = Pipeline::start(moto, &prefix(), &[("AWS_ENDPOINT_URL", proxy.endpoint())]).await;
    let roles = ["pay-storm-a", "pay-storm-b", "pay-storm-c"];
    let mut ids = Vec::new();
    for role in roles {
        ids.push(p.create_role(role, Some("payments")).await);
    }
    for i in 0..50 {
        let report = p.send_event(&finding(
            &format!("bbbb0000bbbb0000bbbb0000bbbb{i:04}"),
            "AssumedRole",
            roles[i % 3],
            8.0,
            false,
            &ids[i % 3],
        ));
        assert_eq!(report["queued"], 1);
    }
    let answers = p.drain_requests(20).await;
    assert!(
        answers.iter().all(|a| a["batchItemFailures"]
            .as_array()
            .is_some_and(|f| f.is_empty())),
        "{answers:?}"
    );
    assert_eq!(proxy.count("PutRolePolicy"), 3, "one write per principal");
    assert!(
        p.revoker_batches >= 5,
        "fifty messages take at least five batches"
    );
    for role in roles {
        assert!(cutoff_of(&p, role).await.is_some());
    }
    let outcomes = p.drain_outcomes().await;
    assert_eq!(outcomes.len(), 50, "every finding's outcome is published");
    let applied = statuses(&outcomes)
        .iter()
        .filter(|s| *s == "applied")
        .count();
    let covered = statuses(&outcomes)
        .iter()
        .filter(|s| *s == "already_revoked")
        .count();
    assert_eq!((applied + covered, covered > 0), (50, true));
}

#[tokio::test]
async fn a_manual_invoke_answers_synchronously_and_is_then_notified() {
    let mut p = pipeline().await;
    p.create_role("pay-manual", Some("payments")).await;
    let answer = p.revoker.invoke(&json!({
        "action": "revoke", "account": MEMBER, "role": "pay-manual", "requested_by": "oncall@example.com", "reason": "INC-1234"
    }));
    assert_eq!(answer["status"], "applied", "{answer:#}");
    assert_eq!(
        cutoff_of(&p, "pay-manual").await.as_deref(),
        answer["cutoff"].as_str()
    );
    let outcomes = p.drain_outcomes().await;
    assert_eq!(statuses(&outcomes), ["applied"]);
    let owner = p.inbox(&p.payments_topic.clone()).await;
    assert_eq!(owner.len(), 1);
    assert!(
        owner[0].message.contains("INC-1234") && owner[0].message.contains("oncall@example.com")
    );
}

#[tokio::test]
async fn a_failing_request_stays_on_the_queue_and_its_failure_is_notified() {
    let mut p = pipeline().await;
    // No such role: the revoker fails, reports the message as a batch item failure,
    // and the queue delivers it again.
    p.send_event(&finding(
        "aaaa0000aaaa0000aaaa0000aaaa0005",
        "AssumedRole",
        "pay-missing",
        8.0,
        false,
        "AROAZXCVBNMASDFGHJKLQ",
    ));
    let first = p.drain_requests(1).await;
    assert_eq!(first[0]["batchItemFailures"].as_array().unwrap().len(), 1);
    let again = p.drain_requests(1).await;
    assert_eq!(again.len(), 1, "the failed message was not dropped");
    let outcomes = p.drain_outcomes().await;
    assert_eq!(
        statuses(&outcomes),
        ["failed"],
        "notified on the first attempt, not on each retry"
    );
    let security = p.inbox(&p.security_topic.clone()).await;
    assert!(
        security[0].subject.contains("FAILED"),
        "{}",
        security[0].subject
    );
}

#[tokio::test]
async fn the_notifier_reports_an_error_when_it_cannot_publish_so_lambda_retries() {
    let mut p = pipeline().await;
    let outcome_event = json!({
        "version": "0", "id": "x", "detail-type": "Revocation Outcome", "source": "cutoff", "account": MEMBER,
        "time": "2026-11-23T12:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {"status": "applied", "target": {"kind": "role", "account": MEMBER, "name": "pay-x", "access_key_id": null, "session": null},
            "cutoff": "2026-11-23T12:00:02Z", "previous_cutoff": null, "policy": "AWSRevokeOlderSessions", "scope": "role",
            "owner": {"team": "payments", "topic": null}, "trigger": {"source": "manual"}, "api_calls": 4, "error": null,
            "propagation": "eventual", "detail": "denied", "actions": [], "dry_run": false}
    });
    let ok = p
        .notifier
        .invoke_with_timeout(&outcome_event, std::time::Duration::from_secs(60))
        .unwrap();
    assert!(
        matches!(ok, cutoff_tests::runtime::Answer::Response(_)),
        "{ok:?}"
    );
    // Delete the security topic: publishing now fails and the notifier must say so.
    let sns = aws_sdk_sns::Client::new(&cutoff_tests::aws::sdk_config(&p.endpoint).await);
    sns.delete_topic()
        .topic_arn(&p.security_topic)
        .send()
        .await
        .unwrap();
    let failed = p
        .notifier
        .invoke_with_timeout(&outcome_event, std::time::Duration::from_secs(120))
        .unwrap();
    assert!(
        matches!(failed, cutoff_tests::runtime::Answer::Error(_)),
        "{failed:?}"
    );
}

#[tokio::test]
async fn a_finding_with_two_account_ids_is_refused_by_the_real_intake() {
    let mut p = pipeline().await;
    let role_id = p.create_role("pay-twice", Some("payments")).await;
    let event = finding(
        "aaaa0000aaaa0000aaaa0000aaaa0006",
        "AssumedRole",
        "pay-twice",
        8.0,
        false,
        &role_id,
    );
    // The same finding naming two accounts. A reader that keeps the last key (serde_json,
    // without cutoff's strict reading) would see only this account, where the role is.
    let single = format!(r#""accountId":"{MEMBER}""#);
    let text = event.to_string();
    assert_eq!(text.matches(&single).count(), 1, "{text}");
    let twice = text.replacen(
        &single,
        &format!(r#""accountId":"444455556666",{single}"#),
        1,
    );
    let report = p.intake.invoke_raw(&twice);
    assert_eq!(
        (report["queued"].as_u64(), report["invalid"].as_u64()),
        (Some(0), Some(1)),
        "{report}"
    );
    let decision = p
        .intake
        .json_logs()
        .into_iter()
        .find(|l| l["message"] == "decision")
        .expect("the decision is logged");
    assert!(
        decision["reason"]
            .as_str()
            .is_some_and(|r| r.contains("duplicate key")),
        "{decision}"
    );
    assert!(p.drain_requests(10).await.is_empty(), "nothing was queued");
    assert_eq!(cutoff_of(&p, "pay-twice").await, None);
    assert!(p.drain_outcomes().await.is_empty(), "nothing was published");
}

#[tokio::test]
async fn an_instance_credential_finding_denies_that_instances_sessions_and_no_others() {
    let mut p = pipeline().await;
    let role_id = p.create_role("pay-fleet", Some("payments")).await;
    let instance = "i-0123456789abcdef0";
    let mut event = finding(
        "aaaa0000aaaa0000aaaa0000aaaa0009",
        "AssumedRole",
        "pay-fleet",
        8.0,
        false,
        &role_id,
    );
    event["detail"]["resource"]["instanceDetails"] =
        json!({"instanceId": instance, "instanceType": "m6i.large"});
    let report = p.send_event(&event);
    assert_eq!(report["queued"], 1, "{report}");
    p.drain_requests(10).await;

    // The instance's sessions only: no role-wide deny, the session's statement instead.
    assert_eq!(cutoff_of(&p, "pay-fleet").await, None, "no role-wide deny");
    let stored = p
        .iam
        .get_role_policy()
        .role_name("pay-fleet")
        .policy_name(cutoff_domain::policy::SESSION_POLICY_NAME)
        .send()
        .await
        .expect("the session deny is on the role");
    let document = cutoff_domain::policy::PolicyDocument::parse(stored.policy_document()).unwrap();
    let sessions = document.session_cutoffs();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let (session, cutoff) = &sessions[0];
    assert_eq!(session.to_string(), format!("{role_id}:{instance}"));

    // What IAM would decide, by an evaluator that is not cutoff's code.
    let decide = |userid: String, minutes: i64| {
        let issued = (cutoff.as_datetime() + chrono::Duration::minutes(minutes))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        cutoff_tests::evaluator::evaluate(
            &cutoff_tests::evaluator::EvalRequest::new(
                "s3:GetObject",
                "arn:aws:s3:::payments-exports/cards.csv",
                &format!("arn:aws:iam::{MEMBER}:role/pay-fleet"),
            )
            .policy(json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}))
            .policy(serde_json::from_str::<Value>(&document.to_json()).unwrap())
            .context("aws:TokenIssueTime", issued)
            .context("aws:userid", userid),
        )
        .decision
    };
    use cutoff_tests::evaluator::Decision;
    let stolen = format!("{role_id}:{instance}");
    assert_eq!(decide(stolen.clone(), -1), Decision::ExplicitlyDenied);
    assert_eq!(
        decide(stolen, 1),
        Decision::Allowed,
        "a new session of it works"
    );
    assert_eq!(
        decide(format!("{role_id}:i-0fedcba9876543210"), -1),
        Decision::Allowed,
        "another instance of the fleet keeps working"
    );

    // The outcome and the owner's message say what was scoped and why.
    let outcomes = p.drain_outcomes().await;
    assert_eq!(statuses(&outcomes), ["applied"]);
    let (event, _) = &outcomes[0];
    assert_eq!(event["detail"]["scope"], "session");
    assert_eq!(
        event["detail"]["policy"],
        cutoff_domain::policy::SESSION_POLICY_NAME
    );
    let reason = event["detail"]["trigger"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("only the sessions of instance {instance}")),
        "{reason}"
    );
    let owner = p.inbox(&p.payments_topic.clone()).await;
    assert_eq!(owner.len(), 1);
    assert!(
        owner[0]
            .message
            .contains(&format!("only the sessions of instance {instance}")),
        "{}",
        owner[0].message
    );
}

/// A GuardDuty attack sequence whose actors are sessions of `actors` (name, RoleId),
/// and which touched an access key of `touched`.
fn attack_sequence(id: &str, actors: &[(&str, &str)], touched: &str) -> Value {
    let actors: Vec<Value> = actors
        .iter()
        .enumerate()
        .map(|(i, (name, role_id))| {
            json!({"id": format!("a{i}"),
                "user": {"name": name, "uid": format!("{role_id}:session-{i}"), "type": "AssumedRole",
                         "credentialUid": "ASIAZXCVBNMASDFGHJKL", "account": {"uid": MEMBER}},
                "session": {"createdTime": "2026-11-23T11:30:00Z",
                            "issuer": format!("arn:aws:iam::{MEMBER}:role/{name}")}})
        })
        .collect();
    let touched = json!({"uid": "ASIAZXCVBNMASDFGHJKM", "resourceType": "ACCESS_KEY", "accountId": MEMBER,
        "data": {"accessKey": {"principalId": "AROAZXCVBNMASDFGHJKLQ:x", "userName": touched,
                               "userType": "AssumedRole"}}});
    let sequence = json!({"uid": "s", "description": "a sequence", "actors": actors,
        "signals": [], "resources": [touched]});
    json!({
        "version": "0", "id": format!("evt-{id}"), "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
        "account": MEMBER, "time": "2026-11-23T11:56:01Z", "region": "us-east-1", "resources": [],
        "detail": {
            "schemaVersion": "2.0", "accountId": MEMBER, "region": "us-east-1", "partition": "aws",
            "id": id, "arn": format!("arn:aws:guardduty:us-east-1:{MEMBER}:detector/d/finding/{id}"),
            "type": "AttackSequence:IAM/CompromisedCredentials",
            "resource": {"resourceType": "AttackSequence"},
            "service": {"serviceName": "guardduty", "featureName": "Correlation", "archived": false, "count": 1,
                "eventFirstSeen": "2026-11-23T11:31:00.000Z", "eventLastSeen": "2026-11-23T11:55:00.000Z",
                "additionalInfo": {}, "detection": {"sequence": sequence}},
            "severity": 9, "createdAt": "2026-11-23T11:41:00.000Z", "updatedAt": "2026-11-23T11:56:00.000Z",
            "title": "Potential credential compromise indicated by a sequence of actions."
        }
    })
}

#[tokio::test]
async fn an_attack_sequence_denies_each_actor_and_only_alerts_what_it_touched() {
    let mut p = pipeline().await;
    let api = p.create_role("pay-seq-api", Some("payments")).await;
    let batch = p.create_role("pay-seq-batch", Some("payments")).await;
    p.create_role("pay-seq-touched", Some("payments")).await;
    let report = p.send_event(&attack_sequence(
        "aaaa0000aaaa0000aaaa0000aaaa0010",
        &[
            ("pay-seq-api", &api),
            ("pay-seq-batch", &batch),
            ("pay-seq-api", &api),
        ],
        "pay-seq-touched",
    ));
    assert_eq!(
        (report["queued"].as_u64(), report["alerted"].as_u64()),
        (Some(2), Some(1)),
        "{report}"
    );
    p.drain_requests(10).await;
    for role in ["pay-seq-api", "pay-seq-batch"] {
        assert!(cutoff_of(&p, role).await.is_some(), "{role} is denied");
    }
    assert_eq!(
        cutoff_of(&p, "pay-seq-touched").await,
        None,
        "a target, not an actor"
    );
    let mut outcomes = statuses(&p.drain_outcomes().await);
    outcomes.sort();
    assert_eq!(outcomes, ["alerted", "applied", "applied"]);
    let owner = p.inbox(&p.payments_topic.clone()).await;
    assert_eq!(owner.len(), 3);
    assert!(mentions(&owner, "attack sequence"));
}

#[tokio::test]
async fn an_ocsf_finding_is_revoked_when_enabled_and_the_message_still_goes_out() {
    let mut p = Pipeline::start(
        MotoServer::shared(),
        &prefix(),
        &[
            ("CUTOFF_OWNER_PATTERNS", "pay-*=payments"),
            ("CUTOFF_SECURITYHUB_V2", "true"),
        ],
    )
    .await;
    let role_id = p.create_role("pay-ocsf", Some("payments")).await;
    let uid = "9f24e91799652d9e17025b61d94f436b20b515b6f3cd9bda788f48c1db9cf244";
    let resource = json!({"type": "AWS::IAM::AccessKey", "uid": "ASIAZXCVBNMASDFGHJKL",
        "owner": {"account": {"uid": MEMBER}},
        "data": {"access_key_id": "ASIAZXCVBNMASDFGHJKL", "principal_id": format!("{role_id}:s1"),
                 "user_name": "pay-ocsf", "user_type": "AssumedRole"}});
    let info = json!({"uid": format!("arn:aws:guardduty:us-east-1:{MEMBER}:detector/d/finding/f"),
        "types": ["Exfiltration:IAMUser/AnomalousBehavior"],
        "first_seen_time_dt": "2026-11-23T11:40:00.000Z", "modified_time_dt": "2026-11-23T11:56:00.000Z"});
    let metadata = json!({"uid": uid, "version": "1.6.0",
        "product": {"name": "GuardDuty", "uid": "arn:aws:securityhub:us-east-1::productv2/aws/guardduty"}});
    let finding = json!({
        "class_uid": 2004, "activity_id": 1, "severity_id": 4, "severity": "High", "status_id": 1,
        "cloud": {"account": {"uid": MEMBER}, "region": "us-east-1"},
        "metadata": metadata, "finding_info": info,
        "vendor_attributes": {"severity": "High", "severity_id": 4},
        "resources": [resource]
    });
    let event = json!({
        "version": "0", "id": "evt-ocsf", "detail-type": "Findings Imported V2", "source": "aws.securityhub",
        "account": MEMBER, "time": "2026-11-23T11:56:01Z", "region": "us-east-1", "resources": [uid],
        "detail": {"findings": [finding]}
    });
    let report = p.send_event(&event);
    assert_eq!(report["queued"], 1, "{report}");
    p.drain_requests(10).await;
    assert!(cutoff_of(&p, "pay-ocsf").await.is_some());
    let outcomes = p.drain_outcomes().await;
    assert_eq!(statuses(&outcomes), ["applied"]);
    let (event, report) = &outcomes[0];
    assert_eq!(event["detail"]["trigger"]["finding_format"], "ocsf");
    assert_eq!(event["detail"]["trigger"]["finding_id"], uid);
    // moto has no Security Hub V2 (nor BatchUpdateFindings): the pipeline's notifier
    // runs with updates off; the BatchUpdateFindingsV2 call is held to the SDK's mock
    // client (shared/aws/src/securityhub.rs) and the template's grant to the evaluator.
    assert_eq!(report["finding_update"], "skipped", "{report}");
    let owner = p.inbox(&p.payments_topic.clone()).await;
    assert_eq!(owner.len(), 1);
    assert!(mentions(&owner, "OCSF"));
}
