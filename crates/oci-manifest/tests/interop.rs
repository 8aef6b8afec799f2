//! Conversions with oci-spec (feature `oci-spec`): ours -> oci-spec -> ours keeps every field
//! oci-spec models; oci-spec -> ours -> bytes parse back with oci-spec to an equal value; what
//! does not convert is named.
#![cfg(feature = "oci-spec")]

use std::collections::HashMap;
use std::path::PathBuf;

use oci_manifest::build::{ImageManifestBuilder, IndexBuilder};
use oci_manifest::{
    Algorithm, Descriptor, Manifest, ManifestError, ManifestKind, Platform, media_types as mt,
};
use oci_spec::image::{self as spec, MediaType};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every fixture this crate parses (schema 1 is refused).
const FIXTURES: &[&str] = &[
    "cosign-signature.json",
    "docker-hub-manifest-list.json",
    "docker-manifest.json",
    "helm-chart.json",
    "nested-index.json",
    "oci-index-20.json",
    "oci-index-attestations.json",
    "oci-manifest-3-layers.json",
    "oci-manifest-no-media-type.json",
    "sigstore-bundle-referrer.json",
    "unknown-fields.json",
    "windows-manifest-list.json",
    "windows-manifest.json",
];

/// The fields oci-spec models, read from our manifest.
#[derive(Debug, PartialEq)]
struct Fields {
    media_type: String,
    artifact_type: Option<String>,
    children: Vec<Descriptor>,
    has_subject: bool,
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

fn fields(m: &Manifest) -> Fields {
    Fields {
        media_type: m.media_type().to_owned(),
        artifact_type: m.artifact_type().map(str::to_owned),
        children: m.children().to_vec(),
        has_subject: m.subject().is_some(),
        annotations: m.annotations().filter(|a| !a.is_empty()).cloned(),
    }
}

fn ours_to_spec_to_ours(m: &Manifest) -> Manifest {
    if m.is_index() {
        let theirs = spec::ImageIndex::try_from(m).unwrap();
        assert_eq!(theirs.manifests().len(), m.manifests().len());
        assert!(spec::ImageManifest::try_from(m).is_err());
        Manifest::try_from(&theirs).unwrap()
    } else {
        let theirs = spec::ImageManifest::try_from(m).unwrap();
        assert_eq!(theirs.layers().len(), m.layers().len());
        assert!(spec::ImageIndex::try_from(m).is_err());
        Manifest::try_from(&theirs).unwrap()
    }
}

#[test]
fn ours_to_oci_spec_and_back_keeps_every_modelled_field() {
    for name in FIXTURES {
        let ours = Manifest::parse(fixture(name), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = ours_to_spec_to_ours(&ours);
        assert_eq!(fields(&back), fields(&ours), "{name}");
        assert_eq!(back.kind(), ours.kind(), "{name}");
        // The new bytes are canonical: once more gives the same bytes, and they are what the
        // builders write.
        assert_eq!(ours_to_spec_to_ours(&back).raw(), back.raw(), "{name}");
        assert_eq!(back.digest(), &Algorithm::Sha256.hash(back.raw()), "{name}");
    }
}

#[test]
fn unknown_fields_are_dropped_and_the_digest_changes() {
    let ours = Manifest::parse(fixture("unknown-fields.json"), None).unwrap();
    let back = ours_to_spec_to_ours(&ours);
    let text = String::from_utf8_lossy(back.raw());
    for dropped in ["x-vendor-build", "futureField", "x-extra"] {
        assert!(!text.contains(dropped), "{dropped} kept in {text}");
    }
    assert_ne!(back.digest(), ours.digest());
    assert_eq!(back.layers(), ours.layers());
}

/// What oci-spec parses from `raw`, as an image manifest or an index.
#[derive(Debug, PartialEq)]
enum Theirs {
    Manifest(Box<spec::ImageManifest>),
    Index(Box<spec::ImageIndex>),
}

fn theirs_from_json(raw: &[u8], index: bool) -> Theirs {
    if index {
        Theirs::Index(Box::new(serde_json::from_slice(raw).unwrap()))
    } else {
        Theirs::Manifest(Box::new(serde_json::from_slice(raw).unwrap()))
    }
}

fn ours_from(theirs: &Theirs) -> Manifest {
    match theirs {
        Theirs::Manifest(m) => Manifest::try_from(m.as_ref()).unwrap(),
        Theirs::Index(i) => Manifest::try_from(i.as_ref()).unwrap(),
    }
}

/// What our canonical bytes say beyond oci-spec's value: the media type is always written,
/// an empty top-level annotations map is not.
fn canonical(theirs: Theirs, media_type: &str) -> Theirs {
    macro_rules! canonical {
        ($m:expr) => {{
            if $m.media_type().is_none() {
                $m.set_media_type(Some(MediaType::from(media_type)));
            }
            if $m.annotations().as_ref().is_some_and(HashMap::is_empty) {
                $m.set_annotations(None);
            }
        }};
    }
    match theirs {
        Theirs::Manifest(mut m) => {
            canonical!(m);
            Theirs::Manifest(m)
        }
        Theirs::Index(mut i) => {
            canonical!(i);
            Theirs::Index(i)
        }
    }
}

#[test]
fn oci_spec_to_ours_to_bytes_parse_back_equal() {
    for name in FIXTURES {
        let raw = fixture(name);
        let index = Manifest::parse(raw.clone(), None).unwrap().is_index();
        // What a tool holding oci-spec values has.
        let theirs = theirs_from_json(&raw, index);
        let ours = ours_from(&theirs);
        // The digest is the one of the bytes a push sends.
        assert_eq!(ours.digest(), &Algorithm::Sha256.hash(ours.raw()), "{name}");
        let reparsed = theirs_from_json(ours.raw(), index);
        assert_eq!(reparsed, canonical(theirs, ours.media_type()), "{name}");
    }
}

#[test]
fn windows_platform_fields_survive_the_conversion_not_oci_spec_json() {
    let ours = Manifest::parse(fixture("windows-manifest-list.json"), None).unwrap();
    let theirs = spec::ImageIndex::try_from(&ours).unwrap();
    for (o, t) in ours.manifests().iter().zip(theirs.manifests()) {
        let (op, tp) = (o.platform.as_ref().unwrap(), t.platform().as_ref().unwrap());
        assert!(op.os_version.is_some());
        assert_eq!(tp.os_version(), &op.os_version);
        assert_eq!(Platform::from(tp), *op);
    }
    // oci-spec 0.10 writes `os_version`, not `os.version` (youki-dev/oci-spec-rs#163): when
    // this fails, oci-spec was fixed and the interop docs should say so.
    let json = serde_json::to_string(&theirs).unwrap();
    assert!(
        json.contains("\"os_version\"") && !json.contains("\"os.version\""),
        "{json}"
    );
    // Our bytes from the converted value have the standard name.
    let back = Manifest::try_from(&theirs).unwrap();
    assert!(String::from_utf8_lossy(back.raw()).contains("\"os.version\""));
    assert_eq!(back.manifests(), ours.manifests());
}

#[test]
fn strings_oci_spec_would_change_are_kept() {
    // oci-spec 0.10 reads "armbe" as arm64be.
    let ours = Platform::new("linux", "armbe").with_variant("v7");
    let theirs = spec::Platform::from(&ours);
    assert_eq!(theirs.architecture().to_string(), "armbe");
    assert_eq!(Platform::from(&theirs), ours);
    for (os, arch) in [
        ("linux", "amd64"),
        ("windows", "arm64"),
        ("plan10", "z80"),
        ("unknown", "unknown"),
        ("darwin", "386"),
        ("zos", "s390x"),
    ] {
        let ours = Platform::new(os, arch);
        assert_eq!(Platform::from(spec::Platform::from(&ours)), ours);
    }
    let mut d = Descriptor::of("application/vnd.example.thing.v1+json", b"x")
        .with_artifact_type(mt::OCI_EMPTY_JSON);
    d.urls = Some(vec!["https://example.invalid/x".to_owned()]);
    d.annotations = Some(Default::default());
    assert_eq!(Descriptor::try_from(spec::Descriptor::from(&d)).unwrap(), d);
}

fn sha384() -> spec::Digest {
    format!("sha384:{}", "a".repeat(96)).parse().unwrap()
}

fn spec_descriptor(media_type: MediaType, content: &[u8]) -> spec::Descriptor {
    spec::Descriptor::new(
        media_type,
        content.len() as u64,
        spec::Digest::from(Algorithm::Sha256.hash(content)),
    )
}

fn spec_manifest() -> spec::ImageManifest {
    spec::ImageManifestBuilder::default()
        .schema_version(2u32)
        .config(spec_descriptor(MediaType::ImageConfig, b"{}"))
        .layers(vec![
            spec_descriptor(MediaType::ImageLayerGzip, b"0"),
            spec_descriptor(MediaType::ImageLayerGzip, b"1"),
        ])
        .build()
        .unwrap()
}

fn invalid_digest_field(err: &ManifestError) -> &str {
    match err {
        ManifestError::InvalidDigest { field, source } => {
            assert!(source.to_string().contains("sha384"), "{source}");
            field
        }
        other => panic!("{other}"),
    }
}

#[test]
fn what_does_not_convert_is_named() {
    // Digests oci-spec accepts and we cannot verify, wherever they are.
    let mut m = spec_manifest();
    m.layers_mut()[1].set_digest(sha384());
    let err = Manifest::try_from(&m).unwrap_err();
    assert_eq!(invalid_digest_field(&err), "layers[1].digest");
    let mut m = spec_manifest();
    let mut config = m.config().clone();
    config.set_digest(sha384());
    m.set_config(config);
    assert_eq!(
        invalid_digest_field(&Manifest::try_from(&m).unwrap_err()),
        "config.digest"
    );
    let mut m = spec_manifest();
    let mut subject = spec_descriptor(MediaType::ImageManifest, b"s");
    subject.set_digest(sha384());
    m.set_subject(Some(subject));
    assert_eq!(
        invalid_digest_field(&Manifest::try_from(&m).unwrap_err()),
        "subject.digest"
    );
    let mut i = spec::ImageIndex::default();
    let mut entry = spec_descriptor(MediaType::ImageManifest, b"e");
    entry.set_digest(sha384());
    i.set_manifests(vec![spec_descriptor(MediaType::ImageManifest, b"d"), entry]);
    assert_eq!(
        invalid_digest_field(&Manifest::try_from(&i).unwrap_err()),
        "manifests[1].digest"
    );

    // Build rules, named.
    let build_reason = |err: ManifestError| match err {
        ManifestError::Build { reason, .. } => reason,
        other => panic!("{other}"),
    };
    let mut m = spec_manifest();
    m.set_schema_version(1);
    assert!(build_reason(Manifest::try_from(&m).unwrap_err()).contains("schemaVersion is 1"));
    let mut m = spec_manifest();
    m.set_media_type(Some(MediaType::ImageIndex));
    assert!(build_reason(Manifest::try_from(&m).unwrap_err()).contains("mediaType"));
    let mut m = spec_manifest();
    m.set_media_type(Some(MediaType::ArtifactManifest));
    assert!(build_reason(Manifest::try_from(&m).unwrap_err()).contains("mediaType"));
    let mut i = spec::ImageIndex::default();
    i.set_media_type(Some(MediaType::from(mt::DOCKER_MANIFEST)));
    assert!(build_reason(Manifest::try_from(&i).unwrap_err()).contains("mediaType"));
    // The spec's rule: the empty config needs an artifactType.
    let mut m = spec_manifest();
    m.set_config(spec_descriptor(MediaType::EmptyJSON, b"{}"));
    assert!(build_reason(Manifest::try_from(&m).unwrap_err()).contains("artifactType"));
    // Docker's rule: a Docker manifest has a Docker config.
    let mut m = spec_manifest();
    m.set_media_type(Some(MediaType::from(mt::DOCKER_MANIFEST)));
    assert!(build_reason(Manifest::try_from(&m).unwrap_err()).contains(mt::DOCKER_CONFIG));

    // Validation of the written bytes, with the field.
    let mut m = spec_manifest();
    m.layers_mut()[0].set_media_type(MediaType::Other("not a media type".to_owned()));
    match Manifest::try_from(&m).unwrap_err() {
        ManifestError::InvalidDescriptor { field, .. } => assert_eq!(field, "layers[0]"),
        other => panic!("{other}"),
    }
}

#[test]
fn docker_media_types_give_docker_documents() {
    let mut m = spec_manifest();
    m.set_media_type(Some(MediaType::from(mt::DOCKER_MANIFEST)));
    m.set_config(spec_descriptor(MediaType::from(mt::DOCKER_CONFIG), b"{}"));
    let ours = Manifest::try_from(&m).unwrap();
    assert_eq!(ours.kind(), ManifestKind::DockerManifest);
    let mut i = spec::ImageIndex::default();
    i.set_media_type(Some(MediaType::from(mt::DOCKER_MANIFEST_LIST)));
    let mut entry = spec::Descriptor::from(ours.descriptor());
    entry.set_platform(Some(spec::Platform::from(Platform::new("linux", "amd64"))));
    i.set_manifests(vec![entry]);
    let list = Manifest::try_from(&i).unwrap();
    assert_eq!(list.kind(), ManifestKind::DockerManifestList);
    assert_eq!(list.manifests()[0].digest, *ours.digest());
}

#[test]
fn built_manifests_come_back_byte_for_byte() {
    let subject = Descriptor::of(mt::OCI_MANIFEST, b"subject");
    let m = ImageManifestBuilder::artifact("application/vnd.example.sbom+json")
        .layer(Descriptor::of("application/spdx+json", b"sbom"))
        .subject(subject.clone())
        .annotation("org.opencontainers.image.created", "2024-01-01T00:00:00Z")
        .build()
        .unwrap();
    let theirs = spec::ImageManifest::try_from(&m).unwrap();
    // By value and by reference are the same conversion.
    assert_eq!(spec::ImageManifest::try_from(m.clone()).unwrap(), theirs);
    assert_eq!(
        theirs.subject().as_ref().map(|s| s.digest().to_string()),
        Some(subject.digest.to_string())
    );
    assert_eq!(Manifest::try_from(theirs).unwrap().raw(), m.raw());
    let i = IndexBuilder::oci()
        .manifest(
            m.descriptor()
                .with_platform(Platform::new("linux", "amd64")),
        )
        .subject(subject)
        .artifact_type("application/vnd.example.bundle")
        .build()
        .unwrap();
    let theirs = spec::ImageIndex::try_from(i.clone()).unwrap();
    assert_eq!(Manifest::try_from(theirs).unwrap().raw(), i.raw());
}
