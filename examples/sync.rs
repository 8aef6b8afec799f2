//! Copies many images, listed in a file or chosen by a YAML file in the shape of
//! `skopeo sync --src yaml`, under one global limit on transfers, with a retry budget, a
//! progress line, a summary table, a machine-readable report and an exit status that says
//! whether all, some or none landed. Re-running it finishes only what is missing and says how
//! many images were already there.
//!
//! ```text
//! cargo run --release --example sync -- [OPTIONS] FILE
//! cargo run --release --example sync -- [OPTIONS] --src yaml FILE DEST
//! cargo run --release --example sync -- --help       # every option
//! ```
//!
//! With `--src list` (the default), FILE has one copy a line: `SRC DST` (as for the copy
//! example: `oci:PATH[:TAG|@DIGEST]` or `docker://REGISTRY/REPO[:TAG|@DIGEST]`); blank lines
//! and lines starting with # are ignored. Two lines that would write the same destination tag
//! are refused (exit 2, naming both lines): which one wins would depend on which finishes last.
//!
//! With `--src yaml`, FILE names registries, repositories and their tags (a list, `[]` for every
//! tag, or `images-by-tag-regex`), with per-registry `credentials`, `tls-verify` and `cert-dir`
//! ([`oci_examples::sync_yaml`]), and DEST is `docker://REGISTRY[/PREFIX]` or `oci:DIR`; each
//! image goes to `DEST/NAME:TAG`, NAME being the repository's last component (the whole source
//! name with `--scoped`), as skopeo names them.
//!
//! `--jobs` limits the transfers over all images (default 8), `--images` the images copied at
//! once (default 4). A layer shared by several images is sent once: the other copies wait for
//! it and mount it across repositories of the destination registry ([`oci_store::SharedBlobs`]),
//! and a copy between two repositories of one registry mounts from the source. `--retries` is
//! each image's retry budget, shared by its blobs, manifests, tag and re-runs, and
//! `--retry-budget` the re-runs of whole images over the run. The other options (`--platform`,
//! `--all`, `--creds` or `OCI_RS_CREDS`, `--state-dir`, ...) are copy's ([`oci_examples::cli`]).
//!
//! Without `--keep-going`, the first image that fails for good stops the run from starting
//! more images (those in flight finish; the others are "not attempted"), as skopeo sync
//! stops. With it, every image is attempted. `--report FILE` writes a JSON report: a summary
//! and, per image, its source, destination, digest, outcome (`copied`, `present`, `failed`,
//! `not-attempted`), error, bytes sent, blobs copied, skipped and mounted, tries and seconds.
//! An image is `present` when the destination had all of it (nothing sent or mounted).
//!
//! On a terminal, standard error shows one progress line for the whole run (images done of
//! the total, bytes sent, rate); `--quiet`, or standard error not a terminal, turns it off.
//! Text from files, layouts and registries is printed with control characters escaped; a
//! closed output (`sync … | head -1`) is dropped quietly. `--log-level` (or `RUST_LOG`)
//! enables the library's logs.
//!
//! Exit status: 0 every image is at its destination; 3 partial (with `--keep-going`: some
//! images landed and some failed); 1 failed (without `--keep-going`, any failure; with it,
//! every image failed); 2 bad usage or an unreadable file.
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use oci_distribution_client::Reference;
use oci_examples::cli::{self, CopyArgs, LogArgs, RegistryArgs};
use oci_examples::size::{ExactSize, Rate, Size};
use oci_examples::sync_yaml::{self, Destination};
use oci_examples::transport::{self, CopyError, Endpoint};
use oci_examples::{Escaped, errln, escape, outln};
use oci_store::{
    CopyOptions, CopyReport, Digest, ProgressEvent, RetryBudget, SharedBlobs, TagStore, VerifyMode,
};
use tokio::sync::Semaphore;

/// Copy many images, listed in a file or chosen by a YAML file as for `skopeo sync --src
/// yaml`, under one global limit on transfers, with a retry budget, a summary table, a JSON
/// report and an exit status that says whether all, some or none landed; a re-run finishes
/// only what is missing
#[derive(Parser)]
#[command(
    name = "sync",
    bin_name = "sync",
    after_help = "The table has a row per image: its line (or number), status, tries (runs of \
the image), blobs copied and skipped, bytes sent, seconds.\n\
Exit status: 0 every image copied, 3 partial (with --keep-going: some copied, some failed), \
1 failed (the table and the messages name them; with --keep-going: none copied), \
2 bad usage or an unreadable FILE."
)]
struct Cli {
    /// The list (`--src list`): one copy a line, `SRC DST`, as for copy (oci:PATH[:TAG|@DIGEST]
    /// or docker://REGISTRY/REPO[:TAG|@DIGEST]); or the YAML file (`--src yaml`)
    ///
    /// Blank lines and lines starting with # are ignored. Two lines that would write the same
    /// destination tag are refused (exit 2, naming both lines): which one wins would depend on
    /// which finishes last.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// With --src yaml: where the images go, docker://REGISTRY[/PREFIX] or oci:DIR
    #[arg(value_name = "DEST")]
    dest: Option<String>,
    /// What FILE is: a list of `SRC DST` lines, or registries and repositories in the YAML
    /// shape of `skopeo sync --src yaml`
    #[arg(long, value_enum, value_name = "KIND", default_value = "list")]
    src: SourceKind,
    /// With --src yaml: name each image at DEST by its source registry and whole repository
    /// (DEST/REGISTRY/REPO:TAG), not by the repository's last component
    #[arg(long)]
    scoped: bool,
    /// Attempt every image even after failures; the exit status then says whether all (0),
    /// some (3) or none (1) landed
    #[arg(long)]
    keep_going: bool,
    /// Write a JSON report: per image its source, destination, digest, outcome, error, bytes
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// No progress line on standard error
    #[arg(short, long)]
    quiet: bool,
    /// Transfers at once over all images
    #[arg(short, long, value_name = "N", default_value_t = 8, value_parser = cli::count())]
    jobs: usize,
    /// Images copied at once
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = cli::count())]
    images: usize,
    /// Re-runs of a whole image after a transient failure, over the whole run
    ///
    /// A re-run continues with what its image has left of --retries, so a request that keeps
    /// failing is sent at most 1 + (--retries) + (re-runs of its image) times.
    #[arg(long, value_name = "N", default_value_t = 3)]
    retry_budget: u32,
    #[command(flatten)]
    copy: CopyArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    log: LogArgs,
}

/// What FILE holds.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum SourceKind {
    /// `SRC DST` lines
    List,
    /// Registries and repositories, as for `skopeo sync --src yaml`
    Yaml,
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

/// Why an image did not copy.
enum Failure {
    /// The copy failed.
    Copy(CopyError),
    /// The copy's task ended abnormally (a panic): nothing is known of what it did.
    Aborted(String),
    /// The repository's tags could not be listed (`--src yaml`).
    Listing(String),
    /// Not attempted: an earlier image failed and --keep-going was not given.
    NotAttempted,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Copy(e) => e.fmt(f),
            Failure::Aborted(m) => write!(f, "the copy ended abnormally: {}", escape(m)),
            Failure::Listing(m) => write!(f, "cannot list the tags: {m}"),
            Failure::NotAttempted => {
                f.write_str("not attempted: an earlier image failed (see --keep-going)")
            }
        }
    }
}

struct Outcome {
    line: usize,
    src: Endpoint,
    dst: Option<Endpoint>,
    attempts: u32,
    result: Result<CopyReport, Failure>,
    elapsed: Duration,
}

impl Outcome {
    /// `copied`, `present` (the destination had all of it), `failed` or `not-attempted`.
    fn status(&self) -> &'static str {
        match &self.result {
            Ok(r) if r.copied + r.repaired + r.mounted == 0 => "present",
            Ok(_) => "copied",
            Err(Failure::NotAttempted) => "not-attempted",
            Err(_) => "failed",
        }
    }

    fn report(&self) -> Option<&CopyReport> {
        match &self.result {
            Ok(r) => Some(r),
            Err(Failure::Copy(e)) => e.report(),
            Err(_) => None,
        }
    }

    fn json(&self) -> serde_json::Value {
        let r = self.report();
        let digest = r
            .and_then(|r| r.source.as_ref())
            .map(|d| d.digest.to_string());
        serde_json::json!({
            "line": self.line,
            "source": self.src.as_typed(),
            "destination": self.dst.as_ref().map(Endpoint::as_typed),
            "digest": digest,
            "result_digest": r.and_then(|r| r.result.as_ref()).map(|d| d.digest.to_string()),
            "outcome": self.status(),
            "error": self.result.as_ref().err().map(ToString::to_string),
            "bytes": r.map_or(0, |r| r.bytes_copied),
            "blobs_copied": r.map_or(0, |r| r.copied + r.repaired),
            "blobs_skipped": r.map_or(0, |r| r.skipped),
            "blobs_mounted": r.map_or(0, |r| r.mounted),
            "tries": self.attempts,
            "seconds": self.elapsed.as_secs_f64(),
        })
    }
}

/// The run's one progress line on standard error: images done of the total, bytes sent, rate.
struct Board {
    bar: Option<ProgressBar>,
    started: Instant,
    done: AtomicUsize,
    bytes: AtomicU64,
}

impl Board {
    fn new(total: usize, quiet: bool) -> Arc<Board> {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("images {pos}/{len} [{bar:30}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        Arc::new(Board {
            bar,
            started: Instant::now(),
            done: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
        })
    }

    fn redraw(&self) {
        if let Some(bar) = &self.bar {
            let bytes = self.bytes.load(Ordering::Relaxed);
            bar.set_position(self.done.load(Ordering::Relaxed) as u64);
            bar.set_message(format!(
                "{} sent, {}",
                Size(bytes),
                Rate {
                    bytes,
                    seconds: self.started.elapsed().as_secs_f64()
                }
            ));
        }
    }

    /// A progress callback for one image's copy: counts the bytes it sends.
    fn meter(self: &Arc<Board>) -> impl Fn(&oci_store::Progress) + Send + Sync + 'static {
        let board = Arc::clone(self);
        let seen: Mutex<HashMap<Digest, u64>> = Mutex::new(HashMap::new());
        move |p: &oci_store::Progress| {
            if let ProgressEvent::Bytes { digest, done, .. } = &p.event {
                let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
                let before = seen.insert(digest.clone(), *done).unwrap_or(0);
                board
                    .bytes
                    .fetch_add(done.saturating_sub(before), Ordering::Relaxed);
                drop(seen);
                board.redraw();
            }
        }
    }

    fn image_done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.redraw();
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What to copy: the jobs, and the images that failed before a copy could start (a
/// repository whose tags could not be listed).
struct Work {
    jobs: Vec<Job>,
    failed: Vec<Outcome>,
    ctx: transport::Context,
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
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return oci_examples::fail("sync", 1, format_args!("cannot start a runtime: {e}"));
        }
    };
    let work = match cli.src {
        SourceKind::List => {
            if cli.dest.is_some() {
                return cli::usage_error::<Cli>(
                    "DEST is for --src yaml; a list names each destination on its lines",
                );
            }
            if cli.scoped {
                return cli::usage_error::<Cli>("--scoped is for --src yaml");
            }
            let jobs = match parse_file(&text, &file) {
                Ok(j) if j.is_empty() => {
                    return oci_examples::fail(
                        "sync",
                        2,
                        format_args!("{file}: no `SRC DST` lines"),
                    );
                }
                Ok(j) => j,
                Err(e) => return oci_examples::fail("sync", 2, e),
            };
            let ctx = match transport::Context::new(
                &cli.registry,
                jobs.iter().flat_map(|j| [&j.src, &j.dst]),
            ) {
                Ok(c) => c,
                Err(e) => return oci_examples::fail("sync", 2, e),
            };
            Work {
                jobs,
                failed: Vec::new(),
                ctx,
            }
        }
        SourceKind::Yaml => {
            let Some(dest) = &cli.dest else {
                return cli::usage_error::<Cli>(
                    "--src yaml needs DEST: docker://REGISTRY[/PREFIX] or oci:DIR",
                );
            };
            let dest = match Destination::parse(dest) {
                Ok(d) => d,
                Err(e) => return cli::usage_error::<Cli>(e),
            };
            match rt.block_on(expand_yaml(&text, &file, &dest, &cli)) {
                Ok(w) if w.jobs.is_empty() && w.failed.is_empty() => {
                    return oci_examples::fail("sync", 2, format_args!("{file}: names no image"));
                }
                Ok(w) => w,
                Err(e) => return oci_examples::fail("sync", 2, e),
            }
        }
    };
    let started = Instant::now();
    let outcomes = rt.block_on(run(work, &cli));
    let total = started.elapsed();
    print_table(&outcomes);
    let count = |s: &str| outcomes.iter().filter(|o| o.status() == s).count();
    let (copied, present, not_attempted) =
        (count("copied"), count("present"), count("not-attempted"));
    let failed = count("failed");
    let bytes: u64 = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok())
        .map(|r| r.bytes_copied)
        .sum();
    let skipped = if not_attempted > 0 {
        format!(", {not_attempted} not attempted")
    } else {
        String::new()
    };
    outln!(
        "{} of {} images copied, {} failed{skipped}; {} sent in {:.2} s",
        copied + present,
        outcomes.len(),
        failed,
        ExactSize(bytes),
        total.as_secs_f64()
    );
    outln!("already present: {present} images; copied now: {copied} images");
    let code: u8 = match (failed + not_attempted, copied + present) {
        (0, _) => 0,
        (_, 0) => 1,
        _ if cli.keep_going => 3,
        _ => 1,
    };
    if let Some(path) = &cli.report {
        let json = serde_json::json!({
            "version": 1,
            "summary": {
                "images": outcomes.len(),
                "copied": copied,
                "present": present,
                "failed": failed,
                "not_attempted": not_attempted,
                "bytes": bytes,
                "seconds": total.as_secs_f64(),
                "exit_status": code,
            },
            "images": outcomes.iter().map(Outcome::json).collect::<Vec<_>>(),
        });
        if let Err(e) = write_report(path, &json) {
            errln!(
                "sync: cannot write the report {}: {e}",
                Escaped(path.display())
            );
            return ExitCode::from(1);
        }
    }
    ExitCode::from(code)
}

/// Writes the report whole or not at all: a temporary file beside it, renamed over it.
fn write_report(path: &Path, json: &serde_json::Value) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(json).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path)
}

fn print_table(outcomes: &[Outcome]) {
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
    for o in outcomes {
        let status = match &o.result {
            Ok(_) => "ok",
            Err(Failure::NotAttempted) => "SKIPPED",
            Err(_) => "FAILED",
        };
        let r = o.report();
        outln!(
            "{:<4} {:<8} {:>5} {:>6} {:>7} {:>10} {:>8.2}  {} -> {}",
            o.line,
            status,
            o.attempts,
            r.map_or(0, |r| r.copied + r.repaired),
            r.map_or(0, |r| r.skipped + r.mounted),
            Size(r.map_or(0, |r| r.bytes_copied)).to_string(),
            o.elapsed.as_secs_f64(),
            o.src,
            o.dst
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string)
        );
    }
    outln!(
        "(copied, skipped: blobs; sent: bytes sent to the destination; tries: runs of the line)"
    );
    for o in outcomes {
        if let Err(e) = &o.result
            && !matches!(e, Failure::NotAttempted)
        {
            let dst = o
                .dst
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string);
            errln!("sync: line {}: {} -> {dst}: {e}", o.line, o.src);
        }
    }
}

/// The jobs a YAML file names: each registry's repositories, their tags listed where the file
/// asks for every tag or a pattern, each image sent to its place under `dest`.
async fn expand_yaml(
    text: &str,
    file: &str,
    dest: &Destination,
    cli: &Cli,
) -> Result<Work, String> {
    let entries = sync_yaml::parse(text, file)?;
    let mut registries: Vec<String> = entries.iter().map(|e| e.registry.clone()).collect();
    registries.extend(dest.registry().map(str::to_owned));
    let config = sync_yaml::configure(
        transport::Context::config(&cli.registry, &registries),
        &entries,
    )?;
    let ctx = transport::Context::with_config(config).map_err(|e| e.to_string())?;
    let client = ctx
        .client()
        .ok_or_else(|| "no registry client".to_owned())?
        .clone();
    let mut jobs = Vec::new();
    let mut failed = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for entry in &entries {
        for (repo, tags) in &entry.repositories {
            let source = |tag: Option<&str>| {
                let r = match tag {
                    Some(t) => format!("docker://{}/{repo}:{t}", entry.registry),
                    None => format!("docker://{}/{repo}", entry.registry),
                };
                Endpoint::parse(&r).map_err(|e| e.to_string())
            };
            let listed = if tags.needs_listing() {
                let listing = match client.repository_by_name(&entry.registry, repo) {
                    Ok(r) => TagStore::tags(&r)
                        .await
                        .map_err(|e| oci_examples::chain(&e)),
                    Err(e) => Err(oci_examples::chain(&e)),
                };
                match listing {
                    Ok(t) => t,
                    Err(e) => {
                        failed.push(Outcome {
                            line: 0,
                            src: source(None)?,
                            dst: None,
                            attempts: 1,
                            result: Err(Failure::Listing(e)),
                            elapsed: Duration::ZERO,
                        });
                        continue;
                    }
                }
            } else {
                Vec::new()
            };
            for tag in tags.select(&listed) {
                let src = source(Some(&tag))?;
                let dst = dest.endpoint(&entry.registry, repo, &tag, cli.scoped)?;
                let target = dst.as_typed();
                if let Some(first) = seen.insert(target.clone(), src.as_typed()) {
                    return Err(format!(
                        "{file}: {} and {first} would both be written to {}: which copy wins would \
depend on which finishes last (use --scoped)",
                        src,
                        escape(&target)
                    ));
                }
                jobs.push(Job { line: 0, src, dst });
            }
        }
    }
    for (i, job) in jobs.iter_mut().enumerate() {
        job.line = i + 1;
    }
    let n = jobs.len();
    for (i, o) in failed.iter_mut().enumerate() {
        o.line = n + i + 1;
    }
    Ok(Work { jobs, failed, ctx })
}

/// What a registry destination's tag says about an image before it is copied.
enum Tagged {
    /// The tag names the digest the source's reference resolves to. The registry accepted
    /// that manifest only with everything it refers to, so there is nothing to copy: the
    /// report of that.
    There(Box<CopyReport>),
    /// The tag is missing, or names other content: the copy stores the root under it without
    /// asking for the root first ([`CopyOptions::tag_differs`]).
    Differs,
    /// Not known (another answer, an error, a destination that is not a registry), or the copy
    /// would change the manifest (`--platform`, `--format`, `--referrers`) or must check what
    /// is there (`--verify-existing`): the copy runs and skips what is there.
    Unknown,
}

/// What the destination's tag says about the image (two manifest `HEAD`s; one when the
/// destination has no such tag).
async fn already_there(
    src: &Endpoint,
    dst: &Endpoint,
    options: &CopyOptions,
    ctx: &transport::Context,
) -> Tagged {
    if !matches!(dst, Endpoint::Registry { .. })
        || !options.platforms.is_empty()
        || options.format.is_some()
        || options.include_referrers
        || options.verify != VerifyMode::Trust
    {
        return Tagged::Unknown;
    }
    let Ok(source) = transport::open(src, false, ctx).await else {
        return Tagged::Unknown;
    };
    let Ok(reference) = transport::source_reference(src, &source).await else {
        return Tagged::Unknown;
    };
    let tag = match dst.reference() {
        Some(t) => t,
        None if Digest::parse(&reference).is_err() => reference.clone(),
        None => return Tagged::Unknown,
    };
    // The destination first: when its tag is missing (a first sync) the source need not be
    // asked. A source tag by `HEAD` (`resolve_reference` would `GET` the manifest, which a
    // registry such as Docker Hub counts as a pull even when there is nothing to copy).
    let Ok(target) = transport::open(dst, false, ctx).await else {
        return Tagged::Unknown;
    };
    let there = match target.source().resolve(&tag).await {
        Ok(there) => there,
        Err(e) if e.is_not_found() => return Tagged::Differs,
        Err(_) => return Tagged::Unknown,
    };
    let root = match Digest::parse(&reference) {
        Ok(_) => oci_store::resolve_reference(source.source(), &reference).await,
        Err(_) => source.source().resolve(&reference).await,
    };
    let Ok(root) = root else {
        return Tagged::Unknown;
    };
    if there.digest != root.digest {
        return Tagged::Differs;
    }
    let mut report = CopyReport::default();
    report.reference = reference;
    report.total_bytes = 0;
    report.result = Some(there);
    report.source = Some(root);
    report.tag = Some(tag);
    Tagged::There(Box::new(report))
}

async fn run(work: Work, cli: &Cli) -> Vec<Outcome> {
    let Work { jobs, failed, ctx } = work;
    let board = Board::new(jobs.len() + failed.len(), cli.quiet);
    for _ in &failed {
        board.image_done();
    }
    let transfers = Arc::new(Semaphore::new(cli.jobs));
    let images = Arc::new(Semaphore::new(cli.images));
    let budget = Arc::new(AtomicU32::new(cli.retry_budget));
    let stop = Arc::new(AtomicBool::new(!cli.keep_going && !failed.is_empty()));
    let keep_going = cli.keep_going;
    let copy_options = cli.copy.options();
    let line_retries = copy_options.retries;
    let options = copy_options
        .with_shared_limit(transfers)
        .with_shared_blobs(SharedBlobs::new());
    let run_started = Instant::now();
    let mut tasks = Vec::new();
    for job in jobs {
        let (line, src, dst) = (job.line, job.src.clone(), job.dst.clone());
        let (images, budget, stop, ctx, board) = (
            Arc::clone(&images),
            Arc::clone(&budget),
            Arc::clone(&stop),
            ctx.clone(),
            Arc::clone(&board),
        );
        // One retry budget for the line, shared by its re-runs: retries add up, they do not
        // multiply.
        let options = options
            .clone()
            .with_retry_budget(RetryBudget::new(line_retries))
            .with_progress(board.meter());
        let task = tokio::spawn(async move {
            let _slot = images.acquire_owned().await;
            let started = Instant::now();
            if stop.load(Ordering::SeqCst) {
                board.image_done();
                return Outcome {
                    line: job.line,
                    src: job.src,
                    dst: Some(job.dst),
                    attempts: 0,
                    result: Err(Failure::NotAttempted),
                    elapsed: Duration::ZERO,
                };
            }
            let options = match already_there(&job.src, &job.dst, &options, &ctx).await {
                Tagged::There(report) => {
                    board.image_done();
                    return Outcome {
                        line: job.line,
                        src: job.src,
                        dst: Some(job.dst),
                        attempts: 1,
                        result: Ok(*report),
                        elapsed: started.elapsed(),
                    };
                }
                Tagged::Differs => options.with_tag_differs(true),
                Tagged::Unknown => options,
            };
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
            if result.is_err() && !keep_going {
                stop.store(true, Ordering::SeqCst);
            }
            board.image_done();
            Outcome {
                line: job.line,
                src: job.src,
                dst: Some(job.dst),
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
                dst: Some(dst),
                attempts: 1,
                result: Err(Failure::Aborted(message)),
                elapsed: run_started.elapsed(),
            })
        })
        .collect();
    board.finish();
    out.extend(failed);
    out.sort_by_key(|o| o.line);
    out
}
