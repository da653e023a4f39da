//! Events as the CLI prints and parses them.

use std::io::Write;

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hydra_eventlog::RecordedEvent;
use serde_json::{Value, json};

/// Bytes as JSON: the value itself when the bytes are JSON, else a base64
/// string under `<name>_base64`.
fn bytes_field(obj: &mut serde_json::Map<String, Value>, name: &str, bytes: &[u8]) {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) if !bytes.is_empty() => {
            obj.insert(name.into(), v);
        }
        _ if bytes.is_empty() => {
            obj.insert(name.into(), Value::Null);
        }
        _ => {
            obj.insert(
                format!("{name}_base64"),
                Value::String(STANDARD.encode(bytes)),
            );
        }
    }
}

/// One event as a JSON object, payloads shown as JSON when they are.
pub fn event_json(e: &RecordedEvent) -> Value {
    render(e, false)
}

/// One event as a JSON object whose payloads are base64, so that the exact
/// bytes survive (a proof covers bytes, and JSON text does not keep key
/// order or spacing).
pub fn event_json_exact(e: &RecordedEvent) -> Value {
    render(e, true)
}

fn render(e: &RecordedEvent, exact: bool) -> Value {
    let mut obj = json!({
        "stream": e.stream.as_str(),
        "version": e.version,
        "position": e.position,
        "id": e.id.to_string(),
        "type": e.event_type,
        "timestamp": e.timestamp,
    });
    let map = obj.as_object_mut().expect("an object");
    for (name, bytes) in [("data", &e.data), ("metadata", &e.metadata)] {
        if exact {
            map.insert(
                format!("{name}_base64"),
                Value::String(STANDARD.encode(bytes)),
            );
        } else {
            bytes_field(map, name, bytes);
        }
    }
    obj
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
        serde_json::to_writer(&mut *out, &event_json(e))?;
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
