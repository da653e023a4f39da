//! Block decoding on arbitrary bytes: refs, node envelopes, links.
#![no_main]

use hydra_block::{Codec, Kind, Node, Ref, links, links_of};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = links_of(data);
    let _ = links(Codec::Node, data);
    let _ = Node::<Vec<u64>>::decode(Kind(0x0101), data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(r) = s.parse::<Ref>() {
            assert_eq!(r.to_string().parse::<Ref>().unwrap(), r);
        }
    }
});
