//! The examples against what a user, a hostile file or a hostile peer does to a command line
//! (issue 11, items 6 to 10 and the smaller points): every `sync` line counted, `oci:` tags that
//! never become paths, control characters from layouts and registries escaped, a closed pipe
//! ending output quietly (never a panic), dry runs and checks that change nothing for a user
//! who cannot write, no destination left behind by a failed copy, one rule for a layout without
//! a tag, `RUST_LOG`, and `--jobs 0`.
//!
//! Needs `setpriv` (util-linux) to run examples as the user nobody.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use common::{TempDir, assert_clean};
use oci_examples::sample;
use oci_manifest::build::ImageManifestBuilder;
use oci_manifest::{Descriptor, media_types};
use oci_store::{LayoutOptions, LayoutStore, ReadStore, TagStore, WriteStore};
use serde_json::{Value, json};

/// Every wait on a child is bounded by this (generous: debug builds on a loaded machine).
const LIMIT: Duration = Duration::from_secs(300);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `b`'s words separated by single spaces: help text wrapped at any width.
fn words(b: &[u8]) -> String {
    text(b).split_whitespace().collect::<Vec<_>>().join(" ")
}

fn run(name: &str, args: &[&str]) -> Output {
    run_env(name, args, &[])
}

fn run_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::example(name));
    cmd.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("runs")
}

/// Waits for `child` at most [`LIMIT`], killing it when it takes longer.
fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The shipped sample, regenerated at `dir` (a layout without the store's `.oci-rs/`).
fn sample_at(dir: &Path) {
    let out = run("make_sample", &[dir.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn oci(path: &Path, suffix: &str) -> String {
    format!("oci:{}{suffix}", path.display())
}

// ---------------------------------------------------------------------------------------------
// Item 6: sync accounts for every line.

#[test]
fn sync_counts_every_line_in_the_table_summary_and_exit_status() {
    let dir = TempDir::new("sync-count");
    let d = &dir.0;
    // Line 3: a manifest whose two layers declare 2^63 bytes each (their total overflowed in
    // the plan: a panic inside the copy task, once dropped from the summary).
    let big = d.join("big");
    rt().block_on(async {
        let store = LayoutStore::open_with(&big, &LayoutOptions::create())
            .await
            .unwrap();
        let config = Bytes::from_static(b"{}");
        let cd = Descriptor::new(
            media_types::OCI_CONFIG,
            oci_digest::Algorithm::Sha256.hash(&config),
            2,
        );
        store.push_bytes(&cd, config).await.unwrap();
        let huge = |n: u8| {
            Descriptor::new(
                media_types::OCI_LAYER_GZIP,
                format!("sha256:{}", format!("{n:x}").repeat(64))
                    .parse()
                    .unwrap(),
                1 << 63,
            )
        };
        let m = ImageManifestBuilder::oci(cd)
            .layer(huge(1))
            .layer(huge(2))
            .build()
            .unwrap();
        store
            .push_bytes(&m.descriptor(), m.raw().clone())
            .await
            .unwrap();
        store.tag(&m.descriptor(), "big").await.unwrap();
    });
    let s = sample::committed_path();
    let list = format!(
        "oci:{s}:sample oci:{d}/ok:one\n\
         oci:{b}:big oci:{d}/big-out:two\n\
         oci:{s}:nope oci:{d}/missing:three\n",
        s = s.display(),
        b = big.display(),
        d = d.display()
    );
    std::fs::write(d.join("list"), list).unwrap();
    let out = run("sync", &[d.join("list").to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("1 of 3 images copied, 2 failed"),
        "{stdout}{stderr}"
    );
    for (line, status) in [("1", "ok"), ("2", "FAILED"), ("3", "FAILED")] {
        assert!(
            stdout.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 2 && cols[0] == line && cols[1] == status
            }),
            "line {line} is {status} in the table: {stdout}"
        );
        if status == "FAILED" {
            assert!(stderr.contains(&format!("line {line}:")), "{stderr}");
        }
    }
}

#[test]
fn sync_refuses_two_lines_writing_the_same_destination_tag() {
    let dir = TempDir::new("sync-dup");
    let d = &dir.0;
    let s = sample::committed_path();
    // Lines 2 and 4 write `same:v1`, one through `./`: the same layout and tag.
    std::fs::write(
        d.join("list"),
        format!(
            "# copies\noci:{s}:sample oci:{d}/same:v1\noci:{s}:sample oci:{d}/other:v1\n\
             oci:{s}:sample oci:{d}/./same:v1\n",
            s = s.display(),
            d = d.display()
        ),
    )
    .unwrap();
    let out = run("sync", &[d.join("list").to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(":4: writes the same destination as line 2"),
        "{stderr}"
    );
    assert!(!d.join("same").exists() && !d.join("other").exists());
    // The source's tag is the destination's when none is given: the same tag again.
    std::fs::write(
        d.join("list2"),
        format!(
            "oci:{s}:sample oci:{d}/same\noci:{s}:sample oci:{d}/same:sample\n",
            s = s.display(),
            d = d.display()
        ),
    )
    .unwrap();
    let out = run("sync", &[d.join("list2").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("as line 1"));
    let help = words(&run("sync", &["--help"]).stdout);
    assert!(help.contains("same destination"), "{help}");
}

#[test]
fn jobs_zero_is_a_usage_error() {
    let dir = TempDir::new("jobs-zero");
    let s = oci(&sample::committed_path(), ":sample");
    let d = oci(&dir.0.join("dst"), ":v1");
    let list = dir.0.join("list");
    std::fs::write(&list, format!("{s} {d}\n")).unwrap();
    let list = list.to_str().unwrap();
    for (name, args, option) in [
        (
            "copy",
            vec!["--jobs", "0", s.as_str(), d.as_str()],
            "--jobs",
        ),
        ("copy", vec!["--jobs=0", s.as_str(), d.as_str()], "--jobs"),
        ("copy", vec!["-j", "0", s.as_str(), d.as_str()], "--jobs"),
        ("sync", vec!["--jobs", "0", list], "--jobs"),
        ("sync", vec!["--images", "0", list], "--images"),
    ] {
        let out = run(name, &args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {err}");
        assert!(
            err.contains(&format!(
                "invalid value '0' for '{option} <N>': 0 is not in 1..=256"
            )),
            "{err}"
        );
        assert!(err.contains("try '--help'"), "{err}");
    }
    assert!(!dir.0.join("dst").exists());
}

// ---------------------------------------------------------------------------------------------
// Item 7: tags never become paths.

/// Every path under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if p.symlink_metadata().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn oci_tags_never_become_part_of_the_path() {
    let dir = TempDir::new("tag-path");
    let cwd = dir.0.join("a/b");
    std::fs::create_dir_all(&cwd).unwrap();
    let src = oci(&sample::committed_path(), ":sample");
    let copy_in = |args: &[&str]| {
        Command::new(common::example("copy"))
            .current_dir(&cwd)
            .args(args)
            .output()
            .expect("runs")
    };
    for bad in [
        "oci:dst:../../escaped",
        "oci:dst:team/../v1",
        "oci:dst:a//b",
        "oci:dst:/abs",
        "oci:dst:",
        "oci:dst:v1\u{1b}[2J",
        "oci::v1",
    ] {
        let out = copy_in(&["-q", &src, bad]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("for '[DST]'"), "{bad}: {err}");
        assert_clean(bad, &out.stderr);
    }
    assert_eq!(tree(&dir.0), ["a", "a/b"], "nothing written anywhere");

    // A tag with '/' is a tag (the ref.name grammar allows it), in the layout `dst`.
    let out = copy_in(&["-q", &src, "oci:dst:team/v1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("tagged \"team/v1\" in oci:dst:team/v1"));
    let top: Vec<String> = std::fs::read_dir(&cwd)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, ["dst"], "no directory named after the tag");
    let tags = rt().block_on(async {
        LayoutStore::open_with(cwd.join("dst"), &LayoutOptions::read_only())
            .await
            .unwrap()
            .tags()
            .await
            .unwrap()
    });
    assert_eq!(tags, ["team/v1"]);
    let out = run("inspect", &[&oci(&cwd.join("dst"), ":team/v1")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("tag=team/v1"));
}

// ---------------------------------------------------------------------------------------------
// Item 8: control characters from files and peers are escaped.

/// A string a hostile layout or registry sends: an OSC title change, a newline faking a line
/// of output, NUL, an 8-bit CSI, a right-to-left override.
const EVIL: &str = "x\u{1b}]0;owned\u{7}\nFAKE LINE\u{0}\u{9b}31m\u{202e}";
/// [`EVIL`] as printed.
const EVIL_ESCAPED: &str = "x\\u{1b}]0;owned\\u{7}\\nFAKE LINE\\0\\u{9b}31m\\u{202e}";

#[test]
fn control_characters_from_a_layout_are_escaped() {
    let dir = TempDir::new("evil-layout");
    let lay = dir.0.join("lay");
    sample_at(&lay);
    let index_path = lay.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let entry = &mut index["manifests"][0];
    entry["annotations"]["org.opencontainers.image.ref.name"] = json!(EVIL);
    entry["annotations"]["vnd.docker.reference.type"] = json!(EVIL);
    entry["artifactType"] = json!(EVIL);
    entry["platform"] = json!({"os": EVIL, "architecture": "amd64"});
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    // The only tag is the hostile one: inspect picks it and prints it.
    let out = run("inspect", &[&oci(&lay, "")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_clean("inspect", &out.stdout);
    assert_clean("inspect (stderr)", &out.stderr);
    let first = text(&out.stdout)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    for shown in [
        format!("tag={EVIL_ESCAPED}"),
        format!("[{EVIL_ESCAPED}]"),
        format!("({EVIL_ESCAPED})"),
        format!("index {EVIL_ESCAPED}/amd64"),
    ] {
        assert!(first.contains(&shown), "{shown} in {first}");
    }
    // In JSON, as JSON escapes; the values read back unchanged.
    let out = run("inspect", &[&oci(&lay, ""), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_clean("inspect --json", &out.stdout);
    let v: Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(
        v["root"]["descriptor"]["annotations"]["org.opencontainers.image.ref.name"],
        EVIL
    );
    // The tag list of an error message.
    let out = run("inspect", &[&oci(&lay, ":nope")]);
    assert_eq!(out.status.code(), Some(2));
    assert_clean("inspect error", &out.stderr);
    assert!(
        text(&out.stderr).contains(EVIL_ESCAPED),
        "{}",
        text(&out.stderr)
    );
    // copy: the hostile tag is refused as a destination tag, and said so escaped.
    let out = run("copy", &[&oci(&lay, ""), &oci(&dir.0.join("out"), "")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_clean("copy", &out.stdout);
    assert_clean("copy (stderr)", &out.stderr);
    assert!(
        text(&out.stderr).contains(EVIL_ESCAPED),
        "{}",
        text(&out.stderr)
    );
    // fsck and gc name the tag that refers to missing content.
    let manifest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    std::fs::remove_file(lay.join("blobs/sha256").join(&manifest["sha256:".len()..])).unwrap();
    for (name, args) in [
        ("fsck", vec![oci(&lay, "")]),
        ("gc", vec![oci(&lay, ""), "--dry-run".to_owned()]),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(name, &args);
        assert_clean(name, &out.stdout);
        assert_clean(name, &out.stderr);
        assert!(
            text(&out.stdout).contains(&format!("missing {manifest}")),
            "{name}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

/// A registry on a loopback port that answers every request 403 with `message` as its error
/// message. Serves until the test process ends.
fn hostile_registry(message: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let body = json!({"errors": [{"code": "DENIED", "message": message}]}).to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
                    match conn.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    addr
}

#[test]
fn control_characters_in_registry_errors_are_escaped() {
    let dir = TempDir::new("evil-registry");
    let addr = hostile_registry(EVIL);
    let src = format!("docker://{addr}/team/app:v1");
    let env = [("HOME", dir.0.to_str().unwrap())];
    let out = run_env(
        "copy",
        &[
            "--plain-http",
            "--retries",
            "0",
            &src,
            &oci(&dir.0.join("pulled"), ":v1"),
        ],
        &env,
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_clean("copy", &out.stdout);
    assert_clean("copy (stderr)", &out.stderr);
    assert!(
        err.contains(EVIL_ESCAPED),
        "the message is shown, escaped: {err}"
    );

    std::fs::write(
        dir.0.join("list"),
        format!("{src} {}\n", oci(&dir.0.join("pulled"), ":v1")),
    )
    .unwrap();
    let out = run_env(
        "sync",
        &[
            "--plain-http",
            "--retry-budget",
            "0",
            dir.0.join("list").to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_clean("sync", &out.stdout);
    assert_clean("sync (stderr)", &out.stderr);
    assert!(text(&out.stderr).contains(EVIL_ESCAPED));
}

// ---------------------------------------------------------------------------------------------
// Item 9: a closed pipe ends output quietly.

/// A layout tagged `big` whose manifest lists one small layer 3000 times: `inspect` prints
/// about 400 KB, far more than a pipe holds, so its writes meet the closed pipe.
fn big_tree(dir: &Path) -> PathBuf {
    let lay = dir.join("big");
    rt().block_on(async {
        let store = LayoutStore::open_with(&lay, &LayoutOptions::create())
            .await
            .unwrap();
        let push = |mt: &str, data: &'static [u8]| {
            let d = Descriptor::new(
                mt,
                oci_digest::Algorithm::Sha256.hash(data),
                data.len() as u64,
            );
            (d, Bytes::from_static(data))
        };
        let (cd, cb) = push(media_types::OCI_CONFIG, b"{}");
        let (ld, lb) = push(media_types::OCI_LAYER_GZIP, b"layer");
        store.push_bytes(&cd, cb).await.unwrap();
        store.push_bytes(&ld, lb).await.unwrap();
        let mut b = ImageManifestBuilder::oci(cd);
        for _ in 0..3000 {
            b = b.layer(ld.clone());
        }
        let m = b.build().unwrap();
        store
            .push_bytes(&m.descriptor(), m.raw().clone())
            .await
            .unwrap();
        store.tag(&m.descriptor(), "big").await.unwrap();
    });
    lay
}

/// Runs `name` with standard output to a pipe the test closes after reading one line.
fn read_one_line_then_close(name: &str, args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(common::example(name))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("one line");
    assert!(!line.is_empty(), "{name} printed a line");
    // The reader is dropped here: the pipe is closed.
    let status = wait_bounded(&mut child, name);
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    (status, err)
}

/// Runs `name` with standard output (or standard error) to a pipe already closed.
fn run_with_closed(name: &str, args: &[&str], close_stdout: bool) -> (ExitStatus, Output) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut cmd = Command::new(common::example(name));
    cmd.args(args).env_remove("RUST_LOG");
    if close_stdout {
        cmd.stdout(writer).stderr(Stdio::piped());
    } else {
        cmd.stdout(Stdio::piped()).stderr(writer);
    }
    let mut child = cmd.spawn().expect("spawn");
    // Drain what is readable in a thread so the child never blocks on it.
    let mut readable: Box<dyn Read + Send> = if close_stdout {
        Box::new(child.stderr.take().expect("stderr"))
    } else {
        Box::new(child.stdout.take().expect("stdout"))
    };
    let drain = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = readable.read_to_end(&mut v);
        v
    });
    let status = wait_bounded(&mut child, name);
    let captured = drain.join().expect("drain");
    let (stdout, stderr) = if close_stdout {
        (Vec::new(), captured)
    } else {
        (captured, Vec::new())
    };
    (
        status,
        Output {
            status,
            stdout,
            stderr,
        },
    )
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let dir = TempDir::new("pipe");
    let lay = big_tree(&dir.0);
    for args in [
        vec![oci(&lay, ":big")],
        vec![oci(&lay, ":big"), "--json".into()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, err) = read_one_line_then_close("inspect", &args);
        assert_eq!(status.code(), Some(0), "inspect {args:?} | head -1: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }

    // copy: its summary to a closed standard output, its progress to a closed standard error;
    // the copy is done either way and says so by its status.
    let src = oci(&sample::committed_path(), ":sample");
    let first = oci(&dir.0.join("first"), ":v1");
    let (status, out) = run_with_closed("copy", &[&src, &first], true);
    assert_eq!(status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("panicked"));
    let second = oci(&dir.0.join("second"), ":v1");
    let (status, out) = run_with_closed("copy", &[&src, &second], false);
    assert_eq!(status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("tagged \"v1\""),
        "{}",
        text(&out.stdout)
    );
    for d in ["first", "second"] {
        let tags = rt().block_on(async {
            let s = LayoutStore::open(dir.0.join(d)).await.unwrap();
            let root = s.resolve("v1").await.unwrap();
            assert!(s.exists(&root.digest).await.unwrap());
            s.tags().await.unwrap()
        });
        assert_eq!(tags, ["v1"]);
    }

    // Every other example, standard output closed.
    let list = dir.0.join("list");
    std::fs::write(
        &list,
        format!("{src} {}\n", oci(&dir.0.join("third"), ":v1")),
    )
    .unwrap();
    let lay_s = oci(&lay, "");
    let file = dir.0.join("list");
    for (name, args) in [
        ("sync", vec![list.to_str().unwrap()]),
        ("gc", vec![lay_s.as_str(), "--dry-run"]),
        ("gc", vec![lay_s.as_str()]),
        ("fsck", vec![lay_s.as_str()]),
        (
            "digest",
            vec![file.to_str().unwrap(), file.to_str().unwrap()],
        ),
        ("inspect", vec!["--help"]),
    ] {
        let (status, out) = run_with_closed(name, &args, true);
        assert_eq!(
            status.code(),
            Some(0),
            "{name} {args:?}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).contains("panicked"), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Item 10: a dry run and a check change nothing, and work without write access.

/// Everything about a tree that a change would show: names, kinds, modes, sizes, times, bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, (String, u32, u64, SystemTime, Vec<u8>)> {
    fn walk(
        base: &Path,
        dir: &Path,
        out: &mut BTreeMap<String, (String, u32, u64, SystemTime, Vec<u8>)>,
    ) {
        let mut entries = vec![dir.to_path_buf()];
        entries.extend(std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()));
        for p in entries {
            let m = p.symlink_metadata().unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let bytes = if m.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            out.insert(
                rel,
                (
                    format!("{:?}", m.file_type()),
                    m.permissions().mode(),
                    m.len(),
                    m.modified().unwrap(),
                    bytes,
                ),
            );
            if m.is_dir() && p != dir {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The tree made readable, not writable, by others: directories 0755, files 0644.
fn read_only_for_others(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.symlink_metadata().unwrap().is_dir() {
            read_only_for_others(&p);
        } else {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Whether every directory above `p` lets others through.
fn others_can_reach(p: &Path) -> bool {
    p.ancestors().skip(1).all(|a| {
        a.as_os_str().is_empty()
            || a.metadata()
                .is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
    })
}

/// `name` runnable by nobody: in place when its directories let others through, else copied
/// into `dir`.
fn binary_for_nobody(name: &str, dir: &Path) -> PathBuf {
    let bin = common::example(name);
    if others_can_reach(&bin) {
        return bin;
    }
    let copy = dir.join(name);
    std::fs::copy(&bin, &copy).expect("copy the binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// Runs `bin` as the user and group nobody (65534), without supplementary groups.
fn as_nobody(bin: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run setpriv ({e}): apt-get install util-linux"))
}

#[test]
fn a_dry_run_and_a_check_change_nothing_for_a_user_who_cannot_write() {
    let dir = TempDir::new("nobody");
    assert!(
        others_can_reach(&dir.0.join("x")),
        "{} must be reachable by others (set TMPDIR to such a directory)",
        dir.0.display()
    );
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let lay = dir.0.join("lay");
    sample_at(&lay);
    assert!(!lay.join(oci_store::STATE_DIR).exists());
    // Something unreferenced, for the dry run to list.
    let stray = oci_digest::Algorithm::Sha256.hash(b"nobody refers to me");
    std::fs::write(
        lay.join("blobs/sha256").join(stray.encoded()),
        b"nobody refers to me",
    )
    .unwrap();
    read_only_for_others(&lay);
    let bins = dir.0.join("bin");
    std::fs::create_dir_all(&bins).unwrap();
    std::fs::set_permissions(&bins, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (gc, fsck, inspect) = (
        binary_for_nobody("gc", &bins),
        binary_for_nobody("fsck", &bins),
        binary_for_nobody("inspect", &bins),
    );
    let before = snapshot(&lay);
    let l = oci(&lay, "");

    let out = as_nobody(&gc, &[&l, "--dry-run", "--min-age", "0"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "gc --dry-run: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains(&format!("would remove {stray}")),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(snapshot(&lay), before, "gc --dry-run changed the layout");

    let out = as_nobody(&fsck, &[&l]);
    assert_eq!(out.status.code(), Some(0), "fsck: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("dangling {stray}")));
    assert_eq!(snapshot(&lay), before, "fsck changed the layout");

    let out = as_nobody(&inspect, &[&oci(&lay, ":sample")]);
    assert_eq!(out.status.code(), Some(0), "inspect: {}", text(&out.stderr));
    assert_eq!(snapshot(&lay), before, "inspect changed the layout");

    // The premise: nobody cannot write here, so a real collection fails, clearly.
    let out = as_nobody(&gc, &[&l, "--min-age", "0"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr)
            .to_lowercase()
            .contains("permission denied"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(snapshot(&lay), before, "a failed gc changed the layout");
}

// ---------------------------------------------------------------------------------------------
// The smaller points.

#[test]
fn a_failed_copy_leaves_no_destination_behind() {
    let dir = TempDir::new("no-leftover");
    let src = oci(&sample::committed_path(), ":nope");
    let out = run("copy", &[&src, &oci(&dir.0.join("new"), ":x")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("tag \"nope\" not found"));
    assert!(!dir.0.join("new").exists(), "no layout created");
    // sync does the same.
    std::fs::write(
        dir.0.join("list"),
        format!("{src} {}\n", oci(&dir.0.join("new"), ":x")),
    )
    .unwrap();
    let out = run("sync", &[dir.0.join("list").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.0.join("new").exists(), "no layout created by sync");
    // A failure found after the destination was opened (no platform matches) removes the
    // layout the run created, since nothing was stored in it.
    let out = run(
        "copy",
        &[
            "--platform",
            "windows/amd64",
            &oci(&sample::committed_path(), ":sample"),
            &oci(&dir.0.join("new"), ":x"),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no image for platform windows/amd64"));
    assert!(!dir.0.join("new").exists(), "an empty layout left behind");
    // A destination that exists stays as it was.
    let old = dir.0.join("old");
    sample_at(&old);
    let before = snapshot(&old);
    let out = run("copy", &[&src, &oci(&old, ":x")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(snapshot(&old), before);
}

#[test]
fn copy_and_inspect_pick_the_same_image_without_a_tag() {
    let dir = TempDir::new("default-tag");
    let lay = dir.0.join("lay");
    sample_at(&lay);
    let root = |out: &Output| -> String {
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        v["root"]["descriptor"]["digest"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // One tag (not `latest`): both use it.
    let out = run("inspect", &[&oci(&lay, ""), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let inspected = root(&out);
    let out = run("copy", &["-q", &oci(&lay, ""), &oci(&dir.0.join("a"), "")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("tagged \"sample\""));
    let copied = rt().block_on(async {
        let s = LayoutStore::open(dir.0.join("a")).await.unwrap();
        s.resolve("sample").await.unwrap().digest.to_string()
    });
    assert_eq!(copied, inspected);
    // Two tags, none `latest`: both refuse and name the tags.
    rt().block_on(async {
        let s = LayoutStore::open(&lay).await.unwrap();
        let d = s.resolve("sample").await.unwrap();
        s.tag(&d, "other").await.unwrap();
    });
    let out = run("inspect", &[&oci(&lay, "")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("tags: other, sample"),
        "{}",
        text(&out.stderr)
    );
    let out = run("copy", &[&oci(&lay, ""), &oci(&dir.0.join("b"), "")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("tags: other, sample"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.0.join("b").exists());
    // With `latest` among them: both take it.
    rt().block_on(async {
        let s = LayoutStore::open(&lay).await.unwrap();
        let d = s.resolve("sample").await.unwrap();
        s.tag(&d, "latest").await.unwrap();
    });
    let out = run("inspect", &[&oci(&lay, "")]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("tag=latest"),
        "{}",
        text(&out.stdout)
    );
    let out = run("copy", &["-q", &oci(&lay, ""), &oci(&dir.0.join("c"), "")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("tagged \"latest\""));
    for name in ["copy", "inspect"] {
        let help = words(&run(name, &["--help"]).stdout);
        assert!(help.contains("the layout's only tag"), "{name}: {help}");
    }
}

#[test]
fn rust_log_turns_on_the_library_logs() {
    let dir = TempDir::new("rust-log");
    let src = oci(&sample::committed_path(), ":sample");
    let out = run("copy", &["-q", &src, &oci(&dir.0.join("quiet"), ":v1")]);
    assert!(out.status.success());
    assert!(
        !text(&out.stderr).contains("copy planned"),
        "{}",
        text(&out.stderr)
    );
    let out = run_env(
        "copy",
        &["-q", &src, &oci(&dir.0.join("logged"), ":v1")],
        &[("RUST_LOG", "oci_store=info")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("copy planned"),
        "{}",
        text(&out.stderr)
    );
    let out = run_env(
        "gc",
        &[&oci(&dir.0.join("logged"), "")],
        &[("RUST_LOG", "debug")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("garbage collection done"),
        "{}",
        text(&out.stderr)
    );
    // --log-level does the same, and wins over RUST_LOG.
    let out = run_env(
        "gc",
        &["--log-level", "debug", &oci(&dir.0.join("logged"), "")],
        &[("RUST_LOG", "off")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("garbage collection done"),
        "{}",
        text(&out.stderr)
    );
    // A filter that does not parse is a usage error on the command line; in RUST_LOG it is
    // reported and ignored.
    let out = run(
        "gc",
        &[
            "--log-level",
            "oci_store=loud",
            &oci(&dir.0.join("logged"), ""),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("invalid value 'oci_store=loud' for '--log-level <FILTER>'")
    );
    let out = run_env(
        "gc",
        &[&oci(&dir.0.join("logged"), "")],
        &[("RUST_LOG", "oci_store=loud")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("gc: RUST_LOG ignored"),
        "{}",
        text(&out.stderr)
    );
}
