//! The requests of an upload session: start it (`POST`), send a chunk (`PATCH`, resumed in
//! place after a failure from what the registry says it received), ask its status, finish it
//! (`PUT` with the digest) or cancel it, and read the answer of a streamed upload request
//! ([`UploadAnswer`]; the streamed requests themselves are in `stream.rs`). Used by blob pushes
//! and by the store's resumable writer.

use bytes::Bytes;
use oci_manifest::Descriptor;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, Response, StatusCode, Url};
use tracing::{debug, warn};

use super::{Repository, header_str};
use crate::Error;
use crate::client::{Req, expect, status_error};

/// The answer of a streamed upload request (`PATCH` or `PUT`) that the registry accepted.
#[derive(Debug)]
pub(crate) struct UploadAnswer {
    /// `201 Created` (the blob is committed) or `202 Accepted` / `204` (the session goes on).
    pub status: StatusCode,
    /// Where the session goes on (the request's URL when the answer names none).
    pub location: Url,
    /// The last byte the registry says it holds (`Range: 0-N`).
    pub have: Option<u64>,
    /// The `Docker-Content-Digest` header, if any.
    pub digest: Option<String>,
}

impl UploadAnswer {
    /// Reads an answer to `method url`: an accepted one, else the registry's error.
    pub(crate) async fn read(
        resp: Response,
        method: &Method,
        url: &Url,
    ) -> Result<UploadAnswer, Error> {
        let status = resp.status();
        if !matches!(
            status,
            StatusCode::CREATED | StatusCode::ACCEPTED | StatusCode::NO_CONTENT
        ) {
            return Err(status_error(resp, method).await);
        }
        Ok(UploadAnswer {
            status,
            location: location(&resp, url).unwrap_or_else(|_| url.clone()),
            have: range_end(resp.headers()),
            digest: header_str(resp.headers(), "docker-content-digest").map(str::to_owned),
        })
    }
}

/// Whether `e` is a registry refusing a streamed upload (it wants chunks, a length, smaller
/// requests): `400`, `411`, `413`, `416` or `501`.
pub(crate) fn refuses_streaming(e: &Error) -> bool {
    matches!(e.status(), Some(400 | 411 | 413 | 416 | 501))
}

impl Repository {
    /// Starts an upload session (`POST`): its location and the registry's
    /// `OCI-Chunk-Min-Length`.
    pub(crate) async fn start_upload(&self) -> Result<(Url, Option<u64>), Error> {
        let url = self.url("blobs/uploads/")?;
        let resp = self
            .send(Req::new(Method::POST, url.clone()), &self.push_scope())
            .await?;
        let resp = expect(resp, &Method::POST, &[StatusCode::ACCEPTED]).await?;
        self.session_started(&resp, &url)
    }

    /// The location and `OCI-Chunk-Min-Length` of the session a `202` to `url` started.
    fn session_started(&self, resp: &Response, url: &Url) -> Result<(Url, Option<u64>), Error> {
        let min = header_str(resp.headers(), "oci-chunk-min-length").and_then(|v| v.parse().ok());
        if let Some(m) = min {
            self.ingests.set_min_chunk(m);
        }
        Ok((location(resp, url)?, min))
    }

    /// Starts an upload session for `desc` unless the registry says this repository has the
    /// blob: `None` when it has it, else the session ([`start_upload`](Self::start_upload)).
    ///
    /// A blob up to [`ClientConfig::probe_upload_max`](crate::ClientConfig::probe_upload_max)
    /// is asked in one request: a mount of the blob from this repository itself
    /// (`POST ?mount=<digest>&from=<this repository>`). The registry answers `201` when the
    /// repository has the blob (the same lookup in its storage as a `HEAD`) and `202` with a
    /// new session when it has not, as the distribution spec says of a mount it cannot do.
    /// That saves the `HEAD` before every upload of a small blob. A registry that does not
    /// mount answers `202` whatever it holds, and the blob is sent again: at most
    /// `probe_upload_max` bytes. A registry that refuses such a mount (a `4xx` other than
    /// `401`, `403` or `429`) is asked by `HEAD` and `POST` from then on, through this handle.
    /// Larger blobs are always asked by `HEAD` first.
    ///
    /// # Errors
    /// Registry and transport errors.
    pub(crate) async fn start_upload_unless_present(
        &self,
        desc: &Descriptor,
    ) -> Result<Option<(Url, Option<u64>)>, Error> {
        if desc.size <= self.client.inner.config.probe_upload_max && !self.ingests.probe_refused() {
            let mut url = self.url("blobs/uploads/")?;
            url.query_pairs_mut()
                .append_pair("mount", desc.digest.as_str())
                .append_pair("from", &self.name);
            let resp = self
                .send(Req::new(Method::POST, url.clone()), &self.push_scope())
                .await?;
            match resp.status() {
                StatusCode::CREATED => {
                    debug!(digest = %desc.digest, repository = %self.name, "the registry has the blob (mount from the repository itself)");
                    return Ok(None);
                }
                StatusCode::ACCEPTED => return self.session_started(&resp, &url).map(Some),
                s if s.is_client_error()
                    && !matches!(
                        s,
                        StatusCode::UNAUTHORIZED
                            | StatusCode::FORBIDDEN
                            | StatusCode::TOO_MANY_REQUESTS
                    ) =>
                {
                    warn!(repository = %self.name, status = s.as_u16(),
                        "the registry refuses a mount from the repository itself; asking HEAD before each upload from now on");
                    self.ingests.set_probe_refused();
                }
                _ => return Err(status_error(resp, &Method::POST).await),
            }
        }
        if self.blob_exists(desc).await? {
            return Ok(None);
        }
        self.start_upload().await.map(Some)
    }

    /// Sends one chunk at `offset`; on failure asks the registry how much it has and sends the
    /// rest of the chunk from there. Returns the next upload location and the resumptions.
    pub(crate) async fn send_chunk(
        &self,
        loc: &Url,
        offset: u64,
        chunk: Bytes,
    ) -> Result<(Url, u32), Error> {
        let mut loc = loc.clone();
        let mut sent_from = offset;
        let end = offset.checked_add(chunk.len() as u64).ok_or_else(|| {
            Error::protocol(
                "PATCH",
                &loc,
                format!(
                    "a chunk of {} bytes at offset {offset} ends past 2^64 bytes",
                    chunk.len()
                ),
            )
        })?;
        let mut failures: u32 = 0;
        let mut resumed = 0;
        // distribution reports both "nothing received" and "one byte received" as `Range: 0-0`;
        // at the start of an upload try 0 first, then 1 if the registry refuses.
        let mut tried_ambiguous_zero = false;
        loop {
            let part = chunk.slice((sent_from - offset) as usize..);
            let req = Req::new(Method::PATCH, loc.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_RANGE, &format!("{}-{}", sent_from, end - 1))
                .header(header::CONTENT_LENGTH, &part.len().to_string())
                .uploading(&self.client.inner.config, part.len() as u64)
                .body(part)
                .no_retry();
            let outcome = self.send(req, &self.push_scope()).await;
            let failure = match outcome {
                Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                    let next = location(&resp, &loc)?;
                    let have = range_end(resp.headers());
                    match have {
                        Some(h) if h.checked_add(1) == Some(end) => return Ok((next, resumed)),
                        None => return Ok((next, resumed)),
                        Some(h) => {
                            loc = next;
                            format!("registry acknowledged up to byte {h}, expected {}", end - 1)
                        }
                    }
                }
                Ok(resp) => {
                    let status = resp.status();
                    // Inside an operation that retries within its own budget (a copy), an
                    // error answer is the operation's to retry (the upload session stays, so
                    // its retry resumes from what the registry has); only a connection cut
                    // short is resumed here.
                    let caller_retries = oci_store::RetryBudget::current().is_some()
                        && (status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT);
                    if caller_retries
                        || !(status.is_server_error()
                            || status == StatusCode::RANGE_NOT_SATISFIABLE
                            || status == StatusCode::TOO_MANY_REQUESTS
                            || status == StatusCode::REQUEST_TIMEOUT)
                    {
                        return Err(status_error(resp, &Method::PATCH).await);
                    }
                    format!("PATCH answered {status}")
                }
                Err(e @ Error::Transport { .. }) => e.to_string(),
                Err(e) => return Err(e),
            };
            failures += 1;
            if failures > self.client.inner.config.resume_attempts {
                let last = end - 1;
                let what = format!("chunk {offset}-{last} failed {failures} times: {failure}");
                return Err(Error::protocol("PATCH", &loc, what));
            }
            warn!(offset, end, failure = %failure, "chunk upload failed; asking the registry where to resume");
            tokio::time::sleep(self.client.inner.config.retry.backoff(failures)).await;
            let (status_loc, have) = self.upload_status(&loc).await?;
            loc = status_loc;
            let next_from = match have {
                Some(0) if offset == 0 && !tried_ambiguous_zero => {
                    tried_ambiguous_zero = true;
                    0
                }
                // An absurd `Range` (end u64::MAX) is refused below, not an overflow.
                Some(h) => h.saturating_add(1),
                None => 0,
            };
            if next_from < offset || next_from > end {
                let last = end - 1;
                let what = format!(
                    "upload status says {next_from} bytes received, chunk covers {offset}-{last}"
                );
                return Err(Error::protocol("GET", &loc, what));
            }
            if next_from == end {
                return Ok((loc, resumed + 1));
            }
            sent_from = next_from;
            resumed += 1;
        }
    }

    /// `GET` on an upload: where it is and the last byte received.
    pub(crate) async fn upload_status(&self, loc: &Url) -> Result<(Url, Option<u64>), Error> {
        let resp = self
            .send(Req::new(Method::GET, loc.clone()), &self.push_scope())
            .await?;
        let resp = expect(resp, &Method::GET, &[StatusCode::NO_CONTENT]).await?;
        let next = location(&resp, loc).unwrap_or_else(|_| loc.clone());
        Ok((next, range_end(resp.headers())))
    }

    pub(crate) async fn finish_upload(
        &self,
        desc: &Descriptor,
        loc: &Url,
        body: Option<Bytes>,
    ) -> Result<(), Error> {
        let len = body.as_ref().map_or(0, Bytes::len);
        let mut req = Req::new(Method::PUT, commit_url(loc, desc))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, &len.to_string())
            .uploading(&self.client.inner.config, len as u64);
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = self.send(req, &self.push_scope()).await?;
        let resp = expect(resp, &Method::PUT, &[StatusCode::CREATED]).await?;
        self.check_committed(desc, header_str(resp.headers(), "docker-content-digest"))
    }

    /// Checks the `Docker-Content-Digest` of the answer that committed `desc` (none is fine).
    pub(crate) fn check_committed(
        &self,
        desc: &Descriptor,
        digest: Option<&str>,
    ) -> Result<(), Error> {
        match digest {
            Some(d) if d != desc.digest.as_str() => Err(Error::DigestHeaderMismatch {
                what: "blob",
                repository: self.name.clone(),
                expected: desc.digest.clone(),
                actual: d.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    pub(crate) async fn cancel_upload(&self, loc: &Url) {
        let req = Req::new(Method::DELETE, loc.clone()).no_retry();
        if let Err(e) = self.send(req, &self.push_scope()).await {
            debug!(error = %e, "cancelling upload failed");
        }
    }
}

/// The URL that commits an upload session at `loc` as `desc` (`?digest=`).
pub(crate) fn commit_url(loc: &Url, desc: &Descriptor) -> Url {
    let mut url = loc.clone();
    url.query_pairs_mut()
        .append_pair("digest", desc.digest.as_str());
    url
}

pub(super) fn location(resp: &Response, base: &Url) -> Result<Url, Error> {
    header_str(resp.headers(), "location")
        .and_then(|l| base.join(l).ok())
        .ok_or_else(|| {
            Error::protocol(
                "POST",
                base,
                format!("answer {} has no usable Location header", resp.status()),
            )
        })
}

/// `Range: 0-N` (upload progress) → N.
fn range_end(h: &HeaderMap) -> Option<u64> {
    let v = header_str(h, "range")?;
    let v = v.strip_prefix("bytes=").unwrap_or(v);
    let (_, end) = v.split_once('-')?;
    end.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn upload_ranges() {
        let mut h = HeaderMap::new();
        h.insert("range", HeaderValue::from_static("0-1023"));
        assert_eq!(range_end(&h), Some(1023));
        h.insert("range", HeaderValue::from_static("bytes=0-5"));
        assert_eq!(range_end(&h), Some(5));
        h.insert("range", HeaderValue::from_static("junk"));
        assert_eq!(range_end(&h), None);
    }
}
