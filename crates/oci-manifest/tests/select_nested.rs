//! Selection through nested indexes: an index of indexes, inherited platforms, attestations,
//! the depth limit, lookups that lie or lack an index.

use std::collections::HashMap;

use oci_manifest::build::IndexBuilder;
use oci_manifest::platform::{
    Matcher, Selection, parse, select, select_nested, select_nested_all, select_nested_with,
};
use oci_manifest::{
    Algorithm, Descriptor, Digest, Manifest, ManifestError, ParseOptions, Platform, annotations,
    media_types as mt,
};

fn p(s: &str) -> Platform {
    parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn image(platform: Option<&str>, tag: &str) -> Descriptor {
    let d = Descriptor::of(mt::OCI_MANIFEST, tag.as_bytes());
    match platform {
        Some(s) => d.with_platform(p(s)),
        None => d,
    }
}

fn index(entries: impl IntoIterator<Item = Descriptor>) -> Manifest {
    IndexBuilder::oci().manifests(entries).build().unwrap()
}

/// The manifests at hand, by digest.
#[derive(Default)]
struct Known(HashMap<Digest, Manifest>);

impl Known {
    fn add(&mut self, m: &Manifest) -> Descriptor {
        self.0.insert(m.digest().clone(), m.clone());
        m.descriptor()
    }
    fn lookup<'a>(&'a self) -> impl FnMut(&Descriptor) -> Option<&'a Manifest> + 'a {
        |d| self.0.get(&d.digest)
    }
}

fn opts() -> ParseOptions {
    ParseOptions::default()
}

/// The images [`select_nested_all`] finds for what `wanted` can run, best first.
fn all_for(root: &Manifest, wanted: &str, known: &Known) -> Vec<Descriptor> {
    select_nested_all(root, &Matcher::new(&p(wanted)), known.lookup(), &opts())
        .unwrap()
        .into_iter()
        .map(|s| s.descriptor)
        .collect()
}

/// root: [arm (no platform): [arm/v6, arm/v7], x86 (linux/amd64): [no platform, 386],
/// s390x image, an attestation].
struct Tree {
    root: Manifest,
    arm: Descriptor,
    x86: Descriptor,
    known: Known,
}

fn tree() -> Tree {
    let mut known = Known::default();
    let arm = known.add(&index([
        image(Some("linux/arm/v6"), "arm6"),
        image(Some("linux/arm/v7"), "arm7"),
    ]));
    let x86 = known
        .add(&index([
            image(None, "amd64"),
            image(Some("linux/386"), "386"),
        ]))
        .with_platform(p("linux/amd64"));
    let attestation = image(Some("unknown/unknown"), "att")
        .with_annotation(annotations::DOCKER_REFERENCE_TYPE, "attestation-manifest");
    let root = index([
        arm.clone(),
        x86.clone(),
        image(Some("linux/s390x"), "s390x"),
        attestation,
    ]);
    Tree {
        root,
        arm,
        x86,
        known,
    }
}

#[test]
fn an_index_of_indexes() {
    let t = tree();
    let found = select_nested(&t.root, &p("linux/arm64"), t.known.lookup(), &opts()).unwrap();
    assert_eq!(
        found,
        Selection {
            descriptor: image(Some("linux/arm/v7"), "arm7"),
            platform: Some(p("linux/arm/v7")),
            path: vec![t.arm.clone()],
        }
    );
    // An entry without a platform takes its index entry's.
    let found = select_nested(&t.root, &p("linux/amd64"), t.known.lookup(), &opts()).unwrap();
    assert_eq!(found.descriptor, image(None, "amd64"));
    assert_eq!(found.platform, Some(p("linux/amd64")));
    assert_eq!(found.path, vec![t.x86.clone()]);
    // The root's own entries.
    let found = select_nested(&t.root, &p("linux/s390x"), t.known.lookup(), &opts()).unwrap();
    assert_eq!(found.descriptor, image(Some("linux/s390x"), "s390x"));
    assert!(found.path.is_empty());
    // Every match, best first.
    assert_eq!(
        all_for(&t.root, "linux/arm64", &t.known),
        [
            image(Some("linux/arm/v7"), "arm7"),
            image(Some("linux/arm/v6"), "arm6")
        ]
    );
}

#[test]
fn an_index_whose_platform_does_not_match_is_not_entered() {
    let t = tree();
    // linux/386 is inside the linux/amd64 index, which a 386 host cannot run.
    let err = select_nested(&t.root, &p("linux/386"), t.known.lookup(), &opts()).unwrap_err();
    match err {
        ManifestError::NoMatchingPlatform {
            index,
            wanted,
            available,
        } => {
            assert_eq!(&index, t.root.digest());
            assert_eq!(wanted, "linux/386");
            assert_eq!(
                available,
                ["linux/arm/v6", "linux/arm/v7", "linux/amd64", "linux/s390x"]
            );
        }
        other => panic!("{other}"),
    }
    // An amd64 host enters it and can also run its 386 image, after the amd64 one.
    assert_eq!(
        all_for(&t.root, "linux/amd64", &t.known),
        [image(None, "amd64"), image(Some("linux/386"), "386")]
    );
}

#[test]
fn agrees_with_select_on_a_flat_index() {
    let flat = index([
        image(Some("linux/arm/v6"), "a"),
        image(Some("linux/arm/v7"), "b"),
        image(Some("linux/amd64"), "c"),
        image(None, "d"),
    ]);
    for wanted in ["linux/arm64", "linux/arm/v6", "linux/amd64", "linux/s390x"] {
        let nested = select_nested(&flat, &p(wanted), |_| None::<&Manifest>, &opts()).unwrap();
        assert_eq!(&nested.descriptor, select(&flat, &p(wanted)).unwrap());
        assert!(nested.path.is_empty());
    }
}

#[test]
fn images_without_a_platform_are_the_fallback() {
    let mut known = Known::default();
    let inner = known.add(&index([image(None, "only")]));
    let root = index([inner.clone(), image(Some("linux/arm64"), "arm")]);
    let found = select_nested(&root, &p("linux/amd64"), known.lookup(), &opts()).unwrap();
    assert_eq!(found.descriptor, image(None, "only"));
    assert_eq!(found.platform, None);
    assert_eq!(found.path, vec![inner]);
    // A match with a platform wins over it.
    let found = select_nested(&root, &p("linux/arm64"), known.lookup(), &opts()).unwrap();
    assert_eq!(found.descriptor, image(Some("linux/arm64"), "arm"));
}

#[test]
fn attestation_indexes_are_not_entered() {
    let root = index([
        Descriptor::of(mt::OCI_INDEX, b"never looked up").with_platform(p("unknown/unknown")),
        image(Some("linux/amd64"), "a"),
    ]);
    let lookup = |d: &Descriptor| -> Option<&Manifest> { panic!("looked up {}", d.digest) };
    let found = select_nested(&root, &p("linux/amd64"), lookup, &opts()).unwrap();
    assert_eq!(found.descriptor, image(Some("linux/amd64"), "a"));
}

#[test]
fn an_index_listed_twice_is_walked_once() {
    let mut known = Known::default();
    let inner = known.add(&index([image(Some("linux/amd64"), "a")]));
    let root = index([inner.clone(), inner.clone()]);
    let mut lookups = 0;
    let all = select_nested_all(
        &root,
        &Matcher::new(&p("linux/amd64")),
        |d: &Descriptor| {
            lookups += 1;
            known.0.get(&d.digest)
        },
        &opts(),
    )
    .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(lookups, 1);
}

/// `levels` indexes each holding the next, the last holding one linux/amd64 image.
fn chain(levels: usize, known: &mut Known) -> Manifest {
    let mut m = index([image(Some("linux/amd64"), "deep")]);
    for _ in 1..levels {
        let d = known.add(&m);
        m = index([d]);
    }
    m
}

#[test]
fn nesting_deeper_than_the_limit_is_refused() {
    let mut known = Known::default();
    // The root and 8 nested indexes: the last is at depth 8, the default limit.
    let root = chain(9, &mut known);
    let found = select_nested(&root, &p("linux/amd64"), known.lookup(), &opts()).unwrap();
    assert_eq!(found.path.len(), 8);
    // One more is too deep.
    let mut known = Known::default();
    let root = chain(10, &mut known);
    let err = select_nested(&root, &p("linux/amd64"), known.lookup(), &opts()).unwrap_err();
    assert!(
        matches!(
            err,
            ManifestError::IndexTooDeep {
                depth: 9,
                limit: 8,
                ..
            }
        ),
        "{err}"
    );
    // The limit is the caller's.
    let shallow = opts().with_max_index_depth(2);
    let err = select_nested(&root, &p("linux/amd64"), known.lookup(), &shallow).unwrap_err();
    assert!(
        matches!(
            err,
            ManifestError::IndexTooDeep {
                depth: 3,
                limit: 2,
                ..
            }
        ),
        "{err}"
    );
    // A long chain is refused at the limit, without deep recursion.
    let mut known = Known::default();
    let root = chain(5_000, &mut known);
    let deep = opts().with_max_index_depth(usize::MAX);
    let found = select_nested(&root, &p("linux/amd64"), known.lookup(), &deep).unwrap();
    assert_eq!(found.path.len(), 4_999);
}

#[test]
fn a_lookup_that_loops_is_refused() {
    // A lookup that answers every digest with the root would make a cycle: each index must
    // hash to the digest its parent names, so it is refused at once.
    let inner = index([image(Some("linux/amd64"), "a")]);
    let root = index([inner.descriptor()]);
    let err = select_nested(&root, &p("linux/amd64"), |_| Some(&root), &opts()).unwrap_err();
    assert!(
        matches!(
            err,
            ManifestError::SizeMismatch { .. } | ManifestError::DigestMismatch { .. }
        ),
        "{err}"
    );
    // Same size, other bytes: the digest tells.
    let one = IndexBuilder::oci().annotation("k", "1").build().unwrap();
    let two = IndexBuilder::oci().annotation("k", "2").build().unwrap();
    assert_eq!(one.size(), two.size());
    let root = index([one.descriptor()]);
    let err = select_nested(&root, &p("linux/amd64"), |_| Some(&two), &opts()).unwrap_err();
    match err {
        ManifestError::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(&expected, one.digest());
            assert_eq!(&actual, two.digest());
        }
        other => panic!("{other}"),
    }
    // An image manifest where an index was named.
    let config = Descriptor::of(mt::OCI_CONFIG, b"{}");
    let m = oci_manifest::build::ImageManifestBuilder::oci(config)
        .build()
        .unwrap();
    let mut named = m.descriptor();
    named.media_type = mt::OCI_INDEX.to_owned();
    let root = index([named]);
    let err = select_nested(&root, &p("linux/amd64"), |_| Some(&m), &opts()).unwrap_err();
    assert!(
        matches!(err, ManifestError::DescriptorMediaType { .. }),
        "{err}"
    );
}

#[test]
fn a_missing_index_is_named() {
    let t = tree();
    let mut partial = Known::default();
    partial.add(t.known.0.get(&t.arm.digest).unwrap());
    let err = select_nested(&t.root, &p("linux/amd64"), partial.lookup(), &opts()).unwrap_err();
    match &err {
        ManifestError::MissingManifest {
            index,
            missing,
            media_type,
        } => {
            assert_eq!(index, t.root.digest());
            assert_eq!(missing, &t.x86.digest);
            assert_eq!(media_type, mt::OCI_INDEX);
        }
        other => panic!("{other}"),
    }
    assert_eq!(err.digest(), Some(t.root.digest()));
}

#[test]
fn a_sha512_name_for_a_nested_index_is_checked_with_sha512() {
    let inner = index([image(Some("linux/amd64"), "a")]);
    let mut named = inner.descriptor();
    named.digest = Algorithm::Sha512.hash(inner.raw());
    let root = index([named.clone()]);
    let found = select_nested(&root, &p("linux/amd64"), |_| Some(&inner), &opts()).unwrap();
    assert_eq!(found.path, vec![named]);
}

#[test]
fn lookups_may_hand_out_owned_or_shared_manifests() {
    let t = tree();
    let shared: HashMap<Digest, std::sync::Arc<Manifest>> = t
        .known
        .0
        .iter()
        .map(|(k, v)| (k.clone(), std::sync::Arc::new(v.clone())))
        .collect();
    let by_arc = select_nested_with(
        &t.root,
        &Matcher::new(&p("linux/arm64")),
        |d: &Descriptor| shared.get(&d.digest).map(std::sync::Arc::clone),
        &opts(),
    )
    .unwrap();
    let by_value = select_nested(
        &t.root,
        &p("linux/arm64"),
        |d: &Descriptor| t.known.0.get(&d.digest).cloned(),
        &opts(),
    )
    .unwrap();
    assert_eq!(by_arc, by_value);
}

#[test]
fn an_image_manifest_as_root_has_no_match() {
    let config = Descriptor::of(mt::OCI_CONFIG, b"{}");
    let m = oci_manifest::build::ImageManifestBuilder::oci(config)
        .build()
        .unwrap();
    let err = select_nested(&m, &p("linux/amd64"), |_| None::<&Manifest>, &opts()).unwrap_err();
    assert!(
        matches!(err, ManifestError::NoMatchingPlatform { .. }),
        "{err}"
    );
}
