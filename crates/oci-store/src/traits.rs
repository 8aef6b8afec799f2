//! The store traits: read, write, tags, and the local-only management features.
//!
//! A store is one content namespace addressed by digest, plus tags. Manifests and blobs live in
//! the same namespace (as in oras-go's `Target`); a [`Descriptor`]'s media type tells a backend
//! that cares (a registry) which kind of content it handles.
//!
//! Traits are object safe: `&dyn Store` and `Arc<dyn Store>` work, so code such as a graph copy
//! can be written once for memory, disk and registry stores.

use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;
use oci_digest::{Digest, PieceLayout, PieceMap, Verified};
use oci_manifest::{Descriptor, Manifest};

use crate::error::{Result, StoreError};
use crate::gc::{FsckOptions, FsckReport, GcOptions, GcReport, Parent};
use crate::lease::{Lease, LeaseInfo};

/// A stream of content chunks, as produced by [`ReadStore::fetch`] and consumed by
/// [`WriteStore::push`].
///
/// A stream that ends without an error item delivered all of its content.
pub type BlobStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Makes a [`BlobStream`] of one chunk of bytes already in memory.
///
/// ```
/// let s = oci_store::bytes_stream(bytes::Bytes::from_static(b"abc"));
/// # drop(s);
/// ```
pub fn bytes_stream(data: Bytes) -> BlobStream {
    Box::pin(futures_util::stream::once(async move { Ok(data) }))
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PushOutcome {
    /// The content was verified and is now stored.
    Written,
    /// The store already had the content; nothing was written (the stream may not have been read
    /// to the end).
    AlreadyExists,
}

/// What [`WriteStore::writer_unless_present`] found: the content, or a writer for it.
#[non_exhaustive]
pub enum Opened {
    /// The store has the content: the size it answered with, when its answer carried one.
    Present {
        /// The stored size (`None`: the store's answer said nothing of it).
        size: Option<u64>,
    },
    /// The store does not have the content: a writer for it.
    Writer(Box<dyn BlobWriter>),
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Opened::Present { size } => f.debug_struct("Present").field("size", size).finish(),
            Opened::Writer(w) => f
                .debug_struct("Writer")
                .field("key", &w.key())
                .field("offset", &w.offset())
                .finish(),
        }
    }
}

/// State of a resumable ingest (an in-flight write keyed by an ingest key).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IngestStatus {
    /// The ingest key given to [`WriteStore::writer`].
    pub key: String,
    /// What the content must verify against.
    pub expected: Descriptor,
    /// Bytes received so far; the next write continues at this offset.
    pub offset: u64,
    /// When the ingest was started.
    pub started_at: SystemTime,
    /// When bytes were last received.
    pub updated_at: SystemTime,
}

impl IngestStatus {
    /// An ingest state (for store implementations outside this crate, such as a registry whose
    /// upload sessions are its ingests).
    pub fn new(
        key: impl Into<String>,
        expected: Descriptor,
        offset: u64,
        started_at: SystemTime,
        updated_at: SystemTime,
    ) -> IngestStatus {
        IngestStatus {
            key: key.into(),
            expected,
            offset,
            started_at,
            updated_at,
        }
    }
}

/// Where a store's content lives when it is one repository of a registry: the registry
/// (`host[:port]`) and the repository name. Two stores with the same registry and different
/// repositories can share blobs by a cross-repository mount ([`WriteStore::mount`]) instead of a
/// transfer. Local stores have no location ([`ReadStore::location`] is `None`).
///
/// ```
/// let a = oci_store::Location::new("127.0.0.1:5000", "team/app");
/// assert_eq!(a.to_string(), "127.0.0.1:5000/team/app");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Location {
    /// The registry, `host[:port]`.
    pub registry: String,
    /// The repository name within the registry (`team/app`).
    pub repository: String,
}

impl Location {
    /// A location from a registry and a repository name.
    pub fn new(registry: impl Into<String>, repository: impl Into<String>) -> Location {
        Location {
            registry: registry.into(),
            repository: repository.into(),
        }
    }

    /// Whether `other` is another repository of the same registry (a mount can work).
    pub fn can_mount_from(&self, other: &Location) -> bool {
        self.registry == other.registry && self.repository != other.repository
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

/// Read side of a store.
///
/// Existence is always asked of the storage itself: an answer of [`stat`](ReadStore::stat) is
/// never served from a cache.
///
/// ```
/// use bytes::Bytes;
/// use oci_manifest::Descriptor;
/// use oci_store::{MemoryStore, ReadStore, WriteStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let data = Bytes::from_static(b"layer bytes");
/// let desc = Descriptor::new(
///     "application/vnd.oci.image.layer.v1.tar",
///     oci_digest::Algorithm::Sha256.hash(&data),
///     data.len() as u64,
/// );
/// store.push_bytes(&desc, data.clone()).await?;
///
/// assert_eq!(store.stat(&desc.digest).await?, Some(11));
/// assert_eq!(store.fetch_bytes(&desc, 1024).await?, data);
/// let part = store.fetch_range(&desc, 6..11).await?;
/// assert_eq!(oci_store::collect(part, 1024).await?, Bytes::from_static(b"bytes"));
/// # Ok::<(), oci_store::StoreError>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait ReadStore: Send + Sync {
    /// The size of the content stored under `digest`, or `None` when it is not stored.
    ///
    /// Asked of the storage every time, never of a cache. On a store viewed
    /// [`with_lease`](ManagedStore::with_lease), content found by `stat` is pinned by the lease
    /// (so "already there, skip it" stays true until the lease ends).
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>>;

    /// Whether content with `digest` is stored; same as `stat(digest).is_some()`.
    async fn exists(&self, digest: &Digest) -> Result<bool> {
        Ok(self.stat(digest).await?.is_some())
    }

    /// [`stat`](Self::stat) of the content `desc` describes, for a store that keeps kinds of
    /// content apart: a registry answers blobs and manifests at two endpoints, and with the
    /// media type it asks only the one that serves `desc` (one request instead of two when the
    /// content is not there). The same rules as `stat` hold: asked of the storage, never of a
    /// cache. The default is `stat(&desc.digest)`.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use oci_manifest::Descriptor;
    /// use oci_store::{MemoryStore, ReadStore, WriteStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let data = Bytes::from_static(b"a layer");
    /// let desc = Descriptor::of("application/vnd.oci.image.layer.v1.tar", &data);
    /// assert_eq!(store.stat_descriptor(&desc).await?, None);
    /// store.push_bytes(&desc, data).await?;
    /// assert_eq!(store.stat_descriptor(&desc).await?, Some(7));
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    async fn stat_descriptor(&self, desc: &Descriptor) -> Result<Option<u64>> {
        self.stat(&desc.digest).await
    }

    /// Streams the content named by `desc`, verified against its digest and size: a stream that
    /// ends without an error item carried exactly the described content. A mismatch is an error
    /// item of kind `InvalidData` wrapping an [`oci_digest::VerifyError`].
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the content is not stored; [`StoreError::SizeMismatch`]
    /// when the store knows at once that the stored size differs.
    async fn fetch(&self, desc: &Descriptor) -> Result<BlobStream>;

    /// Streams the bytes `range` of the content named by `desc`.
    ///
    /// The bytes are **not** verified (a range cannot be); a caller resuming a download must
    /// verify the whole content itself (for instance by feeding a saved
    /// [`oci_digest::Verifier`] the range). A range past the end is cut to the content's size.
    async fn fetch_range(&self, desc: &Descriptor, range: Range<u64>) -> Result<BlobStream>;

    /// Streams the whole content named by `desc` **without** hashing it here, for a caller that
    /// verifies every byte itself, such as a store's writer or [`WriteStore::push`] (that is
    /// what [`copy`](crate::copy()) does: the destination's verification is the one that makes
    /// content visible, so hashing the same bytes at the source too would only cost a core).
    ///
    /// Stores that can skip their own hashing override this (the size may still be checked);
    /// the default is [`fetch`](ReadStore::fetch), verified.
    async fn fetch_unverified(&self, desc: &Descriptor) -> Result<BlobStream> {
        self.fetch(desc).await
    }

    /// Fetches small content into memory, verified, refusing content whose descriptor is larger
    /// than `limit` bytes before reading anything.
    async fn fetch_bytes(&self, desc: &Descriptor, limit: u64) -> Result<Bytes> {
        if desc.size > limit {
            return Err(StoreError::ManifestTooLarge {
                digest: desc.digest.clone(),
                size: desc.size,
                limit,
            });
        }
        let stream = self.fetch(desc).await?;
        collect(stream, limit).await.map_err(|e| match e {
            StoreError::Io { source, .. } => StoreError::Source {
                digest: desc.digest.clone(),
                source,
            },
            other => other,
        })
    }

    /// Fetches and parses the manifest or index named by `desc`, verified, with the default size
    /// limit ([`oci_manifest::DEFAULT_MAX_MANIFEST_SIZE`]).
    async fn fetch_manifest(&self, desc: &Descriptor) -> Result<Manifest> {
        let raw = self
            .fetch_bytes(desc, oci_manifest::DEFAULT_MAX_MANIFEST_SIZE as u64)
            .await?;
        Manifest::parse(raw, Some(desc.media_type.as_str())).map_err(|source| {
            StoreError::InvalidManifest {
                digest: desc.digest.clone(),
                source,
            }
        })
    }

    /// Where this store lives, when it is a repository of a registry; `None` (the default) for
    /// local stores. Used by a copy to decide whether a cross-repository mount can replace a
    /// transfer.
    fn location(&self) -> Option<Location> {
        None
    }

    /// The manifests that declare `subject` as their subject (signatures, SBOMs, attestations),
    /// as descriptors with `artifactType` and annotations (as the OCI referrers API lists them).
    ///
    /// `Ok(None)` (the default) means the store has no referrers index of its own: callers then
    /// use the tag schema fallback (an index tagged `<alg>-<encoded>` of the subject's digest,
    /// listing the referrers).
    async fn referrers(&self, subject: &Descriptor) -> Result<Option<Vec<Descriptor>>> {
        let _ = subject;
        Ok(None)
    }

    /// A piece map of the content `desc` that this store made itself from bytes that verified
    /// against `desc`'s digest, so that it can be trusted
    /// ([`MapTrust::Trusted`](crate::MapTrust::Trusted)); `Ok(None)` (the default) when the
    /// store cannot make one (a registry, whose maps are only advisory).
    /// [`LayoutStore`](crate::LayoutStore) computes and caches them
    /// ([`LayoutStore::piece_map`](crate::LayoutStore::piece_map)), a
    /// [`MemoryStore`](crate::MemoryStore) computes them from the bytes it holds. This may
    /// read and hash the whole content; see
    /// [`cached_trusted_piece_map`](ReadStore::cached_trusted_piece_map) for a map already made.
    /// A copy with [`CopyOptions::piece_maps`](crate::CopyOptions::piece_maps) takes its maps
    /// from here when it can.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use oci_manifest::Descriptor;
    /// use oci_store::{MemoryStore, ReadStore, WriteStore};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let data = Bytes::from(vec![1u8; 5000]);
    /// let desc = Descriptor::of("application/octet-stream", &data);
    /// store.push_bytes(&desc, data).await?;
    /// let map = store.trusted_piece_map(&desc).await?.expect("a memory store makes maps");
    /// assert_eq!((map.digest(), map.count()), (&desc.digest, 1));
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the store does not hold the content; the store's read and
    /// verification errors.
    async fn trusted_piece_map(&self, desc: &Descriptor) -> Result<Option<PieceMap>> {
        let _ = desc;
        Ok(None)
    }

    /// A trusted piece map of `desc` this store already has, without computing one (no read
    /// of the content, no hashing): what a pull may use on its default path. `Ok(None)` (the
    /// default) when there is none; a [`LayoutStore`](crate::LayoutStore) answers from its
    /// cache ([`LayoutStore::cached_piece_map`](crate::LayoutStore::cached_piece_map)).
    ///
    /// ```
    /// use oci_store::{MemoryStore, ReadStore};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let d = oci_manifest::Descriptor::of("application/octet-stream", b"x");
    /// // A memory store computes maps when asked, but keeps none.
    /// assert!(MemoryStore::new().cached_trusted_piece_map(&d).await?.is_none());
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// The store's errors reaching what it keeps.
    async fn cached_trusted_piece_map(&self, desc: &Descriptor) -> Result<Option<PieceMap>> {
        let _ = desc;
        Ok(None)
    }
}

/// Collects a [`BlobStream`] into memory, failing when it carries more than `limit` bytes.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let s = oci_store::bytes_stream(bytes::Bytes::from_static(b"abc"));
/// assert_eq!(&oci_store::collect(s, 3).await?[..], b"abc");
/// let s = oci_store::bytes_stream(bytes::Bytes::from_static(b"abcd"));
/// assert!(oci_store::collect(s, 3).await.is_err());
/// # Ok::<(), oci_store::StoreError>(())
/// # }).unwrap();
/// ```
pub async fn collect(mut stream: BlobStream, limit: u64) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| StoreError::io("read stream", "<stream>", e))?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(StoreError::io(
                "read stream",
                "<stream>",
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("content longer than the limit of {limit} bytes"),
                ),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// A resumable write of one piece of content, obtained from [`WriteStore::writer`].
///
/// Bytes are hashed as they arrive; [`commit`](BlobWriter::commit) makes the content visible
/// only when it verified against the expected descriptor. Dropping a writer without commit or
/// abort keeps the ingest, so the same key can resume it later (in this or another process).
#[async_trait]
pub trait BlobWriter: Send {
    /// The ingest key.
    fn key(&self) -> &str;
    /// What the content must verify against.
    fn expected(&self) -> &Descriptor;
    /// Bytes received so far; the next [`write`](BlobWriter::write) continues here.
    fn offset(&self) -> u64;
    /// Appends a chunk.
    ///
    /// # Errors
    /// [`StoreError::Verify`] at once when the chunk would go past the expected size.
    async fn write(&mut self, chunk: Bytes) -> Result<()>;
    /// Verifies the content and makes it visible.
    ///
    /// # Errors
    /// [`StoreError::Verify`] when the content is short or has another digest; the ingest is
    /// then removed (nothing became visible), so the caller starts again.
    async fn commit(self: Box<Self>) -> Result<PushOutcome>;
    /// Discards the ingest.
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// A [`PieceWriter`] call that breaks the writer's rules (a write into a held piece, at another
/// offset than the piece's next, past the piece's end; completing a piece not written to its
/// end; a layout for another size), carried as the source of a [`StoreError::Backend`].
///
/// ```
/// let e = oci_store::PieceRefused::new("key", 3, "the piece is held");
/// assert_eq!(e.to_string(), "piece 3 of ingest \"key\": the piece is held");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("piece {index} of ingest {key:?}: {reason}")]
#[non_exhaustive]
pub struct PieceRefused {
    /// The ingest key (cut to 100 bytes).
    pub key: String,
    /// The piece.
    pub index: u64,
    /// What was refused.
    pub reason: &'static str,
}

impl PieceRefused {
    /// The refusal of a call about piece `index` of ingest `key`.
    pub fn new(key: &str, index: u64, reason: &'static str) -> PieceRefused {
        PieceRefused {
            key: crate::error::cut(key),
            index,
            reason,
        }
    }

    /// As a [`StoreError::Backend`].
    pub(crate) fn into_error(self) -> StoreError {
        StoreError::backend("piece writer", self)
    }
}

/// A resumable write that takes the pieces of the content in any order, obtained from
/// [`WriteStore::piece_writer`]; what a fetch from several sources at once writes into.
///
/// The content is cut into pieces by the writer's [`PieceLayout`]. Each piece is written from
/// its start, chunk after chunk ([`write_piece`](PieceWriter::write_piece); a write at offset 0
/// starts the piece again), then recorded as held
/// ([`complete_piece`](PieceWriter::complete_piece)): held pieces are in the ingest record, so
/// a writer opened again for the same key (in this or another process, after a crash)
/// [holds](PieceWriter::held) them and only the missing pieces need fetching. A held piece is never written again unless it is first
/// [discarded](PieceWriter::discard_piece).
///
/// Nothing becomes visible before [`commit`](PieceWriter::commit), which hashes the whole
/// content in order (the store hashes the contiguous prefix of held pieces as they complete, so
/// little is left at the end, and never holds the content in memory) and makes it visible only
/// when it matches the expected digest and size. [`verify`](PieceWriter::verify) does the same
/// check without committing, so a caller that finds a mismatch can replace pieces and check
/// again.
///
/// All methods take `&self`: pieces are written concurrently. Writing one piece from two places
/// at once is the caller's mistake (the writer refuses writes that are not at the piece's next
/// offset, which catches most of it; the whole digest catches the rest).
///
/// ```
/// use bytes::Bytes;
/// use oci_digest::PieceLayout;
/// use oci_manifest::Descriptor;
/// use oci_store::{MemoryStore, PushOutcome, ReadStore, WriteStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let data = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<u8>>());
/// let desc = Descriptor::of("application/octet-stream", &data);
/// let layout = PieceLayout::new(10_000, 4096)?;
///
/// let w = store.piece_writer("pieces-1", &desc, layout).await?;
/// w.write_piece(2, 0, data.slice(8192..)).await?;   // the last piece first
/// w.complete_piece(2).await?;
/// drop(w);                                          // interrupted
///
/// let w = store.piece_writer("pieces-1", &desc, layout).await?;
/// assert_eq!(w.held(), vec![2]);                    // only pieces 0 and 1 are missing
/// for i in 0..2 {
///     let r = layout.range(i).unwrap();
///     w.write_piece(i, 0, data.slice(r.start as usize..r.end as usize)).await?;
///     w.complete_piece(i).await?;
/// }
/// assert_eq!(w.commit().await?, PushOutcome::Written);
/// assert!(store.exists(&desc.digest).await?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait PieceWriter: Send + Sync {
    /// The ingest key.
    fn key(&self) -> &str;
    /// What the content must verify against.
    fn expected(&self) -> &Descriptor;
    /// How the content is cut into pieces.
    fn layout(&self) -> PieceLayout;
    /// The pieces held (written whole and completed), in order.
    fn held(&self) -> Vec<u64>;
    /// Writes `chunk` into piece `index` at `offset` bytes from the piece's start. `offset` must
    /// be 0 (starting the piece, again if need be) or where the previous write to the piece
    /// ended.
    ///
    /// # Errors
    /// A [`PieceRefused`] (as [`StoreError::Backend`]) when the piece is held, the offset is not
    /// the piece's next one, or the chunk goes past the piece's end.
    async fn write_piece(&self, index: u64, offset: u64, chunk: Bytes) -> Result<()>;
    /// Marks piece `index` held. A store that keeps pieces across processes records it
    /// durably, its bytes reaching storage before the record; it may do so in batches (the
    /// layout records every 16 pieces or 16 MiB, and when the writer is dropped), so after a
    /// crash the last pieces completed may be missing again, never a piece that was not written.
    ///
    /// # Errors
    /// A [`PieceRefused`] (as [`StoreError::Backend`]) when the piece was not written to its end.
    async fn complete_piece(&self, index: u64) -> Result<()>;
    /// Forgets piece `index` (it is missing again and may be written), for a caller that found
    /// it wrong.
    async fn discard_piece(&self, index: u64) -> Result<()>;
    /// The SHA-256 of held piece `index` as stored (read back).
    ///
    /// # Errors
    /// A [`PieceRefused`] (as [`StoreError::Backend`]) when the piece is not held.
    async fn piece_digest(&self, index: u64) -> Result<Digest>;
    /// Checks the whole content (every piece must be held) against the expected digest and
    /// size, without making it visible.
    ///
    /// # Errors
    /// [`StoreError::Verify`] ([`oci_digest::VerifyError::TooShort`] while pieces are missing,
    /// [`oci_digest::VerifyError::DigestMismatch`]); the ingest stays.
    async fn verify(&self) -> Result<Verified>;
    /// Verifies the content and makes it visible.
    ///
    /// # Errors
    /// As [`verify`](PieceWriter::verify): on a mismatch nothing becomes visible and the ingest
    /// stays (with its pieces) for a caller to repair.
    async fn commit(self: Box<Self>) -> Result<PushOutcome>;
    /// Discards the ingest.
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// Write side of a store.
///
/// Writes are **verified or invisible**: content becomes visible only after its bytes hashed to
/// the expected digest and matched the expected size; a failed or interrupted write leaves
/// nothing visible.
///
/// ```
/// use bytes::Bytes;
/// use oci_manifest::Descriptor;
/// use oci_store::{MemoryStore, PushOutcome, ReadStore, StoreError, WriteStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let data = Bytes::from_static(b"0123456789");
/// let desc = Descriptor::new("application/octet-stream", oci_digest::Algorithm::Sha256.hash(&data), 10);
///
/// // A resumable write: the first half, then (later, maybe after a restart) the rest.
/// let mut w = store.writer("download-1", &desc).await?;
/// w.write(data.slice(..5)).await?;
/// drop(w);
/// let mut w = store.writer("download-1", &desc).await?;
/// assert_eq!(w.offset(), 5);
/// w.write(data.slice(5..)).await?;
/// assert_eq!(w.commit().await?, PushOutcome::Written);
///
/// // Wrong bytes are refused and leave nothing behind.
/// let other = Descriptor::new("application/octet-stream", oci_digest::Algorithm::Sha256.hash(b"x"), 1);
/// assert!(matches!(store.push_bytes(&other, Bytes::from_static(b"y")).await, Err(StoreError::Verify(_))));
/// assert_eq!(store.stat(&other.digest).await?, None);
/// # Ok::<(), StoreError>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait WriteStore: ReadStore {
    /// Stores the content of `data`, which must verify against `desc`.
    ///
    /// Returns [`PushOutcome::AlreadyExists`] without reading `data` when the content is already
    /// stored.
    ///
    /// # Errors
    /// [`StoreError::Verify`] when the bytes do not match `desc` (nothing is written);
    /// [`StoreError::Source`] when `data` fails.
    async fn push(&self, desc: &Descriptor, data: BlobStream) -> Result<PushOutcome>;

    /// [`push`](WriteStore::push) of bytes already in memory.
    async fn push_bytes(&self, desc: &Descriptor, data: Bytes) -> Result<PushOutcome> {
        self.push(desc, bytes_stream(data)).await
    }

    /// Opens (or resumes) the resumable ingest `key` for content `desc`.
    ///
    /// # Errors
    /// [`StoreError::IngestBusy`] when another writer holds the key;
    /// [`StoreError::IngestMismatch`] when the key is in use for another digest.
    async fn writer(&self, key: &str, desc: &Descriptor) -> Result<Box<dyn BlobWriter>>;

    /// [`writer`](WriteStore::writer) for `desc` unless the store has the content already:
    /// [`Opened::Present`] then. A store may answer both questions with one request: a
    /// registry asks for a small blob with the request that starts its upload (see
    /// `oci_distribution_client::ClientConfig::probe_upload_max`). The answer comes from the
    /// store's storage, as [`stat_descriptor`](ReadStore::stat_descriptor)'s does. The default
    /// asks `stat_descriptor`, then opens the writer.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use oci_manifest::Descriptor;
    /// use oci_store::{MemoryStore, Opened, WriteStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let data = Bytes::from_static(b"layer");
    /// let desc = Descriptor::new(
    ///     "application/vnd.oci.image.layer.v1.tar",
    ///     oci_digest::Algorithm::Sha256.hash(&data),
    ///     data.len() as u64,
    /// );
    /// let Opened::Writer(mut w) = store.writer_unless_present("k", &desc).await? else {
    ///     panic!("an empty store has nothing");
    /// };
    /// w.write(data).await?;
    /// w.commit().await?;
    /// assert!(matches!(
    ///     store.writer_unless_present("k", &desc).await?,
    ///     Opened::Present { size: Some(5) }
    /// ));
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// Those of [`stat_descriptor`](ReadStore::stat_descriptor) and
    /// [`writer`](WriteStore::writer) ([`StoreError::Unsupported`] from a store without
    /// resumable writers: [`push`](WriteStore::push) instead, which skips content it has).
    async fn writer_unless_present(&self, key: &str, desc: &Descriptor) -> Result<Opened> {
        if let Some(size) = self.stat_descriptor(desc).await? {
            return Ok(Opened::Present { size: Some(size) });
        }
        self.writer(key, desc).await.map(Opened::Writer)
    }

    /// The state of ingest `key`, or `None` when there is none.
    async fn ingest_status(&self, key: &str) -> Result<Option<IngestStatus>>;

    /// All ingests (active or interrupted).
    async fn ingests(&self) -> Result<Vec<IngestStatus>>;

    /// Discards ingest `key`.
    ///
    /// # Errors
    /// [`StoreError::IngestNotFound`]; [`StoreError::IngestBusy`] when a writer holds it.
    async fn abort_ingest(&self, key: &str) -> Result<()>;

    /// Removes content `digest` at once, whatever refers to it. Local stores should rather let
    /// [`ManagedStore::gc`] decide what goes.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when it is not stored.
    async fn delete(&self, digest: &Digest) -> Result<()>;

    /// Makes blob `desc` available here by a cross-repository mount from `from`, without sending
    /// its bytes. `Ok(true)` when the store now has the content, `Ok(false)` when a mount is not
    /// possible (the default: local stores, another registry, or a registry that refused and
    /// wants an upload).
    async fn mount(&self, desc: &Descriptor, from: &Location) -> Result<bool> {
        let _ = (desc, from);
        Ok(false)
    }

    /// Stores `data` (verified against `desc`) even when the store claims to have it already:
    /// the repair after an existence answer turned out to be a lie (a registry whose cache
    /// remembers content its storage lost, a corrupt local file). A registry uploads the bytes
    /// through its upload API without asking HEAD first; for a manifest it also uploads the
    /// bytes as a blob, then PUTs the manifest. The default removes what is stored under the
    /// digest (if anything), then [`push`](WriteStore::push)es.
    async fn push_forced(&self, desc: &Descriptor, data: BlobStream) -> Result<PushOutcome> {
        match self.delete(&desc.digest).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        self.push(desc, data).await
    }

    /// Opens (or resumes) the ingest `key` for content `desc` as a writer that takes pieces of
    /// `layout` in any order ([`PieceWriter`]). An ingest written sequentially before (by
    /// [`writer`](WriteStore::writer)) is taken over with the pieces it holds whole, and the
    /// other way round. The default says the store cannot (a registry repository: its uploads
    /// are sequential).
    ///
    /// # Errors
    /// [`StoreError::Unsupported`] (the default); otherwise as [`writer`](WriteStore::writer),
    /// and a [`PieceRefused`] (as [`StoreError::Backend`]) when `layout` is not for `desc.size`.
    async fn piece_writer(
        &self,
        key: &str,
        desc: &Descriptor,
        layout: PieceLayout,
    ) -> Result<Box<dyn PieceWriter>> {
        let _ = (key, desc, layout);
        Err(StoreError::Unsupported {
            operation: "writing pieces out of order",
        })
    }
}

/// Tags: names for root content (images, indexes, artifacts).
///
/// ```
/// use bytes::Bytes;
/// use oci_manifest::Descriptor;
/// use oci_store::{MemoryStore, TagStore, WriteStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let raw = Bytes::from_static(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#);
/// let desc = Descriptor::new(oci_manifest::media_types::OCI_INDEX, oci_digest::Algorithm::Sha256.hash(&raw), raw.len() as u64);
/// store.push_bytes(&desc, raw).await?;
/// store.tag(&desc, "v1").await?;
/// assert_eq!(store.resolve("v1").await?.digest, desc.digest);
/// assert_eq!(store.tags().await?, vec!["v1".to_string()]);
/// store.untag("v1").await?;
/// assert!(store.resolve("v1").await.is_err());
/// # Ok::<(), oci_store::StoreError>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait TagStore: Send + Sync {
    /// The descriptor tag `tag` points to.
    ///
    /// # Errors
    /// [`StoreError::TagNotFound`].
    async fn resolve(&self, tag: &str) -> Result<Descriptor>;
    /// [`resolve`](Self::resolve), and the manifest's bytes when the store's answer carries
    /// them: a registry answers a manifest `GET` with the descriptor and the content at once,
    /// one request where a `HEAD` and a `GET` would be two. Bytes, when returned, are the
    /// content the descriptor names (their digest and size checked by the store). A registry
    /// also takes a digest here, as in `resolve`. The default resolves and returns no bytes.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use oci_manifest::Descriptor;
    /// use oci_store::{MemoryStore, TagStore, WriteStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let raw = Bytes::from_static(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#);
    /// let desc = Descriptor::new(oci_manifest::media_types::OCI_INDEX, oci_digest::Algorithm::Sha256.hash(&raw), raw.len() as u64);
    /// store.push_bytes(&desc, raw).await?;
    /// store.tag(&desc, "v1").await?;
    /// let (found, bytes) = store.resolve_with_content("v1").await?;
    /// assert_eq!(found.digest, desc.digest);
    /// assert!(bytes.is_none()); // a local store answers with the descriptor only
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// Those of `resolve`.
    async fn resolve_with_content(&self, tag: &str) -> Result<(Descriptor, Option<Bytes>)> {
        Ok((self.resolve(tag).await?, None))
    }
    /// Points `tag` at `desc` (replacing what it pointed to). The content must be stored.
    ///
    /// # Errors
    /// [`StoreError::InvalidTag`]; [`StoreError::NotFound`] when the content is not stored.
    async fn tag(&self, desc: &Descriptor, tag: &str) -> Result<()>;
    /// Stores the manifest `bytes` described by `desc` and points `tag` at it in one step, where
    /// the store has such a step: a registry takes a manifest `PUT` by tag, one request where
    /// storing by digest and tagging are two. `Ok(false)` (the default) when it has none: the
    /// caller then stores the content and tags it. The bytes must verify against `desc`, as for
    /// [`WriteStore::push`]; a store that takes them checks that.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use oci_manifest::Descriptor;
    /// use oci_store::{MemoryStore, TagStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let raw = Bytes::from_static(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#);
    /// let desc = Descriptor::new(oci_manifest::media_types::OCI_INDEX, oci_digest::Algorithm::Sha256.hash(&raw), raw.len() as u64);
    /// // A local store stores and tags in two steps.
    /// assert!(!MemoryStore::new().store_tagged(&desc, &raw, "v1").await?);
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`StoreError::InvalidTag`]; [`StoreError::Verify`] when the bytes do not match `desc`
    /// (nothing is stored); the store's errors.
    async fn store_tagged(&self, desc: &Descriptor, bytes: &Bytes, tag: &str) -> Result<bool> {
        let _ = (desc, bytes, tag);
        Ok(false)
    }
    /// Removes `tag` (the content stays until garbage collection).
    ///
    /// # Errors
    /// [`StoreError::TagNotFound`].
    async fn untag(&self, tag: &str) -> Result<()>;
    /// All tags, sorted.
    async fn tags(&self) -> Result<Vec<String>>;
}

/// A complete store: read, write and tags. Implemented for every type that has the three.
pub trait Store: ReadStore + WriteStore + TagStore {}

impl<T: ReadStore + WriteStore + TagStore + ?Sized> Store for T {}

/// How long a lease lives unless renewed.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(3600);

/// Local-only features: leases, exact reference counts, garbage collection and fsck.
///
/// A multi-step write (layers, config, manifest, then tag) runs on a view of the store taken
/// [`with_lease`](ManagedStore::with_lease): everything written, or found already there, through
/// the view is pinned by the lease until it is released or expires, so a concurrent
/// [`gc`](ManagedStore::gc) (in this or another process) cannot remove it before the tag exists.
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use oci_manifest::Descriptor;
/// use oci_store::{GcOptions, ManagedStore, MemoryStore, ReadStore, WriteStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let lease = store.create_lease(Duration::from_secs(60)).await?;
/// let leased = store.with_lease(&lease);
/// let data = Bytes::from_static(b"layer");
/// let desc = Descriptor::new("application/vnd.oci.image.layer.v1.tar", oci_digest::Algorithm::Sha256.hash(&data), 5);
/// leased.push_bytes(&desc, data).await?;
///
/// let gc = GcOptions::default().with_min_age(Duration::ZERO);
/// store.gc(&gc).await?;
/// assert!(store.exists(&desc.digest).await?);          // pinned by the lease
/// assert_eq!(store.refcount(&desc.digest).await?, 1);  // the lease
///
/// store.release_lease(&lease).await?;
/// store.gc(&gc).await?;
/// assert!(!store.exists(&desc.digest).await?);         // nothing refers to it any more
/// # Ok::<(), oci_store::StoreError>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait ManagedStore: Store {
    /// Creates a lease that lives for `ttl` unless renewed or released.
    async fn create_lease(&self, ttl: Duration) -> Result<Lease>;
    /// Extends a lease to live `ttl` from now.
    ///
    /// # Errors
    /// [`StoreError::LeaseNotFound`] when it was released or collected after expiry.
    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease>;
    /// Ends a lease; what it pinned becomes collectable unless something else refers to it.
    async fn release_lease(&self, lease: &Lease) -> Result<()>;
    /// All leases with what they pin.
    async fn leases(&self) -> Result<Vec<LeaseInfo>>;
    /// A view of this store whose writes (and `stat` hits) are pinned by `lease`.
    fn with_lease(&self, lease: &Lease) -> Self
    where
        Self: Sized;
    /// [`with_lease`](ManagedStore::with_lease) as a trait object, for code that holds the
    /// store as `&dyn ManagedStore` (or any type not known to be sized), such as
    /// [`copy_leased`](crate::copy_leased). Implementations return
    /// `Box::new(self.with_lease(lease))`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use oci_store::{ManagedStore, MemoryStore, WriteStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let any: &dyn ManagedStore = &store;
    /// let lease = any.create_lease(Duration::from_secs(60)).await?;
    /// let leased = any.with_lease_boxed(&lease);
    /// let index = oci_manifest::build::IndexBuilder::oci().build().unwrap();
    /// leased.push_bytes(&index.descriptor(), index.raw().clone()).await?;
    /// assert_eq!(store.refcount(index.digest()).await?, 1); // the lease
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    fn with_lease_boxed(&self, lease: &Lease) -> Box<dyn Store + '_>;
    /// Who refers to `digest`: tags, untagged index entries, leases, active ingests and stored
    /// manifests whose children include it. Computed from storage every time (parsed manifests
    /// are cached by digest; existence is not).
    async fn parents(&self, digest: &Digest) -> Result<Vec<Parent>>;
    /// The number of [`parents`](ManagedStore::parents).
    async fn refcount(&self, digest: &Digest) -> Result<usize> {
        Ok(self.parents(digest).await?.len())
    }
    /// Garbage collection: marks from the roots, sweeps the rest (or, with `dry_run`, reports
    /// what would go and why).
    async fn gc(&self, options: &GcOptions) -> Result<GcReport>;
    /// Re-hashes every blob and checks the graph below the roots.
    async fn fsck(&self, options: &FsckOptions) -> Result<FsckReport>;
}

impl fmt::Display for PushOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PushOutcome::Written => "written",
            PushOutcome::AlreadyExists => "already exists",
        })
    }
}

/// The accessors of a [`BlobWriter`] whose struct has the fields `key: String`,
/// `expected: Descriptor` and `offset: u64` (the stores' own writers), inside its `impl`.
macro_rules! writer_accessors {
    () => {
        fn key(&self) -> &str {
            &self.key
        }

        fn expected(&self) -> &oci_manifest::Descriptor {
            &self.expected
        }

        fn offset(&self) -> u64 {
            self.offset
        }
    };
}
pub(crate) use writer_accessors;

/// Implements [`TagStore`] for a wrapper (a test double) by handing every call to its `inner`
/// store: `tags_of_inner!([S: Store] Wrapper<S>)`, `tags_of_inner!([] Plain)`.
#[cfg(any(test, feature = "testing"))]
macro_rules! tags_of_inner {
    ([$($generics:tt)*] $t:ty) => {
        #[async_trait::async_trait]
        impl<$($generics)*> $crate::traits::TagStore for $t {
            async fn resolve(&self, tag: &str) -> $crate::error::Result<oci_manifest::Descriptor> {
                self.inner.resolve(tag).await
            }

            async fn resolve_with_content(&self, tag: &str) -> $crate::error::Result<(oci_manifest::Descriptor, Option<bytes::Bytes>)> {
                self.inner.resolve_with_content(tag).await
            }

            async fn tag(&self, desc: &oci_manifest::Descriptor, tag: &str) -> $crate::error::Result<()> {
                self.inner.tag(desc, tag).await
            }

            async fn untag(&self, tag: &str) -> $crate::error::Result<()> {
                self.inner.untag(tag).await
            }

            async fn tags(&self) -> $crate::error::Result<Vec<String>> {
                self.inner.tags().await
            }
        }
    };
}
#[cfg(any(test, feature = "testing"))]
pub(crate) use tags_of_inner;
