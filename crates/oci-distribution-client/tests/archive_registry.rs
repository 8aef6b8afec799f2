//! Archives and a registry, judged by skopeo: skopeo writes `docker-archive:` and
//! `oci-archive:` files of an image umoci made, we read them (`oci_store::ArchiveReader`) and
//! copy them into the real docker-registry, where `skopeo inspect` and `skopeo copy` read
//! them; and the other way, a copy from the registry into a docker-archive we write
//! (`oci_store::ArchiveWriter`) that skopeo reads into a layout our fsck finds clean.
//!
//! Needs `docker-registry`, `skopeo` and `umoci`: `apt-get install docker-registry skopeo
//! umoci jq apache2-utils`.

mod common;

use std::path::Path;
use std::process::Command;

use common::registry::{TestRegistry, require_tool, run, temp_dir};
use common::test_config;
use oci_distribution_client::{Client, Repository, media_types};
use oci_store::{
    ArchiveKind, ArchiveReader, ArchiveWriter, CopyOptions, FsckOptions, LayoutOptions,
    LayoutStore, ManagedStore, TagStore, copy,
};

fn repo(reg: &TestRegistry, name: &str) -> Repository {
    Client::new(test_config(&reg.addr))
        .expect("client")
        .repository_by_name(&reg.addr, name)
        .expect("repository")
}

fn skopeo(args: &[&str]) -> String {
    let bin = require_tool("skopeo");
    run(Command::new(bin).arg("--insecure-policy").args(args))
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// An OCI layout at `dir` with an image made by umoci (two layers), tagged `v1`.
fn umoci_image(dir: &Path) {
    let umoci = require_tool("umoci");
    let l = p(dir);
    run(Command::new(&umoci).args(["init", "--layout", &l]));
    run(Command::new(&umoci).args(["new", "--image", &format!("{l}:v1")]));
    for (i, body) in ["first layer\n", "second layer, a bit longer\n"]
        .iter()
        .enumerate()
    {
        let file = dir.with_extension(format!("file{i}"));
        std::fs::write(&file, body.repeat(1000)).expect("write file");
        run(Command::new(&umoci)
            .args(["insert", "--image", &format!("{l}:v1")])
            .arg(&file)
            .arg(format!("/file{i}")));
    }
}

/// The config digest and layer diff IDs of `reference` as skopeo sees them.
fn skopeo_facts(reference: &str) -> (String, Vec<String>) {
    let v: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--config",
        reference,
    ]))
    .expect("config JSON");
    let ids = v["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids")
        .iter()
        .map(|d| d.as_str().expect("string").to_owned())
        .collect();
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--config",
        "--raw",
        reference,
    ]);
    (
        oci_distribution_client::Algorithm::Sha256
            .hash(raw.as_bytes())
            .to_string(),
        ids,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_written_by_skopeo_are_copied_into_the_registry() {
    let reg = TestRegistry::start();
    let dir = temp_dir("archive-registry");
    let layout = dir.join("umoci");
    umoci_image(&layout);
    let (config, diff_ids) = skopeo_facts(&format!("oci:{}:v1", p(&layout)));
    assert_eq!(diff_ids.len(), 2);

    for (kind, name) in [(ArchiveKind::Docker, "docker"), (ArchiveKind::Oci, "oci")] {
        let archive = dir.join(format!("{name}.tar"));
        let reference = match kind {
            ArchiveKind::Docker => "app:v1",
            _ => "v1",
        };
        skopeo(&[
            "copy",
            &format!("oci:{}:v1", p(&layout)),
            &format!("{kind}:{}:{reference}", p(&archive)),
        ]);
        let r = ArchiveReader::open(&archive, kind)
            .await
            .expect("open archive");
        let dst = repo(&reg, &format!("from-{name}"));
        let report = copy(&r, reference, &dst, Some("v1"), &CopyOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{kind} -> registry: {e:#}"));
        assert!(report.is_complete(), "{report:#}");
        let remote = format!("docker://{}/from-{name}:v1", reg.addr);
        let (c, ids) = skopeo_facts(&remote);
        assert_eq!((c, ids), (config.clone(), diff_ids.clone()), "{kind}");
        let back = dir.join(format!("back-{name}"));
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &remote,
            &format!("oci:{}:v1", p(&back)),
        ]);
        let l = LayoutStore::open(&back).await.expect("layout");
        let f = l.fsck(&FsckOptions::default()).await.expect("fsck");
        assert!(f.is_clean(), "{f:?}");
        let root = dst.resolve("v1").await.expect("resolve");
        if kind == ArchiveKind::Docker {
            assert_eq!(root.media_type, media_types::DOCKER_MANIFEST);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_image_copied_into_our_docker_archive_is_read_by_skopeo() {
    let reg = TestRegistry::start();
    let dir = temp_dir("registry-archive");
    let layout = dir.join("umoci");
    umoci_image(&layout);
    let src_layout = LayoutStore::open_with(&layout, &LayoutOptions::default())
        .await
        .expect("layout");
    let src = repo(&reg, "team/app");
    copy(&src_layout, "v1", &src, Some("v1"), &CopyOptions::default())
        .await
        .expect("push");
    let (config, diff_ids) = skopeo_facts(&format!("docker://{}/team/app:v1", reg.addr));

    for kind in [ArchiveKind::Docker, ArchiveKind::Oci] {
        let archive = dir.join(format!("ours-{kind}.tar"));
        let w = ArchiveWriter::create(&archive, kind).await.expect("writer");
        let tag = match kind {
            ArchiveKind::Docker => "team/app:v1",
            _ => "v1",
        };
        copy(&src, "v1", &w, Some(tag), &CopyOptions::default())
            .await
            .unwrap_or_else(|e| panic!("registry -> {kind}: {e:#}"));
        w.finish().await.expect("finish");
        let reference = format!("{kind}:{}:{tag}", p(&archive));
        let (c, ids) = skopeo_facts(&reference);
        assert_eq!(ids, diff_ids, "{kind}");
        assert_eq!(c, config, "{kind}");
        let back = dir.join(format!("skopeo-{kind}"));
        skopeo(&["copy", &reference, &format!("oci:{}:v1", p(&back))]);
        let l = LayoutStore::open(&back).await.expect("layout");
        let f = l.fsck(&FsckOptions::default()).await.expect("fsck");
        assert!(f.is_clean(), "{f:?}");
        assert!(l.tags().await.expect("tags").contains(&"v1".to_owned()));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
