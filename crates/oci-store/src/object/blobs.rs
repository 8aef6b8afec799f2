//! Blobs of a `BucketStore`: reads (verified, ranges), pushes, deletes, and the check a writer
//! makes before it relies on content already stored (no tombstone, then the content exists).

use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use object_store::{GetOptions, GetRange, ObjectStoreExt};
use oci_digest::{Digest, VerifyingStream};
use oci_manifest::Descriptor;
use serde::{Deserialize, Serialize};

use super::backend::{backend_err, is_not_found};
use super::ingest::BucketWriter;
use super::{BucketStore, Keys};
use crate::error::{Result, StoreError};
use crate::lease::{from_millis, new_id};
use crate::traits::{BlobStream, BlobWriter, IngestStatus, PushOutcome, ReadStore, WriteStore};
use crate::util::{check_size, clamp, not_found, validate_ingest_key};

/// A tombstone: a collection is about to remove a blob, and removes nothing after `deadline_ms`
/// (storage time).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Tombstone {
    pub(super) gc: String,
    pub(super) deadline_ms: u64,
}

impl BucketStore {
    /// The size of blob `d` as the storage says now, or `None`.
    pub(super) async fn head_size(&self, d: &Digest) -> Result<Option<u64>> {
        let key = self.keys().blob(d);
        match self.store().head(&key).await {
            Ok(m) => Ok(Some(m.size)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(backend_err(format!("stat {d}"), e)),
        }
    }

    /// The size of blob `d` for a writer that made its reference to `d` visible (a pin, a tag)
    /// and now relies on `d`: waits while a running collection's tombstone names `d` (it either
    /// saw the reference and spares `d`, or removes it), then asks whether `d` exists.
    pub(super) async fn confirm_exists(&self, d: &Digest) -> Result<Option<u64>> {
        let key = self.keys().tombstone(d);
        let limit = self
            .inner
            .options
            .tombstone_wait
            .unwrap_or(self.inner.options.gc_window + Duration::from_secs(60));
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let Some((raw, _)) = self.read_small(&key, "tombstone").await? else {
                break;
            };
            let Ok(t) = serde_json::from_slice::<Tombstone>(&raw) else {
                // Not ours to judge: a collection that cannot read it ignores it too.
                tracing::warn!(%key, "unreadable tombstone ignored");
                break;
            };
            let now = self.now().await?;
            if now.at.checked_sub(now.uncertainty).unwrap_or(now.at) > from_millis(t.deadline_ms) {
                break; // its collection stopped removing
            }
            if started.elapsed() > limit {
                return Err(StoreError::backend(
                    format!(
                        "{d} is being collected by {} and its tombstone stayed",
                        t.gc
                    ),
                    std::io::Error::from(std::io::ErrorKind::TimedOut),
                ));
            }
            tracing::debug!(digest = %d, gc = %t.gc, "waiting for a collection removing this blob");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
        self.head_size(d).await
    }

    /// GETs blob `desc` (whole, or `range`), checking the stored size against the descriptor.
    async fn get_blob(&self, desc: &Descriptor, range: Option<Range<u64>>) -> Result<BlobStream> {
        let key = self.keys().blob(&desc.digest);
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let got = match self.store().get_opts(&key, options).await {
            Ok(g) => g,
            Err(e) if is_not_found(&e) => return Err(not_found(&desc.digest)),
            Err(e) => return Err(backend_err(format!("read {}", desc.digest), e)),
        };
        check_size(desc, got.meta.size)?;
        Ok(Box::pin(
            got.into_stream().map(|r| r.map_err(std::io::Error::other)),
        ))
    }
}

#[async_trait]
impl ReadStore for BucketStore {
    /// Asked of the storage every time. Through a leased view, the content is pinned first,
    /// then found: a collection either sees the pin or is removing the content (then this
    /// waits for it and answers what is left).
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        if self.lease.is_none() {
            return self.head_size(digest).await;
        }
        // A pin of content that is not stored protects nothing and is left alone: another task
        // of the same lease may be uploading it under that pin.
        self.pin(digest).await?;
        self.confirm_exists(digest).await
    }

    async fn fetch(&self, desc: &Descriptor) -> Result<BlobStream> {
        let stream = self.get_blob(desc, None).await?;
        Ok(Box::pin(VerifyingStream::new(
            stream,
            desc.digest.clone(),
            desc.size,
        )))
    }

    async fn fetch_unverified(&self, desc: &Descriptor) -> Result<BlobStream> {
        self.get_blob(desc, None).await
    }

    async fn fetch_range(&self, desc: &Descriptor, range: Range<u64>) -> Result<BlobStream> {
        let size = self
            .head_size(&desc.digest)
            .await?
            .ok_or_else(|| not_found(&desc.digest))?;
        let r = clamp(range, size);
        if r.is_empty() {
            return Ok(crate::traits::bytes_stream(bytes::Bytes::new()));
        }
        let key = self.keys().blob(&desc.digest);
        let options = GetOptions {
            range: Some(GetRange::Bounded(r)),
            ..GetOptions::default()
        };
        let got = match self.store().get_opts(&key, options).await {
            Ok(g) => g,
            Err(e) if is_not_found(&e) => return Err(not_found(&desc.digest)),
            Err(e) => return Err(backend_err(format!("read a range of {}", desc.digest), e)),
        };
        Ok(Box::pin(
            got.into_stream().map(|r| r.map_err(std::io::Error::other)),
        ))
    }
}

#[async_trait]
impl WriteStore for BucketStore {
    async fn push(&self, desc: &Descriptor, mut data: BlobStream) -> Result<PushOutcome> {
        if self.lease.is_some() {
            self.pin(&desc.digest).await?;
        }
        let found = if self.lease.is_some() {
            self.confirm_exists(&desc.digest).await?
        } else {
            self.head_size(&desc.digest).await?
        };
        if found.is_some() {
            return Ok(PushOutcome::AlreadyExists);
        }
        let mut w = BucketWriter::open(self, &new_id("push-"), desc, false).await?;
        let res = async {
            while let Some(chunk) = data.next().await {
                let chunk = chunk.map_err(|source| StoreError::Source {
                    digest: desc.digest.clone(),
                    source,
                })?;
                w.write(chunk).await?;
            }
            Ok(())
        }
        .await;
        match res {
            Ok(()) => Box::new(w).commit().await,
            Err(e) => {
                let _ = Box::new(w).abort().await;
                Err(e)
            }
        }
    }

    async fn writer(&self, key: &str, desc: &Descriptor) -> Result<Box<dyn BlobWriter>> {
        Ok(Box::new(BucketWriter::open(self, key, desc, true).await?))
    }

    async fn ingest_status(&self, key: &str) -> Result<Option<IngestStatus>> {
        validate_ingest_key(key)?;
        let hashed = Keys::hash_key(key);
        self.settle(&hashed).await;
        Ok(self
            .read_ingest(&hashed)
            .await?
            .map(|(r, meta)| r.status(&meta)))
    }

    async fn ingests(&self) -> Result<Vec<IngestStatus>> {
        self.settle_all().await;
        let mut out: Vec<IngestStatus> = self
            .list_ingests()
            .await?
            .into_iter()
            .filter_map(|i| i.record.map(|(r, meta)| r.status(&meta)))
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn abort_ingest(&self, key: &str) -> Result<()> {
        validate_ingest_key(key)?;
        let hashed = Keys::hash_key(key);
        self.settle(&hashed).await;
        if self.locally_held(&hashed) {
            return Err(StoreError::IngestBusy {
                key: key.to_owned(),
            });
        }
        let Some((record, meta)) = self.read_ingest(&hashed).await? else {
            return Err(StoreError::IngestNotFound {
                key: key.to_owned(),
            });
        };
        if self.held_elsewhere(&record, &meta).await? {
            return Err(StoreError::IngestBusy {
                key: key.to_owned(),
            });
        }
        self.remove_ingest(&hashed, &record).await
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        if self.head_size(digest).await?.is_none() {
            return Err(not_found(digest));
        }
        let key = self.keys().blob(digest);
        match self.store().delete(&key).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Err(not_found(digest)),
            Err(e) => Err(backend_err(format!("delete {digest}"), e)),
        }
    }
}
