//! [`ArchiveWriter`]: an archive written as a stream, as a [`WriteStore`] + [`TagStore`] that
//! [`copy`](crate::copy()) writes into.
//!
//! The tar is written in a work directory beside the destination (`.NAME.oci-rs-ID/`) and
//! made visible only by [`ArchiveWriter::finish`], which writes the metadata last
//! (`index.json`; `manifest.json` and `repositories`), fsyncs and links the file into place.
//! Each blob is received into a spool file of that directory (a resumable ingest), verified,
//! then appended to the tar with its header (its size is known then, and nothing unverified
//! ever enters the tar): every blob is written twice on disk, the second time by an in-kernel
//! copy (`copy_file_range`), and the work directory holds at most the blobs being received at
//! once. Appends are serialised; memory stays bounded (spools stream; only manifests and
//! names are kept). Dropping the writer without `finish` removes the work directory: nothing
//! is left at the destination.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io as stdio;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use oci_digest::{Digest, Verifier, VerifyingStream};
use oci_manifest::{Descriptor, Manifest};
use tar::EntryType;

use super::append::{Source, write_member_locked};
use super::errors::unsupported;
use super::ingest::{ArchiveBlobWriter, Ingest, IngestState};
use super::io::{self, blocking, write_at};
use super::tar_index::BLOCK;
use super::{ArchiveKind, ArchiveOptions, docker_write, oci_write};
use crate::error::{Result, StoreError};
use crate::traits::{
    BlobStream, BlobWriter, IngestStatus, PushOutcome, ReadStore, TagStore, WriteStore,
    bytes_stream,
};
use crate::util::{check_size, clamp, not_found, validate_ingest_key};

/// What an archive writer holds under a digest.
#[derive(Debug, Clone)]
pub(crate) enum Stored {
    /// The bytes as received, a member of the tar.
    Member {
        name: String,
        offset: u64,
        size: u64,
        /// The bytes are not compressed (so their digest is their diff ID).
        uncompressed: bool,
    },
    /// A gzip layer stored decompressed (docker-archive): `size` is the compressed size (the
    /// descriptor's), the member holds the uncompressed bytes.
    Decompressed {
        name: String,
        size: u64,
        diff_id: Digest,
    },
    /// Kept in memory, not in the tar (a docker-archive's manifests: the format has no place
    /// for them; `manifest.json` is made from them).
    Memory(Bytes),
}

impl Stored {
    fn size(&self) -> u64 {
        match self {
            Stored::Member { size, .. } | Stored::Decompressed { size, .. } => *size,
            Stored::Memory(b) => b.len() as u64,
        }
    }
}

/// A manifest pushed into the writer (parsed), for the metadata written at the end.
#[derive(Debug, Clone)]
pub(crate) struct Pushed {
    pub(crate) desc: Descriptor,
    pub(crate) manifest: Manifest,
}

pub(crate) struct State {
    /// Offset of the next header.
    pub(crate) end: u64,
    pub(crate) blobs: HashMap<Digest, Stored>,
    /// Names of the tar's members.
    pub(crate) names: HashSet<String>,
    /// Manifests in push order.
    pub(crate) pushed: Vec<Pushed>,
    pub(crate) tags: BTreeMap<String, Descriptor>,
    pub(super) ingests: HashMap<String, Ingest>,
    pub(super) finished: bool,
}

pub(crate) struct Inner {
    pub(super) kind: ArchiveKind,
    pub(super) dest: PathBuf,
    pub(super) work: PathBuf,
    pub(super) tar_path: PathBuf,
    pub(super) file: Arc<File>,
    pub(super) options: ArchiveOptions,
    /// Held by the one append at a time (and by `finish`).
    pub(super) append: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let finished = self
            .state
            .get_mut()
            .map(|s| s.finished)
            .unwrap_or_else(|p| p.into_inner().finished);
        if !finished {
            // Nothing unverified (nor unfinished) is ever visible: the work goes.
            let _ = std::fs::remove_dir_all(&self.work);
        }
    }
}

/// What [`ArchiveWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveSummary {
    /// The archive.
    pub path: PathBuf,
    /// Images listed (`index.json` entries, `manifest.json` items).
    pub images: usize,
    /// Size of the archive in bytes.
    pub bytes: u64,
}

/// A `docker-archive` or `oci-archive` being written: a [`ReadStore`] + [`WriteStore`] +
/// [`TagStore`] (so a [`Store`](crate::Store)) that [`copy`](crate::copy()) writes into, one
/// image or several (one copy per image, each with its tag), made visible by
/// [`finish`](ArchiveWriter::finish).
///
/// - **oci-archive**: `oci-layout` first, every blob as `blobs/<alg>/<encoded>` as it is
///   committed, `index.json` last: the tagged manifests (tags as
///   `org.opencontainers.image.ref.name`) and the untagged roots.
/// - **docker-archive** (`docker save` format, as skopeo writes it): configurations as
///   `<hex>.json`, layers as `<diff ID hex>.tar`: gzip layers are decompressed on the way
///   ([`ArchiveOptions::decompress_layers`]), as `docker save` and skopeo store them, and each
///   layer's diff ID is checked against the configuration when the manifest arrives
///   ([`StoreError::DiffIdMismatch`]). Manifests are not stored: `manifest.json` (one item per
///   image, its `RepoTags`) and the legacy `repositories` file and layer directories are
///   written at the end. An OCI image is accepted and converted as skopeo converts it (the
///   archive has no media types; reading it back gives a Docker schema 2 manifest with the
///   same config and diff IDs); an index (select a platform), an artifact, or a layer that is
///   not an image layer is refused with [`StoreError::Unsupported`]. Tags are Docker
///   references (`app:v1`, `registry.example/team/app:v1`), stored normalised
///   (`docker.io/library/app:v1`).
///
/// A decompressed layer cannot be read back under its compressed digest
/// ([`StoreError::Unsupported`]); everything else can. Deleting from an archive is not
/// supported. Ingests resume within the writer's life (not across processes: the work
/// directory goes with it).
///
/// ```
/// use oci_store::{ArchiveKind, ArchiveReader, ArchiveWriter, WriteStore, TagStore, ReadStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = std::env::temp_dir().join(format!("oci-archive-writer-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("out.tar");
/// let w = ArchiveWriter::create(&path, ArchiveKind::Oci).await?;
/// let index = oci_manifest::build::IndexBuilder::oci().build().unwrap();
/// w.push_bytes(&index.descriptor(), index.raw().clone()).await?;
/// w.tag(&index.descriptor(), "v1").await?;
/// assert!(!path.exists()); // nothing visible before finish
/// let summary = w.finish().await?;
/// assert_eq!(summary.images, 1);
/// let r = ArchiveReader::open(&path, ArchiveKind::Oci).await?;
/// assert_eq!(r.resolve("v1").await?.digest, *index.digest());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct ArchiveWriter {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for ArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("dest", &self.inner.dest)
            .field("kind", &self.inner.kind)
            .finish()
    }
}

fn already_exists(path: &Path) -> StoreError {
    StoreError::io(
        "create archive (it exists; ArchiveOptions::overwrite replaces it)",
        path,
        stdio::Error::from(stdio::ErrorKind::AlreadyExists),
    )
}

impl ArchiveWriter {
    /// Starts writing an archive of `kind` to `path` with the default [`ArchiveOptions`].
    ///
    /// # Errors
    /// An I/O error of kind `AlreadyExists` when `path` exists (see
    /// [`ArchiveOptions::overwrite`]); I/O errors creating the work directory beside it.
    pub async fn create(path: impl AsRef<Path>, kind: ArchiveKind) -> Result<ArchiveWriter> {
        ArchiveWriter::create_with(path, kind, &ArchiveOptions::default()).await
    }

    /// Starts writing an archive with `options` (see [`create`](ArchiveWriter::create)).
    pub async fn create_with(
        path: impl AsRef<Path>,
        kind: ArchiveKind,
        options: &ArchiveOptions,
    ) -> Result<ArchiveWriter> {
        let dest = path.as_ref().to_path_buf();
        let options = options.clone();
        blocking(move || ArchiveWriter::create_blocking(dest, kind, options)).await
    }

    fn create_blocking(
        dest: PathBuf,
        kind: ArchiveKind,
        options: ArchiveOptions,
    ) -> Result<ArchiveWriter> {
        match std::fs::symlink_metadata(&dest) {
            Ok(m) if m.is_dir() => {
                return Err(StoreError::UnsafeEntry {
                    path: dest,
                    found: "a directory",
                    expected: "an archive file",
                });
            }
            Ok(_) if !options.overwrite => return Err(already_exists(&dest)),
            Ok(_) => {}
            Err(e) if e.kind() == stdio::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("stat", &dest, e)),
        }
        let file_name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                StoreError::io(
                    "create archive",
                    &dest,
                    stdio::Error::new(stdio::ErrorKind::InvalidInput, "not a file name"),
                )
            })?;
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let work = parent.join(format!(".{file_name}.oci-rs-{}", crate::lease::new_id("")));
        std::fs::create_dir(&work)
            .map_err(|e| StoreError::io("create work directory", &work, e))?;
        let tar_path = work.join("archive.tar");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tar_path)
            .map_err(|e| StoreError::io("create", &tar_path, e));
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&work);
                return Err(e);
            }
        };
        let w = ArchiveWriter {
            inner: Arc::new(Inner {
                kind,
                dest,
                work,
                tar_path,
                file: Arc::new(file),
                options,
                append: tokio::sync::Mutex::new(()),
                state: Mutex::new(State {
                    end: 0,
                    blobs: HashMap::new(),
                    names: HashSet::new(),
                    pushed: Vec::new(),
                    tags: BTreeMap::new(),
                    ingests: HashMap::new(),
                    finished: false,
                }),
            }),
        };
        if kind == ArchiveKind::Oci {
            let mut st = w.state();
            for (name, data, ty) in [
                (
                    "oci-layout",
                    &br#"{"imageLayoutVersion":"1.0.0"}"#[..],
                    EntryType::Regular,
                ),
                ("blobs/", &b""[..], EntryType::Directory),
                ("blobs/sha256/", &b""[..], EntryType::Directory),
            ] {
                write_member_locked(&w.inner, &mut st, name, data, ty, None)?;
            }
        }
        Ok(w)
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The archive this writer makes.
    pub fn path(&self) -> &Path {
        &self.inner.dest
    }

    /// Its format.
    pub fn kind(&self) -> ArchiveKind {
        self.inner.kind
    }

    pub(super) fn check_open(&self) -> Result<()> {
        if self.state().finished {
            return Err(unsupported("writing to an archive already finished"));
        }
        Ok(())
    }

    /// Writes the metadata (`index.json`; `manifest.json` and `repositories` with the legacy
    /// layer directories), the end-of-archive marker, fsyncs the archive and puts it at its
    /// path (atomically: created with a link, so an archive that appeared there meanwhile is
    /// not replaced unless [`ArchiveOptions::overwrite`]), then removes the work directory.
    /// Ingests not committed are discarded. Later writes fail.
    ///
    /// # Errors
    /// [`StoreError::IngestBusy`] while a writer is open; I/O errors (the archive is then not
    /// at its path).
    pub async fn finish(&self) -> Result<ArchiveSummary> {
        let _g = self.inner.append.lock().await;
        let this = self.clone();
        blocking(move || this.finish_blocking()).await
    }

    fn finish_blocking(&self) -> Result<ArchiveSummary> {
        let inner = &self.inner;
        let mut st = self.state();
        if st.finished {
            return Err(unsupported("finishing an archive already finished"));
        }
        if let Some((key, _)) = st.ingests.iter().find(|(_, i)| i.busy) {
            return Err(StoreError::IngestBusy { key: key.clone() });
        }
        let images = match inner.kind {
            ArchiveKind::Oci => oci_write::finish(self, &mut st)?,
            ArchiveKind::Docker => docker_write::finish(self, &mut st)?,
        };
        let end = st.end;
        let marker = [0u8; 2 * BLOCK as usize];
        write_at(&inner.file, &marker, end)
            .map_err(|e| StoreError::io("write", &inner.tar_path, e))?;
        let bytes = end + marker.len() as u64;
        inner
            .file
            .set_len(bytes)
            .and_then(|()| inner.file.sync_all())
            .map_err(|e| StoreError::io("fsync", &inner.tar_path, e))?;
        if inner.options.overwrite {
            std::fs::rename(&inner.tar_path, &inner.dest)
                .map_err(|e| StoreError::io("rename into place", &inner.dest, e))?;
        } else {
            match std::fs::hard_link(&inner.tar_path, &inner.dest) {
                Ok(()) => {}
                Err(e) if e.kind() == stdio::ErrorKind::AlreadyExists => {
                    return Err(already_exists(&inner.dest));
                }
                // A file system without hard links: rename, after a last look.
                Err(_) if std::fs::symlink_metadata(&inner.dest).is_err() => {
                    std::fs::rename(&inner.tar_path, &inner.dest)
                        .map_err(|e| StoreError::io("rename into place", &inner.dest, e))?;
                }
                Err(e) => return Err(StoreError::io("link into place", &inner.dest, e)),
            }
        }
        if let Some(dir) = inner.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| StoreError::io("fsync directory", dir, e))?;
        }
        st.finished = true;
        st.ingests.clear();
        drop(st);
        let _ = std::fs::remove_dir_all(&inner.work);
        tracing::info!(path = %inner.dest.display(), images, bytes, "archive written");
        Ok(ArchiveSummary {
            path: inner.dest.clone(),
            images,
            bytes,
        })
    }

    fn content(&self, digest: &Digest) -> Result<Stored> {
        self.state()
            .blobs
            .get(digest)
            .cloned()
            .ok_or_else(|| not_found(digest))
    }

    fn stream_of(&self, stored: &Stored, range: Range<u64>) -> Result<BlobStream> {
        Ok(match stored {
            Stored::Memory(b) => bytes_stream(b.slice(range.start as usize..range.end as usize)),
            Stored::Member { offset, .. } => io::stream(
                Arc::clone(&self.inner.file),
                offset + range.start,
                range.end - range.start,
            ),
            Stored::Decompressed { .. } => {
                return Err(unsupported(
                    "reading back a layer decompressed into a docker-archive",
                ));
            }
        })
    }

    /// The bytes of small stored content (a config, read back to check diff IDs).
    pub(crate) async fn read_back(&self, digest: &Digest, limit: u64) -> Result<Bytes> {
        let stored = self.content(digest)?;
        let size = stored.size();
        if size > limit {
            return Err(StoreError::ManifestTooLarge {
                digest: digest.clone(),
                size,
                limit,
            });
        }
        crate::traits::collect(self.stream_of(&stored, 0..size)?, limit).await
    }

    /// The options it was created with.
    pub(crate) fn inner_options(&self) -> &ArchiveOptions {
        &self.inner.options
    }

    /// The tar being written.
    pub(crate) fn tar_file(&self) -> &File {
        &self.inner.file
    }

    /// The stored content under `digest`, if any.
    pub(crate) fn stored(&self, digest: &Digest) -> Option<Stored> {
        self.state().blobs.get(digest).cloned()
    }

    /// Writes a small member of the metadata (state locked by the caller, append lock held).
    pub(crate) fn write_member(
        &self,
        st: &mut State,
        name: &str,
        data: &[u8],
        ty: EntryType,
        link: Option<&str>,
    ) -> Result<()> {
        write_member_locked(&self.inner, st, name, data, ty, link)
    }
}

#[async_trait]
impl ReadStore for ArchiveWriter {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        Ok(self.state().blobs.get(digest).map(Stored::size))
    }

    async fn fetch(&self, desc: &Descriptor) -> Result<BlobStream> {
        let stored = self.content(&desc.digest)?;
        check_size(desc, stored.size())?;
        let s = self.stream_of(&stored, 0..stored.size())?;
        Ok(Box::pin(VerifyingStream::new(
            s,
            desc.digest.clone(),
            desc.size,
        )))
    }

    async fn fetch_range(&self, desc: &Descriptor, range: Range<u64>) -> Result<BlobStream> {
        let stored = self.content(&desc.digest)?;
        let r = clamp(range, stored.size());
        self.stream_of(&stored, r)
    }
}

#[async_trait]
impl WriteStore for ArchiveWriter {
    async fn push(&self, desc: &Descriptor, data: BlobStream) -> Result<PushOutcome> {
        self.check_open()?;
        if self.state().blobs.contains_key(&desc.digest) {
            return Ok(PushOutcome::AlreadyExists);
        }
        let source = self.receive(desc, data).await?;
        let spool = match &source {
            Source::Spool(p) => Some(p.clone()),
            Source::Bytes(_) => None,
        };
        let result = self.store(desc, source).await;
        if let Some(p) = spool {
            let _ = std::fs::remove_file(p);
        }
        result
    }

    async fn writer(&self, key: &str, desc: &Descriptor) -> Result<Box<dyn BlobWriter>> {
        validate_ingest_key(key)?;
        self.check_open()?;
        let mut st = self.state();
        let now = SystemTime::now();
        if let Some(ing) = st.ingests.get(key) {
            if ing.expected.digest != desc.digest || ing.expected.size != desc.size {
                return Err(StoreError::IngestMismatch {
                    key: key.to_owned(),
                    existing: ing.expected.digest.clone(),
                    requested: desc.digest.clone(),
                });
            }
            if ing.busy {
                return Err(StoreError::IngestBusy {
                    key: key.to_owned(),
                });
            }
        } else {
            let (file, spool) = io::create_temp(&self.inner.work, "ingest")?;
            st.ingests.insert(
                key.to_owned(),
                Ingest {
                    expected: desc.clone(),
                    spool,
                    state: Some(IngestState {
                        file,
                        verifier: Verifier::new(desc.digest.clone(), desc.size),
                    }),
                    busy: false,
                    started_at: now,
                    updated_at: now,
                },
            );
        }
        let ing = st
            .ingests
            .get_mut(key)
            .ok_or_else(|| StoreError::IngestNotFound {
                key: key.to_owned(),
            })?;
        let state = match ing.state.take() {
            Some(s) => s,
            None => {
                // A writer vanished mid-write: start again.
                let file = OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&ing.spool)
                    .map_err(|e| StoreError::io("open", &ing.spool, e))?;
                IngestState {
                    file,
                    verifier: Verifier::new(desc.digest.clone(), desc.size),
                }
            }
        };
        ing.busy = true;
        let offset = state.verifier.received();
        Ok(Box::new(ArchiveBlobWriter {
            store: self.clone(),
            key: key.to_owned(),
            expected: desc.clone(),
            offset,
            state: Some(state),
            done: false,
        }))
    }

    async fn ingest_status(&self, key: &str) -> Result<Option<IngestStatus>> {
        Ok(self.state().ingests.get(key).map(|i| i.status(key)))
    }

    async fn ingests(&self) -> Result<Vec<IngestStatus>> {
        let st = self.state();
        let mut v: Vec<_> = st.ingests.iter().map(|(k, i)| i.status(k)).collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(v)
    }

    async fn abort_ingest(&self, key: &str) -> Result<()> {
        let mut st = self.state();
        match st.ingests.get(key) {
            None => Err(StoreError::IngestNotFound {
                key: key.to_owned(),
            }),
            Some(i) if i.busy => Err(StoreError::IngestBusy {
                key: key.to_owned(),
            }),
            Some(_) => {
                if let Some(i) = st.ingests.remove(key) {
                    let _ = std::fs::remove_file(&i.spool);
                }
                Ok(())
            }
        }
    }

    async fn delete(&self, _digest: &Digest) -> Result<()> {
        Err(unsupported("delete from an archive being written"))
    }
}

#[async_trait]
impl TagStore for ArchiveWriter {
    async fn resolve(&self, tag: &str) -> Result<Descriptor> {
        let st = self.state();
        let key = match self.inner.kind {
            ArchiveKind::Oci => tag.to_owned(),
            ArchiveKind::Docker => docker_write::tag_key(tag).unwrap_or_else(|_| tag.to_owned()),
        };
        st.tags
            .get(&key)
            .cloned()
            .ok_or_else(|| StoreError::TagNotFound {
                tag: crate::error::cut(tag),
            })
    }

    async fn tag(&self, desc: &Descriptor, tag: &str) -> Result<()> {
        self.check_open()?;
        let key = match self.inner.kind {
            ArchiveKind::Oci => {
                crate::util::validate_tag(tag)?;
                tag.to_owned()
            }
            ArchiveKind::Docker => docker_write::tag_key(tag)?,
        };
        let mut st = self.state();
        let stored = st
            .blobs
            .get(&desc.digest)
            .ok_or_else(|| not_found(&desc.digest))?;
        check_size(desc, stored.size())?;
        if self.inner.kind == ArchiveKind::Docker
            && !st.pushed.iter().any(|p| p.desc.digest == desc.digest)
        {
            return Err(unsupported(
                "tagging content that is not an image manifest in a docker-archive",
            ));
        }
        st.tags.insert(key, desc.clone());
        Ok(())
    }

    async fn untag(&self, tag: &str) -> Result<()> {
        self.check_open()?;
        let key = match self.inner.kind {
            ArchiveKind::Oci => tag.to_owned(),
            ArchiveKind::Docker => docker_write::tag_key(tag).unwrap_or_else(|_| tag.to_owned()),
        };
        match self.state().tags.remove(&key) {
            Some(_) => Ok(()),
            None => Err(StoreError::TagNotFound {
                tag: crate::error::cut(tag),
            }),
        }
    }

    async fn tags(&self) -> Result<Vec<String>> {
        Ok(self.state().tags.keys().cloned().collect())
    }
}
