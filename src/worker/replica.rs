//! Several replicas on one database (issue #9): who this replica is, the
//! leases of its periodic jobs, and how its caches follow changes made at
//! another replica.
//!
//! What each replica caches: the session policy (admin settings and the
//! policy history) and the clients created through the admin API. A change
//! bumps the store's cache epoch in the same transaction
//! ([`Store::cache_epoch`]); [`follow_changes`] compares it with the epoch
//! loaded, every [`EPOCH_CHECK_EVERY`] and at once when the store signals a
//! change (PostgreSQL's LISTEN/NOTIFY, an accelerator only). That keeps
//! an idle replica current; what makes a change in force at the very next
//! request is the check each request makes first (`service::fresh`).
//! Revocation state is never cached: every check reads the store.
//!
//! With the embedded store there is one process: leases are always granted,
//! the epoch never moves, and nothing here costs anything.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;

use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::service::AppState;
use crate::store::Store;

/// How often a replica compares the store's cache epoch with its own.
pub const EPOCH_CHECK_EVERY: Duration = Duration::from_secs(1);

/// This process's name in leases: host, process id and a random part
/// (a restarted replica is a new owner).
pub fn replica_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "tenure".to_owned());
        let random: String = crate::session::new_id().chars().take(8).collect();
        format!("{host}-{}-{random}", std::process::id())
    })
}

/// Take (or keep) lease `name` for `hold` from `now`: whether this replica
/// runs the job now. A store error counts as "not ours" (another replica,
/// or the next tick, runs it).
pub async fn holds_lease(state: &AppState, name: &str, now: UnixTime, hold: Secs) -> bool {
    match state.store.take_lease(name, replica_id(), now, now.plus(hold)).await {
        Ok(held) => held,
        Err(e) => {
            tracing::warn!(error = %e, lease = name, "taking a lease failed; skipping this run");
            false
        }
    }
}

/// Reload the caches whenever the store's cache epoch moves from `loaded`
/// (read before the state loaded them): checked every
/// [`EPOCH_CHECK_EVERY`], and at once when `changed` is notified. Runs
/// until the task is aborted.
pub async fn follow_changes(state: AppState, loaded: Option<u64>, changed: Arc<Notify>) {
    state.caches.loaded_at(loaded);
    let mut tick = tokio::time::interval(EPOCH_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = changed.notified() => {}
        }
        let epoch = match state.store.cache_epoch().await {
            Ok(epoch) => epoch,
            Err(e) => {
                tracing::warn!(error = %e, "reading the cache epoch failed");
                continue;
            }
        };
        state.follow_epoch(epoch).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixTime = UnixTime(1_700_000_000);

    #[tokio::test]
    async fn one_process_holds_every_lease() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = AppState::for_tests(&dir, T0).await;
        assert!(holds_lease(&state, "sweeper", T0, Secs::minutes(2)).await);
        assert!(holds_lease(&state, "sweeper", T0, Secs::minutes(2)).await);
        assert!(replica_id().contains(&std::process::id().to_string()));
    }
}
