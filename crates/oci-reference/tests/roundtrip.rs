//! Properties: references built from valid parts parse to what a small model of Docker's rules
//! says, and every form printed (canonical, familiar, familiar name) parses back to the same
//! reference; arbitrary strings never panic, and whatever parses satisfies the grammar.

use oci_reference::{
    Digest, InvalidReferenceReason, MAX_NAME_LENGTH, Reference, validate_registry,
    validate_repository, validate_tag,
};
use proptest::prelude::*;

fn hex64() -> impl Strategy<Value = String> {
    "[0-9a-f]{64}"
}

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,6}){0,2}",
        1 => Just("library".to_owned()),
        1 => Just("localhost".to_owned()),
        1 => hex64(),
    ]
}

/// A registry as written, or none.
fn registry() -> impl Strategy<Value = Option<String>> {
    let port = proptest::option::of(0u32..100_000).prop_map(|p| match p {
        Some(p) => format!(":{p}"),
        None => String::new(),
    });
    let host = prop_oneof![
        Just("docker.io".to_owned()),
        Just("index.docker.io".to_owned()),
        Just("localhost".to_owned()),
        "[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,6}[A-Za-z0-9])?){1,3}",
        "[A-Z][A-Za-z0-9]{0,8}",
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        "\\[[0-9a-fA-F]{0,4}:[0-9a-fA-F:]{0,16}\\]",
    ];
    proptest::option::of((host, port).prop_map(|(h, p)| format!("{h}{p}")))
}

fn tag() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}",
        hex64(),
        "[0-9]{1,5}",
    ])
}

fn digest() -> impl Strategy<Value = Option<Digest>> {
    proptest::option::of(prop_oneof![
        hex64().prop_map(|h| format!("sha256:{h}")),
        "[0-9a-f]{128}".prop_map(|h| format!("sha512:{h}")),
    ])
    .prop_map(|d| d.map(|d| Digest::parse(&d).expect("generated digest")))
}

/// What Docker makes of the parts: (registry, repository), or the reason it refuses them.
fn model(
    written: Option<&str>,
    path: &[String],
    input: &str,
) -> Result<(String, String), InvalidReferenceReason> {
    let is_hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex(input) && !input.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(InvalidReferenceReason::HexRepository);
    }
    let (registry, mut repo) = match written {
        Some(r) => (r.to_owned(), path.join("/")),
        None if path.len() > 1 && (path[0] == "localhost" || path[0].contains('.')) => {
            (path[0].clone(), path[1..].join("/"))
        }
        None => ("docker.io".to_owned(), path.join("/")),
    };
    // A first component read as a registry must be a host: `_` is allowed in paths only.
    if registry.contains('_') {
        return Err(InvalidReferenceReason::InvalidRegistry);
    }
    let registry = if registry == "index.docker.io" {
        "docker.io".to_owned()
    } else {
        registry
    };
    if registry == "docker.io" && !repo.contains('/') {
        repo = format!("library/{repo}");
    }
    if repo.len() > MAX_NAME_LENGTH {
        return Err(InvalidReferenceReason::NameTooLong { length: repo.len() });
    }
    Ok((registry, repo))
}

fn assert_round_trips(r: &Reference) -> Result<(), TestCaseError> {
    prop_assert_eq!(&Reference::parse(&r.to_string()).unwrap(), r);
    prop_assert_eq!(&Reference::parse(&r.familiar()).unwrap(), r);
    prop_assert_eq!(
        Reference::parse(r.familiar_name()).unwrap(),
        r.without_tag().without_digest()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn parts_normalise_and_round_trip(
        written in registry(),
        path in proptest::collection::vec(component(), 1..5),
        tag in tag(),
        digest in digest(),
    ) {
        let mut input = match &written {
            Some(r) => format!("{r}/{}", path.join("/")),
            None => path.join("/"),
        };
        if let Some(t) = &tag {
            input = format!("{input}:{t}");
        }
        if let Some(d) = &digest {
            input = format!("{input}@{d}");
        }
        let parsed = Reference::parse(&input);
        match model(written.as_deref(), &path, &input) {
            Ok((registry, repo)) => {
                let r = parsed.map_err(|e| TestCaseError::fail(format!("{input}: {e}")))?;
                prop_assert_eq!(r.registry(), registry.as_str());
                prop_assert_eq!(r.repository(), repo.as_str());
                prop_assert_eq!(r.name(), format!("{registry}/{repo}"));
                prop_assert_eq!(r.tag(), tag.as_deref());
                prop_assert_eq!(r.digest(), digest.as_ref());
                assert_round_trips(&r)?;
            }
            Err(reason) => prop_assert_eq!(parsed.map_err(|e| e.reason), Err(reason)),
        }
    }

    #[test]
    fn a_64_hex_string_is_refused_only_alone(
        h in hex64(),
        written in registry(),
        t in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}",
    ) {
        let alone = Reference::parse(&h).map_err(|e| e.reason);
        prop_assert_eq!(alone, Err(InvalidReferenceReason::HexRepository));
        let tagged = Reference::parse(&format!("{h}:{t}")).unwrap();
        prop_assert_eq!(tagged.repository(), format!("library/{h}"));
        assert_round_trips(&tagged)?;
        let on_hub = Reference::parse(&format!("docker.io/{h}")).unwrap();
        prop_assert_eq!(on_hub.name(), format!("docker.io/library/{h}"));
        assert_round_trips(&on_hub)?;
        let nested = Reference::parse(&format!("team/{h}")).unwrap();
        prop_assert_eq!(nested.repository(), format!("team/{h}"));
        assert_round_trips(&nested)?;
        if let Some(reg) = written {
            let r = Reference::parse(&format!("{reg}/{h}")).unwrap();
            assert_round_trips(&r)?;
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,80}") {
        if let Ok(r) = Reference::parse(&s) {
            assert_round_trips(&r)?;
        }
    }

    #[test]
    fn whatever_parses_obeys_the_grammar(
        s in "[a-zA-Z0-9._:/\\[\\]-]{1,40}(@sha256:[0-9a-f]{64})?",
    ) {
        match Reference::parse(&s) {
            Ok(r) => {
                prop_assert!(validate_registry(r.registry()).is_ok(), "{}", r);
                prop_assert!(validate_repository(r.repository()).is_ok(), "{}", r);
                if let Some(t) = r.tag() {
                    prop_assert!(validate_tag(t).is_ok(), "{}", r);
                }
                prop_assert_ne!(r.registry(), "index.docker.io");
                if r.registry() == "docker.io" {
                    prop_assert!(r.repository().contains('/'), "{}", r);
                }
                assert_round_trips(&r)?;
            }
            Err(e) => prop_assert_eq!(e.input, s),
        }
    }

    #[test]
    fn uppercase_path_is_refused(path in "[a-z]{1,5}[A-Z][a-z]{0,5}") {
        let r = Reference::parse(&format!("example.com/{path}")).map_err(|e| e.reason);
        prop_assert_eq!(r, Err(InvalidReferenceReason::Uppercase));
    }
}

#[test]
fn with_and_without_tag_and_digest() {
    let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        .parse()
        .unwrap();
    let r = Reference::parse("a.b/x:v1").unwrap();
    let pinned = r.with_digest(d.clone());
    assert_eq!(pinned.to_string(), format!("a.b/x:v1@{d}"));
    assert_eq!(pinned.manifest_reference(), d.as_str());
    let retagged = pinned.with_tag("v2").unwrap();
    assert_eq!(retagged.to_string(), format!("a.b/x:v2@{d}"));
    assert_eq!(
        retagged.with_tag("v 2").unwrap_err().reason,
        InvalidReferenceReason::InvalidTag
    );
    assert_eq!(retagged.without_digest().to_string(), "a.b/x:v2");
    assert_eq!(retagged.without_tag().to_string(), format!("a.b/x@{d}"));
    assert_eq!(r.without_tag().manifest_reference(), "latest");
}

#[test]
fn debug_shows_the_parts() {
    let r = Reference::parse("localhost:5000/team/app:v1").unwrap();
    let s = format!("{r:?}");
    assert!(
        s.contains("registry: \"localhost:5000\"") && s.contains("repository: \"team/app\""),
        "{s}"
    );
}

/// Feature `serde`: the canonical string, parsed (and so checked) on the way in.
#[cfg(feature = "serde")]
#[test]
fn serde_uses_the_canonical_string() {
    let r = Reference::parse("ubuntu:22.04").unwrap();
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(json, r#""docker.io/library/ubuntu:22.04""#);
    assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
    assert_eq!(
        serde_json::from_str::<Reference>(r#""ubuntu:22.04""#).unwrap(),
        r
    );
    let err = serde_json::from_str::<Reference>(r#""Team/App\u001b""#).unwrap_err();
    assert!(err.to_string().contains("must be lowercase"), "{err}");
    assert!(serde_json::from_str::<Reference>("42").is_err());
}
