//! `sync --src yaml --keep-going` at scale against the real `docker-registry`: 30 repositories
//! (32 images, every one sharing a base layer) from a source registry behind an in-test proxy
//! to a destination registry. The proxy answers 500 to every request for one repository, and
//! one image's own layer has a byte flipped in the source registry's storage. Every other
//! image lands, the JSON report lists exactly the two failures, the exit status says partial
//! (3), the shared base layer crosses the network once; after both faults are mended a re-run
//! transfers only the two images that failed (the proxy counts the blob reads per repository)
//! and says the others are already present.

mod common;
#[path = "../../crates/oci-distribution-client/tests/common/registry.rs"]
mod registry;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use oci_distribution_client::{Client, ClientConfig, Repository};
use oci_manifest::build::ImageManifestBuilder;
use oci_manifest::{Descriptor, media_types};
use oci_store::{ReadStore, TagStore, WriteStore};
use registry::{TestRegistry, temp_dir};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REPOS: usize = 30;
const FAILING: &str = "src/app-07";
const CORRUPT: &str = "src/app-13";
const BASE_SIZE: usize = 256 * 1024;

fn repo(client: &Client, addr: &str, name: &str) -> Repository {
    client.repository_by_name(addr, name).unwrap()
}

fn client(addr: &str) -> Client {
    let mut c = ClientConfig::default().with_plain_http(addr);
    c.docker_config = false;
    c.proxy_from_env = false;
    Client::new(c).unwrap()
}

fn desc(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor::new(
        media_type,
        oci_digest::Algorithm::Sha256.hash(bytes),
        bytes.len() as u64,
    )
}

/// Pushes `name:tag`: the shared base layer, a layer of its own, its config. Returns the own
/// layer's digest.
async fn push_image(client: &Client, addr: &str, name: &str, tag: &str, base: &Bytes) -> String {
    let r = repo(client, addr, name);
    let own = Bytes::from(format!("{name}:{tag} own layer ").repeat(64));
    let config = Bytes::from(format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"name":"{name}:{tag}"}}"#
    ));
    let (bd, od, cd) = (
        desc(media_types::OCI_LAYER_GZIP, base),
        desc(media_types::OCI_LAYER_GZIP, &own),
        desc(media_types::OCI_CONFIG, &config),
    );
    for (d, b) in [(&bd, base), (&od, &own), (&cd, &config)] {
        r.push_bytes(d, b.clone()).await.unwrap();
    }
    let m = ImageManifestBuilder::oci(cd)
        .layer(bd)
        .layer(od.clone())
        .build()
        .unwrap();
    r.push_bytes(&m.descriptor(), m.raw().clone())
        .await
        .unwrap();
    r.tag(&m.descriptor(), tag).await.unwrap();
    od.digest.encoded().to_owned()
}

/// The proxy's switch and what it saw.
#[derive(Default)]
struct ProxyState {
    fail: AtomicBool,
    /// Blob reads (GET) per repository.
    blob_gets: Mutex<BTreeMap<String, usize>>,
}

/// A forwarding HTTP proxy to `upstream`, one request per connection (it asks both sides to
/// close after the answer): while `fail` is set, every request for [`FAILING`] is answered 500.
async fn proxy(listener: TcpListener, upstream: String, state: Arc<ProxyState>) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            return;
        };
        let (upstream, state) = (upstream.clone(), Arc::clone(&state));
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match client.read(&mut byte).await {
                    Ok(1) => head.push(byte[0]),
                    _ => return,
                }
                if head.len() > 64 * 1024 {
                    return;
                }
            }
            let text = String::from_utf8_lossy(&head).into_owned();
            let mut first = text.lines().next().unwrap_or("").split(' ');
            let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
            let repository = path
                .strip_prefix("/v2/")
                .and_then(|p| {
                    ["/blobs/", "/manifests/", "/tags/"]
                        .iter()
                        .find_map(|m| p.find(m).map(|i| &p[..i]))
                })
                .unwrap_or("")
                .to_owned();
            if method == "GET" && path.contains("/blobs/") {
                *state
                    .blob_gets
                    .lock()
                    .unwrap()
                    .entry(repository.clone())
                    .or_default() += 1;
            }
            if state.fail.load(Ordering::SeqCst) && repository == FAILING {
                let body = r#"{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}"#;
                let answer = format!(
                    "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = client.write_all(answer.as_bytes()).await;
                let _ = client.shutdown().await;
                return;
            }
            let Ok(mut up) = TcpStream::connect(&upstream).await else {
                return;
            };
            let mut forwarded = String::new();
            for line in text.split("\r\n").filter(|l| !l.is_empty()) {
                if !line.to_ascii_lowercase().starts_with("connection:") {
                    forwarded.push_str(line);
                    forwarded.push_str("\r\n");
                }
            }
            forwarded.push_str("connection: close\r\n\r\n");
            if up.write_all(forwarded.as_bytes()).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
        });
    }
}

/// The blob file of `hex` in a registry's storage.
fn blob_file(storage: &Path, hex: &str) -> PathBuf {
    storage
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

fn flip_first_byte(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    b[0] ^= 0xff;
    std::fs::write(path, b).unwrap();
}

fn run_sync(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(common::example("sync"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn report(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The images of a report with this outcome, by source.
fn with_outcome(r: &Value, outcome: &str) -> BTreeSet<String> {
    r["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["outcome"] == outcome)
        .map(|i| i["source"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn keep_going_lands_every_good_image_reports_two_failures_and_a_rerun_mends_only_those() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let dir = temp_dir("sync-partial");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let state = Arc::new(ProxyState::default());
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let proxy_addr = listener.local_addr().unwrap().to_string();
    rt.spawn(proxy(listener, src.addr.clone(), Arc::clone(&state)));

    // 30 repositories of one tag, but app-00 has two tags (all listed: `[]`) and app-01 three,
    // two of which a tags-regex picks: 32 images.
    let base = Bytes::from((0..BASE_SIZE).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let c = client(&src.addr);
    let corrupt_layer = rt.block_on(async {
        let mut corrupt = String::new();
        for i in 0..REPOS {
            let name = format!("src/app-{i:02}");
            let tags: &[&str] = match i {
                0 => &["v1", "v2"],
                1 => &["v1", "v2", "old"],
                _ => &["v1"],
            };
            for tag in tags {
                let own = push_image(&c, &src.addr, &name, tag, &base).await;
                if name == CORRUPT {
                    corrupt = own;
                }
            }
        }
        corrupt
    });
    let mut yaml = format!("{proxy_addr}:\n  tls-verify: false\n  images:\n    src/app-00: []\n");
    for i in 2..REPOS {
        yaml.push_str(&format!("    src/app-{i:02}: [v1]\n"));
    }
    yaml.push_str("  images-by-tag-regex:\n    src/app-01: ^v[0-9]+$\n");
    std::fs::write(dir.join("sync.yaml"), yaml).unwrap();

    // The faults: one repository answers 500, one image's own layer is damaged.
    state.fail.store(true, Ordering::SeqCst);
    let corrupt_file = blob_file(&src.storage_dir(), &corrupt_layer);
    flip_first_byte(&corrupt_file);

    let dest = format!("docker://{}/mirror", dst.addr);
    let args = |report: &str| -> Vec<String> {
        [
            "--src",
            "yaml",
            "--keep-going",
            "--plain-http",
            "--retries",
            "1",
            "--retry-budget",
            "0",
            "--jobs",
            "6",
            "--report",
            report,
            "sync.yaml",
            &dest,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let first = args("first.json");
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = run_sync(&dir, &first);
    assert_eq!(code, Some(3), "partial: {stdout}{stderr}");
    let r = report(&dir.join("first.json"));
    let failed = with_outcome(&r, "failed");
    let expected: BTreeSet<String> = [FAILING, CORRUPT]
        .iter()
        .map(|n| format!("docker://{proxy_addr}/{n}:v1"))
        .collect();
    assert_eq!(failed, expected, "{stdout}{stderr}");
    assert_eq!(r["summary"]["images"], 32);
    assert_eq!(r["summary"]["failed"], 2);
    assert_eq!(r["summary"]["copied"], 30);
    assert_eq!(r["summary"]["exit_status"], 3);
    for image in r["images"].as_array().unwrap() {
        let source = image["source"].as_str().unwrap();
        if failed.contains(source) {
            let error = image["error"].as_str().unwrap();
            assert!(!error.is_empty(), "{image}");
            assert!(image["destination"].is_string(), "{image}");
        } else {
            assert!(image["error"].is_null(), "{image}");
            assert!(
                image["digest"].as_str().unwrap().starts_with("sha256:"),
                "{image}"
            );
        }
    }
    let corrupt_error = r["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["source"].as_str().unwrap().contains(CORRUPT))
        .unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(corrupt_error.contains(&corrupt_layer), "{corrupt_error}");
    // The regex left app-01:old out; every good image is in the destination, named by the
    // repository's last component.
    assert!(
        !r.to_string().contains("app-01:old"),
        "the tags-regex picks v1 and v2 only"
    );
    let d = client(&dst.addr);
    rt.block_on(async {
        for i in 0..REPOS {
            let name = format!("src/app-{i:02}");
            let r = repo(&d, &dst.addr, &format!("mirror/app-{i:02}"));
            let found = r.resolve("v1").await;
            assert_eq!(
                found.is_ok(),
                name != FAILING && name != CORRUPT,
                "{name}: {found:?}"
            );
        }
        for tag in ["v1", "v2"] {
            repo(&d, &dst.addr, "mirror/app-01")
                .resolve(tag)
                .await
                .unwrap();
        }
        // What landed reads back whole.
        let r = repo(&d, &dst.addr, "mirror/app-29");
        let root = r.resolve("v1").await.unwrap();
        for desc in oci_store::walk(&r, &root, 4).await.unwrap() {
            r.fetch_bytes(&desc, 1 << 20).await.unwrap();
        }
    });
    // The base layer crossed the network once (later images mounted it or waited for it):
    // far less than one base layer per image was sent.
    let sent = r["summary"]["bytes"].as_u64().unwrap();
    assert!(
        sent < 2 * BASE_SIZE as u64,
        "{sent} bytes sent for 30 images sharing a {BASE_SIZE}-byte base layer"
    );
    let mounted: u64 = r["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["blobs_mounted"].as_u64().unwrap())
        .sum();
    assert!(mounted >= 20, "{mounted} blobs mounted: {stdout}");

    // Mend both faults and run again: only the two images transfer anything.
    state.fail.store(false, Ordering::SeqCst);
    flip_first_byte(&corrupt_file);
    state.blob_gets.lock().unwrap().clear();
    let second = args("second.json");
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = run_sync(&dir, &second);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let r = report(&dir.join("second.json"));
    assert_eq!(with_outcome(&r, "copied"), expected, "{stdout}");
    assert_eq!(with_outcome(&r, "present").len(), 30, "{stdout}");
    assert_eq!(r["summary"]["failed"], 0);
    assert!(
        stdout.contains("already present: 30 images; copied now: 2 images"),
        "{stdout}"
    );
    let gets = state.blob_gets.lock().unwrap().clone();
    let read: BTreeSet<&str> = gets.keys().map(String::as_str).collect();
    assert!(
        read.iter().all(|r| *r == FAILING || *r == CORRUPT),
        "blobs read again from repositories that were complete: {gets:?}"
    );
    // The two mended images sent their own layers, configs and manifests, and the base layer
    // at most once (app-13 has it from the first run; app-07 mounts or sends it).
    let sent = r["summary"]["bytes"].as_u64().unwrap();
    assert!(sent > 0 && sent < 2 * BASE_SIZE as u64, "{sent}: {stdout}");
    for image in r["images"].as_array().unwrap() {
        if image["outcome"] == "present" {
            assert_eq!(image["bytes"], 0, "{image}");
        }
    }
    rt.block_on(async {
        for name in ["mirror/app-07", "mirror/app-13"] {
            let r = repo(&d, &dst.addr, name);
            let root = r.resolve("v1").await.unwrap();
            for desc in oci_store::walk(&r, &root, 4).await.unwrap() {
                r.fetch_bytes(&desc, 1 << 20).await.unwrap();
            }
        }
    });
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
}
