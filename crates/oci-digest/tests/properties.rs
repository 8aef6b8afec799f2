//! Property tests: round trips, no panics on arbitrary input, chunking and saved state
//! never change a digest, and the verifying wrappers agree with one-shot hashing.
use std::io::{Read, Write};

use oci_digest::{
    Algorithm, Digest, Digester, ParseDigestError, Verifier, VerifyError, VerifyingReader,
    VerifyingWriter,
};
use proptest::prelude::*;

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![Just(Algorithm::Sha256), Just(Algorithm::Sha512)]
}

/// Any valid digest: an algorithm and random lowercase hex of its length.
fn digest() -> impl Strategy<Value = Digest> {
    algorithm().prop_flat_map(|alg| {
        proptest::collection::vec(any::<u8>(), alg.output_len())
            .prop_map(move |raw| Digest::from_raw(alg, &raw).expect("right length"))
    })
}

/// Cut `data` at sorted random points.
fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for p in points.into_iter().chain([data.len()]) {
        out.push(&data[prev..p]);
        prev = p;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn display_from_str_round_trip(d in digest()) {
        let s = d.to_string();
        prop_assert_eq!(s.parse::<Digest>()?, d.clone());
        prop_assert_eq!(s.as_str(), d.as_str());
        prop_assert_eq!(format!("{}:{}", d.algorithm(), d.encoded()), s);
        prop_assert_eq!(Digest::from_raw(d.algorithm(), &d.to_raw())?, d);
    }

    #[test]
    fn serde_round_trip(d in digest()) {
        let json = serde_json::to_string(&d).expect("serialises");
        prop_assert_eq!(serde_json::from_str::<Digest>(&json).expect("deserialises"), d);
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        let _ = s.parse::<Digest>();
    }

    #[test]
    fn grammar_shaped_strings_never_panic_and_are_canonical_when_accepted(
        s in "[a-z0-9+._-]{0,12}:[a-zA-Z0-9=_-]{0,140}"
    ) {
        if let Ok(d) = s.parse::<Digest>() {
            prop_assert_eq!(d.as_str(), s.as_str());
            prop_assert!(d.encoded().bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            prop_assert_eq!(d.encoded().len(), d.algorithm().hex_len());
        }
    }

    #[test]
    fn accepted_digests_are_safe_path_components(s in "\\PC{0,80}") {
        if let Ok(d) = s.parse::<Digest>() {
            for part in [d.algorithm().as_str(), d.encoded()] {
                prop_assert!(!part.is_empty() && part != "." && part != "..");
                prop_assert!(!part.contains('/') && !part.contains('\\') && !part.contains('\0'));
            }
        }
    }

    #[test]
    fn changing_the_case_of_a_hex_letter_is_rejected(d in digest(), pos in any::<usize>()) {
        let enc = d.encoded();
        if let Some((i, _)) = enc.char_indices().filter(|(_, c)| c.is_ascii_alphabetic()).nth(pos % 64) {
            let mut upper = d.as_str().to_owned();
            let at = d.algorithm().as_str().len() + 1 + i;
            upper.replace_range(at..at + 1, &enc[i..i + 1].to_uppercase());
            let is_invalid_format = matches!(upper.parse::<Digest>(), Err(ParseDigestError::InvalidFormat { .. }));
            prop_assert!(is_invalid_format);
        }
    }

    #[test]
    fn chunking_does_not_change_the_digest(
        alg in algorithm(),
        data in proptest::collection::vec(any::<u8>(), 0..4096),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut d = Digester::new(alg);
        for piece in split(&data, &cuts) {
            d.update(piece);
        }
        prop_assert_eq!(d.bytes_hashed(), data.len() as u64);
        prop_assert_eq!(d.finalize(), alg.hash(&data));
    }

    #[test]
    fn saved_and_restored_state_gives_the_same_digest(
        alg in algorithm(),
        data in proptest::collection::vec(any::<u8>(), 0..4096),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        // Save and restore between every piece, as a transfer interrupted many times would.
        let mut d = Digester::new(alg);
        for piece in split(&data, &cuts) {
            d.update(piece);
            d = Digester::restore(&d.save_state())?;
        }
        prop_assert_eq!(d.bytes_hashed(), data.len() as u64);
        prop_assert_eq!(d.finalize(), alg.hash(&data));
    }

    #[test]
    fn damaged_states_are_refused_or_equal(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        flip_at in any::<usize>(),
        flip in 1u8..=255,
    ) {
        let mut d = Digester::new(Algorithm::Sha256);
        d.update(&data);
        let mut saved = d.save_state();
        let i = flip_at % saved.len();
        saved[i] ^= flip;
        prop_assert!(Digester::restore(&saved).is_err());
    }

    #[test]
    fn verifying_reader_accepts_exactly_the_right_content(
        alg in algorithm(),
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        delta in -3i64..=3,
        corrupt in proptest::option::of(any::<usize>()),
    ) {
        let expected = alg.hash(&data);
        let mut sent = data.clone();
        if let Some(at) = corrupt.filter(|_| !sent.is_empty()) {
            let i = at % sent.len();
            sent[i] ^= 0x01;
        }
        let size = (data.len() as i64 + delta).max(0) as u64;
        let mut r = VerifyingReader::new(&sent[..], expected.clone(), size);
        let result = r.read_to_end(&mut Vec::new());
        let ok = size == data.len() as u64 && sent == data;
        prop_assert_eq!(result.is_ok(), ok);
        if let Err(e) = result {
            let v = VerifyError::from_io(&e).expect("typed");
            prop_assert_eq!(v.expected(), &expected);
            match v {
                VerifyError::TooLong { .. } => prop_assert!((sent.len() as u64) > size),
                VerifyError::TooShort { .. } => prop_assert!((sent.len() as u64) < size),
                VerifyError::DigestMismatch { actual, .. } => prop_assert_eq!(actual, &alg.hash(&sent)),
                _ => prop_assert!(false, "unknown variant"),
            }
        }
    }

    #[test]
    fn verifying_writer_and_resumed_verifier_agree(
        data in proptest::collection::vec(any::<u8>(), 1..2048),
        cut in any::<usize>(),
    ) {
        let expected = Algorithm::Sha256.hash(&data);
        let cut = cut % data.len();
        // First half through a writer, state saved; second half through a resumed verifier.
        let mut w = VerifyingWriter::new(Vec::new(), expected.clone(), data.len() as u64);
        w.write_all(&data[..cut]).expect("within size");
        let saved = w.verifier().digester().save_state();
        let mut v = Verifier::resume(expected.clone(), data.len() as u64, Digester::restore(&saved)?)?;
        v.update(&data[cut..])?;
        let verified = v.finish()?;
        prop_assert_eq!(verified.digest(), &expected);
    }
}

#[cfg(feature = "oci-spec")]
proptest! {
    #[test]
    fn oci_spec_round_trip(d in digest()) {
        let theirs = oci_spec::image::Digest::from(&d);
        prop_assert_eq!(theirs.as_ref(), d.as_str());
        prop_assert_eq!(theirs.digest(), d.encoded());
        // What oci-spec parses from our string is the same value.
        let parsed: oci_spec::image::Digest = d.as_str().parse().unwrap();
        prop_assert_eq!(&parsed, &theirs);
        prop_assert_eq!(Digest::try_from(theirs).unwrap(), d);
    }

    #[test]
    fn oci_spec_digests_we_refuse_are_errors_not_panics(s in "[a-z0-9+._-]{1,12}:[a-zA-Z0-9=_-]{1,140}") {
        if let Ok(theirs) = s.parse::<oci_spec::image::Digest>() {
            match Digest::try_from(&theirs) {
                Ok(ours) => prop_assert_eq!(ours.as_str(), s.as_str()),
                Err(e) => prop_assert!(Digest::parse(&s).is_err(), "{}", e),
            }
        }
    }
}
