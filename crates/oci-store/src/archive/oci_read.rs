//! Reading an `oci-archive` (a tar of an OCI image layout): `oci-layout` must say version
//! 1.0.0, `index.json` is the layout's index (its `org.opencontainers.image.ref.name`
//! annotations are the tags), and every file `blobs/<algorithm>/<encoded>` is content under
//! that digest, verified when it is read.

use oci_digest::Digest;
use oci_manifest::{Manifest, annotations, media_types as mt};
use serde::Deserialize;

use super::ArchiveImage;
use super::errors::invalid;
use super::reader::{Content, Loaded, Opened};

use crate::error::Result;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciLayout {
    image_layout_version: String,
}

/// Reads `oci-layout` and `index.json` and lists the blobs.
pub(crate) fn load(a: &Opened<'_>) -> Result<Loaded> {
    let limit = a.options.max_metadata;
    let layout = a.read_small("oci-layout", limit)?.ok_or_else(|| {
        invalid(
            a.path,
            "oci-layout",
            "is missing: this is not an oci-archive (a tar of an OCI image layout)",
        )
    })?;
    let layout: OciLayout = serde_json::from_slice(&layout)
        .map_err(|e| invalid(a.path, "oci-layout", format!("cannot be parsed: {e}")))?;
    if layout.image_layout_version != "1.0.0" {
        return Err(invalid(
            a.path,
            "oci-layout",
            format!(
                "states imageLayoutVersion {:?}; only 1.0.0 is known",
                layout.image_layout_version
            ),
        ));
    }
    let raw = a
        .read_small("index.json", limit)?
        .ok_or_else(|| invalid(a.path, "index.json", "is missing"))?;
    let index = Manifest::parse(raw, Some(mt::OCI_INDEX))
        .map_err(|e| invalid(a.path, "index.json", format!("is not an image index: {e}")))?;
    if !index.is_index() {
        return Err(invalid(a.path, "index.json", "is not an image index"));
    }
    let mut loaded = Loaded::default();
    for name in a.index.names() {
        let Some(rest) = name.strip_prefix("blobs/") else {
            continue;
        };
        let Some((alg, encoded)) = rest.split_once('/') else {
            continue;
        };
        let Ok(digest) = Digest::parse(&format!("{alg}:{encoded}")) else {
            tracing::debug!(member = %super::errors::escape(name), "not a blob name; ignored");
            continue;
        };
        if let Some(data) = a.index.file(a.path, name)? {
            loaded.blobs.insert(digest, Content::Member(data));
        }
    }
    for (i, entry) in index.manifests().iter().enumerate() {
        if !loaded.blobs.contains_key(&entry.digest) {
            return Err(invalid(
                a.path,
                "index.json",
                format!(
                    "manifests[{i}] names {}, which the archive does not hold",
                    entry.digest
                ),
            ));
        }
        let tags = entry
            .annotation(annotations::REF_NAME)
            .map(|t| vec![t.to_owned()])
            .unwrap_or_default();
        loaded.images.push(ArchiveImage {
            descriptor: entry.clone(),
            tags,
        });
    }
    Ok(loaded)
}
