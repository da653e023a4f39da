//! `ESUB`, `EPSUB` and `EACK`: subscriptions pushed on the connection.
//!
//! Each subscription follows the daemon's live feed (see `live.rs`) on an
//! async task, one per stream, and sends `["message", <subscription id>, <cursor>, <event>]` pushes
//! down the connection's channel; the cursor is the stream version
//! (`ESUB`) or the event's sequence in its partition (`EPSUB`, which
//! follows `$all` and keeps the events of the partitions it names). With a `WINDOW`, at most
//! that many delivered events wait for an `EACK <id> <cursor>`, which
//! acknowledges every delivered event whose cursor is at or below it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use hydra_eventlog::{PARTITIONS, StreamId, Target};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::args::{Args, invalid};
use super::commands;
use super::numbering::Numbering;
use super::reply::{Reply, SharedReply};
use crate::access::Need;
use crate::daemon::app::Shared;
use crate::daemon::auth::Caller;
use crate::daemon::lanes::Lane;

/// What a subscription's cursors count.
enum Cursor {
    /// Stream versions (`ESUB`).
    Version,
    /// Partition sequences (`EPSUB`): the partitions it keeps, each with
    /// the first sequence to deliver.
    Partitions(HashMap<u16, u64>),
}

/// Delivered, unacknowledged cursors of one subscription.
#[derive(Default)]
struct Window {
    size: Option<usize>,
    in_flight: Mutex<VecDeque<u64>>,
    room: tokio::sync::Notify,
}

impl Window {
    /// Waits for room for one more event; false if the connection is gone.
    async fn reserve(&self, tx: &mpsc::Sender<Reply>) -> bool {
        let Some(size) = self.size else {
            return true;
        };
        loop {
            // Registered before looking, so that an ack in between wakes it.
            let room = self.room.notified();
            let mut room = std::pin::pin!(room);
            room.as_mut().enable();
            if self
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len()
                < size
            {
                return true;
            }
            tokio::select! {
                () = room => {}
                () = tx.closed() => return false,
            }
        }
    }

    fn delivered(&self, cursor: u64) {
        if self.size.is_some() {
            self.in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(cursor);
        }
    }

    fn ack(&self, cursor: u64) {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|c| *c > cursor);
        self.room.notify_waiters();
    }
}

/// Pushes a connection's subscriptions queue at most while its client
/// reads: a follower that finds the queue full waits, falls behind the
/// live feed and reads the log when there is room, so a slow client holds
/// this much of the daemon's memory, not what it has yet to read.
const PUSHES: usize = 64;

pub struct Subscriptions {
    app: Shared,
    /// The connection's lane switch: its first subscription moves it, and
    /// every follower task runs in the subscribers' lane (see `lanes.rs`).
    lane: Lane,
    tx: mpsc::Sender<Reply>,
    rx: mpsc::Receiver<Reply>,
    windows: HashMap<Uuid, Arc<Window>>,
}

impl Subscriptions {
    pub fn new(app: Shared, lane: Lane) -> Subscriptions {
        let (tx, rx) = mpsc::channel(PUSHES);
        Subscriptions {
            app,
            lane,
            tx,
            rx,
            windows: HashMap::new(),
        }
    }

    /// The next push to send.
    pub async fn next(&mut self) -> Option<Reply> {
        self.rx.recv().await
    }

    /// The next push if one is queued.
    pub fn try_next(&mut self) -> Option<Reply> {
        self.rx.try_recv().ok()
    }

    async fn start(
        &mut self,
        feeds: Vec<(Target, Option<u64>)>,
        window: Option<usize>,
        cursor: Cursor,
    ) -> Reply {
        let cursor = Arc::new(cursor);
        let id = Uuid::new_v4();
        let w = Arc::new(Window {
            size: window,
            ..Window::default()
        });
        self.lane.subscribe();
        let mut followers = Vec::new();
        for (target, from) in feeds {
            match self.app.live.follow(&self.app, target, from).await {
                Ok(f) => followers.push(f),
                Err(e) => return commands::error(e),
            }
        }
        // The confirmation, as SierraDB sends it (after the id reply): a
        // push queued before any event, so that it always comes first.
        let _ = self.tx.try_send(Reply::Push(vec![
            Reply::str("subscribe"),
            Reply::str(id.to_string()),
            Reply::Int(self.windows.len() as i64 + 1),
        ]));
        for mut follower in followers {
            let (app, tx, w) = (self.app.clone(), self.tx.clone(), w.clone());
            let kinds = cursor.clone();
            app.metrics.subscriptions.inc();
            self.lane.spawn(async move {
                let mut numbering = Numbering::default();
                let mut numbered = VecDeque::new();
                loop {
                    if numbered.is_empty() {
                        let next = tokio::select! {
                            e = follower.next() => e,
                            () = tx.closed() => break,
                        };
                        let Some(Ok(first)) = next else { break };
                        // Events already read with it (a catch-up page)
                        // are numbered together: one read of the log.
                        let events: Vec<_> =
                            std::iter::once(first).chain(follower.ready()).collect();
                        let records: Vec<_> = events.iter().map(|l| &l.event).collect();
                        let known: Vec<_> = events
                            .iter()
                            .map(|l| l.partition_sequence.get().copied())
                            .collect();
                        let Ok(numbers) = numbering.number(&app.log, &records, &known) else {
                            break;
                        };
                        for (live, n) in events.iter().zip(&numbers) {
                            // Shared with the event's other followers.
                            let _ = live.partition_sequence.set(n.sequence);
                        }
                        numbered.extend(events.into_iter().zip(numbers));
                    }
                    let (live, n) = numbered.pop_front().expect("filled above");
                    let e = &live.event;
                    let cursor = match &*kinds {
                        Cursor::Version => e.version,
                        Cursor::Partitions(kept) => match kept.get(&n.partition) {
                            Some(from) if n.sequence >= *from => n.sequence,
                            _ => continue,
                        },
                    };
                    if !w.reserve(&tx).await {
                        break;
                    }
                    w.delivered(cursor);
                    app.metrics.events_read.inc();
                    // Encoded once for all the event's subscribers.
                    let event = live
                        .resp
                        .get_or_init(|| SharedReply::new(commands::event(e, &n)))
                        .clone();
                    let push = Reply::Push(vec![
                        Reply::str("message"),
                        Reply::str(id.to_string()),
                        Reply::Int(cursor as i64),
                        Reply::Shared(event),
                    ]);
                    if tx.send(push).await.is_err() {
                        break;
                    }
                }
                app.metrics.subscriptions.dec();
            });
        }
        self.windows.insert(id, w);
        Reply::str(id.to_string())
    }

    /// `ESUB <stream> [PARTITION_KEY k] [<stream> ...] [FROM LATEST|<version>|MAP s=v ...] [WINDOW n]`.
    pub async fn esub(&mut self, caller: &Caller, mut args: Args) -> Reply {
        let mut streams: Vec<StreamId> = Vec::new();
        let mut from: Option<u64> = None;
        let mut map: HashMap<String, u64> = HashMap::new();
        let mut window = None;
        while !args.is_empty() {
            match args.peek_upper().as_deref() {
                Some("PARTITION_KEY") => {
                    args.keyword("PARTITION_KEY");
                    if let Err(e) = args.uuid("partition key") {
                        return e;
                    }
                }
                Some("FROM") => {
                    args.keyword("FROM");
                    if args.keyword("LATEST") {
                        from = None;
                    } else if args.keyword("MAP") {
                        while let Some(w) = args.peek_upper() {
                            if w == "WINDOW" {
                                break;
                            }
                            let pair = args.next_str("stream=version").unwrap_or_default();
                            let Some((s, v)) = pair.split_once('=') else {
                                return invalid(format!(
                                    "FROM MAP takes stream=version pairs, not {pair:?}"
                                ));
                            };
                            match v.parse() {
                                Ok(v) => map.insert(s.to_owned(), v),
                                Err(_) => return invalid(format!("version {v:?} is not a number")),
                            };
                        }
                    } else {
                        match args.u64("version") {
                            Ok(v) => from = Some(v),
                            Err(e) => return e,
                        }
                    }
                }
                Some("WINDOW") => {
                    args.keyword("WINDOW");
                    match args.u64("window") {
                        Ok(n) => window = Some(n.max(1) as usize),
                        Err(e) => return e,
                    }
                }
                _ => match args.stream() {
                    Ok(s) => streams.push(s),
                    Err(e) => return e,
                },
            }
        }
        if streams.is_empty() {
            return invalid("ESUB needs at least one stream");
        }
        for s in &streams {
            if let Err(e) = commands::check(caller, Need::Read(s.to_string())) {
                return e;
            }
        }
        let feeds = streams
            .into_iter()
            .map(|s| {
                let start = map.get(s.as_str()).copied().or(from);
                (Target::Stream(s), start)
            })
            .collect();
        self.start(feeds, window, Cursor::Version).await
    }

    /// `EPSUB <*|p|a-b|key,...> [FROM LATEST|<sequence>|MAP p=s ... [DEFAULT s]] [WINDOW n]`:
    /// the events of those partitions, each from its sequence (or from
    /// now), numbered by partition sequence.
    pub async fn epsub(&mut self, caller: &Caller, mut args: Args) -> Reply {
        if let Err(e) = commands::check(caller, Need::read_all()) {
            return e;
        }
        let parts = match args.next_str("partitions") {
            Ok(p) => p,
            Err(e) => return e,
        };
        let mut kept: Vec<u16> = Vec::new();
        for p in parts.split(',') {
            let range = p
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)));
            match (p, range) {
                ("*", _) => kept.extend(0..PARTITIONS),
                (_, Some((a, b))) if a <= b && b < PARTITIONS => kept.extend(a..=b),
                _ => match commands::partition_arg(p) {
                    Ok(n) => kept.push(n),
                    Err(e) => return e,
                },
            }
        }
        // Sequences by partition; `None`: from now.
        let (mut all_from, mut map, mut window) = (None, HashMap::new(), None);
        while !args.is_empty() {
            if args.keyword("FROM") {
                if args.keyword("LATEST") {
                    all_from = None;
                } else if args.keyword("MAP") {
                    while let Some(w) = args.peek_upper() {
                        if w == "WINDOW" {
                            break;
                        }
                        if args.keyword("DEFAULT") {
                            match args.u64("default sequence") {
                                Ok(v) => all_from = Some(v),
                                Err(e) => return e,
                            }
                            continue;
                        }
                        let pair = args.next_str("partition=sequence").unwrap_or_default();
                        let parsed = pair
                            .split_once('=')
                            .map(|(p, s)| (commands::partition_arg(p), s.parse::<u64>()));
                        match parsed {
                            Some((Ok(p), Ok(s))) => {
                                map.insert(p, s);
                            }
                            Some((Err(e), _)) => return e,
                            _ => {
                                return invalid(format!(
                                    "FROM MAP takes partition=sequence pairs, not {pair:?}"
                                ));
                            }
                        }
                    }
                } else {
                    match args.u64("sequence") {
                        Ok(v) => all_from = Some(v),
                        Err(e) => return e,
                    }
                }
            } else if args.keyword("WINDOW") {
                match args.u64("window") {
                    Ok(n) => window = Some(n.max(1) as usize),
                    Err(e) => return e,
                }
            } else {
                return invalid("EPSUB <partitions> [FROM ...] [WINDOW n]");
            }
        }
        // `$all` is followed from the first position any kept partition
        // needs: the end of the log (read before the partitions' counts,
        // so that nothing committed between the two reads is lost), or
        // the position of a sequence asked for.
        let log = &self.app.log;
        let mut start = log.next_position();
        let mut first = HashMap::new();
        for p in kept {
            let from = match map.get(&p).copied().or(all_from) {
                Some(s) => s,
                None => match log.partition_next(p) {
                    Ok(n) => n,
                    Err(e) => return commands::error(e),
                },
            };
            match log.partition_position(p, from) {
                Ok(Some(at)) => start = start.min(at),
                Ok(None) => {}
                Err(e) => return commands::error(e),
            }
            first.insert(p, from);
        }
        let all = Target::All {
            stream_prefix: None,
            event_types: Vec::new(),
        };
        self.start(vec![(all, Some(start))], window, Cursor::Partitions(first))
            .await
    }

    /// `EACK <subscription_id> <cursor>`.
    pub fn eack(&mut self, mut args: Args) -> Reply {
        let id = match args.uuid("subscription id") {
            Ok(id) => id,
            Err(e) => return e,
        };
        let cursor = match args.u64("cursor") {
            Ok(c) => c,
            Err(e) => return e,
        };
        match self.windows.get(&id) {
            Some(w) => {
                w.ack(cursor);
                Reply::ok()
            }
            None => Reply::err(
                "NOTFOUND",
                format!("subscription {id} does not exist on this connection"),
            ),
        }
    }
}
