//! Replies, encoded for the connection's protocol: RESP3 after `HELLO 3`,
//! RESP2 otherwise (maps flatten to arrays, pushes become arrays, as Redis
//! itself does).

use std::collections::HashMap;

use redis_protocol::resp2::types::{OwnedFrame as Frame2, Resp2Frame};
use redis_protocol::resp3::types::{OwnedFrame as Frame3, Resp3Frame};

/// A reply, independent of the protocol version.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    /// `-CODE message`: the code is the first word (`ERR`, `WRONGVER`, ...).
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Null,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    Push(Vec<Reply>),
    Bool(bool),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    pub fn str(s: impl Into<String>) -> Reply {
        Reply::Simple(s.into())
    }

    pub fn bulk(b: impl Into<Vec<u8>>) -> Reply {
        Reply::Bulk(b.into())
    }

    pub fn err(code: &str, message: impl std::fmt::Display) -> Reply {
        Reply::Error(format!("{code} {message}"))
    }

    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Reply)>) -> Reply {
        Reply::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Reply::Simple(k.into()), v))
                .collect(),
        )
    }

    fn to_resp3(&self) -> Frame3 {
        match self {
            Reply::Simple(s) => Frame3::SimpleString {
                data: s.clone().into_bytes(),
                attributes: None,
            },
            Reply::Error(e) => Frame3::SimpleError {
                data: e.clone(),
                attributes: None,
            },
            Reply::Int(n) => Frame3::Number {
                data: *n,
                attributes: None,
            },
            Reply::Bulk(b) => Frame3::BlobString {
                data: b.clone(),
                attributes: None,
            },
            Reply::Null => Frame3::Null,
            Reply::Bool(b) => Frame3::Boolean {
                data: *b,
                attributes: None,
            },
            Reply::Array(items) => Frame3::Array {
                data: items.iter().map(Reply::to_resp3).collect(),
                attributes: None,
            },
            Reply::Push(items) => Frame3::Push {
                data: items.iter().map(Reply::to_resp3).collect(),
                attributes: None,
            },
            Reply::Map(pairs) => {
                let data: HashMap<Frame3, Frame3> = pairs
                    .iter()
                    .map(|(k, v)| (k.to_resp3(), v.to_resp3()))
                    .collect();
                Frame3::Map {
                    data,
                    attributes: None,
                }
            }
        }
    }

    fn to_resp2(&self) -> Frame2 {
        match self {
            Reply::Simple(s) => Frame2::SimpleString(s.clone().into_bytes()),
            Reply::Error(e) => Frame2::Error(e.clone()),
            Reply::Int(n) => Frame2::Integer(*n),
            Reply::Bulk(b) => Frame2::BulkString(b.clone()),
            Reply::Null => Frame2::Null,
            Reply::Bool(b) => Frame2::Integer(i64::from(*b)),
            Reply::Array(items) | Reply::Push(items) => {
                Frame2::Array(items.iter().map(Reply::to_resp2).collect())
            }
            Reply::Map(pairs) => Frame2::Array(
                pairs
                    .iter()
                    .flat_map(|(k, v)| [k.to_resp2(), v.to_resp2()])
                    .collect(),
            ),
        }
    }

    /// Appends the encoding for protocol `version` (2 or 3) to `out`.
    pub fn encode(&self, version: u8, out: &mut Vec<u8>) {
        let start = out.len();
        if version >= 3 {
            let f = self.to_resp3();
            let n = f.encode_len(false);
            out.resize(start + n, 0);
            redis_protocol::resp3::encode::complete::encode(&mut out[start..], &f, false)
                .expect("a buffer of encode_len bytes fits the frame");
        } else {
            let f = self.to_resp2();
            let n = f.encode_len(false);
            out.resize(start + n, 0);
            redis_protocol::resp2::encode::encode(&mut out[start..], &f, false)
                .expect("a buffer of encode_len bytes fits the frame");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_protocols() {
        let r = Reply::map([("a", Reply::Int(1))]);
        let mut v3 = Vec::new();
        r.encode(3, &mut v3);
        assert_eq!(v3, b"%1\r\n+a\r\n:1\r\n");
        let mut v2 = Vec::new();
        r.encode(2, &mut v2);
        assert_eq!(v2, b"*2\r\n+a\r\n:1\r\n");
        let mut e = Vec::new();
        Reply::err("WRONGVER", "stream s is at version 1, expected 0").encode(2, &mut e);
        assert_eq!(e, b"-WRONGVER stream s is at version 1, expected 0\r\n");
        let mut n = Vec::new();
        Reply::Null.encode(3, &mut n);
        assert_eq!(n, b"_\r\n");
    }
}
