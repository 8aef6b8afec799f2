//! Garbage-collect an OCI image layout: remove what no tag, untagged `index.json` entry, lease
//! or in-flight ingest reaches (safe beside other processes using the same directory).
//!
//! ```text
//! cargo run --example gc -- oci:PATH [--dry-run] [--min-age SECONDS]
//! ```
//!
//! `--dry-run` lists what would be removed and why, removing nothing: it opens the layout
//! read-only, so it works without write access and changes nothing on disk (not even the
//! store's `.oci-rs/` state directory is created). `--min-age` (default 600) keeps unreferenced
//! content younger than that, so a tool writing without leases is not swept under its feet.
//! Names that come from the layout (tags, lease ids, ingest keys, paths) are printed with
//! control characters escaped; a closed output (`gc … | head -1`) is dropped quietly.
//! `RUST_LOG` enables the library's logs on standard error.
//!
//! Exit status: 0 on success, 1 when the collection failed (the error says why), 2 on a bad
//! command line.
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]
use std::process::ExitCode;
use std::time::Duration;

use oci_examples::transport::Endpoint;
use oci_examples::{Escaped, chain, escape, fail, outln};
use oci_store::{GcOptions, LayoutOptions, LayoutStore, ManagedStore};

const PROGRAM: &str = "gc";
const USAGE: &str = "usage: gc oci:PATH [--dry-run] [--min-age SECONDS]
  --dry-run: list what would be removed; opens the layout read-only, changes nothing";

fn main() -> ExitCode {
    oci_examples::init_logging(PROGRAM);
    let mut path = None;
    let mut options = GcOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dry-run" | "-n" => options = options.with_dry_run(true),
            "--min-age" => match args.next().and_then(|s| s.parse::<u64>().ok()) {
                Some(s) => options = options.with_min_age(Duration::from_secs(s)),
                None => return fail(PROGRAM, 2, USAGE),
            },
            "-h" | "--help" => {
                outln!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            p if path.is_none() && !p.starts_with('-') => match Endpoint::layout_dir(p) {
                Ok(dir) => path = Some(dir),
                Err(e) => return fail(PROGRAM, 2, format!("{}\n{USAGE}", escape(&e))),
            },
            _ => return fail(PROGRAM, 2, USAGE),
        }
    }
    let Some(path) = path else {
        return fail(PROGRAM, 2, USAGE);
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(PROGRAM, 1, e),
    };
    rt.block_on(async {
        // A dry run only reads: it must work, and change nothing, where it cannot write.
        let open_options = if options.dry_run {
            LayoutOptions::read_only()
        } else {
            LayoutOptions::default()
        };
        let store = match LayoutStore::open_with(&path, &open_options).await {
            Ok(s) => s,
            Err(e) => return fail(PROGRAM, 1, chain(&e)),
        };
        let report = match store.gc(&options).await {
            Ok(r) => r,
            Err(e) => return fail(PROGRAM, 1, chain(&e)),
        };
        let verb = if report.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for r in &report.removed {
            outln!(
                "{verb} {} ({} bytes): {}",
                r.digest,
                r.size,
                Escaped(&r.reason)
            );
        }
        for d in &report.young {
            outln!("kept {d}: unreferenced but younger than the minimum age");
        }
        for l in &report.expired_leases {
            outln!("{verb} expired lease {}", escape(l));
        }
        for k in &report.stale_ingests {
            outln!("{verb} stale ingest \"{}\"", escape(k));
        }
        for t in &report.temporary_files {
            outln!("{verb} temporary file {}", Escaped(t.display()));
        }
        oci_examples::print_graph_findings(&report.missing, &report.foreign, &report.skipped);
        outln!(
            "{} blobs, {} live, {verb} {} ({} bytes)",
            report.blobs,
            report.live,
            report.removed.len(),
            report.bytes_freed
        );
        ExitCode::SUCCESS
    })
}
