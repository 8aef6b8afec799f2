//! A registry repository as an `oci-store` store ([`ReadStore`], [`WriteStore`], [`TagStore`]),
//! so `copy()` works between memory, layout and registry. The media type of a descriptor
//! decides between the manifest and blob endpoints. The store's existence answers are the
//! registry's (`HEAD`); checking them is the copy's policy ([`oci_store::VerifyMode`]). Upload
//! sessions as resumable ingests are in `ingest.rs`, their writer (streamed or chunked) in
//! `writer.rs`.
//!
//! Retries: called by a copy, these methods run with the copy's [`oci_store::RetryBudget`]
//! current, and the client then sends each request once (429s and resumption at an offset
//! aside), leaving retries to the copy's one budget; called from anywhere else they keep the
//! client's [`ClientConfig::retry`](crate::ClientConfig::retry).

mod ingest;
mod writer;

pub(crate) use ingest::Ingests;

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use oci_digest::Digest;
use oci_manifest::{Descriptor, media_types};
use oci_store::{
    BlobStream, BlobWriter, IngestStatus, Location, Opened, PushOutcome, ReadStore, StoreError,
    TagStore, WriteStore,
};
use reqwest::{Method, StatusCode};

use crate::client::{Req, status_error};
use crate::repository::{BlobPush, BlobSource, FetchedManifest, refuses_streaming};
use crate::{Error, Repository};

/// The manifests a [`Repository`] handle stored last (their bytes, which it verified before
/// sending them), so that tagging one just stored needs no `GET` to read it back. Content is
/// named by its digest, so the bytes cannot go stale; whether the registry still has them is
/// the tag `PUT`'s answer.
#[derive(Default)]
pub(crate) struct Pushed(Mutex<VecDeque<(Digest, Bytes)>>);

impl Pushed {
    /// How many manifests are kept (a copy tags its root right after storing it).
    const KEPT: usize = 4;

    fn lock(&self) -> MutexGuard<'_, VecDeque<(Digest, Bytes)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remember(&self, digest: &Digest, bytes: &Bytes) {
        let mut kept = self.lock();
        kept.retain(|(d, _)| d != digest);
        if kept.len() == Self::KEPT {
            kept.pop_front();
        }
        kept.push_back((digest.clone(), bytes.clone()));
    }

    fn get(&self, digest: &Digest) -> Option<Bytes> {
        let kept = self.lock();
        kept.iter()
            .find(|(d, _)| d == digest)
            .map(|(_, b)| b.clone())
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
        e if refused_as_is(&e) => StoreError::backend(
            context,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        ),
        e => StoreError::backend(context, e),
    }
}

/// Whether the registry refused the request as it stands, so that sending it again cannot
/// change the answer ([`StoreError::is_transient`] is then false: a copy does not spend its
/// retry budget on it): a `405 Method Not Allowed`, or another `4xx` whose error code says the
/// request itself is wrong (`MANIFEST_INVALID`, `MANIFEST_UNVERIFIED`, `NAME_INVALID`,
/// `TAG_INVALID`, `UNSUPPORTED`, `DENIED`). Other `4xx` answers may concern the state of an
/// upload session that a new attempt starts again (`BLOB_UPLOAD_INVALID`, `DIGEST_INVALID`,
/// `RANGE_INVALID`), and a `5xx` is the registry's own trouble: both stay transient.
fn refused_as_is(e: &Error) -> bool {
    const CODES: [&str; 6] = [
        "MANIFEST_INVALID",
        "MANIFEST_UNVERIFIED",
        "NAME_INVALID",
        "TAG_INVALID",
        "UNSUPPORTED",
        "DENIED",
    ];
    match e.status() {
        Some(405) => true,
        Some(s) if (400..500).contains(&s) && !matches!(s, 404 | 408 | 429) => e
            .registry_errors()
            .is_some_and(|errs| errs.0.iter().any(|x| CODES.contains(&x.code.as_str()))),
        _ => false,
    }
}

/// Whether `desc` is served by the manifest endpoint: a manifest or index, or a Docker schema 1
/// manifest (read to be converted by a copy).
fn is_manifest(desc: &Descriptor) -> bool {
    media_types::is_manifest(&desc.media_type) || media_types::is_schema1(&desc.media_type)
}

impl Repository {
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
            Error::SizeMismatch {
                expected, actual, ..
            } => StoreError::SizeMismatch {
                digest: digest.clone(),
                expected,
                actual,
            },
            Error::Source { source, .. } => StoreError::Source {
                digest: digest.clone(),
                source,
            },
            // A refused streamed upload: the next attempt sends chunks, and may succeed.
            e if refuses_streaming(&e) && self.ingests.streaming_refused() => {
                StoreError::backend(format!("{what} {digest} in {}", self.store_name()), e)
            }
            other => backend_error(format!("{what} {digest} in {}", self.store_name()), other),
        }
    }

    /// Maps a client error of resolving `tag` to a store error.
    fn resolve_err(&self, tag: &str, e: Error) -> StoreError {
        match e {
            e if e.is_not_found() => StoreError::TagNotFound {
                tag: tag.to_owned(),
            },
            Error::InvalidReference { .. } => StoreError::InvalidTag {
                tag: tag.to_owned(),
                reason: "not a valid tag",
            },
            e => backend_error(format!("resolve {}:{tag}", self.store_name()), e),
        }
    }

    /// The manifest `desc` names, fetched by digest (verified) and of the size `desc` says.
    async fn manifest_of(
        &self,
        desc: &Descriptor,
        what: &str,
    ) -> Result<FetchedManifest, StoreError> {
        let m = self
            .fetch_manifest(desc.digest.as_str())
            .await
            .map_err(|e| self.store_err(e, what, &desc.digest))?;
        // A registry signs a schema 1 manifest again on every GET: its digest (the payload's)
        // was checked, its size is that of one signing.
        let signed =
            media_types::essence(&desc.media_type) == media_types::DOCKER_MANIFEST_V1_SIGNED;
        if !signed && m.bytes.len() as u64 != desc.size {
            return Err(StoreError::SizeMismatch {
                digest: desc.digest.clone(),
                expected: desc.size,
                actual: m.bytes.len() as u64,
            });
        }
        Ok(m)
    }

    async fn manifest_stat(&self, digest: &Digest) -> Result<Option<u64>, Error> {
        match self.resolve(digest.as_str()).await {
            Ok(d) => Ok(Some(d.size)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`StoreError::ManifestTooLarge`] when `desc` is over the client's manifest size limit
    /// (checked before any byte is sent), else `None`.
    fn oversized(&self, desc: &Descriptor) -> Option<StoreError> {
        let limit = self.client.inner.config.max_manifest_size;
        (desc.size > limit).then(|| StoreError::ManifestTooLarge {
            digest: desc.digest.clone(),
            size: desc.size,
            limit,
        })
    }

    async fn push_manifest_bytes(
        &self,
        desc: &Descriptor,
        data: BlobSource,
        forced: bool,
    ) -> Result<PushOutcome, StoreError> {
        if let Some(e) = self.oversized(desc) {
            return Err(e);
        }
        if !forced
            && self
                .manifest_stat(&desc.digest)
                .await
                .map_err(|e| self.store_err(e, "stat", &desc.digest))?
                .is_some()
        {
            return Ok(PushOutcome::AlreadyExists);
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
        self.push_manifest(desc.digest.as_str(), &desc.media_type, bytes.clone())
            .await
            .map_err(|e| self.store_err(e, "push manifest", &desc.digest))?;
        self.pushed.remember(&desc.digest, &bytes);
        Ok(PushOutcome::Written)
    }
}

#[async_trait]
impl ReadStore for Repository {
    async fn stat(&self, digest: &Digest) -> oci_store::Result<Option<u64>> {
        // Manifests are not blobs in every registry (distribution keeps them apart): ask the
        // blob endpoint first, then the manifest endpoint.
        match self
            .blob_exists_head(digest)
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

    async fn stat_descriptor(&self, desc: &Descriptor) -> oci_store::Result<Option<u64>> {
        // The media type names the endpoint; a push of `desc` would go to the same one.
        let answer = if is_manifest(desc) {
            self.manifest_stat(&desc.digest).await
        } else {
            self.blob_exists_head(&desc.digest).await
        };
        answer.map_err(|e| self.store_err(e, "stat", &desc.digest))
    }

    async fn fetch(&self, desc: &Descriptor) -> oci_store::Result<BlobStream> {
        if is_manifest(desc) {
            let m = self.manifest_of(desc, "fetch manifest").await?;
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
    async fn push(&self, desc: &Descriptor, data: BlobStream) -> oci_store::Result<PushOutcome> {
        if is_manifest(desc) {
            return self.push_manifest_bytes(desc, data, false).await;
        }
        match self.push_blob(desc, data).await {
            Ok(BlobPush::Skipped) => Ok(PushOutcome::AlreadyExists),
            Ok(_) => Ok(PushOutcome::Written),
            Err(e) => Err(self.store_err(e, "push blob", &desc.digest)),
        }
    }

    async fn writer(&self, key: &str, desc: &Descriptor) -> oci_store::Result<Box<dyn BlobWriter>> {
        oci_store::validate_ingest_key(key)?;
        self.open_writer(key, desc).await
    }

    async fn writer_unless_present(
        &self,
        key: &str,
        desc: &Descriptor,
    ) -> oci_store::Result<Opened> {
        oci_store::validate_ingest_key(key)?;
        self.open_writer_unless_present(key, desc).await
    }

    async fn ingest_status(&self, key: &str) -> oci_store::Result<Option<IngestStatus>> {
        self.session_status(key).await
    }

    async fn ingests(&self) -> oci_store::Result<Vec<IngestStatus>> {
        self.sessions().await
    }

    async fn abort_ingest(&self, key: &str) -> oci_store::Result<()> {
        self.abort_session(key).await
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
    ) -> oci_store::Result<PushOutcome> {
        if is_manifest(desc) {
            return self.push_manifest_bytes(desc, data, true).await;
        }
        self.upload_blob(desc, data)
            .await
            .map(|_| PushOutcome::Written)
            .map_err(|e| self.store_err(e, "upload blob", &desc.digest))
    }
}

#[async_trait]
impl TagStore for Repository {
    async fn resolve(&self, tag: &str) -> oci_store::Result<Descriptor> {
        Repository::resolve(self, tag)
            .await
            .map_err(|e| self.resolve_err(tag, e))
    }

    async fn resolve_with_content(
        &self,
        tag: &str,
    ) -> oci_store::Result<(Descriptor, Option<Bytes>)> {
        // One GET: the descriptor and the bytes (verified against the pinned digest or the
        // `Docker-Content-Digest`, else hashed), where `resolve` and a fetch are two requests.
        self.fetch_manifest(tag)
            .await
            .map(|m| (m.descriptor, Some(m.bytes)))
            .map_err(|e| self.resolve_err(tag, e))
    }

    async fn tag(&self, desc: &Descriptor, tag: &str) -> oci_store::Result<()> {
        if oci_reference::validate_tag(tag).is_err() {
            return Err(StoreError::InvalidTag {
                tag: tag.to_owned(),
                reason: "not a valid tag",
            });
        }
        // A manifest this handle just stored is tagged with the bytes it sent; any other is
        // read back from the registry first.
        let bytes = match self.pushed.get(&desc.digest) {
            Some(b) if b.len() as u64 != desc.size => {
                return Err(StoreError::SizeMismatch {
                    digest: desc.digest.clone(),
                    expected: desc.size,
                    actual: b.len() as u64,
                });
            }
            Some(b) => b,
            None => self.manifest_of(desc, "tag").await?.bytes,
        };
        self.push_manifest(tag, &desc.media_type, bytes)
            .await
            .map(drop)
            .map_err(|e| self.store_err(e, "tag", &desc.digest))
    }

    async fn store_tagged(
        &self,
        desc: &Descriptor,
        bytes: &Bytes,
        tag: &str,
    ) -> oci_store::Result<bool> {
        if !is_manifest(desc) {
            return Ok(false);
        }
        if oci_reference::validate_tag(tag).is_err() {
            return Err(StoreError::InvalidTag {
                tag: tag.to_owned(),
                reason: "not a valid tag",
            });
        }
        if let Some(e) = self.oversized(desc) {
            return Err(e);
        }
        // Checked here: by tag, `push_manifest` has no digest to check the bytes against.
        let mut check = oci_digest::Verifier::new(desc.digest.clone(), desc.size);
        check
            .update(bytes)
            .and_then(|()| check.finish())
            .map_err(StoreError::Verify)?;
        let digest = self
            .push_manifest(tag, &desc.media_type, bytes.clone())
            .await
            .map_err(|e| self.store_err(e, "push manifest", &desc.digest))?;
        if digest != desc.digest {
            // The same bytes under another algorithm: the tag PUT named them by sha256.
            self.push_manifest(desc.digest.as_str(), &desc.media_type, bytes.clone())
                .await
                .map_err(|e| self.store_err(e, "push manifest", &desc.digest))?;
        }
        self.pushed.remember(&desc.digest, bytes);
        Ok(true)
    }

    async fn untag(&self, tag: &str) -> oci_store::Result<()> {
        // Checked before it becomes a URL path: `../../other/manifests/x` would be joined
        // into another repository's manifest.
        if oci_reference::validate_tag(tag).is_err() {
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
