//! One attempt at one piece from one source: the request, bytes before the range dropped,
//! bytes past it never read, hashing and writing as the bytes arrive, and the guards (taken
//! over, cancelled, idle too long) around every wait.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use oci_digest::{Algorithm, Digest};
use tokio::sync::Notify;

use super::options::FetchEvent;
use super::run::{Fetch, Flight};
use crate::error::StoreError;

/// Received bytes are written in batches of about this much.
const WRITE_BATCH: usize = 1 << 20;

/// Why an attempt at a piece did not deliver it.
#[derive(Debug)]
pub(super) enum Failure {
    /// Another source took the piece over.
    Abandoned,
    /// No byte arrived within the idle timeout.
    Stalled,
    /// The answer ended before the range's end.
    Truncated { got: u64, want: u64 },
    /// The answer is the whole content, and the range starts too far into it.
    WholeBody { skip: u64 },
    /// The answer starts after the range's start.
    BadStart { start: u64 },
    /// The source refused or failed.
    Source(StoreError),
    /// The answer's stream failed.
    Stream(std::io::Error),
    /// Writing to the destination failed.
    Writer(StoreError),
    /// The fetch was cancelled.
    Cancelled,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Abandoned => f.write_str("taken over by another source"),
            Failure::Stalled => f.write_str("stalled (no byte within the idle timeout)"),
            Failure::Truncated { got, want } => {
                write!(f, "answer ended after {got} of {want} bytes")
            }
            Failure::WholeBody { skip } => write!(
                f,
                "answered a range with the whole content ({skip} bytes before the range)"
            ),
            Failure::BadStart { start } => {
                write!(f, "answer starts at byte {start}, after the range's start")
            }
            Failure::Source(e) | Failure::Writer(e) => f.write_str(&crate::error::error_chain(e)),
            Failure::Stream(e) => write!(f, "reading the answer failed: {e}"),
            Failure::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl Fetch<'_> {
    /// Awaits `fut`, unless the attempt is taken over, the fetch is cancelled, or (with
    /// `timed`) the idle timeout passes first.
    pub(super) async fn guard<T>(
        &self,
        fut: impl Future<Output = T>,
        abandon: Option<&Notify>,
        timed: bool,
    ) -> Result<T, Failure> {
        let fut = pin!(fut);
        let stop = pin!(async {
            let abandoned = async {
                match abandon {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            };
            let cancel = async {
                match &self.options.cancel {
                    Some(c) => c.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            match select(pin!(abandoned), pin!(cancel)).await {
                Either::Left(_) => Failure::Abandoned,
                Either::Right(_) => Failure::Cancelled,
            }
        });
        let timeout = self.options.idle_timeout.filter(|_| timed);
        let work = pin!(async {
            match timeout {
                Some(t) => tokio::time::timeout(t, fut)
                    .await
                    .map_err(|_| Failure::Stalled),
                None => Ok(fut.await),
            }
        });
        match select(work, stop).await {
            Either::Left((r, _)) => r,
            Either::Right((f, _)) => Err(f),
        }
    }

    /// Fetches piece `index` from source `s`: writes it into the writer (`write`) and hashes
    /// it (`hash`, giving its SHA-256). Bytes before the range in a whole-content answer are
    /// dropped; bytes past the range are never read.
    pub(super) async fn attempt(
        &self,
        s: usize,
        index: u64,
        flight: Option<&Flight>,
        write: bool,
        hash: bool,
    ) -> Result<Option<Digest>, Failure> {
        let range = self.range(index);
        let len = range.end - range.start;
        let abandon = flight.map(|f| &*f.abandon);
        let answer = self
            .guard(
                self.sources[s].read_range(self.desc, range.clone()),
                abandon,
                true,
            )
            .await?
            .map_err(Failure::Source)?;
        if answer.start > range.start {
            return Err(Failure::BadStart {
                start: answer.start,
            });
        }
        let skip = range.start - answer.start;
        if skip > self.max_skip {
            return Err(Failure::WholeBody { skip });
        }
        let mut stream = answer.stream;
        let mut to_skip = skip;
        let mut got = 0u64;
        let mut written = 0u64;
        let mut pending = BytesMut::new();
        let mut digester = hash.then(|| Algorithm::Sha256.digester());
        while got < len {
            let next = self.guard(stream.next(), abandon, true).await?;
            let mut chunk = match next {
                None => return Err(Failure::Truncated { got, want: len }),
                Some(Err(e)) => return Err(Failure::Stream(e)),
                Some(Ok(c)) => c,
            };
            self.received(s, flight, chunk.len() as u64);
            if to_skip > 0 {
                let n = usize::try_from(to_skip).map_or(chunk.len(), |t| t.min(chunk.len()));
                chunk.advance(n);
                to_skip -= n as u64;
            }
            let take = usize::try_from(len - got).map_or(chunk.len(), |r| r.min(chunk.len()));
            let chunk = chunk.slice(..take);
            if let Some(d) = digester.as_mut() {
                d.update(&chunk);
            }
            got += take as u64;
            if write {
                let batch: Option<Bytes> = if pending.is_empty() && chunk.len() >= WRITE_BATCH {
                    Some(chunk)
                } else {
                    pending.extend_from_slice(&chunk);
                    (pending.len() >= WRITE_BATCH || got == len).then(|| pending.split().freeze())
                };
                if let Some(b) = batch {
                    let n = b.len() as u64;
                    self.writer
                        .write_piece(index, written, b)
                        .await
                        .map_err(Failure::Writer)?;
                    written += n;
                }
            }
        }
        Ok(digester.map(|d| d.finalize()))
    }

    fn received(&self, s: usize, flight: Option<&Flight>, n: u64) {
        if let Some(f) = flight {
            f.received.fetch_add(n, Ordering::Relaxed);
        }
        {
            let mut st = self.sched();
            st.sources[s].fetched += n;
            st.bytes_fetched += n;
        }
        self.emit(FetchEvent::Received {
            source: s,
            bytes: n,
        });
    }
}
