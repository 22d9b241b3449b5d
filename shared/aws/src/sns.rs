//! SNS: the topics the notifier tells about outcomes ([`Notifications`],
//! [`SdkNotifications`]); its in-memory fake is in `fake` (feature `test-support`).
//!
//! Every message is published with `MessageStructure=json`: one body per
//! subscription protocol, the chat notification for `https` (Amazon Q Developer in
//! chat applications) and the plain text for `email` and `default`
//! ([`cutoff_domain::notify::publish`] has what SNS documents and who gets what).

use std::future::Future;

use aws_sdk_sns::types::MessageAttributeValue;

use crate::error::{AwsError, ErrorKind, classify};
use cutoff_domain::notify::{SnsMessage, message_structure};

/// `MessageStructure`'s one value: `Message` is a JSON object of a body per protocol.
const MESSAGE_STRUCTURE_JSON: &str = "json";

/// `sns:Publish`.
pub trait Notifications: Send + Sync {
    /// Publishes to `topic_arn`; returns the message id.
    fn publish(
        &self,
        topic_arn: &str,
        message: &SnsMessage,
    ) -> impl Future<Output = Result<String, AwsError>> + Send;
}

/// SNS topics, through the SDK.
#[derive(Debug, Clone)]
pub struct SdkNotifications {
    client: aws_sdk_sns::Client,
}

impl SdkNotifications {
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_sns::Client::new(config))
    }

    pub fn new(client: aws_sdk_sns::Client) -> Self {
        Self { client }
    }
}

impl Notifications for SdkNotifications {
    /// A body per protocol (`MessageStructure=json`, at most SNS's 256 KiB in all);
    /// the subject (e-mail's) and the attributes as they are. An empty subject is
    /// left out (SNS rejects an empty `Subject`).
    async fn publish(&self, topic_arn: &str, message: &SnsMessage) -> Result<String, AwsError> {
        const OP: &str = "sns:Publish";
        let context = || format!("on topic `{topic_arn}`");
        let mut request = self
            .client
            .publish()
            .topic_arn(topic_arn)
            .message_structure(MESSAGE_STRUCTURE_JSON)
            .message(message_structure(message));
        if !message.subject.is_empty() {
            request = request.subject(&message.subject);
        }
        for (name, value) in &message.attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| {
                    AwsError::new(
                        ErrorKind::Malformed,
                        OP,
                        context(),
                        format!("message attribute `{name}`: {e}"),
                    )
                })?;
            request = request.message_attributes(name, value);
        }
        let out = request
            .send()
            .await
            .map_err(|e| classify(&e, OP, context()))?;
        out.message_id().map(str::to_owned).ok_or_else(|| {
            AwsError::new(
                ErrorKind::Malformed,
                OP,
                context(),
                "the response has no message id",
            )
        })
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod fake {
    //! In-memory SNS topics.

    use std::sync::{Arc, Mutex, MutexGuard};

    use crate::error::{AwsError, ErrorKind, InjectedFailures};

    use super::Notifications;
    use cutoff_domain::notify::SnsMessage;

    /// Records the messages published, by topic; fails the next calls on demand.
    #[derive(Debug, Clone, Default)]
    pub struct FakeNotifications(pub Arc<Mutex<TopicsState>>);

    #[derive(Debug, Default)]
    pub struct TopicsState {
        /// (topic, message)
        pub published: Vec<(String, SnsMessage)>,
        /// SNS topics that refuse every publish (AccessDenied), as a topic outside the
        /// publisher's permissions does.
        pub refusing_topics: Vec<String>,
        pub failures: InjectedFailures,
    }

    impl FakeNotifications {
        pub fn state(&self) -> MutexGuard<'_, TopicsState> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }

        pub fn fail(&self, action: &'static str, kinds: &[ErrorKind]) {
            self.state().failures.plan(action, kinds);
        }

        fn begin(&self, action: &'static str) -> Result<MutexGuard<'_, TopicsState>, AwsError> {
            let mut state = self.state();
            state.failures.take(action, "in the fake")?;
            Ok(state)
        }
    }

    impl Notifications for FakeNotifications {
        /// Refuses, as SNS does, a message whose bodies exceed 256 KiB together.
        async fn publish(&self, topic_arn: &str, message: &SnsMessage) -> Result<String, AwsError> {
            let mut state = self.begin("Publish")?;
            // The attributes count toward the limit, as SNS counts them.
            let size = cutoff_domain::notify::message_structure(message).len()
                + cutoff_domain::notify::attributes_bytes(message);
            if size > cutoff_domain::notify::SNS_MESSAGE_MAX_BYTES {
                return Err(AwsError::new(
                    ErrorKind::Malformed,
                    "sns:Publish",
                    topic_arn.to_owned(),
                    format!("Invalid parameter: Message too long ({size} bytes)"),
                ));
            }
            if state.refusing_topics.iter().any(|t| t == topic_arn) {
                return Err(AwsError::new(
                    ErrorKind::AccessDenied,
                    "sns:Publish",
                    topic_arn.to_owned(),
                    "not authorized",
                ));
            }
            state
                .published
                .push((topic_arn.to_owned(), message.clone()));
            Ok(format!("msg-{}", state.published.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::retry::RetryConfig;
    use aws_sdk_sns::Client as Sns;
    use aws_sdk_sns::operation::publish::{PublishInput, PublishOutput};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use cutoff_domain::notify;
    use cutoff_domain::outcome::Outcome;
    use std::sync::{Arc, Mutex};

    /// A mocked client with SDK retries off, so that every response reaches our code.
    macro_rules! mocked {
        ($sdk:ident, $rules:expr) => {
            mock_client!($sdk, RuleMode::Sequential, $rules, |c| c
                .retry_config(RetryConfig::disabled()))
        };
    }

    const TOPIC: &str = "arn:aws:sns:eu-west-1:111122223333:payments";

    fn response(status: u16, body: &str, headers: &[(&'static str, &'static str)]) -> HttpResponse {
        let mut response =
            HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body));
        for (name, value) in headers {
            response.headers_mut().insert(*name, *value);
        }
        response
    }

    /// An awsQuery error (SNS).
    fn query_error(code: &str, message: &str) -> String {
        format!(
            "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\
             <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>4b1f7c52-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        )
    }

    /// A message as the notifier renders it: an applied revocation of a GuardDuty
    /// finding in eu-west-1, by a notifier in us-east-1.
    fn outcome(change: impl FnOnce(&mut serde_json::Value)) -> Outcome {
        let mut v = serde_json::json!({
            "status": "applied",
            "target": {"kind": "role", "account": "111122223333", "name": "payments-api",
                       "access_key_id": "ASIAZXCVBNMASDFGHJKL", "session": null},
            "cutoff": "2026-11-23T12:00:02Z", "previous_cutoff": null,
            "policy": "AWSRevokeOlderSessions", "scope": "role",
            "owner": {"team": "payments", "topic": null},
            "trigger": {"source": "guardduty", "finding_id": "455aa647b26d9310341733d58b9b7442",
                        "finding_type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
                        "severity": 8.0, "updated_at": null, "requested_by": null, "reason": "severity 8.0"},
            "api_calls": 4, "error": null, "propagation": "eventual", "detail": "denied",
            "actions": [], "dry_run": false,
            "request_id": "5f1c0d3e-1111-2222-3333-444455556666", "activity_region": "eu-west-1"
        });
        change(&mut v);
        serde_json::from_value(v).unwrap()
    }

    fn message() -> SnsMessage {
        notify::render_in(
            &outcome(|_| {}),
            true,
            &notify::MessageContext::new(Some("us-east-1"), Vec::new()),
        )
    }

    /// The requests a mocked `Publish` received.
    type Seen = Arc<Mutex<Vec<PublishInput>>>;

    fn recording(seen: &Seen) -> aws_smithy_mocks::Rule {
        let seen = Arc::clone(seen);
        mock!(Sns::publish)
            .match_requests(move |r| {
                seen.lock().unwrap().push(r.clone());
                true
            })
            .then_output(|| PublishOutput::builder().message_id("msg-1").build())
    }

    /// The bodies of a published `Message`, each checked to be a string.
    fn bodies(input: &PublishInput) -> serde_json::Map<String, serde_json::Value> {
        let message: serde_json::Value =
            serde_json::from_str(input.message().unwrap()).expect("Message is JSON");
        let map = message
            .as_object()
            .expect("Message is a JSON object")
            .clone();
        for (key, value) in &map {
            assert!(value.is_string(), "`{key}` is not a string: {value}");
        }
        map
    }

    #[tokio::test]
    async fn publish_sends_a_body_per_protocol_with_the_subject_and_string_attributes() {
        let seen = Seen::default();
        let rule = recording(&seen);
        let sns = SdkNotifications::new(mocked!(aws_sdk_sns, [&rule]));
        let message = message();
        assert_eq!(sns.publish(TOPIC, &message).await.unwrap(), "msg-1");
        assert_eq!(rule.num_calls(), 1);
        let input = seen.lock().unwrap()[0].clone();
        assert_eq!(input.topic_arn(), Some(TOPIC));
        assert_eq!(input.message_structure(), Some("json"));
        assert_eq!(input.subject(), Some(message.subject.as_str()));
        assert!(input.subject().unwrap().len() < 100);

        let bodies = bodies(&input);
        assert_eq!(
            bodies.keys().map(String::as_str).collect::<Vec<_>>(),
            ["default", "email", "https"]
        );
        assert_eq!(bodies["default"], message.body.as_str());
        assert_eq!(bodies["email"], message.body.as_str());
        let chat: serde_json::Value =
            serde_json::from_str(bodies["https"].as_str().unwrap()).expect("the chat body is JSON");
        assert_eq!(
            notify::chat::schema_problems(&chat),
            Vec::<String>::new(),
            "{chat:#}"
        );
        let description = chat["content"]["description"].as_str().unwrap();
        assert!(
            description.contains("5f1c0d3e-1111-2222-3333-444455556666"),
            "{description}"
        );
        assert!(description.contains("`eu-west-1`"), "{description}");

        let attributes = input.message_attributes().cloned().unwrap_or_default();
        assert_eq!(attributes.len(), message.attributes.len());
        for (name, value) in &message.attributes {
            let sent = &attributes[name];
            assert_eq!(sent.data_type(), "String");
            assert_eq!(sent.string_value(), Some(value.as_str()), "{name}");
        }
        assert_eq!(
            attributes[notify::attribute::CLASS].string_value(),
            Some("incident")
        );
    }

    #[tokio::test]
    async fn an_empty_subject_and_no_attributes_are_left_out() {
        let rule = mock!(Sns::publish)
            .match_requests(|r| {
                r.subject().is_none()
                    && r.message_attributes().is_none()
                    && r.message_structure() == Some("json")
            })
            .then_output(|| PublishOutput::builder().message_id("msg-2").build());
        let sns = SdkNotifications::new(mocked!(aws_sdk_sns, [&rule]));
        let mut message = message();
        message.subject.clear();
        message.attributes.clear();
        assert_eq!(sns.publish(TOPIC, &message).await.unwrap(), "msg-2");
    }

    #[tokio::test]
    async fn a_message_with_huge_fields_is_published_within_sns_limit() {
        // A follow-up of 100 links, each text 512 four-byte characters once cut:
        // megabytes of text before it is fitted.
        let big = "🔒".repeat(600);
        let huge = outcome(|v| {
            v["status"] = "partial".into();
            v["trigger"]["source"] = "chain".into();
            let link = serde_json::json!({"id": big, "depth": 1, "by": big, "account": big,
                                          "found": big, "result": big, "new": true});
            v["chain"] = serde_json::json!({
                "run": 1, "runs": 3, "key": "ASIAZXCVBNMASDFGHJKL", "searched": [big],
                "from": "2026-11-23T11:00:00Z", "to": "2026-11-23T12:00:00Z",
                "links": vec![link; 100], "complete": false, "gaps": [big]
            });
        });
        let message = notify::render_in(&huge, true, &notify::MessageContext::default());
        assert!(message.body.len() > notify::SNS_MESSAGE_MAX_BYTES);
        let seen = Seen::default();
        let rule = recording(&seen);
        let sns = SdkNotifications::new(mocked!(aws_sdk_sns, [&rule]));
        sns.publish(TOPIC, &message).await.unwrap();
        let input = seen.lock().unwrap()[0].clone();
        let sent = input.message().unwrap();
        assert!(
            sent.len() <= notify::SNS_MESSAGE_MAX_BYTES,
            "{} bytes",
            sent.len()
        );
        let bodies = bodies(&input);
        assert!(bodies.contains_key("default") && bodies.contains_key("https"));
        let chat: serde_json::Value =
            serde_json::from_str(bodies["https"].as_str().unwrap()).unwrap();
        assert_eq!(notify::chat::schema_problems(&chat), Vec::<String>::new());
        // The fake refuses what SNS would: the notifier's tests see the same limit.
        let fake = fake::FakeNotifications::default();
        assert!(
            fake.publish(TOPIC, &message).await.is_ok(),
            "fitted, it fits"
        );
    }

    #[tokio::test]
    async fn a_publish_without_message_id_is_malformed() {
        let rule = mock!(Sns::publish).then_output(|| PublishOutput::builder().build());
        let sns = SdkNotifications::new(mocked!(aws_sdk_sns, [&rule]));
        let err = sns.publish(TOPIC, &message()).await.unwrap_err();
        assert_eq!(
            (err.kind, err.operation),
            (ErrorKind::Malformed, "sns:Publish")
        );
    }

    #[tokio::test]
    async fn publish_failures_are_classified_and_name_the_topic() {
        let cases = [
            (400, "Throttling", ErrorKind::Throttled),
            (429, "Throttled", ErrorKind::Throttled),
            (500, "InternalError", ErrorKind::Transient),
            (503, "ServiceUnavailable", ErrorKind::Transient),
            (403, "AuthorizationError", ErrorKind::AccessDenied),
            (404, "NotFound", ErrorKind::NotFound),
            (400, "InvalidParameter", ErrorKind::Malformed),
        ];
        for (status, code, kind) in cases {
            let rule = mock!(Sns::publish).then_http_response(move || {
                response(status, &query_error(code, "Topic does not exist"), &[])
            });
            let sns = SdkNotifications::new(mocked!(aws_sdk_sns, [&rule]));
            let err = sns.publish(TOPIC, &message()).await.unwrap_err();
            assert_eq!(err.kind, kind, "{code}: {err}");
            assert_eq!(err.operation, "sns:Publish");
            assert_eq!(err.context, format!("on topic `{TOPIC}`"));
            assert!(!err.to_string().contains("are denied"), "{err}");
        }
    }
}
