//! Archive stores judged by skopeo 1.9.3: skopeo writes `docker-archive:` and `oci-archive:`
//! (one image, several names, several platforms), we read them and copy them into an OCI
//! layout that fsck finds clean; we write both kinds (one image and several), skopeo reads
//! them and copies them into a layout that fsck finds clean and `skopeo inspect` accepts.
//!
//! Needs `skopeo` on PATH: `apt-get install docker-registry skopeo umoci jq apache2-utils`.

mod archive_common;
mod common;

use std::path::Path;

use archive_common::*;
use common::TempDir;
use oci_manifest::media_types as mt;
use oci_store::{
    ArchiveKind, ArchiveOptions, ArchiveReader, ArchiveWriter, CopyOptions, FsckOptions,
    LayoutOptions, LayoutStore, ManagedStore, ReadStore, TagStore, copy, copy_leased,
};

/// A layout at `dir` holding `img` tagged `tag`.
async fn layout_with(dir: &Path, img: &oci_store::testing::Image, tag: &str) -> LayoutStore {
    let l = LayoutStore::open_with(dir, &LayoutOptions::create())
        .await
        .unwrap();
    push_all(&l, img).await;
    l.tag(img.root(), tag).await.unwrap();
    l
}

/// Copies `reference` of `src` into a new layout at `dir` (leased), checks it complete and
/// fsck clean; returns the layout.
async fn copy_to_layout<S: ReadStore + TagStore + ?Sized>(
    src: &S,
    reference: &str,
    dir: &Path,
    tag: &str,
) -> LayoutStore {
    let l = LayoutStore::open_with(dir, &LayoutOptions::create())
        .await
        .unwrap();
    let report = copy_leased(src, reference, &l, Some(tag), &CopyOptions::default())
        .await
        .unwrap_or_else(|e| panic!("copy {reference}: {e:#}"));
    assert!(report.is_complete(), "{report:#}");
    let root = l.resolve(tag).await.unwrap();
    oci_store::testing::check_complete(&l, &root).await.unwrap();
    let f = l.fsck(&FsckOptions::default()).await.unwrap();
    assert!(f.is_clean(), "{f:?}");
    l
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_docker_archive_is_read_and_copied_to_a_layout() {
    let t = TempDir::new("skopeo-docker-archive");
    let (img, diff_ids) = real_image(1, 3, 20_000, false);
    layout_with(&t.path().join("src"), &img, "v1").await;
    let archive = t.path().join("app.tar");
    // One image under two names.
    skopeo(&[
        "copy",
        &format!("oci:{}:v1", p(&t.path().join("src"))),
        &format!("docker-archive:{}:example.com/team/app:v1", p(&archive)),
        "--additional-tag",
        "app:latest",
    ]);
    let r = ArchiveReader::open(&archive, ArchiveKind::Docker)
        .await
        .unwrap();
    assert_eq!(r.images().len(), 1);
    assert_eq!(
        r.tags().await.unwrap(),
        vec!["docker.io/library/app:latest", "example.com/team/app:v1"]
    );
    // Names resolve as Docker normalises them; @0 is the first image.
    let root = r.resolve("app").await.unwrap();
    assert_eq!(r.resolve("example.com/team/app:v1").await.unwrap(), root);
    assert_eq!(r.resolve("@0").await.unwrap(), root);
    assert_eq!(root.media_type, mt::DOCKER_MANIFEST);
    let m = r.fetch_manifest(&root).await.unwrap();
    // skopeo stores layers uncompressed: their digests are the diff IDs.
    let layers: Vec<_> = m.layers().iter().map(|l| l.digest.clone()).collect();
    assert_eq!(layers, diff_ids);
    assert!(
        m.layers()
            .iter()
            .all(|l| l.media_type == mt::DOCKER_LAYER_TAR)
    );
    // The configuration is the original one.
    assert_eq!(m.config().unwrap().digest, img.blobs[3].desc.digest);

    let l = copy_to_layout(&r, "example.com/team/app:v1", &t.path().join("dst"), "v1").await;
    let config = l.fetch_bytes(m.config().unwrap(), 1 << 20).await.unwrap();
    assert_eq!(
        config_diff_ids(&config),
        diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_compressed_docker_archive_is_read_through_a_temporary_copy() {
    let t = TempDir::new("skopeo-docker-archive-gz");
    let (img, diff_ids) = real_image(2, 2, 10_000, false);
    layout_with(&t.path().join("src"), &img, "v1").await;
    let archive = t.path().join("app.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:v1", p(&t.path().join("src"))),
        &format!("docker-archive:{}:app:v1", p(&archive)),
    ]);
    let gz = t.path().join("app.tar.gz");
    std::fs::write(&gz, gzip(&std::fs::read(&archive).unwrap())).unwrap();
    let temp = t.path().join("tmp");
    std::fs::create_dir(&temp).unwrap();
    let r = ArchiveReader::open_with(
        &gz,
        ArchiveKind::Docker,
        &ArchiveOptions::default().with_temp_dir(&temp),
    )
    .await
    .unwrap();
    assert!(r.was_compressed());
    // The decompressed copy is anonymous: nothing is left in the directory.
    assert_eq!(std::fs::read_dir(&temp).unwrap().count(), 0);
    let root = r.resolve("app:v1").await.unwrap();
    let m = r.fetch_manifest(&root).await.unwrap();
    assert_eq!(
        m.layers()
            .iter()
            .map(|l| l.digest.clone())
            .collect::<Vec<_>>(),
        diff_ids
    );
    copy_to_layout(&r, "app:v1", &t.path().join("dst"), "v1").await;
    // A limit below its size refuses it.
    let small = ArchiveOptions::default()
        .with_temp_dir(&temp)
        .with_max_decompressed(10_000);
    let e = ArchiveReader::open_with(&gz, ArchiveKind::Docker, &small)
        .await
        .unwrap_err();
    assert!(
        matches!(e, oci_store::StoreError::InvalidArchive { .. }),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_oci_archive_single_and_multi_platform_are_read() {
    let t = TempDir::new("skopeo-oci-archive");
    let (img, _) = real_image(3, 2, 5000, false);
    layout_with(&t.path().join("src"), &img, "v1").await;
    let archive = t.path().join("app-oci.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:v1", p(&t.path().join("src"))),
        &format!("oci-archive:{}:v1", p(&archive)),
    ]);
    let r = ArchiveReader::open(&archive, ArchiveKind::Oci)
        .await
        .unwrap();
    assert_eq!(r.tags().await.unwrap(), vec!["v1"]);
    let root = r.resolve("v1").await.unwrap();
    assert_eq!(root.digest, img.root().digest, "skopeo keeps OCI bytes");
    assert_eq!(r.default_reference().as_deref(), Some("v1"));
    copy_to_layout(&r, "v1", &t.path().join("dst"), "v1").await;

    // Several platforms under one index, copied with --all.
    let multi = multi_platform_layout(&t.path().join("multi-src")).await;
    let archive = t.path().join("multi.tar");
    skopeo(&[
        "copy",
        "--all",
        &format!("oci:{}:multi", p(&t.path().join("multi-src"))),
        &format!("oci-archive:{}:multi", p(&archive)),
    ]);
    let r = ArchiveReader::open(&archive, ArchiveKind::Oci)
        .await
        .unwrap();
    let root = r.resolve("multi").await.unwrap();
    assert_eq!(root.digest, multi);
    let m = r.fetch_manifest(&root).await.unwrap();
    assert_eq!(m.manifests().len(), 2);
    copy_to_layout(&r, "multi", &t.path().join("multi-dst"), "multi").await;
}

/// A layout holding an OCI index of two real images (linux/amd64, linux/arm64) tagged
/// `multi`; returns the index digest.
async fn multi_platform_layout(dir: &Path) -> oci_store::Digest {
    use oci_manifest::Platform;
    use oci_manifest::build::IndexBuilder;
    let l = LayoutStore::open_with(dir, &LayoutOptions::create())
        .await
        .unwrap();
    let mut entries = Vec::new();
    for (seed, arch) in [(10, "amd64"), (11, "arm64")] {
        let (img, _) = real_image(seed, 1, 3000, false);
        push_all(&l, &img).await;
        entries.push(
            img.root()
                .clone()
                .with_platform(Platform::new("linux", arch)),
        );
    }
    let idx = IndexBuilder::oci().manifests(entries).build().unwrap();
    l.push_bytes(&idx.descriptor(), idx.raw().clone())
        .await
        .unwrap();
    l.tag(&idx.descriptor(), "multi").await.unwrap();
    idx.digest().clone()
}

use oci_store::WriteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_docker_archive_of_two_images_is_read_by_skopeo() {
    let t = TempDir::new("our-docker-archive");
    let (a, a_diff) = real_image(20, 2, 30_000, false);
    let (b, b_diff) = real_image(21, 1, 10_000, true);
    let src = layout_with(&t.path().join("src"), &a, "a").await;
    push_all(&src, &b).await;
    src.tag(b.root(), "b").await.unwrap();

    let archive = t.path().join("two.tar");
    let w = ArchiveWriter::create(&archive, ArchiveKind::Docker)
        .await
        .unwrap();
    copy(&src, "a", &w, Some("app:v1"), &CopyOptions::default())
        .await
        .unwrap();
    copy(
        &src,
        "b",
        &w,
        Some("example.com/other:v2"),
        &CopyOptions::default(),
    )
    .await
    .unwrap();
    assert!(!archive.exists(), "visible before finish");
    let summary = w.finish().await.unwrap();
    assert_eq!(summary.images, 2);
    // Nothing but the archive is left beside it.
    let names: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    for (reference, diff, tag) in [
        ("app:v1", &a_diff, "a"),
        ("example.com/other:v2", &b_diff, "b"),
        ("@1", &b_diff, "b1"),
    ] {
        let dst = t.path().join(format!("skopeo-{tag}"));
        skopeo(&[
            "copy",
            &format!("docker-archive:{}:{reference}", p(&archive)),
            &format!("oci:{}:{tag}", p(&dst)),
        ]);
        let inspect = skopeo(&[
            "inspect",
            &format!("docker-archive:{}:{reference}", p(&archive)),
        ]);
        let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        let layers: Vec<String> = v["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            layers,
            diff.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            "{reference}"
        );
        let l = LayoutStore::open(&dst).await.unwrap();
        let f = l.fsck(&FsckOptions::default()).await.unwrap();
        assert!(f.is_clean(), "{f:?}");
        skopeo(&["inspect", &format!("oci:{}:{tag}", p(&dst))]);
    }
    // Our own reader agrees.
    let r = ArchiveReader::open(&archive, ArchiveKind::Docker)
        .await
        .unwrap();
    assert_eq!(r.images().len(), 2);
    assert_eq!(
        r.tags().await.unwrap(),
        vec!["docker.io/library/app:v1", "example.com/other:v2"]
    );
    copy_to_layout(&r, "app:v1", &t.path().join("ours"), "v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_oci_archive_of_two_images_is_read_by_skopeo() {
    let t = TempDir::new("our-oci-archive");
    let (a, _) = real_image(30, 2, 8000, false);
    let src = layout_with(&t.path().join("src"), &a, "a").await;
    let multi = {
        use oci_manifest::Platform;
        use oci_manifest::build::IndexBuilder;
        let mut entries = Vec::new();
        for (seed, arch) in [(31, "amd64"), (32, "arm64")] {
            let (img, _) = real_image(seed, 1, 3000, false);
            push_all(&src, &img).await;
            entries.push(
                img.root()
                    .clone()
                    .with_platform(Platform::new("linux", arch)),
            );
        }
        let idx = IndexBuilder::oci().manifests(entries).build().unwrap();
        src.push_bytes(&idx.descriptor(), idx.raw().clone())
            .await
            .unwrap();
        src.tag(&idx.descriptor(), "multi").await.unwrap();
        idx.digest().clone()
    };
    let archive = t.path().join("two-oci.tar");
    let w = ArchiveWriter::create(&archive, ArchiveKind::Oci)
        .await
        .unwrap();
    copy(&src, "a", &w, Some("v1"), &CopyOptions::default())
        .await
        .unwrap();
    copy(&src, "multi", &w, Some("multi"), &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(w.finish().await.unwrap().images, 2);

    for (tag, all) in [("v1", false), ("multi", true)] {
        let dst = t.path().join(format!("skopeo-{tag}"));
        let src_ref = format!("oci-archive:{}:{tag}", p(&archive));
        let dst_ref = format!("oci:{}:{tag}", p(&dst));
        let mut args = vec!["copy"];
        if all {
            args.push("--all");
        }
        args.extend([src_ref.as_str(), dst_ref.as_str()]);
        skopeo(&args);
        skopeo(&["inspect", &dst_ref]);
        let l = LayoutStore::open(&dst).await.unwrap();
        let f = l.fsck(&FsckOptions::default()).await.unwrap();
        assert!(f.is_clean(), "{f:?}");
        if all {
            assert_eq!(l.resolve(tag).await.unwrap().digest, multi);
        } else {
            assert_eq!(l.resolve(tag).await.unwrap().digest, a.root().digest);
        }
    }
}
