//! The public store suite (`oci_store::testing`) on the archive stores, for the cases that
//! apply: an archive being written is a store without deletes (every case but `delete`, for
//! an oci-archive; a docker-archive holds only images whose configurations list their diff
//! IDs, so only the cases that push plain blobs run on it); an archive read back serves
//! everything it was given, verified.

mod archive_common;
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use archive_common::*;
use common::TempDir;
use oci_store::testing;
use oci_store::{
    ArchiveKind, ArchiveReader, ArchiveWriter, CopyOptions, MemoryStore, ReadStore, StoreError,
    TagStore, WriteStore, copy,
};

struct Dirs {
    t: TempDir,
    n: AtomicUsize,
}

impl Dirs {
    fn new(name: &str) -> Dirs {
        Dirs {
            t: TempDir::new(name),
            n: AtomicUsize::new(0),
        }
    }

    async fn writer(&self, kind: ArchiveKind) -> ArchiveWriter {
        let p = self
            .t
            .path()
            .join(format!("{}.tar", self.n.fetch_add(1, Ordering::Relaxed)));
        ArchiveWriter::create(&p, kind).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_archive_writer_passes_the_store_cases() {
    let d = Dirs::new("suite-oci");
    let k = ArchiveKind::Oci;
    testing::round_trip(&d.writer(k).await).await;
    testing::ranges(&d.writer(k).await).await;
    testing::bad_descriptors(&d.writer(k).await).await;
    testing::sizes_checked_at_once(&d.writer(k).await).await;
    testing::verified_or_invisible(&d.writer(k).await).await;
    testing::resumable_writer(&d.writer(k).await).await;
    testing::ingest_keys(&d.writer(k).await).await;
    testing::tags(&d.writer(k).await).await;
    testing::untag(&d.writer(k).await).await;
    testing::object_safe(&d.writer(k).await).await;
    // Delete is the one case that does not apply: an archive is append-only.
    let w = d.writer(k).await;
    let b = testing::blob("text/plain", &b"x"[..]);
    w.push_bytes(&b.desc, b.data.clone()).await.unwrap();
    assert!(matches!(
        w.delete(&b.desc.digest).await,
        Err(StoreError::Unsupported { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_archive_writer_passes_the_blob_cases() {
    let d = Dirs::new("suite-docker");
    let k = ArchiveKind::Docker;
    testing::verified_or_invisible(&d.writer(k).await).await;
    testing::resumable_writer(&d.writer(k).await).await;
    testing::ingest_keys(&d.writer(k).await).await;
    testing::object_safe(&d.writer(k).await).await;
    // What a docker-archive cannot hold is refused with the reason.
    let w = d.writer(k).await;
    let idx = testing::multi_platform(1, &[("linux", "amd64")]);
    let e = testing::push_image(&w, &idx).await.unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Unsupported { .. } | StoreError::InvalidArchive { .. }
        ),
        "{e:?}"
    );
    let e = w.tag(idx.root(), "Not A Reference").await.unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::InvalidTag { .. } | StoreError::NotFound { .. }
        ),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_oci_archive_was_given_reads_back_verified() {
    let t = TempDir::new("suite-read-back");
    let path = t.path().join("all.tar");
    let w = ArchiveWriter::create(&path, ArchiveKind::Oci)
        .await
        .unwrap();
    let single = testing::image(5, 3, 50_000);
    let multi = testing::multi_platform(6, &[("linux", "amd64"), ("linux", "arm64")]);
    testing::push_image(&w, &single).await.unwrap();
    testing::push_image(&w, &multi).await.unwrap();
    w.tag(single.root(), "single").await.unwrap();
    w.tag(multi.root(), "multi").await.unwrap();
    // A large blob goes through a spool file and back.
    let big = testing::blob(
        "application/octet-stream",
        testing::Rng::new(7).bytes(12 << 20),
    );
    w.push(&big.desc, oci_store::bytes_stream(big.data.clone()))
        .await
        .unwrap();
    w.finish().await.unwrap();

    let r = ArchiveReader::open(&path, ArchiveKind::Oci).await.unwrap();
    assert_eq!(r.tags().await.unwrap(), vec!["multi", "single"]);
    for img in [&single, &multi] {
        for b in &img.blobs {
            assert_eq!(r.fetch_bytes(&b.desc, 1 << 30).await.unwrap(), b.data);
        }
    }
    assert_eq!(r.fetch_bytes(&big.desc, 1 << 30).await.unwrap(), big.data);
    // The big blob is untagged and not a manifest: not an image of the archive.
    assert_eq!(r.images().len(), 2);
    // A reader cannot be tagged.
    assert!(matches!(
        r.tag(single.root(), "x").await,
        Err(StoreError::Unsupported { .. })
    ));
    // Copies from the reader to memory are complete.
    let m = MemoryStore::new();
    copy(&r, "multi", &m, None, &CopyOptions::default())
        .await
        .unwrap();
    testing::check_complete(&m, multi.root()).await.unwrap();
    // Ranges are served from the archive.
    let s = r.fetch_range(&big.desc, 5..10).await.unwrap();
    assert_eq!(
        oci_store::collect(s, 100).await.unwrap(),
        big.data.slice(5..10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_archive_round_trip_keeps_configs_and_diff_ids() {
    let t = TempDir::new("docker-round-trip");
    let (img, diff_ids) = real_image(9, 3, 40_000, false);
    let src = MemoryStore::new();
    push_all(&src, &img).await;
    src.tag(img.root(), "v1").await.unwrap();
    let path = t.path().join("d.tar");
    let w = ArchiveWriter::create(&path, ArchiveKind::Docker)
        .await
        .unwrap();
    let report = copy(&src, "v1", &w, Some("team/app:v1"), &CopyOptions::default())
        .await
        .unwrap();
    assert!(report.is_complete());
    // A decompressed layer cannot be read back under its compressed digest.
    let e = w.fetch(&img.blobs[0].desc).await.err().unwrap();
    assert!(matches!(e, StoreError::Unsupported { .. }), "{e:?}");
    w.finish().await.unwrap();
    let r = ArchiveReader::open(&path, ArchiveKind::Docker)
        .await
        .unwrap();
    let root = r.resolve("docker.io/team/app:v1").await.unwrap();
    let m = r.fetch_manifest(&root).await.unwrap();
    assert_eq!(m.config().unwrap().digest, img.blobs[3].desc.digest);
    assert_eq!(
        m.layers()
            .iter()
            .map(|l| l.digest.clone())
            .collect::<Vec<_>>(),
        diff_ids
    );
    // Layers kept compressed when asked.
    let path = t.path().join("d-gz.tar");
    let o = oci_store::ArchiveOptions::default().with_decompress_layers(false);
    let w = ArchiveWriter::create_with(&path, ArchiveKind::Docker, &o)
        .await
        .unwrap();
    copy(&src, "v1", &w, Some("app:v1"), &CopyOptions::default())
        .await
        .unwrap();
    w.finish().await.unwrap();
    let r = ArchiveReader::open(&path, ArchiveKind::Docker)
        .await
        .unwrap();
    let m = r
        .fetch_manifest(&r.resolve("app:v1").await.unwrap())
        .await
        .unwrap();
    let manifest = manifest_of(&img);
    assert_eq!(
        m.layers()
            .iter()
            .map(|l| l.digest.clone())
            .collect::<Vec<_>>(),
        manifest
            .layers()
            .iter()
            .map(|l| l.digest.clone())
            .collect::<Vec<_>>()
    );
    assert!(
        m.layers()
            .iter()
            .all(|l| l.media_type == oci_manifest::media_types::DOCKER_LAYER_GZIP)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_whose_diff_ids_lie_is_refused_by_the_docker_writer() {
    let t = TempDir::new("docker-diff-id-lie");
    let (img, _) = real_image(12, 2, 5000, false);
    // The same layers under a config listing other diff IDs.
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}","{}"]}}}}"#,
        oci_store::Algorithm::Sha256.hash(b"a"),
        oci_store::Algorithm::Sha256.hash(b"b")
    );
    let config = testing::blob(oci_manifest::media_types::OCI_CONFIG, config);
    let m = oci_manifest::build::ImageManifestBuilder::oci(config.desc.clone())
        .layers(img.blobs[..2].iter().map(|b| b.desc.clone()))
        .build()
        .unwrap();
    let src = MemoryStore::new();
    for b in &img.blobs[..2] {
        src.push_bytes(&b.desc, b.data.clone()).await.unwrap();
    }
    src.push_bytes(&config.desc, config.data.clone())
        .await
        .unwrap();
    src.push_bytes(&m.descriptor(), m.raw().clone())
        .await
        .unwrap();
    src.tag(&m.descriptor(), "v1").await.unwrap();
    let path = t.path().join("lie.tar");
    let w = ArchiveWriter::create(&path, ArchiveKind::Docker)
        .await
        .unwrap();
    let e = copy(&src, "v1", &w, Some("app:v1"), &CopyOptions::default())
        .await
        .unwrap_err();
    let chain = oci_store::error_chain(&e);
    assert!(chain.contains("diff ID"), "{chain}");
    assert!(w.tags().await.unwrap().is_empty());
    drop(w);
    assert!(!path.exists());
}
