//! Leases of a `BucketStore`: records with an expiry in storage time
//! (`<state>/leases/<id>.json`), pins as objects (`<state>/leases/<id>/<alg>/<hex>`), and the
//! `ManagedStore` implementation.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use object_store::{ObjectStoreExt, PutMode, UpdateVersion};
use oci_digest::Digest;
use serde::{Deserialize, Serialize};

use super::BucketStore;
use super::backend::{backend_err, is_not_found, is_precondition, put};
use super::keys::LeaseKey;
use crate::error::{Result, StoreError};
use crate::gc::{FsckOptions, FsckReport, GcOptions, GcReport, Parent};
use crate::lease::{Lease, LeaseInfo, from_millis, new_id, to_millis};
use crate::traits::{ManagedStore, Store};

/// A lease's record: when it expires, in storage time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LeaseRecord {
    pub(super) expires_ms: u64,
}

/// A lease as listed: its record (if readable) and pins.
#[derive(Debug, Default)]
pub(super) struct Listed {
    /// `None` for pins whose lease has no record (released, or collected).
    pub(super) expires: Option<SystemTime>,
    pub(super) record_present: bool,
    pub(super) pins: Vec<Digest>,
}

impl BucketStore {
    /// Pins `d` to the view's lease, then checks that the lease exists and has not expired in
    /// storage time (a pin of an expired lease protects nothing).
    pub(super) async fn pin(&self, d: &Digest) -> Result<()> {
        let Some(lease) = &self.lease else {
            return Ok(());
        };
        let key = self.keys().pin(lease.id(), d);
        put(self.store(), &key, Bytes::new(), PutMode::Overwrite)
            .await
            .map_err(|e| backend_err(format!("pin {d} to lease {}", lease.id()), e))?;
        self.check_lease(lease).await
    }

    /// Fails unless `lease` exists and surely has not expired now (storage time).
    async fn check_lease(&self, lease: &Lease) -> Result<()> {
        let Some((record, _)) = self.read_lease(lease.id()).await? else {
            return Err(StoreError::LeaseNotFound {
                id: lease.id().to_owned(),
            });
        };
        let now = self.now().await?;
        if now.at + now.uncertainty >= from_millis(record.expires_ms) {
            return Err(StoreError::LeaseExpired {
                id: lease.id().to_owned(),
            });
        }
        Ok(())
    }

    async fn read_lease(&self, id: &str) -> Result<Option<(LeaseRecord, UpdateVersion)>> {
        let key = self.keys().lease(id);
        let Some((raw, meta)) = self.read_small(&key, "lease record").await? else {
            return Ok(None);
        };
        // An unreadable record keeps its pins alive for an hour past now (never lose content
        // on doubt).
        let record = serde_json::from_slice::<LeaseRecord>(&raw).unwrap_or(LeaseRecord {
            expires_ms: to_millis(SystemTime::from(meta.last_modified) + Duration::from_secs(3600)),
        });
        Ok(Some((
            record,
            UpdateVersion {
                e_tag: meta.e_tag,
                version: meta.version,
            },
        )))
    }

    /// Every lease record and pin under the state prefix, by lease id.
    pub(super) async fn list_leases(&self) -> Result<HashMap<String, Listed>> {
        let prefix = self.keys().leases();
        let mut out: HashMap<String, Listed> = HashMap::new();
        for meta in self.list(&prefix).await? {
            match self.keys().parse_lease_key(&meta.location) {
                Some(LeaseKey::Record(id)) => {
                    let rec = self.read_lease(&id).await?;
                    let l = out.entry(id).or_default();
                    if let Some((r, _)) = rec {
                        l.expires = Some(from_millis(r.expires_ms));
                        l.record_present = true;
                    }
                }
                Some(LeaseKey::Pin(id, d)) => out.entry(id).or_default().pins.push(d),
                None => {}
            }
        }
        for l in out.values_mut() {
            l.pins.sort();
            l.pins.dedup();
        }
        Ok(out)
    }

    /// Removes lease `id`: its record, then its pins.
    pub(super) async fn remove_lease(&self, id: &str, pins: &[Digest]) -> Result<()> {
        let key = self.keys().lease(id);
        match self.store().delete(&key).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(backend_err(format!("remove lease {id}"), e)),
        }
        self.remove_pins(id, pins).await
    }

    pub(super) async fn remove_pins(&self, id: &str, pins: &[Digest]) -> Result<()> {
        let mut listed: Vec<Digest> = pins.to_vec();
        if listed.is_empty() {
            let prefix = self.keys().pins(id);
            for meta in self.list(&prefix).await? {
                if let Some(LeaseKey::Pin(_, d)) = self.keys().parse_lease_key(&meta.location) {
                    listed.push(d);
                }
            }
        }
        for d in listed {
            let key = self.keys().pin(id, &d);
            match self.store().delete(&key).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(backend_err(format!("remove pin {d} of lease {id}"), e)),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ManagedStore for BucketStore {
    /// Creates a lease that expires `ttl` after now in storage time (the
    /// [`Lease::expires_at`] it returns is in storage time too).
    async fn create_lease(&self, ttl: Duration) -> Result<Lease> {
        let id = new_id("lease-");
        let now = self.now().await?;
        let expires_ms = to_millis(now.at + ttl);
        let raw = serde_json::to_vec(&LeaseRecord { expires_ms })
            .map_err(|e| StoreError::backend("serialize a lease", e))?;
        let key = self.keys().lease(&id);
        put(self.store(), &key, Bytes::from(raw), PutMode::Create)
            .await
            .map_err(|e| backend_err(format!("create lease {id}"), e))?;
        tracing::debug!(lease = %id, ?ttl, "lease created");
        Ok(Lease::new(id, from_millis(expires_ms)))
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let key = self.keys().lease(lease.id());
        for _ in 0..50 {
            let Some((_, version)) = self.read_lease(lease.id()).await? else {
                return Err(StoreError::LeaseNotFound {
                    id: lease.id().to_owned(),
                });
            };
            let now = self.now().await?;
            let expires_ms = to_millis(now.at + ttl);
            let raw = serde_json::to_vec(&LeaseRecord { expires_ms })
                .map_err(|e| StoreError::backend("serialize a lease", e))?;
            match put(
                self.store(),
                &key,
                Bytes::from(raw),
                PutMode::Update(version),
            )
            .await
            {
                Ok(_) => return Ok(Lease::new(lease.id().to_owned(), from_millis(expires_ms))),
                Err(e) if is_precondition(&e) => continue,
                Err(e) if is_not_found(&e) => {
                    return Err(StoreError::LeaseNotFound {
                        id: lease.id().to_owned(),
                    });
                }
                Err(e) => return Err(backend_err(format!("renew lease {}", lease.id()), e)),
            }
        }
        Err(StoreError::backend(
            format!("renew lease {}: it kept changing", lease.id()),
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        ))
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let key = self.keys().lease(lease.id());
        match self.store().head(&key).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {
                return Err(StoreError::LeaseNotFound {
                    id: lease.id().to_owned(),
                });
            }
            Err(e) => return Err(backend_err(format!("release lease {}", lease.id()), e)),
        }
        self.remove_lease(lease.id(), &[]).await
    }

    async fn leases(&self) -> Result<Vec<LeaseInfo>> {
        let mut out: Vec<LeaseInfo> = self
            .list_leases()
            .await?
            .into_iter()
            .filter_map(|(id, l)| {
                l.expires.map(|e| LeaseInfo {
                    lease: Lease::new(id, e),
                    pins: l.pins,
                })
            })
            .collect();
        out.sort_by(|a, b| a.lease.id().cmp(b.lease.id()));
        Ok(out)
    }

    fn with_lease(&self, lease: &Lease) -> Self {
        BucketStore {
            inner: self.inner.clone(),
            lease: Some(lease.clone()),
        }
    }

    fn with_lease_boxed(&self, lease: &Lease) -> Box<dyn Store + '_> {
        Box::new(self.with_lease(lease))
    }

    async fn parents(&self, digest: &Digest) -> Result<Vec<Parent>> {
        self.parents_of(digest).await
    }

    async fn gc(&self, options: &GcOptions) -> Result<GcReport> {
        self.collect(options).await
    }

    async fn fsck(&self, options: &FsckOptions) -> Result<FsckReport> {
        self.check(options).await
    }
}
