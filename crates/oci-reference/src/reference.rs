//! [`Reference`]: parsing, normalisation, accessors and printing.

use std::fmt;
use std::str::FromStr;

use oci_digest::Digest;

use crate::error::{InvalidReferenceReason, ReferenceError};
use crate::grammar::{is_image_id, is_registry, is_tag, repository_problem};

/// The registry a reference without one points at.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The host that serves the API of [`DEFAULT_REGISTRY`].
pub const DEFAULT_REGISTRY_API_HOST: &str = "registry-1.docker.io";
/// The tag used when a reference names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// Docker Hub's former name, read as [`DEFAULT_REGISTRY`].
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
/// Namespace of Docker Hub's official images, added to one-component names there.
const OFFICIAL_PREFIX: &str = "library/";

/// A parsed, normalised image reference: registry, repository path, and an optional tag and
/// digest.
///
/// [`parse`](Reference::parse) follows distribution's `ParseNormalizedNamed` (what `docker pull`
/// does); see the [crate documentation](crate) for the rules. It prints (`Display`) in its
/// canonical form, `registry/repository[:tag][@digest]`, which parses back to the same value;
/// [`familiar`](Reference::familiar) gives the short form Docker shows.
///
/// ```
/// use oci_reference::Reference;
///
/// let r: Reference = "busybox:1.36".parse()?;
/// assert_eq!(r.registry(), "docker.io");
/// assert_eq!(r.repository(), "library/busybox");
/// assert_eq!(r.name(), "docker.io/library/busybox");
/// assert_eq!(r.tag(), Some("1.36"));
/// assert_eq!(r.to_string(), "docker.io/library/busybox:1.36");
/// assert_eq!(r.familiar(), "busybox:1.36");
///
/// let r = Reference::parse("[::1]:5000/team/app:v1.2@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")?;
/// assert_eq!(r.registry(), "[::1]:5000");
/// assert_eq!(r.repository(), "team/app");
/// assert!(r.digest().is_some());
///
/// assert!(Reference::parse("docker.io/Library/ubuntu").is_err());
/// # Ok::<(), oci_reference::ReferenceError>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    /// `registry/repository`.
    name: String,
    /// Length of the registry at the start of `name`.
    registry_len: usize,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises a reference as Docker does.
    ///
    /// ```
    /// use oci_reference::{InvalidReferenceReason, Reference};
    ///
    /// assert_eq!(Reference::parse("ubuntu")?.to_string(), "docker.io/library/ubuntu");
    /// assert_eq!(Reference::parse("index.docker.io/team/app")?.to_string(), "docker.io/team/app");
    /// assert_eq!(Reference::parse("localhost:5000/app")?.registry(), "localhost:5000");
    /// // Without a `.`, a `:` or `localhost`, the first component is a path, not a registry.
    /// assert_eq!(Reference::parse("registry/app")?.name(), "docker.io/registry/app");
    ///
    /// let id = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    /// let err = Reference::parse(id).unwrap_err();
    /// assert_eq!(err.reason, InvalidReferenceReason::HexRepository);
    /// assert_eq!(Reference::parse(&format!("{id}:v1"))?.repository(), format!("library/{id}"));
    /// # Ok::<(), oci_reference::ReferenceError>(())
    /// ```
    ///
    /// # Errors
    /// [`ReferenceError`] naming the input and the rule it broke.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let invalid = |reason| ReferenceError::new(input, reason);
        if input.is_empty() {
            return Err(invalid(InvalidReferenceReason::Empty));
        }
        // Only the whole input: with anything around it, a 64-hex string is a plain name.
        if is_image_id(input) {
            return Err(invalid(InvalidReferenceReason::HexRepository));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => {
                let digest =
                    Digest::parse(d).map_err(|e| ReferenceError::invalid_digest(input, e))?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // A `:` after the last `/` starts the tag; one before it can only be a registry's port.
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|s| colon > s) => {
                (&rest[..colon], Some(&rest[colon + 1..]))
            }
            _ => (rest, None),
        };
        if let Some(tag) = tag
            && !is_tag(tag)
        {
            return Err(invalid(InvalidReferenceReason::InvalidTag));
        }
        if name.is_empty() {
            return Err(invalid(InvalidReferenceReason::Empty));
        }
        let (registry, path) = split_registry(name);
        if !is_registry(registry) {
            return Err(invalid(InvalidReferenceReason::InvalidRegistry));
        }
        let registry = if registry == LEGACY_DEFAULT_REGISTRY {
            DEFAULT_REGISTRY
        } else {
            registry
        };
        let official = registry == DEFAULT_REGISTRY && !path.contains('/');
        let prefix = if official { OFFICIAL_PREFIX } else { "" };
        let mut full = String::with_capacity(registry.len() + 1 + prefix.len() + path.len());
        full.push_str(registry);
        full.push('/');
        full.push_str(prefix);
        full.push_str(path);
        if let Some(reason) = repository_problem(&full[registry.len() + 1..]) {
            return Err(invalid(reason));
        }
        Ok(Reference {
            registry_len: registry.len(),
            name: full,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// The registry, `host[:port]` as written (IPv6 in brackets), `docker.io` by default.
    ///
    /// ```
    /// use oci_reference::Reference;
    /// assert_eq!(Reference::parse("nginx")?.registry(), "docker.io");
    /// assert_eq!(Reference::parse("ghcr.io/owner/tool")?.registry(), "ghcr.io");
    /// assert_eq!(Reference::parse("[::1]:5000/app")?.registry(), "[::1]:5000");
    /// # Ok::<(), oci_reference::ReferenceError>(())
    /// ```
    pub fn registry(&self) -> &str {
        &self.name[..self.registry_len]
    }

    /// The host serving the registry's API: `registry-1.docker.io` for `docker.io`, else the
    /// registry itself.
    ///
    /// ```
    /// use oci_reference::Reference;
    /// assert_eq!(Reference::parse("nginx")?.api_host(), "registry-1.docker.io");
    /// assert_eq!(Reference::parse("quay.io/org/app")?.api_host(), "quay.io");
    /// # Ok::<(), oci_reference::ReferenceError>(())
    /// ```
    pub fn api_host(&self) -> &str {
        match self.registry() {
            DEFAULT_REGISTRY => DEFAULT_REGISTRY_API_HOST,
            registry => registry,
        }
    }

    /// The repository path on its registry (`library/ubuntu`, `team/app`): what goes after
    /// `/v2/` in the registry API.
    ///
    /// ```
    /// use oci_reference::Reference;
    /// assert_eq!(Reference::parse("ubuntu:22.04")?.repository(), "library/ubuntu");
    /// assert_eq!(Reference::parse("localhost/team/app")?.repository(), "team/app");
    /// # Ok::<(), oci_reference::ReferenceError>(())
    /// ```
    pub fn repository(&self) -> &str {
        &self.name[self.registry_len + 1..]
    }

    /// The normalised name without tag or digest: `registry/repository`, as Docker's
    /// `Named.Name()`.
    ///
    /// ```
    /// use oci_reference::Reference;
    /// let r = Reference::parse("busybox:latest@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")?;
    /// assert_eq!(r.name(), "docker.io/library/busybox");
    /// # Ok::<(), oci_reference::ReferenceError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag, if one was written (no default: see [`DEFAULT_TAG`] and
    /// [`manifest_reference`](Reference::manifest_reference)).
    ///
    /// ```
    /// use oci_reference::Reference;
    /// assert_eq!(Reference::parse("app:v1")?.tag(), Some("v1"));
    /// assert_eq!(Reference::parse("app")?.tag(), None);
    /// # Ok::<(), oci_reference::ReferenceError>(())
    /// ```
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was written.
    ///
    /// ```
    /// use oci_reference::Reference;
    /// let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    /// let r = Reference::parse(&format!("app@{d}"))?;
    /// assert_eq!(r.digest().map(|d| d.as_str()), Some(d));
    /// assert_eq!(Reference::parse("app:v1")?.digest(), None);
    /// # Ok::<(), oci_reference::ReferenceError>(())
    /// ```
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry for: the digest when pinned, else the tag, else
    /// [`DEFAULT_TAG`].
    ///
    /// ```
    /// use oci_reference::Reference;
    /// let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    /// assert_eq!(Reference::parse(&format!("app:v1@{d}"))?.manifest_reference(), d);
    /// assert_eq!(Reference::parse("app:v1")?.manifest_reference(), "v1");
    /// assert_eq!(Reference::parse("app")?.manifest_reference(), "latest");
    /// # Ok::<(), oci_reference::ReferenceError>(())
    /// ```
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// The short name Docker shows (`FamiliarName`): without `docker.io/`, and without
    /// `library/` before a one-component name.
    ///
    /// It always parses back to the same name, so in the two cases where Docker's short form
    /// would not, it keeps what is needed: `docker.io/` before a path whose first component
    /// would read as a registry (`docker.io/example.com/app`, `docker.io/localhost/app`), and
    /// `library/` before a 64-hex name (which alone would read as an image ID).
    ///
    /// ```
    /// use oci_reference::Reference;
    /// assert_eq!(Reference::parse("docker.io/library/redis:7")?.familiar_name(), "redis");
    /// assert_eq!(Reference::parse("docker.io/team/app")?.familiar_name(), "team/app");
    /// assert_eq!(Reference::parse("library/a/b")?.familiar_name(), "library/a/b");
    /// assert_eq!(Reference::parse("quay.io/org/app")?.familiar_name(), "quay.io/org/app");
    /// assert_eq!(Reference::parse("docker.io/example.com/app")?.familiar_name(), "docker.io/example.com/app");
    /// # Ok::<(), oci_reference::ReferenceError>(())
    /// ```
    pub fn familiar_name(&self) -> &str {
        if self.registry() != DEFAULT_REGISTRY {
            return &self.name;
        }
        let path = self.repository();
        if let Some(official) = path.strip_prefix(OFFICIAL_PREFIX)
            && !official.contains('/')
        {
            return if is_image_id(official) {
                path
            } else {
                official
            };
        }
        match path.split_once('/') {
            Some((first, _)) if looks_like_registry(first) => &self.name,
            _ => path,
        }
    }

    /// The short form Docker prints (`FamiliarString`): [`familiar_name`](Reference::familiar_name)
    /// with the tag and digest (a 64-hex official name loses its `library/` here when a tag or
    /// digest follows it, as with Docker). It parses back to the same reference.
    ///
    /// ```
    /// use oci_reference::Reference;
    /// let r = Reference::parse("docker.io/library/ubuntu:22.04")?;
    /// assert_eq!(r.familiar(), "ubuntu:22.04");
    /// assert_eq!(Reference::parse(&r.familiar())?, r);
    /// assert_eq!(Reference::parse("localhost:5000/app")?.familiar(), "localhost:5000/app");
    /// # Ok::<(), oci_reference::ReferenceError>(())
    /// ```
    pub fn familiar(&self) -> String {
        let name = self.familiar_name();
        // With a tag or digest after it, a 64-hex name is not an image ID: Docker's short form.
        let name = match name.strip_prefix(OFFICIAL_PREFIX) {
            Some(id)
                if self.registry() == DEFAULT_REGISTRY
                    && is_image_id(id)
                    && (self.tag.is_some() || self.digest.is_some()) =>
            {
                id
            }
            _ => name,
        };
        with_suffixes(name, self.tag(), self.digest())
    }

    /// The same reference with tag `tag` (the digest, if any, is kept, as with Docker's
    /// `WithTag`).
    ///
    /// ```
    /// use oci_reference::Reference;
    /// let r = Reference::parse("example.com/app:v1")?;
    /// assert_eq!(r.with_tag("v2")?.to_string(), "example.com/app:v2");
    /// assert!(r.with_tag("-v2").is_err());
    /// # Ok::<(), oci_reference::ReferenceError>(())
    /// ```
    ///
    /// # Errors
    /// [`ReferenceError`] with [`InvalidReferenceReason::InvalidTag`].
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        crate::grammar::validate_tag(tag)?;
        Ok(Reference {
            tag: Some(tag.to_owned()),
            ..self.clone()
        })
    }

    /// The same reference pinned to `digest` (the tag, if any, is kept, as with Docker's
    /// `WithDigest`).
    ///
    /// ```
    /// use oci_reference::{Digest, Reference};
    /// let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse()?;
    /// let r = Reference::parse("example.com/app:v1")?.with_digest(d.clone());
    /// assert_eq!(r.to_string(), format!("example.com/app:v1@{d}"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same reference without its tag.
    ///
    /// ```
    /// use oci_reference::Reference;
    /// assert_eq!(Reference::parse("app:v1")?.without_tag().to_string(), "docker.io/library/app");
    /// # Ok::<(), oci_reference::ReferenceError>(())
    /// ```
    pub fn without_tag(&self) -> Reference {
        Reference {
            tag: None,
            ..self.clone()
        }
    }

    /// The same reference without its digest.
    ///
    /// ```
    /// use oci_reference::Reference;
    /// let r = Reference::parse("app:v1@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")?;
    /// assert_eq!(r.without_digest().to_string(), "docker.io/library/app:v1");
    /// # Ok::<(), oci_reference::ReferenceError>(())
    /// ```
    pub fn without_digest(&self) -> Reference {
        Reference {
            digest: None,
            ..self.clone()
        }
    }
}

/// Splits a name (no tag, no digest) into registry and path as `splitDockerDomain` does: the
/// first component is a registry when it is `localhost`, contains `.` or `:`, or has uppercase
/// letters (which a path may not have); otherwise the registry is [`DEFAULT_REGISTRY`].
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if looks_like_registry(first) || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_REGISTRY, name),
    }
}

/// Whether a lowercase first component would be read as a registry.
fn looks_like_registry(first: &str) -> bool {
    first == "localhost" || first.contains(['.', ':'])
}

fn with_suffixes(name: &str, tag: Option<&str>, digest: Option<&Digest>) -> String {
    let mut s = name.to_owned();
    if let Some(t) = tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = digest {
        s.push('@');
        s.push_str(d.as_str());
    }
    s
}

impl fmt::Display for Reference {
    /// The canonical form, `registry/repository[:tag][@digest]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reference")
            .field("registry", &self.registry())
            .field("repository", &self.repository())
            .field("tag", &self.tag)
            .field("digest", &self.digest.as_ref().map(Digest::as_str))
            .finish()
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl TryFrom<&str> for Reference {
    type Error = ReferenceError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Reference::parse(s)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}
