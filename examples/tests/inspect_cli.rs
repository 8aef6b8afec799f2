//! The `inspect` example as a user runs it, on layouts written by the real umoci and skopeo:
//! tree and JSON output, tag selection, and every exit status.
//!
//! Needs `umoci` and `skopeo` (`apt-get install umoci skopeo`).
mod common;

use common::TempDir;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use oci_digest::Algorithm;
use serde_json::{Value, json};

fn inspect(args: &[&str]) -> Output {
    Command::new(common::example("inspect"))
        .args(args)
        .output()
        .expect("runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tool(name: &str, args: &[&str]) {
    let out = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {name} ({e}): apt-get install docker-registry skopeo umoci jq apache2-utils"
        )
    });
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        text(&out.stderr)
    );
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').expect("digest");
    layout.join("blobs").join(alg).join(hex)
}

/// umoci writes blobs read-only; the tampering tests rewrite some.
fn make_writable(p: &Path) {
    let mut perm = std::fs::metadata(p).expect("stat").permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(p, perm).expect("chmod");
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json")
}

/// A layout with `base` (linux/amd64, 2 layers, by umoci), `docker` (the same image in Docker
/// schema 2, by skopeo), `arm` (linux/arm64, by umoci), and `multi`: an index of both plus an
/// attestation entry, assembled by hand as PEERS.md describes (umoci has no index command).
fn make_layout(dir: &TempDir) -> PathBuf {
    let layout = dir.0.join("lay");
    let l = layout.to_str().expect("utf-8 path");
    let file = dir.0.join("hello.txt");
    std::fs::write(&file, b"hello\n").expect("write");
    let f = file.to_str().expect("utf-8 path");
    tool("umoci", &["init", "--layout", l]);
    tool("umoci", &["new", "--image", &format!("{l}:base")]);
    tool(
        "umoci",
        &["insert", "--image", &format!("{l}:base"), f, "/a.txt"],
    );
    tool(
        "umoci",
        &["insert", "--image", &format!("{l}:base"), f, "/b.txt"],
    );
    tool("umoci", &["new", "--image", &format!("{l}:arm")]);
    tool(
        "umoci",
        &[
            "config",
            "--image",
            &format!("{l}:arm"),
            "--architecture",
            "arm64",
            "--os",
            "linux",
        ],
    );
    tool(
        "umoci",
        &["insert", "--image", &format!("{l}:arm"), f, "/a.txt"],
    );
    tool(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--format",
            "v2s2",
            &format!("oci:{l}:base"),
            &format!("oci:{l}:docker"),
        ],
    );

    let index_path = layout.join("index.json");
    let mut index = read_json(&index_path);
    let entries = index["manifests"].as_array().expect("manifests").clone();
    let by_tag = |t: &str| {
        entries
            .iter()
            .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == t)
            .expect("tag")
            .clone()
    };
    let platform_of = |e: &Value| {
        let m = read_json(&blob(&layout, e["digest"].as_str().expect("digest")));
        let c = read_json(&blob(
            &layout,
            m["config"]["digest"].as_str().expect("digest"),
        ));
        json!({"architecture": c["architecture"], "os": c["os"]})
    };
    let mut kids = Vec::new();
    for t in ["base", "arm"] {
        let e = by_tag(t);
        kids.push(json!({
            "mediaType": e["mediaType"], "digest": e["digest"], "size": e["size"],
            "platform": platform_of(&e),
        }));
    }
    let base = by_tag("base");
    kids.push(json!({
        "mediaType": base["mediaType"], "digest": base["digest"], "size": base["size"],
        "platform": {"architecture": "unknown", "os": "unknown"},
        "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                        "vnd.docker.reference.digest": base["digest"]},
    }));
    let raw = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": kids,
    }))
    .expect("json");
    let d = Algorithm::Sha256.hash(&raw);
    std::fs::write(blob(&layout, d.as_str()), &raw).expect("write index blob");
    index["manifests"]
        .as_array_mut()
        .expect("manifests")
        .push(json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": d.as_str(), "size": raw.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }));
    std::fs::write(&index_path, serde_json::to_vec(&index).expect("json")).expect("write");
    layout
}

#[test]
fn trees_json_and_exit_statuses() {
    let dir = TempDir::new("main");
    let layout = make_layout(&dir);
    let l = layout.to_str().expect("utf-8 path");

    // A single image: manifest, config, two layers.
    let out = inspect(&[&format!("oci:{l}:base")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tree = text(&out.stdout);
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines.len(), 5, "{tree}");
    assert!(lines[1].starts_with("manifest tag=base  sha256:"), "{tree}");
    assert!(
        lines[1].contains("application/vnd.oci.image.manifest.v1+json"),
        "{tree}"
    );
    assert!(lines[2].starts_with("├── config  sha256:"), "{tree}");
    assert!(
        lines[3].starts_with("├── layer  sha256:") && lines[3].contains("tar+gzip"),
        "{tree}"
    );
    assert!(lines[4].starts_with("└── layer  sha256:"), "{tree}");

    // skopeo's Docker schema 2 copy.
    let out = inspect(&[&format!("oci:{l}:docker")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tree = text(&out.stdout);
    assert!(
        tree.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{tree}"
    );
    assert!(
        tree.contains("application/vnd.docker.image.rootfs.diff.tar.gzip"),
        "{tree}"
    );

    // The multi-platform index, as a tree and as JSON.
    let out = inspect(&[&format!("oci:{l}:multi")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tree = text(&out.stdout);
    assert!(tree.contains("├── manifest linux/amd64  sha256:"), "{tree}");
    assert!(tree.contains("├── manifest linux/arm64  sha256:"), "{tree}");
    assert!(
        tree.contains("└── manifest unknown/unknown (attestation-manifest)"),
        "{tree}"
    );
    assert!(tree.contains("│   ├── config  sha256:"), "{tree}");
    let out = inspect(&[&format!("oci:{l}:multi"), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(v["reference"], format!("oci:{l}:multi"));
    let root = &v["root"];
    assert_eq!(root["role"], "index");
    let kids = root["children"].as_array().expect("children");
    assert_eq!(kids.len(), 3);
    assert_eq!(kids[1]["descriptor"]["platform"]["architecture"], "arm64");
    let arm_layers: Vec<&Value> = kids[1]["children"]
        .as_array()
        .expect("children")
        .iter()
        .filter(|c| c["role"] == "layer")
        .collect();
    assert_eq!(arm_layers.len(), 1);
    assert!(root.get("problems").is_none());

    // A layout with a single tag needs no tag; any manifest can be named by digest (here the
    // index tagged `multi`, as an untagged entry would be).
    let single = dir.0.join("single");
    tool(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            &format!("oci:{l}:base"),
            &format!("oci:{}:only", single.display()),
        ],
    );
    let out = inspect(&[&format!("oci:{}", single.display())]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tree = text(&out.stdout);
    assert_eq!(tree.lines().count(), 5, "{tree}");
    assert!(tree.contains("manifest tag=only  sha256:"), "{tree}");
    let multi_digest = v["root"]["descriptor"]["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    let out = inspect(&[&format!("oci:{l}@{multi_digest}"), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let by_digest: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(by_digest["root"]["role"], "index");
    assert_eq!(
        by_digest["root"]["descriptor"]["digest"],
        multi_digest.as_str()
    );
    assert_eq!(by_digest["root"]["children"], v["root"]["children"]);

    // A layout without images. (Not `umoci init`'s: its `"manifests":null` is refused by
    // oci-store as a corrupt index.json.)
    let empty = dir.0.join("empty");
    std::fs::create_dir_all(empty.join("blobs/sha256")).expect("mkdir");
    std::fs::write(
        empty.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("write");
    std::fs::write(
        empty.join("index.json"),
        br#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .expect("write");

    // No tag with several images or none, an unknown tag or digest, not a layout, bad
    // reference: status 2.
    for (args, needle) in [
        (
            vec![format!("oci:{l}")],
            // The store lists tags sorted (index.json order before the port to oci-store).
            "name one with oci:PATH:TAG; tags: arm, base, docker, multi",
        ),
        (vec![format!("oci:{l}:nope")], "no image tagged \"nope\""),
        (
            vec![format!("oci:{l}@sha256:{}", "0".repeat(64))],
            "no content sha256:0000",
        ),
        (
            vec![format!("oci:{}", empty.display())],
            "holds no tagged image",
        ),
        (
            vec![format!("oci:{}", dir.0.display())],
            "not an OCI image layout",
        ),
        (
            vec![format!("docker://{l}")],
            "expected oci:PATH[:TAG|@DIGEST]",
        ),
        (vec![], "required arguments were not provided"),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = inspect(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn missing_and_tampered_content_is_reported_with_status_1() {
    let dir = TempDir::new("bad");
    let layout = make_layout(&dir);
    let l = layout.to_str().expect("utf-8 path");
    let index = read_json(&layout.join("index.json"));
    let entry = |t: &str| {
        index["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == t)
            .expect("tag")
            .clone()
    };
    // Remove the last layer of `base`; rewrite the bytes of `arm`'s manifest, same size.
    let base = read_json(&blob(
        &layout,
        entry("base")["digest"].as_str().expect("digest"),
    ));
    let last_layer = base["layers"][1]["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    std::fs::remove_file(blob(&layout, &last_layer)).expect("remove layer");
    let arm_digest = entry("arm")["digest"].as_str().expect("digest").to_owned();
    let arm_path = blob(&layout, &arm_digest);
    let mut raw = std::fs::read(&arm_path).expect("read");
    let at = raw
        .iter()
        .position(|&b| b == b'2')
        .expect("a '2' (schemaVersion)");
    raw[at] = b'3';
    make_writable(&arm_path);
    std::fs::write(&arm_path, &raw).expect("tamper");
    // Grow `base`'s config by a byte.
    let config = base["config"]["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    let config_path = blob(&layout, &config);
    make_writable(&config_path);
    let mut raw = std::fs::read(&config_path).expect("read");
    raw.push(b'\n');
    std::fs::write(&config_path, &raw).expect("grow");

    let out = inspect(&[&format!("oci:{l}:multi")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let tree = text(&out.stdout);
    let missing: Vec<&str> = tree.lines().filter(|l| l.contains("!! missing")).collect();
    // The layer is listed under `base` and under the attestation entry that repeats it.
    assert_eq!(missing.len(), 2, "{tree}");
    assert!(missing.iter().all(|l| l.contains(&last_layer)), "{tree}");
    assert!(
        tree.contains(&format!("manifest digest mismatch: expected {arm_digest}")),
        "{tree}"
    );
    let wrong_size: Vec<&str> = tree
        .lines()
        .filter(|l| l.contains("!! size mismatch: descriptor says"))
        .collect();
    assert_eq!(wrong_size.len(), 2, "{tree}");
    assert!(
        wrong_size
            .iter()
            .all(|l| l.contains("config") && l.contains(&config)),
        "{tree}"
    );
    assert!(text(&out.stderr).contains("incomplete or inconsistent"));

    // The tampered manifest named by its digest: the store's verification refuses it.
    let out = inspect(&[&format!("oci:{l}@{arm_digest}")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("digest mismatch: expected {arm_digest}")),
        "{err}"
    );
    let out = inspect(&[&format!("oci:{l}:multi"), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON even with problems");
    let problems = v["root"]["children"][1]["problems"]
        .as_array()
        .expect("problems");
    assert!(
        problems[0]
            .as_str()
            .expect("text")
            .contains("digest mismatch")
    );
}
