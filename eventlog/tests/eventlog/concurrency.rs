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
