//! Verification of a `futures` stream of `Bytes` (feature `stream`).

use std::error::Error as StdError;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;

use crate::verify::Outcome;
use crate::{Digest, Verified, Verifier};

/// A stream of `Bytes` chunks checked for size and digest as it passes.
///
/// Items are `io::Result<Bytes>`: errors of the inner stream become `io::Error`s (kind `Other`,
/// the original error as source); verification failures are `InvalidData` errors wrapping a
/// [`VerifyError`](crate::VerifyError). A chunk that would pass the expected size is replaced by an
/// error at once. When the inner stream ends, the stream yields one more item, an error, if the
/// content is short or has another digest; a stream that ends without an error item carried
/// verified content.
///
/// The inner stream must be `Unpin` (use `Box::pin` for one that is not).
///
/// ```
/// use bytes::Bytes;
/// use futures_util::{stream, StreamExt};
/// use oci_digest::{Algorithm, VerifyingStream};
///
/// # futures_executor_block_on(async {
/// let chunks = vec![Ok::<_, std::io::Error>(Bytes::from_static(b"hello ")), Ok(Bytes::from_static(b"world"))];
/// let expected = Algorithm::Sha256.hash(b"hello world");
/// let mut s = VerifyingStream::new(stream::iter(chunks), expected, 11);
/// let mut body = Vec::new();
/// while let Some(chunk) = s.next().await {
///     body.extend_from_slice(&chunk?);
/// }
/// assert!(s.verified().is_some());
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// # fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug)]
pub struct VerifyingStream<S> {
    inner: S,
    verifier: Verifier,
    outcome: Outcome,
    done: bool,
}

impl<S> VerifyingStream<S> {
    /// Wraps `inner`, expecting `expected_size` bytes that hash to `expected`.
    pub fn new(inner: S, expected: Digest, expected_size: u64) -> Self {
        Self::with_verifier(inner, Verifier::new(expected, expected_size))
    }

    /// Wraps `inner` with a verifier that may already have hashed a prefix (a resumed download).
    pub fn with_verifier(inner: S, verifier: Verifier) -> Self {
        VerifyingStream {
            inner,
            verifier,
            outcome: Outcome::Open,
            done: false,
        }
    }

    /// The verifier (bytes received so far, hash state to save).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// `Some` once the stream ended and the content verified.
    pub fn verified(&self) -> Option<&Verified> {
        self.outcome.verified()
    }

    /// Gives back the inner stream, dropping the verification state.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, E> Stream for VerifyingStream<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => match this.verifier.update(&chunk) {
                Ok(()) => Poll::Ready(Some(Ok(chunk))),
                Err(e) => {
                    this.done = true;
                    this.outcome = Outcome::Failed(e.clone());
                    Poll::Ready(Some(Err(e.into())))
                }
            },
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(io::Error::other(e))))
            }
            Poll::Ready(None) => {
                this.done = true;
                match this.verifier.finish() {
                    Ok(v) => {
                        this.outcome = Outcome::Verified(v);
                        Poll::Ready(None)
                    }
                    Err(e) => {
                        this.outcome = Outcome::Failed(e.clone());
                        Poll::Ready(Some(Err(e.into())))
                    }
                }
            }
        }
    }
}
