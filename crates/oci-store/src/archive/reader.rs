//! [`ArchiveReader`]: an archive opened for reading, as a [`ReadStore`] + [`TagStore`].
//!
//! Opening scans the tar headers once (an index of member offsets; no data is read but the
//! metadata files), reads the format's metadata (`manifest.json` and the image configurations
//! of a docker-archive; `oci-layout` and `index.json` of an oci-archive) and checks it. Content
//! is then served from the archive by offset, verified against its digest as it streams.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use oci_digest::{Digest, VerifyingStream};
use oci_manifest::Descriptor;

use super::docker_ref::RepoTag;
use super::errors::unsupported;
use super::io::{self, blocking};
use super::tar_index::{Data, ScanLimits, TarIndex};
use super::{ArchiveImage, ArchiveKind, ArchiveOptions, docker_read, oci_read};
use crate::error::{Result, StoreError};
use crate::traits::{BlobStream, ReadStore, TagStore, bytes_stream};
use crate::util::{check_size, clamp, not_found};

/// Where a piece of content is.
#[derive(Debug, Clone)]
pub(crate) enum Content {
    /// A member's data in the archive.
    Member(Data),
    /// Made while opening (a docker-archive's synthesised manifests).
    Bytes(Bytes),
}

impl Content {
    pub(crate) fn size(&self) -> u64 {
        match self {
            Content::Member(d) => d.size,
            Content::Bytes(b) => b.len() as u64,
        }
    }
}

/// What reading an archive's metadata found.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) blobs: HashMap<Digest, Content>,
    pub(crate) images: Vec<ArchiveImage>,
}

/// An archive read while it is open: the file and the index of its members.
pub(crate) struct Opened<'a> {
    pub(crate) path: &'a Path,
    pub(crate) file: &'a File,
    pub(crate) index: &'a TarIndex,
    pub(crate) options: &'a ArchiveOptions,
}

impl Opened<'_> {
    /// The whole data of member `name` (at most `limit` bytes), or `None` when there is no such
    /// member.
    pub(crate) fn read_small(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some(d) = self.index.file(self.path, name)? else {
            return Ok(None);
        };
        if d.size > limit {
            return Err(super::errors::invalid(
                self.path,
                name,
                format!("has {} bytes, more than the limit of {limit}", d.size),
            ));
        }
        // Bounded by the limit just checked.
        let mut buf = vec![0u8; d.size as usize];
        io::read_at(self.file, &mut buf, d.offset)
            .map_err(|e| StoreError::io("read", self.path, e))?;
        Ok(Some(buf))
    }
}

/// A `docker-archive` or `oci-archive` opened for reading: a [`ReadStore`] and a
/// [`TagStore`] (whose tags are the archive's image names; it cannot be tagged).
///
/// A docker-archive's images are presented as Docker schema 2 manifests made from
/// `manifest.json` (their digests are this crate's, not found in the archive); layer digests
/// are those of the layer files as stored. An oci-archive is an OCI image layout: its content
/// and `index.json` tags as they are. Everything fetched is verified against its digest as it
/// streams (an uncompressed layer of a docker-archive is named by its diff ID, so its diff ID
/// is checked by the same verification).
///
/// Opening reads no layer data, except for a docker-archive layer file that is compressed and
/// not named by its digest (`docker save` writes uncompressed layers): such a file is hashed
/// once while opening, to learn the digest its manifest names it by.
///
/// A gzip-compressed archive (`docker save | gzip`) cannot be read at random: it is
/// decompressed once, while opening, into an anonymous temporary file
/// ([`ArchiveOptions::temp_dir`], at most [`ArchiveOptions::max_decompressed`] bytes), which
/// costs one pass over the archive and its uncompressed size on disk until the reader is
/// dropped; reads are then as fast as from an uncompressed archive (re-reading the stream for
/// each blob would cost one decompression per blob, and a copy reads every blob).
///
/// ```
/// use oci_store::{ArchiveKind, ArchiveReader, ArchiveWriter, MemoryStore, TagStore, WriteStore, copy, CopyOptions};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = std::env::temp_dir().join(format!("oci-archive-reader-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// // An oci-archive holding one tagged image.
/// let path = dir.join("app.tar");
/// let src = MemoryStore::new();
/// let index = oci_manifest::build::IndexBuilder::oci().build().unwrap();
/// src.push_bytes(&index.descriptor(), index.raw().clone()).await?;
/// src.tag(&index.descriptor(), "v1").await?;
/// let w = ArchiveWriter::create(&path, ArchiveKind::Oci).await?;
/// copy(&src, "v1", &w, None, &CopyOptions::default()).await?;
/// w.finish().await?;
///
/// let r = ArchiveReader::open(&path, ArchiveKind::Oci).await?;
/// assert_eq!(r.tags().await?, vec!["v1".to_string()]);
/// assert_eq!(r.resolve("v1").await?.digest, *index.digest());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct ArchiveReader {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    kind: ArchiveKind,
    file: Arc<File>,
    decompressed: bool,
    members: usize,
    blobs: HashMap<Digest, Content>,
    images: Vec<ArchiveImage>,
    /// Tag -> index in `images`.
    tags: BTreeMap<String, usize>,
}

impl std::fmt::Debug for ArchiveReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveReader")
            .field("path", &self.inner.path)
            .field("kind", &self.inner.kind)
            .field("images", &self.inner.images.len())
            .finish()
    }
}

impl ArchiveReader {
    /// Opens the archive at `path` with the default [`ArchiveOptions`].
    ///
    /// # Errors
    /// [`StoreError::InvalidArchive`] naming the member and the reason when the archive is
    /// malformed or hostile; I/O errors; [`StoreError::UnsafeEntry`] when `path` is not a
    /// regular file.
    pub async fn open(path: impl AsRef<Path>, kind: ArchiveKind) -> Result<ArchiveReader> {
        ArchiveReader::open_with(path, kind, &ArchiveOptions::default()).await
    }

    /// Opens the archive at `path` with `options` (see [`open`](ArchiveReader::open)).
    pub async fn open_with(
        path: impl AsRef<Path>,
        kind: ArchiveKind,
        options: &ArchiveOptions,
    ) -> Result<ArchiveReader> {
        let path = path.as_ref().to_path_buf();
        let options = options.clone();
        blocking(move || ArchiveReader::open_blocking(path, kind, &options)).await
    }

    fn open_blocking(
        path: PathBuf,
        kind: ArchiveKind,
        options: &ArchiveOptions,
    ) -> Result<ArchiveReader> {
        let temp = options.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let tar = io::open_tar(&path, &temp, options.max_decompressed)?;
        let index = TarIndex::scan(
            &tar.file,
            tar.len,
            &path,
            ScanLimits {
                max_members: options.max_members,
                max_extension: 1 << 20,
            },
        )?;
        let opened = Opened {
            path: &path,
            file: &tar.file,
            index: &index,
            options,
        };
        let loaded = match kind {
            ArchiveKind::Docker => docker_read::load(&opened)?,
            ArchiveKind::Oci => oci_read::load(&opened)?,
        };
        let mut tags = BTreeMap::new();
        for (i, img) in loaded.images.iter().enumerate() {
            for t in &img.tags {
                if let Some(prev) = tags.insert(t.clone(), i)
                    && prev != i
                {
                    return Err(super::errors::invalid(
                        &path,
                        "-",
                        format!("the name {t:?} is given to two images"),
                    ));
                }
            }
        }
        tracing::debug!(path = %path.display(), ?kind, members = index.len(), images = loaded.images.len(), decompressed = tar.decompressed, "archive opened");
        Ok(ArchiveReader {
            inner: Arc::new(Inner {
                path,
                kind,
                file: tar.file,
                decompressed: tar.decompressed,
                members: index.len(),
                blobs: loaded.blobs,
                images: loaded.images,
                tags,
            }),
        })
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Its format.
    pub fn kind(&self) -> ArchiveKind {
        self.inner.kind
    }

    /// Whether it was gzip-compressed (and is read from a decompressed temporary copy).
    pub fn was_compressed(&self) -> bool {
        self.inner.decompressed
    }

    /// How many files and links the archive holds.
    pub fn members(&self) -> usize {
        self.inner.members
    }

    /// The images it holds, in archive order (`manifest.json`'s, `index.json`'s), each with
    /// its names.
    pub fn images(&self) -> &[ArchiveImage] {
        &self.inner.images
    }

    /// The reference that names the image when the archive holds exactly one, as
    /// `docker-archive:PATH` and `oci-archive:PATH` without a reference do: its first name,
    /// else `@0` (docker-archive) or its digest (oci-archive). `None` when it holds none or
    /// several (then a reference must be given).
    pub fn default_reference(&self) -> Option<String> {
        match self.inner.images.as_slice() {
            [one] => Some(
                one.tags
                    .first()
                    .cloned()
                    .unwrap_or_else(|| match self.inner.kind {
                        ArchiveKind::Docker => "@0".to_owned(),
                        ArchiveKind::Oci => one.descriptor.digest.to_string(),
                    }),
            ),
            _ => None,
        }
    }

    fn find(&self, digest: &Digest) -> Result<&Content> {
        self.inner
            .blobs
            .get(digest)
            .ok_or_else(|| not_found(digest))
    }

    fn content_stream(&self, c: &Content, range: Range<u64>) -> BlobStream {
        match c {
            Content::Bytes(b) => bytes_stream(b.slice(range.start as usize..range.end as usize)),
            Content::Member(d) => io::stream(
                Arc::clone(&self.inner.file),
                d.offset + range.start,
                range.end - range.start,
            ),
        }
    }

    /// The image `reference` names: a name (exact, or equal once normalised as Docker
    /// normalises names, for a docker-archive), or `@N`, the N-th image (docker-archive).
    fn image_named(&self, reference: &str) -> Option<&ArchiveImage> {
        if let Some(i) = self.inner.tags.get(reference) {
            return self.inner.images.get(*i);
        }
        if self.inner.kind != ArchiveKind::Docker {
            return None;
        }
        if let Some(n) = reference.strip_prefix('@') {
            return n
                .parse::<usize>()
                .ok()
                .and_then(|n| self.inner.images.get(n));
        }
        let want = RepoTag::parse(reference)?;
        self.inner
            .tags
            .iter()
            .find(|(t, _)| RepoTag::parse(t).as_ref() == Some(&want))
            .and_then(|(_, i)| self.inner.images.get(*i))
    }
}

#[async_trait]
impl ReadStore for ArchiveReader {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        Ok(self.inner.blobs.get(digest).map(Content::size))
    }

    async fn fetch(&self, desc: &Descriptor) -> Result<BlobStream> {
        let c = self.find(&desc.digest)?;
        check_size(desc, c.size())?;
        let s = self.content_stream(c, 0..c.size());
        Ok(Box::pin(VerifyingStream::new(
            s,
            desc.digest.clone(),
            desc.size,
        )))
    }

    async fn fetch_unverified(&self, desc: &Descriptor) -> Result<BlobStream> {
        let c = self.find(&desc.digest)?;
        check_size(desc, c.size())?;
        Ok(self.content_stream(c, 0..c.size()))
    }

    async fn fetch_range(&self, desc: &Descriptor, range: Range<u64>) -> Result<BlobStream> {
        let c = self.find(&desc.digest)?;
        let r = clamp(range, c.size());
        Ok(self.content_stream(c, r))
    }
}

#[async_trait]
impl TagStore for ArchiveReader {
    async fn resolve(&self, tag: &str) -> Result<Descriptor> {
        self.image_named(tag)
            .map(|i| i.descriptor.clone())
            .ok_or_else(|| StoreError::TagNotFound {
                tag: crate::error::cut(tag),
            })
    }

    async fn tag(&self, _desc: &Descriptor, _tag: &str) -> Result<()> {
        Err(unsupported("tag (an archive opened for reading)"))
    }

    async fn untag(&self, _tag: &str) -> Result<()> {
        Err(unsupported("untag (an archive opened for reading)"))
    }

    async fn tags(&self) -> Result<Vec<String>> {
        Ok(self.inner.tags.keys().cloned().collect())
    }
}
