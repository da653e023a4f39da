//! Replies, encoded for the connection's protocol: RESP3 after `HELLO 3`,
//! RESP2 otherwise (maps flatten to arrays, pushes become arrays, as Redis
//! itself does).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

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
    /// A reply many connections send: see [`SharedReply`].
    Shared(Arc<SharedReply>),
}

/// A reply sent on many connections (an event pushed to each of its
/// subscribers), encoded once for each protocol rather than once per
/// connection: with thousands of subscribers, encoding each push was most
/// of what delivering it cost.
#[derive(Debug)]
pub struct SharedReply {
    reply: Reply,
    /// RESP2, RESP3.
    encoded: [OnceLock<Vec<u8>>; 2],
}

impl SharedReply {
    pub fn new(reply: Reply) -> Arc<SharedReply> {
        Arc::new(SharedReply {
            reply,
            encoded: Default::default(),
        })
    }
}

impl PartialEq for SharedReply {
    fn eq(&self, other: &SharedReply) -> bool {
        self.reply == other.reply
    }
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
            Reply::Shared(shared) => shared.reply.to_resp3(),
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
            Reply::Shared(shared) => shared.reply.to_resp2(),
        }
    }

    /// Appends the encoding for protocol `version` (2 or 3) to `out`.
    pub fn encode(&self, version: u8, out: &mut Vec<u8>) {
        match self {
            // A push is its header, then its items, so that a shared item
            // keeps its encoding (RESP2 has no pushes: an array).
            Reply::Push(items) => {
                let kind = if version >= 3 { '>' } else { '*' };
                out.extend_from_slice(format!("{kind}{}\r\n", items.len()).as_bytes());
                for item in items {
                    item.encode(version, out);
                }
            }
            Reply::Shared(shared) => {
                let encoded = shared.encoded[usize::from(version >= 3)].get_or_init(|| {
                    let mut bytes = Vec::new();
                    shared.reply.encode(version, &mut bytes);
                    bytes
                });
                out.extend_from_slice(encoded);
            }
            _ => self.encode_frame(version, out),
        }
    }

    /// Encodes through `redis-protocol`'s frames.
    fn encode_frame(&self, version: u8, out: &mut Vec<u8>) {
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

    /// The RESP3 frame `bytes` hold, whole (maps encode their keys in any
    /// order: frames compare as maps).
    fn frame3(bytes: &[u8]) -> Frame3 {
        let (f, n) = redis_protocol::resp3::decode::complete::decode(bytes)
            .unwrap()
            .unwrap();
        assert_eq!(n, bytes.len());
        f
    }

    /// A push holding a shared reply encodes as the same push with the
    /// reply in place, in both protocols, each time.
    #[test]
    fn a_shared_reply_encodes_as_itself() {
        let event = Reply::map([
            ("stream", Reply::bulk("s")),
            ("data", Reply::bulk(&b"\x00\xff"[..])),
            ("version", Reply::Int(7)),
            ("nested", Reply::Array(vec![Reply::Null, Reply::Bool(true)])),
        ]);
        let head = [Reply::str("message"), Reply::str("id"), Reply::Int(7)];
        let plain = Reply::Push(head.iter().cloned().chain([event.clone()]).collect());
        let shared = SharedReply::new(event);
        for version in [2, 3] {
            let mut want = Vec::new();
            plain.encode_frame(version, &mut want);
            for _ in 0..2 {
                let push = Reply::Push(
                    head.iter()
                        .cloned()
                        .chain([Reply::Shared(shared.clone())])
                        .collect(),
                );
                let mut got = Vec::new();
                push.encode(version, &mut got);
                if version == 3 {
                    assert_eq!(frame3(&got), frame3(&want));
                } else {
                    assert_eq!(got, want);
                }
            }
        }
    }
}
