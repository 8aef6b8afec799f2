//! The crate's error type.

use std::fmt;

use oci_digest::ParseDigestError;

use crate::grammar::MAX_NAME_LENGTH;

/// Longest piece of an offending input kept in a [`ReferenceError`]; a longer input is cut (on
/// a character boundary) and marked with `… (N bytes)`, so a hostile multi-megabyte string
/// cannot bloat logs.
pub const MAX_ERROR_INPUT: usize = 300;

/// Why a string is not a valid reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidReferenceReason {
    /// The string is empty, or has no repository name before its tag or digest.
    Empty,
    /// The repository path contains uppercase letters.
    Uppercase,
    /// A path component is empty or does not match `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
    InvalidPathComponent,
    /// The registry part is not a host name, IPv4 or `[IPv6]` address with an optional
    /// numeric port.
    InvalidRegistry,
    /// The tag does not match `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    InvalidTag,
    /// The digest is not a valid digest of an algorithm this crate knows (`sha256`, `sha512`).
    InvalidDigest,
    /// The repository path (`library/` included, registry excluded) is longer than
    /// [`MAX_NAME_LENGTH`].
    NameTooLong {
        /// The path's length in bytes.
        length: usize,
    },
    /// The whole input is a 64-character lowercase hexadecimal string, which Docker refuses as
    /// a name because it could be an image ID. With a registry, a path or a tag around it, such
    /// a string is an ordinary name.
    HexRepository,
}

impl fmt::Display for InvalidReferenceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidReferenceReason::Empty => f.write_str("no repository name"),
            InvalidReferenceReason::Uppercase => f.write_str("repository name must be lowercase"),
            InvalidReferenceReason::InvalidPathComponent => f.write_str(
                "a repository path component must be [a-z0-9]+ joined by '.', '_', '__' or dashes",
            ),
            InvalidReferenceReason::InvalidRegistry => f.write_str(
                "invalid registry: expected a host name, IPv4 or [IPv6] address with an optional numeric port",
            ),
            InvalidReferenceReason::InvalidTag => {
                f.write_str("invalid tag: expected [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
            }
            InvalidReferenceReason::InvalidDigest => f.write_str("invalid digest"),
            InvalidReferenceReason::NameTooLong { length } => write!(
                f,
                "repository path is {length} characters, more than {MAX_NAME_LENGTH}"
            ),
            InvalidReferenceReason::HexRepository => f.write_str(
                "a 64-character hexadecimal string alone could be an image ID, not a repository name",
            ),
        }
    }
}

/// A string that is not a valid image reference (or tag, repository path or registry), with
/// the rule it broke.
///
/// Printed as `invalid reference "INPUT": REASON`, the input escaped as a Rust string literal
/// (control characters never reach a terminal raw) and cut to [`MAX_ERROR_INPUT`] bytes. For an
/// invalid digest, [`source`](std::error::Error::source) is the digest's own parse error.
///
/// ```
/// use oci_reference::{InvalidReferenceReason, Reference};
///
/// let err = Reference::parse("example.com/App\u{1b}[2J").unwrap_err();
/// assert_eq!(err.reason, InvalidReferenceReason::Uppercase);
/// assert_eq!(err.input, "example.com/App\u{1b}[2J");
/// assert_eq!(
///     err.to_string(),
///     r#"invalid reference "example.com/App\u{1b}[2J": repository name must be lowercase"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("invalid reference {input:?}: {reason}")]
pub struct ReferenceError {
    /// The offending input, cut to [`MAX_ERROR_INPUT`] bytes (then ending in `… (N bytes)`).
    pub input: String,
    /// The rule it broke.
    pub reason: InvalidReferenceReason,
    /// For [`InvalidReferenceReason::InvalidDigest`], why the digest did not parse (boxed:
    /// it keeps the error, and every `Result` carrying it, small).
    #[source]
    pub digest_error: Option<Box<ParseDigestError>>,
}

impl ReferenceError {
    /// An error for `input` (cut to [`MAX_ERROR_INPUT`] bytes) breaking `reason`; for use by
    /// code that checks parts of references itself, such as a registry client checking the tag
    /// or digest it is asked for.
    ///
    /// ```
    /// use oci_reference::{InvalidReferenceReason, ReferenceError};
    /// let e = ReferenceError::new(&"x".repeat(1000), InvalidReferenceReason::InvalidTag);
    /// assert!(e.input.len() < 320 && e.input.ends_with("… (1000 bytes)"));
    /// ```
    pub fn new(input: &str, reason: InvalidReferenceReason) -> ReferenceError {
        ReferenceError {
            input: truncate(input),
            reason,
            digest_error: None,
        }
    }

    /// An [`InvalidReferenceReason::InvalidDigest`] error for `input`, whose digest part
    /// failed to parse with `error`.
    ///
    /// ```
    /// use oci_reference::{InvalidReferenceReason, ReferenceError};
    /// let bad = "sha256:abc".parse::<oci_digest::Digest>().unwrap_err();
    /// let e = ReferenceError::invalid_digest("sha256:abc", bad);
    /// assert_eq!(e.reason, InvalidReferenceReason::InvalidDigest);
    /// assert!(std::error::Error::source(&e).is_some());
    /// ```
    pub fn invalid_digest(input: &str, error: ParseDigestError) -> ReferenceError {
        ReferenceError {
            digest_error: Some(Box::new(error)),
            ..ReferenceError::new(input, InvalidReferenceReason::InvalidDigest)
        }
    }
}

/// Copies at most [`MAX_ERROR_INPUT`] bytes of `s`, cut on a character boundary.
fn truncate(s: &str) -> String {
    if s.len() <= MAX_ERROR_INPUT {
        return s.to_owned();
    }
    let mut end = MAX_ERROR_INPUT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_is_cut_on_a_char_boundary() {
        let s = format!("a{}", "é".repeat(400));
        let e = ReferenceError::new(&s, InvalidReferenceReason::InvalidTag);
        assert!(e.input.starts_with('a'));
        assert!(e.input.ends_with(&format!("… ({} bytes)", s.len())));
        assert!(e.input.len() <= MAX_ERROR_INPUT + 20);
        let short = ReferenceError::new("x", InvalidReferenceReason::InvalidTag);
        assert_eq!(short.input, "x");
    }

    #[test]
    fn errors_stay_small() {
        // Every `Result<_, ReferenceError>` (and the client's error) carries this by value.
        assert!(std::mem::size_of::<ReferenceError>() <= 64);
    }

    #[test]
    fn every_reason_prints_something_distinct() {
        let all = [
            InvalidReferenceReason::Empty,
            InvalidReferenceReason::Uppercase,
            InvalidReferenceReason::InvalidPathComponent,
            InvalidReferenceReason::InvalidRegistry,
            InvalidReferenceReason::InvalidTag,
            InvalidReferenceReason::InvalidDigest,
            InvalidReferenceReason::NameTooLong { length: 300 },
            InvalidReferenceReason::HexRepository,
        ];
        let texts: std::collections::HashSet<String> = all.iter().map(|r| r.to_string()).collect();
        assert_eq!(texts.len(), all.len());
        assert!(
            InvalidReferenceReason::NameTooLong { length: 300 }
                .to_string()
                .contains("300")
        );
    }
}
