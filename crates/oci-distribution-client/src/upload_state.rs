//! Upload sessions recorded on disk ([`ClientConfig::upload_state_dir`]), so a push killed
//! part way through resumes in a new process from what the registry acknowledged.
//!
//! One JSON file per session: `<dir>/<sha256 hex of "registry/repository\nkey">.json`, written
//! to a temporary file in the same directory and renamed into place, mode 0600 on unix (the
//! upload URL is a capability: whoever has it can append to the upload). The location is never
//! logged.
//!
//! A record holds the upload location and the hash state of the content's first bytes at a few
//! offsets (checkpoints, see [`Checkpoints`]). A resumed upload asks the registry for its
//! offset, restarts its hash from the newest checkpoint at or below it, reads the bytes between
//! the checkpoint and the offset from the source again to hash them, and sends from the
//! registry's offset on.
//!
//! A record that is damaged, from another format version or for another repository is treated
//! as absent: the worst case is an upload that starts again from byte 0.
//!
//! [`ClientConfig::upload_state_dir`]: crate::ClientConfig::upload_state_dir

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use oci_digest::{Algorithm, Digester, Verifier};
use oci_manifest::Descriptor;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use tracing::warn;

const FORMAT_VERSION: u32 = 1;
const SUFFIX: &str = ".json";

/// One upload session as saved on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UploadRecord {
    /// Format version of the record.
    pub version: u32,
    /// The ingest key.
    pub key: String,
    /// Registry (`host[:port]`).
    pub registry: String,
    /// Repository name.
    pub repository: String,
    /// The content being uploaded.
    pub descriptor: Descriptor,
    /// The upload location (a capability: never logged).
    pub location: String,
    /// [`Digester::save_state`] of the newest checkpoint, base64.
    pub hash_state: String,
    /// The offset of the newest checkpoint: bytes the registry held (or was sent) when it was
    /// taken. A resumed upload uses it when the registry holds at least this many.
    pub acknowledged: u64,
    /// Older checkpoints, for a registry found holding fewer bytes than the newest one covers
    /// (bytes in flight lost with a connection).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<SavedCheckpoint>,
    /// Milliseconds since the Unix epoch when the session started.
    pub started_at_ms: u64,
    /// Milliseconds since the Unix epoch of the last acknowledged chunk.
    pub updated_at_ms: u64,
}

/// A checkpoint other than the newest, as saved on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedCheckpoint {
    /// Bytes the hash state covers.
    pub offset: u64,
    /// [`Digester::save_state`], base64.
    pub hash_state: String,
}

/// Most checkpoints kept per upload.
const MAX_CHECKPOINTS: usize = 16;
/// The newest checkpoints are kept as taken; older ones are thinned out as more come.
const DENSE_CHECKPOINTS: usize = 4;

/// Hash states of an upload's first bytes at a few increasing offsets (at most
/// [`MAX_CHECKPOINTS`], the newest last), plus the implicit empty one at offset 0: where a
/// resumed upload can restart its hash at or below the registry's offset. The newest
/// [`DENSE_CHECKPOINTS`] are kept as taken; older ones are thinned (every other one goes when
/// there are too many), so a registry found far behind what was sent (bytes lost in flight)
/// still finds one not far below its offset, in bounded memory.
#[derive(Debug, Clone, Default)]
pub(crate) struct Checkpoints(Vec<Verifier>);

impl Checkpoints {
    /// Adds the state of `v` as the newest checkpoint (ignored unless past the newest).
    pub fn push(&mut self, v: &Verifier) {
        if v.received() > self.newest() {
            self.0.push(v.clone());
            if self.0.len() > MAX_CHECKPOINTS {
                let older = self.0.len() - DENSE_CHECKPOINTS;
                let mut i = 0;
                self.0.retain(|_| {
                    let keep = i >= older || i % 2 == 1;
                    i += 1;
                    keep
                });
            }
        }
    }

    /// The offset of the newest checkpoint (0 when there is none).
    pub fn newest(&self) -> u64 {
        self.0.last().map_or(0, Verifier::received)
    }

    /// Forgets the checkpoints past `offset`.
    pub fn keep_upto(&mut self, offset: u64) {
        self.0.retain(|v| v.received() <= offset);
    }

    /// The newest checkpoint at or below `offset` (an empty hash of `desc` when none is).
    pub fn at_or_below(&self, offset: u64, desc: &Descriptor) -> Verifier {
        self.0
            .iter()
            .rev()
            .find(|v| v.received() <= offset)
            .cloned()
            .unwrap_or_else(|| Verifier::new(desc.digest.clone(), desc.size))
    }
}

/// A session restored from a record: where to continue and the checkpoints of its hash.
pub(crate) struct Restored {
    pub location: Url,
    pub checkpoints: Checkpoints,
    pub started_at: SystemTime,
}

fn encode_state(v: &Verifier) -> String {
    base64::engine::general_purpose::STANDARD.encode(v.digester().save_state())
}

/// The verifier of `desc` continuing from a saved hash state of `offset` bytes, or why not.
fn decode_state(state: &str, offset: u64, desc: &Descriptor) -> Result<Verifier, &'static str> {
    let state = base64::engine::general_purpose::STANDARD
        .decode(state)
        .map_err(|_| "bad hash state encoding")?;
    let digester = Digester::restore(&state).map_err(|_| "damaged hash state")?;
    if digester.bytes_hashed() != offset {
        return Err("hash state and acknowledged bytes disagree");
    }
    Verifier::resume(desc.digest.clone(), desc.size, digester)
        .map_err(|_| "hash state does not fit the content")
}

pub(crate) fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The record file of `key` in `registry/repository`.
pub(crate) fn record_path(dir: &Path, registry: &str, repository: &str, key: &str) -> PathBuf {
    let name = Algorithm::Sha256.hash(format!("{registry}/{repository}\n{key}").as_bytes());
    dir.join(format!("{}{SUFFIX}", name.encoded()))
}

impl UploadRecord {
    /// A record of a session at `location` with the hash `checkpoints` of its content.
    pub fn new(
        (registry, repository, key): (&str, &str, &str),
        descriptor: &Descriptor,
        location: &Url,
        checkpoints: &Checkpoints,
        started_at: SystemTime,
    ) -> UploadRecord {
        let (newest, earlier) = match checkpoints.0.split_last() {
            Some((n, e)) => (n.clone(), e),
            None => (
                Verifier::new(descriptor.digest.clone(), descriptor.size),
                &[][..],
            ),
        };
        UploadRecord {
            version: FORMAT_VERSION,
            key: key.to_owned(),
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            descriptor: descriptor.clone(),
            location: location.to_string(),
            hash_state: encode_state(&newest),
            acknowledged: newest.received(),
            earlier: earlier
                .iter()
                .map(|v| SavedCheckpoint {
                    offset: v.received(),
                    hash_state: encode_state(v),
                })
                .collect(),
            started_at_ms: to_ms(started_at),
            updated_at_ms: to_ms(SystemTime::now()),
        }
    }

    /// Whether the record belongs to `registry/repository`.
    pub fn is_for(&self, registry: &str, repository: &str) -> bool {
        self.version == FORMAT_VERSION && self.registry == registry && self.repository == repository
    }

    /// The session to continue for content `desc`, or `None` (with the reason logged, never
    /// the location) when the record cannot be used.
    pub fn restore(&self, desc: &Descriptor) -> Option<Restored> {
        let unusable = |why: &str| {
            warn!(key = %self.key, digest = %desc.digest, reason = why, "upload record not usable; starting the upload again");
            None
        };
        let Ok(location) = Url::parse(&self.location) else {
            return unusable("bad location");
        };
        let newest = match decode_state(&self.hash_state, self.acknowledged, desc) {
            Ok(v) => v,
            Err(why) => return unusable(why),
        };
        let mut checkpoints = Checkpoints::default();
        // Older checkpoints are a fallback: a damaged one is left out.
        for c in self.earlier.iter().filter(|c| c.offset < self.acknowledged) {
            if let Ok(v) = decode_state(&c.hash_state, c.offset, desc) {
                checkpoints.push(&v);
            }
        }
        checkpoints.push(&newest);
        Some(Restored {
            location,
            checkpoints,
            started_at: from_ms(self.started_at_ms),
        })
    }
}

/// Reads the record at `path`: `Ok(None)` when there is none or it is damaged (logged).
pub(crate) fn load(path: &Path) -> std::io::Result<Option<UploadRecord>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match serde_json::from_slice::<UploadRecord>(&bytes) {
        Ok(r) if r.version == FORMAT_VERSION => Ok(Some(r)),
        Ok(r) => {
            warn!(path = %path.display(), version = r.version, "upload record of another format version ignored");
            Ok(None)
        }
        Err(e) => {
            warn!(path = %path.display(), error = %e, "damaged upload record ignored");
            Ok(None)
        }
    }
}

/// Every readable record in `dir` (a missing directory has none).
pub(crate) fn load_all(dir: &Path) -> std::io::Result<Vec<UploadRecord>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(SUFFIX) || name.starts_with('.') {
            continue;
        }
        if let Some(r) = load(&entry.path())? {
            out.push(r);
        }
    }
    Ok(out)
}

/// Writes `record` at `path` atomically (temporary file in the same directory, then rename),
/// creating the directory (mode 0700 on unix) when missing; the file has mode 0600 on unix.
pub(crate) fn save(path: &Path, record: &UploadRecord) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.is_dir() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)?;
    }
    let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("record");
    let tmp = dir.join(format!(
        ".{file_name}.{}.{:016x}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let result = opts
        .open(&tmp)
        .and_then(|mut f| f.write_all(&json))
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes the record at `path` (none is fine).
pub(crate) fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Runs a blocking file operation off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_manifest::media_types;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "oci-upload-state-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    const DATA: &[u8] = b"hello, resumable world";

    /// The sample content, checkpoints at 3 and 7 bytes, an upload URL.
    fn sample() -> (Descriptor, Checkpoints, Url) {
        let desc = Descriptor::new(
            media_types::OCI_LAYER_TAR,
            Algorithm::Sha256.hash(DATA),
            DATA.len() as u64,
        );
        let mut v = Verifier::new(desc.digest.clone(), desc.size);
        let mut c = Checkpoints::default();
        v.update(&DATA[..3]).unwrap();
        c.push(&v);
        v.update(&DATA[3..7]).unwrap();
        c.push(&v);
        let url = Url::parse("http://127.0.0.1:5000/v2/a/blobs/uploads/u?_state=secret").unwrap();
        (desc, c, url)
    }

    #[test]
    fn checkpoints_keep_the_newest_few_and_answer_at_or_below_an_offset() {
        let (desc, _, _) = sample();
        let mut v = Verifier::new(desc.digest.clone(), desc.size);
        let mut c = Checkpoints::default();
        assert_eq!(c.at_or_below(5, &desc).received(), 0);
        for i in 0..DATA.len() {
            v.update(&DATA[i..=i]).unwrap();
            c.push(&v);
            c.push(&v); // the same offset again: ignored
        }
        let n = DATA.len() as u64;
        assert_eq!(c.newest(), n);
        assert!(c.0.len() <= MAX_CHECKPOINTS, "{}", c.0.len());
        // The newest ones as taken, older ones thinned but still there.
        for back in 0..DENSE_CHECKPOINTS as u64 {
            assert_eq!(c.at_or_below(n - back, &desc).received(), n - back);
        }
        let old = c.at_or_below(n / 2, &desc).received();
        assert!(old > 0 && old <= n / 2, "{old}");
        for x in 0..=n {
            let mut v = c.at_or_below(x, &desc);
            assert!(v.received() <= x);
            v.update(&DATA[v.received() as usize..]).unwrap();
            v.finish().unwrap();
        }
        c.keep_upto(n - 1);
        assert_eq!(c.newest(), n - 1);
        let mut rest = c.at_or_below(n, &desc);
        rest.update(&DATA[DATA.len() - 1..]).unwrap();
        rest.finish().unwrap();
    }

    #[test]
    fn a_saved_record_restores_the_session_and_finishes_the_hash() {
        let dir = tmp("roundtrip");
        let (desc, c, url) = sample();
        let path = record_path(&dir, "127.0.0.1:5000", "a", "k");
        let rec = UploadRecord::new(
            ("127.0.0.1:5000", "a", "k"),
            &desc,
            &url,
            &c,
            SystemTime::now(),
        );
        assert_eq!(rec.acknowledged, 7);
        assert_eq!(rec.earlier.len(), 1);
        save(&path, &rec).unwrap();
        let back = load(&path).unwrap().unwrap();
        assert_eq!(back, rec);
        assert!(back.is_for("127.0.0.1:5000", "a"));
        assert!(!back.is_for("127.0.0.1:5000", "b"));
        let r = back.restore(&desc).unwrap();
        assert_eq!(r.location, url);
        assert_eq!(r.checkpoints.newest(), 7);
        let mut verifier = r.checkpoints.at_or_below(100, &desc);
        verifier.update(&DATA[7..]).unwrap();
        verifier.finish().unwrap();
        // The older checkpoint, for a registry found holding fewer bytes.
        let mut verifier = r.checkpoints.at_or_below(6, &desc);
        assert_eq!(verifier.received(), 3);
        verifier.update(&DATA[3..]).unwrap();
        verifier.finish().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(load_all(&dir).unwrap(), vec![rec]);
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert!(load(&path).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_differ_by_registry_repository_and_key() {
        let d = Path::new("/s");
        let a = record_path(d, "r", "a/b", "k");
        assert_ne!(a, record_path(d, "r", "a", "b\nk"));
        assert_ne!(a, record_path(d, "r2", "a/b", "k"));
        assert_ne!(a, record_path(d, "r", "a/b", "k2"));
        let name = a.file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), 64 + SUFFIX.len());
    }

    #[test]
    fn damaged_records_are_absent_and_damaged_states_do_not_restore() {
        let dir = tmp("damaged");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}{SUFFIX}", "0".repeat(64)));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(load(&path).unwrap().is_none());
        assert!(load_all(&dir).unwrap().is_empty());

        let (desc, c, url) = sample();
        let mut rec = UploadRecord::new(("r", "a", "k"), &desc, &url, &c, SystemTime::now());
        rec.acknowledged += 1;
        assert!(rec.restore(&desc).is_none(), "byte count disagrees");
        let mut rec = UploadRecord::new(("r", "a", "k"), &desc, &url, &c, SystemTime::now());
        rec.hash_state = base64::engine::general_purpose::STANDARD.encode(b"garbage");
        assert!(rec.restore(&desc).is_none(), "hash state damaged");
        // A damaged older checkpoint is left out; the newest still restores.
        let mut rec = UploadRecord::new(("r", "a", "k"), &desc, &url, &c, SystemTime::now());
        rec.earlier[0].hash_state = "%%%".into();
        let r = rec
            .restore(&desc)
            .expect("restores without the older checkpoint");
        assert_eq!(r.checkpoints.at_or_below(6, &desc).received(), 0);
        // A record written before older checkpoints existed reads the same.
        let mut json = serde_json::to_value(&rec).unwrap();
        json.as_object_mut().unwrap().remove("earlier");
        let old: UploadRecord = serde_json::from_value(json).unwrap();
        assert_eq!(old.restore(&desc).unwrap().checkpoints.newest(), 7);
        let rec = UploadRecord::new(("r", "a", "k"), &desc, &url, &c, SystemTime::now());
        let small = Descriptor::new(media_types::OCI_LAYER_TAR, desc.digest.clone(), 3);
        assert!(
            rec.restore(&small).is_none(),
            "more acknowledged than the size"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
