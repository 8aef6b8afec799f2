//! Sending requests: [`Req`], a request that can be sent again; one attempt within its
//! deadline, following redirects by hand so that `Authorization` never reaches another origin;
//! retries of transient failures (connection errors, 408, 429, 5xx) with backoff and
//! `Retry-After`; a refused connection tried once more only.
//!
//! Inside an operation that retries on its own (an [`oci_store::RetryBudget`] is
//! [current](oci_store::RetryBudget::current), as during a copy), connection errors, 408 and
//! 5xx answers are not retried here but returned at once: the operation retries them within
//! its one budget, and retries do not multiply. What stays: waiting as a 429 asks
//! (`Retry-After`, within the policy), which is the registry pacing us rather than a failure,
//! and the one more try of a refused connection (which the operation does not retry).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};
use tracing::{debug, warn};

use crate::config::ClientConfig;
use crate::{Client, Error};

/// Largest number of redirects followed.
const MAX_REDIRECTS: usize = 10;
/// Attempts at a request whose connection is refused: one more after a short delay (a registry
/// restarting), no more.
const REFUSED_ATTEMPTS: u32 = 2;
/// How long one attempt of a request may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The whole exchange, the answer's body included, within
    /// [`ClientConfig::request_timeout`] (manifests, tokens, listings, small requests).
    Whole,
    /// The answer's head within the request timeout; the body is a blob read under the
    /// minimum rate ([`crate::rate::RateWatch`]).
    Stream,
    /// The whole exchange within this time (uploads: their body at the minimum rate).
    Within(Duration),
}

/// When the body of an answer must have arrived (the request's deadline), kept in the
/// answer's extensions for `read_limited` and `read_errors`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyDeadline {
    pub(super) at: tokio::time::Instant,
    pub(super) limit: Duration,
}

/// A request that can be sent again (retries, re-challenges, redirects).
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
    /// Whether transient failures may be retried by sending the same request again.
    pub(crate) retry: bool,
    /// The body carries a secret (an OAuth2 refresh token): redirects to another origin are
    /// not followed, so the body is never replayed there.
    pub(crate) secret_body: bool,
    /// How long an attempt may take.
    pub(crate) wait: Wait,
}

impl Req {
    pub(crate) fn new(method: Method, url: Url) -> Req {
        Req {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            retry: true,
            secret_body: false,
            wait: Wait::Whole,
        }
    }

    /// A blob download: the answer's head within the request deadline, the body under the
    /// minimum rate.
    pub(crate) fn streaming(mut self) -> Req {
        self.wait = Wait::Stream;
        self
    }

    /// An upload of `len` bytes: the deadline plus the body's time at the minimum rate.
    pub(crate) fn uploading(mut self, config: &ClientConfig, len: u64) -> Req {
        self.wait = Wait::Within(config.upload_deadline(len));
        self
    }

    pub(crate) fn header(mut self, name: header::HeaderName, value: &str) -> Req {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub(crate) fn body(mut self, body: Bytes) -> Req {
        self.body = Some(body);
        self
    }

    pub(crate) fn no_retry(mut self) -> Req {
        self.retry = false;
        self
    }
}

fn retryable_status(s: StatusCode) -> bool {
    matches!(s.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

pub(super) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The delay a `Retry-After` header asks for (delta-seconds or an HTTP date).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

impl Client {
    /// Sends with retries of transient failures; no auth logic beyond the given header. When
    /// the caller retries on its own ([`oci_store::RetryBudget::current`]), only 429s are
    /// retried (see the module's documentation).
    ///
    /// Each attempt has the request's deadline ([`Wait`]); one past it fails with
    /// [`Error::DeadlineExceeded`], not retried. A refused connection is tried
    /// [`REFUSED_ATTEMPTS`] times and fails with [`Error::ConnectionRefused`].
    pub(crate) async fn send_with_retries(
        &self,
        req: Req,
        auth: Option<&str>,
    ) -> Result<Response, Error> {
        let config = &self.inner.config;
        let policy = &config.retry;
        let max = if req.retry { policy.max_retries } else { 0 };
        // The caller retries failures within its own budget (a copy): only 429s are waited
        // out here.
        let caller_retries = oci_store::RetryBudget::current().is_some();
        let limit = match req.wait {
            Wait::Whole | Wait::Stream => config.request_timeout,
            Wait::Within(d) => d,
        };
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            // A deadline too far for the clock is none.
            let due = tokio::time::Instant::now().checked_add(limit);
            let sent = match due {
                Some(due) => {
                    tokio::time::timeout_at(due, self.send_following_redirects(&req, auth)).await
                }
                None => Ok(self.send_following_redirects(&req, auth).await),
            };
            let Ok(result) = sent else {
                warn!(method = %req.method, url = %strip_query(&req.url), attempt, limit_ms = limit.as_millis() as u64, "request deadline exceeded");
                return Err(Error::DeadlineExceeded {
                    method: req.method.to_string(),
                    url: strip_query(&req.url),
                    limit,
                    source: Error::timed_out(),
                });
            };
            // Without its URL: a redirect target may carry a signature in its query (object
            // storage), and the error is logged and shown; `url` below names the request.
            let (result, refused_by) = match result {
                Ok(resp) => (Ok(resp), None),
                Err(e) => {
                    let refused_by = refused_address(&e, &req.url);
                    (Err(e.without_url()), refused_by)
                }
            };
            let delay = match &result {
                Ok(resp)
                    if retryable_status(resp.status())
                        && attempt <= max
                        && (!caller_retries || resp.status() == StatusCode::TOO_MANY_REQUESTS) =>
                {
                    let asked = retry_after(resp.headers());
                    match asked {
                        Some(d) if d > policy.max_retry_after => None,
                        Some(d) => Some(d),
                        None => Some(policy.backoff(attempt)),
                    }
                }
                Err(_) if refused_by.is_some() && attempt >= REFUSED_ATTEMPTS => None,
                // A refused connection gets its one more try even when the caller retries:
                // the caller treats it as final.
                Err(e)
                    if attempt <= max
                        && (!caller_retries || refused_by.is_some())
                        && !e.is_builder() =>
                {
                    Some(policy.backoff(attempt))
                }
                _ => None,
            };
            match (result, delay) {
                (Ok(resp), Some(d)) => {
                    warn!(method = %req.method, url = %strip_query(&req.url), status = resp.status().as_u16(), attempt, delay_ms = d.as_millis() as u64, "transient registry answer, retrying");
                    drop(resp);
                    tokio::time::sleep(d).await;
                }
                (Err(e), Some(d)) => {
                    warn!(method = %req.method, url = %strip_query(&req.url), error = %e, attempt, delay_ms = d.as_millis() as u64, "transport error, retrying");
                    tokio::time::sleep(d).await;
                }
                (Ok(mut resp), None) => {
                    if req.wait != Wait::Stream
                        && let Some(at) = due
                    {
                        resp.extensions_mut().insert(BodyDeadline { at, limit });
                    }
                    return Ok(resp);
                }
                (Err(e), None) => {
                    if let Some(address) = refused_by {
                        return Err(Error::ConnectionRefused {
                            method: req.method.to_string(),
                            url: strip_query(&req.url),
                            address,
                            attempts: attempt,
                            source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, e),
                        });
                    }
                    return Err(Error::Transport {
                        method: req.method.to_string(),
                        url: strip_query(&req.url),
                        attempts: attempt,
                        source: e,
                    });
                }
            }
        }
    }

    /// One attempt, following redirects by hand so that `Authorization` is only sent to the
    /// origin of the original request.
    async fn send_following_redirects(
        &self,
        req: &Req,
        auth: Option<&str>,
    ) -> Result<Response, reqwest::Error> {
        let mut method = req.method.clone();
        let mut url = req.url.clone();
        let mut body = req.body.clone();
        let mut hops = 0;
        loop {
            let mut rb = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .headers(req.headers.clone());
            if let Some(a) = auth
                && same_origin(&url, &req.url)
            {
                rb = rb.header(header::AUTHORIZATION, a);
            }
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            let resp = rb.send().await?;
            debug!(method = %method, url = %strip_query(&url), status = resp.status().as_u16(), version = ?resp.version(), "registry answer");
            let status = resp.status();
            if !status.is_redirection() || hops == MAX_REDIRECTS {
                // Too many redirects: the caller sees the last 3xx as an unexpected status.
                return Ok(resp);
            }
            hops += 1;
            let Some(next) = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok())
            else {
                return Ok(resp);
            };
            if req.secret_body && !same_origin(&next, &req.url) {
                // Not followed: the caller sees the 3xx as an unexpected status.
                warn!(method = %method, url = %strip_query(&url), to = %strip_query(&next), "not following a redirect to another origin with a secret body");
                return Ok(resp);
            }
            if status == StatusCode::SEE_OTHER
                || ((status == StatusCode::MOVED_PERMANENTLY || status == StatusCode::FOUND)
                    && method == Method::POST)
            {
                method = Method::GET;
                body = None;
            }
            url = next;
        }
    }
}

/// The `host:port` that refused the connection, when `e` is a refused connection (the URL of
/// the hop that failed, else `fallback`'s).
fn refused_address(e: &reqwest::Error, fallback: &Url) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut refused = false;
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            refused = true;
            break;
        }
        cur = err.source();
    }
    if !refused {
        return None;
    }
    let url = e.url().unwrap_or(fallback);
    let host = url.host_str().unwrap_or("?");
    Some(match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    })
}

/// A URL without its query (which may carry upload state or signatures).
pub(crate) fn strip_query(u: &Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let later = SystemTime::now() + Duration::from_secs(30);
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn which_answers_are_retried() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(
                retryable_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
        for code in [200, 201, 202, 400, 401, 403, 404, 405, 416, 501] {
            assert!(
                !retryable_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
    }

    #[test]
    fn origins() {
        let a = Url::parse("https://r.example/v2/x").unwrap();
        assert!(same_origin(
            &a,
            &Url::parse("https://r.example:443/other").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("http://r.example/v2/x").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("https://s3.example/v2/x").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("https://r.example:8443/v2/x").unwrap()
        ));
    }
}
