//! The pieces of the grammar: tags, repository paths and their components, registries, image IDs.
//!
//! Each predicate is the anchored regular expression of distribution's `reference` package
//! written out by hand (no regex engine, linear time, no allocation).

use crate::error::{InvalidReferenceReason, ReferenceError};

/// Longest repository path, `library/` included, registry excluded
/// (`RepositoryNameTotalLengthMax` in distribution's `reference` package).
pub const MAX_NAME_LENGTH: usize = 255;

/// Longest tag.
pub const MAX_TAG_LENGTH: usize = 128;

/// `[\w][\w.-]{0,127}` with `\w` = `[A-Za-z0-9_]`.
pub(crate) fn is_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= MAX_TAG_LENGTH
        && word(b[0])
        && b[1..].iter().all(|&c| word(c) || matches!(c, b'.' | b'-'))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
pub(crate) fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &b[start..i];
        let ok = sep == b"." || sep == b"_" || sep == b"__" || sep.iter().all(|&x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Why `path` is not a repository path (components joined by `/`, lowercase, at most
/// [`MAX_NAME_LENGTH`] bytes), or `None` when it is one.
pub(crate) fn repository_problem(path: &str) -> Option<InvalidReferenceReason> {
    if path.is_empty() {
        return Some(InvalidReferenceReason::Empty);
    }
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(InvalidReferenceReason::Uppercase);
    }
    if !path.split('/').all(is_path_component) {
        return Some(InvalidReferenceReason::InvalidPathComponent);
    }
    if path.len() > MAX_NAME_LENGTH {
        return Some(InvalidReferenceReason::NameTooLong { length: path.len() });
    }
    None
}

/// `host[:port]`: `host` is a domain name (components `[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]`
/// joined by `.`, which covers IPv4) or `\[[a-fA-F0-9:]+\]`; `port` is `[0-9]+`.
pub(crate) fn is_registry(reg: &str) -> bool {
    let (host, port) = if let Some(rest) = reg.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return false;
        };
        let addr = &rest[..end];
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        let after = &rest[end + 1..];
        match after.strip_prefix(':') {
            Some(p) => (None, Some(p)),
            None if after.is_empty() => (None, None),
            None => return false,
        }
    } else {
        match reg.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(reg), None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    match host {
        None => true,
        Some(h) => h.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        }),
    }
}

/// `[a-f0-9]{64}`: what Docker takes for an image ID when it is the whole input.
pub(crate) fn is_image_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'a'..=b'f'))
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
///
/// # Errors
/// [`ReferenceError`] with [`InvalidReferenceReason::InvalidTag`].
///
/// ```
/// use oci_reference::{InvalidReferenceReason, validate_tag};
/// assert!(validate_tag("v1.2_rc-1").is_ok());
/// assert_eq!(validate_tag("-v1").unwrap_err().reason, InvalidReferenceReason::InvalidTag);
/// assert!(validate_tag(&"a".repeat(129)).is_err());
/// ```
pub fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    if is_tag(tag) {
        Ok(())
    } else {
        Err(ReferenceError::new(tag, InvalidReferenceReason::InvalidTag))
    }
}

/// Checks a repository path as a registry serves it (`library/ubuntu`, `team/app`): components
/// `[a-z0-9]+` joined by `.`, `_`, `__` or dashes, separated by `/`, at most
/// [`MAX_NAME_LENGTH`] bytes. No normalisation: `ubuntu` is a valid path on any registry.
///
/// # Errors
/// [`ReferenceError`] with [`InvalidReferenceReason::Empty`],
/// [`Uppercase`](InvalidReferenceReason::Uppercase),
/// [`InvalidPathComponent`](InvalidReferenceReason::InvalidPathComponent) or
/// [`NameTooLong`](InvalidReferenceReason::NameTooLong).
///
/// ```
/// use oci_reference::{InvalidReferenceReason, validate_repository};
/// assert!(validate_repository("team/my_app/web-1").is_ok());
/// assert_eq!(validate_repository("team/App").unwrap_err().reason, InvalidReferenceReason::Uppercase);
/// assert_eq!(
///     validate_repository("../etc").unwrap_err().reason,
///     InvalidReferenceReason::InvalidPathComponent
/// );
/// ```
pub fn validate_repository(path: &str) -> Result<(), ReferenceError> {
    match repository_problem(path) {
        None => Ok(()),
        Some(reason) => Err(ReferenceError::new(path, reason)),
    }
}

/// Checks a registry: a host name or IPv4 address, or an IPv6 address in brackets, with an
/// optional numeric port (`registry.example.com`, `localhost:5000`, `[::1]:5000`).
///
/// # Errors
/// [`ReferenceError`] with [`InvalidReferenceReason::InvalidRegistry`].
///
/// ```
/// use oci_reference::validate_registry;
/// assert!(validate_registry("127.0.0.1:5000").is_ok());
/// assert!(validate_registry("[fe80::1]:443").is_ok());
/// assert!(validate_registry("my_registry.example.com").is_err());
/// assert!(validate_registry("example.com:https").is_err());
/// ```
pub fn validate_registry(registry: &str) -> Result<(), ReferenceError> {
    if is_registry(registry) {
        Ok(())
    } else {
        Err(ReferenceError::new(
            registry,
            InvalidReferenceReason::InvalidRegistry,
        ))
    }
}
