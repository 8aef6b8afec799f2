//! Pushing blobs: skip what the registry says it has, cross-repository mounts, monolithic and
//! chunked uploads (the next chunk read while the current one is sent), and deleting a blob.
//! The upload session's requests are in `session.rs`.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use oci_digest::Digest;
use oci_manifest::Descriptor;
use reqwest::{Method, StatusCode, Url};
use tracing::{debug, warn};

use super::session::location;
use super::{BlobSource, Repository};
use crate::Error;
use crate::auth::repo_scope;
use crate::client::{Req, status_error};

/// What a blob push did: skipped, mounted, or how it was uploaded. (Not to be confused with
/// `oci_store::PushOutcome`, the store traits' "written or already there".)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobPush {
    /// The registry said it already had the blob (`HEAD`, see
    /// [`Repository::blob_exists`]).
    Skipped,
    /// The registry mounted it from another repository.
    Mounted,
    /// Uploaded in one request.
    Monolithic,
    /// Uploaded in this many chunks.
    Chunked {
        /// Chunks sent (retries of a chunk not counted).
        chunks: u32,
        /// Chunk sends that failed and were resumed in place.
        resumed: u32,
    },
}

impl Repository {
    /// Pushes a blob: skips it when the registry says it has it ([`Repository::blob_exists`]),
    /// else uploads it (monolithic up to
    /// [`ClientConfig::monolithic_max`](crate::ClientConfig::monolithic_max), else chunked).
    /// The content is verified against `desc` as it is read; a mismatch aborts the upload before
    /// it is committed.
    ///
    /// The registry's existence answer is trusted: to check it (a registry that claims a blob
    /// it lost), copy with [`oci_store::VerifyMode`], which reads the content back and repairs.
    ///
    /// # Errors
    /// [`Error::Verify`] when the content does not match `desc`, [`Error::Source`] when the
    /// source stream fails, [`Error::DigestHeaderMismatch`] when the registry commits another
    /// digest, and registry/transport errors.
    pub async fn push_blob(&self, desc: &Descriptor, data: BlobSource) -> Result<BlobPush, Error> {
        self.push_blob_inner(desc, data, None).await
    }

    /// Like [`push_blob`](Repository::push_blob), first trying a cross-repository mount from
    /// `from` (a repository of the same registry). A registry that answers 202 instead starts
    /// an upload, which is used.
    ///
    /// # Errors
    /// As [`push_blob`](Repository::push_blob).
    pub async fn push_blob_with_mount(
        &self,
        desc: &Descriptor,
        data: BlobSource,
        from: &str,
    ) -> Result<BlobPush, Error> {
        self.push_blob_inner(desc, data, Some(from)).await
    }

    async fn push_blob_inner(
        &self,
        desc: &Descriptor,
        data: BlobSource,
        mount_from: Option<&str>,
    ) -> Result<BlobPush, Error> {
        if self.blob_exists(desc).await? {
            debug!(digest = %desc.digest, repository = %self.name, "blob exists, skipped");
            return Ok(BlobPush::Skipped);
        }
        let mut location = None;
        if let Some(from) = mount_from.filter(|f| *f != self.name) {
            match self.mount(desc, from).await? {
                MountResult::Mounted => return Ok(BlobPush::Mounted),
                MountResult::Upload(l) => location = Some(l),
            }
        }
        self.upload(desc, data, location).await
    }

    /// Uploads a blob without checking for its existence first (repairs content a registry
    /// claims but lost).
    ///
    /// # Errors
    /// As [`push_blob`](Repository::push_blob).
    pub async fn upload_blob(
        &self,
        desc: &Descriptor,
        data: BlobSource,
    ) -> Result<BlobPush, Error> {
        self.upload(desc, data, None).await
    }

    /// Tries a cross-repository mount only: `Ok(true)` when the registry says the blob is now
    /// here (201), `Ok(false)` when it wants an upload instead (the upload session it opened is
    /// cancelled).
    ///
    /// # Errors
    /// Registry and transport errors.
    pub async fn try_mount(&self, desc: &Descriptor, from: &str) -> Result<bool, Error> {
        match self.mount(desc, from).await? {
            MountResult::Mounted => Ok(true),
            MountResult::Upload(loc) => {
                self.cancel_upload(&loc).await;
                Ok(false)
            }
        }
    }

    async fn mount(&self, desc: &Descriptor, from: &str) -> Result<MountResult, Error> {
        oci_reference::validate_repository(from)?;
        let mut url = self.url("blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", desc.digest.as_str())
            .append_pair("from", from);
        let scopes = vec![
            repo_scope(&self.name, "pull,push"),
            repo_scope(from, "pull"),
        ];
        let resp = self
            .send(Req::new(Method::POST, url.clone()), &scopes)
            .await?;
        match resp.status() {
            StatusCode::CREATED => {
                debug!(digest = %desc.digest, from, to = %self.name, "mounted");
                Ok(MountResult::Mounted)
            }
            StatusCode::ACCEPTED => Ok(MountResult::Upload(location(&resp, &url)?)),
            _ => Err(status_error(resp, &Method::POST).await),
        }
    }

    async fn upload(
        &self,
        desc: &Descriptor,
        data: BlobSource,
        location: Option<Url>,
    ) -> Result<BlobPush, Error> {
        let (mut loc, min_chunk) = match location {
            Some(l) => (l, None),
            None => self.start_upload().await?,
        };
        let cfg = &self.client.inner.config;
        let mut source = oci_digest::VerifyingStream::new(data, desc.digest.clone(), desc.size);
        let verify_err = |e: std::io::Error| match oci_digest::VerifyError::from_io(&e) {
            Some(v) => Error::Verify {
                repository: self.name.clone(),
                digest: desc.digest.clone(),
                source: v.clone(),
            },
            None => Error::Source {
                context: format!("reading blob {} to push to {}", desc.digest, self.name),
                source: e,
            },
        };
        if desc.size <= cfg.monolithic_max {
            let mut buf = BytesMut::with_capacity(desc.size as usize);
            while let Some(item) = source.next().await {
                match item {
                    Ok(b) => buf.extend_from_slice(&b),
                    Err(e) => {
                        self.cancel_upload(&loc).await;
                        return Err(verify_err(e));
                    }
                }
            }
            self.finish_upload(desc, &loc, Some(buf.freeze())).await?;
            return Ok(BlobPush::Monolithic);
        }
        // The registry's minimum raises the chunk size up to our maximum, never past it: the
        // number is the peer's (u64::MAX would be a chunk buffer of that size).
        let mut chunk_len = cfg.chunk_size;
        if let Some(m) = min_chunk {
            if m > cfg.max_chunk_size {
                warn!(
                    min_chunk = m,
                    max_chunk_size = cfg.max_chunk_size,
                    "the registry asks for chunks larger than max_chunk_size; sending max_chunk_size"
                );
            }
            chunk_len = chunk_len.max(m);
        }
        let chunk_len = usize::try_from(chunk_len.min(cfg.max_chunk_size)).unwrap_or(usize::MAX);
        let mut offset: u64 = 0;
        let mut chunks = 0;
        let mut resumed = 0;
        let mut pending: Option<Bytes> = None;
        // Double buffering: the next chunk is read from the source while the current one is
        // sent, so a source that is itself a download overlaps with the upload (memory: two
        // chunks).
        let mut current = match fill_chunk(&mut source, &mut pending, chunk_len).await {
            Ok(c) => c,
            Err(e) => {
                self.cancel_upload(&loc).await;
                return Err(verify_err(e));
            }
        };
        while let Some(chunk) = current.take() {
            let len = chunk.len() as u64;
            let (sent, next) = futures_util::future::join(
                self.send_chunk(&loc, offset, chunk),
                fill_chunk(&mut source, &mut pending, chunk_len),
            )
            .await;
            let (next_loc, r) = match sent {
                Ok(v) => v,
                Err(e) => {
                    self.cancel_upload(&loc).await;
                    return Err(e);
                }
            };
            loc = next_loc;
            resumed += r;
            offset += len;
            chunks += 1;
            current = match next {
                Ok(c) => c,
                Err(e) => {
                    self.cancel_upload(&loc).await;
                    return Err(verify_err(e));
                }
            };
        }
        self.finish_upload(desc, &loc, None).await?;
        Ok(BlobPush::Chunked { chunks, resumed })
    }

    /// Deletes a blob by digest.
    ///
    /// # Errors
    /// As [`delete_manifest`](Repository::delete_manifest).
    pub async fn delete_blob(&self, digest: &Digest) -> Result<(), Error> {
        self.delete(&format!("blobs/{digest}")).await
    }
}

/// Reads up to `chunk_len` bytes from the source (splitting larger source chunks); `None` at
/// the end.
async fn fill_chunk(
    source: &mut oci_digest::VerifyingStream<BlobSource>,
    pending: &mut Option<Bytes>,
    chunk_len: usize,
) -> std::io::Result<Option<Bytes>> {
    let mut buf = BytesMut::new();
    while buf.len() < chunk_len {
        let next = match pending.take() {
            Some(p) => Some(Ok(p)),
            None => source.next().await,
        };
        match next {
            // A source piece that fills a whole chunk by itself is sliced, not copied.
            Some(Ok(mut b)) if buf.is_empty() && b.len() >= chunk_len => {
                if b.len() > chunk_len {
                    *pending = Some(b.split_off(chunk_len));
                }
                return Ok(Some(b));
            }
            Some(Ok(mut b)) => {
                if buf.capacity() == 0 {
                    buf.reserve(chunk_len);
                }
                let room = chunk_len - buf.len();
                if b.len() > room {
                    *pending = Some(b.split_off(room));
                }
                buf.extend_from_slice(&b);
            }
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    Ok((!buf.is_empty()).then(|| buf.freeze()))
}

enum MountResult {
    Mounted,
    Upload(Url),
}
