//! The store's operations on PostgreSQL, one method per operation of the
//! sled store (`store/sled.rs`), with the same semantics; the comments say
//! where the SQL differs from sled's keyspaces and why.
//!
//! Rows locked in one transaction are always taken in this order: the
//! authorization code (or the device request), the user session, then
//! families (several at once by id), so two transitions never wait for each
//! other in a cycle.

use deadpool_postgres::Transaction;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgStore, TxError};
use crate::audit::AuditEvent;
use crate::clock::UnixTime;
use crate::logout::Delivery;
use crate::oauth::client_spec::StoredClient;
use crate::oauth::throttle::{ThrottleKey, ThrottleRules, ThrottleState};
use crate::policy::{PolicyHistory, PolicyLayer, SessionPolicy};
use crate::session::Revoked;
use crate::session::code::{AuthCode, CODE_RECORD_TTL};
use crate::session::device::{Approval, DeviceRequest, DeviceState, PollDecision, decide_poll};
use crate::session::family::{Family, RefreshDecision};
use crate::session::limit::Admit;
use crate::session::user_session::{MAX_FAMILIES_PER_CLIENT, UserSession};
use crate::ssf::{QueuedSet, SignedSet, Stream};
use crate::store::marker::{EarlierMarker, carry};
use crate::store::{
    Admission, DeviceAnswer, DevicePoll, Effects, Fallout, Redemption, Result, RetiredName, Revoke, Store, StoreError,
};
use crate::user::{StoredUser, User};

const ADMIN_POLICY: &str = "admin_session_policy";
const POLICY_HISTORY: &str = "policy_history";
/// The admin-set group policies (SPEC 14), one JSON object by name.
const ADMIN_GROUPS: &str = "admin_group_policies";
/// At most this many expired rows are deleted per statement.
const SWEEP_BATCH: i64 = 512;

/// Unix seconds as a BIGINT (saturating: 2^63 s is far beyond any deadline).
pub(crate) fn secs(t: UnixTime) -> i64 {
    i64::try_from(t.as_secs()).unwrap_or(i64::MAX)
}

pub(super) fn counter(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(super) fn json<T: Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| StoreError::Io(format!("cannot encode a record: {e}")))
}

pub(super) fn decode<T: DeserializeOwned>(what: &str, value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt { what: what.to_owned(), message: e.to_string() })
}

pub(super) fn pg(e: tokio_postgres::Error) -> StoreError {
    if super::is_unstorable_text(&e) {
        return StoreError::Refused(super::describe(&e));
    }
    super::classify(&e)
}

// Statements are prepared once per connection and cached (a round trip
// saved on every later use).
type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

async fn q(
    tx: &Transaction<'_>,
    sql: &str,
    params: Params<'_>,
) -> std::result::Result<Vec<Row>, tokio_postgres::Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.query(&statement, params).await
}

async fn q_opt(
    tx: &Transaction<'_>,
    sql: &str,
    params: Params<'_>,
) -> std::result::Result<Option<Row>, tokio_postgres::Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.query_opt(&statement, params).await
}

async fn q_one(tx: &Transaction<'_>, sql: &str, params: Params<'_>) -> std::result::Result<Row, tokio_postgres::Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.query_one(&statement, params).await
}

async fn exec(tx: &Transaction<'_>, sql: &str, params: Params<'_>) -> std::result::Result<u64, tokio_postgres::Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.execute(&statement, params).await
}

/// "Every session of this user with a sequence up to `seq` is revoked."
struct Marker {
    seq: u64,
    revoked: Revoked,
    earlier: Vec<EarlierMarker>,
}

/// A marker row's `body`: its revocation, and the earlier markers of the
/// last 30 days (see `store::marker`); a body written before them is the
/// revocation alone.
#[derive(serde::Serialize, serde::Deserialize)]
struct MarkerBody {
    #[serde(flatten)]
    revoked: Revoked,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    earlier: Vec<EarlierMarker>,
}

impl Marker {
    fn of(seq: i64, body: Value) -> std::result::Result<Marker, StoreError> {
        let body: MarkerBody = decode("user marker", body)?;
        Ok(Marker { seq: unsigned(seq), revoked: body.revoked, earlier: body.earlier })
    }
}

/// Apply the user's marker to a session read from the store (as sled's
/// `overlay`).
fn overlay(session: &mut UserSession, marker: Option<&Marker>) {
    if let Some(m) = marker
        && session.revoked.is_none()
        && let Some(revoked) = crate::store::marker::covering(session.seq, m.seq, &m.revoked, &m.earlier)
    {
        session.revoked = Some(revoked.clone());
    }
}

/// A session row (`body`, `seq`) and its user's marker (`marker_seq`,
/// `marker`), as selected by [`SESSION_COLUMNS`].
pub(super) fn session_from_row(row: &Row) -> Result<UserSession> {
    let mut session: UserSession = decode("user session", row.try_get("body").map_err(pg)?)?;
    session.seq = unsigned(row.try_get("seq").map_err(pg)?);
    let marker = match row.try_get::<_, Option<i64>>("marker_seq").map_err(pg)? {
        None => None,
        Some(seq) => {
            let body: Value = row.try_get("marker").map_err(pg)?;
            Some(Marker::of(seq, body)?)
        }
    };
    overlay(&mut session, marker.as_ref());
    Ok(session)
}

const SESSION_COLUMNS: &str = "SELECT s.body, s.seq, m.seq AS marker_seq, m.body AS marker, s.expires_at \
     FROM user_sessions s LEFT JOIN user_markers m ON m.username = s.username";

async fn tx_marker(tx: &Transaction<'_>, username: &str) -> std::result::Result<Option<Marker>, TxError> {
    let Some(row) = q_opt(tx, "SELECT seq, body FROM user_markers WHERE username = $1", &[&username]).await? else {
        return Ok(None);
    };
    Ok(Some(Marker::of(row.try_get(0)?, row.try_get(1)?)?))
}

/// Lock the session of family `family_id` and read it with its user's
/// marker applied, in one statement.
async fn tx_lock_session_of_family(
    tx: &Transaction<'_>,
    family_id: &str,
) -> std::result::Result<Option<UserSession>, TxError> {
    let sql = "SELECT s.body, s.seq, m.seq, m.body FROM user_sessions s \
               LEFT JOIN user_markers m ON m.username = s.username \
               WHERE s.sid = (SELECT sid FROM families WHERE id = $1) FOR UPDATE OF s";
    let Some(row) = q_opt(tx, sql, &[&family_id]).await? else { return Ok(None) };
    let mut session: UserSession = decode("user session", row.try_get(0)?)?;
    session.seq = unsigned(row.try_get(1)?);
    let marker_seq: Option<i64> = row.try_get(2)?;
    if let Some(seq) = marker_seq {
        let marker = Marker::of(seq, row.try_get(3)?)?;
        overlay(&mut session, Some(&marker));
    }
    Ok(Some(session))
}

/// Lock session `sid` and read it with its user's marker applied.
async fn tx_lock_session(tx: &Transaction<'_>, sid: &str) -> std::result::Result<Option<UserSession>, TxError> {
    let Some(row) = q_opt(tx, "SELECT body, seq FROM user_sessions WHERE sid = $1 FOR UPDATE", &[&sid]).await? else {
        return Ok(None);
    };
    let mut session: UserSession = decode("user session", row.try_get(0)?)?;
    session.seq = unsigned(row.try_get(1)?);
    let marker = tx_marker(tx, &session.username).await?;
    overlay(&mut session, marker.as_ref());
    Ok(Some(session))
}

async fn tx_write_session(tx: &Transaction<'_>, session: &UserSession) -> std::result::Result<(), TxError> {
    exec(tx, "UPDATE user_sessions SET body = $2 WHERE sid = $1", &[&session.sid, &json(session)?]).await?;
    Ok(())
}

/// Create `family` (kept until `keep_until`) in a transaction that locked
/// nothing after its session yet, as `redeem_code` does: lock the session,
/// insert the family, let it join the session's families of its client
/// (the ones it supersedes are revoked and leave the list), and record the
/// activity. Returns the superseded families, oldest first.
async fn tx_start_family(
    tx: &Transaction<'_>,
    family: &Family,
    keep_until: UnixTime,
    now: UnixTime,
) -> std::result::Result<Vec<Family>, TxError> {
    let session = tx_lock_session(tx, &family.sid).await?;
    exec(
        tx,
        "INSERT INTO families (id, sid, client_id, generation, in_session, body, expires_at) \
         VALUES ($1, $2, $3, $4, TRUE, $5, $6)",
        &[&family.id, &family.sid, &family.client_id, &counter(family.generation), &json(family)?, &secs(keep_until)],
    )
    .await?;
    let mut superseded = Vec::new();
    let Some(mut session) = session else { return Ok(superseded) };
    let old = session.admit_family(&family.client_id, &family.id, MAX_FAMILIES_PER_CLIENT);
    session.record_activity(now);
    tx_write_session(tx, &session).await?;
    let mut sorted = old.clone();
    sorted.sort();
    // Lock them in id order; report them oldest first.
    let rows = q(tx, "SELECT id, body FROM families WHERE id = ANY($1) ORDER BY id FOR UPDATE", &[&sorted]).await?;
    exec(tx, "UPDATE families SET in_session = FALSE WHERE id = ANY($1)", &[&sorted]).await?;
    let mut locked = std::collections::HashMap::new();
    for row in rows {
        let id: String = row.try_get(0)?;
        locked.insert(id, decode::<Family>("family", row.try_get(1)?)?);
    }
    for id in old {
        let Some(mut f) = locked.remove(&id) else { continue };
        if f.revoked.is_none() {
            let generation = f.generation;
            f.revoked = Some(Revoked { at: now, reason: "superseded".into(), by: None });
            tx_write_family(tx, &f, generation).await?;
            superseded.push(f);
        }
    }
    Ok(superseded)
}

/// Lock family `id` and read it.
async fn tx_lock_family(tx: &Transaction<'_>, id: &str) -> std::result::Result<Option<Family>, TxError> {
    match q_opt(tx, "SELECT body FROM families WHERE id = $1 FOR UPDATE", &[&id]).await? {
        None => Ok(None),
        Some(row) => Ok(Some(decode("family", row.try_get(0)?)?)),
    }
}

/// Write family `next` over the version at `generation` (the guard every
/// transition compares); whether it was still that version.
async fn tx_write_family(tx: &Transaction<'_>, next: &Family, generation: u64) -> std::result::Result<bool, TxError> {
    let n = exec(
        tx,
        "UPDATE families SET body = $2, generation = $3 WHERE id = $1 AND generation = $4",
        &[&next.id, &json(next)?, &counter(next.generation), &counter(generation)],
    )
    .await?;
    Ok(n == 1)
}

async fn tx_audit(tx: &Transaction<'_>, event: &AuditEvent) -> std::result::Result<i64, TxError> {
    let row = q_one(
        tx,
        "INSERT INTO audit_events (at, body) VALUES ($1, $2) RETURNING id",
        &[&secs(event.at), &json(event)?],
    )
    .await?;
    Ok(row.try_get(0)?)
}

async fn tx_enqueue_delivery(tx: &Transaction<'_>, d: &Delivery) -> std::result::Result<(), TxError> {
    exec(
        tx,
        "INSERT INTO logout_outbox (next_attempt_at, body) VALUES ($1, $2)",
        &[&secs(d.next_attempt_at), &json(d)?],
    )
    .await?;
    Ok(())
}

async fn tx_enqueue_set(tx: &Transaction<'_>, set: &QueuedSet) -> std::result::Result<(), TxError> {
    exec(
        tx,
        "INSERT INTO ssf_queue (client_id, jti, iat, next_attempt_at, body) VALUES ($1, $2, $3, $4, $5)",
        &[&set.client_id, &set.jti, &secs(set.iat), &secs(set.next_attempt_at), &json(set)?],
    )
    .await?;
    Ok(())
}

async fn tx_put_setting(tx: &Transaction<'_>, name: &str, body: &Value) -> std::result::Result<(), TxError> {
    exec(
        tx,
        "INSERT INTO settings (name, body) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET body = excluded.body",
        &[&name, body],
    )
    .await?;
    Ok(())
}

/// Write a transition's audit events, outbox deliveries and feed events.
async fn tx_effects(tx: &Transaction<'_>, effects: &Effects) -> std::result::Result<(), TxError> {
    for event in &effects.events {
        tx_audit(tx, event).await?;
    }
    for d in &effects.deliveries {
        tx_enqueue_delivery(tx, d).await?;
    }
    for set in &effects.sets {
        tx_enqueue_set(tx, set).await?;
    }
    Ok(())
}

/// The revocation feed's streams, read in the transaction that kills
/// something (only then: a plain rotation needs none).
async fn tx_streams(tx: &Transaction<'_>) -> std::result::Result<Vec<Stream>, TxError> {
    let rows = q(tx, "SELECT body FROM ssf_streams ORDER BY client_id", &[]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(decode("SSF stream", row.try_get(0)?)?);
    }
    Ok(out)
}

/// Revoke family `id` inside a transaction; `Some` (the family as stored
/// afterwards, and whether this call revoked it) when it exists.
async fn tx_revoke_family(
    tx: &Transaction<'_>,
    id: &str,
    revoked: &Revoked,
) -> std::result::Result<Option<(Family, bool)>, TxError> {
    let Some(mut family) = tx_lock_family(tx, id).await? else { return Ok(None) };
    if family.revoked.is_some() {
        return Ok(Some((family, false)));
    }
    let generation = family.generation;
    family.revoked = Some(revoked.clone());
    tx_write_family(tx, &family, generation).await?;
    Ok(Some((family, true)))
}

/// Write user `username`'s revocation marker (the next `revocation_seq`:
/// every session stored so far is at or below it); its sequence.
async fn tx_mark_user(tx: &Transaction<'_>, username: &str, revoked: &Revoked) -> std::result::Result<u64, TxError> {
    // The previous marker, locked: it becomes an earlier one of the new.
    let previous =
        match q_opt(tx, "SELECT seq, body FROM user_markers WHERE username = $1 FOR UPDATE", &[&username]).await? {
            Some(row) => Some(Marker::of(row.try_get(0)?, row.try_get(1)?)?),
            None => None,
        };
    let earlier = carry(previous.as_ref().map(|p| (p.seq, &p.revoked, &p.earlier[..])), revoked.at);
    let body = MarkerBody { revoked: revoked.clone(), earlier };
    let row = q_one(
        tx,
        "INSERT INTO user_markers (username, seq, revoked_at, body) \
             VALUES ($1, nextval('revocation_seq'), $2, $3) \
             ON CONFLICT (username) DO UPDATE SET seq = excluded.seq, revoked_at = excluded.revoked_at, \
             body = excluded.body RETURNING seq",
        &[&username, &secs(revoked.at), &json(&body)?],
    )
    .await?;
    Ok(unsigned(row.try_get(0)?))
}

/// Retire `name` (a deleted user's or client's): it is never given again.
async fn tx_retire_name(tx: &Transaction<'_>, name: &str, kind: RetiredName) -> std::result::Result<(), TxError> {
    exec(
        tx,
        "INSERT INTO retired_names (name, kind) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        &[&name, &kind.as_str()],
    )
    .await?;
    Ok(())
}

impl PgStore {
    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| StoreError::from(self.pool_error(e)))
    }

    /// One statement on a pooled connection, bounded like every statement
    /// ([`super::TRANSACTION_TIMEOUT`]; a silent database is a 503).
    pub(super) async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let result = async {
            let statement = client.prepare_cached(sql).await?;
            client.query(&statement, params).await
        };
        match tokio::time::timeout(super::TRANSACTION_TIMEOUT, result).await {
            Ok(result) => result.map_err(|e| self.failed_on(client, e)),
            Err(_) => Err(self.timed_out(client, sql)),
        }
    }

    pub(super) async fn query_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        let client = self.client().await?;
        let result = async {
            let statement = client.prepare_cached(sql).await?;
            client.query_opt(&statement, params).await
        };
        match tokio::time::timeout(super::TRANSACTION_TIMEOUT, result).await {
            Ok(result) => result.map_err(|e| self.failed_on(client, e)),
            Err(_) => Err(self.timed_out(client, sql)),
        }
    }

    pub(super) async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64> {
        let client = self.client().await?;
        let result = async {
            let statement = client.prepare_cached(sql).await?;
            client.execute(&statement, params).await
        };
        match tokio::time::timeout(super::TRANSACTION_TIMEOUT, result).await {
            Ok(result) => result.map_err(|e| self.failed_on(client, e)),
            Err(_) => Err(self.timed_out(client, sql)),
        }
    }

    async fn setting(&self, name: &str) -> Result<Option<Value>> {
        let row = self.query_opt("SELECT body FROM settings WHERE name = $1", &[&name]).await?;
        row.map(|r| r.try_get(0).map_err(pg)).transpose()
    }
}

impl PgStore {
    /// The locked path of a refresh (`rotation` takes it for a reuse kill,
    /// and when its guarded statement keeps losing races): run `decide` on
    /// family `id` and its session in one transaction and store its outcome: a rotation (the session records the activity
    /// unless it was a background refresh), or a kill on reuse with its
    /// fallout. Locks the session, then the family, so concurrent uses of
    /// one token queue up and each decides on the generation the one before
    /// left; the generation also guards the write.
    pub(super) async fn refresh_locked<F>(
        &self,
        id: &str,
        decide: &F,
        fallout: &dyn Fallout,
    ) -> Result<Option<RefreshDecision>>
    where
        F: Fn(&Family, Option<&UserSession>) -> RefreshDecision + Send + Sync,
    {
        self.transaction("refresh", |tx, _| {
            Box::pin(async move {
                // Lock the family's session (a family's session never
                // changes), with its user's marker, in one round trip; then
                // the family: the fixed order, session before family.
                let mut session = tx_lock_session_of_family(tx, id).await?;
                let Some(family) = tx_lock_family(tx, id).await? else { return Ok(None) };
                let decision = decide(&family, session.as_ref());
                match &decision {
                    RefreshDecision::Grace(_) | RefreshDecision::Ended(_) | RefreshDecision::Refused(_) => {
                        return Ok(Some(decision));
                    }
                    RefreshDecision::Rotate(next) | RefreshDecision::Reuse(next) => {
                        if !tx_write_family(tx, next, family.generation).await? {
                            return Err(TxError::Store(StoreError::Io("the family changed under its row lock".into())));
                        }
                    }
                }
                match &decision {
                    // A background refresh is no activity of the session either.
                    RefreshDecision::Rotate(rotated) => {
                        if rotated.active_at.is_none()
                            && let Some(s) = session.as_mut()
                            && s.record_activity(rotated.rotated_at)
                        {
                            tx_write_session(tx, s).await?;
                        }
                    }
                    RefreshDecision::Reuse(killed) => {
                        tx_effects(tx, &fallout.family_revoked(killed, &tx_streams(tx).await?)).await?;
                    }
                    RefreshDecision::Grace(_) | RefreshDecision::Ended(_) | RefreshDecision::Refused(_) => {}
                }
                Ok(Some(decision))
            })
        })
        .await
    }
}

impl Store for PgStore {
    async fn check(&self) -> Result<()> {
        self.ping().await.map_err(StoreError::from)
    }

    /// Every write has committed (and so is durable) before it returned.
    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    // ---- settings ----

    async fn admin_policy(&self) -> Result<PolicyLayer> {
        match self.setting(ADMIN_POLICY).await? {
            None => Ok(PolicyLayer::default()),
            Some(body) => decode("admin session policy", body),
        }
    }

    async fn policy_history(&self) -> Result<Option<PolicyHistory>> {
        match self.setting(POLICY_HISTORY).await? {
            None => Ok(None),
            Some(body) => {
                let entries: Vec<(UnixTime, SessionPolicy)> = decode("policy history", body)?;
                Ok(PolicyHistory::from_entries(entries))
            }
        }
    }

    async fn set_policy(
        &self,
        admin: Option<&PolicyLayer>,
        history: &PolicyHistory,
        event: Option<&AuditEvent>,
    ) -> Result<()> {
        // Some(None): the admin layer is reset (no row).
        let admin = admin.map(|l| if l.is_empty() { Ok(None) } else { json(l).map(Some) }).transpose()?;
        let history = json(&history.entries())?;
        let (admin, history) = (&admin, &history);
        self.transaction("settings change", |tx, _| {
            Box::pin(async move {
                match admin {
                    Some(Some(body)) => tx_put_setting(tx, ADMIN_POLICY, body).await?,
                    Some(None) => {
                        exec(tx, "DELETE FROM settings WHERE name = $1", &[&ADMIN_POLICY]).await?;
                    }
                    None => {}
                }
                tx_put_setting(tx, POLICY_HISTORY, history).await?;
                if let Some(event) = event {
                    tx_audit(tx, event).await?;
                }
                // Replicas reload the policy (issue #9).
                super::coord::tx_bump_epoch(tx).await?;
                Ok(())
            })
        })
        .await?;
        self.notify_change().await;
        Ok(())
    }

    async fn admin_groups(&self) -> Result<std::collections::BTreeMap<String, crate::policy::GroupPolicy>> {
        match self.setting(ADMIN_GROUPS).await? {
            None => Ok(Default::default()),
            Some(body) => decode("admin group policies", body),
        }
    }

    async fn set_admin_groups(
        &self,
        groups: &std::collections::BTreeMap<String, crate::policy::GroupPolicy>,
        event: &AuditEvent,
    ) -> Result<()> {
        let body = json(groups)?;
        let body = &body;
        self.transaction("group policy change", |tx, _| {
            Box::pin(async move {
                tx_put_setting(tx, ADMIN_GROUPS, body).await?;
                tx_audit(tx, event).await?;
                // Replicas reload the groups with the policy (issue #9).
                super::coord::tx_bump_epoch(tx).await?;
                Ok(())
            })
        })
        .await?;
        self.notify_change().await;
        Ok(())
    }

    // ---- expiry ----

    /// Delete every code, family and session whose expiry is at or before
    /// `now`, in batches. Returns how many rows went.
    async fn sweep_expired(&self, now: UnixTime) -> Result<usize> {
        let mut removed = 0usize;
        for (table, key) in [
            ("auth_codes", "code_hash"),
            ("families", "id"),
            ("user_sessions", "sid"),
            ("device_requests", "device_hash"),
        ] {
            // Batches keep each transaction short (and within CockroachDB's
            // limits); `IN (SELECT ... LIMIT)` works on all three databases.
            let sql = format!(
                "DELETE FROM {table} WHERE {key} IN \
                 (SELECT {key} FROM {table} WHERE expires_at <= $1 LIMIT {SWEEP_BATCH})"
            );
            loop {
                let n = self.execute(&sql, &[&secs(now)]).await?;
                removed += usize::try_from(n).unwrap_or(usize::MAX);
                if n < u64::try_from(SWEEP_BATCH).unwrap_or(u64::MAX) {
                    break;
                }
            }
        }
        removed += self.sweep_throttles(now).await?;
        removed += self.sweep_ephemeral(now).await?;
        Ok(removed)
    }

    // ---- sessions ----

    /// Create or replace a session, kept until `keep_until`. A new session
    /// takes the next `revocation_seq` (after every marker so far); a stored
    /// one keeps its own, so re-storing a copy never lifts it past a marker.
    async fn put_session(&self, session: &UserSession, keep_until: UnixTime) -> Result<()> {
        self.execute(
            "INSERT INTO user_sessions (sid, username, seq, body, expires_at) \
             VALUES ($1, $2, nextval('revocation_seq'), $3, $4) \
             ON CONFLICT (sid) DO UPDATE SET username = excluded.username, body = excluded.body, \
             expires_at = excluded.expires_at",
            &[&session.sid, &session.username, &json(session)?, &secs(keep_until)],
        )
        .await?;
        Ok(())
    }

    /// Store a session under the user's session limit (SPEC 14): the
    /// user's row in `session_limit_locks` first (racing sign-ins of one
    /// user take turns on it), then the user's sessions by the username
    /// index, locked in sid order, then the decision; the sessions it ends
    /// are revoked with their families' fallout, and the new session is
    /// inserted, in one transaction.
    async fn start_session<F>(
        &self,
        session: &UserSession,
        keep_until: UnixTime,
        admit: F,
        revoked: &Revoked,
        fallout: &dyn Fallout,
    ) -> Result<Admission>
    where
        F: Fn(&[UserSession]) -> Admit + Send + Sync,
    {
        let admit = &admit;
        let body = json(session)?;
        let body = &body;
        self.transaction("sign-in under the session limit", |tx, _| {
            Box::pin(async move {
                exec(
                    tx,
                    "INSERT INTO session_limit_locks (username, signins) VALUES ($1, 1) \
                     ON CONFLICT (username) DO UPDATE SET signins = session_limit_locks.signins + 1",
                    &[&session.username],
                )
                .await?;
                let rows = q(
                    tx,
                    "SELECT s.body, s.seq, m.seq, m.body FROM user_sessions s \
                     LEFT JOIN user_markers m ON m.username = s.username \
                     WHERE s.username = $1 ORDER BY s.sid FOR UPDATE OF s",
                    &[&session.username],
                )
                .await?;
                let mut on_record = Vec::with_capacity(rows.len());
                for row in &rows {
                    let mut s: UserSession = decode("user session", row.try_get(0)?)?;
                    s.seq = unsigned(row.try_get(1)?);
                    if let Some(seq) = row.try_get::<_, Option<i64>>(2)? {
                        let marker = Marker::of(seq, row.try_get(3)?)?;
                        overlay(&mut s, Some(&marker));
                    }
                    on_record.push(s);
                }
                let end = match admit(&on_record) {
                    Admit::AtLimit { live } => return Ok(Admission::AtLimit { live }),
                    Admit::Start { end } => end,
                };
                let mut ended = Vec::with_capacity(end.len());
                let mut streams: Option<Vec<Stream>> = None;
                for mut s in on_record {
                    if s.revoked.is_some() || !end.contains(&s.sid) {
                        continue;
                    }
                    s.revoked = Some(revoked.clone());
                    tx_write_session(tx, &s).await?;
                    let rows = q(
                        tx,
                        "SELECT body FROM families WHERE sid = $1 AND in_session ORDER BY id FOR UPDATE",
                        &[&s.sid],
                    )
                    .await?;
                    let mut live = Vec::new();
                    for row in rows {
                        let f: Family = decode("family", row.try_get(0)?)?;
                        if f.revoked.is_none() {
                            live.push(f);
                        }
                    }
                    if streams.is_none() {
                        streams = Some(tx_streams(tx).await?);
                    }
                    let streams = streams.as_deref().unwrap_or_default();
                    tx_effects(tx, &fallout.session_revoked(&s, &live, streams)).await?;
                    ended.push(s);
                }
                exec(
                    tx,
                    "INSERT INTO user_sessions (sid, username, seq, body, expires_at) \
                     VALUES ($1, $2, nextval('revocation_seq'), $3, $4) \
                     ON CONFLICT (sid) DO UPDATE SET username = excluded.username, body = excluded.body, \
                     expires_at = excluded.expires_at",
                    &[&session.sid, &session.username, body, &secs(keep_until)],
                )
                .await?;
                Ok(Admission::Started { ended })
            })
        })
        .await
    }

    async fn session(&self, sid: &str) -> Result<Option<UserSession>> {
        let row = self.query_opt(&format!("{SESSION_COLUMNS} WHERE s.sid = $1"), &[&sid]).await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn touch_session(&self, sid: &str, at: UnixTime) -> Result<Option<UserSession>> {
        self.transaction("session activity", |tx, _| {
            Box::pin(async move {
                let Some(mut session) = tx_lock_session(tx, sid).await? else { return Ok(None) };
                if session.record_activity(at) {
                    tx_write_session(tx, &session).await?;
                }
                Ok(Some(session))
            })
        })
        .await
    }

    /// Revoke session `sid`; its families die with it (every use checks the
    /// session). The fallout names the families still alive.
    async fn revoke_session(&self, sid: &str, revoked: &Revoked, fallout: &dyn Fallout) -> Result<Revoke<UserSession>> {
        self.transaction("session revocation", |tx, _| {
            Box::pin(async move {
                let Some(mut session) = tx_lock_session(tx, sid).await? else { return Ok(Revoke::NotFound) };
                if session.revoked.is_some() {
                    return Ok(Revoke::AlreadyRevoked(session));
                }
                session.revoked = Some(revoked.clone());
                tx_write_session(tx, &session).await?;
                let rows =
                    q(tx, "SELECT body FROM families WHERE sid = $1 AND in_session ORDER BY id FOR UPDATE", &[&sid])
                        .await?;
                let mut live = Vec::new();
                for row in rows {
                    let f: Family = decode("family", row.try_get(0)?)?;
                    if f.revoked.is_none() {
                        live.push(f);
                    }
                }
                tx_effects(tx, &fallout.session_revoked(&session, &live, &tx_streams(tx).await?)).await?;
                Ok(Revoke::Revoked(session))
            })
        })
        .await
    }

    /// The families of session `sid` not superseded, by id.
    async fn session_families(&self, sid: &str) -> Result<Vec<Family>> {
        let rows = self.query("SELECT body FROM families WHERE sid = $1 AND in_session ORDER BY id", &[&sid]).await?;
        rows.into_iter().map(|r| decode("family", r.try_get(0).map_err(pg)?)).collect()
    }

    // ---- codes and families ----

    async fn put_code(&self, key: &[u8], code: &AuthCode) -> Result<()> {
        self.execute(
            "INSERT INTO auth_codes (code_hash, body, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (code_hash) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at",
            &[&key, &json(code)?, &secs(code.issued_at.plus(CODE_RECORD_TTL))],
        )
        .await?;
        Ok(())
    }

    async fn code(&self, key: &[u8]) -> Result<Option<AuthCode>> {
        let row = self.query_opt("SELECT body FROM auth_codes WHERE code_hash = $1", &[&key]).await?;
        row.map(|r| decode("authorization code", r.try_get(0).map_err(pg)?)).transpose()
    }

    /// Redeem the code under `key`, creating `family` (kept until
    /// `keep_until`): one statement in the common case (`rotation`), else
    /// one transaction; a second redemption revokes the
    /// family the first created (RFC 6749 4.1.2). The family joins its
    /// session's families of its client; the ones it supersedes are revoked
    /// and leave the session's list; the session records the activity.
    async fn redeem_code(
        &self,
        key: &[u8],
        family: &Family,
        keep_until: UnixTime,
        now: UnixTime,
        fallout: &dyn Fallout,
    ) -> Result<Redemption> {
        // The common case (no replay, nothing superseded): one statement.
        if self.try_redeem(key, family, keep_until, now).await? {
            return Ok(Redemption::Redeemed { superseded: Vec::new() });
        }
        let family_body = json(family)?;
        let family_body = &family_body;
        self.transaction("code redemption", |tx, _| {
            Box::pin(async move {
                let Some(row) =
                    q_opt(tx, "SELECT body FROM auth_codes WHERE code_hash = $1 FOR UPDATE", &[&key]).await?
                else {
                    return Ok(Redemption::NotFound);
                };
                let mut code: AuthCode = decode("authorization code", row.try_get(0)?)?;
                if let Some(first) = code.redeemed_family.clone() {
                    // RFC 6749 4.1.2: revoke what the first redemption created.
                    let revoked = Revoked { at: now, reason: "authorization_code_replay".into(), by: None };
                    return match tx_revoke_family(tx, &first, &revoked).await? {
                        Some((f, true)) => {
                            tx_effects(tx, &fallout.family_revoked(&f, &tx_streams(tx).await?)).await?;
                            Ok(Redemption::Replayed { revoked_family: Some(first) })
                        }
                        _ => Ok(Redemption::Replayed { revoked_family: None }),
                    };
                }
                code.redeemed_family = Some(family.id.clone());
                exec(tx, "UPDATE auth_codes SET body = $2 WHERE code_hash = $1", &[&key, &json(&code)?]).await?;
                let session = tx_lock_session(tx, &family.sid).await?;
                exec(
                    tx,
                    "INSERT INTO families (id, sid, client_id, generation, in_session, body, expires_at) \
                     VALUES ($1, $2, $3, $4, TRUE, $5, $6)",
                    &[
                        &family.id,
                        &family.sid,
                        &family.client_id,
                        &counter(family.generation),
                        family_body,
                        &secs(keep_until),
                    ],
                )
                .await?;
                let mut superseded = Vec::new();
                if let Some(mut session) = session {
                    let old = session.admit_family(&family.client_id, &family.id, MAX_FAMILIES_PER_CLIENT);
                    session.record_activity(now);
                    tx_write_session(tx, &session).await?;
                    let mut sorted = old.clone();
                    sorted.sort();
                    // Lock them in id order; report them oldest first.
                    let rows =
                        q(tx, "SELECT id, body FROM families WHERE id = ANY($1) ORDER BY id FOR UPDATE", &[&sorted])
                            .await?;
                    exec(tx, "UPDATE families SET in_session = FALSE WHERE id = ANY($1)", &[&sorted]).await?;
                    let mut locked = std::collections::HashMap::new();
                    for row in rows {
                        let id: String = row.try_get(0)?;
                        locked.insert(id, decode::<Family>("family", row.try_get(1)?)?);
                    }
                    for id in old {
                        let Some(mut f) = locked.remove(&id) else { continue };
                        if f.revoked.is_none() {
                            let generation = f.generation;
                            f.revoked = Some(Revoked { at: now, reason: "superseded".into(), by: None });
                            tx_write_family(tx, &f, generation).await?;
                            superseded.push(f);
                        }
                    }
                }
                if !superseded.is_empty() {
                    tx_effects(tx, &fallout.families_superseded(&superseded, family)).await?;
                }
                Ok(Redemption::Redeemed { superseded })
            })
        })
        .await
    }

    // ---- device authorization requests (SPEC 15) ----

    async fn put_device_request(
        &self,
        device_key: &[u8; 32],
        user_key: &[u8; 32],
        request: &DeviceRequest,
    ) -> Result<bool> {
        let n = self
            .execute(
                "INSERT INTO device_requests (device_hash, user_hash, body, expires_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
                &[&&device_key[..], &&user_key[..], &json(request)?, &secs(request.keep_until())],
            )
            .await?;
        Ok(n == 1)
    }

    async fn device_request(&self, device_key: &[u8; 32]) -> Result<Option<DeviceRequest>> {
        let row =
            self.query_opt("SELECT body FROM device_requests WHERE device_hash = $1", &[&&device_key[..]]).await?;
        row.map(|r| decode("device request", r.try_get(0).map_err(pg)?)).transpose()
    }

    async fn device_request_by_user_code(&self, user_key: &[u8; 32]) -> Result<Option<DeviceRequest>> {
        let row = self.query_opt("SELECT body FROM device_requests WHERE user_hash = $1", &[&&user_key[..]]).await?;
        row.map(|r| decode("device request", r.try_get(0).map_err(pg)?)).transpose()
    }

    /// The answer is a guarded update: the row is locked and the request
    /// decides whether it is still open.
    async fn answer_device_request(
        &self,
        user_key: &[u8; 32],
        approval: Option<&Approval>,
        now: UnixTime,
        event: &AuditEvent,
    ) -> Result<DeviceAnswer> {
        self.transaction("device answer", |tx, _| {
            Box::pin(async move {
                let Some(row) =
                    q_opt(tx, "SELECT body FROM device_requests WHERE user_hash = $1 FOR UPDATE", &[&&user_key[..]])
                        .await?
                else {
                    return Ok(DeviceAnswer::NotFound);
                };
                let request: DeviceRequest = decode("device request", row.try_get(0)?)?;
                match request.answer(approval.cloned(), now) {
                    None => Ok(DeviceAnswer::Closed(request)),
                    Some(next) => {
                        exec(
                            tx,
                            "UPDATE device_requests SET body = $2 WHERE user_hash = $1",
                            &[&&user_key[..], &json(&next)?],
                        )
                        .await?;
                        tx_audit(tx, event).await?;
                        Ok(DeviceAnswer::Answered(next))
                    }
                }
            })
        })
        .await
    }

    /// Locks the request, then (on redemption) the session and the families
    /// it supersedes: the order of `redeem_code`, whose bookkeeping
    /// [`tx_start_family`] repeats.
    async fn poll_device<F>(
        &self,
        device_key: &[u8; 32],
        client_id: &str,
        now: UnixTime,
        family: F,
        fallout: &dyn Fallout,
    ) -> Result<DevicePoll>
    where
        F: Fn(&Approval) -> (Family, UnixTime) + Send + Sync,
    {
        let family = &family;
        self.transaction("device poll", |tx, _| {
            Box::pin(async move {
                let Some(row) = q_opt(
                    tx,
                    "SELECT body FROM device_requests WHERE device_hash = $1 FOR UPDATE",
                    &[&&device_key[..]],
                )
                .await?
                else {
                    return Ok(DevicePoll::NotFound);
                };
                let mut request: DeviceRequest = decode("device request", row.try_get(0)?)?;
                if request.client_id != client_id {
                    return Ok(DevicePoll::NotFound);
                }
                let (outcome, next) = match decide_poll(&request, now) {
                    PollDecision::Pending(next) => (DevicePoll::Pending, next),
                    PollDecision::SlowDown(next) => (DevicePoll::SlowDown { interval: next.interval }, next),
                    PollDecision::Denied => return Ok(DevicePoll::Denied),
                    PollDecision::Expired => return Ok(DevicePoll::Expired),
                    PollDecision::Used => return Ok(DevicePoll::Used),
                    PollDecision::Issue(approval) => {
                        let (new_family, keep_until) = family(&approval);
                        let superseded = tx_start_family(tx, &new_family, keep_until, now).await?;
                        if !superseded.is_empty() {
                            tx_effects(tx, &fallout.families_superseded(&superseded, &new_family)).await?;
                        }
                        request.state = DeviceState::Redeemed { at: now, family_id: new_family.id.clone() };
                        request.last_poll = Some(now);
                        (DevicePoll::Issued { family: Box::new(new_family), superseded }, request)
                    }
                };
                exec(
                    tx,
                    "UPDATE device_requests SET body = $2 WHERE device_hash = $1",
                    &[&&device_key[..], &json(&next)?],
                )
                .await?;
                Ok(outcome)
            })
        })
        .await
    }

    async fn family(&self, id: &str) -> Result<Option<Family>> {
        let row = self.query_opt("SELECT body FROM families WHERE id = $1", &[&id]).await?;
        row.map(|r| decode("family", r.try_get(0).map_err(pg)?)).transpose()
    }

    /// One read of the family with its session and marker, then
    /// [`Store::refresh_seen`] (`rotation`): a rotation is one guarded
    /// statement.
    async fn refresh<F>(&self, id: &str, decide: F, fallout: &dyn Fallout) -> Result<Option<RefreshDecision>>
    where
        F: Fn(&Family, Option<&UserSession>) -> RefreshDecision + Send + Sync,
    {
        match self.pg_family_view(id).await? {
            None => Ok(None),
            Some(seen) => self.pg_refresh_seen(seen, &decide, fallout).await,
        }
    }

    async fn family_view(&self, id: &str) -> Result<Option<crate::store::FamilyView>> {
        self.pg_family_view(id).await
    }

    async fn live_family_view(&self, id: &str) -> Result<Option<crate::store::FamilyView>> {
        self.pg_live_family_view(id).await
    }

    async fn refresh_seen<F>(
        &self,
        seen: crate::store::FamilyView,
        decide: F,
        fallout: &dyn Fallout,
    ) -> Result<Option<RefreshDecision>>
    where
        F: Fn(&Family, Option<&UserSession>) -> RefreshDecision + Send + Sync,
    {
        self.pg_refresh_seen(seen, &decide, fallout).await
    }

    async fn revoke_family(&self, id: &str, revoked: &Revoked, fallout: &dyn Fallout) -> Result<Revoke<Family>> {
        self.transaction("family revocation", |tx, _| {
            Box::pin(async move {
                Ok(match tx_revoke_family(tx, id, revoked).await? {
                    None => Revoke::NotFound,
                    Some((family, false)) => Revoke::AlreadyRevoked(family),
                    Some((family, true)) => {
                        tx_effects(tx, &fallout.family_revoked(&family, &tx_streams(tx).await?)).await?;
                        Revoke::Revoked(family)
                    }
                })
            })
        })
        .await
    }

    // ---- users ----

    async fn user(&self, username: &str) -> Result<Option<User>> {
        let row = self.query_opt("SELECT body FROM users WHERE username = $1", &[&username]).await?;
        let Some(row) = row else { return Ok(None) };
        let what = format!("user {username}");
        let stored: StoredUser = decode(&what, row.try_get(0).map_err(pg)?)?;
        stored.into_user().map(Some).map_err(|message| StoreError::Corrupt { what, message })
    }

    async fn retired_name(&self, name: &str) -> Result<Option<RetiredName>> {
        let row = self.query_opt("SELECT kind FROM retired_names WHERE name = $1", &[&name]).await?;
        let Some(row) = row else { return Ok(None) };
        let kind: String = row.try_get(0).map_err(pg)?;
        RetiredName::parse(&kind).map(Some).ok_or_else(|| StoreError::Corrupt {
            what: format!("retired name {name}"),
            message: format!("unknown kind {kind:?}"),
        })
    }

    async fn users(&self) -> Result<Vec<User>> {
        let rows = self.query("SELECT username, body FROM users ORDER BY username", &[]).await?;
        rows.into_iter()
            .map(|r| {
                let what = format!("user {}", r.try_get::<_, String>(0).map_err(pg)?);
                let stored: StoredUser = decode(&what, r.try_get(1).map_err(pg)?)?;
                stored.into_user().map_err(|message| StoreError::Corrupt { what, message })
            })
            .collect()
    }

    /// Create or replace (`Some`) or delete (`None`) stored user `username`
    /// and append `event`; with `revoke`, also revoke every session of the
    /// user (the marker) with its fallout. One transaction. Whether a stored
    /// user existed before.
    async fn write_user(
        &self,
        username: &str,
        user: Option<&User>,
        revoke: Option<&Revoked>,
        fallout: &dyn Fallout,
        event: &AuditEvent,
    ) -> Result<bool> {
        let body = user.map(|u| json(&StoredUser::from(u))).transpose()?;
        let body = &body;
        self.transaction("user change", |tx, _| {
            Box::pin(async move {
                let existed =
                    q_opt(tx, "SELECT 1 FROM users WHERE username = $1 FOR UPDATE", &[&username]).await?.is_some();
                match body {
                    Some(b) => {
                        exec(
                            tx,
                            "INSERT INTO users (username, body) VALUES ($1, $2) \
                             ON CONFLICT (username) DO UPDATE SET body = excluded.body",
                            &[&username, b],
                        )
                        .await?;
                    }
                    None => {
                        exec(tx, "DELETE FROM users WHERE username = $1", &[&username]).await?;
                        if existed {
                            tx_retire_name(tx, username, RetiredName::User).await?;
                        }
                    }
                }
                let mut effects = Effects::default();
                if let Some(revoked) = revoke {
                    let seq = tx_mark_user(tx, username, revoked).await?;
                    effects = fallout.user_revoked(username, seq, revoked, &tx_streams(tx).await?);
                }
                effects.events.push(event.clone());
                tx_effects(tx, &effects).await?;
                Ok(existed)
            })
        })
        .await
    }

    /// Replace stored user `user` and revoke every session of theirs but
    /// `keep`: the session row is locked, the marker written, and the kept
    /// session takes the next `revocation_seq` (after the marker), all in
    /// one transaction. Whether `keep` lives on.
    async fn write_user_keeping(
        &self,
        user: &User,
        revoke: &Revoked,
        keep: &str,
        fallout: &dyn Fallout,
        event: &AuditEvent,
    ) -> Result<bool> {
        let body = json(&StoredUser::from(user))?;
        let (body, username) = (&body, user.username.as_str());
        self.transaction("password change", |tx, _| {
            Box::pin(async move {
                let live =
                    tx_lock_session(tx, keep).await?.is_some_and(|s| s.username == username && s.revoked.is_none());
                // The user's other live sessions, locked and read before the
                // marker covers them: the feed names them one by one.
                let rows = q(
                    tx,
                    &format!("{SESSION_COLUMNS} WHERE s.username = $1 AND s.sid <> $2 ORDER BY s.sid FOR UPDATE OF s"),
                    &[&username, &keep],
                )
                .await?;
                let mut others = Vec::with_capacity(rows.len());
                for row in &rows {
                    let session = session_from_row(row)?;
                    if session.revoked.is_none() {
                        others.push(session);
                    }
                }
                exec(
                    tx,
                    "INSERT INTO users (username, body) VALUES ($1, $2) \
                     ON CONFLICT (username) DO UPDATE SET body = excluded.body",
                    &[&username, body],
                )
                .await?;
                let seq = tx_mark_user(tx, username, revoke).await?;
                others.retain(|s| s.seq <= seq);
                let mut effects = fallout.user_revoked_keeping(username, seq, revoke, &others, &tx_streams(tx).await?);
                if live {
                    exec(tx, "UPDATE user_sessions SET seq = nextval('revocation_seq') WHERE sid = $1", &[&keep])
                        .await?;
                }
                effects.events.push(event.clone());
                tx_effects(tx, &effects).await?;
                Ok(live)
            })
        })
        .await
    }

    /// Revoke every session `username` has now: one marker row, with its
    /// fallout. Returns its sequence.
    async fn revoke_user(&self, username: &str, revoked: &Revoked, fallout: &dyn Fallout) -> Result<u64> {
        self.transaction("user revocation", |tx, _| {
            Box::pin(async move {
                let seq = tx_mark_user(tx, username, revoked).await?;
                tx_effects(tx, &fallout.user_revoked(username, seq, revoked, &tx_streams(tx).await?)).await?;
                Ok(seq)
            })
        })
        .await
    }

    async fn user_sessions(&self, username: &str) -> Result<Vec<UserSession>> {
        let rows = self.query(&format!("{SESSION_COLUMNS} WHERE s.username = $1 ORDER BY s.sid"), &[&username]).await?;
        rows.iter().map(session_from_row).collect()
    }

    /// Every session on record (revoked ones included).
    async fn all_sessions(&self) -> Result<Vec<UserSession>> {
        let rows = self.query(&format!("{SESSION_COLUMNS} ORDER BY s.sid"), &[]).await?;
        rows.iter().map(session_from_row).collect()
    }

    // ---- clients ----

    async fn clients(&self) -> Result<Vec<StoredClient>> {
        let rows = self.query("SELECT id, body FROM clients ORDER BY id", &[]).await?;
        rows.into_iter()
            .map(|r| {
                let what = format!("client {}", r.try_get::<_, String>(0).map_err(pg)?);
                decode(&what, r.try_get(1).map_err(pg)?)
            })
            .collect()
    }

    /// Create or replace (`Some`) or delete (`None`) stored client `id` and
    /// append `event`, in one transaction. Whether one existed before.
    async fn write_client(&self, id: &str, client: Option<&StoredClient>, event: &AuditEvent) -> Result<bool> {
        let body = client.map(json).transpose()?;
        let body = &body;
        let existed = self
            .transaction("client change", |tx, _| {
                Box::pin(async move {
                    let existed = q_opt(tx, "SELECT 1 FROM clients WHERE id = $1 FOR UPDATE", &[&id]).await?.is_some();
                    match body {
                        Some(b) => {
                            exec(
                                tx,
                                "INSERT INTO clients (id, body) VALUES ($1, $2) \
                                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                                &[&id, b],
                            )
                            .await?;
                        }
                        None => {
                            exec(tx, "DELETE FROM clients WHERE id = $1", &[&id]).await?;
                            if existed {
                                tx_retire_name(tx, id, RetiredName::Client).await?;
                            }
                        }
                    }
                    tx_audit(tx, event).await?;
                    // Replicas reload their clients (issue #9).
                    super::coord::tx_bump_epoch(tx).await?;
                    Ok(existed)
                })
            })
            .await?;
        self.notify_change().await;
        Ok(existed)
    }

    async fn client_families(&self, client_id: &str) -> Result<Vec<Family>> {
        let rows = self.query("SELECT body FROM families WHERE client_id = $1 ORDER BY id", &[&client_id]).await?;
        rows.into_iter().map(|r| decode("family", r.try_get(0).map_err(pg)?)).collect()
    }

    // ---- the event log ----

    async fn append_event(&self, event: &AuditEvent) -> Result<u64> {
        let row = self
            .query_opt(
                "INSERT INTO audit_events (at, body) VALUES ($1, $2) RETURNING id",
                &[&secs(event.at), &json(event)?],
            )
            .await?
            .ok_or_else(|| StoreError::Io("the audit insert returned no row".into()))?;
        Ok(unsigned(row.try_get(0).map_err(pg)?))
    }

    /// Replace event `seq`; `false` when it is gone (pruned).
    async fn replace_event(&self, seq: u64, event: &AuditEvent) -> Result<bool> {
        let n = self
            .execute(
                "UPDATE audit_events SET at = $2, body = $3 WHERE id = $1",
                &[&counter(seq), &secs(event.at), &json(event)?],
            )
            .await?;
        Ok(n > 0)
    }

    /// Events newest first, strictly older than `before`.
    async fn events_page(&self, before: Option<u64>, limit: usize) -> Result<Vec<(u64, AuditEvent)>> {
        let before = before.map_or(i64::MAX, counter);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query("SELECT id, body FROM audit_events WHERE id < $1 ORDER BY id DESC LIMIT $2", &[&before, &limit])
            .await?;
        rows.into_iter()
            .map(|r| Ok((unsigned(r.try_get(0).map_err(pg)?), decode("audit event", r.try_get(1).map_err(pg)?)?)))
            .collect()
    }

    /// Drop events from before `before` and user markers written before
    /// `markers_before`. How many rows went.
    async fn prune_history(&self, before: UnixTime, markers_before: UnixTime) -> Result<usize> {
        let events = self.execute("DELETE FROM audit_events WHERE at < $1", &[&secs(before)]).await?;
        let markers = self.execute("DELETE FROM user_markers WHERE revoked_at < $1", &[&secs(markers_before)]).await?;
        Ok(usize::try_from(events.saturating_add(markers)).unwrap_or(usize::MAX))
    }

    // ---- back-channel logout outbox ----

    async fn enqueue_deliveries(&self, deliveries: &[Delivery]) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        self.transaction("outbox insert", |tx, _| {
            Box::pin(async move {
                for d in deliveries {
                    tx_enqueue_delivery(tx, d).await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// Deliveries due at `now`, oldest first.
    async fn due_deliveries(&self, now: UnixTime, limit: usize) -> Result<Vec<(u64, Delivery)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                "SELECT id, body FROM logout_outbox WHERE next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2",
                &[&secs(now), &limit],
            )
            .await?;
        rows.into_iter()
            .map(|r| Ok((unsigned(r.try_get(0).map_err(pg)?), decode("logout delivery", r.try_get(1).map_err(pg)?)?)))
            .collect()
    }

    /// Reschedule delivery `id` (`next`), or drop it (`None`). A row already
    /// gone (another replica finished it) stays gone.
    async fn finish_attempt(&self, id: u64, _old: &Delivery, next: Option<&Delivery>) -> Result<()> {
        match next {
            None => self.execute("DELETE FROM logout_outbox WHERE id = $1", &[&counter(id)]).await?,
            Some(d) => {
                self.execute(
                    "UPDATE logout_outbox SET next_attempt_at = $2, body = $3, lease_owner = NULL, lease_until = NULL \
                     WHERE id = $1",
                    &[&counter(id), &secs(d.next_attempt_at), &json(d)?],
                )
                .await?
            }
        };
        Ok(())
    }

    // ---- revocation feed ----

    async fn ssf_streams(&self) -> Result<Vec<Stream>> {
        let rows = self.query("SELECT body FROM ssf_streams ORDER BY client_id", &[]).await?;
        rows.into_iter().map(|r| decode("SSF stream", r.try_get(0).map_err(pg)?)).collect()
    }

    async fn ssf_stream(&self, client_id: &str) -> Result<Option<Stream>> {
        let row = self.query_opt("SELECT body FROM ssf_streams WHERE client_id = $1", &[&client_id]).await?;
        row.map(|r| decode("SSF stream", r.try_get(0).map_err(pg)?)).transpose()
    }

    async fn put_ssf_stream(&self, stream: &Stream) -> Result<()> {
        self.execute(
            "INSERT INTO ssf_streams (client_id, body) VALUES ($1, $2) \
             ON CONFLICT (client_id) DO UPDATE SET body = excluded.body",
            &[&stream.client_id, &json(stream)?],
        )
        .await?;
        Ok(())
    }

    /// Delete the stream of `client_id` and its queue in one transaction.
    async fn delete_ssf_stream(&self, client_id: &str) -> Result<bool> {
        self.transaction("stream deletion", |tx, _| {
            Box::pin(async move {
                exec(tx, "DELETE FROM ssf_queue WHERE client_id = $1", &[&client_id]).await?;
                Ok(exec(tx, "DELETE FROM ssf_streams WHERE client_id = $1", &[&client_id]).await? > 0)
            })
        })
        .await
    }

    async fn enqueue_sets(&self, sets: &[QueuedSet]) -> Result<()> {
        if sets.is_empty() {
            return Ok(());
        }
        self.transaction("feed insert", |tx, _| {
            Box::pin(async move {
                for set in sets {
                    tx_enqueue_set(tx, set).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn queued_sets(&self, client_id: &str, limit: usize) -> Result<Vec<(u64, QueuedSet)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query("SELECT id, body FROM ssf_queue WHERE client_id = $1 ORDER BY id LIMIT $2", &[&client_id, &limit])
            .await?;
        rows.into_iter()
            .map(|r| Ok((unsigned(r.try_get(0).map_err(pg)?), decode("queued SET", r.try_get(1).map_err(pg)?)?)))
            .collect()
    }

    async fn remove_sets(&self, client_id: &str, jtis: &[String]) -> Result<usize> {
        if jtis.is_empty() {
            return Ok(0);
        }
        let n =
            self.execute("DELETE FROM ssf_queue WHERE client_id = $1 AND jti = ANY($2)", &[&client_id, &jtis]).await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Set the `signed` member of the bodies of queued events still queued.
    async fn keep_signed_sets(&self, client_id: &str, signed: &[(u64, SignedSet)]) -> Result<()> {
        if signed.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = signed.iter().map(|(id, _)| counter(*id)).collect();
        let sets = signed.iter().map(|(_, s)| json(s)).collect::<Result<Vec<Value>>>()?;
        self.execute(
            "UPDATE ssf_queue AS q SET body = jsonb_set(q.body, '{signed}', s.signed) \
             FROM unnest($2::BIGINT[], $3::JSONB[]) AS s(id, signed) WHERE q.client_id = $1 AND q.id = s.id",
            &[&client_id, &ids, &sets],
        )
        .await?;
        Ok(())
    }

    /// Replace queued event `id` while it is still queued.
    async fn reschedule_set(&self, id: u64, next: &QueuedSet) -> Result<()> {
        self.execute(
            "UPDATE ssf_queue SET next_attempt_at = $3, body = $4 WHERE id = $1 AND client_id = $2",
            &[&counter(id), &next.client_id, &secs(next.next_attempt_at), &json(next)?],
        )
        .await?;
        Ok(())
    }

    async fn clear_sets(&self, client_id: &str) -> Result<usize> {
        let n = self.execute("DELETE FROM ssf_queue WHERE client_id = $1", &[&client_id]).await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn prune_sets(&self, before: UnixTime) -> Result<usize> {
        let n = self.execute("DELETE FROM ssf_queue WHERE iat < $1", &[&secs(before)]).await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    // ---- coordination of replicas (issue #9, `coord`) ----

    async fn take_lease(&self, name: &str, owner: &str, now: UnixTime, until: UnixTime) -> Result<bool> {
        self.pg_take_lease(name, owner, now, until).await
    }

    async fn claim_deliveries(
        &self,
        owner: &str,
        now: UnixTime,
        lease_until: UnixTime,
        limit: usize,
    ) -> Result<Vec<(u64, Delivery)>> {
        self.pg_claim_deliveries(owner, now, lease_until, limit).await
    }

    async fn shared_throttle(&self, key: &ThrottleKey) -> Result<Option<ThrottleState>> {
        self.pg_shared_throttle(key).await
    }

    async fn throttle_failed(
        &self,
        key: &ThrottleKey,
        rules: &ThrottleRules,
        now: UnixTime,
    ) -> Result<Option<ThrottleState>> {
        self.pg_throttle_failed(key, rules, now).await
    }

    async fn clear_throttle(&self, key: &ThrottleKey) -> Result<()> {
        self.pg_clear_throttle(key).await
    }

    async fn put_setup_token(&self, hash: &[u8; 32], until: UnixTime) -> Result<bool> {
        self.pg_put_setup_token(hash, until).await
    }

    async fn setup_token(&self, hash: &[u8; 32], now: UnixTime) -> Result<Option<bool>> {
        self.pg_setup_token(hash, now).await.map(Some)
    }

    async fn take_setup_tokens(&self, now: UnixTime) -> Result<Option<Vec<crate::store::SetupToken>>> {
        self.pg_take_setup_tokens(now).await.map(Some)
    }

    async fn cache_epoch(&self) -> Result<u64> {
        self.pg_cache_epoch().await
    }

    // Nothing per process (SPEC 12): `store/postgres/ephemeral.rs`.

    async fn put_console_session(
        &self,
        key: &[u8; 32],
        record: &crate::store::ConsoleSessionRecord,
        max: usize,
        now: UnixTime,
    ) -> Result<()> {
        self.pg_put_console_session(key, record, max, now).await
    }

    async fn console_session(
        &self,
        key: &[u8; 32],
        now: UnixTime,
    ) -> Result<Option<(u64, crate::store::ConsoleSessionRecord)>> {
        self.pg_console_session(key, now).await
    }

    async fn replace_console_session(
        &self,
        key: &[u8; 32],
        version: u64,
        record: &crate::store::ConsoleSessionRecord,
    ) -> Result<bool> {
        self.pg_replace_console_session(key, version, record).await
    }

    async fn remove_console_session(
        &self,
        key: &[u8; 32],
        version: Option<u64>,
    ) -> Result<Option<crate::store::ConsoleSessionRecord>> {
        self.pg_remove_console_session(key, version).await
    }

    async fn put_pending_sign_in(
        &self,
        key: &[u8; 32],
        record: &crate::store::PendingSignInRecord,
        max: usize,
        now: UnixTime,
    ) -> Result<bool> {
        self.pg_put_pending_sign_in(key, record, max, now).await
    }

    async fn take_pending_sign_in(
        &self,
        key: &[u8; 32],
        browser: &[u8; 32],
        now: UnixTime,
    ) -> Result<Option<crate::store::PendingSignInRecord>> {
        self.pg_take_pending_sign_in(key, browser, now).await
    }

    async fn remember_proof(&self, key: &[u8; 16], until: UnixTime, now: UnixTime) -> Result<bool> {
        self.pg_remember_proof(key, until, now).await
    }
}
