//! Content descriptors: what a manifest says about each piece of content it points to.

use std::collections::BTreeMap;

use oci_digest::Digest;
use serde::{Deserialize, Serialize};

use crate::media_types;
use crate::platform::Platform;

/// An OCI content descriptor: media type, digest and size of a blob or manifest, plus optional
/// fields. Optional fields are left out of the JSON when `None`.
///
/// ```
/// use oci_digest::Algorithm;
/// use oci_manifest::{media_types, Descriptor};
///
/// let config = b"{}";
/// let d = Descriptor::new(media_types::OCI_EMPTY_JSON, Algorithm::Sha256.hash(config), 2);
/// assert!(!d.is_manifest());
/// let json = serde_json::to_string(&d).unwrap();
/// assert_eq!(
///     json,
///     r#"{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}"#
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// The digest of the referenced content's exact bytes.
    pub digest: Digest,
    /// The size in bytes of the referenced content.
    pub size: u64,
    /// Other places the content may be fetched from (used by foreign layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Arbitrary metadata; keys are reverse-domain names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The platform the referenced manifest runs on (entries of an index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type of the referenced manifest (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The content itself, base64-encoded, embedded in the descriptor (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Descriptor {
    /// A descriptor with only the three required fields set.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
            data: None,
        }
    }

    /// A descriptor of `content`: its SHA-256 digest and size.
    ///
    /// ```
    /// use oci_manifest::{Descriptor, media_types};
    /// let d = Descriptor::of(media_types::OCI_EMPTY_JSON, b"{}");
    /// assert_eq!(d.size, 2);
    /// ```
    pub fn of(media_type: impl Into<String>, content: &[u8]) -> Self {
        Descriptor::new(
            media_type,
            oci_digest::Algorithm::Sha256.hash(content),
            content.len() as u64,
        )
    }

    /// A descriptor of `content` that also carries it in its `data` field (base64), so that
    /// readers need not fetch it. Keep this for small content (the OCI empty JSON, short
    /// configs): the whole manifest is limited in size.
    ///
    /// ```
    /// use oci_manifest::{Descriptor, media_types};
    /// let d = Descriptor::embedded(media_types::OCI_EMPTY_JSON, b"{}");
    /// assert_eq!(d.data.as_deref(), Some("e30="));
    /// assert_eq!(d.embedded_data().unwrap().unwrap(), b"{}");
    /// ```
    pub fn embedded(media_type: impl Into<String>, content: &[u8]) -> Self {
        let mut d = Descriptor::of(media_type, content);
        d.data = Some(crate::base64::encode(content));
        d
    }

    /// The content embedded in `data`, checked against the size and digest: `None` when there
    /// is no `data`, `Some(Err(reason))` when it is not base64 or does not match.
    pub fn embedded_data(&self) -> Option<Result<Vec<u8>, String>> {
        let data = self.data.as_deref()?;
        Some(crate::base64::check_embedded(data, self))
    }

    /// Whether the descriptor points to a manifest or an index (OCI or Docker), that is, to
    /// content that has children of its own.
    ///
    /// ```
    /// use oci_manifest::{media_types, Descriptor};
    /// assert!(Descriptor::of(media_types::OCI_INDEX, b"").is_manifest());
    /// assert!(!Descriptor::of(media_types::OCI_LAYER_GZIP, b"").is_manifest());
    /// ```
    pub fn is_manifest(&self) -> bool {
        media_types::is_manifest(&self.media_type)
    }

    /// Whether the descriptor points to an OCI index or a Docker manifest list.
    ///
    /// ```
    /// use oci_manifest::{media_types, Descriptor};
    /// assert!(Descriptor::of(media_types::DOCKER_MANIFEST_LIST, b"").is_index());
    /// assert!(!Descriptor::of(media_types::OCI_MANIFEST, b"").is_index());
    /// ```
    pub fn is_index(&self) -> bool {
        media_types::is_index(&self.media_type)
    }

    /// Whether the descriptor points to a non-distributable layer (the OCI spec's term;
    /// Docker calls them foreign layers): content that registries do not serve and that may
    /// live at the descriptor's [`urls`](Descriptor::urls) instead, such as Windows base
    /// layers. Copying tools skip those blobs unless told otherwise, and a store that lacks
    /// one is not missing content. See [`media_types::is_non_distributable`] for the media
    /// types.
    ///
    /// ```
    /// use oci_manifest::{media_types, Descriptor};
    /// let foreign = Descriptor::of(media_types::DOCKER_LAYER_FOREIGN_GZIP, b"base layer");
    /// assert!(foreign.is_non_distributable());
    /// let nondist = Descriptor::of(media_types::OCI_LAYER_NONDIST_ZSTD, b"base layer");
    /// assert!(nondist.is_non_distributable());
    /// assert!(!Descriptor::of(media_types::OCI_LAYER_GZIP, b"layer").is_non_distributable());
    /// ```
    pub fn is_non_distributable(&self) -> bool {
        media_types::is_non_distributable(&self.media_type)
    }

    /// The value of annotation `key`, if any.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// Sets the platform (builder style).
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// Adds one annotation (builder style).
    pub fn with_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
        self
    }

    /// Sets the artifact type (builder style).
    pub fn with_artifact_type(mut self, artifact_type: impl Into<String>) -> Self {
        self.artifact_type = Some(artifact_type.into());
        self
    }
}

/// Well-known annotation keys.
pub mod annotations {
    /// The tag (or other reference name) of an entry in an OCI layout's `index.json`.
    pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
    /// When the image was created (RFC 3339).
    pub const CREATED: &str = "org.opencontainers.image.created";
    /// Title of the content (for artifacts, the file name).
    pub const TITLE: &str = "org.opencontainers.image.title";
    /// BuildKit: what an attestation manifest in an index describes (`attestation-manifest`).
    pub const DOCKER_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
    /// BuildKit: the digest of the image an attestation manifest describes.
    pub const DOCKER_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_distributable_is_the_media_type_rule() {
        let d = |mt: &str| Descriptor::of(mt, b"x");
        for mt in [
            media_types::DOCKER_LAYER_FOREIGN_GZIP,
            media_types::DOCKER_LAYER_FOREIGN_TAR,
            media_types::OCI_LAYER_NONDIST_TAR,
            media_types::OCI_LAYER_NONDIST_GZIP,
            media_types::OCI_LAYER_NONDIST_ZSTD,
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip; foo=bar",
        ] {
            assert!(d(mt).is_non_distributable(), "{mt}");
            assert!(!d(mt).is_manifest() && !d(mt).is_index(), "{mt}");
        }
        for mt in [
            media_types::OCI_LAYER_GZIP,
            media_types::OCI_LAYER_TAR,
            media_types::OCI_LAYER_ZSTD,
            media_types::DOCKER_LAYER_GZIP,
            media_types::DOCKER_LAYER_TAR,
            media_types::OCI_CONFIG,
            media_types::OCI_MANIFEST,
            media_types::OCI_INDEX,
            "application/vnd.docker.image.rootfs.foreign.diff.tar.zstd",
        ] {
            assert!(!d(mt).is_non_distributable(), "{mt}");
        }
        // URLs do not make a layer non-distributable; the media type does.
        let mut with_urls = d(media_types::OCI_LAYER_GZIP);
        with_urls.urls = Some(vec!["https://example.invalid/layer".to_owned()]);
        assert!(!with_urls.is_non_distributable());
    }
}
