//! Blobs fetched in pieces from several sources ([`CopyOptions::blob_sources`]) through
//! [`fetch_blob`]: the transfer of one blob when the copy has two or more blob sources and the
//! destination takes pieces.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use oci_digest::{Digest, PieceLayout};

use super::CopySide::Source;
use super::error::Fault;
use super::plan::{Node, strip};
use super::progress::ProgressEvent;
use super::run::{Done, Run, write_fault};
use crate::error::StoreError;
use crate::fetch::{FetchError, FetchEvent, fetch_blob};
use crate::traits::{ReadStore, Store, TagStore};

#[cfg(doc)]
use super::CopyOptions;

/// The ingest key a copy uses for a blob it fetches in pieces (not the stream's
/// [`ingest_key`](super::ingest_key): the two ingests hold bytes in different ways).
fn pieces_key(digest: &Digest) -> String {
    format!("copy-pieces-{digest}")
}

impl<S, D> Run<'_, S, D>
where
    S: ReadStore + TagStore + ?Sized,
    D: Store + ?Sized,
{
    /// Fetches the blob of `node` in pieces from the blob sources into the destination; `None`
    /// when the destination takes no pieces (the caller streams the blob instead).
    pub(super) async fn fetch_pieces(&self, node: &Node) -> Option<Result<Done, Fault>> {
        let desc = strip(&node.target);
        let mut options = self.options.fetch.clone();
        if options.map.is_none()
            && let Some(found) = self.fetch_maps.get(&desc.digest)
        {
            options.map = Some(found.clone());
        }
        if options.cancel.is_none() {
            options.cancel = self.options.cancel.clone();
        }
        // The layout the fetch will use, for counting pieces as progress.
        let layout = match &options.map {
            Some((m, _)) if m.check_for(&desc.digest, desc.size).is_ok() => Some(m.layout()),
            _ => options
                .layout
                .filter(|l| l.size() == desc.size)
                .or_else(|| PieceLayout::for_size(desc.size).ok()),
        };
        let names = self
            .options
            .blob_sources
            .iter()
            .map(|s| s.source_name())
            .collect();
        let counted = layout.map(|layout| {
            let (events, counted) = self.meter.piece_events(&desc, layout, names);
            let theirs = options.on_event.take();
            options.on_event = Some(Arc::new(move |e: &FetchEvent| {
                events(e);
                if let Some(f) = &theirs {
                    f(e);
                }
            }));
            counted
        });
        let counted_now = || counted.as_ref().map_or(0, |c| c.load(Ordering::Relaxed));
        self.meter.emit(ProgressEvent::Started {
            desc: desc.clone(),
            resumed_from: 0,
        });
        let key = pieces_key(&desc.digest);
        let result = fetch_blob(self.dst, &key, &desc, &self.options.blob_sources, &options).await;
        let report = match &result {
            Ok(r) => Some(r.clone()),
            Err(e) => e.report().cloned(),
        };
        if let Some(r) = report
            && !matches!(
                &result,
                Err(FetchError::Store {
                    source: StoreError::Unsupported { .. },
                    ..
                })
            )
        {
            self.stats_lock().fetches.push(r);
        }
        match result {
            Ok(report) => {
                // Pieces held from an earlier attempt were not counted as they arrived.
                self.meter.add(desc.size.saturating_sub(counted_now()));
                let new = report.bytes_fetched.saturating_sub(report.bytes_refetched);
                Some(Ok(Done::copied(new, desc.size.saturating_sub(new))))
            }
            Err(FetchError::Store {
                source: StoreError::Unsupported { .. },
                ..
            }) => {
                self.meter.take_back(counted_now());
                None
            }
            Err(e) => {
                self.meter.take_back(counted_now());
                Some(Err(match e {
                    FetchError::Cancelled { .. } => Fault::Cancelled,
                    FetchError::Store { source, .. } => write_fault(source),
                    other => Fault::store(
                        Source,
                        StoreError::backend(
                            format!(
                                "fetching {} in pieces from {} sources",
                                desc.digest,
                                self.options.blob_sources.len()
                            ),
                            other,
                        ),
                    ),
                }))
            }
        }
    }
}
