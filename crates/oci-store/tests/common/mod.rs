//! Helpers shared by the integration tests: temporary directories, a runtime, a snapshot of a
//! directory tree, and (from `oci_store::testing`) deterministic content, image builders and a
//! completeness check.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

#[allow(unused_imports)]
pub use oci_store::testing::{
    Blob, Image, Rng, blob, check_complete, from_manifest, image, multi_platform, push_image,
};

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        Self::new_in(&std::env::temp_dir(), name)
    }
    /// A fresh directory under `base` (another file system than the temporary directory's).
    #[allow(dead_code)]
    pub fn new_in(base: &Path, name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = base.join(format!(
            "oci-store-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One entry of [`tree`]: a file's bytes, a link's target, or a directory; with its modification
/// time (links' own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File(Vec<u8>, SystemTime),
    Link(PathBuf, SystemTime),
    Dir(SystemTime),
    Other(SystemTime),
}

/// Every entry under `dir` (links recorded, never followed), so a test can show that nothing in
/// a directory changed.
pub fn tree(dir: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let name = p.strip_prefix(dir).unwrap().display().to_string();
            let modified = meta.modified().unwrap();
            let entry = if meta.is_dir() {
                stack.push(p);
                Entry::Dir(modified)
            } else if meta.file_type().is_symlink() {
                Entry::Link(std::fs::read_link(&p).unwrap(), modified)
            } else if meta.is_file() {
                Entry::File(std::fs::read(&p).unwrap(), modified)
            } else {
                Entry::Other(modified)
            };
            out.insert(name, entry);
        }
    }
    out
}
