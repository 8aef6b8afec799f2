//! Plumbing shared by the tests that run the examples as a user would.
// Each test binary uses part of this.
#![allow(dead_code)]

use std::path::PathBuf;

/// The built example `name` (`target/<profile>/examples/NAME`), found beside the test executable.
///
/// `cargo test` builds every example before it runs the tests, so a missing binary means the
/// test was started some other way.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join("examples")
        .join(name);
    assert!(
        bin.exists(),
        "{} not built: run through `cargo test`",
        bin.display()
    );
    bin
}

/// A fresh directory under the system's temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `$TMPDIR/oci-rs-<PID>-<tag>-<N>` (N counts up, so tests running at once never share
    /// one), emptied first.
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("oci-rs-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    /// The directory.
    #[allow(dead_code)]
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fails unless `out` is free of raw control characters (line ends aside), C1 controls and
/// bidirectional overrides, and holds no line starting "FAKE LINE" (what the tests' hostile
/// strings try to forge): text from peers, files and command lines is printed escaped.
pub fn assert_clean(what: &str, out: &[u8]) {
    let s = String::from_utf8_lossy(out);
    let bad: Vec<char> = s
        .chars()
        .filter(|&c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c))
        .collect();
    assert!(bad.is_empty(), "{what} printed raw {bad:?}: {s}");
    assert!(!s.contains("\nFAKE LINE"), "{what}: {s}");
}
