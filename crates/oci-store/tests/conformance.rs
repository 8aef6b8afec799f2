//! One conformance suite for the store traits, run against `MemoryStore` and `LayoutStore`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use oci_digest::VerifyError;
use oci_manifest::build::ImageManifestBuilder;
use oci_manifest::{Descriptor, Platform, media_types};
use oci_store::{
    FsckOptions, GcOptions, LayoutOptions, LayoutStore, ManagedStore, MemoryStore, Parent,
    PushOutcome, ReadStore, Store, StoreError, SweepReason, collect,
};

fn gc_now() -> GcOptions {
    GcOptions::default().with_min_age(Duration::ZERO)
}

async fn read_all<S: ReadStore + ?Sized>(s: &S, d: &Descriptor) -> Result<Bytes, StoreError> {
    collect(s.fetch(d).await?, u64::MAX).await
}

/// Runs every conformance case against stores made by `make`.
macro_rules! conformance {
    ($modname:ident, $make:expr) => {
        mod $modname {
            use super::*;

            async fn make() -> (impl ManagedStore + Clone + 'static, Option<TempDir>) {
                #[allow(clippy::redundant_closure_call)]
                ($make)().await
            }

            #[tokio::test]
            async fn push_stat_fetch() {
                let (s, _t) = make().await;
                round_trip(&s).await;
            }
            #[tokio::test]
            async fn verified_or_invisible() {
                let (s, _t) = make().await;
                invisible(&s).await;
            }
            #[tokio::test]
            async fn resumable_writer() {
                let (s, _t) = make().await;
                writer(&s).await;
            }
            #[tokio::test]
            async fn tags() {
                let (s, _t) = make().await;
                tagging(&s).await;
            }
            #[tokio::test]
            async fn leases() {
                let (s, _t) = make().await;
                leasing(&s).await;
            }
            #[tokio::test]
            async fn refcounts() {
                let (s, _t) = make().await;
                refcounting(&s).await;
            }
            #[tokio::test]
            async fn gc_rules() {
                let (s, _t) = make().await;
                gc_cases(&s).await;
            }
            #[tokio::test]
            async fn referrers() {
                let (s, _t) = make().await;
                referrer_cases(&s).await;
            }
            #[tokio::test]
            async fn reduced_platform_scenario() {
                let (s, _t) = make().await;
                reduced_platform(&s).await;
            }
            #[tokio::test]
            async fn repush_after_gc() {
                let (s, _t) = make().await;
                repush(&s).await;
            }
            #[tokio::test]
            async fn fsck_missing() {
                let (s, _t) = make().await;
                fsck_cases(&s).await;
            }
            #[tokio::test]
            async fn object_safe() {
                let (s, _t) = make().await;
                let dynstore: Arc<dyn Store> = Arc::new(s.clone());
                dyn_use(&*dynstore).await;
                let managed: &dyn ManagedStore = &s;
                assert_eq!(managed.leases().await.unwrap().len(), 0);
            }
        }
    };
}

conformance!(memory, || async { (MemoryStore::new(), None) });
conformance!(layout, || async {
    let t = TempDir::new("conf");
    let s = LayoutStore::open_with(t.path().join("layout"), &LayoutOptions::create())
        .await
        .unwrap();
    (s, Some(t))
});

async fn round_trip<S: ManagedStore>(s: &S) {
    let mut rng = Rng::new(1);
    for size in [0usize, 1, 1000, (1 << 20) + 17, 5 << 20] {
        let b = blob(media_types::OCI_LAYER_GZIP, rng.bytes(size));
        assert_eq!(s.stat(&b.desc.digest).await.unwrap(), None);
        assert!(!s.exists(&b.desc.digest).await.unwrap());
        assert_eq!(
            s.push_bytes(&b.desc, b.data.clone()).await.unwrap(),
            PushOutcome::Written
        );
        assert_eq!(s.stat(&b.desc.digest).await.unwrap(), Some(size as u64));
        assert_eq!(read_all(s, &b.desc).await.unwrap(), b.data);
        assert_eq!(
            s.push_bytes(&b.desc, b.data.clone()).await.unwrap(),
            PushOutcome::AlreadyExists
        );
        let r = collect(
            s.fetch_range(&b.desc, 1..size as u64 + 100).await.unwrap(),
            u64::MAX,
        )
        .await
        .unwrap();
        assert_eq!(r, b.data.slice(1.min(size)..));
    }
    // Manifests through the manifest helper, with its size limit.
    let img = image(2, 2, 100);
    push_image(s, &img).await.unwrap();
    let m = s.fetch_manifest(img.root()).await.unwrap();
    assert_eq!(m.digest(), &img.root().digest);
    assert_eq!(m.children().len(), 3);
    let err = s.fetch_bytes(img.root(), 10).await.unwrap_err();
    assert!(
        matches!(err, StoreError::ManifestTooLarge { limit: 10, .. }),
        "{err:?}"
    );
    // Not found and wrong size.
    let missing = blob("x/y", &b"not stored"[..]);
    assert!(
        matches!(s.fetch(&missing.desc).await.err().unwrap(), StoreError::NotFound { digest } if digest == missing.desc.digest)
    );
    let mut wrong = img.blobs[0].desc.clone();
    wrong.size += 1;
    assert!(
        matches!(s.fetch(&wrong).await.err().unwrap(), StoreError::SizeMismatch { expected, actual, .. } if actual + 1 == expected)
    );
    s.delete(&img.blobs[0].desc.digest).await.unwrap();
    assert!(!s.exists(&img.blobs[0].desc.digest).await.unwrap());
    assert!(
        s.delete(&img.blobs[0].desc.digest)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

async fn invisible<S: ManagedStore>(s: &S) {
    let good = blob("application/octet-stream", Rng::new(5).bytes(100_000));
    // Wrong digest.
    let mut bad = good.data.to_vec();
    bad[500] ^= 1;
    let err = s
        .push_bytes(&good.desc, Bytes::from(bad))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Verify(VerifyError::DigestMismatch { .. })),
        "{err:?}"
    );
    // Truncated.
    let err = s
        .push_bytes(&good.desc, good.data.slice(..99_999))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Verify(VerifyError::TooShort {
                received: 99_999,
                ..
            })
        ),
        "{err:?}"
    );
    // Too long (wrong size in the descriptor).
    let mut small = good.desc.clone();
    small.size = 10;
    let err = s.push_bytes(&small, good.data.clone()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Verify(VerifyError::TooLong { .. })),
        "{err:?}"
    );
    // Source failure half way.
    let chunks: Vec<std::io::Result<Bytes>> = vec![
        Ok(good.data.slice(..1000)),
        Err(std::io::Error::other("connection reset")),
    ];
    let err = s
        .push(&good.desc, Box::pin(futures_util::stream::iter(chunks)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Source { .. }), "{err:?}");
    assert_eq!(s.stat(&good.desc.digest).await.unwrap(), None);
    assert!(
        s.ingests().await.unwrap().is_empty(),
        "failed pushes leave no ingest"
    );
    let report = s.fsck(&FsckOptions::default()).await.unwrap();
    assert_eq!(report.checked, 0);
    assert!(report.is_clean());
}

async fn writer<S: ManagedStore>(s: &S) {
    let b = blob("application/octet-stream", Rng::new(9).bytes(3 << 20));
    let mut w = s.writer("k1", &b.desc).await.unwrap();
    assert_eq!(w.offset(), 0);
    w.write(b.data.slice(..1 << 20)).await.unwrap();
    // The key is busy while a writer holds it.
    assert!(matches!(
        s.writer("k1", &b.desc).await.err().unwrap(),
        StoreError::IngestBusy { .. }
    ));
    assert!(matches!(
        s.abort_ingest("k1").await.unwrap_err(),
        StoreError::IngestBusy { .. }
    ));
    drop(w);
    let st = s.ingest_status("k1").await.unwrap().unwrap();
    assert_eq!(st.offset, 1 << 20);
    assert_eq!(st.expected.digest, b.desc.digest);
    assert_eq!(s.ingests().await.unwrap().len(), 1);
    // Another digest under the same key is refused.
    let other = blob("application/octet-stream", &b"other"[..]);
    assert!(matches!(
        s.writer("k1", &other.desc).await.err().unwrap(),
        StoreError::IngestMismatch { .. }
    ));
    // Resume.
    let mut w = s.writer("k1", &b.desc).await.unwrap();
    assert_eq!(w.offset(), 1 << 20);
    assert!(matches!(
        w.write(b.data.clone()).await.unwrap_err(),
        StoreError::Verify(VerifyError::TooLong { .. })
    ));
    w.write(b.data.slice(1 << 20..)).await.unwrap();
    assert_eq!(w.commit().await.unwrap(), PushOutcome::Written);
    assert!(s.ingest_status("k1").await.unwrap().is_none());
    assert_eq!(read_all(s, &b.desc).await.unwrap(), b.data);
    // A writer whose content is wrong fails at commit and leaves nothing.
    let c = blob("application/octet-stream", &b"right"[..]);
    let mut w = s.writer("k2", &c.desc).await.unwrap();
    w.write(Bytes::from_static(b"wrong")).await.unwrap();
    assert!(matches!(
        w.commit().await.unwrap_err(),
        StoreError::Verify(VerifyError::DigestMismatch { .. })
    ));
    assert!(!s.exists(&c.desc.digest).await.unwrap());
    assert!(s.ingest_status("k2").await.unwrap().is_none());
    // Abort.
    let w = s.writer("k3", &c.desc).await.unwrap();
    w.abort().await.unwrap();
    assert!(s.ingest_status("k3").await.unwrap().is_none());
    assert!(s.abort_ingest("k3").await.unwrap_err().is_not_found());
    // Keys are validated, not used as paths.
    assert!(matches!(
        s.writer("", &c.desc).await.err().unwrap(),
        StoreError::InvalidIngestKey { .. }
    ));
    let mut w = s.writer("../../etc/passwd", &c.desc).await.unwrap();
    w.write(Bytes::from_static(b"right")).await.unwrap();
    assert_eq!(w.commit().await.unwrap(), PushOutcome::Written);
}

async fn tagging<S: ManagedStore>(s: &S) {
    let img = image(3, 1, 10);
    assert!(matches!(
        s.tag(img.root(), "v1").await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
    push_image(s, &img).await.unwrap();
    s.tag(img.root(), "v1").await.unwrap();
    s.tag(img.root(), "v2").await.unwrap();
    assert_eq!(s.tags().await.unwrap(), vec!["v1", "v2"]);
    let r = s.resolve("v1").await.unwrap();
    assert_eq!(
        (r.digest.clone(), r.size, r.media_type.clone()),
        (
            img.root().digest.clone(),
            img.root().size,
            img.root().media_type.clone()
        )
    );
    let img2 = image(4, 1, 10);
    push_image(s, &img2).await.unwrap();
    s.tag(img2.root(), "v1").await.unwrap();
    assert_eq!(s.resolve("v1").await.unwrap().digest, img2.root().digest);
    assert_eq!(s.tags().await.unwrap(), vec!["v1", "v2"]);
    s.untag("v1").await.unwrap();
    assert!(
        matches!(s.resolve("v1").await.unwrap_err(), StoreError::TagNotFound { tag } if tag == "v1")
    );
    assert!(matches!(
        s.untag("v1").await.unwrap_err(),
        StoreError::TagNotFound { .. }
    ));
    for bad in ["", "../x", "a b", "a\nb", &"x".repeat(300)] {
        assert!(
            matches!(
                s.tag(img.root(), bad).await.unwrap_err(),
                StoreError::InvalidTag { .. }
            ),
            "{bad:?}"
        );
    }
    let mut wrong = img.root().clone();
    wrong.size += 1;
    assert!(matches!(
        s.tag(&wrong, "v3").await.unwrap_err(),
        StoreError::SizeMismatch { .. }
    ));
    assert_eq!(s.tags().await.unwrap(), vec!["v2"]);
}

async fn leasing<S: ManagedStore>(s: &S) {
    let lease = s.create_lease(Duration::from_secs(60)).await.unwrap();
    let leased = s.with_lease(&lease);
    let a = blob("application/octet-stream", &b"a"[..]);
    let b = blob("application/octet-stream", &b"b"[..]);
    let c = blob("application/octet-stream", &b"c"[..]);
    // b and c exist before; the lease finds b by push ("already exists") and c by stat.
    s.push_bytes(&b.desc, b.data.clone()).await.unwrap();
    s.push_bytes(&c.desc, c.data.clone()).await.unwrap();
    assert_eq!(
        leased.push_bytes(&a.desc, a.data.clone()).await.unwrap(),
        PushOutcome::Written
    );
    assert_eq!(
        leased.push_bytes(&b.desc, b.data.clone()).await.unwrap(),
        PushOutcome::AlreadyExists
    );
    assert_eq!(leased.stat(&c.desc.digest).await.unwrap(), Some(1));
    let d = blob("application/octet-stream", &b"d"[..]);
    s.push_bytes(&d.desc, d.data.clone()).await.unwrap(); // not leased
    let infos = s.leases().await.unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].lease.id(), lease.id());
    let report = s.gc(&gc_now()).await.unwrap();
    assert_eq!(report.removed.len(), 1, "{report:?}");
    assert_eq!(report.removed[0].digest, d.desc.digest);
    for x in [&a, &b, &c] {
        assert!(s.exists(&x.desc.digest).await.unwrap());
        assert_eq!(
            s.parents(&x.desc.digest).await.unwrap(),
            vec![Parent::Lease(lease.id().to_owned())]
        );
    }
    // Renew; release.
    let renewed = s
        .renew_lease(&lease, Duration::from_secs(120))
        .await
        .unwrap();
    assert!(renewed.expires_at() > lease.expires_at());
    s.release_lease(&lease).await.unwrap();
    assert!(matches!(
        s.release_lease(&lease).await.unwrap_err(),
        StoreError::LeaseNotFound { .. }
    ));
    assert!(matches!(
        s.renew_lease(&lease, Duration::from_secs(1))
            .await
            .unwrap_err(),
        StoreError::LeaseNotFound { .. }
    ));
    // Writes under a released lease are refused before anything becomes visible.
    let e = blob("application/octet-stream", &b"e"[..]);
    assert!(matches!(
        leased
            .push_bytes(&e.desc, e.data.clone())
            .await
            .unwrap_err(),
        StoreError::LeaseNotFound { .. }
    ));
    assert!(!s.exists(&e.desc.digest).await.unwrap());
    let report = s.gc(&gc_now()).await.unwrap();
    assert_eq!(report.removed.len(), 3);
    // Expiry: a lease that expired protects nothing and is collected.
    let short = s.create_lease(Duration::from_millis(300)).await.unwrap();
    s.with_lease(&short)
        .push_bytes(&e.desc, e.data.clone())
        .await
        .unwrap();
    assert_eq!(s.gc(&gc_now()).await.unwrap().removed.len(), 0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(
        s.with_lease(&short)
            .push_bytes(&a.desc, a.data.clone())
            .await
            .unwrap_err(),
        StoreError::LeaseExpired { .. }
    ));
    let report = s.gc(&gc_now()).await.unwrap();
    assert_eq!(report.expired_leases, vec![short.id().to_owned()]);
    assert_eq!(report.removed.len(), 1);
    assert!(s.leases().await.unwrap().is_empty());
}

async fn refcounting<S: ManagedStore>(s: &S) {
    let idx = multi_platform(7, &[("linux", "amd64"), ("linux", "arm64")]);
    push_image(s, &idx).await.unwrap();
    s.tag(idx.root(), "multi").await.unwrap();
    let base = &idx.blobs[0].desc.digest;
    let m1 = &idx.blobs[3].desc.digest;
    let m2 = &idx.blobs[6].desc.digest;
    assert_eq!(s.refcount(base).await.unwrap(), 2);
    let mut want = vec![Parent::Manifest(m1.clone()), Parent::Manifest(m2.clone())];
    want.sort();
    assert_eq!(s.parents(base).await.unwrap(), want);
    assert_eq!(
        s.parents(&idx.root().digest).await.unwrap(),
        vec![Parent::Tag("multi".into())]
    );
    assert_eq!(
        s.parents(m1).await.unwrap(),
        vec![Parent::Manifest(idx.root().digest.clone())]
    );
    s.tag(idx.root(), "again").await.unwrap();
    assert_eq!(s.refcount(&idx.root().digest).await.unwrap(), 2);
    s.untag("again").await.unwrap();
    s.untag("multi").await.unwrap();
    assert_eq!(s.refcount(&idx.root().digest).await.unwrap(), 0);
    // Parents that are still stored but unreachable count until they are collected.
    assert_eq!(s.refcount(base).await.unwrap(), 2);
    s.gc(&gc_now()).await.unwrap();
    assert_eq!(s.refcount(base).await.unwrap(), 0);
    assert!(!s.exists(base).await.unwrap());
}

async fn gc_cases<S: ManagedStore>(s: &S) {
    let kept = image(11, 2, 100);
    let gone = image(12, 2, 100);
    push_image(s, &kept).await.unwrap();
    push_image(s, &gone).await.unwrap();
    s.tag(kept.root(), "kept").await.unwrap();
    // Young content stays under the default minimum age.
    let r = s.gc(&GcOptions::default()).await.unwrap();
    assert!(r.removed.is_empty());
    assert_eq!(r.young.len(), 4);
    // Dry run: reports, removes nothing.
    let r = s.gc(&gc_now().with_dry_run(true)).await.unwrap();
    assert!(r.dry_run);
    let mut want = gone.digests();
    want.sort();
    assert_eq!(
        r.removed
            .iter()
            .map(|x| x.digest.clone())
            .collect::<Vec<_>>(),
        want
    );
    assert!(
        r.removed
            .iter()
            .all(|x| x.reason == SweepReason::Unreferenced)
    );
    assert_eq!(
        r.bytes_freed,
        gone.blobs.iter().map(|b| b.desc.size).sum::<u64>()
    );
    for d in gone.digests() {
        assert!(s.exists(&d).await.unwrap());
    }
    // keep: an extra root keeps the manifest and its children.
    let r = s
        .gc(&gc_now().with_keep(gone.root().digest.clone()))
        .await
        .unwrap();
    assert!(r.removed.is_empty());
    let r = s.gc(&gc_now()).await.unwrap();
    assert_eq!(r.removed.len(), 4);
    for d in gone.digests() {
        assert!(!s.exists(&d).await.unwrap());
    }
    check_complete(s, kept.root()).await.unwrap();
    assert!(s.fsck(&FsckOptions::default()).await.unwrap().is_clean());
    // An interrupted ingest is a root while it is resumable, and is cleaned once stale.
    let b = blob("application/octet-stream", Rng::new(13).bytes(1000));
    let mut w = s.writer("stale", &b.desc).await.unwrap();
    w.write(b.data.slice(..10)).await.unwrap();
    drop(w);
    let r = s.gc(&gc_now()).await.unwrap();
    assert!(r.stale_ingests.is_empty());
    assert!(s.ingest_status("stale").await.unwrap().is_some());
    let r = s
        .gc(&gc_now().with_stale_ingest_age(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(r.stale_ingests, vec!["stale".to_string()]);
    assert!(s.ingest_status("stale").await.unwrap().is_none());
    // An active ingest is never stale.
    let w = s.writer("active", &b.desc).await.unwrap();
    let r = s
        .gc(&gc_now().with_stale_ingest_age(Duration::ZERO))
        .await
        .unwrap();
    assert!(r.stale_ingests.is_empty());
    w.abort().await.unwrap();
}

async fn referrer_cases<S: ManagedStore>(s: &S) {
    let subject = image(21, 1, 50);
    push_image(s, &subject).await.unwrap();
    s.tag(subject.root(), "app").await.unwrap();
    let sig = blob("application/vnd.example.signature", &b"signature bytes"[..]);
    let referrer = ImageManifestBuilder::artifact("application/vnd.example.sig")
        .layer(sig.desc.clone())
        .subject(subject.root().clone())
        .build()
        .unwrap();
    let referrer = from_manifest(&referrer);
    s.push_bytes(&sig.desc, sig.data.clone()).await.unwrap();
    s.push_bytes(&referrer.desc, referrer.data.clone())
        .await
        .unwrap();
    let r = s.gc(&gc_now()).await.unwrap();
    assert!(
        r.removed.is_empty(),
        "referrer of a live subject is kept: {r:?}"
    );
    assert!(s.exists(&sig.desc.digest).await.unwrap());
    s.untag("app").await.unwrap();
    let r = s.gc(&gc_now().with_dry_run(true)).await.unwrap();
    let why = r
        .removed
        .iter()
        .find(|x| x.digest == referrer.desc.digest)
        .unwrap();
    assert_eq!(
        why.reason,
        SweepReason::SubjectGone {
            subject: subject.root().digest.clone()
        }
    );
    let r = s.gc(&gc_now()).await.unwrap();
    assert_eq!(r.removed.len(), subject.blobs.len() + 2);
}

/// A 3-platform index is stored and tagged; a reduced index (one platform) is made under a
/// temporary tag, the temporary tag is deleted, GC runs: the original is complete and the
/// reduced index's exclusive content is gone.
async fn reduced_platform<S: ManagedStore>(s: &S) {
    let full = multi_platform(
        31,
        &[("linux", "amd64"), ("linux", "arm64"), ("linux", "s390x")],
    );
    push_image(s, &full).await.unwrap();
    s.tag(full.root(), "full").await.unwrap();
    let index = s.fetch_manifest(full.root()).await.unwrap();
    let reduced = oci_manifest::reduce(&index, &[Platform::new("linux", "arm64")]).unwrap();
    let reduced_blob = from_manifest(&reduced.index);
    assert_ne!(reduced_blob.desc.digest, full.root().digest);
    let lease = s.create_lease(Duration::from_secs(60)).await.unwrap();
    let w = s.with_lease(&lease);
    for d in &reduced.references {
        assert!(w.exists(&d.digest).await.unwrap());
    }
    w.push_bytes(&reduced_blob.desc, reduced_blob.data.clone())
        .await
        .unwrap();
    w.tag(&reduced_blob.desc, "tmp-reduced").await.unwrap();
    s.release_lease(&lease).await.unwrap();
    check_complete(s, &reduced_blob.desc).await.unwrap();
    s.untag("tmp-reduced").await.unwrap();
    let r = s.gc(&gc_now()).await.unwrap();
    assert_eq!(
        r.removed.iter().map(|x| &x.digest).collect::<Vec<_>>(),
        vec![&reduced_blob.desc.digest]
    );
    assert!(!s.exists(&reduced_blob.desc.digest).await.unwrap());
    let mut seen = check_complete(s, full.root()).await.unwrap();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), full.blobs.len());
    let f = s.fsck(&FsckOptions::default()).await.unwrap();
    assert!(f.is_clean() && f.dangling.is_empty(), "{f:?}");
}

/// Store an image, untag it, GC, store it again: every blob is written again and reads back.
async fn repush<S: ManagedStore>(s: &S) {
    let img = image(41, 3, 10_000);
    assert_eq!(push_image(s, &img).await.unwrap(), img.blobs.len());
    s.tag(img.root(), "x").await.unwrap();
    s.untag("x").await.unwrap();
    let r = s.gc(&gc_now()).await.unwrap();
    assert_eq!(r.removed.len(), img.blobs.len());
    for d in img.digests() {
        assert_eq!(s.stat(&d).await.unwrap(), None);
    }
    assert_eq!(
        push_image(s, &img).await.unwrap(),
        img.blobs.len(),
        "every blob is written again"
    );
    s.tag(img.root(), "x").await.unwrap();
    assert_eq!(
        check_complete(s, img.root()).await.unwrap().len(),
        img.blobs.len()
    );
}

async fn fsck_cases<S: ManagedStore>(s: &S) {
    let img = image(51, 2, 100);
    push_image(s, &img).await.unwrap();
    s.tag(img.root(), "t").await.unwrap();
    let stray = blob("application/octet-stream", &b"stray"[..]);
    s.push_bytes(&stray.desc, stray.data.clone()).await.unwrap();
    let f = s.fsck(&FsckOptions::default()).await.unwrap();
    assert!(f.is_clean());
    assert_eq!(f.checked, img.blobs.len() + 1);
    assert_eq!(f.dangling, vec![stray.desc.digest.clone()]);
    s.delete(&img.blobs[0].desc.digest).await.unwrap();
    let f = s.fsck(&FsckOptions::default()).await.unwrap();
    assert!(!f.is_clean());
    assert_eq!(
        f.missing,
        vec![(
            img.blobs[0].desc.digest.clone(),
            Parent::Manifest(img.root().digest.clone())
        )]
    );
}

async fn dyn_use(s: &dyn Store) {
    let b = blob("text/plain", &b"via dyn"[..]);
    s.push_bytes(&b.desc, b.data.clone()).await.unwrap();
    assert_eq!(read_all(s, &b.desc).await.unwrap(), b.data);
}
