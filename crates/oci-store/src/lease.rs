//! Leases: time-limited pins that protect content during a multi-step operation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oci_digest::Digest;

/// A lease: a named, time-limited root for garbage collection.
///
/// Obtained from [`ManagedStore::create_lease`](crate::ManagedStore::create_lease); used through
/// [`ManagedStore::with_lease`](crate::ManagedStore::with_lease). Everything written or found
/// through the leased view stays until the lease is released or expires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    id: String,
    expires_at: SystemTime,
}

impl Lease {
    pub(crate) fn new(id: String, expires_at: SystemTime) -> Lease {
        Lease { id, expires_at }
    }

    /// The lease's identifier (unique in its store; safe as a file name).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When the lease ends unless renewed.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// Whether the lease has expired at `now`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use oci_store::{ManagedStore, MemoryStore};
    /// let lease = MemoryStore::new().create_lease(std::time::Duration::from_secs(60)).await?;
    /// assert!(!lease.is_expired(std::time::SystemTime::now()));
    /// # Ok::<(), oci_store::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires_at
    }
}

/// A lease with what it pins, as listed by [`ManagedStore::leases`](crate::ManagedStore::leases).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseInfo {
    /// The lease.
    pub lease: Lease,
    /// The content it pins (in the order it was pinned; may repeat).
    pub pins: Vec<Digest>,
}

/// A fresh identifier: time, process and a counter, in hex (file-name safe, unique per store).
pub(crate) fn new_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{prefix}{t:x}-{:x}-{n:x}", std::process::id())
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub(crate) fn to_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Whether `id` could have been made by [`new_id`] (guards file names read from disk).
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_valid() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_id("lease-")).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|i| valid_id(i)));
        assert!(!valid_id("../x") && !valid_id("") && !valid_id("a/b"));
    }

    #[test]
    fn millis_round_trip() {
        let t = from_millis(1_700_000_000_123);
        assert_eq!(to_millis(t), 1_700_000_000_123);
        assert_eq!(to_millis(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}
