//! Where everything lives: the OCI image layout under the store's prefix, this crate's own
//! state under a separate prefix, and the parsing of listed keys back into digests (anything
//! else under `blobs/` is reported, never acted on).

use object_store::path::Path;
use oci_digest::{Algorithm, Digest};

use crate::error::{Result, StoreError};

/// The keys of one store: `layout` is the prefix of the OCI image layout (`oci-layout`,
/// `index.json`, `blobs/<alg>/<hex>`), `state` the prefix of this crate's own state.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    layout: Path,
    state: Path,
}

/// What a key listed under `blobs/` is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BlobKey {
    /// `blobs/<alg>/<hex>` with a valid digest.
    Blob(Digest),
    /// Anything else (a name that is not a digest, a nested key): left alone.
    Foreign,
}

/// Checks a user-given prefix: `/`-separated segments, none empty, `.` or `..`, no control
/// characters. Leading and trailing `/` are ignored; an empty prefix is the bucket's root.
pub(crate) fn parse_prefix(prefix: &str, what: &'static str) -> Result<Path> {
    let trimmed = prefix.trim_matches('/');
    Path::parse(trimmed).map_err(|e| StoreError::backend(format!("invalid {what} {prefix:?}"), e))
}

impl Keys {
    /// Keys for a layout at `layout`, with the state at `state` (default: `<layout>.oci-rs`, or
    /// `.oci-rs` at the bucket's root for an empty layout prefix).
    pub(crate) fn new(layout: Path, state: Option<Path>) -> Result<Keys> {
        let state = match state {
            Some(s) => s,
            None if layout.as_ref().is_empty() => Path::from(".oci-rs"),
            None => Path::parse(format!("{}.oci-rs", layout.as_ref()))
                .map_err(|e| StoreError::backend("derive the state prefix", e))?,
        };
        if !layout.as_ref().is_empty() && state.prefix_matches(&layout) {
            let blobs = layout.clone().join("blobs");
            if state.prefix_matches(&blobs) || state == layout {
                return Err(StoreError::backend(
                    format!("state prefix {state} inside the layout's blobs"),
                    std::io::Error::from(std::io::ErrorKind::InvalidInput),
                ));
            }
        }
        Ok(Keys { layout, state })
    }

    /// The layout prefix (empty for the bucket's root).
    pub(crate) fn layout(&self) -> &Path {
        &self.layout
    }

    /// The state prefix.
    pub(crate) fn state(&self) -> &Path {
        &self.state
    }

    fn under(base: &Path, parts: &[&str]) -> Path {
        let mut p = base.clone();
        for part in parts {
            p = p.join(*part);
        }
        p
    }

    pub(crate) fn oci_layout(&self) -> Path {
        self.layout.clone().join("oci-layout")
    }

    pub(crate) fn index(&self) -> Path {
        self.layout.clone().join("index.json")
    }

    pub(crate) fn blobs(&self) -> Path {
        self.layout.clone().join("blobs")
    }

    /// `blobs/<alg>/<hex>`: digests are validated, so this is always one key of the layout.
    pub(crate) fn blob(&self, d: &Digest) -> Path {
        Self::under(
            &self.layout,
            &["blobs", d.algorithm().as_str(), d.encoded()],
        )
    }

    /// What a listed key under `blobs/` names.
    pub(crate) fn parse_blob(&self, key: &Path) -> BlobKey {
        let Some(rest) = key.prefix_match(&self.blobs()) else {
            return BlobKey::Foreign;
        };
        let parts: Vec<_> = rest.collect();
        if parts.len() != 2 {
            return BlobKey::Foreign;
        }
        let (alg, hex) = (parts[0].as_ref(), parts[1].as_ref());
        let Some(algorithm) = Algorithm::from_name(alg) else {
            return BlobKey::Foreign;
        };
        if hex.len() != algorithm.hex_len() {
            return BlobKey::Foreign;
        }
        match Digest::parse(&format!("{alg}:{hex}")) {
            Ok(d) => BlobKey::Blob(d),
            Err(_) => BlobKey::Foreign,
        }
    }

    /// `<state>/ingests/<sha256 of the key>.<ext>` (`json` record, `tail` bytes after the
    /// parts, `data` the upload target of backends that copy into place).
    pub(crate) fn ingest(&self, hashed: &str, ext: &str) -> Path {
        Self::under(&self.state, &["ingests", &format!("{hashed}.{ext}")])
    }

    pub(crate) fn ingests(&self) -> Path {
        self.state.clone().join("ingests")
    }

    /// The hashed name of an ingest key (keys never become key names directly).
    pub(crate) fn hash_key(key: &str) -> String {
        Algorithm::Sha256.hash(key.as_bytes()).encoded().to_owned()
    }

    /// The hashed name of an ingest from a listed record key (`None` for anything else).
    pub(crate) fn parse_ingest(&self, key: &Path) -> Option<(String, String)> {
        let rest: Vec<_> = key.prefix_match(&self.ingests())?.collect();
        if rest.len() != 1 {
            return None;
        }
        let (name, ext) = rest[0].as_ref().rsplit_once('.')?;
        (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| (name.to_owned(), ext.to_owned()))
    }

    pub(crate) fn leases(&self) -> Path {
        self.state.clone().join("leases")
    }

    pub(crate) fn lease(&self, id: &str) -> Path {
        self.leases().join(format!("{id}.json"))
    }

    pub(crate) fn pins(&self, id: &str) -> Path {
        self.leases().join(id)
    }

    pub(crate) fn pin(&self, id: &str, d: &Digest) -> Path {
        Self::under(
            &self.state,
            &["leases", id, d.algorithm().as_str(), d.encoded()],
        )
    }

    /// What a listed key under `leases/` is: a lease record (`Ok(id)`) or a pin
    /// (`Err((id, digest))`); `None` for anything else.
    pub(crate) fn parse_lease_key(&self, key: &Path) -> Option<LeaseKey> {
        let rest: Vec<_> = key.prefix_match(&self.leases())?.collect();
        match rest.as_slice() {
            [name] => {
                let id = name.as_ref().strip_suffix(".json")?;
                crate::lease::valid_id(id).then(|| LeaseKey::Record(id.to_owned()))
            }
            [id, alg, hex] if crate::lease::valid_id(id.as_ref()) => {
                let d = Digest::parse(&format!("{}:{}", alg.as_ref(), hex.as_ref())).ok()?;
                Some(LeaseKey::Pin(id.as_ref().to_owned(), d))
            }
            _ => None,
        }
    }

    pub(crate) fn tombstones(&self) -> Path {
        self.state.clone().join("doomed")
    }

    pub(crate) fn tombstone(&self, d: &Digest) -> Path {
        Self::under(
            &self.state,
            &["doomed", d.algorithm().as_str(), d.encoded()],
        )
    }

    pub(crate) fn parse_tombstone(&self, key: &Path) -> Option<Digest> {
        let rest: Vec<_> = key.prefix_match(&self.tombstones())?.collect();
        match rest.as_slice() {
            [alg, hex] => Digest::parse(&format!("{}:{}", alg.as_ref(), hex.as_ref())).ok(),
            _ => None,
        }
    }

    pub(crate) fn markers(&self) -> Path {
        self.state.clone().join("gc")
    }

    pub(crate) fn marker(&self, id: &str) -> Path {
        self.markers().join(format!("{id}.json"))
    }

    /// The key the storage clock is read from (one per process and backend).
    pub(crate) fn clock(&self, instance: &str) -> Path {
        Self::under(&self.state, &["clock", instance])
    }

    /// Keys the probe of conditional writes uses.
    pub(crate) fn probe(&self, instance: &str, n: u32) -> Path {
        Self::under(&self.state, &["probe", &format!("{instance}-{n}")])
    }
}

/// A key under `leases/`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LeaseKey {
    /// The record of lease `id`.
    Record(String),
    /// A pin of lease `id`.
    Pin(String, Digest),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_keys_and_parsing() {
        let k = Keys::new(parse_prefix("/cache/images/", "prefix").unwrap(), None).unwrap();
        let d = Algorithm::Sha256.hash(b"x");
        assert_eq!(k.index().as_ref(), "cache/images/index.json");
        assert_eq!(
            k.blob(&d).as_ref(),
            format!("cache/images/blobs/sha256/{}", d.encoded())
        );
        assert_eq!(k.parse_blob(&k.blob(&d)), BlobKey::Blob(d.clone()));
        assert_eq!(k.state().as_ref(), "cache/images.oci-rs");
        for foreign in [
            "cache/images/blobs/sha256/ABC",
            "cache/images/blobs/sha256/x/y",
            "cache/images/blobs/md5/abcd",
            "cache/images/blobs/sha256",
            &format!("cache/images/blobs/sha256/{}", d.encoded().to_uppercase()),
        ] {
            assert_eq!(
                k.parse_blob(&Path::from(foreign)),
                BlobKey::Foreign,
                "{foreign}"
            );
        }
        assert_eq!(
            k.parse_lease_key(&k.pin("lease-1", &d)),
            Some(LeaseKey::Pin("lease-1".into(), d.clone()))
        );
        assert_eq!(
            k.parse_lease_key(&k.lease("lease-1")),
            Some(LeaseKey::Record("lease-1".into()))
        );
        assert_eq!(k.parse_tombstone(&k.tombstone(&d)), Some(d.clone()));
        let h = Keys::hash_key("../../etc/passwd");
        assert_eq!(
            k.parse_ingest(&k.ingest(&h, "json")),
            Some((h.clone(), "json".into()))
        );
        let root = Keys::new(parse_prefix("", "prefix").unwrap(), None).unwrap();
        assert_eq!(root.index().as_ref(), "index.json");
        assert_eq!(root.state().as_ref(), ".oci-rs");
        assert!(parse_prefix("a//b", "prefix").is_err());
        assert!(parse_prefix("a/../b", "prefix").is_err());
        let layout = parse_prefix("x", "prefix").unwrap();
        assert!(Keys::new(layout.clone(), Some(Path::from("x/blobs/s"))).is_err());
        assert!(Keys::new(layout, Some(Path::from("x/.state"))).is_ok());
    }
}
