//! The reference graph of a `LayoutStore`: listing `blobs/` without following links, the roots
//! (index entries, leases, ingests), the cached listing with its parents and referrers, garbage
//! collection and fsck.

use super::*;

/// A listing of `blobs/`, reusable while the blob directories do not change.
#[derive(Debug)]
pub(super) struct Listing {
    pub(super) stamps: Vec<Option<SystemTime>>,
    pub(super) taken: SystemTime,
    pub(super) blobs: HashMap<Digest, BlobMeta>,
    pub(super) reverse: HashMap<Digest, Vec<Digest>>,
    /// Referrers by subject: stored manifests whose `subject` is the key.
    pub(super) referrers: HashMap<Digest, Vec<Digest>>,
}

/// What a walk of the roots found.
#[derive(Debug, Default)]
pub(super) struct RootsFound {
    pub(super) roots: Vec<Root>,
    /// Expired lease ids (not roots with `gc`).
    pub(super) expired: Vec<String>,
    /// Stale ingests, directory and key (not roots with `gc`).
    pub(super) stale: Vec<(PathBuf, String)>,
    /// Entries of `ingests/` that are not directories.
    pub(super) skipped: Vec<Skipped>,
}

impl LayoutStore {
    /// The reference graph over `blobs`, reading manifests from this layout through its
    /// parsed-manifest cache.
    fn graph<'a>(&'a self, blobs: &'a HashMap<Digest, BlobMeta>) -> Graph<'a> {
        Graph {
            blobs,
            content: &*self.inner,
            cache: &self.inner.cache,
        }
    }

    pub(super) fn blob_dirs(&self) -> Vec<(Algorithm, PathBuf)> {
        Algorithm::ALL
            .iter()
            .map(|a| (*a, self.inner.root.join("blobs").join(a.as_str())))
            .collect()
    }

    pub(super) fn dir_stamps(&self) -> Vec<Option<SystemTime>> {
        self.blob_dirs()
            .iter()
            .map(|(_, d)| fs::metadata(d).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// Every blob file whose name is a valid digest, with size and age, and the entries with
    /// such names that are not regular files (skipped: never read, never removed). Other names
    /// (temporary files of other tools) are ignored and never removed.
    pub(super) fn list_blobs(&self) -> Result<(HashMap<Digest, BlobMeta>, Vec<Skipped>)> {
        let mut out = HashMap::new();
        let mut skipped = Vec::new();
        check_dirs(&self.inner.root, &["blobs"])?;
        for (alg, dir) in self.blob_dirs() {
            if !check_dirs(&self.inner.root, &["blobs", alg.as_str()])? {
                continue;
            }
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("list directory", &dir, e)),
            };
            for entry in rd {
                let entry = entry.map_err(ioe("list directory", &dir))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.len() != alg.hex_len() {
                    continue;
                }
                let Ok(digest) = Digest::parse(&format!("{alg}:{name}")) else {
                    continue;
                };
                // `DirEntry::metadata` does not follow links.
                let meta = match entry.metadata() {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StoreError::io("stat", entry.path(), e)),
                };
                if !meta.is_file() {
                    let found = describe(meta.file_type());
                    tracing::warn!(path = %entry.path().display(), found, "skipped: not a regular file");
                    skipped.push(Skipped::new(entry.path(), found));
                    continue;
                }
                out.insert(
                    digest,
                    BlobMeta {
                        size: meta.len(),
                        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    },
                );
            }
        }
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((out, skipped))
    }

    /// Roots: index entries, live leases, ingests. With `gc`, also decides which leases expired
    /// and which ingests are stale (no writer holds them and they are older than the limit);
    /// those are not roots.
    pub(super) fn roots(&self, gc: Option<&GcOptions>) -> Result<RootsFound> {
        let now = SystemTime::now();
        let mut roots = self.read_index()?.roots();
        let mut expired = Vec::new();
        let (ingests, skipped) = self.list_ingests()?;
        for (info, is_expired) in self.read_leases()? {
            if is_expired {
                expired.push(info.lease.id().to_owned());
                continue;
            }
            roots.extend(info.pins.into_iter().map(|d| Root {
                parent: Parent::Lease(info.lease.id().to_owned()),
                digest: d,
                media_type: None,
                size: None,
            }));
        }
        let mut stale = Vec::new();
        for (dir, status) in ingests {
            if let Some(opts) = gc {
                // A writer holds the ingest's lock while it is open.
                let active = lock_held(&dir.join("lock"))?;
                let updated = status.as_ref().map(|s| s.updated_at).unwrap_or_else(|| {
                    fs::metadata(&dir)
                        .and_then(|m| m.modified())
                        .unwrap_or(SystemTime::UNIX_EPOCH)
                });
                let age = now.duration_since(updated).unwrap_or(Duration::ZERO);
                if !active && age >= opts.stale_ingest_age {
                    let key = status.map(|s| s.key).unwrap_or_default();
                    stale.push((dir, key));
                    continue;
                }
            }
            if let Some(s) = status {
                roots.push(Root {
                    parent: Parent::Ingest(s.key),
                    digest: s.expected.digest,
                    media_type: Some(s.expected.media_type),
                    size: None,
                });
            }
        }
        if let Some(opts) = gc {
            roots.extend(opts.keep.iter().map(|d| Root {
                parent: Parent::Kept,
                digest: d.clone(),
                media_type: None,
                size: None,
            }));
        }
        Ok(RootsFound {
            roots,
            expired,
            stale,
            skipped,
        })
    }

    /// The blob listing for reference queries, reused while the blob directories are unchanged
    /// (their modification times are compared; a listing taken less than [`LISTING_SETTLE`]
    /// after the last change is not trusted, since a later change could carry the same time
    /// stamp on a file system with coarse time stamps).
    pub(super) fn listing(&self) -> Result<Arc<Listing>> {
        let now = SystemTime::now();
        let stamps = self.dir_stamps();
        if let Ok(guard) = self.inner.listing.lock()
            && let Some(l) = guard.as_ref()
        {
            let settled = l
                .stamps
                .iter()
                .all(|s| s.is_none_or(|t| t + LISTING_SETTLE <= l.taken));
            if settled && l.stamps == stamps {
                return Ok(l.clone());
            }
        }
        let (blobs, _) = self.list_blobs()?;
        let graph = self.graph(&blobs);
        let (reverse, referrers) = graph.edges()?;
        let listing = Arc::new(Listing {
            stamps,
            taken: now,
            blobs,
            reverse,
            referrers,
        });
        if let Ok(mut guard) = self.inner.listing.lock() {
            *guard = Some(listing.clone());
        }
        Ok(listing)
    }

    /// Loads the reference graph (every blob listed, every manifest parsed), so that later
    /// [`parents`](ManagedStore::parents) and [`refcount`](ManagedStore::refcount) calls answer
    /// from it while `blobs/` is unchanged (checked by the blob directories' modification times
    /// on every call; the listing is trusted once the last change is 2 seconds old). Returns
    /// the number of blobs.
    pub async fn load_graph(&self) -> Result<usize> {
        let s = self.clone();
        blocking(move || Ok(s.listing()?.blobs.len())).await
    }

    /// A collection (or its dry run, which changes nothing on disk and reports exactly what a
    /// real run would remove). Everything removed is a regular file or an ingest directory
    /// inside the store's own tree, found without following links.
    pub(super) fn gc_blocking(&self, options: &GcOptions) -> Result<GcReport> {
        check_own_dirs(&self.inner.root)?;
        let _g = self.lock(true)?;
        // Checked again under the lock: the tree may have changed since the store was opened.
        check_own_dirs(&self.inner.root)?;
        let now = SystemTime::now();
        let found = self.roots(Some(options))?;
        let (blobs, mut skipped) = self.list_blobs()?;
        let graph = self.graph(&blobs);
        let mut report = graph.plan(&found.roots, options, now)?;
        report.expired_leases = found.expired;
        report.stale_ingests = found.stale.iter().map(|(_, k)| k.clone()).collect();
        skipped.extend(found.skipped);
        // Under the exclusive lock no rewrite is in progress: leftovers are from crashes.
        for (_, path, ft) in list_dir(&self.tmp_dir()?)? {
            if ft.is_file() {
                report.temporary_files.push(path);
            } else {
                skipped.push(Skipped::new(path, describe(ft)));
            }
        }
        report.temporary_files.sort();
        // Maps of blobs this collection removes, and of blobs already gone.
        let removed: HashSet<&Digest> = report.removed.iter().map(|r| &r.digest).collect();
        report.piece_maps = self
            .cached_maps()?
            .into_iter()
            .filter(|d| !blobs.contains_key(d) || removed.contains(d))
            .collect();
        report.skipped = skipped;
        if options.dry_run {
            return Ok(report);
        }
        for r in &report.removed {
            remove_if_exists(&self.blob_path(&r.digest))?;
        }
        if !report.removed.is_empty() {
            for (_, dir) in self.blob_dirs() {
                if dir.is_dir() {
                    sync_dir(&dir)?;
                }
            }
        }
        for id in &report.expired_leases {
            self.remove_lease_files(id)?;
        }
        for (dir, _) in &found.stale {
            remove_dir_if_exists(dir)?;
        }
        for p in &report.temporary_files {
            remove_if_exists(p)?;
        }
        for d in &report.piece_maps {
            self.drop_piece_map(d)?;
        }
        tracing::debug!(
            removed = report.removed.len(),
            bytes = report.bytes_freed,
            live = report.live,
            skipped = report.skipped.len(),
            "garbage collection done"
        );
        Ok(report)
    }

    pub(super) fn fsck_blocking(&self, options: &FsckOptions) -> Result<FsckReport> {
        check_own_dirs(&self.inner.root)?;
        let _g = self.lock(false)?;
        check_own_dirs(&self.inner.root)?;
        let (mut blobs, skipped) = self.list_blobs()?;
        let mut report = FsckReport {
            skipped,
            ..FsckReport::default()
        };
        let mut opts = open_options();
        opts.read(true);
        let mut buf = vec![0u8; READ_CHUNK];
        let mut digests: Vec<Digest> = blobs.keys().cloned().collect();
        digests.sort();
        for d in digests {
            let path = self.blob_path(&d);
            let mut f = match open_regular(&path, &opts, "open") {
                Ok(Some(f)) => f,
                Ok(None) => {
                    blobs.remove(&d);
                    continue;
                }
                Err(StoreError::UnsafeEntry { path, found, .. }) => {
                    // Replaced since the listing: left alone like the others.
                    blobs.remove(&d);
                    report.skipped.push(Skipped::new(path, found));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut h = Digester::new(d.algorithm());
            loop {
                let n = f.read(&mut buf).map_err(ioe("read", &path))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            report.checked += 1;
            let size = h.bytes_hashed();
            report.bytes += size;
            let actual = h.finalize();
            if actual != d {
                tracing::warn!(digest = %d, %actual, "corrupt blob");
                report.corrupt.push(Corrupt {
                    digest: d.clone(),
                    actual,
                    size,
                });
                // Corrupt content is treated as absent by the graph check below.
                blobs.remove(&d);
                if options.repair {
                    remove_if_exists(&path)?;
                    self.drop_piece_map(&d)?;
                    report.removed.push(d);
                }
            }
        }
        // Roots first, then a fresh listing: content committed (and tagged) by a writer while
        // the blobs were being hashed is in the new listing, so it is not reported missing.
        let found = self.roots(None)?;
        report.skipped.extend(found.skipped);
        let roots = found.roots;
        let corrupt: HashSet<&Digest> = report.corrupt.iter().map(|c| &c.digest).collect();
        let blobs: HashMap<Digest, BlobMeta> = self
            .list_blobs()?
            .0
            .into_iter()
            .filter(|(d, _)| !corrupt.contains(d))
            .collect();
        let graph = self.graph(&blobs);
        graph.check(&roots, &mut report)?;
        Ok(report)
    }
}

/// Reads blobs for the graph.
impl Content for Inner {
    fn read_small(&self, digest: &Digest, _size_hint: u64) -> Result<Option<Bytes>> {
        Ok(read_limited(&blob_path(&self.root, digest), MANIFEST_LIMIT)?.map(Bytes::from))
    }
}
