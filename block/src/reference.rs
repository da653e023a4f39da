//! [`Ref`]: the address of a block, and its one textual form.

use std::fmt;
use std::str::FromStr;

use cid::Cid;
use cid::multihash::Multihash;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Multihash code of BLAKE3 (multicodec table: `blake3`, 0x1e).
const BLAKE3_CODE: u64 = 0x1e;

/// Size of a BLAKE3-256 digest in bytes.
pub const HASH_LEN: usize = 32;

/// How the stored bytes of a block are to be read, carried in the ref as
/// the CID's codec so that a walker knows, from the link alone, whether a
/// block can link to others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Codec {
    /// Opaque bytes without links (multicodec `raw`, 0x55). A raw block's
    /// ref in an untransformed bucket equals `b3sum` of the file.
    Raw,
    /// A Hydra node: a postcard envelope with a kind, links and a body
    /// (see [`crate::Node`]). Multicodec private-use code 0x3f4859.
    Node,
    /// A Hydra node that buckets store as it is, never compressed or
    /// encrypted, so that a peer without the bucket's key can still follow
    /// its links: a blind replica walks, verifies and collects through it.
    /// For nodes that hold only what is visible anyway (refs, counts, the
    /// names keys already show), such as a stream's bundle tree.
    /// Multicodec private-use code 0x3f485a.
    PlainNode,
}

impl Codec {
    /// The multicodec code written into the CID.
    pub const fn code(self) -> u64 {
        match self {
            Codec::Raw => 0x55,
            Codec::Node => 0x3f_4859,
            Codec::PlainNode => 0x3f_485a,
        }
    }

    const ALL: [Codec; 3] = [Codec::Raw, Codec::Node, Codec::PlainNode];

    fn from_code(code: u64) -> Option<Codec> {
        Codec::ALL.into_iter().find(|c| c.code() == code)
    }

    /// One-byte tag for compact binary forms (postcard, volume keys).
    pub const fn tag(self) -> u8 {
        match self {
            Codec::Raw => 0,
            Codec::Node => 1,
            Codec::PlainNode => 2,
        }
    }

    /// Whether blocks of this codec are stored untransformed in every
    /// bucket (see [`Codec::PlainNode`]).
    pub const fn is_plain(self) -> bool {
        matches!(self, Codec::PlainNode)
    }

    pub const fn from_tag(tag: u8) -> Option<Codec> {
        match tag {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Node),
            2 => Some(Codec::PlainNode),
            _ => None,
        }
    }
}

/// The address of a block: the BLAKE3-256 hash of the bytes a bucket
/// stores for it, plus the [`Codec`] that says how to read them.
///
/// The hash covers the *stored* bytes, after compression and encryption,
/// so that a peer holding no key can still verify and serve a block.
///
/// Its one textual form, used by the CLI, logs and every API, is a CIDv1
/// in lowercase base32 (`b...`) with a BLAKE3 multihash, which IPFS tools
/// recognise: raw blocks start with `bafkr4i`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ref {
    codec: Codec,
    hash: [u8; HASH_LEN],
}

impl Ref {
    /// The ref of `stored` bytes read with `codec`.
    pub fn of(codec: Codec, stored: &[u8]) -> Ref {
        Ref {
            codec,
            hash: *blake3::hash(stored).as_bytes(),
        }
    }

    /// The ref of raw bytes.
    pub fn raw(stored: &[u8]) -> Ref {
        Ref::of(Codec::Raw, stored)
    }

    /// A ref from its parts, e.g. a hash read back from a volume key.
    pub const fn from_parts(codec: Codec, hash: [u8; HASH_LEN]) -> Ref {
        Ref { codec, hash }
    }

    pub const fn codec(&self) -> Codec {
        self.codec
    }

    /// The BLAKE3-256 digest of the stored bytes.
    pub const fn hash(&self) -> &[u8; HASH_LEN] {
        &self.hash
    }

    /// True when `stored` hashes to this ref. Constant time in the digest
    /// comparison (blake3's `Hash` equality).
    pub fn matches(&self, stored: &[u8]) -> bool {
        blake3::hash(stored) == blake3::Hash::from_bytes(self.hash)
    }

    /// `stored` as the bytes of this ref, if they hash to it; otherwise
    /// the ref they do hash to.
    pub fn verify(self, stored: Vec<u8>) -> Result<Verified, Ref> {
        let hash = blake3::hash(&stored);
        if hash == blake3::Hash::from_bytes(self.hash) {
            Ok(Verified { r: self, stored })
        } else {
            Err(Ref {
                codec: self.codec,
                hash: *hash.as_bytes(),
            })
        }
    }

    pub(crate) fn to_cid(self) -> Cid {
        let mh = Multihash::<64>::wrap(BLAKE3_CODE, &self.hash)
            .expect("a 32-byte digest fits a 64-byte multihash");
        Cid::new_v1(self.codec.code(), mh)
    }
}

/// Stored bytes checked against their ref ([`Ref::verify`]): what a
/// store keeps under the ref without hashing them again, so that a block
/// fetched from a peer is hashed once, where it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    r: Ref,
    stored: Vec<u8>,
}

impl Verified {
    pub fn reference(&self) -> Ref {
        self.r
    }

    pub fn stored(&self) -> &[u8] {
        &self.stored
    }

    pub fn into_parts(self) -> (Ref, Vec<u8>) {
        (self.r, self.stored)
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // CIDv1's default string form is multibase base32 lowercase.
        fmt::Display::fmt(&self.to_cid(), f)
    }
}

impl fmt::Debug for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ref({self})")
    }
}

/// Why a string is not a [`Ref`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefParseError {
    #[error("{input:?} is not a CID: {reason}")]
    NotACid { input: String, reason: String },
    #[error("{input:?} is a CIDv0; Hydra refs are CIDv1 (b...)")]
    Version0 { input: String },
    #[error("{input:?} uses multihash code {code:#x}; Hydra refs use BLAKE3 (0x1e)")]
    HashFunction { input: String, code: u64 },
    #[error("{input:?} has a {len}-byte digest; BLAKE3 refs have 32")]
    DigestLength { input: String, len: usize },
    #[error("{input:?} uses codec {code:#x}; Hydra knows raw (0x55) and node (0x3f4859)")]
    Codec { input: String, code: u64 },
}

impl FromStr for Ref {
    type Err = RefParseError;

    fn from_str(input: &str) -> Result<Ref, RefParseError> {
        let owned = || input.to_owned();
        let cid = Cid::try_from(input).map_err(|e| RefParseError::NotACid {
            input: owned(),
            reason: e.to_string(),
        })?;
        if cid.version() == cid::Version::V0 {
            return Err(RefParseError::Version0 { input: owned() });
        }
        let mh = cid.hash();
        if mh.code() != BLAKE3_CODE {
            return Err(RefParseError::HashFunction {
                input: owned(),
                code: mh.code(),
            });
        }
        let hash: [u8; HASH_LEN] =
            mh.digest()
                .try_into()
                .map_err(|_| RefParseError::DigestLength {
                    input: owned(),
                    len: mh.digest().len(),
                })?;
        let codec = Codec::from_code(cid.codec()).ok_or(RefParseError::Codec {
            input: owned(),
            code: cid.codec(),
        })?;
        Ok(Ref { codec, hash })
    }
}

/// Text for human-readable formats (JSON, YAML), 33 compact bytes
/// (codec tag, digest) for binary ones (postcard).
/// A ref in the OpenAPI document: its textual form.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Ref {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some(text_pattern()))
            .description(Some(
                "A block's ref: a CIDv1 in lowercase base32 with a BLAKE3 multihash",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Ref {}

/// Every ref's textual form as a regular expression, so that a client
/// generated from the document (or a fuzzer) can tell a ref from any
/// string: for each codec, the CID's fixed prefix, then the hash's
/// characters, the first and the last taking only the values that the
/// bits around them allow.
#[cfg(feature = "openapi")]
fn text_pattern() -> String {
    let forms: Vec<String> = Codec::ALL
        .into_iter()
        .map(|codec| {
            let text = |hash: [u8; HASH_LEN]| Ref { codec, hash }.to_string();
            let (zeros, ones) = (text([0; HASH_LEN]), text([0xff; HASH_LEN]));
            let fixed = zeros
                .bytes()
                .zip(ones.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            // The characters at `at` as the hash's byte `byte` takes every value.
            let class = |at: usize, byte: usize| -> String {
                let chars: std::collections::BTreeSet<char> = (0..=255u8)
                    .map(|v| {
                        let mut hash = [0; HASH_LEN];
                        hash[byte] = v;
                        char::from(text(hash).as_bytes()[at])
                    })
                    .collect();
                chars.into_iter().collect()
            };
            format!(
                "{}[{}][a-z2-7]{{{}}}[{}]",
                &zeros[..fixed],
                class(fixed, 0),
                zeros.len() - fixed - 2,
                class(zeros.len() - 1, HASH_LEN - 1)
            )
        })
        .collect();
    format!("^({})$", forms.join("|"))
}

impl Serialize for Ref {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            (self.codec.tag(), self.hash).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Ref {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ref, D::Error> {
        use serde::de::Error;
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(D::Error::custom)
        } else {
            let (tag, hash) = <(u8, [u8; HASH_LEN])>::deserialize(d)?;
            let codec = Codec::from_tag(tag)
                .ok_or_else(|| D::Error::custom(format!("unknown codec tag {tag}")))?;
            Ok(Ref { codec, hash })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[cfg(feature = "openapi")]
    proptest! {
        /// The document's pattern admits exactly refs: every string it
        /// admits parses, and every ref's text matches it.
        #[test]
        fn the_text_pattern_admits_refs_and_only_refs(
            // (Without its anchors, which the generator does not take.)
            text in proptest::string::string_regex(text_pattern().trim_matches(['^', '$'])).unwrap(),
            codec in prop::sample::select(Codec::ALL.to_vec()),
            hash in any::<[u8; HASH_LEN]>(),
        ) {
            prop_assert!(text.parse::<Ref>().is_ok(), "{text}");
            let pattern = regex::Regex::new(&text_pattern()).unwrap();
            let r = Ref { codec, hash };
            prop_assert!(pattern.is_match(&r.to_string()), "{r}");
            prop_assert!(!pattern.is_match(&r.to_string()[1..]));
        }
    }

    #[test]
    fn raw_ref_of_empty_bytes_is_the_known_cid() {
        let r = Ref::raw(b"");
        // BLAKE3("") = af1349b9...; the CID prefix for raw+blake3 is bafkr4i.
        assert_eq!(
            hex(r.hash()),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert!(r.to_string().starts_with("bafkr4i"), "{r}");
    }

    #[test]
    fn node_refs_round_trip_and_differ_from_raw() {
        let n = Ref::of(Codec::Node, b"x");
        let r = Ref::raw(b"x");
        assert_ne!(n.to_string(), r.to_string());
        assert_eq!(n.to_string().parse::<Ref>().unwrap(), n);
    }

    #[test]
    fn malformed_strings_are_clear_errors() {
        let e = "hello".parse::<Ref>().unwrap_err();
        assert!(e.to_string().starts_with("\"hello\" is not a CID"), "{e}");
        // A CIDv1 with sha2-256 (the usual IPFS hash) is refused by name.
        let e = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
            .parse::<Ref>()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy\" uses multihash code 0x12; Hydra refs use BLAKE3 (0x1e)"
        );
        let v0 = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
        assert!(matches!(
            v0.parse::<Ref>(),
            Err(RefParseError::Version0 { .. })
        ));
        let dag_cbor = Cid::new_v1(
            0x71,
            Multihash::<64>::wrap(BLAKE3_CODE, &[7u8; 32]).unwrap(),
        )
        .to_string();
        assert!(matches!(
            dag_cbor.parse::<Ref>(),
            Err(RefParseError::Codec { code: 0x71, .. })
        ));
        let short = Cid::new_v1(
            0x55,
            Multihash::<64>::wrap(BLAKE3_CODE, &[7u8; 16]).unwrap(),
        )
        .to_string();
        assert!(matches!(
            short.parse::<Ref>(),
            Err(RefParseError::DigestLength { len: 16, .. })
        ));
    }

    #[test]
    fn matches_detects_a_flipped_byte() {
        let r = Ref::raw(b"hello world");
        assert!(r.matches(b"hello world"));
        assert!(!r.matches(b"hello worle"));
        let v = r.verify(b"hello world".to_vec()).unwrap();
        assert_eq!(v.into_parts(), (r, b"hello world".to_vec()));
        assert_eq!(
            r.verify(b"hello worle".to_vec()),
            Err(Ref::raw(b"hello worle"))
        );
    }

    #[test]
    fn serde_forms() {
        let r = Ref::raw(b"abc");
        let bin = postcard::to_allocvec(&r).unwrap();
        assert_eq!(bin.len(), 33);
        assert_eq!(postcard::from_bytes::<Ref>(&bin).unwrap(), r);
        let mut bad = bin.clone();
        bad[0] = 9;
        assert!(postcard::from_bytes::<Ref>(&bad).is_err());
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(hash in any::<[u8; 32]>(), tag in 0u8..3) {
            let codec = Codec::from_tag(tag).unwrap();
            let r = Ref::from_parts(codec, hash);
            prop_assert_eq!(r.to_string().parse::<Ref>().unwrap(), r);
        }

        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = s.parse::<Ref>();
        }
    }
}
