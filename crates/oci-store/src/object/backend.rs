//! The object storage under a [`BucketStore`](super::BucketStore): the `object_store` client,
//! how verified content is made visible there (a create-only completion of the multipart upload
//! on S3, a create-only copy elsewhere), the probe that refuses a server without conditional
//! writes, and the storage clock.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::memory::InMemory;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};

use super::clock::StorageClock;
use super::keys::Keys;
use crate::error::{Result, StoreError};

/// How a verified upload becomes visible under `blobs/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    /// The multipart upload targets the blob's key and its completion is create-only
    /// (`If-None-Match: *`, added by [`CreateOnlyCompletion`]): S3 and servers like it.
    CompleteInPlace,
    /// The upload targets an ingest key; the verified object is then copied to the blob's key
    /// create-only (`copy_if_not_exists`): `object_store`'s in-memory and other backends.
    CopyIntoPlace,
}

/// An object storage for [`BucketStore`](super::BucketStore)s: the client, how content is
/// made visible, and the storage clock (shared by every store opened on it, so the clock is
/// read once).
///
/// ```
/// use oci_store::{Backend, BucketOptions, BucketStore};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let backend = Backend::in_memory();
/// let a = BucketStore::open(&backend, "team/a", &BucketOptions::create()).await?;
/// let b = BucketStore::open(&backend, "team/b", &BucketOptions::create()).await?;
/// # drop((a, b));
/// # Ok::<(), oci_store::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Backend {
    pub(crate) inner: Arc<BackendInner>,
}

pub(crate) struct BackendInner {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) multipart: Arc<dyn MultipartStore>,
    pub(crate) commit: Commit,
    /// For messages: `s3://bucket`, `memory`.
    pub(crate) name: String,
    pub(crate) clock: StorageClock,
    /// Identifies this process's use of the backend (clock and probe keys, ingest owners).
    pub(crate) instance: String,
    /// The conditional-write probe passed (once per backend and state prefix).
    pub(crate) probed: tokio::sync::Mutex<Vec<Path>>,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.inner.name)
            .field("commit", &self.inner.commit)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.name)
    }
}

/// A random-enough identifier of this process's use of a backend: time, process, a counter and
/// the address of a fresh allocation, hashed.
fn instance_id() -> String {
    let seed = format!(
        "{}-{:p}-{:?}",
        crate::lease::new_id("i-"),
        &*Box::new(0u8),
        std::thread::current().id()
    );
    oci_digest::Algorithm::Sha256
        .hash(seed.as_bytes())
        .encoded()[..24]
        .to_owned()
}

impl Backend {
    fn new(
        store: Arc<dyn ObjectStore>,
        multipart: Arc<dyn MultipartStore>,
        commit: Commit,
        name: String,
    ) -> Backend {
        Backend {
            inner: Arc::new(BackendInner {
                store,
                multipart,
                commit,
                name,
                clock: StorageClock::default(),
                instance: instance_id(),
                probed: tokio::sync::Mutex::new(Vec::new()),
            }),
        }
    }

    /// `object_store`'s in-memory backend (for tests and examples): content is copied into place
    /// create-only; timestamps are this process's clock.
    ///
    /// ```
    /// let backend = oci_store::Backend::in_memory();
    /// assert_eq!(backend.to_string(), "memory");
    /// ```
    pub fn in_memory() -> Backend {
        let m = Arc::new(InMemory::new());
        Backend::new(m.clone(), m, Commit::CopyIntoPlace, "memory".into())
    }

    /// Any `object_store` backend with multipart uploads, conditional puts (`PutMode::Create`
    /// and `PutMode::Update`) and create-only copies: verified uploads are completed under the
    /// state prefix, then copied into place with `copy_if_not_exists`. Stores opened on it
    /// probe the conditional writes and refuse a backend without them.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let m = Arc::new(object_store::memory::InMemory::new());
    /// let backend = oci_store::Backend::custom(m.clone(), m, "my memory");
    /// assert_eq!(backend.to_string(), "my memory");
    /// ```
    pub fn custom(
        store: Arc<dyn ObjectStore>,
        multipart: Arc<dyn MultipartStore>,
        name: impl Into<String>,
    ) -> Backend {
        Backend::new(store, multipart, Commit::CopyIntoPlace, name.into())
    }

    /// An S3-compatible bucket from a configured builder (bucket, endpoint, region,
    /// credentials). The client is given this crate's connector, which makes the completion of
    /// every multipart upload create-only (`If-None-Match: *`): blobs are uploaded straight to
    /// their keys and become visible, verified, only when their upload completes, and never
    /// replace a blob already there. TLS is rustls with the `ring` provider (installed as the
    /// process default when none is).
    ///
    /// ```
    /// use object_store::aws::AmazonS3Builder;
    /// let backend = oci_store::Backend::s3(
    ///     AmazonS3Builder::new()
    ///         .with_bucket_name("cache")
    ///         .with_endpoint("http://127.0.0.1:8333")
    ///         .with_allow_http(true)
    ///         .with_region("us-east-1")
    ///         .with_access_key_id("any")
    ///         .with_secret_access_key("any"),
    /// )?;
    /// assert_eq!(backend.to_string(), "s3://cache");
    /// # Ok::<(), oci_store::StoreError>(())
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the configuration is incomplete (no bucket, say).
    pub fn s3(builder: AmazonS3Builder) -> Result<Backend> {
        // reqwest is built without a default crypto provider (one TLS stack for the workspace):
        // make `ring` the process default unless the program chose one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let bucket = builder
            .get_config_value(&object_store::aws::AmazonS3ConfigKey::Bucket)
            .unwrap_or_default();
        let s3 = builder
            .with_http_connector(CreateOnlyCompletion)
            .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
            .build()
            .map_err(|e| StoreError::backend(format!("configure S3 bucket {bucket:?}"), e))?;
        let s3 = Arc::new(s3);
        Ok(Backend::new(
            s3.clone(),
            s3,
            Commit::CompleteInPlace,
            format!("s3://{bucket}"),
        ))
    }

    /// An S3-compatible bucket configured from the environment, as the AWS tools read it:
    /// `AWS_ENDPOINT_URL` (a local server such as SeaweedFS or MinIO), `AWS_ALLOW_HTTP=true`
    /// (for a plain-HTTP endpoint), `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (see `AmazonS3Builder::from_env`).
    ///
    /// ```
    /// let backend = oci_store::Backend::s3_from_env("cache")?;
    /// assert_eq!(backend.to_string(), "s3://cache");
    /// # Ok::<(), oci_store::StoreError>(())
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the environment's configuration is invalid.
    pub fn s3_from_env(bucket: &str) -> Result<Backend> {
        Backend::s3(AmazonS3Builder::from_env().with_bucket_name(bucket))
    }

    /// The `object_store` client (to read the bucket directly: a copy of the layout to a
    /// disk, a test).
    ///
    /// ```
    /// use oci_store::object_store::{ObjectStoreExt, path::Path};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let backend = oci_store::Backend::in_memory();
    /// oci_store::BucketStore::open(&backend, "p", &oci_store::BucketOptions::create()).await?;
    /// let layout = backend.object_store().get(&Path::from("p/oci-layout")).await.unwrap();
    /// assert!(layout.bytes().await.unwrap().starts_with(b"{"));
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.inner.store.clone()
    }

    /// Refuses a backend that ignores conditional writes: a create-only put of an existing key,
    /// a put whose ETag condition does not hold, and (on S3) a create-only completion of a
    /// multipart upload onto an existing key must all fail. Once per backend and state prefix.
    pub(crate) async fn probe(&self, keys: &Keys) -> Result<()> {
        let mut done = self.inner.probed.lock().await;
        if done.contains(keys.state()) {
            return Ok(());
        }
        let store = &self.inner.store;
        let inst = &self.inner.instance;
        let key = keys.probe(inst, 0);
        let refused = |what: &str, detail: String| {
            StoreError::Unsupported {
                operation: "conditional writes",
            }
            .with_context(format!(
                "{} does not honour {what} ({detail}): two machines could overwrite each other's \
             tags and blobs; use a server with conditional writes (S3, SeaweedFS 3.80 and later, \
             MinIO)",
                self.inner.name
            ))
        };
        let first = put(store, &key, Bytes::from_static(b"1"), PutMode::Create).await;
        let first = match first {
            Ok(r) => r,
            Err(e) if is_exists(&e) => {
                // A leftover of an earlier probe: start from a fresh key.
                let _ = store.delete(&key).await;
                put(store, &key, Bytes::from_static(b"1"), PutMode::Create)
                    .await
                    .map_err(|e| backend_err(format!("probe {key}"), e))?
            }
            Err(e) => return Err(backend_err(format!("probe {key}"), e)),
        };
        let result = async {
            match put(store, &key, Bytes::from_static(b"2"), PutMode::Create).await {
                Err(e) if is_exists(&e) => {}
                Ok(_) => {
                    return Err(refused(
                        "If-None-Match: * (create-only writes)",
                        "an existing key was overwritten".into(),
                    ));
                }
                Err(e) => return Err(backend_err(format!("probe {key}"), e)),
            }
            let wrong = UpdateVersion {
                e_tag: Some("\"00000000000000000000000000000000\"".into()),
                version: None,
            };
            match put(
                store,
                &key,
                Bytes::from_static(b"3"),
                PutMode::Update(wrong),
            )
            .await
            {
                Err(e) if is_precondition(&e) => {}
                Ok(_) => {
                    return Err(refused(
                        "If-Match (compare-and-swap)",
                        "a put with a wrong ETag succeeded".into(),
                    ));
                }
                Err(e) => return Err(backend_err(format!("probe {key}"), e)),
            }
            let right = UpdateVersion::from(first);
            put(
                store,
                &key,
                Bytes::from_static(b"4"),
                PutMode::Update(right),
            )
            .await
            .map_err(|e| backend_err(format!("probe {key} (a put with the right ETag)"), e))?;
            if self.inner.commit == Commit::CompleteInPlace {
                let mp = &self.inner.multipart;
                let id = mp
                    .create_multipart(&key)
                    .await
                    .map_err(|e| backend_err(format!("probe {key}: create upload"), e))?;
                let part = mp
                    .put_part(&key, &id, 0, PutPayload::from_static(b"5"))
                    .await;
                let done = match part {
                    Ok(p) => mp.complete_multipart(&key, &id, vec![p]).await,
                    Err(e) => Err(e),
                };
                match done {
                    Err(e) if is_precondition(&e) || is_exists(&e) => {
                        let _ = mp.abort_multipart(&key, &id).await;
                    }
                    Ok(_) => {
                        return Err(refused(
                            "If-None-Match: * on CompleteMultipartUpload",
                            "an upload completed over an existing key".into(),
                        ));
                    }
                    Err(e) => {
                        let _ = mp.abort_multipart(&key, &id).await;
                        return Err(backend_err(format!("probe {key}: complete upload"), e));
                    }
                }
            }
            Ok(())
        }
        .await;
        let _ = store.delete(&key).await;
        result?;
        done.push(keys.state().clone());
        Ok(())
    }
}

impl StoreError {
    /// `self` wrapped as a backend error with `context`.
    fn with_context(self, context: String) -> StoreError {
        StoreError::backend(context, self)
    }
}

/// A put of small bytes with a mode.
pub(crate) async fn put(
    store: &Arc<dyn ObjectStore>,
    key: &Path,
    data: Bytes,
    mode: PutMode,
) -> object_store::Result<object_store::PutResult> {
    store
        .put_opts(
            key,
            PutPayload::from_bytes(data),
            PutOptions {
                mode,
                ..PutOptions::default()
            },
        )
        .await
}

/// Whether `e` says the key exists (a create-only write refused).
pub(crate) fn is_exists(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::AlreadyExists { .. })
}

/// Whether `e` says a condition did not hold (an ETag changed, or a create-only completion).
pub(crate) fn is_precondition(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::Precondition { .. })
}

/// Whether `e` says the key does not exist.
pub(crate) fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

/// An `object_store` error as a store error, with what was being done.
pub(crate) fn backend_err(context: impl Into<String>, e: object_store::Error) -> StoreError {
    // Credentials refused are not worth a retry.
    let e: Box<dyn std::error::Error + Send + Sync> = match e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => {
            Box::new(std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))
        }
        other => Box::new(other),
    };
    StoreError::Backend {
        context: context.into(),
        source: e,
    }
}

/// The S3 connector: reqwest as `object_store` builds it, plus `If-None-Match: *` on every
/// `CompleteMultipartUpload` (a `POST` with an `uploadId` query), so that completing an upload
/// never replaces an object. A [`BucketStore`](super::BucketStore) uploads with multipart only
/// to blob keys, which are create-only; the probe at open checks that the server honours it.
#[derive(Debug, Default, Clone, Copy)]
struct CreateOnlyCompletion;

impl HttpConnector for CreateOnlyCompletion {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(CreateOnlyService(inner)))
    }
}

#[derive(Debug)]
struct CreateOnlyService(HttpClient);

/// Whether `req` completes a multipart upload.
fn is_completion(req: &HttpRequest) -> bool {
    req.method() == http::Method::POST
        && req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("uploadId=")))
}

#[async_trait]
impl HttpService for CreateOnlyService {
    async fn call(&self, mut req: HttpRequest) -> Result<HttpResponse, HttpError> {
        if is_completion(&req) {
            req.headers_mut().insert(
                http::header::IF_NONE_MATCH,
                http::HeaderValue::from_static("*"),
            );
        }
        self.0.execute(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_are_recognised() {
        let req = |m: http::Method, uri: &str| {
            http::Request::builder()
                .method(m)
                .uri(uri)
                .body(object_store::client::HttpRequestBody::from(Bytes::new()))
                .unwrap()
        };
        assert!(is_completion(&req(
            http::Method::POST,
            "http://h/b/k?uploadId=abc"
        )));
        assert!(!is_completion(&req(
            http::Method::POST,
            "http://h/b/k?uploads"
        )));
        assert!(!is_completion(&req(
            http::Method::PUT,
            "http://h/b/k?partNumber=1&uploadId=abc"
        )));
        assert!(!is_completion(&req(
            http::Method::POST,
            "http://h/b?delete"
        )));
    }
}
