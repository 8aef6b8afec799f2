//! Reference vectors for Docker's normalisation (`ParseNormalizedNamed` in distribution's
//! `reference` package, v0.6). Most cases come from distribution's `normalize_test.go` and
//! `reference_test.go` (adapted: there `Parse` does not normalise), the rest are ours; each
//! expectation was checked against distribution's own code, except the documented
//! differences (marked "differs").

use oci_reference::{InvalidReferenceReason as R, Reference};

/// A 64-hex string (from distribution's tests).
const H: &str = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";
const D: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
const D2: &str = "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";

/// `input`, registry, repository, tag, familiar form (`FamiliarString`).
type Ok5 = (String, &'static str, String, Option<String>, String);

fn ok(input: &str, registry: &'static str, repo: &str, tag: Option<&str>, familiar: &str) -> Ok5 {
    (
        input.to_owned(),
        registry,
        repo.to_owned(),
        tag.map(str::to_owned),
        familiar.to_owned(),
    )
}

#[rustfmt::skip] // one case a line
fn valid() -> Vec<Ok5> {
    let a255 = "a".repeat(255);
    let deep = format!("{}a", "a/".repeat(127)); // 255 bytes
    let long_tag = "t".repeat(128);
    vec![
        // normalize_test.go: TestValidateReferenceName (valid names).
        ok("docker/docker", "docker.io", "docker/docker", None, "docker/docker"),
        ok("library/debian", "docker.io", "library/debian", None, "debian"),
        ok("debian", "docker.io", "library/debian", None, "debian"),
        ok("localhost/library/debian", "localhost", "library/debian", None, "localhost/library/debian"),
        ok("localhost/debian", "localhost", "debian", None, "localhost/debian"),
        ok("LOCALDOMAIN/library/debian", "LOCALDOMAIN", "library/debian", None, "LOCALDOMAIN/library/debian"),
        ok("LOCALDOMAIN/debian", "LOCALDOMAIN", "debian", None, "LOCALDOMAIN/debian"),
        ok("docker.io/docker/docker", "docker.io", "docker/docker", None, "docker/docker"),
        ok("docker.io/library/debian", "docker.io", "library/debian", None, "debian"),
        ok("docker.io/debian", "docker.io", "library/debian", None, "debian"),
        ok("index.docker.io/docker/docker", "docker.io", "docker/docker", None, "docker/docker"),
        ok("index.docker.io/library/debian", "docker.io", "library/debian", None, "debian"),
        ok("index.docker.io/debian", "docker.io", "library/debian", None, "debian"),
        ok("127.0.0.1:5000/docker/docker", "127.0.0.1:5000", "docker/docker", None, "127.0.0.1:5000/docker/docker"),
        ok("127.0.0.1:5000/library/debian", "127.0.0.1:5000", "library/debian", None, "127.0.0.1:5000/library/debian"),
        ok("127.0.0.1:5000/debian", "127.0.0.1:5000", "debian", None, "127.0.0.1:5000/debian"),
        ok("192.168.0.1", "docker.io", "library/192.168.0.1", None, "192.168.0.1"),
        ok("192.168.0.1:80", "docker.io", "library/192.168.0.1", Some("80"), "192.168.0.1:80"),
        ok("192.168.0.1:8/debian", "192.168.0.1:8", "debian", None, "192.168.0.1:8/debian"),
        ok("192.168.0.2:25000/debian", "192.168.0.2:25000", "debian", None, "192.168.0.2:25000/debian"),
        ok("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "docker.io", "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", None, "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev"),
        ok("[fc00::1]:5000/docker", "[fc00::1]:5000", "docker", None, "[fc00::1]:5000/docker"),
        ok("[fc00::1]:5000/docker/docker", "[fc00::1]:5000", "docker/docker", None, "[fc00::1]:5000/docker/docker"),
        ok("[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000", "library/debian", None, "[fc00:1:2:3:4:5:6:7]:5000/library/debian"),
        ok("Docker/docker", "Docker", "docker", None, "Docker/docker"),
        ok("DOCKER/docker", "DOCKER", "docker", None, "DOCKER/docker"),
        // TestValidateRemoteName (valid names).
        ok("docker-rules/docker", "docker.io", "docker-rules/docker", None, "docker-rules/docker"),
        ok("docker---rules/docker", "docker.io", "docker---rules/docker", None, "docker---rules/docker"),
        ok("doc/docker", "docker.io", "doc/docker", None, "doc/docker"),
        ok("d/docker", "docker.io", "d/docker", None, "d/docker"),
        ok("jess/t", "docker.io", "jess/t", None, "jess/t"),
        ok("dock__er/docker", "docker.io", "dock__er/docker", None, "dock__er/docker"),
        // TestParseRepositoryInfo: familiar, full and ambiguous forms of one name.
        ok("localhost/fooo/bar", "localhost", "fooo/bar", None, "localhost/fooo/bar"),
        ok("LOCALDOMAIN/fooo/bar", "LOCALDOMAIN", "fooo/bar", None, "LOCALDOMAIN/fooo/bar"),
        ok("fooo/bar", "docker.io", "fooo/bar", None, "fooo/bar"),
        ok("docker.io/fooo/bar", "docker.io", "fooo/bar", None, "fooo/bar"),
        ok("index.docker.io/fooo/bar", "docker.io", "fooo/bar", None, "fooo/bar"),
        ok("ubuntu", "docker.io", "library/ubuntu", None, "ubuntu"),
        ok("docker.io/library/ubuntu", "docker.io", "library/ubuntu", None, "ubuntu"),
        ok("nonlibrary/ubuntu", "docker.io", "nonlibrary/ubuntu", None, "nonlibrary/ubuntu"),
        ok("other/library", "docker.io", "other/library", None, "other/library"),
        ok("127.0.0.1:8000/private/moonbase", "127.0.0.1:8000", "private/moonbase", None, "127.0.0.1:8000/private/moonbase"),
        ok("127.0.0.1:8000/privatebase", "127.0.0.1:8000", "privatebase", None, "127.0.0.1:8000/privatebase"),
        ok("example.com/private/moonbase", "example.com", "private/moonbase", None, "example.com/private/moonbase"),
        ok("example.com:8000/privatebasee", "example.com:8000", "privatebasee", None, "example.com:8000/privatebasee"),
        ok("ubuntu-12.04-base", "docker.io", "library/ubuntu-12.04-base", None, "ubuntu-12.04-base"),
        ok("index.docker.io/library/ubuntu-12.04-base", "docker.io", "library/ubuntu-12.04-base", None, "ubuntu-12.04-base"),
        ok("docker.io/foo", "docker.io", "library/foo", None, "foo"),
        ok("library/foo/bar", "docker.io", "library/foo/bar", None, "library/foo/bar"),
        ok("docker.io/library/foo/bar", "docker.io", "library/foo/bar", None, "library/foo/bar"),
        ok("store/foo/bar", "docker.io", "store/foo/bar", None, "store/foo/bar"),
        ok("Foo/bar", "Foo", "bar", None, "Foo/bar"),
        ok("FOO/bar", "FOO", "bar", None, "FOO/bar"),
        // TestParseReferenceWithTagAndDigest: both are kept.
        ok(&format!("busybox:latest@{D2}"), "docker.io", "library/busybox", Some("latest"), &format!("busybox:latest@{D2}")),
        // TestParseAnyReference (names only).
        ok("redis:latest", "docker.io", "library/redis", Some("latest"), "redis:latest"),
        ok("docker.io/library/redis:latest", "docker.io", "library/redis", Some("latest"), "redis:latest"),
        ok(&format!("redis@{D}"), "docker.io", "library/redis", None, &format!("redis@{D}")),
        ok("dmcgowan/myapp:latest", "docker.io", "dmcgowan/myapp", Some("latest"), "dmcgowan/myapp:latest"),
        ok(&format!("docker.io/dmcgowan/myapp@{D}"), "docker.io", "dmcgowan/myapp", None, &format!("dmcgowan/myapp@{D}")),
        ok(&H[..63], "docker.io", &format!("library/{}", &H[..63]), None, &H[..63]),
        ok("dbcc1", "docker.io", "library/dbcc1", None, "dbcc1"),
        // TestNormalizedSplitHostname.
        ok("test.com/foo", "test.com", "foo", None, "test.com/foo"),
        ok("test_com/foo", "docker.io", "test_com/foo", None, "test_com/foo"),
        ok("docker/migrator", "docker.io", "docker/migrator", None, "docker/migrator"),
        ok("test.com:8080/foo", "test.com:8080", "foo", None, "test.com:8080/foo"),
        ok("test-com:8080/foo", "test-com:8080", "foo", None, "test-com:8080/foo"),
        ok("xn--n3h.com/foo", "xn--n3h.com", "foo", None, "xn--n3h.com/foo"),
        ok("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo", None, "xn--n3h.com:18080/foo"),
        // reference_test.go: TestReferenceParse, normalised.
        ok("test_com", "docker.io", "library/test_com", None, "test_com"),
        ok("test.com:tag", "docker.io", "library/test.com", Some("tag"), "test.com:tag"),
        ok("test.com:5000", "docker.io", "library/test.com", Some("5000"), "test.com:5000"),
        ok("test.com/repo:tag", "test.com", "repo", Some("tag"), "test.com/repo:tag"),
        ok("test:5000/repo", "test:5000", "repo", None, "test:5000/repo"),
        ok("test:5000/repo:tag", "test:5000", "repo", Some("tag"), "test:5000/repo:tag"),
        ok(&format!("test:5000/repo@{D}"), "test:5000", "repo", None, &format!("test:5000/repo@{D}")),
        ok(&format!("test:5000/repo:tag@{D}"), "test:5000", "repo", Some("tag"), &format!("test:5000/repo:tag@{D}")),
        // sha512 is refused there only because that test does not link it; Docker does.
        ok(&format!("validname@sha512:{}", "f".repeat(128)), "docker.io", "library/validname", None, &format!("validname@sha512:{}", "f".repeat(128))),
        // "Uppercase" before a `/` is read as a registry (a FIXME in distribution).
        ok("Uppercase/lowercase:tag", "Uppercase", "lowercase", Some("tag"), "Uppercase/lowercase:tag"),
        ok("lowercase:Uppercase", "docker.io", "library/lowercase", Some("Uppercase"), "lowercase:Uppercase"),
        ok(&format!("{deep}:tag-puts-this-over-max"), "docker.io", &deep, Some("tag-puts-this-over-max"), &format!("{deep}:tag-puts-this-over-max")),
        ok("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux", None, "sub-dom1.foo.com/bar/baz/quux"),
        ok("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux", Some("some-long-tag"), "sub-dom1.foo.com/bar/baz/quux:some-long-tag"),
        ok("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io", "test.example.com/my-app", Some("test.example.com"), "b.gcr.io/test.example.com/my-app:test.example.com"),
        ok("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", Some("xn--n3h.com"), "xn--n3h.com/myimage:xn--n3h.com"),
        ok(&format!("xn--7o8h.com/myimage:xn--7o8h.com@{D}"), "xn--7o8h.com", "myimage", Some("xn--7o8h.com"), &format!("xn--7o8h.com/myimage:xn--7o8h.com@{D}")),
        ok("foo_bar.com:8080", "docker.io", "library/foo_bar.com", Some("8080"), "foo_bar.com:8080"),
        ok("foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", Some("8080"), "foo/foo_bar.com:8080"),
        ok("192.168.1.1", "docker.io", "library/192.168.1.1", None, "192.168.1.1"),
        ok("192.168.1.1:tag", "docker.io", "library/192.168.1.1", Some("tag"), "192.168.1.1:tag"),
        ok("192.168.1.1:5000", "docker.io", "library/192.168.1.1", Some("5000"), "192.168.1.1:5000"),
        ok("192.168.1.1/repo", "192.168.1.1", "repo", None, "192.168.1.1/repo"),
        ok("192.168.1.1:5000/repo", "192.168.1.1:5000", "repo", None, "192.168.1.1:5000/repo"),
        ok("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", Some("5050"), "192.168.1.1:5000/repo:5050"),
        ok("[2001:db8::1]/repo", "[2001:db8::1]", "repo", None, "[2001:db8::1]/repo"),
        ok("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "repo", Some("tag"), "[2001:db8:1:2:3:4:5:6]/repo:tag"),
        ok("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "repo", None, "[2001:db8::1]:5000/repo"),
        ok(&format!("[2001:db8::1]:5000/repo:tag@{D}"), "[2001:db8::1]:5000", "repo", Some("tag"), &format!("[2001:db8::1]:5000/repo:tag@{D}")),
        ok("[2001:db8::]:5000/repo", "[2001:db8::]:5000", "repo", None, "[2001:db8::]:5000/repo"),
        ok("[::1]:5000/repo", "[::1]:5000", "repo", None, "[::1]:5000/repo"),
        ok(&format!("example.com/{a255}:tag"), "example.com", &a255, Some("tag"), &format!("example.com/{a255}:tag")),
        // 64-hex names: refused only as the whole input (see `invalid`).
        ok(&format!("{H}:v1"), "docker.io", &format!("library/{H}"), Some("v1"), &format!("{H}:v1")),
        ok(&format!("{H}:{H}"), "docker.io", &format!("library/{H}"), Some(H), &format!("{H}:{H}")),
        ok(&format!("{H}@{D}"), "docker.io", &format!("library/{H}"), None, &format!("{H}@{D}")),
        // (differs) Docker's short form `H` alone would be refused: `library/` is kept.
        ok(&format!("docker.io/{H}"), "docker.io", &format!("library/{H}"), None, &format!("library/{H}")),
        ok(&format!("index.docker.io/{H}"), "docker.io", &format!("library/{H}"), None, &format!("library/{H}")),
        ok(&format!("library/{H}"), "docker.io", &format!("library/{H}"), None, &format!("library/{H}")),
        ok(&format!("docker.io/library/{H}:v1"), "docker.io", &format!("library/{H}"), Some("v1"), &format!("{H}:v1")),
        ok(&format!("team/{H}"), "docker.io", &format!("team/{H}"), None, &format!("team/{H}")),
        ok(&format!("{H}/app"), "docker.io", &format!("{H}/app"), None, &format!("{H}/app")),
        ok(&format!("{H}/{H}"), "docker.io", &format!("{H}/{H}"), None, &format!("{H}/{H}")),
        ok(&format!("example.com/{H}"), "example.com", H, None, &format!("example.com/{H}")),
        ok(&format!("localhost:5000/{H}:v1"), "localhost:5000", H, Some("v1"), &format!("localhost:5000/{H}:v1")),
        ok(&format!("localhost/{H}"), "localhost", H, None, &format!("localhost/{H}")),
        ok(&format!("example.com/{H}/{H}@{D}"), "example.com", &format!("{H}/{H}"), None, &format!("example.com/{H}/{H}@{D}")),
        ok(&format!("{H}0"), "docker.io", &format!("library/{H}0"), None, &format!("{H}0")),
        ok(&format!("sha256:{H}"), "docker.io", "library/sha256", Some(H), &format!("sha256:{H}")),
        // Registry detection.
        ok("localhost", "docker.io", "library/localhost", None, "localhost"),
        ok("localhost:5000", "docker.io", "library/localhost", Some("5000"), "localhost:5000"),
        ok("localhost:5000/app:v1", "localhost:5000", "app", Some("v1"), "localhost:5000/app:v1"),
        ok("registry/app", "docker.io", "registry/app", None, "registry/app"),
        ok("registry:5000/app", "registry:5000", "app", None, "registry:5000/app"),
        ok("Example.COM/app", "Example.COM", "app", None, "Example.COM/app"),
        ok("docker.io", "docker.io", "library/docker.io", None, "docker.io"),
        ok("index.docker.io", "docker.io", "library/index.docker.io", None, "index.docker.io"),
        ok("Docker.io/foo", "Docker.io", "foo", None, "Docker.io/foo"),
        ok("docker.io:443/foo", "docker.io:443", "foo", None, "docker.io:443/foo"),
        ok("example.com:99999999/app", "example.com:99999999", "app", None, "example.com:99999999/app"),
        ok("my-reg.example.com:443/x", "my-reg.example.com:443", "x", None, "my-reg.example.com:443/x"),
        ok("a/b/c/d", "docker.io", "a/b/c/d", None, "a/b/c/d"),
        // (differs) Docker's short form would read back as another registry: `docker.io/` is kept.
        ok("docker.io/example.com/app", "docker.io", "example.com/app", None, "docker.io/example.com/app"),
        ok("docker.io/localhost/app:v1", "docker.io", "localhost/app", Some("v1"), "docker.io/localhost/app:v1"),
        ok("library/localhost", "docker.io", "library/localhost", None, "localhost"),
        ok("library/example.com:v1", "docker.io", "library/example.com", Some("v1"), "example.com:v1"),
        // Tags and path components.
        ok("app:_under", "docker.io", "library/app", Some("_under"), "app:_under"),
        ok("app:UPPER.case-1", "docker.io", "library/app", Some("UPPER.case-1"), "app:UPPER.case-1"),
        ok(&format!("app:{long_tag}"), "docker.io", "library/app", Some(&long_tag), &format!("app:{long_tag}")),
        ok("a.b/x_y", "a.b", "x_y", None, "a.b/x_y"),
        ok("a.b/x__y", "a.b", "x__y", None, "a.b/x__y"),
        ok("a.b/x---y", "a.b", "x---y", None, "a.b/x---y"),
        ok("a.b/x.y", "a.b", "x.y", None, "a.b/x.y"),
        ok("a.b/0", "a.b", "0", None, "a.b/0"),
    ]
}

#[rustfmt::skip] // one case a line
fn invalid() -> Vec<(String, R)> {
    let bad = |s: &str, r: R| (s.to_owned(), r);
    vec![
        // TestValidateReferenceName (invalid names).
        bad("https://github.com/docker/docker", R::InvalidRegistry),
        bad("docker/Docker", R::Uppercase),
        bad("-docker", R::InvalidPathComponent),
        bad("-docker/docker", R::InvalidPathComponent),
        bad("-docker.io/docker/docker", R::InvalidRegistry),
        bad("docker///docker", R::InvalidPathComponent),
        bad("docker.io/docker/Docker", R::Uppercase),
        bad("docker.io/docker///docker", R::InvalidPathComponent),
        bad("[fc00::1]", R::InvalidTag),
        bad("[fc00::1]:5000", R::InvalidPathComponent),
        bad("fc00::1:5000/debian", R::InvalidRegistry),
        bad("[fe80::1%eth0]:5000/debian", R::InvalidRegistry),
        bad("[2001:db8:3:4::192.0.2.33]:5000/debian", R::InvalidRegistry),
        bad(H, R::HexRepository),
        // TestValidateRemoteName (invalid names).
        bad("docker-/docker", R::InvalidPathComponent),
        bad("-docker-/docker", R::InvalidPathComponent),
        bad("____/____", R::InvalidPathComponent),
        bad("_docker/_docker", R::InvalidPathComponent),
        bad("dock..er/docker", R::InvalidRegistry),
        bad("dock_.er/docker", R::InvalidRegistry),
        bad("dock-.er/docker", R::InvalidRegistry),
        bad("docker/", R::InvalidPathComponent),
        bad(&format!("{}/docker", ["this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255"; 4].join("_")), R::NameTooLong { length: 278 }),
        // TestReferenceParse.
        bad("", R::Empty),
        bad(":justtag", R::Empty),
        bad(&format!("@{D}"), R::Empty),
        bad("repo@sha256:ffffffffffffffffffffffffffffffffff", R::InvalidDigest),
        bad(&format!("validname@invaliddigest:{}", "f".repeat(64)), R::InvalidDigest),
        bad("Uppercase:tag", R::Uppercase),
        bad("test:5000/Uppercase/lowercase:tag", R::Uppercase),
        bad(&format!("domain/{}:tag", "a".repeat(256)), R::NameTooLong { length: 263 }),
        bad("aa/asdf$$^/aa", R::InvalidPathComponent),
        bad("[2001:db8::1]", R::InvalidTag),
        bad("[2001:db8::1]:5000", R::InvalidPathComponent),
        bad("[2001:db8::1]:tag", R::InvalidPathComponent),
        bad("[fe80::1%eth0]:5000/repo", R::InvalidRegistry),
        bad("[fe80::1%@invalidzone]:5000/repo", R::InvalidDigest),
        bad(&format!("example.com/{}:tag", "a".repeat(256)), R::NameTooLong { length: 256 }),
        // Only the whole input is an image ID; uppercase hex is not one, but not a name either.
        bad(&H.to_uppercase(), R::Uppercase),
        bad(&format!("{}:v1", H.to_uppercase()), R::Uppercase),
        // `library/` counts towards the limit.
        bad(&"b".repeat(255 - "library/".len() + 1), R::NameTooLong { length: 256 }),
        // Paths.
        bad("Ubuntu", R::Uppercase),
        bad("docker.io/Library/ubuntu", R::Uppercase),
        bad("example.com/App", R::Uppercase),
        bad("a.b/x___y", R::InvalidPathComponent),
        bad("a.b/x..y", R::InvalidPathComponent),
        bad("a.b/x._y", R::InvalidPathComponent),
        bad("a.b/-x", R::InvalidPathComponent),
        bad("a.b/x-", R::InvalidPathComponent),
        bad("a.b/_x", R::InvalidPathComponent),
        bad("a.b//x", R::InvalidPathComponent),
        bad("a.b/x/", R::InvalidPathComponent),
        bad("a.b/", R::Empty),
        bad("/x", R::InvalidPathComponent),
        bad("a.b/x y", R::InvalidPathComponent),
        bad("a.b/\u{e9}", R::InvalidPathComponent),
        bad("a:b:c", R::InvalidPathComponent),
        bad("app\n", R::InvalidPathComponent),
        bad("\u{0}", R::InvalidPathComponent),
        // Registries.
        bad("-a.com/x", R::InvalidRegistry),
        bad("a-.com/x", R::InvalidRegistry),
        bad("a..com/x", R::InvalidRegistry),
        bad("a.com:/x", R::InvalidRegistry),
        bad("a.com:50a/x", R::InvalidRegistry),
        bad(":5000/x", R::InvalidRegistry),
        bad("[::1/app", R::InvalidRegistry),
        bad("[]:5000/app", R::InvalidRegistry),
        bad("[::g]:5000/app", R::InvalidRegistry),
        bad("[::1]x/app", R::InvalidRegistry),
        bad("Foo_Bar/x", R::InvalidRegistry),
        // (differs) distribution reads this as a name with no registry at all.
        bad("a_b.com/x", R::InvalidRegistry),
        // Tags.
        bad("app:", R::InvalidTag),
        bad("app:.dot", R::InvalidTag),
        bad("app:-dash", R::InvalidTag),
        bad("app:a+b", R::InvalidTag),
        bad("app:v1\u{1b}[2J", R::InvalidTag),
        bad(&format!("app:{}", "a".repeat(129)), R::InvalidTag),
        bad("a.b/x:t/y", R::InvalidPathComponent),
        // Digests.
        bad("app@sha256:abc", R::InvalidDigest),
        bad("app@", R::InvalidDigest),
        bad(&format!("app@{}", D.to_uppercase()), R::InvalidDigest),
        bad(&format!("app@{}", "sha256:".to_owned() + &"F".repeat(64)), R::InvalidDigest),
        bad("app@md5:d41d8cd98f00b204e9800998ecf8427e", R::InvalidDigest),
        bad(&format!("app@{D}@{D}"), R::InvalidDigest),
        bad(&format!("app@{D}:v1"), R::InvalidDigest),
        // (differs) Docker accepts sha384; oci-digest cannot verify it.
        bad(&format!("app@sha384:{}", "f".repeat(96)), R::InvalidDigest),
    ]
}

#[test]
fn valid_references_normalise_as_docker_does() {
    let cases = valid();
    assert!(cases.len() > 100, "{} cases", cases.len());
    for (input, registry, repository, tag, familiar) in cases {
        let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.registry(), registry, "{input}");
        assert_eq!(r.repository(), repository, "{input}");
        assert_eq!(r.name(), format!("{registry}/{repository}"), "{input}");
        assert_eq!(r.tag(), tag.as_deref(), "{input}");
        let digest = input.split_once('@').map(|(_, d)| d);
        assert_eq!(r.digest().map(|d| d.as_str()), digest, "{input}");
        assert_eq!(r.familiar(), familiar, "{input}");
        // Canonical form: name, tag, digest; and every printed form parses back to `r`.
        let mut canonical = r.name().to_owned();
        if let Some(t) = &tag {
            canonical = format!("{canonical}:{t}");
        }
        if let Some(d) = digest {
            canonical = format!("{canonical}@{d}");
        }
        assert_eq!(r.to_string(), canonical, "{input}");
        assert_eq!(Reference::parse(&canonical).as_ref(), Ok(&r), "{input}");
        assert_eq!(Reference::parse(&familiar).as_ref(), Ok(&r), "{input}");
        let bare = r.without_tag().without_digest();
        assert_eq!(
            Reference::parse(r.familiar_name()).as_ref(),
            Ok(&bare),
            "{input}"
        );
    }
}

#[test]
fn invalid_references_are_refused_with_the_rule_they_break() {
    let cases = invalid();
    assert!(cases.len() > 80, "{} cases", cases.len());
    for (input, reason) in cases {
        match Reference::parse(&input) {
            Err(e) => {
                assert_eq!(e.reason, reason, "{input:?}: {e}");
                assert_eq!(e.input, input, "{input:?}");
                // The input is printed escaped: no raw control characters reach a terminal.
                assert!(!e.to_string().chars().any(char::is_control), "{e}");
            }
            Ok(r) => panic!("{input:?} parsed as {r}, expected {reason:?}"),
        }
    }
}

#[test]
fn digest_errors_keep_their_source() {
    let e = Reference::parse("app@sha256:abc").unwrap_err();
    let source = std::error::Error::source(&e).expect("a digest error as source");
    assert!(source.to_string().contains("64"), "{source}");
    assert!(std::error::Error::source(&Reference::parse("App").unwrap_err()).is_none());
}

#[test]
fn hostile_input_is_cut_in_the_error() {
    let huge = format!("{}\u{1b}", "A".repeat(1 << 20));
    let e = Reference::parse(&huge).unwrap_err();
    assert!(e.input.len() < 400, "{}", e.input.len());
    assert!(e.to_string().len() < 600);
}
