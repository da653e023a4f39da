//! The RESP command splitter on arbitrary bytes: never panics, never
//! consumes more than it was given.
#![no_main]

#[path = "../../cmd/src/daemon/resp/frame.rs"]
mod frame;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = data.to_vec();
    for _ in 0..64 {
        let before = input.len();
        match frame::take(&mut input) {
            Ok(Some(_)) => assert!(input.len() < before),
            Ok(None) | Err(_) => break,
        }
    }
});
