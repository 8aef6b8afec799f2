//! Verification of a tokio `AsyncRead` (feature `tokio`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use crate::VerifyingReader;
use crate::verify::Outcome;

/// The async twin of [`VerifyingReader`](crate::VerifyingReader), over a tokio [`AsyncRead`].
///
/// Same rules: excess bytes fail the read that sees them (and are taken back out of the caller's
/// buffer), a short or mismatching content fails the read that reaches the end, and a reader
/// that reached the end without error carried verified content.
///
/// ```
/// use tokio::io::AsyncReadExt;
/// use oci_digest::{Algorithm, VerifyingAsyncReader};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let expected = Algorithm::Sha256.hash(b"abc");
/// let mut r = VerifyingAsyncReader::new(&b"abc"[..], expected, 3);
/// let mut out = Vec::new();
/// r.read_to_end(&mut out).await?;
/// assert!(r.verified().is_some());
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
///
/// It is the same type as [`VerifyingReader`](crate::VerifyingReader) (constructors, `verifier`,
/// `verified`, `into_inner`), which reads through [`AsyncRead`] when the inner reader does.
pub type VerifyingAsyncReader<R> = crate::VerifyingReader<R>;

impl<R: AsyncRead + Unpin> AsyncRead for VerifyingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(e) = this.outcome.failed() {
            return Poll::Ready(Err(e));
        }
        if matches!(this.outcome, Outcome::Verified(_)) || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        let result = if buf.filled().len() == before {
            this.verifier
                .finish()
                .map(|v| this.outcome = Outcome::Verified(v))
        } else {
            let r = this.verifier.update(&buf.filled()[before..]);
            if r.is_err() {
                // Hand none of the excess to the caller.
                buf.set_filled(before);
            }
            r
        };
        Poll::Ready(result.map_err(|e| {
            this.outcome = Outcome::Failed(e.clone());
            e.into()
        }))
    }
}
