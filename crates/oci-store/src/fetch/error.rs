//! How a fetch from many sources fails: [`FetchError`].

use std::fmt;
use std::ops::Range;

use oci_digest::{Digest, PieceMapError};

use super::report::FetchReport;
use crate::error::StoreError;

/// A piece no source could serve, with what each source did when asked (see [`FetchError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnservablePiece {
    /// The piece.
    pub index: u64,
    /// Its byte range.
    pub range: Range<u64>,
    /// `(source name, what went wrong)`, one entry per failed attempt (the last few).
    pub failures: Vec<(String, String)>,
}

/// A piece sources disagree about, when no combination of their versions made the blob verify
/// (see [`FetchError::Unresolved`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContestedPiece {
    /// The piece.
    pub index: u64,
    /// Its byte range.
    pub range: Range<u64>,
    /// Each version seen (its SHA-256) with the names of the sources that served it.
    pub versions: Vec<(Digest, Vec<String>)>,
}

/// Why [`fetch_blob`](crate::fetch_blob) did not store the blob. Nothing wrong is ever visible:
/// the ingest stays with the pieces held, so a later fetch (with other sources, or once they
/// are fixed) fetches only what is missing.
///
/// ```
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use oci_manifest::Descriptor;
/// use oci_store::{fetch_blob, FetchError, FetchOptions, MemoryStore, RangeSource, ReadStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let data = Bytes::from_static(b"not held by the source");
/// let desc = Descriptor::of("application/octet-stream", &data);
/// let empty: Vec<Arc<dyn RangeSource>> = vec![Arc::new(MemoryStore::new())];
/// let dst = MemoryStore::new();
/// let e = fetch_blob(&dst, "k", &desc, &empty, &FetchOptions::default()).await.unwrap_err();
/// assert!(matches!(e, FetchError::Unservable { .. }));
/// assert_eq!(e.unservable_pieces(), vec![0]);
/// assert!(e.to_string().contains("does not have the blob") || e.report().is_some());
/// assert!(!dst.exists(&desc.digest).await?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The fetch was given no source.
    #[error("no source to fetch {digest} from")]
    NoSources {
        /// The blob.
        digest: Digest,
    },
    /// More sources than a fetch handles.
    #[error("{count} sources for {digest}: at most {max} are supported")]
    TooManySources {
        /// The blob.
        digest: Digest,
        /// Sources given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The trusted piece map given is not for this blob, or no piece layout fits the blob.
    #[error("piece map or layout refused for {digest}")]
    Map {
        /// The blob.
        digest: Digest,
        /// Why.
        #[source]
        source: PieceMapError,
    },
    /// Some pieces could not be fetched from any source (each failed, served wrong bytes, or
    /// was dropped). The pieces fetched are kept in the ingest.
    #[error("no source could serve {} of the {} pieces of {digest}: {}", pieces.len(), report.pieces, list_pieces(pieces))]
    Unservable {
        /// The blob.
        digest: Digest,
        /// The pieces, with what each source did.
        pieces: Vec<UnservablePiece>,
        /// What was done.
        report: Box<FetchReport>,
    },
    /// Without a trusted map, the whole blob did not verify and the bad pieces could not be
    /// told apart from the good ones (one source only; or sources that disagree with no
    /// combination of their versions verifying within the limit).
    #[error(
        "{digest} did not verify and the bad pieces could not be located ({})",
        describe_contested(contested)
    )]
    Unresolved {
        /// The blob.
        digest: Digest,
        /// The pieces sources disagree about (empty: no piece had a second source).
        contested: Vec<ContestedPiece>,
        /// What was done.
        report: Box<FetchReport>,
    },
    /// The destination failed (opening the writer, writing, committing).
    #[error("storing {digest} failed")]
    Store {
        /// The blob.
        digest: Digest,
        /// The store's error.
        #[source]
        source: StoreError,
        /// What was done.
        report: Box<FetchReport>,
    },
    /// The fetch was cancelled.
    #[error("fetching {digest} was cancelled")]
    Cancelled {
        /// The blob.
        digest: Digest,
        /// What was done.
        report: Box<FetchReport>,
    },
}

impl FetchError {
    /// What was done before the failure, when the fetch started.
    pub fn report(&self) -> Option<&FetchReport> {
        match self {
            FetchError::Unservable { report, .. }
            | FetchError::Unresolved { report, .. }
            | FetchError::Store { report, .. }
            | FetchError::Cancelled { report, .. } => Some(report),
            _ => None,
        }
    }

    /// The indexes of the pieces no source could serve (empty for other errors).
    pub fn unservable_pieces(&self) -> Vec<u64> {
        match self {
            FetchError::Unservable { pieces, .. } => pieces.iter().map(|p| p.index).collect(),
            _ => Vec::new(),
        }
    }
}

/// The first pieces of a list, for a message.
fn list_pieces(pieces: &[UnservablePiece]) -> String {
    let mut s = String::new();
    for (i, p) in pieces.iter().take(10).enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&p.index.to_string());
        if let Some((src, why)) = p.failures.last() {
            s.push_str(&format!(
                " ({}: {})",
                crate::util::OneLine(src),
                crate::util::OneLine(why)
            ));
        }
    }
    if pieces.len() > 10 {
        s.push_str(&format!(", and {} more", pieces.len() - 10));
    }
    s
}

fn describe_contested(c: &[ContestedPiece]) -> String {
    if c.is_empty() {
        return "no piece had a second source to compare with".to_owned();
    }
    let mut s = String::from("sources disagree about piece");
    if c.len() > 1 {
        s.push('s');
    }
    for (i, p) in c.iter().take(10).enumerate() {
        s.push_str(if i == 0 { " " } else { ", " });
        s.push_str(&p.index.to_string());
    }
    if c.len() > 10 {
        s.push_str(&format!(" and {} more", c.len() - 10));
    }
    s
}

impl fmt::Display for UnservablePiece {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "piece {} (bytes {}..{})",
            self.index, self.range.start, self.range.end
        )?;
        for (src, why) in &self.failures {
            write!(
                f,
                "; {}: {}",
                crate::util::OneLine(src),
                crate::util::OneLine(why)
            )?;
        }
        Ok(())
    }
}
