//! Upload sessions as resumable ingests of the store traits: [`WriteStore::writer`] opens (or
//! reopens, by key) a session kept in memory and, with
//! [`ClientConfig::upload_state_dir`](crate::ClientConfig::upload_state_dir), recorded on disk,
//! so another process can resume it. [`WriteStore::writer_unless_present`] opens one only when
//! the repository does not have the blob, asking a small blob with the request that starts the
//! session. The writer itself (streamed or chunked) is in `writer.rs`.
//!
//! A session is its upload location and the hash [`Checkpoints`] of its content. Reopened, it
//! resumes from the registry's own offset: the `GET` of the location says how many bytes the
//! registry holds (`Range`), the hash restarts from the newest checkpoint at or below that, the
//! writer's offset is that checkpoint (the caller reads its source again from there), and the
//! bytes up to the registry's offset are hashed, not sent again. A session the registry no
//! longer has (expired, cancelled; distribution 2.8 cancels one whose last request was cut
//! short) starts again from byte 0, and says so.
//!
//! [`WriteStore::writer`]: oci_store::WriteStore::writer
//! [`WriteStore::writer_unless_present`]: oci_store::WriteStore::writer_unless_present

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use oci_manifest::Descriptor;
use oci_store::{BlobWriter, IngestStatus, Opened, ReadStore, StoreError};
use reqwest::Url;
use tokio::sync::Notify;
use tracing::{info, warn};

use super::writer::RegistryWriter;
use crate::Repository;
use crate::upload_state::{self, Checkpoints, Restored};

/// Upload sessions kept as resumable ingests, by ingest key, and what this repository handle
/// learnt about the registry's uploads.
#[derive(Default)]
pub(crate) struct Ingests {
    map: Mutex<HashMap<String, IngestState>>,
    /// The registry refused a streamed upload through this handle: chunks from now on.
    streaming_refused: AtomicBool,
    /// The registry's last `OCI-Chunk-Min-Length` (0: none seen), for chunked uploads of
    /// sessions reopened (whose start this handle did not see).
    min_chunk: AtomicU64,
    /// The registry refused a mount of a blob from the repository itself through this handle
    /// (see `Repository::start_upload_unless_present`): `HEAD` before each upload from now on.
    probe_refused: AtomicBool,
}

pub(super) struct IngestState {
    pub(super) desc: Descriptor,
    /// `None` while a writer is still opening the session.
    pub(super) location: Option<Url>,
    pub(super) checkpoints: Checkpoints,
    pub(super) busy: bool,
    /// Set while the request of a dropped writer is being ended (see `writer.rs`): a new
    /// writer of the key waits for it rather than finding the key busy.
    pub(super) pausing: Option<Arc<Notify>>,
    pub(super) started_at: SystemTime,
    pub(super) updated_at: SystemTime,
}

/// A session a writer continues: where it is, what the registry holds, the hash checkpoints.
struct Session {
    location: Url,
    /// Bytes the registry holds.
    held: u64,
    checkpoints: Checkpoints,
    started_at: SystemTime,
    /// The registry's `OCI-Chunk-Min-Length` (known for a session started now).
    min_chunk: Option<u64>,
}

/// Releases a key reserved by [`WriteStore::writer`](oci_store::WriteStore::writer) when opening the session fails (or the
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
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, IngestState>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the registry refused a streamed upload through this handle.
    pub(crate) fn streaming_refused(&self) -> bool {
        self.streaming_refused.load(Ordering::SeqCst)
    }

    /// Notes that the registry refused a streamed upload; returns whether that was known.
    pub(crate) fn set_streaming_refused(&self) -> bool {
        self.streaming_refused.swap(true, Ordering::SeqCst)
    }

    /// Whether the registry refused a mount from the repository itself through this handle.
    pub(crate) fn probe_refused(&self) -> bool {
        self.probe_refused.load(Ordering::SeqCst)
    }

    /// Notes that the registry refused a mount from the repository itself.
    pub(crate) fn set_probe_refused(&self) {
        self.probe_refused.store(true, Ordering::SeqCst);
    }

    /// Notes the registry's `OCI-Chunk-Min-Length`.
    pub(crate) fn set_min_chunk(&self, min: u64) {
        self.min_chunk.store(min, Ordering::SeqCst);
    }

    /// The registry's last `OCI-Chunk-Min-Length`, if one was seen.
    pub(crate) fn min_chunk(&self) -> Option<u64> {
        Some(self.min_chunk.load(Ordering::SeqCst)).filter(|m| *m > 0)
    }

    /// Marks ingest `key` idle (its writer is gone, its request ended), waking writers that
    /// wait for it.
    pub(super) fn release(&self, key: &str) {
        if let Some(st) = self.lock().get_mut(key) {
            st.busy = false;
            if let Some(n) = st.pausing.take() {
                n.notify_waiters();
            }
        }
    }

    /// Notes that the request of ingest `key`'s dropped writer is being ended.
    pub(super) fn pausing(&self, key: &str) {
        if let Some(st) = self.lock().get_mut(key) {
            st.pausing = Some(Arc::new(Notify::new()));
        }
    }

    /// Notes where the session of `key` is now.
    pub(super) fn update(&self, key: &str, location: &Url, checkpoints: &Checkpoints) {
        if let Some(st) = self.lock().get_mut(key) {
            st.location = Some(location.clone());
            st.checkpoints = checkpoints.clone();
            st.updated_at = SystemTime::now();
        }
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
    pub(super) async fn save_record(
        &self,
        key: &str,
        desc: &Descriptor,
        location: &Url,
        checkpoints: &Checkpoints,
        started_at: SystemTime,
    ) -> oci_store::Result<()> {
        let Some(path) = self.record_path(key) else {
            return Ok(());
        };
        let record = upload_state::UploadRecord::new(
            (&self.registry, &self.name, key),
            desc,
            location,
            checkpoints,
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
    pub(super) async fn remove_record(&self, key: &str) {
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

    /// Waits while the request of a dropped writer of `key` is being ended (it is bounded by
    /// the request timeout), so that what comes next sees where it left the session.
    ///
    /// # Errors
    /// [`StoreError::IngestBusy`] when it takes longer than twice the request timeout.
    async fn wait_for_pause(&self, key: &str) -> oci_store::Result<()> {
        let pausing = |ingests: &Ingests| ingests.lock().get(key).and_then(|st| st.pausing.clone());
        let wait = self.client.inner.config.request_timeout.saturating_mul(2);
        let started = tokio::time::Instant::now();
        while let Some(n) = pausing(&self.ingests) {
            let woken = n.notified();
            // Checked again once the waiter exists: a release in between is not missed.
            if pausing(&self.ingests).is_none() {
                break;
            }
            let left = wait.saturating_sub(started.elapsed());
            if left.is_zero() || tokio::time::timeout(left, woken).await.is_err() {
                return Err(StoreError::IngestBusy {
                    key: key.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Opens (or reopens) the upload session of ingest `key` for `desc`.
    pub(super) async fn open_writer(
        &self,
        key: &str,
        desc: &Descriptor,
    ) -> oci_store::Result<Box<dyn BlobWriter>> {
        let (reservation, prior) = self.reserve(key, desc).await?;
        let resumed = match prior {
            Some(prior) => self.resume_session(key, desc, prior).await?,
            None => None,
        };
        let session = match resumed {
            Some(s) => s,
            None => self.new_session(None, desc).await?,
        };
        self.writer_for(reservation, key, desc, session).await
    }

    /// [`open_writer`](Self::open_writer) unless the repository has the content: a blob for a
    /// key with no session yet is asked with the request that starts the session
    /// ([`start_upload_unless_present`](Repository::start_upload_unless_present)); a manifest
    /// (at its own endpoint), or a blob before its recorded session is resumed, with a `HEAD`.
    pub(super) async fn open_writer_unless_present(
        &self,
        key: &str,
        desc: &Descriptor,
    ) -> oci_store::Result<Opened> {
        let (reservation, prior) = self.reserve(key, desc).await?;
        let probe = prior.is_none() && !super::is_manifest(desc);
        if !probe && let Some(size) = self.stat_descriptor(desc).await? {
            return Ok(Opened::Present { size: Some(size) });
        }
        let started = match prior {
            Some(prior) => self.resume_session(key, desc, prior).await?,
            None if probe => {
                let started = self
                    .start_upload_unless_present(desc)
                    .await
                    .map_err(|e| self.store_err(e, "start upload of", &desc.digest))?;
                let Some(s) = started else {
                    return Ok(Opened::Present { size: None });
                };
                Some(self.new_session(Some(s), desc).await?)
            }
            None => None,
        };
        let session = match started {
            Some(s) => s,
            None => self.new_session(None, desc).await?,
        };
        self.writer_for(reservation, key, desc, session)
            .await
            .map(Opened::Writer)
    }

    /// Reserves ingest `key` for a writer of `desc` (in memory first: a second writer of this
    /// process gets `IngestBusy` even while this one is still asking the registry), with the
    /// session to resume, if one is known (in memory or recorded on disk).
    async fn reserve<'k>(
        &'k self,
        key: &'k str,
        desc: &Descriptor,
    ) -> oci_store::Result<(Reservation<'k>, Option<Restored>)> {
        self.wait_for_pause(key).await?;
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
                        checkpoints: st.checkpoints.clone(),
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
                            checkpoints: Checkpoints::default(),
                            busy: true,
                            pausing: None,
                            started_at: now,
                            updated_at: now,
                        },
                    );
                    None
                }
            }
        };
        let reservation = Reservation {
            ingests: &self.ingests,
            key,
            armed: true,
        };
        let prior = match in_memory {
            Some(r) => Some(r),
            None => self.restore_record(key, desc).await?,
        };
        Ok((reservation, prior))
    }

    /// A session started now: `started` (by the caller), else a new one.
    async fn new_session(
        &self,
        started: Option<(Url, Option<u64>)>,
        desc: &Descriptor,
    ) -> oci_store::Result<Session> {
        let (location, min_chunk) = match started {
            Some(s) => s,
            None => self
                .start_upload()
                .await
                .map_err(|e| self.store_err(e, "start upload of", &desc.digest))?,
        };
        Ok(Session {
            location,
            held: 0,
            checkpoints: Checkpoints::default(),
            started_at: SystemTime::now(),
            min_chunk,
        })
    }

    /// Records `session` as ingest `key`'s (reserved by `reservation`) and returns its writer.
    async fn writer_for(
        &self,
        mut reservation: Reservation<'_>,
        key: &str,
        desc: &Descriptor,
        session: Session,
    ) -> oci_store::Result<Box<dyn BlobWriter>> {
        self.save_record(
            key,
            desc,
            &session.location,
            &session.checkpoints,
            session.started_at,
        )
        .await?;
        if let Some(st) = self.ingests.lock().get_mut(key) {
            st.desc = desc.clone();
            st.location = Some(session.location.clone());
            st.checkpoints = session.checkpoints.clone();
            st.started_at = session.started_at;
            st.updated_at = SystemTime::now();
        }
        reservation.armed = false;
        let chunk_len = self
            .chunk_limit()
            .map(|limit| self.chunk_len(session.min_chunk.or(self.ingests.min_chunk()), limit));
        Ok(Box::new(RegistryWriter::new(
            self.clone(),
            key,
            desc,
            (session.location, session.held),
            session.checkpoints,
            session.started_at,
            chunk_len,
        )))
    }

    /// Asks the registry where the session `prior` stands: the session to continue, `None`
    /// when it must start again (the registry no longer has it, or holds what cannot be this
    /// content).
    ///
    /// # Errors
    /// A failure to ask (a transport error, a `5xx`): the session may still be there, and a
    /// later attempt asks again.
    async fn resume_session(
        &self,
        key: &str,
        desc: &Descriptor,
        prior: Restored,
    ) -> oci_store::Result<Option<Session>> {
        let (location, have) = match self.upload_status(&prior.location).await {
            Ok(v) => v,
            Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)) => {
                warn!(key, digest = %desc.digest, status = ?e.status(), error = %e,
                    "the registry does not resume the recorded upload session; starting the blob again from byte 0");
                return Ok(None);
            }
            Err(e) => return Err(self.store_err(e, "ask the upload status of", &desc.digest)),
        };
        // `Range: 0-N` is N + 1 bytes. distribution answers `0-0` for a session holding
        // nothing, which is taken so; a session holding one byte (a request cut after its
        // first byte) is then sent that byte again, and the registry's digest check at commit
        // refuses the result, which the next attempt starts again.
        let held = match have {
            None | Some(0) => 0,
            Some(h) => h.saturating_add(1),
        };
        if held > desc.size {
            warn!(key, digest = %desc.digest, held, size = desc.size,
                "the registry's upload session holds more bytes than the blob has; starting the blob again from byte 0");
            self.cancel_upload(&location).await;
            return Ok(None);
        }
        let mut checkpoints = prior.checkpoints;
        let recorded = checkpoints.newest();
        checkpoints.keep_upto(held);
        let from = checkpoints.newest();
        if held > 0 || recorded > 0 {
            info!(key, digest = %desc.digest, registry_offset = held, hash_from = from, recorded,
                "resuming the upload at the registry's offset: the source is read again from the hash checkpoint, bytes up to the registry's offset are hashed, not sent");
        }
        Ok(Some(Session {
            location,
            held,
            checkpoints,
            started_at: prior.started_at,
            min_chunk: None,
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
                s.checkpoints.newest(),
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
                    s.checkpoints.newest(),
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
        self.wait_for_pause(key).await?;
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
