//! How a fetch from many sources runs: [`FetchOptions`], [`MapTrust`], [`FetchEvent`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use oci_digest::{PieceLayout, PieceMap};

use crate::copy::CancelToken;

/// How far a piece map is believed.
///
/// ```
/// use oci_store::{FetchOptions, MapTrust, PieceLayout, PieceMap};
/// let data = vec![1u8; 5000];
/// let d = oci_store::Algorithm::Sha256.hash(&data);
/// let map = PieceMap::compute_with_layout(&data[..], d, PieceLayout::new(5000, 4096)?)?;
/// let o = FetchOptions::default().with_map(map, MapTrust::Advisory);
/// assert!(matches!(o.map, Some((_, MapTrust::Advisory))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MapTrust {
    /// Made from verified content by someone trusted (a local store that holds the blob): a
    /// piece that does not match it is bad, and its source is quarantined for the blob.
    Trusted,
    /// Offered by a source or a peer: a piece that does not match it is fetched elsewhere, and
    /// when two sources agree against the map (or no source matches it), the map is dropped and
    /// the fetch goes on without it. It can cost refetches, never a wrong blob.
    Advisory,
}

/// Something that happened during a fetch, for progress displays (bytes per source) and for
/// tests that act on events rather than on time. Sources are named by their index in the list
/// given to [`fetch_blob`](crate::fetch_blob).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use oci_store::{FetchEvent, FetchOptions};
///
/// // Bytes per source, for a progress display.
/// let per_source = Arc::new(Mutex::new(vec![0u64; 3]));
/// let p = per_source.clone();
/// let options = FetchOptions::default().with_events(Arc::new(move |e: &FetchEvent| {
///     if let FetchEvent::Received { source, bytes } = e {
///         p.lock().unwrap()[*source] += bytes;
///     }
/// }));
/// (options.on_event.as_ref().unwrap())(&FetchEvent::Received { source: 1, bytes: 10 });
/// assert_eq!(per_source.lock().unwrap()[1], 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchEvent {
    /// Bytes arrived from a source (also those a fetch drops: skipped, refetched).
    Received {
        /// The source.
        source: usize,
        /// How many.
        bytes: u64,
    },
    /// A piece was written whole and completed (held; a layout records its pieces durably in
    /// batches, see [`PieceWriter::complete_piece`](crate::PieceWriter::complete_piece)).
    PieceDone {
        /// The source that served it.
        source: usize,
        /// The piece.
        index: u64,
    },
    /// A piece from a source did not match the piece map.
    BadPiece {
        /// The source that served it.
        source: usize,
        /// The piece.
        index: u64,
    },
    /// A source's piece was given to another source (it stalled, or is much slower).
    Stolen {
        /// The source that lost the piece.
        from: usize,
        /// The source that takes it.
        to: usize,
        /// The piece.
        index: u64,
    },
    /// A source is used for this blob no more (or only for pieces no other source can serve,
    /// when quarantined).
    SourceDropped {
        /// The source.
        source: usize,
        /// Why.
        reason: String,
    },
    /// The advisory piece map was dropped.
    MapRejected {
        /// Why.
        reason: String,
    },
    /// Every piece is held; the whole digest is being checked.
    Verifying,
    /// The whole digest did not match: looking for the bad pieces.
    Locating,
}

/// Receives [`FetchEvent`]s (called from the fetch's task: keep it short). See
/// [`FetchEvent`] for an example.
pub type FetchEventFn = Arc<dyn Fn(&FetchEvent) + Send + Sync>;

/// Options of [`fetch_blob`](crate::fetch_blob).
///
/// ```
/// use std::time::Duration;
/// let o = oci_store::FetchOptions::default()
///     .with_connections_per_source(4)
///     .with_idle_timeout(Some(Duration::from_secs(10)));
/// assert_eq!(o.connections_per_source, 4);
/// assert!(o.map.is_none());
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct FetchOptions {
    /// A piece map of the blob and how far it is believed. `None` (the default): no piece is
    /// checked before the whole digest (a mismatch then is located by fetching again, from
    /// other sources, the pieces of suspect sources).
    pub map: Option<(PieceMap, MapTrust)>,
    /// Ask the sources for a piece map ([`RangeSource::piece_map`](crate::RangeSource)) when
    /// none is given; the first that fits the blob is used, as [`MapTrust::Advisory`]. Off by
    /// default.
    pub ask_sources_for_maps: bool,
    /// The piece layout when there is no map; default [`PieceLayout::for_size`].
    pub layout: Option<PieceLayout>,
    /// Requests at a time per source (default 2).
    pub connections_per_source: usize,
    /// Most bytes one request asks for (default 16 MiB). A source takes a run of adjacent
    /// missing pieces in one ranged request, read as it streams, each piece checked and
    /// completed as it arrives; the runs shrink toward the end of the blob (the missing pieces
    /// shared out over the connections), and another source takes over at once the pieces of a
    /// run its request has not reached yet, so a stalled source holds up only its active piece.
    /// At most one piece when lower than the piece length.
    pub max_request: u64,
    /// Failed attempts of one source at one piece before it is not asked for that piece again
    /// (default 2).
    pub max_attempts_per_piece: u32,
    /// Failures of a source in a row before it is dropped for the blob (default 4).
    pub max_failures_in_a_row: u32,
    /// How long an attempt may go without receiving a byte before it is given up (default
    /// 30 s; `None`: no limit, for sources that bound their own transfers, as a registry
    /// client with a minimum rate does).
    pub idle_timeout: Option<Duration>,
    /// How often an idle source looks again whether another source's piece is worth taking over
    /// (default 250 ms). A piece whose source has sent nothing of it yet is taken over once it
    /// has waited this long (sooner would mostly waste a request that just went out); a piece
    /// under way, when the idle source would finish it well before its source.
    pub steal_check: Duration,
    /// Pause before a source that just failed takes another piece (default 50 ms).
    pub retry_delay: Duration,
    /// Most bytes dropped before a range's start when a source answers with the whole content
    /// (default: one piece); a source that would need more serves only the pieces near the
    /// start.
    pub max_skip: Option<u64>,
    /// Most combinations of piece versions tried when, without a map, the whole digest fails
    /// and sources disagree about several pieces (default 64).
    pub max_combinations: usize,
    /// Stops the fetch (the ingest stays, so a later fetch resumes).
    pub cancel: Option<CancelToken>,
    /// Receives progress events.
    pub on_event: Option<FetchEventFn>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            map: None,
            ask_sources_for_maps: false,
            layout: None,
            connections_per_source: 2,
            max_request: 16 << 20,
            max_attempts_per_piece: 2,
            max_failures_in_a_row: 4,
            idle_timeout: Some(Duration::from_secs(30)),
            steal_check: Duration::from_millis(250),
            retry_delay: Duration::from_millis(50),
            max_skip: None,
            max_combinations: 64,
            cancel: None,
            on_event: None,
        }
    }
}

impl FetchOptions {
    /// These options with a piece map.
    pub fn with_map(mut self, map: PieceMap, trust: MapTrust) -> Self {
        self.map = Some((map, trust));
        self
    }

    /// These options asking the sources for a piece map.
    pub fn with_source_maps(mut self, ask: bool) -> Self {
        self.ask_sources_for_maps = ask;
        self
    }

    /// These options with a piece layout for fetches without a map.
    pub fn with_layout(mut self, layout: PieceLayout) -> Self {
        self.layout = Some(layout);
        self
    }

    /// These options with `n` requests at a time per source (at least 1).
    pub fn with_connections_per_source(mut self, n: usize) -> Self {
        self.connections_per_source = n.max(1);
        self
    }

    /// These options with requests of at most `bytes` (a run of adjacent pieces; one piece
    /// when lower than the piece length).
    ///
    /// ```
    /// let o = oci_store::FetchOptions::default().with_max_request(0);
    /// assert_eq!(o.max_request, 0); // one piece a request
    /// ```
    pub fn with_max_request(mut self, bytes: u64) -> Self {
        self.max_request = bytes;
        self
    }

    /// These options with another idle timeout.
    pub fn with_idle_timeout(mut self, t: Option<Duration>) -> Self {
        self.idle_timeout = t;
        self
    }

    /// These options with another pause after a failure.
    pub fn with_retry_delay(mut self, d: Duration) -> Self {
        self.retry_delay = d;
        self
    }

    /// These options with a cancel token.
    pub fn with_cancel(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// These options with an event receiver.
    pub fn with_events(mut self, f: FetchEventFn) -> Self {
        self.on_event = Some(f);
        self
    }
}

impl fmt::Debug for FetchOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchOptions")
            .field("map", &self.map)
            .field("ask_sources_for_maps", &self.ask_sources_for_maps)
            .field("layout", &self.layout)
            .field("connections_per_source", &self.connections_per_source)
            .field("max_request", &self.max_request)
            .field("max_attempts_per_piece", &self.max_attempts_per_piece)
            .field("max_failures_in_a_row", &self.max_failures_in_a_row)
            .field("idle_timeout", &self.idle_timeout)
            .field("steal_check", &self.steal_check)
            .field("retry_delay", &self.retry_delay)
            .field("max_skip", &self.max_skip)
            .field("max_combinations", &self.max_combinations)
            .field("cancel", &self.cancel.is_some())
            .field("on_event", &self.on_event.is_some())
            .finish()
    }
}
