//! What a copy did: [`CopyReport`], one [`NodeReport`] per piece of content, and how the report
//! is tallied from the outcomes of a run.

use crate::util::OneLine;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use oci_digest::Digest;
use oci_manifest::Descriptor;

use crate::fetch::FetchReport;

use super::maps::PieceMapsReport;

use super::budget::Draw;
use super::plan::{Plan, strip};

/// What happened to one piece of content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NodeOutcome {
    /// Transferred (possibly resuming an interrupted transfer).
    Copied,
    /// The destination had it (and, when verifying, served it).
    Skipped,
    /// Mounted from another repository of the same registry: no bytes sent.
    Mounted,
    /// The destination claimed it but did not serve it; it was stored again.
    Repaired,
    /// Could not be copied (see [`NodeReport::error`]).
    Failed,
    /// Not attempted: a child failed, or the copy was cancelled.
    NotCopied,
}

impl fmt::Display for NodeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            NodeOutcome::Copied => "copied",
            NodeOutcome::Skipped => "skipped",
            NodeOutcome::Mounted => "mounted",
            NodeOutcome::Repaired => "repaired",
            NodeOutcome::Failed => "failed",
            NodeOutcome::NotCopied => "not copied",
        })
    }
}

/// One piece of content in a [`CopyReport`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeReport {
    /// The content as stored in the destination (media type, digest, size).
    pub desc: Descriptor,
    /// What happened to it.
    pub outcome: NodeOutcome,
    /// Bytes sent to the destination by this copy (the part resumed from an earlier copy not
    /// counted).
    pub bytes: u64,
    /// Bytes found in the destination's ingest from an interrupted copy.
    pub resumed_from: u64,
    /// Attempts made (retries are attempts after the first).
    pub attempts: u32,
    /// The error of the last attempt, for failed content.
    pub error: Option<String>,
}

/// A manifest the copy converted on the way: stored in the destination under another digest
/// than the source's, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManifestConversion {
    /// The manifest as the source has it.
    pub source: Descriptor,
    /// As the destination stores it.
    pub result: Descriptor,
    /// Why the digest changed.
    pub reason: String,
}

/// What a copy did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CopyReport {
    /// The reference copied, as given.
    pub reference: String,
    /// The source's root descriptor.
    pub source: Option<Descriptor>,
    /// The root as stored in the destination (another digest when reduced or converted).
    pub result: Option<Descriptor>,
    /// The tag written in the destination, if any.
    pub tag: Option<String>,
    /// Index entries left out by the platform filter.
    pub dropped: Vec<Descriptor>,
    /// Referrers (signatures, SBOMs, ...) copied along.
    pub referrers: Vec<Descriptor>,
    /// Foreign (non-distributable) layers the source does not hold: left out, as registries do
    /// not serve them either (the manifests still name them, with their URLs).
    pub foreign: Vec<Descriptor>,
    /// Manifests converted on the way (Docker schema 1 to schema 2 or OCI), each with its
    /// digests before and after and the reason.
    pub conversions: Vec<ManifestConversion>,
    /// Every distinct piece of content, in plan order (children before parents).
    pub nodes: Vec<NodeReport>,
    /// Content transferred.
    pub copied: usize,
    /// Content the destination had.
    pub skipped: usize,
    /// Content mounted from another repository.
    pub mounted: usize,
    /// Content the destination claimed but did not serve, stored again.
    pub repaired: usize,
    /// Retries made by this copy after transient failures (over all content and steps): what
    /// it used of its retry budget.
    pub retried: usize,
    /// The retry budget the copy drew from: retries allowed in all
    /// ([`CopyOptions::retries`](crate::CopyOptions::retries), or the total of a shared
    /// [`RetryBudget`](crate::RetryBudget)).
    pub retry_budget: u32,
    /// Whether the budget was spent when the copy ended: a failure that could have been
    /// retried was final.
    pub retry_budget_spent: bool,
    /// Content that could not be copied.
    pub failed: usize,
    /// Bytes of the whole graph.
    pub total_bytes: u64,
    /// Bytes sent to the destination (transferred or repaired) by this copy.
    pub bytes_copied: u64,
    /// Bytes of the content skipped.
    pub bytes_skipped: u64,
    /// Bytes of the content mounted.
    pub bytes_mounted: u64,
    /// Bytes found in ingests of an interrupted copy and not transferred again.
    pub bytes_resumed: u64,
    /// Pieces of content read back to verify the result.
    pub verified: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// What each blob fetched in pieces from the
    /// [blob sources](crate::CopyOptions::blob_sources) did (failed attempts included): bytes
    /// and pieces per source, bad pieces with their source, bytes fetched twice.
    pub fetches: Vec<FetchReport>,
    /// Piece maps: found for the blobs fetched in pieces (and from where), artifacts ignored,
    /// artifacts pushed ([`CopyOptions::piece_maps`](crate::CopyOptions::piece_maps)).
    pub piece_maps: PieceMapsReport,
}

impl CopyReport {
    /// Whether every piece of content is in the destination.
    pub fn is_complete(&self) -> bool {
        self.failed == 0
            && self
                .nodes
                .iter()
                .all(|n| n.outcome != NodeOutcome::NotCopied)
    }
}

impl CopyReport {
    /// The report of a copy that ended before any transfer: the reference, and the source's
    /// root when it was resolved.
    pub(super) fn before_transfer(
        reference: &str,
        source: Option<Descriptor>,
        elapsed: Duration,
    ) -> CopyReport {
        CopyReport {
            reference: reference.to_owned(),
            source,
            elapsed,
            ..CopyReport::default()
        }
    }

    /// Records the retries this copy took from `draw` and the budget's state.
    pub(super) fn count_retries(&mut self, draw: &Draw) {
        self.retried = draw.taken() as usize;
        self.retry_budget = draw.budget.total();
        self.retry_budget_spent = draw.budget.is_spent();
    }

    /// Tallies the outcomes of a run over `plan` (nodes without an outcome were not copied).
    pub(super) fn tally(
        reference: &str,
        root: &Descriptor,
        plan: &Plan,
        mut outcomes: HashMap<Digest, NodeReport>,
        verified: usize,
    ) -> CopyReport {
        let mut r = CopyReport {
            reference: reference.to_owned(),
            source: Some(root.clone()),
            dropped: plan.dropped.clone(),
            foreign: plan.foreign.clone(),
            conversions: plan.conversions.clone(),
            verified,
            ..CopyReport::default()
        };
        for d in &plan.order {
            let n = &plan.nodes[d];
            let nr = outcomes.remove(d).unwrap_or_else(|| NodeReport {
                desc: strip(&n.target),
                outcome: NodeOutcome::NotCopied,
                bytes: 0,
                resumed_from: 0,
                attempts: 0,
                error: None,
            });
            // The plan's total was checked: these sums of its parts cannot saturate.
            r.total_bytes = r.total_bytes.saturating_add(nr.desc.size);
            match nr.outcome {
                NodeOutcome::Copied | NodeOutcome::Repaired => {
                    if nr.outcome == NodeOutcome::Copied {
                        r.copied += 1;
                    } else {
                        r.repaired += 1;
                    }
                    r.bytes_copied = r.bytes_copied.saturating_add(nr.bytes);
                    r.bytes_resumed = r.bytes_resumed.saturating_add(nr.resumed_from);
                }
                NodeOutcome::Skipped => {
                    r.skipped += 1;
                    r.bytes_skipped = r.bytes_skipped.saturating_add(nr.desc.size);
                }
                NodeOutcome::Mounted => {
                    r.mounted += 1;
                    r.bytes_mounted = r.bytes_mounted.saturating_add(nr.desc.size);
                }
                NodeOutcome::Failed => r.failed += 1,
                NodeOutcome::NotCopied => {}
            }
            r.nodes.push(nr);
        }
        r
    }
}

impl fmt::Display for CopyReport {
    /// One line of counts (`{}`, as logs show it), or with the alternate flag (`{:#}`) the
    /// summary a person reads: the digests copied, the counts with bytes and rate, the
    /// platforms and foreign layers left out, referrers, read-backs and every failed piece of
    /// content with its error. Text that came from a peer (platforms, errors) has its control
    /// characters escaped, so each item stays on its own line.
    ///
    /// ```
    /// let r = oci_store::CopyReport::default();
    /// assert!(r.to_string().contains("0 copied (0 B)"));
    /// assert!(format!("{r:#}").contains("copied 0 blobs, repaired 0 blobs: 0 bytes sent"));
    /// assert!(r.to_string().contains("0 retried (budget 0)"));
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            return self.summary(f);
        }
        write!(
            f,
            "{}: {} copied ({} B), {} skipped ({} B), {} mounted ({} B), {} repaired, {} retried (budget {}{}), {} failed; {} B resumed; {:.2?}",
            self.reference,
            self.copied,
            self.bytes_copied,
            self.skipped,
            self.bytes_skipped,
            self.mounted,
            self.bytes_mounted,
            self.repaired,
            self.retried,
            self.retry_budget,
            if self.retry_budget_spent {
                ", spent"
            } else {
                ""
            },
            self.failed,
            self.bytes_resumed,
            self.elapsed
        )
    }
}

impl CopyReport {
    /// The alternate (`{:#}`) form of [`Display`](fmt::Display).
    fn summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = |d: &Option<Descriptor>| {
            d.as_ref()
                .map_or_else(|| "-".to_owned(), |d| d.digest.to_string())
        };
        let secs = self.elapsed.as_secs_f64().max(1e-6);
        write!(
            f,
            "{}: {} -> {}\n  copied {} blobs, repaired {} blobs: {} bytes sent ({:.1} MB/s); skipped {} blobs \
({} bytes), mounted {} blobs ({} bytes), retried {} times of a budget of {}{}, failed {} blobs; \
resumed {} bytes; {:.2} s",
            OneLine(&self.reference),
            digest(&self.source),
            digest(&self.result),
            self.copied,
            self.repaired,
            self.bytes_copied,
            self.bytes_copied as f64 / secs / 1e6,
            self.skipped,
            self.bytes_skipped,
            self.mounted,
            self.bytes_mounted,
            self.retried,
            self.retry_budget,
            if self.retry_budget_spent {
                " (spent)"
            } else {
                ""
            },
            self.failed,
            self.bytes_resumed,
            secs
        )?;
        let platform = |d: &Descriptor| match &d.platform {
            Some(p) => OneLine(&p.to_string()).to_string(),
            None => d.digest.to_string(),
        };
        list(f, "platforms left out", &self.dropped, platform)?;
        let digest = |d: &Descriptor| d.digest.to_string();
        list(
            f,
            "foreign layers left out (not held by the source)",
            &self.foreign,
            digest,
        )?;
        for c in &self.conversions {
            write!(
                f,
                "\n  converted {} -> {}: {}",
                c.source.digest,
                c.result.digest,
                OneLine(&c.reason)
            )?;
        }
        if !self.referrers.is_empty() {
            write!(
                f,
                "\n  referrers copied: {} manifests",
                self.referrers.len()
            )?;
        }
        if self.verified > 0 {
            write!(f, "\n  read back to verify: {} blobs", self.verified)?;
        }
        self.pieces_summary(f)?;
        for n in self
            .nodes
            .iter()
            .filter(|n| n.outcome == NodeOutcome::Failed)
        {
            write!(
                f,
                "\n  FAILED {} after {} attempt(s): {}",
                n.desc.digest,
                n.attempts,
                OneLine(n.error.as_deref().unwrap_or(""))
            )?;
        }
        Ok(())
    }
}

/// What one source did over every blob a copy fetched in pieces (see
/// [`CopyReport::source_totals`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SourceTotals {
    /// The source's name.
    pub name: String,
    /// Pieces it served that are in the destination.
    pub pieces: u64,
    /// Bytes of those pieces.
    pub bytes: u64,
    /// Every byte received from it.
    pub bytes_fetched: u64,
    /// Pieces it served with wrong bytes.
    pub bad_pieces: u64,
}

impl CopyReport {
    /// Per source (by name, in the order first seen), the totals over every blob fetched in
    /// pieces ([`fetches`](Self::fetches)).
    ///
    /// ```
    /// let r = oci_store::CopyReport::default();
    /// assert!(r.source_totals().is_empty());
    /// assert_eq!(r.bytes_refetched(), 0);
    /// ```
    pub fn source_totals(&self) -> Vec<SourceTotals> {
        let mut out: Vec<SourceTotals> = Vec::new();
        for s in self.fetches.iter().flat_map(|f| &f.sources) {
            let i = match out.iter().position(|t| t.name == s.name) {
                Some(i) => i,
                None => {
                    out.push(SourceTotals {
                        name: s.name.clone(),
                        ..SourceTotals::default()
                    });
                    out.len() - 1
                }
            };
            let t = &mut out[i];
            t.pieces = t.pieces.saturating_add(s.pieces);
            t.bytes = t.bytes.saturating_add(s.bytes);
            t.bytes_fetched = t.bytes_fetched.saturating_add(s.bytes_fetched);
            t.bad_pieces = t.bad_pieces.saturating_add(s.bad_pieces);
        }
        out
    }

    /// Bytes fetched twice over every blob fetched in pieces (bad pieces, pieces taken over,
    /// failed attempts, pieces fetched again to find a bad one).
    pub fn bytes_refetched(&self) -> u64 {
        self.fetches
            .iter()
            .fold(0u64, |a, f| a.saturating_add(f.bytes_refetched))
    }

    /// Of [`bytes_refetched`](Self::bytes_refetched): bytes read by requests that stopped
    /// because a faster source took their piece over
    /// ([`FetchReport::bytes_taken_over`](crate::FetchReport::bytes_taken_over)).
    ///
    /// ```
    /// assert_eq!(oci_store::CopyReport::default().bytes_taken_over(), 0);
    /// ```
    pub fn bytes_taken_over(&self) -> u64 {
        self.fetches
            .iter()
            .fold(0u64, |a, f| a.saturating_add(f.bytes_taken_over))
    }

    /// Of [`bytes_refetched`](Self::bytes_refetched): bytes requests had read past the piece
    /// they stopped at ([`FetchReport::bytes_read_ahead`](crate::FetchReport::bytes_read_ahead)).
    ///
    /// ```
    /// assert_eq!(oci_store::CopyReport::default().bytes_read_ahead(), 0);
    /// ```
    pub fn bytes_read_ahead(&self) -> u64 {
        self.fetches
            .iter()
            .fold(0u64, |a, f| a.saturating_add(f.bytes_read_ahead))
    }

    /// The lines of the summary about blobs fetched in pieces: bytes per source, bad pieces
    /// with their source, bytes fetched twice.
    fn pieces_summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fetches.is_empty() {
            return Ok(());
        }
        write!(
            f,
            "\n  fetched in pieces: {} blobs, {} bytes fetched twice ({} of pieces taken over, {} read ahead by stopped requests)",
            self.fetches.len(),
            self.bytes_refetched(),
            self.bytes_taken_over(),
            self.bytes_read_ahead()
        )?;
        for t in self.source_totals() {
            write!(
                f,
                "\n    {}: {} pieces, {} bytes kept, {} bytes received{}",
                OneLine(&t.name),
                t.pieces,
                t.bytes,
                t.bytes_fetched,
                if t.bad_pieces > 0 {
                    format!(", {} BAD pieces", t.bad_pieces)
                } else {
                    String::new()
                }
            )?;
        }
        for fetch in &self.fetches {
            for b in &fetch.bad_pieces {
                write!(f, "\n  BAD piece of {}: {b}", fetch.digest)?;
            }
        }
        Ok(())
    }
}

/// Writes `items` on a line of their own after `label`, comma-separated; nothing when empty.
fn list(
    f: &mut fmt::Formatter<'_>,
    label: &str,
    items: &[Descriptor],
    show: impl Fn(&Descriptor) -> String,
) -> fmt::Result {
    for (i, d) in items.iter().enumerate() {
        if i == 0 {
            write!(f, "\n  {label}: ")?;
        } else {
            f.write_str(", ")?;
        }
        f.write_str(&show(d))?;
    }
    Ok(())
}
