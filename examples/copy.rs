//! The main job: copy an image between OCI layouts and registries, all platforms or some,
//! concurrently, resumably, verifiably.
//!
//! ```text
//! cargo run --release --example copy -- [OPTIONS] SRC DST
//! cargo run --release --example copy                 # the shipped sample into ./oci-store:sample
//!
//! SRC, DST   oci:PATH[:TAG|@DIGEST]  or  docker://REGISTRY/REPO[:TAG|@DIGEST]
//!             (as with skopeo, the layout PATH ends at the first ':'; TAG follows the OCI
//!             ref.name grammar, so `oci:dir:team/v1` is the tag team/v1 in ./dir)
//!             A source oci:PATH without TAG means the layout's only tag (with several, the
//!             one named latest), as for inspect; a destination without TAG gets the source's.
//!
//! --platform OS/ARCH[/VARIANT]  copy only this platform (repeatable); the result is a
//!                               reduced index referencing only what was copied
//! --all                         every platform (the default)
//! --plain-http                  talk HTTP, not HTTPS, to the registries named
//! --creds USER:PASS             credentials (else Docker's config.json)
//! --verify-existing             do not trust the destination's "I have it": read it back,
//!                               store again what it does not serve, read the result back
//! --referrers                   also copy signatures, SBOMs and other referrers
//! --format oci|docker           convert manifests to OCI or Docker media types
//! --jobs N                      transfers at once (default 4, at least 1)
//! --retries N                   the copy's retry budget: retries in all after transient
//!                               failures, shared by every blob, manifest and the tag
//!                               (default 3); a request that keeps failing is sent at most
//!                               1 + N times, and the summary says how many were used
//! --state-dir DIR               where pushes to registries record their upload sessions,
//!                               so a killed push resumes from what the registry has
//!                               (default $XDG_STATE_HOME/oci-rs/uploads, else
//!                               ~/.local/state/oci-rs/uploads)
//! --quiet                       only the summary
//! ```
//!
//! Progress bars on a terminal, one line per finished blob otherwise, a summary at the end.
//! Ctrl-C or SIGTERM cancels cleanly: what was copied stays complete and verified, interrupted
//! blobs resume on the next run, and no tag is written. A run killed outright (SIGKILL) resumes
//! too: into a layout from its ingests, into a registry from the upload sessions recorded in the
//! state directory, unless the kill landed in the middle of a chunk (distribution 2.8 then drops
//! that session, and that blob starts again). The summary says how many bytes were resumed.
//!
//! A destination layout is created only once the source reference resolved: a copy from a tag
//! that does not exist leaves nothing behind. Text from layouts and registries (media types,
//! tags, error messages) is printed with its control characters escaped. When the reader of the
//! output goes away (`copy … | head -1`), the rest of the output is dropped quietly and the copy
//! still finishes; the exit status is the copy's. `RUST_LOG=debug` (or any `tracing` filter)
//! logs the library's events to standard error.
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

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use oci_examples::transport::{self, Endpoint, RegistrySettings};
use oci_examples::{errln, escape, outln, sample};
use oci_store::{CancelToken, CopyOptions, CopyReport, ProgressEvent};

const USAGE: &str = "usage: copy [--platform OS/ARCH[/VARIANT]]... [--all] [--plain-http] \
[--creds USER:PASS] [--verify-existing] [--referrers] [--format oci|docker] [--jobs N] \
[--retries N] [--state-dir DIR] [--quiet] SRC DST
  SRC, DST: oci:PATH[:TAG|@DIGEST] or docker://REGISTRY/REPO[:TAG|@DIGEST]
    oci:PATH ends at the first ':' (as with skopeo); TAG follows the OCI ref.name grammar
    a source oci:PATH without TAG: the layout's only tag (with several, \"latest\"), as inspect
  --jobs N: transfers at once (default 4, at least 1)
  --retries N: the copy's retry budget, retries in all, shared by every blob, manifest and
    the tag (default 3): a request that keeps failing is sent at most 1 + N times
  --state-dir DIR: upload sessions of pushes, resumed by the next run (default
    $XDG_STATE_HOME/oci-rs/uploads or ~/.local/state/oci-rs/uploads)
  with no arguments: copies the shipped sample into ./oci-store:sample";

struct Args {
    src: Endpoint,
    dst: Endpoint,
    options: CopyOptions,
    settings: RegistrySettings,
    quiet: bool,
    default_run: bool,
}

fn parse_args(args: Vec<String>) -> Result<Args, String> {
    let mut options = CopyOptions::default();
    let mut settings = RegistrySettings::default();
    let mut quiet = false;
    let mut positional = Vec::new();
    let mut it = args.into_iter();
    let value = |it: &mut std::vec::IntoIter<String>, flag: &str| {
        it.next().ok_or_else(|| format!("{flag} needs a value"))
    };
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (a.clone(), None),
        };
        let val = |it: &mut std::vec::IntoIter<String>| match &inline {
            Some(v) => Ok(v.clone()),
            None => value(it, &flag),
        };
        let mut value = || val(&mut it);
        if transport::shared_option(&flag, &mut value, &mut options, &mut settings)? {
            continue;
        }
        match flag.as_str() {
            "--jobs" => {
                let v = val(&mut it)?;
                options.jobs = transport::positive("--jobs", &v)?;
            }
            "--quiet" | "-q" => quiet = true,
            "--help" | "-h" => return Err(String::new()),
            f if f.starts_with("--") => return Err(format!("unknown option {f}")),
            _ => positional.push(a),
        }
    }
    let default_run = positional.is_empty();
    let (src, dst) = match positional.as_slice() {
        [] => (
            Endpoint::Layout {
                path: sample::committed_path(),
                reference: Some(sample::TAG.to_owned()),
            },
            Endpoint::Layout {
                path: "./oci-store".into(),
                reference: Some(sample::TAG.to_owned()),
            },
        ),
        [s, d] => (
            Endpoint::parse(s).map_err(|e| e.to_string())?,
            Endpoint::parse(d).map_err(|e| e.to_string())?,
        ),
        _ => return Err("expected SRC and DST".to_owned()),
    };
    Ok(Args {
        src,
        dst,
        options,
        settings,
        quiet,
        default_run,
    })
}

/// Shows progress: bars on a terminal, lines otherwise.
struct Display {
    bars: Option<(MultiProgress, ProgressBar)>,
    blobs: Mutex<HashMap<String, ProgressBar>>,
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
            quiet,
        })
    }

    fn event(&self, p: &oci_store::Progress) {
        let short = |d: &oci_store::Digest| d.encoded().chars().take(12).collect::<String>();
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
                        bar.set_message(format!("resumed at {resumed_from}"));
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
                    let _ =
                        multi.println(format!("{outcome:>9} {} ({} B)", desc.digest, desc.size));
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
                    "planned: {nodes} pieces of content, {} bytes",
                    p.total_bytes
                );
            }
            ProgressEvent::Started { desc, resumed_from } if *resumed_from > 0 => {
                errln!(
                    "resuming {} at byte {resumed_from} of {}",
                    desc.digest,
                    desc.size
                );
            }
            ProgressEvent::Finished { desc, outcome } => {
                errln!(
                    "{outcome:>9} {} {} ({} B) [{}/{} B]",
                    escape(&desc.media_type),
                    desc.digest,
                    desc.size,
                    p.done_bytes,
                    p.total_bytes
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

/// The report's summary ([`CopyReport`]'s alternate `Display`), each line escaped.
fn summary(report: &CopyReport) -> String {
    format!("{report:#}")
        .lines()
        .map(|l| escape(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn main() -> ExitCode {
    oci_examples::init_logging("copy");
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            outln!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => return oci_examples::fail("copy", 2, format_args!("{e}\n{USAGE}")),
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
    let display = Display::new(args.quiet);
    let cancel = CancelToken::new();
    let d = Arc::clone(&display);
    let mut options = args
        .options
        .clone()
        .with_cancel(cancel.clone())
        .with_progress(move |p| d.event(p));
    options.retry_backoff = Duration::from_millis(500);
    if args.default_run {
        outln!(
            "no arguments: copying the shipped sample image {} into {}",
            args.src,
            args.dst
        );
    }
    let result = rt.block_on(async {
        let c = cancel.clone();
        let ctrl_c = async move {
            oci_examples::stop_requested().await;
            errln!("interrupted: finishing cleanly (no tag written; re-run to resume)");
            c.cancel();
        };
        let ctx = transport::Context::new(&args.settings, [&args.src, &args.dst])?;
        let work = transport::copy(&args.src, &args.dst, &options, &ctx);
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
            outln!("{}", summary(&report));
            if let Some(tag) = &report.tag {
                outln!("  tagged \"{}\" in {}", escape(tag), args.dst);
            }
            if args.default_run {
                let platforms = sample::platforms()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                outln!(
                    "  the sample has {platforms}; try: cargo run --example copy -- --platform linux/arm64 {} oci:./oci-store:arm64",
                    args.src
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            // A report of something planned (not of a reference that did not resolve).
            if let Some(report) = e.report().filter(|r| !r.nodes.is_empty()) {
                errln!("{}", summary(report));
            }
            oci_examples::fail("copy", if e.is_cancelled() { 130 } else { 1 }, e)
        }
    }
}
