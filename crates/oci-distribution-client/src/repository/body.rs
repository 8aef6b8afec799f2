//! The one reader of blob bodies. Every path that reads a blob's bytes from the registry (the
//! whole blob, verified or only counted; a range, the last byte included; the parts of a
//! parallel fetch) goes through [`BlobBody`], which
//!
//! - holds every body to [`ClientConfig::min_rate`](crate::ClientConfig::min_rate) (a body that
//!   drips fails with [`Error::TransferTooSlow`] and is not resumed: it would drip again);
//! - resumes with a `Range` request from the next byte after a dropped connection or a body
//!   that ends early, up to [`ClientConfig::resume_attempts`](crate::ClientConfig::resume_attempts)
//!   times in a row, with the retry backoff between attempts;
//! - checks that a `206` starts where it was asked to (`Content-Range`), and reads a registry
//!   that ignores `Range` (`200` with the whole blob) by dropping the bytes before the offset.

use bytes::Bytes;
use oci_digest::{Digest, Verifier, VerifyError};
use reqwest::header;
use reqwest::{Method, Response, StatusCode, Url};
use tracing::{debug, warn};

use super::{ByteStream, Repository, header_str};
use crate::Error;
use crate::client::{Req, expect, strip_query};
use crate::rate::{RateWatch, ReadError};

/// What a whole-blob read checks as it streams.
pub(super) enum Check {
    /// Size and digest: a verified stream (boxed: the hash state is large).
    Verify(Box<Verifier>),
    /// Size only, for a caller that hashes every byte itself (a store's writer).
    Size,
}

/// Which bytes of the blob a [`BlobBody`] reads.
enum Span {
    /// The whole blob: the body must end exactly at the blob's size (bytes past it are an
    /// error), and every byte goes through the check.
    Whole(Check),
    /// A range, unverified (only a whole blob can be): read up to its end, what a registry
    /// sends past it dropped.
    Range,
}

/// A resumable read of one blob's body.
pub(super) struct BlobBody {
    repo: Repository,
    digest: Digest,
    url: Url,
    span: Span,
    /// Offset in the blob of the next byte to pass on.
    next: u64,
    /// Where the read ends (exclusive): the blob's size, or the end of the range.
    end: u64,
    /// The answer being read (none between a failure and the request that resumes).
    body: Option<Response>,
    /// The minimum rate of the current body.
    rate: RateWatch,
    /// Bytes to drop from the start of the current body (a registry that ignored the range).
    skip: u64,
    /// Failures since the last byte passed on.
    failures: u32,
    done: bool,
}

impl BlobBody {
    /// The whole blob `digest` of `size` bytes, checked as `check` says. The request is sent
    /// now, so that a missing blob is an error of this call, not of the stream.
    pub(super) async fn whole(
        repo: &Repository,
        digest: &Digest,
        size: u64,
        check: Check,
    ) -> Result<ByteStream, Error> {
        let mut body = Self::new(repo, digest, Span::Whole(check), 0, size)?;
        body.open().await?;
        Ok(body.into_stream())
    }

    /// Bytes `[start, end)` of blob `digest`, unverified. The request is sent now unless the
    /// range is empty.
    pub(super) async fn range(
        repo: &Repository,
        digest: &Digest,
        start: u64,
        end: u64,
    ) -> Result<ByteStream, Error> {
        range_len(digest, start, end)?;
        let mut body = Self::new(repo, digest, Span::Range, start, end)?;
        if start < end {
            body.open().await?;
        }
        Ok(body.into_stream())
    }

    fn new(
        repo: &Repository,
        digest: &Digest,
        span: Span,
        next: u64,
        end: u64,
    ) -> Result<BlobBody, Error> {
        Ok(BlobBody {
            repo: repo.clone(),
            digest: digest.clone(),
            url: repo.url(&format!("blobs/{digest}"))?,
            span,
            next,
            end,
            body: None,
            rate: RateWatch::new(None),
            skip: 0,
            failures: 0,
            done: false,
        })
    }

    fn into_stream(self) -> ByteStream {
        Box::pin(futures_util::stream::unfold(self, |mut b| async move {
            b.next_item().await.map(|item| (item, b))
        }))
    }

    fn verify_error(&self, source: VerifyError) -> Error {
        Error::Verify {
            repository: self.repo.name.clone(),
            digest: self.digest.clone(),
            source,
        }
    }

    /// What the read is, for errors: `blob <digest>` or `range of blob <digest>`.
    fn what(&self) -> String {
        match self.span {
            Span::Whole(_) => format!("blob {}", self.digest),
            Span::Range => format!("range of blob {}", self.digest),
        }
    }

    /// Sends the GET for the bytes from `next` on.
    async fn open(&mut self) -> Result<(), Error> {
        let from = self.next;
        let mut req = Req::new(Method::GET, self.url.clone()).streaming();
        match self.span {
            Span::Whole(_) if from == 0 => {}
            Span::Whole(_) => req = req.header(header::RANGE, &format!("bytes={from}-")),
            // `open` is called only while `next < end`.
            Span::Range => {
                let last = self.end.saturating_sub(1);
                req = req.header(header::RANGE, &format!("bytes={from}-{last}"));
            }
        }
        let resp = self.repo.send(req, &self.repo.pull_scope()).await?;
        let resp = expect(
            resp,
            &Method::GET,
            &[StatusCode::OK, StatusCode::PARTIAL_CONTENT],
        )
        .await?;
        if resp.status() == StatusCode::PARTIAL_CONTENT {
            // Bytes from another offset than asked must not be passed on as these.
            check_content_range(&resp, from, &self.url)?;
            self.skip = 0;
        } else {
            if from > 0 {
                debug!(digest = %self.digest, from, "the registry ignores Range; reading from the start");
            }
            // The whole blob announced with another length: not this content, said at once.
            if let (Span::Whole(_), Some(len)) = (&self.span, resp.content_length())
                && len != self.end
            {
                return Err(Error::SizeMismatch {
                    repository: self.repo.name.clone(),
                    digest: self.digest.clone(),
                    expected: self.end,
                    actual: len,
                });
            }
            self.skip = from;
        }
        self.rate = RateWatch::new(self.repo.client.inner.config.min_rate);
        self.body = Some(resp);
        Ok(())
    }

    /// The next chunk to pass on, `None` at the end (after the whole blob checked).
    async fn next_item(&mut self) -> Option<Result<Bytes, Error>> {
        loop {
            if self.done {
                return None;
            }
            if matches!(self.span, Span::Range) && self.next >= self.end {
                self.done = true;
                return None;
            }
            if self.body.is_none()
                && let Err(e) = self.open().await
            {
                self.done = true;
                return Some(Err(e));
            }
            let body = self.body.as_mut()?;
            let failure = match self.rate.chunk(body).await {
                Ok(Some(mut chunk)) => {
                    if self.skip > 0 {
                        let n = usize::try_from(self.skip)
                            .unwrap_or(usize::MAX)
                            .min(chunk.len());
                        self.skip -= n as u64;
                        let _ = chunk.split_to(n);
                        if chunk.is_empty() {
                            continue;
                        }
                    }
                    return Some(self.pass_on(chunk));
                }
                Ok(None) => match self.ended() {
                    Ok(end) => return end,
                    Err(failure) => failure,
                },
                Err(ReadError::TooSlow(slow)) => {
                    // Not resumed: a peer that drips would drip again.
                    self.done = true;
                    let url = body.url().clone();
                    return Some(Err(slow.error(&url, &self.what())));
                }
                Err(ReadError::Http(e)) => Error::Transport {
                    method: "GET".into(),
                    url: strip_query(body.url()),
                    attempts: self.failures.saturating_add(1),
                    source: e.without_url(),
                },
            };
            self.body = None;
            self.failures = self.failures.saturating_add(1);
            if self.failures > self.repo.client.inner.config.resume_attempts {
                self.done = true;
                return Some(Err(failure));
            }
            warn!(
                digest = %self.digest,
                received = self.next,
                error = %failure,
                "blob download interrupted; resuming with a Range request"
            );
            tokio::time::sleep(self.repo.client.inner.config.retry.backoff(self.failures)).await;
        }
    }

    /// Checks a chunk of the body at offset `next` and passes it on.
    fn pass_on(&mut self, mut chunk: Bytes) -> Result<Bytes, Error> {
        let room = self.end.saturating_sub(self.next);
        if chunk.len() as u64 > room {
            match self.span {
                Span::Range => chunk.truncate(usize::try_from(room).unwrap_or(usize::MAX)),
                Span::Whole(_) => {
                    self.done = true;
                    return Err(self.verify_error(VerifyError::TooLong {
                        expected: self.digest.clone(),
                        expected_size: self.end,
                        received: self.next.saturating_add(chunk.len() as u64),
                    }));
                }
            }
        }
        if let Span::Whole(Check::Verify(v)) = &mut self.span
            && let Err(e) = v.update(&chunk)
        {
            self.done = true;
            return Err(self.verify_error(e));
        }
        // At most `room` bytes: cannot pass `end`.
        self.next = self.next.saturating_add(chunk.len() as u64);
        self.failures = 0;
        Ok(chunk)
    }

    /// The body ended: the end of the read (`Ok`), or the failure to resume from (`Err`).
    fn ended(&mut self) -> Result<Option<Result<Bytes, Error>>, Error> {
        if self.next < self.end {
            return Err(match self.span {
                Span::Whole(_) => self.verify_error(VerifyError::TooShort {
                    expected: self.digest.clone(),
                    expected_size: self.end,
                    received: self.next,
                }),
                Span::Range => Error::protocol(
                    "GET",
                    &self.url,
                    format!(
                        "the body ended at byte {}, before the end of the range at {}",
                        self.next, self.end
                    ),
                ),
            });
        }
        self.done = true;
        let finished = match &self.span {
            Span::Whole(Check::Verify(v)) => v.finish().map(drop),
            Span::Whole(Check::Size) | Span::Range => Ok(()),
        };
        Ok(finished.err().map(|e| Err(self.verify_error(e))))
    }
}

/// The length of the range `[start, end)` of blob `digest`.
///
/// # Errors
/// [`Error::InvalidArgument`] when `end` is before `start`.
pub(super) fn range_len(digest: &Digest, start: u64, end: u64) -> Result<u64, Error> {
    end.checked_sub(start).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "range of blob {digest}: end {end} is before start {start}"
        ))
    })
}

/// Checks that a `206` answer starts at byte `from`.
fn check_content_range(resp: &Response, from: u64, url: &Url) -> Result<(), Error> {
    let cr = header_str(resp.headers(), "content-range");
    let start = cr
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split_once('-'))
        .and_then(|(s, _)| s.trim().parse::<u64>().ok());
    if start != Some(from) {
        return Err(Error::protocol(
            "GET",
            url,
            format!("asked for bytes from {from}, got Content-Range {cr:?}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_lengths_are_checked() {
        let d = oci_digest::Algorithm::Sha256.hash(b"x");
        assert_eq!(range_len(&d, 3, 10).unwrap(), 7);
        assert_eq!(range_len(&d, 5, 5).unwrap(), 0);
        assert_eq!(range_len(&d, 0, u64::MAX).unwrap(), u64::MAX);
        match range_len(&d, 10, 3) {
            Err(Error::InvalidArgument(what)) => assert!(what.contains("before start"), "{what}"),
            other => panic!("{other:?}"),
        }
    }
}
