//! `BucketStore` on `object_store`'s in-memory backend: the public store suite (both parts),
//! the keys as an OCI image layout, tombstones seen by writers, concurrent taggers, resumes,
//! hostile keys and a backend without conditional writes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{Rng, blob, check_complete, image, push_image};
use oci_store::object_store::memory::InMemory;
use oci_store::object_store::path::Path;
use oci_store::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use oci_store::{
    Backend, BucketOptions, BucketStore, FsckOptions, GcOptions, ManagedStore, PushOutcome,
    ReadStore, StoreError, TagStore, WriteStore, testing,
};

async fn open(backend: &Backend, prefix: &str) -> BucketStore {
    BucketStore::open(backend, prefix, &BucketOptions::create())
        .await
        .expect("open the bucket store")
}

fn gc_now() -> GcOptions {
    GcOptions::default().with_min_age(Duration::ZERO)
}

#[tokio::test]
async fn store_suite_in_memory() {
    let backend = Backend::in_memory();
    let n = AtomicUsize::new(0);
    testing::store_suite(async || {
        open(&backend, &format!("s{}", n.fetch_add(1, Ordering::Relaxed))).await
    })
    .await;
}

#[tokio::test]
async fn managed_store_suite_in_memory() {
    let backend = Backend::in_memory();
    let n = AtomicUsize::new(0);
    testing::managed_store_suite(async || {
        open(&backend, &format!("m{}", n.fetch_add(1, Ordering::Relaxed))).await
    })
    .await;
}

/// The keys form an OCI image layout under the prefix; the state is elsewhere.
#[tokio::test]
async fn keys_are_an_oci_layout() {
    let backend = Backend::in_memory();
    let store = open(&backend, "cache/images").await;
    let img = image(1, 2, 1000);
    push_image(&store, &img).await.unwrap();
    store.tag(img.root(), "v1").await.unwrap();
    let os = backend.object_store();
    let mut keys: Vec<String> = os
        .list(Some(&Path::from("cache/images")))
        .map(|m| m.unwrap().location.to_string())
        .collect::<Vec<_>>()
        .await;
    keys.sort();
    let mut want: Vec<String> = img
        .digests()
        .iter()
        .map(|d| format!("cache/images/blobs/sha256/{}", d.encoded()))
        .collect();
    want.push("cache/images/index.json".into());
    want.push("cache/images/oci-layout".into());
    want.sort();
    assert_eq!(keys, want, "only the layout under the prefix");
    let index = os
        .get(&Path::from("cache/images/index.json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&index).unwrap();
    assert_eq!(
        v["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );
    assert_eq!(store.state_prefix(), "cache/images.oci-rs");
}

use futures_util::StreamExt;

/// Two stores (as two machines) write the same blobs at once: both succeed, one writes, the
/// content is intact.
#[tokio::test]
async fn concurrent_writers_of_the_same_blob() {
    let backend = Backend::in_memory();
    let a = open(&backend, "shared").await;
    let b = open(&backend, "shared").await;
    let big = blob("application/octet-stream", Rng::new(3).bytes(20 << 20));
    let (ra, rb) = tokio::join!(
        a.push_bytes(&big.desc, big.data.clone()),
        b.push_bytes(&big.desc, big.data.clone())
    );
    let mut outcomes = vec![ra.unwrap(), rb.unwrap()];
    outcomes.sort_by_key(|o| *o == PushOutcome::Written);
    assert!(outcomes.contains(&PushOutcome::Written), "{outcomes:?}");
    let back = oci_store::collect(a.fetch(&big.desc).await.unwrap(), u64::MAX)
        .await
        .unwrap();
    assert!(back == big.data);
    assert!(a.ingests().await.unwrap().is_empty());
}

/// Taggers on many stores (machines) at once lose no tag: compare-and-swap of index.json.
#[tokio::test]
async fn concurrent_taggers_lose_no_tags() {
    let backend = Backend::in_memory();
    let first = open(&backend, "tags").await;
    let img = image(5, 1, 10);
    push_image(&first, &img).await.unwrap();
    let mut stores = Vec::new();
    for _ in 0..8 {
        stores.push(open(&backend, "tags").await);
    }
    let tasks = stores.iter().enumerate().map(|(i, s)| {
        let root = img.root().clone();
        async move {
            for j in 0..10 {
                s.tag(&root, &format!("t{i}-{j}")).await.unwrap();
            }
        }
    });
    futures_util::future::join_all(tasks).await;
    assert_eq!(first.tags().await.unwrap().len(), 80);
}

/// A writer dropped mid-way keeps its parts and tail; a store opened anew (another process)
/// resumes it after the first one's hold lapses, and the content verifies.
#[tokio::test]
async fn dropped_writer_resumes_in_another_store() {
    let backend = Backend::in_memory();
    let options = BucketOptions::create().with_ingest_lock_ttl(Duration::ZERO);
    let a = BucketStore::open(&backend, "resume", &options)
        .await
        .unwrap();
    let b = blob(
        "application/octet-stream",
        Rng::new(7).bytes((21 << 20) + 5),
    );
    let mut w = a.writer("k", &b.desc).await.unwrap();
    w.write(b.data.slice(..(17 << 20) + 3)).await.unwrap();
    drop(w);
    let st = a.ingest_status("k").await.unwrap().unwrap();
    assert_eq!(st.offset, (17 << 20) + 3, "parts and tail kept");
    // Another backend instance: another process as far as ownership goes.
    let other = BucketStore::open(&backend, "resume", &options)
        .await
        .unwrap();
    let mut w = other.writer("k", &b.desc).await.unwrap();
    assert_eq!(w.offset(), (17 << 20) + 3);
    w.write(b.data.slice((17 << 20) + 3..)).await.unwrap();
    assert_eq!(w.commit().await.unwrap(), PushOutcome::Written);
    let back = oci_store::collect(other.fetch(&b.desc).await.unwrap(), u64::MAX)
        .await
        .unwrap();
    assert!(back == b.data);
    assert!(other.ingests().await.unwrap().is_empty());
}

/// A tombstone of a running collection makes a writer that found the blob wait: when the
/// collection removes the blob, the writer sees it gone and stores it again.
#[tokio::test]
async fn writers_wait_for_tombstones() {
    let backend = Backend::in_memory();
    let store = open(&backend, "tomb").await;
    let b = blob("application/octet-stream", &b"doomed content"[..]);
    store.push_bytes(&b.desc, b.data.clone()).await.unwrap();
    let os = backend.object_store();
    let tomb = Path::from(format!(
        "{}/doomed/sha256/{}",
        store.state_prefix(),
        b.desc.digest.encoded()
    ));
    let far = std::time::SystemTime::now() + Duration::from_secs(3600);
    let ms = far
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    os.put(
        &tomb,
        PutPayload::from(format!(r#"{{"gc":"gc-test","deadline_ms":{ms}}}"#)),
    )
    .await
    .unwrap();
    let lease = store.create_lease(Duration::from_secs(60)).await.unwrap();
    let leased = store.with_lease(&lease);
    let (desc, data) = (b.desc.clone(), b.data.clone());
    let writer = tokio::spawn(async move { leased.push_bytes(&desc, data).await });
    // The "collection" removes the blob, then its tombstone.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!writer.is_finished(), "the writer waits for the tombstone");
    os.delete(&Path::from(store.blob_key(&b.desc.digest)))
        .await
        .unwrap();
    os.delete(&tomb).await.unwrap();
    assert_eq!(writer.await.unwrap().unwrap(), PushOutcome::Written);
    assert!(store.exists(&b.desc.digest).await.unwrap());
}

/// GC beside a writer holding a lease over existing content: never removes it.
#[tokio::test]
async fn gc_reports_and_dry_run() {
    let backend = Backend::in_memory();
    let store = open(&backend, "dry").await;
    let img = image(9, 2, 100);
    push_image(&store, &img).await.unwrap();
    let r = store.gc(&gc_now().with_dry_run(true)).await.unwrap();
    assert_eq!(r.removed.len(), img.blobs.len());
    for d in img.digests() {
        assert!(store.exists(&d).await.unwrap());
    }
    let r = store.gc(&gc_now()).await.unwrap();
    assert_eq!(r.removed.len(), img.blobs.len());
    // No tombstones or markers are left.
    let os = backend.object_store();
    let left: Vec<_> = os
        .list(Some(&Path::from(store.state_prefix())))
        .map(|m| m.unwrap().location.to_string())
        .filter(|k| futures_util::future::ready(k.contains("/doomed/") || k.contains("/gc/")))
        .collect()
        .await;
    assert!(left.is_empty(), "{left:?}");
}

/// Hostile keys under `blobs/` are reported, never read or removed; a blob replaced behind the
/// store's back is named by fsck.
#[tokio::test]
async fn hostile_keys_and_replaced_blobs() {
    let backend = Backend::in_memory();
    let store = open(&backend, "hostile").await;
    let img = image(11, 1, 100);
    push_image(&store, &img).await.unwrap();
    store.tag(img.root(), "t").await.unwrap();
    let os = backend.object_store();
    let strange = [
        "hostile/blobs/sha256/not-a-digest",
        "hostile/blobs/sha256/abc/nested",
        "hostile/blobs/md5/0123",
    ];
    for k in strange {
        os.put(&Path::from(k), PutPayload::from_static(b"x"))
            .await
            .unwrap();
    }
    let r = store.gc(&gc_now()).await.unwrap();
    assert!(r.removed.is_empty(), "{r:?}");
    assert_eq!(r.skipped.len(), strange.len(), "{r:?}");
    for k in strange {
        assert!(os.head(&Path::from(k)).await.is_ok(), "{k} was removed");
    }
    // Replace a layer's bytes behind the store's back.
    let layer = &img.blobs[1];
    os.put(
        &Path::from(store.blob_key(&layer.desc.digest)),
        PutPayload::from(Bytes::from(vec![0u8; layer.data.len()])),
    )
    .await
    .unwrap();
    let f = store.fsck(&FsckOptions::default()).await.unwrap();
    assert_eq!(f.corrupt.len(), 1, "{f:?}");
    assert_eq!(f.corrupt[0].digest, layer.desc.digest);
    assert!(!f.is_clean());
    let e = oci_store::collect(store.fetch(&layer.desc).await.unwrap(), u64::MAX).await;
    assert!(e.is_err(), "a read of replaced content fails verification");
    let f = store.fsck(&FsckOptions::repair()).await.unwrap();
    assert_eq!(f.removed, vec![layer.desc.digest.clone()]);
    assert!(check_complete(&store, img.root()).await.is_err());
}

/// A backend that ignores conditional writes is refused at open, with a clear error.
#[tokio::test]
async fn backend_without_conditional_writes_is_refused() {
    let inner = Arc::new(InMemory::new());
    let liar = Arc::new(NoConditions(inner.clone()));
    let backend = Backend::custom(liar, inner, "no-conditions");
    let err = BucketStore::open(&backend, "x", &BucketOptions::create())
        .await
        .unwrap_err();
    let chain = oci_store::error_chain(&err);
    assert!(chain.contains("does not honour If-None-Match"), "{chain}");
    assert!(matches!(err, StoreError::Backend { .. }));
}

/// An `ObjectStore` that drops the conditions of puts (as a server without conditional writes
/// would).
#[derive(Debug)]
struct NoConditions(Arc<InMemory>);

impl std::fmt::Display for NoConditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no-conditions")
    }
}

#[async_trait::async_trait]
impl ObjectStore for NoConditions {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: oci_store::object_store::PutOptions,
    ) -> oci_store::object_store::Result<oci_store::object_store::PutResult> {
        opts.mode = oci_store::object_store::PutMode::Overwrite;
        self.0.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: oci_store::object_store::PutMultipartOptions,
    ) -> oci_store::object_store::Result<Box<dyn oci_store::object_store::MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: oci_store::object_store::GetOptions,
    ) -> oci_store::object_store::Result<oci_store::object_store::GetResult> {
        self.0.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: futures_util::stream::BoxStream<'static, oci_store::object_store::Result<Path>>,
    ) -> futures_util::stream::BoxStream<'static, oci_store::object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures_util::stream::BoxStream<
        'static,
        oci_store::object_store::Result<oci_store::object_store::ObjectMeta>,
    > {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> oci_store::object_store::Result<oci_store::object_store::ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: oci_store::object_store::CopyOptions,
    ) -> oci_store::object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }
}

/// An ingest record whose upload names another key (written by a hostile hand) is not
/// continued: the writer starts again, and nothing lands at that key.
#[tokio::test]
async fn hostile_ingest_record_target_is_not_followed() {
    let backend = Backend::in_memory();
    let store = open(&backend, "h").await;
    let b = blob(
        "application/octet-stream",
        Rng::new(17).bytes((9 << 20) + 1),
    );
    let mut w = store.writer("k", &b.desc).await.unwrap();
    w.write(b.data.slice(..(8 << 20) + 10)).await.unwrap();
    drop(w);
    assert!(store.ingest_status("k").await.unwrap().is_some());
    let os = backend.object_store();
    let index_before = os
        .get(&Path::from("h/index.json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let metas: Vec<_> = os
        .list(Some(&Path::from(format!(
            "{}/ingests",
            store.state_prefix()
        ))))
        .map(|m| m.unwrap().location)
        .collect()
        .await;
    let record_key = metas
        .iter()
        .find(|k| k.as_ref().ends_with(".json"))
        .unwrap()
        .clone();
    let raw = os.get(&record_key).await.unwrap().bytes().await.unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert!(v["upload"].is_object(), "a part was uploaded: {v}");
    v["upload"]["target"] = serde_json::json!("h/index.json");
    os.put(
        &record_key,
        PutPayload::from(serde_json::to_vec(&v).unwrap()),
    )
    .await
    .unwrap();
    let mut w = store.writer("k", &b.desc).await.unwrap();
    assert_eq!(w.offset(), 0, "the record was not continued");
    w.write(b.data.clone()).await.unwrap();
    assert_eq!(w.commit().await.unwrap(), PushOutcome::Written);
    let index_after = os
        .get(&Path::from("h/index.json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(index_before, index_after);
    let back = oci_store::collect(store.fetch(&b.desc).await.unwrap(), u64::MAX)
        .await
        .unwrap();
    assert!(back == b.data);
}

/// A descriptor claiming an absurd size is refused before anything is buffered or uploaded.
#[tokio::test]
async fn absurd_sizes_are_refused_at_once() {
    let backend = Backend::in_memory();
    let store = open(&backend, "absurd").await;
    let mut b = blob("application/octet-stream", &b"x"[..]);
    b.desc.size = u64::MAX;
    let err = store.writer("k", &b.desc).await.err().expect("refused");
    assert!(oci_store::error_chain(&err).contains("declares"), "{err:?}");
    assert!(store.ingests().await.unwrap().is_empty());
}
