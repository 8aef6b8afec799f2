//! The sample image shipped with the examples: a small multi-platform OCI image layout, made
//! deterministically (the same bytes on every run), so it can be committed and regenerated.
//!
//! Three platforms (`linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`), each an image manifest
//! with a config and two uncompressed tar layers: one shared by all three (transferred once by
//! a copy) and one of its own. Tagged [`TAG`] in the layout.

use std::path::Path;

use bytes::Bytes;
use oci_manifest::build::{ImageManifestBuilder, IndexBuilder};
use oci_manifest::{Descriptor, Manifest, Platform, media_types};
use oci_store::{LayoutOptions, LayoutStore, TagStore, WriteStore};

/// The tag of the sample image in its layout.
pub const TAG: &str = "sample";

/// The directory of the committed sample layout (beside this crate's manifest).
pub fn committed_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample")
}

/// The platforms of the sample, in index order.
pub fn platforms() -> Vec<Platform> {
    vec![
        Platform::new("linux", "amd64"),
        Platform::new("linux", "arm64").with_variant("v8"),
        Platform::new("linux", "arm").with_variant("v7"),
    ]
}

/// A ustar archive of `files` (path, content), with fixed owner, mode and time.
pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        let mut h = [0u8; 512];
        let put = |h: &mut [u8; 512], at: usize, len: usize, s: &[u8]| {
            h[at..at + s.len().min(len)].copy_from_slice(&s[..s.len().min(len)]);
        };
        put(&mut h, 0, 100, name.as_bytes());
        put(&mut h, 100, 8, b"0000644\0");
        put(&mut h, 108, 8, b"0000000\0");
        put(&mut h, 116, 8, b"0000000\0");
        put(&mut h, 124, 12, format!("{:011o}\0", data.len()).as_bytes());
        // 2024-01-01T00:00:00Z
        put(
            &mut h,
            136,
            12,
            format!("{:011o}\0", 1_704_067_200u64).as_bytes(),
        );
        put(&mut h, 148, 8, b"        ");
        h[156] = b'0';
        put(&mut h, 257, 8, b"ustar\x0000");
        put(&mut h, 265, 32, b"root");
        put(&mut h, 297, 32, b"root");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        put(&mut h, 148, 8, format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

/// Deterministic filler text of `n` bytes (so layers are not trivially tiny).
fn filler(seed: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut x: u32 = seed.bytes().fold(2_166_136_261, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let word = [
            "oci", "layer", "blob", "digest", "index", "manifest", "tag", "copy",
        ][(x % 8) as usize];
        out.extend_from_slice(word.as_bytes());
        out.push(if x.is_multiple_of(11) { b'\n' } else { b' ' });
    }
    out.truncate(n);
    out
}

/// Every blob and manifest of the sample, children before parents, and the index last.
pub fn contents() -> Result<(Vec<(Descriptor, Bytes)>, Manifest), oci_manifest::ManifestError> {
    let mut out = Vec::new();
    let base = Bytes::from(tar(&[
        ("etc/os-release", b"NAME=\"oci-rs sample\"\nID=sample\n"),
        ("usr/share/doc/sample.txt", &filler("base", 24 * 1024)),
    ]));
    let base_desc = Descriptor::of(media_types::OCI_LAYER_TAR, &base);
    out.push((base_desc.clone(), base));
    let mut entries = Vec::new();
    for p in platforms() {
        let hello = format!("hello from {p}\n");
        let own = Bytes::from(tar(&[
            ("hello.txt", hello.as_bytes()),
            ("data.txt", &filler(&p.to_string(), 8 * 1024)),
        ]));
        let own_desc = Descriptor::of(media_types::OCI_LAYER_TAR, &own);
        let mut config = serde_json::json!({
            "architecture": p.architecture,
            "os": p.os,
            "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/cat", "/hello.txt"], "Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [base_desc.digest.to_string(), own_desc.digest.to_string()]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "oci-rs make_sample"}],
        });
        if let Some(v) = &p.variant {
            config["variant"] = serde_json::Value::String(v.clone());
        }
        let config = Bytes::from(config.to_string());
        let config_desc = Descriptor::of(media_types::OCI_CONFIG, &config);
        let m = ImageManifestBuilder::oci(config_desc.clone())
            .layer(base_desc.clone())
            .layer(own_desc.clone())
            .annotation("org.opencontainers.image.title", format!("sample for {p}"))
            .build()?;
        out.push((own_desc, own));
        out.push((config_desc, config));
        out.push((m.descriptor(), m.raw().clone()));
        entries.push(m.descriptor().with_platform(p));
    }
    let index = IndexBuilder::oci()
        .manifests(entries)
        .annotation(
            "org.opencontainers.image.description",
            "oci-rs multi-platform sample",
        )
        .build()?;
    out.push((index.descriptor(), index.raw().clone()));
    Ok((out, index))
}

/// Writes the sample into a fresh OCI layout at `dir` (created; must not hold another layout's
/// content), tagged [`TAG`]. Returns the index.
///
/// # Errors
/// Store errors, with the path or digest involved; manifest build errors.
pub async fn write(dir: &Path) -> Result<Manifest, Box<dyn std::error::Error + Send + Sync>> {
    let (all, index) = contents()?;
    let store = LayoutStore::open_with(dir, &LayoutOptions::create()).await?;
    for (desc, data) in all {
        store.push_bytes(&desc, data).await?;
    }
    store.tag(&index.descriptor(), TAG).await?;
    Ok(index)
}
