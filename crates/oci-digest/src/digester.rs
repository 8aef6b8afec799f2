//! Incremental hashing with a state that can be saved and restored.

use std::io;

use digest::Digest as _;
use digest::common::hazmat::{SerializableState, SerializedState};

use crate::{Algorithm, Digest, StateError};

#[derive(Clone)]
enum Inner {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

/// Incremental hasher producing a [`Digest`].
///
/// Feed bytes with [`update`](Digester::update) (or through [`io::Write`]), then call
/// [`finalize`](Digester::finalize). SHA-256 uses the CPU's SHA extensions when it has them
/// (detected at run time).
///
/// The state can be saved with [`save_state`](Digester::save_state) and restored with
/// [`restore`](Digester::restore): a download or upload that stops half way can continue later
/// without hashing again what was already received.
///
/// ```
/// use oci_digest::{Algorithm, Digester};
///
/// let mut d = Digester::new(Algorithm::Sha256);
/// d.update(b"hello ");
/// let saved = d.save_state();          // e.g. written next to a partial download
/// let mut d = Digester::restore(&saved)?;
/// d.update(b"world");
/// assert_eq!(d.bytes_hashed(), 11);
/// assert_eq!(d.finalize(), Algorithm::Sha256.hash(b"hello world"));
/// # Ok::<(), oci_digest::StateError>(())
/// ```
#[derive(Clone)]
pub struct Digester {
    inner: Inner,
    len: u64,
}

/// Marker at the start of every saved state.
const MAGIC: &[u8; 8] = b"OCIDGST\0";
/// Format version of saved states written by this build.
pub const STATE_VERSION: u8 = 1;
/// Length of the checksum that ends a saved state.
const CHECK_LEN: usize = 8;
/// Magic, version, algorithm code, byte count.
const HEADER_LEN: usize = MAGIC.len() + 1 + 1 + 8;

impl Digester {
    /// Starts hashing with `algorithm`.
    pub fn new(algorithm: Algorithm) -> Digester {
        let inner = match algorithm {
            Algorithm::Sha256 => Inner::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Inner::Sha512(sha2::Sha512::new()),
        };
        Digester { inner, len: 0 }
    }

    /// The algorithm in use.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            Inner::Sha256(_) => Algorithm::Sha256,
            Inner::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Number of bytes hashed so far (the offset a resumed transfer continues from).
    pub fn bytes_hashed(&self) -> u64 {
        self.len
    }

    /// Hashes `data`.
    #[inline]
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.inner {
            Inner::Sha256(h) => h.update(data),
            Inner::Sha512(h) => h.update(data),
        }
        self.len += data.len() as u64;
    }

    /// Finishes and returns the digest of everything hashed.
    pub fn finalize(self) -> Digest {
        let (algorithm, raw) = match self.inner {
            Inner::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            Inner::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        Digest::from_hash_output(algorithm, &raw)
    }

    /// The digest of what was hashed so far, without consuming the digester.
    ///
    /// ```
    /// let mut d = oci_digest::Digester::new(oci_digest::Algorithm::Sha256);
    /// d.update(b"ab");
    /// assert_eq!(d.current(), oci_digest::Algorithm::Sha256.hash(b"ab"));
    /// d.update(b"c");
    /// assert_eq!(d.finalize(), oci_digest::Algorithm::Sha256.hash(b"abc"));
    /// ```
    pub fn current(&self) -> Digest {
        self.clone().finalize()
    }

    /// Saves the hashing state as bytes: a versioned format (magic, format version, algorithm,
    /// byte count, the hash function's internal state, and a checksum).
    ///
    /// The bytes contain a function of the data hashed so far; treat them like the data.
    pub fn save_state(&self) -> Vec<u8> {
        let state: Vec<u8> = match &self.inner {
            Inner::Sha256(h) => h.serialize().to_vec(),
            Inner::Sha512(h) => h.serialize().to_vec(),
        };
        let mut out = Vec::with_capacity(HEADER_LEN + state.len() + CHECK_LEN);
        out.extend_from_slice(MAGIC);
        out.push(STATE_VERSION);
        out.push(self.algorithm().code());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&state);
        let check = checksum(&out);
        out.extend_from_slice(&check);
        out
    }

    /// Restores a digester from [`save_state`](Digester::save_state) output.
    ///
    /// # Errors
    /// A [`StateError`] when the bytes are not a state, come from another format version, name an
    /// unknown algorithm, or are damaged (checked with a checksum).
    pub fn restore(saved: &[u8]) -> Result<Digester, StateError> {
        if saved.len() < MAGIC.len() || &saved[..MAGIC.len()] != MAGIC {
            return Err(StateError::BadMagic);
        }
        if saved.len() < HEADER_LEN + CHECK_LEN {
            return Err(StateError::Corrupt {
                algorithm: Algorithm::Sha256,
                reason: "too short",
            });
        }
        let version = saved[MAGIC.len()];
        if version != STATE_VERSION {
            return Err(StateError::UnsupportedVersion {
                found: version,
                supported: STATE_VERSION,
            });
        }
        let code = saved[MAGIC.len() + 1];
        let algorithm = Algorithm::from_code(code).ok_or(StateError::UnknownAlgorithm(code))?;
        let corrupt = |reason| StateError::Corrupt { algorithm, reason };
        let (body, check) = saved.split_at(saved.len() - CHECK_LEN);
        if checksum(body) != check {
            return Err(corrupt("checksum mismatch"));
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&body[MAGIC.len() + 2..HEADER_LEN]);
        let len = u64::from_le_bytes(len_bytes);
        let state = &body[HEADER_LEN..];
        let inner = match algorithm {
            Algorithm::Sha256 => Inner::Sha256(
                deserialize::<sha2::Sha256>(state).ok_or_else(|| corrupt("bad sha256 state"))?,
            ),
            Algorithm::Sha512 => Inner::Sha512(
                deserialize::<sha2::Sha512>(state).ok_or_else(|| corrupt("bad sha512 state"))?,
            ),
        };
        Ok(Digester { inner, len })
    }
}

fn deserialize<T: SerializableState>(bytes: &[u8]) -> Option<T> {
    let arr = SerializedState::<T>::try_from(bytes).ok()?;
    T::deserialize(&arr).ok()
}

fn checksum(bytes: &[u8]) -> [u8; CHECK_LEN] {
    let full = sha2::Sha256::digest(bytes);
    let mut out = [0u8; CHECK_LEN];
    out.copy_from_slice(&full[..CHECK_LEN]);
    out
}

impl Default for Digester {
    /// A SHA-256 digester.
    fn default() -> Self {
        Digester::new(Algorithm::Sha256)
    }
}

impl std::fmt::Debug for Digester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digester")
            .field("algorithm", &self.algorithm())
            .field("bytes_hashed", &self.len)
            .finish()
    }
}

/// Writing to a `Digester` hashes the bytes; `flush` does nothing.
///
/// ```
/// use std::io::Write;
/// let mut d = oci_digest::Digester::default();
/// std::io::copy(&mut &b"abc"[..], &mut d)?;
/// assert_eq!(d.finalize(), oci_digest::Algorithm::Sha256.hash(b"abc"));
/// # Ok::<(), std::io::Error>(())
/// ```
impl io::Write for Digester {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            Algorithm::Sha256.hash(b"abc").encoded(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            Algorithm::Sha512.hash(b"abc").encoded(),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn state_errors() {
        let mut d = Digester::new(Algorithm::Sha512);
        d.update(&[7u8; 300]);
        let saved = d.save_state();
        assert_eq!(
            Digester::restore(&saved).unwrap().finalize(),
            d.clone().finalize()
        );

        assert_eq!(Digester::restore(b"").unwrap_err(), StateError::BadMagic);
        assert_eq!(
            Digester::restore(b"OCIDGST\0").unwrap_err(),
            StateError::Corrupt {
                algorithm: Algorithm::Sha256,
                reason: "too short"
            }
        );

        let mut v = saved.clone();
        v[8] = 9;
        assert_eq!(
            Digester::restore(&v).unwrap_err(),
            StateError::UnsupportedVersion {
                found: 9,
                supported: 1
            }
        );

        let mut v = saved.clone();
        v[9] = 77;
        assert_eq!(
            Digester::restore(&v).unwrap_err(),
            StateError::UnknownAlgorithm(77)
        );

        // A state of one algorithm relabelled as the other is refused, not misread.
        let mut v = saved.clone();
        v[9] = Algorithm::Sha256.code();
        assert!(matches!(
            Digester::restore(&v),
            Err(StateError::Corrupt { .. })
        ));

        // Any flipped bit in the body is caught by the checksum.
        for i in HEADER_LEN..saved.len() {
            let mut v = saved.clone();
            v[i] ^= 0x10;
            assert!(
                matches!(Digester::restore(&v), Err(StateError::Corrupt { .. })),
                "byte {i}"
            );
        }
        // Truncation is refused.
        assert!(Digester::restore(&saved[..saved.len() - 1]).is_err());
    }
}
