//! Piece maps and layouts: the default rule, layout arithmetic (no overflow for any size), a
//! builder that gives a map only for verified content, piece checks, the stable JSON form, and
//! every refusal of the parser (piece count that does not fit the size, bad hex, piece lengths
//! that are not powers of two or out of range, absurd sizes, other versions, unknown and repeated
//! members, too many pieces), with property tests for round trips and mutations.

use oci_digest::{
    Algorithm, PIECE_MAP_MEDIA_TYPE, PieceLayout, PieceMap, PieceMapBuilder, PieceMapError,
    VerifyError,
};
use proptest::prelude::*;

fn blob(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn map_of(data: &[u8], piece_length: u64) -> PieceMap {
    let layout = PieceLayout::new(data.len() as u64, piece_length).unwrap();
    PieceMap::compute_with_layout(data, Algorithm::Sha256.hash(data), layout).unwrap()
}

fn parse(json: &str) -> Result<PieceMap, String> {
    serde_json::from_str::<PieceMap>(json).map_err(|e| e.to_string())
}

fn json_of(digest: &str, size: u64, piece_length: u64, pieces: &[String]) -> String {
    format!(
        r#"{{"mediaType":"{PIECE_MAP_MEDIA_TYPE}","digest":"{digest}","size":{size},"pieceLength":{piece_length},"pieces":{}}}"#,
        serde_json::to_string(pieces).unwrap()
    )
}

#[test]
fn default_rule() {
    let l = |size| PieceLayout::for_size(size).unwrap();
    assert_eq!(l(0).count(), 0);
    assert_eq!(l(0).piece_length(), 1 << 20);
    assert_eq!(l(1).piece_length(), 1 << 20);
    assert_eq!(l(128 << 20).piece_length(), 1 << 20);
    assert_eq!(l((128 << 20) + 1).piece_length(), 2 << 20);
    assert_eq!(l(1 << 30).piece_length(), 8 << 20);
    assert_eq!(l(2 << 30).piece_length(), 16 << 20);
    assert_eq!(l(100 << 30).piece_length(), 16 << 20);
    assert_eq!(l(100 << 30).count(), 6400);
    // Beyond 4 TiB the pieces grow to stay within the count limit.
    let big = l(8 << 40);
    assert_eq!(big.piece_length(), 32 << 20);
    assert!(big.count() <= PieceLayout::MAX_PIECES);
    // A size no layout fits.
    assert!(matches!(
        PieceLayout::for_size(u64::MAX),
        Err(PieceMapError::TooManyPieces { .. })
    ));
    let max = l(PieceLayout::MAX_PIECES * PieceLayout::MAX_PIECE_LENGTH);
    assert_eq!(max.count(), PieceLayout::MAX_PIECES);
}

#[test]
fn layout_ranges_and_edges() {
    let l = PieceLayout::new(8192, 4096).unwrap();
    assert_eq!(l.count(), 2);
    assert_eq!(l.range(1), Some(4096..8192));
    assert_eq!(l.range(2), None);
    assert_eq!(l.piece_at(8191), Some(1));
    assert_eq!(l.piece_at(8192), None);
    assert_eq!(l.pieces_within(0..0), 0..0);
    assert_eq!(l.pieces_within(0..8192), 0..2);
    assert_eq!(l.pieces_within(4096..9999), 1..2);
    // Refusals.
    for (pl, reason) in [
        (0, "not a power of two"),
        (3 << 12, "not a power of two"),
        (2048, "shorter than 4 KiB"),
        (8 << 30, "longer than 4 GiB"),
    ] {
        assert_eq!(
            PieceLayout::new(1, pl),
            Err(PieceMapError::PieceLength {
                piece_length: pl,
                reason
            })
        );
    }
    assert!(matches!(
        PieceLayout::new(u64::MAX, 4096),
        Err(PieceMapError::TooManyPieces { count, .. }) if count == u64::MAX.div_ceil(4096)
    ));
}

#[test]
fn builder_needs_verified_content() {
    let data = blob(10_000, 1);
    let layout = PieceLayout::new(10_000, 4096).unwrap();
    let digest = Algorithm::Sha256.hash(&data);
    // Short.
    let mut b = PieceMapBuilder::new(digest.clone(), layout);
    b.update(&data[..9999]).unwrap();
    assert!(matches!(b.finish(), Err(VerifyError::TooShort { .. })));
    // Long: refused at once.
    let mut b = PieceMapBuilder::new(digest.clone(), layout);
    b.update(&data).unwrap();
    assert!(matches!(b.update(b"x"), Err(VerifyError::TooLong { .. })));
    // sha512 blobs get sha256 pieces.
    let d512 = Algorithm::Sha512.hash(&data);
    let m = PieceMap::compute_with_layout(&data[..], d512.clone(), layout).unwrap();
    assert_eq!(m.digest(), &d512);
    assert_eq!(
        m.piece_digest(0).unwrap(),
        Algorithm::Sha256.hash(&data[..4096])
    );
    // compute() with the default rule.
    let m = PieceMap::compute(&data[..], digest.clone(), 10_000).unwrap();
    assert_eq!(m.layout(), PieceLayout::for_size(10_000).unwrap());
    assert_eq!(m.count(), 1);
    let e = PieceMap::compute(&data[..], Algorithm::Sha256.hash(b"x"), 10_000).unwrap_err();
    assert!(matches!(
        VerifyError::from_io(&e),
        Some(VerifyError::DigestMismatch { .. })
    ));
}

#[test]
fn piece_checks() {
    let data = blob(10_000, 2);
    let m = map_of(&data, 4096);
    m.check_piece(0, &data[..4096]).unwrap();
    m.check_piece(2, &data[8192..]).unwrap();
    assert!(matches!(
        m.check_piece(3, b""),
        Err(PieceMapError::NoSuchPiece { index: 3, count: 3 })
    ));
    assert!(matches!(
        m.check_piece(1, &data[4096..8000]),
        Err(PieceMapError::PieceLengthMismatch {
            index: 1,
            expected: 4096,
            actual: 3904
        })
    ));
    let mut bad = data[4096..8192].to_vec();
    bad[17] ^= 1;
    match m.check_piece(1, &bad) {
        Err(PieceMapError::PieceMismatch {
            index,
            expected,
            actual,
            ..
        }) => {
            assert_eq!(index, 1);
            assert_eq!(expected, Algorithm::Sha256.hash(&data[4096..8192]));
            assert_eq!(actual, Algorithm::Sha256.hash(&bad));
        }
        other => panic!("{other:?}"),
    }
    // Another blob's descriptor.
    let other = Algorithm::Sha256.hash(b"other");
    assert!(matches!(
        m.check_for(&other, 10_000),
        Err(PieceMapError::WrongBlob { .. })
    ));
    assert!(matches!(
        m.check_for(m.digest(), 10_001),
        Err(PieceMapError::WrongBlob { .. })
    ));
    m.check_for(m.digest(), 10_000).unwrap();
}

#[test]
fn serialisation_is_stable() {
    let data = blob(5000, 3);
    let m = map_of(&data, 4096);
    let json = serde_json::to_string(&m).unwrap();
    let expected = json_of(
        m.digest().as_str(),
        5000,
        4096,
        &[
            Algorithm::Sha256.hash(&data[..4096]).encoded().to_owned(),
            Algorithm::Sha256.hash(&data[4096..]).encoded().to_owned(),
        ],
    );
    assert_eq!(json, expected);
    assert_eq!(parse(&json).unwrap(), m);
}

#[test]
fn parser_refusals() {
    let data = blob(10_000, 4);
    let m = map_of(&data, 4096);
    let d = m.digest().as_str().to_owned();
    let hex: Vec<String> = (0..3)
        .map(|i| m.piece_digest(i).unwrap().encoded().to_owned())
        .collect();
    let good = json_of(&d, 10_000, 4096, &hex);
    assert_eq!(parse(&good).unwrap(), m);

    let refused = |json: String, needle: &str| {
        let e = parse(&json).unwrap_err();
        assert!(e.contains(needle), "{e:?} should mention {needle:?}");
    };
    // Piece count does not fit the size.
    refused(
        json_of(&d, 10_000, 4096, &hex[..2]),
        "needs 3 piece hashes, it has 2",
    );
    refused(
        json_of(&d, 8192, 4096, &hex),
        "needs 2 piece hashes, it has 3",
    );
    refused(json_of(&d, 0, 4096, &hex), "needs 0 piece hashes");
    // Bad hex.
    let mut h = hex.clone();
    h[1] = h[1].to_uppercase();
    refused(
        json_of(&d, 10_000, 4096, &h),
        "piece hash 1 is invalid: not lowercase hex",
    );
    h[1] = hex[1][..63].to_owned();
    refused(json_of(&d, 10_000, 4096, &h), "not 64 hex digits");
    h[1] = "x".repeat(10_000);
    refused(json_of(&d, 10_000, 4096, &h), "not 64 hex digits");
    h[1] = format!("{}g", &hex[1][..63]);
    refused(json_of(&d, 10_000, 4096, &h), "not lowercase hex");
    // Piece lengths.
    refused(json_of(&d, 10_000, 5000, &hex), "not a power of two");
    refused(json_of(&d, 10_000, 0, &hex), "not a power of two");
    refused(json_of(&d, 10_000, 1024, &hex), "shorter than 4 KiB");
    refused(json_of(&d, 10_000, 1 << 40, &hex), "longer than 4 GiB");
    // Absurd sizes: no overflow, refused by count.
    refused(json_of(&d, u64::MAX, 4096, &hex), "more than the limit");
    refused(
        good.replace("\"size\":10000", "\"size\":18446744073709551616"),
        "expected u64",
    );
    refused(
        good.replace("\"size\":10000", "\"size\":-1"),
        "expected u64",
    );
    // Version, members.
    refused(
        good.replace("piece-map.v1", "piece-map.v2"),
        "not a piece map of version 1",
    );
    refused(good.replace("\"size\"", "\"Size\""), "unknown field");
    refused(
        good.replacen("{", r#"{"size":10000,"#, 1),
        "duplicate field",
    );
    refused(
        good.replace(",\"pieces\"", ",\"extra\":1,\"pieces\""),
        "unknown field",
    );
    refused(good.replace(&d, "sha256:abc"), "digest");
    refused(r#"{"mediaType":"x"}"#.to_owned(), "");
    // Too many pieces: refused while reading the list.
    let many = format!(
        r#"{{"mediaType":"{PIECE_MAP_MEDIA_TYPE}","digest":"{d}","size":10000,"pieceLength":4096,"pieces":[{}]}}"#,
        vec![format!("\"{}\"", hex[0]); PieceLayout::MAX_PIECES as usize + 1].join(",")
    );
    refused(many, "more than 262144 piece hashes");
}

#[test]
fn a_map_for_another_digest_parses_but_does_not_check() {
    let m = map_of(&blob(4096, 5), 4096);
    let other = map_of(&blob(4096, 6), 4096);
    let json = serde_json::to_string(&other).unwrap();
    let back = parse(&json).unwrap();
    assert!(back.check_for(m.digest(), 4096).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any blob, any valid piece length: the map round-trips through JSON, every piece
    /// checks, and any single changed byte is caught by the piece holding it.
    #[test]
    fn round_trip_and_piece_checks(
        len in 0usize..40_000,
        shift in 12u32..17,
        seed in any::<u8>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let data = blob(len, seed);
        let m = map_of(&data, 1 << shift);
        let json = serde_json::to_vec(&m).unwrap();
        let back: PieceMap = serde_json::from_slice(&json).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(serde_json::to_vec(&back).unwrap(), json);
        let l = m.layout();
        for i in 0..m.count() {
            let r = l.range(i).unwrap();
            prop_assert!(m.check_piece(i, &data[r.start as usize..r.end as usize]).is_ok());
        }
        if len > 0 {
            let at = flip.index(len);
            let mut bad = data.clone();
            bad[at] ^= 0x80;
            let i = l.piece_at(at as u64).unwrap();
            let r = l.range(i).unwrap();
            prop_assert!(
                matches!(
                    m.check_piece(i, &bad[r.start as usize..r.end as usize]),
                    Err(PieceMapError::PieceMismatch { .. })
                ),
                "flip at {} not caught by piece {}", at, i
            );
        }
    }

    /// Layout arithmetic: pieces tile the blob exactly, without overflow, for any size and
    /// any accepted piece length.
    #[test]
    fn layouts_tile_the_blob(size in any::<u64>(), shift in 12u32..=32) {
        match PieceLayout::new(size, 1 << shift) {
            Ok(l) => {
                prop_assert!(l.count() <= PieceLayout::MAX_PIECES);
                if l.count() > 0 {
                    prop_assert_eq!(l.range(0).unwrap().start, 0);
                    let last = l.range(l.count() - 1).unwrap();
                    prop_assert_eq!(last.end, size);
                    prop_assert!(last.end > last.start);
                    prop_assert_eq!(l.piece_at(size - 1), Some(l.count() - 1));
                }
                prop_assert_eq!(l.pieces_within(0..size), 0..l.count());
            }
            Err(PieceMapError::TooManyPieces { count, .. }) => {
                prop_assert!(count > PieceLayout::MAX_PIECES);
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
        if let Ok(l) = PieceLayout::for_size(size) {
            prop_assert!(l.piece_length() >= PieceLayout::DEFAULT_MIN_PIECE_LENGTH);
            prop_assert!(l.piece_length() <= PieceLayout::MAX_PIECE_LENGTH);
        }
    }

    /// The parser never panics on arbitrary text, and whatever it accepts is consistent and
    /// serialises back to a form it accepts again.
    #[test]
    fn parser_never_panics(s in ".{0,300}") {
        if let Ok(m) = serde_json::from_str::<PieceMap>(&s) {
            prop_assert_eq!(m.hashes().len() as u64, m.layout().count());
            let again: PieceMap = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
            prop_assert_eq!(again, m);
        }
    }

    /// Maps with a mutated size, piece length or piece list are accepted exactly when they are
    /// consistent.
    #[test]
    fn mutated_maps_are_refused_or_consistent(
        len in 1usize..20_000,
        size_delta in -5000i64..5000,
        pl in prop::sample::select(vec![0u64, 1, 4095, 4096, 6000, 8192, 1 << 33]),
        drop_piece in any::<bool>(),
    ) {
        let data = blob(len, 9);
        let m = map_of(&data, 4096);
        let mut hex: Vec<String> = (0..m.count()).map(|i| m.piece_digest(i).unwrap().encoded().to_owned()).collect();
        if drop_piece { hex.pop(); }
        let size = (len as i64 + size_delta).max(0) as u64;
        let valid = PieceLayout::new(size, pl)
            .is_ok_and(|l| l.count() == hex.len() as u64);
        let parsed = parse(&json_of(m.digest().as_str(), size, pl, &hex));
        prop_assert_eq!(parsed.is_ok(), valid, "{:?}", parsed);
        if let Ok(p) = parsed {
            prop_assert_eq!(p.layout().count(), hex.len() as u64);
            prop_assert_eq!(p.layout().piece_length(), pl);
        }
    }
}
