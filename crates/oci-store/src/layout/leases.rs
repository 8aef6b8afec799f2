//! Leases of a `LayoutStore`: records (`.oci-rs/leases/<id>.json`, expiry) and pins
//! (`<id>.pins`, one digest a line, append-only), and the `ManagedStore` implementation.

use super::*;

/// Record of a lease, `<id>.json` in `leases/` (pins are in `<id>.pins`, one digest a line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LeaseMeta {
    pub(super) expires_ms: u64,
}

impl LayoutStore {
    /// Fails unless `lease` exists and has not expired. Caller holds the store lock.
    pub(super) fn check_lease(&self, lease: &Lease) -> Result<()> {
        let (json, _) = self.lease_paths(lease.id())?;
        let Some(raw) = read_limited(&json, RECORD_LIMIT)? else {
            return Err(StoreError::LeaseNotFound {
                id: lease.id().to_owned(),
            });
        };
        let meta: LeaseMeta =
            serde_json::from_slice(&raw).map_err(|e| StoreError::CorruptLayout {
                path: json.clone(),
                reason: "invalid lease record".into(),
                source: Some(e),
            })?;
        if SystemTime::now() >= from_millis(meta.expires_ms) {
            return Err(StoreError::LeaseExpired {
                id: lease.id().to_owned(),
            });
        }
        Ok(())
    }

    /// Appends `digest` to the pins of the view's lease, if any. Caller holds the store lock and
    /// checked the lease.
    pub(super) fn pin(&self, digest: &Digest) -> Result<()> {
        let Some(lease) = &self.lease else {
            return Ok(());
        };
        let (_, pins) = self.lease_paths(lease.id())?;
        let mut opts = open_options();
        opts.append(true).create(true);
        let mut f = open_regular(&pins, &opts, "open")?
            .ok_or_else(|| StoreError::io("open", &pins, io::ErrorKind::NotFound.into()))?;
        f.write_all(format!("{digest}\n").as_bytes())
            .map_err(ioe("write", &pins))?;
        f.sync_data().map_err(ioe("fsync", &pins))
    }

    pub(super) fn read_leases(&self) -> Result<Vec<(LeaseInfo, bool)>> {
        let dir = self.inner.state.join("leases");
        let now = SystemTime::now();
        let mut out = Vec::new();
        for (name, path, _) in list_dir(&dir)? {
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            if !valid_id(id) {
                continue;
            }
            // A link or special file here is refused (an error, not skipped: skipping a lease
            // would let a collection remove what it protects).
            let Some(raw) = read_limited(&path, RECORD_LIMIT)? else {
                continue; // released meanwhile
            };
            // An unreadable record keeps its pins alive (never lose content on doubt).
            let expires = serde_json::from_slice::<LeaseMeta>(&raw)
                .map(|m| from_millis(m.expires_ms))
                .unwrap_or(SystemTime::now() + Duration::from_secs(3600));
            let (_, pins_path) = self.lease_paths(id)?;
            let pins = read_limited(&pins_path, PINS_LIMIT)?
                .map(|raw| {
                    String::from_utf8_lossy(&raw)
                        .lines()
                        .filter_map(|l| Digest::parse(l.trim()).ok())
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                LeaseInfo {
                    lease: Lease::new(id.to_owned(), expires),
                    pins,
                },
                now >= expires,
            ));
        }
        out.sort_by(|a, b| a.0.lease.id().cmp(b.0.lease.id()));
        Ok(out)
    }

    pub(super) fn remove_lease_files(&self, id: &str) -> Result<bool> {
        let (json, pins) = self.lease_paths(id)?;
        let existed = remove_if_exists(&json)?;
        remove_if_exists(&pins)?;
        Ok(existed)
    }
}

#[async_trait]
impl ManagedStore for LayoutStore {
    async fn create_lease(&self, ttl: Duration) -> Result<Lease> {
        self.writable("create a lease")?;
        let s = self.clone();
        blocking(move || {
            let id = new_id("lease-");
            let expires = SystemTime::now() + ttl;
            let (json, pins) = s.lease_paths(&id)?;
            let _g = s.lock(false)?;
            let mut opts = open_options();
            opts.write(true).create(true).truncate(true);
            open_regular(&pins, &opts, "create")?;
            let raw = serde_json::to_vec(&LeaseMeta {
                expires_ms: to_millis(expires),
            })
            .map_err(|e| StoreError::backend("serialize lease", e))?;
            atomic_write(&s.tmp_dir()?, &json, &raw)?;
            tracing::debug!(lease = %id, ?ttl, "lease created");
            Ok(Lease::new(id, from_millis(to_millis(expires))))
        })
        .await
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        self.writable("renew a lease")?;
        let s = self.clone();
        let id = lease.id().to_owned();
        blocking(move || {
            let (json, _) = s.lease_paths(&id)?;
            let _g = s.lock(false)?;
            if read_limited(&json, RECORD_LIMIT)?.is_none() {
                return Err(StoreError::LeaseNotFound { id });
            }
            let expires = SystemTime::now() + ttl;
            let raw = serde_json::to_vec(&LeaseMeta {
                expires_ms: to_millis(expires),
            })
            .map_err(|e| StoreError::backend("serialize lease", e))?;
            atomic_write(&s.tmp_dir()?, &json, &raw)?;
            Ok(Lease::new(id, from_millis(to_millis(expires))))
        })
        .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.writable("release a lease")?;
        let s = self.clone();
        let id = lease.id().to_owned();
        blocking(move || {
            let _g = s.lock(false)?;
            if !s.remove_lease_files(&id)? {
                return Err(StoreError::LeaseNotFound { id });
            }
            Ok(())
        })
        .await
    }

    async fn leases(&self) -> Result<Vec<LeaseInfo>> {
        let s = self.clone();
        blocking(move || Ok(s.read_leases()?.into_iter().map(|(i, _)| i).collect())).await
    }

    fn with_lease(&self, lease: &Lease) -> Self {
        LayoutStore {
            inner: self.inner.clone(),
            lease: Some(lease.clone()),
        }
    }

    fn with_lease_boxed(&self, lease: &Lease) -> Box<dyn Store + '_> {
        Box::new(self.with_lease(lease))
    }

    async fn parents(&self, digest: &Digest) -> Result<Vec<Parent>> {
        let s = self.clone();
        let d = digest.clone();
        blocking(move || {
            let listing = s.listing()?;
            let roots = s.roots(None)?.roots;
            let manifests = listing.reverse.get(&d).cloned().unwrap_or_default();
            Ok(parents_from(&d, &roots, manifests))
        })
        .await
    }

    async fn gc(&self, options: &GcOptions) -> Result<GcReport> {
        if !options.dry_run {
            self.writable("gc")?;
        }
        let s = self.clone();
        let o = options.clone();
        blocking(move || s.gc_blocking(&o)).await
    }

    async fn fsck(&self, options: &FsckOptions) -> Result<FsckReport> {
        if options.repair {
            self.writable("fsck with repair")?;
        }
        let s = self.clone();
        let o = options.clone();
        blocking(move || s.fsck_blocking(&o)).await
    }
}
