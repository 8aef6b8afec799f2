//! Sources of byte ranges: [`RangeSource`], and its implementations for the local stores and
//! for any [`ReadStore`] ([`StoreSource`]).

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use oci_digest::PieceMap;
use oci_manifest::Descriptor;

use crate::error::Result;
use crate::layout::LayoutStore;
use crate::memory::MemoryStore;
use crate::traits::{BlobStream, ReadStore};

/// What a source answered to a request for a byte range: a stream of bytes starting at blob
/// offset [`start`](RangeAnswer::start).
///
/// A source that serves ranges answers from the range's start. One that can only send the whole
/// content (an HTTP `200` to a `Range` request) answers from 0, and the fetch drops the bytes
/// before the range, up to a limit ([`FetchOptions::max_skip`](crate::FetchOptions)). A stream
/// that goes on past the range's end is cut there.
///
/// ```
/// let body = oci_store::bytes_stream(bytes::Bytes::from_static(b"whole"));
/// let a = oci_store::RangeAnswer::new(0, body);
/// assert_eq!(a.start(), 0);
/// ```
#[non_exhaustive]
pub struct RangeAnswer {
    /// Blob offset of the stream's first byte (at most the range's start).
    pub start: u64,
    /// The bytes (not verified: a range cannot be).
    pub stream: BlobStream,
}

impl RangeAnswer {
    /// An answer whose bytes start at blob offset `start`.
    pub fn new(start: u64, stream: BlobStream) -> RangeAnswer {
        RangeAnswer { start, stream }
    }

    /// Blob offset of the stream's first byte.
    pub fn start(&self) -> u64 {
        self.start
    }
}

impl std::fmt::Debug for RangeAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeAnswer")
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

/// Anything that can serve a byte range of a blob named by its descriptor: a store on disk or in
/// memory, a registry repository (a range `GET`), a registry mirror, a peer.
///
/// The bytes are never trusted: a fetch checks them against a piece map when it has one, and
/// against the whole digest in the end.
///
/// ```
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use oci_manifest::Descriptor;
/// use oci_store::{MemoryStore, RangeSource, WriteStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let data = Bytes::from_static(b"0123456789");
/// let desc = Descriptor::of("application/octet-stream", &data);
/// store.push_bytes(&desc, data).await?;
/// let answer = store.read_range(&desc, 2..5).await?;
/// assert_eq!(answer.start(), 2);
/// assert_eq!(&oci_store::collect(answer.stream, 10).await?[..], b"234");
/// assert_eq!(store.source_name(), "memory store");
/// # Ok::<(), oci_store::StoreError>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait RangeSource: Send + Sync {
    /// A short name for reports and logs (a registry and repository, a directory, a peer).
    fn source_name(&self) -> String;

    /// Streams bytes `range` of the content `desc` (a range past the end is cut to the size).
    ///
    /// # Errors
    /// [`StoreError::NotFound`](crate::StoreError::NotFound) when the source does not hold the
    /// content (the fetch stops asking it); anything else counts as a failure of this attempt
    /// (the fetch may ask again, then gives up on the source after a few failures in a row).
    async fn read_range(&self, desc: &Descriptor, range: Range<u64>) -> Result<RangeAnswer>;

    /// A piece map this source offers for `desc`. A fetch that asks for it treats it as
    /// advisory (it can cost refetches, never a wrong blob). The default offers none.
    async fn piece_map(&self, desc: &Descriptor) -> Result<Option<PieceMap>> {
        let _ = desc;
        Ok(None)
    }
}

#[async_trait]
impl RangeSource for LayoutStore {
    fn source_name(&self) -> String {
        format!("layout {}", self.path().display())
    }

    async fn read_range(&self, desc: &Descriptor, range: Range<u64>) -> Result<RangeAnswer> {
        let start = range.start;
        Ok(RangeAnswer::new(
            start,
            self.fetch_range(desc, range).await?,
        ))
    }
}

#[async_trait]
impl RangeSource for MemoryStore {
    fn source_name(&self) -> String {
        "memory store".to_owned()
    }

    async fn read_range(&self, desc: &Descriptor, range: Range<u64>) -> Result<RangeAnswer> {
        let start = range.start;
        Ok(RangeAnswer::new(
            start,
            self.fetch_range(desc, range).await?,
        ))
    }
}

/// Any [`ReadStore`] as a [`RangeSource`] under a name, through
/// [`ReadStore::fetch_range`] (a registry repository's range `GET`, which already reads a
/// registry that ignores `Range` from the right offset).
///
/// ```
/// use std::sync::Arc;
/// use oci_store::{MemoryStore, RangeSource, StoreSource};
///
/// let source = StoreSource::new("mirror-1", Arc::new(MemoryStore::new()));
/// assert_eq!(source.source_name(), "mirror-1");
/// ```
pub struct StoreSource {
    name: String,
    store: Arc<dyn ReadStore>,
}

impl StoreSource {
    /// `store` as a range source named `name`.
    pub fn new(name: impl Into<String>, store: Arc<dyn ReadStore>) -> StoreSource {
        StoreSource {
            name: name.into(),
            store,
        }
    }
}

impl std::fmt::Debug for StoreSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSource")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RangeSource for StoreSource {
    fn source_name(&self) -> String {
        self.name.clone()
    }

    async fn read_range(&self, desc: &Descriptor, range: Range<u64>) -> Result<RangeAnswer> {
        let start = range.start;
        Ok(RangeAnswer::new(
            start,
            self.store.fetch_range(desc, range).await?,
        ))
    }
}
