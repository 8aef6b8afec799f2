//! Piece maps travelling with images through the library: `CopyOptions::piece_maps` pushes one
//! artifact per image manifest (for an index, one per platform) whose subject is that
//! manifest, and not again once there; a copy fetching in pieces from a layout source takes the
//! layout's own maps as trusted, and a mirror's bad piece is caught by them.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use oci_digest::PIECE_MAP_MEDIA_TYPE;
use oci_manifest::build::{ImageManifestBuilder, IndexBuilder};
use oci_manifest::{Descriptor, Platform, media_types};
use oci_store::{
    CopyOptions, LayoutOptions, LayoutStore, ManagedStore, MapTrust, MapUse, MemoryStore,
    PIECE_MAP_BLOB_ANNOTATION, PieceMapArtifact, RangeSource, ReadStore, TagStore, WriteStore,
    copy, copy_leased, referrers_tag,
};

use common::{TempDir, rt};

const MIB: usize = 1024 * 1024;

fn data(n: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    Bytes::from(
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>(),
    )
}

/// A two-platform index in a memory store, tagged `v1`: each platform's image has its own
/// 3 MiB layer and a shared 1 MiB one. Returns the store and the two image manifests.
async fn index_image() -> (MemoryStore, Vec<Descriptor>) {
    let store = MemoryStore::new();
    let shared = data(MIB, 7);
    let shared_desc = Descriptor::of(media_types::OCI_LAYER_GZIP, &shared);
    store.push_bytes(&shared_desc, shared).await.unwrap();
    let mut images = Vec::new();
    for (i, arch) in ["amd64", "arm64"].into_iter().enumerate() {
        let own = data(3 * MIB + i, 11 + i as u64);
        let own_desc = Descriptor::of(media_types::OCI_LAYER_GZIP, &own);
        store.push_bytes(&own_desc, own).await.unwrap();
        let config = Bytes::from(format!(
            "{{\"architecture\":\"{arch}\",\"os\":\"linux\",\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[]}}}}"
        ));
        let config_desc = Descriptor::of(media_types::OCI_CONFIG, &config);
        store.push_bytes(&config_desc, config).await.unwrap();
        let m = ImageManifestBuilder::oci(config_desc)
            .layer(shared_desc.clone())
            .layer(own_desc)
            .build()
            .unwrap();
        store
            .push_bytes(&m.descriptor(), m.raw().clone())
            .await
            .unwrap();
        images.push(m.descriptor().with_platform(Platform::new("linux", arch)));
    }
    let index = IndexBuilder::oci()
        .manifests(images.clone())
        .build()
        .unwrap();
    store
        .push_bytes(&index.descriptor(), index.raw().clone())
        .await
        .unwrap();
    store.tag(&index.descriptor(), "v1").await.unwrap();
    (store, images)
}

#[test]
fn an_index_gets_one_artifact_per_platform_and_none_again() {
    let tmp = TempDir::new("copy-piece-maps");
    rt().block_on(async {
        let (src, images) = index_image().await;
        let dst = LayoutStore::open_with(tmp.path(), &LayoutOptions::create())
            .await
            .unwrap();
        let options = CopyOptions::default().with_piece_maps(true);
        let report = copy_leased(&src, "v1", &dst, None, &options).await.unwrap();
        let pushed = &report.piece_maps.pushed;
        assert_eq!(pushed.len(), 2, "{:?}", report.piece_maps);
        for image in &images {
            let (_, artifact) = pushed
                .iter()
                .find(|(s, _)| s.digest == image.digest)
                .unwrap_or_else(|| panic!("no artifact for {}", image.digest));
            // Discoverable from its subject, by the store and by the fallback tag.
            let listed = dst.referrers(image).await.unwrap().unwrap();
            assert!(
                listed.iter().any(|r| r.digest == artifact.digest
                    && r.artifact_type.as_deref() == Some(PIECE_MAP_MEDIA_TYPE)),
                "{listed:?}"
            );
            let fallback = dst.resolve(&referrers_tag(&image.digest)).await.unwrap();
            let index = dst.fetch_manifest(&fallback).await.unwrap();
            assert!(
                index
                    .manifests()
                    .iter()
                    .any(|d| d.digest == artifact.digest)
            );
            // One map per layer, each right (the destination's own maps agree).
            let a = dst.fetch_manifest(artifact).await.unwrap();
            assert_eq!(a.subject().unwrap().digest, image.digest);
            let m = dst.fetch_manifest(image).await.unwrap();
            assert_eq!(a.layers().len(), m.layers().len());
            for (entry, layer) in a.layers().iter().zip(m.layers()) {
                assert_eq!(
                    entry.annotation(PIECE_MAP_BLOB_ANNOTATION),
                    Some(layer.digest.as_str())
                );
                let bytes = dst.fetch_bytes(entry, 1 << 20).await.unwrap();
                let map = PieceMapArtifact::read_map(entry, bytes).unwrap();
                assert_eq!(map, dst.piece_map(&layer.digest).await.unwrap());
            }
        }
        // Again: both artifacts are there; nothing is pushed.
        let again = copy_leased(&src, "v1", &dst, None, &options).await.unwrap();
        assert!(again.piece_maps.pushed.is_empty(), "{:?}", again.piece_maps);
        assert_eq!(again.piece_maps.present.len(), 2);
        // A collection keeps the artifacts and their maps (the fallback tags are roots).
        let gc = dst
            .gc(&oci_store::GcOptions::default().with_min_age(std::time::Duration::ZERO))
            .await
            .unwrap();
        assert!(gc.removed.is_empty(), "{gc:?}");
        let fsck = dst.fsck(&oci_store::FsckOptions::default()).await.unwrap();
        assert!(
            fsck.corrupt.is_empty() && fsck.missing.is_empty(),
            "{fsck:?}"
        );
    });
}

#[test]
fn a_layout_source_gives_trusted_maps_that_catch_a_mirrors_bad_piece() {
    let tmp = TempDir::new("copy-piece-maps-trusted");
    rt().block_on(async {
        let (mem, images) = index_image().await;
        // The source: a layout holding the image. The mirror: a layout with one byte of the
        // amd64 layer flipped on disk (a layout serves ranges without checking them).
        let src = LayoutStore::open_with(tmp.path().join("src"), &LayoutOptions::create())
            .await
            .unwrap();
        copy(&mem, "v1", &src, None, &CopyOptions::default())
            .await
            .unwrap();
        let mirror = LayoutStore::open_with(tmp.path().join("mirror"), &LayoutOptions::create())
            .await
            .unwrap();
        copy(&mem, "v1", &mirror, None, &CopyOptions::default())
            .await
            .unwrap();
        let amd64 = src.fetch_manifest(&images[0]).await.unwrap();
        let bad_layer = amd64.layers()[1].clone();
        let path = mirror.blob_path(&bad_layer.digest);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[MIB + 9] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();

        // The source's maps, made and cached beforehand (a pull hashes nothing for them).
        for l in [&amd64.layers()[0], &bad_layer] {
            src.piece_map(&l.digest).await.unwrap();
        }
        let arm64 = src.fetch_manifest(&images[1]).await.unwrap();
        src.piece_map(&arm64.layers()[1].digest).await.unwrap();
        let dst = LayoutStore::open_with(tmp.path().join("dst"), &LayoutOptions::create())
            .await
            .unwrap();
        let sources: Vec<Arc<dyn RangeSource>> =
            vec![Arc::new(mirror.clone()), Arc::new(src.clone())];
        let options = CopyOptions::default().with_blob_sources(sources);
        let report = copy(&src, "v1", &dst, None, &options).await.unwrap();
        // Every layer's map: the source layout's own, trusted.
        assert_eq!(report.piece_maps.found.len(), 3, "{:?}", report.piece_maps);
        assert!(
            report
                .piece_maps
                .found
                .iter()
                .all(|(_, t, from)| *t == MapTrust::Trusted && from.is_none())
        );
        let fetch = report
            .fetches
            .iter()
            .find(|f| f.digest == bad_layer.digest)
            .unwrap();
        assert_eq!(fetch.map, MapUse::Trusted);
        assert!(!fetch.bad_pieces.is_empty(), "{fetch:?}");
        assert!(
            fetch
                .bad_pieces
                .iter()
                .all(|b| b.index == 1 && b.source == 0)
        );
        assert!(
            fetch.bytes_refetched - fetch.bytes_taken_over - fetch.bytes_read_ahead
                <= 2 * MIB as u64,
            "{fetch:?}"
        );
        assert_eq!(
            dst.fetch_bytes(&bad_layer, u64::MAX).await.unwrap(),
            src.fetch_bytes(&bad_layer, u64::MAX).await.unwrap()
        );
        // Asked not to look for maps: none, though the source has them cached.
        let dst3 = LayoutStore::open_with(tmp.path().join("dst3"), &LayoutOptions::create())
            .await
            .unwrap();
        let unmapped = options.clone().with_found_piece_maps(false);
        let report = copy(&src, "v1", &dst3, None, &unmapped).await.unwrap();
        assert!(
            report.piece_maps.found.is_empty(),
            "{:?}",
            report.piece_maps
        );
        assert!(report.fetches.iter().all(|f| f.map == MapUse::None));

        // Without cached maps, the source gives none: nothing is hashed on a pull's default
        // path, and no artifact is there.
        std::fs::remove_dir_all(tmp.path().join("src/.oci-rs/piece-maps")).unwrap();
        let dst2 = LayoutStore::open_with(tmp.path().join("dst2"), &LayoutOptions::create())
            .await
            .unwrap();
        let report = copy(&src, "v1", &dst2, None, &options).await.unwrap();
        assert!(
            report.piece_maps.found.is_empty(),
            "{:?}",
            report.piece_maps
        );
        assert!(!tmp.path().join("src/.oci-rs/piece-maps").exists());
        assert_eq!(
            dst2.fetch_bytes(&bad_layer, u64::MAX).await.unwrap(),
            src.fetch_bytes(&bad_layer, u64::MAX).await.unwrap()
        );
    });
}
