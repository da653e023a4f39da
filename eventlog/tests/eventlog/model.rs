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
    Delete {
        stream: usize,
        hard: bool,
    },
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
    positions: Vec<(usize, u64)>,
}

#[derive(Debug, Default)]
struct S {
    events: Vec<(u64, u64, String)>,
    length: u64,
    del: Del,
    deleted_before: u64,
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
    prop_oneof![
        8 => (0..3usize, exp, 1..4usize).prop_map(|(stream, expected, n)| Op::Append { stream, expected, n }),
        1 => (0..3usize, prop::bool::weighted(0.2)).prop_map(|(stream, hard)| Op::Delete { stream, hard }),
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
                    .filter(|e| e.0 >= st.deleted_before)
                    .cloned()
                    .collect();
                prop_assert_eq!(got, want);
                prop_assert_eq!(log.stream_version(&s).unwrap(), st.last());
            }
            _ => prop_assert!(matches!(got, Err(Error::StreamNotFound(_)))),
        }
    }
    let all: Vec<_> = log
        .read_all(None, u64::MAX, Direction::Forward, AllFilter::default())
        .map(|e| {
            let e = e.unwrap();
            (e.stream.as_str()[1..].parse::<usize>().unwrap(), e.version)
        })
        .collect();
    prop_assert_eq!(&all, &m.positions);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_log_behaves_like_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let store = hydra_bucket::Store::open(Arc::new(hydra_volume::MemVolume::new())).unwrap();
        let log = EventLog::open(store, Options::default()).unwrap();
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
                    let r = got.unwrap();
                    let st = m.streams.entry(stream).or_default();
                    prop_assert_eq!(r.first_version, st.length);
                    st.del = Del::None;
                    for i in 0..n {
                        let pos = m.positions.len() as u64;
                        st.events.push((st.length, pos, format!("{step}.{i}")));
                        m.positions.push((stream, st.length));
                        st.length += 1;
                    }
                    prop_assert_eq!(r.position, m.positions.len() as u64 - 1);
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
