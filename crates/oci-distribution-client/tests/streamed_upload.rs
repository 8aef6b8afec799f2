//! Streamed uploads against the real `docker-registry` (distribution 2.8.2) when the pushing
//! process dies in the middle of a request. distribution keeps the bytes of the cut request,
//! then refuses the session, because the upload state in its `Location` names the offset of
//! the last completed request ("upload resumed at wrong offset"), and cancels it. The next
//! writer of the key therefore starts that blob again from byte 0, and says so. (A push
//! stopped cleanly ends its request first and resumes from the registry's offset:
//! `upload_resume.rs`; the same kill against a registry that keeps the session resumes from
//! its offset: `faults.rs`.)

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::capture::{self, Capture};
use common::registry::{TestRegistry, temp_dir};
use common::{random, test_config};
use oci_distribution_client::{Algorithm, Client, Descriptor, media_types};
use oci_store::{ReadStore, WriteStore};

const MIB: usize = 1 << 20;
const REPO: &str = "killed/app";

/// Bytes in the registry's upload sessions of `REPO`.
fn uploading(storage: &Path) -> u64 {
    let dir = storage.join(format!("docker/registry/v2/repositories/{REPO}/_uploads"));
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .filter_map(|e| std::fs::metadata(e.path().join("data")).ok())
            .map(|m| m.len())
            .sum()
    })
}

#[test]
fn a_killed_streamed_upload_starts_again_on_distribution_and_says_so() {
    let reg = TestRegistry::start();
    let state = temp_dir("killed-streamed").join("uploads");
    let mut cfg = test_config(&reg.addr).with_upload_state_dir(&state);
    cfg.chunk_size = MIB as u64;
    let data = Bytes::from(random(12 * MIB, 1212));
    let desc = Descriptor::new(
        media_types::OCI_LAYER_TAR,
        Algorithm::Sha256.hash(&data),
        data.len() as u64,
    );

    // A process writes 8 MiB and dies while the registry holds at least 4 MiB of them.
    let process = common::runtime();
    let writer = process.block_on(async {
        let repo = Client::new(cfg.clone())
            .expect("client")
            .repository_by_name(&reg.addr, REPO)
            .expect("repo");
        let mut w = repo.writer("layer", &desc).await.expect("writer");
        w.write(data.slice(..8 * MIB)).await.expect("write");
        let start = Instant::now();
        while uploading(&reg.storage_dir()) < 4 * MIB as u64 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the registry never received 4 MiB"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        w
    });
    common::kill(process, writer);
    assert!(
        std::fs::read_dir(&state).expect("state dir").count() >= 1,
        "the session was recorded"
    );

    // The next process: the registry refuses the recorded session, the blob starts again.
    let (subscriber, log) = Capture::new();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let repo = Client::new(cfg.clone())
            .expect("client")
            .repository_by_name(&reg.addr, REPO)
            .expect("repo");
        let mut w = repo.writer("layer", &desc).await.expect("writer");
        assert_eq!(w.offset(), 0, "distribution does not resume a cut request");
        for piece in data.chunks(3 * MIB) {
            w.write(Bytes::copy_from_slice(piece)).await.expect("write");
        }
        w.commit().await.expect("commit");
        let back = oci_store::collect(repo.fetch(&desc).await.expect("fetch"), 1 << 30)
            .await
            .expect("verified");
        assert_eq!(back, data);
    });
    let said = capture::text(&log);
    assert!(
        said.contains("does not resume the recorded upload session")
            && said.contains("starting the blob again from byte 0"),
        "the restart is logged: {said}"
    );
    let registry_log = std::fs::read_to_string(reg.dir.join("registry.log")).expect("registry log");
    assert!(
        registry_log.contains("upload resumed at wrong offest"),
        "the registry's reason (its spelling): {registry_log}"
    );
    std::fs::remove_dir_all(state.parent().expect("parent")).expect("cleanup");
}
