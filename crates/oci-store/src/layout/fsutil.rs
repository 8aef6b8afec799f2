//! File system helpers: locks, atomic replacement, directory fsync, blocking tasks, and the
//! checks that keep a store inside its own tree (invariant 8: never through a link, never on a
//! special file) with every read of a small file bounded (invariant 9).

use std::fs::{self, File, FileType, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
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
    let mut opts = open_options();
    opts.read(true).write(true).create(true).truncate(false);
    open_regular(path, &opts, "open lock file")?.ok_or_else(|| {
        StoreError::io(
            "open lock file",
            path,
            io::Error::from(io::ErrorKind::NotFound),
        )
    })
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
    let mut opts = open_options();
    opts.read(true).write(true);
    let Some(f) = open_regular(path, &opts, "open lock file")? else {
        return Ok(false);
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
        // A new name, created exclusively: never an existing file or a link planted there.
        let mut opts = open_options();
        opts.write(true).create_new(true);
        let mut f = opts.open(&tmp).map_err(ioe("create", &tmp))?;
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

/// Reads a whole regular file of at most `limit` bytes; `None` when it does not exist. The limit
/// is applied while reading (a file that grows, an endless or sparse one, costs at most `limit`
/// bytes of memory); a link or special file is refused ([`open_regular`]).
pub(crate) fn read_limited(path: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
    let mut opts = open_options();
    opts.read(true);
    let Some(f) = open_regular(path, &opts, "open")? else {
        return Ok(None);
    };
    let too_large = || StoreError::FileTooLarge {
        path: path.to_owned(),
        limit,
    };
    let len = f.metadata().map_err(ioe("stat", path))?.len();
    if len > limit {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(ioe("read", path))?;
    if out.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(Some(out))
}

/// Open options that never follow a link in the last component and never block on a FIFO
/// (`O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC` on Unix; `O_NONBLOCK` has no effect on the regular
/// files [`open_regular`] accepts).
pub(crate) fn open_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut opts = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    opts
}

/// Opens `path` with `opts` (made by [`open_options`]) when it is a regular file: `Ok(None)` when
/// it does not exist, [`StoreError::UnsafeEntry`] when it is a link, FIFO, socket, device or
/// directory (checked on the opened file, so nothing changes between check and use).
pub(crate) fn open_regular(
    path: &Path,
    opts: &OpenOptions,
    op: &'static str,
) -> Result<Option<File>> {
    #[cfg(not(unix))]
    if let Ok(m) = fs::symlink_metadata(path)
        && m.file_type().is_symlink()
    {
        return Err(unsafe_entry(path, m.file_type(), "a regular file"));
    }
    let f = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            // O_NOFOLLOW on a link fails with ELOOP (EMLINK on some BSDs): say what it is.
            if let Ok(m) = fs::symlink_metadata(path)
                && !m.file_type().is_file()
            {
                return Err(unsafe_entry(path, m.file_type(), "a regular file"));
            }
            return Err(StoreError::io(op, path, e));
        }
    };
    let ft = f.metadata().map_err(ioe("stat", path))?.file_type();
    if !ft.is_file() {
        return Err(unsafe_entry(path, ft, "a regular file"));
    }
    Ok(Some(f))
}

/// What a file type is, in words.
pub(crate) fn describe(ft: FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_block_device() || ft.is_char_device() {
            return "a device";
        }
    }
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// [`StoreError::UnsafeEntry`] for `path` of type `ft` where `expected` belongs.
pub(crate) fn unsafe_entry(path: &Path, ft: FileType, expected: &'static str) -> StoreError {
    StoreError::UnsafeEntry {
        path: path.to_owned(),
        found: describe(ft),
        expected,
    }
}

/// Checks that every component of `rel` below `root` that exists is a real directory, not a
/// link or anything else, so that what the store does below it stays inside its tree (the root
/// itself is the caller's choice and may be a link). `Ok(false)` when a component is missing.
pub(crate) fn check_dirs(root: &Path, rel: &[&str]) -> Result<bool> {
    let mut p = root.to_owned();
    for c in rel {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(m) => return Err(unsafe_entry(&p, m.file_type(), "a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::io("stat", &p, e)),
        }
    }
    Ok(true)
}

/// Entries of a directory (names that are valid UTF-8) with their own type (links not
/// followed); empty when it does not exist.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf, FileType)>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("list directory", dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(ioe("list directory", dir))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let ft = match entry.file_type() {
            Ok(ft) => ft,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io("stat", entry.path(), e)),
        };
        out.push((name, entry.path(), ft));
    }
    Ok(out)
}
