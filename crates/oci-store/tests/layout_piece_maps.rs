//! The piece-map cache of a `LayoutStore` (`.oci-rs/piece-maps/`): a map computed once from the
//! verified blob and reused; a damaged or foreign cache file derived again; nothing cached for
//! a corrupt blob or a read-only layout; maps dropped with their blob by `delete`, by a
//! collection (listed by its dry run) and by `fsck --repair`; `fsck` clean beside the cache.

mod common;

use bytes::Bytes;
use oci_manifest::{Descriptor, media_types};
use oci_store::{
    FsckOptions, GcOptions, LayoutOptions, LayoutStore, ManagedStore, PieceMap, ReadStore,
    StoreError, TagStore, WriteStore,
};

use common::{TempDir, rt};

const MIB: usize = 1024 * 1024;

fn data(n: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>(),
    )
}

fn flip(path: &std::path::Path, offset: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[offset] ^= 0x55;
    std::fs::write(path, b).unwrap();
}

#[test]
fn a_map_is_computed_once_reused_and_derived_again_when_its_file_is_damaged() {
    let tmp = TempDir::new("layout-maps");
    rt().block_on(async {
        let store = LayoutStore::open_with(tmp.path(), &LayoutOptions::create())
            .await
            .unwrap();
        let bytes = data(3 * MIB + 5, 1);
        let desc = Descriptor::of(media_types::OCI_LAYER_GZIP, &bytes);
        store.push_bytes(&desc, bytes.clone()).await.unwrap();
        let cache = store.piece_map_path(&desc.digest);
        assert!(!cache.exists());

        let map = store.piece_map(&desc.digest).await.unwrap();
        let expected = PieceMap::compute(&bytes[..], desc.digest.clone(), desc.size).unwrap();
        assert_eq!(map, expected);
        assert_eq!(map.count(), 4);
        let sealed = std::fs::read(&cache).unwrap();
        // The trait's view: the same trusted map.
        assert_eq!(
            store.trusted_piece_map(&desc).await.unwrap(),
            Some(map.clone())
        );

        // Reused: with the blob's bytes damaged on disk, computing would fail verification,
        // so a map returned now comes from the cache.
        let blob = store.blob_path(&desc.digest);
        flip(&blob, 10);
        assert_eq!(store.piece_map(&desc.digest).await.unwrap(), map);
        flip(&blob, 10);

        // A flipped byte in the cache file: its seal fails, the map is derived again and the
        // file rewritten.
        flip(&cache, sealed.len() - 20);
        assert_eq!(store.piece_map(&desc.digest).await.unwrap(), map);
        assert_eq!(std::fs::read(&cache).unwrap(), sealed);

        // A truncated file, and garbage: derived again.
        std::fs::write(&cache, &sealed[..sealed.len() / 2]).unwrap();
        assert_eq!(store.piece_map(&desc.digest).await.unwrap(), map);
        std::fs::write(&cache, b"not a map").unwrap();
        assert_eq!(store.piece_map(&desc.digest).await.unwrap(), map);
        assert_eq!(std::fs::read(&cache).unwrap(), sealed);

        // Another blob's map, well sealed, under this blob's name: derived again.
        let other = data(MIB, 2);
        let other_desc = Descriptor::of(media_types::OCI_LAYER_GZIP, &other);
        store.push_bytes(&other_desc, other).await.unwrap();
        store.piece_map(&other_desc.digest).await.unwrap();
        std::fs::copy(store.piece_map_path(&other_desc.digest), &cache).unwrap();
        assert_eq!(store.piece_map(&desc.digest).await.unwrap(), map);
        assert_eq!(std::fs::read(&cache).unwrap(), sealed);

        // No temporary files left behind by the rewrites.
        let tmp_files = std::fs::read_dir(tmp.path().join(".oci-rs/tmp"))
            .unwrap()
            .count();
        assert_eq!(tmp_files, 0);
    });
}

#[test]
fn nothing_is_cached_for_a_corrupt_blob_a_missing_one_or_a_read_only_layout() {
    let tmp = TempDir::new("layout-maps-bad");
    rt().block_on(async {
        let store = LayoutStore::open_with(tmp.path(), &LayoutOptions::create())
            .await
            .unwrap();
        let bytes = data(2 * MIB, 3);
        let desc = Descriptor::of(media_types::OCI_LAYER_GZIP, &bytes);
        store.push_bytes(&desc, bytes.clone()).await.unwrap();
        flip(&store.blob_path(&desc.digest), MIB + 1);
        let e = store.piece_map(&desc.digest).await.unwrap_err();
        assert!(matches!(e, StoreError::Verify(_)), "{e:?}");
        assert!(!store.piece_map_path(&desc.digest).exists());
        flip(&store.blob_path(&desc.digest), MIB + 1);

        let absent = oci_digest::Algorithm::Sha256.hash(b"absent");
        assert!(store.piece_map(&absent).await.unwrap_err().is_not_found());

        let ro = LayoutStore::open_with(tmp.path(), &LayoutOptions::read_only())
            .await
            .unwrap();
        let map = ro.piece_map(&desc.digest).await.unwrap();
        assert_eq!(map.digest(), &desc.digest);
        assert!(!ro.piece_map_path(&desc.digest).exists());
    });
}

#[test]
fn maps_go_with_their_blobs_and_fsck_is_clean_beside_them() {
    let tmp = TempDir::new("layout-maps-gc");
    rt().block_on(async {
        let store = LayoutStore::open_with(tmp.path(), &LayoutOptions::create())
            .await
            .unwrap();
        // A tagged image (its layer's map is kept) and a loose blob (collected with its map).
        let img = oci_store::testing::image(4, 1, MIB + 3);
        oci_store::testing::push_image(&store, &img).await.unwrap();
        store.tag(img.root(), "v1").await.unwrap();
        let layer_desc = img.blobs[0].desc.clone();
        let loose = data(MIB / 2, 5);
        let loose_desc = Descriptor::of(media_types::OCI_LAYER_GZIP, &loose);
        store.push_bytes(&loose_desc, loose).await.unwrap();
        let deleted = data(MIB / 4, 6);
        let deleted_desc = Descriptor::of(media_types::OCI_LAYER_GZIP, &deleted);
        store.push_bytes(&deleted_desc, deleted).await.unwrap();
        for d in [&layer_desc, &loose_desc, &deleted_desc] {
            store.piece_map(&d.digest).await.unwrap();
            assert!(store.piece_map_path(&d.digest).is_file());
        }

        // fsck: the cache is not content, and not corruption.
        let fsck = store.fsck(&FsckOptions::default()).await.unwrap();
        assert!(
            fsck.corrupt.is_empty() && fsck.missing.is_empty(),
            "{fsck:?}"
        );
        assert!(fsck.skipped.is_empty(), "{fsck:?}");

        // delete: the map goes with the blob.
        store.delete(&deleted_desc.digest).await.unwrap();
        assert!(!store.piece_map_path(&deleted_desc.digest).exists());

        // A map left by another process for a blob gone since: a collection drops it too.
        let gone = data(1000, 7);
        let gone_desc = Descriptor::of(media_types::OCI_LAYER_GZIP, &gone);
        store.push_bytes(&gone_desc, gone).await.unwrap();
        store.piece_map(&gone_desc.digest).await.unwrap();
        std::fs::remove_file(store.blob_path(&gone_desc.digest)).unwrap();

        let gc = GcOptions::default().with_min_age(std::time::Duration::ZERO);
        let mut dry = gc.clone();
        dry.dry_run = true;
        let planned = store.gc(&dry).await.unwrap();
        let mut expected = vec![loose_desc.digest.clone(), gone_desc.digest.clone()];
        expected.sort();
        assert_eq!(planned.piece_maps, expected);
        assert!(store.piece_map_path(&loose_desc.digest).is_file());
        assert!(store.piece_map_path(&gone_desc.digest).is_file());

        let done = store.gc(&gc).await.unwrap();
        assert_eq!(done.piece_maps, expected);
        assert!(done.removed.iter().any(|r| r.digest == loose_desc.digest));
        assert!(!store.piece_map_path(&loose_desc.digest).exists());
        assert!(!store.piece_map_path(&gone_desc.digest).exists());
        assert!(store.piece_map_path(&layer_desc.digest).is_file());
        let again = store.gc(&gc).await.unwrap();
        assert!(again.piece_maps.is_empty(), "{again:?}");

        // fsck --repair removes a corrupt blob, and its map with it.
        let fsck = store.fsck(&FsckOptions::default()).await.unwrap();
        assert!(
            fsck.corrupt.is_empty() && fsck.missing.is_empty(),
            "{fsck:?}"
        );
        flip(&store.blob_path(&layer_desc.digest), 7);
        let fsck = store.fsck(&FsckOptions::repair()).await.unwrap();
        assert_eq!(fsck.removed, vec![layer_desc.digest.clone()]);
        assert!(!store.piece_map_path(&layer_desc.digest).exists());
    });
}

#[test]
fn a_link_in_place_of_the_cache_directory_is_refused() {
    let tmp = TempDir::new("layout-maps-link");
    let outside = TempDir::new("layout-maps-outside");
    rt().block_on(async {
        let store = LayoutStore::open_with(tmp.path(), &LayoutOptions::create())
            .await
            .unwrap();
        let bytes = data(5000, 8);
        let desc = Descriptor::of(media_types::OCI_LAYER_GZIP, &bytes);
        store.push_bytes(&desc, bytes).await.unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join(".oci-rs/piece-maps")).unwrap();
        let e = store.piece_map(&desc.digest).await.unwrap_err();
        assert!(matches!(e, StoreError::UnsafeEntry { .. }), "{e:?}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    });
}
