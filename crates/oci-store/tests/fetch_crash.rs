//! SIGKILL during a fetch from many sources, then the fetch again in another process: only the
//! pieces not held are fetched, the blob verifies, fsck is clean.
//!
//! The test re-executes its own binary as the child (selected by `OCI_FETCH_CHILD`), which
//! fetches a blob into a layout from three sources and prints an event line per piece written.
//! Two kinds of rounds:
//! - gated: the sources serve K requests, then hang half way through a piece; the parent kills
//!   the child once it has printed K pieces (so the kill lands with pieces half written);
//! - free: the parent kills the child after a random number of events (received bytes, pieces),
//!   anywhere in the fetch, the final check and commit included.
//!
//! With and without a trusted piece map. No timing is involved: kills follow events.

mod common;
mod fetch_common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use fetch_common::*;
use oci_digest::{PieceLayout, PieceMap};
use oci_manifest::Descriptor;
use oci_store::{
    FetchEvent, FetchOptions, FsckOptions, GcOptions, LayoutOptions, LayoutStore, ManagedStore,
    MapTrust, PushOutcome, ReadStore, WriteStore, fetch_blob,
};

const CHILD: &str = "OCI_FETCH_CHILD";
const PL: u64 = 64 << 10;
const PIECES: u64 = 48;
const KEY: &str = "crash-fetch";
/// Pieces the layout's piece writer completes before it records them (one `fdatasync`).
const RECORD_EVERY: usize = 16;
const TEST: &str = "sigkill_during_a_multi_source_fetch_then_resume";

fn content(seed: u64) -> (Bytes, Descriptor, PieceLayout) {
    let data = Bytes::from(Rng::new(seed).bytes((PIECES * PL - 1000) as usize));
    let desc = Descriptor::of("application/vnd.oci.image.layer.v1.tar", &data);
    let layout = PieceLayout::new(desc.size, PL).unwrap();
    (data, desc, layout)
}

fn options(map: bool, data: &Bytes, desc: &Descriptor, layout: PieceLayout) -> FetchOptions {
    let mut o = FetchOptions::default()
        .with_layout(layout)
        .with_retry_delay(Duration::ZERO)
        .with_idle_timeout(None);
    // No take-over by rate: only events move pieces between sources.
    o.steal_check = Duration::from_secs(3600);
    if map {
        let m = PieceMap::compute_with_layout(&data[..], desc.digest.clone(), layout).unwrap();
        o = o.with_map(m, MapTrust::Trusted);
    }
    o
}

/// The child: fetches into the layout at `OCI_FETCH_DIR`, printing `EV done <piece>` and
/// `EV got <bytes>` lines, until killed (or done).
fn child() {
    let dir = std::env::var("OCI_FETCH_DIR").unwrap();
    let seed: u64 = std::env::var("OCI_FETCH_SEED").unwrap().parse().unwrap();
    let budget: i64 = std::env::var("OCI_FETCH_BUDGET").unwrap().parse().unwrap();
    let map = std::env::var("OCI_FETCH_MAP").unwrap() == "1";
    let (data, desc, layout) = content(seed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = LayoutStore::open(&dir).await.unwrap();
        let shared = Arc::new(AtomicI64::new(budget));
        let mode = if budget > 0 {
            Mode::Budget(shared)
        } else {
            Mode::Good
        };
        let sources: Vec<_> = (0..3)
            .map(|i| Arc::new(Faulty::new(&format!("s{i}"), &data, layout, mode.clone())))
            .collect();
        let o =
            options(map, &data, &desc, layout).with_events(Arc::new(|e: &FetchEvent| match e {
                FetchEvent::PieceDone { index, .. } => println!("EV done {index}"),
                FetchEvent::Received { bytes, .. } => println!("EV got {bytes}"),
                _ => {}
            }));
        let r = fetch_blob(&store, KEY, &desc, &dyns(&sources), &o).await;
        println!("EV finished {}", r.is_ok());
    });
}

fn spawn(dir: &Path, seed: u64, budget: i64, map: bool) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("OCI_FETCH_DIR", dir)
        .env("OCI_FETCH_SEED", seed.to_string())
        .env("OCI_FETCH_BUDGET", budget.to_string())
        .env("OCI_FETCH_MAP", if map { "1" } else { "0" })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Reads the child's events until `stop` says so (or the child ends); kills it; returns the
/// pieces it reported done and whether it finished by itself.
fn run_and_kill(
    mut child: std::process::Child,
    mut stop: impl FnMut(usize, usize) -> bool,
) -> (BTreeSet<u64>, bool) {
    let out = child.stdout.take().unwrap();
    let mut done = BTreeSet::new();
    let (mut events, mut finished) = (0, false);
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        let Some(ev) = line.strip_prefix("EV ") else {
            continue;
        };
        events += 1;
        if let Some(i) = ev.strip_prefix("done ") {
            done.insert(i.parse().unwrap());
        }
        if ev.starts_with("finished") {
            finished = true;
            break;
        }
        if stop(events, done.len()) {
            break;
        }
    }
    let _ = child.kill(); // SIGKILL
    let st = child.wait().unwrap();
    if !finished {
        assert!(
            !st.success(),
            "child exited by itself without finishing: {st:?}"
        );
    }
    (done, finished)
}

#[test]
fn sigkill_during_a_multi_source_fetch_then_resume() {
    if std::env::var(CHILD).is_ok() {
        child();
        return;
    }
    let rt = rt();
    let mut rng = Rng::new(u64::from(std::process::id()));
    let (mut gated, mut free, mut committed_by_child) = (0, 0, 0);
    let mut resumed_pieces = 0;
    for round in 0..16u64 {
        let t = TempDir::new("fetch-crash");
        rt.block_on(LayoutStore::open_with(t.path(), &LayoutOptions::create()))
            .unwrap();
        let seed = rng.next();
        let map = round % 2 == 0;
        let is_gated = round < 8;
        let (done, finished) = if is_gated {
            gated += 1;
            // K pieces, then the sources hang half way through the next ones.
            let k = 1 + rng.below(36) as usize;
            let (done, finished) =
                run_and_kill(spawn(t.path(), seed, k as i64, map), |_, d| d >= k);
            assert!(!finished);
            assert_eq!(done.len(), k, "round {round}");
            (done, finished)
        } else {
            free += 1;
            let n = 1 + rng.below(2 * PIECES * PL / 1000) as usize;
            run_and_kill(spawn(t.path(), seed, 0, map), |e, _| e >= n)
        };
        if finished {
            committed_by_child += 1;
        }

        // After the kill: the store opens, fsck is clean, nothing unverified is visible.
        let (data, desc, layout) = content(seed);
        rt.block_on(async {
            let store = LayoutStore::open(t.path())
                .await
                .expect("store opens after SIGKILL");
            let f = store.fsck(&FsckOptions::default()).await.unwrap();
            assert!(f.is_clean(), "round {round}: {f:?}");
            let visible = store.exists(&desc.digest).await.unwrap();
            // What the ingest holds: the pieces the child reported done, but for those
            // completed since its last record (the layout records every 16 pieces).
            let held: BTreeSet<u64> = if visible {
                (0..PIECES).collect()
            } else {
                let w = store.piece_writer(KEY, &desc, layout).await.unwrap();
                let h = w.held().into_iter().collect();
                drop(w);
                h
            };
            if is_gated {
                // The last piece done was completed (and any record it made written) before
                // its event: at most one batch is not recorded.
                let unrecorded = done.difference(&held).count();
                assert!(
                    unrecorded < RECORD_EVERY,
                    "round {round}: done {done:?}, held {held:?}"
                );
            }

            // The fetch again, in this process: only the missing pieces are asked for.
            let sources: Vec<_> = (0..3)
                .map(|i| Arc::new(Faulty::new(&format!("r{i}"), &data, layout, Mode::Good)))
                .collect();
            let r = fetch_blob(
                &store,
                KEY,
                &desc,
                &dyns(&sources),
                &options(map, &data, &desc, layout),
            )
            .await
            .unwrap();
            // Every piece a request covered (a request takes a run of adjacent pieces).
            let asked: BTreeSet<u64> = sources
                .iter()
                .flat_map(|s| s.asked())
                .flat_map(|r| r.start / PL..r.end.div_ceil(PL))
                .collect();
            let missing: BTreeSet<u64> = (0..PIECES).filter(|p| !held.contains(p)).collect();
            assert_eq!(
                asked, missing,
                "round {round}: asked for {asked:?}, missing {missing:?}"
            );
            if visible {
                assert_eq!(r.outcome, Some(PushOutcome::AlreadyExists));
            } else {
                assert_eq!(r.outcome, Some(PushOutcome::Written));
                assert_eq!(r.resumed_pieces, held.len() as u64, "round {round}");
                let missing_bytes: u64 = missing.iter().map(|&p| layout.len_of(p)).sum();
                assert_eq!(r.bytes_fetched, missing_bytes, "round {round}: {r:?}");
                resumed_pieces += r.resumed_pieces;
            }
            assert_eq!(
                oci_store::collect(store.fetch(&desc).await.unwrap(), u64::MAX)
                    .await
                    .unwrap(),
                data
            );
            let f = store.fsck(&FsckOptions::default()).await.unwrap();
            assert!(f.is_clean(), "round {round}: {f:?}");
            // An ingest left by a kill inside the commit (after the rename) is stale: GC takes it.
            store
                .gc(&GcOptions::default()
                    .with_min_age(Duration::ZERO)
                    .with_stale_ingest_age(Duration::ZERO))
                .await
                .unwrap();
            assert!(store.ingests().await.unwrap().is_empty());
        });
    }
    println!(
        "  fetch crash: {gated} kills with pieces half written, {free} kills at random events \
         ({committed_by_child} children finished first); {resumed_pieces} pieces kept and not fetched again"
    );
    assert!(resumed_pieces > 0);
}
