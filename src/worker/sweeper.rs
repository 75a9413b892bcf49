//! The sweeper: removes expired records and prunes what has grown old
//! (audit events, user markers, revocation-feed events), at one replica
//! per period.

use std::time::Duration;

use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::service::AppState;
use crate::session::end::ENDED_LISTED;
use crate::store::Store;

/// How often the sweeper removes expired records.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// The lease of the sweeper and pruners, and how long a run holds it: a
/// replica that keeps sweeping renews it; if it dies, another takes over
/// within two periods.
const SWEEP_LEASE: &str = "sweeper";
const SWEEP_LEASE_HOLD: Secs = Secs::new(2 * SWEEP_EVERY.as_secs());
/// How long audit events are kept.
pub const AUDIT_RETENTION: Secs = Secs::days(90);

/// Every [`SWEEP_EVERY`], at the replica that holds the lease: prune old
/// audit events, user markers and feed events, and sweep expired records.
pub async fn sweep_periodically(state: AppState) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        let now = state.now();
        // Replicas (issue #9): one sweeps per period; it keeps the lease
        // while it lives, another takes over once it has run out.
        if !super::replica::holds_lease(&state, SWEEP_LEASE, now, SWEEP_LEASE_HOLD).await {
            continue;
        }
        let ceiling = state.history().current().max_lifetime_ceiling;
        let audit_before = UnixTime(now.as_secs().saturating_sub(AUDIT_RETENTION.as_secs()));
        // A marker tells why the sessions it covers ended: it stays as long
        // as they do (the ceiling, then 30 days listed as ended, SPEC 14).
        let markers_before =
            UnixTime(now.as_secs().saturating_sub(ceiling.as_secs()).saturating_sub(ENDED_LISTED.as_secs()));
        match state.store.prune_history(audit_before, markers_before).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "old audit events and user markers pruned"),
            Err(e) => tracing::warn!(error = %e, "pruning the audit log failed"),
        }
        // Revocation-feed events older than the longest access-token
        // lifetime describe tokens that have expired anyway (SPEC 13).
        let sets_before = UnixTime(now.as_secs().saturating_sub(state.policy().0.access_token_ttl().as_secs()));
        match state.store.prune_sets(sets_before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "revocation-feed events older than the access-token lifetime dropped"),
            Err(e) => tracing::warn!(error = %e, "pruning the revocation-feed queue failed"),
        }
        match state.store.sweep_expired(now).await {
            Ok(0) => {}
            Ok(n) => {
                state.metrics.store_sweeps_removed.inc_by(n as u64);
                tracing::debug!(removed = n, "expired records swept");
            }
            Err(e) => tracing::warn!(error = %e, "sweeping expired records failed"),
        }
    }
}
