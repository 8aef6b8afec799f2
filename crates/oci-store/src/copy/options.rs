//! What a copy can be asked to do: [`CopyOptions`] and [`VerifyMode`], how far the destination's
//! answers are trusted.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use oci_manifest::Platform;
use oci_manifest::convert::Flavor;
use tokio::sync::Semaphore;

use super::budget::RetryBudget;
use super::cancel::CancelToken;
use super::progress::{Progress, ProgressFn};
use super::shared::SharedBlobs;
use crate::fetch::{FetchOptions, RangeSource};
use crate::traits::DEFAULT_LEASE_TTL;

/// How far a copy trusts the destination's answer that it already has some content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum VerifyMode {
    /// Trust the existence answer (`stat`, a registry's `HEAD`): fast, and what every tool does.
    #[default]
    Trust,
    /// Read back: manifests in full (verified), blobs by their last byte, which must arrive (the
    /// check of [`checked_exists`](crate::checked_exists)). A registry whose cache remembers a
    /// blob its storage lost answers `HEAD` but cannot send the byte. Content found lying is stored again; the result is read back the same way.
    Range,
    /// Read everything back in full and verify it against its digest (slow, certain).
    Full,
}

/// Options of [`copy`](crate::copy) and [`copy_leased`](crate::copy_leased).
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
    /// Convert Docker schema 1 manifests (signed or not) to Docker schema 2
    /// ([`Flavor::Docker`]) or OCI, as skopeo converts them (see [`oci_manifest::schema1`]):
    /// the configuration is built from the `v1Compatibility` history, the diff IDs are computed
    /// by reading and decompressing every layer while planning (one extra read of the layers
    /// from the source), and the layers of throwaway history entries are left out. The result
    /// has a new digest; the report says so ([`CopyReport::conversions`](crate::CopyReport::conversions)).
    /// [`format`](Self::format), when set, decides the result's flavor. `None` (the default)
    /// refuses schema 1 with [`oci_manifest::ManifestError::Schema1`].
    pub convert_schema1: Option<Flavor>,
    /// Transfers running at once (at least 1).
    pub jobs: usize,
    /// The copy's retry budget: retries in all, over every piece of content and every step
    /// (resolving, planning, finishing), shared by the transfers running at once. Each retry of
    /// anything takes one; once they are spent, the next failure is final. A step that fails
    /// for good is therefore attempted at most `1 + retries` times, and the whole copy makes
    /// at most `retries` retries, however many layers fail.
    ///
    /// Only a failure that may go away is retried: an I/O or network failure, a registry's
    /// 5xx, or content damaged in flight from a registry. What a retry cannot cure fails at
    /// once, with its reason: content missing or invalid, content that fails verification in
    /// a local source (memory, layout), a refused connection, a transfer below the client's
    /// minimum rate or past its deadline, a permission refused (a registry's 401 or 403
    /// included), a full or read-only disk.
    ///
    /// The budget is the only retry loop of the copy: while it runs, its budget is
    /// [current](RetryBudget::current), and a registry's store adapter then does not retry
    /// requests on its own for what the copy retries (network errors, 5xx answers; see
    /// `oci-distribution-client`). A registry's 429 with `Retry-After`, waited out by the
    /// client, and a body resumed at its offset after a dropped connection are not retries of
    /// the copy and take nothing from the budget.
    ///
    /// [`CopyReport::retried`](crate::CopyReport::retried) says how many were used.
    /// Ignored when [`retry_budget`](Self::retry_budget) is set.
    pub retries: u32,
    /// A budget shared with other copies (many images synced under one budget, or re-runs
    /// of the same copy continuing with what is left): the copy takes its retries from it
    /// instead of making one of [`retries`](Self::retries).
    pub retry_budget: Option<RetryBudget>,
    /// Delay before the first retry of a step; it doubles on each retry of the same step
    /// (capped at 10 s).
    pub retry_backoff: Duration,
    /// How far the destination's existence answers are trusted; also how the result is read
    /// back when it is not [`VerifyMode::Trust`].
    pub verify: VerifyMode,
    /// A progress callback.
    pub progress: Option<ProgressFn>,
    /// A cancellation token.
    pub cancel: Option<CancelToken>,
    /// Lifetime of the lease taken by [`copy_leased`](crate::copy_leased) (renewed while the copy runs; on failure
    /// left to expire, so a re-run within it finds the completed content still pinned).
    pub lease_ttl: Duration,
    /// A limit on transfers shared with other copies (many images synced at once under one
    /// global limit); when set, a transfer holds one of its permits and [`jobs`](Self::jobs)
    /// is not used. Closing the semaphore stops the copies waiting on it as a cancellation does.
    pub shared_limit: Option<Arc<Semaphore>>,
    /// Sources of the blobs besides (or instead of) reading them from the copy's source: with
    /// two or more, each blob the destination lacks is fetched in pieces from all of them at
    /// once with [`fetch_blob`](crate::fetch_blob) (a bad piece costs one piece and is
    /// named in [`CopyReport::fetches`](crate::CopyReport::fetches)); with fewer, they are not
    /// used. List them in order of trust, the origin last (for a registry and its mirrors: the
    /// mirrors, then the registry). A destination that takes no pieces (a registry) gets each
    /// blob streamed from the copy's source as without them. Manifests always come from the
    /// copy's source.
    pub blob_sources: Vec<Arc<dyn RangeSource>>,
    /// How blobs are fetched from [`blob_sources`](Self::blob_sources): a piece map, requests
    /// per source, timeouts. Its cancel token defaults to the copy's; its event receiver is
    /// called too, after the copy's progress.
    pub fetch: FetchOptions,
    /// A ledger of blobs shared with other copies into the same registries: a blob another
    /// copy is sending is waited for and mounted from where it landed ([`SharedBlobs`]).
    pub shared_blobs: Option<SharedBlobs>,
    /// After copying the image, push the piece maps of its layers beside it: one
    /// [`PieceMapArtifact`](crate::PieceMapArtifact) per image manifest (for an index, one per
    /// platform's image manifest), whose `subject` is that manifest, made discoverable through
    /// the destination's referrers API or the tag schema fallback. The maps are trusted ones:
    /// the source store's own ([`ReadStore::trusted_piece_map`](crate::ReadStore::trusted_piece_map):
    /// a [`LayoutStore`](crate::LayoutStore) computes and caches them), else computed from
    /// the bytes this copy moved from a registry as they verified, else the destination's own,
    /// else computed from the source's verified bytes (one more read of a layer the
    /// destination already had). Off by default: hashing every piece costs a second SHA-256 pass. A
    /// destination that already has an artifact covering every layer gets none again.
    pub piece_maps: bool,
    /// When blobs are fetched in pieces ([`blob_sources`](Self::blob_sources), two or more) and
    /// [`fetch`](Self::fetch) gives no map: look in the source for the piece-map artifacts of
    /// each image manifest and use their maps, as [`MapTrust::Advisory`](crate::MapTrust)
    /// (a wrong map costs refetches, never a wrong blob); a local source's own maps, when it
    /// has them already
    /// ([`ReadStore::cached_trusted_piece_map`](crate::ReadStore::cached_trusted_piece_map):
    /// nothing is hashed for them), come first and are trusted. Malformed artifacts and maps are ignored with a warning
    /// ([`PieceMapsReport::ignored`](crate::PieceMapsReport)). On by default.
    pub find_piece_maps: bool,
    /// The caller has just asked the destination for the tag this copy writes and found it
    /// missing, or naming other content (as a sync does before each image). The root is then
    /// stored under its tag at once where the destination takes that
    /// ([`TagStore::store_tagged`](crate::TagStore::store_tagged): a registry's manifest `PUT`
    /// by tag, which the tag needs whether the root is there or not), without asking first
    /// whether the destination has it: one request less, and the root is reported copied. Off
    /// by default: a copy again onto the same tag then finds the root there and reports it
    /// skipped.
    pub tag_differs: bool,
}

impl Default for CopyOptions {
    /// Every platform, no referrers, bytes kept, 4 jobs, a budget of 3 retries (backoff from
    /// 200 ms), trusting the
    /// destination, no progress, no cancellation, a lease of [`DEFAULT_LEASE_TTL`].
    fn default() -> Self {
        CopyOptions {
            platforms: Vec::new(),
            include_referrers: false,
            format: None,
            convert_schema1: None,
            jobs: 4,
            retries: 3,
            retry_budget: None,
            retry_backoff: Duration::from_millis(200),
            verify: VerifyMode::Trust,
            progress: None,
            cancel: None,
            lease_ttl: DEFAULT_LEASE_TTL,
            shared_limit: None,
            blob_sources: Vec::new(),
            fetch: FetchOptions::default(),
            shared_blobs: None,
            piece_maps: false,
            find_piece_maps: true,
            tag_differs: false,
        }
    }
}

impl fmt::Debug for CopyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CopyOptions")
            .field("platforms", &self.platforms)
            .field("include_referrers", &self.include_referrers)
            .field("format", &self.format)
            .field("convert_schema1", &self.convert_schema1)
            .field("jobs", &self.jobs)
            .field("retries", &self.retries)
            .field("retry_budget", &self.retry_budget)
            .field("retry_backoff", &self.retry_backoff)
            .field("verify", &self.verify)
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .field("lease_ttl", &self.lease_ttl)
            .field("shared_limit", &self.shared_limit.is_some())
            .field(
                "blob_sources",
                &self
                    .blob_sources
                    .iter()
                    .map(|s| s.source_name())
                    .collect::<Vec<_>>(),
            )
            .field("fetch", &self.fetch)
            .field("shared_blobs", &self.shared_blobs)
            .field("piece_maps", &self.piece_maps)
            .field("find_piece_maps", &self.find_piece_maps)
            .field("tag_differs", &self.tag_differs)
            .finish()
    }
}

impl CopyOptions {
    /// These options fetching blobs in pieces from `sources` (see
    /// [`blob_sources`](Self::blob_sources)), the origin last.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use oci_store::{CopyOptions, MemoryStore, RangeSource};
    /// let sources: Vec<Arc<dyn RangeSource>> = vec![Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new())];
    /// let o = CopyOptions::default().with_blob_sources(sources);
    /// assert_eq!(o.blob_sources.len(), 2);
    /// ```
    pub fn with_blob_sources(mut self, sources: Vec<Arc<dyn RangeSource>>) -> Self {
        self.blob_sources = sources;
        self
    }

    /// These options fetching blobs in pieces as `fetch` says.
    pub fn with_fetch_options(mut self, fetch: FetchOptions) -> Self {
        self.fetch = fetch;
        self
    }

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
    /// These options converting Docker schema 1 manifests to `flavor` (`None`: refusing them).
    ///
    /// ```
    /// use oci_manifest::convert::Flavor;
    /// let o = oci_store::CopyOptions::default().with_schema1_conversion(Some(Flavor::Docker));
    /// assert_eq!(o.convert_schema1, Some(Flavor::Docker));
    /// ```
    pub fn with_schema1_conversion(mut self, flavor: Option<Flavor>) -> Self {
        self.convert_schema1 = flavor;
        self
    }
    /// These options with `jobs` transfers at once (at least 1).
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }
    /// These options with a budget of `retries` retries for the whole copy, the first retry of
    /// a step after `backoff`.
    ///
    /// ```
    /// let o = oci_store::CopyOptions::default().with_retries(5, std::time::Duration::ZERO);
    /// assert_eq!(o.retries, 5);
    /// ```
    pub fn with_retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.retry_backoff = backoff;
        self
    }
    /// These options taking the copy's retries from `budget`, shared with whoever else holds
    /// it (see [`retry_budget`](Self::retry_budget)).
    ///
    /// ```
    /// let budget = oci_store::RetryBudget::new(10);
    /// let a = oci_store::CopyOptions::default().with_retry_budget(budget.clone());
    /// let b = oci_store::CopyOptions::default().with_retry_budget(budget.clone());
    /// // copies with `a` and `b` make at most 10 retries between them.
    /// # drop((a, b));
    /// ```
    pub fn with_retry_budget(mut self, budget: RetryBudget) -> Self {
        self.retry_budget = Some(budget);
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
    /// These options sharing `blobs` with other copies (see [`SharedBlobs`]).
    ///
    /// ```
    /// let shared = oci_store::SharedBlobs::new();
    /// let o = oci_store::CopyOptions::default().with_shared_blobs(shared);
    /// assert!(o.shared_blobs.is_some());
    /// ```
    pub fn with_shared_blobs(mut self, blobs: SharedBlobs) -> Self {
        self.shared_blobs = Some(blobs);
        self
    }
    /// These options pushing the piece maps of the image's layers beside it, or not (see
    /// [`piece_maps`](Self::piece_maps)).
    ///
    /// ```
    /// let o = oci_store::CopyOptions::default().with_piece_maps(true);
    /// assert!(o.piece_maps && o.find_piece_maps);
    /// ```
    pub fn with_piece_maps(mut self, push: bool) -> Self {
        self.piece_maps = push;
        self
    }
    /// These options saying the destination's tag was just found missing or naming other
    /// content, or not (see [`tag_differs`](Self::tag_differs)).
    ///
    /// ```
    /// let o = oci_store::CopyOptions::default().with_tag_differs(true);
    /// assert!(o.tag_differs);
    /// ```
    pub fn with_tag_differs(mut self, differs: bool) -> Self {
        self.tag_differs = differs;
        self
    }
    /// These options looking for piece-map artifacts in the source when fetching in pieces, or
    /// not (see [`find_piece_maps`](Self::find_piece_maps)).
    ///
    /// ```
    /// let o = oci_store::CopyOptions::default().with_found_piece_maps(false);
    /// assert!(!o.find_piece_maps);
    /// ```
    pub fn with_found_piece_maps(mut self, find: bool) -> Self {
        self.find_piece_maps = find;
        self
    }
    /// These options with the lease lifetime of [`copy_leased`](crate::copy_leased) replaced.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// The budget a copy with these options draws from: the shared one, else a new one of
    /// [`retries`](Self::retries).
    pub(super) fn budget(&self) -> RetryBudget {
        self.retry_budget
            .clone()
            .unwrap_or_else(|| RetryBudget::new(self.retries))
    }

    /// Whether the copy's [`cancel`](Self::cancel) token was cancelled.
    pub(super) fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(CancelToken::is_cancelled)
    }
}
