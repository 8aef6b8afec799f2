//! Client configuration with sane defaults.

use std::time::Duration;

use crate::auth::Credential;

/// How a push decides that a blob already exists in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ExistenceCheck {
    /// Trust `HEAD /v2/<name>/blobs/<digest>` (fast; what every client does).
    #[default]
    Head,
    /// Do not trust HEAD: `GET` the last byte of the blob with a `Range` and require that byte
    /// to arrive. A registry whose cache remembers blobs its storage lost answers HEAD 200 but
    /// cannot send the byte, so the blob is uploaded again.
    RangedGet,
    /// Download the whole blob and verify it against its digest (slow, certain).
    Full,
}

/// Retry policy for transient failures: connection errors, 408, 429 and 5xx answers.
///
/// Delays grow exponentially from `initial_backoff` up to `max_backoff`, with full jitter
/// (a random delay between half and all of the step). A `Retry-After` header (seconds or an
/// HTTP date) replaces the computed delay, capped at `max_retry_after`.
///
/// ```
/// use std::time::Duration;
/// use oci_distribution_client::{ClientConfig, RetryPolicy};
/// let config = ClientConfig::default().with_retry(
///     RetryPolicy::default()
///         .with_max_retries(8)
///         .with_backoff(Duration::from_millis(100), Duration::from_secs(5)),
/// );
/// assert_eq!(config.retry.max_retries, 8);
/// assert_eq!(RetryPolicy::none().max_retries, 0);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retries).
    pub max_retries: u32,
    /// First delay.
    pub initial_backoff: Duration,
    /// Largest computed delay.
    pub max_backoff: Duration,
    /// Largest delay a `Retry-After` header may impose; longer requests fail at once.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// Sets the number of retries.
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the first and largest computed delay.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// The delay before retry number `attempt` (1-based), with jitter.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        let step = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let half = step / 2;
        half + step.mul_f64(fastrand::f64() * 0.5)
    }
}

/// Parallel ranged download of large blobs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ParallelFetch {
    /// Blobs at least this large are fetched in parts.
    pub min_blob_size: u64,
    /// Size of each part (memory use is about `part_size * concurrency`).
    pub part_size: u64,
    /// Parts in flight at once.
    pub concurrency: usize,
}

impl ParallelFetch {
    /// Parts of `part_size` bytes, `concurrency` at a time, for blobs of `min_blob_size` bytes
    /// or more.
    pub fn new(min_blob_size: u64, part_size: u64, concurrency: usize) -> Self {
        ParallelFetch {
            min_blob_size,
            part_size,
            concurrency,
        }
    }
}

impl Default for ParallelFetch {
    fn default() -> Self {
        ParallelFetch {
            min_blob_size: 64 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            concurrency: 4,
        }
    }
}

/// Everything a [`Client`](crate::Client) can be told. Start from `ClientConfig::default()` and
/// change fields; [`Client::new`](crate::Client::new) checks the result.
///
/// ```
/// use oci_distribution_client::{ClientConfig, ExistenceCheck};
/// let mut config = ClientConfig::default();
/// config.plain_http.push("127.0.0.1:5000".into());
/// config.existence_check = ExistenceCheck::RangedGet;
/// config.chunk_size = 4 * 1024 * 1024;
/// let client = oci_distribution_client::Client::new(config)?;
/// # Ok::<(), oci_distribution_client::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Registries (`host[:port]` exactly as in references) spoken to over plain HTTP. Every
    /// other registry is HTTPS only.
    pub plain_http: Vec<String>,
    /// Extra trusted CA certificates, PEM (one or more certificates per entry).
    pub ca_certificates_pem: Vec<Vec<u8>>,
    /// Trust the operating system's CA certificates too (default true).
    pub use_system_roots: bool,
    /// Use `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` from the environment (default true).
    pub proxy_from_env: bool,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed without any progress on a read (a stalled transfer fails after this).
    pub read_timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Largest manifest accepted, in bytes.
    pub max_manifest_size: u64,
    /// Blobs up to this size are uploaded in one request (buffered in memory).
    pub monolithic_max: u64,
    /// Preferred chunk size of chunked uploads (raised to the registry's
    /// `OCI-Chunk-Min-Length` when that is larger).
    pub chunk_size: u64,
    /// Largest chunk the client will send, whatever the registry asks.
    pub max_chunk_size: u64,
    /// How many times one blob download or one upload chunk is resumed after its connection
    /// dropped without progress.
    pub resume_attempts: u32,
    /// How pushes check that a blob already exists.
    pub existence_check: ExistenceCheck,
    /// After pushing a manifest, read it back and re-upload it when the registry lost it
    /// (enabled together with a non-`Head` existence check by default: off).
    pub verify_manifest_push: bool,
    /// Parallel ranged download of large blobs; `None` fetches every blob with one request.
    pub parallel_fetch: Option<ParallelFetch>,
    /// Page size asked for when listing tags and repositories.
    pub page_size: u32,
    /// Read credentials from Docker's `config.json` (`$DOCKER_CONFIG/config.json` or
    /// `~/.docker/config.json`) for registries without credentials from code.
    pub docker_config: bool,
    /// Read Docker's config from this file instead of the default place (like `--authfile`).
    pub docker_config_file: Option<std::path::PathBuf>,
    /// Credentials given in code, by registry (`host[:port]`).
    pub credentials: Vec<(String, Credential)>,
    /// Where upload sessions opened by [`WriteStore::writer`](oci_store::WriteStore::writer)
    /// on a [`Repository`](crate::Repository) are recorded, so that a push killed part way
    /// through resumes in a new process from the bytes the registry acknowledged (default
    /// `None`: sessions live in memory only and die with the process).
    ///
    /// One file per session, `<dir>/<sha256 of "registry/repository\nkey">.json`, mode 0600
    /// on unix: it holds the upload URL, which lets anyone holding it append to the upload.
    /// The directory is created (mode 0700) when missing. A record is updated after every
    /// acknowledged chunk and removed when the upload is committed or aborted; a record the
    /// registry no longer knows (expired, cancelled, another offset) starts a new upload.
    ///
    /// ```
    /// use oci_distribution_client::{Client, ClientConfig};
    /// let dir = std::env::temp_dir().join("oci-rs-doc-uploads");
    /// let config = ClientConfig::default().with_upload_state_dir(&dir);
    /// assert_eq!(config.upload_state_dir.as_deref(), Some(dir.as_path()));
    /// let client = Client::new(config)?;
    /// assert!(client.config().upload_state_dir.is_some());
    /// # Ok::<(), oci_distribution_client::Error>(())
    /// ```
    pub upload_state_dir: Option<std::path::PathBuf>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            plain_http: Vec::new(),
            ca_certificates_pem: Vec::new(),
            use_system_roots: true,
            proxy_from_env: true,
            user_agent: concat!("oci-distribution-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            max_manifest_size: 4 * 1024 * 1024,
            monolithic_max: 8 * 1024 * 1024,
            chunk_size: 8 * 1024 * 1024,
            max_chunk_size: 64 * 1024 * 1024,
            resume_attempts: 5,
            existence_check: ExistenceCheck::Head,
            verify_manifest_push: false,
            parallel_fetch: None,
            page_size: 100,
            docker_config: true,
            docker_config_file: None,
            credentials: Vec::new(),
            upload_state_dir: None,
        }
    }
}

impl ClientConfig {
    /// Speaks plain HTTP to `registry` (`host[:port]`).
    pub fn with_plain_http(mut self, registry: impl Into<String>) -> Self {
        self.plain_http.push(registry.into());
        self
    }

    /// Adds credentials for `registry`.
    pub fn with_credential(mut self, registry: impl Into<String>, credential: Credential) -> Self {
        self.credentials.push((registry.into(), credential));
        self
    }

    /// Records upload sessions in `dir` so they resume across processes (see
    /// [`upload_state_dir`](ClientConfig::upload_state_dir)).
    pub fn with_upload_state_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.upload_state_dir = Some(dir.into());
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets how pushes check existence; a non-`Head` check also reads manifests back after a
    /// push.
    pub fn with_existence_check(mut self, check: ExistenceCheck) -> Self {
        self.existence_check = check;
        self.verify_manifest_push = check != ExistenceCheck::Head;
        self
    }
}
