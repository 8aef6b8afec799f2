//! Check an OCI image layout: re-hash every blob, and check that everything a tag, an untagged
//! `index.json` entry or a lease reaches is stored.
//!
//! ```text
//! cargo run --example fsck -- oci:PATH [--repair]
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
//! `RUST_LOG` enables the library's logs on standard error.
//!
//! Exit status: 0 when clean, 1 when corrupt, missing or wrongly sized content or a skipped
//! entry was found (even
//! if repaired), 2 on a bad command line, 3 when the check could not run.
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]
use std::process::ExitCode;

use oci_examples::transport::Endpoint;
use oci_examples::{Escaped, chain, escape, fail, outln};
use oci_store::{FsckOptions, LayoutOptions, LayoutStore, ManagedStore};

const PROGRAM: &str = "fsck";
const USAGE: &str = "usage: fsck oci:PATH [--repair]
  without --repair: opens the layout read-only, changes nothing";

fn main() -> ExitCode {
    oci_examples::init_logging(PROGRAM);
    let mut path = None;
    let mut options = FsckOptions::default();
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--repair" => options = FsckOptions::repair(),
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
        Err(e) => return fail(PROGRAM, 3, e),
    };
    rt.block_on(async {
        // Only a repair changes the layout: a check works on read-only media too.
        let open_options = if options.repair {
            LayoutOptions::default()
        } else {
            LayoutOptions::read_only()
        };
        let report = match LayoutStore::open_with(&path, &open_options).await {
            Ok(store) => store.fsck(&options).await,
            Err(e) => Err(e),
        };
        let report = match report {
            Ok(r) => r,
            Err(e) => return fail(PROGRAM, 3, chain(&e)),
        };
        for c in &report.corrupt {
            outln!(
                "corrupt {} ({} bytes): content hashes to {}",
                c.digest,
                c.size,
                c.actual
            );
        }
        for d in &report.removed {
            outln!("removed corrupt {d}");
        }
        for w in &report.wrong_size {
            outln!(
                "wrong size {}: {} says {} bytes, {} stored",
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
            "{} blobs ({} bytes) checked: {} corrupt, {} missing, {} wrong size, {} dangling",
            report.checked,
            report.bytes,
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
