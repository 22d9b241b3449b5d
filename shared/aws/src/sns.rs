//! SNS: the topics the notifier tells about outcomes ([`Notifications`],
//! [`SdkNotifications`]); its in-memory fake is in `fake` (feature `test-support`).

use std::future::Future;

use aws_sdk_sns::types::MessageAttributeValue;

use crate::error::{AwsError, ErrorKind, classify};
use cutoff_domain::notify::SnsMessage;

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
    /// An empty subject is left out (SNS rejects an empty `Subject`).
    async fn publish(&self, topic_arn: &str, message: &SnsMessage) -> Result<String, AwsError> {
        const OP: &str = "sns:Publish";
        let context = || format!("on topic `{topic_arn}`");
        let mut request = self
            .client
            .publish()
            .topic_arn(topic_arn)
            .message(&message.body);
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
        async fn publish(&self, topic_arn: &str, message: &SnsMessage) -> Result<String, AwsError> {
            let mut state = self.begin("Publish")?;
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
    use aws_sdk_sns::operation::publish::PublishOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

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

    fn message() -> SnsMessage {
        SnsMessage {
            subject: "cutoff: sessions of payments-api revoked".to_owned(),
            body: "All sessions issued before 2026-11-23T12:00:00Z are denied.".to_owned(),
            attributes: vec![
                ("status".to_owned(), "applied".to_owned()),
                ("account".to_owned(), "111122223333".to_owned()),
            ],
        }
    }

    #[tokio::test]
    async fn publish_sends_subject_body_and_string_attributes() {
        let rule = mock!(Sns::publish)
            .match_requests(|r| {
                let attributes = r.message_attributes().cloned().unwrap_or_default();
                let string = |name: &str| {
                    attributes
                        .get(name)
                        .filter(|v| v.data_type() == "String")
                        .and_then(|v| v.string_value())
                        .map(str::to_owned)
                };
                r.topic_arn() == Some(TOPIC)
                    && r.subject() == Some("cutoff: sessions of payments-api revoked")
                    && r.message()
                        == Some("All sessions issued before 2026-11-23T12:00:00Z are denied.")
                    && attributes.len() == 2
                    && string("status").as_deref() == Some("applied")
                    && string("account").as_deref() == Some("111122223333")
            })
            .then_output(|| PublishOutput::builder().message_id("msg-1").build());
        let sns = SdkNotifications::new(mocked!(aws_sdk_sns, [&rule]));
        assert_eq!(sns.publish(TOPIC, &message()).await.unwrap(), "msg-1");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn an_empty_subject_and_no_attributes_are_left_out() {
        let rule = mock!(Sns::publish)
            .match_requests(|r| r.subject().is_none() && r.message_attributes().is_none())
            .then_output(|| PublishOutput::builder().message_id("msg-2").build());
        let sns = SdkNotifications::new(mocked!(aws_sdk_sns, [&rule]));
        let message = SnsMessage {
            subject: String::new(),
            body: "b".to_owned(),
            attributes: Vec::new(),
        };
        assert_eq!(sns.publish(TOPIC, &message).await.unwrap(), "msg-2");
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
