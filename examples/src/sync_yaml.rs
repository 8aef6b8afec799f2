//! `sync --src yaml`: the images to copy, in the shape of `skopeo sync --src yaml`, and where
//! each one goes.
//!
//! ```yaml
//! registry.example.com:           # a registry (host[:port])
//!   images:                       # repositories and their tags; [] is every tag
//!     busybox: []
//!     team/redis: ["1.0", "2.0"]
//!   images-by-tag-regex:          # repositories and a regular expression their tags match
//!     nginx: ^1\.13\.[12]-alpine$
//!   credentials:                  # optional: this registry's user and password
//!     username: john
//!     password: secret
//!   tls-verify: false             # optional: plain HTTP allowed (a registry on loopback)
//!   cert-dir: /etc/certs/example  # optional: *.crt files trusted for this registry
//! ```
//!
//! Each image goes to the destination as skopeo sends it: `docker://REGISTRY[/PREFIX]` gets
//! `REGISTRY/PREFIX/NAME:TAG` and `oci:DIR` the tag `NAME:TAG` in one layout (its blobs shared
//! by every image), where NAME is the last component of the repository (`team/redis` is
//! `redis`), or with `--scoped` the source registry and the whole repository
//! (`registry.example.com/team/redis`). Unknown keys are refused (a misspelt `tls-verify`
//! would otherwise be ignored), as are `images-by-semver` (not supported here) and digests in
//! tag lists (a destination needs a tag).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use oci_digest::Digest;
use oci_distribution_client::{ClientConfig, Credential, Reference};
use regex::Regex;
use serde::Deserialize;

use crate::escape;
use crate::transport::{Endpoint, check_ref_name};

/// The credentials of one registry, as the YAML gives them. `Debug` hides the password.
///
/// ```
/// let y = oci_examples::sync_yaml::parse("r.example:\n  credentials: {username: john, password: s3cret}\n", "f").unwrap();
/// let c = y[0].credentials.as_ref().unwrap();
/// assert_eq!(c.username, "john");
/// assert!(!format!("{c:?}").contains("s3cret"));
/// ```
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct YamlCredentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl fmt::Debug for YamlCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YamlCredentials")
            .field("username", &self.username)
            .field("password", &"(hidden)")
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RegistryYaml {
    #[serde(default)]
    images: BTreeMap<String, Option<Vec<String>>>,
    #[serde(default)]
    images_by_tag_regex: BTreeMap<String, String>,
    credentials: Option<YamlCredentials>,
    tls_verify: Option<bool>,
    cert_dir: Option<PathBuf>,
}

/// Which tags of a repository to copy.
#[derive(Debug, Clone)]
pub enum Tags {
    /// Every tag the repository lists (`repo: []`).
    All,
    /// These tags.
    Listed(Vec<String>),
    /// The tags the repository lists that match this expression (`images-by-tag-regex`).
    Matching(Regex),
}

impl Tags {
    /// Whether the tags must be listed from the registry.
    ///
    /// ```
    /// use oci_examples::sync_yaml::Tags;
    /// assert!(Tags::All.needs_listing());
    /// assert!(!Tags::Listed(vec!["v1".into()]).needs_listing());
    /// ```
    pub fn needs_listing(&self) -> bool {
        !matches!(self, Tags::Listed(_))
    }

    /// The tags to copy among `listed` (what the registry lists), in the order given.
    ///
    /// ```
    /// use oci_examples::sync_yaml::Tags;
    /// let listed = vec!["1.0".to_owned(), "1.1".to_owned(), "2.0".to_owned()];
    /// let m = Tags::Matching(regex::Regex::new(r"^1\.").unwrap());
    /// assert_eq!(m.select(&listed), vec!["1.0", "1.1"]);
    /// assert_eq!(Tags::All.select(&listed).len(), 3);
    /// ```
    pub fn select(&self, listed: &[String]) -> Vec<String> {
        match self {
            Tags::All => listed.to_vec(),
            Tags::Listed(t) => t.clone(),
            Tags::Matching(re) => listed.iter().filter(|t| re.is_match(t)).cloned().collect(),
        }
    }
}

/// One registry of the YAML input.
///
/// ```
/// let y = oci_examples::sync_yaml::parse("r.example:\n  images:\n    b: [v1]\n    a: []\n  cert-dir: /etc/certs\n", "f").unwrap();
/// let names: Vec<&str> = y[0].repositories.iter().map(|(r, _)| r.as_str()).collect();
/// assert_eq!(names, ["a", "b"]);
/// assert_eq!(y[0].cert_dir.as_deref(), Some(std::path::Path::new("/etc/certs")));
/// ```
#[derive(Debug, Clone)]
pub struct RegistryEntry {
    /// `host[:port]`, as written.
    pub registry: String,
    /// Repositories and the tags to copy of each, sorted by repository.
    pub repositories: Vec<(String, Tags)>,
    /// Its credentials, if given.
    pub credentials: Option<YamlCredentials>,
    /// `tls-verify`; `Some(false)` lets the client talk plain HTTP to it.
    pub tls_verify: Option<bool>,
    /// `cert-dir`: a directory of `*.crt` files (PEM) to trust.
    pub cert_dir: Option<PathBuf>,
}

/// Parses the YAML input; `file` names it in messages.
///
/// ```
/// let y = oci_examples::sync_yaml::parse(
///     "127.0.0.1:5000:\n  images:\n    team/app: [v1, v2]\n    base: []\n  tls-verify: false\n",
///     "sync.yaml",
/// ).unwrap();
/// assert_eq!(y[0].registry, "127.0.0.1:5000");
/// assert_eq!(y[0].repositories.len(), 2);
/// assert_eq!(y[0].tls_verify, Some(false));
/// assert!(oci_examples::sync_yaml::parse("r.example:\n  tls-verfy: false\n", "f").unwrap_err().contains("tls-verfy"));
/// assert!(oci_examples::sync_yaml::parse("r.example:\n  images-by-tag-regex:\n    a: '('\n", "f").is_err());
/// ```
///
/// # Errors
/// What is wrong and where, with text from the file escaped.
pub fn parse(text: &str, file: &str) -> Result<Vec<RegistryEntry>, String> {
    let raw: BTreeMap<String, RegistryYaml> =
        serde_norway::from_str(text).map_err(|e| format!("{file}: {}", escape(&e.to_string())))?;
    let mut out = Vec::new();
    for (registry, r) in raw {
        let at = |what: &str| format!("{file}: registry \"{}\": {what}", escape(&registry));
        Reference::parse(&format!("{registry}/x:latest"))
            .map_err(|e| at(&format!("not a registry name: {}", crate::chain(&e))))?;
        let mut repositories = Vec::new();
        for (repo, tags) in r.images {
            check_repository(&registry, &repo).map_err(|e| at(&e))?;
            let tags = match tags {
                None => Tags::All,
                Some(t) if t.is_empty() => Tags::All,
                Some(t) => {
                    for tag in &t {
                        check_tag(tag)
                            .map_err(|e| at(&format!("repository \"{}\": {e}", escape(&repo))))?;
                    }
                    Tags::Listed(t)
                }
            };
            repositories.push((repo, tags));
        }
        for (repo, expr) in r.images_by_tag_regex {
            check_repository(&registry, &repo).map_err(|e| at(&e))?;
            let re = Regex::new(&expr).map_err(|e| {
                at(&format!(
                    "repository \"{}\": tags-regex: {}",
                    escape(&repo),
                    escape(&e.to_string())
                ))
            })?;
            if repositories.iter().any(|(r, _)| *r == repo) {
                return Err(at(&format!(
                    "repository \"{}\" is in both images and images-by-tag-regex",
                    escape(&repo)
                )));
            }
            repositories.push((repo, Tags::Matching(re)));
        }
        repositories.sort_by(|a, b| a.0.cmp(&b.0));
        out.push(RegistryEntry {
            registry,
            repositories,
            credentials: r.credentials,
            tls_verify: r.tls_verify,
            cert_dir: r.cert_dir,
        });
    }
    Ok(out)
}

fn check_repository(registry: &str, repo: &str) -> Result<(), String> {
    Reference::parse(&format!("{registry}/{repo}:latest"))
        .map(drop)
        .map_err(|e| {
            format!(
                "repository \"{}\": {}",
                escape(repo),
                escape(&crate::chain(&e))
            )
        })
}

fn check_tag(tag: &str) -> Result<(), String> {
    if Digest::parse(tag).is_ok() {
        return Err(format!(
            "\"{}\" is a digest: name tags here (a destination needs a tag)",
            escape(tag)
        ));
    }
    match Reference::parse(&format!("r.example/x:{tag}")) {
        Ok(r) if r.tag() == Some(tag) => Ok(()),
        Ok(_) => Err(format!("tag \"{}\": not a valid tag", escape(tag))),
        Err(e) => Err(format!(
            "tag \"{}\": {}",
            escape(tag),
            escape(&crate::chain(&e))
        )),
    }
}

/// Where `sync --src yaml` puts the images (see [`Destination::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `docker://REGISTRY[/PREFIX]`.
    Registry {
        /// `host[:port]`.
        registry: String,
        /// Repositories go under this prefix, if any.
        prefix: Option<String>,
    },
    /// `oci:DIR`: one layout, a tag `NAME:TAG` per image.
    Layout(PathBuf),
}

impl Destination {
    /// Parses `docker://REGISTRY[/PREFIX]` or `oci:DIR`.
    ///
    /// ```
    /// use oci_examples::sync_yaml::Destination;
    /// let d = Destination::parse("docker://127.0.0.1:5000/mirror").unwrap();
    /// assert_eq!(d, Destination::Registry { registry: "127.0.0.1:5000".into(), prefix: Some("mirror".into()) });
    /// assert_eq!(Destination::parse("oci:out").unwrap(), Destination::Layout("out".into()));
    /// assert!(Destination::parse("docker://r.example/a:v1").is_err());
    /// assert!(Destination::parse("oci:out:v1").is_err());
    /// assert!(Destination::parse("dir:/x").is_err());
    /// ```
    ///
    /// # Errors
    /// What is wrong.
    pub fn parse(s: &str) -> Result<Destination, String> {
        if let Some(rest) = s.strip_prefix("docker://") {
            let rest = rest.trim_end_matches('/');
            let (registry, prefix) = match rest.split_once('/') {
                Some((r, p)) => (r, Some(p)),
                None => (rest, None),
            };
            let probe = match prefix {
                Some(p) => format!("{registry}/{p}/x"),
                None => format!("{registry}/x"),
            };
            let r = Reference::parse(&probe).map_err(|e| {
                format!(
                    "\"{}\": expected docker://REGISTRY[/PREFIX]: {}",
                    escape(s),
                    escape(&crate::chain(&e))
                )
            })?;
            if r.registry() != registry || prefix.is_some_and(|p| p.contains([':', '@'])) {
                return Err(format!(
                    "\"{}\": expected docker://REGISTRY[/PREFIX], a registry host and a repository prefix without a tag",
                    escape(s)
                ));
            }
            return Ok(Destination::Registry {
                registry: registry.to_owned(),
                prefix: prefix.map(str::to_owned),
            });
        }
        if let Some(dir) = s.strip_prefix("oci:") {
            if dir.is_empty() || dir.contains(':') {
                return Err(format!(
                    "\"{}\": expected oci:DIR, a layout directory without a tag (each image gets the tag NAME:TAG)",
                    escape(s)
                ));
            }
            return Ok(Destination::Layout(PathBuf::from(dir)));
        }
        Err(format!(
            "\"{}\": expected docker://REGISTRY[/PREFIX] or oci:DIR",
            escape(s)
        ))
    }

    /// The registry it names, if it is one.
    ///
    /// ```
    /// use oci_examples::sync_yaml::Destination;
    /// assert_eq!(Destination::parse("docker://r.example:5000").unwrap().registry(), Some("r.example:5000"));
    /// assert_eq!(Destination::parse("oci:out").unwrap().registry(), None);
    /// ```
    pub fn registry(&self) -> Option<&str> {
        match self {
            Destination::Registry { registry, .. } => Some(registry),
            Destination::Layout(_) => None,
        }
    }

    /// Where `registry/repository:tag` goes: its name is the repository's last component, or
    /// with `scoped` the registry and the whole repository.
    ///
    /// ```
    /// use oci_examples::sync_yaml::Destination;
    /// let d = Destination::parse("docker://127.0.0.1:6000/m").unwrap();
    /// let e = d.endpoint("src.example", "team/app", "v1", false).unwrap();
    /// assert_eq!(e.as_typed(), "docker://127.0.0.1:6000/m/app:v1");
    /// let e = d.endpoint("src.example", "team/app", "v1", true).unwrap();
    /// assert_eq!(e.as_typed(), "docker://127.0.0.1:6000/m/src.example/team/app:v1");
    /// let e = Destination::parse("oci:out").unwrap().endpoint("src.example", "team/app", "v1", false).unwrap();
    /// assert_eq!(e.as_typed(), "oci:out:app:v1");
    /// ```
    ///
    /// # Errors
    /// When the result is not a valid reference or tag.
    pub fn endpoint(
        &self,
        registry: &str,
        repository: &str,
        tag: &str,
        scoped: bool,
    ) -> Result<Endpoint, String> {
        let name = if scoped {
            format!("{registry}/{repository}")
        } else {
            repository
                .rsplit('/')
                .next()
                .unwrap_or(repository)
                .to_owned()
        };
        match self {
            Destination::Registry {
                registry: to,
                prefix,
            } => {
                let reference = match prefix {
                    Some(p) => format!("{to}/{p}/{name}:{tag}"),
                    None => format!("{to}/{name}:{tag}"),
                };
                Endpoint::parse(&format!("docker://{reference}")).map_err(|e| e.to_string())
            }
            Destination::Layout(dir) => {
                let tag = format!("{name}:{tag}");
                check_ref_name(&tag)?;
                Ok(Endpoint::Layout {
                    path: dir.clone(),
                    reference: Some(tag),
                })
            }
        }
    }
}

/// Adds each registry's settings from the YAML to `config`: plain HTTP where `tls-verify` is
/// false, its credentials, the certificates of its `cert-dir`.
///
/// ```
/// let y = oci_examples::sync_yaml::parse("127.0.0.1:5000:\n  tls-verify: false\n  credentials: {username: a, password: b}\n", "f").unwrap();
/// let c = oci_examples::sync_yaml::configure(oci_distribution_client::ClientConfig::default(), &y).unwrap();
/// assert!(c.plain_http.contains(&"127.0.0.1:5000".to_owned()));
/// assert_eq!(c.credentials.len(), 1);
/// ```
///
/// # Errors
/// A `cert-dir` that cannot be read.
pub fn configure(
    mut config: ClientConfig,
    entries: &[RegistryEntry],
) -> Result<ClientConfig, String> {
    for e in entries {
        if e.tls_verify == Some(false) && !config.plain_http.contains(&e.registry) {
            config = config.with_plain_http(e.registry.clone());
        }
        if let Some(c) = &e.credentials {
            config.credentials.retain(|(r, _)| *r != e.registry);
            config = config.with_credential(
                e.registry.clone(),
                Credential::basic(&c.username, &c.password),
            );
        }
        if let Some(dir) = &e.cert_dir {
            config.ca_certificates_pem.extend(
                read_certificates(dir)
                    .map_err(|m| format!("registry \"{}\": cert-dir {m}", escape(&e.registry)))?,
            );
        }
    }
    Ok(config)
}

/// The `*.crt` files of `dir`, as Docker and skopeo read a certificate directory.
fn read_certificates(dir: &Path) -> Result<Vec<Vec<u8>>, String> {
    let shown = || crate::Escaped(dir.display()).to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", shown()))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", shown()))?.path();
        if path.extension().is_some_and(|x| x == "crt") {
            let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", shown()))?;
            if meta.len() > 1 << 20 {
                return Err(format!(
                    "{}: a certificate file over 1 MiB",
                    crate::Escaped(path.display())
                ));
            }
            out.push(std::fs::read(&path).map_err(|e| format!("{}: {e}", shown()))?);
        }
    }
    Ok(out)
}
