//! HTTP append bodies (one JSON event or an array of them, with data as
//! JSON or base64) as any client may send them: never panics, and what
//! parses has a type and bounded parts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(events) = hydra::parse_events(data) {
        for e in events {
            assert!(e.data.len() <= data.len() && e.metadata.len() <= data.len());
        }
    }
});
