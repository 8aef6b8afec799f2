//! The resumable writer of `LayoutStore`.
//!
//! Received bytes are copied into one buffer per writer and, when it is full, hashed and written
//! side by side. On Linux the block-aligned part of each batch is written with `O_DIRECT` where
//! the file system allows it: the data skips the page cache, so the fsync before the blob becomes
//! visible has nothing left to write back, and a pull does not spend its CPU on page-cache
//! bookkeeping (see BENCHMARKS.md). What is not block-aligned (the first bytes after a resume at an
//! odd offset, the last bytes of the blob) goes through the page cache, as does everything on a
//! file system that refuses `O_DIRECT` (tmpfs before Linux 6.6, some FUSE file systems).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use oci_digest::{Verifier, VerifyError};
use oci_manifest::Descriptor;

use super::LayoutStore;
use super::fsutil::{blocking, ioe, open_options, open_regular, read_limited};
use crate::error::{Result, StoreError};
use crate::traits::{BlobWriter, PushOutcome};

/// Bytes collected before they are hashed and written in one blocking step.
const FLUSH_AT: usize = 4 << 20;

/// Alignment of `O_DIRECT` writes (file offset, length and memory address): 4096 satisfies the
/// logical block size of every common device and file system.
const ALIGN: usize = 4096;

/// Writes to `.oci-rs/ingests/<hash of key>/data`, holding that ingest's lock file.
pub(crate) struct LayoutWriter {
    store: LayoutStore,
    key: String,
    expected: Descriptor,
    dir: PathBuf,
    /// Held (locked) for the writer's life, and by a blocking write still running after the
    /// writer was dropped mid-flush (a cancelled `write`), so no other writer opens the ingest
    /// while this one's bytes are still landing.
    lock: Arc<File>,
    /// `None` only while a blocking step owns it (or after a failure).
    io: Option<Io>,
    /// Bytes accepted: on disk plus buffered.
    offset: u64,
    /// Bytes hashed since the hash state was last saved.
    since_checkpoint: u64,
    /// Bytes written since the last background flush to disk was started.
    since_sync: u64,
    /// A flush to disk running in the background while more data arrives, so that the fsync
    /// at commit has little left to do.
    syncing: Option<tokio::task::JoinHandle<io::Result<()>>>,
    done: bool,
}

/// What a blocking step takes and gives back.
struct Io {
    /// The data file, through the page cache.
    file: File,
    /// The same file opened with `O_DIRECT`, when the platform and file system allow it.
    direct: Option<File>,
    verifier: Verifier,
    buf: Buffer,
    /// Bytes on disk (and hashed): the file offset of the buffer's first byte.
    written: u64,
}

/// Received bytes not yet on disk, placed so that a byte's memory address and its file offset
/// are equal modulo [`ALIGN`]: every block-aligned range of the file is then a block-aligned
/// slice of memory, as `O_DIRECT` requires, without copying again.
struct Buffer {
    mem: Vec<u8>,
    /// Index in `mem` of the first [`ALIGN`]-aligned address.
    base: usize,
    /// The buffered bytes are `mem[base + start .. base + end]`.
    start: usize,
    end: usize,
    /// Largest `end`.
    limit: usize,
}

impl Buffer {
    /// A buffer for bytes starting at file offset `at`, sized for a blob of `size` bytes (small
    /// blobs do not get a whole batch of memory).
    fn new(at: u64, size: u64) -> Buffer {
        Self::with_capacity(at, size, FLUSH_AT)
    }

    /// As [`Buffer::new`], holding at most `capacity` bytes.
    fn with_capacity(at: u64, size: u64, capacity: usize) -> Buffer {
        // At least a block: what a flush leaves behind is less than a block, so a full buffer
        // always has room again after a flush.
        let capacity = capacity.max(ALIGN);
        let room = usize::try_from(size.saturating_sub(at)).map_or(capacity, |r| r.min(capacity));
        let mut mem = vec![0u8; room + 2 * ALIGN];
        let base = (ALIGN - mem.as_mut_ptr() as usize % ALIGN) % ALIGN;
        let start = (at % ALIGN as u64) as usize;
        Buffer {
            mem,
            base,
            start,
            end: start,
            limit: start + room,
        }
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn is_full(&self) -> bool {
        self.end >= self.limit
    }

    fn data(&self) -> &[u8] {
        &self.mem[self.base + self.start..self.base + self.end]
    }

    /// Copies as much of `bytes` as fits; returns how much.
    fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.limit - self.end);
        let at = self.base + self.end;
        self.mem[at..at + n].copy_from_slice(&bytes[..n]);
        self.end += n;
        n
    }

    /// Drops the first `n` buffered bytes (now on disk), moving what is left to the front of
    /// its block.
    fn consume(&mut self, n: usize) {
        let first = self.start + n;
        let keep = first / ALIGN * ALIGN;
        self.mem.copy_within(
            self.base + first..self.base + self.end,
            self.base + first - keep,
        );
        self.start = first - keep;
        self.end -= keep;
    }
}

/// Splits `len` buffered bytes at file offset `at` into what to write now: `(head, blocks,
/// tail)`, with `head` bytes up to the next block boundary through the page cache, then `blocks`
/// bytes of whole blocks with `O_DIRECT`, then `tail` bytes through the page cache. Without
/// `all`, an unaligned tail stays buffered for the next batch (tail is 0).
fn plan(at: u64, len: usize, direct: bool, all: bool) -> (usize, usize, usize) {
    if !direct {
        return (len, 0, 0);
    }
    let head = (ALIGN - (at % ALIGN as u64) as usize) % ALIGN;
    if len <= head {
        return (len, 0, 0);
    }
    let blocks = (len - head) / ALIGN * ALIGN;
    let tail = if all { len - head - blocks } else { 0 };
    (head, blocks, tail)
}

/// Writes all of `bytes` at file offset `at` (seek, then write: portable, and each handle keeps
/// its own position).
fn write_all_at(mut file: &File, bytes: &[u8], at: u64) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    file.seek(io::SeekFrom::Start(at))?;
    file.write_all(bytes)
}

/// Opens `path` for `O_DIRECT` writes; `None` where the platform or file system has no direct
/// I/O (tmpfs before Linux 6.6 refuses the flag), and the page cache is used instead.
fn open_direct(path: &std::path::Path) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "no direct I/O here; writing through the page cache");
                None
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}

/// Largest saved hash state read (a few hundred bytes in practice).
const STATE_LIMIT: u64 = 64 << 10;

/// A background `fdatasync` of the data written so far is started every this many bytes.
const SYNC_EVERY: u64 = 64 << 20;

/// The hash state is saved beside the data every this many bytes, so a resumed ingest hashes at
/// most this much again.
pub(super) const CHECKPOINT_EVERY: u64 = 16 << 20;

/// The verifier saved in `dir/state`, advanced to nothing beyond `len` bytes: `None` when there
/// is no usable state (missing, damaged, for other content, or ahead of the data after a power
/// loss).
pub(super) fn read_checkpoint(
    dir: &std::path::Path,
    expected: &Descriptor,
    len: u64,
) -> Option<Verifier> {
    let raw = read_limited(&dir.join("state"), STATE_LIMIT).ok()??;
    let digester = oci_digest::Digester::restore(&raw).ok()?;
    if digester.bytes_hashed() > len {
        return None;
    }
    Verifier::resume(expected.digest.clone(), expected.size, digester).ok()
}

/// Saves the hash state of `digester` in `dir` (see [`write_checkpoint`]); a failure is only
/// logged: a resume then hashes again.
pub(super) async fn save_checkpoint(dir: PathBuf, digester: &oci_digest::Digester) {
    let state = digester.save_state();
    let saved = blocking(move || {
        write_checkpoint(&dir, &state).map_err(|e| StoreError::io("save hash state", &dir, e))
    })
    .await;
    if let Err(e) = saved {
        tracing::debug!(error = %e, "saving the hash state failed; a resume will re-hash");
    }
}

/// Saves the hash state (write to a temporary name, rename). Not fsynced: after a power loss
/// the state may be missing or ahead of the data, and is then ignored.
pub(super) fn write_checkpoint(dir: &std::path::Path, state: &[u8]) -> io::Result<()> {
    let tmp = dir.join("state.tmp");
    // Never written through a link or into a FIFO planted under that name.
    let _ = std::fs::remove_file(&tmp);
    let mut opts = open_options();
    opts.write(true).create_new(true);
    opts.open(&tmp)?.write_all(state)?;
    std::fs::rename(&tmp, dir.join("state"))
}

impl LayoutWriter {
    /// Opens the ingest's data file and restores the hash state by re-reading what is there.
    /// Called in a blocking context, with the ingest lock held.
    pub(crate) fn open(
        store: LayoutStore,
        key: String,
        expected: Descriptor,
        dir: PathBuf,
        lock: File,
    ) -> Result<LayoutWriter> {
        let data = dir.join("data");
        let mut opts = open_options();
        opts.read(true).write(true).create(true).truncate(false);
        let mut file = open_regular(&data, &opts, "open")?
            .ok_or_else(|| StoreError::io("open", &data, io::ErrorKind::NotFound.into()))?;
        let mut verifier = Verifier::new(expected.digest.clone(), expected.size);
        // An ingest written in pieces (by a piece writer) continues in order from its held
        // prefix: what lies past it is dropped (first, so that a crash before the record goes
        // leaves a record whose pieces past the file's end are not believed).
        if let Some(prefix) = super::pieces::recorded_prefix(&dir, expected.size)? {
            file.set_len(prefix).map_err(ioe("truncate", &data))?;
            file.sync_data().map_err(ioe("fsync", &data))?;
            super::fsutil::remove_if_exists(&dir.join(super::pieces::RECORD))?;
        }
        let len = file.metadata().map_err(ioe("stat", &data))?.len();
        if len > expected.size {
            // Cannot be this content: start again.
            file.set_len(0).map_err(ioe("truncate", &data))?;
        } else {
            // Continue from the last saved hash state when it covers a prefix of the file;
            // otherwise hash the file from the start.
            if let Some(v) = read_checkpoint(&dir, &expected, len) {
                verifier = v;
                file.seek(io::SeekFrom::Start(verifier.received()))
                    .map_err(ioe("seek", &data))?;
            }
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf).map_err(ioe("read", &data))?;
                if n == 0 {
                    break;
                }
                verifier.update(&buf[..n])?;
            }
        }
        let offset = verifier.received();
        let direct = if store.direct_io() {
            open_direct(&data)
        } else {
            None
        };
        if direct.is_some() && offset > 0 {
            // Bytes kept from an earlier writer may still be only in the page cache. A direct
            // write extends the file's size on disk at once: after a power loss the size (and a
            // saved hash state) could then cover bytes that never reached the disk.
            file.sync_data().map_err(ioe("fsync", &data))?;
        }
        let io = Io {
            file,
            direct,
            verifier,
            buf: Buffer::new(offset, expected.size),
            written: offset,
        };
        Ok(LayoutWriter {
            store,
            key,
            expected,
            dir,
            lock: Arc::new(lock),
            io: Some(io),
            offset,
            since_checkpoint: offset,
            since_sync: 0,
            syncing: None,
            done: false,
        })
    }

    fn data_path(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Hashes and writes the buffered bytes: all of them with `all`, otherwise all but an
    /// unaligned tail of less than a block. After a failure the writer is unusable (a new writer
    /// for the same key resumes from what reached the file).
    async fn flush(&mut self, all: bool) -> Result<()> {
        let Io {
            file,
            mut direct,
            verifier,
            buf,
            written,
        } = self.io.take().ok_or_else(|| self.broken())?;
        let len = buf.len();
        // Less than a block buffered: write it all, so a full buffer always makes room.
        let (head, blocks, tail) = plan(written, len, direct.is_some(), all || len < ALIGN);
        let n = head + blocks + tail;
        if n == 0 {
            self.io = Some(Io {
                file,
                direct,
                verifier,
                buf,
                written,
            });
            return Ok(());
        }
        let path = self.data_path();
        let dir = self.dir.clone();
        self.since_checkpoint += n as u64;
        self.since_sync += n as u64;
        let checkpoint = self.since_checkpoint >= CHECKPOINT_EVERY;
        if checkpoint {
            self.since_checkpoint = 0;
        }
        // Hashing and writing run side by side (one core each), on the same bytes.
        let buf = Arc::new(buf);
        let for_hash = Arc::clone(&buf);
        let mut verifier = verifier;
        let hashing = blocking(move || {
            let res = verifier
                .update(&for_hash.data()[..n])
                .map_err(StoreError::Verify);
            drop(for_hash);
            Ok((verifier, res))
        });
        let for_write = Arc::clone(&buf);
        let held = Arc::clone(&self.lock);
        let writing = blocking(move || {
            let _held = held;
            let res = write_batch(
                &file,
                &mut direct,
                &for_write.data()[..n],
                written,
                (head, blocks),
                &path,
            );
            drop(for_write);
            Ok((file, direct, res))
        });
        let (hashed, wrote) = futures_util::future::join(hashing, writing).await;
        let ((verifier, hash_res), (file, direct, write_res)) = (hashed?, wrote?);
        hash_res?;
        write_res?;
        let mut buf = Arc::into_inner(buf).ok_or_else(|| self.broken())?;
        buf.consume(n);
        if checkpoint {
            // The data is written before the state that covers it.
            save_checkpoint(dir, verifier.digester()).await;
        }
        self.io = Some(Io {
            file,
            direct,
            verifier,
            buf,
            written: written + n as u64,
        });
        if self.since_sync >= SYNC_EVERY {
            self.since_sync = 0;
            self.wait_sync().await?;
            if let Some(io) = &self.io {
                let clone = io
                    .file
                    .try_clone()
                    .map_err(ioe("duplicate handle", &self.data_path()))?;
                self.syncing = Some(tokio::task::spawn_blocking(move || clone.sync_data()));
            }
        }
        Ok(())
    }

    /// Waits for the background flush to disk, reporting its failure (an fsync error must not
    /// be lost: the kernel may report it only once).
    async fn wait_sync(&mut self) -> Result<()> {
        if let Some(h) = self.syncing.take() {
            h.await
                .map_err(|e| StoreError::backend("background fsync task failed", e))?
                .map_err(ioe("fsync", &self.data_path()))?;
        }
        Ok(())
    }

    fn broken(&self) -> StoreError {
        StoreError::io(
            "write",
            self.data_path(),
            io::Error::other("the writer failed earlier; open it again to resume"),
        )
    }
}

/// Writes `data` at file offset `at`: `head` bytes through the page cache, then `blocks` bytes
/// with `O_DIRECT`, then the rest through the page cache. A file system that refuses a direct
/// write (`EINVAL`: an alignment it does not accept) gets it through the page cache instead, and
/// no more direct writes from this writer. A head is fsynced before the blocks after it are
/// written direct, so the file's size on disk never covers bytes still only in the page cache.
fn write_batch(
    file: &File,
    direct: &mut Option<File>,
    data: &[u8],
    at: u64,
    (head, blocks): (usize, usize),
    path: &std::path::Path,
) -> Result<()> {
    let put = |f: &File, from: usize, to: usize| {
        write_all_at(f, &data[from..to], at + from as u64).map_err(ioe("write", path))
    };
    put(file, 0, head)?;
    if head > 0 && blocks > 0 && direct.is_some() {
        file.sync_data().map_err(ioe("fsync", path))?;
    }
    if blocks > 0 {
        let via_cache = match direct {
            Some(d) => match write_all_at(d, &data[head..head + blocks], at + head as u64) {
                Ok(()) => false,
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    tracing::debug!(path = %path.display(), error = %e, "direct write refused; writing through the page cache");
                    *direct = None;
                    true
                }
                Err(e) => return Err(StoreError::io("write", path, e)),
            },
            None => true,
        };
        if via_cache {
            put(file, head, head + blocks)?;
        }
    }
    put(file, head + blocks, data.len())
}

#[async_trait]
impl BlobWriter for LayoutWriter {
    crate::traits::writer_accessors!();

    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let end = self.offset + chunk.len() as u64;
        if end > self.expected.size {
            return Err(StoreError::Verify(VerifyError::TooLong {
                expected: self.expected.digest.clone(),
                expected_size: self.expected.size,
                received: end,
            }));
        }
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            let Some(io) = self.io.as_mut() else {
                return Err(self.broken());
            };
            let n = io.buf.push(rest);
            rest = &rest[n..];
            self.offset += n as u64;
            if io.buf.is_full() {
                self.flush(false).await?;
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<PushOutcome> {
        self.flush(true).await?;
        self.wait_sync().await?;
        self.done = true;
        let Io { file, verifier, .. } = self.io.take().ok_or_else(|| self.broken())?;
        let store = self.store.clone();
        let dir = self.dir.clone();
        let digest = self.expected.digest.clone();
        let data = self.data_path();
        // The ingest lock stays held (self lives) until the blocking step is done.
        let res = blocking(move || {
            let checked = file
                .sync_all()
                .map_err(ioe("fsync", &data))
                .and_then(|()| verifier.finish().map_err(StoreError::Verify));
            drop(file);
            // Verified and renamed, or failed: either way the ingest is over.
            match checked {
                Ok(_) => store.commit_file(&data, &digest, &dir),
                Err(e) => {
                    store.remove_ingest(&dir)?;
                    Err(e)
                }
            }
        })
        .await;
        drop(self);
        res
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.done = true;
        self.io = None;
        let dir = self.dir.clone();
        let store = self.store.clone();
        let res = blocking(move || store.remove_ingest(&dir)).await;
        drop(self);
        res
    }
}

impl Drop for LayoutWriter {
    fn drop(&mut self) {
        // Keep what was received so a later writer resumes from it (a short blocking write of at
        // most FLUSH_AT bytes, through the page cache; hashing is redone on resume).
        if !self.done
            && let Some(io) = self.io.as_ref()
            && io.buf.len() > 0
        {
            let _ = write_all_at(&io.file, io.buf.data(), io.written);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_splits_at_block_boundaries() {
        // Through the page cache only.
        assert_eq!(plan(10, 9000, false, false), (9000, 0, 0));
        // Aligned start: whole blocks direct, the tail waits unless it is the end.
        assert_eq!(plan(0, 9000, true, false), (0, 8192, 0));
        assert_eq!(plan(0, 9000, true, true), (0, 8192, 808));
        // Odd start: up to the boundary through the cache first.
        assert_eq!(plan(100, 9000, true, false), (3996, 4096, 0));
        assert_eq!(plan(100, 9000, true, true), (3996, 4096, 908));
        // Not reaching the boundary: all through the cache.
        assert_eq!(plan(100, 50, true, false), (50, 0, 0));
        assert_eq!(plan(0, 50, true, true), (0, 0, 50));
    }

    #[test]
    fn buffer_keeps_addresses_congruent_to_file_offsets() {
        for at in [0u64, 1, 4095, 4096, 123_456_789] {
            let mut b = Buffer::new(at, at + 3 * FLUSH_AT as u64);
            let bytes: Vec<u8> = (0..FLUSH_AT + 10).map(|i| i as u8).collect();
            let n = b.push(&bytes);
            assert!(b.is_full());
            assert_eq!(n, b.len());
            assert_eq!(b.data(), &bytes[..n]);
            assert_eq!(b.data().as_ptr() as u64 % ALIGN as u64, at % ALIGN as u64);
            let (head, blocks, _) = plan(at, b.len(), true, false);
            b.consume(head + blocks);
            let pos = at + (head + blocks) as u64;
            assert_eq!(b.data(), &bytes[head + blocks..n]);
            assert_eq!(b.data().as_ptr() as u64 % ALIGN as u64, pos % ALIGN as u64);
            assert!(!b.is_full());
        }
        // A small blob gets a small buffer.
        assert!(Buffer::new(0, 10).mem.len() <= 10 + 2 * ALIGN);
        // A capacity below a block is raised to one: after a flush there is room again.
        let mut b = Buffer::with_capacity(0, 100_000, 10);
        assert_eq!(b.push(&[7; 5000]), ALIGN);
        assert!(b.is_full());
        b.consume(ALIGN);
        assert!(!b.is_full());
    }

    /// A direct write the file system refuses (here: a length that is not a whole number of
    /// blocks, which every block file system rejects with `EINVAL`) lands through the page
    /// cache, and the writer stops trying.
    #[test]
    fn refused_direct_write_falls_back_to_the_page_cache() {
        // Beside the test binary: on the build's disk, not a tmpfs.
        let dir = std::env::current_exe()
            .unwrap()
            .parent()
            .unwrap()
            .join(format!("oci-store-direct-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("data");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let mut direct = open_direct(&path);
        assert!(
            direct.is_some(),
            "O_DIRECT refused at open under {}",
            dir.display()
        );
        let mut buf = Buffer::new(0, 1 << 20);
        let bytes: Vec<u8> = (0..2 * ALIGN + 1).map(|i| (i % 253) as u8).collect();
        buf.push(&bytes);
        let data = buf.data();
        // Aligned in memory and in the file, but one byte more than two blocks.
        write_batch(&file, &mut direct, data, 0, (0, data.len()), &path).unwrap();
        assert!(
            direct.is_none(),
            "the file system under {} took a misaligned O_DIRECT write",
            dir.display()
        );
        assert_eq!(std::fs::read(&path).unwrap(), data);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The writer's bookkeeping, without the file system: pieces of any size pushed into the
        /// buffer and flushed as `write` and `commit` do (a forced flush when full, all at the
        /// end) put every byte at its offset exactly once, and every direct range is
        /// block-aligned in the file and in memory and a whole number of blocks.
        #[test]
        fn buffered_pieces_land_once_and_direct_ranges_are_aligned(
            start in 0u64..20_000,
            pieces in proptest::collection::vec(1usize..120_000, 1..24),
            capacity in 1usize..200_000, // below a block too: raised to one
            direct in any::<bool>(),
        ) {
            let total: usize = pieces.iter().sum();
            let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
            let mut file = vec![None::<u8>; start as usize + total];
            let mut buf = Buffer::with_capacity(start, start + total as u64, capacity);
            let mut written = start;
            let mut flush = |buf: &mut Buffer, written: &mut u64, all: bool| {
                let len = buf.len();
                let (head, blocks, tail) = plan(*written, len, direct, all || len < ALIGN);
                let n = head + blocks + tail;
                if blocks > 0 {
                    let at = *written + head as u64;
                    prop_assert_eq!(at % ALIGN as u64, 0);
                    prop_assert_eq!(blocks % ALIGN, 0);
                    prop_assert_eq!(buf.data()[head..].as_ptr() as usize % ALIGN, 0);
                }
                for (i, b) in buf.data()[..n].iter().enumerate() {
                    let slot = &mut file[*written as usize + i];
                    prop_assert!(slot.is_none(), "byte written twice");
                    *slot = Some(*b);
                }
                buf.consume(n);
                *written += n as u64;
                Ok(())
            };
            let mut at = 0;
            for p in pieces {
                let mut rest = &data[at..at + p];
                while !rest.is_empty() {
                    let n = buf.push(rest);
                    rest = &rest[n..];
                    if buf.is_full() {
                        flush(&mut buf, &mut written, false)?;
                        prop_assert!(!buf.is_full() || rest.is_empty());
                    }
                }
                at += p;
            }
            flush(&mut buf, &mut written, true)?;
            prop_assert_eq!(buf.len(), 0);
            prop_assert_eq!(written, start + total as u64);
            let got: Vec<u8> = file[start as usize..].iter().map(|b| b.unwrap_or(0)).collect();
            prop_assert!(file[start as usize..].iter().all(Option::is_some));
            prop_assert_eq!(got, data);
        }
    }
}
