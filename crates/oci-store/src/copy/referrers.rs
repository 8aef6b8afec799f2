//! Referrers (signatures, SBOMs, attestations): how a copy finds them in a source and makes them
//! discoverable in a destination, through its referrers API or the OCI tag schema fallback,
//! whose tag name ([`referrers_tag`]) and index ([`referrers_index`]) are defined here once for
//! every crate (the registry client maintains the same fallback).

use oci_digest::Digest;
use oci_manifest::build::IndexBuilder;
use oci_manifest::{Descriptor, Manifest};

use crate::error::{Result, StoreError};
use crate::traits::{ReadStore, Store, TagStore};

/// The tag of the OCI referrers tag schema fallback for `subject`: `<alg>-<encoded>`.
///
/// ```
/// let d = oci_digest::Algorithm::Sha256.hash(b"x");
/// assert_eq!(oci_store::referrers_tag(&d), format!("sha256-{}", d.encoded()));
/// ```
pub fn referrers_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm(), subject.encoded())
}

/// The index of the OCI referrers tag schema fallback of `subject`, listing `entries` (referrer
/// descriptors, as [`Manifest::referrer_descriptor`] gives them): an OCI image index, to be
/// tagged [`referrers_tag`]`(subject)`.
///
/// ```
/// let subject = oci_digest::Algorithm::Sha256.hash(b"an image");
/// let m = oci_store::referrers_index(&subject, Vec::new()).unwrap();
/// assert!(m.is_index() && m.manifests().is_empty());
/// ```
///
/// # Errors
/// [`StoreError::InvalidManifest`] naming `subject` when the entries cannot form an index.
pub fn referrers_index(subject: &Digest, entries: Vec<Descriptor>) -> Result<Manifest> {
    IndexBuilder::oci()
        .manifests(entries)
        .build()
        .map_err(|source| StoreError::InvalidManifest {
            digest: subject.clone(),
            source,
        })
}

/// The referrers of `subject` in `store`: its referrers API, else the tag schema fallback.
pub(super) async fn list_referrers<S: ReadStore + TagStore + ?Sized>(
    store: &S,
    subject: &Descriptor,
) -> Result<Vec<Descriptor>> {
    if let Some(list) = store.referrers(subject).await? {
        return Ok(list);
    }
    Ok(fallback_index(store, &subject.digest)
        .await?
        .map(|m| m.manifests().to_vec())
        .unwrap_or_default())
}

/// The tag schema fallback index of `subject` in `store`, if there is one.
async fn fallback_index<S: ReadStore + TagStore + ?Sized>(
    store: &S,
    subject: &Digest,
) -> Result<Option<Manifest>> {
    let desc = match store.resolve(&referrers_tag(subject)).await {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let m = store.fetch_manifest(&desc).await?;
    Ok(m.is_index().then_some(m))
}

/// The (subject, referrer) pairs copied, grouped by subject in the order subjects first appear.
pub(super) fn by_subject(
    referrers: &[(Descriptor, Descriptor)],
) -> Vec<(Descriptor, Vec<Descriptor>)> {
    let mut grouped: Vec<(Descriptor, Vec<Descriptor>)> = Vec::new();
    for (s, r) in referrers {
        match grouped.iter_mut().find(|(x, _)| x.digest == s.digest) {
            Some((_, list)) => list.push(r.clone()),
            None => grouped.push((s.clone(), vec![r.clone()])),
        }
    }
    grouped
}

/// Makes `referrers` of `subject` discoverable in `dst`: nothing to do when its referrers API
/// lists them, else the tag schema fallback index is extended.
pub(super) async fn index_referrers<D: Store + ?Sized>(
    dst: &D,
    subject: &Descriptor,
    referrers: &[Descriptor],
) -> Result<()> {
    // A registry whose referrers API lists them needs no fallback tag. A local store (a
    // layout answers referrers by subject too) still gets it: the tag is the convention
    // other tools reading the layout understand.
    if dst.location().is_some()
        && let Some(listed) = dst.referrers(subject).await?
        && referrers
            .iter()
            .all(|r| listed.iter().any(|l| l.digest == r.digest))
    {
        return Ok(());
    }
    let existing = fallback_index(dst, &subject.digest).await?;
    let mut entries: Vec<Descriptor> = existing
        .as_ref()
        .map(|m| m.manifests().to_vec())
        .unwrap_or_default();
    let before = entries.len();
    for r in referrers {
        if !entries.iter().any(|e| e.digest == r.digest) {
            entries.push(r.clone());
        }
    }
    if entries.len() == before && existing.is_some() {
        return Ok(());
    }
    let index = referrers_index(&subject.digest, entries)?;
    let desc = index.descriptor();
    dst.push_bytes(&desc, index.raw().clone()).await?;
    dst.tag(&desc, &referrers_tag(&subject.digest)).await
}
