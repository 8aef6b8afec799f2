//! `LayoutStore`: an OCI image layout on disk, plus this crate's own state beside it.

mod fsutil;
mod graph;
pub(crate) mod index;
mod ingest;
mod leases;
mod maps;
mod pieces;
mod store;
mod writer;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use oci_digest::{Algorithm, Digest, Digester, VerifyingStream};
use oci_manifest::{Descriptor, Manifest};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncSeekExt;

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
use self::graph::Listing;
use self::index::{IndexFile, MAX_INDEX_SIZE, check_marker};
use self::pieces::LayoutPieceWriter;
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
    dirs.extend(["tmp", "ingests", "leases", maps::MAPS_DIR].map(|d| vec![STATE_DIR, d]));
    dirs.extend(
        Algorithm::ALL
            .iter()
            .map(|a| vec![STATE_DIR, maps::MAPS_DIR, a.as_str()]),
    );
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
///                                       descriptor), data, state (saved hash state), and for
///                                       an ingest written in pieces pieces.json (held pieces)
/// .oci-rs/leases/<id>.json, <id>.pins   expiry; pinned digests, one a line (append-only)
/// .oci-rs/piece-maps/<alg>/<enc>.json   cached piece maps of blobs held, made from their
///                                       verified bytes (see [`LayoutStore::piece_map`]);
///                                       removed with their blob by `delete` and collections
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
