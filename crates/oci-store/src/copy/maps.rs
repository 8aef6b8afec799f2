//! Piece maps travelling with images: the piece-map artifact ([`PieceMapArtifact`]) a copy
//! with [`CopyOptions::piece_maps`] pushes beside each image manifest, and how a copy that
//! fetches blobs in pieces finds such artifacts in its source and uses their maps.
//!
//! See [`PieceMapArtifact`] for the format and how far its maps are trusted.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use futures_util::StreamExt;
use oci_digest::{Digest, PIECE_MAP_MEDIA_TYPE, PieceLayout, PieceMap, PieceMapBuilder};
use oci_manifest::build::{EMPTY_JSON, ImageManifestBuilder, empty_config};
use oci_manifest::{Descriptor, Manifest};
use tracing::{debug, info, warn};

use super::CopySide::{Destination, Source};
use super::error::{At, Fault};
use super::plan::{Plan, strip};
use super::referrers::{index_referrers, list_referrers};
use super::retry::Retry;
use super::run::Run;
use crate::error::{Result, StoreError};
use crate::fetch::MapTrust;
use crate::traits::{ReadStore, Store, TagStore};

#[cfg(doc)]
use super::CopyOptions;

/// The annotation on each layer of a piece-map artifact naming the digest of the image layer
/// whose map it holds.
///
/// ```
/// assert_eq!(oci_store::PIECE_MAP_BLOB_ANNOTATION, "io.oci-rs.piece-map.blob");
/// ```
pub const PIECE_MAP_BLOB_ANNOTATION: &str = "io.oci-rs.piece-map.blob";

/// Largest serialised map read from an artifact: a map of
/// [`PieceLayout::MAX_PIECES`](oci_digest::PieceLayout::MAX_PIECES) hashes in hex, with room
/// for its other members.
const MAP_BLOB_LIMIT: u64 = oci_digest::PieceLayout::MAX_PIECES * 67 + 4096;

/// Piece-map artifacts looked at per image manifest (the first ones listed).
const MAX_ARTIFACTS: usize = 4;

/// The piece-map artifact of one image manifest: its manifest and the blobs it needs (the empty
/// config and one serialised map per layer).
///
/// # The artifact
///
/// One OCI 1.1 artifact per image manifest (for an index: one per platform's image manifest,
/// each the subject of its own artifact, since maps are of layers and layers belong to image
/// manifests): an OCI image manifest with
///
/// - `artifactType` [`PIECE_MAP_MEDIA_TYPE`](oci_digest::PIECE_MAP_MEDIA_TYPE);
/// - the empty config (`application/vnd.oci.empty.v1+json`, `{}`);
/// - one layer per map, of media type [`PIECE_MAP_MEDIA_TYPE`](oci_digest::PIECE_MAP_MEDIA_TYPE),
///   holding the map's serialised form ([`PieceMap`]), annotated
///   [`PIECE_MAP_BLOB_ANNOTATION`] with the digest of the image layer it maps, in the order
///   of the image's layers (each distinct, non-empty layer once; foreign layers the source
///   does not hold have none);
/// - `subject` the image manifest.
///
/// It is found through the registry's referrers API, or the tag schema fallback
/// ([`referrers_tag`](crate::referrers_tag)) where there is none (distribution 2.8). Its bytes
/// depend only on the subject and the maps, so pushing it again changes nothing.
///
/// # Trust
///
/// A map made from bytes that verified (by this copy as it moved them, or by a store from the
/// blob it holds: [`ReadStore::trusted_piece_map`]) is trusted. A map read from an artifact is
/// only what its pusher claims: a copy uses it as [`MapTrust::Advisory`], where a wrong map
/// costs refetches, never a wrong blob. Artifacts and maps that are malformed, or for other
/// blobs, are ignored with a warning naming the artifact
/// ([`PieceMapsReport::ignored`]); they never fail a copy.
///
/// ```
/// use oci_digest::{Algorithm, PieceMap};
/// use oci_manifest::{media_types, Descriptor};
/// use oci_store::{PieceMapArtifact, PIECE_MAP_BLOB_ANNOTATION};
///
/// let layer = vec![5u8; 3 << 20];
/// let map = PieceMap::compute(&layer[..], Algorithm::Sha256.hash(&layer), layer.len() as u64)?;
/// let image = Descriptor::of(media_types::OCI_MANIFEST, b"an image manifest");
/// let a = PieceMapArtifact::build(&image, &[map.clone()])?;
/// assert_eq!(a.manifest.artifact_type(), Some(oci_digest::PIECE_MAP_MEDIA_TYPE));
/// assert_eq!(a.manifest.subject().map(|s| &s.digest), Some(&image.digest));
/// let entry = &a.manifest.layers()[0];
/// assert_eq!(entry.annotation(PIECE_MAP_BLOB_ANNOTATION), Some(map.digest().as_str()));
/// assert_eq!(a.blobs.len(), 2); // the empty config and the map
/// // The maps read back, checked against their descriptors and annotations.
/// let back = PieceMapArtifact::read_map(entry, a.blobs[1].1.clone())?;
/// assert_eq!(back, map);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PieceMapArtifact {
    /// The artifact's manifest (its `subject` is the image manifest).
    pub manifest: Manifest,
    /// The blobs it refers to, each with its bytes: the empty config, then the maps.
    pub blobs: Vec<(Descriptor, Bytes)>,
}

impl PieceMapArtifact {
    /// The artifact holding `maps` (in that order) for the image manifest `subject`.
    ///
    /// # Errors
    /// [`StoreError::InvalidManifest`] naming `subject` when no artifact can be built (no
    /// maps).
    pub fn build(subject: &Descriptor, maps: &[PieceMap]) -> Result<PieceMapArtifact> {
        let bad = |source| StoreError::InvalidManifest {
            digest: subject.digest.clone(),
            source,
        };
        if maps.is_empty() {
            return Err(bad(oci_manifest::ManifestError::Build {
                what: "piece-map artifact",
                reason: "no maps".to_owned(),
            }));
        }
        let config = empty_config();
        let mut blobs = vec![(strip(&config), Bytes::from_static(EMPTY_JSON))];
        let mut layers = Vec::with_capacity(maps.len());
        for m in maps {
            let json = serde_json::to_vec(m)
                .map_err(|e| StoreError::backend("serialise a piece map", e))?;
            let desc = Descriptor::of(PIECE_MAP_MEDIA_TYPE, &json)
                .with_annotation(PIECE_MAP_BLOB_ANNOTATION, m.digest().as_str());
            blobs.push((strip(&desc), Bytes::from(json)));
            layers.push(desc);
        }
        let manifest = ImageManifestBuilder::artifact(PIECE_MAP_MEDIA_TYPE)
            .layers(layers)
            .subject(strip(subject))
            .build()
            .map_err(bad)?;
        Ok(PieceMapArtifact { manifest, blobs })
    }

    /// The map held by the artifact layer `entry`, whose (verified) bytes are `bytes`: its
    /// media type must be the map's, and the map must parse and be for the blob its
    /// [`PIECE_MAP_BLOB_ANNOTATION`] names. The map says only what its pusher claims.
    ///
    /// # Errors
    /// A message saying what is wrong (the caller names the artifact).
    pub fn read_map(entry: &Descriptor, bytes: Bytes) -> std::result::Result<PieceMap, String> {
        if entry.media_type != PIECE_MAP_MEDIA_TYPE {
            return Err(format!(
                "layer {} has media type {:?}, not {PIECE_MAP_MEDIA_TYPE}",
                entry.digest, entry.media_type
            ));
        }
        let named = entry.annotation(PIECE_MAP_BLOB_ANNOTATION).ok_or_else(|| {
            format!(
                "layer {} has no {PIECE_MAP_BLOB_ANNOTATION} annotation",
                entry.digest
            )
        })?;
        let map: PieceMap = serde_json::from_slice(&bytes)
            .map_err(|e| format!("layer {} is not a piece map: {e}", entry.digest))?;
        if map.digest().as_str() != named {
            return Err(format!(
                "layer {} holds the map of {} but is annotated for {named:?}",
                entry.digest,
                map.digest()
            ));
        }
        Ok(map)
    }
}

/// What a copy did with piece maps ([`CopyReport::piece_maps`](crate::CopyReport)): maps found
/// for the blobs it fetched in pieces, artifacts and maps ignored, artifacts pushed.
///
/// ```
/// let r = oci_store::PieceMapsReport::default();
/// assert!(r.found.is_empty() && r.ignored.is_empty() && r.pushed.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PieceMapsReport {
    /// Maps found for blobs of the copy: the blob, how far the map was trusted, and where it
    /// came from (the artifact's digest, or `None` for the source store's own map).
    pub found: Vec<(Digest, MapTrust, Option<Digest>)>,
    /// Piece-map artifacts, or maps in them, that were ignored: the artifact's digest and why.
    pub ignored: Vec<(Digest, String)>,
    /// Piece-map artifacts pushed by [`CopyOptions::piece_maps`]: (the image manifest, the
    /// artifact), both as the destination has them.
    pub pushed: Vec<(Descriptor, Descriptor)>,
    /// Image manifests whose piece-map artifact the destination already had.
    pub present: Vec<Descriptor>,
}

/// The image manifests of a copy's result that get a piece-map artifact: image manifests (not
/// indexes) that are not themselves artifacts or referrers, with their parsed form.
pub(super) fn image_manifests(
    nodes: impl Iterator<Item = (Descriptor, Option<Bytes>)>,
) -> Vec<(Descriptor, Manifest)> {
    let mut out: Vec<(Descriptor, Manifest)> = Vec::new();
    for (target, bytes) in nodes {
        let Some(bytes) = bytes else { continue };
        if !target.is_manifest() || out.iter().any(|(d, _)| d.digest == target.digest) {
            continue;
        }
        let Ok(m) = Manifest::parse(bytes, Some(&target.media_type)) else {
            continue;
        };
        if m.is_index() || m.subject().is_some() || m.artifact_type().is_some() {
            continue;
        }
        if m.layers().iter().any(|l| l.size > 0) {
            out.push((strip(&target), m));
        }
    }
    out
}

/// The layers of `image` that get a map: distinct, not empty.
pub(super) fn mapped_layers(image: &Manifest) -> Vec<Descriptor> {
    let mut out: Vec<Descriptor> = Vec::new();
    for l in image.layers() {
        if l.size > 0 && !out.iter().any(|o| o.digest == l.digest) {
            out.push(strip(l));
        }
    }
    out
}

/// The piece-map artifact of `subject` in `store` that covers every one of `layers`, if any.
pub(super) async fn present_artifact<S: ReadStore + TagStore + ?Sized>(
    store: &S,
    subject: &Descriptor,
    layers: &[Descriptor],
) -> Result<Option<Descriptor>> {
    let listed = list_referrers(store, subject).await?;
    for r in listed
        .iter()
        .filter(|r| r.artifact_type.as_deref() == Some(PIECE_MAP_MEDIA_TYPE))
        .take(MAX_ARTIFACTS)
    {
        let Ok(m) = store.fetch_manifest(&strip(r)).await else {
            continue;
        };
        let covers = layers.iter().all(|l| {
            m.layers()
                .iter()
                .any(|e| e.annotation(PIECE_MAP_BLOB_ANNOTATION) == Some(l.digest.as_str()))
        });
        if covers && m.subject().is_some_and(|s| s.digest == subject.digest) {
            return Ok(Some(strip(r)));
        }
    }
    Ok(None)
}

/// The maps the piece-map artifacts of `subject` in `store` give for `layers` (advisory), by
/// blob digest, each with the artifact it came from; what was ignored goes to `report`. Never
/// an error: a source without referrers, or with broken artifacts, gives no maps.
pub(super) async fn artifact_maps<S: ReadStore + TagStore + ?Sized>(
    store: &S,
    subject: &Descriptor,
    layers: &[Descriptor],
    report: &mut PieceMapsReport,
) -> HashMap<Digest, (PieceMap, Digest)> {
    let mut out: HashMap<Digest, (PieceMap, Digest)> = HashMap::new();
    let listed = match list_referrers(store, subject).await {
        Ok(l) => l,
        Err(e) => {
            warn!(subject = %subject.digest, error = %crate::error::error_chain(&e), "cannot list the referrers of the image; no piece maps");
            return out;
        }
    };
    let wanted: BTreeMap<&Digest, &Descriptor> = layers.iter().map(|l| (&l.digest, l)).collect();
    for r in listed
        .iter()
        .filter(|r| r.artifact_type.as_deref() == Some(PIECE_MAP_MEDIA_TYPE))
        .take(MAX_ARTIFACTS)
    {
        let mut ignore = |why: String| {
            warn!(artifact = %r.digest, subject = %subject.digest, "piece-map artifact ignored: {}", crate::util::OneLine(&why));
            report.ignored.push((r.digest.clone(), why));
        };
        let m = match store.fetch_manifest(&strip(r)).await {
            Ok(m) => m,
            Err(e) => {
                ignore(format!("cannot be read: {}", crate::error::error_chain(&e)));
                continue;
            }
        };
        if m.artifact_type() != Some(PIECE_MAP_MEDIA_TYPE) {
            ignore(format!("its artifactType is {:?}", m.artifact_type()));
            continue;
        }
        if m.subject().is_none_or(|s| s.digest != subject.digest) {
            ignore(format!("its subject is not {}", subject.digest));
            continue;
        }
        for entry in m.layers() {
            let Some(named) = entry.annotation(PIECE_MAP_BLOB_ANNOTATION) else {
                ignore(format!(
                    "layer {} has no {PIECE_MAP_BLOB_ANNOTATION} annotation",
                    entry.digest
                ));
                continue;
            };
            let Some(layer) = wanted
                .iter()
                .find(|(d, _)| d.as_str() == named)
                .map(|(_, l)| *l)
            else {
                continue; // a map of a blob this image does not have
            };
            // Read even when another artifact gave this layer's map: a broken artifact is
            // named either way.
            let bytes = match store.fetch_bytes(&strip(entry), MAP_BLOB_LIMIT).await {
                Ok(b) => b,
                Err(e) => {
                    ignore(format!(
                        "map {} cannot be read: {}",
                        entry.digest,
                        crate::error::error_chain(&e)
                    ));
                    continue;
                }
            };
            let map = match PieceMapArtifact::read_map(entry, bytes) {
                Ok(m) => m,
                Err(why) => {
                    ignore(why);
                    continue;
                }
            };
            if let Err(e) = map.check_for(&layer.digest, layer.size) {
                ignore(format!("map {}: {e}", entry.digest));
                continue;
            }
            out.entry(layer.digest.clone())
                .or_insert_with(|| (map, r.digest.clone()));
        }
    }
    if !out.is_empty() {
        info!(subject = %subject.digest, maps = out.len(), "piece maps found (advisory)");
    }
    out
}

/// Before a copy's transfer, when it fetches blobs in pieces: the maps of the layers of every
/// image manifest it copies unchanged, by blob digest. A local source's own maps, when it has
/// them already ([`ReadStore::cached_trusted_piece_map`]), come first (trusted); then the maps of the piece-map artifacts the source has for the image
/// (advisory). What was found and ignored goes to `report`.
pub(super) async fn find_fetch_maps<S: ReadStore + TagStore + ?Sized>(
    src: &S,
    plan: &Plan,
    report: &mut PieceMapsReport,
) -> HashMap<Digest, (PieceMap, MapTrust)> {
    let images = image_manifests(
        plan.order
            .iter()
            .map(|d| &plan.nodes[d])
            .filter(|n| n.src.digest == n.target.digest)
            .map(|n| (n.src.clone(), n.bytes.clone())),
    );
    let local = src.location().is_none();
    let mut out: HashMap<Digest, (PieceMap, MapTrust)> = HashMap::new();
    for (subject, image) in images {
        let mut rest = Vec::new();
        for l in mapped_layers(&image) {
            if out.contains_key(&l.digest) || plan.foreign.iter().any(|f| f.digest == l.digest) {
                continue;
            }
            if local {
                // Only a map the store already has: no hashing on the pull's default path.
                match src.cached_trusted_piece_map(&l).await {
                    Ok(Some(m)) if m.check_for(&l.digest, l.size).is_ok() => {
                        report
                            .found
                            .push((l.digest.clone(), MapTrust::Trusted, None));
                        out.insert(l.digest.clone(), (m, MapTrust::Trusted));
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        debug!(digest = %l.digest, error = %crate::error::error_chain(&e), "no piece map from the source store");
                    }
                }
            }
            rest.push(l);
        }
        if rest.is_empty() {
            continue;
        }
        let mut found: Vec<(Digest, (PieceMap, Digest))> =
            artifact_maps(src, &subject, &rest, report)
                .await
                .into_iter()
                .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        for (d, (m, artifact)) in found {
            report
                .found
                .push((d.clone(), MapTrust::Advisory, Some(artifact)));
            out.insert(d, (m, MapTrust::Advisory));
        }
    }
    out
}

impl<S, D> Run<'_, S, D>
where
    S: ReadStore + TagStore + ?Sized,
    D: Store + ?Sized,
{
    /// After the transfer, for [`CopyOptions::piece_maps`]: the piece-map artifact of every
    /// image manifest of the result (as the destination has it) that the destination does not
    /// already have, each with its subject. Image manifests already covered go to
    /// `report.present`.
    pub(super) async fn piece_map_artifacts(
        &self,
        report: &mut PieceMapsReport,
    ) -> std::result::Result<Vec<(Descriptor, PieceMapArtifact)>, Fault> {
        let images = image_manifests(
            self.plan
                .order
                .iter()
                .map(|d| &self.plan.nodes[d])
                .map(|n| (n.target.clone(), n.bytes.clone())),
        );
        let mut out = Vec::new();
        for (subject, image) in images {
            let layers: Vec<Descriptor> = mapped_layers(&image)
                .into_iter()
                .filter(|l| !self.plan.foreign.iter().any(|f| f.digest == l.digest))
                .collect();
            if layers.is_empty() {
                continue;
            }
            if present_artifact(self.dst, &subject, &layers)
                .await
                .at(Destination)?
                .is_some()
            {
                debug!(subject = %subject.digest, "the destination has the piece maps already");
                report.present.push(subject);
                continue;
            }
            let mut maps = Vec::with_capacity(layers.len());
            for l in &layers {
                maps.push(self.trusted_map(l).await?);
            }
            let artifact = PieceMapArtifact::build(&subject, &maps).at(Destination)?;
            out.push((subject, artifact));
        }
        Ok(out)
    }

    /// A trusted map of `layer`: the source store's own, else made by this run from the bytes
    /// it moved, else the destination's own, else computed from the source's verified bytes
    /// (with the copy's retries).
    async fn trusted_map(&self, layer: &Descriptor) -> std::result::Result<PieceMap, Fault> {
        let own = |side, found: Result<Option<PieceMap>>| match found {
            Ok(Some(m)) if m.check_for(&layer.digest, layer.size).is_ok() => Some(m),
            Ok(_) => None,
            Err(e) => {
                debug!(digest = %layer.digest, %side, error = %crate::error::error_chain(&e), "no piece map from this store");
                None
            }
        };
        if let Some(m) = own(Source, self.src.trusted_piece_map(layer).await) {
            return Ok(m);
        }
        let made = self.stats_lock().maps.get(&layer.digest).cloned();
        if let Some(m) = made {
            return Ok(m);
        }
        if let Some(m) = own(Destination, self.dst.trusted_piece_map(layer).await) {
            return Ok(m);
        }
        let src = self.src;
        Retry::new(self.options, self.budget, src.location().is_some())
            .run(
                || async move {
                    let layout = PieceLayout::for_size(layer.size)
                        .map_err(|e| StoreError::backend(format!("piece map of {}", layer.digest), e))
                        .at(Source)?;
                    let mut builder = PieceMapBuilder::new(layer.digest.clone(), layout);
                    let mut stream = src.fetch(layer).await.at(Source)?;
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk
                            .map_err(|source| StoreError::Source {
                                digest: layer.digest.clone(),
                                source,
                            })
                            .at(Source)?;
                        builder.update(&chunk).map_err(StoreError::Verify).at(Source)?;
                    }
                    builder.finish().map_err(StoreError::Verify).at(Source)
                },
                |attempt, fault| {
                    warn!(digest = %layer.digest, attempt, error = %fault, "computing a piece map failed; retrying");
                },
            )
            .await
            .result
    }

    /// Pushes `artifacts` (blobs the destination lacks, then the manifest) and makes each
    /// discoverable from its subject (referrers API or tag schema fallback). Idempotent.
    pub(super) async fn push_piece_maps(
        &self,
        artifacts: &[(Descriptor, PieceMapArtifact)],
    ) -> std::result::Result<(), Fault> {
        for (subject, a) in artifacts {
            for (desc, bytes) in &a.blobs {
                if self.dst.stat(&desc.digest).await.at(Destination)?.is_none() {
                    self.dst
                        .push_bytes(desc, bytes.clone())
                        .await
                        .at(Destination)?;
                }
            }
            let desc = a.manifest.descriptor();
            self.dst
                .push_bytes(&desc, a.manifest.raw().clone())
                .await
                .at(Destination)?;
            index_referrers(self.dst, subject, &[a.manifest.referrer_descriptor()])
                .await
                .at(Destination)?;
            info!(subject = %subject.digest, artifact = %desc.digest, maps = a.blobs.len() - 1, "piece maps pushed");
        }
        Ok(())
    }
}
