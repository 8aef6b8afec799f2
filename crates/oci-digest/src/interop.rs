//! Conversions to and from [`oci_spec::image::Digest`] (feature `oci-spec`).
//!
//! Every [`Digest`] converts to an `oci_spec` digest: this crate's grammar (a registered
//! algorithm, lowercase hex of its exact length) is a subset of oci-spec's. The other way is a
//! [`TryFrom`]: oci-spec also accepts algorithms this crate does not implement (`sha384`,
//! `multihash+base58`, ...) and encoded parts that are not hex for unregistered algorithms, and
//! such a digest cannot be verified here, so the conversion fails with the
//! [`ParseDigestError`] that names the digest and what is wrong with it.

use crate::{Digest, ParseDigestError};

/// ```
/// use oci_digest::{Algorithm, Digest};
///
/// let ours = Algorithm::Sha512.hash(b"hello");
/// let theirs = oci_spec::image::Digest::from(&ours);
/// assert_eq!(theirs.to_string(), ours.as_str());
/// assert_eq!(theirs.algorithm(), &oci_spec::image::DigestAlgorithm::Sha512);
/// assert_eq!(theirs.digest(), ours.encoded());
/// ```
impl From<&Digest> for oci_spec::image::Digest {
    fn from(d: &Digest) -> Self {
        match oci_spec::image::Digest::try_from(d.as_str()) {
            Ok(theirs) => theirs,
            // A `Digest` is `sha256` or `sha512` with lowercase hex of the exact length, which
            // oci-spec's grammar accepts (tested for every algorithm of `Algorithm::ALL`).
            Err(e) => unreachable!("oci-spec refused the valid digest {d}: {e}"),
        }
    }
}

/// ```
/// let ours = oci_digest::Algorithm::Sha256.hash(b"");
/// let theirs: oci_spec::image::Digest = ours.clone().into();
/// assert_eq!(theirs.to_string(), ours.to_string());
/// ```
impl From<Digest> for oci_spec::image::Digest {
    fn from(d: Digest) -> Self {
        oci_spec::image::Digest::from(&d)
    }
}

/// Validates an oci-spec digest against this crate's stricter grammar.
///
/// ```
/// use oci_digest::{Algorithm, Digest, ParseDigestError};
///
/// let theirs: oci_spec::image::Digest =
///     "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse()?;
/// let ours = Digest::try_from(&theirs)?;
/// assert_eq!(ours, Algorithm::Sha256.hash(b""));
///
/// // oci-spec accepts algorithms that cannot be verified here: the error names the digest.
/// let sha384: oci_spec::image::Digest = format!("sha384:{}", "a".repeat(96)).parse()?;
/// let err = Digest::try_from(&sha384).unwrap_err();
/// assert!(matches!(err, ParseDigestError::UnsupportedAlgorithm { ref algorithm, .. } if algorithm == "sha384"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = ParseDigestError;

    fn try_from(d: &oci_spec::image::Digest) -> Result<Self, Self::Error> {
        Digest::parse(d.as_ref())
    }
}

/// Same as the conversion from `&oci_spec::image::Digest`.
///
/// ```
/// let theirs: oci_spec::image::Digest = format!("sha512:{}", "0".repeat(128)).parse()?;
/// let ours = oci_digest::Digest::try_from(theirs)?;
/// assert_eq!(ours.algorithm(), oci_digest::Algorithm::Sha512);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl TryFrom<oci_spec::image::Digest> for Digest {
    type Error = ParseDigestError;

    fn try_from(d: oci_spec::image::Digest) -> Result<Self, Self::Error> {
        Digest::try_from(&d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Algorithm;

    #[test]
    fn every_algorithm_converts_both_ways() {
        for &alg in Algorithm::ALL {
            let ours = alg.hash(b"x");
            let theirs = oci_spec::image::Digest::from(&ours);
            assert_eq!(theirs.as_ref(), ours.as_str());
            assert_eq!(theirs.algorithm().as_ref(), alg.as_str());
            assert_eq!(Digest::try_from(&theirs).unwrap(), ours);
        }
    }

    #[test]
    fn what_oci_spec_accepts_and_we_do_not() {
        for input in [
            format!("sha384:{}", "a".repeat(96)),
            "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8".to_owned(),
            "foo:ABC=".to_owned(),
        ] {
            let theirs: oci_spec::image::Digest = input.parse().unwrap();
            let err = Digest::try_from(theirs).unwrap_err();
            assert!(
                matches!(err, ParseDigestError::UnsupportedAlgorithm { .. }),
                "{input}: {err}"
            );
            // The input is kept (cut to `MAX_ERROR_INPUT` bytes when longer).
            let kept = err.input().split('…').next().unwrap();
            assert!(input.starts_with(kept), "{input}: {err}");
        }
    }
}
