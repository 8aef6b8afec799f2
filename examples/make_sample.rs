//! Regenerates the sample image shipped with the examples (`examples/sample/`), byte for byte.
//!
//! ```text
//! cargo run --example make_sample            # rewrites examples/sample
//! cargo run --example make_sample -- DIR     # writes a fresh layout at DIR instead
//! ```
//!
//! The sample is a 3-platform OCI image layout tagged `sample`; see `oci_examples::sample`.
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use oci_examples::{fail, outln, sample};

fn main() -> ExitCode {
    oci_examples::init_logging("make_sample");
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(sample::committed_path, std::path::PathBuf::from);
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
                format_args!("cannot remove {}: {e}", p.display()),
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
                "wrote {} ({}:{}, {} platforms, index {})",
                dir.display(),
                dir.display(),
                sample::TAG,
                index.manifests().len(),
                index.digest()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(
            "make_sample",
            1,
            format_args!("writing {}: {e}", dir.display()),
        ),
    }
}
