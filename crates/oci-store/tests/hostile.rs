//! Layouts written by someone hostile (DESIGN.md invariants 8 and 9): links out of the tree in
//! place of the store's directories, records and blobs; FIFOs and devices where files belong;
//! sparse and oversized files. The store never reads, writes or removes outside its own tree
//! (checked by a snapshot of a victim directory before and after), never blocks on a special
//! file, reads every small file with a limit, and says what it refused.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use oci_digest::Algorithm;
use oci_manifest::Descriptor;
use oci_store::{
    FsckOptions, GcOptions, LayoutOptions, LayoutStore, ManagedStore, ReadStore, STATE_DIR,
    StoreError, TagStore, WriteStore,
};

/// Generous bound for anything that must not block (a hang fails the test instead).
const BOUND: Duration = Duration::from_secs(60);

fn gc_now() -> GcOptions {
    let mut o = GcOptions::default().with_min_age(Duration::ZERO);
    o.stale_ingest_age = Duration::ZERO;
    o
}

fn dry_now() -> GcOptions {
    let mut o = gc_now();
    o.dry_run = true;
    o
}

/// A layout with a tagged 2-layer image and one unreferenced blob.
async fn populated(dir: &Path, seed: u64) -> (LayoutStore, Image) {
    let store = LayoutStore::open_with(dir, &LayoutOptions::create())
        .await
        .unwrap();
    let img = image(seed, 2, 4096);
    push_image(&store, &img).await.unwrap();
    store.tag(img.root(), "v1").await.unwrap();
    let junk = blob("application/octet-stream", format!("garbage {seed}"));
    store.push_bytes(&junk.desc, junk.data).await.unwrap();
    (store, img)
}

/// A directory of someone else's files: a file, a nested tree, and an old-looking subdirectory.
fn victim(dir: &Path) {
    std::fs::write(dir.join("precious.txt"), b"not yours").unwrap();
    std::fs::create_dir_all(dir.join("tree/deeper")).unwrap();
    std::fs::write(dir.join("tree/deeper/file"), b"also not yours").unwrap();
    std::fs::write(dir.join("tree/meta.json"), b"{}").unwrap();
}

fn mkfifo(path: &Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo (coreutils) is needed for these tests");
    assert!(st.success(), "mkfifo {}", path.display());
}

fn assert_unsafe(r: Result<impl std::fmt::Debug, StoreError>, path_ends: &str, found: &str) {
    match r {
        Err(StoreError::UnsafeEntry { path, found: f, .. }) => {
            assert!(
                path.to_string_lossy().ends_with(path_ends),
                "refused {} but expected {path_ends}",
                path.display()
            );
            assert_eq!(f, found, "at {}", path.display());
        }
        other => panic!("expected UnsafeEntry at {path_ends} ({found}), got {other:?}"),
    }
}

/// Runs `fut` with a bound; on a hang, opens `fifo` for writing (which releases a reader blocked
/// on it) and fails.
async fn bounded<T>(fifo: &Path, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(BOUND, fut).await {
        Ok(v) => v,
        Err(_) => {
            let _ = std::fs::OpenOptions::new().write(true).open(fifo);
            panic!("blocked on the FIFO {}", fifo.display());
        }
    }
}

fn blob_file(root: &Path, d: &Descriptor) -> PathBuf {
    root.join("blobs/sha256").join(d.digest.encoded())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_blob_directory_is_refused_and_the_other_store_keeps_every_blob() {
    let (v, h) = (TempDir::new("victim-store"), TempDir::new("hostile"));
    let (_victim_store, victim_img) = populated(v.path(), 1).await;
    // The victim's blobs are garbage from the hostile layout's point of view (its index does not
    // refer to them).
    let (early, _) = populated(h.path(), 2).await;
    let before = tree(v.path());

    std::fs::remove_dir_all(h.path().join("blobs/sha256")).unwrap();
    symlink(v.path().join("blobs/sha256"), h.path().join("blobs/sha256")).unwrap();

    // Opening refuses, whatever the mode.
    assert_unsafe(
        LayoutStore::open(h.path()).await,
        "blobs/sha256",
        "a symbolic link",
    );
    assert_unsafe(
        LayoutStore::open_with(h.path(), &LayoutOptions::read_only()).await,
        "blobs/sha256",
        "a symbolic link",
    );
    // A store opened before the link was planted checks again before it acts.
    assert_unsafe(
        early.gc(&dry_now()).await,
        "blobs/sha256",
        "a symbolic link",
    );
    assert_unsafe(early.gc(&gc_now()).await, "blobs/sha256", "a symbolic link");
    assert_unsafe(
        early.fsck(&FsckOptions::repair()).await,
        "blobs/sha256",
        "a symbolic link",
    );
    assert_eq!(tree(v.path()), before, "the other store changed");
    let victim_store = LayoutStore::open(v.path()).await.unwrap();
    check_complete(&victim_store, victim_img.root())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_state_directories_are_refused_and_nothing_outside_is_removed() {
    for linked in [
        STATE_DIR.to_owned(),
        format!("{STATE_DIR}/tmp"),
        format!("{STATE_DIR}/ingests"),
        format!("{STATE_DIR}/leases"),
        "blobs".to_owned(),
    ] {
        let (v, h) = (TempDir::new("victim"), TempDir::new("hostile"));
        victim(v.path());
        // Make the victim look old, so "stale" rules would match it.
        let (early, _) = populated(h.path(), 3).await;
        let before = tree(v.path());
        let at = h.path().join(&linked);
        std::fs::rename(&at, h.path().join("moved-away")).unwrap();
        symlink(v.path(), &at).unwrap();

        assert_unsafe(
            LayoutStore::open(h.path()).await,
            &linked,
            "a symbolic link",
        );
        assert_unsafe(
            LayoutStore::open_with(h.path(), &LayoutOptions::read_only()).await,
            &linked,
            "a symbolic link",
        );
        assert_unsafe(early.gc(&dry_now()).await, &linked, "a symbolic link");
        assert_unsafe(early.gc(&gc_now()).await, &linked, "a symbolic link");
        assert_unsafe(
            early.fsck(&FsckOptions::repair()).await,
            &linked,
            "a symbolic link",
        );
        assert_eq!(
            tree(v.path()),
            before,
            "victim changed with {linked} linked"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_and_special_files_among_blobs_are_skipped_never_followed_or_removed() {
    let (v, h) = (TempDir::new("victim"), TempDir::new("hostile"));
    victim(v.path());
    let (store, img) = populated(h.path(), 4).await;
    let blobs = h.path().join("blobs/sha256");
    // Unreferenced names that are valid digests: a link to the victim's file named by that
    // file's own digest (it would verify), a FIFO, a directory.
    let precious = std::fs::read(v.path().join("precious.txt")).unwrap();
    let link = blobs.join(Algorithm::Sha256.hash(&precious).encoded());
    symlink(v.path().join("precious.txt"), &link).unwrap();
    let fifo = blobs.join(Algorithm::Sha256.hash(b"fifo").encoded());
    mkfifo(&fifo);
    let dir = blobs.join(Algorithm::Sha256.hash(b"dir").encoded());
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("inside"), b"x").unwrap();
    let before = tree(v.path());

    let dry = bounded(&fifo, store.gc(&dry_now())).await.unwrap();
    let mut skipped: Vec<(PathBuf, &str)> = dry
        .skipped
        .iter()
        .map(|s| (s.path.clone(), s.found))
        .collect();
    skipped.sort();
    let mut expected = vec![
        (link.clone(), "a symbolic link"),
        (fifo.clone(), "a FIFO"),
        (dir.clone(), "a directory"),
    ];
    expected.sort();
    assert_eq!(skipped, expected);
    assert_eq!(dry.removed.len(), 1, "only the garbage blob: {dry:?}");
    let real = bounded(&fifo, store.gc(&gc_now())).await.unwrap();
    assert_eq!(real.skipped, dry.skipped);
    assert_eq!(real.removed, dry.removed);
    for p in [&link, &fifo, &dir] {
        assert!(
            std::fs::symlink_metadata(p).is_ok(),
            "{} removed",
            p.display()
        );
    }

    let fsck = bounded(&fifo, store.fsck(&FsckOptions::repair()))
        .await
        .unwrap();
    assert_eq!(fsck.skipped.len(), 3, "{fsck:?}");
    assert!(!fsck.is_clean());
    assert!(fsck.removed.is_empty());
    assert_eq!(tree(v.path()), before, "victim changed");
    check_complete(&store, img.root()).await.unwrap();

    // A referenced layer replaced by a link to a good copy outside: not served through the
    // link, reported missing by fsck, and a new write replaces the link itself.
    let layer = img.blobs[0].desc.clone();
    let outside = v.path().join("layer-copy");
    std::fs::copy(blob_file(h.path(), &layer), &outside).unwrap();
    std::fs::remove_file(blob_file(h.path(), &layer)).unwrap();
    symlink(&outside, blob_file(h.path(), &layer)).unwrap();
    let before = tree(v.path());
    assert_unsafe(
        store.fetch(&layer).await.map(|_| ()),
        layer.digest.encoded(),
        "a symbolic link",
    );
    assert_eq!(store.stat(&layer.digest).await.unwrap(), None);
    let fsck = store.fsck(&FsckOptions::default()).await.unwrap();
    assert!(
        fsck.missing.iter().any(|(d, _)| d == &layer.digest),
        "{fsck:?}"
    );
    store
        .push_bytes(&layer, img.blobs[0].data.clone())
        .await
        .unwrap();
    assert!(
        std::fs::symlink_metadata(blob_file(h.path(), &layer))
            .unwrap()
            .is_file()
    );
    assert_eq!(tree(v.path()), before, "victim changed by the write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_as_blob_or_index_never_blocks() {
    let h = TempDir::new("hostile");
    let (store, img) = populated(h.path(), 5).await;
    let layer = img.blobs[0].desc.clone();
    let path = blob_file(h.path(), &layer);
    std::fs::remove_file(&path).unwrap();
    mkfifo(&path);
    assert_unsafe(
        bounded(&path, store.fetch(&layer)).await.map(|_| ()),
        layer.digest.encoded(),
        "a FIFO",
    );
    assert_unsafe(
        bounded(&path, store.fetch_range(&layer, 0..1))
            .await
            .map(|_| ()),
        layer.digest.encoded(),
        "a FIFO",
    );
    assert_eq!(
        bounded(&path, store.stat(&layer.digest)).await.unwrap(),
        None
    );

    let index = h.path().join("index.json");
    std::fs::remove_file(&index).unwrap();
    mkfifo(&index);
    assert_unsafe(bounded(&index, store.tags()).await, "index.json", "a FIFO");
    assert_unsafe(
        bounded(&index, store.gc(&dry_now())).await,
        "index.json",
        "a FIFO",
    );
    assert_unsafe(
        bounded(&index, LayoutStore::open(h.path())).await,
        "index.json",
        "a FIFO",
    );
}

/// Peak resident memory of this process (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_json_is_read_with_its_limit_applied() {
    let h = TempDir::new("hostile");
    LayoutStore::open_with(h.path(), &LayoutOptions::create())
        .await
        .unwrap();
    let index = h.path().join("index.json");

    // A sparse file of 8 GiB: refused without reading it.
    std::fs::remove_file(&index).unwrap();
    let f = std::fs::File::create(&index).unwrap();
    f.set_len(8 << 30).unwrap();
    drop(f);
    let rss = peak_rss();
    match LayoutStore::open(h.path()).await {
        Err(StoreError::FileTooLarge { path, limit }) => {
            assert!(path.ends_with("index.json"));
            assert_eq!(limit, 64 << 20);
        }
        other => panic!("expected FileTooLarge, got {other:?}"),
    }
    let grown = peak_rss().saturating_sub(rss);
    assert!(grown < 64 << 20, "peak RSS grew by {grown} bytes");

    // A link to an endless device: refused as a link, never read.
    std::fs::remove_file(&index).unwrap();
    symlink("/dev/zero", &index).unwrap();
    assert_unsafe(
        LayoutStore::open(h.path()).await,
        "index.json",
        "a symbolic link",
    );
    assert_unsafe(
        LayoutStore::open_with(h.path(), &LayoutOptions::read_only()).await,
        "index.json",
        "a symbolic link",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_lists_exactly_what_the_real_run_removes_and_changes_nothing() {
    let h = TempDir::new("gc-plan");
    let (store, img) = populated(h.path(), 6).await;
    // An expired lease, a stale ingest, a leftover temporary file, besides the garbage blob.
    let lease = store.create_lease(Duration::ZERO).await.unwrap();
    let stale = blob("application/octet-stream", "half-written");
    let mut w = store.writer("stale-ingest", &stale.desc).await.unwrap();
    w.write(stale.data.slice(..4)).await.unwrap();
    drop(w);
    let leftover = h.path().join(STATE_DIR).join("tmp/tmp-crashed");
    std::fs::write(&leftover, b"x").unwrap();

    let before = tree(h.path());
    let dry = store.gc(&dry_now()).await.unwrap();
    assert_eq!(tree(h.path()), before, "a dry run changed the layout");
    assert_eq!(dry.expired_leases, vec![lease.id().to_owned()]);
    assert_eq!(dry.stale_ingests, vec!["stale-ingest".to_owned()]);
    assert_eq!(dry.temporary_files, vec![leftover.clone()]);
    assert_eq!(dry.removed.len(), 1);

    let real = store.gc(&gc_now()).await.unwrap();
    assert!(!real.dry_run);
    assert_eq!(
        (
            &real.removed,
            &real.expired_leases,
            &real.stale_ingests,
            &real.temporary_files,
            &real.skipped
        ),
        (
            &dry.removed,
            &dry.expired_leases,
            &dry.stale_ingests,
            &dry.temporary_files,
            &dry.skipped
        )
    );
    // What disappeared is exactly what the dry run listed (files and the ingest's directory).
    let after = tree(h.path());
    let gone: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let mut listed: Vec<String> = dry
        .removed
        .iter()
        .map(|r| format!("blobs/sha256/{}", r.digest.encoded()))
        .chain(
            dry.temporary_files
                .iter()
                .map(|p| p.strip_prefix(h.path()).unwrap().display().to_string()),
        )
        .chain(["json", "pins"].map(|ext| format!("{STATE_DIR}/leases/{}.{ext}", lease.id())))
        .collect();
    let ingest = format!(
        "{STATE_DIR}/ingests/{}",
        Algorithm::Sha256.hash(b"stale-ingest").encoded()
    );
    listed.extend(before.keys().filter(|k| k.starts_with(&ingest)).cloned());
    listed.sort();
    let mut gone: Vec<String> = gone.into_iter().cloned().collect();
    gone.sort();
    assert_eq!(gone, listed);
    check_complete(&store, img.root()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_of_a_read_only_layout_creates_nothing() {
    let h = TempDir::new("gc-ro");
    populated(h.path(), 7).await;
    std::fs::remove_dir_all(h.path().join(STATE_DIR)).unwrap();
    let before = tree(h.path());
    let store = LayoutStore::open_with(h.path(), &LayoutOptions::read_only())
        .await
        .unwrap();
    let report = store.gc(&dry_now()).await.unwrap();
    assert_eq!(report.removed.len(), 1);
    assert!(matches!(
        store.gc(&gc_now()).await,
        Err(StoreError::ReadOnly { .. })
    ));
    store.fsck(&FsckOptions::default()).await.unwrap();
    assert_eq!(tree(h.path()), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_planted_in_an_ingest_are_never_written_through() {
    let (v, h) = (TempDir::new("victim"), TempDir::new("hostile"));
    victim(v.path());
    let (store, _) = populated(h.path(), 8).await;
    let content = blob("application/octet-stream", "new content");
    let key = "planted";
    let dir = h
        .path()
        .join(STATE_DIR)
        .join("ingests")
        .join(Algorithm::Sha256.hash(key.as_bytes()).encoded());
    let before = tree(v.path());
    for planted in ["meta.json", "data", "lock"] {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if planted != "meta.json" {
            // A genuine record, so the writer gets as far as the planted file.
            let mut w = store.writer(key, &content.desc).await.unwrap();
            w.write(content.data.slice(..3)).await.unwrap();
            drop(w);
            std::fs::remove_file(dir.join(planted)).unwrap();
        }
        symlink(v.path().join("precious.txt"), dir.join(planted)).unwrap();
        let r = store.writer(key, &content.desc).await.map(|_| ());
        assert_unsafe(r, planted, "a symbolic link");
        assert_eq!(tree(v.path()), before, "victim changed through {planted}");
    }
    // The whole ingest directory as a link.
    std::fs::remove_dir_all(&dir).unwrap();
    symlink(v.path().join("tree"), &dir).unwrap();
    assert_unsafe(
        store.writer(key, &content.desc).await.map(|_| ()),
        &dir.file_name().unwrap().to_string_lossy(),
        "a symbolic link",
    );
    let report = store.gc(&gc_now()).await.unwrap();
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(std::fs::symlink_metadata(&dir).is_ok());
    assert_eq!(tree(v.path()), before, "victim changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_lease_record_stops_a_collection_instead_of_dropping_its_pins() {
    let (v, h) = (TempDir::new("victim"), TempDir::new("hostile"));
    victim(v.path());
    let (store, _) = populated(h.path(), 9).await;
    let lease = store.create_lease(Duration::from_secs(3600)).await.unwrap();
    let leased = store.with_lease(&lease);
    let pinned = blob("application/octet-stream", "pinned");
    leased
        .push_bytes(&pinned.desc, pinned.data.clone())
        .await
        .unwrap();
    let pins = h
        .path()
        .join(STATE_DIR)
        .join("leases")
        .join(format!("{}.pins", lease.id()));
    std::fs::remove_file(&pins).unwrap();
    symlink(v.path().join("precious.txt"), &pins).unwrap();
    let before = tree(v.path());
    assert_unsafe(store.gc(&gc_now()).await, ".pins", "a symbolic link");
    assert!(store.stat(&pinned.desc.digest).await.unwrap().is_some());
    let other = blob("application/octet-stream", "more");
    assert_unsafe(
        leased.push_bytes(&other.desc, other.data).await,
        ".pins",
        "a symbolic link",
    );
    assert_eq!(tree(v.path()), before, "victim changed");
}
