//! Security Hub: the workflow status and note of the finding an outcome answers
//! ([`FindingsUpdater`], [`SdkFindings`]); its in-memory fake is in `fake` (feature
//! `test-support`).
//!
//! Two APIs: `BatchUpdateFindings` for ASFF findings (Security Hub CSPM: finding id and
//! product ARN, a workflow status and a note) and `BatchUpdateFindingsV2` for OCSF
//! findings (Security Hub: `metadata.uid`, a `status_id` and a comment). IAM knows both
//! as the action `securityhub:BatchUpdateFindings`. Both answer 200 while leaving some
//! findings unprocessed: the answer is checked, and an unprocessed finding is an error,
//! never a silent drop.

use std::borrow::Cow;
use std::future::Future;

use aws_sdk_securityhub::types::{
    AwsSecurityFindingIdentifier, NoteUpdate, WorkflowStatus as HubWorkflowStatus, WorkflowUpdate,
};

use crate::error::{AwsError, ErrorKind, bound, classify, entry_message};

/// Security Hub accepts notes of at most 512 characters.
const MAX_NOTE_CHARS: usize = 512;
/// The `UpdatedBy` of cutoff's notes.
const NOTE_AUTHOR: &str = "cutoff";

/// Security Hub workflow states cutoff sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowStatus {
    Notified,
    Resolved,
}

impl WorkflowStatus {
    /// The OCSF `status_id` of the state: ASFF's NOTIFIED (someone was told and works
    /// on it) is OCSF's 2 In Progress; RESOLVED is 4 Resolved.
    pub fn ocsf_status_id(self) -> i32 {
        match self {
            WorkflowStatus::Notified => 2,
            WorkflowStatus::Resolved => 4,
        }
    }
}

/// `securityhub:BatchUpdateFindings`.
pub trait FindingsUpdater: Send + Sync {
    /// Sets the finding's workflow status and adds a note (at most 512 characters).
    fn update_finding(
        &self,
        finding_id: &str,
        product_arn: &str,
        status: WorkflowStatus,
        note: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Sets an OCSF finding's status (`BatchUpdateFindingsV2`, by its `metadata.uid`)
    /// and its comment (at most 512 characters).
    fn update_ocsf_finding(
        &self,
        metadata_uid: &str,
        status: WorkflowStatus,
        comment: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// Security Hub findings, through the SDK.
#[derive(Debug, Clone)]
pub struct SdkFindings {
    client: aws_sdk_securityhub::Client,
}

impl SdkFindings {
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_securityhub::Client::new(config))
    }

    pub fn new(client: aws_sdk_securityhub::Client) -> Self {
        Self { client }
    }
}

/// `note`, cut on a character boundary to Security Hub's 512 characters, the last
/// one then an ellipsis.
fn note_text(note: &str) -> Cow<'_, str> {
    if note.chars().nth(MAX_NOTE_CHARS).is_none() {
        return Cow::Borrowed(note);
    }
    let cut = note
        .char_indices()
        .nth(MAX_NOTE_CHARS - 1)
        .map_or(note.len(), |(i, _)| i);
    Cow::Owned(format!("{}…", &note[..cut]))
}

/// The error of a finding either API answered as unprocessed, of its code's kind.
fn not_updated(
    operation: &'static str,
    context: String,
    code: Option<&str>,
    message: Option<&str>,
) -> AwsError {
    // Without a code the answer is garbled: worth another try.
    let kind = code.map_or(ErrorKind::Transient, ErrorKind::from_code);
    AwsError::new(
        kind,
        operation,
        context,
        bound(format!(
            "the finding was not updated: {}",
            entry_message(code, message)
        )),
    )
}

impl FindingsUpdater for SdkFindings {
    /// An empty note is left out (Security Hub requires a non-empty `Text`).
    async fn update_finding(
        &self,
        finding_id: &str,
        product_arn: &str,
        status: WorkflowStatus,
        note: &str,
    ) -> Result<(), AwsError> {
        const OP: &str = "securityhub:BatchUpdateFindings";
        let context = || format!("on finding `{finding_id}`");
        let status = match status {
            WorkflowStatus::Notified => HubWorkflowStatus::Notified,
            WorkflowStatus::Resolved => HubWorkflowStatus::Resolved,
        };
        let mut request = self
            .client
            .batch_update_findings()
            .finding_identifiers(
                AwsSecurityFindingIdentifier::builder()
                    .id(finding_id)
                    .product_arn(product_arn)
                    .build(),
            )
            .workflow(WorkflowUpdate::builder().status(status).build());
        if !note.is_empty() {
            request = request.note(
                NoteUpdate::builder()
                    .text(note_text(note))
                    .updated_by(NOTE_AUTHOR)
                    .build(),
            );
        }
        let out = request
            .send()
            .await
            .map_err(|e| classify(&e, OP, context()))?;
        match out.unprocessed_findings().first() {
            None => Ok(()),
            Some(u) => Err(not_updated(
                OP,
                context(),
                u.error_code(),
                u.error_message(),
            )),
        }
    }

    /// An empty comment is left out (Security Hub requires 1 to 512 characters).
    async fn update_ocsf_finding(
        &self,
        metadata_uid: &str,
        status: WorkflowStatus,
        comment: &str,
    ) -> Result<(), AwsError> {
        const OP: &str = "securityhub:BatchUpdateFindingsV2";
        let context = || format!("on finding `{metadata_uid}`");
        let mut request = self
            .client
            .batch_update_findings_v2()
            .metadata_uids(metadata_uid)
            .status_id(status.ocsf_status_id());
        if !comment.is_empty() {
            request = request.comment(note_text(comment));
        }
        let out = request
            .send()
            .await
            .map_err(|e| classify(&e, OP, context()))?;
        match out.unprocessed_findings().first() {
            None => Ok(()),
            Some(u) => {
                let code = u.error_code().map(|c| c.as_str());
                Err(not_updated(OP, context(), code, u.error_message()))
            }
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod fake {
    //! In-memory Security Hub findings.

    use std::sync::{Arc, Mutex, MutexGuard};

    use crate::error::{AwsError, ErrorKind, InjectedFailures};

    use super::{FindingsUpdater, WorkflowStatus};

    /// Records the finding updates; fails the next calls on demand.
    #[derive(Debug, Clone, Default)]
    pub struct FakeFindings(pub Arc<Mutex<FindingsState>>);

    #[derive(Debug, Default)]
    pub struct FindingsState {
        /// (finding id, product arn, status, note)
        pub finding_updates: Vec<(String, String, WorkflowStatus, String)>,
        /// (metadata uid, status, comment) of OCSF findings.
        pub ocsf_updates: Vec<(String, WorkflowStatus, String)>,
        pub failures: InjectedFailures,
    }

    impl FakeFindings {
        pub fn state(&self) -> MutexGuard<'_, FindingsState> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }

        pub fn fail(&self, action: &'static str, kinds: &[ErrorKind]) {
            self.state().failures.plan(action, kinds);
        }

        fn begin(&self, action: &'static str) -> Result<MutexGuard<'_, FindingsState>, AwsError> {
            let mut state = self.state();
            state.failures.take(action, "in the fake")?;
            Ok(state)
        }
    }

    impl FindingsUpdater for FakeFindings {
        async fn update_finding(
            &self,
            finding_id: &str,
            product_arn: &str,
            status: WorkflowStatus,
            note: &str,
        ) -> Result<(), AwsError> {
            let mut state = self.begin("BatchUpdateFindings")?;
            state.finding_updates.push((
                finding_id.to_owned(),
                product_arn.to_owned(),
                status,
                note.to_owned(),
            ));
            Ok(())
        }

        async fn update_ocsf_finding(
            &self,
            metadata_uid: &str,
            status: WorkflowStatus,
            comment: &str,
        ) -> Result<(), AwsError> {
            let mut state = self.begin("BatchUpdateFindingsV2")?;
            state
                .ocsf_updates
                .push((metadata_uid.to_owned(), status, comment.to_owned()));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use aws_config::retry::RetryConfig;
    use aws_sdk_securityhub::Client as Hub;
    use aws_sdk_securityhub::operation::batch_update_findings::BatchUpdateFindingsOutput;
    use aws_sdk_securityhub::types::BatchUpdateFindingsUnprocessedFinding;
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

    const FINDING: &str = "arn:aws:guardduty:eu-west-1:111122223333:detector/d1/finding/f1";
    const PRODUCT: &str = "arn:aws:securityhub:eu-west-1::product/aws/guardduty";

    fn response(status: u16, body: &str, headers: &[(&'static str, &'static str)]) -> HttpResponse {
        let mut response =
            HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body));
        for (name, value) in headers {
            response.headers_mut().insert(*name, *value);
        }
        response
    }

    /// A restJson error, as Security Hub sends it.
    fn json_error(code: &str, message: &str) -> String {
        format!(r#"{{"__type":"{code}","message":"{message}"}}"#)
    }

    #[tokio::test]
    async fn update_finding_sends_identifier_status_and_note() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rule = mock!(Hub::batch_update_findings).then_compute_output({
            let seen = seen.clone();
            move |r| {
                seen.lock().unwrap().push(r.clone());
                BatchUpdateFindingsOutput::builder().build()
            }
        });
        let hub = SdkFindings::new(mock_client!(
            aws_sdk_securityhub,
            RuleMode::MatchAny,
            [&rule],
            |c| c.retry_config(RetryConfig::disabled())
        ));
        hub.update_finding(FINDING, PRODUCT, WorkflowStatus::Notified, "owner alerted")
            .await
            .unwrap();
        hub.update_finding(FINDING, PRODUCT, WorkflowStatus::Resolved, &"é".repeat(600))
            .await
            .unwrap();
        hub.update_finding(FINDING, PRODUCT, WorkflowStatus::Resolved, &"a".repeat(512))
            .await
            .unwrap();
        hub.update_finding(FINDING, PRODUCT, WorkflowStatus::Resolved, "")
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4);
        for request in seen.iter() {
            let [id] = request.finding_identifiers() else {
                panic!("one identifier expected: {request:?}")
            };
            assert_eq!((id.id(), id.product_arn()), (Some(FINDING), Some(PRODUCT)));
        }
        let status = |i: usize| seen[i].workflow().and_then(|w| w.status()).cloned();
        assert_eq!(status(0), Some(HubWorkflowStatus::Notified));
        assert_eq!(status(1), Some(HubWorkflowStatus::Resolved));
        let note = |i: usize| seen[i].note().cloned();
        let first = note(0).unwrap();
        assert_eq!(
            (first.text(), first.updated_by()),
            (Some("owner alerted"), Some("cutoff"))
        );
        let cut = note(1).unwrap();
        let cut = cut.text().unwrap();
        assert_eq!(cut.chars().count(), 512);
        assert!(cut.starts_with("éé") && cut.ends_with("é…"), "{cut}");
        assert_eq!(note(2).unwrap().text(), Some("a".repeat(512).as_str()));
        assert!(note(3).is_none());
    }

    #[tokio::test]
    async fn an_unprocessed_finding_is_an_error_of_its_code() {
        let cases = [
            (Some("FindingNotFound"), ErrorKind::NotFound),
            (Some("ConcurrentUpdateError"), ErrorKind::Transient),
            (Some("InternalFailure"), ErrorKind::Transient),
            (Some("InvalidInput"), ErrorKind::Malformed),
            (None, ErrorKind::Transient),
        ];
        for (code, kind) in cases {
            let rule = mock!(Hub::batch_update_findings).then_output(move || {
                BatchUpdateFindingsOutput::builder()
                    .unprocessed_findings(
                        BatchUpdateFindingsUnprocessedFinding::builder()
                            .finding_identifier(
                                AwsSecurityFindingIdentifier::builder()
                                    .id(FINDING)
                                    .product_arn(PRODUCT)
                                    .build(),
                            )
                            .set_error_code(code.map(str::to_owned))
                            .error_message("Finding Not Found")
                            .build(),
                    )
                    .build()
            });
            let hub = SdkFindings::new(mocked!(aws_sdk_securityhub, [&rule]));
            let err = hub
                .update_finding(FINDING, PRODUCT, WorkflowStatus::Resolved, "note")
                .await
                .unwrap_err();
            assert_eq!(err.kind, kind, "{code:?}: {err}");
            assert_eq!(err.operation, "securityhub:BatchUpdateFindings");
            assert_eq!(err.context, format!("on finding `{FINDING}`"));
            assert!(
                err.message.starts_with("the finding was not updated: "),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn batch_update_findings_failures_are_classified() {
        let cases = [
            (429, "LimitExceededException", ErrorKind::Throttled),
            (500, "InternalException", ErrorKind::Transient),
            (403, "AccessDeniedException", ErrorKind::AccessDenied),
            (401, "InvalidAccessException", ErrorKind::AccessDenied),
            (400, "InvalidInputException", ErrorKind::Malformed),
        ];
        for (status, code, kind) in cases {
            let rule = mock!(Hub::batch_update_findings).then_http_response(move || {
                let headers = [
                    ("content-type", "application/json"),
                    ("x-amzn-errortype", code),
                ];
                response(status, &json_error(code, "Security Hub says no"), &headers)
            });
            let hub = SdkFindings::new(mocked!(aws_sdk_securityhub, [&rule]));
            let err = hub
                .update_finding(FINDING, PRODUCT, WorkflowStatus::Notified, "note")
                .await
                .unwrap_err();
            assert_eq!(err.kind, kind, "{code}: {err}");
            assert!(err.message.starts_with(code), "{err}");
        }
    }

    const METADATA_UID: &str = "1d24e91799652d9e17025b61d94f436b20b515b6f3cd9bda788f48c1db9cf244";

    #[tokio::test]
    async fn an_ocsf_finding_is_updated_by_its_metadata_uid_with_a_status_id_and_comment() {
        use aws_sdk_securityhub::operation::batch_update_findings_v2::BatchUpdateFindingsV2Output;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rule = mock!(Hub::batch_update_findings_v2).then_compute_output({
            let seen = seen.clone();
            move |r| {
                seen.lock().unwrap().push(r.clone());
                BatchUpdateFindingsV2Output::builder().build()
            }
        });
        let hub = SdkFindings::new(mock_client!(
            aws_sdk_securityhub,
            RuleMode::MatchAny,
            [&rule],
            |c| c.retry_config(RetryConfig::disabled())
        ));
        hub.update_ocsf_finding(METADATA_UID, WorkflowStatus::Notified, "owner alerted")
            .await
            .unwrap();
        hub.update_ocsf_finding(METADATA_UID, WorkflowStatus::Resolved, &"é".repeat(600))
            .await
            .unwrap();
        hub.update_ocsf_finding(METADATA_UID, WorkflowStatus::Notified, "")
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        for request in seen.iter() {
            assert_eq!(request.metadata_uids(), [METADATA_UID.to_owned()]);
            // Never the form that names findings some other way, never a severity.
            assert!(request.finding_identifiers().is_empty());
            assert!(request.severity_id().is_none());
        }
        assert_eq!(seen[0].status_id(), Some(2));
        assert_eq!(seen[0].comment(), Some("owner alerted"));
        assert_eq!(seen[1].status_id(), Some(4));
        let cut = seen[1].comment().unwrap();
        assert_eq!(cut.chars().count(), 512);
        assert!(cut.ends_with("é…"), "{cut}");
        assert_eq!(seen[2].comment(), None);
    }

    #[tokio::test]
    async fn an_unprocessed_ocsf_finding_is_an_error_of_its_code() {
        use aws_sdk_securityhub::operation::batch_update_findings_v2::BatchUpdateFindingsV2Output;
        use aws_sdk_securityhub::types::{
            BatchUpdateFindingsV2UnprocessedFinding,
            BatchUpdateFindingsV2UnprocessedFindingErrorCode as Code,
        };
        let cases = [
            (Some(Code::ResourceNotFoundException), ErrorKind::NotFound),
            (Some(Code::ConflictException), ErrorKind::Transient),
            (Some(Code::InternalServerException), ErrorKind::Transient),
            (Some(Code::ValidationException), ErrorKind::Malformed),
            (None, ErrorKind::Transient),
        ];
        for (code, kind) in cases {
            let label = format!("{code:?}");
            let rule = mock!(Hub::batch_update_findings_v2).then_output(move || {
                BatchUpdateFindingsV2Output::builder()
                    .unprocessed_findings(
                        BatchUpdateFindingsV2UnprocessedFinding::builder()
                            .metadata_uid(METADATA_UID)
                            .set_error_code(code.clone())
                            .error_message("no such finding")
                            .build(),
                    )
                    .build()
            });
            let hub = SdkFindings::new(mocked!(aws_sdk_securityhub, [&rule]));
            let err = hub
                .update_ocsf_finding(METADATA_UID, WorkflowStatus::Notified, "note")
                .await
                .unwrap_err();
            assert_eq!(err.kind, kind, "{label}: {err}");
            assert_eq!(err.operation, "securityhub:BatchUpdateFindingsV2");
            assert_eq!(err.context, format!("on finding `{METADATA_UID}`"));
            assert!(
                err.message.starts_with("the finding was not updated"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn batch_update_findings_v2_failures_are_classified() {
        let cases = [
            (429, "ThrottlingException", ErrorKind::Throttled),
            (500, "InternalServerException", ErrorKind::Transient),
            (409, "ConflictException", ErrorKind::Transient),
            (403, "AccessDeniedException", ErrorKind::AccessDenied),
            (400, "ValidationException", ErrorKind::Malformed),
        ];
        for (status, code, kind) in cases {
            let rule = mock!(Hub::batch_update_findings_v2).then_http_response(move || {
                let headers = [
                    ("content-type", "application/json"),
                    ("x-amzn-errortype", code),
                ];
                response(status, &json_error(code, "Security Hub says no"), &headers)
            });
            let hub = SdkFindings::new(mocked!(aws_sdk_securityhub, [&rule]));
            let err = hub
                .update_ocsf_finding(METADATA_UID, WorkflowStatus::Notified, "note")
                .await
                .unwrap_err();
            assert_eq!(err.kind, kind, "{code}: {err}");
        }
    }

    #[test]
    fn notes_are_cut_on_character_boundaries() {
        assert_eq!(note_text("short"), "short");
        let long = "ü".repeat(1000);
        let cut = note_text(&long);
        assert_eq!(cut.chars().count(), MAX_NOTE_CHARS);
        assert!(cut.ends_with("ü…"));
        assert!(matches!(note_text(&"x".repeat(512)), Cow::Borrowed(_)));
    }
}
