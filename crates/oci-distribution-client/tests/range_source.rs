//! Registries as range sources of a many-source fetch ([`RegistrySource`] with
//! `oci_store::fetch_blob`), against the in-process fault-injecting registry: 206 answers, a
//! 200 to a range, 416, redirects to storage, a corrupt mirror, 429s, a stalled body.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::fault::{FakeRegistry, Faults};
use oci_distribution_client::{
    Algorithm, Client, Descriptor, RegistrySource, Repository, RetryPolicy, media_types,
};
use oci_store::{
    FetchEvent, FetchOptions, MemoryStore, RangeSource, ReadStore, StoreError, collect, fetch_blob,
};

const MIB: usize = 1024 * 1024;

fn repo(reg: &FakeRegistry) -> Repository {
    let cfg = common::test_config(&reg.addr).with_retry(
        RetryPolicy::default()
            .with_max_retries(3)
            .with_backoff(Duration::from_millis(5), Duration::from_millis(20)),
    );
    Client::new(cfg)
        .expect("client")
        .repository_by_name(&reg.addr, "app")
        .expect("repository")
}

fn desc_of(data: &[u8]) -> Descriptor {
    Descriptor::new(
        media_types::OCI_LAYER_GZIP,
        Algorithm::Sha256.hash(data),
        data.len() as u64,
    )
}

/// A fake registry with `faults`, holding `data` in repository `app`.
async fn registry(faults: Faults, data: &[u8]) -> FakeRegistry {
    let reg = FakeRegistry::start(faults).await;
    let d = reg.put_blob(data);
    reg.state().links.insert(("app".into(), d.to_string()));
    reg
}

fn sources(regs: &[&FakeRegistry]) -> Vec<Arc<dyn RangeSource>> {
    regs.iter()
        .map(|r| Arc::new(RegistrySource::new(repo(r))) as Arc<dyn RangeSource>)
        .collect()
}

fn options() -> FetchOptions {
    FetchOptions::default()
        .with_idle_timeout(Some(Duration::from_secs(20)))
        .with_retry_delay(Duration::from_millis(5))
}

/// What the source answered for `start..end`: the offset of its first byte, and whether its
/// bytes are `data`'s from there (not printed: megabytes).
async fn read(
    source: &dyn RangeSource,
    desc: &Descriptor,
    data: &[u8],
    start: u64,
    end: u64,
) -> (u64, usize, bool) {
    let a = source.read_range(desc, start..end).await.expect("range");
    let from = a.start();
    let body: Bytes = collect(a.stream, u64::MAX).await.expect("body");
    let at = usize::try_from(from).unwrap();
    let same = data.get(at..at + body.len()) == Some(&body[..]);
    (from, body.len(), same)
}

#[tokio::test]
async fn answers_206_200_416_and_redirects_are_read_as_they_are() {
    let data = common::random(3 * MIB + 17, 1);
    let desc = desc_of(&data);

    // 206 from where asked.
    let plain = registry(Faults::default(), &data).await;
    let s = RegistrySource::new(repo(&plain));
    assert_eq!(s.source_name(), format!("{}/app", plain.addr));
    assert_eq!(read(&s, &desc, &data, 1000, 5000).await, (1000, 4000, true));
    assert_eq!(
        plain.seen().last().and_then(|r| r.range.clone()).as_deref(),
        Some("bytes=1000-4999")
    );
    // A range past the end is cut to the size.
    assert_eq!(
        read(&s, &desc, &data, 3 * MIB as u64, u64::MAX).await,
        (3 * MIB as u64, 17, true)
    );

    // A registry that ignores Range: the whole blob from byte 0, handed on as such.
    let ignoring = registry(
        Faults {
            ignore_ranges: true,
            ..Faults::default()
        },
        &data,
    )
    .await;
    assert_eq!(
        read(
            &RegistrySource::new(repo(&ignoring)),
            &desc,
            &data,
            1000,
            5000
        )
        .await,
        (0, data.len(), true)
    );

    // 416: the source's blob is shorter than the descriptor says; it does not hold this blob.
    let short = registry(
        Faults {
            answer_416: true,
            ..Faults::default()
        },
        &data,
    )
    .await;
    let longer = Descriptor::new(
        desc.media_type.clone(),
        desc.digest.clone(),
        desc.size + MIB as u64,
    );
    match RegistrySource::new(repo(&short))
        .read_range(&longer, desc.size + 10..desc.size + 20)
        .await
    {
        Err(StoreError::NotFound { digest }) => assert_eq!(digest, desc.digest),
        other => panic!("416 must read as not found: {other:?}"),
    }
    // A 206 naming another total length: another blob.
    match RegistrySource::new(repo(&plain))
        .read_range(&longer, 0..10)
        .await
    {
        Err(e) => assert!(
            oci_store::error_chain(&e).contains(&format!("{}", desc.size)),
            "{e}"
        ),
        Ok(a) => panic!("a 206 of another length was taken: {a:?}"),
    }

    // Redirects to storage: followed, ranged.
    let storage = registry(Faults::default(), &data).await;
    let redirecting = registry(
        Faults {
            redirect_blobs_to: Some(format!("http://{}", storage.addr)),
            ..Faults::default()
        },
        &data,
    )
    .await;
    assert_eq!(
        read(
            &RegistrySource::new(repo(&redirecting)),
            &desc,
            &data,
            7,
            70_007
        )
        .await,
        (7, 70_000, true)
    );
    let raw = storage
        .seen()
        .into_iter()
        .find(|r| r.target.starts_with("/raw/"))
        .expect("the storage was asked");
    assert_eq!(raw.range.as_deref(), Some("bytes=7-70006"));
    assert!(raw.authorization.is_none());

    // Unknown blob: not found.
    let other = desc_of(b"not there");
    assert!(matches!(
        s.read_range(&other, 0..3).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_corrupt_mirror_costs_its_pieces_and_is_named() {
    let data = common::random(6 * MIB, 2);
    let desc = desc_of(&data);
    let mirror = registry(
        Faults {
            corrupt_blobs: true,
            ..Faults::default()
        },
        &data,
    )
    .await;
    let origin = registry(Faults::default(), &data).await;
    let dst = MemoryStore::new();
    // Which source delivered which piece (a piece taken over before it arrived is not).
    let done = Arc::new(std::sync::Mutex::new(Vec::new()));
    let d = done.clone();
    let opts = options().with_events(Arc::new(move |e: &FetchEvent| {
        if let FetchEvent::PieceDone { source, index } = e {
            d.lock().unwrap().push((*source, *index));
        }
    }));
    let report = fetch_blob(&dst, "k", &desc, &sources(&[&mirror, &origin]), &opts)
        .await
        .expect("fetched");
    assert_eq!(dst.fetch_bytes(&desc, u64::MAX).await.unwrap(), &data[..]);
    // The fake flips the middle byte: piece 3 of six 1 MiB pieces, named with the mirror
    // exactly when the mirror delivered that piece.
    let mirror_name = format!("{}/app", mirror.addr);
    let bad: Vec<(u64, &str)> = report
        .bad_pieces
        .iter()
        .map(|b| (b.index, b.source_name.as_str()))
        .collect();
    let mirror_served_3 = done.lock().unwrap().contains(&(0, 3));
    let expected: Vec<(u64, &str)> = if mirror_served_3 {
        vec![(3, mirror_name.as_str())]
    } else {
        vec![]
    };
    assert_eq!(bad, expected, "{report:?}");
    // Without a map, at most what the mirror supplied is fetched again.
    assert!(
        report.bytes_refetched <= report.sources[0].bytes_fetched,
        "{report:?}"
    );
}

#[tokio::test]
async fn ignored_ranges_429s_and_stalls_still_end_in_the_blob() {
    let data = common::random(5 * MIB + 3, 3);
    let desc = desc_of(&data);
    let ignoring = registry(
        Faults {
            ignore_ranges: true,
            ..Faults::default()
        },
        &data,
    )
    .await;
    let limited = registry(
        Faults {
            rate_limit: 3,
            ..Faults::default()
        },
        &data,
    )
    .await;
    let stalling = registry(
        Faults {
            stall_blob_gets: 2,
            ..Faults::default()
        },
        &data,
    )
    .await;
    let origin = registry(Faults::default(), &data).await;
    let dst = MemoryStore::new();
    let report = fetch_blob(
        &dst,
        "k",
        &desc,
        &sources(&[&ignoring, &limited, &stalling, &origin]),
        &options().with_idle_timeout(Some(Duration::from_secs(5))),
    )
    .await
    .expect("fetched");
    assert_eq!(dst.fetch_bytes(&desc, u64::MAX).await.unwrap(), &data[..]);
    assert!(report.bad_pieces.is_empty(), "{report:?}");
    assert_eq!(
        report.sources.iter().map(|s| s.pieces).sum::<u64>(),
        report.pieces
    );
    // The source that ignores ranges serves at most the pieces within one piece of the start.
    assert!(report.sources[0].pieces <= 2, "{report:?}");
}

#[tokio::test]
async fn a_blob_no_registry_serves_whole_is_an_error_naming_the_pieces() {
    let data = common::random(3 * MIB, 4);
    let desc = desc_of(&data);
    let a = registry(
        Faults {
            corrupt_blobs: true,
            ..Faults::default()
        },
        &data,
    )
    .await;
    let b = registry(
        Faults {
            corrupt_blobs: true,
            ..Faults::default()
        },
        &data,
    )
    .await;
    let dst = MemoryStore::new();
    let err = fetch_blob(&dst, "k", &desc, &sources(&[&a, &b]), &options())
        .await
        .expect_err("no source has the right bytes");
    let text = oci_store::error_chain(&err);
    assert!(text.contains("piece"), "{text}");
    assert!(!dst.exists(&desc.digest).await.unwrap());
}
