//! The crate's error type.

use std::path::PathBuf;

use oci_digest::{Digest, ParseDigestError, VerifyError};

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything a store operation can fail with.
///
/// Variants carry what a person needs to act: the digest, tag, ingest key or path involved, and
/// the lower error as [`source`](std::error::Error::source). Remote backends (a registry) report
/// their own failures through [`StoreError::Backend`].
///
/// ```
/// use oci_store::{MemoryStore, ReadStore, StoreError};
/// use oci_manifest::Descriptor;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let missing = oci_digest::Algorithm::Sha256.hash(b"nothing here");
/// let desc = Descriptor::new("application/octet-stream", missing.clone(), 12);
/// match store.fetch(&desc).await {
///     Err(StoreError::NotFound { digest }) => assert_eq!(digest, missing),
///     other => panic!("unexpected {:?}", other.map(|_| ())),
/// }
/// # });
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No content with this digest is stored.
    #[error("content {digest} not found")]
    NotFound {
        /// The digest looked up.
        digest: Digest,
    },
    /// The tag does not exist.
    #[error("tag {tag:?} not found")]
    TagNotFound {
        /// The tag looked up.
        tag: String,
    },
    /// The tag is not a valid reference name.
    #[error("invalid tag {tag:?}: {reason}")]
    InvalidTag {
        /// The offending tag (cut to 100 bytes).
        tag: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Stored content has another size than its descriptor says.
    #[error("content {digest} has {actual} bytes but its descriptor says {expected}")]
    SizeMismatch {
        /// The content's digest.
        digest: Digest,
        /// Size from the descriptor.
        expected: u64,
        /// Size found.
        actual: u64,
    },
    /// Content did not verify against its descriptor (wrong digest, too short, too long).
    /// Nothing was made visible.
    #[error("content {} failed verification", .0.expected())]
    Verify(#[from] VerifyError),
    /// A string that should be a digest is not one (for example in `index.json`, in an ingest
    /// record, or a blob file name).
    #[error("invalid digest in {context}")]
    InvalidDigest {
        /// Where the string was found.
        context: String,
        /// The parse error, carrying the offending input.
        #[source]
        source: ParseDigestError,
    },
    /// A manifest is larger than the limit the caller allowed.
    #[error("manifest {digest} has {size} bytes, more than the limit of {limit}")]
    ManifestTooLarge {
        /// The manifest's digest.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Content declared (or sniffed) as a manifest could not be parsed.
    #[error("manifest {digest} cannot be parsed")]
    InvalidManifest {
        /// The manifest's digest.
        digest: Digest,
        /// Why it cannot be parsed.
        #[source]
        source: oci_manifest::ManifestError,
    },
    /// Indexes nest deeper than the allowed limit (or, for hostile content, without end).
    #[error("index nesting deeper than {limit} levels below {root} (at {digest})")]
    NestingTooDeep {
        /// The root the walk started from.
        root: Digest,
        /// The manifest found at the limit.
        digest: Digest,
        /// The depth limit.
        limit: usize,
    },
    /// A manifest refers (directly or through others) to itself.
    #[error("manifest {digest} refers to itself (cycle below {root})")]
    Cycle {
        /// The root the walk started from.
        root: Digest,
        /// The manifest that closes the cycle.
        digest: Digest,
    },
    /// A resumable ingest is in use by another writer (in this or another process).
    #[error("ingest {key:?} is in use by another writer")]
    IngestBusy {
        /// The ingest key.
        key: String,
    },
    /// An ingest key is already used for other content.
    #[error("ingest {key:?} is for {existing}, not {requested}")]
    IngestMismatch {
        /// The ingest key.
        key: String,
        /// Digest the existing ingest expects.
        existing: Digest,
        /// Digest the caller asked for.
        requested: Digest,
    },
    /// The ingest key is not acceptable (empty, too long or with control characters).
    #[error("invalid ingest key {key:?}: {reason}")]
    InvalidIngestKey {
        /// The offending key (cut to 100 bytes).
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No ingest with this key exists.
    #[error("ingest {key:?} not found")]
    IngestNotFound {
        /// The ingest key.
        key: String,
    },
    /// The lease does not exist (never created, released, or expired and collected).
    #[error("lease {id:?} not found")]
    LeaseNotFound {
        /// The lease id.
        id: String,
    },
    /// The lease expired before the operation could pin content with it.
    #[error("lease {id:?} has expired")]
    LeaseExpired {
        /// The lease id.
        id: String,
    },
    /// A file of the layout is not what the OCI image layout specification (or this crate's own
    /// state format) requires.
    #[error("corrupt layout file {}: {reason}", path.display())]
    CorruptLayout {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
        /// The parse error, when there is one.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// The directory is not an OCI image layout (and creating one was not asked for).
    #[error("{} is not an OCI image layout: {reason}", path.display())]
    NotALayout {
        /// The directory.
        path: PathBuf,
        /// What is missing.
        reason: &'static str,
    },
    /// The layout was opened read-only
    /// ([`LayoutOptions::read_only`](crate::LayoutOptions::read_only)) and the operation would
    /// change it.
    #[error("{operation} refused: {} was opened read-only", path.display())]
    ReadOnly {
        /// The layout's directory.
        path: PathBuf,
        /// What was refused ("push", "tag", "gc", ...).
        operation: &'static str,
    },
    /// An entry of the store's own directory tree is something the store never acts on: a
    /// symbolic link (which could lead out of the tree), a FIFO (whose open or read would block),
    /// a socket, a device, or a file where a directory belongs. Nothing is read, written or
    /// removed through it.
    #[error("refused {}: it is {found}, where {expected} belongs", path.display())]
    UnsafeEntry {
        /// The entry.
        path: PathBuf,
        /// What it is ("a symbolic link", "a FIFO", ...).
        found: &'static str,
        /// What the store expected there ("a regular file", "a directory").
        expected: &'static str,
    },
    /// A file of the store is larger than the limit this crate reads it with (the limit is
    /// applied while reading, so an endless or sparse file costs no more memory than the limit).
    #[error("{} is larger than the limit of {limit} bytes", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// A file system operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done ("open", "rename", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Reading the content stream given to a write failed (the source, not the store).
    #[error("reading the content for {digest} failed")]
    Source {
        /// The digest being written.
        digest: Digest,
        /// The stream's error.
        #[source]
        source: std::io::Error,
    },
    /// The operation is not supported by this store (for example range reads on a registry that
    /// refuses them).
    #[error("{operation} is not supported by this store")]
    Unsupported {
        /// The operation.
        operation: &'static str,
    },
    /// A store (typically a registry whose cache outlived its storage) claims to have content
    /// it does not serve, and storing the content again did not help (found by a copy that
    /// does not trust the destination: [`VerifyMode`](crate::VerifyMode)).
    #[error("{store} claims to have {digest} but does not serve it: {detail}")]
    ClaimsUnserved {
        /// The store (a registry repository, or "the destination").
        store: String,
        /// The content.
        digest: Digest,
        /// What was seen.
        detail: String,
    },
    /// No entry of an index matches the platforms asked for. The source (a
    /// [`ManifestError::NoMatchingPlatform`](oci_manifest::ManifestError::NoMatchingPlatform))
    /// names the platform asked for and the platforms the index offers.
    #[error("index {digest} has no image for the platforms asked for")]
    NoMatchingPlatform {
        /// The index.
        digest: Digest,
        /// What the platform selection found.
        #[source]
        source: oci_manifest::ManifestError,
    },
    /// An index lists an image for `platform` whose manifest the source does not hold (a sparse
    /// index, as left by a pull of one platform). Selecting only the platforms the source holds
    /// ([`CopyOptions::platforms`](crate::CopyOptions::platforms); `--platform` in the copy
    /// example) copies the rest.
    #[error(
        "index {index} lists {digest} for platform {platform}, which the source does not hold \
         (a sparse index): select the platforms it holds (--platform OS/ARCH)"
    )]
    PlatformMissing {
        /// The index.
        index: Digest,
        /// The platform of the missing entry.
        platform: String,
        /// The missing manifest.
        digest: Digest,
        /// The error reading it.
        #[source]
        source: Box<StoreError>,
    },
    /// Sizes declared by descriptors (a peer's numbers) add up to more than `u64::MAX` bytes, so
    /// no total can be computed: two layers of 2^63 bytes, say. Nothing was transferred.
    #[error(
        "sizes overflow: {what} exceeds {} bytes when adding {digest} ({size} bytes)",
        u64::MAX
    )]
    SizeOverflow {
        /// The content whose declared size did not fit.
        digest: Digest,
        /// The size its descriptor declares.
        size: u64,
        /// The total being computed ("the copy's total", ...).
        what: &'static str,
    },
    /// An archive (`docker-archive`, `oci-archive`) is not what its format requires, or is
    /// hostile: truncated, a member whose header lies about its size, a name with `..` or an
    /// absolute path, a link pointing outside the archive, a duplicate member, a
    /// `manifest.json` naming missing files or files whose digest is not the one their name or
    /// the configuration states, sizes past a limit. Nothing was extracted; `member` and
    /// `reason` quote the archive with control characters escaped.
    #[error("invalid archive {}: {member}: {reason}", path.display())]
    InvalidArchive {
        /// The archive file.
        path: PathBuf,
        /// The member concerned (`-` for the archive as a whole), escaped.
        member: String,
        /// What is wrong, escaped.
        reason: String,
    },
    /// A layer's uncompressed bytes do not hash to the diff ID its image configuration lists
    /// (`rootfs.diff_ids`), found while writing or reading an archive or computing diff IDs.
    #[error("layer {layer} has diff ID {actual}, but its image configuration lists {expected}")]
    DiffIdMismatch {
        /// The layer (as stored or sent).
        layer: Digest,
        /// The diff ID the configuration lists.
        expected: Digest,
        /// The digest of the layer's uncompressed bytes.
        actual: Digest,
    },
    /// A failure of a store backend this crate does not know (a registry client, say).
    #[error("store backend error: {context}")]
    Backend {
        /// What was being done, with the reference or digest involved.
        context: String,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl StoreError {
    /// Wraps an I/O error with the operation and path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> StoreError {
        // A verification failure surfacing through an io::Error keeps its type.
        if let Some(v) = VerifyError::from_io(&source) {
            return StoreError::Verify(v.clone());
        }
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Wraps an error of a backend this crate does not know.
    pub fn backend(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> StoreError {
        StoreError::Backend {
            context: context.into(),
            source: source.into(),
        }
    }

    /// Whether the operation may succeed if tried again: the error is a failure of I/O, of
    /// reading a content stream, or of a backend (the network, a registry's 5xx) whose chain
    /// holds no cause a retry cannot cure. Such a cause is the first [`std::io::Error`] in the
    /// chain ([`source`](std::error::Error::source)s, and errors wrapped inside I/O errors) of
    /// kind `ConnectionRefused` (nothing listens at the address), `TimedOut` (a deadline or a
    /// minimum transfer rate already waited its full time: a registry client reports those
    /// so), `PermissionDenied` (a registry's 401 or 403 included), `InvalidInput` (a request
    /// the peer refuses as it stands: a registry client reports a `405` or a `4xx` saying the
    /// manifest, name or tag is invalid so), `ReadOnlyFilesystem` or `StorageFull`: errors of
    /// backends this crate does not know are classified by the standard vocabulary of their
    /// causes.
    ///
    /// Everything else is not transient: content or tags missing or invalid, sizes, limits,
    /// unsafe entries, and content that failed verification
    /// ([`is_verification_failure`](Self::is_verification_failure)): the error alone does not
    /// say whether the bytes came over a network (where they may have been damaged in flight,
    /// and a retry may help) or from local storage (which serves the same bytes every time).
    /// A caller that knows adds that rule itself, as [`copy`](crate::copy) does.
    ///
    /// ```
    /// use std::io::{Error, ErrorKind};
    /// use oci_store::StoreError;
    /// let reset = StoreError::io("read", "/x", Error::from(ErrorKind::ConnectionReset));
    /// assert!(reset.is_transient());
    /// let refused = StoreError::backend("GET /v2/", Error::from(ErrorKind::ConnectionRefused));
    /// assert!(!refused.is_transient());
    /// let missing = StoreError::NotFound { digest: oci_store::Algorithm::Sha256.hash(b"x") };
    /// assert!(!missing.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        let may = match self {
            StoreError::Source { source, .. } if VerifyError::from_io(source).is_some() => false,
            // A piece writer refusing a piece (out of range, wrong length, already held) is a
            // caller's error: sending the same piece again cannot change the answer.
            StoreError::Backend { source, .. }
                if source
                    .downcast_ref::<crate::traits::PieceRefused>()
                    .is_some() =>
            {
                false
            }
            StoreError::Io { .. } | StoreError::Source { .. } | StoreError::Backend { .. } => true,
            _ => false,
        };
        may && !self.has_permanent_cause()
    }

    /// Whether this error says content did not verify against its descriptor (wrong digest,
    /// too short, too long): [`StoreError::Verify`], or a content stream that failed so
    /// ([`StoreError::Source`] carrying a [`VerifyError`]).
    ///
    /// ```
    /// let d = oci_store::Algorithm::Sha256.hash(b"x");
    /// let e = oci_store::StoreError::SizeMismatch { digest: d, expected: 1, actual: 2 };
    /// assert!(!e.is_verification_failure());
    /// ```
    pub fn is_verification_failure(&self) -> bool {
        match self {
            StoreError::Verify(_) => true,
            StoreError::Source { source, .. } => VerifyError::from_io(source).is_some(),
            _ => false,
        }
    }

    /// Whether the chain of this error holds a cause a retry cannot cure (see
    /// [`is_transient`](Self::is_transient)).
    pub(crate) fn has_permanent_cause(&self) -> bool {
        permanent_cause(self).is_some()
    }

    /// Whether this error says the content or tag does not exist.
    ///
    /// ```
    /// let e = oci_store::StoreError::TagNotFound { tag: "latest".into() };
    /// assert!(e.is_not_found());
    /// ```
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound { .. }
                | StoreError::TagNotFound { .. }
                | StoreError::IngestNotFound { .. }
                | StoreError::LeaseNotFound { .. }
        )
    }
}

/// The kind of the first [`std::io::Error`] in `e`'s chain that says a retry cannot help (see
/// [`StoreError::is_transient`]).
pub(crate) fn permanent_cause(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    use std::io::ErrorKind as K;
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::TimedOut
                    | K::PermissionDenied
                    | K::InvalidInput
                    | K::ReadOnlyFilesystem
                    | K::StorageFull
            ) {
                return Some(io.kind());
            }
            // `io::Error::source` skips the error it wraps (going to that error's source):
            // look at the wrapped error itself.
            if let Some(inner) = io.get_ref() {
                cur = Some(inner);
                continue;
            }
        }
        cur = err.source();
    }
    None
}

/// An error and its chain of sources, joined by `: ` (for reports, logs and messages).
///
/// ```
/// let e = oci_store::StoreError::io("open", "/x", std::io::Error::other("denied"));
/// assert_eq!(oci_store::error_chain(&e), "open /x: denied");
/// ```
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Cuts a user-supplied string for an error message.
pub(crate) fn cut(s: &str) -> String {
    const MAX: usize = 100;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}
