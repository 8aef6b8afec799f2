//! The crate's error type.

use std::fmt;

use oci_digest::{Digest, VerifyError};

use oci_reference::ReferenceError;

/// One entry of a registry's error body (`{"errors":[{"code","message","detail"}]}`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct RegistryErrorEntry {
    /// The registry's error code (`BLOB_UNKNOWN`, `MANIFEST_UNKNOWN`, `DENIED`, ...).
    #[serde(default)]
    pub code: String,
    /// The registry's message.
    #[serde(default)]
    pub message: String,
    /// Free-form detail, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// The error entries of a registry's answer, printed as `CODE: message; CODE: message`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistryErrors(pub Vec<RegistryErrorEntry>);

impl RegistryErrors {
    /// Parses an error body; a body that is not the registry error JSON gives no entries.
    ///
    /// ```
    /// use oci_distribution_client::RegistryErrors;
    /// let e = RegistryErrors::parse(br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#);
    /// assert_eq!(e.0[0].code, "BLOB_UNKNOWN");
    /// assert!(RegistryErrors::parse(b"<html>").0.is_empty());
    /// ```
    pub fn parse(body: &[u8]) -> RegistryErrors {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<RegistryErrorEntry>,
        }
        RegistryErrors(
            serde_json::from_slice::<Body>(body)
                .map(|b| b.errors)
                .unwrap_or_default(),
        )
    }

    /// Whether any entry has this code.
    pub fn has_code(&self, code: &str) -> bool {
        self.0.iter().any(|e| e.code == code)
    }
}

impl fmt::Display for RegistryErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no error details");
        }
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.code, e.message)?;
            if let Some(d) = &e.detail {
                write!(f, " ({d})")?;
            }
        }
        Ok(())
    }
}

/// Characters of an error body quoted in [`Error::Registry`] when it is not the registry error
/// JSON.
pub(crate) const BODY_EXCERPT_CHARS: usize = 200;

/// An excerpt of an error body that has no registry error entries: its first
/// [`BODY_EXCERPT_CHARS`] characters (lossy UTF-8, surrounding white space trimmed), control
/// characters and quotes escaped as in Rust strings, `...` when cut; `None` when empty.
pub(crate) fn body_excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut out: String = text
        .chars()
        .take(BODY_EXCERPT_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(BODY_EXCERPT_CHARS).is_some() {
        out.push_str("...");
    }
    Some(out)
}

/// `500 Internal Server Error`: the code and its standard reason, when it has one.
fn status_line(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

/// The registry's error entries, else the excerpt of the body.
struct Details<'a>(&'a RegistryErrors, Option<&'a str>);

impl fmt::Display for Details<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.0.is_empty(), self.1) {
            (true, Some(body)) => write!(f, "no registry error in the body: \"{body}\""),
            _ => self.0.fmt(f),
        }
    }
}

/// `n` bytes in `d` as a rate for people (`3 B/s`, `1.5 KiB/s`).
fn rate_text(n: u64, d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    if secs <= 0.0 {
        return format!("{n} B");
    }
    let rate = n as f64 / secs;
    if rate < 1024.0 {
        format!("{rate:.1} B/s")
    } else {
        format!("{:.1} KiB/s", rate / 1024.0)
    }
}

/// Everything that can go wrong in this crate.
///
/// ```
/// use oci_distribution_client::{Error, InvalidReferenceReason, Reference};
///
/// fn parse(s: &str) -> Result<Reference, Error> {
///     Ok(s.parse()?) // a reference's own parse error becomes `Error::InvalidReference`
/// }
///
/// match parse("Example.com/App") {
///     Err(Error::InvalidReference(e)) => {
///         assert_eq!(e.input, "Example.com/App");
///         assert_eq!(e.reason, InvalidReferenceReason::Uppercase);
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A reference, repository name, tag or digest broke one of Docker's rules (the
    /// [`ReferenceError`] names the input and the rule).
    #[error("invalid image reference")]
    InvalidReference(#[from] ReferenceError),
    /// The client configuration is unusable (unreadable CA file, bad proxy, bad option).
    #[error("invalid client configuration: {what}")]
    InvalidConfig {
        /// What is wrong.
        what: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The request could not be sent or its answer not read (after the configured retries).
    #[error("{method} {url}: transport error after {attempts} attempt(s)")]
    Transport {
        /// HTTP method.
        method: String,
        /// URL (never with credentials).
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// Nothing listens at the registry's address (or a redirect's): the connection was
    /// refused. Tried once more after a short delay (a registry restarting), no more: waiting
    /// does not make a server appear.
    ///
    /// `source` is an [`std::io::Error`] of kind
    /// [`ConnectionRefused`](std::io::ErrorKind::ConnectionRefused) wrapping the HTTP client's
    /// error, so that callers who do not know this crate (a graph copy) see that a retry
    /// cannot help.
    #[error("{method} {url}: connection refused by {address} ({attempts} attempt(s))")]
    ConnectionRefused {
        /// HTTP method.
        method: String,
        /// URL of the request (without its query).
        url: String,
        /// The `host:port` that refused.
        address: String,
        /// Attempts made.
        attempts: u32,
        /// The refusal.
        #[source]
        source: std::io::Error,
    },
    /// A blob body arrived slower than the configured minimum rate
    /// ([`ClientConfig::min_rate`](crate::ClientConfig::min_rate)): a registry or a network
    /// that drips bytes. Not resumed nor retried: it would drip again.
    ///
    /// `source` is an [`std::io::Error`] of kind [`TimedOut`](std::io::ErrorKind::TimedOut).
    #[error(
        "GET {url}: {what}: {received} bytes in {waited:.1?} of waiting ({}), below the minimum of {} bytes per {:?}",
        rate_text(*.received, *.waited),
        .limit.bytes,
        .limit.window
    )]
    TransferTooSlow {
        /// URL read (without its query).
        url: String,
        /// What was being read (`blob sha256:...`).
        what: String,
        /// Bytes received in the window that failed.
        received: u64,
        /// Time spent waiting in that window.
        waited: std::time::Duration,
        /// The limit.
        limit: crate::MinRate,
        /// A [`TimedOut`](std::io::ErrorKind::TimedOut) I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A request (manifest, token, existence check, listing, upload step) did not complete
    /// within its deadline ([`ClientConfig::request_timeout`](crate::ClientConfig::request_timeout)).
    /// Not retried: the time it was given is spent.
    ///
    /// `source` is an [`std::io::Error`] of kind [`TimedOut`](std::io::ErrorKind::TimedOut).
    #[error("{method} {url}: no complete answer within the deadline of {limit:?}")]
    DeadlineExceeded {
        /// HTTP method.
        method: String,
        /// URL (without its query).
        url: String,
        /// The deadline.
        limit: std::time::Duration,
        /// A [`TimedOut`](std::io::ErrorKind::TimedOut) I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The registry stopped taking the body of a streamed upload: none of it was accepted for
    /// `waited` (the client's [`read_timeout`](crate::ClientConfig::read_timeout)). Not
    /// retried: the registry would stall again. A later upload of the same content resumes from
    /// what the registry holds when it allows that.
    ///
    /// `source` is an [`std::io::Error`] of kind [`TimedOut`](std::io::ErrorKind::TimedOut).
    #[error(
        "{method} {url}: the registry took no more of the upload body for {waited:?}, after {sent} bytes"
    )]
    UploadStalled {
        /// HTTP method (`PATCH` or `PUT`).
        method: String,
        /// URL (without its query, which may carry upload state).
        url: String,
        /// Bytes of the body handed to the connection before it stalled.
        sent: u64,
        /// How long nothing was taken.
        waited: std::time::Duration,
        /// A [`TimedOut`](std::io::ErrorKind::TimedOut) I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The registry answered with an error status. The message quotes what it said: its error
    /// codes and messages, or, for a body that is not the registry error JSON (a proxy's HTML
    /// page, plain text), the status line and a short excerpt of the body with its control
    /// characters escaped.
    #[error("{method} {url}: registry answered {}: {}", status_line(*.status), Details(.errors, .body.as_deref()))]
    Registry {
        /// HTTP method.
        method: String,
        /// URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The parsed error body.
        errors: RegistryErrors,
        /// When the body held no registry error entries: its first 200 characters, control
        /// characters and quotes escaped, `...` when cut (`None` for an empty body).
        body: Option<String>,
    },
    /// Authentication failed (401/403 after a fresh challenge, or a token request refused).
    #[error("{method} {url}: not authorized ({status}): {}", Details(.errors, .body.as_deref()))]
    Unauthorized {
        /// HTTP method.
        method: String,
        /// URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The parsed error body.
        errors: RegistryErrors,
        /// As for [`Error::Registry`]: an excerpt of a body without error entries.
        body: Option<String>,
    },
    /// A manifest's bytes did not hash to the digest it was pinned to or announced with.
    #[error(
        "manifest {reference}: digest mismatch: expected {expected} ({source_of_expected}), got {actual}"
    )]
    ManifestDigestMismatch {
        /// The reference asked for.
        reference: String,
        /// The digest expected.
        expected: Digest,
        /// Where the expected digest came from (`pinned reference`, `Docker-Content-Digest`).
        source_of_expected: &'static str,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// A manifest is larger than the configured limit.
    #[error(
        "manifest {reference} is larger than the limit of {limit} bytes ({size} bytes or more)"
    )]
    ManifestTooLarge {
        /// The reference asked for.
        reference: String,
        /// The limit.
        limit: u64,
        /// The size announced or read so far.
        size: u64,
    },
    /// The registry announced a blob of another size than its descriptor says (its
    /// `Content-Length`), before any byte was read.
    #[error(
        "blob {digest} of {repository}: the registry serves {actual} bytes, the descriptor says {expected}"
    )]
    SizeMismatch {
        /// The repository.
        repository: String,
        /// The blob's digest.
        digest: Digest,
        /// The size the descriptor says.
        expected: u64,
        /// The size the registry announced.
        actual: u64,
    },
    /// A blob's bytes did not match its descriptor.
    #[error("blob {digest} of {repository}: content does not verify")]
    Verify {
        /// The repository.
        repository: String,
        /// The blob's digest.
        digest: Digest,
        /// What did not match.
        #[source]
        source: VerifyError,
    },
    /// A digest the registry announced does not match ours.
    #[error("{what} {repository}: registry returned digest {actual}, expected {expected}")]
    DigestHeaderMismatch {
        /// What was pushed or fetched (`blob`, `manifest`).
        what: &'static str,
        /// The repository.
        repository: String,
        /// Our digest.
        expected: Digest,
        /// The registry's digest.
        actual: String,
    },
    /// The registry said something the protocol does not allow (missing `Location`, a range
    /// that does not continue the upload, ...).
    #[error("{method} {url}: protocol violation: {what}")]
    Protocol {
        /// HTTP method.
        method: String,
        /// URL.
        url: String,
        /// What was wrong.
        what: String,
    },
    /// A `docker-credential-*` helper failed.
    #[error("credential helper docker-credential-{helper} for {registry}: {message}")]
    CredentialHelper {
        /// The helper's suffix (`pass`, `ecr-login`, ...).
        helper: String,
        /// The registry asked for.
        registry: String,
        /// What went wrong.
        message: String,
        /// The underlying I/O error, if any.
        #[source]
        source: Option<std::io::Error>,
    },
    /// Docker's `config.json` could not be read or parsed.
    #[error("docker config {path}: {message}")]
    DockerConfig {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The content handed to a push failed (a source stream error).
    #[error("{context}")]
    Source {
        /// What was being read.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest could not be parsed.
    #[error("manifest {reference}: cannot parse")]
    Manifest {
        /// The reference.
        reference: String,
        /// The parse error.
        #[source]
        source: oci_manifest::ManifestError,
    },
    /// An operation needs a digest but the reference has none, or the like.
    #[error("{0}")]
    InvalidArgument(String),
}

impl Error {
    /// The HTTP status the registry answered, if this error came from an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Registry { status, .. } | Error::Unauthorized { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the registry answered 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The registry's error entries, if any.
    pub fn registry_errors(&self) -> Option<&RegistryErrors> {
        match self {
            Error::Registry { errors, .. } | Error::Unauthorized { errors, .. } => Some(errors),
            _ => None,
        }
    }

    /// Converts to an `io::Error` for stream items: verification failures keep their
    /// [`VerifyError`] findable with [`VerifyError::from_io`]; a transfer below the minimum
    /// rate or past its deadline is of kind [`TimedOut`](std::io::ErrorKind::TimedOut), a
    /// refused connection of kind [`ConnectionRefused`](std::io::ErrorKind::ConnectionRefused).
    pub fn into_io(self) -> std::io::Error {
        match self {
            Error::Verify { source, .. } => source.into(),
            Error::Source { source, .. } => source,
            e @ (Error::TransferTooSlow { .. }
            | Error::DeadlineExceeded { .. }
            | Error::UploadStalled { .. }) => std::io::Error::new(std::io::ErrorKind::TimedOut, e),
            e @ Error::ConnectionRefused { .. } => {
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, e)
            }
            other => std::io::Error::other(other),
        }
    }

    /// A [`Error::Protocol`] of the answer to `method` on `url` (named without its query, which
    /// may carry upload state or signatures).
    pub(crate) fn protocol(method: &str, url: &reqwest::Url, what: impl Into<String>) -> Error {
        Error::Protocol {
            method: method.to_owned(),
            url: crate::client::strip_query(url),
            what: what.into(),
        }
    }

    /// A [`TimedOut`](std::io::ErrorKind::TimedOut) cause for the timeout variants.
    pub(crate) fn timed_out() -> std::io::Error {
        std::io::Error::from(std::io::ErrorKind::TimedOut)
    }
}
