//! The fetch itself: one worker per source connection takes runs of adjacent missing pieces
//! from a shared queue, one request a run (so a faster source takes more of them), an idle
//! source takes the pieces a run has not reached yet or takes over a piece from a source that
//! stalls or is much slower, every piece is checked against the map when there is one, and a
//! source that serves a bad piece is quarantined for the blob.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::future::select;
use oci_digest::{Digest, PieceLayout, PieceMap};
use oci_manifest::Descriptor;
use tokio::sync::Notify;

use super::attempt::{Body, Failure};
use super::options::{FetchEvent, FetchOptions, MapTrust};
use super::report::MapUse;
use super::source::RangeSource;
use crate::error::StoreError;
use crate::traits::PieceWriter;

/// Failures kept per piece for the error message.
const FAILURES_KEPT: usize = 16;

/// One fetch of one blob.
pub(super) struct Fetch<'a> {
    pub(super) desc: &'a Descriptor,
    pub(super) layout: PieceLayout,
    pub(super) sources: &'a [Arc<dyn RangeSource>],
    pub(super) names: Vec<String>,
    pub(super) writer: &'a dyn PieceWriter,
    pub(super) options: &'a FetchOptions,
    pub(super) max_skip: u64,
    pub(super) st: Mutex<Sched>,
    /// Signalled on every change of the schedule.
    pub(super) changed: Notify,
}

/// The shared state of a fetch.
pub(super) struct Sched {
    pub(super) pieces: Vec<Piece>,
    pub(super) sources: Vec<Src>,
    pub(super) map: Option<(PieceMap, MapTrust)>,
    pub(super) map_use: MapUse,
    next_attempt: u64,
    locks: HashMap<u64, Arc<tokio::sync::Mutex<()>>>,
    pub(super) fatal: Option<StoreError>,
    /// The versions of pieces seen (SHA-256 and the sources that served them), for pieces
    /// whose sources disagree or were checked twice.
    pub(super) versions: BTreeMap<u64, Vec<Version>>,
    /// The SHA-256 of a held piece's bytes, when known.
    pub(super) held_digest: HashMap<u64, Digest>,
    /// Held pieces two sources agree about.
    pub(super) agreed: HashSet<u64>,
    pub(super) bytes_fetched: u64,
    /// Bytes of pieces read in part by requests whose piece was taken over.
    pub(super) bytes_taken_over: u64,
    /// Bytes requests had read past the piece they stopped at.
    pub(super) bytes_read_ahead: u64,
}

/// One version of a piece.
#[derive(Debug, Clone)]
pub(super) struct Version {
    pub(super) digest: Digest,
    /// Bit `s` for source `s`.
    pub(super) sources: u64,
}

pub(super) struct Piece {
    pub(super) phase: Phase,
    /// Sources not to ask for this piece again (bit per source).
    pub(super) excluded: u64,
    /// Of those, the ones excluded only because their bytes did not match an advisory map.
    map_excluded: u64,
    /// What went wrong, `(source, why)`, the last few.
    pub(super) failures: Vec<(usize, String)>,
    /// The source whose bytes are held (`None`: held from an earlier fetch, or not held).
    pub(super) supplier: Option<usize>,
}

pub(super) enum Phase {
    Missing,
    InFlight(Flight),
    Held,
}

/// One attempt at a piece by one source (one piece of a request for a run of adjacent pieces).
#[derive(Clone)]
pub(super) struct Flight {
    pub(super) source: usize,
    id: u64,
    /// The request (the id of the run's first attempt).
    run: u64,
    /// Whether the request's answer has reached this piece (the pieces after it in a run wait
    /// their turn, and another source may take them over at once).
    active: bool,
    /// When the piece became active.
    started: Instant,
    pub(super) received: Arc<AtomicU64>,
    pub(super) abandon: Arc<Notify>,
    len: u64,
}

#[derive(Default)]
pub(super) struct Src {
    pub(super) alive: bool,
    pub(super) quarantined: bool,
    /// Quarantined only because its bytes did not match an advisory map.
    map_quarantined: bool,
    stolen_from: bool,
    failures_in_a_row: u32,
    /// Answers ranges with the whole content: only pieces near the start.
    whole_body: bool,
    not_before: Option<Instant>,
    /// Time spent on pieces it completed, and their bytes (its rate).
    busy: Duration,
    busy_bytes: u64,
    pub(super) fetched: u64,
    pub(super) failures: u64,
    pub(super) stolen: u64,
    pub(super) dropped: Option<String>,
}

/// What a worker does next.
enum Job {
    /// A run of adjacent pieces, in one request.
    Take(Vec<(u64, Flight)>),
    Wait(Option<Instant>),
    Exit,
}

impl Sched {
    pub(super) fn new(
        layout: &PieceLayout,
        sources: usize,
        map: Option<(PieceMap, MapTrust)>,
        map_use: MapUse,
    ) -> Sched {
        Sched {
            pieces: (0..layout.count())
                .map(|_| Piece {
                    phase: Phase::Missing,
                    excluded: 0,
                    map_excluded: 0,
                    failures: Vec::new(),
                    supplier: None,
                })
                .collect(),
            sources: (0..sources)
                .map(|_| Src {
                    alive: true,
                    ..Src::default()
                })
                .collect(),
            map,
            map_use,
            next_attempt: 0,
            locks: HashMap::new(),
            fatal: None,
            versions: BTreeMap::new(),
            held_digest: HashMap::new(),
            agreed: HashSet::new(),
            bytes_fetched: 0,
            bytes_taken_over: 0,
            bytes_read_ahead: 0,
        }
    }

    pub(super) fn piece(&mut self, index: u64) -> Option<&mut Piece> {
        self.pieces.get_mut(usize::try_from(index).ok()?)
    }

    /// Records that source `s` served version `digest` of piece `index`.
    pub(super) fn add_version(&mut self, index: u64, digest: &Digest, s: usize) {
        let vs = self.versions.entry(index).or_default();
        match vs.iter_mut().find(|v| &v.digest == digest) {
            Some(v) => v.sources |= 1 << s,
            None => vs.push(Version {
                digest: digest.clone(),
                sources: 1 << s,
            }),
        }
    }

    /// Drops the advisory map: exclusions and quarantines it caused are lifted.
    fn reject_map(&mut self, reason: String) -> Option<FetchEvent> {
        self.map.as_ref()?;
        tracing::warn!(reason = %reason, "advisory piece map dropped");
        self.map = None;
        self.map_use = MapUse::Rejected {
            reason: reason.clone(),
        };
        for p in &mut self.pieces {
            p.excluded &= !p.map_excluded;
            p.map_excluded = 0;
        }
        for s in &mut self.sources {
            if s.map_quarantined {
                s.quarantined = false;
                s.map_quarantined = false;
            }
        }
        Some(FetchEvent::MapRejected { reason })
    }
}

fn bit(s: usize) -> u64 {
    1u64 << s
}

impl Fetch<'_> {
    pub(super) fn sched(&self) -> MutexGuard<'_, Sched> {
        // Changes under the lock are small assignments: a panic leaves it consistent.
        self.st
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn emit(&self, e: FetchEvent) {
        if let Some(f) = &self.options.on_event {
            f(&e);
        }
    }

    pub(super) fn cancelled(&self) -> bool {
        self.options
            .cancel
            .as_ref()
            .is_some_and(|c| c.is_cancelled())
    }

    pub(super) fn range(&self, index: u64) -> Range<u64> {
        self.layout.range(index).unwrap_or(0..0)
    }

    /// Whether source `s` may be asked for piece `index`.
    fn eligible(&self, st: &Sched, s: usize, index: u64) -> bool {
        let (Some(src), Some(p)) = (
            st.sources.get(s),
            usize::try_from(index).ok().and_then(|i| st.pieces.get(i)),
        ) else {
            return false;
        };
        src.alive
            && p.excluded & bit(s) == 0
            && (!src.whole_body || self.range(index).start <= self.max_skip)
    }

    /// Whether a source other than `s`, not quarantined, may be asked for piece `index`.
    fn healthy_other(&self, st: &Sched, s: usize, index: u64) -> bool {
        (0..st.sources.len())
            .any(|o| o != s && !st.sources[o].quarantined && self.eligible(st, o, index))
    }

    /// Whether nothing can change any more: every piece held, or no attempt running and no
    /// missing piece any source may be asked for.
    fn finished(&self, st: &Sched) -> bool {
        if st.fatal.is_some() || self.cancelled() {
            return true;
        }
        let mut running = false;
        for (i, p) in st.pieces.iter().enumerate() {
            match &p.phase {
                Phase::InFlight(_) => running = true,
                Phase::Missing => {
                    if (0..st.sources.len()).any(|s| self.eligible(st, s, i as u64)) {
                        return false;
                    }
                }
                Phase::Held => {}
            }
        }
        !running
    }

    fn new_flight(&self, st: &mut Sched, s: usize, index: u64) -> Flight {
        st.next_attempt += 1;
        Flight {
            source: s,
            id: st.next_attempt,
            run: st.next_attempt,
            active: true,
            started: Instant::now(),
            received: Arc::new(AtomicU64::new(0)),
            abandon: Arc::new(Notify::new()),
            len: self.layout.len_of(index),
        }
    }

    /// Gives source `s` the pieces `run` (adjacent) as one request: the first active, the
    /// others queued behind it.
    fn take_run(&self, st: &mut Sched, s: usize, run: &[u64]) -> Vec<(u64, Flight)> {
        let mut out = Vec::with_capacity(run.len());
        let mut id = None;
        for &i in run {
            let mut f = self.new_flight(st, s, i);
            match id {
                None => id = Some(f.id),
                Some(first) => {
                    f.run = first;
                    f.active = false;
                }
            }
            st.pieces[i as usize].phase = Phase::InFlight(f.clone());
            out.push((i, f));
        }
        out
    }

    /// Most pieces one request takes now: the missing pieces shared out over the connections
    /// (so the runs shrink toward the end), at most [`FetchOptions::max_request`] bytes.
    fn run_len(&self, st: &Sched) -> usize {
        let most = usize::try_from(self.options.max_request / self.layout.piece_length().max(1))
            .unwrap_or(usize::MAX)
            .max(1);
        let missing = st
            .pieces
            .iter()
            .filter(|p| matches!(p.phase, Phase::Missing))
            .count();
        let workers = st.sources.iter().filter(|s| s.alive).count().max(1)
            * self.options.connections_per_source.max(1);
        missing.div_ceil(workers).clamp(1, most)
    }

    /// The rate of source `s` so far (bytes a second over the pieces it completed).
    fn rate(st: &Sched, s: usize) -> Option<f64> {
        let src = &st.sources[s];
        (src.busy > Duration::ZERO && src.busy_bytes > 0)
            .then(|| src.busy_bytes as f64 / src.busy.as_secs_f64())
    }

    /// Queued pieces (not reached yet by their request) of another source's run that source
    /// `s` is expected to finish sooner: the back part of the run with the most queued pieces,
    /// shared so that both end about together. The owner stops its request where the pieces
    /// taken start.
    fn queued_to_take(&self, st: &Sched, s: usize) -> Option<Vec<u64>> {
        let mut runs: BTreeMap<u64, (usize, Vec<u64>, u64)> = BTreeMap::new();
        for (i, p) in st.pieces.iter().enumerate() {
            let Phase::InFlight(f) = &p.phase else {
                continue;
            };
            if f.source == s {
                continue;
            }
            let e = runs.entry(f.run).or_insert((f.source, Vec::new(), 0));
            if f.active {
                e.2 = f.len - f.received.load(Ordering::Relaxed).min(f.len);
            } else {
                e.1.push(i as u64);
            }
        }
        let (owner, queued, active_left) = runs
            .into_values()
            .filter(|(_, q, _)| !q.is_empty())
            .max_by_key(|(_, q, _)| q.len())?;
        // The eligible back part, contiguous.
        let mut tail: Vec<u64> = queued
            .iter()
            .rev()
            .take_while(|&&i| self.eligible(st, s, i))
            .copied()
            .collect();
        tail.reverse();
        if tail.is_empty() {
            return None;
        }
        let bytes = |pieces: &[u64]| -> u64 { pieces.iter().map(|&i| self.layout.len_of(i)).sum() };
        let n = match (Self::rate(st, s), Self::rate(st, owner)) {
            (Some(mine), Some(theirs)) => {
                // Both end together: the owner does the active rest and the first part, the
                // taker the back part.
                let total = (active_left + bytes(&queued)) as f64;
                let share = total * mine / (mine + theirs);
                let mut n = 0;
                let mut taken = 0u64;
                for &i in tail.iter().rev() {
                    let len = self.layout.len_of(i);
                    if (taken + len) as f64 > share + len as f64 / 2.0 {
                        break;
                    }
                    taken += len;
                    n += 1;
                }
                n
            }
            _ => queued.len().div_ceil(2).min(tail.len()),
        };
        (n > 0).then(|| tail.split_off(tail.len() - n))
    }

    /// The next job of a worker of source `s`.
    fn next_job(&self, s: usize) -> Job {
        let mut st = self.sched();
        if self.finished(&st) || !st.sources[s].alive {
            return Job::Exit;
        }
        let now = Instant::now();
        if let Some(t) = st.sources[s].not_before {
            if now < t {
                return Job::Wait(Some(t));
            }
            st.sources[s].not_before = None;
        }
        let quarantined = st.sources[s].quarantined;
        // A missing piece, the lowest first (the prefix is hashed as it grows).
        let take = (0..st.pieces.len() as u64).find(|&i| {
            matches!(st.pieces[i as usize].phase, Phase::Missing)
                && self.eligible(&st, s, i)
                && (!quarantined || !self.healthy_other(&st, s, i))
        });
        if let Some(i) = take {
            let most = if quarantined || st.sources[s].whole_body {
                1
            } else {
                self.run_len(&st)
            };
            let mut run = vec![i];
            while run.len() < most {
                let j = i + run.len() as u64;
                if j >= st.pieces.len() as u64
                    || !matches!(st.pieces[j as usize].phase, Phase::Missing)
                    || !self.eligible(&st, s, j)
                {
                    break;
                }
                run.push(j);
            }
            return Job::Take(self.take_run(&mut st, s, &run));
        }
        // Nothing missing for it: take over a piece another source is slow with.
        let src = &st.sources[s];
        if quarantined || src.stolen_from {
            return Job::Wait(None);
        }
        // First the pieces queued behind another source's active piece (no byte of them sent
        // yet): the owner's request stops before them.
        if let Some(run) = self.queued_to_take(&st, s) {
            for &i in &run {
                if let Phase::InFlight(f) = &st.pieces[i as usize].phase {
                    f.abandon.notify_one();
                }
            }
            tracing::trace!(pieces = ?run, to = s, "queued pieces taken over");
            return Job::Take(self.take_run(&mut st, s, &run));
        }
        let my_rate = Self::rate(&st, s);
        let mut best: Option<(u64, f64)> = None;
        let mut any_running = false;
        for (i, p) in st.pieces.iter().enumerate() {
            let Phase::InFlight(f) = &p.phase else {
                continue;
            };
            if f.source == s || !f.active || !self.eligible(&st, s, i as u64) {
                continue;
            }
            any_running = true;
            let got = f.received.load(Ordering::Relaxed);
            let score = if got == 0 {
                // Its request may just have gone out: taking it over now would only waste
                // that request.
                if now.duration_since(f.started) < self.options.steal_check {
                    continue;
                }
                f64::INFINITY
            } else {
                let Some(mine) = my_rate else { continue };
                let elapsed = now.duration_since(f.started).as_secs_f64().max(1e-6);
                let theirs = got as f64 / elapsed;
                let their_time = (f.len - got.min(f.len)) as f64 / theirs;
                let my_time = f.len as f64 / mine;
                if their_time <= 2.0 * my_time + 0.05 {
                    continue;
                }
                their_time
            };
            if best.is_none_or(|(_, b)| score > b) {
                best = Some((i as u64, score));
            }
        }
        match best {
            Some((i, _)) => {
                let Phase::InFlight(old) = &st.pieces[i as usize].phase else {
                    return Job::Wait(None);
                };
                let from = old.source;
                old.abandon.notify_one();
                st.sources[from].stolen += 1;
                st.sources[from].stolen_from = true;
                let run = self.take_run(&mut st, s, &[i]);
                drop(st);
                tracing::debug!(piece = i, from, to = s, "piece taken over");
                self.emit(FetchEvent::Stolen {
                    from,
                    to: s,
                    index: i,
                });
                Job::Take(run)
            }
            None if any_running => Job::Wait(Some(now + self.options.steal_check)),
            None => Job::Wait(None),
        }
    }

    /// Runs every worker until nothing can change any more.
    pub(super) async fn run_workers(&self) {
        let n = self.options.connections_per_source.max(1);
        let workers = (0..self.sources.len())
            .flat_map(|s| std::iter::repeat_n(s, n))
            .map(|s| self.worker(s));
        futures_util::future::join_all(workers).await;
        // Wakes no one (all are done), but keeps the invariant: every change is signalled.
        self.changed.notify_waiters();
    }

    async fn worker(&self, s: usize) {
        loop {
            let mut notified = pin!(self.changed.notified());
            notified.as_mut().enable();
            match self.next_job(s) {
                Job::Exit => return,
                Job::Wait(until) => {
                    let sleep = async {
                        match until {
                            Some(t) => tokio::time::sleep_until(t.into()).await,
                            None => std::future::pending().await,
                        }
                    };
                    let cancel = async {
                        match &self.options.cancel {
                            Some(c) => c.cancelled().await,
                            None => std::future::pending().await,
                        }
                    };
                    let _ = select(notified, select(pin!(sleep), pin!(cancel))).await;
                }
                Job::Take(run) => self.run_pieces(s, run).await,
            }
        }
    }

    fn piece_lock(&self, index: u64) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(self.sched().locks.entry(index).or_default())
    }

    /// Whether `flight` is still the piece's current attempt.
    fn is_current(&self, index: u64, id: u64) -> bool {
        let st = self.sched();
        matches!(
            st.pieces.get(index as usize).map(|p| &p.phase),
            Some(Phase::InFlight(f)) if f.id == id
        )
    }

    /// The request has reached queued piece `index`: `false` when it was taken over.
    fn activate(&self, index: u64, id: u64) -> bool {
        let mut st = self.sched();
        match st.pieces.get_mut(index as usize).map(|p| &mut p.phase) {
            Some(Phase::InFlight(f)) if f.id == id => {
                f.active = true;
                f.started = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// The pieces of a run its request will not reach are missing again.
    fn release(&self, run: &[(u64, Flight)]) {
        if run.is_empty() {
            return;
        }
        {
            let mut st = self.sched();
            for (i, f) in run {
                let p = &mut st.pieces[*i as usize];
                if matches!(&p.phase, Phase::InFlight(fl) if fl.id == f.id) {
                    p.phase = Phase::Missing;
                }
            }
        }
        self.changed.notify_waiters();
    }

    /// One request of source `s` for the adjacent pieces `run`, and what follows from each:
    /// pieces are checked and completed one by one as the answer arrives; the request stops at
    /// the first piece that fails or was taken over, and the pieces after it are missing again.
    async fn run_pieces(&self, s: usize, run: Vec<(u64, Flight)>) {
        let Some((first, f0)) = run.first() else {
            return;
        };
        let Some((last, _)) = run.last() else {
            return;
        };
        let mut body: Option<Body> = None;
        // Bytes of the pieces this request completed.
        let mut kept = 0u64;
        for (k, (index, flight)) in run.iter().enumerate() {
            let lock = self.piece_lock(*index);
            // The previous attempt at the piece (taken over from a slow source) stops before
            // this one writes.
            let guard = match self
                .guard(lock.lock_owned(), Some(&flight.abandon), false)
                .await
            {
                Ok(g) => g,
                Err(f) => {
                    self.stopped(body.as_ref(), kept, Some(&f));
                    return self.release(&run[k..]);
                }
            };
            let current = if k == 0 {
                self.is_current(*index, flight.id)
            } else {
                self.activate(*index, flight.id)
            };
            if !current {
                drop(guard);
                self.stopped(body.as_ref(), kept, Some(&Failure::Abandoned));
                return self.release(&run[k..]);
            }
            if body.is_none() {
                let range = self.range(*first).start..self.range(*last).end;
                match self.open(s, range, Some(&f0.abandon)).await {
                    Ok(b) => body = Some(b),
                    Err(f) => {
                        drop(guard);
                        self.release(&run[1..]);
                        return self.attempt_failed(s, *first, f0.id, f);
                    }
                }
            }
            let Some(b) = body.as_mut() else { return };
            let hash = self.sched().map.is_some();
            let res = self
                .read_piece(s, *index, b, Some(flight), true, hash)
                .await;
            let digest = match res {
                Ok(d) => d,
                Err(f) => {
                    drop(guard);
                    self.stopped(Some(b), kept, Some(&f));
                    self.release(&run[k + 1..]);
                    return self.attempt_failed(s, *index, flight.id, f);
                }
            };
            let expected = {
                let st = self.sched();
                match (&st.map, &digest) {
                    (Some((m, _)), Some(d)) => m.piece_digest(*index).filter(|e| e != d),
                    _ => None,
                }
            };
            if let Some(expected) = expected {
                drop(guard);
                self.stopped(Some(b), kept, None);
                self.release(&run[k + 1..]);
                // `digest` is Some whenever `expected` is.
                if let Some(actual) = digest {
                    self.bad_piece(s, *index, flight, &actual, &expected);
                }
                return;
            }
            if let Err(e) = self.writer.complete_piece(*index).await {
                self.release(&run[k + 1..]);
                return self.fatal(e);
            }
            // Held before the lock goes: an attempt waiting for it then sees so.
            self.piece_done(s, *index, flight, digest);
            kept += self.layout.len_of(*index);
            drop(guard);
        }
        // Bytes past the range (a source that sent more than asked) that came with its end.
        self.stopped(body.as_ref(), kept, None);
    }

    /// A request stopped after completing `kept` bytes of pieces (`why`: `None` when it
    /// completed its run): what it had read past its last piece, and, when its piece was taken
    /// over, what it had read of that piece, are counted.
    fn stopped(&self, body: Option<&Body>, kept: u64, why: Option<&Failure>) {
        let Some(b) = body else { return };
        let mut st = self.sched();
        st.bytes_read_ahead += b.read_ahead();
        if let Some(Failure::Abandoned) = why {
            st.bytes_taken_over += b.partial(kept);
        }
    }

    /// What follows from a failed attempt of `s` at piece `index`.
    fn attempt_failed(&self, s: usize, index: u64, id: u64, f: Failure) {
        match f {
            Failure::Abandoned | Failure::Cancelled => {
                // Taken over, or the fetch stops: the piece is the taker's (or nobody's).
                self.release_if_current(index, id);
            }
            Failure::Writer(e) => self.fatal(e),
            f => self.failed(s, index, id, f),
        }
    }

    /// Piece `index` is missing again if attempt `id` still has it.
    fn release_if_current(&self, index: u64, id: u64) {
        let mut st = self.sched();
        let p = &mut st.pieces[index as usize];
        if matches!(&p.phase, Phase::InFlight(f) if f.id == id) {
            p.phase = Phase::Missing;
            drop(st);
            self.changed.notify_waiters();
        }
    }

    pub(super) fn fatal(&self, e: StoreError) {
        let mut st = self.sched();
        if st.fatal.is_none() {
            st.fatal = Some(e);
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// Piece `index` is held, served by `s`.
    fn piece_done(&self, s: usize, index: u64, flight: &Flight, digest: Option<Digest>) {
        let len = self.layout.len_of(index);
        {
            let mut st = self.sched();
            let p = &mut st.pieces[index as usize];
            // When the piece became active (queued pieces wait for the ones before them).
            let started = match &p.phase {
                Phase::InFlight(f) if f.id == flight.id => f.started,
                _ => flight.started,
            };
            p.phase = Phase::Held;
            p.supplier = Some(s);
            match digest {
                Some(d) => {
                    st.held_digest.insert(index, d);
                }
                None => {
                    st.held_digest.remove(&index);
                }
            }
            let src = &mut st.sources[s];
            src.failures_in_a_row = 0;
            src.busy += started.elapsed();
            src.busy_bytes += len;
        }
        self.emit(FetchEvent::PieceDone { source: s, index });
        self.changed.notify_waiters();
    }

    /// Source `s` served piece `index` with bytes that do not match the map.
    fn bad_piece(&self, s: usize, index: u64, flight: &Flight, actual: &Digest, expected: &Digest) {
        tracing::warn!(digest = %self.desc.digest, piece = index, source = %crate::util::OneLine(&self.names[s]), %expected, %actual, "piece does not match the map");
        let mut events = vec![FetchEvent::BadPiece { source: s, index }];
        {
            let mut st = self.sched();
            if matches!(&st.pieces[index as usize].phase, Phase::InFlight(f) if f.id == flight.id) {
                st.pieces[index as usize].phase = Phase::Missing;
            }
            st.add_version(index, actual, s);
            let trusted = matches!(st.map, Some((_, MapTrust::Trusted)));
            let p = &mut st.pieces[index as usize];
            p.excluded |= bit(s);
            if !trusted {
                p.map_excluded |= bit(s);
            }
            if p.failures.len() < FAILURES_KEPT {
                p.failures
                    .push((s, format!("served {actual}, the map says {expected}")));
            }
            let src = &mut st.sources[s];
            if !src.quarantined {
                src.quarantined = true;
                src.map_quarantined = !trusted;
                events.push(FetchEvent::SourceDropped {
                    source: s,
                    reason: format!("quarantined: served a bad piece ({index})"),
                });
            }
            if !trusted {
                // Two sources agreeing against the map, or no source left that might match
                // it: the map is what is wrong.
                let agree = st
                    .versions
                    .get(&index)
                    .and_then(|vs| vs.iter().find(|v| &v.digest == actual))
                    .is_some_and(|v| v.sources.count_ones() >= 2);
                let none_left = !(0..st.sources.len()).any(|o| self.eligible(&st, o, index));
                let reason = if agree {
                    Some(format!(
                        "two sources agree on piece {index} ({actual}) against the map ({expected})"
                    ))
                } else if none_left {
                    Some(format!(
                        "no source serves piece {index} as the map says ({expected})"
                    ))
                } else {
                    None
                };
                if let Some(r) = reason
                    && let Some(e) = st.reject_map(r)
                {
                    events.push(e);
                }
            }
        }
        for e in events {
            self.emit(e);
        }
        self.changed.notify_waiters();
    }

    /// An attempt of `s` at piece `index` failed (`id`: the attempt's, or 0 for one outside the
    /// schedule).
    pub(super) fn failed(&self, s: usize, index: u64, id: u64, f: Failure) {
        tracing::debug!(digest = %self.desc.digest, piece = index, source = %crate::util::OneLine(&self.names[s]), failure = %f, "attempt failed");
        let mut event = None;
        {
            let mut st = self.sched();
            let max_attempts = self.options.max_attempts_per_piece.max(1) as usize;
            let max_in_a_row = self.options.max_failures_in_a_row.max(1);
            let p = &mut st.pieces[index as usize];
            if matches!(&p.phase, Phase::InFlight(fl) if fl.id == id) {
                p.phase = Phase::Missing;
            }
            if p.failures.len() >= FAILURES_KEPT {
                p.failures.remove(0);
            }
            p.failures.push((s, f.to_string()));
            let tries = p.failures.iter().filter(|(o, _)| *o == s).count();
            if tries >= max_attempts || matches!(f, Failure::BadStart { .. }) {
                p.excluded |= bit(s);
            }
            let src = &mut st.sources[s];
            src.failures += 1;
            src.failures_in_a_row += 1;
            src.not_before = Some(Instant::now() + self.options.retry_delay);
            let drop_reason = match &f {
                Failure::Source(e) if e.is_not_found() => Some("does not have the blob".to_owned()),
                Failure::BadStart { .. } => Some(f.to_string()),
                _ if src.failures_in_a_row >= max_in_a_row => Some(format!(
                    "{} failures in a row, the last: {f}",
                    src.failures_in_a_row
                )),
                _ => None,
            };
            if let Failure::WholeBody { .. } = f {
                src.whole_body = true;
            }
            if let Some(r) = drop_reason {
                src.alive = false;
                src.dropped = Some(r.clone());
                event = Some(FetchEvent::SourceDropped {
                    source: s,
                    reason: r,
                });
            }
        }
        if let Some(e) = event {
            self.emit(e);
        }
        self.changed.notify_waiters();
    }
}
