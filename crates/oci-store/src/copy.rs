//! Graph copy between any two stores: memory, OCI layout on disk, registry repositories.
//!
//! [`copy`] resolves a reference in the source, walks the graph it names (indexes, manifests,
//! configs, layers, and with [`CopyOptions::include_referrers`] the signatures and SBOMs that
//! refer to them), and stores it in the destination children first, so that the destination
//! never holds a manifest whose children are missing, then points the tag at the result.
//!
//! - **Plan**: manifests are fetched (verified) and, when asked, reduced to some platforms
//!   ([`oci_manifest::reduce`]) and converted between Docker and OCI media types
//!   ([`oci_manifest::convert`]); the plan knows every node and the total bytes up front.
//! - **Transfer**: one task per distinct digest (content reached from two manifests moves once),
//!   at most [`CopyOptions::jobs`] transfers at a time. Content the destination has is skipped;
//!   with [`VerifyMode::Range`] or [`VerifyMode::Full`] the destination's answer is not trusted
//!   but read back, and content it claims but does not serve is stored again
//!   ([`WriteStore::push_forced`]). Between two repositories of one registry blobs are mounted
//!   ([`WriteStore::mount`]). Blobs go through resumable writers keyed by digest, so an
//!   interrupted copy continues where it stopped. Transient failures retry per node.
//! - **Finish**: the tag is written only when the whole graph is there; [`CopyReport`] says what
//!   was copied, skipped, mounted, repaired, retried and failed, with bytes and time.
//!
//! [`copy_leased`] does the same into a [`ManagedStore`] under a lease held (and renewed) for
//! the whole copy, so a garbage collection running beside it removes nothing the copy needs.
//!
//! ```
//! use bytes::Bytes;
//! use oci_manifest::{build::ImageManifestBuilder, media_types, Descriptor};
//! use oci_store::{copy, CopyOptions, MemoryStore, ReadStore, TagStore, WriteStore};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let src = MemoryStore::new();
//! let layer = Bytes::from_static(b"layer");
//! let config = Bytes::from_static(b"{}");
//! let layer_desc = Descriptor::of(media_types::OCI_LAYER_TAR, &layer);
//! let config_desc = Descriptor::of(media_types::OCI_CONFIG, &config);
//! src.push_bytes(&layer_desc, layer).await?;
//! src.push_bytes(&config_desc, config).await?;
//! let manifest = ImageManifestBuilder::oci(config_desc).layer(layer_desc.clone()).build().unwrap();
//! src.push_bytes(&manifest.descriptor(), manifest.raw().clone()).await?;
//! src.tag(&manifest.descriptor(), "v1").await?;
//!
//! let dst = MemoryStore::new();
//! let report = copy(&src, "v1", &dst, None, &CopyOptions::default()).await?;
//! assert_eq!(report.copied, 3);
//! assert_eq!(dst.resolve("v1").await?.digest, *manifest.digest());
//! assert!(dst.exists(&layer_desc.digest).await?);
//!
//! // Again: everything is there, nothing moves.
//! let again = copy(&src, "v1", &dst, None, &CopyOptions::default()).await?;
//! assert_eq!((again.copied, again.skipped, again.bytes_copied), (0, 3, 0));
//! # Ok::<(), oci_store::StoreError>(())
//! # }).unwrap();
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::{BoxFuture, Either, join_all};
use oci_digest::Digest;
use oci_manifest::build::IndexBuilder;
use oci_manifest::convert::{Flavor, convert, convert_index};
use oci_manifest::{Descriptor, Manifest, Platform, media_types};
use tokio::sync::{Notify, OnceCell, Semaphore};
use tracing::{debug, info, warn};

use crate::error::{Result, StoreError};
use crate::lease::Lease;
use crate::traits::{
    BlobStream, DEFAULT_LEASE_TTL, Location, ManagedStore, ReadStore, Store, TagStore,
};

/// How far a copy trusts the destination's answer that it already has some content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum VerifyMode {
    /// Trust the existence answer (`stat`, a registry's `HEAD`): fast, and what every tool does.
    #[default]
    Trust,
    /// Read back: manifests in full (verified), blobs by their last byte, which must arrive. A
    /// registry whose cache remembers a blob its storage lost answers `HEAD` but cannot send
    /// the byte. Content found lying is stored again; the result is read back the same way.
    Range,
    /// Read everything back in full and verify it against its digest (slow, certain).
    Full,
}

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
    /// Attempts retried after a transient failure (over all content).
    pub retried: usize,
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

impl fmt::Display for CopyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} copied ({} B), {} skipped ({} B), {} mounted ({} B), {} repaired, {} retried, {} failed; {} B resumed; {:.2?}",
            self.reference,
            self.copied,
            self.bytes_copied,
            self.skipped,
            self.bytes_skipped,
            self.mounted,
            self.bytes_mounted,
            self.repaired,
            self.retried,
            self.failed,
            self.bytes_resumed,
            self.elapsed
        )
    }
}

/// Cancels a running copy. Cloning shares the token.
///
/// A cancelled copy stops starting transfers, stops the ones running between two chunks (their
/// ingests stay, so a later copy resumes them), writes no manifest whose children are not all
/// there and no tag, and returns [`StoreError::CopyCancelled`].
///
/// ```
/// let token = oci_store::CancelToken::new();
/// assert!(!token.is_cancelled());
/// token.cancel();
/// assert!(token.is_cancelled());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    flag: AtomicBool,
    notify: Notify,
}

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancels every copy using this token.
    pub fn cancel(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// Whether [`cancel`](CancelToken::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    /// Completes once the token is cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// Options of [`copy`].
#[derive(Clone)]
#[non_exhaustive]
pub struct CopyOptions {
    /// Copy only these platforms of an index (the result is a reduced index referencing only
    /// what was copied); empty copies every platform.
    pub platforms: Vec<Platform>,
    /// Also copy the referrers (signatures, SBOMs, attestations) of every manifest copied
    /// unchanged, found through the source's referrers API or the tag schema fallback.
    pub include_referrers: bool,
    /// Convert manifests to Docker or OCI media types (new digests); `None` keeps the bytes.
    pub format: Option<Flavor>,
    /// Transfers running at once (at least 1).
    pub jobs: usize,
    /// Retries of one piece of content after a transient failure: an I/O or network failure
    /// that may go away, or content damaged in flight from a registry. What a retry cannot
    /// cure fails at once, with its reason: content missing or invalid, content that fails
    /// verification in a local source (memory, layout), a refused connection, a transfer
    /// below the client's minimum rate or past its deadline, a permission refused (a
    /// registry's 401 or 403 included), a full or read-only disk.
    pub retries: u32,
    /// Delay before the first retry; it doubles on each retry of the same content (capped at
    /// 10 s).
    pub retry_backoff: Duration,
    /// How far the destination's existence answers are trusted; also how the result is read
    /// back when it is not [`VerifyMode::Trust`].
    pub verify: VerifyMode,
    /// A progress callback.
    pub progress: Option<ProgressFn>,
    /// A cancellation token.
    pub cancel: Option<CancelToken>,
    /// Lifetime of the lease taken by [`copy_leased`] (renewed while the copy runs; on failure
    /// left to expire, so a re-run within it finds the completed content still pinned).
    pub lease_ttl: Duration,
    /// A limit on transfers shared with other copies (many images synced at once under one
    /// global limit); when set, a transfer holds one of its permits and [`jobs`](Self::jobs)
    /// is not used.
    pub shared_limit: Option<Arc<Semaphore>>,
}

impl Default for CopyOptions {
    /// Every platform, no referrers, bytes kept, 4 jobs, 3 retries from 200 ms, trusting the
    /// destination, no progress, no cancellation, a lease of [`DEFAULT_LEASE_TTL`].
    fn default() -> Self {
        CopyOptions {
            platforms: Vec::new(),
            include_referrers: false,
            format: None,
            jobs: 4,
            retries: 3,
            retry_backoff: Duration::from_millis(200),
            verify: VerifyMode::Trust,
            progress: None,
            cancel: None,
            lease_ttl: DEFAULT_LEASE_TTL,
            shared_limit: None,
        }
    }
}

impl fmt::Debug for CopyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CopyOptions")
            .field("platforms", &self.platforms)
            .field("include_referrers", &self.include_referrers)
            .field("format", &self.format)
            .field("jobs", &self.jobs)
            .field("retries", &self.retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("verify", &self.verify)
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .field("lease_ttl", &self.lease_ttl)
            .field("shared_limit", &self.shared_limit.is_some())
            .finish()
    }
}

impl CopyOptions {
    /// These options with `platform` added to the platforms copied.
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platforms.push(platform);
        self
    }
    /// These options with referrers included or not.
    pub fn with_referrers(mut self, include: bool) -> Self {
        self.include_referrers = include;
        self
    }
    /// These options converting manifests to `format`.
    pub fn with_format(mut self, format: Option<Flavor>) -> Self {
        self.format = format;
        self
    }
    /// These options with `jobs` transfers at once (at least 1).
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }
    /// These options with `retries` retries per piece of content, the first after `backoff`.
    pub fn with_retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.retry_backoff = backoff;
        self
    }
    /// These options with the verify mode replaced.
    pub fn with_verify(mut self, verify: VerifyMode) -> Self {
        self.verify = verify;
        self
    }
    /// These options with a progress callback.
    pub fn with_progress(mut self, progress: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }
    /// These options with a cancellation token.
    pub fn with_cancel(mut self, cancel: CancelToken) -> Self {
        self.cancel = Some(cancel);
        self
    }
    /// These options with transfers limited by `limit`, shared with other copies.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let global = Arc::new(tokio::sync::Semaphore::new(8));
    /// let a = oci_store::CopyOptions::default().with_shared_limit(Arc::clone(&global));
    /// let b = oci_store::CopyOptions::default().with_shared_limit(global);
    /// # drop((a, b));
    /// ```
    pub fn with_shared_limit(mut self, limit: Arc<Semaphore>) -> Self {
        self.shared_limit = Some(limit);
        self
    }
    /// These options with the lease lifetime of [`copy_leased`] replaced.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }
}

/// The tag of the OCI referrers tag schema fallback for `subject`: `<alg>-<encoded>`.
///
/// ```
/// let d = oci_digest::Algorithm::Sha256.hash(b"x");
/// assert_eq!(oci_store::referrers_tag(&d), format!("sha256-{}", d.encoded()));
/// ```
pub fn referrers_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm(), subject.encoded())
}

/// The index of the OCI referrers tag schema fallback of `subject`, listing `entries` (referrer
/// descriptors, as [`Manifest::referrer_descriptor`] gives them): an OCI image index, to be
/// tagged [`referrers_tag`]`(subject)`.
///
/// ```
/// let subject = oci_digest::Algorithm::Sha256.hash(b"an image");
/// let m = oci_store::referrers_index(&subject, Vec::new()).unwrap();
/// assert!(m.is_index() && m.manifests().is_empty());
/// ```
///
/// # Errors
/// [`StoreError::InvalidManifest`] naming `subject` when the entries cannot form an index.
pub fn referrers_index(subject: &Digest, entries: Vec<Descriptor>) -> Result<Manifest> {
    IndexBuilder::oci()
        .manifests(entries)
        .build()
        .map_err(|source| StoreError::InvalidManifest {
            digest: subject.clone(),
            source,
        })
}

/// The ingest key a copy uses for `digest` in the destination (so that a later copy, in this or
/// another process, resumes the same ingest).
pub fn ingest_key(digest: &Digest) -> String {
    format!("copy-{digest}")
}

/// Copies the graph named by `src_ref` (a tag, or a digest) from `src` into `dst`, children
/// before parents, and tags the result `dst_tag` (or, when `None`, with `src_ref` when it is a
/// tag; a digest reference leaves the result untagged).
///
/// Works between any two stores (memory, layout, registry repositories), in any direction. For
/// a local destination prefer [`copy_leased`], which holds a lease for the whole copy.
///
/// # Errors
/// Resolution and planning errors of the source (the reference unknown, a manifest that does
/// not parse or verify, no platform matching, [`StoreError::SizeOverflow`] when the sizes the
/// descriptors declare add up past `u64::MAX`); [`StoreError::CopyFailed`] when some content
/// could not be copied after its retries (the report inside says what was done, the source
/// error is the first failure); [`StoreError::CopyCancelled`];
/// [`StoreError::ClaimsUnserved`] (as the source of `CopyFailed`) when the destination claims
/// content it does not serve and storing it again did not help.
pub async fn copy<S, D>(
    src: &S,
    src_ref: &str,
    dst: &D,
    dst_tag: Option<&str>,
    options: &CopyOptions,
) -> Result<CopyReport>
where
    S: ReadStore + TagStore + ?Sized,
    D: Store + ?Sized,
{
    let started = Instant::now();
    let tag = match dst_tag {
        Some(t) => {
            crate::util::validate_tag(t)?;
            Some(t.to_owned())
        }
        None if Digest::parse(src_ref).is_err() => Some(src_ref.to_owned()),
        None => None,
    };
    let remote_source = src.location().is_some();
    let (root, prefetched) = {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match resolve_inner(src, src_ref).await {
                Ok(r) => break r,
                Err(e) if transient(&e, remote_source) && attempt <= options.retries => {
                    warn!(reference = src_ref, attempt, error = %e, "resolving failed; retrying");
                    tokio::time::sleep(backoff(options.retry_backoff, attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    };
    let mut planner = Planner {
        src,
        options,
        prefetched,
        nodes: HashMap::new(),
        order: Vec::new(),
        stack: Vec::new(),
        root: root.digest.clone(),
        dropped: Vec::new(),
        foreign: Vec::new(),
    };
    let planned = match planner.plan(&root, 0, true).await {
        Ok(d) if options.include_referrers => planner.plan_referrers().await.map(|l| (d, l)),
        Ok(d) => Ok((d, Vec::new())),
        Err(e) => Err(e),
    };
    let (result_desc, referrer_links) = match planned {
        Ok(p) => p,
        Err(StoreError::CopyCancelled { .. }) => {
            return Err(StoreError::CopyCancelled {
                reference: src_ref.to_owned(),
                report: Box::new(CopyReport {
                    reference: src_ref.to_owned(),
                    source: Some(root),
                    elapsed: started.elapsed(),
                    ..CopyReport::default()
                }),
            });
        }
        Err(e) => return Err(e),
    };
    let plan = Plan {
        order: planner.order,
        dropped: planner.dropped,
        foreign: planner.foreign,
        nodes: planner.nodes,
    };
    let total = plan.total()?;
    info!(reference = src_ref, root = %root.digest, nodes = plan.order.len(), total, "copy planned");

    let mount_from = match (src.location(), dst.location()) {
        (Some(s), Some(d)) if d.can_mount_from(&s) => Some(s),
        _ => None,
    };
    let run = Run {
        src,
        dst,
        plan: &plan,
        options,
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
        done_bytes: Arc::new(AtomicU64::new(0)),
        total,
        mount_from,
        dst_name: dst
            .location()
            .map_or_else(|| "the destination".to_owned(), |l| l.to_string()),
        remote_source,
    };
    run.emit(ProgressEvent::Planned {
        nodes: plan.order.len(),
    });

    // Transfer: the root, then each referrer (their subjects are settled by then).
    let mut root_ok = run.ensure(&root.digest).await.is_ok();
    let mut copied_referrers = Vec::new();
    if root_ok {
        for (subject, referrer) in &referrer_links {
            if run.ensure(&referrer.digest).await.is_ok() {
                copied_referrers.push((subject.clone(), referrer.clone()));
            }
        }
    }
    let cancelled = options
        .cancel
        .as_ref()
        .is_some_and(CancelToken::is_cancelled);

    // Tag, referrers index, read-back: only for a complete graph.
    let mut finish_error = None;
    if root_ok && !cancelled {
        // Tagging and reading back are idempotent: transient failures retry them.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match run
                .finish(&result_desc, tag.as_deref(), &copied_referrers)
                .await
            {
                Ok(()) => break,
                Err(e) if transient(&e, dst.location().is_some()) && attempt <= options.retries => {
                    warn!(reference = src_ref, attempt, error = %e, "finishing the copy failed; retrying");
                    run.stats_lock().retried += 1;
                    tokio::time::sleep(backoff(options.retry_backoff, attempt)).await;
                }
                Err(e) => {
                    root_ok = false;
                    finish_error = Some(e);
                    break;
                }
            }
        }
    }

    let mut report = run.report(src_ref, &root, &plan);
    report.result = Some(result_desc.clone());
    report.referrers = copied_referrers.iter().map(|(_, r)| r.clone()).collect();
    report.elapsed = started.elapsed();
    if root_ok && report.is_complete() && finish_error.is_none() {
        report.tag = tag;
        info!(%report, "copy done");
        return Ok(report);
    }
    let failures = std::mem::take(&mut run.stats_lock().failures);
    if cancelled && finish_error.is_none() && failures.iter().all(|(_, e)| is_cancel(e)) {
        return Err(StoreError::CopyCancelled {
            reference: src_ref.to_owned(),
            report: Box::new(report),
        });
    }
    let failed = failures.len() + usize::from(finish_error.is_some());
    let (digest, source) = match finish_error {
        Some(e) => (result_desc.digest.clone(), e),
        None => match failures.into_iter().find(|(_, e)| !is_cancel(e)) {
            Some((d, e)) => (d, e),
            None => (
                result_desc.digest.clone(),
                StoreError::CopyCancelled {
                    reference: src_ref.to_owned(),
                    report: Box::new(report.clone()),
                },
            ),
        },
    };
    warn!(%report, "copy incomplete");
    Err(StoreError::CopyFailed {
        reference: src_ref.to_owned(),
        digest,
        failed,
        report: Box::new(report),
        source: Box::new(source),
    })
}

/// [`copy`] into a local store under a lease held for the whole copy and renewed while it
/// runs: everything written or found in `dst` is pinned until the tag is written, so a
/// concurrent garbage collection (in this or another process) removes nothing the copy needs.
/// The lease is released when the copy succeeds; when it fails or is cancelled it is left to
/// expire ([`CopyOptions::lease_ttl`]), so a re-run within that time finds the completed
/// content still there.
///
/// ```
/// use oci_store::{copy_leased, CopyOptions, ManagedStore, MemoryStore, TagStore, WriteStore};
/// use oci_manifest::build::IndexBuilder;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let src = MemoryStore::new();
/// let index = IndexBuilder::oci().build().unwrap();
/// src.push_bytes(&index.descriptor(), index.raw().clone()).await?;
/// src.tag(&index.descriptor(), "empty").await?;
/// let dst = MemoryStore::new();
/// copy_leased(&src, "empty", &dst, Some("copied"), &CopyOptions::default()).await?;
/// assert!(dst.leases().await?.is_empty()); // released
/// assert_eq!(dst.resolve("copied").await?.digest, *index.digest());
/// # Ok::<(), oci_store::StoreError>(())
/// # }).unwrap();
/// ```
///
/// # Errors
/// Those of [`copy`], and the lease errors of the store.
pub async fn copy_leased<S, D>(
    src: &S,
    src_ref: &str,
    dst: &D,
    dst_tag: Option<&str>,
    options: &CopyOptions,
) -> Result<CopyReport>
where
    S: ReadStore + TagStore + ?Sized,
    D: ManagedStore,
{
    let ttl = options.lease_ttl.max(Duration::from_secs(1));
    let lease = dst.create_lease(ttl).await?;
    let view = dst.with_lease(&lease);
    let work = Box::pin(copy(src, src_ref, &view, dst_tag, options));
    let renew = Box::pin(renew_forever(dst, &lease, ttl));
    let result = match futures_util::future::select(work, renew).await {
        Either::Left((r, _)) => r,
        Either::Right((e, _)) => Err(e),
    };
    if result.is_ok() {
        dst.release_lease(&lease).await?;
    } else {
        debug!(
            lease = lease.id(),
            "copy did not complete; lease left to expire"
        );
    }
    result
}

async fn renew_forever<D: ManagedStore>(dst: &D, lease: &Lease, ttl: Duration) -> StoreError {
    loop {
        tokio::time::sleep(ttl / 3).await;
        if let Err(e) = dst.renew_lease(lease, ttl).await {
            return e;
        }
    }
}

/// Resolves a tag or a digest in `store` to a descriptor (a digest the store cannot resolve as
/// a reference is looked up by content, its media type read from the manifest itself).
///
/// # Errors
/// [`StoreError::TagNotFound`] / [`StoreError::NotFound`]; [`StoreError::InvalidManifest`] when
/// content named by digest is not a manifest.
pub async fn resolve_reference<S: ReadStore + TagStore + ?Sized>(
    store: &S,
    reference: &str,
) -> Result<Descriptor> {
    Ok(resolve_inner(store, reference).await?.0)
}

/// [`resolve_reference`], also returning the manifest when it had to be fetched.
async fn resolve_inner<S: ReadStore + TagStore + ?Sized>(
    store: &S,
    reference: &str,
) -> Result<(Descriptor, Option<Manifest>)> {
    let Ok(digest) = Digest::parse(reference) else {
        return Ok((store.resolve(reference).await?, None));
    };
    match store.resolve(reference).await {
        Ok(d) if d.digest == digest => return Ok((d, None)),
        Ok(d) => {
            warn!(reference, got = %d.digest, "store resolved a digest to other content");
        }
        Err(e) if e.is_not_found() || matches!(e, StoreError::InvalidTag { .. }) => {}
        Err(e) => return Err(e),
    }
    let size = store
        .stat(&digest)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            digest: digest.clone(),
        })?;
    let guess = Descriptor::new(media_types::OCI_MANIFEST, digest.clone(), size);
    let raw = store
        .fetch_bytes(&guess, oci_manifest::DEFAULT_MAX_MANIFEST_SIZE as u64)
        .await?;
    let m = Manifest::parse_pinned(raw, None, &digest, &Default::default())
        .map_err(|source| StoreError::InvalidManifest { digest, source })?;
    Ok((m.descriptor(), Some(m)))
}

// ---------------------------------------------------------------------------------------------
// Plan.

/// One distinct piece of content to copy.
#[derive(Debug)]
struct Node {
    /// As the source names it.
    src: Descriptor,
    /// As the destination will store it (another digest when reduced or converted).
    target: Descriptor,
    /// The bytes to store, for manifests (held from the plan; they are small).
    bytes: Option<Bytes>,
    /// Source digests of the children that must be there first.
    children: Vec<Digest>,
}

struct Plan {
    nodes: HashMap<Digest, Node>,
    /// Post-order (children before parents).
    order: Vec<Digest>,
    dropped: Vec<Descriptor>,
    foreign: Vec<Descriptor>,
}

impl Plan {
    /// Bytes of the whole graph: the sizes its descriptors declare (a peer's numbers), added
    /// with a check, so that sizes adding past `u64::MAX` are an error naming the descriptor
    /// that did not fit rather than a panic (debug builds) or a wrapped total (release).
    fn total(&self) -> Result<u64> {
        self.order.iter().try_fold(0u64, |sum, d| {
            let target = &self.nodes[d].target;
            sum.checked_add(target.size)
                .ok_or_else(|| StoreError::SizeOverflow {
                    digest: target.digest.clone(),
                    size: target.size,
                    what: "the copy's total",
                })
        })
    }
}

struct Planner<'a, S: ?Sized> {
    src: &'a S,
    options: &'a CopyOptions,
    /// The root manifest when resolving it already fetched it.
    prefetched: Option<Manifest>,
    nodes: HashMap<Digest, Node>,
    order: Vec<Digest>,
    stack: Vec<Digest>,
    root: Digest,
    dropped: Vec<Descriptor>,
    foreign: Vec<Descriptor>,
}

impl<S: ReadStore + TagStore + ?Sized> Planner<'_, S> {
    /// Plans `desc` and everything below it; returns the descriptor the destination will have.
    fn plan<'b>(
        &'b mut self,
        desc: &'b Descriptor,
        depth: usize,
        is_root: bool,
    ) -> BoxFuture<'b, Result<Descriptor>> {
        Box::pin(async move {
            if let Some(n) = self.nodes.get(&desc.digest) {
                return Ok(merge(desc, &n.target));
            }
            if !desc.is_manifest()
                && media_types::is_non_distributable(&desc.media_type)
                && desc.urls.as_ref().is_some_and(|u| !u.is_empty())
                && self.src.stat(&desc.digest).await?.is_none()
            {
                // A foreign layer the source does not hold: it lives at its URLs.
                if !self.foreign.iter().any(|f| f.digest == desc.digest) {
                    self.foreign.push(desc.clone());
                }
                return Ok(desc.clone());
            }
            if !desc.is_manifest() {
                // Content embedded in its descriptor (verified against it) needs no fetch.
                let embedded = desc.embedded_data().and_then(|r| r.ok()).map(Bytes::from);
                self.add(Node {
                    src: desc.clone(),
                    target: desc.clone(),
                    bytes: embedded,
                    children: Vec::new(),
                });
                return Ok(desc.clone());
            }
            if self.stack.contains(&desc.digest) {
                return Err(StoreError::Cycle {
                    root: self.root.clone(),
                    digest: desc.digest.clone(),
                });
            }
            if depth > oci_manifest::DEFAULT_MAX_INDEX_DEPTH {
                return Err(StoreError::NestingTooDeep {
                    root: self.root.clone(),
                    digest: desc.digest.clone(),
                    limit: oci_manifest::DEFAULT_MAX_INDEX_DEPTH,
                });
            }
            if self
                .options
                .cancel
                .as_ref()
                .is_some_and(CancelToken::is_cancelled)
            {
                return Err(StoreError::CopyCancelled {
                    reference: String::new(),
                    report: Box::default(),
                });
            }
            let manifest = match self.prefetched.take() {
                Some(m) if m.digest() == &desc.digest => m,
                _ => fetch_manifest_retrying(self.src, desc, self.options).await?,
            };
            let mut effective = manifest.clone();
            if is_root && effective.is_index() && !self.options.platforms.is_empty() {
                let reduced = oci_manifest::reduce(&effective, &self.options.platforms).map_err(
                    |source| match source {
                        oci_manifest::ManifestError::NoMatchingPlatform { .. } => {
                            StoreError::NoMatchingPlatform {
                                digest: desc.digest.clone(),
                                source,
                            }
                        }
                        source => StoreError::InvalidManifest {
                            digest: desc.digest.clone(),
                            source,
                        },
                    },
                )?;
                self.dropped = reduced.dropped;
                effective = reduced.index;
            }
            self.stack.push(desc.digest.clone());
            let mut children = Vec::new();
            let mut changed: HashMap<Digest, Descriptor> = HashMap::new();
            for child in effective.children().to_vec() {
                let target = match self.plan(&child, depth + 1, false).await {
                    Ok(t) => t,
                    // A platform's image missing from an index: say which platform.
                    Err(e) if e.is_not_found() && effective.is_index() => {
                        return Err(match &child.platform {
                            Some(p) => StoreError::PlatformMissing {
                                index: desc.digest.clone(),
                                platform: p.to_string(),
                                digest: child.digest.clone(),
                                source: Box::new(e),
                            },
                            None => e,
                        });
                    }
                    Err(e) => return Err(e),
                };
                if target.digest != child.digest {
                    changed.insert(child.digest.clone(), target);
                }
                if self.nodes.contains_key(&child.digest) && !children.contains(&child.digest) {
                    children.push(child.digest.clone());
                }
            }
            self.stack.pop();
            let to = self
                .options
                .format
                .unwrap_or_else(|| Flavor::of(effective.kind()));
            let bad = |source| StoreError::InvalidManifest {
                digest: desc.digest.clone(),
                source,
            };
            if effective.is_index() {
                if !changed.is_empty() || Flavor::of(effective.kind()) != to {
                    effective = convert_index(&effective, to, &changed)
                        .map_err(bad)?
                        .manifest;
                }
            } else if Flavor::of(effective.kind()) != to {
                effective = convert(&effective, to).map_err(bad)?.manifest;
            }
            let mut target = merge(desc, &effective.descriptor());
            if target.digest == desc.digest {
                target.media_type = desc.media_type.clone();
            }
            self.add(Node {
                src: desc.clone(),
                target: target.clone(),
                bytes: Some(effective.raw().clone()),
                children,
            });
            Ok(target)
        })
    }

    fn add(&mut self, node: Node) {
        let d = node.src.digest.clone();
        if self.nodes.insert(d.clone(), node).is_none() {
            self.order.push(d);
        }
    }

    /// Finds the referrers of every manifest copied unchanged (and of those referrers), and
    /// plans them. Returns (subject, referrer) pairs in discovery order.
    async fn plan_referrers(&mut self) -> Result<Vec<(Descriptor, Descriptor)>> {
        let mut links = Vec::new();
        let mut asked: HashSet<Digest> = HashSet::new();
        let mut i = 0;
        while i < self.order.len() {
            let d = self.order[i].clone();
            i += 1;
            let n = &self.nodes[&d];
            if !n.src.is_manifest() || n.target.digest != n.src.digest || !asked.insert(d.clone()) {
                continue;
            }
            let subject = n.target.clone();
            for r in list_referrers(self.src, &subject).await? {
                if self.nodes.contains_key(&r.digest) {
                    continue;
                }
                let target = self.plan(&r, 1, false).await?;
                if target.digest == r.digest {
                    links.push((strip(&subject), r));
                }
            }
        }
        Ok(links)
    }
}

/// `target`'s media type, digest and size with `orig`'s other fields (platform, annotations).
fn merge(orig: &Descriptor, target: &Descriptor) -> Descriptor {
    let mut d = orig.clone();
    d.media_type = target.media_type.clone();
    d.digest = target.digest.clone();
    d.size = target.size;
    if d.digest != orig.digest {
        d.data = None;
    }
    d
}

/// Media type, digest and size only.
fn strip(d: &Descriptor) -> Descriptor {
    Descriptor::new(d.media_type.clone(), d.digest.clone(), d.size)
}

/// The referrers of `subject` in `store`: its referrers API, else the tag schema fallback.
async fn list_referrers<S: ReadStore + TagStore + ?Sized>(
    store: &S,
    subject: &Descriptor,
) -> Result<Vec<Descriptor>> {
    if let Some(list) = store.referrers(subject).await? {
        return Ok(list);
    }
    Ok(fallback_index(store, &subject.digest)
        .await?
        .map(|m| m.manifests().to_vec())
        .unwrap_or_default())
}

/// The tag schema fallback index of `subject` in `store`, if there is one.
async fn fallback_index<S: ReadStore + TagStore + ?Sized>(
    store: &S,
    subject: &Digest,
) -> Result<Option<Manifest>> {
    let desc = match store.resolve(&referrers_tag(subject)).await {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let m = store.fetch_manifest(&desc).await?;
    Ok(m.is_index().then_some(m))
}

async fn fetch_manifest_retrying<S: ReadStore + ?Sized>(
    src: &S,
    desc: &Descriptor,
    options: &CopyOptions,
) -> Result<Manifest> {
    let remote = src.location().is_some();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match src.fetch_manifest(desc).await {
            Ok(m) => return Ok(m),
            Err(e) if transient(&e, remote) && attempt <= options.retries => {
                warn!(digest = %desc.digest, attempt, error = %e, "fetching a manifest failed; retrying");
                tokio::time::sleep(backoff(options.retry_backoff, attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Transfer.

/// Whether an error may go away on retry. `remote` says whether the content involved came over
/// the network (the store it was read from has a [`location`](ReadStore::location)).
///
/// - I/O, source-stream and backend failures (the network, a registry's 5xx) may, unless their
///   chain holds a cause a retry cannot cure ([`permanent_cause`]): a refused connection, a
///   timeout that already spent its whole budget, a permission refused, a full or read-only
///   disk.
/// - Content that failed verification may only when it came over the network (damaged in
///   flight); a local store serves the same bytes every time.
/// - Everything else (not found, invalid manifests, sizes, ...) may not.
///
/// Another writer holding the ingest is waited for apart (see [`BUSY_STALL`]).
fn transient(e: &StoreError, remote: bool) -> bool {
    let may = match e {
        StoreError::Verify(_) => remote,
        StoreError::Source { source, .. } if oci_digest::VerifyError::from_io(source).is_some() => {
            remote
        }
        StoreError::Io { .. } | StoreError::Source { .. } | StoreError::Backend { .. } => true,
        _ => false,
    };
    may && permanent_cause(e).is_none()
}

/// The kind of the first [`std::io::Error`] in `e`'s chain that says a retry cannot help:
/// nothing listens at the address (`ConnectionRefused`), a deadline or minimum transfer rate
/// already waited its full time (`TimedOut`: a registry client reports those so), a permission
/// refused, a full or read-only file system. This is how errors of backends this crate does not
/// know (a registry client) are classified: by the standard vocabulary of their causes.
fn permanent_cause(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    use std::io::ErrorKind as K;
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::TimedOut
                    | K::PermissionDenied
                    | K::ReadOnlyFilesystem
                    | K::StorageFull
            ) {
                return Some(io.kind());
            }
            // `io::Error::source` skips the error it wraps (going to that error's source):
            // look at the wrapped error itself.
            if let Some(inner) = io.get_ref() {
                cur = Some(inner);
                continue;
            }
        }
        cur = err.source();
    }
    None
}

/// How long another writer of the same content may hold its ingest without progress before a
/// copy gives up waiting for it.
const BUSY_STALL: Duration = Duration::from_secs(60);
/// How often a copy waiting for another writer looks again.
const BUSY_POLL: Duration = Duration::from_millis(100);

fn is_cancel(e: &StoreError) -> bool {
    matches!(e, StoreError::CopyCancelled { .. })
}

/// Adds `n` bytes to a progress counter without wrapping; returns the new value.
fn add_progress(counter: &AtomicU64, n: u64) -> u64 {
    let before = counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_add(n))
        })
        .unwrap_or_else(|v| v);
    before.saturating_add(n)
}

fn backoff(initial: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(10);
    initial.saturating_mul(factor).min(Duration::from_secs(10))
}

#[derive(Default)]
struct Stats {
    outcomes: HashMap<Digest, NodeReport>,
    failures: Vec<(Digest, StoreError)>,
    retried: usize,
    verified: usize,
}

/// A node settled: `Ok` when it is in the destination.
type Settled = std::result::Result<(), ()>;

struct Run<'a, S: ?Sized, D: ?Sized> {
    src: &'a S,
    dst: &'a D,
    plan: &'a Plan,
    options: &'a CopyOptions,
    sem: Arc<Semaphore>,
    cells: HashMap<Digest, OnceCell<Settled>>,
    stats: Mutex<Stats>,
    done_bytes: Arc<AtomicU64>,
    total: u64,
    mount_from: Option<Location>,
    dst_name: String,
    /// The source is a registry (its content comes over the network).
    remote_source: bool,
}

/// What one attempt at a node did.
struct Done {
    outcome: NodeOutcome,
    bytes: u64,
    resumed_from: u64,
}

impl<S, D> Run<'_, S, D>
where
    S: ReadStore + TagStore + ?Sized,
    D: Store + ?Sized,
{
    fn stats_lock(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn emit(&self, event: ProgressEvent) {
        if let Some(p) = &self.options.progress {
            p(&Progress {
                event,
                done_bytes: self.done_bytes.load(Ordering::Relaxed),
                total_bytes: self.total,
            });
        }
    }

    fn cancelled(&self) -> bool {
        self.options
            .cancel
            .as_ref()
            .is_some_and(CancelToken::is_cancelled)
    }

    fn cancel_error(&self) -> StoreError {
        StoreError::CopyCancelled {
            reference: String::new(),
            report: Box::default(),
        }
    }

    /// Makes sure `digest` (a source digest of the plan) is in the destination, children first.
    /// Settled once per digest; concurrent callers wait for the first.
    fn ensure<'b>(&'b self, digest: &'b Digest) -> BoxFuture<'b, Settled> {
        Box::pin(async move {
            let Some(cell) = self.cells.get(digest) else {
                return Err(());
            };
            *cell
                .get_or_init(|| async {
                    let node = &self.plan.nodes[digest];
                    let children = join_all(node.children.iter().map(|c| self.ensure(c))).await;
                    if children.iter().any(Result::is_err) {
                        self.record(node, NodeOutcome::NotCopied, 0, 0, 0, None);
                        return Err(());
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
            self.emit(ProgressEvent::Finished {
                desc: strip(&node.target),
                outcome,
            });
        }
    }

    /// Transfers one node with retries.
    async fn settle(&self, node: &Node) -> Settled {
        let mut attempt = 0u32;
        // Another writer holding the ingest (a concurrent copy of the same content, in this or
        // another process) is waited for, not counted as a failure, while it makes progress.
        let mut busy: Option<(u64, Instant)> = None;
        loop {
            attempt += 1;
            if self.cancelled() {
                self.record(node, NodeOutcome::NotCopied, 0, 0, attempt - 1, None);
                self.stats_lock()
                    .failures
                    .push((node.target.digest.clone(), self.cancel_error()));
                return Err(());
            }
            let result = {
                let _permit = self.sem.acquire().await.map_err(|_| ())?;
                self.attempt(node).await
            };
            match result {
                Ok(done) => {
                    self.record(
                        node,
                        done.outcome,
                        done.bytes,
                        done.resumed_from,
                        attempt,
                        None,
                    );
                    return Ok(());
                }
                Err(StoreError::IngestBusy { key }) if !self.cancelled() => {
                    attempt -= 1;
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
                        let e = StoreError::IngestBusy { key };
                        warn!(digest = %node.target.digest, error = %e, "another writer holds the content and makes no progress");
                        self.record(
                            node,
                            NodeOutcome::Failed,
                            0,
                            0,
                            attempt,
                            Some(error_chain(&e)),
                        );
                        self.stats_lock()
                            .failures
                            .push((node.target.digest.clone(), e));
                        return Err(());
                    }
                    debug!(digest = %node.target.digest, key, "another writer holds the ingest; waiting");
                    tokio::time::sleep(BUSY_POLL).await;
                }
                Err(e)
                    if transient(&e, self.remote_source)
                        && attempt <= self.options.retries
                        && !self.cancelled() =>
                {
                    warn!(digest = %node.target.digest, attempt, error = %e, "copy attempt failed; retrying");
                    self.stats_lock().retried += 1;
                    self.emit(ProgressEvent::Retrying {
                        desc: strip(&node.target),
                        attempt,
                        error: error_chain(&e),
                    });
                    tokio::time::sleep(backoff(self.options.retry_backoff, attempt)).await;
                }
                Err(e) => {
                    let outcome = if is_cancel(&e) {
                        NodeOutcome::NotCopied
                    } else {
                        warn!(digest = %node.target.digest, attempt, error = %e, "copy of content failed");
                        NodeOutcome::Failed
                    };
                    self.record(node, outcome, 0, 0, attempt, Some(error_chain(&e)));
                    self.stats_lock()
                        .failures
                        .push((node.target.digest.clone(), e));
                    return Err(());
                }
            }
        }
    }

    /// One attempt at one node.
    async fn attempt(&self, node: &Node) -> Result<Done> {
        let target = strip(&node.target);
        let skipped = Done {
            outcome: NodeOutcome::Skipped,
            bytes: 0,
            resumed_from: 0,
        };
        if let Some(size) = self.dst.stat(&target.digest).await? {
            if size == target.size {
                if self.options.verify == VerifyMode::Trust || self.serves(&target).await? {
                    self.add_done(target.size);
                    return Ok(skipped);
                }
                warn!(digest = %target.digest, store = %self.dst_name, "destination claims content it does not serve; storing it again");
                return self.repair(node).await;
            }
            // Another size: a truncated local file, or a registry that answered HEAD without a
            // length. Read it back (at least its last byte) before storing it again.
            let mode = match self.options.verify {
                VerifyMode::Trust => VerifyMode::Range,
                m => m,
            };
            if self.serves_as(&target, mode, false).await? {
                self.add_done(target.size);
                return Ok(skipped);
            }
            warn!(digest = %target.digest, size, expected = target.size, "destination has content of another size; storing it again");
            return self.repair(node).await;
        }
        if let Some(from) = &self.mount_from
            && !target.is_manifest()
            && self.dst.mount(&target, from).await?
        {
            if self.options.verify != VerifyMode::Trust && !self.serves(&target).await? {
                warn!(digest = %target.digest, store = %self.dst_name, "mount claimed success but the content is not served; uploading it");
                return self.repair(node).await;
            }
            self.add_done(target.size);
            return Ok(Done {
                outcome: NodeOutcome::Mounted,
                bytes: 0,
                resumed_from: 0,
            });
        }
        if let Some(bytes) = &node.bytes {
            self.emit(ProgressEvent::Started {
                desc: target.clone(),
                resumed_from: 0,
            });
            self.dst.push_bytes(&target, bytes.clone()).await?;
            if self.options.verify != VerifyMode::Trust && !self.serves(&target).await? {
                warn!(digest = %target.digest, store = %self.dst_name, "manifest accepted but not served; storing it again");
                return self.repair(node).await;
            }
            self.add_done(target.size);
            return Ok(Done {
                outcome: NodeOutcome::Copied,
                bytes: target.size,
                resumed_from: 0,
            });
        }
        self.transfer_blob(node).await
    }

    fn add_done(&self, n: u64) {
        add_progress(&self.done_bytes, n);
    }

    /// Streams a blob from the source into a resumable writer of the destination (or a plain
    /// push when the destination has no resumable writers).
    async fn transfer_blob(&self, node: &Node) -> Result<Done> {
        let desc = strip(&node.target);
        let key = ingest_key(&desc.digest);
        let mut writer = match self.dst.writer(&key, &desc).await {
            Ok(w) => w,
            Err(StoreError::Unsupported { .. }) => {
                self.emit(ProgressEvent::Started {
                    desc: desc.clone(),
                    resumed_from: 0,
                });
                // The destination's push verifies every byte: no second hash at the source.
                let stream = self.counted(&desc, self.src.fetch_unverified(&node.src).await?);
                self.dst.push(&desc, stream).await?;
                return Ok(Done {
                    outcome: NodeOutcome::Copied,
                    bytes: desc.size,
                    resumed_from: 0,
                });
            }
            Err(e) => return Err(e),
        };
        let resumed_from = writer.offset().min(desc.size);
        self.emit(ProgressEvent::Started {
            desc: desc.clone(),
            resumed_from,
        });
        let mut done = resumed_from;
        let mut sent = 0u64;
        self.add_done(resumed_from);
        let result: Result<()> = async {
            // The writer verifies every byte at commit (as it does for a resumed range), so
            // the source need not hash them too.
            let mut stream = if resumed_from == 0 {
                self.src.fetch_unverified(&node.src).await?
            } else if resumed_from < desc.size {
                debug!(digest = %desc.digest, offset = resumed_from, "resuming an interrupted transfer");
                self.src
                    .fetch_range(&node.src, resumed_from..desc.size)
                    .await?
            } else {
                crate::traits::bytes_stream(Bytes::new())
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
                if self.cancelled() {
                    // The writer is dropped, not aborted: its ingest stays for a later copy.
                    return Err(self.cancel_error());
                }
                let Some(chunk) = next else { break };
                let chunk = chunk.map_err(|source| StoreError::Source {
                    digest: desc.digest.clone(),
                    source,
                })?;
                let n = chunk.len() as u64;
                writer.write(chunk).await?;
                done = done.saturating_add(n);
                sent = sent.saturating_add(n);
                self.add_done(n);
                self.emit(ProgressEvent::Bytes {
                    digest: desc.digest.clone(),
                    done,
                    size: desc.size,
                });
            }
            writer.commit().await.map(|_| ())
        }
        .await;
        if let Err(e) = result {
            // Bytes counted by this attempt are not done after all (a retry counts them again).
            let _ = self
                .done_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(v.saturating_sub(done))
                });
            return Err(e);
        }
        Ok(Done {
            outcome: NodeOutcome::Copied,
            bytes: sent,
            resumed_from,
        })
    }

    /// A stream that counts bytes into the progress as they pass.
    fn counted(&self, desc: &Descriptor, stream: BlobStream) -> BlobStream {
        let progress = self.options.progress.clone();
        let total = self.total;
        let digest = desc.digest.clone();
        let size = desc.size;
        let done_bytes = Arc::clone(&self.done_bytes);
        let mut done = 0u64;
        Box::pin(stream.map(move |item| {
            if let Ok(chunk) = &item {
                let n = chunk.len() as u64;
                done = done.saturating_add(n);
                let overall = add_progress(&done_bytes, n);
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

    /// Whether the destination really serves `desc` (read back as the verify mode says). Any
    /// failure to serve content the destination claims counts as a lie (the content is then
    /// stored again), a protocol violation of a registry included.
    async fn serves(&self, desc: &Descriptor) -> Result<bool> {
        self.serves_as(desc, self.options.verify, false).await
    }

    /// [`serves`](Self::serves) with an explicit mode. With `strict` (the check after a
    /// repair), only a clear "not there / not these bytes" answer counts as not served; other
    /// failures (a backend error that may be the network) are returned, so the piece of content
    /// is retried rather than declared a lie.
    async fn serves_as(&self, desc: &Descriptor, mode: VerifyMode, strict: bool) -> Result<bool> {
        let r = read_back(self.dst, desc, mode).await;
        self.stats_lock().verified += 1;
        match r {
            Ok(()) => Ok(true),
            Err(e)
                if e.is_not_found()
                    || matches!(
                        e,
                        StoreError::Verify(_)
                            | StoreError::Source { .. }
                            | StoreError::SizeMismatch { .. }
                    ) =>
            {
                debug!(digest = %desc.digest, error = %e, "read-back failed");
                Ok(false)
            }
            Err(e @ StoreError::Backend { .. }) if !strict => {
                warn!(digest = %desc.digest, error = %error_chain(&e), "read-back failed; taking the content as not served");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Stores a node again over a lying existence answer, then checks that it is served.
    async fn repair(&self, node: &Node) -> Result<Done> {
        let target = strip(&node.target);
        self.emit(ProgressEvent::Started {
            desc: target.clone(),
            resumed_from: 0,
        });
        let data = match &node.bytes {
            Some(b) => crate::traits::bytes_stream(b.clone()),
            None => self.counted(&target, self.src.fetch(&node.src).await?),
        };
        if node.bytes.is_some() {
            self.add_done(target.size);
        }
        self.dst.push_forced(&target, data).await?;
        let mode = match self.options.verify {
            VerifyMode::Trust => VerifyMode::Range,
            m => m,
        };
        if !self.serves_as(&target, mode, true).await? {
            return Err(StoreError::ClaimsUnserved {
                store: self.dst_name.clone(),
                digest: target.digest.clone(),
                detail: "it still does not serve the content after it was stored again".to_owned(),
            });
        }
        Ok(Done {
            outcome: NodeOutcome::Repaired,
            bytes: target.size,
            resumed_from: 0,
        })
    }

    /// Tags the result, maintains the referrers fallback index, and reads the result back.
    async fn finish(
        &self,
        result: &Descriptor,
        tag: Option<&str>,
        referrers: &[(Descriptor, Descriptor)],
    ) -> Result<()> {
        let result = strip(result);
        if let Some(tag) = tag {
            self.tag_verified(&result, tag).await?;
        }
        // Referrers: a store without a referrers index gets the tag schema fallback.
        let mut by_subject: Vec<(Descriptor, Vec<Descriptor>)> = Vec::new();
        for (s, r) in referrers {
            match by_subject.iter_mut().find(|(x, _)| x.digest == s.digest) {
                Some((_, list)) => list.push(r.clone()),
                None => by_subject.push((s.clone(), vec![r.clone()])),
            }
        }
        for (subject, list) in by_subject {
            self.index_referrers(&subject, &list).await?;
        }
        if self.options.verify != VerifyMode::Trust {
            for d in &self.plan.order {
                let n = &self.plan.nodes[d];
                let target = strip(&n.target);
                if !self.serves(&target).await? {
                    return Err(StoreError::ClaimsUnserved {
                        store: self.dst_name.clone(),
                        digest: target.digest,
                        detail: "the copied content does not read back".to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    async fn tag_verified(&self, result: &Descriptor, tag: &str) -> Result<()> {
        self.dst.tag(result, tag).await?;
        if self.options.verify == VerifyMode::Trust {
            return Ok(());
        }
        let ok = matches!(self.dst.resolve(tag).await, Ok(d) if d.digest == result.digest);
        if ok {
            return Ok(());
        }
        warn!(tag, digest = %result.digest, store = %self.dst_name, "tag does not resolve to the copied root; storing the root again");
        let node = self
            .plan
            .nodes
            .values()
            .find(|n| n.target.digest == result.digest);
        if let Some(node) = node {
            self.repair(node).await?;
        }
        self.dst.tag(result, tag).await?;
        match self.dst.resolve(tag).await {
            Ok(d) if d.digest == result.digest => Ok(()),
            Ok(d) => Err(StoreError::ClaimsUnserved {
                store: self.dst_name.clone(),
                digest: result.digest.clone(),
                detail: format!("tag {tag:?} resolves to {} after it was written", d.digest),
            }),
            Err(e) => Err(StoreError::ClaimsUnserved {
                store: self.dst_name.clone(),
                digest: result.digest.clone(),
                detail: format!("tag {tag:?} does not resolve after it was written: {e}"),
            }),
        }
    }

    /// Makes `referrers` of `subject` discoverable in the destination: nothing to do when its
    /// referrers API lists them, else the tag schema fallback index is extended.
    async fn index_referrers(&self, subject: &Descriptor, referrers: &[Descriptor]) -> Result<()> {
        // A registry whose referrers API lists them needs no fallback tag. A local store (a
        // layout answers referrers by subject too) still gets it: the tag is the convention
        // other tools reading the layout understand.
        if self.dst.location().is_some()
            && let Some(listed) = self.dst.referrers(subject).await?
            && referrers
                .iter()
                .all(|r| listed.iter().any(|l| l.digest == r.digest))
        {
            return Ok(());
        }
        let existing = fallback_index(self.dst, &subject.digest).await?;
        let mut entries: Vec<Descriptor> = existing
            .as_ref()
            .map(|m| m.manifests().to_vec())
            .unwrap_or_default();
        let before = entries.len();
        for r in referrers {
            if !entries.iter().any(|e| e.digest == r.digest) {
                entries.push(r.clone());
            }
        }
        if entries.len() == before && existing.is_some() {
            return Ok(());
        }
        let index = referrers_index(&subject.digest, entries)?;
        let desc = index.descriptor();
        self.dst.push_bytes(&desc, index.raw().clone()).await?;
        self.dst.tag(&desc, &referrers_tag(&subject.digest)).await
    }

    fn report(&self, reference: &str, root: &Descriptor, plan: &Plan) -> CopyReport {
        let mut st = self.stats_lock();
        let mut r = CopyReport {
            reference: reference.to_owned(),
            source: Some(root.clone()),
            dropped: plan.dropped.clone(),
            foreign: plan.foreign.clone(),
            retried: st.retried,
            verified: st.verified,
            ..CopyReport::default()
        };
        for d in &plan.order {
            let n = &plan.nodes[d];
            let nr = st.outcomes.remove(d).unwrap_or_else(|| NodeReport {
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

/// Reads `desc` back from `store`: manifests (and everything under [`VerifyMode::Full`]) in
/// full, verified; blobs under [`VerifyMode::Range`] by their last byte, which must arrive.
async fn read_back<D: ReadStore + ?Sized>(
    store: &D,
    desc: &Descriptor,
    mode: VerifyMode,
) -> Result<()> {
    if desc.is_manifest() || mode == VerifyMode::Full || desc.size == 0 {
        let mut s = store.fetch(desc).await?;
        let mut got = 0u64;
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(|e| StoreError::io("read back", "<destination>", e))?;
            got = got.saturating_add(chunk.len() as u64);
        }
        if got != desc.size {
            return Err(StoreError::SizeMismatch {
                digest: desc.digest.clone(),
                expected: desc.size,
                actual: got,
            });
        }
        return Ok(());
    }
    let last = desc.size - 1;
    let mut s = store.fetch_range(desc, last..desc.size).await?;
    let mut got = 0u64;
    while let Some(chunk) = s.next().await {
        match chunk {
            Ok(c) => got = got.saturating_add(c.len() as u64),
            Err(source) => {
                return Err(StoreError::Source {
                    digest: desc.digest.clone(),
                    source,
                });
            }
        }
    }
    if got != 1 {
        return Err(StoreError::SizeMismatch {
            digest: desc.digest.clone(),
            expected: 1,
            actual: got,
        });
    }
    Ok(())
}

/// An error and its chain of sources, joined by `: ` (for reports, logs and messages).
///
/// ```
/// let e = oci_store::StoreError::io("open", "/x", std::io::Error::other("denied"));
/// assert_eq!(oci_store::error_chain(&e), "open /x: denied");
/// ```
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::traits::{BlobWriter, IngestStatus, PushOutcome, WriteStore};
    use async_trait::async_trait;
    use oci_manifest::build::ImageManifestBuilder;
    use std::ops::Range;
    use std::sync::atomic::AtomicUsize;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    async fn put(store: &MemoryStore, media_type: &str, data: Vec<u8>) -> Descriptor {
        let d = Descriptor::of(media_type, &data);
        store.push_bytes(&d, Bytes::from(data)).await.unwrap();
        d
    }

    /// An image for `arch` with its own layer and a layer shared by every arch.
    async fn image(store: &MemoryStore, arch: &str, docker: bool) -> Descriptor {
        let (cfg_t, layer_t) = if docker {
            (media_types::DOCKER_CONFIG, media_types::DOCKER_LAYER_GZIP)
        } else {
            (media_types::OCI_CONFIG, media_types::OCI_LAYER_GZIP)
        };
        let shared = put(store, layer_t, vec![7u8; 3000]).await;
        let own = put(
            store,
            layer_t,
            format!("layer of {arch}").repeat(500).into_bytes(),
        )
        .await;
        let cfg = put(
            store,
            cfg_t,
            format!(r#"{{"architecture":"{arch}","os":"linux"}}"#).into_bytes(),
        )
        .await;
        let b = if docker {
            ImageManifestBuilder::docker(cfg)
        } else {
            ImageManifestBuilder::oci(cfg)
        };
        let m = b.layer(shared).layer(own).build().unwrap();
        store
            .push_bytes(&m.descriptor(), m.raw().clone())
            .await
            .unwrap();
        m.descriptor().with_platform(Platform::new("linux", arch))
    }

    /// A three-platform index tagged `multi`.
    async fn multi(store: &MemoryStore, docker: bool) -> Manifest {
        let mut entries = Vec::new();
        for arch in ["amd64", "arm64", "s390x"] {
            entries.push(image(store, arch, docker).await);
        }
        let b = if docker {
            IndexBuilder::docker()
        } else {
            IndexBuilder::oci()
        };
        let index = b.manifests(entries).build().unwrap();
        store
            .push_bytes(&index.descriptor(), index.raw().clone())
            .await
            .unwrap();
        store.tag(&index.descriptor(), "multi").await.unwrap();
        index
    }

    /// Every descriptor below the tag `tag` of `store` is stored there.
    async fn complete(store: &MemoryStore, tag: &str) -> Vec<Descriptor> {
        let root = store.resolve(tag).await.unwrap();
        let all = crate::walk::walk(store, &root, 8).await.unwrap();
        for d in &all {
            let got = store.fetch_bytes(d, 1 << 30).await.unwrap();
            assert_eq!(got.len() as u64, d.size);
        }
        all
    }

    /// A source that counts the bytes it serves and can fail the first fetches of content.
    #[derive(Clone, Default)]
    struct Src {
        inner: MemoryStore,
        served: Arc<AtomicU64>,
        fetches: Arc<Mutex<HashMap<Digest, usize>>>,
        fail_first: usize,
        fail_always: Option<Digest>,
        /// Yield to the runtime between chunks (so concurrent copies interleave).
        chunked: bool,
        /// Serve this content with one byte flipped.
        corrupt: Option<Digest>,
        /// Claim to be a registry (content comes over the network).
        remote: bool,
    }

    #[async_trait]
    impl ReadStore for Src {
        async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
            self.inner.stat(digest).await
        }
        async fn fetch(&self, desc: &Descriptor) -> Result<BlobStream> {
            let n = {
                let mut f = self.fetches.lock().unwrap();
                let n = f.entry(desc.digest.clone()).or_default();
                *n += 1;
                *n
            };
            if self.fail_always.as_ref() == Some(&desc.digest) {
                return Err(StoreError::NotFound {
                    digest: desc.digest.clone(),
                });
            }
            if self.corrupt.as_ref() == Some(&desc.digest) {
                let mut data = self.inner.fetch_bytes(desc, 1 << 30).await?.to_vec();
                data[0] ^= 0xff;
                return Ok(crate::traits::bytes_stream(Bytes::from(data)));
            }
            if !desc.is_manifest() && n <= self.fail_first {
                // Half the bytes, then a dropped connection.
                let data = self.inner.fetch_bytes(desc, 1 << 30).await?;
                let half = data.slice(..data.len() / 2);
                self.served.fetch_add(half.len() as u64, Ordering::SeqCst);
                let items: Vec<std::io::Result<Bytes>> = vec![
                    Ok(half),
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "connection reset",
                    )),
                ];
                return Ok(Box::pin(futures_util::stream::iter(items)));
            }
            let served = Arc::clone(&self.served);
            let s = self.inner.fetch(desc).await?;
            let s = s.inspect(move |c| {
                if let Ok(c) = c {
                    served.fetch_add(c.len() as u64, Ordering::SeqCst);
                }
            });
            if self.chunked {
                let data = crate::traits::collect(Box::pin(s), 1 << 30).await?;
                let pieces: Vec<Bytes> = data.chunks(1000).map(Bytes::copy_from_slice).collect();
                return Ok(Box::pin(futures_util::stream::iter(pieces).then(
                    |c| async {
                        tokio::task::yield_now().await;
                        Ok(c)
                    },
                )));
            }
            Ok(Box::pin(s))
        }
        fn location(&self) -> Option<Location> {
            self.remote
                .then(|| Location::new("registry.test", "source"))
        }
        async fn fetch_range(&self, desc: &Descriptor, range: Range<u64>) -> Result<BlobStream> {
            let served = Arc::clone(&self.served);
            let s = self.inner.fetch_range(desc, range).await?;
            Ok(Box::pin(s.inspect(move |c| {
                if let Ok(c) = c {
                    served.fetch_add(c.len() as u64, Ordering::SeqCst);
                }
            })))
        }
    }

    /// Tags of a test wrapper are its inner store's.
    macro_rules! inner_tags {
        ($t:ty) => {
            #[async_trait]
            impl TagStore for $t {
                async fn resolve(&self, tag: &str) -> Result<Descriptor> {
                    self.inner.resolve(tag).await
                }
                async fn tag(&self, desc: &Descriptor, tag: &str) -> Result<()> {
                    self.inner.tag(desc, tag).await
                }
                async fn untag(&self, tag: &str) -> Result<()> {
                    self.inner.untag(tag).await
                }
                async fn tags(&self) -> Result<Vec<String>> {
                    self.inner.tags().await
                }
            }
        };
    }

    inner_tags!(Src);

    /// A destination that claims content in `lies` (stat answers its size) without serving it
    /// until it is pushed with `push_forced`; with `stubborn`, even then.
    #[derive(Clone, Default)]
    struct Liar {
        inner: MemoryStore,
        lies: Arc<Mutex<HashMap<Digest, u64>>>,
        stubborn: bool,
        /// `stat` answers 0 for what it has (a registry's HEAD without a length).
        no_length: bool,
        forced: Arc<AtomicUsize>,
    }

    impl Liar {
        fn lie(&self, d: &Descriptor) {
            self.lies.lock().unwrap().insert(d.digest.clone(), d.size);
        }
        fn lying(&self, d: &Digest) -> bool {
            self.lies.lock().unwrap().contains_key(d)
        }
    }

    #[async_trait]
    impl ReadStore for Liar {
        async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
            if let Some(size) = self.lies.lock().unwrap().get(digest) {
                return Ok(Some(*size));
            }
            let size = self.inner.stat(digest).await?;
            Ok(if self.no_length {
                size.map(|_| 0)
            } else {
                size
            })
        }
        async fn fetch(&self, desc: &Descriptor) -> Result<BlobStream> {
            if self.lying(&desc.digest) {
                // 200 and then nothing, as the stale registry does.
                return Ok(Box::pin(oci_digest::VerifyingStream::new(
                    futures_util::stream::empty::<std::io::Result<Bytes>>(),
                    desc.digest.clone(),
                    desc.size,
                )));
            }
            self.inner.fetch(desc).await
        }
        async fn fetch_range(&self, desc: &Descriptor, range: Range<u64>) -> Result<BlobStream> {
            if self.lying(&desc.digest) {
                return Ok(crate::traits::bytes_stream(Bytes::new()));
            }
            self.inner.fetch_range(desc, range).await
        }
    }

    #[async_trait]
    impl WriteStore for Liar {
        async fn push(&self, desc: &Descriptor, data: BlobStream) -> Result<PushOutcome> {
            if self.lying(&desc.digest) {
                return Ok(PushOutcome::AlreadyExists);
            }
            self.inner.push(desc, data).await
        }
        async fn writer(&self, key: &str, desc: &Descriptor) -> Result<Box<dyn BlobWriter>> {
            self.inner.writer(key, desc).await
        }
        async fn ingest_status(&self, key: &str) -> Result<Option<IngestStatus>> {
            self.inner.ingest_status(key).await
        }
        async fn ingests(&self) -> Result<Vec<IngestStatus>> {
            self.inner.ingests().await
        }
        async fn abort_ingest(&self, key: &str) -> Result<()> {
            self.inner.abort_ingest(key).await
        }
        async fn delete(&self, digest: &Digest) -> Result<()> {
            self.inner.delete(digest).await
        }
        async fn push_forced(&self, desc: &Descriptor, data: BlobStream) -> Result<PushOutcome> {
            self.forced.fetch_add(1, Ordering::SeqCst);
            if !self.stubborn {
                self.lies.lock().unwrap().remove(&desc.digest);
            }
            self.inner.push(desc, data).await
        }
    }

    inner_tags!(Liar);

    #[test]
    fn copies_a_multi_platform_index_post_order_with_dedup() {
        rt().block_on(async {
            let src = Src::default();
            let index = multi(&src.inner, false).await;
            let dst = MemoryStore::new();
            let order = Arc::new(Mutex::new(Vec::new()));
            let o = Arc::clone(&order);
            let opts = CopyOptions::default().with_progress(move |p| {
                if let ProgressEvent::Finished { desc, .. } = &p.event {
                    o.lock().unwrap().push(desc.digest.clone());
                }
            });
            let r = copy(&src, "multi", &dst, Some("copied"), &opts)
                .await
                .unwrap();
            let all = complete(&dst, "copied").await;
            // index + 3 manifests + 3 configs + 3 own layers + 1 shared layer.
            assert_eq!(all.len(), 11);
            assert_eq!((r.copied, r.skipped, r.failed), (11, 0, 0));
            assert_eq!(r.result.as_ref().unwrap().digest, *index.digest());
            let total: u64 = all.iter().map(|d| d.size).sum();
            assert_eq!(r.total_bytes, total);
            assert_eq!(r.bytes_copied, total);
            // Each piece of content was fetched once, the shared layer included.
            assert!(src.fetches.lock().unwrap().values().all(|n| *n == 1));
            assert_eq!(src.served.load(Ordering::SeqCst), total);
            // Children before parents.
            let order = order.lock().unwrap().clone();
            for d in &all {
                if d.is_manifest() {
                    let m = dst.fetch_manifest(d).await.unwrap();
                    let at = order.iter().position(|x| x == &d.digest).unwrap();
                    for c in m.children() {
                        assert!(order.iter().position(|x| x == &c.digest).unwrap() < at);
                    }
                }
            }
            assert_eq!(order.last(), Some(index.digest()));
        });
    }

    #[test]
    fn second_copy_skips_everything_and_digest_reference_works() {
        rt().block_on(async {
            let src = Src::default();
            let index = multi(&src.inner, false).await;
            let dst = MemoryStore::new();
            copy(&src, "multi", &dst, None, &CopyOptions::default())
                .await
                .unwrap();
            assert_eq!(dst.resolve("multi").await.unwrap().digest, *index.digest());
            let before = src.served.load(Ordering::SeqCst);
            let r = copy(
                &src,
                index.digest().as_str(),
                &dst,
                None,
                &CopyOptions::default(),
            )
            .await
            .unwrap();
            assert_eq!((r.copied, r.skipped, r.bytes_copied), (0, 11, 0));
            assert_eq!(r.tag, None);
            // Only manifests were read again (for the plan).
            let manifests: u64 = complete(&dst, "multi")
                .await
                .iter()
                .filter(|d| d.is_manifest())
                .map(|d| d.size)
                .sum();
            assert_eq!(src.served.load(Ordering::SeqCst) - before, manifests);
        });
    }

    #[test]
    fn platform_filter_makes_a_reduced_index_with_only_what_was_copied() {
        rt().block_on(async {
            let src = Src::default();
            let index = multi(&src.inner, false).await;
            let dst = MemoryStore::new();
            let opts = CopyOptions::default().with_platform(Platform::new("linux", "arm64"));
            let r = copy(&src, "multi", &dst, None, &opts).await.unwrap();
            let result = r.result.clone().unwrap();
            assert_ne!(result.digest, *index.digest());
            assert_eq!(r.dropped.len(), 2);
            let all = complete(&dst, "multi").await;
            // reduced index + manifest + config + 2 layers, nothing else.
            assert_eq!(all.len(), 5);
            assert_eq!(r.copied, 5);
            let reduced = dst.fetch_manifest(&result).await.unwrap();
            assert_eq!(reduced.manifests().len(), 1);
            assert_eq!(
                reduced.manifests()[0].platform,
                Some(Platform::new("linux", "arm64"))
            );
            assert!(!dst.exists(index.digest()).await.unwrap());
            for dropped in &r.dropped {
                assert!(!dst.exists(&dropped.digest).await.unwrap());
            }
            // No match: a typed error naming the index, nothing written.
            let none = CopyOptions::default().with_platform(Platform::new("windows", "amd64"));
            let empty = MemoryStore::new();
            let e = copy(&src, "multi", &empty, None, &none).await.unwrap_err();
            assert!(
                matches!(&e, StoreError::NoMatchingPlatform { digest, .. } if digest == index.digest()),
                "{e:?}"
            );
            let chain = error_chain(&e);
            assert!(
                chain.contains("no image for platform windows/amd64") && chain.contains("linux/arm64"),
                "{chain}"
            );
            assert!(empty.tags().await.unwrap().is_empty());
        });
    }

    #[test]
    fn converts_docker_to_oci_and_back() {
        rt().block_on(async {
            let src = Src::default();
            let index = multi(&src.inner, true).await;
            let oci = MemoryStore::new();
            let opts = CopyOptions::default().with_format(Some(Flavor::Oci));
            let r = copy(&src, "multi", &oci, None, &opts).await.unwrap();
            let root = oci.resolve("multi").await.unwrap();
            assert_ne!(root.digest, *index.digest());
            assert_eq!(root.media_type, media_types::OCI_INDEX);
            for d in complete(&oci, "multi").await {
                if d.is_manifest() {
                    let m = oci.fetch_manifest(&d).await.unwrap();
                    assert!(!m.kind().is_docker(), "{}", m.media_type());
                }
            }
            assert_eq!(r.copied, 11);
            // Back to Docker: the original bytes again.
            let back = MemoryStore::new();
            let opts = CopyOptions::default().with_format(Some(Flavor::Docker));
            copy(&oci, "multi", &back, None, &opts).await.unwrap();
            assert_eq!(back.resolve("multi").await.unwrap().digest, *index.digest());
        });
    }

    #[test]
    fn transient_failures_retry_per_node_and_resume_the_partial_blob() {
        rt().block_on(async {
            let src = Src {
                fail_first: 1,
                ..Src::default()
            };
            multi(&src.inner, false).await;
            let dst = MemoryStore::new();
            let opts = CopyOptions::default().with_retries(2, Duration::from_millis(1));
            let r = copy(&src, "multi", &dst, None, &opts).await.unwrap();
            complete(&dst, "multi").await;
            // Every blob failed once (7 blobs) and was retried; the retry resumed after the
            // half already written, so no byte was sent twice.
            assert_eq!(r.retried, 7);
            let total: u64 = r.total_bytes;
            assert_eq!(src.served.load(Ordering::SeqCst), total);
            assert!(r.bytes_resumed > 0);
            assert!(
                r.nodes
                    .iter()
                    .filter(|n| !n.desc.is_manifest())
                    .all(|n| n.attempts == 2)
            );
        });
    }

    #[test]
    fn a_missing_blob_fails_that_branch_only_and_writes_no_tag() {
        rt().block_on(async {
            let mut src = Src::default();
            let index = multi(&src.inner, false).await;
            let arm = &index.manifests()[1];
            let arm_m = src.inner.fetch_manifest(arm).await.unwrap();
            let lost = arm_m.layers()[1].clone();
            src.fail_always = Some(lost.digest.clone());
            let dst = MemoryStore::new();
            let opts = CopyOptions::default().with_retries(1, Duration::from_millis(1));
            let e = copy(&src, "multi", &dst, None, &opts).await.unwrap_err();
            let StoreError::CopyFailed {
                reference,
                digest,
                failed,
                report,
                source,
            } = e
            else {
                panic!("unexpected {e:?}")
            };
            assert_eq!(reference, "multi");
            assert_eq!(digest, lost.digest);
            assert_eq!(failed, 1);
            assert!(matches!(*source, StoreError::NotFound { .. }));
            assert!(dst.tags().await.unwrap().is_empty());
            // The other platforms are complete; neither the arm64 manifest nor the index is there.
            assert!(!dst.exists(&arm.digest).await.unwrap());
            assert!(!dst.exists(index.digest()).await.unwrap());
            for other in [&index.manifests()[0], &index.manifests()[2]] {
                assert!(dst.exists(&other.digest).await.unwrap());
            }
            assert_eq!(report.failed, 1);
            assert!(!report.is_complete());
            let failed_node = report
                .nodes
                .iter()
                .find(|n| n.outcome == NodeOutcome::Failed);
            assert_eq!(failed_node.unwrap().desc.digest, lost.digest);
            // NotFound is not transient: one attempt only.
            assert_eq!(failed_node.unwrap().attempts, 1);
        });
    }

    #[test]
    fn cancellation_leaves_both_sides_consistent_and_a_rerun_finishes() {
        rt().block_on(async {
            let src = Src::default();
            multi(&src.inner, false).await;
            let dst = MemoryStore::new();
            let token = CancelToken::new();
            let t = token.clone();
            let opts = CopyOptions::default()
                .with_jobs(1)
                .with_cancel(token)
                .with_progress(move |p| {
                    if matches!(p.event, ProgressEvent::Finished { .. }) {
                        t.cancel();
                    }
                });
            let e = copy(&src, "multi", &dst, None, &opts).await.unwrap_err();
            let StoreError::CopyCancelled { report, .. } = e else {
                panic!("unexpected {e:?}")
            };
            assert!(report.copied >= 1 && report.copied < 11, "{report}");
            assert!(dst.tags().await.unwrap().is_empty());
            // Every manifest in dst has all its children.
            let st = dst.clone();
            for n in &report.nodes {
                if n.desc.is_manifest() && st.exists(&n.desc.digest).await.unwrap() {
                    let m = st.fetch_manifest(&n.desc).await.unwrap();
                    for c in m.children() {
                        assert!(st.exists(&c.digest).await.unwrap());
                    }
                }
            }
            let r = copy(&src, "multi", &dst, None, &CopyOptions::default())
                .await
                .unwrap();
            assert_eq!(r.copied + r.skipped, 11);
            assert_eq!(r.skipped, report.copied);
            complete(&dst, "multi").await;
        });
    }

    #[test]
    fn verify_mode_detects_and_repairs_lies() {
        rt().block_on(async {
            let src = Src::default();
            let index = multi(&src.inner, false).await;
            let m = src.inner.fetch_manifest(&index.manifests()[0]).await.unwrap();
            let lost_blob = m.layers()[0].clone();
            let lost_manifest = index.manifests()[2].clone();

            // Trusting the liar: the copy "succeeds" but the content is not served.
            let liar = Liar::default();
            liar.lie(&lost_blob);
            liar.lie(&lost_manifest);
            let r = copy(&src, "multi", &liar, None, &CopyOptions::default())
                .await
                .unwrap();
            assert_eq!(r.skipped, 2);
            assert!(liar.fetch_bytes(&lost_blob, 1 << 20).await.is_err());

            // Verifying: both lies found and repaired, the result reads back.
            for mode in [VerifyMode::Range, VerifyMode::Full] {
                let liar = Liar::default();
                liar.lie(&lost_blob);
                liar.lie(&lost_manifest);
                let opts = CopyOptions::default().with_verify(mode);
                let r = copy(&src, "multi", &liar, None, &opts).await.unwrap();
                assert_eq!(r.repaired, 2, "{mode:?}");
                assert_eq!(liar.forced.load(Ordering::SeqCst), 2);
                assert!(r.verified >= 11);
                complete(&liar.inner, "multi").await;
            }

            // Existence answered without a length: read back, found served, skipped.
            let vague = Liar {
                no_length: true,
                ..Liar::default()
            };
            copy(&src, "multi", &vague, None, &CopyOptions::default())
                .await
                .unwrap();
            let r = copy(&src, "multi", &vague, None, &CopyOptions::default())
                .await
                .unwrap();
            assert_eq!((r.skipped, r.repaired, r.bytes_copied), (11, 0, 0), "{r}");
            assert_eq!(vague.forced.load(Ordering::SeqCst), 0);

            // A liar that cannot be repaired: the error says so, naming the digest.
            let stubborn = Liar {
                stubborn: true,
                ..Liar::default()
            };
            stubborn.lie(&lost_blob);
            let opts = CopyOptions::default().with_verify(VerifyMode::Range);
            let e = copy(&src, "multi", &stubborn, None, &opts).await.unwrap_err();
            let StoreError::CopyFailed { source, .. } = &e else {
                panic!("unexpected {e:?}")
            };
            assert!(
                matches!(&**source, StoreError::ClaimsUnserved { digest, .. } if *digest == lost_blob.digest),
                "{source:?}"
            );
            assert!(error_chain(&e).contains("does not serve"), "{}", error_chain(&e));
            assert!(stubborn.tags().await.unwrap().is_empty());
        });
    }

    #[test]
    fn referrers_follow_through_the_tag_schema() {
        rt().block_on(async {
            let src = Src::default();
            let index = multi(&src.inner, false).await;
            // A signature of the index, listed by a fallback index tagged sha256-<hex>.
            let sig_layer = put(
                &src.inner,
                "application/vnd.dev.cosign.simplesigning.v1+json",
                b"sig".to_vec(),
            )
            .await;
            let sig = ImageManifestBuilder::artifact("application/vnd.dev.sigstore.bundle+json")
                .layer(sig_layer.clone())
                .subject(index.descriptor())
                .build()
                .unwrap();
            src.inner
                .push_bytes(&sig.descriptor(), sig.raw().clone())
                .await
                .unwrap();
            let fallback = IndexBuilder::oci()
                .manifest(sig.referrer_descriptor())
                .build()
                .unwrap();
            src.inner
                .push_bytes(&fallback.descriptor(), fallback.raw().clone())
                .await
                .unwrap();
            src.inner
                .tag(&fallback.descriptor(), &referrers_tag(index.digest()))
                .await
                .unwrap();

            let without = MemoryStore::new();
            copy(&src, "multi", &without, None, &CopyOptions::default())
                .await
                .unwrap();
            assert!(!without.exists(sig.digest()).await.unwrap());

            let with = MemoryStore::new();
            let opts = CopyOptions::default().with_referrers(true);
            let r = copy(&src, "multi", &with, None, &opts).await.unwrap();
            assert_eq!(r.referrers.len(), 1);
            assert!(with.exists(sig.digest()).await.unwrap());
            assert!(with.exists(&sig_layer.digest).await.unwrap());
            let listed = list_referrers(&with, &index.descriptor()).await.unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].digest, *sig.digest());
        });
    }

    #[test]
    fn leased_copy_pins_content_until_tagged_and_releases() {
        rt().block_on(async {
            let src = Src::default();
            multi(&src.inner, false).await;
            let dst = MemoryStore::new();
            let seen = Arc::new(AtomicUsize::new(0));
            let (d2, s2) = (dst.clone(), Arc::clone(&seen));
            let opts = CopyOptions::default().with_progress(move |p| {
                if matches!(p.event, ProgressEvent::Finished { .. }) {
                    // A collection in the middle of the copy removes nothing already copied.
                    let d3 = d2.clone();
                    let h = std::thread::spawn(move || {
                        rt().block_on(async move {
                            d3.gc(&crate::gc::GcOptions::default().with_min_age(Duration::ZERO))
                                .await
                                .unwrap()
                        })
                    });
                    let report = h.join().unwrap();
                    assert!(report.removed.is_empty(), "{report:?}");
                    s2.fetch_add(1, Ordering::SeqCst);
                }
            });
            copy_leased(&src, "multi", &dst, None, &opts).await.unwrap();
            assert_eq!(seen.load(Ordering::SeqCst), 11);
            assert!(dst.leases().await.unwrap().is_empty());
            complete(&dst, "multi").await;
            let gc = dst
                .gc(&crate::gc::GcOptions::default().with_min_age(Duration::ZERO))
                .await
                .unwrap();
            assert!(gc.removed.is_empty());

            // Unleased, the same collections would remove what is not yet tagged.
            let bare = MemoryStore::new();
            let b2 = bare.clone();
            let removed = Arc::new(AtomicUsize::new(0));
            let r2 = Arc::clone(&removed);
            let opts = CopyOptions::default().with_jobs(1).with_progress(move |p| {
                if matches!(p.event, ProgressEvent::Finished { .. }) {
                    let b3 = b2.clone();
                    let n = std::thread::spawn(move || {
                        rt().block_on(async move {
                            b3.gc(&crate::gc::GcOptions::default().with_min_age(Duration::ZERO))
                                .await
                                .unwrap()
                                .removed
                                .len()
                        })
                    })
                    .join()
                    .unwrap();
                    r2.fetch_add(n, Ordering::SeqCst);
                }
            });
            let _ = copy(&src, "multi", &bare, None, &opts).await;
            assert!(removed.load(Ordering::SeqCst) > 0);
        });
    }

    #[test]
    fn concurrent_copies_of_shared_content_wait_for_each_other() {
        rt().block_on(async {
            let src = Src {
                chunked: true,
                ..Src::default()
            };
            multi(&src.inner, false).await;
            let dst = MemoryStore::new();
            let opts = CopyOptions::default().with_retries(0, Duration::from_millis(1));
            let (a, b) = futures_util::future::join(
                copy(&src, "multi", &dst, Some("a"), &opts),
                copy(&src, "multi", &dst, Some("b"), &opts),
            )
            .await;
            let (a, b) = (a.unwrap(), b.unwrap());
            // No retry was spent, and every blob crossed once: the second copy waited for the
            // first one's ingest, then found the content there.
            assert_eq!(a.retried + b.retried, 0);
            assert_eq!(a.bytes_copied + b.bytes_copied, a.total_bytes);
            assert_eq!(a.copied + b.copied, 11);
            complete(&dst, "a").await;
            complete(&dst, "b").await;
        });
    }

    #[test]
    fn a_copy_cancelled_before_it_starts_writes_nothing() {
        rt().block_on(async {
            let src = Src::default();
            multi(&src.inner, false).await;
            let dst = MemoryStore::new();
            let token = CancelToken::new();
            token.cancel();
            let opts = CopyOptions::default().with_cancel(token);
            let e = copy(&src, "multi", &dst, None, &opts).await.unwrap_err();
            assert!(
                matches!(&e, StoreError::CopyCancelled { reference, .. } if reference == "multi"),
                "{e:?}"
            );
            assert!(dst.tags().await.unwrap().is_empty());
            assert!(dst.ingests().await.unwrap().is_empty());
        });
    }

    #[test]
    fn foreign_layers_the_source_lacks_are_left_out_and_listed() {
        rt().block_on(async {
            let src = MemoryStore::new();
            let cfg = put(&src, media_types::DOCKER_CONFIG, b"{}".to_vec()).await;
            let base = put(&src, media_types::DOCKER_LAYER_GZIP, b"base".to_vec()).await;
            let mut foreign = Descriptor::of(media_types::DOCKER_LAYER_FOREIGN_GZIP, b"windows");
            foreign.urls = Some(vec!["https://example.invalid/layer".to_owned()]);
            let m = ImageManifestBuilder::docker(cfg)
                .layer(foreign.clone())
                .layer(base.clone())
                .build()
                .unwrap();
            src.push_bytes(&m.descriptor(), m.raw().clone())
                .await
                .unwrap();
            src.tag(&m.descriptor(), "win").await.unwrap();
            let dst = MemoryStore::new();
            let r = copy(&src, "win", &dst, None, &CopyOptions::default())
                .await
                .unwrap();
            assert_eq!(r.foreign, vec![foreign.clone()]);
            assert_eq!(r.copied, 3);
            assert!(!dst.exists(&foreign.digest).await.unwrap());
            assert!(dst.exists(m.digest()).await.unwrap());
            // When the source holds it, it is copied like any layer.
            src.push_bytes(&foreign, Bytes::from_static(b"windows"))
                .await
                .unwrap();
            let r = copy(&src, "win", &dst, None, &CopyOptions::default())
                .await
                .unwrap();
            assert!(r.foreign.is_empty());
            assert!(dst.exists(&foreign.digest).await.unwrap());
        });
    }

    #[test]
    fn sizes_adding_past_u64_are_an_error_naming_the_descriptor() {
        rt().block_on(async {
            let src = Src::default();
            let cfg = put(&src.inner, media_types::OCI_CONFIG, b"{}".to_vec()).await;
            // Two layers the source does not even hold, each declaring 2^63 bytes: the plan's
            // total is 2^64, one more than u64 holds.
            let huge = |data: &[u8]| {
                Descriptor::new(
                    media_types::OCI_LAYER_GZIP,
                    oci_digest::Algorithm::Sha256.hash(data),
                    1 << 63,
                )
            };
            let (a, b) = (huge(b"a"), huge(b"b"));
            let cfg_digest = cfg.digest.clone();
            let m = ImageManifestBuilder::oci(cfg)
                .layer(a.clone())
                .layer(b.clone())
                .build()
                .unwrap();
            src.inner
                .push_bytes(&m.descriptor(), m.raw().clone())
                .await
                .unwrap();
            src.inner.tag(&m.descriptor(), "huge").await.unwrap();
            let dst = MemoryStore::new();
            let e = copy(&src, "huge", &dst, None, &CopyOptions::default())
                .await
                .unwrap_err();
            let StoreError::SizeOverflow { digest, size, .. } = &e else {
                panic!("unexpected {e:?}")
            };
            assert!(*digest == a.digest || *digest == b.digest, "{e}");
            assert_eq!(*size, 1 << 63);
            let text = e.to_string();
            assert!(text.contains(digest.as_str()) && text.contains(&(1u64 << 63).to_string()));
            // Nothing moved: the error comes from the plan, before any transfer.
            assert!(!dst.exists(&cfg_digest).await.unwrap());
            assert!(dst.tags().await.unwrap().is_empty());
        });
    }

    /// Copies `multi` from `src` with 2 retries; returns the report of the failed copy and
    /// the failed node's attempts.
    async fn failing_copy(src: &Src) -> (CopyReport, u32, StoreError) {
        let dst = MemoryStore::new();
        let opts = CopyOptions::default().with_retries(2, Duration::from_millis(1));
        let e = copy(src, "multi", &dst, None, &opts).await.unwrap_err();
        let StoreError::CopyFailed { report, source, .. } = e else {
            panic!("unexpected {e:?}")
        };
        let failed = report
            .nodes
            .iter()
            .find(|n| n.outcome == NodeOutcome::Failed)
            .expect("a failed node");
        let attempts = failed.attempts;
        (*report, attempts, *source)
    }

    #[test]
    fn content_failing_verification_is_retried_only_when_it_came_over_the_network() {
        rt().block_on(async {
            let mut src = Src::default();
            let index = multi(&src.inner, false).await;
            let amd = src
                .inner
                .fetch_manifest(&index.manifests()[0])
                .await
                .unwrap();
            src.corrupt = Some(amd.layers()[1].digest.clone());
            // A local store serves the same wrong bytes every time: one attempt, no retry.
            let (report, attempts, source) = failing_copy(&src).await;
            assert!(matches!(source, StoreError::Verify(_)), "{source:?}");
            assert_eq!((attempts, report.retried), (1, 0));
            // From a registry the bytes may have been damaged in flight: retried.
            src.remote = true;
            let (report, attempts, source) = failing_copy(&src).await;
            assert!(matches!(source, StoreError::Verify(_)), "{source:?}");
            assert_eq!((attempts, report.retried), (3, 2));
        });
    }

    #[test]
    fn what_a_retry_cannot_cure_is_found_anywhere_in_the_chain() {
        use std::io::{Error as IoError, ErrorKind};
        #[derive(Debug, thiserror::Error)]
        #[error("GET http://127.0.0.1:1/v2/: connection refused by 127.0.0.1:1")]
        struct Client(#[source] IoError);
        let refused = || IoError::from(ErrorKind::ConnectionRefused);
        // A registry client's error with the refusal as its cause, as a backend error and as
        // a stream item (an io::Error wrapping it, whose `source` skips it).
        let backend = StoreError::backend("resolve r/a:v1", Client(refused()));
        assert_eq!(
            permanent_cause(&backend),
            Some(ErrorKind::ConnectionRefused)
        );
        assert!(!transient(&backend, true));
        let d = oci_digest::Algorithm::Sha256.hash(b"x");
        let item = StoreError::Source {
            digest: d.clone(),
            source: IoError::other(Client(refused())),
        };
        assert!(!transient(&item, true));
        let slow = StoreError::Source {
            digest: d.clone(),
            source: IoError::new(ErrorKind::TimedOut, "below the minimum rate"),
        };
        assert!(!transient(&slow, true));
        // What may go away on retry still does.
        let reset = StoreError::Source {
            digest: d.clone(),
            source: IoError::from(ErrorKind::ConnectionReset),
        };
        assert!(transient(&reset, false));
        assert!(transient(
            &StoreError::backend("x", IoError::other("503 Service Unavailable")),
            true
        ));
        assert!(!transient(&StoreError::NotFound { digest: d }, true));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Duration::from_millis(100);
        assert_eq!(backoff(b, 1), Duration::from_millis(100));
        assert_eq!(backoff(b, 3), Duration::from_millis(400));
        assert_eq!(backoff(b, 30), Duration::from_secs(10));
    }
}
