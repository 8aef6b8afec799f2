//! The async wrappers follow the same rules as the sync ones.
#![cfg(all(feature = "stream", feature = "tokio"))]
use std::io;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use oci_digest::{Algorithm, VerifyError, VerifyingAsyncReader, VerifyingStream};
use tokio::io::AsyncReadExt;

fn chunks(parts: &[&'static [u8]]) -> Vec<io::Result<Bytes>> {
    parts.iter().map(|p| Ok(Bytes::from_static(p))).collect()
}

async fn collect<S: futures_util::Stream<Item = io::Result<Bytes>> + Unpin>(
    mut s: S,
) -> (Vec<u8>, Option<io::Error>, usize) {
    let (mut out, mut err, mut items_after_err) = (Vec::new(), None, 0);
    while let Some(item) = s.next().await {
        match item {
            Ok(b) if err.is_none() => out.extend_from_slice(&b),
            Ok(_) => items_after_err += 1,
            Err(e) if err.is_none() => err = Some(e),
            Err(_) => items_after_err += 1,
        }
    }
    (out, err, items_after_err)
}

#[tokio::test]
async fn stream_verifies_and_reports_each_failure_kind() {
    let expected = Algorithm::Sha256.hash(b"hello world");

    let s = VerifyingStream::new(
        stream::iter(chunks(&[b"hello ", b"world"])),
        expected.clone(),
        11,
    );
    let (out, err, _) = collect(s).await;
    assert_eq!(out, b"hello world");
    assert!(err.is_none());

    // Too long: the chunk crossing the size is replaced by an error, and the stream ends.
    let s = VerifyingStream::new(
        stream::iter(chunks(&[b"hello ", b"world!", b"more"])),
        expected.clone(),
        11,
    );
    let (out, err, after) = collect(s).await;
    assert_eq!(out, b"hello ");
    assert_eq!(after, 0);
    let err = err.expect("an error");
    assert!(matches!(
        VerifyError::from_io(&err),
        Some(VerifyError::TooLong { received: 12, .. })
    ));

    // Too short and mismatch: an error item after the last chunk.
    let s = VerifyingStream::new(stream::iter(chunks(&[b"hello"])), expected.clone(), 11);
    let err = collect(s).await.1.expect("an error");
    assert!(matches!(
        VerifyError::from_io(&err),
        Some(VerifyError::TooShort { received: 5, .. })
    ));
    let s = VerifyingStream::new(
        stream::iter(chunks(&[b"hello ", b"World"])),
        expected.clone(),
        11,
    );
    let err = collect(s).await.1.expect("an error");
    match VerifyError::from_io(&err) {
        Some(VerifyError::DigestMismatch {
            expected: e,
            actual,
            size: 11,
        }) => {
            assert_eq!(e, &expected);
            assert_eq!(actual, &Algorithm::Sha256.hash(b"hello World"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn stream_passes_inner_errors_through_and_stops() {
    let expected = Algorithm::Sha256.hash(b"abc");
    let items: Vec<Result<Bytes, io::Error>> = vec![
        Ok(Bytes::from_static(b"a")),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "reset by peer",
        )),
        Ok(Bytes::from_static(b"bc")),
    ];
    let mut s = VerifyingStream::new(stream::iter(items), expected, 3);
    assert_eq!(s.next().await.expect("item").expect("ok").as_ref(), b"a");
    let err = s.next().await.expect("item").expect_err("error");
    assert!(err.to_string().contains("reset by peer"));
    assert!(s.next().await.is_none());
    assert!(s.verified().is_none());
    assert_eq!(s.verifier().received(), 1);
}

#[tokio::test]
async fn async_reader_rules() {
    let data = vec![7u8; 100_000];
    let expected = Algorithm::Sha512.hash(&data);

    let mut r = VerifyingAsyncReader::new(&data[..], expected.clone(), data.len() as u64);
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.expect("verified");
    assert_eq!(out, data);
    assert_eq!(r.verified().expect("verified").size(), 100_000);

    // Excess: the read that sees it fails and hands over none of its bytes.
    let mut r = VerifyingAsyncReader::new(&data[..], expected.clone(), 99_999);
    let mut buf = vec![0u8; 200_000];
    let err = r.read(&mut buf).await.expect_err("too long");
    assert!(matches!(
        VerifyError::from_io(&err),
        Some(VerifyError::TooLong { .. })
    ));
    assert!(r.read(&mut buf).await.is_err(), "the error sticks");

    let mut r = VerifyingAsyncReader::new(&data[1..], expected.clone(), 100_000);
    let err = r.read_to_end(&mut Vec::new()).await.expect_err("too short");
    assert!(matches!(
        VerifyError::from_io(&err),
        Some(VerifyError::TooShort {
            received: 99_999,
            ..
        })
    ));
}
