//! Signed bucket manifests and object closures as a peer may send them:
//! decoding and checking never panic. The writer the bytes name is
//! trusted, so that the signature check and the bounds after it run too.
#![no_main]

use hydra_bucket::{BucketName, Closure, Manifest};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let bucket: BucketName = "replica".parse().unwrap();
    let writer = postcard::from_bytes::<(Vec<u8>, Vec<u8>)>(data)
        .ok()
        .and_then(|(body, _)| postcard::from_bytes::<Manifest>(&body).ok())
        .map(|m| m.writer);
    let _ = Manifest::open(data, &bucket, &writer.into_iter().collect::<Vec<_>>());
    let _ = Closure::decode(data);
});
