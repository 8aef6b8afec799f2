//! Conversions to and from the [`oci_spec`] crate's image types (feature `oci-spec`), for
//! tools that already hold `oci_spec::image` values.
//!
//! | ours | `oci_spec::image` | ours → oci-spec | oci-spec → ours |
//! |---|---|---|---|
//! | [`Digest`] | `Digest` | `From` | `TryFrom` ([`oci_digest::ParseDigestError`]) |
//! | [`Platform`] | `Platform` | `From` | `From` |
//! | [`Descriptor`] | `Descriptor` | `From` | `TryFrom` ([`ManifestError`]) |
//! | [`Manifest`], an image manifest (OCI or Docker) | `ImageManifest` | `TryFrom` | `TryFrom` |
//! | [`Manifest`], an index (OCI or Docker list) | `ImageIndex` | `TryFrom` | `TryFrom` |
//!
//! # Two different things
//!
//! A [`Manifest`] is the exact bytes it was received as, with the fields parsed beside them:
//! the digest names those bytes, a JSON object with the same key twice is refused (two parsers
//! could read two different manifests behind one digest), and fields this crate does not know
//! stay in the bytes untouched. oci-spec's `ImageManifest` and `ImageIndex` are plain serde
//! values: parsing keeps the last of two equal keys without a word and drops unknown fields,
//! and serialising writes new bytes, so a new digest. Convert to read and edit; store, push
//! and hash [`Manifest::raw`].
//!
//! # From oci-spec into ours: serialised once, canonically
//!
//! An oci-spec manifest or index has no bytes, so the conversion writes them, once, with the
//! same code as the [`build`](crate::build) module (compact JSON, fields in the spec's order,
//! annotations sorted by key), and parses them back with [`Manifest::parse`], so the result
//! passed the same validation as anything received. From then on the bytes are kept: the
//! result's [`Manifest::digest`] is the digest a push of it produces, and the same value always
//! gives the same bytes. Details:
//!
//! - `mediaType` is always written: when oci-spec's is `None`, the OCI type; a Docker type
//!   (`MediaType::Other("application/vnd.docker.distribution.manifest.v2+json")`) gives a
//!   Docker manifest or list, under Docker's rules (a Docker config, no subject nor
//!   `artifactType`).
//! - An empty top-level `annotations` map is written as no `annotations` (descriptors keep
//!   theirs as given).
//! - Errors name what did not convert: [`ManifestError::InvalidDigest`] with the field
//!   (`layers[2].digest`) for a digest oci-spec accepts and this crate cannot verify (`sha384`,
//!   `multihash+base58`); [`ManifestError::Build`] for a `schemaVersion` other than 2, a media
//!   type of another kind or a rule of the builders (an empty config without `artifactType`);
//!   and the errors of [`Manifest::parse`], such as [`ManifestError::InvalidDescriptor`] with
//!   the field, for a media type that is not one.
//!
//! ```
//! use oci_spec::image::{DescriptorBuilder, ImageManifestBuilder, MediaType};
//! use oci_manifest::{Algorithm, Manifest, media_types};
//!
//! let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
//! let theirs = ImageManifestBuilder::default()
//!     .schema_version(2u32)
//!     .config(DescriptorBuilder::default()
//!         .media_type(MediaType::ImageConfig)
//!         .digest(oci_spec::image::Digest::from(Algorithm::Sha256.hash(config)))
//!         .size(config.len() as u64)
//!         .build()?)
//!     .layers(vec![])
//!     .build()?;
//!
//! let ours = Manifest::try_from(&theirs)?;
//! assert_eq!(ours.media_type(), media_types::OCI_MANIFEST);
//! // The bytes to push, and the digest the registry will compute for them.
//! assert_eq!(ours.digest(), &Algorithm::Sha256.hash(ours.raw()));
//! // The same value gives the same bytes.
//! assert_eq!(Manifest::try_from(&theirs)?, ours);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # From ours into oci-spec: every field oci-spec models
//!
//! Carried over as they are: `schemaVersion`, `mediaType` (always set: [`Manifest::media_type`],
//! which the `Content-Type` or the shape decided when the document has none), `artifactType`,
//! `config`, `layers`, `manifests`, `subject` and `annotations`; in descriptors `mediaType`,
//! `digest`, `size`, `urls`, `annotations`, `platform`, `artifactType` and `data`; in platforms
//! `architecture`, `os`, `os.version`, `os.features`, `variant` and `features`. A string that
//! oci-spec would read as another value is kept as its `Other` variant (oci-spec 0.10 reads the
//! architecture `armbe` as `arm64be`).
//!
//! Dropped, because oci-spec does not model them (a [`Manifest`] keeps them in its raw bytes):
//!
//! - unknown fields, at the top level and inside descriptors and platforms (vendor fields,
//!   fields of later versions of the spec);
//! - the bytes themselves (whitespace, key order, string escapes) and so the digest:
//!   serialising the oci-spec value gives other bytes unless ours were canonical;
//! - whether the document had a `mediaType` at all.
//!
//! oci-spec 0.10 also (de)serialises a platform's `os.version` and `os.features` under the
//! names `os_version` and `os_features`
//! ([oci-spec-rs#163](https://github.com/youki-dev/oci-spec-rs/pull/163)): they are converted
//! here field by field, but JSON that oci-spec writes or reads loses them against every other
//! tool. Another reason to keep our bytes.
//!
//! ```
//! use oci_manifest::{build::IndexBuilder, media_types, Descriptor, Manifest, Platform};
//!
//! let raw = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
//!   "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",
//!     "digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
//!     "size":0,"platform":{"os":"windows","architecture":"amd64","os.version":"10.0.20348.1"}}],
//!   "x-vendor":"kept in our bytes, dropped by oci-spec"}"#;
//! let ours = Manifest::parse(&raw[..], None)?;
//! let theirs = oci_spec::image::ImageIndex::try_from(&ours)?;
//! let entry = &theirs.manifests()[0];
//! assert_eq!(entry.platform().as_ref().unwrap().os_version().as_deref(), Some("10.0.20348.1"));
//! // An image manifest does not convert to an index.
//! let image = Descriptor::of(media_types::OCI_CONFIG, b"{}");
//! let image = oci_manifest::build::ImageManifestBuilder::oci(image).build()?;
//! assert!(oci_spec::image::ImageIndex::try_from(&image).is_err());
//! // Back: the same fields, in new (canonical) bytes without the unknown field.
//! let back = Manifest::try_from(&theirs)?;
//! assert_eq!(back.manifests(), ours.manifests());
//! assert!(!String::from_utf8_lossy(back.raw()).contains("x-vendor"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashMap};

use oci_spec::image as spec;

use crate::build::{Extras, ImageManifestBuilder, IndexBuilder};
use crate::{Descriptor, Digest, Manifest, ManifestError, ManifestKind, Platform};

/// The oci-spec value for `s`: its own variant when oci-spec reads `s` as one that writes `s`
/// back, else `Other(s)`, so that no string changes on the way.
fn exact<T>(s: &str, other: fn(String) -> T) -> T
where
    T: for<'a> From<&'a str> + std::fmt::Display,
{
    let v = T::from(s);
    if v.to_string() == s {
        v
    } else {
        other(s.to_owned())
    }
}

fn media_type(s: &str) -> spec::MediaType {
    exact(s, spec::MediaType::Other)
}

fn to_hash_map(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn to_btree_map(m: &HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Every field, strings kept exactly.
///
/// ```
/// use oci_manifest::Platform;
/// let ours = Platform::new("linux", "arm64").with_variant("v8");
/// let theirs = oci_spec::image::Platform::from(&ours);
/// assert_eq!(theirs.architecture(), &oci_spec::image::Arch::ARM64);
/// assert_eq!(theirs.variant().as_deref(), Some("v8"));
/// assert_eq!(Platform::from(&theirs), ours);
/// ```
impl From<&Platform> for spec::Platform {
    fn from(p: &Platform) -> Self {
        let mut out = spec::Platform::default();
        out.set_architecture(exact(&p.architecture, spec::Arch::Other))
            .set_os(exact(&p.os, spec::Os::Other))
            .set_variant(p.variant.clone())
            .set_os_version(p.os_version.clone())
            .set_os_features(p.os_features.clone())
            .set_features(p.features.clone());
        out
    }
}

/// Every field, as given (not normalised: see [`platform::normalize`](crate::platform::normalize)).
///
/// ```
/// use oci_spec::image::{Arch, Os, PlatformBuilder};
/// let theirs = PlatformBuilder::default()
///     .os(Os::Windows)
///     .architecture(Arch::Amd64)
///     .os_version("10.0.17763.5458")
///     .os_features(vec!["win32k".to_owned()])
///     .build()?;
/// let ours = oci_manifest::Platform::from(&theirs);
/// assert_eq!(ours.to_string(), "windows(10.0.17763.5458)/amd64");
/// assert_eq!(ours.os_features, Some(vec!["win32k".to_owned()]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl From<&spec::Platform> for Platform {
    fn from(p: &spec::Platform) -> Self {
        Platform {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone(),
            os_version: p.os_version().clone(),
            os_features: p.os_features().clone(),
            features: p.features().clone(),
        }
    }
}

/// Every field, strings kept exactly.
///
/// ```
/// use oci_manifest::{media_types, Descriptor, Platform};
/// let ours = Descriptor::embedded(media_types::OCI_EMPTY_JSON, b"{}")
///     .with_platform(Platform::new("linux", "amd64"))
///     .with_annotation("org.opencontainers.image.title", "empty");
/// let theirs = oci_spec::image::Descriptor::from(&ours);
/// assert_eq!(theirs.media_type(), &oci_spec::image::MediaType::EmptyJSON);
/// assert_eq!(theirs.digest().to_string(), ours.digest.as_str());
/// assert_eq!(theirs.data().as_deref(), Some("e30="));
/// assert_eq!(Descriptor::try_from(&theirs)?, ours);
/// # Ok::<(), oci_manifest::ManifestError>(())
/// ```
impl From<&Descriptor> for spec::Descriptor {
    fn from(d: &Descriptor) -> Self {
        let mut out = spec::Descriptor::new(
            media_type(&d.media_type),
            d.size,
            spec::Digest::from(&d.digest),
        );
        out.set_urls(d.urls.clone())
            .set_annotations(d.annotations.as_ref().map(to_hash_map))
            .set_platform(d.platform.as_ref().map(spec::Platform::from))
            .set_artifact_type(d.artifact_type.as_deref().map(media_type))
            .set_data(d.data.clone());
        out
    }
}

/// Every field; fails with [`ManifestError::InvalidDigest`] (field `digest`) for a digest this
/// crate cannot verify. Nothing else is checked here: a descriptor is checked where a manifest
/// holds it.
///
/// ```
/// use oci_spec::image::{Descriptor, MediaType};
/// use oci_manifest::ManifestError;
///
/// let digest: oci_spec::image::Digest = format!("sha256:{}", "a".repeat(64)).parse()?;
/// let ours = oci_manifest::Descriptor::try_from(&Descriptor::new(MediaType::ImageLayerGzip, 7, digest))?;
/// assert_eq!(ours.media_type, oci_manifest::media_types::OCI_LAYER_GZIP);
///
/// let sha384: oci_spec::image::Digest = format!("sha384:{}", "a".repeat(96)).parse()?;
/// let err = oci_manifest::Descriptor::try_from(&Descriptor::new(MediaType::ImageLayerGzip, 7, sha384)).unwrap_err();
/// assert!(matches!(err, ManifestError::InvalidDigest { ref field, .. } if field == "digest"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl TryFrom<&spec::Descriptor> for Descriptor {
    type Error = ManifestError;

    fn try_from(d: &spec::Descriptor) -> Result<Self, Self::Error> {
        descriptor_from(d, "")
    }
}

/// `d` converted; `at` is where it is (`layers[2].`), for errors.
fn descriptor_from(d: &spec::Descriptor, at: &str) -> Result<Descriptor, ManifestError> {
    let digest = Digest::try_from(d.digest()).map_err(|source| ManifestError::InvalidDigest {
        field: format!("{at}digest"),
        source,
    })?;
    Ok(Descriptor {
        media_type: d.media_type().to_string(),
        digest,
        size: d.size(),
        urls: d.urls().clone(),
        annotations: d.annotations().as_ref().map(to_btree_map),
        platform: d.platform().as_ref().map(Platform::from),
        artifact_type: d.artifact_type().as_ref().map(ToString::to_string),
        data: d.data().clone(),
    })
}

fn descriptors_from(ds: &[spec::Descriptor], list: &str) -> Result<Vec<Descriptor>, ManifestError> {
    ds.iter()
        .enumerate()
        .map(|(i, d)| descriptor_from(d, &format!("{list}[{i}].")))
        .collect()
}

fn from_err(what: &'static str, reason: impl Into<String>) -> ManifestError {
    ManifestError::Build {
        what,
        reason: reason.into(),
    }
}

/// The fields oci-spec's image manifests and indexes share, borrowed from either.
struct Head<'a> {
    schema_version: u32,
    media_type: &'a Option<spec::MediaType>,
    subject: &'a Option<spec::Descriptor>,
    artifact_type: &'a Option<spec::MediaType>,
    annotations: &'a Option<HashMap<String, String>>,
}

/// The [`Head`] of an `oci_spec::image::ImageManifest` or `ImageIndex` (same accessors, no
/// common trait).
macro_rules! head {
    ($m:expr) => {
        Head {
            schema_version: $m.schema_version(),
            media_type: $m.media_type(),
            subject: $m.subject(),
            artifact_type: $m.artifact_type(),
            annotations: $m.annotations(),
        }
    };
}

impl Head<'_> {
    /// The kind to write the document as (`default` when it has no media type, else the one
    /// its media type names, which must be an index exactly when `default` is) and its
    /// subject, `artifactType` and annotations.
    fn read(
        &self,
        default: ManifestKind,
        what: &'static str,
    ) -> Result<(ManifestKind, Extras), ManifestError> {
        if self.schema_version != 2 {
            return Err(from_err(
                what,
                format!("schemaVersion is {}, expected 2", self.schema_version),
            ));
        }
        let kind = match self.media_type {
            None => default,
            Some(declared) => match ManifestKind::from_media_type(declared.as_ref()) {
                Some(kind) if kind.is_index() == default.is_index() => kind,
                _ => {
                    return Err(from_err(
                        what,
                        format!("mediaType {:?} is not {}", declared.as_ref(), default),
                    ));
                }
            },
        };
        let extras = Extras {
            subject: self
                .subject
                .as_ref()
                .map(|s| descriptor_from(s, "subject."))
                .transpose()?,
            artifact_type: self.artifact_type.as_ref().map(ToString::to_string),
            annotations: self
                .annotations
                .as_ref()
                .map(to_btree_map)
                .unwrap_or_default(),
        };
        Ok((kind, extras))
    }
}

/// Written once, canonically (see the [module](self) docs), then parsed back.
///
/// ```
/// use oci_spec::image::ImageManifest;
/// use oci_manifest::{Manifest, ManifestError};
///
/// let theirs: ImageManifest = serde_json::from_str(r#"{"schemaVersion":2,
///   "config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,
///     "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
///   "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":3,
///     "digest":"sha384:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}]}"#)?;
/// let err = Manifest::try_from(&theirs).unwrap_err();
/// assert!(matches!(err, ManifestError::InvalidDigest { ref field, .. } if field == "layers[0].digest"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl TryFrom<&spec::ImageManifest> for Manifest {
    type Error = ManifestError;

    fn try_from(m: &spec::ImageManifest) -> Result<Self, Self::Error> {
        let (kind, extras) =
            head!(m).read(ManifestKind::OciManifest, "image manifest from oci-spec")?;
        let config = descriptor_from(m.config(), "config.")?;
        let b = match kind {
            ManifestKind::DockerManifest => ImageManifestBuilder::docker(config),
            _ => ImageManifestBuilder::oci(config),
        };
        b.layers(descriptors_from(m.layers(), "layers")?)
            .extras(extras)
            .build()
    }
}

/// Written once, canonically (see the [module](self) docs), then parsed back.
///
/// ```
/// use oci_spec::image::{ImageIndex, MediaType};
/// use oci_manifest::{Manifest, ManifestError, ManifestKind};
///
/// let mut theirs = ImageIndex::default();
/// let ours = Manifest::try_from(&theirs)?;
/// assert_eq!(ours.kind(), ManifestKind::OciIndex);
/// assert_eq!(ours.raw().as_ref(), br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#);
///
/// theirs.set_media_type(Some(MediaType::ImageManifest));
/// let err = Manifest::try_from(&theirs).unwrap_err();
/// assert!(matches!(err, ManifestError::Build { .. }), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl TryFrom<&spec::ImageIndex> for Manifest {
    type Error = ManifestError;

    fn try_from(m: &spec::ImageIndex) -> Result<Self, Self::Error> {
        let (kind, extras) = head!(m).read(ManifestKind::OciIndex, "index from oci-spec")?;
        IndexBuilder::of_kind(kind)?
            .manifests(descriptors_from(m.manifests(), "manifests")?)
            .extras(extras)
            .build()
    }
}

fn not_this_kind(m: &Manifest, reason: &str) -> ManifestError {
    ManifestError::Convert {
        digest: m.digest().clone(),
        media_type: m.media_type().to_owned(),
        reason: reason.to_owned(),
    }
}

/// Every field oci-spec models (see the [module](self) docs for what is dropped); fails with
/// [`ManifestError::Convert`] for an index.
///
/// ```
/// use oci_manifest::{build::ImageManifestBuilder, media_types, Descriptor};
/// let ours = ImageManifestBuilder::docker(Descriptor::of(media_types::DOCKER_CONFIG, b"{}"))
///     .layer(Descriptor::of(media_types::DOCKER_LAYER_GZIP, b"layer"))
///     .build()?;
/// let theirs = oci_spec::image::ImageManifest::try_from(&ours)?;
/// assert_eq!(theirs.media_type().as_ref().map(|m| m.to_string()).as_deref(), Some(media_types::DOCKER_MANIFEST));
/// assert_eq!(theirs.layers().len(), 1);
/// // Our bytes were canonical already: back, they are the same.
/// assert_eq!(oci_manifest::Manifest::try_from(&theirs)?, ours);
/// # Ok::<(), oci_manifest::ManifestError>(())
/// ```
impl TryFrom<&Manifest> for spec::ImageManifest {
    type Error = ManifestError;

    fn try_from(m: &Manifest) -> Result<Self, Self::Error> {
        let config = match m.config() {
            Some(c) if !m.is_index() => c,
            _ => {
                return Err(not_this_kind(
                    m,
                    "an index converts to an oci_spec::image::ImageIndex, not an ImageManifest",
                ));
            }
        };
        let mut out = spec::ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(media_type(m.media_type()))
            .config(spec::Descriptor::from(config))
            .layers(
                m.layers()
                    .iter()
                    .map(spec::Descriptor::from)
                    .collect::<Vec<_>>(),
            )
            .build()
            .map_err(|e| not_this_kind(m, &format!("oci-spec refused it: {e}")))?;
        out.set_artifact_type(m.artifact_type().map(media_type))
            .set_subject(m.subject().map(spec::Descriptor::from))
            .set_annotations(m.annotations().map(to_hash_map));
        Ok(out)
    }
}

/// Every field oci-spec models (see the [module](self) docs for what is dropped); fails with
/// [`ManifestError::Convert`] for an image manifest.
///
/// ```
/// use oci_manifest::{build::IndexBuilder, media_types, Descriptor, Platform};
/// let entry = Descriptor::of(media_types::DOCKER_MANIFEST, b"m").with_platform(Platform::new("linux", "amd64"));
/// let ours = IndexBuilder::docker().manifest(entry).build()?;
/// let theirs = oci_spec::image::ImageIndex::try_from(&ours)?;
/// assert_eq!(theirs.manifests().len(), 1);
/// assert_eq!(oci_manifest::Manifest::try_from(&theirs)?, ours);
/// # Ok::<(), oci_manifest::ManifestError>(())
/// ```
impl TryFrom<&Manifest> for spec::ImageIndex {
    type Error = ManifestError;

    fn try_from(m: &Manifest) -> Result<Self, Self::Error> {
        if !m.is_index() {
            return Err(not_this_kind(
                m,
                "an image manifest converts to an oci_spec::image::ImageManifest, not an ImageIndex",
            ));
        }
        let mut out = spec::ImageIndex::default();
        out.set_schema_version(2)
            .set_media_type(Some(media_type(m.media_type())))
            .set_artifact_type(m.artifact_type().map(media_type))
            .set_manifests(m.manifests().iter().map(spec::Descriptor::from).collect())
            .set_subject(m.subject().map(spec::Descriptor::from))
            .set_annotations(m.annotations().map(to_hash_map));
        Ok(out)
    }
}

/// The conversions by value: each is the one by reference.
macro_rules! by_value {
    ($(From<$from:ty> for $to:ty;)* $(TryFrom<$tfrom:ty> for $tto:ty;)*) => {
        $(
            /// Same as the conversion by reference.
            impl From<$from> for $to {
                fn from(v: $from) -> Self {
                    <$to>::from(&v)
                }
            }
        )*
        $(
            /// Same as the conversion by reference.
            impl TryFrom<$tfrom> for $tto {
                type Error = ManifestError;

                fn try_from(v: $tfrom) -> Result<Self, ManifestError> {
                    <$tto>::try_from(&v)
                }
            }
        )*
    };
}

by_value! {
    From<Platform> for spec::Platform;
    From<spec::Platform> for Platform;
    From<Descriptor> for spec::Descriptor;
    TryFrom<spec::Descriptor> for Descriptor;
    TryFrom<spec::ImageManifest> for Manifest;
    TryFrom<spec::ImageIndex> for Manifest;
    TryFrom<Manifest> for spec::ImageManifest;
    TryFrom<Manifest> for spec::ImageIndex;
}
