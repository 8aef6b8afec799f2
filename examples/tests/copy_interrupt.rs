//! A copy of a multi-hundred-MiB image from the real `docker-registry` into an OCI layout,
//! interrupted with Ctrl-C (a clean cancel, exit 130), run again and killed (SIGKILL) part
//! way through, then run again: the second run completes, sends well
//! under the total (completed blobs are skipped, the interrupted one resumes from its ingest),
//! and the result verifies (read back, fsck, skopeo).

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
use registry::{TestRegistry, require_tool, temp_dir};

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
fn bytes_sent(stdout: &str) -> u64 {
    let at = stdout.find(" bytes sent").expect("summary line");
    stdout[..at].rsplit(' ').next().unwrap().parse().unwrap()
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
    let int = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(int.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted") && stderr.contains("cancelled"),
        "{stderr}"
    );

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
    let skipped = number_after(&stdout, "skipped ", " bytes)");
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

/// The number in `text` between `before` (its first occurrence) and the next `after`; for
/// "skipped 2 (123 bytes)" with ("skipped ", " bytes)") that is 123.
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
