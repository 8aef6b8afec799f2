//! Graph copy between memory and OCI layouts on disk, checked by reading back, by fsck and by
//! the real skopeo.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use oci_manifest::build::{ImageManifestBuilder, IndexBuilder};
use oci_manifest::{Descriptor, Manifest, Platform, media_types};
use oci_store::{
    CancelToken, CopyError, CopyOptions, FsckOptions, GcOptions, LayoutOptions, LayoutStore,
    ManagedStore, MemoryStore, NodeOutcome, ProgressEvent, ReadStore, TagStore, WriteStore, copy,
    copy_leased, walk,
};

const INSTALL: &str = "apt-get install docker-registry skopeo umoci jq apache2-utils";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "oci-store-copy-{name}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn skopeo() -> &'static str {
    let ok = Command::new("skopeo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "skopeo is not installed; these tests need it: {INSTALL}"
    );
    "skopeo"
}

/// Deterministic pseudo-random bytes.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

async fn put<S: WriteStore>(s: &S, media_type: &str, data: Vec<u8>) -> Descriptor {
    let d = Descriptor::of(media_type, &data);
    s.push_bytes(&d, Bytes::from(data)).await.unwrap();
    d
}

/// A three-platform index tagged `tag` with one shared layer of `layer` bytes and one own.
async fn multi<S: WriteStore + TagStore>(s: &S, tag: &str, layer: usize) -> Manifest {
    let shared = put(s, media_types::OCI_LAYER_GZIP, noise(1, layer)).await;
    let mut entries = Vec::new();
    for (i, p) in [
        Platform::new("linux", "amd64"),
        Platform::new("linux", "arm64").with_variant("v8"),
        Platform::new("linux", "ppc64le"),
    ]
    .into_iter()
    .enumerate()
    {
        let own = put(
            s,
            media_types::OCI_LAYER_GZIP,
            noise(10 + i as u64, layer / 2),
        )
        .await;
        let cfg = put(
            s,
            media_types::OCI_CONFIG,
            format!(
                r#"{{"architecture":"{}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#,
                p.architecture
            )
            .into_bytes(),
        )
        .await;
        let m = ImageManifestBuilder::oci(cfg)
            .layer(shared.clone())
            .layer(own)
            .build()
            .unwrap();
        s.push_bytes(&m.descriptor(), m.raw().clone())
            .await
            .unwrap();
        entries.push(m.descriptor().with_platform(p));
    }
    let index = IndexBuilder::oci().manifests(entries).build().unwrap();
    s.push_bytes(&index.descriptor(), index.raw().clone())
        .await
        .unwrap();
    s.tag(&index.descriptor(), tag).await.unwrap();
    index
}

/// Reads every piece of content below `tag` back, verified; returns them.
async fn read_all<S: ReadStore + TagStore>(s: &S, tag: &str) -> Vec<Descriptor> {
    let root = s.resolve(tag).await.unwrap();
    let all = walk(s, &root, 8).await.unwrap();
    for d in &all {
        let b = s.fetch_bytes(d, 1 << 30).await.unwrap();
        assert_eq!(b.len() as u64, d.size, "{}", d.digest);
    }
    all
}

fn skopeo_raw(path: &Path, tag: &str) -> Vec<u8> {
    let out = Command::new(skopeo())
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:{tag}", path.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn memory_to_layout_to_memory_round_trip_read_by_skopeo() {
    rt().block_on(async {
        let mem = MemoryStore::new();
        let index = multi(&mem, "v1", 64 * 1024).await;
        let dir = temp("roundtrip");
        let layout = LayoutStore::open_with(&dir, &LayoutOptions::create())
            .await
            .unwrap();
        let r = copy_leased(&mem, "v1", &layout, None, &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!((r.copied, r.failed), (11, 0));
        assert!(layout.leases().await.unwrap().is_empty());
        assert_eq!(read_all(&layout, "v1").await.len(), 11);
        assert!(
            layout
                .fsck(&FsckOptions::default())
                .await
                .unwrap()
                .is_clean()
        );
        // skopeo reads our layout, bytes as stored.
        assert_eq!(skopeo_raw(&dir, "v1"), index.raw().to_vec());
        // A full skopeo copy out of it succeeds (it reads every blob).
        let out_dir = temp("skopeo-out");
        let out = Command::new(skopeo())
            .args(["--insecure-policy", "copy", "--all", "-q"])
            .arg(format!("oci:{}:v1", dir.display()))
            .arg(format!("oci:{}:v1", out_dir.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // And back into memory under another tag.
        let back = MemoryStore::new();
        let r = copy(&layout, "v1", &back, Some("again"), &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!(r.tag.as_deref(), Some("again"));
        assert_eq!(back.resolve("again").await.unwrap().digest, *index.digest());
        assert_eq!(read_all(&back, "again").await.len(), 11);

        // From what skopeo wrote, into memory.
        let from_skopeo = LayoutStore::open(&out_dir).await.unwrap();
        let m2 = MemoryStore::new();
        copy(&from_skopeo, "v1", &m2, None, &CopyOptions::default())
            .await
            .unwrap();
        // (skopeo may write its own index bytes; the copy keeps whatever it finds.)
        let skopeo_root = from_skopeo.resolve("v1").await.unwrap();
        assert_eq!(m2.resolve("v1").await.unwrap().digest, skopeo_root.digest);
        assert_eq!(
            read_all(&m2, "v1").await.len(),
            read_all(&from_skopeo, "v1").await.len()
        );
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&out_dir).unwrap();
    });
}

#[test]
fn layout_to_layout_one_platform_is_a_reduced_index_skopeo_accepts() {
    rt().block_on(async {
        let dir_a = temp("platform-a");
        let a = LayoutStore::open_with(&dir_a, &LayoutOptions::create())
            .await
            .unwrap();
        let index = multi(&a, "all", 16 * 1024).await;
        let dir_b = temp("platform-b");
        let b = LayoutStore::open_with(&dir_b, &LayoutOptions::create())
            .await
            .unwrap();
        let opts = CopyOptions::default().with_platform("linux/arm64".parse().unwrap());
        let r = copy_leased(&a, "all", &b, Some("arm"), &opts)
            .await
            .unwrap();
        assert_eq!(r.copied, 5);
        assert_eq!(r.dropped.len(), 2);
        let raw = skopeo_raw(&dir_b, "arm");
        let reduced = Manifest::parse(raw, None).unwrap();
        assert_eq!(reduced.manifests().len(), 1);
        assert_eq!(reduced.manifests()[0].digest, index.manifests()[1].digest);
        // Only what the reduced index references is there, and it is consistent.
        assert_eq!(read_all(&b, "arm").await.len(), 5);
        let fsck = b.fsck(&FsckOptions::default()).await.unwrap();
        assert!(fsck.is_clean() && fsck.dangling.is_empty(), "{fsck:?}");
        let out = Command::new(skopeo())
            .args(["inspect", "--override-arch", "arm64"])
            .arg(format!("oci:{}:arm", dir_b.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("\"Architecture\": \"arm64\""));
        std::fs::remove_dir_all(&dir_a).unwrap();
        std::fs::remove_dir_all(&dir_b).unwrap();
    });
}

#[test]
fn cancelled_layout_copy_resumes_partial_blobs_and_skips_complete_ones() {
    rt().block_on(async {
        let src = MemoryStore::new();
        multi(&src, "big", 8 << 20).await;
        let dir = temp("resume");
        let dst = LayoutStore::open_with(&dir, &LayoutOptions::create())
            .await
            .unwrap();
        let token = CancelToken::new();
        let t = token.clone();
        // Cancel once 20 MiB have arrived (the total is 8 + 3 * 4 MiB + small).
        let opts = CopyOptions::default()
            .with_jobs(2)
            .with_cancel(token)
            .with_progress(move |p| {
                if p.done_bytes > 14 << 20 {
                    t.cancel();
                }
            });
        let e = copy_leased(&src, "big", &dst, None, &opts)
            .await
            .unwrap_err();
        let CopyError::Cancelled { report: first, .. } = e else {
            panic!("unexpected {e:?}")
        };
        assert!(
            dst.resolve("big").await.is_err(),
            "no tag after a cancelled copy"
        );
        // Interrupted transfers left their ingests to resume.
        assert!(!dst.ingests().await.unwrap().is_empty());
        // Everything stored is complete and verified; no manifest refers to missing content.
        let fsck = dst.fsck(&FsckOptions::default()).await.unwrap();
        assert!(fsck.corrupt.is_empty(), "{fsck:?}");
        for n in &first.nodes {
            if n.desc.is_manifest() && dst.exists(&n.desc.digest).await.unwrap() {
                let m = dst.fetch_manifest(&n.desc).await.unwrap();
                for c in m.children() {
                    assert!(
                        dst.exists(&c.digest).await.unwrap(),
                        "{} misses {}",
                        n.desc.digest,
                        c.digest
                    );
                }
            }
        }

        let r = copy_leased(&src, "big", &dst, None, &CopyOptions::default())
            .await
            .unwrap();
        assert!(r.bytes_resumed > 0, "{r}");
        assert!(
            r.bytes_copied + r.bytes_resumed + r.bytes_skipped == r.total_bytes,
            "{r}"
        );
        assert!(r.bytes_copied < r.total_bytes - (4 << 20), "{r}");
        assert_eq!(r.skipped, first.copied);
        assert_eq!(read_all(&dst, "big").await.len(), 11);
        assert!(dst.ingests().await.unwrap().is_empty());
        assert!(dst.fsck(&FsckOptions::default()).await.unwrap().is_clean());
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn gc_beside_a_leased_copy_into_a_layout_removes_nothing_it_needs() {
    rt().block_on(async {
        let src = MemoryStore::new();
        multi(&src, "v1", 256 * 1024).await;
        let dir = temp("gc-beside");
        let dst = LayoutStore::open_with(&dir, &LayoutOptions::create())
            .await
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let removed = Arc::new(AtomicU64::new(0));
        let gc_task = {
            let (dst, stop, removed) = (dst.clone(), Arc::clone(&stop), Arc::clone(&removed));
            tokio::spawn(async move {
                let opts = GcOptions::default().with_min_age(Duration::ZERO);
                while !stop.load(Ordering::SeqCst) {
                    let r = dst.gc(&opts).await.unwrap();
                    removed.fetch_add(r.removed.len() as u64, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let o = Arc::clone(&outcomes);
        let opts = CopyOptions::default().with_jobs(1).with_progress(move |p| {
            if let ProgressEvent::Finished { outcome, .. } = p.event {
                o.lock().unwrap().push(outcome);
            }
        });
        let r = copy_leased(&src, "v1", &dst, None, &opts).await.unwrap();
        stop.store(true, Ordering::SeqCst);
        gc_task.await.unwrap();
        assert_eq!(r.copied, 11);
        assert!(
            outcomes
                .lock()
                .unwrap()
                .iter()
                .all(|o| *o == NodeOutcome::Copied)
        );
        assert_eq!(removed.load(Ordering::SeqCst), 0);
        assert_eq!(read_all(&dst, "v1").await.len(), 11);
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn verify_existing_repairs_a_corrupt_blob_in_a_layout() {
    rt().block_on(async {
        let src = MemoryStore::new();
        let index = multi(&src, "v1", 32 * 1024).await;
        let dir = temp("repair");
        let dst = LayoutStore::open_with(&dir, &LayoutOptions::create())
            .await
            .unwrap();
        copy_leased(&src, "v1", &dst, None, &CopyOptions::default())
            .await
            .unwrap();
        // Damage one layer on disk (same size, other bytes).
        let m = src.fetch_manifest(&index.manifests()[0]).await.unwrap();
        let layer = m.layers()[0].clone();
        let path = dst.blob_path(&layer.digest);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        // Trusting, nothing is noticed.
        let r = copy_leased(&src, "v1", &dst, None, &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!(r.skipped, 11);
        // Verifying in full, the damaged layer is stored again.
        let opts = CopyOptions::default().with_verify(oci_store::VerifyMode::Full);
        let r = copy_leased(&src, "v1", &dst, None, &opts).await.unwrap();
        assert_eq!((r.repaired, r.skipped), (1, 10), "{r}");
        assert!(dst.fsck(&FsckOptions::default()).await.unwrap().is_clean());
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn a_foreign_layer_left_out_by_a_copy_is_expected_by_fsck_and_gc() {
    rt().block_on(async {
        let (a, b) = (temp("foreign-src"), temp("foreign-dst"));
        let src = LayoutStore::open_with(&a, &LayoutOptions::create())
            .await
            .unwrap();
        let config = put(&src, media_types::OCI_CONFIG, b"{}".to_vec()).await;
        let layer = put(&src, media_types::OCI_LAYER_GZIP, noise(1, 1000)).await;
        // A Windows-style base layer: non-distributable, served from its URLs, not held here.
        let mut foreign = Descriptor::of(media_types::DOCKER_LAYER_FOREIGN_GZIP, &noise(2, 500));
        foreign.urls = Some(vec!["https://example.invalid/base.tar.gz".into()]);
        let m = ImageManifestBuilder::oci(config)
            .layers([foreign.clone(), layer])
            .build()
            .unwrap();
        src.push_bytes(&m.descriptor(), m.raw().clone())
            .await
            .unwrap();
        src.tag(&m.descriptor(), "v1").await.unwrap();

        let dst = LayoutStore::open_with(&b, &LayoutOptions::create())
            .await
            .unwrap();
        let r = copy_leased(&src, "v1", &dst, None, &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!(r.foreign.len(), 1, "{r}");

        let fsck = dst.fsck(&FsckOptions::default()).await.unwrap();
        assert!(fsck.is_clean(), "{fsck:?}");
        assert!(fsck.missing.is_empty());
        assert_eq!(fsck.foreign.len(), 1);
        assert_eq!(fsck.foreign[0].0, foreign.digest);
        let gc = dst
            .gc(&GcOptions::default().with_min_age(Duration::ZERO))
            .await
            .unwrap();
        assert!(gc.missing.is_empty(), "{gc:?}");
        assert_eq!(gc.foreign.len(), 1);
        assert!(gc.removed.is_empty(), "{gc:?}");
        // The same layer absent under an ordinary media type is missing content.
        std::fs::remove_file(dst.blob_path(&m.layers()[1].digest)).unwrap();
        let fsck = dst.fsck(&FsckOptions::default()).await.unwrap();
        assert_eq!(fsck.missing.len(), 1, "{fsck:?}");
        assert!(!fsck.is_clean());
        for d in [a, b] {
            std::fs::remove_dir_all(d).unwrap();
        }
    });
}

/// Adds `desc` to the layout's `index.json` as an untagged entry, as oras-go's OCI store keeps
/// referrer manifests.
fn add_untagged_entry(layout: &Path, desc: &Descriptor) {
    let path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::to_value(desc).unwrap());
    std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn referrers_kept_as_untagged_index_entries_are_found_by_their_subject() {
    rt().block_on(async {
        let (a, b) = (temp("oras-src"), temp("oras-dst"));
        let src = LayoutStore::open_with(&a, &LayoutOptions::create())
            .await
            .unwrap();
        let image = multi(&src, "v1", 2000).await;
        // Two referrers as oras-go writes them: manifests with a subject, in blobs/ and as
        // untagged index.json entries, no fallback tag.
        let mut sigs = Vec::new();
        for (i, artifact) in [
            "application/vnd.example.sbom",
            "application/vnd.example.sig",
        ]
        .iter()
        .enumerate()
        {
            let payload = put(&src, "application/json", noise(10 + i as u64, 64)).await;
            let m = ImageManifestBuilder::artifact(*artifact)
                .layer(payload)
                .subject(image.descriptor())
                .build()
                .unwrap();
            src.push_bytes(&m.descriptor(), m.raw().clone())
                .await
                .unwrap();
            add_untagged_entry(&a, &m.referrer_descriptor());
            sigs.push(m);
        }
        let listed = src
            .referrers(&image.descriptor())
            .await
            .unwrap()
            .expect("a layout answers referrers itself");
        let mut digests: Vec<_> = listed.iter().map(|d| d.digest.clone()).collect();
        digests.sort();
        let mut expected: Vec<_> = sigs.iter().map(|m| m.digest().clone()).collect();
        expected.sort();
        assert_eq!(digests, expected);
        assert!(
            listed.iter().all(|d| d
                .artifact_type
                .as_deref()
                .is_some_and(|t| t.starts_with("application/vnd.example"))),
            "{listed:?}"
        );

        let dst = LayoutStore::open_with(&b, &LayoutOptions::create())
            .await
            .unwrap();
        let opts = CopyOptions::default().with_referrers(true);
        let r = copy_leased(&src, "v1", &dst, None, &opts).await.unwrap();
        assert_eq!(r.referrers.len(), 2, "{r}");
        for m in &sigs {
            assert!(dst.exists(m.digest()).await.unwrap());
        }
        // The copy is readable both ways: by subject, and through the fallback tag.
        let found = dst.referrers(&image.descriptor()).await.unwrap().unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        let fallback = dst
            .fetch_manifest(
                &dst.resolve(&oci_store::referrers_tag(image.digest()))
                    .await
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(fallback.manifests().len(), 2);
        assert!(dst.fsck(&FsckOptions::default()).await.unwrap().is_clean());
        for d in [a, b] {
            std::fs::remove_dir_all(d).unwrap();
        }
    });
}
