//! Pushing blobs: skip what the registry says it has, cross-repository mounts, uploads and
//! deleting a blob. An upload is one streamed request (`stream.rs`): a `PUT` carrying a small
//! blob, else a `PATCH` and the closing `PUT`, the content read from the source as it is sent.
//! Registries that want chunks get chunked uploads (the next chunk read while the current one
//! is sent). The upload session's requests are in `session.rs`.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use oci_digest::Digest;
use oci_manifest::Descriptor;
use reqwest::{Method, StatusCode, Url};
use tracing::{debug, warn};

use super::session::{UploadAnswer, commit_url, location, refuses_streaming};
use super::{BlobSource, Repository};
use crate::Error;
use crate::auth::repo_scope;
use crate::client::{Req, status_error};

/// What a blob push did: skipped, mounted, or how it was uploaded. (Not to be confused with
/// `oci_store::PushOutcome`, the store traits' "written or already there".)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobPush {
    /// The registry said it already had the blob (a `HEAD`, see [`Repository::blob_exists`],
    /// or for a small blob its answer to the request that starts an upload, see
    /// [`ClientConfig::probe_upload_max`](crate::ClientConfig::probe_upload_max)).
    Skipped,
    /// The registry mounted it from another repository.
    Mounted,
    /// Uploaded in one request that carried the content (`PUT`).
    Monolithic,
    /// Uploaded as one streamed `PATCH` and the closing `PUT`.
    Streamed,
    /// Uploaded in this many chunks.
    Chunked {
        /// Chunks sent (retries of a chunk not counted).
        chunks: u32,
        /// Chunk sends that failed and were resumed in place.
        resumed: u32,
    },
}

impl Repository {
    /// Pushes a blob: skips it when the registry says it has it (asked with the request that
    /// starts the upload for a blob up to
    /// [`ClientConfig::probe_upload_max`](crate::ClientConfig::probe_upload_max), else with
    /// [`Repository::blob_exists`]), else uploads it in one streamed request (a `PUT` carrying the content up to
    /// [`ClientConfig::monolithic_max`](crate::ClientConfig::monolithic_max), else a `PATCH`
    /// and the closing `PUT`), or in chunks to a registry that wants them
    /// ([`ClientConfig::chunked_uploads`](crate::ClientConfig::chunked_uploads)). The content
    /// is verified against `desc` as it is read; a mismatch aborts the upload before it is
    /// committed.
    ///
    /// The source is read once: a streamed upload whose connection drops fails (and its session
    /// is cancelled). To resume from what the registry holds, upload through the store traits
    /// ([`oci_store::WriteStore::writer`], as a copy does), which read the source again from
    /// there.
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
        let Some(from) = mount_from.filter(|f| *f != self.name) else {
            return match self.start_upload_unless_present(desc).await? {
                None => {
                    debug!(digest = %desc.digest, repository = %self.name, "blob exists, skipped");
                    Ok(BlobPush::Skipped)
                }
                Some(session) => self.upload(desc, data, Some(session)).await,
            };
        };
        if self.blob_exists(desc).await? {
            debug!(digest = %desc.digest, repository = %self.name, "blob exists, skipped");
            return Ok(BlobPush::Skipped);
        }
        match self.mount(desc, from).await? {
            MountResult::Mounted => Ok(BlobPush::Mounted),
            MountResult::Upload(l) => self.upload(desc, data, Some((l, None))).await,
        }
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
        session: Option<(Url, Option<u64>)>,
    ) -> Result<BlobPush, Error> {
        let (loc, min_chunk) = match session {
            Some(s) => s,
            None => self.start_upload().await?,
        };
        match self.chunk_limit() {
            Some(limit) => {
                self.upload_chunked(desc, data, loc, self.chunk_len(min_chunk, limit))
                    .await
            }
            None => self.upload_streamed(desc, data, loc).await,
        }
    }

    /// One streamed request carries the content: a `PUT` with the digest up to
    /// [`ClientConfig::monolithic_max`](crate::ClientConfig::monolithic_max) (its last piece held
    /// back until the content verified), else a `PATCH` and, once the content verified, the
    /// closing `PUT`. A failure cancels the session: the source cannot be read again here.
    async fn upload_streamed(
        &self,
        desc: &Descriptor,
        data: BlobSource,
        loc: Url,
    ) -> Result<BlobPush, Error> {
        let monolithic = desc.size <= self.client.inner.config.monolithic_max;
        let failed = SourceFailure::default();
        let body = reqwest::Body::wrap_stream(source_body(
            oci_digest::VerifyingStream::new(data, desc.digest.clone(), desc.size),
            failed.clone(),
            monolithic,
        ));
        let (method, url, len) = if monolithic {
            (Method::PUT, commit_url(&loc, desc), Some(desc.size))
        } else {
            (Method::PATCH, loc.clone(), None)
        };
        let sent = async {
            let resp = self
                .send_streamed(&method, &url, body, len, desc.size)
                .await?;
            UploadAnswer::read(resp, &method, &url).await
        }
        .await;
        let answer = match sent {
            Ok(a) => a,
            Err(e) => {
                self.cancel_upload(&loc).await;
                // The body failed because the source did: that is the error to report.
                if let Some(source) = failed.take() {
                    return Err(self.source_error(desc, source));
                }
                if refuses_streaming(&e) {
                    self.note_streaming_refused(&e);
                }
                return Err(e);
            }
        };
        if monolithic {
            self.check_committed(desc, answer.digest.as_deref())?;
            return Ok(BlobPush::Monolithic);
        }
        if let Some(h) = answer.have
            && h.checked_add(1) != Some(desc.size)
            && desc.size > 0
        {
            self.cancel_upload(&answer.location).await;
            return Err(Error::protocol(
                "PATCH",
                &loc,
                format!(
                    "the registry holds bytes 0-{h} after the whole blob of {} bytes was sent",
                    desc.size
                ),
            ));
        }
        self.finish_upload(desc, &answer.location, None).await?;
        Ok(BlobPush::Streamed)
    }

    /// The error for a failure of the source of `desc`: [`Error::Verify`] when its content did
    /// not verify, else [`Error::Source`].
    fn source_error(&self, desc: &Descriptor, e: std::io::Error) -> Error {
        match oci_digest::VerifyError::from_io(&e) {
            Some(v) => Error::Verify {
                repository: self.name.clone(),
                digest: desc.digest.clone(),
                source: v.clone(),
            },
            None => Error::Source {
                context: format!("reading blob {} to push to {}", desc.digest, self.name),
                source: e,
            },
        }
    }

    /// A chunked upload for registries that want one: monolithic (one `PUT`, buffered) up to
    /// the smaller of `monolithic_max` and the chunk length, else chunks of `chunk_len`, each
    /// held in memory while it is sent so that a connection dropped mid-chunk resumes in place
    /// from what the registry says it received (the next chunk is read from the source while
    /// the current one is sent).
    async fn upload_chunked(
        &self,
        desc: &Descriptor,
        data: BlobSource,
        mut loc: Url,
        chunk_len: usize,
    ) -> Result<BlobPush, Error> {
        let cfg = &self.client.inner.config;
        let mut source = oci_digest::VerifyingStream::new(data, desc.digest.clone(), desc.size);
        if desc.size <= cfg.monolithic_max.min(chunk_len as u64) {
            let mut buf = BytesMut::with_capacity(chunk_len.min(desc.size as usize));
            while let Some(item) = source.next().await {
                match item {
                    Ok(b) => buf.extend_from_slice(&b),
                    Err(e) => {
                        self.cancel_upload(&loc).await;
                        return Err(self.source_error(desc, e));
                    }
                }
            }
            self.finish_upload(desc, &loc, Some(buf.freeze())).await?;
            return Ok(BlobPush::Monolithic);
        }
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
                return Err(self.source_error(desc, e));
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
                    return Err(self.source_error(desc, e));
                }
            };
        }
        self.finish_upload(desc, &loc, None).await?;
        Ok(BlobPush::Chunked { chunks, resumed })
    }

    /// The largest chunk of this repository's uploads when they are chunked (its registry is
    /// listed in [`ClientConfig::chunked_uploads`](crate::ClientConfig::chunked_uploads), or it
    /// refused a streamed upload through this handle), `None` when they are streamed.
    pub(crate) fn chunk_limit(&self) -> Option<u64> {
        let cfg = &self.client.inner.config;
        cfg.upload_chunk_limit(&self.registry).or_else(|| {
            self.ingests
                .streaming_refused()
                .then_some(cfg.max_chunk_size)
        })
    }

    /// The chunk length of a chunked upload: the preferred chunk size, raised to the
    /// registry's minimum (`min_chunk`), never past `limit` nor `max_chunk_size`. The minimum
    /// is the peer's number: `u64::MAX` must not become a buffer of that size.
    pub(crate) fn chunk_len(&self, min_chunk: Option<u64>, limit: u64) -> usize {
        let cfg = &self.client.inner.config;
        let cap = limit.min(cfg.max_chunk_size).max(1);
        let mut len = cfg.chunk_size;
        if let Some(m) = min_chunk {
            if m > cap {
                warn!(
                    min_chunk = m,
                    max_chunk = cap,
                    "the registry asks for chunks larger than the largest chunk; sending the largest"
                );
            }
            len = len.max(m);
        }
        usize::try_from(len.min(cap)).unwrap_or(usize::MAX)
    }

    /// Remembers that the registry refused a streamed upload: this handle's uploads are
    /// chunked from now on.
    pub(crate) fn note_streaming_refused(&self, e: &Error) {
        if !self.ingests.set_streaming_refused() {
            warn!(registry = %self.registry, repository = %self.name, status = ?e.status(), error = %e,
                "the registry refused a streamed upload; uploads to it are sent in chunks from now on");
        }
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

/// Where the body of a streamed push keeps the error of its source, so that the push reports
/// it (the HTTP client only sees a failed body).
#[derive(Clone, Default)]
struct SourceFailure(std::sync::Arc<std::sync::Mutex<Option<std::io::Error>>>);

impl SourceFailure {
    fn set(&self, e: std::io::Error) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
    }

    fn take(&self) -> Option<std::io::Error> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// The body of a streamed push: the verified source, its failure kept in `failed` (the body
/// fails too, so the registry never gets it whole). With `hold_last` the last piece is passed
/// on only once the whole content verified, so that a request whose length is known (a
/// `PUT`) cannot complete with content that does not.
fn source_body(
    source: oci_digest::VerifyingStream<BlobSource>,
    failed: SourceFailure,
    hold_last: bool,
) -> impl futures_core::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    struct St {
        source: oci_digest::VerifyingStream<BlobSource>,
        held: Option<Bytes>,
        done: bool,
    }
    let st = St {
        source,
        held: None,
        done: false,
    };
    futures_util::stream::unfold(st, move |mut st| {
        let failed = failed.clone();
        async move {
            if st.done {
                return None;
            }
            loop {
                match st.source.next().await {
                    Some(Ok(b)) if hold_last => {
                        if let Some(prev) = st.held.replace(b) {
                            return Some((Ok(prev), st));
                        }
                    }
                    Some(Ok(b)) => return Some((Ok(b), st)),
                    Some(Err(e)) => {
                        failed.set(e);
                        st.done = true;
                        let e = std::io::Error::other("the content to push failed");
                        return Some((Err(e), st));
                    }
                    None => {
                        st.done = true;
                        return st.held.take().map(|b| (Ok(b), st));
                    }
                }
            }
        }
    })
}

enum MountResult {
    Mounted,
    Upload(Url),
}
