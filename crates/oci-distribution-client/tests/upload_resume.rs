//! Upload sessions recorded in `ClientConfig::upload_state_dir` resume in a new client (as a
//! new process would) from the bytes the real `docker-registry` acknowledged; sessions the
//! registry no longer knows start again from byte 0 and still commit.

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::registry::{TestRegistry, temp_dir};
use common::{random, test_config};
use oci_distribution_client::{Algorithm, Client, ClientConfig, Descriptor, media_types};
use oci_store::{PushOutcome, ReadStore, StoreError, WriteStore};

const MIB: usize = 1024 * 1024;
const CHUNK: usize = 4 * MIB;
const REPO: &str = "resume/app";

fn config(reg: &TestRegistry, state: &Path) -> ClientConfig {
    let mut c = test_config(&reg.addr).with_upload_state_dir(state);
    c.chunk_size = CHUNK as u64;
    c
}

/// The `.json` records in the state directory.
fn records(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default()
}

fn record_json(state: &Path) -> (PathBuf, serde_json::Value) {
    let recs = records(state);
    assert_eq!(recs.len(), 1, "one session recorded: {recs:?}");
    let text = std::fs::read(&recs[0]).expect("read record");
    let v = serde_json::from_slice(&text).expect("record is JSON");
    (recs[0].clone(), v)
}

/// Sends `DELETE url` over a plain socket (as another tool would cancel the upload) and
/// returns the status code.
fn http_delete(addr: &str, url: &str) -> u16 {
    use std::io::{Read, Write};
    let path = url.split_once(addr).expect("URL on the test registry").1;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "DELETE {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line")
}

async fn read_back(reg: &TestRegistry, d: &Descriptor) -> Bytes {
    // A client without a state dir: what anyone pulling the blob gets, verified.
    let repo = Client::new(test_config(&reg.addr))
        .expect("client")
        .repository_by_name(&reg.addr, REPO)
        .expect("repo");
    oci_store::collect(repo.fetch(d).await.expect("fetch"), 1 << 30)
        .await
        .expect("blob served with its digest")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_upload_resumes_in_a_new_client_from_the_acknowledged_offset() {
    let reg = TestRegistry::start();
    let state = temp_dir("upload-state").join("uploads");
    let data = Bytes::from(random(40 * MIB, 4040));
    let d = Descriptor::new(
        media_types::OCI_LAYER_TAR,
        Algorithm::Sha256.hash(&data),
        data.len() as u64,
    );
    let sent = 3 * CHUNK;
    {
        let client = Client::new(config(&reg, &state)).expect("client");
        let repo = client.repository_by_name(&reg.addr, REPO).expect("repo");
        let mut w = repo.writer("layer-key", &d).await.expect("writer");
        // Three chunks acknowledged and one more MiB buffered (lost with the process).
        w.write(data.slice(..sent + MIB)).await.expect("write");
        assert_eq!(w.offset(), (sent + MIB) as u64);
        assert!(matches!(
            repo.writer("layer-key", &d).await,
            Err(StoreError::IngestBusy { .. })
        ));
        drop(w);
        drop(repo);
        drop(client);
    }
    let (path, rec) = record_json(&state);
    assert_eq!(rec["acknowledged"], serde_json::json!(sent));
    assert_eq!(rec["key"], "layer-key");
    assert_eq!(rec["repository"], REPO);
    assert_eq!(rec["descriptor"]["digest"], d.digest.as_str());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the upload URL is a capability");
    }

    // A new client (as in a new process) with the same state directory.
    let client = Client::new(config(&reg, &state)).expect("client");
    let repo = client.repository_by_name(&reg.addr, REPO).expect("repo");
    let listed = repo.ingests().await.expect("ingests");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, "layer-key");
    assert_eq!(listed[0].offset, sent as u64);
    let st = repo
        .ingest_status("layer-key")
        .await
        .expect("status")
        .expect("recorded session");
    assert_eq!(st.offset, sent as u64);
    // Other content under the same key is refused, and leaves the record alone.
    let other = Descriptor::new(
        media_types::OCI_LAYER_TAR,
        Algorithm::Sha256.hash(b"other"),
        5,
    );
    match repo.writer("layer-key", &other).await {
        Err(StoreError::IngestMismatch {
            existing,
            requested,
            ..
        }) => {
            assert_eq!(existing, d.digest);
            assert_eq!(requested, other.digest);
        }
        Err(e) => panic!("expected IngestMismatch, got {e}"),
        Ok(_) => panic!("expected IngestMismatch, got a writer"),
    }

    let mut w = repo.writer("layer-key", &d).await.expect("resume");
    assert_eq!(w.offset(), sent as u64, "resumed at the acknowledged bytes");
    assert!(matches!(
        repo.writer("layer-key", &d).await,
        Err(StoreError::IngestBusy { .. })
    ));
    w.write(data.slice(sent..)).await.expect("write the rest");
    assert_eq!(w.commit().await.expect("commit"), PushOutcome::Written);
    assert!(records(&state).is_empty(), "committed: record removed");
    assert!(repo.ingests().await.expect("ingests").is_empty());
    assert_eq!(read_back(&reg, &d).await, data);
    std::fs::remove_dir_all(state.parent().expect("parent")).expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_registry_no_longer_knows_restarts_from_zero_and_commits() {
    let reg = TestRegistry::start();
    let state = temp_dir("upload-state-dead").join("uploads");
    let data = Bytes::from(random(10 * MIB + 123, 77));
    let d = Descriptor::new(
        media_types::OCI_LAYER_TAR,
        Algorithm::Sha256.hash(&data),
        data.len() as u64,
    );
    // Two ways to lose a session: the registry cancelled it, or the recorded URL is wrong.
    for how in ["cancelled", "corrupt-url"] {
        {
            let client = Client::new(config(&reg, &state)).expect("client");
            let repo = client.repository_by_name(&reg.addr, REPO).expect("repo");
            let mut w = repo.writer(how, &d).await.expect("writer");
            w.write(data.slice(..2 * CHUNK)).await.expect("write");
        }
        let (path, mut rec) = record_json(&state);
        assert_eq!(rec["acknowledged"], serde_json::json!(2 * CHUNK), "{how}");
        let location = rec["location"].as_str().expect("location").to_owned();
        match how {
            "cancelled" => {
                let status = http_delete(&reg.addr, &location);
                assert_eq!(status, 204, "cancel the upload");
            }
            _ => {
                // Another (unknown) upload id in the same repository.
                let (head, tail) = location.split_once("/uploads/").expect("upload URL");
                let rest = tail.split_once('?').map_or("", |(_, q)| q);
                rec["location"] = serde_json::json!(format!(
                    "{head}/uploads/00000000-0000-4000-8000-000000000000?{rest}"
                ));
                std::fs::write(&path, serde_json::to_vec(&rec).expect("json")).expect("write");
            }
        }
        let client = Client::new(config(&reg, &state)).expect("client");
        let repo = client.repository_by_name(&reg.addr, REPO).expect("repo");
        let mut w = repo.writer(how, &d).await.expect("new upload");
        assert_eq!(w.offset(), 0, "{how}: the dead session is not resumed");
        let (_, rec) = record_json(&state);
        assert_eq!(rec["acknowledged"], serde_json::json!(0), "{how}: replaced");
        assert_ne!(rec["location"].as_str(), Some(location.as_str()), "{how}");
        w.write(data.clone()).await.expect("write all");
        assert_eq!(w.commit().await.expect("commit"), PushOutcome::Written);
        assert!(records(&state).is_empty(), "{how}: record removed");
        assert_eq!(read_back(&reg, &d).await, data, "{how}");
        // The next round pushes the same blob again through a fresh session.
        repo.delete_blob(&d.digest).await.expect("delete blob");
    }
    std::fs::remove_dir_all(state.parent().expect("parent")).expect("cleanup");
}
