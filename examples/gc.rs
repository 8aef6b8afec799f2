//! Garbage-collect an OCI image layout: remove what no tag, untagged `index.json` entry, lease
//! or in-flight ingest reaches (safe beside other processes using the same directory).
//!
//! ```text
//! cargo run --example gc -- oci:PATH [--dry-run] [--min-age SECONDS]
//! ```
//!
//! `--dry-run` lists what would be removed and why, removing nothing. `--min-age` (default 600)
//! keeps unreferenced content younger than that, so a tool writing without leases is not swept
//! under its feet. Exit status: 0 on success, 1 when the collection failed (the error says why),
//! 2 on a bad command line.
use std::process::ExitCode;
use std::time::Duration;

use oci_examples::fail;
use oci_examples::transport::Endpoint;
use oci_store::{GcOptions, LayoutStore, ManagedStore};

const PROGRAM: &str = "gc";
const USAGE: &str = "usage: gc oci:PATH [--dry-run] [--min-age SECONDS]";

fn main() -> ExitCode {
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
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            p if path.is_none() && !p.starts_with('-') => match Endpoint::layout_dir(p) {
                Ok(dir) => path = Some(dir),
                Err(e) => return fail(PROGRAM, 2, format!("{e}\n{USAGE}")),
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
        let store = match LayoutStore::open(&path).await {
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
            println!("{verb} {} ({} bytes): {}", r.digest, r.size, r.reason);
        }
        for d in &report.young {
            println!("kept {d}: unreferenced but younger than the minimum age");
        }
        for (d, p) in &report.missing {
            println!("missing {d}, referred to by {p}");
        }
        for l in &report.expired_leases {
            println!("{verb} expired lease {l}");
        }
        for k in &report.stale_ingests {
            println!("{verb} stale ingest {k:?}");
        }
        println!(
            "{} blobs, {} live, {verb} {} ({} bytes)",
            report.blobs,
            report.live,
            report.removed.len(),
            report.bytes_freed
        );
        ExitCode::SUCCESS
    })
}

/// The error and its sources, one per line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!("\n  caused by: {c}"));
        cur = c.source();
    }
    s
}
