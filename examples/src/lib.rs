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

/// The README's Rust snippets, compiled as doc tests so they cannot drift from the API.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
