//! Fault-injecting range sources for the fetch tests: each source serves one blob, piece by
//! piece as told (good, corrupt, truncated, stalled, whole body, errors, more bytes than asked),
//! and counts what it was asked for.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use oci_digest::{PieceLayout, PieceMap};
use oci_manifest::Descriptor;
use oci_store::{BlobStream, RangeAnswer, RangeSource, StoreError};
use tokio::sync::Notify;

/// What a source does with a request for a piece.
#[derive(Clone)]
pub enum Mode {
    /// The right bytes, in chunks of 1000.
    Good,
    /// The right length, one byte flipped (at the piece's offset `seed % len`).
    Corrupt(u64),
    /// Half the bytes, then the end.
    Truncate,
    /// Never answers.
    Stall,
    /// Sends `n` bytes, then nothing more.
    StallAfter(usize),
    /// Waits for the notify, then serves the right bytes.
    Gate(Arc<Notify>),
    /// The first request for each piece never answers; later ones are served.
    StallFirst,
    /// Served while the shared budget lasts (one piece each); past it, half the piece is
    /// sent and then nothing more (the fetch hangs mid-piece, to be killed).
    Budget(Arc<std::sync::atomic::AtomicI64>),
    /// The whole blob from byte 0, whatever the range (an HTTP 200 to a Range request).
    WholeBody,
    /// Fails the first `n` requests (a 429 or a reset), then serves the right bytes.
    Transient(usize),
    /// The right bytes followed by more than asked.
    Overlong,
    /// Does not have the blob.
    NotFound,
    /// An error item in the middle of the stream.
    StreamError,
}

pub struct Faulty {
    pub name: String,
    pub data: Bytes,
    pub layout: PieceLayout,
    default: Mode,
    per_piece: HashMap<u64, Mode>,
    pub map: Option<PieceMap>,
    /// Requests received.
    pub calls: AtomicUsize,
    /// Ranges asked for.
    pub asked: Mutex<Vec<Range<u64>>>,
    transient_left: AtomicUsize,
    stalled_once: Mutex<std::collections::HashSet<u64>>,
}

impl Faulty {
    pub fn new(name: &str, data: &Bytes, layout: PieceLayout, default: Mode) -> Faulty {
        let transient = match &default {
            Mode::Transient(n) => *n,
            _ => 0,
        };
        Faulty {
            name: name.to_owned(),
            data: data.clone(),
            layout,
            default,
            per_piece: HashMap::new(),
            map: None,
            calls: AtomicUsize::new(0),
            asked: Mutex::new(Vec::new()),
            transient_left: AtomicUsize::new(transient),
            stalled_once: Mutex::new(std::collections::HashSet::new()),
        }
    }

    pub fn piece(mut self, index: u64, mode: Mode) -> Faulty {
        if let Mode::Transient(n) = mode {
            self.transient_left.fetch_add(n, Ordering::SeqCst);
        }
        self.per_piece.insert(index, mode);
        self
    }

    pub fn offering(mut self, map: PieceMap) -> Faulty {
        self.map = Some(map);
        self
    }

    pub fn asked(&self) -> Vec<Range<u64>> {
        self.asked.lock().unwrap().clone()
    }

    fn mode(&self, index: u64) -> Mode {
        self.per_piece
            .get(&index)
            .cloned()
            .unwrap_or_else(|| self.default.clone())
    }
}

fn chunks(data: Bytes) -> BlobStream {
    Box::pin(futures_util::stream::iter(
        split(data).into_iter().map(Ok::<_, std::io::Error>),
    ))
}

/// `data` in chunks of 1000 bytes.
fn split(data: Bytes) -> Vec<Bytes> {
    let mut v = Vec::new();
    let mut rest = data;
    while rest.len() > 1000 {
        v.push(rest.split_to(1000));
    }
    v.push(rest);
    v
}

/// One step of an answer's body.
enum Step {
    Data(Bytes),
    Fail,
    Wait(Arc<Notify>),
    Hang,
}

#[async_trait]
impl RangeSource for Faulty {
    fn source_name(&self) -> String {
        self.name.clone()
    }

    /// A request for a run of pieces is answered piece by piece, each by its mode: the modes
    /// that shape the whole answer (an error, a 200, no answer at all) are taken from the
    /// first piece; a later piece that truncates, stalls or fails ends the body there.
    async fn read_range(
        &self,
        desc: &Descriptor,
        range: Range<u64>,
    ) -> oci_store::Result<RangeAnswer> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.asked.lock().unwrap().push(range.clone());
        let end = range.end.min(self.data.len() as u64);
        let first = self.layout.piece_at(range.start).unwrap_or(0);
        match self.mode(first) {
            Mode::Stall => std::future::pending().await,
            Mode::StallFirst if self.stalled_once.lock().unwrap().insert(first) => {
                std::future::pending::<()>().await
            }
            Mode::Gate(n) => n.notified().await,
            Mode::WholeBody => return Ok(RangeAnswer::new(0, chunks(self.data.clone()))),
            Mode::Transient(_) => {
                let left = self.transient_left.load(Ordering::SeqCst);
                if left > 0 {
                    self.transient_left.fetch_sub(1, Ordering::SeqCst);
                    return Err(StoreError::backend(
                        "GET blob range: 429 Too Many Requests",
                        std::io::Error::from(std::io::ErrorKind::ConnectionReset),
                    ));
                }
            }
            Mode::NotFound => {
                return Err(StoreError::NotFound {
                    digest: desc.digest.clone(),
                });
            }
            _ => {}
        }
        let mut steps = Vec::new();
        let mut at = range.start;
        while at < end {
            let index = self.layout.piece_at(at).unwrap_or(0);
            let piece_end = self.layout.range(index).map_or(end, |r| r.end.min(end));
            let good = self.data.slice(at as usize..piece_end as usize);
            at = piece_end;
            let data = |b: Bytes| split(b).into_iter().map(Step::Data);
            match self.mode(index) {
                Mode::Good | Mode::WholeBody | Mode::Transient(_) | Mode::NotFound => {
                    steps.extend(data(good))
                }
                Mode::Stall if index != first => {
                    steps.push(Step::Hang);
                    break;
                }
                Mode::Stall => steps.extend(data(good)),
                Mode::StallFirst => {
                    if index != first && self.stalled_once.lock().unwrap().insert(index) {
                        steps.push(Step::Hang);
                        break;
                    }
                    steps.extend(data(good));
                }
                Mode::Gate(n) => {
                    if index != first {
                        steps.push(Step::Wait(n));
                    }
                    steps.extend(data(good));
                }
                Mode::Corrupt(seed) => {
                    let mut v = good.to_vec();
                    let at = (seed as usize) % v.len().max(1);
                    if let Some(b) = v.get_mut(at) {
                        *b ^= 0x5a;
                    }
                    steps.extend(data(Bytes::from(v)));
                }
                Mode::Truncate => {
                    steps.extend(data(good.slice(..good.len() / 2)));
                    break;
                }
                Mode::StallAfter(n) => {
                    steps.push(Step::Data(good.slice(..n.min(good.len()))));
                    steps.push(Step::Hang);
                    break;
                }
                Mode::Budget(b) => {
                    if b.fetch_sub(1, Ordering::SeqCst) > 0 {
                        steps.extend(data(good));
                    } else {
                        steps.push(Step::Data(good.slice(..good.len() / 2)));
                        steps.push(Step::Hang);
                        break;
                    }
                }
                Mode::Overlong => {
                    steps.extend(data(good));
                    if at == end {
                        steps.push(Step::Data(Bytes::from(vec![0xee; 5000])));
                    }
                }
                Mode::StreamError => {
                    steps.push(Step::Data(good.slice(..good.len() / 3)));
                    steps.push(Step::Fail);
                    break;
                }
            }
        }
        let body = futures_util::stream::iter(steps).filter_map(|step| async move {
            match step {
                Step::Data(b) => Some(Ok(b)),
                Step::Fail => Some(Err(std::io::Error::from(
                    std::io::ErrorKind::ConnectionReset,
                ))),
                Step::Wait(n) => {
                    n.notified().await;
                    None
                }
                Step::Hang => std::future::pending().await,
            }
        });
        Ok(RangeAnswer::new(range.start, Box::pin(body)))
    }

    async fn piece_map(&self, _desc: &Descriptor) -> oci_store::Result<Option<PieceMap>> {
        Ok(self.map.clone())
    }
}

use futures_util::StreamExt as _;

/// The sources as the fetch takes them.
pub fn dyns(v: &[Arc<Faulty>]) -> Vec<Arc<dyn RangeSource>> {
    v.iter()
        .map(|s| Arc::clone(s) as Arc<dyn RangeSource>)
        .collect()
}
