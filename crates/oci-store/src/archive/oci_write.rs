//! The end of an `oci-archive`: `index.json`, listing every tag (as an
//! `org.opencontainers.image.ref.name` annotation, as skopeo and umoci write them) and every
//! manifest pushed that is neither tagged nor listed by another manifest pushed (an untagged
//! root, as copied by digest).

use std::collections::{BTreeMap, HashSet};

use oci_digest::Digest;
use oci_manifest::build::IndexBuilder;
use oci_manifest::{Descriptor, annotations};
use tar::EntryType;

use super::writer::{ArchiveWriter, State};
use crate::error::{Result, StoreError};

/// Writes `index.json`; returns how many entries it lists.
pub(crate) fn finish(w: &ArchiveWriter, st: &mut State) -> Result<usize> {
    let mut entries = Vec::new();
    let mut tagged: HashSet<Digest> = HashSet::new();
    for (tag, desc) in &st.tags {
        let mut d = Descriptor::new(desc.media_type.clone(), desc.digest.clone(), desc.size);
        d.platform = desc.platform.clone();
        d.annotations = Some(BTreeMap::from([(
            annotations::REF_NAME.to_owned(),
            tag.clone(),
        )]));
        entries.push(d);
        tagged.insert(desc.digest.clone());
    }
    let children: HashSet<&Digest> = st
        .pushed
        .iter()
        .flat_map(|p| p.manifest.children().iter().map(|c| &c.digest))
        .collect();
    for p in &st.pushed {
        if !tagged.contains(&p.desc.digest) && !children.contains(&p.desc.digest) {
            entries.push(Descriptor::new(
                p.desc.media_type.clone(),
                p.desc.digest.clone(),
                p.desc.size,
            ));
            tagged.insert(p.desc.digest.clone());
        }
    }
    let n = entries.len();
    let index = IndexBuilder::oci()
        .manifests(entries)
        .build()
        .map_err(|source| StoreError::InvalidManifest {
            digest: oci_digest::Algorithm::Sha256.hash(b"index.json"),
            source,
        })?;
    w.write_member(st, "index.json", index.raw(), EntryType::Regular, None)?;
    Ok(n)
}
