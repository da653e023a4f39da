//! Ordered scans: [`KeyRange`], [`Direction`] and the paging [`Scan`].

use std::collections::VecDeque;
use std::ops::Bound;

use crate::{Volume, VolumeError};

/// A range of keys, ordered bytewise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Bound<Vec<u8>>,
    pub end: Bound<Vec<u8>>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> KeyRange {
        KeyRange {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
        }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> KeyRange {
        KeyRange {
            start: Bound::Included(prefix.to_vec()),
            end: match successor(prefix) {
                Some(s) => Bound::Excluded(s),
                None => Bound::Unbounded,
            },
        }
    }

    /// Keys in `[start, end)`.
    pub fn between(start: &[u8], end: &[u8]) -> KeyRange {
        KeyRange {
            start: Bound::Included(start.to_vec()),
            end: Bound::Excluded(end.to_vec()),
        }
    }

    /// True when no key can be in the range.
    pub fn is_empty(&self) -> bool {
        match (&self.start, &self.end) {
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
            | (Bound::Excluded(s), Bound::Included(e)) => s >= e,
            _ => false,
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        let after_start = match &self.start {
            Bound::Included(s) => key >= s.as_slice(),
            Bound::Excluded(s) => key > s.as_slice(),
            Bound::Unbounded => true,
        };
        let before_end = match &self.end {
            Bound::Included(e) => key <= e.as_slice(),
            Bound::Excluded(e) => key < e.as_slice(),
            Bound::Unbounded => true,
        };
        after_start && before_end
    }

    /// The pair of borrowed bounds engines take.
    pub fn as_bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (as_ref(&self.start), as_ref(&self.end))
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k),
        Bound::Excluded(k) => Bound::Excluded(k),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The smallest key greater than every key that starts with `prefix`, or
/// `None` when there is none (the prefix is empty or all 0xff).
pub fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// Which way a scan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Forward,
    Backward,
}

/// How much one page of a scan may hold. A page always holds at least one
/// entry, however large, so a scan always makes progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit {
    pub entries: usize,
    pub bytes: usize,
}

impl Default for PageLimit {
    fn default() -> Self {
        PageLimit {
            entries: 1024,
            bytes: 8 << 20,
        }
    }
}

impl PageLimit {
    /// True when a page holding `entries` entries of `bytes` bytes is full.
    pub fn full(&self, entries: usize, bytes: usize) -> bool {
        entries >= self.entries || bytes >= self.bytes
    }
}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// An ordered scan that reads its range a page at a time, each page in its
/// own short read transaction.
///
/// Memory stays bounded by one page whatever the range's size, and no read
/// transaction outlives a page (a long LMDB or redb reader pins old pages
/// and grows the file). The price: a scan is not one snapshot. A key
/// written or deleted during the scan, after the page that covers it was
/// read, is not seen; one in a page not yet read is.
pub struct Scan<'a> {
    volume: &'a dyn Volume,
    range: KeyRange,
    direction: Direction,
    limit: PageLimit,
    page: VecDeque<Entry>,
    done: bool,
}

impl<'a> Scan<'a> {
    pub(crate) fn new(volume: &'a dyn Volume, range: KeyRange, direction: Direction) -> Scan<'a> {
        Scan {
            volume,
            range,
            direction,
            limit: PageLimit::default(),
            page: VecDeque::new(),
            done: false,
        }
    }

    /// Sets the page size (mostly for tests and tuning).
    pub fn page_limit(mut self, limit: PageLimit) -> Scan<'a> {
        self.limit = limit;
        self
    }

    fn fill(&mut self) -> Result<(), VolumeError> {
        if self.range.is_empty() {
            self.done = true;
            return Ok(());
        }
        let page = self
            .volume
            .scan_page(&self.range, self.direction, self.limit)?;
        let last = match page.last() {
            Some((k, _)) => k.clone(),
            None => {
                self.done = true;
                return Ok(());
            }
        };
        // Narrow the range past what this page returned.
        match self.direction {
            Direction::Forward => self.range.start = Bound::Excluded(last),
            Direction::Backward => self.range.end = Bound::Excluded(last),
        }
        self.page.extend(page);
        Ok(())
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<Entry, VolumeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty()
            && !self.done
            && let Err(e) = self.fill()
        {
            self.done = true;
            return Some(Err(e));
        }
        self.page.pop_front().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_and_prefix_ranges() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b"\xff\xff"), None);
        assert_eq!(successor(b""), None);
        let r = KeyRange::prefix(b"a\xff");
        assert!(r.contains(b"a\xff"));
        assert!(r.contains(b"a\xff\xff\x00"));
        assert!(!r.contains(b"b"));
        assert!(!r.contains(b"a"));
        assert!(KeyRange::prefix(b"\xff").contains(b"\xff\xff"));
    }

    #[test]
    fn empty_ranges() {
        assert!(KeyRange::between(b"b", b"a").is_empty());
        assert!(KeyRange::between(b"a", b"a").is_empty());
        assert!(!KeyRange::between(b"a", b"b").is_empty());
        assert!(!KeyRange::all().is_empty());
    }
}
