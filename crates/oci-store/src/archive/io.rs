//! File work for the archive stores: opening an archive (a regular file only, never a FIFO
//! that would block), decompressing a gzip-compressed archive once into an anonymous
//! temporary file under a size limit, positional reads, streams of a member's bytes, and
//! temporary files created exclusively.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::errors::invalid;
use crate::error::{Result, StoreError};
use crate::traits::BlobStream;

/// Bytes read from an archive at a time.
pub(crate) const CHUNK: usize = 1 << 20;

/// Runs blocking file work off the async executor.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::backend("blocking archive task failed", e))?
}

/// Reads exactly `buf.len()` bytes at `offset`.
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            let n = std::os::windows::fs::FileExt::seek_read(
                file,
                &mut buf[done..],
                offset + done as u64,
            )?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            done += n;
        }
        Ok(())
    }
}

/// Writes all of `buf` at `offset`.
pub(crate) fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            let n = std::os::windows::fs::FileExt::seek_write(
                file,
                &buf[done..],
                offset + done as u64,
            )?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero));
            }
            done += n;
        }
        Ok(())
    }
}

/// Opens `path` for reading: it must be a regular file (opened without blocking, so a FIFO
/// planted there is refused rather than waited on).
pub(crate) fn open_regular(path: &Path) -> Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let f = opts
        .open(path)
        .map_err(|e| StoreError::io("open", path, e))?;
    let meta = f.metadata().map_err(|e| StoreError::io("stat", path, e))?;
    if !meta.is_file() {
        return Err(StoreError::UnsafeEntry {
            path: path.to_path_buf(),
            found: if meta.is_dir() {
                "a directory"
            } else {
                "a special file"
            },
            expected: "a regular file (an archive)",
        });
    }
    Ok(f)
}

/// Compression of a file, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

impl Compression {
    /// Tells the compression from the first bytes of a file.
    pub(crate) fn sniff(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            [b'B', b'Z', b'h', ..] => Compression::Bzip2,
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Compression::Xz,
            _ => Compression::None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
        }
    }
}

/// An archive opened for reading: its tar bytes (the file itself, or the decompressed copy of
/// a gzip-compressed archive) and their length.
pub(crate) struct TarFile {
    pub(crate) file: Arc<File>,
    pub(crate) len: u64,
    /// Whether `file` is a decompressed copy.
    pub(crate) decompressed: bool,
}

/// Opens `path`; a gzip-compressed archive is decompressed once into an anonymous file in
/// `temp_dir` (removed from the directory at once, gone when closed), refusing more than
/// `max_decompressed` bytes.
pub(crate) fn open_tar(path: &Path, temp_dir: &Path, max_decompressed: u64) -> Result<TarFile> {
    let file = open_regular(path)?;
    let len = file
        .metadata()
        .map_err(|e| StoreError::io("stat", path, e))?
        .len();
    let mut head = [0u8; 6];
    let n = head.len().min(usize::try_from(len).unwrap_or(usize::MAX));
    read_at(&file, &mut head[..n], 0).map_err(|e| StoreError::io("read", path, e))?;
    match Compression::sniff(&head[..n]) {
        Compression::None => Ok(TarFile {
            file: Arc::new(file),
            len,
            decompressed: false,
        }),
        Compression::Gzip => {
            let (tmp, tmp_path) = create_temp(temp_dir, "oci-rs-archive")?;
            // Anonymous from here on: nothing is left behind, whatever happens.
            #[cfg(unix)]
            let _ = std::fs::remove_file(&tmp_path);
            let result = decompress_into(&file, &tmp, path, &tmp_path, max_decompressed);
            #[cfg(not(unix))]
            let _ = std::fs::remove_file(&tmp_path);
            let len = result?;
            Ok(TarFile {
                file: Arc::new(tmp),
                len,
                decompressed: true,
            })
        }
        other => Err(invalid(
            path,
            "-",
            format!(
                "the archive is {}-compressed; only uncompressed and gzip archives are read \
                 (decompress it first)",
                other.name()
            ),
        )),
    }
}

fn decompress_into(
    src: &File,
    dst: &File,
    path: &Path,
    tmp_path: &Path,
    limit: u64,
) -> Result<u64> {
    let mut dec = flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(CHUNK, src));
    let mut out = io::BufWriter::with_capacity(CHUNK, dst);
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match dec.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(invalid(
                    path,
                    "-",
                    format!("the gzip stream is corrupt or truncated: {e}"),
                ));
            }
        };
        total += n as u64;
        if total > limit {
            return Err(invalid(
                path,
                "-",
                format!(
                    "decompresses to more than the limit of {limit} bytes \
                     (ArchiveOptions::max_decompressed)"
                ),
            ));
        }
        out.write_all(&buf[..n])
            .map_err(|e| StoreError::io("write", tmp_path, e))?;
    }
    out.flush()
        .map_err(|e| StoreError::io("write", tmp_path, e))?;
    Ok(total)
}

/// Creates a new file named `<prefix>-<random>` in `dir`, exclusively (never an existing file
/// or a link planted there).
pub(crate) fn create_temp(dir: &Path, prefix: &str) -> Result<(File, PathBuf)> {
    for _ in 0..16 {
        let p = dir.join(format!("{prefix}-{}", crate::lease::new_id("")));
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create_new(true);
        match opts.open(&p) {
            Ok(f) => return Ok((f, p)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(StoreError::io("create", &p, e)),
        }
    }
    Err(StoreError::io(
        "create",
        dir,
        io::Error::from(io::ErrorKind::AlreadyExists),
    ))
}

/// Streams `len` bytes of `file` from `offset`, in chunks read off the executor.
pub(crate) fn stream(file: Arc<File>, offset: u64, len: u64) -> BlobStream {
    Box::pin(futures_util::stream::try_unfold(
        (file, offset, len),
        |(file, offset, remaining)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = usize::try_from(remaining).unwrap_or(CHUNK).min(CHUNK);
            let f = Arc::clone(&file);
            let chunk = tokio::task::spawn_blocking(move || -> io::Result<Bytes> {
                let mut buf = BytesMut::zeroed(want);
                read_at(&f, &mut buf, offset)?;
                Ok(buf.freeze())
            })
            .await
            .map_err(io::Error::other)??;
            let n = chunk.len() as u64;
            Ok(Some((chunk, (file, offset + n, remaining - n))))
        },
    ))
}
