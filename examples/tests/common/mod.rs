//! Plumbing shared by the tests that run the examples as a user would.

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
