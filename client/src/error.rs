//! The client's error: the daemon's one-line message and its kind.

use hydra_bucket::{ErrorKind, StoreError};
use reqwest::{Response, StatusCode};

/// A call that failed: refused by the daemon (its message, and a kind
/// from its status), or the daemon could not be reached.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    status: Option<u16>,
    message: String,
    actual_version: Option<Option<u64>>,
}

/// The body of the daemon's error answers.
#[derive(serde::Deserialize)]
struct Refusal {
    error: String,
    /// Present on a version conflict.
    #[serde(default, deserialize_with = "present")]
    actual_version: Option<Option<u64>>,
}

/// A field that is there, even as `null`, as `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The daemon's HTTP status, when it answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// On a version conflict: the stream's last version (`None` when it
    /// does not exist).
    pub fn actual_version(&self) -> Option<Option<u64>> {
        self.actual_version
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::refused(ErrorKind::Invalid, message)
    }

    /// A call refused here, before or without the daemon's answer.
    pub(crate) fn refused(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            status: None,
            message: message.into(),
            actual_version: None,
        }
    }

    /// An answer the client cannot read.
    pub(crate) fn garbled(what: &str, reason: impl std::fmt::Display) -> Error {
        Error::refused(
            ErrorKind::Other,
            format!("the daemon's {what} is unreadable: {reason}"),
        )
    }

    pub(crate) fn transport(base: &str, e: reqwest::Error) -> Error {
        // The cause chain says what failed (refused, reset, TLS).
        let mut message = format!("cannot reach the daemon at {base}");
        let mut cause: Option<&dyn std::error::Error> = Some(&e);
        while let Some(c) = cause {
            message.push_str(&format!(": {c}"));
            cause = c.source();
        }
        Error {
            kind: ErrorKind::Unavailable,
            status: None,
            message,
            actual_version: None,
        }
    }

    /// The daemon's refusal.
    pub(crate) async fn of_answer(r: Response) -> Error {
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        let (message, actual_version) = match serde_json::from_str::<Refusal>(&text) {
            Ok(refusal) => (refusal.error, refusal.actual_version),
            Err(_) => (format!("the daemon answered {status}: {text}"), None),
        };
        let kind = match status {
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::Invalid,
            StatusCode::NOT_FOUND => ErrorKind::NotFound,
            StatusCode::CONFLICT if actual_version.is_some() => ErrorKind::WrongExpectedVersion,
            StatusCode::CONFLICT => ErrorKind::Conflict,
            StatusCode::GONE => ErrorKind::Gone,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Forbidden,
            StatusCode::SERVICE_UNAVAILABLE => ErrorKind::Unavailable,
            _ => ErrorKind::Other,
        };
        Error {
            kind,
            status: Some(status.as_u16()),
            message,
            actual_version,
        }
    }
}

impl StoreError for Error {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}
