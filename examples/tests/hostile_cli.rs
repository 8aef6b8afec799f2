//! Hostile layouts through the examples a user runs (`gc`, `gc --dry-run`, `fsck`,
//! `fsck --repair`, `copy`, `inspect`): links out of the layout in place of its directories and
//! blobs, FIFOs as a blob and as `index.json`, a sparse `index.json` and one linked to
//! `/dev/zero`. For every case and every command: nothing outside the layout changes (a victim
//! directory is snapshotted before and after), the run ends by itself (bounded wait; a hang
//! fails the test), its peak memory stays bounded (GNU time's maximum RSS), and a refusal says
//! what was refused.

mod common;

use common::TempDir;

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use oci_digest::Algorithm;
use oci_manifest::build::ImageManifestBuilder;
use oci_manifest::{Descriptor, media_types};
use oci_store::{LayoutOptions, LayoutStore, TagStore, WriteStore};

/// A run that has not ended after this long is hung.
const BOUND: Duration = Duration::from_secs(60);
/// Peak resident memory allowed to any run (the examples stream; a layout's small files are read
/// with limits).
const RSS_LIMIT_KB: u64 = 150 * 1024;

#[derive(Debug, PartialEq, Eq)]
enum Entry {
    File(Vec<u8>, SystemTime),
    Link(PathBuf),
    Dir(SystemTime),
    Other,
}

/// Every entry under `dir`, links recorded and never followed.
fn tree(dir: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let name = p.strip_prefix(dir).unwrap().display().to_string();
            let entry = if m.is_dir() {
                stack.push(p);
                Entry::Dir(m.modified().unwrap())
            } else if m.file_type().is_symlink() {
                Entry::Link(std::fs::read_link(&p).unwrap())
            } else if m.is_file() {
                Entry::File(std::fs::read(&p).unwrap(), m.modified().unwrap())
            } else {
                Entry::Other
            };
            out.insert(name, entry);
        }
    }
    out
}

struct Run {
    code: i32,
    out: String,
    err: String,
    peak_kb: u64,
}

/// Runs an example under GNU time with a bounded wait; a run still going after [`BOUND`] is
/// killed and fails the test.
fn run(name: &str, args: &[&str]) -> Run {
    let tmp = TempDir::new("run");
    let (out_path, err_path, rss_path) = (
        tmp.path().join("out"),
        tmp.path().join("err"),
        tmp.path().join("rss"),
    );
    let time = Path::new("/usr/bin/time");
    assert!(
        time.exists(),
        "GNU time is needed to measure peak memory: apt-get install time"
    );
    let mut child = Command::new(time)
        .arg("-o")
        .arg(&rss_path)
        .args(["-f", "%M"])
        .arg(common::example(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("runs");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > BOUND {
            let _ = Command::new("pkill")
                .args(["-KILL", "-P", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{name} {args:?} did not end within {BOUND:?}; stderr: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let rss = std::fs::read_to_string(&rss_path).unwrap_or_default();
    // GNU time writes "Command exited with non-zero status N" before the figure.
    let peak_kb = rss
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no peak RSS from GNU time: {rss:?}"));
    Run {
        code: status.code().unwrap_or(-1),
        out: std::fs::read_to_string(&out_path).unwrap(),
        err: std::fs::read_to_string(&err_path).unwrap(),
        peak_kb,
    }
}

fn blob(mt: &str, data: Vec<u8>) -> (Descriptor, Bytes) {
    let data = Bytes::from(data);
    (
        Descriptor::new(mt, Algorithm::Sha256.hash(&data), data.len() as u64),
        data,
    )
}

/// A layout with a tagged one-layer image and an unreferenced blob; returns the layer.
fn layout(dir: &Path, seed: u8) -> Descriptor {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = LayoutStore::open_with(dir, &LayoutOptions::create())
            .await
            .unwrap();
        let layer = blob(media_types::OCI_LAYER_GZIP, vec![seed; 100_000]);
        let config = blob(
            media_types::OCI_CONFIG,
            format!("{{\"seed\":{seed}}}").into(),
        );
        let junk = blob("application/octet-stream", vec![seed, 1, 2, 3]);
        let m = ImageManifestBuilder::oci(config.0.clone())
            .layer(layer.0.clone())
            .build()
            .unwrap();
        for (d, b) in [&layer, &config, &junk, &(m.descriptor(), m.raw().clone())] {
            store.push_bytes(d, b.clone()).await.unwrap();
        }
        store.tag(&m.descriptor(), "v1").await.unwrap();
        layer.0
    })
}

/// Someone else's files.
fn victim(dir: &Path) {
    std::fs::write(dir.join("precious.txt"), b"not yours").unwrap();
    std::fs::create_dir_all(dir.join("tree/deeper")).unwrap();
    std::fs::write(dir.join("tree/deeper/file"), b"also not yours").unwrap();
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo (coreutils) is needed");
    assert!(st.success());
}

/// The six commands on layout `h`, each with what it must print when it refuses.
fn commands(h: &Path, dst: &Path) -> Vec<(&'static str, Vec<String>)> {
    let h = h.display().to_string();
    vec![
        ("gc", vec![format!("oci:{h}"), "--dry-run".into()]),
        ("gc", vec![format!("oci:{h}")]),
        ("fsck", vec![format!("oci:{h}")]),
        ("fsck", vec![format!("oci:{h}"), "--repair".into()]),
        (
            "copy",
            vec![format!("oci:{h}:v1"), format!("oci:{}:v1", dst.display())],
        ),
        ("inspect", vec![format!("oci:{h}:v1")]),
    ]
}

/// Runs every command on `h`; each must end, stay within the memory bound, leave `victim`
/// unchanged, and (when `refusal` is given) fail saying it.
fn every_command(case: &str, h: &Path, victim: &Path, refusal: Option<&str>) -> Vec<Run> {
    let before = tree(victim);
    let dst = TempDir::new("dst");
    let mut runs = Vec::new();
    for (name, args) in commands(h, &dst.path().join("out")) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(name, &args);
        assert!(
            !r.err.contains("panicked"),
            "{case}: {name} {args:?} panicked: {}",
            r.err
        );
        assert!(
            r.peak_kb < RSS_LIMIT_KB,
            "{case}: {name} {args:?} peaked at {} KiB",
            r.peak_kb
        );
        if let Some(text) = refusal {
            assert_ne!(r.code, 0, "{case}: {name} {args:?} succeeded: {}", r.out);
            assert!(
                r.err.contains(text),
                "{case}: {name} {args:?} did not say {text:?}: {}",
                r.err
            );
        }
        assert_eq!(
            tree(victim),
            before,
            "{case}: {name} {args:?} changed files outside the layout"
        );
        runs.push(r);
    }
    runs
}

#[test]
fn linked_directories_of_a_layout_are_refused_by_every_command() {
    for linked in [
        "blobs/sha256",
        "blobs",
        ".oci-rs/tmp",
        ".oci-rs/ingests",
        ".oci-rs",
    ] {
        let (v, h) = (TempDir::new("victim"), TempDir::new("hostile"));
        if linked.starts_with("blobs") {
            // Another store's blobs, all garbage from the hostile layout's point of view.
            layout(v.path(), 1);
        } else {
            victim(v.path());
        }
        layout(h.path(), 2);
        let at = h.path().join(linked);
        std::fs::remove_dir_all(&at).unwrap();
        let target = if linked == "blobs" {
            v.path().join("blobs")
        } else if linked == "blobs/sha256" {
            v.path().join("blobs/sha256")
        } else {
            v.path().to_owned()
        };
        symlink(&target, &at).unwrap();
        every_command(linked, h.path(), v.path(), Some("symbolic link"));
    }
}

#[test]
fn links_among_blobs_are_skipped_and_what_they_point_to_is_kept() {
    let (v, h) = (TempDir::new("victim"), TempDir::new("hostile"));
    victim(v.path());
    layout(h.path(), 3);
    let precious = std::fs::read(v.path().join("precious.txt")).unwrap();
    let link = h
        .path()
        .join("blobs/sha256")
        .join(Algorithm::Sha256.hash(&precious).encoded());
    symlink(v.path().join("precious.txt"), &link).unwrap();
    let runs = every_command("blob link", h.path(), v.path(), None);
    // gc and fsck say what they left alone; the link itself is still there.
    for r in &runs[..4] {
        assert!(
            r.out.contains("symbolic link") || r.err.contains("symbolic link"),
            "not reported: {} {}",
            r.out,
            r.err
        );
    }
    assert_eq!(runs[2].code, 1, "fsck: a skipped entry is not clean");
    assert!(std::fs::symlink_metadata(&link).is_ok());
}

#[test]
fn a_fifo_as_a_blob_or_as_index_json_ends_every_command() {
    // A referenced layer as a FIFO: every command ends; reading it is refused.
    let (v, h) = (TempDir::new("victim"), TempDir::new("hostile"));
    victim(v.path());
    let layer = layout(h.path(), 4);
    let path = h.path().join("blobs/sha256").join(layer.digest.encoded());
    std::fs::remove_file(&path).unwrap();
    mkfifo(&path);
    let runs = every_command("FIFO blob", h.path(), v.path(), None);
    // gc and fsck report it, copy refuses it (inspect does not read layers).
    for r in &runs[..5] {
        assert!(
            r.out.contains("FIFO") || r.err.contains("FIFO"),
            "FIFO not reported: {} {}",
            r.out,
            r.err
        );
    }
    assert_ne!(
        runs[4].code, 0,
        "copy of an image with a FIFO layer succeeded"
    );

    // index.json as a FIFO: every command refuses at once.
    let h = TempDir::new("hostile");
    layout(h.path(), 5);
    let index = h.path().join("index.json");
    std::fs::remove_file(&index).unwrap();
    mkfifo(&index);
    every_command("FIFO index.json", h.path(), v.path(), Some("FIFO"));
}

#[test]
fn a_sparse_or_endless_index_json_is_refused_within_bounded_memory() {
    let v = TempDir::new("victim");
    victim(v.path());
    let h = TempDir::new("hostile");
    layout(h.path(), 6);
    let index = h.path().join("index.json");
    std::fs::remove_file(&index).unwrap();
    std::fs::File::create(&index)
        .unwrap()
        .set_len(8 << 30)
        .unwrap();
    every_command(
        "sparse index.json",
        h.path(),
        v.path(),
        Some("larger than the limit"),
    );

    std::fs::remove_file(&index).unwrap();
    symlink("/dev/zero", &index).unwrap();
    every_command(
        "index.json -> /dev/zero",
        h.path(),
        v.path(),
        Some("symbolic link"),
    );
}
