//! Tests with real processes on one layout directory (own `main`: the binary re-executes itself
//! as the child, selected by `OCI_STORE_CHILD`).
//!
//! 1. GC beside live work: 8 writers storing images under leases while GC loops, first all in
//!    threads of this process, then with the GC loop (and 2 more writers) in a second process.
//!    Every writer checks its image complete right after tagging it; at the end every tagged
//!    image is complete and fsck is clean. Iteration counts are printed.
//! 2. Crash safety: children writing and committing blobs (resumable ingests and plain pushes)
//!    and children running GC are SIGKILLed at random moments, a few hundred times. After each
//!    kill the store opens, fsck finds nothing corrupt or missing, and interrupted ingests resume
//!    to a verified blob (keyed ones) or are cleaned by GC (internal ones).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use oci_manifest::Descriptor;
use oci_manifest::build::ImageManifestBuilder;
use oci_manifest::media_types;
use oci_store::{
    FsckOptions, GcOptions, LayoutOptions, LayoutStore, ManagedStore, PushOutcome, ReadStore,
    StoreError, TagStore, WriteStore,
};

const CHILD: &str = "OCI_STORE_CHILD";
const DIR: &str = "OCI_STORE_DIR";
const SEED: &str = "OCI_STORE_SEED";

fn main() -> ExitCode {
    if let Ok(mode) = std::env::var(CHILD) {
        return child(&mode);
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let tests: [(&str, fn()); 3] = [
        ("gc_beside_live_work_threads", gc_beside_live_work_threads),
        (
            "gc_beside_live_work_processes",
            gc_beside_live_work_processes,
        ),
        ("crash_safety", crash_safety),
    ];
    let mut failed = 0;
    for (name, f) in tests {
        if !filter.is_empty() && !filter.iter().any(|x| name.contains(x.as_str())) {
            continue;
        }
        let t = Instant::now();
        println!("test {name} ...");
        match std::panic::catch_unwind(f) {
            Ok(()) => println!("test {name} ... ok ({:.1?})", t.elapsed()),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

// ------------------------------------------------------------------------------------------
// Children.

fn child(mode: &str) -> ExitCode {
    let dir = PathBuf::from(std::env::var(DIR).expect("OCI_STORE_DIR"));
    let seed: u64 = std::env::var(SEED)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = LayoutStore::open(&dir).await.unwrap();
        match mode {
            "gc-loop" => {
                // Loops until the stop file appears; prints the iteration count.
                let stop = dir.join("stop");
                let mut n = 0u64;
                while !stop.exists() {
                    store
                        .gc(&GcOptions::default().with_min_age(Duration::ZERO))
                        .await
                        .unwrap();
                    n += 1;
                }
                println!("gc-iterations {n}");
            }
            "writers" => {
                let stop = dir.join("stop");
                let mut handles = Vec::new();
                for w in 0..2u64 {
                    let store = store.clone();
                    let stop = stop.clone();
                    handles.push(tokio::spawn(async move {
                        let mut i = 0;
                        while !stop.exists() {
                            live_writer_step(&store, 100 + seed * 10 + w, i).await;
                            i += 1;
                        }
                        i
                    }));
                }
                let mut total = 0;
                for h in handles {
                    total += h.await.unwrap();
                }
                println!("child-images {total}");
            }
            "crash-writer" => crash_writer(&store, seed).await,
            "crash-gc" => loop {
                store
                    .gc(&GcOptions::default().with_min_age(Duration::ZERO))
                    .await
                    .unwrap();
            },
            other => panic!("unknown child mode {other}"),
        }
    });
    ExitCode::SUCCESS
}

fn spawn_child(mode: &str, dir: &Path, seed: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(CHILD, mode)
        .env(DIR, dir)
        .env(SEED, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

// ------------------------------------------------------------------------------------------
// GC beside live work.

/// Content shared by every writer, so "already exists" answers race with GC.
fn shared_layer() -> Blob {
    blob(media_types::OCI_LAYER_GZIP, Rng::new(4242).bytes(50_000))
}

/// One image by writer `w`, iteration `i`: under a lease, post order, tag, check complete,
/// release; untag the writer's image of two iterations ago so GC has work.
async fn live_writer_step(store: &LayoutStore, w: u64, i: u64) {
    let lease = store.create_lease(Duration::from_secs(120)).await.unwrap();
    let leased = store.with_lease(&lease);
    let mut img = image(w * 1_000_000 + i, 2, 1000 + (i as usize % 7) * 3000);
    img.blobs.insert(0, shared_layer());
    // Rebuild the manifest to include the shared layer.
    let n = img.blobs.len();
    let layers: Vec<Descriptor> = img.blobs[..n - 2].iter().map(|b| b.desc.clone()).collect();
    let config = img.blobs[n - 2].desc.clone();
    let m = ImageManifestBuilder::oci(config)
        .layers(layers)
        .build()
        .unwrap();
    img.blobs[n - 1] = from_manifest(&m);
    for b in &img.blobs {
        // Yield between steps so GC interleaves.
        tokio::task::yield_now().await;
        leased.push_bytes(&b.desc, b.data.clone()).await.unwrap();
    }
    let tag = format!("w{w}-{i}");
    leased.tag(img.root(), &tag).await.unwrap();
    store.release_lease(&lease).await.unwrap();
    check_complete(store, img.root()).await.unwrap();
    if i >= 2 {
        let _ = store.untag(&format!("w{w}-{}", i - 2)).await;
    }
}

fn all_tagged_complete(store: &LayoutStore, rt: &tokio::runtime::Runtime) -> usize {
    rt.block_on(async {
        let tags = store.tags().await.unwrap();
        for t in &tags {
            let d = store.resolve(t).await.unwrap();
            check_complete(store, &d)
                .await
                .unwrap_or_else(|e| panic!("tag {t} incomplete: {e}"));
        }
        let f = store.fsck(&FsckOptions::default()).await.unwrap();
        assert!(f.is_clean(), "fsck: {f:?}");
        tags.len()
    })
}

/// Runs 8 writer threads for `dur`; returns images written.
fn run_writers(store: &LayoutStore, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<u64>> {
    (0..8u64)
        .map(|w| {
            let store = store.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    rt.block_on(live_writer_step(&store, w, i));
                    i += 1;
                }
                i
            })
        })
        .collect()
}

fn gc_beside_live_work_threads() {
    let t = TempDir::new("live-threads");
    let rt = rt();
    let store = rt
        .block_on(LayoutStore::open_with(t.path(), &LayoutOptions::create()))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let gc_runs = Arc::new(AtomicUsize::new(0));
    let removed = Arc::new(AtomicUsize::new(0));
    let writers = run_writers(&store, stop.clone());
    let gc = {
        let store = store.clone();
        let stop = stop.clone();
        let gc_runs = gc_runs.clone();
        let removed = removed.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            while !stop.load(Ordering::Relaxed) {
                let r = rt
                    .block_on(store.gc(&GcOptions::default().with_min_age(Duration::ZERO)))
                    .unwrap();
                gc_runs.fetch_add(1, Ordering::Relaxed);
                removed.fetch_add(r.removed.len(), Ordering::Relaxed);
            }
        })
    };
    // fsck beside all of it never reports corrupt or missing content.
    let fsck = {
        let store = store.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let f = rt.block_on(store.fsck(&FsckOptions::default())).unwrap();
                assert!(f.is_clean(), "fsck beside live work: {f:?}");
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_secs(8));
    stop.store(true, Ordering::Relaxed);
    let images: u64 = writers.into_iter().map(|h| h.join().unwrap()).sum();
    gc.join().unwrap();
    let fscks = fsck.join().unwrap();
    let tags = all_tagged_complete(&store, &rt);
    println!(
        "  threads: 8 writers stored {images} images; GC ran {} times removing {} blobs; fsck ran {fscks} times, clean; {tags} tags complete",
        gc_runs.load(Ordering::Relaxed),
        removed.load(Ordering::Relaxed)
    );
    assert!(
        images >= 8 && gc_runs.load(Ordering::Relaxed) >= 2 && removed.load(Ordering::Relaxed) > 0
    );
}

fn gc_beside_live_work_processes() {
    let t = TempDir::new("live-procs");
    let rt = rt();
    let store = rt
        .block_on(LayoutStore::open_with(t.path(), &LayoutOptions::create()))
        .unwrap();
    let gc_child = spawn_child("gc-loop", t.path(), 1);
    let writer_child = spawn_child("writers", t.path(), 2);
    let stop = Arc::new(AtomicBool::new(false));
    let writers = run_writers(&store, stop.clone());
    std::thread::sleep(Duration::from_secs(8));
    stop.store(true, Ordering::Relaxed);
    let images: u64 = writers.into_iter().map(|h| h.join().unwrap()).sum();
    std::fs::write(t.path().join("stop"), b"").unwrap();
    let out = gc_child.wait_with_output().unwrap();
    assert!(out.status.success(), "gc child failed");
    let gc_line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = writer_child.wait_with_output().unwrap();
    assert!(out.status.success(), "writer child failed");
    let w_line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::fs::remove_file(t.path().join("stop")).unwrap();
    let tags = all_tagged_complete(&store, &rt);
    println!(
        "  processes: 8 writer threads stored {images} images; second process: {gc_line}; third process: {w_line}; {tags} tags complete"
    );
    let gc_n: u64 = gc_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(images >= 8 && gc_n >= 2);
}

// ------------------------------------------------------------------------------------------
// Crash safety.

/// Content of a keyed ingest, from its key `crash-<seed>-<size>`.
fn keyed_content(key: &str) -> Option<Bytes> {
    let mut it = key.strip_prefix("crash-")?.split('-');
    let seed: u64 = it.next()?.parse().ok()?;
    let size: usize = it.next()?.parse().ok()?;
    Some(Bytes::from(Rng::new(seed).bytes(size)))
}

/// Writes images forever: layers through resumable writers in small chunks, config and
/// manifest through push, tag; untags older images; sometimes abandons a writer half way.
async fn crash_writer(store: &LayoutStore, seed: u64) {
    let mut rng = Rng::new(seed);
    for i in 0.. {
        let lease = store.create_lease(Duration::from_secs(3600)).await.unwrap();
        let leased = store.with_lease(&lease);
        let mut layers = Vec::new();
        for _ in 0..2 {
            let s = rng.next() % 1_000_000;
            let size = 1 + (rng.next() % 120_000) as usize;
            let key = format!("crash-{s}-{size}");
            let data = keyed_content(&key).unwrap();
            let b = blob(media_types::OCI_LAYER_GZIP, data.clone());
            let mut w = match leased.writer(&key, &b.desc).await {
                Ok(w) => w,
                Err(StoreError::IngestBusy { .. }) => continue,
                Err(e) => panic!("{e}"),
            };
            let mut off = w.offset() as usize;
            while off < data.len() {
                let end = (off + 16_384).min(data.len());
                w.write(data.slice(off..end)).await.unwrap();
                off = end;
            }
            w.commit().await.unwrap();
            layers.push(b.desc);
        }
        let config = blob(
            media_types::OCI_CONFIG,
            format!(r#"{{"seed":{seed},"i":{i}}}"#),
        );
        leased
            .push_bytes(&config.desc, config.data.clone())
            .await
            .unwrap();
        let m = from_manifest(
            &ImageManifestBuilder::oci(config.desc.clone())
                .layers(layers)
                .build()
                .unwrap(),
        );
        leased.push_bytes(&m.desc, m.data.clone()).await.unwrap();
        leased.tag(&m.desc, &format!("c{seed}-{i}")).await.unwrap();
        store.release_lease(&lease).await.unwrap();
        if i >= 1 {
            let _ = store.untag(&format!("c{seed}-{}", i - 1)).await;
        }
    }
}

fn crash_safety() {
    let t = TempDir::new("crash");
    let rt = rt();
    rt.block_on(LayoutStore::open_with(t.path(), &LayoutOptions::create()))
        .unwrap();
    let started = Instant::now();
    let mut rng = Rng::new(std::process::id() as u64);
    let (mut kills, mut gc_kills, mut resumed, mut cleaned, mut rounds) = (0, 0, 0, 0, 0);
    // A few hundred kills, bounded in time.
    while kills < 300 && started.elapsed() < Duration::from_secs(120) {
        rounds += 1;
        let mut children = vec![spawn_child("crash-writer", t.path(), rng.next() % 1000)];
        if rounds % 2 == 0 {
            children.push(spawn_child("crash-gc", t.path(), 0));
        }
        std::thread::sleep(Duration::from_millis(5 + rng.below(80)));
        for mut c in children.drain(..) {
            c.kill().unwrap(); // SIGKILL
            let st = c.wait().unwrap();
            assert!(!st.success(), "child exited by itself: {st:?}");
            kills += 1;
        }
        if rounds % 2 == 0 {
            gc_kills += 1;
        }
        // After each kill: the store opens, fsck is clean, ingests resume or are cleaned.
        rt.block_on(async {
            let store = LayoutStore::open(t.path())
                .await
                .expect("store opens after SIGKILL");
            let f = store.fsck(&FsckOptions::default()).await.unwrap();
            assert!(f.is_clean(), "after kill {kills}: {f:?}");
            for st in store.ingests().await.unwrap() {
                if let Some(data) = keyed_content(&st.key) {
                    let mut w = store.writer(&st.key, &st.expected).await.unwrap();
                    assert!(w.offset() <= data.len() as u64);
                    let off = w.offset() as usize;
                    w.write(data.slice(off..)).await.unwrap();
                    let o = w.commit().await.unwrap();
                    assert!(matches!(
                        o,
                        PushOutcome::Written | PushOutcome::AlreadyExists
                    ));
                    let back =
                        oci_store::collect(store.fetch(&st.expected).await.unwrap(), u64::MAX)
                            .await
                            .unwrap();
                    assert_eq!(back, data);
                    resumed += 1;
                }
            }
            let r = store
                .gc(&GcOptions::default()
                    .with_min_age(Duration::ZERO)
                    .with_stale_ingest_age(Duration::ZERO))
                .await
                .unwrap();
            cleaned += r.stale_ingests.len();
            assert!(store.ingests().await.unwrap().is_empty());
            // Every tag left is a complete image (checked every 5th round, to keep time).
            if rounds % 5 == 0 {
                for tag in store.tags().await.unwrap() {
                    let d = store.resolve(&tag).await.unwrap();
                    check_complete(&store, &d).await.unwrap();
                }
            }
            // Keep the store small: drop all but the newest tags.
            let tags = store.tags().await.unwrap();
            if tags.len() > 6 {
                for tag in &tags[..tags.len() - 6] {
                    store.untag(tag).await.unwrap();
                }
            }
        });
    }
    println!(
        "  crash: {kills} SIGKILLs in {rounds} rounds ({gc_kills} of a GC child) in {:.1?}; {resumed} interrupted ingests resumed to verified blobs, {cleaned} cleaned by GC",
        started.elapsed()
    );
    assert!(kills >= 200, "only {kills} kills in the time budget");
}
