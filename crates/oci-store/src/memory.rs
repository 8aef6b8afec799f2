//! `MemoryStore`: everything in memory, for tests and short-lived work.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use oci_digest::{Digest, PieceLayout, PieceMap, Verifier, VerifyError, VerifyingStream};
use oci_manifest::Descriptor;

use crate::error::{Result, StoreError};
use crate::gc::{
    BlobMeta, Content, FsckOptions, FsckReport, GcOptions, GcReport, Graph, NodeCache, Parent,
    Root, parents_from,
};
use crate::lease::{Lease, LeaseInfo, new_id};
use crate::traits::{
    BlobStream, BlobWriter, IngestStatus, ManagedStore, PieceWriter, PushOutcome, ReadStore, Store,
    TagStore, WriteStore,
};
use crate::util::{check_size, clamp, not_found, validate_ingest_key, validate_tag};

mod pieces;

/// A store in memory: blobs, tags, leases and ingests in a map behind a mutex.
///
/// Cloning is cheap and shares the content. It implements every trait of this crate with the
/// same semantics as [`LayoutStore`](crate::LayoutStore) (the conformance suite runs against
/// both), so it is the store to use in doc examples and tests.
///
/// ```
/// use bytes::Bytes;
/// use oci_manifest::Descriptor;
/// use oci_store::{MemoryStore, ReadStore, WriteStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let data = Bytes::from_static(b"hello");
/// let desc = Descriptor::new("text/plain", oci_digest::Algorithm::Sha256.hash(&data), 5);
/// store.push_bytes(&desc, data).await?;
/// assert!(store.exists(&desc.digest).await?);
/// # Ok::<(), oci_store::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
    lease: Option<Lease>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    cache: NodeCache,
}

#[derive(Debug, Default)]
struct State {
    blobs: HashMap<Digest, (Bytes, SystemTime)>,
    tags: BTreeMap<String, Descriptor>,
    leases: HashMap<String, (SystemTime, Vec<Digest>)>,
    ingests: HashMap<String, Ingest>,
}

#[derive(Debug)]
struct Ingest {
    expected: Descriptor,
    /// Written in order: the bytes so far (empty while written in pieces).
    data: BytesMut,
    verifier: Verifier,
    /// Written in pieces (by a piece writer).
    pieces: Option<pieces::MemPieces>,
    busy: bool,
    started_at: SystemTime,
    updated_at: SystemTime,
}

impl Ingest {
    fn status(&self, key: &str) -> IngestStatus {
        IngestStatus {
            key: key.to_owned(),
            expected: self.expected.clone(),
            offset: match &self.pieces {
                Some(p) => p.held.prefix_bytes(&p.layout),
                None => self.verifier.received(),
            },
            started_at: self.started_at,
            updated_at: self.updated_at,
        }
    }
}

impl Content for State {
    fn read_small(&self, digest: &Digest, _size_hint: u64) -> Result<Option<Bytes>> {
        Ok(self.blobs.get(digest).map(|(b, _)| b.clone()))
    }
}

impl State {
    fn metas(&self) -> HashMap<Digest, BlobMeta> {
        self.blobs
            .iter()
            .map(|(d, (b, t))| {
                (
                    d.clone(),
                    BlobMeta {
                        size: b.len() as u64,
                        modified: *t,
                    },
                )
            })
            .collect()
    }

    fn roots(&self, now: SystemTime) -> Vec<Root> {
        let mut roots: Vec<Root> = self
            .tags
            .iter()
            .map(|(t, d)| Root {
                parent: Parent::Tag(t.clone()),
                digest: d.digest.clone(),
                media_type: Some(d.media_type.clone()),
                size: Some(d.size),
            })
            .collect();
        for (id, (exp, pins)) in &self.leases {
            if now < *exp {
                roots.extend(pins.iter().map(|d| Root {
                    parent: Parent::Lease(id.clone()),
                    digest: d.clone(),
                    media_type: None,
                    size: None,
                }));
            }
        }
        for (key, ing) in &self.ingests {
            roots.push(Root {
                parent: Parent::Ingest(key.clone()),
                digest: ing.expected.digest.clone(),
                media_type: Some(ing.expected.media_type.clone()),
                size: None,
            });
        }
        roots
    }

    /// Checks that `lease` is alive (before making anything visible under it).
    fn check_lease(&self, lease: Option<&Lease>) -> Result<()> {
        if let Some(l) = lease {
            match self.leases.get(l.id()) {
                None => {
                    return Err(StoreError::LeaseNotFound {
                        id: l.id().to_owned(),
                    });
                }
                Some((exp, _)) if SystemTime::now() >= *exp => {
                    return Err(StoreError::LeaseExpired {
                        id: l.id().to_owned(),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn pin(&mut self, lease: Option<&Lease>, digest: &Digest) {
        if let Some(l) = lease
            && let Some((_, pins)) = self.leases.get_mut(l.id())
        {
            pins.push(digest.clone());
        }
    }

    /// Removes the ingest `key` (to commit it).
    fn take_ingest(&mut self, key: &str) -> Result<Ingest> {
        self.ingests
            .remove(key)
            .ok_or_else(|| StoreError::IngestNotFound {
                key: key.to_owned(),
            })
    }

    /// Makes verified `data` visible (or reports it was there), pinned by `lease`.
    fn insert(
        &mut self,
        lease: Option<&Lease>,
        digest: &Digest,
        data: Bytes,
    ) -> Result<PushOutcome> {
        self.check_lease(lease)?;
        let outcome = if let Some((_, t)) = self.blobs.get_mut(digest) {
            *t = SystemTime::now();
            PushOutcome::AlreadyExists
        } else {
            self.blobs.insert(digest.clone(), (data, SystemTime::now()));
            PushOutcome::Written
        };
        self.pin(lease, digest);
        Ok(outcome)
    }
}

impl MemoryStore {
    /// The bytes of the blob `digest` (a cheap clone), or `NotFound`.
    fn blob_bytes(&self, digest: &Digest) -> Result<Bytes> {
        self.state()
            .blobs
            .get(digest)
            .map(|(b, _)| b.clone())
            .ok_or_else(|| not_found(digest))
    }

    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-made blob visible (every change is
        // one map operation), so a poisoned lock is still consistent.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ReadStore for MemoryStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        let mut st = self.state();
        let size = st.blobs.get(digest).map(|(b, _)| b.len() as u64);
        if size.is_some() && self.lease.is_some() {
            st.check_lease(self.lease.as_ref())?;
            st.pin(self.lease.as_ref(), digest);
        }
        Ok(size)
    }

    async fn fetch(&self, desc: &Descriptor) -> Result<BlobStream> {
        let data = self.blob_bytes(&desc.digest)?;
        check_size(desc, data.len() as u64)?;
        let chunks = futures_util::stream::iter(
            chunk_bytes(data, 1 << 20)
                .into_iter()
                .map(Ok::<_, std::io::Error>),
        );
        Ok(Box::pin(VerifyingStream::new(
            chunks,
            desc.digest.clone(),
            desc.size,
        )))
    }

    async fn fetch_range(&self, desc: &Descriptor, range: Range<u64>) -> Result<BlobStream> {
        let data = self.blob_bytes(&desc.digest)?;
        let r = clamp(range, data.len() as u64);
        // Both ends are at most data.len(), which is a usize.
        let part = data.slice(r.start as usize..r.end as usize);
        Ok(crate::traits::bytes_stream(part))
    }

    /// Computed from the bytes held (verified against the digest as they are hashed).
    async fn trusted_piece_map(&self, desc: &Descriptor) -> Result<Option<PieceMap>> {
        let data = self.blob_bytes(&desc.digest)?;
        check_size(desc, data.len() as u64)?;
        PieceMap::compute(&data[..], desc.digest.clone(), desc.size)
            .map(Some)
            .map_err(|source| match VerifyError::from_io(&source) {
                Some(v) => StoreError::Verify(v.clone()),
                None => StoreError::Source {
                    digest: desc.digest.clone(),
                    source,
                },
            })
    }
}

/// Splits `data` into chunks of at most `n` bytes without copying.
fn chunk_bytes(data: Bytes, n: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() > n {
        out.push(rest.split_to(n));
    }
    out.push(rest);
    out
}

#[async_trait]
impl WriteStore for MemoryStore {
    async fn push(&self, desc: &Descriptor, mut data: BlobStream) -> Result<PushOutcome> {
        {
            let mut st = self.state();
            if st.blobs.contains_key(&desc.digest) {
                return st.insert(self.lease.as_ref(), &desc.digest, Bytes::new());
            }
            st.check_lease(self.lease.as_ref())?;
        }
        let mut verifier = Verifier::new(desc.digest.clone(), desc.size);
        let mut buf = BytesMut::new();
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(|source| StoreError::Source {
                digest: desc.digest.clone(),
                source,
            })?;
            verifier.update(&chunk)?;
            buf.extend_from_slice(&chunk);
        }
        verifier.finish()?;
        self.state()
            .insert(self.lease.as_ref(), &desc.digest, buf.freeze())
    }

    async fn writer(&self, key: &str, desc: &Descriptor) -> Result<Box<dyn BlobWriter>> {
        validate_ingest_key(key)?;
        let mut st = self.state();
        let now = SystemTime::now();
        let ing = open_ingest(&mut st, key, desc, now)?;
        ing.make_sequential();
        ing.busy = true;
        let offset = ing.verifier.received();
        Ok(Box::new(MemoryWriter {
            store: self.clone(),
            key: key.to_owned(),
            expected: desc.clone(),
            offset,
            done: false,
        }))
    }

    async fn piece_writer(
        &self,
        key: &str,
        desc: &Descriptor,
        layout: PieceLayout,
    ) -> Result<Box<dyn PieceWriter>> {
        pieces::open(self, key, desc, layout)
    }

    async fn ingest_status(&self, key: &str) -> Result<Option<IngestStatus>> {
        Ok(self.state().ingests.get(key).map(|i| i.status(key)))
    }

    async fn ingests(&self) -> Result<Vec<IngestStatus>> {
        let st = self.state();
        let mut v: Vec<_> = st.ingests.iter().map(|(k, i)| i.status(k)).collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(v)
    }

    async fn abort_ingest(&self, key: &str) -> Result<()> {
        let mut st = self.state();
        match st.ingests.get(key) {
            None => Err(StoreError::IngestNotFound {
                key: key.to_owned(),
            }),
            Some(i) if i.busy => Err(StoreError::IngestBusy {
                key: key.to_owned(),
            }),
            Some(_) => {
                st.ingests.remove(key);
                Ok(())
            }
        }
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        match self.state().blobs.remove(digest) {
            Some(_) => Ok(()),
            None => Err(not_found(digest)),
        }
    }
}

/// The ingest `key` for `desc` (created when missing), checked to be for the same content and
/// free.
fn open_ingest<'a>(
    st: &'a mut State,
    key: &str,
    desc: &Descriptor,
    now: SystemTime,
) -> Result<&'a mut Ingest> {
    let ing = st.ingests.entry(key.to_owned()).or_insert_with(|| Ingest {
        expected: desc.clone(),
        data: BytesMut::new(),
        verifier: Verifier::new(desc.digest.clone(), desc.size),
        pieces: None,
        busy: false,
        started_at: now,
        updated_at: now,
    });
    if ing.expected.digest != desc.digest || ing.expected.size != desc.size {
        return Err(StoreError::IngestMismatch {
            key: key.to_owned(),
            existing: ing.expected.digest.clone(),
            requested: desc.digest.clone(),
        });
    }
    if ing.busy {
        return Err(StoreError::IngestBusy {
            key: key.to_owned(),
        });
    }
    Ok(ing)
}

/// Writer of [`MemoryStore`]: bytes go to the ingest entry as they arrive.
struct MemoryWriter {
    store: MemoryStore,
    key: String,
    expected: Descriptor,
    offset: u64,
    done: bool,
}

impl MemoryWriter {
    fn with_ingest<T>(&self, f: impl FnOnce(&mut Ingest) -> Result<T>) -> Result<T> {
        let mut st = self.store.state();
        match st.ingests.get_mut(&self.key) {
            Some(i) => f(i),
            None => Err(StoreError::IngestNotFound {
                key: self.key.clone(),
            }),
        }
    }
}

#[async_trait]
impl BlobWriter for MemoryWriter {
    crate::traits::writer_accessors!();

    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.offset = self.with_ingest(|i| {
            i.verifier.update(&chunk)?;
            i.data.extend_from_slice(&chunk);
            i.updated_at = SystemTime::now();
            Ok(i.verifier.received())
        })?;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<PushOutcome> {
        self.done = true;
        let mut st = self.store.state();
        let ing = st.take_ingest(&self.key)?;
        ing.verifier.finish()?;
        st.insert(
            self.store.lease.as_ref(),
            &self.expected.digest,
            ing.data.freeze(),
        )
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.done = true;
        self.store.state().ingests.remove(&self.key);
        Ok(())
    }
}

impl Drop for MemoryWriter {
    fn drop(&mut self) {
        if !self.done
            && let Some(i) = self.store.state().ingests.get_mut(&self.key)
        {
            i.busy = false;
        }
    }
}

#[async_trait]
impl TagStore for MemoryStore {
    async fn resolve(&self, tag: &str) -> Result<Descriptor> {
        self.state()
            .tags
            .get(tag)
            .cloned()
            .ok_or_else(|| StoreError::TagNotFound {
                tag: tag.to_owned(),
            })
    }

    async fn tag(&self, desc: &Descriptor, tag: &str) -> Result<()> {
        validate_tag(tag)?;
        let mut st = self.state();
        let (data, _) = st
            .blobs
            .get(&desc.digest)
            .ok_or_else(|| not_found(&desc.digest))?;
        check_size(desc, data.len() as u64)?;
        st.tags.insert(tag.to_owned(), desc.clone());
        Ok(())
    }

    async fn untag(&self, tag: &str) -> Result<()> {
        self.state()
            .tags
            .remove(tag)
            .map(|_| ())
            .ok_or_else(|| StoreError::TagNotFound {
                tag: tag.to_owned(),
            })
    }

    async fn tags(&self) -> Result<Vec<String>> {
        Ok(self.state().tags.keys().cloned().collect())
    }
}

#[async_trait]
impl ManagedStore for MemoryStore {
    async fn create_lease(&self, ttl: Duration) -> Result<Lease> {
        let id = new_id("lease-");
        let exp = SystemTime::now() + ttl;
        self.state().leases.insert(id.clone(), (exp, Vec::new()));
        Ok(Lease::new(id, exp))
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let mut st = self.state();
        let (exp, _) = st
            .leases
            .get_mut(lease.id())
            .ok_or_else(|| StoreError::LeaseNotFound {
                id: lease.id().to_owned(),
            })?;
        *exp = SystemTime::now() + ttl;
        Ok(Lease::new(lease.id().to_owned(), *exp))
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.state()
            .leases
            .remove(lease.id())
            .map(|_| ())
            .ok_or_else(|| StoreError::LeaseNotFound {
                id: lease.id().to_owned(),
            })
    }

    async fn leases(&self) -> Result<Vec<LeaseInfo>> {
        let st = self.state();
        let mut v: Vec<LeaseInfo> = st
            .leases
            .iter()
            .map(|(id, (exp, pins))| LeaseInfo {
                lease: Lease::new(id.clone(), *exp),
                pins: pins.clone(),
            })
            .collect();
        v.sort_by(|a, b| a.lease.id().cmp(b.lease.id()));
        Ok(v)
    }

    fn with_lease(&self, lease: &Lease) -> Self {
        MemoryStore {
            inner: self.inner.clone(),
            lease: Some(lease.clone()),
        }
    }

    fn with_lease_boxed(&self, lease: &Lease) -> Box<dyn Store + '_> {
        Box::new(self.with_lease(lease))
    }

    async fn parents(&self, digest: &Digest) -> Result<Vec<Parent>> {
        let st = self.state();
        let metas = st.metas();
        let graph = Graph {
            blobs: &metas,
            content: &*st,
            cache: &self.inner.cache,
        };
        let manifests = graph.manifest_parents(digest)?;
        Ok(parents_from(
            digest,
            &st.roots(SystemTime::now()),
            manifests,
        ))
    }

    async fn gc(&self, options: &GcOptions) -> Result<GcReport> {
        let mut st = self.state();
        let now = SystemTime::now();
        let expired_leases: Vec<String> = st
            .leases
            .iter()
            .filter(|(_, (exp, _))| now >= *exp)
            .map(|(id, _)| id.clone())
            .collect();
        let stale_ingests: Vec<String> = st
            .ingests
            .iter()
            .filter(|(_, i)| {
                !i.busy
                    && now.duration_since(i.updated_at).unwrap_or(Duration::ZERO)
                        >= options.stale_ingest_age
            })
            .map(|(k, _)| k.clone())
            .collect();
        let metas = st.metas();
        let mut roots: Vec<Root> = st
            .roots(now)
            .into_iter()
            .filter(|r| !matches!(&r.parent, Parent::Ingest(k) if stale_ingests.contains(k)))
            .collect();
        roots.extend(options.keep.iter().map(|d| Root {
            parent: Parent::Kept,
            digest: d.clone(),
            media_type: None,
            size: None,
        }));
        let graph = Graph {
            blobs: &metas,
            content: &*st,
            cache: &self.inner.cache,
        };
        let mut report = graph.plan(&roots, options, now)?;
        report.expired_leases = expired_leases;
        report.stale_ingests = stale_ingests;
        if !options.dry_run {
            for r in &report.removed {
                st.blobs.remove(&r.digest);
            }
            for id in &report.expired_leases {
                st.leases.remove(id);
            }
            for k in &report.stale_ingests {
                st.ingests.remove(k);
            }
        }
        Ok(report)
    }

    async fn fsck(&self, options: &FsckOptions) -> Result<FsckReport> {
        let mut st = self.state();
        let mut report = FsckReport::default();
        for (d, (data, _)) in &st.blobs {
            report.checked += 1;
            report.bytes += data.len() as u64;
            let actual = d.algorithm().hash(data);
            if &actual != d {
                report.corrupt.push(crate::gc::Corrupt {
                    digest: d.clone(),
                    actual,
                    size: data.len() as u64,
                });
            }
        }
        report.corrupt.sort_by(|a, b| a.digest.cmp(&b.digest));
        if options.repair {
            for c in &report.corrupt {
                st.blobs.remove(&c.digest);
                report.removed.push(c.digest.clone());
            }
        }
        let metas = st.metas();
        let graph = Graph {
            blobs: &metas,
            content: &*st,
            cache: &self.inner.cache,
        };
        graph.check(&st.roots(SystemTime::now()), &mut report)?;
        Ok(report)
    }
}
