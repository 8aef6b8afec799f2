//! Manifest benchmarks: parse + validate of a typical 3-layer image manifest and a 20-entry
//! index (with attestations), beside plain `oci_spec` deserialisation of the same bytes.
//!
//! `cargo bench -p oci-benches --bench manifest`
//!
//! `oci_manifest` does more than `oci_spec` here: it hashes the bytes (SHA-256, measured alone
//! as `sha256_only`), scans for duplicate keys, and validates media types, shape and
//! descriptors; `oci_spec` only deserialises. The ratio is the price of that strictness.
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oci_manifest::platform::{parse, select};
use oci_manifest::{Algorithm, Manifest, media_types as mt};

const MANIFEST: &[u8] =
    include_bytes!("../../crates/oci-manifest/tests/fixtures/oci-manifest-3-layers.json");
const INDEX: &[u8] = include_bytes!("../../crates/oci-manifest/tests/fixtures/oci-index-20.json");

fn parse_manifest(c: &mut Criterion) {
    let mut g = c.benchmark_group("manifest_3_layers");
    g.throughput(Throughput::Bytes(MANIFEST.len() as u64));
    g.bench_function("oci_manifest_parse_validate", |b| {
        b.iter(|| Manifest::parse(black_box(MANIFEST), Some(mt::OCI_MANIFEST)).unwrap())
    });
    g.bench_function("oci_spec_deserialize", |b| {
        b.iter(|| {
            serde_json::from_slice::<oci_spec::image::ImageManifest>(black_box(MANIFEST)).unwrap()
        })
    });
    // The digest alone: the floor under any parse that names what it parsed.
    g.bench_function("sha256_only", |b| {
        b.iter(|| Algorithm::Sha256.hash(black_box(MANIFEST)))
    });
    g.finish();
}

fn parse_index(c: &mut Criterion) {
    let mut g = c.benchmark_group("index_20_entries");
    g.throughput(Throughput::Bytes(INDEX.len() as u64));
    g.bench_function("oci_manifest_parse_validate", |b| {
        b.iter(|| Manifest::parse(black_box(INDEX), Some(mt::OCI_INDEX)).unwrap())
    });
    g.bench_function("oci_spec_deserialize", |b| {
        b.iter(|| serde_json::from_slice::<oci_spec::image::ImageIndex>(black_box(INDEX)).unwrap())
    });
    g.bench_function("sha256_only", |b| {
        b.iter(|| Algorithm::Sha256.hash(black_box(INDEX)))
    });
    let index = Manifest::parse(INDEX, None).unwrap();
    let wanted = parse("linux/arm64/v8.2").unwrap();
    g.bench_function("select_platform", |b| {
        b.iter(|| select(black_box(&index), black_box(&wanted)).unwrap().size)
    });
    g.finish();
}

criterion_group!(benches, parse_manifest, parse_index);
criterion_main!(benches);
