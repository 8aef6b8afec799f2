//! A layout opened read-only (`LayoutOptions::read_only`): everything that reads works, every
//! operation that would change the directory fails with `StoreError::ReadOnly`, and nothing in
//! the directory is created or changed (not even `.oci-rs/`), as on read-only media or in a
//! layout another tool owns.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use oci_store::{
    CopyOptions, FsckOptions, GcOptions, LayoutOptions, LayoutStore, ManagedStore, MemoryStore,
    ReadStore, STATE_DIR, StoreError, TagStore, WriteStore, copy,
};

fn assert_read_only<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(StoreError::ReadOnly { operation, .. }) => {
            assert!(!operation.is_empty(), "{what}")
        }
        other => panic!("{what}: expected ReadOnly, got {other:?}"),
    }
}

#[tokio::test]
async fn reads_work_changes_are_refused_and_nothing_is_touched() {
    let t = TempDir::new("read-only");
    let img = image(41, 3, 5000);
    {
        let w = LayoutStore::open_with(t.path(), &LayoutOptions::create())
            .await
            .unwrap();
        push_image(&w, &img).await.unwrap();
        w.tag(img.root(), "v1").await.unwrap();
    }
    // As a layout written by another tool: no state of ours.
    std::fs::remove_dir_all(t.path().join(STATE_DIR)).unwrap();
    let before = tree(t.path());

    let store = LayoutStore::open_with(t.path(), &LayoutOptions::read_only())
        .await
        .unwrap();
    // Reads.
    assert_eq!(store.tags().await.unwrap(), vec!["v1".to_owned()]);
    assert_eq!(store.resolve("v1").await.unwrap().digest, img.root().digest);
    let mut seen = check_complete(&store, img.root()).await.unwrap();
    seen.sort();
    let mut all = img.digests();
    all.sort();
    assert_eq!(seen, all);
    let layer = &img.blobs[0];
    assert_eq!(
        store.stat(&layer.desc.digest).await.unwrap(),
        Some(layer.desc.size)
    );
    assert_eq!(
        oci_store::collect(store.fetch_range(&layer.desc, 10..20).await.unwrap(), 100)
            .await
            .unwrap(),
        layer.data.slice(10..20)
    );
    assert!(store.fetch_manifest(img.root()).await.is_ok());
    assert_eq!(store.refcount(&layer.desc.digest).await.unwrap(), 1);
    assert!(store.ingests().await.unwrap().is_empty());
    assert!(store.leases().await.unwrap().is_empty());
    let report = store.fsck(&FsckOptions::default()).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    // A copy out of it.
    let mem = MemoryStore::new();
    copy(&store, "v1", &mem, None, &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(mem.resolve("v1").await.unwrap().digest, img.root().digest);

    // Changes.
    let new = blob("text/plain", Bytes::from_static(b"new content"));
    assert_read_only(store.push_bytes(&new.desc, new.data.clone()).await, "push");
    assert_read_only(store.writer("k", &new.desc).await.map(|_| ()), "writer");
    assert_read_only(store.tag(img.root(), "v2").await, "tag");
    assert_read_only(store.untag("v1").await, "untag");
    assert_read_only(store.delete(&layer.desc.digest).await, "delete");
    assert_read_only(
        store
            .push_forced(
                &layer.desc,
                Box::pin(futures_util::stream::iter([Ok(layer.data.clone())])),
            )
            .await,
        "push_forced",
    );
    assert_read_only(store.abort_ingest("k").await, "abort_ingest");
    assert_read_only(
        store.create_lease(Duration::from_secs(60)).await,
        "create_lease",
    );
    assert_read_only(store.gc(&GcOptions::default()).await, "gc");
    assert_read_only(store.fsck(&FsckOptions::repair()).await, "fsck --repair");

    drop(store);
    assert!(!t.path().join(STATE_DIR).exists());
    assert_eq!(
        tree(t.path()),
        before,
        "the read-only store changed the directory"
    );

    // Creating is a change too.
    let mut both = LayoutOptions::read_only();
    both.create = true;
    let fresh = t.path().join("fresh");
    assert_read_only(LayoutStore::open_with(&fresh, &both).await, "create");
    assert!(!fresh.exists());
}
