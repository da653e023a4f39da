//! `hydra stream ...` and `hydra event get`: one body for the data
//! directory's event log and for a daemon's (`--api`), through
//! [`EventStore`].

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use futures_util::{Stream, StreamExt};
use hydra_bucket::BucketName;
use hydra_eventlog::{
    AllFilter, AllRead, ConsistencyProof, Direction, EventLog, EventStore, ExpectedVersion, Head,
    InclusionProof, NewEvent, Options, ReadFrom, RecordedEvent, StreamId, StreamMetadata,
    StreamRead, StreamWrite,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::context::Ctx;
use crate::events::{event_from_json, event_json, event_json_exact, input_bytes, print_event};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum StreamCmd {
    /// Append one event; print its version and global position.
    Append {
        stream: StreamId,
        /// Event type.
        #[arg(long = "type", short = 't')]
        event_type: String,
        /// Expected version: any, no_stream, exists, or a number.
        #[arg(long, short = 'e', default_value = "any")]
        expected: ExpectedVersion,
        /// Payload: JSON text, @FILE, or @- for stdin.
        #[arg(long, short = 'd')]
        data: Option<String>,
        /// Metadata: JSON text, @FILE, or @- for stdin.
        #[arg(long, short = 'm')]
        metadata: Option<String>,
        /// Event id (for idempotent retries); default a new UUIDv7.
        #[arg(long)]
        id: Option<Uuid>,
        /// Bucket of a new stream (default: the configured prefix's, else
        /// `default`); for an existing stream it must be its own.
        #[arg(long, short = 'b')]
        bucket: Option<BucketName>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read a stream (one JSON object per line with --json).
    Read {
        stream: StreamId,
        /// First version to read (default: the first, or the last with
        /// --backward).
        #[arg(long)]
        from: Option<u64>,
        /// Most events to read.
        #[arg(long, short = 'n', default_value_t = u64::MAX, hide_default_value = true)]
        count: u64,
        /// Read from the end towards the start.
        #[arg(long)]
        backward: bool,
        /// Read the stream as it was at this many events (time travel).
        #[arg(long)]
        at_length: Option<u64>,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Read every stream in global order ($all).
    All {
        /// First position to read.
        #[arg(long)]
        from: Option<u64>,
        #[arg(long, short = 'n', default_value_t = u64::MAX, hide_default_value = true)]
        count: u64,
        #[arg(long)]
        backward: bool,
        /// Only events of this type (repeatable).
        #[arg(long = "type", short = 't')]
        types: Vec<String>,
        /// Only streams whose id starts with this.
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print the version of a stream's last event.
    Version { stream: StreamId },
    /// List streams whose id starts with PREFIX.
    Ls {
        #[arg(default_value = "")]
        prefix: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a stream: soft (it can come back) or --hard (a tombstone).
    Delete {
        stream: StreamId,
        #[arg(long)]
        hard: bool,
        #[arg(long, short = 'e', default_value = "any")]
        expected: ExpectedVersion,
    },
    /// Set a stream's retention metadata.
    Meta {
        stream: StreamId,
        /// Keep only the last N events visible.
        #[arg(long)]
        max_count: Option<u64>,
        /// Hide events older than this many seconds.
        #[arg(long)]
        max_age: Option<u64>,
        /// Hide events before this version.
        #[arg(long)]
        truncate_before: Option<u64>,
    },
    /// Print a stream's signed head as JSON.
    Head {
        stream: StreamId,
        /// The head as it was at this many events.
        #[arg(long)]
        at_length: Option<u64>,
    },
    /// Print a proof (JSON) that VERSION is in the stream's signed head;
    /// with --from-length, a proof that that older head is a prefix.
    Prove {
        stream: StreamId,
        version: Option<u64>,
        #[arg(long, conflicts_with = "version")]
        from_length: Option<u64>,
    },
    /// Verify a proof from `stream prove` read on stdin; exit 1 if it fails.
    Verify {
        /// Trusted signer's public key (64 hex digits); default this
        /// volume's own key.
        #[arg(long)]
        signer: Option<String>,
    },
    /// Print events of a stream (or --all) as they are appended: history
    /// from --from first, then live.
    Subscribe {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        stream: Option<StreamId>,
        /// Subscribe to $all.
        #[arg(long)]
        all: bool,
        /// First version (stream) or position ($all); default: from now.
        #[arg(long)]
        from: Option<u64>,
        /// Stop after this many events.
        #[arg(long, short = 'n')]
        count: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Remove events no reader can see any more (deleted, truncated).
    Scavenge,
    /// Rebuild every index from the event records.
    Reindex,
}

/// Opens the event log of the data directory; a key given with
/// --key-file or HYDRA_KEY unlocks the encrypted buckets it belongs to.
pub fn open(ctx: &Ctx) -> Result<EventLog> {
    open_with(ctx, ctx.key()?.as_ref())
}

/// The data directory's event log, its buckets that `key` opens unlocked
/// before the log opens (so that opening reads them), and what those
/// buckets held blind indexed (so that it reads as any other stream).
pub fn open_with(ctx: &Ctx, key: Option<&hydra_bucket::Key>) -> Result<EventLog> {
    let store = ctx.store()?;
    if let Some(key) = key {
        store.unlock_with(key)?;
    }
    let log = EventLog::open(store, Options::default())?;
    if let Some(key) = key {
        log.unlock_with(key)?;
    }
    Ok(log)
}

/// Whose key a proof is checked against when `--signer` is not given:
/// the data directory's, from the file beside it when there is one (the
/// directory may be open in the command writing the proof).
pub fn own_key(ctx: &Ctx) -> Result<String> {
    Ok(hydra_volume::hex::encode(
        &match hydra_volume::public_key_of_dir(&ctx.data)? {
            Some(key) => key,
            None => hydra_volume::Identity::load_or_create(&**ctx.store()?.volume())?.public_key(),
        },
    ))
}

/// Every `stream` command but `verify` (which needs no store), on any
/// event store: the data directory's log or a daemon's.
pub async fn run<S: EventStore>(store: &S, cmd: StreamCmd) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        StreamCmd::Append {
            stream,
            event_type,
            expected,
            data,
            metadata,
            id,
            bucket,
            json,
        } => {
            let event = NewEvent {
                id,
                event_type,
                data: input_bytes(data.as_deref())?,
                metadata: input_bytes(metadata.as_deref())?,
                timestamp: None,
            };
            let r = store
                .write(StreamWrite {
                    bucket,
                    ..StreamWrite::new(stream, expected, vec![event])
                })
                .await?;
            if json {
                output::json(&json!({"version": r.version, "position": r.position}))?;
            } else {
                writeln!(out, "version {} position {}", r.version, r.position)?;
            }
        }
        StreamCmd::Read {
            stream,
            from,
            count,
            backward,
            at_length,
            json,
        } => {
            let read = StreamRead {
                from: from.map_or(ReadFrom::Edge, ReadFrom::Version),
                count,
                direction: direction(backward),
                at_length,
            };
            print_events(&mut out, store.read(&stream, read), json, false).await?;
        }
        StreamCmd::All {
            from,
            count,
            backward,
            types,
            prefix,
            json,
        } => {
            let read = AllRead {
                from,
                count,
                direction: direction(backward),
                filter: AllFilter {
                    stream_prefix: prefix,
                    event_types: types,
                },
            };
            print_events(&mut out, store.read_all(read), json, false).await?;
        }
        StreamCmd::Version { stream } => match store.stream_version(&stream).await? {
            Some(v) => writeln!(out, "{v}")?,
            None => bail!("stream {stream} does not exist"),
        },
        StreamCmd::Ls { prefix, json } => {
            let all = store.list_streams(&prefix).await?;
            if json {
                output::json(&all)?;
            } else {
                for s in all {
                    let state = if s.blind {
                        "blind (no key)"
                    } else if s.tombstoned {
                        "tombstoned"
                    } else if s.deleted {
                        "deleted"
                    } else {
                        ""
                    };
                    let v = s.version.map_or("-".into(), |v| v.to_string());
                    let bucket = s.bucket.as_ref().map_or("-", |b| b.as_str());
                    writeln!(out, "{}\t{v}\t{bucket}\t{state}", s.stream)?;
                }
            }
        }
        StreamCmd::Delete {
            stream,
            hard,
            expected,
        } => {
            store.delete(&stream, expected, hard).await?;
            writeln!(
                out,
                "{} {stream}",
                if hard { "tombstoned" } else { "deleted" }
            )?;
        }
        StreamCmd::Meta {
            stream,
            max_count,
            max_age,
            truncate_before,
        } => {
            store
                .set_metadata(
                    &stream,
                    StreamMetadata {
                        max_count,
                        max_age,
                        truncate_before,
                        custom: None,
                    },
                )
                .await?;
            writeln!(out, "metadata of {stream} set")?;
        }
        StreamCmd::Head { stream, at_length } => {
            output::json(&store.head(&stream, at_length).await?)?;
        }
        StreamCmd::Prove {
            stream,
            version,
            from_length,
        } => match (version, from_length) {
            (Some(v), _) => {
                let p = store.prove(&stream, v).await?;
                output::json(
                    &json!({"head": p.head, "proof": p.proof, "event": event_json_exact(&p.event)}),
                )?;
            }
            (None, Some(old)) => {
                let p = store.prove_prefix(&stream, old).await?;
                output::json(
                    &json!({"old_head": p.old_head, "head": p.head, "consistency": p.proof}),
                )?;
            }
            (None, None) => bail!("give a VERSION or --from-length N"),
        },
        StreamCmd::Scavenge => {
            let r = store.scavenge().await?;
            writeln!(
                out,
                "scavenged {} events ({}) from {} streams",
                r.events,
                output::human(r.bytes),
                r.streams
            )?;
            for bucket in &r.locked {
                eprintln!(
                    "hydra: skipping the streams of encrypted bucket {bucket} (no key for it here)"
                );
            }
        }
        StreamCmd::Reindex => {
            let r = store.reindex().await?;
            writeln!(
                out,
                "reindexed {} events in {} streams",
                r.events, r.streams
            )?;
        }
        StreamCmd::Subscribe {
            stream,
            all,
            from,
            count,
            json,
        } => {
            let target = match (stream, all) {
                (Some(s), false) => hydra_eventlog::Target::Stream(s),
                _ => hydra_eventlog::Target::All {
                    stream_prefix: None,
                    event_types: Vec::new(),
                },
            };
            let events = store
                .subscribe(target, from)
                .take(count.map_or(usize::MAX, |c| c as usize));
            print_events(&mut out, events, json, true).await?;
        }
        StreamCmd::Verify { .. } => bail!("stream verify needs no store"),
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn direction(backward: bool) -> Direction {
    if backward {
        Direction::Backward
    } else {
        Direction::Forward
    }
}

/// Prints events as they come; `live`: each as soon as it comes (a
/// subscription), not a buffer at a time.
async fn print_events<E: Into<anyhow::Error>>(
    out: &mut impl Write,
    events: impl Stream<Item = Result<RecordedEvent, E>>,
    json: bool,
    live: bool,
) -> Result<()> {
    let mut events = std::pin::pin!(events);
    while let Some(e) = events.next().await {
        print_event(out, &e.map_err(Into::into)?, json)?;
        if live {
            out.flush()?;
        }
    }
    Ok(())
}

/// Verifies the JSON that `stream prove` printed, read from stdin,
/// trusting the signer whose public key is `signer` (64 hex digits).
pub fn verify_with(signer: &str) -> Result<ExitCode> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let v: Value = serde_json::from_str(&text).context("stdin is not JSON")?;
    let trusted = parse_key(signer)?;
    let head: Head = serde_json::from_value(v.get("head").cloned().context("no \"head\"")?)
        .context("bad head")?;
    let result = if let Some(p) = v.get("proof") {
        let proof: InclusionProof = serde_json::from_value(p.clone()).context("bad proof")?;
        let event = event_from_json(v.get("event").context("no \"event\"")?)?;
        hydra_eventlog::verify_event(&head, &trusted, &event, &proof).map(|()| {
            format!(
                "ok: {} version {} is in the head of length {}",
                event.stream, event.version, head.length
            )
        })
    } else {
        let proof: ConsistencyProof = serde_json::from_value(
            v.get("consistency")
                .cloned()
                .context("no \"proof\" or \"consistency\"")?,
        )?;
        let old: Head =
            serde_json::from_value(v.get("old_head").cloned().context("no \"old_head\"")?)?;
        hydra_eventlog::verify_consistency(&old, &head, &trusted, &proof).map(|()| {
            format!(
                "ok: the head of length {} is a prefix of the head of length {}",
                old.length, head.length
            )
        })
    };
    match result {
        Ok(msg) => {
            println!("{msg}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => bail!("proof rejected: {e}"),
    }
}

pub fn parse_key(hex: &str) -> Result<[u8; 32]> {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "a public key is 64 hex digits, got {:?}",
            hex.chars().take(80).collect::<String>()
        );
    }
    hydra_volume::hex::decode(hex).map_err(anyhow::Error::msg)
}

/// `hydra event get ID`.
pub async fn get_event<S: EventStore>(store: &S, id: Uuid) -> Result<ExitCode> {
    output::json(&event_json(&store.get_event(id).await?))?;
    Ok(ExitCode::SUCCESS)
}
