//! `BucketStore`: a content store shared by many machines, on S3-compatible object storage,
//! with garbage collection that never stops the world (feature `object-store`).
//!
//! # Why here
//! The store is a feature of `oci-store` rather than a crate of its own because it shares this
//! crate's private parts: ingest-key validation, the reference graph and the garbage
//! collector's reachability walk (`gc.rs`), the leases' identifiers, and the public test suite
//! (`testing`). The layering stays clean: `oci-store` still depends only on `oci-digest` and
//! `oci-manifest` below it; the feature adds `object_store` (its S3 client, with `ring` and
//! reqwest: the workspace's one TLS stack, no aws-lc-rs) and nothing of
//! `oci-distribution-client`.
//!
//! The protocol (keys, verified writes, leases, collection, memory) is documented on
//! [`BucketStore`], the public face of this module.

mod backend;
mod blobs;
mod clock;
mod gc;
mod ingest;
mod keys;
mod leases;
mod tags;

// `index.json` and `oci-layout` are read and rewritten exactly as a local layout does (unknown
// fields kept, umoci's `null` manifests read as empty): one piece of code for both.
use crate::layout::index;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{BoxFuture, Shared};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode};
use oci_digest::Digest;

use crate::error::{Result, StoreError};
use crate::gc::NodeCache;
use crate::lease::Lease;

pub use backend::Backend;

use self::backend::{backend_err, is_exists, is_not_found, put};
use self::clock::StorageTime;
use self::keys::{Keys, parse_prefix};

/// How [`BucketStore::open`] opens a prefix, and how the store works.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BucketOptions {
    /// Create the layout (`oci-layout`, an empty `index.json`) when it is missing.
    pub create: bool,
    /// Where this crate's own state lives (default: `<prefix>.oci-rs`, or `.oci-rs` for the
    /// bucket's root). Every machine sharing the store must use the same.
    pub state_prefix: Option<String>,
    /// Size of an upload's parts (at least 5 MiB, S3's minimum; default 8 MiB). Raised for
    /// blobs so large that they would need more than 9,000 parts (above about 70 GiB).
    pub part_size: usize,
    /// Parts of one writer uploaded at the same time (default 4).
    pub upload_concurrency: usize,
    /// Bytes of parts in flight across **every** writer of the store (and its clones) at once
    /// (default 32 MiB: four parts of 8 MiB). A writer whose part would go beyond it waits for
    /// another part to finish uploading; one part is always allowed, however large. With `w`
    /// writers filling parts at once, the parts take at most `w × part_size + upload_memory`.
    pub upload_memory: usize,
    /// A writer holds its ingest this long after its last recorded part (default 60 s): a writer
    /// of another process waits until then before it takes over an ingest whose owner went
    /// silent (killed, say).
    pub ingest_lock_ttl: Duration,
    /// A collection removes blobs only within this time after it started (default 10 minutes);
    /// after it, its tombstones expire and writers stop waiting for them.
    pub gc_window: Duration,
    /// Longest wait for a tombstone of a running collection to go (default: `gc_window` plus
    /// a minute).
    pub tombstone_wait: Option<Duration>,
}

impl Default for BucketOptions {
    /// Do not create; default state prefix; 8 MiB parts, 4 in flight per writer and 32 MiB in
    /// flight per store; 60 s ingest locks; 10-minute collection windows.
    fn default() -> Self {
        BucketOptions {
            create: false,
            state_prefix: None,
            part_size: 8 << 20,
            upload_concurrency: 4,
            upload_memory: 32 << 20,
            ingest_lock_ttl: Duration::from_secs(60),
            gc_window: Duration::from_secs(600),
            tombstone_wait: None,
        }
    }
}

impl BucketOptions {
    /// Default options that create the layout when it is missing.
    ///
    /// ```
    /// assert!(oci_store::BucketOptions::create().create);
    /// ```
    pub fn create() -> Self {
        BucketOptions {
            create: true,
            ..BucketOptions::default()
        }
    }

    /// These options with `ingest_lock_ttl` replaced.
    ///
    /// ```
    /// let o = oci_store::BucketOptions::create().with_ingest_lock_ttl(std::time::Duration::from_secs(5));
    /// assert_eq!(o.ingest_lock_ttl.as_secs(), 5);
    /// ```
    pub fn with_ingest_lock_ttl(mut self, ttl: Duration) -> Self {
        self.ingest_lock_ttl = ttl;
        self
    }

    /// These options with `part_size` replaced (raised to 5 MiB at least).
    ///
    /// ```
    /// let o = oci_store::BucketOptions::create().with_part_size(1);
    /// assert_eq!(o.part_size, 5 << 20);
    /// ```
    pub fn with_part_size(mut self, size: usize) -> Self {
        self.part_size = size.max(MIN_PART);
        self
    }

    /// These options with `upload_memory` replaced (the bytes of parts in flight across every
    /// writer of the store).
    ///
    /// ```
    /// let o = oci_store::BucketOptions::create().with_upload_memory(64 << 20);
    /// assert_eq!(o.upload_memory, 64 << 20);
    /// ```
    pub fn with_upload_memory(mut self, bytes: usize) -> Self {
        self.upload_memory = bytes;
        self
    }

    /// These options with `state_prefix` replaced.
    ///
    /// ```
    /// let o = oci_store::BucketOptions::create().with_state_prefix("state/app");
    /// assert_eq!(o.state_prefix.as_deref(), Some("state/app"));
    /// ```
    pub fn with_state_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.state_prefix = Some(prefix.into());
        self
    }

    /// These options with `gc_window` replaced.
    ///
    /// ```
    /// let o = oci_store::BucketOptions::create().with_gc_window(std::time::Duration::from_secs(60));
    /// assert_eq!(o.gc_window.as_secs(), 60);
    /// ```
    pub fn with_gc_window(mut self, window: Duration) -> Self {
        self.gc_window = window;
        self
    }
}

/// S3's smallest part (all parts of an upload but the last).
const MIN_PART: usize = 5 << 20;

/// Largest small record read (`oci-layout`, lease, ingest and tombstone records).
const RECORD_LIMIT: u64 = 1 << 20;

/// An OCI image layout as keys of an S3-compatible bucket (or another `object_store` backend
/// with conditional writes), shared by many machines, with garbage collection that never stops
/// the world. Feature `object-store`.
///
/// # Keys
/// Under the store's prefix `P`, an OCI image layout: `P/oci-layout`, `P/index.json` (tags as
/// `org.opencontainers.image.ref.name` annotations) and `P/blobs/<alg>/<hex>`, so the prefix
/// copied to a disk is a layout skopeo and umoci read. This crate's own state lives under a
/// separate prefix `S` (default `P.oci-rs`, or `.oci-rs` for the bucket's root):
///
/// ```text
/// S/ingests/<sha256 of key>.json   an upload in progress: key, expected descriptor, upload id,
///                                  parts (number, ETag, size), the hash state after them,
///                                  the owner and the tail (bytes after the parts)
/// S/ingests/<sha256 of key>.tail   those bytes (less than a part), kept when a writer is dropped
/// S/ingests/<sha256 of key>.data   the upload's target, on backends that copy into place
/// S/leases/<id>.json               a lease: its expiry in storage time
/// S/leases/<id>/<alg>/<hex>        a pin: content the lease protects
/// S/doomed/<alg>/<hex>             a tombstone: a collection is about to remove this blob
/// S/gc/<run>.json                  a collection in progress
/// S/clock/<instance>, S/probe/...  the storage clock and the conditional-write probe
/// ```
///
/// # Verified or invisible, across machines
/// - A blob's bytes are hashed as they are uploaded (multipart, parts of a bounded size, a few
///   in flight). It becomes visible under `blobs/` only after it verified, by the completion of
///   its upload (on S3: uploaded to its own key, completed with `If-None-Match: *`) or by a
///   create-only copy from the state prefix (other backends). Nothing ever overwrites a blob,
///   so two machines storing the same blob cannot damage each other's result.
/// - Tags change only by compare-and-swap of `index.json` (`If-Match` on its ETag), retried on
///   conflict, so concurrent taggers never lose each other's tags.
/// - A dropped writer keeps its ingest; a killed one leaves its recorded parts. A writer opened
///   with the same key, in this or another process, on this or another machine, resumes from
///   the recorded parts (the hash state after them is in the record) and the tail.
/// - Opening a store probes the server: a create-only put of an existing key, a put with a
///   wrong ETag and (on S3) a create-only completion must all be refused, or the store refuses
///   to open ([`StoreError::Unsupported`] in the chain, with what the server did).
///
/// # Leases and garbage collection across machines
/// A lease is an object with an expiry; what a leased view writes or finds is pinned (one
/// object per pin) **before** it becomes visible or is reported found. A collection writes its
/// marker, lists the blobs, reads the roots (leases and pins first, then ingests, then
/// `index.json`: the order in which a writer's protection moves from its lease to its tag),
/// marks what they reach (fetching content newer than the listing when a root needs it), and
/// selects what is unreferenced, unleased and older than the marker minus
/// [`GcOptions::min_age`](crate::GcOptions). Then, instead of a lock:
/// 1. it writes a tombstone for each selected blob (create-only; a blob another collection
///    already doomed is left to it),
/// 2. reads the roots again and spares what they now reach,
/// 3. removes the rest, then their tombstones.
///
/// A writer that finds content already stored (a push answered "already exists", a leased
/// `stat`, a tag) first makes its reference visible (a pin, the tag), then checks that no
/// tombstone names the content, then that the content exists. Either the collection's second
/// reading saw the reference (and spared the blob), or the writer sees the tombstone and waits
/// for that collection to finish before looking again. Writers wait only for a blob being
/// removed at that moment; nothing else ever waits for a collection.
///
/// Every age and expiry is judged in storage time (objects' `last_modified`, and "now" read
/// from the storage with its uncertainty: see `clock.rs`), so machines whose wall clocks
/// disagree by hours collect safely. A collection stops removing when its time window
/// ([`BucketOptions::gc_window`]) is over; its tombstones then expire.
///
/// A collection does not need a grace period to be safe beside leased writers (pins are
/// visible before content is), so it uses [`GcOptions::min_age`](crate::GcOptions) as given:
/// that protects content written by tools that know nothing of leases. Unlike a local layout,
/// which refreshes the age of a blob found already stored, content found by a push **without**
/// a lease is not protected (object storage cannot touch an object without copying it): write
/// through a leased view ([`ManagedStore::with_lease`](crate::ManagedStore::with_lease)), as
/// [`copy_leased`](crate::copy_leased) does.
///
/// # Requests of a collection
/// A collection lists `blobs/` once (one request per 1,000 keys) and the state prefix's leases,
/// ingests, tombstones and markers; it reads `index.json` and fetches every manifest the roots
/// reach, a level of the graph at a time, many at once (once per process: parsed manifests are
/// cached). To find referrers of live content it reads each unreferenced blob of at most
/// 4 MiB once (larger ones cannot be manifests). Then one create-only tombstone per blob to
/// remove, and removals (of the blobs, then of their tombstones) in batched requests of 250
/// keys (`DeleteObjects` on S3). On 100,000 blobs of which 50,000 go, that is about 100 lists,
/// 51,000 reads, 50,000 tombstones and 400 batched removals (`BENCHMARKS.md`).
///
/// # Memory
/// Blobs stream. A writer holds the part it is filling ([`BucketOptions::part_size`], 8 MiB by
/// default) and hands full parts to uploads; the parts in flight of **all** the store's writers
/// together hold at most [`BucketOptions::upload_memory`] (32 MiB by default), and at most
/// [`BucketOptions::upload_concurrency`] (4) of them belong to one writer. So `w` writers at
/// once hold at most `w × part_size + upload_memory` of parts, whatever the blobs' sizes
/// (up to about 70 GiB: a larger blob needs parts larger than 8 MiB to stay within S3's
/// 10,000). Reads stream the objects; fsck hashes as it reads.
///
/// Why these sizes: parts of 8 MiB are well above S3's minimum of 5 MiB, few enough requests
/// (and ingest-record updates, one per part) per GiB (128), and small enough that four copies
/// being filled (`copy --jobs 4`) take 32 MiB; four parts in flight keep a loopback or LAN
/// server busy (in `BENCHMARKS.md`, they reach 0.8 of `object_store`'s own multipart uploads
/// with 16 parts in flight). Raise `upload_memory` for a distant server, where each part
/// waits a long round trip.
///
/// ```
/// use bytes::Bytes;
/// use oci_manifest::Descriptor;
/// use oci_store::{Backend, BucketOptions, BucketStore, ReadStore, TagStore, WriteStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let backend = Backend::in_memory(); // or Backend::s3_from_env("bucket")?
/// let store = BucketStore::open(&backend, "images/app", &BucketOptions::create()).await?;
/// let data = Bytes::from_static(b"{}");
/// let desc = Descriptor::new("application/vnd.oci.image.config.v1+json",
///     oci_digest::Algorithm::Sha256.hash(&data), 2);
/// store.push_bytes(&desc, data).await?;
/// assert_eq!(store.stat(&desc.digest).await?, Some(2));
/// # Ok::<(), oci_store::StoreError>(())
/// # }).unwrap();
/// ```
///
/// Cloning is cheap; clones share the parsed-manifest cache and the backend.
///
/// ```
/// use oci_store::{Backend, BucketOptions, BucketStore, TagStore};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = BucketStore::open(&Backend::in_memory(), "images", &BucketOptions::create()).await?;
/// assert!(store.tags().await?.is_empty());
/// assert_eq!(store.to_string(), "memory/images");
/// # Ok::<(), oci_store::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct BucketStore {
    inner: Arc<Inner>,
    lease: Option<Lease>,
}

struct Inner {
    backend: Backend,
    keys: Keys,
    options: BucketOptions,
    cache: NodeCache,
    /// Ingests of this process: held by a writer, or being saved after a writer was dropped.
    local: Mutex<HashMap<String, Local>>,
    /// Bytes of parts in flight across the store's writers (`options.upload_memory` permits).
    parts: Arc<tokio::sync::Semaphore>,
}

/// An ingest of this process.
#[derive(Default)]
struct Local {
    held: bool,
    saving: Option<Shared<BoxFuture<'static, ()>>>,
}

impl fmt::Debug for BucketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BucketStore")
            .field("backend", &self.inner.backend)
            .field("prefix", &self.inner.keys.layout().as_ref())
            .field("state", &self.inner.keys.state().as_ref())
            .field("lease", &self.lease.as_ref().map(Lease::id))
            .finish()
    }
}

impl fmt::Display for BucketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.inner.backend, self.inner.keys.layout())
    }
}

impl BucketStore {
    /// Opens the layout under `prefix` of `backend` (an empty prefix is the bucket's root),
    /// after probing the backend's conditional writes.
    ///
    /// # Errors
    /// [`StoreError::NotALayout`] when there is no `oci-layout` and `options.create` is not
    /// set; [`StoreError::CorruptLayout`] when it or `index.json` is invalid;
    /// [`StoreError::Backend`] (with [`StoreError::Unsupported`] in its chain) when the backend
    /// ignores conditional writes; [`StoreError::Backend`] when the bucket cannot be reached.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = oci_store::BucketStore::open(&oci_store::Backend::in_memory(), "team/app", &oci_store::BucketOptions::create()).await?;
    /// assert_eq!(store.prefix(), "team/app");
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub async fn open(
        backend: &Backend,
        prefix: &str,
        options: &BucketOptions,
    ) -> Result<BucketStore> {
        let layout = parse_prefix(prefix, "prefix")?;
        let state = options
            .state_prefix
            .as_deref()
            .map(|s| parse_prefix(s, "state prefix"))
            .transpose()?;
        let keys = Keys::new(layout, state)?;
        let mut options = options.clone();
        options.part_size = options.part_size.max(MIN_PART);
        options.upload_concurrency = options.upload_concurrency.max(1);
        options.upload_memory = options
            .upload_memory
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        let parts = Arc::new(tokio::sync::Semaphore::new(options.upload_memory));
        let store = BucketStore {
            inner: Arc::new(Inner {
                backend: backend.clone(),
                keys,
                options,
                cache: NodeCache::default(),
                local: Mutex::new(HashMap::new()),
                parts,
            }),
            lease: None,
        };
        store.open_layout().await?;
        backend.probe(&store.inner.keys).await?;
        Ok(store)
    }

    /// Opens `s3://BUCKET/PREFIX` with the configuration of the environment
    /// ([`Backend::s3_from_env`]: `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...).
    ///
    /// ```no_run
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = oci_store::BucketStore::open_url("s3://cache/images", &oci_store::BucketOptions::create()).await?;
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Backend`] for a URL that is not `s3://BUCKET[/PREFIX]`; as
    /// [`open`](Self::open) otherwise.
    pub async fn open_url(url: &str, options: &BucketOptions) -> Result<BucketStore> {
        let (bucket, prefix) = parse_s3_url(url)?;
        let backend = Backend::s3_from_env(bucket)?;
        Self::open(&backend, prefix, options).await
    }

    /// The backend.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = oci_store::BucketStore::open(&oci_store::Backend::in_memory(), "team/app", &oci_store::BucketOptions::create()).await?;
    /// assert_eq!(store.backend().to_string(), "memory");
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// The layout's prefix (empty for the bucket's root).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = oci_store::BucketStore::open(&oci_store::Backend::in_memory(), "team/app", &oci_store::BucketOptions::create()).await?;
    /// assert_eq!(store.prefix(), "team/app");
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub fn prefix(&self) -> &str {
        self.inner.keys.layout().as_ref()
    }

    /// The prefix of this crate's own state.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = oci_store::BucketStore::open(&oci_store::Backend::in_memory(), "team/app", &oci_store::BucketOptions::create()).await?;
    /// assert_eq!(store.state_prefix(), "team/app.oci-rs");
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub fn state_prefix(&self) -> &str {
        self.inner.keys.state().as_ref()
    }

    /// The key of blob `digest` (`<prefix>/blobs/<alg>/<hex>`).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = oci_store::BucketStore::open(&oci_store::Backend::in_memory(), "p", &oci_store::BucketOptions::create()).await?;
    /// let d = oci_digest::Algorithm::Sha256.hash(b"");
    /// assert_eq!(store.blob_key(&d), format!("p/blobs/sha256/{}", d.encoded()));
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub fn blob_key(&self, digest: &Digest) -> String {
        self.inner.keys.blob(digest).to_string()
    }

    fn store(&self) -> &Arc<dyn object_store::ObjectStore> {
        &self.inner.backend.inner.store
    }

    fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// Storage time now.
    async fn now(&self) -> Result<StorageTime> {
        let b = &self.inner.backend.inner;
        b.clock.now(b, &self.inner.keys.clock(&b.instance)).await
    }

    /// Creates or checks `oci-layout` and `index.json`.
    async fn open_layout(&self) -> Result<()> {
        let marker = self.keys().oci_layout();
        match self.read_small(&marker, "oci-layout").await? {
            Some((raw, _)) => index::check_marker(std::path::Path::new(marker.as_ref()), &raw)?,
            None if self.inner.options.create => {
                let index = Bytes::from(index::IndexFile::default().to_bytes()?);
                match put(self.store(), &self.keys().index(), index, PutMode::Create).await {
                    Ok(_) => {}
                    Err(e) if is_exists(&e) => {}
                    Err(e) => {
                        return Err(backend_err(format!("create {}", self.keys().index()), e));
                    }
                }
                let raw = Bytes::from_static(br#"{"imageLayoutVersion":"1.0.0"}"#);
                match put(self.store(), &marker, raw, PutMode::Create).await {
                    Ok(_) => {}
                    Err(e) if is_exists(&e) => {}
                    Err(e) => return Err(backend_err(format!("create {marker}"), e)),
                }
            }
            None => {
                return Err(StoreError::NotALayout {
                    path: marker.to_string().into(),
                    reason: "no oci-layout object",
                });
            }
        }
        self.read_index().await?;
        Ok(())
    }

    /// Reads a small object whole, refusing more than [`RECORD_LIMIT`] bytes: its bytes and
    /// metadata, or `None` when it does not exist.
    async fn read_small(
        &self,
        key: &Path,
        what: &str,
    ) -> Result<Option<(Bytes, object_store::ObjectMeta)>> {
        self.read_limited(key, what, RECORD_LIMIT).await
    }

    async fn read_limited(
        &self,
        key: &Path,
        what: &str,
        limit: u64,
    ) -> Result<Option<(Bytes, object_store::ObjectMeta)>> {
        let got = match self.store().get(key).await {
            Ok(g) => g,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(backend_err(format!("read {what} {key}"), e)),
        };
        if got.meta.size > limit {
            return Err(StoreError::FileTooLarge {
                path: key.to_string().into(),
                limit,
            });
        }
        let meta = got.meta.clone();
        let stream = got.into_stream();
        let mapped: crate::traits::BlobStream =
            Box::pin(futures_util::StreamExt::map(stream, |r| {
                r.map_err(std::io::Error::other)
            }));
        let raw = crate::traits::collect(mapped, limit)
            .await
            .map_err(|e| match e {
                StoreError::Io { source, .. } => {
                    StoreError::backend(format!("read {what} {key}"), source)
                }
                other => other,
            })?;
        Ok(Some((raw, meta)))
    }

    /// The local state of ingest `hashed`, waiting first for a dropped writer's bytes to be
    /// saved.
    async fn settle(&self, hashed: &str) {
        loop {
            let saving = {
                let Ok(map) = self.inner.local.lock() else {
                    return;
                };
                map.get(hashed).and_then(|l| l.saving.clone())
            };
            match saving {
                Some(f) => f.await,
                None => return,
            }
        }
    }

    /// Waits until every dropped writer of this process has saved its bytes.
    async fn settle_all(&self) {
        let all: Vec<_> = match self.inner.local.lock() {
            Ok(map) => map.values().filter_map(|l| l.saving.clone()).collect(),
            Err(_) => return,
        };
        for f in all {
            f.await;
        }
    }
}

/// Splits `s3://BUCKET[/PREFIX]`.
fn parse_s3_url(url: &str) -> Result<(&str, &str)> {
    let bad = |why: &str| {
        StoreError::backend(
            format!("{url:?} is not an s3://BUCKET/PREFIX URL: {why}"),
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        )
    };
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| bad("no s3:// scheme"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty()
        || !bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(bad(
            "the bucket name must be lower-case letters, digits, '-' and '.'",
        ));
    }
    Ok((bucket, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(
            parse_s3_url("s3://cache/images/app").unwrap(),
            ("cache", "images/app")
        );
        assert_eq!(parse_s3_url("s3://cache").unwrap(), ("cache", ""));
        assert!(parse_s3_url("http://cache/x").is_err());
        assert!(parse_s3_url("s3:///x").is_err());
        assert!(parse_s3_url("s3://Cache/x").is_err());
    }
}
