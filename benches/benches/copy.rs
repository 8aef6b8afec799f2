//! Graph copy benchmarks.
//!
//! `cargo bench -p oci-benches --bench copy`
//!
//! - `copy_256MiB/memory_to_memory`: a 3-platform image (a 64 MiB layer shared by all, a 64 MiB
//!   layer each) copied between two `MemoryStore`s: the copy engine's own cost (two hashes per
//!   byte: the verifying read and the verifying write).
//! - `copy_256MiB/memory_to_layout` and `layout_to_layout`: the same into a fresh OCI layout on
//!   disk (ingest, fsync, rename), under a lease (`copy_leased`).
//! - `plan_skip/200_platforms`: a 200-platform index whose content the destination already has:
//!   the cost of planning (manifest fetch and parse) and of skipping (stat) per piece of content.
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oci_manifest::build::{ImageManifestBuilder, IndexBuilder};
use oci_manifest::{Descriptor, Platform, media_types};
use oci_store::{
    CopyOptions, LayoutOptions, LayoutStore, MemoryStore, TagStore, WriteStore, copy, copy_leased,
};

const MIB: usize = 1 << 20;

fn bench_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oci-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn noise(seed: u64, n: usize) -> Bytes {
    let mut v = Vec::with_capacity(n + 8);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    Bytes::from(v)
}

async fn put<S: WriteStore>(s: &S, media_type: &str, data: Bytes) -> Descriptor {
    let d = Descriptor::of(media_type, &data);
    s.push_bytes(&d, data).await.expect("push");
    d
}

/// An index of `platforms` images, each with the shared layer and one of its own, tagged `v1`.
/// Returns the total bytes of the graph.
async fn image<S: WriteStore + TagStore>(
    s: &S,
    platforms: usize,
    shared: usize,
    own: usize,
) -> u64 {
    let shared = put(s, media_types::OCI_LAYER_GZIP, noise(1, shared)).await;
    let mut total = shared.size;
    let mut entries = Vec::new();
    for i in 0..platforms {
        let layer = put(s, media_types::OCI_LAYER_GZIP, noise(2 + i as u64, own)).await;
        let cfg = put(
            s,
            media_types::OCI_CONFIG,
            Bytes::from(format!(r#"{{"architecture":"arch{i}","os":"linux"}}"#)),
        )
        .await;
        total += layer.size + cfg.size;
        let m = ImageManifestBuilder::oci(cfg)
            .layer(shared.clone())
            .layer(layer)
            .build()
            .expect("manifest");
        s.push_bytes(&m.descriptor(), m.raw().clone())
            .await
            .expect("push");
        total += m.size();
        entries.push(
            m.descriptor()
                .with_platform(Platform::new("linux", format!("arch{i}"))),
        );
    }
    let index = IndexBuilder::oci()
        .manifests(entries)
        .build()
        .expect("index");
    s.push_bytes(&index.descriptor(), index.raw().clone())
        .await
        .expect("push");
    s.tag(&index.descriptor(), "v1").await.expect("tag");
    total + index.size()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn copy_256(c: &mut Criterion) {
    let rt = rt();
    let src = MemoryStore::new();
    let total = rt.block_on(image(&src, 3, 64 * MIB, 64 * MIB));
    let dir = bench_dir("copy-src");
    let src_layout = rt.block_on(async {
        let l = LayoutStore::open_with(&dir, &LayoutOptions::create())
            .await
            .expect("layout");
        copy_leased(&src, "v1", &l, None, &CopyOptions::default())
            .await
            .expect("copy");
        l
    });
    let mut g = c.benchmark_group("copy_256MiB");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Bytes(total));
    g.bench_function("memory_to_memory", |b| {
        b.iter(|| {
            rt.block_on(async {
                let dst = MemoryStore::new();
                let r = copy(&src, "v1", &dst, None, &CopyOptions::default())
                    .await
                    .expect("copy");
                black_box(r.bytes_copied)
            })
        });
    });
    let dst_dir = bench_dir("copy-dst");
    g.bench_function("memory_to_layout", |b| {
        b.iter(|| {
            let _ = std::fs::remove_dir_all(&dst_dir);
            rt.block_on(async {
                let dst = LayoutStore::open_with(&dst_dir, &LayoutOptions::create())
                    .await
                    .expect("layout");
                let r = copy_leased(&src, "v1", &dst, None, &CopyOptions::default())
                    .await
                    .expect("copy");
                black_box(r.bytes_copied)
            })
        });
    });
    g.bench_function("layout_to_layout", |b| {
        b.iter(|| {
            let _ = std::fs::remove_dir_all(&dst_dir);
            rt.block_on(async {
                let dst = LayoutStore::open_with(&dst_dir, &LayoutOptions::create())
                    .await
                    .expect("layout");
                let r = copy_leased(&src_layout, "v1", &dst, None, &CopyOptions::default())
                    .await
                    .expect("copy");
                black_box(r.bytes_copied)
            })
        });
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dst_dir);
    let _ = std::fs::remove_dir_all(&dir);
}

fn plan_skip(c: &mut Criterion) {
    let rt = rt();
    let src = MemoryStore::new();
    let dst = MemoryStore::new();
    rt.block_on(async {
        image(&src, 200, 1024, 1024).await;
        copy(&src, "v1", &dst, None, &CopyOptions::default())
            .await
            .expect("copy");
    });
    let mut g = c.benchmark_group("plan_skip");
    // 1 index + 200 x (manifest, config, layer) + the shared layer.
    g.throughput(Throughput::Elements(602));
    g.bench_function("200_platforms", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = copy(&src, "v1", &dst, None, &CopyOptions::default())
                    .await
                    .expect("copy");
                assert_eq!(r.skipped, 602);
                black_box(r.skipped)
            })
        });
    });
    g.finish();
}

criterion_group!(benches, copy_256, plan_skip);
criterion_main!(benches);
