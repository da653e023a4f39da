//! [`BucketConfig`]: a bucket's persisted, versioned configuration.

use serde::{Deserialize, Serialize};

use crate::{BucketName, Transforms};

/// A bucket's configuration, stored as JSON in the volume so that later
/// fields (policies) can be added without a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BucketConfig {
    pub id: BucketName,
    /// Raised by every update; an update must give a higher one, so that
    /// two writers of the same config cannot silently overwrite each other.
    pub version: u64,
    #[serde(default)]
    pub transforms: Transforms,
    #[serde(default)]
    pub policies: Policies,
    /// Internal number used in this volume's keys (not portable).
    #[serde(rename = "internal_id")]
    pub(crate) num: u32,
}

impl BucketConfig {
    /// The bucket's internal number in this volume's keys: what other
    /// layers record to name it compactly (not portable across volumes).
    pub fn num(&self) -> u32 {
        self.num
    }
}

/// Policies attached to a bucket. Empty for now: replication settings
/// (whom a replica follows, whose manifests it accepts, who may read it)
/// live in the daemon's config, since they name peers and addresses of one
/// deployment rather than properties of the stored data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Policies {}

/// A change to a bucket's config, applied by
/// [`Store::update_bucket`](crate::Store::update_bucket).
#[derive(Debug, Clone, Default)]
pub struct BucketUpdate {
    /// The new version; must exceed the current one.
    pub version: u64,
    /// A new zstd level (only for a bucket created with compression).
    pub zstd_level: Option<i32>,
    pub policies: Option<Policies>,
}
