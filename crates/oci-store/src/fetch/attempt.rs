//! One attempt at one piece from one source: the request, bytes before the range dropped,
//! bytes past it never read, hashing and writing as the bytes arrive, and the guards (taken
//! over, cancelled, idle too long) around every wait.

use std::future::Future;
use std::ops::Range;
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
use crate::traits::BlobStream;

/// An answer being read: its stream, the bytes read past the last piece taken, the bytes still
/// to drop before the range's start, the bytes of the range read into pieces.
pub(super) struct Body {
    stream: BlobStream,
    carry: Bytes,
    to_skip: u64,
    used: u64,
}

impl Body {
    /// Bytes read into pieces beyond the first `kept` bytes of the range (a piece read in
    /// part or dropped).
    pub(super) fn partial(&self, kept: u64) -> u64 {
        self.used.saturating_sub(kept)
    }

    /// Bytes read past the last piece read into (the stream delivers what it holds, up to
    /// one read buffer).
    pub(super) fn read_ahead(&self) -> u64 {
        self.carry.len() as u64
    }
}

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

    /// Fetches piece `index` from source `s` in a request of its own: writes it into the
    /// writer (`write`) and hashes it (`hash`, giving its SHA-256).
    pub(super) async fn attempt(
        &self,
        s: usize,
        index: u64,
        flight: Option<&Flight>,
        write: bool,
        hash: bool,
    ) -> Result<Option<Digest>, Failure> {
        let abandon = flight.map(|f| &*f.abandon);
        let mut body = self.open(s, self.range(index), abandon).await?;
        self.read_piece(s, index, &mut body, flight, write, hash)
            .await
    }

    /// Sends source `s` the request for bytes `range` (one piece or a run of adjacent ones);
    /// the answer positioned at the range's start (bytes before it in a whole-content answer
    /// are dropped as they are read, up to the limit).
    pub(super) async fn open(
        &self,
        s: usize,
        range: Range<u64>,
        abandon: Option<&Notify>,
    ) -> Result<Body, Failure> {
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
        Ok(Body {
            stream: answer.stream,
            carry: Bytes::new(),
            to_skip: skip,
            used: 0,
        })
    }

    /// Reads piece `index` from `body` (which must be at the piece's start): writes it into
    /// the writer (`write`) and hashes it (`hash`, giving its SHA-256). Bytes past the piece
    /// stay in `body` for the next piece; bytes past the request are never read.
    pub(super) async fn read_piece(
        &self,
        s: usize,
        index: u64,
        body: &mut Body,
        flight: Option<&Flight>,
        write: bool,
        hash: bool,
    ) -> Result<Option<Digest>, Failure> {
        let len = self.layout.len_of(index);
        let abandon = flight.map(|f| &*f.abandon);
        let mut got = 0u64;
        let mut written = 0u64;
        let mut pending = BytesMut::new();
        let mut digester = hash.then(|| Algorithm::Sha256.digester());
        while got < len {
            let mut chunk = if body.carry.is_empty() {
                let next = self.guard(body.stream.next(), abandon, true).await?;
                let chunk = match next {
                    None => return Err(Failure::Truncated { got, want: len }),
                    Some(Err(e)) => return Err(Failure::Stream(e)),
                    Some(Ok(c)) => c,
                };
                self.received(s, flight, chunk.len() as u64);
                chunk
            } else {
                std::mem::take(&mut body.carry)
            };
            if body.to_skip > 0 {
                let n = usize::try_from(body.to_skip).map_or(chunk.len(), |t| t.min(chunk.len()));
                chunk.advance(n);
                body.to_skip -= n as u64;
            }
            let take = usize::try_from(len - got).map_or(chunk.len(), |r| r.min(chunk.len()));
            body.carry = chunk.split_off(take);
            if let Some(d) = digester.as_mut() {
                d.update(&chunk);
            }
            got += take as u64;
            body.used += take as u64;
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
