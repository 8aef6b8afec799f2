//! Client configuration with sane defaults.

use std::time::Duration;

use crate::auth::Credential;

/// Retry policy for transient failures: connection errors, 408, 429 and 5xx answers.
///
/// It applies to requests made directly through the client. Inside an operation that retries
/// on its own within an [`oci_store::RetryBudget`] (a copy through the store traits), only 429
/// answers are retried here; the rest is left to the operation (see the crate documentation).
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

/// A minimum transfer rate: at least `bytes` must arrive in every `window` of time spent
/// waiting for a body, or the transfer fails with
/// [`Error::TransferTooSlow`](crate::Error::TransferTooSlow).
///
/// Only time spent waiting for the peer counts: while the caller is busy with the bytes it
/// already has (writing them to a slow disk or a slow destination), the clock stops. A
/// transfer that keeps up the rate on average over each window passes, however bursty; one
/// that drips (a byte a second, which never trips the read timeout) fails within one window
/// of waiting.
///
/// The default, 60 KiB per 60 s (1 KiB/s on average over a minute), is below what any link an
/// image is pulled over sustains (a 2G modem moves several KiB/s), and stops a drip-feed after
/// a minute.
///
/// ```
/// use std::time::Duration;
/// use oci_distribution_client::{ClientConfig, MinRate};
/// let rate = MinRate::new(1024 * 1024, Duration::from_secs(30)); // 1 MiB per 30 s
/// let config = ClientConfig::default().with_min_rate(Some(rate));
/// assert_eq!(config.min_rate, Some(rate));
/// assert_eq!(MinRate::default().bytes, 60 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MinRate {
    /// Bytes that must arrive in each window (at least 1).
    pub bytes: u64,
    /// The window, counted in time spent waiting for the peer (more than zero).
    pub window: Duration,
}

impl MinRate {
    /// At least `bytes` in every `window` spent waiting.
    pub fn new(bytes: u64, window: Duration) -> Self {
        MinRate { bytes, window }
    }

    /// Time allowed to move `n` bytes at this rate (at least one window); saturates.
    pub(crate) fn time_for(&self, n: u64) -> Duration {
        let windows = n.div_ceil(self.bytes.max(1)).max(1);
        u32::try_from(windows)
            .ok()
            .and_then(|w| self.window.checked_mul(w))
            .unwrap_or(Duration::MAX)
    }
}

impl Default for MinRate {
    fn default() -> Self {
        MinRate {
            bytes: 60 * 1024,
            window: Duration::from_secs(60),
        }
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
/// use oci_distribution_client::ClientConfig;
/// let mut config = ClientConfig::default();
/// config.plain_http.push("127.0.0.1:5000".into());
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
    /// The deadline of one attempt of a request, from sending it to the last byte of its answer
    /// (redirects and the answer's body included) for manifests, tokens, existence checks,
    /// listings and the like; for blob downloads, to the answer's head only (their bodies are
    /// held to [`min_rate`](ClientConfig::min_rate)); for uploads, this plus the time the body
    /// takes at the minimum rate. Past it the request fails with
    /// [`Error::DeadlineExceeded`](crate::Error::DeadlineExceeded) and is not retried (default
    /// 120 s: a manifest moves in seconds even over a slow link).
    pub request_timeout: Duration,
    /// The minimum rate of every blob body read (downloads, ranged reads, read-backs); `None`
    /// lets a transfer take any time as long as the read timeout does not fire. Default
    /// [`MinRate::default`] (1 KiB/s over a minute).
    pub min_rate: Option<MinRate>,
    /// Retries of transient failures by the client itself, for direct users; inside an
    /// operation with its own [`oci_store::RetryBudget`] (a copy) only 429s are retried here.
    pub retry: RetryPolicy,
    /// Largest manifest accepted, in bytes.
    pub max_manifest_size: u64,

    // ---- Blob uploads (issue 17). Keep these fields together, in this group. ----
    /// Blobs up to this size are uploaded with one streamed `PUT` that carries the content
    /// (two requests: open the session, send it); larger ones with one streamed `PATCH` and a
    /// closing `PUT` (three requests), which a stopped push ends cleanly and a later one resumes
    /// from the registry's offset. Either way the content streams from the source as it is
    /// sent, and the request that makes a blob visible is sent only after the client verified
    /// every byte (the last part of a streamed `PUT` is held back until then). Default 8 MiB.
    pub monolithic_max: u64,
    /// Blobs up to this size are asked whether the registry has them with the request that
    /// starts their upload: a mount from the repository itself, which the registry answers
    /// `201` when it has the blob and `202` with a new upload session when not. One request
    /// where a `HEAD` and a `POST` would be two. A registry that does not mount answers `202`
    /// either way, and the blob is sent again: at most this many bytes. Larger blobs are asked
    /// with a `HEAD` first. `0` asks every blob with a `HEAD`. Default 1 MiB.
    pub probe_upload_max: u64,
    /// Streamed uploads: the spacing of the hash checkpoints an interrupted upload resumes
    /// from. The registry's own offset decides where sending continues; the bytes between the
    /// checkpoint below it and that offset are read from the source again and hashed, not sent.
    /// Chunked uploads: the preferred chunk size, raised to the registry's
    /// `OCI-Chunk-Min-Length` when that is larger, never past the largest chunk. Default 8 MiB.
    pub chunk_size: u64,
    /// Largest chunk of a chunked upload, whatever the registry asks (default 64 MiB).
    pub max_chunk_size: u64,
    /// Registries (`host[:port]` exactly as in references) that get chunked uploads, each with
    /// the largest chunk it takes (some hosted registries refuse more than 4 MiB in one
    /// request), for registries that refuse streamed uploads. A registry that refuses one
    /// (`400`, `411`, `413`, `416` or `501` to a streamed upload) gets chunks from then on
    /// without being listed here: the upload that was refused fails once, and a copy's retry
    /// sends it in chunks. Chunked uploads keep the chunk being sent in memory, so that a chunk
    /// whose connection dropped is sent again in place. Default: none.
    ///
    /// ```
    /// use oci_distribution_client::{Client, ClientConfig};
    /// let config = ClientConfig::default().with_chunked_uploads("registry.example", 4 << 20);
    /// assert_eq!(config.chunked_uploads, [("registry.example".to_owned(), 4 << 20)]);
    /// assert_eq!(config.upload_chunk_limit("registry.example"), Some(4 << 20));
    /// assert_eq!(config.upload_chunk_limit("other.example"), None);
    /// Client::new(config)?;
    /// # Ok::<(), oci_distribution_client::Error>(())
    /// ```
    pub chunked_uploads: Vec<(String, u64)>,
    // ---- end of blob uploads ----
    /// How many times one blob download or one upload chunk is resumed after its connection
    /// dropped without progress.
    pub resume_attempts: u32,
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
    /// Mirrors to pull from, per registry or namespace (see
    /// [`Client::pull_sources`](crate::Client::pull_sources)); pushes never use them.
    pub mirrors: crate::MirrorConfig,
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
            request_timeout: Duration::from_secs(120),
            min_rate: Some(MinRate::default()),
            retry: RetryPolicy::default(),
            max_manifest_size: 4 * 1024 * 1024,
            monolithic_max: 8 * 1024 * 1024,
            probe_upload_max: 1024 * 1024,
            chunk_size: 8 * 1024 * 1024,
            max_chunk_size: 64 * 1024 * 1024,
            chunked_uploads: Vec::new(),
            resume_attempts: 5,
            parallel_fetch: None,
            page_size: 100,
            docker_config: true,
            docker_config_file: None,
            credentials: Vec::new(),
            upload_state_dir: None,
            mirrors: crate::MirrorConfig::default(),
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

    /// Sends chunked uploads to `registry` (`host[:port]`), in chunks of at most `max_chunk`
    /// bytes (see [`chunked_uploads`](ClientConfig::chunked_uploads)).
    ///
    /// ```
    /// let config = oci_distribution_client::ClientConfig::default()
    ///     .with_chunked_uploads("ghcr.example", 4 << 20);
    /// assert_eq!(config.upload_chunk_limit("ghcr.example"), Some(4 << 20));
    /// ```
    pub fn with_chunked_uploads(mut self, registry: impl Into<String>, max_chunk: u64) -> Self {
        self.chunked_uploads.push((registry.into(), max_chunk));
        self
    }

    /// The largest chunk of uploads to `registry` when it is listed in
    /// [`chunked_uploads`](ClientConfig::chunked_uploads) (the smallest limit when listed more
    /// than once), `None` when its uploads are streamed.
    ///
    /// ```
    /// let config = oci_distribution_client::ClientConfig::default()
    ///     .with_chunked_uploads("r.example:5000", 8 << 20)
    ///     .with_chunked_uploads("r.example:5000", 4 << 20);
    /// assert_eq!(config.upload_chunk_limit("r.example:5000"), Some(4 << 20));
    /// assert_eq!(config.upload_chunk_limit("r.example"), None); // another port, another registry
    /// ```
    pub fn upload_chunk_limit(&self, registry: &str) -> Option<u64> {
        self.chunked_uploads
            .iter()
            .filter(|(r, _)| r == registry)
            .map(|(_, max)| *max)
            .min()
    }

    /// Pulls through these mirrors (see [`mirrors`](ClientConfig::mirrors)).
    pub fn with_mirrors(mut self, mirrors: crate::MirrorConfig) -> Self {
        self.mirrors = mirrors;
        self
    }

    /// Sets the minimum transfer rate of blob bodies (`None`: no minimum).
    pub fn with_min_rate(mut self, min_rate: Option<MinRate>) -> Self {
        self.min_rate = min_rate;
        self
    }

    /// Sets the deadline of one request attempt (see
    /// [`request_timeout`](ClientConfig::request_timeout)).
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = oci_distribution_client::ClientConfig::default()
    ///     .with_request_timeout(Duration::from_secs(30));
    /// assert_eq!(config.request_timeout, Duration::from_secs(30));
    /// ```
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The deadline of a request that sends a body of `len` bytes: the request deadline plus
    /// the time the body takes at the minimum rate.
    pub(crate) fn upload_deadline(&self, len: u64) -> Duration {
        match &self.min_rate {
            Some(rate) => self.request_timeout.saturating_add(rate.time_for(len)),
            None => Duration::MAX,
        }
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_deadlines_grow_with_the_body_and_saturate() {
        let mut c = ClientConfig::default()
            .with_request_timeout(Duration::from_secs(10))
            .with_min_rate(Some(MinRate::new(1000, Duration::from_secs(2))));
        assert_eq!(c.upload_deadline(0), Duration::from_secs(12));
        assert_eq!(c.upload_deadline(1000), Duration::from_secs(12));
        assert_eq!(c.upload_deadline(1001), Duration::from_secs(14));
        // A peer's size near u64::MAX, a window near Duration::MAX: no overflow.
        assert_eq!(c.upload_deadline(u64::MAX), Duration::MAX);
        c.min_rate = Some(MinRate::new(1, Duration::MAX));
        assert_eq!(c.upload_deadline(2), Duration::MAX);
        c.min_rate = None;
        assert_eq!(c.upload_deadline(5), Duration::MAX);
    }
}
