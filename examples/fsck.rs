//! Check an OCI image layout: re-hash every blob, and check that everything a tag, an untagged
//! `index.json` entry or a lease reaches is stored.
//!
//! ```text
//! cargo run --example fsck -- oci:PATH [--repair]
//! ```
//!
//! Reports corrupt blobs (expected and actual digest), missing content (with who refers to it),
//! references declaring a wrong size, and dangling content (unreferenced; not a problem).
//! `--repair` removes corrupt blobs so that the next copy fetches them again.
//!
//! Exit status: 0 when clean, 1 when corrupt, missing or wrongly sized content was found (even
//! if repaired), 2 on a bad command line, 3 when the check could not run.
use std::process::ExitCode;

use oci_examples::fail;
use oci_examples::transport::Endpoint;
use oci_store::{FsckOptions, LayoutOptions, LayoutStore, ManagedStore};

const PROGRAM: &str = "fsck";
const USAGE: &str = "usage: fsck oci:PATH [--repair]";

fn main() -> ExitCode {
    let mut path = None;
    let mut options = FsckOptions::default();
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--repair" => options = FsckOptions::repair(),
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
            Err(e) => {
                let mut msg = e.to_string();
                let mut cur = std::error::Error::source(&e);
                while let Some(c) = cur {
                    msg.push_str(&format!("\n  caused by: {c}"));
                    cur = c.source();
                }
                return fail(PROGRAM, 3, msg);
            }
        };
        for c in &report.corrupt {
            println!(
                "corrupt {} ({} bytes): content hashes to {}",
                c.digest, c.size, c.actual
            );
        }
        for d in &report.removed {
            println!("removed corrupt {d}");
        }
        for (d, p) in &report.missing {
            println!("missing {d}, referred to by {p}");
        }
        for w in &report.wrong_size {
            println!(
                "wrong size {}: {} says {} bytes, {} stored",
                w.digest, w.referred_by, w.expected, w.actual
            );
        }
        for d in &report.dangling {
            println!("dangling {d}");
        }
        println!(
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
