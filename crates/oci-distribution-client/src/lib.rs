//! Async client for the OCI distribution spec and the Docker registry v2 API, built to survive
//! real registries.
//!
//! - [`Reference`]: `[registry[:port]/]path[:tag][@digest]` with Docker's normalisation rules.
//! - [`Client`]: reqwest over rustls (ring), HTTP/2 where offered, proxies from the
//!   environment, extra CA certificates, plain HTTP only for registries named in
//!   [`ClientConfig::plain_http`]. Auth: anonymous, Basic, Bearer tokens from
//!   `WWW-Authenticate` challenges (server-given realm, service and scope; several scopes in
//!   one token for mounts; cache honouring `expires_in`; one token request at a time per scope;
//!   one re-challenge on 401), credentials from code or Docker's `config.json` and its
//!   `docker-credential-*` helpers. Redirects are followed by hand and `Authorization` never
//!   crosses to another origin. Transient failures (connection errors, 408, 429, 5xx) are
//!   retried with exponential backoff and jitter, honouring `Retry-After`; a refused
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
mod error;
mod rate;
mod reference;
mod repository;
mod store;
mod upload_state;

pub use auth::{Challenge, Credential, docker_config_path};
pub use client::Client;
pub use config::{ClientConfig, MinRate, ParallelFetch, RetryPolicy};
pub use error::{Error, RegistryErrorEntry, RegistryErrors};
pub use reference::{
    DEFAULT_REGISTRY, DEFAULT_REGISTRY_API_HOST, DEFAULT_TAG, InvalidReferenceReason,
    MAX_NAME_LENGTH, MAX_TAG_LENGTH, Reference,
};
pub use repository::{BlobPush, BlobSource, ByteStream, FetchedManifest, Repository};

/// Re-exports from the lower crates, so users need one dependency.
pub use oci_digest::{Algorithm, Digest};
pub use oci_manifest::{Descriptor, Manifest, media_types};
