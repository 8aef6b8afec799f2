//! The end of a `BucketStore` writer: the last part, the check of the whole content, the
//! create-only publication (with the tombstone check when the content was there already), and
//! what a dropped writer saves (the parts in flight and the tail) so that another resumes.

use super::*;

impl BucketWriter {
    /// Hashes what is buffered and checks the whole content.
    pub(super) async fn verify_all(&mut self) -> Result<()> {
        let mut verifier = self.verifier.take().ok_or_else(|| self.broken())?;
        let data = self.buf.clone().freeze();
        let (verifier, res) = tokio::task::spawn_blocking(move || {
            let res = verifier
                .update(&data)
                .and_then(|()| verifier.finish().map(|_| ()));
            (verifier, res)
        })
        .await
        .map_err(|e| StoreError::backend("hash a part", e))?;
        self.verifier = Some(verifier);
        res.map_err(StoreError::Verify)
    }

    /// Makes the verified content visible, create-only.
    pub(super) async fn publish(&mut self) -> Result<PushOutcome> {
        let d = self.expected.digest.clone();
        let blob = self.store.keys().blob(&d);
        for _ in 0..20 {
            let attempt = match &self.record.upload {
                None => put(
                    self.store.store(),
                    &blob,
                    self.buf.clone().freeze(),
                    PutMode::Create,
                )
                .await
                .map(|_| ()),
                Some(u) => {
                    let target = Path::from(u.target.as_str());
                    let parts: Vec<PartId> = self
                        .record
                        .parts
                        .iter()
                        .map(|p| PartId {
                            content_id: p.etag.clone(),
                        })
                        .collect();
                    match self.store.inner.backend.inner.commit {
                        Commit::CompleteInPlace => self
                            .store
                            .multipart()
                            .complete_multipart(&target, &u.id, parts)
                            .await
                            .map(|_| ()),
                        Commit::CopyIntoPlace => {
                            let completed = if self.store.store().head(&target).await.is_ok() {
                                Ok(())
                            } else {
                                self.store
                                    .multipart()
                                    .complete_multipart(&target, &u.id, parts)
                                    .await
                                    .map(|_| ())
                            };
                            match completed {
                                Ok(()) => {
                                    self.store
                                        .store()
                                        .copy_opts(
                                            &target,
                                            &blob,
                                            CopyOptions {
                                                mode: CopyMode::Create,
                                                ..CopyOptions::default()
                                            },
                                        )
                                        .await
                                }
                                Err(e) => Err(e),
                            }
                        }
                    }
                }
            };
            match attempt {
                Ok(()) => {
                    // The server's own account of what it stored.
                    let size = self.store.head_size(&d).await?;
                    if size != Some(self.expected.size) {
                        let _ = self.store.store().delete(&blob).await;
                        return Err(StoreError::backend(
                            format!(
                                "{} stored {size:?} bytes for {d}, not {}",
                                self.store.inner.backend, self.expected.size
                            ),
                            std::io::Error::from(std::io::ErrorKind::InvalidData),
                        ));
                    }
                    return Ok(PushOutcome::Written);
                }
                Err(e) if is_exists(&e) || is_precondition(&e) => {
                    // Stored by someone else: rely on it only if no collection is removing it.
                    if self.store.confirm_exists(&d).await?.is_some() {
                        return Ok(PushOutcome::AlreadyExists);
                    }
                }
                Err(e) => return Err(backend_err(format!("make {d} visible"), e)),
            }
        }
        Err(StoreError::backend(
            format!("make {d} visible: it kept being removed and stored again"),
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        ))
    }

    /// Removes everything of the ingest (after a commit or an abort).
    pub(super) async fn cleanup(&mut self) -> Result<()> {
        for f in self.inflight.drain(..) {
            f.handle.abort();
        }
        if self.version.is_some() || self.record.upload.is_some() {
            let record = self.record.clone();
            self.store.remove_ingest(&self.hashed, &record).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl BlobWriter for BucketWriter {
    fn key(&self) -> &str {
        &self.key
    }

    fn expected(&self) -> &Descriptor {
        &self.expected
    }

    fn offset(&self) -> u64 {
        self.offset
    }

    async fn write(&mut self, mut chunk: Bytes) -> Result<()> {
        if self.done || self.verifier.is_none() {
            return Err(self.broken());
        }
        let end = self.offset + chunk.len() as u64;
        if end > self.expected.size {
            return Err(StoreError::Verify(VerifyError::TooLong {
                expected: self.expected.digest.clone(),
                expected_size: self.expected.size,
                received: end,
            }));
        }
        while !chunk.is_empty() {
            if self.buf.capacity() == 0 {
                // The part's buffer at its final size at once: no doubling, no copies.
                let left = self.expected.size.saturating_sub(self.offset);
                self.buf.reserve(
                    usize::try_from(left).map_or(self.part_size, |l| l.min(self.part_size)),
                );
            }
            let room = self.part_size - self.buf.len();
            let take = room.min(chunk.len());
            self.buf.extend_from_slice(&chunk.split_to(take));
            self.offset += take as u64;
            // A full part is cut when more content follows; the last bytes wait for commit.
            if self.buf.len() == self.part_size && self.offset < self.expected.size {
                self.cut_part().await?;
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<PushOutcome> {
        if self.done || self.verifier.is_none() {
            return Err(self.broken());
        }
        let res = async {
            if self.record.upload.is_some() {
                self.verify_all().await?;
                if !self.buf.is_empty() {
                    // Already hashed by verify_all: upload it as the last part.
                    let data = self.buf.split().freeze();
                    let Some(upload) = self.record.upload.clone() else {
                        return Err(self.broken());
                    };
                    let n = self.record.next_part;
                    self.record.next_part += 1;
                    let state = self
                        .verifier
                        .as_ref()
                        .map(|v| v.digester().save_state())
                        .unwrap_or_default();
                    self.start_part(&upload, n, data, state).await?;
                }
                self.finish_all().await?;
            } else {
                self.verify_all().await?;
            }
            if self.store.lease.is_some() {
                self.store.pin(&self.expected.digest).await?;
            }
            self.publish().await
        }
        .await;
        self.done = true;
        let cleaned = self.cleanup().await;
        self.store.release_local(&self.hashed, None);
        let outcome = res?;
        cleaned?;
        tracing::debug!(digest = %self.expected.digest, %outcome, "committed");
        Ok(outcome)
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.done = true;
        let res = self.cleanup().await;
        self.store.release_local(&self.hashed, None);
        res
    }
}

impl Drop for BucketWriter {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // No runtime to save the bytes with: a later writer resumes from the recorded
            // parts (this process's owner mark does not stop it).
            self.store.release_local(&self.hashed, None);
            return;
        };
        let mut w = BucketWriter {
            store: self.store.clone(),
            key: std::mem::take(&mut self.key),
            hashed: self.hashed.clone(),
            expected: self.expected.clone(),
            owner: std::mem::take(&mut self.owner),
            durable: self.durable,
            record: self.record.clone(),
            version: self.version.take(),
            verifier: self.verifier.take(),
            buf: std::mem::take(&mut self.buf),
            part_size: self.part_size,
            inflight: std::mem::take(&mut self.inflight),
            offset: self.offset,
            done: true,
        };
        let hashed = self.hashed.clone();
        let store = self.store.clone();
        let save = async move {
            let res = if w.durable {
                w.save().await
            } else {
                w.cleanup().await
            };
            if let Err(e) = res {
                tracing::debug!(key = %w.key, error = %e, "saving a dropped writer's ingest failed; it resumes from its recorded parts");
            }
            if let Ok(mut map) = w.store.inner.local.lock() {
                map.remove(&w.hashed);
            }
        }
        .boxed()
        .shared();
        store.release_local(&hashed, Some(save.clone()));
        handle.spawn(save);
    }
}

impl BucketWriter {
    /// Records the parts in flight and the tail, and gives the ingest up (for a dropped writer).
    pub(super) async fn save(&mut self) -> Result<()> {
        if self.verifier.is_some() {
            self.finish_all().await?;
        } else {
            for f in self.inflight.drain(..) {
                f.handle.abort();
            }
        }
        let tail = self.buf.split().freeze();
        if !tail.is_empty() && self.verifier.is_some() {
            let key = self.store.keys().ingest(&self.hashed, "tail");
            let size = tail.len() as u64;
            let put = put(self.store.store(), &key, tail, PutMode::Overwrite)
                .await
                .map_err(|e| backend_err(format!("save the tail of ingest {:?}", self.key), e))?;
            self.record.tail = Some(Tail {
                size,
                etag: put.e_tag,
            });
        }
        self.record.owner = None;
        self.save_record().await
    }
}
