//! Running a plan: scheduling (one task per distinct digest, children before parents, at most
//! [`CopyOptions::jobs`] transfers at a time), one attempt at a piece of content (skip, mount,
//! push or stream it through a resumable writer), retries, waiting for another writer of the
//! same content, and the finishing steps once the graph is there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::{BoxFuture, Either, join_all};
use oci_digest::{Digest, PieceLayout, PieceMap, PieceMapBuilder};
use oci_manifest::Descriptor;
use tokio::sync::{OnceCell, Semaphore};
use tracing::{debug, warn};

use super::CopySide::{self, Destination, Source};
use super::budget::Draw;
use super::error::{At, Fault};
use super::maps::PieceMapArtifact;
use super::options::CopyOptions;
use super::plan::{Node, Plan, strip};
use super::progress::{Meter, ProgressEvent};
use super::referrers::{by_subject, index_referrers};
use super::report::{CopyReport, NodeOutcome, NodeReport};
use super::retry::Retry;
use super::shared::Ticket;
use super::verify::Claim;
use crate::error::{StoreError, error_chain};
use crate::fetch::MapTrust;
use crate::traits::{BlobWriter, Location, Opened, ReadStore, Store, TagStore, bytes_stream};

/// The ingest key a copy uses for `digest` in the destination (so that a later copy, in this or
/// another process, resumes the same ingest).
///
/// ```
/// let d = oci_digest::Algorithm::Sha256.hash(b"x");
/// assert_eq!(oci_store::ingest_key(&d), format!("copy-{d}"));
/// ```
pub fn ingest_key(digest: &Digest) -> String {
    format!("copy-{digest}")
}

/// How long another writer of the same content may hold its ingest without progress before a
/// copy gives up waiting for it.
const BUSY_STALL: Duration = Duration::from_secs(60);
/// How often a copy waiting for another writer looks again.
const BUSY_POLL: Duration = Duration::from_millis(100);

/// The side of a write fed by the source's stream: the source's when reading the stream failed
/// or its bytes did not verify, the destination's otherwise.
pub(super) fn write_fault(e: StoreError) -> Fault {
    let side = if matches!(e, StoreError::Source { .. }) || e.is_verification_failure() {
        Source
    } else {
        Destination
    };
    Fault::store(side, e)
}

/// What the run learned, shared by its tasks.
#[derive(Default)]
pub(super) struct Stats {
    outcomes: HashMap<Digest, NodeReport>,
    /// Content that failed (not content left out by a cancellation), in order of failure.
    failures: Vec<(Digest, CopySide, Box<StoreError>)>,
    pub(super) verified: usize,
    /// Reports of blobs fetched in pieces, in order of ending.
    pub(super) fetches: Vec<crate::fetch::FetchReport>,
    /// Piece maps made from the bytes this run moved, as they verified
    /// ([`CopyOptions::piece_maps`]), by blob digest.
    pub(super) maps: HashMap<Digest, PieceMap>,
}

/// Where a node is once settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    /// In the destination.
    Stored,
    /// Not in the destination: it, or content below it, failed or was cancelled.
    Missing,
}

/// What one attempt at a node did.
pub(super) struct Done {
    outcome: NodeOutcome,
    bytes: u64,
    resumed_from: u64,
}

impl Done {
    fn skipped() -> Done {
        Done {
            outcome: NodeOutcome::Skipped,
            bytes: 0,
            resumed_from: 0,
        }
    }

    fn mounted() -> Done {
        Done {
            outcome: NodeOutcome::Mounted,
            bytes: 0,
            resumed_from: 0,
        }
    }

    pub(super) fn copied(bytes: u64, resumed_from: u64) -> Done {
        Done {
            outcome: NodeOutcome::Copied,
            bytes,
            resumed_from,
        }
    }

    pub(super) fn repaired(bytes: u64) -> Done {
        Done {
            outcome: NodeOutcome::Repaired,
            bytes,
            resumed_from: 0,
        }
    }
}

/// One copy's run over its plan.
pub(super) struct Run<'a, S: ?Sized, D: ?Sized> {
    pub(super) src: &'a S,
    pub(super) dst: &'a D,
    pub(super) plan: &'a Plan,
    pub(super) options: &'a CopyOptions,
    /// The copy's retry budget.
    pub(super) budget: &'a Draw,
    pub(super) meter: Meter,
    /// The destination as named in messages.
    pub(super) dst_name: String,
    sem: Arc<Semaphore>,
    cells: HashMap<Digest, OnceCell<Settled>>,
    stats: Mutex<Stats>,
    /// Where blobs can be mounted from (two repositories of one registry).
    mount_from: Option<Location>,
    /// The destination repository, when it is one (for [`CopyOptions::shared_blobs`]).
    dst_location: Option<Location>,
    /// The source is a registry (its content comes over the network).
    remote_source: bool,
    /// The root (source digest) and the tag to store it under in one step
    /// ([`TagStore::store_tagged`]), when the copy tags its result and plans no referrers.
    tag_on_store: Option<(Digest, String)>,
    /// The root was stored under its tag by [`TagStore::store_tagged`].
    tagged_on_store: std::sync::atomic::AtomicBool,
    /// Piece maps for the blobs fetched in pieces, by blob digest (found before the transfer).
    pub(super) fetch_maps: HashMap<Digest, (PieceMap, MapTrust)>,
}

/// What the ledger of shared blobs ([`CopyOptions::shared_blobs`]) knows of a blob on its way.
#[derive(Clone, Copy, Default)]
struct Hints<'h> {
    /// Other repositories of the destination's registry that hold it.
    places: &'h [Location],
    /// No copy has seen it in the destination repository: mount it before asking.
    mount_first: bool,
}

impl<'a, S, D> Run<'a, S, D>
where
    S: ReadStore + TagStore + ?Sized,
    D: Store + ?Sized,
{
    /// A run of `plan` from `src` into `dst`, `total` bytes in all.
    pub(super) fn new(
        src: &'a S,
        dst: &'a D,
        plan: &'a Plan,
        options: &'a CopyOptions,
        budget: &'a Draw,
        total: u64,
    ) -> Self {
        let mount_from = match (src.location(), dst.location()) {
            (Some(s), Some(d)) if d.can_mount_from(&s) => Some(s),
            _ => None,
        };
        Run {
            src,
            dst,
            plan,
            options,
            budget,
            meter: Meter::new(options.progress.clone(), total),
            dst_name: dst
                .location()
                .map_or_else(|| "the destination".to_owned(), |l| l.to_string()),
            sem: options
                .shared_limit
                .clone()
                .unwrap_or_else(|| Arc::new(Semaphore::new(options.jobs.max(1)))),
            cells: plan
                .order
                .iter()
                .map(|d| (d.clone(), OnceCell::new()))
                .collect(),
            stats: Mutex::new(Stats::default()),
            mount_from,
            dst_location: dst.location(),
            remote_source: src.location().is_some(),
            tag_on_store: None,
            tagged_on_store: std::sync::atomic::AtomicBool::new(false),
            fetch_maps: HashMap::new(),
        }
    }

    /// Stores the root `root` (a source digest) under `tag` in one step where the destination
    /// can ([`TagStore::store_tagged`]): the tag then appears with the root, as it would when
    /// [`finish`](Run::finish) tagged it next. Only for a copy without referrers, whose tag
    /// must wait for them.
    pub(super) fn tag_root_on_store(&mut self, root: &Digest, tag: &str) {
        self.tag_on_store = Some((root.clone(), tag.to_owned()));
    }

    /// Whether the root was stored under its tag already.
    pub(super) fn tagged_on_store(&self) -> bool {
        self.tagged_on_store
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stores manifest `bytes` of `node` (described by `target`): under the copy's tag at once
    /// when `node` is the root and the destination takes that, else by digest.
    async fn store_manifest(
        &self,
        node: &Node,
        target: &Descriptor,
        bytes: &Bytes,
    ) -> Result<(), Fault> {
        if self.store_root_tagged(node, target, bytes).await? {
            return Ok(());
        }
        self.dst
            .push_bytes(target, bytes.clone())
            .await
            .at(Destination)?;
        Ok(())
    }

    /// Stores `node` under the copy's tag in one step ([`TagStore::store_tagged`]) when it is
    /// the root and the destination takes that; whether it did.
    async fn store_root_tagged(
        &self,
        node: &Node,
        target: &Descriptor,
        bytes: &Bytes,
    ) -> Result<bool, Fault> {
        let Some((root, tag)) = &self.tag_on_store else {
            return Ok(false);
        };
        if *root != node.src.digest
            || !self
                .dst
                .store_tagged(target, bytes, tag)
                .await
                .at(Destination)?
        {
            return Ok(false);
        }
        self.tagged_on_store
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(true)
    }

    pub(super) fn stats_lock(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes sure `digest` (a source digest of the plan) is in the destination, children first.
    /// Settled once per digest; concurrent callers wait for the first.
    pub(super) fn ensure<'b>(&'b self, digest: &'b Digest) -> BoxFuture<'b, Settled> {
        Box::pin(async move {
            let Some(cell) = self.cells.get(digest) else {
                return Settled::Missing;
            };
            *cell
                .get_or_init(|| async {
                    let node = &self.plan.nodes[digest];
                    let children = join_all(node.children.iter().map(|c| self.ensure(c))).await;
                    if children.contains(&Settled::Missing) {
                        self.record(node, NodeOutcome::NotCopied, 0, 0, 0, None);
                        return Settled::Missing;
                    }
                    self.settle(node).await
                })
                .await
        })
    }

    fn record(
        &self,
        node: &Node,
        outcome: NodeOutcome,
        bytes: u64,
        resumed_from: u64,
        attempts: u32,
        error: Option<String>,
    ) {
        self.stats_lock().outcomes.insert(
            node.src.digest.clone(),
            NodeReport {
                desc: strip(&node.target),
                outcome,
                bytes,
                resumed_from,
                attempts,
                error,
            },
        );
        if outcome != NodeOutcome::NotCopied && outcome != NodeOutcome::Failed {
            self.meter.emit(ProgressEvent::Finished {
                desc: strip(&node.target),
                outcome,
            });
        }
    }

    /// Stores one node, retrying transient failures.
    async fn settle(&self, node: &Node) -> Settled {
        let tried = Retry::cancellable(self.options, self.budget, self.remote_source)
            .run(
                || self.attempt_when_free(node),
                |attempt, fault| {
                    warn!(digest = %node.target.digest, attempt, error = %fault, "copy attempt failed; retrying");
                    self.meter.emit(ProgressEvent::Retrying {
                        desc: strip(&node.target),
                        attempt,
                        error: fault.chain(),
                    });
                },
            )
            .await;
        match tried.result {
            Ok(done) => {
                self.record(
                    node,
                    done.outcome,
                    done.bytes,
                    done.resumed_from,
                    tried.attempts,
                    None,
                );
                Settled::Stored
            }
            Err(Fault::Cancelled) => {
                self.record(node, NodeOutcome::NotCopied, 0, 0, tried.attempts, None);
                Settled::Missing
            }
            Err(Fault::Store(side, e)) => {
                warn!(digest = %node.target.digest, attempts = tried.attempts, %side, error = %e, "copy of content failed");
                self.record(
                    node,
                    NodeOutcome::Failed,
                    0,
                    0,
                    tried.attempts,
                    Some(error_chain(&*e)),
                );
                self.stats_lock()
                    .failures
                    .push((node.target.digest.clone(), side, e));
                Settled::Missing
            }
        }
    }

    /// One attempt at a node, with a transfer permit. Another writer holding the node's ingest
    /// (a concurrent copy of the same content, in this or another process) is waited for while
    /// it makes progress, then the attempt is made again.
    ///
    /// With [`CopyOptions::shared_blobs`], a blob another copy is sending to the same registry
    /// is waited for (without a transfer permit), then mounted from where it landed.
    async fn attempt_when_free(&self, node: &Node) -> Result<Done, Fault> {
        let ticket = match (&self.options.shared_blobs, &self.dst_location) {
            (Some(shared), Some(at)) if !node.target.is_manifest() => {
                Some(shared.claim(&node.target.digest, at).await)
            }
            _ => None,
        };
        let hints = match &ticket {
            Some(Ticket::Elsewhere { places, here }) => Hints {
                places: places.as_slice(),
                mount_first: !*here,
            },
            _ => Hints::default(),
        };
        let result = self.attempt_with_permit(node, hints).await;
        if result.is_ok() {
            match (ticket, &self.options.shared_blobs, &self.dst_location) {
                (Some(Ticket::Owner(guard)), _, _) => guard.stored(),
                (Some(Ticket::Elsewhere { .. }), Some(shared), Some(at)) => {
                    shared.found(&node.target.digest, at);
                }
                _ => {}
            }
        }
        result
    }

    /// [`attempt`](Run::attempt) with a transfer permit, waiting for another writer of the
    /// node's ingest while it makes progress.
    async fn attempt_with_permit(&self, node: &Node, hints: Hints<'_>) -> Result<Done, Fault> {
        let mut busy: Option<(u64, Instant)> = None;
        loop {
            if self.options.is_cancelled() {
                return Err(Fault::Cancelled);
            }
            let result = {
                // A closed shared limit stops the copy as a cancellation does.
                let Ok(_permit) = self.sem.acquire().await else {
                    return Err(Fault::Cancelled);
                };
                self.attempt(node, hints).await
            };
            let key = match &result {
                Err(Fault::Store(_, e)) if !self.options.is_cancelled() => match &**e {
                    StoreError::IngestBusy { key } => key.clone(),
                    _ => return result,
                },
                _ => return result,
            };
            let offset = match self.dst.ingest_status(&key).await {
                Ok(Some(st)) => st.offset,
                _ => 0,
            };
            let since = match busy {
                Some((o, t)) if o == offset => t,
                _ => Instant::now(),
            };
            busy = Some((offset, since));
            if since.elapsed() > BUSY_STALL {
                warn!(digest = %node.target.digest, key, "another writer holds the content and makes no progress");
                return Err(Fault::store(Destination, StoreError::IngestBusy { key }));
            }
            debug!(digest = %node.target.digest, key, "another writer holds the ingest; waiting");
            tokio::time::sleep(BUSY_POLL).await;
        }
    }

    /// One attempt at one node: mount, push or stream it into the destination unless the
    /// destination says it has it; then the destination's word is checked as the verify mode
    /// says ([`confirm`](Run::confirm), which stores the node again when the word is false).
    /// `hints`: other repositories of the destination's registry that hold the node.
    ///
    /// Two answers of the destination make asking it first whether it has the node useless:
    /// the root stored under its tag in one request when the caller found the tag missing or
    /// naming other content ([`CopyOptions::tag_differs`]; [`TagStore::store_tagged`], a
    /// registry's manifest `PUT` by tag, which the tag needs whether the root is there or
    /// not), and a mount into a repository no copy has seen the blob in (the registry's `201`
    /// says the blob is there now). A blob with no mount to try is asked and opened in one step
    /// ([`WriteStore::writer_unless_present`](crate::WriteStore::writer_unless_present)): a
    /// registry asks a small blob with the request that starts its upload. All are answers of
    /// the destination itself, never of a cache.
    async fn attempt(&self, node: &Node, hints: Hints<'_>) -> Result<Done, Fault> {
        let target = strip(&node.target);
        if self.options.tag_differs
            && let Some(bytes) = &node.bytes
            && self.store_root_tagged(node, &target, bytes).await?
        {
            self.meter.emit(ProgressEvent::Started {
                desc: target.clone(),
                resumed_from: 0,
            });
            let done = Done::copied(target.size, 0);
            return self.confirm(node, &target, Claim::Pushed, done).await;
        }
        let mounted_first = hints.mount_first && self.mount(&target, hints.places).await?;
        if mounted_first {
            return self
                .confirm(node, &target, Claim::Mounted, Done::mounted())
                .await;
        }
        // A blob with no mount to try and no pieces to fetch: whether the destination has it
        // and a writer for it when not, in one step where the store can (a registry asks a
        // small blob with the request that starts its upload).
        if node.bytes.is_none()
            && !target.is_manifest()
            && self.options.blob_sources.len() <= 1
            && self.mount_source(hints.places).is_none()
        {
            let key = ingest_key(&target.digest);
            let writer = match self.dst.writer_unless_present(&key, &target).await {
                // A store that answers without a size is taken at the expected one; the verify
                // mode checks its word as it checks a `stat`'s.
                Ok(Opened::Present { size }) => {
                    let claim = Claim::Has(size.unwrap_or(target.size));
                    return self.confirm(node, &target, claim, Done::skipped()).await;
                }
                Ok(Opened::Writer(w)) => Ok(w),
                Err(e) => Err(e),
            };
            return self.write_blob(node, writer).await;
        }
        let (claim, done) = match self.dst.stat_descriptor(&target).await.at(Destination)? {
            None if !hints.mount_first && self.mount(&target, hints.places).await? => {
                (Claim::Mounted, Done::mounted())
            }
            None => match &node.bytes {
                Some(bytes) => {
                    self.meter.emit(ProgressEvent::Started {
                        desc: target.clone(),
                        resumed_from: 0,
                    });
                    self.store_manifest(node, &target, bytes).await?;
                    (Claim::Pushed, Done::copied(target.size, 0))
                }
                // A blob through a resumable writer: verified as it is written.
                None => return self.transfer_blob(node).await,
            },
            Some(size) => (Claim::Has(size), Done::skipped()),
        };
        self.confirm(node, &target, claim, done).await
    }

    /// Mounts a blob from the source's repository when both are repositories of one registry,
    /// else from the first of `hints` (repositories of the destination's registry that hold
    /// it); whether it was mounted.
    async fn mount(&self, target: &Descriptor, hints: &[Location]) -> Result<bool, Fault> {
        if target.is_manifest() {
            return Ok(false);
        }
        match self.mount_source(hints) {
            Some(from) => self.dst.mount(target, from).await.at(Destination),
            None => Ok(false),
        }
    }

    /// Where [`mount`](Run::mount) would mount a blob from: the source's repository when both
    /// are repositories of one registry, else the first of `hints` the destination can mount
    /// from.
    fn mount_source<'h>(&'h self, hints: &'h [Location]) -> Option<&'h Location> {
        self.mount_from.as_ref().or_else(|| {
            let at = self.dst_location.as_ref()?;
            hints.iter().find(|h| at.can_mount_from(h))
        })
    }

    /// Streams a blob from the source into a resumable writer of the destination (or a plain
    /// push when the destination has no resumable writers).
    async fn transfer_blob(&self, node: &Node) -> Result<Done, Fault> {
        if self.options.blob_sources.len() > 1
            && !node.target.is_manifest()
            && let Some(done) = self.fetch_pieces(node).await
        {
            return done;
        }
        let key = ingest_key(&node.target.digest);
        let writer = self.dst.writer(&key, &strip(&node.target)).await;
        self.write_blob(node, writer).await
    }

    /// Streams a blob from the source into `writer`, the destination's answer to opening one
    /// (a plain push when the destination has no resumable writers).
    async fn write_blob(
        &self,
        node: &Node,
        writer: Result<Box<dyn BlobWriter>, StoreError>,
    ) -> Result<Done, Fault> {
        let desc = strip(&node.target);
        let mut writer = match writer {
            Ok(w) => w,
            Err(StoreError::Unsupported { .. }) => {
                self.meter.emit(ProgressEvent::Started {
                    desc: desc.clone(),
                    resumed_from: 0,
                });
                // The destination's push verifies every byte: no second hash at the source.
                let stream = self.src.fetch_unverified(&node.src).await.at(Source)?;
                let stream = self.meter.counted(&desc, stream);
                self.dst.push(&desc, stream).await.map_err(write_fault)?;
                return Ok(Done::copied(desc.size, 0));
            }
            Err(e) => return Err(Fault::store(Destination, e)),
        };
        let resumed_from = writer.offset().min(desc.size);
        self.meter.emit(ProgressEvent::Started {
            desc: desc.clone(),
            resumed_from,
        });
        let mut done = resumed_from;
        let mut sent = 0u64;
        self.meter.add(resumed_from);
        // The piece map, hashed as the bytes go by (all of them: not for a resumed transfer),
        // when the source is a registry (a local store makes its own trusted maps).
        let mut map = match PieceLayout::for_size(desc.size) {
            Ok(layout) if self.options.piece_maps && self.remote_source && resumed_from == 0 => {
                Some(PieceMapBuilder::new(desc.digest.clone(), layout))
            }
            _ => None,
        };
        let result: Result<(), Fault> = async {
            // The writer verifies every byte at commit (as it does for a resumed range), so
            // the source need not hash them too.
            let mut stream = if resumed_from == 0 {
                self.src.fetch_unverified(&node.src).await.at(Source)?
            } else if resumed_from < desc.size {
                debug!(digest = %desc.digest, offset = resumed_from, "resuming an interrupted transfer");
                self.src
                    .fetch_range(&node.src, resumed_from..desc.size)
                    .await
                    .at(Source)?
            } else {
                bytes_stream(Bytes::new())
            };
            loop {
                let next = match &self.options.cancel {
                    Some(c) => {
                        let cancelled = Box::pin(c.cancelled());
                        match futures_util::future::select(stream.next(), cancelled).await {
                            Either::Left((item, _)) => item,
                            Either::Right(_) => None,
                        }
                    }
                    None => stream.next().await,
                };
                if self.options.is_cancelled() {
                    // The writer is dropped, not aborted: its ingest stays for a later copy.
                    return Err(Fault::Cancelled);
                }
                let Some(chunk) = next else { break };
                let chunk = chunk
                    .map_err(|source| StoreError::Source {
                        digest: desc.digest.clone(),
                        source,
                    })
                    .at(Source)?;
                let n = chunk.len() as u64;
                if let Some(b) = &mut map
                    && b.update(&chunk).is_err()
                {
                    map = None;
                }
                writer.write(chunk).await.map_err(write_fault)?;
                done = done.saturating_add(n);
                sent = sent.saturating_add(n);
                self.meter.add(n);
                self.meter.emit(ProgressEvent::Bytes {
                    digest: desc.digest.clone(),
                    done,
                    size: desc.size,
                });
            }
            writer.commit().await.map(|_| ()).map_err(write_fault)?;
            // The writer verified these bytes; the builder checks the whole digest again.
            if let Some(m) = map.take().and_then(|b| b.finish().ok()) {
                self.stats_lock().maps.insert(desc.digest.clone(), m);
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            // Bytes counted by this attempt are not done after all (a retry counts them again).
            self.meter.take_back(done);
            return Err(e);
        }
        Ok(Done::copied(sent, resumed_from))
    }

    /// Once the whole graph is there: tags the result, makes the referrers discoverable, pushes
    /// the piece-map artifacts ([`CopyOptions::piece_maps`]), and
    /// (unless trusting the destination) reads the result back. Retried as a whole: each step
    /// is idempotent.
    pub(super) async fn finish(
        &self,
        result: &Descriptor,
        tag: Option<&str>,
        referrers: &[(Descriptor, Descriptor)],
        piece_maps: &[(Descriptor, PieceMapArtifact)],
    ) -> Result<(), Fault> {
        let remote = self.dst.location().is_some();
        Retry::new(self.options, self.budget, remote)
            .run(
                || self.finish_once(result, tag, referrers, piece_maps),
                |attempt, fault| {
                    warn!(attempt, error = %fault, "finishing the copy failed; retrying");
                },
            )
            .await
            .result
    }

    async fn finish_once(
        &self,
        result: &Descriptor,
        tag: Option<&str>,
        referrers: &[(Descriptor, Descriptor)],
        piece_maps: &[(Descriptor, PieceMapArtifact)],
    ) -> Result<(), Fault> {
        let result = strip(result);
        if let Some(tag) = tag {
            self.tag_checked(&result, tag, self.tagged_on_store())
                .await?;
        }
        // Referrers: a store without a referrers index gets the tag schema fallback.
        for (subject, list) in by_subject(referrers) {
            index_referrers(self.dst, &subject, &list)
                .await
                .at(Destination)?;
        }
        self.push_piece_maps(piece_maps).await?;
        self.read_back_all().await
    }

    /// The report of the run, and the failures of its content in order of failure.
    pub(super) fn report(
        &self,
        reference: &str,
        root: &Descriptor,
    ) -> (CopyReport, Vec<(Digest, CopySide, Box<StoreError>)>) {
        let mut st = self.stats_lock();
        let mut report = CopyReport::tally(
            reference,
            root,
            self.plan,
            std::mem::take(&mut st.outcomes),
            st.verified,
        );
        report.fetches = std::mem::take(&mut st.fetches);
        (report, std::mem::take(&mut st.failures))
    }
}
