//! Lowercase hex for keys, hashes and signatures in text: the one
//! encoder and decoder every Hydra crate uses.

pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `N` bytes from `2 * N` hex digits.
pub fn decode<const N: usize>(s: &str) -> Result<[u8; N], String> {
    if s.len() != N * 2 || !s.is_ascii() {
        return Err(format!("expected {} hex digits, got {:?}", N * 2, s));
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16)
            .map_err(|_| format!("{s:?} is not hex"))?;
    }
    Ok(out)
}
