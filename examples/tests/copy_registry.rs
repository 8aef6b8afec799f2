//! Copies between memory, OCI layouts and the real `docker-registry` (distribution 2.8.2) in
//! every direction, checked by reading back and by skopeo; the reduced-platform push that must
//! survive garbage collection on both sides; and the stale registry whose cache claims blobs
//! its storage lost.
//!
//! The registry harness is the client crate's (`docker-registry` on a free 127.0.0.1 port).

mod common;
#[path = "../../crates/oci-distribution-client/tests/common/registry.rs"]
mod registry;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use oci_distribution_client::{Client, ClientConfig, Repository};
use oci_examples::sample;
use oci_manifest::{Descriptor, Manifest, Platform};
use oci_store::{
    CopyOptions, FsckOptions, GcOptions, LayoutOptions, LayoutStore, ManagedStore, MemoryStore,
    NodeOutcome, ReadStore, TagStore, VerifyMode, copy, copy_leased, walk,
};
use registry::{RegistryOptions, TestRegistry, require_tool, temp_dir};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn repo(reg: &TestRegistry, name: &str) -> Repository {
    let client = Client::new(ClientConfig::default().with_plain_http(reg.addr.clone())).unwrap();
    client.repository_by_name(&reg.addr, name).unwrap()
}

/// Every piece of content below `tag` reads back verified; returns how many there are.
async fn read_all<S: ReadStore + TagStore + ?Sized>(s: &S, tag: &str) -> Vec<Descriptor> {
    let root = s.resolve(tag).await.unwrap();
    let all = walk(s, &root, 8).await.unwrap();
    for d in &all {
        let b = s.fetch_bytes(d, 1 << 30).await.unwrap();
        assert_eq!(b.len() as u64, d.size, "{}", d.digest);
    }
    all
}

fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new(require_tool("skopeo"))
        .arg("--insecure-policy")
        .args(args)
        .output()
        .unwrap()
}

/// `skopeo inspect --raw` of an image: the exact manifest bytes.
fn skopeo_raw(image: &str) -> Vec<u8> {
    let out = skopeo(&["inspect", "--raw", "--tls-verify=false", image]);
    assert!(
        out.status.success(),
        "skopeo inspect {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `skopeo copy --all` of an image into a fresh layout: proves every blob is served.
fn skopeo_pulls_complete(image: &str) -> Result<(), String> {
    let dir = temp_dir("skopeo-pull");
    let out = skopeo(&[
        "copy",
        "--all",
        "-q",
        "--src-tls-verify=false",
        image,
        &format!("oci:{}:x", dir.display()),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn sample_layout() -> LayoutStore {
    LayoutStore::open(sample::committed_path()).await.unwrap()
}

fn sample_index() -> Manifest {
    sample::contents().unwrap().1
}

#[test]
fn copies_in_every_direction_between_memory_layout_and_registry() {
    let reg = TestRegistry::start();
    let index = sample_index();
    rt().block_on(async {
        let src = sample_layout().await;
        // layout -> memory -> registry -> registry (other repository: mounts) -> layout -> memory
        let mem = MemoryStore::new();
        let r = copy(&src, "sample", &mem, None, &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!(r.copied, 11);

        let a = repo(&reg, "team/a");
        let r = copy(&mem, "sample", &a, Some("v1"), &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!((r.copied, r.failed), (11, 0));
        assert_eq!(read_all(&a, "v1").await.len(), 11);
        let image = format!("docker://{}/team/a:v1", reg.addr);
        assert_eq!(skopeo_raw(&image), index.raw().to_vec());
        skopeo_pulls_complete(&image).unwrap();

        let b = repo(&reg, "team/b");
        let r = copy(&a, "v1", &b, None, &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!(r.mounted, 7, "blobs mount between repositories: {r}");
        assert_eq!(r.copied, 4, "manifests are pushed: {r}");
        assert_eq!(r.bytes_mounted + r.bytes_copied, r.total_bytes);
        assert_eq!(read_all(&b, "v1").await.len(), 11);
        skopeo_pulls_complete(&format!("docker://{}/team/b:v1", reg.addr)).unwrap();

        let dir = temp_dir("every-direction");
        let layout = LayoutStore::open_with(&dir, &LayoutOptions::create())
            .await
            .unwrap();
        let r = copy_leased(&b, "v1", &layout, Some("pulled"), &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!(r.copied, 11);
        assert_eq!(read_all(&layout, "pulled").await.len(), 11);
        assert!(
            layout
                .fsck(&FsckOptions::default())
                .await
                .unwrap()
                .is_clean()
        );
        assert_eq!(
            skopeo_raw(&format!("oci:{}:pulled", dir.display())),
            index.raw().to_vec()
        );

        let back = MemoryStore::new();
        copy(
            &b,
            index.digest().as_str(),
            &back,
            Some("x"),
            &CopyOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(back.resolve("x").await.unwrap().digest, *index.digest());

        // One platform, registry -> layout and layout -> registry.
        let opts = CopyOptions::default().with_platform(Platform::new("linux", "arm64"));
        let r = copy_leased(&a, "v1", &layout, Some("arm"), &opts)
            .await
            .unwrap();
        assert_eq!(
            (r.copied, r.skipped),
            (1, 4),
            "reduced index new, the rest there: {r}"
        );
        let reduced =
            Manifest::parse(skopeo_raw(&format!("oci:{}:arm", dir.display())), None).unwrap();
        assert_eq!(reduced.manifests().len(), 1);
        let c = repo(&reg, "team/c");
        let opts = CopyOptions::default().with_platform("linux/arm/v7".parse().unwrap());
        let r = copy(&layout, "pulled", &c, Some("armv7"), &opts)
            .await
            .unwrap();
        assert_eq!(r.copied, 5);
        let raw = skopeo_raw(&format!("docker://{}/team/c:armv7", reg.addr));
        let m = Manifest::parse(raw, None).unwrap();
        assert_eq!(m.manifests().len(), 1);
        assert_eq!(
            m.manifests()[0].platform.as_ref().unwrap().to_string(),
            "linux/arm/v7"
        );
        skopeo_pulls_complete(&format!("docker://{}/team/c:armv7", reg.addr)).unwrap();
        // Into the registry as Docker media types.
        let opts = CopyOptions::default().with_format(Some(oci_manifest::convert::Flavor::Docker));
        copy(&layout, "pulled", &c, Some("docker"), &opts)
            .await
            .unwrap();
        let raw = skopeo_raw(&format!("docker://{}/team/c:docker", reg.addr));
        let m = Manifest::parse(raw, None).unwrap();
        assert_eq!(
            m.media_type(),
            oci_manifest::media_types::DOCKER_MANIFEST_LIST
        );
        skopeo_pulls_complete(&format!("docker://{}/team/c:docker", reg.addr)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn reduced_platform_push_keeps_everything_after_the_temporary_tag_is_gone() {
    let reg = TestRegistry::start();
    rt().block_on(async {
        let origin = repo(&reg, "origin/app");
        copy(
            &sample_layout().await,
            "sample",
            &origin,
            Some("multi"),
            &CopyOptions::default(),
        )
        .await
        .unwrap();
        let dir = temp_dir("reduced-push");
        let local = LayoutStore::open_with(&dir, &LayoutOptions::create())
            .await
            .unwrap();
        // Pull the 3-platform index under a temporary tag, then the arm64 image as its own.
        copy_leased(
            &origin,
            "multi",
            &local,
            Some("tmp"),
            &CopyOptions::default(),
        )
        .await
        .unwrap();
        let arm = CopyOptions::default().with_platform(Platform::new("linux", "arm64"));
        copy_leased(&local, "tmp", &local, Some("arm"), &arm)
            .await
            .unwrap();
        let mirror = repo(&reg, "mirror/app");
        let first = copy(&local, "arm", &mirror, None, &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!(first.copied, 5);
        // The temporary tag goes; GC on both sides.
        local.untag("tmp").await.unwrap();
        let gc = local
            .gc(&GcOptions::default().with_min_age(Duration::ZERO))
            .await
            .unwrap();
        // The original index and the other two platforms (manifest, config, own layer) go.
        assert_eq!(gc.removed.len(), 7, "{gc:?}");
        let out = reg.garbage_collect(false);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Push again: nothing missing, nothing to send.
        let again = copy(&local, "arm", &mirror, None, &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!((again.skipped, again.bytes_copied), (5, 0), "{again}");
        assert_eq!(read_all(&local, "arm").await.len(), 5);
        assert!(
            local
                .fsck(&FsckOptions::default())
                .await
                .unwrap()
                .is_clean()
        );
        assert_eq!(read_all(&mirror, "arm").await.len(), 5);
        assert_eq!(read_all(&origin, "multi").await.len(), 11);
        skopeo_pulls_complete(&format!("docker://{}/mirror/app:arm", reg.addr)).unwrap();
        skopeo_pulls_complete(&format!("docker://{}/origin/app:multi", reg.addr)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// Raw HTTP against the registry: (status, body length received).
fn http(addr: &str, method: &str, path: &str, extra: &str) -> (u16, usize) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json\r\n{extra}\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |p| buf.len() - p - 4);
    (status, body)
}

#[test]
fn stale_registry_lies_are_found_and_repaired_with_verify_existing() {
    let reg = TestRegistry::start_with(RegistryOptions {
        blob_descriptor_cache: true,
        ..RegistryOptions::default()
    });
    let index = sample_index();
    rt().block_on(async {
        let src = sample_layout().await;
        let app = repo(&reg, "stale/app");
        copy(&src, "sample", &app, Some("v1"), &CopyOptions::default())
            .await
            .unwrap();
        // Delete the image's manifest, then collect offline while the server keeps running.
        app.delete_manifest(index.digest()).await.unwrap();
        let out = reg.garbage_collect(true);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // The lies, as seen on the wire: HEAD 200, GET 200 with nothing.
        let layer = &sample::contents().unwrap().0[0].0;
        let path = format!("/v2/stale/app/blobs/{}", layer.digest);
        assert_eq!(http(&reg.addr, "HEAD", &path, "").0, 200);
        let (status, body) = http(&reg.addr, "GET", &path, "");
        assert!(
            status == 200 && body == 0,
            "GET {path}: {status}, {body} bytes"
        );

        // Trusting the registry: blobs are skipped on its word, the manifest PUTs answer 201
        // but the index is not stored (tagging it then finds nothing), and the image is broken.
        let trusting = copy(&src, "sample", &app, Some("v1"), &CopyOptions::default()).await;
        let report = match &trusting {
            Ok(r) => r.clone(),
            Err(oci_store::CopyError::Failed { report, digest, .. }) => {
                assert_eq!(digest.as_ref(), Some(index.digest()), "{trusting:?}");
                (**report).clone()
            }
            Err(e) => panic!("unexpected {e:?}"),
        };
        assert!(report.skipped >= 7, "{report}");
        let image = format!("docker://{}/stale/app:v1", reg.addr);
        let broken = skopeo_pulls_complete(&image);
        assert!(broken.is_err(), "the trusted copy left a broken image");

        // Verifying: every lie found and repaired, the result read back, skopeo pulls it.
        let opts = CopyOptions::default().with_verify(VerifyMode::Range);
        let r = copy(&src, "sample", &app, Some("v1"), &opts).await.unwrap();
        let repaired: Vec<_> = r
            .nodes
            .iter()
            .filter(|n| n.outcome == NodeOutcome::Repaired)
            .map(|n| n.desc.digest.clone())
            .collect();
        assert!(repaired.len() >= 7, "{r}");
        assert!(repaired.contains(&layer.digest));
        assert!(r.verified >= 11, "{r}");
        assert_eq!(read_all(&app, "v1").await.len(), 11);
        skopeo_pulls_complete(&image).unwrap();
        assert_eq!(skopeo_raw(&image), index.raw().to_vec());

        // A manifest the registry lost (deleted, collected) while its cache remembers it.
        let one = &index.manifests()[0];
        app.delete_manifest(&one.digest).await.unwrap();
        app.delete_manifest(index.digest()).await.unwrap();
        let out = reg.garbage_collect(true);
        assert!(out.status.success());
        let opts = CopyOptions::default().with_verify(VerifyMode::Range);
        let r = copy(&src, "sample", &app, Some("v1"), &opts).await.unwrap();
        assert!(r.is_complete(), "{r}");
        let (status, _) = http(
            &reg.addr,
            "GET",
            &format!("/v2/stale/app/manifests/{}", one.digest),
            "",
        );
        assert_eq!(status, 200);
        skopeo_pulls_complete(&image).unwrap();
    });
}

#[test]
fn copy_example_pushes_and_pulls_with_a_registry() {
    let reg = TestRegistry::start();
    let bin = common::example("copy");
    let dir = temp_dir("cli-registry");
    let src = format!("oci:{}:sample", sample::committed_path().display());
    let dst = format!("docker://{}/cli/app:v1", reg.addr);
    let out = Command::new(&bin)
        .args(["--plain-http", "--verify-existing", &src, &dst])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("copied 11"), "{stdout}");
    assert!(stdout.contains("read back to verify"), "{stdout}");
    skopeo_pulls_complete(&dst).unwrap();
    let back = format!("oci:{}:back", dir.join("l").display());
    let out = Command::new(&bin)
        .args(["--plain-http", "--platform", "linux/amd64", &dst, &back])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("copied 5"));
    // The other upload shapes: every blob in one streamed PUT, chunks of 64 KiB (for
    // registries that refuse streamed uploads), and every blob asked with a HEAD first (none
    // with the POST that starts its upload); each gives the image skopeo pulls whole.
    for (repo, opts) in [
        ("cli/put", ["--monolithic-max", "1GiB"]),
        ("cli/chunked", ["--chunked-upload", "64KiB"]),
        ("cli/head", ["--probe-max", "0"]),
    ] {
        let dst = format!("docker://{}/{repo}:v1", reg.addr);
        let out = Command::new(&bin)
            .args(["--plain-http"])
            .args(opts)
            .args([&src, &dst])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{repo}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("copied 11"));
        skopeo_pulls_complete(&dst).unwrap();
    }
    // A missing tag: exit 1, the reference named.
    let missing = format!("docker://{}/cli/app:nope", reg.addr);
    let out = Command::new(&bin)
        .args(["--plain-http", &missing, &back])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cli/app:nope") && err.contains("not found"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A layout at `dir` holding the sample and one referrer of its index: an artifact manifest of
/// `artifact_type` whose one layer (`layer_type`, `payload`) is stored too. Returns the store,
/// the referrer and its layer.
async fn sample_with_referrer(
    dir: &Path,
    artifact_type: &str,
    layer_type: &str,
    payload: &'static [u8],
) -> (LayoutStore, Manifest, Descriptor) {
    use oci_manifest::build::ImageManifestBuilder;
    use oci_store::WriteStore;
    let local = LayoutStore::open_with(dir, &LayoutOptions::create())
        .await
        .unwrap();
    copy_leased(
        &sample_layout().await,
        "sample",
        &local,
        None,
        &CopyOptions::default(),
    )
    .await
    .unwrap();
    let layer = Descriptor::of(layer_type, payload);
    local
        .push_bytes(&layer, bytes::Bytes::from_static(payload))
        .await
        .unwrap();
    let sig = ImageManifestBuilder::artifact(artifact_type)
        .layer(layer.clone())
        .subject(sample_index().descriptor())
        .build()
        .unwrap();
    local
        .push_bytes(&sig.descriptor(), sig.raw().clone())
        .await
        .unwrap();
    (local, sig, layer)
}

#[test]
fn referrers_travel_with_the_image_through_the_tag_schema() {
    use oci_manifest::build::IndexBuilder;
    use oci_store::{WriteStore, referrers_tag};
    let reg = TestRegistry::start();
    let index = sample_index();
    rt().block_on(async {
        // A layout with the sample and a signature of it, listed by the fallback tag.
        let dir = temp_dir("referrers");
        let (local, sig, layer) = sample_with_referrer(
            &dir.join("a"),
            "application/vnd.dev.cosign.artifact.sig.v1+json",
            "application/vnd.dev.cosign.simplesigning.v1+json",
            br#"{"critical":{"image":"sample"}}"#,
        )
        .await;
        let fallback = IndexBuilder::oci()
            .manifest(sig.referrer_descriptor())
            .build()
            .unwrap();
        local
            .push_bytes(&fallback.descriptor(), fallback.raw().clone())
            .await
            .unwrap();
        local
            .tag(&fallback.descriptor(), &referrers_tag(index.digest()))
            .await
            .unwrap();

        // To the registry with referrers: the signature is there and listed.
        let app = repo(&reg, "signed/app");
        let opts = CopyOptions::default().with_referrers(true);
        let r = copy(&local, "sample", &app, None, &opts).await.unwrap();
        assert_eq!(r.referrers.len(), 1, "{r}");
        let listed = app.referrers(index.digest(), None).await.unwrap();
        assert!(
            listed.iter().any(|d| d.digest == *sig.digest()),
            "{listed:?}"
        );
        let raw = skopeo_raw(&format!(
            "docker://{}/signed/app@{}",
            reg.addr,
            sig.digest()
        ));
        assert_eq!(raw, sig.raw().to_vec());

        // Without referrers, another repository gets the image only.
        let plain = repo(&reg, "plain/app");
        copy(&app, "sample", &plain, None, &CopyOptions::default())
            .await
            .unwrap();
        assert!(!plain.exists(sig.digest()).await.unwrap());

        // Back into a fresh layout with referrers: signature, its payload and the fallback tag.
        let back = LayoutStore::open_with(dir.join("b"), &LayoutOptions::create())
            .await
            .unwrap();
        let r = copy_leased(&app, "sample", &back, None, &opts)
            .await
            .unwrap();
        assert_eq!(r.referrers.len(), 1);
        assert!(back.exists(sig.digest()).await.unwrap());
        assert!(back.exists(&layer.digest).await.unwrap());
        let tag = referrers_tag(index.digest());
        let listed = back
            .fetch_manifest(&back.resolve(&tag).await.unwrap())
            .await
            .unwrap();
        assert_eq!(listed.manifests()[0].digest, *sig.digest());
        assert!(back.fsck(&FsckOptions::default()).await.unwrap().is_clean());
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn referrers_kept_as_untagged_index_entries_as_oras_writes_them_reach_the_registry() {
    let reg = TestRegistry::start();
    let index = sample_index();
    let dir = temp_dir("oras-referrers");
    let layout = dir.join("a");
    let (_, sig, _) = rt().block_on(sample_with_referrer(
        &layout,
        "application/vnd.example.sbom",
        "application/spdx+json",
        br#"{"sbom":"sample"}"#,
    ));
    // As oras-go's OCI store keeps it: an untagged index.json entry, no fallback tag.
    let path = layout.join("index.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::to_value(sig.referrer_descriptor()).unwrap());
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();

    let src = format!("oci:{}:sample", layout.display());
    let dst = format!("docker://{}/oras/app:v1", reg.addr);
    let out = Command::new(common::example("copy"))
        .args(["--plain-http", "--referrers", &src, &dst])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    rt().block_on(async {
        let app = repo(&reg, "oras/app");
        let listed = app.referrers(index.digest(), None).await.unwrap();
        assert!(
            listed.iter().any(|d| d.digest == *sig.digest()),
            "{listed:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    });
    let raw = skopeo_raw(&format!("docker://{}/oras/app@{}", reg.addr, sig.digest()));
    assert_eq!(raw, sig.raw().to_vec());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sync_example_mirrors_between_layouts_and_a_registry() {
    let reg = TestRegistry::start();
    let bin = common::example("sync");
    let dir = temp_dir("sync-registry");
    let sample = sample::committed_path();
    let r = &reg.addr;
    // Push twice (the second repository mounts), pull one platform back, and one line whose
    // source does not exist.
    let list = format!(
        "oci:{s}:sample docker://{r}/mirror/one:v1\n\
         oci:{s}:sample docker://{r}/mirror/two:v1\n\
         docker://{r}/mirror/missing:v1 oci:{d}/never:v1\n",
        s = sample.display(),
        d = dir.display()
    );
    std::fs::write(dir.join("list.txt"), list).unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(&bin)
            .current_dir(&dir)
            .args(["--plain-http", "--retry-budget", "1"])
            .args(extra)
            .arg("list.txt")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(&[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("2 of 3 images copied, 1 failed"),
        "{stdout}"
    );
    assert!(stderr.contains("mirror/missing:v1"), "{stderr}");
    skopeo_pulls_complete(&format!("docker://{r}/mirror/one:v1")).unwrap();
    skopeo_pulls_complete(&format!("docker://{r}/mirror/two:v1")).unwrap();

    // Fix the list (the missing image now comes from a pushed one) and run again: the two
    // pushes send nothing, the pull copies one platform.
    let list = format!(
        "oci:{s}:sample docker://{r}/mirror/one:v1\n\
         oci:{s}:sample docker://{r}/mirror/two:v1\n\
         docker://{r}/mirror/two:v1 oci:{d}/back:v1\n",
        s = sample.display(),
        d = dir.display()
    );
    std::fs::write(dir.join("list.txt"), list).unwrap();
    let (code, stdout, stderr) = run(&["--platform", "linux/amd64"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("3 of 3 images copied, 0 failed"),
        "{stdout}"
    );
    for row in stdout.lines().filter(|l| l.contains(" ok ")) {
        let cols: Vec<&str> = row.split_whitespace().collect();
        match cols[0] {
            // Lines 1 and 2: the reduced index is new (one manifest), everything else skipped.
            "1" | "2" => assert_eq!((cols[3], cols[4]), ("1", "4"), "{row}"),
            "3" => assert_eq!((cols[3], cols[4]), ("5", "0"), "{row}"),
            other => panic!("unexpected row {other}: {row}"),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn copy_example_authenticates_with_creds_or_docker_config() {
    let reg = TestRegistry::start_with(RegistryOptions {
        htpasswd: Some(("alice".into(), "s3cret".into())),
        ..RegistryOptions::default()
    });
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join("copy");
    let dir = temp_dir("auth");
    let src = format!("oci:{}:sample", sample::committed_path().display());
    let dst = format!("docker://{}/private/app:v1", reg.addr);
    let empty_config = dir.join("empty");
    std::fs::create_dir_all(&empty_config).unwrap();
    let run_env = |args: &[&str], docker_config: &Path, creds_env: Option<&str>| {
        let mut cmd = Command::new(&bin);
        cmd.env("DOCKER_CONFIG", docker_config)
            .env_remove("OCI_RS_CREDS")
            .args(["--plain-http", "--quiet"])
            .args(args);
        if let Some(c) = creds_env {
            cmd.env("OCI_RS_CREDS", c);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let run = |args: &[&str], docker_config: &Path| run_env(args, docker_config, None);
    // No credentials: refused, the error names the registry's answer; nothing tagged.
    let (code, _, stderr) = run(&[&src, &dst], &empty_config);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("401") || stderr.to_lowercase().contains("unauthorized"),
        "{stderr}"
    );
    // Wrong password: refused too, and the password is not printed.
    let (code, _, stderr) = run(&["--creds", "alice:wrong", &src, &dst], &empty_config);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        !stderr.contains("wrong"),
        "credentials must not be printed: {stderr}"
    );
    // --creds.
    let (code, stdout, stderr) = run(&["--creds", "alice:s3cret", &src, &dst], &empty_config);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("copied 11"), "{stdout}");
    // The same credentials from OCI_RS_CREDS, off the command line (and out of `ps`).
    let dst2 = format!("docker://{}/private/env:v1", reg.addr);
    let (code, stdout, stderr) = run_env(&[&src, &dst2], &empty_config, Some("alice:s3cret"));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("tagged \"v1\""), "{stdout}");
    // A wrong password from the environment is refused, and not printed either.
    let dst3 = format!("docker://{}/private/env-wrong:v1", reg.addr);
    let (code, stdout, stderr) = run_env(&[&src, &dst3], &empty_config, Some("alice:wr0ng"));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        !stdout.contains("wr0ng") && !stderr.contains("wr0ng"),
        "credentials must not be printed: {stdout}{stderr}"
    );
    // --creds wins over the environment.
    let (code, stdout, stderr) = run_env(
        &["--creds", "alice:s3cret", &src, &dst3],
        &empty_config,
        Some("alice:wr0ng"),
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // Docker's config.json.
    let with_auth = dir.join("docker");
    std::fs::create_dir_all(&with_auth).unwrap();
    std::fs::write(
        with_auth.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"YWxpY2U6czNjcmV0"}}}}}}"#,
            reg.addr
        ),
    )
    .unwrap();
    let back = format!("oci:{}:v1", dir.join("back").display());
    let (code, stdout, stderr) = run(&[&dst, &back], &with_auth);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("copied 11"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}
