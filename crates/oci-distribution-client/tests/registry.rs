//! The client against the real `docker-registry` (distribution 2.8.2) and `skopeo`.

mod common;

use common::{random, test_config as config};

use std::process::Command;

use bytes::Bytes;
use common::registry::{RegistryOptions, TestRegistry, remove, require_tool, run, temp_dir};
use futures_util::StreamExt;
use oci_distribution_client::{
    Algorithm, BlobPush, BlobSource, Client, ClientConfig, Credential, Descriptor, Digest, Error,
    Reference, Repository, media_types,
};

fn repo_with(reg: &TestRegistry, cfg: ClientConfig, name: &str) -> Repository {
    Client::new(cfg)
        .expect("client")
        .repository_by_name(&reg.addr, name)
        .expect("repository")
}

fn repo(reg: &TestRegistry, name: &str) -> Repository {
    repo_with(reg, config(&reg.addr), name)
}

fn source(data: &[u8]) -> BlobSource {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

async fn collect(repo: &Repository, desc: &Descriptor) -> Vec<u8> {
    let mut s = repo.fetch_blob(desc).await.expect("open blob");
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.expect("blob chunk"));
    }
    out
}

/// An image: config and layers as bytes, and its manifest bytes.
struct Image {
    config: (Descriptor, Vec<u8>),
    layers: Vec<(Descriptor, Vec<u8>)>,
    manifest: Vec<u8>,
    media_type: &'static str,
}

impl Image {
    fn new(arch: &str, seed: u64, docker: bool) -> Image {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "config": {}, "seed": seed,
        }))
        .expect("json");
        let (cfg_mt, layer_mt, mt) = if docker {
            (
                media_types::DOCKER_CONFIG,
                media_types::DOCKER_LAYER_GZIP,
                media_types::DOCKER_MANIFEST,
            )
        } else {
            (
                media_types::OCI_CONFIG,
                media_types::OCI_LAYER_GZIP,
                media_types::OCI_MANIFEST,
            )
        };
        let config_desc =
            Descriptor::new(cfg_mt, Algorithm::Sha256.hash(&config), config.len() as u64);
        let layers: Vec<(Descriptor, Vec<u8>)> = (0..2)
            .map(|i| {
                let data = random(100_000 + i * 777, seed * 10 + i as u64);
                (
                    Descriptor::new(layer_mt, Algorithm::Sha256.hash(&data), data.len() as u64),
                    data,
                )
            })
            .collect();
        let manifest = serde_json::to_vec_pretty(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": mt,
            "config": config_desc,
            "layers": layers.iter().map(|(d, _)| d).collect::<Vec<_>>(),
        }))
        .expect("json");
        Image {
            config: (config_desc, config),
            layers,
            manifest,
            media_type: mt,
        }
    }

    fn digest(&self) -> Digest {
        Algorithm::Sha256.hash(&self.manifest)
    }

    fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type, self.digest(), self.manifest.len() as u64)
    }

    async fn push(&self, repo: &Repository, tag: Option<&str>) {
        for (d, data) in std::iter::once(&self.config).chain(self.layers.iter()) {
            repo.push_blob(d, source(data)).await.expect("push blob");
        }
        let reference = tag.map_or_else(|| self.digest().to_string(), str::to_owned);
        let d = repo
            .push_manifest(
                &reference,
                self.media_type,
                Bytes::from(self.manifest.clone()),
            )
            .await
            .expect("push manifest");
        assert_eq!(d, self.digest());
    }

    async fn check_pulled(&self, repo: &Repository, reference: &str) {
        let m = repo
            .fetch_manifest(reference)
            .await
            .expect("fetch manifest");
        assert_eq!(m.bytes, self.manifest, "manifest bytes kept exactly");
        assert_eq!(m.descriptor, self.descriptor());
        let parsed = m.parse().expect("parse");
        let config = parsed.config().expect("config");
        assert_eq!(collect(repo, config).await, self.config.1);
        for (l, (d, data)) in parsed.layers().iter().zip(&self.layers) {
            assert_eq!(l, d);
            assert_eq!(collect(repo, l).await, *data);
        }
    }
}

fn index_bytes(images: &[(&Image, &str)]) -> Vec<u8> {
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|(img, arch)| {
            let mut d = serde_json::to_value(img.descriptor()).expect("json");
            d["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
            d
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": manifests,
    }))
    .expect("json")
}

#[tokio::test]
async fn push_and_pull_single_and_multi_platform_images() {
    let reg = TestRegistry::start();
    let app = repo(&reg, "team/app");

    let single = Image::new("amd64", 1, false);
    single.push(&app, Some("single")).await;
    let resolved = app.resolve("single").await.expect("resolve");
    assert_eq!(resolved, single.descriptor());
    single.check_pulled(&app, "single").await;
    single.check_pulled(&app, single.digest().as_str()).await;

    // Docker schema 2 keeps its media type.
    let docker = Image::new("amd64", 2, true);
    docker.push(&app, Some("docker")).await;
    assert_eq!(
        app.resolve("docker").await.expect("resolve").media_type,
        media_types::DOCKER_MANIFEST
    );
    docker.check_pulled(&app, "docker").await;

    // Multi-platform: children by digest, then the index under a tag.
    let amd = Image::new("amd64", 3, false);
    let arm = Image::new("arm64", 4, false);
    amd.push(&app, None).await;
    arm.push(&app, None).await;
    let index = index_bytes(&[(&amd, "amd64"), (&arm, "arm64")]);
    let idx_digest = app
        .push_manifest("multi", media_types::OCI_INDEX, Bytes::from(index.clone()))
        .await
        .expect("push index");
    let resolved = app.resolve("multi").await.expect("resolve index");
    assert_eq!(resolved.digest, idx_digest);
    assert_eq!(resolved.media_type, media_types::OCI_INDEX);
    let fetched = app.fetch_manifest("multi").await.expect("fetch index");
    assert_eq!(fetched.bytes, index);
    let parsed = fetched.parse().expect("parse index");
    let archs: Vec<String> = parsed
        .manifests()
        .iter()
        .map(|d| d.platform.as_ref().expect("platform").architecture.clone())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    amd.check_pulled(&app, parsed.manifests()[0].digest.as_str())
        .await;
    arm.check_pulled(&app, parsed.manifests()[1].digest.as_str())
        .await;

    // The same through a parsed reference.
    let r: Reference = format!("{}/team/app:multi", reg.addr)
        .parse()
        .expect("reference");
    let client = Client::new(config(&reg.addr)).expect("client");
    let via_ref = client.repository(&r).expect("repo");
    assert_eq!(
        via_ref
            .resolve(&r.manifest_reference())
            .await
            .expect("resolve")
            .digest,
        idx_digest
    );

    // Unknown tag: 404 with the registry's code.
    match app.fetch_manifest("nope").await {
        Err(e) => {
            assert!(e.is_not_found(), "{e:?}");
            assert!(
                e.registry_errors()
                    .expect("errors")
                    .has_code("MANIFEST_UNKNOWN"),
                "{e}"
            );
        }
        Ok(m) => panic!("{m:?}"),
    }
}

#[tokio::test]
async fn streamed_chunked_and_monolithic_uploads() {
    let reg = TestRegistry::start();
    let mut cfg = config(&reg.addr);
    cfg.monolithic_max = 1024 * 1024;
    cfg.chunk_size = 1024 * 1024;
    let streamed = repo_with(&reg, cfg.clone(), "up");
    // The same registry listed as wanting chunks of at most 1 MiB.
    let chunked = repo_with(
        &reg,
        cfg.with_chunked_uploads(&reg.addr, 1024 * 1024),
        "up-chunked",
    );
    for (app, size, expected) in [
        (&streamed, 0usize, BlobPush::Monolithic),
        (&streamed, 500_000, BlobPush::Monolithic),
        (&streamed, 3 * 1024 * 1024 + 512 * 1024, BlobPush::Streamed),
        (&chunked, 500_000, BlobPush::Monolithic),
        (
            &chunked,
            3 * 1024 * 1024 + 512 * 1024,
            BlobPush::Chunked {
                chunks: 4,
                resumed: 0,
            },
        ),
        (
            &chunked,
            2 * 1024 * 1024,
            BlobPush::Chunked {
                chunks: 2,
                resumed: 0,
            },
        ),
    ] {
        let data = random(size, size as u64 + app.name().len() as u64);
        let desc = Descriptor::new(
            media_types::OCI_LAYER_TAR,
            Algorithm::Sha256.hash(&data),
            size as u64,
        );
        assert_eq!(
            app.push_blob(&desc, source(&data)).await.expect("push"),
            expected,
            "{size}"
        );
        assert_eq!(collect(app, &desc).await, data, "{size}");
        // A second push is skipped.
        assert_eq!(
            app.push_blob(&desc, source(&data)).await.expect("push"),
            BlobPush::Skipped
        );
    }
    // A source that lies about its content is refused by us before the registry commits it,
    // in every mode (one streamed PUT, a streamed PATCH, chunks).
    for (app, size) in [
        (&streamed, 900_000),
        (&streamed, 2_500_000),
        (&chunked, 2_500_000),
    ] {
        let data = random(size, 99);
        let desc = Descriptor::new(
            media_types::OCI_LAYER_TAR,
            Algorithm::Sha256.hash(&data),
            data.len() as u64,
        );
        let mut other = data.clone();
        other[size - 100_000] ^= 1;
        match app.push_blob(&desc, source(&other)).await {
            Err(Error::Verify { .. }) => {}
            other => panic!(
                "{size} to {}: expected a verify error, got {other:?}",
                app.name()
            ),
        }
        assert!(!app.blob_exists(&desc).await.expect("head"));
    }
}

#[tokio::test]
async fn mount_between_repositories() {
    let reg = TestRegistry::start();
    let a = repo(&reg, "src/a");
    let b = repo(&reg, "dst/b");
    let data = random(300_000, 7);
    let desc = Descriptor::new(
        media_types::OCI_LAYER_GZIP,
        Algorithm::Sha256.hash(&data),
        data.len() as u64,
    );
    a.push_blob(&desc, source(&data)).await.expect("push");
    assert!(!b.blob_exists(&desc).await.expect("head"));
    assert_eq!(
        b.push_blob_with_mount(&desc, source(&data), "src/a")
            .await
            .expect("mount"),
        BlobPush::Mounted
    );
    assert_eq!(collect(&b, &desc).await, data);
    // Mount from a repository without the blob: the registry answers 202 and we upload.
    let data2 = random(200_000, 8);
    let desc2 = Descriptor::new(
        media_types::OCI_LAYER_GZIP,
        Algorithm::Sha256.hash(&data2),
        data2.len() as u64,
    );
    assert_eq!(
        b.push_blob_with_mount(&desc2, source(&data2), "src/a")
            .await
            .expect("fallback"),
        BlobPush::Monolithic
    );
    assert_eq!(collect(&b, &desc2).await, data2);
    // A copy that does not trust the registry (oci-store's verify mode, the one verification
    // policy) reads every mounted blob back, and a true mount passes: nothing is repaired.
    let config_bytes = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let config_desc = Descriptor::new(
        media_types::OCI_CONFIG,
        Algorithm::Sha256.hash(&config_bytes),
        config_bytes.len() as u64,
    );
    a.push_blob(&config_desc, source(&config_bytes))
        .await
        .expect("push config");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": config_desc,
        "layers": [desc],
    }))
    .expect("json");
    a.push_manifest("v1", media_types::OCI_MANIFEST, Bytes::from(manifest))
        .await
        .expect("push manifest");
    let c = repo(&reg, "dst/c");
    let options = oci_store::CopyOptions::default().with_verify(oci_store::VerifyMode::Range);
    let report = oci_store::copy(&a, "v1", &c, None, &options)
        .await
        .expect("copy");
    assert_eq!((report.mounted, report.repaired), (2, 0), "{report}");
    assert!(report.verified >= 3, "{report}");
    assert_eq!(collect(&c, &desc).await, data);
}

#[tokio::test]
async fn tag_listing_across_pages_catalog_and_delete() {
    let reg = TestRegistry::start();
    let mut cfg = config(&reg.addr);
    cfg.page_size = 5;
    let client = Client::new(cfg).expect("client");
    let app = client
        .repository_by_name(&reg.addr, "list/app")
        .expect("repo");
    let img = Image::new("amd64", 5, false);
    img.push(&app, Some("t00")).await;
    let mut expected: Vec<String> = (0..23).map(|i| format!("t{i:02}")).collect();
    for t in &expected[1..] {
        app.push_manifest(t, img.media_type, Bytes::from(img.manifest.clone()))
            .await
            .expect("tag");
    }
    let mut tags: Vec<String> = app.tags().map(|t| t.expect("tag item")).collect().await;
    tags.sort();
    expected.sort();
    assert_eq!(tags, expected, "23 tags over pages of 5");

    for name in ["list/b", "list/c"] {
        let r = client.repository_by_name(&reg.addr, name).expect("repo");
        img.push(&r, Some("x")).await;
    }
    let repos: Vec<String> = client
        .catalog(&reg.addr)
        .map(|r| r.expect("repo item"))
        .collect()
        .await;
    assert_eq!(repos, ["list/app", "list/b", "list/c"]);

    // Delete the manifest: tags and digest are gone.
    app.delete_manifest(&img.digest())
        .await
        .expect("delete manifest");
    assert!(
        app.fetch_manifest(img.digest().as_str())
            .await
            .expect_err("gone")
            .is_not_found()
    );
    assert!(app.resolve("t05").await.expect_err("gone").is_not_found());
    // Delete a blob.
    let layer = &img.layers[0].0;
    assert!(app.blob_exists(layer).await.expect("head"));
    app.delete_blob(&layer.digest).await.expect("delete blob");
    assert!(!app.blob_exists(layer).await.expect("head"));
    // Deleting again: 404 as a typed error.
    assert!(
        app.delete_blob(&layer.digest)
            .await
            .expect_err("404")
            .is_not_found()
    );
    // Referrers: distribution 2.8 has no API; the tag fallback finds nothing.
    assert!(
        app.referrers(&img.digest(), None)
            .await
            .expect("referrers")
            .is_empty()
    );
}

#[tokio::test]
async fn basic_auth_through_htpasswd() {
    let reg = TestRegistry::start_with(RegistryOptions {
        htpasswd: Some(("tester".into(), "pa55word".into())),
        ..RegistryOptions::default()
    });
    let img = Image::new("amd64", 6, false);
    let anon = repo(&reg, "secure/app");
    match anon.resolve("v1").await {
        Err(Error::Unauthorized { status, .. }) => assert_eq!(status, 401),
        other => panic!("{other:?}"),
    }
    let wrong = repo_with(
        &reg,
        config(&reg.addr).with_credential(&reg.addr, Credential::basic("tester", "nope")),
        "secure/app",
    );
    assert!(matches!(
        wrong.resolve("v1").await,
        Err(Error::Unauthorized { .. })
    ));
    let good = repo_with(
        &reg,
        config(&reg.addr).with_credential(&reg.addr, Credential::basic("tester", "pa55word")),
        "secure/app",
    );
    img.push(&good, Some("v1")).await;
    img.check_pulled(&good, "v1").await;
    good.client()
        .ping(&reg.addr)
        .await
        .expect("ping with credentials");

    // The same credentials from a Docker config.json (`auths` with base64 user:password).
    let dir = temp_dir("odc-docker-config");
    let file = dir.join("config.json");
    std::fs::write(
        &file,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"dGVzdGVyOnBhNTV3b3Jk"}}}}}}"#,
            reg.addr
        ),
    )
    .expect("write config.json");
    let mut cfg = config(&reg.addr);
    cfg.docker_config = true;
    cfg.docker_config_file = Some(file.clone());
    let from_file = repo_with(&reg, cfg.clone(), "secure/app");
    img.check_pulled(&from_file, "v1").await;
    // A broken config.json is a configuration error of Client::new, not a silent anonymous client.
    std::fs::write(&file, b"{not json").expect("write");
    assert!(matches!(Client::new(cfg), Err(Error::DockerConfig { .. })));
    remove(&dir);
}

#[tokio::test]
async fn https_with_a_custom_ca_and_no_silent_fallback() {
    let reg = TestRegistry::start_with(RegistryOptions {
        tls: true,
        ..RegistryOptions::default()
    });
    let ca = reg.ca_pem.clone().expect("ca");
    // Not named as plain HTTP: HTTPS, trusting our CA.
    let mut cfg = ClientConfig::default();
    cfg.docker_config = false;
    cfg.proxy_from_env = false;
    cfg.ca_certificates_pem.push(ca);
    let app = repo_with(&reg, cfg, "tls/app");
    let img = Image::new("amd64", 11, false);
    img.push(&app, Some("v1")).await;
    img.check_pulled(&app, "v1").await;
    // Without the CA the certificate is refused: a transport error, no fallback to HTTP.
    let mut cfg = ClientConfig::default();
    cfg.docker_config = false;
    cfg.proxy_from_env = false;
    cfg.retry.max_retries = 0;
    let untrusting = repo_with(&reg, cfg, "tls/app");
    match untrusting.resolve("v1").await {
        Err(Error::Transport { url, .. }) => assert!(url.starts_with("https://"), "{url}"),
        other => panic!("expected a TLS failure, got {other:?}"),
    }
}

fn skopeo(args: &[&str]) -> String {
    let bin = require_tool("skopeo");
    run(Command::new(bin).arg("--insecure-policy").args(args))
}

#[tokio::test]
async fn skopeo_interop_both_ways() {
    let reg = TestRegistry::start();
    let work = temp_dir("odc-skopeo");

    // Ours -> skopeo: exact bytes, and a full copy that skopeo verifies.
    let ours = repo(&reg, "interop/ours");
    let img = Image::new("amd64", 7, false);
    img.push(&ours, Some("v1")).await;
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/interop/ours:v1", reg.addr),
    ]);
    assert_eq!(
        raw.as_bytes(),
        &img.manifest[..],
        "skopeo sees our exact bytes"
    );
    let amd = Image::new("amd64", 8, false);
    let arm = Image::new("arm64", 9, false);
    amd.push(&ours, None).await;
    arm.push(&ours, None).await;
    let index = index_bytes(&[(&amd, "amd64"), (&arm, "arm64")]);
    ours.push_manifest("multi", media_types::OCI_INDEX, Bytes::from(index.clone()))
        .await
        .expect("index");
    let layout = work.join("layout");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{}/interop/ours:multi", reg.addr),
        &format!("oci:{}:multi", layout.display()),
    ]);
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("json");
    let d = idx["manifests"][0]["digest"].as_str().expect("digest");
    assert_eq!(
        d,
        Algorithm::Sha256.hash(&index).as_str(),
        "skopeo kept our index"
    );

    // Skopeo -> ours: an OCI layout written here, pushed by skopeo, pulled and verified by us.
    let theirs_layout = work.join("theirs");
    let img2 = Image::new("arm64", 10, false);
    write_layout(&theirs_layout, &img2, "v2");
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:v2", theirs_layout.display()),
        &format!("docker://{}/interop/theirs:v2", reg.addr),
    ]);
    let theirs = repo(&reg, "interop/theirs");
    assert_eq!(
        theirs.resolve("v2").await.expect("resolve").digest,
        img2.digest()
    );
    img2.check_pulled(&theirs, "v2").await;
    remove(&work);
}

fn write_layout(dir: &std::path::Path, img: &Image, tag: &str) {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("write");
    for (d, data) in std::iter::once(&img.config).chain(img.layers.iter()) {
        std::fs::write(blobs.join(d.digest.encoded()), data).expect("write blob");
    }
    std::fs::write(blobs.join(img.digest().encoded()), &img.manifest).expect("write manifest");
    let mut desc = serde_json::to_value(img.descriptor()).expect("json");
    desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [desc]});
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("write");
}

#[tokio::test]
async fn referrers_through_the_tag_schema_on_a_registry_without_the_api() {
    let reg = TestRegistry::start();
    let app = repo(&reg, "ref/app");
    let img = Image::new("amd64", 12, false);
    img.push(&app, Some("v1")).await;
    assert!(
        app.referrers(&img.digest(), None)
            .await
            .expect("none yet")
            .is_empty()
    );

    let empty = Bytes::from_static(b"{}");
    let empty_desc = Descriptor::new(
        media_types::OCI_EMPTY_JSON,
        Algorithm::Sha256.hash(&empty),
        2,
    );
    app.push_blob(
        &empty_desc,
        Box::pin(futures_util::stream::iter([Ok(empty.clone())])),
    )
    .await
    .expect("empty config");
    let mut pushed = Vec::new();
    for (i, kind) in ["application/vnd.example.sig", "application/spdx+json"]
        .iter()
        .enumerate()
    {
        let payload = random(100 + i, 50 + i as u64);
        let pd = Descriptor::new(
            "application/octet-stream",
            Algorithm::Sha256.hash(&payload),
            payload.len() as u64,
        );
        app.push_blob(&pd, source(&payload)).await.expect("payload");
        let artifact = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_MANIFEST,
            "artifactType": kind,
            "config": empty_desc,
            "layers": [pd],
            "subject": img.descriptor(),
        }))
        .expect("json");
        let d = app
            .push_manifest(
                Algorithm::Sha256.hash(&artifact).as_str(),
                media_types::OCI_MANIFEST,
                Bytes::from(artifact),
            )
            .await
            .expect("push artifact");
        pushed.push(d);
    }
    // distribution 2.8 has no referrers API: the client kept the sha256-<hex> index up to date.
    let all = app.referrers(&img.digest(), None).await.expect("referrers");
    assert_eq!(
        all.iter().map(|d| d.digest.clone()).collect::<Vec<_>>(),
        pushed
    );
    // The index under the fallback tag is the one oci-store builds (the same a copy writes).
    let fallback = app
        .fetch_manifest(&oci_store::referrers_tag(&img.digest()))
        .await
        .expect("fallback index");
    let expected = oci_store::referrers_index(&img.digest(), all.clone()).expect("index");
    assert_eq!(fallback.bytes, *expected.raw());
    let sigs = app
        .referrers(&img.digest(), Some("application/vnd.example.sig"))
        .await
        .expect("filtered");
    assert_eq!(sigs.len(), 1);
    assert_eq!(sigs[0].digest, pushed[0]);
    assert_eq!(
        sigs[0].artifact_type.as_deref(),
        Some("application/vnd.example.sig")
    );
}
