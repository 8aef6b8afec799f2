//! Model-based property test: random sequences of pushes, tags, untags, leases and GC on both
//! stores, checked after every step against a simple model (a set of blobs, a tag map, lease
//! pin sets): existence, exact reference counts, and "content lives while referenced".

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use oci_manifest::build::ImageManifestBuilder;
use oci_manifest::media_types;
use oci_store::{Digest, GcOptions, LayoutOptions, LayoutStore, Lease, ManagedStore, MemoryStore};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Layer(u8),
    Manifest(u8, Vec<u8>),
    Tag(u8, u8),
    Untag(u8),
    LeaseLayer(u8),
    Release,
    Gc,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6).prop_map(Op::Layer),
        (0u8..4, proptest::collection::vec(0u8..6, 0..3)).prop_map(|(m, l)| Op::Manifest(m, l)),
        (0u8..3, 0u8..4).prop_map(|(t, m)| Op::Tag(t, m)),
        (0u8..3).prop_map(Op::Untag),
        (0u8..6).prop_map(Op::LeaseLayer),
        Just(Op::Release),
        Just(Op::Gc),
    ]
}

fn layer(i: u8) -> Blob {
    blob(media_types::OCI_LAYER_GZIP, format!("layer-{i}"))
}

fn config(m: u8) -> Blob {
    blob(media_types::OCI_CONFIG, format!(r#"{{"m":{m}}}"#))
}

fn manifest(m: u8, layers: &[u8]) -> Blob {
    let mut ls: Vec<u8> = layers.to_vec();
    ls.sort();
    ls.dedup();
    from_manifest(
        &ImageManifestBuilder::oci(config(m).desc)
            .layers(ls.iter().map(|&i| layer(i).desc))
            .build()
            .unwrap(),
    )
}

#[derive(Default)]
struct Model {
    blobs: BTreeSet<Digest>,
    /// manifest digest -> children
    edges: BTreeMap<Digest, Vec<Digest>>,
    tags: BTreeMap<u8, Digest>,
    pins: BTreeSet<Digest>,
}

impl Model {
    fn refcount(&self, d: &Digest) -> usize {
        let tags = self.tags.values().filter(|t| *t == d).count();
        let manifests = self
            .edges
            .iter()
            .filter(|(m, ch)| self.blobs.contains(*m) && ch.contains(d))
            .count();
        tags + manifests + usize::from(self.pins.contains(d))
    }

    fn gc(&mut self) {
        let mut live = BTreeSet::new();
        let mut stack: Vec<Digest> = self
            .tags
            .values()
            .cloned()
            .chain(self.pins.iter().cloned())
            .collect();
        while let Some(d) = stack.pop() {
            if !self.blobs.contains(&d) || !live.insert(d.clone()) {
                continue;
            }
            if let Some(ch) = self.edges.get(&d) {
                stack.extend(ch.iter().cloned());
            }
        }
        self.blobs = live;
    }
}

async fn run<S: ManagedStore>(store: &S, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let mut lease: Option<Lease> = None;
    let mut universe: BTreeSet<Digest> = BTreeSet::new();
    for i in 0..6 {
        universe.insert(layer(i).desc.digest);
    }
    for m in 0..4 {
        universe.insert(config(m).desc.digest);
    }
    let gc = GcOptions::default().with_min_age(Duration::ZERO);
    for op in ops {
        match op {
            Op::Layer(i) => {
                let b = layer(*i);
                store.push_bytes(&b.desc, b.data).await.unwrap();
                model.blobs.insert(b.desc.digest);
            }
            Op::Manifest(m, ls) => {
                let c = config(*m);
                store.push_bytes(&c.desc, c.data).await.unwrap();
                model.blobs.insert(c.desc.digest.clone());
                let mb = manifest(*m, ls);
                store.push_bytes(&mb.desc, mb.data.clone()).await.unwrap();
                let mut ch: Vec<Digest> = ls.iter().map(|&i| layer(i).desc.digest).collect();
                ch.sort();
                ch.dedup();
                ch.push(c.desc.digest);
                model.edges.insert(mb.desc.digest.clone(), ch);
                model.blobs.insert(mb.desc.digest.clone());
                universe.insert(mb.desc.digest);
            }
            Op::Tag(t, m) => {
                // Tag the newest manifest pushed for `m`, if stored.
                let found = model
                    .edges
                    .keys()
                    .filter(|d| model.blobs.contains(*d))
                    .nth(usize::from(*m))
                    .cloned();
                if let Some(d) = found {
                    let size = store.stat(&d).await.unwrap().unwrap();
                    let desc =
                        oci_manifest::Descriptor::new(media_types::OCI_MANIFEST, d.clone(), size);
                    store.tag(&desc, &format!("t{t}")).await.unwrap();
                    model.tags.insert(*t, d);
                }
            }
            Op::Untag(t) => {
                let r = store.untag(&format!("t{t}")).await;
                prop_assert_eq!(r.is_ok(), model.tags.remove(t).is_some());
            }
            Op::LeaseLayer(i) => {
                if lease.is_none() {
                    lease = Some(store.create_lease(Duration::from_secs(600)).await.unwrap());
                }
                let Some(l) = &lease else { unreachable!() };
                let b = layer(*i);
                store
                    .with_lease(l)
                    .push_bytes(&b.desc, b.data)
                    .await
                    .unwrap();
                model.blobs.insert(b.desc.digest.clone());
                model.pins.insert(b.desc.digest);
            }
            Op::Release => {
                if let Some(l) = lease.take() {
                    store.release_lease(&l).await.unwrap();
                    model.pins.clear();
                }
            }
            Op::Gc => {
                store.gc(&gc).await.unwrap();
                model.gc();
            }
        }
        for d in &universe {
            prop_assert_eq!(
                store.exists(d).await.unwrap(),
                model.blobs.contains(d),
                "existence of {} after {:?}",
                d,
                op
            );
            if model.blobs.contains(d) {
                prop_assert_eq!(
                    store.refcount(d).await.unwrap(),
                    model.refcount(d),
                    "refcount of {} after {:?}",
                    d,
                    op
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn memory_store_matches_model(ops in proptest::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(&MemoryStore::new(), &ops))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn layout_store_matches_model(ops in proptest::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let t = TempDir::new("model");
        let store = rt.block_on(LayoutStore::open_with(t.path(), &LayoutOptions::create())).unwrap();
        rt.block_on(run(&store, &ops))?;
    }
}
