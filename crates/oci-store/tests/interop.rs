//! Interop with the real peers: umoci 0.4.7 and skopeo 1.9.3 (Debian packages).
//!
//! Needs `skopeo`, `umoci`, `tar` and `gzip` on PATH:
//! `apt-get install docker-registry skopeo umoci jq apache2-utils`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use oci_manifest::build::ImageManifestBuilder;
use oci_manifest::media_types;
use oci_store::{
    FsckOptions, GcOptions, LayoutOptions, LayoutStore, ManagedStore, ReadStore, TagStore,
    WriteStore, collect,
};

fn require(tool: &str) {
    if Command::new(tool).arg("--version").output().is_err() {
        panic!(
            "`{tool}` is needed by the interop tests and was not found on PATH: \
             apt-get install docker-registry skopeo umoci jq apache2-utils"
        );
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

fn count_blobs(layout: &Path) -> usize {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .count()
}

/// An image made by `umoci init/new/insert` is read, verified and GC-ed correctly: the blobs
/// `insert` left unreferenced go, the image stays complete and umoci still reads it.
#[tokio::test]
async fn umoci_image_read_verified_and_collected() {
    require("umoci");
    let t = TempDir::new("umoci");
    let layout = t.path().join("layout");
    let l = layout.to_str().unwrap();
    run(Command::new("umoci").args(["init", "--layout", l]));
    run(Command::new("umoci").args(["new", "--image", &format!("{l}:base")]));
    let file = t.path().join("hello.txt");
    std::fs::write(&file, b"hello from umoci\n").unwrap();
    run(Command::new("umoci")
        .args(["insert", "--image", &format!("{l}:base")])
        .arg(&file)
        .arg("/hello.txt"));

    let store = LayoutStore::open(&layout).await.unwrap();
    assert_eq!(store.tags().await.unwrap(), vec!["base"]);
    let root = store.resolve("base").await.unwrap();
    let seen = check_complete(&store, &root).await.unwrap();
    assert_eq!(seen.len(), 3, "manifest, config, one layer");
    let f = store.fsck(&FsckOptions::default()).await.unwrap();
    assert!(f.is_clean(), "{f:?}");
    assert_eq!(
        f.dangling.len(),
        2,
        "`umoci new`'s manifest and config: {f:?}"
    );
    // Young content written by a tool that knows nothing of leases is kept.
    let r = store.gc(&GcOptions::default()).await.unwrap();
    assert!(r.removed.is_empty() && r.young.len() == 2, "{r:?}");
    let r = store
        .gc(&GcOptions::default().with_min_age(Duration::ZERO))
        .await
        .unwrap();
    let mut removed: Vec<_> = r.removed.iter().map(|x| x.digest.clone()).collect();
    removed.sort();
    assert_eq!(removed, f.dangling);
    check_complete(&store, &root).await.unwrap();
    // umoci still reads the image, and its own gc finds nothing more to remove.
    run(Command::new("umoci").args(["stat", "--image", &format!("{l}:base")]));
    let before = count_blobs(&layout);
    run(Command::new("umoci").args(["gc", "--layout", l]));
    assert_eq!(count_blobs(&layout), before);
}

/// A fresh `umoci init` layout (its index.json says `"manifests": null`) opens as an empty store,
/// takes an image of ours, and umoci reads that image.
#[tokio::test]
async fn umoci_init_layout_opens_empty_and_takes_our_image() {
    require("umoci");
    let t = TempDir::new("umoci-init");
    let layout = t.path().join("layout");
    let l = layout.to_str().unwrap();
    run(Command::new("umoci").args(["init", "--layout", l]));
    let store = LayoutStore::open(&layout).await.unwrap();
    assert!(store.tags().await.unwrap().is_empty());
    let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#);
    let config_desc = oci_manifest::Descriptor::of(media_types::OCI_CONFIG, &config);
    store.push_bytes(&config_desc, config).await.unwrap();
    let manifest = ImageManifestBuilder::oci(config_desc).build().unwrap();
    store
        .push_bytes(&manifest.descriptor(), manifest.raw().clone())
        .await
        .unwrap();
    store.tag(&manifest.descriptor(), "ours").await.unwrap();
    run(Command::new("umoci").args(["stat", "--image", &format!("{l}:ours")]));
}

/// A layout written by `skopeo copy` opens, verifies and collects; skopeo reads it back after
/// we added to it.
#[tokio::test]
async fn skopeo_copied_layout() {
    require("umoci");
    require("skopeo");
    let t = TempDir::new("skopeo");
    let src = t.path().join("src");
    let dst = t.path().join("dst");
    let s = src.to_str().unwrap();
    run(Command::new("umoci").args(["init", "--layout", s]));
    run(Command::new("umoci").args(["new", "--image", &format!("{s}:base")]));
    let file = t.path().join("f");
    std::fs::write(&file, vec![7u8; 100_000]).unwrap();
    run(Command::new("umoci")
        .args(["insert", "--image", &format!("{s}:base")])
        .arg(&file)
        .arg("/f"));
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        &format!("oci:{s}:base"),
        &format!("oci:{}:copied", dst.display()),
    ]));

    let store = LayoutStore::open(&dst).await.unwrap();
    let root = store.resolve("copied").await.unwrap();
    check_complete(&store, &root).await.unwrap();
    assert!(
        store
            .fsck(&FsckOptions::default())
            .await
            .unwrap()
            .is_clean()
    );
    let r = store
        .gc(&GcOptions::default().with_min_age(Duration::ZERO))
        .await
        .unwrap();
    assert!(
        r.removed.is_empty(),
        "skopeo leaves nothing unreferenced: {r:?}"
    );
    assert_eq!(store.refcount(&root.digest).await.unwrap(), 1);

    // Add our own image beside it; skopeo still reads both.
    let img = real_image(t.path(), "second");
    push_image(&store, &img).await.unwrap();
    store.tag(img.root(), "ours").await.unwrap();
    for tag in ["copied", "ours"] {
        run(Command::new("skopeo").args(["inspect", &format!("oci:{}:{tag}", dst.display())]));
    }
}

/// A tar+gzip layer and a config whose diff_ids match, as real image tools expect.
fn real_image(dir: &Path, content: &str) -> Image {
    require("tar");
    require("gzip");
    let rootfs = dir.join(format!("rootfs-{content}"));
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::write(rootfs.join("hello.txt"), content).unwrap();
    let tar = dir.join(format!("{content}.tar"));
    run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("--mtime=@0")
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    let tar_bytes = std::fs::read(&tar).unwrap();
    let diff_id = oci_digest::Algorithm::Sha256.hash(&tar_bytes);
    let gz = run_bytes(Command::new("gzip").arg("-n").arg("-c").arg(&tar));
    let layer = blob(media_types::OCI_LAYER_GZIP, gz);
    let config = blob(
        media_types::OCI_CONFIG,
        format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}},"created":"2024-01-01T00:00:00Z","history":[{{"created":"2024-01-01T00:00:00Z","created_by":"oci-store interop test"}}]}}"#
        ),
    );
    let m = ImageManifestBuilder::oci(config.desc.clone())
        .layer(layer.desc.clone())
        .build()
        .unwrap();
    Image {
        blobs: vec![layer, config, from_manifest(&m)],
    }
}

fn run_bytes(cmd: &mut Command) -> Bytes {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed");
    Bytes::from(out.stdout)
}

/// An image our store writes is read by `skopeo inspect oci:PATH:TAG`, `umoci stat` and
/// `skopeo copy` (whose copy we read back, byte for byte).
#[tokio::test]
async fn our_layout_read_by_skopeo_and_umoci() {
    require("umoci");
    require("skopeo");
    let t = TempDir::new("ours");
    let layout = t.path().join("layout");
    let store = LayoutStore::open_with(&layout, &LayoutOptions::create())
        .await
        .unwrap();
    let img = real_image(t.path(), "ours");
    let lease = store.create_lease(Duration::from_secs(60)).await.unwrap();
    push_image(&store.with_lease(&lease), &img).await.unwrap();
    store.tag(img.root(), "v1").await.unwrap();
    store.release_lease(&lease).await.unwrap();
    let l = layout.to_str().unwrap();

    let inspect = run(Command::new("skopeo").args(["inspect", &format!("oci:{l}:v1")]));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Digest"].as_str(), Some(img.root().digest.as_str()));
    assert_eq!(
        v["Layers"][0].as_str(),
        Some(img.blobs[0].desc.digest.as_str())
    );
    let raw = run_bytes(Command::new("skopeo").args(["inspect", "--raw", &format!("oci:{l}:v1")]));
    assert_eq!(
        raw, img.blobs[2].data,
        "skopeo sees our exact manifest bytes"
    );
    let stat = run(Command::new("umoci").args(["stat", "--image", &format!("{l}:v1")]));
    assert!(stat.contains("oci-store interop test"), "{stat}");

    let other = t.path().join("other");
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        &format!("oci:{l}:v1"),
        &format!("oci:{}:v1", other.display()),
    ]));
    let copy = LayoutStore::open(&other).await.unwrap();
    let root = copy.resolve("v1").await.unwrap();
    assert_eq!(root.digest, img.root().digest);
    for b in &img.blobs {
        assert_eq!(
            collect(copy.fetch(&b.desc).await.unwrap(), u64::MAX)
                .await
                .unwrap(),
            b.data
        );
    }
    assert!(copy.exists(&img.blobs[0].desc.digest).await.unwrap());
}
