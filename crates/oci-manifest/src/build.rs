//! Builders for image manifests and indexes with deterministic bytes.
//!
//! The output is compact JSON (no insignificant whitespace) with fields in a fixed order and
//! maps sorted by key, so the same inputs always give the same bytes and digest. Every build
//! is parsed back with [`Manifest::parse`], so what a builder returns passed the same
//! validation as anything received.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::descriptor::Descriptor;
use crate::error::ManifestError;
use crate::manifest::{Manifest, ManifestKind};
use crate::media_types as mt;

/// The document as written: fields in the order the OCI spec lists them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Doc<'a> {
    schema_version: u32,
    media_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<&'a Descriptor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layers: Option<&'a [Descriptor]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifests: Option<&'a [Descriptor]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a Descriptor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<&'a BTreeMap<String, String>>,
}

fn finish(doc: &Doc<'_>, what: &'static str) -> Result<Manifest, ManifestError> {
    let bytes = serde_json::to_vec(doc).map_err(|e| ManifestError::Build {
        what,
        reason: e.to_string(),
    })?;
    Manifest::parse(bytes, Some(doc.media_type))
}

fn build_err(what: &'static str, reason: impl Into<String>) -> ManifestError {
    ManifestError::Build {
        what,
        reason: reason.into(),
    }
}

/// Subject, `artifactType` and annotations: what image manifests and indexes share.
#[derive(Clone, Debug, Default)]
pub(crate) struct Extras {
    pub(crate) subject: Option<Descriptor>,
    pub(crate) artifact_type: Option<String>,
    pub(crate) annotations: BTreeMap<String, String>,
}

impl Extras {
    fn of(m: &Manifest) -> Extras {
        Extras {
            subject: m.subject().cloned(),
            artifact_type: m.artifact_type().map(str::to_owned),
            annotations: m.annotations().cloned().unwrap_or_default(),
        }
    }

    fn check(&self, what: &'static str, docker: bool) -> Result<(), ManifestError> {
        if docker && self.subject.is_some() {
            return Err(build_err(what, "Docker manifests cannot have a subject"));
        }
        if docker && self.artifact_type.is_some() {
            return Err(build_err(
                what,
                "Docker manifests cannot have an artifactType",
            ));
        }
        if self.annotations.keys().any(String::is_empty) {
            return Err(build_err(what, "annotation keys must not be empty"));
        }
        Ok(())
    }

    fn annotations(&self) -> Option<&BTreeMap<String, String>> {
        (!self.annotations.is_empty()).then_some(&self.annotations)
    }
}

/// The setters both builders share, over their `extras` field.
macro_rules! extras_setters {
    () => {
        /// Sets the subject (the manifest this one refers to: signatures, SBOMs).
        pub fn subject(mut self, subject: Descriptor) -> Self {
            self.extras.subject = Some(subject);
            self
        }

        /// Sets the `artifactType`.
        pub fn artifact_type(mut self, artifact_type: impl Into<String>) -> Self {
            self.extras.artifact_type = Some(artifact_type.into());
            self
        }

        /// Adds an annotation (annotations are written sorted by key).
        pub fn annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
            self.extras.annotations.insert(key.into(), value.into());
            self
        }

        /// Sets all annotations, replacing any added before.
        pub fn annotations(mut self, annotations: BTreeMap<String, String>) -> Self {
            self.extras.annotations = annotations;
            self
        }

        /// Takes the subject, `artifactType` and annotations of `m`, replacing any set before
        /// (for a manifest rewritten from another: reduced, converted).
        pub fn metadata_from(self, m: &Manifest) -> Self {
            self.extras(Extras::of(m))
        }

        /// Sets the subject, `artifactType` and annotations at once, replacing any set before.
        pub(crate) fn extras(mut self, extras: Extras) -> Self {
            self.extras = extras;
            self
        }
    };
}

/// Builds an image manifest (OCI or Docker schema 2), including OCI 1.1 artifacts.
///
/// ```
/// use oci_manifest::{build::ImageManifestBuilder, media_types, Descriptor};
/// let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
/// let m = ImageManifestBuilder::oci(Descriptor::of(media_types::OCI_CONFIG, config))
///     .layer(Descriptor::of(media_types::OCI_LAYER_GZIP, b"layer bytes"))
///     .annotation("org.opencontainers.image.created", "2024-01-01T00:00:00Z")
///     .build()
///     .unwrap();
/// assert_eq!(m.layers().len(), 1);
/// // Deterministic: the same inputs give the same bytes.
/// let again = ImageManifestBuilder::oci(Descriptor::of(media_types::OCI_CONFIG, config))
///     .layer(Descriptor::of(media_types::OCI_LAYER_GZIP, b"layer bytes"))
///     .annotation("org.opencontainers.image.created", "2024-01-01T00:00:00Z")
///     .build()
///     .unwrap();
/// assert_eq!(m.digest(), again.digest());
/// ```
#[derive(Clone, Debug)]
pub struct ImageManifestBuilder {
    kind: ManifestKind,
    config: Descriptor,
    layers: Vec<Descriptor>,
    extras: Extras,
}

impl ImageManifestBuilder {
    /// An OCI image manifest with this config.
    pub fn oci(config: Descriptor) -> Self {
        ImageManifestBuilder::new(ManifestKind::OciManifest, config)
    }

    /// A Docker schema 2 manifest with this config (whose media type must be
    /// [`DOCKER_CONFIG`](crate::media_types::DOCKER_CONFIG)).
    pub fn docker(config: Descriptor) -> Self {
        ImageManifestBuilder::new(ManifestKind::DockerManifest, config)
    }

    /// An OCI 1.1 artifact: `artifactType` set and the empty JSON config
    /// (`application/vnd.oci.empty.v1+json`, the two bytes `{}`, embedded in the descriptor).
    /// The empty config blob ([`EMPTY_JSON`]) must be stored beside the manifest.
    pub fn artifact(artifact_type: impl Into<String>) -> Self {
        let mut b = ImageManifestBuilder::oci(empty_config());
        b.extras.artifact_type = Some(artifact_type.into());
        b
    }

    fn new(kind: ManifestKind, config: Descriptor) -> Self {
        ImageManifestBuilder {
            kind,
            config,
            layers: Vec::new(),
            extras: Extras::default(),
        }
    }

    /// Appends a layer (layers keep the order given: base layer first).
    pub fn layer(mut self, layer: Descriptor) -> Self {
        self.layers.push(layer);
        self
    }

    /// Appends layers.
    pub fn layers(mut self, layers: impl IntoIterator<Item = Descriptor>) -> Self {
        self.layers.extend(layers);
        self
    }

    extras_setters!();

    /// Builds the manifest: checks the rules the spec sets on top of the shape (a Docker
    /// manifest has a Docker config and no subject nor artifactType; an OCI
    /// manifest with the empty config has an artifactType), then writes and parses the bytes.
    pub fn build(self) -> Result<Manifest, ManifestError> {
        const WHAT: &str = "image manifest";
        let docker = self.kind == ManifestKind::DockerManifest;
        self.extras.check(WHAT, docker)?;
        if docker && self.config.media_type != mt::DOCKER_CONFIG {
            return Err(build_err(
                WHAT,
                format!(
                    "a Docker manifest's config must be {}, not {}",
                    mt::DOCKER_CONFIG,
                    self.config.media_type
                ),
            ));
        }
        if self.config.media_type == mt::OCI_EMPTY_JSON && self.extras.artifact_type.is_none() {
            return Err(build_err(
                WHAT,
                "a manifest with the empty config must have an artifactType",
            ));
        }
        let doc = Doc {
            schema_version: 2,
            media_type: self.kind.media_type(),
            artifact_type: self.extras.artifact_type.as_deref(),
            config: Some(&self.config),
            layers: Some(&self.layers),
            manifests: None,
            subject: self.extras.subject.as_ref(),
            annotations: self.extras.annotations(),
        };
        finish(&doc, WHAT)
    }
}

/// The OCI empty JSON blob, `{}`: the config of artifacts.
pub const EMPTY_JSON: &[u8] = b"{}";

/// The descriptor of [`EMPTY_JSON`], with the content embedded.
pub fn empty_config() -> Descriptor {
    Descriptor::embedded(mt::OCI_EMPTY_JSON, EMPTY_JSON)
}

/// Builds an index (OCI image index or Docker manifest list).
///
/// ```
/// use oci_manifest::{build::IndexBuilder, media_types, Descriptor, Platform};
/// let amd64 = Descriptor::of(media_types::OCI_MANIFEST, b"manifest for amd64")
///     .with_platform(Platform::new("linux", "amd64"));
/// let index = IndexBuilder::oci().manifest(amd64).build().unwrap();
/// assert!(index.is_index());
/// assert_eq!(index.manifests().len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct IndexBuilder {
    kind: ManifestKind,
    manifests: Vec<Descriptor>,
    extras: Extras,
}

impl IndexBuilder {
    /// An OCI image index.
    pub fn oci() -> Self {
        IndexBuilder::new(ManifestKind::OciIndex)
    }

    /// A Docker manifest list (every entry needs a platform).
    pub fn docker() -> Self {
        IndexBuilder::new(ManifestKind::DockerManifestList)
    }

    /// An index of the given kind; fails for image manifest kinds.
    pub fn of_kind(kind: ManifestKind) -> Result<Self, ManifestError> {
        if !kind.is_index() {
            return Err(build_err("index", format!("{kind} is not an index kind")));
        }
        Ok(IndexBuilder::new(kind))
    }

    fn new(kind: ManifestKind) -> Self {
        IndexBuilder {
            kind,
            manifests: Vec::new(),
            extras: Extras::default(),
        }
    }

    /// Appends an entry (entries keep the order given).
    pub fn manifest(mut self, entry: Descriptor) -> Self {
        self.manifests.push(entry);
        self
    }

    /// Appends entries.
    pub fn manifests(mut self, entries: impl IntoIterator<Item = Descriptor>) -> Self {
        self.manifests.extend(entries);
        self
    }

    extras_setters!();

    /// Builds the index: a Docker manifest list has no subject nor artifactType, and needs a
    /// platform on every entry, each a manifest; then writes and parses the bytes.
    pub fn build(self) -> Result<Manifest, ManifestError> {
        const WHAT: &str = "index";
        let docker = self.kind == ManifestKind::DockerManifestList;
        self.extras.check(WHAT, docker)?;
        if docker {
            for (i, m) in self.manifests.iter().enumerate() {
                if m.platform.is_none() {
                    return Err(build_err(
                        WHAT,
                        format!("manifests[{i}] ({}) has no platform", m.digest),
                    ));
                }
                if !m.is_manifest() {
                    return Err(build_err(
                        WHAT,
                        format!(
                            "manifests[{i}] ({}) is {}, not a manifest",
                            m.digest, m.media_type
                        ),
                    ));
                }
            }
        }
        let doc = Doc {
            schema_version: 2,
            media_type: self.kind.media_type(),
            artifact_type: self.extras.artifact_type.as_deref(),
            config: None,
            layers: None,
            manifests: Some(&self.manifests),
            subject: self.extras.subject.as_ref(),
            annotations: self.extras.annotations(),
        };
        finish(&doc, WHAT)
    }
}
