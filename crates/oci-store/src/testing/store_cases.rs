//! The cases of the read, write and tag traits ([`Store`]): what every backend, local or
//! remote, must do.

use bytes::Bytes;
use oci_digest::VerifyError;
use oci_manifest::media_types;

use super::content::{Rng, blob, image, push_image};
use super::{Case, assert_no_ingest, push_tagged, read_all};
use crate::error::StoreError;
use crate::traits::{Opened, PushOutcome, Store, collect};

/// Content of sizes 0 B to 5 MiB: absent before its push, written by the first push and
/// "already exists" at the second, `stat` answering its size, read back whole and from offset
/// 1 to past its end; then an image's manifest: "already exists" at its second push, `stat`
/// answering its size, read back with exactly the bytes pushed, read through
/// [`fetch_manifest`](crate::ReadStore::fetch_manifest) with its children, and
/// [`fetch_bytes`](crate::ReadStore::fetch_bytes) refusing it above a size limit.
pub async fn round_trip<S: Store + ?Sized>(s: &S) {
    let c = Case("round_trip");
    let mut rng = Rng::new(1);
    for size in [0usize, 1, 1000, (1 << 20) + 17, 5 << 20] {
        let b = blob(media_types::OCI_LAYER_GZIP, rng.bytes(size));
        let d = &b.desc.digest;
        let what = format!("{size}-byte blob {d}");
        assert_eq!(
            c.ok(s.stat(d).await, format_args!("stat {what}")),
            None,
            "{c}: {what} is stored before its push"
        );
        assert!(
            !c.ok(s.exists(d).await, format_args!("exists {what}")),
            "{c}: {what} exists before its push"
        );
        assert_eq!(
            c.ok(
                s.push_bytes(&b.desc, b.data.clone()).await,
                format_args!("push {what}")
            ),
            PushOutcome::Written,
            "{c}: first push of {what}"
        );
        assert_eq!(
            c.ok(s.stat(d).await, format_args!("stat {what}")),
            Some(size as u64),
            "{c}: stat of {what} after its push"
        );
        assert!(
            c.ok(read_all(s, &b.desc).await, format_args!("read {what}")) == b.data,
            "{c}: {what} reads back other bytes"
        );
        assert_eq!(
            c.ok(
                s.push_bytes(&b.desc, b.data.clone()).await,
                format_args!("push {what} again")
            ),
            PushOutcome::AlreadyExists,
            "{c}: second push of {what}"
        );
        let range = c.ok(
            s.fetch_range(&b.desc, 1..size as u64 + 100).await,
            format_args!("fetch_range 1.. of {what}"),
        );
        let r = c.ok(
            collect(range, u64::MAX).await,
            format_args!("read range 1.. of {what}"),
        );
        assert!(
            r == b.data.slice(1.min(size)..),
            "{c}: range 1..{} of {what} gave {} other bytes",
            size + 100,
            r.len()
        );
    }
    // Manifests through the manifest helper, with its size limit.
    let img = image(2, 2, 100);
    let root = img.root();
    c.ok(push_image(s, &img).await, "push image 2");
    let raw = &img.blobs[3].data;
    assert_eq!(
        c.ok(
            s.push_bytes(root, raw.clone()).await,
            format_args!("push manifest {} again", root.digest)
        ),
        PushOutcome::AlreadyExists,
        "{c}: second push of manifest {}",
        root.digest
    );
    assert_eq!(
        c.ok(
            s.stat(&root.digest).await,
            format_args!("stat manifest {}", root.digest)
        ),
        Some(root.size),
        "{c}: stat of manifest {}",
        root.digest
    );
    assert!(
        c.ok(
            read_all(s, root).await,
            format_args!("read manifest {}", root.digest)
        ) == *raw,
        "{c}: manifest {} reads back other bytes than were pushed",
        root.digest
    );
    let m = c.ok(
        s.fetch_manifest(root).await,
        format_args!("fetch_manifest {}", root.digest),
    );
    assert_eq!(m.digest(), &root.digest, "{c}: manifest digest");
    assert_eq!(
        m.children().len(),
        3,
        "{c}: children of manifest {}",
        root.digest
    );
    assert_err!(
        c,
        s.fetch_bytes(root, 10).await,
        StoreError::ManifestTooLarge { limit: 10, .. },
        "fetch_bytes of manifest {} with a limit of 10 bytes",
        root.digest
    );
}

/// Ranges of a 200,000-byte blob and of a manifest: empty, whole, inside, the last byte, cut
/// at the end, starting past the end (empty).
pub async fn ranges<S: Store + ?Sized>(s: &S) {
    let c = Case("ranges");
    let img = image(3, 1, 200_000);
    c.ok(push_image(s, &img).await, "push image 3");
    for b in [&img.blobs[0], &img.blobs[2]] {
        let size = b.desc.size;
        let d = &b.desc.digest;
        for r in [
            0..0,
            0..size,
            size / 4..size * 3 / 4,
            size - 1..size,
            10..u64::MAX,
            size + 5..size + 10,
        ] {
            let stream = c.ok(
                s.fetch_range(&b.desc, r.clone()).await,
                format_args!("fetch_range {r:?} of {d}"),
            );
            let got = c.ok(
                collect(stream, u64::MAX).await,
                format_args!("read range {r:?} of {d}"),
            );
            let end = r.end.min(size) as usize;
            let start = (r.start as usize).min(end);
            assert!(
                got == b.data.slice(start..end),
                "{c}: range {r:?} of {d} ({size} bytes) gave {} other bytes",
                got.len()
            );
        }
    }
}

/// Descriptors that do not match what is stored: a fetch of content that is not stored is
/// [`StoreError::NotFound`] naming the digest; a fetch through a descriptor one byte larger or
/// smaller than the content fails, at once or before its stream ends (never as if the content
/// were right). (Stores that know sizes at once: [`sizes_checked_at_once`].)
pub async fn bad_descriptors<S: Store + ?Sized>(s: &S) {
    let c = Case("bad_descriptors");
    let img = image(2, 2, 100);
    c.ok(push_image(s, &img).await, "push image 2");
    let missing = blob("x/y", &b"not stored"[..]);
    assert_err!(
        c,
        s.fetch(&missing.desc).await,
        StoreError::NotFound { digest } if *digest == missing.desc.digest,
        "fetch of {}, never stored",
        missing.desc.digest
    );
    for b in [&img.blobs[0], &img.blobs[3]] {
        for size in [b.desc.size + 1, b.desc.size - 1] {
            let mut wrong = b.desc.clone();
            wrong.size = size;
            let d = &wrong.digest;
            match s.fetch(&wrong).await {
                Err(StoreError::SizeMismatch {
                    expected, actual, ..
                }) => assert_eq!(
                    (expected, actual),
                    (size, b.desc.size),
                    "{c}: sizes named when {d} is fetched with size {size}"
                ),
                Err(e) => panic!("{c}: fetch of {d} with size {size}: unexpected error {e:?}"),
                Ok(stream) => {
                    c.err(
                        collect(stream, u64::MAX).await,
                        format_args!("read of {d} through a descriptor of {size} bytes"),
                    );
                }
            }
        }
    }
}

/// Sizes are checked at once, as a store that knows the size of what it stores can: a fetch
/// through a descriptor one byte too large is [`StoreError::SizeMismatch`] naming both sizes
/// before anything is streamed, and a tag through such a descriptor is
/// [`StoreError::SizeMismatch`] and tags nothing.
///
/// Not for a registry repository today: its fetch streams and fails at the end of the stream,
/// and its tag points at the manifest found by digest whatever size the descriptor says.
pub async fn sizes_checked_at_once<S: Store + ?Sized>(s: &S) {
    let c = Case("sizes_checked_at_once");
    let img = image(2, 2, 100);
    c.ok(push_image(s, &img).await, "push image 2");
    let mut wrong = img.blobs[0].desc.clone();
    wrong.size += 1;
    assert_err!(
        c,
        s.fetch(&wrong).await,
        StoreError::SizeMismatch { expected, actual, .. } if *actual + 1 == *expected,
        "fetch of {} with a size 1 byte too large",
        wrong.digest
    );
    let mut wrong = img.root().clone();
    wrong.size += 1;
    assert_err!(
        c,
        s.tag(&wrong, "v3").await,
        StoreError::SizeMismatch { .. },
        "tag of manifest {} with a size 1 byte too large",
        wrong.digest
    );
    assert!(
        c.ok(s.tags().await, "tags").is_empty(),
        "{c}: a refused tag was created"
    );
}

/// [`delete`](crate::WriteStore::delete) removes one blob and nothing else; deleting it again is
/// not found; a manifest is deleted the same way.
pub async fn delete<S: Store + ?Sized>(s: &S) {
    let c = Case("delete");
    let img = image(2, 2, 100);
    c.ok(push_image(s, &img).await, "push image 2");
    let gone = &img.blobs[0].desc.digest;
    c.ok(s.delete(gone).await, format_args!("delete {gone}"));
    assert!(
        !c.ok(s.exists(gone).await, format_args!("exists {gone}")),
        "{c}: {gone} exists after its delete"
    );
    let err = c.err(s.delete(gone).await, format_args!("delete {gone} again"));
    assert!(err.is_not_found(), "{c}: delete {gone} again: {err:?}");
    for b in &img.blobs[1..] {
        let d = &b.desc.digest;
        assert!(
            c.ok(read_all(s, &b.desc).await, format_args!("read {d}")) == b.data,
            "{c}: {d} changed when another blob was deleted"
        );
    }
    let root = &img.root().digest;
    c.ok(s.delete(root).await, format_args!("delete manifest {root}"));
    assert_eq!(
        c.ok(s.stat(root).await, format_args!("stat manifest {root}")),
        None,
        "{c}: manifest {root} stored after its delete"
    );
}

/// Verified or invisible: a push of bytes with another digest, too few bytes, too many bytes
/// (a descriptor with a wrong size) or a source that fails half way is refused with a typed
/// error, leaves the content absent and leaves no ingest behind.
pub async fn verified_or_invisible<S: Store + ?Sized>(s: &S) {
    let c = Case("verified_or_invisible");
    let good = blob("application/octet-stream", Rng::new(5).bytes(100_000));
    let d = &good.desc.digest;
    // Wrong digest.
    let mut bad = good.data.to_vec();
    bad[500] ^= 1;
    assert_err!(
        c,
        s.push_bytes(&good.desc, Bytes::from(bad)).await,
        StoreError::Verify(VerifyError::DigestMismatch { .. }),
        "push of {d} with one byte flipped"
    );
    // Truncated.
    assert_err!(
        c,
        s.push_bytes(&good.desc, good.data.slice(..99_999)).await,
        StoreError::Verify(VerifyError::TooShort {
            received: 99_999,
            ..
        }),
        "push of {d} without its last byte"
    );
    // Too long (wrong size in the descriptor).
    let mut small = good.desc.clone();
    small.size = 10;
    assert_err!(
        c,
        s.push_bytes(&small, good.data.clone()).await,
        StoreError::Verify(VerifyError::TooLong { .. }),
        "push of {d} under a descriptor of 10 bytes"
    );
    // Source failure half way.
    let chunks: Vec<std::io::Result<Bytes>> = vec![
        Ok(good.data.slice(..1000)),
        Err(std::io::Error::other("connection reset")),
    ];
    assert_err!(
        c,
        s.push(&good.desc, Box::pin(futures_util::stream::iter(chunks)))
            .await,
        StoreError::Source { .. },
        "push of {d} from a source failing after 1000 bytes"
    );
    assert_eq!(
        c.ok(s.stat(d).await, format_args!("stat {d}")),
        None,
        "{c}: {d} visible after failed pushes"
    );
    assert!(
        c.ok(s.ingests().await, "ingests").is_empty(),
        "{c}: failed pushes leave no ingest"
    );
}

/// Resumable writers: a key is busy while a writer holds it; a dropped writer leaves an ingest
/// that resumes at its offset; another digest under the key is refused; a write past the size
/// is refused at once; commit verifies (wrong bytes leave nothing, not even the ingest); abort
/// (of a writer, or by key of a dropped writer's ingest) removes the ingest;
/// [`writer_unless_present`](crate::WriteStore::writer_unless_present) opens a writer for
/// content the store has not and answers `Present` for content it has, leaving no ingest.
/// (Key validation: [`ingest_keys`].)
///
/// A backend that sends bytes in chunks (a registry) reports as offset what its peer
/// acknowledged: configure it so that 1 MiB is a whole number of chunks.
pub async fn resumable_writer<S: Store + ?Sized>(s: &S) {
    let c = Case("resumable_writer");
    let b = blob("application/octet-stream", Rng::new(9).bytes(3 << 20));
    let d = &b.desc.digest;
    let mut w = c.ok(
        s.writer("k1", &b.desc).await,
        format_args!("writer k1 for {d}"),
    );
    assert_eq!(w.offset(), 0, "{c}: offset of a new writer");
    c.ok(
        w.write(b.data.slice(..1 << 20)).await,
        "write the first MiB under k1",
    );
    // The key is busy while a writer holds it.
    assert_err!(
        c,
        s.writer("k1", &b.desc).await,
        StoreError::IngestBusy { .. },
        "second writer k1 while the first is open"
    );
    assert_err!(
        c,
        s.abort_ingest("k1").await,
        StoreError::IngestBusy { .. },
        "abort_ingest k1 while a writer holds it"
    );
    drop(w);
    let st = c
        .ok(s.ingest_status("k1").await, "ingest_status k1")
        .unwrap_or_else(|| panic!("{c}: no ingest k1 after its writer was dropped"));
    assert_eq!(st.offset, 1 << 20, "{c}: offset of ingest k1");
    assert_eq!(&st.expected.digest, d, "{c}: expected digest of ingest k1");
    assert_eq!(
        c.ok(s.ingests().await, "ingests").len(),
        1,
        "{c}: ingests after one dropped writer"
    );
    // Another digest under the same key is refused.
    let other = blob("application/octet-stream", &b"other"[..]);
    assert_err!(
        c,
        s.writer("k1", &other.desc).await,
        StoreError::IngestMismatch { .. },
        "writer k1 for another digest {}",
        other.desc.digest
    );
    // Resume.
    let mut w = c.ok(s.writer("k1", &b.desc).await, "resume writer k1");
    assert_eq!(w.offset(), 1 << 20, "{c}: offset of the resumed writer k1");
    assert_err!(
        c,
        w.write(b.data.clone()).await,
        StoreError::Verify(VerifyError::TooLong { .. }),
        "write of the whole {d} at offset 1 MiB"
    );
    c.ok(
        w.write(b.data.slice(1 << 20..)).await,
        "write the rest of k1",
    );
    assert_eq!(
        c.ok(w.commit().await, format_args!("commit k1 ({d})")),
        PushOutcome::Written,
        "{c}: commit of k1"
    );
    assert_no_ingest(c, s, "k1", "after its commit").await;
    assert!(
        c.ok(read_all(s, &b.desc).await, format_args!("read {d}")) == b.data,
        "{c}: {d} reads back other bytes"
    );
    // A writer whose content is wrong fails at commit and leaves nothing.
    let right = blob("application/octet-stream", &b"right"[..]);
    let rd = &right.desc.digest;
    let mut w = c.ok(s.writer("k2", &right.desc).await, "writer k2");
    c.ok(w.write(Bytes::from_static(b"wrong")).await, "write k2");
    assert_err!(
        c,
        w.commit().await,
        StoreError::Verify(VerifyError::DigestMismatch { .. }),
        "commit of wrong bytes for {rd}"
    );
    assert!(
        !c.ok(s.exists(rd).await, format_args!("exists {rd}")),
        "{c}: {rd} visible after a failed commit"
    );
    assert_no_ingest(c, s, "k2", "after a failed commit").await;
    // Abort.
    let w = c.ok(s.writer("k3", &right.desc).await, "writer k3");
    c.ok(w.abort().await, "abort writer k3");
    assert_no_ingest(c, s, "k3", "after abort").await;
    let err = c.err(s.abort_ingest("k3").await, "abort_ingest k3 after abort");
    assert!(err.is_not_found(), "{c}: abort_ingest k3 again: {err:?}");
    // Abort of the ingest a dropped writer left.
    let w = c.ok(s.writer("k4", &right.desc).await, "writer k4");
    drop(w);
    c.ok(
        s.abort_ingest("k4").await,
        "abort_ingest k4 after its writer was dropped",
    );
    assert_no_ingest(c, s, "k4", "after abort_ingest").await;
    let err = c.err(s.abort_ingest("k4").await, "abort_ingest k4 again");
    assert!(err.is_not_found(), "{c}: abort_ingest k4 again: {err:?}");
    // `writer_unless_present`: a writer for content the store has not, which lands; then
    // `Present` for it and for the 3 MiB committed above, with its size if one is given.
    let small = blob("application/octet-stream", &b"small and new"[..]);
    let sd = &small.desc.digest;
    let Opened::Writer(mut w) = c.ok(
        s.writer_unless_present("k5", &small.desc).await,
        format_args!("writer_unless_present k5 for {sd}, not stored"),
    ) else {
        panic!("{c}: writer_unless_present answered Present for {sd}, never stored");
    };
    assert_eq!(w.offset(), 0, "{c}: offset of writer_unless_present k5");
    c.ok(w.write(small.data.clone()).await, "write k5");
    c.ok(w.commit().await, format_args!("commit k5 ({sd})"));
    assert_no_ingest(c, s, "k5", "after its commit").await;
    for x in [&small, &b] {
        let xd = &x.desc.digest;
        match c.ok(
            s.writer_unless_present("k6", &x.desc).await,
            format_args!("writer_unless_present k6 for {xd}, stored"),
        ) {
            Opened::Present { size } => assert!(
                size.is_none_or(|n| n == x.desc.size),
                "{c}: writer_unless_present says {xd} is there with {size:?} bytes"
            ),
            other => panic!("{c}: writer_unless_present for {xd}, stored: {other:?}"),
        }
        assert_no_ingest(c, s, "k6", "after Present").await;
    }
}

/// Ingest keys are validated, not used as paths: an empty key, a key with a NUL and a key over
/// [`MAX_INGEST_KEY_LEN`](crate::MAX_INGEST_KEY_LEN) bytes are refused with
/// [`StoreError::InvalidIngestKey`]; `../../etc/passwd` is just a key, and its content is
/// written and verified.
///
/// Not for a registry repository today: it takes any key (its keys name upload records, not
/// paths).
pub async fn ingest_keys<S: Store + ?Sized>(s: &S) {
    let c = Case("ingest_keys");
    let right = blob("application/octet-stream", &b"right"[..]);
    for bad in ["", "a\0b", &"k".repeat(crate::MAX_INGEST_KEY_LEN + 1)] {
        assert_err!(
            c,
            s.writer(bad, &right.desc).await,
            StoreError::InvalidIngestKey { .. },
            "writer with the key {:?}",
            bad.get(..20).unwrap_or(bad)
        );
    }
    let mut w = c.ok(
        s.writer("../../etc/passwd", &right.desc).await,
        "writer ../../etc/passwd",
    );
    c.ok(
        w.write(Bytes::from_static(b"right")).await,
        "write ../../etc/passwd",
    );
    assert_eq!(
        c.ok(w.commit().await, "commit ../../etc/passwd"),
        PushOutcome::Written,
        "{c}: commit under the key ../../etc/passwd"
    );
    assert!(
        c.ok(read_all(s, &right.desc).await, "read back") == right.data,
        "{c}: {} reads back other bytes",
        right.desc.digest
    );
}

/// Tags: an unknown tag does not resolve; a tag of content that is not stored is refused; tags point at what they were given
/// (digest, size, media type), move when set again, list sorted; invalid names are refused.
pub async fn tags<S: Store + ?Sized>(s: &S) {
    let c = Case("tags");
    assert_err!(
        c,
        s.resolve("nope").await,
        StoreError::TagNotFound { tag } if tag == "nope",
        "resolve of a tag never set"
    );
    let img = image(3, 1, 10);
    let root = img.root();
    assert_err!(
        c,
        s.tag(root, "v1").await,
        StoreError::NotFound { .. },
        "tag v1 of {}, not stored",
        root.digest
    );
    push_tagged(c, s, &img, &["v1", "v2"]).await;
    assert_eq!(c.ok(s.tags().await, "tags"), vec!["v1", "v2"], "{c}: tags");
    let r = c.ok(s.resolve("v1").await, "resolve v1");
    assert_eq!(
        (&r.digest, r.size, &r.media_type),
        (&root.digest, root.size, &root.media_type),
        "{c}: resolve v1"
    );
    let img2 = image(4, 1, 10);
    let root2 = img2.root();
    push_tagged(c, s, &img2, &["v1"]).await;
    assert_eq!(
        c.ok(s.resolve("v1").await, "resolve v1").digest,
        root2.digest,
        "{c}: v1 after it moved"
    );
    assert_eq!(
        c.ok(s.tags().await, "tags"),
        vec!["v1", "v2"],
        "{c}: tags after v1 moved"
    );
    for bad in ["", "../x", "a b", "a\nb", &"x".repeat(300)] {
        assert_err!(
            c,
            s.tag(root, bad).await,
            StoreError::InvalidTag { .. },
            "tag {bad:?}"
        );
    }
    assert_eq!(
        c.ok(s.tags().await, "tags"),
        vec!["v1", "v2"],
        "{c}: tags after invalid names were refused"
    );
}

/// [`untag`](crate::TagStore::untag) removes one tag and leaves the content; a removed tag does
/// not resolve and cannot be removed again.
///
/// Needs the deletion of tags, which registries may not offer (distribution answers
/// `UNSUPPORTED` to a `DELETE` of a manifest by tag).
pub async fn untag<S: Store + ?Sized>(s: &S) {
    let c = Case("untag");
    let img = image(3, 1, 10);
    let root = img.root();
    push_tagged(c, s, &img, &["v1", "v2"]).await;
    c.ok(s.untag("v1").await, "untag v1");
    assert_err!(
        c,
        s.resolve("v1").await,
        StoreError::TagNotFound { tag } if tag == "v1",
        "resolve v1 after untag"
    );
    assert_err!(
        c,
        s.untag("v1").await,
        StoreError::TagNotFound { .. },
        "untag v1 again"
    );
    assert_eq!(c.ok(s.tags().await, "tags"), vec!["v2"], "{c}: tags");
    assert!(
        c.ok(s.exists(&root.digest).await, "exists root"),
        "{c}: untag removed content {}",
        root.digest
    );
}

/// The traits are object safe: content pushed and read through `&dyn Store`.
pub async fn object_safe<S: Store>(s: &S) {
    let c = Case("object_safe");
    let s: &dyn Store = s;
    let b = blob("text/plain", &b"via dyn"[..]);
    let d = &b.desc.digest;
    c.ok(
        s.push_bytes(&b.desc, b.data.clone()).await,
        format_args!("push {d} through &dyn Store"),
    );
    assert!(
        c.ok(read_all(s, &b.desc).await, format_args!("read {d}")) == b.data,
        "{c}: {d} reads back other bytes through &dyn Store"
    );
}
