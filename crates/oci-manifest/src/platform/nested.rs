//! Choosing the image for a platform through indexes nested in indexes.

use std::borrow::Borrow;
use std::collections::HashSet;

use oci_digest::Digest;

use super::select::{Judged, add_available, judge, no_match};
use super::{Matcher, Platform, Rank};
use crate::{Descriptor, Manifest, ManifestError, ParseOptions};

/// An image found by [`select_nested`] and [`select_nested_all`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// The image's descriptor, as the index that lists it has it.
    pub descriptor: Descriptor,
    /// The platform it was chosen for: its own, or when it has none, the one of the nearest
    /// index entry above it that has one; `None` when neither has.
    pub platform: Option<Platform>,
    /// The index entries descended through, from the root's entry to the entry of the index
    /// that lists the image; empty when the root lists it.
    pub path: Vec<Descriptor>,
}

/// The image for `wanted` in `root` and the indexes nested in it, ranked by
/// [`Matcher::new`]; see [`select_nested_with`].
///
/// `lookup` gives the manifest a descriptor names, from the manifests at hand (a map by
/// digest, a cache, a store's contents): anything that [borrows](Borrow) as a [`Manifest`].
///
/// ```
/// use std::collections::HashMap;
/// use oci_manifest::{build::IndexBuilder, media_types, Descriptor, Digest, Manifest, Platform};
/// use oci_manifest::platform::{parse, select_nested};
///
/// let image = |arch: &str| Descriptor::of(media_types::OCI_MANIFEST, arch.as_bytes())
///     .with_platform(Platform::new("linux", arch));
/// // A tool wrote one index per architecture family, and an index of those.
/// let arm = IndexBuilder::oci().manifest(image("arm64")).build()?;
/// let x86 = IndexBuilder::oci().manifest(image("amd64")).build()?;
/// let root = IndexBuilder::oci().manifests([arm.descriptor(), x86.descriptor()]).build()?;
/// let known: HashMap<Digest, Manifest> =
///     [arm.clone(), x86].into_iter().map(|m| (m.digest().clone(), m)).collect();
///
/// let found = select_nested(&root, &parse("linux/aarch64")?, |d| known.get(&d.digest), &Default::default())?;
/// assert_eq!(found.descriptor, image("arm64"));
/// assert_eq!(found.path, vec![arm.descriptor()]);
/// # Ok::<(), oci_manifest::ManifestError>(())
/// ```
pub fn select_nested<M: Borrow<Manifest>>(
    root: &Manifest,
    wanted: &Platform,
    lookup: impl FnMut(&Descriptor) -> Option<M>,
    opts: &ParseOptions,
) -> Result<Selection, ManifestError> {
    select_nested_with(root, &Matcher::new(wanted), lookup, opts)
}

/// The first of [`select_nested_all`]: the best ranked image under `matcher` in `root` and the
/// indexes nested in it, the first in tree order on ties; failing that, the first image
/// manifest without a platform.
///
/// Fails with [`ManifestError::NoMatchingPlatform`] when there is none (listing the platforms
/// seen), and with the errors of the walk described at [`select_nested_all`].
///
/// ```
/// use oci_manifest::{build::IndexBuilder, media_types, Descriptor, ManifestError, Platform};
/// use oci_manifest::platform::{select_nested_with, Matcher};
///
/// let image = |arch: &str, variant: &str| Descriptor::of(media_types::OCI_MANIFEST, variant.as_bytes())
///     .with_platform(Platform::new("linux", arch).with_variant(variant));
/// let arm = IndexBuilder::oci().manifests([image("arm", "v6"), image("arm", "v7")]).build()?;
/// let root = IndexBuilder::oci().manifest(arm.descriptor()).build()?;
/// let lookup = |d: &Descriptor| (d.digest == *arm.digest()).then_some(&arm);
///
/// // linux/arm64 can run arm/v7 and arm/v6; v7 ranks first.
/// let arm64 = Matcher::new(&Platform::new("linux", "arm64"));
/// let found = select_nested_with(&root, &arm64, lookup, &Default::default())?;
/// assert_eq!(found.descriptor, image("arm", "v7"));
///
/// // Strictly, nothing in it is linux/arm64.
/// let strict = Matcher::strict(&Platform::new("linux", "arm64"));
/// let err = select_nested_with(&root, &strict, lookup, &Default::default()).unwrap_err();
/// assert!(matches!(err, ManifestError::NoMatchingPlatform { ref available, .. } if available.len() == 2));
/// # Ok::<(), ManifestError>(())
/// ```
pub fn select_nested_with<M: Borrow<Manifest>>(
    root: &Manifest,
    matcher: &Matcher,
    lookup: impl FnMut(&Descriptor) -> Option<M>,
    opts: &ParseOptions,
) -> Result<Selection, ManifestError> {
    let walked = walk(root, matcher, lookup, opts)?;
    let available = walked.available.iter().map(ToString::to_string).collect();
    walked
        .into_choices()
        .into_iter()
        .next()
        .ok_or_else(|| no_match(root, matcher, available))
}

/// Every image `matcher` accepts in `root` and the indexes nested in it, best first (by rank,
/// then in tree order: an index's entries in order, a nested index's images at its place);
/// when no image with a platform matches, the image manifests without a platform, in tree
/// order. Empty when there is neither.
///
/// The walk, from `root` (depth 0):
///
/// - attestations (`unknown/unknown`, BuildKit's attestation manifests) are never chosen;
/// - an entry that is an index is descended into when it has no platform or one `matcher`
///   accepts, and skipped otherwise; its entries without a platform take its platform;
/// - any other entry is a candidate, ranked by its platform (or the one it takes from above).
///
/// Each nested index is taken from `lookup` and must be the one its entry names (size,
/// digest, an index media type: [`Manifest::verify`]); an index reached twice with the same
/// platform from above is walked once. Because every index is checked to hash to the digest
/// its parent names, indexes cannot form a cycle (it would take a hash fixed point), and
/// nesting is limited besides.
///
/// Fails with [`ManifestError::IndexTooDeep`] for an index nested deeper than
/// [`ParseOptions::max_index_depth`] (an index listed by the root is at depth 1),
/// [`ManifestError::MissingManifest`] when `lookup` does not have a nested index, and
/// [`ManifestError::SizeMismatch`], [`ManifestError::DigestMismatch`] or
/// [`ManifestError::DescriptorMediaType`] when it gives another manifest than the one named.
///
/// ```
/// use oci_manifest::{build::IndexBuilder, media_types, Descriptor, ManifestError, ParseOptions, Platform};
/// use oci_manifest::platform::{select_nested_all, Matcher};
///
/// let image = |arch: &str| Descriptor::of(media_types::OCI_MANIFEST, arch.as_bytes())
///     .with_platform(Platform::new("linux", arch));
/// let inner = IndexBuilder::oci().manifests([image("386"), image("amd64")]).build()?;
/// let root = IndexBuilder::oci().manifest(inner.descriptor()).build()?;
/// let lookup = |d: &Descriptor| (d.digest == *inner.digest()).then(|| inner.clone());
///
/// let amd64 = Matcher::new(&Platform::new("linux", "amd64"));
/// let all = select_nested_all(&root, &amd64, lookup, &Default::default())?;
/// let found: Vec<_> = all.iter().map(|s| s.descriptor.clone()).collect();
/// assert_eq!(found, vec![image("amd64"), image("386")]);
///
/// // No nesting allowed: the inner index is too deep.
/// let flat = ParseOptions::default().with_max_index_depth(0);
/// let err = select_nested_all(&root, &amd64, lookup, &flat).unwrap_err();
/// assert!(matches!(err, ManifestError::IndexTooDeep { depth: 1, limit: 0, .. }), "{err}");
/// // Nothing to look the inner index up in.
/// let err = select_nested_all(&root, &amd64, |_| None::<oci_manifest::Manifest>, &Default::default()).unwrap_err();
/// assert!(matches!(err, ManifestError::MissingManifest { .. }), "{err}");
/// # Ok::<(), ManifestError>(())
/// ```
pub fn select_nested_all<M: Borrow<Manifest>>(
    root: &Manifest,
    matcher: &Matcher,
    lookup: impl FnMut(&Descriptor) -> Option<M>,
    opts: &ParseOptions,
) -> Result<Vec<Selection>, ManifestError> {
    Ok(walk(root, matcher, lookup, opts)?.into_choices())
}

/// What a walk found.
#[derive(Default)]
struct Walked {
    /// Candidates with a rank, in tree order.
    ranked: Vec<(Rank, Selection)>,
    /// Image manifests without a platform, in tree order.
    fallback: Vec<Selection>,
    /// The platforms of the candidates and of the nested indexes skipped, without duplicates.
    available: Vec<Platform>,
}

impl Walked {
    /// The candidates, best first.
    fn into_choices(mut self) -> Vec<Selection> {
        if self.ranked.is_empty() {
            return self.fallback;
        }
        // Stable: tree order on equal ranks.
        self.ranked.sort_by_key(|(r, _)| *r);
        self.ranked.into_iter().map(|(_, s)| s).collect()
    }
}

/// An index being walked.
struct Frame {
    /// The index's digest, as its parent names it.
    digest: Digest,
    entries: Vec<Descriptor>,
    next: usize,
    /// Its entry in the parent, in [`Entered`]; `None` for the root.
    entered: Option<usize>,
    /// The platform its entries without one take.
    inherited: Option<Platform>,
    depth: usize,
}

/// The index entries descended through, each with the one above it, so that a path costs
/// one entry per index rather than a copy per index.
#[derive(Default)]
struct Entered(Vec<(Option<usize>, Descriptor)>);

impl Entered {
    fn add(&mut self, above: Option<usize>, d: Descriptor) -> usize {
        self.0.push((above, d));
        self.0.len() - 1
    }

    /// The entries from the root's down to `at`.
    fn path(&self, mut at: Option<usize>) -> Vec<Descriptor> {
        let mut path = Vec::new();
        while let Some((above, d)) = at.and_then(|i| self.0.get(i)) {
            path.push(d.clone());
            at = *above;
        }
        path.reverse();
        path
    }
}

/// Depth first, in tree order, on a heap stack (a long chain cannot overflow the thread's).
fn walk<M: Borrow<Manifest>>(
    root: &Manifest,
    matcher: &Matcher,
    mut lookup: impl FnMut(&Descriptor) -> Option<M>,
    opts: &ParseOptions,
) -> Result<Walked, ManifestError> {
    let mut out = Walked::default();
    let mut walked: HashSet<(Digest, Option<Platform>)> = HashSet::new();
    let mut entered = Entered::default();
    let mut stack = vec![Frame {
        digest: root.digest().clone(),
        entries: root.manifests().to_vec(),
        next: 0,
        entered: None,
        inherited: None,
        depth: 0,
    }];
    while let Some(frame) = stack.last_mut() {
        let Some(d) = frame.entries.get(frame.next).cloned() else {
            stack.pop();
            continue;
        };
        frame.next += 1;
        let platform = d.platform.clone().or_else(|| frame.inherited.clone());
        if d.is_index() && !super::is_attestation(&d) {
            if let Some(p) = &d.platform
                && !matcher.matches(p)
            {
                add_available(&mut out.available, p);
                continue;
            }
            let depth = frame.depth + 1;
            opts.check_depth(depth, &d.digest)?;
            if !walked.insert((d.digest.clone(), platform.clone())) {
                continue;
            }
            let Some(child) = lookup(&d) else {
                return Err(ManifestError::MissingManifest {
                    index: frame.digest.clone(),
                    missing: d.digest.clone(),
                    media_type: d.media_type.clone(),
                });
            };
            let child = child.borrow();
            child.verify(&d)?;
            let at = entered.add(frame.entered, d.clone());
            stack.push(Frame {
                digest: d.digest.clone(),
                entries: child.manifests().to_vec(),
                next: 0,
                entered: Some(at),
                inherited: platform,
                depth,
            });
            continue;
        }
        let judged = judge(matcher, &d, platform.as_ref());
        if let Some(p) = &platform
            && !super::is_attestation(&d)
        {
            add_available(&mut out.available, p);
        }
        let selection = || Selection {
            descriptor: d.clone(),
            platform: platform.clone(),
            path: entered.path(frame.entered),
        };
        match judged {
            Judged::Ranked(r) => out.ranked.push((r, selection())),
            Judged::Fallback => out.fallback.push(selection()),
            Judged::Out => {}
        }
    }
    Ok(out)
}
