//! A stream's bundle tree: the blocks through which one root reaches
//! every sealed bundle of the stream, so that its signed head (see
//! `stored.rs`), the bucket's collector and any walker of the DAG find
//! them all by following links.
//!
//! ```text
//!   root-0/<bucket>/ev/<num> -> tile (level 1, index 0)
//!                                 /                \
//!                 tile (0, 0)                        tile (0, 1)
//!          /       |        \                      /     \
//!   bundle 0  bundle 1 ... bundle 255      bundle 256   bundle 300
//! ```
//!
//! A tile of level 0 links the bundles `index * 256 ..` that are sealed,
//! one of level `L` the tiles of level `L - 1` below it; the top is the
//! one tile of the highest level, and the tree grows a level when a bundle
//! falls outside it (after 65,536 events, then 16.7 million). Tiles are
//! [`Codec::PlainNode`] blocks: stored as they are in every bucket, an
//! encrypted one too, because they hold nothing but refs, slot numbers,
//! the stream's id (which keys show anyway) and their place, and a peer
//! without the key must follow their links to collect, verify and serve
//! the stream (a blind replica).
//!
//! Sealing a bundle rewrites the tiles on its path (one per level, a
//! few KiB) in the same commit; scavenging rewrites those of the bundles
//! it removes and drops tiles left empty. A tile that is replaced is
//! deleted in that commit, not left for `hydra gc`: it names the stream,
//! its level and its place, so no other tile is the same block, and only
//! its parent names it.

use std::collections::{BTreeMap, HashMap};

use hydra_block::{Codec, Kind, Node, Ref};
use hydra_bucket::Bucket;
use hydra_volume::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Kind of a tile block.
pub const STREAM_TILE: Kind = Kind(0x0403);

/// Links per tile.
const FANOUT: u64 = 256;

/// Levels at most: 256^8 bundles is more than a `u64` of versions holds.
const MAX_LEVELS: u8 = 8;

/// The name of stream `num`'s tree root in its bucket.
pub(crate) fn root_name(num: u64) -> String {
    format!("ev/{num:016x}")
}

/// The stream number a root of [`root_name`] names.
pub(crate) fn num_of_root(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("ev/")?;
    (hex.len() == 16).then_some(())?;
    u64::from_str_radix(hex, 16).ok()
}

/// Changes to a stream's sealed bundles: bundle index -> its block, or
/// `None` when it was removed.
pub(crate) type Changes = BTreeMap<u64, Option<Ref>>;

/// A tile's body; its node's links are the children, in slot order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Place {
    stream: String,
    level: u8,
    index: u64,
    /// The slot (0..256) of each link.
    slots: Vec<u8>,
}

/// A tile, decoded: its children by slot.
#[derive(Debug, Clone, Default)]
struct Tile {
    children: BTreeMap<u8, Ref>,
}

fn corrupt(stream: &str, reason: String) -> Error {
    Error::Corrupt {
        what: format!("bundle tree of stream {stream}"),
        reason,
    }
}

/// Checks that the tile `node` at `r` is tile `index` of level `level` of
/// `stream`'s tree, and well formed.
fn check(stream: &str, r: &Ref, node: Node<Place>, level: u8, index: u64) -> Result<Tile, Error> {
    let place = &node.body;
    if place.stream != stream || place.level != level || place.index != index {
        return Err(corrupt(
            stream,
            format!(
                "tile {r} says it is tile {} of level {} of stream {:?}, expected {index} of level {level}",
                place.index, place.level, place.stream
            ),
        ));
    }
    if place.slots.len() != node.links.len() || !place.slots.is_sorted_by(|a, b| a < b) {
        return Err(corrupt(stream, format!("tile {r} has malformed slots")));
    }
    Ok(Tile {
        children: place.slots.iter().copied().zip(node.links).collect(),
    })
}

/// Reads a stream's tree through its bucket (tiles need no key).
struct Reader<'a> {
    bucket: &'a Bucket,
    stream: &'a str,
}

impl Reader<'_> {
    /// The node stored at `r`, checked against its ref.
    fn node(&self, r: &Ref) -> Result<Node<Place>, Error> {
        let bytes = self
            .bucket
            .get_stored(r)?
            .ok_or_else(|| corrupt(self.stream, format!("tile {r} is missing")))?;
        Node::<Place>::decode(STREAM_TILE, &bytes)
            .map_err(|e| corrupt(self.stream, format!("tile {r}: {e}")))
    }

    fn tile(&self, r: &Ref, level: u8, index: u64) -> Result<Tile, Error> {
        check(self.stream, r, self.node(r)?, level, index)
    }

    /// The top tile at `r` and its level (the one it states, if in bounds).
    fn top(&self, r: &Ref) -> Result<(u8, Tile), Error> {
        let node = self.node(r)?;
        let level = node.body.level;
        if level >= MAX_LEVELS {
            return Err(corrupt(
                self.stream,
                format!("top tile {r} is of level {level}"),
            ));
        }
        Ok((level, check(self.stream, r, node, level, 0)?))
    }
}

/// Rewrites stream `num`'s tree in `bucket` for `changes`, into `ops`:
/// new tiles, deletes of the tiles they replace, and the root (set, or
/// removed when no bundle is left). Returns the new top, if any.
pub(crate) fn update(
    bucket: &Bucket,
    ops: &mut WriteBatch,
    stream: &str,
    num: u64,
    changes: &Changes,
) -> Result<Option<Ref>, Error> {
    let old_top = bucket.root(&root_name(num))?;
    if changes.is_empty() {
        return Ok(old_top);
    }
    let reader = Reader { bucket, stream };
    // Tiles of the old tree read so far, by (level, index).
    let mut old: HashMap<(u8, u64), Option<(Ref, Tile)>> = HashMap::new();
    let old_levels = match old_top {
        Some(r) => {
            let (level, top) = reader.top(&r)?;
            old.insert((level, 0), Some((r, top)));
            level + 1
        }
        None => 0,
    };
    let highest = changes
        .iter()
        .filter(|(_, b)| b.is_some())
        .map(|(i, _)| *i)
        .max();
    let mut levels = old_levels.max(1);
    while let Some(i) = highest
        && levels < MAX_LEVELS
        && i >= FANOUT.pow(levels as u32)
    {
        levels += 1;
    }

    // The old tile at (level, index), found from the top down.
    let mut old_tile = |level: u8, index: u64| -> Result<Option<(Ref, Tile)>, Error> {
        // Beyond the old top's reach: a new tile.
        if level >= old_levels || index >= FANOUT.saturating_pow((old_levels - 1 - level) as u32) {
            return Ok(None);
        }
        let mut at = (old_levels - 1, 0u64);
        let mut found = old.get(&at).cloned().flatten();
        while at.0 > level {
            let child = (at.0 - 1, index / FANOUT.pow((at.0 - 1 - level) as u32));
            if let Some(t) = old.get(&child) {
                found = t.clone();
            } else {
                let slot = (child.1 % FANOUT) as u8;
                found = match found.and_then(|(_, tile)| tile.children.get(&slot).copied()) {
                    Some(r) => Some((r, reader.tile(&r, child.0, child.1)?)),
                    None => None,
                };
                old.insert(child, found.clone());
            }
            at = child;
        }
        Ok(found)
    };

    // Level by level: the slots each changed tile gets.
    let mut pending: BTreeMap<u64, BTreeMap<u8, Option<Ref>>> = BTreeMap::new();
    let span = FANOUT.saturating_pow(levels as u32);
    // A removal beyond the tree removes nothing.
    for (index, block) in changes.iter().filter(|(i, b)| b.is_some() || **i < span) {
        pending
            .entry(index / FANOUT)
            .or_default()
            .insert((index % FANOUT) as u8, *block);
    }
    if pending.is_empty() {
        return Ok(old_top);
    }
    let mut top = None;
    for level in 0..levels {
        if level == old_levels && old_levels > 0 {
            // The tree grew: the old top becomes the first child of the
            // tile above it (unless it changed too, which comes below).
            let slots = pending.entry(0).or_default();
            slots.entry(0).or_insert(old_top);
        }
        let mut above: BTreeMap<u64, BTreeMap<u8, Option<Ref>>> = BTreeMap::new();
        for (index, slots) in std::mem::take(&mut pending) {
            let previous = old_tile(level, index)?;
            let mut tile = previous
                .as_ref()
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            for (slot, child) in slots {
                match child {
                    Some(r) => tile.children.insert(slot, r),
                    None => tile.children.remove(&slot),
                };
            }
            let new = (!tile.children.is_empty())
                .then(|| put(bucket, ops, stream, level, index, &tile))
                .transpose()?;
            if let Some((r, _)) = previous
                && Some(r) != new
            {
                bucket.stage_delete(ops, &r);
            }
            if level + 1 == levels {
                top = new;
            } else {
                above
                    .entry(index / FANOUT)
                    .or_default()
                    .insert((index % FANOUT) as u8, new);
            }
        }
        pending = above;
    }
    // Every change rewrote the tiles above it, the top too.
    match top {
        Some(r) => bucket.stage_root(ops, &root_name(num), r)?,
        None => bucket.stage_remove_root(ops, &root_name(num))?,
    }
    Ok(top)
}

fn put(
    bucket: &Bucket,
    ops: &mut WriteBatch,
    stream: &str,
    level: u8,
    index: u64,
    tile: &Tile,
) -> Result<Ref, Error> {
    let node = Node {
        kind: STREAM_TILE,
        links: tile.children.values().copied().collect(),
        body: Place {
            stream: stream.to_owned(),
            level,
            index,
            slots: tile.children.keys().copied().collect(),
        },
    };
    Ok(bucket.stage_put(ops, Codec::PlainNode, &node.encode())?)
}

/// What a walk of a stream's tree found.
#[derive(Debug, Default)]
pub(crate) struct Walked {
    /// Every bundle linked, by index.
    pub bundles: Vec<(u64, Ref)>,
    /// Every tile, top first, with the last bundle index its place
    /// reaches (a tile holds no bundle after it).
    pub tiles: Vec<(Ref, u64)>,
}

/// The first bundle the tree at `top` links, its index and ref, read
/// from the tiles on its way down only: what a tree held already tells
/// of where its storage begins.
pub(crate) fn first_bundle(
    bucket: &Bucket,
    stream: &str,
    top: &Ref,
) -> Result<Option<(u64, Ref)>, Error> {
    outer_bundle(bucket, stream, top, false)
}

/// The last bundle the tree at `top` links, read as [`first_bundle`]:
/// where a tree held already ends, so that a peer can send what came
/// after it.
pub(crate) fn last_bundle(
    bucket: &Bucket,
    stream: &str,
    top: &Ref,
) -> Result<Option<(u64, Ref)>, Error> {
    outer_bundle(bucket, stream, top, true)
}

/// The bundle down the tiles' first children from `top`, or their last.
fn outer_bundle(
    bucket: &Bucket,
    stream: &str,
    top: &Ref,
    last: bool,
) -> Result<Option<(u64, Ref)>, Error> {
    let reader = Reader { bucket, stream };
    let (mut level, mut tile) = reader.top(top)?;
    let mut index = 0;
    loop {
        let child = match last {
            true => tile.children.last_key_value(),
            false => tile.children.first_key_value(),
        };
        let Some((slot, child)) = child else {
            return Ok(None);
        };
        let at = index * FANOUT + u64::from(*slot);
        if level == 0 {
            return Ok(Some((at, *child)));
        }
        tile = reader.tile(child, level - 1, at)?;
        (level, index) = (level - 1, at);
    }
}

/// The children, in the tree at `held`, of the tile at the place the
/// tile `stored` states: the subtrees and bundles the two trees share
/// there, which a holder of `held` need not look under again. Empty
/// when `held` has no tile there, or `stored` is not a tile.
pub(crate) fn held_at_place(
    bucket: &Bucket,
    stream: &str,
    held: &Ref,
    stored: &[u8],
) -> Result<Vec<Ref>, Error> {
    if !matches!(hydra_block::links_of(stored), Ok((kind, _)) if kind == STREAM_TILE) {
        return Ok(Vec::new());
    }
    let place = Node::<Place>::decode(STREAM_TILE, stored)
        .map_err(|e| corrupt(stream, format!("a tile: {e}")))?
        .body;
    let reader = Reader { bucket, stream };
    let (top_level, top) = reader.top(held)?;
    if place.level > top_level
        || place.index >= FANOUT.saturating_pow(u32::from(top_level - place.level))
    {
        return Ok(Vec::new());
    }
    let (mut level, mut tile) = (top_level, top);
    while level > place.level {
        let below = place.index / FANOUT.pow(u32::from(level - 1 - place.level));
        let Some(child) = tile.children.get(&((below % FANOUT) as u8)) else {
            return Ok(Vec::new());
        };
        tile = reader.tile(child, level - 1, below)?;
        level -= 1;
    }
    Ok(tile.children.into_values().collect())
}

/// The last bundle index under the tile at `level`, `index`.
fn reach(level: u8, index: u64) -> u64 {
    (index + 1)
        .saturating_mul(FANOUT.saturating_pow(u32::from(level) + 1))
        .saturating_sub(1)
}

/// Every bundle the tree under `top` links, by index, and its tiles
/// (each checked against its ref and its place; bundles are not read).
pub(crate) fn bundles(bucket: &Bucket, stream: &str, top: &Ref) -> Result<Walked, Error> {
    bundles_past(bucket, stream, top, None)
}

/// [`bundles`], of the part of the tree past bundle `after` only: the
/// tiles that reach past it and the bundles after it (all, for `None`),
/// read without looking under the tiles before it, so that what a live
/// follower lacks costs what it is, not the stream's length.
pub(crate) fn bundles_past(
    bucket: &Bucket,
    stream: &str,
    top: &Ref,
    after: Option<u64>,
) -> Result<Walked, Error> {
    let reader = Reader { bucket, stream };
    let (level, tile) = reader.top(top)?;
    let mut walked = Walked::default();
    reader.walk((*top, level, 0), Some(tile), after, &mut walked)?;
    walked.bundles.sort_unstable_by_key(|(i, _)| *i);
    Ok(walked)
}

impl Reader<'_> {
    /// Adds the tiles and bundles under the tile `r` at `level`, `index`
    /// (its tile when read already) that reach past bundle `after` to
    /// `out`, depth first; bundles unsorted.
    fn walk(
        &self,
        (r, level, index): (Ref, u8, u64),
        tile: Option<Tile>,
        after: Option<u64>,
        out: &mut Walked,
    ) -> Result<(), Error> {
        let later = |index: u64| after.is_none_or(|a| index > a);
        // A tile that reaches no further than `after` holds nothing past
        // it, the first as much as any other.
        let mut stack = Vec::new();
        if later(reach(level, index)) {
            stack.push((r, level, index, tile));
        }
        while let Some((r, level, index, read)) = stack.pop() {
            let tile = match read {
                Some(t) => t,
                None => self.tile(&r, level, index)?,
            };
            out.tiles.push((r, reach(level, index)));
            for (slot, child) in tile.children.iter().rev() {
                let at = index * FANOUT + *slot as u64;
                if level == 0 {
                    if later(at) {
                        out.bundles.push((at, *child));
                    }
                } else if later(reach(level - 1, at)) {
                    stack.push((*child, level - 1, at, None));
                }
            }
        }
        Ok(())
    }
}

/// How a stream's tree at `new` differs from the one at `held` (both in
/// `bucket`): by index, the bundles `new` links where `held` links none
/// or another, and those `held` links where `new` links none or another.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Diff {
    pub linked: Vec<(u64, Ref)>,
    pub unlinked: Vec<(u64, Ref)>,
}

/// What the held tree has at a place of the new one.
#[derive(Clone, Copy)]
enum Held {
    Nothing,
    /// A tile or bundle.
    Block(Ref),
    /// A level above the held tree's top (the new tree grew): its tile
    /// at index 0 leads, through slot 0, down to the held top.
    Above,
}

/// [`Diff`] of two trees of `stream`, read only where their tiles
/// differ (tiles name their place, so a tile both trees link is the
/// same subtree): what a replica checks of a new tree costs what changed
/// since the tree it applied, not the stream's length.
pub(crate) fn diff(bucket: &Bucket, stream: &str, held: &Ref, new: &Ref) -> Result<Diff, Error> {
    let reader = Reader { bucket, stream };
    let (held_level, held_top) = reader.top(held)?;
    let (new_level, new_top) = reader.top(new)?;
    let mut diff = Diff::default();
    if new_level < held_level {
        // Trees do not shrink in height: compare them whole.
        diff.linked = bundles(bucket, stream, new)?.bundles;
        diff.unlinked = bundles(bucket, stream, held)?.bundles;
        return Ok(diff);
    }
    let start = match new_level == held_level {
        true => Held::Block(*held),
        false => Held::Above,
    };
    // (level, index, the new tile, what the held tree has there)
    let mut stack = vec![(new_level, 0u64, new_top, start)];
    while let Some((level, index, tile, there)) = stack.pop() {
        let held_children: BTreeMap<u8, Held> = match there {
            Held::Nothing => BTreeMap::new(),
            Held::Block(r) if r == *held => held_top
                .children
                .iter()
                .map(|(s, c)| (*s, Held::Block(*c)))
                .collect(),
            Held::Block(r) => {
                let t = reader.tile(&r, level, index)?;
                t.children
                    .iter()
                    .map(|(s, c)| (*s, Held::Block(*c)))
                    .collect()
            }
            Held::Above => {
                let below = match level - 1 == held_level {
                    true => Held::Block(*held),
                    false => Held::Above,
                };
                [(0, below)].into()
            }
        };
        // What the held tree links here and the new one does not.
        for (slot, h) in &held_children {
            let (Held::Block(r), false) = (h, tile.children.contains_key(slot)) else {
                continue;
            };
            let at = index * FANOUT + u64::from(*slot);
            if level == 0 {
                diff.unlinked.push((at, *r));
            } else {
                let mut gone = Walked::default();
                reader.walk((*r, level - 1, at), None, None, &mut gone)?;
                diff.unlinked.extend(gone.bundles);
            }
        }
        for (slot, child) in &tile.children {
            let at = index * FANOUT + u64::from(*slot);
            let h = held_children.get(slot).copied().unwrap_or(Held::Nothing);
            if let Held::Block(r) = h
                && r == *child
            {
                continue;
            }
            if level == 0 {
                diff.linked.push((at, *child));
                if let Held::Block(r) = h {
                    diff.unlinked.push((at, r));
                }
            } else {
                stack.push((level - 1, at, reader.tile(child, level - 1, at)?, h));
            }
        }
    }
    diff.linked.sort_unstable_by_key(|(i, _)| *i);
    diff.unlinked.sort_unstable_by_key(|(i, _)| *i);
    Ok(diff)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hydra_bucket::{BucketName, CreateOptions, Key, Store};
    use hydra_volume::MemVolume;
    use proptest::prelude::*;

    use super::*;

    fn vault() -> (Store, Bucket) {
        let store = Store::open(Arc::new(MemVolume::new())).unwrap();
        let name: BucketName = "vault".parse().unwrap();
        let key = Key::from_bytes([5; 32]);
        let options = CreateOptions {
            zstd_level: Some(3),
            key: Some(&key),
        };
        store.create_bucket(&name, options).unwrap();
        let bucket = store.bucket(&name, Some(&key)).unwrap();
        (store, bucket)
    }

    /// A bundle block stand-in: any raw ref.
    fn block(index: u64, round: u32) -> Ref {
        Ref::raw(format!("bundle {index} of round {round}").as_bytes())
    }

    /// Applies `changes` in one commit, as the writer does.
    fn apply((store, bucket): &(Store, Bucket), changes: &Changes) -> Option<Ref> {
        let mut ops = WriteBatch::new();
        let top = update(bucket, &mut ops, "s-1", 7, changes).unwrap();
        store.commit(ops, &[]).unwrap();
        top
    }

    /// (index, sealed?) steps: seal when true, remove when false.
    fn steps() -> impl Strategy<Value = Vec<Vec<(u64, bool)>>> {
        let index = prop_oneof![
            4 => 0u64..600,
            1 => 65_530u64..65_600,
            1 => Just(16_777_300u64),
        ];
        prop::collection::vec(prop::collection::vec((index, any::<bool>()), 1..40), 1..12)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn the_tree_links_exactly_the_sealed_bundles_and_keeps_no_replaced_tile(rounds in steps()) {
            let vault = vault();
            let bucket = &vault.1;
            let mut model: BTreeMap<u64, Ref> = BTreeMap::new();
            // A replica's bucket: every tree's tiles, none deleted.
            let replica = self::vault();
            let mut held: Option<(Ref, BTreeMap<u64, Ref>)> = None;
            for (round, step) in rounds.iter().enumerate() {
                let mut changes = Changes::new();
                for (index, seal) in step {
                    let b = seal.then(|| block(*index, round as u32));
                    changes.insert(*index, b);
                    match b {
                        Some(b) => model.insert(*index, b),
                        None => model.remove(index),
                    };
                }
                let top = apply(&vault, &changes);
                prop_assert_eq!(bucket.root(&root_name(7)).unwrap(), top);
                let Some(top) = top else {
                    prop_assert!(model.is_empty());
                    prop_assert_eq!(bucket.stats().unwrap().blocks, 0);
                    continue;
                };
                let Walked { bundles: linked, tiles } = bundles(bucket, "s-1", &top).unwrap();
                let expected: Vec<(u64, Ref)> = model.iter().map(|(i, r)| (*i, *r)).collect();
                prop_assert_eq!(last_bundle(bucket, "s-1", &top).unwrap(), expected.last().copied());
                prop_assert_eq!(first_bundle(bucket, "s-1", &top).unwrap(), expected.first().copied());
                // The part past a bundle: the later bundles, and the
                // tiles that reach past it.
                let after = expected[expected.len() / 2].0;
                let past = bundles_past(bucket, "s-1", &top, Some(after)).unwrap();
                let later: Vec<(u64, Ref)> = model.range(after + 1..).map(|(i, r)| (*i, *r)).collect();
                prop_assert_eq!(past.bundles, later);
                let reaching: Vec<_> = tiles.iter().filter(|(_, reach)| *reach > after).collect();
                prop_assert_eq!(past.tiles.iter().collect::<Vec<_>>(), reaching);
                prop_assert_eq!(linked, expected);
                // A replica holding the last tree finds what changed.
                let mut ops = WriteBatch::new();
                for (t, _) in &tiles {
                    let bytes = bucket.get_stored(t).unwrap().unwrap();
                    replica.1.stage_put(&mut ops, Codec::PlainNode, &bytes).unwrap();
                }
                replica.0.commit(ops, &[]).unwrap();
                if let Some((held_top, held_model)) = &held {
                    let changed = |a: &BTreeMap<u64, Ref>, b: &BTreeMap<u64, Ref>| -> Vec<(u64, Ref)> {
                        a.iter().filter(|(i, r)| b.get(i) != Some(r)).map(|(i, r)| (*i, *r)).collect()
                    };
                    let expected = Diff {
                        linked: changed(&model, held_model),
                        unlinked: changed(held_model, &model),
                    };
                    prop_assert_eq!(diff(&replica.1, "s-1", held_top, &top).unwrap(), expected);
                }
                held = Some((top, model.clone()));
                // Every tile stored is linked (bundles here are stand-ins,
                // never stored): replaced tiles went in the same commit.
                prop_assert_eq!(bucket.stats().unwrap().blocks, tiles.len() as u64);
                // Tiles are plain: a handle without the key walks them.
                prop_assert!(tiles.iter().all(|(t, _)| t.codec() == Codec::PlainNode));
            }
        }
    }

    /// Each tile of `top` with its bytes, and the bundles under it.
    fn tiles_of(bucket: &Bucket, top: &Ref) -> Vec<(Vec<u8>, Vec<Ref>)> {
        let walked = bundles(bucket, "s-1", top).unwrap();
        walked
            .tiles
            .iter()
            .map(|(t, _)| {
                let bytes = bucket.get_stored(t).unwrap().unwrap();
                let node = Node::<Place>::decode(STREAM_TILE, &bytes).unwrap();
                (bytes, node.links)
            })
            .collect()
    }

    #[test]
    fn a_tile_finds_what_the_held_tree_has_at_its_place() {
        // Held: bundles 0..300 (a top of level 1 over tiles 0 and 1).
        let (held, grown) = (vault(), vault());
        let seal = |range: std::ops::Range<u64>| -> Changes {
            range.map(|i| (i, Some(block(i, 0)))).collect()
        };
        let held_top = apply(&held, &seal(0..300)).unwrap();
        let held_tiles = tiles_of(&held.1, &held_top);
        // Grown: the same bundles but 3 (scavenged), then up to 70,000
        // (a top of level 2).
        apply(&grown, &seal(0..300));
        apply(&grown, &[(3, None)].into());
        let top = apply(&grown, &seal(300..70_000)).unwrap();
        let at = |bytes: &[u8]| held_at_place(&held.1, "s-1", &held_top, bytes).unwrap();
        let place = |bytes: &[u8]| {
            let p = Node::<Place>::decode(STREAM_TILE, bytes).unwrap().body;
            (p.level, p.index)
        };
        let mut checked = 0;
        for (bytes, _) in tiles_of(&grown.1, &top) {
            let expected = match place(&bytes) {
                // The held top is the grown tree's level-1 tile 0.
                (1, 0) => held_tiles[0].1.clone(),
                (0, 0) => (0..256).map(|i| block(i, 0)).collect(),
                (0, 1) => (256..300).map(|i| block(i, 0)).collect(),
                // Nothing held there: the top of level 2, later tiles.
                _ => Vec::new(),
            };
            assert_eq!(at(&bytes), expected, "tile at {:?}", place(&bytes));
            checked += 1;
        }
        // 274 level-0 tiles, 2 of level 1, the top.
        assert_eq!(checked, 277);
        // Every tile reaches the bundles under it, and none after.
        let walked = bundles(&grown.1, "s-1", &top).unwrap();
        assert_eq!(walked.tiles[0].1, u64::pow(256, 3) - 1);
        let reaches: Vec<u64> = walked.tiles.iter().map(|(_, r)| *r).collect();
        assert!(reaches.contains(&255) && reaches.contains(&(70_143)));
    }

    #[test]
    fn a_tile_out_of_place_is_refused() {
        let vault = vault();
        let changes: Changes = [(3, Some(block(3, 0)))].into();
        let top = apply(&vault, &changes).unwrap();
        // Another stream's tree, or this one read as another stream's.
        let err = bundles(&vault.1, "s-2", &top).unwrap_err();
        assert!(err.to_string().contains("expected 0 of level 0"), "{err}");
    }
}
