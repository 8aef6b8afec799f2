//! Image locations on the command line (`oci:PATH[:TAG|@DIGEST]`, `docker://REGISTRY/REPO...`)
//! and the copy between two of them, shared by the `copy` and `sync` examples.

use std::fmt;
use std::path::{Path, PathBuf};

use oci_digest::Digest;
use oci_distribution_client::{Client, ClientConfig, Credential, Reference, Repository};
use oci_manifest::convert::Flavor;
use oci_store::{
    CopyOptions, CopyReport, CopySide, LayoutOptions, LayoutStore, ManagedStore, Store, StoreError,
    TagStore, VerifyMode,
};

use crate::{Escaped, escape};

/// Where an image is: an OCI layout directory or a registry repository.
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
}

impl fmt::Display for Endpoint {
    /// The location as typed, its path and reference escaped ([`crate::escape`]): they may come
    /// from a list file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Layout { path, reference } => {
                write!(f, "oci:{}", Escaped(path.display()))?;
                match reference {
                    Some(r) if Digest::parse(r).is_ok() => write!(f, "@{r}"),
                    Some(r) => write!(f, ":{}", Escaped(r)),
                    None => Ok(()),
                }
            }
            Endpoint::Registry { reference } => write!(f, "docker://{}", Escaped(reference)),
        }
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

impl Endpoint {
    /// Parses `oci:PATH` naming a whole layout (for gc, fsck): no tag, no digest, no registry.
    ///
    /// ```
    /// use oci_examples::transport::Endpoint;
    /// assert_eq!(Endpoint::layout_dir("oci:./store").unwrap(), std::path::PathBuf::from("./store"));
    /// assert!(Endpoint::layout_dir("oci:./store:v1").is_err());
    /// assert!(Endpoint::layout_dir("docker://r.example/a").is_err());
    /// ```
    pub fn layout_dir(input: &str) -> Result<PathBuf, String> {
        match Endpoint::parse(input) {
            Ok(Endpoint::Layout {
                path,
                reference: None,
            }) => Ok(path),
            Ok(Endpoint::Layout {
                reference: Some(_), ..
            }) => Err(format!(
                "expected oci:PATH of a whole layout, without a tag or digest, got {input:?}"
            )),
            Ok(Endpoint::Registry { .. }) => {
                Err(format!("expected oci:PATH, got a registry: {input:?}"))
            }
            Err(e) => Err(e.to_string()),
        }
    }

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
        let Some(rest) = input.strip_prefix("oci:") else {
            return Err(bad(
                "expected oci:PATH[:TAG|@DIGEST] or docker://REGISTRY/REPO[:TAG|@DIGEST]",
            ));
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

    /// The tag or digest part, if any (a registry reference with both gives the digest).
    pub fn reference(&self) -> Option<String> {
        match self {
            Endpoint::Layout { reference, .. } => reference.clone(),
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
            Endpoint::Layout { .. } => None,
        }
    }
}

/// Settings for registries, from the command line.
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    /// Talk plain HTTP (loopback test registries) to the registries named.
    pub plain_http: bool,
    /// `USER:PASS` for every registry named; else Docker's `config.json`.
    pub creds: Option<(String, String)>,
    /// `--state-dir DIR`: where upload sessions to registries are recorded so a killed push
    /// resumes in the next run; `None` uses [`default_state_dir`].
    pub state_dir: Option<PathBuf>,
}

/// Where the examples record registry upload sessions unless `--state-dir` says otherwise:
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

/// Applies one of the command-line options the `copy` and `sync` examples share: `--platform
/// OS/ARCH[/VARIANT]`, `--all`, `--plain-http`, `--creds USER:PASS`, `--verify-existing`,
/// `--referrers`, `--format oci|docker`, `--retries N` (the copy's retry budget: retries in
/// all, shared by all its content, [`CopyOptions::retries`]), `--state-dir DIR`. `value` gives
/// the option's value for those that take one. Returns `Ok(false)` when `flag` is none of them.
///
/// ```
/// use oci_examples::transport::{shared_option, RegistrySettings};
/// let (mut o, mut s) = (oci_store::CopyOptions::default(), RegistrySettings::default());
/// assert!(shared_option("--platform", &mut || Ok("linux/arm64".into()), &mut o, &mut s).unwrap());
/// assert_eq!(o.platforms.len(), 1);
/// assert!(!shared_option("--jobs", &mut || Ok("1".into()), &mut o, &mut s).unwrap());
/// assert!(shared_option("--format", &mut || Ok("zip".into()), &mut o, &mut s).is_err());
/// assert!(shared_option("--state-dir", &mut || Ok("/tmp/up".into()), &mut o, &mut s).unwrap());
/// assert_eq!(s.state_dir.as_deref(), Some(std::path::Path::new("/tmp/up")));
/// assert!(shared_option("--retries", &mut || Ok("7".into()), &mut o, &mut s).unwrap());
/// assert_eq!(o.retries, 7);
/// ```
///
/// # Errors
/// A message naming the option and the bad value.
pub fn shared_option(
    flag: &str,
    value: &mut dyn FnMut() -> Result<String, String>,
    options: &mut CopyOptions,
    settings: &mut RegistrySettings,
) -> Result<bool, String> {
    match flag {
        "--platform" => {
            let v = value()?;
            let p =
                oci_manifest::platform::parse(&v).map_err(|e| format!("--platform {v:?}: {e}"))?;
            options.platforms.push(p);
        }
        "--all" => options.platforms.clear(),
        "--plain-http" => settings.plain_http = true,
        "--creds" => {
            let v = value()?;
            let (u, p) = v.split_once(':').ok_or("--creds expects USER:PASS")?;
            settings.creds = Some((u.to_owned(), p.to_owned()));
        }
        "--verify-existing" => options.verify = VerifyMode::Range,
        "--referrers" => options.include_referrers = true,
        "--format" => {
            options.format = match value()?.as_str() {
                "oci" => Some(Flavor::Oci),
                "docker" => Some(Flavor::Docker),
                other => return Err(format!("--format {other:?}: expected oci or docker")),
            }
        }
        "--state-dir" => {
            let v = value()?;
            if v.is_empty() {
                return Err("--state-dir needs a directory".to_owned());
            }
            settings.state_dir = Some(PathBuf::from(v));
        }
        "--retries" => {
            let v = value()?;
            options.retries = v
                .parse()
                .map_err(|_| format!("--retries \"{}\": not a number", escape(&v)))?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Parses the value of a count option that must be at least 1 (`--jobs`, `--images`): 0 would
/// mean no transfer could ever start.
///
/// ```
/// use oci_examples::transport::positive;
/// assert_eq!(positive("--jobs", "3"), Ok(3));
/// assert!(positive("--jobs", "0").unwrap_err().contains("at least 1"));
/// assert!(positive("--jobs", "x").is_err());
/// ```
///
/// # Errors
/// A message naming the option and the value.
pub fn positive(flag: &str, value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err(format!("{flag} 0: must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{flag} \"{}\": not a number", escape(value))),
    }
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
        settings: &RegistrySettings,
        endpoints: impl IntoIterator<Item = &'a Endpoint>,
    ) -> Result<Context, CopyError> {
        let registries: Vec<String> = endpoints
            .into_iter()
            .filter_map(Endpoint::registry)
            .collect();
        if registries.is_empty() {
            return Ok(Context { client: None });
        }
        let mut config = ClientConfig::default();
        config.upload_state_dir = settings.state_dir.clone().or_else(default_state_dir);
        for r in &registries {
            if settings.plain_http && !config.plain_http.contains(r) {
                config = config.with_plain_http(r.clone());
            }
            if let Some((u, p)) = &settings.creds {
                config = config.with_credential(r.clone(), Credential::basic(u, p));
            }
        }
        let client = Client::new(config).map_err(|e| {
            CopyError::Usage(format!("cannot set up the registry client: {}", chain(&e)))
        })?;
        Ok(Context {
            client: Some(client),
        })
    }
}

/// An open store of either kind.
pub enum Opened {
    /// An OCI layout.
    Layout(LayoutStore),
    /// A registry repository.
    Registry(Repository),
}

impl Opened {
    /// The store as a trait object.
    pub fn store(&self) -> &dyn Store {
        match self {
            Opened::Layout(s) => s,
            Opened::Registry(r) => r,
        }
    }

    /// The store as a store that manages its content (leases, GC), when it is one: a copy
    /// into it holds a lease ([`oci_store::copy_leased`]).
    pub fn managed(&self) -> Option<&dyn ManagedStore> {
        match self {
            Opened::Layout(s) => Some(s),
            Opened::Registry(_) => None,
        }
    }
}

/// Opens the store of `endpoint`: a destination (`create`) layout is created when missing, a
/// source layout is opened read-only (nothing in it is created or changed).
///
/// # Errors
/// Store errors naming the path; reference errors naming the reference.
pub async fn open(endpoint: &Endpoint, create: bool, ctx: &Context) -> Result<Opened, CopyError> {
    match endpoint {
        Endpoint::Layout { path, .. } => {
            let opts = if create {
                LayoutOptions::create()
            } else {
                LayoutOptions::read_only()
            };
            let store = LayoutStore::open_with(path, &opts)
                .await
                .map_err(|e| CopyError::store(endpoint, e))?;
            Ok(Opened::Layout(store))
        }
        Endpoint::Registry { reference } => {
            let client = match &ctx.client {
                Some(c) => c.clone(),
                None => Context::new(&RegistrySettings::default(), [endpoint])?
                    .client
                    .ok_or_else(|| CopyError::Usage(format!("{endpoint}: no registry")))?,
            };
            let usage = |e: oci_distribution_client::Error| {
                CopyError::Usage(format!("{endpoint}: {}", chain(&e)))
            };
            let r = Reference::parse(reference).map_err(usage)?;
            Ok(Opened::Registry(client.repository(&r).map_err(usage)?))
        }
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
    let from = source.store();
    let src_ref = match (src.reference(), src) {
        (Some(r), _) => r,
        (None, Endpoint::Layout { path, .. }) => {
            default_tag(from, path).await.map_err(|e| match e {
                NoDefaultTag::Store(e) => CopyError::store(src, e),
                NoDefaultTag::Ambiguous(m) => CopyError::Usage(m),
            })?
        }
        (None, Endpoint::Registry { .. }) => "latest".to_owned(),
    };
    let dst_tag = match dst.reference() {
        Some(r) => r,
        None if Digest::parse(&src_ref).is_ok() => "latest".to_owned(),
        None => src_ref.clone(),
    };
    if matches!(dst, Endpoint::Layout { .. }) {
        // Check the tag and resolve the source before the destination layout is created.
        // Errors that a retry cannot mend end here; others (I/O, network, content damaged in
        // flight) are left to the copy, which retries them within its budget: so this look
        // runs under an empty budget of its own, and the client does not retry it either.
        oci_store::validate_tag(&dst_tag).map_err(|e| CopyError::store(dst, e))?;
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
    let result = match target.managed() {
        Some(d) => oci_store::copy_leased(from, &src_ref, d, Some(&dst_tag), options).await,
        None => oci_store::copy(from, &src_ref, target.store(), Some(&dst_tag), options).await,
    };
    if result.is_err()
        && let Some(path) = created
        && holds_no_blob(&path)
    {
        drop(target);
        let _ = std::fs::remove_dir_all(&path);
    }
    result.map_err(|e| CopyError::copy(src, dst, e))
}

/// Whether the layout at `path` has no blob file at all (every `blobs/<alg>` empty or missing).
fn holds_no_blob(path: &Path) -> bool {
    let Ok(algs) = std::fs::read_dir(path.join("blobs")) else {
        return true;
    };
    algs.flatten()
        .all(|alg| std::fs::read_dir(alg.path()).is_ok_and(|mut d| d.next().is_none()))
}
