//! Property tests: build-then-parse round trips, parsing arbitrary bytes never panics,
//! reduction keeps exactly the matching entries, duplicate keys are always found.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_manifest::build::{ImageManifestBuilder, IndexBuilder};
use oci_manifest::platform::{self, Matcher, normalize, parse};
use oci_manifest::{
    Algorithm, Descriptor, Digest, Manifest, ManifestError, Platform, media_types as mt, reduce,
};
use proptest::prelude::*;

fn digest() -> impl Strategy<Value = Digest> {
    prop_oneof![
        4 => any::<[u8; 8]>().prop_map(|b| Algorithm::Sha256.hash(&b)),
        1 => any::<[u8; 8]>().prop_map(|b| Algorithm::Sha512.hash(&b)),
    ]
}

fn text() -> impl Strategy<Value = String> {
    // Escapes, quotes, non-ASCII and control characters all round-trip.
    "[a-z0-9 \"\\\\/é\u{1F600}\n\t.-]{0,12}"
}

fn annotations() -> impl Strategy<Value = Option<BTreeMap<String, String>>> {
    proptest::option::of(proptest::collection::btree_map(
        "[a-z][a-z0-9./-]{0,15}",
        text(),
        0..4,
    ))
}

fn media_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(mt::OCI_LAYER_GZIP.to_owned()),
        Just(mt::OCI_LAYER_ZSTD.to_owned()),
        Just(mt::OCI_LAYER_TAR.to_owned()),
        Just(mt::DOCKER_LAYER_GZIP.to_owned()),
        "application/vnd\\.[a-z]{1,8}\\.[a-z]{1,8}(\\+json)?",
    ]
}

const PLATFORMS: &[&str] = &[
    "linux/amd64",
    "linux/amd64/v2",
    "linux/x86_64",
    "linux/386",
    "linux/arm64",
    "linux/aarch64",
    "linux/arm64/v8",
    "linux/arm/v7",
    "linux/arm",
    "linux/arm/v6",
    "linux/s390x",
    "windows/amd64",
    "windows(10.0.17763.1)/amd64",
    "windows(10.0.20348.5)/amd64",
    "darwin/arm64",
    "unknown/unknown",
];

fn platform() -> impl Strategy<Value = Platform> {
    proptest::sample::select(PLATFORMS).prop_map(|s| {
        // Raw (un-normalised) structs as found in the wild.
        let (os_part, rest) = s.split_once('/').unwrap();
        let (os, version) = match os_part.split_once('(') {
            Some((os, v)) => (os, Some(v.trim_end_matches(')').to_owned())),
            None => (os_part, None),
        };
        let mut parts = rest.split('/');
        let mut p = Platform::new(os, parts.next().unwrap());
        p.variant = parts.next().map(str::to_owned);
        p.os_version = version;
        p
    })
}

fn descriptor(media: impl Strategy<Value = String>) -> impl Strategy<Value = Descriptor> {
    (
        media,
        digest(),
        any::<u64>(),
        annotations(),
        proptest::option::of(proptest::collection::vec(
            "https://[a-z]{1,8}\\.example/[a-z]{0,8}",
            1..3,
        )),
    )
        .prop_map(|(m, d, size, annotations, urls)| {
            let mut desc = Descriptor::new(m, d, size);
            desc.annotations = annotations;
            desc.urls = urls;
            desc
        })
}

fn entry() -> impl Strategy<Value = Descriptor> {
    (
        descriptor(prop_oneof![
            Just(mt::OCI_MANIFEST.to_owned()),
            Just(mt::OCI_INDEX.to_owned())
        ]),
        proptest::option::of(platform()),
    )
        .prop_map(|(mut d, p)| {
            d.platform = p;
            d
        })
}

fn config() -> impl Strategy<Value = Descriptor> {
    descriptor(Just(mt::OCI_CONFIG.to_owned()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn image_manifest_build_then_parse(
        config in config(),
        layers in proptest::collection::vec(descriptor(media_type()), 0..6),
        subject in proptest::option::of(descriptor(Just(mt::OCI_MANIFEST.to_owned()))),
        artifact_type in proptest::option::of(Just("application/vnd.example.thing+json".to_owned())),
        ann in annotations(),
    ) {
        let mut b = ImageManifestBuilder::oci(config.clone()).layers(layers.clone());
        if let Some(s) = &subject { b = b.subject(s.clone()); }
        if let Some(a) = &artifact_type { b = b.artifact_type(a.clone()); }
        for (k, v) in ann.iter().flatten() { b = b.annotation(k.clone(), v.clone()); }
        let built = b.clone().build().unwrap();
        // Deterministic.
        let again = b.build().unwrap();
        prop_assert_eq!(again.raw(), built.raw());
        // What a peer receives parses to the same thing, with the digest of the bytes.
        let parsed = Manifest::parse(built.raw().to_vec(), Some(mt::OCI_MANIFEST)).unwrap();
        prop_assert_eq!(parsed.digest(), &Algorithm::Sha256.hash(built.raw()));
        prop_assert_eq!(parsed.config(), Some(&config));
        prop_assert_eq!(parsed.layers(), layers.as_slice());
        prop_assert_eq!(parsed.subject(), subject.as_ref());
        prop_assert_eq!(parsed.artifact_type(), artifact_type.as_deref());
        let want_ann = ann.filter(|a| !a.is_empty());
        prop_assert_eq!(parsed.annotations(), want_ann.as_ref());
        let mut children = Vec::new();
        children.extend(subject);
        children.push(config);
        children.extend(layers);
        prop_assert_eq!(parsed.children(), children.as_slice());
        // No insignificant whitespace outside strings: compact serde output is identical.
        let value: serde_json::Value = serde_json::from_slice(built.raw()).unwrap();
        prop_assert_eq!(serde_json::to_vec(&value).unwrap().len(), built.raw().len());
    }

    #[test]
    fn index_build_then_parse(entries in proptest::collection::vec(entry(), 0..12), ann in annotations()) {
        let mut b = IndexBuilder::oci().manifests(entries.clone());
        if let Some(a) = ann.clone() { b = b.annotations(a); }
        let built = b.build().unwrap();
        let parsed = Manifest::parse(built.raw().clone(), None).unwrap();
        prop_assert!(parsed.is_index());
        prop_assert_eq!(parsed.manifests(), entries.as_slice());
        let want_ann = ann.filter(|a| !a.is_empty());
        prop_assert_eq!(parsed.annotations(), want_ann.as_ref());
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), ct in proptest::option::of(proptest::sample::select(mt::MANIFEST_MEDIA_TYPES))) {
        let _ = Manifest::parse(bytes, ct);
    }

    #[test]
    fn parsing_mutated_manifests_never_panics(
        which in 0usize..FIXTURES.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = fixture(FIXTURES[which]);
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Ok(m) = Manifest::parse(bytes.clone(), None) {
            prop_assert_eq!(m.raw().as_ref(), bytes.as_slice());
        }
    }

    #[test]
    fn reduction_keeps_exactly_the_matching_entries(
        entries in proptest::collection::vec(entry(), 1..12),
        wanted in proptest::collection::vec(platform(), 1..3),
    ) {
        let index = IndexBuilder::oci().manifests(entries.clone()).build().unwrap();
        // Model: same normalised os/arch/variant (and a compatible Windows build), not an
        // attestation; plus attestations naming a kept entry (none here).
        let key = |p: &Platform| { let n = normalize(p); (n.os, n.architecture, n.variant) };
        let model: Vec<Descriptor> = entries.iter().filter(|d| {
            d.platform.as_ref().is_some_and(|p| !p.is_unknown() && wanted.iter().any(|w| {
                key(w) == key(p) && Matcher::strict(w).matches(p)
            }))
        }).cloned().collect();
        match reduce(&index, &wanted) {
            Ok(r) => {
                prop_assert_eq!(r.index.manifests(), model.as_slice());
                prop_assert_eq!(&r.references, &model);
                prop_assert_eq!(r.index.manifests().len() + r.dropped.len(), entries.len());
                for d in &r.dropped { prop_assert!(!model.contains(d)); }
            }
            Err(ManifestError::NoMatchingPlatform { .. }) => prop_assert!(model.is_empty()),
            Err(e) => prop_assert!(false, "{}", e),
        }
    }

    #[test]
    fn select_returns_a_best_ranked_entry(entries in proptest::collection::vec(entry(), 1..12), wanted in platform()) {
        let index = IndexBuilder::oci().manifests(entries.clone()).build().unwrap();
        let m = Matcher::new(&wanted);
        let best = entries.iter().filter_map(|d| m.rank(d.platform.as_ref()?)).min();
        match platform::select(&index, &wanted) {
            Ok(d) => match best {
                Some(r) => prop_assert_eq!(m.rank(d.platform.as_ref().unwrap()), Some(r)),
                None => prop_assert!(d.platform.is_none()),
            },
            Err(_) => {
                prop_assert!(best.is_none());
                prop_assert!(entries.iter().all(|d| d.platform.is_some()));
            }
        }
    }

    #[test]
    fn nesting_in_indexes_without_platform_changes_no_choice(
        entries in proptest::collection::vec(entry(), 1..12),
        groups in proptest::collection::vec((1usize..4, any::<bool>()), 1..12),
        wanted in platform(),
    ) {
        // The images of a flat index, then the same images with runs of them moved into
        // nested indexes (without a platform) at their place: the same image is chosen.
        let entries: Vec<Descriptor> = entries.into_iter().map(|mut e| {
            e.media_type = mt::OCI_MANIFEST.to_owned();
            e
        }).collect();
        let flat = IndexBuilder::oci().manifests(entries.clone()).build().unwrap();
        let mut known = std::collections::HashMap::new();
        let mut root_entries = Vec::new();
        let mut rest = entries.as_slice();
        for (len, wrap) in groups.iter().cycle() {
            if rest.is_empty() { break; }
            let (run, tail) = rest.split_at((*len).min(rest.len()));
            rest = tail;
            if *wrap {
                let inner = IndexBuilder::oci().manifests(run.to_vec()).build().unwrap();
                root_entries.push(inner.descriptor());
                known.insert(inner.digest().clone(), inner);
            } else {
                root_entries.extend_from_slice(run);
            }
        }
        let root = IndexBuilder::oci().manifests(root_entries).build().unwrap();
        let nested = platform::select_nested(&root, &wanted, |d| known.get(&d.digest), &Default::default());
        match (platform::select(&flat, &wanted), nested) {
            (Ok(f), Ok(n)) => prop_assert_eq!(f, &n.descriptor),
            (Err(_), Err(ManifestError::NoMatchingPlatform { .. })) => {}
            (f, n) => prop_assert!(false, "flat {:?}, nested {:?}", f, n),
        }
    }

    #[test]
    fn platform_parse_never_panics_and_display_round_trips(s in "[a-zA-Z0-9_./()+*-]{0,24}") {
        if let Ok(p) = parse(&s) {
            let again = parse(&p.to_string()).unwrap();
            prop_assert_eq!(normalize(&again), normalize(&p));
        }
    }

    #[test]
    fn duplicate_keys_found_wherever_inserted(
        entries in proptest::collection::vec(entry(), 1..5),
        which in any::<prop::sample::Index>(),
    ) {
        let index = IndexBuilder::oci().manifests(entries).build().unwrap();
        let text = std::str::from_utf8(index.raw()).unwrap();
        // Repeat one `"size":N` of an entry inside its own object.
        let spots: Vec<usize> = text.match_indices("\"size\":").map(|(i, _)| i).collect();
        let at = spots[which.index(spots.len())];
        let dup = format!("{}\"size\":0,{}", &text[..at], &text[at..]);
        let err = Manifest::parse(dup.into_bytes(), None).unwrap_err();
        prop_assert!(matches!(err, ManifestError::DuplicateKey { ref key, .. } if key == "size"), "{}", err);
    }
}

const FIXTURES: &[&str] = &[
    "docker-hub-manifest-list.json",
    "docker-manifest.json",
    "oci-index-attestations.json",
    "windows-manifest-list.json",
    "helm-chart.json",
    "sigstore-bundle-referrer.json",
    "unknown-fields.json",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(path).unwrap()
}

/// Round trips with oci-spec (feature `oci-spec`).
#[cfg(feature = "oci-spec")]
mod oci_spec_round_trips {
    use super::*;
    use oci_spec::image as spec;

    /// oci-spec 0.10 (de)serialises a platform's `os.version` and `os.features` as
    /// `os_version` and `os_features` (youki-dev/oci-spec-rs#163), so standard JSON read by it
    /// has neither: the value a tool would get from our bytes.
    fn as_oci_spec_reads_it(mut i: spec::ImageIndex) -> spec::ImageIndex {
        let mut entries = i.manifests().clone();
        for d in &mut entries {
            if let Some(mut p) = d.platform().clone() {
                p.set_os_version(None).set_os_features(None);
                d.set_platform(Some(p));
            }
        }
        i.set_manifests(entries);
        i
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn image_manifest(
            config in config(),
            layers in proptest::collection::vec(descriptor(media_type()), 0..6),
            subject in proptest::option::of(descriptor(Just(mt::OCI_MANIFEST.to_owned()))),
            artifact_type in proptest::option::of(Just("application/vnd.example.thing+json".to_owned())),
            ann in annotations(),
        ) {
            let mut b = ImageManifestBuilder::oci(config).layers(layers);
            if let Some(s) = subject { b = b.subject(s); }
            if let Some(a) = artifact_type { b = b.artifact_type(a); }
            if let Some(a) = ann { b = b.annotations(a); }
            let ours = b.build().unwrap();
            // ours -> oci-spec -> ours: every modelled field, and since our bytes were
            // canonical, the same bytes and digest.
            let theirs = spec::ImageManifest::try_from(&ours).unwrap();
            let back = Manifest::try_from(&theirs).unwrap();
            prop_assert_eq!(back.children(), ours.children());
            prop_assert_eq!(back.subject(), ours.subject());
            prop_assert_eq!(back.artifact_type(), ours.artifact_type());
            prop_assert_eq!(back.annotations(), ours.annotations());
            prop_assert_eq!(back.raw(), ours.raw());
            // oci-spec -> ours -> bytes: oci-spec reads them back to the value it started from.
            let reparsed: spec::ImageManifest = serde_json::from_slice(back.raw()).unwrap();
            prop_assert_eq!(reparsed, theirs);
        }

        #[test]
        fn index(entries in proptest::collection::vec(entry(), 0..12), ann in annotations(), docker in any::<bool>()) {
            let b = if docker {
                // A Docker list: Docker entries, each with a platform.
                let entries = entries.into_iter().map(|mut e| {
                    e.media_type = mt::DOCKER_MANIFEST.to_owned();
                    e.platform.get_or_insert_with(|| Platform::new("linux", "amd64"));
                    e
                });
                IndexBuilder::docker().manifests(entries)
            } else {
                let mut b = IndexBuilder::oci().manifests(entries);
                if let Some(a) = ann { b = b.annotations(a); }
                b
            };
            let ours = b.build().unwrap();
            let theirs = spec::ImageIndex::try_from(&ours).unwrap();
            prop_assert_eq!(theirs.manifests().len(), ours.manifests().len());
            let back = Manifest::try_from(&theirs).unwrap();
            prop_assert_eq!(back.kind(), ours.kind());
            prop_assert_eq!(back.manifests(), ours.manifests());
            prop_assert_eq!(back.annotations(), ours.annotations());
            prop_assert_eq!(back.raw(), ours.raw());
            let reparsed: spec::ImageIndex = serde_json::from_slice(back.raw()).unwrap();
            prop_assert_eq!(reparsed, as_oci_spec_reads_it(theirs));
        }

        #[test]
        fn descriptor_and_platform(d in entry()) {
            let theirs = spec::Descriptor::from(&d);
            prop_assert_eq!(theirs.size(), d.size);
            prop_assert_eq!(theirs.digest().to_string(), d.digest.to_string());
            prop_assert_eq!(Descriptor::try_from(theirs).unwrap(), d.clone());
            if let Some(p) = &d.platform {
                prop_assert_eq!(Platform::from(spec::Platform::from(p)), p.clone());
            }
        }
    }
}
