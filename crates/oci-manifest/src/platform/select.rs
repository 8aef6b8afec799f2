//! Choosing the entry of an index for a platform.

use super::{Matcher, Platform, Rank};

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
    let mut fallback = None;
    let best = index
        .manifests()
        .iter()
        .filter_map(|d| match judge(matcher, d, d.platform.as_ref()) {
            Judged::Ranked(r) => Some((r, d)),
            Judged::Fallback => {
                fallback.get_or_insert(d);
                None
            }
            Judged::Out => None,
        })
        // The first of equal minima: the first in the index on ties.
        .min_by_key(|(r, _)| *r)
        .map(|(_, d)| d);
    best.or(fallback).ok_or_else(|| {
        no_match(
            index,
            matcher,
            available(index).iter().map(ToString::to_string).collect(),
        )
    })
}

/// What an entry is to a choice under a matcher.
pub(super) enum Judged {
    /// A candidate of this rank.
    Ranked(Rank),
    /// A candidate only when no entry is ranked: a manifest without a platform.
    Fallback,
    /// Never chosen.
    Out,
}

/// The rule the selections share: attestations are out; an entry with a platform (its own,
/// or for nested selection one it inherits) is ranked by `matcher` or out; a manifest entry
/// without one is a fallback; anything else is out.
pub(super) fn judge(
    matcher: &Matcher,
    d: &crate::Descriptor,
    platform: Option<&Platform>,
) -> Judged {
    if is_attestation(d) {
        return Judged::Out;
    }
    match platform {
        Some(p) => matcher.rank(p).map_or(Judged::Out, Judged::Ranked),
        None if d.is_manifest() => Judged::Fallback,
        None => Judged::Out,
    }
}

/// The error of a selection from `index` that found nothing.
pub(super) fn no_match(
    index: &crate::Manifest,
    matcher: &Matcher,
    available: Vec<String>,
) -> crate::ManifestError {
    crate::ManifestError::NoMatchingPlatform {
        index: index.digest().clone(),
        wanted: matcher.wanted().to_string(),
        available,
    }
}

/// The platforms of the image entries of `index`, in index order, without duplicates,
/// attestations (`unknown/unknown`) and entries without a platform left out.
///
/// ```
/// use oci_manifest::{build::IndexBuilder, media_types, platform::available, Descriptor, Platform};
/// let entry = |os: &str, arch: &str| Descriptor::of(media_types::OCI_MANIFEST, arch.as_bytes())
///     .with_platform(Platform::new(os, arch));
/// let index = IndexBuilder::oci()
///     .manifests([entry("linux", "amd64"), entry("unknown", "unknown"), entry("linux", "amd64")])
///     .build()?;
/// assert_eq!(available(&index), vec![Platform::new("linux", "amd64")]);
/// # Ok::<(), oci_manifest::ManifestError>(())
/// ```
pub fn available(index: &crate::Manifest) -> Vec<Platform> {
    let mut out: Vec<Platform> = Vec::new();
    for d in index.manifests() {
        if let Some(p) = &d.platform
            && !is_attestation(d)
        {
            add_available(&mut out, p);
        }
    }
    out
}

/// Adds `p` to `out` unless it is there already.
pub(super) fn add_available(out: &mut Vec<Platform>, p: &Platform) {
    if !out.contains(p) {
        out.push(p.clone());
    }
}

/// Whether an index entry is a build attestation rather than an image: platform
/// `unknown/unknown`, or BuildKit's `vnd.docker.reference.type: attestation-manifest`.
pub fn is_attestation(d: &crate::Descriptor) -> bool {
    d.platform.as_ref().is_some_and(Platform::is_unknown)
        || d.annotation(crate::annotations::DOCKER_REFERENCE_TYPE) == Some("attestation-manifest")
}
