//! Platforms: the `platform` object of index entries, parsing of `os/arch[/variant]`,
//! normalisation, the host's platform, and ranked matching the way containerd does it.
//!
//! - [`Platform::matches`]: is a candidate this platform (after normalisation);
//!   [`Matcher`]: which candidates a platform can run, ranked.
//! - [`select`]: the best entry of one index; [`select_nested`] and [`select_nested_all`]:
//!   the image(s) for a platform through indexes nested in indexes, from the manifests at
//!   hand, with a depth limit.

use std::fmt;

use serde::{Deserialize, Serialize};

mod matcher;
mod nested;
mod parse;
mod select;

pub use matcher::{Matcher, Rank};
pub use nested::{Selection, select_nested, select_nested_all, select_nested_with};
pub use parse::{host, normalize, parse};
pub use select::{available, is_attestation, select, select_with};

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

    /// Adds a required OS feature (builder style), such as `win32k`.
    ///
    /// ```
    /// use oci_manifest::Platform;
    /// let p = Platform::new("windows", "amd64").with_os_feature("win32k");
    /// assert_eq!(p.os_features, Some(vec!["win32k".to_owned()]));
    /// ```
    pub fn with_os_feature(mut self, feature: impl Into<String>) -> Self {
        self.os_features
            .get_or_insert_with(Vec::new)
            .push(feature.into());
        self
    }

    /// Whether `candidate` (an index entry's platform) is this platform, where `self` is the
    /// platform wanted (the host's, or the one asked for). This is the comparison
    /// [`reduce`](crate::reduce()) keeps entries by, and the strict form of the one
    /// [`select`] ranks entries by: both are [`Matcher::rank`], here under
    /// [`Matcher::strict`]. Precisely:
    ///
    /// - `os`, `architecture` and `variant` are equal after [`normalize`]: case is ignored,
    ///   `macos` is `darwin`, `aarch64` is `arm64`, `x86_64` and `x86-64` are `amd64`, `i386`
    ///   and `i686` are `386`, `armhf` is `arm/v7` and `armel` is `arm/v6`; and the default
    ///   variants are filled in or dropped: `arm64` is `arm64/v8`, `arm` is `arm/v7`, `amd64`
    ///   is `amd64/v1`. Other variants must be equal (`arm64/v8.2` is not `arm64`).
    /// - `os.features`: every feature the candidate requires must be in `self`'s (a
    ///   `win32k` image does not match a host that does not list `win32k`).
    /// - `os.version`: compared only when `self` is `windows` with a version of the form
    ///   `major.minor.build[.revision]`: the candidate's must then be compatible (same
    ///   major.minor, and the same build before Windows Server 2022's 20348, or a build from
    ///   20348 up to `self`'s from it on); a candidate without one matches. In every other
    ///   case `os.version` is ignored.
    /// - `features` (CPU features, reserved by the spec) are ignored.
    /// - The placeholder `unknown/unknown` of build attestations matches nothing, not even
    ///   itself: it is never an image to run.
    ///
    /// It is not symmetric when `os.features` or a Windows `os.version` differ. For what a
    /// platform can also run (`linux/arm64` runs `linux/arm/v7`, `amd64` runs `386`), ranked,
    /// use [`Matcher::new`].
    ///
    /// ```
    /// use oci_manifest::Platform;
    /// let arm64 = Platform::new("linux", "arm64");
    /// assert!(arm64.matches(&Platform::new("Linux", "aarch64")));
    /// assert!(arm64.matches(&Platform::new("linux", "arm64").with_variant("v8")));
    /// assert!(!arm64.matches(&Platform::new("linux", "arm").with_variant("v7")));
    /// assert!(!arm64.matches(&Platform::new("linux", "arm64").with_variant("v8.2")));
    ///
    /// let host = Platform::new("windows", "amd64").with_os_version("10.0.20348.2227");
    /// assert!(host.matches(&Platform::new("windows", "amd64").with_os_version("10.0.20348.1")));
    /// assert!(!host.matches(&Platform::new("windows", "amd64").with_os_version("10.0.17763.1")));
    /// assert!(!host.matches(&Platform::new("windows", "amd64").with_os_feature("win32k")));
    /// ```
    pub fn matches(&self, candidate: &Platform) -> bool {
        Matcher::strict(self).matches(candidate)
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
