//! The client against an in-process fault-injecting registry.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::capture::Capture;
use common::fault::{BearerAuth, FakeRegistry, Faults};
use futures_util::StreamExt;
use oci_distribution_client::{
    Algorithm, BlobPush, BlobSource, Client, ClientConfig, Credential, Descriptor, Error, MinRate,
    ParallelFetch, Repository, RetryPolicy, media_types,
};

fn config(addr: &str) -> ClientConfig {
    common::test_config(addr).with_retry(
        RetryPolicy::default()
            .with_max_retries(5)
            .with_backoff(Duration::from_millis(5), Duration::from_millis(50)),
    )
}

fn repo_at(addr: &str, cfg: ClientConfig) -> Repository {
    Client::new(cfg)
        .expect("client")
        .repository_by_name(addr, "app")
        .expect("repository")
}

fn repo(reg: &FakeRegistry, cfg: ClientConfig, name: &str) -> Repository {
    Client::new(cfg)
        .expect("client")
        .repository_by_name(&reg.addr, name)
        .expect("repository")
}

fn random(n: usize) -> Vec<u8> {
    common::random(n, n as u64)
}

fn source(data: &[u8], chunk: usize) -> BlobSource {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

fn blob_desc(data: &[u8]) -> Descriptor {
    Descriptor::new(
        media_types::OCI_LAYER_GZIP,
        Algorithm::Sha256.hash(data),
        data.len() as u64,
    )
}

async fn collect(repo: &Repository, desc: &Descriptor) -> Result<Vec<u8>, Error> {
    let mut s = repo.fetch_blob(desc).await?;
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c?);
    }
    Ok(out)
}

fn image_manifest(config: &Descriptor, layers: &[Descriptor]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": config,
        "layers": layers,
    }))
    .expect("json")
}

#[tokio::test]
async fn bearer_challenges_scopes_expiry_and_single_flight() {
    let reg = FakeRegistry::start(Faults {
        bearer: Some(BearerAuth {
            basic: Some(("alice".into(), "s3cret".into())),
            expires_in: 7,
            refresh_token: None,
        }),
        ..Faults::default()
    })
    .await;
    let cfg = config(&reg.addr).with_credential(&reg.addr, Credential::basic("alice", "s3cret"));
    let client = Client::new(cfg.clone()).expect("client");
    let app = client
        .repository_by_name(&reg.addr, "team/app")
        .expect("repo");

    // Push: the token asked for carries the server's scope (pull,push on team/app).
    let data = random(10_000);
    let desc = blob_desc(&data);
    assert_eq!(
        app.push_blob(&desc, source(&data, 4096))
            .await
            .expect("push"),
        BlobPush::Monolithic
    );
    let asked = reg.state().token_requests.clone();
    assert!(
        asked
            .iter()
            .any(|s| s.contains(&"repository:team/app:pull,push".to_owned())),
        "{asked:?}"
    );
    // Every registry request after the first challenge carried a bearer token; Basic
    // credentials went only to the token endpoint.
    for s in reg.seen() {
        if let Some(a) = &s.authorization {
            if s.target.starts_with("/token") {
                assert!(a.starts_with("Basic "), "{s:?}");
            } else {
                assert!(a.starts_with("Bearer tok-"), "{s:?}");
            }
        }
    }

    // Cached token: more requests with the same scopes ask for no new token.
    let before = reg.state().token_requests.len();
    for _ in 0..3 {
        assert_eq!(collect(&app, &desc).await.expect("pull"), data);
    }
    let pulls = reg.state().token_requests.len();
    assert!(
        pulls <= before + 1,
        "one token for pull at most: {before} -> {pulls}"
    );
    for _ in 0..3 {
        assert!(app.blob_exists(&desc).await.expect("head"));
    }
    assert_eq!(reg.state().token_requests.len(), pulls, "pull token reused");

    // Expiry: tokens live 7 s and are renewed 5 s early, so after 2.5 s a new one is fetched.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(app.blob_exists(&desc).await.expect("head"));
    assert_eq!(
        reg.state().token_requests.len(),
        pulls + 1,
        "expired token renewed"
    );

    // Mount: one token with both repositories' scopes (pull on the source at least: the
    // push above asked for push on it too).
    let other = client
        .repository_by_name(&reg.addr, "team/other")
        .expect("repo");
    let out = other
        .push_blob_with_mount(&desc, source(&data, 4096), "team/app")
        .await
        .expect("mount");
    assert_eq!(out, BlobPush::Mounted);
    let asked = reg.state().token_requests.clone();
    assert!(
        asked
            .iter()
            .any(|s| (s.contains(&"repository:team/app:pull".to_owned())
                || s.contains(&"repository:team/app:pull,push".to_owned()))
                && s.contains(&"repository:team/other:pull,push".to_owned())),
        "mount token must carry both scopes: {asked:?}"
    );

    // Revoked tokens: the registry answers 401 to a cached token; one re-challenge fixes it.
    reg.state().tokens.clear();
    assert_eq!(collect(&app, &desc).await.expect("pull after revoke"), data);

    // Single flight: a fresh client sending 8 requests at once asks for one token.
    let fresh = Client::new(cfg).expect("client");
    let app2 = fresh
        .repository_by_name(&reg.addr, "team/app")
        .expect("repo");
    let n0 = reg.state().token_requests.len();
    let heads = (0..8).map(|_| {
        let r = app2.clone();
        let d = desc.clone();
        async move { r.blob_exists(&d).await }
    });
    for r in futures_util::future::join_all(heads).await {
        assert!(r.expect("head"));
    }
    assert_eq!(
        reg.state().token_requests.len(),
        n0 + 1,
        "one token request for 8 requests"
    );

    // Wrong credentials: a typed error, not a retry loop.
    let bad = repo(
        &reg,
        config(&reg.addr).with_credential(&reg.addr, Credential::basic("alice", "wrong")),
        "team/app",
    );
    match bad.blob_exists(&desc).await {
        Err(Error::Unauthorized { status, .. }) => assert_eq!(status, 401),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn authorization_never_follows_a_redirect_to_another_origin() {
    let storage = FakeRegistry::start(Faults::default()).await;
    let data = random(200_000);
    storage.put_blob(&data);
    let reg = FakeRegistry::start(Faults {
        bearer: Some(BearerAuth {
            basic: None,
            expires_in: 300,
            refresh_token: None,
        }),
        redirect_blobs_to: Some(format!("http://{}", storage.addr)),
        ..Faults::default()
    })
    .await;
    reg.put_blob(&data);
    let app = repo(&reg, config(&reg.addr), "app");
    let desc = blob_desc(&data);
    assert_eq!(collect(&app, &desc).await.expect("pull via redirect"), data);
    let at_registry = reg.seen();
    assert!(
        at_registry
            .iter()
            .any(|s| s.target.contains("/blobs/") && s.authorization.is_some()),
        "the registry got the token: {at_registry:?}"
    );
    let at_storage = storage.seen();
    assert!(!at_storage.is_empty(), "the redirect was followed");
    for s in at_storage {
        assert_eq!(
            s.authorization, None,
            "Authorization leaked to another origin: {s:?}"
        );
    }
}

#[tokio::test]
async fn blob_get_resets_resume_with_range_and_verify() {
    let reg = FakeRegistry::start(Faults {
        reset_blob_gets: 4,
        ..Faults::default()
    })
    .await;
    let data = random(3 * 1024 * 1024 + 17);
    reg.put_blob(&data);
    let app = repo(&reg, config(&reg.addr), "app");
    let desc = blob_desc(&data);
    assert_eq!(collect(&app, &desc).await.expect("resumed pull"), data);
    let ranges: Vec<String> = reg.seen().into_iter().filter_map(|s| s.range).collect();
    assert_eq!(ranges.len(), 4, "one Range request per reset: {ranges:?}");
    assert!(
        ranges
            .iter()
            .all(|r| r.starts_with("bytes=") && r.ends_with('-'))
    );
    assert_eq!(reg.state().faults.reset_blob_gets, 0);

    // Parallel ranged fetch with resets inside parts also verifies.
    reg.state().faults.reset_blob_gets = 3;
    let mut cfg = config(&reg.addr);
    cfg.parallel_fetch = Some(ParallelFetch::new(1024 * 1024, 512 * 1024, 3));
    let par = repo(&reg, cfg, "app");
    assert_eq!(collect(&par, &desc).await.expect("parallel pull"), data);
}

/// A registry listed as wanting chunks (`ClientConfig::chunked_uploads`) gets chunked uploads,
/// each chunk held while it is sent and resumed in place after a reset.
#[tokio::test]
async fn chunk_patch_resets_resume_in_place() {
    let reg = FakeRegistry::start(Faults {
        reset_patches: 3,
        ..Faults::default()
    })
    .await;
    let mut cfg = config(&reg.addr).with_chunked_uploads(&reg.addr, 64 << 20);
    cfg.monolithic_max = 256 * 1024;
    cfg.chunk_size = 1024 * 1024;
    let app = repo(&reg, cfg, "app");
    let data = random(5 * 1024 * 1024 + 3);
    let desc = blob_desc(&data);
    let out = app
        .push_blob(&desc, source(&data, 100_000))
        .await
        .expect("chunked push");
    match out {
        BlobPush::Chunked { chunks, resumed } => {
            assert_eq!(chunks, 6);
            assert!(resumed >= 3, "{out:?}");
        }
        other => panic!("expected chunked, got {other:?}"),
    }
    assert_eq!(reg.state().blobs.get(desc.digest.as_str()), Some(&data));
    // A source handing the whole blob as one piece is still sent in chunks of the chunk size.
    let data1 = random(4 * 1024 * 1024 + 9);
    let desc1 = blob_desc(&data1);
    let before = reg.seen().len();
    match app
        .push_blob(&desc1, source(&data1, usize::MAX))
        .await
        .expect("push")
    {
        BlobPush::Chunked { chunks, .. } => assert_eq!(chunks, 5),
        other => panic!("{other:?}"),
    }
    let sizes: Vec<usize> = reg.seen()[before..]
        .iter()
        .filter(|s| s.method == "PATCH")
        .map(|s| s.body_len)
        .collect();
    assert_eq!(sizes, [1 << 20, 1 << 20, 1 << 20, 1 << 20, 9]);
    // The registry's OCI-Chunk-Min-Length raises the chunk size.
    reg.state().faults.chunk_min_length = Some(2 * 1024 * 1024);
    let data2 = random(5 * 1024 * 1024 + 4);
    let desc2 = blob_desc(&data2);
    match app
        .push_blob(&desc2, source(&data2, 70_000))
        .await
        .expect("push")
    {
        BlobPush::Chunked { chunks, .. } => assert_eq!(chunks, 3),
        other => panic!("{other:?}"),
    }
    let patches: Vec<usize> = reg
        .seen()
        .iter()
        .rev()
        .filter(|s| s.method == "PATCH")
        .take(3)
        .map(|s| s.body_len)
        .collect();
    assert!(patches.iter().all(|&n| n >= 1024 * 1024), "{patches:?}");
}

#[tokio::test]
async fn corrupted_bytes_give_a_typed_error_and_nothing_is_stored() {
    let reg = FakeRegistry::start(Faults {
        corrupt_blobs: true,
        ..Faults::default()
    })
    .await;
    let data = random(300_000);
    reg.put_blob(&data);
    let app = repo(&reg, config(&reg.addr), "app");
    let desc = blob_desc(&data);
    match collect(&app, &desc).await {
        Err(Error::Verify { digest, source, .. }) => {
            assert_eq!(digest, desc.digest);
            assert!(matches!(
                source,
                oci_digest::VerifyError::DigestMismatch { .. }
            ));
        }
        other => panic!("expected a verify error, got {:?}", other.map(|v| v.len())),
    }
    // A store fed from the stream refuses the blob.
    let store = oci_store::MemoryStore::new();
    let stream: oci_store::BlobStream = Box::pin(
        app.fetch_blob(&desc)
            .await
            .expect("open")
            .map(|r| r.map_err(Error::into_io)),
    );
    use oci_store::{ReadStore, WriteStore};
    assert!(store.push(&desc, stream).await.is_err());
    assert!(!store.exists(&desc.digest).await.expect("exists"));

    // A push whose source does not match its descriptor fails before commit.
    let clean = FakeRegistry::start(Faults::default()).await;
    let app = repo(&clean, config(&clean.addr), "app");
    let mut bad = data.clone();
    bad[10] ^= 1;
    match app.push_blob(&desc, source(&bad, 50_000)).await {
        Err(Error::Verify { .. }) => {}
        other => panic!("expected verify error, got {other:?}"),
    }
    assert!(clean.state().blobs.is_empty(), "nothing committed");
    assert!(clean.state().uploads.is_empty(), "upload cancelled");
}

#[tokio::test]
async fn wrong_docker_content_digest_names_both_digests() {
    let reg = FakeRegistry::start(Faults {
        wrong_manifest_digest: true,
        ..Faults::default()
    })
    .await;
    let cfg_data = b"{}".to_vec();
    let config_desc = Descriptor::new(
        media_types::OCI_CONFIG,
        Algorithm::Sha256.hash(&cfg_data),
        2,
    );
    let manifest = image_manifest(&config_desc, &[]);
    let real = reg.put_manifest("app", "v1", media_types::OCI_MANIFEST, &manifest);
    let app = repo(&reg, config(&reg.addr), "app");
    let err = app.fetch_manifest("v1").await.expect_err("must fail");
    match &err {
        Error::ManifestDigestMismatch {
            reference,
            expected,
            actual,
            ..
        } => {
            assert!(reference.ends_with("/app:v1"), "{reference}");
            assert_eq!(actual, &real);
            assert_eq!(expected, &Algorithm::Sha256.hash(b"something else"));
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(real.as_str()) && msg.contains("app:v1"),
        "{msg}"
    );
    // Pinned by digest, the pinned digest wins but the lying header is still reported.
    match app.fetch_manifest(real.as_str()).await {
        Err(Error::ManifestDigestMismatch {
            reference,
            expected,
            source_of_expected,
            actual,
        }) => {
            assert!(reference.ends_with(&format!("/app@{real}")), "{reference}");
            assert_eq!(expected, Algorithm::Sha256.hash(b"something else"));
            assert_eq!(source_of_expected, "Docker-Content-Digest");
            assert_eq!(actual, real);
        }
        other => panic!("expected the lying header reported, got {other:?}"),
    }
}

#[tokio::test]
async fn rate_limit_honours_retry_after() {
    let reg = FakeRegistry::start(Faults {
        rate_limit: 2,
        ..Faults::default()
    })
    .await;
    let data = random(1000);
    reg.put_blob(&data);
    let app = repo(&reg, config(&reg.addr), "app");
    let start = Instant::now();
    assert!(app.blob_exists(&blob_desc(&data)).await.expect("head"));
    // Two answers of `Retry-After: 1` were waited out (the backoff alone is ~50 ms).
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
    // A Retry-After longer than allowed fails at once with the registry's answer.
    reg.state().faults.rate_limit = 1;
    let mut cfg = config(&reg.addr);
    cfg.retry.max_retry_after = Duration::from_millis(100);
    let impatient = repo(&reg, cfg, "app");
    match impatient.fetch_manifest("latest").await {
        Err(Error::Registry { status, errors, .. }) => {
            assert_eq!(status, 429);
            assert!(errors.has_code("TOOMANYREQUESTS"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn storms_of_5xx_are_retried_then_reported() {
    let reg = FakeRegistry::start(Faults {
        storm_503: 4,
        ..Faults::default()
    })
    .await;
    let data = random(1000);
    reg.put_blob(&data);
    let app = repo(&reg, config(&reg.addr), "app");
    assert_eq!(
        collect(&app, &blob_desc(&data)).await.expect("after storm"),
        data
    );
    reg.state().faults.storm_503 = 100;
    let mut cfg = config(&reg.addr);
    cfg.retry = cfg.retry.clone().with_max_retries(3);
    let app = repo(&reg, cfg, "app");
    match app.blob_exists(&blob_desc(&data)).await {
        Err(Error::Registry { status, .. }) => assert_eq!(status, 503),
        other => panic!("{other:?}"),
    }
    assert_eq!(reg.state().faults.storm_503, 96, "1 attempt + 3 retries");
}

#[tokio::test]
async fn registry_that_claims_a_blob_it_does_not_have() {
    let (reg, data, desc) = phantom_registry().await;
    // Trusting HEAD: the push "succeeds" without data (the broken result).
    let trusting = repo(&reg, config(&reg.addr), "app");
    assert_eq!(
        trusting
            .push_blob(&desc, source(&data, 8192))
            .await
            .expect("push"),
        BlobPush::Skipped
    );
    assert!(reg.state().blobs.is_empty());
    // Pulling it is an error after the bounded resume attempts (no byte ever comes), not a
    // silent success or a hang.
    match collect(&trusting, &desc).await {
        Err(Error::Verify { source, .. }) => {
            assert!(matches!(
                source,
                oci_digest::VerifyError::TooShort { received: 0, .. }
            ))
        }
        Err(Error::Transport { attempts, .. }) => assert_eq!(attempts, 6),
        other => panic!("{:?}", other.map(|v| v.len())),
    }

    // The client reports what the registry says; not trusting it is the copy's policy
    // (`oci_store::VerifyMode`, the one verification policy).
    use oci_store::{CopyOptions, VerifyMode};
    // A direct user asks `checked_exists`: the last byte never comes, so the claim is not
    // confirmed (this registry's 206 has no `Content-Range`, which the client reports as a
    // protocol violation: an error, where a 404 or a short body would be `false`).
    let checked = oci_store::checked_exists(&trusting, &desc).await;
    assert!(
        matches!(
            checked,
            Ok(false) | Err(oci_store::StoreError::Backend { .. })
        ),
        "{checked:?}"
    );
    let local = image_with_layer(&desc, &data).await;
    // Trusted, the claim is taken: the layer is skipped and never stored.
    let report = oci_store::copy(&local, "v1", &trusting, None, &CopyOptions::default())
        .await
        .expect("trusting copy");
    assert_eq!(report.repaired, 0, "{report}");
    assert!(!reg.state().blobs.contains_key(desc.digest.as_str()));
    // Not trusted, read back by its last byte: the lie is found and the blob uploaded again.
    // (In full: `a_blob_claimed_but_not_served_is_found_by_a_full_read_back`.)
    reg.state().blobs.clear();
    claimed_blob_is_repaired(&reg, &local, &trusting, &desc, &data, VerifyMode::Range).await;
    // A mount the registry claims (201) but does not serve is followed by an upload.
    {
        let mut state = reg.state();
        state.faults.phantom_blobs.clear();
        state.faults.lying_mounts = true;
    }
    let other = repo(&reg, config(&reg.addr), "other");
    let options = CopyOptions::default().with_verify(VerifyMode::Range);
    let report = oci_store::copy(&trusting, "v1", &other, None, &options)
        .await
        .expect("copy between repositories");
    assert!(
        reg.seen()
            .iter()
            .any(|s| s.method == "POST" && s.target.contains("mount=")),
        "a mount was tried"
    );
    assert_eq!((report.mounted, report.repaired), (0, 2), "{report}");
    assert!(
        reg.state()
            .links
            .contains(&("other".to_owned(), desc.digest.to_string()))
    );
    assert_eq!(collect(&other, &desc).await.expect("served"), data);
}

/// A fake registry that claims a blob it does not have (`phantom_blobs`): the blob's bytes
/// and descriptor.
async fn phantom_registry() -> (FakeRegistry, Vec<u8>, Descriptor) {
    let data = random(50_000);
    let desc = blob_desc(&data);
    let phantom = HashMap::from([(desc.digest.to_string(), data.len())]);
    let reg = FakeRegistry::start(Faults {
        phantom_blobs: phantom,
        ..Faults::default()
    })
    .await;
    (reg, data, desc)
}

/// A local image (config, `layer`, manifest) tagged `v1`.
async fn image_with_layer(layer: &Descriptor, data: &[u8]) -> oci_store::MemoryStore {
    use oci_store::{TagStore, WriteStore};
    let config_bytes = b"{}".to_vec();
    let config_desc = blob_desc(&config_bytes);
    let manifest = image_manifest(&config_desc, std::slice::from_ref(layer));
    let manifest_desc = Descriptor::new(
        media_types::OCI_MANIFEST,
        Algorithm::Sha256.hash(&manifest),
        manifest.len() as u64,
    );
    let local = oci_store::MemoryStore::new();
    for (d, b) in [
        (&config_desc, config_bytes.as_slice()),
        (layer, data),
        (&manifest_desc, manifest.as_slice()),
    ] {
        local
            .push_bytes(d, Bytes::copy_from_slice(b))
            .await
            .expect("local push");
    }
    local.tag(&manifest_desc, "v1").await.expect("local tag");
    local
}

/// Copies `local`'s `v1` into `dst` reading back as `mode` says, and checks that the blob
/// `desc` the registry claims but does not serve was found and uploaded again.
async fn claimed_blob_is_repaired(
    reg: &FakeRegistry,
    local: &oci_store::MemoryStore,
    dst: &Repository,
    desc: &Descriptor,
    data: &[u8],
    mode: oci_store::VerifyMode,
) {
    let options = oci_store::CopyOptions::default().with_verify(mode);
    let report = oci_store::copy(local, "v1", dst, None, &options)
        .await
        .expect("verifying copy");
    let repaired = |n: &oci_store::NodeReport| n.outcome == oci_store::NodeOutcome::Repaired;
    let layer = report.nodes.iter().filter(|n| n.desc.digest == desc.digest);
    assert!(layer.clone().all(repaired), "{mode:?}: {report}");
    assert_eq!(layer.count(), 1, "{mode:?}: {report}");
    assert_eq!(report.repaired, 1, "{mode:?}: {report}");
    assert_eq!(
        reg.state()
            .blobs
            .get(desc.digest.as_str())
            .map(Vec::as_slice),
        Some(data),
        "{mode:?}"
    );
}

/// The claimed blob of `registry_that_claims_a_blob_it_does_not_have`, read back in full
/// (`VerifyMode::Full`), as the client's former `ExistenceCheck::Full` did: a body that fails
/// while it is read (the connection reset before any byte, on every resume) is content not
/// served, and the copy stores it again.
#[tokio::test]
async fn a_blob_claimed_but_not_served_is_found_by_a_full_read_back() {
    let (reg, data, desc) = phantom_registry().await;
    let app = repo(&reg, config(&reg.addr), "app");
    let local = image_with_layer(&desc, &data).await;
    claimed_blob_is_repaired(
        &reg,
        &local,
        &app,
        &desc,
        &data,
        oci_store::VerifyMode::Full,
    )
    .await;
}

#[tokio::test]
async fn resolve_falls_back_to_get_and_limits_manifest_size() {
    let reg = FakeRegistry::start(Faults {
        refuse_manifest_head: true,
        ..Faults::default()
    })
    .await;
    let config_desc = Descriptor::new(media_types::OCI_CONFIG, Algorithm::Sha256.hash(b"{}"), 2);
    let manifest = image_manifest(&config_desc, &[]);
    let d = reg.put_manifest("app", "v1", media_types::OCI_MANIFEST, &manifest);
    let app = repo(&reg, config(&reg.addr), "app");
    let desc = app.resolve("v1").await.expect("resolve");
    assert_eq!(desc.digest, d);
    assert_eq!(desc.size, manifest.len() as u64);
    assert_eq!(desc.media_type, media_types::OCI_MANIFEST);
    assert!(
        reg.seen()
            .iter()
            .any(|s| s.method == "GET" && s.target.ends_with("/manifests/v1"))
    );
    match app.resolve("missing").await {
        Err(e) => assert!(e.is_not_found(), "{e:?}"),
        Ok(d) => panic!("{d:?}"),
    }

    // Manifest size limit.
    let mut cfg = config(&reg.addr);
    cfg.max_manifest_size = 100;
    let small = repo(&reg, cfg, "app");
    match small.fetch_manifest("v1").await {
        Err(Error::ManifestTooLarge { limit, .. }) => assert_eq!(limit, 100),
        other => panic!("{other:?}"),
    }
    // Invalid tags are refused before any request.
    assert!(matches!(
        app.fetch_manifest("-bad").await,
        Err(Error::InvalidReference { .. })
    ));
}

#[tokio::test]
async fn referrers_api_and_tag_schema_fallback() {
    let reg = FakeRegistry::start(Faults {
        no_referrers_api: true,
        ..Faults::default()
    })
    .await;
    let app = repo(&reg, config(&reg.addr), "app");
    let subject = Algorithm::Sha256.hash(b"subject");
    assert!(
        app.referrers(&subject, None)
            .await
            .expect("none")
            .is_empty()
    );
    let sig = Descriptor::new(media_types::OCI_MANIFEST, Algorithm::Sha256.hash(b"sig"), 3)
        .with_artifact_type("application/vnd.example.sig");
    let sbom = Descriptor::new(
        media_types::OCI_MANIFEST,
        Algorithm::Sha256.hash(b"sbom"),
        4,
    )
    .with_artifact_type("application/spdx+json");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": [sig, sbom],
    }))
    .expect("json");
    reg.put_manifest(
        "app",
        &oci_store::referrers_tag(&subject),
        media_types::OCI_INDEX,
        &index,
    );
    let all = app.referrers(&subject, None).await.expect("fallback");
    assert_eq!(all.len(), 2);
    let sigs = app
        .referrers(&subject, Some("application/vnd.example.sig"))
        .await
        .expect("filtered");
    assert_eq!(sigs, vec![sig]);
    // With the API, its answer is used.
    reg.state().faults.no_referrers_api = false;
    assert!(app.referrers(&subject, None).await.expect("api").is_empty());
}

#[tokio::test]
async fn a_stalled_transfer_times_out_and_resumes() {
    let reg = FakeRegistry::start(Faults {
        stall_blob_gets: 2,
        ..Faults::default()
    })
    .await;
    let data = random(1_000_000);
    reg.put_blob(&data);
    let mut cfg = config(&reg.addr);
    cfg.read_timeout = Duration::from_millis(300);
    let app = repo(&reg, cfg, "app");
    assert_eq!(
        collect(&app, &blob_desc(&data))
            .await
            .expect("resumed after stalls"),
        data
    );
    let ranges: Vec<String> = reg.seen().into_iter().filter_map(|s| s.range).collect();
    assert_eq!(ranges, ["bytes=500000-", "bytes=750000-"]);
}

/// Collects every event's fields as text, for checking what the client logs.
#[tokio::test]
async fn credentials_and_tokens_are_never_logged() {
    let reg = FakeRegistry::start(Faults {
        bearer: Some(BearerAuth {
            basic: Some(("alice".into(), "pw-8f3k2".into())),
            expires_in: 300,
            refresh_token: None,
        }),
        storm_503: 1,
        ..Faults::default()
    })
    .await;
    let log = Arc::new(Mutex::new(String::new()));
    let _guard = tracing::subscriber::set_default(Capture(log.clone()));
    let app = repo(
        &reg,
        config(&reg.addr).with_credential(&reg.addr, Credential::basic("alice", "pw-8f3k2")),
        "app",
    );
    let data = random(5000);
    app.push_blob(&blob_desc(&data), source(&data, 1000))
        .await
        .expect("push");
    let text = log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert!(
        text.contains("registry answer"),
        "the client logged its requests: {text}"
    );
    assert!(
        text.contains("retrying"),
        "the 503 retry was logged: {text}"
    );
    assert!(!text.contains("pw-8f3k2"), "password logged: {text}");
    assert!(
        !text.contains("YWxpY2U6cHctOGYzazI"),
        "Basic header logged: {text}"
    );
    assert!(!text.contains("tok-"), "token logged: {text}");
}

/// A `127.0.0.1:PORT` nobody listens on (bound, then released): connections are refused.
fn refusing_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

#[tokio::test]
async fn a_refused_connection_fails_fast_with_the_reason_and_the_address() {
    let addr = refusing_address();
    let log = Arc::new(Mutex::new(String::new()));
    let _guard = tracing::subscriber::set_default(Capture(log.clone()));
    // Retries allowed (5) are for what may pass on retry: a refusal gets one more try only.
    let app = repo_at(&addr, config(&addr));
    let started = Instant::now();
    let e = app.resolve("v1").await.expect_err("nothing listens");
    match &e {
        Error::ConnectionRefused {
            attempts,
            url,
            address,
            source,
            ..
        } => {
            assert_eq!(*attempts, 2, "one attempt and one quick retry");
            assert!(url.ends_with("/v2/app/manifests/v1"), "{url}");
            assert_eq!(address, &addr);
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("{other:?}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("connection refused") && text.contains(&addr),
        "{text}"
    );

    // Through a copy, whose own retries (3) must not multiply the client's: still two
    // attempts in all, and the copy says why it stopped.
    let dst = oci_store::MemoryStore::new();
    let opts = oci_store::CopyOptions::default().with_retries(3, Duration::from_millis(5));
    let e = oci_store::copy(&app, "v1", &dst, None, &opts)
        .await
        .expect_err("nothing listens");
    let chain = oci_store::error_chain(&e);
    assert!(
        chain.contains("connection refused") && chain.contains(&addr),
        "{chain}"
    );
    let text = log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let retries = text.matches("retrying").count();
    assert_eq!(
        retries, 2,
        "one client retry per call, no copy retry: {text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn identity_tokens_are_exchanged_with_oauth2_post() {
    let reg = FakeRegistry::start(Faults {
        bearer: Some(BearerAuth {
            basic: Some(("nobody".into(), "unused".into())),
            expires_in: 300,
            refresh_token: Some("rt-123".into()),
        }),
        ..Faults::default()
    })
    .await;
    let app = repo(
        &reg,
        config(&reg.addr).with_credential(&reg.addr, Credential::IdentityToken("rt-123".into())),
        "team/app",
    );
    let data = random(3000);
    let desc = blob_desc(&data);
    app.push_blob(&desc, source(&data, 1000))
        .await
        .expect("push with identity token");
    assert_eq!(collect(&app, &desc).await.expect("pull"), data);
    let posts: Vec<_> = reg
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST" && s.target == "/token")
        .collect();
    assert!(!posts.is_empty(), "the refresh token was exchanged by POST");
    assert!(
        posts.iter().all(|s| s.authorization.is_none()),
        "no Basic with a refresh token"
    );
    assert!(
        reg.state()
            .token_requests
            .iter()
            .any(|s| s.contains(&"repository:team/app:pull,push".to_owned())),
        "scopes travel in the form"
    );
    // A wrong refresh token is refused as Unauthorized.
    let bad = repo(
        &reg,
        config(&reg.addr).with_credential(&reg.addr, Credential::IdentityToken("nope".into())),
        "team/app",
    );
    assert!(matches!(
        bad.blob_exists(&desc).await,
        Err(Error::Unauthorized { .. })
    ));
}

#[tokio::test]
async fn an_absurd_token_lifetime_is_capped_not_a_panic() {
    let reg = FakeRegistry::start(Faults {
        bearer: Some(BearerAuth {
            basic: None,
            expires_in: u64::MAX,
            refresh_token: None,
        }),
        ..Faults::default()
    })
    .await;
    let data = random(1000);
    reg.put_blob(&data);
    let app = repo(&reg, config(&reg.addr), "app");
    let desc = blob_desc(&data);
    assert_eq!(collect(&app, &desc).await.expect("pull"), data);
    // The token is cached (one request) and reused.
    assert_eq!(collect(&app, &desc).await.expect("pull again"), data);
    assert_eq!(reg.state().token_requests.len(), 1);
}

#[tokio::test]
async fn token_credentials_never_follow_a_redirect_to_another_origin() {
    let elsewhere = FakeRegistry::start(Faults {
        bearer: Some(BearerAuth {
            basic: None,
            expires_in: 300,
            refresh_token: Some("rt-123".into()),
        }),
        ..Faults::default()
    })
    .await;
    let reg = FakeRegistry::start(Faults {
        bearer: Some(BearerAuth {
            basic: Some(("alice".into(), "s3cret".into())),
            expires_in: 300,
            refresh_token: Some("rt-123".into()),
        }),
        redirect_token_to: Some(format!("http://{}", elsewhere.addr)),
        ..Faults::default()
    })
    .await;
    let data = random(1000);
    reg.put_blob(&data);
    let desc = blob_desc(&data);

    // Basic credentials for the token service: the redirected token request goes without them.
    let basic = repo(
        &reg,
        config(&reg.addr).with_credential(&reg.addr, Credential::basic("alice", "s3cret")),
        "app",
    );
    let r = basic.blob_exists(&desc).await;
    assert!(matches!(r, Err(Error::Unauthorized { .. })), "{r:?}");
    let token_gets: Vec<_> = elsewhere
        .seen()
        .into_iter()
        .filter(|s| s.target.starts_with("/token"))
        .collect();
    assert!(!token_gets.is_empty(), "the GET redirect was followed");
    for s in &token_gets {
        assert_eq!(
            s.authorization, None,
            "Basic credentials leaked to another origin: {s:?}"
        );
    }
    let at_realm: Vec<_> = reg
        .seen()
        .into_iter()
        .filter(|s| s.target.starts_with("/token"))
        .collect();
    assert!(
        at_realm.iter().all(|s| s.authorization.is_some()),
        "the realm itself got the credentials: {at_realm:?}"
    );

    // A refresh token travels in a POST body: a 307 to another origin is not followed at all.
    let before = elsewhere.seen().len();
    let oauth = repo(
        &reg,
        config(&reg.addr).with_credential(&reg.addr, Credential::IdentityToken("rt-123".into())),
        "app",
    );
    let r = oauth.blob_exists(&desc).await;
    match r {
        Err(Error::Unauthorized { status, .. }) => assert_eq!(status, 307),
        other => panic!("expected the unfollowed redirect as Unauthorized, got {other:?}"),
    }
    let posted: Vec<_> = elsewhere.seen().into_iter().skip(before).collect();
    assert!(
        posted.iter().all(|s| s.method != "POST"),
        "the refresh token was replayed to another origin: {posted:?}"
    );
}

#[tokio::test]
async fn a_range_answered_from_another_offset_is_refused() {
    let reg = FakeRegistry::start(Faults {
        ranges_from_zero: true,
        ..Faults::default()
    })
    .await;
    let data = random(1000);
    let digest = reg.put_blob(&data);
    let app = repo(&reg, config(&reg.addr), "app");
    let mut got = Vec::new();
    let mut failure = None;
    match app.fetch_blob_range(&digest, 100..200).await {
        Ok(mut s) => {
            while let Some(item) = s.next().await {
                match item {
                    Ok(b) => got.extend_from_slice(&b),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        Err(e) => failure = Some(e),
    }
    assert_ne!(
        got,
        &data[..100],
        "bytes 0..100 passed on as bytes 100..200"
    );
    match failure {
        Some(Error::Protocol { what, .. }) => {
            assert!(what.contains("from 100"), "{what}");
        }
        other => panic!("expected a protocol error naming the offset, got {other:?}"),
    }
}

#[tokio::test]
async fn an_absurd_upload_range_is_a_protocol_error_not_an_overflow() {
    let reg = FakeRegistry::start(Faults {
        absurd_upload_range: true,
        ..Faults::default()
    })
    .await;
    let mut cfg = config(&reg.addr).with_chunked_uploads(&reg.addr, 64 << 20);
    cfg.monolithic_max = 1024;
    cfg.chunk_size = 4096;
    cfg.resume_attempts = 2;
    let app = repo(&reg, cfg, "app");
    let data = random(10_000);
    let desc = blob_desc(&data);
    match app.push_blob(&desc, source(&data, 1000)).await {
        Err(Error::Protocol { what, .. }) => {
            assert!(what.contains(&u64::MAX.to_string()), "{what}")
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    assert_eq!(reg.state().blobs.get(desc.digest.as_str()), None);
    // The answer to a streamed upload claims as much: refused before the closing PUT.
    let streamed = repo(&reg, config(&reg.addr), "app");
    let data = random(9 << 20);
    let desc = blob_desc(&data);
    match streamed.push_blob(&desc, source(&data, 1 << 20)).await {
        Err(Error::Protocol { what, .. }) => {
            assert!(what.contains(&u64::MAX.to_string()), "{what}")
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    assert_eq!(reg.state().blobs.get(desc.digest.as_str()), None);
}

#[tokio::test]
async fn a_manifest_claiming_a_huge_blob_gives_an_error_with_parallel_fetch() {
    let reg = FakeRegistry::start(Faults::default()).await;
    let data = random(1000);
    reg.put_blob(&data);
    let mut cfg = config(&reg.addr);
    cfg.parallel_fetch = Some(ParallelFetch::new(1024, 512 * 1024, 3));
    let app = repo(&reg, cfg, "app");
    // The size is the peer's word (a descriptor in a manifest): u64::MAX used to plan 2^45
    // ranges up front (allocation failure) before a single byte came.
    let mut desc = blob_desc(&data);
    desc.size = u64::MAX;
    let r = collect(&app, &desc).await;
    assert!(
        matches!(r, Err(Error::Registry { .. } | Error::Protocol { .. })),
        "{r:?}"
    );
    // A huge range is not allocated up front (it was: a capacity overflow panic); the
    // registry's refusal of the range is the answer.
    let r = app.fetch_range_bytes(&desc.digest, 0, u64::MAX).await;
    assert!(
        matches!(
            r,
            Err(Error::Registry { .. } | Error::InvalidArgument(_) | Error::Protocol { .. })
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn tokens_never_go_to_a_link_on_another_origin() {
    let elsewhere = FakeRegistry::start(Faults::default()).await;
    let reg = FakeRegistry::start(Faults {
        bearer: Some(BearerAuth {
            basic: None,
            expires_in: 300,
            refresh_token: None,
        }),
        tags_link_to: Some(format!("http://{}", elsewhere.addr)),
        ..Faults::default()
    })
    .await;
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    for tag in ["a", "b", "c"] {
        reg.put_manifest("app", tag, media_types::OCI_INDEX, index);
    }
    let mut cfg = config(&reg.addr);
    cfg.page_size = 1;
    let app = repo(&reg, cfg, "app");
    let tags: Vec<String> = app
        .tags()
        .map(|t| t.expect("tag"))
        .collect::<Vec<_>>()
        .await;
    // The first page came from the registry, the (empty) next one from the other origin.
    assert_eq!(tags, ["a"]);
    let there: Vec<_> = elsewhere.seen();
    assert!(
        there.iter().any(|s| s.target.contains("/tags/list")),
        "the Link was followed: {there:?}"
    );
    for s in there {
        assert_eq!(
            s.authorization, None,
            "the registry's token went to another origin: {s:?}"
        );
    }
}

#[tokio::test]
async fn a_link_that_loops_back_ends_the_listing_with_an_error() {
    let reg = FakeRegistry::start(Faults {
        tags_link_loop: true,
        ..Faults::default()
    })
    .await;
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    for tag in ["a", "b", "c"] {
        reg.put_manifest("app", tag, media_types::OCI_INDEX, index);
    }
    let mut cfg = config(&reg.addr);
    cfg.page_size = 2;
    let app = repo(&reg, cfg, "app");
    // Bounded, so that a listing that never ends fails the test instead of hanging it.
    let items: Vec<Result<String, Error>> = app.tags().take(20).collect().await;
    let tags: Vec<&String> = items.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(tags, ["a", "b"], "{items:?}");
    match items.last() {
        Some(Err(Error::Protocol { what, .. })) => assert!(what.contains("loops"), "{what}"),
        other => panic!("expected the loop reported, got {other:?}"),
    }
}

#[tokio::test]
async fn a_signed_redirect_url_is_neither_logged_nor_in_errors() {
    // Object storage that is down, reached through a URL with a signature in its query.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let reg = FakeRegistry::start(Faults {
        redirect_blobs_to: Some(format!("http://{closed}/bucket?X-Signature=sig-9q7w3#")),
        ..Faults::default()
    })
    .await;
    let data = random(1000);
    reg.put_blob(&data);
    let log = Arc::new(Mutex::new(String::new()));
    let _guard = tracing::subscriber::set_default(Capture(log.clone()));
    let mut cfg = config(&reg.addr);
    cfg.retry = cfg.retry.clone().with_max_retries(1);
    let app = repo(&reg, cfg, "app");
    let err = collect(&app, &blob_desc(&data))
        .await
        .expect_err("storage is down");
    assert!(
        matches!(
            err,
            Error::Transport { .. } | Error::ConnectionRefused { .. }
        ),
        "{err:?}"
    );
    let mut chain = format!("{err:?}");
    let mut source: Option<&dyn std::error::Error> = Some(&err);
    while let Some(e) = source {
        chain.push_str(&format!(" | {e}"));
        source = e.source();
    }
    assert!(
        !chain.contains("sig-9q7w3"),
        "signature in the error: {chain}"
    );
    let text = log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert!(text.contains("retrying"), "the failure was logged: {text}");
    assert!(!text.contains("sig-9q7w3"), "signature logged: {text}");
}

#[tokio::test]
async fn a_resume_answered_with_the_whole_blob_is_not_appended() {
    let reg = FakeRegistry::start(Faults {
        reset_blob_gets: 3,
        ignore_ranges: true,
        ..Faults::default()
    })
    .await;
    let data = random(2 * 1024 * 1024 + 5);
    reg.put_blob(&data);
    let app = repo(&reg, config(&reg.addr), "app");
    let desc = blob_desc(&data);
    // Each resume asks for a Range, gets 200 with the whole blob, and must drop what it had.
    assert_eq!(collect(&app, &desc).await.expect("resumed pull"), data);
    let ranged = reg.seen().iter().filter(|s| s.range.is_some()).count();
    assert_eq!(ranged, 3, "one Range request per reset");
}

#[tokio::test]
async fn a_manifest_media_type_that_is_no_header_value_is_refused_before_sending() {
    let reg = FakeRegistry::start(Faults::default()).await;
    let app = repo(&reg, config(&reg.addr), "app");
    let bytes = Bytes::from_static(br#"{"schemaVersion":2,"manifests":[]}"#);
    match app
        .push_manifest(
            "v1",
            "application/vnd.oci.image.index.v1+json\r\nX: y",
            bytes,
        )
        .await
    {
        Err(Error::InvalidArgument(what)) => assert!(what.contains("app:v1"), "{what}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert!(
        reg.seen().iter().all(|s| s.method != "PUT"),
        "nothing was sent"
    );
}

#[tokio::test]
async fn untag_refuses_a_tag_that_would_walk_out_of_the_repository() {
    use oci_store::{StoreError, TagStore};
    let reg = FakeRegistry::start(Faults::default()).await;
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    reg.put_manifest("other", "v1", media_types::OCI_INDEX, index);
    let app = repo(&reg, config(&reg.addr), "app");
    match TagStore::untag(&app, "../../other/manifests/v1").await {
        Err(StoreError::InvalidTag { tag, .. }) => assert_eq!(tag, "../../other/manifests/v1"),
        other => panic!("expected InvalidTag, got {other:?}"),
    }
    let seen = reg.seen();
    assert!(
        seen.iter().all(|s| s.method != "DELETE"),
        "a DELETE was sent: {seen:?}"
    );
    assert!(
        reg.state()
            .manifests
            .contains_key(&("other".to_owned(), "v1".to_owned()))
    );
}

#[tokio::test]
async fn credentials_are_not_sent_to_a_plain_http_realm_the_user_did_not_name() {
    let realm = FakeRegistry::start(Faults {
        bearer: Some(BearerAuth {
            basic: None,
            expires_in: 300,
            refresh_token: None,
        }),
        ..Faults::default()
    })
    .await;
    let reg = FakeRegistry::start(Faults {
        bearer: Some(BearerAuth {
            basic: None,
            expires_in: 300,
            refresh_token: None,
        }),
        realm_base: Some(format!("http://{}", realm.addr)),
        ..Faults::default()
    })
    .await;
    let data = random(100);
    let desc = blob_desc(&data);
    let app = repo(
        &reg,
        config(&reg.addr).with_credential(&reg.addr, Credential::basic("alice", "s3cret")),
        "app",
    );
    match app.blob_exists(&desc).await {
        Err(Error::Protocol { url, what, .. }) => {
            assert!(
                url.starts_with(&format!("http://{}/token", realm.addr)),
                "{url}"
            );
            assert!(what.contains("plain_http"), "{what}");
        }
        other => panic!("expected the realm refused, got {other:?}"),
    }
    assert!(realm.seen().is_empty(), "nothing went to the realm");
    // Named as plain HTTP by the user, the realm gets the request (and its Basic header).
    let cfg = config(&reg.addr)
        .with_plain_http(&realm.addr)
        .with_credential(&reg.addr, Credential::basic("alice", "s3cret"));
    let app = repo(&reg, cfg, "app");
    let _ = app.blob_exists(&desc).await;
    let seen = realm.seen();
    assert!(
        seen.iter()
            .any(|s| s.target.starts_with("/token") && s.authorization.is_some()),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_drip_feeding_registry_fails_with_the_rate_error_within_a_window() {
    let reg = FakeRegistry::start(Faults {
        drip_blob_gets: Some(Duration::from_millis(20)),
        ..Faults::default()
    })
    .await;
    let data = random(100_000);
    let digest = reg.put_blob(&data);
    let limit = MinRate::new(10_000, Duration::from_millis(500));
    let cfg = config(&reg.addr).with_min_rate(Some(limit));
    let app = repo(&reg, cfg, "app");
    let started = Instant::now();
    // About 25 bytes in a window that asks for 10 000: at this rate the blob would take 33
    // minutes, and the read timeout (a byte every 20 ms) never fires.
    let result = tokio::time::timeout(Duration::from_secs(60), collect(&app, &blob_desc(&data)))
        .await
        .expect("failed within 60 s");
    match result {
        Err(Error::TransferTooSlow {
            url,
            what,
            received,
            limit: l,
            source,
            ..
        }) => {
            assert!(url.ends_with(&format!("/blobs/{digest}")), "{url}");
            assert!(what.contains(digest.as_str()), "{what}");
            assert!(received < limit.bytes, "{received}");
            assert_eq!(l, limit);
            assert_eq!(source.kind(), std::io::ErrorKind::TimedOut);
        }
        other => panic!("expected the rate error, got {other:?}"),
    }
    // Not resumed: a registry that drips would drip again.
    ended_after_one_get(&reg, started);

    // Ranged reads (a resumed copy, a read-back) are held to the same minimum.
    let mut s = app
        .fetch_blob_range(&digest, 100..50_000)
        .await
        .expect("opened");
    let mut last = None;
    while let Some(item) = s.next().await {
        if let Err(e) = item {
            last = Some(e);
        }
    }
    assert!(
        matches!(last, Some(Error::TransferTooSlow { .. })),
        "{last:?}"
    );
}

#[tokio::test]
async fn a_copy_does_not_retry_a_transfer_below_the_minimum_rate() {
    let reg = FakeRegistry::start(Faults::default()).await;
    let config_blob = br#"{"architecture":"amd64","os":"linux"}"#;
    let cfg_desc = Descriptor::new(
        media_types::OCI_CONFIG,
        reg.put_blob(config_blob),
        config_blob.len() as u64,
    );
    let layer = random(50_000);
    reg.put_blob(&layer);
    let manifest = image_manifest(&cfg_desc, &[blob_desc(&layer)]);
    reg.put_manifest("app", "v1", media_types::OCI_MANIFEST, &manifest);
    reg.state().faults.drip_blob_gets = Some(Duration::from_millis(20));
    let limit = MinRate::new(10_000, Duration::from_millis(300));
    let app = repo(&reg, config(&reg.addr).with_min_rate(Some(limit)), "app");
    let dst = oci_store::MemoryStore::new();
    let opts = oci_store::CopyOptions::default().with_retries(3, Duration::from_millis(5));
    let copied = tokio::time::timeout(
        Duration::from_secs(60),
        oci_store::copy(&app, "v1", &dst, None, &opts),
    )
    .await
    .expect("failed within 60 s");
    let Err(oci_store::CopyError::Failed { report, source, .. }) = copied else {
        panic!("expected a failed copy, got {copied:?}")
    };
    let chain = oci_store::error_chain(&*source);
    assert!(chain.contains("below the minimum"), "{chain}");
    assert_eq!(report.retried, 0, "{report}");
    let failed: Vec<u32> = report
        .nodes
        .iter()
        .filter(|n| n.outcome == oci_store::NodeOutcome::Failed)
        .map(|n| n.attempts)
        .collect();
    assert!(
        !failed.is_empty() && failed.iter().all(|a| *a == 1),
        "{failed:?}"
    );
    let blob_gets = reg
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.target.contains("/blobs/"))
        .count();
    assert_eq!(blob_gets, failed.len(), "one GET per failed blob");
}

#[tokio::test]
async fn a_slow_but_moving_transfer_is_not_failed_by_the_minimum_rate() {
    let reg = FakeRegistry::start(Faults {
        drip_blob_gets: Some(Duration::from_millis(1)),
        ..Faults::default()
    })
    .await;
    // About a byte a millisecond (less under load) against a minimum of 10 bytes a second:
    // a margin of 100 times.
    let data = random(1500);
    reg.put_blob(&data);
    let cfg = config(&reg.addr).with_min_rate(Some(MinRate::new(10, Duration::from_secs(1))));
    let app = repo(&reg, cfg, "app");
    let desc = blob_desc(&data);
    assert_eq!(collect(&app, &desc).await.expect("slow pull"), data);
    // The consumer's own pauses (a slow destination) are not the peer's slowness: reading a
    // chunk every 1.5 s, longer than the window, still passes.
    reg.state().faults.drip_blob_gets = None;
    let big = random(1_500_000);
    reg.put_blob(&big);
    let mut s = app.fetch_blob(&blob_desc(&big)).await.expect("opened");
    let mut got = Vec::new();
    let mut pauses = 0;
    while let Some(c) = s.next().await {
        got.extend_from_slice(&c.expect("not failed by our own pauses"));
        if pauses < 2 {
            pauses += 1;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
    assert_eq!(got, big);
}

#[tokio::test]
async fn a_drip_fed_manifest_fails_at_the_request_deadline() {
    let reg = FakeRegistry::start(Faults {
        drip_manifests: Some(Duration::from_millis(50)),
        ..Faults::default()
    })
    .await;
    let config_blob = br#"{"architecture":"amd64","os":"linux"}"#;
    let cfg_desc = Descriptor::new(
        media_types::OCI_CONFIG,
        reg.put_blob(config_blob),
        config_blob.len() as u64,
    );
    let manifest = image_manifest(&cfg_desc, &[]);
    reg.put_manifest("app", "v1", media_types::OCI_MANIFEST, &manifest);
    let deadline = Duration::from_secs(1);
    let cfg = config(&reg.addr).with_request_timeout(deadline);
    let app = repo(&reg, cfg, "app");
    let started = Instant::now();
    // A manifest of some 300 bytes at 20 bytes a second: 15 s, against a deadline of 1 s.
    let result = tokio::time::timeout(Duration::from_secs(60), app.fetch_manifest("v1"))
        .await
        .expect("failed within 60 s");
    match result {
        Err(Error::DeadlineExceeded {
            url, limit, source, ..
        }) => {
            assert!(url.ends_with("/v2/app/manifests/v1"), "{url}");
            assert_eq!(limit, deadline);
            assert_eq!(source.kind(), std::io::ErrorKind::TimedOut);
        }
        other => panic!("expected the deadline error, got {other:?}"),
    }
    // Not retried: the time it was given is spent.
    ended_after_one_get(&reg, started);
}

#[tokio::test]
async fn a_range_ignored_by_the_registry_is_read_from_the_start_not_reported_as_200() {
    let reg = FakeRegistry::start(Faults {
        ignore_ranges: true,
        ..Faults::default()
    })
    .await;
    let data = random(300_000);
    let digest = reg.put_blob(&data);
    let app = repo(&reg, config(&reg.addr), "app");
    // It used to fail with "registry answered 200: no error details".
    let got = app
        .fetch_range_bytes(&digest, 1000, 250_000)
        .await
        .expect("range served from the whole body");
    assert_eq!(&got[..], &data[1000..250_000]);
}

#[tokio::test]
async fn a_copy_resumed_against_a_registry_that_ignores_range_completes() {
    let reg = FakeRegistry::start(Faults {
        ignore_ranges: true,
        ..Faults::default()
    })
    .await;
    let config_blob = br#"{"architecture":"amd64","os":"linux"}"#;
    let cfg_desc = Descriptor::new(
        media_types::OCI_CONFIG,
        reg.put_blob(config_blob),
        config_blob.len() as u64,
    );
    let layer = random(2_000_000);
    reg.put_blob(&layer);
    let layer_desc = blob_desc(&layer);
    let manifest = image_manifest(&cfg_desc, std::slice::from_ref(&layer_desc));
    reg.put_manifest("app", "v1", media_types::OCI_MANIFEST, &manifest);
    // The first body stalls after half its bytes and the client does not resume by itself:
    // the copy's retry resumes the partial ingest with a Range the registry ignores.
    reg.state().faults.stall_blob_gets = 1;
    let mut cfg = config(&reg.addr);
    cfg.resume_attempts = 0;
    cfg.read_timeout = Duration::from_millis(300);
    let app = repo(&reg, cfg, "app");
    let dst = oci_store::MemoryStore::new();
    let opts = oci_store::CopyOptions::default().with_retries(2, Duration::from_millis(5));
    let report = oci_store::copy(&app, "v1", &dst, None, &opts)
        .await
        .unwrap_or_else(|e| panic!("{}", oci_store::error_chain(&e)));
    assert_eq!(report.retried, 1);
    assert!(report.bytes_resumed > 0, "{report}");
    use oci_store::ReadStore;
    let stored = oci_store::collect(dst.fetch(&layer_desc).await.expect("stored"), 1 << 30)
        .await
        .expect("verified");
    assert_eq!(&stored[..], &layer[..]);
    assert!(
        reg.seen().iter().any(|s| s.range.is_some()),
        "the retry asked for a range"
    );
}

#[tokio::test]
async fn an_absurd_chunk_min_length_is_capped_at_max_chunk_size() {
    let reg = FakeRegistry::start(Faults {
        chunk_min_length: Some(u64::MAX),
        ..Faults::default()
    })
    .await;
    let mut cfg = config(&reg.addr).with_chunked_uploads(&reg.addr, u64::MAX);
    cfg.monolithic_max = 1024;
    cfg.chunk_size = 256 * 1024;
    cfg.max_chunk_size = 1024 * 1024;
    let app = repo(&reg, cfg, "app");
    let data = random(3 * 1024 * 1024 + 1);
    // The registry's number used to size the chunk buffer: a capacity overflow panic.
    match app
        .push_blob(&blob_desc(&data), source(&data, 70_000))
        .await
        .expect("push")
    {
        BlobPush::Chunked { chunks, .. } => assert_eq!(chunks, 4),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_copy_does_not_retry_what_the_registry_refuses_to_authorize() {
    let reg = FakeRegistry::start(Faults {
        bearer: Some(BearerAuth {
            basic: Some(("alice".into(), "secret".into())),
            expires_in: 300,
            refresh_token: None,
        }),
        ..Faults::default()
    })
    .await;
    // No credentials: the token service refuses, and will refuse again.
    let app = repo(&reg, config(&reg.addr), "app");
    let dst = oci_store::MemoryStore::new();
    let opts = oci_store::CopyOptions::default().with_retries(3, Duration::from_millis(5));
    let e = oci_store::copy(&app, "v1", &dst, None, &opts)
        .await
        .expect_err("not authorized");
    let chain = oci_store::error_chain(&e);
    assert!(chain.contains("not authorized (401)"), "{chain}");
    let token_requests = reg
        .seen()
        .iter()
        .filter(|s| s.target.starts_with("/token"))
        .count();
    assert_eq!(token_requests, 1, "not retried by the copy");
}

/// A slow peer was given up on: within the generous bound of 60 s (the limits under test are a
/// second or less), after exactly one GET.
fn ended_after_one_get(reg: &FakeRegistry, started: Instant) {
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    let gets = reg.seen().iter().filter(|s| s.method == "GET").count();
    assert_eq!(gets, 1, "GET requests sent");
}

// ---- Streamed uploads (issue 17) ----------------------------------------------------------

const MIB: usize = 1 << 20;

/// Hash checkpoints every MiB, streamed `PUT`s up to 256 KiB.
fn streaming_config(addr: &str) -> ClientConfig {
    let mut cfg = config(addr);
    cfg.chunk_size = MIB as u64;
    cfg.monolithic_max = 256 * 1024;
    cfg
}

/// Waits (at most a minute) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited a minute for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The requests that carried upload bytes (`PATCH`, and `PUT` to an upload location): method,
/// body length, whether the body was streamed (chunked).
fn upload_requests(reg: &FakeRegistry) -> Vec<(String, usize, bool)> {
    reg.seen()
        .into_iter()
        .filter(|s| {
            s.target.contains("/blobs/uploads/") && matches!(s.method.as_str(), "PATCH" | "PUT")
        })
        .map(|s| (s.method, s.body_len, s.streamed))
        .collect()
}

/// The one upload session the fake registry holds: how many bytes it has.
fn session_bytes(reg: &FakeRegistry) -> usize {
    let s = reg.state();
    assert_eq!(s.uploads.len(), 1, "one upload session");
    s.uploads.values().map(|(_, d)| d.len()).sum()
}

fn stored(reg: &FakeRegistry, desc: &Descriptor) -> Option<Vec<u8>> {
    reg.state().blobs.get(desc.digest.as_str()).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_streams_its_source_into_one_request_while_reading_it() {
    let reg = FakeRegistry::start(Faults::default()).await;
    let app = repo(&reg, streaming_config(&reg.addr), "app");
    let data = Bytes::from(random(12 * MIB + 5));
    let desc = blob_desc(&data);
    // Piece k is handed out only once the registry received all but the last three pieces
    // before it: a client that collected the body (or a chunk of it) before sending would
    // never get there, and the source fails after a minute.
    let received = reg.received.clone();
    let pieces: Vec<Bytes> = (0..data.len().div_ceil(MIB))
        .map(|i| data.slice(i * MIB..((i + 1) * MIB).min(data.len())))
        .collect();
    let src: BlobSource = Box::pin(
        futures_util::stream::iter(pieces.into_iter().enumerate()).then(move |(i, piece)| {
            let received = received.clone();
            async move {
                let need = (i.saturating_sub(3) * MIB) as u64;
                let start = Instant::now();
                while received.load(std::sync::atomic::Ordering::SeqCst) < need {
                    if start.elapsed() > Duration::from_secs(60) {
                        return Err(std::io::Error::other(format!(
                            "piece {i}: the registry never received the first {need} bytes"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Ok(piece)
            }
        }),
    );
    assert_eq!(
        app.push_blob(&desc, src).await.expect("push"),
        BlobPush::Streamed
    );
    assert_eq!(
        upload_requests(&reg),
        [("PATCH".into(), data.len(), true), ("PUT".into(), 0, false)],
        "one streamed PATCH with the whole blob, then the closing PUT"
    );
    assert_eq!(stored(&reg, &desc).as_deref(), Some(&data[..]));

    // A small blob: one PUT carrying it, sent after the content verified.
    let small = random(100_000);
    let small_desc = blob_desc(&small);
    let before = upload_requests(&reg).len();
    assert_eq!(
        app.push_blob(&small_desc, source(&small, 30_000))
            .await
            .expect("push"),
        BlobPush::Monolithic
    );
    assert_eq!(
        upload_requests(&reg)[before..],
        [("PUT".into(), small.len(), false)]
    );
    assert_eq!(stored(&reg, &small_desc), Some(small));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_streamed_upload_resumes_from_the_registrys_offset_sending_nothing_twice() {
    let cut = 5 * MIB + 12_345;
    let reg = FakeRegistry::start(Faults {
        reset_patches: 1,
        reset_patch_at: Some(cut),
        ..Faults::default()
    })
    .await;
    let app = repo(&reg, streaming_config(&reg.addr), "app");
    let layer = random(9 * MIB + 7);
    let layer_desc = blob_desc(&layer);
    let local = image_with_layer(&layer_desc, &layer).await;
    let opts = oci_store::CopyOptions::default().with_retries(2, Duration::from_millis(5));
    let report = oci_store::copy(&local, "v1", &app, Some("v1"), &opts)
        .await
        .unwrap_or_else(|e| panic!("{}", oci_store::error_chain(&e)));
    let node = report
        .nodes
        .iter()
        .find(|n| n.desc.digest == layer_desc.digest)
        .expect("layer in the report");
    assert_eq!(node.attempts, 2, "{report}");
    assert_eq!(
        node.resumed_from,
        5 * MIB as u64,
        "the hash checkpoint below the registry's offset: {report}"
    );
    // Every byte reached the registry once: the cut request's and the resumed one's.
    let patches: Vec<(usize, bool)> = upload_requests(&reg)
        .into_iter()
        .filter(|(m, ..)| m == "PATCH")
        .map(|(_, n, streamed)| (n, streamed))
        .collect();
    assert_eq!(patches, [(cut, true), (layer.len() - cut, true)]);
    assert_eq!(stored(&reg, &layer_desc), Some(layer));
}

#[test]
fn a_killed_process_resumes_its_streamed_upload_from_the_registrys_offset() {
    // The registry lives in a runtime of its own; the "process" that is killed in another.
    let server = common::runtime();
    let reg = server.block_on(FakeRegistry::start(Faults::default()));
    let state = common::registry::temp_dir("killed-upload").join("uploads");
    let cfg = streaming_config(&reg.addr).with_upload_state_dir(&state);
    let data = Bytes::from(random(8 * MIB + 99));
    let desc = blob_desc(&data);

    let process = common::runtime();
    let writer = process.block_on(async {
        use oci_store::WriteStore;
        let app = repo(&reg, cfg.clone(), "app");
        let mut w = app.writer("layer", &desc).await.expect("writer");
        w.write(data.slice(..6 * MIB + 500)).await.expect("write");
        let received = reg.received.clone();
        until("5 MiB at the registry", || {
            received.load(std::sync::atomic::Ordering::SeqCst) >= 5 * MIB as u64
        })
        .await;
        w
    });
    common::kill(process, writer);

    server.block_on(async {
        use oci_store::WriteStore;
        // The registry keeps what the cut request carried.
        until("the cut request", || {
            upload_requests(&reg).iter().any(|(m, ..)| m == "PATCH")
        })
        .await;
        let held = session_bytes(&reg);
        assert!(held >= 5 * MIB - 64 * 1024, "{held}");
        let app = repo(&reg, cfg.clone(), "app");
        let mut w = app.writer("layer", &desc).await.expect("resume");
        let from = w.offset() as usize;
        assert_eq!(from, held / MIB * MIB, "the checkpoint at or below {held}");
        w.write(data.slice(from..)).await.expect("write the rest");
        w.commit().await.expect("commit");
        let patches: Vec<usize> = upload_requests(&reg)
            .into_iter()
            .filter(|(m, ..)| m == "PATCH")
            .map(|(_, n, _)| n)
            .collect();
        assert_eq!(
            patches,
            [held, data.len() - held],
            "the bytes the registry held were not sent again"
        );
        assert_eq!(stored(&reg, &desc).as_deref(), Some(&data[..]));
    });
    std::fs::remove_dir_all(state.parent().expect("parent")).expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_refuses_streamed_uploads_gets_chunks_honouring_its_limits() {
    use oci_store::WriteStore;
    let reg = FakeRegistry::start(Faults {
        refuse_streamed_uploads: Some(411),
        max_request_body: Some(4 * MIB),
        chunk_min_length: Some(3 * MIB as u64),
        ..Faults::default()
    })
    .await;
    let mut cfg = streaming_config(&reg.addr);
    cfg.chunk_size = 2 * MIB as u64;
    // Not listed as wanting chunks: the copy's first attempt streams, is refused, and its
    // retry sends chunks of the registry's minimum (3 MiB, above the 2 MiB preferred).
    let app = repo(&reg, cfg.clone(), "app");
    let layer = random(9 * MIB + 3);
    let layer_desc = blob_desc(&layer);
    let local = image_with_layer(&layer_desc, &layer).await;
    let (capture, log) = Capture::new();
    let _guard = tracing::subscriber::set_default(capture);
    let opts = oci_store::CopyOptions::default().with_retries(2, Duration::from_millis(5));
    let report = oci_store::copy(&local, "v1", &app, Some("v1"), &opts)
        .await
        .unwrap_or_else(|e| panic!("{}", oci_store::error_chain(&e)));
    let node = report
        .nodes
        .iter()
        .find(|n| n.desc.digest == layer_desc.digest)
        .expect("layer in the report");
    assert_eq!(node.attempts, 2, "{report}");
    assert!(
        common::capture::text(&log).contains("sent in chunks from now on"),
        "the fallback is logged"
    );
    let requests = upload_requests(&reg);
    let refused = requests
        .iter()
        .position(|(_, _, streamed)| *streamed)
        .expect("a streamed attempt");
    let after: Vec<(String, usize, bool)> = requests[refused + 1..].to_vec();
    assert_eq!(
        after,
        [
            ("PATCH".into(), 3 * MIB, false),
            ("PATCH".into(), 3 * MIB, false),
            ("PATCH".into(), 3 * MIB, false),
            ("PUT".into(), 3, false),
        ],
        "chunks of the registry's minimum, the rest with the closing PUT"
    );
    assert_eq!(stored(&reg, &layer_desc), Some(layer));
    // The same handle sends chunks at once from now on (3 MiB and 2 MiB).
    let data = random(5 * MIB);
    let before = upload_requests(&reg).len();
    let pushed = app
        .push_blob(&blob_desc(&data), source(&data, MIB))
        .await
        .expect("push");
    assert!(
        matches!(pushed, BlobPush::Chunked { chunks: 2, .. }),
        "{pushed:?}"
    );
    assert!(upload_requests(&reg)[before..].iter().all(|(.., s)| !s));

    // Listed as wanting chunks of at most 4 MiB (with a registry minimum of 3 MiB and a
    // preferred 8 MiB): never a streamed request, chunks of 4 MiB.
    reg.state().faults.chunk_min_length = None;
    let mut listed_cfg = cfg.with_chunked_uploads(&reg.addr, 4 * MIB as u64);
    listed_cfg.chunk_size = 8 * MIB as u64;
    let listed = repo(&reg, listed_cfg, "listed");
    let data = random(9 * MIB + 11);
    let d = blob_desc(&data);
    let before = upload_requests(&reg).len();
    let mut w = listed.writer("k", &d).await.expect("writer");
    for piece in data.chunks(700_000) {
        w.write(Bytes::copy_from_slice(piece)).await.expect("write");
    }
    w.commit().await.expect("commit");
    let sizes: Vec<(usize, bool)> = upload_requests(&reg)[before..]
        .iter()
        .map(|(_, n, s)| (*n, *s))
        .collect();
    assert_eq!(
        sizes,
        [(4 * MIB, false), (4 * MIB, false), (MIB + 11, false)]
    );
    assert_eq!(stored(&reg, &d), Some(data));
}

/// On a current-thread runtime a dropped writer cannot wait for its request to end: it ends
/// in the background, and the next writer of the key waits for it, then resumes from the
/// registry's offset.
#[tokio::test]
async fn a_writer_dropped_on_a_current_thread_runtime_pauses_in_the_background() {
    use oci_store::WriteStore;
    let reg = FakeRegistry::start(Faults::default()).await;
    let app = repo(&reg, streaming_config(&reg.addr), "app");
    let data = Bytes::from(random(6 * MIB + 1));
    let desc = blob_desc(&data);
    let mut w = app.writer("k", &desc).await.expect("writer");
    w.write(data.slice(..3 * MIB + 300_000))
        .await
        .expect("write");
    drop(w);
    let mut w = app
        .writer("k", &desc)
        .await
        .expect("reopen after the pause");
    assert_eq!(session_bytes(&reg), 3 * MIB + 300_000, "ended cleanly");
    assert_eq!(
        w.offset(),
        3 * MIB as u64,
        "the checkpoint below the registry's offset"
    );
    w.write(data.slice(3 * MIB..))
        .await
        .expect("write the rest");
    w.commit().await.expect("commit");
    let patches: Vec<usize> = upload_requests(&reg)
        .into_iter()
        .filter(|(m, ..)| m == "PATCH")
        .map(|(_, n, _)| n)
        .collect();
    assert_eq!(patches, [3 * MIB + 300_000, 3 * MIB - 300_000 + 1]);
    assert_eq!(stored(&reg, &desc).as_deref(), Some(&data[..]));
}

/// A registry found holding fewer bytes than the newest checkpoint covers (bytes lost with a
/// connection) resumes from an older checkpoint, or from the start; what it holds is never
/// sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_holding_fewer_bytes_resumes_from_an_older_checkpoint() {
    use oci_store::WriteStore;
    let reg = FakeRegistry::start(Faults::default()).await;
    let app = repo(&reg, streaming_config(&reg.addr), "app");
    let data = Bytes::from(random(7 * MIB + 3));
    let desc = blob_desc(&data);
    for (keep, from) in [(3 * MIB + 200_000, 3 * MIB), (700_000, 0)] {
        let mut w = app.writer("k", &desc).await.expect("writer");
        w.write(data.slice(..5 * MIB + 10)).await.expect("write");
        drop(w);
        assert_eq!(session_bytes(&reg), 5 * MIB + 10);
        for (_, d) in reg.state().uploads.values_mut() {
            d.truncate(keep);
        }
        let before = upload_requests(&reg).len();
        let mut w = app.writer("k", &desc).await.expect("resume");
        assert_eq!(w.offset(), from as u64, "kept {keep}");
        w.write(data.slice(from..)).await.expect("write the rest");
        w.commit().await.expect("commit");
        let sent: Vec<usize> = upload_requests(&reg)[before..]
            .iter()
            .map(|(_, n, _)| *n)
            .collect();
        assert_eq!(sent, [data.len() - keep, 0], "kept {keep}");
        assert_eq!(stored(&reg, &desc).as_deref(), Some(&data[..]));
        reg.state().blobs.clear();
    }
}

/// A small blob is asked with the request that starts its upload (a mount from the repository
/// itself): one `POST`, no `HEAD`. A registry that refuses such a mount gets a `HEAD` and a
/// plain `POST` for that blob and every later one (through the same handle); a blob above
/// `probe_upload_max` always gets the `HEAD`. Every blob lands.
#[tokio::test]
async fn small_blobs_are_asked_with_the_post_that_starts_their_upload() {
    let small: Vec<Vec<u8>> = (0..3).map(|i| common::random(1000, 77 + i)).collect();
    let large = random(5000);
    // Pushes `blobs` into `app` of `reg`, each answered `want` and then stored; returns the
    // HEADs, the POSTs of a mount from `app` itself and all the requests the pushes made.
    async fn push_all(
        reg: &FakeRegistry,
        blobs: &[&Vec<u8>],
        want: BlobPush,
    ) -> (usize, usize, usize) {
        let mut config = config(&reg.addr);
        config.probe_upload_max = 4096;
        let app = repo(reg, config, "app");
        let before = reg.seen().len();
        for d in blobs {
            let desc = blob_desc(d);
            let got = app.push_blob(&desc, source(d, 512)).await.expect("push");
            assert_eq!(got, want);
            assert_eq!(stored(reg, &desc).as_deref(), Some(&d[..]));
        }
        let seen = reg.seen()[before..].to_vec();
        let heads = seen.iter().filter(|s| s.method == "HEAD").count();
        let probes = seen
            .iter()
            .filter(|s| s.method == "POST" && s.target.contains("&from=app"))
            .count();
        (heads, probes, seen.len())
    }
    let all: Vec<&Vec<u8>> = small.iter().collect();

    let reg = FakeRegistry::start(Faults::default()).await;
    // One POST each (answered 202 with a session), then the PUT with the bytes.
    assert_eq!(push_all(&reg, &all, BlobPush::Monolithic).await, (0, 3, 6));
    // Again: the registry has them, one request each (answered 201), nothing sent.
    assert_eq!(push_all(&reg, &all, BlobPush::Skipped).await, (0, 3, 3));
    // Above the limit: HEAD first, no probe.
    let (heads, probes, _) = push_all(&reg, &[&large], BlobPush::Monolithic).await;
    assert_eq!((heads, probes), (1, 0));

    for status in [400, 404, 405] {
        let reg = FakeRegistry::start(Faults {
            refuse_mount_from_self: Some(status),
            ..Faults::default()
        })
        .await;
        // One refused probe, then HEAD, POST and PUT for each blob.
        assert_eq!(
            push_all(&reg, &all, BlobPush::Monolithic).await,
            (3, 1, 10),
            "{status}"
        );
    }
}

/// The requests of one image copied into a registry and back (issue 15: requests are the
/// registry's CPU): into an empty repository each blob is asked for at the blob endpoint only
/// (no manifest `HEAD` for a layer), and the root goes up in one `PUT` by tag (no `PUT` by
/// digest, no `GET` to read it back for the tag), without being asked for first when the
/// caller found the tag missing (`CopyOptions::tag_differs`, as the sync does); out of it, the
/// tag is resolved and the manifest read in one `GET`. With a ledger of shared blobs, a copy
/// into another repository mounts each blob without asking first, and a copy again asks for
/// each blob and the root once, skips them all and mounts nothing.
#[tokio::test]
async fn a_copy_asks_each_endpoint_once_and_tags_in_its_manifest_put() {
    let reg = FakeRegistry::start(Faults::default()).await;
    let app = repo(&reg, config(&reg.addr), "app");
    let layer = random(3000);
    let layer_desc = blob_desc(&layer);
    let local = image_with_layer(&layer_desc, &layer).await;
    let root = {
        use oci_store::TagStore;
        local.resolve("v1").await.expect("root")
    };
    let again = oci_store::CopyOptions::default().with_shared_blobs(oci_store::SharedBlobs::new());
    let first = again.clone().with_tag_differs(true);
    // The requests of a copy into `to`, and its report.
    let copy_into = |to: &'static str, opts: &oci_store::CopyOptions| {
        let (reg, local, opts) = (&reg, &local, opts.clone());
        async move {
            let dst = repo(reg, config(&reg.addr), to);
            let before = reg.seen().len();
            let report = oci_store::copy(local, "v1", &dst, Some("v1"), &opts)
                .await
                .unwrap_or_else(|e| panic!("{}", oci_store::error_chain(&e)));
            let seen: Vec<(String, String)> = reg.seen()[before..]
                .iter()
                .map(|s| (s.method.clone(), s.target.clone()))
                .collect();
            (seen, report)
        }
    };
    let count = |seen: &[(String, String)], method: &str, part: &str| {
        seen.iter()
            .filter(|(m, t)| m == method && t.contains(part))
            .count()
    };
    let (seen, _) = copy_into("app", &first).await;
    let count_app = |method: &str, part: &str| count(&seen, method, part);
    // The config and the layer: no HEAD; each asked with the request that starts its upload
    // (a mount from the repository itself, which the registry answers 202 with a session),
    // then sent.
    assert_eq!(count_app("HEAD", "/blobs/"), 0, "{seen:?}");
    assert_eq!(count_app("POST", "&from=app"), 2, "{seen:?}");
    assert_eq!(count_app("POST", "/blobs/uploads/"), 2, "{seen:?}");
    assert_eq!(count_app("PUT", "/blobs/uploads/"), 2, "{seen:?}");
    // The root: one PUT by tag, not asked for first; nothing read back.
    assert_eq!(count_app("HEAD", "/manifests/"), 0, "{seen:?}");
    assert_eq!(count_app("PUT", "/manifests/"), 1, "{seen:?}");
    assert_eq!(count_app("PUT", "/manifests/v1"), 1, "{seen:?}");
    assert_eq!(count_app("GET", "/manifests/"), 0, "{seen:?}");
    // The registry has the manifest by digest too, and the tag names it.
    use oci_store::{ReadStore, TagStore};
    assert_eq!(app.resolve("v1").await.expect("tag").digest, root.digest);
    assert_eq!(
        app.stat_descriptor(&root).await.expect("stat"),
        Some(root.size)
    );
    assert_eq!(
        app.stat_descriptor(&layer_desc).await.expect("stat"),
        Some(3000)
    );

    // Again into the same repository, with no ledger: the same requests start no upload, the
    // registry answering 201 (it has them); none is sent, both are reported skipped (the
    // root goes up with its tag, as the caller said the tag differs).
    let fresh = oci_store::CopyOptions::default().with_tag_differs(true);
    let (seen, report) = copy_into("app", &fresh).await;
    assert_eq!(count(&seen, "HEAD", "/blobs/"), 0, "{seen:?}");
    assert_eq!(count(&seen, "POST", "&from=app"), 2, "{seen:?}");
    assert_eq!(count(&seen, "PUT", "/blobs/"), 0, "{seen:?}");
    assert_eq!(count(&seen, "PATCH", "/blobs/"), 0, "{seen:?}");
    assert_eq!(
        (report.mounted, report.skipped, report.bytes_copied),
        (0, 2, root.size),
        "{report}"
    );

    // Into another repository, the ledger knowing where the blobs are: each mounted at once,
    // no blob asked for.
    let (seen, report) = copy_into("other", &first).await;
    assert_eq!(count(&seen, "HEAD", "/blobs/"), 0, "{seen:?}");
    assert_eq!(count(&seen, "POST", "mount="), 2, "{seen:?}");
    assert_eq!(count(&seen, "PUT", "/blobs/"), 0, "{seen:?}");
    assert_eq!(report.mounted, 2, "{report}");
    // Again, without `tag_differs`: the ledger knows the blobs are there, the registry is
    // asked for them and the root (and says it has them); the tag is written again.
    let (seen, report) = copy_into("other", &again).await;
    assert_eq!(count(&seen, "HEAD", "/blobs/"), 2, "{seen:?}");
    assert_eq!(count(&seen, "HEAD", "/manifests/"), 1, "{seen:?}");
    assert_eq!(count(&seen, "POST", "/blobs/"), 0, "{seen:?}");
    assert_eq!(
        (
            report.copied,
            report.mounted,
            report.skipped,
            report.bytes_copied
        ),
        (0, 0, 3, 0),
        "{report}"
    );
    assert_eq!(count(&seen, "PUT", "/manifests/v1"), 1, "{seen:?}");

    // Back out: one GET resolves the tag and brings the manifest.
    let before = reg.seen().len();
    let back = oci_store::MemoryStore::new();
    oci_store::copy(&app, "v1", &back, Some("v1"), &again)
        .await
        .unwrap_or_else(|e| panic!("{}", oci_store::error_chain(&e)));
    let pulled: Vec<(String, String)> = reg.seen()[before..]
        .iter()
        .map(|s| (s.method.clone(), s.target.clone()))
        .collect();
    let manifests: Vec<_> = pulled
        .iter()
        .filter(|(_, t)| t.contains("/manifests/"))
        .collect();
    assert_eq!(manifests.len(), 1, "{pulled:?}");
    assert_eq!(manifests[0].0, "GET", "{pulled:?}");
    assert!(manifests[0].1.ends_with("/manifests/v1"), "{pulled:?}");
    assert_eq!(back.resolve("v1").await.expect("tag").digest, root.digest);
}
