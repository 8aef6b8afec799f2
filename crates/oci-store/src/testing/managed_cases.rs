//! The cases of [`ManagedStore`]: leases, exact reference counts, garbage collection and fsck,
//! which local stores (and stores shared by many machines) must get right.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use oci_manifest::Platform;
use oci_manifest::build::ImageManifestBuilder;

use super::content::{
    Image, Rng, blob, check_complete, from_manifest, image, multi_platform, push_image,
};
use super::store_cases::verified_or_invisible;
use super::{Case, assert_no_ingest, gc_now, push_tagged};
use crate::error::StoreError;
use crate::gc::{FsckOptions, GcOptions, Parent, SweepReason};
use crate::traits::{ManagedStore, PushOutcome};

/// Leases: content written through a leased view, found there by push ("already exists") or by
/// `stat`, is pinned (GC removes only the unleased blob, parents name the lease); renewal
/// extends, release ends (twice is not found, renewing a released lease is not found, writes
/// under it are refused before anything is visible) and the pins go; an expired lease refuses
/// writes, protects nothing and is collected. Also: `&dyn ManagedStore` works and a fresh store
/// has no lease.
///
/// Waits 400 ms for a 300 ms lease to expire.
pub async fn leases<S: ManagedStore>(s: &S) {
    let c = Case("leases");
    let managed: &dyn ManagedStore = s;
    assert_eq!(
        c.ok(managed.leases().await, "leases through &dyn ManagedStore")
            .len(),
        0,
        "{c}: leases of a fresh store"
    );
    let lease = c.ok(
        s.create_lease(Duration::from_secs(60)).await,
        "create lease",
    );
    let leased = s.with_lease(&lease);
    let a = blob("application/octet-stream", &b"a"[..]);
    let b = blob("application/octet-stream", &b"b"[..]);
    let cc = blob("application/octet-stream", &b"c"[..]);
    // b and c exist before; the lease finds b by push ("already exists") and c by stat.
    c.ok(s.push_bytes(&b.desc, b.data.clone()).await, "push b");
    c.ok(s.push_bytes(&cc.desc, cc.data.clone()).await, "push c");
    assert_eq!(
        c.ok(
            leased.push_bytes(&a.desc, a.data.clone()).await,
            "leased push a"
        ),
        PushOutcome::Written,
        "{c}: leased push of a new blob"
    );
    assert_eq!(
        c.ok(
            leased.push_bytes(&b.desc, b.data.clone()).await,
            "leased push b"
        ),
        PushOutcome::AlreadyExists,
        "{c}: leased push of a stored blob"
    );
    assert_eq!(
        c.ok(leased.stat(&cc.desc.digest).await, "leased stat c"),
        Some(1),
        "{c}: leased stat of a stored blob"
    );
    let d = blob("application/octet-stream", &b"d"[..]);
    c.ok(s.push_bytes(&d.desc, d.data.clone()).await, "push d"); // not leased
    let infos = c.ok(s.leases().await, "leases");
    assert_eq!(infos.len(), 1, "{c}: leases after one was created");
    assert_eq!(infos[0].lease.id(), lease.id(), "{c}: the lease listed");
    let report = c.ok(s.gc(&gc_now()).await, "gc");
    assert_eq!(
        report.removed.len(),
        1,
        "{c}: GC beside a lease removes only the unleased blob: {report:?}"
    );
    assert_eq!(
        report.removed[0].digest, d.desc.digest,
        "{c}: GC removed a leased blob"
    );
    for x in [&a, &b, &cc] {
        let xd = &x.desc.digest;
        assert!(
            c.ok(s.exists(xd).await, format_args!("exists {xd}")),
            "{c}: leased {xd} collected"
        );
        assert_eq!(
            c.ok(s.parents(xd).await, format_args!("parents of {xd}")),
            vec![Parent::Lease(lease.id().to_owned())],
            "{c}: parents of leased {xd}"
        );
    }
    // Renew; release.
    let renewed = c.ok(
        s.renew_lease(&lease, Duration::from_secs(120)).await,
        "renew lease",
    );
    assert!(
        renewed.expires_at() > lease.expires_at(),
        "{c}: renewal did not extend the lease"
    );
    c.ok(s.release_lease(&lease).await, "release lease");
    assert_err!(
        c,
        s.release_lease(&lease).await,
        StoreError::LeaseNotFound { .. },
        "release of a released lease"
    );
    assert_err!(
        c,
        s.renew_lease(&lease, Duration::from_secs(1)).await,
        StoreError::LeaseNotFound { .. },
        "renewal of a released lease"
    );
    // Writes under a released lease are refused before anything becomes visible.
    let e = blob("application/octet-stream", &b"e"[..]);
    assert_err!(
        c,
        leased.push_bytes(&e.desc, e.data.clone()).await,
        StoreError::LeaseNotFound { .. },
        "push of {} under a released lease",
        e.desc.digest
    );
    assert!(
        !c.ok(s.exists(&e.desc.digest).await, "exists e"),
        "{c}: a push under a released lease became visible"
    );
    let report = c.ok(s.gc(&gc_now()).await, "gc after release");
    assert_eq!(
        report.removed.len(),
        3,
        "{c}: GC after release removes what the lease pinned: {report:?}"
    );
    // Expiry: a lease that expired protects nothing and is collected.
    let short = c.ok(
        s.create_lease(Duration::from_millis(300)).await,
        "create a 300 ms lease",
    );
    c.ok(
        s.with_lease(&short)
            .push_bytes(&e.desc, e.data.clone())
            .await,
        "push e under the short lease",
    );
    assert_eq!(
        c.ok(s.gc(&gc_now()).await, "gc").removed.len(),
        0,
        "{c}: GC removed content of a live lease"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_err!(
        c,
        s.with_lease(&short)
            .push_bytes(&a.desc, a.data.clone())
            .await,
        StoreError::LeaseExpired { .. },
        "push under an expired lease"
    );
    let report = c.ok(s.gc(&gc_now()).await, "gc after expiry");
    assert_eq!(
        report.expired_leases,
        vec![short.id().to_owned()],
        "{c}: expired leases collected"
    );
    assert_eq!(
        report.removed.len(),
        1,
        "{c}: GC after expiry removes what the lease pinned: {report:?}"
    );
    assert!(
        c.ok(s.leases().await, "leases").is_empty(),
        "{c}: leases left after expiry and GC"
    );
}

/// Exact reference counts on a two-platform index: the shared base layer has two parents (the
/// two manifests), the index one (its tag), a platform manifest one (the index); a second tag
/// counts; untagged content keeps counting its stored parents until GC removes them.
pub async fn refcounts<S: ManagedStore>(s: &S) {
    let c = Case("refcounts");
    let idx = multi_platform(7, &[("linux", "amd64"), ("linux", "arm64")]);
    let root = &idx.root().digest;
    push_tagged(c, s, &idx, &["multi"]).await;
    let base = &idx.blobs[0].desc.digest;
    let m1 = &idx.blobs[3].desc.digest;
    let m2 = &idx.blobs[6].desc.digest;
    assert_eq!(
        c.ok(s.refcount(base).await, format_args!("refcount {base}")),
        2,
        "{c}: refcount of the shared base layer {base}"
    );
    let mut want = vec![Parent::Manifest(m1.clone()), Parent::Manifest(m2.clone())];
    want.sort();
    assert_eq!(
        c.ok(s.parents(base).await, format_args!("parents {base}")),
        want,
        "{c}: parents of the shared base layer {base}"
    );
    assert_eq!(
        c.ok(s.parents(root).await, format_args!("parents {root}")),
        vec![Parent::Tag("multi".into())],
        "{c}: parents of the tagged index {root}"
    );
    assert_eq!(
        c.ok(s.parents(m1).await, format_args!("parents {m1}")),
        vec![Parent::Manifest(root.clone())],
        "{c}: parents of platform manifest {m1}"
    );
    c.ok(s.tag(idx.root(), "again").await, "tag again");
    assert_eq!(
        c.ok(s.refcount(root).await, format_args!("refcount {root}")),
        2,
        "{c}: refcount of {root} with two tags"
    );
    c.ok(s.untag("again").await, "untag again");
    c.ok(s.untag("multi").await, "untag multi");
    assert_eq!(
        c.ok(s.refcount(root).await, format_args!("refcount {root}")),
        0,
        "{c}: refcount of {root} untagged"
    );
    // Parents that are still stored but unreachable count until they are collected.
    assert_eq!(
        c.ok(s.refcount(base).await, format_args!("refcount {base}")),
        2,
        "{c}: refcount of {base} below an untagged index, before GC"
    );
    c.ok(s.gc(&gc_now()).await, "gc");
    assert_eq!(
        c.ok(s.refcount(base).await, format_args!("refcount {base}")),
        0,
        "{c}: refcount of {base} after GC"
    );
    assert!(
        !c.ok(s.exists(base).await, format_args!("exists {base}")),
        "{c}: unreachable {base} survived GC"
    );
}

/// GC rules: young content stays under the default minimum age; a dry run reports exactly the
/// unreachable blobs (reason: unreferenced, bytes freed) and removes nothing; an extra root
/// (`keep`) keeps a manifest and its children; a real run removes them and leaves the tagged
/// image complete and fsck clean; an interrupted ingest is a root while resumable and cleaned
/// once stale; an active ingest is never stale.
pub async fn gc_rules<S: ManagedStore>(s: &S) {
    let c = Case("gc_rules");
    let kept = image(11, 2, 100);
    let gone = image(12, 2, 100);
    push_tagged(c, s, &kept, &["kept"]).await;
    c.ok(push_image(s, &gone).await, "push image 12");
    // Young content stays under the default minimum age.
    let r = c.ok(
        s.gc(&GcOptions::default()).await,
        "gc with the default minimum age",
    );
    assert!(r.removed.is_empty(), "{c}: GC removed young content: {r:?}");
    assert_eq!(r.young.len(), 4, "{c}: young blobs reported: {r:?}");
    // Dry run: reports, removes nothing.
    let r = c.ok(s.gc(&gc_now().with_dry_run(true)).await, "dry-run gc");
    assert!(r.dry_run, "{c}: a dry run reported as real");
    let mut want = gone.digests();
    want.sort();
    assert_eq!(
        r.removed
            .iter()
            .map(|x| x.digest.clone())
            .collect::<Vec<_>>(),
        want,
        "{c}: what a dry run would remove"
    );
    assert!(
        r.removed
            .iter()
            .all(|x| x.reason == SweepReason::Unreferenced),
        "{c}: reasons of a dry run: {r:?}"
    );
    assert_eq!(
        r.bytes_freed,
        gone.blobs.iter().map(|b| b.desc.size).sum::<u64>(),
        "{c}: bytes a dry run would free"
    );
    for d in gone.digests() {
        assert!(
            c.ok(s.exists(&d).await, format_args!("exists {d}")),
            "{c}: a dry run removed {d}"
        );
    }
    // keep: an extra root keeps the manifest and its children.
    let r = c.ok(
        s.gc(&gc_now().with_keep(gone.root().digest.clone())).await,
        "gc keeping image 12",
    );
    assert!(
        r.removed.is_empty(),
        "{c}: GC removed below a kept root: {r:?}"
    );
    let r = c.ok(s.gc(&gc_now()).await, "gc");
    assert_eq!(r.removed.len(), 4, "{c}: GC of an untagged image: {r:?}");
    for d in gone.digests() {
        assert!(
            !c.ok(s.exists(&d).await, format_args!("exists {d}")),
            "{c}: unreachable {d} survived GC"
        );
    }
    c.ok(
        check_complete(s, kept.root()).await,
        format_args!("read tagged image {} after GC", kept.root().digest),
    );
    assert!(
        c.ok(s.fsck(&FsckOptions::default()).await, "fsck")
            .is_clean(),
        "{c}: fsck after GC"
    );
    // An interrupted ingest is a root while it is resumable, and is cleaned once stale.
    let b = blob("application/octet-stream", Rng::new(13).bytes(1000));
    let mut w = c.ok(s.writer("stale", &b.desc).await, "writer stale");
    c.ok(w.write(b.data.slice(..10)).await, "write stale");
    drop(w);
    let r = c.ok(s.gc(&gc_now()).await, "gc beside an interrupted ingest");
    assert!(
        r.stale_ingests.is_empty(),
        "{c}: a resumable ingest cleaned as stale: {r:?}"
    );
    assert!(
        c.ok(s.ingest_status("stale").await, "ingest_status stale")
            .is_some(),
        "{c}: GC removed a resumable ingest"
    );
    let r = c.ok(
        s.gc(&gc_now().with_stale_ingest_age(Duration::ZERO)).await,
        "gc with a stale ingest age of zero",
    );
    assert_eq!(
        r.stale_ingests,
        vec!["stale".to_string()],
        "{c}: stale ingests cleaned"
    );
    assert_no_ingest(c, s, "stale", "after GC with a stale ingest age of zero").await;
    // An active ingest is never stale.
    let w = c.ok(s.writer("active", &b.desc).await, "writer active");
    let r = c.ok(
        s.gc(&gc_now().with_stale_ingest_age(Duration::ZERO)).await,
        "gc beside an active writer",
    );
    assert!(
        r.stale_ingests.is_empty(),
        "{c}: an active ingest cleaned as stale: {r:?}"
    );
    c.ok(w.abort().await, "abort writer active");
}

/// Referrers: an artifact whose `subject` is a live (tagged) image is kept with its blobs; once
/// the subject is untagged, a dry run names the subject as the reason, and GC removes the
/// subject's blobs, the referrer and its blob.
pub async fn referrers_and_gc<S: ManagedStore>(s: &S) {
    let c = Case("referrers_and_gc");
    let subject = image(21, 1, 50);
    push_tagged(c, s, &subject, &["app"]).await;
    let sig = blob("application/vnd.example.signature", &b"signature bytes"[..]);
    let referrer = ImageManifestBuilder::artifact("application/vnd.example.sig")
        .layer(sig.desc.clone())
        .subject(subject.root().clone())
        .build()
        .expect("referrers_and_gc: the referrer manifest builds");
    let referrer = from_manifest(&referrer);
    c.ok(
        s.push_bytes(&sig.desc, sig.data.clone()).await,
        "push signature",
    );
    c.ok(
        s.push_bytes(&referrer.desc, referrer.data.clone()).await,
        format_args!("push referrer {}", referrer.desc.digest),
    );
    let r = c.ok(s.gc(&gc_now()).await, "gc");
    assert!(
        r.removed.is_empty(),
        "{c}: referrer of a live subject is kept: {r:?}"
    );
    assert!(
        c.ok(s.exists(&sig.desc.digest).await, "exists signature"),
        "{c}: the referrer's blob {} was collected",
        sig.desc.digest
    );
    c.ok(s.untag("app").await, "untag app");
    let r = c.ok(s.gc(&gc_now().with_dry_run(true)).await, "dry-run gc");
    let why = r
        .removed
        .iter()
        .find(|x| x.digest == referrer.desc.digest)
        .unwrap_or_else(|| {
            panic!(
                "{c}: a dry run keeps referrer {} of a gone subject: {r:?}",
                referrer.desc.digest
            )
        });
    assert_eq!(
        why.reason,
        SweepReason::SubjectGone {
            subject: subject.root().digest.clone()
        },
        "{c}: reason to remove referrer {}",
        referrer.desc.digest
    );
    let r = c.ok(s.gc(&gc_now()).await, "gc");
    assert_eq!(
        r.removed.len(),
        subject.blobs.len() + 2,
        "{c}: GC of a gone subject and its referrer: {r:?}"
    );
}

/// A 3-platform index is stored and tagged; a reduced index (one platform) is made under a
/// lease and a temporary tag, the temporary tag is deleted, GC runs: the original is complete,
/// the reduced index (its only exclusive content) is gone, fsck is clean without dangling
/// blobs.
pub async fn reduced_platform<S: ManagedStore>(s: &S) {
    let c = Case("reduced_platform");
    let full = multi_platform(
        31,
        &[("linux", "amd64"), ("linux", "arm64"), ("linux", "s390x")],
    );
    push_tagged(c, s, &full, &["full"]).await;
    let index = c.ok(s.fetch_manifest(full.root()).await, "fetch the index");
    let reduced = oci_manifest::reduce(&index, &[Platform::new("linux", "arm64")])
        .expect("reduced_platform: the index reduces to linux/arm64");
    let reduced_blob = from_manifest(&reduced.index);
    let rd = &reduced_blob.desc.digest;
    assert_ne!(rd, &full.root().digest, "{c}: reduction changed nothing");
    let lease = c.ok(
        s.create_lease(Duration::from_secs(60)).await,
        "create lease",
    );
    let w = s.with_lease(&lease);
    for d in &reduced.references {
        assert!(
            c.ok(
                w.exists(&d.digest).await,
                format_args!("exists {}", d.digest)
            ),
            "{c}: {} referred to by the reduced index is not stored",
            d.digest
        );
    }
    c.ok(
        w.push_bytes(&reduced_blob.desc, reduced_blob.data.clone())
            .await,
        format_args!("push reduced index {rd}"),
    );
    c.ok(
        w.tag(&reduced_blob.desc, "tmp-reduced").await,
        "tag tmp-reduced",
    );
    c.ok(s.release_lease(&lease).await, "release lease");
    c.ok(
        check_complete(s, &reduced_blob.desc).await,
        format_args!("read the reduced index {rd}"),
    );
    c.ok(s.untag("tmp-reduced").await, "untag tmp-reduced");
    let r = c.ok(s.gc(&gc_now()).await, "gc");
    assert_eq!(
        r.removed.iter().map(|x| &x.digest).collect::<Vec<_>>(),
        vec![rd],
        "{c}: GC after the temporary tag went"
    );
    assert!(
        !c.ok(s.exists(rd).await, format_args!("exists {rd}")),
        "{c}: reduced index {rd} survived GC"
    );
    let mut seen = c.ok(
        check_complete(s, full.root()).await,
        "read the full index after GC",
    );
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        full.blobs.len(),
        "{c}: blobs of the full index after GC"
    );
    let f = c.ok(s.fsck(&FsckOptions::default()).await, "fsck");
    assert!(
        f.is_clean() && f.dangling.is_empty(),
        "{c}: fsck after GC: {f:?}"
    );
}

/// Store an image, untag it, GC, store it again: every blob is written again and reads back.
pub async fn repush_after_gc<S: ManagedStore>(s: &S) {
    let c = Case("repush_after_gc");
    let img = image(41, 3, 10_000);
    assert_eq!(
        c.ok(push_image(s, &img).await, "push image 41"),
        img.blobs.len(),
        "{c}: blobs written by the first push"
    );
    c.ok(s.tag(img.root(), "x").await, "tag x");
    c.ok(s.untag("x").await, "untag x");
    let r = c.ok(s.gc(&gc_now()).await, "gc");
    assert_eq!(
        r.removed.len(),
        img.blobs.len(),
        "{c}: GC of an untagged image: {r:?}"
    );
    for d in img.digests() {
        assert_eq!(
            c.ok(s.stat(&d).await, format_args!("stat {d}")),
            None,
            "{c}: {d} survived GC"
        );
    }
    assert_eq!(
        c.ok(push_image(s, &img).await, "push image 41 again"),
        img.blobs.len(),
        "{c}: every blob is written again"
    );
    c.ok(s.tag(img.root(), "x").await, "tag x again");
    assert_eq!(
        c.ok(check_complete(s, img.root()).await, "read image 41")
            .len(),
        img.blobs.len(),
        "{c}: blobs read back after the second push"
    );
}

/// fsck: after only failed pushes ([`verified_or_invisible`]) it checks nothing and is clean;
/// with a tagged image and an unreferenced blob it is clean and lists the blob as dangling;
/// after a blob of the image is deleted it is not clean and names the blob missing and the
/// manifest that refers to it.
pub async fn fsck<S: ManagedStore>(s: &S) {
    let c = Case("fsck");
    verified_or_invisible(s).await;
    let report = c.ok(
        s.fsck(&FsckOptions::default()).await,
        "fsck after failed pushes",
    );
    assert_eq!(
        report.checked, 0,
        "{c}: failed pushes left content: {report:?}"
    );
    assert!(
        report.is_clean(),
        "{c}: fsck after failed pushes: {report:?}"
    );
    let img = image(51, 2, 100);
    push_tagged(c, s, &img, &["t"]).await;
    let stray = blob("application/octet-stream", &b"stray"[..]);
    c.ok(
        s.push_bytes(&stray.desc, stray.data.clone()).await,
        "push stray",
    );
    let f = c.ok(s.fsck(&FsckOptions::default()).await, "fsck");
    assert!(f.is_clean(), "{c}: fsck of a complete store: {f:?}");
    assert_eq!(f.checked, img.blobs.len() + 1, "{c}: blobs checked: {f:?}");
    assert_eq!(
        f.dangling,
        vec![stray.desc.digest.clone()],
        "{c}: dangling blobs"
    );
    let lost = &img.blobs[0].desc.digest;
    c.ok(s.delete(lost).await, format_args!("delete {lost}"));
    let f = c.ok(s.fsck(&FsckOptions::default()).await, "fsck");
    assert!(!f.is_clean(), "{c}: fsck clean with {lost} missing");
    assert_eq!(
        f.missing,
        vec![(lost.clone(), Parent::Manifest(img.root().digest.clone()))],
        "{c}: missing blobs"
    );
}

/// GC beside writers (invariant 5), without timing: GC runs between every step of a leased,
/// resumable write (open, half written, written, committed, tagged) and removes nothing of it;
/// then four leased image pushes and a GC loop run interleaved at every await (on one task),
/// no GC run removes anything, and every tagged image is complete. Untagged, all of it goes.
pub async fn gc_beside_writers<S: ManagedStore>(s: &S) {
    let c = Case("gc_beside_writers");
    let collect_nothing = async |when: &str| {
        let r = c.ok(s.gc(&gc_now()).await, format_args!("gc {when}"));
        assert!(
            r.removed.is_empty() && r.stale_ingests.is_empty(),
            "{c}: GC {when} removed live content: {r:?}"
        );
    };
    // 1. Step by step.
    let img = image(61, 2, 300_000);
    let lease = c.ok(
        s.create_lease(Duration::from_secs(60)).await,
        "create lease",
    );
    let w = s.with_lease(&lease);
    for (i, b) in img.blobs.iter().enumerate() {
        let d = &b.desc.digest;
        let key = format!("beside-{i}");
        let mut writer = c.ok(w.writer(&key, &b.desc).await, format_args!("writer {key}"));
        collect_nothing(&format!("with {key} open")).await;
        let half = b.data.len() / 2;
        c.ok(
            writer.write(b.data.slice(..half)).await,
            format_args!("write half of {d}"),
        );
        collect_nothing(&format!("with {key} half written")).await;
        c.ok(
            writer.write(b.data.slice(half..)).await,
            format_args!("write the rest of {d}"),
        );
        collect_nothing(&format!("with {key} written, not committed")).await;
        assert_eq!(
            c.ok(writer.commit().await, format_args!("commit {key} ({d})")),
            PushOutcome::Written,
            "{c}: commit of {d}"
        );
        collect_nothing(&format!("with {d} committed under the lease")).await;
        assert!(
            c.ok(s.exists(d).await, format_args!("exists {d}")),
            "{c}: leased {d} collected"
        );
    }
    c.ok(w.tag(img.root(), "beside").await, "tag beside");
    c.ok(s.release_lease(&lease).await, "release lease");
    collect_nothing("after tag and release").await;
    assert_eq!(
        c.ok(check_complete(s, img.root()).await, "read image 61")
            .len(),
        img.blobs.len(),
        "{c}: blobs of image 61 after GC"
    );
    // 2. Interleaved: writers yield after every step, GC runs whenever they do.
    let images: Vec<Image> = (0..4).map(|i| image(70 + i, 2, 20_000)).collect();
    let done = AtomicBool::new(false);
    let writers = async {
        futures_util::future::join_all(images.iter().enumerate().map(|(i, img)| async move {
            let lease = c.ok(
                s.create_lease(Duration::from_secs(60)).await,
                "create lease",
            );
            let w = s.with_lease(&lease);
            for b in &img.blobs {
                c.ok(
                    w.push_bytes(&b.desc, b.data.clone()).await,
                    format_args!("leased push {}", b.desc.digest),
                );
                tokio::task::yield_now().await;
            }
            c.ok(w.tag(img.root(), &format!("img-{i}")).await, "tag");
            tokio::task::yield_now().await;
            c.ok(s.release_lease(&lease).await, "release lease");
        }))
        .await;
        done.store(true, Ordering::SeqCst);
    };
    let collector = async {
        let mut runs = 0u32;
        while runs == 0 || !done.load(Ordering::SeqCst) {
            collect_nothing("beside leased pushes").await;
            runs += 1;
            tokio::task::yield_now().await;
        }
        runs
    };
    let ((), runs) = futures_util::future::join(writers, collector).await;
    assert!(runs > 1, "{c}: GC ran {runs} times beside the writers");
    let mut total = img.blobs.len();
    for (i, img) in images.iter().enumerate() {
        assert_eq!(
            c.ok(
                check_complete(s, img.root()).await,
                format_args!("read image img-{i}")
            )
            .len(),
            img.blobs.len(),
            "{c}: blobs of img-{i} after GC beside its push"
        );
        c.ok(
            s.untag(&format!("img-{i}")).await,
            format_args!("untag img-{i}"),
        );
        total += img.blobs.len();
    }
    c.ok(s.untag("beside").await, "untag beside");
    let r = c.ok(s.gc(&gc_now()).await, "gc after every untag");
    assert_eq!(r.removed.len(), total, "{c}: GC of untagged images: {r:?}");
    assert!(
        c.ok(s.leases().await, "leases").is_empty(),
        "{c}: leases left after release"
    );
}
