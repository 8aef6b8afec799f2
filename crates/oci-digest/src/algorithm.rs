//! Digest algorithms.

use std::fmt;
use std::str::FromStr;

use crate::{Digest, Digester, ParseDigestError};

/// A digest algorithm registered by the OCI image specification.
///
/// The enum is `#[non_exhaustive]`: algorithms may be added (for example `blake3`) without a
/// breaking release, so match it with a wildcard arm.
///
/// ```
/// use oci_digest::Algorithm;
///
/// let alg: Algorithm = "sha512".parse()?;
/// assert_eq!(alg, Algorithm::Sha512);
/// assert_eq!(alg.hex_len(), 128);
/// assert_eq!(Algorithm::default(), Algorithm::Sha256);
/// # Ok::<(), oci_digest::ParseDigestError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-256, the algorithm every registry and tool supports. The default.
    #[default]
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// Every algorithm this crate implements, in a stable order.
    pub const ALL: &'static [Algorithm] = &[Algorithm::Sha256, Algorithm::Sha512];

    /// The algorithm's name as it appears in a digest string (`sha256`).
    ///
    /// ```
    /// assert_eq!(oci_digest::Algorithm::Sha256.as_str(), "sha256");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length in bytes of the hash output (32 for SHA-256).
    ///
    /// ```
    /// assert_eq!(oci_digest::Algorithm::Sha512.output_len(), 64);
    /// ```
    pub const fn output_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    /// Length of the encoded (lowercase hex) part of a digest of this algorithm.
    ///
    /// ```
    /// assert_eq!(oci_digest::Algorithm::Sha256.hex_len(), 64);
    /// ```
    pub const fn hex_len(self) -> usize {
        self.output_len() * 2
    }

    /// Looks an algorithm up by its exact registered name; `None` for anything else.
    ///
    /// ```
    /// use oci_digest::Algorithm;
    /// assert_eq!(Algorithm::from_name("sha256"), Some(Algorithm::Sha256));
    /// assert_eq!(Algorithm::from_name("SHA256"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// Starts an incremental hash with this algorithm.
    ///
    /// ```
    /// let mut d = oci_digest::Algorithm::Sha256.digester();
    /// d.update(b"hello");
    /// assert_eq!(d.finalize(), oci_digest::Algorithm::Sha256.hash(b"hello"));
    /// ```
    pub fn digester(self) -> Digester {
        Digester::new(self)
    }

    /// Hashes `data` in one call.
    ///
    /// ```
    /// let d = oci_digest::Algorithm::Sha256.hash(b"");
    /// assert_eq!(
    ///     d.as_str(),
    ///     "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    /// );
    /// ```
    pub fn hash(self, data: &[u8]) -> Digest {
        let mut d = Digester::new(self);
        d.update(data);
        d.finalize()
    }

    /// Stable one-byte code used in saved digester state.
    pub(crate) const fn code(self) -> u8 {
        match self {
            Algorithm::Sha256 => 1,
            Algorithm::Sha512 => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Algorithm> {
        Algorithm::ALL.iter().copied().find(|a| a.code() == code)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::from_name(s).ok_or_else(|| ParseDigestError::unsupported(s, s))
    }
}
