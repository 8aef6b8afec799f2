//! A copy of a multi-hundred-MiB image from the real `docker-registry` into an OCI layout,
//! interrupted with Ctrl-C (a clean cancel, exit 130), run again and killed (SIGKILL) part
//! way through, then run again: the second run completes, sends well
//! under the total (completed blobs are skipped, the interrupted one resumes from its ingest),
//! and the result verifies (read back, fsck, skopeo).
//!
//! The other way too: a push of the same kind of image from a layout into the registry is
//! SIGKILLed part way; the next run (same `--state-dir`) resumes the interrupted layer uploads
//! from the sessions recorded there, and skopeo pulls back an image with the right digests.
//! distribution 2.8 keeps whatever part of a chunk a killed client was sending (or the whole
//! chunk when only its answer was lost), and then refuses and cancels that session ("upload
//! resumed at wrong offset"): only sessions idle between chunks at the kill can resume. The
//! test stops the copy (SIGSTOP) until at least one session is in that state, kills it, and
//! checks that the next run resumes exactly the sessions whose bytes the registry holds as
//! recorded, and restarts the others. Stopped with SIGTERM instead, the push finishes its chunks
//! in flight and the next run resumes every session.

#[path = "../../crates/oci-distribution-client/tests/common/registry.rs"]
mod registry;

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use oci_manifest::build::ImageManifestBuilder;
use oci_manifest::{Descriptor, media_types};
use oci_store::{
    FsckOptions, LayoutOptions, LayoutStore, ManagedStore, ReadStore, TagStore, WriteStore, walk,
};
use registry::{TestRegistry, http_status, require_tool, temp_dir};

const LAYER: u64 = 96 << 20;
const LAYERS: usize = 3;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A layout holding one image of `LAYERS` random layers of `LAYER` bytes, tagged `v1`. The big
/// blobs are written and hashed by the system tools (fast even in a debug test build).
fn big_layout(dir: &Path) -> u64 {
    let store = rt()
        .block_on(LayoutStore::open_with(dir, &LayoutOptions::create()))
        .unwrap();
    let mut layers = Vec::new();
    for i in 0..LAYERS {
        let tmp = dir.join(format!("layer{i}"));
        let mut src = std::fs::File::open("/dev/urandom").unwrap().take(LAYER);
        let mut out = std::fs::File::create(&tmp).unwrap();
        std::io::copy(&mut src, &mut out).unwrap();
        let sum = Command::new("sha256sum").arg(&tmp).output().unwrap();
        assert!(sum.status.success());
        let hex = String::from_utf8_lossy(&sum.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        let digest = oci_manifest::Digest::parse(&format!("sha256:{hex}")).unwrap();
        std::fs::rename(&tmp, store.blob_path(&digest)).unwrap();
        layers.push(Descriptor::new(media_types::OCI_LAYER_TAR, digest, LAYER));
    }
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let config_desc = Descriptor::of(media_types::OCI_CONFIG, &config);
    let m = ImageManifestBuilder::oci(config_desc.clone())
        .layers(layers)
        .build()
        .unwrap();
    rt().block_on(async {
        store.push_bytes(&config_desc, config).await.unwrap();
        store
            .push_bytes(&m.descriptor(), m.raw().clone())
            .await
            .unwrap();
        store.tag(&m.descriptor(), "v1").await.unwrap();
    });
    LAYER * LAYERS as u64 + config_desc.size + m.size()
}

/// The number before " bytes sent" in the copy example's summary.
/// Sends `signal` (`-INT`, `-TERM`) to a running copy (stderr piped) and checks it stops as a
/// clean cancel: exit status 130 and the "interrupted" message. Returns its stderr.
fn stop_cleanly(child: std::process::Child, signal: &str) -> String {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(130),
        "a clean cancel after {signal}: {stderr}"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    stderr
}

fn bytes_sent(stdout: &str) -> u64 {
    number_after(stdout, "sent ", " bytes")
}

#[test]
fn a_killed_copy_resumes_and_the_second_run_sends_well_under_the_total() {
    let reg = TestRegistry::start();
    let work = temp_dir("interrupt");
    let approx_total = big_layout(&work.join("src"));
    let image = format!("docker://{}/big/app:v1", reg.addr);
    let out = Command::new(require_tool("skopeo"))
        .args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", work.join("src").display()))
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dst = work.join("dst");
    let target = format!("oci:{}:v1", dst.display());
    let wait_for = |child: &mut std::process::Child, fraction: (u64, u64)| {
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the copy ended ({status}) before it could be interrupted");
            }
            if dir_size(&dst) >= approx_total * fraction.0 / fraction.1 {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "copy made no progress"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };

    // First run: Ctrl-C (SIGINT) at about 15 %: a clean cancel, exit 130, no tag.
    let mut child = Command::new(common::example("copy"))
        .args(["--plain-http", "--jobs", "2", &image, &target])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&mut child, (3, 20));
    let stderr = stop_cleanly(child, "-INT");
    assert!(stderr.contains("cancelled"), "{stderr}");

    // Second run: SIGKILL at about 40 % (blobs and ingests on disk).
    let mut child = Command::new(common::example("copy"))
        .args(["--plain-http", "--jobs", "2", &image, &target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&mut child, (2, 5));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let (tagged, ingests, corrupt) = rt().block_on(async {
        let store = LayoutStore::open(&dst).await.unwrap();
        let tagged = store.resolve("v1").await.is_ok();
        let ingests = store.ingests().await.unwrap();
        let fsck = store.fsck(&FsckOptions::default()).await.unwrap();
        (tagged, ingests.len(), fsck.corrupt.len())
    });
    assert!(!tagged, "no tag before the copy completed");
    assert_eq!(corrupt, 0, "nothing half-written is visible");
    assert!(
        ingests >= 1,
        "the interrupted transfer left a resumable ingest"
    );

    let out = Command::new(common::example("copy"))
        .args(["--plain-http", &image, &target])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    // The image as the registry has it (skopeo compresses the layers when it pushes them).
    let total = number_after(&stderr, "planned: ", " bytes");
    assert!(total >= LAYER * LAYERS as u64, "{stderr}");
    let sent = bytes_sent(&stdout);
    assert!(
        sent < total * 3 / 4,
        "second run sent {sent} of {total} bytes: {stdout}"
    );
    // What was not sent again was either already complete (skipped) or resumed from an
    // ingest; together with what was sent, that is the whole image.
    let skipped = number_after(&stdout, "skipped ", " bytes");
    let resumed = number_after(&stdout, "resumed ", " bytes");
    assert_eq!(sent + skipped + resumed, total, "{stdout}");
    assert!(skipped + resumed >= total / 4, "{stdout}");

    // The result verifies: every blob read back, fsck clean, skopeo reads it.
    rt().block_on(async {
        let store = LayoutStore::open(&dst).await.unwrap();
        let root = store.resolve("v1").await.unwrap();
        for d in walk(&store, &root, 8).await.unwrap() {
            let b = store.fetch_bytes(&d, 1 << 30).await.unwrap();
            assert_eq!(b.len() as u64, d.size);
        }
        let fsck = store.fsck(&FsckOptions::default()).await.unwrap();
        assert!(fsck.is_clean(), "{fsck:?}");
        assert!(store.ingests().await.unwrap().is_empty());
        // The last run released its lease; the leases of the cancelled and the killed runs stay
        // until they expire (they kept what those runs completed pinned for the next one).
        assert_eq!(store.leases().await.unwrap().len(), 2);
    });
    let out = Command::new(require_tool("skopeo"))
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:v1", dst.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::remove_dir_all(&work).unwrap();
}

/// Bytes of the upload sessions recorded in the `--state-dir` `state` that the registry
/// (storage directory `storage`) holds exactly as recorded (its upload file has the recorded
/// number of bytes): what a resumed run can continue from.
fn resumable_bytes(storage: &Path, state: &Path) -> u64 {
    let uploads = storage.join("docker/registry/v2/repositories/big/pushed/_uploads");
    let Ok(rd) = std::fs::read_dir(state) else {
        return 0;
    };
    let mut sum = 0;
    for e in rd.filter_map(Result::ok) {
        if e.path().extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(text) = std::fs::read(e.path()) else {
            continue;
        };
        let rec: serde_json::Value = serde_json::from_slice(&text).unwrap();
        let ack = rec["acknowledged"].as_u64().unwrap();
        let location = rec["location"].as_str().unwrap();
        let uuid = location
            .split("/uploads/")
            .nth(1)
            .unwrap()
            .split('?')
            .next()
            .unwrap();
        let size = std::fs::metadata(uploads.join(uuid).join("data")).map_or(0, |m| m.len());
        if ack > 0 && size == ack {
            sum += ack;
        }
    }
    sum
}

/// The `.json` upload records in a `--state-dir`.
fn upload_records(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count()
    })
}

/// A push of a big layout into a fresh registry, with its upload state directory.
struct Push {
    reg: TestRegistry,
    work: std::path::PathBuf,
    total: u64,
    source: String,
    image: String,
    state: std::path::PathBuf,
    storage: std::path::PathBuf,
}

impl Push {
    fn new(name: &str) -> Push {
        let reg = TestRegistry::start();
        let work = temp_dir(name);
        let total = big_layout(&work.join("src"));
        let source = format!("oci:{}:v1", work.join("src").display());
        let image = format!("docker://{}/big/pushed:v1", reg.addr);
        let storage = reg.storage_dir();
        let state = work.join("state");
        Push {
            reg,
            work,
            total,
            source,
            image,
            state,
            storage,
        }
    }

    /// The copy example pushing the layout, same `--state-dir` every time.
    fn command(&self) -> Command {
        let mut c = Command::new(common::example("copy"));
        c.args(["--plain-http", "--state-dir"])
            .arg(&self.state)
            .args([&self.source, &self.image]);
        c
    }

    /// Waits until the registry holds `fraction` of the image (the push still running).
    fn wait_for(&self, child: &mut std::process::Child, fraction: (u64, u64)) {
        let started = Instant::now();
        while dir_size(&self.storage) < self.total * fraction.0 / fraction.1 {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the push ended ({status}) before it could be interrupted");
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "push made no progress"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The second run, same state directory: it completes, and what it did not send was
    /// skipped or resumed. Returns the bytes resumed.
    fn rerun(&self) -> u64 {
        let out = self.command().output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}{stderr}");
        assert_eq!(
            number_after(&stderr, "planned: ", " bytes"),
            self.total,
            "{stderr}"
        );
        let sent = bytes_sent(&stdout);
        let skipped = number_after(&stdout, "skipped ", " bytes");
        let resumed = number_after(&stdout, "resumed ", " bytes");
        assert!(
            sent < self.total,
            "the second run sent {sent} of {}: {stdout}",
            self.total
        );
        assert_eq!(sent + skipped + resumed, self.total, "{stdout}");
        assert_eq!(
            upload_records(&self.state),
            0,
            "committed sessions are forgotten"
        );
        eprintln!(
            "second run: resumed {resumed} of {} bytes, sent {sent}, skipped {skipped}",
            self.total
        );
        resumed
    }

    /// Every blob of the source read back from the registry through our client, verified;
    /// returns the digest of the source's manifest (which the registry's tag resolves to).
    fn check_pushed(&self) -> oci_store::Digest {
        rt().block_on(async {
            let src = LayoutStore::open_with(self.work.join("src"), &LayoutOptions::read_only())
                .await
                .unwrap();
            let want = src.resolve("v1").await.unwrap();
            let mut config =
                oci_distribution_client::ClientConfig::default().with_plain_http(&self.reg.addr);
            config.docker_config = false;
            let repo = oci_distribution_client::Client::new(config)
                .unwrap()
                .repository_by_name(&self.reg.addr, "big/pushed")
                .unwrap();
            assert_eq!(repo.resolve("v1").await.unwrap().digest, want.digest);
            for d in walk(&src, &want, 8).await.unwrap() {
                let b = repo.fetch_bytes(&d, 1 << 30).await.unwrap();
                assert_eq!(b.len() as u64, d.size, "{}", d.digest);
            }
            want.digest
        })
    }
}

#[test]
fn a_killed_push_to_a_registry_resumes_its_uploads_in_the_next_run() {
    let push = Push::new("push-interrupt");
    let (reg, work, state, storage) = (&push.reg, &push.work, &push.state, &push.storage);

    // First run: once the registry holds about 40 % of the image, stop the copy (SIGSTOP) until
    // at least one upload session is idle with its bytes as recorded, then SIGKILL it.
    let mut child = push
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let signal = |sig: &str| {
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    push.wait_for(&mut child, (2, 5));
    let mut caught = false;
    for _ in 0..200 {
        signal("-STOP");
        std::thread::sleep(Duration::from_millis(150));
        if resumable_bytes(storage, state) > 0 {
            caught = true;
            break;
        }
        signal("-CONT");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the push ended ({status}) before an idle session was caught");
        }
        std::thread::sleep(Duration::from_millis(fastrand::u64(5..40)));
    }
    child.kill().unwrap(); // SIGKILL (also of a stopped process)
    child.wait().unwrap();
    assert!(caught, "no upload session was ever idle between chunks");
    // The registry closes the killed connections and keeps what they carried.
    let mut expected = resumable_bytes(storage, state);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = resumable_bytes(storage, state);
        if now == expected {
            break;
        }
        expected = now;
    }
    assert!(expected > 0, "the idle session was lost at the kill");
    assert_eq!(
        http_status(&reg.addr, "/v2/big/pushed/manifests/v1").unwrap(),
        404,
        "no tag before the push completed"
    );
    assert!(
        upload_records(state) >= 1,
        "the killed push left its upload sessions recorded"
    );

    // Second run, same state directory: resumes from what the registry acknowledged.
    assert_eq!(
        push.rerun(),
        expected,
        "resumed exactly the sessions the registry holds as recorded"
    );

    // The registry serves the source's manifest bytes; skopeo pulls the image (it verifies
    // every blob digest) and our client reads every blob back verified.
    let remote = format!("docker://{}/big/pushed:v1", reg.addr);
    let out = Command::new(require_tool("skopeo"))
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(&remote)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served = oci_manifest::Algorithm::Sha256.hash(&out.stdout);
    let out = Command::new(require_tool("skopeo"))
        .args(["--insecure-policy", "copy", "-q", "--src-tls-verify=false"])
        .arg(&remote)
        .arg(format!("oci:{}:v1", work.join("back").display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        served,
        push.check_pushed(),
        "the manifest bytes pushed are the source's"
    );
    std::fs::remove_dir_all(work).unwrap();
}

/// SIGTERM (what `kill`, systemd and Kubernetes send) stops a push as cleanly as Ctrl-C: the
/// chunks in flight are finished, every upload session is left with its bytes as recorded, and
/// the next run resumes all of them.
#[test]
fn a_push_stopped_with_sigterm_resumes_every_interrupted_upload() {
    let push = Push::new("push-sigterm");
    let mut child = push
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    push.wait_for(&mut child, (2, 5));
    let stderr = stop_cleanly(child, "-TERM");
    let recorded = resumable_bytes(&push.storage, &push.state);
    assert!(
        upload_records(&push.state) >= 1 && recorded > 0,
        "the stopped push left resumable upload sessions: {stderr}"
    );

    assert_eq!(
        push.rerun(),
        recorded,
        "every session the stop left was resumed"
    );
    push.check_pushed();
    std::fs::remove_dir_all(&push.work).unwrap();
}

/// The number in `text` between `before` (its first occurrence) and the next `after`; for
/// "skipped 2 blobs the destination had: 123 B (123 bytes)" with ("skipped ", " bytes") that
/// is 123.
fn number_after(text: &str, before: &str, after: &str) -> u64 {
    let start = text.find(before).expect(before) + before.len();
    let rest = &text[start..];
    let end = rest.find(after).expect(after);
    let field = &rest[..end];
    field
        .rsplit(['(', ' '])
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no number in {field:?}"))
}
