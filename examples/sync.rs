//! Copies many images listed in a file, under one global limit on transfers, with a retry
//! budget, a summary table and an exit status that says whether all succeeded. Re-running it
//! after a failure finishes only what is missing (content already copied is skipped).
//!
//! ```text
//! cargo run --release --example sync -- [OPTIONS] FILE
//!
//! FILE      one copy a line: `SRC DST` (as for the copy example: oci:PATH[:TAG|@DIGEST] or
//!           docker://REGISTRY/REPO[:TAG|@DIGEST]); blank lines and lines starting with # are
//!           ignored. Two lines that would write the same destination tag are refused (exit 2,
//!           naming both lines): which one wins would depend on which finishes last.
//! --jobs N          transfers at once over all images (default 8, at least 1)
//! --images N        images copied at once (default 4, at least 1)
//! --retries N       each line's retry budget: retries in all after transient failures,
//!                   shared by every blob, manifest and tag of the line and by its re-runs
//!                   (default 3)
//! --retry-budget N  re-runs of a whole image after a transient failure, over the file
//!                   (default 3); a re-run continues with what its line has left of
//!                   --retries, so a request that keeps failing is sent at most
//!                   1 + (--retries) + (re-runs of its line) times
//! --state-dir DIR   where pushes record upload sessions, resumed by the next run (default
//!                   $XDG_STATE_HOME/oci-rs/uploads, else ~/.local/state/oci-rs/uploads)
//! --platform, --plain-http, --creds, --verify-existing, --referrers, --format: as for copy
//! ```
//!
//! Every line of the file has a row in the table and counts in the summary: a copy that fails,
//! and one whose task ends abnormally (a panic), count as failed and make the exit status 1.
//! Text from the file, layouts and registries is printed with control characters escaped; a
//! closed output (`sync … | head -1`) is dropped quietly. `RUST_LOG` enables the library's logs.
//!
//! Exit status: 0 every image copied; 1 some failed (the table and the messages name them and
//! their digests); 2 bad usage or an unreadable file.
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use oci_distribution_client::Reference;
use oci_examples::transport::{self, CopyError, Endpoint, RegistrySettings};
use oci_examples::{errln, escape, outln};
use oci_store::{CopyOptions, CopyReport, Digest, RetryBudget};
use tokio::sync::Semaphore;

const USAGE: &str = "usage: sync [--jobs N] [--images N] [--retry-budget N] [--retries N] \
[--platform OS/ARCH[/VARIANT]]... [--plain-http] [--creds USER:PASS] [--verify-existing] \
[--referrers] [--format oci|docker] [--state-dir DIR] FILE
  FILE: one `SRC DST` a line (SRC, DST as for copy); two lines writing the same destination
    tag are refused
  --jobs N, --images N: at least 1
  --retries N: each line's retry budget, retries in all, shared by its blobs, manifests,
    tag and re-runs (default 3)
  --retry-budget N: re-runs of whole images over the file (default 3); a request that
    keeps failing is sent at most 1 + (--retries) + (its line's re-runs) times";

struct Job {
    line: usize,
    src: Endpoint,
    dst: Endpoint,
}

struct Args {
    file: String,
    jobs: usize,
    images: usize,
    budget: u32,
    options: CopyOptions,
    settings: RegistrySettings,
}

fn parse_args(args: Vec<String>) -> Result<Args, String> {
    let mut a = Args {
        file: String::new(),
        jobs: 8,
        images: 4,
        budget: 3,
        options: CopyOptions::default(),
        settings: RegistrySettings::default(),
    };
    let mut files = Vec::new();
    let mut it = args.into_iter();
    let num = |v: Option<String>, flag: &str| -> Result<u64, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse().map_err(|_| format!("{flag} {v:?}: not a number"))
    };
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        if transport::shared_option(&arg, &mut value, &mut a.options, &mut a.settings)? {
            continue;
        }
        match arg.as_str() {
            "--jobs" | "--images" => {
                let v = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
                let n = transport::positive(&arg, &v)?;
                if arg == "--jobs" {
                    a.jobs = n;
                } else {
                    a.images = n;
                }
            }
            "--retry-budget" => {
                a.budget = u32::try_from(num(it.next(), "--retry-budget")?)
                    .map_err(|_| "--retry-budget: too large".to_owned())?;
            }
            "--help" | "-h" => return Err(String::new()),
            f if f.starts_with("--") => return Err(format!("unknown option {f}")),
            _ => files.push(arg),
        }
    }
    match files.as_slice() {
        [f] => a.file = f.clone(),
        _ => return Err("expected one FILE".to_owned()),
    }
    Ok(a)
}

fn parse_file(text: &str, file: &str) -> Result<Vec<Job>, String> {
    let mut jobs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [s, d] = parts.as_slice() else {
            return Err(format!(
                "{file}:{line_no}: expected `SRC DST`, found {line:?}"
            ));
        };
        let src = Endpoint::parse(s).map_err(|e| format!("{file}:{line_no}: {e}"))?;
        let dst = Endpoint::parse(d).map_err(|e| format!("{file}:{line_no}: {e}"))?;
        jobs.push(Job {
            line: line_no,
            src,
            dst,
        });
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for job in &jobs {
        if let Some(target) = destination(job)
            && let Some(first) = seen.insert(target.clone(), job.line)
        {
            return Err(format!(
                "{file}:{}: writes the same destination as line {first} ({}): which copy wins \
would depend on which finishes last; give each line its own destination tag",
                job.line,
                escape(&target)
            ));
        }
    }
    Ok(jobs)
}

/// The destination tag a line writes, as `LOCATION:TAG` with the location normalised (an
/// absolute layout path, `registry/repository`); `None` when the tag is only known once the
/// source is read (a source layout without a tag, see [`transport::default_tag`]).
fn destination(job: &Job) -> Option<String> {
    let tag = match (job.dst.reference(), job.src.reference(), &job.src) {
        (Some(t), _, _) => t,
        (None, Some(r), _) if Digest::parse(&r).is_ok() => "latest".to_owned(),
        (None, Some(r), _) => r,
        (None, None, Endpoint::Registry { .. }) => "latest".to_owned(),
        (None, None, Endpoint::Layout { .. }) => return None,
    };
    let place = match &job.dst {
        Endpoint::Layout { path, .. } => normalised(path).display().to_string(),
        Endpoint::Registry { reference } => match Reference::parse(reference) {
            Ok(r) => format!("{}/{}", r.registry(), r.repository()),
            Err(_) => reference.clone(),
        },
    };
    Some(format!("{place}:{tag}"))
}

/// `path` made absolute, without `.` components, through links where it exists.
fn normalised(path: &Path) -> PathBuf {
    let absolute = std::env::current_dir().unwrap_or_default().join(path);
    std::fs::canonicalize(&absolute).unwrap_or_else(|_| {
        absolute
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect()
    })
}

/// Why a line did not copy.
enum Failure {
    /// The copy failed.
    Copy(CopyError),
    /// The copy's task ended abnormally (a panic): nothing is known of what it did.
    Aborted(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Copy(e) => e.fmt(f),
            Failure::Aborted(m) => write!(f, "the copy ended abnormally: {}", escape(m)),
        }
    }
}

struct Outcome {
    line: usize,
    src: String,
    dst: String,
    attempts: u32,
    result: Result<CopyReport, Failure>,
    elapsed: Duration,
}

fn main() -> ExitCode {
    oci_examples::init_logging("sync");
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            outln!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => return oci_examples::fail("sync", 2, format_args!("{e}\n{USAGE}")),
    };
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => {
            return oci_examples::fail(
                "sync",
                2,
                format_args!("cannot read {}: {e}", escape(&args.file)),
            );
        }
    };
    let jobs = match parse_file(&text, &args.file) {
        Ok(j) if j.is_empty() => {
            return oci_examples::fail(
                "sync",
                2,
                format_args!("{}: no `SRC DST` lines", escape(&args.file)),
            );
        }
        Ok(j) => j,
        Err(e) => return oci_examples::fail("sync", 2, e),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return oci_examples::fail("sync", 1, format_args!("cannot start a runtime: {e}"));
        }
    };
    let started = Instant::now();
    let outcomes = match rt.block_on(run(jobs, &args)) {
        Ok(o) => o,
        Err(e) => return oci_examples::fail("sync", 2, e),
    };
    let total = started.elapsed();

    outln!(
        "{:<4} {:<8} {:>3} {:>6} {:>6} {:>12} {:>8}  SRC -> DST",
        "line",
        "status",
        "try",
        "copied",
        "skip",
        "bytes",
        "seconds"
    );
    let mut failed = 0;
    for o in &outcomes {
        let (status, copied, skipped, bytes) = match &o.result {
            Ok(r) => (
                "ok",
                r.copied + r.repaired,
                r.skipped + r.mounted,
                r.bytes_copied,
            ),
            Err(e) => {
                failed += 1;
                let r = match e {
                    Failure::Copy(e) => e.report(),
                    Failure::Aborted(_) => None,
                };
                (
                    "FAILED",
                    r.map_or(0, |r| r.copied + r.repaired),
                    r.map_or(0, |r| r.skipped + r.mounted),
                    r.map_or(0, |r| r.bytes_copied),
                )
            }
        };
        outln!(
            "{:<4} {:<8} {:>3} {:>6} {:>6} {:>12} {:>8.2}  {} -> {}",
            o.line,
            status,
            o.attempts,
            copied,
            skipped,
            bytes,
            o.elapsed.as_secs_f64(),
            o.src,
            o.dst
        );
    }
    for o in &outcomes {
        if let Err(e) = &o.result {
            errln!("sync: line {}: {} -> {}: {e}", o.line, o.src, o.dst);
        }
    }
    let bytes: u64 = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok())
        .map(|r| r.bytes_copied)
        .sum();
    outln!(
        "{} of {} images copied, {} failed; {bytes} bytes sent in {:.2} s",
        outcomes.len() - failed,
        outcomes.len(),
        failed,
        total.as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn run(jobs: Vec<Job>, args: &Args) -> Result<Vec<Outcome>, CopyError> {
    let ctx = transport::Context::new(&args.settings, jobs.iter().flat_map(|j| [&j.src, &j.dst]))?;
    let transfers = Arc::new(Semaphore::new(args.jobs));
    let images = Arc::new(Semaphore::new(args.images));
    let budget = Arc::new(AtomicU32::new(args.budget));
    let options = args.options.clone().with_shared_limit(transfers);
    let run_started = Instant::now();
    let mut tasks = Vec::new();
    for job in jobs {
        let (line, src, dst) = (job.line, job.src.to_string(), job.dst.to_string());
        let (images, budget, options, ctx) = (
            Arc::clone(&images),
            Arc::clone(&budget),
            options.clone(),
            ctx.clone(),
        );
        // One retry budget for the line, shared by its re-runs: retries add up, they do not
        // multiply.
        let options = options.with_retry_budget(RetryBudget::new(args.options.retries));
        let task = tokio::spawn(async move {
            let _slot = images.acquire_owned().await;
            let started = Instant::now();
            let mut attempts = 0;
            let result = loop {
                attempts += 1;
                let r = transport::copy(&job.src, &job.dst, &options, &ctx).await;
                match r {
                    Err(e)
                        if e.is_transient()
                            && budget
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                                    b.checked_sub(1)
                                })
                                .is_ok() =>
                    {
                        errln!(
                            "sync: line {}: attempt {attempts} failed, retrying from what is there: {e}",
                            job.line
                        );
                    }
                    other => break other,
                }
            };
            Outcome {
                line: job.line,
                src: job.src.to_string(),
                dst: job.dst.to_string(),
                attempts,
                result: result.map_err(Failure::Copy),
                elapsed: started.elapsed(),
            }
        });
        tasks.push((line, src, dst, task));
    }
    // Every line gets an outcome: a task that ended abnormally is a failed line.
    let (lines, handles): (Vec<_>, Vec<_>) = tasks
        .into_iter()
        .map(|(line, src, dst, task)| ((line, src, dst), task))
        .unzip();
    let mut out: Vec<Outcome> = lines
        .into_iter()
        .zip(oci_examples::join_each(handles).await)
        .map(|((line, src, dst), result)| {
            result.unwrap_or_else(|message| Outcome {
                line,
                src,
                dst,
                attempts: 1,
                result: Err(Failure::Aborted(message)),
                elapsed: run_started.elapsed(),
            })
        })
        .collect();
    out.sort_by_key(|o| o.line);
    Ok(out)
}
