//! Copies many images listed in a file, under one global limit on transfers, with a retry
//! budget, a summary table and an exit status that says whether all succeeded. Re-running it
//! after a failure finishes only what is missing (content already copied is skipped).
//!
//! ```text
//! cargo run --release --example sync -- [OPTIONS] FILE
//! cargo run --release --example sync -- --help       # every option
//! ```
//!
//! FILE has one copy a line: `SRC DST` (as for the copy example: `oci:PATH[:TAG|@DIGEST]` or
//! `docker://REGISTRY/REPO[:TAG|@DIGEST]`); blank lines and lines starting with # are ignored.
//! Two lines that would write the same destination tag are refused (exit 2, naming both
//! lines): which one wins would depend on which finishes last. `--jobs` limits the transfers
//! over all images (default 8), `--images` the images copied at once (default 4); `--retries`
//! is each line's retry budget, shared by its blobs, manifests, tag and re-runs, and
//! `--retry-budget` the re-runs of whole images over the file, so a request that keeps failing
//! is sent at most 1 + (--retries) + (re-runs of its line) times. The other options
//! (`--platform`, `--creds` or `OCI_RS_CREDS`, `--state-dir`, ...) are copy's, spelled and
//! checked the same way ([`oci_examples::cli`]).
//!
//! Every line of the file has a row in the table and counts in the summary: a copy that fails,
//! and one whose task ends abnormally (a panic), count as failed and make the exit status 1.
//! Text from the file, layouts and registries is printed with control characters escaped; a
//! closed output (`sync … | head -1`) is dropped quietly. `--log-level` (or `RUST_LOG`) enables
//! the library's logs.
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

use clap::Parser;
use oci_distribution_client::Reference;
use oci_examples::cli::{self, CopyArgs, LogArgs, RegistryArgs};
use oci_examples::size::{ExactSize, Size};
use oci_examples::transport::{self, CopyError, Endpoint};
use oci_examples::{Escaped, errln, escape, outln};
use oci_store::{CopyReport, Digest, RetryBudget};
use tokio::sync::Semaphore;

/// Copy many images listed in a file, under one global limit on transfers, with a retry budget,
/// a summary table and an exit status that says whether all succeeded; a re-run after a
/// failure finishes only what is missing
#[derive(Parser)]
#[command(
    name = "sync",
    bin_name = "sync",
    after_help = "The table has a row per line of FILE: its status, tries (runs of the line), \
blobs copied and skipped, bytes sent, seconds.\n\
Exit status: 0 every image copied, 1 some failed (the table and the messages name them), \
2 bad usage or an unreadable FILE."
)]
struct Cli {
    /// The list: one copy a line, `SRC DST`, as for copy (oci:PATH[:TAG|@DIGEST] or
    /// docker://REGISTRY/REPO[:TAG|@DIGEST])
    ///
    /// Blank lines and lines starting with # are ignored. Two lines that would write the same
    /// destination tag are refused (exit 2, naming both lines): which one wins would depend on
    /// which finishes last.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Transfers at once over all images
    #[arg(short, long, value_name = "N", default_value_t = 8, value_parser = cli::count())]
    jobs: usize,
    /// Images copied at once
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = cli::count())]
    images: usize,
    /// Re-runs of a whole image after a transient failure, over the whole file
    ///
    /// A re-run continues with what its line has left of --retries, so a request that keeps
    /// failing is sent at most 1 + (--retries) + (re-runs of its line) times.
    #[arg(long, value_name = "N", default_value_t = 3)]
    retry_budget: u32,
    #[command(flatten)]
    copy: CopyArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    log: LogArgs,
}

struct Job {
    line: usize,
    src: Endpoint,
    dst: Endpoint,
}

/// The jobs of the list file `text`; `file` (its name, escaped) prefixes every message.
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
        (None, None, _) => return None,
    };
    let place = match &job.dst {
        Endpoint::Layout { path, .. } => normalised(path).display().to_string(),
        Endpoint::Archive { kind, path, .. } => format!("{kind}:{}", normalised(path).display()),
        Endpoint::Bucket { url, .. } => url.clone(),
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
    let cli: Cli = cli::parse();
    cli.log.init("sync");
    let file = Escaped(cli.file.display()).to_string();
    let text = match std::fs::read_to_string(&cli.file) {
        Ok(t) => t,
        Err(e) => {
            return oci_examples::fail("sync", 2, format_args!("cannot read {file}: {e}"));
        }
    };
    let jobs = match parse_file(&text, &file) {
        Ok(j) if j.is_empty() => {
            return oci_examples::fail("sync", 2, format_args!("{file}: no `SRC DST` lines"));
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
    let outcomes = match rt.block_on(run(jobs, &cli)) {
        Ok(o) => o,
        Err(e) => return oci_examples::fail("sync", 2, e),
    };
    let total = started.elapsed();

    outln!(
        "{:<4} {:<8} {:>5} {:>6} {:>7} {:>10} {:>8}  SRC -> DST",
        "line",
        "status",
        "tries",
        "copied",
        "skipped",
        "sent",
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
            "{:<4} {:<8} {:>5} {:>6} {:>7} {:>10} {:>8.2}  {} -> {}",
            o.line,
            status,
            o.attempts,
            copied,
            skipped,
            Size(bytes).to_string(),
            o.elapsed.as_secs_f64(),
            o.src,
            o.dst
        );
    }
    outln!(
        "(copied, skipped: blobs; sent: bytes sent to the destination; tries: runs of the line)"
    );
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
        "{} of {} images copied, {} failed; {} sent in {:.2} s",
        outcomes.len() - failed,
        outcomes.len(),
        failed,
        ExactSize(bytes),
        total.as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn run(jobs: Vec<Job>, cli: &Cli) -> Result<Vec<Outcome>, CopyError> {
    let ctx = transport::Context::new(&cli.registry, jobs.iter().flat_map(|j| [&j.src, &j.dst]))?;
    let transfers = Arc::new(Semaphore::new(cli.jobs));
    let images = Arc::new(Semaphore::new(cli.images));
    let budget = Arc::new(AtomicU32::new(cli.retry_budget));
    let copy_options = cli.copy.options();
    let line_retries = copy_options.retries;
    let options = copy_options.with_shared_limit(transfers);
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
        let options = options.with_retry_budget(RetryBudget::new(line_retries));
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
