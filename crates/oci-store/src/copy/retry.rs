//! The one retry loop of a copy, used by every step that may be tried again (resolving the
//! reference, fetching a manifest for the plan, transferring a piece of content, finishing),
//! and the copy's rule for what is worth another try. Every retry of every step takes one from
//! the copy's [`RetryBudget`](super::RetryBudget).

use std::future::Future;
use std::time::Duration;

use tracing::warn;

use super::budget::Draw;
use super::cancel::CancelToken;
use super::error::Fault;
use super::options::CopyOptions;
use crate::error::StoreError;

/// Whether a copy tries `e` again: the error is [transient](StoreError::is_transient), or it is
/// content that failed verification and `remote` says it came over the network (damaged in
/// flight; a local store serves the same bytes every time), unless its chain holds a cause a
/// retry cannot cure.
pub(super) fn worth_retrying(e: &StoreError, remote: bool) -> bool {
    e.is_transient() || (remote && e.is_verification_failure() && !e.has_permanent_cause())
}

/// The wait before retry number `attempt` (1 for the first): `initial`, doubling with each
/// retry, at most 10 s.
pub(super) fn backoff(initial: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(10);
    initial.saturating_mul(factor).min(Duration::from_secs(10))
}

/// How a step is retried: while the copy's budget has retries left (each retry takes one),
/// waiting [`backoff`] between attempts, only for faults [worth retrying](worth_retrying).
pub(super) struct Retry<'a> {
    budget: &'a Draw,
    backoff: Duration,
    /// The content involved comes over the network.
    remote: bool,
    /// When set, no attempt starts and no retry is made once it is cancelled.
    cancel: Option<&'a CancelToken>,
}

/// The end of a retried step: its result and the attempts made.
pub(super) struct Tried<T> {
    pub(super) result: Result<T, Fault>,
    pub(super) attempts: u32,
}

impl<'a> Retry<'a> {
    /// Retries taken from `budget`, with the backoff of `options`; `remote` says whether the
    /// content involved comes over the network.
    pub(super) fn new(options: &CopyOptions, budget: &'a Draw, remote: bool) -> Retry<'a> {
        Retry {
            budget,
            backoff: options.retry_backoff,
            remote,
            cancel: None,
        }
    }

    /// [`new`](Retry::new), stopping at the cancellation of `options`' token: no attempt
    /// starts after it (the step ends with [`Fault::Cancelled`], counting only the attempts
    /// made) and no failure is retried.
    pub(super) fn cancellable(
        options: &'a CopyOptions,
        budget: &'a Draw,
        remote: bool,
    ) -> Retry<'a> {
        Retry {
            cancel: options.cancel.as_ref(),
            ..Retry::new(options, budget, remote)
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(CancelToken::is_cancelled)
    }

    /// Runs `op` until it succeeds, fails with a fault not worth retrying, finds the budget
    /// spent, or (when cancellable) the copy is cancelled. `on_retry(attempt, fault)` is
    /// called for each failed attempt that will be retried, before the wait.
    pub(super) async fn run<T, Fut>(
        &self,
        mut op: impl FnMut() -> Fut,
        mut on_retry: impl FnMut(u32, &Fault),
    ) -> Tried<T>
    where
        Fut: Future<Output = Result<T, Fault>>,
    {
        let mut attempts = 0u32;
        loop {
            if self.cancelled() {
                return Tried {
                    result: Err(Fault::Cancelled),
                    attempts,
                };
            }
            attempts += 1;
            match op().await {
                Err(f) if f.is_worth_retrying(self.remote) && !self.cancelled() => {
                    if !self.budget.try_take() {
                        let total = self.budget.budget.total();
                        warn!(attempts, budget = total, error = %f, "retry budget spent; the failure is final");
                        return Tried {
                            result: Err(f),
                            attempts,
                        };
                    }
                    on_retry(attempts, &f);
                    tokio::time::sleep(backoff(self.backoff, attempts)).await;
                }
                result => return Tried { result, attempts },
            }
        }
    }
}
