//! A collection: the marker, the first reading and mark, tombstones, the second reading, the
//! sweep within the collection's window, and the removal of what expired or died.

use super::*;

/// Keys removed by one batched request. S3 takes up to 1,000, but a server that removes them
/// one by one behind the request (SeaweedFS) may then not answer within the client's timeout
/// (30 s) when several such requests run at once: 20 of 1,000 did not, on the benchmark's
/// bucket.
const DELETE_BATCH: usize = 250;

/// Batched delete requests in flight at once.
const DELETE_REQUESTS: usize = 4;

impl BucketStore {
    /// A collection (see the module documentation of `object`).
    pub(in crate::object) async fn collect(&self, options: &GcOptions) -> Result<GcReport> {
        self.settle_all().await;
        let run = new_id("gc-");
        let t_m = self.now().await?;
        let deadline = t_m.at + self.inner.options.gc_window;
        let marker_key = self.keys().marker(&run);
        let marker = serde_json::to_vec(&Marker {
            started_ms: to_millis(t_m.at),
            deadline_ms: to_millis(deadline),
            dry_run: options.dry_run,
        })
        .map_err(|e| StoreError::backend("serialize a collection marker", e))?;
        put(
            self.store(),
            &marker_key,
            Bytes::from(marker),
            PutMode::Create,
        )
        .await
        .map_err(|e| backend_err(format!("write the collection marker {marker_key}"), e))?;
        self.check_marker_time(&marker_key, t_m).await?;
        let res = self.collect_marked(&run, options, t_m, deadline).await;
        let _ = self.store().delete(&marker_key).await;
        res
    }

    /// Compares the marker's `last_modified` with the storage clock; forgets the clock when
    /// they disagree (it is read again next time) and refuses to collect this time.
    async fn check_marker_time(
        &self,
        key: &object_store::path::Path,
        t_m: StorageTime,
    ) -> Result<()> {
        let meta = self
            .store()
            .head(key)
            .await
            .map_err(|e| backend_err(format!("read the collection marker {key}"), e))?;
        let lm = SystemTime::from(meta.last_modified);
        let slack = Duration::from_secs(2) + t_m.uncertainty;
        let off = lm
            .duration_since(t_m.at)
            .or_else(|e| Ok::<_, ()>(e.duration()))
            .unwrap_or(Duration::ZERO);
        if off > slack {
            self.inner.backend.inner.clock.forget();
            return Err(StoreError::backend(
                format!(
                    "the storage clock was off by {off:?} against the marker {key}; it is read \
                     again at the next collection"
                ),
                std::io::Error::other("storage clock moved"),
            ));
        }
        Ok(())
    }

    async fn collect_marked(
        &self,
        run: &str,
        options: &GcOptions,
        t_m: StorageTime,
        deadline: SystemTime,
    ) -> Result<GcReport> {
        let (listed, skipped) = self.list_blobs().await?;
        let roots = self.read_roots(&listed, Some((options, t_m))).await?;
        // With whole-second timestamps a blob may be up to a second younger than it looks.
        let min_age = if options.min_age.is_zero() {
            Duration::ZERO
        } else {
            options.min_age + Duration::from_secs(1) + t_m.uncertainty
        };
        let mut blobs = listed.clone();
        let marking = self
            .mark_all(&mut blobs, &roots.roots, Some((min_age, t_m.at)))
            .await?;
        let removed: Vec<Removal> = self
            .with_graph(&blobs, |g| g.sweep_list(&marking))
            .await?
            .into_iter()
            .filter(|r| listed.contains_key(&r.digest))
            .collect();
        let mut report = GcReport {
            dry_run: options.dry_run,
            blobs: listed.len(),
            live: marking.live.len(),
            young: marking.young.clone(),
            missing: sorted(marking.missing.clone()),
            foreign: sorted(marking.foreign.clone()),
            expired_leases: roots.expired.iter().map(|(id, _)| id.clone()).collect(),
            stale_ingests: roots.stale.iter().map(|(_, k, _)| k.clone()).collect(),
            skipped,
            ..GcReport::default()
        };
        report.expired_leases.sort();
        report.stale_ingests.sort();
        if options.dry_run {
            report.bytes_freed = removed.iter().map(|r| r.size).sum();
            report.removed = removed;
            return Ok(report);
        }

        // 1. Tombstones (create-only: a blob another collection doomed is left to it).
        let mut doomed = Vec::new();
        let tomb = Bytes::from(
            serde_json::to_vec(&Tombstone {
                gc: run.to_owned(),
                deadline_ms: to_millis(deadline),
            })
            .map_err(|e| StoreError::backend("serialize a tombstone", e))?,
        );
        let written: Vec<(Removal, std::result::Result<(), object_store::Error>)> =
            futures_util::stream::iter(removed.into_iter().map(|r| {
                let tomb = tomb.clone();
                async move {
                    let key = self.keys().tombstone(&r.digest);
                    let res = put(self.store(), &key, tomb, PutMode::Create)
                        .await
                        .map(|_| ());
                    (r, res)
                }
            }))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut failure = None;
        for (r, res) in written {
            match res {
                Ok(()) => doomed.push(r),
                Err(e) if is_exists(&e) => {
                    tracing::debug!(digest = %r.digest, "doomed by another collection already");
                }
                Err(e) => failure = Some(backend_err(format!("tombstone {}", r.digest), e)),
            }
        }
        if let Some(e) = failure {
            self.remove_tombstones(doomed.iter().map(|r| &r.digest))
                .await;
            return Err(e);
        }

        // 2. The roots again: spare what a reference made since the first reading reaches.
        let again = self.read_roots(&listed, Some((options, t_m))).await?;
        let mut blobs2 = listed.clone();
        let marking2 = self
            .mark_all(&mut blobs2, &again.roots, Some((min_age, t_m.at)))
            .await?;
        let (spared, doomed): (Vec<Removal>, Vec<Removal>) = doomed
            .into_iter()
            .partition(|r| marking2.live.contains(&r.digest));
        if !spared.is_empty() {
            tracing::debug!(
                spared = spared.len(),
                "referred to since the first reading: kept"
            );
            self.remove_tombstones(spared.iter().map(|r| &r.digest))
                .await;
        }

        // 3. The sweep, within the collection's window.
        let now = self.now().await?;
        if now.at + now.uncertainty >= deadline {
            // Tombstones expire by themselves; nothing is removed after the deadline.
            return Err(StoreError::backend(
                format!("collection {run} ran past its window before its sweep"),
                std::io::Error::from(std::io::ErrorKind::TimedOut),
            ));
        }
        // Batched: on S3 one DeleteObjects request removes up to 1,000 keys.
        let (mut gone, failure) = self
            .delete_keyed(doomed, |r| self.keys().blob(&r.digest))
            .await;
        let failure = failure.map(|e| backend_err("remove collected blobs", e));
        self.remove_tombstones(gone.iter().map(|r| &r.digest)).await;
        gone.sort_by(|a, b| a.digest.cmp(&b.digest));
        report.bytes_freed = gone.iter().map(|r| r.size).sum();
        report.removed = gone;
        if let Some(e) = failure {
            return Err(e);
        }

        // Leases, ingests and leftovers.
        for (id, pins) in roots.expired.iter().chain(roots.orphans.iter()) {
            self.remove_lease(id, pins).await?;
        }
        for (hashed, _, record) in &roots.stale {
            match record {
                Some(r) => self.remove_ingest(hashed, r).await?,
                None => {
                    for ext in ["tail", "data", "json"] {
                        let _ = self.store().delete(&self.keys().ingest(hashed, ext)).await;
                    }
                }
            }
        }
        self.remove_dead(t_m).await?;
        tracing::debug!(
            removed = report.removed.len(),
            bytes = report.bytes_freed,
            live = report.live,
            "garbage collection done"
        );
        Ok(report)
    }

    async fn remove_tombstones<'a>(&self, digests: impl Iterator<Item = &'a Digest>) {
        let digests: Vec<&Digest> = digests.collect();
        let (_, failure) = self
            .delete_keyed(digests, |d| self.keys().tombstone(d))
            .await;
        if let Some(e) = failure {
            tracing::warn!(error = %e, "tombstones left (they expire)");
        }
    }

    /// Deletes the keys of `items` in batches of [`DELETE_BATCH`] (`delete_stream`: on S3, one
    /// `DeleteObjects` request each), [`DELETE_REQUESTS`] at once: the items whose key is gone (a key
    /// already missing counts as gone), and the last failure.
    async fn delete_keyed<T>(
        &self,
        items: Vec<T>,
        key: impl Fn(&T) -> object_store::path::Path,
    ) -> (Vec<T>, Option<object_store::Error>) {
        let mut by_key: HashMap<object_store::path::Path, T> =
            items.into_iter().map(|item| (key(&item), item)).collect();
        if by_key.is_empty() {
            return (Vec::new(), None);
        }
        let keys: Vec<object_store::path::Path> = by_key.keys().cloned().collect();
        let batches: Vec<Vec<object_store::Result<object_store::path::Path>>> = keys
            .chunks(DELETE_BATCH)
            .map(|b| b.iter().cloned().map(Ok).collect())
            .collect();
        // Each batch's stream owns what it needs ('static): no borrow lives across the awaits.
        let store = self.store().clone();
        let results: Vec<Vec<object_store::Result<object_store::path::Path>>> =
            futures_util::stream::iter(batches)
                .map(move |batch| {
                    store
                        .delete_stream(futures_util::stream::iter(batch).boxed())
                        .collect::<Vec<_>>()
                })
                .buffer_unordered(DELETE_REQUESTS)
                .collect()
                .await;
        let mut gone = Vec::with_capacity(by_key.len());
        let mut failure = None;
        for r in results.into_iter().flatten() {
            match r {
                Ok(k) => {
                    if let Some(item) = by_key.remove(&k) {
                        gone.push(item);
                    }
                }
                Err(object_store::Error::NotFound { path, .. }) => {
                    if let Some(item) = by_key.remove(&object_store::path::Path::from(path)) {
                        gone.push(item);
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
        (gone, failure)
    }

    /// Removes tombstones and markers of collections whose window ended (they died or were
    /// stopped).
    async fn remove_dead(&self, t_m: StorageTime) -> Result<()> {
        let sure_now = t_m.at.checked_sub(t_m.uncertainty).unwrap_or(t_m.at);
        for meta in self.list(&self.keys().tombstones()).await? {
            if self.keys().parse_tombstone(&meta.location).is_none() {
                continue;
            }
            let Some((raw, _)) = self.read_small(&meta.location, "tombstone").await? else {
                continue;
            };
            let dead = serde_json::from_slice::<Tombstone>(&raw)
                .map(|t| sure_now > from_millis(t.deadline_ms))
                .unwrap_or(true);
            if dead {
                let _ = self.store().delete(&meta.location).await;
            }
        }
        for meta in self.list(&self.keys().markers()).await? {
            let Some((raw, _)) = self.read_small(&meta.location, "marker").await? else {
                continue;
            };
            let dead = serde_json::from_slice::<Marker>(&raw)
                .map(|m| sure_now > from_millis(m.deadline_ms))
                .unwrap_or(true);
            if dead {
                let _ = self.store().delete(&meta.location).await;
            }
        }
        Ok(())
    }
}
