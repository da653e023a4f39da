//! The CAR reader on arbitrary bytes: never panics, every block it returns
//! hashes to its CID.
#![no_main]

use hydra_block::CarReader;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(mut car) = CarReader::new(data) {
        for _ in 0..64 {
            match car.next_block() {
                Ok(Some((r, bytes))) => assert!(r.matches(&bytes)),
                _ => break,
            }
        }
    }
});
