//! `hydra stream ...` and `hydra event get`: the event log, embedded.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use hydra_bucket::BucketName;
use hydra_eventlog::{
    AllFilter, ConsistencyProof, Direction, EventLog, ExpectedVersion, Head, InclusionProof,
    NewEvent, Options, ReadFrom, StreamId, StreamMetadata, StreamWrite,
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
    let store = ctx.store()?;
    if let Some(key) = ctx.key()? {
        store.unlock_with(&key)?;
    }
    Ok(EventLog::open(store, Options::default())?)
}

pub fn run(ctx: &Ctx, cmd: StreamCmd) -> Result<ExitCode> {
    if let StreamCmd::Verify { signer } = cmd {
        // This volume's own key, from the file beside it when there is
        // one: the directory may be open in the command writing the proof.
        let signer = match signer {
            Some(s) => s,
            None => hydra_volume::hex::encode(&match hydra_volume::public_key_of_dir(&ctx.data)? {
                Some(key) => key,
                None => {
                    hydra_volume::Identity::load_or_create(&**ctx.store()?.volume())?.public_key()
                }
            }),
        };
        return verify_with(&signer);
    }
    let log = open(ctx)?;
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
            let r = log.write(StreamWrite {
                bucket,
                ..StreamWrite::new(stream, expected, vec![event])
            })?;
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
            let from = from.map_or(ReadFrom::Edge, ReadFrom::Version);
            let dir = if backward {
                Direction::Backward
            } else {
                Direction::Forward
            };
            let events = match at_length {
                Some(l) => log.read_at(&stream, l, from, count, dir)?,
                None => log.read(&stream, from, count, dir)?,
            };
            for e in events {
                print_event(&mut out, &e?, json)?;
            }
        }
        StreamCmd::All {
            from,
            count,
            backward,
            types,
            prefix,
            json,
        } => {
            let dir = if backward {
                Direction::Backward
            } else {
                Direction::Forward
            };
            let filter = AllFilter {
                stream_prefix: prefix,
                event_types: types,
            };
            for e in log.read_all(from, count, dir, filter) {
                print_event(&mut out, &e?, json)?;
            }
        }
        StreamCmd::Version { stream } => match log.stream_version(&stream)? {
            Some(v) => writeln!(out, "{v}")?,
            None => bail!("stream {stream} does not exist"),
        },
        StreamCmd::Ls { prefix, json } => {
            let all = log.list_streams(&prefix).collect::<Result<Vec<_>, _>>()?;
            if json {
                output::json(&all)?;
            } else {
                for s in all {
                    let state = if s.tombstoned {
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
            log.delete(&stream, expected, hard)?;
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
            log.set_metadata(
                &stream,
                StreamMetadata {
                    max_count,
                    max_age,
                    truncate_before,
                    custom: None,
                },
            )?;
            writeln!(out, "metadata of {stream} set")?;
        }
        StreamCmd::Head { stream, at_length } => {
            let head = match at_length {
                Some(l) => log.head_at(&stream, l)?,
                None => log.head(&stream)?,
            };
            output::json(&head)?;
        }
        StreamCmd::Prove {
            stream,
            version,
            from_length,
        } => match (version, from_length) {
            (Some(v), _) => {
                let (head, proof) = log.prove(&stream, v)?;
                let event = log
                    .read(&stream, ReadFrom::Version(v), 1, Direction::Forward)?
                    .next()
                    .context("the event is not readable")??;
                output::json(
                    &json!({"head": head, "proof": proof, "event": event_json_exact(&event)}),
                )?;
            }
            (None, Some(old)) => {
                let new = log.head(&stream)?;
                let proof = log.prove_consistency(&stream, old, new.length)?;
                let old = log.head_at(&stream, old)?;
                output::json(&json!({"old_head": old, "head": new, "consistency": proof}))?;
            }
            (None, None) => bail!("give a VERSION or --from-length N"),
        },
        StreamCmd::Scavenge => {
            let r = log.scavenge()?;
            writeln!(
                out,
                "scavenged {} events ({}) from {} streams",
                r.events,
                output::human(r.bytes),
                r.streams
            )?;
        }
        StreamCmd::Reindex => {
            let r = log.reindex()?;
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
            let limit = count.unwrap_or(u64::MAX);
            for e in log.subscribe(target, from)?.take(limit as usize) {
                print_event(&mut out, &e?, json)?;
                out.flush()?;
            }
        }
        StreamCmd::Verify { .. } => unreachable!("handled above"),
    }
    out.flush()?;
    log.close()?;
    Ok(ExitCode::SUCCESS)
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
pub fn get_event(ctx: &Ctx, id: Uuid) -> Result<ExitCode> {
    let log = open(ctx)?;
    let e = log.get_event(id)?;
    output::json(&event_json(&e))?;
    Ok(ExitCode::SUCCESS)
}
