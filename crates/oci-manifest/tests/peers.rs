//! Against the real peers: manifests written by umoci and skopeo parse and verify, and what
//! this crate builds, converts and reduces is accepted by skopeo (which checks every digest
//! while copying) with our bytes kept exactly.
//!
//! Needs `umoci` and `skopeo` (`apt-get install umoci skopeo`).
use std::path::{Path, PathBuf};
use std::process::Command;

use oci_manifest::build::{ImageManifestBuilder, IndexBuilder};
use oci_manifest::convert::{Flavor, convert};
use oci_manifest::platform::parse;
use oci_manifest::{
    Descriptor, Manifest, ManifestKind, Platform, annotations, media_types as mt, reduce,
};
use serde_json::Value;

fn tool(name: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {name} ({e}): apt-get install docker-registry skopeo umoci jq apache2-utils"
        )
    });
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "oci-rs-manifest-peers-{}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Layout(PathBuf);
impl Layout {
    fn s(&self) -> &str {
        self.0.to_str().unwrap()
    }
    fn blob(&self, d: &Descriptor) -> PathBuf {
        self.0
            .join("blobs")
            .join(d.digest.algorithm().as_str())
            .join(d.digest.encoded())
    }
    fn index(&self) -> Manifest {
        Manifest::parse(
            std::fs::read(self.0.join("index.json")).unwrap(),
            Some(mt::OCI_INDEX),
        )
        .unwrap()
    }
    fn entry(&self, tag: &str) -> Descriptor {
        self.index()
            .manifests()
            .iter()
            .find(|d| d.annotation(annotations::REF_NAME) == Some(tag))
            .unwrap_or_else(|| panic!("no tag {tag}"))
            .clone()
    }
    /// Reads a manifest and checks it against its descriptor, as a store would.
    fn manifest(&self, d: &Descriptor) -> Manifest {
        let raw = std::fs::read(self.blob(d)).unwrap();
        Manifest::parse_verified(raw, None, d, &Default::default()).unwrap()
    }
    /// Writes our manifest as a blob and tags it in index.json.
    fn put(&self, m: &Manifest, tag: &str) {
        std::fs::write(self.blob(&m.descriptor()), m.raw()).unwrap();
        let path = self.0.join("index.json");
        let mut index: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let entry = m.descriptor().with_annotation(annotations::REF_NAME, tag);
        index["manifests"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::to_value(&entry).unwrap());
        std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
    }
    fn raw_via_skopeo(&self, tag: &str) -> Vec<u8> {
        tool(
            "skopeo",
            &["inspect", "--raw", &format!("oci:{}:{tag}", self.s())],
        )
    }
}

fn umoci_image(layout: &Layout, dir: &Path, tag: &str, arch: &str) {
    let f = dir.join(format!("{tag}.txt"));
    std::fs::write(&f, tag.as_bytes()).unwrap();
    let image = format!("{}:{tag}", layout.s());
    tool("umoci", &["new", "--image", &image]);
    tool(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--architecture",
            arch,
            "--os",
            "linux",
        ],
    );
    tool(
        "umoci",
        &["insert", "--image", &image, f.to_str().unwrap(), "/f.txt"],
    );
}

#[test]
fn peers_accept_what_we_build_convert_and_reduce() {
    let dir = TempDir::new("main");
    let layout = Layout(dir.0.join("lay"));
    tool("umoci", &["init", "--layout", layout.s()]);
    umoci_image(&layout, &dir.0, "amd", "amd64");
    umoci_image(&layout, &dir.0, "arm", "arm64");

    // What umoci wrote parses and verifies; skopeo serves the very same bytes.
    let amd_desc = layout.entry("amd");
    let amd = layout.manifest(&amd_desc);
    assert_eq!(amd.kind(), ManifestKind::OciManifest);
    assert_eq!(layout.raw_via_skopeo("amd"), amd.raw().as_ref());
    let arm = layout.manifest(&layout.entry("arm"));

    // Our own manifest over umoci's blobs, with an annotation: skopeo copies it (verifying
    // every blob) and serves our exact bytes.
    let ours = ImageManifestBuilder::oci(amd.config().unwrap().clone())
        .layers(amd.layers().iter().cloned())
        .annotation("org.example.built-by", "oci-manifest")
        .build()
        .unwrap();
    layout.put(&ours, "ours");
    assert_eq!(layout.raw_via_skopeo("ours"), ours.raw().as_ref());
    let copy = Layout(dir.0.join("copy"));
    tool(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            &format!("oci:{}:ours", layout.s()),
            &format!("oci:{}:ours", copy.s()),
        ],
    );
    assert_eq!(copy.raw_via_skopeo("ours"), ours.raw().as_ref());

    // Converted to Docker schema 2: the same descriptors skopeo writes when it converts.
    // (skopeo 1.9.3 writes Docker manifests into OCI layouts but cannot read them back by
    // tag: it skips non-OCI media types in index.json, so compare with what it writes.)
    let docker = convert(&amd, Flavor::Docker).unwrap().manifest;
    assert_eq!(docker.kind(), ManifestKind::DockerManifest);
    tool(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--format",
            "v2s2",
            &format!("oci:{}:amd", layout.s()),
            &format!("oci:{}:skopeo-docker", copy.s()),
        ],
    );
    let skopeos = copy.manifest(&copy.entry("skopeo-docker"));
    assert_eq!(skopeos.kind(), ManifestKind::DockerManifest);
    assert_eq!(docker.children(), skopeos.children());
    // And back to OCI: the descriptors umoci wrote.
    let back = convert(&skopeos, Flavor::Oci).unwrap().manifest;
    assert_eq!(back.children(), amd.children());

    // A multi-platform index of both, then reduced to arm64: skopeo copies all of each.
    let platform = |arch: &str| Platform::new("linux", arch);
    let index = IndexBuilder::oci()
        .manifest(amd.descriptor().with_platform(platform("amd64")))
        .manifest(arm.descriptor().with_platform(platform("arm64")))
        .annotation("org.opencontainers.image.created", "2024-01-01T00:00:00Z")
        .build()
        .unwrap();
    layout.put(&index, "multi");
    let reduced = reduce(&index, &[parse("linux/aarch64").unwrap()]).unwrap();
    assert_eq!(
        reduced.references,
        vec![arm.descriptor().with_platform(platform("arm64"))]
    );
    layout.put(&reduced.index, "arm-only");
    for tag in ["multi", "arm-only"] {
        tool(
            "skopeo",
            &[
                "--insecure-policy",
                "copy",
                "--all",
                "--preserve-digests",
                &format!("oci:{}:{tag}", layout.s()),
                &format!("oci:{}:{tag}", copy.s()),
            ],
        );
        let m = Manifest::parse(copy.raw_via_skopeo(tag), None).unwrap();
        assert!(m.is_index());
    }
    assert_eq!(
        copy.raw_via_skopeo("arm-only"),
        reduced.index.raw().as_ref()
    );
    // skopeo picks from our index the way we do.
    let picked: Value = serde_json::from_slice(&tool(
        "skopeo",
        &[
            "--override-arch",
            "arm64",
            "inspect",
            &format!("oci:{}:multi", layout.s()),
        ],
    ))
    .unwrap();
    let ours_pick = oci_manifest::platform::select(&index, &parse("linux/arm64").unwrap()).unwrap();
    let ours_pick = layout.manifest(ours_pick);
    assert_eq!(picked["Architecture"], "arm64");
    let layers: Vec<&str> = ours_pick
        .layers()
        .iter()
        .map(|l| l.digest.as_str())
        .collect();
    assert_eq!(picked["Layers"], serde_json::json!(layers));
}
