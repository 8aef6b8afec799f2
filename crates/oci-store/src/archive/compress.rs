//! Diff IDs: the digest of a layer's uncompressed bytes, computed from a stream of its
//! (gzip-compressed or uncompressed) bytes as they arrive, in bounded memory. Used by the
//! conversion of Docker schema 1 images, whose manifests carry no diff IDs.

use std::io::{self, Write};

use futures_util::StreamExt;
use oci_digest::{Algorithm, Digest, Digester};

use super::io::Compression;
use crate::error::{Result, StoreError};
use crate::traits::BlobStream;

/// A sink that hashes what is written to it.
struct HashSink {
    digester: Digester,
    written: u64,
    limit: u64,
}

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len() as u64;
        if self.written > self.limit {
            return Err(io::Error::from(io::ErrorKind::FileTooLarge));
        }
        self.digester.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Sink {
    Plain(Box<HashSink>),
    Gzip(Box<flate2::write::MultiGzDecoder<HashSink>>),
}

/// The diff ID of the layer `layer` streamed by `stream` (which the caller verifies, as a
/// store's `fetch` does): its bytes hashed as they are, or once decompressed when they are
/// gzip. At most `limit` uncompressed bytes are accepted (a decompression bomb is an error,
/// not an endless hash). Returns the diff ID and the compression found.
///
/// # Errors
/// [`StoreError::Source`] when the stream fails or the gzip data is corrupt (kind
/// `InvalidData`); [`StoreError::Unsupported`] for zstd, bzip2 and xz layers;
/// [`StoreError::FileTooLarge`] past `limit`.
pub(crate) async fn diff_id(
    mut stream: BlobStream,
    layer: &Digest,
    limit: u64,
) -> Result<(Digest, Compression)> {
    let source = |e: io::Error| StoreError::Source {
        digest: layer.clone(),
        source: e,
    };
    let corrupt = |e: io::Error| match e.kind() {
        io::ErrorKind::FileTooLarge => StoreError::FileTooLarge {
            path: format!("(layer {layer}, uncompressed)").into(),
            limit,
        },
        _ => StoreError::Source {
            digest: layer.clone(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the layer does not decompress: {e}"),
            ),
        },
    };
    // The first bytes tell the compression.
    let mut head = Vec::new();
    let mut pending = Vec::new();
    while head.len() < 6 {
        match stream.next().await {
            Some(chunk) => {
                let chunk = chunk.map_err(source)?;
                head.extend_from_slice(&chunk[..chunk.len().min(6 - head.len())]);
                pending.push(chunk);
            }
            None => break,
        }
    }
    let compression = Compression::sniff(&head);
    let hash = HashSink {
        digester: Digester::new(Algorithm::Sha256),
        written: 0,
        limit,
    };
    let mut sink = match compression {
        Compression::None => Sink::Plain(Box::new(hash)),
        Compression::Gzip => Sink::Gzip(Box::new(flate2::write::MultiGzDecoder::new(hash))),
        other => {
            return Err(StoreError::Unsupported {
                operation: match other {
                    Compression::Zstd => "computing the diff ID of a zstd layer",
                    Compression::Bzip2 => "computing the diff ID of a bzip2 layer",
                    _ => "computing the diff ID of an xz layer",
                },
            });
        }
    };
    let mut feed = |chunk: &[u8]| -> Result<()> {
        match &mut sink {
            Sink::Plain(h) => h.write_all(chunk).map_err(corrupt),
            Sink::Gzip(d) => d.write_all(chunk).map_err(corrupt),
        }
    };
    for chunk in pending {
        feed(&chunk)?;
    }
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(source)?;
        feed(&chunk)?;
    }
    let hash = match sink {
        Sink::Plain(h) => *h,
        Sink::Gzip(d) => d.finish().map_err(corrupt)?,
    };
    Ok((hash.digester.finalize(), compression))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn chunks(data: &[u8], n: usize) -> BlobStream {
        let v: Vec<io::Result<Bytes>> = data
            .chunks(n.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Box::pin(futures_util::stream::iter(v))
    }

    #[tokio::test]
    async fn gzip_and_plain_layers_give_the_digest_of_their_uncompressed_bytes() {
        let plain = vec![7u8; 100_000];
        let want = Algorithm::Sha256.hash(&plain);
        let layer = Algorithm::Sha256.hash(b"layer");
        for n in [1, 3, 4096] {
            let (d, c) = diff_id(chunks(&gzip(&plain), n), &layer, u64::MAX)
                .await
                .unwrap();
            assert_eq!((d, c), (want.clone(), Compression::Gzip));
        }
        let (d, c) = diff_id(chunks(&plain, 1000), &layer, u64::MAX)
            .await
            .unwrap();
        assert_eq!((d, c), (want, Compression::None));
        let (d, _) = diff_id(chunks(b"", 1), &layer, u64::MAX).await.unwrap();
        assert_eq!(d, Algorithm::Sha256.hash(b""));
    }

    #[tokio::test]
    async fn corrupt_gzip_and_bombs_are_errors() {
        let layer = Algorithm::Sha256.hash(b"layer");
        let mut g = gzip(&[1u8; 10_000]);
        let cut = g.len() - 10;
        g.truncate(cut);
        let e = diff_id(chunks(&g, 100), &layer, u64::MAX)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Source { .. }), "{e:?}");
        let e = diff_id(chunks(&gzip(&[0u8; 1 << 20]), 4096), &layer, 1000)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::FileTooLarge { .. }), "{e:?}");
    }
}
