//! Standard base64 (RFC 4648, with padding), as used by the `data` field of descriptors.

use crate::descriptor::Descriptor;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn value(b: u8) -> Option<u32> {
    match b {
        b'A'..=b'Z' => Some(u32::from(b - b'A')),
        b'a'..=b'z' => Some(u32::from(b - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(b - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decodes padded standard base64; `None` when `s` is not canonical base64.
pub(crate) fn decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (n, chunk) in b.chunks_exact(4).enumerate() {
        let last = (n + 1) * 4 == b.len();
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut acc = 0u32;
        for &c in &chunk[..4 - pad] {
            acc = (acc << 6) | value(c)?;
        }
        acc <<= 6 * pad as u32;
        let bytes = acc.to_be_bytes();
        // Non-zero bits below the padding make a non-canonical encoding.
        match pad {
            0 => out.extend_from_slice(&bytes[1..4]),
            1 if bytes[3] == 0 => out.extend_from_slice(&bytes[1..3]),
            2 if bytes[2] == 0 && bytes[3] == 0 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

/// Encodes `data` as padded standard base64.
pub(crate) fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let mut buf = [0u8; 3];
        buf[..chunk.len()].copy_from_slice(chunk);
        let acc = (u32::from(buf[0]) << 16) | (u32::from(buf[1]) << 8) | u32::from(buf[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((acc >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes the `data` of a descriptor, checking it is `size` bytes hashing to `digest`.
pub(crate) fn check_embedded(data: &str, d: &Descriptor) -> Result<Vec<u8>, String> {
    let Some(bytes) = decode(data) else {
        return Err("data is not valid base64".to_owned());
    };
    if bytes.len() as u64 != d.size {
        return Err(format!(
            "embedded data has {} bytes, descriptor size is {}",
            bytes.len(),
            d.size
        ));
    }
    let actual = d.digest.algorithm().hash(&bytes);
    if actual != d.digest {
        return Err(format!("embedded data hashes to {actual}"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("{}", "e30="),
        ] {
            assert_eq!(encode(plain.as_bytes()), enc);
            assert_eq!(decode(enc).as_deref(), Some(plain.as_bytes()));
        }
        for bad in ["Zg=", "Zh==", "Z===", "Zg==Zg==", "Zm9v!", "e30"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(decode(&encode(&data)), Some(data));
        }
    }
}
