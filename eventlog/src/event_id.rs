//! Event ids the log assigns itself: time-ordered UUIDs that carry the
//! event's global position, so that they need no index.
//!
//! Layout (a UUIDv8, "custom"): 48 bits of Unix milliseconds, the version
//! nibble 8, a 12-bit marker `0x4d9`, the variant bits `10`, then 62 bits
//! of the global position. Ordered by time, then position, like a UUIDv7,
//! so an id index would stay sequential, and unique because positions are.
//! An id is only trusted as one of ours when the record at its position
//! carries it: a client may send any UUID, and client ids are indexed.

use uuid::Uuid;

const MARKER: u16 = 0x4d9;

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
}
