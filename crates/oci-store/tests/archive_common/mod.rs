//! Helpers of the archive tests: real container images (tar layers, gzip-compressed, a
//! configuration whose diff IDs and history are right), the peers (skopeo, umoci), and small
//! tar builders for hostile archives.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use oci_manifest::build::ImageManifestBuilder;
use oci_manifest::{Descriptor, Manifest, media_types as mt};
use oci_store::testing::{Blob, Image, Rng, blob, from_manifest};
use oci_store::{Algorithm, Digest};

/// What to install when a peer is missing.
pub const INSTALL: &str = "apt-get install docker-registry skopeo umoci jq apache2-utils";

/// Fails naming the package when `tool` is not on PATH.
pub fn require(tool: &str) {
    if Command::new(tool).arg("--version").output().is_err() {
        panic!("`{tool}` is needed by these tests and was not found on PATH: {INSTALL}");
    }
}

/// Runs `cmd`, panicking with its output when it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
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

/// `skopeo --insecure-policy ARGS`.
pub fn skopeo(args: &[&str]) -> String {
    require("skopeo");
    let mut c = Command::new("skopeo");
    c.arg("--insecure-policy").args(args);
    run(&mut c)
}

/// `skopeo --insecure-policy ARGS` that must fail; returns stderr.
pub fn skopeo_fails(args: &[&str]) -> String {
    require("skopeo");
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        !out.status.success(),
        "skopeo {args:?} succeeded but must fail"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A tar of `files` (name, content), as a layer's uncompressed bytes.
pub fn tar_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A real single-platform image: `layers` gzip layers (each a tar of one file of
/// `layer_size` pseudo-random bytes from `seed`), a configuration with their diff IDs and a
/// history entry each, and an OCI (or Docker) manifest. Blobs are `[layers.., config,
/// manifest]`; also returns the diff IDs.
pub fn real_image(
    seed: u64,
    layers: usize,
    layer_size: usize,
    docker: bool,
) -> (Image, Vec<Digest>) {
    let mut rng = Rng::new(seed);
    let layer_type = if docker {
        mt::DOCKER_LAYER_GZIP
    } else {
        mt::OCI_LAYER_GZIP
    };
    let mut blobs = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..layers {
        let tar = tar_of(&[(&format!("file-{seed}-{i}"), rng.bytes(layer_size))]);
        diff_ids.push(Algorithm::Sha256.hash(&tar));
        blobs.push(blob(layer_type, gzip(&tar)));
    }
    let history: Vec<String> = (0..layers)
        .map(|i| {
            format!(
                r#"{{"created":"2024-01-0{}T00:00:00Z","created_by":"layer {i}"}}"#,
                (i % 9) + 1
            )
        })
        .collect();
    let ids: Vec<String> = diff_ids.iter().map(|d| format!("\"{d}\"")).collect();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["SEED={seed}"]}},"rootfs":{{"type":"layers","diff_ids":[{}]}},"history":[{}]}}"#,
        ids.join(","),
        history.join(",")
    );
    let config = blob(
        if docker {
            mt::DOCKER_CONFIG
        } else {
            mt::OCI_CONFIG
        },
        config,
    );
    let builder = if docker {
        ImageManifestBuilder::docker(config.desc.clone())
    } else {
        ImageManifestBuilder::oci(config.desc.clone())
    };
    let m = builder
        .layers(blobs.iter().map(|b| b.desc.clone()))
        .build()
        .unwrap();
    blobs.push(config);
    blobs.push(from_manifest(&m));
    (Image { blobs }, diff_ids)
}

/// The diff IDs listed by an image configuration.
pub fn config_diff_ids(config: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(config).unwrap();
    v["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect()
}

/// The manifest of `img`.
pub fn manifest_of(img: &Image) -> Manifest {
    let root = img.root();
    let raw = img.blobs.last().unwrap().data.clone();
    Manifest::parse(raw, Some(root.media_type.as_str())).unwrap()
}

/// A raw tar builder for hostile archives: members written exactly as asked.
#[derive(Default)]
pub struct RawTar {
    pub bytes: Vec<u8>,
}

impl RawTar {
    /// A member with an explicit header `size` (which may lie) and `data` written after it.
    pub fn member(
        &mut self,
        name: &[u8],
        ty: tar::EntryType,
        size: u64,
        link: &[u8],
        data: &[u8],
    ) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            let n = name.len().min(100);
            old.name[..n].copy_from_slice(&name[..n]);
            let l = link.len().min(100);
            old.linkname[..l].copy_from_slice(&link[..l]);
        }
        h.set_size(size);
        h.set_entry_type(ty);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        self.bytes.extend_from_slice(h.as_bytes());
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.resize(self.bytes.len() + pad, 0);
        self
    }

    /// A regular file.
    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.member(
            name.as_bytes(),
            tar::EntryType::Regular,
            data.len() as u64,
            b"",
            data,
        )
    }

    /// The end-of-archive marker; the bytes.
    pub fn finish(&mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&[0u8; 1024]);
        std::mem::take(&mut self.bytes)
    }
}

/// A docker-archive (the `docker save` layout of today's skopeo: `<hex>.json`, `<hex>.tar`)
/// of one image of `layers` uncompressed layers, tagged `tags`; returns the archive bytes
/// built with `edit` applied to (name, bytes) members before they are written.
pub fn docker_save(
    seed: u64,
    tags: &[&str],
    edit: impl Fn(&mut Vec<(String, Vec<u8>)>),
) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    let mut diff_ids = Vec::new();
    let mut names = Vec::new();
    for i in 0..2 {
        let tar = tar_of(&[(&format!("f{i}"), rng.bytes(3000))]);
        let d = Algorithm::Sha256.hash(&tar);
        names.push(format!("{}.tar", d.encoded()));
        members.push((format!("{}.tar", d.encoded()), tar));
        diff_ids.push(format!("\"{d}\""));
    }
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    );
    let cd = Algorithm::Sha256.hash(config.as_bytes());
    members.push((format!("{}.json", cd.encoded()), config.into_bytes()));
    let tags: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
    let layers: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    members.push((
        "manifest.json".to_owned(),
        format!(
            r#"[{{"Config":"{}.json","RepoTags":[{}],"Layers":[{}]}}]"#,
            cd.encoded(),
            tags.join(","),
            layers.join(",")
        )
        .into_bytes(),
    ));
    edit(&mut members);
    let mut t = RawTar::default();
    for (name, data) in &members {
        t.file(name, data);
    }
    t.finish()
}

/// Pushes every blob of `img` into `store`.
pub async fn push_all<S: oci_store::WriteStore + ?Sized>(store: &S, img: &Image) {
    for b in &img.blobs {
        store.push_bytes(&b.desc, b.data.clone()).await.unwrap();
    }
}

/// Bytes of `path`.
pub fn read(path: &Path) -> Bytes {
    Bytes::from(std::fs::read(path).unwrap())
}

/// A blob (for building images by hand).
pub fn make_blob(media_type: &str, data: impl Into<Bytes>) -> Blob {
    blob(media_type, data)
}

/// A descriptor's digest as a string.
pub fn d(desc: &Descriptor) -> String {
    desc.digest.to_string()
}
