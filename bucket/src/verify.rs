//! Volume-wide checks: re-hash every stored block.

use hydra_block::Ref;
use hydra_volume::{Direction, KeyRange};
use serde::{Deserialize, Serialize};

use crate::{BucketError, BucketName, BucketStats, Store, layout};

/// A block whose stored bytes do not hash to its ref.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Corruption {
    /// The bucket it belongs to (`None` for a block of a removed bucket).
    pub bucket: Option<BucketName>,
    pub reference: Ref,
    /// What the stored bytes hash to now.
    pub actual: Ref,
}

/// What [`Store::verify`] checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyReport {
    pub blocks: u64,
    pub stored_bytes: u64,
    pub corrupt: Vec<Corruption>,
}

impl Store {
    /// Re-hashes every block of every bucket. Needs no keys: refs cover the
    /// stored bytes. `progress` is called with the blocks checked so far.
    pub fn verify(&self, mut progress: impl FnMut(u64)) -> Result<VerifyReport, BucketError> {
        let names = self.names_by_num()?;
        let mut report = VerifyReport::default();
        for e in self
            .volume()
            .scan(KeyRange::prefix(layout::BLOCK_PREFIX), Direction::Forward)
        {
            let (k, v) = e?;
            let Some((num, r)) = layout::ref_of_block_key(&k) else {
                continue;
            };
            report.blocks += 1;
            report.stored_bytes += v.len() as u64;
            if !r.matches(&v) {
                report.corrupt.push(Corruption {
                    bucket: names.get(&num).cloned(),
                    reference: r,
                    actual: Ref::of(r.codec(), &v),
                });
            }
            progress(report.blocks);
        }
        Ok(report)
    }

    /// Block count and stored bytes over every bucket.
    pub fn block_stats(&self) -> Result<BucketStats, BucketError> {
        let mut s = BucketStats::default();
        for e in self
            .volume()
            .scan(KeyRange::prefix(layout::BLOCK_PREFIX), Direction::Forward)
        {
            s.blocks += 1;
            s.stored_bytes += e?.1.len() as u64;
        }
        Ok(s)
    }
}
