//! A registry repository as an `oci-store` store, so `copy()` works between memory, layout and
//! registry. The media type of a descriptor decides between the manifest and blob endpoints.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use oci_digest::{Digest, Verifier};
use oci_manifest::{Descriptor, media_types};
use oci_store::{
    BlobStream, BlobWriter, IngestStatus, Location, PushOutcome as StorePushOutcome, ReadStore,
    StoreError, TagStore, WriteStore,
};
use reqwest::{Method, StatusCode, Url};

use crate::client::{Req, expect, status_error};
use crate::config::ExistenceCheck;
use crate::rate::{RateWatch, ReadError};
use crate::repository::{BlobSource, PushOutcome};
use crate::upload_state::{self, Restored};
use crate::{Error, Repository};
use tracing::{debug, warn};

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

/// A client error as a store backend error. A refusal to authorize (401, 403) keeps its
/// place in the chain behind an [`std::io::Error`] of kind
/// [`PermissionDenied`](std::io::ErrorKind::PermissionDenied), which the store's callers (a
/// graph copy) know not to retry; its text is unchanged.
fn backend_error(context: impl Into<String>, e: Error) -> StoreError {
    match e {
        e @ Error::Unauthorized { .. } => StoreError::backend(
            context,
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, e),
        ),
        e => StoreError::backend(context, e),
    }
}

fn is_manifest(desc: &Descriptor) -> bool {
    media_types::is_manifest(&desc.media_type)
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

    fn store_name(&self) -> String {
        format!("{}/{}", self.registry, self.name)
    }

    /// Maps a client error to a store error for content `digest`.
    fn store_err(&self, e: Error, what: &str, digest: &Digest) -> StoreError {
        match e {
            e if e.is_not_found() => StoreError::NotFound {
                digest: digest.clone(),
            },
            Error::Verify { source, .. } => StoreError::Verify(source),
            Error::RegistryLies { digest, detail, .. } => StoreError::ClaimsUnserved {
                store: self.store_name(),
                digest,
                detail,
            },
            Error::Source { source, .. } => StoreError::Source {
                digest: digest.clone(),
                source,
            },
            other => backend_error(format!("{what} {digest} in {}", self.store_name()), other),
        }
    }

    /// Streams bytes `[range.start, range.end)` of a blob (unverified), resuming within the
    /// range after a dropped connection. A registry that ignores `Range` (answering 200 with
    /// the whole blob) is read from the start, the bytes before the range dropped. The body is
    /// held to [`ClientConfig::min_rate`](crate::ClientConfig::min_rate).
    ///
    /// # Errors
    /// Opening errors at once; later transport errors, and [`Error::TransferTooSlow`], as
    /// stream items.
    pub async fn fetch_blob_range(
        &self,
        digest: &Digest,
        range: Range<u64>,
    ) -> Result<crate::ByteStream, Error> {
        if range.end < range.start {
            return Err(Error::InvalidArgument(format!(
                "range of blob {digest}: end {} is before start {}",
                range.end, range.start
            )));
        }
        struct St {
            repo: Repository,
            url: Url,
            digest: Digest,
            next: u64,
            end: u64,
            body: Option<reqwest::Response>,
            /// Bytes to drop from the start of the body (a registry that ignored the range).
            skip: u64,
            rate: RateWatch,
            failures: u32,
        }
        let url = self.url(&format!("blobs/{digest}"))?;
        let mut st = St {
            repo: self.clone(),
            url,
            digest: digest.clone(),
            next: range.start,
            end: range.end,
            body: None,
            skip: 0,
            rate: RateWatch::new(None),
            failures: 0,
        };
        async fn open(st: &mut St) -> Result<(), Error> {
            let req = Req::new(Method::GET, st.url.clone()).streaming().header(
                reqwest::header::RANGE,
                &format!("bytes={}-{}", st.next, st.end - 1),
            );
            let resp = st
                .repo
                .send(req, &[crate::auth::repo_scope(&st.repo.name, "pull")])
                .await?;
            let resp = expect(
                resp,
                &Method::GET,
                &[StatusCode::PARTIAL_CONTENT, StatusCode::OK],
            )
            .await?;
            if resp.status() == StatusCode::PARTIAL_CONTENT {
                // Bytes from another offset than asked must not be passed on as these.
                crate::repository::check_content_range(&resp, st.next, &st.url)?;
                st.skip = 0;
            } else {
                debug!(digest = %st.digest, from = st.next, "the registry ignores Range; reading from the start");
                st.skip = st.next;
            }
            st.rate = RateWatch::new(st.repo.client.inner.config.min_rate);
            st.body = Some(resp);
            Ok(())
        }
        if st.next < st.end {
            open(&mut st).await?;
        }
        Ok(Box::pin(futures_util::stream::unfold(
            st,
            |mut st| async move {
                loop {
                    if st.next >= st.end {
                        return None;
                    }
                    if st.body.is_none()
                        && let Err(e) = open(&mut st).await
                    {
                        st.end = st.next;
                        return Some((Err(e), st));
                    }
                    let body = st.body.as_mut()?;
                    let failure = match st.rate.chunk(body).await {
                        Ok(Some(mut c)) => {
                            if st.skip > 0 {
                                let n = usize::try_from(st.skip).unwrap_or(usize::MAX).min(c.len());
                                st.skip -= n as u64;
                                let _ = c.split_to(n);
                                if c.is_empty() {
                                    continue;
                                }
                            }
                            let room = usize::try_from(st.end - st.next).unwrap_or(usize::MAX);
                            c.truncate(room);
                            st.next += c.len() as u64;
                            st.failures = 0;
                            return Some((Ok(c), st));
                        }
                        Ok(None) => Error::Protocol {
                            method: "GET".into(),
                            url: crate::client::strip_query(&st.url),
                            what: format!(
                                "the body ended at byte {}, before the end of the range at {}",
                                st.next, st.end
                            ),
                        },
                        Err(ReadError::TooSlow(slow)) => {
                            // Not resumed: a peer that drips would drip again.
                            let what = format!("range of blob {}", st.digest);
                            let e = slow.error(&st.url, &what);
                            st.end = st.next;
                            return Some((Err(e), st));
                        }
                        Err(ReadError::Http(source)) => Error::Transport {
                            method: "GET".into(),
                            url: crate::client::strip_query(&st.url),
                            attempts: st.failures + 1,
                            source: source.without_url(),
                        },
                    };
                    st.body = None;
                    st.failures += 1;
                    if st.failures > st.repo.client.inner.config.resume_attempts {
                        st.end = st.next;
                        return Some((Err(failure), st));
                    }
                    tokio::time::sleep(st.repo.client.inner.config.retry.backoff(st.failures))
                        .await;
                }
            },
        )))
    }

    async fn manifest_stat(&self, digest: &Digest) -> Result<Option<u64>, Error> {
        match self.resolve(digest.as_str()).await {
            Ok(d) => {
                if self.client.inner.config.existence_check != ExistenceCheck::Head {
                    // Do not trust HEAD: read it back.
                    return match self.fetch_manifest(digest.as_str()).await {
                        Ok(m) => Ok(Some(m.bytes.len() as u64)),
                        Err(e) if e.is_not_found() => Ok(None),
                        Err(e) => Err(e),
                    };
                }
                Ok(Some(d.size))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn blob_stat(&self, digest: &Digest) -> Result<Option<u64>, Error> {
        let Some(size) = self.blob_exists_head(digest).await? else {
            return Ok(None);
        };
        let check = self.client.inner.config.existence_check;
        if check == ExistenceCheck::Head {
            return Ok(Some(size));
        }
        // The descriptor's media type does not matter for the check.
        let desc = Descriptor::new("application/octet-stream", digest.clone(), size);
        Ok(self.blob_exists(&desc, check).await?.then_some(size))
    }

    async fn push_manifest_bytes(
        &self,
        desc: &Descriptor,
        data: BlobSource,
        forced: bool,
    ) -> Result<StorePushOutcome, StoreError> {
        let limit = self.client.inner.config.max_manifest_size;
        if desc.size > limit {
            return Err(StoreError::ManifestTooLarge {
                digest: desc.digest.clone(),
                size: desc.size,
                limit,
            });
        }
        if !forced
            && self
                .manifest_stat(&desc.digest)
                .await
                .map_err(|e| self.store_err(e, "stat", &desc.digest))?
                .is_some()
        {
            return Ok(StorePushOutcome::AlreadyExists);
        }
        let mut v = oci_digest::VerifyingStream::new(data, desc.digest.clone(), desc.size);
        let mut buf = BytesMut::with_capacity(desc.size as usize);
        while let Some(c) = v.next().await {
            match c {
                Ok(b) => buf.extend_from_slice(&b),
                Err(e) => {
                    return Err(match oci_digest::VerifyError::from_io(&e) {
                        Some(ve) => StoreError::Verify(ve.clone()),
                        None => StoreError::Source {
                            digest: desc.digest.clone(),
                            source: e,
                        },
                    });
                }
            }
        }
        let bytes = buf.freeze();
        if forced {
            // Repair: upload the bytes as a blob, then PUT the manifest and read it back.
            let src: BlobSource = Box::pin(futures_util::stream::iter([Ok(bytes.clone())]));
            self.upload_blob(desc, src)
                .await
                .map_err(|e| self.store_err(e, "upload manifest bytes of", &desc.digest))?;
        }
        self.push_manifest(desc.digest.as_str(), &desc.media_type, bytes)
            .await
            .map_err(|e| self.store_err(e, "push manifest", &desc.digest))?;
        Ok(StorePushOutcome::Written)
    }
}

#[async_trait]
impl ReadStore for Repository {
    async fn stat(&self, digest: &Digest) -> oci_store::Result<Option<u64>> {
        // Manifests are not blobs in every registry (distribution keeps them apart): ask the
        // blob endpoint first, then the manifest endpoint.
        match self
            .blob_stat(digest)
            .await
            .map_err(|e| self.store_err(e, "stat", digest))?
        {
            Some(s) => Ok(Some(s)),
            None => self
                .manifest_stat(digest)
                .await
                .map_err(|e| self.store_err(e, "stat", digest)),
        }
    }

    async fn fetch(&self, desc: &Descriptor) -> oci_store::Result<BlobStream> {
        if is_manifest(desc) {
            let m = self
                .fetch_manifest(desc.digest.as_str())
                .await
                .map_err(|e| self.store_err(e, "fetch manifest", &desc.digest))?;
            if m.bytes.len() as u64 != desc.size {
                return Err(StoreError::SizeMismatch {
                    digest: desc.digest.clone(),
                    expected: desc.size,
                    actual: m.bytes.len() as u64,
                });
            }
            return Ok(oci_store::bytes_stream(m.bytes));
        }
        let s = self
            .fetch_blob(desc)
            .await
            .map_err(|e| self.store_err(e, "fetch blob", &desc.digest))?;
        Ok(Box::pin(s.map(|r| r.map_err(Error::into_io))))
    }

    async fn fetch_unverified(&self, desc: &Descriptor) -> oci_store::Result<BlobStream> {
        if is_manifest(desc) {
            // Manifests are small and fetched whole; the verified path costs nothing here.
            return self.fetch(desc).await;
        }
        let s = self
            .fetch_blob_unverified(desc)
            .await
            .map_err(|e| self.store_err(e, "fetch blob", &desc.digest))?;
        Ok(Box::pin(s.map(|r| r.map_err(Error::into_io))))
    }

    async fn fetch_range(
        &self,
        desc: &Descriptor,
        range: Range<u64>,
    ) -> oci_store::Result<BlobStream> {
        let end = range.end.min(desc.size);
        let start = range.start.min(end);
        if is_manifest(desc) {
            let m = self
                .fetch_manifest(desc.digest.as_str())
                .await
                .map_err(|e| self.store_err(e, "fetch manifest", &desc.digest))?;
            let end = end.min(m.bytes.len() as u64);
            let start = start.min(end);
            return Ok(oci_store::bytes_stream(
                m.bytes.slice(start as usize..end as usize),
            ));
        }
        if start == end {
            return Ok(oci_store::bytes_stream(Bytes::new()));
        }
        let s = self
            .fetch_blob_range(&desc.digest, start..end)
            .await
            .map_err(|e| self.store_err(e, "fetch range of", &desc.digest))?;
        Ok(Box::pin(s.map(|r| r.map_err(Error::into_io))))
    }

    fn location(&self) -> Option<Location> {
        Some(Location::new(self.registry.clone(), self.name.clone()))
    }

    async fn referrers(&self, subject: &Descriptor) -> oci_store::Result<Option<Vec<Descriptor>>> {
        Repository::referrers(self, &subject.digest, None)
            .await
            .map(Some)
            .map_err(|e| self.store_err(e, "referrers of", &subject.digest))
    }
}

#[async_trait]
impl WriteStore for Repository {
    async fn push(
        &self,
        desc: &Descriptor,
        data: BlobStream,
    ) -> oci_store::Result<StorePushOutcome> {
        if is_manifest(desc) {
            return self.push_manifest_bytes(desc, data, false).await;
        }
        match self.push_blob(desc, data).await {
            Ok(PushOutcome::Skipped) => Ok(StorePushOutcome::AlreadyExists),
            Ok(_) => Ok(StorePushOutcome::Written),
            Err(e) => Err(self.store_err(e, "push blob", &desc.digest)),
        }
    }

    async fn writer(&self, key: &str, desc: &Descriptor) -> oci_store::Result<Box<dyn BlobWriter>> {
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

    async fn ingest_status(&self, key: &str) -> oci_store::Result<Option<IngestStatus>> {
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

    async fn ingests(&self) -> oci_store::Result<Vec<IngestStatus>> {
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

    async fn abort_ingest(&self, key: &str) -> oci_store::Result<()> {
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

    async fn delete(&self, digest: &Digest) -> oci_store::Result<()> {
        match self.delete_manifest(digest).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(self.store_err(e, "delete", digest)),
        }
        self.delete_blob(digest)
            .await
            .map_err(|e| self.store_err(e, "delete", digest))
    }

    async fn mount(&self, desc: &Descriptor, from: &Location) -> oci_store::Result<bool> {
        if from.registry != self.registry || from.repository == self.name || is_manifest(desc) {
            return Ok(false);
        }
        self.try_mount(desc, &from.repository)
            .await
            .map_err(|e| self.store_err(e, "mount", &desc.digest))
    }

    async fn push_forced(
        &self,
        desc: &Descriptor,
        data: BlobStream,
    ) -> oci_store::Result<StorePushOutcome> {
        if is_manifest(desc) {
            return self.push_manifest_bytes(desc, data, true).await;
        }
        self.upload_blob(desc, data)
            .await
            .map(|_| StorePushOutcome::Written)
            .map_err(|e| self.store_err(e, "upload blob", &desc.digest))
    }
}

#[async_trait]
impl TagStore for Repository {
    async fn resolve(&self, tag: &str) -> oci_store::Result<Descriptor> {
        match Repository::resolve(self, tag).await {
            Ok(d) => Ok(d),
            Err(e) if e.is_not_found() => Err(StoreError::TagNotFound {
                tag: tag.to_owned(),
            }),
            Err(Error::InvalidReference { .. }) => Err(StoreError::InvalidTag {
                tag: tag.to_owned(),
                reason: "not a valid tag",
            }),
            Err(e) => Err(backend_error(
                format!("resolve {}:{tag}", self.store_name()),
                e,
            )),
        }
    }

    async fn tag(&self, desc: &Descriptor, tag: &str) -> oci_store::Result<()> {
        if !crate::reference::valid_tag(tag) {
            return Err(StoreError::InvalidTag {
                tag: tag.to_owned(),
                reason: "not a valid tag",
            });
        }
        let m = self
            .fetch_manifest(desc.digest.as_str())
            .await
            .map_err(|e| self.store_err(e, "tag", &desc.digest))?;
        self.push_manifest(tag, &desc.media_type, m.bytes)
            .await
            .map(drop)
            .map_err(|e| self.store_err(e, "tag", &desc.digest))
    }

    async fn untag(&self, tag: &str) -> oci_store::Result<()> {
        // Checked before it becomes a URL path: `../../other/manifests/x` would be joined
        // into another repository's manifest.
        if !crate::reference::valid_tag(tag) {
            return Err(StoreError::InvalidTag {
                tag: tag.to_owned(),
                reason: "not a valid tag",
            });
        }
        let url = self
            .url(&format!("manifests/{tag}"))
            .map_err(|e| backend_error(format!("untag {tag}"), e))?;
        let resp = self
            .send(
                Req::new(Method::DELETE, url),
                &[crate::auth::repo_scope(&self.name, "delete")],
            )
            .await
            .map_err(|e| backend_error(format!("untag {}:{tag}", self.store_name()), e))?;
        match resp.status() {
            StatusCode::ACCEPTED | StatusCode::OK => Ok(()),
            StatusCode::NOT_FOUND => Err(StoreError::TagNotFound {
                tag: tag.to_owned(),
            }),
            StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED => {
                Err(StoreError::Unsupported {
                    operation: "untag (deleting a tag) on this registry",
                })
            }
            _ => Err(backend_error(
                format!("untag {}:{tag}", self.store_name()),
                status_error(resp, &Method::DELETE).await,
            )),
        }
    }

    async fn tags(&self) -> oci_store::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut s = std::pin::pin!(Repository::tags(self));
        while let Some(t) = s.next().await {
            match t {
                Ok(t) => out.push(t),
                Err(e) if e.is_not_found() => return Ok(Vec::new()),
                Err(e) => {
                    return Err(backend_error(
                        format!("list tags of {}", self.store_name()),
                        e,
                    ));
                }
            }
        }
        out.sort();
        Ok(out)
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

    async fn commit(mut self: Box<Self>) -> oci_store::Result<StorePushOutcome> {
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
        finished.map(|()| StorePushOutcome::Written).map_err(|e| {
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
