//! The resumable writer of `LayoutStore`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;
use oci_digest::{Verifier, VerifyError};
use oci_manifest::Descriptor;

use super::LayoutStore;
use super::fsutil::{blocking, ioe};
use crate::error::{Result, StoreError};
use crate::traits::{BlobWriter, PushOutcome};

/// Bytes collected before they are hashed and written in one blocking step.
const FLUSH_AT: usize = 4 << 20;

/// Writes to `.oci-rs/ingests/<hash of key>/data`, holding that ingest's lock file.
pub(crate) struct LayoutWriter {
    store: LayoutStore,
    key: String,
    expected: Descriptor,
    dir: PathBuf,
    /// Held (locked) for the writer's life.
    _lock: File,
    /// `None` only while a blocking step owns them (or after a failure).
    io: Option<(File, Verifier)>,
    pending: Vec<Bytes>,
    pending_len: usize,
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

/// A background `fdatasync` of the data written so far is started every this many bytes.
const SYNC_EVERY: u64 = 64 << 20;

/// The hash state is saved beside the data every this many bytes, so a resumed ingest hashes at
/// most this much again.
const CHECKPOINT_EVERY: u64 = 16 << 20;

/// The verifier saved in `dir/state`, advanced to nothing beyond `len` bytes: `None` when there
/// is no usable state (missing, damaged, for other content, or ahead of the data after a power
/// loss).
fn read_checkpoint(dir: &std::path::Path, expected: &Descriptor, len: u64) -> Option<Verifier> {
    let raw = std::fs::read(dir.join("state")).ok()?;
    let digester = oci_digest::Digester::restore(&raw).ok()?;
    if digester.bytes_hashed() > len {
        return None;
    }
    Verifier::resume(expected.digest.clone(), expected.size, digester).ok()
}

/// Saves the hash state (write to a temporary name, rename). Not fsynced: after a power loss
/// the state may be missing or ahead of the data, and is then ignored.
fn write_checkpoint(dir: &std::path::Path, state: &[u8]) -> io::Result<()> {
    let tmp = dir.join("state.tmp");
    std::fs::write(&tmp, state)?;
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
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&data)
            .map_err(ioe("open", &data))?;
        let mut verifier = Verifier::new(expected.digest.clone(), expected.size);
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
        file.seek(io::SeekFrom::End(0))
            .map_err(ioe("seek", &data))?;
        let offset = verifier.received();
        let since_checkpoint = offset;
        Ok(LayoutWriter {
            store,
            key,
            expected,
            dir,
            _lock: lock,
            io: Some((file, verifier)),
            pending: Vec::new(),
            pending_len: 0,
            offset,
            since_checkpoint,
            since_sync: 0,
            syncing: None,
            done: false,
        })
    }

    fn data_path(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Hashes and writes the pending chunks.
    async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let (mut file, mut verifier) = self.io.take().ok_or_else(|| self.broken())?;
        let pending = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        let path = self.data_path();
        let dir = self.dir.clone();
        let batch = pending.iter().map(|c| c.len() as u64).sum::<u64>();
        self.since_checkpoint += batch;
        self.since_sync += batch;
        let checkpoint = self.since_checkpoint >= CHECKPOINT_EVERY;
        if checkpoint {
            self.since_checkpoint = 0;
        }
        // Hashing and writing run side by side (one core each), on the same chunks.
        let for_hash = pending.clone();
        let hashing = blocking(move || {
            let mut res = Ok(());
            for c in &for_hash {
                if let Err(e) = verifier.update(c) {
                    res = Err(StoreError::Verify(e));
                    break;
                }
            }
            Ok((verifier, res))
        });
        let writing = blocking(move || {
            let mut res = Ok(());
            for c in &pending {
                if let Err(e) = file.write_all(c) {
                    res = Err(StoreError::io("write", &path, e));
                    break;
                }
            }
            Ok((file, res))
        });
        let (hashed, written) = futures_util::future::join(hashing, writing).await;
        let ((verifier, hash_res), (file, write_res)) = (hashed?, written?);
        let ok = hash_res.is_ok() && write_res.is_ok();
        if ok && checkpoint {
            // The data is written (in the page cache) before the state that covers it.
            let state = verifier.digester().save_state();
            let saved = blocking(move || {
                write_checkpoint(&dir, &state)
                    .map_err(|e| StoreError::io("save hash state", &dir, e))
            })
            .await;
            if let Err(e) = saved {
                tracing::debug!(error = %e, "saving the hash state failed; a resume will re-hash");
            }
        }
        self.io = Some((file, verifier));
        if ok && self.since_sync >= SYNC_EVERY {
            self.since_sync = 0;
            self.wait_sync().await?;
            if let Some((file, _)) = &self.io {
                let clone = file
                    .try_clone()
                    .map_err(ioe("duplicate handle", &self.data_path()))?;
                self.syncing = Some(tokio::task::spawn_blocking(move || clone.sync_data()));
            }
        }
        hash_res.and(write_res)
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

#[async_trait]
impl BlobWriter for LayoutWriter {
    fn key(&self) -> &str {
        &self.key
    }

    fn expected(&self) -> &Descriptor {
        &self.expected
    }

    fn offset(&self) -> u64 {
        self.offset
    }

    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let end = self.offset + chunk.len() as u64;
        if end > self.expected.size {
            return Err(StoreError::Verify(VerifyError::TooLong {
                expected: self.expected.digest.clone(),
                expected_size: self.expected.size,
                received: end,
            }));
        }
        if chunk.is_empty() {
            return Ok(());
        }
        self.offset = end;
        self.pending_len += chunk.len();
        self.pending.push(chunk);
        if self.pending_len >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<PushOutcome> {
        self.flush().await?;
        self.wait_sync().await?;
        self.done = true;
        let (file, verifier) = self.io.take().ok_or_else(|| self.broken())?;
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
        // most FLUSH_AT bytes; hashing is redone on resume).
        if !self.done
            && !self.pending.is_empty()
            && let Some((file, _)) = self.io.as_mut()
        {
            for c in &self.pending {
                if file.write_all(c).is_err() {
                    break;
                }
            }
        }
    }
}
