//! Reading answers: error bodies (bounded in size and time) as registry errors, the check of
//! an expected status, and whole bodies with a size limit within the request's deadline.

use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, Response, StatusCode};
use tracing::debug;

use super::transport::{BodyDeadline, strip_query};
use crate::Error;
use crate::error::{RegistryErrors, body_excerpt};

/// Largest error body read from a failed answer.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest wait for the body of an error answer that has no deadline of its own (a blob
/// download's): its details are a courtesy, not worth a hang.
const ERROR_BODY_WAIT: Duration = Duration::from_secs(10);

/// Reads an error body (bounded in size, and in time by the request's deadline and
/// [`ERROR_BODY_WAIT`]) into registry error entries, with an escaped excerpt of the body when
/// it holds none (see [`Error::Registry`]).
pub(super) async fn read_errors(mut resp: Response) -> (RegistryErrors, Option<String>) {
    let wait = tokio::time::Instant::now() + ERROR_BODY_WAIT;
    let due = match resp.extensions().get::<BodyDeadline>() {
        Some(d) => d.at.min(wait),
        None => wait,
    };
    let mut buf = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = resp.chunk().await {
            let room = MAX_ERROR_BODY.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if buf.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    if tokio::time::timeout_at(due, read).await.is_err() {
        debug!(
            received = buf.len(),
            "error body not complete in time; using what arrived"
        );
    }
    let errors = RegistryErrors::parse(&buf);
    let excerpt = if errors.0.is_empty() {
        body_excerpt(&buf)
    } else {
        None
    };
    (errors, excerpt)
}

/// Returns the answer when its status is one of `ok`, else the registry error.
pub(crate) async fn expect(
    resp: Response,
    method: &Method,
    ok: &[StatusCode],
) -> Result<Response, Error> {
    if ok.contains(&resp.status()) {
        return Ok(resp);
    }
    Err(unexpected_status(resp, method, ok).await)
}

/// The error for an answer whose status the caller does not accept: the registry's error for
/// an error status, a protocol violation for any other.
pub(crate) async fn status_error(resp: Response, method: &Method) -> Error {
    unexpected_status(resp, method, &[]).await
}

/// [`status_error`], naming the statuses that were expected (`ok`, when known).
async fn unexpected_status(resp: Response, method: &Method, ok: &[StatusCode]) -> Error {
    let status = resp.status().as_u16();
    let url = strip_query(resp.url());
    if !resp.status().is_client_error() && !resp.status().is_server_error() {
        // Not an error answer (a 200 to a Range request, a redirect too many): its body has
        // no error details, and "registry answered 200" would say nothing.
        let expected: Vec<String> = ok.iter().map(ToString::to_string).collect();
        let what = if expected.is_empty() {
            format!("unexpected answer {}", resp.status())
        } else {
            format!(
                "answered {} where {} was expected",
                resp.status(),
                expected.join(" or ")
            )
        };
        return Error::Protocol {
            method: method.to_string(),
            url,
            what,
        };
    }
    let (errors, body) = read_errors(resp).await;
    if status == 401 || status == 403 {
        Error::Unauthorized {
            method: method.to_string(),
            url,
            status,
            errors,
            body,
        }
    } else {
        Error::Registry {
            method: method.to_string(),
            url,
            status,
            errors,
            body,
        }
    }
}

/// Reads a whole body of at most `limit` bytes, within the request's deadline.
pub(crate) async fn read_limited(
    resp: Response,
    method: &Method,
    limit: u64,
) -> Result<Bytes, Error> {
    let url = strip_query(resp.url());
    match resp.extensions().get::<BodyDeadline>().copied() {
        Some(d) => tokio::time::timeout_at(d.at, read_body(resp, method, limit, url.clone()))
            .await
            .unwrap_or_else(|_| {
                Err(Error::DeadlineExceeded {
                    method: method.to_string(),
                    url,
                    limit: d.limit,
                    source: Error::timed_out(),
                })
            }),
        None => read_body(resp, method, limit, url).await,
    }
}

async fn read_body(
    mut resp: Response,
    method: &Method,
    limit: u64,
    url: String,
) -> Result<Bytes, Error> {
    let mut buf = bytes::BytesMut::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if (buf.len() + c.len()) as u64 > limit {
                    return Err(Error::Protocol {
                        method: method.to_string(),
                        url,
                        what: format!("answer larger than {limit} bytes"),
                    });
                }
                buf.extend_from_slice(&c);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) => {
                return Err(Error::Transport {
                    method: method.to_string(),
                    url,
                    attempts: 1,
                    source: e.without_url(),
                });
            }
        }
    }
}
