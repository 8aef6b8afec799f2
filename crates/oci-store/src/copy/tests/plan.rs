//! Planning: the graph, platforms, formats, referrers, foreign layers and sizes.

use super::*;

#[test]
fn copies_a_multi_platform_index_post_order_with_dedup() {
    rt().block_on(async {
        let src = Src::default();
        let index = multi(&src.inner, false).await;
        let dst = MemoryStore::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = Arc::clone(&order);
        let opts = CopyOptions::default().with_progress(move |p| {
            if let ProgressEvent::Finished { desc, .. } = &p.event {
                o.lock().unwrap().push(desc.digest.clone());
            }
        });
        let r = copy(&src, "multi", &dst, Some("copied"), &opts)
            .await
            .unwrap();
        let all = complete(&dst, "copied").await;
        // index + 3 manifests + 3 configs + 3 own layers + 1 shared layer.
        assert_eq!(all.len(), 11);
        assert_eq!((r.copied, r.skipped, r.failed), (11, 0, 0));
        assert_eq!(r.result.as_ref().unwrap().digest, *index.digest());
        let total: u64 = all.iter().map(|d| d.size).sum();
        assert_eq!(r.total_bytes, total);
        assert_eq!(r.bytes_copied, total);
        // Each piece of content was fetched once, the shared layer included.
        assert!(src.fetches.lock().unwrap().values().all(|n| *n == 1));
        assert_eq!(src.served.load(Ordering::SeqCst), total);
        // Children before parents.
        let order = order.lock().unwrap().clone();
        for d in &all {
            if d.is_manifest() {
                let m = dst.fetch_manifest(d).await.unwrap();
                let at = order.iter().position(|x| x == &d.digest).unwrap();
                for c in m.children() {
                    assert!(order.iter().position(|x| x == &c.digest).unwrap() < at);
                }
            }
        }
        assert_eq!(order.last(), Some(index.digest()));
    });
}

#[test]
fn second_copy_skips_everything_and_digest_reference_works() {
    rt().block_on(async {
        let src = Src::default();
        let index = multi(&src.inner, false).await;
        let dst = MemoryStore::new();
        copy(&src, "multi", &dst, None, &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!(dst.resolve("multi").await.unwrap().digest, *index.digest());
        let before = src.served.load(Ordering::SeqCst);
        let r = copy(
            &src,
            index.digest().as_str(),
            &dst,
            None,
            &CopyOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!((r.copied, r.skipped, r.bytes_copied), (0, 11, 0));
        assert_eq!(r.tag, None);
        // Only manifests were read again (for the plan).
        let manifests: u64 = complete(&dst, "multi")
            .await
            .iter()
            .filter(|d| d.is_manifest())
            .map(|d| d.size)
            .sum();
        assert_eq!(src.served.load(Ordering::SeqCst) - before, manifests);
    });
}

#[test]
fn platform_filter_makes_a_reduced_index_with_only_what_was_copied() {
    rt().block_on(async {
        let src = Src::default();
        let index = multi(&src.inner, false).await;
        let dst = MemoryStore::new();
        let opts = CopyOptions::default().with_platform(Platform::new("linux", "arm64"));
        let r = copy(&src, "multi", &dst, None, &opts).await.unwrap();
        let result = r.result.clone().unwrap();
        assert_ne!(result.digest, *index.digest());
        assert_eq!(r.dropped.len(), 2);
        let all = complete(&dst, "multi").await;
        // reduced index + manifest + config + 2 layers, nothing else.
        assert_eq!(all.len(), 5);
        assert_eq!(r.copied, 5);
        let reduced = dst.fetch_manifest(&result).await.unwrap();
        assert_eq!(reduced.manifests().len(), 1);
        assert_eq!(
            reduced.manifests()[0].platform,
            Some(Platform::new("linux", "arm64"))
        );
        assert!(!dst.exists(index.digest()).await.unwrap());
        for dropped in &r.dropped {
            assert!(!dst.exists(&dropped.digest).await.unwrap());
        }
        // No match: a typed error naming the index, nothing written.
        let none = CopyOptions::default().with_platform(Platform::new("windows", "amd64"));
        let empty = MemoryStore::new();
        let e = copy(&src, "multi", &empty, None, &none).await.unwrap_err();
        assert_eq!(e.side(), Some(CopySide::Source));
        assert!(
            matches!(e.store_error(), Some(StoreError::NoMatchingPlatform { digest, .. }) if digest == index.digest()),
            "{e:?}"
        );
        let chain = error_chain(&e);
        assert!(
            chain.contains("no image for platform windows/amd64") && chain.contains("linux/arm64"),
            "{chain}"
        );
        assert!(empty.tags().await.unwrap().is_empty());
    });
}

#[test]
fn converts_docker_to_oci_and_back() {
    rt().block_on(async {
        let src = Src::default();
        let index = multi(&src.inner, true).await;
        let oci = MemoryStore::new();
        let opts = CopyOptions::default().with_format(Some(Flavor::Oci));
        let r = copy(&src, "multi", &oci, None, &opts).await.unwrap();
        let root = oci.resolve("multi").await.unwrap();
        assert_ne!(root.digest, *index.digest());
        assert_eq!(root.media_type, media_types::OCI_INDEX);
        for d in complete(&oci, "multi").await {
            if d.is_manifest() {
                let m = oci.fetch_manifest(&d).await.unwrap();
                assert!(!m.kind().is_docker(), "{}", m.media_type());
            }
        }
        assert_eq!(r.copied, 11);
        // Back to Docker: the original bytes again.
        let back = MemoryStore::new();
        let opts = CopyOptions::default().with_format(Some(Flavor::Docker));
        copy(&oci, "multi", &back, None, &opts).await.unwrap();
        assert_eq!(back.resolve("multi").await.unwrap().digest, *index.digest());
    });
}

#[test]
fn referrers_follow_through_the_tag_schema() {
    rt().block_on(async {
        let src = Src::default();
        let index = multi(&src.inner, false).await;
        // A signature of the index, listed by a fallback index tagged sha256-<hex>.
        let sig_layer = put(
            &src.inner,
            "application/vnd.dev.cosign.simplesigning.v1+json",
            b"sig".to_vec(),
        )
        .await;
        let sig = ImageManifestBuilder::artifact("application/vnd.dev.sigstore.bundle+json")
            .layer(sig_layer.clone())
            .subject(index.descriptor())
            .build()
            .unwrap();
        src.inner
            .push_bytes(&sig.descriptor(), sig.raw().clone())
            .await
            .unwrap();
        let fallback = IndexBuilder::oci()
            .manifest(sig.referrer_descriptor())
            .build()
            .unwrap();
        src.inner
            .push_bytes(&fallback.descriptor(), fallback.raw().clone())
            .await
            .unwrap();
        src.inner
            .tag(&fallback.descriptor(), &referrers_tag(index.digest()))
            .await
            .unwrap();

        let without = MemoryStore::new();
        copy(&src, "multi", &without, None, &CopyOptions::default())
            .await
            .unwrap();
        assert!(!without.exists(sig.digest()).await.unwrap());

        let with = MemoryStore::new();
        let opts = CopyOptions::default().with_referrers(true);
        let r = copy(&src, "multi", &with, None, &opts).await.unwrap();
        assert_eq!(r.referrers.len(), 1);
        assert!(with.exists(sig.digest()).await.unwrap());
        assert!(with.exists(&sig_layer.digest).await.unwrap());
        let listed = list_referrers(&with, &index.descriptor()).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].digest, *sig.digest());
    });
}

#[test]
fn foreign_layers_the_source_lacks_are_left_out_and_listed() {
    rt().block_on(async {
        let src = MemoryStore::new();
        let cfg = put(&src, media_types::DOCKER_CONFIG, b"{}".to_vec()).await;
        let base = put(&src, media_types::DOCKER_LAYER_GZIP, b"base".to_vec()).await;
        let mut foreign = Descriptor::of(media_types::DOCKER_LAYER_FOREIGN_GZIP, b"windows");
        foreign.urls = Some(vec!["https://example.invalid/layer".to_owned()]);
        let m = ImageManifestBuilder::docker(cfg)
            .layer(foreign.clone())
            .layer(base.clone())
            .build()
            .unwrap();
        src.push_bytes(&m.descriptor(), m.raw().clone())
            .await
            .unwrap();
        src.tag(&m.descriptor(), "win").await.unwrap();
        let dst = MemoryStore::new();
        let r = copy(&src, "win", &dst, None, &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!(r.foreign, vec![foreign.clone()]);
        assert_eq!(r.copied, 3);
        assert!(!dst.exists(&foreign.digest).await.unwrap());
        assert!(dst.exists(m.digest()).await.unwrap());
        // When the source holds it, it is copied like any layer.
        src.push_bytes(&foreign, Bytes::from_static(b"windows"))
            .await
            .unwrap();
        let r = copy(&src, "win", &dst, None, &CopyOptions::default())
            .await
            .unwrap();
        assert!(r.foreign.is_empty());
        assert!(dst.exists(&foreign.digest).await.unwrap());
    });
}

#[test]
fn sizes_adding_past_u64_are_an_error_naming_the_descriptor() {
    rt().block_on(async {
        let src = Src::default();
        let cfg = put(&src.inner, media_types::OCI_CONFIG, b"{}".to_vec()).await;
        // Two layers the source does not even hold, each declaring 2^63 bytes: the plan's
        // total is 2^64, one more than u64 holds.
        let huge = |data: &[u8]| {
            Descriptor::new(
                media_types::OCI_LAYER_GZIP,
                oci_digest::Algorithm::Sha256.hash(data),
                1 << 63,
            )
        };
        let (a, b) = (huge(b"a"), huge(b"b"));
        let cfg_digest = cfg.digest.clone();
        let m = ImageManifestBuilder::oci(cfg)
            .layer(a.clone())
            .layer(b.clone())
            .build()
            .unwrap();
        src.inner
            .push_bytes(&m.descriptor(), m.raw().clone())
            .await
            .unwrap();
        src.inner.tag(&m.descriptor(), "huge").await.unwrap();
        let dst = MemoryStore::new();
        let e = copy(&src, "huge", &dst, None, &CopyOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.side(), Some(CopySide::Source));
        let Some(e) = e.store_error() else {
            panic!("unexpected {e:?}")
        };
        let StoreError::SizeOverflow { digest, size, .. } = e else {
            panic!("unexpected {e:?}")
        };
        assert!(*digest == a.digest || *digest == b.digest, "{e}");
        assert_eq!(*size, 1 << 63);
        let text = e.to_string();
        assert!(text.contains(digest.as_str()) && text.contains(&(1u64 << 63).to_string()));
        // Nothing moved: the error comes from the plan, before any transfer.
        assert!(!dst.exists(&cfg_digest).await.unwrap());
        assert!(dst.tags().await.unwrap().is_empty());
    });
}
