//! Ingests of a `LayoutStore`: their directories and records (`.oci-rs/ingests/<sha256 of key>/`),
//! opening a resumable writer, and the commit that makes a verified file visible as a blob.

use std::fs::File;

use super::*;

/// An ingest directory and its record (`None` when it has none that can be read).
pub(super) type Ingest = (PathBuf, Option<IngestStatus>);

/// Record of an ingest, `meta.json` in its directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct IngestMeta {
    pub(super) key: String,
    pub(super) expected: Descriptor,
    pub(super) started_ms: u64,
}

impl LayoutStore {
    pub(super) fn read_ingest(dir: &Path) -> Result<Option<IngestStatus>> {
        let meta_path = dir.join("meta.json");
        let Some(raw) = read_limited(&meta_path, RECORD_LIMIT)? else {
            return Ok(None);
        };
        let Ok(meta) = serde_json::from_slice::<IngestMeta>(&raw) else {
            return Ok(None);
        };
        let data = dir.join("data");
        let recorded = pieces::recorded_prefix(dir, meta.expected.size)?;
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
            // Written in pieces: the held prefix is where a writer in order would go on.
            offset: recorded.unwrap_or(offset),
            started_at: from_millis(meta.started_ms),
            updated_at: updated,
        }))
    }

    /// The ingest directories with their records, and the entries of `ingests/` that are not
    /// directories (skipped).
    pub(super) fn list_ingests(&self) -> Result<(Vec<Ingest>, Vec<Skipped>)> {
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

    pub(super) fn commit_locked(&self, data: &Path, digest: &Digest) -> Result<PushOutcome> {
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
}

impl LayoutStore {
    pub(super) async fn open_writer(
        &self,
        key: &str,
        desc: &Descriptor,
        durable: bool,
    ) -> Result<LayoutWriter> {
        let (s, key, desc) = self.ingest_args(key, desc)?;
        blocking(move || {
            let (dir, lock) = s.prepare_ingest(&key, &desc, durable)?;
            LayoutWriter::open(s, key, desc, dir, lock)
        })
        .await
    }

    pub(super) async fn open_piece_writer(
        &self,
        key: &str,
        desc: &Descriptor,
        layout: oci_digest::PieceLayout,
    ) -> Result<LayoutPieceWriter> {
        let (s, key, desc) = self.ingest_args(key, desc)?;
        blocking(move || {
            let (dir, lock) = s.prepare_ingest(&key, &desc, true)?;
            LayoutPieceWriter::open(s, key, desc, layout, dir, lock)
        })
        .await
    }

    /// Checks that an ingest may be opened, and owns its arguments for a blocking step.
    fn ingest_args(
        &self,
        key: &str,
        desc: &Descriptor,
    ) -> Result<(LayoutStore, String, Descriptor)> {
        self.writable("write a blob")?;
        validate_ingest_key(key)?;
        Ok((self.clone(), key.to_owned(), desc.clone()))
    }

    /// Creates (or finds) the ingest directory of `key`, takes its lock and writes (or checks)
    /// its record; in a blocking context.
    fn prepare_ingest(
        &self,
        key: &str,
        desc: &Descriptor,
        durable: bool,
    ) -> Result<(PathBuf, File)> {
        let s = self;
        let dir = s.ingest_dir(key);
        let _g = s.lock(false)?;
        let own = [STATE_DIR, "ingests", &dir_name(&dir)];
        check_dirs(&s.inner.root, &own)?;
        mkdirs(&dir)?;
        check_dirs(&s.inner.root, &own)?;
        let Some(lock) = try_lock(&dir.join("lock"), false)? else {
            return Err(StoreError::IngestBusy {
                key: key.to_owned(),
            });
        };
        let meta_path = dir.join("meta.json");
        match read_limited(&meta_path, RECORD_LIMIT)?
            .and_then(|raw| serde_json::from_slice::<IngestMeta>(&raw).ok())
        {
            Some(m) if m.expected.digest != desc.digest || m.expected.size != desc.size => {
                return Err(StoreError::IngestMismatch {
                    key: key.to_owned(),
                    existing: m.expected.digest,
                    requested: desc.digest.clone(),
                });
            }
            Some(_) => {}
            None => {
                let meta = IngestMeta {
                    key: key.to_owned(),
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
                            StoreError::io("create", &meta_path, io::ErrorKind::NotFound.into())
                        })?
                        .write_all(&raw)
                        .map_err(ioe("write", &meta_path))?;
                }
            }
        }
        Ok((dir, lock))
    }
}
