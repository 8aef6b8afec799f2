//! Verifying: lies of a destination found and repaired, checked existence.

use super::*;

#[test]
fn verify_mode_detects_and_repairs_lies() {
    rt().block_on(async {
        let src = Src::default();
        let index = multi(&src.inner, false).await;
        let m = src.inner.fetch_manifest(&index.manifests()[0]).await.unwrap();
        let lost_blob = m.layers()[0].clone();
        let lost_manifest = index.manifests()[2].clone();

        // Trusting the liar: the copy "succeeds" but the content is not served.
        let liar = LyingStore::default();
        liar.claim(&lost_blob);
        liar.claim(&lost_manifest);
        let r = copy(&src, "multi", &liar, None, &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!(r.skipped, 2);
        assert!(liar.fetch_bytes(&lost_blob, 1 << 20).await.is_err());

        // Verifying: both lies found and repaired, the result reads back.
        for mode in [VerifyMode::Range, VerifyMode::Full] {
            let liar = LyingStore::default();
            liar.claim(&lost_blob);
            liar.claim(&lost_manifest);
            let opts = CopyOptions::default().with_verify(mode);
            let r = copy(&src, "multi", &liar, None, &opts).await.unwrap();
            assert_eq!(r.repaired, 2, "{mode:?}");
            assert_eq!(liar.forced_pushes(), 2);
            assert!(r.verified >= 11);
            complete(liar.inner(), "multi").await;
        }

        // Existence answered without a length: read back, found served, skipped.
        let vague = LyingStore::default().without_lengths();
        copy(&src, "multi", &vague, None, &CopyOptions::default())
            .await
            .unwrap();
        let r = copy(&src, "multi", &vague, None, &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!((r.skipped, r.repaired, r.bytes_copied), (11, 0, 0), "{r}");
        assert_eq!(vague.forced_pushes(), 0);

        // A liar that cannot be repaired: the error says so, naming the digest.
        let stubborn = LyingStore::default().stubborn();
        stubborn.claim(&lost_blob);
        let opts = CopyOptions::default().with_verify(VerifyMode::Range);
        let e = copy(&src, "multi", &stubborn, None, &opts).await.unwrap_err();
        let CopyError::Failed { source, side, .. } = &e else {
            panic!("unexpected {e:?}")
        };
        assert_eq!(*side, CopySide::Destination);
        assert!(
            matches!(&**source, StoreError::ClaimsUnserved { digest, .. } if *digest == lost_blob.digest),
            "{source:?}"
        );
        assert!(error_chain(&e).contains("does not serve"), "{}", error_chain(&e));
        assert!(stubborn.tags().await.unwrap().is_empty());
    });
}

#[test]
fn checked_exists_reads_the_last_byte_and_catches_a_claim_not_served() {
    rt().block_on(async {
        let honest = MemoryStore::new();
        let layer = put(&honest, media_types::OCI_LAYER_GZIP, b"a layer".to_vec()).await;
        let empty = put(&honest, media_types::OCI_LAYER_GZIP, Vec::new()).await;
        assert!(checked_exists(&honest, &layer).await.unwrap());
        assert!(checked_exists(&honest, &empty).await.unwrap());
        let absent = Descriptor::of(media_types::OCI_LAYER_GZIP, b"absent");
        assert!(!checked_exists(&honest, &absent).await.unwrap());

        // Claimed (stat answers its size) but not served: the last byte does not arrive.
        let liar = LyingStore::default();
        liar.claim(&layer);
        assert_eq!(liar.stat(&layer.digest).await.unwrap(), Some(layer.size));
        assert!(!checked_exists(&liar, &layer).await.unwrap());
        // Existence without a length, content served: true.
        let vague = LyingStore::new(honest.clone()).without_lengths();
        assert_eq!(vague.stat(&layer.digest).await.unwrap(), Some(0));
        assert!(checked_exists(&vague, &layer).await.unwrap());
    });
}
