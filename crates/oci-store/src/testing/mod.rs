//! A conformance suite for store implementations, public so that every backend, in this crate
//! or outside it, is held to the same rules by the same code (as `object_store`'s `integration`
//! module does for object stores). Enabled by the `testing` feature:
//!
//! ```toml
//! [dev-dependencies]
//! oci-store = { version = "0.1", features = ["testing"] }
//! ```
//!
//! Every case is a plain `async fn` that takes a **fresh, empty** store and panics at the first
//! violation, with a message that names the case, the operation and the digest. Run them from
//! a `#[tokio::test]` (the lease case waits with `tokio::time`, so the runtime needs its timer):
//!
//! - [`store_suite`] runs every case of [`ReadStore`] + [`WriteStore`](crate::WriteStore) +
//!   [`TagStore`](crate::TagStore): round trips, ranges, bad descriptors, deletes,
//!   verified-or-invisible writes, resumable writers and their keys, tags and untags, object
//!   safety.
//! - [`managed_store_suite`] runs every case of [`ManagedStore`]: leases, exact reference
//!   counts, GC rules, referrers, a reduced-platform scenario, re-push after GC, fsck and GC
//!   beside writers. It does not run [`store_suite`]; a managed store runs both.
//! - Each case is also public on its own, so a backend that supports only part of the traits
//!   calls the parts it supports (a registry repository has no leases and may not delete tags),
//!   and a test harness can give each case a test of its own (a clearer report).
//!
//! The suites take a `make_store` async closure, called once per case. The content the cases
//! use ([`Rng`], [`blob`], [`image`], [`multi_platform`], [`push_image`], [`check_complete`])
//! and a store that lies ([`LyingStore`]) are here too, for a backend's own tests.
//!
//! ```
//! use oci_store::{MemoryStore, testing};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! testing::store_suite(async || MemoryStore::new()).await;
//! testing::managed_store_suite(async || MemoryStore::new()).await;
//! // One case alone, on a store made by the caller.
//! testing::round_trip(&MemoryStore::new()).await;
//! # });
//! ```
// A violation is a panic with a message here: that is what a test suite reports.
#![allow(clippy::expect_used)]

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use oci_manifest::Descriptor;

use crate::error::Result;
use crate::gc::GcOptions;
use crate::traits::{ManagedStore, ReadStore, Store, collect};

/// Asserts that `$result` is an error matching `$pat` and returns the error; panics naming the
/// case and what was done otherwise. Patterns match a reference to the error.
macro_rules! assert_err {
    ($case:expr, $result:expr, $pat:pat $(if $guard:expr)?, $($what:tt)+) => {{
        let err = $case.err($result, format_args!($($what)+));
        assert!(
            matches!(&err, $pat $(if $guard)?),
            "{}: {}: unexpected error {err:?}",
            $case,
            format_args!($($what)+)
        );
        err
    }};
}

mod content;
mod liar;
mod managed_cases;
mod store_cases;

pub use content::{
    Blob, Image, Rng, blob, check_complete, from_manifest, image, multi_platform, push_image,
};
pub use liar::LyingStore;
pub use managed_cases::{
    fsck, gc_beside_writers, gc_rules, leases, reduced_platform, refcounts, referrers_and_gc,
    repush_after_gc,
};
pub use store_cases::{
    bad_descriptors, delete, ingest_keys, object_safe, ranges, resumable_writer, round_trip,
    sizes_checked_at_once, tags, untag, verified_or_invisible,
};

/// Runs every case of the read, write and tag traits, each on a fresh store from `make_store`:
/// [`round_trip`], [`ranges`], [`bad_descriptors`], [`sizes_checked_at_once`], [`delete`],
/// [`verified_or_invisible`], [`resumable_writer`], [`ingest_keys`], [`tags`], [`untag`] and
/// [`object_safe`].
///
/// A store kept in a directory needs a new directory per call; for example with a counter and
/// a temporary directory the closure borrows:
///
/// ```no_run
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use oci_store::{LayoutOptions, LayoutStore, testing};
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("oci-store-suite-doc-{}", std::process::id()));
/// let n = AtomicUsize::new(0);
/// testing::store_suite(async || {
///     let path = dir.join(n.fetch_add(1, Ordering::Relaxed).to_string());
///     LayoutStore::open_with(path, &LayoutOptions::create()).await.expect("layout")
/// })
/// .await;
/// std::fs::remove_dir_all(&dir).expect("clean up");
/// # });
/// ```
///
/// # Panics
/// At the first violation, naming the case.
pub async fn store_suite<S: Store>(mut make_store: impl AsyncFnMut() -> S) {
    round_trip(&make_store().await).await;
    ranges(&make_store().await).await;
    bad_descriptors(&make_store().await).await;
    sizes_checked_at_once(&make_store().await).await;
    delete(&make_store().await).await;
    verified_or_invisible(&make_store().await).await;
    resumable_writer(&make_store().await).await;
    ingest_keys(&make_store().await).await;
    tags(&make_store().await).await;
    untag(&make_store().await).await;
    object_safe(&make_store().await).await;
}

/// Runs every case of [`ManagedStore`], each on a fresh store from `make_store`: [`leases`],
/// [`refcounts`], [`gc_rules`], [`referrers_and_gc`], [`reduced_platform`],
/// [`repush_after_gc`], [`fsck`] and [`gc_beside_writers`]. (A managed store is a store too:
/// run [`store_suite`] as well.)
///
/// # Panics
/// At the first violation, naming the case.
pub async fn managed_store_suite<S: ManagedStore>(mut make_store: impl AsyncFnMut() -> S) {
    leases(&make_store().await).await;
    refcounts(&make_store().await).await;
    gc_rules(&make_store().await).await;
    referrers_and_gc(&make_store().await).await;
    reduced_platform(&make_store().await).await;
    repush_after_gc(&make_store().await).await;
    fsck(&make_store().await).await;
    gc_beside_writers(&make_store().await).await;
}

/// The name of a case, for panic messages.
#[derive(Debug, Clone, Copy)]
struct Case(&'static str);

impl Case {
    /// The value of `r`, or a panic naming the case, `what` and the error.
    #[track_caller]
    fn ok<T, E: fmt::Debug>(self, r: Result<T, E>, what: impl fmt::Display) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("{self}: {what}: {e:?}"),
        }
    }

    /// The error of `r`, or a panic naming the case and `what` when it succeeded.
    #[track_caller]
    fn err<T, E>(self, r: Result<T, E>, what: impl fmt::Display) -> E {
        match r {
            Ok(_) => panic!("{self}: {what}: succeeded but must fail"),
            Err(e) => e,
        }
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// GC options that collect at once (no minimum age).
fn gc_now() -> GcOptions {
    GcOptions::default().with_min_age(Duration::ZERO)
}

/// Pushes `img` and points each of `tags` at its root.
async fn push_tagged<S: Store + ?Sized>(c: Case, s: &S, img: &Image, tags: &[&str]) {
    let root = img.root();
    c.ok(
        push_image(s, img).await,
        format_args!("push image {}", root.digest),
    );
    for t in tags {
        c.ok(
            s.tag(root, t).await,
            format_args!("tag {t} of {}", root.digest),
        );
    }
}

/// Asserts that there is no ingest `key` (any more), `after` saying after what.
async fn assert_no_ingest<S: Store + ?Sized>(c: Case, s: &S, key: &str, after: &str) {
    let st = c.ok(
        s.ingest_status(key).await,
        format_args!("ingest_status {key}"),
    );
    assert!(st.is_none(), "{c}: ingest {key} left {after}: {st:?}");
}

/// The whole content of `d`, verified.
async fn read_all<S: ReadStore + ?Sized>(s: &S, d: &Descriptor) -> Result<Bytes> {
    collect(s.fetch(d).await?, u64::MAX).await
}
