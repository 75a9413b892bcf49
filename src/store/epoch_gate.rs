//! Reads shared by concurrent requests, each caller getting the result of
//! a read that *started* after its call did (SPEC 12): the caches' epoch
//! (`service::fresh`) and the revocation epoch that keeps PostgreSQL's
//! family views (`postgres::views`) use it. At most one read is in flight;
//! a read that fails or takes too long gives `None`, and for a while after a
//! failure no caller waits for another.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a request waits for the epoch before it is served from the
/// caches (the database is away or overloaded).
pub const EPOCH_READ_WAIT: Duration = Duration::from_secs(1);
/// After a failed epoch read, requests are served from the caches for this
/// long without waiting for another.
pub const EPOCH_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Reads of the cache epoch shared by concurrent requests: a caller gets
/// the result of a read that *started* after the call did (its snapshot is
/// newer than anything committed before), and at most one read is in
/// flight at a time.
pub struct EpochGate<T = u64> {
    /// Reads started so far (the id of the newest).
    started: AtomicU64,
    /// The newest finished read: its id and what it gave (`None`: failed),
    /// and when a read last failed.
    finished: Mutex<Finished<T>>,
    /// Held by the caller running the read.
    leader: tokio::sync::Mutex<()>,
    done: Notify,
}

struct Finished<T> {
    id: u64,
    epoch: Option<T>,
    failed_at: Option<Instant>,
}

/// The caller running the read. When the read ends, finished or dropped (a
/// request cancelled while it ran the read), it lets go of the lead, then
/// wakes the waiters: one of them runs the next read if they need one.
struct Leading<'a> {
    lead: Option<tokio::sync::MutexGuard<'a, ()>>,
    done: &'a Notify,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        drop(self.lead.take());
        self.done.notify_waiters();
    }
}

impl<T> Default for EpochGate<T> {
    fn default() -> Self {
        EpochGate {
            started: AtomicU64::new(0),
            finished: Mutex::new(Finished { id: 0, epoch: None, failed_at: None }),
            leader: tokio::sync::Mutex::new(()),
            done: Notify::new(),
        }
    }
}

impl<T: Copy> EpochGate<T> {
    /// The epoch as read by `read` after this call began, shared with the
    /// concurrent callers; `None` when the read failed or took longer than
    /// [`EPOCH_READ_WAIT`], or one failed less than [`EPOCH_RETRY_AFTER`]
    /// ago.
    pub async fn read<F, Fut, E>(&self, read: F) -> Option<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        // Any read with an id above the count now started after this point.
        let need = self.started.load(Ordering::SeqCst) + 1;
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(outcome) = self.outcome_since(need) {
                return outcome;
            }
            let Ok(lead) = self.leader.try_lock() else {
                notified.await;
                continue;
            };
            let _leading = Leading { lead: Some(lead), done: &self.done };
            if let Some(outcome) = self.outcome_since(need) {
                return outcome;
            }
            let id = self.started.fetch_add(1, Ordering::SeqCst) + 1;
            let epoch = match tokio::time::timeout(EPOCH_READ_WAIT, read()).await {
                Ok(Ok(epoch)) => Some(epoch),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "reading the cache epoch failed; serving from the caches");
                    None
                }
                Err(_) => {
                    tracing::warn!(
                        "the cache epoch took longer than {EPOCH_READ_WAIT:?} to read; serving from the caches"
                    );
                    None
                }
            };
            {
                let mut finished = self.finished.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                finished.id = id;
                finished.epoch = epoch;
                if epoch.is_none() {
                    finished.failed_at = Some(Instant::now());
                }
            }
            return epoch;
        }
    }

    /// The outcome for a caller that needs read `need` or a later one:
    /// that read's, or `None` at once while a recent read failed.
    fn outcome_since(&self, need: u64) -> Option<Option<T>> {
        let finished = self.finished.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if finished.id >= need {
            return Some(finished.epoch);
        }
        if finished.failed_at.is_some_and(|at| at.elapsed() < EPOCH_RETRY_AFTER) {
            return Some(None);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_reads_that_started_after_them() {
        let gate = Arc::new(EpochGate::default());
        let reads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (gate, reads) = (gate.clone(), reads.clone());
            tasks.push(tokio::spawn(async move {
                gate.read(|| {
                    let reads = reads.clone();
                    async move {
                        let n = reads.fetch_add(1, Ordering::SeqCst) as u64;
                        tokio::task::yield_now().await;
                        Ok::<u64, String>(n)
                    }
                })
                .await
            }));
        }
        for t in tasks {
            assert!(t.await.expect("join").is_some());
        }
        assert!(reads.load(Ordering::SeqCst) <= 64, "never more reads than callers");
        // A later caller never gets an earlier read's value.
        let before = reads.load(Ordering::SeqCst) as u64;
        let got = gate.read(|| async { Ok::<u64, String>(before + 100) }).await;
        assert_eq!(got, Some(before + 100));
    }

    #[tokio::test]
    async fn a_failed_read_serves_from_the_caches_for_a_while() {
        let gate = EpochGate::default();
        assert_eq!(gate.read(|| async { Err::<u64, _>("down") }).await, None);
        // No wait for another read right after a failure.
        assert_eq!(gate.read(|| async { Ok::<u64, String>(7) }).await, None);
    }
}
