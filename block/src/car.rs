//! CARv1 files: a header naming root refs, then blocks, each with its CID.
//! Hydra's export format (and IPFS's): a reader verifies every block
//! against its CID as it streams, so a file is checked exactly as a
//! network peer's data is.
//!
//! Layout: `varint(len) header`, then per block `varint(len) cid data`.
//! The header is the DAG-CBOR map `{"roots": [CID...], "version": 1}`,
//! CIDs as CBOR tag 42 over a byte string prefixed with 0x00.

use std::io::{self, Read, Write};

#[cfg(test)]
use crate::Codec;
use crate::Ref;

/// Largest block a reader accepts.
pub const MAX_CAR_BLOCK: usize = 64 << 20;
/// Largest header a reader accepts.
const MAX_HEADER: usize = 1 << 20;

/// Why a CAR file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CarError {
    #[error("reading the CAR file: {0}")]
    Io(#[from] io::Error),
    #[error("the CAR file ends in the middle of {0}")]
    Truncated(&'static str),
    #[error("bad CAR header: {0}")]
    BadHeader(String),
    #[error("bad CID in the CAR file: {0}")]
    BadCid(String),
    #[error("block of {len} bytes exceeds the {MAX_CAR_BLOCK}-byte limit")]
    TooLarge { len: u64 },
    #[error(
        "block {reference} in the CAR file does not match its CID (its bytes hash to {actual})"
    )]
    HashMismatch { reference: Ref, actual: Ref },
}

fn write_varint(out: &mut impl Write, n: u64) -> io::Result<()> {
    let mut buf = unsigned_varint::encode::u64_buffer();
    out.write_all(unsigned_varint::encode::u64(n, &mut buf))
}

fn cid_bytes(r: &Ref) -> Vec<u8> {
    r.to_cid().to_bytes()
}

/// Writes a CAR file.
pub struct CarWriter<W: Write> {
    out: W,
}

impl<W: Write> CarWriter<W> {
    /// Writes the header naming `roots`.
    pub fn new(mut out: W, roots: &[Ref]) -> io::Result<CarWriter<W>> {
        let mut h = vec![0xa2, 0x65];
        h.extend_from_slice(b"roots");
        cbor_len(&mut h, 4, roots.len() as u64);
        for r in roots {
            let mut b = vec![0u8];
            b.extend(cid_bytes(r));
            h.extend_from_slice(&[0xd8, 0x2a]);
            cbor_len(&mut h, 2, b.len() as u64);
            h.extend(b);
        }
        h.push(0x67);
        h.extend_from_slice(b"version");
        h.push(0x01);
        write_varint(&mut out, h.len() as u64)?;
        out.write_all(&h)?;
        Ok(CarWriter { out })
    }

    /// Writes blocks only: for a file whose roots are known once its
    /// blocks are written, which go to a spool that follows the header
    /// ([`CarWriter::new`]) once it is.
    pub fn headless(out: W) -> CarWriter<W> {
        CarWriter { out }
    }

    /// Appends a block; `data` must hash to `r` (the reader checks).
    pub fn write(&mut self, r: &Ref, data: &[u8]) -> io::Result<()> {
        let cid = cid_bytes(r);
        write_varint(&mut self.out, (cid.len() + data.len()) as u64)?;
        self.out.write_all(&cid)?;
        self.out.write_all(data)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A CBOR head: major type and length.
fn cbor_len(out: &mut Vec<u8>, major: u8, len: u64) {
    let m = major << 5;
    match len {
        0..=23 => out.push(m | len as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, len as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
}

/// Reads a CAR file, verifying every block against its CID.
pub struct CarReader<R: Read> {
    input: R,
    roots: Vec<Ref>,
}

/// Reads a varint; `None` at a clean end of input.
fn read_varint(input: &mut impl Read, what: &'static str) -> Result<Option<u64>, CarError> {
    let mut first = [0u8; 1];
    if input.read(&mut first)? == 0 {
        return Ok(None);
    }
    let mut n = u64::from(first[0] & 0x7f);
    let mut shift = 7;
    let mut b = first[0];
    while b & 0x80 != 0 {
        let mut next = [0u8; 1];
        if input.read(&mut next)? == 0 {
            return Err(CarError::Truncated(what));
        }
        b = next[0];
        if shift > 63 {
            return Err(CarError::BadHeader(format!("{what}: varint too long")));
        }
        n |= u64::from(b & 0x7f) << shift;
        shift += 7;
    }
    Ok(Some(n))
}

fn read_exact(input: &mut impl Read, len: usize, what: &'static str) -> Result<Vec<u8>, CarError> {
    let mut buf = Vec::new();
    input.take(len as u64).read_to_end(&mut buf)?;
    if buf.len() != len {
        return Err(CarError::Truncated(what));
    }
    Ok(buf)
}

fn parse_ref(bytes: &[u8]) -> Result<(Ref, usize), CarError> {
    let bad = |e: String| CarError::BadCid(e);
    let mut cursor = io::Cursor::new(bytes);
    let cid = cid::Cid::read_bytes(&mut cursor).map_err(|e| bad(e.to_string()))?;
    let used = cursor.position() as usize;
    let s = cid.to_string();
    let r: Ref = s
        .parse()
        .map_err(|e: crate::RefParseError| bad(e.to_string()))?;
    Ok((r, used))
}

impl<R: Read> CarReader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<CarReader<R>, CarError> {
        let len =
            read_varint(&mut input, "the header")?.ok_or(CarError::Truncated("the header"))?;
        if len as usize > MAX_HEADER {
            return Err(CarError::BadHeader(format!("{len} bytes")));
        }
        let h = read_exact(&mut input, len as usize, "the header")?;
        let roots = parse_header(&h).map_err(CarError::BadHeader)?;
        Ok(CarReader { input, roots })
    }

    pub fn roots(&self) -> &[Ref] {
        &self.roots
    }

    /// The next block, verified; `None` at the end of the file.
    pub fn next_block(&mut self) -> Result<Option<(Ref, Vec<u8>)>, CarError> {
        let Some(len) = read_varint(&mut self.input, "a block's length")? else {
            return Ok(None);
        };
        if len as usize > MAX_CAR_BLOCK + 64 {
            return Err(CarError::TooLarge { len });
        }
        let mut bytes = read_exact(&mut self.input, len as usize, "a block")?;
        let (r, used) = parse_ref(&bytes)?;
        let data = bytes.split_off(used);
        if !r.matches(&data) {
            return Err(CarError::HashMismatch {
                reference: r,
                actual: Ref::of(r.codec(), &data),
            });
        }
        Ok(Some((r, data)))
    }
}

/// Parses `{"roots": [tag42(bytes)...], "version": 1}` (keys in any order).
fn parse_header(h: &[u8]) -> Result<Vec<Ref>, String> {
    let mut p = Cbor { b: h, i: 0 };
    let (major, n) = p.head()?;
    if major != 5 {
        return Err("not a map".into());
    }
    let (mut roots, mut version) = (None, None);
    for _ in 0..n {
        let key = p.text()?;
        match key.as_str() {
            "roots" => {
                let (major, count) = p.head()?;
                if major != 4 {
                    return Err("roots is not an array".into());
                }
                let mut rs = Vec::new();
                for _ in 0..count.min(1 << 16) {
                    let (major, tag) = p.head()?;
                    if major != 6 || tag != 42 {
                        return Err("a root is not a CID (tag 42)".into());
                    }
                    let bytes = p.bytes()?;
                    let (first, rest) = bytes.split_first().ok_or("an empty CID")?;
                    if *first != 0 {
                        return Err("a CID without its 0x00 prefix".into());
                    }
                    rs.push(parse_ref(rest).map_err(|e| e.to_string())?.0);
                }
                roots = Some(rs);
            }
            "version" => {
                let (major, v) = p.head()?;
                if major != 0 {
                    return Err("version is not a number".into());
                }
                version = Some(v);
            }
            other => return Err(format!("unexpected key {other:?}")),
        }
    }
    match (roots, version) {
        (Some(r), Some(1)) => Ok(r),
        (_, Some(v)) => Err(format!("version {v}; this reader reads CARv1")),
        _ => Err("missing roots or version".into()),
    }
}

struct Cbor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cbor<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let v = *self.b.get(self.i).ok_or("short header")?;
        self.i += 1;
        Ok(v)
    }

    fn head(&mut self) -> Result<(u8, u64), String> {
        let b = self.byte()?;
        let (major, info) = (b >> 5, b & 0x1f);
        let n = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                let len = 1usize << (info - 24);
                let mut n = 0u64;
                for _ in 0..len {
                    n = (n << 8) | u64::from(self.byte()?);
                }
                n
            }
            _ => return Err("indefinite lengths are not DAG-CBOR".into()),
        };
        Ok((major, n))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let (major, n) = self.head()?;
        if major != 2 && major != 3 {
            return Err("expected a byte or text string".into());
        }
        let end = self
            .i
            .checked_add(n as usize)
            .filter(|e| *e <= self.b.len())
            .ok_or("short header")?;
        let v = self.b[self.i..end].to_vec();
        self.i = end;
        Ok(v)
    }

    fn text(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?).map_err(|_| "a key is not UTF-8".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> (Vec<u8>, Vec<(Ref, Vec<u8>)>) {
        let blocks: Vec<(Ref, Vec<u8>)> = (0..5u8)
            .map(|i| {
                let data = vec![i; 100 * i as usize];
                (
                    Ref::of(if i % 2 == 0 { Codec::Raw } else { Codec::Node }, &data),
                    data,
                )
            })
            .collect();
        let mut w = CarWriter::new(Vec::new(), &[blocks[0].0, blocks[3].0]).unwrap();
        for (r, d) in &blocks {
            w.write(r, d).unwrap();
        }
        (w.finish().unwrap(), blocks)
    }

    #[test]
    fn round_trip_and_every_fault_is_refused() {
        let (file, blocks) = sample();
        let mut r = CarReader::new(&file[..]).unwrap();
        assert_eq!(r.roots(), &[blocks[0].0, blocks[3].0]);
        let mut got = Vec::new();
        while let Some(b) = r.next_block().unwrap() {
            got.push(b);
        }
        assert_eq!(got, blocks);
        // A flipped byte in the last block's data.
        let mut bad = file.clone();
        *bad.last_mut().unwrap() ^= 1;
        let mut r = CarReader::new(&bad[..]).unwrap();
        let err = loop {
            match r.next_block() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("tampering not found"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, CarError::HashMismatch { .. }), "{err}");
        // Truncated in the middle of a block.
        let cut = &file[..file.len() - 7];
        let mut r = CarReader::new(cut).unwrap();
        let err = loop {
            match r.next_block() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("truncation not found"),
                Err(e) => break e,
            }
        };
        assert_eq!(
            err.to_string(),
            "the CAR file ends in the middle of a block"
        );
        assert!(CarReader::new(&file[..5]).is_err());
    }

    proptest! {
        #[test]
        fn reading_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(mut r) = CarReader::new(&bytes[..]) {
                for _ in 0..16 {
                    match r.next_block() {
                        Ok(Some(_)) => {}
                        _ => break,
                    }
                }
            }
        }
    }
}
