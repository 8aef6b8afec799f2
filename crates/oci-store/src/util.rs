//! Small validations shared by the stores.

use oci_digest::Digest;
use oci_manifest::Descriptor;

use crate::error::{Result, StoreError, cut};

/// Longest tag (reference name) accepted.
pub const MAX_TAG_LEN: usize = 255;
/// Longest ingest key accepted.
pub const MAX_INGEST_KEY_LEN: usize = 1024;

/// Checks a tag: 1 to 255 characters from `[A-Za-z0-9._:/@+-]`, starting with a letter, digit or
/// `_` (OCI tags, and the fuller reference names other tools put in `index.json`).
///
/// ```
/// assert!(oci_store::validate_tag("v1.0").is_ok());
/// assert!(oci_store::validate_tag("../x").is_err());
/// assert!(oci_store::validate_tag("").is_err());
/// ```
pub fn validate_tag(tag: &str) -> Result<()> {
    let bad = |reason| {
        Err(StoreError::InvalidTag {
            tag: cut(tag),
            reason,
        })
    };
    if tag.is_empty() {
        return bad("empty");
    }
    if tag.len() > MAX_TAG_LEN {
        return bad("longer than 255 characters");
    }
    let first = tag.as_bytes()[0];
    if !(first.is_ascii_alphanumeric() || first == b'_') {
        return bad("must start with a letter, digit or '_'");
    }
    if !tag
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-:/@+".contains(&b))
    {
        return bad("only letters, digits and ._-:/@+ are allowed");
    }
    Ok(())
}

/// Checks an ingest key: 1 to 1024 bytes without control characters. Keys never become paths
/// directly (stores hash them). Every [`WriteStore::writer`](crate::WriteStore::writer) checks
/// its key with this, so a backend refuses the same keys as the others.
///
/// ```
/// assert!(oci_store::validate_ingest_key("copy-sha256:abc").is_ok());
/// assert!(oci_store::validate_ingest_key("../../etc/passwd").is_ok()); // just a key
/// assert!(oci_store::validate_ingest_key("").is_err());
/// assert!(oci_store::validate_ingest_key("a\0b").is_err());
/// ```
///
/// # Errors
/// [`StoreError::InvalidIngestKey`] with the reason.
pub fn validate_ingest_key(key: &str) -> Result<()> {
    let bad = |reason| {
        Err(StoreError::InvalidIngestKey {
            key: cut(key),
            reason,
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_INGEST_KEY_LEN {
        return bad("longer than 1024 bytes");
    }
    if key.chars().any(char::is_control) {
        return bad("control characters are not allowed");
    }
    Ok(())
}

/// Text from a peer or a file (a source's name, an error, a member name) written on one line:
/// its control characters (line breaks and escape sequences included) written as Rust escapes,
/// so a hostile name cannot rewrite a terminal or forge log lines.
pub(crate) struct OneLine<'a>(pub(crate) &'a str);

impl std::fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                std::fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

/// The error for stored content whose size differs from its descriptor.
pub(crate) fn check_size(desc: &Descriptor, actual: u64) -> Result<()> {
    if actual != desc.size {
        return Err(StoreError::SizeMismatch {
            digest: desc.digest.clone(),
            expected: desc.size,
            actual,
        });
    }
    Ok(())
}

/// `NotFound` for `digest`.
pub(crate) fn not_found(digest: &Digest) -> StoreError {
    StoreError::NotFound {
        digest: digest.clone(),
    }
}

/// Clamps `range` to `size`.
pub(crate) fn clamp(range: std::ops::Range<u64>, size: u64) -> std::ops::Range<u64> {
    let start = range.start.min(size);
    let end = range.end.clamp(start, size);
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn model_ok(t: &str) -> bool {
        !t.is_empty()
            && t.len() <= MAX_TAG_LEN
            && t.as_bytes()[0].is_ascii_alphanumeric() | (t.as_bytes()[0] == b'_')
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:/@+".contains(&b))
    }

    proptest! {
        #[test]
        fn tag_validation_matches_the_grammar(t in "[a-zA-Z0-9._:/@+ \\-\\n\\x00é]{0,300}") {
            prop_assert_eq!(validate_tag(&t).is_ok(), model_ok(&t));
        }

        #[test]
        fn ingest_keys_never_panic(k in "\\PC{0,50}|[\\x00-\\x1f]{1,3}") {
            let ok = validate_ingest_key(&k).is_ok();
            prop_assert_eq!(ok, !k.is_empty() && !k.chars().any(char::is_control));
        }

        #[test]
        fn clamp_stays_in_bounds(a in 0u64..200, b in 0u64..200, size in 0u64..150) {
            let r = clamp(a..b, size);
            prop_assert!(r.start <= r.end && r.end <= size);
        }
    }

    #[test]
    fn tag_errors_cut_long_input() {
        let long = "/".repeat(10_000);
        match validate_tag(&long) {
            Err(StoreError::InvalidTag { tag, .. }) => assert!(tag.len() < 200),
            other => panic!("{other:?}"),
        }
    }
}
