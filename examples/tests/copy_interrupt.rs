//! A copy of a multi-hundred-MiB image from the real `docker-registry` into an OCI layout,
//! interrupted with Ctrl-C (a clean cancel, exit 130), run again and killed (SIGKILL) part
//! way through, then run again: the second run completes, sends well
//! under the total (completed blobs are skipped, the interrupted one resumes from its ingest),
//! and the result verifies (read back, fsck, skopeo).
//!
//! The other way too: a push of the same kind of image from a layout into the registry, each
//! layer sent as one streamed request. Stopped with SIGTERM, the push ends each request where it
//! is and records the registry's offset; the next run (same `--state-dir`) resumes every layer
//! from that offset, sending only the bytes the registry does not have. SIGKILLed in the middle
//! of a layer, the push leaves a cut request, which distribution 2.8 does not resume (it cancels
//! the session: "upload resumed at wrong offset"): the next run skips the committed layers,
//! starts the cut one again and says so. skopeo pulls back an image with the right digests.

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

/// The client's hash checkpoint spacing (`ClientConfig::chunk_size`, default 8 MiB): a
/// resumed upload restarts its hash at most this far below the registry's offset.
const CHECKPOINT: u64 = 8 << 20;

/// The registry's upload sessions of `big/pushed` (storage directory `storage`): upload id and
/// the bytes it holds.
fn registry_sessions(storage: &Path) -> Vec<(String, u64)> {
    let uploads = storage.join("docker/registry/v2/repositories/big/pushed/_uploads");
    std::fs::read_dir(uploads).map_or(Vec::new(), |rd| {
        rd.filter_map(Result::ok)
            .map(|e| {
                let size = std::fs::metadata(e.path().join("data")).map_or(0, |m| m.len());
                (e.file_name().to_string_lossy().into_owned(), size)
            })
            .collect()
    })
}

/// The upload sessions recorded in the `--state-dir` `state`: upload id and the offset of the
/// recorded hash checkpoint.
fn recorded_sessions(state: &Path) -> Vec<(String, u64)> {
    let Ok(rd) = std::fs::read_dir(state) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.filter_map(Result::ok) {
        if e.path().extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(text) = std::fs::read(e.path()) else {
            continue;
        };
        let rec: serde_json::Value = serde_json::from_slice(&text).unwrap();
        let location = rec["location"].as_str().unwrap();
        let uuid = location
            .split("/uploads/")
            .nth(1)
            .unwrap()
            .split('?')
            .next()
            .unwrap();
        out.push((uuid.to_owned(), rec["acknowledged"].as_u64().unwrap()));
    }
    out
}

/// The `.json` upload records in a `--state-dir`.
fn upload_records(dir: &Path) -> usize {
    recorded_sessions(dir).len()
}

/// Layers of `LAYER` bytes the registry (storage directory `storage`) has committed.
fn committed_layers(storage: &Path) -> usize {
    let blobs = storage.join("docker/registry/v2/blobs/sha256");
    let Ok(prefixes) = std::fs::read_dir(blobs) else {
        return 0;
    };
    prefixes
        .filter_map(Result::ok)
        .filter_map(|p| std::fs::read_dir(p.path()).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|b| std::fs::metadata(b.path().join("data")).is_ok_and(|m| m.len() == LAYER))
        .count()
}

/// The numbers after `field=` in the lines of `log` that contain `message`, in order.
fn logged(log: &str, message: &str, field: &str) -> Vec<u64> {
    let key = format!("{field}=");
    log.lines()
        .filter(|l| l.contains(message))
        .filter_map(|l| {
            let at = l.find(&key)? + key.len();
            let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
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

/// What the second run of a push did.
struct Rerun {
    /// Bytes resumed (the summary's "resumed N bytes").
    resumed: u64,
    /// Bytes skipped (blobs the registry had).
    skipped: u64,
    /// Its standard error (the client's log at `info`).
    log: String,
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

    /// The copy example pushing the layout, same `--state-dir` every time, logging what the
    /// client does with upload sessions.
    fn command(&self, options: &[&str]) -> Command {
        let mut c = Command::new(common::example("copy"));
        c.env("RUST_LOG", "oci_distribution_client=info")
            .args(["--plain-http", "--state-dir"])
            .arg(&self.state)
            .args(options)
            .args([&self.source, &self.image]);
        c
    }

    /// Waits until `done` says the registry got far enough (the push still running).
    fn wait_for(&self, child: &mut std::process::Child, what: &str, done: impl Fn(&Push) -> bool) {
        let started = Instant::now();
        while !done(self) {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the push ended ({status}) before {what}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "push made no progress towards {what}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The second run, same state directory: it completes, and what it did not send was
    /// skipped or resumed.
    fn rerun(&self) -> Rerun {
        let out = self.command(&[]).output().unwrap();
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
        Rerun {
            resumed,
            skipped,
            log: stderr.into_owned(),
        }
    }

    /// The image is in the registry as the source has it: the registry serves the source's
    /// manifest bytes, skopeo pulls it (verifying every blob digest), and our client reads
    /// every blob back verified.
    fn check_pushed(&self) {
        let remote = format!("docker://{}/big/pushed:v1", self.reg.addr);
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
            .arg(format!("oci:{}:v1", self.work.join("back").display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pushed = rt().block_on(async {
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
        });
        assert_eq!(served, pushed, "the manifest bytes pushed are the source's");
    }
}

/// A push killed (SIGKILL) in the middle of a layer's upload. Each layer goes up as one
/// streamed request, and distribution 2.8 keeps what a cut request carried, then refuses and
/// cancels that session ("upload resumed at wrong offest", its spelling): the upload state in
/// the session's `Location` names the offset of the last completed request, which a cut
/// request leaves behind. So the next run skips the layers the registry committed, starts the
/// cut layer again from byte 0 and says so. (A registry that keeps a cut session, as the
/// distribution spec allows, is resumed from its offset: the client's `faults.rs` shows that
/// with a process killed mid-request.)
#[test]
fn a_killed_push_skips_what_the_registry_committed_and_restarts_the_cut_upload() {
    let push = Push::new("push-interrupt");
    // One layer at a time: when one is committed and the next is on its way, SIGKILL.
    let mut child = push
        .command(&["--jobs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    push.wait_for(
        &mut child,
        "a layer is committed and the next is on its way",
        |p| {
            committed_layers(&p.storage) >= 1
                && registry_sessions(&p.storage)
                    .iter()
                    .any(|(_, n)| *n >= 8 << 20)
        },
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let committed = committed_layers(&push.storage) as u64;
    assert!(committed < LAYERS as u64, "killed before the end");
    assert_eq!(
        http_status(&push.reg.addr, "/v2/big/pushed/manifests/v1").unwrap(),
        404,
        "no tag before the push completed"
    );
    assert!(
        upload_records(&push.state) >= 1,
        "the killed push left its upload session recorded"
    );

    let second = push.rerun();
    assert!(
        second.skipped >= committed * LAYER,
        "the committed layers were skipped: {committed} of {} bytes each, skipped {}",
        LAYER,
        second.skipped
    );
    assert_eq!(second.resumed, 0, "nothing of a cut request is resumed");
    assert!(
        second
            .log
            .contains("does not resume the recorded upload session"),
        "the restart is said: {}",
        second.log
    );
    let registry_log =
        std::fs::read_to_string(push.reg.dir.join("registry.log")).unwrap_or_default();
    assert!(
        registry_log.contains("upload resumed at wrong offest"),
        "the registry's reason: {registry_log}"
    );
    push.check_pushed();
    std::fs::remove_dir_all(&push.work).unwrap();
}

/// SIGTERM (what `kill`, systemd and Kubernetes send) stops a push as cleanly as Ctrl-C: each
/// layer's streamed request is ended where it is, the registry answers with its offset, and
/// the session is recorded at it. The next run asks the registry for that offset, hashes the
/// bytes below it from the source again (from the recorded checkpoint, at most 8 MiB below),
/// and sends only what the registry does not have: for each layer the bytes it sends are the
/// layer's size minus the registry's offset.
#[test]
fn a_push_stopped_with_sigterm_resumes_every_upload_from_the_registrys_offset() {
    let push = Push::new("push-sigterm");
    let mut child = push
        .command(&[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    push.wait_for(&mut child, "2/5 of the image reached the registry", |p| {
        dir_size(&p.storage) >= p.total * 2 / 5
    });
    let first_log = stop_cleanly(child, "-TERM");

    // Every session the stop left is recorded, at a checkpoint at most 8 MiB below the bytes
    // the registry holds, and the client logged the registry's offset when it paused.
    let held: std::collections::HashMap<String, u64> =
        registry_sessions(&push.storage).into_iter().collect();
    let recorded = recorded_sessions(&push.state);
    assert!(!recorded.is_empty(), "sessions recorded: {first_log}");
    let mut offsets = Vec::new();
    for (uuid, checkpoint) in &recorded {
        let at = held[uuid];
        assert!(
            *checkpoint <= at && at - checkpoint < CHECKPOINT && at > 0,
            "session {uuid}: checkpoint {checkpoint}, registry holds {at}"
        );
        offsets.push(at);
    }
    offsets.sort_unstable();
    let mut paused = logged(&first_log, "upload paused", "registry_offset");
    paused.sort_unstable();
    assert_eq!(paused, offsets, "{first_log}");

    let second = push.rerun();
    assert_eq!(
        second.resumed,
        recorded.iter().map(|(_, c)| c).sum::<u64>(),
        "every session resumed from its checkpoint"
    );
    let mut resumed_at = logged(
        &second.log,
        "resuming the upload at the registry's offset",
        "registry_offset",
    );
    resumed_at.sort_unstable();
    assert_eq!(resumed_at, offsets, "{}", second.log);
    // The bytes below the registry's offset were not sent again.
    let committed: Vec<(u64, u64)> = logged(&second.log, "upload committed", "registry_offset")
        .into_iter()
        .zip(logged(&second.log, "upload committed", "sent"))
        .filter(|(at, _)| *at > 0)
        .collect();
    assert_eq!(committed.len(), offsets.len(), "{}", second.log);
    for (at, sent) in committed {
        assert_eq!(sent, LAYER - at, "a layer resumed at {at}");
    }
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
