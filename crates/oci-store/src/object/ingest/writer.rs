//! The resumable writer of a `BucketStore`: opening (resuming, taking over) an ingest, cutting
//! the received bytes into parts hashed in order, uploading a few at a time, and recording
//! each part with the hash state after it.

use super::*;

/// A part being uploaded.
pub(super) struct InFlight {
    pub(super) n: u32,
    pub(super) size: u64,
    /// The hash state after this part.
    pub(super) state: Vec<u8>,
    pub(super) handle: tokio::task::JoinHandle<object_store::Result<PartId>>,
}

/// The resumable writer of a `BucketStore` (see the module documentation).
pub(in crate::object) struct BucketWriter {
    pub(super) store: BucketStore,
    pub(super) key: String,
    pub(super) hashed: String,
    pub(super) expected: Descriptor,
    pub(super) owner: String,
    /// `writer()` ingests are recorded from the start and kept when dropped; a `push` records
    /// its ingest only once it uploads a part, and removes it when dropped.
    pub(super) durable: bool,
    pub(super) record: IngestRecord,
    /// `None` until the record is written.
    pub(super) version: Option<UpdateVersion>,
    /// Covers the bytes of the parts (recorded and in flight); `None` only while a hashing
    /// step owns it, or after it failed.
    pub(super) verifier: Option<Verifier>,
    /// Bytes after the parts, not hashed yet.
    pub(super) buf: BytesMut,
    pub(super) part_size: usize,
    pub(super) inflight: VecDeque<InFlight>,
    pub(super) offset: u64,
    pub(super) done: bool,
}

impl BucketWriter {
    /// Opens (or resumes, or takes over) the ingest `key`.
    pub(in crate::object) async fn open(
        store: &BucketStore,
        key: &str,
        desc: &Descriptor,
        durable: bool,
    ) -> Result<BucketWriter> {
        validate_ingest_key(key)?;
        let hashed = Keys::hash_key(key);
        // Hold the key in this process.
        loop {
            store.settle(&hashed).await;
            let mut map = store
                .inner
                .local
                .lock()
                .map_err(|_| StoreError::IngestBusy {
                    key: key.to_owned(),
                })?;
            let l = map.entry(hashed.clone()).or_insert_with(Local::default);
            if l.held {
                return Err(StoreError::IngestBusy {
                    key: key.to_owned(),
                });
            }
            if l.saving.is_some() {
                continue;
            }
            l.held = true;
            break;
        }
        match Self::open_held(store, key, &hashed, desc, durable).await {
            Ok(w) => Ok(w),
            Err(e) => {
                store.release_local(&hashed, None);
                Err(e)
            }
        }
    }

    pub(super) async fn open_held(
        store: &BucketStore,
        key: &str,
        hashed: &str,
        desc: &Descriptor,
        durable: bool,
    ) -> Result<BucketWriter> {
        let instance = &store.inner.backend.inner.instance;
        let owner = format!("{instance}/{}", new_id("w-"));
        let opts = &store.inner.options;
        // Parts large enough that the blob needs at most PLANNED_PARTS of them.
        let needed = desc.size.div_ceil(PLANNED_PARTS).div_ceil(1 << 20) << 20;
        if needed > MAX_TAKEN_PART {
            // A part is held in memory while it fills: refuse sizes that would need parts
            // beyond the bound (about 2.3 TB), whatever a descriptor claims.
            return Err(StoreError::backend(
                format!(
                    "{} declares {} bytes, more than an upload of {PLANNED_PARTS} parts of at \
                     most {MAX_TAKEN_PART} bytes holds",
                    desc.digest, desc.size
                ),
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            ));
        }
        let part_size = usize::try_from(needed)
            .unwrap_or(usize::MAX)
            .max(opts.part_size);
        let fresh = |owner: &str| IngestRecord {
            key: key.to_owned(),
            expected: desc.clone(),
            started_ms: 0,
            owner: Some(owner.to_owned()),
            lock_ttl_ms: u64::try_from(opts.ingest_lock_ttl.as_millis()).unwrap_or(u64::MAX),
            upload: None,
            parts: Vec::new(),
            next_part: 0,
            part_size: part_size as u64,
            state: None,
            tail: None,
        };
        let mut w = BucketWriter {
            store: store.clone(),
            key: key.to_owned(),
            hashed: hashed.to_owned(),
            expected: desc.clone(),
            owner: owner.clone(),
            durable,
            record: fresh(&owner),
            version: None,
            verifier: Some(Verifier::new(desc.digest.clone(), desc.size)),
            buf: BytesMut::new(),
            part_size,
            inflight: VecDeque::new(),
            offset: 0,
            done: false,
        };
        if !durable {
            w.record.started_ms = to_millis(store.now().await?.at);
            return Ok(w);
        }
        for _ in 0..100 {
            match store.read_ingest(hashed).await? {
                None => {
                    w.record = fresh(&owner);
                    w.record.started_ms = to_millis(store.now().await?.at);
                    match store.write_record(hashed, &w.record, None).await {
                        Ok(v) => {
                            w.version = Some(v);
                            return Ok(w);
                        }
                        Err(e) if is_exists(&e) || is_precondition(&e) => continue,
                        Err(e) => return Err(backend_err(format!("create ingest {key:?}"), e)),
                    }
                }
                Some((mut r, meta)) => {
                    if r.expected.digest != desc.digest || r.expected.size != desc.size {
                        return Err(StoreError::IngestMismatch {
                            key: key.to_owned(),
                            existing: r.expected.digest,
                            requested: desc.digest.clone(),
                        });
                    }
                    if let Some(o) = &r.owner
                        && !o.starts_with(&format!("{instance}/"))
                        && store.held_elsewhere(&r, &meta).await?
                    {
                        return Err(StoreError::IngestBusy {
                            key: key.to_owned(),
                        });
                    }
                    // Parts not recorded are uploaded again, with the same numbers and bounds.
                    r.next_part = u32::try_from(r.parts.len()).unwrap_or(u32::MAX);
                    let largest = (w.part_size as u64).max(MAX_TAKEN_PART);
                    if (MIN_PART_SIZE..=largest).contains(&r.part_size) {
                        w.part_size = usize::try_from(r.part_size).unwrap_or(w.part_size);
                    } else {
                        // Not a size this writer can hold in memory (or none): start again.
                        store.remove_upload(hashed, &r).await;
                        r.upload = None;
                        r.parts.clear();
                        r.state = None;
                        r.tail = None;
                        r.next_part = 0;
                        r.part_size = w.part_size as u64;
                    }
                    r.owner = Some(owner.clone());
                    r.lock_ttl_ms = fresh(&owner).lock_ttl_ms;
                    let version = UpdateVersion {
                        e_tag: meta.e_tag.clone(),
                        version: meta.version.clone(),
                    };
                    match store.write_record(hashed, &r, Some(version)).await {
                        Ok(v) => {
                            w.version = Some(v);
                            w.record = r;
                            w.resume().await?;
                            return Ok(w);
                        }
                        Err(e) if is_precondition(&e) || is_not_found(&e) => continue,
                        Err(e) => return Err(backend_err(format!("take ingest {key:?}"), e)),
                    }
                }
            }
        }
        Err(StoreError::IngestBusy {
            key: key.to_owned(),
        })
    }

    /// Restores the hash state after the recorded parts and reads the tail back.
    pub(super) async fn resume(&mut self) -> Result<()> {
        let r = &self.record;
        let parts = r.parts_size();
        let restored = match &r.state {
            Some(raw) => Digester::restore(raw)
                .ok()
                .and_then(|d| {
                    Verifier::resume(self.expected.digest.clone(), self.expected.size, d).ok()
                })
                .filter(|v| v.received() == parts),
            None if r.parts.is_empty() => Some(Verifier::new(
                self.expected.digest.clone(),
                self.expected.size,
            )),
            None => None,
        };
        // A record names its upload's target: it must be the one this store would choose (a
        // record written by a hostile hand could otherwise make a completion land elsewhere).
        let own_target = self.target().to_string();
        let target_ok = r.upload.as_ref().is_none_or(|u| u.target == own_target);
        let fits = r.next_part < MAX_PARTS && target_ok && r.key == self.key;
        let Some(verifier) = restored.filter(|_| fits) else {
            // The record cannot be continued: start the ingest again.
            tracing::warn!(key = %self.key, "ingest record unusable; starting again");
            let old = self.record.clone();
            self.store.remove_upload(&self.hashed, &old).await;
            self.record.key = self.key.clone();
            self.record.upload = None;
            self.record.parts.clear();
            self.record.next_part = 0;
            self.record.state = None;
            self.record.tail = None;
            self.save_record().await?;
            self.verifier = Some(Verifier::new(
                self.expected.digest.clone(),
                self.expected.size,
            ));
            self.offset = 0;
            return Ok(());
        };
        self.verifier = Some(verifier);
        self.offset = parts;
        if let Some(t) = self.record.tail.clone() {
            let key = self.store.keys().ingest(&self.hashed, "tail");
            let limit = self.part_size as u64 * 4;
            let tail = self.store.read_limited(&key, "ingest tail", limit).await?;
            match tail {
                Some((raw, meta)) if raw.len() as u64 == t.size && meta.e_tag == t.etag => {
                    self.write(raw).await?;
                }
                _ => {
                    tracing::debug!(key = %self.key, "ingest tail missing or changed; resuming after the parts");
                    self.record.tail = None;
                    self.save_record().await?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn broken(&self) -> StoreError {
        StoreError::backend(
            format!(
                "ingest {:?} failed earlier; open it again to resume",
                self.key
            ),
            std::io::Error::other("writer unusable"),
        )
    }

    /// Where the upload completes to.
    pub(super) fn target(&self) -> Path {
        match self.store.inner.backend.inner.commit {
            Commit::CompleteInPlace => self.store.keys().blob(&self.expected.digest),
            Commit::CopyIntoPlace => self.store.keys().ingest(&self.hashed, "data"),
        }
    }

    /// Writes the record by compare-and-swap (create-only the first time): a writer whose
    /// ingest was taken over (or removed) learns it here and stops.
    pub(super) async fn save_record(&mut self) -> Result<()> {
        match self
            .store
            .write_record(&self.hashed, &self.record, self.version.clone())
            .await
        {
            Ok(v) => {
                self.version = Some(v);
                Ok(())
            }
            Err(e) if is_precondition(&e) || is_exists(&e) || is_not_found(&e) => {
                self.done = true;
                Err(StoreError::IngestBusy {
                    key: self.key.clone(),
                })
            }
            Err(e) => Err(backend_err(format!("record ingest {:?}", self.key), e)),
        }
    }

    /// Hashes the buffered bytes as the next part and starts its upload.
    pub(super) async fn cut_part(&mut self) -> Result<()> {
        let data = self.buf.split().freeze();
        let mut verifier = self.verifier.take().ok_or_else(|| self.broken())?;
        let hashed_data = data.clone();
        let (verifier, res) = tokio::task::spawn_blocking(move || {
            let res = verifier.update(&hashed_data);
            (verifier, res)
        })
        .await
        .map_err(|e| StoreError::backend("hash a part", e))?;
        res?;
        let state = verifier.digester().save_state();
        self.verifier = Some(verifier);
        if self.record.upload.is_none() {
            let target = self.target();
            let id = self
                .store
                .multipart()
                .create_multipart(&target)
                .await
                .map_err(|e| {
                    backend_err(format!("start the upload of {}", self.expected.digest), e)
                })?;
            self.record.upload = Some(Upload {
                id,
                target: target.to_string(),
            });
            self.save_record().await?;
        }
        let Some(upload) = self.record.upload.clone() else {
            return Err(self.broken());
        };
        let n = self.record.next_part;
        if n >= MAX_PARTS {
            return Err(StoreError::backend(
                format!("ingest {:?} ran out of part numbers", self.key),
                std::io::Error::other("too many parts"),
            ));
        }
        self.record.next_part += 1;
        self.start_part(&upload, n, data, state).await?;
        while self.inflight.len() > self.store.inner.options.upload_concurrency {
            self.finish_oldest().await?;
        }
        Ok(())
    }

    /// Starts the upload of part `n` (hash state `state` after it) once the store's budget of
    /// bytes in flight has room for it; the room is given back when the upload ends.
    pub(super) async fn start_part(
        &mut self,
        upload: &Upload,
        n: u32,
        data: Bytes,
        state: Vec<u8>,
    ) -> Result<()> {
        let size = data.len() as u64;
        let budget = &self.store.inner.parts;
        // One part may always go, however large: it asks for the whole budget at most.
        let wanted = data.len().clamp(1, self.store.inner.options.upload_memory);
        let wanted = u32::try_from(wanted).unwrap_or(u32::MAX);
        let permit = match budget.clone().try_acquire_many_owned(wanted) {
            Ok(p) => p,
            Err(_) => {
                tracing::trace!(key = %self.key, part = n, "waiting for room among the parts in flight");
                budget
                    .clone()
                    .acquire_many_owned(wanted)
                    .await
                    .map_err(|e| StoreError::backend("wait for room for a part", e))?
            }
        };
        let mp = self.store.multipart().clone();
        let target = Path::from(upload.target.as_str());
        let id = upload.id.clone();
        let handle = tokio::spawn(async move {
            let res = mp
                .put_part(&target, &id, n as usize, PutPayload::from_bytes(data))
                .await;
            drop(permit);
            res
        });
        self.inflight.push_back(InFlight {
            n,
            size,
            state,
            handle,
        });
        Ok(())
    }

    /// Waits for the oldest part in flight and records it.
    pub(super) async fn finish_oldest(&mut self) -> Result<()> {
        let Some(f) = self.inflight.front_mut() else {
            return Ok(());
        };
        let res = (&mut f.handle).await;
        let Some(f) = self.inflight.pop_front() else {
            return Ok(());
        };
        let part = match res {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                self.verifier = None; // the hash state covers a part that is not uploaded
                return Err(backend_err(
                    format!("upload part {} of {}", f.n, self.expected.digest),
                    e,
                ));
            }
            Err(e) => {
                self.verifier = None;
                return Err(StoreError::backend("upload a part", e));
            }
        };
        self.record.parts.push(Part {
            n: f.n,
            etag: part.content_id,
            size: f.size,
        });
        self.record.state = Some(f.state);
        self.record.tail = None;
        self.save_record().await
    }

    pub(super) async fn finish_all(&mut self) -> Result<()> {
        while !self.inflight.is_empty() {
            self.finish_oldest().await?;
        }
        Ok(())
    }
}
