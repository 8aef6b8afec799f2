//! Print or check the digest of files, like `sha256sum`, streaming in constant memory.
//!
//! ```text
//! cargo run --release --example digest -- [--algorithm sha256|sha512] FILE...
//! cargo run --release --example digest -- --verify DIGEST FILE
//! cargo run --release --example digest -- --help
//! ```
//!
//! Exit status: 0 when every file was hashed (or the file matches DIGEST); 1 on a mismatch,
//! printing the expected and the actual digest; 2 when DIGEST is malformed or its algorithm
//! unsupported (or the command line is wrong), printing which kind of error it is; 3 when a file
//! cannot be read.
//!
//! File names are printed with control characters escaped. When the reader of the output goes
//! away (`digest * | head -1`), the remaining files are not hashed and the exit status is 0.
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use oci_digest::{Algorithm, Digest, Digester, VerifyError, VerifyingReader};
use oci_examples::cli::{self, LogArgs};
use oci_examples::{Escaped, fail, outln};

const PROGRAM: &str = "digest";
/// Read size: large enough that system calls cost nothing next to hashing.
const BUF: usize = 1 << 20;

/// Print the digest of files, like sha256sum, or check one file against a digest; streams in
/// constant memory
#[derive(Parser)]
#[command(
    name = "digest",
    bin_name = "digest",
    after_help = "Exit status: 0 every file hashed (or the file matches DIGEST), 1 mismatch, \
2 bad usage or DIGEST malformed (the message says which kind: invalid format, invalid length, \
unsupported algorithm), 3 a file cannot be read."
)]
struct Cli {
    /// The files to hash; with --verify, the one file to check
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// The hash algorithm
    #[arg(
        short,
        long,
        value_name = "ALGORITHM",
        default_value = "sha256",
        value_parser = PossibleValuesParser::new(Algorithm::ALL.iter().map(|a| a.as_str()))
            .try_map(|s| s.parse::<Algorithm>()),
        conflicts_with = "verify"
    )]
    algorithm: Algorithm,
    /// Check that FILE has this digest (its algorithm is the digest's) instead of printing one
    #[arg(long, value_name = "DIGEST", value_parser = cli::digest)]
    verify: Option<Digest>,
    #[command(flatten)]
    log: LogArgs,
}

fn main() -> ExitCode {
    let cli: Cli = cli::parse();
    cli.log.init(PROGRAM);
    match cli.verify {
        Some(d) => {
            let [file] = cli.files.as_slice() else {
                return cli::usage_error::<Cli>(format_args!(
                    "--verify checks one FILE, {} given",
                    cli.files.len()
                ));
            };
            verify_file(d, file)
        }
        None => {
            for f in &cli.files {
                match hash_file(cli.algorithm, f) {
                    Ok(d) => {
                        if !outln!("{d}  {}", Escaped(f.display())) {
                            // Nobody reads the rest.
                            break;
                        }
                    }
                    Err(e) => {
                        return fail(PROGRAM, 3, format_args!("{}: {e}", Escaped(f.display())));
                    }
                }
            }
            ExitCode::SUCCESS
        }
    }
}

/// Reads `r` to the end through a large buffer, handing each chunk to `sink`.
fn pump(mut r: impl Read, mut sink: impl FnMut(&[u8])) -> io::Result<()> {
    let mut buf = vec![0u8; BUF];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => sink(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn hash_file(algorithm: Algorithm, path: &Path) -> io::Result<Digest> {
    let mut d = Digester::new(algorithm);
    pump(File::open(path)?, |chunk| d.update(chunk))?;
    Ok(d.finalize())
}

fn verify_file(expected: Digest, path: &Path) -> ExitCode {
    let shown = Escaped(path.display());
    let opened = File::open(path).and_then(|f| Ok((f.metadata()?.len(), f)));
    let (size, file) = match opened {
        Ok(x) => x,
        Err(e) => return fail(PROGRAM, 3, format_args!("{shown}: {e}")),
    };
    match pump(VerifyingReader::new(file, expected.clone(), size), |_| {}) {
        Ok(()) => {
            outln!("{shown}: OK {expected}");
            ExitCode::SUCCESS
        }
        Err(e) => match VerifyError::from_io(&e) {
            Some(VerifyError::DigestMismatch {
                expected, actual, ..
            }) => fail(
                PROGRAM,
                1,
                format_args!("{shown}: MISMATCH\n  expected: {expected}\n  actual:   {actual}"),
            ),
            Some(other) => fail(
                PROGRAM,
                1,
                format_args!("{shown}: changed while reading: {other}"),
            ),
            None => fail(PROGRAM, 3, format_args!("{shown}: {e}")),
        },
    }
}
