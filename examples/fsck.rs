//! Check an OCI image layout: re-hash every blob, and check that everything a tag, an untagged
//! `index.json` entry or a lease reaches is stored.
//!
//! ```text
//! cargo run --example fsck -- oci:PATH [--repair]
//! cargo run --example fsck -- s3://BUCKET/PREFIX [--repair]   # AWS_* variables: see copy
//! cargo run --example fsck -- --help
//! ```
//!
//! Reports corrupt blobs (expected and actual digest), missing content (with who refers to it),
//! references declaring a wrong size, entries that are not regular files (links, FIFOs: never
//! followed), and, not problems, dangling content (unreferenced) and foreign layers a copy left
//! out (non-distributable layers, which live at their URLs).
//! `--repair` removes corrupt blobs so that the next copy fetches them again.
//!
//! Without `--repair` the layout is opened read-only: the check works without write access and
//! changes nothing on disk. Names that come from the layout (tags, paths) are printed with
//! control characters escaped; a closed output (`fsck … | head -1`) is dropped quietly.
//! `--log-level` (or `RUST_LOG`) enables the library's logs on standard error.
//!
//! Exit status: 0 when clean, 1 when corrupt, missing or wrongly sized content or a skipped
//! entry was found (even
//! if repaired), 2 on a bad command line, 3 when the check could not run.
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]
use std::process::ExitCode;

use clap::Parser;
use oci_examples::cli::{self, LogArgs};
use oci_examples::size::{Count, ExactSize, Size};
use oci_examples::transport::{self, Endpoint};
use oci_examples::{Escaped, chain, fail, outln};
use oci_store::FsckOptions;

const PROGRAM: &str = "fsck";

/// Check an OCI image layout: re-hash every blob, and check that everything a tag, an untagged
/// index.json entry or a lease reaches is stored
#[derive(Parser)]
#[command(
    name = "fsck",
    bin_name = "fsck",
    after_help = "Exit status: 0 clean; 1 corrupt, missing or wrongly sized content or a skipped \
entry found (even if repaired); 2 bad usage; 3 the check could not run."
)]
struct Cli {
    /// The layout: oci:PATH or s3://BUCKET/PREFIX (a whole layout, no tag or digest; an
    /// archive is not a managed store)
    #[arg(value_name = "LAYOUT", value_parser = cli::whole_store)]
    layout: Endpoint,
    /// Remove corrupt blobs, so that the next copy fetches them again; without it the layout is
    /// opened read-only and nothing on disk changes
    #[arg(long)]
    repair: bool,
    #[command(flatten)]
    log: LogArgs,
}

fn main() -> ExitCode {
    let cli: Cli = cli::parse();
    cli.log.init(PROGRAM);
    let options = if cli.repair {
        FsckOptions::repair()
    } else {
        FsckOptions::default()
    };
    let location = cli.layout;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(PROGRAM, 3, e),
    };
    rt.block_on(async {
        // Only a repair changes the layout: a check works on read-only media too.
        let report = match transport::open_managed(&location, !options.repair).await {
            Ok(store) => store.fsck(&options).await,
            Err(e) => Err(e),
        };
        let report = match report {
            Ok(r) => r,
            Err(e) => return fail(PROGRAM, 3, format_args!("{location}: {}", chain(&e))),
        };
        for c in &report.corrupt {
            outln!(
                "corrupt {} ({}): content hashes to {}",
                c.digest,
                Size(c.size),
                c.actual
            );
        }
        for d in &report.removed {
            outln!("removed corrupt {d}");
        }
        for w in &report.wrong_size {
            outln!(
                "wrong size {}: {} says {} bytes, {} bytes stored",
                w.digest,
                Escaped(&w.referred_by),
                w.expected,
                w.actual
            );
        }
        for d in &report.dangling {
            outln!("dangling {d}");
        }
        oci_examples::print_graph_findings(&report.missing, &report.foreign, &report.skipped);
        outln!(
            "checked {}, {}: {} corrupt, {} missing, {} wrong size, {} dangling",
            Count(report.checked, "blob"),
            ExactSize(report.bytes),
            report.corrupt.len(),
            report.missing.len(),
            report.wrong_size.len(),
            report.dangling.len()
        );
        if report.is_clean() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    })
}
