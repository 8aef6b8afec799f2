//! Hostile and broken input: typed errors, no panic, nothing written.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use oci_digest::VerifyError;
use oci_manifest::build::{ImageManifestBuilder, IndexBuilder};
use oci_manifest::{Descriptor, media_types};
use oci_store::testing::LyingStore;
use oci_store::{
    Digest, FsckOptions, GcOptions, LayoutOptions, LayoutStore, ManagedStore, MemoryStore, Parent,
    PushOutcome, ReadStore, StoreError, TagStore, WriteStore, collect, walk,
};

/// Every file under `dir` (except lock files, which opening may create) with its content.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.to_string_lossy().ends_with(".lock") {
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn gc_now() -> GcOptions {
    GcOptions::default().with_min_age(Duration::ZERO)
}

async fn layout(t: &TempDir) -> LayoutStore {
    LayoutStore::open_with(t.path().join("l"), &LayoutOptions::create())
        .await
        .unwrap()
}

#[tokio::test]
async fn digests_with_dot_dot_or_separators_in_index_json() {
    let t = TempDir::new("dotdot");
    let store = layout(&t).await;
    let junk = blob("application/octet-stream", &b"unreferenced"[..]);
    store
        .push_bytes(&junk.desc, junk.data.clone())
        .await
        .unwrap();
    let root = t.path().join("l");
    for bad in [
        "sha256:../../../../etc/passwd",
        "sha256/../../x:abc",
        "sha256:a/b",
        "../sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
    ] {
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{bad}","size":2}}]}}"#,
            media_types::OCI_MANIFEST
        );
        std::fs::write(root.join("index.json"), &index).unwrap();
        let before = snapshot(&root);
        let err = LayoutStore::open(&root).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::CorruptLayout {
                    source: Some(_),
                    ..
                }
            ),
            "{bad}: {err:?}"
        );
        // The already open store refuses too, and GC removes nothing when it cannot know the roots.
        assert!(matches!(
            store.tags().await.unwrap_err(),
            StoreError::CorruptLayout { .. }
        ));
        assert!(matches!(
            store.gc(&gc_now()).await.unwrap_err(),
            StoreError::CorruptLayout { .. }
        ));
        assert!(matches!(
            store.tag(&junk.desc, "x").await.unwrap_err(),
            StoreError::CorruptLayout { .. }
        ));
        assert_eq!(snapshot(&root), before, "nothing written for {bad}");
    }
}

#[tokio::test]
async fn corrupted_index_json_and_layout_marker() {
    let t = TempDir::new("index");
    let store = layout(&t).await;
    let img = image(1, 1, 100);
    push_image(&store, &img).await.unwrap();
    store.tag(img.root(), "keep").await.unwrap();
    let root = t.path().join("l");
    let good = std::fs::read(root.join("index.json")).unwrap();
    for bad in [
        &good[..good.len() / 2],
        b"",
        b"null",
        br#"{"schemaVersion":1,"manifests":[]}"#,
        br#"{"schemaVersion":2,"manifests":{}}"#,
        br#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:abc","size":1}]}"#,
        br#"{"schemaVersion":2,"manifests":[{"mediaType":"x","size":-1}]}"#,
    ] {
        std::fs::write(root.join("index.json"), bad).unwrap();
        let before = snapshot(&root);
        assert!(matches!(
            LayoutStore::open(&root).await.unwrap_err(),
            StoreError::CorruptLayout { .. }
        ));
        assert!(matches!(
            store.resolve("keep").await.unwrap_err(),
            StoreError::CorruptLayout { .. }
        ));
        assert!(matches!(
            store.untag("keep").await.unwrap_err(),
            StoreError::CorruptLayout { .. }
        ));
        assert!(matches!(
            store.gc(&gc_now()).await.unwrap_err(),
            StoreError::CorruptLayout { .. }
        ));
        assert!(matches!(
            store.fsck(&FsckOptions::repair()).await.unwrap_err(),
            StoreError::CorruptLayout { .. }
        ));
        assert_eq!(snapshot(&root), before);
    }
    std::fs::write(root.join("index.json"), &good).unwrap();
    check_complete(&store, img.root()).await.unwrap();

    std::fs::write(
        root.join("oci-layout"),
        br#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    assert!(matches!(
        LayoutStore::open(&root).await.unwrap_err(),
        StoreError::CorruptLayout { .. }
    ));
    std::fs::write(root.join("oci-layout"), b"{").unwrap();
    assert!(matches!(
        LayoutStore::open(&root).await.unwrap_err(),
        StoreError::CorruptLayout {
            source: Some(_),
            ..
        }
    ));
    std::fs::remove_file(root.join("oci-layout")).unwrap();
    assert!(matches!(
        LayoutStore::open(&root).await.unwrap_err(),
        StoreError::NotALayout { .. }
    ));
    assert!(matches!(
        LayoutStore::open(t.path().join("nowhere"))
            .await
            .unwrap_err(),
        StoreError::NotALayout { .. }
    ));
}

#[tokio::test]
async fn truncated_and_corrupt_blobs_on_disk() {
    let t = TempDir::new("truncated");
    let store = layout(&t).await;
    let img = image(2, 2, 50_000);
    push_image(&store, &img).await.unwrap();
    store.tag(img.root(), "t").await.unwrap();
    let (a, b) = (&img.blobs[0], &img.blobs[1]);
    // Truncate one layer, flip a byte of the other.
    let pa = store.blob_path(&a.desc.digest);
    std::fs::write(&pa, &a.data[..1000]).unwrap();
    let pb = store.blob_path(&b.desc.digest);
    let mut bytes = b.data.to_vec();
    bytes[42] ^= 0xff;
    std::fs::write(&pb, &bytes).unwrap();

    assert_eq!(
        store.stat(&a.desc.digest).await.unwrap(),
        Some(1000),
        "storage is the truth"
    );
    assert!(matches!(
        store.fetch(&a.desc).await.err().unwrap(),
        StoreError::SizeMismatch {
            expected: 50_000,
            actual: 1000,
            ..
        }
    ));
    let err = collect(store.fetch(&b.desc).await.unwrap(), u64::MAX)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Verify(VerifyError::DigestMismatch { .. })),
        "{err:?}"
    );

    let f = store.fsck(&FsckOptions::default()).await.unwrap();
    assert!(!f.is_clean());
    let mut corrupt: Vec<Digest> = f.corrupt.iter().map(|c| c.digest.clone()).collect();
    corrupt.sort();
    let mut want = vec![a.desc.digest.clone(), b.desc.digest.clone()];
    want.sort();
    assert_eq!(corrupt, want);
    assert!(f.removed.is_empty());
    assert!(pa.exists());
    // Repair removes them; they are then missing, and the next push writes them again.
    let f = store.fsck(&FsckOptions::repair()).await.unwrap();
    assert_eq!(f.removed.len(), 2);
    assert_eq!(f.missing.len(), 2);
    assert!(
        f.missing
            .iter()
            .all(|(_, p)| *p == Parent::Manifest(img.root().digest.clone()))
    );
    assert_eq!(push_image(&store, &img).await.unwrap(), 2);
    assert!(
        store
            .fsck(&FsckOptions::default())
            .await
            .unwrap()
            .is_clean()
    );
    check_complete(&store, img.root()).await.unwrap();
}

#[tokio::test]
async fn foreign_files_in_blobs_are_left_alone() {
    let t = TempDir::new("foreign");
    let store = layout(&t).await;
    let root = t.path().join("l");
    let odd = [
        "blobs/sha256/not-a-digest",
        "blobs/sha256/E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "blobs/sha256/.tmp-skopeo-123",
        "blobs/md5/d41d8cd98f00b204e9800998ecf8427e",
    ];
    for p in odd {
        std::fs::create_dir_all(root.join(p).parent().unwrap()).unwrap();
        std::fs::write(root.join(p), b"x").unwrap();
    }
    let r = store.gc(&gc_now()).await.unwrap();
    assert_eq!(r.blobs, 0);
    let f = store.fsck(&FsckOptions::repair()).await.unwrap();
    assert_eq!(f.checked, 0);
    for p in odd {
        assert!(root.join(p).exists(), "{p} left alone");
    }
}

/// A manifest that (through a corrupt file) refers to itself; indexes nested without end;
/// a lying store serving a cycle. Typed errors, no panic, GC terminates and removes nothing
/// it must not.
#[tokio::test]
async fn self_reference_cycles_and_endless_nesting() {
    // 1. Self reference on disk: the file named X holds a manifest listing X.
    let t = TempDir::new("selfref");
    let store = layout(&t).await;
    let x = oci_digest::Algorithm::Sha256.hash(b"placeholder");
    let config = blob(media_types::OCI_CONFIG, &b"{}"[..]);
    store
        .push_bytes(&config.desc, config.data.clone())
        .await
        .unwrap();
    let probe = ImageManifestBuilder::oci(config.desc.clone())
        .layer(Descriptor::new(media_types::OCI_MANIFEST, x.clone(), 0))
        .build()
        .unwrap();
    // The size field has the same number of digits either way once we pick it right.
    let mut size = probe.size();
    let raw = loop {
        let m = ImageManifestBuilder::oci(config.desc.clone())
            .layer(Descriptor::new(media_types::OCI_MANIFEST, x.clone(), size))
            .build()
            .unwrap();
        if m.size() == size {
            break m.raw().clone();
        }
        size = m.size();
    };
    std::fs::write(store.blob_path(&x), &raw).unwrap();
    let self_desc = Descriptor::new(media_types::OCI_MANIFEST, x.clone(), size);
    store.tag(&self_desc, "loop").await.unwrap();
    let junk = blob("application/octet-stream", &b"junk"[..]);
    store
        .push_bytes(&junk.desc, junk.data.clone())
        .await
        .unwrap();
    let err = walk(&store, &self_desc, 8).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Verify(VerifyError::DigestMismatch { .. })),
        "{err:?}"
    );
    let err = store.gc(&gc_now()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Verify(_)),
        "GC refuses to guess the children of a corrupt root: {err:?}"
    );
    assert!(
        store.exists(&junk.desc.digest).await.unwrap(),
        "nothing removed"
    );
    let f = store.fsck(&FsckOptions::default()).await.unwrap();
    assert_eq!(f.corrupt.len(), 1);
    assert_eq!(f.missing, vec![(x.clone(), Parent::Tag("loop".into()))]);

    // 2. A store that serves unverified bytes: a real cycle is detected.
    let a_digest = oci_digest::Algorithm::Sha256.hash(b"a");
    let b_digest = oci_digest::Algorithm::Sha256.hash(b"b");
    let idx = |child: &Digest| {
        IndexBuilder::oci()
            .manifest(Descriptor::new(media_types::OCI_INDEX, child.clone(), 100))
            .build()
            .unwrap()
            .raw()
            .clone()
    };
    let liar = LyingStore::default();
    liar.serve(&a_digest, idx(&b_digest));
    liar.serve(&b_digest, idx(&a_digest));
    let err = walk(
        &liar,
        &Descriptor::new(media_types::OCI_INDEX, a_digest.clone(), 100),
        8,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, StoreError::Cycle { ref digest, .. } if *digest == a_digest),
        "{err:?}"
    );

    // 3. Indexes nested 300 deep (valid content): walk stops at the limit with a typed error;
    //    GC (iterative) keeps the whole chain; refcounts are exact.
    let mem = MemoryStore::new();
    let leaf = image(5, 1, 10);
    push_image(&mem, &leaf).await.unwrap();
    let mut top = leaf.root().clone();
    let mut chain = vec![top.clone()];
    for _ in 0..300 {
        let m = IndexBuilder::oci().manifest(top.clone()).build().unwrap();
        mem.push_bytes(&m.descriptor(), m.raw().clone())
            .await
            .unwrap();
        top = m.descriptor();
        chain.push(top.clone());
    }
    mem.tag(&top, "deep").await.unwrap();
    let err = walk(&mem, &top, oci_store::DEFAULT_MAX_INDEX_DEPTH)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NestingTooDeep { limit: 8, .. }),
        "{err:?}"
    );
    assert_eq!(walk(&mem, &top, 1000).await.unwrap().len(), 301 + 2);
    let r = mem.gc(&gc_now()).await.unwrap();
    assert!(r.removed.is_empty());
    assert_eq!(mem.refcount(&chain[0].digest).await.unwrap(), 1);
    assert_eq!(
        mem.parents(&top.digest).await.unwrap(),
        vec![Parent::Tag("deep".into())]
    );
}

#[tokio::test]
async fn bad_leases_keys_and_sizes() {
    let t = TempDir::new("leases");
    let store = layout(&t).await;
    let lease = store.create_lease(Duration::from_secs(60)).await.unwrap();
    let a = blob("application/octet-stream", &b"pinned"[..]);
    store
        .with_lease(&lease)
        .push_bytes(&a.desc, a.data.clone())
        .await
        .unwrap();
    // A damaged lease record keeps its pins (never lose content on doubt).
    let json = t
        .path()
        .join("l/.oci-rs/leases")
        .join(format!("{}.json", lease.id()));
    std::fs::write(&json, b"{garbage").unwrap();
    let r = store.gc(&gc_now()).await.unwrap();
    assert!(r.removed.is_empty());
    assert!(store.exists(&a.desc.digest).await.unwrap());
    // Writes under it are refused with a typed error, and write nothing.
    let b = blob("application/octet-stream", &b"other"[..]);
    let err = store
        .with_lease(&lease)
        .push_bytes(&b.desc, b.data.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CorruptLayout { .. }), "{err:?}");
    assert!(!store.exists(&b.desc.digest).await.unwrap());
    // Keys with control characters, overlong keys.
    assert!(matches!(
        store.writer("a\0b", &b.desc).await.err().unwrap(),
        StoreError::InvalidIngestKey { .. }
    ));
    assert!(matches!(
        store
            .writer(&"k".repeat(5000), &b.desc)
            .await
            .err()
            .unwrap(),
        StoreError::InvalidIngestKey { .. }
    ));
    // A descriptor claiming a huge size for small content: refused at commit, nothing visible.
    let mut huge = b.desc.clone();
    huge.size = u64::MAX;
    let err = store.push_bytes(&huge, b.data.clone()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Verify(VerifyError::TooShort { .. })),
        "{err:?}"
    );
    assert!(store.ingests().await.unwrap().is_empty());
    assert_eq!(
        store.push_bytes(&b.desc, b.data.clone()).await.unwrap(),
        PushOutcome::Written
    );
}

/// A reference that declares another size than the content has (in `index.json` and in a
/// manifest): fsck reports it, GC keeps the content, fetch through the reference fails typed.
#[tokio::test]
async fn wrong_sizes_in_references() {
    let t = TempDir::new("sizes");
    let store = layout(&t).await;
    let layer = blob(media_types::OCI_LAYER_GZIP, &b"twelve bytes"[..]);
    let config = blob(media_types::OCI_CONFIG, &b"{}"[..]);
    let mut lying = layer.desc.clone();
    lying.size = 13;
    let m = from_manifest(
        &ImageManifestBuilder::oci(config.desc.clone())
            .layer(lying.clone())
            .build()
            .unwrap(),
    );
    for b in [&layer, &config, &m] {
        store.push_bytes(&b.desc, b.data.clone()).await.unwrap();
    }
    store.tag(&m.desc, "lies").await.unwrap();
    let f = store.fsck(&FsckOptions::default()).await.unwrap();
    assert!(!f.is_clean());
    assert_eq!(f.wrong_size.len(), 1);
    let w = &f.wrong_size[0];
    assert_eq!(
        (&w.digest, w.expected, w.actual),
        (&layer.desc.digest, 13, 12)
    );
    assert_eq!(w.referred_by, Parent::Manifest(m.desc.digest.clone()));
    assert!(matches!(
        store.fetch(&lying).await.err().unwrap(),
        StoreError::SizeMismatch {
            expected: 13,
            actual: 12,
            ..
        }
    ));
    let r = store.gc(&gc_now()).await.unwrap();
    assert!(
        r.removed.is_empty(),
        "content under a wrong reference is still live"
    );
    // index.json entry with a wrong size, written by another tool.
    let root = t.path().join("l");
    let idx = std::fs::read_to_string(root.join("index.json")).unwrap();
    std::fs::write(
        root.join("index.json"),
        idx.replace(
            &format!("\"size\":{}", m.desc.size),
            &format!("\"size\":{}", m.desc.size + 1),
        ),
    )
    .unwrap();
    let f = store.fsck(&FsckOptions::default()).await.unwrap();
    assert!(
        f.wrong_size
            .iter()
            .any(|w| w.digest == m.desc.digest && w.referred_by == Parent::Tag("lies".into())),
        "{f:?}"
    );
}
