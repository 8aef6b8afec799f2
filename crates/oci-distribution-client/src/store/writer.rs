//! The [`BlobWriter`] of a registry upload session ([`RegistryWriter`]), in one of two modes:
//!
//! - **Streamed** (the default): the bytes written go straight into one streamed request
//!   (`stream.rs`), started at the first byte to send: a `PATCH` without a length, or, when
//!   what is left to send is at most
//!   [`ClientConfig::monolithic_max`](crate::ClientConfig::monolithic_max), the closing `PUT`
//!   carrying it (its last piece held back until the whole content verified). Nothing is kept
//!   to be sent again: the writer hashes as it sends and keeps hash checkpoints every
//!   [`ClientConfig::chunk_size`](crate::ClientConfig::chunk_size) bytes. A writer dropped
//!   during a `PATCH` (a cancelled copy, a stopped process) ends the body cleanly and records
//!   where the registry's answer says the session is, so the next writer of the key resumes
//!   from the registry's offset; a `PATCH` that fails (a dropped connection) fails the write,
//!   and the caller's next writer of the key asks the registry.
//! - **Chunked** (registries that want chunks): bytes are sent in chunks as they fill, each
//!   held while it is sent so a dropped connection resumes it in place; the hash covers exactly
//!   what the registry acknowledged.
//!
//! Either way the request that makes the blob visible is sent only after the writer verified
//! the whole content.

use std::future::Future;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use oci_digest::Verifier;
use oci_manifest::Descriptor;
use oci_store::{BlobWriter, PushOutcome, StoreError};
use reqwest::{Method, StatusCode, Url};
use tracing::{debug, info, warn};

use crate::repository::{Feed, FeedRefused, commit_url, refuses_streaming};
use crate::upload_state::Checkpoints;
use crate::{Error, Repository};

/// How a writer sends.
enum Mode {
    Streamed {
        /// The request in flight (none before the first byte to send).
        feed: Option<Feed>,
        /// The request is the closing `PUT` (else a `PATCH`).
        put: bool,
        /// `PUT`: the last piece written, held back until the content verified.
        held: Option<Bytes>,
    },
    Chunked {
        /// Bytes written, not yet acknowledged (they follow the verifier's offset).
        buf: BytesMut,
        chunk_len: usize,
    },
}

/// A resumable upload session as a [`BlobWriter`] (see the module documentation).
pub(super) struct RegistryWriter {
    repo: Repository,
    key: String,
    desc: Descriptor,
    started_at: SystemTime,
    /// The session's location as of its last completed request.
    location: Url,
    /// Bytes the registry holds as far as the writer knows (when it opened, or after its
    /// `PATCH` completed): the bytes before are hashed, not sent.
    held: u64,
    /// What the registry held when the writer opened, and the bytes this writer sent: logged
    /// when the upload commits (the bytes before the registry's offset are not sent again).
    opened_at: u64,
    sent: u64,
    /// Streamed: the hash of every byte written. Chunked: of the bytes acknowledged (and of
    /// those below `held`).
    verifier: Verifier,
    checkpoints: Checkpoints,
    mode: Mode,
    /// A request failed: the writer takes nothing more (a new writer of the key resumes).
    failed: bool,
}

impl RegistryWriter {
    /// A writer of `key` for `desc` continuing the session at `location`, whose registry holds
    /// `held` bytes, with the hash `checkpoints` (the writer's offset is the newest at or below
    /// `held`); chunked when `chunk_len` is given.
    pub(super) fn new(
        repo: Repository,
        key: &str,
        desc: &Descriptor,
        (location, held): (Url, u64),
        checkpoints: Checkpoints,
        started_at: SystemTime,
        chunk_len: Option<usize>,
    ) -> RegistryWriter {
        let verifier = checkpoints.at_or_below(held, desc);
        let mode = match chunk_len {
            Some(chunk_len) => Mode::Chunked {
                buf: BytesMut::new(),
                chunk_len,
            },
            None => Mode::Streamed {
                feed: None,
                put: desc.size.saturating_sub(held) <= repo.client.inner.config.monolithic_max,
                held: None,
            },
        };
        RegistryWriter {
            repo,
            key: key.to_owned(),
            desc: desc.clone(),
            started_at,
            location,
            held,
            opened_at: held,
            sent: 0,
            verifier,
            checkpoints,
            mode,
            failed: false,
        }
    }

    fn error(&self, e: Error, what: &str) -> StoreError {
        self.repo.store_err(e, what, &self.desc.digest)
    }

    /// The error of a write or commit after a request of the upload failed.
    fn failed_error(&self) -> StoreError {
        StoreError::backend(
            format!("upload of {} to {}", self.desc.digest, self.repo.name),
            std::io::Error::other(
                "an earlier request of this upload failed; open a writer of the key again to resume",
            ),
        )
    }

    /// Takes the hash state as a checkpoint and records the session (memory, disk).
    async fn checkpoint(&mut self) -> oci_store::Result<()> {
        self.checkpoints.push(&self.verifier);
        self.repo
            .ingests
            .update(&self.key, &self.location, &self.checkpoints);
        self.repo
            .save_record(
                &self.key,
                &self.desc,
                &self.location,
                &self.checkpoints,
                self.started_at,
            )
            .await
    }

    /// Streamed: hashes `chunk` (checkpoints every chunk size) and sends what the registry
    /// does not hold yet.
    async fn write_streamed(&mut self, mut chunk: Bytes) -> oci_store::Result<()> {
        let every = self.repo.client.inner.config.chunk_size.max(1);
        while !chunk.is_empty() {
            let at = self.verifier.received();
            let to_checkpoint = every - at % every;
            let part = if chunk.len() as u64 > to_checkpoint {
                chunk.split_to(to_checkpoint as usize)
            } else {
                std::mem::take(&mut chunk)
            };
            self.verifier.update(&part).map_err(StoreError::Verify)?;
            let end = self.verifier.received();
            if end > self.held {
                let skip = usize::try_from(self.held.saturating_sub(at)).unwrap_or(usize::MAX);
                self.send_piece(part.slice(skip.min(part.len())..)).await?;
            }
            if end.is_multiple_of(every) {
                self.checkpoint().await?;
            }
        }
        Ok(())
    }

    /// Starts the streamed request: the `PATCH` at the session's location, or the `PUT`
    /// carrying the rest of the content.
    fn start_feed(&self, put: bool) -> Feed {
        let rest = self.desc.size.saturating_sub(self.held);
        if put {
            let url = commit_url(&self.location, &self.desc);
            Feed::start(&self.repo, Method::PUT, url, Some(rest), rest)
        } else {
            Feed::start(&self.repo, Method::PATCH, self.location.clone(), None, rest)
        }
    }

    /// Hands `piece` to the streamed request (starting it), holding back the last piece of a
    /// `PUT`.
    async fn send_piece(&mut self, piece: Bytes) -> oci_store::Result<()> {
        let Mode::Streamed { feed, put, held } = &mut self.mode else {
            return Ok(());
        };
        let piece = if *put {
            match held.replace(piece) {
                Some(prev) => prev,
                None => return Ok(()),
            }
        } else {
            piece
        };
        let put = *put;
        let mut f = match feed.take() {
            Some(f) => f,
            None => self.start_feed(put),
        };
        let n = piece.len() as u64;
        let sent = if f.has_ended() {
            Err(FeedRefused::Ended)
        } else {
            f.send(piece).await
        };
        match sent {
            Ok(()) => {
                self.sent = self.sent.saturating_add(n);
                if let Mode::Streamed { feed, .. } = &mut self.mode {
                    *feed = Some(f);
                }
                Ok(())
            }
            Err(FeedRefused::Ended) => Err(self.feed_failed(f).await),
            Err(FeedRefused::Stalled(e)) => {
                f.abort();
                self.failed = true;
                Err(self.error(e, "upload"))
            }
        }
    }

    /// The request of `feed` ended before its body did: the error to report.
    async fn feed_failed(&mut self, feed: Feed) -> StoreError {
        self.failed = true;
        let e = match feed.finish().await {
            Err(e) => e,
            Ok(answer) => Error::protocol(
                "upload",
                &self.location,
                format!(
                    "the registry answered {} before the body ended",
                    answer.status
                ),
            ),
        };
        if refuses_streaming(&e) {
            self.repo.note_streaming_refused(&e);
        }
        self.error(e, "upload")
    }

    /// Chunked: buffers `chunk` after hashing what the registry already holds, and sends the
    /// chunks that filled.
    async fn write_chunked(&mut self, mut chunk: Bytes) -> oci_store::Result<()> {
        let at = self.verifier.received();
        if at < self.held {
            let n = usize::try_from(self.held - at)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            let part = chunk.split_to(n);
            self.verifier.update(&part).map_err(StoreError::Verify)?;
            if self.verifier.received() == self.held {
                self.checkpoint().await?;
            }
        }
        if let Mode::Chunked { buf, .. } = &mut self.mode {
            buf.extend_from_slice(&chunk);
        }
        self.flush_chunks().await
    }

    /// Sends the whole chunks buffered.
    async fn flush_chunks(&mut self) -> oci_store::Result<()> {
        loop {
            let chunk = match &mut self.mode {
                Mode::Chunked { buf, chunk_len } if buf.len() >= *chunk_len => {
                    buf.split_to(*chunk_len).freeze()
                }
                _ => return Ok(()),
            };
            let offset = self.verifier.received();
            let sent = self
                .repo
                .send_chunk(&self.location, offset, chunk.clone())
                .await;
            let (next, _) = match sent {
                Ok(v) => v,
                Err(e) => {
                    self.failed = true;
                    return Err(self.error(e, "upload chunk of"));
                }
            };
            self.verifier.update(&chunk).map_err(StoreError::Verify)?;
            self.sent = self.sent.saturating_add(chunk.len() as u64);
            self.location = next;
            self.checkpoint().await?;
        }
    }

    /// Forgets the session here and at the registry (a failed or aborted upload).
    async fn discard(&mut self) {
        if let Mode::Streamed { feed, .. } = &mut self.mode
            && let Some(f) = feed.take()
        {
            f.abort();
        }
        self.repo.ingests.lock().remove(&self.key);
        self.repo.remove_record(&self.key).await;
        self.repo.cancel_upload(&self.location).await;
    }

    /// Commits a streamed upload whose content verified.
    async fn commit_streamed(&mut self) -> Result<(), Error> {
        let Mode::Streamed { feed, put, held } = &mut self.mode else {
            return Ok(());
        };
        let (feed, put, last) = (feed.take(), *put, held.take());
        if put {
            let mut f = match feed {
                Some(f) => f,
                None => self.start_feed(true),
            };
            if let Some(piece) = last {
                let n = piece.len() as u64;
                match f.send(piece).await {
                    Ok(()) => self.sent = self.sent.saturating_add(n),
                    Err(FeedRefused::Ended) => {}
                    Err(FeedRefused::Stalled(e)) => return Err(e),
                }
            }
            // The record goes first: a process killed between the two leaves no record of a
            // committed blob (which a later copy would skip and never clean up).
            self.repo.remove_record(&self.key).await;
            let answer = f.finish().await?;
            if answer.status != StatusCode::CREATED {
                return Err(Error::protocol(
                    "PUT",
                    &self.location,
                    format!("the registry answered {} to the closing PUT", answer.status),
                ));
            }
            return self
                .repo
                .check_committed(&self.desc, answer.digest.as_deref());
        }
        if let Some(f) = feed {
            let answer = f.finish().await.inspect_err(|e| {
                if refuses_streaming(e) {
                    self.repo.note_streaming_refused(e);
                }
            })?;
            if let Some(h) = answer.have
                && h.checked_add(1) != Some(self.desc.size)
            {
                return Err(Error::protocol(
                    "PATCH",
                    &self.location,
                    format!(
                        "the registry holds bytes 0-{h} after the whole blob of {} bytes was sent",
                        self.desc.size
                    ),
                ));
            }
            self.location = answer.location;
            self.held = self.desc.size;
        }
        self.repo.remove_record(&self.key).await;
        self.repo
            .finish_upload(&self.desc, &self.location, None)
            .await
    }

    /// Commits a chunked upload whose content verified: the bytes left go with the `PUT`.
    async fn commit_chunked(&mut self) -> Result<(), Error> {
        let body = match &mut self.mode {
            Mode::Chunked { buf, .. } => buf.split().freeze(),
            Mode::Streamed { .. } => Bytes::new(),
        };
        self.sent = self.sent.saturating_add(body.len() as u64);
        self.repo.remove_record(&self.key).await;
        self.repo
            .finish_upload(&self.desc, &self.location, Some(body))
            .await
    }
}

/// A streamed `PATCH` ended cleanly by a dropped writer: the registry's answer says where the
/// session is, which is recorded for the next writer of the key.
struct Pause {
    repo: Repository,
    key: String,
    desc: Descriptor,
    checkpoints: Checkpoints,
    started_at: SystemTime,
}

impl Pause {
    async fn run(mut self, feed: Feed) {
        let sent_to = feed.sent();
        match feed.finish().await {
            Ok(answer) => {
                let held = match answer.have {
                    Some(h) => h.saturating_add(1),
                    None => sent_to,
                };
                self.checkpoints.keep_upto(held);
                self.repo
                    .ingests
                    .update(&self.key, &answer.location, &self.checkpoints);
                let saved = self
                    .repo
                    .save_record(
                        &self.key,
                        &self.desc,
                        &answer.location,
                        &self.checkpoints,
                        self.started_at,
                    )
                    .await;
                if let Err(e) = saved {
                    warn!(key = %self.key, error = %e, "cannot record the paused upload session");
                }
                info!(key = %self.key, digest = %self.desc.digest, registry_offset = held,
                    checkpoint = self.checkpoints.newest(),
                    "upload paused: the registry holds the bytes sent, the next writer of the key resumes from there");
            }
            Err(e) => {
                warn!(key = %self.key, digest = %self.desc.digest, error = %e,
                    "the upload could not be paused cleanly; the next writer of the key asks the registry where it stands");
            }
        }
        self.repo.ingests.release(&self.key);
    }
}

/// Runs `fut` to its end from a `Drop`, waiting at most `limit`: on a multi-threaded runtime
/// it runs as a task while the dropping thread waits for it (that thread's work handed to
/// another thread meanwhile, `block_in_place`); on a current-thread runtime it is spawned and
/// the drop returns. Returns `false` when it cannot run (no runtime, or the thread is
/// panicking).
///
/// The wait is on a channel of its own, not a nested `block_on`: a drop inside a future run
/// by `Runtime::block_on` (a copy's transfers) would otherwise take that thread's wake-up
/// meant for the outer future, which would then sleep until some timer fired.
fn run_from_drop(fut: impl Future<Output = ()> + Send + 'static, limit: Duration) -> bool {
    if std::thread::panicking() {
        return false;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return false;
    };
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        drop(handle.spawn(fut));
        return true;
    }
    let (done, finished) = std::sync::mpsc::channel();
    drop(handle.spawn(async move {
        fut.await;
        let _ = done.send(());
    }));
    // A task that cannot run (a runtime shutting down) is dropped, which ends the wait too.
    tokio::task::block_in_place(|| {
        if finished.recv_timeout(limit).is_err() {
            debug!("a dropped upload's request did not end in time; it ends in the background");
        }
    });
    true
}

impl Drop for RegistryWriter {
    fn drop(&mut self) {
        let patch = match &mut self.mode {
            Mode::Streamed {
                feed, put: false, ..
            } if !self.failed => feed.take(),
            // A `PUT` in flight is abandoned with the writer (its feed fails the body): the
            // registry never gets a whole blob that was not verified.
            _ => None,
        };
        if let Some(feed) = patch {
            self.repo.ingests.pausing(&self.key);
            let pause = Pause {
                repo: self.repo.clone(),
                key: self.key.clone(),
                desc: self.desc.clone(),
                checkpoints: self.checkpoints.clone(),
                started_at: self.started_at,
            };
            let cfg = &self.repo.client.inner.config;
            let limit = cfg
                .read_timeout
                .saturating_add(cfg.request_timeout)
                .saturating_add(Duration::from_secs(10));
            if run_from_drop(pause.run(feed), limit) {
                return;
            }
            debug!(key = %self.key, "upload dropped outside a runtime: its request is abandoned");
        }
        self.repo.ingests.release(&self.key);
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
        let buffered = match &self.mode {
            Mode::Chunked { buf, .. } => buf.len() as u64,
            Mode::Streamed { .. } => 0,
        };
        self.verifier.received().saturating_add(buffered)
    }

    async fn write(&mut self, chunk: Bytes) -> oci_store::Result<()> {
        if self.failed {
            return Err(self.failed_error());
        }
        // Saturating: a descriptor's size near u64::MAX must not overflow the check.
        let after = self.offset().saturating_add(chunk.len() as u64);
        if after > self.desc.size {
            return Err(StoreError::Verify(oci_digest::VerifyError::TooLong {
                expected: self.desc.digest.clone(),
                expected_size: self.desc.size,
                received: after,
            }));
        }
        match self.mode {
            Mode::Streamed { .. } => self.write_streamed(chunk).await,
            Mode::Chunked { .. } => self.write_chunked(chunk).await,
        }
    }

    async fn commit(mut self: Box<Self>) -> oci_store::Result<PushOutcome> {
        if self.failed {
            return Err(self.failed_error());
        }
        // Check the whole content before the registry commits it.
        let mut check = self.verifier.clone();
        let result = match &self.mode {
            Mode::Chunked { buf, .. } => check.update(buf).and_then(|()| check.finish()),
            Mode::Streamed { .. } => check.finish(),
        };
        if let Err(e) = result {
            self.discard().await;
            return Err(StoreError::Verify(e));
        }
        let committed = match self.mode {
            Mode::Streamed { .. } => self.commit_streamed().await,
            Mode::Chunked { .. } => self.commit_chunked().await,
        };
        match committed {
            Ok(()) => {
                self.repo.ingests.lock().remove(&self.key);
                info!(key = %self.key, digest = %self.desc.digest, size = self.desc.size,
                    registry_offset = self.opened_at, sent = self.sent, "upload committed");
                Ok(PushOutcome::Written)
            }
            Err(e) => {
                // Whatever the registry holds now, the next writer of the key asks it.
                self.failed = true;
                self.repo
                    .ingests
                    .update(&self.key, &self.location, &self.checkpoints);
                Err(self.error(e, "commit upload of"))
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> oci_store::Result<()> {
        self.failed = true;
        self.discard().await;
        Ok(())
    }
}
