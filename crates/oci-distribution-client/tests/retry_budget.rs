//! One retry budget per copy (issue 18, item 3): a copy through the registry adapter retries
//! within [`CopyOptions::retries`] in all, the client does not retry on its own inside it, and
//! the final error quotes what the registry said.
//!
//! What "the attempts equal the budget" means here: a request that fails every time is sent
//! once, then once more per retry of the budget, so `1 + N` times for a budget of `N`; the
//! budget is spent (`N` retries used) and the copy fails with the registry's answer. Counted in
//! requests the registry saw, never in seconds.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::fault::{FakeRegistry, Faults};
use oci_distribution_client::{Client, ClientConfig, Repository, RetryPolicy, media_types};
use oci_manifest::Descriptor;
use oci_manifest::build::ImageManifestBuilder;
use oci_store::{
    CopyError, CopyOptions, MemoryStore, NodeOutcome, RetryBudget, TagStore, WriteStore, copy,
    error_chain,
};

/// The client's own policy: 5 retries per request (the default), fast backoff so the direct
/// use below is quick. Inside a copy it must not apply.
fn client_config(addr: &str) -> ClientConfig {
    common::test_config(addr).with_retry(
        RetryPolicy::default().with_backoff(Duration::from_millis(1), Duration::from_millis(2)),
    )
}

fn repo(reg: &FakeRegistry, name: &str) -> Repository {
    Client::new(client_config(&reg.addr))
        .expect("client")
        .repository_by_name(&reg.addr, name)
        .expect("repository")
}

/// An image of a config and `layers` in memory, tagged `v1`; its layer descriptors.
async fn image(layers: &[&'static [u8]]) -> (MemoryStore, Vec<(Descriptor, Bytes)>) {
    let src = MemoryStore::new();
    let config = Bytes::from_static(b"{}");
    let config_desc = Descriptor::of(media_types::OCI_CONFIG, &config);
    src.push_bytes(&config_desc, config.clone()).await.unwrap();
    let mut builder = ImageManifestBuilder::oci(config_desc.clone());
    let mut blobs = vec![(config_desc, config)];
    for l in layers {
        let data = Bytes::from_static(l);
        let d = Descriptor::of(media_types::OCI_LAYER_TAR, &data);
        src.push_bytes(&d, data.clone()).await.unwrap();
        builder = builder.layer(d.clone());
        blobs.push((d, data));
    }
    let manifest = builder.build().unwrap();
    src.push_bytes(&manifest.descriptor(), manifest.raw().clone())
        .await
        .unwrap();
    src.tag(&manifest.descriptor(), "v1").await.unwrap();
    (src, blobs)
}

fn manifest_puts(reg: &FakeRegistry) -> usize {
    reg.seen()
        .iter()
        .filter(|s| s.method == "PUT" && s.target.contains("/manifests/"))
        .count()
}

/// A registry answering every manifest PUT with distribution's 500 `UNKNOWN`, and a handle on
/// one of its repositories.
async fn refusing_registry() -> (FakeRegistry, Repository) {
    let reg = FakeRegistry::start(Faults::refuse_manifest_puts(
        500,
        "UNKNOWN",
        "unknown error",
    ))
    .await;
    let dst = repo(&reg, "team/app");
    (reg, dst)
}

const REFUSAL: &str = "manifest invalid: layer urls not allowed by the registry's configuration";

#[tokio::test]
async fn a_manifest_put_answered_500_is_attempted_once_plus_the_budget() {
    let reg = FakeRegistry::start(Faults::refuse_manifest_puts(
        500,
        "MANIFEST_INVALID",
        REFUSAL,
    ))
    .await;
    let dst = repo(&reg, "team/app");
    let (src, _) = image(&[b"layer one"]).await;
    const BUDGET: u32 = 3;
    let opts = CopyOptions::default().with_retries(BUDGET, Duration::from_millis(1));

    let e = copy(&src, "v1", &dst, None, &opts).await.unwrap_err();

    // 1 attempt + BUDGET retries, not (1 + client retries) x (1 + copy retries).
    assert_eq!(manifest_puts(&reg), 1 + BUDGET as usize);
    let report = e.report();
    assert_eq!(report.retried, BUDGET as usize, "{report}");
    assert_eq!(report.retry_budget, BUDGET);
    assert!(report.retry_budget_spent);
    assert!(
        report.to_string().contains("3 retried (budget 3, spent)"),
        "{report}"
    );
    assert!(
        format!("{report:#}").contains("retried 3 times of a budget of 3 (spent)"),
        "{report:#}"
    );
    let failed: Vec<_> = report
        .nodes
        .iter()
        .filter(|n| n.outcome == NodeOutcome::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{report:#}");
    assert_eq!(failed[0].attempts, 1 + BUDGET);
    // The blobs went through once each: nothing else was retried.
    assert_eq!(report.copied, 2, "{report:#}");

    // The error says the budget was spent and quotes the registry.
    assert!(matches!(e, CopyError::Failed { .. }));
    assert!(e.to_string().contains("retry budget of 3 spent"), "{e}");
    let chain = error_chain(&e);
    assert!(chain.contains("500 Internal Server Error"), "{chain}");
    assert!(chain.contains("MANIFEST_INVALID"), "{chain}");
    assert!(chain.contains(REFUSAL), "{chain}");
    assert!(
        report
            .nodes
            .iter()
            .any(|n| n.error.as_deref().is_some_and(|m| m.contains(REFUSAL))),
        "{report:#}"
    );
}

/// A manifest the registry refuses as it stands (a `4xx` with `MANIFEST_INVALID`, `TAG_INVALID`
/// or `UNSUPPORTED`, or a `405`) is sent once: no retry can change the answer, and the budget
/// stays for what a retry can cure. A `4xx` about the upload session, or any `5xx`, is still
/// retried (the test above).
#[tokio::test]
async fn a_manifest_refused_as_it_stands_is_sent_once() {
    // (status, code, retried with a budget of 2): the same code in a 500 is the registry's
    // trouble and retried (distribution answers a refused manifest so, see above); a 400
    // about the upload session too.
    for (status, code, retried) in [
        (400, "MANIFEST_INVALID", 0),
        (400, "TAG_INVALID", 0),
        (400, "UNSUPPORTED", 0),
        (405, "UNSUPPORTED", 0),
        (405, "SOMETHING_ELSE", 0),
        (500, "MANIFEST_INVALID", 2),
        (400, "BLOB_UPLOAD_INVALID", 2),
    ] {
        let reg = FakeRegistry::start(Faults::refuse_manifest_puts(status, code, REFUSAL)).await;
        let dst = repo(&reg, "team/app");
        let (src, _) = image(&[b"layer one"]).await;
        let opts = CopyOptions::default().with_retries(2, Duration::from_millis(1));
        let e = copy(&src, "v1", &dst, None, &opts).await.unwrap_err();
        assert_eq!(manifest_puts(&reg), 1 + retried, "{status} {code}");
        let report = e.report();
        assert_eq!(report.retried, retried, "{status} {code}: {report}");
        assert_eq!(
            report.retry_budget_spent,
            retried == 2,
            "{status} {code}: {report}"
        );
        let chain = error_chain(&e);
        assert!(chain.contains(code), "{chain}");
        assert!(chain.contains(REFUSAL), "{chain}");
    }
}

#[tokio::test]
async fn a_budget_of_zero_sends_the_put_once() {
    let (reg, dst) = refusing_registry().await;
    let (src, _) = image(&[b"layer"]).await;
    let opts = CopyOptions::default().with_retries(0, Duration::ZERO);
    let e = copy(&src, "v1", &dst, None, &opts).await.unwrap_err();
    assert_eq!(manifest_puts(&reg), 1);
    assert_eq!((e.report().retried, e.report().retry_budget), (0, 0));
    assert!(e.report().retry_budget_spent);
}

/// Outside a copy the client keeps its own policy ([`ClientConfig::retry`]); inside an
/// operation's [`RetryBudget::scope`] it leaves 5xx to the operation.
#[tokio::test]
async fn direct_users_keep_the_client_policy() {
    let (reg, dst) = refusing_registry().await;
    let raw = Bytes::from_static(br#"{"schemaVersion":2,"manifests":[]}"#);
    let e = dst
        .push_manifest("v1", media_types::OCI_INDEX, raw.clone())
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(500));
    assert_eq!(manifest_puts(&reg), 1 + 5, "the default policy: 5 retries");

    let e = RetryBudget::new(7)
        .scope(dst.push_manifest("v1", media_types::OCI_INDEX, raw))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(500));
    assert_eq!(
        manifest_puts(&reg),
        6 + 1,
        "the caller retries: one attempt"
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_quoted_escaped() {
    let html = b"<html>\n<body>upstream \x1b[31mbroke\x1b[0m</body>\n</html>\n".to_vec();
    let reg = FakeRegistry::start(Faults {
        manifest_put_answer: Some((502, "text/html".to_owned(), html)),
        ..Faults::default()
    })
    .await;
    let dst = repo(&reg, "team/app");
    let (src, _) = image(&[b"layer"]).await;
    let opts = CopyOptions::default().with_retries(1, Duration::ZERO);
    let e = copy(&src, "v1", &dst, None, &opts).await.unwrap_err();
    assert_eq!(manifest_puts(&reg), 2);
    let chain = error_chain(&e);
    assert!(
        chain.contains(
            r#"registry answered 502 Bad Gateway: no registry error in the body: "<html>\n<body>upstream \u{1b}[31mbroke"#
        ),
        "{chain}"
    );
    assert!(!chain.contains('\x1b'), "{chain:?}");
}

/// Two blobs whose downloads always fail with a 500: the copy's budget of N is shared, so the
/// two together are attempted 2 + N times (each its first attempt, plus N retries in all),
/// not 2 x (1 + N).
#[tokio::test]
async fn the_budget_is_shared_by_the_layers() {
    let reg = FakeRegistry::start(Faults::default()).await;
    let (local, blobs) = image(&[b"first layer", b"second layer", b"third layer"]).await;
    let src = repo(&reg, "team/app");
    copy(&local, "v1", &src, None, &CopyOptions::default())
        .await
        .unwrap();
    let broken: Vec<String> = blobs[1..3]
        .iter()
        .map(|(d, _)| d.digest.to_string())
        .collect();
    reg.state()
        .faults
        .failing_blob_gets
        .extend(broken.iter().cloned());
    let gets = |reg: &FakeRegistry| {
        reg.seen()
            .iter()
            .filter(|s| s.method == "GET" && broken.iter().any(|d| s.target.ends_with(d)))
            .count()
    };

    const BUDGET: u32 = 4;
    let opts = CopyOptions::default()
        .with_jobs(2)
        .with_retries(BUDGET, Duration::from_millis(1));
    let dst = MemoryStore::new();
    let e = copy(&src, "v1", &dst, None, &opts).await.unwrap_err();
    let report = e.report();
    assert_eq!(gets(&reg), 2 + BUDGET as usize, "{report:#}");
    assert_eq!(report.retried, BUDGET as usize, "{report:#}");
    assert!(report.retry_budget_spent);
    assert_eq!(report.failed, 2, "{report:#}");
    let attempts: u32 = report
        .nodes
        .iter()
        .filter(|n| n.outcome == NodeOutcome::Failed)
        .map(|n| n.attempts)
        .sum();
    assert_eq!(attempts, 2 + BUDGET);
    assert!(
        error_chain(&e).contains("storage driver failed to read the blob"),
        "{e}"
    );

    // A budget shared by two copies: they make BUDGET retries between them.
    let before = gets(&reg);
    let shared = RetryBudget::new(BUDGET);
    let opts = opts.with_retry_budget(shared.clone());
    let (a, b) = (MemoryStore::new(), MemoryStore::new());
    let (ra, rb) = tokio::join!(
        copy(&src, "v1", &a, None, &opts),
        copy(&src, "v1", &b, None, &opts)
    );
    let (ra, rb) = (ra.unwrap_err(), rb.unwrap_err());
    assert_eq!(ra.report().retried + rb.report().retried, BUDGET as usize);
    assert_eq!(shared.used(), BUDGET);
    assert_eq!(gets(&reg) - before, 4 + BUDGET as usize);
}
