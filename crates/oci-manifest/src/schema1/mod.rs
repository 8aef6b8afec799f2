//! Docker schema 1 manifests (`application/vnd.docker.distribution.manifest.v1+json` and the
//! signed `...v1+prettyjws`), read and converted to Docker schema 2 or OCI as skopeo
//! (containers/image) converts them.
//!
//! Schema 1 is obsolete, and [`Manifest::parse`] still refuses it
//! ([`ManifestError::Schema1`]): this module is the way through for a copy that asks for a
//! conversion. A schema 1 manifest has no config blob and no diff IDs: its `history` holds one
//! `v1Compatibility` JSON document per entry of `fsLayers` (newest first), the newest one
//! carrying the image's configuration. The conversion:
//!
//! - reads the manifest from the bytes its digest covers: for a signed manifest, the libtrust
//!   JWS payload (the document without `signatures`), which is what registries name by digest
//!   ([`Schema1::digest`]); signatures are not checked (they are made with throwaway keys and
//!   prove nothing about the content);
//! - drops consecutive duplicate history entries and checks the chain of v1 IDs and parents
//!   (as `fixManifestLayers` does);
//! - builds the configuration as `ToSchema2Config` does: the newest `v1Compatibility` object
//!   without `id`, `parent`, `parent_id`, `layer_id`, `throwaway` and `Size`, plus `rootfs`
//!   (the diff IDs, which only the layers' uncompressed bytes can give: the caller computes
//!   them) and `history` (oldest first: `created`, `author`, `created_by` from
//!   `container_config.Cmd`, `comment`, `empty_layer` for throwaway entries), written as Go's
//!   `encoding/json` writes it, so the configuration has skopeo's bytes and digest;
//! - leaves out the layers of throwaway entries (empty layers) and makes a Docker schema 2
//!   manifest (written in Go's field order, as skopeo writes it), or an OCI manifest from that
//!   (config bytes kept: skopeo re-encodes the configuration for OCI, so the OCI
//!   configuration's digest differs from skopeo's while its diff IDs and history are the same).
//!
//! Not done: the re-encoding skopeo applies to configurations of images built by Docker older
//! than 1.8.3 (it adds fields those versions left out); such images convert with their
//! `v1Compatibility` fields as they are.
//!
//! ```
//! use oci_manifest::{convert::Flavor, media_types, schema1::Schema1, Descriptor};
//!
//! let layer = oci_digest::Algorithm::Sha256.hash(b"compressed layer");
//! let raw = format!(
//!     r#"{{"schemaVersion":1,"name":"app","tag":"v1","architecture":"amd64",
//!     "fsLayers":[{{"blobSum":"{layer}"}}],
//!     "history":[{{"v1Compatibility":"{{\"id\":\"{id}\",\"created\":\"2020-01-02T03:04:05Z\",\"container_config\":{{\"Cmd\":[\"/bin/sh\",\"-c\",\"echo hi\"]}},\"os\":\"linux\"}}"}}]}}"#,
//!     id = "a".repeat(64)
//! );
//! let m = Schema1::parse(raw)?;
//! assert!(!m.is_signed());
//! assert_eq!(m.layers().len(), 1);
//!
//! // The diff ID comes from the layer's uncompressed bytes (computed by the caller).
//! let diff_id = oci_digest::Algorithm::Sha256.hash(b"uncompressed layer");
//! let layer_desc = Descriptor::new(media_types::DOCKER_LAYER_GZIP, layer, 16);
//! let out = m.convert(&[(layer_desc, diff_id.clone())], Flavor::Docker)?;
//! assert_eq!(out.manifest.media_type(), media_types::DOCKER_MANIFEST);
//! let config: serde_json::Value = serde_json::from_slice(&out.config)?;
//! assert_eq!(config["rootfs"]["diff_ids"][0], diff_id.as_str());
//! assert_eq!(config["history"][0]["created_by"], "/bin/sh -c echo hi");
//! assert!(config.get("id").is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod gojson;
mod jws;

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use oci_digest::{Algorithm, Digest};
use serde::Deserialize;

use crate::convert::{Flavor, convert};
use crate::descriptor::Descriptor;
use crate::error::ManifestError;
use crate::manifest::{DEFAULT_MAX_MANIFEST_SIZE, Manifest};
use crate::media_types as mt;
use crate::strict;
use gojson::GoTime;

/// A Docker schema 1 manifest, parsed from the bytes its digest covers.
#[derive(Debug, Clone)]
pub struct Schema1 {
    raw: Bytes,
    payload: Bytes,
    digest: Digest,
    signed: bool,
    name: String,
    tag: String,
    architecture: String,
    /// After duplicate entries were dropped; newest first, as in the manifest.
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    blob_sum: Digest,
    v1_compatibility: String,
    compat: Compat,
}

/// The fields of a `v1Compatibility` document the conversion uses.
#[derive(Debug, Clone)]
struct Compat {
    id: String,
    parent: String,
    comment: String,
    created: GoTime,
    cmd: Vec<String>,
    author: String,
    throwaway: bool,
}

/// One layer of a schema 1 image, base first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Schema1Layer {
    /// The (compressed) blob's digest: `blobSum`.
    pub digest: Digest,
    /// Whether its history entry is a throwaway (an empty layer, left out by a conversion).
    pub throwaway: bool,
}

/// The result of [`Schema1::convert`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Schema1Converted {
    /// The new manifest (Docker schema 2 or OCI).
    pub manifest: Manifest,
    /// The new configuration blob the manifest names (it exists nowhere else: store it).
    pub config: Bytes,
    /// The layers of throwaway history entries, left out of the new manifest.
    pub dropped: Vec<Digest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    schema_version: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    fs_layers: Vec<WireLayer>,
    history: Vec<WireHistory>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireLayer {
    blob_sum: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireHistory {
    v1_compatibility: String,
}

#[derive(Deserialize)]
struct WireCompat {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    container_config: Option<WireContainerConfig>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    throwaway: Option<bool>,
}

#[derive(Deserialize)]
struct WireContainerConfig {
    #[serde(default, rename = "Cmd", alias = "cmd")]
    cmd: Option<Vec<String>>,
}

/// The digest of a schema 1 manifest as registries name it: the SHA-256 of its JWS payload
/// when it is signed (the bytes without `signatures`, which change each time a registry signs
/// them again), of the bytes themselves otherwise.
///
/// ```
/// let raw = br#"{"schemaVersion":1}"#;
/// let d = oci_manifest::schema1::payload_digest(&bytes::Bytes::from_static(raw))?;
/// assert_eq!(d, oci_digest::Algorithm::Sha256.hash(raw));
/// # Ok::<(), oci_manifest::ManifestError>(())
/// ```
///
/// # Errors
/// [`ManifestError::Schema1Invalid`] when the signatures' protected headers are malformed.
pub fn payload_digest(raw: &Bytes) -> Result<Digest, ManifestError> {
    let (payload, _) = jws::payload(raw).map_err(|reason| ManifestError::Schema1Invalid {
        digest: Algorithm::Sha256.hash(raw),
        reason,
    })?;
    Ok(Algorithm::Sha256.hash(&payload))
}

impl Schema1 {
    /// Parses a schema 1 manifest, signed or not, from its bytes as served, under the default
    /// size limit ([`DEFAULT_MAX_MANIFEST_SIZE`]).
    ///
    /// # Errors
    /// [`ManifestError::TooLarge`]; [`ManifestError::DuplicateKey`];
    /// [`ManifestError::Schema1Invalid`] naming what is wrong (not JSON, `schemaVersion` not 1,
    /// a malformed signature header, `fsLayers` and `history` of different lengths or empty, an
    /// invalid digest or v1 ID, a broken parent chain, an unreadable `v1Compatibility`).
    pub fn parse(raw: impl Into<Bytes>) -> Result<Schema1, ManifestError> {
        let raw = raw.into();
        if raw.len() > DEFAULT_MAX_MANIFEST_SIZE {
            return Err(ManifestError::TooLarge {
                size: raw.len() as u64,
                limit: DEFAULT_MAX_MANIFEST_SIZE,
            });
        }
        let (payload, signed) =
            jws::payload(&raw).map_err(|reason| ManifestError::Schema1Invalid {
                digest: Algorithm::Sha256.hash(&raw),
                reason,
            })?;
        let digest = Algorithm::Sha256.hash(&payload);
        let bad = |reason: String| ManifestError::Schema1Invalid {
            digest: digest.clone(),
            reason,
        };
        if let Some(d) = strict::find_duplicate(&payload) {
            return Err(ManifestError::DuplicateKey {
                digest,
                key: d.key,
                path: d.path,
            });
        }
        let wire: Wire = serde_json::from_slice(&payload)
            .map_err(|e| bad(format!("not a schema 1 manifest: {e}")))?;
        if wire.schema_version != 1 {
            return Err(bad(format!(
                "schemaVersion is {}, not 1",
                wire.schema_version
            )));
        }
        if wire.fs_layers.len() != wire.history.len() {
            return Err(bad(format!(
                "{} fsLayers but {} history entries",
                wire.fs_layers.len(),
                wire.history.len()
            )));
        }
        if wire.fs_layers.is_empty() {
            return Err(bad("no fsLayers".to_owned()));
        }
        let mut entries = Vec::with_capacity(wire.history.len());
        for (i, (l, h)) in wire.fs_layers.into_iter().zip(wire.history).enumerate() {
            let blob_sum = Digest::parse(&l.blob_sum)
                .map_err(|e| bad(format!("fsLayers[{i}].blobSum: {e}")))?;
            let compat = parse_compat(&h.v1_compatibility)
                .map_err(|e| bad(format!("history[{i}].v1Compatibility: {e}")))?;
            entries.push(Entry {
                blob_sum,
                v1_compatibility: h.v1_compatibility,
                compat,
            });
        }
        fix_layers(&mut entries).map_err(bad)?;
        Ok(Schema1 {
            raw,
            payload,
            digest,
            signed,
            name: wire.name.unwrap_or_default(),
            tag: wire.tag.unwrap_or_default(),
            architecture: wire.architecture.unwrap_or_default(),
            entries,
        })
    }

    /// [`Schema1::parse`], checking that the manifest is the one `expected` names: either its
    /// bytes or (signed) its payload hash to it.
    ///
    /// # Errors
    /// Those of [`Schema1::parse`]; [`ManifestError::DigestMismatch`].
    pub fn parse_pinned(
        raw: impl Into<Bytes>,
        expected: &Digest,
    ) -> Result<Schema1, ManifestError> {
        let raw = raw.into();
        let m = Schema1::parse(raw.clone())?;
        if !m.matches(expected) {
            return Err(ManifestError::DigestMismatch {
                expected: expected.clone(),
                actual: m.digest.clone(),
                size: raw.len() as u64,
            });
        }
        Ok(m)
    }

    /// Whether `digest` names this manifest: the digest of its payload or of its bytes (with
    /// `digest`'s algorithm).
    pub fn matches(&self, digest: &Digest) -> bool {
        let alg = digest.algorithm();
        &alg.hash(&self.payload) == digest || &alg.hash(&self.raw) == digest
    }

    /// The digest registries name it by: of the payload (signed) or of the bytes (unsigned).
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The bytes as given.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The bytes the digest covers (the bytes themselves when unsigned).
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Whether it carries JWS signatures.
    pub fn is_signed(&self) -> bool {
        self.signed
    }

    /// Its media type: signed or unsigned schema 1.
    pub fn media_type(&self) -> &'static str {
        if self.signed {
            mt::DOCKER_MANIFEST_V1_SIGNED
        } else {
            mt::DOCKER_MANIFEST_V1
        }
    }

    /// The repository name it embeds (`name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag it embeds (`tag`).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The architecture it states.
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// Its layers, base first, throwaway (empty) ones included and marked. A layer that
    /// appears twice is listed twice.
    pub fn layers(&self) -> Vec<Schema1Layer> {
        self.entries
            .iter()
            .rev()
            .map(|e| Schema1Layer {
                digest: e.blob_sum.clone(),
                throwaway: e.compat.throwaway,
            })
            .collect()
    }

    /// The configuration skopeo's `ToSchema2Config` builds, with `diff_ids` (one per
    /// non-throwaway layer, base first) as `rootfs.diff_ids`.
    ///
    /// # Errors
    /// [`ManifestError::Schema1Invalid`] when the newest `v1Compatibility` is not an object.
    pub fn to_schema2_config(&self, diff_ids: &[Digest]) -> Result<Bytes, ManifestError> {
        let top = &self.entries[0].v1_compatibility;
        let members = gojson::object_members(top).ok_or_else(|| ManifestError::Schema1Invalid {
            digest: self.digest.clone(),
            reason: "history[0].v1Compatibility is not a JSON object".to_owned(),
        })?;
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in members {
            let mut c = String::with_capacity(v.len());
            gojson::compact(v, &mut c);
            fields.insert(k, c);
        }
        for k in ["id", "parent", "parent_id", "layer_id", "throwaway", "Size"] {
            fields.remove(k);
        }
        let mut rootfs = String::from(r#"{"type":"layers""#);
        if !diff_ids.is_empty() {
            rootfs.push_str(r#","diff_ids":["#);
            for (i, d) in diff_ids.iter().enumerate() {
                if i > 0 {
                    rootfs.push(',');
                }
                gojson::string(d.as_str(), &mut rootfs);
            }
            rootfs.push(']');
        }
        rootfs.push('}');
        fields.insert("rootfs".to_owned(), rootfs);
        let mut history = String::from("[");
        for (i, e) in self.entries.iter().rev().enumerate() {
            if i > 0 {
                history.push(',');
            }
            let c = &e.compat;
            history.push_str(r#"{"created":"#);
            c.created.write(&mut history);
            let created_by = c.cmd.join(" ");
            for (key, value) in [
                ("author", &c.author),
                ("created_by", &created_by),
                ("comment", &c.comment),
            ] {
                if !value.is_empty() {
                    history.push_str(&format!(r#","{key}":"#));
                    gojson::string(value, &mut history);
                }
            }
            if c.throwaway {
                history.push_str(r#","empty_layer":true"#);
            }
            history.push('}');
        }
        history.push(']');
        fields.insert("history".to_owned(), history);
        let mut out = String::from("{");
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            gojson::string(k, &mut out);
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
        Ok(Bytes::from(out))
    }

    /// Converts to Docker schema 2 (`to` = [`Flavor::Docker`]) or OCI. `layers` are the
    /// non-throwaway layers of [`layers`](Schema1::layers), base first, each as the result
    /// will name it (media type, digest, size: schema 1 has no sizes, the caller knows them)
    /// with its diff ID (the digest of its uncompressed bytes).
    ///
    /// # Errors
    /// [`ManifestError::Build`] when `layers` do not match the non-throwaway layers;
    /// [`ManifestError::Schema1Invalid`] from [`to_schema2_config`](Schema1::to_schema2_config).
    pub fn convert(
        &self,
        layers: &[(Descriptor, Digest)],
        to: Flavor,
    ) -> Result<Schema1Converted, ManifestError> {
        let all = self.layers();
        let kept: Vec<&Schema1Layer> = all.iter().filter(|l| !l.throwaway).collect();
        if kept.len() != layers.len()
            || kept
                .iter()
                .zip(layers)
                .any(|(want, (got, _))| want.digest != got.digest)
        {
            return Err(ManifestError::Build {
                what: "a manifest converted from schema 1",
                reason: format!(
                    "the {} layers given are not the {} non-throwaway layers of {}",
                    layers.len(),
                    kept.len(),
                    self.digest
                ),
            });
        }
        let diff_ids: Vec<Digest> = layers.iter().map(|(_, d)| d.clone()).collect();
        let config = self.to_schema2_config(&diff_ids)?;
        let config_desc = Descriptor::new(
            mt::DOCKER_CONFIG,
            Algorithm::Sha256.hash(&config),
            config.len() as u64,
        );
        // Go's field order (skopeo's Schema2 and Schema2Descriptor).
        let desc_json = |d: &Descriptor| {
            let mut s = String::from(r#"{"mediaType":"#);
            gojson::string(&d.media_type, &mut s);
            s.push_str(&format!(r#","size":{},"digest":"{}"}}"#, d.size, d.digest));
            s
        };
        let layer_json: Vec<String> = layers.iter().map(|(d, _)| desc_json(d)).collect();
        let raw = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{}]}}"#,
            mt::DOCKER_MANIFEST,
            desc_json(&config_desc),
            layer_json.join(",")
        );
        let mut manifest = Manifest::parse(raw, Some(mt::DOCKER_MANIFEST))?;
        if to == Flavor::Oci {
            manifest = convert(&manifest, Flavor::Oci)?.manifest;
        }
        let dropped = all
            .iter()
            .filter(|l| l.throwaway)
            .map(|l| l.digest.clone())
            .collect();
        Ok(Schema1Converted {
            manifest,
            config,
            dropped,
        })
    }
}

/// Reads the fields of one `v1Compatibility` document.
fn parse_compat(text: &str) -> Result<Compat, String> {
    if let Some(d) = strict::find_duplicate(text.as_bytes()) {
        return Err(format!("the key {:?} twice at {}", d.key, d.path));
    }
    let w: WireCompat = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let created = match w.created {
        None => GoTime::zero(),
        Some(s) => {
            GoTime::parse(&s).ok_or_else(|| format!("created {s:?} is not an RFC 3339 time"))?
        }
    };
    Ok(Compat {
        id: w.id.unwrap_or_default(),
        parent: w.parent.unwrap_or_default(),
        comment: w.comment.unwrap_or_default(),
        created,
        cmd: w.container_config.and_then(|c| c.cmd).unwrap_or_default(),
        author: w.author.unwrap_or_default(),
        throwaway: w.throwaway.unwrap_or(false),
    })
}

/// containers/image's `fixManifestLayers`: every v1 ID is 64 lowercase hex digits, the base
/// has no parent, no ID appears twice except next to itself, consecutive duplicates are
/// dropped (the older one), and each entry's parent is the next entry's ID.
fn fix_layers(entries: &mut Vec<Entry>) -> Result<(), String> {
    for (i, e) in entries.iter().enumerate() {
        let id = &e.compat.id;
        if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!("history[{i}]: image ID {id:?} is invalid"));
        }
    }
    if let Some(base) = entries.last()
        && !base.compat.parent.is_empty()
    {
        return Err("the base layer has a parent ID".to_owned());
    }
    let mut seen: HashSet<&str> = HashSet::new();
    let mut last = "";
    for e in entries.iter() {
        let id = e.compat.id.as_str();
        if id != last && seen.contains(id) {
            return Err(format!("ID {id:?} appears more than once"));
        }
        last = id;
        seen.insert(id);
    }
    let mut i = entries.len().saturating_sub(1);
    while i > 0 {
        i -= 1;
        if entries[i].compat.id == entries[i + 1].compat.id {
            entries.remove(i);
        } else if entries[i].compat.parent != entries[i + 1].compat.id {
            return Err(format!(
                "invalid parent ID: expected {:?}, got {:?}",
                entries[i + 1].compat.id,
                entries[i].compat.parent
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
