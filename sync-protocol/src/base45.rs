//! Base45 (RFC 9285), strict: the 45-character alphabet is a subset of the QR
//! alphanumeric set, so a Base45 text is encoded in QR alphanumeric mode.
//!
//! The `base45` crate decodes leniently (it accepts a trailing pair whose value
//! exceeds 255 and silently truncates it), which gives one byte string several
//! texts. RFC 9285 section 4.2 requires such input to be rejected, so this
//! module implements the few lines of the RFC directly.

use crate::DecodeError;

const ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

fn value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|i| i as u32)
}

/// Encodes bytes as Base45 text.
pub fn encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(2) * 3);
    let mut push = |v: u32| out.push(char::from(ALPHABET[v as usize]));
    let mut chunks = input.chunks_exact(2);
    for pair in &mut chunks {
        let n = u32::from(pair[0]) * 256 + u32::from(pair[1]);
        push(n % 45);
        push(n / 45 % 45);
        push(n / 2025);
    }
    if let [last] = chunks.remainder() {
        let n = u32::from(*last);
        push(n % 45);
        push(n / 45);
    }
    out
}

/// Decodes Base45 text; rejects characters outside the alphabet, a dangling
/// single character, and groups whose value does not fit their bytes.
pub fn decode(input: &str) -> Result<Vec<u8>, DecodeError> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 3 * 2 + 1);
    let mut chunks = bytes.chunks_exact(3);
    for group in &mut chunks {
        let (c, d, e) = (digit(group[0])?, digit(group[1])?, digit(group[2])?);
        let n = c + d * 45 + e * 2025;
        if n > 0xffff {
            return Err(DecodeError::Invalid("base45 triple exceeds 65535"));
        }
        out.extend_from_slice(&(n as u16).to_be_bytes());
    }
    match chunks.remainder() {
        [] => {}
        [c, d] => {
            let n = digit(*c)? + digit(*d)? * 45;
            if n > 0xff {
                return Err(DecodeError::Invalid("base45 pair exceeds 255"));
            }
            out.push(n as u8);
        }
        _ => {
            return Err(DecodeError::Invalid(
                "base45 length leaves a single character",
            ));
        }
    }
    Ok(out)
}

fn digit(c: u8) -> Result<u32, DecodeError> {
    value(c).ok_or(DecodeError::Invalid(
        "character outside the base45 alphabet",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9285_examples() {
        assert_eq!(encode(b"AB"), "BB8");
        assert_eq!(encode(b"Hello!!"), "%69 VD92EX0");
        assert_eq!(encode(b"base-45"), "UJCLQE7W581");
        assert_eq!(decode("QED8WEX0").unwrap(), b"ietf!");
        assert_eq!(decode("").unwrap(), b"");
    }

    #[test]
    fn rejects_non_canonical_and_foreign_input() {
        assert!(decode("GGW").is_err(), "GGW is 65536, one past u16");
        assert!(decode("::").is_err(), ":: is 2024, not a byte");
        assert!(decode("A").is_err());
        assert!(decode("abc").is_err(), "lower case is outside the alphabet");
    }
}
