//! Parsing of `os/arch[/variant]` specifiers, normalisation, the host's platform.

use super::Platform;

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
