//! Reading blobs: whether the registry has one (`HEAD`), the whole blob verified or only
//! counted, a range, and parallel ranged parts. Every body is read by
//! the resumable reader of `body.rs`.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use oci_digest::{Digest, Verifier};
use oci_manifest::Descriptor;
use reqwest::{Method, StatusCode};
use tracing::warn;

use super::body::{BlobBody, Check, range_len};
use super::{ByteStream, Repository, header_str};
use crate::Error;
use crate::client::{Req, status_error};

impl Repository {
    /// Whether the registry has the blob, by `HEAD`: its size as the registry states it
    /// (`Content-Length`, 0 when absent), `None` for 404.
    ///
    /// This is the registry's answer, not a proof that it serves the bytes: for a checked
    /// answer, see [`oci_store::checked_exists`]; a copy checks with [`oci_store::VerifyMode`].
    ///
    /// # Errors
    /// Registry and transport errors other than 404.
    pub async fn blob_exists_head(&self, digest: &Digest) -> Result<Option<u64>, Error> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let resp = self
            .send(Req::new(Method::HEAD, url), &self.pull_scope())
            .await?;
        match resp.status() {
            // The header, not the (empty) HEAD body's length.
            StatusCode::OK => Ok(Some(
                header_str(resp.headers(), "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(status_error(resp, &Method::HEAD).await),
        }
    }

    /// Whether the registry says it has the blob (`HEAD`) with the descriptor's size (a
    /// registry that sends no length is taken at its word).
    ///
    /// This is the registry's answer, not a proof that it serves the bytes: for a checked
    /// answer, see [`oci_store::checked_exists`]; a copy checks with [`oci_store::VerifyMode`].
    ///
    /// # Errors
    /// Registry and transport errors other than "not there".
    pub async fn blob_exists(&self, desc: &Descriptor) -> Result<bool, Error> {
        let Some(size) = self.blob_exists_head(&desc.digest).await? else {
            return Ok(false);
        };
        if size != desc.size && size != 0 {
            warn!(digest = %desc.digest, size, expected = desc.size, "registry reports another size");
            return Ok(false);
        }
        Ok(true)
    }

    /// Fetches a blob as a verified stream with bounded memory. When the connection drops
    /// mid-blob, the download continues with a `Range` request from the last byte received,
    /// keeping the hash state, so the resumed blob is still fully verified. With
    /// [`ClientConfig::parallel_fetch`](crate::ClientConfig::parallel_fetch) set, large blobs
    /// are fetched in parallel ranged parts (still verified, in order).
    ///
    /// # Errors
    /// Opening errors are returned at once; later errors (content that does not verify as
    /// [`Error::Verify`], transfers that cannot resume) come as stream items.
    pub async fn fetch_blob(&self, desc: &Descriptor) -> Result<ByteStream, Error> {
        if let Some(p) = &self.client.inner.config.parallel_fetch
            && desc.size >= p.min_blob_size
            && desc.size > p.part_size
        {
            return Ok(self.fetch_blob_parallel(desc, p.part_size, p.concurrency));
        }
        let verifier = Verifier::new(desc.digest.clone(), desc.size);
        BlobBody::whole(
            self,
            &desc.digest,
            desc.size,
            Check::Verify(Box::new(verifier)),
        )
        .await
    }

    /// Like [`fetch_blob`](Repository::fetch_blob), with the same resumption after a dropped
    /// connection and the same size checks, but **without hashing**: for a caller that hashes
    /// every byte itself, such as a store's writer (what `oci_store::copy` does through
    /// `ReadStore::fetch_unverified`). Never treat its bytes as verified.
    pub async fn fetch_blob_unverified(&self, desc: &Descriptor) -> Result<ByteStream, Error> {
        BlobBody::whole(self, &desc.digest, desc.size, Check::Size).await
    }

    /// Fetches the blob in `part_size` ranges, `concurrency` at a time, verifying in order.
    pub fn fetch_blob_parallel(
        &self,
        desc: &Descriptor,
        part_size: u64,
        concurrency: usize,
    ) -> ByteStream {
        let size = desc.size;
        let part = part_size.max(1);
        // Lazily: the size comes from a manifest, and `i * part < size` cannot overflow.
        let ranges = (0..size.div_ceil(part)).map(move |i| {
            let start = i * part;
            (start, start.saturating_add(part).min(size))
        });
        let repo = self.clone();
        let digest = desc.digest.clone();
        let parts = futures_util::stream::iter(ranges)
            .map(move |(start, end)| {
                let repo = repo.clone();
                let digest = digest.clone();
                async move { repo.fetch_range_bytes(&digest, start, end).await }
            })
            .buffered(concurrency.max(1));
        let mut verifier = Verifier::new(desc.digest.clone(), desc.size);
        let repo_name = self.name.clone();
        let digest = desc.digest.clone();
        let mut finished = false;
        Box::pin(
            parts
                .map(Some)
                .chain(futures_util::stream::iter([None]))
                .filter_map(move |item| {
                    let out = if finished {
                        None
                    } else {
                        match item {
                            Some(Ok(bytes)) => match verifier.update(&bytes) {
                                Ok(()) => Some(Ok(bytes)),
                                Err(source) => {
                                    finished = true;
                                    Some(Err(Error::Verify {
                                        repository: repo_name.clone(),
                                        digest: digest.clone(),
                                        source,
                                    }))
                                }
                            },
                            Some(Err(e)) => {
                                finished = true;
                                Some(Err(e))
                            }
                            None => {
                                finished = true;
                                verifier.finish().err().map(|source| {
                                    Err(Error::Verify {
                                        repository: repo_name.clone(),
                                        digest: digest.clone(),
                                        source,
                                    })
                                })
                            }
                        }
                    };
                    std::future::ready(out)
                }),
        )
    }

    /// Fetches bytes `[start, end)` of a blob into memory, resuming within the range when the
    /// connection drops. The bytes are not verified (only the whole blob can be).
    ///
    /// # Errors
    /// Registry and transport errors, [`Error::TransferTooSlow`].
    pub async fn fetch_range_bytes(
        &self,
        digest: &Digest,
        start: u64,
        end: u64,
    ) -> Result<Bytes, Error> {
        let want = usize::try_from(range_len(digest, start, end)?).map_err(|_| {
            Error::InvalidArgument(format!(
                "range {start}-{end} of blob {digest} does not fit in memory"
            ))
        })?;
        // Allocated as it arrives beyond the first 16 MiB, not up front for any size asked.
        let mut buf = BytesMut::with_capacity(want.min(16 * 1024 * 1024));
        if want > 0 {
            let mut s = self.fetch_blob_range(digest, start..end).await?;
            while let Some(c) = s.next().await {
                buf.extend_from_slice(&c?);
            }
        }
        Ok(buf.freeze())
    }

    /// Streams bytes `[range.start, range.end)` of a blob (unverified), resuming within the
    /// range after a dropped connection. A registry that ignores `Range` (answering 200 with
    /// the whole blob) is read from the start, the bytes before the range dropped. The body is
    /// held to [`ClientConfig::min_rate`](crate::ClientConfig::min_rate).
    ///
    /// # Errors
    /// Opening errors at once; later transport errors, and [`Error::TransferTooSlow`], as
    /// stream items.
    pub async fn fetch_blob_range(
        &self,
        digest: &Digest,
        range: Range<u64>,
    ) -> Result<ByteStream, Error> {
        BlobBody::range(self, digest, range.start, range.end).await
    }
}
