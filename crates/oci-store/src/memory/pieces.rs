//! Pieces in `MemoryStore`: an ingest written in pieces (each piece's bytes in the ingest
//! entry), its conversions from and to an ingest written in order, and the piece writer.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use oci_digest::{Algorithm, Digest, PieceLayout, Verified, Verifier, VerifyError};
use oci_manifest::Descriptor;

use super::{Ingest, MemoryStore, open_ingest};
use crate::error::{Result, StoreError};
use crate::fetch::PieceSet;
use crate::traits::{PieceRefused, PieceWriter, PushOutcome};
use crate::util::validate_ingest_key;

/// An ingest written in pieces: the bytes of each piece held or being written.
#[derive(Debug)]
pub(super) struct MemPieces {
    pub(super) layout: PieceLayout,
    pub(super) held: PieceSet,
    bufs: HashMap<u64, BytesMut>,
}

impl MemPieces {
    /// The bytes `range` of the content, all inside held pieces.
    fn copy_range(&self, range: Range<u64>, out: &mut BytesMut) {
        let mut at = range.start;
        while at < range.end {
            let Some(i) = self.layout.piece_at(at) else {
                return;
            };
            let Some(r) = self.layout.range(i) else {
                return;
            };
            let end = r.end.min(range.end);
            if let Some(b) = self.bufs.get(&i) {
                let from = (at - r.start) as usize;
                let to = ((end - r.start) as usize).min(b.len());
                out.extend_from_slice(&b[from.min(to)..to]);
            }
            at = end;
        }
    }
}

impl Ingest {
    /// Goes on in order from what is held in pieces: the held prefix, hashed again.
    pub(super) fn make_sequential(&mut self) {
        if let Some(p) = self.pieces.take() {
            let mut data = BytesMut::new();
            p.copy_range(0..p.held.prefix_bytes(&p.layout), &mut data);
            let mut verifier = Verifier::new(self.expected.digest.clone(), self.expected.size);
            // At most the expected size: the layout is the content's.
            let _ = verifier.update(&data);
            self.data = data;
            self.verifier = verifier;
        }
    }

    /// Goes on in pieces of `layout` from what is held: whole pieces inside the bytes held
    /// before (in order, or in pieces of another layout).
    fn make_pieces(&mut self, layout: PieceLayout) {
        if self.pieces.as_ref().is_some_and(|p| p.layout == layout) {
            return;
        }
        let (ranges, old) = match self.pieces.take() {
            Some(p) => (p.held.ranges(&p.layout), Some(p)),
            None => (std::iter::once(0..self.data.len() as u64).collect(), None),
        };
        let held = PieceSet::from_ranges(&layout, &ranges);
        let mut bufs = HashMap::new();
        for i in held.iter() {
            let Some(r) = layout.range(i) else { continue };
            let mut b = BytesMut::new();
            match &old {
                Some(p) => p.copy_range(r, &mut b),
                None => b.extend_from_slice(&self.data[r.start as usize..r.end as usize]),
            }
            bufs.insert(i, b);
        }
        self.data = BytesMut::new();
        self.verifier = Verifier::new(self.expected.digest.clone(), self.expected.size);
        self.pieces = Some(MemPieces { layout, held, bufs });
    }
}

/// Opens (or resumes) the ingest `key` of `store` as a piece writer.
pub(super) fn open(
    store: &MemoryStore,
    key: &str,
    desc: &Descriptor,
    layout: PieceLayout,
) -> Result<Box<dyn PieceWriter>> {
    validate_ingest_key(key)?;
    if layout.size() != desc.size {
        return Err(PieceRefused::new(key, 0, "the piece layout is for another size").into_error());
    }
    let mut st = store.state();
    let ing = open_ingest(&mut st, key, desc, SystemTime::now())?;
    ing.make_pieces(layout);
    ing.busy = true;
    Ok(Box::new(MemoryPieceWriter {
        store: store.clone(),
        key: key.to_owned(),
        expected: desc.clone(),
        layout,
        done: AtomicBool::new(false),
    }))
}

/// Piece writer of [`MemoryStore`]: each piece's bytes in the ingest entry.
struct MemoryPieceWriter {
    store: MemoryStore,
    key: String,
    expected: Descriptor,
    layout: PieceLayout,
    done: AtomicBool,
}

impl MemoryPieceWriter {
    fn refuse(&self, index: u64, reason: &'static str) -> StoreError {
        PieceRefused::new(&self.key, index, reason).into_error()
    }

    /// Runs `f` on the ingest's pieces (the ingest must still be this writer's).
    fn with_pieces<T>(
        &self,
        f: impl FnOnce(&mut MemPieces, &mut Ingest) -> Result<T>,
    ) -> Result<T> {
        let mut st = self.store.state();
        let ing = st
            .ingests
            .get_mut(&self.key)
            .filter(|_| !self.done.load(Ordering::SeqCst))
            .ok_or_else(|| StoreError::IngestNotFound {
                key: self.key.clone(),
            })?;
        let mut pieces = ing
            .pieces
            .take()
            .ok_or_else(|| StoreError::IngestNotFound {
                key: self.key.clone(),
            })?;
        let res = f(&mut pieces, ing);
        ing.pieces = Some(pieces);
        res
    }

    fn range(&self, index: u64) -> Result<Range<u64>> {
        self.layout
            .range(index)
            .ok_or_else(|| self.refuse(index, "no such piece"))
    }

    /// Hashes the held pieces in order (all must be held).
    fn check(&self) -> Result<Verified> {
        self.with_pieces(|p, _| {
            if !p.held.is_full() {
                return Err(StoreError::Verify(VerifyError::TooShort {
                    expected: self.expected.digest.clone(),
                    expected_size: self.expected.size,
                    received: p.held.bytes(&self.layout),
                }));
            }
            let mut v = Verifier::new(self.expected.digest.clone(), self.expected.size);
            for i in 0..self.layout.count() {
                v.update(p.bufs.get(&i).map_or(&[][..], |b| &b[..]))?;
            }
            Ok(v.finish()?)
        })
    }
}

#[async_trait]
impl PieceWriter for MemoryPieceWriter {
    fn key(&self) -> &str {
        &self.key
    }

    fn expected(&self) -> &Descriptor {
        &self.expected
    }

    fn layout(&self) -> PieceLayout {
        self.layout
    }

    fn held(&self) -> Vec<u64> {
        self.with_pieces(|p, _| Ok(p.held.iter().collect()))
            .unwrap_or_default()
    }

    async fn write_piece(&self, index: u64, offset: u64, chunk: Bytes) -> Result<()> {
        let r = self.range(index)?;
        self.with_pieces(|p, ing| {
            if p.held.contains(index) {
                return Err(self.refuse(index, "the piece is held"));
            }
            let buf = p.bufs.entry(index).or_default();
            if offset != 0 && offset != buf.len() as u64 {
                return Err(self.refuse(index, "a write not at the piece's next offset"));
            }
            if offset + chunk.len() as u64 > r.end - r.start {
                return Err(self.refuse(index, "a write past the piece's end"));
            }
            buf.truncate(offset as usize);
            buf.extend_from_slice(&chunk);
            ing.updated_at = SystemTime::now();
            Ok(())
        })
    }

    async fn complete_piece(&self, index: u64) -> Result<()> {
        let r = self.range(index)?;
        self.with_pieces(|p, _| {
            if p.bufs.get(&index).map_or(0, |b| b.len() as u64) != r.end - r.start {
                return Err(self.refuse(index, "the piece was not written to its end"));
            }
            p.held.insert(index);
            Ok(())
        })
    }

    async fn discard_piece(&self, index: u64) -> Result<()> {
        self.range(index)?;
        self.with_pieces(|p, _| {
            p.held.remove(index);
            p.bufs.remove(&index);
            Ok(())
        })
    }

    async fn piece_digest(&self, index: u64) -> Result<Digest> {
        self.range(index)?;
        self.with_pieces(|p, _| match p.bufs.get(&index) {
            Some(b) if p.held.contains(index) => Ok(Algorithm::Sha256.hash(b)),
            _ => Err(self.refuse(index, "the piece is not held")),
        })
    }

    async fn verify(&self) -> Result<Verified> {
        self.check()
    }

    async fn commit(self: Box<Self>) -> Result<PushOutcome> {
        self.check()?;
        let mut st = self.store.state();
        let ing = st.take_ingest(&self.key)?;
        self.done.store(true, Ordering::SeqCst);
        let mut data = BytesMut::with_capacity(
            ing.pieces
                .as_ref()
                .map_or(0, |p| p.bufs.values().map(BytesMut::len).sum()),
        );
        if let Some(p) = &ing.pieces {
            p.copy_range(0..self.layout.size(), &mut data);
        }
        st.insert(
            self.store.lease.as_ref(),
            &self.expected.digest,
            data.freeze(),
        )
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.done.store(true, Ordering::SeqCst);
        self.store.state().ingests.remove(&self.key);
        Ok(())
    }
}

impl Drop for MemoryPieceWriter {
    fn drop(&mut self) {
        if !self.done.load(Ordering::SeqCst)
            && let Some(i) = self.store.state().ingests.get_mut(&self.key)
        {
            i.busy = false;
        }
    }
}
