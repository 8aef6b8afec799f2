//! Holding body reads to a minimum transfer rate ([`MinRate`]).
//!
//! The clock counts only time spent waiting for the peer: from the moment a read finds no data
//! until the moment data (or the window's end) wakes it. Time the caller's task spends
//! elsewhere before reading again (writing what it has to a slow destination, a parallel
//! download whose consumer is busy) is not the peer's fault and is left out, so our own
//! back-pressure never fails a transfer.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Response;
use tokio::time::Sleep;

use crate::config::MinRate;
use crate::{Error, client::strip_query};

/// A wake-up that remembers when it came.
#[derive(Default)]
struct WakeClock {
    state: Mutex<WakeState>,
}

#[derive(Default)]
struct WakeState {
    /// The task to wake.
    waker: Option<Waker>,
    /// The first wake-up since the last poll.
    woken_at: Option<Instant>,
}

impl WakeClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, WakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the task to wake; returns (and forgets) when the last wait ended, if it did.
    fn polled(&self, waker: &Waker) -> Option<Instant> {
        let mut s = self.lock();
        match &s.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => s.waker = Some(waker.clone()),
        }
        s.woken_at.take()
    }
}

impl Wake for WakeClock {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let waker = {
            let mut s = self.lock();
            s.woken_at.get_or_insert_with(Instant::now);
            s.waker.clone()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A window that ended below the minimum.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TooSlow {
    received: u64,
    waited: Duration,
    limit: MinRate,
}

impl TooSlow {
    /// The error for a read (a GET) of `what` (`blob sha256:...`) from `url`.
    pub(crate) fn error(self, url: &reqwest::Url, what: &str) -> Error {
        Error::TransferTooSlow {
            url: strip_query(url),
            what: what.to_owned(),
            received: self.received,
            waited: self.waited,
            limit: self.limit,
            source: Error::timed_out(),
        }
    }
}

/// Why a body read failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The connection or the HTTP layer failed.
    Http(reqwest::Error),
    /// The body came slower than the minimum rate.
    TooSlow(TooSlow),
}

/// The minimum-rate state of one body.
pub(crate) struct RateWatch {
    limit: Option<MinRate>,
    /// Time spent waiting in the current window.
    waited: Duration,
    /// Bytes received in the current window.
    received: u64,
    /// Wakes the task and records when (made once per body).
    clock: Arc<WakeClock>,
    waker: Waker,
    /// The end of the window, armed only when a read has to wait (reused).
    timer: Option<Pin<Box<Sleep>>>,
}

impl RateWatch {
    /// A fresh window (`None`: no minimum).
    pub(crate) fn new(limit: Option<MinRate>) -> RateWatch {
        let clock = Arc::new(WakeClock::default());
        RateWatch {
            limit: limit.filter(|l| l.bytes > 0 && !l.window.is_zero()),
            waited: Duration::ZERO,
            received: 0,
            waker: Waker::from(Arc::clone(&clock)),
            clock,
            timer: None,
        }
    }

    /// Ends the window when its time is spent: an error when too little arrived in it.
    fn roll(&mut self, limit: MinRate) -> Result<(), TooSlow> {
        if self.waited < limit.window {
            return Ok(());
        }
        if self.received < limit.bytes {
            return Err(TooSlow {
                received: self.received,
                waited: self.waited,
                limit,
            });
        }
        self.waited = Duration::ZERO;
        self.received = 0;
        Ok(())
    }

    /// The next chunk of `body`, failing when the peer does not keep up the minimum rate.
    pub(crate) async fn chunk(&mut self, body: &mut Response) -> Result<Option<Bytes>, ReadError> {
        let Some(limit) = self.limit else {
            return body.chunk().await.map_err(ReadError::Http);
        };
        let waker = self.waker.clone();
        let mut read = pin!(body.chunk());
        let mut pending_since: Option<Instant> = None;
        poll_fn(|cx: &mut Context<'_>| {
            let woken_at = self.clock.polled(cx.waker());
            if let Some(since) = pending_since.take() {
                // Not woken: still waiting, up to now.
                let until = woken_at.unwrap_or_else(Instant::now);
                self.waited = self
                    .waited
                    .saturating_add(until.saturating_duration_since(since));
            }
            let mut inner = Context::from_waker(&waker);
            if let Poll::Ready(r) = read.as_mut().poll(&mut inner) {
                return Poll::Ready(match r {
                    Ok(Some(c)) => {
                        self.received = self.received.saturating_add(c.len() as u64);
                        self.roll(limit)
                            .map(|()| Some(c))
                            .map_err(ReadError::TooSlow)
                    }
                    Ok(None) => Ok(None),
                    Err(e) => Err(ReadError::Http(e)),
                });
            }
            if let Err(e) = self.roll(limit) {
                return Poll::Ready(Err(ReadError::TooSlow(e)));
            }
            let now = Instant::now();
            let left = limit.window.saturating_sub(self.waited);
            // A window too long for the clock is never spent.
            let due = tokio::time::Instant::from_std(now).checked_add(left);
            let spent = due.is_some_and(|due| {
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                timer.as_mut().reset(due);
                timer.as_mut().poll(&mut inner).is_ready()
            });
            if spent {
                // Due already: count it and look again at once.
                self.waited = self.waited.saturating_add(left);
                cx.waker().wake_by_ref();
            } else {
                pending_since = Some(now);
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_fails_only_when_spent_with_too_few_bytes() {
        let limit = MinRate::new(100, Duration::from_secs(10));
        let mut w = RateWatch::new(Some(limit));
        w.received = 99;
        w.waited = Duration::from_secs(9);
        assert!(w.roll(limit).is_ok(), "window not spent yet");
        w.waited = Duration::from_secs(10);
        let e = w.roll(limit).unwrap_err();
        assert_eq!((e.received, e.waited), (99, Duration::from_secs(10)));
        // Enough bytes: a new window starts.
        w.received = 100;
        assert!(w.roll(limit).is_ok());
        assert_eq!((w.received, w.waited), (0, Duration::ZERO));
        // A zero limit means no minimum.
        assert!(
            RateWatch::new(Some(MinRate::new(0, Duration::from_secs(1))))
                .limit
                .is_none()
        );
        assert!(
            RateWatch::new(Some(MinRate::new(1, Duration::ZERO)))
                .limit
                .is_none()
        );
    }

    #[test]
    fn the_clock_records_the_first_wake_after_a_poll() {
        let clock = Arc::new(WakeClock::default());
        let noop = Waker::noop();
        assert_eq!(clock.polled(noop), None);
        let waker = Waker::from(Arc::clone(&clock));
        waker.wake_by_ref();
        let first = clock.lock().woken_at;
        waker.wake_by_ref();
        assert_eq!(clock.lock().woken_at, first, "the first wake counts");
        assert_eq!(clock.polled(noop), first);
        assert_eq!(clock.polled(noop), None, "forgotten once read");
    }
}
