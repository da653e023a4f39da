//! Heads, stored heads and proofs from untrusted JSON, then verification:
//! never panics.
#![no_main]

use hydra_eventlog::{ConsistencyProof, Head, InclusionProof, RecordedEvent, StoredHead};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(stored) = serde_json::from_slice::<StoredHead>(data) {
        let _ = stored.verify(&stored.head.signer);
    }
    let Ok((head, proof, event)) =
        serde_json::from_slice::<(Head, InclusionProof, RecordedEvent)>(data)
    else {
        return;
    };
    let _ = hydra_eventlog::verify_event(&head, &head.signer, &event, &proof);
    if let Ok((old, new, c)) = serde_json::from_slice::<(Head, Head, ConsistencyProof)>(data) {
        let _ = hydra_eventlog::verify_consistency(&old, &new, &old.signer, &c);
    }
});
