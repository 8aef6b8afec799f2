//! Progress of a copy: the events a caller's callback receives ([`Progress`],
//! [`ProgressEvent`]) and the meter that counts the bytes done and calls it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use oci_digest::Digest;
use oci_manifest::Descriptor;

use oci_digest::PieceLayout;

use super::report::NodeOutcome;
use crate::fetch::{FetchEvent, FetchEventFn};
use crate::traits::BlobStream;

/// A progress callback: called from the copy's task, keep it quick.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// One progress event of a copy, with the running totals.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Progress {
    /// What happened.
    pub event: ProgressEvent,
    /// Bytes of the graph accounted for so far (copied, skipped, mounted, or resumed).
    pub done_bytes: u64,
    /// Bytes of the whole graph (known once the plan is made; 0 before).
    pub total_bytes: u64,
}

/// What a [`Progress`] reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// The graph is known: this many distinct nodes.
    Planned {
        /// Distinct pieces of content (manifests and blobs).
        nodes: usize,
    },
    /// A transfer starts (`resumed_from` bytes were already in the destination's ingest).
    Started {
        /// The content.
        desc: Descriptor,
        /// Bytes already there from an interrupted copy.
        resumed_from: u64,
    },
    /// Bytes of one piece of content arrived.
    Bytes {
        /// The content.
        digest: Digest,
        /// Bytes of it done so far.
        done: u64,
        /// Its size.
        size: u64,
    },
    /// One piece of content is settled.
    Finished {
        /// The content.
        desc: Descriptor,
        /// What was done.
        outcome: NodeOutcome,
    },
    /// Bytes of a blob fetched in pieces arrived from one of the
    /// [blob sources](crate::CopyOptions::blob_sources) (every byte received, kept or not).
    SourceBytes {
        /// The blob.
        digest: Digest,
        /// The source's index in [`CopyOptions::blob_sources`](crate::CopyOptions::blob_sources).
        source: usize,
        /// The source's name.
        name: String,
        /// Bytes received in this step.
        bytes: u64,
    },
    /// A piece of a blob fetched in pieces did not match (its source is named).
    BadPiece {
        /// The blob.
        digest: Digest,
        /// The source's name.
        name: String,
        /// The piece.
        index: u64,
    },
    /// An attempt failed and will be retried.
    Retrying {
        /// The content.
        desc: Descriptor,
        /// The attempt that failed (1 for the first).
        attempt: u32,
        /// Why, as text.
        error: String,
    },
}

/// The progress of one copy: the caller's callback, the bytes of the graph done so far and its
/// total. Shared by every transfer of the copy.
pub(super) struct Meter {
    callback: Option<ProgressFn>,
    done: Arc<AtomicU64>,
    total: u64,
}

impl Meter {
    /// A meter at 0 of `total` bytes, reporting to `callback`.
    pub(super) fn new(callback: Option<ProgressFn>, total: u64) -> Meter {
        Meter {
            callback,
            done: Arc::new(AtomicU64::new(0)),
            total,
        }
    }

    /// Calls the callback with `event` and the running totals.
    pub(super) fn emit(&self, event: ProgressEvent) {
        if let Some(p) = &self.callback {
            p(&Progress {
                event,
                done_bytes: self.done.load(Ordering::Relaxed),
                total_bytes: self.total,
            });
        }
    }

    /// Counts `n` more bytes done.
    pub(super) fn add(&self, n: u64) {
        add(&self.done, n);
    }

    /// Takes back `n` bytes counted by an attempt that failed (a retry counts them again).
    pub(super) fn take_back(&self, n: u64) {
        let _ = self
            .done
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// `stream`, counting its bytes into the progress of `desc` as they pass.
    pub(super) fn counted(&self, desc: &Descriptor, stream: BlobStream) -> BlobStream {
        let progress = self.callback.clone();
        let total = self.total;
        let digest = desc.digest.clone();
        let size = desc.size;
        let done_bytes = Arc::clone(&self.done);
        let mut done = 0u64;
        Box::pin(stream.map(move |item| {
            if let Ok(chunk) = &item {
                let n = chunk.len() as u64;
                done = done.saturating_add(n);
                let overall = add(&done_bytes, n);
                if let Some(p) = &progress {
                    p(&Progress {
                        event: ProgressEvent::Bytes {
                            digest: digest.clone(),
                            done,
                            size,
                        },
                        done_bytes: overall,
                        total_bytes: total,
                    });
                }
            }
            item
        }))
    }
}

impl Meter {
    /// The receiver of a piece fetch's events for blob `desc` cut by `layout` from sources
    /// `names`: bytes per source and bad pieces as progress events, pieces written counted as
    /// done; and the counter of the bytes it counted as done.
    pub(super) fn piece_events(
        &self,
        desc: &Descriptor,
        layout: PieceLayout,
        names: Vec<String>,
    ) -> (FetchEventFn, Arc<AtomicU64>) {
        let progress = self.callback.clone();
        let total = self.total;
        let digest = desc.digest.clone();
        let size = desc.size;
        let done_bytes = Arc::clone(&self.done);
        let counted = Arc::new(AtomicU64::new(0));
        let mine = Arc::clone(&counted);
        let name = move |i: usize| names.get(i).cloned().unwrap_or_default();
        let f: FetchEventFn = Arc::new(move |e: &FetchEvent| {
            let event = match e {
                FetchEvent::Received { source, bytes } => ProgressEvent::SourceBytes {
                    digest: digest.clone(),
                    source: *source,
                    name: name(*source),
                    bytes: *bytes,
                },
                FetchEvent::PieceDone { index, .. } => {
                    let n = layout.range(*index).map_or(0, |r| r.end - r.start);
                    add(&done_bytes, n);
                    ProgressEvent::Bytes {
                        digest: digest.clone(),
                        done: add(&mine, n),
                        size,
                    }
                }
                FetchEvent::BadPiece { source, index } => ProgressEvent::BadPiece {
                    digest: digest.clone(),
                    name: name(*source),
                    index: *index,
                },
                _ => return,
            };
            if let Some(p) = &progress {
                p(&Progress {
                    event,
                    done_bytes: done_bytes.load(Ordering::Relaxed),
                    total_bytes: total,
                });
            }
        });
        (f, counted)
    }
}

/// Adds `n` bytes to a progress counter without wrapping; returns the new value.
fn add(counter: &AtomicU64, n: u64) -> u64 {
    let before = counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_add(n))
        })
        .unwrap_or_else(|v| v);
    before.saturating_add(n)
}
