//! Walking the graph below a root: every descriptor once, children before parents.

use std::collections::HashSet;

use oci_digest::Digest;
use oci_manifest::Descriptor;

use crate::error::{Result, StoreError};
use crate::traits::ReadStore;

/// Lists every descriptor reachable from `root` in post order (children before the manifests
/// that refer to them, `root` last), each digest once. Manifests are fetched verified (with the
/// manifest size limit) and parsed; other content is not read.
///
/// This is the order a copy writes in, so that a manifest is only stored after all it refers to.
///
/// # Errors
/// [`StoreError::NestingTooDeep`] when manifests nest deeper than `max_depth` below the root
/// (`root` is depth 0, an index's manifests depth 1); [`StoreError::Cycle`] when a manifest
/// refers back to one on the path (only possible with corrupt or hostile content); any
/// fetch or parse error, with the digest.
///
/// ```
/// use bytes::Bytes;
/// use oci_manifest::{Descriptor, build::ImageManifestBuilder};
/// use oci_store::{MemoryStore, WriteStore, walk};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let config = Bytes::from_static(b"{}");
/// let config_desc = Descriptor::new("application/vnd.oci.image.config.v1+json",
///     oci_digest::Algorithm::Sha256.hash(&config), 2);
/// let m = ImageManifestBuilder::oci(config_desc.clone()).build()?;
/// store.push_bytes(&config_desc, config).await?;
/// store.push_bytes(&m.descriptor(), m.raw().clone()).await?;
/// let all = walk(&store, &m.descriptor(), 8).await?;
/// assert_eq!(all, vec![config_desc, m.descriptor()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn walk<S: ReadStore + ?Sized>(
    store: &S,
    root: &Descriptor,
    max_depth: usize,
) -> Result<Vec<Descriptor>> {
    struct Frame {
        desc: Descriptor,
        children: Vec<Descriptor>,
        next: usize,
    }
    let mut out = Vec::new();
    let mut done: HashSet<Digest> = HashSet::new();
    let mut on_path: HashSet<Digest> = HashSet::new();
    let mut stack: Vec<Frame> = Vec::new();

    // Enters `desc`: a leaf goes straight to the output; a manifest gets a frame.
    let mut pending = Some(root.clone());
    loop {
        if let Some(desc) = pending.take()
            && !done.contains(&desc.digest)
        {
            if on_path.contains(&desc.digest) {
                return Err(StoreError::Cycle {
                    root: root.digest.clone(),
                    digest: desc.digest,
                });
            }
            if desc.is_manifest() {
                if stack.len() > max_depth {
                    return Err(StoreError::NestingTooDeep {
                        root: root.digest.clone(),
                        digest: desc.digest,
                        limit: max_depth,
                    });
                }
                let m = store.fetch_manifest(&desc).await?;
                on_path.insert(desc.digest.clone());
                stack.push(Frame {
                    desc,
                    children: m.children().to_vec(),
                    next: 0,
                });
            } else {
                done.insert(desc.digest.clone());
                out.push(desc);
            }
        }
        let Some(top) = stack.last_mut() else {
            break;
        };
        if top.next < top.children.len() {
            pending = Some(top.children[top.next].clone());
            top.next += 1;
        } else if let Some(f) = stack.pop() {
            on_path.remove(&f.desc.digest);
            done.insert(f.desc.digest.clone());
            out.push(f.desc);
        }
    }
    Ok(out)
}
