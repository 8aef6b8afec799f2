//! Store benchmarks.
//!
//! `cargo bench -p oci-benches --bench store`
//!
//! - `ingest_1GiB`: a 1 GiB blob pushed from memory (1 MiB chunks) into a `LayoutStore`
//!   (ingest file, hash, fsync, verify, rename, fsync dir), beside hashing alone, writing alone
//!   (write + fsync) and both done one after the other in one loop (the "hashing alone plus
//!   writing alone" rate the ingest is compared with). Prints the peak resident memory after the
//!   ingest runs, which stays far below the blob size.
//! - `gc_100k`: garbage collection of a layout with 100,000 blobs and 10,000 manifests (plus 100
//!   tagged indexes over them): with a cold manifest cache (fresh store handle) and warm.
//! - `refcount_100k`: `refcount` of one blob on that layout after the graph was loaded.
use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oci_digest::{Algorithm, Digester};
use oci_manifest::{Descriptor, annotations::REF_NAME, media_types};
use oci_store::{
    BlobStream, GcOptions, LayoutOptions, LayoutStore, ManagedStore, PushOutcome, WriteStore,
};

const GIB: usize = 1 << 30;
const CHUNK: usize = 1 << 20;

fn bench_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oci-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("bench dir");
    d
}

fn chunk() -> Bytes {
    let mut v = vec![0u8; CHUNK];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for b in v.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    Bytes::from(v)
}

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn ingest(c: &mut Criterion) {
    let dir = bench_dir("ingest");
    let data = chunk();
    let n = GIB / CHUNK;
    let mut d = Digester::new(Algorithm::Sha256);
    for _ in 0..n {
        d.update(&data);
    }
    let desc = Descriptor::new(media_types::OCI_LAYER_TAR, d.finalize(), GIB as u64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = rt
        .block_on(LayoutStore::open_with(
            dir.join("layout"),
            &LayoutOptions::create(),
        ))
        .expect("layout");

    let mut g = c.benchmark_group("ingest_1GiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(GIB as u64));
    g.bench_function("hash_only", |b| {
        b.iter(|| {
            let mut d = Digester::new(Algorithm::Sha256);
            for _ in 0..n {
                d.update(black_box(&data));
            }
            d.finalize()
        })
    });
    let plain = dir.join("plain");
    g.bench_function("write_only", |b| {
        b.iter(|| {
            let mut f = File::create(&plain).expect("create");
            for _ in 0..n {
                f.write_all(black_box(&data)).expect("write");
            }
            f.sync_all().expect("fsync");
        })
    });
    g.bench_function("hash_then_write", |b| {
        b.iter(|| {
            let mut d = Digester::new(Algorithm::Sha256);
            let mut f = File::create(&plain).expect("create");
            for _ in 0..n {
                d.update(black_box(&data));
                f.write_all(&data).expect("write");
            }
            f.sync_all().expect("fsync");
            d.finalize()
        })
    });
    let _ = std::fs::remove_file(&plain);
    g.bench_function("layout_push", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let chunks: Vec<std::io::Result<Bytes>> =
                    (0..n).map(|_| Ok(data.clone())).collect();
                let stream: BlobStream = Box::pin(futures_util::stream::iter(chunks));
                let t = Instant::now();
                let outcome = rt.block_on(store.push(&desc, stream)).expect("push");
                total += t.elapsed();
                assert_eq!(outcome, PushOutcome::Written);
                rt.block_on(store.delete(&desc.digest)).expect("delete");
            }
            total
        })
    });
    g.finish();
    if let Some(kib) = peak_rss_kib() {
        eprintln!(
            "peak resident memory of the bench process after the 1 GiB ingests: {} MiB",
            kib / 1024
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes a layout with `manifests` manifests of 10 blobs each (one config, nine layers; 64
/// random bytes each) and `manifests / 100` tagged indexes of 100 manifests, directly as files
/// (as another tool would). Returns one layer's digest.
fn big_layout(root: &Path, manifests: usize) -> oci_digest::Digest {
    let blobs = root.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    std::fs::write(
        root.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("write");
    let put = |data: &[u8]| {
        let d = Algorithm::Sha256.hash(data);
        std::fs::write(blobs.join(d.encoded()), data).expect("write blob");
        d
    };
    let mut x = 1u64;
    let mut small = || {
        let mut v = Vec::with_capacity(64);
        for _ in 0..8 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            v.extend_from_slice(&x.to_le_bytes());
        }
        v
    };
    let mut one_layer = None;
    let mut entries = Vec::new();
    let mut index_entries = Vec::new();
    for i in 0..manifests {
        let config = put(&small());
        let mut layers = Vec::new();
        for _ in 0..9 {
            let d = put(&small());
            one_layer.get_or_insert_with(|| d.clone());
            layers.push(format!(
                r#"{{"mediaType":"{}","digest":"{d}","size":64}}"#,
                media_types::OCI_LAYER_GZIP
            ));
        }
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config}","size":64}},"layers":[{}]}}"#,
            media_types::OCI_MANIFEST,
            media_types::OCI_CONFIG,
            layers.join(",")
        );
        let md = put(m.as_bytes());
        entries.push(format!(
            r#"{{"mediaType":"{}","digest":"{md}","size":{}}}"#,
            media_types::OCI_MANIFEST,
            m.len()
        ));
        if entries.len() == 100 || i + 1 == manifests {
            let idx = format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
                media_types::OCI_INDEX,
                entries.join(",")
            );
            let id = put(idx.as_bytes());
            let n = index_entries.len();
            let mut desc = Descriptor::new(media_types::OCI_INDEX, id, idx.len() as u64);
            desc = desc.with_annotation(REF_NAME, format!("idx-{n}"));
            index_entries.push(serde_json::to_string(&desc).expect("json"));
            entries.clear();
        }
    }
    std::fs::write(
        root.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
            index_entries.join(",")
        ),
    )
    .expect("write index");
    one_layer.expect("a layer")
}

fn gc(c: &mut Criterion) {
    let dir = bench_dir("gc");
    let root = dir.join("layout");
    let t = Instant::now();
    let layer = big_layout(&root, 10_000);
    eprintln!(
        "wrote 100,000 blobs + 10,000 manifests + 100 indexes in {:.1?}",
        t.elapsed()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let opts = GcOptions::default().with_min_age(Duration::ZERO);
    let mut g = c.benchmark_group("gc_100k");
    g.sample_size(10);
    g.bench_function("cold", |b| {
        b.iter(|| {
            rt.block_on(async {
                let store = LayoutStore::open(&root).await.expect("open");
                let r = store.gc(&opts).await.expect("gc");
                assert_eq!((r.blobs, r.live, r.removed.len()), (110_100, 110_100, 0));
            })
        })
    });
    let store = rt.block_on(LayoutStore::open(&root)).expect("open");
    g.bench_function("warm", |b| {
        b.iter(|| {
            let r = rt.block_on(store.gc(&opts)).expect("gc");
            assert_eq!(r.removed.len(), 0);
        })
    });
    g.finish();

    let t = Instant::now();
    rt.block_on(store.load_graph()).expect("load");
    eprintln!(
        "graph load (110,100 blobs, cold listing): {:.1?}",
        t.elapsed()
    );
    // A listing is trusted once the blob directory's last change is two seconds old.
    std::thread::sleep(Duration::from_millis(2100));
    rt.block_on(store.load_graph()).expect("load");
    let mut g = c.benchmark_group("refcount_100k");
    g.bench_function("refcount", |b| {
        b.iter(|| {
            let n = rt
                .block_on(store.refcount(black_box(&layer)))
                .expect("refcount");
            assert_eq!(n, 1);
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, ingest, gc);
criterion_main!(benches);
