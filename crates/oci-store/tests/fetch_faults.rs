//! One blob fetched from many sources (`fetch_blob`) with sources that fail in every way a
//! mirror or peer does: stalls, truncated answers, the whole body to a range request, transient
//! errors, more bytes than asked, wrong bytes, a wrong advisory map. Each case ends with the
//! right blob or an error naming the pieces no source could serve, never a wrong blob. No case
//! depends on timing: stalled sources lose their pieces to idle ones by events, or stay
//! stalled forever; the few timeouts used only bound how long a stalled attempt is waited for.

mod common;
mod fetch_common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use fetch_common::*;
use oci_digest::{Algorithm, PieceLayout, PieceMap};
use oci_manifest::Descriptor;
use oci_store::{
    CancelToken, FetchError, FetchEvent, FetchOptions, FetchReport, FsckOptions, LayoutOptions,
    LayoutStore, ManagedStore, MapTrust, MapUse, MemoryStore, PushOutcome, RangeSource, ReadStore,
    WriteStore, fetch_blob,
};

const PL: u64 = 4096;

fn blob_of(len: usize, seed: u64) -> (Bytes, Descriptor, PieceLayout) {
    let data = Bytes::from(Rng::new(seed).bytes(len));
    let desc = Descriptor::of("application/vnd.oci.image.layer.v1.tar", &data);
    let layout = PieceLayout::new(desc.size, PL).unwrap();
    (data, desc, layout)
}

fn map_of(data: &Bytes, desc: &Descriptor, layout: PieceLayout) -> PieceMap {
    PieceMap::compute_with_layout(&data[..], desc.digest.clone(), layout).unwrap()
}

fn opts(layout: PieceLayout) -> FetchOptions {
    FetchOptions::default()
        .with_layout(layout)
        .with_retry_delay(Duration::ZERO)
        .with_idle_timeout(None)
}

async fn fetched(dst: &MemoryStore, desc: &Descriptor) -> Bytes {
    dst.fetch_bytes(desc, u64::MAX).await.unwrap()
}

/// Fetches into a new memory store, which must then hold exactly the blob.
async fn fetch_ok(
    data: &Bytes,
    desc: &Descriptor,
    sources: &[Arc<Faulty>],
    o: &FetchOptions,
) -> FetchReport {
    let dst = MemoryStore::new();
    let r = fetch_blob(&dst, "k", desc, &dyns(sources), o)
        .await
        .unwrap();
    assert_eq!(&fetched(&dst, desc).await, data);
    r
}

/// Bytes fetched twice for what sources served, not for when (pieces taken over, bytes read
/// ahead by stopped requests).
fn content_refetched(r: &FetchReport) -> u64 {
    r.bytes_refetched - r.bytes_taken_over - r.bytes_read_ahead
}

fn sum_pieces(r: &FetchReport) -> u64 {
    r.sources.iter().map(|s| s.pieces).sum()
}

#[tokio::test]
async fn good_sources_share_the_pieces() {
    let (data, desc, layout) = blob_of(40 * PL as usize + 17, 1);
    let s: Vec<_> = (0..3)
        .map(|i| Arc::new(Faulty::new(&format!("s{i}"), &data, layout, Mode::Good)))
        .collect();
    let dst = MemoryStore::new();
    let r = fetch_blob(&dst, "k", &desc, &dyns(&s), &opts(layout))
        .await
        .unwrap();
    assert_eq!(fetched(&dst, &desc).await, data);
    assert_eq!(r.outcome, Some(PushOutcome::Written));
    assert_eq!(r.pieces, 41);
    assert_eq!(sum_pieces(&r), 41);
    assert_eq!(r.sources.iter().map(|s| s.bytes).sum::<u64>(), desc.size);
    assert!(r.bad_pieces.is_empty());
    assert_eq!(r.bytes_fetched, desc.size + r.bytes_refetched);
    // Stealing at the very end may drop a piece a source had not started sending.
    assert!(r.bytes_refetched <= 6 * PL, "{r:?}");
    // Again: already there, nothing fetched.
    let again = fetch_blob(&dst, "k", &desc, &dyns(&s), &opts(layout))
        .await
        .unwrap();
    assert_eq!(again.outcome, Some(PushOutcome::AlreadyExists));
    assert_eq!(again.bytes_fetched, 0);
}

#[tokio::test]
async fn a_stalled_source_loses_its_pieces_to_an_idle_one() {
    let (data, desc, layout) = blob_of(12 * PL as usize, 2);
    let stalled = Arc::new(Faulty::new("stalled", &data, layout, Mode::Stall));
    let good = Arc::new(Faulty::new("good", &data, layout, Mode::Good));
    let dst = MemoryStore::new();
    // No timeout at all: only the take-over rescues the stalled source's pieces.
    let r = fetch_blob(
        &dst,
        "k",
        &desc,
        &dyns(&[stalled.clone(), good.clone()]),
        &opts(layout),
    )
    .await
    .unwrap();
    assert_eq!(fetched(&dst, &desc).await, data);
    assert_eq!(r.sources[0].pieces, 0);
    assert_eq!(r.sources[1].pieces, 12);
    assert!(r.sources[0].stolen >= 1, "{r:?}");
    assert_eq!(r.bytes_refetched, 0);
}

#[tokio::test]
async fn a_source_stalling_mid_piece_loses_it_by_its_rate() {
    let (data, desc, layout) = blob_of(12 * PL as usize, 3);
    let slow = Arc::new(Faulty::new("slow", &data, layout, Mode::StallAfter(100)));
    let good = Arc::new(Faulty::new("good", &data, layout, Mode::Good));
    let dst = MemoryStore::new();
    let mut o = opts(layout);
    o.steal_check = Duration::from_millis(5);
    let r = fetch_blob(&dst, "k", &desc, &dyns(&[slow, good]), &o)
        .await
        .unwrap();
    assert_eq!(fetched(&dst, &desc).await, data);
    assert_eq!(r.sources[0].pieces, 0);
    assert!(r.sources[0].stolen >= 1);
    // What the slow source sent was wasted because its pieces were taken over, and is
    // reported as such; nothing else was fetched twice.
    assert!(r.sources[0].bytes_fetched >= 100, "{r:?}");
    assert!(r.bytes_taken_over >= r.sources[0].bytes_fetched, "{r:?}");
    assert_eq!(
        r.bytes_taken_over + r.bytes_read_ahead,
        r.bytes_refetched,
        "{r:?}"
    );
}

#[tokio::test]
async fn a_lone_source_that_stalls_once_per_piece_is_asked_again_after_the_idle_timeout() {
    let (data, desc, layout) = blob_of(3 * PL as usize, 4);
    let src = Arc::new(Faulty::new("once", &data, layout, Mode::StallFirst));
    let dst = MemoryStore::new();
    // The timeout only bounds the wait for a request that never answers; nothing depends on
    // how long anything else takes.
    let o = opts(layout).with_idle_timeout(Some(Duration::from_millis(50)));
    let r = fetch_blob(&dst, "k", &desc, &dyns(std::slice::from_ref(&src)), &o)
        .await
        .unwrap();
    assert_eq!(fetched(&dst, &desc).await, data);
    assert_eq!(r.sources[0].failures, 3, "{r:?}");
    assert_eq!(src.calls.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn truncated_answers_are_fetched_elsewhere_or_named() {
    let (data, desc, layout) = blob_of(8 * PL as usize + 1, 5);
    let trunc = Arc::new(Faulty::new("trunc", &data, layout, Mode::Truncate));
    let good = Arc::new(Faulty::new("good", &data, layout, Mode::Good));
    let r = fetch_ok(&data, &desc, &[trunc.clone(), good], &opts(layout)).await;
    assert_eq!(r.sources[0].pieces, 0);
    assert!(r.sources[0].failures >= 1);

    // Alone: every piece is named, with what went wrong.
    let dst = MemoryStore::new();
    let e = fetch_blob(&dst, "k", &desc, &dyns(&[trunc]), &opts(layout))
        .await
        .unwrap_err();
    assert_eq!(e.unservable_pieces(), (0..9).collect::<Vec<_>>());
    let msg = e.to_string();
    assert!(
        msg.contains("no source could serve 9 of the 9 pieces"),
        "{msg}"
    );
    assert!(msg.contains("answer ended after"), "{msg}");
    assert!(!dst.exists(&desc.digest).await.unwrap());
}

#[tokio::test]
async fn whole_body_answers_to_ranges() {
    let (data, desc, layout) = blob_of(6 * PL as usize, 6);
    let whole = Arc::new(Faulty::new("whole", &data, layout, Mode::WholeBody));
    let good = Arc::new(Faulty::new("good", &data, layout, Mode::Good));
    let r = fetch_ok(&data, &desc, &[whole.clone(), good], &opts(layout)).await;
    assert!(r.bad_pieces.is_empty());

    // Alone, one piece a request: the pieces near the start are read from the whole body
    // (bytes before the range dropped, at most a piece of them); the others cannot be served
    // and are named.
    let dst = MemoryStore::new();
    let one = opts(layout).with_max_request(0);
    let e = fetch_blob(&dst, "k", &desc, &dyns(std::slice::from_ref(&whole)), &one)
        .await
        .unwrap_err();
    assert_eq!(e.unservable_pieces(), vec![2, 3, 4, 5]);
    let r = e.report().unwrap();
    assert_eq!(r.sources[0].pieces, 2);
    assert!(e.to_string().contains("whole content"), "{e}");

    // A run of pieces from the start in one request is read from the whole body in order.
    let dst = MemoryStore::new();
    let o = opts(layout)
        .with_connections_per_source(1)
        .with_max_request(6 * PL);
    let r = fetch_blob(&dst, "k", &desc, &dyns(std::slice::from_ref(&whole)), &o)
        .await
        .unwrap();
    assert_eq!(r.sources[0].pieces, 6);
    assert_eq!(whole.asked().last(), Some(&(0..desc.size)));
    assert_eq!(r.bytes_refetched, 0);
}

#[tokio::test]
async fn transient_errors_are_retried() {
    let (data, desc, layout) = blob_of(5 * PL as usize, 7);
    // With another source, and alone (one failure, then served).
    let flaky = Arc::new(Faulty::new("429", &data, layout, Mode::Transient(3)));
    let good = Arc::new(Faulty::new("good", &data, layout, Mode::Good));
    fetch_ok(&data, &desc, &[flaky, good], &opts(layout)).await;

    let alone = Arc::new(Faulty::new("429", &data, layout, Mode::Transient(1)));
    let dst = MemoryStore::new();
    let o = opts(layout).with_connections_per_source(1);
    let r = fetch_blob(&dst, "k", &desc, &dyns(&[alone]), &o)
        .await
        .unwrap();
    assert_eq!(fetched(&dst, &desc).await, data);
    assert_eq!(r.sources[0].failures, 1);

    // An error in the middle of a stream.
    let broken =
        Arc::new(Faulty::new("broken", &data, layout, Mode::Good).piece(2, Mode::StreamError));
    let good = Arc::new(Faulty::new("good", &data, layout, Mode::Good));
    fetch_ok(&data, &desc, &[broken, good], &opts(layout)).await;
}

#[tokio::test]
async fn more_bytes_than_asked_are_not_taken() {
    let (data, desc, layout) = blob_of(7 * PL as usize + 300, 8);
    let long = Arc::new(Faulty::new("overlong", &data, layout, Mode::Overlong));
    let r = fetch_ok(&data, &desc, &[long], &opts(layout)).await;
    // At most one chunk (1000 bytes) past each range is ever read.
    assert!(r.bytes_fetched <= desc.size + 8 * 1000, "{r:?}");
    assert_eq!(r.sources[0].failures, 0);
}

#[tokio::test]
async fn a_source_without_the_blob_is_dropped() {
    let (data, desc, layout) = blob_of(4 * PL as usize, 9);
    let missing = Arc::new(Faulty::new("empty", &data, layout, Mode::NotFound));
    let good = Arc::new(Faulty::new("good", &data, layout, Mode::Good));
    let r = fetch_ok(&data, &desc, &[missing, good], &opts(layout)).await;
    assert_eq!(
        r.sources[0].dropped.as_deref(),
        Some("does not have the blob")
    );
}

#[tokio::test]
async fn with_a_trusted_map_a_bad_piece_costs_one_piece_and_names_its_source() {
    let (data, desc, layout) = blob_of(16 * PL as usize, 10);
    let map = map_of(&data, &desc, layout);
    let bad = Arc::new(Faulty::new("mirror", &data, layout, Mode::Corrupt(77)));
    let good: Vec<_> = (0..2)
        .map(|i| Arc::new(Faulty::new(&format!("good{i}"), &data, layout, Mode::Good)))
        .collect();
    let dst = MemoryStore::new();
    let o = opts(layout).with_map(map, MapTrust::Trusted);
    let r = fetch_blob(
        &dst,
        "k",
        &desc,
        &dyns(&[bad.clone(), good[0].clone(), good[1].clone()]),
        &o,
    )
    .await
    .unwrap();
    assert_eq!(fetched(&dst, &desc).await, data);
    assert_eq!(r.map, MapUse::Trusted);
    // The mirror's first pieces (one per connection) were bad; then it was quarantined.
    assert!((1..=2).contains(&r.bad_pieces.len()), "{r:?}");
    for b in &r.bad_pieces {
        assert_eq!(b.source_name, "mirror");
        assert_eq!(
            b.expected,
            Algorithm::Sha256.hash(&data[b.range.start as usize..b.range.end as usize])
        );
    }
    assert!(r.sources[0].quarantined);
    assert_eq!(r.sources[0].pieces, 0);
    assert!(content_refetched(&r) <= 2 * PL, "{r:?}");
    let shown = r.bad_pieces[0].to_string();
    assert!(shown.contains("from mirror"), "{shown}");
}

#[tokio::test]
async fn a_trusted_map_for_another_blob_is_refused() {
    let (data, desc, layout) = blob_of(4 * PL as usize, 11);
    let (other, other_desc, _) = blob_of(4 * PL as usize, 12);
    let wrong = map_of(&other, &other_desc, layout);
    let good = Arc::new(Faulty::new("good", &data, layout, Mode::Good));
    let dst = MemoryStore::new();
    let e = fetch_blob(
        &dst,
        "k",
        &desc,
        &dyns(std::slice::from_ref(&good)),
        &opts(layout).with_map(wrong.clone(), MapTrust::Trusted),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, FetchError::Map { .. }), "{e}");
    assert_eq!(good.calls.load(Ordering::SeqCst), 0);
    // Advisory: ignored.
    let r = fetch_blob(
        &dst,
        "k",
        &desc,
        &dyns(&[good]),
        &opts(layout).with_map(wrong, MapTrust::Advisory),
    )
    .await
    .unwrap();
    assert!(matches!(r.map, MapUse::Rejected { .. }), "{:?}", r.map);
    assert_eq!(fetched(&dst, &desc).await, data);
}

#[tokio::test]
async fn a_wrong_advisory_map_costs_refetches_never_a_wrong_blob() {
    let (data, desc, layout) = blob_of(10 * PL as usize, 13);
    // A map of this blob's digest and size whose piece 4 hash is wrong (hostile or stale).
    let right = map_of(&data, &desc, layout);
    let mut hashes = right.hashes().to_vec();
    hashes[4][0] ^= 1;
    let lying = PieceMap::from_parts(desc.digest.clone(), layout, hashes).unwrap();
    let a = Arc::new(Faulty::new("a", &data, layout, Mode::Good).offering(lying.clone()));
    let b = Arc::new(Faulty::new("b", &data, layout, Mode::Good));
    let o = opts(layout).with_source_maps(true);
    let r = fetch_ok(&data, &desc, &[a, b], &o).await;
    assert!(matches!(r.map, MapUse::Rejected { .. }), "{:?}", r.map);
    // The sources were not wrong.
    assert!(r.bad_pieces.is_empty(), "{:?}", r.bad_pieces);
    assert!(content_refetched(&r) <= 4 * PL, "{r:?}");

    // A map whose every piece is wrong, offered by the only source.
    let hashes = vec![[7u8; 32]; layout.count() as usize];
    let garbage = PieceMap::from_parts(desc.digest.clone(), layout, hashes).unwrap();
    let a = Arc::new(Faulty::new("a", &data, layout, Mode::Good).offering(garbage));
    let r = fetch_ok(&data, &desc, &[a], &o).await;
    assert!(matches!(r.map, MapUse::Rejected { .. }));
    assert!(r.bad_pieces.is_empty());
}

#[tokio::test]
async fn without_a_map_a_corrupt_mirror_costs_what_it_supplied() {
    let (data, desc, layout) = blob_of(20 * PL as usize, 14);
    // The mirror (listed first: least trusted) serves bad bytes for every piece.
    let mirror = Arc::new(Faulty::new("mirror", &data, layout, Mode::Corrupt(5)));
    let origin = Arc::new(Faulty::new("origin", &data, layout, Mode::Good));
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let o = opts(layout).with_events(Arc::new(move |e: &FetchEvent| {
        if !matches!(e, FetchEvent::Received { .. }) {
            ev.lock().unwrap().push(e.clone());
        }
    }));
    let r = fetch_ok(&data, &desc, &[mirror, origin], &o).await;
    let supplied = r.sources[0].bytes_fetched;
    assert!(supplied > 0, "the mirror served nothing: {r:?}");
    assert!(content_refetched(&r) <= supplied, "{r:?}");
    assert!(r.bad_pieces.iter().all(|b| b.source_name == "mirror"));
    // Every piece the mirror served before the check is named, and only those.
    let events = events.lock().unwrap();
    let locating = events
        .iter()
        .position(|e| *e == FetchEvent::Locating)
        .unwrap();
    let mut served: Vec<u64> = events[..locating]
        .iter()
        .filter_map(|e| match e {
            FetchEvent::PieceDone { source: 0, index } => Some(*index),
            _ => None,
        })
        .collect();
    served.sort();
    let mut named: Vec<u64> = r.bad_pieces.iter().map(|b| b.index).collect();
    named.sort();
    assert!(!served.is_empty());
    assert_eq!(named, served);
    assert_eq!(r.sources[0].pieces, 0);
}

#[tokio::test]
async fn without_a_map_a_corrupt_origin_is_found_too() {
    let (data, desc, layout) = blob_of(9 * PL as usize, 15);
    let mirror = Arc::new(Faulty::new("mirror", &data, layout, Mode::Good));
    let origin = Arc::new(
        Faulty::new("origin", &data, layout, Mode::Good)
            .piece(3, Mode::Corrupt(1))
            .piece(7, Mode::Corrupt(2)),
    );
    let r = fetch_ok(&data, &desc, &[mirror, origin], &opts(layout)).await;
    assert!(r.bad_pieces.iter().all(|b| b.source_name == "origin"));
}

#[tokio::test]
async fn without_a_map_one_corrupt_source_alone_cannot_be_located() {
    let (data, desc, layout) = blob_of(3 * PL as usize, 16);
    let only = Arc::new(Faulty::new("only", &data, layout, Mode::Good).piece(1, Mode::Corrupt(9)));
    let dst = MemoryStore::new();
    let e = fetch_blob(&dst, "k", &desc, &dyns(&[only]), &opts(layout))
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::Unresolved { .. }), "{e}");
    assert!(
        e.to_string().contains("no piece had a second source"),
        "{e}"
    );
    assert!(!dst.exists(&desc.digest).await.unwrap());
}

#[tokio::test]
async fn without_a_map_two_sources_bad_on_different_pieces() {
    let (data, desc, layout) = blob_of(6 * PL as usize, 17);
    let a = Arc::new(Faulty::new("a", &data, layout, Mode::Good).piece(1, Mode::Corrupt(3)));
    let b = Arc::new(Faulty::new("b", &data, layout, Mode::Good).piece(4, Mode::Corrupt(4)));
    let r = fetch_ok(&data, &desc, &[a, b], &opts(layout)).await;
    for bp in &r.bad_pieces {
        assert!(
            (bp.index == 1 && bp.source_name == "a") || (bp.index == 4 && bp.source_name == "b"),
            "{bp}"
        );
    }
}

#[tokio::test]
async fn cancel_keeps_the_pieces_and_the_next_fetch_resumes() {
    let (data, desc, layout) = blob_of(10 * PL as usize, 18);
    let gate = Arc::new(tokio::sync::Notify::new());
    // Pieces 0-4 are served, 5-9 wait on a gate that never opens.
    let mut src = Faulty::new("s", &data, layout, Mode::Good);
    for i in 5..10 {
        src = src.piece(i, Mode::Gate(gate.clone()));
    }
    let src = Arc::new(src);
    let t = TempDir::new("fetch-cancel");
    let dst = LayoutStore::open_with(t.path(), &LayoutOptions::create())
        .await
        .unwrap();
    let token = CancelToken::new();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (tk, dn) = (token.clone(), done.clone());
    let o = opts(layout)
        .with_cancel(token)
        .with_events(Arc::new(move |e: &FetchEvent| {
            if matches!(e, FetchEvent::PieceDone { .. })
                && dn.fetch_add(1, Ordering::SeqCst) + 1 == 5
            {
                tk.cancel();
            }
        }));
    let e = fetch_blob(&dst, "k", &desc, &dyns(&[src]), &o)
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::Cancelled { .. }), "{e}");
    assert!(!dst.exists(&desc.digest).await.unwrap());

    let again = Arc::new(Faulty::new("again", &data, layout, Mode::Good));
    let r = fetch_blob(
        &dst,
        "k",
        &desc,
        &dyns(std::slice::from_ref(&again)),
        &opts(layout),
    )
    .await
    .unwrap();
    assert_eq!(r.resumed_pieces, 5);
    // Every piece a request covered (a request takes a run of adjacent pieces).
    let asked: Vec<u64> = again
        .asked()
        .iter()
        .flat_map(|r| r.start / PL..r.end.div_ceil(PL))
        .collect();
    let mut sorted = asked.clone();
    sorted.sort();
    assert_eq!(sorted, vec![5, 6, 7, 8, 9]);
    assert_eq!(r.bytes_fetched, 5 * PL);
    assert_eq!(
        oci_store::collect(dst.fetch(&desc).await.unwrap(), u64::MAX)
            .await
            .unwrap(),
        data
    );
    assert!(dst.fsck(&FsckOptions::default()).await.unwrap().is_clean());
}

#[tokio::test]
async fn a_destination_without_piece_writers_says_so() {
    struct Plain(MemoryStore);
    // A store whose `piece_writer` is the trait's default.
    #[async_trait::async_trait]
    impl ReadStore for Plain {
        async fn stat(&self, d: &oci_store::Digest) -> oci_store::Result<Option<u64>> {
            self.0.stat(d).await
        }
        async fn fetch(&self, d: &Descriptor) -> oci_store::Result<oci_store::BlobStream> {
            self.0.fetch(d).await
        }
        async fn fetch_range(
            &self,
            d: &Descriptor,
            r: std::ops::Range<u64>,
        ) -> oci_store::Result<oci_store::BlobStream> {
            self.0.fetch_range(d, r).await
        }
    }
    #[async_trait::async_trait]
    impl WriteStore for Plain {
        async fn push(
            &self,
            d: &Descriptor,
            s: oci_store::BlobStream,
        ) -> oci_store::Result<PushOutcome> {
            self.0.push(d, s).await
        }
        async fn writer(
            &self,
            k: &str,
            d: &Descriptor,
        ) -> oci_store::Result<Box<dyn oci_store::BlobWriter>> {
            self.0.writer(k, d).await
        }
        async fn ingest_status(
            &self,
            k: &str,
        ) -> oci_store::Result<Option<oci_store::IngestStatus>> {
            self.0.ingest_status(k).await
        }
        async fn ingests(&self) -> oci_store::Result<Vec<oci_store::IngestStatus>> {
            self.0.ingests().await
        }
        async fn abort_ingest(&self, k: &str) -> oci_store::Result<()> {
            self.0.abort_ingest(k).await
        }
        async fn delete(&self, d: &oci_store::Digest) -> oci_store::Result<()> {
            self.0.delete(d).await
        }
    }
    let (data, desc, layout) = blob_of(2 * PL as usize, 19);
    let good = Arc::new(Faulty::new("good", &data, layout, Mode::Good));
    let e = fetch_blob(
        &Plain(MemoryStore::new()),
        "k",
        &desc,
        &dyns(&[good]),
        &opts(layout),
    )
    .await
    .unwrap_err();
    match e {
        FetchError::Store { source, .. } => {
            assert!(matches!(source, oci_store::StoreError::Unsupported { .. }))
        }
        other => panic!("{other}"),
    }
    // And no sources at all.
    let e = fetch_blob(
        &MemoryStore::new(),
        "k",
        &desc,
        &[] as &[Arc<dyn RangeSource>],
        &opts(layout),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, FetchError::NoSources { .. }));
}
