//! A rotation in one round trip (SPEC 12, issue 21), and a code
//! redemption in one statement ([`REDEEM`]). The refresh grant
//! reads the family with its session and the user's marker in one statement
//! (the read it needs anyway to check the token's MAC), or takes the view
//! this replica kept while the revocation epoch has not moved (`views.rs`);
//! decides in Rust; and writes with one guarded statement, outside any
//! explicit transaction:
//!
//! - the family's new generation, only if the family is still at the
//!   generation decided on and not revoked, and the revocation epoch is
//!   still the one the view was read at: no family, session or user marker
//!   ended anything since (the triggers of migration 8 move it in the same
//!   transaction as every such change);
//! - in the same statement, when the session's activity is behind, the
//!   session's activity (`last_active` moves forward only, never on a
//!   revoked session), unless the refresh was a background one.
//!
//! When the guard fails another request changed what the decision was made
//! on: read again and decide again (the retry then sees the successor,
//! inside or outside the grace window, or the revocation). A decision other
//! than a rotation made on a kept view is made again on a fresh read. A
//! reuse kill (rare, with its audit event, logout deliveries and feed
//! events) and a rotation that keeps losing races take the locked
//! transaction (`PgStore::refresh_locked`), which decides once more under
//! row locks. So every outcome is one a serial order of the requests gives,
//! as before; generations are compared, never timestamps.
//!
//! The statements use only what CockroachDB and YugabyteDB accept too: a
//! CTE of `UPDATE ... RETURNING` statements and jsonb operators (`->`,
//! `->>`, `jsonb_set`); the revocation epoch's triggers are PL/pgSQL
//! (docs/operations.md, "PostgreSQL").

use tokio_postgres::Row;

use super::ops::{counter, decode, json, pg, secs, session_from_row};
use super::{PgStore, is_retryable};
use crate::session::family::{Family, RefreshDecision};
use crate::session::user_session::{MAX_FAMILIES_PER_CLIENT, UserSession};
use crate::store::{Fallout, FamilyView, Result, StoreError};

/// Guarded rotations tried before the locked transaction decides.
const OPTIMISTIC_ATTEMPTS: u32 = 4;

/// The family with its session, the session's user marker, the cache
/// epoch and the revocation epoch.
const VIEW: &str = "SELECT f.body AS family, s.body, s.seq, m.seq AS marker_seq, m.body AS marker, \
     (SELECT epoch FROM cache_epochs WHERE name = 'config') AS epoch, \
     (SELECT epoch FROM cache_epochs WHERE name = 'revocations') AS revocations \
     FROM families f LEFT JOIN user_sessions s ON s.sid = f.sid \
     LEFT JOIN user_markers m ON m.username = s.username WHERE f.id = $1";

fn view_from_row(row: &Row) -> Result<FamilyView> {
    let family: Family = decode("family", row.try_get("family").map_err(pg)?)?;
    let session = match row.try_get::<_, Option<i64>>("seq").map_err(pg)? {
        None => None,
        Some(_) => Some(session_from_row(row)?),
    };
    Ok(FamilyView {
        family,
        session,
        cache_epoch: Some(super::views::epoch_in(row, "epoch")?),
        revocations: Some(super::views::epoch_in(row, "revocations")?),
        cached: false,
    })
}

impl PgStore {
    /// Family `id`, its session and the user's marker, in one statement;
    /// the view is kept for [`PgStore::pg_live_family_view`].
    pub(super) async fn pg_family_view(&self, id: &str) -> Result<Option<FamilyView>> {
        let client = self.pool.get().await.map_err(|e| StoreError::from(self.pool_error(e)))?;
        let run = async {
            let statement = client.prepare_cached(VIEW).await?;
            client.query_opt(&statement, &[&id]).await
        };
        // Bounded like every statement: a database that does not answer is
        // a 503, and the connection leaves the pool.
        let row = match tokio::time::timeout(super::TRANSACTION_TIMEOUT, run).await {
            Ok(Ok(row)) => row,
            Ok(Err(e)) => return Err(self.failed_on(client, e)),
            Err(_) => return Err(self.timed_out(client, VIEW)),
        };
        let view = row.as_ref().map(view_from_row).transpose()?;
        match &view {
            Some(v) => self.views.keep(v, v.revocations.unwrap_or(0)),
            None => self.views.forget(id),
        }
        Ok(view)
    }

    /// Decide on `seen` and write the rotation with one guarded statement;
    /// see the module's comment.
    pub(super) async fn pg_refresh_seen<F>(
        &self,
        seen: FamilyView,
        decide: &F,
        fallout: &dyn Fallout,
    ) -> Result<Option<RefreshDecision>>
    where
        F: Fn(&Family, Option<&UserSession>) -> RefreshDecision + Send + Sync,
    {
        let id = seen.family.id.clone();
        let mut next_view = Some(seen);
        for _ in 0..OPTIMISTIC_ATTEMPTS {
            let view = match next_view.take() {
                Some(v) => v,
                None => match self.pg_family_view(&id).await? {
                    Some(v) => v,
                    None => return Ok(None),
                },
            };
            let decision = decide(&view.family, view.session.as_ref());
            let next = match &decision {
                // Decided on a kept view, which may lag behind a rotation:
                // decide again on a fresh read.
                RefreshDecision::Grace(_)
                | RefreshDecision::Ended(_)
                | RefreshDecision::Refused(_)
                | RefreshDecision::Reuse(_)
                    if view.cached =>
                {
                    continue;
                }
                RefreshDecision::Grace(_) | RefreshDecision::Ended(_) | RefreshDecision::Refused(_) => {
                    return Ok(Some(decision));
                }
                // The kill and its fallout: one locked transaction.
                RefreshDecision::Reuse(_) => break,
                RefreshDecision::Rotate(next) => next,
            };
            if self.try_rotate(&view, next).await? {
                return Ok(Some(decision));
            }
        }
        self.refresh_locked(&id, decide, fallout).await
    }

    /// Write rotation `next` of `view.family` if nothing the decision was
    /// made on has changed, with the next batch (`batch.rs`); whether it was
    /// written. A batch that met a deadlock or a serialization failure
    /// counts as not written.
    async fn try_rotate(&self, view: &FamilyView, next: &Family) -> Result<bool> {
        let Some(revocations) = view.revocations else { return Ok(false) };
        let at = secs(next.rotated_at);
        // A background refresh is no activity of the session either; nor
        // is one within the second the session last recorded.
        let touch = view.session.as_ref().filter(|s| next.active_at.is_none() && secs(s.last_active) < at).is_some();
        let rotation = super::batch::Rotation {
            id: next.id.clone(),
            body: json(next)?,
            generation: counter(next.generation),
            old: counter(view.family.generation),
            revocations: counter(revocations),
            touch,
            activity: json(&next.rotated_at)?,
            at,
        };
        let (rotated, touched) = self.rotate_batched(rotation).await?;
        if rotated {
            // What this write made of the view, at the same epoch.
            let mut session = view.session.clone();
            if let Some(s) = session.as_mut().filter(|_| touched) {
                s.last_active = next.rotated_at;
            }
            let written = FamilyView { family: next.clone(), session, cached: false, ..view.clone() };
            self.views.keep(&written, revocations);
        }
        Ok(rotated)
    }
}

/// Code redemption's common case in one statement: `$1` the code's key,
/// `$2` the session id, `$3` the new family's id, `$4` its client, `$5` its
/// generation, `$6` its body, `$7` kept until, `$8` now (a number), `$9`
/// now (JSON), `$10` the families a client may keep in a session. The code
/// row, then the session row, are locked (the order of every transition);
/// it applies only when the code was never redeemed and the family
/// supersedes none of the session's (`ok`): the code records the family, the
/// family is inserted, the session admits it and records the activity (not
/// when revoked, by itself or by a user marker). Otherwise it writes
/// nothing. Returns whether it applied.
const REDEEM: &str = "WITH c AS (SELECT body FROM auth_codes WHERE code_hash = $1 FOR UPDATE), \
     l AS (SELECT body FROM user_sessions WHERE sid = $2 FOR UPDATE), \
     ok AS (SELECT 1 AS one FROM c \
       WHERE COALESCE(c.body->'redeemed_family', 'null'::JSONB) = 'null'::JSONB \
         AND NOT EXISTS (SELECT 1 FROM l \
           WHERE jsonb_array_length(COALESCE(l.body->'families'->$4::TEXT, '[]'::JSONB)) >= $10)), \
     uc AS (UPDATE auth_codes SET body = jsonb_set(body, ARRAY['redeemed_family'], to_jsonb($3::TEXT)) \
       WHERE code_hash = $1 AND EXISTS (SELECT 1 FROM ok) RETURNING 1), \
     us AS (UPDATE user_sessions AS s SET body = jsonb_set( \
         jsonb_set(s.body, ARRAY['families'], COALESCE(s.body->'families', '{}'::JSONB) \
           || jsonb_build_object($4::TEXT, COALESCE(s.body->'families'->$4::TEXT, '[]'::JSONB) \
           || jsonb_build_array($3::TEXT))), \
         ARRAY['last_active'], \
         CASE WHEN COALESCE(s.body->'revoked', 'null'::JSONB) = 'null'::JSONB \
             AND (s.body->>'last_active')::BIGINT < $8 \
             AND NOT EXISTS (SELECT 1 FROM user_markers m WHERE m.username = s.username AND m.seq >= s.seq) \
           THEN $9::JSONB ELSE s.body->'last_active' END) \
       WHERE s.sid = $2 AND EXISTS (SELECT 1 FROM ok) RETURNING 1), \
     f AS (INSERT INTO families (id, sid, client_id, generation, in_session, body, expires_at) \
       SELECT $3, $2, $4, $5, TRUE, $6, $7 FROM ok RETURNING 1) \
     SELECT (SELECT count(*) FROM f) AS redeemed, (SELECT count(*) FROM uc) AS marked, \
       (SELECT count(*) FROM us) AS admitted";

impl PgStore {
    /// Redeem the code under `key` for `family` in one statement when it
    /// is the common case (see [`REDEEM`]); `false` when it wrote nothing
    /// and the locked transaction must decide (a replay, families to
    /// supersede, an unknown code, or a statement that met a concurrent one).
    pub(super) async fn try_redeem(
        &self,
        key: &[u8],
        family: &Family,
        keep_until: crate::clock::UnixTime,
        now: crate::clock::UnixTime,
    ) -> Result<bool> {
        let limit = i32::try_from(MAX_FAMILIES_PER_CLIENT).unwrap_or(i32::MAX);
        let (generation, body, until) = (counter(family.generation), json(family)?, secs(keep_until));
        let (at, at_json) = (secs(now), json(&now)?);
        let client = self.pool.get().await.map_err(|e| StoreError::from(self.pool_error(e)))?;
        let run = async {
            let statement = client.prepare_cached(REDEEM).await?;
            client
                .query_one(
                    &statement,
                    &[
                        &key,
                        &family.sid,
                        &family.id,
                        &family.client_id,
                        &generation,
                        &body,
                        &until,
                        &at,
                        &at_json,
                        &limit,
                    ],
                )
                .await
        };
        match tokio::time::timeout(super::TRANSACTION_TIMEOUT, run).await {
            Ok(Ok(row)) => Ok(row.try_get::<_, i64>("redeemed").map_err(pg)? == 1),
            Ok(Err(e)) if is_retryable(&e) => {
                tracing::debug!(error = %super::describe(&e), "a one-statement redemption met a concurrent transaction");
                Ok(false)
            }
            Ok(Err(e)) => Err(self.failed_on(client, e)),
            Err(_) => Err(self.timed_out(client, REDEEM)),
        }
    }
}
