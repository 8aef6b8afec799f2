//! Storage is the only truth for existence: after the reference graph was loaded (and its
//! listing became trusted), every change to `blobs/`, by this store or by another tool writing
//! files directly, shows at once in `parents`/`refcount` and `stat`.

mod common;

use std::time::Duration;

use common::*;
use oci_manifest::build::ImageManifestBuilder;
use oci_store::{LayoutOptions, LayoutStore, ManagedStore, Parent, ReadStore, WriteStore};

#[tokio::test]
async fn cached_graph_never_answers_stale() {
    let t = TempDir::new("stale");
    let store = LayoutStore::open_with(t.path(), &LayoutOptions::create())
        .await
        .unwrap();
    let img = image(1, 1, 100);
    push_image(&store, &img).await.unwrap();
    let layer = img.blobs[0].desc.clone();
    store.load_graph().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(store.load_graph().await.unwrap(), 3);
    assert_eq!(
        store.parents(&layer.digest).await.unwrap(),
        vec![Parent::Manifest(img.root().digest.clone())]
    );

    // Another manifest over the same layer, pushed through the store.
    let other = from_manifest(
        &ImageManifestBuilder::oci(img.blobs[1].desc.clone())
            .layer(layer.clone())
            .annotation("n", "2")
            .build()
            .unwrap(),
    );
    store
        .push_bytes(&other.desc, other.data.clone())
        .await
        .unwrap();
    assert_eq!(store.refcount(&layer.digest).await.unwrap(), 2);

    // A third, written as a file by a tool that knows nothing of us.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(store.refcount(&layer.digest).await.unwrap(), 2);
    let third = from_manifest(
        &ImageManifestBuilder::oci(img.blobs[1].desc.clone())
            .layer(layer.clone())
            .annotation("n", "3")
            .build()
            .unwrap(),
    );
    std::fs::write(store.blob_path(&third.desc.digest), &third.data).unwrap();
    assert_eq!(store.refcount(&layer.digest).await.unwrap(), 3);
    assert_eq!(
        store.stat(&third.desc.digest).await.unwrap(),
        Some(third.desc.size)
    );

    // Removed behind our back: gone at once too.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(store.refcount(&layer.digest).await.unwrap(), 3);
    std::fs::remove_file(store.blob_path(&other.desc.digest)).unwrap();
    std::fs::remove_file(store.blob_path(&third.desc.digest)).unwrap();
    assert_eq!(store.refcount(&layer.digest).await.unwrap(), 1);
    assert_eq!(store.stat(&third.desc.digest).await.unwrap(), None);
}
