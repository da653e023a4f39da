//! Random operations against the log and against a plain in-memory model,
//! compared after every step.

use std::collections::BTreeMap;
use std::sync::Arc;

use hydra_eventlog::{AllFilter, Direction, Error, EventLog, ExpectedVersion, Options, ReadFrom};
use proptest::prelude::*;

use crate::{ev, sid};

#[derive(Debug, Clone)]
enum Op {
    Append {
        stream: usize,
        expected: Exp,
        n: usize,
    },
    /// Appends to several streams (or one several times) in one group
    /// commit (`write_each`), each `ExpectedVersion::Any`: full bundles
    /// then wait for later commits to be sealed.
    AppendEach {
        appends: Vec<(usize, usize)>,
    },
    Delete {
        stream: usize,
        hard: bool,
    },
    /// Hide a stream's versions before `before` (`truncate_before`), then
    /// scavenge the log.
    Scavenge {
        stream: usize,
        before: u64,
    },
    /// Close the log and open it again on the same volume.
    Reopen,
}

#[derive(Debug, Clone, Copy)]
enum Exp {
    Any,
    NoStream,
    Exists,
    /// Exact(last version), or off by one when `wrong`.
    Current {
        wrong: bool,
    },
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum Del {
    #[default]
    None,
    Soft,
    Hard,
}

#[derive(Debug, Default)]
struct Model {
    streams: BTreeMap<usize, S>,
    /// Every event ever appended, by position (positions are never reused).
    positions: Vec<(usize, u64)>,
    /// What `$all` holds: the positions a scavenge has not removed.
    all: Vec<(usize, u64)>,
}

#[derive(Debug, Default)]
struct S {
    events: Vec<(u64, u64, String)>,
    length: u64,
    del: Del,
    deleted_before: u64,
    truncate_before: u64,
    /// Versions below this were removed by a scavenge: gone for good.
    scavenged: u64,
}

impl S {
    fn first_visible(&self) -> u64 {
        self.deleted_before
            .max(self.truncate_before)
            .max(self.scavenged)
    }
}

impl S {
    fn last(&self) -> Option<u64> {
        (self.del == Del::None && self.length > 0).then(|| self.length - 1)
    }
}

fn op() -> impl Strategy<Value = Op> {
    let exp = prop_oneof![
        Just(Exp::Any),
        Just(Exp::NoStream),
        Just(Exp::Exists),
        any::<bool>().prop_map(|wrong| Exp::Current { wrong }),
    ];
    // Sizes around a bundle (256 events): short of one, exactly one, one
    // past, and small appends that cross a boundary now and then.
    let n = prop_oneof![
        6 => 1..4usize,
        1 => Just(255usize),
        1 => Just(256usize),
        1 => Just(257usize),
        1 => 1..300usize,
    ];
    prop_oneof![
        8 => (0..3usize, exp, n.clone()).prop_map(|(stream, expected, n)| Op::Append { stream, expected, n }),
        2 => prop::collection::vec((0..3usize, n), 2..5).prop_map(|appends| Op::AppendEach { appends }),
        1 => (0..3usize, prop::bool::weighted(0.2)).prop_map(|(stream, hard)| Op::Delete { stream, hard }),
        1 => (0..3usize, 0..800u64).prop_map(|(stream, before)| Op::Scavenge { stream, before }),
        1 => Just(Op::Reopen),
    ]
}

fn expected(m: &Model, stream: usize, e: Exp) -> ExpectedVersion {
    match e {
        Exp::Any => ExpectedVersion::Any,
        Exp::NoStream => ExpectedVersion::NoStream,
        Exp::Exists => ExpectedVersion::StreamExists,
        Exp::Current { wrong } => {
            let last = m.streams.get(&stream).and_then(S::last).unwrap_or(0);
            ExpectedVersion::Exact(if wrong { last + 1 } else { last })
        }
    }
}

fn check(log: &EventLog, m: &Model) -> Result<(), TestCaseError> {
    for i in 0..3 {
        let s = sid(&format!("s{i}"));
        let got = log.read(&s, ReadFrom::Edge, u64::MAX, Direction::Forward);
        match m.streams.get(&i) {
            Some(st) if st.del == Del::Hard => {
                prop_assert!(matches!(got, Err(Error::StreamDeleted(_))))
            }
            Some(st) if st.last().is_some() => {
                let got: Vec<_> = got
                    .unwrap()
                    .map(|e| e.map(|e| (e.version, e.position, String::from_utf8(e.data).unwrap())))
                    .collect::<Result<_, _>>()
                    .unwrap();
                let want: Vec<_> = st
                    .events
                    .iter()
                    .filter(|e| e.0 >= st.first_visible())
                    .cloned()
                    .collect();
                prop_assert_eq!(&got, &want);
                prop_assert_eq!(log.stream_version(&s).unwrap(), st.last());
                // Backwards, from the end and from the middle.
                let back: Vec<_> = log
                    .read(&s, ReadFrom::Edge, u64::MAX, Direction::Backward)
                    .unwrap()
                    .map(|e| e.unwrap().version)
                    .collect();
                let mut fwd: Vec<_> = want.iter().map(|e| e.0).collect();
                fwd.reverse();
                prop_assert_eq!(&back, &fwd);
                if let Some(mid) = want.get(want.len() / 2) {
                    let from_mid: Vec<_> = log
                        .read(&s, ReadFrom::Version(mid.0), 300, Direction::Backward)
                        .unwrap()
                        .map(|e| e.unwrap().version)
                        .collect();
                    let expect: Vec<_> = fwd
                        .iter()
                        .copied()
                        .filter(|v| *v <= mid.0)
                        .take(300)
                        .collect();
                    prop_assert_eq!(from_mid, expect);
                    // Time travel: the stream as it was at mid's length.
                    let then: Vec<_> = log
                        .read_at(&s, mid.0 + 1, ReadFrom::Edge, u64::MAX, Direction::Forward)
                        .unwrap()
                        .map(|e| e.unwrap().version)
                        .collect();
                    let expect: Vec<_> = want.iter().map(|e| e.0).filter(|v| *v <= mid.0).collect();
                    prop_assert_eq!(then, expect);
                }
            }
            _ => prop_assert!(matches!(got, Err(Error::StreamNotFound(_)))),
        }
    }
    let all_of = |from: Option<u64>, count: u64, direction: Direction| -> Vec<(usize, u64, u64)> {
        log.read_all(from, count, direction, AllFilter::default())
            .map(|e| {
                let e = e.unwrap();
                (
                    e.stream.as_str()[1..].parse::<usize>().unwrap(),
                    e.version,
                    e.position,
                )
            })
            .collect()
    };
    let all = all_of(None, u64::MAX, Direction::Forward);
    let want: Vec<_> = m.all.iter().map(|(i, v)| (*i, *v)).collect();
    prop_assert_eq!(
        all.iter().map(|(i, v, _)| (*i, *v)).collect::<Vec<_>>(),
        want
    );
    // Backwards, and pages from the middle either way: what is read from
    // a bundle's runs of positions stops where the count does and leaves
    // out what was scavenged.
    let mut back = all_of(None, u64::MAX, Direction::Backward);
    back.reverse();
    prop_assert_eq!(&back, &all);
    if let Some(mid) = all.get(all.len() / 2) {
        let at = all.len() / 2;
        for count in [1, 7, 300] {
            let fwd = all_of(Some(mid.2), count, Direction::Forward);
            prop_assert_eq!(&fwd[..], &all[at..(at + count as usize).min(all.len())]);
            let bwd = all_of(Some(mid.2), count, Direction::Backward);
            let expect: Vec<_> = all[..=at]
                .iter()
                .rev()
                .take(count as usize)
                .copied()
                .collect();
            prop_assert_eq!(bwd, expect);
        }
    }
    Ok(())
}

/// The model after an append to `stream` of events carrying `data`, which
/// the log answered with `r`.
fn appended(
    m: &mut Model,
    stream: usize,
    r: &hydra_eventlog::AppendResult,
    data: impl Iterator<Item = String>,
) -> Result<(), TestCaseError> {
    let st = m.streams.entry(stream).or_default();
    prop_assert_eq!(r.first_version, st.length);
    st.del = Del::None;
    for d in data {
        let pos = m.positions.len() as u64;
        st.events.push((st.length, pos, d));
        m.positions.push((stream, st.length));
        m.all.push((stream, st.length));
        st.length += 1;
    }
    prop_assert_eq!(r.position, m.positions.len() as u64 - 1);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_log_behaves_like_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let store = hydra_bucket::Store::open(Arc::new(hydra_volume::MemVolume::new())).unwrap();
        let mut log = EventLog::open(store.clone(), Options::default()).unwrap();
        let mut m = Model::default();
        for (step, o) in ops.into_iter().enumerate() {
            match o {
                Op::Append { stream, expected: e, n } => {
                    let exp = expected(&m, stream, e);
                    let events = (0..n).map(|i| ev("E", &format!("{step}.{i}"))).collect();
                    let got = log.append(&sid(&format!("s{stream}")), exp, events);
                    let fresh = S::default();
                    let st = m.streams.get(&stream).unwrap_or(&fresh);
                    if st.del == Del::Hard {
                        prop_assert!(matches!(got, Err(Error::StreamDeleted(_))));
                        continue;
                    }
                    let last = st.last();
                    let ok = match exp {
                        ExpectedVersion::Any => true,
                        ExpectedVersion::NoStream => last.is_none(),
                        ExpectedVersion::StreamExists => last.is_some(),
                        ExpectedVersion::Exact(v) => last == Some(v),
                    };
                    if !ok {
                        let conflict = matches!(got, Err(Error::WrongExpectedVersion { actual, .. }) if actual == last);
                        prop_assert!(conflict, "expected a conflict");
                        continue;
                    }
                    appended(&mut m, stream, &got.unwrap(), (0..n).map(|i| format!("{step}.{i}")))?;
                }
                Op::AppendEach { appends } => {
                    let writes = appends
                        .iter()
                        .enumerate()
                        .map(|(j, &(stream, n))| {
                            let events = (0..n).map(|i| ev("E", &format!("{step}.{j}.{i}"))).collect();
                            hydra_eventlog::StreamWrite::new(sid(&format!("s{stream}")), ExpectedVersion::Any, events)
                        })
                        .collect();
                    let results = log.write_each(writes);
                    for (j, (&(stream, n), got)) in appends.iter().zip(results).enumerate() {
                        if m.streams.get(&stream).is_some_and(|st| st.del == Del::Hard) {
                            prop_assert!(matches!(got, Err(Error::StreamDeleted(_))));
                            continue;
                        }
                        let data = (0..n).map(|i| format!("{step}.{j}.{i}"));
                        appended(&mut m, stream, &got.unwrap(), data)?;
                    }
                }
                Op::Reopen => {
                    log.close().unwrap();
                    log = EventLog::open(store.clone(), Options::default()).unwrap();
                }
                Op::Scavenge { stream, before } => {
                    if let Some(st) = m.streams.get_mut(&stream).filter(|st| st.del != Del::Hard) {
                        log.set_metadata(
                            &sid(&format!("s{stream}")),
                            hydra_eventlog::StreamMetadata {
                                truncate_before: Some(before),
                                ..Default::default()
                            },
                        )
                        .unwrap();
                        st.truncate_before = before;
                    }
                    log.scavenge().unwrap();
                    // What no reader can see goes from $all.
                    for st in m.streams.values_mut() {
                        // A scavenge removes what no reader can see, never
                        // versions not yet written.
                        st.scavenged = if st.del == Del::Hard { st.length } else { st.first_visible().min(st.length) };
                    }
                    let gone = |i: usize, v: u64| m.streams.get(&i).is_some_and(|st| v < st.scavenged);
                    let kept: Vec<_> = m
                        .all
                        .iter()
                        .copied()
                        .filter(|&(i, v)| !gone(i, v))
                        .collect();
                    m.all = kept;
                }
                Op::Delete { stream, hard } => {
                    let got = log.delete(&sid(&format!("s{stream}")), ExpectedVersion::Any, hard);
                    match m.streams.get_mut(&stream) {
                        None => prop_assert!(matches!(got, Err(Error::StreamNotFound(_)))),
                        Some(st) if st.del == Del::Hard => prop_assert!(matches!(got, Err(Error::StreamDeleted(_)))),
                        Some(st) if st.del == Del::Soft && !hard => prop_assert!(matches!(got, Err(Error::StreamNotFound(_)))),
                        Some(st) => {
                            got.unwrap();
                            st.del = if hard { Del::Hard } else { Del::Soft };
                            st.deleted_before = st.length;
                        }
                    }
                }
            }
            check(&log, &m)?;
        }
    }
}
