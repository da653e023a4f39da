//! [`StreamId`]: a validated stream name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest stream id, in bytes.
pub const MAX_STREAM_ID: usize = 256;

/// A stream's id: 1 to 256 bytes of UTF-8 without control characters,
/// not starting with `$` (kept for system streams such as `$all`).
/// Everything else is allowed, so ids from other stores (`order-42`,
/// `user/7`, `Invoice:2026:001`) carry over unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

/// A stream id in the OpenAPI document: JSON Schema counts characters, so
/// the 256-byte limit shows as 256 characters (ids of multi-byte
/// characters are refused sooner).
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for StreamId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_STREAM_ID))
            .pattern(Some(
                r"^[^$\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
            ))
            .description(Some(
                "1 to 256 bytes of UTF-8 without control characters, not starting with $",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for StreamId {}

/// Why a string is not a stream id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream id {id:?} is invalid: {reason}")]
pub struct StreamIdError {
    pub id: String,
    pub reason: &'static str,
}

impl StreamId {
    pub fn new(id: impl Into<String>) -> Result<StreamId, StreamIdError> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("it is empty")
        } else if id.len() > MAX_STREAM_ID {
            Some("it is longer than 256 bytes")
        } else if id.starts_with('$') {
            Some("ids starting with '$' are reserved for system streams")
        } else if id.chars().any(char::is_control) {
            Some("it contains a control character")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(StreamIdError { id, reason }),
            None => Ok(StreamId(id)),
        }
    }

    /// An id read back from the store, where it was validated on the way
    /// in: reads skip the check.
    pub(crate) fn trusted(id: String) -> StreamId {
        StreamId(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for StreamId {
    type Err = StreamIdError;
    fn from_str(s: &str) -> Result<StreamId, StreamIdError> {
        StreamId::new(s)
    }
}

impl TryFrom<String> for StreamId {
    type Error = StreamIdError;
    fn try_from(s: String) -> Result<StreamId, StreamIdError> {
        StreamId::new(s)
    }
}

impl From<StreamId> for String {
    fn from(s: StreamId) -> String {
        s.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        for ok in [
            "a",
            "order-42",
            "user/7",
            "Invoice:2026:001",
            "ünïcödé",
            &"x".repeat(256),
        ] {
            assert!(StreamId::new(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "it is empty"),
            (
                "$all",
                "ids starting with '$' are reserved for system streams",
            ),
            ("a\nb", "it contains a control character"),
            (&"x".repeat(257), "it is longer than 256 bytes"),
        ] {
            let e = StreamId::new(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("stream id {bad:?} is invalid: {why}")
            );
        }
    }
}
