//! OCI content digests: parsed strictly, hashed at hardware speed, verified while streaming.
//!
//! - [`Digest`]: a validated `algorithm:encoded` string (OCI image-spec grammar; `sha256` and
//!   `sha512` need lowercase hex of their exact length), safe as a path component.
//! - [`Algorithm`]: the registered algorithms.
//! - [`Digester`]: incremental hashing whose state can be saved and restored, so a transfer can
//!   resume without hashing again what it already has.
//! - [`Verifier`] and its wrappers [`VerifyingReader`], [`VerifyingWriter`],
//!   `VerifyingStream` (feature `stream`, on by default) and `VerifyingAsyncReader` (feature
//!   `tokio`): check both size and digest as bytes pass. Too many bytes is an error at once; too
//!   few or a wrong digest is an error at the end, naming the expected and actual digest.
//! - [`PieceMap`]: the SHA-256 of each fixed-size piece of a blob ([`PieceLayout`]), built only
//!   from content that verified ([`PieceMapBuilder`]), with a versioned JSON form
//!   ([`PIECE_MAP_MEDIA_TYPE`]) whose parser refuses maps that cannot describe their blob; used
//!   to check pieces of a blob fetched from several sources long before its whole digest can.
//!
//! With the feature `oci-spec`, a [`Digest`] converts into an `oci_spec::image::Digest`
//! (`From`), and back (`TryFrom`, failing with [`ParseDigestError`] for what oci-spec accepts
//! and this crate cannot verify, such as `sha384` or `multihash+base58`).
//!
//! ```
//! use std::io::Read;
//! use oci_digest::{Algorithm, Digest, VerifyingReader};
//!
//! let layer = b"some layer bytes".to_vec();
//! let pinned: Digest = Algorithm::Sha256.hash(&layer).to_string().parse()?;
//!
//! let mut reader = VerifyingReader::new(&layer[..], pinned, layer.len() as u64);
//! std::io::copy(&mut reader, &mut std::io::sink())?;
//! assert!(reader.verified().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod algorithm;
mod digest;
mod digester;
mod error;
#[cfg(feature = "oci-spec")]
mod interop;
mod piece;
#[cfg(feature = "stream")]
mod stream;
#[cfg(feature = "tokio")]
mod tokio_io;
mod verify;

pub use crate::algorithm::Algorithm;
pub use crate::digest::Digest;
pub use crate::digester::{Digester, STATE_VERSION};
pub use crate::error::{MAX_ERROR_INPUT, ParseDigestError, StateError, VerifyError};
pub use crate::piece::{
    PIECE_MAP_MEDIA_TYPE, PieceLayout, PieceMap, PieceMapBuilder, PieceMapError,
};
#[cfg(feature = "stream")]
pub use crate::stream::VerifyingStream;
#[cfg(feature = "tokio")]
pub use crate::tokio_io::VerifyingAsyncReader;
pub use crate::verify::{Verified, Verifier, VerifyingReader, VerifyingWriter};

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
