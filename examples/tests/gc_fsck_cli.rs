//! The `gc` and `fsck` examples as a user runs them on an OCI layout: dry run, collection,
//! a clean check, corruption found (exit 1), repaired, then reported missing; bad command lines
//! (exit 2) and a directory that is not a layout (exit 1 / 3).
//!
//! The binaries are found next to the test executable (`target/<profile>/examples/NAME`),
//! built by `cargo test` before the tests run.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use bytes::Bytes;
use oci_manifest::build::ImageManifestBuilder;
use oci_manifest::{Descriptor, media_types};
use oci_store::{LayoutOptions, LayoutStore, ReadStore, TagStore, WriteStore};

fn run(name: &str, args: &[&str]) -> (i32, String, String) {
    let out: Output = Command::new(common::example(name))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn blob(mt: &str, data: &'static [u8]) -> (Descriptor, Bytes) {
    let data = Bytes::from_static(data);
    (
        Descriptor::new(
            mt,
            oci_digest::Algorithm::Sha256.hash(&data),
            data.len() as u64,
        ),
        data,
    )
}

#[test]
fn gc_and_fsck_on_a_layout() {
    let dir = std::env::temp_dir().join(format!("oci-examples-gc-fsck-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (layer, stray, store) = rt.block_on(async {
        let store = LayoutStore::open_with(&dir, &LayoutOptions::create())
            .await
            .unwrap();
        let layer = blob(media_types::OCI_LAYER_GZIP, b"layer bytes");
        let config = blob(media_types::OCI_CONFIG, b"{}");
        let m = ImageManifestBuilder::oci(config.0.clone())
            .layer(layer.0.clone())
            .build()
            .unwrap();
        for (d, b) in [&layer, &config, &(m.descriptor(), m.raw().clone())] {
            store.push_bytes(d, b.clone()).await.unwrap();
        }
        store.tag(&m.descriptor(), "t").await.unwrap();
        let stray = blob("application/octet-stream", b"nobody refers to me");
        store.push_bytes(&stray.0, stray.1.clone()).await.unwrap();
        (layer.0, stray.0, store)
    });
    let oci = format!("oci:{}", dir.display());

    let (code, out, _) = run("gc", &[&oci, "--dry-run", "--min-age", "0"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("would remove {}", stray.digest)),
        "{out}"
    );
    assert!(rt.block_on(store.exists(&stray.digest)).unwrap());
    let (code, out, _) = run("gc", &[&oci]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("kept {}", stray.digest)),
        "young content is kept: {out}"
    );
    let (code, out, _) = run("gc", &[&oci, "--min-age", "0"]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("removed {}", stray.digest)), "{out}");
    assert!(!rt.block_on(store.exists(&stray.digest)).unwrap());

    let (code, out, _) = run("fsck", &[&oci]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("3 blobs") && out.contains("0 corrupt, 0 missing, 0 wrong size"),
        "{out}"
    );

    std::fs::write(store.blob_path(&layer.digest), b"layer bytez").unwrap();
    let (code, out, _) = run("fsck", &[&oci]);
    assert_eq!(code, 1);
    assert!(out.contains(&format!("corrupt {}", layer.digest)), "{out}");
    let (code, out, _) = run("fsck", &[&oci, "--repair"]);
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!("removed corrupt {}", layer.digest)),
        "{out}"
    );
    assert!(!store.blob_path(&layer.digest).exists());
    let (code, out, _) = run("fsck", &[&oci]);
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!(
            "missing {}, referred to by manifest",
            layer.digest
        )),
        "{out}"
    );

    // Command line and input errors.
    assert_eq!(run("gc", &[dir.to_str().unwrap()]).0, 2);
    assert_eq!(run("gc", &[&oci, "--min-age", "soon"]).0, 2);
    assert_eq!(run("fsck", &[]).0, 2);
    let nowhere = format!("oci:{}", Path::new(&dir).join("nowhere").display());
    let (code, _, err) = run("fsck", &[&nowhere]);
    assert_eq!(code, 3);
    assert!(err.contains("not an OCI image layout"), "{err}");
    let (code, _, err) = run("gc", &[&nowhere]);
    assert_eq!(code, 1);
    assert!(err.contains("not an OCI image layout"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
