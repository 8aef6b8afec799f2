//! A registry repository through the `oci-store` traits, against the real `docker-registry`:
//! the cases of the public store suite (`oci_store::testing`) it supports, what only a
//! registry does, and the stale blob-descriptor cache that lies about existence.

mod common;

use common::{random, test_config as config};

use bytes::Bytes;
use common::registry::{RegistryOptions, TestRegistry};
use futures_util::StreamExt;
use oci_distribution_client::{
    Algorithm, Client, ClientConfig, Descriptor, Repository, media_types,
};
use oci_store::{
    BlobStream, Location, MemoryStore, PushOutcome, ReadStore, Store, StoreError, TagStore,
    WriteStore,
};

fn repo_with(reg: &TestRegistry, cfg: ClientConfig, name: &str) -> Repository {
    Client::new(cfg)
        .expect("client")
        .repository_by_name(&reg.addr, name)
        .expect("repo")
}

fn random_bytes(n: usize, seed: u64) -> Bytes {
    Bytes::from(random(n, seed))
}

fn desc_of(mt: &str, data: &[u8]) -> Descriptor {
    Descriptor::new(mt, Algorithm::Sha256.hash(data), data.len() as u64)
}

async fn read_all(s: &dyn Store, d: &Descriptor) -> Result<Bytes, StoreError> {
    oci_store::collect(s.fetch(d).await?, 1 << 30).await
}

struct Img {
    blobs: Vec<(Descriptor, Bytes)>,
    manifest: (Descriptor, Bytes),
}

fn image(seed: u64) -> Img {
    let config = Bytes::from(format!(
        r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#
    ));
    let cfg = desc_of(media_types::OCI_CONFIG, &config);
    let l1 = random_bytes(150_000, seed);
    let l2 = random_bytes(2_500_000, seed + 1);
    let layers = [
        desc_of(media_types::OCI_LAYER_GZIP, &l1),
        desc_of(media_types::OCI_LAYER_GZIP, &l2),
    ];
    let m = Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": media_types::OCI_MANIFEST,
            "config": cfg, "layers": layers,
        }))
        .expect("json"),
    );
    Img {
        blobs: vec![
            (cfg, config),
            (layers[0].clone(), l1),
            (layers[1].clone(), l2),
        ],
        manifest: (desc_of(media_types::OCI_MANIFEST, &m), m),
    }
}

/// Copies an image between any two stores through the traits only (`&dyn Store`).
async fn copy_image(src: &dyn Store, dst: &dyn Store, tag: &str) -> Descriptor {
    let root = src.resolve(tag).await.expect("resolve");
    let m = src.fetch_manifest(&root).await.expect("manifest");
    let mut children: Vec<Descriptor> = m.layers().to_vec();
    children.extend(m.config().cloned());
    for c in children {
        if let (Some(from), Some(_)) = (src.location(), dst.location())
            && dst.mount(&c, &from).await.expect("mount")
        {
            continue;
        }
        let s: BlobStream = src.fetch(&c).await.expect("fetch");
        dst.push(&c, s).await.expect("push");
    }
    dst.push(&root, src.fetch(&root).await.expect("fetch root"))
        .await
        .expect("push root");
    dst.tag(&root, tag).await.expect("tag");
    root
}

/// A client configuration with 1 MiB chunks (and monolithic uploads up to 512 KiB), so a
/// resumable writer's acknowledged offset is a whole number of MiB.
fn chunked_config(reg: &TestRegistry) -> ClientConfig {
    let mut cfg = config(&reg.addr);
    cfg.chunk_size = 1024 * 1024;
    cfg.monolithic_max = 512 * 1024;
    cfg
}

/// One test per case of `oci_store::testing` that a registry repository supports, each on a
/// registry of its own. Not run: `untag` (distribution cannot delete a tag) and the
/// `ManagedStore` cases (no leases, GC or fsck).
macro_rules! suite {
    ($($case:ident),+ $(,)?) => {
        mod suite {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let reg = TestRegistry::start();
                    let repo = repo_with(&reg, chunked_config(&reg), "suite/case");
                    oci_store::testing::$case(&repo).await;
                }
            )+
        }
    };
}

suite!(
    round_trip,
    ranges,
    bad_descriptors,
    sizes_checked_at_once,
    ingest_keys,
    delete,
    verified_or_invisible,
    resumable_writer,
    tags,
    object_safe,
);

/// What only a registry repository does, beside the store cases above (which cover push, stat,
/// fetch, ranges, bad input, tags, writers and deletes): its location, the referrers API, copies
/// to another repository (mounts), to memory and back through `&dyn Store`, and a resumable
/// writer that reports as its offset only the chunks the registry acknowledged.
#[tokio::test]
async fn registry_repository_as_a_store() {
    let reg = TestRegistry::start();
    let cfg = chunked_config(&reg);
    let repo = repo_with(&reg, cfg.clone(), "store/a");
    let img = image(1);
    for (d, data) in &img.blobs {
        repo.push_bytes(d, data.clone()).await.expect("push");
    }
    let (md, mbytes) = &img.manifest;
    repo.push_bytes(md, mbytes.clone()).await.expect("manifest");
    repo.tag(md, "v1").await.expect("tag");
    assert_eq!(TagStore::resolve(&repo, "v1").await.expect("resolve"), *md);
    assert_eq!(
        repo.location(),
        Some(Location::new(reg.addr.clone(), "store/a"))
    );
    assert_eq!(
        ReadStore::referrers(&repo, md).await.expect("referrers"),
        Some(vec![])
    );

    // Copy to another repository (mounts) and to memory and back, through `&dyn Store`.
    let (ld, ldata) = &img.blobs[2];
    let b = repo_with(&reg, cfg.clone(), "store/b");
    let root = copy_image(&repo, &b, "v1").await;
    assert_eq!(root, *md);
    let mem = MemoryStore::new();
    copy_image(&b, &mem, "v1").await;
    let c = repo_with(&reg, cfg.clone(), "store/c");
    copy_image(&mem, &c, "v1").await;
    assert_eq!(read_all(&c, ld).await.expect("copied blob"), *ldata);

    // Resumable writer: 1.6 MB written, one 1 MiB chunk sent; drop, reopen with the same key,
    // finish.
    let data = random_bytes(3 * 1024 * 1024 + 100, 77);
    let d = desc_of(media_types::OCI_LAYER_TAR, &data);
    let mut w = repo.writer("ingest-1", &d).await.expect("writer");
    w.write(data.slice(..1_600_000)).await.expect("write");
    assert!(matches!(
        repo.writer("ingest-1", &d).await,
        Err(StoreError::IngestBusy { .. })
    ));
    drop(w);
    let st = repo
        .ingest_status("ingest-1")
        .await
        .expect("status")
        .expect("exists");
    assert_eq!(
        st.offset,
        1024 * 1024,
        "one chunk acknowledged, the rest was buffered"
    );
    let mut w = repo.writer("ingest-1", &d).await.expect("resume");
    assert_eq!(w.offset(), 1024 * 1024);
    w.write(data.slice(1024 * 1024..))
        .await
        .expect("write rest");
    assert_eq!(w.commit().await.expect("commit"), PushOutcome::Written);
    assert_eq!(read_all(&repo, &d).await.expect("read"), data);
    assert!(repo.ingests().await.expect("ingests").is_empty());
}

/// distribution 2.8.2 with `blobdescriptor: inmemory`: after a manifest delete and an offline
/// `garbage-collect --delete-untagged`, HEAD still says the blobs exist, GET sends nothing,
/// mounts answer 201, a manifest PUT answers 201 but is not stored.
#[tokio::test]
async fn stale_blob_cache_is_detected_and_repaired_in_verify_mode() {
    let reg = TestRegistry::start_with(RegistryOptions {
        blob_descriptor_cache: true,
        ..RegistryOptions::default()
    });
    let trusting = repo_with(&reg, config(&reg.addr), "stale/app");
    let img = image(9);
    for (d, data) in &img.blobs {
        trusting.push_bytes(d, data.clone()).await.expect("push");
    }
    let (md, mbytes) = &img.manifest;
    trusting
        .push_bytes(md, mbytes.clone())
        .await
        .expect("manifest");
    // Warm the cache, then lose everything behind its back.
    for (d, _) in &img.blobs {
        assert_eq!(trusting.stat(&d.digest).await.expect("stat"), Some(d.size));
    }
    trusting
        .delete_manifest(&md.digest)
        .await
        .expect("delete manifest");
    let gc = reg.garbage_collect(true);
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );

    // The lie: HEAD says the layer is there.
    let (ld, ldata) = &img.blobs[2];
    assert!(trusting.blob_exists(ld).await.expect("head"));
    // The truth, found without trusting HEAD: the last byte is not served. (distribution
    // answers 206 and ends the body early, every time: `checked_exists` reports that failure
    // mid-stream as an error, not as `false`.)
    let checked = oci_store::checked_exists(&trusting, ld).await;
    assert!(
        matches!(checked, Ok(false) | Err(StoreError::Source { .. })),
        "{checked:?}"
    );
    let mut s = trusting.fetch_blob(ld).await.expect("open");
    let mut failed = false;
    while let Some(item) = s.next().await {
        failed |= item.is_err();
    }
    assert!(failed, "a GET of a lost blob must not verify");

    // Verify mode (the copy's, the one verification policy) repairs: every lost blob is found
    // and uploaded again, the manifest is put, read back, re-put.
    let local = MemoryStore::new();
    for (d, data) in img.blobs.iter().chain([&img.manifest]) {
        local.push_bytes(d, data.clone()).await.expect("local push");
    }
    local.tag(md, "v1").await.expect("local tag");
    let verifying = trusting.clone();
    let options = oci_store::CopyOptions::default().with_verify(oci_store::VerifyMode::Range);
    let report = oci_store::copy(&local, "v1", &verifying, None, &options)
        .await
        .expect("verifying copy");
    for (d, _) in &img.blobs {
        let node = report
            .nodes
            .iter()
            .find(|n| n.desc.digest == d.digest)
            .expect("in the report");
        assert_eq!(
            node.outcome,
            oci_store::NodeOutcome::Repaired,
            "{}: {report}",
            d.digest
        );
    }
    assert_eq!(
        verifying
            .fetch_manifest("v1")
            .await
            .expect("read back")
            .bytes,
        *mbytes
    );
    let mut s = verifying.fetch_blob(ld).await.expect("open");
    let mut got = Vec::new();
    while let Some(item) = s.next().await {
        got.extend_from_slice(&item.expect("verified"));
    }
    assert_eq!(got, *ldata);
}
