//! [`BucketName`]: a validated bucket id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::BucketError;

/// Longest bucket name.
pub const MAX_BUCKET_NAME: usize = 64;

/// A bucket's name: 1 to 64 characters of `a-z 0-9 . _ -`, starting with
/// a letter or digit. Lowercase only, so that names are safe as file and
/// URL path segments and never differ by case alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BucketName(String);

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for BucketName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some("^[a-z0-9][a-z0-9._-]{0,63}$"))
            .description(Some(
                "1 to 64 characters of a-z 0-9 . _ -, starting with a letter or digit",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for BucketName {}

impl BucketName {
    /// The bucket that exists in every store, used when none is named.
    pub fn default_bucket() -> BucketName {
        BucketName("default".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for BucketName {
    type Err = BucketError;

    fn from_str(s: &str) -> Result<BucketName, BucketError> {
        let bad = |reason| BucketError::BadName {
            name: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.len() > MAX_BUCKET_NAME {
            return Err(bad("it is longer than 64 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return Err(bad("use only a-z, 0-9, '.', '_' and '-'"));
        }
        if !s.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(bad("it must start with a letter or digit"));
        }
        Ok(BucketName(s.to_owned()))
    }
}

impl TryFrom<String> for BucketName {
    type Error = BucketError;
    fn try_from(s: String) -> Result<BucketName, BucketError> {
        s.parse()
    }
}

impl From<BucketName> for String {
    fn from(n: BucketName) -> String {
        n.0
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        for ok in ["default", "a", "photos-2026.v1", "x_y", &"a".repeat(64)] {
            assert!(ok.parse::<BucketName>().is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "it is empty"),
            ("Photos", "use only a-z, 0-9, '.', '_' and '-'"),
            ("a/b", "use only a-z, 0-9, '.', '_' and '-'"),
            ("-a", "it must start with a letter or digit"),
            (&"a".repeat(65), "it is longer than 64 characters"),
        ] {
            let e = bad.parse::<BucketName>().unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("bucket name {bad:?} is invalid: {why}")
            );
        }
    }
}
