//! The main job: copy an image between OCI layouts and registries, all platforms or some,
//! concurrently, resumably, verifiably.
//!
//! ```text
//! cargo run --release --example copy -- [OPTIONS] SRC DST
//! cargo run --release --example copy                 # the shipped sample into ./oci-store:sample
//! cargo run --release --example copy -- --help       # every option
//! ```
//!
//! SRC and DST are `oci:PATH[:TAG|@DIGEST]`, `docker://REGISTRY/REPO[:TAG|@DIGEST]`,
//! `s3://BUCKET/PREFIX[:TAG|@DIGEST]` (an OCI layout under a bucket's prefix; endpoint, region
//! and credentials from the `AWS_*` environment variables, `AWS_ENDPOINT_URL` and
//! `AWS_ALLOW_HTTP=true` for a local server; the tag follows the last '/'),
//! `docker-archive:PATH[:REFERENCE]` (a DST needs a Docker reference such as `app:v1`, unless
//! the source names one, and holds one platform's image: `--platform OS/ARCH` picks it from a
//! multi-platform source) or `oci-archive:PATH[:TAG]` (an archive DST must not exist; it
//! appears only once complete). As with skopeo, the layout PATH ends at the first ':'; TAG
//! follows the OCI ref.name grammar, so `oci:dir:team/v1` is the tag team/v1 in ./dir. A source `oci:PATH` without TAG means the
//! layout's only tag (with several, the one named latest), as for inspect; a destination without
//! TAG gets the source's. The options (`--platform`, `--creds` or `OCI_RS_CREDS`, `--jobs`,
//! `--retries`, `--state-dir`, ...) are those of `sync` too, spelled and checked the same way
//! ([`oci_examples::cli`]).
//!
//! Progress bars on a terminal, one line per finished blob otherwise, a summary at the end
//! (counts of blobs, sizes with their exact bytes). Ctrl-C or SIGTERM cancels cleanly: what was
//! copied stays complete and verified, interrupted blobs resume on the next run, and no tag is
//! written. A run killed outright (SIGKILL) resumes too: into a layout from its ingests, into a
//! registry from the upload sessions recorded in the state directory. A push streams each blob
//! in one request; SIGTERM ends those requests cleanly, and the next run resumes every upload
//! from the offset the registry reports. SIGKILL cuts them instead, and distribution 2.8 drops
//! a session whose last request was cut, so that blob starts again (the log says so). The
//! summary says how many bytes were resumed. `--chunked-upload 4MiB` pushes in chunks, for
//! registries that refuse streamed uploads or large requests.
//!
//! A destination layout is created only once the source reference resolved: a copy from a tag
//! that does not exist leaves nothing behind. Text from layouts and registries (media types,
//! tags, error messages) is printed with its control characters escaped. When the reader of the
//! output goes away (`copy … | head -1`), the rest of the output is dropped quietly and the copy
//! still finishes; the exit status is the copy's. `--log-level` (or `RUST_LOG`) logs the
//! library's events to standard error.
//!
//! Exit status: 0 copied; 1 the copy failed (the message names the reference and digests);
//! 2 bad usage; 130 cancelled.
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use oci_examples::cli::{self, CopyArgs, LogArgs, MirrorArgs, RegistryArgs};
use oci_examples::size::{Count, ExactSize, Size};
use oci_examples::summary::copy_summary;
use oci_examples::transport::{self, Endpoint};
use oci_examples::{errln, escape, outln, sample};
use oci_manifest::convert::Flavor;
use oci_store::{CancelToken, ProgressEvent};

/// Copy an image between OCI layouts and registries: all platforms or some, concurrently,
/// resumably, verifiably
#[derive(Parser)]
#[command(
    name = "copy",
    bin_name = "copy",
    after_help = "With no SRC and DST: copies the shipped sample into ./oci-store:sample.\n\
Exit status: 0 copied, 1 the copy failed, 2 bad usage, 130 cancelled (Ctrl-C, SIGTERM; a re-run resumes)."
)]
struct Cli {
    /// Where to copy from: oci:PATH[:TAG|@DIGEST], docker://REGISTRY/REPO[:TAG|@DIGEST],
    /// s3://BUCKET/PREFIX[:TAG|@DIGEST], docker-archive:PATH[:REFERENCE] or
    /// oci-archive:PATH[:TAG]
    ///
    /// oci:PATH ends at the first ':' (as with skopeo) and TAG follows the OCI ref.name
    /// grammar, so oci:dir:team/v1 is the tag team/v1 in ./dir. Without TAG: the layout's only
    /// tag (with several, the one named "latest"), as for inspect; a registry's "latest"; an
    /// archive's only image. s3:// takes its endpoint and credentials from AWS_* variables
    /// (AWS_ENDPOINT_URL, AWS_ALLOW_HTTP, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
    #[arg(value_name = "SRC", value_parser = cli::endpoint, requires = "dst")]
    src: Option<Endpoint>,
    /// Where to copy to, as SRC; without TAG it gets the source's tag (a docker-archive needs a
    /// Docker reference such as app:v1 unless the source names one; an archive must not exist)
    #[arg(value_name = "DST", value_parser = cli::endpoint)]
    dst: Option<Endpoint>,
    #[command(flatten)]
    copy: CopyArgs,
    /// Transfers at once
    #[arg(short, long, value_name = "N", default_value_t = 4, value_parser = cli::count())]
    jobs: usize,
    /// Convert a Docker schema 1 source (signed or not) as skopeo does: to OCI for oci:,
    /// s3:// and oci-archive: destinations, to Docker schema 2 for registries and
    /// docker-archive: (--format decides when given); the digest changes
    ///
    /// The diff IDs are computed by reading every layer once more while planning. Without
    /// this option a schema 1 source is refused.
    #[arg(long)]
    convert_schema1: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    mirrors: MirrorArgs,
    /// Print only the summary
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    log: LogArgs,
}

/// Shows progress: bars on a terminal, lines otherwise.
struct Display {
    bars: Option<(MultiProgress, ProgressBar)>,
    blobs: Mutex<HashMap<String, ProgressBar>>,
    /// Bytes received per blob source (blobs fetched in pieces), in the order first seen.
    sources: Mutex<Vec<(String, u64)>>,
    quiet: bool,
}

impl Display {
    fn new(quiet: bool) -> Arc<Display> {
        let bars = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let total = multi.add(ProgressBar::new(0));
            total.set_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            total.set_prefix("total");
            (multi, total)
        });
        Arc::new(Display {
            bars,
            blobs: Mutex::new(HashMap::new()),
            sources: Mutex::new(Vec::new()),
            quiet,
        })
    }

    /// Counts bytes received from a blob source; the per-source line ("from a: 1.0 MiB, b: ...").
    fn source_bytes(&self, name: &str, bytes: u64) -> String {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        match sources.iter_mut().find(|(n, _)| n == name) {
            Some((_, b)) => *b = b.saturating_add(bytes),
            None => sources.push((name.to_owned(), bytes)),
        }
        drop(sources);
        format!("from {}", self.sources_line())
    }

    /// Bytes received per blob source so far: "a: 1.0 MiB, b: 2.0 MiB" (empty without any).
    fn sources_line(&self) -> String {
        let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let parts: Vec<String> = sources
            .iter()
            .map(|(n, b)| format!("{}: {}", escape(n), Size(*b)))
            .collect();
        parts.join(", ")
    }

    fn event(&self, p: &oci_store::Progress) {
        let short = |d: &oci_store::Digest| d.encoded().chars().take(12).collect::<String>();
        if let ProgressEvent::SourceBytes { name, bytes, .. } = &p.event {
            let line = self.source_bytes(name, *bytes);
            if let Some((_, total)) = &self.bars {
                total.set_message(line);
            }
            return;
        }
        if let ProgressEvent::BadPiece {
            digest,
            name,
            index,
        } = &p.event
        {
            let line = format!(
                "    bad piece {index} of {digest} from {}: fetching it elsewhere",
                escape(name)
            );
            match &self.bars {
                Some((multi, _)) => {
                    let _ = multi.println(line);
                }
                None if !self.quiet => errln!("{line}"),
                None => {}
            }
            return;
        }
        if let Some((multi, total)) = &self.bars {
            total.set_length(p.total_bytes);
            total.set_position(p.done_bytes);
            let mut blobs = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
            match &p.event {
                ProgressEvent::Started { desc, resumed_from } if desc.size > 64 * 1024 => {
                    let bar = multi.add(ProgressBar::new(desc.size));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix:>8} [{bar:40}] {bytes}/{total_bytes} {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(short(&desc.digest));
                    bar.set_position(*resumed_from);
                    if *resumed_from > 0 {
                        bar.set_message(format!("resumed at {}", Size(*resumed_from)));
                    }
                    blobs.insert(desc.digest.to_string(), bar);
                }
                ProgressEvent::Bytes { digest, done, .. } => {
                    if let Some(b) = blobs.get(&digest.to_string()) {
                        b.set_position(*done);
                    }
                }
                ProgressEvent::Finished { desc, outcome } => {
                    if let Some(b) = blobs.remove(&desc.digest.to_string()) {
                        b.finish_and_clear();
                        multi.remove(&b);
                    }
                    let _ = multi.println(format!(
                        "{outcome:>9} {} ({})",
                        desc.digest,
                        Size(desc.size)
                    ));
                }
                ProgressEvent::Retrying {
                    desc,
                    attempt,
                    error,
                } => {
                    let _ = multi.println(format!(
                        "    retry {} after attempt {attempt}: {}",
                        desc.digest,
                        escape(error)
                    ));
                }
                _ => {}
            }
            return;
        }
        if self.quiet {
            return;
        }
        match &p.event {
            ProgressEvent::Planned { nodes } => {
                errln!(
                    "planned: {}, {}",
                    Count(*nodes, "blob"),
                    ExactSize(p.total_bytes)
                );
            }
            ProgressEvent::Started { desc, resumed_from } if *resumed_from > 0 => {
                errln!(
                    "resuming {} at {} of {}",
                    desc.digest,
                    ExactSize(*resumed_from),
                    Size(desc.size)
                );
            }
            ProgressEvent::Finished { desc, outcome } => {
                let line = self.sources_line();
                let from = if line.is_empty() {
                    String::new()
                } else {
                    format!(" [received so far from {line}]")
                };
                errln!(
                    "{outcome:>9} {} {} ({}) [{} of {} done]{from}",
                    escape(&desc.media_type),
                    desc.digest,
                    Size(desc.size),
                    Size(p.done_bytes),
                    Size(p.total_bytes)
                );
            }
            ProgressEvent::Retrying {
                desc,
                attempt,
                error,
            } => {
                errln!(
                    "    retry {} after attempt {attempt}: {}",
                    desc.digest,
                    escape(error)
                );
            }
            _ => {}
        }
    }

    fn finish(&self) {
        if let Some((_, total)) = &self.bars {
            total.finish_and_clear();
        }
    }
}

fn main() -> ExitCode {
    let cli: Cli = cli::parse();
    cli.log.init("copy");
    let default_run = cli.src.is_none();
    let (src, dst) = match (cli.src, cli.dst) {
        (Some(s), Some(d)) => (s, d),
        // clap requires DST with SRC; neither: the shipped sample.
        _ => (
            Endpoint::Layout {
                path: sample::committed_path(),
                reference: Some(sample::TAG.to_owned()),
            },
            Endpoint::Layout {
                path: "./oci-store".into(),
                reference: Some(sample::TAG.to_owned()),
            },
        ),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return oci_examples::fail("copy", 1, format_args!("cannot start a runtime: {e}"));
        }
    };
    let display = Display::new(cli.quiet);
    let cancel = CancelToken::new();
    let d = Arc::clone(&display);
    let mut options = cli
        .copy
        .options()
        .with_cancel(cancel.clone())
        .with_progress(move |p| d.event(p));
    options.jobs = cli.jobs;
    options.retry_backoff = Duration::from_millis(500);
    if cli.convert_schema1 {
        let to = match &dst {
            Endpoint::Layout { .. }
            | Endpoint::Bucket { .. }
            | Endpoint::Archive {
                kind: oci_store::ArchiveKind::Oci,
                ..
            } => Flavor::Oci,
            Endpoint::Registry { .. } | Endpoint::Archive { .. } => Flavor::Docker,
        };
        options = options.with_schema1_conversion(Some(to));
    }
    if default_run {
        outln!("no arguments: copying the shipped sample image {src} into {dst}");
    }
    let result = rt.block_on(async {
        let c = cancel.clone();
        let ctrl_c = async move {
            oci_examples::stop_requested().await;
            errln!("interrupted: finishing cleanly (no tag written; re-run to resume)");
            c.cancel();
        };
        let ctx = transport::Context::new(&cli.registry, [&src, &dst])?;
        let mut options = options;
        options.blob_sources = ctx.blob_sources(&src, &cli.registry, &cli.mirrors)?;
        if !options.blob_sources.is_empty() && !cli.quiet {
            let names: Vec<String> = options
                .blob_sources
                .iter()
                .map(|s| escape(&s.source_name()).into_owned())
                .collect();
            errln!("fetching blobs in pieces from: {}", names.join(", "));
        }
        let work = transport::copy(&src, &dst, &options, &ctx);
        tokio::pin!(work);
        tokio::pin!(ctrl_c);
        // After Ctrl-C or SIGTERM the copy winds down (cancelled) and its result is still
        // awaited.
        tokio::select! {
            r = &mut work => r,
            () = &mut ctrl_c => work.await,
        }
    });
    display.finish();
    match result {
        Ok(report) => {
            outln!("{}", copy_summary(&report));
            for c in &report.conversions {
                outln!(
                    "  converted {} ({}) to {} ({}): {}",
                    c.source.digest,
                    escape(&c.source.media_type),
                    c.result.digest,
                    escape(&c.result.media_type),
                    escape(&c.reason)
                );
            }
            if let Some(tag) = &report.tag {
                outln!("  tagged \"{}\" in {dst}", escape(tag));
            }
            if default_run {
                let platforms = sample::platforms()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                outln!(
                    "  the sample has {platforms}; try: cargo run --example copy -- --platform linux/arm64 {src} oci:./oci-store:arm64"
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            // A report of something planned (not of a reference that did not resolve).
            if let Some(report) = e.report().filter(|r| !r.nodes.is_empty()) {
                errln!("{}", copy_summary(report));
            }
            let message = e.to_string();
            if !cli.convert_schema1 && message.contains("Docker schema 1 manifest") {
                errln!("copy: {message}");
                return oci_examples::fail(
                    "copy",
                    1,
                    "the source is a Docker schema 1 image: --convert-schema1 converts it as skopeo does (the digest changes)",
                );
            }
            oci_examples::fail("copy", if e.is_cancelled() { 130 } else { 1 }, message)
        }
    }
}
