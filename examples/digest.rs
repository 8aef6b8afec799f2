//! Print or check the digest of files, like `sha256sum`, streaming in constant memory.
//!
//! ```text
//! cargo run --release --example digest -- FILE... [--algorithm sha256|sha512]
//! cargo run --release --example digest -- --verify DIGEST FILE
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
use std::process::ExitCode;

use oci_digest::{Algorithm, Digest, Digester, ParseDigestError, VerifyError, VerifyingReader};
use oci_examples::{escape, fail, outln};

const PROGRAM: &str = "digest";
/// Read size: large enough that system calls cost nothing next to hashing.
const BUF: usize = 1 << 20;

const USAGE: &str =
    "usage: digest FILE... [--algorithm sha256|sha512]\n       digest --verify DIGEST FILE";

fn main() -> ExitCode {
    oci_examples::init_logging(PROGRAM);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut algorithm = Algorithm::Sha256;
    let mut verify: Option<String> = None;
    let mut files = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--algorithm" | "-a" => match it.next().as_deref().map(str::parse::<Algorithm>) {
                Some(Ok(alg)) => algorithm = alg,
                Some(Err(e)) => return fail(PROGRAM, 2, e),
                None => return fail(PROGRAM, 2, USAGE),
            },
            "--verify" => match it.next() {
                Some(d) => verify = Some(d),
                None => return fail(PROGRAM, 2, USAGE),
            },
            "-h" | "--help" => {
                outln!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => files.push(a),
        }
    }
    match verify {
        Some(d) => {
            let [file] = files.as_slice() else {
                return fail(PROGRAM, 2, USAGE);
            };
            verify_file(&d, file)
        }
        None if files.is_empty() => fail(PROGRAM, 2, USAGE),
        None => {
            for f in &files {
                match hash_file(algorithm, f) {
                    Ok(d) => {
                        if !outln!("{d}  {}", escape(f)) {
                            // Nobody reads the rest.
                            break;
                        }
                    }
                    Err(e) => return fail(PROGRAM, 3, format_args!("{}: {e}", escape(f))),
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

fn hash_file(algorithm: Algorithm, path: &str) -> io::Result<Digest> {
    let mut d = Digester::new(algorithm);
    pump(File::open(path)?, |chunk| d.update(chunk))?;
    Ok(d.finalize())
}

fn verify_file(digest: &str, path: &str) -> ExitCode {
    let expected = match digest.parse::<Digest>() {
        Ok(d) => d,
        Err(e) => {
            let kind = match e {
                ParseDigestError::InvalidFormat { .. } => "invalid format",
                ParseDigestError::InvalidLength { .. } => "invalid length",
                ParseDigestError::UnsupportedAlgorithm { .. } => "unsupported algorithm",
                _ => "invalid digest",
            };
            return fail(PROGRAM, 2, format_args!("{kind}: {e}"));
        }
    };
    let opened = File::open(path).and_then(|f| Ok((f.metadata()?.len(), f)));
    let (size, file) = match opened {
        Ok(x) => x,
        Err(e) => return fail(PROGRAM, 3, format_args!("{}: {e}", escape(path))),
    };
    match pump(VerifyingReader::new(file, expected.clone(), size), |_| {}) {
        Ok(()) => {
            outln!("{}: OK {expected}", escape(path));
            ExitCode::SUCCESS
        }
        Err(e) => match VerifyError::from_io(&e) {
            Some(VerifyError::DigestMismatch {
                expected, actual, ..
            }) => fail(
                PROGRAM,
                1,
                format_args!(
                    "{}: MISMATCH\n  expected: {expected}\n  actual:   {actual}",
                    escape(path)
                ),
            ),
            Some(other) => fail(
                PROGRAM,
                1,
                format_args!("{}: changed while reading: {other}", escape(path)),
            ),
            None => fail(PROGRAM, 3, format_args!("{}: {e}", escape(path))),
        },
    }
}
