//! Regenerates the sample image shipped with the examples (`examples/sample/`), byte for byte.
//!
//! ```text
//! cargo run --example make_sample            # rewrites examples/sample
//! cargo run --example make_sample -- DIR     # writes a fresh layout at DIR instead
//! cargo run --example make_sample -- --help
//! ```
//!
//! The sample is a 3-platform OCI image layout tagged `sample`; see `oci_examples::sample`.
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use oci_examples::cli::{self, LogArgs};
use oci_examples::{Escaped, fail, outln, sample};

/// Regenerate the sample image shipped with the examples (examples/sample/), byte for byte: a
/// 3-platform OCI image layout tagged "sample"
#[derive(Parser)]
#[command(
    name = "make_sample",
    bin_name = "make_sample",
    after_help = "Exit status: 0 written, 1 the layout could not be written, 2 bad usage."
)]
struct Cli {
    /// Write a fresh layout here instead of rewriting examples/sample (what is in DIR's blobs/,
    /// index.json, oci-layout and .oci-rs/ is removed first)
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    log: LogArgs,
}

fn main() -> ExitCode {
    let cli: Cli = cli::parse();
    cli.log.init("make_sample");
    let dir = cli.dir.unwrap_or_else(sample::committed_path);
    // A fresh layout: the old blobs and index go, so nothing stale stays.
    for part in ["blobs", "index.json", "oci-layout", ".oci-rs"] {
        let p = dir.join(part);
        let r = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else if p.exists() {
            std::fs::remove_file(&p)
        } else {
            Ok(())
        };
        if let Err(e) = r {
            return fail(
                "make_sample",
                1,
                format_args!("cannot remove {}: {e}", Escaped(p.display())),
            );
        }
    }
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            return fail(
                "make_sample",
                1,
                format_args!("cannot start a runtime: {e}"),
            );
        }
    };
    match rt.block_on(sample::write(&dir)) {
        Ok(index) => {
            // Our own state directory is not part of the sample.
            let _ = std::fs::remove_dir_all(dir.join(oci_store::STATE_DIR));
            outln!(
                "wrote {} (oci:{}:{}, {} platforms, index {})",
                Escaped(dir.display()),
                Escaped(dir.display()),
                sample::TAG,
                index.manifests().len(),
                index.digest()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(
            "make_sample",
            1,
            format_args!("writing {}: {}", Escaped(dir.display()), Escaped(&e)),
        ),
    }
}
