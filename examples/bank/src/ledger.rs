//! Where the bank's events live: any [`EventStore`], the embedded event
//! log or a daemon through `hydra-client`; the same code either way.

use anyhow::{Context, Result};
use futures_util::TryStreamExt;
use hydra_eventlog::{
    ErrorKind, EventStore, ExpectedVersion, NewEvent, StoreError, StreamId, StreamRead, StreamWrite,
};
use serde_json::json;

use crate::{Account, Event};

/// An append refused because the stream moved on.
pub struct Conflict;

/// The bank's calls on an event store.
pub struct Ledger<S>(pub S);

fn stream_id(stream: &str) -> Result<StreamId> {
    Ok(StreamId::new(stream)?)
}

impl<S: EventStore> Ledger<S> {
    /// Appends at `expected` (the last version, or `None` for a new
    /// stream); returns the new version or a conflict.
    pub async fn append(
        &self,
        stream: &str,
        expected: Option<u64>,
        e: &Event,
    ) -> Result<Result<u64, Conflict>> {
        let v = serde_json::to_value(e)?;
        let event = NewEvent::new(
            v["type"].as_str().context("an event type")?,
            serde_json::to_vec(&v["data"])?,
        );
        let expected = expected.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
        let write = StreamWrite::new(stream_id(stream)?, expected, vec![event]);
        match self.0.write(write).await {
            Ok(r) => Ok(Ok(r.version)),
            Err(e) if e.kind() == ErrorKind::WrongExpectedVersion => Ok(Err(Conflict)),
            Err(e) => Err(e.into()),
        }
    }

    /// Events from `from` on, with their versions.
    pub async fn read(&self, stream: &str, from: u64) -> Result<Vec<(u64, Event)>> {
        let events: Vec<_> = match self
            .0
            .read(&stream_id(stream)?, StreamRead::from_version(from))
            .try_collect()
            .await
        {
            Ok(events) => events,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        events
            .into_iter()
            .map(|e| {
                let data: serde_json::Value = serde_json::from_slice(&e.data)?;
                let event = serde_json::from_value(json!({"type": e.event_type, "data": data}))?;
                Ok((e.version, event))
            })
            .collect()
    }

    pub async fn save_snapshot(&self, stream: &str, version: u64, a: &Account) -> Result<()> {
        self.0
            .save_snapshot(
                &stream_id(stream)?,
                version,
                serde_json::to_vec(a)?,
                Vec::new(),
            )
            .await?;
        Ok(())
    }

    /// The latest snapshot and its version.
    pub async fn load_snapshot(&self, stream: &str) -> Result<Option<(u64, Account)>> {
        match self.0.load_snapshot(&stream_id(stream)?, None).await {
            Ok(s) => Ok(Some((s.version, serde_json::from_slice(&s.data)?))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The state and its version: the latest snapshot plus what followed.
    pub async fn load(&self, stream: &str) -> Result<(Account, Option<u64>)> {
        let (mut state, mut version) = match self.load_snapshot(stream).await? {
            Some((v, a)) => (a, Some(v)),
            None => (Account::default(), None),
        };
        for (v, e) in self.read(stream, version.map_or(0, |v| v + 1)).await? {
            state.apply(&e);
            version = Some(v);
        }
        Ok((state, version))
    }

    pub async fn history(&self, stream: &str) -> Result<Vec<(u64, Event)>> {
        self.read(stream, 0).await
    }
}
