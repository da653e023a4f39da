//! Content-addressed blocks: the bottom of Hydra's stack.
//!
//! A block is a byte string stored under its [`Ref`], the BLAKE3-256 hash
//! of those bytes. Blocks are either raw bytes or [`Node`]s: typed,
//! postcard-encoded values that link to other blocks, so that blocks form
//! a DAG. A [`Walker`] visits everything reachable from a set of roots;
//! garbage collection, copying and verification are built on it.
//!
//! This crate stores nothing: CAR files ([`CarReader`], [`CarWriter`]) are
//! read from and written to any `Read`/`Write` the caller gives.
//!
//! ```
//! use hydra_block::{Codec, Kind, Node, Ref, Walker, Visit};
//!
//! let chunk = Ref::raw(b"hello");
//! let index = Node { kind: Kind(1), links: vec![chunk], body: 5u64 };
//! let bytes = index.encode();
//! let root = Ref::of(Codec::Node, &bytes);
//!
//! // One textual form everywhere: a CIDv1 (base32, BLAKE3 multihash).
//! assert_eq!(root.to_string().parse::<Ref>().unwrap(), root);
//!
//! let mut seen = Vec::new();
//! Walker::new([root])
//!     .run::<std::convert::Infallible, _, _>(|_| Ok(Some(bytes.clone())), |v| seen.push(v))
//!     .unwrap();
//! assert_eq!(seen, [Visit::Found(root), Visit::Found(chunk)]);
//! ```

mod car;
mod node;
mod reference;
mod walk;

pub use car::{CarError, CarReader, CarWriter, MAX_CAR_BLOCK};
pub use node::{DecodeError, Kind, NODE_FORMAT, Node, links, links_of};
pub use reference::{Codec, HASH_LEN, Ref, RefParseError, Verified};
pub use walk::{Visit, WalkError, Walker};
