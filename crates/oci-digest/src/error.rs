//! Error types.

use std::io;

use crate::{Algorithm, Digest};

/// Longest piece of an offending input kept in an error; longer inputs are cut (on a character
/// boundary) and marked with `…`, so a hostile multi-megabyte string cannot bloat logs.
pub const MAX_ERROR_INPUT: usize = 100;

/// Copies at most [`MAX_ERROR_INPUT`] bytes of `s`, cut on a character boundary.
pub(crate) fn truncate_input(s: &str) -> String {
    if s.len() <= MAX_ERROR_INPUT {
        return s.to_owned();
    }
    let mut end = MAX_ERROR_INPUT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// Why a string is not a valid digest.
///
/// Each variant carries the offending input (cut to [`MAX_ERROR_INPUT`] bytes when longer).
///
/// ```
/// use oci_digest::{Digest, ParseDigestError};
///
/// let err = "md5:d41d8cd98f00b204e9800998ecf8427e".parse::<Digest>().unwrap_err();
/// assert!(matches!(err, ParseDigestError::UnsupportedAlgorithm { ref algorithm, .. } if algorithm == "md5"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseDigestError {
    /// The string does not follow the digest grammar
    /// (`algorithm ":" encoded`), or the encoded part is not lowercase hex for a registered
    /// algorithm.
    #[error("invalid digest format {input:?}: {reason}")]
    InvalidFormat {
        /// The offending input.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The encoded part has the wrong length for its algorithm.
    #[error(
        "invalid digest length {input:?}: {algorithm} needs {expected} hex characters, got {actual}"
    )]
    InvalidLength {
        /// The offending input.
        input: String,
        /// The digest's algorithm.
        algorithm: Algorithm,
        /// Number of hex characters the algorithm needs.
        expected: usize,
        /// Number of characters found.
        actual: usize,
    },
    /// The string is well formed but names an algorithm this crate does not implement.
    #[error("unsupported digest algorithm {algorithm:?} in {input:?} (supported: sha256, sha512)")]
    UnsupportedAlgorithm {
        /// The offending input.
        input: String,
        /// The algorithm named by the input.
        algorithm: String,
    },
}

impl ParseDigestError {
    pub(crate) fn format(input: &str, reason: &'static str) -> Self {
        ParseDigestError::InvalidFormat {
            input: truncate_input(input),
            reason,
        }
    }

    pub(crate) fn unsupported(input: &str, algorithm: &str) -> Self {
        ParseDigestError::UnsupportedAlgorithm {
            input: truncate_input(input),
            algorithm: truncate_input(algorithm),
        }
    }

    /// The offending input, as kept in the error.
    ///
    /// ```
    /// let err = "sha256:abc".parse::<oci_digest::Digest>().unwrap_err();
    /// assert_eq!(err.input(), "sha256:abc");
    /// ```
    pub fn input(&self) -> &str {
        match self {
            ParseDigestError::InvalidFormat { input, .. }
            | ParseDigestError::InvalidLength { input, .. }
            | ParseDigestError::UnsupportedAlgorithm { input, .. } => input,
        }
    }
}

/// Content did not match what it was expected to be.
///
/// Returned by the verifying readers, writers and streams. A `VerifyError` coming out of a
/// `std::io` or tokio reader is wrapped in an [`io::Error`] of kind
/// [`io::ErrorKind::InvalidData`]; [`VerifyError::from_io`] finds it again.
///
/// ```
/// use oci_digest::{Algorithm, VerifyError, VerifyingReader};
/// use std::io::Read;
///
/// let expected = Algorithm::Sha256.hash(b"hello");
/// let mut r = VerifyingReader::new(&b"hellO"[..], expected.clone(), 5);
/// let err = r.read_to_end(&mut Vec::new()).unwrap_err();
/// match VerifyError::from_io(&err) {
///     Some(VerifyError::DigestMismatch { expected: e, actual, .. }) => {
///         assert_eq!(e, &expected);
///         assert_eq!(actual, &Algorithm::Sha256.hash(b"hellO"));
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// More bytes arrived than the expected size; reported as soon as the excess is seen.
    #[error(
        "content {expected} is longer than its expected size of {expected_size} bytes (at least {received} bytes received)"
    )]
    TooLong {
        /// The digest the content should have.
        expected: Digest,
        /// The size the content should have.
        expected_size: u64,
        /// Bytes received when the excess was seen.
        received: u64,
    },
    /// The content ended before reaching the expected size.
    #[error("content {expected} is truncated: expected {expected_size} bytes, got {received}")]
    TooShort {
        /// The digest the content should have.
        expected: Digest,
        /// The size the content should have.
        expected_size: u64,
        /// Bytes received before the end.
        received: u64,
    },
    /// The content had the expected size but hashed to another digest.
    #[error("digest mismatch: expected {expected}, got {actual} ({size} bytes)")]
    DigestMismatch {
        /// The digest the content should have.
        expected: Digest,
        /// The digest the content actually has.
        actual: Digest,
        /// Its size in bytes.
        size: u64,
    },
}

impl VerifyError {
    /// Finds a `VerifyError` inside an [`io::Error`] produced by this crate's readers and writers.
    pub fn from_io(err: &io::Error) -> Option<&VerifyError> {
        err.get_ref()?.downcast_ref::<VerifyError>()
    }

    /// The digest the content was expected to have.
    ///
    /// ```
    /// let d = oci_digest::Algorithm::Sha256.hash(b"x");
    /// let e = oci_digest::VerifyError::TooShort { expected: d.clone(), expected_size: 1, received: 0 };
    /// assert_eq!(e.expected(), &d);
    /// ```
    pub fn expected(&self) -> &Digest {
        match self {
            VerifyError::TooLong { expected, .. }
            | VerifyError::TooShort { expected, .. }
            | VerifyError::DigestMismatch { expected, .. } => expected,
        }
    }
}

impl From<VerifyError> for io::Error {
    fn from(e: VerifyError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// A saved [`Digester`](crate::Digester) state could not be restored.
///
/// ```
/// let err = oci_digest::Digester::restore(b"not a state").unwrap_err();
/// assert!(matches!(err, oci_digest::StateError::BadMagic));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The bytes do not start with this crate's state marker.
    #[error("not an oci-digest hash state (bad magic)")]
    BadMagic,
    /// The state was saved by another format version of this crate.
    #[error(
        "hash state format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        /// Version found in the state.
        found: u8,
        /// Version this build reads and writes.
        supported: u8,
    },
    /// The state names an algorithm this build does not know.
    #[error("hash state names unknown algorithm code {0}")]
    UnknownAlgorithm(u8),
    /// The state has the wrong length or inconsistent content.
    #[error("hash state for {algorithm} is corrupt: {reason}")]
    Corrupt {
        /// The algorithm the state names.
        algorithm: Algorithm,
        /// What is wrong.
        reason: &'static str,
    },
}
