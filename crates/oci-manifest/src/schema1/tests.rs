use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

use super::*;

fn id(c: char) -> String {
    c.to_string().repeat(64)
}

fn blob(n: u8) -> Digest {
    Algorithm::Sha256.hash(&[n])
}

/// A schema 1 document (newest entry first): (blob, v1Compatibility JSON) pairs.
fn doc(entries: &[(Digest, String)]) -> String {
    let fs: Vec<String> = entries
        .iter()
        .map(|(d, _)| format!(r#"{{"blobSum":"{d}"}}"#))
        .collect();
    let hist: Vec<String> = entries
        .iter()
        .map(|(_, c)| {
            format!(
                r#"{{"v1Compatibility":{}}}"#,
                serde_json::to_string(c).unwrap()
            )
        })
        .collect();
    format!(
        "{{\n   \"schemaVersion\": 1,\n   \"name\": \"team/app\",\n   \"tag\": \"v1\",\n   \"architecture\": \"amd64\",\n   \"fsLayers\": [{}],\n   \"history\": [{}]\n}}",
        fs.join(","),
        hist.join(",")
    )
}

/// Signs `payload` as libtrust does (the signature itself is not checked by anyone here).
fn sign(payload: &str) -> String {
    let keep = payload.rfind('\n').unwrap();
    let (head, tail) = payload.split_at(keep);
    let protected = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"formatLength":{keep},"formatTail":"{}","time":"2020-01-01T00:00:00Z"}}"#,
        URL_SAFE_NO_PAD.encode(tail)
    ));
    format!(
        "{head},\n   \"signatures\": [{{\"header\": {{\"alg\": \"ES256\"}}, \"signature\": \"c2ln\", \"protected\": \"{protected}\"}}]{tail}"
    )
}

/// Three entries: a base layer, a throwaway (`ENV`), and the top with the configuration.
fn sample() -> String {
    doc(&[
        (
            blob(3),
            format!(
                r#"{{"id":"{}","parent":"{}","created":"2020-01-03T00:00:00.500Z","container_config":{{"Cmd":["/bin/sh","-c","make & install <x>"]}},"author":"me","os":"linux","architecture":"amd64","config":{{"Env":["A=1"], "Cmd":["run"]}},"Size":12,"throwaway":false}}"#,
                id('c'),
                id('b')
            ),
        ),
        (
            blob(2),
            format!(
                r##"{{"id":"{}","parent":"{}","created":"2020-01-02T00:00:00Z","container_config":{{"Cmd":["/bin/sh","-c","#(nop) ENV A=1"]}},"throwaway":true}}"##,
                id('b'),
                id('a')
            ),
        ),
        (
            blob(1),
            format!(
                r#"{{"id":"{}","created":"2020-01-01T00:00:00Z","comment":"Imported from -"}}"#,
                id('a')
            ),
        ),
    ])
}

#[test]
fn signed_and_unsigned_parse_alike_and_are_named_by_their_payload() {
    let unsigned = sample();
    let signed = sign(&unsigned);
    let u = Schema1::parse(unsigned.clone()).unwrap();
    let s = Schema1::parse(signed.clone()).unwrap();
    assert!(!u.is_signed() && s.is_signed());
    assert_eq!(s.media_type(), mt::DOCKER_MANIFEST_V1_SIGNED);
    assert_eq!(u.digest(), s.digest());
    assert_eq!(u.digest(), &Algorithm::Sha256.hash(unsigned.as_bytes()));
    assert_eq!(&s.payload()[..], unsigned.as_bytes());
    assert_eq!(
        payload_digest(&Bytes::from(signed.clone())).unwrap(),
        *u.digest()
    );
    // Pinned by the payload's digest or by the signed bytes' own digest.
    Schema1::parse_pinned(signed.clone(), u.digest()).unwrap();
    Schema1::parse_pinned(signed.clone(), &Algorithm::Sha256.hash(signed.as_bytes())).unwrap();
    assert!(matches!(
        Schema1::parse_pinned(signed, &blob(9)),
        Err(ManifestError::DigestMismatch { .. })
    ));
    assert_eq!(
        (u.name(), u.tag(), u.architecture()),
        ("team/app", "v1", "amd64")
    );
}

#[test]
fn layers_are_base_first_with_throwaways_marked() {
    let m = Schema1::parse(sample()).unwrap();
    let l = m.layers();
    assert_eq!(
        l.iter()
            .map(|l| (l.digest.clone(), l.throwaway))
            .collect::<Vec<_>>(),
        vec![(blob(1), false), (blob(2), true), (blob(3), false)]
    );
}

#[test]
fn config_is_built_as_skopeo_builds_it() {
    let m = Schema1::parse(sample()).unwrap();
    let diff = [blob(11), blob(13)];
    let config = m.to_schema2_config(&diff).unwrap();
    let text = std::str::from_utf8(&config).unwrap();
    // Keys sorted, values compacted, HTML characters escaped, dropped keys gone.
    let want = format!(
        concat!(
            r#"{{"architecture":"amd64","author":"me","config":{{"Env":["A=1"],"Cmd":["run"]}},"#,
            r#""container_config":{{"Cmd":["/bin/sh","-c","make \u0026 install \u003cx\u003e"]}},"#,
            r#""created":"2020-01-03T00:00:00.500Z","#,
            r#""history":[{{"created":"2020-01-01T00:00:00Z","comment":"Imported from -"}},"#,
            r##"{{"created":"2020-01-02T00:00:00Z","created_by":"/bin/sh -c #(nop) ENV A=1","empty_layer":true}},"##,
            r#"{{"created":"2020-01-03T00:00:00.5Z","author":"me","created_by":"/bin/sh -c make \u0026 install \u003cx\u003e"}}],"#,
            r#""os":"linux","rootfs":{{"type":"layers","diff_ids":["{}","{}"]}}}}"#
        ),
        diff[0], diff[1]
    );
    assert_eq!(text, want);
}

#[test]
fn conversion_drops_throwaways_and_names_the_new_config() {
    let m = Schema1::parse(sign(&sample())).unwrap();
    let layers = [
        (
            Descriptor::new(mt::DOCKER_LAYER_GZIP, blob(1), 10),
            blob(11),
        ),
        (
            Descriptor::new(mt::DOCKER_LAYER_GZIP, blob(3), 30),
            blob(13),
        ),
    ];
    let docker = m.convert(&layers, Flavor::Docker).unwrap();
    assert_eq!(docker.dropped, vec![blob(2)]);
    let cfg = docker.manifest.config().unwrap();
    assert_eq!(cfg.digest, Algorithm::Sha256.hash(&docker.config));
    assert_eq!(cfg.media_type, mt::DOCKER_CONFIG);
    assert_eq!(
        docker
            .manifest
            .layers()
            .iter()
            .map(|l| (l.digest.clone(), l.size))
            .collect::<Vec<_>>(),
        vec![(blob(1), 10), (blob(3), 30)]
    );
    // Go's field order, as skopeo writes the manifest.
    assert!(docker.manifest.raw().starts_with(
        br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":"#
    ));
    let oci = m.convert(&layers, Flavor::Oci).unwrap();
    assert_eq!(oci.manifest.media_type(), mt::OCI_MANIFEST);
    assert_eq!(oci.manifest.config().unwrap().digest, cfg.digest);
    assert_eq!(oci.manifest.layers()[0].media_type, mt::OCI_LAYER_GZIP);
    // Layers that are not the non-throwaway ones are refused.
    assert!(matches!(
        m.convert(&layers[..1], Flavor::Docker),
        Err(ManifestError::Build { .. })
    ));
}

#[test]
fn consecutive_duplicate_entries_are_dropped() {
    let top = format!(r#"{{"id":"{}","created":"2020-01-01T00:00:00Z"}}"#, id('a'));
    let m = Schema1::parse(doc(&[(blob(1), top.clone()), (blob(1), top)])).unwrap();
    assert_eq!(m.layers().len(), 1);
}

#[test]
fn malformed_manifests_are_refused_with_the_reason() {
    let c = |i: char, parent: Option<char>| match parent {
        Some(p) => format!(r#"{{"id":"{}","parent":"{}"}}"#, id(i), id(p)),
        None => format!(r#"{{"id":"{}"}}"#, id(i)),
    };
    let cases = [
        (doc(&[]), "no fsLayers"),
        (
            doc(&[(blob(1), c('a', Some('b')))]),
            "base layer has a parent",
        ),
        (
            doc(&[(blob(2), c('b', Some('x'))), (blob(1), c('a', None))]),
            "invalid parent",
        ),
        (doc(&[(blob(1), r#"{"id":"short"}"#.to_owned())]), "invalid"),
        (
            doc(&[(blob(1), r#"{"id":"x","created":"yesterday"}"#.to_owned())]),
            "RFC 3339",
        ),
        (
            doc(&[
                (blob(3), c('a', Some('b'))),
                (blob(2), c('b', Some('a'))),
                (blob(1), c('a', None)),
            ]),
            "more than once",
        ),
        (
            r#"{"schemaVersion":2,"fsLayers":[],"history":[]}"#.to_owned(),
            "schemaVersion is 2",
        ),
        (
            r#"{"schemaVersion":1,"fsLayers":[{"blobSum":"x"}],"history":[]}"#.to_owned(),
            "1 fsLayers but 0 history",
        ),
    ];
    for (raw, want) in cases {
        let err = Schema1::parse(raw.clone()).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ManifestError::Schema1Invalid { .. }) && text.contains(want),
            "{raw}: {text}"
        );
    }
    let dup = r#"{"schemaVersion":1,"schemaVersion":1,"fsLayers":[],"history":[]}"#;
    assert!(matches!(
        Schema1::parse(dup),
        Err(ManifestError::DuplicateKey { .. })
    ));
}

proptest! {
    #[test]
    fn parse_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Schema1::parse(raw);
    }

    #[test]
    fn parse_of_mangled_samples_never_panics(cut in 0usize..2000, byte in any::<u8>()) {
        let mut s = sign(&sample()).into_bytes();
        if !s.is_empty() {
            let i = cut % s.len();
            s[i] = byte;
        }
        if let Ok(m) = Schema1::parse(s) {
            let _ = m.to_schema2_config(&[]);
        }
    }
}
