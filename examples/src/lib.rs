//! Helpers shared by the runnable examples in this directory (`cargo run --example NAME`).
//!
//! The examples use the public APIs of the oci-rs crates only; this library holds nothing but
//! command-line plumbing they have in common.
#![forbid(unsafe_code)]
// Every line goes through `outln!`/`errln!` (see `output`): `println!` panics on a closed pipe.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod cli;
pub mod output;
pub mod sample;
pub mod size;
pub mod summary;
pub mod sync_yaml;
mod text;
pub mod transport;

pub use text::{Escaped, chain, escape, escape_json};

use std::process::ExitCode;

use oci_store::{Digest, Parent, Skipped};

/// Prints what `gc` and `fsck` both report about a store's graph, one line each, peer text
/// escaped: content referred to but missing, foreign layers absent as expected, and entries
/// skipped because they are not regular files.
///
/// ```
/// let d = oci_digest::Algorithm::Sha256.hash(b"x");
/// oci_examples::print_graph_findings(&[(d, oci_store::Parent::Tag("v1".into()))], &[], &[]);
/// ```
pub fn print_graph_findings(
    missing: &[(Digest, Parent)],
    foreign: &[(Digest, Parent)],
    skipped: &[Skipped],
) {
    for (d, p) in missing {
        outln!("missing {d}, referred to by {}", Escaped(p));
    }
    for (d, p) in foreign {
        outln!(
            "foreign layer {d} not stored, as expected (non-distributable: it lives at its URLs), referred to by {}",
            Escaped(p)
        );
    }
    for s in skipped {
        outln!(
            "skipped {}: {} (not followed, read or removed)",
            Escaped(s.path.display()),
            s.found
        );
    }
}

/// Prints `message` to standard error prefixed by the program name and returns `code`.
/// Text from peers or files inside `message` must already be escaped ([`escape`], [`chain`]).
///
/// ```
/// let code = oci_examples::fail("digest", 2, "bad digest");
/// assert_eq!(code, std::process::ExitCode::from(2));
/// ```
pub fn fail(program: &str, code: u8, message: impl std::fmt::Display) -> ExitCode {
    errln!("{program}: {message}");
    ExitCode::from(code)
}

/// Installs the log output every example has: the crates' `tracing` events on standard error
/// as plain text, filtered by `filter` (`--log-level`, checked by [`cli::log_filter`]) or else
/// by `RUST_LOG` (`RUST_LOG=debug`, `RUST_LOG=oci_store=trace`), and nothing at all when neither
/// is set. A `RUST_LOG` that does not parse is reported and ignored. Write errors (a closed
/// standard error) are dropped, never a panic.
///
/// ```
/// oci_examples::init_logging("doc", None);
/// oci_examples::init_logging("doc", Some("oci_store=debug"));
/// ```
pub fn init_logging(program: &str, filter: Option<&str>) {
    let parsed = match filter {
        Some(f) => tracing_subscriber::EnvFilter::try_new(f).map_err(|e| e.to_string()),
        None if std::env::var_os("RUST_LOG").is_none() => return,
        None => tracing_subscriber::EnvFilter::try_from_default_env().map_err(|e| e.to_string()),
    };
    let filter = match parsed {
        Ok(f) => f,
        Err(e) => {
            let what = if filter.is_some() {
                "--log-level"
            } else {
                "RUST_LOG"
            };
            errln!("{program}: {what} ignored: {}", escape(&e));
            return;
        }
    };
    // A second call (doc tests) finds a subscriber installed: nothing to do.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .log_internal_errors(false)
        .try_init();
}

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or, on unix, SIGTERM (what
/// `kill`, systemd and Kubernetes send). A job awaiting this cancels cleanly: the transfers in
/// flight end at a point the next run resumes from. Never resolves when no handler can be
/// installed.
///
/// ```no_run
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// oci_examples::stop_requested().await;
/// eprintln!("stopping cleanly");
/// # });
/// ```
pub async fn stop_requested() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = async {
            match signal(SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = ctrl_c => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

/// Awaits every task, in order, and gives one result per task: a task that panicked (or was
/// cancelled) becomes `Err` with its panic message, so no piece of work is lost from a summary
/// (`sync` counts such a line as failed).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let tasks = vec![
///     tokio::spawn(async { 1 }),
///     tokio::spawn(async { panic!("boom") }),
/// ];
/// let results = oci_examples::join_each(tasks).await;
/// assert_eq!(results[0], Ok(1));
/// assert_eq!(results[1], Err("panicked: boom".to_owned()));
/// # });
/// ```
pub async fn join_each<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<Result<T, String>> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.map_err(|e| {
            if !e.is_panic() {
                return e.to_string();
            }
            let payload = e.into_panic();
            match (
                payload.downcast_ref::<&str>(),
                payload.downcast_ref::<String>(),
            ) {
                (Some(s), _) => format!("panicked: {s}"),
                (None, Some(s)) => format!("panicked: {s}"),
                (None, None) => "panicked".to_owned(),
            }
        }));
    }
    out
}

/// The README's Rust snippets, compiled as doc tests so they cannot drift from the API.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
