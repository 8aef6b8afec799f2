//! Blobs shared by many copies into one registry ([`SharedBlobs`]): a blob that one copy is
//! sending is waited for by the others, which then mount it from where it landed instead of
//! sending it again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use oci_digest::Digest;
use tokio::sync::Notify;

use crate::traits::Location;

/// Where a blob stands among the copies sharing a [`SharedBlobs`].
enum Entry {
    /// One copy is sending it; the others wait on this.
    InFlight(Arc<Notify>),
    /// In these repositories of the registry (each one stored or confirmed by a copy).
    Stored(Vec<Location>),
}

/// A ledger of the blobs written by many copies into repositories of the same registries
/// (`sync` of many images): set it on each copy's options
/// ([`CopyOptions::with_shared_blobs`](crate::CopyOptions::with_shared_blobs)). A blob one copy
/// is sending is not sent again by another at the same time: the others wait for it, then
/// mount it across repositories ([`WriteStore::mount`](crate::WriteStore::mount)) from where it
/// landed; if the registry refuses the mount, or the first copy failed, they send it
/// themselves. So each blob shared by images crosses the network once.
///
/// It only says where to try a mount: whether a repository has a blob is still asked of the
/// registry (a mount the registry refuses is an upload), never answered from here.
///
/// ```
/// use oci_store::{CopyOptions, SharedBlobs};
/// let shared = SharedBlobs::new();
/// let a = CopyOptions::default().with_shared_blobs(shared.clone());
/// let b = CopyOptions::default().with_shared_blobs(shared.clone());
/// assert_eq!(shared.len(), 0);
/// # drop((a, b));
/// ```
#[derive(Clone, Default)]
pub struct SharedBlobs {
    entries: Arc<Mutex<HashMap<(String, Digest), Entry>>>,
}

impl std::fmt::Debug for SharedBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBlobs")
            .field("blobs", &self.len())
            .finish()
    }
}

/// What a copy learned when it asked the ledger about a blob.
pub(super) enum Ticket {
    /// No other copy has it or is sending it: this copy sends it, and records the result.
    Owner(OwnerGuard),
    /// Other repositories of the destination's registry hold it: mount from one of them.
    /// `here`: a copy found it in, or put it into, the destination repository too (a hint only:
    /// the registry is still asked).
    Elsewhere { places: Vec<Location>, here: bool },
}

/// The right to send a blob, released (waking the copies waiting for it) when dropped; a
/// successful copy records where the blob now is with [`OwnerGuard::stored`].
pub(super) struct OwnerGuard {
    shared: SharedBlobs,
    key: (String, Digest),
    at: Location,
    notify: Arc<Notify>,
    done: bool,
}

impl OwnerGuard {
    /// The blob is in this copy's destination repository.
    pub(super) fn stored(mut self) {
        self.shared.add(&self.key, &self.at);
        self.done = true;
        self.notify.notify_waiters();
    }
}

impl Drop for OwnerGuard {
    fn drop(&mut self) {
        if !self.done {
            let mut entries = self.shared.lock();
            if matches!(entries.get(&self.key), Some(Entry::InFlight(_))) {
                entries.remove(&self.key);
            }
            drop(entries);
            self.notify.notify_waiters();
        }
    }
}

impl SharedBlobs {
    /// An empty ledger.
    pub fn new() -> SharedBlobs {
        SharedBlobs::default()
    }

    /// How many blobs it knows of (sent or being sent).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it knows of no blob.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(String, Digest), Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `at` holds the blob of `key` (a copy found it there or put it there).
    fn add(&self, key: &(String, Digest), at: &Location) {
        let mut entries = self.lock();
        match entries.get_mut(key) {
            Some(Entry::Stored(places)) => {
                if !places.contains(at) {
                    places.push(at.clone());
                }
            }
            _ => {
                entries.insert(key.clone(), Entry::Stored(vec![at.clone()]));
            }
        }
    }

    /// Records that `at` holds `digest`, found there or put there by a copy that did not own it.
    pub(super) fn found(&self, digest: &Digest, at: &Location) {
        self.add(&(at.registry.clone(), digest.clone()), at);
    }

    /// Asks for `digest` on its way to `at`: waits while another copy sends it, then says where
    /// it is, or makes this copy its sender.
    pub(super) async fn claim(&self, digest: &Digest, at: &Location) -> Ticket {
        let key = (at.registry.clone(), digest.clone());
        loop {
            let notify = {
                let mut entries = self.lock();
                match entries.get(&key) {
                    Some(Entry::Stored(places)) => {
                        return Ticket::Elsewhere {
                            places: places.iter().filter(|p| *p != at).cloned().collect(),
                            here: places.contains(at),
                        };
                    }
                    Some(Entry::InFlight(n)) => Arc::clone(n),
                    None => {
                        let notify = Arc::new(Notify::new());
                        entries.insert(key.clone(), Entry::InFlight(Arc::clone(&notify)));
                        return Ticket::Owner(OwnerGuard {
                            shared: self.clone(),
                            key,
                            at: at.clone(),
                            notify,
                            done: false,
                        });
                    }
                }
            };
            // Registered before the lock is released would be ideal; `notified` receives every
            // `notify_waiters` from its creation on, and the entry is looked at again after it.
            let notified = notify.notified();
            let still = matches!(self.lock().get(&key), Some(Entry::InFlight(n)) if Arc::ptr_eq(n, &notify));
            if still {
                notified.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_claim_waits_for_the_first_and_learns_where_the_blob_is() {
        let shared = SharedBlobs::new();
        let d = oci_digest::Algorithm::Sha256.hash(b"layer");
        let a = Location::new("r:5000", "a");
        let b = Location::new("r:5000", "b");
        let Ticket::Owner(guard) = shared.claim(&d, &a).await else {
            panic!("the first claim owns the blob");
        };
        let waiter = {
            let shared = shared.clone();
            let (d, b) = (d.clone(), b.clone());
            tokio::spawn(async move { shared.claim(&d, &b).await })
        };
        tokio::task::yield_now().await;
        guard.stored();
        match waiter.await.unwrap() {
            Ticket::Elsewhere { places, here } => {
                assert_eq!(places, vec![a]);
                assert!(!here);
            }
            Ticket::Owner(_) => panic!("the blob was stored: mount it"),
        }
    }

    #[tokio::test]
    async fn a_failed_owner_hands_the_blob_to_the_next_claim() {
        let shared = SharedBlobs::new();
        let d = oci_digest::Algorithm::Sha256.hash(b"layer");
        let a = Location::new("r:5000", "a");
        let b = Location::new("r:5000", "b");
        let Ticket::Owner(guard) = shared.claim(&d, &a).await else {
            panic!("the first claim owns the blob");
        };
        let waiter = {
            let shared = shared.clone();
            let (d, b) = (d.clone(), b.clone());
            tokio::spawn(async move { matches!(shared.claim(&d, &b).await, Ticket::Owner(_)) })
        };
        tokio::task::yield_now().await;
        drop(guard);
        assert!(waiter.await.unwrap(), "the next copy sends it itself");
        assert!(shared.is_empty());
    }

    #[tokio::test]
    async fn registries_are_kept_apart() {
        let shared = SharedBlobs::new();
        let d = oci_digest::Algorithm::Sha256.hash(b"layer");
        shared.found(&d, &Location::new("one:5000", "a"));
        assert!(matches!(
            shared.claim(&d, &Location::new("two:5000", "a")).await,
            Ticket::Owner(_)
        ));
    }
}
