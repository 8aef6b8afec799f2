//! Criterion benchmarks for the oci-rs crates; see `benches/` and `BENCHMARKS.md`.
