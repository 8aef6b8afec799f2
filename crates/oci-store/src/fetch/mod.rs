//! One blob fetched in pieces from many sources at once, every piece checked, a bad piece
//! fetched again elsewhere and its source named; the whole digest is always the final check.
//!
//! - [`RangeSource`]: anything that serves a byte range of a blob (the local stores here, a
//!   registry repository or mirror through its range `GET`, any [`ReadStore`](crate::ReadStore)
//!   through [`StoreSource`]).
//! - [`fetch_blob`]: fetches the blob into a destination store's [`PieceWriter`]
//!   ([`WriteStore::piece_writer`]) under an ingest key, so a fetch that stops (an error, a
//!   crash, a cancel) is resumed by the next with only the pieces still missing.
//!
//! See [`fetch_blob`] for how it goes.

mod attempt;
mod error;
mod locate;
mod options;
mod pieceset;
mod report;
mod run;
mod source;

use crate::util::OneLine;
use std::sync::{Arc, Mutex};

use oci_digest::{PieceLayout, PieceMapError};
use oci_manifest::Descriptor;
use tokio::sync::Notify;

pub use self::error::{ContestedPiece, FetchError, UnservablePiece};
pub use self::options::{FetchEvent, FetchEventFn, FetchOptions, MapTrust};
pub(crate) use self::pieceset::PieceSet;
pub use self::report::{BadPiece, FetchReport, MapUse, SourceReport};
pub use self::source::{RangeAnswer, RangeSource, StoreSource};

use self::locate::Located;
use self::run::{Fetch, Phase, Sched};
use crate::error::StoreError;
use crate::traits::{PushOutcome, WriteStore};

/// Most sources one fetch takes.
///
/// ```
/// assert_eq!(oci_store::MAX_SOURCES, 64);
/// ```
pub const MAX_SOURCES: usize = 64;

/// Fetches the blob `desc` from `sources` into `dst`, in pieces, through the resumable ingest
/// `key`. Sources are listed in order of trust, the most trusted (the origin) last: without a
/// map, a mismatch is looked for first in what the least trusted served.
///
/// How it goes:
///
/// - **Pieces**: the blob is cut by its [`PieceMap`](oci_digest::PieceMap)'s layout, or by
///   [`PieceLayout::for_size`] without a map. One worker per source connection takes the lowest
///   missing pieces from a shared queue, a run of adjacent ones in one ranged request (the
///   missing pieces shared out over the connections, at most [`FetchOptions::max_request`]
///   bytes), so a faster source serves more of them. The answer is read as it streams; each
///   piece is checked, written and completed as it arrives.
/// - **Slow and stalled sources**: a source with nothing left to take first takes the back part
///   of another source's run that its request has not reached yet (as much as the two sources'
///   rates say it finishes sooner; the owner's request stops before it), then takes over a
///   piece another source has sent nothing of for [`FetchOptions::steal_check`], or is much
///   slower with (its rate so far against the taker's); the slow one stops at once and takes
///   over nothing itself afterwards. What a stopped request had read is reported
///   ([`FetchReport::bytes_taken_over`], [`FetchReport::bytes_read_ahead`]).
///   A stalled source thus holds up only the piece it is on. An attempt that receives nothing
///   for [`FetchOptions::idle_timeout`] is given up. Errors are retried on other sources; a
///   source that fails several times in a row, or does not have the blob, is dropped for this
///   blob.
/// - **With a map** (trusted, or advisory when a source offered it): every piece is hashed as
///   it arrives and checked; a bad piece is fetched elsewhere and its source quarantined (used
///   only for pieces no other source can serve). An advisory map that two sources contradict the
///   same way, or that no source matches, is dropped, and the fetch goes on without it.
/// - **Without a map** (the default: no second hash of every byte): when the whole digest does
///   not match, the pieces of one suspect source at a time (the least trusted first: list the
///   sources in order of trust, the origin last) are fetched again from the most trusted other
///   source and compared; the blob is checked after each source. Sources that disagree with no
///   single replacement verifying are resolved by trying combinations of their versions (a
///   bounded number), the whole digest checking each.
/// - **Never a wrong blob**: the destination's writer verifies the whole content before it
///   becomes visible, whatever maps and sources said.
///
/// The [`FetchReport`] gives each source's pieces and bytes, each bad piece with its source, and
/// the bytes fetched twice.
///
/// When `dst` already has the blob, nothing is fetched ([`FetchReport::outcome`] is
/// [`PushOutcome::AlreadyExists`]).
///
/// # Errors
/// [`FetchError::NoSources`], [`FetchError::TooManySources`]; [`FetchError::Map`] when a trusted
/// map is for another blob; [`FetchError::Unservable`] naming the pieces no source could serve;
/// [`FetchError::Unresolved`] when, without a map, the blob does not verify and the bad pieces
/// cannot be told apart; [`FetchError::Store`] for the destination's failures (a destination
/// without piece writers: [`StoreError::Unsupported`]); [`FetchError::Cancelled`]. Whatever the
/// error, nothing unverified is visible and the pieces fetched stay in the ingest.
///
/// ```
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use oci_manifest::Descriptor;
/// use oci_store::{fetch_blob, FetchOptions, MemoryStore, RangeSource, ReadStore, WriteStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let data = Bytes::from((0..3_000_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
/// let desc = Descriptor::of("application/vnd.oci.image.layer.v1.tar", &data);
/// let (a, b) = (MemoryStore::new(), MemoryStore::new());
/// a.push_bytes(&desc, data.clone()).await?;
/// b.push_bytes(&desc, data.clone()).await?;
///
/// let dst = MemoryStore::new();
/// let sources: Vec<Arc<dyn RangeSource>> = vec![Arc::new(a), Arc::new(b)];
/// let report = fetch_blob(&dst, "fetch-1", &desc, &sources, &FetchOptions::default()).await?;
/// assert_eq!(report.pieces, 3); // 1 MiB pieces
/// assert_eq!(report.sources.iter().map(|s| s.pieces).sum::<u64>(), 3);
/// assert!(report.bad_pieces.is_empty());
/// assert_eq!(dst.fetch_bytes(&desc, u64::MAX).await?, data);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn fetch_blob<W: WriteStore + ?Sized>(
    dst: &W,
    key: &str,
    desc: &Descriptor,
    sources: &[Arc<dyn RangeSource>],
    options: &FetchOptions,
) -> Result<FetchReport, FetchError> {
    let digest = desc.digest.clone();
    if sources.is_empty() {
        return Err(FetchError::NoSources { digest });
    }
    if sources.len() > MAX_SOURCES {
        return Err(FetchError::TooManySources {
            digest,
            count: sources.len(),
            max: MAX_SOURCES,
        });
    }
    let names: Vec<String> = sources.iter().map(|s| s.source_name()).collect();
    let mut report = FetchReport::new(digest.clone(), desc.size, names.clone());
    let store_err = |source: StoreError, report: &FetchReport| FetchError::Store {
        digest: digest.clone(),
        source,
        report: Box::new(report.clone()),
    };

    // The map: given (checked against the blob), or offered by a source when asked.
    let (map, map_use) = match &options.map {
        Some((m, trust)) => match (m.check_for(&desc.digest, desc.size), trust) {
            (Ok(()), MapTrust::Trusted) => (Some((m.clone(), *trust)), MapUse::Trusted),
            (Ok(()), _) => (Some((m.clone(), *trust)), MapUse::Advisory { from: None }),
            (Err(source), MapTrust::Trusted) => {
                return Err(FetchError::Map { digest, source });
            }
            (Err(e), _) => (
                None,
                MapUse::Rejected {
                    reason: e.to_string(),
                },
            ),
        },
        None if options.ask_sources_for_maps => source_map(desc, sources, &names).await,
        None => (None, MapUse::None),
    };
    let layout = match (&map, options.layout) {
        (Some((m, _)), _) => m.layout(),
        (None, Some(l)) if l.size() == desc.size => l,
        (None, Some(l)) => {
            return Err(FetchError::Map {
                digest: digest.clone(),
                source: PieceMapError::WrongBlob {
                    expected: digest.clone(),
                    expected_size: desc.size,
                    found: digest,
                    found_size: l.size(),
                },
            });
        }
        (None, None) => PieceLayout::for_size(desc.size).map_err(|source| FetchError::Map {
            digest: digest.clone(),
            source,
        })?,
    };
    report.piece_length = layout.piece_length();
    report.pieces = layout.count();
    report.map = map_use.clone();

    match dst.stat(&desc.digest).await {
        Ok(Some(size)) if size == desc.size => {
            report.outcome = Some(PushOutcome::AlreadyExists);
            return Ok(report);
        }
        Ok(_) => {}
        Err(e) => return Err(store_err(e, &report)),
    }
    let writer = dst
        .piece_writer(key, desc, layout)
        .await
        .map_err(|e| store_err(e, &report))?;
    let max_skip = options.max_skip.unwrap_or(layout.piece_length());
    let fetch = Fetch {
        desc,
        layout,
        sources,
        names,
        writer: &*writer,
        options,
        max_skip,
        st: Mutex::new(Sched::new(&layout, sources.len(), map, map_use)),
        changed: Notify::new(),
    };
    let res = fetch.run().await;
    let mut report = fetch.report(report);
    drop(fetch);
    match res {
        Ok(()) => {}
        Err(Ending::Store(e)) => return Err(store_err(*e, &report)),
        Err(Ending::Cancelled) => {
            return Err(FetchError::Cancelled {
                digest,
                report: Box::new(report),
            });
        }
        Err(Ending::Unservable(pieces)) => {
            return Err(FetchError::Unservable {
                digest,
                pieces,
                report: Box::new(report),
            });
        }
        Err(Ending::Unresolved(contested)) => {
            return Err(FetchError::Unresolved {
                digest,
                contested,
                report: Box::new(report),
            });
        }
    }
    match writer.commit().await {
        Ok(outcome) => {
            report.outcome = Some(outcome);
            tracing::info!(%digest, pieces = report.pieces, bad = report.bad_pieces.len(), refetched = report.bytes_refetched, "fetched from {} sources", sources.len());
            Ok(report)
        }
        Err(e) => Err(store_err(e, &report)),
    }
}

/// The first piece map a source offers that fits the blob (advisory).
async fn source_map(
    desc: &Descriptor,
    sources: &[Arc<dyn RangeSource>],
    names: &[String],
) -> (Option<(oci_digest::PieceMap, MapTrust)>, MapUse) {
    let mut refused = None;
    for (s, name) in sources.iter().zip(names) {
        match s.piece_map(desc).await {
            Ok(Some(m)) => match m.check_for(&desc.digest, desc.size) {
                Ok(()) => {
                    return (
                        Some((m, MapTrust::Advisory)),
                        MapUse::Advisory {
                            from: Some(name.clone()),
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(source = %OneLine(name), error = %e, "piece map offered for another blob");
                    refused = Some(format!("{} offered {e}", OneLine(name)));
                }
            },
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(source = %OneLine(name), error = %crate::error::error_chain(&e), "no piece map from this source");
            }
        }
    }
    (
        None,
        refused.map_or(MapUse::None, |reason| MapUse::Rejected { reason }),
    )
}

/// How a fetch that did not store the blob ended.
enum Ending {
    Store(Box<StoreError>),
    Cancelled,
    Unservable(Vec<UnservablePiece>),
    Unresolved(Vec<ContestedPiece>),
}

impl Fetch<'_> {
    /// Resumes from the writer's pieces, fetches the rest, verifies (and locates bad pieces
    /// without a map); `Ok` when the writer verified and may commit.
    async fn run(&self) -> Result<(), Ending> {
        self.resume()
            .await
            .map_err(|e| Ending::Store(Box::new(e)))?;
        self.run_workers().await;
        self.ended()?;
        self.emit(FetchEvent::Verifying);
        match self.writer.verify().await {
            Ok(_) => return Ok(()),
            Err(StoreError::Verify(e)) => {
                tracing::warn!(digest = %self.desc.digest, error = %e, "the blob did not verify; locating the bad pieces");
            }
            Err(e) => return Err(Ending::Store(Box::new(e))),
        }
        // Every piece matched a map, yet the whole does not: the map is wrong.
        let rejected = {
            let mut st = self.sched();
            if st.map.is_some() {
                st.map = None;
                let reason =
                    "every piece matched the map, but the whole blob did not verify".to_owned();
                st.map_use = MapUse::Rejected {
                    reason: reason.clone(),
                };
                Some(reason)
            } else {
                None
            }
        };
        if let Some(reason) = rejected {
            self.emit(FetchEvent::MapRejected { reason });
        }
        self.emit(FetchEvent::Locating);
        match self
            .locate()
            .await
            .map_err(|e| Ending::Store(Box::new(e)))?
        {
            Located::Verified => {
                self.ended()?;
                Ok(())
            }
            Located::Missing => {
                self.ended()?;
                Err(Ending::Unservable(self.unservable()))
            }
            Located::Unresolved => {
                self.ended()?;
                Err(Ending::Unresolved(self.contested()))
            }
        }
    }

    /// After the workers: a fatal error, a cancel, or pieces no source could serve.
    fn ended(&self) -> Result<(), Ending> {
        if let Some(e) = self.sched().fatal.take() {
            return Err(Ending::Store(Box::new(e)));
        }
        if self.cancelled() {
            return Err(Ending::Cancelled);
        }
        let unservable = self.unservable();
        if !unservable.is_empty() {
            return Err(Ending::Unservable(unservable));
        }
        Ok(())
    }

    /// Takes the pieces the writer holds from an earlier fetch (dropping those that do not
    /// match the map).
    async fn resume(&self) -> Result<(), StoreError> {
        let held = self.writer.held();
        let map = self.sched().map.clone();
        for i in held {
            let digest = match &map {
                Some((m, _)) => {
                    let d = self.writer.piece_digest(i).await?;
                    if m.check_piece_digest(i, &d).is_err() {
                        tracing::warn!(digest = %self.desc.digest, piece = i, "a piece kept from an earlier fetch does not match the map; fetching it again");
                        self.writer.discard_piece(i).await?;
                        continue;
                    }
                    Some(d)
                }
                None => None,
            };
            let mut st = self.sched();
            if let Some(d) = digest {
                st.held_digest.insert(i, d);
            }
            if let Some(p) = st.piece(i) {
                p.phase = Phase::Held;
            }
        }
        Ok(())
    }

    /// The pieces not held, with what went wrong with each.
    fn unservable(&self) -> Vec<UnservablePiece> {
        let st = self.sched();
        st.pieces
            .iter()
            .enumerate()
            .filter(|(_, p)| !matches!(p.phase, Phase::Held))
            .map(|(i, p)| UnservablePiece {
                index: i as u64,
                range: self.range(i as u64),
                failures: p
                    .failures
                    .iter()
                    .map(|(s, why)| (self.names[*s].clone(), why.clone()))
                    .collect(),
            })
            .collect()
    }

    /// The pieces sources disagree about.
    fn contested(&self) -> Vec<ContestedPiece> {
        let st = self.sched();
        st.versions
            .iter()
            .filter(|(_, vs)| vs.len() >= 2)
            .map(|(i, vs)| ContestedPiece {
                index: *i,
                range: self.range(*i),
                versions: vs
                    .iter()
                    .map(|v| {
                        (
                            v.digest.clone(),
                            (0..self.names.len())
                                .filter(|s| v.sources & (1 << s) != 0)
                                .map(|s| self.names[s].clone())
                                .collect(),
                        )
                    })
                    .collect(),
            })
            .collect()
    }

    /// The report: each source's work, each bad piece (a version that is not the good one:
    /// the map's, or the held one when the blob verified), the bytes fetched twice.
    fn report(&self, mut report: FetchReport) -> FetchReport {
        let st = self.sched();
        report.map = st.map_use.clone();
        report.resumed_pieces = st
            .pieces
            .iter()
            .filter(|p| matches!(p.phase, Phase::Held) && p.supplier.is_none())
            .count() as u64;
        report.bytes_fetched = st.bytes_fetched;
        let fresh: u64 = st
            .pieces
            .iter()
            .enumerate()
            .filter(|(_, p)| matches!(p.phase, Phase::Held) && p.supplier.is_some())
            .map(|(i, _)| self.layout.len_of(i as u64))
            .sum();
        report.bytes_refetched = st.bytes_fetched.saturating_sub(fresh);
        report.bytes_taken_over = st.bytes_taken_over.min(report.bytes_refetched);
        report.bytes_read_ahead = st
            .bytes_read_ahead
            .min(report.bytes_refetched - report.bytes_taken_over);
        for (s, r) in report.sources.iter_mut().enumerate() {
            let src = &st.sources[s];
            r.pieces = st
                .pieces
                .iter()
                .filter(|p| matches!(p.phase, Phase::Held) && p.supplier == Some(s))
                .count() as u64;
            r.bytes = st
                .pieces
                .iter()
                .enumerate()
                .filter(|(_, p)| matches!(p.phase, Phase::Held) && p.supplier == Some(s))
                .map(|(i, _)| self.layout.len_of(i as u64))
                .sum();
            r.bytes_fetched = src.fetched;
            r.failures = src.failures;
            r.stolen = src.stolen;
            r.quarantined = src.quarantined;
            r.dropped = src.dropped.clone();
        }
        let all_held = st.pieces.iter().all(|p| matches!(p.phase, Phase::Held));
        for (&i, vs) in &st.versions {
            let good = match &st.map {
                Some((m, _)) => m.piece_digest(i),
                None if all_held => st.held_digest.get(&i).cloned(),
                None => None,
            };
            let Some(good) = good else { continue };
            for v in vs.iter().filter(|v| v.digest != good) {
                for s in (0..self.names.len()).filter(|s| v.sources & (1 << s) != 0) {
                    report.bad_pieces.push(BadPiece {
                        index: i,
                        range: self.range(i),
                        source: s,
                        source_name: self.names[s].clone(),
                        expected: good.clone(),
                        actual: v.digest.clone(),
                    });
                    report.sources[s].bad_pieces += 1;
                }
            }
        }
        report
    }
}
