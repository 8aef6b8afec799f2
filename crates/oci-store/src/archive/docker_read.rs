//! Reading a `docker-archive` (the `docker save` format): `manifest.json` lists each image's
//! configuration file, names (`RepoTags`) and layer files; each image becomes a Docker
//! schema 2 manifest made here, whose layers are the layer files as stored.
//!
//! Checked while opening: every file `manifest.json` names exists (links followed inside the
//! archive); the configuration parses, lists as many diff IDs as there are layers, and hashes
//! to the digest its file name states (`<hex>.json`, `blobs/sha256/<hex>`); an uncompressed
//! layer is named by its diff ID (so fetching it verifies the diff ID), and a layer file named
//! by a digest (`<hex>.tar`, `blobs/sha256/<hex>`) must be that layer's; a compressed layer is
//! hashed once here to learn its digest. Layer bytes are verified when they are read.

use std::collections::HashMap;

use bytes::Bytes;
use oci_digest::{Algorithm, Digest, Digester};
use oci_manifest::build::ImageManifestBuilder;
use oci_manifest::{Descriptor, media_types as mt};
use serde::Deserialize;

use super::ArchiveImage;
use super::errors::invalid;
use super::io::{CHUNK, Compression, read_at};
use super::reader::{Content, Loaded, Opened};
use super::tar_index::Data;
use crate::error::{Result, StoreError};

/// One entry of `manifest.json`.
#[derive(Deserialize)]
struct Item {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// The part of an image configuration read here.
#[derive(Deserialize)]
struct Config {
    rootfs: Option<RootFs>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// The digest a file name states: `<64 hex>.json`, `<64 hex>.tar`, `blobs/sha256/<64 hex>`.
fn named_digest(name: &str) -> Option<Digest> {
    let hex = name
        .strip_suffix(".json")
        .or_else(|| name.strip_suffix(".tar"))
        .or_else(|| name.strip_prefix("blobs/sha256/"))?;
    if hex.contains('/') {
        return None;
    }
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// Reads `manifest.json` and makes each image's manifest.
pub(crate) fn load(a: &Opened<'_>) -> Result<Loaded> {
    let limit = a.options.max_metadata;
    let Some(raw) = a.read_small("manifest.json", limit)? else {
        return Err(invalid(
            a.path,
            "manifest.json",
            "is missing: this is not a docker-archive (`docker save`) file",
        ));
    };
    if let Some(d) = duplicate_key(&raw) {
        return Err(invalid(a.path, "manifest.json", d));
    }
    let items: Vec<Item> = serde_json::from_slice(&raw)
        .map_err(|e| invalid(a.path, "manifest.json", format!("cannot be parsed: {e}")))?;
    if items.is_empty() {
        return Err(invalid(a.path, "manifest.json", "lists no image"));
    }
    let mut loaded = Loaded::default();
    // Layer digests already learnt, by layer file.
    let mut layer_cache: HashMap<String, (Digest, Compression)> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let config = a.read_small(&item.config, limit)?.ok_or_else(|| {
            invalid(
                a.path,
                &item.config,
                format!("is listed as the config of manifest.json[{i}] but is not in the archive"),
            )
        })?;
        let config_digest = Algorithm::Sha256.hash(&config);
        if let Some(named) = named_digest(&item.config)
            && named != config_digest
        {
            return Err(invalid(
                a.path,
                &item.config,
                format!("hashes to {config_digest}, but its name says {named}"),
            ));
        }
        let parsed: Config = serde_json::from_slice(&config).map_err(|e| {
            invalid(
                a.path,
                &item.config,
                format!("is not an image configuration: {e}"),
            )
        })?;
        let diff_ids = parsed.rootfs.map(|r| r.diff_ids).ok_or_else(|| {
            invalid(
                a.path,
                &item.config,
                "has no rootfs (not an image configuration)",
            )
        })?;
        if diff_ids.len() != item.layers.len() {
            return Err(invalid(
                a.path,
                &item.config,
                format!(
                    "lists {} diff IDs, but manifest.json[{i}] lists {} layers",
                    diff_ids.len(),
                    item.layers.len()
                ),
            ));
        }
        let config_desc = Descriptor::new(
            mt::DOCKER_CONFIG,
            config_digest.clone(),
            config.len() as u64,
        );
        let config_data = a
            .index
            .file(a.path, &item.config)?
            .ok_or_else(|| invalid(a.path, &item.config, "vanished from the index"))?;
        loaded
            .blobs
            .insert(config_digest.clone(), Content::Member(config_data));
        let mut layers = Vec::with_capacity(item.layers.len());
        for (layer, diff_id) in item.layers.iter().zip(&diff_ids) {
            let diff_id = Digest::parse(diff_id).map_err(|e| {
                invalid(
                    a.path,
                    &item.config,
                    format!("rootfs.diff_ids has {diff_id:?}: {e}"),
                )
            })?;
            let data = a.index.file(a.path, layer)?.ok_or_else(|| {
                invalid(
                    a.path,
                    layer,
                    format!("is listed as a layer of manifest.json[{i}] but is not in the archive"),
                )
            })?;
            let (digest, compression) = match layer_cache.get(layer) {
                Some(known) => known.clone(),
                None => {
                    let learnt = layer_digest(a, layer, data, &diff_id)?;
                    layer_cache.insert(layer.clone(), learnt.clone());
                    learnt
                }
            };
            if compression == Compression::None && digest != diff_id {
                return Err(invalid(
                    a.path,
                    layer,
                    format!(
                        "is uncompressed, so it must be the layer of diff ID {diff_id}, but it is {digest}"
                    ),
                ));
            }
            let media_type = match compression {
                Compression::None => mt::DOCKER_LAYER_TAR,
                Compression::Gzip => mt::DOCKER_LAYER_GZIP,
                Compression::Zstd => mt::DOCKER_LAYER_ZSTD,
                other => {
                    return Err(invalid(
                        a.path,
                        layer,
                        format!(
                            "is {}-compressed, which no image manifest can describe",
                            other.name()
                        ),
                    ));
                }
            };
            loaded.blobs.insert(digest.clone(), Content::Member(data));
            layers.push(Descriptor::new(media_type, digest, data.size));
        }
        let manifest = ImageManifestBuilder::docker(config_desc)
            .layers(layers)
            .build()
            .map_err(|source| StoreError::InvalidManifest {
                digest: config_digest.clone(),
                source,
            })?;
        let desc = manifest.descriptor();
        loaded.blobs.insert(
            desc.digest.clone(),
            Content::Bytes(Bytes::clone(manifest.raw())),
        );
        loaded.images.push(ArchiveImage {
            descriptor: desc,
            tags: item.repo_tags.clone().unwrap_or_default(),
        });
    }
    Ok(loaded)
}

/// The digest of a layer file as stored and its compression. An uncompressed layer is its
/// diff ID (checked when it is read); one whose name states a digest is that digest (checked
/// when read); only a compressed layer with no digest in its name is hashed here.
fn layer_digest(
    a: &Opened<'_>,
    name: &str,
    data: Data,
    diff_id: &Digest,
) -> Result<(Digest, Compression)> {
    let mut head = [0u8; 6];
    let n = head
        .len()
        .min(usize::try_from(data.size).unwrap_or(usize::MAX));
    read_at(a.file, &mut head[..n], data.offset).map_err(|e| StoreError::io("read", a.path, e))?;
    let compression = Compression::sniff(&head[..n]);
    if compression == Compression::None {
        if let Some(named) = named_digest(name)
            && named != *diff_id
        {
            return Err(invalid(
                a.path,
                name,
                format!("is uncompressed and named {named}, but the config's diff ID is {diff_id}"),
            ));
        }
        return Ok((diff_id.clone(), compression));
    }
    if let Some(named) = name
        .strip_prefix("blobs/sha256/")
        .and_then(|_| named_digest(name))
    {
        return Ok((named, compression));
    }
    let mut d = Digester::new(Algorithm::Sha256);
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < data.size {
        let want = usize::try_from(data.size - done)
            .unwrap_or(CHUNK)
            .min(CHUNK);
        read_at(a.file, &mut buf[..want], data.offset + done)
            .map_err(|e| StoreError::io("read", a.path, e))?;
        d.update(&buf[..want]);
        done += want as u64;
    }
    Ok((d.finalize(), compression))
}

/// The first key that appears twice in one object of `raw` (valid JSON), if any.
fn duplicate_key(raw: &[u8]) -> Option<String> {
    #[derive(Default)]
    struct Strict;
    impl<'de> serde::de::Visitor<'de> for Strict {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<M: serde::de::MapAccess<'de>>(
            self,
            mut m: M,
        ) -> std::result::Result<Self::Value, M::Error> {
            let mut seen = std::collections::HashSet::new();
            let mut found = None;
            while let Some(k) = m.next_key::<String>()? {
                let inner: Option<String> = m.next_value_seed(StrictSeed)?;
                if found.is_none() {
                    found = inner;
                }
                if !seen.insert(k.clone()) && found.is_none() {
                    found = Some(format!("has the key {k:?} twice in one object"));
                }
            }
            Ok(found)
        }
        fn visit_seq<S: serde::de::SeqAccess<'de>>(
            self,
            mut s: S,
        ) -> std::result::Result<Self::Value, S::Error> {
            let mut found = None;
            while let Some(inner) = s.next_element_seed(StrictSeed)? {
                if found.is_none() {
                    found = inner;
                }
            }
            Ok(found)
        }
        fn visit_bool<E>(self, _: bool) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E>(self, _: &str) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }
    }
    struct StrictSeed;
    impl<'de> serde::de::DeserializeSeed<'de> for StrictSeed {
        type Value = Option<String>;
        fn deserialize<D: serde::Deserializer<'de>>(
            self,
            d: D,
        ) -> std::result::Result<Self::Value, D::Error> {
            d.deserialize_any(Strict)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(raw);
    serde::de::DeserializeSeed::deserialize(StrictSeed, &mut de)
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_in_names_are_recognised() {
        let hex = "a".repeat(64);
        assert!(named_digest(&format!("{hex}.json")).is_some());
        assert!(named_digest(&format!("{hex}.tar")).is_some());
        assert!(named_digest(&format!("blobs/sha256/{hex}")).is_some());
        assert!(named_digest(&format!("{hex}/layer.tar")).is_none());
        assert!(named_digest("config.json").is_none());
    }

    #[test]
    fn duplicate_keys_are_found() {
        assert!(duplicate_key(br#"[{"Config":"a","Config":"b"}]"#).is_some());
        assert!(duplicate_key(br#"[{"Config":"a","Layers":[{"x":1,"x":2}]}]"#).is_some());
        assert!(duplicate_key(br#"[{"Config":"a","Layers":["x"]}]"#).is_none());
    }
}
