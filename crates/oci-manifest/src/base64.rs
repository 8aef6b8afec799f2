//! Standard base64 (RFC 4648, with padding), as used by the `data` field of descriptors: the
//! `base64` crate (also used by the registry client), strict about canonical input.

use crate::descriptor::Descriptor;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Decodes padded standard base64; `None` when `s` is not canonical base64 (padding required,
/// no non-zero bits below it).
pub(crate) fn decode(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s).ok()
}

/// Encodes `data` as padded standard base64.
pub(crate) fn encode(data: &[u8]) -> String {
    STANDARD.encode(data)
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
