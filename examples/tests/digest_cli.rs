//! The `digest` example as a user runs it: output format and every exit status.
//!
//! `cargo test` builds the examples before running tests; this finds the binary next to the
//! test executable (`target/<profile>/examples/digest`).
mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(common::example("digest"))
        .args(args)
        .output()
        .expect("runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct TempFile(PathBuf);
impl TempFile {
    fn new(name: &str, content: &[u8]) -> TempFile {
        let p =
            std::env::temp_dir().join(format!("oci-rs-digest-cli-{}-{name}", std::process::id()));
        std::fs::write(&p, content).expect("write temp file");
        TempFile(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const ABC256: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[test]
fn prints_like_sha256sum_for_each_algorithm() {
    let f = TempFile::new("abc", b"abc");
    let out = run(&[f.path()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{ABC256}  {}\n", f.path()));

    let out = run(&["--algorithm", "sha512", f.path()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).starts_with("sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea2")
    );

    let out = run(&["--algorithm", "md5", f.path()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("invalid value 'md5' for '--algorithm <ALGORITHM>'")
            && err.contains("[possible values: sha256, sha512]"),
        "{err}"
    );
}

#[test]
fn verify_exit_statuses() {
    let f = TempFile::new("verify", b"abc");
    let out = run(&["--verify", ABC256, f.path()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // Mismatch: exit 1, naming both digests.
    let other = "sha256:".to_owned() + &"0".repeat(64);
    let out = run(&["--verify", &other, f.path()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("expected: {other}")), "{err}");
    assert!(err.contains(&format!("actual:   {ABC256}")), "{err}");

    // Malformed: exit 2, saying which kind.
    for (digest, kind) in [
        ("sha256:abc", "invalid length"),
        ("sha256:ABC", "invalid format"),
        ("nonsense", "invalid format"),
        (
            "md5:900150983cd24fb0d6963f7d28e17f72",
            "unsupported algorithm",
        ),
    ] {
        let out = run(&["--verify", digest, f.path()]);
        assert_eq!(out.status.code(), Some(2), "{digest}");
        assert!(
            text(&out.stderr).contains(kind),
            "{digest}: {}",
            text(&out.stderr)
        );
    }

    // Unreadable file: exit 3.
    let out = run(&["--verify", ABC256, "/nonexistent/oci-rs-file"]);
    assert_eq!(out.status.code(), Some(3));
    // Wrong usage: exit 2, saying what is wrong.
    for (args, says) in [
        (vec![], "required arguments were not provided"),
        (
            vec!["--verify", ABC256],
            "required arguments were not provided",
        ),
        (
            vec!["--verify", ABC256, f.path(), f.path()],
            "--verify checks one FILE, 2 given",
        ),
        (
            vec!["--verify", ABC256, "--algorithm", "sha512", f.path()],
            "cannot be used with",
        ),
    ] {
        let out = run(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(err.contains("Usage: digest"), "{args:?}: {err}");
    }
}
