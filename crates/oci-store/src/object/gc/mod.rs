//! Garbage collection, fsck and reference queries of a `BucketStore`, online beside writers on
//! other machines (the protocol is in the module documentation of `object`): the marker, the
//! listing, the roots (leases, ingests, `index.json`, in that order), the mark (the shared
//! reachability walk of `crate::gc`, fed with manifests fetched from the bucket), tombstones,
//! the second reading of the roots, and the sweep.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::{ObjectStoreExt, PutMode};
use oci_digest::{Digest, Digester};
use serde::{Deserialize, Serialize};

use super::BucketStore;
use super::backend::{backend_err, is_exists, is_not_found, put};
use super::blobs::Tombstone;
use super::clock::StorageTime;
use super::ingest::lock_live;
use super::keys::BlobKey;
use crate::error::{Result, StoreError};
use crate::gc::{
    BlobMeta, Content, Corrupt, FsckOptions, FsckReport, GcOptions, GcReport, Graph,
    MANIFEST_LIMIT, Marking, Node, Parent, Removal, Root, Skipped, parents_from,
};
use crate::lease::{from_millis, new_id, to_millis};

mod fsck;
mod sweep;

/// Requests in flight at once for tombstones and manifest reads (deletes are batched).
const CONCURRENCY: usize = 32;

/// Bytes of manifests fetched for one pass of the graph.
const FETCH_BUDGET: u64 = 64 << 20;

/// A collection in progress, `<state>/gc/<run>.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    started_ms: u64,
    deadline_ms: u64,
    dry_run: bool,
}

/// The roots as read, with what a collection decides about leases and ingests.
#[derive(Debug, Default)]
struct Roots {
    roots: Vec<Root>,
    /// Expired leases (id, pins).
    expired: Vec<(String, Vec<Digest>)>,
    /// Pins of leases without a record (released or collected), by lease id.
    orphans: Vec<(String, Vec<Digest>)>,
    /// Stale ingests (hashed name, key, record).
    stale: Vec<(String, String, Option<super::ingest::IngestRecord>)>,
}

/// Manifests fetched for the graph: a pass that needs content not fetched yet records it and
/// goes on without it; the caller fetches what was wanted and runs the pass again.
#[derive(Default)]
struct Fetched {
    map: Mutex<HashMap<Digest, Bytes>>,
    wanted: Mutex<HashSet<Digest>>,
    gone: Mutex<HashSet<Digest>>,
}

impl Content for Fetched {
    fn read_small(&self, digest: &Digest, _size_hint: u64) -> Result<Option<Bytes>> {
        if let Some(b) = self.map.lock().ok().and_then(|m| m.get(digest).cloned()) {
            return Ok(Some(b));
        }
        if self.gone.lock().is_ok_and(|g| g.contains(digest)) {
            return Ok(None);
        }
        if let Ok(mut w) = self.wanted.lock() {
            w.insert(digest.clone());
        }
        Ok(None)
    }
}

impl BucketStore {
    /// Runs `f` on the graph over `blobs` until it needed no content it did not have.
    async fn with_graph<T>(
        &self,
        blobs: &HashMap<Digest, BlobMeta>,
        f: impl Fn(&Graph<'_>) -> Result<T>,
    ) -> Result<T> {
        let fetched = Fetched::default();
        loop {
            let out = {
                let graph = Graph {
                    blobs,
                    content: &fetched,
                    cache: &self.inner.cache,
                };
                f(&graph)?
            };
            let wanted: Vec<Digest> = match fetched.wanted.lock() {
                Ok(mut w) => w.drain().collect(),
                Err(_) => Vec::new(),
            };
            if wanted.is_empty() {
                return Ok(out);
            }
            // What the last pass read is parsed and cached now.
            if let Ok(mut m) = fetched.map.lock() {
                m.clear();
            }
            let mut batch = Vec::new();
            let mut bytes = 0u64;
            for d in wanted {
                let size = blobs.get(&d).map_or(0, |m| m.size);
                if !batch.is_empty() && bytes + size > FETCH_BUDGET {
                    break;
                }
                bytes += size;
                batch.push(d);
            }
            self.fetch_into(batch, &fetched).await?;
        }
    }

    /// Fetches manifests `wanted` (many at once) into `fetched`: their bytes, or that they are
    /// gone (or replaced by something larger than a manifest since the listing: read as not
    /// there, so a declared manifest is then missing).
    async fn fetch_into(&self, wanted: Vec<Digest>, fetched: &Fetched) -> Result<()> {
        let results: Vec<(Digest, Result<Option<Bytes>>)> =
            futures_util::stream::iter(wanted.into_iter().map(|d| async move {
                let key = self.keys().blob(&d);
                let r = self
                    .read_limited(&key, "manifest", MANIFEST_LIMIT)
                    .await
                    .map(|o| o.map(|(b, _)| b));
                (d, r)
            }))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (d, r) in results {
            match r {
                Ok(Some(b)) => {
                    if let Ok(mut m) = fetched.map.lock() {
                        m.insert(d, b);
                    }
                }
                Ok(None) | Err(StoreError::FileTooLarge { .. }) => {
                    if let Ok(mut g) = fetched.gone.lock() {
                        g.insert(d);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Fetches and parses (into the node cache) the manifests `roots` reach, level by level,
    /// many at once. The mark then finds them parsed: without this its first pass, which
    /// lacks them, would take every blob they protect for unreferenced and fetch each small
    /// one to look for referrers (a GET per live layer and config: 50,000 of them in the
    /// 100,000-blob benchmark). Content that does not parse is left to the mark to report.
    async fn prefetch(&self, blobs: &HashMap<Digest, BlobMeta>, roots: &[Root]) -> Result<()> {
        let mut seen: HashSet<Digest> = HashSet::new();
        let mut level: Vec<(Digest, Option<String>)> = roots
            .iter()
            .filter(|r| seen.insert(r.digest.clone()))
            .map(|r| (r.digest.clone(), r.media_type.clone()))
            .collect();
        while !level.is_empty() {
            let mut next = Vec::new();
            for batch in budgeted(level, blobs) {
                let fetched = Fetched::default();
                let node = |d: &Digest, mt: &Option<String>| {
                    let size = blobs.get(d).map_or(0, |m| m.size);
                    self.inner
                        .cache
                        .node(&fetched, d, size, mt.as_deref())
                        .ok()
                        .flatten()
                };
                for (d, mt) in &batch {
                    let _ = node(d, mt); // records what must be fetched
                }
                let wanted: Vec<Digest> = match fetched.wanted.lock() {
                    Ok(mut w) => w.drain().collect(),
                    Err(_) => Vec::new(),
                };
                self.fetch_into(wanted, &fetched).await?;
                for (d, mt) in &batch {
                    if let Some(n) = node(d, mt)
                        && let Node::Manifest { children, .. } = &*n
                    {
                        next.extend(
                            children
                                .iter()
                                .filter(|c| seen.insert(c.digest.clone()))
                                .map(|c| (c.digest.clone(), Some(c.media_type.clone()))),
                        );
                    }
                }
            }
            level = next;
        }
        Ok(())
    }

    /// Marks from `roots`; content a root reaches that is newer than the listing is looked up
    /// and added to `blobs` (so a tag written after the listing keeps what it reaches).
    async fn mark_all(
        &self,
        blobs: &mut HashMap<Digest, BlobMeta>,
        roots: &[Root],
        min_age: Option<(Duration, SystemTime)>,
    ) -> Result<Marking> {
        self.prefetch(blobs, roots).await?;
        let mut probed: HashSet<Digest> = HashSet::new();
        loop {
            let snapshot = &*blobs;
            let m = self
                .with_graph(snapshot, |g| g.mark(roots, min_age))
                .await?;
            let new: Vec<Digest> = m
                .missing
                .iter()
                .map(|(d, _)| d.clone())
                .filter(|d| probed.insert(d.clone()))
                .collect();
            let mut added = false;
            for d in new {
                let key = self.keys().blob(&d);
                match self.store().head(&key).await {
                    Ok(meta) => {
                        blobs.insert(
                            d,
                            BlobMeta {
                                size: meta.size,
                                modified: SystemTime::from(meta.last_modified),
                            },
                        );
                        added = true;
                    }
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(backend_err(format!("stat {d}"), e)),
                }
            }
            if !added {
                return Ok(m);
            }
        }
    }

    /// Every blob under `blobs/` with size and `last_modified`, and the keys there that are not
    /// blobs (reported, never read or removed).
    async fn list_blobs(&self) -> Result<(HashMap<Digest, BlobMeta>, Vec<Skipped>)> {
        let mut out = HashMap::new();
        let mut skipped = Vec::new();
        for meta in self.list(&self.keys().blobs()).await? {
            match self.keys().parse_blob(&meta.location) {
                BlobKey::Blob(d) => {
                    out.insert(
                        d,
                        BlobMeta {
                            size: meta.size,
                            modified: SystemTime::from(meta.last_modified),
                        },
                    );
                }
                BlobKey::Foreign => {
                    tracing::warn!(key = %meta.location, "skipped: not a blob key");
                    skipped.push(Skipped::new(
                        meta.location.as_ref(),
                        "an object whose key is not blobs/<algorithm>/<digest>",
                    ));
                }
            }
        }
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((out, skipped))
    }

    /// The roots: live leases' pins of listed content first, then ingests, then `index.json`
    /// (a writer moves its protection from lease to tag, so this order sees at least one).
    /// With `gc` (and its storage time), also which leases expired and which ingests are stale.
    async fn read_roots(
        &self,
        listed: &HashMap<Digest, BlobMeta>,
        gc: Option<(&GcOptions, StorageTime)>,
    ) -> Result<Roots> {
        let mut found = Roots::default();
        // Judgements that must be sure: a lease is expired, an ingest stale or unheld.
        let sure_now = gc.map(|(_, t)| t.at.checked_sub(t.uncertainty).unwrap_or(t.at));
        for (id, l) in self.list_leases().await? {
            let Some(expires) = l.expires else {
                if !l.record_present {
                    found.orphans.push((id, l.pins));
                }
                continue;
            };
            if sure_now.is_some_and(|now| now >= expires) {
                found.expired.push((id, l.pins));
                continue;
            }
            for d in l.pins {
                // A pin of content not stored protects nothing yet: content stored after the
                // listing is not collected by this run anyway.
                if listed.contains_key(&d) {
                    found.roots.push(Root {
                        parent: Parent::Lease(id.clone()),
                        digest: d,
                        media_type: None,
                        size: None,
                    });
                }
            }
        }
        for i in self.list_ingests().await? {
            if let Some((opts, _)) = gc
                && let Some(now) = sure_now
            {
                let held = i
                    .record
                    .as_ref()
                    .is_some_and(|(r, meta)| lock_live(r, meta, now));
                let age = now
                    .duration_since(SystemTime::from(i.meta.last_modified))
                    .unwrap_or(Duration::ZERO);
                if !held && age >= opts.stale_ingest_age {
                    let key = i
                        .record
                        .as_ref()
                        .map(|(r, _)| r.key.clone())
                        .unwrap_or_default();
                    found.stale.push((i.hashed, key, i.record.map(|(r, _)| r)));
                    continue;
                }
            }
            if let Some((r, _)) = i.record {
                found.roots.push(Root {
                    parent: Parent::Ingest(r.key),
                    digest: r.expected.digest,
                    media_type: Some(r.expected.media_type),
                    size: None,
                });
            }
        }
        found.roots.extend(self.read_index().await?.index.roots());
        if let Some((opts, _)) = gc {
            found.roots.extend(opts.keep.iter().map(|d| Root {
                parent: Parent::Kept,
                digest: d.clone(),
                media_type: None,
                size: None,
            }));
        }
        Ok(found)
    }

    /// Who refers to `digest` (see [`ManagedStore::parents`](crate::ManagedStore::parents)).
    pub(super) async fn parents_of(&self, digest: &Digest) -> Result<Vec<Parent>> {
        self.settle_all().await;
        let (blobs, _) = self.list_blobs().await?;
        let roots = self.read_roots(&blobs, None).await?.roots;
        let target = digest.clone();
        let manifests = self
            .with_graph(&blobs, |g| g.manifest_parents(&target))
            .await?;
        Ok(parents_from(digest, &roots, manifests))
    }
}

/// `items` cut into batches whose listed sizes add up to at most [`FETCH_BUDGET`] (at least
/// one item each).
fn budgeted(
    items: Vec<(Digest, Option<String>)>,
    blobs: &HashMap<Digest, BlobMeta>,
) -> Vec<Vec<(Digest, Option<String>)>> {
    let mut out: Vec<Vec<(Digest, Option<String>)>> = Vec::new();
    let mut bytes = 0u64;
    for item in items {
        let size = blobs.get(&item.0).map_or(0, |m| m.size).min(MANIFEST_LIMIT);
        match out.last_mut() {
            Some(last) if bytes + size <= FETCH_BUDGET => last.push(item),
            _ => {
                out.push(vec![item]);
                bytes = 0;
            }
        }
        bytes += size;
    }
    out
}

/// `v` sorted, without duplicates.
fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}
