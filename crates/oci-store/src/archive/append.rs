//! Appending verified content to the tar of an [`ArchiveWriter`]: receiving a stream into
//! memory or a spool file (verified as it arrives), the member's name, the append itself
//! (header, data copied in the kernel from the spool, padding; a docker-archive's gzip layer
//! decompressed on the way and named by its diff ID), cut back on failure.

use std::fs::File;
use std::io::{self as stdio, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use oci_digest::{Digester, Verifier};
use oci_manifest::{Descriptor, Manifest};
use tar::EntryType;

use super::errors::unsupported;
use super::io::{self, CHUNK, Compression, blocking, read_at, write_at};
use super::tar_index::BLOCK;
use super::tar_write::{header_bytes, padding};
use super::writer::{ArchiveWriter, Inner, Pushed, State, Stored};
use super::{ArchiveKind, docker_write};
use crate::error::{Result, StoreError};
use crate::traits::{BlobStream, PushOutcome};

/// Content received in memory rather than spooled, at most.
pub(super) const IN_MEMORY: u64 = 1 << 20;

impl ArchiveWriter {
    /// The name a blob gets in the tar.
    fn member_name(&self, desc: &Descriptor, st: &mut State) -> Result<String> {
        let d = &desc.digest;
        Ok(match self.inner.kind {
            ArchiveKind::Oci => {
                let alg = d.algorithm().to_string();
                let dir = format!("blobs/{alg}/");
                if !st.names.contains(&dir) {
                    write_member_locked(&self.inner, st, &dir, b"", EntryType::Directory, None)?;
                }
                format!("blobs/{alg}/{}", d.encoded())
            }
            ArchiveKind::Docker if docker_write::is_config(desc) => {
                format!("{}.json", d.encoded())
            }
            ArchiveKind::Docker => format!("{}.tar", d.encoded()),
        })
    }

    /// Makes verified content visible: appended to the tar (a docker-archive's gzip layer
    /// decompressed), or kept in memory (a docker-archive's manifest).
    pub(super) async fn store(&self, desc: &Descriptor, data: Source) -> Result<PushOutcome> {
        if self.state().blobs.contains_key(&desc.digest) {
            return Ok(PushOutcome::AlreadyExists);
        }
        let is_manifest = desc.is_manifest();
        if is_manifest {
            let raw = match &data {
                Source::Bytes(b) => b.clone(),
                Source::Spool(p) => {
                    let p = p.clone();
                    let limit = oci_manifest::DEFAULT_MAX_MANIFEST_SIZE as u64;
                    blocking(move || read_file_limited(&p, limit)).await?
                }
            };
            {
                let manifest =
                    Manifest::parse_verified(raw.clone(), None, desc, &Default::default())
                        .map_err(|source| StoreError::InvalidManifest {
                            digest: desc.digest.clone(),
                            source,
                        })?;
                if self.inner.kind == ArchiveKind::Docker {
                    docker_write::check_manifest(self, desc, &manifest).await?;
                    let mut st = self.state();
                    st.blobs.insert(desc.digest.clone(), Stored::Memory(raw));
                    st.pushed.push(Pushed {
                        desc: desc.clone(),
                        manifest,
                    });
                    return Ok(PushOutcome::Written);
                }
                let _g = self.inner.append.lock().await;
                let this = self.clone();
                let d = desc.clone();
                blocking(move || this.append_blocking(&d, Source::Bytes(raw))).await?;
                self.state().pushed.push(Pushed {
                    desc: desc.clone(),
                    manifest,
                });
                return Ok(PushOutcome::Written);
            }
        }
        let _g = self.inner.append.lock().await;
        let this = self.clone();
        let d = desc.clone();
        blocking(move || this.append_blocking(&d, data)).await?;
        Ok(PushOutcome::Written)
    }

    /// Appends verified content `data` for `desc` at the end of the tar (the append lock is
    /// held, so nothing else moves the end meanwhile; the state lock is taken only briefly).
    /// On failure the tar is cut back to where it was.
    fn append_blocking(&self, desc: &Descriptor, data: Source) -> Result<()> {
        let inner = &self.inner;
        let (name, start) = {
            let mut st = self.state();
            if st.finished {
                return Err(unsupported("writing to an archive already finished"));
            }
            if st.blobs.contains_key(&desc.digest) {
                return Ok(());
            }
            let name = self.member_name(desc, &mut st)?;
            (name, st.end)
        };
        let head = data.head()?;
        let compression = Compression::sniff(&head);
        let decompress = inner.kind == ArchiveKind::Docker
            && inner.options.decompress_layers
            && compression == Compression::Gzip
            && !docker_write::is_config(desc);
        let result = if decompress {
            self.append_decompressed(desc, &data, start)
        } else {
            append_raw(inner, &name, &data, desc, start).map(|(offset, end)| {
                let stored = Stored::Member {
                    name: name.clone(),
                    offset,
                    size: desc.size,
                    uncompressed: compression == Compression::None,
                };
                (stored, Some((name.clone(), end)))
            })
        };
        match result {
            Ok((stored, member)) => {
                let mut st = self.state();
                if let Some((name, end)) = member {
                    st.end = end;
                    st.names.insert(name);
                }
                st.blobs.insert(desc.digest.clone(), stored);
                Ok(())
            }
            Err(e) => {
                let _ = inner.file.set_len(start);
                Err(e)
            }
        }
    }

    /// A gzip layer, decompressed into the tar as `<diff ID hex>.tar` at `start`; returns
    /// what is stored and the member written with the new end (none when another blob
    /// already decompressed to the same layer).
    fn append_decompressed(
        &self,
        desc: &Descriptor,
        data: &Source,
        start: u64,
    ) -> Result<(Stored, Option<(String, u64)>)> {
        let inner = &self.inner;
        let path = &inner.tar_path;
        let ioe = |e| StoreError::io("write", path, e);
        let data_off = start + BLOCK;
        let mut out = inner.file.try_clone().map_err(ioe)?;
        out.seek(SeekFrom::Start(data_off)).map_err(ioe)?;
        let limit = inner.options.max_decompressed;
        let mut hashing = HashingWriter {
            inner: stdio::BufWriter::with_capacity(CHUNK, out),
            digester: Digester::new(oci_digest::Algorithm::Sha256),
            written: 0,
            limit,
        };
        let reader: Box<dyn stdio::Read> = match data {
            Source::Bytes(b) => Box::new(stdio::Cursor::new(b.clone())),
            Source::Spool(p) => Box::new(File::open(p).map_err(|e| StoreError::io("open", p, e))?),
        };
        let mut dec =
            flate2::read::MultiGzDecoder::new(stdio::BufReader::with_capacity(CHUNK, reader));
        match stdio::copy(&mut dec, &mut hashing) {
            Ok(_) => {}
            Err(e) if e.kind() == stdio::ErrorKind::FileTooLarge => {
                return Err(StoreError::FileTooLarge {
                    path: inner.dest.clone(),
                    limit,
                });
            }
            Err(e)
                if matches!(
                    e.kind(),
                    stdio::ErrorKind::InvalidInput
                        | stdio::ErrorKind::InvalidData
                        | stdio::ErrorKind::UnexpectedEof
                ) =>
            {
                return Err(StoreError::Source {
                    digest: desc.digest.clone(),
                    source: stdio::Error::new(
                        stdio::ErrorKind::InvalidData,
                        format!("the layer's gzip stream does not decompress: {e}"),
                    ),
                });
            }
            Err(e) => return Err(ioe(e)),
        }
        hashing.inner.flush().map_err(ioe)?;
        let n = hashing.written;
        let diff_id = hashing.digester.finalize();
        let name = format!("{}.tar", diff_id.encoded());
        let stored = Stored::Decompressed {
            name: name.clone(),
            size: desc.size,
            diff_id,
        };
        if self.state().names.contains(&name) {
            // Another blob decompressed to the same layer: keep that one.
            inner.file.set_len(start).map_err(ioe)?;
            return Ok((stored, None));
        }
        let header = header_bytes(&name, n, EntryType::Regular, None);
        if header.len() as u64 != BLOCK {
            return Err(unsupported("a layer member name longer than 100 bytes"));
        }
        write_at(&inner.file, &header, start).map_err(ioe)?;
        let pad = vec![0u8; padding(n)];
        write_at(&inner.file, &pad, data_off + n).map_err(ioe)?;
        Ok((stored, Some((name, data_off + n + pad.len() as u64))))
    }

    /// Receives `stream` for `desc` (verified) into memory or a spool file.
    pub(super) async fn receive(
        &self,
        desc: &Descriptor,
        mut stream: BlobStream,
    ) -> Result<Source> {
        let mut verifier = Verifier::new(desc.digest.clone(), desc.size);
        let source = |e| StoreError::Source {
            digest: desc.digest.clone(),
            source: e,
        };
        if desc.size <= IN_MEMORY {
            let mut buf = BytesMut::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(source)?;
                verifier.update(&chunk)?;
                buf.extend_from_slice(&chunk);
            }
            verifier.finish()?;
            return Ok(Source::Bytes(buf.freeze()));
        }
        let work = self.inner.work.clone();
        let (file, spool) = blocking(move || io::create_temp(&work, "push")).await?;
        let mut file = Some(file);
        let result: Result<()> = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(source)?;
                verifier.update(&chunk)?;
                let mut f = file
                    .take()
                    .ok_or_else(|| unsupported("a spool file lost mid-write"))?;
                let p = spool.clone();
                f = blocking(move || {
                    f.write_all(&chunk)
                        .map_err(|e| StoreError::io("write", &p, e))?;
                    Ok(f)
                })
                .await?;
                file = Some(f);
            }
            verifier.finish()?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = std::fs::remove_file(&spool);
            return Err(e);
        }
        Ok(Source::Spool(spool))
    }
}

/// Content to append: in memory or in a spool file, verified.
pub(super) enum Source {
    Bytes(Bytes),
    Spool(PathBuf),
}

impl Source {
    /// The first bytes (to tell compression).
    pub(super) fn head(&self) -> Result<Vec<u8>> {
        match self {
            Source::Bytes(b) => Ok(b[..b.len().min(6)].to_vec()),
            Source::Spool(p) => {
                let f = File::open(p).map_err(|e| StoreError::io("open", p, e))?;
                let len = f
                    .metadata()
                    .map_err(|e| StoreError::io("stat", p, e))?
                    .len();
                let mut head = vec![0u8; usize::try_from(len.min(6)).unwrap_or(6)];
                read_at(&f, &mut head, 0).map_err(|e| StoreError::io("read", p, e))?;
                Ok(head)
            }
        }
    }
}

/// Appends member `name` holding `data` (the content of `desc`) at `start`; returns its data
/// offset and the new end of the tar.
fn append_raw(
    inner: &Inner,
    name: &str,
    data: &Source,
    desc: &Descriptor,
    start: u64,
) -> Result<(u64, u64)> {
    let path = &inner.tar_path;
    let ioe = |e| StoreError::io("write", path, e);
    let size = desc.size;
    let header = header_bytes(name, size, EntryType::Regular, None);
    write_at(&inner.file, &header, start).map_err(ioe)?;
    let data_off = start + header.len() as u64;
    match data {
        Source::Bytes(b) => write_at(&inner.file, b, data_off).map_err(ioe)?,
        Source::Spool(p) => {
            let mut src = File::open(p).map_err(|e| StoreError::io("open", p, e))?;
            let mut out = inner.file.try_clone().map_err(ioe)?;
            out.seek(SeekFrom::Start(data_off)).map_err(ioe)?;
            // File to file: copy_file_range on Linux, in the kernel.
            let n = stdio::copy(&mut src, &mut out).map_err(ioe)?;
            if n != size {
                return Err(StoreError::SizeMismatch {
                    digest: desc.digest.clone(),
                    expected: size,
                    actual: n,
                });
            }
        }
    }
    let pad = vec![0u8; padding(size)];
    write_at(&inner.file, &pad, data_off + size).map_err(ioe)?;
    Ok((data_off, data_off + size + pad.len() as u64))
}

/// Writes a member from bytes at the end of the tar.
pub(super) fn write_member_locked(
    inner: &Inner,
    st: &mut State,
    name: &str,
    data: &[u8],
    ty: EntryType,
    link: Option<&str>,
) -> Result<()> {
    let path = &inner.tar_path;
    let ioe = |e| StoreError::io("write", path, e);
    let start = st.end;
    let mut bytes = header_bytes(name, data.len() as u64, ty, link);
    bytes.extend_from_slice(data);
    bytes.resize(bytes.len() + padding(data.len() as u64), 0);
    write_at(&inner.file, &bytes, start).map_err(ioe)?;
    st.end = start + bytes.len() as u64;
    st.names.insert(name.to_owned());
    Ok(())
}

pub(super) fn read_file_limited(p: &Path, limit: u64) -> Result<Bytes> {
    use std::io::Read;
    let f = File::open(p).map_err(|e| StoreError::io("open", p, e))?;
    let mut buf = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| StoreError::io("read", p, e))?;
    if buf.len() as u64 > limit {
        return Err(StoreError::FileTooLarge {
            path: p.to_path_buf(),
            limit,
        });
    }
    Ok(Bytes::from(buf))
}

/// A writer that hashes what it writes and refuses more than `limit` bytes.
struct HashingWriter<W> {
    inner: W,
    digester: Digester,
    written: u64,
    limit: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> stdio::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            return Err(stdio::Error::from(stdio::ErrorKind::FileTooLarge));
        }
        let n = self.inner.write(buf)?;
        self.digester.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> stdio::Result<()> {
        self.inner.flush()
    }
}
