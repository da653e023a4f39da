//! Objects: named byte streams of any size, stored as a DAG of chunks.
//!
//! Data is cut into chunks by content (FastCDC, 16/64/256 KiB min/avg/max),
//! so an edit in the middle of a large file changes only the chunks near
//! it. Chunks are raw blocks; index nodes list chunk refs with their sizes.
//! Index nodes are closed by content too (after a child whose hash ends a
//! node, as in a prolly tree, or at 4,096 children), so the edit also
//! rewrites only the index nodes on the path to it. The object's key names
//! the root index node as the root `o/<key>`.
//!
//! ```text
//!                  root index  (links, sizes)
//!                 /          \
//!          index               index
//!        /   |   \           /   |   \
//!     chunk chunk chunk   chunk chunk chunk     (raw blocks)
//! ```
//!
//! Put and get stream: memory holds one chunk, one write batch (8 MiB) and
//! the open index nodes (a few per level), whatever the object's size.

use std::io::{Read, Write};

use hydra_block::{Codec, Kind, Node, Ref};
use serde::Serialize;

use crate::{BlockWriter, Bucket, BucketError};

/// Kind of an object index node; its body is the size of each link.
pub const OBJECT_INDEX: Kind = Kind(0x0101);

const CHUNK_MIN: usize = 16 << 10;
const CHUNK_AVG: usize = 64 << 10;
const CHUNK_MAX: usize = 256 << 10;
/// A child whose hash is 0 modulo this ends an index node: 256 on average.
const INDEX_AVG: u32 = 256;
const INDEX_MAX: usize = 4096;
/// Longest object key, in bytes.
pub const MAX_OBJECT_KEY: usize = 256;
pub(crate) const ROOT_PREFIX: &str = "o/";

/// An object's key, root and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObjectInfo {
    pub key: String,
    pub root: Ref,
    pub size: u64,
}

pub(crate) fn check_key(key: &str) -> Result<(), BucketError> {
    let bad = |reason| BucketError::BadObjectKey {
        key: key.to_owned(),
        reason,
    };
    if key.is_empty() {
        return Err(bad("it is empty"));
    }
    if key.len() > MAX_OBJECT_KEY {
        return Err(bad("it is longer than 256 bytes"));
    }
    if key.contains('\0') {
        return Err(bad("it contains a NUL character"));
    }
    Ok(())
}

/// Builds the index levels bottom-up as chunks arrive.
struct IndexBuilder {
    levels: Vec<Vec<(Ref, u64)>>,
}

impl IndexBuilder {
    fn push(
        &mut self,
        w: &mut BlockWriter<'_>,
        level: usize,
        entry: (Ref, u64),
    ) -> Result<(), BucketError> {
        if self.levels.len() == level {
            self.levels.push(Vec::new());
        }
        self.levels[level].push(entry);
        let ends =
            u32::from_le_bytes(entry.0.hash()[..4].try_into().expect("4 bytes")) % INDEX_AVG == 0;
        if ends || self.levels[level].len() >= INDEX_MAX {
            let node = self.close(w, level)?;
            self.push(w, level + 1, node)?;
        }
        Ok(())
    }

    fn close(&mut self, w: &mut BlockWriter<'_>, level: usize) -> Result<(Ref, u64), BucketError> {
        let entries = std::mem::take(&mut self.levels[level]);
        let sizes: Vec<u64> = entries.iter().map(|e| e.1).collect();
        let total = sizes.iter().sum();
        let node = Node {
            kind: OBJECT_INDEX,
            links: entries.into_iter().map(|e| e.0).collect(),
            body: sizes,
        };
        Ok((w.put_node(&node)?, total))
    }

    /// Closes every open node; returns the root and the object's size.
    fn finish(mut self, w: &mut BlockWriter<'_>) -> Result<(Ref, u64), BucketError> {
        let mut level = 0;
        loop {
            let top = level + 1 >= self.levels.len();
            if top {
                if level > 0 && self.levels[level].len() == 1 {
                    return Ok(self.levels[level][0]);
                }
                return self.close(w, level);
            }
            if !self.levels[level].is_empty() {
                let node = self.close(w, level)?;
                self.push(w, level + 1, node)?;
            }
            level += 1;
        }
    }
}

impl Bucket {
    /// Stores everything `data` yields as object `key`, replacing any
    /// object of that key. `progress` is called with the bytes read so far.
    pub fn put_object(
        &self,
        key: &str,
        data: impl Read,
        mut progress: impl FnMut(u64),
    ) -> Result<ObjectInfo, BucketError> {
        check_key(key)?;
        self.require_key()?;
        let mut w = self.writer();
        let mut index = IndexBuilder {
            levels: vec![Vec::new()],
        };
        let mut read = 0u64;
        for chunk in fastcdc::v2020::StreamCDC::new(data, CHUNK_MIN, CHUNK_AVG, CHUNK_MAX) {
            let chunk = chunk.map_err(|e| match e {
                fastcdc::v2020::Error::IoError(io) => BucketError::Read(io),
                other => BucketError::Read(std::io::Error::other(other.to_string())),
            })?;
            let r = w.put(Codec::Raw, &chunk.data)?;
            read += chunk.length as u64;
            index.push(&mut w, 0, (r, chunk.length as u64))?;
            progress(read);
        }
        let (root, size) = index.finish(&mut w)?;
        w.flush()?;
        // The writer still pins every block, so a collection running now
        // cannot free them before the root names them.
        self.set_root(&format!("{ROOT_PREFIX}{key}"), root)?;
        drop(w);
        Ok(ObjectInfo {
            key: key.to_owned(),
            root,
            size,
        })
    }

    /// Writes object `key` to `out`, verifying every block; returns its
    /// info. `progress` is called with the bytes written so far.
    pub fn get_object(
        &self,
        key: &str,
        mut out: impl Write,
        mut progress: impl FnMut(u64),
    ) -> Result<ObjectInfo, BucketError> {
        let info = self
            .object(key)?
            .ok_or_else(|| BucketError::ObjectNotFound {
                bucket: self.name().clone(),
                key: key.to_owned(),
            })?;
        let missing = |r: Ref| BucketError::ObjectIncomplete {
            key: key.to_owned(),
            reference: r,
        };
        let mut written = 0u64;
        // Depth-first over index nodes: a stack of (links, sizes, next).
        let root = self.index(&info.root)?.ok_or_else(|| missing(info.root))?;
        let mut stack = vec![(root, 0usize)];
        while let Some((node, next)) = stack.last_mut() {
            let Some((&r, &size)) = node.links.get(*next).zip(node.body.get(*next)) else {
                stack.pop();
                continue;
            };
            *next += 1;
            match r.codec() {
                Codec::Raw => {
                    let chunk = self.try_get(&r)?.ok_or_else(|| missing(r))?;
                    if chunk.len() as u64 != size {
                        return Err(BucketError::ObjectIncomplete {
                            key: key.to_owned(),
                            reference: r,
                        });
                    }
                    out.write_all(&chunk).map_err(BucketError::Write)?;
                    written += size;
                    progress(written);
                }
                Codec::Node | Codec::PlainNode => {
                    let child = self.index(&r)?.ok_or_else(|| missing(r))?;
                    stack.push((child, 0));
                }
            }
        }
        out.flush().map_err(BucketError::Write)?;
        Ok(info)
    }

    /// The object of `key`, if any.
    pub fn object(&self, key: &str) -> Result<Option<ObjectInfo>, BucketError> {
        check_key(key)?;
        match self.root(&format!("{ROOT_PREFIX}{key}"))? {
            Some(root) => self.object_info(key.to_owned(), root).map(Some),
            None => Ok(None),
        }
    }

    /// Objects whose key starts with `prefix`, ordered by key.
    pub fn objects<'a>(
        &'a self,
        prefix: &str,
    ) -> impl Iterator<Item = Result<ObjectInfo, BucketError>> + use<'a> {
        self.roots(&format!("{ROOT_PREFIX}{prefix}")).map(|e| {
            let (name, root) = e?;
            self.object_info(name[ROOT_PREFIX.len()..].to_owned(), root)
        })
    }

    /// Removes object `key`; returns whether it existed. Its blocks are
    /// freed by the next [`Bucket::gc`] unless another object shares them.
    pub fn remove_object(&self, key: &str) -> Result<bool, BucketError> {
        check_key(key)?;
        self.remove_root(&format!("{}{key}", crate::replica::CLOSURE_PREFIX))?;
        self.remove_root(&format!("{ROOT_PREFIX}{key}"))
    }

    fn object_info(&self, key: String, root: Ref) -> Result<ObjectInfo, BucketError> {
        let size = match self.index(&root)? {
            Some(node) => node.body.iter().sum(),
            None => {
                return Err(BucketError::ObjectIncomplete {
                    key,
                    reference: root,
                });
            }
        };
        Ok(ObjectInfo { key, root, size })
    }

    fn index(&self, r: &Ref) -> Result<Option<Node<Vec<u64>>>, BucketError> {
        let Some(bytes) = self.try_get(r)? else {
            return Ok(None);
        };
        let node = Node::<Vec<u64>>::decode(OBJECT_INDEX, &bytes).map_err(|source| {
            BucketError::Decode {
                reference: *r,
                source,
            }
        })?;
        if node.links.len() != node.body.len() {
            return Err(BucketError::ObjectIncomplete {
                key: String::new(),
                reference: *r,
            });
        }
        Ok(Some(node))
    }
}
