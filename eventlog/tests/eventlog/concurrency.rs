use std::collections::HashSet;

use hydra_eventlog::{AllFilter, Direction, Error, ExpectedVersion};

use crate::{ev, open, read_all_of, sid};

/// Eight writers: each owns a stream, and all of them increment one shared
/// stream with optimistic concurrency (read version, append at it, retry
/// on conflict). No lost update, no gap, no duplicate.
#[test]
fn concurrent_writers_with_optimistic_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    const WRITERS: u64 = 8;
    const EACH: u64 = 60;
    let shared = sid("counter");
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (log, shared) = (log.clone(), shared.clone());
            std::thread::spawn(move || {
                let own = sid(&format!("own-{w}"));
                let mut conflicts = 0;
                for i in 0..EACH {
                    let exp = if i == 0 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(i - 1)
                    };
                    log.append(&own, exp, vec![ev("Own", &i.to_string())])
                        .unwrap();
                    loop {
                        let v = log.stream_version(&shared).unwrap();
                        let exp = v.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                        match log.append(&shared, exp, vec![ev("Inc", &format!("{w}.{i}"))]) {
                            Ok(_) => break,
                            Err(Error::WrongExpectedVersion { .. }) => conflicts += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let conflicts: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let counter = read_all_of(&log, &shared);
    assert_eq!(counter.len() as u64, WRITERS * EACH);
    let distinct: HashSet<_> = counter.iter().map(|e| e.data.clone()).collect();
    assert_eq!(
        distinct.len() as u64,
        WRITERS * EACH,
        "no update lost or doubled"
    );
    assert!(
        counter
            .iter()
            .enumerate()
            .all(|(i, e)| e.version == i as u64)
    );
    let all: Vec<_> = log
        .read_all(None, u64::MAX, Direction::Forward, AllFilter::default())
        .map(|e| e.unwrap().position)
        .collect();
    assert_eq!(all, (0..2 * WRITERS * EACH).collect::<Vec<_>>());
    eprintln!("{conflicts} conflicts retried");
}

/// Appends handed over together (a connection's pipelined commands) run in
/// order, each on its own, in one commit.
#[test]
fn appends_handed_over_together_run_in_order_in_one_commit() {
    use hydra_eventlog::StreamWrite;
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let s = sid("piped");
    let before = log.commits();
    // Each expects the version the one before it made; the fourth expects
    // a wrong one and fails alone.
    let writes: Vec<StreamWrite> = (0..16u64)
        .map(|i| {
            let expected = match i {
                0 => ExpectedVersion::NoStream,
                3 => ExpectedVersion::Exact(99),
                i if i > 3 => ExpectedVersion::Exact(i - 2),
                i => ExpectedVersion::Exact(i - 1),
            };
            StreamWrite::new(s.clone(), expected, vec![ev("E", &format!("{i}"))])
        })
        .collect();
    let results = log.write_each(writes);
    assert_eq!(log.commits() - before, 1, "one commit for all of them");
    for (i, r) in results.iter().enumerate() {
        match i {
            3 => assert!(
                matches!(r, Err(Error::WrongExpectedVersion { .. })),
                "{r:?}"
            ),
            _ => assert_eq!(r.as_ref().unwrap().version, i as u64 - u64::from(i > 3)),
        }
    }
    let data: Vec<String> = read_all_of(&log, &s)
        .into_iter()
        .map(|e| String::from_utf8(e.data).unwrap())
        .collect();
    let want: Vec<String> = (0..16).filter(|i| *i != 3).map(|i| i.to_string()).collect();
    assert_eq!(data, want);
}
