//! One repository of a registry (`registry/name`): the [`Repository`] handle, its construction
//! and the requests every part shares. Each job has its file:
//!
//! - `manifest.rs`: resolve, fetch, push and delete manifests;
//! - `fetch.rs`: blob existence (`HEAD`), whole blobs (verified or counted), ranges, parallel
//!   parts; every body is read by `body.rs`, the one resumable, rate-held reader;
//! - `upload.rs`: blob pushes, mounts, streamed and chunked uploads, blob deletion; the
//!   upload session's requests in `session.rs`, streamed requests (a body read from its
//!   source as it is sent) in `stream.rs`;
//! - `referrers.rs`: the referrers API and the tag schema fallback;
//! - `list.rs`: tags and the registry's catalog, following pagination.
//!
//! The client speaks the protocol and reports what the registry said. Whether to distrust a
//! registry's answers (a `HEAD` for a blob it lost) and how to repair is policy, decided in
//! `oci-store`: [`oci_store::CopyOptions::verify`] for a copy, [`oci_store::checked_exists`] for a
//! checked existence answer.

mod body;
mod fetch;
mod list;
mod manifest;
mod referrers;
mod session;
mod stream;
mod upload;

use std::pin::Pin;

use bytes::Bytes;
use futures_core::Stream;
use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode, Url};

use crate::auth::repo_scope;
use crate::client::{Req, expect};
use crate::{Client, Error};

pub use manifest::FetchedManifest;
pub(crate) use session::{commit_url, refuses_streaming};
pub(crate) use stream::{Feed, FeedRefused};
pub use upload::BlobPush;

/// A stream of blob bytes. Items are the crate's [`Error`]s; a stream that ends without an error
/// delivered exactly the expected bytes (size and digest verified).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>;

/// Content handed to a push: a stream of `io::Result<Bytes>` (the store traits' `BlobStream`).
pub type BlobSource = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A handle on one repository (`registry/name`). Cheap to clone.
///
/// It also implements the `oci-store` traits ([`oci_store::ReadStore`],
/// [`oci_store::WriteStore`], [`oci_store::TagStore`]), so a graph copy works between it and
/// memory or layout stores; the media type of a descriptor decides between the manifest and
/// blob endpoints. Upload sessions opened through [`oci_store::WriteStore::writer`] are
/// resumable ingests of this handle and its clones.
///
/// ```no_run
/// use bytes::Bytes;
/// use futures_util::StreamExt;
/// use oci_distribution_client::{Algorithm, Client, ClientConfig, Descriptor, media_types};
///
/// # async fn demo() -> Result<(), oci_distribution_client::Error> {
/// let client = Client::new(ClientConfig::default().with_plain_http("127.0.0.1:5000"))?;
/// let repo = client.repository_by_name("127.0.0.1:5000", "team/app")?;
///
/// // Push a blob from a stream (verified as it is read), then read it back verified.
/// let data = Bytes::from_static(b"layer bytes");
/// let desc = Descriptor::new(media_types::OCI_LAYER_TAR, Algorithm::Sha256.hash(&data), 11);
/// let source = Box::pin(futures_util::stream::iter([Ok(data.clone())]));
/// repo.push_blob(&desc, source).await?;
/// let mut blob = repo.fetch_blob(&desc).await?;
/// while let Some(chunk) = blob.next().await {
///     let _ = chunk?;
/// }
///
/// // Tags as a stream following pagination.
/// let mut tags = std::pin::pin!(repo.tags());
/// while let Some(tag) = tags.next().await {
///     println!("{}", tag?);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Repository {
    pub(crate) client: Client,
    pub(crate) registry: String,
    pub(crate) name: String,
    pub(crate) base: Url,
    pub(crate) ingests: std::sync::Arc<crate::store::Ingests>,
    pub(crate) pushed: std::sync::Arc<crate::store::Pushed>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("registry", &self.registry)
            .field("name", &self.name)
            .finish()
    }
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

impl Repository {
    /// The registry (`host[:port]`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository name (`team/app`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client this handle uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn url(&self, path: &str) -> Result<Url, Error> {
        self.base
            .join(&format!("{}/{}", self.name, path))
            .map_err(|e| Error::InvalidArgument(format!("cannot build URL for {path}: {e}")))
    }

    fn pull_scope(&self) -> Vec<String> {
        vec![repo_scope(&self.name, "pull")]
    }

    pub(crate) fn push_scope(&self) -> Vec<String> {
        vec![repo_scope(&self.name, "pull,push")]
    }

    fn reference_name(&self, reference: &str) -> String {
        if reference.contains(':') {
            format!("{}/{}@{}", self.registry, self.name, reference)
        } else {
            format!("{}/{}:{}", self.registry, self.name, reference)
        }
    }

    pub(crate) async fn send(&self, req: Req, scopes: &[String]) -> Result<Response, Error> {
        self.client.send(&self.registry, req, scopes).await
    }

    async fn delete(&self, path: &str) -> Result<(), Error> {
        let url = self.url(path)?;
        let scopes = [repo_scope(&self.name, "delete")];
        let resp = self.send(Req::new(Method::DELETE, url), &scopes).await?;
        expect(
            resp,
            &Method::DELETE,
            &[StatusCode::ACCEPTED, StatusCode::OK],
        )
        .await
        .map(drop)
    }
}
