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
//!   interrupted copy continues where it stopped. Transient failures retry the step that
//!   failed (one piece of content, not the graph), within one [`RetryBudget`] for the whole
//!   copy ([`CopyOptions::retries`]): retries cannot multiply, however many layers fail, and
//!   while the copy runs the budget is [current](RetryBudget::current), so a registry client
//!   below leaves those retries to the copy instead of retrying each request itself.
//! - **Finish**: the tag is written only when the whole graph is there; [`CopyReport`] says what
//!   was copied, skipped, mounted, repaired, retried and failed, with bytes and time; a copy that
//!   does not complete returns a [`CopyError`] carrying that report and the side that failed.
//!
//! [`copy_leased`] does the same into a [`ManagedStore`] under a lease held (and renewed) for
//! the whole copy, so a garbage collection running beside it removes nothing the copy needs.
//!
//! Each job has its file: `options`, `cancel`, `progress`, `report`, `error`, `plan`, `run`
//! (scheduling and transfer), `verify` (every check of what the destination claims, every
//! repair, and [`checked_exists`]), `referrers`, `retry` (the one retry loop), `budget` (the
//! copy's [`RetryBudget`]); this file only puts them in order.
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
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod budget;
mod cancel;
mod error;
mod maps;
mod options;
mod pieces;
mod plan;
mod progress;
mod referrers;
mod report;
mod retry;
mod run;
mod shared;
#[cfg(test)]
mod tests;
mod verify;

use std::time::{Duration, Instant};

use futures_util::future::Either;
use tracing::{debug, info, warn};

pub use self::budget::RetryBudget;
pub use self::cancel::CancelToken;
pub use self::error::{CopyError, CopySide};
pub use self::maps::{PIECE_MAP_BLOB_ANNOTATION, PieceMapArtifact, PieceMapsReport};
pub use self::options::{CopyOptions, VerifyMode};
pub use self::plan::resolve_reference;
pub use self::progress::{Progress, ProgressEvent, ProgressFn};
pub use self::referrers::{referrers_index, referrers_tag};
pub use self::report::{CopyReport, ManifestConversion, NodeOutcome, NodeReport, SourceTotals};
pub use self::run::ingest_key;
pub use self::shared::SharedBlobs;
pub use self::verify::checked_exists;

use self::CopySide::{Destination, Source};
use self::budget::Draw;
use self::error::{At, Fault};
use self::plan::{Planned, Planner, resolve_inner};
use self::retry::Retry;
use self::run::{Run, Settled};
use crate::error::StoreError;
use crate::lease::Lease;
use crate::traits::{ManagedStore, ReadStore, Store, TagStore};

/// Copies the graph named by `src_ref` (a tag, or a digest) from `src` into `dst`, children
/// before parents, and tags the result `dst_tag` (or, when `None`, with `src_ref` when it is a
/// tag; a digest reference leaves the result untagged).
///
/// Works between any two stores (memory, layout, registry repositories), in any direction. For
/// a local destination prefer [`copy_leased`], which holds a lease for the whole copy.
///
/// # Errors
/// [`CopyError::Failed`], naming the side that failed, with the report of what was done and the
/// first failure as its source: the destination tag invalid; resolution and planning errors of
/// the source (the reference unknown, a manifest that does not parse or verify, no platform
/// matching, [`StoreError::SizeOverflow`] when the sizes the descriptors declare add up past
/// `u64::MAX`); content that could not be copied after its retries;
/// [`StoreError::ClaimsUnserved`] when the destination claims content it does not serve and
/// storing it again did not help. [`CopyError::Cancelled`]. A failure that could have been
/// retried but found the [retry budget](CopyOptions::retries) spent is reported as it is (the
/// registry's own words included); the report says the budget was used up.
pub async fn copy<S, D>(
    src: &S,
    src_ref: &str,
    dst: &D,
    dst_tag: Option<&str>,
    options: &CopyOptions,
) -> Result<CopyReport, CopyError>
where
    S: ReadStore + TagStore + ?Sized,
    D: Store + ?Sized,
{
    let draw = Draw::new(options.budget());
    draw.budget
        .clone()
        .scope(copy_drawing(src, src_ref, dst, dst_tag, options, &draw))
        .await
}

/// [`copy`], its retries drawn from `draw`.
async fn copy_drawing<S, D>(
    src: &S,
    src_ref: &str,
    dst: &D,
    dst_tag: Option<&str>,
    options: &CopyOptions,
    draw: &Draw,
) -> Result<CopyReport, CopyError>
where
    S: ReadStore + TagStore + ?Sized,
    D: Store + ?Sized,
{
    let started = Instant::now();
    let remote = remote(src, dst);
    // An error before the first transfer: a report of nothing done.
    let early = |fault: Fault, root: Option<&crate::Descriptor>| {
        let mut report = CopyReport::before_transfer(src_ref, root.cloned(), started.elapsed());
        report.count_retries(draw);
        fault.into_copy_error(src_ref, None, 1, &remote, report)
    };
    let tag = match dst_tag {
        Some(t) => {
            crate::util::validate_tag(t)
                .at(Destination)
                .map_err(|f| early(f, None))?;
            Some(t.to_owned())
        }
        None if crate::Digest::parse(src_ref).is_err() => Some(src_ref.to_owned()),
        None => None,
    };

    // Plan.
    let (root, prefetched) = Retry::new(options, draw, remote(Source))
        .run(
            || async { resolve_inner(src, src_ref).await.at(Source) },
            |attempt, fault| {
                warn!(reference = src_ref, attempt, error = %fault, "resolving failed; retrying");
            },
        )
        .await
        .result
        .map_err(|f| early(f, None))?;
    let Planned {
        plan,
        result,
        referrers,
    } = Planner::new(src, options, draw, &root, prefetched)
        .make(&root)
        .await
        .map_err(|f| early(f, Some(&root)))?;
    let total = plan.total().at(Source).map_err(|f| early(f, Some(&root)))?;
    info!(reference = src_ref, root = %root.digest, nodes = plan.order.len(), total, "copy planned");

    // Transfer: the root, then each referrer (their subjects are settled by then).
    let mut run = Run::new(src, dst, &plan, options, draw, total);
    // The tag goes up with the root unless something must be stored before it: referrers, or
    // the piece-map artifacts (whose failure leaves the result untagged).
    if let Some(tag) = tag.as_deref()
        && referrers.is_empty()
        && !options.piece_maps
    {
        run.tag_root_on_store(&root.digest, tag);
    }
    let mut piece_maps = PieceMapsReport::default();
    if options.blob_sources.len() > 1 && options.fetch.map.is_none() && options.find_piece_maps {
        run.fetch_maps = maps::find_fetch_maps(src, &plan, &mut piece_maps).await;
    }
    run.meter.emit(ProgressEvent::Planned {
        nodes: plan.order.len(),
    });
    let root_stored = run.ensure(&root.digest).await == Settled::Stored;
    let mut copied_referrers = Vec::new();
    if root_stored {
        for (subject, referrer) in &referrers {
            if run.ensure(&referrer.digest).await == Settled::Stored {
                copied_referrers.push((subject.clone(), referrer.clone()));
            }
        }
    }

    // Finish (tag, referrers index, read-back): only for a complete graph, not cancelled.
    // With piece maps: their artifacts are made first, and pushed while finishing.
    let finished = if root_stored && !options.is_cancelled() {
        let artifacts = if options.piece_maps {
            run.piece_map_artifacts(&mut piece_maps).await
        } else {
            Ok(Vec::new())
        };
        Some(match artifacts {
            Ok(artifacts) => {
                let done = run
                    .finish(&result, tag.as_deref(), &copied_referrers, &artifacts)
                    .await;
                if done.is_ok() {
                    piece_maps.pushed = artifacts
                        .iter()
                        .map(|(s, a)| (s.clone(), a.manifest.descriptor()))
                        .collect();
                }
                done
            }
            Err(fault) => Err(fault),
        })
    } else {
        None
    };

    let (mut report, failures) = run.report(src_ref, &root);
    report.result = Some(result.clone());
    report.referrers = copied_referrers.into_iter().map(|(_, r)| r).collect();
    report.piece_maps = piece_maps;
    report.elapsed = started.elapsed();
    report.count_retries(draw);
    let finish_fault = match finished {
        Some(Ok(())) if report.is_complete() => {
            report.tag = tag;
            info!(%report, "copy done");
            return Ok(report);
        }
        Some(Err(fault)) => Some(fault),
        Some(Ok(())) | None => None,
    };
    // The first failure: of finishing, else of content; none when the copy was cancelled.
    let failed = failures.len() + usize::from(finish_fault.is_some());
    let (digest, fault) = match (finish_fault, failures.into_iter().next()) {
        (Some(fault), _) => (Some(result.digest.clone()), fault),
        (None, Some((digest, side, e))) => (Some(digest), Fault::Store(side, e)),
        (None, None) => (None, Fault::Cancelled),
    };
    if !matches!(fault, Fault::Cancelled) {
        warn!(%report, "copy incomplete");
    }
    Err(fault.into_copy_error(src_ref, digest, failed, &remote, report))
}

/// [`copy`] into a store that manages its content, under a lease held for the whole copy and
/// renewed while it runs: everything written or found in `dst` is pinned until the tag is
/// written, so a concurrent garbage collection (in this or another process) removes nothing the
/// copy needs. The lease is released when the copy succeeds; when it fails or is cancelled it
/// is left to expire ([`CopyOptions::lease_ttl`]), so a re-run within that time finds the
/// completed content still there.
///
/// `dst` may be a trait object (`&dyn ManagedStore`): the copy writes through
/// [`ManagedStore::with_lease_boxed`].
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
///
/// // Any managed store, as a trait object.
/// let any: &dyn ManagedStore = &dst;
/// copy_leased(&src, "empty", any, Some("again"), &CopyOptions::default()).await?;
/// assert_eq!(dst.resolve("again").await?.digest, *index.digest());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// # Errors
/// Those of [`copy`]; the lease errors of the store as [`CopyError::Failed`] at the
/// destination (after a successful copy whose lease could not be released, with its report).
pub async fn copy_leased<S, D>(
    src: &S,
    src_ref: &str,
    dst: &D,
    dst_tag: Option<&str>,
    options: &CopyOptions,
) -> Result<CopyReport, CopyError>
where
    S: ReadStore + TagStore + ?Sized,
    D: ManagedStore + ?Sized,
{
    let started = Instant::now();
    let lease_error = |e: StoreError, report: Option<CopyReport>| {
        let report =
            report.unwrap_or_else(|| CopyReport::before_transfer(src_ref, None, started.elapsed()));
        Fault::store(Destination, e).into_copy_error(src_ref, None, 1, remote(src, dst), report)
    };
    let ttl = options.lease_ttl.max(Duration::from_secs(1));
    let lease = dst
        .create_lease(ttl)
        .await
        .map_err(|e| lease_error(e, None))?;
    let view = dst.with_lease_boxed(&lease);
    let work = Box::pin(copy(src, src_ref, &*view, dst_tag, options));
    let renew = Box::pin(renew_forever(dst, &lease, ttl));
    let result = match futures_util::future::select(work, renew).await {
        Either::Left((r, _)) => r,
        Either::Right((e, _)) => Err(lease_error(e, None)),
    };
    match result {
        Ok(report) => match dst.release_lease(&lease).await {
            Ok(()) => Ok(report),
            Err(e) => Err(lease_error(e, Some(report))),
        },
        Err(e) => {
            debug!(
                lease = lease.id(),
                "copy did not complete; lease left to expire"
            );
            Err(e)
        }
    }
}

/// Renews `lease` every third of `ttl`; returns the error that stopped it.
async fn renew_forever<D: ManagedStore + ?Sized>(
    dst: &D,
    lease: &Lease,
    ttl: Duration,
) -> StoreError {
    loop {
        tokio::time::sleep(ttl / 3).await;
        if let Err(e) = dst.renew_lease(lease, ttl).await {
            return e;
        }
    }
}

/// Whether each side's content comes over the network (the store has a
/// [`location`](ReadStore::location)).
fn remote<S: ReadStore + ?Sized, D: ReadStore + ?Sized>(
    src: &S,
    dst: &D,
) -> impl Fn(CopySide) -> bool + use<S, D> {
    let (source, destination) = (src.location().is_some(), dst.location().is_some());
    move |side| match side {
        Source => source,
        Destination => destination,
    }
}
