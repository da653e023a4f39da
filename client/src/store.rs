//! [`EventStore`] over the daemon's HTTP API.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_core::Stream;
use hydra_block::Ref;
use hydra_eventlog::{
    AllRead, AppendResult, ConsistencyProof, Direction, EventStore, ExpectedVersion, Head,
    InclusionProof, ProvedEvent, ProvedPrefix, ReadFrom, RecordedEvent, ReindexReport,
    ScavengeReport, Snapshot, SnapshotInfo, StreamId, StreamInfo, StreamMetadata, StreamRead,
    StreamWrite, Target,
};
use reqwest::Response;
use serde::Deserialize;
use uuid::Uuid;

use crate::events::{Outgoing, decode, ndjson, sse};
use crate::{Client, Error, json, path_segment};

/// The header that carries a snapshot's metadata, base64.
const SNAPSHOT_METADATA: &str = "snapshot-metadata";

fn stream_path(stream: &StreamId, rest: &str) -> String {
    format!("/streams/{}{rest}", path_segment(stream.as_str()))
}

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::Forward => "forwards",
        Direction::Backward => "backwards",
    }
}

/// `?from=&count=&direction=` of a read.
fn range(from: Option<u64>, count: u64, d: Direction) -> Vec<(&'static str, String)> {
    let mut q = vec![("direction", direction(d).to_owned())];
    if let Some(f) = from {
        q.push(("from", f.to_string()));
    }
    if count != u64::MAX {
        q.push(("count", count.to_string()));
    }
    q
}

fn header<T: std::str::FromStr>(r: &Response, name: &str) -> Result<T, Error> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::garbled("snapshot", format!("no {name} header")))
}

impl Client {
    /// A streamed answer: its request sent once the stream is polled.
    fn streamed(
        &self,
        path: String,
        query: Vec<(&'static str, String)>,
        accept: &'static str,
    ) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
        let client = self.clone();
        async move {
            client
                .send(|h| {
                    h.get(client.at(&path))
                        .query(&query)
                        .header(reqwest::header::ACCEPT, accept)
                })
                .await
        }
    }
}

impl EventStore for Client {
    type Error = Error;

    async fn write(&self, write: StreamWrite) -> Result<AppendResult, Error> {
        // Ids chosen before the first attempt make every retry idempotent.
        let ids: Vec<Uuid> = write
            .events
            .iter()
            .map(|e| e.id.unwrap_or_else(Uuid::new_v4))
            .collect();
        let events: Vec<Outgoing> = write
            .events
            .iter()
            .zip(&ids)
            .map(|(e, id)| Outgoing::new(e, *id))
            .collect();
        let body = bytes::Bytes::from(
            serde_json::to_vec(&events).map_err(|e| Error::invalid(e.to_string()))?,
        );
        let mut query = vec![("expected_version", write.expected.to_string())];
        if let Some(b) = &write.bucket {
            query.push(("bucket", b.to_string()));
        }
        let path = stream_path(&write.stream, "");
        let r = self
            .send(|h| {
                h.post(self.at(&path))
                    .query(&query)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
            })
            .await?;
        json(r, "append answer").await
    }

    fn read(
        &self,
        stream: &StreamId,
        r: StreamRead,
    ) -> impl Stream<Item = Result<RecordedEvent, Error>> + Send + 'static {
        let from = match r.from {
            ReadFrom::Edge => None,
            ReadFrom::Version(v) => Some(v),
        };
        let mut query = range(from, r.count, r.direction);
        if let Some(l) = r.at_length {
            query.push(("length", l.to_string()));
        }
        let answer = self.streamed(stream_path(stream, ""), query, "application/x-ndjson");
        ndjson(self.base.clone(), answer)
    }

    fn read_all(
        &self,
        r: AllRead,
    ) -> impl Stream<Item = Result<RecordedEvent, Error>> + Send + 'static {
        let mut query = range(r.from, r.count, r.direction);
        if !r.filter.event_types.is_empty() {
            query.push(("type", r.filter.event_types.join(",")));
        }
        if let Some(p) = r.filter.stream_prefix {
            query.push(("prefix", p));
        }
        let answer = self.streamed("/all".into(), query, "application/x-ndjson");
        ndjson(self.base.clone(), answer)
    }

    fn subscribe(
        &self,
        target: Target,
        from: Option<u64>,
    ) -> impl Stream<Item = Result<RecordedEvent, Error>> + Send + 'static {
        let mut query = Vec::new();
        if let Some(f) = from {
            query.push(("from", f.to_string()));
        }
        let path = match target {
            Target::Stream(s) => format!("/subscribe/streams/{}", path_segment(s.as_str())),
            Target::All {
                stream_prefix,
                event_types,
            } => {
                if let Some(p) = stream_prefix {
                    query.push(("prefix", p));
                }
                if !event_types.is_empty() {
                    query.push(("type", event_types.join(",")));
                }
                "/subscribe/all".into()
            }
        };
        let answer = self.streamed(path, query, "text/event-stream");
        sse(self.base.clone(), answer)
    }

    async fn get_event(&self, id: Uuid) -> Result<RecordedEvent, Error> {
        let r = self
            .send(|h| h.get(self.at(&format!("/events/{id}"))))
            .await?;
        let bytes = r.bytes().await.map_err(|e| Error::garbled("event", e))?;
        decode(&bytes)
    }

    async fn list_streams(&self, prefix: &str) -> Result<Vec<StreamInfo>, Error> {
        let r = self
            .send(|h| h.get(self.at("/streams")).query(&[("prefix", prefix)]))
            .await?;
        json(r, "stream list").await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>, Error> {
        #[derive(Deserialize)]
        struct Version {
            version: u64,
        }
        let path = stream_path(stream, "/version");
        match self.send(|h| h.get(self.at(&path))).await {
            Ok(r) => Ok(Some(json::<Version>(r, "version").await?.version)),
            Err(e) if e.kind() == hydra_eventlog::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        hard: bool,
    ) -> Result<(), Error> {
        let query = [
            ("expected_version", expected.to_string()),
            ("hard", hard.to_string()),
        ];
        let request = self
            .http
            .delete(self.at(&stream_path(stream, "")))
            .query(&query);
        self.send_once(request).await.map(drop)
    }

    async fn metadata(&self, stream: &StreamId) -> Result<StreamMetadata, Error> {
        let path = stream_path(stream, "/metadata");
        json(self.send(|h| h.get(self.at(&path))).await?, "metadata").await
    }

    async fn set_metadata(&self, stream: &StreamId, metadata: StreamMetadata) -> Result<(), Error> {
        let path = stream_path(stream, "/metadata");
        self.send(|h| h.put(self.at(&path)).json(&metadata))
            .await
            .map(drop)
    }

    async fn save_snapshot(
        &self,
        stream: &StreamId,
        version: u64,
        data: Vec<u8>,
        metadata: Vec<u8>,
    ) -> Result<Ref, Error> {
        #[derive(Deserialize)]
        struct Saved {
            reference: Ref,
        }
        let path = stream_path(stream, &format!("/snapshots/{version}"));
        let data = bytes::Bytes::from(data);
        let metadata = STANDARD.encode(metadata);
        let r = self
            .send(|h| {
                h.put(self.at(&path))
                    .header(SNAPSHOT_METADATA, &metadata)
                    .body(data.clone())
            })
            .await?;
        Ok(json::<Saved>(r, "snapshot").await?.reference)
    }

    async fn load_snapshot(&self, stream: &StreamId, at: Option<u64>) -> Result<Snapshot, Error> {
        let path = stream_path(stream, "/snapshot");
        let r = self
            .send(|h| h.get(self.at(&path)).query(&[("at", at)]))
            .await?;
        let version = header(&r, "snapshot-version")?;
        let timestamp = header(&r, "snapshot-timestamp")?;
        let metadata = match r.headers().get(SNAPSHOT_METADATA) {
            Some(v) => STANDARD
                .decode(v.as_bytes())
                .map_err(|e| Error::garbled("snapshot metadata", e))?,
            None => Vec::new(),
        };
        let data = r.bytes().await.map_err(|e| Error::garbled("snapshot", e))?;
        Ok(Snapshot {
            stream: stream.clone(),
            version,
            data: data.to_vec(),
            metadata,
            timestamp,
        })
    }

    async fn list_snapshots(&self, stream: &StreamId) -> Result<Vec<SnapshotInfo>, Error> {
        let path = stream_path(stream, "/snapshots");
        json(self.send(|h| h.get(self.at(&path))).await?, "snapshot list").await
    }

    async fn delete_snapshot(&self, stream: &StreamId, version: u64) -> Result<bool, Error> {
        let path = stream_path(stream, &format!("/snapshots/{version}"));
        match self.send_once(self.http.delete(self.at(&path))).await {
            Ok(_) => Ok(true),
            Err(e)
                if e.kind() == hydra_eventlog::ErrorKind::NotFound && e.status() == Some(404) =>
            {
                // The stream's absence is an error, the snapshot's an answer.
                self.list_snapshots(stream).await.map(|_| false)
            }
            Err(e) => Err(e),
        }
    }

    async fn delete_snapshots(&self, stream: &StreamId) -> Result<u64, Error> {
        #[derive(Deserialize)]
        struct Deleted {
            deleted: u64,
        }
        let path = stream_path(stream, "/snapshots");
        let r = self.send_once(self.http.delete(self.at(&path))).await?;
        Ok(json::<Deleted>(r, "deletion").await?.deleted)
    }

    async fn head(&self, stream: &StreamId, length: Option<u64>) -> Result<Head, Error> {
        let path = stream_path(stream, "/head");
        let r = self
            .send(|h| h.get(self.at(&path)).query(&[("length", length)]))
            .await?;
        json(r, "head").await
    }

    async fn prove(&self, stream: &StreamId, version: u64) -> Result<ProvedEvent, Error> {
        #[derive(Deserialize)]
        struct Proved {
            head: Head,
            proof: InclusionProof,
            event: Box<serde_json::value::RawValue>,
        }
        let path = stream_path(stream, &format!("/proof/{version}"));
        let p: Proved = json(self.send(|h| h.get(self.at(&path))).await?, "proof").await?;
        Ok(ProvedEvent {
            head: p.head,
            proof: p.proof,
            event: decode(p.event.get().as_bytes())?,
        })
    }

    async fn prove_prefix(
        &self,
        stream: &StreamId,
        from_length: u64,
    ) -> Result<ProvedPrefix, Error> {
        #[derive(Deserialize)]
        struct Proved {
            old_head: Head,
            head: Head,
            consistency: ConsistencyProof,
        }
        let path = stream_path(stream, "/consistency");
        let r = self
            .send(|h| h.get(self.at(&path)).query(&[("from_length", from_length)]))
            .await?;
        let p: Proved = json(r, "consistency proof").await?;
        Ok(ProvedPrefix {
            old_head: p.old_head,
            head: p.head,
            proof: p.consistency,
        })
    }

    async fn scavenge(&self) -> Result<ScavengeReport, Error> {
        let r = self.send_once(self.http.post(self.at("/scavenge"))).await?;
        json(r, "scavenge report").await
    }

    async fn reindex(&self) -> Result<ReindexReport, Error> {
        let r = self.send_once(self.http.post(self.at("/reindex"))).await?;
        json(r, "reindex report").await
    }
}
