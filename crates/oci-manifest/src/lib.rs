//! OCI and Docker image manifests and indexes kept as exact bytes.
//!
//! A digest names the exact bytes of a manifest, so this crate never re-serialises what it did
//! not create: [`Manifest`] keeps the raw bytes beside the parsed fields, and everything made
//! here ([`build`], [`convert`], [`reduce`]) is new bytes with a new digest.
//!
//! - [`Manifest::parse`]: strict parsing and validation (schema version, media types, duplicate
//!   JSON keys, descriptor digests, a size limit), Docker schema 1 recognised and refused;
//!   [`Manifest::parse_verified`] also checks the bytes against the descriptor that named them.
//! - [`Manifest::children`]: the graph edges, in a fixed order.
//! - [`platform`]: parsing, normalisation, the host platform, containerd-style ranked matching,
//!   and [`platform::select`] of the best entry of an index.
//! - [`build`]: deterministic builders; [`reduce`]: an index cut down to some platforms, with
//!   what it still references; [`convert`]: Docker schema 2 <-> OCI; [`schema1`]: Docker
//!   schema 1 read and converted to schema 2 or OCI as skopeo converts it.
//! - With the feature `oci-spec`, `interop`: conversions both ways between these types and the
//!   `oci_spec::image` ones (digests, descriptors, platforms, image manifests and indexes).
//!
//! ```
//! use oci_manifest::{Manifest, media_types};
//! let raw = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
//!   "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",
//!     "digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
//!     "size":0,"platform":{"os":"linux","architecture":"amd64"}}]}"#;
//! let index = Manifest::parse(&raw[..], Some(media_types::OCI_INDEX)).unwrap();
//! assert!(index.is_index());
//! assert_eq!(index.manifests()[0].platform.as_ref().unwrap().architecture, "amd64");
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod base64;
pub mod build;
pub mod convert;
mod descriptor;
mod error;
#[cfg(feature = "oci-spec")]
#[cfg_attr(docsrs, doc(cfg(feature = "oci-spec")))]
pub mod interop;
mod manifest;
pub mod media_types;
pub mod platform;
mod reduce;
pub mod schema1;
mod strict;

pub use crate::descriptor::{Descriptor, annotations};
pub use crate::error::ManifestError;
pub use crate::manifest::{
    DEFAULT_MAX_INDEX_DEPTH, DEFAULT_MAX_MANIFEST_SIZE, Manifest, ManifestKind, ParseOptions,
};
pub use crate::platform::Platform;
pub use crate::reduce::{Reduced, reduce};
pub use oci_digest::{Algorithm, Digest};

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
