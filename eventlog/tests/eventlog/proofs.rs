use hydra_eventlog::{
    ExpectedVersion, Head, ProofError, RecordedEvent, verify_consistency, verify_event,
};

use crate::{ev, fill, open, read_all_of, sid};

#[test]
fn every_event_proves_against_the_signed_head() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let key = log.identity().public_key();
    let s = sid("proved");
    // Cross the 256-event stored-subtree boundary several times.
    for n in [1u64, 2, 3, 255, 256, 257, 700] {
        let have = log.stream_version(&s).unwrap().map_or(0, |v| v + 1);
        fill(&log, &s, n - have);
        let events = read_all_of(&log, &s);
        for v in [0, n / 2, n - 1, n.saturating_sub(257), 255.min(n - 1)] {
            let (head, proof) = log.prove(&s, v).unwrap();
            assert_eq!(head.length, n);
            assert!(proof.path.len() <= 11, "{} hashes", proof.path.len());
            verify_event(&head, &key, &events[v as usize], &proof).unwrap();
        }
    }
}

#[test]
fn older_heads_are_proved_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let key = log.identity().public_key();
    let s = sid("grow");
    let mut heads: Vec<Head> = Vec::new();
    for _ in 0..6 {
        fill(&log, &s, 97);
        heads.push(log.head(&s).unwrap());
    }
    for (i, old) in heads.iter().enumerate() {
        assert_eq!(log.head_at(&s, old.length).unwrap().root, old.root);
        for new in &heads[i..] {
            let proof = log.prove_consistency(&s, old.length, new.length).unwrap();
            verify_consistency(old, new, &key, &proof).unwrap();
        }
    }
    // A forked history: another log with a different event at the same
    // place does not prove consistent.
    let dir2 = tempfile::tempdir().unwrap();
    let other = open(dir2.path());
    fill(&other, &s, 97);
    other
        .append(&s, ExpectedVersion::Any, vec![ev("Fork", "x")])
        .unwrap();
    fill(&other, &s, 96);
    let forked = other.head(&s).unwrap();
    let proof = log
        .prove_consistency(&s, heads[0].length, heads[1].length)
        .unwrap();
    assert!(
        verify_consistency(&heads[0], &forked, &other.identity().public_key(), &proof).is_err()
    );
}

/// One way of tampering with a value.
type Change<T> = Box<dyn Fn(&mut T)>;

#[test]
fn tampering_with_any_field_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let key = log.identity().public_key();
    let s = sid("tamper");
    fill(&log, &s, 300);
    let event = read_all_of(&log, &s)[123].clone();
    let (head, proof) = log.prove(&s, 123).unwrap();
    verify_event(&head, &key, &event, &proof).unwrap();

    let head_changes: Vec<Change<Head>> = vec![
        Box::new(|h| h.stream = sid("other")),
        Box::new(|h| h.length += 1),
        Box::new(|h| h.root[0] ^= 1),
        Box::new(|h| h.position = h.position.map(|p| p + 1)),
        Box::new(|h| h.signature[5] ^= 1),
        Box::new(|h| h.signer[0] ^= 1),
    ];
    for change in &head_changes {
        let mut bad = head.clone();
        change(&mut bad);
        assert!(verify_event(&bad, &key, &event, &proof).is_err(), "{bad:?}");
    }
    let event_changes: Vec<Change<RecordedEvent>> = vec![
        Box::new(|e| e.data.push(b' ')),
        Box::new(|e| e.metadata.push(b' ')),
        Box::new(|e| e.event_type.push('x')),
        Box::new(|e| e.timestamp += 1),
        Box::new(|e| e.id = uuid::Uuid::new_v4()),
        Box::new(|e| e.version += 1),
        Box::new(|e| e.stream = sid("x")),
    ];
    for change in &event_changes {
        let mut bad = event.clone();
        change(&mut bad);
        assert!(verify_event(&head, &key, &bad, &proof).is_err(), "{bad:?}");
    }
    let mut bad = proof.clone();
    bad.path[2][9] ^= 1;
    assert_eq!(
        verify_event(&head, &key, &event, &bad),
        Err(ProofError::PathInvalid)
    );
    let mut bad = proof.clone();
    bad.path.pop();
    assert!(verify_event(&head, &key, &event, &bad).is_err());
    let mut bad = proof.clone();
    bad.length -= 1;
    assert!(verify_event(&head, &key, &event, &bad).is_err());
    let stranger = [9u8; 32];
    assert!(matches!(
        verify_event(&head, &stranger, &event, &proof),
        Err(ProofError::UntrustedSigner { .. })
    ));
    // Proofs travel as JSON and still verify.
    let json = serde_json::to_string(&(&head, &proof)).unwrap();
    let (h2, p2): (Head, hydra_eventlog::InclusionProof) = serde_json::from_str(&json).unwrap();
    verify_event(&h2, &key, &event, &p2).unwrap();
}
