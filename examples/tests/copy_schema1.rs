//! Docker schema 1 straight from a registry: skopeo pushes the sample's amd64 image as a signed
//! schema 1 manifest to the real docker-registry (distribution 2.8 with `compatibility: schema1:
//! enabled: true`, without which it refuses schema 1 pushes); the client reads it (named by
//! its JWS payload's digest, as the registry and skopeo name it, although the registry signs
//! it again on every GET); the copy example refuses it clearly without `--convert-schema1` and
//! converts it with the option into a layout whose config has the diff IDs and history of
//! skopeo's own conversion of the same image.
//!
//! Needs `docker-registry` and `skopeo`: `apt-get install docker-registry skopeo`.

mod common;
#[path = "../../crates/oci-distribution-client/tests/common/registry.rs"]
mod registry;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_distribution_client::{Client, ClientConfig};
use oci_examples::sample;
use oci_manifest::media_types;
use oci_store::{LayoutStore, ReadStore, TagStore};

/// A docker-registry that stores schema 1 manifests, killed on drop.
struct Schema1Registry {
    addr: String,
    dir: PathBuf,
    child: Child,
}

impl Schema1Registry {
    fn start() -> Schema1Registry {
        let bin = registry::require_tool("docker-registry");
        let dir = registry::temp_dir("examples-schema1-registry");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  \
             filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n  secret: schema1\n\
             compatibility:\n  schema1:\n    enabled: true\n",
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
            .expect("docker-registry starts");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if registry::http_status(&addr, "/v2/").is_ok_and(|c| c == 200) {
                return Schema1Registry { addr, dir, child };
            }
            if let Ok(Some(status)) = child.try_wait() {
                let _ = child.wait();
                panic!(
                    "docker-registry exited ({status}): {}",
                    std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("docker-registry did not answer on {addr}");
    }
}

impl Drop for Schema1Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new(registry::require_tool("skopeo"))
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn copy_example(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(common::example("copy"))
        .args(["--quiet", "--plain-http"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The config of the image tagged `tag` in the layout at `dir`, as JSON.
async fn layout_config(dir: &Path, tag: &str) -> serde_json::Value {
    let l = LayoutStore::open(dir).await.unwrap();
    let root = l.resolve(tag).await.unwrap();
    let m = l.fetch_manifest(&root).await.unwrap();
    let c = m.config().unwrap().clone();
    serde_json::from_slice(&l.fetch_bytes(&c, 1 << 20).await.unwrap()).unwrap()
}

#[test]
fn a_schema1_image_from_the_registry_is_refused_or_converted_as_skopeo_converts_it() {
    let reg = Schema1Registry::start();
    let t = common::TempDir::new("copy-schema1");
    let d = t.path();
    // The sample's amd64 image alone (skopeo writes schema 1 for one platform).
    let src = d.join("src");
    let (code, out, err) = copy_example(&[
        "--platform",
        "linux/amd64",
        &format!("oci:{}:{}", sample::committed_path().display(), sample::TAG),
        &format!("oci:{}:v1", src.display()),
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let remote = format!("docker://{}/legacy/app:v1", reg.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s1",
        &format!("oci:{}:v1", src.display()),
        &remote,
    ]);
    let inspect: serde_json::Value =
        serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", &remote])).unwrap();
    let skopeo_digest = inspect["Digest"].as_str().unwrap().to_owned();

    // The client reads it: resolved and fetched as signed schema 1, named by the payload's
    // digest (twice: the registry signs it again each time, the digest stays).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut config = ClientConfig::default().with_plain_http(reg.addr.clone());
        config.docker_config = false;
        let repo = Client::new(config)
            .unwrap()
            .repository_by_name(&reg.addr, "legacy/app")
            .unwrap();
        let resolved = repo.resolve("v1").await.unwrap();
        assert_eq!(resolved.media_type, media_types::DOCKER_MANIFEST_V1_SIGNED);
        assert_eq!(resolved.digest.as_str(), skopeo_digest);
        for _ in 0..2 {
            let fetched = repo.fetch_manifest(&skopeo_digest).await.unwrap();
            assert_eq!(fetched.descriptor.digest.as_str(), skopeo_digest);
            let s1 = oci_manifest::schema1::Schema1::parse(fetched.bytes).unwrap();
            assert!(s1.is_signed());
            assert_eq!(s1.digest().as_str(), skopeo_digest);
        }
        // Through the store interface too (the size of a signed manifest is one signing's).
        let bytes = repo.fetch_bytes(&resolved, 1 << 20).await.unwrap();
        assert!(bytes.starts_with(b"{"));
    });

    // Without the option: a clear refusal naming the option, and no layout left behind.
    let ours = d.join("ours");
    let (code, out, err) = copy_example(&[&remote, &format!("oci:{}:v1", ours.display())]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("Docker schema 1"), "{err}");
    assert!(err.contains("--convert-schema1"), "{err}");
    assert!(!ours.exists(), "nothing written without the option");

    // With it: converted into the layout, the report says so.
    let (code, out, err) = copy_example(&[
        "--convert-schema1",
        &remote,
        &format!("oci:{}:v1", ours.display()),
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&format!("converted {skopeo_digest}")), "{out}");

    // skopeo's conversion of the same image from the registry.
    let theirs = d.join("skopeo");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--format",
        "oci",
        &remote,
        &format!("oci:{}:v1", theirs.display()),
    ]);
    let (a, b) = rt.block_on(async {
        (
            layout_config(&ours, "v1").await,
            layout_config(&theirs, "v1").await,
        )
    });
    assert_eq!(a["rootfs"], b["rootfs"], "diff IDs");
    assert_eq!(a["history"], b["history"], "history");
    // The diff IDs are the sample's own (computed from the layers as served), not empty.
    let ids = a["rootfs"]["diff_ids"].as_array().unwrap();
    assert!(!ids.is_empty(), "{a}");
    for id in ids {
        let hex = id.as_str().unwrap().strip_prefix("sha256:").unwrap();
        assert!(
            sample::committed_path()
                .join("blobs/sha256")
                .join(hex)
                .exists(),
            "{id} is the digest of one of the sample's uncompressed layers"
        );
    }
    assert_eq!(
        a["config"]["Cmd"],
        serde_json::json!(["/bin/cat", "/hello.txt"])
    );
}
