//! Listings: the tags of a repository and the catalog of a registry, as streams that follow
//! `Link` pagination (and stop with an error when it loops).

use std::collections::{HashSet, VecDeque};

use futures_core::Stream;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode, Url};

use super::Repository;
use crate::client::{Req, expect, read_limited};
use crate::{Client, Error, Reference};

impl Repository {
    /// The repository's tags as an async stream, following `Link` pagination.
    ///
    /// # Errors
    /// Items are registry or transport errors; the stream ends after the first error.
    pub fn tags(&self) -> impl Stream<Item = Result<String, Error>> + Send + 'static {
        let first = self.url("tags/list").map(|mut u| {
            u.query_pairs_mut()
                .append_pair("n", &self.client.inner.config.page_size.to_string());
            u
        });
        paginate(
            self.client.clone(),
            self.registry.clone(),
            first,
            self.pull_scope(),
            "tags",
        )
    }
}

impl Client {
    /// The registry's repositories (`GET /v2/_catalog`) as an async stream following `Link`
    /// pagination.
    ///
    /// # Errors
    /// Items are registry or transport errors; the stream ends after the first error.
    pub fn catalog(
        &self,
        registry: &str,
    ) -> impl Stream<Item = Result<String, Error>> + Send + 'static {
        let first = Reference::parse(&format!("{registry}/catalog"))
            .map_err(Error::from)
            .and_then(|r| self.base_url(registry, r.api_host()))
            .and_then(|b| {
                b.join(&format!("_catalog?n={}", self.config().page_size))
                    .map_err(|e| Error::InvalidArgument(format!("catalog URL: {e}")))
            });
        paginate(
            self.clone(),
            registry.to_owned(),
            first,
            vec!["registry:catalog:*".to_owned()],
            "repositories",
        )
    }
}

/// Records a page URL of a paginated listing; an error when it was asked for already (a
/// registry whose `Link` leads back would otherwise be followed forever).
pub(super) fn not_seen(seen: &mut HashSet<Url>, url: &Url) -> Result<(), Error> {
    if seen.insert(url.clone()) {
        Ok(())
    } else {
        Err(Error::protocol(
            "GET",
            url,
            format!("Link pagination loops back to {url}"),
        ))
    }
}

/// `Link: <url>; rel="next"` → the next URL.
pub(super) fn link_next(h: &HeaderMap, base: &Url) -> Option<Url> {
    for v in h
        .get_all(header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for part in v.split(',') {
            let part = part.trim();
            let (target, params) = part.split_once(';').unwrap_or((part, ""));
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            if params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            }) {
                return base.join(target).ok();
            }
        }
    }
    None
}

/// Pages of `{"<field>": [..]}` as a stream of strings.
fn paginate(
    client: Client,
    registry: String,
    first: Result<Url, Error>,
    scopes: Vec<String>,
    field: &'static str,
) -> impl Stream<Item = Result<String, Error>> + Send + 'static {
    struct St {
        client: Client,
        registry: String,
        next: Option<Result<Url, Error>>,
        buf: VecDeque<String>,
        scopes: Vec<String>,
        field: &'static str,
        /// Pages already asked for: a `Link` back to one of them is a loop.
        seen: HashSet<Url>,
    }
    let st = St {
        client,
        registry,
        next: Some(first),
        buf: VecDeque::new(),
        scopes,
        field,
        seen: HashSet::new(),
    };
    futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(s) = st.buf.pop_front() {
                return Some((Ok(s), st));
            }
            let url = match st.next.take()? {
                Ok(u) => u,
                Err(e) => return Some((Err(e), st)),
            };
            if let Err(e) = not_seen(&mut st.seen, &url) {
                return Some((Err(e), st));
            }
            let page = async {
                let resp = st
                    .client
                    .send(&st.registry, Req::new(Method::GET, url.clone()), &st.scopes)
                    .await?;
                let resp = expect(resp, &Method::GET, &[StatusCode::OK]).await?;
                let next = link_next(resp.headers(), &url);
                let bytes = read_limited(resp, &Method::GET, 16 * 1024 * 1024).await?;
                let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::protocol("GET", &url, format!("list answer is not JSON: {e}"))
                })?;
                let items: Vec<String> = v
                    .get(st.field)
                    .and_then(|a| a.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok::<_, Error>((items, next))
            }
            .await;
            match page {
                Ok((items, next)) => {
                    st.buf.extend(items);
                    st.next = next.map(Ok);
                }
                Err(e) => return Some((Err(e), st)),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn link_headers() {
        let base = Url::parse("http://r.example/v2/a/tags/list?n=2").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            header::LINK,
            HeaderValue::from_static("</v2/a/tags/list?last=b&n=2>; rel=\"next\""),
        );
        assert_eq!(
            link_next(&h, &base).unwrap().as_str(),
            "http://r.example/v2/a/tags/list?last=b&n=2"
        );
        h.insert(
            header::LINK,
            HeaderValue::from_static(
                "<http://o.example/x>; rel=\"prev\", <http://o.example/y>;rel=next",
            ),
        );
        assert_eq!(link_next(&h, &base).unwrap().as_str(), "http://o.example/y");
        h.insert(header::LINK, HeaderValue::from_static("garbage"));
        assert_eq!(link_next(&h, &base), None);
    }
}
