//! Tags of a `BucketStore`: `index.json`, changed only by compare-and-swap on its ETag
//! (`If-Match`), retried on conflict, so concurrent taggers on different machines never lose
//! each other's tags.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::{PutMode, UpdateVersion};
use oci_manifest::Descriptor;

use super::BucketStore;
use super::backend::{backend_err, is_not_found, is_precondition, put};
use super::index::{IndexFile, MAX_INDEX_SIZE};
use crate::error::{Result, StoreError};
use crate::traits::TagStore;
use crate::util::{check_size, not_found, validate_tag};

/// Attempts of one compare-and-swap of `index.json` before giving up.
const CAS_ATTEMPTS: u32 = 200;

/// `index.json` as read, with the version to swap against.
pub(super) struct IndexVersion {
    pub(super) index: IndexFile,
    pub(super) version: UpdateVersion,
}

impl BucketStore {
    /// Reads and parses `index.json`.
    pub(super) async fn read_index(&self) -> Result<IndexVersion> {
        let key = self.keys().index();
        let Some((raw, meta)) = self
            .read_limited(&key, "index.json", MAX_INDEX_SIZE)
            .await?
        else {
            return Err(StoreError::NotALayout {
                path: key.to_string().into(),
                reason: "no index.json",
            });
        };
        let index = IndexFile::parse(std::path::Path::new(key.as_ref()), &raw)?;
        Ok(IndexVersion {
            index,
            version: UpdateVersion {
                e_tag: meta.e_tag,
                version: meta.version,
            },
        })
    }

    /// Applies `change` to `index.json` by compare-and-swap, reading again after every
    /// conflict; `change` says whether it changed anything (nothing is written otherwise) or
    /// fails (nothing is written).
    pub(super) async fn update_index(
        &self,
        mut change: impl FnMut(&mut IndexFile) -> Result<bool>,
    ) -> Result<()> {
        let key = self.keys().index();
        for attempt in 0..CAS_ATTEMPTS {
            let IndexVersion { mut index, version } = self.read_index().await?;
            if !change(&mut index)? {
                return Ok(());
            }
            let raw = Bytes::from(index.to_bytes()?);
            match put(self.store(), &key, raw, PutMode::Update(version)).await {
                Ok(_) => return Ok(()),
                Err(e) if is_precondition(&e) || is_not_found(&e) => {
                    tracing::debug!(attempt, "index.json changed meanwhile; again");
                    // Spread the retries of taggers that collided.
                    let spread = u64::from(attempt.min(10)) * 5 + jitter(20);
                    tokio::time::sleep(Duration::from_millis(spread)).await;
                }
                Err(e) => return Err(backend_err(format!("write {key}"), e)),
            }
        }
        Err(StoreError::backend(
            format!("update {key}: it changed under every one of {CAS_ATTEMPTS} attempts"),
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        ))
    }
}

/// A few milliseconds of jitter, from the time (no random number generator needed).
pub(super) fn jitter(max_ms: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos) % max_ms.max(1)
}

#[async_trait]
impl TagStore for BucketStore {
    async fn resolve(&self, tag: &str) -> Result<Descriptor> {
        self.read_index()
            .await?
            .index
            .resolve(tag)
            .cloned()
            .ok_or_else(|| StoreError::TagNotFound {
                tag: tag.to_owned(),
            })
    }

    /// Checks that the content is stored with the descriptor's size, points the tag at it by
    /// compare-and-swap, then checks again that no collection is removing the content (the tag
    /// is visible first, so a collection either sees it or has doomed the content already, and
    /// then the tag is taken back and the content reported missing).
    async fn tag(&self, desc: &Descriptor, tag: &str) -> Result<()> {
        validate_tag(tag)?;
        let size = self.head_size(&desc.digest).await?;
        check_size(desc, size.ok_or_else(|| not_found(&desc.digest))?)?;
        let t = tag.to_owned();
        self.update_index(|idx| {
            idx.set_tag(desc, &t);
            Ok(true)
        })
        .await?;
        if self.confirm_exists(&desc.digest).await?.is_none() {
            // A collection removed it between the check and the tag: take the tag back if it
            // still points there.
            let t = tag.to_owned();
            let d = desc.digest.clone();
            self.update_index(|idx| {
                Ok(idx.resolve(&t).is_some_and(|e| e.digest == d) && idx.remove_tag(&t))
            })
            .await?;
            return Err(not_found(&desc.digest));
        }
        Ok(())
    }

    async fn untag(&self, tag: &str) -> Result<()> {
        let mut found = false;
        self.update_index(|idx| {
            found = idx.remove_tag(tag);
            Ok(found)
        })
        .await?;
        if !found {
            return Err(StoreError::TagNotFound {
                tag: tag.to_owned(),
            });
        }
        Ok(())
    }

    async fn tags(&self) -> Result<Vec<String>> {
        Ok(self.read_index().await?.index.tags())
    }
}
