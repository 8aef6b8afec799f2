//! Upload sessions as resumable ingests of the store traits: [`WriteStore::writer`] opens (or
//! reopens, by key) a session kept in memory and, with
//! [`ClientConfig::upload_state_dir`](crate::ClientConfig::upload_state_dir), recorded on disk,
//! so another process can resume it; the [`BlobWriter`] sends chunks as they fill and hashes
//! exactly what the registry acknowledged.
//!
//! [`WriteStore::writer`]: oci_store::WriteStore::writer

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use oci_digest::Verifier;
use oci_manifest::Descriptor;
use oci_store::{BlobWriter, IngestStatus, PushOutcome, StoreError};
use reqwest::Url;
use tracing::{debug, warn};

use crate::Repository;
use crate::upload_state::{self, Restored};

/// Upload sessions kept as resumable ingests, by ingest key.
#[derive(Default)]
pub(crate) struct Ingests {
    map: Mutex<HashMap<String, IngestState>>,
}

struct IngestState {
    desc: Descriptor,
    /// `None` while a writer is still opening the session.
    location: Option<Url>,
    verifier: Verifier,
    busy: bool,
    started_at: SystemTime,
    updated_at: SystemTime,
}

/// Releases a key reserved by [`WriteStore::writer`] when opening the session fails (or the
/// future is dropped): a new reservation is removed, a reopened one is marked idle.
struct Reservation<'a> {
    ingests: &'a Ingests,
    key: &'a str,
    armed: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut map = self.ingests.lock();
        match map.get_mut(self.key) {
            Some(st) if st.location.is_none() => {
                map.remove(self.key);
            }
            Some(st) => st.busy = false,
            None => {}
        }
    }
}

fn record_status(r: &upload_state::UploadRecord) -> IngestStatus {
    IngestStatus::new(
        r.key.clone(),
        r.descriptor.clone(),
        r.acknowledged,
        upload_state::from_ms(r.started_at_ms),
        upload_state::from_ms(r.updated_at_ms),
    )
}

impl Ingests {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, IngestState>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Repository {
    /// The record file of ingest `key` when upload sessions are recorded on disk.
    fn record_path(&self, key: &str) -> Option<PathBuf> {
        self.client
            .inner
            .config
            .upload_state_dir
            .as_deref()
            .map(|dir| upload_state::record_path(dir, &self.registry, &self.name, key))
    }

    /// The record on disk of this repository's upload session for `key`, if any (none without
    /// an upload state directory).
    ///
    /// # Errors
    /// I/O errors reading it.
    async fn load_record(
        &self,
        key: &str,
    ) -> oci_store::Result<Option<upload_state::UploadRecord>> {
        let Some(path) = self.record_path(key) else {
            return Ok(None);
        };
        let record = upload_state::blocking({
            let path = path.clone();
            move || upload_state::load(&path)
        })
        .await
        .map_err(|e| StoreError::io("read upload record", path, e))?;
        Ok(record.filter(|r| r.is_for(&self.registry, &self.name) && r.key == key))
    }

    /// The session recorded on disk for `key`, when there is a usable one for `desc`.
    ///
    /// # Errors
    /// [`StoreError::IngestMismatch`] when the record is for other content; I/O errors reading
    /// it.
    async fn restore_record(
        &self,
        key: &str,
        desc: &Descriptor,
    ) -> oci_store::Result<Option<Restored>> {
        let Some(record) = self.load_record(key).await? else {
            return Ok(None);
        };
        if record.descriptor.digest != desc.digest {
            return Err(StoreError::IngestMismatch {
                key: key.to_owned(),
                existing: record.descriptor.digest,
                requested: desc.digest.clone(),
            });
        }
        Ok(record.restore(desc))
    }

    /// Records the session of `key` on disk (when configured).
    async fn save_record(
        &self,
        key: &str,
        desc: &Descriptor,
        location: &Url,
        verifier: &Verifier,
        started_at: SystemTime,
    ) -> oci_store::Result<()> {
        let Some(path) = self.record_path(key) else {
            return Ok(());
        };
        let record = upload_state::UploadRecord::new(
            (&self.registry, &self.name, key),
            desc,
            location,
            verifier,
            started_at,
        );
        upload_state::blocking({
            let path = path.clone();
            move || upload_state::save(&path, &record)
        })
        .await
        .map_err(|e| StoreError::io("write upload record", path, e))
    }

    /// Removes the record of `key` (a failure is logged: a left-over record only costs a
    /// status request when the key is used again).
    async fn remove_record(&self, key: &str) {
        let Some(path) = self.record_path(key) else {
            return;
        };
        let result = upload_state::blocking({
            let path = path.clone();
            move || upload_state::remove(&path)
        })
        .await;
        if let Err(e) = result {
            warn!(path = %path.display(), error = %e, "cannot remove upload record");
        }
    }

    /// Opens (or reopens) the upload session of ingest `key` for `desc`.
    pub(super) async fn open_writer(
        &self,
        key: &str,
        desc: &Descriptor,
    ) -> oci_store::Result<Box<dyn BlobWriter>> {
        let chunk_len = self.client.inner.config.chunk_size as usize;
        // Reserve the key in memory first: a second writer of this process gets `IngestBusy`
        // even while this one is still asking the registry.
        let in_memory = {
            let mut map = self.ingests.lock();
            match map.get_mut(key) {
                Some(st) if st.desc.digest != desc.digest => {
                    return Err(StoreError::IngestMismatch {
                        key: key.to_owned(),
                        existing: st.desc.digest.clone(),
                        requested: desc.digest.clone(),
                    });
                }
                Some(st) if st.busy => {
                    return Err(StoreError::IngestBusy {
                        key: key.to_owned(),
                    });
                }
                Some(st) => {
                    st.busy = true;
                    st.location.clone().map(|location| Restored {
                        location,
                        verifier: st.verifier.clone(),
                        started_at: st.started_at,
                    })
                }
                None => {
                    let now = SystemTime::now();
                    map.insert(
                        key.to_owned(),
                        IngestState {
                            desc: desc.clone(),
                            location: None,
                            verifier: Verifier::new(desc.digest.clone(), desc.size),
                            busy: true,
                            started_at: now,
                            updated_at: now,
                        },
                    );
                    None
                }
            }
        };
        let mut reservation = Reservation {
            ingests: &self.ingests,
            key,
            armed: true,
        };
        let prior = match in_memory {
            Some(r) => Some(r),
            None => self.restore_record(key, desc).await?,
        };
        let resumed = match prior {
            Some(prior) => {
                // The registry must have exactly what we hashed; else start again.
                match self.upload_status(&prior.location).await {
                    Ok((loc, have))
                        if have.map_or(Some(0), |h| h.checked_add(1))
                            == Some(prior.verifier.received()) =>
                    {
                        Some(Restored {
                            location: loc,
                            ..prior
                        })
                    }
                    Ok(_) => {
                        debug!(key, digest = %desc.digest, "the registry has another offset than recorded; starting the upload again");
                        self.cancel_upload(&prior.location).await;
                        None
                    }
                    Err(e) => {
                        debug!(key, digest = %desc.digest, status = ?e.status(), "the recorded upload is gone; starting again");
                        None
                    }
                }
            }
            None => None,
        };
        let session = match resumed {
            Some(r) => r,
            None => {
                let (location, _) = self
                    .start_upload()
                    .await
                    .map_err(|e| self.store_err(e, "start upload of", &desc.digest))?;
                Restored {
                    location,
                    verifier: Verifier::new(desc.digest.clone(), desc.size),
                    started_at: SystemTime::now(),
                }
            }
        };
        self.save_record(
            key,
            desc,
            &session.location,
            &session.verifier,
            session.started_at,
        )
        .await?;
        if let Some(st) = self.ingests.lock().get_mut(key) {
            st.desc = desc.clone();
            st.location = Some(session.location.clone());
            st.verifier = session.verifier.clone();
            st.started_at = session.started_at;
            st.updated_at = SystemTime::now();
        }
        reservation.armed = false;
        Ok(Box::new(RegistryWriter {
            repo: self.clone(),
            key: key.to_owned(),
            desc: desc.clone(),
            location: session.location,
            verifier: session.verifier,
            started_at: session.started_at,
            buf: BytesMut::new(),
            chunk_len,
        }))
    }

    /// The state of ingest `key`: in memory, else recorded on disk.
    pub(super) async fn session_status(
        &self,
        key: &str,
    ) -> oci_store::Result<Option<IngestStatus>> {
        let mem = self.ingests.lock().get(key).map(|s| {
            IngestStatus::new(
                key,
                s.desc.clone(),
                s.verifier.received(),
                s.started_at,
                s.updated_at,
            )
        });
        if mem.is_some() {
            return Ok(mem);
        }
        Ok(self.load_record(key).await?.map(|r| record_status(&r)))
    }

    /// This repository's ingests, in memory and recorded on disk, by key.
    pub(super) async fn sessions(&self) -> oci_store::Result<Vec<IngestStatus>> {
        let mut v: Vec<IngestStatus> = self
            .ingests
            .lock()
            .iter()
            .map(|(k, s)| {
                IngestStatus::new(
                    k.clone(),
                    s.desc.clone(),
                    s.verifier.received(),
                    s.started_at,
                    s.updated_at,
                )
            })
            .collect();
        if let Some(dir) = self.client.inner.config.upload_state_dir.clone() {
            let records = upload_state::blocking({
                let dir = dir.clone();
                move || upload_state::load_all(&dir)
            })
            .await
            .map_err(|e| StoreError::io("list upload records", dir, e))?;
            for r in records {
                if r.is_for(&self.registry, &self.name) && !v.iter().any(|s| s.key == r.key) {
                    v.push(record_status(&r));
                }
            }
        }
        v.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(v)
    }

    /// Aborts ingest `key` (cancels its upload session, removes its record).
    pub(super) async fn abort_session(&self, key: &str) -> oci_store::Result<()> {
        let st = {
            let mut map = self.ingests.lock();
            match map.get(key) {
                Some(s) if s.busy => {
                    return Err(StoreError::IngestBusy {
                        key: key.to_owned(),
                    });
                }
                Some(_) => map.remove(key),
                None => None,
            }
        };
        let location = match st {
            Some(st) => st.location,
            None => {
                // Perhaps a session recorded by an earlier process.
                let record = match self.record_path(key) {
                    Some(path) => upload_state::blocking({
                        let path = path.clone();
                        move || upload_state::load(&path)
                    })
                    .await
                    .map_err(|e| StoreError::io("read upload record", path, e))?
                    .filter(|r| r.is_for(&self.registry, &self.name) && r.key == key),
                    None => None,
                };
                let Some(record) = record else {
                    return Err(StoreError::IngestNotFound {
                        key: key.to_owned(),
                    });
                };
                Url::parse(&record.location).ok()
            }
        };
        self.remove_record(key).await;
        if let Some(location) = location {
            self.cancel_upload(&location).await;
        }
        Ok(())
    }
}

/// A resumable upload session as a [`BlobWriter`]. Bytes are sent in chunks as they fill;
/// the hash covers exactly the bytes the registry acknowledged, so a writer dropped without
/// commit can be reopened with the same key and continue.
struct RegistryWriter {
    repo: Repository,
    key: String,
    desc: Descriptor,
    location: Url,
    verifier: Verifier,
    started_at: SystemTime,
    buf: BytesMut,
    chunk_len: usize,
}

impl RegistryWriter {
    async fn flush_chunks(&mut self, all: bool) -> oci_store::Result<()> {
        while self.buf.len() >= self.chunk_len || (all && !self.buf.is_empty()) {
            let n = self.buf.len().min(self.chunk_len);
            let chunk = self.buf.split_to(n).freeze();
            let offset = self.verifier.received();
            let (next, _) = self
                .repo
                .send_chunk(&self.location, offset, chunk.clone())
                .await
                .map_err(|e| self.repo.store_err(e, "upload chunk of", &self.desc.digest))?;
            self.verifier.update(&chunk).map_err(StoreError::Verify)?;
            self.location = next;
            if let Some(st) = self.repo.ingests.lock().get_mut(&self.key) {
                st.location = Some(self.location.clone());
                st.verifier = self.verifier.clone();
                st.updated_at = SystemTime::now();
            }
            self.repo
                .save_record(
                    &self.key,
                    &self.desc,
                    &self.location,
                    &self.verifier,
                    self.started_at,
                )
                .await?;
        }
        Ok(())
    }
}

impl Drop for RegistryWriter {
    fn drop(&mut self) {
        if let Some(st) = self.repo.ingests.lock().get_mut(&self.key) {
            st.busy = false;
        }
    }
}

#[async_trait]
impl BlobWriter for RegistryWriter {
    fn key(&self) -> &str {
        &self.key
    }

    fn expected(&self) -> &Descriptor {
        &self.desc
    }

    fn offset(&self) -> u64 {
        self.verifier
            .received()
            .saturating_add(self.buf.len() as u64)
    }

    async fn write(&mut self, chunk: Bytes) -> oci_store::Result<()> {
        // Saturating: a descriptor's size near u64::MAX must not overflow the check.
        let after = self.offset().saturating_add(chunk.len() as u64);
        if after > self.desc.size {
            return Err(StoreError::Verify(oci_digest::VerifyError::TooLong {
                expected: self.desc.digest.clone(),
                expected_size: self.desc.size,
                received: after,
            }));
        }
        self.buf.extend_from_slice(&chunk);
        self.flush_chunks(false).await
    }

    async fn commit(mut self: Box<Self>) -> oci_store::Result<PushOutcome> {
        // Check the whole content before the registry commits it.
        let mut check = self.verifier.clone();
        let result = check.update(&self.buf).and_then(|()| check.finish());
        if let Err(e) = result {
            self.repo.ingests.lock().remove(&self.key);
            self.repo.remove_record(&self.key).await;
            self.repo.cancel_upload(&self.location).await;
            return Err(StoreError::Verify(e));
        }
        let body = self.buf.split().freeze();
        // The record goes first: a process killed between the two leaves no record of a
        // committed blob (which a later copy would skip and never clean up); at worst the
        // session is not resumed.
        self.repo.remove_record(&self.key).await;
        let finished = self
            .repo
            .finish_upload(&self.desc, &self.location, Some(body))
            .await;
        self.repo.ingests.lock().remove(&self.key);
        finished.map(|()| PushOutcome::Written).map_err(|e| {
            self.repo
                .store_err(e, "commit upload of", &self.desc.digest)
        })
    }

    async fn abort(self: Box<Self>) -> oci_store::Result<()> {
        self.repo.ingests.lock().remove(&self.key);
        self.repo.remove_record(&self.key).await;
        self.repo.cancel_upload(&self.location).await;
        Ok(())
    }
}
