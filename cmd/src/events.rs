//! Events as the CLI and the HTTP API print and parse them.
//!
//! Payloads that are JSON appear as JSON, byte for byte as stored (a
//! `RawValue`, never re-serialised); anything else appears as base64 under
//! `data_base64` / `metadata_base64`.

use std::io::Write;

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hydra_eventlog::{NewEvent, RecordedEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use uuid::Uuid;

/// An event as JSON output: payloads that are JSON under `data` and
/// `metadata` (exactly as stored), others base64 under `data_base64` and
/// `metadata_base64`; empty ones absent.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Event)]
pub struct EventOut<'a> {
    #[schema(value_type = hydra_eventlog::StreamId)]
    pub stream: &'a str,
    /// 0-based, gapless within the stream.
    pub version: u64,
    /// 0-based, gapless across the store: the `$all` order.
    pub position: u64,
    pub id: Uuid,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub event_type: &'a str,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Byte)]
    pub data_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub metadata: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Byte)]
    pub metadata_base64: Option<String>,
}

/// JSON bytes as themselves, other non-empty bytes as base64.
fn payload(bytes: &[u8], exact: bool) -> (Option<&RawValue>, Option<String>) {
    if bytes.is_empty() {
        return (None, None);
    }
    // JSON with whitespace around it would lose the whitespace as JSON.
    if !exact
        && let Ok(raw) = serde_json::from_slice::<&RawValue>(bytes)
        && raw.get().len() == bytes.len()
    {
        return (Some(raw), None);
    }
    (None, Some(STANDARD.encode(bytes)))
}

impl<'a> EventOut<'a> {
    /// `exact`: payloads always as base64 (for proofs, which cover bytes).
    pub fn new(e: &'a RecordedEvent, exact: bool) -> EventOut<'a> {
        let (data, data_base64) = payload(&e.data, exact);
        let (metadata, metadata_base64) = payload(&e.metadata, exact);
        EventOut {
            stream: e.stream.as_str(),
            version: e.version,
            position: e.position,
            id: e.id,
            event_type: &e.event_type,
            timestamp: e.timestamp,
            data,
            data_base64,
            metadata,
            metadata_base64,
        }
    }
}

/// One event as a JSON value.
pub fn event_json(e: &RecordedEvent) -> Value {
    serde_json::to_value(EventOut::new(e, false)).expect("events serialise")
}

/// One event as a JSON value whose payloads are base64, so that the exact
/// bytes survive any JSON tool (a proof covers bytes).
pub fn event_json_exact(e: &RecordedEvent) -> Value {
    serde_json::to_value(EventOut::new(e, true)).expect("events serialise")
}

/// Parses an event printed by [`event_json`] back.
pub fn event_from_json(v: &Value) -> Result<RecordedEvent> {
    let field = |name: &str| {
        v.get(name)
            .with_context(|| format!("event has no {name:?}"))
    };
    let bytes = |name: &str| -> Result<Vec<u8>> {
        if let Some(b) = v.get(format!("{name}_base64")) {
            return STANDARD
                .decode(b.as_str().context("base64 field is not a string")?)
                .context("bad base64");
        }
        Ok(match v.get(name) {
            None | Some(Value::Null) => Vec::new(),
            Some(x) => serde_json::to_vec(x)?,
        })
    };
    Ok(RecordedEvent {
        id: field("id")?
            .as_str()
            .context("id is not a string")?
            .parse()?,
        stream: field("stream")?
            .as_str()
            .context("stream is not a string")?
            .parse()?,
        version: field("version")?
            .as_u64()
            .context("version is not a number")?,
        position: field("position")?
            .as_u64()
            .context("position is not a number")?,
        event_type: field("type")?
            .as_str()
            .context("type is not a string")?
            .to_owned(),
        data: bytes("data")?,
        metadata: bytes("metadata")?,
        timestamp: field("timestamp")?
            .as_u64()
            .context("timestamp is not a number")?,
    })
}

/// Prints one event: a JSON line, or a tab-separated line for people.
pub fn print_event(out: &mut impl Write, e: &RecordedEvent, json: bool) -> Result<()> {
    if json {
        serde_json::to_writer(&mut *out, &EventOut::new(e, false))?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            e.stream,
            e.version,
            e.position,
            e.event_type,
            String::from_utf8_lossy(&e.data)
        )?;
    }
    Ok(())
}

/// An event as JSON input (HTTP bodies): `type`, and optionally `id`,
/// `data` (any JSON, stored byte for byte) or `data_base64`, `metadata`
/// or `metadata_base64`, `timestamp` (ms).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewEvent)]
pub struct EventIn<'a> {
    /// Chosen by the client so that a retried append is idempotent;
    /// assigned when absent.
    #[serde(default)]
    pub id: Option<Uuid>,
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 256)]
    pub event_type: String,
    /// Any JSON, stored byte for byte.
    #[serde(default, borrow)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub data: Option<&'a RawValue>,
    /// Other bytes, base64 (instead of `data`).
    #[serde(default)]
    #[schema(format = Byte)]
    pub data_base64: Option<String>,
    #[serde(default, borrow)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub metadata: Option<&'a RawValue>,
    #[serde(default)]
    #[schema(format = Byte)]
    pub metadata_base64: Option<String>,
    /// Milliseconds since the Unix epoch (default: now).
    #[serde(default)]
    #[schema(value_type = Option<u64>)]
    pub timestamp: Option<serde_json::Number>,
}

/// A JSON number as JSON Schema reads it: an integer when it has no
/// fraction, however it is written (`3`, `3.0`, `3e0`).
pub fn integer(n: &serde_json::Number) -> Option<serde_json::Number> {
    let f = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0)?;
    // Exactly 2^64 and -2^63: the ranges that fit.
    if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
        Some((f as u64).into())
    } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
        Some((f as i64).into())
    } else {
        None
    }
}

/// The body of an append: one event, or an array of them, appended
/// together (what [`parse_events`] reads).
pub struct Events;

impl utoipa::PartialSchema for Events {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::ToSchema;
        use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder, Ref};
        let event = || Ref::from_schema_name(EventIn::name());
        OneOfBuilder::new()
            .item(event())
            .item(ArrayBuilder::new().items(event()).min_items(Some(1)))
            .into()
    }
}

impl utoipa::ToSchema for Events {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        let mut event = <EventIn as utoipa::PartialSchema>::schema();
        // A payload comes as JSON or as base64, never both.
        if let utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(o)) = &mut event {
            o.extensions.get_or_insert_with(Default::default).insert(
                "not".into(),
                serde_json::json!({"anyOf": [
                    {"required": ["data", "data_base64"]},
                    {"required": ["metadata", "metadata_base64"]},
                ]}),
            );
        }
        schemas.push((EventIn::name().into(), event));
    }
}

impl EventIn<'_> {
    pub fn into_new(self) -> Result<NewEvent, String> {
        let pick =
            |raw: Option<&RawValue>, b64: Option<String>, name: &str| -> Result<Vec<u8>, String> {
                match (raw, b64) {
                    (Some(_), Some(_)) => Err(format!("give {name} or {name}_base64, not both")),
                    (Some(r), None) => Ok(r.get().as_bytes().to_vec()),
                    (None, Some(b)) => STANDARD
                        .decode(b.as_bytes())
                        .map_err(|e| format!("{name}_base64 is not base64: {e}")),
                    (None, None) => Ok(Vec::new()),
                }
            };
        let timestamp = match self.timestamp {
            None => None,
            Some(n) => Some(
                n.as_u64()
                    .or_else(|| integer(&n).and_then(|i| i.as_u64()))
                    .ok_or_else(|| format!("timestamp {n} is not a whole number of ms"))?,
            ),
        };
        Ok(NewEvent {
            id: self.id,
            data: pick(self.data, self.data_base64, "data")?,
            metadata: pick(self.metadata, self.metadata_base64, "metadata")?,
            event_type: self.event_type,
            timestamp,
        })
    }
}

/// Parses a body holding one event object or an array of them.
pub fn parse_events(body: &[u8]) -> Result<Vec<NewEvent>, String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let events: Vec<EventIn<'_>> = match first {
        Some(b'[') => serde_json::from_slice(body).map_err(|e| format!("bad events: {e}"))?,
        Some(b'{') => vec![serde_json::from_slice(body).map_err(|e| format!("bad event: {e}"))?],
        _ => return Err("the body must be a JSON event object or an array of them".into()),
    };
    events.into_iter().map(EventIn::into_new).collect()
}

/// `--data`-style input: literal text, `@FILE`, or `@-` for stdin.
pub fn input_bytes(arg: Option<&str>) -> Result<Vec<u8>> {
    match arg {
        None => Ok(Vec::new()),
        Some("@-") => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
            Ok(buf)
        }
        Some(s) if s.starts_with('@') => {
            std::fs::read(&s[1..]).with_context(|| format!("reading {}", &s[1..]))
        }
        Some(s) => Ok(s.as_bytes().to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_payloads_keep_their_bytes_and_others_go_base64() {
        let events = parse_events(
            br#"[{"type":"A","data":{"b": 1,  "a":2}},{"type":"B","data_base64":"AP8="}]"#,
        )
        .unwrap();
        assert_eq!(events[0].data, br#"{"b": 1,  "a":2}"#);
        assert_eq!(events[1].data, vec![0, 255]);
        let one = parse_events(br#" {"type":"C"} "#).unwrap();
        assert_eq!(one.len(), 1);
        assert!(parse_events(b"42").is_err());
        assert!(
            parse_events(br#"{"type":"A","bogus":1}"#)
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(parse_events(br#"{"type":"A","data":1,"data_base64":"AA=="}"#).is_err());
        let rec = RecordedEvent {
            id: Uuid::nil(),
            stream: "s".parse().unwrap(),
            version: 0,
            position: 0,
            event_type: "A".into(),
            data: br#"{"b": 1,  "a":2}"#.to_vec(),
            metadata: vec![0, 1],
            timestamp: 1,
        };
        let text = serde_json::to_string(&EventOut::new(&rec, false)).unwrap();
        assert!(text.contains(r#""data":{"b": 1,  "a":2}"#), "{text}");
        assert!(text.contains(r#""metadata_base64":"AAE=""#), "{text}");
        let padded = RecordedEvent {
            data: b" 42 ".to_vec(),
            ..rec
        };
        let text = serde_json::to_string(&EventOut::new(&padded, false)).unwrap();
        assert!(text.contains(r#""data_base64":"IDQyIA==""#), "{text}");
    }
}
