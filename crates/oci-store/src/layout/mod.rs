//! `LayoutStore`: an OCI image layout on disk, plus this crate's own state beside it.

mod fsutil;
mod index;
mod writer;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use oci_digest::{Algorithm, Digest, Digester, VerifyingStream};
use oci_manifest::{Descriptor, Manifest};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::{Result, StoreError};
use crate::gc::{
    BlobMeta, Content, Corrupt, FsckOptions, FsckReport, GcOptions, GcReport, Graph,
    MANIFEST_LIMIT, NodeCache, Parent, Root, Skipped, parents_from,
};
use crate::lease::{Lease, LeaseInfo, from_millis, new_id, to_millis, valid_id};
use crate::traits::{
    BlobStream, BlobWriter, IngestStatus, ManagedStore, PushOutcome, ReadStore, Store, TagStore,
    WriteStore,
};
use crate::util::{check_size, clamp, not_found, validate_ingest_key, validate_tag};

use self::fsutil::{
    LockGuard, atomic_write, blocking, check_dirs, describe, ioe, list_dir, lock_held, lock_store,
    mkdirs, open_options, open_regular, read_limited, remove_dir_if_exists, remove_if_exists,
    sync_dir, try_lock, unsafe_entry,
};
use self::index::{IndexFile, MAX_INDEX_SIZE, check_marker};
use self::writer::LayoutWriter;

/// Name of the directory, beside `index.json`, holding this crate's own state (ingests, leases,
/// lock files, temporary files). Other tools ignore it.
pub const STATE_DIR: &str = ".oci-rs";

/// How long after the last change of a blob directory a listing of it is trusted while the
/// directory's modification time stays the same (2 s covers the coarsest common time stamps).
const LISTING_SETTLE: Duration = Duration::from_secs(2);

/// Read size for streaming blobs.
const READ_CHUNK: usize = 1 << 20;

/// Largest small record read (`oci-layout`, lease and ingest records, saved hash states).
const RECORD_LIMIT: u64 = 1 << 20;

/// Largest list of a lease's pins read (one digest a line: about a million pins).
const PINS_LIMIT: u64 = 128 << 20;

/// The directories of the store's own tree, below its root: each must be a real directory (not
/// a link) wherever it exists, so nothing the store writes or removes lands outside the tree.
fn own_dirs() -> Vec<Vec<&'static str>> {
    let mut dirs = vec![vec!["blobs"]];
    dirs.extend(Algorithm::ALL.iter().map(|a| vec!["blobs", a.as_str()]));
    dirs.push(vec![STATE_DIR]);
    dirs.extend(["tmp", "ingests", "leases"].map(|d| vec![STATE_DIR, d]));
    dirs
}

/// Refuses a layout whose own directories are links or not directories.
fn check_own_dirs(root: &Path) -> Result<()> {
    for rel in own_dirs() {
        check_dirs(root, &rel)?;
    }
    Ok(())
}

/// How [`LayoutStore::open_with`] opens a directory.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LayoutOptions {
    /// Create the layout (directory, `oci-layout`, empty `index.json`) when it does not exist.
    pub create: bool,
    /// Write blob data through the page cache only. By default (`false`), on Linux, the
    /// block-aligned bulk of each blob is written with `O_DIRECT` where the file system accepts
    /// it (file systems that refuse it, such as tmpfs before Linux 6.6, get the page cache): the fsync before a blob becomes visible then
    /// has little left to write back, and a large pull does not spend its CPU on page-cache
    /// bookkeeping. Set this when the blobs are read again right after they are written and
    /// should be served from memory.
    ///
    /// ```
    /// let mut options = oci_store::LayoutOptions::create();
    /// options.buffered_writes = true;
    /// assert!(options.create && options.buffered_writes);
    /// ```
    pub buffered_writes: bool,
    /// Open for reading only: nothing in the directory is created or changed (not even this
    /// crate's own [`STATE_DIR`]), so a layout on read-only media, or one another tool owns, can
    /// be read, inspected and checked with [`fsck`](crate::ManagedStore::fsck) (without repair).
    /// Every operation that would change it fails with [`StoreError::ReadOnly`]. Reads take no
    /// locks: a collection running in another process at the same time can make a read fail
    /// with [`StoreError::NotFound`], never return wrong bytes (reads are verified).
    ///
    /// ```
    /// use oci_store::{LayoutOptions, LayoutStore, TagStore};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("oci-store-doc-ro-{}", std::process::id()));
    /// # LayoutStore::open_with(&dir, &LayoutOptions::create()).await?;
    /// let store = LayoutStore::open_with(&dir, &LayoutOptions::read_only()).await?;
    /// assert!(store.tags().await?.is_empty());
    /// let desc = oci_manifest::Descriptor::new("text/plain", oci_digest::Algorithm::Sha256.hash(b"x"), 1);
    /// assert!(matches!(store.tag(&desc, "v1").await, Err(oci_store::StoreError::ReadOnly { .. })));
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub read_only: bool,
}

impl LayoutOptions {
    /// Options that create the layout when missing.
    ///
    /// ```
    /// assert!(oci_store::LayoutOptions::create().create);
    /// ```
    pub fn create() -> Self {
        LayoutOptions {
            create: true,
            ..LayoutOptions::default()
        }
    }

    /// Options that open an existing layout for reading only (see
    /// [`LayoutOptions::read_only`](LayoutOptions#structfield.read_only)).
    ///
    /// ```
    /// let options = oci_store::LayoutOptions::read_only();
    /// assert!(options.read_only && !options.create);
    /// ```
    pub fn read_only() -> Self {
        LayoutOptions {
            read_only: true,
            ..LayoutOptions::default()
        }
    }
}

/// An OCI image layout on disk: `oci-layout`, `index.json` (tags are
/// `org.opencontainers.image.ref.name` annotations, rewritten atomically) and
/// `blobs/<alg>/<encoded>`, readable and writable by skopeo, umoci and oras; plus, in
/// [`STATE_DIR`], in-flight ingests (resumable by key), leases and lock files.
///
/// Invariants kept here:
/// - **Verified or invisible**: bytes go to an ingest file, are fsynced and verified, then renamed
///   into `blobs/` and the directory is fsynced. A crash leaves either no blob or the whole one.
/// - **Storage is the only truth** for existence: `stat` asks the file system every time.
/// - **Safe beside other processes**: commits, pins and lease changes take a shared advisory lock,
///   garbage collection and `index.json` rewrites an exclusive one (`std::fs::File::lock`), so a
///   collection sees every write either complete and pinned or not started.
///
/// On disk, beside the layout proper:
///
/// ```text
/// .oci-rs/store.lock, turnstile.lock    advisory locks (fair shared/exclusive)
/// .oci-rs/ingests/<sha256 of key>/      lock (held by the writer), meta.json (key, expected
///                                       descriptor), data, state (saved hash state)
/// .oci-rs/leases/<id>.json, <id>.pins   expiry; pinned digests, one a line (append-only)
/// .oci-rs/tmp/                          temporary files of atomic rewrites
/// ```
///
/// Content written by tools that know nothing of leases (skopeo, umoci) is protected from
/// collection by [`GcOptions::min_age`](crate::GcOptions) only; a collection never removes
/// files in `blobs/` whose names are not valid digests.
///
/// Cloning is cheap; clones share the parsed-manifest cache.
///
/// ```
/// use bytes::Bytes;
/// use oci_manifest::Descriptor;
/// use oci_store::{LayoutOptions, LayoutStore, ReadStore, TagStore, WriteStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("oci-store-doc-{}", std::process::id()));
/// let store = LayoutStore::open_with(&dir, &LayoutOptions::create()).await?;
/// let data = Bytes::from_static(b"hello");
/// let desc = Descriptor::new("text/plain", oci_digest::Algorithm::Sha256.hash(&data), 5);
/// store.push_bytes(&desc, data).await?;
/// assert!(dir.join("blobs/sha256").join(desc.digest.encoded()).is_file());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), oci_store::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct LayoutStore {
    inner: Arc<Inner>,
    lease: Option<Lease>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    state: PathBuf,
    cache: NodeCache,
    listing: Mutex<Option<Arc<Listing>>>,
    /// Bulk blob data is written with `O_DIRECT` where possible.
    direct_io: bool,
    /// Opened with [`LayoutOptions::read_only`].
    read_only: bool,
}

/// A listing of `blobs/`, reusable while the blob directories do not change.
#[derive(Debug)]
struct Listing {
    stamps: Vec<Option<SystemTime>>,
    taken: SystemTime,
    blobs: HashMap<Digest, BlobMeta>,
    reverse: HashMap<Digest, Vec<Digest>>,
    /// Referrers by subject: stored manifests whose `subject` is the key.
    referrers: HashMap<Digest, Vec<Digest>>,
}

/// An ingest directory and its record (`None` when it has none that can be read).
type Ingest = (PathBuf, Option<IngestStatus>);

/// What a walk of the roots found.
#[derive(Debug, Default)]
struct RootsFound {
    roots: Vec<Root>,
    /// Expired lease ids (not roots with `gc`).
    expired: Vec<String>,
    /// Stale ingests, directory and key (not roots with `gc`).
    stale: Vec<(PathBuf, String)>,
    /// Entries of `ingests/` that are not directories.
    skipped: Vec<Skipped>,
}

/// Record of an ingest, `meta.json` in its directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IngestMeta {
    key: String,
    expected: Descriptor,
    started_ms: u64,
}

/// Record of a lease, `<id>.json` in `leases/` (pins are in `<id>.pins`, one digest a line).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseMeta {
    expires_ms: u64,
}

impl LayoutStore {
    /// Opens an existing layout (written by this crate or by another tool).
    ///
    /// # Errors
    /// [`StoreError::NotALayout`] when `oci-layout` is missing; [`StoreError::CorruptLayout`]
    /// when it or `index.json` is invalid.
    pub async fn open(path: impl AsRef<Path>) -> Result<LayoutStore> {
        Self::open_with(path, &LayoutOptions::default()).await
    }

    /// Opens a layout, creating it with [`LayoutOptions::create`].
    pub async fn open_with(path: impl AsRef<Path>, options: &LayoutOptions) -> Result<LayoutStore> {
        let root = path.as_ref().to_owned();
        let (create, read_only) = (options.create, options.read_only);
        if create && read_only {
            return Err(StoreError::ReadOnly {
                path: root,
                operation: "create",
            });
        }
        let r = root.clone();
        blocking(move || Self::open_blocking(&r, create, read_only)).await?;
        let state = root.join(STATE_DIR);
        Ok(LayoutStore {
            inner: Arc::new(Inner {
                root,
                state,
                cache: NodeCache::default(),
                listing: Mutex::new(None),
                direct_io: !options.buffered_writes,
                read_only,
            }),
            lease: None,
        })
    }

    fn open_blocking(root: &Path, create: bool, read_only: bool) -> Result<()> {
        let marker = root.join("oci-layout");
        let index = root.join("index.json");
        let state = root.join(STATE_DIR);
        match fs::metadata(root) {
            Ok(m) if !m.is_dir() => return Err(unsafe_entry(root, m.file_type(), "a directory")),
            _ => {}
        }
        check_own_dirs(root)?;
        match read_limited(&marker, RECORD_LIMIT)? {
            Some(raw) => check_marker(&marker, &raw)?,
            None if create => {
                mkdirs(&root.join("blobs").join("sha256"))?;
                mkdirs(&state.join("tmp"))?;
                if fs::symlink_metadata(&index).is_err() {
                    atomic_write(
                        &state.join("tmp"),
                        &index,
                        &IndexFile::default().to_bytes()?,
                    )?;
                }
                atomic_write(
                    &state.join("tmp"),
                    &marker,
                    br#"{"imageLayoutVersion":"1.0.0"}"#,
                )?;
            }
            None => {
                return Err(StoreError::NotALayout {
                    path: root.to_owned(),
                    reason: "no oci-layout file",
                });
            }
        }
        match read_limited(&index, MAX_INDEX_SIZE)? {
            Some(raw) => {
                IndexFile::parse(&index, &raw)?;
            }
            None => {
                return Err(StoreError::NotALayout {
                    path: root.to_owned(),
                    reason: "no index.json",
                });
            }
        }
        if !read_only {
            for d in ["tmp", "ingests", "leases"] {
                mkdirs(&state.join(d))?;
            }
        }
        Ok(())
    }

    /// `Err(ReadOnly)` when the layout was opened read-only and `operation` would change it.
    fn writable(&self, operation: &'static str) -> Result<()> {
        if self.inner.read_only {
            return Err(StoreError::ReadOnly {
                path: self.inner.root.clone(),
                operation,
            });
        }
        Ok(())
    }

    /// Whether blob writers try `O_DIRECT` ([`LayoutOptions::buffered_writes`] not set).
    pub(crate) fn direct_io(&self) -> bool {
        self.inner.direct_io
    }

    /// The layout's directory.
    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    /// Where the blob `digest` lives: `blobs/<alg>/<encoded>` (digests are validated, so this
    /// never leaves the layout).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.inner.root, digest)
    }

    /// Opens the blob `desc` names, checking its stored size against the descriptor.
    async fn open_blob(&self, desc: &Descriptor) -> Result<(tokio::fs::File, u64)> {
        let (file, len) = self.open_blob_file(&desc.digest).await?;
        check_size(desc, len)?;
        Ok((file, len))
    }

    /// Opens the blob file of `digest` for reading (a regular file only: a link or a FIFO in its
    /// place is refused, never followed or waited on) with its length.
    async fn open_blob_file(&self, digest: &Digest) -> Result<(tokio::fs::File, u64)> {
        let path = self.blob_path(digest);
        let d = digest.clone();
        blocking(move || {
            let mut opts = open_options();
            opts.read(true);
            let file = open_regular(&path, &opts, "open")?.ok_or_else(|| not_found(&d))?;
            let len = file.metadata().map_err(ioe("stat", &path))?.len();
            Ok((tokio::fs::File::from_std(file), len))
        })
        .await
    }

    /// The directory of temporary files, checked to be a real directory of the tree (the tree
    /// may have changed since the store was opened).
    fn tmp_dir(&self) -> Result<PathBuf> {
        check_dirs(&self.inner.root, &[STATE_DIR, "tmp"])?;
        Ok(self.inner.state.join("tmp"))
    }

    fn ingest_dir(&self, key: &str) -> PathBuf {
        self.inner
            .state
            .join("ingests")
            .join(Algorithm::Sha256.hash(key.as_bytes()).encoded())
    }

    /// A lease's record and pins, below the checked `leases/` directory.
    fn lease_paths(&self, id: &str) -> Result<(PathBuf, PathBuf)> {
        check_dirs(&self.inner.root, &[STATE_DIR, "leases"])?;
        let dir = self.inner.state.join("leases");
        Ok((
            dir.join(format!("{id}.json")),
            dir.join(format!("{id}.pins")),
        ))
    }

    /// The store-wide lock; none when read-only (its lock files would be changes, and nothing
    /// that needs a lock for a change can run).
    fn lock(&self, exclusive: bool) -> Result<Option<LockGuard>> {
        if self.inner.read_only {
            return Ok(None);
        }
        // The lock files are created in the state directory: never through a link.
        check_dirs(&self.inner.root, &[STATE_DIR])?;
        lock_store(&self.inner.state, exclusive).map(Some)
    }

    fn read_index(&self) -> Result<IndexFile> {
        let path = self.inner.root.join("index.json");
        match read_limited(&path, MAX_INDEX_SIZE)? {
            Some(raw) => IndexFile::parse(&path, &raw),
            None => Err(StoreError::NotALayout {
                path: self.inner.root.clone(),
                reason: "no index.json",
            }),
        }
    }

    fn write_index(&self, idx: &IndexFile) -> Result<()> {
        atomic_write(
            &self.tmp_dir()?,
            &self.inner.root.join("index.json"),
            &idx.to_bytes()?,
        )
    }

    // --- leases -------------------------------------------------------------------------------

    /// Fails unless `lease` exists and has not expired. Caller holds the store lock.
    fn check_lease(&self, lease: &Lease) -> Result<()> {
        let (json, _) = self.lease_paths(lease.id())?;
        let Some(raw) = read_limited(&json, RECORD_LIMIT)? else {
            return Err(StoreError::LeaseNotFound {
                id: lease.id().to_owned(),
            });
        };
        let meta: LeaseMeta =
            serde_json::from_slice(&raw).map_err(|e| StoreError::CorruptLayout {
                path: json.clone(),
                reason: "invalid lease record".into(),
                source: Some(e),
            })?;
        if SystemTime::now() >= from_millis(meta.expires_ms) {
            return Err(StoreError::LeaseExpired {
                id: lease.id().to_owned(),
            });
        }
        Ok(())
    }

    /// Appends `digest` to the pins of the view's lease, if any. Caller holds the store lock and
    /// checked the lease.
    fn pin(&self, digest: &Digest) -> Result<()> {
        let Some(lease) = &self.lease else {
            return Ok(());
        };
        let (_, pins) = self.lease_paths(lease.id())?;
        let mut opts = open_options();
        opts.append(true).create(true);
        let mut f = open_regular(&pins, &opts, "open")?
            .ok_or_else(|| StoreError::io("open", &pins, io::ErrorKind::NotFound.into()))?;
        f.write_all(format!("{digest}\n").as_bytes())
            .map_err(ioe("write", &pins))?;
        f.sync_data().map_err(ioe("fsync", &pins))
    }

    fn read_leases(&self) -> Result<Vec<(LeaseInfo, bool)>> {
        let dir = self.inner.state.join("leases");
        let now = SystemTime::now();
        let mut out = Vec::new();
        for (name, path, _) in list_dir(&dir)? {
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            if !valid_id(id) {
                continue;
            }
            // A link or special file here is refused (an error, not skipped: skipping a lease
            // would let a collection remove what it protects).
            let Some(raw) = read_limited(&path, RECORD_LIMIT)? else {
                continue; // released meanwhile
            };
            // An unreadable record keeps its pins alive (never lose content on doubt).
            let expires = serde_json::from_slice::<LeaseMeta>(&raw)
                .map(|m| from_millis(m.expires_ms))
                .unwrap_or(SystemTime::now() + Duration::from_secs(3600));
            let (_, pins_path) = self.lease_paths(id)?;
            let pins = read_limited(&pins_path, PINS_LIMIT)?
                .map(|raw| {
                    String::from_utf8_lossy(&raw)
                        .lines()
                        .filter_map(|l| Digest::parse(l.trim()).ok())
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                LeaseInfo {
                    lease: Lease::new(id.to_owned(), expires),
                    pins,
                },
                now >= expires,
            ));
        }
        out.sort_by(|a, b| a.0.lease.id().cmp(b.0.lease.id()));
        Ok(out)
    }

    fn remove_lease_files(&self, id: &str) -> Result<bool> {
        let (json, pins) = self.lease_paths(id)?;
        let existed = remove_if_exists(&json)?;
        remove_if_exists(&pins)?;
        Ok(existed)
    }

    // --- ingests ------------------------------------------------------------------------------

    fn read_ingest(dir: &Path) -> Result<Option<IngestStatus>> {
        let meta_path = dir.join("meta.json");
        let Some(raw) = read_limited(&meta_path, RECORD_LIMIT)? else {
            return Ok(None);
        };
        let Ok(meta) = serde_json::from_slice::<IngestMeta>(&raw) else {
            return Ok(None);
        };
        let data = dir.join("data");
        let (offset, updated) = match fs::symlink_metadata(&data) {
            Ok(m) if !m.is_file() => {
                return Err(unsafe_entry(&data, m.file_type(), "a regular file"));
            }
            Ok(m) => (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (0, from_millis(meta.started_ms)),
            Err(e) => return Err(StoreError::io("stat", &data, e)),
        };
        Ok(Some(IngestStatus {
            key: meta.key,
            expected: meta.expected,
            offset,
            started_at: from_millis(meta.started_ms),
            updated_at: updated,
        }))
    }

    /// The ingest directories with their records, and the entries of `ingests/` that are not
    /// directories (skipped).
    fn list_ingests(&self) -> Result<(Vec<Ingest>, Vec<Skipped>)> {
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        for (_, path, ft) in list_dir(&self.inner.state.join("ingests"))? {
            if !ft.is_dir() {
                tracing::warn!(path = %path.display(), found = describe(ft), "skipped: not an ingest directory");
                skipped.push(Skipped::new(path, describe(ft)));
                continue;
            }
            let st = Self::read_ingest(&path)?;
            out.push((path, st));
        }
        Ok((out, skipped))
    }

    /// Removes an ingest directory under the shared store lock (a collection inspects ingest
    /// directories under the exclusive lock, so they never change under it).
    pub(crate) fn remove_ingest(&self, dir: &Path) -> Result<()> {
        let _g = self.lock(false)?;
        check_dirs(&self.inner.root, &[STATE_DIR, "ingests", &dir_name(dir)])?;
        remove_dir_if_exists(dir)
    }

    /// Makes the verified, fsynced file `data` visible as `digest` (or reports it was there),
    /// pinned by the view's lease, and removes the ingest directory, all under the shared store
    /// lock. On error the ingest is removed too.
    pub(crate) fn commit_file(
        &self,
        data: &Path,
        digest: &Digest,
        ingest: &Path,
    ) -> Result<PushOutcome> {
        let _g = self.lock(false)?;
        let res = self.commit_locked(data, digest);
        remove_dir_if_exists(ingest)?;
        res
    }

    fn commit_locked(&self, data: &Path, digest: &Digest) -> Result<PushOutcome> {
        if let Some(lease) = &self.lease {
            self.check_lease(lease)?;
        }
        let target = self.blob_path(digest);
        let dir = target.parent().unwrap_or(&self.inner.root).to_owned();
        check_dirs(&self.inner.root, &["blobs", digest.algorithm().as_str()])?;
        mkdirs(&dir)?;
        let now = SystemTime::now();
        let mut opts = open_options();
        opts.write(true);
        // A link or special file in the blob's place is not the blob: the rename below replaces
        // the entry itself (never what a link points to).
        let outcome = if fs::symlink_metadata(&target).is_ok_and(|m| m.is_file()) {
            // Refresh its age so a collection's minimum age protects it from now on.
            if let Ok(Some(f)) = open_regular(&target, &opts, "open") {
                let _ = f.set_modified(now);
            }
            remove_if_exists(data)?;
            PushOutcome::AlreadyExists
        } else {
            if let Ok(Some(f)) = open_regular(data, &opts, "open") {
                let _ = f.set_modified(now);
            }
            fs::rename(data, &target).map_err(ioe("rename into place", &target))?;
            sync_dir(&dir)?;
            PushOutcome::Written
        };
        self.pin(digest)?;
        tracing::debug!(%digest, %outcome, lease = self.lease.as_ref().map(Lease::id), "committed");
        Ok(outcome)
    }

    // --- graph --------------------------------------------------------------------------------

    fn blob_dirs(&self) -> Vec<(Algorithm, PathBuf)> {
        Algorithm::ALL
            .iter()
            .map(|a| (*a, self.inner.root.join("blobs").join(a.as_str())))
            .collect()
    }

    fn dir_stamps(&self) -> Vec<Option<SystemTime>> {
        self.blob_dirs()
            .iter()
            .map(|(_, d)| fs::metadata(d).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// Every blob file whose name is a valid digest, with size and age, and the entries with
    /// such names that are not regular files (skipped: never read, never removed). Other names
    /// (temporary files of other tools) are ignored and never removed.
    fn list_blobs(&self) -> Result<(HashMap<Digest, BlobMeta>, Vec<Skipped>)> {
        let mut out = HashMap::new();
        let mut skipped = Vec::new();
        check_dirs(&self.inner.root, &["blobs"])?;
        for (alg, dir) in self.blob_dirs() {
            if !check_dirs(&self.inner.root, &["blobs", alg.as_str()])? {
                continue;
            }
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("list directory", &dir, e)),
            };
            for entry in rd {
                let entry = entry.map_err(ioe("list directory", &dir))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.len() != alg.hex_len() {
                    continue;
                }
                let Ok(digest) = Digest::parse(&format!("{alg}:{name}")) else {
                    continue;
                };
                // `DirEntry::metadata` does not follow links.
                let meta = match entry.metadata() {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StoreError::io("stat", entry.path(), e)),
                };
                if !meta.is_file() {
                    let found = describe(meta.file_type());
                    tracing::warn!(path = %entry.path().display(), found, "skipped: not a regular file");
                    skipped.push(Skipped::new(entry.path(), found));
                    continue;
                }
                out.insert(
                    digest,
                    BlobMeta {
                        size: meta.len(),
                        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    },
                );
            }
        }
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((out, skipped))
    }

    /// Roots: index entries, live leases, ingests. With `gc`, also decides which leases expired
    /// and which ingests are stale (no writer holds them and they are older than the limit);
    /// those are not roots.
    fn roots(&self, gc: Option<&GcOptions>) -> Result<RootsFound> {
        let now = SystemTime::now();
        let mut roots = self.read_index()?.roots();
        let mut expired = Vec::new();
        let (ingests, skipped) = self.list_ingests()?;
        for (info, is_expired) in self.read_leases()? {
            if is_expired {
                expired.push(info.lease.id().to_owned());
                continue;
            }
            roots.extend(info.pins.into_iter().map(|d| Root {
                parent: Parent::Lease(info.lease.id().to_owned()),
                digest: d,
                media_type: None,
                size: None,
            }));
        }
        let mut stale = Vec::new();
        for (dir, status) in ingests {
            if let Some(opts) = gc {
                // A writer holds the ingest's lock while it is open.
                let active = lock_held(&dir.join("lock"))?;
                let updated = status.as_ref().map(|s| s.updated_at).unwrap_or_else(|| {
                    fs::metadata(&dir)
                        .and_then(|m| m.modified())
                        .unwrap_or(SystemTime::UNIX_EPOCH)
                });
                let age = now.duration_since(updated).unwrap_or(Duration::ZERO);
                if !active && age >= opts.stale_ingest_age {
                    let key = status.map(|s| s.key).unwrap_or_default();
                    stale.push((dir, key));
                    continue;
                }
            }
            if let Some(s) = status {
                roots.push(Root {
                    parent: Parent::Ingest(s.key),
                    digest: s.expected.digest,
                    media_type: Some(s.expected.media_type),
                    size: None,
                });
            }
        }
        if let Some(opts) = gc {
            roots.extend(opts.keep.iter().map(|d| Root {
                parent: Parent::Kept,
                digest: d.clone(),
                media_type: None,
                size: None,
            }));
        }
        Ok(RootsFound {
            roots,
            expired,
            stale,
            skipped,
        })
    }

    /// The blob listing for reference queries, reused while the blob directories are unchanged
    /// (their modification times are compared; a listing taken less than [`LISTING_SETTLE`]
    /// after the last change is not trusted, since a later change could carry the same time
    /// stamp on a file system with coarse time stamps).
    fn listing(&self) -> Result<Arc<Listing>> {
        let now = SystemTime::now();
        let stamps = self.dir_stamps();
        if let Ok(guard) = self.inner.listing.lock()
            && let Some(l) = guard.as_ref()
        {
            let settled = l
                .stamps
                .iter()
                .all(|s| s.is_none_or(|t| t + LISTING_SETTLE <= l.taken));
            if settled && l.stamps == stamps {
                return Ok(l.clone());
            }
        }
        let (blobs, _) = self.list_blobs()?;
        let files = Files {
            root: &self.inner.root,
        };
        let graph = Graph {
            blobs: &blobs,
            content: &files,
            cache: &self.inner.cache,
        };
        let (reverse, referrers) = graph.edges()?;
        let listing = Arc::new(Listing {
            stamps,
            taken: now,
            blobs,
            reverse,
            referrers,
        });
        if let Ok(mut guard) = self.inner.listing.lock() {
            *guard = Some(listing.clone());
        }
        Ok(listing)
    }

    /// Loads the reference graph (every blob listed, every manifest parsed), so that later
    /// [`parents`](ManagedStore::parents) and [`refcount`](ManagedStore::refcount) calls answer
    /// from it while `blobs/` is unchanged (checked by the blob directories' modification times
    /// on every call; the listing is trusted once the last change is 2 seconds old). Returns
    /// the number of blobs.
    pub async fn load_graph(&self) -> Result<usize> {
        let s = self.clone();
        blocking(move || Ok(s.listing()?.blobs.len())).await
    }

    /// A collection (or its dry run, which changes nothing on disk and reports exactly what a
    /// real run would remove). Everything removed is a regular file or an ingest directory
    /// inside the store's own tree, found without following links.
    fn gc_blocking(&self, options: &GcOptions) -> Result<GcReport> {
        check_own_dirs(&self.inner.root)?;
        let _g = self.lock(true)?;
        // Checked again under the lock: the tree may have changed since the store was opened.
        check_own_dirs(&self.inner.root)?;
        let now = SystemTime::now();
        let found = self.roots(Some(options))?;
        let (blobs, mut skipped) = self.list_blobs()?;
        let files = Files {
            root: &self.inner.root,
        };
        let graph = Graph {
            blobs: &blobs,
            content: &files,
            cache: &self.inner.cache,
        };
        let mut report = graph.plan(&found.roots, options, now)?;
        report.expired_leases = found.expired;
        report.stale_ingests = found.stale.iter().map(|(_, k)| k.clone()).collect();
        skipped.extend(found.skipped);
        // Under the exclusive lock no rewrite is in progress: leftovers are from crashes.
        for (_, path, ft) in list_dir(&self.tmp_dir()?)? {
            if ft.is_file() {
                report.temporary_files.push(path);
            } else {
                skipped.push(Skipped::new(path, describe(ft)));
            }
        }
        report.temporary_files.sort();
        report.skipped = skipped;
        if options.dry_run {
            return Ok(report);
        }
        for r in &report.removed {
            remove_if_exists(&self.blob_path(&r.digest))?;
        }
        if !report.removed.is_empty() {
            for (_, dir) in self.blob_dirs() {
                if dir.is_dir() {
                    sync_dir(&dir)?;
                }
            }
        }
        for id in &report.expired_leases {
            self.remove_lease_files(id)?;
        }
        for (dir, _) in &found.stale {
            remove_dir_if_exists(dir)?;
        }
        for p in &report.temporary_files {
            remove_if_exists(p)?;
        }
        tracing::debug!(
            removed = report.removed.len(),
            bytes = report.bytes_freed,
            live = report.live,
            skipped = report.skipped.len(),
            "garbage collection done"
        );
        Ok(report)
    }

    fn fsck_blocking(&self, options: &FsckOptions) -> Result<FsckReport> {
        check_own_dirs(&self.inner.root)?;
        let _g = self.lock(false)?;
        check_own_dirs(&self.inner.root)?;
        let (mut blobs, skipped) = self.list_blobs()?;
        let mut report = FsckReport {
            skipped,
            ..FsckReport::default()
        };
        let mut opts = open_options();
        opts.read(true);
        let mut buf = vec![0u8; READ_CHUNK];
        let mut digests: Vec<Digest> = blobs.keys().cloned().collect();
        digests.sort();
        for d in digests {
            let path = self.blob_path(&d);
            let mut f = match open_regular(&path, &opts, "open") {
                Ok(Some(f)) => f,
                Ok(None) => {
                    blobs.remove(&d);
                    continue;
                }
                Err(StoreError::UnsafeEntry { path, found, .. }) => {
                    // Replaced since the listing: left alone like the others.
                    blobs.remove(&d);
                    report.skipped.push(Skipped::new(path, found));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut h = Digester::new(d.algorithm());
            loop {
                let n = f.read(&mut buf).map_err(ioe("read", &path))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            report.checked += 1;
            let size = h.bytes_hashed();
            report.bytes += size;
            let actual = h.finalize();
            if actual != d {
                tracing::warn!(digest = %d, %actual, "corrupt blob");
                report.corrupt.push(Corrupt {
                    digest: d.clone(),
                    actual,
                    size,
                });
                // Corrupt content is treated as absent by the graph check below.
                blobs.remove(&d);
                if options.repair {
                    remove_if_exists(&path)?;
                    report.removed.push(d);
                }
            }
        }
        // Roots first, then a fresh listing: content committed (and tagged) by a writer while
        // the blobs were being hashed is in the new listing, so it is not reported missing.
        let found = self.roots(None)?;
        report.skipped.extend(found.skipped);
        let roots = found.roots;
        let corrupt: HashSet<&Digest> = report.corrupt.iter().map(|c| &c.digest).collect();
        let blobs: HashMap<Digest, BlobMeta> = self
            .list_blobs()?
            .0
            .into_iter()
            .filter(|(d, _)| !corrupt.contains(d))
            .collect();
        let files = Files {
            root: &self.inner.root,
        };
        let graph = Graph {
            blobs: &blobs,
            content: &files,
            cache: &self.inner.cache,
        };
        graph.check(&roots, &mut report)?;
        Ok(report)
    }
}

/// The last component of a directory path we made (an ingest's hashed key).
fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.encoded())
}

/// Reads blobs for the graph.
struct Files<'a> {
    root: &'a Path,
}

impl Content for Files<'_> {
    fn read_small(&self, digest: &Digest, _size_hint: u64) -> Result<Option<Bytes>> {
        Ok(read_limited(&blob_path(self.root, digest), MANIFEST_LIMIT)?.map(Bytes::from))
    }
}

/// Streams `len` bytes of `file` in chunks.
fn file_stream(
    file: tokio::fs::File,
    len: u64,
) -> impl futures_core::Stream<Item = io::Result<Bytes>> + Send + Unpin {
    Box::pin(futures_util::stream::try_unfold(
        (file, len),
        |(mut file, remaining)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = usize::try_from(remaining)
                .unwrap_or(READ_CHUNK)
                .min(READ_CHUNK);
            let mut buf = BytesMut::with_capacity(want);
            while buf.len() < want {
                let n = (&mut file)
                    .take((want - buf.len()) as u64)
                    .read_buf(&mut buf)
                    .await?;
                if n == 0 {
                    break;
                }
            }
            if buf.is_empty() {
                return Ok(None);
            }
            let n = buf.len() as u64;
            Ok(Some((buf.freeze(), (file, remaining - n))))
        },
    ))
}

#[async_trait]
impl ReadStore for LayoutStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        let s = self.clone();
        let d = digest.clone();
        blocking(move || {
            let path = s.blob_path(&d);
            let size = |p: &Path| match fs::symlink_metadata(p) {
                Ok(m) if m.is_file() => Ok(Some(m.len())),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(StoreError::io("stat", p, e)),
            };
            match &s.lease {
                None => size(&path),
                Some(lease) => {
                    s.writable("pin content to a lease")?;
                    // Pin under the lock so a collection cannot run between "exists" and "pinned".
                    let _g = s.lock(false)?;
                    let found = size(&path)?;
                    if found.is_some() {
                        s.check_lease(lease)?;
                        s.pin(&d)?;
                    }
                    Ok(found)
                }
            }
        })
        .await
    }

    async fn fetch(&self, desc: &Descriptor) -> Result<BlobStream> {
        let (file, len) = self.open_blob(desc).await?;
        Ok(Box::pin(VerifyingStream::new(
            file_stream(file, len),
            desc.digest.clone(),
            desc.size,
        )))
    }

    async fn fetch_unverified(&self, desc: &Descriptor) -> Result<BlobStream> {
        let (file, len) = self.open_blob(desc).await?;
        Ok(Box::pin(file_stream(file, len)))
    }

    async fn fetch_range(&self, desc: &Descriptor, range: Range<u64>) -> Result<BlobStream> {
        let path = self.blob_path(&desc.digest);
        let (mut file, len) = self.open_blob_file(&desc.digest).await?;
        let r = clamp(range, len);
        file.seek(io::SeekFrom::Start(r.start))
            .await
            .map_err(ioe("seek", &path))?;
        Ok(Box::pin(file_stream(file, r.end - r.start)))
    }
    /// The referrers of `subject`: every stored manifest whose `subject` it is, found through
    /// the layout's reference graph (built once and reused while `blobs/` is unchanged, so
    /// referrers that other tools keep only as untagged `index.json` entries, as oras-go does,
    /// are found), then the entries of the tag schema fallback index
    /// ([`referrers_tag`](crate::referrers_tag)) not already listed.
    async fn referrers(&self, subject: &Descriptor) -> Result<Option<Vec<Descriptor>>> {
        let s = self.clone();
        let d = subject.digest.clone();
        let found = blocking(move || {
            let listing = s.listing()?;
            Ok(listing
                .referrers
                .get(&d)
                .map(|v| {
                    v.iter()
                        .filter_map(|r| listing.blobs.get(r).map(|m| (r.clone(), m.size)))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default())
        })
        .await?;
        let mut out: Vec<Descriptor> = Vec::new();
        for (digest, size) in found {
            let raw = self
                .fetch_bytes(&Descriptor::new("", digest.clone(), size), MANIFEST_LIMIT)
                .await?;
            let m = Manifest::parse(raw, None)
                .map_err(|source| StoreError::InvalidManifest { digest, source })?;
            out.push(m.referrer_descriptor());
        }
        match self.resolve(&crate::referrers_tag(&subject.digest)).await {
            Ok(index) => {
                let m = self.fetch_manifest(&index).await?;
                if m.is_index() {
                    for r in m.children() {
                        if !out.iter().any(|o| o.digest == r.digest) {
                            out.push(r.clone());
                        }
                    }
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        Ok(Some(out))
    }
}

#[async_trait]
impl WriteStore for LayoutStore {
    async fn push(&self, desc: &Descriptor, mut data: BlobStream) -> Result<PushOutcome> {
        if self.stat(&desc.digest).await?.is_some() {
            // `stat` pinned it when this is a leased view.
            return Ok(PushOutcome::AlreadyExists);
        }
        let key = new_id("push-");
        let mut w = self.open_writer(&key, desc, false).await?;
        let res = async {
            while let Some(chunk) = data.next().await {
                let chunk = chunk.map_err(|source| StoreError::Source {
                    digest: desc.digest.clone(),
                    source,
                })?;
                w.write(chunk).await?;
            }
            Ok(())
        }
        .await;
        match res {
            Ok(()) => Box::new(w).commit().await,
            Err(e) => {
                let _ = Box::new(w).abort().await;
                Err(e)
            }
        }
    }

    async fn writer(&self, key: &str, desc: &Descriptor) -> Result<Box<dyn BlobWriter>> {
        Ok(Box::new(self.open_writer(key, desc, true).await?))
    }

    async fn ingest_status(&self, key: &str) -> Result<Option<IngestStatus>> {
        validate_ingest_key(key)?;
        let dir = self.ingest_dir(key);
        blocking(move || Self::read_ingest(&dir)).await
    }

    async fn ingests(&self) -> Result<Vec<IngestStatus>> {
        let s = self.clone();
        blocking(move || {
            let mut v: Vec<IngestStatus> = s
                .list_ingests()?
                .0
                .into_iter()
                .filter_map(|(_, st)| st)
                .collect();
            v.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(v)
        })
        .await
    }

    async fn abort_ingest(&self, key: &str) -> Result<()> {
        self.writable("abort an ingest")?;
        validate_ingest_key(key)?;
        let dir = self.ingest_dir(key);
        let key = key.to_owned();
        let s = self.clone();
        blocking(move || {
            if !dir.is_dir() {
                return Err(StoreError::IngestNotFound { key });
            }
            let Some(_held) = try_lock(&dir.join("lock"), false)? else {
                return Err(StoreError::IngestBusy { key });
            };
            s.remove_ingest(&dir)
        })
        .await
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        self.writable("delete")?;
        let s = self.clone();
        let d = digest.clone();
        blocking(move || {
            let _g = s.lock(false)?;
            check_dirs(&s.inner.root, &["blobs", d.algorithm().as_str()])?;
            let path = s.blob_path(&d);
            if !remove_if_exists(&path)? {
                return Err(not_found(&d));
            }
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
            Ok(())
        })
        .await
    }
}

impl LayoutStore {
    async fn open_writer(
        &self,
        key: &str,
        desc: &Descriptor,
        durable: bool,
    ) -> Result<LayoutWriter> {
        self.writable("write a blob")?;
        validate_ingest_key(key)?;
        let s = self.clone();
        let key = key.to_owned();
        let desc = desc.clone();
        blocking(move || {
            let dir = s.ingest_dir(&key);
            let lock = {
                let _g = s.lock(false)?;
                let own = [STATE_DIR, "ingests", &dir_name(&dir)];
                check_dirs(&s.inner.root, &own)?;
                mkdirs(&dir)?;
                check_dirs(&s.inner.root, &own)?;
                let Some(lock) = try_lock(&dir.join("lock"), false)? else {
                    return Err(StoreError::IngestBusy { key });
                };
                let meta_path = dir.join("meta.json");
                match read_limited(&meta_path, RECORD_LIMIT)?
                    .and_then(|raw| serde_json::from_slice::<IngestMeta>(&raw).ok())
                {
                    Some(m) if m.expected.digest != desc.digest || m.expected.size != desc.size => {
                        return Err(StoreError::IngestMismatch {
                            key,
                            existing: m.expected.digest,
                            requested: desc.digest,
                        });
                    }
                    Some(_) => {}
                    None => {
                        let meta = IngestMeta {
                            key: key.clone(),
                            expected: desc.clone(),
                            started_ms: to_millis(SystemTime::now()),
                        };
                        let raw = serde_json::to_vec(&meta)
                            .map_err(|e| StoreError::backend("serialize ingest record", e))?;
                        if durable {
                            atomic_write(&s.tmp_dir()?, &meta_path, &raw)?;
                        } else {
                            let mut opts = open_options();
                            opts.write(true).create(true).truncate(true);
                            open_regular(&meta_path, &opts, "create")?
                                .ok_or_else(|| {
                                    StoreError::io(
                                        "create",
                                        &meta_path,
                                        io::ErrorKind::NotFound.into(),
                                    )
                                })?
                                .write_all(&raw)
                                .map_err(ioe("write", &meta_path))?;
                        }
                    }
                }
                lock
            };
            LayoutWriter::open(s, key, desc, dir, lock)
        })
        .await
    }
}

#[async_trait]
impl TagStore for LayoutStore {
    async fn resolve(&self, tag: &str) -> Result<Descriptor> {
        let s = self.clone();
        let tag = tag.to_owned();
        blocking(move || {
            s.read_index()?
                .resolve(&tag)
                .cloned()
                .ok_or(StoreError::TagNotFound { tag })
        })
        .await
    }

    async fn tag(&self, desc: &Descriptor, tag: &str) -> Result<()> {
        self.writable("tag")?;
        validate_tag(tag)?;
        let s = self.clone();
        let tag = tag.to_owned();
        let desc = desc.clone();
        blocking(move || {
            let _g = s.lock(true)?;
            let path = s.blob_path(&desc.digest);
            let len = match fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(not_found(&desc.digest));
                }
                Err(e) => return Err(StoreError::io("stat", &path, e)),
            };
            check_size(&desc, len)?;
            let mut idx = s.read_index()?;
            idx.set_tag(&desc, &tag);
            s.write_index(&idx)
        })
        .await
    }

    async fn untag(&self, tag: &str) -> Result<()> {
        self.writable("untag")?;
        let s = self.clone();
        let tag = tag.to_owned();
        blocking(move || {
            let _g = s.lock(true)?;
            let mut idx = s.read_index()?;
            if !idx.remove_tag(&tag) {
                return Err(StoreError::TagNotFound { tag });
            }
            s.write_index(&idx)
        })
        .await
    }

    async fn tags(&self) -> Result<Vec<String>> {
        let s = self.clone();
        blocking(move || Ok(s.read_index()?.tags())).await
    }
}

#[async_trait]
impl ManagedStore for LayoutStore {
    async fn create_lease(&self, ttl: Duration) -> Result<Lease> {
        self.writable("create a lease")?;
        let s = self.clone();
        blocking(move || {
            let id = new_id("lease-");
            let expires = SystemTime::now() + ttl;
            let (json, pins) = s.lease_paths(&id)?;
            let _g = s.lock(false)?;
            let mut opts = open_options();
            opts.write(true).create(true).truncate(true);
            open_regular(&pins, &opts, "create")?;
            let raw = serde_json::to_vec(&LeaseMeta {
                expires_ms: to_millis(expires),
            })
            .map_err(|e| StoreError::backend("serialize lease", e))?;
            atomic_write(&s.tmp_dir()?, &json, &raw)?;
            tracing::debug!(lease = %id, ?ttl, "lease created");
            Ok(Lease::new(id, from_millis(to_millis(expires))))
        })
        .await
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        self.writable("renew a lease")?;
        let s = self.clone();
        let id = lease.id().to_owned();
        blocking(move || {
            let (json, _) = s.lease_paths(&id)?;
            let _g = s.lock(false)?;
            if read_limited(&json, RECORD_LIMIT)?.is_none() {
                return Err(StoreError::LeaseNotFound { id });
            }
            let expires = SystemTime::now() + ttl;
            let raw = serde_json::to_vec(&LeaseMeta {
                expires_ms: to_millis(expires),
            })
            .map_err(|e| StoreError::backend("serialize lease", e))?;
            atomic_write(&s.tmp_dir()?, &json, &raw)?;
            Ok(Lease::new(id, from_millis(to_millis(expires))))
        })
        .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.writable("release a lease")?;
        let s = self.clone();
        let id = lease.id().to_owned();
        blocking(move || {
            let _g = s.lock(false)?;
            if !s.remove_lease_files(&id)? {
                return Err(StoreError::LeaseNotFound { id });
            }
            Ok(())
        })
        .await
    }

    async fn leases(&self) -> Result<Vec<LeaseInfo>> {
        let s = self.clone();
        blocking(move || Ok(s.read_leases()?.into_iter().map(|(i, _)| i).collect())).await
    }

    fn with_lease(&self, lease: &Lease) -> Self {
        LayoutStore {
            inner: self.inner.clone(),
            lease: Some(lease.clone()),
        }
    }

    fn with_lease_boxed(&self, lease: &Lease) -> Box<dyn Store + '_> {
        Box::new(self.with_lease(lease))
    }

    async fn parents(&self, digest: &Digest) -> Result<Vec<Parent>> {
        let s = self.clone();
        let d = digest.clone();
        blocking(move || {
            let listing = s.listing()?;
            let roots = s.roots(None)?.roots;
            let manifests = listing.reverse.get(&d).cloned().unwrap_or_default();
            Ok(parents_from(&d, &roots, manifests))
        })
        .await
    }

    async fn gc(&self, options: &GcOptions) -> Result<GcReport> {
        if !options.dry_run {
            self.writable("gc")?;
        }
        let s = self.clone();
        let o = options.clone();
        blocking(move || s.gc_blocking(&o)).await
    }

    async fn fsck(&self, options: &FsckOptions) -> Result<FsckReport> {
        if options.repair {
            self.writable("fsck with repair")?;
        }
        let s = self.clone();
        let o = options.clone();
        blocking(move || s.fsck_blocking(&o)).await
    }
}
