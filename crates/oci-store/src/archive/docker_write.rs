//! The docker-archive parts of [`ArchiveWriter`]: which blobs are configurations, the names of
//! images (Docker references), the checks made when an image manifest arrives (an image, not
//! an index nor an artifact; its configuration's diff IDs those of its layers), and the end of
//! the archive as skopeo writes it: the legacy layer directories (`<id>/layer.tar` linking to
//! the layer, `<id>/json`, `<id>/VERSION`), `manifest.json`, then `repositories`.

use std::collections::{BTreeMap, HashMap};

use oci_digest::{Algorithm, Digest};
use oci_manifest::{Descriptor, Manifest, media_types as mt};
use serde::{Deserialize, Serialize};
use tar::EntryType;

use super::docker_ref::RepoTag;
use super::errors::{invalid, unsupported};
use super::io::read_at;
use super::writer::{ArchiveWriter, State, Stored};
use crate::error::{Result, StoreError};
use crate::util::not_found;

/// Whether `desc` is an image configuration (stored as `<hex>.json`).
pub(crate) fn is_config(desc: &Descriptor) -> bool {
    matches!(
        mt::essence(&desc.media_type),
        mt::DOCKER_CONFIG | mt::OCI_CONFIG
    )
}

/// Layer media types a docker-archive can hold.
fn is_image_layer(media_type: &str) -> bool {
    matches!(
        mt::essence(media_type),
        mt::DOCKER_LAYER_TAR
            | mt::DOCKER_LAYER_GZIP
            | mt::DOCKER_LAYER_ZSTD
            | mt::OCI_LAYER_TAR
            | mt::OCI_LAYER_GZIP
            | mt::OCI_LAYER_ZSTD
    )
}

/// The key a tag is stored under: the normalised Docker reference.
pub(crate) fn tag_key(tag: &str) -> Result<String> {
    RepoTag::parse(tag)
        .map(|r| r.to_string())
        .ok_or_else(|| StoreError::InvalidTag {
            tag: crate::error::cut(tag),
            reason: "a docker-archive names images with Docker references NAME[:TAG] \
                     (app:v1, registry.example/team/app:v1)",
        })
}

#[derive(Deserialize)]
struct Config {
    rootfs: Option<RootFs>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

fn diff_ids_of(w: &ArchiveWriter, config: &Digest, raw: &[u8]) -> Result<Vec<Digest>> {
    let member = format!("{}.json", config.encoded());
    let bad = |reason: String| invalid(w.path(), &member, reason);
    let c: Config = serde_json::from_slice(raw)
        .map_err(|e| bad(format!("is not an image configuration: {e}")))?;
    let ids = c
        .rootfs
        .ok_or_else(|| bad("has no rootfs (not an image configuration)".to_owned()))?
        .diff_ids;
    ids.iter()
        .map(|d| Digest::parse(d).map_err(|e| bad(format!("rootfs.diff_ids has {d:?}: {e}"))))
        .collect()
}

/// Checks an image manifest pushed into a docker-archive: an image (not an index, not an
/// artifact), its children stored, and each layer's diff ID the configuration's.
pub(crate) async fn check_manifest(
    w: &ArchiveWriter,
    desc: &Descriptor,
    m: &Manifest,
) -> Result<()> {
    if m.is_index() {
        return Err(unsupported(
            "an index (multi-platform image) in a docker-archive: copy one platform",
        ));
    }
    let config = m.config().ok_or_else(|| not_found(&desc.digest))?;
    if m.artifact_type().is_some() || !is_config(config) {
        return Err(unsupported(
            "an artifact (a manifest whose config is not an image configuration) in a docker-archive",
        ));
    }
    if let Some(l) = m.layers().iter().find(|l| !is_image_layer(&l.media_type)) {
        let _ = l;
        return Err(unsupported(
            "a layer whose media type is not an image layer in a docker-archive",
        ));
    }
    let raw = w
        .read_back(&config.digest, w.inner_options().max_metadata)
        .await?;
    let expected = diff_ids_of(w, &config.digest, &raw)?;
    if expected.len() != m.layers().len() {
        return Err(invalid(
            w.path(),
            &format!("{}.json", config.digest.encoded()),
            format!(
                "lists {} diff IDs, but manifest {} has {} layers",
                expected.len(),
                desc.digest,
                m.layers().len()
            ),
        ));
    }
    for (layer, want) in m.layers().iter().zip(expected) {
        let actual = match w.stored(&layer.digest) {
            None => return Err(not_found(&layer.digest)),
            Some(Stored::Decompressed { diff_id, .. }) => Some(diff_id),
            Some(Stored::Member {
                uncompressed: true, ..
            }) => Some(layer.digest.clone()),
            // Stored compressed as received (zstd, or decompression turned off): its diff ID
            // is checked by whoever decompresses it.
            Some(_) => None,
        };
        if let Some(actual) = actual
            && actual != want
        {
            return Err(StoreError::DiffIdMismatch {
                layer: layer.digest.clone(),
                expected: want,
                actual,
            });
        }
    }
    Ok(())
}

/// One entry of `manifest.json`, in the field order Docker and skopeo write.
#[derive(Serialize)]
struct Item {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Writes the legacy layer directories, `manifest.json` and `repositories`; returns how many
/// images `manifest.json` lists (images sharing a configuration are one item, as in skopeo).
pub(crate) fn finish(w: &ArchiveWriter, st: &mut State) -> Result<usize> {
    struct Image {
        config: Digest,
        layers: Vec<(String, Digest)>,
        tags: Vec<String>,
    }
    let mut images: Vec<Image> = Vec::new();
    let mut by_config: HashMap<Digest, usize> = HashMap::new();
    for p in &st.pushed {
        let Some(config) = p.manifest.config() else {
            continue;
        };
        let mut layers = Vec::new();
        for l in p.manifest.layers() {
            let (name, id) = match st.blobs.get(&l.digest) {
                Some(Stored::Decompressed { name, diff_id, .. }) => (name.clone(), diff_id.clone()),
                Some(Stored::Member { name, .. }) => (name.clone(), l.digest.clone()),
                _ => return Err(not_found(&l.digest)),
            };
            layers.push((name, id));
        }
        let tags: Vec<String> = st
            .tags
            .iter()
            .filter(|(_, d)| d.digest == p.desc.digest)
            .map(|(t, _)| t.clone())
            .collect();
        match by_config.get(&config.digest) {
            Some(&i) => {
                for t in tags {
                    if !images[i].tags.contains(&t) {
                        images[i].tags.push(t);
                    }
                }
            }
            None => {
                by_config.insert(config.digest.clone(), images.len());
                images.push(Image {
                    config: config.digest.clone(),
                    layers,
                    tags,
                });
            }
        }
    }
    let mut items = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for img in &images {
        let config_raw = read_stored(w, st, &img.config)?;
        let top = legacy_layers(w, st, img, &config_raw)?;
        if let Some(top) = top {
            for t in &img.tags {
                if let Some(r) = RepoTag::parse(t) {
                    repositories
                        .entry(r.name)
                        .or_default()
                        .insert(r.tag, top.clone());
                }
            }
        }
        items.push(Item {
            config: format!("{}.json", img.config.encoded()),
            repo_tags: img.tags.clone(),
            layers: img.layers.iter().map(|(n, _)| n.clone()).collect(),
        });
    }

    /// The legacy (pre-1.10 `docker load`) layer directories of one image, as skopeo writes
    /// them; returns the top layer's ID.
    fn legacy_layers(
        w: &ArchiveWriter,
        st: &mut State,
        img: &Image,
        config_raw: &[u8],
    ) -> Result<Option<String>> {
        let config: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(config_raw).unwrap_or_default();
        let mut chain: Option<Digest> = None;
        let mut last: Option<String> = None;
        for (i, (name, diff_id)) in img.layers.iter().enumerate() {
            let mut cfg = serde_json::Map::new();
            if let Some(p) = &last {
                cfg.insert("parent".to_owned(), p.clone().into());
            }
            if i + 1 == img.layers.len() {
                for attr in [
                    "architecture",
                    "config",
                    "container",
                    "container_config",
                    "created",
                    "docker_version",
                    "os",
                ] {
                    cfg.insert(
                        attr.to_owned(),
                        config.get(attr).cloned().unwrap_or(serde_json::Value::Null),
                    );
                }
            }
            let next = match &chain {
                None => diff_id.clone(),
                Some(c) => Algorithm::Sha256.hash(format!("{c} {diff_id}").as_bytes()),
            };
            cfg.insert("layer_id".to_owned(), next.to_string().into());
            let id = Algorithm::Sha256
                .hash(&serde_json::to_vec(&cfg).unwrap_or_default())
                .encoded()
                .to_owned();
            cfg.remove("layer_id");
            cfg.insert("id".to_owned(), id.clone().into());
            let json = serde_json::to_vec(&cfg).unwrap_or_default();
            let link_name = format!("{id}/layer.tar");
            if !st.names.contains(&link_name) {
                w.write_member(
                    st,
                    &link_name,
                    b"",
                    EntryType::Symlink,
                    Some(&format!("../{name}")),
                )?;
                w.write_member(
                    st,
                    &format!("{id}/VERSION"),
                    b"1.0",
                    EntryType::Regular,
                    None,
                )?;
                w.write_member(st, &format!("{id}/json"), &json, EntryType::Regular, None)?;
            }
            chain = Some(next);
            last = Some(id);
        }
        Ok(last)
    }

    let manifest_json = serde_json::to_vec(&items)
        .map_err(|e| StoreError::backend("serialise manifest.json", e))?;
    w.write_member(
        st,
        "manifest.json",
        &manifest_json,
        EntryType::Regular,
        None,
    )?;
    let repos = serde_json::to_vec(&repositories)
        .map_err(|e| StoreError::backend("serialise repositories", e))?;
    w.write_member(st, "repositories", &repos, EntryType::Regular, None)?;
    Ok(items.len())
}

/// The bytes of small content stored as a member (a configuration), read while finishing.
fn read_stored(w: &ArchiveWriter, st: &State, digest: &Digest) -> Result<Vec<u8>> {
    let limit = w.inner_options().max_metadata;
    match st.blobs.get(digest) {
        Some(Stored::Member { offset, size, .. }) if *size <= limit => {
            // Bounded by the limit just checked.
            let mut buf = vec![0u8; *size as usize];
            read_at(w.tar_file(), &mut buf, *offset)
                .map_err(|e| StoreError::io("read", w.path(), e))?;
            Ok(buf)
        }
        Some(Stored::Member { size, .. }) => Err(StoreError::ManifestTooLarge {
            digest: digest.clone(),
            size: *size,
            limit,
        }),
        _ => Err(not_found(digest)),
    }
}
