//! Many machines on one bucket, as processes against one SeaweedFS (started by the harness):
//! this binary re-executes itself as writers and a collector.
//!
//! 1. A writer killed (SIGKILL) in the middle of a multipart upload is resumed by a new
//!    process from the parts it recorded, and the blob verifies.
//! 2. Four writer processes store images that share layers, each under a lease, while a
//!    collector process loops (at least 200 collections); one writer runs with its clock 3
//!    hours behind and the collector with its clock 7 hours ahead (Debian's `faketime`). After
//!    them every tagged image is complete, a blob leased through all of it is present, and fsck
//!    is clean. Writers and collector open the store from `s3://BUCKET/PREFIX` with the `AWS_*`
//!    environment.
//!
//! Needs `weed` (see `object_common`), `setpriv` and `faketime` (`apt-get install faketime`).

mod object_common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use oci_manifest::build::ImageManifestBuilder;
use oci_manifest::media_types;
use oci_store::testing::{Blob, Image, Rng, blob, check_complete, from_manifest};
use oci_store::{
    BucketOptions, BucketStore, FsckOptions, GcOptions, ManagedStore, ReadStore, TagStore,
    WriteStore,
};

const CHILD: &str = "OCI_STORE_OBJECT_CHILD";
const BIG: usize = (48 << 20) + 12_345;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn options() -> BucketOptions {
    BucketOptions::create()
        .with_ingest_lock_ttl(Duration::from_secs(2))
        .with_part_size(5 << 20)
}

async fn open_url(url: &str) -> BucketStore {
    BucketStore::open_url(url, &options())
        .await
        .unwrap_or_else(|e| panic!("open {url}: {}", oci_store::error_chain(&e)))
}

fn big_blob() -> Blob {
    blob("application/octet-stream", Rng::new(4242).bytes(BIG))
}

/// Image `i` of writer `w`: a base layer all writers share, a layer of its own, a config and a
/// manifest.
fn writer_image(w: u64, i: u64) -> Image {
    let base = blob(media_types::OCI_LAYER_GZIP, Rng::new(777).bytes(300_000));
    let own = blob(
        media_types::OCI_LAYER_GZIP,
        Rng::new(1000 * w + i).bytes(20_000 + i as usize),
    );
    let config = blob(
        media_types::OCI_CONFIG,
        format!(r#"{{"architecture":"amd64","os":"linux","w":{w},"i":{i}}}"#),
    );
    let m = ImageManifestBuilder::oci(config.desc.clone())
        .layers([base.desc.clone(), own.desc.clone()])
        .build()
        .unwrap();
    Image {
        blobs: vec![base, own, config, from_manifest(&m)],
    }
}

const IMAGES: u64 = 12;

fn main() {
    if let Ok(role) = std::env::var(CHILD) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        rt().block_on(child(&role, &args));
        return;
    }
    let started = Instant::now();
    let mut passed = 0;
    for (name, f) in [
        (
            "killed_upload_resumes_in_a_new_process",
            killed_upload_resumes as fn(),
        ),
        (
            "many_machines_with_clocks_hours_apart",
            many_machines as fn(),
        ),
    ] {
        let t = Instant::now();
        f();
        println!("test {name} ... ok ({:.1} s)", t.elapsed().as_secs_f64());
        passed += 1;
    }
    println!(
        "\ntest result: ok. {passed} passed; 0 failed; finished in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// The child roles.
async fn child(role: &str, args: &[String]) {
    let url = &args[0];
    let store = open_url(url).await;
    match role {
        // Writes the big blob slowly; says RECORDED once 3 parts are recorded, and goes on
        // until killed.
        "slow-writer" => {
            let b = big_blob();
            let mut w = store.writer("big", &b.desc).await.unwrap();
            let mut told = false;
            for (i, chunk) in b.data.chunks(1 << 20).enumerate() {
                w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
                if !told {
                    let st = store.ingest_status("big").await.unwrap().unwrap();
                    if st.offset >= 15 << 20 {
                        println!("RECORDED {}", st.offset);
                        told = true;
                    }
                }
                if told {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let _ = i;
            }
            panic!("the slow writer was not killed");
        }
        // Resumes the big blob (waiting for the killed owner's hold to lapse) and commits it.
        "resumer" => {
            let b = big_blob();
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut w = loop {
                match store.writer("big", &b.desc).await {
                    Ok(w) => break w,
                    Err(oci_store::StoreError::IngestBusy { .. }) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => panic!("resume: {}", oci_store::error_chain(&e)),
                }
            };
            let at = w.offset() as usize;
            println!("RESUMED {at}");
            for chunk in b.data[at..].chunks(1 << 20) {
                w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
            }
            let outcome = w.commit().await.unwrap();
            println!("COMMITTED {outcome}");
        }
        // Stores IMAGES images under leases, tagging each, untagging the one two before.
        "writer" => {
            let w: u64 = args[1].parse().unwrap();
            for i in 0..IMAGES {
                let img = writer_image(w, i);
                let lease = store.create_lease(Duration::from_secs(60)).await.unwrap();
                let leased = store.with_lease(&lease);
                for b in &img.blobs {
                    leased
                        .push_bytes(&b.desc, b.data.clone())
                        .await
                        .unwrap_or_else(|e| {
                            panic!(
                                "writer {w} image {i}: push {}: {}",
                                b.desc.digest,
                                oci_store::error_chain(&e)
                            )
                        });
                }
                leased.tag(img.root(), &format!("w{w}-{i}")).await.unwrap();
                store.release_lease(&lease).await.unwrap();
                if i >= 2 {
                    store.untag(&format!("w{w}-{}", i - 2)).await.unwrap();
                }
            }
            println!("DONE");
        }
        // Collects until the stop file exists and at least `args[2]` rounds ran.
        "collector" => {
            let stop = PathBuf::from(&args[1]);
            let min_rounds: u32 = args[2].parse().unwrap();
            let mut rounds = 0u32;
            let mut removed = 0usize;
            while rounds < min_rounds || !stop.exists() {
                let r = store
                    .gc(&GcOptions::default().with_min_age(Duration::ZERO))
                    .await
                    .unwrap_or_else(|e| {
                        panic!("gc round {rounds}: {}", oci_store::error_chain(&e))
                    });
                removed += r.removed.len();
                rounds += 1;
            }
            println!("ROUNDS {rounds} REMOVED {removed}");
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn(role: &str, args: &[&str], faketime: Option<&str>) -> Proc {
    let me = std::env::current_exe().unwrap();
    let mut cmd = match faketime {
        Some(offset) => {
            let mut c = Command::new("faketime");
            c.args(["-f", offset]).arg(&me);
            c
        }
        None => Command::new(&me),
    };
    for (k, v) in object_common::seaweed().env() {
        cmd.env(k, v);
    }
    Proc::new(
        cmd.env(CHILD, role)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {role}: {e}")),
    )
}

/// A child process with its stdout read line by line.
struct Proc {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Proc {
    fn new(mut child: Child) -> Proc {
        let out = BufReader::new(child.stdout.take().unwrap());
        Proc { child, out }
    }
}

/// Reads `p`'s stdout lines until one starts with `prefix`.
fn wait_line(p: &mut Proc, prefix: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = p.out.read_line(&mut line).unwrap();
        assert!(n > 0, "child ended without printing {prefix}");
        if line.starts_with(prefix) {
            return line.trim().to_owned();
        }
    }
}

fn finish(mut p: Proc, what: &str) {
    let status = p.child.wait().unwrap();
    assert!(status.success(), "{what} failed: {status}");
}

fn killed_upload_resumes() {
    let sw = object_common::seaweed();
    let bucket = sw.bucket("killed");
    let url = format!("s3://{bucket}/images");
    let mut slow = spawn("slow-writer", &[&url], None);
    let recorded: u64 = wait_line(&mut slow, "RECORDED")
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    slow.child.kill().unwrap(); // SIGKILL
    slow.child.wait().unwrap();
    let mut resumer = spawn("resumer", &[&url], None);
    let resumed: u64 = wait_line(&mut resumer, "RESUMED")
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        resumed >= recorded && resumed < BIG as u64,
        "resumed at {resumed}, {recorded} recorded before the kill"
    );
    let committed = wait_line(&mut resumer, "COMMITTED");
    assert_eq!(committed, "COMMITTED written");
    finish(resumer, "the resumer");
    rt().block_on(async {
        let store = BucketStore::open(&sw.backend(&bucket), "images", &options())
            .await
            .unwrap();
        let b = big_blob();
        let back = oci_store::collect(store.fetch(&b.desc).await.unwrap(), u64::MAX)
            .await
            .unwrap();
        assert!(back == b.data, "the resumed blob reads back other bytes");
        assert!(store.ingests().await.unwrap().is_empty());
        let f = store.fsck(&FsckOptions::default()).await.unwrap();
        assert!(f.is_clean(), "{f:?}");
    });
}

fn many_machines() {
    if Command::new("faketime").arg("--version").output().is_err() {
        panic!("`faketime` is needed: apt-get install faketime");
    }
    let sw = object_common::seaweed();
    let bucket = sw.bucket("many");
    let url = format!("s3://{bucket}/cache");
    let dir = std::env::temp_dir().join(format!("oci-store-many-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stop = dir.join("stop");
    let _ = std::fs::remove_file(&stop);
    // A blob leased by this process through the whole run.
    let (store, lease, kept) = rt().block_on(async {
        let store = BucketStore::open(&sw.backend(&bucket), "cache", &options())
            .await
            .unwrap();
        let lease = store.create_lease(Duration::from_secs(1800)).await.unwrap();
        let kept = blob("application/octet-stream", Rng::new(99).bytes(10_000));
        store
            .with_lease(&lease)
            .push_bytes(&kept.desc, kept.data.clone())
            .await
            .unwrap();
        (store, lease, kept)
    });
    let collector = spawn(
        "collector",
        &[&url, stop.to_str().unwrap(), "200"],
        Some("+7h"),
    );
    let clocks = [None, Some("-3h"), None, Some("+1h")];
    let writers: Vec<Proc> = (0..4u64)
        .map(|w| spawn("writer", &[&url, &w.to_string()], clocks[w as usize]))
        .collect();
    for (w, mut c) in writers.into_iter().enumerate() {
        wait_line(&mut c, "DONE");
        finish(c, &format!("writer {w}"));
    }
    std::fs::write(&stop, b"stop").unwrap();
    let mut collector = collector;
    let line = wait_line(&mut collector, "ROUNDS");
    finish(collector, "the collector");
    let rounds: u32 = line.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(rounds >= 200, "{line}");
    eprintln!("collector: {line}");
    rt().block_on(async {
        // Every tagged image complete; the two newest of each writer are tagged.
        let tags = store.tags().await.unwrap();
        assert_eq!(tags.len(), 8, "{tags:?}");
        for t in &tags {
            let root = store.resolve(t).await.unwrap();
            check_complete(&store, &root)
                .await
                .unwrap_or_else(|e| panic!("image {t}: {}", oci_store::error_chain(&e)));
        }
        assert!(
            store.exists(&kept.desc.digest).await.unwrap(),
            "leased blob collected"
        );
        let f = store.fsck(&FsckOptions::default()).await.unwrap();
        assert!(f.is_clean(), "{f:?}");
        store.release_lease(&lease).await.unwrap();
        let r = store
            .gc(&GcOptions::default().with_min_age(Duration::ZERO))
            .await
            .unwrap();
        assert!(r.removed.iter().any(|x| x.digest == kept.desc.digest));
        assert!(store.leases().await.unwrap().is_empty());
    });
    let _ = std::fs::remove_dir_all(&dir);
}
