//! Archive stores: `docker-archive` (the `docker save` format: `manifest.json`,
//! `repositories`, configuration files and layer tars, one or many images) and `oci-archive`
//! (a tar of an OCI image layout), read without extracting and written as a stream.
//!
//! - [`ArchiveReader`] ([`ReadStore`](crate::ReadStore) + [`TagStore`](crate::TagStore)):
//!   an index of member offsets built once from the tar headers; content served by offset and
//!   verified as it streams; a gzip-compressed archive decompressed once into an anonymous
//!   temporary file. Hostile archives are refused while opening with
//!   [`StoreError::InvalidArchive`](crate::StoreError::InvalidArchive).
//! - [`ArchiveWriter`] ([`Store`](crate::Store)): what [`copy`](crate::copy()) needs to write
//!   an archive in one pass, blobs appended as they are verified, the metadata last, several
//!   images per archive; visible only once [`finish`](ArchiveWriter::finish)ed.
//! - [`ArchiveRef`]: the `docker-archive:PATH[:REFERENCE]` and `oci-archive:PATH[:TAG]`
//!   endpoints as skopeo names them.
//!
//! Files: `tar_index` (header scan), `tar_write` (headers), `io` (files, gzip, streams),
//! `reader`, `docker_read`, `oci_read`, `writer`, `append` (blobs into the tar), `ingest`
//! (resumable writers), `docker_write`, `oci_write`, `docker_ref` (image names), `compress`
//! (diff IDs), `errors`.
//!
//! ```
//! use oci_store::{ArchiveKind, ArchiveRef};
//! let r = ArchiveRef::parse("docker-archive:/tmp/app.tar:app:v1").unwrap();
//! assert_eq!(r.kind, ArchiveKind::Docker);
//! assert_eq!(r.path, std::path::Path::new("/tmp/app.tar"));
//! assert_eq!(r.reference.as_deref(), Some("app:v1"));
//! assert!(ArchiveRef::parse("docker://registry/app").is_none());
//! ```

mod append;
mod compress;
mod docker_read;
mod docker_ref;
mod docker_write;
mod errors;
mod ingest;
mod io;
mod oci_read;
mod oci_write;
mod reader;
mod tar_index;
mod tar_write;
mod writer;

use std::fmt;
use std::path::PathBuf;

use oci_manifest::Descriptor;

pub(crate) use self::compress::diff_id;
pub(crate) use self::io::Compression;
pub use self::reader::ArchiveReader;
pub use self::writer::{ArchiveSummary, ArchiveWriter};

/// The two archive formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ArchiveKind {
    /// `docker-archive`: the `docker save` format.
    Docker,
    /// `oci-archive`: a tar of an OCI image layout.
    Oci,
}

impl ArchiveKind {
    /// The transport name skopeo gives it: `docker-archive`, `oci-archive`.
    pub fn transport(self) -> &'static str {
        match self {
            ArchiveKind::Docker => "docker-archive",
            ArchiveKind::Oci => "oci-archive",
        }
    }
}

impl fmt::Display for ArchiveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.transport())
    }
}

/// An image an archive holds: its manifest's descriptor and its names (`RepoTags` of a
/// docker-archive, the `org.opencontainers.image.ref.name` of an oci-archive entry). Names
/// come from the file: escape control characters before printing them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveImage {
    /// The manifest (for a docker-archive, the Docker schema 2 manifest made from
    /// `manifest.json`).
    pub descriptor: Descriptor,
    /// Its names.
    pub tags: Vec<String>,
}

/// Options of [`ArchiveReader`] and [`ArchiveWriter`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ArchiveOptions {
    /// Members an archive may hold (files, links, directories); more is refused while
    /// opening. Default 100,000.
    pub max_members: usize,
    /// Largest metadata file read into memory: `manifest.json`, `index.json`, `oci-layout`,
    /// image configurations. Default 4 MiB (skopeo's limit for configurations).
    pub max_metadata: u64,
    /// Reading: the most a gzip-compressed archive may decompress to. Writing
    /// (docker-archive): the most a layer may decompress to. Default 64 GiB.
    pub max_decompressed: u64,
    /// Where a gzip-compressed archive is decompressed while it is read (default: the
    /// system's temporary directory).
    pub temp_dir: Option<PathBuf>,
    /// Writing: replace an archive that exists at the path (default: refuse, as skopeo does).
    pub overwrite: bool,
    /// Writing a docker-archive: store gzip layers decompressed, named by their diff IDs, as
    /// `docker save` and skopeo do (default `true`); `false` stores the compressed bytes as
    /// received (`docker load` and skopeo read both).
    pub decompress_layers: bool,
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            max_members: 100_000,
            max_metadata: 4 << 20,
            max_decompressed: 64 << 30,
            temp_dir: None,
            overwrite: false,
            decompress_layers: true,
        }
    }
}

impl ArchiveOptions {
    /// These options with the temporary directory for decompressed archives.
    pub fn with_temp_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.temp_dir = Some(dir.into());
        self
    }

    /// These options with the decompression limit replaced.
    ///
    /// ```
    /// let o = oci_store::ArchiveOptions::default().with_max_decompressed(1 << 30);
    /// assert_eq!(o.max_decompressed, 1 << 30);
    /// ```
    pub fn with_max_decompressed(mut self, limit: u64) -> Self {
        self.max_decompressed = limit;
        self
    }

    /// These options with the member limit replaced.
    pub fn with_max_members(mut self, limit: usize) -> Self {
        self.max_members = limit;
        self
    }

    /// These options replacing (or not) an existing archive when writing.
    pub fn with_overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// These options storing a docker-archive's gzip layers decompressed (or not).
    pub fn with_decompress_layers(mut self, decompress: bool) -> Self {
        self.decompress_layers = decompress;
        self
    }
}

/// An archive endpoint as skopeo writes it: `docker-archive:PATH[:REFERENCE]` (a Docker
/// reference `NAME[:TAG]`, or `@N` for the N-th image when reading) or
/// `oci-archive:PATH[:TAG]`. As in skopeo, the path ends at the first `:` after the
/// transport.
///
/// Reading: [`ArchiveReader::open`] the path, then copy `reference`, or, when there is none,
/// [`ArchiveReader::default_reference`] (the archive's only image). Writing:
/// [`ArchiveWriter::create`] the path, copy into it with `reference` as the destination tag
/// (a docker-archive image without one is written without `RepoTags` only when the copy's
/// source reference is a digest), then [`ArchiveWriter::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveRef {
    /// The format.
    pub kind: ArchiveKind,
    /// The archive file.
    pub path: PathBuf,
    /// The image within it, when given.
    pub reference: Option<String>,
}

impl ArchiveRef {
    /// Parses `docker-archive:...` or `oci-archive:...`; `None` for another transport or an
    /// empty path.
    pub fn parse(s: &str) -> Option<ArchiveRef> {
        let (kind, rest) = if let Some(r) = s.strip_prefix("docker-archive:") {
            (ArchiveKind::Docker, r)
        } else if let Some(r) = s.strip_prefix("oci-archive:") {
            (ArchiveKind::Oci, r)
        } else {
            return None;
        };
        let (path, reference) = match rest.split_once(':') {
            Some((p, r)) => (p, (!r.is_empty()).then(|| r.to_owned())),
            None => (rest, None),
        };
        if path.is_empty() {
            return None;
        }
        Some(ArchiveRef {
            kind,
            path: PathBuf::from(path),
            reference,
        })
    }
}

impl fmt::Display for ArchiveRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.path.display())?;
        if let Some(r) = &self.reference {
            write!(f, ":{r}")?;
        }
        Ok(())
    }
}
