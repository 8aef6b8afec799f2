//! Media types of OCI and Docker manifests, indexes, configs and layers.
//!
//! ```
//! use oci_manifest::media_types::{self, is_index, is_manifest};
//! assert!(is_manifest(media_types::DOCKER_MANIFEST_LIST));
//! assert!(is_index(media_types::OCI_INDEX));
//! assert!(!is_manifest(media_types::OCI_LAYER_GZIP));
//! // Parameters such as `; charset=utf-8` are ignored.
//! assert!(is_manifest("application/vnd.oci.image.manifest.v1+json; charset=utf-8"));
//! ```

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image configuration.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The OCI empty descriptor's media type (the two bytes `{}`), used as config of artifacts.
pub const OCI_EMPTY_JSON: &str = "application/vnd.oci.empty.v1+json";
/// OCI uncompressed tar layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip-compressed tar layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd-compressed tar layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable uncompressed tar layer (deprecated by the spec, still seen).
pub const OCI_LAYER_NONDIST_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable gzip tar layer (deprecated by the spec, still seen).
pub const OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable zstd tar layer (deprecated by the spec, still seen).
pub const OCI_LAYER_NONDIST_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (the Docker counterpart of an OCI index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker container image configuration.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker uncompressed tar layer.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker gzip-compressed tar layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker "foreign" gzip layer (Windows base layers, not pushed to registries).
pub const DOCKER_LAYER_FOREIGN_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker "foreign" uncompressed layer.
pub const DOCKER_LAYER_FOREIGN_TAR: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar";
/// Docker zstd-compressed tar layer (as written by some Docker/BuildKit versions).
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Docker schema 1 manifest, unsigned (obsolete; refused by [`Manifest::parse`](crate::Manifest::parse), read
/// and converted by [`schema1`](crate::schema1)).
pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1 manifest, signed with JWS (obsolete; refused by
/// [`Manifest::parse`](crate::Manifest::parse), read and converted by [`schema1`](crate::schema1)).
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The four manifest and index media types this crate parses, for `Accept` headers.
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// The media type without parameters (`; charset=...`) and surrounding blanks.
///
/// ```
/// assert_eq!(
///     oci_manifest::media_types::essence(" application/vnd.oci.image.index.v1+json ; charset=utf-8"),
///     "application/vnd.oci.image.index.v1+json"
/// );
/// ```
pub fn essence(media_type: &str) -> &str {
    match media_type.split_once(';') {
        Some((head, _)) => head.trim(),
        None => media_type.trim(),
    }
}

/// Whether `media_type` is an image manifest or an index, OCI or Docker schema 2.
pub fn is_manifest(media_type: &str) -> bool {
    MANIFEST_MEDIA_TYPES.contains(&essence(media_type))
}

/// Whether `media_type` is an OCI index or a Docker manifest list.
pub fn is_index(media_type: &str) -> bool {
    matches!(essence(media_type), OCI_INDEX | DOCKER_MANIFEST_LIST)
}

/// Whether `media_type` is a Docker schema 1 manifest (signed or not).
pub fn is_schema1(media_type: &str) -> bool {
    matches!(
        essence(media_type),
        DOCKER_MANIFEST_V1 | DOCKER_MANIFEST_V1_SIGNED
    )
}

/// Whether `media_type` is a layer type that registries do not serve (foreign or
/// non-distributable): copying tools skip those blobs unless told otherwise. On a descriptor,
/// [`Descriptor::is_non_distributable`](crate::Descriptor::is_non_distributable).
///
/// ```
/// use oci_manifest::media_types::{self, is_non_distributable};
/// assert!(is_non_distributable(media_types::DOCKER_LAYER_FOREIGN_TAR));
/// assert!(is_non_distributable(media_types::OCI_LAYER_NONDIST_GZIP));
/// assert!(!is_non_distributable(media_types::OCI_LAYER_GZIP));
/// ```
pub fn is_non_distributable(media_type: &str) -> bool {
    matches!(
        essence(media_type),
        DOCKER_LAYER_FOREIGN_GZIP
            | DOCKER_LAYER_FOREIGN_TAR
            | OCI_LAYER_NONDIST_TAR
            | OCI_LAYER_NONDIST_GZIP
            | OCI_LAYER_NONDIST_ZSTD
    )
}

/// Whether `s` has the shape of a media type: `type/subtype` made of RFC 6838 name characters,
/// optionally followed by parameters.
pub fn is_valid(s: &str) -> bool {
    fn name(part: &str) -> bool {
        !part.is_empty()
            && part.len() <= 127
            && part.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_alphanumeric()
                    || (i > 0
                        && matches!(
                            b,
                            b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                        ))
            })
    }
    let ess = match s.split_once(';') {
        Some((head, _)) => head,
        None => s,
    };
    match ess.split_once('/') {
        Some((t, sub)) => name(t) && name(sub),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        for m in MANIFEST_MEDIA_TYPES {
            assert!(is_manifest(m), "{m}");
            assert!(is_valid(m), "{m}");
        }
        assert!(is_index(OCI_INDEX) && is_index(DOCKER_MANIFEST_LIST));
        assert!(!is_index(OCI_MANIFEST) && !is_index(DOCKER_MANIFEST));
        assert!(!is_manifest(DOCKER_MANIFEST_V1) && is_schema1(DOCKER_MANIFEST_V1_SIGNED));
        assert!(!is_manifest(OCI_CONFIG) && !is_manifest("application/json"));
        assert!(is_non_distributable(DOCKER_LAYER_FOREIGN_GZIP));
        assert!(!is_non_distributable(OCI_LAYER_GZIP));
    }

    #[test]
    fn validity() {
        assert!(is_valid("application/vnd.cncf.helm.config.v1+json"));
        assert!(is_valid("text/plain; charset=utf-8"));
        for bad in [
            "",
            "application",
            "/json",
            "application/",
            "a/b/c",
            "a b/c",
            "-a/b",
        ] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }
}
