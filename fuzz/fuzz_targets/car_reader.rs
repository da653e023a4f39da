//! The CAR reader on arbitrary bytes: never panics, every block it returns
//! hashes to its CID. And the scan a client counts a downloaded export
//! with (`ExportReport::scan`): never panics, and counts no more blocks
//! than the reader returns.
#![no_main]

use hydra_block::CarReader;
use hydra_eventlog::ExportReport;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut blocks = 0u64;
    if let Ok(mut car) = CarReader::new(data) {
        loop {
            match car.next_block() {
                Ok(Some((r, bytes))) => {
                    assert!(r.matches(&bytes));
                    blocks += 1;
                }
                _ => break,
            }
        }
    }
    if let Ok(report) = ExportReport::scan(data) {
        assert_eq!(report.blocks, blocks);
        assert!(report.streams + report.buckets <= blocks);
    }
});
