//! The validated `Digest` type.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::{Algorithm, ParseDigestError};

/// A validated content digest such as `sha256:e3b0c442…`.
///
/// A `Digest` can only be made by parsing a string that follows the OCI image-spec digest grammar
/// or by hashing bytes, so every value is in canonical form: a registered algorithm and lowercase
/// hex of that algorithm's exact length. That makes [`Digest::algorithm`] and [`Digest::encoded`]
/// safe to use as file-name components (no `/`, no `..`, no empty parts).
///
/// Cloning is cheap (a reference-count increment). Equality, ordering and hashing are those of the
/// canonical string. With serde it is a string, validated on deserialisation.
///
/// ```
/// use oci_digest::{Algorithm, Digest};
///
/// let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse()?;
/// assert_eq!(d.algorithm(), Algorithm::Sha256);
/// assert_eq!(d.encoded(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
/// assert_eq!(d, Algorithm::Sha256.hash(b""));
/// assert_eq!(d.to_string(), d.as_str());
/// # Ok::<(), oci_digest::ParseDigestError>(())
/// ```
#[derive(Clone)]
pub struct Digest {
    // Invariant: `repr` is `"{algorithm}:{lowercase hex of algorithm.hex_len()}"`.
    repr: Arc<str>,
    algorithm: Algorithm,
}

/// Lowercase hex digits.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Byte classes for branch-free validation: a digest's hex is random, so per-byte range checks
/// would mispredict on every other byte; one table lookup and an AND per byte do not.
const ALG_COMPONENT: u8 = 1; // [a-z0-9]
const ALG_SEPARATOR: u8 = 2; // [+._-]
const ENCODED: u8 = 4; // [a-zA-Z0-9=_-]
const LOWER_HEX: u8 = 8; // [0-9a-f]

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            c |= ALG_COMPONENT;
        }
        if matches!(b, b'+' | b'.' | b'_' | b'-') {
            c |= ALG_SEPARATOR;
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-') {
            c |= ENCODED;
        }
        if b.is_ascii_digit() || matches!(b, b'a'..=b'f') {
            c |= LOWER_HEX;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// The classes every byte of `bytes` has in common.
#[inline]
fn common_class(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0xff, |acc, &b| acc & CLASS[usize::from(b)])
}

/// Validates the grammar of an algorithm: components `[a-z0-9]+` joined by one of `+._-`.
fn valid_algorithm_grammar(alg: &[u8]) -> bool {
    let mut prev_sep = true; // at the start, as after a separator: a component must follow
    for &b in alg {
        let c = CLASS[usize::from(b)];
        if c & ALG_COMPONENT != 0 {
            prev_sep = false;
        } else if c & ALG_SEPARATOR != 0 && !prev_sep {
            prev_sep = true;
        } else {
            return false;
        }
    }
    !prev_sep
}

impl Digest {
    /// Parses and validates a digest string. Same as [`str::parse`].
    ///
    /// # Errors
    /// [`ParseDigestError::InvalidFormat`] when the grammar is broken or the hex is not lowercase,
    /// [`ParseDigestError::UnsupportedAlgorithm`] for an algorithm other than sha256 and sha512,
    /// [`ParseDigestError::InvalidLength`] when the hex has the wrong length.
    ///
    /// ```
    /// use oci_digest::{Digest, ParseDigestError};
    /// assert!(matches!(Digest::parse("sha256:abc"), Err(ParseDigestError::InvalidLength { expected: 64, actual: 3, .. })));
    /// assert!(matches!(Digest::parse("sha256/../x"), Err(ParseDigestError::InvalidFormat { .. })));
    /// ```
    pub fn parse(s: &str) -> Result<Digest, ParseDigestError> {
        let bytes = s.as_bytes();
        let Some(colon) = bytes.iter().position(|&b| b == b':') else {
            return Err(ParseDigestError::format(
                s,
                "missing ':' between algorithm and encoded part",
            ));
        };
        let (alg, enc) = (&bytes[..colon], &bytes[colon + 1..]);
        if alg.is_empty() {
            return Err(ParseDigestError::format(s, "empty algorithm"));
        }
        if enc.is_empty() {
            return Err(ParseDigestError::format(s, "empty encoded part"));
        }
        if !valid_algorithm_grammar(alg) {
            return Err(ParseDigestError::format(
                s,
                "algorithm must be [a-z0-9]+ components joined by one of + . _ -",
            ));
        }
        let enc_class = common_class(enc);
        if enc_class & ENCODED == 0 {
            return Err(ParseDigestError::format(
                s,
                "encoded part must match [a-zA-Z0-9=_-]+",
            ));
        }
        // Both halves are ASCII now, so slicing the str at `colon` is on a char boundary.
        let alg_str = &s[..colon];
        let Some(algorithm) = Algorithm::from_name(alg_str) else {
            return Err(ParseDigestError::unsupported(s, alg_str));
        };
        if enc_class & LOWER_HEX == 0 {
            return Err(ParseDigestError::format(
                s,
                "encoded part of a registered algorithm must be lowercase hex",
            ));
        }
        if enc.len() != algorithm.hex_len() {
            return Err(ParseDigestError::InvalidLength {
                input: crate::error::truncate_input(s),
                algorithm,
                expected: algorithm.hex_len(),
                actual: enc.len(),
            });
        }
        Ok(Digest {
            repr: Arc::from(s),
            algorithm,
        })
    }

    /// Builds a digest from a raw hash output.
    ///
    /// # Errors
    /// [`ParseDigestError::InvalidLength`] when `raw` is not `algorithm.output_len()` bytes.
    ///
    /// ```
    /// use oci_digest::{Algorithm, Digest};
    /// let d = Digest::from_raw(Algorithm::Sha256, &[0u8; 32])?;
    /// assert_eq!(d.encoded(), "0".repeat(64));
    /// assert_eq!(d.to_raw(), vec![0u8; 32]);
    /// # Ok::<(), oci_digest::ParseDigestError>(())
    /// ```
    pub fn from_raw(algorithm: Algorithm, raw: &[u8]) -> Result<Digest, ParseDigestError> {
        if raw.len() != algorithm.output_len() {
            return Err(ParseDigestError::InvalidLength {
                input: format!("{algorithm}:<{} raw bytes>", raw.len()),
                algorithm,
                expected: algorithm.hex_len(),
                actual: raw.len() * 2,
            });
        }
        Ok(Digest::from_hash_output(algorithm, raw))
    }

    /// Hex-encodes a hash output whose length the caller guarantees to be the algorithm's.
    pub(crate) fn from_hash_output(algorithm: Algorithm, raw: &[u8]) -> Digest {
        debug_assert_eq!(raw.len(), algorithm.output_len());
        let name = algorithm.as_str();
        let mut s = String::with_capacity(name.len() + 1 + raw.len() * 2);
        s.push_str(name);
        s.push(':');
        for &b in raw {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        Digest {
            repr: Arc::from(s),
            algorithm,
        }
    }

    /// The canonical string, `algorithm:hex`.
    pub fn as_str(&self) -> &str {
        &self.repr
    }

    /// The digest's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded (lowercase hex) part, after the `:`. Safe as a file name.
    ///
    /// ```
    /// let d = oci_digest::Algorithm::Sha256.hash(b"");
    /// assert!(d.encoded().starts_with("e3b0c442"));
    /// ```
    pub fn encoded(&self) -> &str {
        &self.repr[self.algorithm.as_str().len() + 1..]
    }

    /// The raw hash output, decoded from hex.
    pub fn to_raw(&self) -> Vec<u8> {
        self.encoded()
            .as_bytes()
            .chunks_exact(2)
            .map(|pair| (hex_value(pair[0]) << 4) | hex_value(pair[1]))
            .collect()
    }
}

/// Value of one lowercase hex digit (validated by construction).
fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => 0,
    }
}

// Equality, ordering and hashing are those of the canonical string (the algorithm is derived from
// it), so that `Borrow<str>` lookups in maps and sets agree with `Digest` keys.
impl PartialEq for Digest {
    fn eq(&self, other: &Self) -> bool {
        self.repr == other.repr
    }
}

impl Eq for Digest {}

impl PartialOrd for Digest {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Digest {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.repr.cmp(&other.repr)
    }
}

impl std::hash::Hash for Digest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl FromStr for Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl TryFrom<&str> for Digest {
    type Error = ParseDigestError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Digest::parse(s)
    }
}

impl TryFrom<String> for Digest {
    type Error = ParseDigestError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Digest::parse(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.repr.as_ref().to_owned()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &*self.repr)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.repr
    }
}

impl Borrow<str> for Digest {
    fn borrow(&self) -> &str {
        &self.repr
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        &*self.repr == other
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        &*self.repr == *other
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.repr)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Digest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a digest string such as \"sha256:<64 hex>\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Digest, E> {
                Digest::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn valid_sha256_and_sha512() {
        let d = Digest::parse(&format!("sha256:{E}")).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.encoded(), E);
        let h512 = "a".repeat(128);
        let d = Digest::parse(&format!("sha512:{h512}")).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert_eq!(d.encoded(), h512);
    }

    fn kind(s: &str) -> &'static str {
        match Digest::parse(s) {
            Ok(_) => "ok",
            Err(ParseDigestError::InvalidFormat { .. }) => "format",
            Err(ParseDigestError::InvalidLength { .. }) => "length",
            Err(ParseDigestError::UnsupportedAlgorithm { .. }) => "unsupported",
        }
    }

    #[test]
    fn error_kinds_with_exact_inputs() {
        let cases: &[(&str, &str)] = &[
            ("", "format"),
            ("sha256", "format"),
            (":", "format"),
            (&format!(":{E}"), "format"),
            ("sha256:", "format"),
            (&format!("SHA256:{E}"), "format"),
            (&format!("sha256:{}", E.to_uppercase()), "format"),
            (&format!("sha256:{}g", &E[..63]), "format"),
            (&format!("sha256:{E}\n"), "format"),
            (&format!(" sha256:{E}"), "format"),
            (&format!("sha256:../{}", &E[..61]), "format"),
            (&format!("sha256:{}/x", &E[..62]), "format"),
            ("sha256:abc", "length"),
            (&format!("sha256:{E}0"), "length"),
            (&format!("sha512:{E}"), "length"),
            (&format!("sha256:{}", "a".repeat(128)), "length"),
            ("md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported"),
            ("sha384:abc", "unsupported"),
            (
                "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
                "unsupported",
            ),
            (
                "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
                "unsupported",
            ),
            ("blake3:abc", "unsupported"),
            ("+sha256:abc", "format"),
            ("sha256+:abc", "format"),
            ("sha__256:abc", "format"),
            ("sha256:abc:def", "format"),
            ("sha256:ab=c", "format"),
            ("ßha256:abc", "format"),
        ];
        for (input, want) in cases {
            assert_eq!(kind(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn errors_carry_the_input_and_truncate_long_ones() {
        let err = Digest::parse("sha256:abc").unwrap_err();
        assert_eq!(err.input(), "sha256:abc");
        assert_eq!(
            err,
            ParseDigestError::InvalidLength {
                input: "sha256:abc".into(),
                algorithm: Algorithm::Sha256,
                expected: 64,
                actual: 3
            }
        );
        let long = format!("sha256:{}", "z".repeat(10_000));
        let err = Digest::parse(&long).unwrap_err();
        assert!(err.input().len() < 200, "{}", err.input());
        assert!(err.input().contains("10007 bytes"));
        // A cut in the middle of a multi-byte character stays valid UTF-8.
        let long = "é".repeat(1000);
        let err = Digest::parse(&long).unwrap_err();
        assert!(err.input().starts_with("éé"));
        let err = Digest::parse("md5:00").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported digest algorithm \"md5\" in \"md5:00\" (supported: sha256, sha512)"
        );
    }

    #[test]
    fn raw_round_trip_and_wrong_raw_length() {
        let d = Algorithm::Sha512.hash(b"abc");
        let raw = d.to_raw();
        assert_eq!(raw.len(), 64);
        assert_eq!(Digest::from_raw(Algorithm::Sha512, &raw).unwrap(), d);
        assert!(matches!(
            Digest::from_raw(Algorithm::Sha256, &raw),
            Err(ParseDigestError::InvalidLength {
                expected: 64,
                actual: 128,
                ..
            })
        ));
    }

    #[test]
    fn serde_validates() {
        let d = Algorithm::Sha256.hash(b"");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"sha256:{E}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        let err = serde_json::from_str::<Digest>("\"sha256:abc\"").unwrap_err();
        assert!(err.to_string().contains("invalid digest length"), "{err}");
        assert!(serde_json::from_str::<Digest>("42").is_err());
    }

    #[test]
    fn ordering_and_borrow() {
        let a = Digest::parse(&format!("sha256:{}", "0".repeat(64))).unwrap();
        let b = Digest::parse(&format!("sha256:{}", "1".repeat(64))).unwrap();
        assert!(a < b);
        let mut set = std::collections::HashSet::new();
        set.insert(a.clone());
        assert!(set.contains(a.as_str()));
        assert_eq!(a, a.as_str());
    }
}
