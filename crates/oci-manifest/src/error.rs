//! The crate's one error type.

use oci_digest::Digest;

/// Everything that can go wrong when parsing, validating, building, converting or selecting
/// from manifests. Variants carry the digest of the offending bytes and the media types and
/// sizes involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The manifest is larger than the configured limit; it was not hashed nor parsed.
    #[error("manifest of {size} bytes exceeds the size limit of {limit} bytes")]
    TooLarge {
        /// Size of the bytes offered.
        size: u64,
        /// The limit in force ([`ParseOptions::max_size`](crate::ParseOptions::max_size)).
        limit: usize,
    },
    /// The bytes are not JSON, not an object, or a field has the wrong type or an invalid value
    /// (for example a malformed digest or a negative size).
    #[error("manifest {digest} is not a valid manifest document: {source}")]
    Json {
        /// Digest of the bytes.
        digest: Digest,
        /// The JSON error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The same key appears twice in one JSON object. Different JSON parsers keep different
    /// copies, so two tools could see two different manifests behind one digest.
    #[error("manifest {digest} has the key {key:?} twice in the object at {path}")]
    DuplicateKey {
        /// Digest of the bytes.
        digest: Digest,
        /// The repeated key.
        key: String,
        /// Where the object is, as a JSON path (`$`, `$.layers[2].annotations`).
        path: String,
    },
    /// `schemaVersion` is missing or is not 2.
    #[error("manifest {digest} has schemaVersion {found}, expected 2")]
    SchemaVersion {
        /// Digest of the bytes.
        digest: Digest,
        /// What was found (`missing` when absent).
        found: String,
    },
    /// A Docker schema 1 manifest: obsolete, unsupported by this crate.
    #[error(
        "manifest {digest} is a Docker schema 1 manifest ({}); schema 1 is obsolete and not supported: convert the image to schema 2 or OCI", if *signed { "signed, application/vnd.docker.distribution.manifest.v1+prettyjws" } else { "unsigned, application/vnd.docker.distribution.manifest.v1+json" }
    )]
    Schema1 {
        /// Digest of the bytes.
        digest: Digest,
        /// Whether it carries JWS signatures.
        signed: bool,
    },
    /// A Docker schema 1 manifest that cannot be read or converted (see
    /// [`schema1`](crate::schema1)): the reason names the field; text taken from the document is
    /// quoted with its control characters escaped.
    #[error("Docker schema 1 manifest {digest} cannot be converted: {reason}")]
    Schema1Invalid {
        /// Digest of its payload (of the bytes, when even the payload could not be found).
        digest: Digest,
        /// What is wrong.
        reason: String,
    },
    /// The media type is not one of the manifest types this crate handles.
    #[error("manifest {digest} has unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        /// Digest of the bytes.
        digest: Digest,
        /// The media type found.
        media_type: String,
    },
    /// The `mediaType` in the JSON and the `Content-Type` it was served with disagree.
    #[error(
        "manifest {digest} declares mediaType {in_document:?} but was served as {content_type:?}"
    )]
    MediaTypeConflict {
        /// Digest of the bytes.
        digest: Digest,
        /// `mediaType` from the JSON.
        in_document: String,
        /// The `Content-Type` given to the parser.
        content_type: String,
    },
    /// The fields present do not fit the media type (an index with `layers`, a manifest
    /// without `config`, ...), or the shape cannot be told at all.
    #[error("manifest {digest} ({media_type}) is malformed: {reason}")]
    Shape {
        /// Digest of the bytes.
        digest: Digest,
        /// The media type the document was judged as.
        media_type: String,
        /// What is wrong.
        reason: String,
    },
    /// A descriptor inside the manifest is invalid.
    #[error("manifest {digest}: descriptor {field} ({descriptor_digest}): {reason}")]
    InvalidDescriptor {
        /// Digest of the manifest bytes.
        digest: Digest,
        /// Where the descriptor is (`config`, `layers[1]`, `manifests[0]`, `subject`).
        field: String,
        /// The descriptor's own digest.
        descriptor_digest: Digest,
        /// What is wrong.
        reason: String,
    },
    /// The bytes do not hash to the digest they were expected to have (a pinned reference, a
    /// descriptor).
    #[error("manifest digest mismatch: expected {expected}, got {actual} ({size} bytes)")]
    DigestMismatch {
        /// The digest that was asked for.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
        /// Size of the bytes received.
        size: u64,
    },
    /// The bytes do not have the size their descriptor states.
    #[error("manifest {digest} size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The digest that was asked for.
        digest: Digest,
        /// The size the descriptor states.
        expected: u64,
        /// The size received.
        actual: u64,
    },
    /// The descriptor's media type does not match the manifest's.
    #[error("manifest {digest} is {actual:?} but its descriptor says {expected:?}")]
    DescriptorMediaType {
        /// Digest of the bytes.
        digest: Digest,
        /// The media type in the descriptor.
        expected: String,
        /// The media type of the parsed manifest.
        actual: String,
    },
    /// Indexes nested deeper than the configured limit.
    #[error("index nesting too deep at {digest}: depth {depth} exceeds the limit of {limit}")]
    IndexTooDeep {
        /// The manifest at which the limit was passed.
        digest: Digest,
        /// Its depth (the top index is depth 0).
        depth: usize,
        /// The limit in force.
        limit: usize,
    },
    /// An index nested in the one being walked was not among the manifests given (see
    /// [`platform::select_nested`](crate::platform::select_nested)).
    #[error("index {index} lists {missing} ({media_type}), which was not given")]
    MissingManifest {
        /// The index that lists it.
        index: Digest,
        /// The digest of the manifest not found.
        missing: Digest,
        /// Its media type, as the index states it.
        media_type: String,
    },
    /// A digest in a value of another crate's types (an `oci_spec` descriptor) is not one this
    /// crate can verify: an algorithm other than sha256 and sha512, or a malformed encoding.
    #[error("{field}: {source}")]
    InvalidDigest {
        /// Where the digest is (`digest`, `config.digest`, `layers[1].digest`, ...).
        field: String,
        /// Why it is refused, with the digest.
        #[source]
        source: oci_digest::ParseDigestError,
    },
    /// A platform string could not be parsed.
    #[error("invalid platform {input:?}: {reason}")]
    InvalidPlatform {
        /// The text given.
        input: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// No entry of an index matches the wanted platform.
    #[error(
        "no image for platform {wanted} in index {index}; available: {}",
        if available.is_empty() { "none".to_owned() } else { available.join(", ") }
    )]
    NoMatchingPlatform {
        /// The index searched.
        index: Digest,
        /// The platform asked for.
        wanted: String,
        /// The platforms the index offers (attestation entries excluded).
        available: Vec<String>,
    },
    /// A builder or a conversion was asked for something invalid.
    #[error("cannot build {what}: {reason}")]
    Build {
        /// What was being built.
        what: &'static str,
        /// Why it cannot be.
        reason: String,
    },
    /// A conversion was asked for a manifest that is already of the target kind, or cannot be
    /// converted.
    #[error("cannot convert manifest {digest} ({media_type}): {reason}")]
    Convert {
        /// Digest of the manifest.
        digest: Digest,
        /// Its media type.
        media_type: String,
        /// Why.
        reason: String,
    },
}

impl ManifestError {
    /// The digest of the manifest bytes the error is about, when it has been computed.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            ManifestError::TooLarge { .. }
            | ManifestError::InvalidPlatform { .. }
            | ManifestError::InvalidDigest { .. }
            | ManifestError::Build { .. } => None,
            ManifestError::Json { digest, .. }
            | ManifestError::DuplicateKey { digest, .. }
            | ManifestError::SchemaVersion { digest, .. }
            | ManifestError::Schema1 { digest, .. }
            | ManifestError::Schema1Invalid { digest, .. }
            | ManifestError::UnsupportedMediaType { digest, .. }
            | ManifestError::MediaTypeConflict { digest, .. }
            | ManifestError::Shape { digest, .. }
            | ManifestError::InvalidDescriptor { digest, .. }
            | ManifestError::SizeMismatch { digest, .. }
            | ManifestError::DescriptorMediaType { digest, .. }
            | ManifestError::IndexTooDeep { digest, .. }
            | ManifestError::Convert { digest, .. } => Some(digest),
            ManifestError::DigestMismatch { actual, .. } => Some(actual),
            ManifestError::NoMatchingPlatform { index, .. }
            | ManifestError::MissingManifest { index, .. } => Some(index),
        }
    }
}
