//! A rotation in one round trip (SPEC 12, issue 21): the refresh grant
//! reads the family with its session and the user's marker in one statement
//! (the read it needs anyway to check the token's MAC), decides in Rust, and
//! writes with one guarded statement, outside any explicit transaction:
//!
//! - the family's new generation, only if the family is still at the
//!   generation read and not revoked, its session (if it had one) is still
//!   there, not revoked and not covered by a newer user marker;
//! - in the same statement, the session's activity (`last_active` moves
//!   forward only, never on a revoked session), unless the refresh was a
//!   background one.
//!
//! When the guard fails another request changed what the decision was made
//! on: read again and decide again (the retry then sees the successor,
//! inside or outside the grace window, or the revocation). A reuse kill
//! (rare, with its audit event, logout deliveries and feed events) and a
//! rotation that keeps losing races take the locked transaction
//! (`PgStore::refresh_locked`), which decides once more under row locks. So
//! every outcome is one a serial order of the requests gives, as before;
//! generations are compared, never timestamps.
//!
//! Only what CockroachDB and YugabyteDB accept too: a CTE of `UPDATE ...
//! RETURNING` statements and jsonb operators (`->`, `->>`, `jsonb_set`); no
//! function, so no migration (docs/operations.md, "PostgreSQL").

use serde_json::Value;
use tokio_postgres::Row;

use super::ops::{counter, decode, json, pg, secs, session_from_row};
use super::{PgStore, is_retryable};
use crate::session::family::{Family, RefreshDecision};
use crate::session::user_session::UserSession;
use crate::store::{Fallout, FamilyView, Result, StoreError};

/// Guarded rotations tried before the locked transaction decides.
const OPTIMISTIC_ATTEMPTS: u32 = 4;

/// The family with its session and the session's user marker.
const VIEW: &str = "SELECT f.body AS family, s.body, s.seq, m.seq AS marker_seq, m.body AS marker \
     FROM families f LEFT JOIN user_sessions s ON s.sid = f.sid \
     LEFT JOIN user_markers m ON m.username = s.username WHERE f.id = $1";

/// `$1` family id, `$2` its new body, `$3` its new generation, `$4` the
/// generation read, `$5` whether a session was read, `$6` whether the
/// session records activity, `$7` the activity (JSON), `$8` the same as a
/// number. Returns how many families rotated (0 or 1).
const ROTATE: &str = "WITH f AS ( \
       UPDATE families SET body = $2, generation = $3 \
       WHERE id = $1 AND generation = $4 \
         AND COALESCE(body->'revoked', 'null'::JSONB) = 'null'::JSONB \
         AND EXISTS (SELECT 1 FROM user_sessions s WHERE s.sid = families.sid) = $5 \
         AND NOT EXISTS (SELECT 1 FROM user_sessions s WHERE s.sid = families.sid \
           AND (COALESCE(s.body->'revoked', 'null'::JSONB) <> 'null'::JSONB \
             OR EXISTS (SELECT 1 FROM user_markers m WHERE m.username = s.username AND m.seq >= s.seq))) \
       RETURNING sid), \
     s AS ( \
       UPDATE user_sessions SET body = jsonb_set(body, ARRAY['last_active'], $7::JSONB) \
       WHERE $6 AND sid IN (SELECT sid FROM f) AND (body->>'last_active')::BIGINT < $8 \
         AND COALESCE(body->'revoked', 'null'::JSONB) = 'null'::JSONB \
       RETURNING sid) \
     SELECT (SELECT count(*) FROM f) AS rotated, (SELECT count(*) FROM s) AS touched";

fn view_from_row(row: &Row) -> Result<FamilyView> {
    let family: Family = decode("family", row.try_get("family").map_err(pg)?)?;
    let session = match row.try_get::<_, Option<i64>>("seq").map_err(pg)? {
        None => None,
        Some(_) => Some(session_from_row(row)?),
    };
    Ok(FamilyView { family, session })
}

impl PgStore {
    /// Family `id`, its session and the user's marker, in one statement.
    pub(super) async fn pg_family_view(&self, id: &str) -> Result<Option<FamilyView>> {
        let client = self.pool.get().await.map_err(|e| StoreError::from(self.pool_error(e)))?;
        let statement = client.prepare_cached(VIEW).await.map_err(pg)?;
        let row = client.query_opt(&statement, &[&id]).await.map_err(pg)?;
        row.as_ref().map(view_from_row).transpose()
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
    /// made on has changed; whether it was written. A statement that met a
    /// deadlock or a serialization failure counts as not written.
    async fn try_rotate(&self, view: &FamilyView, next: &Family) -> Result<bool> {
        // A background refresh is no activity of the session either.
        let records_activity = next.active_at.is_none() && view.session.is_some();
        let activity: Value = json(&next.rotated_at)?;
        let client = self.pool.get().await.map_err(|e| StoreError::from(self.pool_error(e)))?;
        let statement = client.prepare_cached(ROTATE).await.map_err(pg)?;
        let outcome = client
            .query_one(
                &statement,
                &[
                    &next.id,
                    &json(next)?,
                    &counter(next.generation),
                    &counter(view.family.generation),
                    &view.session.is_some(),
                    &records_activity,
                    &activity,
                    &secs(next.rotated_at),
                ],
            )
            .await;
        match outcome {
            Ok(row) => Ok(row.try_get::<_, i64>("rotated").map_err(pg)? == 1),
            Err(e) if is_retryable(&e) => {
                tracing::debug!(error = %super::describe(&e), "a guarded rotation met a concurrent transaction");
                Ok(false)
            }
            Err(e) => Err(pg(e)),
        }
    }
}
