//! Running: retries and their rule, resumption, cancellation, concurrency, leases, errors.

use super::*;

#[test]
fn transient_failures_retry_per_node_and_resume_the_partial_blob() {
    rt().block_on(async {
        let src = Src {
            fail_first: 1,
            ..Src::default()
        };
        multi(&src.inner, false).await;
        let dst = MemoryStore::new();
        // The budget is the copy's: one retry for each of the 7 blobs.
        let opts = CopyOptions::default().with_retries(7, Duration::from_millis(1));
        let r = copy(&src, "multi", &dst, None, &opts).await.unwrap();
        complete(&dst, "multi").await;
        // Every blob failed once (7 blobs) and was retried; the retry resumed after the
        // half already written, so no byte was sent twice.
        assert_eq!(r.retried, 7);
        assert_eq!(r.retry_budget, 7);
        assert!(r.retry_budget_spent);
        let total: u64 = r.total_bytes;
        assert_eq!(src.served.load(Ordering::SeqCst), total);
        assert!(r.bytes_resumed > 0);
        assert!(
            r.nodes
                .iter()
                .filter(|n| !n.desc.is_manifest())
                .all(|n| n.attempts == 2)
        );
    });
}

/// Seven blobs each failing once under a budget of 3: three of them are retried (and copied),
/// the other four fail for good; never more than 3 retries in all, whatever the concurrency.
#[test]
fn the_retry_budget_is_shared_by_all_the_content() {
    rt().block_on(async {
        let src = Src {
            fail_first: 1,
            ..Src::default()
        };
        multi(&src.inner, false).await;
        for jobs in [1, 4] {
            let dst = MemoryStore::new();
            let opts = CopyOptions::default()
                .with_jobs(jobs)
                .with_retries(3, Duration::from_millis(1));
            src.fetches.lock().unwrap().clear();
            let e = copy(&src, "multi", &dst, None, &opts).await.unwrap_err();
            let r = e.report();
            assert_eq!((r.retried, r.retry_budget), (3, 3), "{r}");
            assert!(r.retry_budget_spent && e.is_transient());
            let blobs: Vec<_> = r.nodes.iter().filter(|n| !n.desc.is_manifest()).collect();
            let attempts: u32 = blobs.iter().map(|n| n.attempts).sum();
            assert_eq!(attempts, 7 + 3, "{r:#}");
            let failed = blobs
                .iter()
                .filter(|n| n.outcome == NodeOutcome::Failed)
                .count();
            assert_eq!(failed, 4, "{r:#}");
            assert!(e.to_string().contains("retry budget of 3 spent"), "{e}");
        }
    });
}

#[test]
fn a_missing_blob_fails_that_branch_only_and_writes_no_tag() {
    rt().block_on(async {
        let mut src = Src::default();
        let index = multi(&src.inner, false).await;
        let arm = &index.manifests()[1];
        let arm_m = src.inner.fetch_manifest(arm).await.unwrap();
        let lost = arm_m.layers()[1].clone();
        src.fail_always = Some(lost.digest.clone());
        let dst = MemoryStore::new();
        let opts = CopyOptions::default().with_retries(1, Duration::from_millis(1));
        let e = copy(&src, "multi", &dst, None, &opts).await.unwrap_err();
        let CopyError::Failed {
            reference,
            side,
            digest,
            failed,
            report,
            source,
            ..
        } = e
        else {
            panic!("unexpected {e:?}")
        };
        assert_eq!(reference, "multi");
        assert_eq!(side, CopySide::Source);
        assert_eq!(digest, Some(lost.digest.clone()));
        assert_eq!(failed, 1);
        assert!(matches!(*source, StoreError::NotFound { .. }));
        assert!(dst.tags().await.unwrap().is_empty());
        // The other platforms are complete; neither the arm64 manifest nor the index is there.
        assert!(!dst.exists(&arm.digest).await.unwrap());
        assert!(!dst.exists(index.digest()).await.unwrap());
        for other in [&index.manifests()[0], &index.manifests()[2]] {
            assert!(dst.exists(&other.digest).await.unwrap());
        }
        assert_eq!(report.failed, 1);
        assert!(!report.is_complete());
        let failed_node = report
            .nodes
            .iter()
            .find(|n| n.outcome == NodeOutcome::Failed);
        assert_eq!(failed_node.unwrap().desc.digest, lost.digest);
        // NotFound is not transient: one attempt only.
        assert_eq!(failed_node.unwrap().attempts, 1);
    });
}

#[test]
fn cancellation_leaves_both_sides_consistent_and_a_rerun_finishes() {
    rt().block_on(async {
        let src = Src::default();
        multi(&src.inner, false).await;
        let dst = MemoryStore::new();
        let token = CancelToken::new();
        let t = token.clone();
        let opts = CopyOptions::default()
            .with_jobs(1)
            .with_cancel(token)
            .with_progress(move |p| {
                if matches!(p.event, ProgressEvent::Finished { .. }) {
                    t.cancel();
                }
            });
        let e = copy(&src, "multi", &dst, None, &opts).await.unwrap_err();
        let CopyError::Cancelled { report, .. } = e else {
            panic!("unexpected {e:?}")
        };
        assert!(report.copied >= 1 && report.copied < 11, "{report}");
        assert!(dst.tags().await.unwrap().is_empty());
        // Every manifest in dst has all its children.
        let st = dst.clone();
        for n in &report.nodes {
            if n.desc.is_manifest() && st.exists(&n.desc.digest).await.unwrap() {
                let m = st.fetch_manifest(&n.desc).await.unwrap();
                for c in m.children() {
                    assert!(st.exists(&c.digest).await.unwrap());
                }
            }
        }
        let r = copy(&src, "multi", &dst, None, &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!(r.copied + r.skipped, 11);
        assert_eq!(r.skipped, report.copied);
        complete(&dst, "multi").await;
    });
}

#[test]
fn leased_copy_pins_content_until_tagged_and_releases() {
    rt().block_on(async {
        let src = Src::default();
        multi(&src.inner, false).await;
        let dst = MemoryStore::new();
        let seen = Arc::new(AtomicUsize::new(0));
        let (d2, s2) = (dst.clone(), Arc::clone(&seen));
        let opts = CopyOptions::default().with_progress(move |p| {
            if matches!(p.event, ProgressEvent::Finished { .. }) {
                // A collection in the middle of the copy removes nothing already copied.
                let d3 = d2.clone();
                let h = std::thread::spawn(move || {
                    rt().block_on(async move {
                        d3.gc(&crate::gc::GcOptions::default().with_min_age(Duration::ZERO))
                            .await
                            .unwrap()
                    })
                });
                let report = h.join().unwrap();
                assert!(report.removed.is_empty(), "{report:?}");
                s2.fetch_add(1, Ordering::SeqCst);
            }
        });
        copy_leased(&src, "multi", &dst, None, &opts).await.unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 11);
        assert!(dst.leases().await.unwrap().is_empty());
        complete(&dst, "multi").await;
        let gc = dst
            .gc(&crate::gc::GcOptions::default().with_min_age(Duration::ZERO))
            .await
            .unwrap();
        assert!(gc.removed.is_empty());

        // Unleased, the same collections would remove what is not yet tagged.
        let bare = MemoryStore::new();
        let b2 = bare.clone();
        let removed = Arc::new(AtomicUsize::new(0));
        let r2 = Arc::clone(&removed);
        let opts = CopyOptions::default().with_jobs(1).with_progress(move |p| {
            if matches!(p.event, ProgressEvent::Finished { .. }) {
                let b3 = b2.clone();
                let n = std::thread::spawn(move || {
                    rt().block_on(async move {
                        b3.gc(&crate::gc::GcOptions::default().with_min_age(Duration::ZERO))
                            .await
                            .unwrap()
                            .removed
                            .len()
                    })
                })
                .join()
                .unwrap();
                r2.fetch_add(n, Ordering::SeqCst);
            }
        });
        let _ = copy(&src, "multi", &bare, None, &opts).await;
        assert!(removed.load(Ordering::SeqCst) > 0);
    });
}

#[test]
fn concurrent_copies_of_shared_content_wait_for_each_other() {
    rt().block_on(async {
        let src = Src {
            chunked: true,
            ..Src::default()
        };
        multi(&src.inner, false).await;
        let dst = MemoryStore::new();
        let opts = CopyOptions::default().with_retries(0, Duration::from_millis(1));
        let (a, b) = futures_util::future::join(
            copy(&src, "multi", &dst, Some("a"), &opts),
            copy(&src, "multi", &dst, Some("b"), &opts),
        )
        .await;
        let (a, b) = (a.unwrap(), b.unwrap());
        // No retry was spent, and every blob crossed once: the second copy waited for the
        // first one's ingest, then found the content there.
        assert_eq!(a.retried + b.retried, 0);
        assert_eq!(a.bytes_copied + b.bytes_copied, a.total_bytes);
        assert_eq!(a.copied + b.copied, 11);
        complete(&dst, "a").await;
        complete(&dst, "b").await;
    });
}

#[test]
fn a_copy_cancelled_before_it_starts_writes_nothing() {
    rt().block_on(async {
        let src = Src::default();
        multi(&src.inner, false).await;
        let dst = MemoryStore::new();
        let token = CancelToken::new();
        token.cancel();
        let opts = CopyOptions::default().with_cancel(token);
        let e = copy(&src, "multi", &dst, None, &opts).await.unwrap_err();
        assert!(
            matches!(&e, CopyError::Cancelled { reference, .. } if reference == "multi"),
            "{e:?}"
        );
        assert!(dst.tags().await.unwrap().is_empty());
        assert!(dst.ingests().await.unwrap().is_empty());
    });
}

/// Copies `multi` from `src` with 2 retries; returns the report of the failed copy and
/// the failed node's attempts.
async fn failing_copy(src: &Src) -> (CopyReport, u32, StoreError) {
    let dst = MemoryStore::new();
    let opts = CopyOptions::default().with_retries(2, Duration::from_millis(1));
    let e = copy(src, "multi", &dst, None, &opts).await.unwrap_err();
    let CopyError::Failed { report, source, .. } = e else {
        panic!("unexpected {e:?}")
    };
    let failed = report
        .nodes
        .iter()
        .find(|n| n.outcome == NodeOutcome::Failed)
        .expect("a failed node");
    let attempts = failed.attempts;
    (*report, attempts, *source)
}

#[test]
fn content_failing_verification_is_retried_only_when_it_came_over_the_network() {
    rt().block_on(async {
        let mut src = Src::default();
        let index = multi(&src.inner, false).await;
        let amd = src
            .inner
            .fetch_manifest(&index.manifests()[0])
            .await
            .unwrap();
        src.corrupt = Some(amd.layers()[1].digest.clone());
        // A local store serves the same wrong bytes every time: one attempt, no retry.
        let (report, attempts, source) = failing_copy(&src).await;
        assert!(matches!(source, StoreError::Verify(_)), "{source:?}");
        assert_eq!((attempts, report.retried), (1, 0));
        // From a registry the bytes may have been damaged in flight: retried.
        src.remote = true;
        let (report, attempts, source) = failing_copy(&src).await;
        assert!(matches!(source, StoreError::Verify(_)), "{source:?}");
        assert_eq!((attempts, report.retried), (3, 2));
    });
}

#[test]
fn what_a_retry_cannot_cure_is_found_anywhere_in_the_chain() {
    use std::io::{Error as IoError, ErrorKind};
    #[derive(Debug, thiserror::Error)]
    #[error("GET http://127.0.0.1:1/v2/: connection refused by 127.0.0.1:1")]
    struct Client(#[source] IoError);
    let refused = || IoError::from(ErrorKind::ConnectionRefused);
    // A registry client's error with the refusal as its cause, as a backend error and as
    // a stream item (an io::Error wrapping it, whose `source` skips it).
    let backend = StoreError::backend("resolve r/a:v1", Client(refused()));
    assert_eq!(
        permanent_cause(&backend),
        Some(ErrorKind::ConnectionRefused)
    );
    assert!(!backend.is_transient() && !worth_retrying(&backend, true));
    let d = oci_digest::Algorithm::Sha256.hash(b"x");
    let item = StoreError::Source {
        digest: d.clone(),
        source: IoError::other(Client(refused())),
    };
    assert!(!item.is_transient() && !worth_retrying(&item, true));
    let slow = StoreError::Source {
        digest: d.clone(),
        source: IoError::new(ErrorKind::TimedOut, "below the minimum rate"),
    };
    assert!(!slow.is_transient() && !worth_retrying(&slow, true));
    // What may go away on retry still does.
    let reset = StoreError::Source {
        digest: d.clone(),
        source: IoError::from(ErrorKind::ConnectionReset),
    };
    assert!(reset.is_transient() && worth_retrying(&reset, false));
    let unavailable = StoreError::backend("x", IoError::other("503 Service Unavailable"));
    assert!(unavailable.is_transient() && worth_retrying(&unavailable, true));
    let missing = StoreError::NotFound { digest: d.clone() };
    assert!(!missing.is_transient() && !worth_retrying(&missing, true));
    // Content that failed verification: only when it came over the network.
    let damaged = StoreError::Verify(oci_digest::VerifyError::TooShort {
        expected: d,
        expected_size: 2,
        received: 1,
    });
    assert!(damaged.is_verification_failure() && !damaged.is_transient());
    assert!(worth_retrying(&damaged, true) && !worth_retrying(&damaged, false));
}

#[test]
fn backoff_doubles_and_is_capped() {
    let b = Duration::from_millis(100);
    assert_eq!(backoff(b, 1), Duration::from_millis(100));
    assert_eq!(backoff(b, 3), Duration::from_millis(400));
    assert_eq!(backoff(b, 30), Duration::from_secs(10));
}

#[test]
fn copy_errors_name_the_side_that_failed() {
    rt().block_on(async {
        let src = Src::default();
        multi(&src.inner, false).await;
        let dst = MemoryStore::new();
        // A destination tag the destination refuses: nothing moves.
        let e = copy(
            &src,
            "multi",
            &dst,
            Some("bad tag"),
            &CopyOptions::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.side(), Some(CopySide::Destination), "{e}");
        assert!(matches!(
            e.store_error(),
            Some(StoreError::InvalidTag { .. })
        ));
        assert!(e.report().nodes.is_empty() && !e.is_transient());
        assert!(error_chain(&e).starts_with("copy of multi failed at the destination"));
        // A reference the source does not have.
        let e = copy(&src, "nope", &dst, None, &CopyOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.side(), Some(CopySide::Source), "{e}");
        assert!(e.store_error().is_some_and(StoreError::is_not_found));
    });
}

#[test]
fn a_copy_leased_into_a_trait_object_holds_and_releases_its_lease() {
    rt().block_on(async {
        let src = Src::default();
        multi(&src.inner, false).await;
        let dst = MemoryStore::new();
        let any: &dyn ManagedStore = &dst;
        let r = copy_leased(&src, "multi", any, Some("copied"), &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!(r.copied, 11);
        assert!(dst.leases().await.unwrap().is_empty());
        complete(&dst, "copied").await;
    });
}
