//! File system helpers: locks, atomic replacement, directory fsync, blocking tasks.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

/// Runs blocking file system work off the async executor.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::backend("blocking file system task failed", e))?
}

/// Shorthand for `StoreError::io`.
pub(crate) fn ioe<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |e| StoreError::io(op, path, e)
}

/// An advisory lock, released on drop (the file is closed).
#[derive(Debug)]
pub(crate) struct LockGuard {
    _file: File,
}

/// The store-wide lock: shared for commits, pins and lease changes; exclusive for garbage
/// collection and `index.json` rewrites.
///
/// Fair between processes: every taker first passes through `turnstile` exclusively, so a
/// waiting exclusive taker holds the turnstile and new shared takers queue behind it instead of
/// starving it.
pub(crate) fn lock_store(state: &Path, exclusive: bool) -> Result<LockGuard> {
    let turnstile_path = state.join("turnstile.lock");
    let main_path = state.join("store.lock");
    let turnstile = open_lock_file(&turnstile_path)?;
    turnstile.lock().map_err(ioe("lock", &turnstile_path))?;
    let main = open_lock_file(&main_path)?;
    if exclusive {
        main.lock().map_err(ioe("lock", &main_path))?;
    } else {
        main.lock_shared().map_err(ioe("lock", &main_path))?;
    }
    drop(turnstile);
    Ok(LockGuard { _file: main })
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(ioe("open lock file", path))
}

/// Tries to lock `path` exclusively (`shared == false`) or shared; `Ok(None)` when someone else
/// holds it.
pub(crate) fn try_lock(path: &Path, shared: bool) -> Result<Option<File>> {
    let f = open_lock_file(path)?;
    let r = if shared {
        f.try_lock_shared()
    } else {
        f.try_lock()
    };
    match r {
        Ok(()) => Ok(Some(f)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(StoreError::io("lock", path, e)),
    }
}

/// Whether someone holds a lock on `path` (which is not created when missing: then nobody
/// does).
pub(crate) fn lock_held(path: &Path) -> Result<bool> {
    let f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StoreError::io("open lock file", path, e)),
    };
    match f.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(StoreError::io("lock", path, e)),
    }
}

/// Fsyncs a directory (so a rename or unlink in it is durable).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ioe("fsync directory", dir))
}

/// Replaces `dest` atomically with `data`: a temporary file in `tmp_dir` (same file system),
/// fsynced, renamed over `dest`, and the directory of `dest` fsynced.
pub(crate) fn atomic_write(tmp_dir: &Path, dest: &Path, data: &[u8]) -> Result<()> {
    let tmp = tmp_dir.join(crate::lease::new_id("tmp-"));
    let res = (|| {
        let mut f = File::create(&tmp).map_err(ioe("create", &tmp))?;
        f.write_all(data).map_err(ioe("write", &tmp))?;
        f.sync_all().map_err(ioe("fsync", &tmp))?;
        fs::rename(&tmp, dest).map_err(ioe("rename into place", dest))?;
        if let Some(dir) = dest.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Creates a directory and its parents.
pub(crate) fn mkdirs(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(ioe("create directory", dir))
}

/// Removes a file; a file already gone is fine.
pub(crate) fn remove_if_exists(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io("remove", path, e)),
    }
}

/// Removes a directory tree; one already gone is fine.
pub(crate) fn remove_dir_if_exists(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove directory", path, e)),
    }
}

/// Reads a whole file; `None` when it does not exist.
pub(crate) fn read_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("read", path, e)),
    }
}

/// Entries of a directory (names that are valid UTF-8); empty when it does not exist.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("list directory", dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(ioe("list directory", dir))?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, entry.path()));
        }
    }
    Ok(out)
}
