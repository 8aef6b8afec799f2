//! A registry repository (an origin or one of its mirrors) as an `oci-store`
//! [`RangeSource`]: one `Range` GET per request, read as the registry answers it, so that
//! `oci_store::fetch_blob` can take a blob in pieces from several registries at once.
//!
//! What the answers mean here:
//!
//! - `206`: the `Content-Range` must start where asked and, when it names the blob's length,
//!   name the descriptor's size (another length is another blob: the source is dropped for it);
//! - `200` to a range: the registry ignores `Range`; the answer is handed on from offset 0 and
//!   the fetch drops the bytes before the range, up to its own limit
//!   ([`FetchOptions::max_skip`](oci_store::FetchOptions)), or gives the range to another source;
//!   a `Content-Length` that is not the blob's size refuses the answer at once;
//! - `416` (the source's blob ends before the range) and `404`: the source does not hold this
//!   content ([`StoreError::NotFound`]: the fetch stops asking it for the blob);
//! - bodies shorter than asked end the stream early and longer ones are cut by the fetch (it
//!   counts both against the source); redirects to storage are followed by the client, without
//!   the registry's credentials.
//!
//! Bodies are held to [`ClientConfig::min_rate`](crate::ClientConfig::min_rate). A dropped
//! connection is not resumed here: the fetch gives the piece again, to this source or another.

use std::ops::Range;

use async_trait::async_trait;
use futures_util::stream;
use oci_manifest::Descriptor;
use oci_store::{BlobStream, RangeAnswer, RangeSource, StoreError};
use reqwest::{Method, Response, StatusCode, header};
use tracing::{debug, warn};

use crate::auth::repo_scope;
use crate::client::{Req, expect, strip_query};
use crate::rate::{RateWatch, ReadError};
use crate::{Error, Repository};

/// A registry repository serving byte ranges of its blobs to a many-source fetch
/// ([`oci_store::fetch_blob`]).
///
/// ```no_run
/// use std::sync::Arc;
/// use oci_distribution_client::{Client, ClientConfig, RegistrySource};
/// use oci_store::{fetch_blob, FetchOptions, LayoutStore, RangeSource};
///
/// # async fn demo(desc: oci_distribution_client::Descriptor) -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::new(
///     ClientConfig::default().with_plain_http("127.0.0.1:5001").with_plain_http("127.0.0.1:5000"),
/// )?;
/// let mirror = client.repository_by_name("127.0.0.1:5001", "team/app")?;
/// let origin = client.repository_by_name("127.0.0.1:5000", "team/app")?;
/// // The origin last: the most trusted source.
/// let sources: Vec<Arc<dyn RangeSource>> = vec![
///     Arc::new(RegistrySource::new(mirror)),
///     Arc::new(RegistrySource::new(origin)),
/// ];
/// let dst = LayoutStore::open("./layout").await?;
/// let report = fetch_blob(&dst, "pull-1", &desc, &sources, &FetchOptions::default()).await?;
/// for s in &report.sources {
///     println!("{}: {} bytes", s.name, s.bytes);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RegistrySource {
    repo: Repository,
    name: String,
}

impl RegistrySource {
    /// `repo` as a range source, named `registry/repository`.
    pub fn new(repo: Repository) -> RegistrySource {
        let name = format!("{}/{}", repo.registry, repo.name);
        RegistrySource { repo, name }
    }

    /// The same source under another name (for reports: "mirror 1", the registries.conf
    /// location).
    ///
    /// ```
    /// use oci_distribution_client::{Client, ClientConfig, RegistrySource};
    /// use oci_store::RangeSource;
    /// let client = Client::new(ClientConfig::default())?;
    /// let repo = client.repository_by_name("mirror.example.com", "library/alpine")?;
    /// assert_eq!(RegistrySource::new(repo.clone()).source_name(), "mirror.example.com/library/alpine");
    /// assert_eq!(RegistrySource::new(repo).named("cache").source_name(), "cache");
    /// # Ok::<(), oci_distribution_client::Error>(())
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> RegistrySource {
        self.name = name.into();
        self
    }

    /// The repository this source reads.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    fn store_error(&self, desc: &Descriptor, e: Error) -> StoreError {
        if e.is_not_found() {
            return StoreError::NotFound {
                digest: desc.digest.clone(),
            };
        }
        StoreError::backend(
            format!("range of blob {} from {}", desc.digest, self.name),
            e,
        )
    }

    /// Sends the range GET and checks the answer's head; the answer and the blob offset of its
    /// first byte, `None` for a 416 (the source's blob ends before the range).
    async fn open(
        &self,
        desc: &Descriptor,
        range: &Range<u64>,
    ) -> Result<Option<(Response, u64)>, Error> {
        let url = self.repo.url(&format!("blobs/{}", desc.digest))?;
        let last = range.end.saturating_sub(1);
        let req = Req::new(Method::GET, url.clone())
            .streaming()
            .header(header::RANGE, &format!("bytes={}-{last}", range.start));
        let scopes = [repo_scope(&self.repo.name, "pull")];
        let resp = self.repo.send(req, &scopes).await?;
        if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            warn!(source = %self.name, digest = %desc.digest, start = range.start, size = desc.size, "416: the source's blob is shorter than the descriptor says");
            return Ok(None);
        }
        let resp = expect(
            resp,
            &Method::GET,
            &[StatusCode::OK, StatusCode::PARTIAL_CONTENT],
        )
        .await?;
        if resp.status() == StatusCode::PARTIAL_CONTENT {
            let (start, total) = parse_content_range(resp.headers()).ok_or_else(|| {
                Error::protocol("GET", resp.url(), "a 206 without a valid Content-Range")
            })?;
            if start != range.start {
                return Err(Error::protocol(
                    "GET",
                    resp.url(),
                    format!(
                        "asked for bytes from {}, got bytes from {start}",
                        range.start
                    ),
                ));
            }
            if let Some(total) = total
                && total != desc.size
            {
                return Err(Error::SizeMismatch {
                    repository: self.repo.name.clone(),
                    digest: desc.digest.clone(),
                    expected: desc.size,
                    actual: total,
                });
            }
            return Ok(Some((resp, start)));
        }
        // 200: the whole blob, from its first byte.
        if let Some(len) = resp.content_length()
            && len != desc.size
        {
            return Err(Error::SizeMismatch {
                repository: self.repo.name.clone(),
                digest: desc.digest.clone(),
                expected: desc.size,
                actual: len,
            });
        }
        if range.start > 0 {
            debug!(source = %self.name, digest = %desc.digest, "the registry ignores Range: the whole blob from byte 0");
        }
        Ok(Some((resp, 0)))
    }
}

/// `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`): the start and the total.
fn parse_content_range(h: &header::HeaderMap) -> Option<(u64, Option<u64>)> {
    let v = h.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    if end < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

/// The body as a stream held to the minimum rate.
fn body_stream(resp: Response, rate: RateWatch, what: String) -> BlobStream {
    Box::pin(stream::unfold(
        Some((resp, rate, what)),
        |state| async move {
            let (mut resp, mut rate, what) = state?;
            match rate.chunk(&mut resp).await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some((resp, rate, what)))),
                Ok(None) => None,
                Err(ReadError::TooSlow(slow)) => {
                    Some((Err(slow.error(resp.url(), &what).into_io()), None))
                }
                Err(ReadError::Http(e)) => Some((
                    Err(Error::Transport {
                        method: "GET".into(),
                        url: strip_query(resp.url()),
                        attempts: 1,
                        source: e.without_url(),
                    }
                    .into_io()),
                    None,
                )),
            }
        },
    ))
}

#[async_trait]
impl RangeSource for RegistrySource {
    fn source_name(&self) -> String {
        self.name.clone()
    }

    async fn read_range(
        &self,
        desc: &Descriptor,
        range: Range<u64>,
    ) -> oci_store::Result<RangeAnswer> {
        let range = range.start..range.end.min(desc.size);
        if range.start >= range.end {
            return Ok(RangeAnswer::new(
                range.start,
                oci_store::bytes_stream(bytes::Bytes::new()),
            ));
        }
        let Some((resp, start)) = self
            .open(desc, &range)
            .await
            .map_err(|e| self.store_error(desc, e))?
        else {
            return Err(StoreError::NotFound {
                digest: desc.digest.clone(),
            });
        };
        let rate = RateWatch::new(self.repo.client.inner.config.min_rate);
        let what = format!("range of blob {}", desc.digest);
        Ok(RangeAnswer::new(start, body_stream(resp, rate, what)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cr(v: &str) -> Option<(u64, Option<u64>)> {
        let mut h = header::HeaderMap::new();
        h.insert(header::CONTENT_RANGE, v.parse().unwrap());
        parse_content_range(&h)
    }

    #[test]
    fn content_ranges() {
        assert_eq!(cr("bytes 0-9/10"), Some((0, Some(10))));
        assert_eq!(cr("bytes 5-9/*"), Some((5, None)));
        assert_eq!(cr("bytes 9-5/10"), None);
        assert_eq!(cr("bytes x-5/10"), None);
        assert_eq!(cr("items 0-5/10"), None);
        assert_eq!(cr("bytes 0-5"), None);
        assert_eq!(cr("bytes 0-5/ten"), None);
    }
}
