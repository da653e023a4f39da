//! The `/hydra/sync/1` decoders on arbitrary bytes, as a peer may send
//! them: never panic, and what decodes encodes back to a message that
//! decodes to itself.
#![no_main]

use hydra_net::codec::{decode_request, decode_response};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode_request(data) {
        let again = postcard::to_allocvec(&req).unwrap();
        assert_eq!(decode_request(&again).unwrap(), req);
    }
    if let Ok(res) = decode_response(data) {
        let again = postcard::to_allocvec(&res).unwrap();
        assert_eq!(decode_response(&again).unwrap(), res);
    }
});
