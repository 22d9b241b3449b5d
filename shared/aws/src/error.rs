//! The small error vocabulary every AWS adapter maps into: what went wrong
//! ([`ErrorKind`], with the one table of every service's error codes,
//! [`ErrorKind::from_code`]) and on what ([`AwsError`]). [`classify`] maps every SDK
//! failure into it; the in-memory fakes make theirs with `InjectedFailures` (feature
//! `test-support`).

use std::error::Error as StdError;
use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Service and SDK messages are bounded in our errors: some echo parts of the input.
const MAX_MESSAGE: usize = 512;

/// What went wrong, grouped by what the caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Rate exceeded (`Throttling`, `RequestLimitExceeded`…). Retryable.
    Throttled,
    /// 5xx, timeouts, dropped connections, `ConcurrentModification`. Retryable.
    Transient,
    /// The caller lacks permission (or the member role cannot be assumed). Fatal.
    AccessDenied,
    /// The principal, policy or key does not exist. Fatal.
    NotFound,
    /// IAM refuses changes to this entity (service-linked roles). Fatal.
    Unmodifiable,
    /// A quota would be exceeded (`LimitExceeded`: policy size, attachments…). Fatal.
    Quota,
    /// IAM rejected what we sent (`MalformedPolicyDocument`, `InvalidInput`). Fatal.
    Malformed,
}

impl ErrorKind {
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "throttled",
            ErrorKind::Transient => "transient",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Unmodifiable => "unmodifiable",
            ErrorKind::Quota => "quota",
            ErrorKind::Malformed => "malformed",
        }
    }

    /// Classifies an AWS error code (the `Code` of a query-protocol error, the
    /// `__type` of a JSON one, or the code of a rejected batch entry) of any service
    /// cutoff calls: the one table. Unknown codes are fatal: retrying what we do not
    /// understand only delays the outcome.
    pub fn from_code(code: &str) -> Self {
        match code {
            "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "SlowDown"
            | "PriorRequestNotComplete"
            // SNS (awsQuery codes), SQS (JSON and query-compatible codes), KMS behind them.
            | "Throttled"
            | "KMSThrottling"
            | "KmsThrottled"
            | "KMS.ThrottlingException" => ErrorKind::Throttled,
            "ServiceFailure"
            | "ServiceFailureException"
            | "InternalFailure"
            | "InternalError"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "ConcurrentModification"
            | "ConcurrentModificationException"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "IDPCommunicationError"
            // EventBridge and Security Hub 500s; Security Hub per-finding conflicts
            // (ASFF's, and the OCSF API's codes for the same).
            | "InternalException"
            | "ConcurrentUpdateError"
            | "InternalServerException"
            | "ConflictException" => ErrorKind::Transient,
            "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "SignatureDoesNotMatch"
            | "RegionDisabledException"
            // SNS; Security Hub when it is not enabled or the caller is not allowed;
            // EventBridge entries whose source or detail-type the caller may not use.
            | "AuthorizationError"
            | "KMSAccessDenied"
            | "KmsAccessDenied"
            | "KMS.AccessDeniedException"
            | "InvalidAccessException"
            | "NotAuthorizedForSourceException"
            | "NotAuthorizedForDetailTypeException" => ErrorKind::AccessDenied,
            "NoSuchEntity"
            | "NoSuchEntityException"
            | "ResourceNotFoundException"
            // SNS topic, SQS queue, Security Hub finding.
            | "NotFound"
            | "QueueDoesNotExist"
            | "AWS.SimpleQueueService.NonExistentQueue"
            | "FindingNotFound" => ErrorKind::NotFound,
            "UnmodifiableEntity" | "UnmodifiableEntityException" => ErrorKind::Unmodifiable,
            "LimitExceeded"
            | "LimitExceededException"
            | "PackedPolicyTooLarge"
            | "OverLimit"
            | "FindingSizeExceeded" => ErrorKind::Quota,
            _ => ErrorKind::Malformed,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// AWS's kinds are the first of the outcome's failure kinds.
impl From<ErrorKind> for cutoff_domain::outcome::FailureKind {
    fn from(kind: ErrorKind) -> Self {
        use cutoff_domain::outcome::FailureKind;
        match kind {
            ErrorKind::Throttled => FailureKind::Throttled,
            ErrorKind::Transient => FailureKind::Transient,
            ErrorKind::AccessDenied => FailureKind::AccessDenied,
            ErrorKind::NotFound => FailureKind::NotFound,
            ErrorKind::Unmodifiable => FailureKind::Unmodifiable,
            ErrorKind::Quota => FailureKind::Quota,
            ErrorKind::Malformed => FailureKind::Malformed,
        }
    }
}

/// An AWS call that failed, with what was being done. Messages never carry
/// credentials: adapters build them from the operation, the entity and the service's
/// error message only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} {context}: {kind}: {message}")]
pub struct AwsError {
    pub kind: ErrorKind,
    /// The API operation, e.g. `iam:PutRolePolicy`.
    pub operation: &'static str,
    /// The entity, e.g. "on role `payments-api`".
    pub context: String,
    pub message: String,
}

impl AwsError {
    /// The error as an outcome records it: its kind, and what happened.
    pub fn to_outcome_error(&self) -> cutoff_domain::outcome::OutcomeError {
        cutoff_domain::outcome::OutcomeError {
            kind: self.kind.into(),
            message: self.to_string(),
        }
    }

    pub fn new(
        kind: ErrorKind,
        operation: &'static str,
        context: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            operation,
            context: context.into(),
            message: message.into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

/// Maps an SDK failure to an [`AwsError`] of `operation` (e.g. `iam:GetRole`) on
/// `context` (e.g. "on role `payments-api` in 111122223333").
///
/// Service errors are classified by their code ([`ErrorKind::from_code`]); when the
/// code is missing or unknown the HTTP status decides (429 throttled, 5xx transient).
/// Timeouts, dropped connections and unreadable responses are transient; a request
/// the SDK could not build is malformed. The message is the service's code and
/// message or the SDK's error chain, bounded: never a request body or credentials.
pub fn classify<E>(
    err: &SdkError<E, HttpResponse>,
    operation: &'static str,
    context: String,
) -> AwsError
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    let (kind, message) = match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code();
            let kind = match code.map(ErrorKind::from_code) {
                _ if status == 429 => ErrorKind::Throttled,
                Some(ErrorKind::Malformed) | None if status >= 500 => ErrorKind::Transient,
                Some(kind) => kind,
                // A success status without a parseable body is a garbled response.
                None if (200..300).contains(&status) => ErrorKind::Transient,
                None if status == 403 => ErrorKind::AccessDenied,
                // Not an AWS answer (a proxy, a wrong endpoint URL): IAM always sends a
                // code, so a bare 404 says nothing about the entity.
                None => ErrorKind::Malformed,
            };
            let message = match (code, service.err().message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_owned(),
                (None, Some(message)) => message.to_owned(),
                (None, None) => format!("http status {status} without an error code"),
            };
            (kind, message)
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            (ErrorKind::Transient, error_chain(err))
        }
        SdkError::DispatchFailure(failure) => {
            // A "user" connector error is a bad request or configuration (an invalid
            // endpoint URL): retrying cannot fix it. Everything else (refused or reset
            // connections, TLS and DNS hiccups, a credential provider that did not
            // answer) may pass.
            let kind = if failure.is_user() {
                ErrorKind::Malformed
            } else {
                ErrorKind::Transient
            };
            (kind, error_chain(err))
        }
        SdkError::ConstructionFailure(_) => (ErrorKind::Malformed, error_chain(err)),
        // `SdkError` is non-exhaustive; a new variant is something we do not understand.
        _ => (ErrorKind::Malformed, error_chain(err)),
    };
    AwsError::new(kind, operation, context, bound(message))
}

/// "dispatch failure: io error: …": the error and its sources, which carry the
/// useful part (connection refused, timed out…).
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(next) = source {
        let text = next.to_string();
        // Wrappers often repeat their source's text; say it once.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = next.source();
    }
    out
}

/// Cuts an error message to `MAX_MESSAGE` bytes on a character boundary.
pub(crate) fn bound(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

/// "code: message" of a rejected batch entry.
pub(crate) fn entry_message(code: Option<&str>, message: Option<&str>) -> String {
    match (code, message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        (None, Some(message)) => message.to_owned(),
        (None, None) => "no error code".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// For the in-memory fakes of each service (feature `test-support`)
// ---------------------------------------------------------------------------------------

/// Failures to inject, per action, in the order they are to happen; shared by the
/// fakes.
#[cfg(any(test, feature = "test-support"))]
#[derive(Debug, Default)]
pub struct InjectedFailures(
    std::collections::HashMap<&'static str, std::collections::VecDeque<ErrorKind>>,
);

#[cfg(any(test, feature = "test-support"))]
impl InjectedFailures {
    /// The next calls of `action` fail with `kinds`, one each, in order.
    pub fn plan(&mut self, action: &'static str, kinds: &[ErrorKind]) {
        self.0
            .entry(action)
            .or_default()
            .extend(kinds.iter().copied());
    }

    /// The failure planned for this call of `action`, if any (`context` says where).
    pub(crate) fn take(&mut self, action: &'static str, context: &str) -> Result<(), AwsError> {
        match self
            .0
            .get_mut(action)
            .and_then(std::collections::VecDeque::pop_front)
        {
            Some(kind) => Err(AwsError::new(kind, action, context, "injected failure")),
            None => Ok(()),
        }
    }
}

/// What a fake answers for an entity it does not hold.
#[cfg(any(test, feature = "test-support"))]
pub(crate) fn not_found(action: &'static str, what: &str) -> AwsError {
    AwsError::new(ErrorKind::NotFound, action, what.to_owned(), "not found")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iam::operation::get_role::GetRoleError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    fn http_status(status: u16, body: &'static str) -> HttpResponse {
        HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
    }

    #[test]
    fn codes_map_to_kinds_and_retryability() {
        for (code, kind) in [
            ("Throttling", ErrorKind::Throttled),
            ("ServiceFailure", ErrorKind::Transient),
            ("ConcurrentModification", ErrorKind::Transient),
            ("AccessDenied", ErrorKind::AccessDenied),
            ("NoSuchEntity", ErrorKind::NotFound),
            ("UnmodifiableEntity", ErrorKind::Unmodifiable),
            ("LimitExceeded", ErrorKind::Quota),
            ("MalformedPolicyDocument", ErrorKind::Malformed),
            ("SomethingNew", ErrorKind::Malformed),
            // The messaging services' codes are in the same table.
            ("Throttled", ErrorKind::Throttled),
            ("KMS.ThrottlingException", ErrorKind::Throttled),
            ("InternalException", ErrorKind::Transient),
            ("AuthorizationError", ErrorKind::AccessDenied),
            ("NotAuthorizedForSourceException", ErrorKind::AccessDenied),
            (
                "AWS.SimpleQueueService.NonExistentQueue",
                ErrorKind::NotFound,
            ),
            ("FindingNotFound", ErrorKind::NotFound),
            ("OverLimit", ErrorKind::Quota),
        ] {
            assert_eq!(ErrorKind::from_code(code), kind, "{code}");
        }
        assert!(ErrorKind::Throttled.is_retryable() && ErrorKind::Transient.is_retryable());
        assert!(!ErrorKind::AccessDenied.is_retryable() && !ErrorKind::Quota.is_retryable());
    }

    #[test]
    fn each_aws_kind_is_the_outcome_kind_of_the_same_name_and_never_permanent() {
        use cutoff_domain::outcome::FailureKind;
        for kind in [
            ErrorKind::Throttled,
            ErrorKind::Transient,
            ErrorKind::AccessDenied,
            ErrorKind::NotFound,
            ErrorKind::Unmodifiable,
            ErrorKind::Quota,
            ErrorKind::Malformed,
        ] {
            let outcome_kind = FailureKind::from(kind);
            assert_eq!(outcome_kind.as_str(), kind.as_str());
            // What AWS answered may change on a later attempt (a fixed permission).
            assert!(!outcome_kind.is_permanent(), "{kind:?}");
        }
    }

    #[test]
    fn transport_failures_are_transient_and_construction_failures_malformed() {
        type E = SdkError<GetRoleError, HttpResponse>;
        let ctx = || "on role `x` in 111122223333".to_owned();
        let cases: Vec<(E, ErrorKind, &str)> = vec![
            (
                SdkError::timeout_error("operation attempt timeout of 10s"),
                ErrorKind::Transient,
                "timed out",
            ),
            (
                SdkError::dispatch_failure(ConnectorError::io(
                    "Connection refused (os error 111)".into(),
                )),
                ErrorKind::Transient,
                "Connection refused",
            ),
            (
                SdkError::dispatch_failure(ConnectorError::timeout("connect timeout".into())),
                ErrorKind::Transient,
                "connect timeout",
            ),
            (
                SdkError::dispatch_failure(ConnectorError::user("invalid endpoint URL".into())),
                ErrorKind::Malformed,
                "invalid endpoint URL",
            ),
            (
                SdkError::response_error("unexpected end of body", http_status(200, "<GetRo")),
                ErrorKind::Transient,
                "unexpected end of body",
            ),
            (
                SdkError::construction_failure("role_name was not specified"),
                ErrorKind::Malformed,
                "role_name was not specified",
            ),
        ];
        for (err, kind, text) in cases {
            let mapped = classify(&err, "iam:GetRole", ctx());
            assert_eq!(mapped.kind, kind, "{mapped}");
            assert!(mapped.message.contains(text), "{mapped}");
            assert_eq!(mapped.context, ctx());
        }
    }

    #[test]
    fn long_messages_are_bounded() {
        let err: SdkError<GetRoleError, HttpResponse> =
            SdkError::construction_failure("é".repeat(2000));
        let mapped = classify(&err, "iam:GetRole", String::new());
        assert!(mapped.message.len() <= MAX_MESSAGE + '…'.len_utf8());
    }
}
