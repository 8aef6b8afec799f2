//! The public conformance suite (`oci_store::testing`) run against `MemoryStore` and
//! `LayoutStore`: one test per case per backend, every case on a fresh store.

mod common;

use common::TempDir;
use oci_store::{LayoutOptions, LayoutStore, MemoryStore, testing};

/// One `#[tokio::test]` per case in `$cases`, each on a store from `$make` (an async closure
/// returning the store and whatever must live as long as it).
macro_rules! conformance {
    ($backend:ident, $make:expr, [$($case:ident),+ $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    #[allow(clippy::redundant_closure_call)]
                    let (store, _keep) = ($make)().await;
                    testing::$case(&store).await;
                }
            )+
        }
    };
    ($backend:ident, $make:expr) => {
        conformance!($backend, $make, [
            // testing::store_suite
            round_trip, ranges, bad_descriptors, sizes_checked_at_once, delete, verified_or_invisible,
            resumable_writer, ingest_keys, tags, untag, object_safe,
            // testing::managed_store_suite
            leases, refcounts, gc_rules, referrers_and_gc, reduced_platform, repush_after_gc,
            fsck, gc_beside_writers,
        ]);
    };
}

conformance!(memory, async || (MemoryStore::new(), ()));
conformance!(layout, async || {
    let t = TempDir::new("conf");
    let s = LayoutStore::open_with(t.path().join("layout"), &LayoutOptions::create())
        .await
        .expect("create layout");
    (s, t)
});
