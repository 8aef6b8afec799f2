//! Platform parsing, normalisation and matching: the vectors and containerd's rules
//! as tables.

use oci_manifest::build::IndexBuilder;
use oci_manifest::platform::{Matcher, host, normalize, parse, select};
use oci_manifest::{Descriptor, ManifestError, Platform, media_types as mt};

fn p(s: &str) -> Platform {
    parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn parse_and_normalise_table() {
    let host = host();
    let cases: &[(&str, String)] = &[
        // The normalisations.
        ("linux/aarch64", "linux/arm64".into()),
        ("linux/x86_64", "linux/amd64".into()),
        ("linux/x86-64", "linux/amd64".into()),
        ("linux/armhf", "linux/arm/v7".into()),
        ("linux/armel", "linux/arm/v6".into()),
        ("linux/i386", "linux/386".into()),
        ("macos/arm64", "darwin/arm64".into()),
        ("linux/arm64/v8", "linux/arm64".into()),
        ("linux/aarch64/8", "linux/arm64".into()),
        ("linux/arm", "linux/arm/v7".into()),
        ("linux/arm/7", "linux/arm/v7".into()),
        ("linux/arm/6", "linux/arm/v6".into()),
        ("linux/arm/v5", "linux/arm/v5".into()),
        ("linux/amd64/v1", "linux/amd64".into()),
        ("linux/amd64/v3", "linux/amd64/v3".into()),
        ("linux/arm64/v8.2", "linux/arm64/v8.2".into()),
        ("Linux/AMD64", "linux/amd64".into()),
        ("linux/ppc64le", "linux/ppc64le".into()),
        ("freebsd/riscv64", "freebsd/riscv64".into()),
        // Anything goes as os/arch pairs, as in containerd (os/arch are not checked).
        ("plan10/z80", "plan10/z80".into()),
        // A lone OS takes the host architecture; a lone architecture the host OS.
        (
            "linux",
            format!("linux/{}", host.architecture)
                + &host
                    .variant
                    .as_ref()
                    .map(|v| format!("/{v}"))
                    .unwrap_or_default(),
        ),
        ("arm64", format!("{}/arm64", host.os)),
        ("aarch64", format!("{}/arm64", host.os)),
        ("armhf", format!("{}/arm/v7", host.os)),
        // OS version and features.
        (
            "windows(10.0.17763)/amd64",
            "windows(10.0.17763)/amd64".into(),
        ),
        (
            "windows(10.0.17763.5458+win32k)/amd64",
            "windows(10.0.17763.5458)/amd64".into(),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(p(input).to_string(), *want, "parse({input:?})");
    }
    let w = p("windows(10.0.20348+win32k+foo)/amd64");
    assert_eq!(w.os_version.as_deref(), Some("10.0.20348"));
    assert_eq!(
        w.os_features,
        Some(vec!["win32k".to_owned(), "foo".to_owned()])
    );
    let f = p("windows(+win32k)/amd64");
    assert_eq!(
        (f.os_version, f.os_features),
        (None, Some(vec!["win32k".to_owned()]))
    );
}

#[test]
fn parse_rejects_with_the_input_and_a_reason() {
    for bad in [
        "",
        "linux/",
        "/amd64",
        "linux//v7",
        "linux/amd64/v2/extra",
        "linux/*",
        "lin ux/amd64",
        "linux/amd 64",
        "windows(10.0/amd64",
        "windows(10 0)/amd64",
        "windows(1+)/amd64",
        "plan10",
        "linux.x/amd64",
    ] {
        match parse(bad) {
            Err(ManifestError::InvalidPlatform { input, reason }) => {
                assert_eq!(input, bad);
                assert!(!reason.is_empty());
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn normalise_structs_and_host() {
    let raw = Platform::new("Linux", "AARCH64").with_variant("V8");
    assert_eq!(normalize(&raw), Platform::new("linux", "arm64"));
    assert_eq!(
        normalize(&Platform::new("linux", "arm")),
        Platform::new("linux", "arm").with_variant("v7")
    );
    assert_eq!(
        normalize(&Platform::new("linux", "i386").with_variant("x")),
        Platform::new("linux", "386")
    );
    let h = host();
    assert_eq!(normalize(&h), h, "host() is normalised");
    assert_eq!(p(&h.to_string()), h, "host() round-trips through parse");
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        assert_eq!(h.to_string(), "linux/amd64");
    }
    if cfg!(all(target_os = "linux", target_arch = "aarch64")) {
        assert_eq!(h.to_string(), "linux/arm64");
    }
}

fn accepted(wanted: &str) -> Vec<String> {
    Matcher::new(&p(wanted))
        .accepted()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn ranked_vectors_follow_containerd() {
    let table: &[(&str, &[&str])] = &[
        (
            "linux/arm64",
            &[
                "linux/arm64",
                "linux/arm/v8",
                "linux/arm/v7",
                "linux/arm/v6",
                "linux/arm/v5",
            ],
        ),
        (
            "linux/arm64/v8.2",
            &[
                "linux/arm64/v8.2",
                "linux/arm64/v8.1",
                "linux/arm64",
                "linux/arm/v8",
                "linux/arm/v7",
                "linux/arm/v6",
                "linux/arm/v5",
            ],
        ),
        (
            "linux/arm64/v9",
            &[
                "linux/arm64/v9",
                "linux/arm64/v8.5",
                "linux/arm64/v8.4",
                "linux/arm64/v8.3",
                "linux/arm64/v8.2",
                "linux/arm64/v8.1",
                "linux/arm64",
                "linux/arm/v8",
                "linux/arm/v7",
                "linux/arm/v6",
                "linux/arm/v5",
            ],
        ),
        (
            "linux/arm64/v9.6",
            &[
                "linux/arm64/v9.6",
                "linux/arm64/v9.5",
                "linux/arm64/v9.4",
                "linux/arm64/v9.3",
                "linux/arm64/v9.2",
                "linux/arm64/v9.1",
                "linux/arm64/v9",
                "linux/arm64/v8.9",
                "linux/arm64/v8.8",
                "linux/arm64/v8.7",
                "linux/arm64/v8.6",
                "linux/arm64/v8.5",
                "linux/arm64/v8.4",
                "linux/arm64/v8.3",
                "linux/arm64/v8.2",
                "linux/arm64/v8.1",
                "linux/arm64",
                "linux/arm/v8",
                "linux/arm/v7",
                "linux/arm/v6",
                "linux/arm/v5",
            ],
        ),
        (
            "linux/arm/v8",
            &[
                "linux/arm/v8",
                "linux/arm/v7",
                "linux/arm/v6",
                "linux/arm/v5",
            ],
        ),
        (
            "linux/arm",
            &["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"],
        ),
        ("linux/arm/v6", &["linux/arm/v6", "linux/arm/v5"]),
        ("linux/arm/v5", &["linux/arm/v5"]),
        ("linux/amd64", &["linux/amd64", "linux/386"]),
        (
            "linux/amd64/v2",
            &["linux/amd64/v2", "linux/amd64", "linux/386"],
        ),
        (
            "linux/amd64/v4",
            &[
                "linux/amd64/v4",
                "linux/amd64/v3",
                "linux/amd64/v2",
                "linux/amd64",
                "linux/386",
            ],
        ),
        ("linux/386", &["linux/386"]),
        ("linux/ppc64le", &["linux/ppc64le"]),
        ("windows/amd64", &["windows/amd64", "windows/386"]),
    ];
    for (wanted, want) in table {
        assert_eq!(accepted(wanted), *want, "accepted({wanted})");
    }
}

#[test]
fn match_table() {
    // (wanted, candidate, matches)
    let table: &[(&str, &str, bool)] = &[
        ("linux/arm64", "linux/arm64", true),
        ("linux/arm64", "linux/aarch64", true),
        ("linux/arm64", "linux/arm64/v8", true),
        ("linux/arm64", "linux/arm/v7", true),
        ("linux/arm64", "linux/arm", true),
        ("linux/arm64", "linux/arm64/v8.1", false),
        ("linux/arm64", "linux/amd64", false),
        ("linux/arm64", "darwin/arm64", false),
        ("linux/arm/v7", "linux/arm64", false),
        ("linux/arm/v7", "linux/arm/v8", false),
        ("linux/arm/v7", "linux/armel", true),
        ("linux/arm/v6", "linux/armhf", false),
        ("linux/amd64", "linux/x86_64", true),
        ("linux/amd64", "linux/i386", true),
        ("linux/amd64", "linux/amd64/v2", false),
        ("linux/amd64/v3", "linux/amd64/v2", true),
        ("linux/amd64/v3", "linux/amd64/v1", true),
        ("linux/amd64/v2", "linux/amd64/v3", false),
        ("linux/386", "linux/amd64", false),
        ("linux/s390x", "linux/s390x", true),
        ("macos/arm64", "darwin/arm64", true),
        ("unknown/unknown", "unknown/unknown", false),
        ("linux/amd64", "unknown/unknown", false),
    ];
    for (wanted, cand, want) in table {
        let m = Matcher::new(&p(wanted));
        assert_eq!(m.matches(&p(cand)), *want, "{wanted} accepts {cand}?");
    }
}

#[test]
fn ranking_orders_candidates() {
    let m = Matcher::new(&p("linux/arm64"));
    let mut cands = [
        p("linux/arm/v5"),
        p("linux/arm/v7"),
        p("linux/arm64"),
        p("linux/arm/v6"),
        p("linux/arm/v8"),
    ];
    cands.sort_by_key(|c| m.rank(c));
    let order: Vec<String> = cands.iter().map(ToString::to_string).collect();
    assert_eq!(
        order,
        [
            "linux/arm64",
            "linux/arm/v8",
            "linux/arm/v7",
            "linux/arm/v6",
            "linux/arm/v5"
        ]
    );
}

#[test]
fn strict_matcher_accepts_only_the_platform() {
    let m = Matcher::strict(&p("linux/arm64"));
    assert!(m.matches(&p("linux/aarch64")));
    assert!(!m.matches(&p("linux/arm/v7")));
    let m = Matcher::strict(&p("linux/amd64"));
    assert!(!m.matches(&p("linux/386")));
}

#[test]
fn os_features_must_be_a_subset_of_the_wanted() {
    let with = Matcher::new(&p("windows(10.0.17763+win32k)/amd64"));
    let without = Matcher::new(&p("windows(10.0.17763)/amd64"));
    let needs = p("windows(10.0.17763.100+win32k)/amd64");
    let plain = p("windows(10.0.17763.100)/amd64");
    assert!(with.matches(&needs) && with.matches(&plain));
    assert!(!without.matches(&needs) && without.matches(&plain));
}

#[test]
fn windows_os_version_compatibility() {
    // (host, image, compatible)
    let table: &[(&str, &str, bool)] = &[
        ("10.0.17763.1", "10.0.17763.5458", true),
        ("10.0.17763.1", "10.0.20348.1", false),
        ("10.0.17763.1", "10.0.14393.1", false),
        ("10.0.20348.1", "10.0.20348.2322", true),
        ("10.0.20348.1", "10.0.17763.1", false),
        ("10.0.25398.1", "10.0.20348.1", true),
        ("10.0.25398.1", "10.0.25398.9", true),
        ("10.0.25398.1", "10.0.26100.1", false),
        ("10.0.26100.1", "10.0.20348.1", true),
        ("6.3.9600.1", "10.0.9600.1", false),
        ("10.0.17763.1", "garbage", false),
    ];
    for (host, image, want) in table {
        let m = Matcher::new(&p(&format!("windows({host})/amd64")));
        let mut c = Platform::new("windows", "amd64");
        c.os_version = Some((*image).to_owned());
        assert_eq!(m.matches(&c), *want, "host {host} runs {image}?");
    }
    // An image without os.version matches any host, after the versioned ones.
    let m = Matcher::new(&p("windows(10.0.17763.1)/amd64"));
    let none = Platform::new("windows", "amd64");
    let same = p("windows(10.0.17763.99)/amd64");
    assert!(m.rank(&same) < m.rank(&none));
    // On a 2022+ host, its own build comes before older compatible builds.
    let m = Matcher::new(&p("windows(10.0.25398.1)/amd64"));
    assert!(
        m.rank(&p("windows(10.0.25398.5)/amd64")) < m.rank(&p("windows(10.0.20348.9999)/amd64"))
    );
}

fn entry(platform: &str, n: u8) -> Descriptor {
    Descriptor::of(mt::OCI_MANIFEST, &[n]).with_platform(p(platform))
}

#[test]
fn select_picks_the_best_not_the_first() {
    let index = IndexBuilder::oci()
        .manifests([
            entry("linux/386", 1),
            entry("linux/arm/v6", 2),
            entry("linux/amd64", 3),
            entry("linux/arm/v7", 4),
        ])
        .build()
        .unwrap();
    let pick = |w: &str| select(&index, &p(w)).map(|d| d.digest.clone());
    assert_eq!(pick("linux/amd64").unwrap(), index.manifests()[2].digest);
    assert_eq!(pick("linux/amd64/v3").unwrap(), index.manifests()[2].digest);
    assert_eq!(pick("linux/386").unwrap(), index.manifests()[0].digest);
    assert_eq!(pick("linux/arm64").unwrap(), index.manifests()[3].digest);
    assert_eq!(pick("linux/arm/v6").unwrap(), index.manifests()[1].digest);
    let err = pick("linux/arm/v5").unwrap_err();
    match err {
        ManifestError::NoMatchingPlatform {
            index: d,
            wanted,
            available,
        } => {
            assert_eq!(&d, index.digest());
            assert_eq!(wanted, "linux/arm/v5");
            assert_eq!(
                available,
                ["linux/386", "linux/arm/v6", "linux/amd64", "linux/arm/v7"]
            );
        }
        other => panic!("{other}"),
    }
    // Ties go to the first entry.
    let twice = IndexBuilder::oci()
        .manifests([entry("linux/amd64", 1), entry("linux/x86_64", 2)])
        .build()
        .unwrap();
    assert_eq!(
        select(&twice, &p("linux/amd64")).unwrap().digest,
        twice.manifests()[0].digest
    );
}

#[test]
fn select_on_an_image_manifest_fails_cleanly() {
    let m = oci_manifest::build::ImageManifestBuilder::oci(Descriptor::of(mt::OCI_CONFIG, b"{}"))
        .build()
        .unwrap();
    let err = select(&m, &p("linux/amd64")).unwrap_err();
    assert!(err.to_string().contains("available: none"), "{err}");
}

#[test]
fn absurd_variant_levels_stay_cheap() {
    // The wanted platform is the user's word: a level of u32::MAX used to list ~4 billion
    // compatible steps (out of memory) before matching anything.
    for wanted in ["linux/amd64/v4294967295", "linux/arm/v4294967295"] {
        let m = Matcher::new(&p(wanted));
        assert!(m.matches(&p(wanted)), "{wanted} accepts itself");
        let lower = if wanted.contains("amd64") {
            "linux/amd64/v3"
        } else {
            "linux/arm/v7"
        };
        assert!(m.matches(&p(lower)), "{wanted} accepts {lower}");
        assert!(!m.matches(&p("linux/riscv64")), "{wanted}");
    }
}

/// A platform struct as found in an index, not normalised: `os[(version[+feature])]/arch[/variant]`.
fn raw(s: &str) -> Platform {
    let (os_part, rest) = s.split_once('/').unwrap();
    let (os, version, features) = match os_part.split_once('(') {
        Some((os, v)) => {
            let mut parts = v.trim_end_matches(')').split('+');
            let version = parts.next().filter(|v| !v.is_empty()).map(str::to_owned);
            let feats: Vec<String> = parts.map(str::to_owned).collect();
            (os, version, (!feats.is_empty()).then_some(feats))
        }
        None => (os_part, None, None),
    };
    let mut parts = rest.split('/');
    let mut p = Platform::new(os, parts.next().unwrap());
    p.variant = parts.next().map(str::to_owned);
    p.os_version = version;
    p.os_features = features;
    p
}

#[test]
fn platform_matches_table() {
    // (wanted, candidate, matches), both as raw structs: `matches` normalises.
    let table: &[(&str, &str, bool)] = &[
        // Aliases and default variants.
        ("linux/arm64", "linux/arm64", true),
        ("linux/arm64", "linux/aarch64", true),
        ("linux/arm64", "linux/arm64/v8", true),
        ("linux/arm64", "linux/aarch64/8", true),
        ("linux/arm64/v8", "linux/arm64", true),
        ("linux/arm64", "linux/arm64/v8.2", false),
        ("linux/arm64", "linux/arm/v7", false),
        ("linux/arm64", "linux/arm/v8", false),
        ("linux/arm", "linux/arm/v7", true),
        ("linux/arm/v7", "linux/arm", true),
        ("linux/arm/v7", "linux/armhf", true),
        ("linux/arm/v6", "linux/armel", true),
        ("linux/arm/v7", "linux/arm/v6", false),
        ("linux/amd64", "linux/x86_64", true),
        ("linux/amd64", "linux/x86-64", true),
        ("linux/amd64", "linux/amd64/v1", true),
        ("linux/amd64", "linux/amd64/v2", false),
        ("linux/amd64/v2", "linux/amd64", false),
        ("linux/amd64", "linux/386", false),
        ("linux/386", "linux/i386", true),
        ("linux/386", "linux/i686", true),
        ("Linux/AMD64", "linux/amd64", true),
        ("darwin/arm64", "macos/arm64", true),
        ("linux/amd64", "windows/amd64", false),
        ("linux/riscv64", "linux/riscv64", true),
        // os.version: only for a Windows wanted platform that has one.
        (
            "windows(10.0.20348.2227)/amd64",
            "windows(10.0.20348.1)/amd64",
            true,
        ),
        ("windows(10.0.20348.2227)/amd64", "windows/amd64", true),
        (
            "windows(10.0.20348.2227)/amd64",
            "windows(10.0.17763.1)/amd64",
            false,
        ),
        (
            "windows(10.0.20348.2227)/amd64",
            "windows(10.0.26100.1)/amd64",
            false,
        ),
        (
            "windows(10.0.17763.5458)/amd64",
            "windows(10.0.17763.1)/amd64",
            true,
        ),
        (
            "windows(10.0.17763.5458)/amd64",
            "windows(10.0.20348.1)/amd64",
            false,
        ),
        ("windows/amd64", "windows(10.0.17763.1)/amd64", true),
        ("linux(5.15)/amd64", "linux(6.1)/amd64", true),
        // os.features: the candidate's must all be the wanted platform's.
        ("windows/amd64", "windows(+win32k)/amd64", false),
        ("windows(+win32k)/amd64", "windows(+win32k)/amd64", true),
        ("windows(+win32k)/amd64", "windows/amd64", true),
        // Attestations' placeholder matches nothing.
        ("unknown/unknown", "unknown/unknown", false),
        ("linux/amd64", "unknown/unknown", false),
    ];
    for (wanted, cand, want) in table {
        let (w, c) = (raw(wanted), raw(cand));
        assert_eq!(w.matches(&c), *want, "{wanted} matches {cand}?");
        // The same comparison as the strict matcher, and what matches strictly is also what
        // the wanted platform can run.
        assert_eq!(Matcher::strict(&w).matches(&c), *want, "{wanted} {cand}");
        if *want {
            assert!(Matcher::new(&w).matches(&c), "{wanted} runs {cand}");
        }
    }
    // CPU features (reserved) are ignored.
    let mut with_features = raw("linux/amd64");
    with_features.features = Some(vec!["sse4".to_owned()]);
    assert!(raw("linux/amd64").matches(&with_features));
}

#[test]
fn reduce_keeps_what_matches() {
    use oci_manifest::reduce;
    let cands = [
        "linux/amd64",
        "linux/x86_64",
        "linux/amd64/v2",
        "linux/arm64/v8",
        "linux/arm/v7",
        "windows(10.0.20348.1)/amd64",
        "windows(10.0.17763.1)/amd64",
    ];
    let entries: Vec<Descriptor> = cands
        .iter()
        .enumerate()
        .map(|(i, c)| Descriptor::of(mt::OCI_MANIFEST, &[i as u8]).with_platform(raw(c)))
        .collect();
    let index = IndexBuilder::oci()
        .manifests(entries.clone())
        .build()
        .unwrap();
    for wanted in [
        "linux/amd64",
        "linux/aarch64",
        "linux/arm",
        "windows(10.0.20348.9)/amd64",
    ] {
        let w = raw(wanted);
        let kept = reduce(&index, std::slice::from_ref(&w)).unwrap();
        let model: Vec<Descriptor> = entries
            .iter()
            .filter(|d| w.matches(d.platform.as_ref().unwrap()))
            .cloned()
            .collect();
        assert_eq!(kept.index.manifests(), model.as_slice(), "{wanted}");
    }
}
