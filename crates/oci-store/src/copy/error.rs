//! How a copy fails: [`CopyError`], carrying the report of what was done and the side of the
//! copy that failed ([`CopySide`]); and [`Fault`], the failure of one step inside a copy.

use std::fmt;

use oci_digest::Digest;

use super::report::CopyReport;
use super::retry::worth_retrying;
use crate::error::{StoreError, error_chain};

/// The side of a copy a failure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CopySide {
    /// The store copied from: resolving the reference, reading manifests and blobs, and content
    /// it sent that failed verification.
    Source,
    /// The store copied into: its existence answers, writes, tags, leases and read-backs.
    Destination,
}

impl fmt::Display for CopySide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            CopySide::Source => "source",
            CopySide::Destination => "destination",
        })
    }
}

/// Why a [`copy`](crate::copy) or [`copy_leased`](crate::copy_leased) did not complete.
///
/// Either way, what was copied is complete and verified, no manifest in the destination refers
/// to missing content, and the tag was not written; a re-run continues from there (interrupted
/// transfers resume). Both variants carry the [`CopyReport`] of what was done.
///
/// ```
/// use oci_store::{copy, CopyError, CopyOptions, CopySide, MemoryStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let (src, dst) = (MemoryStore::new(), MemoryStore::new());
/// let e = copy(&src, "missing", &dst, None, &CopyOptions::default()).await.unwrap_err();
/// assert_eq!(e.side(), Some(CopySide::Source));
/// assert!(e.store_error().is_some_and(|s| s.is_not_found()));
/// assert!(!e.is_transient()); // running it again will not find the tag either
/// assert_eq!(e.report().copied, 0);
/// assert!(matches!(e, CopyError::Failed { digest: None, .. })); // no content involved
/// # });
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// A step of the copy failed: resolving the reference, planning the graph (a manifest that
    /// does not parse or verify, no platform matching, sizes past `u64::MAX`, ...), some content
    /// after its retries, writing the tag or the referrers index, reading the result back, or
    /// the destination's lease. `source` is the first failure.
    #[error("{}", failed_message(.reference, *.side, .digest.as_ref(), *.failed, *.transient, .report))]
    Failed {
        /// The reference copied, as given.
        reference: String,
        /// The side that failed.
        side: CopySide,
        /// The content that failed (the first one), or the result's root when a finishing
        /// step (tag, referrers index, read-back) failed; `None` when the failure concerns no
        /// content of the graph (the reference did not resolve, the lease could not be taken).
        digest: Option<Digest>,
        /// Pieces of content (and finishing steps) that failed.
        failed: usize,
        /// Whether running the copy again may succeed, by the copy's rule: the failure is
        /// [transient](StoreError::is_transient), or it is content that failed verification
        /// after coming over the network (it may have been damaged in flight).
        transient: bool,
        /// What the copy did.
        report: Box<CopyReport>,
        /// The first failure.
        #[source]
        source: Box<StoreError>,
    },
    /// The copy was cancelled ([`CancelToken`](crate::CancelToken), or the
    /// [shared limit](crate::CopyOptions::shared_limit) closed): interrupted transfers stay
    /// resumable.
    #[error("copy of {reference} cancelled")]
    Cancelled {
        /// The reference copied, as given.
        reference: String,
        /// What the copy did before it stopped.
        report: Box<CopyReport>,
    },
}

fn failed_message(
    reference: &str,
    side: CopySide,
    digest: Option<&Digest>,
    failed: usize,
    transient: bool,
    report: &CopyReport,
) -> String {
    let mut m = match digest {
        Some(d) => format!(
            "copy of {reference} failed at the {side}: {failed} piece(s) of content not copied, first {d}"
        ),
        None => format!("copy of {reference} failed at the {side}"),
    };
    if transient && report.retry_budget_spent {
        m.push_str(&format!(
            " (retry budget of {} spent: {} retried by this copy)",
            report.retry_budget, report.retried
        ));
    }
    m
}

impl CopyError {
    /// What the copy did (before it failed or stopped).
    pub fn report(&self) -> &CopyReport {
        match self {
            CopyError::Failed { report, .. } | CopyError::Cancelled { report, .. } => report,
        }
    }

    /// The reference copied, as given.
    pub fn reference(&self) -> &str {
        match self {
            CopyError::Failed { reference, .. } | CopyError::Cancelled { reference, .. } => {
                reference
            }
        }
    }

    /// The side that failed; `None` for a cancelled copy.
    pub fn side(&self) -> Option<CopySide> {
        match self {
            CopyError::Failed { side, .. } => Some(*side),
            CopyError::Cancelled { .. } => None,
        }
    }

    /// The store error that made the copy fail; `None` for a cancelled copy.
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            CopyError::Failed { source, .. } => Some(source),
            CopyError::Cancelled { .. } => None,
        }
    }

    /// Whether the copy was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, CopyError::Cancelled { .. })
    }

    /// Whether running the copy again may succeed (see [`CopyError::Failed::transient`]); a
    /// cancelled copy is not a failure to retry but a request to stop: `false`.
    pub fn is_transient(&self) -> bool {
        match self {
            CopyError::Failed { transient, .. } => *transient,
            CopyError::Cancelled { .. } => false,
        }
    }
}

/// Why one step of a copy did not succeed: it was cancelled, or a store failed on one side.
#[derive(Debug)]
pub(super) enum Fault {
    /// The copy was cancelled (or its shared limit closed) before or during the step.
    Cancelled,
    /// A store operation failed (boxed: errors are rare, results of steps are not).
    Store(CopySide, Box<StoreError>),
}

impl Fault {
    /// The failure `e` of a store operation on `side`.
    pub(super) fn store(side: CopySide, e: StoreError) -> Fault {
        Fault::Store(side, Box::new(e))
    }

    /// Whether trying the step again may succeed: never after a cancellation; for a store
    /// failure the copy's rule ([`worth_retrying`]), where `remote` says whether the content
    /// involved came over the network.
    pub(super) fn is_worth_retrying(&self, remote: bool) -> bool {
        match self {
            Fault::Cancelled => false,
            Fault::Store(_, e) => worth_retrying(e, remote),
        }
    }

    /// The error and its chain of sources as text, for reports and progress events.
    pub(super) fn chain(&self) -> String {
        match self {
            Fault::Cancelled => "cancelled".to_owned(),
            Fault::Store(_, e) => error_chain(e),
        }
    }

    /// The copy's error for this fault, with its report; `remote` says whether a side's content
    /// comes over the network.
    pub(super) fn into_copy_error(
        self,
        reference: &str,
        digest: Option<Digest>,
        failed: usize,
        remote: impl Fn(CopySide) -> bool,
        report: CopyReport,
    ) -> CopyError {
        match self {
            Fault::Cancelled => CopyError::Cancelled {
                reference: reference.to_owned(),
                report: Box::new(report),
            },
            Fault::Store(side, e) => CopyError::Failed {
                reference: reference.to_owned(),
                side,
                digest,
                failed,
                transient: worth_retrying(&e, remote(side)),
                report: Box::new(report),
                source: e,
            },
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Cancelled => f.write_str("cancelled"),
            Fault::Store(side, e) => write!(f, "{side}: {e}"),
        }
    }
}

/// Names the side of a store operation's error: `store.stat(d).await.at(CopySide::Source)?`.
pub(super) trait At<T> {
    /// The error as a [`Fault`] of `side`.
    fn at(self, side: CopySide) -> Result<T, Fault>;
}

impl<T> At<T> for Result<T, StoreError> {
    fn at(self, side: CopySide) -> Result<T, Fault> {
        self.map_err(|e| Fault::store(side, e))
    }
}
