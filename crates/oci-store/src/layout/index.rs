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
    /// `null` is read as empty: `umoci init` writes `"manifests": null` in a fresh layout.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub manifests: Vec<Descriptor>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<Descriptor>, D::Error> {
    Ok(Option::<Vec<Descriptor>>::deserialize(d)?.unwrap_or_default())
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
pub(crate) const MAX_INDEX_SIZE: u64 = 64 << 20;

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
                size: Some(d.size),
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn desc(n: u8) -> Descriptor {
        Descriptor::new(
            media_types::OCI_MANIFEST,
            oci_digest::Algorithm::Sha256.hash(&[n]),
            u64::from(n),
        )
    }

    #[test]
    fn umoci_init_null_manifests_is_an_empty_layout() {
        let raw = br#"{"schemaVersion":2,"manifests":null}"#;
        let mut idx = IndexFile::parse(Path::new("index.json"), raw).unwrap();
        assert!(idx.manifests.is_empty());
        idx.set_tag(&desc(1), "v1");
        let out: serde_json::Value = serde_json::from_slice(&idx.to_bytes().unwrap()).unwrap();
        assert_eq!(out["manifests"][0]["annotations"][REF_NAME], "v1");
        // A wrong type is still refused.
        assert!(
            IndexFile::parse(
                Path::new("index.json"),
                br#"{"schemaVersion":2,"manifests":{}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn unknown_fields_survive_a_rewrite() {
        let raw = br#"{"schemaVersion":2,"annotations":{"x":"y"},"vendor":[1,2],"manifests":[]}"#;
        let mut idx = IndexFile::parse(Path::new("index.json"), raw).unwrap();
        idx.set_tag(&desc(1), "v1");
        let out: serde_json::Value = serde_json::from_slice(&idx.to_bytes().unwrap()).unwrap();
        assert_eq!(out["vendor"], serde_json::json!([1, 2]));
        assert_eq!(out["annotations"]["x"], "y");
        assert_eq!(out["manifests"][0]["annotations"][REF_NAME], "v1");
        assert!(
            out.get("mediaType").is_none(),
            "not added when the writer left it out"
        );
    }

    proptest! {
        /// Tag operations behave like a map from tag to descriptor; untagged entries stay.
        #[test]
        fn tags_behave_like_a_map(ops in proptest::collection::vec((0u8..5, 0u8..4, any::<bool>()), 0..40)) {
            let mut idx = IndexFile::default();
            idx.manifests.push(desc(200)); // an untagged entry from another tool
            let mut model: BTreeMap<String, Descriptor> = BTreeMap::new();
            for (t, d, set) in ops {
                let tag = format!("t{t}");
                if set {
                    idx.set_tag(&desc(d), &tag);
                    model.insert(tag, desc(d));
                } else {
                    prop_assert_eq!(idx.remove_tag(&tag), model.remove(&tag).is_some());
                }
                let reparsed = IndexFile::parse(Path::new("i"), &idx.to_bytes().unwrap()).unwrap();
                prop_assert_eq!(reparsed.tags(), model.keys().cloned().collect::<Vec<_>>());
                for (k, v) in &model {
                    prop_assert_eq!(&reparsed.resolve(k).unwrap().digest, &v.digest);
                }
                prop_assert!(reparsed.manifests.iter().any(|m| m.digest == desc(200).digest));
            }
        }

        /// Arbitrary bytes never panic the parser.
        #[test]
        fn parse_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = IndexFile::parse(Path::new("i"), &raw);
        }
    }
}
