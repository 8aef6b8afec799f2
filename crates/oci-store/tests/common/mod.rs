//! Helpers shared by the integration tests: temporary directories, deterministic content,
//! image builders and a completeness check.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::StreamExt;
use oci_manifest::build::{ImageManifestBuilder, IndexBuilder};
use oci_manifest::{Descriptor, Manifest, Platform, media_types};
use oci_store::{Digest, PushOutcome, ReadStore, StoreError, WriteStore};

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        Self::new_in(&std::env::temp_dir(), name)
    }
    /// A fresh directory under `base` (another file system than the temporary directory's).
    #[allow(dead_code)]
    pub fn new_in(base: &Path, name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = base.join(format!(
            "oci-store-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// xorshift64*: deterministic pseudo-random bytes.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

/// A blob with its descriptor.
#[derive(Clone, Debug)]
pub struct Blob {
    pub desc: Descriptor,
    pub data: Bytes,
}

pub fn blob(media_type: &str, data: impl Into<Bytes>) -> Blob {
    let data = data.into();
    Blob {
        desc: Descriptor::new(
            media_type,
            oci_digest::Algorithm::Sha256.hash(&data),
            data.len() as u64,
        ),
        data,
    }
}

pub fn from_manifest(m: &Manifest) -> Blob {
    Blob {
        desc: m.descriptor(),
        data: m.raw().clone(),
    }
}

/// An image: its blobs in post order (children before parents), the root last.
#[derive(Clone, Debug)]
pub struct Image {
    pub blobs: Vec<Blob>,
}

impl Image {
    pub fn root(&self) -> &Descriptor {
        &self.blobs.last().unwrap().desc
    }
    pub fn digests(&self) -> Vec<Digest> {
        self.blobs.iter().map(|b| b.desc.digest.clone()).collect()
    }
}

/// A single-platform image of `layers` random layers of `layer_size` bytes.
pub fn image(seed: u64, layers: usize, layer_size: usize) -> Image {
    let mut rng = Rng::new(seed);
    let mut blobs = Vec::new();
    for _ in 0..layers {
        blobs.push(blob(media_types::OCI_LAYER_GZIP, rng.bytes(layer_size)));
    }
    let config = blob(
        media_types::OCI_CONFIG,
        format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#),
    );
    let m = ImageManifestBuilder::oci(config.desc.clone())
        .layers(blobs.iter().map(|b| b.desc.clone()))
        .build()
        .unwrap();
    blobs.push(config);
    blobs.push(from_manifest(&m));
    Image { blobs }
}

/// A multi-platform image: one image per platform sharing `shared` (a common base layer), under
/// an index.
pub fn multi_platform(seed: u64, platforms: &[(&str, &str)]) -> Image {
    let base = blob(
        media_types::OCI_LAYER_GZIP,
        Rng::new(seed ^ 0xba5e).bytes(3000),
    );
    let mut blobs = vec![base.clone()];
    let mut entries = Vec::new();
    for (i, (os, arch)) in platforms.iter().enumerate() {
        let own = blob(
            media_types::OCI_LAYER_GZIP,
            Rng::new(seed * 31 + i as u64).bytes(2000 + i),
        );
        let config = blob(
            media_types::OCI_CONFIG,
            format!(r#"{{"architecture":"{arch}","os":"{os}","seed":{seed}}}"#),
        );
        let m = ImageManifestBuilder::oci(config.desc.clone())
            .layers([base.desc.clone(), own.desc.clone()])
            .build()
            .unwrap();
        blobs.push(own);
        blobs.push(config);
        let mb = from_manifest(&m);
        entries.push(mb.desc.clone().with_platform(Platform::new(*os, *arch)));
        blobs.push(mb);
    }
    let idx = IndexBuilder::oci().manifests(entries).build().unwrap();
    blobs.push(from_manifest(&idx));
    Image { blobs }
}

/// Pushes every blob of `img` in post order; returns how many were really written.
pub async fn push_image<S: WriteStore + ?Sized>(
    store: &S,
    img: &Image,
) -> Result<usize, StoreError> {
    let mut written = 0;
    for b in &img.blobs {
        if store.push_bytes(&b.desc, b.data.clone()).await? == PushOutcome::Written {
            written += 1;
        }
    }
    Ok(written)
}

/// Reads the whole graph below `root`, verifying every blob; returns the digests seen.
pub async fn check_complete<S: ReadStore + ?Sized>(
    store: &S,
    root: &Descriptor,
) -> Result<Vec<Digest>, StoreError> {
    let mut seen = Vec::new();
    let mut stack = vec![(root.clone(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        if depth > 16 {
            panic!("graph deeper than 16 below {}", root.digest);
        }
        let mut s = store.fetch(&d).await?;
        let mut body = Vec::new();
        while let Some(c) = s.next().await {
            let c = c.map_err(|source| StoreError::Source {
                digest: d.digest.clone(),
                source,
            })?;
            body.extend_from_slice(&c);
        }
        if d.is_manifest() {
            let m = Manifest::parse(body, Some(d.media_type.as_str())).unwrap();
            for c in m.children() {
                stack.push((c.clone(), depth + 1));
            }
        }
        seen.push(d.digest);
    }
    Ok(seen)
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One entry of [`tree`]: a file's bytes, a link's target, or a directory; with its modification
/// time (links' own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File(Vec<u8>, SystemTime),
    Link(PathBuf, SystemTime),
    Dir(SystemTime),
    Other(SystemTime),
}

/// Every entry under `dir` (links recorded, never followed), so a test can show that nothing in
/// a directory changed.
pub fn tree(dir: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let name = p.strip_prefix(dir).unwrap().display().to_string();
            let modified = meta.modified().unwrap();
            let entry = if meta.is_dir() {
                stack.push(p);
                Entry::Dir(modified)
            } else if meta.file_type().is_symlink() {
                Entry::Link(std::fs::read_link(&p).unwrap(), modified)
            } else if meta.is_file() {
                Entry::File(std::fs::read(&p).unwrap(), modified)
            } else {
                Entry::Other(modified)
            };
            out.insert(name, entry);
        }
    }
    out
}
