//! Settings and run-time clients in force at the very next request (SPEC
//! 12): each replica caches the session policy, the group policies and the
//! clients created through the admin API; a change anywhere bumps the
//! store's cache epoch in its own transaction ([`Store::cache_epoch`]).
//! Every request that depends on the caches first makes sure they are at
//! least as new as an epoch read *after the request arrived*
//! ([`AppState::fresh`]), reloading when the epoch moved. So a change whose
//! response was sent before a request arrived at any replica is in force
//! for that request.
//!
//! The read is cheap and shared: at most one epoch read is in flight per
//! replica ([`EpochGate`]); a request waits for the next read that starts
//! after it arrived, so many concurrent requests cost one read, never a
//! stale one. While the database does not answer within
//! [`EPOCH_READ_WAIT`], requests are served from the caches (client
//! credentials and the like go on; what needs the database fails on its
//! own), and for [`EPOCH_RETRY_AFTER`] after a failure no request waits for
//! another read. The background follower (`worker::replica`) still reloads
//! on LISTEN/NOTIFY and every second, so idle replicas catch up too.
//!
//! With the embedded store there is one process: the epoch never moves,
//! and nothing here runs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::AppState;
use crate::store::{AnyStore, Store};

/// How long a request waits for the epoch before it is served from the
/// caches (the database is away or overloaded).
pub const EPOCH_READ_WAIT: Duration = Duration::from_secs(1);
/// After a failed epoch read, requests are served from the caches for this
/// long without waiting for another.
pub const EPOCH_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The caches' epoch bookkeeping, one per process ([`AppState`]).
#[derive(Default)]
pub struct SharedCaches {
    /// The epoch the caches were loaded at (`None`: not known, reload at
    /// the first check).
    loaded: Mutex<Option<u64>>,
    /// One reload at a time; the others wait for it.
    reloading: tokio::sync::Mutex<()>,
    gate: EpochGate,
}

impl SharedCaches {
    /// Note that the caches were loaded at `epoch` or later (start-up).
    pub fn loaded_at(&self, epoch: Option<u64>) {
        let mut loaded = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *loaded = match (*loaded, epoch) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// The epoch the caches were loaded at, at least.
    pub fn loaded(&self) -> Option<u64> {
        *self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn covers(&self, epoch: u64) -> bool {
        self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some_and(|l| l >= epoch)
    }
}

impl AppState {
    /// Make the cached settings and clients at least as new as the store's
    /// cache epoch read after this call began (see the module's comment).
    /// Never fails: without the database the caches serve as they are.
    pub async fn fresh(&self) {
        if let Some(epoch) = self.current_epoch().await {
            self.follow_epoch(epoch).await;
        }
    }

    /// The store's cache epoch as read after this call began (shared with
    /// concurrent callers); `None` with the embedded store (it never moves)
    /// or when the database does not answer in time.
    pub async fn current_epoch(&self) -> Option<u64> {
        if matches!(self.store, AnyStore::Sled(_)) {
            return None;
        }
        let store = &self.store;
        self.caches.gate.read(|| store.cache_epoch()).await
    }

    /// Run `work` (which must change nothing: it may run twice) under caches
    /// that are current for this request: the epoch is read while `work`
    /// runs, and when it shows the caches were older than that when `work`
    /// began, they are reloaded and `work` runs again. One epoch read's
    /// wait overlaps the work instead of preceding it. (A failed client
    /// authentication inside `work` is then counted twice by the
    /// throttles: only when the epoch moved during that very request.)
    pub async fn with_fresh_caches<T, F, Fut>(&self, work: F) -> T
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let before = self.caches.loaded();
        let (outcome, epoch) = tokio::join!(work(), self.current_epoch());
        match epoch {
            Some(epoch) if before.is_none_or(|b| b < epoch) => {
                self.follow_epoch(epoch).await;
                work().await
            }
            _ => outcome,
        }
    }

    /// Reload the caches unless they were loaded at `epoch` or later (the
    /// epoch only grows). A failed reload keeps the current ones.
    pub async fn follow_epoch(&self, epoch: u64) {
        if self.caches.covers(epoch) {
            return;
        }
        let _one_at_a_time = self.caches.reloading.lock().await;
        if self.caches.covers(epoch) {
            return;
        }
        // What the reload reads is at least as new as `epoch` (read before).
        match self.reload_shared().await {
            Ok(()) => {
                tracing::debug!(epoch, "settings and clients reloaded (changed at another replica)");
                self.caches.loaded_at(Some(epoch));
            }
            Err(e) => tracing::error!(error = %e, "reloading settings and clients failed; keeping the current ones"),
        }
    }
}

/// Reads of the cache epoch shared by concurrent requests: a caller gets
/// the result of a read that *started* after the call did (its snapshot is
/// newer than anything committed before), and at most one read is in
/// flight at a time.
#[derive(Default)]
pub struct EpochGate {
    /// Reads started so far (the id of the newest).
    started: AtomicU64,
    /// The newest finished read: its id and what it gave (`None`: failed),
    /// and when a read last failed.
    finished: Mutex<Finished>,
    /// Held by the caller running the read.
    leader: tokio::sync::Mutex<()>,
    done: Notify,
}

#[derive(Default)]
struct Finished {
    id: u64,
    epoch: Option<u64>,
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

impl EpochGate {
    /// The epoch as read by `read` after this call began, shared with the
    /// concurrent callers; `None` when the read failed or took longer than
    /// [`EPOCH_READ_WAIT`], or one failed less than [`EPOCH_RETRY_AFTER`]
    /// ago.
    pub async fn read<F, Fut, E>(&self, read: F) -> Option<u64>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<u64, E>>,
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
    fn outcome_since(&self, need: u64) -> Option<Option<u64>> {
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
