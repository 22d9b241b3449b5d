//! The small error vocabulary every AWS adapter maps into.

use std::fmt;

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
            // EventBridge and Security Hub 500s; Security Hub per-finding conflicts.
            | "InternalException"
            | "ConcurrentUpdateError" => ErrorKind::Transient,
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
            kind: self.kind.as_str().to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
