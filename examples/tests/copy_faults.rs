//! Copy through the client crate's fault-injecting registry (in-process HTTP): with the
//! client's own retries turned off, dropped connections and 503 storms reach `copy()`, which
//! retries the piece of content that failed without restarting the graph; phantom blobs (the
//! stale-cache lie) are found by the verify mode and uploaded again; the copy example's retry
//! budget against a registry refusing a manifest PUT with a 500.

mod common;
#[path = "../../crates/oci-distribution-client/tests/common/fault.rs"]
mod fault;

use std::collections::HashMap;
use std::time::Duration;

use fault::{FakeRegistry, Faults};
use oci_distribution_client::{Client, ClientConfig, RetryPolicy};
use oci_examples::sample;
use oci_store::{
    CopyOptions, LayoutStore, MemoryStore, NodeOutcome, ReadStore, TagStore, VerifyMode, copy, walk,
};

fn client(addr: &str) -> Client {
    let mut c = ClientConfig::default()
        .with_plain_http(addr)
        .with_retry(RetryPolicy::none());
    c.docker_config = false;
    c.proxy_from_env = false;
    c.resume_attempts = 0;
    Client::new(c).unwrap()
}

async fn complete<S: ReadStore + TagStore>(s: &S, tag: &str) -> usize {
    let root = s.resolve(tag).await.unwrap();
    let all = walk(s, &root, 8).await.unwrap();
    for d in &all {
        assert_eq!(
            s.fetch_bytes(d, 1 << 30).await.unwrap().len() as u64,
            d.size
        );
    }
    all.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_per_piece_of_content() {
    let reg = FakeRegistry::start(Faults::default()).await;
    let repo = client(&reg.addr)
        .repository_by_name(&reg.addr, "faulty/app")
        .unwrap();
    let src = LayoutStore::open(sample::committed_path()).await.unwrap();
    copy(&src, "sample", &repo, Some("v1"), &CopyOptions::default())
        .await
        .unwrap();

    // Now the registry drops three blob downloads mid-body and answers 503 three times.
    {
        let mut st = reg.state();
        st.faults.reset_blob_gets = 3;
        st.faults.storm_503 = 3;
    }
    let dst = MemoryStore::new();
    // The budget is the whole copy's: enough for the 6 faults (3 resets, 3 503s).
    let opts = CopyOptions::default()
        .with_jobs(2)
        .with_retries(8, Duration::from_millis(10));
    let r = copy(&repo, "v1", &dst, None, &opts).await.unwrap();
    assert!(r.retried >= 3, "{r}");
    assert_eq!(r.copied, 11, "{r}");
    // Only the content that failed was tried again.
    let retried: Vec<_> = r.nodes.iter().filter(|n| n.attempts > 1).collect();
    assert!(!retried.is_empty() && retried.len() < 11, "{r:?}");
    assert_eq!(complete(&dst, "v1").await, 11);

    // Pushing through 503s, tag included: retried where they hit, the image complete.
    let other = client(&reg.addr)
        .repository_by_name(&reg.addr, "faulty/other")
        .unwrap();
    reg.state().faults.storm_503 = 4;
    let r = copy(&dst, "v1", &other, None, &opts).await.unwrap();
    assert!(r.retried >= 1, "{r}");
    assert_eq!(complete(&other, "v1").await, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phantom_blobs_are_found_and_uploaded_again() {
    let (all, index) = sample::contents().unwrap();
    let layer = all[0].0.clone();
    let mut phantoms = HashMap::new();
    phantoms.insert(layer.digest.to_string(), layer.size as usize);
    let reg = FakeRegistry::start(Faults {
        phantom_blobs: phantoms,
        ..Faults::default()
    })
    .await;
    let repo = client(&reg.addr)
        .repository_by_name(&reg.addr, "phantom/app")
        .unwrap();
    let src = LayoutStore::open(sample::committed_path()).await.unwrap();
    let opts = CopyOptions::default().with_verify(VerifyMode::Range);
    let r = copy(&src, "sample", &repo, Some("v1"), &opts)
        .await
        .unwrap();
    let node = r
        .nodes
        .iter()
        .find(|n| n.desc.digest == layer.digest)
        .unwrap();
    assert_eq!(node.outcome, NodeOutcome::Repaired, "{r}");
    assert_eq!(r.repaired, 1, "{r}");
    assert_eq!(repo.resolve("v1").await.unwrap().digest, *index.digest());
    assert_eq!(complete(&repo, "v1").await, 11);
}

/// A copy does not hash at the source (the destination's writer hashes every byte before it
/// makes anything visible): corrupted blob bodies from a registry still fail with a digest
/// mismatch naming both digests, and nothing of the image, not even its tag, appears in a
/// memory or a layout destination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_blobs_never_become_visible_at_the_destination() {
    let reg = FakeRegistry::start(Faults::default()).await;
    let repo = client(&reg.addr)
        .repository_by_name(&reg.addr, "corrupt/app")
        .unwrap();
    let src = LayoutStore::open(sample::committed_path()).await.unwrap();
    copy(&src, "sample", &repo, Some("v1"), &CopyOptions::default())
        .await
        .unwrap();
    let root = src.resolve("sample").await.unwrap();
    let graph = walk(&src, &root, 8).await.unwrap();
    reg.state().faults.corrupt_blobs = true;

    let dir = std::env::temp_dir().join(format!("oci-rs-corrupt-{}", std::process::id()));
    let layout = LayoutStore::open_with(&dir, &oci_store::LayoutOptions::create())
        .await
        .unwrap();
    let memory = MemoryStore::new();
    let opts = CopyOptions::default().with_retries(1, Duration::from_millis(1));
    for (name, dst) in [
        ("memory", &memory as &dyn oci_store::Store),
        ("layout", &layout as &dyn oci_store::Store),
    ] {
        let err = copy(&repo, "v1", dst, Some("v1"), &opts)
            .await
            .expect_err("corrupted blobs must fail the copy");
        let chain = oci_store::error_chain(&err);
        assert!(chain.contains("digest mismatch"), "{name}: {chain}");
        assert!(
            dst.tags().await.unwrap().is_empty(),
            "{name}: a tag was written"
        );
        for d in &graph {
            if !d.is_manifest() {
                assert_eq!(
                    dst.stat(&d.digest).await.unwrap(),
                    None,
                    "{name}: {} is visible",
                    d.digest
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 18, item 3, as a user sees it: the copy example's `--retries N` is the budget of the
/// whole copy, said so in `--help` (of sync too); against a registry that refuses the manifest
/// PUT with a 500 (as distribution 2.8 refuses layer `urls` its configuration does not allow),
/// the manifest PUTs are sent once each plus N in all (one per retry of the budget, shared by
/// the manifests pushed at once), the summary says the budget was spent, and the error quotes
/// the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_example_spends_one_budget_and_quotes_the_registry() {
    for name in ["copy", "sync"] {
        let out = std::process::Command::new(common::example(name))
            .arg("--help")
            .output()
            .unwrap();
        // Words, whatever the width the help is wrapped at.
        let help = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(help.contains("retry budget"), "{name}: {help}");
        assert!(help.contains("at most 1 + "), "{name}: {help}");
    }

    const REFUSAL: &str = "manifest invalid: urls not allowed";
    let reg = FakeRegistry::start(Faults::refuse_manifest_puts(
        500,
        "MANIFEST_INVALID",
        REFUSAL,
    ))
    .await;
    let home = common::TempDir::new("budget-home");
    let src = format!("oci:{}:sample", sample::committed_path().display());
    let dst = format!("docker://{}/team/app:v1", reg.addr);
    let bin = common::example("copy");
    let home_dir = home.0.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(["--plain-http", "--quiet", "--retries", "2", &src, &dst])
            .env("HOME", &home_dir)
            .env_remove("XDG_STATE_HOME")
            .env_remove("DOCKER_CONFIG")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let puts: Vec<String> = reg
        .seen()
        .into_iter()
        .filter(|s| s.method == "PUT" && s.target.contains("/manifests/"))
        .map(|s| s.target)
        .collect();
    let distinct: std::collections::HashSet<&String> = puts.iter().collect();
    // The sample's three platform manifests are pushed at once: each is sent once, and the
    // budget of 2 retries is shared by them (not 2 each).
    assert_eq!(distinct.len(), 3, "{puts:?}");
    assert_eq!(puts.len(), 3 + 2, "{puts:?}\n{stderr}");
    assert!(
        stderr.contains("retries: 2 used of a budget of 2 (spent)"),
        "{stderr}"
    );
    assert!(stderr.contains("retry budget of 2 spent"), "{stderr}");
    assert!(stderr.contains("500 Internal Server Error"), "{stderr}");
    assert!(stderr.contains("MANIFEST_INVALID"), "{stderr}");
    assert!(stderr.contains(REFUSAL), "{stderr}");
}
