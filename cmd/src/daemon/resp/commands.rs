//! The event commands that read or write the log (SierraDB's syntax and
//! reply shapes). Each runs on a blocking thread.
//!
//! Partitions are SierraDB's (see `hydra_eventlog::partition_of`): a
//! stream's partition key, given by its first append (`PARTITION_KEY`,
//! `EMAPPEND`'s key) or else SierraDB's for its id, picks one of 32
//! partitions, each numbering its events without gaps; `EPSCAN`, `EPSEQ`
//! and `EPSUB` take a partition number or key.
//!
//! Replies and errors follow SierraDB's server: every argument error is
//! `INVALIDARG`, and a scan reports `has_more` when its page is full or
//! an event lies past its end bound.

use hydra_eventlog::{
    Direction, Error as LogError, NewEvent, PARTITIONS, ReadFrom, RecordedEvent, StreamId,
    StreamWrite,
};
use uuid::Uuid;

use super::args::{ArgResult, Args, invalid};
use super::numbering::{Numbered, Numbering};
use super::reply::Reply;
use crate::access::Need;
use crate::daemon::app::App;
use crate::daemon::auth::{Caller, Denied};

/// The RESP error of a refusal: SierraDB has none; Redis's codes.
pub fn denied(d: Denied) -> Reply {
    match d {
        Denied::Missing => Reply::err("NOAUTH", "Authentication required: send AUTH TOKEN"),
        Denied::Unknown => Reply::err("NOAUTH", crate::daemon::auth::UNKNOWN),
        Denied::Forbidden(m) => Reply::err("NOPERM", m),
    }
}

/// Refuses a caller without `need`.
pub fn check(caller: &Caller, need: Need) -> ArgResult<()> {
    caller.check(&need).map_err(denied)
}

/// Most events one `ESCAN`/`EPSCAN` returns without a `COUNT`.
const DEFAULT_COUNT: u64 = 1000;

/// Most events one scan returns, whatever its `COUNT`, and the payload
/// and metadata bytes past which it stops adding more: a larger answer
/// comes in pages (`has_more`), so that no command makes the daemon hold
/// more than about this for a connection.
pub const MAX_COUNT: u64 = 10_000;
pub const MAX_SCAN_BYTES: usize = 16 << 20;

/// The one error mapping for RESP: SierraDB's codes where they exist.
pub fn error(e: LogError) -> Reply {
    let code = match &e {
        LogError::WrongExpectedVersion { .. } => "WRONGVER",
        LogError::StreamNotFound(_)
        | LogError::EventNotFound(_)
        | LogError::NoSuchPosition(_)
        | LogError::NoSuchVersion { .. }
        | LogError::SubscriptionNotFound(_)
        | LogError::SnapshotNotFound { .. } => "NOTFOUND",
        LogError::StreamDeleted(_) | LogError::Scavenged { .. } => "DELETED",
        LogError::Replicated { .. } => "REPLICA",
        LogError::BadStreamId(_)
        | LogError::OtherPartition { .. }
        | LogError::BadEventType(_)
        | LogError::DuplicateInAppend { .. }
        | LogError::DuplicateEventId { .. }
        | LogError::EmptyAppend
        | LogError::DuplicateStreamInAppend { .. } => "INVALIDARG",
        _ => "ERR",
    };
    Reply::err(code, e)
}

/// An event as SierraDB encodes it.
pub fn event(e: &RecordedEvent, n: &Numbered) -> Reply {
    Reply::map([
        ("event_id", Reply::str(e.id.to_string())),
        ("partition_key", Reply::str(n.key.to_string())),
        ("partition_id", Reply::Int(n.partition as i64)),
        ("transaction_id", Reply::str(e.id.to_string())),
        ("partition_sequence", Reply::Int(n.sequence as i64)),
        ("stream_version", Reply::Int(e.version as i64)),
        ("timestamp", Reply::Int(e.timestamp as i64)),
        ("stream_id", Reply::bulk(e.stream.as_str())),
        ("event_name", Reply::bulk(e.event_type.as_str())),
        ("metadata", Reply::bulk(e.metadata.clone())),
        ("payload", Reply::bulk(e.data.clone())),
    ])
}

/// One event's options after its stream and name.
fn event_options(
    args: &mut Args,
    allow_partition_key: bool,
) -> ArgResult<(NewEvent, hydra_eventlog::ExpectedVersion, Option<Uuid>)> {
    let mut e = NewEvent::default();
    let mut expected = hydra_eventlog::ExpectedVersion::Any;
    let mut pk = None;
    loop {
        match args.peek_upper().as_deref() {
            Some("EVENT_ID") => {
                args.keyword("EVENT_ID");
                e.id = Some(args.uuid("event id")?);
            }
            Some("PARTITION_KEY") if allow_partition_key => {
                args.keyword("PARTITION_KEY");
                pk = Some(args.uuid("partition key")?);
            }
            Some("EXPECTED_VERSION") => {
                args.keyword("EXPECTED_VERSION");
                expected = args.expected()?;
            }
            Some("TIMESTAMP") => {
                args.keyword("TIMESTAMP");
                e.timestamp = Some(args.u64("timestamp")?);
            }
            Some("PAYLOAD") => {
                args.keyword("PAYLOAD");
                e.data = args.next_bytes("payload")?;
            }
            Some("METADATA") => {
                args.keyword("METADATA");
                e.metadata = args.next_bytes("metadata")?;
            }
            _ => return Ok((e, expected, pk)),
        }
    }
}

/// `EAPPEND <stream> <event_type> [EVENT_ID id] [PARTITION_KEY uuid]
/// [EXPECTED_VERSION n|any|exists|empty] [TIMESTAMP ms] [PAYLOAD b]
/// [METADATA b]`.
///
/// Consecutive `EAPPEND`s a connection has already received (pipelined)
/// run together: each on its own and in order, in one group commit.
pub fn eappends(app: &App, caller: &Caller, commands: Vec<Args>) -> Vec<Reply> {
    // Parsed (and allowed) first; those go to the log together.
    let parsed: Vec<ArgResult<StreamWrite>> = commands
        .into_iter()
        .map(|args| {
            let w = parse_eappend(args)?;
            check(caller, Need::Write(w.stream.to_string()))?;
            Ok(w)
        })
        .collect();
    let writes = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let mut results = app.log.write_each(writes).into_iter();
    parsed
        .into_iter()
        .map(|p| {
            let w = p?;
            let r = results
                .next()
                .expect("one result per write")
                .map_err(error)?;
            app.metrics.appends.inc();
            app.metrics.events_appended.inc();
            let e = app.log.event_at(r.position).map_err(error)?;
            let key = match w.partition_key {
                Some(k) => k,
                None => Numbering::default()
                    .key(&app.log, &w.stream)
                    .map_err(error)?,
            };
            Ok(Reply::map([
                ("event_id", Reply::str(e.id.to_string())),
                ("partition_key", Reply::str(key.to_string())),
                ("partition_id", Reply::Int(r.partition as i64)),
                (
                    "partition_sequence",
                    Reply::Int(r.first_partition_sequence as i64),
                ),
                ("stream_version", Reply::Int(r.version as i64)),
                ("timestamp", Reply::Int(e.timestamp as i64)),
            ]))
        })
        .map(|r: ArgResult<Reply>| r.unwrap_or_else(|e| e))
        .collect()
}

/// One `EAPPEND`'s write.
fn parse_eappend(mut args: Args) -> ArgResult<StreamWrite> {
    let stream = args.stream()?;
    let event_type = args.next_str("event name")?;
    let (mut e, expected, pk) = event_options(&mut args, true)?;
    args.finish()?;
    e.event_type = event_type;
    let mut w = StreamWrite::new(stream, expected, vec![e]);
    w.partition_key = pk;
    Ok(w)
}

/// `EMAPPEND <partition_key> <stream> <type> [options] [<stream> <type>
/// [options] ...]`: all or nothing.
pub fn emappend(app: &App, caller: &Caller, mut args: Args) -> ArgResult<Reply> {
    let pk = args.uuid("partition key")?;
    let mut writes: Vec<StreamWrite> = Vec::new();
    let mut count = 0u64;
    while !args.is_empty() {
        let stream = args.stream()?;
        let event_type = args.next_str("event name")?;
        let (mut e, expected, _) = event_options(&mut args, false)?;
        e.event_type = event_type;
        count += 1;
        // Several events of one stream in one EMAPPEND append together.
        match writes.iter_mut().find(|w| w.stream == stream) {
            Some(w) => {
                if expected != hydra_eventlog::ExpectedVersion::Any {
                    return Err(invalid(format!(
                        "stream {stream}: give EXPECTED_VERSION on its first event only"
                    )));
                }
                w.events.push(e);
            }
            None => writes.push(StreamWrite {
                stream,
                expected,
                events: vec![e],
                bucket: None,
                partition_key: Some(pk),
            }),
        }
    }
    if writes.is_empty() {
        return Err(invalid("EMAPPEND needs at least one event"));
    }
    for w in &writes {
        check(caller, Need::Write(w.stream.to_string()))?;
    }
    let results = app.log.append_multi(writes.clone()).map_err(error)?;
    app.metrics.appends.inc();
    app.metrics.events_appended.inc_by(count);
    let partition = hydra_eventlog::partition_of(&pk);
    let first = results
        .iter()
        .map(|r| r.first_partition_sequence)
        .min()
        .unwrap_or(0);
    let mut last = first;
    let mut events = Vec::new();
    for (w, r) in writes.iter().zip(&results) {
        for i in 0..w.events.len() as u64 {
            let e = app.log.event_at(r.first_position + i).map_err(error)?;
            let sequence = r.first_partition_sequence + i;
            last = last.max(sequence);
            events.push(Reply::map([
                ("event_id", Reply::str(e.id.to_string())),
                ("partition_id", Reply::Int(partition as i64)),
                ("partition_sequence", Reply::Int(sequence as i64)),
                ("stream_id", Reply::bulk(w.stream.as_str())),
                ("stream_version", Reply::Int((r.first_version + i) as i64)),
                ("timestamp", Reply::Int(e.timestamp as i64)),
            ]));
        }
    }
    Ok(Reply::map([
        ("partition_key", Reply::str(pk.to_string())),
        ("partition_id", Reply::Int(partition as i64)),
        ("first_partition_sequence", Reply::Int(first as i64)),
        ("last_partition_sequence", Reply::Int(last as i64)),
        ("events", Reply::Array(events)),
    ]))
}

/// `EGET <event_id>`: the event, or null.
pub fn eget(app: &App, caller: &Caller, mut args: Args) -> ArgResult<Reply> {
    check(caller, Need::read_all())?;
    let id = args.uuid("event id")?;
    args.finish()?;
    match app.log.get_event(id) {
        Ok(e) => {
            let n = Numbering::default()
                .number(&app.log, &[&e], &[])
                .map_err(error)?;
            Ok(event(&e, &n[0]))
        }
        Err(LogError::EventNotFound(_)) => Ok(Reply::Null),
        Err(e) => Err(error(e)),
    }
}

/// A scan's options: `COUNT n` and `PARTITION_KEY uuid`, in any order.
fn scan_options(args: &mut Args) -> ArgResult<(u64, Option<Uuid>)> {
    let (mut count, mut key) = (DEFAULT_COUNT, None);
    loop {
        if args.keyword("COUNT") {
            count = args.u64("count")?;
        } else if args.keyword("PARTITION_KEY") {
            key = Some(args.uuid("partition key")?);
        } else {
            args.finish()?;
            return Ok((count, key));
        }
    }
}

/// Whether `stream` is in the partition of `key`, when one is given: a
/// stream looked for under another key is not there, as in SierraDB.
fn under_key(app: &App, stream: &StreamId, key: Option<Uuid>) -> ArgResult<bool> {
    let Some(key) = key else {
        return Ok(true);
    };
    let own = app.log.partition_key(stream).map_err(error)?;
    Ok(own.is_none_or(|own| own == key))
}

/// `ESCAN <stream> <start|-> <end|+> [PARTITION_KEY uuid] [COUNT n]`:
/// `{has_more, events}`.
pub fn escan(app: &App, caller: &Caller, mut args: Args) -> ArgResult<Reply> {
    let stream = args.stream()?;
    check(caller, Need::Read(stream.to_string()))?;
    let start = args.bound("start version")?.unwrap_or(0);
    let end = args.bound("end version")?;
    let (count, key) = scan_options(&mut args)?;
    if !under_key(app, &stream, key)? {
        return scan_page(app, std::iter::empty(), |_, _| true, count);
    }
    match app.log.read(
        &stream,
        ReadFrom::Version(start),
        count.saturating_add(1),
        Direction::Forward,
    ) {
        Ok(it) => scan_page(
            app,
            it.map(|e| e.map(|e| (e, None))),
            |e, _| end.is_none_or(|end| e.version <= end),
            count,
        ),
        Err(LogError::StreamNotFound(_)) => scan_page(app, std::iter::empty(), |_, _| true, count),
        Err(e) => Err(error(e)),
    }
}

/// `ESVER <stream> [PARTITION_KEY uuid]`: the last version, or null.
pub fn esver(app: &App, caller: &Caller, mut args: Args) -> ArgResult<Reply> {
    let stream = args.stream()?;
    check(caller, Need::Read(stream.to_string()))?;
    let key = if args.keyword("PARTITION_KEY") {
        Some(args.uuid("partition key")?)
    } else {
        None
    };
    args.finish()?;
    if !under_key(app, &stream, key)? {
        return Ok(Reply::Null);
    }
    match app.log.stream_version(&stream).map_err(error)? {
        Some(v) => Ok(Reply::Int(v as i64)),
        None => Ok(Reply::Null),
    }
}

/// A partition: its number (below 32), or a key, which picks one.
pub fn partition_arg(p: &str) -> ArgResult<u16> {
    if let Ok(key) = p.parse::<Uuid>() {
        return Ok(hydra_eventlog::partition_of(&key));
    }
    match p.parse::<u16>() {
        Ok(n) if n < PARTITIONS => Ok(n),
        Ok(n) => Err(invalid(format!(
            "partition {n} does not exist: there are {PARTITIONS}, 0 to {}",
            PARTITIONS - 1
        ))),
        Err(_) => Err(invalid(format!(
            "partition {p:?}: use a number below {PARTITIONS} or a partition key"
        ))),
    }
}

/// `EPSCAN <partition> <start|-> <end|+> [COUNT n]`: a partition's
/// events by sequence.
pub fn epscan(app: &App, caller: &Caller, mut args: Args) -> ArgResult<Reply> {
    check(caller, Need::read_all())?;
    let partition = partition_arg(&args.next_str("partition")?)?;
    let start = args.bound("start sequence")?.unwrap_or(0);
    let end = args.bound("end sequence")?;
    let (count, _) = scan_options(&mut args)?;
    let wanted = count.min(MAX_COUNT).saturating_add(1) as usize;
    let page = app
        .log
        .read_partition(partition, start, wanted)
        .map_err(error)?;
    scan_page(
        app,
        page.into_iter().map(|(seq, e)| Ok((e, Some(seq)))),
        |_, seq| end.is_none_or(|end| seq.is_some_and(|s| s <= end)),
        count,
    )
}

/// A scan's answer, `{has_more, events}`: at most `count` (and
/// [`MAX_COUNT`]) of the `events` `within` the scan's end bound, fewer
/// past [`MAX_SCAN_BYTES`]. As SierraDB's, `has_more` is true when the
/// page is full, or when an event past the end bound was there. Events
/// come with their partition sequence when the scan knows it (a partition
/// scan), which `within` sees too.
fn scan_page(
    app: &App,
    events: impl Iterator<Item = Result<(RecordedEvent, Option<u64>), LogError>>,
    within: impl Fn(&RecordedEvent, Option<u64>) -> bool,
    count: u64,
) -> ArgResult<Reply> {
    let count = count.min(MAX_COUNT) as usize;
    let (mut page, mut sequences, mut bytes, mut has_more) = (Vec::new(), Vec::new(), 0, false);
    for e in events {
        let (e, seq) = e.map_err(error)?;
        if page.len() == count || bytes >= MAX_SCAN_BYTES || !within(&e, seq) {
            has_more = true;
            break;
        }
        bytes += e.data.len() + e.metadata.len();
        sequences.push(seq);
        page.push(e);
    }
    has_more |= page.len() == count;
    let numbered = Numbering::default()
        .number(&app.log, &page.iter().collect::<Vec<_>>(), &sequences)
        .map_err(error)?;
    app.metrics.events_read.inc_by(page.len() as u64);
    Ok(Reply::map([
        ("has_more", Reply::Bool(has_more)),
        (
            "events",
            Reply::Array(
                page.iter()
                    .zip(&numbered)
                    .map(|(e, n)| event(e, n))
                    .collect(),
            ),
        ),
    ]))
}

/// `EPSEQ <partition>`: the partition's last sequence, or null when it
/// has none.
pub fn epseq(app: &App, caller: &Caller, mut args: Args) -> ArgResult<Reply> {
    check(caller, Need::read_all())?;
    let partition = partition_arg(&args.next_str("partition")?)?;
    args.finish()?;
    Ok(match app.log.partition_next(partition).map_err(error)? {
        0 => Reply::Null,
        n => Reply::Int(n as i64 - 1),
    })
}
