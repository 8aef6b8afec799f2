//! Image locations on the command line (`oci:PATH[:TAG|@DIGEST]`, `docker://REGISTRY/REPO...`)
//! and the copy between two of them, shared by the `copy` and `sync` examples.

use std::fmt;
use std::path::PathBuf;

use oci_digest::Digest;
use oci_store::{CopyOptions, CopyReport, LayoutOptions, LayoutStore, StoreError};

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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Layout { path, reference } => {
                write!(f, "oci:{}", path.display())?;
                match reference {
                    Some(r) if Digest::parse(r).is_ok() => write!(f, "@{r}"),
                    Some(r) => write!(f, ":{r}"),
                    None => Ok(()),
                }
            }
            Endpoint::Registry { reference } => write!(f, "docker://{reference}"),
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
        write!(f, "{:?}: {}", self.input, self.reason)
    }
}

impl std::error::Error for BadEndpoint {}

impl Endpoint {
    /// Parses `oci:PATH[:TAG|@DIGEST]` or `docker://REGISTRY/REPO[:TAG|@DIGEST]`.
    ///
    /// ```
    /// use oci_examples::transport::Endpoint;
    /// let e = Endpoint::parse("oci:./store:v1").unwrap();
    /// assert_eq!(e, Endpoint::Layout { path: "./store".into(), reference: Some("v1".into()) });
    /// let e = Endpoint::parse("oci:/tmp/a").unwrap();
    /// assert_eq!(e, Endpoint::Layout { path: "/tmp/a".into(), reference: None });
    /// assert!(Endpoint::parse("docker://127.0.0.1:5000/app:v1").is_ok());
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
            if rest.is_empty() || !rest.contains('/') && !rest.contains('.') && rest.len() < 2 {
                return Err(bad("expected docker://REGISTRY/REPO[:TAG|@DIGEST]"));
            }
            return Ok(Endpoint::Registry {
                reference: rest.to_owned(),
            });
        }
        let Some(rest) = input.strip_prefix("oci:") else {
            return Err(bad(
                "expected oci:PATH[:TAG|@DIGEST] or docker://REGISTRY/REPO[:TAG|@DIGEST]",
            ));
        };
        if rest.is_empty() {
            return Err(bad("empty layout path"));
        }
        if let Some(at) = rest.rfind('@') {
            let digest = &rest[at + 1..];
            if Digest::parse(digest).is_ok() {
                return Ok(Endpoint::Layout {
                    path: PathBuf::from(&rest[..at]),
                    reference: Some(digest.to_owned()),
                });
            }
        }
        match rest.rfind(':') {
            Some(c) if !rest[c + 1..].contains('/') => {
                let tag = &rest[c + 1..];
                oci_store::validate_tag(tag).map_err(|e| bad(&e.to_string()))?;
                if c == 0 {
                    return Err(bad("empty layout path"));
                }
                Ok(Endpoint::Layout {
                    path: PathBuf::from(&rest[..c]),
                    reference: Some(tag.to_owned()),
                })
            }
            _ => Ok(Endpoint::Layout {
                path: PathBuf::from(rest),
                reference: None,
            }),
        }
    }

    /// The tag or digest part, if any.
    pub fn reference(&self) -> Option<&str> {
        match self {
            Endpoint::Layout { reference, .. } => reference.as_deref(),
            Endpoint::Registry { reference } => {
                if let Some(at) = reference.rfind('@') {
                    return Some(&reference[at + 1..]);
                }
                let last = reference.rsplit('/').next().unwrap_or("");
                last.rfind(':').map(|c| &last[c + 1..])
            }
        }
    }
}

/// Settings for registries, from the command line.
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    /// Talk plain HTTP (loopback test registries).
    pub plain_http: bool,
    /// `USER:PASS` for every registry named; else Docker's `config.json`.
    pub creds: Option<(String, String)>,
}

/// An open store of either kind.
pub enum Opened {
    /// An OCI layout.
    Layout(LayoutStore),
}

/// Opens the store of `endpoint` (a destination layout is created when missing).
///
/// # Errors
/// Store errors naming the path.
pub async fn open(
    endpoint: &Endpoint,
    create: bool,
    _settings: &RegistrySettings,
) -> Result<Opened, CopyError> {
    match endpoint {
        Endpoint::Layout { path, .. } => {
            let opts = if create {
                LayoutOptions::create()
            } else {
                LayoutOptions::default()
            };
            let store = LayoutStore::open_with(path, &opts)
                .await
                .map_err(|e| CopyError::store(endpoint, e))?;
            Ok(Opened::Layout(store))
        }
        Endpoint::Registry { .. } => Err(CopyError::Usage(format!(
            "{endpoint}: registries need the registry client's store, not built into this copy"
        ))),
    }
}

/// A failed copy, naming what was involved.
#[derive(Debug)]
pub enum CopyError {
    /// Bad command-line input.
    Usage(String),
    /// A store operation failed on `endpoint`.
    Store {
        /// The location involved.
        endpoint: String,
        /// The error (its chain names the digests).
        source: StoreError,
    },
}

impl CopyError {
    fn store(endpoint: &Endpoint, source: StoreError) -> CopyError {
        CopyError::Store {
            endpoint: endpoint.to_string(),
            source,
        }
    }

    /// The report inside a failed or cancelled copy, if any.
    pub fn report(&self) -> Option<&CopyReport> {
        match self {
            CopyError::Store {
                source:
                    StoreError::CopyFailed { report, .. } | StoreError::CopyCancelled { report, .. },
                ..
            } => Some(report),
            _ => None,
        }
    }
}

impl fmt::Display for CopyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CopyError::Usage(m) => f.write_str(m),
            CopyError::Store { endpoint, source } => {
                write!(f, "{endpoint}: {}", chain(source))
            }
        }
    }
}

impl std::error::Error for CopyError {}

/// An error with its sources, joined by `: `.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Copies `src` to `dst` with `options`. The source reference defaults to `latest`; the
/// destination tag defaults to the source's tag (or `latest` for a digest source into a
/// layout, whose content must be reachable from a tag).
///
/// # Errors
/// [`CopyError`] naming the location and, through the store error, the digests involved.
pub async fn copy(
    src: &Endpoint,
    dst: &Endpoint,
    options: &CopyOptions,
    settings: &RegistrySettings,
) -> Result<CopyReport, CopyError> {
    let src_ref = src.reference().unwrap_or("latest").to_owned();
    let dst_tag = match dst.reference() {
        Some(r) if Digest::parse(r).is_ok() => {
            return Err(CopyError::Usage(format!(
                "{dst}: a destination names a tag, not a digest (the digest is the content's)"
            )));
        }
        Some(r) => Some(r.to_owned()),
        None if Digest::parse(&src_ref).is_ok() => Some("latest".to_owned()),
        None => Some(src_ref.clone()),
    };
    let source = open(src, false, settings).await?;
    let target = open(dst, true, settings).await?;
    let result = match (&source, &target) {
        (Opened::Layout(s), Opened::Layout(d)) => {
            oci_store::copy_leased(s, &src_ref, d, dst_tag.as_deref(), options).await
        }
    };
    result.map_err(|e| match &e {
        StoreError::TagNotFound { .. } | StoreError::NotALayout { .. } => CopyError::store(src, e),
        _ => CopyError::Store {
            endpoint: format!("{src} -> {dst}"),
            source: e,
        },
    })
}
