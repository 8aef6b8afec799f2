//! `copy` with several blob sources: blobs fetched in pieces through `fetch_blob`, a mirror
//! with one bad byte costs its piece and is named in the copy's report; with one source, or a
//! destination that takes no pieces, the copy streams as before.

mod common;

use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use oci_digest::Digest;
use oci_manifest::Descriptor;
use oci_store::{
    CopyOptions, FetchEvent, FetchOptions, LayoutOptions, LayoutStore, MemoryStore, ProgressEvent,
    RangeAnswer, RangeSource, ReadStore, TagStore, collect, copy,
};

const MIB: usize = 1024 * 1024;

/// A mirror: the content of a store, with the byte at `offset` of blob `digest` flipped.
struct Flipping {
    name: String,
    store: MemoryStore,
    flip: Option<(Digest, u64)>,
}

#[async_trait]
impl RangeSource for Flipping {
    fn source_name(&self) -> String {
        self.name.clone()
    }

    async fn read_range(
        &self,
        desc: &Descriptor,
        range: Range<u64>,
    ) -> oci_store::Result<RangeAnswer> {
        let a = self.store.read_range(desc, range.clone()).await?;
        let start = a.start();
        let mut bytes = collect(a.stream, u64::MAX).await?.to_vec();
        if let Some((d, at)) = &self.flip
            && *d == desc.digest
            && (start..start + bytes.len() as u64).contains(at)
        {
            bytes[(*at - start) as usize] ^= 0x01;
        }
        Ok(RangeAnswer::new(
            start,
            oci_store::bytes_stream(Bytes::from(bytes)),
        ))
    }
}

/// An image with a 5 MiB layer in a memory store, tagged `v1`: (store, layer).
async fn image() -> (MemoryStore, Descriptor) {
    let store = MemoryStore::new();
    let img = oci_store::testing::image(13, 1, 5 * MIB);
    oci_store::testing::push_image(&store, &img).await.unwrap();
    store.tag(img.root(), "v1").await.unwrap();
    (store, img.blobs[0].desc.clone())
}

#[test]
fn a_bad_mirror_costs_one_piece_and_is_named_in_the_report() {
    common::rt().block_on(async {
        let (src, layer) = image().await;
        // Byte 100 of the layer: in piece 0, which the mirror (listed first) is given first.
        let mirror = Flipping {
            name: "mirror".into(),
            store: src.clone(),
            flip: Some((layer.digest.clone(), 100)),
        };
        let origin = Flipping {
            name: "origin".into(),
            store: src.clone(),
            flip: None,
        };
        let served = Arc::new(Mutex::new(Vec::new()));
        let s = served.clone();
        let per_source = Arc::new(Mutex::new(std::collections::BTreeMap::<String, u64>::new()));
        let p = per_source.clone();
        let options = CopyOptions::default()
            .with_blob_sources(vec![Arc::new(mirror), Arc::new(origin)])
            .with_fetch_options(FetchOptions::default().with_events(Arc::new(
                move |e: &FetchEvent| {
                    if let FetchEvent::PieceDone { source, index } = e {
                        s.lock().unwrap().push((*source, *index));
                    }
                },
            )))
            .with_progress(move |pr| {
                if let ProgressEvent::SourceBytes { name, bytes, .. } = &pr.event {
                    *p.lock().unwrap().entry(name.clone()).or_default() += bytes;
                }
            });
        let dir = common::TempDir::new("copy-pieces");
        let dst = LayoutStore::open_with(dir.path(), &LayoutOptions::create())
            .await
            .unwrap();
        let report = copy(&src, "v1", &dst, Some("v1"), &options).await.unwrap();
        assert!(report.is_complete());
        assert_eq!(
            dst.fetch_bytes(&layer, u64::MAX).await.unwrap(),
            src.fetch_bytes(&layer, u64::MAX).await.unwrap()
        );
        // Config and layer fetched in pieces (the manifest from the copy's source).
        assert_eq!(report.fetches.len(), 2, "{report:#}");
        let fetch = report
            .fetches
            .iter()
            .find(|f| f.digest == layer.digest)
            .unwrap();
        let bad: Vec<(u64, &str)> = fetch
            .bad_pieces
            .iter()
            .map(|b| (b.index, b.source_name.as_str()))
            .collect();
        if served
            .lock()
            .unwrap()
            .iter()
            .any(|&(s, i)| s == 0 && i == 0)
        {
            // The mirror delivered piece 0 (with its bad byte): located and named.
            assert_eq!(bad, [(0, "mirror")], "{report:#}");
            let summary = format!("{report:#}");
            assert!(summary.contains("BAD piece"), "{summary}");
            assert!(summary.contains("from mirror"), "{summary}");
        } else {
            assert!(bad.is_empty(), "{report:#}");
        }
        // Without a map, at most what the mirror supplied is fetched again.
        let totals = report.source_totals();
        let mirror_total = totals.iter().find(|t| t.name == "mirror").unwrap();
        assert!(
            report.bytes_refetched() - report.bytes_taken_over() - report.bytes_read_ahead()
                <= mirror_total.bytes_fetched,
            "{report:#}"
        );
        // Pieces kept add up to the blobs; progress saw every byte received, per source.
        assert_eq!(
            totals.iter().map(|t| t.bytes).sum::<u64>(),
            report.fetches.iter().map(|f| f.size).sum::<u64>()
        );
        let seen = per_source.lock().unwrap().clone();
        for t in &totals {
            assert_eq!(
                seen.get(&t.name).copied().unwrap_or(0),
                t.bytes_fetched,
                "{t:?}"
            );
        }
        // Again: everything is there, nothing is fetched.
        let again = copy(&src, "v1", &dst, Some("v1"), &options).await.unwrap();
        assert!(again.fetches.is_empty());
        assert_eq!(again.skipped, 3);
    });
}

#[test]
fn one_source_streams_as_before() {
    common::rt().block_on(async {
        let (src, _) = image().await;
        let only = Arc::new(src.clone()) as Arc<dyn RangeSource>;
        let dst = MemoryStore::new();
        let report = copy(
            &src,
            "v1",
            &dst,
            None,
            &CopyOptions::default().with_blob_sources(vec![only]),
        )
        .await
        .unwrap();
        assert!(report.is_complete());
        assert!(report.fetches.is_empty());
        assert_eq!(report.copied, 3);
    });
}

#[test]
fn a_blob_no_source_serves_whole_fails_the_copy_naming_the_pieces() {
    common::rt().block_on(async {
        let (src, layer) = image().await;
        let bad = |name: &str| {
            Arc::new(Flipping {
                name: name.into(),
                store: src.clone(),
                flip: Some((layer.digest.clone(), 3 * MIB as u64 + 5)),
            }) as Arc<dyn RangeSource>
        };
        let dir = common::TempDir::new("copy-pieces-bad");
        let dst = LayoutStore::open_with(dir.path(), &LayoutOptions::create())
            .await
            .unwrap();
        let options = CopyOptions::default()
            .with_retries(0, std::time::Duration::ZERO)
            .with_blob_sources(vec![bad("a"), bad("b")]);
        let err = copy(&src, "v1", &dst, Some("v1"), &options)
            .await
            .unwrap_err();
        let text = oci_store::error_chain(&err);
        assert!(text.contains(&layer.digest.to_string()), "{text}");
        assert!(!dst.exists(&layer.digest).await.unwrap());
        assert!(dst.resolve("v1").await.is_err());
        // The failed fetch is in the report, with what each source did.
        assert!(
            err.report()
                .fetches
                .iter()
                .any(|f| f.digest == layer.digest)
        );
    });
}
