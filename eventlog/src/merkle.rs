//! The Merkle tree over a stream's events: RFC 6962's tree shape (as used
//! by Certificate Transparency and Go's checksum database) with BLAKE3.
//!
//! - leaf hash: `BLAKE3(0x00 || event record)`;
//! - node hash: `BLAKE3(0x01 || left || right)`;
//! - the tree over `n` leaves splits at the largest power of two below
//!   `n`, so every prefix of the log is a tree of its own and a tree of
//!   size `m` is provably a prefix of one of size `n`.
//!
//! Appending keeps only the *peaks*: the roots of the perfect subtrees
//! that the binary digits of `n` describe (at most 64). Proofs need the
//! hashes of perfect subtrees inside the tree; the store keeps those of
//! 256 leaves and up and recomputes smaller ones from the events.
//!
//! The verifiers ([`verify_inclusion`], [`verify_consistency`]) are the
//! iterative algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2. They read only
//! their arguments, never panic, and refuse anything inconsistent.

/// A 32-byte BLAKE3 digest.
pub type Hash = [u8; 32];

/// Root of the empty tree: `BLAKE3("")`.
pub fn empty_root() -> Hash {
    *blake3::hash(b"").as_bytes()
}

pub fn leaf_hash(record: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[0]);
    h.update(record);
    *h.finalize().as_bytes()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[1]);
    h.update(left);
    h.update(right);
    *h.finalize().as_bytes()
}

/// Appends a leaf to a tree of `size` leaves described by `peaks`. Calls
/// `completed(level, index, hash)` for every perfect subtree the append
/// completes (level 0 is the leaf itself).
pub fn push_leaf(
    peaks: &mut Vec<Hash>,
    size: u64,
    leaf: Hash,
    mut completed: impl FnMut(u32, u64, &Hash),
) {
    let mut h = leaf;
    let mut level = 0u32;
    completed(0, size, &h);
    let mut n = size;
    while n & 1 == 1 {
        let left = peaks.pop().expect("one peak per set bit of the size");
        h = node_hash(&left, &h);
        level += 1;
        n >>= 1;
        completed(level, (size + 1) / (1u64 << level) - 1, &h);
    }
    peaks.push(h);
}

/// The perfect subtrees whose roots are the peaks of a tree of `size`
/// leaves, largest first: `(level, start)`, one per set bit of `size`.
pub fn peak_ranges(size: u64) -> impl Iterator<Item = (u32, u64)> {
    let mut start = 0;
    (0..64u32).rev().filter_map(move |level| {
        let n = 1u64 << level;
        (size & n != 0).then(|| {
            start += n;
            (level, start - n)
        })
    })
}

/// The root of a tree over `leaves`, in order (the empty root for none).
pub fn root_of_leaves(leaves: impl IntoIterator<Item = Hash>) -> Hash {
    let mut peaks = Vec::new();
    for (i, leaf) in leaves.into_iter().enumerate() {
        push_leaf(&mut peaks, i as u64, leaf, |_, _, _| {});
    }
    root_of_peaks(&peaks)
}

/// The root of a tree given its peaks (largest first).
pub fn root_of_peaks(peaks: &[Hash]) -> Hash {
    let mut it = peaks.iter().rev();
    let Some(last) = it.next() else {
        return empty_root();
    };
    it.fold(*last, |acc, p| node_hash(p, &acc))
}

/// Largest power of two strictly below `n` (n >= 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Where proofs get subtree hashes: `subtree(start, size)` is the root of
/// the perfect subtree of `size` (a power of two) leaves at `start`.
pub trait Subtrees {
    type Error;
    fn subtree(&mut self, start: u64, size: u64) -> Result<Hash, Self::Error>;
}

/// The root of leaves `[start, end)`, any size >= 1.
pub fn range_root<S: Subtrees>(s: &mut S, start: u64, end: u64) -> Result<Hash, S::Error> {
    let n = end - start;
    if n.is_power_of_two() {
        return s.subtree(start, n);
    }
    let k = split(n);
    let left = s.subtree(start, k)?;
    let right = range_root(s, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The audit path of leaf `index` in the tree of `size` leaves (RFC 6962
/// `PATH`), leaf-side first.
pub fn inclusion_path<S: Subtrees>(
    s: &mut S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, S::Error> {
    let mut path = Vec::new();
    let (mut start, mut end, mut m) = (0u64, size, index);
    // Walk down from the root, collecting siblings root-side first.
    while end - start > 1 {
        let k = split(end - start);
        if m < k {
            path.push(range_root(s, start + k, end)?);
            end = start + k;
        } else {
            path.push(range_root(s, start, start + k)?);
            start += k;
            m -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// The proof that the tree of `old` leaves is a prefix of the tree of
/// `new` leaves (RFC 6962 `PROOF`), in the order RFC 9162 verifies.
pub fn consistency_path<S: Subtrees>(s: &mut S, old: u64, new: u64) -> Result<Vec<Hash>, S::Error> {
    if old == 0 || old >= new {
        return Ok(Vec::new());
    }
    let mut path = Vec::new();
    let (mut start, mut end, mut m, mut complete) = (0u64, new, old, true);
    loop {
        let n = end - start;
        if m == n {
            if !complete {
                path.push(range_root(s, start, end)?);
            }
            break;
        }
        let k = split(n);
        if m <= k {
            path.push(range_root(s, start + k, end)?);
            end = start + k;
        } else {
            path.push(range_root(s, start, start + k)?);
            start += k;
            m -= k;
            complete = false;
        }
    }
    path.reverse();
    Ok(path)
}

/// RFC 9162 §2.1.3.2: does `path` prove that `leaf` is leaf `index` of
/// the tree of `size` leaves with root `root`?
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// RFC 9162 §2.1.4.2: does `path` prove that the tree of `old` leaves with
/// root `old_root` is a prefix of the tree of `new` leaves with root
/// `new_root`?
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    path: &[Hash],
) -> bool {
    if old > new {
        return false;
    }
    if old == new {
        return path.is_empty() && old_root == new_root;
    }
    if old == 0 {
        // Every tree extends the empty one.
        return path.is_empty();
    }
    if path.is_empty() {
        return false;
    }
    let mut proof: Vec<&Hash> = Vec::with_capacity(path.len() + 1);
    if old.is_power_of_two() {
        proof.push(old_root);
    }
    proof.extend(path.iter());
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*proof[0], *proof[0]);
    for c in &proof[1..] {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *old_root && sr == *new_root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::convert::Infallible;

    /// The tree straight from RFC 6962's definition, over all the leaves.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    struct Leaves(Vec<Hash>);

    impl Subtrees for Leaves {
        type Error = Infallible;
        fn subtree(&mut self, start: u64, size: u64) -> Result<Hash, Infallible> {
            Ok(mth(&self.0[start as usize..(start + size) as usize]))
        }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
    }

    #[test]
    fn peaks_give_the_rfc_6962_root_and_report_completed_subtrees() {
        let all = leaves(1000);
        let mut peaks = Vec::new();
        let mut completed = Vec::new();
        for (i, l) in all.iter().enumerate() {
            push_leaf(&mut peaks, i as u64, *l, |level, index, h| {
                completed.push((level, index, *h))
            });
            assert_eq!(root_of_peaks(&peaks), mth(&all[..=i]), "size {}", i + 1);
            assert_eq!(peaks.len() as u32, (i as u64 + 1).count_ones());
            // Each peak is the subtree `peak_ranges` names.
            let ranges: Vec<(u32, u64)> = peak_ranges(i as u64 + 1).collect();
            assert_eq!(ranges.len(), peaks.len());
            for ((level, start), peak) in ranges.into_iter().zip(&peaks) {
                let (start, size) = (start as usize, 1usize << level);
                assert_eq!(*peak, mth(&all[start..start + size]), "size {}", i + 1);
            }
        }
        for (level, index, h) in completed {
            let size = 1usize << level;
            let start = index as usize * size;
            assert_eq!(
                h,
                mth(&all[start..start + size]),
                "level {level} index {index}"
            );
        }
        assert_eq!(root_of_peaks(&[]), empty_root());
    }

    proptest! {
        #[test]
        fn inclusion_proofs_verify_and_tampering_fails(size in 1u64..600, pick in any::<u64>(), flip in any::<usize>()) {
            let all = leaves(size);
            let root = mth(&all);
            let index = pick % size;
            let mut s = Leaves(all.clone());
            let path = inclusion_path(&mut s, index, size).unwrap();
            prop_assert!(path.len() <= 64 - (size.leading_zeros() as usize) + 1);
            prop_assert!(verify_inclusion(index, size, &all[index as usize], &path, &root));
            // Another leaf, index, size or root fails.
            let other = leaf_hash(b"other");
            prop_assert!(!verify_inclusion(index, size, &other, &path, &root));
            prop_assert!(!verify_inclusion(index, size, &all[index as usize], &path, &other));
            prop_assert!(!verify_inclusion(size, size, &all[index as usize], &path, &root));
            if size > 1 {
                prop_assert!(!verify_inclusion((index + 1) % size, size, &all[index as usize], &path, &root));
                let mut bad = path.clone();
                let i = flip % bad.len();
                bad[i][0] ^= 1;
                prop_assert!(!verify_inclusion(index, size, &all[index as usize], &bad, &root));
                prop_assert!(!verify_inclusion(index, size, &all[index as usize], &path[1..], &root));
                let mut long = path.clone();
                long.push(other);
                prop_assert!(!verify_inclusion(index, size, &all[index as usize], &long, &root));
            }
        }

        #[test]
        fn consistency_proofs_verify_and_tampering_fails(new in 1u64..600, pick in any::<u64>(), flip in any::<usize>()) {
            let all = leaves(new);
            let old = pick % new + 1;
            let (old_root, new_root) = (mth(&all[..old as usize]), mth(&all));
            let mut s = Leaves(all.clone());
            let path = consistency_path(&mut s, old, new).unwrap();
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, &path));
            if old < new {
                prop_assert!(!path.is_empty());
                let mut bad = path.clone();
                let i = flip % bad.len();
                bad[i][31] ^= 0x80;
                prop_assert!(!verify_consistency(old, new, &old_root, &new_root, &bad));
                let forked = leaf_hash(b"fork");
                prop_assert!(!verify_consistency(old, new, &forked, &new_root, &path));
                prop_assert!(!verify_consistency(old, new, &old_root, &forked, &path));
                prop_assert!(!verify_consistency(old + 1, new, &old_root, &new_root, &path) || old + 1 == new);
                prop_assert!(!verify_consistency(old, new, &old_root, &new_root, &[]));
            }
        }

        #[test]
        fn verifiers_never_panic_on_hostile_input(
            a in any::<u64>(), b in any::<u64>(),
            path in prop::collection::vec(any::<[u8; 32]>(), 0..70),
        ) {
            let h = [7u8; 32];
            let _ = verify_inclusion(a, b, &h, &path, &h);
            let _ = verify_consistency(a, b, &h, &h, &path);
        }
    }
}
