//! [`Node`]: a typed block that can link to other blocks.
//!
//! A node's bytes are the postcard encoding of
//! `(format, kind, links, body)`. The links come before the body so that a
//! walker can read any node's links without knowing its body's type: it
//! decodes the `(format, kind, links)` prefix and stops.

use serde::{Deserialize, Serialize};

use crate::{Codec, Ref};

/// Version of the node envelope. A change to the envelope's layout gets a
/// new number; decoders refuse numbers they do not know.
pub const NODE_FORMAT: u8 = 1;

/// What a node's body is. Each higher crate names its own kinds (object
/// index, stream tile, ...) as constants of this type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Kind(pub u16);

/// Why bytes are not the node that was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("node format {found} is not supported (this build reads format {NODE_FORMAT})")]
    Format { found: u8 },
    #[error("expected a node of kind {expected}, found kind {found}")]
    Kind { expected: u16, found: u16 },
    #[error("malformed node: {0}")]
    Malformed(#[from] postcard::Error),
    #[error("node has {0} trailing bytes after its body")]
    Trailing(usize),
}

/// A decoded node: its links and its typed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node<T> {
    pub kind: Kind,
    pub links: Vec<Ref>,
    pub body: T,
}

impl<T: Serialize> Node<T> {
    /// Encodes the node; returns its bytes and their [`Codec::Node`] ref.
    /// Stored untransformed, the bytes hash to that ref; a bucket that
    /// transforms them computes the ref of what it stores instead.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(&(NODE_FORMAT, self.kind, &self.links, &self.body))
            .expect("postcard encoding into a Vec cannot fail for plain data")
    }
}

impl<'de, T: Deserialize<'de>> Node<T> {
    /// Decodes a node of kind `expected`, refusing any other kind, unknown
    /// formats and trailing bytes. A body may borrow from `bytes`.
    pub fn decode(expected: Kind, bytes: &'de [u8]) -> Result<Node<T>, DecodeError> {
        let (kind, links, rest) = decode_prefix(bytes)?;
        if kind != expected {
            return Err(DecodeError::Kind {
                expected: expected.0,
                found: kind.0,
            });
        }
        let (body, trailing) = postcard::take_from_bytes::<T>(rest)?;
        if !trailing.is_empty() {
            return Err(DecodeError::Trailing(trailing.len()));
        }
        Ok(Node { kind, links, body })
    }
}

/// The kind and links of any node, without decoding its body.
pub fn links_of(bytes: &[u8]) -> Result<(Kind, Vec<Ref>), DecodeError> {
    let (kind, links, _) = decode_prefix(bytes)?;
    Ok((kind, links))
}

/// The links a block can have: none for raw blocks, the envelope's for
/// nodes. `bytes` are the block's plain (untransformed) bytes.
pub fn links(codec: Codec, bytes: &[u8]) -> Result<Vec<Ref>, DecodeError> {
    match codec {
        Codec::Raw => Ok(Vec::new()),
        Codec::Node | Codec::PlainNode => links_of(bytes).map(|(_, l)| l),
    }
}

fn decode_prefix(bytes: &[u8]) -> Result<(Kind, Vec<Ref>, &[u8]), DecodeError> {
    let (format, rest) = postcard::take_from_bytes::<u8>(bytes)?;
    if format != NODE_FORMAT {
        return Err(DecodeError::Format { found: format });
    }
    let (kind, rest) = postcard::take_from_bytes::<Kind>(rest)?;
    let (links, rest) = postcard::take_from_bytes::<Vec<Ref>>(rest)?;
    Ok((kind, links, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEST: Kind = Kind(7);

    #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct Body {
        sizes: Vec<u64>,
        name: String,
    }

    fn sample() -> Node<Body> {
        Node {
            kind: TEST,
            links: vec![Ref::raw(b"a"), Ref::of(Codec::Node, b"b")],
            body: Body {
                sizes: vec![1, 2],
                name: "n".into(),
            },
        }
    }

    #[test]
    fn round_trip_and_links_without_body() {
        let n = sample();
        let bytes = n.encode();
        assert_eq!(Node::<Body>::decode(TEST, &bytes).unwrap(), n);
        assert_eq!(links(Codec::Node, &bytes).unwrap(), n.links);
        assert!(links(Codec::Raw, &bytes).unwrap().is_empty());
    }

    #[test]
    fn wrong_kind_format_and_trailing_bytes_are_refused() {
        let bytes = sample().encode();
        let e = Node::<Body>::decode(Kind(8), &bytes).unwrap_err();
        assert_eq!(e.to_string(), "expected a node of kind 8, found kind 7");
        let mut v2 = bytes.clone();
        v2[0] = 2;
        let e = Node::<Body>::decode(TEST, &v2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "node format 2 is not supported (this build reads format 1)"
        );
        let mut long = bytes.clone();
        long.push(0);
        let e = Node::<Body>::decode(TEST, &long).unwrap_err();
        assert_eq!(e.to_string(), "node has 1 trailing bytes after its body");
        let e = Node::<Body>::decode(TEST, &bytes[..bytes.len() - 1]).unwrap_err();
        assert!(e.to_string().starts_with("malformed node"), "{e}");
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Node::<Body>::decode(TEST, &bytes);
            let _ = links_of(&bytes);
        }
    }
}
