//! Piece maps: the SHA-256 of every fixed-size piece of a blob, so that a blob fetched in pieces
//! from several sources can be checked piece by piece, long before its whole digest can.
//!
//! - [`PieceLayout`]: how a blob of a given size is cut into pieces (a power-of-two piece length,
//!   the last piece shorter), and the default rule choosing that length.
//! - [`PieceMap`]: for a blob of digest D and size S, its layout and the SHA-256 of each piece.
//!   Made only by a [`PieceMapBuilder`] that also verified the whole content against D (so a map
//!   made by a store that holds the blob is trusted), or parsed from its serialised form (then it
//!   is only as trustworthy as whoever supplied it). Parsing refuses every map that cannot
//!   describe a blob of its declared size.
//! - Its serialisation: JSON, media type [`PIECE_MAP_MEDIA_TYPE`] (see [`PieceMap`]).
//!
//! Computing a map costs a second SHA-256 pass over the blob (one for the whole digest, one for
//! the pieces), so nothing in this crate computes one unless asked.

use std::fmt;
use std::io::{self, Read};
use std::ops::Range;

use digest::Digest as _;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Algorithm, Digest, Verifier, VerifyError};

/// Media type of a serialised [`PieceMap`] (version 1 of the format).
///
/// ```
/// assert_eq!(oci_digest::PieceMap::MEDIA_TYPE, oci_digest::PIECE_MAP_MEDIA_TYPE);
/// assert!(oci_digest::PIECE_MAP_MEDIA_TYPE.ends_with(".v1+json"));
/// ```
pub const PIECE_MAP_MEDIA_TYPE: &str = "application/vnd.oci-rs.piece-map.v1+json";

/// Length in bytes of one piece hash (SHA-256).
const HASH_LEN: usize = 32;

/// How a blob is cut into pieces: every piece is [`piece_length`](PieceLayout::piece_length)
/// bytes (a power of two) except the last, which holds the rest. An empty blob has no pieces.
///
/// The default rule ([`PieceLayout::for_size`]): the smallest power of two of at least
/// [`DEFAULT_MIN_PIECE_LENGTH`](PieceLayout::DEFAULT_MIN_PIECE_LENGTH) (1 MiB) that cuts the blob
/// into at most [`DEFAULT_TARGET_PIECES`](PieceLayout::DEFAULT_TARGET_PIECES) (128) pieces, but
/// no more than [`DEFAULT_MAX_PIECE_LENGTH`](PieceLayout::DEFAULT_MAX_PIECE_LENGTH) (16 MiB):
/// 1 MiB pieces up to 128 MiB, 8 MiB pieces for a 1 GiB blob, 16 MiB pieces (and more than 128
/// of them) from 2 GiB on. Pieces longer than 16 MiB are chosen only when a blob is so large
/// (over 4 TiB) that 16 MiB pieces would be more than [`MAX_PIECES`](PieceLayout::MAX_PIECES).
///
/// ```
/// use oci_digest::PieceLayout;
///
/// let l = PieceLayout::for_size(1 << 30)?;           // 1 GiB
/// assert_eq!(l.piece_length(), 8 << 20);
/// assert_eq!(l.count(), 128);
///
/// let l = PieceLayout::new(10_000, 4096)?;
/// assert_eq!(l.count(), 3);
/// assert_eq!(l.range(2), Some(8192..10_000));
/// assert_eq!(l.piece_at(5000), Some(1));
/// assert!(PieceLayout::new(10_000, 5000).is_err());   // not a power of two
/// # Ok::<(), oci_digest::PieceMapError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PieceLayout {
    size: u64,
    piece_length: u64,
}

impl PieceLayout {
    /// Shortest piece length accepted (4 KiB).
    pub const MIN_PIECE_LENGTH: u64 = 4 << 10;
    /// Longest piece length accepted (4 GiB).
    pub const MAX_PIECE_LENGTH: u64 = 4 << 30;
    /// Most pieces a layout (and so a map) may have: 262,144, whose hashes take 8 MiB.
    pub const MAX_PIECES: u64 = 1 << 18;
    /// Shortest piece length the default rule picks (1 MiB).
    pub const DEFAULT_MIN_PIECE_LENGTH: u64 = 1 << 20;
    /// Longest piece length the default rule picks while that keeps the count under
    /// [`MAX_PIECES`](PieceLayout::MAX_PIECES) (16 MiB).
    pub const DEFAULT_MAX_PIECE_LENGTH: u64 = 16 << 20;
    /// Number of pieces the default rule aims for at most, between its shortest and longest
    /// piece lengths.
    pub const DEFAULT_TARGET_PIECES: u64 = 128;

    /// The layout the default rule gives a blob of `size` bytes (see [`PieceLayout`]).
    ///
    /// # Errors
    /// [`PieceMapError::TooManyPieces`] for a size so large (over 1 PiB) that even the longest
    /// piece length makes more than [`MAX_PIECES`](PieceLayout::MAX_PIECES) pieces.
    pub fn for_size(size: u64) -> Result<PieceLayout, PieceMapError> {
        let wanted = size
            .div_ceil(Self::DEFAULT_TARGET_PIECES)
            .clamp(
                Self::DEFAULT_MIN_PIECE_LENGTH,
                Self::DEFAULT_MAX_PIECE_LENGTH,
            )
            .next_power_of_two();
        let needed = size
            .div_ceil(Self::MAX_PIECES)
            .min(Self::MAX_PIECE_LENGTH)
            .next_power_of_two();
        Self::new(size, wanted.max(needed))
    }

    /// A layout with an explicit piece length.
    ///
    /// # Errors
    /// [`PieceMapError::PieceLength`] when `piece_length` is not a power of two between
    /// [`MIN_PIECE_LENGTH`](PieceLayout::MIN_PIECE_LENGTH) and
    /// [`MAX_PIECE_LENGTH`](PieceLayout::MAX_PIECE_LENGTH);
    /// [`PieceMapError::TooManyPieces`] when it cuts `size` into more than
    /// [`MAX_PIECES`](PieceLayout::MAX_PIECES) pieces.
    pub fn new(size: u64, piece_length: u64) -> Result<PieceLayout, PieceMapError> {
        if !piece_length.is_power_of_two() {
            return Err(PieceMapError::PieceLength {
                piece_length,
                reason: "not a power of two",
            });
        }
        if piece_length < Self::MIN_PIECE_LENGTH {
            return Err(PieceMapError::PieceLength {
                piece_length,
                reason: "shorter than 4 KiB",
            });
        }
        if piece_length > Self::MAX_PIECE_LENGTH {
            return Err(PieceMapError::PieceLength {
                piece_length,
                reason: "longer than 4 GiB",
            });
        }
        // No overflow: a division, then an addition of at most one to a quotient below u64::MAX.
        let count = size.div_ceil(piece_length);
        if count > Self::MAX_PIECES {
            return Err(PieceMapError::TooManyPieces {
                size,
                piece_length,
                count,
            });
        }
        Ok(PieceLayout { size, piece_length })
    }

    /// Size of the blob in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Length of every piece but the last.
    pub fn piece_length(&self) -> u64 {
        self.piece_length
    }

    /// Number of pieces (0 for an empty blob).
    pub fn count(&self) -> u64 {
        self.size.div_ceil(self.piece_length)
    }

    /// The byte range of piece `index`, or `None` past the last piece.
    pub fn range(&self, index: u64) -> Option<Range<u64>> {
        if index >= self.count() {
            return None;
        }
        // index < count <= MAX_PIECES and piece_length <= 2^32: no overflow.
        let start = index * self.piece_length;
        Some(start..(start + self.piece_length).min(self.size))
    }

    /// Length of piece `index` (0 past the last piece).
    pub fn len_of(&self, index: u64) -> u64 {
        self.range(index).map_or(0, |r| r.end - r.start)
    }

    /// The piece holding byte `offset`, or `None` at or past the end of the blob.
    pub fn piece_at(&self, offset: u64) -> Option<u64> {
        (offset < self.size).then(|| offset / self.piece_length)
    }

    /// The pieces lying wholly inside byte range `range` (a byte range known to be held, say).
    ///
    /// ```
    /// let l = oci_digest::PieceLayout::new(10_000, 4096)?;
    /// assert_eq!(l.pieces_within(0..8192), 0..2);
    /// assert_eq!(l.pieces_within(100..10_000), 1..3);   // piece 0 is not whole in it
    /// assert_eq!(l.pieces_within(5000..6000), 2..2);    // none
    /// # Ok::<(), oci_digest::PieceMapError>(())
    /// ```
    pub fn pieces_within(&self, range: Range<u64>) -> Range<u64> {
        let end = range.end.min(self.size);
        let first = range.start.div_ceil(self.piece_length);
        let last = if end == self.size {
            self.count()
        } else {
            end / self.piece_length
        };
        first..last.max(first)
    }
}

/// The SHA-256 of every piece of one blob: its digest and size, its [`PieceLayout`], and one hash
/// per piece.
///
/// A map is either made from verified content ([`PieceMapBuilder`], [`PieceMap::compute`]) or
/// parsed from its serialised form; a parsed map says only what its supplier claims, so check it
/// against the descriptor of the blob it is used for ([`PieceMap::check_for`]), and let the whole
/// digest be the final check of the content either way.
///
/// # Serialisation (version 1)
///
/// JSON, media type [`PIECE_MAP_MEDIA_TYPE`], one object with exactly these members:
///
/// ```json
/// {
///   "mediaType": "application/vnd.oci-rs.piece-map.v1+json",
///   "digest": "sha256:…",                 // the whole blob (sha256 or sha512)
///   "size": 10000,                        // the blob's size in bytes
///   "pieceLength": 4096,                  // a power of two, 4 KiB to 4 GiB
///   "pieces": ["<64 lowercase hex>", …]   // SHA-256 of each piece, in order
/// }
/// ```
///
/// Pieces are hashed with SHA-256 whatever the blob's digest algorithm. Members are written in
/// this order, without spaces. The parser (any serde deserializer; `serde_json` for the JSON)
/// refuses unknown or repeated members, another media type (another version), a piece length
/// that is not a power of two in range, more than [`PieceLayout::MAX_PIECES`] pieces (before
/// reading them all), a number of pieces that does not fit the size, and hashes that are not
/// 64 lowercase hex digits.
///
/// ```
/// use oci_digest::{Algorithm, PieceLayout, PieceMap};
///
/// let blob: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
/// let digest = Algorithm::Sha256.hash(&blob);
/// let layout = PieceLayout::new(blob.len() as u64, 4096)?;
/// let map = PieceMap::compute_with_layout(&blob[..], digest.clone(), layout)?;
/// assert_eq!(map.count(), 3);
/// assert!(map.check_piece(2, &blob[8192..]).is_ok());
/// assert!(map.check_piece(2, b"something else").is_err());
///
/// let json = serde_json::to_vec(&map)?;
/// let back: PieceMap = serde_json::from_slice(&json)?;
/// assert_eq!(back, map);
/// back.check_for(&digest, blob.len() as u64)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PieceMap {
    digest: Digest,
    layout: PieceLayout,
    hashes: Vec<[u8; HASH_LEN]>,
}

impl PieceMap {
    /// The map's media type, [`PIECE_MAP_MEDIA_TYPE`].
    pub const MEDIA_TYPE: &'static str = PIECE_MAP_MEDIA_TYPE;

    /// A map from its parts, as a parser would (the parts are checked, not trusted: nothing says
    /// the hashes are those of the blob).
    ///
    /// # Errors
    /// [`PieceMapError::PieceCount`] when the number of hashes is not the layout's count.
    ///
    /// ```
    /// use oci_digest::{Algorithm, PieceLayout, PieceMap};
    /// let d = Algorithm::Sha256.hash(b"");
    /// let m = PieceMap::from_parts(d.clone(), PieceLayout::new(0, 4096)?, Vec::new())?;
    /// assert_eq!(m.count(), 0);
    /// assert!(PieceMap::from_parts(d, PieceLayout::new(1, 4096)?, Vec::new()).is_err());
    /// # Ok::<(), oci_digest::PieceMapError>(())
    /// ```
    pub fn from_parts(
        digest: Digest,
        layout: PieceLayout,
        hashes: Vec<[u8; 32]>,
    ) -> Result<PieceMap, PieceMapError> {
        if hashes.len() as u64 != layout.count() {
            return Err(PieceMapError::PieceCount {
                size: layout.size(),
                piece_length: layout.piece_length(),
                expected: layout.count(),
                found: hashes.len() as u64,
            });
        }
        Ok(PieceMap {
            digest,
            layout,
            hashes,
        })
    }

    /// Computes the map of the content `reader` yields, with the default layout
    /// ([`PieceLayout::for_size`]), checking that it is `size` bytes hashing to `digest`.
    ///
    /// # Errors
    /// The reader's errors; `InvalidData` wrapping a [`VerifyError`] when the content does not
    /// match; `InvalidInput` wrapping a [`PieceMapError`] when no layout fits `size`.
    pub fn compute(reader: impl Read, digest: Digest, size: u64) -> io::Result<PieceMap> {
        let layout = PieceLayout::for_size(size)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Self::compute_with_layout(reader, digest, layout)
    }

    /// [`compute`](PieceMap::compute) with an explicit layout (the blob's size is the layout's).
    ///
    /// # Errors
    /// As [`compute`](PieceMap::compute).
    pub fn compute_with_layout(
        mut reader: impl Read,
        digest: Digest,
        layout: PieceLayout,
    ) -> io::Result<PieceMap> {
        let mut builder = PieceMapBuilder::new(digest, layout);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            builder.update(&buf[..n])?;
        }
        Ok(builder.finish()?)
    }

    /// The digest of the whole blob.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The size of the whole blob.
    pub fn size(&self) -> u64 {
        self.layout.size()
    }

    /// How the blob is cut into pieces.
    pub fn layout(&self) -> PieceLayout {
        self.layout
    }

    /// Number of pieces.
    pub fn count(&self) -> u64 {
        self.layout.count()
    }

    /// The SHA-256 of piece `index` as a digest (`sha256:…`), or `None` past the last piece.
    pub fn piece_digest(&self, index: u64) -> Option<Digest> {
        let raw = self.hashes.get(usize::try_from(index).ok()?)?;
        Some(Digest::from_hash_output(Algorithm::Sha256, raw))
    }

    /// The raw SHA-256 of every piece, in order.
    pub fn hashes(&self) -> &[[u8; 32]] {
        &self.hashes
    }

    /// Checks that this map is for the blob `digest` of `size` bytes (a map found beside a blob,
    /// or offered by a peer, may be for another).
    ///
    /// # Errors
    /// [`PieceMapError::WrongBlob`].
    pub fn check_for(&self, digest: &Digest, size: u64) -> Result<(), PieceMapError> {
        if &self.digest != digest || self.size() != size {
            return Err(PieceMapError::WrongBlob {
                expected: digest.clone(),
                expected_size: size,
                found: self.digest.clone(),
                found_size: self.size(),
            });
        }
        Ok(())
    }

    /// Checks a piece's SHA-256 (computed while it streamed) against the map.
    ///
    /// # Errors
    /// [`PieceMapError::NoSuchPiece`]; [`PieceMapError::PieceMismatch`].
    pub fn check_piece_digest(&self, index: u64, actual: &Digest) -> Result<(), PieceMapError> {
        let expected = self.piece_digest(index).ok_or(PieceMapError::NoSuchPiece {
            index,
            count: self.count(),
        })?;
        if &expected != actual {
            return Err(PieceMapError::PieceMismatch {
                digest: self.digest.clone(),
                index,
                expected,
                actual: actual.clone(),
            });
        }
        Ok(())
    }

    /// Checks the bytes of piece `index` against the map: its length and its SHA-256.
    ///
    /// # Errors
    /// [`PieceMapError::NoSuchPiece`]; [`PieceMapError::PieceLengthMismatch`];
    /// [`PieceMapError::PieceMismatch`].
    pub fn check_piece(&self, index: u64, data: &[u8]) -> Result<(), PieceMapError> {
        let expected_len = self.layout.len_of(index);
        if index >= self.count() {
            return Err(PieceMapError::NoSuchPiece {
                index,
                count: self.count(),
            });
        }
        if data.len() as u64 != expected_len {
            return Err(PieceMapError::PieceLengthMismatch {
                index,
                expected: expected_len,
                actual: data.len() as u64,
            });
        }
        self.check_piece_digest(index, &Algorithm::Sha256.hash(data))
    }
}

impl fmt::Debug for PieceMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PieceMap")
            .field("digest", &self.digest)
            .field("size", &self.size())
            .field("piece_length", &self.layout.piece_length())
            .field("pieces", &self.count())
            .finish()
    }
}

/// Builds a [`PieceMap`] while checking the whole content against its digest: the map is given
/// only when every byte arrived and the content matched, so a builder fed from any reader (a
/// download, a blob file) makes a map that can be trusted.
///
/// ```
/// use oci_digest::{Algorithm, PieceLayout, PieceMapBuilder, VerifyError};
///
/// let blob = vec![7u8; 9000];
/// let layout = PieceLayout::new(9000, 4096)?;
/// let mut b = PieceMapBuilder::new(Algorithm::Sha256.hash(&blob), layout);
/// b.update(&blob[..5000])?;
/// b.update(&blob[5000..])?;
/// assert_eq!(b.finish()?.count(), 3);
///
/// let mut b = PieceMapBuilder::new(Algorithm::Sha256.hash(&blob), layout);
/// b.update(&[8u8; 9000])?;
/// assert!(matches!(b.finish(), Err(VerifyError::DigestMismatch { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct PieceMapBuilder {
    verifier: Verifier,
    layout: PieceLayout,
    piece: sha2::Sha256,
    /// Bytes of the current piece hashed so far.
    filled: u64,
    hashes: Vec<[u8; HASH_LEN]>,
}

impl PieceMapBuilder {
    /// Starts a map of the blob `digest` cut as `layout` (whose size is the blob's).
    pub fn new(digest: Digest, layout: PieceLayout) -> PieceMapBuilder {
        PieceMapBuilder {
            verifier: Verifier::new(digest, layout.size()),
            layout,
            piece: sha2::Sha256::new(),
            filled: 0,
            // At most MAX_PIECES hashes (8 MiB); reserved as they come.
            hashes: Vec::new(),
        }
    }

    /// Hashes the next bytes of the blob.
    ///
    /// # Errors
    /// [`VerifyError::TooLong`] when they go past the blob's size (nothing of them is hashed).
    pub fn update(&mut self, mut data: &[u8]) -> Result<(), VerifyError> {
        self.verifier.update(data)?;
        while !data.is_empty() {
            let index = self.hashes.len() as u64;
            let want = self.layout.len_of(index) - self.filled;
            // The verifier refused anything past the size, so `want` is positive here.
            let n = usize::try_from(want).map_or(data.len(), |w| w.min(data.len()));
            self.piece.update(&data[..n]);
            self.filled += n as u64;
            data = &data[n..];
            if self.filled == self.layout.len_of(index) {
                let done = std::mem::take(&mut self.piece);
                self.hashes.push(done.finalize().into());
                self.filled = 0;
            }
        }
        Ok(())
    }

    /// Bytes hashed so far.
    pub fn received(&self) -> u64 {
        self.verifier.received()
    }

    /// The map, when exactly the blob's size arrived and it hashed to the blob's digest.
    ///
    /// # Errors
    /// [`VerifyError::TooShort`] or [`VerifyError::DigestMismatch`].
    pub fn finish(self) -> Result<PieceMap, VerifyError> {
        let verified = self.verifier.finish()?;
        Ok(PieceMap {
            digest: verified.digest().clone(),
            layout: self.layout,
            hashes: self.hashes,
        })
    }
}

impl fmt::Debug for PieceMapBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PieceMapBuilder")
            .field("layout", &self.layout)
            .field("received", &self.received())
            .finish()
    }
}

/// Writing to a builder hashes the bytes ([`PieceMapBuilder::update`]; too many bytes is an
/// `InvalidData` error wrapping [`VerifyError::TooLong`]).
impl io::Write for PieceMapBuilder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a piece map, a piece layout or a piece is refused.
///
/// ```
/// use oci_digest::{PieceLayout, PieceMapError};
/// assert!(matches!(PieceLayout::new(100, 3000), Err(PieceMapError::PieceLength { .. })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PieceMapError {
    /// The serialised map has another media type (another format version, or not a map).
    #[error("not a piece map of version 1: media type {found:?} (expected {PIECE_MAP_MEDIA_TYPE})")]
    MediaType {
        /// The media type found (cut to 100 bytes).
        found: String,
    },
    /// The piece length is not a power of two between 4 KiB and 4 GiB.
    #[error("invalid piece length {piece_length}: {reason}")]
    PieceLength {
        /// The piece length.
        piece_length: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The piece length cuts the size into more than [`PieceLayout::MAX_PIECES`] pieces.
    #[error(
        "{size} bytes in pieces of {piece_length} make {count} pieces, more than the limit of {}",
        PieceLayout::MAX_PIECES
    )]
    TooManyPieces {
        /// The blob's size.
        size: u64,
        /// The piece length.
        piece_length: u64,
        /// The number of pieces it would make.
        count: u64,
    },
    /// The map lists another number of pieces than its size and piece length make.
    #[error(
        "a map of {size} bytes in pieces of {piece_length} needs {expected} piece hashes, it has {found}"
    )]
    PieceCount {
        /// The blob's size.
        size: u64,
        /// The piece length.
        piece_length: u64,
        /// Pieces the size needs.
        expected: u64,
        /// Pieces listed (counting stops past [`PieceLayout::MAX_PIECES`]).
        found: u64,
    },
    /// A piece hash is not 64 lowercase hex digits.
    #[error("piece hash {index} is invalid: {reason}")]
    BadHash {
        /// The piece's index.
        index: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The map describes another blob than the one it is used for.
    #[error(
        "piece map is for {found} ({found_size} bytes), not for {expected} ({expected_size} bytes)"
    )]
    WrongBlob {
        /// The blob the map was to describe.
        expected: Digest,
        /// Its size.
        expected_size: u64,
        /// The blob the map describes.
        found: Digest,
        /// The size it declares.
        found_size: u64,
    },
    /// No piece with this index.
    #[error("no piece {index}: the map has {count} pieces")]
    NoSuchPiece {
        /// The index asked for.
        index: u64,
        /// The map's number of pieces.
        count: u64,
    },
    /// A piece has another length than the layout gives it.
    #[error("piece {index} has {actual} bytes, expected {expected}")]
    PieceLengthMismatch {
        /// The piece's index.
        index: u64,
        /// Its length in the layout.
        expected: u64,
        /// The length seen.
        actual: u64,
    },
    /// A piece hashed to another SHA-256 than the map's.
    #[error("piece {index} of {digest} hashed to {actual}, the map says {expected}")]
    PieceMismatch {
        /// The blob.
        digest: Digest,
        /// The piece's index.
        index: u64,
        /// The piece's hash in the map.
        expected: Digest,
        /// The hash of the bytes seen.
        actual: Digest,
    },
}

/// The serialised form, as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Wire {
    media_type: String,
    digest: Digest,
    size: u64,
    piece_length: u64,
    pieces: Hashes,
}

/// The serialised form, as written (same members, same order).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireOut<'a> {
    media_type: &'static str,
    digest: &'a Digest,
    size: u64,
    piece_length: u64,
    pieces: HexList<'a>,
}

struct HexList<'a>(&'a [[u8; HASH_LEN]]);

impl Serialize for HexList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(HexOut))
    }
}

struct HexOut<'a>(&'a [u8; HASH_LEN]);

impl Serialize for HexOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; HASH_LEN * 2];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
        // Only ASCII hex digits were written.
        serializer.serialize_str(std::str::from_utf8(&out).map_err(serde::ser::Error::custom)?)
    }
}

/// Piece hashes, decoded as they are read, and refused past [`PieceLayout::MAX_PIECES`] before
/// the rest of a hostile list is read.
struct Hashes(Vec<[u8; HASH_LEN]>);

impl<'de> Deserialize<'de> for Hashes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Hashes;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of SHA-256 hashes in lowercase hex")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Hashes, A::Error> {
                let mut out = Vec::new();
                while let Some(HexHash(decoded)) = seq.next_element::<HexHash>()? {
                    let index = out.len() as u64;
                    if index >= PieceLayout::MAX_PIECES {
                        return Err(de::Error::custom(format!(
                            "more than {} piece hashes",
                            PieceLayout::MAX_PIECES
                        )));
                    }
                    out.push(decoded.map_err(|reason| {
                        de::Error::custom(PieceMapError::BadHash { index, reason })
                    })?);
                }
                Ok(Hashes(out))
            }
        }
        deserializer.deserialize_seq(V)
    }
}

/// One hash string, decoded where it is read (nothing copied): the hash, or why it is not one.
struct HexHash(Result<[u8; HASH_LEN], &'static str>);

impl<'de> Deserialize<'de> for HexHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HexHash;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a SHA-256 hash in lowercase hex")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<HexHash, E> {
                Ok(HexHash(decode_hash(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// Decodes 64 lowercase hex digits.
fn decode_hash(s: &str) -> Result<[u8; HASH_LEN], &'static str> {
    if s.len() != HASH_LEN * 2 {
        return Err("not 64 hex digits");
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        _ => Err("not lowercase hex"),
    };
    let mut out = [0u8; HASH_LEN];
    for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Ok(out)
}

impl Serialize for PieceMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireOut {
            media_type: PIECE_MAP_MEDIA_TYPE,
            digest: &self.digest,
            size: self.size(),
            piece_length: self.layout.piece_length(),
            pieces: HexList(&self.hashes),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PieceMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(deserializer)?;
        if w.media_type != PIECE_MAP_MEDIA_TYPE {
            return Err(de::Error::custom(PieceMapError::MediaType {
                found: crate::error::truncate_input(&w.media_type),
            }));
        }
        let layout = PieceLayout::new(w.size, w.piece_length).map_err(de::Error::custom)?;
        PieceMap::from_parts(w.digest, layout, w.pieces.0).map_err(de::Error::custom)
    }
}
