//! Image references: `[registry[:port]/]path[:tag][@digest]` with Docker's rules.

use std::fmt;
use std::str::FromStr;

use oci_digest::Digest;

use crate::Error;

/// The registry a reference without one points at.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The host that serves the API of [`DEFAULT_REGISTRY`].
pub const DEFAULT_REGISTRY_API_HOST: &str = "registry-1.docker.io";
/// The tag used when a reference names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest repository name, registry included (`NameTotalLengthMax` in distribution).
pub const MAX_NAME_LENGTH: usize = 255;
/// Longest tag.
pub const MAX_TAG_LENGTH: usize = 128;

/// Why a string is not a valid reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidReferenceReason {
    /// The string is empty.
    Empty,
    /// The repository path contains uppercase letters.
    Uppercase,
    /// A path component is empty or does not match `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
    InvalidPathComponent,
    /// The registry part is not a host name, IPv4 or `[IPv6]` address with an optional port.
    InvalidRegistry,
    /// The tag does not match `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    InvalidTag,
    /// The digest is not a valid `algorithm:hex` digest.
    InvalidDigest,
    /// Registry plus path are longer than [`MAX_NAME_LENGTH`].
    NameTooLong,
    /// The repository is a 64-character hexadecimal string, which Docker refuses as ambiguous
    /// with an image id.
    HexRepository,
}

impl fmt::Display for InvalidReferenceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidReferenceReason::Empty => "empty reference",
            InvalidReferenceReason::Uppercase => "repository name must be lowercase",
            InvalidReferenceReason::InvalidPathComponent => "invalid repository path component",
            InvalidReferenceReason::InvalidRegistry => "invalid registry host or port",
            InvalidReferenceReason::InvalidTag => "invalid tag",
            InvalidReferenceReason::InvalidDigest => "invalid digest",
            InvalidReferenceReason::NameTooLong => "repository name longer than 255 characters",
            InvalidReferenceReason::HexRepository => {
                "repository name cannot be a 64-character hexadecimal string"
            }
        })
    }
}

/// A parsed, normalised image reference.
///
/// Parsing follows Docker's rules: the first path component is a registry only when it is
/// `localhost` or contains `.` or `:` (or uppercase letters, which a repository may not have);
/// otherwise the registry is `docker.io`, where single-component names get `library/`.
/// `index.docker.io` is normalised to `docker.io`.
///
/// ```
/// use oci_distribution_client::Reference;
///
/// let r: Reference = "ubuntu".parse()?;
/// assert_eq!(r.registry(), "docker.io");
/// assert_eq!(r.repository(), "library/ubuntu");
/// assert_eq!(r.tag(), None);
/// assert_eq!(r.to_string(), "docker.io/library/ubuntu");
/// assert_eq!(r.familiar(), "ubuntu");
///
/// let r = Reference::parse("[::1]:5000/team/app:v1.2@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")?;
/// assert_eq!(r.registry(), "[::1]:5000");
/// assert_eq!(r.repository(), "team/app");
/// assert_eq!(r.tag(), Some("v1.2"));
/// assert!(r.digest().is_some());
///
/// assert!(Reference::parse("docker.io/Library/ubuntu").is_err());
/// # Ok::<(), oci_distribution_client::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

fn invalid(input: &str, reason: InvalidReferenceReason) -> Error {
    Error::InvalidReference {
        input: truncate(input),
        reason,
    }
}

fn truncate(s: &str) -> String {
    const MAX: usize = 300;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Reference {
    /// Parses and normalises a reference.
    ///
    /// # Errors
    /// [`Error::InvalidReference`] naming the input and the rule it broke.
    pub fn parse(input: &str) -> Result<Reference, Error> {
        if input.is_empty() {
            return Err(invalid(input, InvalidReferenceReason::Empty));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => {
                let digest = Digest::parse(d)
                    .map_err(|_| invalid(input, InvalidReferenceReason::InvalidDigest))?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|s| colon > s) => {
                (&rest[..colon], Some(&rest[colon + 1..]))
            }
            _ => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(invalid(input, InvalidReferenceReason::InvalidTag));
        }
        if name.is_empty() {
            return Err(invalid(input, InvalidReferenceReason::Empty));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_owned(), remainder.to_owned())
            }
            _ => (DEFAULT_REGISTRY.to_owned(), name.to_owned()),
        };
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY.to_owned()
        } else {
            registry
        };
        if !valid_registry(&registry) {
            return Err(invalid(input, InvalidReferenceReason::InvalidRegistry));
        }
        let path = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(input, InvalidReferenceReason::Uppercase));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(invalid(input, InvalidReferenceReason::InvalidPathComponent));
        }
        if registry.len() + 1 + path.len() > MAX_NAME_LENGTH {
            return Err(invalid(input, InvalidReferenceReason::NameTooLong));
        }
        let remote = path.strip_prefix("library/").unwrap_or(&path);
        if remote.len() == 64 && remote.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(input, InvalidReferenceReason::HexRepository));
        }
        Ok(Reference {
            registry,
            repository: path,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// Builds a reference from parts, validating each.
    ///
    /// ```
    /// use oci_distribution_client::Reference;
    /// let r = Reference::with_tag("localhost:5000", "app", "v1")?;
    /// assert_eq!(r.to_string(), "localhost:5000/app:v1");
    /// # Ok::<(), oci_distribution_client::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidReference`] when a part breaks a rule.
    pub fn with_tag(registry: &str, repository: &str, tag: &str) -> Result<Reference, Error> {
        Reference::parse(&format!("{registry}/{repository}:{tag}"))
    }

    /// Builds a reference pinned to a digest.
    ///
    /// # Errors
    /// [`Error::InvalidReference`] when a part breaks a rule.
    pub fn with_digest(
        registry: &str,
        repository: &str,
        digest: &Digest,
    ) -> Result<Reference, Error> {
        Reference::parse(&format!("{registry}/{repository}@{digest}"))
    }

    /// The registry, `host[:port]` as written (IPv6 in brackets), `docker.io` by default.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host serving the registry's API: `registry-1.docker.io` for `docker.io`, else the
    /// registry itself.
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            DEFAULT_REGISTRY_API_HOST
        } else {
            &self.registry
        }
    }

    /// The repository path (`library/ubuntu`, `team/app`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if one was written.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was written.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry for: the digest when pinned, else the tag, else `latest`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// The same repository with another tag (and no digest).
    ///
    /// # Errors
    /// [`Error::InvalidReference`] for an invalid tag.
    pub fn clone_with_tag(&self, tag: &str) -> Result<Reference, Error> {
        if !valid_tag(tag) {
            return Err(invalid(tag, InvalidReferenceReason::InvalidTag));
        }
        Ok(Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to `digest` (the tag is kept for display).
    pub fn clone_with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The short form Docker prints: without `docker.io/` and `library/`.
    pub fn familiar(&self) -> String {
        let first = self.repository.split('/').next().unwrap_or("");
        let looks_like_registry =
            self.repository.contains('/') && (first.contains(['.', ':']) || first == "localhost");
        let name = if self.registry == DEFAULT_REGISTRY && !looks_like_registry {
            // `library/` goes only from one-component names: `library/a/b` stays as is.
            match self.repository.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.repository.clone(),
            }
        } else {
            format!("{}/{}", self.registry, self.repository)
        };
        let mut s = name;
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub(crate) fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LENGTH
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub(crate) fn valid_path_component(c: &str) -> bool {
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

/// Repository path: components joined by `/`, lowercase, total length within limits.
pub(crate) fn valid_repository(path: &str) -> bool {
    !path.is_empty() && path.len() <= MAX_NAME_LENGTH && path.split('/').all(valid_path_component)
}

/// `host[:port]` where host is a DNS-like name (components `[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?`
/// joined by `.`) or an IPv6 address in brackets.
pub(crate) fn valid_registry(reg: &str) -> bool {
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
        Some(h) => {
            !h.is_empty()
                && h.split('.').all(|c| {
                    let b = c.as_bytes();
                    !b.is_empty()
                        && b[0].is_ascii_alphanumeric()
                        && b[b.len() - 1].is_ascii_alphanumeric()
                        && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn ok(input: &str, registry: &str, repo: &str, tag: Option<&str>, digest: bool) {
        let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.registry(), registry, "{input}");
        assert_eq!(r.repository(), repo, "{input}");
        assert_eq!(r.tag(), tag, "{input}");
        assert_eq!(r.digest().is_some(), digest, "{input}");
        // Printing and parsing again gives the same reference.
        assert_eq!(Reference::parse(&r.to_string()).unwrap(), r, "{input}");
        assert_eq!(Reference::parse(&r.familiar()).unwrap(), r, "{input}");
    }

    /// [`ok`] for each `(input, registry, repository, tag, has a digest)`.
    fn oks(cases: &[(&str, &str, &str, Option<&str>, bool)]) {
        for &(input, registry, repo, tag, digest) in cases {
            ok(input, registry, repo, tag, digest);
        }
    }

    fn bad(input: &str, reason: InvalidReferenceReason) {
        match Reference::parse(input) {
            Err(Error::InvalidReference { reason: got, .. }) => {
                assert_eq!(got, reason, "{input}")
            }
            other => panic!("{input}: expected {reason:?}, got {other:?}"),
        }
    }

    #[test]
    #[rustfmt::skip] // one case a line
    fn docker_hub_normalisation() {
        oks(&[
            ("ubuntu", "docker.io", "library/ubuntu", None, false),
            ("ubuntu:22.04", "docker.io", "library/ubuntu", Some("22.04"), false),
            ("library/ubuntu", "docker.io", "library/ubuntu", None, false),
            ("docker.io/ubuntu", "docker.io", "library/ubuntu", None, false),
            ("index.docker.io/ubuntu", "docker.io", "library/ubuntu", None, false),
            ("index.docker.io/team/app:v1", "docker.io", "team/app", Some("v1"), false),
            ("team/app", "docker.io", "team/app", None, false),
            ("a/b/c/d", "docker.io", "a/b/c/d", None, false),
            // Found by the fuzz target: `library/` is only dropped from one-component names.
            ("library/h/st", "docker.io", "library/h/st", None, false),
        ]);
        assert_eq!(
            Reference::parse("library/h/st").unwrap().familiar(),
            "library/h/st"
        );
        assert_eq!(
            Reference::parse("ubuntu").unwrap().api_host(),
            "registry-1.docker.io"
        );
        assert_eq!(
            Reference::parse("docker.io/library/ubuntu:1")
                .unwrap()
                .familiar(),
            "ubuntu:1"
        );
    }

    #[test]
    #[rustfmt::skip] // one case a line
    fn first_component_is_registry_only_with_dot_colon_or_localhost() {
        oks(&[
            ("localhost/app", "localhost", "app", None, false),
            ("localhost:5000/app:v1", "localhost:5000", "app", Some("v1"), false),
            ("example.com/app", "example.com", "app", None, false),
            ("registry:5000/app", "registry:5000", "app", None, false),
            ("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b", None, false),
            // "registry" without dot or port is a path component on Docker Hub.
            ("registry/app", "docker.io", "registry/app", None, false),
            // "localhost:5000" alone is Docker Hub's library/localhost with tag 5000.
            ("localhost:5000", "docker.io", "library/localhost", Some("5000"), false),
            ("localhost", "docker.io", "library/localhost", None, false),
            // Uppercase first component is taken as a registry (Docker does the same).
            ("Example.COM/app", "Example.COM", "app", None, false),
            ("Registry/app", "Registry", "app", None, false),
        ]);
        assert_eq!(
            Reference::parse("example.com/app").unwrap().api_host(),
            "example.com"
        );
    }

    #[test]
    #[rustfmt::skip] // one case a line
    fn ipv6_registries() {
        oks(&[
            ("[::1]:5000/app", "[::1]:5000", "app", None, false),
            ("[::1]/app:t", "[::1]", "app", Some("t"), false),
            ("[2001:db8::1]:443/a/b", "[2001:db8::1]:443", "a/b", None, false),
            (&format!("[fe80::1]:5000/app:v1@{D}"), "[fe80::1]:5000", "app", Some("v1"), true),
        ]);
        bad("[::1/app", InvalidReferenceReason::InvalidRegistry);
        bad("[]:5000/app", InvalidReferenceReason::InvalidRegistry);
        bad("[::g]:5000/app", InvalidReferenceReason::InvalidRegistry);
        bad("[::1]x/app", InvalidReferenceReason::InvalidRegistry);
    }

    #[test]
    #[rustfmt::skip] // one case a line
    fn tags_and_digests() {
        oks(&[
            (&format!("app@{D}"), "docker.io", "library/app", None, true),
            (&format!("app:v1@{D}"), "docker.io", "library/app", Some("v1"), true),
            ("app:_under", "docker.io", "library/app", Some("_under"), false),
            ("app:UPPER.case-1", "docker.io", "library/app", Some("UPPER.case-1"), false),
        ]);
        let long = "a".repeat(128);
        ok(
            &format!("app:{long}"),
            "docker.io",
            "library/app",
            Some(long.as_str()),
            false,
        );
        bad(
            &format!("app:{}", "a".repeat(129)),
            InvalidReferenceReason::InvalidTag,
        );
        bad("app:", InvalidReferenceReason::InvalidTag);
        bad("app:.dot", InvalidReferenceReason::InvalidTag);
        bad("app:-dash", InvalidReferenceReason::InvalidTag);
        bad("app:a+b", InvalidReferenceReason::InvalidTag);
        bad("app@sha256:abc", InvalidReferenceReason::InvalidDigest);
        bad("app@", InvalidReferenceReason::InvalidDigest);
        bad(
            &format!("app@{}", D.to_uppercase()),
            InvalidReferenceReason::InvalidDigest,
        );
        bad(
            "app@md5:d41d8cd98f00b204e9800998ecf8427e",
            InvalidReferenceReason::InvalidDigest,
        );
        let r = Reference::parse("app").unwrap();
        assert_eq!(r.manifest_reference(), "latest");
        let r = Reference::parse(&format!("app:v1@{D}")).unwrap();
        assert_eq!(r.manifest_reference(), D);
    }

    #[test]
    #[rustfmt::skip] // one case a line
    fn path_rules() {
        oks(&[
            ("a.b/x_y", "a.b", "x_y", None, false),
            ("a.b/x__y", "a.b", "x__y", None, false),
            ("a.b/x---y", "a.b", "x---y", None, false),
            ("a.b/x.y", "a.b", "x.y", None, false),
            ("a.b/0", "a.b", "0", None, false),
        ]);
        bad("Ubuntu", InvalidReferenceReason::Uppercase);
        bad(
            "docker.io/Library/ubuntu",
            InvalidReferenceReason::Uppercase,
        );
        bad("example.com/App", InvalidReferenceReason::Uppercase);
        bad("a.b/x___y", InvalidReferenceReason::InvalidPathComponent);
        bad("a.b/x..y", InvalidReferenceReason::InvalidPathComponent);
        bad("a.b/x._y", InvalidReferenceReason::InvalidPathComponent);
        bad("a.b/-x", InvalidReferenceReason::InvalidPathComponent);
        bad("a.b/x-", InvalidReferenceReason::InvalidPathComponent);
        bad("a.b/_x", InvalidReferenceReason::InvalidPathComponent);
        bad("a.b//x", InvalidReferenceReason::InvalidPathComponent);
        bad("a.b/x/", InvalidReferenceReason::InvalidPathComponent);
        bad("a.b/", InvalidReferenceReason::InvalidPathComponent);
        bad("/x", InvalidReferenceReason::InvalidPathComponent);
        bad("a.b/x y", InvalidReferenceReason::InvalidPathComponent);
        bad("a.b/é", InvalidReferenceReason::InvalidPathComponent);
        bad("", InvalidReferenceReason::Empty);
        bad(":tag", InvalidReferenceReason::Empty);
        bad(&format!("@{D}"), InvalidReferenceReason::Empty);
    }

    #[test]
    fn registry_rules() {
        bad("-a.com/x", InvalidReferenceReason::InvalidRegistry);
        bad("a-.com/x", InvalidReferenceReason::InvalidRegistry);
        bad("a..com/x", InvalidReferenceReason::InvalidRegistry);
        bad("a.com:/x", InvalidReferenceReason::InvalidRegistry);
        bad("a.com:50a/x", InvalidReferenceReason::InvalidRegistry);
        bad("a_b.com/x", InvalidReferenceReason::InvalidRegistry);
        bad(":5000/x", InvalidReferenceReason::InvalidRegistry);
        ok(
            "my-reg.example.com:443/x",
            "my-reg.example.com:443",
            "x",
            None,
            false,
        );
    }

    #[test]
    fn length_limits() {
        // registry + '/' + path == 255 is allowed, 256 is not.
        let reg = "r.io";
        let path = "a".repeat(MAX_NAME_LENGTH - reg.len() - 1);
        ok(&format!("{reg}/{path}"), reg, &path, None, false);
        bad(
            &format!("{reg}/{path}a"),
            InvalidReferenceReason::NameTooLong,
        );
        // Docker Hub names count "docker.io/" too.
        let p = "b".repeat(MAX_NAME_LENGTH - "docker.io/library/".len() + 1);
        bad(&p, InvalidReferenceReason::NameTooLong);
        // Very long input is truncated in the error.
        let huge = "A".repeat(10_000);
        match Reference::parse(&huge) {
            Err(Error::InvalidReference { input, .. }) => assert!(input.len() < 400),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hex_repository_names_are_refused() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        bad(hex, InvalidReferenceReason::HexRepository);
        bad(&format!("{hex}:tag"), InvalidReferenceReason::HexRepository);
        ok(
            &format!("team/{hex}"),
            "docker.io",
            &format!("team/{hex}"),
            None,
            false,
        );
    }

    #[test]
    fn clone_with() {
        let r = Reference::parse(&format!("a.b/x:v1@{D}")).unwrap();
        let t = r.clone_with_tag("v2").unwrap();
        assert_eq!(t.to_string(), "a.b/x:v2");
        assert!(r.clone_with_tag("-bad").is_err());
        let d = t.clone_with_digest(Digest::parse(D).unwrap());
        assert_eq!(d.manifest_reference(), D);
        assert_eq!(
            Reference::with_tag("a.b", "x", "v1").unwrap().to_string(),
            "a.b/x:v1"
        );
        assert_eq!(
            Reference::with_digest("a.b", "x", &Digest::parse(D).unwrap())
                .unwrap()
                .to_string(),
            format!("a.b/x@{D}")
        );
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,2}"
    }

    proptest! {
        #[test]
        fn round_trip(
            host in "[a-z][a-z0-9-]{0,8}[a-z0-9](\\.[a-z0-9]{1,6}){1,2}",
            port in proptest::option::of(1u16..),
            path in proptest::collection::vec(component(), 1..4),
            tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            pinned in proptest::option::of(proptest::array::uniform32(any::<u8>())),
        ) {
            let registry = match port { Some(p) => format!("{host}:{p}"), None => host };
            let mut s = format!("{registry}/{}", path.join("/"));
            if let Some(t) = &tag { s.push(':'); s.push_str(t); }
            let digest = pinned.map(|b| oci_digest::Algorithm::Sha256.hash(&b));
            if let Some(d) = &digest { s.push('@'); s.push_str(d.as_str()); }
            let r = Reference::parse(&s).unwrap();
            prop_assert_eq!(r.registry(), registry.as_str());
            prop_assert_eq!(r.repository(), path.join("/"));
            prop_assert_eq!(r.tag(), tag.as_deref());
            prop_assert_eq!(r.digest(), digest.as_ref());
            prop_assert_eq!(r.to_string(), s.clone());
            prop_assert_eq!(Reference::parse(&r.familiar()).unwrap(), r);
        }

        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            if let Ok(r) = Reference::parse(&s) {
                prop_assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
            }
        }

        #[test]
        fn uppercase_path_is_rejected(path in "[a-z]{1,5}[A-Z][a-z]{0,5}") {
            let r = Reference::parse(&format!("example.com/{path}"));
            let uppercase = matches!(
                r,
                Err(Error::InvalidReference { reason: InvalidReferenceReason::Uppercase, .. })
            );
            prop_assert!(uppercase);
        }
    }
}
