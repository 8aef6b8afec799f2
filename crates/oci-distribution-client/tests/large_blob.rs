//! A blob of several hundred MiB pushed to and pulled from the real `docker-registry` with flat
//! memory. Alone in its test binary so the process's RSS measures only this transfer.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::registry::TestRegistry;
use futures_util::StreamExt;
use oci_distribution_client::{Algorithm, BlobPush, BlobSource, Client, Descriptor, media_types};

const SIZE: u64 = 320 * 1024 * 1024;
const PIECE: usize = 1024 * 1024;

/// Deterministic content made on the fly: a random 1 MiB block with the piece number stamped
/// in front, so no two pieces are equal and nothing is held beyond one piece.
fn pieces() -> impl Iterator<Item = Bytes> + Send + 'static {
    let mut rng = fastrand::Rng::with_seed(42);
    let base: Arc<Vec<u8>> = Arc::new((0..PIECE).map(|_| rng.u8(..)).collect());
    (0..SIZE.div_ceil(PIECE as u64)).map(move |i| {
        let mut v = base.as_ref().clone();
        v[..8].copy_from_slice(&i.to_le_bytes());
        let len = (SIZE - i * PIECE as u64).min(PIECE as u64) as usize;
        v.truncate(len);
        Bytes::from(v)
    })
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_hundred_mib_blob_streams_with_flat_memory() {
    let reg = TestRegistry::start();
    let mut d = Algorithm::Sha256.digester();
    for p in pieces() {
        d.update(&p);
    }
    let desc = Descriptor::new(media_types::OCI_LAYER_TAR, d.finalize(), SIZE);

    let repo = Client::new(common::test_config(&reg.addr))
        .expect("client")
        .repository_by_name(&reg.addr, "big/blob")
        .expect("repo");

    let baseline = rss_bytes();
    let peak = Arc::new(AtomicU64::new(baseline));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let src: BlobSource = Box::pin(futures_util::stream::iter(pieces().map(Ok)));
    let t0 = std::time::Instant::now();
    let out = repo.push_blob(&desc, src).await.expect("push");
    let push_secs = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    assert_eq!(out, BlobPush::Streamed, "one streamed request");

    let mut s = repo.fetch_blob(&desc).await.expect("open");
    let mut expected = pieces();
    let mut pending = Bytes::new();
    let mut received: u64 = 0;
    while let Some(chunk) = s.next().await {
        let mut chunk = chunk.expect("verified chunk");
        received += chunk.len() as u64;
        // Compare with the generated content without holding more than one piece.
        while !chunk.is_empty() {
            if pending.is_empty() {
                pending = expected.next().expect("more data than generated");
            }
            let n = pending.len().min(chunk.len());
            assert_eq!(
                chunk.split_to(n),
                pending.split_to(n),
                "content at {received}"
            );
        }
    }
    assert_eq!(received, SIZE);
    let pull_secs = t1.elapsed().as_secs_f64();
    // Figures only (speed is judged by benches, not asserted here).
    println!(
        "push {:.0} MB/s, pull+compare {:.0} MB/s",
        SIZE as f64 / push_secs / 1e6,
        SIZE as f64 / pull_secs / 1e6
    );
    assert!(pending.is_empty() && expected.next().is_none());

    stop.store(true, Ordering::Relaxed);
    sampler.await.expect("sampler");
    let growth = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    println!(
        "blob {} MiB: RSS baseline {} MiB, peak growth {} MiB",
        SIZE >> 20,
        baseline >> 20,
        growth >> 20
    );
    // One streamed request: a source piece or two and transport buffers, nothing the size of
    // a chunk; the pull holds its own buffers. Far below the blob size either way.
    assert!(
        growth < 64 * 1024 * 1024,
        "memory grew by {} MiB",
        growth >> 20
    );
}
