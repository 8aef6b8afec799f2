//! Garbage-collect an OCI image layout: remove what no tag, untagged `index.json` entry, lease
//! or in-flight ingest reaches (safe beside other processes using the same directory).
//!
//! ```text
//! cargo run --example gc -- oci:PATH [--dry-run] [--min-age SECONDS]
//! cargo run --example gc -- s3://BUCKET/PREFIX [--dry-run]   # AWS_* variables: see copy
//! cargo run --example gc -- --help
//! ```
//!
//! A bucket's prefix (`s3://`) is collected online, beside writers on other machines; an
//! archive is refused (it is not a managed store).
//! `--dry-run` lists what would be removed and why, removing nothing: it opens the layout
//! read-only, so it works without write access and changes nothing on disk (not even the
//! store's `.oci-rs/` state directory is created). `--min-age` (default 600) keeps unreferenced
//! content younger than that, so a tool writing without leases is not swept under its feet.
//! Names that come from the layout (tags, lease ids, ingest keys, paths) are printed with
//! control characters escaped; a closed output (`gc … | head -1`) is dropped quietly.
//! `--log-level` (or `RUST_LOG`) enables the library's logs on standard error.
//!
//! Exit status: 0 on success, 1 when the collection failed (the error says why), 2 on a bad
//! command line.
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use oci_examples::cli::{self, LogArgs};
use oci_examples::size::{Count, ExactSize, Size};
use oci_examples::transport::{self, Endpoint};
use oci_examples::{Escaped, chain, escape, fail, outln};
use oci_store::GcOptions;

const PROGRAM: &str = "gc";

/// Garbage-collect an OCI image layout: remove what no tag, untagged index.json entry, lease or
/// in-flight ingest reaches (safe beside other processes using the same directory)
#[derive(Parser)]
#[command(
    name = "gc",
    bin_name = "gc",
    after_help = "Exit status: 0 done, 1 the collection failed (the error says why), 2 bad usage."
)]
struct Cli {
    /// The layout: oci:PATH or s3://BUCKET/PREFIX (a whole layout, no tag or digest; an
    /// archive is not a managed store)
    #[arg(value_name = "LAYOUT", value_parser = cli::whole_store)]
    layout: Endpoint,
    /// List what would be removed and why, removing nothing: opens the layout read-only, so it
    /// works without write access and changes nothing on disk
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Keep unreferenced content younger than this, so that a tool writing without leases is
    /// not swept under its feet
    #[arg(long, value_name = "SECONDS", default_value_t = GcOptions::default().min_age.as_secs())]
    min_age: u64,
    #[command(flatten)]
    log: LogArgs,
}

fn main() -> ExitCode {
    let cli: Cli = cli::parse();
    cli.log.init(PROGRAM);
    let options = GcOptions::default()
        .with_dry_run(cli.dry_run)
        .with_min_age(Duration::from_secs(cli.min_age));
    let location = cli.layout;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(PROGRAM, 1, e),
    };
    rt.block_on(async {
        // A dry run only reads: it must work, and change nothing, where it cannot write.
        let store = match transport::open_managed(&location, options.dry_run).await {
            Ok(s) => s,
            Err(e) => return fail(PROGRAM, 1, format_args!("{location}: {}", chain(&e))),
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
                "{verb} {} ({}): {}",
                r.digest,
                Size(r.size),
                Escaped(&r.reason)
            );
        }
        for d in &report.young {
            outln!(
                "kept {d}: unreferenced but younger than the minimum age ({} s)",
                cli.min_age
            );
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
        for d in &report.piece_maps {
            outln!("{verb} the cached piece map of {d} (its blob goes or is gone)");
        }
        oci_examples::print_graph_findings(&report.missing, &report.foreign, &report.skipped);
        outln!(
            "{}, {} live; {verb} {}: {}",
            Count(report.blobs, "blob"),
            report.live,
            Count(report.removed.len(), "blob"),
            ExactSize(report.bytes_freed)
        );
        ExitCode::SUCCESS
    })
}
