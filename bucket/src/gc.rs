//! Garbage collection: free every block no root reaches.
//!
//! Mark, then sweep, safe against concurrent writers in this process:
//! - mark walks the DAGs of the roots as they are when it starts, while
//!   writers go on;
//! - roots set from then on are recorded, and blocks that live
//!   [`BlockWriter`](crate::BlockWriter)s wrote or found are pinned;
//! - the sweep deletes a page at a time holding the gate exclusively; before
//!   each page it walks the roots set since the last one, and it never
//!   deletes a pinned block.
//!
//! So a block that a writer is about to name in a root survives, and one
//! that a new root names is marked before anything is deleted. Other
//! processes cannot interfere: the data directory is locked.
//!
//! The mark set is in memory (about 50 bytes per reachable block).
//!
//! A bucket opened without its key (a blind replica) cannot read index
//! nodes to follow their links; it marks through closures instead: every
//! root is kept, and a root that is an object's closure keeps every block
//! the closure lists (see [`crate::Closure`]).

use std::collections::HashSet;

use hydra_block::{Codec, Ref, Visit, WalkError, Walker};
use hydra_volume::{Direction, KeyRange, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::store::Tracking;
use crate::{Bucket, BucketError, Closure, layout};

/// What a collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GcReport {
    /// Roots the mark started from.
    pub roots: u64,
    /// Blocks kept.
    pub kept: u64,
    /// Blocks freed.
    pub freed: u64,
    /// Stored bytes freed.
    pub freed_bytes: u64,
    /// Refs that roots reach but the bucket lacks (an incomplete DAG).
    pub missing: Vec<Ref>,
}

/// Clears the collection's tracking however it ends.
struct TrackingGuard<'a>(&'a Bucket);

impl Drop for TrackingGuard<'_> {
    fn drop(&mut self) {
        let shared = &self.0.shared;
        shared
            .active
            .store(false, std::sync::atomic::Ordering::SeqCst);
        *shared.tracking() = None;
    }
}

pub(crate) fn walk_error(e: WalkError<BucketError>) -> BucketError {
    match e {
        WalkError::Load { source, .. } => source,
        WalkError::Decode { reference, source } => BucketError::Decode { reference, source },
        _ => unreachable!("WalkError has two variants"),
    }
}

impl Bucket {
    /// Without the key, only closures tell what a sealed node reaches:
    /// every root must be a raw block, a plain node, or an object whose
    /// closure is stored for that very root (as on a replica); anything
    /// else would lose its blocks.
    /// Returns the marks the objects' closures give (each object root, its
    /// closure and every block listed), read once.
    fn closure_marks(&self, roots: &[(String, Ref)]) -> Result<HashSet<Ref>, BucketError> {
        let mut marks = HashSet::new();
        for (name, r) in roots {
            if r.codec() != Codec::Node {
                continue;
            }
            let closure = match name.strip_prefix(crate::object::ROOT_PREFIX) {
                Some(key) => self
                    .root(&format!("{}{key}", crate::replica::CLOSURE_PREFIX))?
                    .map(|c| Ok::<_, BucketError>((c, self.get_stored(&c)?)))
                    .transpose()?
                    .and_then(|(c, bytes)| Some((c, Closure::decode(&bytes?).ok()?)))
                    .filter(|(_, closure)| closure.root == *r),
                None => None,
            };
            let Some((c, closure)) = closure else {
                return Err(BucketError::BlindGc {
                    bucket: self.name().clone(),
                    root: name.clone(),
                });
            };
            marks.insert(*r);
            marks.insert(c);
            marks.extend(closure.blocks);
        }
        Ok(marks)
    }
}

/// The mark: the DAG walked through decrypted nodes, or, without the key,
/// through closures.
enum Mark {
    Walk(Walker),
    Closures(HashSet<Ref>),
}

impl Mark {
    fn push(
        &mut self,
        bucket: &Bucket,
        roots: Vec<Ref>,
        report: &mut GcReport,
    ) -> Result<(), BucketError> {
        match self {
            Mark::Walk(walker) => {
                walker.push(roots);
                walker
                    .run(
                        |r| bucket.try_get(r),
                        |v| {
                            if let Visit::Missing(r) = v {
                                report.missing.push(r)
                            }
                        },
                    )
                    .map_err(walk_error)
            }
            Mark::Closures(seen) => {
                for r in roots {
                    if seen.contains(&r) {
                        continue;
                    }
                    match r.codec() {
                        Codec::Raw => {
                            seen.insert(r);
                            match bucket.get_stored(&r)? {
                                Some(bytes) => {
                                    if let Ok(c) = Closure::decode(&bytes) {
                                        seen.extend(c.blocks);
                                    }
                                }
                                None => report.missing.push(r),
                            }
                        }
                        // Plain nodes are readable without the key: walk
                        // through them (raw blocks they reach are leaves).
                        Codec::PlainNode => {
                            let mut walker = Walker::with_seen([r], std::mem::take(seen));
                            let run = walker.run(
                                |r| bucket.try_get(r),
                                |v| {
                                    if let Visit::Missing(r) = v {
                                        report.missing.push(r)
                                    }
                                },
                            );
                            *seen = walker.into_seen();
                            run.map_err(walk_error)?;
                        }
                        // What a sealed node reaches only its closure
                        // tells (see `closure_marks`).
                        Codec::Node => {
                            seen.insert(r);
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn contains(&self, r: &Ref) -> bool {
        match self {
            Mark::Walk(walker) => walker.seen().contains(r),
            Mark::Closures(seen) => seen.contains(r),
        }
    }
}

impl Bucket {
    /// Frees every block that no root of this bucket reaches.
    pub fn gc(&self) -> Result<GcReport, BucketError> {
        let shared = self.shared.clone();
        let _one_at_a_time = shared.collecting();
        {
            *shared.tracking() = Some(Tracking {
                num: self.num(),
                new_roots: Vec::new(),
            });
            shared
                .active
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let _guard = TrackingGuard(self);

        let mut report = GcReport::default();
        let named = self.roots("").collect::<Result<Vec<_>, _>>()?;
        report.roots = named.len() as u64;
        let mut mark = if self.require_key().is_ok() {
            Mark::Walk(Walker::new([]))
        } else {
            Mark::Closures(self.closure_marks(&named)?)
        };
        let roots = named.into_iter().map(|(_, r)| r).collect();
        mark.push(self, roots, &mut report)?;

        let mut range = KeyRange::prefix(&layout::blocks_of(self.num()));
        loop {
            let page = self
                .volume()
                .scan_page(&range, Direction::Forward, Default::default())?;
            let Some((last, _)) = page.last() else {
                break;
            };
            range.start = std::ops::Bound::Excluded(last.clone());

            let _exclusive = shared.write_gate();
            let new_roots = shared
                .tracking()
                .as_mut()
                .map(|t| std::mem::take(&mut t.new_roots))
                .unwrap_or_default();
            mark.push(self, new_roots, &mut report)?;
            let pins = shared.pins();
            let mut batch = WriteBatch::new();
            for (k, v) in page {
                let Some((_, r)) = layout::ref_of_block_key(&k) else {
                    continue;
                };
                if mark.contains(&r) || pins.contains_key(&(self.num(), r)) {
                    report.kept += 1;
                } else {
                    report.freed += 1;
                    report.freed_bytes += v.len() as u64;
                    batch.delete(k);
                }
            }
            drop(pins);
            if !batch.is_empty() {
                self.volume().commit(batch)?;
            }
        }
        Ok(report)
    }
}
