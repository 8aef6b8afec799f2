//! `index.json` and `oci-layout`: reading, validating and atomically rewriting.

use std::path::Path;

use oci_manifest::{Descriptor, annotations::REF_NAME, media_types};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::gc::{Parent, Root};

/// The layout's `index.json`, keeping fields this crate does not know.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IndexFile {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl Default for IndexFile {
    fn default() -> Self {
        IndexFile {
            schema_version: 2,
            media_type: Some(media_types::OCI_INDEX.to_owned()),
            manifests: Vec::new(),
            other: serde_json::Map::new(),
        }
    }
}

/// Largest `index.json` read (it lists roots only; 64 MiB is far beyond any real one).
const MAX_INDEX_SIZE: u64 = 64 << 20;

impl IndexFile {
    /// Parses `index.json` bytes read from `path`.
    pub(crate) fn parse(path: &Path, raw: &[u8]) -> Result<IndexFile> {
        if raw.len() as u64 > MAX_INDEX_SIZE {
            return Err(StoreError::CorruptLayout {
                path: path.to_owned(),
                reason: format!(
                    "{} bytes, more than the limit of {MAX_INDEX_SIZE}",
                    raw.len()
                ),
                source: None,
            });
        }
        let idx: IndexFile =
            serde_json::from_slice(raw).map_err(|e| StoreError::CorruptLayout {
                path: path.to_owned(),
                reason: "not a valid image index".into(),
                source: Some(e),
            })?;
        if idx.schema_version != 2 {
            return Err(StoreError::CorruptLayout {
                path: path.to_owned(),
                reason: format!("schemaVersion {} (expected 2)", idx.schema_version),
                source: None,
            });
        }
        Ok(idx)
    }

    /// Serializes for writing.
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| StoreError::backend("serialize index.json", e))
    }

    /// The tag (reference name) of an entry.
    pub(crate) fn tag_of(d: &Descriptor) -> Option<&str> {
        d.annotation(REF_NAME)
    }

    /// The entry tag `tag` points at (the last one, if a foreign tool wrote duplicates).
    pub(crate) fn resolve(&self, tag: &str) -> Option<&Descriptor> {
        self.manifests
            .iter()
            .rev()
            .find(|d| Self::tag_of(d) == Some(tag))
    }

    /// All tags, sorted and deduplicated.
    pub(crate) fn tags(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .manifests
            .iter()
            .filter_map(|d| Self::tag_of(d).map(str::to_owned))
            .collect();
        t.sort();
        t.dedup();
        t
    }

    /// Points `tag` at `desc`, replacing entries with the same tag.
    pub(crate) fn set_tag(&mut self, desc: &Descriptor, tag: &str) {
        self.manifests.retain(|d| Self::tag_of(d) != Some(tag));
        let mut entry = desc.clone();
        entry
            .annotations
            .get_or_insert_with(Default::default)
            .insert(REF_NAME.to_owned(), tag.to_owned());
        self.manifests.push(entry);
    }

    /// Removes entries tagged `tag`; whether any was.
    pub(crate) fn remove_tag(&mut self, tag: &str) -> bool {
        let before = self.manifests.len();
        self.manifests.retain(|d| Self::tag_of(d) != Some(tag));
        self.manifests.len() != before
    }

    /// Roots of the graph: tagged and untagged entries.
    pub(crate) fn roots(&self) -> Vec<Root> {
        self.manifests
            .iter()
            .enumerate()
            .map(|(i, d)| Root {
                parent: match Self::tag_of(d) {
                    Some(t) => Parent::Tag(t.to_owned()),
                    None => Parent::UntaggedEntry(i),
                },
                digest: d.digest.clone(),
                media_type: Some(d.media_type.clone()),
            })
            .collect()
    }
}

/// The `oci-layout` file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LayoutMarker {
    pub image_layout_version: String,
}

/// Checks `oci-layout` content.
pub(crate) fn check_marker(path: &Path, raw: &[u8]) -> Result<()> {
    let m: LayoutMarker = serde_json::from_slice(raw).map_err(|e| StoreError::CorruptLayout {
        path: path.to_owned(),
        reason: "not a valid oci-layout file".into(),
        source: Some(e),
    })?;
    if !m.image_layout_version.starts_with("1.") {
        return Err(StoreError::CorruptLayout {
            path: path.to_owned(),
            reason: format!(
                "imageLayoutVersion {:?} is not supported (1.x is)",
                m.image_layout_version
            ),
            source: None,
        });
    }
    Ok(())
}
