//! Reference graph, garbage collection and fsck: the logic shared by every local store.
//!
//! Stores provide a snapshot (the blobs present with size and age, the roots) and a way to read
//! small content; this module parses manifests (cached by digest forever, as content never
//! changes), marks what is reachable and decides what goes. Existence is never cached: every
//! collection works on a fresh listing.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use oci_digest::{Digest, VerifyError};
use oci_manifest::{Descriptor, Manifest, media_types};

use crate::error::{Result, StoreError};

/// Who refers to a piece of content (an answer of
/// [`ManagedStore::parents`](crate::ManagedStore::parents)).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Parent {
    /// A tag points at it.
    Tag(String),
    /// An entry of the layout's `index.json` without a tag (written by another tool) points at
    /// it; the number is the entry's position.
    UntaggedEntry(usize),
    /// A lease pins it (the lease id).
    Lease(String),
    /// A collection keeps it because its options say so ([`GcOptions::keep`]).
    Kept,
    /// An active or resumable ingest is writing it (the ingest key).
    Ingest(String),
    /// A stored manifest or index lists it among its children.
    Manifest(Digest),
}

impl fmt::Display for Parent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Parent::Tag(t) => write!(f, "tag {t:?}"),
            Parent::UntaggedEntry(i) => write!(f, "untagged index.json entry #{i}"),
            Parent::Lease(l) => write!(f, "lease {l}"),
            Parent::Kept => f.write_str("kept by the collection's options"),
            Parent::Ingest(k) => write!(f, "ingest {k:?}"),
            Parent::Manifest(d) => write!(f, "manifest {d}"),
        }
    }
}

/// Options of [`ManagedStore::gc`](crate::ManagedStore::gc).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GcOptions {
    /// Report what would go, remove nothing.
    pub dry_run: bool,
    /// Unreferenced content younger than this is kept (with everything it refers to), so
    /// content written by a tool that knows nothing of leases is not swept under it.
    pub min_age: Duration,
    /// Ingests that no writer holds and that received nothing for this long are removed.
    pub stale_ingest_age: Duration,
    /// Extra roots to keep.
    pub keep: Vec<Digest>,
}

impl Default for GcOptions {
    /// Not a dry run; `min_age` 10 minutes; `stale_ingest_age` 24 hours; nothing extra kept.
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            min_age: Duration::from_secs(600),
            stale_ingest_age: Duration::from_secs(24 * 3600),
            keep: Vec::new(),
        }
    }
}

impl GcOptions {
    /// Default options with `dry_run` set.
    ///
    /// ```
    /// assert!(oci_store::GcOptions::dry_run().dry_run);
    /// ```
    pub fn dry_run() -> Self {
        GcOptions {
            dry_run: true,
            ..GcOptions::default()
        }
    }

    /// These options with `min_age` replaced.
    pub fn with_min_age(mut self, min_age: Duration) -> Self {
        self.min_age = min_age;
        self
    }

    /// These options with `stale_ingest_age` replaced.
    pub fn with_stale_ingest_age(mut self, age: Duration) -> Self {
        self.stale_ingest_age = age;
        self
    }

    /// These options with `dry_run` replaced.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// These options with `digest` added to the extra roots.
    pub fn with_keep(mut self, digest: Digest) -> Self {
        self.keep.push(digest);
        self
    }
}

/// Why content is (or would be) removed by garbage collection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SweepReason {
    /// Nothing reachable from a root refers to it, and it is older than the minimum age.
    Unreferenced,
    /// A referrer (a manifest with a `subject`) whose subject is not alive.
    SubjectGone {
        /// The subject it refers to.
        subject: Digest,
    },
}

impl fmt::Display for SweepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SweepReason::Unreferenced => f.write_str("unreferenced"),
            SweepReason::SubjectGone { subject } => {
                write!(f, "referrer whose subject {subject} is not alive")
            }
        }
    }
}

/// One piece of content removed (or, in a dry run, to be removed).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Removal {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Why it goes.
    pub reason: SweepReason,
}

/// What a garbage collection did (or would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Whether this was a dry run (nothing removed).
    pub dry_run: bool,
    /// Blobs present when the collection started.
    pub blobs: usize,
    /// Blobs found alive.
    pub live: usize,
    /// Blobs removed (or to be removed), with the reason.
    pub removed: Vec<Removal>,
    /// Bytes freed (or to be freed).
    pub bytes_freed: u64,
    /// Unreferenced blobs kept because they are younger than the minimum age.
    pub young: Vec<Digest>,
    /// Referenced content that is not stored (with who refers to it).
    pub missing: Vec<(Digest, Parent)>,
    /// Referenced non-distributable (foreign) layers that are not stored, as expected: they
    /// live at their URLs (with who refers to them). Not missing content.
    pub foreign: Vec<(Digest, Parent)>,
    /// Expired leases removed (or to be removed).
    pub expired_leases: Vec<String>,
    /// Stale ingests removed (or to be removed), by key.
    pub stale_ingests: Vec<String>,
    /// Leftover temporary files of interrupted rewrites removed (or to be removed).
    pub temporary_files: Vec<PathBuf>,
    /// Cached piece maps removed (or to be removed) because their blob is removed or gone, by
    /// the blob's digest (a [`LayoutStore`](crate::LayoutStore) caches them, see
    /// [`LayoutStore::piece_map`](crate::LayoutStore::piece_map)).
    pub piece_maps: Vec<Digest>,
    /// Entries of the store's directories that are not regular files (links, FIFOs, devices,
    /// directories where blobs belong): never followed, read or removed, only reported.
    pub skipped: Vec<Skipped>,
}

/// An entry a store found in its own tree and left alone because it is not a regular file
/// (a symbolic link could lead out of the store; a FIFO would block).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Skipped {
    /// The entry.
    pub path: PathBuf,
    /// What it is ("a symbolic link", "a FIFO", "a directory", ...).
    pub found: &'static str,
}

impl Skipped {
    /// An entry at `path` that is `found`.
    ///
    /// ```
    /// let s = oci_store::Skipped::new("blobs/sha256/x", "a FIFO");
    /// assert_eq!(s.found, "a FIFO");
    /// ```
    pub fn new(path: impl Into<PathBuf>, found: &'static str) -> Skipped {
        Skipped {
            path: path.into(),
            found,
        }
    }
}

/// Options of [`ManagedStore::fsck`](crate::ManagedStore::fsck).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct FsckOptions {
    /// Remove corrupt blobs, so that the next copy fetches them again.
    pub repair: bool,
}

impl FsckOptions {
    /// Options with `repair` set.
    ///
    /// ```
    /// assert!(oci_store::FsckOptions::repair().repair);
    /// ```
    pub fn repair() -> Self {
        FsckOptions { repair: true }
    }
}

/// A blob whose bytes do not hash to its name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Corrupt {
    /// The digest it is stored under.
    pub digest: Digest,
    /// The digest its bytes have.
    pub actual: Digest,
    /// Its size.
    pub size: u64,
}

/// Stored content whose size differs from the size a reference to it declares (the
/// reference is wrong: a pull through it fails verification).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub struct WrongSize {
    /// The content.
    pub digest: Digest,
    /// The size the reference declares.
    pub expected: u64,
    /// The size stored.
    pub actual: u64,
    /// Who declares it.
    pub referred_by: Parent,
}

/// What fsck found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsckReport {
    /// Blobs re-hashed.
    pub checked: usize,
    /// Bytes re-hashed.
    pub bytes: u64,
    /// Blobs whose bytes do not match their digest.
    pub corrupt: Vec<Corrupt>,
    /// Content referred to by a root or by a manifest reachable from a root, but not stored.
    pub missing: Vec<(Digest, Parent)>,
    /// Non-distributable (foreign) layers referred to but not stored, as expected (they live at
    /// their URLs; a copy leaves them out): reported apart from missing content, not a problem.
    pub foreign: Vec<(Digest, Parent)>,
    /// References (below the roots) that declare another size than the content has.
    pub wrong_size: Vec<WrongSize>,
    /// Stored content that nothing reachable from a root refers to (garbage collection would
    /// remove it once old enough). Not a problem by itself.
    pub dangling: Vec<Digest>,
    /// Corrupt blobs removed by `repair`.
    pub removed: Vec<Digest>,
    /// Entries where content belongs that are not regular files (links, FIFOs, devices): never
    /// read or removed, even with `repair`; content a root needs behind one is reported missing.
    pub skipped: Vec<Skipped>,
}

impl FsckReport {
    /// No corrupt, missing or wrongly sized content, and nothing skipped (dangling content is
    /// not a problem).
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty()
            && self.missing.is_empty()
            && self.wrong_size.is_empty()
            && self.skipped.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// The engine.

/// A blob in a snapshot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlobMeta {
    pub size: u64,
    pub modified: SystemTime,
}

/// A root of the graph.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    pub parent: Parent,
    pub digest: Digest,
    /// Declared media type, when the root came with a descriptor.
    pub media_type: Option<String>,
    /// Declared size, when the root came with a descriptor.
    pub size: Option<u64>,
}

/// What the parsed content of a blob says about the graph.
#[derive(Debug)]
pub(crate) enum Node {
    /// A manifest or index.
    Manifest {
        children: Vec<Descriptor>,
        subject: Option<Digest>,
    },
    /// Anything else.
    Opaque,
}

/// Reads small content for parsing.
pub(crate) trait Content {
    /// The whole content of `digest`, or `None` when it is not stored.
    fn read_small(&self, digest: &Digest, size_hint: u64) -> Result<Option<Bytes>>;
}

/// Parsed manifests by digest; content never changes, so entries never go stale.
#[derive(Debug, Default)]
pub(crate) struct NodeCache {
    map: Mutex<HashMap<Digest, Arc<Node>>>,
}

/// Largest manifest the graph parses.
pub(crate) const MANIFEST_LIMIT: u64 = oci_manifest::DEFAULT_MAX_MANIFEST_SIZE as u64;

static OPAQUE: std::sync::LazyLock<Arc<Node>> = std::sync::LazyLock::new(|| Arc::new(Node::Opaque));

impl NodeCache {
    fn get(&self, d: &Digest) -> Option<Arc<Node>> {
        self.map.lock().ok()?.get(d).cloned()
    }

    fn put(&self, d: &Digest, n: Arc<Node>) {
        if let Ok(mut m) = self.map.lock() {
            m.insert(d.clone(), n);
        }
    }

    /// The graph node of `digest`: from the declared media type when it says "not a manifest",
    /// else from the (verified) content. `None` when the content is not stored.
    ///
    /// Declared manifests that are too large, corrupt or unparsable are errors (the children
    /// they protect cannot be known); undeclared content that does not parse is opaque.
    pub(crate) fn node(
        &self,
        content: &dyn Content,
        digest: &Digest,
        size: u64,
        declared: Option<&str>,
    ) -> Result<Option<Arc<Node>>> {
        let declared = declared.filter(|mt| !mt.is_empty());
        if let Some(mt) = declared
            && !media_types::is_manifest(mt)
        {
            return Ok(Some(OPAQUE.clone()));
        }
        if let Some(n) = self.get(digest) {
            return Ok(Some(n));
        }
        if size > MANIFEST_LIMIT {
            if declared.is_some() {
                return Err(StoreError::ManifestTooLarge {
                    digest: digest.clone(),
                    size,
                    limit: MANIFEST_LIMIT,
                });
            }
            self.put(digest, OPAQUE.clone());
            return Ok(Some(OPAQUE.clone()));
        }
        let Some(raw) = content.read_small(digest, size)? else {
            return Ok(None);
        };
        let actual = digest.algorithm().hash(&raw);
        if &actual != digest {
            if declared.is_some() {
                return Err(StoreError::Verify(VerifyError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                    size: raw.len() as u64,
                }));
            }
            return Ok(Some(OPAQUE.clone()));
        }
        let looks_json = raw
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{');
        if !looks_json && declared.is_none() {
            self.put(digest, OPAQUE.clone());
            return Ok(Some(OPAQUE.clone()));
        }
        let node = match Manifest::parse(raw, declared) {
            Ok(m) => Arc::new(Node::Manifest {
                children: m.children().to_vec(),
                subject: m.subject().map(|s| s.digest.clone()),
            }),
            Err(source) if declared.is_some() => {
                return Err(StoreError::InvalidManifest {
                    digest: digest.clone(),
                    source,
                });
            }
            Err(_) => OPAQUE.clone(),
        };
        self.put(digest, node.clone());
        Ok(Some(node))
    }
}

/// Edges by target: for each digest, the (sorted) digests of the manifests pointing at it.
pub(crate) type Edges = HashMap<Digest, Vec<Digest>>;

/// A queued edge: digest, declared media type and size, who refers to it.
type Item = (Digest, Option<String>, Option<u64>, Option<Parent>);

/// Result of marking.
#[derive(Debug, Default)]
pub(crate) struct Marking {
    pub live: HashSet<Digest>,
    pub missing: Vec<(Digest, Parent)>,
    pub foreign: Vec<(Digest, Parent)>,
    pub wrong_size: Vec<WrongSize>,
    pub young: Vec<Digest>,
}

/// What a mark needs.
pub(crate) struct Graph<'a> {
    pub blobs: &'a HashMap<Digest, BlobMeta>,
    pub content: &'a dyn Content,
    pub cache: &'a NodeCache,
}

impl Graph<'_> {
    fn node(&self, d: &Digest, declared: Option<&str>) -> Result<Option<Arc<Node>>> {
        match self.blobs.get(d) {
            None => Ok(None),
            Some(meta) => self.cache.node(self.content, d, meta.size, declared),
        }
    }

    /// Marks everything reachable from `roots`; with `min_age`, unreferenced blobs younger than
    /// it are roots too; referrers of live subjects are live.
    pub(crate) fn mark(
        &self,
        roots: &[Root],
        min_age: Option<(Duration, SystemTime)>,
    ) -> Result<Marking> {
        let mut m = Marking::default();
        let mut expanded: HashSet<Digest> = HashSet::new();
        let mut queue: Vec<Item> = roots
            .iter()
            .map(|r| {
                // Ingests are roots for content that does not exist yet: never "missing".
                let p = (!matches!(r.parent, Parent::Ingest(_))).then(|| r.parent.clone());
                (r.digest.clone(), r.media_type.clone(), r.size, p)
            })
            .collect();
        self.drain(&mut queue, &mut m, &mut expanded)?;

        if let Some((min_age, now)) = min_age {
            for (d, meta) in self.blobs {
                if m.live.contains(d) {
                    continue;
                }
                let age = now.duration_since(meta.modified).unwrap_or(Duration::ZERO);
                if age < min_age {
                    m.young.push(d.clone());
                    queue.push((d.clone(), None, None, None));
                }
            }
            self.drain(&mut queue, &mut m, &mut expanded)?;
        }

        // Referrers: manifests whose subject is alive live too (to a fixpoint, as a referrer
        // can itself be a subject).
        loop {
            for d in self.blobs.keys() {
                if m.live.contains(d) {
                    continue;
                }
                if let Some(node) = self.node(d, None)?
                    && let Node::Manifest {
                        subject: Some(s), ..
                    } = &*node
                    && m.live.contains(s)
                {
                    queue.push((d.clone(), None, None, None));
                }
            }
            if queue.is_empty() {
                break;
            }
            self.drain(&mut queue, &mut m, &mut expanded)?;
        }
        m.young.sort();
        Ok(m)
    }

    fn drain(
        &self,
        queue: &mut Vec<Item>,
        m: &mut Marking,
        expanded: &mut HashSet<Digest>,
    ) -> Result<()> {
        while let Some((d, mt, size, parent)) = queue.pop() {
            let Some(meta) = self.blobs.get(&d) else {
                if let Some(p) = parent {
                    // A non-distributable (foreign) layer lives at its URLs: a store that lacks
                    // it is as it should be, not missing content.
                    if mt.as_deref().is_some_and(media_types::is_non_distributable) {
                        m.foreign.push((d, p));
                    } else {
                        m.missing.push((d, p));
                    }
                }
                continue;
            };
            if let (Some(expected), Some(p)) = (size, parent)
                && expected != meta.size
            {
                m.wrong_size.push(WrongSize {
                    digest: d.clone(),
                    expected,
                    actual: meta.size,
                    referred_by: p,
                });
            }
            m.live.insert(d.clone());
            let may_be_manifest = mt.as_deref().is_none_or(media_types::is_manifest);
            if !may_be_manifest || expanded.contains(&d) {
                continue;
            }
            expanded.insert(d.clone());
            if let Some(node) = self.node(&d, mt.as_deref())?
                && let Node::Manifest { children, .. } = &*node
            {
                for c in children {
                    queue.push((
                        c.digest.clone(),
                        Some(c.media_type.clone()),
                        Some(c.size),
                        Some(Parent::Manifest(d.clone())),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The body of a collection, shared by the stores: marks from `roots` and lists what goes
    /// and why. Leases and ingests are the caller's to fill in.
    pub(crate) fn plan(
        &self,
        roots: &[Root],
        options: &GcOptions,
        now: SystemTime,
    ) -> Result<GcReport> {
        let marking = self.mark(roots, Some((options.min_age, now)))?;
        let removed = self.sweep_list(&marking)?;
        Ok(GcReport {
            dry_run: options.dry_run,
            blobs: self.blobs.len(),
            live: marking.live.len(),
            bytes_freed: removed
                .iter()
                .fold(0u64, |sum, r| sum.saturating_add(r.size)),
            removed,
            young: marking.young,
            missing: marking.missing,
            foreign: sorted(marking.foreign),
            ..GcReport::default()
        })
    }

    /// The graph part of fsck: missing content below the roots, and dangling content.
    pub(crate) fn check(&self, roots: &[Root], report: &mut FsckReport) -> Result<()> {
        let marking = self.mark(roots, None)?;
        report.missing = sorted(marking.missing);
        report.foreign = sorted(marking.foreign);
        let mut wrong = marking.wrong_size;
        wrong.sort();
        wrong.dedup();
        report.wrong_size = wrong;
        let mut dangling: Vec<Digest> = self
            .blobs
            .keys()
            .filter(|d| !marking.live.contains(*d))
            .cloned()
            .collect();
        dangling.sort();
        report.dangling = dangling;
        Ok(())
    }

    /// Why each blob that is not live goes.
    pub(crate) fn sweep_list(&self, marking: &Marking) -> Result<Vec<Removal>> {
        let mut out = Vec::new();
        for (d, meta) in self.blobs {
            if marking.live.contains(d) {
                continue;
            }
            let reason = match self.node(d, None)?.as_deref() {
                Some(Node::Manifest {
                    subject: Some(s), ..
                }) => SweepReason::SubjectGone { subject: s.clone() },
                _ => SweepReason::Unreferenced,
            };
            out.push(Removal {
                digest: d.clone(),
                size: meta.size,
                reason,
            });
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Every stored manifest that lists `target` among its children.
    pub(crate) fn manifest_parents(&self, target: &Digest) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for d in self.blobs.keys() {
            if let Some(node) = self.node(d, None)?
                && let Node::Manifest { children, .. } = &*node
                && children.iter().any(|c| &c.digest == target)
            {
                out.push(d.clone());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Reverse edges of every stored manifest: child -> manifests listing it.
    /// The parents of every stored blob (manifests that refer to it), and the referrers of every
    /// subject (manifests whose `subject` it is), each sorted: one parse of every blob.
    pub(crate) fn edges(&self) -> Result<(Edges, Edges)> {
        let mut rev: HashMap<Digest, Vec<Digest>> = HashMap::new();
        let mut referrers: HashMap<Digest, Vec<Digest>> = HashMap::new();
        for d in self.blobs.keys() {
            if let Some(node) = self.node(d, None)?
                && let Node::Manifest { children, subject } = &*node
            {
                if let Some(s) = subject {
                    referrers.entry(s.clone()).or_default().push(d.clone());
                }
                let mut seen = HashSet::new();
                for c in children {
                    if seen.insert(&c.digest) {
                        rev.entry(c.digest.clone()).or_default().push(d.clone());
                    }
                }
            }
        }
        for v in rev.values_mut().chain(referrers.values_mut()) {
            v.sort();
        }
        Ok((rev, referrers))
    }
}

/// `v` sorted, without duplicates.
fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

/// Collects the parents of `target` from roots and manifest parents, sorted.
pub(crate) fn parents_from(target: &Digest, roots: &[Root], manifests: Vec<Digest>) -> Vec<Parent> {
    let mut out: Vec<Parent> = roots
        .iter()
        .filter(|r| &r.digest == target)
        .map(|r| r.parent.clone())
        .collect();
    out.extend(manifests.into_iter().map(Parent::Manifest));
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_manifest::build::{ImageManifestBuilder, IndexBuilder};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Mem {
        data: HashMap<Digest, Bytes>,
        reads: AtomicUsize,
    }

    impl Content for Mem {
        fn read_small(&self, d: &Digest, _: u64) -> Result<Option<Bytes>> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            Ok(self.data.get(d).cloned())
        }
    }

    impl Mem {
        fn put(&mut self, mt: &str, data: impl Into<Bytes>) -> Descriptor {
            let data = data.into();
            let d = Descriptor::new(
                mt,
                oci_digest::Algorithm::Sha256.hash(&data),
                data.len() as u64,
            );
            self.data.insert(d.digest.clone(), data);
            d
        }
        fn metas(&self, age: Duration) -> HashMap<Digest, BlobMeta> {
            let t = SystemTime::now() - age;
            self.data
                .iter()
                .map(|(d, b)| {
                    (
                        d.clone(),
                        BlobMeta {
                            size: b.len() as u64,
                            modified: t,
                        },
                    )
                })
                .collect()
        }
    }

    fn root(d: &Descriptor, tag: &str) -> Root {
        Root {
            parent: Parent::Tag(tag.into()),
            digest: d.digest.clone(),
            media_type: Some(d.media_type.clone()),
            size: Some(d.size),
        }
    }

    #[test]
    fn declared_layers_are_never_read_and_sniffing_is_cached() {
        let mut m = Mem::default();
        let layer = m.put(media_types::OCI_LAYER_GZIP, &b"{\"looks\":\"json\"}"[..]);
        let cache = NodeCache::default();
        let n = cache
            .node(&m, &layer.digest, layer.size, Some(&layer.media_type))
            .unwrap()
            .unwrap();
        assert!(matches!(*n, Node::Opaque));
        assert_eq!(m.reads.load(Ordering::Relaxed), 0);
        // Undeclared: read once, then cached.
        for _ in 0..3 {
            let n = cache
                .node(&m, &layer.digest, layer.size, None)
                .unwrap()
                .unwrap();
            assert!(matches!(*n, Node::Opaque));
        }
        assert_eq!(m.reads.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn corrupt_or_unparsable_declared_manifests_are_errors() {
        let mut m = Mem::default();
        let cache = NodeCache::default();
        let bogus = m.put(media_types::OCI_MANIFEST, &b"{\"schemaVersion\":3}"[..]);
        assert!(matches!(
            cache.node(
                &m,
                &bogus.digest,
                bogus.size,
                Some(media_types::OCI_MANIFEST)
            ),
            Err(StoreError::InvalidManifest { .. })
        ));
        // Stored under a name its bytes do not hash to.
        let other = oci_digest::Algorithm::Sha256.hash(b"x");
        m.data.insert(other.clone(), Bytes::from_static(b"{}"));
        assert!(matches!(
            cache.node(&m, &other, 2, Some(media_types::OCI_INDEX)),
            Err(StoreError::Verify(VerifyError::DigestMismatch { .. }))
        ));
        assert!(matches!(
            cache.node(&m, &other, MANIFEST_LIMIT + 1, Some(media_types::OCI_INDEX)),
            Err(StoreError::ManifestTooLarge { .. })
        ));
        // Undeclared, the same content is just opaque.
        assert!(matches!(
            *cache.node(&m, &other, 2, None).unwrap().unwrap(),
            Node::Opaque
        ));
    }

    #[test]
    fn mark_follows_children_young_blobs_and_referrers() {
        let mut m = Mem::default();
        let config = m.put(media_types::OCI_CONFIG, &b"{}"[..]);
        let layer = m.put(media_types::OCI_LAYER_GZIP, &b"layer"[..]);
        let missing = Descriptor::new(
            media_types::OCI_LAYER_GZIP,
            oci_digest::Algorithm::Sha256.hash(b"gone"),
            4,
        );
        let man = ImageManifestBuilder::oci(config.clone())
            .layers([layer.clone(), missing.clone()])
            .build()
            .unwrap();
        let man_d = m.put(media_types::OCI_MANIFEST, man.raw().clone());
        let idx = IndexBuilder::oci().manifest(man_d.clone()).build().unwrap();
        let idx_d = m.put(media_types::OCI_INDEX, idx.raw().clone());
        let sig = m.put("application/x-sig", &b"sig"[..]);
        let referrer = ImageManifestBuilder::artifact("application/x-sig")
            .layer(sig.clone())
            .subject(man_d.clone())
            .build()
            .unwrap();
        let referrer_d = m.put(media_types::OCI_MANIFEST, referrer.raw().clone());
        let junk = m.put("application/octet-stream", &b"junk"[..]);

        let old = m.metas(Duration::from_secs(3600));
        let cache = NodeCache::default();
        let g = Graph {
            blobs: &old,
            content: &m,
            cache: &cache,
        };
        let marking = g
            .mark(
                &[root(&idx_d, "t")],
                Some((Duration::from_secs(60), SystemTime::now())),
            )
            .unwrap();
        for d in [&config, &layer, &man_d, &idx_d, &sig, &referrer_d] {
            assert!(marking.live.contains(&d.digest), "{} live", d.media_type);
        }
        assert!(!marking.live.contains(&junk.digest));
        assert_eq!(
            marking.missing,
            vec![(
                missing.digest.clone(),
                Parent::Manifest(man_d.digest.clone())
            )]
        );
        assert_eq!(
            g.sweep_list(&marking)
                .unwrap()
                .iter()
                .map(|r| &r.digest)
                .collect::<Vec<_>>(),
            vec![&junk.digest]
        );
        assert_eq!(g.manifest_parents(&man_d.digest).unwrap(), {
            let mut v = vec![idx_d.digest.clone(), referrer_d.digest.clone()];
            v.sort();
            v
        });
        let rev = g.edges().unwrap().0;
        assert_eq!(rev[&layer.digest], vec![man_d.digest.clone()]);

        // Without roots, only young content (and what it reaches) stays.
        let young = m.metas(Duration::ZERO);
        let g = Graph {
            blobs: &young,
            content: &m,
            cache: &cache,
        };
        let marking = g
            .mark(&[], Some((Duration::from_secs(60), SystemTime::now())))
            .unwrap();
        assert_eq!(marking.live.len(), young.len());
        let marking = g.mark(&[], None).unwrap();
        assert!(marking.live.is_empty());
    }
}
