//! Deterministic content for the cases: pseudo-random bytes, blobs with their descriptors,
//! single- and multi-platform images, and the helpers that push and read them back.

use bytes::Bytes;
use oci_digest::{Algorithm, Digest};
use oci_manifest::build::{ImageManifestBuilder, IndexBuilder};
use oci_manifest::{Descriptor, Manifest, Platform, media_types};

use crate::error::{Result, StoreError};
use crate::traits::{PushOutcome, ReadStore, WriteStore};

/// Deterministic pseudo-random numbers and bytes (xorshift64*): the same seed gives the same
/// content on every run and every machine, so a failure names the same digest again.
///
/// ```
/// use oci_store::testing::Rng;
/// assert_eq!(Rng::new(7).bytes(16), Rng::new(7).bytes(16));
/// assert_ne!(Rng::new(7).bytes(16), Rng::new(8).bytes(16));
/// ```
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 pseudo-random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// `len` pseudo-random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

/// Content with its descriptor (SHA-256 digest, exact size).
#[derive(Clone, Debug)]
pub struct Blob {
    /// The descriptor: media type, digest and size of `data`.
    pub desc: Descriptor,
    /// The content.
    pub data: Bytes,
}

/// A [`Blob`] of `data` with media type `media_type`.
///
/// ```
/// let b = oci_store::testing::blob("text/plain", &b"hello"[..]);
/// assert_eq!(b.desc.size, 5);
/// assert_eq!(b.desc.digest, oci_store::Algorithm::Sha256.hash(b"hello"));
/// ```
pub fn blob(media_type: &str, data: impl Into<Bytes>) -> Blob {
    let data = data.into();
    Blob {
        desc: Descriptor::new(media_type, Algorithm::Sha256.hash(&data), data.len() as u64),
        data,
    }
}

/// The [`Blob`] of a built manifest or index: its exact bytes and descriptor.
pub fn from_manifest(m: &Manifest) -> Blob {
    Blob {
        desc: m.descriptor(),
        data: m.raw().clone(),
    }
}

/// An image (or index): its blobs in post order (children before the manifests that refer to
/// them), the root last, so pushing them in order never stores a manifest before its children.
#[derive(Clone, Debug)]
pub struct Image {
    /// Every blob of the image, each once, the root last.
    pub blobs: Vec<Blob>,
}

impl Image {
    /// The root's descriptor (the manifest or index to tag).
    ///
    /// # Panics
    /// When `blobs` is empty (the builders never make such an image).
    pub fn root(&self) -> &Descriptor {
        &self
            .blobs
            .last()
            .expect("an Image holds at least its root manifest")
            .desc
    }

    /// The digests of every blob, in post order.
    pub fn digests(&self) -> Vec<Digest> {
        self.blobs.iter().map(|b| b.desc.digest.clone()).collect()
    }
}

/// A single-platform image (linux/amd64) of `layers` pseudo-random layers of `layer_size`
/// bytes, a config and a manifest; blobs are `[layers.., config, manifest]`. Different seeds
/// give images that share no content.
///
/// ```
/// let img = oci_store::testing::image(1, 2, 100);
/// assert_eq!(img.blobs.len(), 4);
/// assert_eq!(img.root().media_type, oci_manifest::media_types::OCI_MANIFEST);
/// ```
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
        .expect("the image manifest of generated content builds");
    blobs.push(config);
    blobs.push(from_manifest(&m));
    Image { blobs }
}

/// A multi-platform image: one image per `(os, architecture)`, each of a base layer shared by
/// all of them and a layer of its own, under an OCI index. Blobs are
/// `[base, (own, config, manifest) per platform.., index]`.
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
            .expect("the platform manifest of generated content builds");
        blobs.push(own);
        blobs.push(config);
        let mb = from_manifest(&m);
        entries.push(mb.desc.clone().with_platform(Platform::new(*os, *arch)));
        blobs.push(mb);
    }
    let idx = IndexBuilder::oci()
        .manifests(entries)
        .build()
        .expect("the index of generated content builds");
    blobs.push(from_manifest(&idx));
    Image { blobs }
}

/// Pushes every blob of `img` in post order; returns how many were really written (not
/// [`PushOutcome::AlreadyExists`]).
pub async fn push_image<S: WriteStore + ?Sized>(store: &S, img: &Image) -> Result<usize> {
    let mut written = 0;
    for b in &img.blobs {
        if store.push_bytes(&b.desc, b.data.clone()).await? == PushOutcome::Written {
            written += 1;
        }
    }
    Ok(written)
}

/// Reads the whole graph below `root`, every blob verified, children of every manifest
/// followed; returns the digests seen (a digest reached twice is listed twice).
///
/// # Errors
/// The first fetch, read or verification failure; [`StoreError::InvalidManifest`] when a
/// manifest does not parse.
///
/// # Panics
/// When manifests nest deeper than 16 below `root` (generated content never does).
pub async fn check_complete<S: ReadStore + ?Sized>(
    store: &S,
    root: &Descriptor,
) -> Result<Vec<Digest>> {
    let mut seen = Vec::new();
    let mut stack = vec![(root.clone(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        assert!(depth <= 16, "graph deeper than 16 below {}", root.digest);
        let body = store.fetch_bytes(&d, u64::MAX).await?;
        if d.is_manifest() {
            let m = Manifest::parse(body, Some(d.media_type.as_str())).map_err(|source| {
                StoreError::InvalidManifest {
                    digest: d.digest.clone(),
                    source,
                }
            })?;
            for c in m.children() {
                stack.push((c.clone(), depth + 1));
            }
        }
        seen.push(d.digest);
    }
    Ok(seen)
}
