//! Container image references, `[registry[:port]/]path[:tag][@digest]`, parsed and normalised
//! exactly as Docker does, without an HTTP stack (dependencies: `oci-digest` and `thiserror`).
//!
//! ```
//! use oci_reference::Reference;
//!
//! let r: Reference = "busybox:1.36".parse()?;
//! assert_eq!(r.name(), "docker.io/library/busybox");
//! assert_eq!(r.to_string(), "docker.io/library/busybox:1.36");
//! assert_eq!(r.familiar(), "busybox:1.36");
//!
//! let err = Reference::parse("team/App:v1").unwrap_err();
//! assert_eq!(err.to_string(), r#"invalid reference "team/App:v1": repository name must be lowercase"#);
//! # Ok::<(), oci_reference::ReferenceError>(())
//! ```
//!
//! # Rules
//! [`Reference::parse`] follows `ParseNormalizedNamed` of distribution's `reference` package
//! (v0.6, what `docker pull` uses):
//!
//! - **Image IDs.** An input that is exactly 64 lowercase hex characters is refused
//!   ([`InvalidReferenceReason::HexRepository`]): it could be an image ID. With a registry, a
//!   path or a tag around it, a 64-hex component is an ordinary name: `docker.io/<hex>`,
//!   `<hex>:v1` and `<hex>@sha256:…` are `docker.io/library/<hex>`, `team/<hex>` is
//!   `docker.io/team/<hex>`.
//! - **Registry.** The part before the first `/` is a registry only when it is `localhost`,
//!   contains a `.` or a `:`, or has an uppercase letter (a path may not); otherwise, and when
//!   there is no `/`, the registry is `docker.io` (so `registry/app` is on Docker Hub, and
//!   `localhost:5000` alone is `docker.io/library/localhost` with tag `5000`). `index.docker.io`
//!   is read as `docker.io`. A registry is a host name or IPv4 address (components
//!   `[A-Za-z0-9]`, `[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]`, joined by `.`) or `[IPv6]` (hex digits
//!   and `:`, no zone), with an optional numeric port; its case is kept.
//! - **Official images.** On `docker.io`, a one-component path gets `library/`.
//! - **Path.** Components `[a-z0-9]+` joined by one `.`, one `_`, `__` or any number of `-`,
//!   separated by `/`; lowercase only ([`InvalidReferenceReason::Uppercase`]); at most
//!   [`MAX_NAME_LENGTH`] (255) bytes including `library/`, the registry not counted.
//! - **Tag.** `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` after the last `:` that follows the last `/`.
//! - **Digest.** After `@`: a digest `oci_digest` verifies (`sha256` or `sha512`, lowercase hex
//!   of the exact length). A tag and a digest may both be given; both are kept.
//!
//! The canonical form ([`Display`](std::fmt::Display)) is `registry/repository[:tag][@digest]`
//! and parses back to the same [`Reference`]; so does [`Reference::familiar`], Docker's short
//! form.
//!
//! Where this crate differs from distribution, on purpose:
//! - a digest of an algorithm other than `sha256` and `sha512` (`sha384`, which Docker also
//!   accepts) is refused: `oci-digest` cannot verify it;
//! - a first component taken as a registry that is not a valid host but would be a valid path
//!   (only with `_`: `my_host.com/app`) is refused ([`InvalidReferenceReason::InvalidRegistry`]);
//!   distribution accepts it as a name with no registry at all, which nothing can pull;
//! - the familiar form keeps `docker.io/` when Docker's would read back as another registry
//!   (`docker.io/example.com/app`), and `library/` when it would be a bare 64-hex ID.
//!
//! Parts can be checked alone with [`validate_tag`], [`validate_repository`] and
//! [`validate_registry`]. With the feature `serde`, a [`Reference`] serialises as its canonical
//! string and deserialises through [`Reference::parse`].
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod grammar;
mod reference;

pub use error::{InvalidReferenceReason, MAX_ERROR_INPUT, ReferenceError};
pub use grammar::{
    MAX_NAME_LENGTH, MAX_TAG_LENGTH, validate_registry, validate_repository, validate_tag,
};
pub use reference::{DEFAULT_REGISTRY, DEFAULT_REGISTRY_API_HOST, DEFAULT_TAG, Reference};

/// The digest type of a pinned reference, from `oci-digest`.
pub use oci_digest::Digest;
