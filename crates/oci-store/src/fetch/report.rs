//! What a fetch from many sources did: [`FetchReport`], [`SourceReport`], [`BadPiece`],
//! [`MapUse`].

use std::fmt;
use std::ops::Range;

use oci_digest::Digest;

use crate::traits::PushOutcome;

/// Whether and how a piece map was used.
///
/// ```
/// let m = oci_store::MapUse::Rejected { reason: "two sources agree against it".into() };
/// assert!(matches!(m, oci_store::MapUse::Rejected { .. }));
/// assert_eq!(oci_store::MapUse::default(), oci_store::MapUse::None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MapUse {
    /// No map: pieces were checked only through the whole digest.
    #[default]
    None,
    /// A trusted map checked every piece.
    Trusted,
    /// An advisory map checked every piece; `from` names the source that offered it (`None`:
    /// the caller gave it).
    Advisory {
        /// The source that offered it.
        from: Option<String>,
    },
    /// A map was given or offered but not used, or dropped during the fetch.
    Rejected {
        /// Why.
        reason: String,
    },
}

/// What one source did for the blob (see [`FetchReport`] for an example).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SourceReport {
    /// The source's name ([`RangeSource::source_name`](crate::RangeSource::source_name)).
    pub name: String,
    /// Pieces it served that are in the blob now.
    pub pieces: u64,
    /// Bytes of those pieces.
    pub bytes: u64,
    /// Every byte received from it (pieces kept, pieces dropped, bytes skipped).
    pub bytes_fetched: u64,
    /// Attempts that failed (errors, truncated or stalled answers).
    pub failures: u64,
    /// Pieces it served with wrong bytes.
    pub bad_pieces: u64,
    /// Pieces taken over by another source while it was serving them.
    pub stolen: u64,
    /// It served a bad piece and was used afterwards only for pieces no other source could
    /// serve.
    pub quarantined: bool,
    /// Why it was not used any more for the blob, if it was dropped.
    pub dropped: Option<String>,
}

/// A piece a source served with wrong bytes (see [`FetchReport`] for an example).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BadPiece {
    /// The piece.
    pub index: u64,
    /// Its byte range in the blob.
    pub range: Range<u64>,
    /// The source's index in the list given to the fetch.
    pub source: usize,
    /// The source's name.
    pub source_name: String,
    /// The piece's SHA-256: from the map, or of the bytes that made the blob verify.
    pub expected: Digest,
    /// The SHA-256 of what the source served.
    pub actual: Digest,
}

impl fmt::Display for BadPiece {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "piece {} (bytes {}..{}) from {}: {} instead of {}",
            self.index,
            self.range.start,
            self.range.end,
            crate::util::OneLine(&self.source_name),
            self.actual,
            self.expected
        )
    }
}

/// What [`fetch_blob`](crate::fetch_blob) did (also carried by its errors, saying what was done
/// before it failed).
///
/// ```
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use oci_manifest::Descriptor;
/// use oci_store::{fetch_blob, FetchOptions, MapTrust, MapUse, MemoryStore, PieceLayout};
/// use oci_store::{PieceMap, RangeSource, WriteStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let data = Bytes::from(vec![7u8; 40_000]);
/// let desc = Descriptor::of("application/octet-stream", &data);
/// let layout = PieceLayout::new(desc.size, 4096)?;
/// let map = PieceMap::compute_with_layout(&data[..], desc.digest.clone(), layout)?;
/// let (a, b) = (MemoryStore::new(), MemoryStore::new());
/// a.push_bytes(&desc, data.clone()).await?;
/// b.push_bytes(&desc, data.clone()).await?;
/// let sources: Vec<Arc<dyn RangeSource>> = vec![Arc::new(a), Arc::new(b)];
/// let options = FetchOptions::default().with_map(map, MapTrust::Trusted);
/// let report = fetch_blob(&MemoryStore::new(), "k", &desc, &sources, &options).await?;
/// assert_eq!(report.map, MapUse::Trusted);
/// assert_eq!(report.pieces, 10);
/// for s in &report.sources {
///     println!("{}: {} pieces, {} bytes", s.name, s.pieces, s.bytes);
/// }
/// for bad in &report.bad_pieces {
///     // "piece 2 (bytes 8192..12288) from mirror: sha256:… instead of sha256:…"
///     println!("bad: {bad}");
/// }
/// assert_eq!(report.bytes_fetched, desc.size + report.bytes_refetched);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchReport {
    /// The blob.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// `Some` once the blob is in the destination (written now, or found there).
    pub outcome: Option<PushOutcome>,
    /// The piece length used.
    pub piece_length: u64,
    /// Number of pieces.
    pub pieces: u64,
    /// Pieces already held by the destination's ingest (an earlier, interrupted fetch), not
    /// fetched again.
    pub resumed_pieces: u64,
    /// One entry per source, in the order given.
    pub sources: Vec<SourceReport>,
    /// Every piece a source served with wrong bytes, with that source.
    pub bad_pieces: Vec<BadPiece>,
    /// Every byte received from every source.
    pub bytes_fetched: u64,
    /// Bytes received beyond the bytes that were missing: pieces fetched twice (bad pieces,
    /// pieces taken over, failed attempts, pieces fetched again to find a bad one) and bytes
    /// skipped before a range.
    pub bytes_refetched: u64,
    /// Of [`bytes_refetched`](Self::bytes_refetched): what requests had read of pieces another
    /// source took over (a slow source's piece read in part). How much depends on the sources'
    /// speeds, not on their content.
    pub bytes_taken_over: u64,
    /// Of [`bytes_refetched`](Self::bytes_refetched): bytes requests had read past the piece
    /// they stopped at (a bad piece, a piece taken over, a failure) or past their range. A
    /// stream delivers what it holds, up to one read buffer (about 400 KiB over HTTP), so each
    /// stopped request may cost that much on top of its piece.
    pub bytes_read_ahead: u64,
    /// The piece map, if one was used.
    pub map: MapUse,
}

impl FetchReport {
    pub(crate) fn new(digest: Digest, size: u64, names: Vec<String>) -> FetchReport {
        FetchReport {
            digest,
            size,
            outcome: None,
            piece_length: 0,
            pieces: 0,
            resumed_pieces: 0,
            sources: names
                .into_iter()
                .map(|name| SourceReport {
                    name,
                    ..SourceReport::default()
                })
                .collect(),
            bad_pieces: Vec::new(),
            bytes_fetched: 0,
            bytes_refetched: 0,
            bytes_taken_over: 0,
            bytes_read_ahead: 0,
            map: MapUse::None,
        }
    }
}
