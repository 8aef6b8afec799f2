//! [`Manifest`]: a parsed, validated manifest or index that keeps its exact bytes.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use oci_digest::{Algorithm, Digest};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::descriptor::Descriptor;
use crate::error::ManifestError;
use crate::media_types::{self as mt, essence};
use crate::strict;

/// The default limit on a manifest's size: 4 MiB, as registries enforce.
pub const DEFAULT_MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// The default limit on index nesting (an index in an index is depth 1).
pub const DEFAULT_MAX_INDEX_DEPTH: usize = 8;

/// Limits applied when parsing. Build with [`Default`] and the `with_*` methods.
///
/// ```
/// use oci_manifest::{Manifest, ManifestError, ParseOptions};
/// let opts = ParseOptions::default().with_max_size(10);
/// let err = Manifest::parse_with(&b"{\"schemaVersion\":2}"[..], None, &opts).unwrap_err();
/// assert!(matches!(err, ManifestError::TooLarge { size: 19, limit: 10 }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseOptions {
    /// Largest manifest accepted, in bytes ([`DEFAULT_MAX_MANIFEST_SIZE`]).
    pub max_size: usize,
    /// Deepest index nesting accepted by code that walks a graph of manifests
    /// ([`DEFAULT_MAX_INDEX_DEPTH`]); see [`ParseOptions::check_depth`]. Parsing one manifest
    /// does not follow children, so [`Manifest::parse_with`] does not use it.
    pub max_index_depth: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            max_size: DEFAULT_MAX_MANIFEST_SIZE,
            max_index_depth: DEFAULT_MAX_INDEX_DEPTH,
        }
    }
}

impl ParseOptions {
    /// Sets the size limit.
    pub fn with_max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }

    /// Sets the index nesting limit.
    pub fn with_max_index_depth(mut self, max_index_depth: usize) -> Self {
        self.max_index_depth = max_index_depth;
        self
    }

    /// For graph walkers: fails with [`ManifestError::IndexTooDeep`] when a manifest found at
    /// `depth` (the root is 0) is past the nesting limit.
    pub fn check_depth(&self, depth: usize, digest: &Digest) -> Result<(), ManifestError> {
        if depth > self.max_index_depth {
            return Err(ManifestError::IndexTooDeep {
                digest: digest.clone(),
                depth,
                limit: self.max_index_depth,
            });
        }
        Ok(())
    }
}

/// Which kind of document a [`Manifest`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ManifestKind {
    /// OCI image manifest (also OCI 1.1 artifacts, which are image manifests with
    /// `artifactType` or an artifact config).
    OciManifest,
    /// OCI image index.
    OciIndex,
    /// Docker image manifest, schema 2.
    DockerManifest,
    /// Docker manifest list.
    DockerManifestList,
}

impl ManifestKind {
    /// The kind named by `media_type` (parameters ignored), if it is one of the four.
    pub fn from_media_type(media_type: &str) -> Option<ManifestKind> {
        match essence(media_type) {
            mt::OCI_MANIFEST => Some(ManifestKind::OciManifest),
            mt::OCI_INDEX => Some(ManifestKind::OciIndex),
            mt::DOCKER_MANIFEST => Some(ManifestKind::DockerManifest),
            mt::DOCKER_MANIFEST_LIST => Some(ManifestKind::DockerManifestList),
            _ => None,
        }
    }

    /// The media type of this kind.
    pub fn media_type(self) -> &'static str {
        match self {
            ManifestKind::OciManifest => mt::OCI_MANIFEST,
            ManifestKind::OciIndex => mt::OCI_INDEX,
            ManifestKind::DockerManifest => mt::DOCKER_MANIFEST,
            ManifestKind::DockerManifestList => mt::DOCKER_MANIFEST_LIST,
        }
    }

    /// Whether this kind is an index (OCI index or Docker manifest list).
    pub fn is_index(self) -> bool {
        matches!(
            self,
            ManifestKind::OciIndex | ManifestKind::DockerManifestList
        )
    }

    /// Whether this kind is one of Docker's.
    pub fn is_docker(self) -> bool {
        matches!(
            self,
            ManifestKind::DockerManifest | ManifestKind::DockerManifestList
        )
    }
}

impl fmt::Display for ManifestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ManifestKind::OciManifest => "OCI image manifest",
            ManifestKind::OciIndex => "OCI image index",
            ManifestKind::DockerManifest => "Docker image manifest (schema 2)",
            ManifestKind::DockerManifestList => "Docker manifest list",
        })
    }
}

/// A manifest or index: the exact bytes, their digest, the media type, and the parsed fields.
///
/// The raw bytes are the truth: store, push and hash [`Manifest::raw`], never a
/// re-serialisation. Fields this crate does not know stay in the raw bytes untouched.
///
/// ```
/// use oci_manifest::{Manifest, ManifestKind};
/// let raw = br#"{
///   "schemaVersion": 2,
///   "mediaType": "application/vnd.oci.image.manifest.v1+json",
///   "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
///              "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
///   "layers": [],
///   "x-unknown": {"kept": true}
/// }"#;
/// let m = Manifest::parse(&raw[..], None).unwrap();
/// assert_eq!(m.kind(), ManifestKind::OciManifest);
/// assert_eq!(m.raw().as_ref(), &raw[..]);
/// assert_eq!(m.digest(), &oci_digest::Algorithm::Sha256.hash(raw));
/// assert_eq!(m.children().len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct Manifest {
    raw: Bytes,
    digest: Digest,
    media_type: String,
    kind: ManifestKind,
    /// subject?, config?, then layers or manifests.
    children: Vec<Descriptor>,
    has_subject: bool,
    has_config: bool,
    artifact_type: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
}

impl PartialEq for Manifest {
    /// Two manifests are equal when their bytes are (the digest names the bytes).
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for Manifest {}

/// The fields of every manifest kind, as found in the JSON; unknown fields are ignored here
/// and stay in the raw bytes.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(default, deserialize_with = "present")]
    schema_version: Option<serde_json::Value>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
    // Docker schema 1 markers.
    fs_layers: Option<IgnoredAny>,
    signatures: Option<IgnoredAny>,
}

/// `Some` for any value present, `null` included (plain `Option` would turn `null` into `None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

impl Manifest {
    /// Parses and validates `raw`, served with `content_type` (the HTTP `Content-Type`, or the
    /// media type of the descriptor that pointed here), under the default [`ParseOptions`].
    ///
    /// The media type is the JSON's `mediaType`; when absent, `content_type` (if it names a
    /// manifest type); when both are absent, the shape (`manifests` makes an OCI index, `config`
    /// an OCI manifest). A `mediaType` that disagrees with a manifest `content_type` is an error.
    /// The digest is the SHA-256 of the exact bytes; it is not compared with anything: see
    /// [`Manifest::parse_verified`].
    pub fn parse(
        raw: impl Into<Bytes>,
        content_type: Option<&str>,
    ) -> Result<Manifest, ManifestError> {
        Manifest::parse_with(raw, content_type, &ParseOptions::default())
    }

    /// [`Manifest::parse`] under explicit limits.
    pub fn parse_with(
        raw: impl Into<Bytes>,
        content_type: Option<&str>,
        opts: &ParseOptions,
    ) -> Result<Manifest, ManifestError> {
        let raw = raw.into();
        check_size(&raw, opts)?;
        let digest = Algorithm::Sha256.hash(&raw);
        Manifest::parse_inner(raw, digest, content_type)
    }

    /// Parses `raw` and checks it against the descriptor that named it: the bytes must hash to
    /// `expected.digest` (with `expected`'s algorithm) and have `expected.size` bytes, and the
    /// manifest's media type must be the descriptor's. The descriptor's media type also serves
    /// as the content type when the JSON has no `mediaType`.
    ///
    /// ```
    /// use oci_manifest::{Descriptor, Manifest, ManifestError};
    /// let raw = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    /// let good = Descriptor::new(
    ///     "application/vnd.oci.image.index.v1+json",
    ///     oci_digest::Algorithm::Sha256.hash(raw),
    ///     raw.len() as u64,
    /// );
    /// assert!(Manifest::parse_verified(&raw[..], None, &good, &Default::default()).is_ok());
    /// let mut bad = good.clone();
    /// bad.digest = oci_digest::Algorithm::Sha256.hash(b"other");
    /// let err = Manifest::parse_verified(&raw[..], None, &bad, &Default::default()).unwrap_err();
    /// assert!(matches!(err, ManifestError::DigestMismatch { .. }));
    /// ```
    pub fn parse_verified(
        raw: impl Into<Bytes>,
        content_type: Option<&str>,
        expected: &Descriptor,
        opts: &ParseOptions,
    ) -> Result<Manifest, ManifestError> {
        let raw = raw.into();
        check_descriptor_size(&raw, expected)?;
        let m = Manifest::parse_digest_inner(
            raw,
            content_type.or(Some(&expected.media_type)),
            &expected.digest,
            opts,
        )?;
        m.check_descriptor_media_type(expected)?;
        Ok(m)
    }

    /// Checks that this manifest is the one `expected` names, with the checks of
    /// [`Manifest::parse_verified`]: the size, the digest (hashing again when `expected` uses
    /// another algorithm than [`Manifest::digest`]) and the media type. For a manifest already
    /// parsed, taken from a cache or a lookup by digest.
    ///
    /// ```
    /// use oci_manifest::{build::IndexBuilder, Descriptor, ManifestError};
    /// let index = IndexBuilder::oci().build()?;
    /// index.verify(&index.descriptor())?;
    /// let sha512 = Descriptor::new(
    ///     index.media_type(),
    ///     oci_digest::Algorithm::Sha512.hash(index.raw()),
    ///     index.size(),
    /// );
    /// index.verify(&sha512)?;
    /// let other = IndexBuilder::oci().annotation("a", "b").build()?;
    /// let err = other.verify(&index.descriptor()).unwrap_err();
    /// assert!(matches!(err, ManifestError::SizeMismatch { .. }), "{err}");
    /// # Ok::<(), ManifestError>(())
    /// ```
    pub fn verify(&self, expected: &Descriptor) -> Result<(), ManifestError> {
        check_descriptor_size(&self.raw, expected)?;
        if self.digest != expected.digest {
            check_digest(&self.raw, &expected.digest)?;
        }
        self.check_descriptor_media_type(expected)
    }

    fn check_descriptor_media_type(&self, expected: &Descriptor) -> Result<(), ManifestError> {
        if essence(&expected.media_type) != self.media_type {
            return Err(ManifestError::DescriptorMediaType {
                digest: self.digest.clone(),
                expected: expected.media_type.clone(),
                actual: self.media_type.clone(),
            });
        }
        Ok(())
    }

    /// Parses `raw` and checks that it hashes to `expected` (hashing with `expected`'s
    /// algorithm), for a reference pinned by digest.
    pub fn parse_pinned(
        raw: impl Into<Bytes>,
        content_type: Option<&str>,
        expected: &Digest,
        opts: &ParseOptions,
    ) -> Result<Manifest, ManifestError> {
        Manifest::parse_digest_inner(raw.into(), content_type, expected, opts)
    }

    fn parse_digest_inner(
        raw: Bytes,
        content_type: Option<&str>,
        expected: &Digest,
        opts: &ParseOptions,
    ) -> Result<Manifest, ManifestError> {
        check_size(&raw, opts)?;
        let actual = check_digest(&raw, expected)?;
        // Keep the digest the caller named the content by (sha512 stays sha512).
        Manifest::parse_inner(raw, actual, content_type)
    }

    fn parse_inner(
        raw: Bytes,
        digest: Digest,
        content_type: Option<&str>,
    ) -> Result<Manifest, ManifestError> {
        // Typed parse first (it validates the JSON), then the duplicate-key scan, which is
        // exact on valid JSON. serde rejects a repeated known field itself: name it the same way.
        let wire: Wire = match serde_json::from_slice(&raw) {
            Ok(w) => w,
            Err(source) => {
                let valid_json = serde_json::from_slice::<IgnoredAny>(&raw).is_ok();
                if let Some(d) = strict::find_duplicate(&raw).filter(|_| valid_json) {
                    return Err(ManifestError::DuplicateKey {
                        digest,
                        key: d.key,
                        path: d.path,
                    });
                }
                return Err(ManifestError::Json { digest, source });
            }
        };
        if let Some(d) = strict::find_duplicate(&raw) {
            return Err(ManifestError::DuplicateKey {
                digest,
                key: d.key,
                path: d.path,
            });
        }
        let ct = content_type.map(essence).filter(|c| !c.is_empty());

        // Docker schema 1, by any sign in the document; by the Content-Type only when the
        // document does not say it is schema 2 (that would be a conflict, reported below).
        let declared_v1 = wire.media_type.as_deref().is_some_and(mt::is_schema1);
        let served_v1 = ct.is_some_and(mt::is_schema1);
        let version_1 = matches!(&wire.schema_version, Some(v) if v.as_u64() == Some(1));
        let version_2 = matches!(&wire.schema_version, Some(v) if v.as_u64() == Some(2));
        let says_v2 = version_2 || wire.media_type.is_some();
        if declared_v1 || (served_v1 && !says_v2) || version_1 || wire.fs_layers.is_some() {
            let signed = wire.signatures.is_some()
                || wire.media_type.as_deref().map(essence) == Some(mt::DOCKER_MANIFEST_V1_SIGNED)
                || ct == Some(mt::DOCKER_MANIFEST_V1_SIGNED);
            return Err(ManifestError::Schema1 { digest, signed });
        }

        match &wire.schema_version {
            Some(v) if v.as_u64() == Some(2) => {}
            Some(v) => {
                return Err(ManifestError::SchemaVersion {
                    digest,
                    found: v.to_string(),
                });
            }
            None => {
                return Err(ManifestError::SchemaVersion {
                    digest,
                    found: "missing".to_owned(),
                });
            }
        }

        // The media type: the document's, else a manifest Content-Type, else the shape.
        let served = ct.filter(|c| mt::is_manifest(c) || mt::is_schema1(c));
        let media_type = match (&wire.media_type, served) {
            (Some(doc), Some(served)) => {
                if essence(doc) != served {
                    return Err(ManifestError::MediaTypeConflict {
                        digest,
                        in_document: doc.clone(),
                        content_type: content_type.unwrap_or_default().to_owned(),
                    });
                }
                doc.clone()
            }
            (Some(doc), None) => doc.clone(),
            (None, Some(served)) => served.to_owned(),
            (None, None) => match (&wire.manifests, &wire.config, &wire.layers) {
                (Some(_), None, None) => mt::OCI_INDEX.to_owned(),
                (None, Some(_), _) => mt::OCI_MANIFEST.to_owned(),
                _ => {
                    return Err(ManifestError::Shape {
                        digest,
                        media_type: "(none)".to_owned(),
                        reason: "no mediaType, no manifest Content-Type, and neither the fields \
                                 of an index (manifests) nor of a manifest (config, layers)"
                            .to_owned(),
                    });
                }
            },
        };
        let Some(kind) = ManifestKind::from_media_type(&media_type) else {
            return Err(ManifestError::UnsupportedMediaType { digest, media_type });
        };
        if media_type != kind.media_type() {
            // A mediaType with parameters or blanks inside the document is not a media type
            // any registry would serve it as.
            return Err(ManifestError::UnsupportedMediaType { digest, media_type });
        }

        let shape = |reason: &str| ManifestError::Shape {
            digest: digest.clone(),
            media_type: media_type.clone(),
            reason: reason.to_owned(),
        };
        let Wire {
            artifact_type,
            config,
            layers,
            manifests,
            subject,
            annotations,
            ..
        } = wire;
        let mut children = Vec::new();
        let has_subject = subject.is_some();
        let mut has_config = false;
        if let Some(s) = subject {
            children.push(s);
        }
        if kind.is_index() {
            if config.is_some() {
                return Err(shape("an index has no config"));
            }
            if layers.is_some() {
                return Err(shape("an index has no layers"));
            }
            let Some(manifests) = manifests else {
                return Err(shape("an index needs a manifests array"));
            };
            children.extend(manifests);
        } else {
            if manifests.is_some() {
                return Err(shape("an image manifest has no manifests array"));
            }
            let Some(config) = config else {
                return Err(shape("an image manifest needs a config descriptor"));
            };
            let Some(layers) = layers else {
                return Err(shape("an image manifest needs a layers array"));
            };
            has_config = true;
            children.push(config);
            children.extend(layers);
        }
        if kind.is_docker() {
            if has_subject {
                return Err(shape("Docker manifests have no subject field"));
            }
            if artifact_type.is_some() {
                return Err(shape("Docker manifests have no artifactType field"));
            }
        }
        if let Some(at) = &artifact_type
            && !mt::is_valid(at)
        {
            return Err(shape(&format!("artifactType {at:?} is not a media type")));
        }

        let m = Manifest {
            raw,
            digest,
            media_type,
            kind,
            children,
            has_subject,
            has_config,
            artifact_type,
            annotations,
        };
        m.validate_descriptors()?;
        Ok(m)
    }

    fn validate_descriptors(&self) -> Result<(), ManifestError> {
        for (i, d) in self.children.iter().enumerate() {
            let reason = if !mt::is_valid(&d.media_type) {
                Some(format!("mediaType {:?} is not a media type", d.media_type))
            } else if let Some(at) = d.artifact_type.as_deref().filter(|a| !mt::is_valid(a)) {
                Some(format!("artifactType {at:?} is not a media type"))
            } else if let Some(data) = &d.data {
                crate::base64::check_embedded(data, d).err()
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(ManifestError::InvalidDescriptor {
                    digest: self.digest.clone(),
                    field: self.child_name(i),
                    descriptor_digest: d.digest.clone(),
                    reason,
                });
            }
        }
        Ok(())
    }

    /// The children with their place in the document (`subject`, `config`, `layers[0]`, ...).
    pub fn named_children(&self) -> impl Iterator<Item = (String, &Descriptor)> {
        self.children
            .iter()
            .enumerate()
            .map(|(i, d)| (self.child_name(i), d))
    }

    /// The place of child `i` in the document.
    fn child_name(&self, i: usize) -> String {
        let s = usize::from(self.has_subject);
        let c = usize::from(self.has_config);
        let list = if self.is_index() {
            "manifests"
        } else {
            "layers"
        };
        if i < s {
            "subject".to_owned()
        } else if i < s + c {
            "config".to_owned()
        } else {
            format!("{list}[{}]", i - s - c)
        }
    }

    /// The exact bytes, as received or built.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The digest of [`Manifest::raw`] (SHA-256 unless parsed against a SHA-512 digest).
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The size of [`Manifest::raw`] in bytes.
    pub fn size(&self) -> u64 {
        self.raw.len() as u64
    }

    /// The media type (one of [`media_types::MANIFEST_MEDIA_TYPES`](crate::media_types::MANIFEST_MEDIA_TYPES)).
    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    /// The kind of document.
    pub fn kind(&self) -> ManifestKind {
        self.kind
    }

    /// A descriptor of this manifest: media type, digest, size (nothing else).
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.digest.clone(), self.size())
    }

    /// The descriptor the OCI referrers API lists for this manifest: also carries the
    /// `artifactType` (or, failing it, the config's media type) and the annotations.
    pub fn referrer_descriptor(&self) -> Descriptor {
        let mut d = self.descriptor();
        d.artifact_type = self
            .artifact_type
            .clone()
            .or_else(|| self.config().map(|c| c.media_type.clone()));
        d.annotations = self.annotations.clone();
        d
    }

    /// Everything this manifest points to, in a fixed order: the subject (if any), then the
    /// config and the layers, or the manifests of an index.
    pub fn children(&self) -> &[Descriptor] {
        &self.children
    }

    /// The manifest this one refers to (OCI 1.1 `subject`: signatures, SBOMs, ...).
    pub fn subject(&self) -> Option<&Descriptor> {
        if self.has_subject {
            self.children.first()
        } else {
            None
        }
    }

    /// The config descriptor of an image manifest; `None` for an index.
    pub fn config(&self) -> Option<&Descriptor> {
        if self.has_config {
            self.children.get(usize::from(self.has_subject))
        } else {
            None
        }
    }

    /// The layers of an image manifest (empty for an index).
    pub fn layers(&self) -> &[Descriptor] {
        if self.has_config {
            &self.children[usize::from(self.has_subject) + 1..]
        } else {
            &[]
        }
    }

    /// The entries of an index (empty for an image manifest).
    pub fn manifests(&self) -> &[Descriptor] {
        if self.is_index() {
            &self.children[usize::from(self.has_subject)..]
        } else {
            &[]
        }
    }

    /// Whether this is an index (OCI index or Docker manifest list).
    pub fn is_index(&self) -> bool {
        self.kind.is_index()
    }

    /// The `artifactType` field (OCI 1.1), if present.
    pub fn artifact_type(&self) -> Option<&str> {
        self.artifact_type.as_deref()
    }

    /// The top-level annotations, if present.
    pub fn annotations(&self) -> Option<&BTreeMap<String, String>> {
        self.annotations.as_ref()
    }

    /// The value of top-level annotation `key`, if any.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// Fails unless `raw` has the size `expected` states.
fn check_descriptor_size(raw: &Bytes, expected: &Descriptor) -> Result<(), ManifestError> {
    let size = raw.len() as u64;
    if size != expected.size {
        return Err(ManifestError::SizeMismatch {
            digest: expected.digest.clone(),
            expected: expected.size,
            actual: size,
        });
    }
    Ok(())
}

/// Hashes `raw` with `expected`'s algorithm; fails unless that gives `expected`.
fn check_digest(raw: &Bytes, expected: &Digest) -> Result<Digest, ManifestError> {
    let actual = expected.algorithm().hash(raw);
    if &actual != expected {
        return Err(ManifestError::DigestMismatch {
            expected: expected.clone(),
            actual,
            size: raw.len() as u64,
        });
    }
    Ok(actual)
}

fn check_size(raw: &Bytes, opts: &ParseOptions) -> Result<(), ManifestError> {
    if raw.len() > opts.max_size {
        return Err(ManifestError::TooLarge {
            size: raw.len() as u64,
            limit: opts.max_size,
        });
    }
    Ok(())
}
