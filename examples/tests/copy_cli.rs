//! The `copy`, `sync` and `make_sample` examples as a user runs them, on OCI layouts (no
//! server): the default run, the sample's byte-identical regeneration, platform selection,
//! exit statuses and messages, and sync's re-run that finishes only what is missing.
//!
//! `cargo test` builds the examples before running tests; the binaries are found next to the
//! test executable (`target/<profile>/examples/NAME`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use oci_examples::sample;
use oci_manifest::Manifest;
use oci_store::{FsckOptions, LayoutStore, ManagedStore, ReadStore, TagStore, walk};

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "oci-examples-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run_in(dir: &Path, name: &str, args: &[&str]) -> Output {
    Command::new(common::example(name))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("runs")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every piece of content under `tag` reads back verified; returns the root manifest.
fn verify_layout(dir: &Path, tag: &str) -> (Manifest, usize) {
    rt().block_on(async {
        let store = LayoutStore::open(dir).await.unwrap();
        let root = store.resolve(tag).await.unwrap();
        let all = walk(&store, &root, 8).await.unwrap();
        for d in &all {
            let b = store.fetch_bytes(d, 1 << 30).await.unwrap();
            assert_eq!(b.len() as u64, d.size);
        }
        assert!(
            store
                .fsck(&FsckOptions::default())
                .await
                .unwrap()
                .is_clean()
        );
        (store.fetch_manifest(&root).await.unwrap(), all.len())
    })
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for part in ["oci-layout", "index.json"] {
        out.push((part.to_owned(), std::fs::read(dir.join(part)).unwrap()));
    }
    let mut blobs: Vec<_> = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    blobs.sort();
    for b in blobs {
        out.push((
            b.file_name().unwrap().to_string_lossy().into_owned(),
            std::fs::read(&b).unwrap(),
        ));
    }
    out
}

#[test]
fn the_committed_sample_regenerates_byte_for_byte() {
    let dir = temp("regen");
    let out = run_in(&dir, "make_sample", &[dir.join("s").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(files(&dir.join("s")), files(&sample::committed_path()));
    let (index, n) = verify_layout(&sample::committed_path(), sample::TAG);
    assert_eq!(index.manifests().len(), 3);
    assert_eq!(n, 11);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn copy_without_arguments_copies_the_sample_into_oci_store() {
    let dir = temp("default");
    let out = run_in(&dir, "copy", &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("copying the shipped sample"), "{stdout}");
    assert!(stdout.contains("copied 11"), "{stdout}");
    assert!(stdout.contains("tagged \"sample\""), "{stdout}");
    let (index, n) = verify_layout(&dir.join("oci-store"), "sample");
    assert_eq!(n, 11);
    assert_eq!(index.manifests().len(), 3);
    // Again: nothing to copy.
    let out = run_in(&dir, "copy", &[]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("copied 0 blobs, repaired 0: sent 0 bytes"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains("skipped 11 blobs the destination had"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn copy_one_platform_makes_a_reduced_index() {
    let dir = temp("platform");
    let src = format!("oci:{}:sample", sample::committed_path().display());
    let dst = format!("oci:{}:arm", dir.join("out").display());
    let out = run_in(
        &dir,
        "copy",
        &["--platform", "linux/arm64", "--jobs", "2", &src, &dst],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("copied 5"), "{stdout}");
    assert!(
        stdout.contains("platforms left out: linux/amd64, linux/arm/v7"),
        "{stdout}"
    );
    let (index, n) = verify_layout(&dir.join("out"), "arm");
    assert_eq!(n, 5);
    assert_eq!(index.manifests().len(), 1);
    assert_eq!(
        index.manifests()[0].platform.as_ref().unwrap().to_string(),
        "linux/arm64/v8"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn copy_errors_name_the_reference_and_exit_nonzero() {
    let dir = temp("errors");
    let src = format!("oci:{}:nope", sample::committed_path().display());
    let out = run_in(&dir, "copy", &[&src, "oci:./x:y"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(":nope") && err.contains("tag \"nope\" not found"),
        "{err}"
    );

    let out = run_in(
        &dir,
        "copy",
        &["--platform", "plan9/mips", "oci:a", "oci:b"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));

    let src = format!("oci:{}:sample", sample::committed_path().display());
    let out = run_in(
        &dir,
        "copy",
        &["--platform", "windows/amd64", &src, "oci:./w:w"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("sha256:f134556c"), "{err}");
    assert!(
        err.contains("linux/amd64"),
        "names what is available: {err}"
    );

    for (bad, says) in [
        (vec!["oci:only-one"], "<DST>"),
        (vec!["--jobs", "x", "oci:a", "oci:b"], "invalid digit"),
        (vec!["ftp://x", "oci:b"], "expected oci:PATH[:TAG|@DIGEST]"),
        (
            vec!["--format", "zip", "oci:a", "oci:b"],
            "[possible values: oci, docker]",
        ),
    ] {
        let out = run_in(&dir, "copy", &bad);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(says),
            "{bad:?}: {err}"
        );
        assert!(err.contains("try '--help'"), "{bad:?}: {err}");
    }
    // A digest source works; the destination is tagged "latest".
    let digest = "sha256:f134556c2332357993a66ac615524d5049d296cbfcc810f33df870d30505001b";
    let src = format!("oci:{}@{digest}", sample::committed_path().display());
    let out = run_in(&dir, "copy", &[&src, "oci:./bydigest"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (index, _) = verify_layout(&dir.join("bydigest"), "latest");
    assert_eq!(index.digest().to_string(), digest);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sync_copies_a_list_reports_failures_and_a_rerun_finishes_only_what_is_missing() {
    let dir = temp("sync");
    let sample = sample::committed_path();
    let pre = run_in(&dir, "make_sample", &[dir.join("pre").to_str().unwrap()]);
    assert!(pre.status.success());
    // The last line names a tag that does not exist yet.
    let list = format!(
        "# two copies of the sample and one of a tag made later\n\
         oci:{s}:sample oci:{d}/a:one\n\
         \n\
         oci:{s}:sample oci:{d}/b:two\n\
         oci:{d}/pre:later oci:{d}/c:three\n",
        s = sample.display(),
        d = dir.display()
    );
    std::fs::write(dir.join("list.txt"), &list).unwrap();
    let out = run_in(&dir, "sync", &["--jobs", "3", "list.txt"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("2 of 3 images copied, 1 failed"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("line 5"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("tag \"later\" not found"));

    // Make the missing tag, run again: only line 5 transfers anything.
    rt().block_on(async {
        let a = LayoutStore::open(dir.join("pre")).await.unwrap();
        let d = a.resolve("sample").await.unwrap();
        a.tag(&d, "later").await.unwrap();
    });
    let out = run_in(&dir, "sync", &["list.txt"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("3 of 3 images copied, 0 failed"),
        "{stdout}"
    );
    let rows: Vec<&str> = stdout.lines().filter(|l| l.contains(" ok ")).collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    // Lines 2 and 4: everything skipped, 0 bytes; line 5: everything copied.
    for row in &rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        match cols[0] {
            "2" | "4" => assert_eq!((cols[3], cols[4], cols[5]), ("0", "11", "0"), "{row}"),
            "5" => assert_eq!((cols[3], cols[4]), ("11", "0"), "{row}"),
            other => panic!("unexpected line {other}: {row}"),
        }
    }
    verify_layout(&dir.join("c"), "three");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Copies the committed sample layout into `dir`, so a test may damage its copy.
fn sample_copy(dir: &Path) {
    let src = sample::committed_path();
    for e in walkdir(&src) {
        let rel = e.strip_prefix(&src).unwrap();
        let to = dir.join(rel);
        if e.is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            std::fs::copy(&e, &to).unwrap();
        }
    }
}

fn walkdir(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_owned()];
    let mut i = 0;
    while i < out.len() {
        if out[i].is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(&out[i])
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            children.sort();
            out.extend(children);
        }
        i += 1;
    }
    out
}

#[test]
fn a_sparse_index_names_the_missing_platform_and_suggests_selecting_platforms() {
    let dir = temp("sparse");
    let src = dir.join("src");
    sample_copy(&src);
    // Remove the arm64 image's manifest: the index still lists it.
    let (_, index) = sample::contents().unwrap();
    let arm = index
        .manifests()
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.architecture == "arm64")
        })
        .unwrap()
        .clone();
    std::fs::remove_file(src.join("blobs/sha256").join(arm.digest.encoded())).unwrap();
    let src_ref = format!("oci:{}:sample", src.display());
    let out = run_in(
        &dir,
        "copy",
        &[&src_ref, &format!("oci:{}:all", dir.join("dst").display())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains(&arm.digest.to_string())
            && err.contains("platform linux/arm64")
            && err.contains("--platform"),
        "{err}"
    );
    // Following the advice works.
    let out = run_in(
        &dir,
        "copy",
        &[
            "--platform",
            "linux/amd64",
            &src_ref,
            &format!("oci:{}:amd64", dir.join("dst").display()),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}
