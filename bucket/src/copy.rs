//! Copying a DAG between buckets, and checking that a DAG is whole.

use hydra_block::{Codec, Ref, Visit, Walker};
use serde::Serialize;

use crate::gc::walk_error;
use crate::{Bucket, BucketError};

/// What [`Bucket::copy_dag`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    /// Blocks visited in the source.
    pub blocks: u64,
    /// Blocks the destination did not have and now has.
    pub written: u64,
}

impl Bucket {
    /// Copies every block reachable from `root` into `dest`, re-applying
    /// `dest`'s transforms, and returns the root's ref there (it differs
    /// when the two buckets transform differently). Needs the keys of
    /// both buckets when they are encrypted. A missing block is an error.
    pub fn copy_dag(&self, root: Ref, dest: &Bucket) -> Result<(Ref, CopyReport), BucketError> {
        if self.config().transforms == dest.config().transforms {
            // Same transforms: stored bytes and refs carry over unchanged.
            let mut report = CopyReport::default();
            let mut w = dest.writer();
            let mut walker = Walker::new([root]);
            while let Some(v) = walker.next(|r| self.try_get(r)) {
                let r = match v.map_err(walk_error)? {
                    Visit::Found(r) => r,
                    Visit::Missing(r) => return Err(self.missing(r)),
                };
                let stored = self.get_stored(&r)?.ok_or_else(|| self.missing(r))?;
                w.add_stored(r, stored)?;
                report.blocks += 1;
            }
            report.written = w.flush()?.written;
            return Ok((root, report));
        }
        // Different transforms: refs change, so rebuild bottom-up.
        let mut report = CopyReport::default();
        let new_root = self.copy_node(root, dest, &mut report)?;
        Ok((new_root, report))
    }

    fn copy_node(
        &self,
        r: Ref,
        dest: &Bucket,
        report: &mut CopyReport,
    ) -> Result<Ref, BucketError> {
        // Iterative post-order: children are copied before their parent.
        let mut stack: Vec<Pending> = Vec::new();
        let mut done: std::collections::HashMap<Ref, Ref> = Default::default();
        let push = |r: Ref, stack: &mut Vec<_>| -> Result<(), BucketError> {
            let plain = self.try_get(&r)?.ok_or_else(|| self.missing(r))?;
            let links =
                hydra_block::links(r.codec(), &plain).map_err(|source| BucketError::Decode {
                    reference: r,
                    source,
                })?;
            stack.push((r, plain, links, Vec::new()));
            Ok(())
        };
        push(r, &mut stack)?;
        while let Some((_, _, links, mapped)) = stack.last_mut() {
            if let Some(&child) = links.get(mapped.len()) {
                if let Some(&m) = done.get(&child) {
                    mapped.push(m);
                } else {
                    push(child, &mut stack)?;
                }
                continue;
            }
            let (old, plain, links, mapped) = stack.pop().expect("non-empty");
            let plain = if links == mapped {
                plain
            } else {
                relink(old, &plain, &mapped)?
            };
            let mut w = dest.writer();
            let new = w.put(old.codec(), &plain)?;
            report.written += w.flush()?.written;
            report.blocks += 1;
            done.insert(old, new);
            if let Some((_, _, _, parent)) = stack.last_mut() {
                parent.push(new);
            }
        }
        Ok(done[&r])
    }

    /// Walks the DAG under `root`, checking that every block is present and
    /// hashes to its ref; returns the number of blocks.
    pub fn check_dag(&self, root: Ref) -> Result<u64, BucketError> {
        let mut count = 0;
        let mut walker = Walker::new([root]);
        while let Some(v) = walker.next(|r| self.try_get(r)) {
            match v.map_err(walk_error)? {
                Visit::Found(r) if r.codec() == Codec::Raw => {
                    self.get_stored(&r)?.ok_or_else(|| self.missing(r))?;
                }
                Visit::Found(_) => {}
                Visit::Missing(r) => return Err(self.missing(r)),
            }
            count += 1;
        }
        Ok(count)
    }

    fn missing(&self, r: Ref) -> BucketError {
        BucketError::BlockNotFound {
            bucket: self.name().clone(),
            reference: r,
        }
    }
}

/// A node being copied: its old ref, plain bytes, old links, and the new
/// refs of the children copied so far.
type Pending = (Ref, Vec<u8>, Vec<Ref>, Vec<Ref>);

/// Re-encodes a node with new links (same kind and body).
fn relink(old: Ref, plain: &[u8], links: &[Ref]) -> Result<Vec<u8>, BucketError> {
    let (kind, old_links) = hydra_block::links_of(plain).map_err(|source| BucketError::Decode {
        reference: old,
        source,
    })?;
    // The body is what follows the links in the encoding.
    let prefix = hydra_block::Node {
        kind,
        links: old_links,
        body: (),
    }
    .encode();
    let body = &plain[prefix.len()..];
    let mut out = hydra_block::Node {
        kind,
        links: links.to_vec(),
        body: (),
    }
    .encode();
    out.extend_from_slice(body);
    Ok(out)
}
