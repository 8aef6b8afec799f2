//! The copy's tests, by topic: `plan` (graph, platforms, formats, referrers, foreign layers,
//! sizes), `run` (retries and their rule, resumption, cancellation, concurrency, leases, errors),
//! `verify` (lies found and repaired, checked existence); here the content and the source they
//! share.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use oci_digest::Digest;
use oci_manifest::build::{ImageManifestBuilder, IndexBuilder};
use oci_manifest::convert::Flavor;
use oci_manifest::{Descriptor, Manifest, Platform, media_types};

use super::referrers::list_referrers;
use super::retry::{backoff, worth_retrying};
use super::*;
use crate::error::{Result, StoreError, error_chain, permanent_cause};
use crate::memory::MemoryStore;
use crate::testing::LyingStore;
use crate::traits::{BlobStream, Location, ManagedStore, WriteStore};

mod plan;
mod run;
mod verify;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

async fn put(store: &MemoryStore, media_type: &str, data: Vec<u8>) -> Descriptor {
    let d = Descriptor::of(media_type, &data);
    store.push_bytes(&d, Bytes::from(data)).await.unwrap();
    d
}

/// An image for `arch` with its own layer and a layer shared by every arch.
async fn image(store: &MemoryStore, arch: &str, docker: bool) -> Descriptor {
    let (cfg_t, layer_t) = if docker {
        (media_types::DOCKER_CONFIG, media_types::DOCKER_LAYER_GZIP)
    } else {
        (media_types::OCI_CONFIG, media_types::OCI_LAYER_GZIP)
    };
    let shared = put(store, layer_t, vec![7u8; 3000]).await;
    let own = put(
        store,
        layer_t,
        format!("layer of {arch}").repeat(500).into_bytes(),
    )
    .await;
    let cfg = put(
        store,
        cfg_t,
        format!(r#"{{"architecture":"{arch}","os":"linux"}}"#).into_bytes(),
    )
    .await;
    let b = if docker {
        ImageManifestBuilder::docker(cfg)
    } else {
        ImageManifestBuilder::oci(cfg)
    };
    let m = b.layer(shared).layer(own).build().unwrap();
    store
        .push_bytes(&m.descriptor(), m.raw().clone())
        .await
        .unwrap();
    m.descriptor().with_platform(Platform::new("linux", arch))
}

/// A three-platform index tagged `multi`.
async fn multi(store: &MemoryStore, docker: bool) -> Manifest {
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64", "s390x"] {
        entries.push(image(store, arch, docker).await);
    }
    let b = if docker {
        IndexBuilder::docker()
    } else {
        IndexBuilder::oci()
    };
    let index = b.manifests(entries).build().unwrap();
    store
        .push_bytes(&index.descriptor(), index.raw().clone())
        .await
        .unwrap();
    store.tag(&index.descriptor(), "multi").await.unwrap();
    index
}

/// Every descriptor below the tag `tag` of `store` is stored there.
async fn complete(store: &MemoryStore, tag: &str) -> Vec<Descriptor> {
    let root = store.resolve(tag).await.unwrap();
    let all = crate::walk::walk(store, &root, 8).await.unwrap();
    for d in &all {
        let got = store.fetch_bytes(d, 1 << 30).await.unwrap();
        assert_eq!(got.len() as u64, d.size);
    }
    all
}

/// A source that counts the bytes it serves and can fail the first fetches of content.
#[derive(Clone, Default)]
struct Src {
    inner: MemoryStore,
    served: Arc<AtomicU64>,
    fetches: Arc<Mutex<HashMap<Digest, usize>>>,
    fail_first: usize,
    fail_always: Option<Digest>,
    /// Yield to the runtime between chunks (so concurrent copies interleave).
    chunked: bool,
    /// Serve this content with one byte flipped.
    corrupt: Option<Digest>,
    /// Claim to be a registry (content comes over the network).
    remote: bool,
}

#[async_trait]
impl ReadStore for Src {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        self.inner.stat(digest).await
    }
    async fn fetch(&self, desc: &Descriptor) -> Result<BlobStream> {
        let n = {
            let mut f = self.fetches.lock().unwrap();
            let n = f.entry(desc.digest.clone()).or_default();
            *n += 1;
            *n
        };
        if self.fail_always.as_ref() == Some(&desc.digest) {
            return Err(StoreError::NotFound {
                digest: desc.digest.clone(),
            });
        }
        if self.corrupt.as_ref() == Some(&desc.digest) {
            let mut data = self.inner.fetch_bytes(desc, 1 << 30).await?.to_vec();
            data[0] ^= 0xff;
            return Ok(crate::traits::bytes_stream(Bytes::from(data)));
        }
        if !desc.is_manifest() && n <= self.fail_first {
            // Half the bytes, then a dropped connection.
            let data = self.inner.fetch_bytes(desc, 1 << 30).await?;
            let half = data.slice(..data.len() / 2);
            self.served.fetch_add(half.len() as u64, Ordering::SeqCst);
            let items: Vec<std::io::Result<Bytes>> = vec![
                Ok(half),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection reset",
                )),
            ];
            return Ok(Box::pin(futures_util::stream::iter(items)));
        }
        let served = Arc::clone(&self.served);
        let s = self.inner.fetch(desc).await?;
        let s = s.inspect(move |c| {
            if let Ok(c) = c {
                served.fetch_add(c.len() as u64, Ordering::SeqCst);
            }
        });
        if self.chunked {
            let data = crate::traits::collect(Box::pin(s), 1 << 30).await?;
            let pieces: Vec<Bytes> = data.chunks(1000).map(Bytes::copy_from_slice).collect();
            return Ok(Box::pin(futures_util::stream::iter(pieces).then(
                |c| async {
                    tokio::task::yield_now().await;
                    Ok(c)
                },
            )));
        }
        Ok(Box::pin(s))
    }
    fn location(&self) -> Option<Location> {
        self.remote
            .then(|| Location::new("registry.test", "source"))
    }
    async fn fetch_range(&self, desc: &Descriptor, range: Range<u64>) -> Result<BlobStream> {
        let served = Arc::clone(&self.served);
        let s = self.inner.fetch_range(desc, range).await?;
        Ok(Box::pin(s.inspect(move |c| {
            if let Ok(c) = c {
                served.fetch_add(c.len() as u64, Ordering::SeqCst);
            }
        })))
    }
}

crate::traits::tags_of_inner!([] Src);
