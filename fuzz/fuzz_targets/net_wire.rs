//! The `/hydra/sync/4` and `/hydra/blocks/1` decoders on arbitrary bytes,
//! as a peer may send them: never panic, and what decodes encodes back to
//! a message that decodes to itself.
#![no_main]

use hydra_net::codec::{
    decode_blocks_request, decode_blocks_response, decode_request, decode_response,
};

macro_rules! round_trip {
    ($decode:ident, $data:expr) => {
        if let Ok(m) = $decode($data) {
            let again = postcard::to_allocvec(&m).unwrap();
            assert_eq!($decode(&again).unwrap(), m);
        }
    };
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    round_trip!(decode_request, data);
    round_trip!(decode_response, data);
    round_trip!(decode_blocks_request, data);
    round_trip!(decode_blocks_response, data);
});
