//! Content-addressed OCI stores with tags, leases, exact reference counts, online garbage
//! collection and fsck.
//!
//! - The traits: [`ReadStore`] (stat, verified fetch, range fetch), [`WriteStore`] (verified
//!   push, resumable [`BlobWriter`]s keyed by an ingest key, delete), [`TagStore`] (resolve,
//!   tag, untag, list) and [`ManagedStore`] (leases, [`parents`](ManagedStore::parents) and
//!   [`refcount`](ManagedStore::refcount), [`gc`](ManagedStore::gc),
//!   [`fsck`](ManagedStore::fsck)). [`Store`] is read + write + tags; all are object safe.
//! - [`MemoryStore`]: in memory. [`LayoutStore`]: an OCI image layout on disk that skopeo,
//!   umoci and oras read and write, with this crate's own state (ingests, leases, lock file) in
//!   a `.oci-rs/` directory beside `index.json`. Blob data is written with `O_DIRECT` on Linux
//!   where the file system takes it ([`LayoutOptions::buffered_writes`] turns that off), and a
//!   layout can be opened [read-only](LayoutOptions::read_only()) (nothing in it is created or
//!   changed).
//! - `BucketStore` (feature `object-store`): the same layout as keys of an S3-compatible
//!   bucket, shared by many machines: content made visible only verified and create-only, tags
//!   changed by compare-and-swap, leases as objects, garbage collection online beside writers
//!   on other machines, every age judged in storage time. Opened from
//!   `Backend::s3_from_env` or `BucketStore::open_url("s3://BUCKET/PREFIX", ..)`.
//! - Pieces: [`fetch_blob`] fetches one blob from many [`RangeSource`]s at once into a
//!   [`PieceWriter`] ([`WriteStore::piece_writer`]: pieces in any order, resumable), checking
//!   every piece against a [`PieceMap`] when there is one and locating bad pieces by asking
//!   other sources when there is not; the whole digest is always the final check.
//!
//! Invariants: content becomes visible only verified; existence is only ever asked of storage;
//! content lives while a tag, an untagged `index.json` entry, a lease or an active ingest
//! reaches it; garbage collection is safe beside other tasks and other processes.
//!
//! Adding a backend: implement [`ReadStore`], [`WriteStore`] and [`TagStore`] (and
//! [`ManagedStore`] when the backend manages its own content: leases, GC, fsck), then run the
//! public conformance suite from its tests with the `testing` feature: `testing::store_suite`
//! and, for a managed store, `testing::managed_store_suite`, each given an async closure that
//! makes a fresh store. A backend that supports only part of the traits (a registry repository
//! has no leases) calls the cases it supports one by one (`testing::round_trip`,
//! `testing::tags`, ...). The `testing` module also has deterministic content (blobs, images,
//! multi-platform indexes) and a store that lies (`testing::LyingStore`) for a backend's own
//! tests.
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use oci_manifest::{Descriptor, media_types};
//! use oci_store::{GcOptions, ManagedStore, MemoryStore, ReadStore, TagStore, WriteStore};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let lease = store.create_lease(Duration::from_secs(300)).await?;
//! let w = store.with_lease(&lease);
//!
//! // Post-order: the config first, then the manifest that refers to it, then the tag.
//! let config = Bytes::from_static(b"{}");
//! let config_desc = Descriptor::new(media_types::OCI_CONFIG, oci_digest::Algorithm::Sha256.hash(&config), 2);
//! w.push_bytes(&config_desc, config).await?;
//! let manifest = Bytes::from(format!(
//!     r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":2}},"layers":[]}}"#,
//!     media_types::OCI_MANIFEST, media_types::OCI_CONFIG, config_desc.digest));
//! let manifest_desc = Descriptor::new(media_types::OCI_MANIFEST, oci_digest::Algorithm::Sha256.hash(&manifest), manifest.len() as u64);
//! w.push_bytes(&manifest_desc, manifest).await?;
//! w.tag(&manifest_desc, "latest").await?;
//! store.release_lease(&lease).await?;
//!
//! store.gc(&GcOptions::default().with_min_age(Duration::ZERO)).await?;
//! assert!(store.exists(&config_desc.digest).await?); // reachable from the tag
//! assert_eq!(store.refcount(&config_desc.digest).await?, 1); // the manifest
//! # Ok::<(), oci_store::StoreError>(())
//! # }).unwrap();
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod archive;
mod copy;
mod error;
mod fetch;
mod gc;
mod layout;
mod lease;
mod memory;
#[cfg(feature = "object-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "object-store")))]
mod object;
#[cfg(any(test, feature = "testing"))]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod traits;
mod util;
mod walk;

pub use crate::archive::{
    ArchiveImage, ArchiveKind, ArchiveOptions, ArchiveReader, ArchiveRef, ArchiveSummary,
    ArchiveWriter,
};
pub use crate::copy::{
    CancelToken, CopyError, CopyOptions, CopyReport, CopySide, ManifestConversion, NodeOutcome,
    NodeReport, PIECE_MAP_BLOB_ANNOTATION, PieceMapArtifact, PieceMapsReport, Progress,
    ProgressEvent, ProgressFn, RetryBudget, SharedBlobs, SourceTotals, VerifyMode, checked_exists,
    copy, copy_leased, ingest_key, referrers_index, referrers_tag, resolve_reference,
};
pub use crate::error::{Result, StoreError, error_chain};
pub use crate::fetch::{
    BadPiece, ContestedPiece, FetchError, FetchEvent, FetchEventFn, FetchOptions, FetchReport,
    MAX_SOURCES, MapTrust, MapUse, RangeAnswer, RangeSource, SourceReport, StoreSource,
    UnservablePiece, fetch_blob,
};
pub use crate::gc::{
    Corrupt, FsckOptions, FsckReport, GcOptions, GcReport, Parent, Removal, Skipped, SweepReason,
    WrongSize,
};
pub use crate::layout::{LayoutOptions, LayoutStore, STATE_DIR};
pub use crate::lease::{Lease, LeaseInfo};
pub use crate::memory::MemoryStore;
#[cfg(feature = "object-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "object-store")))]
pub use crate::object::{Backend, BucketOptions, BucketStore};
pub use crate::traits::{
    BlobStream, BlobWriter, DEFAULT_LEASE_TTL, IngestStatus, Location, ManagedStore, Opened,
    PieceRefused, PieceWriter, PushOutcome, ReadStore, Store, TagStore, WriteStore, bytes_stream,
    collect,
};
pub use crate::util::{MAX_INGEST_KEY_LEN, MAX_TAG_LEN, validate_ingest_key, validate_tag};
pub use crate::walk::walk;
/// The `object_store` crate (feature `object-store`), for [`Backend::s3`]'s
/// `object_store::aws::AmazonS3Builder` and [`Backend::custom`]'s backends.
#[cfg(feature = "object-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "object-store")))]
pub use object_store;
pub use oci_digest::{Algorithm, Digest, PieceLayout, PieceMap};
pub use oci_manifest::DEFAULT_MAX_INDEX_DEPTH;
pub use oci_manifest::{Descriptor, Manifest};

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
