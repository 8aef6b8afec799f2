//! Copy through the client crate's fault-injecting registry (in-process HTTP): with the
//! client's own retries turned off, dropped connections and 503 storms reach `copy()`, which
//! retries the piece of content that failed without restarting the graph; phantom blobs (the
//! stale-cache lie) are found by the verify mode and uploaded again.

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
    let opts = CopyOptions::default()
        .with_jobs(2)
        .with_retries(5, Duration::from_millis(10));
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
