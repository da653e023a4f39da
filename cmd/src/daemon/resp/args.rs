//! Reading a command's arguments: keywords, numbers, versions.

use hydra_eventlog::{ExpectedVersion, StreamId};
use uuid::Uuid;

use super::reply::Reply;

/// The arguments after the command name, consumed front to back.
pub struct Args {
    items: std::collections::VecDeque<Vec<u8>>,
}

pub type ArgResult<T> = Result<T, Reply>;

/// A Redis command's malformed arguments (`HELLO`, `AUTH`).
pub fn syntax(msg: impl std::fmt::Display) -> Reply {
    Reply::err("SYNTAX", msg)
}

/// Any argument error of SierraDB's commands, missing and extra ones
/// too, as SierraDB's server answers them.
pub fn invalid(msg: impl std::fmt::Display) -> Reply {
    Reply::err("INVALIDARG", msg)
}

impl Args {
    pub fn new(items: Vec<Vec<u8>>) -> Args {
        Args {
            items: items.into(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn next_bytes(&mut self, what: &str) -> ArgResult<Vec<u8>> {
        self.items
            .pop_front()
            .ok_or_else(|| invalid(format!("missing {what}")))
    }

    pub fn next_str(&mut self, what: &str) -> ArgResult<String> {
        String::from_utf8(self.next_bytes(what)?)
            .map_err(|_| invalid(format!("{what} is not UTF-8")))
    }

    /// The next argument if it is `keyword` (any case), consumed.
    pub fn keyword(&mut self, keyword: &str) -> bool {
        if self
            .items
            .front()
            .is_some_and(|a| a.eq_ignore_ascii_case(keyword.as_bytes()))
        {
            self.items.pop_front();
            true
        } else {
            false
        }
    }

    /// The next argument, upper-cased, without consuming it.
    pub fn peek_upper(&self) -> Option<String> {
        self.items
            .front()
            .map(|a| String::from_utf8_lossy(a).to_uppercase())
    }

    pub fn u64(&mut self, what: &str) -> ArgResult<u64> {
        let s = self.next_str(what)?;
        s.parse()
            .map_err(|_| invalid(format!("{what} {s:?} is not a number")))
    }

    pub fn stream(&mut self) -> ArgResult<StreamId> {
        let s = self.next_str("stream id")?;
        StreamId::new(s).map_err(invalid)
    }

    pub fn uuid(&mut self, what: &str) -> ArgResult<Uuid> {
        let s = self.next_str(what)?;
        s.parse()
            .map_err(|_| invalid(format!("{what} {s:?} is not a UUID")))
    }

    /// `any`, `exists`, `empty` (SierraDB's no-stream) or a number.
    pub fn expected(&mut self) -> ArgResult<ExpectedVersion> {
        let s = self.next_str("expected version")?;
        match s.to_ascii_lowercase().as_str() {
            "any" => Ok(ExpectedVersion::Any),
            "exists" => Ok(ExpectedVersion::StreamExists),
            "empty" | "no_stream" => Ok(ExpectedVersion::NoStream),
            n => n.parse().map(ExpectedVersion::Exact).map_err(|_| {
                invalid(format!(
                    "expected version {s:?}: use a number, any, exists or empty"
                ))
            }),
        }
    }

    /// `-` (start), `+` (end) or a number.
    pub fn bound(&mut self, what: &str) -> ArgResult<Option<u64>> {
        let s = self.next_str(what)?;
        match s.as_str() {
            "-" | "+" => Ok(None),
            n => n
                .parse()
                .map(Some)
                .map_err(|_| invalid(format!("{what} {s:?}: use a number, - or +"))),
        }
    }

    pub fn finish(&self) -> ArgResult<()> {
        match self.items.front() {
            None => Ok(()),
            Some(a) => Err(invalid(format!(
                "unexpected argument {:?}",
                String::from_utf8_lossy(a)
            ))),
        }
    }
}
