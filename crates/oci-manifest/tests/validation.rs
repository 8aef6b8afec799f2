//! Strict validation: every rule has a document that breaks it and a typed error that says so.

use oci_manifest::{
    Algorithm, DEFAULT_MAX_MANIFEST_SIZE, Descriptor, Manifest, ManifestError, ParseOptions,
    media_types as mt,
};

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn manifest_json(extra_top: &str, layer: &str) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{D1}","size":10}},"layers":[{layer}]{extra_top}}}"#,
        mt::OCI_MANIFEST,
        mt::OCI_CONFIG
    )
}

fn ok_layer() -> String {
    format!(
        r#"{{"mediaType":"{}","digest":"{D2}","size":20}}"#,
        mt::OCI_LAYER_GZIP
    )
}

fn err(json: &str, ct: Option<&str>) -> ManifestError {
    match Manifest::parse(json.as_bytes().to_vec(), ct) {
        Ok(m) => panic!("accepted {json}: {m:?}"),
        Err(e) => {
            // Every error on bytes that were hashed names their digest.
            if let Some(d) = e.digest()
                && !matches!(e, ManifestError::DigestMismatch { .. })
            {
                assert_eq!(d, &Algorithm::Sha256.hash(json.as_bytes()));
                assert!(e.to_string().contains(d.as_str()), "{e}");
            }
            e
        }
    }
}

#[test]
fn the_baseline_is_valid() {
    let m = Manifest::parse(manifest_json("", &ok_layer()).into_bytes(), None).unwrap();
    assert_eq!(m.layers().len(), 1);
}

#[test]
fn duplicate_keys_rejected_at_any_depth() {
    let cases = [
        (
            r#"{"schemaVersion":2,"schemaVersion":2,"manifests":[]}"#.to_owned(),
            "schemaVersion",
            "$",
        ),
        (
            manifest_json(
                r#","mediaType":"application/vnd.oci.image.index.v1+json""#,
                &ok_layer(),
            ),
            "mediaType",
            "$",
        ),
        (
            manifest_json(
                "",
                &format!(
                    r#"{{"mediaType":"{}","digest":"{D2}","size":20,"annotations":{{"k":"a","k":"b"}}}}"#,
                    mt::OCI_LAYER_GZIP
                ),
            ),
            "k",
            "$.layers[0].annotations",
        ),
        (
            manifest_json(
                "",
                &format!(
                    r#"{{"mediaType":"{}","digest":"{D2}","size":20,"digest":"{D1}"}}"#,
                    mt::OCI_LAYER_GZIP
                ),
            ),
            "digest",
            "$.layers[0]",
        ),
        // Inside fields this crate does not otherwise read.
        (
            manifest_json(r#","x-vendor":[{"deep":{"a":1,"\u0061":2}}]"#, &ok_layer()),
            "a",
            r#"$["x-vendor"][0].deep"#,
        ),
    ];
    for (json, key, path) in cases {
        match err(&json, None) {
            ManifestError::DuplicateKey {
                key: k, path: p, ..
            } => {
                assert_eq!((k.as_str(), p.as_str()), (key, path), "{json}");
            }
            other => panic!("{json}: {other}"),
        }
    }
}

#[test]
fn schema_version_must_be_2() {
    for (sv, found) in [
        ("3", "3"),
        ("\"2\"", "\"2\""),
        ("2.0", "2.0"),
        ("null", "null"),
    ] {
        let json = format!(
            r#"{{"schemaVersion":{sv},"mediaType":"{}","manifests":[]}}"#,
            mt::OCI_INDEX
        );
        match err(&json, None) {
            ManifestError::SchemaVersion { found: f, .. } => assert_eq!(f, found),
            other => panic!("{sv}: {other}"),
        }
    }
    let json = format!(r#"{{"mediaType":"{}","manifests":[]}}"#, mt::OCI_INDEX);
    assert!(
        matches!(err(&json, None), ManifestError::SchemaVersion { found, .. } if found == "missing")
    );
    // schemaVersion 1 is schema 1.
    let json = r#"{"schemaVersion":1,"name":"x","tag":"y"}"#;
    assert!(matches!(
        err(json, None),
        ManifestError::Schema1 { signed: false, .. }
    ));
}

#[test]
fn media_type_rules() {
    let json = manifest_json("", &ok_layer());
    // Document and Content-Type disagree.
    match err(&json, Some(mt::DOCKER_MANIFEST)) {
        ManifestError::MediaTypeConflict {
            in_document,
            content_type,
            ..
        } => {
            assert_eq!(in_document, mt::OCI_MANIFEST);
            assert_eq!(content_type, mt::DOCKER_MANIFEST);
        }
        other => panic!("{other}"),
    }
    // A schema 2 document served as schema 1 is a conflict, not schema 1.
    assert!(matches!(
        err(&json, Some(mt::DOCKER_MANIFEST_V1_SIGNED)),
        ManifestError::MediaTypeConflict { .. }
    ));
    // Parameters on the Content-Type are fine; generic types are ignored.
    for ct in [
        "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
        "application/json",
        "application/octet-stream",
        "text/plain",
        "",
    ] {
        assert!(
            Manifest::parse(json.clone().into_bytes(), Some(ct)).is_ok(),
            "{ct}"
        );
    }
    // Unknown or withdrawn media types.
    let art = json.replace(
        mt::OCI_MANIFEST,
        "application/vnd.oci.artifact.manifest.v1+json",
    );
    assert!(
        matches!(err(&art, None), ManifestError::UnsupportedMediaType { media_type, .. } if media_type.contains("artifact"))
    );
    let spaced = json.replace(mt::OCI_MANIFEST, &format!("{} ", mt::OCI_MANIFEST));
    assert!(matches!(
        err(&spaced, None),
        ManifestError::UnsupportedMediaType { .. }
    ));
    // Shape against media type.
    let index_with_layers = json.replace(mt::OCI_MANIFEST, mt::OCI_INDEX);
    assert!(
        matches!(err(&index_with_layers, None), ManifestError::Shape { reason, .. } if reason.contains("config"))
    );
    let no_config = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","layers":[]}}"#,
        mt::DOCKER_MANIFEST
    );
    assert!(
        matches!(err(&no_config, None), ManifestError::Shape { reason, .. } if reason.contains("config"))
    );
    let no_layers = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{D1}","size":1}}}}"#,
        mt::OCI_MANIFEST,
        mt::OCI_CONFIG
    );
    assert!(
        matches!(err(&no_layers, None), ManifestError::Shape { reason, .. } if reason.contains("layers"))
    );
    let manifest_with_manifests = json.replace(r#""layers":["#, r#""manifests":[],"layers":["#);
    assert!(matches!(
        err(&manifest_with_manifests, None),
        ManifestError::Shape { .. }
    ));
    let no_manifests = format!(r#"{{"schemaVersion":2,"mediaType":"{}"}}"#, mt::OCI_INDEX);
    assert!(matches!(
        err(&no_manifests, None),
        ManifestError::Shape { .. }
    ));
    // Neither declared nor served nor recognisable.
    assert!(matches!(
        err(r#"{"schemaVersion":2}"#, None),
        ManifestError::Shape { .. }
    ));
    assert!(matches!(
        err(r#"{"schemaVersion":2,"manifests":[],"layers":[]}"#, None),
        ManifestError::Shape { .. }
    ));
    // Docker documents cannot carry OCI 1.1 fields.
    let docker_subject = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[],"subject":{{"mediaType":"{}","digest":"{D1}","size":1}}}}"#,
        mt::DOCKER_MANIFEST_LIST,
        mt::OCI_MANIFEST
    );
    assert!(matches!(
        err(&docker_subject, None),
        ManifestError::Shape { .. }
    ));
    let bad_artifact_type = json.replace(
        r#""schemaVersion":2,"#,
        r#""schemaVersion":2,"artifactType":"nope","#,
    );
    assert!(matches!(
        err(&bad_artifact_type, None),
        ManifestError::Shape { .. }
    ));
}

#[test]
fn descriptors_are_checked() {
    // Malformed digests and negative or fractional sizes are JSON-level errors with the value.
    for (layer, needle) in [
        (
            format!(
                r#"{{"mediaType":"{}","digest":"sha256:abc","size":1}}"#,
                mt::OCI_LAYER_GZIP
            ),
            "sha256:abc",
        ),
        (
            format!(
                r#"{{"mediaType":"{}","digest":"md5:d41d8cd98f00b204e9800998ecf8427e","size":1}}"#,
                mt::OCI_LAYER_GZIP
            ),
            "md5",
        ),
        (
            format!(
                r#"{{"mediaType":"{}","digest":"sha256:../../etc/passwd","size":1}}"#,
                mt::OCI_LAYER_GZIP
            ),
            "../../etc/passwd",
        ),
        (
            format!(
                r#"{{"mediaType":"{}","digest":"{D2}","size":-1}}"#,
                mt::OCI_LAYER_GZIP
            ),
            "-1",
        ),
        (
            format!(
                r#"{{"mediaType":"{}","digest":"{D2}","size":1.5}}"#,
                mt::OCI_LAYER_GZIP
            ),
            "1.5",
        ),
        (
            format!(
                r#"{{"mediaType":"{}","digest":"{D2}"}}"#,
                mt::OCI_LAYER_GZIP
            ),
            "size",
        ),
        (format!(r#"{{"digest":"{D2}","size":1}}"#), "mediaType"),
    ] {
        let json = manifest_json("", &layer);
        match err(&json, None) {
            ManifestError::Json { source, .. } => {
                assert!(source.to_string().contains(needle), "{needle}: {source}");
            }
            other => panic!("{layer}: {other}"),
        }
    }
    // Media types of descriptors must be media types; embedded data must match.
    for (layer, field, needle) in [
        (
            format!(r#"{{"mediaType":"gzip","digest":"{D2}","size":1}}"#),
            "layers[0]",
            "not a media type",
        ),
        (
            format!(
                r#"{{"mediaType":"{}","digest":"{D2}","size":1,"artifactType":"x"}}"#,
                mt::OCI_LAYER_GZIP
            ),
            "layers[0]",
            "artifactType",
        ),
        (
            format!(
                r#"{{"mediaType":"{}","digest":"{D2}","size":2,"data":"e30="}}"#,
                mt::OCI_LAYER_GZIP
            ),
            "layers[0]",
            "hashes to",
        ),
        (
            format!(
                r#"{{"mediaType":"{}","digest":"{}","size":3,"data":"e30="}}"#,
                mt::OCI_EMPTY_JSON,
                Algorithm::Sha256.hash(b"{}")
            ),
            "layers[0]",
            "2 bytes",
        ),
        (
            format!(
                r#"{{"mediaType":"{}","digest":"{D2}","size":2,"data":"e30"}}"#,
                mt::OCI_LAYER_GZIP
            ),
            "layers[0]",
            "base64",
        ),
    ] {
        let json = manifest_json("", &layer);
        match err(&json, None) {
            ManifestError::InvalidDescriptor {
                field: f,
                reason,
                descriptor_digest,
                ..
            } => {
                assert_eq!(f, field);
                assert!(reason.contains(needle), "{reason}");
                assert!(layer.contains(descriptor_digest.as_str()));
            }
            other => panic!("{layer}: {other}"),
        }
    }
}

#[test]
fn not_json_or_not_an_object() {
    for bad in [
        "",
        "null",
        "[]",
        "\"x\"",
        "{",
        "{} {}",
        "{\"schemaVersion\":2,}",
        "\u{feff}{}",
    ] {
        let e = err(bad, None);
        assert!(matches!(e, ManifestError::Json { .. }), "{bad:?}: {e}");
    }
    let e = err("\u{ff}", None);
    assert!(matches!(e, ManifestError::Json { .. }));
}

#[test]
fn size_limit() {
    let base = manifest_json(r#","annotations":{"pad":""}"#, &ok_layer());
    let at_limit = |limit: usize| {
        let pad = "x".repeat(limit - base.len());
        base.replace(r#""pad":"""#, &format!(r#""pad":"{pad}""#))
    };
    let exact = at_limit(DEFAULT_MAX_MANIFEST_SIZE);
    assert_eq!(exact.len(), DEFAULT_MAX_MANIFEST_SIZE);
    assert!(Manifest::parse(exact.clone().into_bytes(), None).is_ok());
    let over = at_limit(DEFAULT_MAX_MANIFEST_SIZE + 1);
    match Manifest::parse(over.into_bytes(), None) {
        Err(ManifestError::TooLarge { size, limit }) => {
            assert_eq!(
                (size, limit),
                (
                    DEFAULT_MAX_MANIFEST_SIZE as u64 + 1,
                    DEFAULT_MAX_MANIFEST_SIZE
                )
            );
        }
        other => panic!("{other:?}"),
    }
    // Configurable.
    let small = ParseOptions::default().with_max_size(100);
    assert!(matches!(
        Manifest::parse_with(base.clone().into_bytes(), None, &small),
        Err(ManifestError::TooLarge { limit: 100, .. })
    ));
    let big = ParseOptions::default().with_max_size(8 << 20);
    assert!(Manifest::parse_with(at_limit(5 << 20).into_bytes(), None, &big).is_ok());
}

#[test]
fn verified_parsing_names_expected_and_actual() {
    let json = manifest_json("", &ok_layer()).into_bytes();
    let good = Descriptor::of(mt::OCI_MANIFEST, &json);
    let opts = ParseOptions::default();
    assert!(Manifest::parse_verified(json.clone(), None, &good, &opts).is_ok());

    let mut wrong_digest = good.clone();
    wrong_digest.digest = D1.parse().unwrap();
    match Manifest::parse_verified(json.clone(), None, &wrong_digest, &opts) {
        Err(ManifestError::DigestMismatch {
            expected,
            actual,
            size,
        }) => {
            assert_eq!(expected.as_str(), D1);
            assert_eq!(actual, good.digest);
            assert_eq!(size, json.len() as u64);
        }
        other => panic!("{other:?}"),
    }
    let mut wrong_size = good.clone();
    wrong_size.size += 1;
    assert!(matches!(
        Manifest::parse_verified(json.clone(), None, &wrong_size, &opts),
        Err(ManifestError::SizeMismatch { expected, actual, .. }) if expected == actual + 1
    ));
    let mut wrong_type = good.clone();
    wrong_type.media_type = mt::OCI_INDEX.to_owned();
    // The descriptor's type acts as the Content-Type, so it conflicts with the document's.
    assert!(matches!(
        Manifest::parse_verified(json.clone(), None, &wrong_type, &opts),
        Err(ManifestError::MediaTypeConflict { .. })
    ));
    // A descriptor that is not a manifest type is caught after parsing.
    let mut odd_type = good.clone();
    odd_type.media_type = "application/json".to_owned();
    assert!(matches!(
        Manifest::parse_verified(json.clone(), None, &odd_type, &opts),
        Err(ManifestError::DescriptorMediaType { .. })
    ));

    // Pinned by a SHA-512 digest: hashed with SHA-512, and the manifest keeps that digest.
    let d512 = Algorithm::Sha512.hash(&json);
    let m = Manifest::parse_pinned(json.clone(), None, &d512, &opts).unwrap();
    assert_eq!(m.digest(), &d512);
    let e = Manifest::parse_pinned(json.clone(), None, &good.digest, &opts).unwrap();
    assert_eq!(e.digest(), &good.digest);
    let other = Algorithm::Sha512.hash(b"other");
    let msg = Manifest::parse_pinned(json, None, &other, &opts)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(other.as_str()) && msg.contains(d512.as_str()),
        "{msg}"
    );
}

#[test]
fn depth_limit_helper() {
    let opts = ParseOptions::default().with_max_index_depth(2);
    let d = Algorithm::Sha256.hash(b"x");
    assert!(opts.check_depth(2, &d).is_ok());
    assert!(matches!(
        opts.check_depth(3, &d),
        Err(ManifestError::IndexTooDeep {
            depth: 3,
            limit: 2,
            ..
        })
    ));
}
