//! Settings and run-time clients in force at the very next request (SPEC
//! 12): each replica caches the session policy, the group policies and the
//! clients created through the admin API; a change anywhere bumps the
//! store's cache epoch in its own transaction ([`crate::store::Store::cache_epoch`]).
//! Every request that depends on the caches first makes sure they are at
//! least as new as an epoch read *after the request arrived*
//! ([`AppState::fresh`]), reloading when the epoch moved. So a change whose
//! response was sent before a request arrived at any replica is in force
//! for that request.
//!
//! The read is cheap and shared: at most one epoch read is in flight per
//! replica ([`crate::store::epoch_gate::EpochGate`]); a request waits for the next read that starts
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

use super::AppState;
pub use crate::store::epoch_gate::{EPOCH_READ_WAIT, EPOCH_RETRY_AFTER};

/// The caches' epoch bookkeeping, one per process ([`AppState`]).
#[derive(Default)]
pub struct SharedCaches {
    /// The epoch the caches were loaded at (`None`: not known, reload at
    /// the first check).
    loaded: Mutex<Option<u64>>,
    /// One reload at a time; the others wait for it.
    reloading: tokio::sync::Mutex<()>,
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
        self.store.current_cache_epoch().await
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
