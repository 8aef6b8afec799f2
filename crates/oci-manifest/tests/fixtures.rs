//! Manifests shaped like real ones: each parses, keeps its exact bytes, and "pushing" the raw
//! bytes gives the same digest.

use std::path::PathBuf;

use oci_digest::Digester;
use oci_manifest::platform::{self, parse, select};
use oci_manifest::{Algorithm, Manifest, ManifestError, ManifestKind, media_types as mt};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Parses a fixture and checks the round trip: raw bytes unchanged, digest = SHA-256 of the
/// file computed independently (streaming, in odd-sized chunks), descriptor consistent.
fn parse_fixture(name: &str, content_type: Option<&str>) -> Manifest {
    let bytes = fixture(name);
    let m = Manifest::parse(bytes.clone(), content_type).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        m.raw().as_ref(),
        bytes.as_slice(),
        "{name}: raw bytes changed"
    );
    let mut d = Digester::new(Algorithm::Sha256);
    for chunk in bytes.chunks(7) {
        d.update(chunk);
    }
    let independent = d.finalize();
    assert_eq!(m.digest(), &independent, "{name}: digest");
    assert_eq!(m.size(), bytes.len() as u64);
    let desc = m.descriptor();
    assert_eq!(
        (desc.media_type.as_str(), &desc.digest, desc.size),
        (m.media_type(), m.digest(), m.size())
    );
    // Pushing the raw bytes to a peer that checks against the descriptor succeeds.
    let again = Manifest::parse_verified(m.raw().clone(), None, &desc, &Default::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(again, m);
    m
}

#[test]
fn docker_hub_manifest_list() {
    let m = parse_fixture(
        "docker-hub-manifest-list.json",
        Some(mt::DOCKER_MANIFEST_LIST),
    );
    assert_eq!(m.kind(), ManifestKind::DockerManifestList);
    assert!(m.is_index() && m.config().is_none() && m.layers().is_empty());
    assert_eq!(m.manifests().len(), 8);
    assert_eq!(m.children(), m.manifests());
    assert!(
        m.manifests()
            .iter()
            .all(|d| d.is_manifest() && !d.is_index())
    );
    let arm64 = select(&m, &parse("linux/arm64").unwrap()).unwrap();
    assert_eq!(
        arm64.platform.as_ref().unwrap().variant.as_deref(),
        Some("v8")
    );
    let v7 = select(&m, &parse("linux/armhf").unwrap()).unwrap();
    assert_eq!(v7.platform.as_ref().unwrap().variant.as_deref(), Some("v7"));
}

#[test]
fn docker_manifest_three_layers() {
    let m = parse_fixture("docker-manifest.json", None);
    assert_eq!(m.kind(), ManifestKind::DockerManifest);
    assert_eq!(m.config().unwrap().media_type, mt::DOCKER_CONFIG);
    assert_eq!(m.layers().len(), 3);
    assert_eq!(m.children().len(), 4);
    assert_eq!(&m.children()[0], m.config().unwrap());
    assert_eq!(&m.children()[1..], m.layers());
    assert!(m.subject().is_none() && m.manifests().is_empty());
}

#[test]
fn oci_index_with_attestations() {
    let m = parse_fixture("oci-index-attestations.json", Some(mt::OCI_INDEX));
    assert_eq!(m.kind(), ManifestKind::OciIndex);
    assert_eq!(
        m.annotation("org.opencontainers.image.created"),
        Some("2024-05-02T10:11:12Z")
    );
    assert_eq!(m.manifests().len(), 4);
    let atts: Vec<_> = m
        .manifests()
        .iter()
        .filter(|d| platform::is_attestation(d))
        .collect();
    assert_eq!(atts.len(), 2);
    let available: Vec<String> = platform::available(&m)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(available, ["linux/amd64", "linux/arm64"]);
    // unknown/unknown is never chosen, even when asked for or when nothing else fits.
    let err = select(&m, &parse("unknown/unknown").unwrap()).unwrap_err();
    assert!(
        matches!(err, ManifestError::NoMatchingPlatform { .. }),
        "{err}"
    );
    let err = select(&m, &parse("linux/s390x").unwrap()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("linux/s390x") && text.contains("available: linux/amd64, linux/arm64"),
        "{text}"
    );
}

#[test]
fn windows_manifest_list_prefers_the_same_build() {
    let m = parse_fixture("windows-manifest-list.json", None);
    let pick = |host: &str| {
        select(&m, &parse(host).unwrap())
            .map(|d| d.platform.clone().unwrap().os_version.unwrap())
            .map_err(|e| e.to_string())
    };
    // LTSC 2019 host: exactly its build, newest revision.
    assert_eq!(
        pick("windows(10.0.17763.1)/amd64").unwrap(),
        "10.0.17763.5458"
    );
    // LTSC 2022 host: its own build.
    assert_eq!(
        pick("windows(10.0.20348.100)/amd64").unwrap(),
        "10.0.20348.2322"
    );
    // 23H2 host: its own build first.
    assert_eq!(
        pick("windows(10.0.25398.1)/amd64").unwrap(),
        "10.0.25398.709"
    );
    // A host newer than any image, after LTSC 2022: the newest compatible build.
    assert_eq!(
        pick("windows(10.0.26100.1)/amd64").unwrap(),
        "10.0.25398.709"
    );
    // An older host (1903) runs none of them.
    assert!(pick("windows(10.0.18362.1)/amd64").is_err());
    // No os.version wanted: any build, the newest first.
    assert_eq!(pick("windows/amd64").unwrap(), "10.0.25398.709");
    assert!(
        pick("linux/amd64")
            .unwrap_err()
            .contains("windows(10.0.17763.5458)/amd64")
    );
}

#[test]
fn windows_manifest_with_foreign_layer() {
    let m = parse_fixture("windows-manifest.json", Some(mt::DOCKER_MANIFEST));
    let base = &m.layers()[0];
    assert!(mt::is_non_distributable(&base.media_type));
    assert_eq!(base.urls.as_ref().unwrap().len(), 1);
    assert_eq!(base.size, 1_501_433_013);
}

#[test]
fn helm_chart_artifact() {
    // Helm pushes without mediaType; the registry serves it as an OCI manifest.
    let m = parse_fixture("helm-chart.json", Some(mt::OCI_MANIFEST));
    assert_eq!(m.kind(), ManifestKind::OciManifest);
    assert_eq!(
        m.config().unwrap().media_type,
        "application/vnd.cncf.helm.config.v1+json"
    );
    assert_eq!(
        m.referrer_descriptor().artifact_type.as_deref(),
        Some("application/vnd.cncf.helm.config.v1+json")
    );
    // And with no Content-Type at all the shape decides.
    let m2 = Manifest::parse(m.raw().clone(), None).unwrap();
    assert_eq!(m2.media_type(), mt::OCI_MANIFEST);
}

#[test]
fn cosign_signature() {
    let m = parse_fixture("cosign-signature.json", None);
    let sig = &m.layers()[0];
    assert_eq!(
        sig.media_type,
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    assert!(
        sig.annotation("dev.cosignproject.cosign/signature")
            .unwrap()
            .starts_with("MEUCIQ")
    );
}

#[test]
fn sigstore_bundle_referrer_with_subject_and_embedded_config() {
    let m = parse_fixture("sigstore-bundle-referrer.json", None);
    assert_eq!(
        m.artifact_type(),
        Some("application/vnd.dev.sigstore.bundle.v0.3+json")
    );
    let subject = m.subject().unwrap();
    assert!(subject.is_index());
    // Fixed order: subject, config, layers.
    assert_eq!(&m.children()[0], subject);
    assert_eq!(&m.children()[1], m.config().unwrap());
    assert_eq!(&m.children()[2..], m.layers());
    assert_eq!(m.config().unwrap().embedded_data().unwrap().unwrap(), b"{}");
    let names: Vec<String> = m.named_children().map(|(n, _)| n).collect();
    assert_eq!(names, ["subject", "config", "layers[0]"]);
    let r = m.referrer_descriptor();
    assert_eq!(r.artifact_type.as_deref(), m.artifact_type());
    assert_eq!(r.annotations.as_ref(), m.annotations());
}

#[test]
fn nested_index() {
    let m = parse_fixture("nested-index.json", None);
    let kinds: Vec<(bool, bool)> = m
        .manifests()
        .iter()
        .map(|d| (d.is_manifest(), d.is_index()))
        .collect();
    assert_eq!(kinds, [(true, true), (true, true), (true, false)]);
    // An entry without a platform is not chosen while a platform entry fits...
    let amd64v3 = select(&m, &parse("linux/amd64/v3").unwrap()).unwrap();
    assert_eq!(amd64v3.digest, m.manifests()[2].digest);
    // ...but is the fallback when none does.
    let other = select(&m, &parse("linux/s390x").unwrap()).unwrap();
    assert_eq!(other.digest, m.manifests()[0].digest);
}

#[test]
fn unknown_fields_survive_byte_for_byte() {
    let m = parse_fixture("unknown-fields.json", None);
    let raw = std::str::from_utf8(m.raw()).unwrap();
    for kept in [
        "\"x-vendor-build\"",
        "\"futureField\": [ ]",
        "\"x-extra\": true",
        "caf\\u00e9",
        "2.50",
        "\"b\": \"2\", \"a\": \"1\"",
    ] {
        assert!(raw.contains(kept), "{kept} lost");
    }
    assert_eq!(
        m.layers()[0].annotation("org.opencontainers.image.title"),
        Some("café – ünïcødé \"quoted\"")
    );
    // Re-serialising with oci-spec, as tools that do not keep bytes do, gives another digest:
    // the reason this crate keeps the raw bytes.
    let spec: oci_spec::image::ImageManifest = serde_json::from_slice(m.raw()).unwrap();
    let reserialised = serde_json::to_vec(&spec).unwrap();
    assert_ne!(Algorithm::Sha256.hash(&reserialised), *m.digest());
}

#[test]
fn oci_manifest_without_media_type_falls_back() {
    let raw = fixture("oci-manifest-no-media-type.json");
    // Content-Type decides when the document is silent...
    let m = parse_fixture("oci-manifest-no-media-type.json", Some(mt::OCI_MANIFEST));
    assert_eq!(m.kind(), ManifestKind::OciManifest);
    // ...and a generic Content-Type leaves it to the shape.
    let m = Manifest::parse(raw.clone(), Some("application/json; charset=utf-8")).unwrap();
    assert_eq!(m.media_type(), mt::OCI_MANIFEST);
    // A manifest Content-Type that contradicts the shape is an error.
    let err = Manifest::parse(raw, Some(mt::OCI_INDEX)).unwrap_err();
    assert!(matches!(err, ManifestError::Shape { .. }), "{err}");
}

#[test]
fn schema1_is_recognised_and_refused() {
    for (name, signed) in [
        ("schema1-unsigned.json", false),
        ("schema1-signed.json", true),
    ] {
        let bytes = fixture(name);
        let err = Manifest::parse(bytes.clone(), None).unwrap_err();
        match &err {
            ManifestError::Schema1 { digest, signed: s } => {
                assert_eq!(*s, signed, "{name}");
                assert_eq!(digest, &Algorithm::Sha256.hash(&bytes));
            }
            other => panic!("{name}: {other}"),
        }
        let text = err.to_string();
        assert!(text.contains("Docker schema 1"), "{text}");
        assert!(
            text.contains(if signed { "prettyjws" } else { "v1+json" }),
            "{text}"
        );
    }
    // Also when only the Content-Type says so.
    let err = Manifest::parse(
        fixture("schema1-unsigned.json"),
        Some(mt::DOCKER_MANIFEST_V1_SIGNED),
    )
    .unwrap_err();
    assert!(
        matches!(err, ManifestError::Schema1 { signed: true, .. }),
        "{err}"
    );
}

#[test]
fn bench_fixtures_parse() {
    let m = parse_fixture("oci-manifest-3-layers.json", None);
    assert_eq!(m.layers().len(), 3);
    let i = parse_fixture("oci-index-20.json", None);
    assert_eq!(i.manifests().len(), 20);
    assert_eq!(platform::available(&i).len(), 15);
}
