//! Piece maps of the blobs a `LayoutStore` holds ([`LayoutStore::piece_map`]): computed from
//! the blob's bytes, which must verify against its digest (so the map is trusted), and cached
//! in `.oci-rs/piece-maps/<alg>/<encoded>.json`.
//!
//! A cache file is *sealed*: its first line is the SHA-256 (64 lowercase hex digits) of the
//! rest, the map as [`PieceMap`] serialises it. Reading one back costs a hash of a few
//! kilobytes, a parse and a check that the map is for this blob and its stored size; a file
//! that fails any of them (a torn or flipped byte, another blob's map) is re-derived from the
//! blob and replaced. The files are written with the store's atomic rewrite (temporary file,
//! fsync, rename, directory fsync) under the store's shared lock, after checking the blob is
//! still there, so a collection (which holds the exclusive lock) never sees a map appear for a
//! blob it is removing; it removes the maps of the blobs it removes and of blobs that are gone
//! ([`GcReport::piece_maps`](crate::GcReport::piece_maps)). `fsck` does not read the cache: a
//! map is data derived from content, never content.

use std::io::BufReader;

use oci_digest::PieceMap;

use super::*;

/// Directory of the cache, in [`STATE_DIR`].
pub(super) const MAPS_DIR: &str = "piece-maps";

/// Largest cache file read: the seal line and a map of [`oci_digest::PieceLayout::MAX_PIECES`]
/// hashes in hex, with room for the other members.
const MAP_RECORD_LIMIT: u64 = 65 + oci_digest::PieceLayout::MAX_PIECES * 67 + 4096;

/// `map`'s cache file contents: the seal line, then the map.
fn seal(map: &PieceMap) -> Result<Vec<u8>> {
    let json =
        serde_json::to_vec(map).map_err(|e| StoreError::backend("serialise a piece map", e))?;
    let mut out = Algorithm::Sha256.hash(&json).encoded().as_bytes().to_vec();
    out.push(b'\n');
    out.extend_from_slice(&json);
    Ok(out)
}

/// The map in a cache file, when its seal holds, it parses, and it is for `digest` of `size`
/// bytes; otherwise why not.
fn unseal(raw: &[u8], digest: &Digest, size: u64) -> std::result::Result<PieceMap, String> {
    let split = raw.iter().position(|b| *b == b'\n').ok_or("no seal line")?;
    let (line, json) = (&raw[..split], &raw[split + 1..]);
    if line != Algorithm::Sha256.hash(json).encoded().as_bytes() {
        return Err("its seal does not match its contents".to_owned());
    }
    let map: PieceMap = serde_json::from_slice(json).map_err(|e| format!("does not parse: {e}"))?;
    map.check_for(digest, size).map_err(|e| e.to_string())?;
    Ok(map)
}

impl LayoutStore {
    /// Where the cached piece map of `digest` lives:
    /// `.oci-rs/piece-maps/<alg>/<encoded>.json` (digests are validated, so this never leaves
    /// the layout).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("oci-store-doc-mappath-{}", std::process::id()));
    /// let store = oci_store::LayoutStore::open_with(&dir, &oci_store::LayoutOptions::create()).await?;
    /// let d = oci_digest::Algorithm::Sha256.hash(b"x");
    /// assert!(store.piece_map_path(&d).ends_with(format!(".oci-rs/piece-maps/sha256/{}.json", d.encoded())));
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub fn piece_map_path(&self, digest: &Digest) -> PathBuf {
        self.inner
            .state
            .join(MAPS_DIR)
            .join(digest.algorithm().as_str())
            .join(format!("{}.json", digest.encoded()))
    }

    /// The piece map of the blob `digest` this layout holds, with the default layout
    /// ([`PieceLayout::for_size`](oci_digest::PieceLayout::for_size)): from the cache when a
    /// sealed, well-formed map for this blob is there, else computed from the blob's bytes
    /// (verified against `digest` while they are hashed: the map is trusted) and cached. A
    /// layout opened read-only computes the map and caches nothing.
    ///
    /// Computing costs one read of the blob and two SHA-256 passes; a cached map costs a read
    /// of its file.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use oci_manifest::Descriptor;
    /// use oci_store::{LayoutOptions, LayoutStore, WriteStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("oci-store-doc-map-{}", std::process::id()));
    /// let store = LayoutStore::open_with(&dir, &LayoutOptions::create()).await?;
    /// let data = Bytes::from(vec![7u8; 3 << 20]);
    /// let desc = Descriptor::of("application/octet-stream", &data);
    /// store.push_bytes(&desc, data.clone()).await?;
    ///
    /// let map = store.piece_map(&desc.digest).await?;   // computed, cached
    /// assert_eq!(map.count(), 3);                        // 1 MiB pieces
    /// assert!(map.check_piece(0, &data[..1 << 20]).is_ok());
    /// assert!(store.piece_map_path(&desc.digest).is_file());
    /// assert_eq!(store.piece_map(&desc.digest).await?, map); // from the cache
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the layout does not hold the blob;
    /// [`StoreError::Verify`] when its bytes do not hash to `digest` (nothing is cached);
    /// I/O errors. A cache file that cannot be written is logged, not an error.
    pub async fn piece_map(&self, digest: &Digest) -> Result<PieceMap> {
        let s = self.clone();
        let d = digest.clone();
        blocking(move || s.piece_map_blocking(&d)).await
    }

    fn piece_map_blocking(&self, digest: &Digest) -> Result<PieceMap> {
        let path = self.blob_path(digest);
        let mut opts = open_options();
        opts.read(true);
        let file = open_regular(&path, &opts, "open")?.ok_or_else(|| not_found(digest))?;
        let size = file.metadata().map_err(ioe("stat", &path))?.len();
        if let Some(map) = self.cached_map_blocking(digest, size)? {
            return Ok(map);
        }
        let cache = self.piece_map_path(digest);
        let map = PieceMap::compute(
            BufReader::with_capacity(READ_CHUNK, file),
            digest.clone(),
            size,
        )
        .map_err(|e| StoreError::io("read", &path, e))?;
        if !self.inner.read_only
            && let Err(e) = self.cache_piece_map(digest, &map)
        {
            tracing::warn!(%digest, path = %cache.display(), error = %e, "cannot cache the piece map");
        }
        Ok(map)
    }

    /// The cached map of `digest`, if a sealed, well-formed one for this blob of `size` bytes is
    /// there (a damaged one is logged and passed over).
    fn cached_map_blocking(&self, digest: &Digest, size: u64) -> Result<Option<PieceMap>> {
        let cache = self.piece_map_path(digest);
        let alg = digest.algorithm().as_str();
        if !check_dirs(&self.inner.root, &[STATE_DIR, MAPS_DIR, alg])? {
            return Ok(None);
        }
        match read_limited(&cache, MAP_RECORD_LIMIT) {
            Ok(Some(raw)) => match unseal(&raw, digest, size) {
                Ok(map) => return Ok(Some(map)),
                Err(why) => {
                    tracing::warn!(%digest, path = %cache.display(), why, "cached piece map unusable; deriving it again");
                }
            },
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%digest, path = %cache.display(), error = %e, "cached piece map unreadable; deriving it again");
            }
        }
        Ok(None)
    }

    /// The cached piece map of the blob `desc`, when [`piece_map`](LayoutStore::piece_map)
    /// made one earlier and its file is sound; `None` otherwise. Never reads or hashes the
    /// blob (a map not cached is not computed).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use oci_manifest::Descriptor;
    /// use oci_store::{LayoutOptions, LayoutStore, WriteStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("oci-store-doc-cached-{}", std::process::id()));
    /// let store = LayoutStore::open_with(&dir, &LayoutOptions::create()).await?;
    /// let data = Bytes::from(vec![3u8; 5000]);
    /// let desc = Descriptor::of("application/octet-stream", &data);
    /// store.push_bytes(&desc, data).await?;
    /// assert!(store.cached_piece_map(&desc).await?.is_none());
    /// let map = store.piece_map(&desc.digest).await?;
    /// assert_eq!(store.cached_piece_map(&desc).await?, Some(map));
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`StoreError::UnsafeEntry`] when the cache's directories are not real directories;
    /// I/O errors reaching them.
    pub async fn cached_piece_map(&self, desc: &Descriptor) -> Result<Option<PieceMap>> {
        let s = self.clone();
        let d = desc.clone();
        blocking(move || s.cached_map_blocking(&d.digest, d.size)).await
    }

    /// Writes `map` to the cache, under the shared lock, if its blob is still there.
    fn cache_piece_map(&self, digest: &Digest, map: &PieceMap) -> Result<()> {
        let sealed = seal(map)?;
        let _g = self.lock(false)?;
        let mut opts = open_options();
        opts.read(true);
        if open_regular(&self.blob_path(digest), &opts, "open")?.is_none() {
            return Ok(());
        }
        let alg = digest.algorithm().as_str();
        check_dirs(&self.inner.root, &[STATE_DIR, MAPS_DIR, alg])?;
        mkdirs(&self.inner.state.join(MAPS_DIR).join(alg))?;
        check_dirs(&self.inner.root, &[STATE_DIR, MAPS_DIR, alg])?;
        atomic_write(&self.tmp_dir()?, &self.piece_map_path(digest), &sealed)
    }

    /// The digests of the cached maps (files named `<encoded>.json` in `piece-maps/<alg>/`);
    /// other entries are left alone.
    pub(super) fn cached_maps(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for alg in Algorithm::ALL {
            if !check_dirs(&self.inner.root, &[STATE_DIR, MAPS_DIR, alg.as_str()])? {
                continue;
            }
            for (name, _, ft) in list_dir(&self.inner.state.join(MAPS_DIR).join(alg.as_str()))? {
                let Some(encoded) = name.strip_suffix(".json") else {
                    continue;
                };
                if let (true, Ok(d)) = (ft.is_file(), Digest::parse(&format!("{alg}:{encoded}"))) {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes the cached map of `digest`, if any (the caller holds a lock).
    pub(super) fn drop_piece_map(&self, digest: &Digest) -> Result<()> {
        if check_dirs(
            &self.inner.root,
            &[STATE_DIR, MAPS_DIR, digest.algorithm().as_str()],
        )? {
            remove_if_exists(&self.piece_map_path(digest))?;
        }
        Ok(())
    }
}
