//! Registry mirrors for pulls: per-registry (or per-namespace) mirror lists, each mirror with its
//! own credentials and TLS settings, the origin last, read from code or from
//! `containers-registries.conf(5)` as skopeo and podman read them.
//!
//! - [`MirrorConfig`]: the `[[registry]]` tables (a `prefix`, an optional `location` that
//!   rewrites it, `insecure`, `blocked`, `mirror-by-digest-only`, and `[[registry.mirror]]`
//!   tables with `location`, `insecure`, `pull-from-mirror`), parsed strictly from TOML
//!   ([`MirrorConfig::parse_registries_conf`]), chosen for an image by the longest matching
//!   prefix (`*.example.com` matches subdomains), as containers/image does.
//! - [`Client::pull_sources`]: the places to pull a reference from, mirrors first in order and the
//!   origin (the `location`, or the reference itself) last, each a [`Repository`] on a client with
//!   that place's credentials and TLS settings.
//!
//! Mirrors are for pulls only: nothing here changes where a push goes. `insecure` means plain
//! HTTP (as [`ClientConfig::plain_http`]); this client never turns off certificate checks, so a
//! mirror with a certificate the system does not trust needs its CA in
//! [`Mirror::ca_certificates_pem`]. Read and ignored: `unqualified-search-registries`,
//! `short-name-mode`, `[aliases]`, `credential-helpers` (references here are always
//! fully qualified, and credentials come from [`ClientConfig`]); drop-in
//! `registries.conf.d` directories are not read. The version 1 format (`[registries.search]`,
//! `[registries.insecure]`, `[registries.block]`) is refused with an error saying so.

use std::collections::BTreeMap;
use std::path::Path;

use oci_reference::Reference;
use serde::Deserialize;

use crate::auth::Credential;
use crate::{Client, ClientConfig, Error, Repository};

/// Which pulls a mirror serves (`pull-from-mirror` in registries.conf).
///
/// ```
/// use oci_distribution_client::PullFromMirror;
/// assert_eq!(PullFromMirror::default(), PullFromMirror::All);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PullFromMirror {
    /// Pulls by tag and by digest (`all`, or left out).
    #[default]
    All,
    /// Only pulls of references with a digest (`digest-only`).
    DigestOnly,
    /// Only pulls of references without a digest (`tag-only`).
    TagOnly,
}

/// One mirror of a registry or namespace: where it is and how to speak to it.
///
/// ```
/// use oci_distribution_client::{Credential, Mirror};
/// let m = Mirror::new("127.0.0.1:5001/cache")
///     .with_insecure(true)
///     .with_credential(Credential::Basic { username: "puller".into(), password: "s3cret".into() });
/// assert_eq!(m.location, "127.0.0.1:5001/cache");
/// assert!(m.insecure);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mirror {
    /// `host[:port][/namespace...]`: the matched prefix of a reference is replaced by it.
    pub location: String,
    /// Speak plain HTTP to it.
    pub insecure: bool,
    /// Which pulls it serves.
    pub pull_from_mirror: PullFromMirror,
    /// Its credentials (else those of [`ClientConfig`] for its host, if any).
    pub credential: Option<Credential>,
    /// CA certificates (PEM) trusted for it besides those of [`ClientConfig`].
    pub ca_certificates_pem: Vec<Vec<u8>>,
}

impl Mirror {
    /// A mirror at `location` (HTTPS, every pull, the client's credentials).
    pub fn new(location: impl Into<String>) -> Mirror {
        Mirror {
            location: location.into(),
            insecure: false,
            pull_from_mirror: PullFromMirror::All,
            credential: None,
            ca_certificates_pem: Vec::new(),
        }
    }

    /// This mirror over plain HTTP (`insecure = true`).
    pub fn with_insecure(mut self, insecure: bool) -> Mirror {
        self.insecure = insecure;
        self
    }

    /// This mirror with its own credentials.
    pub fn with_credential(mut self, credential: Credential) -> Mirror {
        self.credential = Some(credential);
        self
    }

    /// This mirror trusting one more CA certificate (PEM).
    pub fn with_ca_certificate_pem(mut self, pem: Vec<u8>) -> Mirror {
        self.ca_certificates_pem.push(pem);
        self
    }

    /// This mirror serving only the pulls `mode` says.
    pub fn with_pull_from_mirror(mut self, mode: PullFromMirror) -> Mirror {
        self.pull_from_mirror = mode;
        self
    }
}

/// The mirrors of the images whose names start with `prefix` (a `[[registry]]` table).
///
/// ```
/// use oci_distribution_client::{Mirror, RegistryMirrors};
/// let r = RegistryMirrors::new("127.0.0.1:5000")
///     .with_mirror(Mirror::new("127.0.0.1:5001").with_insecure(true));
/// assert_eq!(r.mirrors.len(), 1);
/// assert!(r.location.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistryMirrors {
    /// `host[:port][/namespace...]`, or `*.domain` for its subdomains.
    pub prefix: String,
    /// Where the namespace really is (`None`: the reference itself).
    pub location: Option<String>,
    /// Speak plain HTTP to the location.
    pub insecure: bool,
    /// Pulls of matching images are refused.
    pub blocked: bool,
    /// Mirrors serve only pulls by digest (`mirror-by-digest-only`).
    pub mirror_by_digest_only: bool,
    /// Mirrors, tried before the location, in order.
    pub mirrors: Vec<Mirror>,
    /// Credentials for the location (else those of [`ClientConfig`] for its host).
    pub credential: Option<Credential>,
}

impl RegistryMirrors {
    /// The images under `prefix`, without mirrors yet.
    pub fn new(prefix: impl Into<String>) -> RegistryMirrors {
        RegistryMirrors {
            prefix: prefix.into(),
            location: None,
            insecure: false,
            blocked: false,
            mirror_by_digest_only: false,
            mirrors: Vec::new(),
            credential: None,
        }
    }

    /// These settings with one more mirror (tried after those already listed).
    pub fn with_mirror(mut self, mirror: Mirror) -> RegistryMirrors {
        self.mirrors.push(mirror);
        self
    }

    /// The origin over plain HTTP.
    pub fn with_insecure(mut self, insecure: bool) -> RegistryMirrors {
        self.insecure = insecure;
        self
    }

    fn check(&self) -> Result<(), Error> {
        check_place(&self.prefix, true)
            .map_err(|why| bad(format!("prefix {:?}: {why}", self.prefix)))?;
        if let Some(l) = &self.location {
            check_place(l, false)
                .map_err(|why| bad(format!("location {l:?} of prefix {:?}: {why}", self.prefix)))?;
        }
        for m in &self.mirrors {
            check_place(&m.location, false).map_err(|why| {
                bad(format!(
                    "mirror {:?} of prefix {:?}: {why}",
                    m.location, self.prefix
                ))
            })?;
            if self.mirror_by_digest_only && m.pull_from_mirror != PullFromMirror::All {
                return Err(bad(format!(
                    "prefix {:?}: pull-from-mirror of mirror {:?} cannot be set with mirror-by-digest-only",
                    self.prefix, m.location
                )));
            }
        }
        Ok(())
    }
}

/// Every registry's mirrors; the one whose prefix matches an image's name longest applies.
///
/// ```
/// use oci_distribution_client::{MirrorConfig, Reference};
/// let conf = MirrorConfig::parse_registries_conf(r#"
///     unqualified-search-registries = ["docker.io"]
///
///     [[registry]]
///     prefix = "docker.io/library"
///     location = "registry.internal/hub"
///
///     [[registry.mirror]]
///     location = "cache.local:5000/hub"
///     insecure = true
/// "#)?;
/// let r: Reference = "docker.io/library/alpine:3.20".parse()?;
/// let entry = conf.lookup(&r).expect("matches");
/// assert_eq!(entry.mirrors[0].location, "cache.local:5000/hub");
/// let places = conf.places(&r)?;
/// assert_eq!(places[0].reference.to_string(), "cache.local:5000/hub/alpine:3.20");
/// assert_eq!(places[1].reference.to_string(), "registry.internal/hub/alpine:3.20");
/// assert!(places[1].is_origin());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MirrorConfig {
    /// The `[[registry]]` entries.
    pub registries: Vec<RegistryMirrors>,
}

/// One place to pull an image from (see [`MirrorConfig::places`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullPlace {
    /// The reference there (the prefix rewritten to the mirror's or the origin's location).
    pub reference: Reference,
    /// The mirror's index in its entry, `None` for the origin.
    pub mirror: Option<usize>,
    /// Plain HTTP.
    pub insecure: bool,
    /// Its own credentials.
    pub credential: Option<Credential>,
    /// Its own CA certificates.
    pub ca_certificates_pem: Vec<Vec<u8>>,
}

impl PullPlace {
    /// Whether this is the origin (not a mirror).
    pub fn is_origin(&self) -> bool {
        self.mirror.is_none()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ConfRegistry {
    prefix: Option<String>,
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default)]
    mirror: Vec<ConfMirror>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ConfMirror {
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    pull_from_mirror: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ConfFile {
    #[serde(default)]
    registry: Vec<ConfRegistry>,
    registries: Option<toml::Value>,
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

/// Top-level keys of registries.conf read and not used here.
const IGNORED_KEYS: &[&str] = &[
    "unqualified-search-registries",
    "short-name-mode",
    "aliases",
    "credential-helpers",
    "additional-layer-store-auth-helper",
];

fn bad(what: String) -> Error {
    Error::InvalidConfig { what, source: None }
}

/// Checks a prefix or location: `host[:port][/path]`, or (a prefix only) `*.domain`.
fn check_place(place: &str, prefix: bool) -> Result<(), String> {
    if let Some(domain) = place.strip_prefix("*.") {
        if !prefix {
            return Err("a location cannot have a wildcard".into());
        }
        if domain.is_empty() || domain.contains(['/', ':', '@', '*']) {
            return Err("a wildcard prefix is `*.domain`, nothing after the domain".into());
        }
        return Ok(());
    }
    if place.is_empty() {
        return Err("empty".into());
    }
    let host = place.split('/').next().unwrap_or(place);
    oci_reference::validate_registry(host).map_err(|e| e.to_string())?;
    if !host.contains(['.', ':']) && host != "localhost" {
        return Err(
            "the first component must be a registry host (with a dot or a port, or localhost)"
                .into(),
        );
    }
    if host.len() < place.len() {
        // Tags and digests may end a prefix: check the rest as a reference's path.
        Reference::parse(place).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The length of `prefix` matched at the start of `name` (containers/image's rule: the match
/// ends at the end of `name` or before `:`, `/` or `@`), `None` when it does not match.
fn matching_prefix(name: &str, prefix: &str) -> Option<usize> {
    if let Some(domain) = prefix.strip_prefix('*') {
        // `*.example.com`: `domain` is `.example.com`, found within the host.
        let at = name.find(domain)?;
        if name[..at].contains('/') {
            return None;
        }
        let end = at + domain.len();
        return match name.as_bytes().get(end) {
            None | Some(b':' | b'/' | b'@') => Some(end),
            Some(_) => None,
        };
    }
    let rest = name.strip_prefix(prefix)?;
    match rest.as_bytes().first() {
        None | Some(b':' | b'/' | b'@') => Some(prefix.len()),
        Some(_) => None,
    }
}

impl MirrorConfig {
    /// No mirrors.
    pub fn new() -> MirrorConfig {
        MirrorConfig::default()
    }

    /// This configuration with one more entry.
    ///
    /// ```
    /// use oci_distribution_client::{Mirror, MirrorConfig, RegistryMirrors};
    /// let c = MirrorConfig::new()
    ///     .with_registry(RegistryMirrors::new("127.0.0.1:5000").with_mirror(Mirror::new("127.0.0.1:5001")));
    /// assert_eq!(c.registries.len(), 1);
    /// ```
    pub fn with_registry(mut self, entry: RegistryMirrors) -> MirrorConfig {
        self.registries.push(entry);
        self
    }

    /// Parses `containers-registries.conf(5)` (version 2).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming what is wrong: TOML syntax, an unknown key in a
    /// `[[registry]]` or `[[registry.mirror]]` table, a table without `prefix` or `location`,
    /// an invalid prefix or location, two tables with one prefix, an unknown `pull-from-mirror`,
    /// `pull-from-mirror` together with `mirror-by-digest-only`, the version 1 format.
    pub fn parse_registries_conf(text: &str) -> Result<MirrorConfig, Error> {
        let file: ConfFile = toml::from_str(text).map_err(|e| Error::InvalidConfig {
            what: "registries.conf".into(),
            source: Some(Box::new(e)),
        })?;
        if file.registries.is_some() {
            return Err(bad(
                "registries.conf: the version 1 format ([registries.search], [registries.insecure], [registries.block]) is not supported; use [[registry]] tables".into(),
            ));
        }
        for key in file.other.keys() {
            if !IGNORED_KEYS.contains(&key.as_str()) {
                return Err(bad(format!("registries.conf: unknown key {key:?}")));
            }
        }
        let mut out = MirrorConfig::default();
        for r in file.registry {
            let prefix = match (&r.prefix, &r.location) {
                (Some(p), _) => p.clone(),
                (None, Some(l)) => l.clone(),
                (None, None) => {
                    return Err(bad(
                        "registries.conf: a [[registry]] table needs a prefix or a location".into(),
                    ));
                }
            };
            let location = r.location.filter(|l| !l.is_empty());
            let mut mirrors = Vec::with_capacity(r.mirror.len());
            for m in r.mirror {
                let mode = match m.pull_from_mirror.as_deref() {
                    None | Some("" | "all") => PullFromMirror::All,
                    Some("digest-only") => PullFromMirror::DigestOnly,
                    Some("tag-only") => PullFromMirror::TagOnly,
                    Some(other) => {
                        return Err(bad(format!(
                            "registries.conf: mirror {:?}: pull-from-mirror {other:?} is not all, digest-only or tag-only",
                            m.location
                        )));
                    }
                };
                mirrors.push(Mirror {
                    location: m.location,
                    insecure: m.insecure,
                    pull_from_mirror: mode,
                    credential: None,
                    ca_certificates_pem: Vec::new(),
                });
            }
            let entry = RegistryMirrors {
                prefix,
                location,
                insecure: r.insecure,
                blocked: r.blocked,
                mirror_by_digest_only: r.mirror_by_digest_only,
                mirrors,
                credential: None,
            };
            entry.check().map_err(|e| match e {
                Error::InvalidConfig { what, source } => Error::InvalidConfig {
                    what: format!("registries.conf: {what}"),
                    source,
                },
                other => other,
            })?;
            if out.registries.iter().any(|o| o.prefix == entry.prefix) {
                return Err(bad(format!(
                    "registries.conf: two [[registry]] tables with prefix {:?}",
                    entry.prefix
                )));
            }
            out.registries.push(entry);
        }
        Ok(out)
    }

    /// Reads and parses a `registries.conf` file (at most 1 MiB).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the file cannot be read, is too large, or does not parse.
    pub fn from_registries_conf_file(path: &Path) -> Result<MirrorConfig, Error> {
        use std::io::Read;
        const LIMIT: u64 = 1024 * 1024;
        let read_err = |e: std::io::Error| Error::InvalidConfig {
            what: format!("cannot read {}", path.display()),
            source: Some(Box::new(e)),
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut text = String::new();
        file.take(LIMIT + 1)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        if text.len() as u64 > LIMIT {
            return Err(bad(format!("{} is larger than 1 MiB", path.display())));
        }
        MirrorConfig::parse_registries_conf(&text).map_err(|e| match e {
            Error::InvalidConfig { what, source } => Error::InvalidConfig {
                what: format!("{}: {what}", path.display()),
                source,
            },
            other => other,
        })
    }

    /// The entry whose prefix matches `reference` longest, if any.
    pub fn lookup(&self, reference: &Reference) -> Option<&RegistryMirrors> {
        let name = reference.to_string();
        self.registries
            .iter()
            .filter_map(|r| matching_prefix(&name, &r.prefix).map(|n| (n, r)))
            .max_by_key(|(n, _)| *n)
            .map(|(_, r)| r)
    }

    /// Where to pull `reference` from: the mirrors that serve this kind of pull, in order, then
    /// the origin (the entry's location, or the reference itself) last. Without a matching
    /// entry, the reference alone.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the entry blocks the image or a rewritten reference is
    /// not valid.
    pub fn places(&self, reference: &Reference) -> Result<Vec<PullPlace>, Error> {
        let name = reference.to_string();
        let origin = |reference: Reference| PullPlace {
            reference,
            mirror: None,
            insecure: false,
            credential: None,
            ca_certificates_pem: Vec::new(),
        };
        let Some(entry) = self.lookup(reference) else {
            return Ok(vec![origin(reference.clone())]);
        };
        if entry.blocked {
            return Err(Error::InvalidArgument(format!(
                "pulling {name} is blocked (registries configuration, prefix {:?})",
                entry.prefix
            )));
        }
        let matched = matching_prefix(&name, &entry.prefix).unwrap_or(0);
        let rewrite = |location: &str| -> Result<Reference, Error> {
            let s = format!("{location}{}", &name[matched..]);
            Reference::parse(&s).map_err(|e| {
                Error::InvalidArgument(format!("{name} rewritten for {location:?}: {e}"))
            })
        };
        let by_digest = reference.digest().is_some();
        let mut places = Vec::new();
        for (i, m) in entry.mirrors.iter().enumerate() {
            let serves = match (entry.mirror_by_digest_only, m.pull_from_mirror) {
                (true, _) | (false, PullFromMirror::DigestOnly) => by_digest,
                (false, PullFromMirror::TagOnly) => !by_digest,
                (false, PullFromMirror::All) => true,
            };
            if serves {
                places.push(PullPlace {
                    reference: rewrite(&m.location)?,
                    mirror: Some(i),
                    insecure: m.insecure,
                    credential: m.credential.clone(),
                    ca_certificates_pem: m.ca_certificates_pem.clone(),
                });
            }
        }
        let mut last = origin(match &entry.location {
            Some(l) => rewrite(l)?,
            None => reference.clone(),
        });
        last.insecure = entry.insecure;
        last.credential = entry.credential.clone();
        places.push(last);
        Ok(places)
    }
}

/// A place to pull from, as a repository on a client with that place's settings (see
/// [`Client::pull_sources`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PullSource {
    /// The place.
    pub place: PullPlace,
    /// The repository there.
    pub repository: Repository,
}

impl Client {
    /// Where to pull `reference` from under [`ClientConfig::mirrors`]: the mirrors that serve
    /// this kind of pull, in order, then the origin last (see [`MirrorConfig::places`]). A place
    /// with its own settings (plain HTTP, credentials, CA certificates) gets a client of its
    /// own, built from this client's configuration with those settings added.
    ///
    /// ```
    /// use oci_distribution_client::{Client, ClientConfig, Mirror, MirrorConfig, RegistryMirrors};
    /// let mirrors = MirrorConfig::new().with_registry(
    ///     RegistryMirrors::new("registry.example.com")
    ///         .with_mirror(Mirror::new("127.0.0.1:5001/hub").with_insecure(true)),
    /// );
    /// let client = Client::new(ClientConfig::default().with_mirrors(mirrors))?;
    /// let sources = client.pull_sources(&"registry.example.com/team/app:v1".parse()?)?;
    /// let names: Vec<String> = sources
    ///     .iter()
    ///     .map(|s| format!("{}/{}", s.repository.registry(), s.repository.name()))
    ///     .collect();
    /// assert_eq!(names, ["127.0.0.1:5001/hub/team/app", "registry.example.com/team/app"]);
    /// assert!(sources[1].place.is_origin());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a blocked image or an invalid rewritten reference;
    /// [`Error::InvalidConfig`] when a place's client cannot be built.
    pub fn pull_sources(&self, reference: &Reference) -> Result<Vec<PullSource>, Error> {
        let places = self.inner.config.mirrors.places(reference)?;
        places
            .into_iter()
            .map(|place| {
                let client = self.client_for(&place)?;
                let repository = client.repository(&place.reference)?;
                Ok(PullSource { place, repository })
            })
            .collect()
    }

    /// This client, or one with `place`'s own settings added.
    fn client_for(&self, place: &PullPlace) -> Result<Client, Error> {
        let registry = place.reference.registry();
        let base = &self.inner.config;
        let plain = !place.insecure || base.plain_http.iter().any(|r| r == registry);
        if plain && place.credential.is_none() && place.ca_certificates_pem.is_empty() {
            return Ok(self.clone());
        }
        let mut config: ClientConfig = base.clone();
        config.mirrors = MirrorConfig::default();
        if place.insecure {
            config.plain_http.push(registry.to_owned());
        }
        if let Some(c) = &place.credential {
            // First: credentials from code are looked up in order.
            config
                .credentials
                .insert(0, (registry.to_owned(), c.clone()));
        }
        config
            .ca_certificates_pem
            .extend(place.ca_certificates_pem.iter().cloned());
        Client::new(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        s.parse().unwrap()
    }

    fn err(text: &str) -> String {
        match MirrorConfig::parse_registries_conf(text) {
            Err(e) => {
                let mut s = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(x) = src {
                    s.push_str(&format!(": {x}"));
                    src = x.source();
                }
                s
            }
            Ok(c) => panic!("accepted: {c:?}"),
        }
    }

    #[test]
    fn prefixes_match_at_separators_and_the_longest_wins() {
        assert_eq!(
            matching_prefix("example.com/foo/bar:1", "example.com/foo"),
            Some(15)
        );
        assert_eq!(
            matching_prefix("example.com/foobar:1", "example.com/foo"),
            None
        );
        assert_eq!(
            matching_prefix("example.com:5000/x", "example.com"),
            Some(11)
        );
        assert_eq!(
            matching_prefix("a.b.example.com/x", "*.example.com"),
            Some(15)
        );
        assert_eq!(matching_prefix("example.com/x", "*.example.com"), None);
        assert_eq!(
            matching_prefix("evil.com/a.example.com/x", "*.example.com"),
            None
        );
        assert_eq!(
            matching_prefix("a.example.community/x", "*.example.com"),
            None
        );
        let c = MirrorConfig::parse_registries_conf(
            r#"
            [[registry]]
            location = "example.com"
            [[registry.mirror]]
            location = "m1.local/all"
            [[registry]]
            prefix = "example.com/team"
            location = "internal.local/t"
            [[registry.mirror]]
            location = "m2.local/team"
            insecure = true
            pull-from-mirror = "digest-only"
            [[registry.mirror]]
            location = "m3.local:5000"
            pull-from-mirror = "tag-only"
            "#,
        )
        .unwrap();
        assert_eq!(
            c.lookup(&r("example.com/team/app:1")).unwrap().prefix,
            "example.com/team"
        );
        assert_eq!(
            c.lookup(&r("example.com/other:1")).unwrap().prefix,
            "example.com"
        );
        assert!(c.lookup(&r("other.com/team/app:1")).is_none());

        let by_tag: Vec<String> = c
            .places(&r("example.com/team/app:1"))
            .unwrap()
            .iter()
            .map(|p| p.reference.to_string())
            .collect();
        assert_eq!(by_tag, ["m3.local:5000/app:1", "internal.local/t/app:1"]);
        let d = oci_digest::Algorithm::Sha256.hash(b"x");
        let by_digest = c.places(&r(&format!("example.com/team/app@{d}"))).unwrap();
        assert_eq!(by_digest.len(), 2);
        assert_eq!(
            by_digest[0].reference.to_string(),
            format!("m2.local/team/app@{d}")
        );
        assert!(by_digest[0].insecure);
        assert!(by_digest[1].is_origin());
        // No entry: the reference alone.
        let alone = c.places(&r("other.com/x:1")).unwrap();
        assert_eq!(alone.len(), 1);
        assert!(alone[0].is_origin());
    }

    #[test]
    fn blocked_images_are_refused() {
        let c = MirrorConfig::parse_registries_conf(
            "[[registry]]\nprefix = \"*.bad.example\"\nblocked = true\n",
        )
        .unwrap();
        match c.places(&r("x.bad.example/app:1")) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("blocked"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_files_are_refused_with_what_is_wrong() {
        assert!(err("[[registry]\n").contains("registries.conf"));
        assert!(err("[[registry]]\nprefix = \"a.com\"\nlocaton = \"b.com\"\n").contains("locaton"));
        assert!(err("[[registry]]\ninsecure = true\n").contains("needs a prefix or a location"));
        assert!(err("[[registry]]\nprefix = \"example.*.com\"\n").contains("prefix"));
        assert!(err("[[registry]]\nprefix = \"*.example.com/foo\"\n").contains("wildcard"));
        assert!(
            err("[[registry]]\nprefix = \"a.com\"\nlocation = \"*.b.com\"\n").contains("wildcard")
        );
        assert!(err("[[registry]]\nprefix = \"a.com\"\n[[registry.mirror]]\nlocation = \"m.com\"\npull-from-mirror = \"sometimes\"\n").contains("sometimes"));
        assert!(err("[[registry]]\nprefix = \"a.com\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.com\"\npull-from-mirror = \"tag-only\"\n").contains("mirror-by-digest-only"));
        assert!(
            err("[[registry]]\nprefix = \"a.com\"\n[[registry]]\nlocation = \"a.com\"\n")
                .contains("two")
        );
        assert!(err("[registries.search]\nregistries = [\"a.com\"]\n").contains("version 1"));
        assert!(err("mirrors = 3\n").contains("unknown key"));
        assert!(
            err("[[registry]]\nprefix = \"a.com\"\n[[registry.mirror]]\nlocation = \"UPPER/x\"\n")
                .contains("UPPER")
        );
        assert!(err("[[registry]]\nprefix = \"nodots/app\"\n").contains("registry host"));
        // Keys for short names and credentials are read and left alone.
        let ok = MirrorConfig::parse_registries_conf(
            "unqualified-search-registries = [\"docker.io\"]\nshort-name-mode = \"enforcing\"\n[aliases]\n\"alpine\" = \"docker.io/library/alpine\"\n",
        )
        .unwrap();
        assert!(ok.registries.is_empty());
    }
}
