//! Conversion between Docker schema 2 and OCI media types.
//!
//! A conversion writes new bytes (so a new digest) with the same content: config and layer
//! blobs are not touched, only the media types that name them. Converting an index needs its
//! entries converted first: pass their new descriptors to [`convert_index`].

use std::collections::HashMap;

use crate::build::{ImageManifestBuilder, IndexBuilder};
use crate::descriptor::Descriptor;
use crate::error::ManifestError;
use crate::manifest::{Manifest, ManifestKind};
use crate::media_types as mt;
use oci_digest::Digest;

/// Which family of media types to convert to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Flavor {
    /// OCI image spec media types.
    Oci,
    /// Docker schema 2 media types.
    Docker,
}

impl Flavor {
    /// The flavor of a manifest kind.
    pub fn of(kind: ManifestKind) -> Flavor {
        if kind.is_docker() {
            Flavor::Docker
        } else {
            Flavor::Oci
        }
    }
}

/// Pairs of equivalent (Docker, OCI) media types for configs and layers.
const PAIRS: &[(&str, &str)] = &[
    (mt::DOCKER_CONFIG, mt::OCI_CONFIG),
    (mt::DOCKER_LAYER_TAR, mt::OCI_LAYER_TAR),
    (mt::DOCKER_LAYER_GZIP, mt::OCI_LAYER_GZIP),
    (mt::DOCKER_LAYER_ZSTD, mt::OCI_LAYER_ZSTD),
    (mt::DOCKER_LAYER_FOREIGN_TAR, mt::OCI_LAYER_NONDIST_TAR),
    (mt::DOCKER_LAYER_FOREIGN_GZIP, mt::OCI_LAYER_NONDIST_GZIP),
    (mt::DOCKER_MANIFEST, mt::OCI_MANIFEST),
    (mt::DOCKER_MANIFEST_LIST, mt::OCI_INDEX),
];

/// The equivalent of a config, layer or manifest media type in `to`'s family: the type itself
/// when it already belongs there, `None` when the family has no equivalent (OCI zstd
/// non-distributable layers have no Docker type; artifact types have no Docker type).
///
/// ```
/// use oci_manifest::{convert::{convert_media_type, Flavor}, media_types as mt};
/// assert_eq!(convert_media_type(mt::DOCKER_LAYER_FOREIGN_GZIP, Flavor::Oci), Some(mt::OCI_LAYER_NONDIST_GZIP));
/// assert_eq!(convert_media_type(mt::OCI_LAYER_ZSTD, Flavor::Docker), Some(mt::DOCKER_LAYER_ZSTD));
/// assert_eq!(convert_media_type(mt::OCI_LAYER_NONDIST_ZSTD, Flavor::Docker), None);
/// ```
pub fn convert_media_type(media_type: &str, to: Flavor) -> Option<&'static str> {
    let m = mt::essence(media_type);
    PAIRS.iter().find_map(|&(docker, oci)| match to {
        Flavor::Oci if m == docker || m == oci => Some(oci),
        Flavor::Docker if m == docker || m == oci => Some(docker),
        _ => None,
    })
}

/// A converted manifest and what the conversion left out.
#[derive(Clone, Debug)]
pub struct Converted {
    /// The new manifest (the input itself when it already was of the target flavor).
    pub manifest: Manifest,
    /// Fields of the input with no place in the target format, by JSON path
    /// (`annotations`: Docker manifests have no top-level annotations).
    pub dropped: Vec<String>,
}

fn convert_err(m: &Manifest, reason: impl Into<String>) -> ManifestError {
    ManifestError::Convert {
        digest: m.digest().clone(),
        media_type: m.media_type().to_owned(),
        reason: reason.into(),
    }
}

/// Converts an image manifest to `to`'s media types. Config and layer media types are mapped
/// (gzip, zstd, uncompressed, foreign/non-distributable); layer types with no counterpart
/// (artifact content) are kept when converting to OCI and refused when converting to Docker.
/// To Docker, a subject or an `artifactType` is refused (they would be lost) and top-level
/// annotations are dropped and reported in [`Converted::dropped`].
///
/// ```
/// use oci_manifest::{build::ImageManifestBuilder, convert::{convert, Flavor}, media_types as mt, Descriptor};
/// let docker = ImageManifestBuilder::docker(Descriptor::of(mt::DOCKER_CONFIG, b"{}"))
///     .layer(Descriptor::of(mt::DOCKER_LAYER_GZIP, b"layer"))
///     .build()
///     .unwrap();
/// let oci = convert(&docker, Flavor::Oci).unwrap().manifest;
/// assert_eq!(oci.media_type(), mt::OCI_MANIFEST);
/// assert_eq!(oci.layers()[0].media_type, mt::OCI_LAYER_GZIP);
/// assert_eq!(oci.layers()[0].digest, docker.layers()[0].digest);
/// let back = convert(&oci, Flavor::Docker).unwrap().manifest;
/// assert_eq!(back.digest(), docker.digest());
/// ```
pub fn convert(m: &Manifest, to: Flavor) -> Result<Converted, ManifestError> {
    if m.is_index() {
        return Err(convert_err(
            m,
            "an index needs its entries converted: use convert_index",
        ));
    }
    if Flavor::of(m.kind()) == to {
        return Ok(Converted {
            manifest: m.clone(),
            dropped: Vec::new(),
        });
    }
    let Some(config) = m.config() else {
        return Err(convert_err(m, "image manifest without config"));
    };
    let mut dropped = Vec::new();
    let map = |d: &Descriptor, field: &str| -> Result<Descriptor, ManifestError> {
        let mut d = d.clone();
        match (convert_media_type(&d.media_type, to), to) {
            (Some(t), _) => d.media_type = t.to_owned(),
            (None, Flavor::Oci) => {}
            (None, _) => {
                return Err(convert_err(
                    m,
                    format!(
                        "{field} has media type {} with no Docker equivalent",
                        d.media_type
                    ),
                ));
            }
        }
        Ok(d)
    };
    let config = map(config, "config")?;
    let layers = m
        .layers()
        .iter()
        .enumerate()
        .map(|(i, l)| map(l, &format!("layers[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut b = match to {
        Flavor::Oci => ImageManifestBuilder::oci(config),
        Flavor::Docker => {
            if m.subject().is_some() {
                return Err(convert_err(m, "Docker manifests cannot carry a subject"));
            }
            if m.artifact_type().is_some() {
                return Err(convert_err(
                    m,
                    "Docker manifests cannot carry an artifactType",
                ));
            }
            ImageManifestBuilder::docker(config)
        }
    };
    b = b.layers(layers);
    match to {
        Flavor::Oci => b = b.metadata_from(m),
        _ => {
            if m.annotations().is_some() {
                dropped.push("annotations".to_owned());
            }
        }
    }
    Ok(Converted {
        manifest: b.build()?,
        dropped,
    })
}

/// Converts an index to `to`'s media types. `converted` maps the digest of each entry that was
/// converted to its new descriptor (media type, digest and size are taken from it; platform
/// and annotations stay the entry's). Entries not in `converted` must already be of the target
/// flavor, or the conversion fails naming them. To Docker, a subject or an `artifactType` is
/// refused and top-level annotations are dropped.
pub fn convert_index(
    index: &Manifest,
    to: Flavor,
    converted: &HashMap<Digest, Descriptor>,
) -> Result<Converted, ManifestError> {
    if !index.is_index() {
        return Err(convert_err(index, "not an index: use convert"));
    }
    let mut entries = Vec::with_capacity(index.manifests().len());
    for (i, e) in index.manifests().iter().enumerate() {
        let mut e = e.clone();
        if let Some(new) = converted.get(&e.digest) {
            e.media_type = new.media_type.clone();
            e.digest = new.digest.clone();
            e.size = new.size;
        } else if convert_media_type(&e.media_type, to) != Some(mt::essence(&e.media_type)) {
            return Err(convert_err(
                index,
                format!(
                    "manifests[{i}] ({}, {}) was not converted: convert it first and pass its new descriptor",
                    e.digest, e.media_type
                ),
            ));
        }
        entries.push(e);
    }
    let same_bytes = Flavor::of(index.kind()) == to && converted.is_empty();
    if same_bytes {
        return Ok(Converted {
            manifest: index.clone(),
            dropped: Vec::new(),
        });
    }
    let mut dropped = Vec::new();
    let kind = match to {
        Flavor::Oci => ManifestKind::OciIndex,
        Flavor::Docker => ManifestKind::DockerManifestList,
    };
    let mut b = IndexBuilder::of_kind(kind)?.manifests(entries);
    if to == Flavor::Docker {
        if index.subject().is_some() {
            return Err(convert_err(
                index,
                "Docker manifest lists cannot carry a subject",
            ));
        }
        if index.artifact_type().is_some() {
            return Err(convert_err(
                index,
                "Docker manifest lists cannot carry an artifactType",
            ));
        }
        if index.annotations().is_some() {
            dropped.push("annotations".to_owned());
        }
    } else {
        b = b.metadata_from(index);
    }
    Ok(Converted {
        manifest: b.build()?,
        dropped,
    })
}
