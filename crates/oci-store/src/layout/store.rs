//! The store traits for `LayoutStore`: reads (verified, ranges, referrers by subject), writes
//! (push, resumable writers, ingests, delete) and tags.

use super::*;

/// Streams `len` bytes of `file`, from where it stands, in chunks of [`READ_CHUNK`].
///
/// Each chunk is read on the blocking pool straight into the buffer handed on: one copy from
/// the page cache, where `tokio::fs::File` reads into a buffer of its own and copies from it
/// again (a tenth of a push's CPU).
async fn file_stream(
    file: tokio::fs::File,
    len: u64,
) -> impl futures_core::Stream<Item = io::Result<Bytes>> + Send + Unpin {
    let file = file.into_std().await;
    Box::pin(futures_util::stream::try_unfold(
        (file, len),
        |(file, remaining)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = usize::try_from(remaining)
                .unwrap_or(READ_CHUNK)
                .min(READ_CHUNK);
            // Allocated here, not on the blocking thread: freed by the async side, a buffer
            // from a blocking thread's own malloc arena would grow that arena instead.
            let buf = Vec::with_capacity(want);
            let (file, buf) = tokio::task::spawn_blocking(move || {
                let (mut file, mut buf) = (file, buf);
                io::Read::read_to_end(&mut io::Read::take(&mut file, want as u64), &mut buf)
                    .map(|_| (file, buf))
            })
            .await
            .map_err(io::Error::other)??;
            if buf.is_empty() {
                return Ok(None);
            }
            let n = buf.len() as u64;
            Ok(Some((Bytes::from(buf), (file, remaining - n))))
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
            file_stream(file, len).await,
            desc.digest.clone(),
            desc.size,
        )))
    }

    /// The layout's own map ([`LayoutStore::piece_map`]: cached, or computed from the
    /// verified blob and cached), checked against `desc`.
    async fn trusted_piece_map(&self, desc: &Descriptor) -> Result<Option<oci_digest::PieceMap>> {
        let map = self.piece_map(&desc.digest).await?;
        check_size(desc, map.size())?;
        Ok(Some(map))
    }

    /// The layout's cached map ([`LayoutStore::cached_piece_map`]), never computed here.
    async fn cached_trusted_piece_map(
        &self,
        desc: &Descriptor,
    ) -> Result<Option<oci_digest::PieceMap>> {
        self.cached_piece_map(desc).await
    }

    async fn fetch_unverified(&self, desc: &Descriptor) -> Result<BlobStream> {
        let (file, len) = self.open_blob(desc).await?;
        Ok(Box::pin(file_stream(file, len).await))
    }

    async fn fetch_range(&self, desc: &Descriptor, range: Range<u64>) -> Result<BlobStream> {
        let path = self.blob_path(&desc.digest);
        let (mut file, len) = self.open_blob_file(&desc.digest).await?;
        let r = clamp(range, len);
        file.seek(io::SeekFrom::Start(r.start))
            .await
            .map_err(ioe("seek", &path))?;
        Ok(Box::pin(file_stream(file, r.end - r.start).await))
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

    async fn piece_writer(
        &self,
        key: &str,
        desc: &Descriptor,
        layout: oci_digest::PieceLayout,
    ) -> Result<Box<dyn crate::traits::PieceWriter>> {
        Ok(Box::new(self.open_piece_writer(key, desc, layout).await?))
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
            s.drop_piece_map(&d)?;
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
            Ok(())
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
