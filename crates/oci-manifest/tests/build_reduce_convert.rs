//! Builders, index reduction and Docker <-> OCI conversion.

use std::collections::HashMap;
use std::path::PathBuf;

use oci_manifest::build::{EMPTY_JSON, ImageManifestBuilder, IndexBuilder, empty_config};
use oci_manifest::convert::{Flavor, convert, convert_index};
use oci_manifest::platform::{self, parse};
use oci_manifest::{
    Algorithm, Descriptor, Manifest, ManifestError, ManifestKind, Platform, media_types as mt,
    reduce,
};

fn fixture(name: &str) -> Manifest {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    Manifest::parse(std::fs::read(&path).unwrap(), None).unwrap()
}

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

#[test]
fn builder_output_is_exact_compact_and_sorted() {
    let config = Descriptor::new(mt::OCI_CONFIG, D1.parse().unwrap(), 7);
    let layer = Descriptor::new(mt::OCI_LAYER_ZSTD, D1.parse().unwrap(), 9)
        .with_annotation("z", "1")
        .with_annotation("a", "2");
    let m = ImageManifestBuilder::oci(config)
        .layer(layer)
        .annotation("org.b", "x")
        .annotation("org.a", "y")
        .build()
        .unwrap();
    let want = format!(
        concat!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
            r#""config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{d}","size":7}},"#,
            r#""layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"{d}","size":9,"annotations":{{"a":"2","z":"1"}}}}],"#,
            r#""annotations":{{"org.a":"y","org.b":"x"}}}}"#
        ),
        d = D1
    );
    assert_eq!(std::str::from_utf8(m.raw()).unwrap(), want);
    assert_eq!(m.digest(), &Algorithm::Sha256.hash(want.as_bytes()));
}

#[test]
fn builders_enforce_the_rules() {
    let docker_cfg = Descriptor::of(mt::DOCKER_CONFIG, b"{}");
    let subject = Descriptor::of(mt::OCI_MANIFEST, b"s");
    let build_err = |r: Result<Manifest, ManifestError>| match r {
        Err(ManifestError::Build { reason, .. }) => reason,
        other => panic!("{other:?}"),
    };
    assert!(
        build_err(
            ImageManifestBuilder::docker(docker_cfg.clone())
                .subject(subject.clone())
                .build()
        )
        .contains("subject")
    );
    assert!(
        build_err(
            ImageManifestBuilder::docker(docker_cfg.clone())
                .artifact_type("a/b")
                .build()
        )
        .contains("artifactType")
    );
    assert!(
        build_err(ImageManifestBuilder::docker(Descriptor::of(mt::OCI_CONFIG, b"{}")).build())
            .contains(mt::DOCKER_CONFIG)
    );
    assert!(build_err(ImageManifestBuilder::oci(empty_config()).build()).contains("artifactType"));
    assert!(
        build_err(
            ImageManifestBuilder::oci(docker_cfg.clone())
                .annotation("", "x")
                .build()
        )
        .contains("empty")
    );
    let no_platform = Descriptor::of(mt::DOCKER_MANIFEST, b"m");
    assert!(
        build_err(IndexBuilder::docker().manifest(no_platform.clone()).build())
            .contains("platform")
    );
    let not_manifest =
        Descriptor::of(mt::DOCKER_LAYER_GZIP, b"l").with_platform(Platform::new("linux", "amd64"));
    assert!(
        build_err(IndexBuilder::docker().manifest(not_manifest).build()).contains("not a manifest")
    );
    assert!(build_err(IndexBuilder::docker().subject(subject).build()).contains("subject"));
    assert!(IndexBuilder::of_kind(ManifestKind::OciManifest).is_err());
    // Invalid descriptors are caught by the same validation as received bytes.
    let bad = Descriptor::of("not-a-type", b"x");
    assert!(matches!(
        ImageManifestBuilder::oci(docker_cfg).layer(bad).build(),
        Err(ManifestError::InvalidDescriptor { field, .. }) if field == "layers[0]"
    ));
}

#[test]
fn artifact_with_subject() {
    let subject = fixture("docker-manifest.json").descriptor();
    let sbom = Descriptor::of("application/spdx+json", b"{\"spdxVersion\":\"SPDX-2.3\"}");
    let m = ImageManifestBuilder::artifact("application/spdx+json")
        .layer(sbom.clone())
        .subject(subject.clone())
        .annotation("org.opencontainers.image.created", "2024-01-01T00:00:00Z")
        .build()
        .unwrap();
    assert_eq!(m.children(), &[subject.clone(), empty_config(), sbom]);
    assert_eq!(
        m.config().unwrap().embedded_data().unwrap().unwrap(),
        EMPTY_JSON
    );
    assert_eq!(
        m.referrer_descriptor().artifact_type.as_deref(),
        Some("application/spdx+json")
    );
    // Deterministic.
    let again = ImageManifestBuilder::artifact("application/spdx+json")
        .annotation("org.opencontainers.image.created", "2024-01-01T00:00:00Z")
        .subject(subject)
        .layer(Descriptor::of(
            "application/spdx+json",
            b"{\"spdxVersion\":\"SPDX-2.3\"}",
        ))
        .build()
        .unwrap();
    assert_eq!(again.raw(), m.raw());
}

#[test]
fn reduce_keeps_matching_entries_their_attestations_and_annotations() {
    let index = fixture("oci-index-attestations.json");
    let r = reduce(&index, &[parse("linux/arm64").unwrap()]).unwrap();
    let arm = &index.manifests()[1];
    let arm_att = &index.manifests()[3];
    assert_eq!(r.index.manifests(), &[arm.clone(), arm_att.clone()]);
    assert_eq!(r.references, r.index.children());
    assert_eq!(
        r.dropped,
        vec![index.manifests()[0].clone(), index.manifests()[2].clone()]
    );
    assert_eq!(r.index.annotations(), index.annotations());
    assert_eq!(r.index.kind(), ManifestKind::OciIndex);
    assert_ne!(r.index.digest(), index.digest());
    // The reduced index is a normal index: select works on it.
    assert_eq!(
        platform::select(&r.index, &parse("linux/arm64").unwrap()).unwrap(),
        arm
    );

    // Both platforms: the same entries in the same order (a new serialisation, though).
    let both = reduce(
        &index,
        &[
            parse("linux/amd64").unwrap(),
            parse("linux/aarch64").unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(both.index.manifests(), index.manifests());
    assert!(both.dropped.is_empty());
}

#[test]
fn reduce_docker_list_stays_docker_and_matches_strictly() {
    let list = fixture("docker-hub-manifest-list.json");
    let r = reduce(
        &list,
        &[
            parse("linux/arm64").unwrap(),
            parse("linux/arm/v7").unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(r.index.kind(), ManifestKind::DockerManifestList);
    let kept: Vec<String> = r
        .index
        .manifests()
        .iter()
        .map(|d| d.platform.as_ref().unwrap().to_string())
        .collect();
    // Index order, and arm/v6 is not kept for arm/v7 (strict, unlike select).
    assert_eq!(kept, ["linux/arm/v7", "linux/arm64/v8"]);
    // Nothing matches: an error listing what there is, never an empty index.
    match reduce(&list, &[parse("windows/amd64").unwrap()]) {
        Err(ManifestError::NoMatchingPlatform { available, .. }) => assert_eq!(available.len(), 8),
        other => panic!("{other:?}"),
    }
    // Not an index.
    assert!(matches!(
        reduce(
            &fixture("docker-manifest.json"),
            &[parse("linux/amd64").unwrap()]
        ),
        Err(ManifestError::Build { .. })
    ));
}

#[test]
fn reduce_windows_by_os_version() {
    let list = fixture("windows-manifest-list.json");
    let r = reduce(&list, &[parse("windows(10.0.17763)/amd64").unwrap()]).unwrap();
    let versions: Vec<&str> = r
        .index
        .manifests()
        .iter()
        .map(|d| d.platform.as_ref().unwrap().os_version.as_deref().unwrap())
        .collect();
    assert_eq!(versions, ["10.0.17763.5458", "10.0.17763.5329"]);
}

#[test]
fn docker_to_oci_and_back() {
    let docker = fixture("docker-manifest.json");
    let oci = convert(&docker, Flavor::Oci).unwrap();
    assert!(oci.dropped.is_empty());
    let m = &oci.manifest;
    assert_eq!(m.kind(), ManifestKind::OciManifest);
    assert_eq!(m.config().unwrap().media_type, mt::OCI_CONFIG);
    assert!(
        m.layers()
            .iter()
            .all(|l| l.media_type == mt::OCI_LAYER_GZIP)
    );
    // Same blobs.
    let digests = |m: &Manifest| {
        m.children()
            .iter()
            .map(|d| (d.digest.clone(), d.size))
            .collect::<Vec<_>>()
    };
    assert_eq!(digests(m), digests(&docker));
    assert_ne!(m.digest(), docker.digest());
    let back = convert(m, Flavor::Docker).unwrap().manifest;
    assert_eq!(back.kind(), ManifestKind::DockerManifest);
    assert_eq!(back.children(), docker.children());
    // Same flavor: the very same bytes.
    assert_eq!(
        convert(&docker, Flavor::Docker).unwrap().manifest.raw(),
        docker.raw()
    );
}

#[test]
fn layer_types_including_foreign_and_zstd() {
    let win = fixture("windows-manifest.json");
    let oci = convert(&win, Flavor::Oci).unwrap().manifest;
    assert_eq!(oci.layers()[0].media_type, mt::OCI_LAYER_NONDIST_GZIP);
    assert_eq!(oci.layers()[0].urls, win.layers()[0].urls);
    assert_eq!(oci.layers()[1].media_type, mt::OCI_LAYER_GZIP);

    let unknown = fixture("unknown-fields.json");
    let docker = convert(&unknown, Flavor::Docker).unwrap();
    assert_eq!(
        docker.manifest.layers()[0].media_type,
        mt::DOCKER_LAYER_ZSTD
    );
    assert_eq!(docker.dropped, ["annotations"]);

    let nondist_zstd = ImageManifestBuilder::oci(Descriptor::of(mt::OCI_CONFIG, b"{}"))
        .layer(Descriptor::of(mt::OCI_LAYER_NONDIST_ZSTD, b"l"))
        .build()
        .unwrap();
    assert!(
        matches!(convert(&nondist_zstd, Flavor::Docker), Err(ManifestError::Convert { reason, .. }) if reason.contains("layers[0]"))
    );
    // Artifacts have no Docker form.
    assert!(convert(&fixture("helm-chart.json"), Flavor::Docker).is_err());
    assert!(convert(&fixture("sigstore-bundle-referrer.json"), Flavor::Docker).is_err());
    // Helm to OCI: already OCI.
    let helm = fixture("helm-chart.json");
    assert_eq!(
        convert(&helm, Flavor::Oci).unwrap().manifest.raw(),
        helm.raw()
    );
}

#[test]
fn index_conversion_needs_converted_children() {
    let list = fixture("docker-hub-manifest-list.json");
    assert!(matches!(
        convert(&list, Flavor::Oci),
        Err(ManifestError::Convert { .. })
    ));
    match convert_index(&list, Flavor::Oci, &HashMap::new()) {
        Err(ManifestError::Convert { reason, .. }) => {
            assert!(reason.contains("manifests[0]"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let converted: HashMap<_, _> = list
        .manifests()
        .iter()
        .map(|d| {
            let new = Descriptor::of(mt::OCI_MANIFEST, d.digest.as_str().as_bytes());
            (d.digest.clone(), new)
        })
        .collect();
    let oci = convert_index(&list, Flavor::Oci, &converted)
        .unwrap()
        .manifest;
    assert_eq!(oci.kind(), ManifestKind::OciIndex);
    for (old, new) in list.manifests().iter().zip(oci.manifests()) {
        assert_eq!(new.platform, old.platform);
        assert_eq!(
            new,
            &Descriptor {
                platform: old.platform.clone(),
                ..converted[&old.digest].clone()
            }
        );
    }
    // OCI index with attestations to Docker: the annotations of the index are dropped and
    // reported; entries (with their own annotations) all need converting.
    let idx = fixture("oci-index-attestations.json");
    let back: HashMap<_, _> = idx
        .manifests()
        .iter()
        .map(|d| {
            (
                d.digest.clone(),
                Descriptor::of(mt::DOCKER_MANIFEST, d.digest.as_str().as_bytes()),
            )
        })
        .collect();
    let docker = convert_index(&idx, Flavor::Docker, &back).unwrap();
    assert_eq!(docker.dropped, ["annotations"]);
    assert_eq!(docker.manifest.kind(), ManifestKind::DockerManifestList);
}
