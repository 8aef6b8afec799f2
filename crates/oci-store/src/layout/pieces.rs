//! The piece writer of `LayoutStore`: pieces written at their offsets in the ingest's `data`
//! file, in any order, the pieces held recorded in `pieces.json` beside it, and the whole digest
//! computed by hashing the contiguous prefix of held pieces (read back from the file, so the
//! blob is never in memory) as it grows.
//!
//! `pieces.json` (`{"pieceLength":N,"size":S,"held":"<hex bitmap>"}`, piece `i` in bit `i % 8`
//! of byte `i / 8`) is written when the writer opens, before any piece, so an ingest with a
//! record is known to be written in pieces (its file may have holes); an ingest without one was
//! written in order (its file is a prefix of the content).
//!
//! Pieces are recorded in batches: once [`RECORD_EVERY_PIECES`] pieces or
//! [`RECORD_EVERY_BYTES`] bytes were completed since the last record, and when the writer is
//! dropped, one `fdatasync` of the data file makes every completed piece durable, and then the
//! record is rewritten to claim them. A piece is therefore recorded only after its bytes were
//! flushed to disk; the record itself is replaced by a rename and not flushed, so after a crash
//! or a power loss it may be older than the data (the pieces completed since the last record
//! are fetched again), never newer. The hash state saved for a resume (`state`) covers only
//! recorded pieces, for the same reason.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use oci_digest::{Algorithm, Digest, PieceLayout, Verified, Verifier, VerifyError};
use oci_manifest::Descriptor;
use serde::{Deserialize, Serialize};

use super::LayoutStore;
use super::fsutil::{blocking, ioe, open_options, open_regular, read_limited, remove_if_exists};
use super::writer::{CHECKPOINT_EVERY, read_checkpoint, save_checkpoint, write_checkpoint};
use crate::error::{Result, StoreError};
use crate::fetch::PieceSet;
use crate::traits::{PieceRefused, PieceWriter, PushOutcome};

/// Name of the record of held pieces in an ingest directory.
pub(super) const RECORD: &str = "pieces.json";

/// Largest record read (a bitmap of `PieceLayout::MAX_PIECES` pieces is 64 KiB of hex).
const RECORD_LIMIT: u64 = 256 << 10;

/// Read size when hashing pieces back from the file.
const READ_CHUNK: usize = 1 << 20;

/// Completed pieces are recorded (one `fdatasync`, one record rewrite) once this many are
/// waiting, ...
pub(crate) const RECORD_EVERY_PIECES: usize = 16;

/// ... or once they hold this many bytes.
pub(crate) const RECORD_EVERY_BYTES: u64 = 16 << 20;

/// The record of held pieces, `pieces.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Record {
    piece_length: u64,
    size: u64,
    held: String,
}

/// What an ingest's `pieces.json` says.
pub(super) enum Recorded {
    /// No record: the ingest was written in order (or not at all).
    None,
    /// A record that cannot be read, or not for content of this size.
    Damaged,
    /// The byte ranges held.
    Held(Vec<std::ops::Range<u64>>),
}

/// Reads `pieces.json` in `dir`, for content of `size` bytes.
pub(super) fn read_record(dir: &Path, size: u64) -> Result<Recorded> {
    let raw = match read_limited(&dir.join(RECORD), RECORD_LIMIT) {
        Ok(Some(raw)) => raw,
        Ok(None) => return Ok(Recorded::None),
        Err(StoreError::FileTooLarge { .. }) => return Ok(Recorded::Damaged),
        Err(e) => return Err(e),
    };
    let held = serde_json::from_slice::<Record>(&raw).ok().and_then(|r| {
        if r.size != size {
            return None;
        }
        let layout = PieceLayout::new(r.size, r.piece_length).ok()?;
        let set = PieceSet::from_hex(layout.count(), &r.held)?;
        Some(set.ranges(&layout))
    });
    Ok(held.map_or(Recorded::Damaged, Recorded::Held))
}

/// Bytes of the contiguous held prefix in `pieces.json` of `dir` (an ingest's offset), or
/// `None` when the ingest has no record. A damaged record holds nothing.
pub(super) fn recorded_prefix(dir: &Path, size: u64) -> Result<Option<u64>> {
    Ok(match read_record(dir, size)? {
        Recorded::None => None,
        Recorded::Damaged => Some(0),
        Recorded::Held(ranges) => {
            Some(ranges.first().filter(|r| r.start == 0).map_or(0, |r| r.end))
        }
    })
}

/// Replaces `pieces.json` (a temporary file renamed over it; not fsynced, see the module).
fn write_record(dir: &Path, layout: &PieceLayout, held: &PieceSet) -> Result<()> {
    let rec = Record {
        piece_length: layout.piece_length(),
        size: layout.size(),
        held: held.to_hex(),
    };
    let raw =
        serde_json::to_vec(&rec).map_err(|e| StoreError::backend("serialize piece record", e))?;
    let tmp = dir.join("pieces.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = open_options();
    opts.write(true).create_new(true);
    let res = (|| {
        use std::io::Write;
        opts.open(&tmp)?.write_all(&raw)?;
        std::fs::rename(&tmp, dir.join(RECORD))
    })();
    res.map_err(ioe("write piece record", &dir.join(RECORD)))
}

/// Writes all of `buf` at `offset` (positioned: concurrent writes to other offsets are fine).
fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let (mut buf, mut offset) = (buf, offset);
        while !buf.is_empty() {
            match std::os::windows::fs::FileExt::seek_write(file, buf, offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Reads exactly `buf.len()` bytes at `offset`.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let (mut buf, mut offset) = (buf, offset);
        while !buf.is_empty() {
            match std::os::windows::fs::FileExt::seek_read(file, buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Feeds bytes `range` of `file` to `f`, in chunks.
fn read_range(
    file: &File,
    range: std::ops::Range<u64>,
    path: &Path,
    mut f: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut buf = vec![
        0u8;
        usize::try_from(range.end - range.start)
            .map_or(READ_CHUNK, |n| n.min(READ_CHUNK))
    ];
    let mut at = range.start;
    while at < range.end {
        let n = usize::try_from(range.end - at).map_or(buf.len(), |r| r.min(buf.len()));
        read_at(file, &mut buf[..n], at).map_err(ioe("read", path))?;
        f(&buf[..n])?;
        at += n as u64;
    }
    Ok(())
}

/// Writes pieces into `.oci-rs/ingests/<hash of key>/data`, holding that ingest's lock.
pub(crate) struct LayoutPieceWriter {
    shared: Arc<Shared>,
}

struct Shared {
    store: LayoutStore,
    key: String,
    expected: Descriptor,
    layout: PieceLayout,
    dir: PathBuf,
    data: PathBuf,
    /// The ingest lock, held for the writer's life and by every blocking step still running.
    lock: Arc<File>,
    file: File,
    state: Mutex<State>,
    /// Held while completed pieces are made durable and recorded (and while a piece is
    /// discarded): one record at a time.
    recording: Mutex<()>,
    /// The hash of the contiguous prefix of held pieces; one holder at a time.
    prefix: tokio::sync::Mutex<Prefix>,
}

struct State {
    /// Pieces written whole (the hashed prefix follows these).
    held: PieceSet,
    /// Of those, the ones flushed to disk and claimed by the record.
    recorded: PieceSet,
    /// Held pieces not recorded yet, and their bytes.
    unrecorded: Vec<u64>,
    unrecorded_bytes: u64,
    /// Pieces being written: bytes written from the piece's start.
    progress: HashMap<u64, u64>,
    /// Committed or aborted.
    done: bool,
}

struct Prefix {
    /// Hashed `verifier.received()` bytes from the start.
    verifier: Verifier,
    /// Hash states at some piece boundaries (always 0), to go back to when a piece below the
    /// hashed prefix is discarded.
    marks: BTreeMap<u64, Verifier>,
    /// Keep a mark every this many pieces (at most about 256 marks).
    stride: u64,
    since_checkpoint: u64,
    /// The offset of the hash state last saved (`state`).
    saved: u64,
}

impl LayoutPieceWriter {
    /// Opens the ingest `dir` for pieces (in a blocking context, with the ingest lock held).
    pub(super) fn open(
        store: LayoutStore,
        key: String,
        expected: Descriptor,
        layout: PieceLayout,
        dir: PathBuf,
        lock: File,
    ) -> Result<LayoutPieceWriter> {
        if layout.size() != expected.size {
            return Err(
                PieceRefused::new(&key, 0, "the piece layout is for another size").into_error(),
            );
        }
        let data = dir.join("data");
        let mut opts = open_options();
        opts.read(true).write(true).create(true).truncate(false);
        let file = open_regular(&data, &opts, "open")?
            .ok_or_else(|| StoreError::io("open", &data, io::ErrorKind::NotFound.into()))?;
        let mut len = file.metadata().map_err(ioe("stat", &data))?.len();
        if len > expected.size {
            // Past the end can only be garbage.
            file.set_len(expected.size)
                .map_err(ioe("truncate", &data))?;
            len = expected.size;
        }
        let held = match read_record(&dir, expected.size)? {
            // Written in pieces: what the record holds, where the file has the bytes.
            Recorded::Held(ranges) => {
                let mut set = PieceSet::from_ranges(&layout, &ranges);
                for i in set.clone().iter() {
                    if layout.range(i).is_some_and(|r| r.end > len) {
                        set.remove(i);
                    }
                }
                set
            }
            // A record that cannot be read: nothing in the file can be placed.
            Recorded::Damaged => {
                tracing::debug!(dir = %dir.display(), "piece record unreadable; starting the ingest again");
                file.set_len(0).map_err(ioe("truncate", &data))?;
                PieceSet::new(layout.count())
            }
            // Written in order: the file is a prefix of the content.
            Recorded::None => PieceSet::from_ranges(&layout, std::slice::from_ref(&(0..len))),
        };
        write_record(&dir, &layout, &held)?;
        let prefix_end = held.prefix_bytes(&layout);
        let fresh = Verifier::new(expected.digest.clone(), expected.size);
        let mut marks = BTreeMap::new();
        marks.insert(0, fresh.clone());
        let verifier = match read_checkpoint(&dir, &expected, prefix_end) {
            Some(v) => {
                marks.insert(v.received(), v.clone());
                v
            }
            None => fresh,
        };
        let stride = (layout.count() / 256).max(1);
        tracing::debug!(
            key,
            held = held.len(),
            pieces = layout.count(),
            "piece writer open"
        );
        Ok(LayoutPieceWriter {
            shared: Arc::new(Shared {
                store,
                key,
                expected,
                layout,
                dir,
                data,
                lock: Arc::new(lock),
                file,
                state: Mutex::new(State {
                    recorded: held.clone(),
                    held,
                    unrecorded: Vec::new(),
                    unrecorded_bytes: 0,
                    progress: HashMap::new(),
                    done: false,
                }),
                prefix: tokio::sync::Mutex::new(Prefix {
                    verifier,
                    marks,
                    stride,
                    since_checkpoint: 0,
                    saved: 0,
                }),
                recording: Mutex::new(()),
            }),
        })
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every change under the lock is one assignment: a panic cannot leave it half done.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refuse(&self, index: u64, reason: &'static str) -> StoreError {
        PieceRefused::new(&self.key, index, reason).into_error()
    }

    fn range(&self, index: u64) -> Result<std::ops::Range<u64>> {
        self.layout
            .range(index)
            .ok_or_else(|| self.refuse(index, "no such piece"))
    }

    fn finished(&self) -> StoreError {
        StoreError::io(
            "write",
            &self.data,
            io::Error::other("the piece writer was committed or aborted"),
        )
    }

    /// Hashes held pieces from the end of the hashed prefix on, as far as they are contiguous.
    async fn advance(self: &Arc<Self>, prefix: &mut Prefix) -> Result<()> {
        loop {
            let at = prefix.verifier.received();
            let Some(index) = self.layout.piece_at(at) else {
                return Ok(());
            };
            if !self.state().held.contains(index) {
                return Ok(());
            }
            let end = self.range(index)?.end;
            let me = Arc::clone(self);
            let mut v = prefix.verifier.clone();
            let v = blocking(move || {
                let _held = Arc::clone(&me.lock);
                read_range(&me.file, at..end, &me.data, |chunk| {
                    v.update(chunk).map_err(StoreError::Verify)
                })?;
                Ok(v)
            })
            .await?;
            prefix.since_checkpoint += end - at;
            if (index + 1) % prefix.stride == 0 {
                prefix.marks.insert(end, v.clone());
            }
            prefix.verifier = v;
            if prefix.since_checkpoint >= CHECKPOINT_EVERY
                && let Some(state) = self.state_to_save(prefix, CHECKPOINT_EVERY)
            {
                save_checkpoint(self.dir.clone(), state.digester()).await;
            }
        }
    }

    /// The newest hash state over recorded pieces only (a resume trusts it without reading
    /// those bytes again), when it is at least `min_gain` bytes past the one saved; it is
    /// then taken as saved.
    fn state_to_save(&self, prefix: &mut Prefix, min_gain: u64) -> Option<Verifier> {
        let recorded = self.state().recorded.prefix_bytes(&self.layout);
        let v = &prefix.verifier;
        let state = if v.received() <= recorded {
            v.clone()
        } else {
            prefix.marks.range(..=recorded).next_back()?.1.clone()
        };
        if state.received() <= prefix.saved || state.received() - prefix.saved < min_gain {
            return None;
        }
        prefix.since_checkpoint = v.received() - state.received();
        prefix.saved = state.received();
        Some(state)
    }

    /// Saves the hash state over the recorded pieces when the hash is not busy (in a blocking
    /// context; a failure is only logged: a resume then hashes again).
    fn save_recorded_state(&self, min_gain: u64) {
        let Ok(mut prefix) = self.prefix.try_lock() else {
            return;
        };
        if let Some(state) = self.state_to_save(&mut prefix, min_gain)
            && let Err(e) = write_checkpoint(&self.dir, &state.digester().save_state())
        {
            tracing::debug!(error = %e, "saving the hash state failed; a resume will re-hash");
        }
    }

    /// Makes the completed pieces not recorded yet durable (one `fdatasync`) and then records
    /// them (in a blocking context).
    fn record(&self) -> Result<()> {
        let _one = self
            .recording
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let batch = {
            let mut st = self.state();
            st.unrecorded_bytes = 0;
            std::mem::take(&mut st.unrecorded)
        };
        if batch.is_empty() {
            return Ok(());
        }
        // The bytes reach the disk before the record that says they are there.
        if let Err(e) = self.file.sync_data() {
            let mut st = self.state();
            st.unrecorded.extend(batch);
            return Err(StoreError::io("fsync", &self.data, e));
        }
        let mut st = self.state();
        for i in batch {
            // Discarded pieces left the batch under `recording`; this is only a guard.
            if st.held.contains(i) {
                st.recorded.insert(i);
            }
        }
        write_record(&self.dir, &self.layout, &st.recorded)?;
        drop(st);
        self.save_recorded_state(CHECKPOINT_EVERY);
        Ok(())
    }

    /// [`advance`](Shared::advance) when no one else is hashing (whoever is will go on).
    async fn advance_if_free(self: &Arc<Self>) -> Result<()> {
        loop {
            let Ok(mut prefix) = self.prefix.try_lock() else {
                return Ok(());
            };
            self.advance(&mut prefix).await?;
            let next = self.layout.piece_at(prefix.verifier.received());
            drop(prefix);
            // A piece completed while the lock was ours may have been passed over.
            match next {
                Some(i) if self.state().held.contains(i) => continue,
                _ => return Ok(()),
            }
        }
    }
}

impl Drop for LayoutPieceWriter {
    /// Records the completed pieces not recorded yet (one `fdatasync`, blocking the thread), so
    /// a fetch that stops (an error, a cancel) resumes with them.
    fn drop(&mut self) {
        if self.shared.state().done {
            return;
        }
        if let Err(e) = self.shared.record() {
            tracing::debug!(key = %self.shared.key, error = %e, "recording the last pieces failed; a resume fetches them again");
        }
        self.shared.save_recorded_state(1);
    }
}

#[async_trait]
impl PieceWriter for LayoutPieceWriter {
    fn key(&self) -> &str {
        &self.shared.key
    }

    fn expected(&self) -> &Descriptor {
        &self.shared.expected
    }

    fn layout(&self) -> PieceLayout {
        self.shared.layout
    }

    fn held(&self) -> Vec<u64> {
        self.shared.state().held.iter().collect()
    }

    async fn write_piece(&self, index: u64, offset: u64, chunk: Bytes) -> Result<()> {
        let s = &self.shared;
        let range = s.range(index)?;
        {
            let mut st = s.state();
            if st.done {
                return Err(s.finished());
            }
            if st.held.contains(index) {
                return Err(s.refuse(index, "the piece is held"));
            }
            let next = st.progress.get(&index).copied().unwrap_or(0);
            if offset != 0 && offset != next {
                return Err(s.refuse(index, "a write not at the piece's next offset"));
            }
            if offset + chunk.len() as u64 > range.end - range.start {
                return Err(s.refuse(index, "a write past the piece's end"));
            }
            // Until this write lands, the piece is not written to its end.
            st.progress.insert(index, offset);
        }
        if chunk.is_empty() {
            return Ok(());
        }
        let me = Arc::clone(s);
        let at = range.start + offset;
        let end = offset + chunk.len() as u64;
        blocking(move || {
            let _held = Arc::clone(&me.lock);
            write_at(&me.file, &chunk, at).map_err(ioe("write", &me.data))
        })
        .await?;
        s.state().progress.insert(index, end);
        Ok(())
    }

    async fn complete_piece(&self, index: u64) -> Result<()> {
        let s = &self.shared;
        let range = s.range(index)?;
        {
            let st = s.state();
            if st.done {
                return Err(s.finished());
            }
            if st.held.contains(index) {
                return Ok(());
            }
            if st.progress.get(&index).copied().unwrap_or(0) != range.end - range.start {
                return Err(s.refuse(index, "the piece was not written to its end"));
            }
        }
        let due = {
            let mut st = s.state();
            st.held.insert(index);
            st.progress.remove(&index);
            st.unrecorded.push(index);
            st.unrecorded_bytes += range.end - range.start;
            st.unrecorded.len() >= RECORD_EVERY_PIECES || st.unrecorded_bytes >= RECORD_EVERY_BYTES
        };
        if due {
            let me = Arc::clone(s);
            blocking(move || {
                let _held = Arc::clone(&me.lock);
                me.record()
            })
            .await?;
        }
        s.advance_if_free().await
    }

    async fn discard_piece(&self, index: u64) -> Result<()> {
        let s = &self.shared;
        let range = s.range(index)?;
        let mut prefix = s.prefix.lock().await;
        let me = Arc::clone(s);
        blocking(move || {
            let _one = me
                .recording
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut st = me.state();
            st.progress.remove(&index);
            if st.held.contains(index) {
                st.held.remove(index);
                st.unrecorded.retain(|&i| i != index);
            }
            if st.recorded.contains(index) {
                st.recorded.remove(index);
                write_record(&me.dir, &me.layout, &st.recorded)?;
            }
            Ok(())
        })
        .await?;
        if prefix.verifier.received() > range.start {
            // Hash again from the last mark at or before the piece.
            let (at, v) = prefix
                .marks
                .range(..=range.start)
                .next_back()
                .map(|(k, v)| (*k, v.clone()))
                .unwrap_or_else(|| (0, Verifier::new(s.expected.digest.clone(), s.expected.size)));
            prefix.marks.retain(|k, _| *k <= at);
            prefix.verifier = v;
            prefix.since_checkpoint = 0;
            prefix.saved = 0;
            let state_file = s.dir.join("state");
            blocking(move || remove_if_exists(&state_file).map(|_| ())).await?;
        }
        Ok(())
    }

    async fn piece_digest(&self, index: u64) -> Result<Digest> {
        let s = &self.shared;
        let range = s.range(index)?;
        if !s.state().held.contains(index) {
            return Err(s.refuse(index, "the piece is not held"));
        }
        let me = Arc::clone(s);
        blocking(move || {
            let _held = Arc::clone(&me.lock);
            let mut d = Algorithm::Sha256.digester();
            read_range(&me.file, range, &me.data, |chunk| {
                d.update(chunk);
                Ok(())
            })?;
            Ok(d.finalize())
        })
        .await
    }

    async fn verify(&self) -> Result<Verified> {
        let s = &self.shared;
        {
            let st = s.state();
            if st.done {
                return Err(s.finished());
            }
            if !st.held.is_full() {
                return Err(StoreError::Verify(VerifyError::TooShort {
                    expected: s.expected.digest.clone(),
                    expected_size: s.expected.size,
                    received: st.held.bytes(&s.layout),
                }));
            }
        }
        let mut prefix = s.prefix.lock().await;
        s.advance(&mut prefix).await?;
        Ok(prefix.verifier.finish()?)
    }

    async fn commit(self: Box<Self>) -> Result<PushOutcome> {
        let verified = self.verify().await?;
        let s = Arc::clone(&self.shared);
        s.state().done = true;
        let me = Arc::clone(&s);
        let res = blocking(move || {
            let _held = Arc::clone(&me.lock);
            let len = me.file.metadata().map_err(ioe("stat", &me.data))?.len();
            if len != me.expected.size {
                return Err(StoreError::Verify(VerifyError::TooLong {
                    expected: me.expected.digest.clone(),
                    expected_size: me.expected.size,
                    received: len,
                }));
            }
            me.file.sync_all().map_err(ioe("fsync", &me.data))?;
            me.store.commit_file(&me.data, verified.digest(), &me.dir)
        })
        .await;
        if res.is_err() {
            s.state().done = false;
        }
        res
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        let s = Arc::clone(&self.shared);
        s.state().done = true;
        let me = Arc::clone(&s);
        blocking(move || {
            let _held = Arc::clone(&me.lock);
            me.store.remove_ingest(&me.dir)
        })
        .await
    }
}
