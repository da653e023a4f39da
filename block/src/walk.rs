//! [`Walker`]: visits every block reachable from a set of roots.
//!
//! Iterative (an explicit stack, so no recursion limit however deep the
//! DAG), and each block is visited once however many parents it has. Raw
//! blocks cannot link, so the walker never loads them: marking a DAG for
//! garbage collection reads only its nodes.

use std::collections::HashSet;

use crate::{Codec, DecodeError, Ref, links};

/// What the walker found at a ref.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// The block is present (or is raw, and was not loaded).
    Found(Ref),
    /// The loader has no block for this ref: the DAG is incomplete here.
    Missing(Ref),
}

/// Why a walk stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalkError<E: std::error::Error + 'static> {
    #[error("loading block {reference}: {source}")]
    Load {
        reference: Ref,
        #[source]
        source: E,
    },
    #[error("block {reference} is not a valid node: {source}")]
    Decode {
        reference: Ref,
        #[source]
        source: DecodeError,
    },
}

/// A depth-first walk over the blocks reachable from its roots.
///
/// The caller drives it with [`Walker::next`], passing a loader that returns
/// a node's plain bytes (or `None` when the block is absent). Refs already
/// in the `seen` set (see [`Walker::with_seen`]) are skipped with their
/// whole subtree, which makes incremental marking cheap.
#[derive(Debug, Default)]
pub struct Walker {
    stack: Vec<Ref>,
    seen: HashSet<Ref>,
}

impl Walker {
    pub fn new(roots: impl IntoIterator<Item = Ref>) -> Walker {
        Walker::with_seen(roots, HashSet::new())
    }

    /// A walk that treats `seen` as already visited.
    pub fn with_seen(roots: impl IntoIterator<Item = Ref>, seen: HashSet<Ref>) -> Walker {
        let mut w = Walker {
            stack: Vec::new(),
            seen,
        };
        w.push(roots);
        w
    }

    /// Adds more roots to the walk (skipping those already seen).
    pub fn push(&mut self, roots: impl IntoIterator<Item = Ref>) {
        for r in roots {
            if !self.seen.contains(&r) {
                self.stack.push(r);
            }
        }
    }

    /// Every ref visited so far (and those given as already seen).
    pub fn seen(&self) -> &HashSet<Ref> {
        &self.seen
    }

    pub fn into_seen(self) -> HashSet<Ref> {
        self.seen
    }

    /// Visits the next block, or returns `None` when the walk is done.
    pub fn next<E, F>(&mut self, mut load: F) -> Option<Result<Visit, WalkError<E>>>
    where
        E: std::error::Error + 'static,
        F: FnMut(&Ref) -> Result<Option<Vec<u8>>, E>,
    {
        loop {
            let r = self.stack.pop()?;
            if !self.seen.insert(r) {
                continue;
            }
            if r.codec() == Codec::Raw {
                return Some(Ok(Visit::Found(r)));
            }
            let bytes = match load(&r) {
                Ok(Some(b)) => b,
                Ok(None) => return Some(Ok(Visit::Missing(r))),
                Err(source) => {
                    return Some(Err(WalkError::Load {
                        reference: r,
                        source,
                    }));
                }
            };
            return Some(match links(r.codec(), &bytes) {
                Ok(children) => {
                    self.push(children);
                    Ok(Visit::Found(r))
                }
                Err(source) => Err(WalkError::Decode {
                    reference: r,
                    source,
                }),
            });
        }
    }

    /// Walks to the end, calling `visit` for each block.
    pub fn run<E, F, V>(&mut self, mut load: F, mut visit: V) -> Result<(), WalkError<E>>
    where
        E: std::error::Error + 'static,
        F: FnMut(&Ref) -> Result<Option<Vec<u8>>, E>,
        V: FnMut(Visit),
    {
        while let Some(v) = self.next(&mut load) {
            visit(v?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, Node};
    use std::collections::HashMap;
    use std::convert::Infallible;

    fn node(store: &mut HashMap<Ref, Vec<u8>>, links: Vec<Ref>) -> Ref {
        let bytes = Node {
            kind: Kind(1),
            links,
            body: (),
        }
        .encode();
        let r = Ref::of(Codec::Node, &bytes);
        store.insert(r, bytes);
        r
    }

    #[test]
    fn visits_each_block_once_and_skips_loading_raw() {
        let mut store = HashMap::new();
        let a = Ref::raw(b"a");
        let b = Ref::raw(b"b");
        let left = node(&mut store, vec![a, b]);
        let right = node(&mut store, vec![b]);
        let root = node(&mut store, vec![left, right, a]);
        let mut loads = 0;
        let mut found = Vec::new();
        Walker::new([root])
            .run::<Infallible, _, _>(
                |r| {
                    loads += 1;
                    Ok(store.get(r).cloned())
                },
                |v| found.push(v),
            )
            .unwrap();
        assert_eq!(found.len(), 5);
        assert_eq!(loads, 3, "only the three nodes are loaded");
    }

    #[test]
    fn deep_chains_do_not_overflow_and_missing_blocks_are_reported() {
        let mut store = HashMap::new();
        let gone = Ref::of(Codec::Node, b"not stored");
        let mut tip = node(&mut store, vec![gone]);
        for _ in 0..200_000 {
            tip = node(&mut store, vec![tip]);
        }
        let mut missing = Vec::new();
        let mut count = 0;
        Walker::new([tip])
            .run::<Infallible, _, _>(
                |r| Ok(store.get(r).cloned()),
                |v| {
                    count += 1;
                    if let Visit::Missing(r) = v {
                        missing.push(r)
                    }
                },
            )
            .unwrap();
        assert_eq!(count, 200_002);
        assert_eq!(missing, vec![gone]);
    }

    #[test]
    fn seen_subtrees_are_skipped_and_bad_nodes_named() {
        let mut store = HashMap::new();
        let leaf = node(&mut store, vec![]);
        let root = node(&mut store, vec![leaf]);
        let mut w = Walker::with_seen([root], [leaf].into_iter().collect());
        let mut visited = Vec::new();
        w.run::<Infallible, _, _>(|r| Ok(store.get(r).cloned()), |v| visited.push(v))
            .unwrap();
        assert_eq!(visited, vec![Visit::Found(root)]);

        let bad = Ref::of(Codec::Node, b"junk");
        let err = Walker::new([bad])
            .run::<Infallible, _, _>(|_| Ok(Some(b"junk".to_vec())), |_| {})
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("block {bad} is not a valid node"))
        );
    }
}
