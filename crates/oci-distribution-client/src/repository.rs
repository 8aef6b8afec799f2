//! One repository of a registry: resolve, pull, push, list, delete, referrers.

use std::collections::{HashSet, VecDeque};
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;
use oci_digest::{Algorithm, Digest, Verifier};
use oci_manifest::{Descriptor, Manifest, media_types};
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, Response, StatusCode, Url};
use tracing::{debug, warn};

use crate::auth::repo_scope;
use crate::client::{Req, expect, read_limited, status_error, strip_query};
use crate::config::ExistenceCheck;
use crate::rate::{RateWatch, ReadError};
use crate::{Client, Error};

/// A stream of blob bytes. Items are the crate's [`Error`]s; a stream that ends without an error
/// delivered exactly the expected bytes (size and digest verified).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>;

/// Content handed to a push: a stream of `io::Result<Bytes>` (the store traits' `BlobStream`).
pub type BlobSource = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A manifest as fetched: its exact bytes and the descriptor that names them.
///
/// ```
/// use bytes::Bytes;
/// use oci_distribution_client::{Algorithm, Descriptor, FetchedManifest, media_types};
/// let bytes = Bytes::from_static(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#);
/// let fetched = FetchedManifest {
///     descriptor: Descriptor::new(media_types::OCI_INDEX, Algorithm::Sha256.hash(&bytes), bytes.len() as u64),
///     bytes,
/// };
/// assert!(fetched.parse()?.is_index());
/// # Ok::<(), oci_distribution_client::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Media type (from the answer's `Content-Type`, else the manifest's `mediaType`), digest
    /// and size of `bytes`.
    pub descriptor: Descriptor,
    /// The exact bytes served. `descriptor.digest` is their digest; it was checked against
    /// the pinned digest or the registry's `Docker-Content-Digest`. Fetched by tag from a
    /// registry that sends no (parsable) `Docker-Content-Digest`, there was nothing to check
    /// against: the digest is then only computed from the bytes (trust on first use).
    pub bytes: Bytes,
}

impl FetchedManifest {
    /// Parses the bytes.
    ///
    /// # Errors
    /// [`Error::Manifest`] when they are not a valid manifest or index.
    pub fn parse(&self) -> Result<Manifest, Error> {
        Manifest::parse_pinned(
            self.bytes.clone(),
            Some(&self.descriptor.media_type),
            &self.descriptor.digest,
            &Default::default(),
        )
        .map_err(|source| Error::Manifest {
            reference: self.descriptor.digest.to_string(),
            source,
        })
    }
}

/// What a blob push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushOutcome {
    /// The registry already had the blob (by the configured [`ExistenceCheck`]).
    Skipped,
    /// The registry mounted it from another repository.
    Mounted,
    /// Uploaded in one request.
    Monolithic,
    /// Uploaded in this many chunks.
    Chunked {
        /// Chunks sent (retries of a chunk not counted).
        chunks: u32,
        /// Chunk sends that failed and were resumed in place.
        resumed: u32,
    },
}

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

fn accept_manifests() -> String {
    media_types::MANIFEST_MEDIA_TYPES.join(", ")
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

    fn push_scope(&self) -> Vec<String> {
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

    fn check_manifest_reference(reference: &str) -> Result<Option<Digest>, Error> {
        if reference.contains(':') {
            Digest::parse(reference)
                .map(Some)
                .map_err(|_| Error::InvalidReference {
                    input: reference.to_owned(),
                    reason: crate::InvalidReferenceReason::InvalidDigest,
                })
        } else if crate::reference::valid_tag(reference) {
            Ok(None)
        } else {
            Err(Error::InvalidReference {
                input: reference.to_owned(),
                reason: crate::InvalidReferenceReason::InvalidTag,
            })
        }
    }

    // ---------------------------------------------------------------- pull

    /// Resolves a tag or digest to the manifest's descriptor: `HEAD` with an `Accept` for every
    /// manifest type; when HEAD gives no `Docker-Content-Digest` (or is refused), a `GET` that
    /// is verified and hashed.
    ///
    /// # Errors
    /// [`Error::Registry`] (404 when unknown), [`Error::Unauthorized`], [`Error::Transport`], and
    /// the errors of [`fetch_manifest`](Repository::fetch_manifest) for the fallback.
    pub async fn resolve(&self, reference: &str) -> Result<Descriptor, Error> {
        let pinned = Self::check_manifest_reference(reference)?;
        let url = self.url(&format!("manifests/{reference}"))?;
        let req = Req::new(Method::HEAD, url).header(header::ACCEPT, &accept_manifests());
        let resp = self.send(req, &self.pull_scope()).await?;
        if resp.status() == StatusCode::OK {
            let h = resp.headers();
            let digest = header_str(h, "docker-content-digest").and_then(|d| Digest::parse(d).ok());
            let size = header_str(h, "content-length").and_then(|s| s.parse::<u64>().ok());
            let media_type = header_str(h, "content-type").map(media_types::essence);
            if let (Some(digest), Some(size), Some(mt)) = (digest, size, media_type)
                && media_types::is_manifest(mt)
            {
                if let Some(p) = &pinned
                    && p != &digest
                {
                    return Err(Error::ManifestDigestMismatch {
                        reference: self.reference_name(reference),
                        expected: p.clone(),
                        source_of_expected: "pinned reference",
                        actual: digest,
                    });
                }
                if size > self.client.inner.config.max_manifest_size {
                    return Err(Error::ManifestTooLarge {
                        reference: self.reference_name(reference),
                        limit: self.client.inner.config.max_manifest_size,
                        size,
                    });
                }
                return Ok(Descriptor::new(mt, digest, size));
            }
            debug!(
                reference,
                "HEAD lacks digest, size or media type; falling back to GET"
            );
        } else if resp.status() == StatusCode::NOT_FOUND {
            return Err(status_error(resp, &Method::HEAD).await);
        }
        Ok(self.fetch_manifest(reference).await?.descriptor)
    }

    /// Fetches a manifest by tag or digest, with the size limit, verified against the pinned
    /// digest or else the `Docker-Content-Digest` header (by tag without that header, the
    /// digest is computed from the bytes; see [`FetchedManifest::bytes`]).
    ///
    /// # Errors
    /// [`Error::ManifestTooLarge`], [`Error::ManifestDigestMismatch`] naming the reference and
    /// both digests, [`Error::Registry`] (404 `MANIFEST_UNKNOWN`), [`Error::Protocol`] when the
    /// answer has no manifest media type.
    pub async fn fetch_manifest(&self, reference: &str) -> Result<FetchedManifest, Error> {
        let pinned = Self::check_manifest_reference(reference)?;
        let url = self.url(&format!("manifests/{reference}"))?;
        let req = Req::new(Method::GET, url.clone()).header(header::ACCEPT, &accept_manifests());
        let resp = self.send(req, &self.pull_scope()).await?;
        let resp = expect(resp, &Method::GET, &[StatusCode::OK]).await?;
        let limit = self.client.inner.config.max_manifest_size;
        let refname = self.reference_name(reference);
        if let Some(len) = resp.content_length()
            && len > limit
        {
            return Err(Error::ManifestTooLarge {
                reference: refname,
                limit,
                size: len,
            });
        }
        let header_digest =
            header_str(resp.headers(), "docker-content-digest").and_then(|d| Digest::parse(d).ok());
        let content_type =
            header_str(resp.headers(), "content-type").map(|c| media_types::essence(c).to_owned());
        let bytes = read_limited(resp, &Method::GET, limit)
            .await
            .map_err(|e| match e {
                Error::Protocol { .. } => Error::ManifestTooLarge {
                    reference: refname.clone(),
                    limit,
                    size: limit + 1,
                },
                other => other,
            })?;
        let (expected, source) = match (&pinned, &header_digest) {
            (Some(p), _) => (Some(p.clone()), "pinned reference"),
            (None, Some(h)) => (Some(h.clone()), "Docker-Content-Digest"),
            (None, None) => (None, ""),
        };
        let digest = match expected {
            Some(exp) => {
                let actual = exp.algorithm().hash(&bytes);
                if actual != exp {
                    return Err(Error::ManifestDigestMismatch {
                        reference: refname,
                        expected: exp,
                        source_of_expected: source,
                        actual,
                    });
                }
                // A pinned fetch whose header names another digest of the same bytes is fine
                // only when that header matches too.
                if let (Some(_), Some(h)) = (&pinned, &header_digest) {
                    let a = h.algorithm().hash(&bytes);
                    if &a != h {
                        return Err(Error::ManifestDigestMismatch {
                            reference: refname,
                            expected: h.clone(),
                            source_of_expected: "Docker-Content-Digest",
                            actual: a,
                        });
                    }
                }
                actual
            }
            None => Algorithm::Sha256.hash(&bytes),
        };
        let media_type = match content_type.filter(|c| media_types::is_manifest(c)) {
            Some(c) => c,
            None => {
                // Registries may serve application/json; take the manifest's own mediaType.
                let m = Manifest::parse(bytes.clone(), None).map_err(|source| Error::Manifest {
                    reference: refname.clone(),
                    source,
                })?;
                m.media_type().to_owned()
            }
        };
        let size = bytes.len() as u64;
        Ok(FetchedManifest {
            descriptor: Descriptor::new(media_type, digest, size),
            bytes,
        })
    }

    /// Whether the registry has the blob, by `HEAD`.
    ///
    /// # Errors
    /// Registry and transport errors other than 404.
    pub async fn blob_exists_head(&self, digest: &Digest) -> Result<Option<u64>, Error> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let resp = self
            .send(Req::new(Method::HEAD, url), &self.pull_scope())
            .await?;
        match resp.status() {
            // The header, not the (empty) HEAD body's length.
            StatusCode::OK => Ok(Some(
                header_str(resp.headers(), "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(status_error(resp, &Method::HEAD).await),
        }
    }

    /// Whether the registry has the blob, checked as `check` says.
    ///
    /// # Errors
    /// Registry and transport errors other than "not there".
    pub async fn blob_exists(
        &self,
        desc: &Descriptor,
        check: ExistenceCheck,
    ) -> Result<bool, Error> {
        let head = self.blob_exists_head(&desc.digest).await?;
        let Some(size) = head else {
            return Ok(false);
        };
        if size != desc.size && size != 0 {
            warn!(digest = %desc.digest, size, expected = desc.size, "registry reports another size");
            return Ok(false);
        }
        match check {
            ExistenceCheck::Head => Ok(true),
            ExistenceCheck::RangedGet => self.last_byte_served(desc).await,
            ExistenceCheck::Full => {
                let mut s = self.fetch_blob(desc).await?;
                while let Some(item) = s.next().await {
                    if let Err(e) = item {
                        warn!(digest = %desc.digest, error = %e, "registry claims the blob but does not serve it");
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        }
    }

    /// GETs the last byte of the blob with a `Range` and requires exactly one byte back.
    async fn last_byte_served(&self, desc: &Descriptor) -> Result<bool, Error> {
        if desc.size == 0 {
            // Nothing to range over: the full GET must end with zero bytes and verify.
            let mut s = self.fetch_blob(desc).await?;
            while let Some(item) = s.next().await {
                if item.is_err() {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        let last = desc.size - 1;
        let url = self.url(&format!("blobs/{}", desc.digest))?;
        let req = Req::new(Method::GET, url)
            .streaming()
            .header(header::RANGE, &format!("bytes={last}-{last}"));
        let mut resp = self.send(req, &self.pull_scope()).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        if status != StatusCode::PARTIAL_CONTENT && status != StatusCode::OK {
            return Err(status_error(resp, &Method::GET).await);
        }
        // With 200 the whole blob comes: count it; with 206 exactly one byte must come.
        let want = if status == StatusCode::OK {
            desc.size
        } else {
            1
        };
        let mut got: u64 = 0;
        let mut rate = RateWatch::new(self.client.inner.config.min_rate);
        loop {
            match rate.chunk(&mut resp).await {
                Ok(Some(c)) => {
                    got = got.saturating_add(c.len() as u64);
                    if got > want {
                        return Ok(false);
                    }
                }
                Ok(None) => break,
                Err(ReadError::Http(e)) => {
                    debug!(digest = %desc.digest, error = %e.without_url(), "ranged GET of the last byte failed");
                    return Ok(false);
                }
                Err(ReadError::TooSlow(slow)) => {
                    return Err(
                        slow.error(resp.url(), &format!("last byte of blob {}", desc.digest))
                    );
                }
            }
        }
        if got != want {
            warn!(digest = %desc.digest, got, want, "registry claims the blob but served too few bytes");
        }
        Ok(got == want)
    }

    /// Fetches a blob as a verified stream with bounded memory. When the connection drops
    /// mid-blob, the download continues with a `Range` request from the last byte received,
    /// keeping the hash state, so the resumed blob is still fully verified. With
    /// [`ClientConfig::parallel_fetch`](crate::ClientConfig::parallel_fetch) set, large blobs
    /// are fetched in parallel ranged parts (still verified, in order).
    ///
    /// # Errors
    /// Opening errors are returned at once; later errors (content that does not verify as
    /// [`Error::Verify`], transfers that cannot resume) come as stream items.
    pub async fn fetch_blob(&self, desc: &Descriptor) -> Result<ByteStream, Error> {
        if let Some(p) = &self.client.inner.config.parallel_fetch
            && desc.size >= p.min_blob_size
            && desc.size > p.part_size
        {
            return Ok(self.fetch_blob_parallel(desc, p.part_size, p.concurrency));
        }
        self.fetch_blob_checked(Check::Verify(Box::new(Verifier::new(
            desc.digest.clone(),
            desc.size,
        ))))
        .await
    }

    /// Like [`fetch_blob`](Repository::fetch_blob), with the same resumption after a dropped
    /// connection and the same size checks, but **without hashing**: for a caller that hashes
    /// every byte itself, such as a store's writer (what `oci_store::copy` does through
    /// `ReadStore::fetch_unverified`). Never treat its bytes as verified.
    pub async fn fetch_blob_unverified(&self, desc: &Descriptor) -> Result<ByteStream, Error> {
        let check = Check::Size {
            expected: desc.digest.clone(),
            size: desc.size,
            received: 0,
        };
        self.fetch_blob_checked(check).await
    }

    async fn fetch_blob_checked(&self, check: Check) -> Result<ByteStream, Error> {
        let mut state = FetchState {
            repo: self.clone(),
            check,
            body: None,
            rate: RateWatch::new(None),
            skip: 0,
            failures: 0,
            done: false,
        };
        // Open now so that a missing blob is an error of this call, not of the stream.
        state.open().await?;
        Ok(Box::pin(futures_util::stream::unfold(
            state,
            |mut st| async move { st.next_item().await.map(|item| (item, st)) },
        )))
    }

    /// Fetches the blob in `part_size` ranges, `concurrency` at a time, verifying in order.
    pub fn fetch_blob_parallel(
        &self,
        desc: &Descriptor,
        part_size: u64,
        concurrency: usize,
    ) -> ByteStream {
        let size = desc.size;
        let part = part_size.max(1);
        // Lazily: the size comes from a manifest, and `i * part < size` cannot overflow.
        let ranges = (0..size.div_ceil(part)).map(move |i| {
            let start = i * part;
            (start, start.saturating_add(part).min(size))
        });
        let repo = self.clone();
        let digest = desc.digest.clone();
        let parts = futures_util::stream::iter(ranges)
            .map(move |(start, end)| {
                let repo = repo.clone();
                let digest = digest.clone();
                async move { repo.fetch_range_bytes(&digest, start, end).await }
            })
            .buffered(concurrency.max(1));
        let mut verifier = Verifier::new(desc.digest.clone(), desc.size);
        let repo_name = self.name.clone();
        let digest = desc.digest.clone();
        let mut finished = false;
        Box::pin(
            parts
                .map(Some)
                .chain(futures_util::stream::iter([None]))
                .filter_map(move |item| {
                    let out = if finished {
                        None
                    } else {
                        match item {
                            Some(Ok(bytes)) => match verifier.update(&bytes) {
                                Ok(()) => Some(Ok(bytes)),
                                Err(source) => {
                                    finished = true;
                                    Some(Err(Error::Verify {
                                        repository: repo_name.clone(),
                                        digest: digest.clone(),
                                        source,
                                    }))
                                }
                            },
                            Some(Err(e)) => {
                                finished = true;
                                Some(Err(e))
                            }
                            None => {
                                finished = true;
                                verifier.finish().err().map(|source| {
                                    Err(Error::Verify {
                                        repository: repo_name.clone(),
                                        digest: digest.clone(),
                                        source,
                                    })
                                })
                            }
                        }
                    };
                    std::future::ready(out)
                }),
        )
    }

    /// Fetches bytes `[start, end)` of a blob into memory, resuming within the range when the
    /// connection drops. The bytes are not verified (only the whole blob can be).
    ///
    /// # Errors
    /// Registry and transport errors, [`Error::TransferTooSlow`].
    pub async fn fetch_range_bytes(
        &self,
        digest: &Digest,
        start: u64,
        end: u64,
    ) -> Result<Bytes, Error> {
        if end < start {
            return Err(Error::InvalidArgument(format!(
                "range of blob {digest}: end {end} is before start {start}"
            )));
        }
        let want = usize::try_from(end - start).map_err(|_| {
            Error::InvalidArgument(format!(
                "range {start}-{end} of blob {digest} does not fit in memory"
            ))
        })?;
        // Allocated as it arrives beyond the first 16 MiB, not up front for any size asked.
        let mut buf = BytesMut::with_capacity(want.min(16 * 1024 * 1024));
        if want > 0 {
            let mut s = self.fetch_blob_range(digest, start..end).await?;
            while let Some(c) = s.next().await {
                buf.extend_from_slice(&c?);
            }
        }
        Ok(buf.freeze())
    }

    // ---------------------------------------------------------------- push

    /// Pushes a blob: skips it when the registry has it (by the configured
    /// [`ExistenceCheck`]), else uploads it (monolithic up to
    /// [`ClientConfig::monolithic_max`](crate::ClientConfig::monolithic_max), else chunked).
    /// The content is verified against `desc` as it is read; a mismatch aborts the upload before
    /// it is committed.
    ///
    /// # Errors
    /// [`Error::Verify`] when the content does not match `desc`, [`Error::Source`] when the
    /// source stream fails, [`Error::DigestHeaderMismatch`] when the registry commits another
    /// digest, and registry/transport errors.
    pub async fn push_blob(
        &self,
        desc: &Descriptor,
        data: BlobSource,
    ) -> Result<PushOutcome, Error> {
        self.push_blob_inner(desc, data, None).await
    }

    /// Like [`push_blob`](Repository::push_blob), first trying a cross-repository mount from
    /// `from` (a repository of the same registry). A registry that answers 202 instead starts
    /// an upload, which is used. With a non-`Head` existence check, a mount the registry claims
    /// is verified and the blob uploaded when it is not served.
    ///
    /// # Errors
    /// As [`push_blob`](Repository::push_blob).
    pub async fn push_blob_with_mount(
        &self,
        desc: &Descriptor,
        data: BlobSource,
        from: &str,
    ) -> Result<PushOutcome, Error> {
        self.push_blob_inner(desc, data, Some(from)).await
    }

    async fn push_blob_inner(
        &self,
        desc: &Descriptor,
        data: BlobSource,
        mount_from: Option<&str>,
    ) -> Result<PushOutcome, Error> {
        let check = self.client.inner.config.existence_check;
        if self.blob_exists(desc, check).await? {
            debug!(digest = %desc.digest, repository = %self.name, "blob exists, skipped");
            return Ok(PushOutcome::Skipped);
        }
        let mut location = None;
        if let Some(from) = mount_from.filter(|f| *f != self.name) {
            match self.mount(desc, from).await? {
                MountResult::Mounted => {
                    if check == ExistenceCheck::Head || self.blob_exists(desc, check).await? {
                        return Ok(PushOutcome::Mounted);
                    }
                    warn!(digest = %desc.digest, from, "registry claims a mount it does not serve; uploading");
                }
                MountResult::Upload(l) => location = Some(l),
            }
        }
        self.upload(desc, data, location).await
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
    ) -> Result<PushOutcome, Error> {
        self.upload(desc, data, None).await
    }

    /// Tries a cross-repository mount only: `Ok(true)` when the blob is now here (verified by
    /// the configured existence check when that is not `Head`), `Ok(false)` when the registry
    /// wants an upload instead (the upload session it opened is cancelled).
    ///
    /// # Errors
    /// Registry and transport errors.
    pub async fn try_mount(&self, desc: &Descriptor, from: &str) -> Result<bool, Error> {
        match self.mount(desc, from).await? {
            MountResult::Mounted => {
                let check = self.client.inner.config.existence_check;
                Ok(check == ExistenceCheck::Head || self.blob_exists(desc, check).await?)
            }
            MountResult::Upload(loc) => {
                self.cancel_upload(&loc).await;
                Ok(false)
            }
        }
    }

    async fn mount(&self, desc: &Descriptor, from: &str) -> Result<MountResult, Error> {
        if !crate::reference::valid_repository(from) {
            return Err(Error::InvalidReference {
                input: from.to_owned(),
                reason: crate::InvalidReferenceReason::InvalidPathComponent,
            });
        }
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

    pub(crate) async fn start_upload(&self) -> Result<(Url, Option<u64>), Error> {
        let url = self.url("blobs/uploads/")?;
        let resp = self
            .send(Req::new(Method::POST, url.clone()), &self.push_scope())
            .await?;
        let resp = expect(resp, &Method::POST, &[StatusCode::ACCEPTED]).await?;
        let min = header_str(resp.headers(), "oci-chunk-min-length").and_then(|v| v.parse().ok());
        Ok((location(&resp, &url)?, min))
    }

    async fn upload(
        &self,
        desc: &Descriptor,
        data: BlobSource,
        location: Option<Url>,
    ) -> Result<PushOutcome, Error> {
        let (mut loc, min_chunk) = match location {
            Some(l) => (l, None),
            None => self.start_upload().await?,
        };
        let cfg = &self.client.inner.config;
        let mut source = oci_digest::VerifyingStream::new(data, desc.digest.clone(), desc.size);
        let verify_err = |e: std::io::Error| match oci_digest::VerifyError::from_io(&e) {
            Some(v) => Error::Verify {
                repository: self.name.clone(),
                digest: desc.digest.clone(),
                source: v.clone(),
            },
            None => Error::Source {
                context: format!("reading blob {} to push to {}", desc.digest, self.name),
                source: e,
            },
        };
        if desc.size <= cfg.monolithic_max {
            let mut buf = BytesMut::with_capacity(desc.size as usize);
            while let Some(item) = source.next().await {
                match item {
                    Ok(b) => buf.extend_from_slice(&b),
                    Err(e) => {
                        self.cancel_upload(&loc).await;
                        return Err(verify_err(e));
                    }
                }
            }
            self.finish_upload(desc, &loc, Some(buf.freeze())).await?;
            return Ok(PushOutcome::Monolithic);
        }
        // The registry's minimum raises the chunk size up to our maximum, never past it: the
        // number is the peer's (u64::MAX would be a chunk buffer of that size).
        let mut chunk_len = cfg.chunk_size;
        if let Some(m) = min_chunk {
            if m > cfg.max_chunk_size {
                warn!(
                    min_chunk = m,
                    max_chunk_size = cfg.max_chunk_size,
                    "the registry asks for chunks larger than max_chunk_size; sending max_chunk_size"
                );
            }
            chunk_len = chunk_len.max(m);
        }
        let chunk_len = usize::try_from(chunk_len.min(cfg.max_chunk_size)).unwrap_or(usize::MAX);
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
                return Err(verify_err(e));
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
                    return Err(verify_err(e));
                }
            };
        }
        self.finish_upload(desc, &loc, None).await?;
        Ok(PushOutcome::Chunked { chunks, resumed })
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
        let end = offset
            .checked_add(chunk.len() as u64)
            .ok_or_else(|| Error::Protocol {
                method: "PATCH".into(),
                url: strip_query(&loc),
                what: format!(
                    "a chunk of {} bytes at offset {offset} ends past 2^64 bytes",
                    chunk.len()
                ),
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
                    if !(status.is_server_error()
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
                return Err(Error::Protocol {
                    method: "PATCH".into(),
                    url: strip_query(&loc),
                    what: format!(
                        "chunk {offset}-{} failed {failures} times: {failure}",
                        end - 1
                    ),
                });
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
                return Err(Error::Protocol {
                    method: "GET".into(),
                    url: strip_query(&loc),
                    what: format!(
                        "upload status says {next_from} bytes received, chunk covers {offset}-{}",
                        end - 1
                    ),
                });
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
        let mut url = loc.clone();
        url.query_pairs_mut()
            .append_pair("digest", desc.digest.as_str());
        let len = body.as_ref().map_or(0, Bytes::len);
        let mut req = Req::new(Method::PUT, url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, &len.to_string())
            .uploading(&self.client.inner.config, len as u64);
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = self.send(req, &self.push_scope()).await?;
        let resp = expect(resp, &Method::PUT, &[StatusCode::CREATED]).await?;
        if let Some(d) = header_str(resp.headers(), "docker-content-digest")
            && d != desc.digest.as_str()
        {
            return Err(Error::DigestHeaderMismatch {
                what: "blob",
                repository: self.name.clone(),
                expected: desc.digest.clone(),
                actual: d.to_owned(),
            });
        }
        Ok(())
    }

    pub(crate) async fn cancel_upload(&self, loc: &Url) {
        let req = Req::new(Method::DELETE, loc.clone()).no_retry();
        if let Err(e) = self.send(req, &self.push_scope()).await {
            debug!(error = %e, "cancelling upload failed");
        }
    }

    /// Pushes manifest bytes exactly as given under `reference` (a tag or the digest) and
    /// checks the digest the registry returns. With
    /// [`ClientConfig::verify_manifest_push`](crate::ClientConfig::verify_manifest_push), reads
    /// the manifest back; when the registry lost it, uploads the bytes as a blob and puts the
    /// manifest again.
    ///
    /// # Errors
    /// [`Error::DigestHeaderMismatch`], [`Error::RegistryLies`] when the manifest cannot be
    /// read back after the repair, registry and transport errors.
    pub async fn push_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, Error> {
        Self::check_manifest_reference(reference)?;
        if reqwest::header::HeaderValue::from_str(media_type).is_err() {
            // Req::header would drop it and the manifest would go without a Content-Type.
            return Err(Error::InvalidArgument(format!(
                "manifest {}: media type {media_type:?} cannot be sent as Content-Type",
                self.reference_name(reference)
            )));
        }
        let digest = match Digest::parse(reference) {
            Ok(d) => {
                let actual = d.algorithm().hash(&bytes);
                if actual != d {
                    return Err(Error::ManifestDigestMismatch {
                        reference: self.reference_name(reference),
                        expected: d,
                        source_of_expected: "pinned reference",
                        actual,
                    });
                }
                d
            }
            Err(_) => Algorithm::Sha256.hash(&bytes),
        };
        let subject_handled = self
            .put_manifest(reference, media_type, &bytes, &digest)
            .await?;
        if !subject_handled {
            self.maintain_referrers_tag(media_type, &bytes).await?;
        }
        if !self.client.inner.config.verify_manifest_push {
            return Ok(digest);
        }
        if self.manifest_served(&digest, &bytes).await? {
            return Ok(digest);
        }
        warn!(%digest, repository = %self.name, "registry accepted the manifest but does not serve it; repairing");
        let desc = Descriptor::new(media_type, digest.clone(), bytes.len() as u64);
        let body = bytes.clone();
        let src: BlobSource = Box::pin(futures_util::stream::iter([Ok(body)]));
        self.upload(&desc, src, None).await?;
        self.put_manifest(reference, media_type, &bytes, &digest)
            .await?;
        if self.manifest_served(&digest, &bytes).await? {
            return Ok(digest);
        }
        Err(Error::RegistryLies {
            what: "manifest",
            repository: self.name.clone(),
            digest,
            detail: "the manifest PUT succeeds but GET does not return it, even after uploading its bytes".into(),
        })
    }

    /// PUTs manifest bytes; returns whether the registry said it handled the manifest's
    /// subject (`OCI-Subject` header, referrers API).
    async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &Bytes,
        digest: &Digest,
    ) -> Result<bool, Error> {
        let url = self.url(&format!("manifests/{reference}"))?;
        let req = Req::new(Method::PUT, url)
            .header(header::CONTENT_TYPE, media_type)
            .uploading(&self.client.inner.config, bytes.len() as u64)
            .body(bytes.clone());
        let resp = self.send(req, &self.push_scope()).await?;
        let resp = expect(resp, &Method::PUT, &[StatusCode::CREATED, StatusCode::OK]).await?;
        if let Some(d) = header_str(resp.headers(), "docker-content-digest")
            && d != digest.as_str()
        {
            return Err(Error::DigestHeaderMismatch {
                what: "manifest",
                repository: self.name.clone(),
                expected: digest.clone(),
                actual: d.to_owned(),
            });
        }
        Ok(resp.headers().contains_key("oci-subject"))
    }

    /// For a manifest with a `subject` pushed to a registry without the referrers API (no
    /// `OCI-Subject` answer): adds it to the index under the subject's fallback tag
    /// (`sha256-<hex>`), creating the index when needed.
    async fn maintain_referrers_tag(&self, media_type: &str, bytes: &Bytes) -> Result<(), Error> {
        let Ok(m) = Manifest::parse(bytes.clone(), Some(media_type)) else {
            return Ok(());
        };
        let Some(subject) = m.subject() else {
            return Ok(());
        };
        let tag = Self::referrers_tag(&subject.digest);
        let mut entries: Vec<Descriptor> = match self.fetch_manifest(&tag).await {
            Ok(f) => f.parse()?.manifests().to_vec(),
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        let entry = m.referrer_descriptor();
        if entries.iter().any(|d| d.digest == entry.digest) {
            return Ok(());
        }
        entries.push(entry);
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_INDEX,
            "manifests": entries,
        }))
        .map_err(|e| Error::InvalidArgument(format!("cannot serialise referrers index: {e}")))?;
        let index = Bytes::from(index);
        let digest = Algorithm::Sha256.hash(&index);
        debug!(subject = %subject.digest, %tag, "updating the referrers fallback tag");
        self.put_manifest(&tag, media_types::OCI_INDEX, &index, &digest)
            .await
            .map(drop)
    }

    async fn manifest_served(&self, digest: &Digest, bytes: &Bytes) -> Result<bool, Error> {
        match self.fetch_manifest(digest.as_str()).await {
            Ok(m) => Ok(m.bytes == *bytes),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    // ---------------------------------------------------------------- list, delete, referrers

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

    /// Deletes a manifest by digest (the registry removes every tag pointing at it).
    ///
    /// # Errors
    /// Registry errors (404, 405 `UNSUPPORTED` when deletion is disabled) and transport errors.
    pub async fn delete_manifest(&self, digest: &Digest) -> Result<(), Error> {
        self.delete(&format!("manifests/{digest}")).await
    }

    /// Deletes a blob by digest.
    ///
    /// # Errors
    /// As [`delete_manifest`](Repository::delete_manifest).
    pub async fn delete_blob(&self, digest: &Digest) -> Result<(), Error> {
        self.delete(&format!("blobs/{digest}")).await
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

    /// The manifests that refer to `subject` (signatures, SBOMs), optionally only those of one
    /// artifact type. Uses the referrers API, and when the registry does not have it (404),
    /// the tag schema fallback (`sha256-<hex>` tag holding an index).
    ///
    /// # Errors
    /// Registry, transport and manifest errors.
    pub async fn referrers(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, Error> {
        let mut url = self.url(&format!("referrers/{subject}"))?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let mut out = Vec::new();
        let mut next = Some(url);
        let mut first = true;
        let mut seen = HashSet::new();
        while let Some(u) = next.take() {
            not_seen(&mut seen, &u)?;
            let req =
                Req::new(Method::GET, u.clone()).header(header::ACCEPT, media_types::OCI_INDEX);
            let resp = self.send(req, &self.pull_scope()).await?;
            if first && resp.status() == StatusCode::NOT_FOUND {
                return self.referrers_by_tag(subject, artifact_type).await;
            }
            first = false;
            let resp = expect(resp, &Method::GET, &[StatusCode::OK]).await?;
            next = link_next(resp.headers(), &u);
            let bytes = read_limited(
                resp,
                &Method::GET,
                self.client.inner.config.max_manifest_size,
            )
            .await?;
            let m = Manifest::parse(bytes, Some(media_types::OCI_INDEX)).map_err(|source| {
                Error::Manifest {
                    reference: format!("{}/{}/referrers/{subject}", self.registry, self.name),
                    source,
                }
            })?;
            out.extend(m.manifests().iter().cloned());
        }
        if let Some(t) = artifact_type {
            out.retain(|d| d.artifact_type.as_deref() == Some(t));
        }
        Ok(out)
    }

    /// The tag that holds referrers of `subject` on registries without the referrers API.
    pub fn referrers_tag(subject: &Digest) -> String {
        format!("{}-{}", subject.algorithm(), subject.encoded())
    }

    async fn referrers_by_tag(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, Error> {
        let tag = Self::referrers_tag(subject);
        let fetched = match self.fetch_manifest(&tag).await {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let m = fetched.parse()?;
        let mut out: Vec<Descriptor> = m.manifests().to_vec();
        if let Some(t) = artifact_type {
            out.retain(|d| d.artifact_type.as_deref() == Some(t));
        }
        Ok(out)
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

enum MountResult {
    Mounted,
    Upload(Url),
}

fn location(resp: &Response, base: &Url) -> Result<Url, Error> {
    header_str(resp.headers(), "location")
        .and_then(|l| base.join(l).ok())
        .ok_or_else(|| Error::Protocol {
            method: "POST".into(),
            url: strip_query(base),
            what: format!("answer {} has no usable Location header", resp.status()),
        })
}

/// `Range: 0-N` (upload progress) → N.
fn range_end(h: &HeaderMap) -> Option<u64> {
    let v = header_str(h, "range")?;
    let v = v.strip_prefix("bytes=").unwrap_or(v);
    let (_, end) = v.split_once('-')?;
    end.trim().parse().ok()
}

pub(crate) fn check_content_range(resp: &Response, from: u64, url: &Url) -> Result<(), Error> {
    let cr = header_str(resp.headers(), "content-range");
    let start = cr
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split_once('-'))
        .and_then(|(s, _)| s.trim().parse::<u64>().ok());
    if start != Some(from) {
        return Err(Error::Protocol {
            method: "GET".into(),
            url: strip_query(url),
            what: format!("asked for bytes from {from}, got Content-Range {cr:?}"),
        });
    }
    Ok(())
}

/// Records a page URL of a paginated listing; an error when it was asked for already (a
/// registry whose `Link` leads back would otherwise be followed forever).
fn not_seen(seen: &mut HashSet<Url>, url: &Url) -> Result<(), Error> {
    if seen.insert(url.clone()) {
        Ok(())
    } else {
        Err(Error::Protocol {
            method: "GET".into(),
            url: strip_query(url),
            what: format!("Link pagination loops back to {url}"),
        })
    }
}

/// `Link: <url>; rel="next"` → the next URL.
pub(crate) fn link_next(h: &HeaderMap, base: &Url) -> Option<Url> {
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
pub(crate) fn paginate(
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
                let v: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
                        method: "GET".into(),
                        url: strip_query(&url),
                        what: format!("list answer is not JSON: {e}"),
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

/// What a download checks as it streams.
enum Check {
    /// Size and digest: a verified stream (boxed: the hash state is large).
    Verify(Box<Verifier>),
    /// Size only, for a caller that hashes every byte itself (a store's writer).
    Size {
        expected: oci_digest::Digest,
        size: u64,
        received: u64,
    },
}

impl Check {
    fn expected(&self) -> &oci_digest::Digest {
        match self {
            Check::Verify(v) => v.expected(),
            Check::Size { expected, .. } => expected,
        }
    }

    fn expected_size(&self) -> u64 {
        match self {
            Check::Verify(v) => v.expected_size(),
            Check::Size { size, .. } => *size,
        }
    }

    fn received(&self) -> u64 {
        match self {
            Check::Verify(v) => v.received(),
            Check::Size { received, .. } => *received,
        }
    }

    fn remaining(&self) -> u64 {
        self.expected_size() - self.received()
    }

    fn update(&mut self, chunk: &[u8]) -> Result<(), oci_digest::VerifyError> {
        match self {
            Check::Verify(v) => v.update(chunk),
            Check::Size {
                expected,
                size,
                received,
            } => {
                // A peer's size near u64::MAX must not overflow the count.
                let after = received.saturating_add(chunk.len() as u64);
                if after > *size {
                    return Err(oci_digest::VerifyError::TooLong {
                        expected: expected.clone(),
                        expected_size: *size,
                        received: after,
                    });
                }
                *received = after;
                Ok(())
            }
        }
    }

    /// At the end of the body: the full size arrived (and, when verifying, the digest matched).
    fn finish(&self) -> Result<(), oci_digest::VerifyError> {
        match self {
            Check::Verify(v) => v.finish().map(drop),
            Check::Size { .. } => Ok(()),
        }
    }
}

/// State of a resuming blob download (verifying, or size-checked for a caller that verifies).
struct FetchState {
    repo: Repository,
    check: Check,
    body: Option<Response>,
    /// The minimum rate of the current body.
    rate: RateWatch,
    /// Bytes to drop from the start of the current body (a server that ignored our Range).
    skip: u64,
    failures: u32,
    done: bool,
}

impl FetchState {
    fn verify_error(&self, source: oci_digest::VerifyError) -> Error {
        Error::Verify {
            repository: self.repo.name.clone(),
            digest: self.check.expected().clone(),
            source,
        }
    }

    async fn open(&mut self) -> Result<(), Error> {
        let from = self.check.received();
        let url = self.repo.url(&format!("blobs/{}", self.check.expected()))?;
        let mut req = Req::new(Method::GET, url.clone()).streaming();
        if from > 0 {
            req = req.header(header::RANGE, &format!("bytes={from}-"));
        }
        let resp = self.repo.send(req, &self.repo.pull_scope()).await?;
        let resp = expect(
            resp,
            &Method::GET,
            &[StatusCode::OK, StatusCode::PARTIAL_CONTENT],
        )
        .await?;
        if resp.status() == StatusCode::PARTIAL_CONTENT {
            check_content_range(&resp, from, &url)?;
            self.skip = 0;
        } else {
            self.skip = from;
        }
        self.body = Some(resp);
        self.rate = RateWatch::new(self.repo.client.inner.config.min_rate);
        Ok(())
    }

    async fn next_item(&mut self) -> Option<Result<Bytes, Error>> {
        loop {
            if self.done {
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
                        let drop_n = usize::try_from(self.skip)
                            .unwrap_or(usize::MAX)
                            .min(chunk.len());
                        self.skip -= drop_n as u64;
                        let _ = chunk.split_to(drop_n);
                        if chunk.is_empty() {
                            continue;
                        }
                    }
                    if let Err(e) = self.check.update(&chunk) {
                        self.done = true;
                        return Some(Err(self.verify_error(e)));
                    }
                    self.failures = 0;
                    return Some(Ok(chunk));
                }
                Ok(None) => {
                    if self.check.remaining() == 0 {
                        self.done = true;
                        return match self.check.finish() {
                            Ok(_) => None,
                            Err(e) => Some(Err(self.verify_error(e))),
                        };
                    }
                    Error::Verify {
                        repository: self.repo.name.clone(),
                        digest: self.check.expected().clone(),
                        source: oci_digest::VerifyError::TooShort {
                            expected: self.check.expected().clone(),
                            expected_size: self.check.expected_size(),
                            received: self.check.received(),
                        },
                    }
                }
                Err(ReadError::TooSlow(slow)) => {
                    // Not resumed: a peer that drips would drip again.
                    self.done = true;
                    let what = format!("blob {}", self.check.expected());
                    return Some(Err(slow.error(body.url(), &what)));
                }
                Err(ReadError::Http(e)) => Error::Transport {
                    method: "GET".into(),
                    url: strip_query(body.url()),
                    attempts: self.failures + 1,
                    source: e.without_url(),
                },
            };
            self.body = None;
            self.failures += 1;
            if self.failures > self.repo.client.inner.config.resume_attempts {
                self.done = true;
                return Some(Err(failure));
            }
            warn!(
                digest = %self.check.expected(),
                received = self.check.received(),
                error = %failure,
                "blob download interrupted; resuming with a Range request"
            );
            tokio::time::sleep(self.repo.client.inner.config.retry.backoff(self.failures)).await;
        }
    }
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

    #[test]
    fn referrers_tag_schema() {
        let d = Algorithm::Sha256.hash(b"x");
        assert_eq!(
            Repository::referrers_tag(&d),
            format!("sha256-{}", d.encoded())
        );
    }
}
