//! Family views kept between requests, trusted exactly as far as the
//! revocation epoch allows (SPEC 12, issue 21).
//!
//! Every change that can end a family or a session moves the revocation
//! epoch in its own transaction (triggers of migration 8: a `revoked`
//! written, a session's `seq` changed, a user marker written, a deletion).
//! Rotations do not move it. So a view read at epoch `E`, while the epoch is
//! still `E`, differs from the database only by rotations made since, which
//! only move its generation and its activity forward:
//!
//! - **Alive on the kept view means alive.** Nothing revoked it (the epoch
//!   would have moved), and later activity only moves its deadlines later.
//!   A kept view that looks *dead* is read again before anyone is told.
//! - **A rotation decided on it is guarded**: the write applies only at the
//!   generation it decided on, on a family not revoked, while the epoch is
//!   still `E`; otherwise the family is read again (`rotation.rs`). Any
//!   other decision on a kept view (grace, reuse, ended, refused) is made
//!   again on a fresh read, since those depend on a generation that may have
//!   moved.
//!
//! Which epoch is current comes from one read shared by the requests that
//! arrive together, and that *started* after each of them did
//! ([`EpochGate`]): a revocation acknowledged before a request arrived at
//! any replica is seen by that request. The same read carries the caches'
//! epoch (settings and clients, `service::fresh`).
//!
//! Refresh-token introspection and revocation still read the family every
//! time: whether a presented generation is the current one needs the
//! database's word, not a kept view's.

use std::collections::HashMap;
use std::sync::Mutex;

use super::ops::pg;
use super::{PgStore, TRANSACTION_TIMEOUT};
use crate::session::user_session::UserSession;
use crate::store::epoch_gate::EpochGate;
use crate::store::{FamilyView, Result, StoreError};

/// Views kept per replica; past this many, the oldest half is dropped.
/// About 1.7 KiB each (a family and its lean session): some 55 MiB at most.
const CAPACITY: usize = 32_768;

/// What a kept view keeps of its session: what liveness and a rotation
/// decide on (revocation, sequence, activity, times), not its families,
/// device, address or cookie hash (a caller that shows a session reads it).
fn lean(session: &UserSession) -> UserSession {
    UserSession {
        cookie_hash: String::new(),
        user_agent: None,
        ip: None,
        families: Default::default(),
        ..session.clone()
    }
}

/// The two epochs, read in one statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Epochs {
    /// The settings and run-time clients' (`service::fresh`).
    pub config: u64,
    /// Ends of families and sessions (migration 8).
    pub revocations: u64,
}

const EPOCHS: &str = "SELECT (SELECT epoch FROM cache_epochs WHERE name = 'config') AS config, \
     (SELECT epoch FROM cache_epochs WHERE name = 'revocations') AS revocations";

struct Kept {
    view: FamilyView,
    /// The revocation epoch the view was read (or last written) at.
    revocations: u64,
    /// For dropping the oldest when full.
    stamp: u64,
}

#[derive(Default)]
pub(super) struct Views {
    kept: Mutex<(HashMap<String, Kept>, u64)>,
    gate: EpochGate<Epochs>,
}

impl Views {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<String, Kept>, u64)> {
        self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keep `view` as read (or written) at revocation epoch `revocations`.
    pub(super) fn keep(&self, view: &FamilyView, revocations: u64) {
        let mut guard = self.lock();
        let (kept, clock) = &mut *guard;
        *clock += 1;
        let stamp = *clock;
        if kept.len() >= CAPACITY && !kept.contains_key(&view.family.id) {
            let mut stamps: Vec<u64> = kept.values().map(|k| k.stamp).collect();
            let mid = stamps.len() / 2;
            let (_, cut, _) = stamps.select_nth_unstable(mid);
            let cut = *cut;
            kept.retain(|_, k| k.stamp > cut);
        }
        let view = FamilyView { cached: false, session: view.session.as_ref().map(lean), ..view.clone() };
        kept.insert(view.family.id.clone(), Kept { view, revocations, stamp });
    }

    /// The view of family `id` kept at revocation epoch `revocations`.
    fn kept_at(&self, id: &str, revocations: u64) -> Option<FamilyView> {
        let guard = self.lock();
        guard.0.get(id).filter(|k| k.revocations == revocations).map(|k| k.view.clone())
    }

    /// Forget family `id` (it was read missing).
    pub(super) fn forget(&self, id: &str) {
        self.lock().0.remove(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().0.len()
    }
}

/// Epoch column `name` of `row` (a missing row of `cache_epochs` reads as 0).
pub(super) fn epoch_in(row: &tokio_postgres::Row, name: &str) -> Result<u64> {
    Ok(row.try_get::<_, Option<i64>>(name).map_err(pg)?.map_or(0, |e| u64::try_from(e).unwrap_or(0)))
}

impl PgStore {
    /// Both epochs in one statement, bounded like every statement.
    async fn pg_epochs(&self) -> Result<Epochs> {
        let client = self.pool.get().await.map_err(|e| StoreError::from(self.pool_error(e)))?;
        let run = async {
            let statement = client.prepare_cached(EPOCHS).await?;
            client.query_one(&statement, &[]).await
        };
        let row = match tokio::time::timeout(TRANSACTION_TIMEOUT, run).await {
            Ok(Ok(row)) => row,
            Ok(Err(e)) => return Err(self.failed_on(client, e)),
            Err(_) => return Err(self.timed_out(client, EPOCHS)),
        };
        Ok(Epochs { config: epoch_in(&row, "config")?, revocations: epoch_in(&row, "revocations")? })
    }

    /// Both epochs as read after this call began, shared with concurrent
    /// callers; `None` when the database did not answer in time.
    pub(super) async fn current_epochs(&self) -> Option<Epochs> {
        self.views.gate.read(|| self.pg_epochs()).await
    }

    /// The caches' epoch as read after this call began ([`Self::current_epochs`]).
    pub async fn current_cache_epoch(&self) -> Option<u64> {
        self.current_epochs().await.map(|e| e.config)
    }

    /// [`crate::store::Store::live_family_view`]: the kept view of family
    /// `id` while the revocation epoch has not moved since it was kept,
    /// else a fresh read (which is kept).
    pub(super) async fn pg_live_family_view(&self, id: &str) -> Result<Option<FamilyView>> {
        if let Some(epochs) = self.current_epochs().await
            && let Some(view) = self.views.kept_at(id, epochs.revocations)
        {
            return Ok(Some(FamilyView {
                cache_epoch: Some(epochs.config),
                revocations: Some(epochs.revocations),
                cached: true,
                ..view
            }));
        }
        self.pg_family_view(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::UnixTime;
    use crate::session::family::Family;

    fn view(id: &str) -> FamilyView {
        let family = Family {
            id: id.into(),
            salt: "s".into(),
            sid: "sid".into(),
            username: "alice".into(),
            client_id: "web".into(),
            scope: "openid".into(),
            auth_time: UnixTime(1),
            remember_me: false,
            created_at: UnixTime(1),
            generation: 1,
            rotated_at: UnixTime(1),
            active_at: None,
            issues_refresh_tokens: true,
            revoked: None,
            jkt: None,
        };
        FamilyView { family, session: None, cache_epoch: Some(0), revocations: Some(0), cached: false }
    }

    #[test]
    fn a_view_serves_only_at_the_epoch_it_was_kept_at() {
        let views = Views::default();
        views.keep(&view("f1"), 3);
        assert!(views.kept_at("f1", 3).is_some());
        assert!(views.kept_at("f1", 4).is_none(), "a revocation since: read again");
        assert!(views.kept_at("f2", 3).is_none());
        views.forget("f1");
        assert!(views.kept_at("f1", 3).is_none());
    }

    #[test]
    fn a_kept_session_keeps_what_liveness_needs_and_no_more() {
        let views = Views::default();
        let mut v = view("f1");
        let session = UserSession {
            sid: "sid".into(),
            username: "alice".into(),
            cookie_hash: "hash".into(),
            signed_in: UnixTime(1),
            last_active: UnixTime(5),
            remember_me: false,
            user_agent: Some("Firefox".into()),
            ip: Some("203.0.113.7".into()),
            revoked: Some(crate::session::Revoked { at: UnixTime(9), reason: "logout".into(), by: None }),
            seq: 7,
            families: [("web".to_owned(), vec!["f1".to_owned()])].into_iter().collect(),
        };
        v.session = Some(session.clone());
        views.keep(&v, 0);
        let kept = views.kept_at("f1", 0).and_then(|k| k.session).expect("kept");
        assert_eq!((kept.sid, kept.seq, kept.last_active), (session.sid, session.seq, session.last_active));
        assert_eq!(kept.revoked, session.revoked, "an end is never dropped");
        assert!(
            kept.user_agent.is_none() && kept.ip.is_none() && kept.families.is_empty() && kept.cookie_hash.is_empty()
        );
    }

    #[test]
    fn a_full_cache_drops_its_oldest_half() {
        let views = Views::default();
        for i in 0..CAPACITY {
            views.keep(&view(&format!("f{i}")), 0);
        }
        assert_eq!(views.len(), CAPACITY);
        views.keep(&view("newest"), 0);
        assert!(views.len() <= CAPACITY / 2 + 1, "{} kept", views.len());
        assert!(views.kept_at("newest", 0).is_some());
        assert!(views.kept_at(&format!("f{}", CAPACITY - 1), 0).is_some(), "the newest stay");
        assert!(views.kept_at("f0", 0).is_none(), "the oldest go");
    }
}
