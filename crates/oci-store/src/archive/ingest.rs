//! Resumable ingests of an [`ArchiveWriter`]: each a spool file in the work directory and the
//! state of its verification; a writer holds it while it writes, a dropped writer leaves it to
//! be resumed at its offset, a commit verifies it and appends it to the tar.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use oci_digest::Verifier;
use oci_manifest::Descriptor;

use super::append::{IN_MEMORY, Source, read_file_limited};
use super::errors::unsupported;
use super::io::blocking;
use super::writer::ArchiveWriter;
use crate::error::{Result, StoreError};
use crate::traits::{BlobWriter, IngestStatus, PushOutcome};

pub(super) struct IngestState {
    pub(super) file: File,
    pub(super) verifier: Verifier,
}

pub(super) struct Ingest {
    pub(super) expected: Descriptor,
    pub(super) spool: PathBuf,
    /// `None` while a writer holds it (busy), or after a writer vanished mid-write (then the
    /// ingest starts again from 0).
    pub(super) state: Option<IngestState>,
    pub(super) busy: bool,
    pub(super) started_at: SystemTime,
    pub(super) updated_at: SystemTime,
}

impl Ingest {
    pub(super) fn status(&self, key: &str) -> IngestStatus {
        let offset = self.state.as_ref().map_or(0, |s| s.verifier.received());
        IngestStatus::new(
            key,
            self.expected.clone(),
            offset,
            self.started_at,
            self.updated_at,
        )
    }
}

/// A resumable writer into an archive: bytes go to the ingest's spool file, verified as they
/// arrive; commit appends them to the tar.
pub(super) struct ArchiveBlobWriter {
    pub(super) store: ArchiveWriter,
    pub(super) key: String,
    pub(super) expected: Descriptor,
    pub(super) offset: u64,
    pub(super) state: Option<IngestState>,
    pub(super) done: bool,
}

impl ArchiveBlobWriter {
    fn spool(&self) -> Result<PathBuf> {
        self.store
            .state()
            .ingests
            .get(&self.key)
            .map(|i| i.spool.clone())
            .ok_or_else(|| StoreError::IngestNotFound {
                key: self.key.clone(),
            })
    }

    fn forget(&mut self) {
        self.done = true;
        if let Some(i) = self.store.state().ingests.remove(&self.key) {
            let _ = std::fs::remove_file(&i.spool);
        }
    }
}

#[async_trait]
impl BlobWriter for ArchiveBlobWriter {
    crate::traits::writer_accessors!();

    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let mut state = self
            .state
            .take()
            .ok_or_else(|| unsupported("writing after a failed write"))?;
        if let Err(e) = state.verifier.update(&chunk) {
            self.state = Some(state);
            return Err(e.into());
        }
        let spool = self.spool()?;
        let state = blocking(move || {
            state
                .file
                .write_all(&chunk)
                .map_err(|e| StoreError::io("write", &spool, e))?;
            Ok(state)
        })
        .await?;
        self.offset = state.verifier.received();
        self.state = Some(state);
        if let Some(i) = self.store.state().ingests.get_mut(&self.key) {
            i.updated_at = SystemTime::now();
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<PushOutcome> {
        let state = self
            .state
            .take()
            .ok_or_else(|| unsupported("committing after a failed write"))?;
        let spool = self.spool()?;
        if let Err(e) = state.verifier.finish() {
            self.forget();
            return Err(e.into());
        }
        drop(state.file);
        let desc = self.expected.clone();
        let source = if desc.size <= IN_MEMORY {
            let p = spool.clone();
            let limit = desc.size;
            Source::Bytes(blocking(move || read_file_limited(&p, limit)).await?)
        } else {
            Source::Spool(spool)
        };
        let result = self.store.store(&desc, source).await;
        self.forget();
        result
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.forget();
        Ok(())
    }
}

impl Drop for ArchiveBlobWriter {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let state = self.state.take();
        if let Some(i) = self.store.state().ingests.get_mut(&self.key) {
            i.busy = false;
            i.state = state;
        }
    }
}
