//! Docker schema 1 converted on the way, judged by skopeo: skopeo converts a real image to a
//! signed schema 1 manifest and pushes it to the real docker-registry (distribution 2.8, with
//! `compatibility: schema1: enabled: true`, without which it refuses schema 1 pushes), then
//! reads it back as served (signed again by the registry) into a `dir:` copy; our copy
//! converts that to Docker schema 2 and to OCI, and the configuration's diff IDs and history
//! are those of skopeo's own conversion of the same image from the registry
//! (`skopeo copy --format v2s2` / `--format oci`). Without the option, schema 1 is refused.
//!
//! Here the served manifest reaches the copy through skopeo's `dir:` copy, so that this test
//! judges the conversion alone; the registry client reading schema 1 itself (a signed
//! manifest named by the digest of its JWS payload, as registries do) is tested in
//! `examples/tests/copy_schema1.rs`.
//!
//! Needs `docker-registry` and `skopeo`: `apt-get install docker-registry skopeo umoci jq
//! apache2-utils`.

mod archive_common;
mod common;
#[path = "../../oci-distribution-client/tests/common/registry.rs"]
mod registry;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use archive_common::*;
use common::TempDir;
use oci_manifest::convert::Flavor;
use oci_manifest::media_types as mt;
use oci_manifest::schema1::Schema1;
use oci_store::{
    CopyOptions, Descriptor, Digest, FsckOptions, LayoutOptions, LayoutStore, ManagedStore,
    MemoryStore, ReadStore, TagStore, WriteStore, copy, copy_leased,
};

/// A docker-registry that stores schema 1 manifests, killed on drop.
struct Schema1Registry {
    addr: String,
    dir: PathBuf,
    child: Child,
}

impl Schema1Registry {
    fn start() -> Schema1Registry {
        let bin = registry::require_tool("docker-registry");
        let dir = registry::temp_dir("oci-store-schema1-registry");
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = format!("127.0.0.1:{port}");
            let config = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: schema1-test\ncompatibility:\n  schema1:\n    enabled: true\n",
                dir.join("storage").display()
            );
            std::fs::write(dir.join("config.yml"), config).unwrap();
            let log = std::fs::File::create(dir.join("registry.log")).unwrap();
            let mut child = Command::new(&bin)
                .arg("serve")
                .arg(dir.join("config.yml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start docker-registry: {e}; {INSTALL}"));
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if registry::http_status(&addr, "/v2/").is_ok_and(|c| c == 200) {
                    return Schema1Registry { addr, dir, child };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "docker-registry did not start: {}",
            std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
        );
    }
}

impl Drop for Schema1Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// A real image whose history has an empty (throwaway) entry between its two layers.
fn image_with_empty_history(seed: u64) -> (oci_store::testing::Image, Vec<Digest>) {
    let (mut img, diff_ids) = real_image(seed, 2, 30_000, false);
    let ids: Vec<String> = diff_ids.iter().map(|d| format!("\"{d}\"")).collect();
    let config = format!(
        concat!(
            r#"{{"architecture":"amd64","os":"linux","created":"2024-01-03T00:00:00.5Z","#,
            r#""config":{{"Env":["A=1 & <b>"],"Cmd":["/bin/sh"]}},"#,
            r#""rootfs":{{"type":"layers","diff_ids":[{}]}},"#,
            r#""history":[{{"created":"2024-01-01T00:00:00Z","created_by":"/bin/sh -c #(nop) ADD file:abc in / ","author":"me"}},"#,
            r#"{{"created":"2024-01-02T00:00:00Z","created_by":"/bin/sh -c #(nop)  ENV A=1","empty_layer":true}},"#,
            r#"{{"created":"2024-01-03T00:00:00.5Z","created_by":"/bin/sh -c make && install","comment":"built"}}]}}"#
        ),
        ids.join(",")
    );
    let config = oci_store::testing::blob(mt::OCI_CONFIG, config);
    let m = oci_manifest::build::ImageManifestBuilder::oci(config.desc.clone())
        .layers(img.blobs[..2].iter().map(|b| b.desc.clone()))
        .build()
        .unwrap();
    img.blobs.truncate(2);
    img.blobs.push(config);
    img.blobs.push(oci_store::testing::from_manifest(&m));
    (img, diff_ids)
}

/// Loads a skopeo `dir:` copy (manifest.json and blobs named by their hex digests) into
/// memory, the manifest tagged `tag` with `media_type`; returns its descriptor.
async fn load_dir(dir: &Path, store: &MemoryStore, tag: &str, media_type: &str) -> Descriptor {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
            let data = read(&e.path());
            store
                .push_bytes(
                    &Descriptor::new("application/octet-stream", d, data.len() as u64),
                    data,
                )
                .await
                .unwrap();
        }
    }
    let raw = read(&dir.join("manifest.json"));
    let desc = Descriptor::new(
        media_type,
        oci_store::Algorithm::Sha256.hash(&raw),
        raw.len() as u64,
    );
    store.push_bytes(&desc, raw).await.unwrap();
    store.tag(&desc, tag).await.unwrap();
    desc
}

fn config_of(v: &[u8]) -> serde_json::Value {
    serde_json::from_slice(v).unwrap()
}

/// The config of the image tagged `tag` in the layout at `dir`.
async fn layout_config(dir: &Path, tag: &str) -> (Vec<u8>, Descriptor) {
    let l = LayoutStore::open(dir).await.unwrap();
    let root = l.resolve(tag).await.unwrap();
    let m = l.fetch_manifest(&root).await.unwrap();
    let c = m.config().unwrap().clone();
    (l.fetch_bytes(&c, 1 << 20).await.unwrap().to_vec(), root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema1_from_the_registry_converts_as_skopeo_converts_it() {
    let reg = Schema1Registry::start();
    let t = TempDir::new("schema1");
    let (img, diff_ids) = image_with_empty_history(50);
    let src_layout = t.path().join("src");
    let l = LayoutStore::open_with(&src_layout, &LayoutOptions::create())
        .await
        .unwrap();
    push_all(&l, &img).await;
    l.tag(img.root(), "v1").await.unwrap();
    drop(l);

    // skopeo makes the schema 1 image and the registry stores it.
    let remote = format!("docker://{}/legacy/app:v1", reg.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s1",
        &format!("oci:{}:v1", p(&src_layout)),
        &remote,
    ]);
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &remote]);
    let served = Schema1::parse(raw.clone()).expect("the registry serves schema 1");
    assert!(served.is_signed(), "distribution signs what it serves");
    // Registries name a signed manifest by its payload's digest, as skopeo does.
    let inspect: serde_json::Value =
        serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", &remote])).unwrap();
    assert_eq!(
        inspect["Digest"].as_str().unwrap(),
        served.digest().as_str()
    );
    assert_eq!(served.layers().iter().filter(|l| l.throwaway).count(), 1);

    // The image as served, into memory (through skopeo's dir: copy, which keeps the bytes).
    let dir = t.path().join("served");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &remote,
        &format!("dir:{}", p(&dir)),
    ]);
    let src = MemoryStore::new();
    let desc = load_dir(&dir, &src, "v1", mt::DOCKER_MANIFEST_V1_SIGNED).await;

    // Without the option: the clear schema 1 error, nothing copied.
    let refused = MemoryStore::new();
    let e = copy(&src, "v1", &refused, None, &CopyOptions::default())
        .await
        .unwrap_err();
    let chain = oci_store::error_chain(&e);
    assert!(chain.contains("Docker schema 1"), "{chain}");
    assert!(refused.tags().await.unwrap().is_empty());

    // skopeo's conversions of the same image, from the registry.
    let skopeo_v2s2 = t.path().join("skopeo-v2s2");
    let skopeo_oci = t.path().join("skopeo-oci");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--format",
        "v2s2",
        &remote,
        &format!("oci:{}:v1", p(&skopeo_v2s2)),
    ]);
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--format",
        "oci",
        &remote,
        &format!("oci:{}:v1", p(&skopeo_oci)),
    ]);

    for (flavor, theirs, name) in [
        (Flavor::Docker, &skopeo_v2s2, "ours-v2s2"),
        (Flavor::Oci, &skopeo_oci, "ours-oci"),
    ] {
        let dst_dir = t.path().join(name);
        let dst = LayoutStore::open_with(&dst_dir, &LayoutOptions::create())
            .await
            .unwrap();
        let options = CopyOptions::default().with_schema1_conversion(Some(flavor));
        let report = copy_leased(&src, "v1", &dst, Some("v1"), &options)
            .await
            .unwrap();
        assert_eq!(report.conversions.len(), 1, "{report:#}");
        let c = &report.conversions[0];
        assert_eq!(c.source.digest, desc.digest);
        assert_ne!(c.result.digest, desc.digest);
        assert!(c.reason.contains("schema 1"), "{}", c.reason);
        assert!(format!("{report:#}").contains("converted"), "{report:#}");
        let f = dst.fsck(&FsckOptions::default()).await.unwrap();
        assert!(f.is_clean(), "{f:?}");

        let (ours, our_root) = layout_config(&dst_dir, "v1").await;
        let (skopeos, their_root) = layout_config(theirs, "v1").await;
        let (a, b) = (config_of(&ours), config_of(&skopeos));
        assert_eq!(a["rootfs"], b["rootfs"], "{name}: diff IDs");
        assert_eq!(a["history"], b["history"], "{name}: history");
        let ids: Vec<String> = diff_ids.iter().map(|d| d.to_string()).collect();
        assert_eq!(config_diff_ids(&ours), ids, "{name}: the original diff IDs");
        assert_eq!(a["history"].as_array().unwrap().len(), 3);
        assert_eq!(a["history"][1]["empty_layer"], true);
        assert_eq!(a["config"]["Env"], serde_json::json!(["A=1 & <b>"]));
        if flavor == Flavor::Docker {
            // The same bytes as skopeo's: same configuration and manifest digests.
            assert_eq!(ours, skopeos, "{name}: configuration bytes");
            assert_eq!(
                our_root.digest, their_root.digest,
                "{name}: manifest digest"
            );
        }
        // Throwaway layers are not in the result.
        let m = dst.fetch_manifest(&our_root).await.unwrap();
        assert_eq!(m.layers().len(), 2);
    }

    // By digest too (the signed bytes' own digest in this store).
    let dst = MemoryStore::new();
    let options = CopyOptions::default().with_schema1_conversion(Some(Flavor::Docker));
    let r = copy(
        &src,
        desc.digest.as_str(),
        &dst,
        Some("by-digest"),
        &options,
    )
    .await
    .unwrap();
    assert_eq!(r.conversions.len(), 1);
    // Refused for the same reason without the option.
    let e = copy(
        &src,
        desc.digest.as_str(),
        &MemoryStore::new(),
        Some("x"),
        &CopyOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(oci_store::error_chain(&e).contains("Docker schema 1"));
}
