//! Splitting a connection's input into commands. Self-contained (only
//! `redis-protocol`), so that the fuzz target compiles this very file.

use redis_protocol::resp3::types::OwnedFrame;

/// Takes the next complete command off the front of `input`, as words:
/// `Ok(None)` when more bytes are needed, `Err` for a protocol error (the
/// connection then closes). Accepts RESP2 and RESP3 arrays, and inline
/// commands (a line of words, as telnet sends). Never panics, whatever
/// the bytes, and never consumes more than it was given.
pub fn take(input: &mut Vec<u8>) -> Result<Option<Vec<Vec<u8>>>, String> {
    loop {
        if input.is_empty() {
            return Ok(None);
        }
        if !b"*$+:-_#,(!=%~>|".contains(&input[0]) {
            let Some(end) = input.iter().position(|b| *b == b'\n') else {
                return Ok(None);
            };
            let line: Vec<u8> = input.drain(..=end).collect();
            let words: Vec<Vec<u8>> = String::from_utf8_lossy(&line)
                .split_whitespace()
                .map(|w| w.as_bytes().to_vec())
                .collect();
            if words.is_empty() {
                continue;
            }
            return Ok(Some(words));
        }
        return match redis_protocol::resp3::decode::complete::decode(input) {
            Ok(None) => Ok(None),
            Ok(Some((frame, used))) => {
                input.drain(..used);
                words(frame).map(Some)
            }
            Err(e) => Err(e.to_string()),
        };
    }
}

/// A request frame's words: an array of strings.
fn words(frame: OwnedFrame) -> Result<Vec<Vec<u8>>, String> {
    let items = match frame {
        OwnedFrame::Array { data, .. } => data,
        _ => return Err("a command is an array of strings".into()),
    };
    items
        .into_iter()
        .map(|f| match f {
            OwnedFrame::BlobString { data, .. } | OwnedFrame::SimpleString { data, .. } => Ok(data),
            OwnedFrame::Number { data, .. } => Ok(data.to_string().into_bytes()),
            _ => Err("command arguments must be strings".into()),
        })
        .collect()
}
