//! Platforms: the `platform` object of index entries, parsing of `os/arch[/variant]`,
//! normalisation, the host's platform, and ranked matching the way containerd does it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The platform an image runs on, as found in an index entry's descriptor.
///
/// ```
/// use oci_manifest::Platform;
/// let p: Platform = "linux/aarch64".parse().unwrap();
/// assert_eq!(p.to_string(), "linux/arm64");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    /// Operating system (`linux`, `windows`, `darwin`, ...).
    pub os: String,
    /// CPU architecture, Go style (`amd64`, `arm64`, `arm`, `386`, `ppc64le`, ...).
    pub architecture: String,
    /// CPU variant (`v7` for `arm`, `v8` for `arm64`, `v2`/`v3` for `amd64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// OS version (Windows: `10.0.17763.1234`).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Required OS features (Windows: `win32k`).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// Required CPU features (reserved by the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
}

impl Platform {
    /// A platform with `os` and `architecture` only, taken as given (not normalised).
    pub fn new(os: impl Into<String>, architecture: impl Into<String>) -> Self {
        Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: None,
            os_version: None,
            os_features: None,
            features: None,
        }
    }

    /// Sets the variant (builder style).
    pub fn with_variant(mut self, variant: impl Into<String>) -> Self {
        self.variant = Some(variant.into());
        self
    }

    /// Sets the OS version (builder style).
    pub fn with_os_version(mut self, os_version: impl Into<String>) -> Self {
        self.os_version = Some(os_version.into());
        self
    }

    /// Whether this is the placeholder `unknown/unknown` that BuildKit gives attestation
    /// manifests in an index: such entries are never images to run.
    pub fn is_unknown(&self) -> bool {
        self.os == "unknown" && self.architecture == "unknown"
    }
}

impl fmt::Display for Platform {
    /// `os[(os.version)]/architecture[/variant]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.os)?;
        if let Some(v) = &self.os_version {
            write!(f, "({v})")?;
        }
        write!(f, "/{}", self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = crate::ManifestError;

    /// [`parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// Operating systems Go knows (`go tool dist list`), for single-word specifiers.
const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
];

/// Architectures Go knows, for single-word specifiers.
const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

fn component_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Parses a platform specifier and normalises it:
/// `os`, `arch`, `os/arch`, `os/arch/variant`, where `os` may carry a version and features as
/// `os(version)` or `os(version+feature+feature)` (`windows(10.0.17763+win32k)/amd64`).
///
/// A single word is taken as an OS when it is one Go knows (the architecture is then the
/// host's), else as an architecture (the OS is then the host's).
///
/// ```
/// use oci_manifest::platform::parse;
/// assert_eq!(parse("linux/x86_64").unwrap().to_string(), "linux/amd64");
/// assert_eq!(parse("linux/armhf").unwrap().to_string(), "linux/arm/v7");
/// let w = parse("windows(10.0.17763.5458+win32k)/amd64").unwrap();
/// assert_eq!(w.os_version.as_deref(), Some("10.0.17763.5458"));
/// assert_eq!(w.os_features, Some(vec!["win32k".to_owned()]));
/// assert!(parse("linux/amd64/v2/extra").is_err());
/// ```
pub fn parse(specifier: &str) -> Result<Platform, crate::ManifestError> {
    let invalid = |reason: &'static str| crate::ManifestError::InvalidPlatform {
        input: specifier.chars().take(200).collect(),
        reason,
    };
    if specifier.contains('*') {
        return Err(invalid("wildcards are not supported"));
    }
    let parts: Vec<&str> = specifier.split('/').collect();
    if parts.len() > 3 {
        return Err(invalid("expected os/arch[/variant]"));
    }
    // First part: os[(version[+feature...])].
    let first = parts[0];
    let (os, version, features) = match first.split_once('(') {
        None => (first, None, None),
        Some((os, rest)) => {
            let Some(inner) = rest.strip_suffix(')') else {
                return Err(invalid("unclosed '(' after the OS"));
            };
            let mut it = inner.split('+');
            let version = it.next().unwrap_or_default();
            if !version.is_empty() && !component_ok(version) {
                return Err(invalid("OS version must be made of [A-Za-z0-9_.-]"));
            }
            let feats: Vec<String> = it.map(str::to_owned).collect();
            if feats.iter().any(|f| !component_ok(f)) {
                return Err(invalid("OS features must be made of [A-Za-z0-9_.-]"));
            }
            (
                os,
                (!version.is_empty()).then(|| version.to_owned()),
                (!feats.is_empty()).then_some(feats),
            )
        }
    };
    if !component_ok(os) || os.contains('.') {
        return Err(invalid("OS must be made of [A-Za-z0-9_-]"));
    }
    for p in &parts[1..] {
        if !component_ok(p) {
            return Err(invalid(
                "architecture and variant must be made of [A-Za-z0-9_.-]",
            ));
        }
    }
    let host = host();
    let mut p = match parts.len() {
        1 => {
            let os_norm = normalize_os(os);
            if KNOWN_OS.contains(&os_norm.as_str()) {
                Platform {
                    os: os_norm,
                    architecture: host.architecture.clone(),
                    variant: host.variant.clone(),
                    ..Platform::new("", "")
                }
            } else if version.is_some() || features.is_some() {
                return Err(invalid("unknown operating system"));
            } else {
                let (arch, variant) = normalize_arch(os, "");
                if !KNOWN_ARCH.contains(&arch.as_str()) {
                    return Err(invalid("unknown operating system or architecture"));
                }
                Platform {
                    os: host.os.clone(),
                    architecture: arch,
                    variant,
                    ..Platform::new("", "")
                }
            }
        }
        2 => {
            let (arch, variant) = normalize_arch(parts[1], "");
            Platform {
                os: normalize_os(os),
                architecture: arch,
                variant,
                ..Platform::new("", "")
            }
        }
        _ => {
            let (arch, variant) = normalize_arch(parts[1], parts[2]);
            Platform {
                os: normalize_os(os),
                architecture: arch,
                variant,
                ..Platform::new("", "")
            }
        }
    };
    p.os_version = version;
    p.os_features = features;
    Ok(p)
}

fn normalize_os(os: &str) -> String {
    let os = os.to_ascii_lowercase();
    match os.as_str() {
        "macos" => "darwin".to_owned(),
        _ => os,
    }
}

/// Canonical architecture and variant: `aarch64`->`arm64`, `x86_64`/`x86-64`->`amd64`,
/// `armhf`->`arm/v7`, `armel`->`arm/v6`, `i386`->`386`, `arm` without variant->`arm/v7`,
/// `arm64/v8`->`arm64`, `amd64/v1`->`amd64`.
fn normalize_arch(arch: &str, variant: &str) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    let (a, v): (&str, &str) = match arch.as_str() {
        "i386" | "386" | "i686" => ("386", ""),
        "x86_64" | "x86-64" | "amd64" => ("amd64", if variant == "v1" { "" } else { &variant }),
        "aarch64" | "arm64" => (
            "arm64",
            if variant == "v8" || variant == "8" {
                ""
            } else {
                &variant
            },
        ),
        "armhf" => ("arm", "v7"),
        "armel" => ("arm", "v6"),
        "arm" => (
            "arm",
            match variant.as_str() {
                "" | "7" | "v7" => "v7",
                "5" => "v5",
                "6" => "v6",
                "8" => "v8",
                v => v,
            },
        ),
        other => (other, &variant),
    };
    (a.to_owned(), (!v.is_empty()).then(|| v.to_owned()))
}

/// The canonical form of `p`: lowercase, aliases resolved (see [`parse`]); OS version and
/// features are kept as they are.
///
/// ```
/// use oci_manifest::{Platform, platform::normalize};
/// let p = normalize(&Platform::new("Linux", "aarch64").with_variant("v8"));
/// assert_eq!(p, Platform::new("linux", "arm64"));
/// ```
pub fn normalize(p: &Platform) -> Platform {
    let (architecture, variant) =
        normalize_arch(&p.architecture, p.variant.as_deref().unwrap_or(""));
    Platform {
        os: normalize_os(&p.os),
        architecture,
        variant,
        os_version: p.os_version.clone(),
        os_features: p.os_features.clone(),
        features: p.features.clone(),
    }
}

/// The platform of the machine running this code, normalised (`linux/amd64`, `linux/arm64`,
/// `linux/arm/v7`, ...), from the compile-time target.
pub fn host() -> Platform {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let (arch, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "x86" => ("386", None),
        "aarch64" => ("arm64", None),
        "arm" => (
            "arm",
            Some(if cfg!(target_feature = "v7") {
                "v7"
            } else {
                "v6"
            }),
        ),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
        "powerpc64" => ("ppc64", None),
        "riscv64" => ("riscv64", None),
        "s390x" => ("s390x", None),
        "loongarch64" => ("loong64", None),
        "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
        "mips64" => ("mips64", None),
        "mips" if cfg!(target_endian = "little") => ("mipsle", None),
        "mips" => ("mips", None),
        "wasm32" => ("wasm", None),
        other => (other, None),
    };
    let mut p = Platform::new(os, arch);
    p.variant = variant.map(str::to_owned);
    p
}

/// Windows `major.minor.build[.revision]`, when `os.version` has that shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct WinVersion {
    major: u8,
    minor: u8,
    build: u16,
    revision: u32,
}

impl WinVersion {
    fn parse(v: &str) -> Option<WinVersion> {
        let mut it = v.split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        let build = it.next()?.parse().ok()?;
        let revision = match it.next() {
            Some(r) => r.parse().ok()?,
            None => 0,
        };
        Some(WinVersion {
            major,
            minor,
            build,
            revision,
        })
    }
}

/// Windows Server 2022 (LTSC 2022): from this build on, a host runs containers of any build
/// from 20348 up to its own (stable ABI); before it, host and container builds must be equal.
const WIN_LTSC2022: u16 = 20348;

/// Whether a Windows host of version `host` can run a container built for `ctr`.
fn windows_compatible(host: WinVersion, ctr: WinVersion) -> bool {
    if (host.major, host.minor) != (ctr.major, ctr.minor) {
        return false;
    }
    if host.build < WIN_LTSC2022 {
        return host.build == ctr.build;
    }
    (WIN_LTSC2022..=host.build).contains(&ctr.build)
}

/// How well a candidate fits; smaller is better. Compare ranks with `<`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rank {
    /// Position in the ranked list of acceptable os/arch/variant (0: exactly what was asked).
    step: usize,
    /// Windows: 0 same build, 1 another compatible build, 2 no version given.
    os_version_tier: u8,
    /// Windows: newer builds and revisions first (also when no version was asked for).
    newer: std::cmp::Reverse<(u16, u32)>,
}

/// Matches and ranks candidate platforms against a wanted one, following containerd's
/// `platforms.Only`: the wanted platform first, then what it can also run —
///
/// - `arm64` (= `arm64/v8`): `arm64`, then `arm/v8`, `arm/v7`, `arm/v6`, `arm/v5`;
///   `arm64/v8.N` also accepts `arm64/v8.(N-1)` .. `arm64/v8` first; `arm64/v9.N` accepts
///   `v9.(N-1)` .. `v9`, then `v8.(N+5)` (at most `v8.9`) down to `v8`;
/// - `arm/vN`: `arm/vN` down to `arm/v5`;
/// - `amd64/vN`: `amd64/vN` down to `amd64` (`v1`), then `386`;
/// - other architectures: only themselves.
///
/// OS, architecture and variant are compared after [`normalize`]. OS features of a candidate
/// must all be in the wanted platform's. For `windows` with an `os.version`, a candidate's
/// version must be compatible (same major.minor, and the same build before Windows Server
/// 2022, or a build from 20348 up to the host's after it) and the same build ranks first.
///
/// ```
/// use oci_manifest::platform::{parse, Matcher};
/// let m = Matcher::new(&parse("linux/arm64").unwrap());
/// let v7 = parse("linux/arm/v7").unwrap();
/// let v6 = parse("linux/arm/v6").unwrap();
/// assert!(m.matches(&v7));
/// assert!(m.rank(&v7) < m.rank(&v6));
/// assert!(!m.matches(&parse("linux/amd64").unwrap()));
/// ```
#[derive(Clone, Debug)]
pub struct Matcher {
    wanted: Platform,
    steps: Vec<(String, Option<String>)>,
    win: Option<WinVersion>,
    features: Vec<String>,
}

impl Matcher {
    /// A matcher accepting `wanted` and what it can also run, ranked (containerd's `Only`).
    pub fn new(wanted: &Platform) -> Matcher {
        let wanted = normalize(wanted);
        let steps = vector(&wanted.architecture, wanted.variant.as_deref());
        Matcher::with_steps(wanted, steps)
    }

    /// A matcher accepting only `wanted` itself after normalisation (containerd's
    /// `OnlyStrict`): `linux/arm64` does not accept `linux/arm/v7`, `amd64` not `386`.
    pub fn strict(wanted: &Platform) -> Matcher {
        let wanted = normalize(wanted);
        let steps = vec![(wanted.architecture.clone(), wanted.variant.clone())];
        Matcher::with_steps(wanted, steps)
    }

    fn with_steps(wanted: Platform, steps: Vec<(String, Option<String>)>) -> Matcher {
        let win = if wanted.os == "windows" {
            wanted.os_version.as_deref().and_then(WinVersion::parse)
        } else {
            None
        };
        let mut features = wanted.os_features.clone().unwrap_or_default();
        features.sort();
        features.dedup();
        Matcher {
            wanted,
            steps,
            win,
            features,
        }
    }

    /// The wanted platform, normalised.
    pub fn wanted(&self) -> &Platform {
        &self.wanted
    }

    /// The platforms accepted, best first (OS version and features aside).
    pub fn accepted(&self) -> Vec<Platform> {
        self.steps
            .iter()
            .map(|(a, v)| {
                let mut p = Platform::new(self.wanted.os.clone(), a.clone());
                p.variant = v.clone();
                p
            })
            .collect()
    }

    /// Whether `candidate` is acceptable. `unknown/unknown` (attestations) never is.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.rank(candidate).is_some()
    }

    /// How well `candidate` fits (smaller is better), or `None` when it does not.
    pub fn rank(&self, candidate: &Platform) -> Option<Rank> {
        if candidate.is_unknown() {
            return None;
        }
        let c = normalize(candidate);
        if c.os != self.wanted.os {
            return None;
        }
        let step = self
            .steps
            .iter()
            .position(|(a, v)| *a == c.architecture && *v == c.variant)?;
        if let Some(cf) = &c.os_features
            && !cf.iter().all(|f| self.features.binary_search(f).is_ok())
        {
            return None;
        }
        let (os_version_tier, newer) = match (self.win, c.os_version.as_deref()) {
            (Some(_), None) => (2, (0, 0)),
            (Some(host), Some(v)) => {
                let ctr = WinVersion::parse(v)?;
                if !windows_compatible(host, ctr) {
                    return None;
                }
                let tier = if ctr.build == host.build { 0 } else { 1 };
                (tier, (ctr.build, ctr.revision))
            }
            (None, v) => (
                0,
                v.and_then(WinVersion::parse)
                    .map_or((0, 0), |w| (w.build, w.revision)),
            ),
        };
        Some(Rank {
            step,
            os_version_tier,
            newer: std::cmp::Reverse(newer),
        })
    }
}

/// Highest amd64/arm variant level walked down from by [`vector`].
const MAX_VARIANT_LEVEL: u32 = 32;

/// containerd's platform vector: what `arch/variant` can run, best first.
fn vector(arch: &str, variant: Option<&str>) -> Vec<(String, Option<String>)> {
    let mut out = vec![(arch.to_owned(), variant.map(str::to_owned))];
    // Capped: a variant like `v4294967295` (the user's word) would otherwise list billions of
    // steps; no real level comes near the cap.
    let num = |v: Option<&str>| -> Option<u32> {
        v?.strip_prefix('v')?
            .parse::<u32>()
            .ok()
            .map(|n| n.min(MAX_VARIANT_LEVEL))
    };
    match arch {
        "amd64" => {
            if let Some(n) = num(variant).filter(|&n| n > 1) {
                for k in (1..n).rev() {
                    // v1 is spelt without a variant.
                    let v = (k > 1).then(|| format!("v{k}"));
                    out.push(("amd64".to_owned(), v));
                }
            }
            out.push(("386".to_owned(), None));
        }
        "arm" => {
            if let Some(n) = num(variant).filter(|&n| n > 5) {
                for k in (5..n).rev() {
                    out.push(("arm".to_owned(), Some(format!("v{k}"))));
                }
            }
        }
        "arm64" => {
            let v = variant.unwrap_or("v8");
            let (major, minor) = match v.strip_prefix('v').map(|r| r.split_once('.')) {
                Some(Some((ma, mi))) => (ma.parse::<u32>().ok(), mi.parse::<u32>().ok()),
                Some(None) => (v[1..].parse::<u32>().ok(), Some(0)),
                None => (None, None),
            };
            if let (Some(mut major), Some(mut minor)) = (major, minor)
                && major >= 8
                && minor <= 9
            {
                let arm64 = |ma: u32, mi: u32| {
                    let v = match (ma, mi) {
                        (8, 0) => None,
                        (ma, 0) => Some(format!("v{ma}")),
                        (ma, mi) => Some(format!("v{ma}.{mi}")),
                    };
                    ("arm64".to_owned(), v)
                };
                if major == 9 {
                    for mi in (0..minor).rev() {
                        out.push(arm64(9, mi));
                    }
                    minor = (minor + 5).min(9);
                    major = 8;
                    out.push(arm64(8, minor));
                }
                if major == 8 {
                    for mi in (0..minor).rev() {
                        out.push(arm64(8, mi));
                    }
                }
                // Every arm64 v8.x/v9.x CPU runs 32-bit arm/v8 and below.
                out.extend(vector("arm", Some("v8")));
            }
        }
        _ => {}
    }
    out
}

/// The best entry of `index` for `wanted`, ranked by [`Matcher::new`]; see [`select_with`].
///
/// ```
/// use oci_manifest::{Manifest, platform::{parse, select}};
/// let raw = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
///  {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"platform":{"os":"linux","architecture":"arm","variant":"v6"},
///   "digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},
///  {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"platform":{"os":"linux","architecture":"arm","variant":"v7"},
///   "digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}]}"#;
/// let index = Manifest::parse(&raw[..], None).unwrap();
/// let best = select(&index, &parse("linux/arm64").unwrap()).unwrap();
/// assert!(best.digest.as_str().starts_with("sha256:2222"));
/// let err = select(&index, &parse("linux/amd64").unwrap()).unwrap_err();
/// assert!(err.to_string().contains("available: linux/arm/v6, linux/arm/v7"), "{err}");
/// ```
pub fn select<'a>(
    index: &'a crate::Manifest,
    wanted: &Platform,
) -> Result<&'a crate::Descriptor, crate::ManifestError> {
    select_with(index, &Matcher::new(wanted))
}

/// The best entry of `index` under `matcher`: among entries whose platform matches, the best
/// ranked, the first in the index on ties. Entries without a platform are taken only when no
/// entry with a platform matches, and only when they are manifests and not attestations.
/// Entries with platform `unknown/unknown`, and BuildKit attestation manifests, are never
/// chosen. Fails with [`ManifestError::NoMatchingPlatform`](crate::ManifestError::NoMatchingPlatform)
/// listing what the index offers; an image manifest (not an index) fails the same way.
pub fn select_with<'a>(
    index: &'a crate::Manifest,
    matcher: &Matcher,
) -> Result<&'a crate::Descriptor, crate::ManifestError> {
    let entries = index.manifests();
    let mut best: Option<(Rank, &crate::Descriptor)> = None;
    for d in entries {
        if is_attestation(d) {
            continue;
        }
        if let Some(p) = &d.platform
            && let Some(r) = matcher.rank(p)
            && best.as_ref().is_none_or(|(b, _)| r < *b)
        {
            best = Some((r, d));
        }
    }
    if let Some((_, d)) = best {
        return Ok(d);
    }
    if let Some(d) = entries
        .iter()
        .find(|d| d.platform.is_none() && d.is_manifest() && !is_attestation(d))
    {
        return Ok(d);
    }
    Err(crate::ManifestError::NoMatchingPlatform {
        index: index.digest().clone(),
        wanted: matcher.wanted().to_string(),
        available: available(index).iter().map(ToString::to_string).collect(),
    })
}

/// The platforms of the image entries of `index`, in index order, without duplicates,
/// attestations (`unknown/unknown`) and entries without a platform left out.
pub fn available(index: &crate::Manifest) -> Vec<Platform> {
    let mut out: Vec<Platform> = Vec::new();
    for d in index.manifests() {
        if let Some(p) = &d.platform
            && !is_attestation(d)
            && !out.contains(p)
        {
            out.push(p.clone());
        }
    }
    out
}

/// Whether an index entry is a build attestation rather than an image: platform
/// `unknown/unknown`, or BuildKit's `vnd.docker.reference.type: attestation-manifest`.
pub fn is_attestation(d: &crate::Descriptor) -> bool {
    d.platform.as_ref().is_some_and(Platform::is_unknown)
        || d.annotation(crate::annotations::DOCKER_REFERENCE_TYPE) == Some("attestation-manifest")
}
