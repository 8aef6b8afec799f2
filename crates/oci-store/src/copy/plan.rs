//! The plan of a copy, made before the first transfer: the reference resolved, every node of the
//! graph (manifests fetched and verified, reduced to some platforms, converted between Docker
//! and OCI media types), the referrers to take along, and the total bytes.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use oci_digest::Digest;
use oci_manifest::convert::{Flavor, convert, convert_index};
use oci_manifest::schema1::Schema1;
use oci_manifest::{Descriptor, Manifest, ManifestError, media_types};
use tracing::warn;

use super::CopySide::Source;
use super::budget::Draw;
use super::error::{At, Fault};
use super::options::CopyOptions;
use super::referrers::list_referrers;
use super::report::ManifestConversion;
use super::retry::Retry;
use crate::error::{Result, StoreError};
use crate::traits::{ReadStore, TagStore};

/// Resolves a tag or a digest in `store` to a descriptor (a digest the store cannot resolve as
/// a reference is looked up by content, its media type read from the manifest itself).
///
/// # Errors
/// [`StoreError::TagNotFound`] / [`StoreError::NotFound`]; [`StoreError::InvalidManifest`] when
/// content named by digest is not a manifest.
pub async fn resolve_reference<S: ReadStore + TagStore + ?Sized>(
    store: &S,
    reference: &str,
) -> Result<Descriptor> {
    Ok(resolve_inner(store, reference).await?.0)
}

/// [`resolve_reference`], also returning the manifest when it had to be fetched, or when the
/// store's answer carried it ([`TagStore::resolve_with_content`]: a registry's one `GET`).
pub(super) async fn resolve_inner<S: ReadStore + TagStore + ?Sized>(
    store: &S,
    reference: &str,
) -> Result<(Descriptor, Option<Manifest>)> {
    let Ok(digest) = Digest::parse(reference) else {
        let (d, bytes) = store.resolve_with_content(reference).await?;
        return Ok(with_content(d, bytes));
    };
    match store.resolve_with_content(reference).await {
        Ok((d, bytes)) if d.digest == digest => return Ok(with_content(d, bytes)),
        Ok((d, _)) => {
            warn!(reference, got = %d.digest, "store resolved a digest to other content");
        }
        Err(e) if e.is_not_found() || matches!(e, StoreError::InvalidTag { .. }) => {}
        Err(e) => return Err(e),
    }
    let size = store
        .stat(&digest)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            digest: digest.clone(),
        })?;
    let guess = Descriptor::new(media_types::OCI_MANIFEST, digest.clone(), size);
    let raw = store
        .fetch_bytes(&guess, oci_manifest::DEFAULT_MAX_MANIFEST_SIZE as u64)
        .await?;
    match Manifest::parse_pinned(raw, None, &digest, &Default::default()) {
        Ok(m) => Ok((m.descriptor(), Some(m))),
        // Planned (converted, or refused) as schema 1 by the planner.
        Err(ManifestError::Schema1 { signed, .. }) => {
            let mt = if signed {
                media_types::DOCKER_MANIFEST_V1_SIGNED
            } else {
                media_types::DOCKER_MANIFEST_V1
            };
            Ok((Descriptor::new(mt, digest, size), None))
        }
        Err(source) => Err(StoreError::InvalidManifest { digest, source }),
    }
}

/// A resolved root and the manifest parsed from the bytes that came with it. Bytes that do not
/// parse (schema 1, which the planner converts or refuses; anything else) are dropped: the
/// planner fetches the root again and reports what it finds.
fn with_content(desc: Descriptor, bytes: Option<Bytes>) -> (Descriptor, Option<Manifest>) {
    let manifest = bytes.and_then(|raw| {
        Manifest::parse_pinned(
            raw,
            Some(desc.media_type.as_str()),
            &desc.digest,
            &Default::default(),
        )
        .ok()
    });
    (desc, manifest)
}

/// One distinct piece of content to copy.
#[derive(Debug)]
pub(super) struct Node {
    /// As the source names it.
    pub(super) src: Descriptor,
    /// As the destination will store it (another digest when reduced or converted).
    pub(super) target: Descriptor,
    /// The bytes to store, for manifests (held from the plan; they are small).
    pub(super) bytes: Option<Bytes>,
    /// Source digests of the children that must be there first.
    pub(super) children: Vec<Digest>,
}

/// Everything a copy will store, known before the first transfer.
pub(super) struct Plan {
    /// Every distinct piece of content, by source digest.
    pub(super) nodes: HashMap<Digest, Node>,
    /// Post-order (children before parents).
    pub(super) order: Vec<Digest>,
    /// Index entries left out by the platform filter.
    pub(super) dropped: Vec<Descriptor>,
    /// Foreign layers the source does not hold, left out.
    pub(super) foreign: Vec<Descriptor>,
    /// Manifests converted on the way (schema 1).
    pub(super) conversions: Vec<ManifestConversion>,
}

/// What the planner made.
pub(super) struct Planned {
    pub(super) plan: Plan,
    /// The root as the destination will have it.
    pub(super) result: Descriptor,
    /// (subject, referrer) pairs of the referrers planned, in discovery order.
    pub(super) referrers: Vec<(Descriptor, Descriptor)>,
}

impl Plan {
    /// Bytes of the whole graph: the sizes its descriptors declare (a peer's numbers), added
    /// with a check, so that sizes adding past `u64::MAX` are an error naming the descriptor
    /// that did not fit rather than a panic (debug builds) or a wrapped total (release).
    pub(super) fn total(&self) -> Result<u64> {
        self.order.iter().try_fold(0u64, |sum, d| {
            let target = &self.nodes[d].target;
            sum.checked_add(target.size)
                .ok_or_else(|| StoreError::SizeOverflow {
                    digest: target.digest.clone(),
                    size: target.size,
                    what: "the copy's total",
                })
        })
    }
}

/// Makes the [`Plan`] of a copy from its source.
pub(super) struct Planner<'a, S: ?Sized> {
    src: &'a S,
    options: &'a CopyOptions,
    /// The copy's retry budget.
    budget: &'a Draw,
    /// The root manifest when resolving it already fetched it.
    prefetched: Option<Manifest>,
    nodes: HashMap<Digest, Node>,
    order: Vec<Digest>,
    stack: Vec<Digest>,
    root: Digest,
    dropped: Vec<Descriptor>,
    foreign: Vec<Descriptor>,
    conversions: Vec<ManifestConversion>,
}

impl<'a, S: ReadStore + TagStore + ?Sized> Planner<'a, S> {
    /// A planner for the graph below `root` in `src`; `prefetched` is the root manifest when
    /// resolving the reference already fetched it.
    pub(super) fn new(
        src: &'a S,
        options: &'a CopyOptions,
        budget: &'a Draw,
        root: &Descriptor,
        prefetched: Option<Manifest>,
    ) -> Self {
        Planner {
            src,
            options,
            budget,
            prefetched,
            nodes: HashMap::new(),
            order: Vec::new(),
            stack: Vec::new(),
            root: root.digest.clone(),
            dropped: Vec::new(),
            foreign: Vec::new(),
            conversions: Vec::new(),
        }
    }

    /// Plans the graph below `root` (and, when the options ask for them, the referrers of every
    /// manifest copied unchanged). Every store failure is the source's.
    pub(super) async fn make(mut self, root: &Descriptor) -> std::result::Result<Planned, Fault> {
        let result = self.plan(root, 0, true).await?;
        let referrers = if self.options.include_referrers {
            self.plan_referrers().await?
        } else {
            Vec::new()
        };
        let plan = Plan {
            nodes: self.nodes,
            order: self.order,
            dropped: self.dropped,
            foreign: self.foreign,
            conversions: self.conversions,
        };
        Ok(Planned {
            plan,
            result,
            referrers,
        })
    }

    /// Plans `desc` and everything below it; returns the descriptor the destination will have.
    fn plan<'b>(
        &'b mut self,
        desc: &'b Descriptor,
        depth: usize,
        is_root: bool,
    ) -> BoxFuture<'b, std::result::Result<Descriptor, Fault>> {
        Box::pin(async move {
            if let Some(n) = self.nodes.get(&desc.digest) {
                return Ok(merge(desc, &n.target));
            }
            let schema1 = media_types::is_schema1(&desc.media_type);
            if !desc.is_manifest()
                && !schema1
                && desc.is_non_distributable()
                && desc.urls.as_ref().is_some_and(|u| !u.is_empty())
                && self.src.stat(&desc.digest).await.at(Source)?.is_none()
            {
                // A foreign layer the source does not hold: it lives at its URLs.
                if !self.foreign.iter().any(|f| f.digest == desc.digest) {
                    self.foreign.push(desc.clone());
                }
                return Ok(desc.clone());
            }
            if !desc.is_manifest() && !schema1 {
                // Content embedded in its descriptor (verified against it) needs no fetch.
                let embedded = desc.embedded_data().and_then(|r| r.ok()).map(Bytes::from);
                self.add(Node {
                    src: desc.clone(),
                    target: desc.clone(),
                    bytes: embedded,
                    children: Vec::new(),
                });
                return Ok(desc.clone());
            }
            if self.stack.contains(&desc.digest) {
                return Err(Fault::store(
                    Source,
                    StoreError::Cycle {
                        root: self.root.clone(),
                        digest: desc.digest.clone(),
                    },
                ));
            }
            if depth > oci_manifest::DEFAULT_MAX_INDEX_DEPTH {
                return Err(Fault::store(
                    Source,
                    StoreError::NestingTooDeep {
                        root: self.root.clone(),
                        digest: desc.digest.clone(),
                        limit: oci_manifest::DEFAULT_MAX_INDEX_DEPTH,
                    },
                ));
            }
            if self.options.is_cancelled() {
                return Err(Fault::Cancelled);
            }
            if schema1 {
                return self.plan_schema1(desc, None).await;
            }
            let manifest = match self.prefetched.take() {
                Some(m) if m.digest() == &desc.digest => m,
                _ => match self.fetch_manifest(desc).await {
                    Ok(m) => m,
                    // Schema 1 content under a schema 2 media type (`application/json`).
                    Err(Fault::Store(_, e)) if is_schema1_error(&e) => {
                        return self.plan_schema1(desc, Some(*e)).await;
                    }
                    Err(e) => return Err(e),
                },
            };
            let mut effective = manifest.clone();
            if is_root && effective.is_index() && !self.options.platforms.is_empty() {
                let reduced =
                    oci_manifest::reduce(&effective, &self.options.platforms).map_err(|source| {
                        match source {
                            oci_manifest::ManifestError::NoMatchingPlatform { .. } => {
                                StoreError::NoMatchingPlatform {
                                    digest: desc.digest.clone(),
                                    source,
                                }
                            }
                            source => StoreError::InvalidManifest {
                                digest: desc.digest.clone(),
                                source,
                            },
                        }
                    });
                let reduced = reduced.at(Source)?;
                self.dropped = reduced.dropped;
                effective = reduced.index;
            }
            self.stack.push(desc.digest.clone());
            let mut children = Vec::new();
            let mut changed: HashMap<Digest, Descriptor> = HashMap::new();
            for child in effective.children().to_vec() {
                let target = match self.plan(&child, depth + 1, false).await {
                    Ok(t) => t,
                    // A platform's image missing from an index: say which platform.
                    Err(Fault::Store(side, e)) if e.is_not_found() && effective.is_index() => {
                        return Err(match &child.platform {
                            Some(p) => Fault::store(
                                side,
                                StoreError::PlatformMissing {
                                    index: desc.digest.clone(),
                                    platform: p.to_string(),
                                    digest: child.digest.clone(),
                                    source: e,
                                },
                            ),
                            None => Fault::Store(side, e),
                        });
                    }
                    Err(e) => return Err(e),
                };
                if target.digest != child.digest {
                    changed.insert(child.digest.clone(), target);
                }
                if self.nodes.contains_key(&child.digest) && !children.contains(&child.digest) {
                    children.push(child.digest.clone());
                }
            }
            self.stack.pop();
            let to = self
                .options
                .format
                .unwrap_or_else(|| Flavor::of(effective.kind()));
            let bad = |source| StoreError::InvalidManifest {
                digest: desc.digest.clone(),
                source,
            };
            if effective.is_index() {
                if !changed.is_empty() || Flavor::of(effective.kind()) != to {
                    effective = convert_index(&effective, to, &changed)
                        .map_err(bad)
                        .at(Source)?
                        .manifest;
                }
            } else if Flavor::of(effective.kind()) != to {
                effective = convert(&effective, to).map_err(bad).at(Source)?.manifest;
            }
            let mut target = merge(desc, &effective.descriptor());
            if target.digest == desc.digest {
                target.media_type = desc.media_type.clone();
            }
            self.add(Node {
                src: desc.clone(),
                target: target.clone(),
                bytes: Some(effective.raw().clone()),
                children,
            });
            Ok(target)
        })
    }

    /// Plans a Docker schema 1 manifest: refused ([`ManifestError::Schema1`]) unless the
    /// options ask for a conversion; converted otherwise (`refused` is the error to give when
    /// not converting, when the fetch already made it). The diff IDs are computed here, by
    /// reading and decompressing each layer from the source (verified), at most
    /// [`CopyOptions::jobs`] at a time; the new configuration is a node with its bytes.
    async fn plan_schema1(
        &mut self,
        desc: &Descriptor,
        refused: Option<StoreError>,
    ) -> std::result::Result<Descriptor, Fault> {
        let Some(flavor) = self.options.convert_schema1 else {
            let e = refused.unwrap_or_else(|| StoreError::InvalidManifest {
                digest: desc.digest.clone(),
                source: ManifestError::Schema1 {
                    digest: desc.digest.clone(),
                    signed: media_types::essence(&desc.media_type)
                        == media_types::DOCKER_MANIFEST_V1_SIGNED,
                },
            });
            return Err(Fault::store(Source, e));
        };
        let to = self.options.format.unwrap_or(flavor);
        let src = self.src;
        let raw = Retry::new(self.options, self.budget, src.location().is_some())
            .run(
                || async move {
                    src.fetch_bytes(desc, oci_manifest::DEFAULT_MAX_MANIFEST_SIZE as u64)
                        .await
                        .at(Source)
                },
                |attempt, fault| {
                    warn!(digest = %desc.digest, attempt, error = %fault, "fetching a schema 1 manifest failed; retrying");
                },
            )
            .await
            .result?;
        let bad = |source| StoreError::InvalidManifest {
            digest: desc.digest.clone(),
            source,
        };
        let s1 = Schema1::parse_pinned(raw, &desc.digest)
            .map_err(bad)
            .at(Source)?;
        let kept: Vec<Digest> = s1
            .layers()
            .into_iter()
            .filter(|l| !l.throwaway)
            .map(|l| l.digest)
            .collect();
        let mut unique: Vec<Digest> = Vec::new();
        for d in &kept {
            if !unique.contains(d) {
                unique.push(d.clone());
            }
        }
        let jobs = self.options.jobs.max(1);
        let mut facts: HashMap<Digest, (Descriptor, Digest)> = HashMap::new();
        for batch in unique.chunks(jobs) {
            let mut work = Vec::with_capacity(batch.len());
            for d in batch {
                work.push(self.learn_layer(d));
            }
            for r in futures_util::future::join_all(work).await {
                let (digest, layer, diff_id) = r?;
                facts.insert(digest, (layer, diff_id));
            }
        }
        let pairs: Vec<(Descriptor, Digest)> =
            kept.iter().filter_map(|d| facts.get(d).cloned()).collect();
        let converted = s1.convert(&pairs, to).map_err(bad).at(Source)?;
        let mut children = Vec::new();
        for ((src_layer, _), target) in pairs.iter().zip(converted.manifest.layers()) {
            if !self.nodes.contains_key(&src_layer.digest) {
                self.add(Node {
                    src: src_layer.clone(),
                    target: target.clone(),
                    bytes: None,
                    children: Vec::new(),
                });
            }
            if !children.contains(&src_layer.digest) {
                children.push(src_layer.digest.clone());
            }
        }
        if let Some(config) = converted.manifest.config() {
            self.add(Node {
                src: strip(config),
                target: strip(config),
                bytes: Some(converted.config.clone()),
                children: Vec::new(),
            });
            children.push(config.digest.clone());
        }
        let target = merge(desc, &converted.manifest.descriptor());
        let flavor_name = match to {
            Flavor::Docker => "Docker schema 2",
            _ => "OCI",
        };
        let reason = format!(
            "Docker schema 1 ({}) converted to {flavor_name}: configuration built from the v1Compatibility history, {} diff IDs computed from the layers, {} throwaway layer(s) left out",
            if s1.is_signed() { "signed" } else { "unsigned" },
            pairs.len(),
            converted.dropped.len()
        );
        tracing::info!(source = %desc.digest, result = %target.digest, "{reason}");
        self.conversions.push(ManifestConversion {
            source: strip(desc),
            result: strip(&target),
            reason,
        });
        self.add(Node {
            src: desc.clone(),
            target: target.clone(),
            bytes: Some(converted.manifest.raw().clone()),
            children,
        });
        Ok(target)
    }

    /// A schema 1 layer's descriptor (its size asked of the source; its media type from its
    /// first bytes) and its diff ID, from its bytes read from the source, verified.
    async fn learn_layer(
        &self,
        digest: &Digest,
    ) -> std::result::Result<(Digest, Descriptor, Digest), Fault> {
        let src = self.src;
        Retry::new(self.options, self.budget, src.location().is_some())
            .run(
                || async move {
                    let size = src
                        .stat(digest)
                        .await
                        .at(Source)?
                        .ok_or_else(|| StoreError::NotFound {
                            digest: digest.clone(),
                        })
                        .at(Source)?;
                    let desc =
                        Descriptor::new(media_types::DOCKER_LAYER_GZIP, digest.clone(), size);
                    let stream = src.fetch(&desc).await.at(Source)?;
                    let (diff_id, compression) =
                        crate::archive::diff_id(stream, digest, DIFF_ID_LIMIT)
                            .await
                            .at(Source)?;
                    let media_type = match compression {
                        crate::archive::Compression::None => media_types::DOCKER_LAYER_TAR,
                        _ => media_types::DOCKER_LAYER_GZIP,
                    };
                    Ok((
                        digest.clone(),
                        Descriptor::new(media_type, digest.clone(), size),
                        diff_id,
                    ))
                },
                |attempt, fault| {
                    warn!(%digest, attempt, error = %fault, "computing a diff ID failed; retrying");
                },
            )
            .await
            .result
    }

    /// The manifest `desc` from the source, verified, fetched with retries.
    async fn fetch_manifest(&self, desc: &Descriptor) -> std::result::Result<Manifest, Fault> {
        let src = self.src;
        Retry::new(self.options, self.budget, src.location().is_some())
            .run(
                || async move { src.fetch_manifest(desc).await.at(Source) },
                |attempt, fault| {
                    warn!(digest = %desc.digest, attempt, error = %fault, "fetching a manifest failed; retrying");
                },
            )
            .await
            .result
    }

    fn add(&mut self, node: Node) {
        let d = node.src.digest.clone();
        if self.nodes.insert(d.clone(), node).is_none() {
            self.order.push(d);
        }
    }

    /// Finds the referrers of every manifest copied unchanged (and of those referrers), and
    /// plans them. Returns (subject, referrer) pairs in discovery order.
    async fn plan_referrers(
        &mut self,
    ) -> std::result::Result<Vec<(Descriptor, Descriptor)>, Fault> {
        let mut links = Vec::new();
        let mut asked: HashSet<Digest> = HashSet::new();
        let mut i = 0;
        while i < self.order.len() {
            let d = self.order[i].clone();
            i += 1;
            let n = &self.nodes[&d];
            if !n.src.is_manifest() || n.target.digest != n.src.digest || !asked.insert(d.clone()) {
                continue;
            }
            let subject = n.target.clone();
            for r in list_referrers(self.src, &subject).await.at(Source)? {
                if self.nodes.contains_key(&r.digest) {
                    continue;
                }
                let target = self.plan(&r, 1, false).await?;
                if target.digest == r.digest {
                    links.push((strip(&subject), r));
                }
            }
        }
        Ok(links)
    }
}

/// `target`'s media type, digest and size with `orig`'s other fields (platform, annotations).
fn merge(orig: &Descriptor, target: &Descriptor) -> Descriptor {
    let mut d = orig.clone();
    d.media_type = target.media_type.clone();
    d.digest = target.digest.clone();
    d.size = target.size;
    if d.digest != orig.digest {
        d.data = None;
    }
    d
}

/// Whether `e` says the content is a Docker schema 1 manifest.
fn is_schema1_error(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::InvalidManifest {
            source: ManifestError::Schema1 { .. },
            ..
        }
    )
}

/// The most bytes a schema 1 layer may decompress to while its diff ID is computed.
const DIFF_ID_LIMIT: u64 = 1 << 40;

/// Media type, digest and size only.
pub(super) fn strip(d: &Descriptor) -> Descriptor {
    Descriptor::new(d.media_type.clone(), d.digest.clone(), d.size)
}
