//! Helpers shared by the runnable examples in this directory (`cargo run --example NAME`).
//!
//! The examples use the public APIs of the oci-rs crates only; this library holds nothing but
//! command-line plumbing they have in common.
#![forbid(unsafe_code)]

pub mod sample;
pub mod transport;

use std::process::ExitCode;

/// Prints `message` to standard error prefixed by the program name and returns `code`.
///
/// ```
/// let code = oci_examples::fail("digest", 2, "bad digest");
/// assert_eq!(code, std::process::ExitCode::from(2));
/// ```
pub fn fail(program: &str, code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("{program}: {message}");
    ExitCode::from(code)
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

/// The README's Rust snippets, compiled as doc tests so they cannot drift from the API.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
