//! Where the bank's events live: the embedded event log or a daemon.

use std::path::Path;

use anyhow::{Context, Result, bail};
use hydra_eventlog::{Direction, EventLog, ExpectedVersion, NewEvent, Options, ReadFrom, StreamId};
use serde_json::{Value, json};

use crate::{Account, Event};

/// An append refused because the stream moved on.
pub struct Conflict;

/// The few event-store calls the bank needs.
pub trait Ledger {
    /// Appends at `expected` (the last version, or `None` for a new
    /// stream); returns the new version or a conflict.
    fn append(
        &self,
        stream: &str,
        expected: Option<u64>,
        e: &Event,
    ) -> Result<Result<u64, Conflict>>;
    /// Events from `from` on, with their versions.
    fn read(&self, stream: &str, from: u64) -> Result<Vec<(u64, Event)>>;
    fn save_snapshot(&self, stream: &str, version: u64, a: &Account) -> Result<()>;
    /// The latest snapshot and its version.
    fn load_snapshot(&self, stream: &str) -> Result<Option<(u64, Account)>>;

    /// The state and its version: the latest snapshot plus what followed.
    fn load(&self, stream: &str) -> Result<(Account, Option<u64>)> {
        let (mut state, mut version) = match self.load_snapshot(stream)? {
            Some((v, a)) => (a, Some(v)),
            None => (Account::default(), None),
        };
        for (v, e) in self.read(stream, version.map_or(0, |v| v + 1))? {
            state.apply(&e);
            version = Some(v);
        }
        Ok((state, version))
    }

    fn history(&self, stream: &str) -> Result<Vec<(u64, Event)>> {
        self.read(stream, 0)
    }
}

pub fn connect(api: Option<&str>, data: &Path) -> Result<Box<dyn Ledger>> {
    Ok(match api {
        Some(url) => Box::new(Remote {
            base: url.trim_end_matches('/').to_owned(),
            client: reqwest::blocking::Client::new(),
        }),
        None => Box::new(Embedded(EventLog::open_dir(data, Options::default())?)),
    })
}

fn to_new(e: &Event) -> Result<NewEvent> {
    let v = serde_json::to_value(e)?;
    Ok(NewEvent::new(
        v["type"].as_str().context("an event type")?,
        serde_json::to_vec(&v["data"])?,
    ))
}

fn from_parts(event_type: &str, data: Value) -> Result<Event> {
    Ok(serde_json::from_value(
        json!({"type": event_type, "data": data}),
    )?)
}

fn expected(v: Option<u64>) -> ExpectedVersion {
    v.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact)
}

struct Embedded(EventLog);

impl Ledger for Embedded {
    fn append(&self, stream: &str, exp: Option<u64>, e: &Event) -> Result<Result<u64, Conflict>> {
        match self
            .0
            .append(&StreamId::new(stream)?, expected(exp), vec![to_new(e)?])
        {
            Ok(r) => Ok(Ok(r.version)),
            Err(hydra_eventlog::Error::WrongExpectedVersion { .. }) => Ok(Err(Conflict)),
            Err(e) => Err(e.into()),
        }
    }

    fn read(&self, stream: &str, from: u64) -> Result<Vec<(u64, Event)>> {
        let events = match self.0.read(
            &StreamId::new(stream)?,
            ReadFrom::Version(from),
            u64::MAX,
            Direction::Forward,
        ) {
            Ok(it) => it,
            Err(hydra_eventlog::Error::StreamNotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        events
            .map(|e| {
                let e = e?;
                Ok((
                    e.version,
                    from_parts(&e.event_type, serde_json::from_slice(&e.data)?)?,
                ))
            })
            .collect()
    }

    fn save_snapshot(&self, stream: &str, version: u64, a: &Account) -> Result<()> {
        self.0.save_snapshot(
            &StreamId::new(stream)?,
            version,
            serde_json::to_vec(a)?,
            Vec::new(),
        )?;
        Ok(())
    }

    fn load_snapshot(&self, stream: &str) -> Result<Option<(u64, Account)>> {
        match self.0.load_snapshot(&StreamId::new(stream)?, None) {
            Ok(s) => Ok(Some((s.version, serde_json::from_slice(&s.data)?))),
            Err(
                hydra_eventlog::Error::SnapshotNotFound { .. }
                | hydra_eventlog::Error::StreamNotFound(_),
            ) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

struct Remote {
    base: String,
    client: reqwest::blocking::Client,
}

impl Remote {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn error_of(r: reqwest::blocking::Response) -> anyhow::Error {
    let status = r.status();
    let body: Value = r.json().unwrap_or(Value::Null);
    anyhow::anyhow!(
        "daemon answered {status}: {}",
        body["error"].as_str().unwrap_or("?")
    )
}

impl Ledger for Remote {
    fn append(&self, stream: &str, exp: Option<u64>, e: &Event) -> Result<Result<u64, Conflict>> {
        let v = serde_json::to_value(e)?;
        let r = self
            .client
            .post(self.url(&format!("/streams/{stream}")))
            .header("Expected-Version", expected(exp).to_string())
            .json(&json!({"type": v["type"], "data": v["data"]}))
            .send()?;
        match r.status().as_u16() {
            201 => Ok(Ok(r.json::<Value>()?["version"]
                .as_u64()
                .context("a version")?)),
            409 => Ok(Err(Conflict)),
            _ => Err(error_of(r)),
        }
    }

    fn read(&self, stream: &str, from: u64) -> Result<Vec<(u64, Event)>> {
        let r = self
            .client
            .get(self.url(&format!("/streams/{stream}?from={from}")))
            .send()?;
        match r.status().as_u16() {
            200 => {}
            404 => return Ok(Vec::new()),
            _ => return Err(error_of(r)),
        }
        let events: Vec<Value> = r.json()?;
        events
            .into_iter()
            .map(|e| {
                Ok((
                    e["version"].as_u64().context("a version")?,
                    from_parts(e["type"].as_str().context("a type")?, e["data"].clone())?,
                ))
            })
            .collect()
    }

    fn save_snapshot(&self, stream: &str, version: u64, a: &Account) -> Result<()> {
        let r = self
            .client
            .put(self.url(&format!("/streams/{stream}/snapshots/{version}")))
            .body(serde_json::to_vec(a)?)
            .send()?;
        if !r.status().is_success() {
            bail!(error_of(r));
        }
        Ok(())
    }

    fn load_snapshot(&self, stream: &str) -> Result<Option<(u64, Account)>> {
        let r = self
            .client
            .get(self.url(&format!("/streams/{stream}/snapshot")))
            .send()?;
        match r.status().as_u16() {
            200 => {
                let v: u64 = r
                    .headers()
                    .get("snapshot-version")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .context("a snapshot version")?;
                Ok(Some((v, serde_json::from_slice(&r.bytes()?)?)))
            }
            404 => Ok(None),
            _ => Err(error_of(r)),
        }
    }
}
