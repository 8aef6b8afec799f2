//! Image locations on the command line (`oci:PATH[:TAG|@DIGEST]`, `docker://REGISTRY/REPO...`,
//! `s3://BUCKET/PREFIX[:TAG|@DIGEST]`, `docker-archive:PATH[:REFERENCE]`,
//! `oci-archive:PATH[:TAG]`) and the copy between two of them, shared by the examples.

use std::fmt;
use std::path::{Path, PathBuf};

use oci_digest::Digest;
use oci_distribution_client::{Client, ClientConfig, Credential, Reference, Repository};
use oci_store::{
    ArchiveKind, ArchiveOptions, ArchiveReader, ArchiveRef, ArchiveWriter, BucketOptions,
    BucketStore, CopyOptions, CopyReport, CopySide, LayoutOptions, LayoutStore, ManagedStore,
    ReadStore, Store, StoreError, TagStore,
};

use crate::cli::RegistryArgs;
use crate::{Escaped, escape};

/// Where an image is: an OCI layout directory, a registry repository, a prefix of an
/// S3-compatible bucket or an archive file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `oci:PATH[:TAG|@DIGEST]`: an OCI image layout directory.
    Layout {
        /// The layout directory.
        path: PathBuf,
        /// A tag or digest in it; `None` when not given.
        reference: Option<String>,
    },
    /// `docker://REGISTRY/REPO[:TAG|@DIGEST]`: a registry repository.
    Registry {
        /// The reference as given after `docker://`.
        reference: String,
    },
    /// `s3://BUCKET/PREFIX[:TAG|@DIGEST]`: an OCI image layout under a prefix of an
    /// S3-compatible bucket ([`BucketStore`]), configured by the `AWS_*` environment variables.
    Bucket {
        /// `s3://BUCKET/PREFIX`, without the tag or digest.
        url: String,
        /// A tag or digest in it; `None` when not given.
        reference: Option<String>,
    },
    /// `docker-archive:PATH[:REFERENCE]` or `oci-archive:PATH[:TAG]` ([`ArchiveRef`]).
    Archive {
        /// Which format.
        kind: ArchiveKind,
        /// The archive file.
        path: PathBuf,
        /// A Docker reference (`app:v1`, `@N`) or an OCI tag; `None` when not given.
        reference: Option<String>,
    },
}

impl fmt::Display for Endpoint {
    /// The location as typed, its path and reference escaped ([`crate::escape`]): they may come
    /// from a list file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Escaped(self.as_typed()))
    }
}

/// Why a location on the command line is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEndpoint {
    /// The input.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for BadEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\": {}", Escaped(&self.input), Escaped(&self.reason))
    }
}

/// Checks a layout tag against the grammar of `org.opencontainers.image.ref.name` in the OCI
/// image layout specification, and against what the store accepts
/// ([`oci_store::validate_tag`]: at most 255 characters):
///
/// ```text
/// ref       ::= component ("/" component)*
/// component ::= alphanum (separator alphanum)*
/// alphanum  ::= [A-Za-z0-9]+
/// separator ::= [-._:@+] | "--"
/// ```
///
/// So `v1`, `team/v1`, `1.0-rc.1`, `a--b` are tags; `../x`, `a//b`, `/x`, `x/`, `-x`, `a b`
/// and anything with a control character are not.
///
/// ```
/// use oci_examples::transport::check_ref_name;
/// for ok in ["v1", "team/v1", "1.0-rc.1", "a--b", "docker.io/library/x:1@sha256"] {
///     assert!(check_ref_name(ok).is_ok(), "{ok}");
/// }
/// for bad in ["", "../x", "..", "a//b", "/x", "x/", "-x", "a b", "a---b", "a..b", "a\u{1b}b", "_x"] {
///     assert!(check_ref_name(bad).is_err(), "{bad}");
/// }
/// ```
///
/// # Errors
/// What is wrong, for a message.
pub fn check_ref_name(tag: &str) -> Result<(), String> {
    oci_store::validate_tag(tag).map_err(|e| chain(&e))?;
    for component in tag.split('/') {
        let b = component.as_bytes();
        let (Some(first), Some(last)) = (b.first(), b.last()) else {
            return Err(format!(
                "tag \"{}\": empty path component (\"//\" or a leading or trailing \"/\")",
                escape(tag)
            ));
        };
        if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
            return Err(format!(
                "tag \"{}\": each /-separated part must start and end with a letter or digit",
                escape(tag)
            ));
        }
        for run in component
            .split(|c: char| c.is_ascii_alphanumeric())
            .filter(|r| !r.is_empty())
        {
            if run != "--" && !(run.len() == 1 && "-._:@+".contains(run)) {
                return Err(format!(
                    "tag \"{}\": letters and digits may be separated by one of - . _ : @ + or by --, not \"{}\"",
                    escape(tag),
                    escape(run)
                ));
            }
        }
    }
    Ok(())
}

impl std::error::Error for BadEndpoint {}

/// What [`Endpoint::parse`] accepts, for its error message.
const EXPECTED_ENDPOINT: &str = "expected oci:PATH[:TAG|@DIGEST] or docker://REGISTRY/REPO[:TAG|@DIGEST], \
or s3://BUCKET/PREFIX[:TAG|@DIGEST], docker-archive:PATH[:REFERENCE], oci-archive:PATH[:TAG]";

/// `BUCKET/PREFIX[:TAG|@DIGEST]` (after `s3://`): the tag or digest follows the last `/`, so a
/// tag holds no `/` here and the prefix no `:`.
fn parse_bucket(rest: &str) -> Result<Endpoint, String> {
    let last = rest.rfind('/').map_or(0, |i| i + 1);
    let (place, reference) = match rest[last..].find(['@', ':']) {
        None => (rest, None),
        Some(i) => {
            let (place, mark) = rest.split_at(last + i);
            let reference = &mark[1..];
            if mark.starts_with('@') {
                let d = Digest::parse(reference)
                    .map_err(|e| format!("invalid digest: {}", chain(&e)))?;
                (place, Some(d.to_string()))
            } else if reference.is_empty() {
                return Err("empty tag after ':'".to_owned());
            } else {
                check_ref_name(reference)?;
                (place, Some(reference.to_owned()))
            }
        }
    };
    let (bucket, prefix) = place.split_once('/').unwrap_or((place, ""));
    if bucket.is_empty() {
        return Err("no bucket: expected s3://BUCKET/PREFIX[:TAG|@DIGEST]".to_owned());
    }
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(format!(
            "bucket \"{}\": a bucket name is lower-case letters, digits, '-' and '.'",
            escape(bucket)
        ));
    }
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty() {
        for part in prefix.split('/') {
            if part.is_empty() || part == "." || part == ".." {
                return Err(format!(
                    "prefix \"{}\": empty, \".\" and \"..\" parts are not allowed",
                    escape(prefix)
                ));
            }
            if part.contains(':') {
                return Err(format!(
                    "prefix \"{}\" holds ':': the tag follows the last '/' and cannot hold '/' in an s3:// location",
                    escape(prefix)
                ));
            }
            if part.chars().any(char::is_control) {
                return Err(format!(
                    "prefix \"{}\" holds a control character",
                    escape(prefix)
                ));
            }
        }
    }
    let url = if prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    };
    Ok(Endpoint::Bucket { url, reference })
}

/// `docker-archive:PATH[:REFERENCE]` or `oci-archive:PATH[:TAG]` ([`ArchiveRef::parse`]).
fn parse_archive(input: &str) -> Result<Endpoint, String> {
    let a = ArchiveRef::parse(input).ok_or_else(|| {
        "empty archive path: expected docker-archive:PATH[:REFERENCE] or oci-archive:PATH[:TAG]"
            .to_owned()
    })?;
    if let Some(r) = &a.reference {
        if a.kind == ArchiveKind::Oci {
            check_ref_name(r)?;
        } else if r.chars().any(char::is_control) || r.contains(char::is_whitespace) {
            return Err(format!(
                "reference \"{}\": expected a Docker reference NAME[:TAG] or @N",
                escape(r)
            ));
        }
    }
    Ok(Endpoint::Archive {
        kind: a.kind,
        path: a.path,
        reference: a.reference,
    })
}

impl Endpoint {
    /// Parses `oci:PATH[:TAG|@DIGEST]` or `docker://REGISTRY/REPO[:TAG|@DIGEST]`.
    ///
    /// ```
    /// use oci_examples::transport::Endpoint;
    /// let e = Endpoint::parse("oci:./store:v1").unwrap();
    /// assert_eq!(e, Endpoint::Layout { path: "./store".into(), reference: Some("v1".into()) });
    /// let e = Endpoint::parse("oci:/tmp/a").unwrap();
    /// assert_eq!(e, Endpoint::Layout { path: "/tmp/a".into(), reference: None });
    /// // The path ends at the first ':'; a tag with '/' stays a tag.
    /// let e = Endpoint::parse("oci:dst:team/v1").unwrap();
    /// assert_eq!(e, Endpoint::Layout { path: "dst".into(), reference: Some("team/v1".into()) });
    /// assert!(Endpoint::parse("oci:dst:../../escaped").is_err());
    /// assert!(Endpoint::parse("oci:dst:").is_err());
    /// let d = "sha256:f134556c2332357993a66ac615524d5049d296cbfcc810f33df870d30505001b";
    /// let e = Endpoint::parse(&format!("oci:dir@{d}")).unwrap();
    /// assert_eq!(e.reference().as_deref(), Some(d));
    /// assert!(Endpoint::parse("oci:dir@sha256:beef").is_err());
    /// let e = Endpoint::parse("docker://127.0.0.1:5000/team/app:v1").unwrap();
    /// assert_eq!(e.reference().as_deref(), Some("v1"));
    /// assert!(Endpoint::parse("docker://a/b@sha256:short").is_err());
    /// assert!(Endpoint::parse("ftp://x").is_err());
    /// // s3://BUCKET/PREFIX: the tag or digest follows the last '/'.
    /// let e = Endpoint::parse("s3://cache/images:app").unwrap();
    /// assert_eq!(e, Endpoint::Bucket { url: "s3://cache/images".into(), reference: Some("app".into()) });
    /// let e = Endpoint::parse(&format!("s3://cache/a/b@{d}")).unwrap();
    /// assert_eq!(e, Endpoint::Bucket { url: "s3://cache/a/b".into(), reference: Some(d.into()) });
    /// assert!(Endpoint::parse("s3://").is_err());
    /// assert!(Endpoint::parse("s3:///images").is_err());
    /// assert!(Endpoint::parse("s3://Cache/images").is_err());
    /// assert!(Endpoint::parse("s3://cache/../x").is_err());
    /// // Archives, as skopeo names them: the path ends at the first ':'.
    /// let e = Endpoint::parse("docker-archive:/tmp/x.tar:app:v1").unwrap();
    /// assert_eq!(e.reference().as_deref(), Some("app:v1"));
    /// assert!(matches!(Endpoint::parse("oci-archive:y.tar").unwrap(), Endpoint::Archive { reference: None, .. }));
    /// assert!(Endpoint::parse("docker-archive:").is_err());
    /// assert!(Endpoint::parse("oci-archive:y.tar:../x").is_err());
    /// ```
    ///
    /// # Errors
    /// [`BadEndpoint`] naming the input and what is wrong.
    pub fn parse(input: &str) -> Result<Endpoint, BadEndpoint> {
        let bad = |reason: &str| BadEndpoint {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = input.strip_prefix("docker://") {
            Reference::parse(rest).map_err(|e| bad(&chain(&e)))?;
            return Ok(Endpoint::Registry {
                reference: rest.to_owned(),
            });
        }
        if let Some(rest) = input.strip_prefix("s3://") {
            return parse_bucket(rest).map_err(|r| bad(&r));
        }
        if input.starts_with("docker-archive:") || input.starts_with("oci-archive:") {
            return parse_archive(input).map_err(|r| bad(&r));
        }
        let Some(rest) = input.strip_prefix("oci:") else {
            return Err(bad(EXPECTED_ENDPOINT));
        };
        // As skopeo splits `oci:` references: the path ends at the first ':' (a path cannot
        // hold one), and what follows is the tag, never part of the path. `PATH@ALG:HEX` names
        // content by digest.
        let (before_colon, after_colon) = match rest.split_once(':') {
            Some((p, t)) => (p, Some(t)),
            None => (rest, None),
        };
        if let Some(at) = before_colon.rfind('@') {
            let alg = &before_colon[at + 1..];
            if after_colon.is_some() && matches!(alg, "sha256" | "sha512") {
                let digest = Digest::parse(&rest[at + 1..])
                    .map_err(|e| bad(&format!("invalid digest: {}", chain(&e))))?;
                if at == 0 {
                    return Err(bad("empty layout path"));
                }
                return Ok(Endpoint::Layout {
                    path: PathBuf::from(&rest[..at]),
                    reference: Some(digest.to_string()),
                });
            }
        }
        if before_colon.is_empty() {
            return Err(bad("empty layout path"));
        }
        let reference = match after_colon {
            None => None,
            Some("") => return Err(bad("empty tag after ':'")),
            Some(tag) => {
                check_ref_name(tag).map_err(|e| {
                    bad(&format!(
                        "{e} (the layout path ends at the first ':', as with skopeo)"
                    ))
                })?;
                Some(tag.to_owned())
            }
        };
        Ok(Endpoint::Layout {
            path: PathBuf::from(before_colon),
            reference,
        })
    }

    /// The location as typed, nothing escaped: for output that escapes it itself (JSON).
    /// [`Display`](fmt::Display) shows the same text escaped.
    ///
    /// ```
    /// use oci_examples::transport::Endpoint;
    /// for typed in ["oci:./s:team/v1", "oci:s", "docker://r.example:5000/a/b:v1"] {
    ///     assert_eq!(Endpoint::parse(typed).unwrap().as_typed(), typed);
    /// }
    /// let e = Endpoint::Layout { path: "a\nb".into(), reference: None };
    /// assert_eq!((e.as_typed(), e.to_string()), ("oci:a\nb".to_owned(), "oci:a\\nb".to_owned()));
    /// ```
    pub fn as_typed(&self) -> String {
        match self {
            Endpoint::Layout { path, reference } => {
                let path = path.display();
                match reference {
                    Some(r) if Digest::parse(r).is_ok() => format!("oci:{path}@{r}"),
                    Some(r) => format!("oci:{path}:{r}"),
                    None => format!("oci:{path}"),
                }
            }
            Endpoint::Registry { reference } => format!("docker://{reference}"),
            Endpoint::Bucket { url, reference } => match reference {
                Some(r) if Digest::parse(r).is_ok() => format!("{url}@{r}"),
                Some(r) => format!("{url}:{r}"),
                None => url.clone(),
            },
            Endpoint::Archive {
                kind,
                path,
                reference,
            } => match reference {
                Some(r) => format!("{kind}:{}:{r}", path.display()),
                None => format!("{kind}:{}", path.display()),
            },
        }
    }

    /// The store the location names, without its tag or digest, as typed: the layout's
    /// path, `s3://BUCKET/PREFIX`, `KIND:PATH` of an archive, the registry reference.
    ///
    /// ```
    /// use oci_examples::transport::Endpoint;
    /// assert_eq!(Endpoint::parse("oci:dir:v1").unwrap().place(), "dir");
    /// assert_eq!(Endpoint::parse("s3://b/p:v1").unwrap().place(), "s3://b/p");
    /// assert_eq!(Endpoint::parse("oci-archive:x.tar:v1").unwrap().place(), "oci-archive:x.tar");
    /// ```
    pub fn place(&self) -> String {
        match self {
            Endpoint::Layout { path, .. } => path.display().to_string(),
            Endpoint::Registry { reference } => reference.clone(),
            Endpoint::Bucket { url, .. } => url.clone(),
            Endpoint::Archive { kind, path, .. } => format!("{kind}:{}", path.display()),
        }
    }

    /// The tag or digest part, if any (a registry reference with both gives the digest).
    pub fn reference(&self) -> Option<String> {
        match self {
            Endpoint::Layout { reference, .. }
            | Endpoint::Bucket { reference, .. }
            | Endpoint::Archive { reference, .. } => reference.clone(),
            Endpoint::Registry { reference } => {
                let r = Reference::parse(reference).ok()?;
                match (r.digest(), r.tag()) {
                    (Some(d), _) => Some(d.to_string()),
                    (None, Some(t)) => Some(t.to_owned()),
                    (None, None) => None,
                }
            }
        }
    }

    /// The registry (`host[:port]`) of a registry endpoint.
    pub fn registry(&self) -> Option<String> {
        match self {
            Endpoint::Registry { reference } => Reference::parse(reference)
                .ok()
                .map(|r| r.registry().to_owned()),
            Endpoint::Layout { .. } | Endpoint::Bucket { .. } | Endpoint::Archive { .. } => None,
        }
    }
}

/// Where the examples record registry upload sessions unless `--state-dir` says otherwise
/// ([`RegistryArgs::state_dir`]):
/// `$XDG_STATE_HOME/oci-rs/uploads` (when set to an absolute path), else
/// `$HOME/.local/state/oci-rs/uploads`; `None` without a home directory (sessions then live in
/// memory only).
///
/// ```
/// let dir = oci_examples::transport::default_state_dir();
/// if let Some(d) = dir {
///     assert!(d.ends_with("oci-rs/uploads"));
/// }
/// ```
pub fn default_state_dir() -> Option<PathBuf> {
    let nonempty = |v: std::ffi::OsString| (!v.is_empty()).then(|| PathBuf::from(v));
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").and_then(nonempty)
        && state.is_absolute()
    {
        return Some(state.join("oci-rs").join("uploads"));
    }
    let home = std::env::var_os("HOME").and_then(nonempty)?;
    Some(home.join(".local/state/oci-rs/uploads"))
}

/// The registry client shared by every copy of a run (connections, tokens), configured for the
/// registries the endpoints name.
#[derive(Clone)]
pub struct Context {
    client: Option<Client>,
}

impl Context {
    /// A context for copies between `endpoints`.
    ///
    /// # Errors
    /// [`CopyError::Usage`] when the client cannot be built (bad TLS setup).
    pub fn new<'a>(
        settings: &RegistryArgs,
        endpoints: impl IntoIterator<Item = &'a Endpoint>,
    ) -> Result<Context, CopyError> {
        let registries: Vec<String> = endpoints
            .into_iter()
            .filter_map(Endpoint::registry)
            .collect();
        if registries.is_empty() {
            return Ok(Context { client: None });
        }
        Context::with_config(Context::config(settings, &registries))
    }

    /// The client configuration [`Context::new`] uses for `registries` (`host[:port]`).
    ///
    /// ```
    /// use clap::Parser;
    /// #[derive(Parser)]
    /// struct Cli {
    ///     #[command(flatten)]
    ///     registry: oci_examples::cli::RegistryArgs,
    /// }
    /// let cli = Cli::try_parse_from(["x", "--plain-http"]).unwrap();
    /// let c = oci_examples::transport::Context::config(&cli.registry, &["127.0.0.1:5000".to_owned()]);
    /// assert_eq!(c.plain_http, ["127.0.0.1:5000"]);
    /// let ctx = oci_examples::transport::Context::with_config(c).unwrap();
    /// assert!(ctx.client().is_some());
    /// ```
    pub fn config(settings: &RegistryArgs, registries: &[String]) -> ClientConfig {
        let mut config = ClientConfig::default();
        config.upload_state_dir = settings.state_dir.clone().or_else(default_state_dir);
        if let Some(max) = settings.monolithic_max {
            config.monolithic_max = max.0;
        }
        if let Some(max) = settings.probe_max {
            config.probe_upload_max = max.0;
        }
        for r in registries {
            if settings.plain_http && !config.plain_http.contains(r) {
                config = config.with_plain_http(r.clone());
            }
            if let Some(max) = settings.chunked_upload {
                config = config.with_chunked_uploads(r.clone(), max.0);
            }
            if let Some(c) = &settings.creds {
                config =
                    config.with_credential(r.clone(), Credential::basic(c.user(), c.password()));
            }
        }
        config
    }

    /// A context whose client has `config` (sync's YAML input sets credentials and TLS per
    /// registry); see [`Context::config`] for an example.
    ///
    /// # Errors
    /// [`CopyError::Usage`] when the client cannot be built (bad TLS setup).
    pub fn with_config(config: ClientConfig) -> Result<Context, CopyError> {
        let client = Client::new(config).map_err(|e| {
            CopyError::Usage(format!("cannot set up the registry client: {}", chain(&e)))
        })?;
        Ok(Context {
            client: Some(client),
        })
    }

    /// The registry client, when the context has one (see [`Context::config`]).
    pub fn client(&self) -> Option<&Client> {
        self.client.as_ref()
    }
}

impl Context {
    /// The sources to fetch the blobs of `src` from in pieces: the mirrors `--mirror` and
    /// `--registries-conf` give for the source's reference, then the source registry last; an
    /// empty list when `src` is not a registry or no mirror applies (the copy then reads the
    /// source alone). Mirrors named with `--mirror` get `--plain-http` and `--creds` as the
    /// source does.
    ///
    /// ```
    /// use oci_examples::cli::{MirrorArgs, RegistryArgs};
    /// use oci_examples::transport::{Context, Endpoint};
    /// let src = Endpoint::parse("docker://127.0.0.1:5000/app:v1").unwrap();
    /// let settings = RegistryArgs { plain_http: true, ..RegistryArgs::default() };
    /// let ctx = Context::new(&settings, [&src]).unwrap();
    /// let mirrors = MirrorArgs { mirror: vec!["127.0.0.1:5001".into()], registries_conf: None };
    /// let names: Vec<String> = ctx
    ///     .blob_sources(&src, &settings, &mirrors)
    ///     .unwrap()
    ///     .iter()
    ///     .map(|s| s.source_name())
    ///     .collect();
    /// assert_eq!(names, ["127.0.0.1:5001/app", "127.0.0.1:5000/app"]);
    /// assert!(ctx.blob_sources(&src, &settings, &MirrorArgs::default()).unwrap().is_empty());
    /// ```
    ///
    /// # Errors
    /// [`CopyError::Usage`] for a registries.conf that cannot be read or parsed, a source the
    /// configuration blocks, or a client that cannot be built.
    pub fn blob_sources(
        &self,
        src: &Endpoint,
        settings: &RegistryArgs,
        mirrors: &crate::cli::MirrorArgs,
    ) -> Result<Vec<std::sync::Arc<dyn oci_store::RangeSource>>, CopyError> {
        use oci_distribution_client::{Mirror, MirrorConfig, RegistryMirrors, RegistrySource};
        let (Endpoint::Registry { reference }, Some(client)) = (src, &self.client) else {
            return Ok(Vec::new());
        };
        if mirrors.mirror.is_empty() && mirrors.registries_conf.is_none() {
            return Ok(Vec::new());
        }
        let usage = |e: &(dyn std::error::Error + 'static)| CopyError::Usage(chain(e));
        let r = Reference::parse(reference).map_err(|e| usage(&e))?;
        let mut conf = match &mirrors.registries_conf {
            Some(path) => MirrorConfig::from_registries_conf_file(path).map_err(|e| usage(&e))?,
            None => MirrorConfig::new(),
        };
        if !mirrors.mirror.is_empty() {
            let registry = r.registry().to_owned();
            let mut entry = RegistryMirrors::new(registry.clone());
            if settings.plain_http {
                entry = entry.with_insecure(true);
            }
            for m in &mirrors.mirror {
                let mut mirror = Mirror::new(m.clone()).with_insecure(settings.plain_http);
                if let Some(c) = &settings.creds {
                    mirror = mirror.with_credential(Credential::basic(c.user(), c.password()));
                }
                entry = entry.with_mirror(mirror);
            }
            match conf.registries.iter_mut().find(|e| e.prefix == registry) {
                // The mirrors named on the command line first.
                Some(e) => {
                    let from_file = std::mem::take(&mut e.mirrors);
                    e.mirrors = entry.mirrors;
                    e.mirrors.extend(from_file);
                }
                None => conf = conf.with_registry(entry),
            }
        }
        let client =
            Client::new(client.config().clone().with_mirrors(conf)).map_err(|e| usage(&e))?;
        let places = client.pull_sources(&r).map_err(|e| usage(&e))?;
        if places.len() < 2 {
            return Ok(Vec::new());
        }
        Ok(places
            .into_iter()
            .map(|p| {
                std::sync::Arc::new(RegistrySource::new(p.repository))
                    as std::sync::Arc<dyn oci_store::RangeSource>
            })
            .collect())
    }
}

/// A store images are read from: every [`Opened`] store is one.
pub trait Source: ReadStore + TagStore {}

impl<T: ReadStore + TagStore + ?Sized> Source for T {}

/// An open store of any kind.
pub enum Opened {
    /// An OCI layout.
    Layout(LayoutStore),
    /// A registry repository.
    Registry(Repository),
    /// A layout under a bucket's prefix.
    Bucket(BucketStore),
    /// An archive read (a source).
    ArchiveReader(ArchiveReader),
    /// An archive being written (a destination): visible once [`ArchiveWriter::finish`]ed.
    ArchiveWriter(ArchiveWriter),
}

impl Opened {
    /// The store to read from.
    pub fn source(&self) -> &dyn Source {
        match self {
            Opened::Layout(s) => s,
            Opened::Registry(r) => r,
            Opened::Bucket(b) => b,
            Opened::ArchiveReader(r) => r,
            Opened::ArchiveWriter(w) => w,
        }
    }

    /// The store to write to; `None` for an archive opened for reading.
    pub fn store(&self) -> Option<&dyn Store> {
        match self {
            Opened::Layout(s) => Some(s),
            Opened::Registry(r) => Some(r),
            Opened::Bucket(b) => Some(b),
            Opened::ArchiveWriter(w) => Some(w),
            Opened::ArchiveReader(_) => None,
        }
    }

    /// The store as a store that manages its content (leases, GC), when it is one: a copy
    /// into it holds a lease ([`oci_store::copy_leased`]).
    pub fn managed(&self) -> Option<&dyn ManagedStore> {
        match self {
            Opened::Layout(s) => Some(s),
            Opened::Bucket(b) => Some(b),
            Opened::Registry(_) | Opened::ArchiveReader(_) | Opened::ArchiveWriter(_) => None,
        }
    }
}

/// Opens the store of `endpoint`: a destination (`create`) layout or bucket prefix is created
/// when missing and a destination archive is started (it must not exist); a source layout is
/// opened read-only, a source bucket prefix must hold a layout, a source archive is read.
///
/// # Errors
/// Store errors naming the path; reference errors naming the reference.
pub async fn open(endpoint: &Endpoint, create: bool, ctx: &Context) -> Result<Opened, CopyError> {
    match endpoint {
        Endpoint::Layout { .. } | Endpoint::Bucket { .. } | Endpoint::Archive { .. } => {
            open_local(endpoint, create)
                .await
                .map_err(|e| CopyError::store(endpoint, e))
        }
        Endpoint::Registry { reference } => {
            let client = match &ctx.client {
                Some(c) => c.clone(),
                None => Context::new(&RegistryArgs::default(), [endpoint])?
                    .client
                    .ok_or_else(|| CopyError::Usage(format!("{endpoint}: no registry")))?,
            };
            let usage = |e: &(dyn std::error::Error + 'static)| {
                CopyError::Usage(format!("{endpoint}: {}", chain(e)))
            };
            let r = Reference::parse(reference).map_err(|e| usage(&e))?;
            Ok(Opened::Registry(
                client.repository(&r).map_err(|e| usage(&e))?,
            ))
        }
    }
}

/// Opens the store of a location that is not a registry, as [`open`] does; a registry
/// location is refused ([`StoreError::Unsupported`]).
///
/// # Errors
/// The store's errors (their chain names the path or bucket).
pub async fn open_local(endpoint: &Endpoint, create: bool) -> Result<Opened, StoreError> {
    match endpoint {
        Endpoint::Layout { path, .. } => {
            let opts = if create {
                LayoutOptions::create()
            } else {
                LayoutOptions::read_only()
            };
            LayoutStore::open_with(path, &opts)
                .await
                .map(Opened::Layout)
        }
        Endpoint::Bucket { url, .. } => {
            let opts = if create {
                BucketOptions::create()
            } else {
                BucketOptions::default()
            };
            BucketStore::open_url(url, &opts).await.map(Opened::Bucket)
        }
        Endpoint::Archive { kind, path, .. } => {
            let opts = ArchiveOptions::default();
            if create {
                ArchiveWriter::create_with(path, *kind, &opts)
                    .await
                    .map(Opened::ArchiveWriter)
            } else {
                ArchiveReader::open_with(path, *kind, &opts)
                    .await
                    .map(Opened::ArchiveReader)
            }
        }
        Endpoint::Registry { .. } => Err(StoreError::Unsupported {
            operation: "opening a registry here",
        }),
    }
}

/// Opens the managed store (`gc`, `fsck`) at `endpoint`, never creating it: a layout
/// read-only when `read_only` (nothing on disk changes, not even the state directory), a
/// bucket's prefix (which must hold a layout).
///
/// # Errors
/// The store's errors; [`StoreError::Unsupported`] for a location that is not a layout or
/// a bucket's prefix (an archive, a registry).
pub async fn open_managed(
    endpoint: &Endpoint,
    read_only: bool,
) -> Result<Box<dyn ManagedStore>, StoreError> {
    match endpoint {
        Endpoint::Layout { path, .. } => {
            let opts = if read_only {
                LayoutOptions::read_only()
            } else {
                LayoutOptions::default()
            };
            Ok(Box::new(LayoutStore::open_with(path, &opts).await?))
        }
        Endpoint::Bucket { url, .. } => Ok(Box::new(
            BucketStore::open_url(url, &BucketOptions::default()).await?,
        )),
        Endpoint::Archive { .. } | Endpoint::Registry { .. } => Err(StoreError::Unsupported {
            operation: "collecting or checking a store that is not a layout or a bucket",
        }),
    }
}

/// The reference a source location given without a tag or digest means: a registry's
/// `latest`, an archive's only image ([`ArchiveReader::default_reference`]), a layout's or a
/// bucket's [`default_tag`]. With one given, that one.
///
/// # Errors
/// [`NoDefaultTag`]: the tags could not be read, or none or several images and no reference.
pub async fn source_reference(
    endpoint: &Endpoint,
    opened: &Opened,
) -> Result<String, NoDefaultTag> {
    if let Some(r) = endpoint.reference() {
        return Ok(r);
    }
    match opened {
        Opened::Registry(_) => Ok("latest".to_owned()),
        Opened::ArchiveReader(r) => r.default_reference().ok_or_else(|| {
            let names: Vec<String> = r
                .images()
                .iter()
                .enumerate()
                .map(|(i, img)| match img.tags.as_slice() {
                    [] => format!("@{i}"),
                    tags => tags.join(" "),
                })
                .collect();
            NoDefaultTag::Ambiguous(format!(
                "{} holds {} images: name one with {}:PATH:REFERENCE; images: {}",
                Escaped(endpoint.place()),
                names.len(),
                r.kind(),
                escape(&names.join(", "))
            ))
        }),
        _ => default_tag(opened.source(), Path::new(&endpoint.place())).await,
    }
}

/// A failed copy, naming what was involved.
#[derive(Debug)]
pub enum CopyError {
    /// Bad command-line input.
    Usage(String),
    /// A store operation failed on `endpoint` before the copy started (opening it, reading
    /// its tags).
    Store {
        /// The location involved.
        endpoint: String,
        /// The error (its chain names the digests).
        source: Box<StoreError>,
    },
    /// The copy failed or was cancelled; `endpoint` is the side that failed.
    Copy {
        /// The location of the side that failed (`SRC -> DST` for a cancelled copy).
        endpoint: String,
        /// The error, with the report of what was done.
        source: Box<oci_store::CopyError>,
    },
}

impl CopyError {
    fn store(endpoint: &Endpoint, source: StoreError) -> CopyError {
        CopyError::Store {
            endpoint: endpoint.to_string(),
            source: Box::new(source),
        }
    }

    fn copy(src: &Endpoint, dst: &Endpoint, source: oci_store::CopyError) -> CopyError {
        let endpoint = match source.side() {
            Some(CopySide::Source) => src.to_string(),
            Some(CopySide::Destination) => dst.to_string(),
            _ => format!("{src} -> {dst}"),
        };
        CopyError::Copy {
            endpoint,
            source: Box::new(source),
        }
    }

    /// The report of a copy that failed or was cancelled.
    pub fn report(&self) -> Option<&CopyReport> {
        match self {
            CopyError::Copy { source, .. } => Some(source.report()),
            CopyError::Usage(_) | CopyError::Store { .. } => None,
        }
    }

    /// Whether running the copy again may succeed
    /// ([`oci_store::CopyError::is_transient`], [`StoreError::is_transient`]).
    pub fn is_transient(&self) -> bool {
        match self {
            CopyError::Usage(_) => false,
            CopyError::Store { source, .. } => source.is_transient(),
            CopyError::Copy { source, .. } => source.is_transient(),
        }
    }

    /// Whether the copy was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, CopyError::Copy { source, .. } if source.is_cancelled())
    }
}

impl fmt::Display for CopyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CopyError::Usage(m) => f.write_str(m),
            CopyError::Store { endpoint, source } => {
                write!(f, "{endpoint}: {}", chain(source))
            }
            CopyError::Copy { endpoint, source } => {
                write!(f, "{endpoint}: {}", chain(source))
            }
        }
    }
}

impl std::error::Error for CopyError {}

pub use crate::chain;

/// Why an `oci:PATH` without a tag names no image ([`default_tag`]).
#[derive(Debug)]
pub enum NoDefaultTag {
    /// The layout's tags could not be read.
    Store(StoreError),
    /// No tag, or several and none `latest`: the message says which and how to name one.
    Ambiguous(String),
}

impl fmt::Display for NoDefaultTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoDefaultTag::Store(e) => f.write_str(&chain(e)),
            NoDefaultTag::Ambiguous(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for NoDefaultTag {}

/// The tag that `oci:PATH`, given without `:TAG` or `@DIGEST`, means, for every example that
/// reads an image from a layout (`copy`, `sync`, `inspect`): the layout's only tag; with
/// several, `latest` when one is so named; otherwise an error listing the tags.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use oci_examples::transport::default_tag;
/// use oci_store::{MemoryStore, TagStore, WriteStore};
/// let store = MemoryStore::new();
/// assert!(default_tag(&store, "s".as_ref()).await.is_err()); // no tag
/// let index = oci_manifest::build::IndexBuilder::oci().build().unwrap();
/// store.push_bytes(&index.descriptor(), index.raw().clone()).await.unwrap();
/// store.tag(&index.descriptor(), "v1").await.unwrap();
/// assert_eq!(default_tag(&store, "s".as_ref()).await.unwrap(), "v1");
/// store.tag(&index.descriptor(), "v2").await.unwrap();
/// assert!(default_tag(&store, "s".as_ref()).await.is_err()); // which one?
/// store.tag(&index.descriptor(), "latest").await.unwrap();
/// assert_eq!(default_tag(&store, "s".as_ref()).await.unwrap(), "latest");
/// # });
/// ```
///
/// # Errors
/// [`NoDefaultTag`].
pub async fn default_tag<S: TagStore + ?Sized>(
    store: &S,
    path: &std::path::Path,
) -> Result<String, NoDefaultTag> {
    let tags = store.tags().await.map_err(NoDefaultTag::Store)?;
    let path = Escaped(path.display());
    match tags.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(NoDefaultTag::Ambiguous(format!(
            "{path} holds no tagged image: name one with oci:PATH@DIGEST"
        ))),
        many if many.iter().any(|t| t == "latest") => Ok("latest".to_owned()),
        many => Err(NoDefaultTag::Ambiguous(format!(
            "{path} holds {} tagged images and none is \"latest\": name one with oci:PATH:TAG; tags: {}",
            many.len(),
            escape(&many.join(", "))
        ))),
    }
}

/// Copies `src` to `dst` with `options`. The source reference defaults to `latest` for a
/// registry and to [`default_tag`] for a layout; the destination tag defaults to the source's
/// tag (or `latest` for a digest source: a layout's content must be reachable from a tag). A
/// local destination is written under a lease ([`oci_store::copy_leased`]), and only once the
/// source reference resolved: a copy from a tag that does not exist creates nothing.
///
/// # Errors
/// [`CopyError`] naming the location and, through the store error, the digests involved.
pub async fn copy(
    src: &Endpoint,
    dst: &Endpoint,
    options: &CopyOptions,
    ctx: &Context,
) -> Result<CopyReport, CopyError> {
    if let Some(r) = dst.reference()
        && Digest::parse(&r).is_ok()
    {
        return Err(CopyError::Usage(format!(
            "{dst}: a destination names a tag, not a digest (the digest is the content's)"
        )));
    }
    let source = open(src, false, ctx).await?;
    let from = source.source();
    let src_ref = source_reference(src, &source).await.map_err(|e| match e {
        NoDefaultTag::Store(e) => CopyError::store(src, e),
        NoDefaultTag::Ambiguous(m) => CopyError::Usage(m),
    })?;
    let dst_tag = match (dst.reference(), dst) {
        (Some(r), _) => r,
        (
            None,
            Endpoint::Archive {
                kind: ArchiveKind::Docker,
                ..
            },
        ) => docker_name(src, &src_ref).ok_or_else(|| {
            CopyError::Usage(format!(
                "{dst}: a docker-archive needs a Docker reference for the image, as in \
                 docker-archive:PATH:app:v1"
            ))
        })?,
        (None, _) if Digest::parse(&src_ref).is_ok() => "latest".to_owned(),
        (None, _) => src_ref.clone(),
    };
    let src_ref = single_platform(src, dst, from, src_ref, options).await?;
    if !matches!(dst, Endpoint::Registry { .. }) {
        // Check the tag and resolve the source before the destination is created.
        // Errors that a retry cannot mend end here; others (I/O, network, content damaged in
        // flight) are left to the copy, which retries them within its budget: so this look
        // runs under an empty budget of its own, and the client does not retry it either.
        if !matches!(dst, Endpoint::Archive { .. }) {
            oci_store::validate_tag(&dst_tag).map_err(|e| CopyError::store(dst, e))?;
        }
        let look = oci_store::resolve_reference(from, &src_ref);
        match oci_store::RetryBudget::new(0).scope(look).await {
            Err(e) if !e.is_transient() && !e.is_verification_failure() => {
                return Err(CopyError::store(src, e));
            }
            _ => {}
        }
    }
    // A layout this run creates is removed again when the copy fails before storing anything
    // in it (a platform that does not match, say); one that held anything is kept (a re-run
    // resumes from it), and one that existed before is never touched.
    let created = match dst {
        Endpoint::Layout { path, .. } if std::fs::symlink_metadata(path).is_err() => {
            Some(path.clone())
        }
        _ => None,
    };
    let target = open(dst, true, ctx).await?;
    let result = match (target.managed(), target.store()) {
        (Some(d), _) => oci_store::copy_leased(from, &src_ref, d, Some(&dst_tag), options).await,
        (None, Some(t)) => oci_store::copy(from, &src_ref, t, Some(&dst_tag), options).await,
        (None, None) => {
            return Err(CopyError::Usage(format!("{dst}: cannot be written")));
        }
    };
    if result.is_err()
        && let Some(path) = created
        && holds_no_blob(&path)
    {
        drop(target);
        let _ = std::fs::remove_dir_all(&path);
        return result.map_err(|e| CopyError::copy(src, dst, e));
    }
    let report = result.map_err(|e| CopyError::copy(src, dst, e))?;
    // An archive appears at its path only once finished; one that failed is dropped, and
    // with it everything it wrote.
    if let Opened::ArchiveWriter(w) = &target {
        w.finish().await.map_err(|e| CopyError::store(dst, e))?;
    }
    Ok(report)
}

/// The source reference a copy into a docker-archive reads: a docker-archive holds
/// single-platform images, so with one `--platform` and a source that is an index, that
/// platform's manifest (as skopeo copies the matching image of an index); else `src_ref`.
async fn single_platform(
    src: &Endpoint,
    dst: &Endpoint,
    from: &dyn Source,
    src_ref: String,
    options: &CopyOptions,
) -> Result<String, CopyError> {
    let (
        Endpoint::Archive {
            kind: ArchiveKind::Docker,
            ..
        },
        [platform],
    ) = (dst, options.platforms.as_slice())
    else {
        return Ok(src_ref);
    };
    let root = oci_store::resolve_reference(from, &src_ref)
        .await
        .map_err(|e| CopyError::store(src, e))?;
    if !oci_manifest::media_types::is_index(&root.media_type) {
        return Ok(src_ref);
    }
    let index = from
        .fetch_manifest(&root)
        .await
        .map_err(|e| CopyError::store(src, e))?;
    let entry = oci_manifest::platform::select(&index, platform)
        .map_err(|e| CopyError::Usage(format!("{src}: {}", chain(&e))))?;
    Ok(entry.digest.to_string())
}

/// The Docker reference (`NAME:TAG`) a docker-archive destination without one gets: the
/// source's full name, when it has one (a registry image named by tag, a named image of a
/// docker-archive).
fn docker_name(src: &Endpoint, src_ref: &str) -> Option<String> {
    match src {
        Endpoint::Registry { reference } => {
            let r = Reference::parse(reference).ok()?;
            let tag = r.tag().unwrap_or("latest");
            (Digest::parse(src_ref).is_err())
                .then(|| format!("{}/{}:{tag}", r.registry(), r.repository()))
        }
        Endpoint::Archive {
            kind: ArchiveKind::Docker,
            ..
        } if !src_ref.starts_with('@') && Digest::parse(src_ref).is_err() => {
            Some(src_ref.to_owned())
        }
        _ => None,
    }
}

/// Whether the layout at `path` has no blob file at all (every `blobs/<alg>` empty or missing).
fn holds_no_blob(path: &Path) -> bool {
    let Ok(algs) = std::fs::read_dir(path.join("blobs")) else {
        return true;
    };
    algs.flatten()
        .all(|alg| std::fs::read_dir(alg.path()).is_ok_and(|mut d| d.next().is_none()))
}
