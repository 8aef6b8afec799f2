//! Hostile archives: each is refused with a typed error naming the member and the reason,
//! nothing is written outside the destination, and nothing unverified becomes visible.

mod archive_common;
mod common;

use std::path::Path;

use archive_common::*;
use common::{TempDir, tree};
use oci_store::{
    Algorithm, ArchiveKind, ArchiveOptions, ArchiveReader, ArchiveWriter, CopyOptions,
    LayoutOptions, LayoutStore, MemoryStore, ReadStore, StoreError, TagStore, WriteStore, copy,
    copy_leased,
};
use tar::EntryType;

/// Opens `bytes` written to a file as a `kind` archive; returns the error.
async fn refused(dir: &Path, kind: ArchiveKind, bytes: &[u8]) -> StoreError {
    refused_with(dir, kind, bytes, &ArchiveOptions::default()).await
}

async fn refused_with(
    dir: &Path,
    kind: ArchiveKind,
    bytes: &[u8],
    o: &ArchiveOptions,
) -> StoreError {
    let path = dir.join(format!("a-{}.tar", fastrand_name()));
    std::fs::write(&path, bytes).unwrap();
    match ArchiveReader::open_with(&path, kind, o).await {
        Ok(r) => panic!("a hostile archive was opened: {r:?}"),
        Err(e) => e,
    }
}

fn fastrand_name() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Asserts `e` is `InvalidArchive` whose reason contains `want` (and member `member` when
/// given), and that its text has no control characters.
fn assert_invalid(e: &StoreError, member: Option<&str>, want: &str) {
    match e {
        StoreError::InvalidArchive {
            member: m, reason, ..
        } => {
            assert!(reason.contains(want), "reason {reason:?} lacks {want:?}");
            if let Some(member) = member {
                assert_eq!(m, member, "{e}");
            }
        }
        other => panic!("expected InvalidArchive ({want}), got {other:?}"),
    }
    let text = e.to_string();
    assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
}

#[tokio::test]
async fn truncated_archives_are_refused() {
    let t = TempDir::new("hostile-truncated");
    let good = docker_save(1, &["app:v1"], |_| {});
    // Sanity: the untouched archive opens.
    let path = t.path().join("good.tar");
    std::fs::write(&path, &good).unwrap();
    ArchiveReader::open(&path, ArchiveKind::Docker)
        .await
        .unwrap();
    // Cut inside a member's data, inside a header, at a member boundary (no end marker).
    for cut in [700, 512 * 3 + 100, 512 * 8] {
        let e = refused(t.path(), ArchiveKind::Docker, &good[..cut]).await;
        assert_invalid(&e, None, "truncated");
    }
    let e = refused(t.path(), ArchiveKind::Docker, b"").await;
    assert_invalid(&e, None, "truncated");
}

#[tokio::test]
async fn a_member_whose_header_lies_about_its_size_is_refused() {
    let t = TempDir::new("hostile-size");
    // Larger than the archive: declared 1 TiB.
    let mut a = RawTar::default();
    a.member(b"manifest.json", EntryType::Regular, 1 << 40, b"", b"[]");
    let e = refused(t.path(), ArchiveKind::Docker, &a.finish()).await;
    assert_invalid(&e, Some("manifest.json"), "the header lies");
    // Smaller than the data: the next "header" is data, whose checksum fails.
    let mut a = RawTar::default();
    a.member(b"x", EntryType::Regular, 10, b"", &[b'z'; 2000]);
    let e = refused(t.path(), ArchiveKind::Docker, &a.finish()).await;
    assert_invalid(&e, None, "checksum");
    // A size field that is not a number.
    let mut bytes = {
        let mut a = RawTar::default();
        a.file("x", b"abc");
        a.finish()
    };
    bytes[124..136].copy_from_slice(b"zzzzzzzzzzz\0");
    let mut h = tar::Header::new_old();
    h.as_mut_bytes().copy_from_slice(&bytes[..512]);
    h.set_cksum();
    bytes[..512].copy_from_slice(h.as_bytes());
    let e = refused(t.path(), ArchiveKind::Docker, &bytes).await;
    assert_invalid(&e, Some("x"), "size field");
}

#[tokio::test]
async fn names_with_dot_dot_or_absolute_and_links_outside_are_refused() {
    let t = TempDir::new("hostile-names");
    for (name, want) in [
        (&b"../evil"[..], "`..`"),
        (b"a/../../evil", "`..`"),
        (b"/etc/passwd", "absolute"),
    ] {
        let mut a = RawTar::default();
        a.member(name, EntryType::Regular, 3, b"", b"abc");
        let e = refused(t.path(), ArchiveKind::Docker, &a.finish()).await;
        assert_invalid(&e, None, want);
    }
    for (ty, link) in [
        (EntryType::Symlink, &b"../../etc/passwd"[..]),
        (EntryType::Symlink, b"/etc/passwd"),
        (EntryType::Link, b"/etc/passwd"),
        (EntryType::Link, b"../x"),
    ] {
        let mut a = RawTar::default();
        a.member(b"dir/layer.tar", ty, 0, link, b"");
        let e = refused(t.path(), ArchiveKind::Docker, &a.finish()).await;
        assert_invalid(&e, Some("dir/layer.tar"), "outside the archive");
    }
    // A control character in a name is escaped in the error.
    let mut a = RawTar::default();
    a.member(b"\x1b[2Jevil/../../x", EntryType::Regular, 0, b"", b"");
    let e = refused(t.path(), ArchiveKind::Docker, &a.finish()).await;
    assert_invalid(&e, Some("\\u{1b}[2Jevil/../../x"), "`..`");
    // Special files are refused (no image archive holds one).
    let mut a = RawTar::default();
    a.member(b"dev", EntryType::Char, 0, b"", b"");
    let e = refused(t.path(), ArchiveKind::Oci, &a.finish()).await;
    assert_invalid(&e, Some("dev"), "special file");
}

#[tokio::test]
async fn links_inside_the_archive_are_followed_and_loops_refused() {
    let t = TempDir::new("hostile-links");
    // manifest.json reaches its layer through a symbolic link and a hard link, as legacy
    // archives do: that is fine.
    let bytes = docker_save(2, &["app:v1"], |members| {
        let layer = members[0].0.clone();
        let m = &mut members
            .iter_mut()
            .find(|(n, _)| n == "manifest.json")
            .unwrap()
            .1;
        let text = String::from_utf8(m.clone())
            .unwrap()
            .replace(&layer, "legacy/layer.tar");
        *m = text.into_bytes();
        members.push(("legacy/placeholder".into(), Vec::new()));
    });
    // Append the link members after the regular files (RawTar writes files only).
    let mut with_links = bytes[..bytes.len() - 1024].to_vec();
    let layer_name = {
        let mut a = tar::Archive::new(&bytes[..]);
        let mut entries = a.entries().unwrap();
        let first = entries.next().unwrap().unwrap();
        first.path().unwrap().display().to_string()
    };
    let mut a = RawTar::default();
    a.member(
        b"legacy/layer.tar",
        EntryType::Symlink,
        0,
        format!("../{layer_name}").as_bytes(),
        b"",
    );
    with_links.extend_from_slice(&a.finish());
    let path = t.path().join("links.tar");
    std::fs::write(&path, &with_links).unwrap();
    let r = ArchiveReader::open(&path, ArchiveKind::Docker)
        .await
        .unwrap();
    let root = r.resolve("app:v1").await.unwrap();
    oci_store::testing::check_complete(&r, &root).await.unwrap();

    // A loop of links, used by manifest.json, is refused.
    let looped = docker_save(3, &["app:v1"], |members| {
        let layer = members[0].0.clone();
        let m = &mut members
            .iter_mut()
            .find(|(n, _)| n == "manifest.json")
            .unwrap()
            .1;
        *m = String::from_utf8(m.clone())
            .unwrap()
            .replace(&layer, "l1")
            .into_bytes();
    });
    let mut bytes = looped[..looped.len() - 1024].to_vec();
    let mut a = RawTar::default();
    a.member(b"l1", EntryType::Symlink, 0, b"l2", b"");
    a.member(b"l2", EntryType::Symlink, 0, b"l1", b"");
    bytes.extend_from_slice(&a.finish());
    let e = refused(t.path(), ArchiveKind::Docker, &bytes).await;
    assert_invalid(&e, Some("l1"), "loop");
}

#[tokio::test]
async fn duplicate_members_are_refused() {
    let t = TempDir::new("hostile-dup");
    let bytes = docker_save(4, &["app:v1"], |members| {
        let dup = members[0].clone();
        members.push(dup);
    });
    let e = refused(t.path(), ArchiveKind::Docker, &bytes).await;
    assert_invalid(&e, None, "duplicate");
    // `./x` and `x` are the same member.
    let mut a = RawTar::default();
    a.file("oci-layout", b"{}").file("./oci-layout", b"{}");
    let e = refused(t.path(), ArchiveKind::Oci, &a.finish()).await;
    assert_invalid(&e, Some("./oci-layout"), "duplicate");
}

#[tokio::test]
async fn manifest_json_naming_missing_or_wrong_digest_files_is_refused() {
    let t = TempDir::new("hostile-manifest");
    // A layer that is not in the archive.
    let bytes = docker_save(5, &["app:v1"], |members| {
        members.remove(0);
    });
    let e = refused(t.path(), ArchiveKind::Docker, &bytes).await;
    assert_invalid(&e, None, "not in the archive");
    // A configuration whose bytes are not those its name states.
    let bytes = docker_save(6, &["app:v1"], |members| {
        let c = members
            .iter_mut()
            .find(|(n, _)| n.ends_with(".json") && n != "manifest.json")
            .unwrap();
        c.1 = String::from_utf8(c.1.clone())
            .unwrap()
            .replace("amd64", "arm64")
            .into_bytes();
    });
    let e = refused(t.path(), ArchiveKind::Docker, &bytes).await;
    assert_invalid(&e, None, "its name says");
    // An uncompressed layer named by a digest that is not its diff ID.
    let bytes = docker_save(7, &["app:v1"], |members| {
        let old = members[0].0.clone();
        let other = format!("{}.tar", Algorithm::Sha256.hash(b"another layer").encoded());
        members[0].0 = other.clone();
        let m = &mut members
            .iter_mut()
            .find(|(n, _)| n == "manifest.json")
            .unwrap()
            .1;
        *m = String::from_utf8(m.clone())
            .unwrap()
            .replace(&old, &other)
            .into_bytes();
    });
    let e = refused(t.path(), ArchiveKind::Docker, &bytes).await;
    assert_invalid(&e, None, "diff ID");
    // No manifest.json at all; not JSON; a layer count that disagrees with the config.
    let mut a = RawTar::default();
    a.file("x", b"1");
    let e = refused(t.path(), ArchiveKind::Docker, &a.finish()).await;
    assert_invalid(&e, Some("manifest.json"), "missing");
    let bytes = docker_save(8, &["app:v1"], |members| {
        members
            .iter_mut()
            .find(|(n, _)| n == "manifest.json")
            .unwrap()
            .1 = b"[{".to_vec();
    });
    let e = refused(t.path(), ArchiveKind::Docker, &bytes).await;
    assert_invalid(&e, Some("manifest.json"), "cannot be parsed");
    let bytes = docker_save(9, &["app:v1"], |members| {
        let m = &mut members
            .iter_mut()
            .find(|(n, _)| n == "manifest.json")
            .unwrap()
            .1;
        let v: serde_json::Value = serde_json::from_slice(m).unwrap();
        let mut v = v;
        v[0]["Layers"].as_array_mut().unwrap().pop();
        *m = serde_json::to_vec(&v).unwrap();
    });
    let e = refused(t.path(), ArchiveKind::Docker, &bytes).await;
    assert_invalid(&e, None, "diff IDs");
}

#[tokio::test]
async fn a_layer_whose_bytes_lie_is_never_visible_in_the_destination() {
    let t = TempDir::new("hostile-unverified");
    // A layer file not named by a digest, whose bytes are not its diff ID: the archive opens
    // (nothing says so before reading it), and reading it fails verification.
    let bytes = docker_save(10, &["app:v1"], |members| {
        let old = members[0].0.clone();
        members[0].0 = "layer-one.tar".into();
        members[0].1[600] ^= 1;
        let m = &mut members
            .iter_mut()
            .find(|(n, _)| n == "manifest.json")
            .unwrap()
            .1;
        *m = String::from_utf8(m.clone())
            .unwrap()
            .replace(&old, "layer-one.tar")
            .into_bytes();
    });
    let path = t.path().join("lying.tar");
    std::fs::write(&path, &bytes).unwrap();
    let r = ArchiveReader::open(&path, ArchiveKind::Docker)
        .await
        .unwrap();
    let before = tree(t.path());
    let dst_dir = t.path().join("dst");
    let dst = LayoutStore::open_with(&dst_dir, &LayoutOptions::create())
        .await
        .unwrap();
    let before_dst = tree(t.path());
    let e = copy_leased(
        &r,
        "app:v1",
        &dst,
        Some("v1"),
        &CopyOptions::default().with_retries(0, std::time::Duration::ZERO),
    )
    .await
    .unwrap_err();
    let chain = oci_store::error_chain(&e);
    assert!(chain.contains("failed verification"), "{chain}");
    // Nothing tagged, the lying layer absent; outside the destination nothing changed.
    assert!(dst.tags().await.unwrap().is_empty());
    let root = r.resolve("app:v1").await.unwrap();
    let m = r.fetch_manifest(&root).await.unwrap();
    assert!(!dst.exists(&m.layers()[0].digest).await.unwrap());
    let after = tree(t.path());
    for (k, v) in &before {
        assert_eq!(after.get(k), Some(v), "{k} changed");
    }
    assert!(
        after
            .keys()
            .all(|k| before_dst.contains_key(k) || k.starts_with("dst")),
        "new files outside dst"
    );
}

#[tokio::test]
async fn limits_refuse_huge_extensions_too_many_members_and_bombs() {
    let t = TempDir::new("hostile-limits");
    // A PAX header of 2 MiB (the limit is 1 MiB).
    let mut a = RawTar::default();
    a.member(
        b"PaxHeaders/x",
        EntryType::XHeader,
        2 << 20,
        b"",
        &vec![b'x'; 2 << 20],
    );
    a.file("x", b"1");
    let e = refused(t.path(), ArchiveKind::Oci, &a.finish()).await;
    assert_invalid(&e, None, "extension header");
    // More members than allowed.
    let mut a = RawTar::default();
    for i in 0..20 {
        a.file(&format!("f{i}"), b"");
    }
    let o = ArchiveOptions::default().with_max_members(10);
    let e = refused_with(t.path(), ArchiveKind::Oci, &a.finish(), &o).await;
    assert_invalid(&e, None, "more than 10 members");
    // A gzip bomb: 64 MiB of zeros from a few KiB.
    let mut a = RawTar::default();
    a.file("zeros", &vec![0u8; 64 << 20]);
    let gz = gzip(&a.finish());
    assert!(gz.len() < 1 << 20);
    let o = ArchiveOptions::default()
        .with_max_decompressed(8 << 20)
        .with_temp_dir(t.path());
    let e = refused_with(t.path(), ArchiveKind::Oci, &gz, &o).await;
    assert_invalid(&e, None, "decompresses to more than");
    // Not gzip: other compressions are named.
    let e = refused(
        t.path(),
        ArchiveKind::Oci,
        &[0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0],
    )
    .await;
    assert_invalid(&e, None, "zstd");
}

#[cfg(unix)]
#[tokio::test]
async fn a_fifo_is_refused_without_blocking() {
    let t = TempDir::new("hostile-fifo");
    let fifo = t.path().join("fifo.tar");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let e = ArchiveReader::open(&fifo, ArchiveKind::Docker)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::UnsafeEntry { .. }), "{e:?}");
}

#[tokio::test]
async fn oci_archive_index_naming_missing_blobs_is_refused() {
    let t = TempDir::new("hostile-oci");
    let idx = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":2}}]}}"#,
        Algorithm::Sha256.hash(b"{}")
    );
    let mut a = RawTar::default();
    a.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file("index.json", idx.as_bytes());
    let e = refused(t.path(), ArchiveKind::Oci, &a.finish()).await;
    assert_invalid(&e, Some("index.json"), "does not hold");
    let mut a = RawTar::default();
    a.file("index.json", b"{}");
    let e = refused(t.path(), ArchiveKind::Oci, &a.finish()).await;
    assert_invalid(&e, Some("oci-layout"), "missing");
    // A blob whose bytes are not its name's digest opens, and fails when read.
    let body = b"not what the name says";
    let name = format!(
        "blobs/sha256/{}",
        Algorithm::Sha256.hash(b"other").encoded()
    );
    let mut a = RawTar::default();
    a.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file("index.json", br#"{"schemaVersion":2,"manifests":[]}"#)
        .file(&name, body);
    let path = t.path().join("lying-oci.tar");
    std::fs::write(&path, a.finish()).unwrap();
    let r = ArchiveReader::open(&path, ArchiveKind::Oci).await.unwrap();
    let desc = oci_store::Descriptor::new(
        "application/octet-stream",
        Algorithm::Sha256.hash(b"other"),
        body.len() as u64,
    );
    let e = r.fetch_bytes(&desc, 1 << 20).await.unwrap_err();
    assert!(e.is_verification_failure(), "{e:?}");
    let m = MemoryStore::new();
    let e = m
        .push(&desc, r.fetch_unverified(&desc).await.unwrap())
        .await
        .unwrap_err();
    assert!(e.is_verification_failure(), "{e:?}");
    assert!(!m.exists(&desc.digest).await.unwrap());
}

#[tokio::test]
async fn an_archive_being_written_is_invisible_until_finished_and_gone_when_dropped() {
    let t = TempDir::new("writer-invisible");
    let (img, _) = real_image(40, 1, 2000, false);
    let src = MemoryStore::new();
    push_all(&src, &img).await;
    src.tag(img.root(), "v1").await.unwrap();
    for kind in [ArchiveKind::Docker, ArchiveKind::Oci] {
        let path = t.path().join(format!("{kind}.tar"));
        let before = tree(t.path());
        let w = ArchiveWriter::create(&path, kind).await.unwrap();
        copy(&src, "v1", &w, Some("app:v1"), &CopyOptions::default())
            .await
            .unwrap();
        assert!(!path.exists());
        drop(w);
        assert_eq!(
            tree(t.path()),
            before,
            "{kind}: a dropped writer left something"
        );
    }
    // A wrong blob pushed into a writer leaves nothing in it.
    let path = t.path().join("wrong.tar");
    let w = ArchiveWriter::create(&path, ArchiveKind::Oci)
        .await
        .unwrap();
    let desc = img.blobs[0].desc.clone();
    let e = w
        .push_bytes(&desc, bytes::Bytes::from_static(b"wrong"))
        .await
        .unwrap_err();
    assert!(e.is_verification_failure(), "{e:?}");
    assert_eq!(w.stat(&desc.digest).await.unwrap(), None);
    w.finish().await.unwrap();
    let r = ArchiveReader::open(&path, ArchiveKind::Oci).await.unwrap();
    assert_eq!(r.stat(&desc.digest).await.unwrap(), None);
    // An existing file is not replaced unless asked.
    let e = ArchiveWriter::create(&path, ArchiveKind::Oci)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{e:?}"
    );
}
