//! Events on the wire, byte for byte: what an append sends, and the
//! NDJSON reads and Server-Sent Events subscriptions that come back.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_core::Stream;
use futures_util::{StreamExt, stream};
use hydra_eventlog::{NewEvent, RecordedEvent, StreamId};
use reqwest::Response;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::Error;

/// An event of an append: payloads that are JSON exactly as given (no
/// whitespace around them to lose) go as JSON, which the daemon stores as
/// the bytes it received; any other bytes as base64.
#[derive(Serialize)]
pub(crate) struct Outgoing<'a> {
    id: Uuid,
    #[serde(rename = "type")]
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<u64>,
}

/// JSON as itself when it is exactly JSON, else base64; nothing when empty.
fn payload(bytes: &[u8]) -> (Option<&RawValue>, Option<String>) {
    if bytes.is_empty() {
        return (None, None);
    }
    match serde_json::from_slice::<&RawValue>(bytes) {
        Ok(raw) if raw.get().len() == bytes.len() => (Some(raw), None),
        _ => (None, Some(STANDARD.encode(bytes))),
    }
}

impl<'a> Outgoing<'a> {
    /// `id`: the event's own, or one chosen now so that a retry is
    /// idempotent.
    pub(crate) fn new(e: &'a NewEvent, id: Uuid) -> Outgoing<'a> {
        let (data, data_base64) = payload(&e.data);
        let (metadata, metadata_base64) = payload(&e.metadata);
        Outgoing {
            id,
            event_type: &e.event_type,
            data,
            data_base64,
            metadata,
            metadata_base64,
            timestamp: e.timestamp,
        }
    }
}

/// An event as the daemon prints it, payloads kept as the exact bytes.
#[derive(Deserialize)]
struct Incoming {
    stream: StreamId,
    version: u64,
    position: u64,
    id: Uuid,
    #[serde(rename = "type")]
    event_type: String,
    timestamp: u64,
    data: Option<Box<RawValue>>,
    data_base64: Option<String>,
    metadata: Option<Box<RawValue>>,
    metadata_base64: Option<String>,
}

fn bytes_of(raw: Option<Box<RawValue>>, base64: Option<String>) -> Result<Vec<u8>, Error> {
    match (raw, base64) {
        (_, Some(b)) => STANDARD
            .decode(b)
            .map_err(|e| Error::garbled("event payload", e)),
        (Some(raw), None) => Ok(raw.get().as_bytes().to_vec()),
        (None, None) => Ok(Vec::new()),
    }
}

/// One event from the daemon's JSON.
pub(crate) fn decode(json: &[u8]) -> Result<RecordedEvent, Error> {
    let e: Incoming = serde_json::from_slice(json).map_err(|e| Error::garbled("event", e))?;
    Ok(RecordedEvent {
        id: e.id,
        stream: e.stream,
        version: e.version,
        position: e.position,
        event_type: e.event_type,
        data: bytes_of(e.data, e.data_base64)?,
        metadata: bytes_of(e.metadata, e.metadata_base64)?,
        timestamp: e.timestamp,
    })
}

/// The lines of a response body as they arrive.
fn lines(base: String, r: Response) -> impl Stream<Item = Result<Vec<u8>, Error>> + Send {
    let body = Box::pin(r.bytes_stream());
    stream::unfold(
        (body, Vec::<u8>::new(), false),
        move |(mut body, mut buf, mut ended)| {
            let base = base.clone();
            async move {
                loop {
                    if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                        let mut line: Vec<u8> = buf.drain(..=i).collect();
                        line.pop();
                        return Some((Ok(line), (body, buf, ended)));
                    }
                    if ended {
                        return (!buf.is_empty())
                            .then(|| (Ok(std::mem::take(&mut buf)), (body, Vec::new(), true)));
                    }
                    match body.next().await {
                        Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                        // A body cut short: the daemon failed after it
                        // started answering, or the connection broke.
                        Some(Err(e)) => {
                            return Some((
                                Err(Error::transport(&base, e)),
                                (body, Vec::new(), true),
                            ));
                        }
                        None => ended = true,
                    }
                }
            }
        },
    )
}

/// The events of an NDJSON answer, once `answer` comes.
pub(crate) fn ndjson(
    base: String,
    answer: impl Future<Output = Result<Response, Error>> + Send + 'static,
) -> impl Stream<Item = Result<RecordedEvent, Error>> + Send + 'static {
    body_lines(base, answer).filter_map(|line| async move {
        match line {
            Ok(l) if l.is_empty() => None,
            Ok(l) => Some(decode(&l)),
            Err(e) => Some(Err(e)),
        }
    })
}

/// The events of a Server-Sent Events answer (each message's `data:`).
pub(crate) fn sse(
    base: String,
    answer: impl Future<Output = Result<Response, Error>> + Send + 'static,
) -> impl Stream<Item = Result<RecordedEvent, Error>> + Send + 'static {
    body_lines(base, answer).filter_map(|line| async move {
        match line {
            Ok(l) => l.strip_prefix(b"data:").map(|d| decode(d.trim_ascii())),
            Err(e) => Some(Err(e)),
        }
    })
}

fn body_lines(
    base: String,
    answer: impl Future<Output = Result<Response, Error>> + Send + 'static,
) -> impl Stream<Item = Result<Vec<u8>, Error>> + Send + 'static {
    stream::once(answer)
        .map(move |r| match r {
            Ok(r) => lines(base.clone(), r).left_stream(),
            Err(e) => stream::once(async move { Err(e) }).right_stream(),
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_go_as_exact_json_or_as_base64() {
        let json = br#"{"b": 1,  "a":2}"#;
        assert_eq!(payload(json).0.unwrap().get().as_bytes(), json);
        // Whitespace around JSON would be lost as JSON: base64 keeps it.
        assert_eq!(payload(b" 1").1.as_deref(), Some("IDE="));
        assert_eq!(payload(&[0, 255]).1.as_deref(), Some("AP8="));
        assert!(matches!(payload(b""), (None, None)));
    }

    #[test]
    fn events_come_back_with_their_bytes() {
        let e = decode(
            br#"{"stream":"s","version":1,"position":7,"id":"6f1f7e4e-3b7a-4f0e-9a55-2a1c1f9b0a01","type":"T","timestamp":5,"data":{"b": 1,  "a":2},"metadata_base64":"AP8="}"#,
        )
        .unwrap();
        assert_eq!(e.data, br#"{"b": 1,  "a":2}"#);
        assert_eq!(e.metadata, vec![0, 255]);
        assert_eq!((e.version, e.position, e.timestamp), (1, 7, 5));
    }
}
