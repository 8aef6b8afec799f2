//! The storage clock: "now" as the storage's own timestamps tell it, never this machine's
//! wall clock.
//!
//! Every age and expiry of a [`BucketStore`](super::BucketStore) is judged in storage time:
//! objects' `last_modified`, and "now" read from the storage. Reading "now" means writing a
//! probe object and reading its `last_modified` back. S3 timestamps have whole seconds (so do
//! SeaweedFS's), too coarse for leases of a few hundred milliseconds, so the clock finds the
//! moment the storage's second ticks (probing until the probe's `last_modified` changes), and
//! from then on adds the time elapsed on this machine's **monotonic** clock, which measures
//! durations only and is not moved by a wrong or changed wall clock (`faketime`, NTP steps).
//! The estimate carries its uncertainty (half the interval in which the tick was seen, plus
//! 100 ppm of drift since), which every judgement that must be safe adds to its margin. It is
//! read again every ten minutes.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode};

use super::backend::{BackendInner, backend_err, put};
use crate::error::{Result, StoreError};

/// How long a reading of the storage clock is trusted before it is read again.
const RESYNC: Duration = Duration::from_secs(600);

/// How long the clock probes for a tick before it gives up.
const SYNC_LIMIT: Duration = Duration::from_secs(5);

/// Pause between probes while waiting for the storage's second to tick.
const PROBE_EVERY: Duration = Duration::from_millis(20);

/// A storage time with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StorageTime {
    /// The estimate.
    pub(crate) at: SystemTime,
    /// How far the true storage time may be from `at`, either way.
    pub(crate) uncertainty: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    storage: SystemTime,
    at: Instant,
    uncertainty: Duration,
}

/// The storage clock of one backend (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct StorageClock {
    anchor: Mutex<Option<Anchor>>,
    sync: tokio::sync::Mutex<()>,
}

impl StorageClock {
    /// The storage's "now", read through `probe` (a key of this process) when the last reading
    /// is older than ten minutes.
    pub(crate) async fn now(&self, backend: &BackendInner, probe: &Path) -> Result<StorageTime> {
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let _one = self.sync.lock().await;
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let anchor = sync(backend, probe).await?;
        tracing::debug!(backend = %backend.name, uncertainty = ?anchor.uncertainty, "storage clock read");
        if let Ok(mut a) = self.anchor.lock() {
            *a = Some(anchor);
        }
        Ok(StorageTime {
            at: anchor.storage + anchor.at.elapsed(),
            uncertainty: anchor.uncertainty,
        })
    }

    fn cached(&self) -> Option<StorageTime> {
        let a = (*self.anchor.lock().ok()?)?;
        let elapsed = a.at.elapsed();
        (elapsed < RESYNC).then(|| StorageTime {
            at: a.storage + elapsed,
            uncertainty: a.uncertainty + elapsed / 10_000,
        })
    }

    /// Forgets the reading (after the storage's timestamps disagreed with it).
    pub(crate) fn forget(&self) {
        if let Ok(mut a) = self.anchor.lock() {
            *a = None;
        }
    }
}

/// Writes `probe` and reads its `last_modified` until the storage's second ticks (or, for a
/// backend with sub-second timestamps, once).
async fn sync(backend: &BackendInner, probe: &Path) -> Result<Anchor> {
    let store = &backend.store;
    let started = Instant::now();
    let mut prev: Option<(Instant, i64)> = None;
    loop {
        let send = Instant::now();
        put(
            store,
            probe,
            Bytes::from_static(b"clock"),
            PutMode::Overwrite,
        )
        .await
        .map_err(|e| backend_err(format!("read the storage clock (write {probe})"), e))?;
        let written = Instant::now();
        let meta = store
            .head(probe)
            .await
            .map_err(|e| backend_err(format!("read the storage clock (head {probe})"), e))?;
        let lm = meta.last_modified;
        let nanos = lm.timestamp_subsec_nanos();
        if nanos != 0 {
            // Sub-second timestamps (`object_store`'s in-memory backend, some servers): the
            // write happened between `send` and `written`.
            let half = (written - send) / 2;
            let resolution = if nanos % 1_000_000 == 0 {
                Duration::from_millis(1)
            } else {
                Duration::ZERO
            };
            return Ok(Anchor {
                storage: SystemTime::from(lm),
                at: send + half,
                uncertainty: half + resolution,
            });
        }
        let secs = lm.timestamp();
        if let Some((prev_send, prev_secs)) = prev
            && secs > prev_secs
        {
            // The storage's clock passed `secs`.000 after the previous write began and before
            // this one ended.
            let half = (written - prev_send) / 2;
            return Ok(Anchor {
                storage: SystemTime::from(lm),
                at: prev_send + half,
                uncertainty: half,
            });
        }
        prev = Some((send, secs));
        if started.elapsed() > SYNC_LIMIT {
            return Err(StoreError::backend(
                format!(
                    "read the storage clock of {}: the last_modified of {probe} did not change \
                     within {SYNC_LIMIT:?}",
                    backend.name
                ),
                std::io::Error::from(std::io::ErrorKind::TimedOut),
            ));
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}
