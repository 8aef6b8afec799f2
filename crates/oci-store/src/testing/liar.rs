//! A store that lies: the test double for code that must not trust a store's answers.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use oci_digest::{Digest, VerifyingStream};
use oci_manifest::Descriptor;

use crate::error::Result;
use crate::memory::MemoryStore;
use crate::traits::{
    BlobStream, BlobWriter, IngestStatus, PushOutcome, ReadStore, Store, WriteStore, bytes_stream,
};

/// A store that lies about content, wrapped around an honest `inner` store (a [`MemoryStore`]
/// by default) that holds everything it does not lie about.
///
/// Two lies, per digest:
/// - [`claim`](LyingStore::claim): it says it has content it does not serve, as a registry whose
///   cache outlived its storage: `stat` answers the claimed size, `push` answers
///   [`PushOutcome::AlreadyExists`] without reading, `fetch` answers a stream that ends at once
///   (so a verified read fails), `fetch_range` answers no bytes. A
///   [`push_forced`](WriteStore::push_forced) really stores the content and ends the lie, unless
///   the store is [`stubborn`](LyingStore::stubborn).
/// - [`serve`](LyingStore::serve): it serves other bytes than the digest names, unverified (a
///   broken or hostile remote): `stat` answers their length, `fetch`, `fetch_unverified` and
///   `fetch_range` answer them (or a range of them) whatever the descriptor says, `push` answers
///   [`PushOutcome::AlreadyExists`]. Graph walks over such a store meet cycles and content that
///   does not match its descriptor.
///
/// With [`without_lengths`](LyingStore::without_lengths), `stat` answers `Some(0)` for content
/// the inner store really has (a registry's `HEAD` without a length): the truth, vaguely.
///
/// Tags, writers, ingests and deletes go to the inner store. Clones share their lies and
/// their count of forced pushes.
///
/// ```
/// use oci_store::{ReadStore, WriteStore, PushOutcome, collect};
/// use oci_store::testing::{LyingStore, blob};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let b = blob("application/octet-stream", &b"content"[..]);
/// let liar = LyingStore::default();
/// liar.claim(&b.desc);
/// assert_eq!(liar.stat(&b.desc.digest).await?, Some(7));           // the lie
/// assert!(collect(liar.fetch(&b.desc).await?, 100).await.is_err()); // nothing served
/// assert_eq!(liar.push_bytes(&b.desc, b.data.clone()).await?, PushOutcome::AlreadyExists);
///
/// liar.push_forced(&b.desc, oci_store::bytes_stream(b.data.clone())).await?; // the repair
/// assert_eq!(liar.forced_pushes(), 1);
/// assert_eq!(liar.fetch_bytes(&b.desc, 100).await?, b.data);
/// # Ok::<(), oci_store::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct LyingStore<S = MemoryStore> {
    inner: S,
    lies: Arc<Mutex<Lies>>,
    stubborn: bool,
    no_length: bool,
}

#[derive(Debug, Default)]
struct Lies {
    /// Claimed without being served: digest to claimed size.
    claimed: HashMap<Digest, u64>,
    /// Served unverified: digest to the bytes served for it.
    served: HashMap<Digest, Bytes>,
    /// Calls of `push_forced`.
    forced: usize,
}

enum Lie {
    Claimed(u64),
    Served(Bytes),
}

impl Default for LyingStore {
    /// A liar around an empty [`MemoryStore`].
    fn default() -> LyingStore {
        LyingStore::new(MemoryStore::new())
    }
}

impl<S: Store> LyingStore<S> {
    /// A store that tells the truth about `inner` until told to lie.
    pub fn new(inner: S) -> LyingStore<S> {
        LyingStore {
            inner,
            lies: Arc::default(),
            stubborn: false,
            no_length: false,
        }
    }

    /// A lie that [`push_forced`](WriteStore::push_forced) cannot end: the forced content goes
    /// to the inner store but is still not served (a registry that keeps lying after a repair).
    pub fn stubborn(mut self) -> LyingStore<S> {
        self.stubborn = true;
        self
    }

    /// `stat` answers `Some(0)` for content the inner store has: existence without a length.
    pub fn without_lengths(mut self) -> LyingStore<S> {
        self.no_length = true;
        self
    }

    /// Claims `desc` (existence with `desc.size`) without serving its bytes.
    pub fn claim(&self, desc: &Descriptor) {
        let mut lies = self.lock();
        lies.served.remove(&desc.digest);
        lies.claimed.insert(desc.digest.clone(), desc.size);
    }

    /// Serves `data` for `digest`, unverified, whatever `digest` names.
    pub fn serve(&self, digest: &Digest, data: impl Into<Bytes>) {
        let mut lies = self.lock();
        lies.claimed.remove(digest);
        lies.served.insert(digest.clone(), data.into());
    }

    /// How many times [`push_forced`](WriteStore::push_forced) was called.
    pub fn forced_pushes(&self) -> usize {
        self.lock().forced
    }

    /// The honest store underneath, to check what really got stored.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn lock(&self) -> MutexGuard<'_, Lies> {
        // A panic elsewhere while holding the lock leaves the maps whole: keep using them.
        self.lies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lie(&self, digest: &Digest) -> Option<Lie> {
        let lies = self.lock();
        if let Some(size) = lies.claimed.get(digest) {
            return Some(Lie::Claimed(*size));
        }
        lies.served.get(digest).cloned().map(Lie::Served)
    }

    /// The stream a lie answers for `range` of the content (`None`: the whole content).
    fn lying_stream(lie: Lie, desc: &Descriptor, range: Option<Range<u64>>) -> BlobStream {
        match (lie, range) {
            // A 200 and then nothing, as a stale registry answers: the read fails verification.
            (Lie::Claimed(_), None) => Box::pin(VerifyingStream::new(
                futures_util::stream::empty::<std::io::Result<Bytes>>(),
                desc.digest.clone(),
                desc.size,
            )),
            (Lie::Claimed(_), Some(_)) => bytes_stream(Bytes::new()),
            (Lie::Served(data), None) => bytes_stream(data),
            (Lie::Served(data), Some(r)) => {
                let end = usize::try_from(r.end).map_or(data.len(), |e| e.min(data.len()));
                let start = usize::try_from(r.start).map_or(end, |s| s.min(end));
                bytes_stream(data.slice(start..end))
            }
        }
    }
}

#[async_trait]
impl<S: Store> ReadStore for LyingStore<S> {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        match self.lie(digest) {
            Some(Lie::Claimed(size)) => Ok(Some(size)),
            Some(Lie::Served(data)) => Ok(Some(data.len() as u64)),
            None => {
                let size = self.inner.stat(digest).await?;
                Ok(if self.no_length {
                    size.map(|_| 0)
                } else {
                    size
                })
            }
        }
    }

    async fn fetch(&self, desc: &Descriptor) -> Result<BlobStream> {
        match self.lie(&desc.digest) {
            Some(lie) => Ok(Self::lying_stream(lie, desc, None)),
            None => self.inner.fetch(desc).await,
        }
    }

    async fn fetch_unverified(&self, desc: &Descriptor) -> Result<BlobStream> {
        match self.lie(&desc.digest) {
            Some(lie) => Ok(Self::lying_stream(lie, desc, None)),
            None => self.inner.fetch_unverified(desc).await,
        }
    }

    async fn fetch_range(&self, desc: &Descriptor, range: Range<u64>) -> Result<BlobStream> {
        match self.lie(&desc.digest) {
            Some(lie) => Ok(Self::lying_stream(lie, desc, Some(range))),
            None => self.inner.fetch_range(desc, range).await,
        }
    }
}

#[async_trait]
impl<S: Store> WriteStore for LyingStore<S> {
    async fn push(&self, desc: &Descriptor, data: BlobStream) -> Result<PushOutcome> {
        if self.lie(&desc.digest).is_some() {
            return Ok(PushOutcome::AlreadyExists);
        }
        self.inner.push(desc, data).await
    }

    async fn writer(&self, key: &str, desc: &Descriptor) -> Result<Box<dyn BlobWriter>> {
        self.inner.writer(key, desc).await
    }

    async fn ingest_status(&self, key: &str) -> Result<Option<IngestStatus>> {
        self.inner.ingest_status(key).await
    }

    async fn ingests(&self) -> Result<Vec<IngestStatus>> {
        self.inner.ingests().await
    }

    async fn abort_ingest(&self, key: &str) -> Result<()> {
        self.inner.abort_ingest(key).await
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        self.inner.delete(digest).await
    }

    async fn push_forced(&self, desc: &Descriptor, data: BlobStream) -> Result<PushOutcome> {
        {
            let mut lies = self.lock();
            lies.forced += 1;
            if !self.stubborn {
                lies.claimed.remove(&desc.digest);
                lies.served.remove(&desc.digest);
            }
        }
        self.inner.push(desc, data).await
    }
}

crate::traits::tags_of_inner!([S: Store] LyingStore<S>);
