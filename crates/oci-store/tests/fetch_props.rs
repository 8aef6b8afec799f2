//! Property: for any assignment of good and bad bytes per (source, piece), a fetch from many
//! sources ends with the right blob when every piece has a good source, and otherwise with an
//! error naming exactly the pieces no source could serve (with a trusted map); a wrong blob is
//! never visible, and every piece reported bad really was bad from the source named.

mod common;
mod fetch_common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::Rng;
use fetch_common::*;
use oci_digest::{PieceLayout, PieceMap};
use oci_manifest::Descriptor;
use oci_store::{FetchOptions, FetchReport, MapTrust, MemoryStore, ReadStore, fetch_blob};
use proptest::prelude::*;

const PL: u64 = 4096;
const MAX_SOURCES: usize = 3;
const MAX_PIECES: u64 = 6;

struct Case {
    data: Bytes,
    desc: Descriptor,
    layout: PieceLayout,
    sources: Vec<Arc<Faulty>>,
    /// `bad[s][p]`: source `s` serves wrong bytes for piece `p`.
    bad: Vec<Vec<bool>>,
}

fn case(nsrc: usize, npieces: u64, tail: u64, bad: &[bool], seed: u64) -> Case {
    let len = (npieces - 1) * PL + tail;
    let data = Bytes::from(Rng::new(seed).bytes(len as usize));
    let desc = Descriptor::of("application/octet-stream", &data);
    let layout = PieceLayout::new(len, PL).unwrap();
    let bad: Vec<Vec<bool>> = (0..nsrc)
        .map(|s| {
            (0..npieces)
                .map(|p| bad[s * MAX_PIECES as usize + p as usize])
                .collect()
        })
        .collect();
    let sources = (0..nsrc)
        .map(|s| {
            let mut f = Faulty::new(&format!("s{s}"), &data, layout, Mode::Good);
            for p in 0..npieces {
                if bad[s][p as usize] {
                    // Each source's bad bytes differ from every other's.
                    f = f.piece(p, Mode::Corrupt(s as u64 * 7 + p));
                }
            }
            Arc::new(f)
        })
        .collect();
    Case {
        data,
        desc,
        layout,
        sources,
        bad,
    }
}

fn check_bad_pieces(c: &Case, r: &FetchReport) -> Result<(), TestCaseError> {
    for b in &r.bad_pieces {
        prop_assert!(
            c.bad[b.source][b.index as usize],
            "piece {} reported bad from s{} which served it right",
            b.index,
            b.source
        );
    }
    Ok(())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn with_a_trusted_map_any_assignment_ends_right_or_names_the_pieces(
        nsrc in 1..=MAX_SOURCES,
        npieces in 1..=MAX_PIECES,
        tail in 1..=PL,
        bad in proptest::collection::vec(proptest::bool::weighted(0.35), MAX_SOURCES * MAX_PIECES as usize),
        conns in 1usize..=2,
        seed in any::<u64>(),
    ) {
        let c = case(nsrc, npieces, tail, &bad, seed);
        let map = PieceMap::compute_with_layout(&c.data[..], c.desc.digest.clone(), c.layout).unwrap();
        let unservable: Vec<u64> = (0..npieces)
            .filter(|&p| (0..nsrc).all(|s| c.bad[s][p as usize]))
            .collect();
        let o = FetchOptions::default()
            .with_map(map, MapTrust::Trusted)
            .with_connections_per_source(conns)
            .with_retry_delay(Duration::ZERO)
            .with_idle_timeout(None);
        let dst = MemoryStore::new();
        rt().block_on(async {
            let res = fetch_blob(&dst, "k", &c.desc, &dyns(&c.sources), &o).await;
            match res {
                Ok(r) => {
                    prop_assert!(unservable.is_empty(), "fetched although pieces {unservable:?} had no good source");
                    prop_assert_eq!(dst.fetch_bytes(&c.desc, u64::MAX).await.unwrap(), c.data.clone());
                    check_bad_pieces(&c, &r)?;
                    // A bad piece costs at most its own bytes once per source.
                    prop_assert!(r.bytes_refetched - r.bytes_taken_over - r.bytes_read_ahead <= r.bad_pieces.len() as u64 * PL + 2 * PL, "{:?}", r);
                }
                Err(e) => {
                    prop_assert_eq!(e.unservable_pieces(), unservable.clone(), "{}", e);
                    prop_assert!(!dst.exists(&c.desc.digest).await.unwrap());
                    if let Some(r) = e.report() {
                        check_bad_pieces(&c, r)?;
                    }
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn without_a_map_never_a_wrong_blob_and_one_bad_source_is_always_found(
        nsrc in 1..=MAX_SOURCES,
        npieces in 1..=MAX_PIECES,
        tail in 1..=PL,
        bad in proptest::collection::vec(proptest::bool::weighted(0.3), MAX_SOURCES * MAX_PIECES as usize),
        one_bad_source in any::<bool>(),
        conns in 1usize..=2,
        seed in any::<u64>(),
    ) {
        let mut bad = bad;
        if one_bad_source {
            // Only the first source (or, by the seed, another) serves bad bytes.
            let culprit = (seed % nsrc as u64) as usize;
            for s in 0..MAX_SOURCES {
                if s != culprit {
                    for p in 0..MAX_PIECES as usize {
                        bad[s * MAX_PIECES as usize + p] = false;
                    }
                }
            }
        }
        let c = case(nsrc, npieces, tail, &bad, seed);
        let bad_sources = (0..nsrc).filter(|&s| c.bad[s].iter().any(|b| *b)).count();
        let every_piece_good_somewhere =
            (0..npieces).all(|p| (0..nsrc).any(|s| !c.bad[s][p as usize]));
        let o = FetchOptions::default()
            .with_layout(c.layout)
            .with_connections_per_source(conns)
            .with_retry_delay(Duration::ZERO)
            .with_idle_timeout(None);
        let dst = MemoryStore::new();
        rt().block_on(async {
            let res = fetch_blob(&dst, "k", &c.desc, &dyns(&c.sources), &o).await;
            match res {
                Ok(r) => {
                    prop_assert_eq!(dst.fetch_bytes(&c.desc, u64::MAX).await.unwrap(), c.data.clone());
                    check_bad_pieces(&c, &r)?;
                }
                Err(e) => {
                    prop_assert!(!dst.exists(&c.desc.digest).await.unwrap());
                    prop_assert!(
                        !(bad_sources == 0 || (bad_sources == 1 && nsrc >= 2 && every_piece_good_somewhere)),
                        "one bad source among {nsrc} not located: {e}"
                    );
                }
            }
            Ok(())
        })?;
    }
}
