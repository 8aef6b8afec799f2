//! Ranked matching of platforms, the way containerd does it.

use super::{Platform, normalize};

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
