//! Streamed requests (issue 17): one request whose body is read from its source as it is sent,
//! never collected in memory. Blob uploads use two kinds:
//!
//! - a streamed `PATCH` without a length (chunked transfer encoding), so that its body can end
//!   wherever the content stops: a stopped push ends it cleanly, the registry keeps what it
//!   received as a session a later push resumes from the registry's own offset;
//! - a streamed `PUT` of a known length, carrying the rest of the content and its digest.
//!
//! Such a request is sent once (its body cannot be sent again): through the upload HTTP client,
//! which has no read timeout (reqwest counts that one from the start of a request to its
//! answer's head, which would cut a long body), with the push scope's `Authorization` to the
//! registry's own origin only, without following redirects. Its waits are bounded all the
//! same: the whole request by [`ClientConfig::upload_deadline`](crate::ClientConfig), a body
//! the connection stops taking by the read timeout ([`Error::UploadStalled`]), and the answer,
//! once the body ended, by the request timeout.
//!
//! [`Feed`] is such a request fed by a writer (the store's resumable writer): the writer hands
//! it pieces as they arrive; the one piece in its channel is all it holds.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{self, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;

use super::Repository;
use super::session::UploadAnswer;
use crate::Error;
use crate::client::strip_query;

/// Pieces a [`Feed`] holds before the writer waits for the connection to take them. One is
/// enough to keep the connection busy while the writer reads its source (a second one measured
/// no faster pushing 1 GiB to distribution, and 4 MiB more peak RSS with four uploads).
const FEED_DEPTH: usize = 1;

impl Repository {
    /// Sends `method url` once with a streamed `body` of `len` bytes (`None`: unknown, chunked
    /// transfer encoding) and returns the answer, whatever its status. `deadline_len` sizes the
    /// request's deadline (the bytes the body is expected to carry).
    ///
    /// # Errors
    /// [`Error::Transport`] (the body's own failure included), [`Error::DeadlineExceeded`].
    pub(super) async fn send_streamed(
        &self,
        method: &Method,
        url: &Url,
        body: reqwest::Body,
        len: Option<u64>,
        deadline_len: u64,
    ) -> Result<Response, Error> {
        let inner = &self.client.inner;
        let mut req = inner
            .upload_http
            .request(method.clone(), url.clone())
            .header(header::CONTENT_TYPE, "application/octet-stream");
        if let Some(n) = len {
            req = req.header(header::CONTENT_LENGTH, n);
        }
        // Credentials go to the registry's own origin only (an upload location may name
        // another).
        if url.origin() == self.base.origin()
            && let Some(auth) = self
                .client
                .authorization(&self.registry, &self.push_scope())
                .await?
            && let Ok(v) = HeaderValue::from_str(&auth)
        {
            req = req.header(header::AUTHORIZATION, v);
        }
        let limit = inner.config.upload_deadline(deadline_len);
        let sending = req.body(body).send();
        let sent = match tokio::time::Instant::now().checked_add(limit) {
            Some(due) => match tokio::time::timeout_at(due, sending).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(Error::DeadlineExceeded {
                        method: method.to_string(),
                        url: strip_query(url),
                        limit,
                        source: Error::timed_out(),
                    });
                }
            },
            None => sending.await,
        };
        let resp = sent.map_err(|e| Error::Transport {
            method: method.to_string(),
            url: strip_query(url),
            attempts: 1,
            source: e.without_url(),
        })?;
        debug!(method = %method, url = %strip_query(url), status = resp.status().as_u16(), "registry answer to a streamed upload");
        if resp.status() == StatusCode::UNAUTHORIZED {
            // The body is spent: the next request of the session asks for a token again.
            self.client
                .invalidate_token(&self.registry, &self.push_scope());
        }
        Ok(resp)
    }
}

/// Why a [`Feed`] did not take a piece.
#[derive(Debug)]
pub(crate) enum FeedRefused {
    /// The request ended (failed, or was answered early): [`Feed::finish`] says how.
    Ended,
    /// The connection took nothing for the stall timeout.
    Stalled(Error),
}

/// What a [`Feed`] hands its request.
enum Item {
    Piece(Bytes),
    /// The body ends here, complete. A channel closed without it (a feed dropped or abandoned)
    /// fails the body instead, so that the registry never takes a cut body for a whole one.
    End,
}

/// A streamed upload request in flight, fed piece by piece by a writer. The request runs in a
/// task of its own, so the connection sends while the writer reads its source.
pub(crate) struct Feed {
    tx: Option<mpsc::Sender<Item>>,
    task: JoinHandle<Result<UploadAnswer, Error>>,
    method: Method,
    url: Url,
    sent: u64,
    stall: Duration,
    answer_wait: Duration,
}

impl Feed {
    /// Starts `method url` with a body of `len` bytes (`None`: chunked, it ends when the feed
    /// is finished); `deadline_len` sizes its deadline.
    pub(crate) fn start(
        repo: &Repository,
        method: Method,
        url: Url,
        len: Option<u64>,
        deadline_len: u64,
    ) -> Feed {
        let (tx, rx) = mpsc::channel::<Item>(FEED_DEPTH);
        let body =
            reqwest::Body::wrap_stream(futures_util::stream::unfold(Some(rx), |rx| async move {
                let mut rx = rx?;
                match rx.recv().await {
                    Some(Item::Piece(b)) => Some((Ok(b), Some(rx))),
                    Some(Item::End) => None,
                    None => Some((Err(io::Error::other("upload abandoned")), None)),
                }
            }));
        let task = tokio::spawn({
            let repo = repo.clone();
            let (method, url) = (method.clone(), url.clone());
            async move {
                let resp = repo
                    .send_streamed(&method, &url, body, len, deadline_len)
                    .await?;
                UploadAnswer::read(resp, &method, &url).await
            }
        });
        let config = &repo.client.inner.config;
        Feed {
            tx: Some(tx),
            task,
            method,
            url,
            sent: 0,
            stall: config.read_timeout,
            answer_wait: config.request_timeout,
        }
    }

    /// Bytes handed to the request so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// Whether the request already ended (failed, or answered before its body ended).
    pub(crate) fn has_ended(&self) -> bool {
        self.task.is_finished()
    }

    /// Hands `bytes` to the request, waiting while the connection is busy (at most the stall
    /// timeout).
    pub(crate) async fn send(&mut self, bytes: Bytes) -> Result<(), FeedRefused> {
        let Some(tx) = &self.tx else {
            return Err(FeedRefused::Ended);
        };
        let n = bytes.len() as u64;
        match tokio::time::timeout(self.stall, tx.send(Item::Piece(bytes))).await {
            Ok(Ok(())) => {
                self.sent = self.sent.saturating_add(n);
                Ok(())
            }
            Ok(Err(_)) => Err(FeedRefused::Ended),
            Err(_) => Err(FeedRefused::Stalled(Error::UploadStalled {
                method: self.method.to_string(),
                url: strip_query(&self.url),
                sent: self.sent,
                waited: self.stall,
                source: Error::timed_out(),
            })),
        }
    }

    /// Ends the body where it is (a complete request) and waits for the answer, at most the
    /// request timeout.
    pub(crate) async fn finish(mut self) -> Result<UploadAnswer, Error> {
        if let Some(tx) = self.tx.take() {
            // Room for the end mark is waited for like a piece; a request that ended already
            // gives its answer below.
            let _ = tokio::time::timeout(self.stall, tx.send(Item::End)).await;
        }
        match tokio::time::timeout(self.answer_wait, &mut self.task).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(join)) => Err(Error::Protocol {
                method: self.method.to_string(),
                url: strip_query(&self.url),
                what: format!("the upload request's task ended without an answer: {join}"),
            }),
            Err(_) => {
                self.task.abort();
                Err(Error::DeadlineExceeded {
                    method: self.method.to_string(),
                    url: strip_query(&self.url),
                    limit: self.answer_wait,
                    source: Error::timed_out(),
                })
            }
        }
    }

    /// Abandons the request so that the registry never gets a complete body (the body fails,
    /// the connection is dropped).
    pub(crate) fn abort(self) {
        drop(self);
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        // Dropped without `finish`: abandoned. The channel closes without the end mark, so the
        // body fails rather than ending cleanly.
        if self.tx.take().is_some() {
            self.task.abort();
        }
    }
}
