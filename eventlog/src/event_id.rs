//! Event ids the log assigns itself: time-ordered UUIDs that carry the
//! event's global position, so that they need no index.
//!
//! Layout (a UUIDv8, "custom"): 48 bits of Unix milliseconds, the version
//! nibble 8, a 12-bit marker `0x4d9`, the variant bits `10`, then 62 bits
//! of the global position. Ordered by time, then position, like a UUIDv7,
//! so an id index would stay sequential, and unique because positions are.
//! An id is only trusted as one of ours when the record at its position
//! carries it: a client may send any UUID, and client ids are indexed.
//!
//! A replica places its writer's events at positions of its own, so the
//! ids the writer generated name the writer's positions, not the
//! replica's: the replica indexes them, one entry per run of ids of one
//! append (see `layout::IdRun`), found by [`locate`].

use std::ops::Bound;

use hydra_volume::{Direction, KeyRange, PageLimit, Volume};
use uuid::Uuid;

use crate::Error;
use crate::layout::{self, EventLocation, IdRun};

const MARKER: u16 = 0x4d9;

/// Most `eid-0/` entries of one millisecond a lookup looks through for
/// the run that holds an id. The first is the one, unless two writers
/// generated the same id (the same millisecond and position): then each
/// run holding it is asked in turn.
const RUNS_LOOKED_AT: usize = 16;

/// The id of the event at `position`, appended at `ms`.
pub fn generated(position: u64, ms: u64) -> Uuid {
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6] = 0x80 | ((MARKER >> 8) as u8 & 0x0f);
    b[7] = MARKER as u8;
    let p = position & ((1 << 62) - 1);
    b[8..].copy_from_slice(&p.to_be_bytes());
    b[8] = (b[8] & 0x3f) | 0x80;
    Uuid::from_bytes(b)
}

/// The position an id of ours names, if it has our layout.
pub fn position_of(id: &Uuid) -> Option<u64> {
    let b = id.as_bytes();
    let marker = (u16::from(b[6] & 0x0f) << 8) | u16::from(b[7]);
    if b[6] >> 4 != 8 || marker != MARKER || b[8] >> 6 != 0b10 {
        return None;
    }
    let mut p = [0u8; 8];
    p.copy_from_slice(&b[8..]);
    p[0] &= 0x3f;
    Some(u64::from_be_bytes(p))
}

/// Whether `next` is the id an append generated right after `prev`: the
/// same millisecond and the next position, so the next id in order too.
pub fn follows(prev: &Uuid, next: &Uuid) -> bool {
    prev.as_bytes()[..6] == next.as_bytes()[..6]
        && matches!((position_of(prev), position_of(next)), (Some(a), Some(b)) if b == a + 1)
}

/// Where the event of id `id` is, by its `eid-0/` entry: an entry of its
/// own, or an [`IdRun`] of a replica ending at a later id of the same
/// append. A run only names a place: `carries` tells whether the event
/// there carries `id` (a run of another writer's append in the same
/// millisecond, or a place whose event was removed, does not).
pub(crate) fn locate(
    volume: &dyn Volume,
    id: &Uuid,
    mut carries: impl FnMut(&EventLocation) -> Result<bool, Error>,
) -> Result<Option<EventLocation>, Error> {
    let key = layout::event_id_key(id);
    let Some(position) = position_of(id) else {
        return volume
            .get(&key)?
            .map(|b| IdRun::decode(&b).map(|r| r.last))
            .transpose();
    };
    // The entries from `id` on that hold ids of its millisecond.
    let range = KeyRange {
        start: Bound::Included(key.clone()),
        end: Bound::Included([layout::EVENT_ID, &id.as_bytes()[..8], &[0xff; 8]].concat()),
    };
    let limit = PageLimit {
        entries: RUNS_LOOKED_AT,
        bytes: usize::MAX,
    };
    for (k, v) in volume.scan_page(&range, Direction::Forward, limit)? {
        let run = IdRun::decode(&v)?;
        if k == key {
            return Ok(Some(run.last));
        }
        let last = Uuid::from_slice(&k[layout::EVENT_ID.len()..])
            .ok()
            .and_then(|last| position_of(&last));
        if let Some(at) = last
            .and_then(|last| last.checked_sub(position))
            .and_then(|back| run.before_last(back))
            && carries(&at)?
        {
            return Ok(Some(at));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_ordered() {
        for p in [0u64, 1, 255, 1 << 40, (1 << 62) - 1] {
            let id = generated(p, 1_795_000_000_000);
            assert_eq!(id.get_version_num(), 8);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(position_of(&id), Some(p));
        }
        assert!(generated(5, 1000) < generated(6, 1000));
        assert!(generated(9, 1000) < generated(1, 1001));
        assert_eq!(position_of(&Uuid::now_v7()), None);
        assert_eq!(position_of(&Uuid::new_v4()), None);
    }

    #[test]
    fn only_the_next_id_of_the_same_append_follows() {
        let ms = 1_795_000_000_000;
        assert!(follows(&generated(7, ms), &generated(8, ms)));
        assert!(!follows(&generated(7, ms), &generated(9, ms)));
        assert!(!follows(&generated(7, ms), &generated(8, ms + 1)));
        assert!(!follows(&generated(8, ms), &generated(7, ms)));
        assert!(!follows(&Uuid::new_v4(), &generated(8, ms)));
    }

    /// Appends of two writers in the same millisecond, at neighbouring
    /// positions, replicated here as id runs, and a client id: every id
    /// is found where its event is, and no other id is.
    #[test]
    fn runs_locate_their_ids_and_no_others() {
        use hydra_volume::{MemVolume, WriteBatch};
        let ms = 1_795_000_000_000;
        let volume = MemVolume::new();
        // (the ids' positions at their writer, stream number here, first
        // version and position here)
        let runs = [
            (100..110, 1, 0, 0),
            (110..113, 2, 0, 10),
            (113..114, 3, 4, 13),
        ];
        let mut truth = std::collections::HashMap::new();
        let mut batch = WriteBatch::new();
        for (at_writer, num, version, position) in runs.clone() {
            let count = at_writer.end - at_writer.start;
            for (i, p) in at_writer.clone().enumerate() {
                let i = i as u64;
                let at = EventLocation {
                    num,
                    version: version + i,
                    position: position + i,
                };
                truth.insert(at.position, generated(p, ms));
            }
            let last = EventLocation {
                num,
                version: version + count - 1,
                position: position + count - 1,
            };
            let key = layout::event_id_key(&generated(at_writer.end - 1, ms));
            batch.put(key, IdRun { last, count }.encode());
        }
        let client = Uuid::new_v4();
        let mut at = EventLocation {
            num: 4,
            version: 0,
            position: 14,
        };
        batch.put(layout::event_id_key(&client), at.encode());
        volume.commit(batch).unwrap();
        let find =
            |id: &Uuid| locate(&volume, id, |at| Ok(truth.get(&at.position) == Some(id))).unwrap();
        for (position, id) in &truth {
            assert_eq!(find(id).map(|at| at.position), Some(*position), "{id}");
        }
        assert_eq!(find(&client), Some(at));
        for other in [
            generated(99, ms),
            generated(114, ms),
            generated(105, ms + 1),
        ] {
            assert_eq!(find(&other), None, "{other}");
        }
        // A run entry whose count does not fit its place is refused.
        at.version = 2;
        let bad = IdRun { last: at, count: 5 }.encode();
        assert!(IdRun::decode(&bad).is_err());
    }
}
