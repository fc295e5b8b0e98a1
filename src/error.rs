//! The service's one error type and the ONE table that maps it to a gRPC
//! code and an HTTP status, so no protocol can drift from another.

use http::StatusCode;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// One invalid field of a request, as `google.rpc.BadRequest.FieldViolation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// The most field violations one error lists.
pub const MAX_VIOLATIONS: usize = 20;

/// A violation's description, cut to a bounded length.
fn short(description: &str) -> String {
    const MAX_CHARS: usize = 300;
    match description.char_indices().nth(MAX_CHARS) {
        Some((at, _)) => format!("{}…", &description[..at]),
        None => description.to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    InvalidArgument {
        message: String,
        violations: Vec<FieldViolation>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    ResourceExhausted(String),
    /// A usage limit is reached: which one (`google.rpc.QuotaFailure`), and
    /// when trying again can succeed (`google.rpc.RetryInfo`; none when
    /// waiting doesn't help).
    #[error("{message}")]
    OverLimit {
        message: String,
        /// Whose limit: `user:42`, `class:3`.
        subject: String,
        /// Which limit, in words.
        limit: String,
        retry_after: Option<std::time::Duration>,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    DeadlineExceeded(String),
    /// A bug or an unexpected backend failure. The cause is logged where the
    /// error is turned into a status; the client only sees "internal error".
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    /// A request whose fields break the rules; the message sums them up.
    /// At most `MAX_VIOLATIONS` are kept, with a last line saying how many
    /// more there were, so an error's size doesn't grow with the input.
    pub fn invalid(mut violations: Vec<FieldViolation>) -> Self {
        let more = violations.len().saturating_sub(MAX_VIOLATIONS);
        violations.truncate(MAX_VIOLATIONS);
        for v in &mut violations {
            v.description = short(&v.description);
        }
        if more > 0 {
            violations.push(FieldViolation::new(
                "",
                format!("and {more} more violations not listed"),
            ));
        }
        let message = violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("; ");
        Error::InvalidArgument {
            message: format!("invalid request: {message}"),
            violations,
        }
    }

    pub fn invalid_field(field: &str, description: impl Into<String>) -> Self {
        Self::invalid(vec![FieldViolation::new(field, description)])
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Error::Internal(cause.into())
    }

    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument { .. } => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Aborted(_) => Code::Aborted,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::ResourceExhausted(_) | Error::OverLimit { .. } => Code::ResourceExhausted,
            Error::Unavailable(_) => Code::Unavailable,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::Internal(_) => Code::Internal,
        }
    }
}

/// The grpc-gateway mapping from a gRPC code to an HTTP status: the one
/// table every protocol answers from.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        // 499 "Client Closed Request" has no constant in `http`.
        Code::Cancelled => StatusCode::from_u16(499).expect("499 is a valid status"),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        let code = err.code();
        match err {
            Error::InvalidArgument {
                message,
                violations,
            } => {
                let mut details = ErrorDetails::new();
                for v in violations {
                    details.add_bad_request_violation(v.field, v.description);
                }
                tonic::Status::with_error_details(code, message, details)
            }
            Error::OverLimit {
                message,
                subject,
                limit,
                retry_after,
            } => {
                let mut details = ErrorDetails::new();
                details.add_quota_failure_violation(subject, limit);
                if let Some(delay) = retry_after {
                    details.set_retry_info(Some(delay));
                }
                tonic::Status::with_error_details(code, message, details)
            }
            Error::Internal(cause) => {
                // The cause may hold SQL or driver text: log it, never send it.
                tracing::error!(error = ?cause, "internal error");
                tonic::Status::new(code, "internal error")
            }
            other => tonic::Status::new(code, other.to_string()),
        }
    }
}

/// The whole seconds a status's `google.rpc.RetryInfo` asks a client to
/// wait, rounded up: an HTTP reply's `Retry-After`.
pub fn retry_after_secs(status: &tonic::Status) -> Option<u64> {
    let delay = status.get_error_details().retry_info()?.retry_delay?;
    Some(delay.as_secs() + u64::from(delay.subsec_nanos() > 0))
}

/// Database failures, as `store::failure` sorts them.
impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        use crate::store::failure::{Failure, classify};
        let failure = classify(&err);
        if failure != Failure::Other {
            tracing::warn!(error = %err, ?failure, "database failure");
        }
        match failure {
            Failure::Race => Error::Aborted(
                "the change kept conflicting with concurrent changes; try again".into(),
            ),
            Failure::Busy | Failure::Unreachable => {
                Error::Unavailable("the database is unavailable; try again shortly".into())
            }
            Failure::TimedOut => {
                Error::DeadlineExceeded("the database took too long; try again".into())
            }
            Failure::Other => Error::Internal(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_grpc_gateway() {
        let cases = [
            (Code::InvalidArgument, 400),
            (Code::FailedPrecondition, 400),
            (Code::OutOfRange, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::ResourceExhausted, 429),
            (Code::Cancelled, 499),
            (Code::Unimplemented, 501),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Internal, 500),
            (Code::Unknown, 500),
            (Code::DataLoss, 500),
        ];
        for (code, status) in cases {
            assert_eq!(http_status(code).as_u16(), status, "{code:?}");
        }
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let status: tonic::Status =
            Error::internal(anyhow::anyhow!("syntax error near SELECT")).into();
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }

    #[test]
    fn limits_carry_quota_failure_and_retry_info() {
        let status: tonic::Status = Error::OverLimit {
            message: "over".into(),
            subject: "user:42".into(),
            limit: "prompts per minute".into(),
            retry_after: Some(std::time::Duration::from_millis(1500)),
        }
        .into();
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = status.get_error_details();
        let quota = details.quota_failure().expect("quota failure detail");
        assert_eq!(quota.violations[0].subject, "user:42");
        assert_eq!(retry_after_secs(&status), Some(2));
        assert_eq!(retry_after_secs(&tonic::Status::internal("x")), None);
    }

    #[test]
    fn invalid_argument_carries_bad_request() {
        let status: tonic::Status = Error::invalid_field("title", "too long").into();
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request detail");
        assert_eq!(bad.field_violations[0].field, "title");
    }
}
