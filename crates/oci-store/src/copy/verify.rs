//! Checking what a destination claims, and repairing it when it lies: the one place of the
//! policy "do not trust a store's existence answer" (the [`VerifyMode`] of a copy).
//!
//! A store may claim content it does not serve: a registry whose cache remembers a blob its
//! storage lost answers `HEAD` (and a mount, and a push of the same digest) but cannot send the
//! bytes. Here are every check of such a claim (after `stat`, a mount, a manifest push, the tag,
//! and the read-back of the whole result), the repair ([`WriteStore::push_forced`]), and for
//! direct users of a store the checked existence answer [`checked_exists`], whose last-byte
//! read is the one the copy uses.

use futures_util::StreamExt;
use oci_manifest::Descriptor;
use tracing::{debug, warn};

use super::CopySide::{Destination, Source};
use super::error::{At, Fault};
use super::options::VerifyMode;
use super::plan::{Node, strip};
use super::progress::ProgressEvent;
use super::run::{Done, Run, write_fault};
use crate::error::{Result, StoreError, error_chain};
#[cfg(doc)]
use crate::traits::WriteStore;
use crate::traits::{ReadStore, Store, TagStore, bytes_stream};

/// Whether `store` has `desc` and serves it: an existence answer that does not take the store's
/// word for it, for stores whose existence answers may outlive their content (a registry whose
/// cache remembers a blob its storage lost).
///
/// It asks [`stat`](ReadStore::stat) and, when the store says it has the content, reads its last
/// byte through [`fetch_range`](ReadStore::fetch_range) (`desc.size - 1..desc.size`; empty
/// content is fetched whole and verified).
///
/// - `true` proves that the store answered that range with exactly one byte: it can send
///   content at least `desc.size` bytes long under this digest. It does not prove those bytes
///   are the right ones; only reading them all against the digest
///   ([`fetch`](ReadStore::fetch)) does. The stores of this crate verify content before it
///   becomes visible, so what they serve is what was verified.
/// - `false`: the store says it does not have the content, or it claims it but answers the
///   range with other than one byte (a claim it does not serve).
///
/// One `stat` and one ranged read: cheap beside the transfer it may save. [`copy`](crate::copy)
/// makes the same check under [`VerifyMode::Range`].
///
/// ```
/// use bytes::Bytes;
/// use oci_manifest::Descriptor;
/// use oci_store::{checked_exists, MemoryStore, WriteStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let data = Bytes::from_static(b"a layer");
/// let desc = Descriptor::of("application/vnd.oci.image.layer.v1.tar", &data);
/// assert!(!checked_exists(&store, &desc).await?);
/// store.push_bytes(&desc, data).await?;
/// assert!(checked_exists(&store, &desc).await?);
/// # Ok::<(), oci_store::StoreError>(())
/// # }).unwrap();
/// ```
///
/// # Errors
/// The store's errors when it could not answer (I/O, network, a registry's 5xx), including an
/// error in the middle of the byte's stream ([`StoreError::Source`]), which may be the network
/// rather than a lie; [`StoreError::Unsupported`] from a store without range reads.
pub async fn checked_exists<S: ReadStore + ?Sized>(store: &S, desc: &Descriptor) -> Result<bool> {
    if store.stat_descriptor(desc).await?.is_none() {
        return Ok(false);
    }
    if desc.size == 0 {
        return match read_full(store, desc).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() || matches!(e, StoreError::Verify(_)) => Ok(false),
            Err(e) => Err(e),
        };
    }
    last_byte_served(store, desc).await
}

/// Reads the last byte of `desc` from `store`: `true` when exactly one byte arrives, `false`
/// when the store says it does not have the content or sends another number of bytes.
///
/// # Errors
/// Those of [`fetch_range`](ReadStore::fetch_range); [`StoreError::Source`] for an error in the
/// middle of the byte's stream.
async fn last_byte_served<S: ReadStore + ?Sized>(store: &S, desc: &Descriptor) -> Result<bool> {
    let last = desc.size.saturating_sub(1);
    let mut s = match store.fetch_range(desc, last..desc.size).await {
        Ok(s) => s,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut got = 0u64;
    while let Some(chunk) = s.next().await {
        match chunk {
            Ok(c) => got = got.saturating_add(c.len() as u64),
            Err(source) => {
                return Err(StoreError::Source {
                    digest: desc.digest.clone(),
                    source,
                });
            }
        }
    }
    if got != 1 {
        debug!(digest = %desc.digest, bytes = got, "the last byte was answered with another number of bytes");
    }
    Ok(got == 1)
}

/// Reads `desc` from `store` in full, verified against its digest and size.
///
/// # Errors
/// Those of [`fetch`](ReadStore::fetch); [`StoreError::Source`] for an error in the middle of
/// the stream (bytes that do not match their digest included); [`StoreError::SizeMismatch`]
/// when another number of bytes arrives.
async fn read_full<S: ReadStore + ?Sized>(store: &S, desc: &Descriptor) -> Result<()> {
    let mut s = store.fetch(desc).await?;
    let mut got = 0u64;
    while let Some(chunk) = s.next().await {
        let chunk = chunk.map_err(|source| StoreError::Source {
            digest: desc.digest.clone(),
            source,
        })?;
        got = got.saturating_add(chunk.len() as u64);
    }
    if got != desc.size {
        return Err(StoreError::SizeMismatch {
            digest: desc.digest.clone(),
            expected: desc.size,
            actual: got,
        });
    }
    Ok(())
}

/// Reads `desc` back from `store` as `mode` says: manifests (and everything under
/// [`VerifyMode::Full`], and empty content) in full, verified; blobs otherwise by their last
/// byte ([`last_byte_served`]). `false` when the store does not serve it.
async fn read_back<S: ReadStore + ?Sized>(
    store: &S,
    desc: &Descriptor,
    mode: VerifyMode,
) -> Result<bool> {
    if desc.is_manifest() || mode == VerifyMode::Full || desc.size == 0 {
        return read_full(store, desc).await.map(|()| true);
    }
    last_byte_served(store, desc).await
}

/// The mode to check with when the destination's word is in doubt whatever the options say
/// (content of another size, the check after a repair): at least [`VerifyMode::Range`].
fn at_least_range(mode: VerifyMode) -> VerifyMode {
    match mode {
        VerifyMode::Trust => VerifyMode::Range,
        m => m,
    }
}

/// What the destination said about a node the copy did not stream into it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Claim {
    /// `stat` answered that it has content of this size.
    Has(u64),
    /// A cross-repository mount answered success.
    Mounted,
    /// A push of the manifest's bytes answered success.
    Pushed,
}

impl<S, D> Run<'_, S, D>
where
    S: ReadStore + TagStore + ?Sized,
    D: Store + ?Sized,
{
    /// Checks the destination's `claim` about `node` as the verify mode says (content of another
    /// size is read back whatever the mode) and returns `done` when it holds; stores the node
    /// again ([`repair`](Self::repair)) when it does not.
    pub(super) async fn confirm(
        &self,
        node: &Node,
        target: &Descriptor,
        claim: Claim,
        done: Done,
    ) -> std::result::Result<Done, Fault> {
        let held = match claim {
            // Another size: a truncated local file, or a registry that answered HEAD without a
            // length. Read it back (at least its last byte) before storing it again.
            Claim::Has(size) if size != target.size => {
                self.serves_as(target, at_least_range(self.options.verify), false)
                    .await?
            }
            _ if self.options.verify == VerifyMode::Trust => true,
            _ => self.serves(target).await?,
        };
        if held {
            self.meter.add(target.size);
            return Ok(done);
        }
        match claim {
            Claim::Has(size) if size != target.size => {
                warn!(digest = %target.digest, size, expected = target.size, "destination has content of another size; storing it again");
            }
            Claim::Has(_) => {
                warn!(digest = %target.digest, store = %self.dst_name, "destination claims content it does not serve; storing it again");
            }
            Claim::Mounted => {
                warn!(digest = %target.digest, store = %self.dst_name, "mount claimed success but the content is not served; uploading it");
            }
            Claim::Pushed => {
                warn!(digest = %target.digest, store = %self.dst_name, "manifest accepted but not served; storing it again");
            }
        }
        self.repair(node).await
    }

    /// Whether the destination really serves `desc` (read back as the verify mode says). Any
    /// failure to serve content the destination claims counts as a lie (the content is then
    /// stored again), a protocol violation of a registry included.
    async fn serves(&self, desc: &Descriptor) -> std::result::Result<bool, Fault> {
        self.serves_as(desc, self.options.verify, false).await
    }

    /// [`serves`](Self::serves) with an explicit mode. With `strict` (the check after a
    /// repair), only a clear "not there / not these bytes" answer counts as not served; other
    /// failures (a backend error that may be the network) are returned, so the piece of content
    /// is retried rather than declared a lie.
    async fn serves_as(
        &self,
        desc: &Descriptor,
        mode: VerifyMode,
        strict: bool,
    ) -> std::result::Result<bool, Fault> {
        let r = read_back(self.dst, desc, mode).await;
        self.stats_lock().verified += 1;
        match r {
            Ok(served) => Ok(served),
            Err(e)
                if e.is_not_found()
                    || matches!(
                        e,
                        StoreError::Verify(_)
                            | StoreError::Source { .. }
                            | StoreError::SizeMismatch { .. }
                    ) =>
            {
                debug!(digest = %desc.digest, error = %e, "read-back failed");
                Ok(false)
            }
            Err(e @ StoreError::Backend { .. }) if !strict => {
                warn!(digest = %desc.digest, error = %error_chain(&e), "read-back failed; taking the content as not served");
                Ok(false)
            }
            Err(e) => Err(Fault::store(Destination, e)),
        }
    }

    /// Stores a node again over a lying existence answer
    /// ([`push_forced`](WriteStore::push_forced)), then checks that it is served.
    async fn repair(&self, node: &Node) -> std::result::Result<Done, Fault> {
        let target = strip(&node.target);
        self.meter.emit(ProgressEvent::Started {
            desc: target.clone(),
            resumed_from: 0,
        });
        let data = match &node.bytes {
            Some(b) => bytes_stream(b.clone()),
            None => self
                .meter
                .counted(&target, self.src.fetch(&node.src).await.at(Source)?),
        };
        if node.bytes.is_some() {
            self.meter.add(target.size);
        }
        self.dst
            .push_forced(&target, data)
            .await
            .map_err(write_fault)?;
        if !self
            .serves_as(&target, at_least_range(self.options.verify), true)
            .await?
        {
            return Err(self.unserved(
                &target,
                "it still does not serve the content after it was stored again".to_owned(),
            ));
        }
        Ok(Done::repaired(target.size))
    }

    /// Tags the result (unless `tagged`: it was stored under its tag); unless trusting the
    /// destination, checks that the tag resolves to it, storing the root again and re-tagging
    /// once when it does not.
    pub(super) async fn tag_checked(
        &self,
        result: &Descriptor,
        tag: &str,
        tagged: bool,
    ) -> std::result::Result<(), Fault> {
        if !tagged {
            self.dst.tag(result, tag).await.at(Destination)?;
        }
        if self.options.verify == VerifyMode::Trust {
            return Ok(());
        }
        let ok = matches!(self.dst.resolve(tag).await, Ok(d) if d.digest == result.digest);
        if ok {
            return Ok(());
        }
        warn!(tag, digest = %result.digest, store = %self.dst_name, "tag does not resolve to the copied root; storing the root again");
        let node = self
            .plan
            .nodes
            .values()
            .find(|n| n.target.digest == result.digest);
        if let Some(node) = node {
            self.repair(node).await?;
        }
        self.dst.tag(result, tag).await.at(Destination)?;
        match self.dst.resolve(tag).await {
            Ok(d) if d.digest == result.digest => Ok(()),
            Ok(d) => Err(self.unserved(
                result,
                format!("tag {tag:?} resolves to {} after it was written", d.digest),
            )),
            Err(e) => Err(self.unserved(
                result,
                format!("tag {tag:?} does not resolve after it was written: {e}"),
            )),
        }
    }

    /// Unless trusting the destination, reads every piece of content of the result back.
    pub(super) async fn read_back_all(&self) -> std::result::Result<(), Fault> {
        if self.options.verify == VerifyMode::Trust {
            return Ok(());
        }
        for d in &self.plan.order {
            let target = strip(&self.plan.nodes[d].target);
            if !self.serves(&target).await? {
                return Err(
                    self.unserved(&target, "the copied content does not read back".to_owned())
                );
            }
        }
        Ok(())
    }

    /// The destination claims `desc` but does not serve it.
    fn unserved(&self, desc: &Descriptor, detail: String) -> Fault {
        Fault::store(
            Destination,
            StoreError::ClaimsUnserved {
                store: self.dst_name.clone(),
                digest: desc.digest.clone(),
                detail,
            },
        )
    }
}
