//! One error type for HTTP answers, and the one mapping from library
//! errors to status codes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hydra_bucket::{BucketError, ErrorKind};
use hydra_eventlog::Error as LogError;
use serde::Serialize;

/// An HTTP error: a status and an [`ErrorBody`].
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The stream's version, when an append or delete expected another.
    pub actual_version: Option<Option<u64>>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in one line.
    pub error: String,
    /// Only on a version conflict (409): the stream's last version, null
    /// when it does not exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub actual_version: Option<Option<u64>>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            actual_version: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            actual_version: self.actual_version,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> ApiError {
        let mut err = ApiError::new(status(e.kind()), e.to_string());
        if let LogError::WrongExpectedVersion { actual, .. } = &e {
            err.actual_version = Some(*actual);
        }
        err
    }
}

impl From<BucketError> for ApiError {
    fn from(e: BucketError) -> ApiError {
        ApiError::new(status(e.kind()), e.to_string())
    }
}

/// The one mapping of kinds of failure to statuses (and `hydra-client`
/// maps them back).
fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::WrongExpectedVersion | ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Gone => StatusCode::GONE,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Other => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<hydra_eventlog::StreamIdError> for ApiError {
    fn from(e: hydra_eventlog::StreamIdError) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

impl From<crate::access::TokenError> for ApiError {
    fn from(e: crate::access::TokenError) -> ApiError {
        use crate::access::TokenError as T;
        let status = match &e {
            T::BadName(_) | T::NoScope | T::BadScope(_) => StatusCode::BAD_REQUEST,
            T::Exists(_) => StatusCode::CONFLICT,
            T::NotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
