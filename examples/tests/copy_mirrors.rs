//! Two real registries: an origin `docker-registry` and a plain mirror holding the same
//! repository, whose stored copy of one layer has bytes flipped on disk (distribution serves
//! stored bytes without checking them). A pull through the `copy` example with `--mirror`
//! (and with `--registries-conf`) completes, verifies, and names the mirror and the bad
//! pieces; with a trusted piece map at most two pieces are fetched twice; skopeo pointed at the
//! mirror fails.

mod common;
#[path = "../../crates/oci-distribution-client/tests/common/registry.rs"]
mod registry;

use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use oci_digest::PIECE_MAP_MEDIA_TYPE;
use oci_distribution_client::{Client, ClientConfig, RegistrySource, Repository};
use oci_manifest::build::ImageManifestBuilder;
use oci_manifest::{Descriptor, media_types};
use oci_store::{
    CopyOptions, FetchOptions, LayoutOptions, LayoutStore, MapTrust, MemoryStore,
    PIECE_MAP_BLOB_ANNOTATION, PieceMap, PieceMapArtifact, RangeSource, ReadStore, TagStore,
    WriteStore, copy, fetch_blob,
};
use registry::{TestRegistry, require_tool};

const MIB: usize = 1024 * 1024;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn repo(reg: &TestRegistry) -> Repository {
    repo_named(reg, "team/app")
}

fn repo_named(reg: &TestRegistry, name: &str) -> Repository {
    let mut config = ClientConfig::default().with_plain_http(reg.addr.clone());
    config.docker_config = false;
    Client::new(config)
        .unwrap()
        .repository_by_name(&reg.addr, name)
        .unwrap()
}

/// An image with an 8 MiB layer (eight 1 MiB pieces) of deterministic bytes, tagged `v1`.
async fn image() -> (MemoryStore, Descriptor) {
    let store = MemoryStore::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..8 * MIB)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let layer = Descriptor::of(media_types::OCI_LAYER_GZIP, &data);
    store.push_bytes(&layer, Bytes::from(data)).await.unwrap();
    let config = Bytes::from_static(b"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}");
    let config_desc = Descriptor::of(media_types::OCI_CONFIG, &config);
    store.push_bytes(&config_desc, config).await.unwrap();
    let m = ImageManifestBuilder::oci(config_desc)
        .layer(layer.clone())
        .build()
        .unwrap();
    store
        .push_bytes(&m.descriptor(), m.raw().clone())
        .await
        .unwrap();
    store.tag(&m.descriptor(), "v1").await.unwrap();
    (store, layer)
}

/// One byte in every piece of the 8 MiB layer, at a known offset in each: whichever pieces
/// the scheduler gives the mirror (the sources' speeds decide, on a loaded machine), the first
/// one it completes on each connection is bad.
fn every_piece() -> Vec<u64> {
    (0..8u64).map(|i| i * MIB as u64 + 100 + i).collect()
}

/// Checks a summary line "  bad piece N (bytes A..B) of DIGEST from SOURCE: …": the piece's
/// range is its own, the digest the layer's, the source the mirror.
fn check_bad_line(l: &str, layer: &Descriptor, mirror_name: &str) {
    let n: u64 = between(l, "bad piece ", " ")
        .parse()
        .unwrap_or_else(|_| panic!("{l}"));
    let range = format!("(bytes {}..{})", n * MIB as u64, (n + 1) * MIB as u64);
    assert!(l.contains(&format!("bad piece {n} {range}")), "{l}");
    assert!(
        l.contains(&format!("of {} from {mirror_name}", layer.digest)),
        "{l}"
    );
}

/// Flips one byte at each of `offsets` in the registry's stored copy of `desc`.
fn corrupt_on_disk(reg: &TestRegistry, desc: &Descriptor, offsets: &[u64]) {
    let hex = desc.digest.encoded();
    let path = reg
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for &o in offsets {
        bytes[o as usize] ^= 0xff;
    }
    std::fs::write(&path, bytes).unwrap();
}

/// The bytes of an exact size as the summary prints it: "37 bytes", "1 byte" or
/// "3.0 MiB (3145765 bytes)".
fn exact(s: &str) -> u64 {
    let s = s.trim();
    let n = match s.find('(') {
        Some(open) => &s[open + 1..],
        None => s,
    };
    n.split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a size: {s:?}"))
}

/// The text between `after` and `before` on the first line of `text` holding `after`.
fn between<'a>(text: &'a str, after: &str, before: &str) -> &'a str {
    let line = text
        .lines()
        .find(|l| l.contains(after))
        .unwrap_or_else(|| panic!("no {after:?} in:\n{text}"));
    let rest = &line[line.find(after).unwrap() + after.len()..];
    match rest.find(before) {
        Some(end) if !before.is_empty() => &rest[..end],
        _ => rest,
    }
}

#[test]
fn a_corrupt_mirror_costs_its_pieces_is_named_and_skopeo_fails_on_it() {
    let rt = rt();
    let origin = TestRegistry::start();
    let mirror = TestRegistry::start();
    let (src, layer) = rt.block_on(image());
    for reg in [&origin, &mirror] {
        rt.block_on(copy(
            &src,
            "v1",
            &repo(reg),
            Some("v1"),
            &CopyOptions::default(),
        ))
        .unwrap();
    }
    corrupt_on_disk(&mirror, &layer, &every_piece());
    let mirror_name = format!("{}/team/app", mirror.addr);
    let tmp = common::TempDir::new("copy-mirrors");

    // The copy example with --mirror: completes, verifies, names the mirror and the pieces.
    let out = Command::new(common::example("copy"))
        .args(["--plain-http", "--mirror", &mirror.addr])
        .arg(format!("docker://{}/team/app:v1", origin.addr))
        .arg(format!("oci:{}:v1", tmp.path().join("a").display()))
        .env("HOME", tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "fetching blobs in pieces from: {mirror_name}, {}/team/app",
            origin.addr
        )),
        "{stderr}"
    );
    let bad_lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("  bad piece"))
        .collect();
    assert!(!bad_lines.is_empty(), "{stdout}");
    for l in &bad_lines {
        check_bad_line(l, &layer, &mirror_name);
    }
    assert!(stdout.contains("BAD SOURCE"), "{stdout}");
    // Without a map: at most what the mirror supplied is fetched again.
    let twice = exact(between(&stdout, "fetched twice: ", ""));
    let received = exact(
        between(&stdout, &format!("    {mirror_name}: "), " received")
            .rsplit("pieces), ")
            .next()
            .unwrap(),
    );
    // Besides the mirror's pieces, "fetched twice" also counts what a source had read of a
    // piece the scheduler gave to another (a slow source's piece taken over, on a loaded
    // machine), reported on its own.
    assert!(twice > 0 && twice - timing(&stdout) <= received, "{stdout}");
    // The layout holds the right bytes (the store verified them).
    rt.block_on(async {
        let l = LayoutStore::open_with(tmp.path().join("a"), &LayoutOptions::read_only())
            .await
            .unwrap();
        assert_eq!(
            l.fetch_bytes(&layer, u64::MAX).await.unwrap(),
            src.fetch_bytes(&layer, u64::MAX).await.unwrap()
        );
    });

    // The same through a registries.conf, as skopeo and podman users write it.
    let conf = tmp.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nprefix = \"{o}\"\ninsecure = true\n\n[[registry.mirror]]\nlocation = \"{m}\"\ninsecure = true\n",
            o = origin.addr,
            m = mirror.addr
        ),
    )
    .unwrap();
    let out = Command::new(common::example("copy"))
        .args(["--plain-http", "--registries-conf"])
        .arg(&conf)
        .arg(format!("docker://{}/team/app:v1", origin.addr))
        .arg(format!("oci:{}:v1", tmp.path().join("b").display()))
        .env("HOME", tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("from {mirror_name}")), "{stdout}");

    // With a trusted map (made from the origin's verified bytes): every piece checked as it
    // arrives, the mirror's bad pieces replaced, at most two pieces' worth fetched twice.
    rt.block_on(async {
        let data = src.fetch_bytes(&layer, u64::MAX).await.unwrap();
        let map = PieceMap::compute(&data[..], layer.digest.clone(), layer.size).unwrap();
        let piece = map.layout().piece_length();
        let sources: Vec<Arc<dyn RangeSource>> = vec![
            Arc::new(RegistrySource::new(repo(&mirror))),
            Arc::new(RegistrySource::new(repo(&origin))),
        ];
        let dst = LayoutStore::open_with(tmp.path().join("c"), &LayoutOptions::create())
            .await
            .unwrap();
        let report = fetch_blob(
            &dst,
            "with-map",
            &layer,
            &sources,
            &FetchOptions::default().with_map(map, MapTrust::Trusted),
        )
        .await
        .unwrap();
        assert_eq!(dst.fetch_bytes(&layer, u64::MAX).await.unwrap(), data);
        assert!(!report.bad_pieces.is_empty(), "{report:?}");
        for b in &report.bad_pieces {
            assert_eq!(b.source_name, mirror_name);
            assert_eq!(b.range.start, b.index * piece, "{b}");
        }
        assert!(report.sources[0].quarantined, "{report:?}");
        assert!(
            report.bytes_refetched - report.bytes_taken_over - report.bytes_read_ahead <= 2 * piece,
            "{report:?}"
        );
    });

    // skopeo pointed at the mirror: the layer fails its digest, the copy fails.
    let out = Command::new(require_tool("skopeo"))
        .args(["--insecure-policy", "copy", "--src-tls-verify=false"])
        .arg(format!("docker://{}/team/app:v1", mirror.addr))
        .arg(format!("oci:{}:v1", tmp.path().join("skopeo").display()))
        .env("HOME", tmp.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "skopeo accepted the corrupt mirror: {stderr}"
    );
    // skopeo 1.9.3: "writing blob: happened during read: Digest did not match, expected
    // sha256:<layer>, got sha256:<other>": the whole layer, with no word of which bytes or
    // which source.
    assert!(stderr.contains("Digest did not match"), "{stderr}");
    assert!(
        stderr.contains(&format!("expected {}", layer.digest)),
        "{stderr}"
    );
}

/// Runs the copy example with `args`; panics with its output unless it succeeds; returns its
/// standard output.
fn copy_example(home: &std::path::Path, args: &[String]) -> String {
    let out = Command::new(common::example("copy"))
        .args(args)
        .env("HOME", home)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "copy {args:?}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Pushes `artifact`'s blobs and manifest into `repo` (the client keeps the fallback tag).
async fn push_artifact(repo: &Repository, artifact: &PieceMapArtifact) -> Descriptor {
    for (d, b) in &artifact.blobs {
        repo.push_bytes(d, b.clone()).await.unwrap();
    }
    let desc = artifact.manifest.descriptor();
    repo.push_bytes(&desc, artifact.manifest.raw().clone())
        .await
        .unwrap();
    desc
}

/// Of the bytes fetched twice, those the summary puts down to timing: pieces taken over from
/// slower sources and bytes read ahead by stopped requests (never more than the total).
fn timing(stdout: &str) -> u64 {
    let twice = exact(between(stdout, "fetched twice: ", ";"));
    let taken_over = exact(between(stdout, "taken over from slower sources: ", ";"));
    let read_ahead = exact(between(stdout, "read ahead by stopped requests: ", ""));
    assert!(taken_over + read_ahead <= twice, "{stdout}");
    taken_over + read_ahead
}

#[test]
fn piece_maps_travel_with_the_image_and_a_pull_from_a_corrupt_mirror_uses_them() {
    let rt = rt();
    let origin = TestRegistry::start();
    let mirror = TestRegistry::start();
    let (src, layer) = rt.block_on(image());
    let tmp = common::TempDir::new("copy-piece-maps");
    let home = tmp.path();
    let mirror_name = format!("{}/team/app", mirror.addr);

    // The image in a layout, which makes trusted maps of the blobs it holds.
    let layout_dir = tmp.path().join("src");
    let manifest = rt.block_on(async {
        let l = LayoutStore::open_with(&layout_dir, &LayoutOptions::create())
            .await
            .unwrap();
        copy(&src, "v1", &l, Some("v1"), &CopyOptions::default())
            .await
            .unwrap();
        l.resolve("v1").await.unwrap()
    });

    // copy --piece-maps into the origin: the image, then its maps as one artifact.
    let to_origin = vec![
        "--plain-http".to_owned(),
        "--piece-maps".to_owned(),
        format!("oci:{}:v1", layout_dir.display()),
        format!("docker://{}/team/app:v1", origin.addr),
    ];
    let stdout = copy_example(home, &to_origin);
    let pushed = between(&stdout, "piece maps pushed: artifact ", " for ").to_owned();
    assert!(
        stdout.contains(&format!(
            "piece maps pushed: artifact {pushed} for {}",
            manifest.digest
        )),
        "{stdout}"
    );
    // The maps came from the layout (its own, trusted); the example opens a source layout
    // read-only, so nothing was cached there.
    rt.block_on(async {
        let l = LayoutStore::open(&layout_dir).await.unwrap();
        assert!(!l.piece_map_path(&layer.digest).exists());
    });

    // The registry holds the artifact: distribution 2.8 has no referrers API, so the tag schema
    // fallback names it; its subject is the image manifest; its one map is the layer's, right.
    rt.block_on(async {
        let r = repo(&origin);
        let fallback = r
            .fetch_manifest(&oci_store::referrers_tag(&manifest.digest))
            .await
            .unwrap()
            .parse()
            .unwrap();
        let entries: Vec<&Descriptor> = fallback
            .manifests()
            .iter()
            .filter(|d| d.artifact_type.as_deref() == Some(PIECE_MAP_MEDIA_TYPE))
            .collect();
        assert_eq!(entries.len(), 1, "{fallback:?}");
        assert_eq!(entries[0].digest.to_string(), pushed);
        let listed = r
            .referrers(&manifest.digest, Some(PIECE_MAP_MEDIA_TYPE))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        let artifact = r.fetch_manifest(&pushed).await.unwrap().parse().unwrap();
        assert_eq!(artifact.artifact_type(), Some(PIECE_MAP_MEDIA_TYPE));
        assert_eq!(artifact.subject().unwrap().digest, manifest.digest);
        assert_eq!(artifact.layers().len(), 1);
        let entry = &artifact.layers()[0];
        assert_eq!(
            entry.annotation(PIECE_MAP_BLOB_ANNOTATION),
            Some(layer.digest.as_str())
        );
        let bytes = r.fetch_bytes(entry, 1 << 20).await.unwrap();
        let map = PieceMapArtifact::read_map(entry, bytes).unwrap();
        let data = src.fetch_bytes(&layer, u64::MAX).await.unwrap();
        assert_eq!(
            map,
            PieceMap::compute(&data[..], layer.digest.clone(), layer.size).unwrap()
        );
    });

    // Again: the artifact is there, nothing new is pushed.
    let stdout = copy_example(home, &to_origin);
    assert!(
        stdout.contains(&format!(
            "piece maps of {} already in the destination",
            manifest.digest
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("piece maps pushed"), "{stdout}");

    // The mirror holds the image without maps; its stored layer gets every piece damaged.
    rt.block_on(copy(
        &src,
        "v1",
        &repo(&mirror),
        Some("v1"),
        &CopyOptions::default(),
    ))
    .unwrap();
    corrupt_on_disk(&mirror, &layer, &every_piece());

    // A pull from the mirror and the origin finds the artifact in the origin and checks every
    // piece against its (advisory) map: the mirror's bad pieces are named and replaced, at most
    // two pieces' worth fetched twice.
    let stdout = copy_example(
        home,
        &[
            "--plain-http".to_owned(),
            "--mirror".to_owned(),
            mirror.addr.clone(),
            format!("docker://{}/team/app:v1", origin.addr),
            format!("oci:{}:v1", tmp.path().join("pulled").display()),
        ],
    );
    assert!(
        stdout.contains(&format!(
            "piece map of {}: advisory, from artifact {pushed}",
            layer.digest
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("dropped during the fetch"), "{stdout}");
    let bad_lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("  bad piece"))
        .collect();
    assert!(!bad_lines.is_empty(), "{stdout}");
    for l in &bad_lines {
        check_bad_line(l, &layer, &mirror_name);
    }
    assert!(stdout.contains("BAD SOURCE"), "{stdout}");
    // Pieces a faster source took over from a slower one (on a loaded machine) and bytes a
    // stopped request had read ahead are counted apart: they depend on timing, not on the
    // mirror's bad bytes.
    let twice = exact(between(&stdout, "fetched twice: ", ""));
    assert!(twice - timing(&stdout) <= 2 * MIB as u64, "{stdout}");
    let data = rt.block_on(src.fetch_bytes(&layer, u64::MAX)).unwrap();
    rt.block_on(async {
        let l = LayoutStore::open_with(tmp.path().join("pulled"), &LayoutOptions::read_only())
            .await
            .unwrap();
        assert_eq!(l.fetch_bytes(&layer, u64::MAX).await.unwrap(), data);
    });

    // A hostile artifact (every piece hash wrong, well formed) and a malformed one (its map
    // is not JSON) for the same image in another repository: the malformed one is ignored
    // with a warning naming it, the hostile map costs refetches and is dropped, and the blob
    // is right.
    let (hostile, malformed) = rt.block_on(async {
        for reg in [&origin, &mirror] {
            let r = repo_named(reg, "team/hostile");
            copy(&src, "v1", &r, Some("v1"), &CopyOptions::default())
                .await
                .unwrap();
        }
        let good = PieceMap::compute(&data[..], layer.digest.clone(), layer.size).unwrap();
        let wrong: Vec<[u8; 32]> = good
            .hashes()
            .iter()
            .map(|h| {
                let mut h = *h;
                h[0] ^= 1;
                h
            })
            .collect();
        let wrong = PieceMap::from_parts(layer.digest.clone(), good.layout(), wrong).unwrap();
        let r = repo_named(&origin, "team/hostile");
        let hostile =
            push_artifact(&r, &PieceMapArtifact::build(&manifest, &[wrong]).unwrap()).await;
        let garbage = Bytes::from_static(b"{\"not\": \"a map\"}");
        let entry = Descriptor::of(PIECE_MAP_MEDIA_TYPE, &garbage)
            .with_annotation(PIECE_MAP_BLOB_ANNOTATION, layer.digest.as_str());
        r.push_bytes(&entry, garbage).await.unwrap();
        let m = ImageManifestBuilder::artifact(PIECE_MAP_MEDIA_TYPE)
            .layer(entry)
            .subject(manifest.clone())
            .annotation("purpose", "malformed")
            .build()
            .unwrap();
        let malformed = m.descriptor();
        r.push_bytes(&malformed, m.raw().clone()).await.unwrap();
        (hostile, malformed)
    });
    let stdout = copy_example(
        home,
        &[
            "--plain-http".to_owned(),
            "--mirror".to_owned(),
            mirror.addr.clone(),
            format!("docker://{}/team/hostile:v1", origin.addr),
            format!("oci:{}:v1", tmp.path().join("hostile").display()),
        ],
    );
    assert!(
        stdout.contains(&format!(
            "piece map of {}: advisory, from artifact {}",
            layer.digest, hostile.digest
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "piece map of {} dropped during the fetch",
            layer.digest
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "piece-map artifact {} ignored: ",
            malformed.digest
        )),
        "{stdout}"
    );
    rt.block_on(async {
        let l = LayoutStore::open_with(tmp.path().join("hostile"), &LayoutOptions::read_only())
            .await
            .unwrap();
        assert_eq!(l.fetch_bytes(&layer, u64::MAX).await.unwrap(), data);
    });

    // skopeo ignores referrers: inspecting and copying the image with its artifact still work.
    let skopeo = require_tool("skopeo");
    let out = Command::new(&skopeo)
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{}/team/app:v1", origin.addr))
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        oci_store::Algorithm::Sha256.hash(&out.stdout),
        manifest.digest
    );
    let out = Command::new(&skopeo)
        .args(["--insecure-policy", "copy", "--src-tls-verify=false"])
        .arg(format!("docker://{}/team/app:v1", origin.addr))
        .arg(format!("oci:{}:v1", tmp.path().join("skopeo").display()))
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // skopeo writes its own manifest (and, as the test layer is not really gzip, compresses
    // it): an image is there under the tag, with one layer.
    rt.block_on(async {
        let l = LayoutStore::open(tmp.path().join("skopeo")).await.unwrap();
        let copied = l.resolve("v1").await.unwrap();
        assert_eq!(l.fetch_manifest(&copied).await.unwrap().layers().len(), 1);
    });
}
