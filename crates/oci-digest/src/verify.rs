//! Size-and-digest verification: the shared [`Verifier`] and the `std::io` wrappers.

use std::io::{self, Read, Write};

use crate::{Digest, Digester, VerifyError};

/// Proof that content was hashed in full and matched its expected digest and size.
///
/// Only [`Verifier::finish`] (and the wrappers built on it) create one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Verified {
    digest: Digest,
    size: u64,
}

impl Verified {
    /// The verified digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The verified size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// Checks a byte stream against an expected digest and size as it passes.
///
/// This is the one piece of verification logic; [`VerifyingReader`], [`VerifyingWriter`] and the
/// async wrappers all delegate to it. Feed every chunk to [`update`](Verifier::update), which
/// refuses at once any byte beyond the expected size, then call [`finish`](Verifier::finish),
/// which checks the size and digest.
///
/// ```
/// use oci_digest::{Algorithm, Verifier, VerifyError};
///
/// let data = b"layer bytes";
/// let expected = Algorithm::Sha256.hash(data);
/// let mut v = Verifier::new(expected.clone(), data.len() as u64);
/// v.update(&data[..5])?;
/// v.update(&data[5..])?;
/// let verified = v.finish()?;
/// assert_eq!(verified.digest(), &expected);
///
/// let mut v = Verifier::new(expected, 3);
/// assert!(matches!(v.update(b"four"), Err(VerifyError::TooLong { .. })));
/// # Ok::<(), VerifyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Verifier {
    digester: Digester,
    expected: Digest,
    expected_size: u64,
}

impl Verifier {
    /// Starts verifying content expected to be `expected_size` bytes hashing to `expected`.
    pub fn new(expected: Digest, expected_size: u64) -> Verifier {
        Verifier {
            digester: Digester::new(expected.algorithm()),
            expected,
            expected_size,
        }
    }

    /// Continues verifying from a restored [`Digester`] (a resumed transfer): the next byte fed
    /// is byte number `digester.bytes_hashed()` of the content.
    ///
    /// # Errors
    /// [`VerifyError::TooLong`] when the digester already hashed more than `expected_size` bytes.
    /// A digester of another algorithm than `expected`'s can never match; it is reported as
    /// [`VerifyError::DigestMismatch`] with the digester's current digest.
    ///
    /// ```
    /// use oci_digest::{Algorithm, Digester, Verifier};
    /// let expected = Algorithm::Sha256.hash(b"abcdef");
    /// let mut d = Digester::new(Algorithm::Sha256);
    /// d.update(b"abc");
    /// let mut v = Verifier::resume(expected, 6, d)?;
    /// assert_eq!(v.received(), 3);
    /// v.update(b"def")?;
    /// v.finish()?;
    /// # Ok::<(), oci_digest::VerifyError>(())
    /// ```
    pub fn resume(
        expected: Digest,
        expected_size: u64,
        digester: Digester,
    ) -> Result<Verifier, VerifyError> {
        if digester.algorithm() != expected.algorithm() {
            return Err(VerifyError::DigestMismatch {
                actual: digester.current(),
                size: digester.bytes_hashed(),
                expected,
            });
        }
        if digester.bytes_hashed() > expected_size {
            return Err(VerifyError::TooLong {
                expected,
                expected_size,
                received: digester.bytes_hashed(),
            });
        }
        Ok(Verifier {
            digester,
            expected,
            expected_size,
        })
    }

    /// The digest the content must have.
    pub fn expected(&self) -> &Digest {
        &self.expected
    }

    /// The size the content must have.
    pub fn expected_size(&self) -> u64 {
        self.expected_size
    }

    /// Bytes accepted so far.
    pub fn received(&self) -> u64 {
        self.digester.bytes_hashed()
    }

    /// Bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.expected_size - self.received()
    }

    /// The hashing state, to save with [`Digester::save_state`] for a later resume.
    pub fn digester(&self) -> &Digester {
        &self.digester
    }

    /// Hashes the next chunk.
    ///
    /// # Errors
    /// [`VerifyError::TooLong`] when the chunk would go past the expected size; none of the
    /// chunk is hashed then.
    #[inline]
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), VerifyError> {
        if chunk.len() as u64 > self.remaining() {
            return Err(VerifyError::TooLong {
                expected: self.expected.clone(),
                expected_size: self.expected_size,
                received: self.received() + chunk.len() as u64,
            });
        }
        self.digester.update(chunk);
        Ok(())
    }

    /// Checks that exactly the expected size was received and that it hashed to the expected
    /// digest. Does not consume the verifier, so a wrapper can report the same answer again.
    ///
    /// # Errors
    /// [`VerifyError::TooShort`] or [`VerifyError::DigestMismatch`].
    pub fn finish(&self) -> Result<Verified, VerifyError> {
        let received = self.received();
        if received < self.expected_size {
            return Err(VerifyError::TooShort {
                expected: self.expected.clone(),
                expected_size: self.expected_size,
                received,
            });
        }
        let actual = self.digester.current();
        if actual != self.expected {
            return Err(VerifyError::DigestMismatch {
                expected: self.expected.clone(),
                actual,
                size: received,
            });
        }
        Ok(Verified {
            digest: actual,
            size: received,
        })
    }
}

/// Where a wrapper is in its life.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Still streaming.
    Open,
    /// End reached and verified.
    Verified(Verified),
    /// Verification failed; the same error is returned on every later call.
    Failed(VerifyError),
}

impl Outcome {
    /// What verified, once the end was reached and the content matched.
    pub(crate) fn verified(&self) -> Option<&Verified> {
        match self {
            Outcome::Verified(v) => Some(v),
            _ => None,
        }
    }

    /// The error to report again after a failure, or `None` while open or after success.
    pub(crate) fn failed(&self) -> Option<io::Error> {
        match self {
            Outcome::Failed(e) => Some(e.clone().into()),
            _ => None,
        }
    }
}

/// A [`Read`] wrapper that checks size and digest of everything read through it.
///
/// Bytes pass to the caller as they arrive. A byte beyond the expected size makes the read that
/// sees it fail at once (and no byte of that read is returned). At the end of the inner reader,
/// the read that would return 0 instead fails if the content is short or hashed to another
/// digest; so a caller that reads to EOF without error has verified content. Errors are
/// [`io::ErrorKind::InvalidData`] wrapping a [`VerifyError`] (see [`VerifyError::from_io`]).
///
/// A caller that stops after exactly the expected number of bytes (say, `read_exact`) must call
/// [`finish`](VerifyingReader::finish), which also checks that nothing follows.
///
/// ```
/// use std::io::Read;
/// use oci_digest::{Algorithm, VerifyingReader};
///
/// let blob = vec![42u8; 100_000];
/// let expected = Algorithm::Sha256.hash(&blob);
/// let mut reader = VerifyingReader::new(&blob[..], expected.clone(), blob.len() as u64);
/// let mut out = Vec::new();
/// reader.read_to_end(&mut out)?;   // Ok: size and digest matched
/// assert_eq!(reader.verified().map(|v| v.digest()), Some(&expected));
///
/// // One byte short:
/// let mut reader = VerifyingReader::new(&blob[1..], expected, blob.len() as u64);
/// assert!(reader.read_to_end(&mut Vec::new()).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct VerifyingReader<R> {
    pub(crate) inner: R,
    pub(crate) verifier: Verifier,
    pub(crate) outcome: Outcome,
}

impl<R> VerifyingReader<R> {
    /// Wraps `inner`, expecting `expected_size` bytes that hash to `expected`.
    pub fn new(inner: R, expected: Digest, expected_size: u64) -> Self {
        Self::with_verifier(inner, Verifier::new(expected, expected_size))
    }

    /// Wraps `inner` with a verifier that may already have hashed a prefix
    /// ([`Verifier::resume`]): `inner` yields the rest of the content.
    pub fn with_verifier(inner: R, verifier: Verifier) -> Self {
        VerifyingReader {
            inner,
            verifier,
            outcome: Outcome::Open,
        }
    }

    /// The verifier (bytes received so far, hash state to save).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// `Some` once the end was reached and the content verified.
    pub fn verified(&self) -> Option<&Verified> {
        self.outcome.verified()
    }

    /// The inner reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Gives the inner reader back, dropping the verification state.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> VerifyingReader<R> {
    /// Reads whatever is left (the caller gets none of it), then checks size and digest.
    ///
    /// # Errors
    /// The inner reader's errors, or `InvalidData` wrapping a [`VerifyError`].
    pub fn finish(mut self) -> io::Result<Verified> {
        let mut scratch = [0u8; 8192];
        loop {
            if self.read(&mut scratch)? == 0 {
                break;
            }
        }
        self.verified()
            .cloned()
            .ok_or_else(|| io::Error::other("verifying reader ended without an outcome"))
    }

    fn fail(&mut self, e: VerifyError) -> io::Error {
        self.outcome = Outcome::Failed(e.clone());
        e.into()
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.outcome.failed() {
            return Err(e);
        }
        if matches!(self.outcome, Outcome::Verified(_)) || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return match self.verifier.finish() {
                Ok(v) => {
                    self.outcome = Outcome::Verified(v);
                    Ok(0)
                }
                Err(e) => Err(self.fail(e)),
            };
        }
        match self.verifier.update(&buf[..n]) {
            Ok(()) => Ok(n),
            Err(e) => Err(self.fail(e)),
        }
    }
}

/// A [`Write`] wrapper that checks size and digest of everything written through it.
///
/// A write that would go past the expected size fails at once and writes nothing. Only
/// [`finish`](VerifyingWriter::finish) says whether the content is verified; until then, treat
/// what the inner writer holds as unverified (write to a temporary file, rename after `finish`).
///
/// ```
/// use std::io::Write;
/// use oci_digest::{Algorithm, VerifyingWriter};
///
/// let expected = Algorithm::Sha256.hash(b"hello world");
/// let mut w = VerifyingWriter::new(Vec::new(), expected.clone(), 11);
/// w.write_all(b"hello ")?;
/// w.write_all(b"world")?;
/// let (bytes, verified) = w.finish()?;
/// assert_eq!(bytes, b"hello world");
/// assert_eq!(verified.size(), 11);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct VerifyingWriter<W> {
    inner: W,
    verifier: Verifier,
}

impl<W: Write> VerifyingWriter<W> {
    /// Wraps `inner`, expecting `expected_size` bytes that hash to `expected`.
    pub fn new(inner: W, expected: Digest, expected_size: u64) -> Self {
        Self::with_verifier(inner, Verifier::new(expected, expected_size))
    }

    /// Wraps `inner` with a verifier that may already have hashed a prefix.
    pub fn with_verifier(inner: W, verifier: Verifier) -> Self {
        VerifyingWriter { inner, verifier }
    }

    /// The verifier (bytes received so far, hash state to save).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer, mutably (for example to `sync_all` a file before `finish`).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Flushes, checks size and digest, and gives back the inner writer with the proof.
    ///
    /// # Errors
    /// The inner writer's flush error, or `InvalidData` wrapping a [`VerifyError`].
    pub fn finish(mut self) -> io::Result<(W, Verified)> {
        self.inner.flush()?;
        let verified = self.verifier.finish()?;
        Ok((self.inner, verified))
    }
}

impl<W: Write> Write for VerifyingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.verifier.remaining() {
            // Reported before anything reaches the inner writer.
            self.verifier.update(buf)?;
        }
        let n = self.inner.write(buf)?;
        self.verifier.update(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Algorithm;

    /// A reader that returns its data in fixed-size pieces.
    struct Pieces<'a>(&'a [u8], usize);
    impl Read for Pieces<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn verify_err(e: &io::Error) -> VerifyError {
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        VerifyError::from_io(e)
            .cloned()
            .expect("a VerifyError inside")
    }

    #[test]
    fn reader_too_long_fails_on_the_read_that_sees_the_excess() {
        let data = b"0123456789";
        let expected = Algorithm::Sha256.hash(&data[..8]);
        let mut r = VerifyingReader::new(Pieces(data, 4), expected.clone(), 8);
        let mut buf = [0u8; 16];
        assert_eq!(r.read(&mut buf).unwrap(), 4);
        assert_eq!(r.read(&mut buf).unwrap(), 4);
        let e = r.read(&mut buf).unwrap_err();
        assert_eq!(
            verify_err(&e),
            VerifyError::TooLong {
                expected: expected.clone(),
                expected_size: 8,
                received: 10
            }
        );
        // The error sticks.
        assert!(r.read(&mut buf).is_err());
        assert!(r.verified().is_none());
    }

    #[test]
    fn reader_too_short_and_mismatch_fail_at_eof_only() {
        let data = b"0123456789";
        let expected = Algorithm::Sha256.hash(data);
        let mut r = VerifyingReader::new(Pieces(&data[..9], 3), expected.clone(), 10);
        let mut buf = [0u8; 16];
        for _ in 0..3 {
            assert_eq!(r.read(&mut buf).unwrap(), 3);
        }
        let e = r.read(&mut buf).unwrap_err();
        assert_eq!(
            verify_err(&e),
            VerifyError::TooShort {
                expected: expected.clone(),
                expected_size: 10,
                received: 9
            }
        );

        let wrong = b"0123456780";
        let mut r = VerifyingReader::new(&wrong[..], expected.clone(), 10);
        let e = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(
            verify_err(&e),
            VerifyError::DigestMismatch {
                expected,
                actual: Algorithm::Sha256.hash(wrong),
                size: 10
            }
        );
    }

    #[test]
    fn reader_finish_detects_trailing_bytes_after_read_exact() {
        let data = b"abcdef";
        let expected = Algorithm::Sha256.hash(b"abc");
        let mut r = VerifyingReader::new(&data[..], expected.clone(), 3);
        let mut buf = [0u8; 3];
        r.read_exact(&mut buf).unwrap();
        let e = r.finish().unwrap_err();
        assert!(matches!(verify_err(&e), VerifyError::TooLong { .. }));

        let mut r = VerifyingReader::new(&data[..3], expected.clone(), 3);
        r.read_exact(&mut buf).unwrap();
        assert_eq!(r.finish().unwrap().digest(), &expected);
    }

    #[test]
    fn writer_refuses_excess_before_writing_it() {
        let expected = Algorithm::Sha256.hash(b"abc");
        let mut w = VerifyingWriter::new(Vec::new(), expected.clone(), 3);
        w.write_all(b"ab").unwrap();
        let e = w.write_all(b"cd").unwrap_err();
        assert!(matches!(
            verify_err(&e),
            VerifyError::TooLong { received: 4, .. }
        ));
        assert_eq!(w.get_ref(), b"ab");

        let w = VerifyingWriter::new(Vec::new(), expected.clone(), 3);
        let e = w.finish().unwrap_err();
        assert!(matches!(
            verify_err(&e),
            VerifyError::TooShort { received: 0, .. }
        ));

        let mut w = VerifyingWriter::new(Vec::new(), expected.clone(), 3);
        w.write_all(b"abd").unwrap();
        let e = w.finish().unwrap_err();
        assert!(matches!(verify_err(&e), VerifyError::DigestMismatch { .. }));
    }

    #[test]
    fn resume_checks_algorithm_and_size() {
        let expected = Algorithm::Sha256.hash(b"abc");
        let d512 = Digester::new(Algorithm::Sha512);
        assert!(matches!(
            Verifier::resume(expected.clone(), 3, d512),
            Err(VerifyError::DigestMismatch { .. })
        ));
        let mut d = Digester::new(Algorithm::Sha256);
        d.update(b"abcd");
        assert!(matches!(
            Verifier::resume(expected, 3, d),
            Err(VerifyError::TooLong { received: 4, .. })
        ));
    }

    #[test]
    fn empty_content() {
        let expected = Algorithm::Sha256.hash(b"");
        let mut r = VerifyingReader::new(&b""[..], expected.clone(), 0);
        assert_eq!(r.read(&mut [0u8; 4]).unwrap(), 0);
        assert_eq!(r.verified().unwrap().size(), 0);
    }
}
