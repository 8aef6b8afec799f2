//! Digest benchmarks: SHA-256/SHA-512 throughput and digest parse+display beside oci-spec.
//!
//! `cargo bench -p oci-benches --bench digest`
use std::hint::black_box;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use oci_digest::{Algorithm, Digest, Digester};

const TOTAL: usize = 1 << 30;

fn hashing(c: &mut Criterion) {
    let mut g = c.benchmark_group("hash_1GiB");
    // One iteration hashes 1 GiB: ten flat samples are plenty.
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Bytes(TOTAL as u64));
    for alg in [Algorithm::Sha256, Algorithm::Sha512] {
        for chunk in [64 << 10, 1 << 20] {
            let buf = vec![0x5au8; chunk];
            g.bench_with_input(
                BenchmarkId::new(alg.as_str(), format!("{}KiB", chunk >> 10)),
                &buf,
                |b, buf| {
                    b.iter(|| {
                        let mut d = Digester::new(alg);
                        for _ in 0..TOTAL / buf.len() {
                            d.update(black_box(buf));
                        }
                        d.finalize()
                    })
                },
            );
        }
    }
    g.finish();
}

fn inputs() -> Vec<String> {
    (0..1000u32)
        .map(|i| Algorithm::Sha256.hash(&i.to_le_bytes()).to_string())
        .collect()
}

fn parse_display(c: &mut Criterion) {
    let inputs = inputs();
    let mut g = c.benchmark_group("digest_parse_display");
    g.throughput(Throughput::Elements(inputs.len() as u64));
    g.bench_function("oci_digest", |b| {
        b.iter(|| {
            let mut n = 0;
            for s in &inputs {
                let d: Digest = black_box(s.as_str()).parse().expect("valid");
                n += d.to_string().len();
            }
            n
        })
    });
    g.bench_function("oci_spec", |b| {
        b.iter(|| {
            let mut n = 0;
            for s in &inputs {
                let d: oci_spec::image::Digest = black_box(s.as_str()).parse().expect("valid");
                n += d.to_string().len();
            }
            n
        })
    });
    g.finish();

    let mut g = c.benchmark_group("digest_parse");
    g.throughput(Throughput::Elements(inputs.len() as u64));
    g.bench_function("oci_digest", |b| {
        b.iter(|| {
            inputs
                .iter()
                .map(|s| black_box(s.as_str()).parse::<Digest>().is_ok() as usize)
                .sum::<usize>()
        })
    });
    g.bench_function("oci_spec", |b| {
        b.iter(|| {
            inputs
                .iter()
                .map(|s| {
                    black_box(s.as_str())
                        .parse::<oci_spec::image::Digest>()
                        .is_ok() as usize
                })
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, hashing, parse_display);
criterion_main!(benches);
