//! Reducing an index to some platforms.

use crate::build::IndexBuilder;
use crate::descriptor::{Descriptor, annotations};
use crate::error::ManifestError;
use crate::manifest::Manifest;
use crate::platform::{self, Platform};

/// The result of [`reduce`].
#[derive(Clone, Debug)]
pub struct Reduced {
    /// The new index: new bytes, new digest, same kind, subject and annotations as the
    /// original.
    pub index: Manifest,
    /// Everything the new index references (its [`Manifest::children`]): what a store must keep
    /// alive while the reduced index exists.
    pub references: Vec<Descriptor>,
    /// The entries of the original index left out.
    pub dropped: Vec<Descriptor>,
}

/// A new index holding only the entries of `index` whose platform is one of `platforms`.
///
/// An entry is kept when one of `platforms` [`matches`](Platform::matches) its platform
/// (equal after normalisation: `linux/arm64` keeps `linux/aarch64` and `linux/arm64/v8`
/// entries, not `linux/arm/v7`; a Windows platform with an `os.version` keeps the compatible
/// builds).
/// Build attestations attached to a kept entry (BuildKit's `unknown/unknown` manifests whose
/// `vnd.docker.reference.digest` names it) are kept too; other attestations, and entries
/// without a platform, are dropped. Entries keep their order and their descriptors unchanged
/// (annotations included), and the index keeps its subject and annotations.
///
/// Fails with [`ManifestError::NoMatchingPlatform`] when no entry matches (an empty image is
/// never what was meant), and with [`ManifestError::Build`] when `index` is not an index.
///
/// ```
/// use oci_manifest::{build::IndexBuilder, media_types, reduce, Descriptor, Platform};
/// let entry = |arch: &str| Descriptor::of(media_types::OCI_MANIFEST, arch.as_bytes())
///     .with_platform(Platform::new("linux", arch));
/// let index = IndexBuilder::oci()
///     .manifests([entry("amd64"), entry("arm64"), entry("s390x")])
///     .build()
///     .unwrap();
/// let r = reduce(&index, &[Platform::new("linux", "arm64")]).unwrap();
/// assert_eq!(r.index.manifests(), &[entry("arm64")]);
/// assert_eq!(r.references, vec![entry("arm64")]);
/// assert_eq!(r.dropped.len(), 2);
/// ```
pub fn reduce(index: &Manifest, platforms: &[Platform]) -> Result<Reduced, ManifestError> {
    if !index.is_index() {
        return Err(ManifestError::Build {
            what: "reduced index",
            reason: format!("{} is a {}, not an index", index.digest(), index.kind()),
        });
    }
    let keep_image = |d: &Descriptor| {
        !platform::is_attestation(d)
            && d.platform
                .as_ref()
                .is_some_and(|p| platforms.iter().any(|w| w.matches(p)))
    };
    let kept_images: Vec<&Descriptor> =
        index.manifests().iter().filter(|d| keep_image(d)).collect();
    if kept_images.is_empty() {
        return Err(ManifestError::NoMatchingPlatform {
            index: index.digest().clone(),
            wanted: platforms
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            available: platform::available(index)
                .iter()
                .map(ToString::to_string)
                .collect(),
        });
    }
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for d in index.manifests() {
        let keep = keep_image(d)
            || (platform::is_attestation(d)
                && d.annotation(annotations::DOCKER_REFERENCE_DIGEST)
                    .is_some_and(|target| kept_images.iter().any(|k| k.digest == target)));
        if keep {
            kept.push(d.clone());
        } else {
            dropped.push(d.clone());
        }
    }
    let new = IndexBuilder::of_kind(index.kind())?
        .metadata_from(index)
        .manifests(kept)
        .build()?;
    let references = new.children().to_vec();
    Ok(Reduced {
        index: new,
        references,
        dropped,
    })
}
