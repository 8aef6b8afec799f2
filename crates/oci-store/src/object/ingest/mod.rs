//! Ingests of a `BucketStore`: the resumable writer (multipart upload, parts of a bounded size
//! uploaded a few at a time while the next is filled, a record of the parts and of the hash
//! state after them, the tail kept when a writer is dropped), and the commit that makes a
//! verified upload visible create-only.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, ObjectMeta, ObjectStoreExt, PutMode, PutPayload, UpdateVersion,
};
use oci_digest::{Digester, Verifier, VerifyError};
use oci_manifest::Descriptor;
use serde::{Deserialize, Serialize};

use super::backend::{Commit, backend_err, is_exists, is_not_found, is_precondition, put};
use super::{BucketStore, Keys, Local};
use crate::error::{Result, StoreError};
use crate::lease::{from_millis, new_id, to_millis};
use crate::traits::{BlobWriter, IngestStatus, PushOutcome};
use crate::util::validate_ingest_key;

mod commit;
mod writer;

pub(super) use self::writer::BucketWriter;

/// S3's smallest part.
const MIN_PART_SIZE: u64 = 5 << 20;

/// Largest part size taken over from another writer's record (the part being filled is held in
/// memory).
const MAX_TAKEN_PART: u64 = 256 << 20;

/// Highest part number S3 takes.
const MAX_PARTS: u32 = 10_000;

/// Parts a blob is planned to need at most.
const PLANNED_PARTS: u64 = 9_000;

/// Record of an ingest, `<state>/ingests/<sha256 of key>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct IngestRecord {
    pub(super) key: String,
    pub(super) expected: Descriptor,
    pub(super) started_ms: u64,
    /// The writer holding the ingest (`<backend instance>/<writer>`), if any.
    #[serde(default)]
    pub(super) owner: Option<String>,
    /// How long the owner holds it after the record's last change.
    pub(super) lock_ttl_ms: u64,
    /// The multipart upload, once the first part was cut.
    #[serde(default)]
    pub(super) upload: Option<Upload>,
    /// The parts uploaded, in order.
    #[serde(default)]
    pub(super) parts: Vec<Part>,
    /// The next part number (0-based) to use: part numbers are contiguous (an upload is
    /// completed with its parts numbered 1, 2, ... in order), so a writer that resumes or takes
    /// over uploads again from the first part not recorded.
    #[serde(default)]
    pub(super) next_part: u32,
    /// The size of every part but the last, so that a writer taking over cuts the same parts
    /// (a part the silent owner may still upload then carries the same bytes).
    #[serde(default)]
    pub(super) part_size: u64,
    /// The hash state after the parts (an `oci_digest::Digester` saved state).
    #[serde(default)]
    pub(super) state: Option<Vec<u8>>,
    /// Bytes after the parts, saved in the `.tail` object.
    #[serde(default)]
    pub(super) tail: Option<Tail>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Upload {
    pub(super) id: String,
    /// The key the upload completes to.
    pub(super) target: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Part {
    pub(super) n: u32,
    pub(super) etag: String,
    pub(super) size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Tail {
    pub(super) size: u64,
    pub(super) etag: Option<String>,
}

impl IngestRecord {
    fn parts_size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }

    pub(super) fn status(&self, meta: &ObjectMeta) -> IngestStatus {
        IngestStatus::new(
            self.key.clone(),
            self.expected.clone(),
            self.parts_size() + self.tail.as_ref().map_or(0, |t| t.size),
            from_millis(self.started_ms),
            SystemTime::from(meta.last_modified),
        )
    }
}

/// An ingest found by a listing.
pub(super) struct Listed {
    pub(super) hashed: String,
    pub(super) meta: ObjectMeta,
    /// `None` when the record cannot be read.
    pub(super) record: Option<(IngestRecord, ObjectMeta)>,
}

impl BucketStore {
    pub(super) async fn read_ingest(
        &self,
        hashed: &str,
    ) -> Result<Option<(IngestRecord, ObjectMeta)>> {
        let key = self.keys().ingest(hashed, "json");
        let Some((raw, meta)) = self.read_small(&key, "ingest record").await? else {
            return Ok(None);
        };
        match serde_json::from_slice::<IngestRecord>(&raw) {
            Ok(r) => Ok(Some((r, meta))),
            Err(e) => Err(StoreError::CorruptLayout {
                path: key.to_string().into(),
                reason: "invalid ingest record".into(),
                source: Some(e),
            }),
        }
    }

    /// Every ingest record under the state prefix.
    pub(super) async fn list_ingests(&self) -> Result<Vec<Listed>> {
        let prefix = self.keys().ingests();
        let metas = self.list(&prefix).await?;
        let mut out = Vec::new();
        for meta in metas {
            let Some((hashed, ext)) = self.keys().parse_ingest(&meta.location) else {
                continue;
            };
            if ext != "json" {
                continue;
            }
            let record = match self.read_ingest(&hashed).await {
                Ok(r) => r,
                Err(StoreError::CorruptLayout { .. }) => None,
                Err(e) => return Err(e),
            };
            if record.is_none() && self.store().head(&meta.location).await.is_err() {
                continue; // removed meanwhile
            }
            out.push(Listed {
                hashed,
                meta,
                record,
            });
        }
        Ok(out)
    }

    /// Every object under `prefix`.
    pub(super) async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        let mut s = self.store().list(Some(prefix));
        let mut out = Vec::new();
        while let Some(m) = futures_util::StreamExt::next(&mut s).await {
            out.push(m.map_err(|e| backend_err(format!("list {prefix}"), e))?);
        }
        Ok(out)
    }

    pub(super) fn locally_held(&self, hashed: &str) -> bool {
        self.inner
            .local
            .lock()
            .map(|m| m.get(hashed).is_some_and(|l| l.held))
            .unwrap_or(true)
    }

    /// Whether a writer of another process (or another backend instance) holds the ingest: its
    /// owner is set and the record changed within its lock time (storage time).
    pub(super) async fn held_elsewhere(&self, r: &IngestRecord, meta: &ObjectMeta) -> Result<bool> {
        let Some(owner) = &r.owner else {
            return Ok(false);
        };
        if owner.starts_with(&format!("{}/", self.inner.backend.inner.instance)) {
            return Ok(false); // this process's, and no writer of it holds it (checked first)
        }
        let now = self.now().await?;
        Ok(lock_live(
            r,
            meta,
            now.at.checked_sub(now.uncertainty).unwrap_or(now.at),
        ))
    }

    /// Removes an ingest: its upload, tail, data and record.
    pub(super) async fn remove_ingest(&self, hashed: &str, r: &IngestRecord) -> Result<()> {
        let own = [
            self.keys().blob(&r.expected.digest).to_string(),
            self.keys().ingest(hashed, "data").to_string(),
        ];
        if let Some(u) = r.upload.as_ref().filter(|u| own.contains(&u.target)) {
            let target = Path::from(u.target.as_str());
            match self.multipart().abort_multipart(&target, &u.id).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "abort of an upload failed; a bucket lifecycle rule removes it")
                }
            }
        }
        for ext in ["tail", "data", "json"] {
            let key = self.keys().ingest(hashed, ext);
            match self.store().delete(&key).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(backend_err(format!("remove {key}"), e)),
            }
        }
        Ok(())
    }

    pub(super) fn multipart(&self) -> &Arc<dyn MultipartStore> {
        &self.inner.backend.inner.multipart
    }

    /// Writes an ingest record: create-only when `version` is `None`, else compare-and-swap.
    async fn write_record(
        &self,
        hashed: &str,
        r: &IngestRecord,
        version: Option<UpdateVersion>,
    ) -> std::result::Result<UpdateVersion, object_store::Error> {
        let key = self.keys().ingest(hashed, "json");
        let raw = Bytes::from(
            serde_json::to_vec(r).map_err(|e| object_store::Error::Generic {
                store: "oci-store",
                source: Box::new(e),
            })?,
        );
        let mode = match version {
            None => PutMode::Create,
            Some(v) => PutMode::Update(v),
        };
        put(self.store(), &key, raw, mode)
            .await
            .map(UpdateVersion::from)
    }
}

/// Whether the owner of `r` still holds it at storage time `now` (the record's
/// `last_modified`, to the second, plus the lock time).
pub(super) fn lock_live(r: &IngestRecord, meta: &ObjectMeta, now: SystemTime) -> bool {
    r.owner.is_some()
        && now
            < SystemTime::from(meta.last_modified)
                + Duration::from_secs(1)
                + Duration::from_millis(r.lock_ttl_ms)
}

impl BucketStore {
    /// Aborts the upload of `r` (best effort).
    async fn remove_upload(&self, hashed: &str, r: &IngestRecord) {
        let own = [
            self.keys().blob(&r.expected.digest).to_string(),
            self.keys().ingest(hashed, "data").to_string(),
        ];
        if let Some(u) = r.upload.as_ref().filter(|u| own.contains(&u.target)) {
            let target = Path::from(u.target.as_str());
            let _ = self.multipart().abort_multipart(&target, &u.id).await;
        }
    }

    /// Ends this process's hold of ingest `hashed`; `saving` is the task that saves a dropped
    /// writer's bytes.
    fn release_local(
        &self,
        hashed: &str,
        saving: Option<futures_util::future::Shared<futures_util::future::BoxFuture<'static, ()>>>,
    ) {
        if let Ok(mut map) = self.inner.local.lock() {
            match saving {
                Some(s) => {
                    let l = map.entry(hashed.to_owned()).or_default();
                    l.held = false;
                    l.saving = Some(s);
                }
                None => {
                    map.remove(hashed);
                }
            }
        }
    }
}
