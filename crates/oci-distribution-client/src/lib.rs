//! Async client for the OCI distribution spec and the Docker registry v2 API, built to survive
//! real registries.
//!
//! - [`Reference`]: `[registry[:port]/]path[:tag][@digest]` with Docker's normalisation rules,
//!   re-exported from the `oci-reference` crate, which a tool that only parses references can
//!   depend on without this crate's HTTP stack.
//! - [`Client`]: reqwest over rustls (ring), HTTP/2 where offered, proxies from the
//!   environment, extra CA certificates, plain HTTP only for registries named in
//!   [`ClientConfig::plain_http`]. Auth: anonymous, Basic, Bearer tokens from
//!   `WWW-Authenticate` challenges (server-given realm, service and scope; several scopes in
//!   one token for mounts; cache honouring `expires_in`; one token request at a time per scope;
//!   one re-challenge on 401), credentials from code or Docker's `config.json` and its
//!   `docker-credential-*` helpers. Redirects are followed by hand and `Authorization` never
//!   crosses to another origin. Transient failures (connection errors, 408, 429, 5xx) are
//!   retried with exponential backoff and jitter, honouring `Retry-After` (inside a copy,
//!   only 429s: see **Retries** below); a refused
//!   connection is tried once more only ([`Error::ConnectionRefused`]). Every wait is bounded:
//!   requests have a deadline ([`ClientConfig::request_timeout`]) and blob bodies a minimum
//!   rate ([`ClientConfig::min_rate`]), so a registry that drips bytes fails
//!   ([`Error::DeadlineExceeded`], [`Error::TransferTooSlow`]) instead of hanging.
//! - [`Repository`]: resolve tags, fetch manifests (size limit, digest verified) and blobs as
//!   verified streams that resume with `Range` after a dropped connection; push blobs (skip
//!   existing, cross-repository mounts, monolithic and chunked uploads with chunk retry in
//!   place), push manifests as exact bytes; list tags, delete, referrers with the tag-schema
//!   fallback (the tag [`oci_store::referrers_tag`] names). It is also an `oci-store` store, so
//!   `oci_store::copy` works between it and memory or disk.
//!
//! - [`cookbook`]: complete programs for the common jobs (pull one platform into a layout, push
//!   a layout, copy with referrers, check a registry that may lie, GC and fsck, oci-spec values).
//!
//! **Retries.** A direct user of the client gets [`ClientConfig::retry`]: each request that
//! fails transiently is sent again within that policy. An operation that retries on its own
//! does not want that too, or its retries multiply (a manifest PUT that distribution refuses
//! with a 500 was sent 24 times by a copy with 3 retries over a client with 5). So while an
//! [`oci_store::RetryBudget`] is [current](oci_store::RetryBudget::current), as it is during
//! `oci_store::copy` (through the store traits, which pass nothing new), the client sends each
//! request once and returns connection errors, 408 and 5xx answers at once: the operation
//! retries them, reads and writes alike (manifest PUTs, upload POST/PATCH/PUT, mounts), each
//! retry taking one from its one budget. What the client still does inside an operation, as
//! these are not retries of it: wait as a 429's `Retry-After` asks (within
//! [`RetryPolicy::max_retry_after`] and [`RetryPolicy::max_retries`]: the registry pacing us),
//! resume a blob body or an upload chunk whose connection dropped, at the offset already
//! received (up to [`ClientConfig::resume_attempts`] times), and try a refused
//! connection once more (the operation treats a refusal as final). A failure the registry
//! explained is reported with its words: [`Error::Registry`] carries its error codes and
//! messages, or the status line and an escaped excerpt of a body that is not the error JSON.
//!
//! The client speaks the protocol and reports what the registry said; it has no policy of
//! its own about trusting those answers. Verification policy lives in `oci-store`: a copy that
//! does not trust a registry's "exists" (a registry that lost a blob it still claims) reads
//! the content back and repairs it with [`oci_store::CopyOptions::verify`]
//! ([`oci_store::VerifyMode`]); a direct user who wants a checked existence answer calls
//! [`oci_store::checked_exists`]`(&repository, &descriptor)`, which stats and then reads the last
//! byte to prove the registry serves it.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use oci_distribution_client::{Client, ClientConfig, Reference};
//!
//! # async fn demo() -> Result<(), oci_distribution_client::Error> {
//! let client = Client::new(ClientConfig::default().with_plain_http("127.0.0.1:5000"))?;
//! let reference: Reference = "127.0.0.1:5000/team/app:v1".parse()?;
//! let repo = client.repository(&reference)?;
//! let manifest = repo.fetch_manifest(&reference.manifest_reference()).await?;
//! for layer in manifest.parse()?.layers() {
//!     let mut blob = repo.fetch_blob(layer).await?;
//!     while let Some(chunk) = blob.next().await {
//!         let _bytes = chunk?; // verified when the stream ends without error
//!     }
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod auth;
mod client;
mod config;
pub mod cookbook;
mod error;
mod mirrors;
mod rate;
mod repository;
mod source;
mod store;
mod upload_state;

pub use auth::{Challenge, Credential, docker_config_path};
pub use client::Client;
pub use config::{ClientConfig, MinRate, ParallelFetch, RetryPolicy};
pub use error::{Error, RegistryErrorEntry, RegistryErrors};
pub use mirrors::{Mirror, MirrorConfig, PullFromMirror, PullPlace, PullSource, RegistryMirrors};
/// Image references, from the `oci-reference` crate (which parses them without this crate's
/// HTTP stack).
pub use oci_reference::{
    DEFAULT_REGISTRY, DEFAULT_REGISTRY_API_HOST, DEFAULT_TAG, InvalidReferenceReason,
    MAX_NAME_LENGTH, MAX_TAG_LENGTH, Reference, ReferenceError,
};
pub use repository::{BlobPush, BlobSource, ByteStream, FetchedManifest, Repository};
pub use source::RegistrySource;

/// Re-exports from the lower crates, so users need one dependency.
pub use oci_digest::{Algorithm, Digest};
pub use oci_manifest::{Descriptor, Manifest, media_types};

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
