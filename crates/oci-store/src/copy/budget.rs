//! The retry budget of an operation: [`RetryBudget`], one counter of retries shared by every
//! step and every piece of content of a copy, and the copy's own count of what it took.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

tokio::task_local! {
    /// The budget of the operation the current task works for.
    static CURRENT: RetryBudget;
}

/// How many retries an operation may make in all: one budget shared by all its steps and all
/// its pieces of content, so that retries cannot multiply (a retried step inside a retried
/// step). Each retry of anything takes one; once the budget is spent, failures are final.
///
/// A [`copy`](crate::copy) makes one of [`CopyOptions::retries`](crate::CopyOptions::retries)
/// retries, or uses the one given in
/// [`CopyOptions::retry_budget`](crate::CopyOptions::retry_budget) (a budget shared with other
/// copies, or with re-runs of the same copy). Clones share the counter.
///
/// While a copy runs, its budget is [current](RetryBudget::current) in the task that runs it:
/// the layers below (a registry client) then leave to the copy what the copy retries (network
/// errors, 5xx answers) instead of retrying each request on their own. What is not a retry of
/// the operation stays theirs: waiting as a registry's `429` with `Retry-After` asks, resuming
/// a body cut short at the offset already received.
///
/// ```
/// use oci_store::RetryBudget;
/// let budget = RetryBudget::new(2);
/// let shared = budget.clone();
/// assert!(budget.try_take());
/// assert!(shared.try_take());
/// assert!(!budget.try_take()); // spent: the next failure is final
/// assert_eq!((budget.used(), budget.total(), budget.remaining()), (2, 2, 0));
/// assert!(budget.is_spent());
/// ```
#[derive(Debug, Clone)]
pub struct RetryBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    total: u32,
    used: AtomicU32,
}

impl RetryBudget {
    /// A budget of `total` retries, none used.
    pub fn new(total: u32) -> RetryBudget {
        RetryBudget {
            inner: Arc::new(Inner {
                total,
                used: AtomicU32::new(0),
            }),
        }
    }

    /// The retries allowed in all.
    pub fn total(&self) -> u32 {
        self.inner.total
    }

    /// The retries taken so far (by every holder of this budget).
    pub fn used(&self) -> u32 {
        self.inner.used.load(Ordering::SeqCst)
    }

    /// The retries left.
    pub fn remaining(&self) -> u32 {
        self.total().saturating_sub(self.used())
    }

    /// Whether no retry is left.
    pub fn is_spent(&self) -> bool {
        self.remaining() == 0
    }

    /// Takes one retry: `true` when one was left (the caller may retry), `false` when the
    /// budget is spent (the failure is final). Safe to call from any number of tasks at once:
    /// no more than [`total`](Self::total) calls ever return `true`.
    pub fn try_take(&self) -> bool {
        let total = self.inner.total;
        self.inner
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                (u < total).then_some(u + 1)
            })
            .is_ok()
    }

    /// Runs `work` with this budget [current](Self::current): the work's caller retries what
    /// fails, within this budget, so the layers below do not retry on their own. A copy does
    /// this itself; use it for an operation of your own that retries through a store.
    ///
    /// ```
    /// use oci_store::RetryBudget;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// assert!(RetryBudget::current().is_none());
    /// let total = RetryBudget::new(4)
    ///     .scope(async { RetryBudget::current().map(|b| b.total()) })
    ///     .await;
    /// assert_eq!(total, Some(4));
    /// # });
    /// ```
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }

    /// The budget of the operation the calling task works for (inside [`scope`](Self::scope),
    /// as during a [`copy`](crate::copy)), if any. A store backend that can retry on its own
    /// (a registry client) asks this to learn that its caller retries instead.
    ///
    /// ```
    /// assert!(oci_store::RetryBudget::current().is_none()); // not inside a copy
    /// ```
    pub fn current() -> Option<RetryBudget> {
        CURRENT.try_with(RetryBudget::clone).ok()
    }
}

/// One copy's draw on a budget (perhaps shared with other copies): the budget, and the retries
/// this copy took from it.
#[derive(Debug)]
pub(super) struct Draw {
    pub(super) budget: RetryBudget,
    taken: AtomicU32,
}

impl Draw {
    pub(super) fn new(budget: RetryBudget) -> Draw {
        Draw {
            budget,
            taken: AtomicU32::new(0),
        }
    }

    /// Takes one retry from the budget (see [`RetryBudget::try_take`]), counting it as this
    /// copy's.
    pub(super) fn try_take(&self) -> bool {
        let ok = self.budget.try_take();
        if ok {
            self.taken.fetch_add(1, Ordering::SeqCst);
        }
        ok
    }

    /// The retries this copy took.
    pub(super) fn taken(&self) -> u32 {
        self.taken.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_takers_never_take_more_than_the_total() {
        let budget = RetryBudget::new(100);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let b = budget.clone();
                std::thread::spawn(move || (0..50).filter(|_| b.try_take()).count())
            })
            .collect();
        let taken: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(taken, 100);
        assert_eq!(budget.used(), 100);
        assert!(budget.is_spent());
        assert!(!RetryBudget::new(0).try_take());
    }

    #[test]
    fn a_draw_counts_its_own_retries_only() {
        let shared = RetryBudget::new(3);
        let (a, b) = (Draw::new(shared.clone()), Draw::new(shared.clone()));
        assert!(a.try_take() && b.try_take() && a.try_take());
        assert!(!b.try_take());
        assert_eq!((a.taken(), b.taken(), shared.used()), (2, 1, 3));
    }
}
